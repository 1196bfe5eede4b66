/* test_scrape_value.c - meshd-scrape's value checks and record bookkeeping
 * (workers/scrape/value.c): integer keys compared in canonical form and range-checked per
 * type, numbers and booleans as PostgreSQL takes them, COPY text escaping, the record bits
 * (the n-th sent record names the line of a COPY error) and the record -> line map across
 * quoted line breaks and blank lines. */
#include <string.h>

#include "meshd/md_alloc.h"
#include "t.h"
#include "value.h"

static const char *canon(const char *s, enum ctype t)
{
    static char buf[32];
    return val_int_canon(s, strlen(s), t, buf, sizeof buf) ? buf : NULL;
}

TEST(integers_are_canonical_and_range_checked)
{
    T_ASSERT_STREQ("11", canon("011", CT_INT4));
    T_ASSERT_STREQ("11", canon(" +11\t", CT_INT4));
    T_ASSERT_STREQ("0", canon("-0", CT_INT2));
    T_ASSERT_STREQ("-32768", canon("-32768", CT_INT2));
    T_ASSERT_TRUE(canon("32768", CT_INT2) == NULL);
    T_ASSERT_STREQ("2147483647", canon("2147483647", CT_INT4));
    T_ASSERT_TRUE(canon("2147483648", CT_INT4) == NULL);
    T_ASSERT_STREQ("-9223372036854775808", canon("-9223372036854775808", CT_INT8));
    T_ASSERT_TRUE(canon("9223372036854775808", CT_INT8) == NULL);
    T_ASSERT_TRUE(canon("99999999999999999999999", CT_INT8) == NULL);
    T_ASSERT_TRUE(canon("", CT_INT4) == NULL);
    T_ASSERT_TRUE(canon("-", CT_INT4) == NULL);
    T_ASSERT_TRUE(canon("1 2", CT_INT4) == NULL);
    T_ASSERT_TRUE(canon("12A50", CT_INT8) == NULL);
    T_ASSERT_TRUE(canon("1.0", CT_INT4) == NULL);
}

TEST(numbers_as_postgres_takes_them)
{
    const char *ok[] = {"0",     "1.5", ".5",  "5.",       "-1e10",
                        "+2E-3", " 7 ", "NaN", "infinity", "-Infinity"};
    const char *bad[] = {"", ".", "e5", "1e", "1.2.3", "12A50", "0x10", "1,000", "inf"};
    for (size_t i = 0; i < MD_ARRAY_SIZE(ok); i++)
        T_ASSERT_TRUE(val_num_ok(ok[i], strlen(ok[i]), false));
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++)
        T_ASSERT_TRUE(!val_num_ok(bad[i], strlen(bad[i]), false));
    T_ASSERT_TRUE(val_num_ok("inf", 3, true));
    T_ASSERT_TRUE(val_num_ok("-INF", 4, true));
}

TEST(booleans)
{
    const char *ok[] = {"t", "F", "true", "FALSE", "y", "no", "On", "off", "1", "0", " yes "};
    const char *bad[] = {"", "2", "tru", "maybe", "oui"};
    for (size_t i = 0; i < MD_ARRAY_SIZE(ok); i++)
        T_ASSERT_TRUE(val_bool_ok(ok[i], strlen(ok[i])));
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++)
        T_ASSERT_TRUE(!val_bool_ok(bad[i], strlen(bad[i])));
}

TEST(utf8_characters_and_type_names)
{
    T_ASSERT_EQ(5, (long)val_utf8_chars("Peña!", strlen("Peña!")));
    T_ASSERT_EQ(0, (long)val_utf8_chars("", 0));
    T_ASSERT_STREQ("bigint", val_type_name(CT_INT8));
    T_ASSERT_TRUE(val_is_int(CT_INT2) && !val_is_int(CT_NUM));
}

TEST(copy_escape_escapes_what_copy_text_needs)
{
    struct md_buf b;
    md_buf_init(&b, 1024);
    const char in[] = "a\\b\tc\nd\re\"f,";
    copy_escape(&b, in, sizeof in - 1);
    T_ASSERT_STREQ("a\\\\b\\tc\\nd\\re\"f,", md_buf_str(&b));
    md_buf_free(&b);
    md_buf_init(&b, 1024);
    copy_escape(&b, "plain", 5);
    T_ASSERT_STREQ("plain", md_buf_str(&b));
    md_buf_free(&b);
}

TEST(integers_appended_without_printf)
{
    struct md_buf b;
    md_buf_init(&b, 1024);
    int64_t v[] = {0, 7, -7, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < MD_ARRAY_SIZE(v); i++) {
        val_put_i64(&b, v[i]);
        val_put(&b, ",", 1);
    }
    T_ASSERT_STREQ("0,7,-7,1234567890123,9223372036854775807,-9223372036854775808,",
                   md_buf_str(&b));
    md_buf_free(&b);
    char small[3];
    T_ASSERT_TRUE(!val_int_canon("123", 3, CT_INT4, small, sizeof small)); /* no room */
    T_ASSERT_TRUE(val_int_canon("12", 2, CT_INT4, small, sizeof small));
    T_ASSERT_STREQ("12", small);
}

TEST(bits_grow_and_name_the_nth)
{
    struct bits b = {0};
    T_ASSERT_TRUE(!bits_get(&b, 5));
    T_ASSERT_EQ(0, (long)bits_nth(&b, 1));
    uint64_t set[] = {1, 2, 63, 64, 65, 1000, 100000};
    for (size_t i = 0; i < MD_ARRAY_SIZE(set); i++)
        bits_set(&b, set[i]);
    for (size_t i = 0; i < MD_ARRAY_SIZE(set); i++) {
        T_ASSERT_TRUE(bits_get(&b, set[i]));
        T_ASSERT_EQ((long)set[i], (long)bits_nth(&b, i + 1));
    }
    T_ASSERT_TRUE(!bits_get(&b, 3) && !bits_get(&b, 99999) && !bits_get(&b, 1u << 30));
    T_ASSERT_EQ(0, (long)bits_nth(&b, MD_ARRAY_SIZE(set) + 1));
    bits_clear(&b);
    T_ASSERT_TRUE(!bits_get(&b, 1000));
    T_ASSERT_EQ(0, (long)bits_nth(&b, 1));
    md_free(b.w);
}

TEST(linemap_counts_from_the_last_checkpoint)
{
    struct linemap m = {0};
    T_ASSERT_EQ(8, (long)linemap_line(&m, 7)); /* nothing noted: the header is line 1 */
    /* header on lines 1-2 (a quoted break), records 1..9 on 3..11, record 10 spans 12-13, a
     * blank line 14, records 11.. from 15 */
    linemap_note(&m, 1, 3);
    linemap_note(&m, 11, 15);
    T_ASSERT_EQ(3, (long)linemap_line(&m, 1));
    T_ASSERT_EQ(11, (long)linemap_line(&m, 9));
    T_ASSERT_EQ(12, (long)linemap_line(&m, 10));
    T_ASSERT_EQ(15, (long)linemap_line(&m, 11));
    T_ASSERT_EQ(1014, (long)linemap_line(&m, 1010));
    for (uint64_t r = 12; r < 200; r++) /* many checkpoints: the search still finds each */
        linemap_note(&m, r, r * 10);
    T_ASSERT_EQ(1500, (long)linemap_line(&m, 150));
    T_ASSERT_EQ(1990 + 5, (long)linemap_line(&m, 204));
    md_free(m.rec);
    md_free(m.line);
}

T_MAIN()
