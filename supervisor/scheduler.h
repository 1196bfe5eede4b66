/* scheduler.h - when cron jobs run (scheduler.c): the heap of next fire instants, the one
 * wall-clock timer, slot claims, catch-up after downtime or a suspend, clock jumps, and the state
 * file of each job's last handled slot.  Private to supervisor/; used by the supervisor object
 * (sup.c).
 */
#ifndef MESHD_SCHEDULER_H
#define MESHD_SCHEDULER_H

#include <stdint.h>
#include <uv.h>

struct sup;
struct sup_job;

/* The wall-clock timer (a timerfd on CLOCK_REALTIME, watched by a uv_poll_t).  Returns 0 or a
 * negative errno (logged). */
int sched_start(struct sup *sup);
/* At the end of the shutdown: the timer's handle closes (cb, like uv_close). */
void sched_close(struct sup *sup, uv_close_cb cb);
/* Once the loop has ended: the timerfd and the heap go. */
void sched_cleanup(struct sup *sup);

/* A cron job starts being scheduled: from its last handled slot when that is in the past (the
 * next sched_run_due looks at what was missed), else from now_s. */
void sched_job_start(struct sup_job *job, int64_t now_s);
/* Its next slot after `after` (Unix s), with its jitter and takeover delay. */
void sched_job_schedule(struct sup_job *job, int64_t after);
/* Off the heap (paused, disabled, retired, stopping). */
void sched_job_remove(struct sup_job *job);
/* Arms the timer for the earliest due job again (after the heap changed). */
void sched_rearm(struct sup *sup);
/* Starts (or claims) every slot due now; why is logged for the ones missed. */
void sched_run_due(struct sup *sup, const char *why);

/* Starts whatever is due now, before other work of this loop iteration (the HTTP hook). */
void sup_clock_check(struct sup *sup);
/* cluster_hooks.claims_back: claims work (again).  Each job's slot that could not be claimed
 * is claimed now if it is still inside the job's catch-up window and no later slot of the job
 * was handled since; else it is recorded missed with the reason. */
void sup_claims_back(struct sup *sup);
/* At shutdown (before the jobs go): every slot that could not be claimed is recorded missed. */
void sup_unclaimed_flush(struct sup *sup);

/* The state file (statefile.h): every job's last handled slot and paused flag. */
void sched_state_save(struct sup *sup);
void sched_state_load(struct sup *sup);

#endif
