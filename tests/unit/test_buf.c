/* test_buf.c - md_buf.h: the bounded growable buffer. */
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "t.h"

TEST(buf_grows_and_stays_terminated)
{
    struct md_buf b;
    char *s;

    md_buf_init(&b, 1 << 20);
    T_ASSERT_STREQ(md_buf_str(&b), "");
    T_ASSERT_TRUE(md_buf_take(&b) == NULL);
    for (int i = 0; i < 1000; i++)
        T_ASSERT_TRUE(md_buf_printf(&b, "%03d,", i % 1000));
    T_ASSERT_EQ(b.len, 4000);
    T_ASSERT_TRUE(strncmp(md_buf_str(&b), "000,001,", 8) == 0);
    T_ASSERT_STREQ(md_buf_str(&b) + 3996, "999,");
    s = md_buf_take(&b);
    T_ASSERT_EQ(strlen(s), 4000);
    T_ASSERT_EQ(b.len, 0);
    md_free(s);
    md_buf_free(&b);
}

TEST(buf_refuses_past_its_bound_whole)
{
    struct md_buf b;
    char big[600];

    md_buf_init(&b, 10);
    T_ASSERT_TRUE(md_buf_puts(&b, "0123456"));
    T_ASSERT_FALSE(md_buf_puts(&b, "7890")); /* 11 > 10: nothing of it */
    T_ASSERT_TRUE(b.full);
    T_ASSERT_STREQ(md_buf_str(&b), "0123456");
    T_ASSERT_TRUE(md_buf_puts(&b, "789")); /* exactly 10 */
    T_ASSERT_STREQ(md_buf_str(&b), "0123456789");
    T_ASSERT_FALSE(md_buf_put(&b, "x", 1));
    T_ASSERT_TRUE(b.cap <= 11);
    md_buf_free(&b);
    memset(big, 'y', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    md_buf_init(&b, 300);
    T_ASSERT_FALSE(md_buf_printf(&b, "%s", big)); /* the long path of printf */
    T_ASSERT_EQ(b.len, 0);
    T_ASSERT_TRUE(md_buf_printf(&b, "%.299s", big));
    T_ASSERT_EQ(b.len, 299);
    T_ASSERT_EQ(md_buf_str(&b)[298], 'y');
    md_buf_free(&b);
}

T_MAIN()
