/* scheduler_internal.h - the scheduler's decisions as pure functions, for scheduler.c and its
 * unit test (tests/unit/test_sched.c).  No clock, no I/O: the caller hands in "now". */
#ifndef MESHD_SCHEDULER_INTERNAL_H
#define MESHD_SCHEDULER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "meshd/md_cron.h"
#include "meshd/md_tz.h"

/* A slot that starts within this long of its due time is on time, not a catch-up. */
#define SCHED_ON_TIME_MS 1000
/* Bound on the slots walked for one job in one wake (an every-second job after a long sleep):
 * past it the walk jumps to the catch-up window, estimating the count of the rest. */
#define SCHED_WALK_MAX 100000

enum sched_verdict {
    SCHED_ON_TIME,  /* run latest: it is due now (the firing lag is measured) */
    SCHED_CATCH_UP, /* run latest: late, but inside the job's catch-up window */
    SCHED_MISSED,   /* latest is missed too: outside the catch-up window */
};

/* What one wake decides for a cron job whose next slot is due: every slot from first up to
 * now_ms is looked at once, and never more than one runs. */
struct sched_walk {
    int64_t first;   /* the job's next slot when the wake began (Unix s) */
    int64_t latest;  /* the latest slot due by now_ms: the one that may run */
    int64_t before;  /* the slot before latest (the last one missed), 0 if none */
    uint64_t missed; /* slots before latest, all missed (an estimate past SCHED_WALK_MAX) */
    int64_t late_ms; /* how late latest starts: now - latest - jitter - takeover delay */
    enum sched_verdict verdict;
};

/* Walks the slots of cron/tz from next_slot (due: next_slot * 1000 <= now_ms) to now_ms.
 * catchup_ms: the job's catch-up window; jitter_ms and takeover_ms: the delays its due instant
 * had on top of the slot (they do not make a slot late). */
void sched_walk(const struct md_cron *cron, const struct md_tz *tz, int64_t next_slot,
                int64_t now_ms, uint64_t catchup_ms, uint64_t jitter_ms, int64_t takeover_ms,
                struct sched_walk *out);

/* After the wall clock stepped back to now_s: a fixed-time job keeps its next slot (what ran
 * does not run again, as cronie does); a job whose minute or hour field starts with '*' follows
 * the new time.  True when the job is to be scheduled again from now_s - 1. */
bool sched_follows_backward_step(const struct md_cron *cron);

#endif
