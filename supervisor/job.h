/* job.h - struct sup_job, one job's runtime, and its run lifecycle (job.c).
 * Private to supervisor/.
 *
 * A job drives its prog (prog.h) and owns the struct sup_proc of each live process (proc.h);
 * a proc never outlives its job (a job is freed only once it has no procs left).  The job
 * borrows its struct md_job from sup->cfg; reload swaps both in one step.
 *
 * Writers: the lifecycle fields, counters and memory are job.c's; the scheduling fields are
 * scheduler.c's; the operator's intents are set by control.c and sup.c (reload) and consumed
 * here; the fields of meshd's own alerts are jobalert.c's.  Everyone else reads.
 */
#ifndef MESHD_JOB_H
#define MESHD_JOB_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "meshd/md_config.h"
#include "meshd/md_status.h"
#include "history.h"
#include "proc.h"
#include "prog.h"

#define SUP_MSG_ENV_MAX 65536 /* a message payload larger than this is not put in the env */

struct sup;
struct sup_job;
struct sup_runlog_run;
struct sup_cg_run;

/* What a job tells the layers above it (set by sup_start; libuv's callback style). */
struct sup_job_hooks {
    /* The job has no process left (and is not closing). */
    void (*idle)(struct sup_job *job);
    /* A service is to start again (a reload changed it): the caller may need its lease. */
    void (*service_start)(struct sup_job *job);
    /* The run of the job's bus message (job->msg_id) is over, no retry pending: the bus records
     * its outcome (job->msg_outcome) and clears msg_id; it may start the job again at once with
     * the next message. */
    void (*msg_finished)(struct sup_job *job);
};

struct sup_job {
    struct sup *sup;
    char *name;               /* owned copy: outlives config swaps */
    const struct md_job *cfg; /* borrowed from sup->cfg; NULL once retired */
    struct prog prog;
    struct prog_policy pol;
    uv_timer_t timer;       /* the prog timer (start_secs, backoff, stop grace) */
    struct sup_proc *procs; /* live processes, primary first */
    struct sup_job *next;   /* sup->jobs list */

    /* Scheduling (cron jobs). */
    size_t heap_idx;        /* position in sup->heap, or SIZE_MAX */
    int64_t next_slot;      /* next scheduled instant (Unix s), 0 if none */
    int64_t next_due_ms;    /* next_slot + jitter, Unix ms */
    int64_t last_slot;      /* last slot handled (run, skipped or missed), 0 if none */
    int64_t cur_slot;       /* slot of the primary's current run, 0 if none */
    int64_t pending_slot;   /* replace: slot to start once the current run has stopped */
    int64_t unclaimed_slot; /* cluster, when_offline skip: the latest slot that could not be
                             * claimed (registry unreachable), claimed again when claims
                             * work again (sup_claims_back); 0 if none */
    char run_id[SUP_RUN_ID_MAX];
    struct sup_proc *ending; /* the proc whose exit is being fed to the prog, or NULL */

    /* Lifecycle. */
    bool retired;         /* removed by reload: free once procs are gone */
    bool restart_pending; /* changed by reload: start again once stopped */
    bool closing;
    enum sup_run_status stop_status; /* how to record the run we are stopping */

    /* Operator control (control.c). */
    bool paused;                     /* no scheduled runs, a service stays stopped; persisted */
    bool pending_now;                /* start an unscheduled run once the current one has stopped */
    bool lease_held;                 /* singleton service: this node holds its lease */
    int64_t msg_id;                  /* `on:` job: the bus message its run is for, or 0 */
    char *msg_payload;               /* its payload (JSON text) */
    bool msg_fetching;               /* asking the bus for one */
    enum sup_run_status msg_outcome; /* how the message's latest run ended */
    bool lease_pending;              /* a lease request is in flight */

    /* Counters and last-run facts, kept in memory for /status, /health and /metrics. */
    unsigned restarts;
    uint64_t runs_ok, runs_failed, runs_skipped, runs_missed;
    uint64_t runs_timed_out, runs_stopped; /* subsets of runs_failed */
    uint64_t runs_elsewhere;               /* cluster: slots another node claimed and ran */
    uint64_t bad_status_lines;
    uint64_t last_heartbeat_ms;
    int64_t last_success_ms;    /* wall clock of the last succeeded run's end, 0 if none */
    int64_t fire_due_ms;        /* due instant of the slot being started on time, for the lag */
    char *last_error;           /* why the job is FATAL ("gave up after ..."), or NULL */
    struct sup_history history; /* finished runs, open alerts, durations (history.h) */

    /* meshd's own alerts about the job (jobalert.h). */
    unsigned alerts_maybe_open;  /* SUP_JOBALERT_* bits: keys a resolve must still be sent for */
    uint64_t alerts_resolved_ms; /* loop time of the last resolves sent (cluster re-checks) */
};

/* ---- job.c ------------------------------------------------------------------------------ */

/* A new job for cfg (borrowed from sup->cfg), at the head of sup->jobs, stopped. */
struct sup_job *sup_job_new(struct sup *sup, const struct md_job *cfg);
/* A reload's cfg for the job: its restart policy and its running procs' log limits follow. */
void sup_job_set_config(struct sup_job *job, const struct md_job *cfg);
/* Tells the registry the job's state (a "job" event). */
void sup_job_report(struct sup_job *job);
/* Finds a live (not retired) job by name. */
struct sup_job *sup_job_find(struct sup *sup, const char *name);
/* Its prog is starting, running, backing off or stopping. */
bool sup_job_busy(const struct sup_job *job);

/* Applies one event to the job's state machine and carries out the resulting actions. */
void sup_job_event(struct sup_job *job, enum prog_event ev, int exit_code, int term_signal);
/* Spawns an extra, unsupervised run (concurrency: allow). */
void sup_job_spawn_extra(struct sup_job *job, int64_t slot);
/* Takes over a run a previous life of meshd started and that still runs (runlog.h r, borrowed;
 * cg: its run cgroup, taken over, or NULL).  stop: stop it (TERM to its group, KILL after the
 * job's stop_timeout) rather than watch it to its end.  The run is watched through a pidfd; its
 * end is recorded as unknown (it is not meshd's child: no exit status), timed_out or stopped.
 * Returns 0, or -ESRCH when the process is gone after all (cg is then released). */
struct sup_runlog_run;
struct sup_cg_run;
int sup_job_adopt(struct sup_job *job, const struct sup_runlog_run *r, struct sup_cg_run *cg,
                  bool stop);
/* The job has a run adopted from a previous life still running. */
bool sup_job_has_adopted(const struct sup_job *job);
/* Stops the job's runs adopted from a previous life (concurrency: replace). */
void sup_job_stop_adopted(struct sup_job *job);
/* A reload's log limits (the job's cfg) apply to its running procs at once. */
void sup_job_log_limits(struct sup_job *job);
/* Kills every leftover member of each proc's group with SIGKILL (shutdown second signal). */
void sup_job_kill_all(struct sup_job *job);
/* Formats the run id for a slot (or an unscheduled run when slot is 0). */
void sup_run_id(struct sup *sup, const char *job, int64_t slot, char *buf, size_t len);
/* Records a finished run in the job's history (from proc_free, or with p NULL when nothing
 * was launched); moves the proc's output tail into the record. */
void sup_job_note_run(struct sup_job *job, struct sup_proc *p, const char *run_id,
                      enum sup_run_status status, int exit_code, int signal);
/* Keeps a worker's alert/resolve/progress in memory. */
void sup_job_note_status(struct sup_job *job, const struct md_status_event *ev);
/* Frees the history and alerts (job_close_cb). */
void sup_job_info_free(struct sup_job *job);
/* Observes the firing lag of a run started for an on-time slot. */
void sup_note_lag(struct sup *sup, int64_t lag_ms);
/* Closes the job's handles; the job is freed when they and its procs are gone. */
void sup_job_close(struct sup_job *job);

#endif
