/* test_cron.c - cron parsing, next-fire search (with DST) and lint, as tables.
 *
 * Expected instants were worked out by hand from the zone rules and cross-checked with an
 * independent brute-force implementation over Python's zoneinfo while writing the tables.
 * Dates worth remembering: 2026-03-08 and 2026-11-01 are the US changes (02:00), 2026-03-29
 * and 2026-10-25 the EU ones (01:00 UTC), 2026-04-05 and 2026-10-04 the Australian ones.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "meshd/md_cron.h"
#include "meshd/md_tz.h"
#include "t.h"

static int64_t iso(const char *s)
{
    int64_t t = 0;
    if (md_time_parse_iso(s, &t) != 0) {
        fprintf(stderr, "bad test instant %s\n", s);
        abort();
    }
    return t;
}

/* --- parsing ------------------------------------------------------------------------------ */

#define BITS(lo, hi) ((((uint64_t)1 << ((hi) - (lo) + 1)) - 1) << (lo))
#define B(n) ((uint64_t)1 << (n))

struct parse_case {
    const char *expr;
    uint64_t sec, min, hour, dom, month, dow;
    unsigned flags;
};

enum {
    DS = MD_CRON_DOM_STAR,
    WS = MD_CRON_DOW_STAR,
    MS = MD_CRON_MIN_STAR,
    HS = MD_CRON_HOUR_STAR,
    SEC = MD_CRON_SECONDS,
};

/* clang-format off */ /* one row a case, laid out by hand */
static const struct parse_case parse_cases[] = {
    {"* * * * *", B(0), BITS(0, 59), BITS(0, 23), BITS(1, 31), BITS(1, 12), BITS(0, 6),
     DS | WS | MS | HS},
    {"*/15 * * * *", B(0), B(0) | B(15) | B(30) | B(45), BITS(0, 23), BITS(1, 31), BITS(1, 12),
     BITS(0, 6), DS | WS | MS | HS},
    {"1-5/2 0 1 1 0", B(0), B(1) | B(3) | B(5), B(0), B(1), B(1), B(0), 0},
    {"5/15 3 * * *", B(0), B(5) | B(20) | B(35) | B(50), B(3), BITS(1, 31), BITS(1, 12),
     BITS(0, 6), DS | WS},
    {"0 9 * * MON-FRI", B(0), B(0), B(9), BITS(1, 31), BITS(1, 12), BITS(1, 5), DS},
    {"0 9 * * mon-fri", B(0), B(0), B(9), BITS(1, 31), BITS(1, 12), BITS(1, 5), DS},
    {"0 0 1 Jan,JUL,dec *", B(0), B(0), B(0), B(1), B(1) | B(7) | B(12), BITS(0, 6), WS},
    {"0 0 * MAR-OCT/2 *", B(0), B(0), B(0), BITS(1, 31), B(3) | B(5) | B(7) | B(9), BITS(0, 6),
     DS | WS},
    {"0 0 * * 7", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(0), DS},
    {"0 0 * * 0,7", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(0), DS},
    {"0 0 * * 5-7", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(5) | B(6) | B(0), DS},
    {"0 0 * * FRI-SUN", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(5) | B(6) | B(0), DS},
    {"0 0 * * 5-0", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(5) | B(6) | B(0), DS},
    {"0 0 * * */2", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(0) | B(2) | B(4) | B(6),
     DS | WS},
    {"0 0 * * 1/2", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(1) | B(3) | B(5) | B(0), DS},
    {"0 0 1,15 * 1", B(0), B(0), B(0), B(1) | B(15), BITS(1, 12), B(1), 0},
    {"0 0 */10 * *", B(0), B(0), B(0), B(1) | B(11) | B(21) | B(31), BITS(1, 12), BITS(0, 6),
     DS | WS},
    {"*/60 * * * *", B(0), B(0), BITS(0, 23), BITS(1, 31), BITS(1, 12), BITS(0, 6),
     DS | WS | MS | HS},
    {"0-59/30,10 1-3,5 * * *", B(0), B(0) | B(10) | B(30), BITS(1, 3) | B(5), BITS(1, 31),
     BITS(1, 12), BITS(0, 6), DS | WS},
    {"  0   0\t* *  *  ", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), BITS(0, 6), DS | WS},
    /* six fields: a leading seconds field */
    {"30 */10 * * * *", B(30), B(0) | B(10) | B(20) | B(30) | B(40) | B(50), BITS(0, 23),
     BITS(1, 31), BITS(1, 12), BITS(0, 6), DS | WS | MS | HS | SEC},
    {"*/20 0 0 * * *", B(0) | B(20) | B(40), B(0), B(0), BITS(1, 31), BITS(1, 12), BITS(0, 6),
     DS | WS | SEC},
    /* macros */
    {"@yearly", B(0), B(0), B(0), B(1), B(1), BITS(0, 6), WS},
    {"@annually", B(0), B(0), B(0), B(1), B(1), BITS(0, 6), WS},
    {"@monthly", B(0), B(0), B(0), B(1), BITS(1, 12), BITS(0, 6), WS},
    {"@weekly", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), B(0), DS},
    {"@daily", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), BITS(0, 6), DS | WS},
    {"@midnight", B(0), B(0), B(0), BITS(1, 31), BITS(1, 12), BITS(0, 6), DS | WS},
    {"@HOURLY", B(0), B(0), BITS(0, 23), BITS(1, 31), BITS(1, 12), BITS(0, 6), DS | WS | HS},
    {"@hourly  ", B(0), B(0), BITS(0, 23), BITS(1, 31), BITS(1, 12), BITS(0, 6), DS | WS | HS},
};
/* clang-format on */

TEST(parse_table)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *pc = &parse_cases[i];
        struct md_cron c;
        struct md_error e;
        int rc = md_cron_parse(&c, pc->expr, &e);
        if (rc != 0)
            T_FAIL("\"%s\": rc %d: %s", pc->expr, rc, e.msg);
        if (c.sec != pc->sec || c.min != pc->min || c.hour != pc->hour || c.dom != pc->dom ||
            c.month != pc->month || c.dow != pc->dow || c.flags != pc->flags || c.dst != 0)
            T_FAIL("\"%s\": sec %llx min %llx hour %x dom %x month %x dow %x flags %x", pc->expr,
                   (unsigned long long)c.sec, (unsigned long long)c.min, c.hour, c.dom, c.month,
                   c.dow, c.flags);
    }
}

struct reject_case {
    const char *expr;
    int rc, col;
    const char *msg;
};

/* clang-format off */ /* one row a case, laid out by hand */
static const struct reject_case reject_cases[] = {
    {"61 * * * *", MD_EPARSE, 1, "bad minute field: 61 is out of range 0-59"},
    {"* 24 * * *", MD_EPARSE, 3, "bad hour field: 24 is out of range 0-23"},
    {"* * 0 * *", MD_EPARSE, 5, "bad day-of-month field: 0 is out of range 1-31"},
    {"* * 32 * *", MD_EPARSE, 5, "bad day-of-month field: 32 is out of range 1-31"},
    {"* * * 13 *", MD_EPARSE, 7, "bad month field: 13 is out of range 1-12"},
    {"* * * 0 *", MD_EPARSE, 7, "bad month field: 0 is out of range 1-12"},
    {"* * * * 8", MD_EPARSE, 9, "bad day-of-week field: 8 is out of range 0-7"},
    {"0 0 * * MON-FOO", MD_EPARSE, 13, "bad day-of-week field: unknown name 'FOO'"},
    {"0 0 * JANUARY *", MD_EPARSE, 7, "bad month field: unknown name 'JANUARY'"},
    {"JAN * * * *", MD_EPARSE, 1, "bad minute field: unexpected 'JAN'"},
    {"*/0 * * * *", MD_EPARSE, 3, "bad minute field: step must be at least 1"},
    {"*/ * * * *", MD_EPARSE, 3, "bad minute field: missing step"},
    {"*/x * * * *", MD_EPARSE, 3, "bad minute field: step must be a number"},
    {"5-1 * * * *", MD_EPARSE, 1, "bad minute field: range 5-1 is reversed"},
    {"0 0 * * 5-1", MD_EPARSE, 9, "bad day-of-week field: range 5-1 is reversed"},
    {"1,,2 * * * *", MD_EPARSE, 3, "bad minute field: empty list element"},
    {"1, * * * *", MD_EPARSE, 3, "bad minute field: empty list element"},
    {",1 * * * *", MD_EPARSE, 1, "bad minute field: missing value"},
    {"1-2-3 * * * *", MD_EPARSE, 4, "bad minute field: unexpected '-'"},
    {"*/5x * * * *", MD_EPARSE, 4, "bad minute field: unexpected 'x'"},
    {"** * * * *", MD_EPARSE, 2, "bad minute field: unexpected '*' after '*'"},
    {"0 0 * * 1#2", MD_EPARSE, 10, "bad day-of-week field: unexpected '#'"},
    {"0 0 ? * 1", MD_EPARSE, 5, "bad day-of-month field: '?' is not supported"},
    {"0 0 L * *", MD_EPARSE, 5, "bad day-of-month field: unexpected 'L'"},
    {"0 0 ~ * *", MD_EPARSE, 5, "bad day-of-month field: '~' is not supported"},
    {"-1 * * * *", MD_EPARSE, 1, "bad minute field: unexpected '-'"},
    {"99999999999 * * * *", MD_EPARSE, 1, "bad minute field: 99999999999 is out of range"},
    {"60 * * * * *", MD_EPARSE, 1, "bad second field: 60 is out of range 0-59"},
    {"0 60 * * * *", MD_EPARSE, 3, "bad minute field: 60 is out of range 0-59"},
    {"", MD_EPARSE, 1, "empty cron expression"},
    {"   ", MD_EPARSE, 4, "empty cron expression"},
    {"* * * *", MD_EPARSE, 8, "expected 5 fields"},
    {"* * * * * * *", MD_EPARSE, 13, "too many fields"},
    {"@reboot", MD_EPARSE, 1, "@reboot is not supported"},
    {"@often", MD_EPARSE, 1, "unknown macro '@often'"},
    {"@daily 5", MD_EPARSE, 8, "unexpected text after @daily"},
    {"0 0 30 2 *", MD_ENEVER, 5, "never fires"},
    {"0 0 31 4,6,9,11 *", MD_ENEVER, 5, "never fires"},
    {"0 0 30,31 2 *", MD_ENEVER, 5, "never fires"},
    {"0 0 */30 2 *", 0, 0, ""}, /* '*' day-of-month: days 1 and 31, Feb 1 exists */
    {"0 0 30 2 1", 0, 0, ""},   /* the OR rule: Mondays in February */
    {"0 0 29 2 *", 0, 0, ""},   /* leap years */
};
/* clang-format on */

TEST(reject_table)
{
    for (size_t i = 0; i < sizeof reject_cases / sizeof reject_cases[0]; i++) {
        const struct reject_case *rc = &reject_cases[i];
        struct md_cron c;
        struct md_error e = {0, 0, ""};
        int got = md_cron_parse(&c, rc->expr, &e);
        if (got != rc->rc)
            T_FAIL("\"%s\": rc %d, want %d (%s)", rc->expr, got, rc->rc, e.msg);
        if (got == 0)
            continue;
        if (e.col != rc->col || strstr(e.msg, rc->msg) == NULL || e.line != 0)
            T_FAIL("\"%s\": col %d \"%s\", want col %d \"%s\"", rc->expr, e.col, e.msg, rc->col,
                   rc->msg);
    }
}

/* --- next ----------------------------------------------------------------------------------- */

struct next_case {
    const char *expr, *zone, *from;
    int dst;
    const char *want[8]; /* successive fires, NULL-terminated; "never" for MD_ENEVER */
};

/* clang-format off */ /* one row a case, laid out by hand */
static const struct next_case next_cases[] = {
    /* UTC basics */
    {"*/15 * * * *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-01T00:15:00+00:00", "2026-01-01T00:30:00+00:00", "2026-01-01T00:45:00+00:00",
      "2026-01-01T01:00:00+00:00"}},
    {"*/15 * * * *", "UTC", "2026-01-01T00:14:59Z", 0, {"2026-01-01T00:15:00+00:00"}},
    {"1-5/2 * * * *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-01T00:01:00+00:00", "2026-01-01T00:03:00+00:00", "2026-01-01T00:05:00+00:00",
      "2026-01-01T01:01:00+00:00"}},
    {"5/15 * * * *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-01T00:05:00+00:00", "2026-01-01T00:20:00+00:00", "2026-01-01T00:35:00+00:00",
      "2026-01-01T00:50:00+00:00", "2026-01-01T01:05:00+00:00"}},
    /* 2026-01-02 is a Friday */
    {"0 9 * * MON-FRI", "UTC", "2026-01-02T10:00:00Z", 0,
     {"2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00"}},
    {"0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"}},
    {"0 22 * * 5-0", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-02T22:00:00+00:00", "2026-01-03T22:00:00+00:00", "2026-01-04T22:00:00+00:00",
      "2026-01-09T22:00:00+00:00"}},
    {"@yearly", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"}},
    {"@monthly", "UTC", "2026-01-31T12:00:00Z", 0, {"2026-02-01T00:00:00+00:00"}},
    {"@weekly", "UTC", "2026-01-01T00:00:00Z", 0, {"2026-01-04T00:00:00+00:00"}},
    {"@daily", "UTC", "2026-12-31T23:59:59Z", 0, {"2027-01-01T00:00:00+00:00"}},
    {"@hourly", "UTC", "2026-12-31T23:00:00Z", 0, {"2027-01-01T00:00:00+00:00"}},
    {"0 0 1 jan,JUL *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"}},
    /* seconds */
    {"30 */10 * * * *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-01T00:00:30+00:00", "2026-01-01T00:10:30+00:00", "2026-01-01T00:20:30+00:00"}},
    {"*/20 * * * * *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-01T00:00:20+00:00", "2026-01-01T00:00:40+00:00", "2026-01-01T00:01:00+00:00"}},
    {"59 59 23 31 12 *", "UTC", "2026-06-01T00:00:00Z", 0,
     {"2026-12-31T23:59:59+00:00", "2027-12-31T23:59:59+00:00"}},
    /* the OR rule: 2025-06-02 is a Monday, 06-15 a Sunday */
    {"0 0 1,15 * 1", "UTC", "2025-06-01T00:00:00Z", 0,
     {"2025-06-02T00:00:00+00:00", "2025-06-09T00:00:00+00:00", "2025-06-15T00:00:00+00:00",
      "2025-06-16T00:00:00+00:00", "2025-06-23T00:00:00+00:00", "2025-06-30T00:00:00+00:00",
      "2025-07-01T00:00:00+00:00"}},
    /* '*' in day-of-month means AND: odd days that are Mondays (2024-01-01 is a Monday) */
    {"0 0 */2 * 1", "UTC", "2023-12-31T00:00:00Z", 0,
     {"2024-01-01T00:00:00+00:00", "2024-01-15T00:00:00+00:00", "2024-01-29T00:00:00+00:00",
      "2024-02-05T00:00:00+00:00"}},
    /* '*\/2' in day-of-week counts as '*': any 13th that is a Sun/Tue/Thu/Sat */
    {"0 0 13 * */2", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-01-13T00:00:00+00:00", "2026-06-13T00:00:00+00:00"}},
    /* leap years */
    {"0 0 29 2 *", "UTC", "2025-01-01T00:00:00Z", 0,
     {"2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"}},
    {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", 0, {"2104-02-29T00:00:00+00:00"}},
    {"0 0 29 2 *", "America/New_York", "2025-01-01T00:00:00Z", 0,
     {"2028-02-29T00:00:00-05:00", "2032-02-29T00:00:00-05:00"}},
    /* Feb 29 or any Monday in February (OR); 2028-02-07 is a Monday */
    {"0 12 29 2 1", "UTC", "2027-03-01T00:00:00Z", 0,
     {"2028-02-07T12:00:00+00:00", "2028-02-14T12:00:00+00:00", "2028-02-21T12:00:00+00:00",
      "2028-02-28T12:00:00+00:00", "2028-02-29T12:00:00+00:00", "2029-02-05T12:00:00+00:00"}},
    /* trailing blanks are fine */
    {"0 0 29 2 * ", "UTC", "2044-01-01T00:00:00Z", 0, {"2044-02-29T00:00:00+00:00"}},
    /* month ends: the 31st skips short months */
    {"0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", 0,
     {"2026-03-31T00:00:00+00:00", "2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00",
      "2026-08-31T00:00:00+00:00", "2026-10-31T00:00:00+00:00", "2026-12-31T00:00:00+00:00"}},
    {"0 0 30 * *", "UTC", "2026-01-30T00:00:00Z", 0, {"2026-03-30T00:00:00+00:00"}},
    {"0 0 31 2,4,5 *", "UTC", "2026-01-01T00:00:00Z", 0,
     {"2026-05-31T00:00:00+00:00", "2027-05-31T00:00:00+00:00"}},

    /* America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST */
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 0,
     {"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", MD_CRON_DST_SKIP,
     {"2026-03-09T02:30:00-04:00"}},
    {"0,30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 0,
     {"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
    {"0 2,3 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 0,
     {"2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"}},
    {"59 2 8 3 *", "America/New_York", "2026-03-08T01:59:00-05:00", 0,
     {"2026-03-08T03:00:00-04:00", "2027-03-08T02:59:00-05:00"}},
    {"*/30 * * * *", "America/New_York", "2026-03-08T00:45:00-05:00", 0,
     {"2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00",
      "2026-03-08T03:30:00-04:00"}},
    {"30 * * * *", "America/New_York", "2026-03-08T01:00:00-05:00", 0,
     {"2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"}},
    {"*/15 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", 0,
     {"2026-03-09T02:00:00-04:00"}},
    {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", 0,
     {"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
    {"30 1 * * *", "America/New_York", "2026-11-01T01:10:00-05:00", 0,
     {"2026-11-02T01:30:00-05:00"}},
    {"*/30 * * * *", "America/New_York", "2026-11-01T00:15:00-04:00", 0,
     {"2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
      "2026-11-01T01:00:00-05:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"}},
    {"*/30 * * * *", "America/New_York", "2026-11-01T00:15:00-04:00", MD_CRON_DST_SKIP,
     {"2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00",
      "2026-11-01T02:00:00-05:00"}},
    {"0 * * * *", "America/New_York", "2026-11-01T00:30:00-04:00", 0,
     {"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"}},
    {"30 * * * *", "America/New_York", "2026-11-01T01:10:00-05:00", 0,
     {"2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00"}},
    {"0 1-3 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", 0,
     {"2026-11-01T01:00:00-04:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"}},
    /* a sparse wildcard job: the second pass must not be skipped by the search's jumps */
    {"*/15 1 1 11 0", "America/New_York", "2026-09-05T00:00:00Z", 0,
     {"2026-11-01T01:00:00-04:00", "2026-11-01T01:15:00-04:00", "2026-11-01T01:30:00-04:00",
      "2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T01:15:00-05:00",
      "2026-11-01T01:30:00-05:00", "2026-11-01T01:45:00-05:00"}},
    {"0 30 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", 0,
     {"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
    {"*/20 30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", 0,
     {"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},

    /* Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT */
    {"30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", 0,
     {"2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"}},
    {"30 1 * * *", "Europe/London", "2026-10-24T12:00:00Z", 0,
     {"2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"}},
    {"15,45 * * * *", "Europe/London", "2026-10-25T00:50:00+01:00", 0,
     {"2026-10-25T01:15:00+01:00", "2026-10-25T01:45:00+01:00", "2026-10-25T01:15:00+00:00",
      "2026-10-25T01:45:00+00:00", "2026-10-25T02:15:00+00:00"}},
    /* Europe/Berlin: 2026-03-29 02:00 -> 03:00; 2026-10-25 03:00 -> 02:00 */
    {"30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 0,
     {"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
    {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 0,
     {"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
    {"*/30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 0,
     {"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
      "2026-10-25T02:30:00+01:00", "2026-10-26T02:00:00+01:00"}},
    /* Europe/Dublin (negative DST in the tz data; the same wall clock as London) */
    {"30 1 * * *", "Europe/Dublin", "2026-03-28T12:00:00Z", 0,
     {"2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"}},
    {"30 1 * * *", "Europe/Dublin", "2026-10-24T12:00:00Z", 0,
     {"2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"}},

    /* Australia/Sydney: 2026-04-05 03:00 AEDT -> 02:00 AEST; 2026-10-04 02:00 -> 03:00 */
    {"30 2 * * *", "Australia/Sydney", "2026-04-04T12:00:00+11:00", 0,
     {"2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"}},
    {"30 2 * * *", "Australia/Sydney", "2026-10-03T12:00:00+10:00", 0,
     {"2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"}},
    {"0 * * * *", "Australia/Sydney", "2026-04-05T01:30:00+11:00", 0,
     {"2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00"}},
    /* Australia/Lord_Howe, 30-minute DST: 2026-10-04 02:00 -> 02:30; 2026-04-05 02:00 -> 01:30 */
    {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", 0,
     {"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}},
    {"45 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", 0,
     {"2026-10-04T02:45:00+11:00"}},
    {"*/15 * * * *", "Australia/Lord_Howe", "2026-10-04T01:40:00+10:30", 0,
     {"2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"}},
    {"45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00", 0,
     {"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}},
    {"*/15 1 * * *", "Australia/Lord_Howe", "2026-04-05T01:20:00+11:00", 0,
     {"2026-04-05T01:30:00+11:00", "2026-04-05T01:45:00+11:00", "2026-04-05T01:30:00+10:30",
      "2026-04-05T01:45:00+10:30", "2026-04-06T01:00:00+10:30"}},
    /* Pacific/Chatham, +12:45/+13:45: 2026-09-27 02:45 -> 03:45; 2026-04-05 03:45 -> 02:45 */
    {"0 3 * * *", "Pacific/Chatham", "2026-09-26T12:00:00+12:45", 0,
     {"2026-09-27T03:45:00+13:45", "2026-09-28T03:00:00+13:45"}},
    {"0 3 * * *", "Pacific/Chatham", "2026-04-04T12:00:00+13:45", 0,
     {"2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"}},
    /* America/Santiago: DST at midnight.  2026-09-06 00:00 -04 -> 01:00 -03;
     * 2026-04-05 00:00 -03 -> 2026-04-04 23:00 -04 */
    {"@daily", "America/Santiago", "2026-09-05T12:00:00-04:00", 0,
     {"2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"}},
    {"30 0 * * *", "America/Santiago", "2026-09-05T12:00:00-04:00", 0,
     {"2026-09-06T01:00:00-03:00", "2026-09-07T00:30:00-03:00"}},
    {"30 23 * * *", "America/Santiago", "2026-04-04T12:00:00-03:00", 0,
     {"2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"}},
    {"0 0 * * *", "America/Santiago", "2026-04-04T12:00:00-03:00", 0,
     {"2026-04-05T00:00:00-04:00"}}, /* the repeated hour is 23:00 on the 4th */
    /* America/Havana: 2026-03-08 00:00 -> 01:00; no change in late 2026 (Cuba kept DST);
     * 2027-11-07 01:00 CDT -> 00:00 CST */
    {"0 0 * * *", "America/Havana", "2026-03-07T12:00:00-05:00", 0,
     {"2026-03-08T01:00:00-04:00", "2026-03-09T00:00:00-04:00"}},
    {"0 0 * * *", "America/Havana", "2027-11-06T12:00:00-04:00", 0,
     {"2027-11-07T00:00:00-04:00", "2027-11-08T00:00:00-05:00"}},
    {"*/30 0 * * *", "America/Havana", "2027-11-06T12:00:00-04:00", 0,
     {"2027-11-07T00:00:00-04:00", "2027-11-07T00:30:00-04:00", "2027-11-07T00:00:00-05:00",
      "2027-11-07T00:30:00-05:00", "2027-11-08T00:00:00-05:00"}},
    /* America/Sao_Paulo had DST at midnight until 2019: 2018-11-04 00:00 -> 01:00 */
    {"0 0 * * *", "America/Sao_Paulo", "2018-11-03T12:00:00-03:00", 0,
     {"2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"}},
    {"0 0 * * *", "America/Sao_Paulo", "2018-11-03T12:00:00-03:00", MD_CRON_DST_SKIP,
     {"2018-11-05T00:00:00-02:00"}},
    /* fixed offsets with minutes */
    {"0 0 * * *", "Asia/Kathmandu", "2026-01-01T00:00:00Z", 0,
     {"2026-01-02T00:00:00+05:45", "2026-01-03T00:00:00+05:45"}},
    {"*/45 * * * *", "Asia/Kathmandu", "2026-01-01T00:00:00+05:45", 0,
     {"2026-01-01T00:45:00+05:45", "2026-01-01T01:00:00+05:45"}},
    {"30 9 * * 1-5", "Asia/Kolkata", "2026-01-02T03:59:59Z", 0,
     {"2026-01-02T09:30:00+05:30", "2026-01-05T09:30:00+05:30"}},
    {"30 9 * * 1-5", "Asia/Kolkata", "2026-01-02T04:00:00Z", 0, /* strictly after */
     {"2026-01-05T09:30:00+05:30", "2026-01-06T09:30:00+05:30"}},
    {"0 12 * * *", "Australia/Eucla", "2026-01-01T00:00:00Z", 0,
     {"2026-01-01T12:00:00+08:45"}},
    {"0 0 1 1 *", "UTC", "2026-01-01T00:00:00Z", 0, {"2027-01-01T00:00:00+00:00"}},
};
/* clang-format on */

static void check_next(const struct next_case *nc)
{
    struct md_cron c;
    struct md_error e;
    struct md_tz *tz;
    int64_t t = iso(nc->from);
    char buf[64];

    if (md_cron_parse(&c, nc->expr, &e) != 0)
        T_FAIL("\"%s\": %s", nc->expr, e.msg);
    c.dst = (uint8_t)nc->dst;
    if (md_tz_load(nc->zone, &tz) != 0)
        T_FAIL("cannot load %s", nc->zone);
    for (int i = 0; i < 8 && nc->want[i] != NULL; i++) {
        int rc = md_cron_next(&c, tz, t, &t);
        if (strcmp(nc->want[i], "never") == 0) {
            md_tz_free(tz);
            T_ASSERT_EQ(MD_ENEVER, rc);
            return;
        }
        if (rc != 0) {
            md_tz_free(tz);
            T_FAIL("\"%s\" %s from %s #%d: rc %d", nc->expr, nc->zone, nc->from, i, rc);
        }
        md_tz_format_iso(tz, t, buf, sizeof buf);
        if (strcmp(buf, nc->want[i]) != 0) {
            md_tz_free(tz);
            T_FAIL("\"%s\" %s from %s #%d: got %s, want %s", nc->expr, nc->zone, nc->from, i, buf,
                   nc->want[i]);
        }
    }
    md_tz_free(tz);
}

TEST(next_table)
{
    for (size_t i = 0; i < sizeof next_cases / sizeof next_cases[0]; i++)
        check_next(&next_cases[i]);
}

TEST(next_null_zone_is_utc)
{
    struct md_cron c;
    struct md_error e;
    int64_t t;
    T_ASSERT_EQ(0, md_cron_parse(&c, "0 12 * * *", &e));
    T_ASSERT_EQ(0, md_cron_next(&c, NULL, iso("2026-01-01T12:00:00Z"), &t));
    T_ASSERT_EQ(iso("2026-01-02T12:00:00Z"), t);
}

TEST(next_strictly_after)
{
    /* From a fire instant, the next one is the following fire, never the same. */
    struct md_cron c;
    struct md_error e;
    struct md_tz *tz;
    int64_t t = iso("2026-01-01T00:00:00Z"), prev;
    T_ASSERT_EQ(0, md_cron_parse(&c, "*/7 * * * *", &e));
    T_ASSERT_EQ(0, md_tz_load("America/New_York", &tz));
    for (int i = 0; i < 200000; i++) {
        prev = t;
        T_ASSERT_EQ(0, md_cron_next(&c, tz, prev, &t));
        T_ASSERT_TRUE(t > prev);
        T_ASSERT_TRUE(t - prev <= 2 * 3600);
    }
    md_tz_free(tz);
}

TEST(next_never_in_skip_mode_far_future)
{
    /* 2100-02-29 does not exist and the next Feb 29 after 2096 is 2104: within the horizon. */
    struct md_cron c;
    struct md_error e;
    int64_t t;
    T_ASSERT_EQ(0, md_cron_parse(&c, "0 0 29 2 *", &e));
    T_ASSERT_EQ(0, md_cron_next(&c, NULL, iso("2096-02-29T00:00:00Z"), &t));
    T_ASSERT_EQ(iso("2104-02-29T00:00:00Z"), t);
    /* Feb 29 that is a Monday (AND through a '*' step): 2044, then 2072. */
    T_ASSERT_EQ(0, md_cron_parse(&c, "0 0 */28 2 1", &e)); /* days 1 and 29 */
    T_ASSERT_EQ(0, md_cron_next(&c, NULL, iso("2044-03-01T00:00:00Z"), &t));
    T_ASSERT_EQ(iso("2049-02-01T00:00:00Z"), t);
    /* Nothing past the horizon: INT64 extremes do not overflow. */
    T_ASSERT_EQ(MD_ENEVER, md_cron_next(&c, NULL, INT64_MAX - 5, &t));
    T_ASSERT_EQ(MD_ENEVER, md_cron_next(&c, NULL, INT64_MIN + 5, &t));
}

TEST(next_performance)
{
    static const char *exprs[] = {"0 0 29 2 *",  "0 0 29 2 1", "59 23 31 12 *", "0 0 31 * *",
                                  "*/5 * * * *", "30 2 * * *", "0 0 */28 2 1"};
    struct md_tz *tz;
    clock_t c0 = clock();
    long calls = 0;

    T_ASSERT_EQ(0, md_tz_load("America/New_York", &tz));
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        struct md_cron c;
        struct md_error e;
        int64_t t = iso("1970-01-01T00:00:00Z");
        T_ASSERT_EQ(0, md_cron_parse(&c, exprs[i], &e));
        for (int k = 0; k < 5000; k++, calls++)
            if (md_cron_next(&c, tz, t, &t) != 0)
                break;
    }
    double secs = (double)(clock() - c0) / CLOCKS_PER_SEC;
    fprintf(stderr, "  %ld calls, %.2f us per call\n", calls, secs * 1e6 / (double)calls);
    T_ASSERT_TRUE(secs < 5.0); /* generous: sanitizers; typical is a few us per call */
    md_tz_free(tz);
}

/* --- lint --------------------------------------------------------------------------------- */

struct lint_log {
    int n;
    int col[8];
    char msg[8][240];
};

static void collect(void *ud, int col, const char *msg)
{
    struct lint_log *l = ud;
    if (l->n < 8) {
        l->col[l->n] = col;
        snprintf(l->msg[l->n], sizeof l->msg[0], "%s", msg);
        l->n++;
    }
}

static struct lint_log lint(const char *expr, const char *zone)
{
    struct md_cron c;
    struct md_error e;
    struct md_tz *tz = NULL;
    struct lint_log l;

    memset(&l, 0, sizeof l);
    if (md_cron_parse(&c, expr, &e) != 0) {
        fprintf(stderr, "lint: %s: %s\n", expr, e.msg);
        abort();
    }
    if (zone != NULL && md_tz_load(zone, &tz) != 0)
        abort();
    md_cron_lint(&c, expr, tz, collect, &l);
    md_tz_free(tz);
    return l;
}

TEST(lint_or_rule)
{
    struct lint_log l = lint("0 0 1,15 * MON", NULL);
    T_ASSERT_EQ(1, l.n);
    T_ASSERT_EQ(5, l.col[0]);
    T_ASSERT_CONTAINS(l.msg[0], "OR rule");
    T_ASSERT_EQ(0, lint("0 0 */2 * MON", NULL).n);
    T_ASSERT_EQ(0, lint("0 0 1 * *", NULL).n);
    T_ASSERT_EQ(0, lint("@weekly", NULL).n);
}

TEST(lint_uneven_step)
{
    struct lint_log l = lint("*/7 * * * *", NULL);
    T_ASSERT_EQ(1, l.n);
    T_ASSERT_EQ(1, l.col[0]);
    T_ASSERT_CONTAINS(l.msg[0], "fires at :56 then :00");
    l = lint("0 */5 * * *", NULL);
    T_ASSERT_EQ(1, l.n);
    T_ASSERT_EQ(3, l.col[0]);
    T_ASSERT_CONTAINS(l.msg[0], "fires at 20:00 then 00:00");
    l = lint("*/45 0 * * * *", NULL);
    T_ASSERT_EQ(1, l.n);
    T_ASSERT_CONTAINS(l.msg[0], "second");
    T_ASSERT_EQ(0, lint("*/15 */6 * * *", NULL).n);
    T_ASSERT_EQ(0, lint("*/20 */2 * * *", NULL).n);
}

TEST(lint_dst_gap)
{
    struct lint_log l = lint("30 2 * * *", "America/New_York");
    T_ASSERT_EQ(1, l.n);
    T_ASSERT_EQ(1, l.col[0]);
    T_ASSERT_CONTAINS(l.msg[0], "02:30 falls in the DST gap of America/New_York");
    T_ASSERT_CONTAINS(l.msg[0], "right after the jump");
    l = lint("15 2 * * *", "Australia/Lord_Howe");
    T_ASSERT_EQ(1, l.n);
    T_ASSERT_CONTAINS(l.msg[0], "(02:00-02:30 does not exist)");
    T_ASSERT_EQ(0, lint("30 2 * * *", "UTC").n);
    T_ASSERT_EQ(0, lint("30 2 * * *", "Asia/Kolkata").n);
    T_ASSERT_EQ(0, lint("30 3 * * *", "America/New_York").n);
    T_ASSERT_EQ(0, lint("*/30 * * * *", "America/New_York").n); /* wildcard: no compensation */
}

T_MAIN()
