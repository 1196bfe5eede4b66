/* tz.c - IANA time zones from TZif files (RFC 8536), without touching the process's TZ.
 *
 * A zone is its transition table (the 64-bit section of a v2+ file, the 32-bit one of a v1
 * file) plus the POSIX TZ rule from the footer, which covers every instant at or after the
 * last transition.  Instants before the first transition use the first standard-time type,
 * as glibc does (RFC 8536 says type 0; with zic's output the two agree).
 *
 * Leap-second records ("right/" zones) are read past and ignored: meshd works in POSIX time.
 */
#include "meshd/md_tz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"

#define TZ_MAX_FILE (512 * 1024) /* the biggest real TZif file is a few KiB */
#define SECS_PER_DAY 86400

/* One date of a POSIX rule ("M3.2.0/2", "J60", "59/-1"). */
struct rule_date {
    char kind; /* 'J': Julian 1..365 without Feb 29, 'N': zero-based 0..365, 'M': month.week.day */
    int day;   /* J/N: the day number; M: weekday 0..6 */
    int week;  /* M: 1..5 (5 = last) */
    int mon;   /* M: 1..12 */
    int32_t time; /* local seconds after midnight, -167h..+167h (RFC 8536 extension) */
};

struct posix_rule {
    int32_t std_off; /* seconds east of UTC (POSIX writes them west: "EST5" is -18000) */
    int32_t dst_off;
    bool has_dst;
    struct rule_date start, end; /* DST starts at start (std time), ends at end (dst time) */
};

struct md_tz {
    char *name;
    int64_t *trans; /* ascending transition instants */
    uint8_t *tidx;  /* type index per transition */
    size_t ntrans;
    int32_t *utoff; /* per type */
    uint8_t *isdst;
    size_t ntypes;
    int32_t pre_off; /* offset before the first transition */
    bool has_rule;
    struct posix_rule rule;
};

/* --- calendar ------------------------------------------------------------------------- */

/* Howard Hinnant's days_from_civil / civil_from_days: exact over the whole int64 range that
 * callers use (years within +-1e9). */
int64_t md_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

void md_civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int md_days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Local seconds (t + offset) -> civil. */
static void civil_from_local(int64_t l, struct md_civil *c)
{
    int64_t days = md_floor_div(l, SECS_PER_DAY);
    int64_t sod = l - days * SECS_PER_DAY;
    int64_t y;

    md_civil_from_days(days, &y, &c->mon, &c->mday);
    c->year = (int)y;
    c->hour = (int)(sod / 3600);
    c->min = (int)(sod / 60 % 60);
    c->sec = (int)(sod % 60);
    c->wday = (int)(((days + 4) % 7 + 7) % 7); /* 1970-01-01 was a Thursday */
    c->yday = (int)(days - md_days_from_civil(y, 1, 1));
}

static int64_t local_from_civil(const struct md_civil *c)
{
    return md_days_from_civil(c->year, c->mon, c->mday) * SECS_PER_DAY + (int64_t)c->hour * 3600 +
           (int64_t)c->min * 60 + c->sec;
}

/* --- POSIX TZ rules --------------------------------------------------------------------- */

/* The instant (UTC) at which rule date rd happens in year y, given the offset then in force. */
static int64_t rule_instant(const struct rule_date *rd, int64_t y, int32_t off)
{
    int64_t days;

    switch (rd->kind) {
    case 'J':
        days = md_days_from_civil(y, 1, 1) + rd->day - 1 + (is_leap(y) && rd->day >= 60);
        break;
    case 'N':
        days = md_days_from_civil(y, 1, 1) + rd->day;
        break;
    default: {
        int64_t first = md_days_from_civil(y, rd->mon, 1);
        int wd1 = (int)(((first + 4) % 7 + 7) % 7);
        int dim = md_days_in_month(y, rd->mon);
        int mday = 1 + (rd->day - wd1 + 7) % 7 + 7 * (rd->week - 1);
        while (mday > dim)
            mday -= 7;
        days = first + mday - 1;
        break;
    }
    }
    return days * SECS_PER_DAY + rd->time - off;
}

/* The rule's offset changes around year y: up to 6 events (y-1..y+1), in year order and
 * within a year start then end.  Returns how many. */
struct rule_event {
    int64_t at;
    int32_t off; /* offset from `at` on */
};

static int rule_events(const struct posix_rule *r, int64_t y, struct rule_event ev[6])
{
    int n = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s = rule_instant(&r->start, yy, r->std_off);
        int64_t e = rule_instant(&r->end, yy, r->dst_off);
        if (s <= e) {
            ev[n++] = (struct rule_event){s, r->dst_off};
            ev[n++] = (struct rule_event){e, r->std_off};
        } else {
            ev[n++] = (struct rule_event){e, r->std_off};
            ev[n++] = (struct rule_event){s, r->dst_off};
        }
    }
    return n;
}

static int64_t utc_year(int64_t t)
{
    int64_t y;
    int m, d;
    md_civil_from_days(md_floor_div(t, SECS_PER_DAY), &y, &m, &d);
    return y;
}

static int32_t rule_offset(const struct posix_rule *r, int64_t t)
{
    struct rule_event ev[6];
    int n, best = -1;

    if (!r->has_dst)
        return r->std_off;
    n = rule_events(r, utc_year(t), ev);
    /* The latest event at or before t wins; on a tie the later one in year order, so that an
     * all-year DST rule ("EST5EDT4,0/0,J365/25") stays in DST across New Year. */
    for (int i = 0; i < n; i++)
        if (ev[i].at <= t && (best < 0 || ev[i].at >= ev[best].at))
            best = i;
    return best >= 0 ? ev[best].off : r->std_off;
}

/* POSIX TZ string parsing.  Grammar (POSIX.1-2017 8.3, with RFC 8536's extensions):
 *   tz     = std offset [ dst [ offset ] [ "," date [ "/" time ] "," date [ "/" time ] ] ]
 *   std    = 3*ALPHA | "<" 1*(ALNUM | "+" | "-") ">"          (dst likewise)
 *   offset = [ "+" | "-" ] hh [ ":" mm [ ":" ss ] ]            (hours 0..24; positive = west)
 *   time   = [ "+" | "-" ] hhh [ ":" mm [ ":" ss ] ]           (hours -167..167)
 *   date   = "J" n (1..365) | n (0..365) | "M" m "." w "." d   (m 1..12, w 1..5, d 0..6)
 */
static bool parse_name(const char **pp)
{
    const char *p = *pp;
    if (*p == '<') {
        p++;
        const char *b = p;
        while (*p && *p != '>') {
            if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                  (*p >= '0' && *p <= '9') || *p == '+' || *p == '-'))
                return false;
            p++;
        }
        if (*p != '>' || p == b)
            return false;
        *pp = p + 1;
        return true;
    }
    const char *b = p;
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    if (p - b < 3)
        return false;
    *pp = p;
    return true;
}

static bool parse_num(const char **pp, int maxdigits, int *out)
{
    const char *p = *pp;
    int v = 0, n = 0;
    while (*p >= '0' && *p <= '9') {
        if (++n > maxdigits)
            return false;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (n == 0)
        return false;
    *out = v;
    *pp = p;
    return true;
}

/* [+-]h[h..][:mm[:ss]] -> seconds (sign applied). */
static bool parse_hms(const char **pp, int maxhours, int32_t *out)
{
    const char *p = *pp;
    int sign = 1, h, m = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!parse_num(&p, 3, &h) || h > maxhours)
        return false;
    if (*p == ':') {
        p++;
        if (!parse_num(&p, 2, &m) || m > 59)
            return false;
        if (*p == ':') {
            p++;
            if (!parse_num(&p, 2, &s) || s > 59)
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + s);
    *pp = p;
    return true;
}

static bool parse_date(const char **pp, struct rule_date *rd)
{
    const char *p = *pp;
    if (*p == 'J') {
        p++;
        rd->kind = 'J';
        if (!parse_num(&p, 3, &rd->day) || rd->day < 1 || rd->day > 365)
            return false;
    } else if (*p == 'M') {
        p++;
        rd->kind = 'M';
        if (!parse_num(&p, 2, &rd->mon) || rd->mon < 1 || rd->mon > 12 || *p++ != '.' ||
            !parse_num(&p, 1, &rd->week) || rd->week < 1 || rd->week > 5 || *p++ != '.' ||
            !parse_num(&p, 1, &rd->day) || rd->day > 6)
            return false;
    } else {
        rd->kind = 'N';
        if (!parse_num(&p, 3, &rd->day) || rd->day > 365)
            return false;
    }
    rd->time = 2 * 3600;
    if (*p == '/') {
        p++;
        if (!parse_hms(&p, 167, &rd->time))
            return false;
    }
    *pp = p;
    return true;
}

static bool parse_posix_tz(const char *s, struct posix_rule *r)
{
    const char *p = s;
    int32_t v;

    memset(r, 0, sizeof *r);
    if (!parse_name(&p) || !parse_hms(&p, 24, &v))
        return false;
    r->std_off = -v;
    if (*p == '\0')
        return true;
    if (!parse_name(&p))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!parse_hms(&p, 24, &v))
            return false;
        r->dst_off = -v;
    }
    if (*p == '\0') {
        /* No rule: the US rules, as glibc's fallback does. */
        r->start = (struct rule_date){'M', 0, 2, 3, 7200};
        r->end = (struct rule_date){'M', 0, 1, 11, 7200};
        return true;
    }
    if (*p++ != ',' || !parse_date(&p, &r->start) || *p++ != ',' || !parse_date(&p, &r->end))
        return false;
    return *p == '\0';
}

/* --- TZif ------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_hdr {
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static bool read_hdr(const unsigned char *p, size_t len, struct tzif_hdr *h, char *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return false;
    *version = (char)p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > 256 || h->timecnt > 100000 || h->leapcnt > 100000 ||
        h->charcnt > 100000 || (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return false;
    return true;
}

static size_t data_len(const struct tzif_hdr *h, int tsize)
{
    return (size_t)h->timecnt * (size_t)tsize + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (size_t)(tsize + 4) + h->isstdcnt + h->isutcnt;
}

static void tz_release(struct md_tz *tz)
{
    md_free(tz->name);
    md_free(tz->trans);
    md_free(tz->tidx);
    md_free(tz->utoff);
    md_free(tz->isdst);
    md_free(tz);
}

/* Parses a whole TZif image into tz.  Returns 0 or MD_ENOTZ. */
static int parse_tzif(struct md_tz *tz, const unsigned char *buf, size_t len)
{
    struct tzif_hdr h;
    char version;
    const unsigned char *p = buf;
    int tsize = 4;

    if (!read_hdr(p, len, &h, &version))
        return MD_ENOTZ;
    if (version >= '2') {
        size_t skip = 44 + data_len(&h, 4);
        if (skip > len || !read_hdr(p + skip, len - skip, &h, &version))
            return MD_ENOTZ;
        p += skip;
        len -= skip;
        tsize = 8;
    }
    size_t need = 44 + data_len(&h, tsize);
    if (need > len)
        return MD_ENOTZ;

    const unsigned char *tp = p + 44;
    const unsigned char *ip = tp + (size_t)h.timecnt * (size_t)tsize;
    const unsigned char *yp = ip + h.timecnt;

    tz->ntrans = h.timecnt;
    tz->ntypes = h.typecnt;
    tz->trans = md_xmalloc(sizeof(int64_t) * (h.timecnt ? h.timecnt : 1));
    tz->tidx = md_xmalloc(h.timecnt ? h.timecnt : 1);
    tz->utoff = md_xmalloc(sizeof(int32_t) * h.typecnt);
    tz->isdst = md_xmalloc(h.typecnt);
    for (uint32_t i = 0; i < h.timecnt; i++) {
        tz->trans[i] = tsize == 8 ? be64(tp + (size_t)i * 8) : (int32_t)be32(tp + (size_t)i * 4);
        tz->tidx[i] = ip[i];
        if (ip[i] >= h.typecnt || (i > 0 && tz->trans[i] <= tz->trans[i - 1]))
            return MD_ENOTZ;
    }
    for (uint32_t i = 0; i < h.typecnt; i++) {
        int32_t off = (int32_t)be32(yp + (size_t)i * 6);
        if (off == INT32_MIN || off < -25 * 3600 || off > 26 * 3600 || yp[i * 6 + 4] > 1)
            return MD_ENOTZ;
        tz->utoff[i] = off;
        tz->isdst[i] = yp[i * 6 + 4];
    }
    /* glibc: before the first transition, the first non-DST type (or type 0). */
    tz->pre_off = tz->utoff[0];
    for (uint32_t i = 0; i < h.typecnt; i++) {
        if (!tz->isdst[i]) {
            tz->pre_off = tz->utoff[i];
            break;
        }
    }

    /* Footer: "\n<TZ string>\n" (v2+ only). */
    if (tsize == 8 && len > need && p[need] == '\n') {
        const unsigned char *f = p + need + 1;
        const unsigned char *e = memchr(f, '\n', len - need - 1);
        if (e != NULL && e > f && (size_t)(e - f) < 256) {
            char s[256];
            memcpy(s, f, (size_t)(e - f));
            s[e - f] = '\0';
            if (!parse_posix_tz(s, &tz->rule))
                return MD_ENOTZ;
            tz->has_rule = true;
        }
    }
    return 0;
}

static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255 || name[0] == '/' || strstr(name, "..") != NULL)
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '/' || ch == '_' || ch == '-' || ch == '+' || ch == '.'))
            return false;
    }
    return true;
}

static bool is_utc_name(const char *name)
{
    return strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0 || strcmp(name, "GMT") == 0 ||
           strcmp(name, "Etc/GMT") == 0;
}

/* Reads the whole file; returns 0, MD_ENOTZ (missing, a directory, too big) or -errno. */
static int read_file(const char *path, unsigned char **out, size_t *outlen)
{
    int fd, rc = 0;
    struct stat st;
    unsigned char *buf = NULL;
    size_t len = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG ? MD_ENOTZ : -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > TZ_MAX_FILE) {
        rc = MD_ENOTZ;
        goto out;
    }
    buf = md_xmalloc((size_t)st.st_size);
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    *out = buf;
    *outlen = len;
    buf = NULL;
out:
    md_free(buf);
    close(fd);
    return rc;
}

int md_tz_load(const char *name, struct md_tz **out)
{
    const char *dir = getenv("TZDIR");
    char *path = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    struct md_tz *tz;
    int rc;

    *out = NULL;
    if (name == NULL || !name_ok(name))
        return MD_ENOTZ;
    tz = md_xcalloc(1, sizeof *tz);
    tz->name = md_xstrdup(name);
    if (dir == NULL || *dir == '\0')
        dir = "/usr/share/zoneinfo";
    path = md_xasprintf("%s/%s", dir, name);
    rc = read_file(path, &buf, &len);
    if (rc == MD_ENOTZ && is_utc_name(name)) {
        /* UTC works on a machine without tzdata (a slim container image). */
        tz->ntypes = 1;
        tz->utoff = md_xcalloc(1, sizeof(int32_t));
        tz->isdst = md_xcalloc(1, 1);
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    rc = parse_tzif(tz, buf, len);
out:
    md_free(buf);
    md_free(path);
    if (rc < 0) {
        tz_release(tz);
        return rc;
    }
    *out = tz;
    return 0;
}

void md_tz_free(struct md_tz *tz)
{
    if (tz != NULL)
        tz_release(tz);
}

const char *md_tz_name(const struct md_tz *tz)
{
    return tz ? tz->name : "UTC";
}

/* --- conversions ------------------------------------------------------------------------ */

int32_t md_tz_offset(const struct md_tz *tz, int64_t t)
{
    size_t lo, hi;

    if (tz == NULL)
        return 0;
    if (tz->ntrans == 0 || t < tz->trans[0])
        return tz->pre_off;
    if (t >= tz->trans[tz->ntrans - 1]) {
        if (tz->has_rule)
            return rule_offset(&tz->rule, t);
        return tz->utoff[tz->tidx[tz->ntrans - 1]];
    }
    /* Largest i with trans[i] <= t. */
    lo = 0;
    hi = tz->ntrans - 1;
    while (lo + 1 < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->trans[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->utoff[tz->tidx[lo]];
}

/* The first candidate instant > t where the offset may change: the next table transition, or
 * past the table, the next rule event.  Returns false if there is none. */
static bool next_candidate(const struct md_tz *tz, int64_t t, int64_t *at)
{
    if (tz->ntrans > 0 && t < tz->trans[tz->ntrans - 1]) {
        size_t lo = 0, hi = tz->ntrans - 1; /* first index with trans > t */
        if (t < tz->trans[0]) {
            *at = tz->trans[0];
            return true;
        }
        while (lo + 1 < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (tz->trans[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        *at = tz->trans[hi];
        return true;
    }
    if (!tz->has_rule || !tz->rule.has_dst)
        return false;
    for (int64_t y = utc_year(t);; y++) {
        struct rule_event ev[6];
        int n = rule_events(&tz->rule, y, ev);
        int64_t best = INT64_MAX;
        for (int i = 0; i < n; i++)
            if (ev[i].at > t && ev[i].at < best)
                best = ev[i].at;
        if (best != INT64_MAX) {
            *at = best;
            return true;
        }
        if (y > utc_year(t) + 2)
            return false;
    }
}

int md_tz_next_change(const struct md_tz *tz, int64_t t, int64_t *when, int32_t *before,
                      int32_t *after)
{
    int64_t at;

    if (tz == NULL)
        return 0;
    /* Skip candidates that change only the abbreviation or the DST flag.  Bounded: ~800 rule
     * events are 400 years. */
    for (int i = 0; i < 2000; i++) {
        if (!next_candidate(tz, t, &at))
            return 0;
        int32_t b = md_tz_offset(tz, at - 1), a = md_tz_offset(tz, at);
        if (a != b) {
            *when = at;
            *before = b;
            *after = a;
            return 1;
        }
        t = at;
    }
    return 0;
}

void md_tz_to_local(const struct md_tz *tz, int64_t t, struct md_civil *out, int32_t *utoff)
{
    int32_t off = md_tz_offset(tz, t);
    civil_from_local(t + off, out);
    if (utoff != NULL)
        *utoff = off;
}

/* Every instant whose local time is l.  Offsets stay within +-26 h, so only changes within
 * two days either side of l matter: walk the segments of constant offset there. */
static int from_local_seconds(const struct md_tz *tz, int64_t l, int64_t out[2])
{
    int64_t s = l - 2 * SECS_PER_DAY, e;
    int n = 0;
    int32_t off = md_tz_offset(tz, s), b, a;

    for (;;) {
        bool more = md_tz_next_change(tz, s, &e, &b, &a) == 1 && e <= l + 2 * SECS_PER_DAY;
        int64_t t = l - off;
        if (t >= s && (!more || t < e) && n < 2)
            out[n++] = t;
        if (!more)
            break;
        s = e;
        off = a;
    }
    return n;
}

int md_tz_from_local(const struct md_tz *tz, const struct md_civil *c, int64_t out[2])
{
    int64_t l = local_from_civil(c);
    if (tz == NULL) {
        out[0] = l;
        return 1;
    }
    return from_local_seconds(tz, l, out);
}

/* --- ISO-8601 --------------------------------------------------------------------------- */

size_t md_tz_format_iso(const struct md_tz *tz, int64_t t, char *buf, size_t len)
{
    struct md_civil c;
    int32_t off;
    int n;

    md_tz_to_local(tz, t, &c, &off);
    char sign = off < 0 ? '-' : '+';
    int32_t a = off < 0 ? -off : off;
    if (a % 60 != 0)
        n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d:%02d", c.year, c.mon,
                     c.mday, c.hour, c.min, c.sec, sign, a / 3600, a / 60 % 60, a % 60);
    else
        n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", c.year, c.mon, c.mday,
                     c.hour, c.min, c.sec, sign, a / 3600, a / 60 % 60);
    if (n < 0)
        return 0;
    return (size_t)n < len ? (size_t)n : (len ? len - 1 : 0);
}

static bool digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*pp)[i];
        if (ch < '0' || ch > '9')
            return false;
        v = v * 10 + (ch - '0');
    }
    *pp += n;
    *out = v;
    return true;
}

/* Grammar accepted:
 *   date   = YYYY "-" MM "-" DD
 *   time   = hh ":" mm [ ":" ss [ ("." | ",") 1*DIGIT ] ]
 *   offset = "Z" | ("+" | "-") hh [ [":"] mm ]
 *   iso    = date [ ("T" | "t" | " ") time [ offset ] ]
 * Returns 0 and sets *l (local seconds), *has_off and *off, or MD_EPARSE. */
static int parse_iso_parts(const char *s, int64_t *l, bool *has_off, int32_t *off)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, se = 0;

    *has_off = false;
    *off = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return MD_EPARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > md_days_in_month(y, mo))
        return MD_EPARSE;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return MD_EPARSE;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &se))
                return MD_EPARSE;
            if (*p == '.' || *p == ',') {
                p++;
                if (*p < '0' || *p > '9')
                    return MD_EPARSE;
                while (*p >= '0' && *p <= '9')
                    p++;
            }
        }
        if (h > 23 || mi > 59 || se > 60)
            return MD_EPARSE;
        if (se == 60)
            se = 59; /* a leap second: POSIX time has none */
        if (*p == 'Z' || *p == 'z') {
            p++;
            *has_off = true;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
            if (!digits(&p, 2, &oh))
                return MD_EPARSE;
            if (*p == ':')
                p++;
            if (*p >= '0' && *p <= '9' && !digits(&p, 2, &om))
                return MD_EPARSE;
            if (oh > 23 || om > 59)
                return MD_EPARSE;
            *has_off = true;
            *off = sign * (oh * 3600 + om * 60);
        }
    }
    if (*p != '\0')
        return MD_EPARSE;
    *l = md_days_from_civil(y, mo, d) * SECS_PER_DAY + h * 3600 + mi * 60 + se;
    return 0;
}

int md_time_parse_iso(const char *s, int64_t *out)
{
    int64_t l;
    bool has_off;
    int32_t off;

    if (s == NULL || parse_iso_parts(s, &l, &has_off, &off) != 0 || !has_off)
        return MD_EPARSE;
    *out = l - off;
    return 0;
}

int md_tz_parse_iso(const struct md_tz *tz, const char *s, int64_t *out)
{
    int64_t l, t[2];
    bool has_off;
    int32_t off;

    if (s == NULL || parse_iso_parts(s, &l, &has_off, &off) != 0)
        return MD_EPARSE;
    if (has_off || tz == NULL) {
        *out = l - off;
        return 0;
    }
    if (from_local_seconds(tz, l, t) > 0) {
        *out = t[0];
        return 0;
    }
    /* In a gap: the instant the gap ends. */
    int64_t e;
    int32_t b, a;
    if (md_tz_next_change(tz, l - md_tz_offset(tz, l - 2 * SECS_PER_DAY) - 2 * SECS_PER_DAY, &e, &b,
                          &a) == 1) {
        /* Walk to the forward change whose gap contains l. */
        for (int i = 0; i < 8; i++) {
            if (l >= e + b && l < e + a) {
                *out = e;
                return 0;
            }
            if (md_tz_next_change(tz, e, &e, &b, &a) != 1)
                break;
        }
    }
    return MD_EPARSE;
}
