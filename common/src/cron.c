/* cron.c - cron expressions: cronie's grammar into bit sets; the next fire instant in a zone.
 *
 * Matching works on a zone's "local seconds" (UTC instant + offset), split by the zone's
 * offset changes into segments of constant offset.  Inside a segment local time is a
 * bijection of real time, so a plain calendar search finds the next match; the DST rules
 * only decide what happens at a segment's edges (see md_cron_next).
 */
#include "meshd/md_cron.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define SECS_PER_DAY 86400
#define CRON_HORIZON ((int64_t)36525 * SECS_PER_DAY + SECS_PER_DAY) /* 100 years and a day */
#define MAX_ABS_OFFSET (26 * 3600) /* no zone is further from UTC than this */

enum field_id { F_SEC, F_MIN, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

struct field_spec {
    const char *name;
    int low, high;
    const char *const *names; /* indexed from low; NULL if the field has no names */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field_spec fields[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, NULL},         [F_MIN] = {"minute", 0, 59, NULL},
    [F_HOUR] = {"hour", 0, 23, NULL},          [F_DOM] = {"day-of-month", 1, 31, NULL},
    [F_MONTH] = {"month", 1, 12, month_names}, [F_DOW] = {"day-of-week", 0, 7, dow_names},
};

/* Range-parser states, one per position inside a list element (cronie's range_state_t). */
enum range_state {
    R_START,      /* nothing read yet: '*', a number or a name */
    R_AST,        /* after '*': '/', or the end of the element */
    R_NUM1,       /* after the first number: '-', '/', or the end */
    R_RANGE,      /* after '-': the second number */
    R_RANGE_NUM2, /* after the second number: '/', or the end */
    R_STEP,       /* after '/': the step number */
    R_TERMS,      /* after the step: only the end of the element */
    R_FINISH,     /* the element is complete */
};

struct parser {
    const char *expr; /* the whole expression, for columns */
    struct md_error *err;
};

static int col_of(const struct parser *ps, const char *p)
{
    return (int)(p - ps->expr) + 1;
}

/* Fills the error as "bad <field> field: <detail>" at the column of `at`. */
static int fail(const struct parser *ps, const char *at, enum field_id f, const char *fmt, ...)
    MD_PRINTF(4, 5);
static int fail(const struct parser *ps, const char *at, enum field_id f, const char *fmt, ...)
{
    char detail[160];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return md_error_set(ps->err, MD_EPARSE, 0, col_of(ps, at), "bad %s field: %s", fields[f].name,
                        detail);
}

/* The end of a list element: a comma or the end of the field. */
static bool is_sep(char ch)
{
    return ch == '\0' || ch == ',' || ch == ' ' || ch == '\t';
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static char lower(char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* Reads 1*DIGIT into *out, saturating at 10^7 (callers range-check). */
static void read_digits(const char **pp, long *out)
{
    long v = 0;
    const char *p = *pp;
    while (is_digit(*p)) {
        if (v < 10000000)
            v = v * 10 + (*p - '0');
        p++;
    }
    *out = v;
    *pp = p;
}

/* A value of field f: digits range-checked against the field, or one of its names (three
 * letters, any case).  *pp advances past the token. */
static int get_number(const struct parser *ps, enum field_id f, const char **pp, int *out)
{
    const char *p = *pp, *b = p;
    const struct field_spec *fs = &fields[f];

    if (is_digit(*p)) {
        long v;
        read_digits(&p, &v);
        if (is_alpha(*p))
            return fail(ps, p, f, "unexpected '%c'", *p);
        if (v < fs->low || v > fs->high)
            return fail(ps, b, f, "%.*s is out of range %d-%d", (int)(p - b > 12 ? 12 : p - b), b,
                        fs->low, fs->high);
        *out = (int)v;
        *pp = p;
        return 0;
    }
    if (is_alpha(*p)) {
        while (is_alpha(*p) || is_digit(*p))
            p++;
        int n = (int)(p - b > 20 ? 20 : p - b);
        if (fs->names == NULL)
            return fail(ps, b, f, "unexpected '%.*s' (this field takes numbers only)", n, b);
        if (p - b == 3) {
            for (int i = 0; fs->names[i] != NULL; i++) {
                if (lower(b[0]) == fs->names[i][0] && lower(b[1]) == fs->names[i][1] &&
                    lower(b[2]) == fs->names[i][2]) {
                    *out = fs->low + i;
                    *pp = p;
                    return 0;
                }
            }
        }
        return fail(ps, b, f, "unknown name '%.*s'", n, b);
    }
    if (is_sep(*p))
        return fail(ps, p, f, "missing value");
    if (*p == '?' || *p == '#' || *p == '~' || *p == 'L' || *p == 'W')
        return fail(ps, p, f, "'%c' is not supported", *p);
    if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
        return fail(ps, p, f, "unexpected byte 0x%02x", (unsigned char)*p);
    return fail(ps, p, f, "unexpected '%c'", *p);
}

/* One list element of field f starting at *pp; sets its bits in *bits.
 *
 *   element = "*" [ "/" step ]
 *           | value [ "-" value ] [ "/" step ]
 *   value   = 1*DIGIT | name        (month JAN..DEC, day-of-week SUN..SAT, any case)
 *   step    = 1*DIGIT               (>= 1)
 *
 * "a/n" means "a-max/n" (FreeBSD's reading; Vixie rejects it).  In day-of-week 7 is Sunday
 * and "a-0" means "a-7" (cronie: "FRI-SUN").  Any other reversed range is an error (Vixie;
 * cronie silently sets no bits).  cronie's random "a~b" is not supported.
 */
static int get_range(const struct parser *ps, enum field_id f, const char **pp, uint64_t *bits)
{
    const struct field_spec *fs = &fields[f];
    const char *p = *pp, *num1_at = p;
    int low = 0, high = 0, rc;
    long step = 1;
    enum range_state state = R_START;

    while (state != R_FINISH) {
        switch (state) {
        case R_START:
            if (*p == '*') {
                low = fs->low;
                high = f == F_DOW ? 6 : fs->high;
                p++;
                state = R_AST;
                break;
            }
            num1_at = p;
            if ((rc = get_number(ps, f, &p, &low)) < 0)
                return rc;
            state = R_NUM1;
            break;
        case R_AST:
            if (*p == '/') {
                p++;
                state = R_STEP;
            } else if (is_sep(*p)) {
                state = R_FINISH;
            } else {
                return fail(ps, p, f, "unexpected '%c' after '*'", *p);
            }
            break;
        case R_NUM1:
            if (*p == '-') {
                p++;
                state = R_RANGE;
            } else if (*p == '/') {
                p++;
                high = fs->high;
                state = R_STEP;
            } else if (is_sep(*p)) {
                high = low;
                state = R_FINISH;
            } else {
                return fail(ps, p, f, "unexpected '%c'", *p);
            }
            break;
        case R_RANGE:
            if ((rc = get_number(ps, f, &p, &high)) < 0)
                return rc;
            if (f == F_DOW && high == 0 && low > 0)
                high = 7;
            if (low > high)
                return fail(ps, num1_at, f, "range %.*s is reversed (start after end)",
                            (int)(p - num1_at), num1_at);
            state = R_RANGE_NUM2;
            break;
        case R_RANGE_NUM2:
            if (*p == '/') {
                p++;
                state = R_STEP;
            } else if (is_sep(*p)) {
                state = R_FINISH;
            } else {
                return fail(ps, p, f, "unexpected '%c'", *p);
            }
            break;
        case R_STEP: {
            const char *at = p;
            if (!is_digit(*p))
                return is_sep(*p) ? fail(ps, p, f, "missing step after '/'")
                                  : fail(ps, p, f, "step must be a number");
            read_digits(&p, &step);
            if (step == 0)
                return fail(ps, at, f, "step must be at least 1");
            if (step > 999999)
                return fail(ps, at, f, "step %.*s is too large", (int)(p - at > 12 ? 12 : p - at),
                            at);
            state = R_TERMS;
            break;
        }
        case R_TERMS:
            if (!is_sep(*p))
                return fail(ps, p, f, "unexpected '%c' after the step", *p);
            state = R_FINISH;
            break;
        case R_FINISH:
            break;
        }
    }
    for (long i = low; i <= high; i += step)
        *bits |= (uint64_t)1 << (f == F_DOW && i == 7 ? 0 : i);
    *pp = p;
    return 0;
}

/* list = element *( "," element ); the field ends at a blank or the end of the string. */
static int get_list(const struct parser *ps, enum field_id f, const char *p, uint64_t *bits)
{
    int rc;

    *bits = 0;
    for (;;) {
        if ((rc = get_range(ps, f, &p, bits)) < 0)
            return rc;
        if (*p != ',')
            return 0;
        p++;
        if (is_sep(*p))
            return fail(ps, p, f, "empty list element");
    }
}

static const struct {
    const char *name;
    const char *expr;
} macros[] = {
    {"yearly", "0 0 1 1 *"}, {"annually", "0 0 1 1 *"}, {"monthly", "0 0 1 * *"},
    {"weekly", "0 0 * * 0"}, {"daily", "0 0 * * *"},    {"midnight", "0 0 * * *"},
    {"hourly", "0 * * * *"},
};

static bool never_fires(const struct md_cron *c)
{
    static const int maxdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    /* With the OR rule a restricted day-of-week always fires; otherwise some (month, day)
     * pair must exist (Feb 29 does, every 4 years).  Every valid date falls on every weekday
     * within 400 years, so a day-of-week restriction under AND cannot make it impossible. */
    if (!(c->flags & MD_CRON_DOM_STAR) && !(c->flags & MD_CRON_DOW_STAR))
        return false;
    for (int m = 1; m <= 12; m++)
        if (c->month & (1u << m))
            for (int d = 1; d <= maxdays[m]; d++)
                if (c->dom & (1u << d))
                    return false;
    return true;
}

int md_cron_parse(struct md_cron *c, const char *expr, struct md_error *err)
{
    struct md_error dummy;
    struct parser ps = {expr, err ? err : &dummy};
    const char *start[7], *p = expr;
    size_t len[7];
    int n = 0, rc;
    uint64_t bits[F_COUNT];

    memset(c, 0, sizeof *c);
    ps.err->msg[0] = '\0';
    if (expr == NULL)
        return md_error_set(err, MD_EPARSE, 0, 0, "empty cron expression");
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0')
        return md_error_set(err, MD_EPARSE, 0, col_of(&ps, p), "empty cron expression");

    if (*p == '@') {
        const char *b = ++p;
        char word[16];
        size_t k = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (k < sizeof word - 1)
                word[k++] = lower(*p);
            p++;
        }
        word[k] = '\0';
        const char *tail = p;
        while (*tail == ' ' || *tail == '\t')
            tail++;
        if (*tail != '\0')
            return md_error_set(err, MD_EPARSE, 0, col_of(&ps, tail), "unexpected text after @%.*s",
                                (int)(p - b), b);
        if (strcmp(word, "reboot") == 0)
            return md_error_set(err, MD_EPARSE, 0, col_of(&ps, b - 1),
                                "@reboot is not supported: use 'schedule: always' for a service "
                                "or start the job on an event");
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
            if ((size_t)(p - b) < 16 && strcmp(word, macros[i].name) == 0) {
                /* Through the parser, so the flags are cronie's: @hourly is a wildcard
                 * job (hour '*'), the others are fixed-time. */
                return md_cron_parse(c, macros[i].expr, err);
            }
        }
        return md_error_set(err, MD_EPARSE, 0, col_of(&ps, b - 1),
                            "unknown macro '@%.*s' (expected @yearly, @annually, @monthly, "
                            "@weekly, @daily, @midnight or @hourly)",
                            (int)(p - b) > 20 ? 20 : (int)(p - b), b);
    }

    while (*p) {
        if (n == 7)
            break;
        start[n] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        len[n] = (size_t)(p - start[n]);
        n++;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (n == 7 || *p != '\0')
        return md_error_set(err, MD_EPARSE, 0, col_of(&ps, start[6]),
                            "too many fields: expected 5 (minute hour day-of-month month "
                            "day-of-week) or 6 (with a leading second)");
    if (n < 5)
        return md_error_set(err, MD_EPARSE, 0, col_of(&ps, p),
                            "expected 5 fields (minute hour day-of-month month day-of-week) or "
                            "6 (with a leading second), got %d",
                            n);

    int first = n == 6 ? F_SEC : F_MIN;
    bits[F_SEC] = 1;
    for (int i = 0; i < n; i++) {
        enum field_id f = (enum field_id)(first + i);
        if ((rc = get_list(&ps, f, start[i], &bits[f])) < 0)
            return rc;
        if (start[i][0] == '*') {
            static const uint8_t star[F_COUNT] = {
                0, MD_CRON_MIN_STAR, MD_CRON_HOUR_STAR, MD_CRON_DOM_STAR, 0, MD_CRON_DOW_STAR};
            c->flags |= star[f];
        }
    }
    c->sec = bits[F_SEC];
    c->min = bits[F_MIN];
    c->hour = (uint32_t)bits[F_HOUR];
    c->dom = (uint32_t)bits[F_DOM];
    c->month = (uint16_t)bits[F_MONTH];
    c->dow = (uint8_t)bits[F_DOW];
    if (n == 6)
        c->flags |= MD_CRON_SECONDS;
    if (never_fires(c)) {
        int dom_i = F_DOM - first;
        return md_error_set(err, MD_ENEVER, 0, col_of(&ps, start[dom_i]),
                            "schedule never fires: day-of-month '%.*s' does not occur in "
                            "month '%.*s'",
                            (int)len[dom_i], start[dom_i], (int)len[dom_i + 1], start[dom_i + 1]);
    }
    return 0;
}

/* --- matching ---------------------------------------------------------------------------- */

/* The lowest set bit >= from in bits (bits above `limit` ignored), or -1. */
static int next_bit(uint64_t bits, int from, int limit)
{
    if (from > limit)
        return -1;
    bits &= ~(uint64_t)0 << from;
    if (limit < 63)
        bits &= ((uint64_t)1 << (limit + 1)) - 1;
    return bits ? __builtin_ctzll(bits) : -1;
}

static bool day_matches(const struct md_cron *c, int mday, int wday)
{
    bool dom = (c->dom >> mday) & 1, dow = (c->dow >> wday) & 1;
    /* POSIX/cronie: if either day field starts with '*', both must match; else either. */
    if (c->flags & (MD_CRON_DOM_STAR | MD_CRON_DOW_STAR))
        return dom && dow;
    return dom || dow;
}

/* The smallest local time l >= from (local seconds) that matches c, if l <= limit.  Skips
 * whole months, days, hours and minutes; never scans second by second. */
static bool match_from(const struct md_cron *c, int64_t from, int64_t limit, int64_t *out)
{
    int64_t days = md_floor_div(from, SECS_PER_DAY), y;
    int64_t sod = from - days * SECS_PER_DAY;
    int m, d, h = (int)(sod / 3600), mi = (int)(sod / 60 % 60), s = (int)(sod % 60);

    md_civil_from_days(days, &y, &m, &d);
    for (;;) {
        if (days * SECS_PER_DAY > limit)
            return false;
        int nm = next_bit(c->month, m, 12);
        if (nm != m) {
            if (nm < 0) {
                y++;
                nm = next_bit(c->month, 1, 12);
            }
            m = nm;
            d = 1;
            h = mi = s = 0;
            days = md_days_from_civil(y, m, 1);
            continue;
        }
        int wday = (int)(((days + 4) % 7 + 7) % 7);
        if (d > md_days_in_month(y, m) || !day_matches(c, d, wday)) {
            if (d >= md_days_in_month(y, m)) {
                if (++m > 12) {
                    m = 1;
                    y++;
                }
                d = 1;
                days = md_days_from_civil(y, m, 1);
            } else {
                d++;
                days++;
            }
            h = mi = s = 0;
            continue;
        }
        int nh = next_bit(c->hour, h, 23);
        if (nh < 0) {
            h = 24; /* next day */
            goto next_day;
        }
        if (nh != h) {
            h = nh;
            mi = s = 0;
        }
        int nmi = next_bit(c->min, mi, 59);
        if (nmi < 0) {
            mi = s = 0;
            if (++h > 23)
                goto next_day;
            continue;
        }
        if (nmi != mi) {
            mi = nmi;
            s = 0;
        }
        int ns = next_bit(c->sec, s, 59);
        if (ns < 0) {
            s = 0;
            if (++mi > 59) {
                mi = 0;
                if (++h > 23)
                    goto next_day;
            }
            continue;
        }
        int64_t l = days * SECS_PER_DAY + h * 3600 + mi * 60 + ns;
        if (l > limit)
            return false;
        *out = l;
        return true;
    next_day:
        h = mi = s = 0;
        if (d >= md_days_in_month(y, m)) {
            if (++m > 12) {
                m = 1;
                y++;
            }
            d = 1;
            days = md_days_from_civil(y, m, 1);
        } else {
            d++;
            days++;
        }
    }
}

/* The last offset change at or before t, looking back two days (longer than any fold).
 * Returns false if there is none in that window. */
static bool last_change(const struct md_tz *tz, int64_t t, int64_t *at, int32_t *before,
                        int32_t *after)
{
    int64_t x = t - 2 * SECS_PER_DAY, e;
    int32_t b, a;
    bool found = false;

    while (md_tz_next_change(tz, x, &e, &b, &a) == 1 && e <= t) {
        *at = e;
        *before = b;
        *after = a;
        found = true;
        x = e;
    }
    return found;
}

/* The search walks segments of constant UTC offset.  For the segment [s, e) with offset o:
 *  - a repeated stretch at its start (after a backward change at T from offset ob: the
 *    instants [T, T + ob - o) show local times already seen) is skipped for fixed-time jobs
 *    and in DST_SKIP mode, so those fire once, on the first pass; wildcard jobs fire again;
 *  - the first local match l in [s + o, e + o) gives the instant l - o;
 *  - failing that, if the change at e jumps forward (to oa > o) and the job is fixed-time in
 *    DST_CRONIE mode, a match in the skipped local times [e + o, e + oa) fires at e itself,
 *    once, however many skipped times match (cron(8): "run immediately").
 */
int md_cron_next(const struct md_cron *c, const struct md_tz *tz, int64_t after, int64_t *next)
{
    const bool wildcard = (c->flags & (MD_CRON_MIN_STAR | MD_CRON_HOUR_STAR)) != 0;
    const bool skip_repeat = c->dst == MD_CRON_DST_SKIP || !wildcard;
    const bool gap_fires = c->dst == MD_CRON_DST_CRONIE && !wildcard;
    int64_t limit, t = after;

    /* About +-35 million years: keeps every day and second count far from overflow. */
    if (after > ((int64_t)1 << 50) || after < -((int64_t)1 << 50))
        return MD_ENEVER;
    limit = after + CRON_HORIZON;
    if (tz == NULL) {
        int64_t l;
        if (!match_from(c, after + 1, limit, &l))
            return MD_ENEVER;
        *next = l;
        return 0;
    }
    for (int guard = 0; guard < 100000; guard++) {
        int64_t s = t + 1, e = 0, T = 0, l;
        int32_t o = md_tz_offset(tz, s), ob = 0, oa = 0, b;
        bool has_end, found;

        if (s > limit)
            return MD_ENEVER;
        has_end = md_tz_next_change(tz, s, &e, &b, &oa) == 1;
        if (skip_repeat && last_change(tz, s, &T, &ob, &b) && ob > o && s < T + (ob - o))
            s = T + (ob - o);
        if (has_end && s >= e) { /* the whole segment is a repeat */
            t = e - 1;
            continue;
        }
        found = match_from(c, s + o, limit + MAX_ABS_OFFSET, &l);
        if (!found)
            return MD_ENEVER;
        if (!has_end || l < e + o) {
            if (l - o > limit)
                return MD_ENEVER;
            *next = l - o;
            return 0;
        }
        if (gap_fires && oa > o && l < e + oa) {
            *next = e;
            return 0;
        }
        /* No local time in [s + o, l) matches.  Unless the change at e turns the clock back
         * (local times below s + o come again right after it), every instant before
         * l - 2 * MAX_ABS_OFFSET shows a local time in that range (or earlier ones already
         * searched), so jump there instead of walking every segment up to l. */
        t = e - 1;
        if (oa >= o && l - 2 * MAX_ABS_OFFSET > t)
            t = l - 2 * MAX_ABS_OFFSET;
    }
    return MD_ENEVER;
}

/* --- lint ------------------------------------------------------------------------------- */

static void lint_steps(const char *expr, md_cron_warn_cb *cb, void *ud)
{
    const char *p = expr, *start[7];
    int n = 0;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '@')
        return;
    while (*p && n < 7) {
        start[n++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        while (*p == ' ' || *p == '\t')
            p++;
    }
    if (n != 5 && n != 6)
        return;
    for (int i = 0; i < n && i < 3 - (n == 5); i++) {
        enum field_id f = (enum field_id)((n == 6 ? F_SEC : F_MIN) + i);
        int span = fields[f].high - fields[f].low + 1;
        for (const char *q = start[i]; *q && *q != ' ' && *q != '\t';) {
            if (q[0] == '*' && q[1] == '/') {
                long step = 0;
                const char *r = q + 2;
                while (*r >= '0' && *r <= '9' && step < 1000)
                    step = step * 10 + (*r++ - '0');
                if (step > 1 && span % step != 0) {
                    char msg[200];
                    int last = (int)((span - 1) / step * step);
                    if (f == F_HOUR)
                        snprintf(msg, sizeof msg,
                                 "step %ld does not divide 24: fires at %02d:00 then 00:00 (%d "
                                 "hours later, not %ld)",
                                 step, last, span - last, step);
                    else
                        snprintf(msg, sizeof msg,
                                 "step %ld does not divide 60: fires at :%02d then :00 (%d %ss "
                                 "later, not %ld)",
                                 step, last, span - last, fields[f].name, step);
                    cb(ud, (int)(q - expr) + 1, msg);
                }
            }
            while (*q && *q != ',' && *q != ' ' && *q != '\t')
                q++;
            if (*q == ',')
                q++;
        }
    }
}

static int field_col(const char *expr, int index)
{
    const char *p = expr;
    int n = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    while (*p) {
        if (n == index)
            return (int)(p - expr) + 1;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        while (*p == ' ' || *p == '\t')
            p++;
        n++;
    }
    return 0;
}

void md_cron_lint(const struct md_cron *c, const char *expr, const struct md_tz *tz,
                  md_cron_warn_cb *cb, void *ud)
{
    char msg[240];
    int first = (c->flags & MD_CRON_SECONDS) ? 1 : 0;

    if (!(c->flags & (MD_CRON_DOM_STAR | MD_CRON_DOW_STAR)) &&
        (c->dom & 0xfffffffeu) != 0xfffffffeu && (c->dow & 0x7f) != 0x7f)
        cb(ud, expr ? field_col(expr, first + 2) : 0,
           "day-of-month and day-of-week are both restricted: the job runs on days matching "
           "EITHER field (cron's OR rule), not both");
    if (expr != NULL)
        lint_steps(expr, cb, ud);

    /* A fixed time in a DST gap in the next two years. */
    if (tz != NULL && !(c->flags & (MD_CRON_MIN_STAR | MD_CRON_HOUR_STAR))) {
        int64_t t = (int64_t)time(NULL), end = t + 2 * 366 * (int64_t)SECS_PER_DAY, e, l;
        int32_t b, a;
        while (md_tz_next_change(tz, t, &e, &b, &a) == 1 && e < end) {
            t = e;
            if (a <= b || !match_from(c, e + b, e + a - 1, &l))
                continue;
            struct md_civil lc, gs, ge;
            md_tz_to_local(NULL, l, &lc, NULL);
            md_tz_to_local(NULL, e + b, &gs, NULL);
            md_tz_to_local(NULL, e + a, &ge, NULL);
            snprintf(msg, sizeof msg,
                     "%02d:%02d falls in the DST gap of %s on %04d-%02d-%02d (%02d:%02d-%02d:%02d "
                     "does not exist); %s",
                     lc.hour, lc.min, md_tz_name(tz), lc.year, lc.mon, lc.mday, gs.hour, gs.min,
                     ge.hour, ge.min,
                     c->dst == MD_CRON_DST_SKIP ? "that run is skipped"
                                                : "it runs once right after the jump instead");
            cb(ud, expr ? field_col(expr, first) : 0, msg);
            break;
        }
    }
}
