/* md_tz.h - IANA time zones read from the system tz database (TZif files).
 *
 * A zone is loaded once (from $TZDIR or /usr/share/zoneinfo) and is immutable afterwards, so
 * it may be shared by any number of jobs.  The process's TZ is never touched: conversions are
 * done with the zone's own transition table and, past its end, its POSIX TZ footer rule.
 */
#ifndef MESHD_MD_TZ_H
#define MESHD_MD_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "md_err.h"

struct md_tz;

/* A civil (wall-clock) time.  mon is 1..12, mday 1..31, wday 0..6 with 0 = Sunday, yday 0..365. */
struct md_civil {
    int year, mon, mday, hour, min, sec, wday, yday;
};

/* Loads zone `name` ("UTC", "America/New_York", "Etc/GMT+5").  Rejects names that are absolute,
 * contain "..", or do not name a valid TZif file.  On success *out is owned by the caller (free
 * with md_tz_free).  Returns 0, MD_ENOTZ (unknown or invalid zone) or a negative errno. */
int md_tz_load(const char *name, struct md_tz **out) MD_MUSTCHECK;
void md_tz_free(struct md_tz *tz);
/* The name it was loaded with; borrowed, valid while tz lives. */
const char *md_tz_name(const struct md_tz *tz);

/* UTC instant (Unix seconds) -> local civil time and UTC offset in seconds (east positive). */
void md_tz_to_local(const struct md_tz *tz, int64_t t, struct md_civil *out, int32_t *utoff);

/* Local civil time -> the UTC instants that show it.  Returns how many (0 inside a gap, 1, or 2
 * inside a fold, earliest first) and stores them in out[].  Only year..sec of c are read. */
int md_tz_from_local(const struct md_tz *tz, const struct md_civil *c, int64_t out[2]);

/* Formats t as ISO-8601 in zone tz with a numeric offset and seconds:
 * "2026-03-08T03:00:00-04:00".  tz NULL means UTC ("...Z" is never used; "+00:00" is).
 * Returns the length written (buf needs at least 32 bytes). */
size_t md_tz_format_iso(const struct md_tz *tz, int64_t t, char *buf, size_t len);

/* Parses an ISO-8601 instant with a numeric offset or 'Z' ("2026-03-08T01:59:00-05:00",
 * "2026-03-08T06:59:00Z", optional fractional seconds are truncated).  Returns 0 or MD_EPARSE. */
int md_time_parse_iso(const char *s, int64_t *out) MD_MUSTCHECK;

/* Days from 1970-01-01 for a proleptic Gregorian date, and back (exact for any int year). */
int64_t md_days_from_civil(int64_t y, int m, int d);

/* The number of days in month m (1..12) of proleptic Gregorian year y. */
int md_days_in_month(int64_t y, int m);

/* a / b rounded toward negative infinity (b != 0): the day of a negative instant. */
static inline int64_t md_floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Additions used by the cron engine and meshctl. */

/* The UTC offset (seconds east of UTC) in effect at instant t.  tz NULL means UTC. */
int32_t md_tz_offset(const struct md_tz *tz, int64_t t);

/* The first instant T > t at which the UTC offset changes (a change of abbreviation or of the
 * DST flag alone is not reported).  Returns 1 and fills *when, *before (offset at T-1) and
 * *after (offset at T), or 0 when the offset never changes again (within ~400 years). */
int md_tz_next_change(const struct md_tz *tz, int64_t t, int64_t *when, int32_t *before,
                      int32_t *after);

/* The proleptic Gregorian date of day `days` counted from 1970-01-01 (inverse of
 * md_days_from_civil). */
void md_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

/* Like md_time_parse_iso, but a time without an offset ("2026-03-08T02:30[:00]") is local
 * time in tz (NULL = UTC): inside a fold the earlier instant is taken, inside a gap the
 * instant at which the gap ends.  A date alone ("2026-03-08") means its local midnight.
 * Returns 0 or MD_EPARSE. */
int md_tz_parse_iso(const struct md_tz *tz, const char *s, int64_t *out) MD_MUSTCHECK;

#endif
