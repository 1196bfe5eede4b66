/* md_cron.h - cron expressions: parse into bit sets, find the next fire instant.
 *
 * Grammar and semantics are those of cronie (see common/src/cron.c for the grammar): 5 fields
 * (minute hour day-of-month month day-of-week) or 6 with a leading seconds field; @yearly,
 * @annually, @monthly, @weekly, @daily, @midnight, @hourly; month and day names; 7 = Sunday;
 * lists, ranges and steps.  If both day-of-month and day-of-week are restricted they are ORed;
 * a field that starts with '*' (also "*\/2") counts as unrestricted.
 */
#ifndef MESHD_MD_CRON_H
#define MESHD_MD_CRON_H

#include <stdint.h>

#include "md_err.h"
#include "md_tz.h"

enum {
    MD_CRON_DOM_STAR = 1 << 0,  /* day-of-month field starts with '*' */
    MD_CRON_DOW_STAR = 1 << 1,  /* day-of-week field starts with '*' */
    MD_CRON_MIN_STAR = 1 << 2,  /* minute field starts with '*' (a "wildcard" job for DST) */
    MD_CRON_HOUR_STAR = 1 << 3, /* hour field starts with '*' (a "wildcard" job for DST) */
    MD_CRON_SECONDS = 1 << 4,   /* the expression had a seconds field */
};

/* How a job treats local times that a DST change skips or repeats. */
enum md_cron_dst {
    MD_CRON_DST_CRONIE = 0, /* default: fixed times in a gap run right after the jump, fixed times
                               in a repeated hour run once; wildcard jobs follow elapsed time */
    MD_CRON_DST_SKIP = 1,   /* local times that do not exist never fire; repeated ones fire once */
};

struct md_cron {
    uint64_t sec;   /* bit n: second n (0..59); only bit 0 without a seconds field */
    uint64_t min;   /* bit n: minute n (0..59) */
    uint32_t hour;  /* bit n: hour n (0..23) */
    uint32_t dom;   /* bit n: day n (1..31) */
    uint16_t month; /* bit n: month n (1..12) */
    uint8_t dow;    /* bit n: weekday n (0..6, 0 = Sunday; 7 is folded into 0) */
    uint8_t flags;  /* MD_CRON_* */
    uint8_t dst;    /* enum md_cron_dst */
};

/* Parses expr into *c.  On error returns MD_EPARSE (or MD_ENEVER for a schedule that can never
 * fire, such as "0 0 30 2 *") and fills err: err->col is the 1-based column in expr, err->line
 * is 0, err->msg names the field ("bad day-of-month field: 32 is out of range 1-31"). */
int md_cron_parse(struct md_cron *c, const char *expr, struct md_error *err) MD_MUSTCHECK;

/* Finds the first fire instant strictly after `after` (Unix seconds) in zone tz (NULL = UTC),
 * with the DST behaviour of c->dst.  Returns 0 and sets *next, or MD_ENEVER if none exists in
 * the next 100 years.  Pure: safe anywhere. */
int md_cron_next(const struct md_cron *c, const struct md_tz *tz, int64_t after,
                 int64_t *next) MD_MUSTCHECK;

/* Warnings about traps in a valid expression: both day fields restricted (OR rule), a fixed
 * time that falls in a DST gap of tz in the next years, a step that does not divide its range.
 * cb is called once per warning with the 1-based column in expr (0 if none) and a message. */
typedef void md_cron_warn_cb(void *ud, int col, const char *msg);
void md_cron_lint(const struct md_cron *c, const char *expr, const struct md_tz *tz,
                  md_cron_warn_cb *cb, void *ud);

#endif
