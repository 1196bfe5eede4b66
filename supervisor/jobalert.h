/* jobalert.h - meshd's own alerts about its jobs.  Private to supervisor/.
 *
 *   job.<name>.failed   a run of a cron or event job ended failed or timed out, and no other
 *                       attempt of it follows (severity: the job's failure_alert);
 *   job.<name>.fatal    the job went FATAL: retries exhausted, or exit 100 (critical);
 *   job.<name>.missed   slots of a cron job were missed (warning; not in cluster mode);
 *
 * each resolved by the job's next succeeded run; a service's fatal one when it is RUNNING
 * again.  failure_alert: none turns all three off for the job.  docs/supervision.md ("meshd's
 * own alerts") is the user's contract.
 *
 * They travel the way a worker's alerts do: an "alert" or "resolve" registry event (regevent.c:
 * journalled, replayed idempotently, applied in the registry's lock order; sql/0006 puts a bus
 * message on each change) and the job's open alerts in memory (history.h: /status, /metrics).
 *
 * A resolve costs an event and a row in meshd_applied_events, so it is sent only for a key that
 * may be open (job->alerts_maybe_open): one this life raised, every applicable key at the job's
 * birth (an earlier life may have left one open), and in cluster mode every applicable key
 * again once SUP_JOBALERT_RECHECK_MS have passed since the last resolves (another node runs the
 * same job under the same keys and may have raised one meanwhile).
 *
 * Called from job.c (run ends, RUNNING) and scheduler.c (missed slots), on the loop.
 */
#ifndef MESHD_JOBALERT_H
#define MESHD_JOBALERT_H

#include <stdbool.h>
#include <stdint.h>

#include "history.h"

struct sup_job;

/* alerts_maybe_open bits. */
#define SUP_JOBALERT_FAILED (1u << 0)
#define SUP_JOBALERT_FATAL (1u << 1)
#define SUP_JOBALERT_MISSED (1u << 2)

/* Cluster mode: a succeeded run sends the resolves again after this long (ms). */
#define SUP_JOBALERT_RECHECK_MS 30000

/* The keys a job of this kind (enum md_job_kind) can have: SUP_JOBALERT_* bits. */
unsigned sup_jobalert_keys(int kind);

/* How one run ended (all borrowed). */
struct sup_jobalert_run {
    const char *run_id;
    enum sup_run_status status;
    int exit_code;       /* -1: not known; a spawn failure's negative errno (spawn_failed) */
    int signal;          /* 0: none */
    bool spawn_failed;   /* nothing was launched */
    bool retrying;       /* another attempt of the run follows (BACKOFF): it is not over */
    const char *gave_up; /* the job went FATAL with this end: why ("retries exhausted"), or NULL */
    unsigned tries;      /* failures in a row, this one included */
};

/* A run of the job ended (any run: the prog's, an extra one, an adopted one), after its
 * run_end event.  Raises job.<name>.failed (cron and event jobs; a failed or timed-out run
 * whose last attempt this is) and job.<name>.fatal (gave_up), or resolves the job's keys (a
 * succeeded cron or event run).  A stopped, unknown or abandoned end changes nothing. */
void sup_jobalert_run_end(struct sup_job *job, const struct sup_jobalert_run *r);

/* A service is RUNNING: resolves its job.<name>.fatal. */
void sup_jobalert_running(struct sup_job *job);

/* count slots of a cron job were missed, from first to last (Unix s, both included; equal for
 * one slot), for reason (borrowed): raises job.<name>.missed. */
void sup_jobalert_missed(struct sup_job *job, uint64_t count, int64_t first, int64_t last,
                         const char *reason);

#endif
