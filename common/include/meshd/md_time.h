/* md_time.h - the clocks meshd reads and the one way it writes an instant.
 *
 * Every module asks the time here, so a test can see one seam and the daemon one convention:
 * wall-clock instants are Unix milliseconds (int64_t), durations come from the monotonic clock.
 */
#ifndef MESHD_MD_TIME_H
#define MESHD_MD_TIME_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* clock_gettime(id) in milliseconds. */
int64_t md_time_clock_ms(clockid_t id);
/* Wall-clock now (CLOCK_REALTIME), Unix ms. */
int64_t md_time_wall_ms(void);

/* RFC 3339 UTC with milliseconds, "2026-11-25T07:00:00.004Z" (buf needs 25 bytes; longer for
 * years past 9999). */
void md_time_fmt_ms(int64_t ms, char *buf, size_t len);

/* Adds key: that instant (md_time_fmt_ms) to a JSON object, or null when ms <= 0. */
struct cJSON;
void md_time_json(struct cJSON *o, const char *key, int64_t ms);

#endif
