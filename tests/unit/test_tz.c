/* test_tz.c - the TZif reader against glibc, plus ISO-8601 parsing and formatting.
 *
 * The differential test walks every TZif file under /usr/share/zoneinfo and compares
 * md_tz_to_local with glibc's localtime_r (TZ set in this test process) at instants every
 * ~9 days from 1970 to 2040 and one second either side of each offset change.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "meshd/md_tz.h"
#include "t.h"

#define ZONEINFO "/usr/share/zoneinfo"

static int64_t iso(const char *s)
{
    int64_t t = 0;
    if (md_time_parse_iso(s, &t) != 0) {
        fprintf(stderr, "bad test instant %s\n", s);
        abort();
    }
    return t;
}

/* --- calendar and ISO ------------------------------------------------------------------ */

TEST(days_from_civil)
{
    T_ASSERT_EQ(0, md_days_from_civil(1970, 1, 1));
    T_ASSERT_EQ(-1, md_days_from_civil(1969, 12, 31));
    T_ASSERT_EQ(11016, md_days_from_civil(2000, 2, 29));
    T_ASSERT_EQ(-719468, md_days_from_civil(0, 3, 1));
    T_ASSERT_EQ(2932896, md_days_from_civil(9999, 12, 31));
    for (int64_t d = -800000; d < 3000000; d += 97) {
        int64_t y;
        int m, dd;
        md_civil_from_days(d, &y, &m, &dd);
        T_ASSERT_EQ(d, md_days_from_civil(y, m, dd));
    }
}

TEST(parse_iso_forms)
{
    int64_t t;
    T_ASSERT_EQ(0, md_time_parse_iso("1970-01-01T00:00:00Z", &t));
    T_ASSERT_EQ(0, t);
    T_ASSERT_EQ(0, md_time_parse_iso("2026-03-08T01:59:00-05:00", &t));
    T_ASSERT_EQ(1772953140, t);
    T_ASSERT_EQ(0, md_time_parse_iso("2026-03-08T06:59:00Z", &t));
    T_ASSERT_EQ(1772953140, t);
    T_ASSERT_EQ(0, md_time_parse_iso("2026-03-08t06:59:00.999z", &t));
    T_ASSERT_EQ(1772953140, t);
    T_ASSERT_EQ(0, md_time_parse_iso("2026-03-08 12:44:00+0545", &t));
    T_ASSERT_EQ(1772953140, t);
    T_ASSERT_EQ(0, md_time_parse_iso("2026-03-08T06:59Z", &t));
    T_ASSERT_EQ(1772953140, t);
    T_ASSERT_EQ(0, md_time_parse_iso("2026-03-08T20:59:00+14", &t));
    T_ASSERT_EQ(1772953140, t);
    T_ASSERT_EQ(0, md_time_parse_iso("1969-12-31T23:59:59Z", &t));
    T_ASSERT_EQ(-1, t);
}

TEST(parse_iso_rejects)
{
    static const char *bad[] = {
        "",
        "2026-03-08",           /* no time, no offset */
        "2026-03-08T01:59:00",  /* no offset */
        "2026-02-29T00:00:00Z", /* not a leap year */
        "2026-13-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2026-03-08T24:00:00Z",
        "2026-03-08T01:60:00Z",
        "2026-03-08T01:59:00+24:00",
        "2026-03-08T01:59:00Zjunk",
        "26-03-08T01:59:00Z",
        "2026-3-8T01:59:00Z",
        "2026-03-08T01:59:00.Z",
        "2026-03-08T1:59Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t;
        if (md_time_parse_iso(bad[i], &t) != MD_EPARSE)
            T_FAIL("accepted \"%s\"", bad[i]);
    }
}

TEST(format_iso)
{
    struct md_tz *ny, *ktm, *lh;
    char buf[64];

    T_ASSERT_EQ(0, md_tz_load("America/New_York", &ny));
    T_ASSERT_EQ(0, md_tz_load("Asia/Kathmandu", &ktm));
    T_ASSERT_EQ(0, md_tz_load("Australia/Lord_Howe", &lh));
    md_tz_format_iso(NULL, 0, buf, sizeof buf);
    T_ASSERT_STREQ("1970-01-01T00:00:00+00:00", buf);
    md_tz_format_iso(ny, iso("2026-03-08T07:00:00Z"), buf, sizeof buf);
    T_ASSERT_STREQ("2026-03-08T03:00:00-04:00", buf);
    md_tz_format_iso(ny, iso("2026-03-08T06:59:59Z"), buf, sizeof buf);
    T_ASSERT_STREQ("2026-03-08T01:59:59-05:00", buf);
    md_tz_format_iso(ktm, iso("2026-01-01T00:00:00Z"), buf, sizeof buf);
    T_ASSERT_STREQ("2026-01-01T05:45:00+05:45", buf);
    md_tz_format_iso(lh, iso("2026-01-01T00:00:00Z"), buf, sizeof buf);
    T_ASSERT_STREQ("2026-01-01T11:00:00+11:00", buf);
    md_tz_format_iso(lh, iso("2026-07-01T00:00:00Z"), buf, sizeof buf);
    T_ASSERT_STREQ("2026-07-01T10:30:00+10:30", buf);
    /* LMT offsets have seconds: printed as +-hh:mm:ss. */
    md_tz_format_iso(ny, iso("1880-01-01T00:00:00Z"), buf, sizeof buf);
    T_ASSERT_STREQ("1879-12-31T19:03:58-04:56:02", buf);
    md_tz_free(ny);
    md_tz_free(ktm);
    md_tz_free(lh);
}

TEST(parse_iso_local)
{
    struct md_tz *ny;
    int64_t t;

    T_ASSERT_EQ(0, md_tz_load("America/New_York", &ny));
    T_ASSERT_EQ(0, md_tz_parse_iso(ny, "2026-03-08T01:30:00", &t));
    T_ASSERT_EQ(iso("2026-03-08T01:30:00-05:00"), t);
    T_ASSERT_EQ(0, md_tz_parse_iso(ny, "2026-03-08T02:30", &t)); /* gap: its end */
    T_ASSERT_EQ(iso("2026-03-08T03:00:00-04:00"), t);
    T_ASSERT_EQ(0, md_tz_parse_iso(ny, "2026-11-01T01:30:00", &t)); /* fold: the first */
    T_ASSERT_EQ(iso("2026-11-01T01:30:00-04:00"), t);
    T_ASSERT_EQ(0, md_tz_parse_iso(ny, "2026-11-01", &t));
    T_ASSERT_EQ(iso("2026-11-01T00:00:00-04:00"), t);
    T_ASSERT_EQ(0, md_tz_parse_iso(ny, "2026-11-01T01:30:00Z", &t));
    T_ASSERT_EQ(iso("2026-11-01T01:30:00Z"), t);
    T_ASSERT_EQ(MD_EPARSE, md_tz_parse_iso(ny, "yesterday", &t));
    md_tz_free(ny);
}

/* --- loading ---------------------------------------------------------------------------- */

TEST(load_rejects)
{
    static const char *bad[] = {"",
                                "/etc/passwd",
                                "../../../etc/passwd",
                                "America/../../etc/passwd",
                                "America/..",
                                "No/Such_Zone",
                                "America",  /* a directory */
                                "zone.tab", /* not TZif */
                                "iso3166.tab",
                                "America/New York"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct md_tz *tz = (struct md_tz *)1;
        int rc = md_tz_load(bad[i], &tz);
        if (rc != MD_ENOTZ)
            T_FAIL("md_tz_load(\"%s\") = %d, want MD_ENOTZ", bad[i], rc);
        T_ASSERT_TRUE(tz == NULL);
    }
}

TEST(utc_without_tzdata)
{
    struct md_tz *tz;
    struct md_civil c;
    int32_t off = 1;
    const char *old = getenv("TZDIR");
    char *saved = old ? strdup(old) : NULL;

    setenv("TZDIR", "/nonexistent-zoneinfo", 1);
    T_ASSERT_EQ(MD_ENOTZ, md_tz_load("Europe/Berlin", &tz));
    T_ASSERT_EQ(0, md_tz_load("UTC", &tz));
    md_tz_to_local(tz, 1772953140, &c, &off);
    T_ASSERT_EQ(0, off);
    T_ASSERT_EQ(6, c.hour);
    T_ASSERT_EQ(59, c.min);
    T_ASSERT_STREQ("UTC", md_tz_name(tz));
    md_tz_free(tz);
    if (saved) {
        setenv("TZDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TZDIR");
    }
}

TEST(posix_footer_forms)
{
    /* Far-future instants use the footer rule: 2100 is past every fat table. */
    struct {
        const char *zone, *utc, *want;
    } cases[] = {
        {"America/New_York", "2100-03-14T06:59:59Z", "2100-03-14T01:59:59-05:00"},
        {"America/New_York", "2100-03-14T07:00:00Z", "2100-03-14T03:00:00-04:00"},
        {"America/New_York", "2100-11-07T05:59:59Z", "2100-11-07T01:59:59-04:00"},
        {"America/New_York", "2100-11-07T06:00:00Z", "2100-11-07T01:00:00-05:00"},
        /* "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0": 30-minute DST, southern. */
        {"Australia/Lord_Howe", "2100-10-02T15:29:59Z", "2100-10-03T01:59:59+10:30"},
        {"Australia/Lord_Howe", "2100-10-02T15:30:00Z", "2100-10-03T02:30:00+11:00"},
        {"Australia/Lord_Howe", "2100-04-03T14:59:59Z", "2100-04-04T01:59:59+11:00"},
        {"Australia/Lord_Howe", "2100-04-03T15:00:00Z", "2100-04-04T01:30:00+10:30"},
        /* Chile: "<-04>4<-03>,M9.1.6/24,M4.1.6/24" (24:00 transition times). */
        {"America/Santiago", "2100-09-05T03:59:59Z", "2100-09-04T23:59:59-04:00"},
        {"America/Santiago", "2100-09-05T04:00:00Z", "2100-09-05T01:00:00-03:00"},
        /* Europe/Dublin: negative DST in winter ("IST-1GMT0,M10.5.0,M3.5.0/1"). */
        {"Europe/Dublin", "2100-01-15T12:00:00Z", "2100-01-15T12:00:00+00:00"},
        {"Europe/Dublin", "2100-07-15T12:00:00Z", "2100-07-15T13:00:00+01:00"},
        /* Greenland: "<-02>2<-01>,M3.5.0/-1,M10.5.0/0" (a negative transition time). */
        {"America/Nuuk", "2100-03-28T00:59:59Z", "2100-03-27T22:59:59-02:00"},
        {"America/Nuuk", "2100-03-28T01:00:00Z", "2100-03-28T00:00:00-01:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct md_tz *tz;
        char buf[64];
        if (md_tz_load(cases[i].zone, &tz) != 0)
            T_FAIL("cannot load %s", cases[i].zone);
        md_tz_format_iso(tz, iso(cases[i].utc), buf, sizeof buf);
        md_tz_free(tz);
        if (strcmp(buf, cases[i].want) != 0)
            T_FAIL("%s at %s: got %s, want %s", cases[i].zone, cases[i].utc, buf, cases[i].want);
    }
}

TEST(from_local_gap_fold)
{
    struct md_tz *ny;
    struct md_civil c = {2026, 3, 8, 2, 30, 0, 0, 0};
    int64_t out[2];

    T_ASSERT_EQ(0, md_tz_load("America/New_York", &ny));
    T_ASSERT_EQ(0, md_tz_from_local(ny, &c, out));
    c = (struct md_civil){2026, 11, 1, 1, 30, 0, 0, 0};
    T_ASSERT_EQ(2, md_tz_from_local(ny, &c, out));
    T_ASSERT_EQ(iso("2026-11-01T01:30:00-04:00"), out[0]);
    T_ASSERT_EQ(iso("2026-11-01T01:30:00-05:00"), out[1]);
    c = (struct md_civil){2026, 7, 1, 12, 0, 0, 0, 0};
    T_ASSERT_EQ(1, md_tz_from_local(ny, &c, out));
    T_ASSERT_EQ(iso("2026-07-01T12:00:00-04:00"), out[0]);
    md_tz_free(ny);
}

TEST(next_change)
{
    struct md_tz *tz;
    int64_t at;
    int32_t b, a;

    T_ASSERT_EQ(0, md_tz_load("Europe/Berlin", &tz));
    T_ASSERT_EQ(1, md_tz_next_change(tz, iso("2026-01-01T00:00:00Z"), &at, &b, &a));
    T_ASSERT_EQ(iso("2026-03-29T01:00:00Z"), at);
    T_ASSERT_EQ(3600, b);
    T_ASSERT_EQ(7200, a);
    T_ASSERT_EQ(1, md_tz_next_change(tz, at, &at, &b, &a));
    T_ASSERT_EQ(iso("2026-10-25T01:00:00Z"), at);
    T_ASSERT_EQ(1, md_tz_next_change(tz, iso("2200-01-01T00:00:00Z"), &at, &b, &a));
    T_ASSERT_EQ(iso("2200-03-30T01:00:00Z"), at);
    md_tz_free(tz);
    T_ASSERT_EQ(0, md_tz_load("Asia/Kolkata", &tz));
    T_ASSERT_EQ(0, md_tz_next_change(tz, iso("2026-01-01T00:00:00Z"), &at, &b, &a));
    md_tz_free(tz);
}

/* --- differential against glibc --------------------------------------------------------- */

struct diff_stats {
    long zones, checks, failures;
};

static int check_instant(const struct md_tz *tz, const char *name, time_t t, struct diff_stats *st)
{
    struct tm tm;
    struct md_civil c;
    int32_t off;
    int64_t back[2];
    int n;

    st->checks++;
    if (localtime_r(&t, &tm) == NULL)
        return 0;
    md_tz_to_local(tz, (int64_t)t, &c, &off);
    if (c.year != tm.tm_year + 1900 || c.mon != tm.tm_mon + 1 || c.mday != tm.tm_mday ||
        c.hour != tm.tm_hour || c.min != tm.tm_min || c.sec != tm.tm_sec || c.wday != tm.tm_wday ||
        c.yday != tm.tm_yday || off != tm.tm_gmtoff) {
        if (st->failures++ < 20)
            fprintf(
                stderr,
                "  %s t=%lld: md %04d-%02d-%02d %02d:%02d:%02d w%d off %d, glibc %04d-%02d-%02d "
                "%02d:%02d:%02d w%d off %ld\n",
                name, (long long)t, c.year, c.mon, c.mday, c.hour, c.min, c.sec, c.wday, off,
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                tm.tm_wday, tm.tm_gmtoff);
        return -1;
    }
    /* Round trip: t must be among the instants that show its local time, and each of them
     * must show it. */
    n = md_tz_from_local(tz, &c, back);
    int seen = 0;
    for (int i = 0; i < n; i++) {
        struct md_civil c2;
        md_tz_to_local(tz, back[i], &c2, NULL);
        seen |= back[i] == (int64_t)t;
        if (c2.year != c.year || c2.mon != c.mon || c2.mday != c.mday || c2.hour != c.hour ||
            c2.min != c.min || c2.sec != c.sec)
            seen = -100;
    }
    if (n == 2 && back[0] >= back[1])
        seen = -100;
    if (seen != 1) {
        if (st->failures++ < 20)
            fprintf(stderr, "  %s t=%lld: from_local round trip failed (n=%d)\n", name,
                    (long long)t, n);
        return -1;
    }
    return 0;
}

static void diff_zone(const char *name, struct diff_stats *st)
{
    struct md_tz *tz;
    const int64_t lo = 0, hi = 2208988800; /* 1970 .. 2040 */
    int64_t at;
    int32_t b, a;

    if (md_tz_load(name, &tz) != 0) {
        if (st->failures++ < 20)
            fprintf(stderr, "  %s: md_tz_load failed\n", name);
        return;
    }
    setenv("TZ", name, 1);
    tzset();
    st->zones++;
    for (int64_t t = lo; t < hi; t += 9 * 86400 + 3671)
        check_instant(tz, name, (time_t)t, st);
    for (int64_t t = lo; md_tz_next_change(tz, t, &at, &b, &a) == 1 && at < hi; t = at) {
        check_instant(tz, name, (time_t)(at - 1), st);
        check_instant(tz, name, (time_t)at, st);
        check_instant(tz, name, (time_t)(at + 1), st);
    }
    md_tz_free(tz);
}

static bool is_tzif(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    bool ok;
    if (f == NULL)
        return false;
    ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "TZif", 4) == 0;
    fclose(f);
    return ok;
}

static void walk(const char *root, const char *rel, struct diff_stats *st)
{
    char path[1024];
    DIR *d;
    struct dirent *de;

    snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
    d = opendir(path);
    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        char sub[1024], full[1200];
        struct stat sb;
        if (de->d_name[0] == '.')
            continue;
        if (!*rel && (strcmp(de->d_name, "posix") == 0 || strcmp(de->d_name, "right") == 0 ||
                      strcmp(de->d_name, "localtime") == 0))
            continue;
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, sub);
        if (stat(full, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode))
            walk(root, sub, st);
        else if (S_ISREG(sb.st_mode) && is_tzif(full))
            diff_zone(sub, st);
    }
    closedir(d);
}

TEST(differential_glibc_all_zones)
{
    struct diff_stats st = {0, 0, 0};
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;

    if (getenv("TZDIR") != NULL && strcmp(getenv("TZDIR"), ZONEINFO) != 0)
        T_SKIP("TZDIR points elsewhere");
    if (!is_tzif(ZONEINFO "/America/New_York"))
        T_SKIP("no tzdata in " ZONEINFO);
    walk(ZONEINFO, "", &st);
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
    fprintf(stderr, "  %ld zones, %ld instants, %ld mismatches\n", st.zones, st.checks,
            st.failures);
    T_ASSERT_TRUE(st.zones > 300);
    T_ASSERT_EQ(0, st.failures);
}

T_MAIN()
