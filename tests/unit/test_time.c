/* test_time.c - md_time.h (clocks, the RFC 3339 writer) and md_rand.h (the one RNG). */
#include <cjson/cJSON.h>

#include "meshd/md_rand.h"
#include "meshd/md_time.h"
#include "t.h"

TEST(fmt_ms_is_rfc3339_utc_with_millis)
{
    char buf[64];

    md_time_fmt_ms(1764054000004LL, buf, sizeof buf);
    T_ASSERT_STREQ(buf, "2025-11-25T07:00:00.004Z");
    md_time_fmt_ms(0, buf, sizeof buf);
    T_ASSERT_STREQ(buf, "1970-01-01T00:00:00.000Z");
    md_time_fmt_ms(951868799999LL, buf, sizeof buf); /* the last ms of a leap February */
    T_ASSERT_STREQ(buf, "2000-02-29T23:59:59.999Z");
    md_time_fmt_ms(1764054000004LL, buf, 11); /* truncated, still terminated */
    T_ASSERT_STREQ(buf, "2025-11-25");
}

TEST(json_time_is_null_when_unknown)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    md_time_json(o, "a", 1764054000004LL);
    md_time_json(o, "b", 0);
    md_time_json(o, "c", -5);
    s = cJSON_PrintUnformatted(o);
    T_ASSERT_STREQ(s, "{\"a\":\"2025-11-25T07:00:00.004Z\",\"b\":null,\"c\":null}");
    cJSON_free(s);
    cJSON_Delete(o);
}

TEST(wall_clock_agrees_with_time)
{
    int64_t before = (int64_t)time(NULL) * 1000, now = md_time_wall_ms();

    T_ASSERT_TRUE(now >= before && now < before + 2000);
    T_ASSERT_TRUE(md_time_clock_ms(CLOCK_MONOTONIC) <= md_time_clock_ms(CLOCK_BOOTTIME) + 1);
}

TEST(rand_upto_stays_in_range_and_covers_it)
{
    unsigned seen[11] = {0};

    for (int i = 0; i < 11000; i++) {
        uint64_t r = md_rand_upto(10);
        T_ASSERT_TRUE(r <= 10);
        seen[r]++;
    }
    for (int i = 0; i <= 10; i++) /* 1000 expected each; 700 is > 9 sigma below */
        T_ASSERT_TRUE(seen[i] > 700);
    T_ASSERT_EQ(md_rand_upto(0), 0);
}

TEST(rand_bits_are_spread)
{
    /* Every bit of md_rand32 is set in about half of the draws (a stuck bit would be 0 or n). */
    unsigned ones[32] = {0};
    const unsigned n = 20000;

    for (unsigned i = 0; i < n; i++) {
        uint32_t r = md_rand32();
        for (int b = 0; b < 32; b++)
            ones[b] += (r >> b) & 1;
    }
    for (int b = 0; b < 32; b++)
        T_ASSERT_TRUE(ones[b] > n * 45 / 100 && ones[b] < n * 55 / 100);
}

TEST(rand_bytes_fill_the_whole_buffer)
{
    unsigned char a[37], b[37];

    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    md_rand_bytes(a, sizeof a);
    md_rand_bytes(b, sizeof b);
    T_ASSERT_TRUE(memcmp(a, b, sizeof a) != 0);
    /* 37 zero bytes at the end would mean a short fill */
    T_ASSERT_TRUE(a[33] | a[34] | a[35] | a[36] | b[33] | b[34] | b[35] | b[36]);
}

T_MAIN()
