/* sup.h - struct sup, the supervisor's root object, and the runtime state of each job.
 * Private to supervisor/.
 *
 * Ownership: struct sup owns the current config (sup->cfg) and every struct sup_job.  A job
 * borrows its struct md_job from sup->cfg; reload swaps both in one step (sched.c).  A job owns
 * the struct sup_proc of each live process; a proc frees itself in its last close_cb and may
 * outlive its job's config, never its job (a job is freed only once it has no procs left).
 */
#ifndef MESHD_SUP_H
#define MESHD_SUP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "meshd/md_config.h"
#include "meshd/md_linebuf.h"
#include "meshd/md_log.h"
#include "meshd/md_status.h"
#include "cgroup.h"
#include "history.h"
#include "prog.h"

#define SUP_OUTPUT_LINE_MAX 8192
#define SUP_LIFE_MAX 16        /* sup->life: 12 hex digits */
#define SUP_EXEC_ID_MAX 40     /* "<life>-<seq>" */

#define SUP_MSG_ENV_MAX 65536   /* a message payload larger than this is not put in the env */

struct sup;
struct sup_job;

/* One live child process and its pipes.  Heap-allocated; freed in the last close_cb. */
struct sup_proc {
    uv_poll_t exitw;    /* readable when the child has exited (a pidfd) */
    int pidfd;          /* the child's pidfd (launch.h); closed in proc_free */
    uv_pipe_t in, out, err, status;
    uv_timer_t timeout; /* run timeout, then SIGKILL escalation for extra (allow) runs */
    uv_timer_t logw;    /* log_limit: armed while a window holds suppressed lines, to log their
                         * summary when it ends */
    uv_check_t resume;  /* restarts the pipes paused after a full read (spawn.c read_pause) */
    unsigned paused;    /* those pipes: 1 stdout, 2 stderr, 4 status */
    uv_write_t write_req;
    int pending_closes;
    struct sup *sup;
    struct sup_job *job; /* NULL once the job has let go of it */
    struct sup_proc *next; /* job's list of procs */
    int pid;
    bool primary;   /* driven by the job's prog state machine */
    bool exited;
    bool launched;  /* a child exists: exitw is initialized and needs closing */
    bool adopted;   /* a previous life's run, taken over at start-up (sup_job_adopt): not our
                     * child (its exit status cannot be had), no pipes */
    bool timed_out;
    bool killing;   /* extra run: SIGTERM sent, SIGKILL next */
    bool stop_group; /* copied from the job at spawn: the config may be swapped meanwhile */
    int stop_signal;
    uint64_t stop_timeout_ms;
    char run_id[SUP_RUN_ID_MAX];
    /* This execution's identity, "<life>-<seq>": one per spawn (a retry of the same run gets
     * a new one); the life part names the meshd process that started it (sup->life). */
    char exec_id[SUP_EXEC_ID_MAX];
    int64_t slot;   /* scheduled instant (Unix s), or 0 */
    uint64_t started_ms;
    int64_t started_wall_ms;
    bool has_progress, has_total;
    double progress_done, progress_total;
    char *progress_unit;
    char *stdin_data;
    struct md_linebuf lb_out, lb_err, lb_status;
    struct md_log_limit limit[3]; /* log_limit of stdout, stderr and the status stream's lines */
    struct sup_tail tail;         /* the last output lines (history.h) */
    unsigned bad_status;
    char *result; /* last {"event":"result"} status word, or NULL */
    uint64_t duration_ms;
    struct sup_cg_run *cg;     /* the run's cgroup (cgroup.h), or NULL: released in proc_free */
    struct sup_cg_usage usage; /* read from it in proc_free, before the run is recorded */
    /* How the run ended, set when it is recorded; the registry's run_end goes out when the proc
     * is freed, after the pipes were drained, so it carries the whole output tail. */
    bool end_recorded;
    enum sup_run_status end_status;
    int end_code, end_signal;
};

struct sup_job {
    struct sup *sup;
    char *name;                /* owned copy: outlives config swaps */
    const struct md_job *cfg;  /* borrowed from sup->cfg; NULL once retired */
    struct prog prog;
    struct prog_policy pol;
    uv_timer_t timer;          /* the prog timer (start_secs, backoff, stop grace) */
    struct sup_proc *procs;    /* live processes, primary first */
    struct sup_job *next;      /* sup->jobs list */

    /* Scheduling (cron jobs). */
    size_t heap_idx;           /* position in sup->heap, or SIZE_MAX */
    int64_t next_slot;         /* next scheduled instant (Unix s), 0 if none */
    int64_t next_due_ms;       /* next_slot + jitter, Unix ms */
    int64_t last_slot;         /* last slot handled (run, skipped or missed), 0 if none */
    int64_t cur_slot;          /* slot of the primary's current run, 0 if none */
    int64_t pending_slot;      /* replace: slot to start once the current run has stopped */
    int64_t unclaimed_slot;    /* cluster, when_offline skip: the latest slot that could not be
                                * claimed (registry unreachable), claimed again when claims
                                * work again (sup_claims_back); 0 if none */
    char run_id[SUP_RUN_ID_MAX];
    struct sup_proc *ending;   /* the proc whose exit is being fed to the prog, or NULL */

    /* Lifecycle. */
    bool retired;              /* removed by reload: free once procs are gone */
    bool restart_pending;      /* changed by reload: start again once stopped */
    bool closing;
    enum sup_run_status stop_status; /* how to record the run we are stopping */

    /* Operator control (api.c via sched.c). */
    bool paused;               /* no scheduled runs, a service stays stopped; persisted */
    bool pending_now;          /* start an unscheduled run once the current one has stopped */
    bool lease_held;           /* singleton service: this node holds its lease */
    int64_t msg_id;            /* `on:` job: the bus message its run is for, or 0 */
    char *msg_payload;         /* its payload (JSON text) */
    bool msg_fetching;         /* asking the bus for one */
    enum sup_run_status msg_outcome; /* how the message's latest run ended */
    bool lease_pending;        /* a lease request is in flight */

    /* Counters and last-run facts, kept in memory for /status, /health and /metrics. */
    unsigned restarts;
    uint64_t runs_ok, runs_failed, runs_skipped, runs_missed;
    uint64_t runs_timed_out, runs_stopped; /* subsets of runs_failed */
    uint64_t runs_elsewhere;   /* cluster: slots another node claimed and ran */
    uint64_t bad_status_lines;
    uint64_t last_heartbeat_ms;
    int64_t last_success_ms;   /* wall clock of the last succeeded run's end, 0 if none */
    int64_t fire_due_ms;       /* due instant of the slot being started on time, for the lag */
    char *last_error;          /* why the job is FATAL ("gave up after ..."), or NULL */
    struct sup_history history; /* finished runs, open alerts, durations (history.h) */
};

struct sup_registry;
struct sup_http;
struct sup_runlog;

struct sup {
    uv_loop_t *loop;
    struct sup_registry *reg;  /* NULL when the registry is off (registry.h) */
    struct sup_runlog *runlog; /* the runs file (runlog.h), NULL if it could not be opened */
    struct sup_http *http;     /* NULL when no listener is up (http.h) */
    struct sup_cg *cg;     /* runs' cgroups, on or off (cgroup.h); never NULL once started */
    int64_t started_wall_ms;
    uint64_t status_gen;       /* bumped on every change /status shows (http.c's cache key) */
    uint64_t lag_bucket[SUP_LAG_BUCKETS]; /* firing lag of on-time scheduled runs */
    double lag_sum;
    uint64_t lag_count;
    struct md_config *cfg;
    char *config_path;
    struct sup_job *jobs;

    uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
    uv_poll_t clock_poll;  /* timerfd on CLOCK_REALTIME: the schedule's one wake-up */
    int clock_fd;
    int64_t armed_ms;      /* instant the timerfd is armed for, or 0 */
    int64_t burst_ms;      /* a burst of due jobs is being started in parts: its instant */
    const char *burst_reason;

    /* Min-heap of cron jobs by next_due_ms. */
    struct sup_job **heap;
    size_t heap_len, heap_cap;

    /* Clock-jump detection (sched.c). */
    int64_t last_wall_ms;
    int64_t last_boot_minus_mono_ms;

    bool stopping;         /* graceful stop in progress */
    bool closed;           /* the root handles are closing: the loop is about to end */
    int orphan_phase;      /* shutdown: 0 not yet, 1 TERM sent to adopted orphans, 2 KILL sent */
    bool reg_stopping;     /* shutdown: waiting for the registry to ship and close */
    uv_timer_t orphan_timer;
    uv_timer_t reap_timer; /* SIGCHLD: orphans are looked for at most every REAP_DELAY_MS */
    uv_timer_t lease_timer; /* singleton services without their lease ask again */
    unsigned stop_signals; /* SIGTERM/SIGINT received */
    bool state_dirty;
    char *state_path;
    uint64_t run_seq;      /* for run ids of unscheduled runs */
    /* This meshd process's identity among every life of every node: 12 random hex digits,
     * drawn at start.  Execution ids are "<life>-<exec_seq>". */
    char life[SUP_LIFE_MAX];
    uint64_t exec_seq;
    int exit_code;
};

/* sched.c ---------------------------------------------------------------------------------- */

/* Creates the runtime for cfg (takes ownership) and starts every enabled job: services are
 * spawned, cron jobs scheduled (with catch-up from the state directory).  Returns 0 or a
 * negative code (logged). */
int sup_start(struct sup *sup, uv_loop_t *loop, struct md_config *cfg, const char *config_path)
    MD_MUSTCHECK;
/* SIGHUP: loads the file again; a bad file is logged and the old config keeps running. */
void sup_reload(struct sup *sup);
/* The message bus: messages of `type` (NULL: any) may be pending; idle `on:` jobs fetch. */
void sup_bus_wake(struct sup *sup, const char *type);
/* Starts a service (or asks for its lease first, for a singleton in a cluster). */
void sup_service_start(struct sup_job *job);
/* The claims' database session came up or went down (registry.c): leases are gone. */
void sup_leases_changed(struct sup *sup, bool up);
/* Claims work (again): the connection came up, or a claim batch was answered (registry.c).
 * Each job's slot that could not be claimed is claimed now if it is still inside the job's
 * catch-up window and no later slot of the job was handled since; else it is recorded missed
 * with the reason. */
void sup_claims_back(struct sup *sup);
/* At shutdown (sup_shutdown, before the jobs go): every slot that could not be claimed is
 * recorded missed. */
void sup_unclaimed_flush(struct sup *sup);
/* Starts whatever is due now, before other work of this loop iteration (http.c). */
void sup_clock_check(struct sup *sup);
/* SIGTERM/SIGINT: stops every job; the loop ends once every process is gone. */
void sup_shutdown(struct sup *sup);
/* Operator control (the API).  Each returns 0, or a negative code with a message in err:
 * MD_ENOTFOUND-like conflicts use -EBUSY (a run is in progress), -EALREADY (nothing to do),
 * -ESHUTDOWN (meshd is stopping). */
int sup_job_run_now(struct sup_job *job, char *run_id, size_t len, char *err, size_t errlen);
int sup_job_set_paused(struct sup_job *job, bool paused);
int sup_job_restart(struct sup_job *job, char *err, size_t errlen);
int sup_job_stop(struct sup_job *job, char *err, size_t errlen);
/* Finds a live (not retired) job by name. */
struct sup_job *sup_job_find(struct sup *sup, const char *name);
/* Reloads like SIGHUP; diag (may be NULL) receives the file's errors and warnings. */
int sup_reload_diag(struct sup *sup, struct md_diag *diag);

/* Called by spawn.c when a proc is gone (all its handles closed). */
void sup_job_proc_gone(struct sup_job *job);
/* Releases what sup_start allocated, once the loop has ended. */
void sup_cleanup(struct sup *sup);

/* spawn.c ---------------------------------------------------------------------------------- */

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
/* Stops an extra or adopted run: its stop signal now, SIGKILL every stop_timeout after. */
void sup_proc_stop(struct sup_proc *p);
/* Stops the job's runs adopted from a previous life (concurrency: replace). */
void sup_job_stop_adopted(struct sup_job *job);
/* Sends sig to the proc (its whole group when the job says so). */
void sup_proc_kill(struct sup_proc *p, int sig);
/* Kills every leftover member of each proc's group with SIGKILL (shutdown second signal). */
void sup_job_kill_all(struct sup_job *job);
/* Formats the run id for a slot (or an unscheduled run when slot is 0). */
void sup_run_id(struct sup *sup, const char *job, int64_t slot, char *buf, size_t len);
/* Records a finished run in the job's history (from proc_free, or with p NULL when nothing
 * was launched); moves the proc's output tail into the record. */
void sup_job_note_run(struct sup_job *job, struct sup_proc *p, const char *run_id,
                      enum sup_run_status status, int exit_code, int signal);
/* Keeps a worker's alert/resolve/progress in memory. */
void sup_job_note_status(struct sup_job *job, struct sup_proc *p,
                         const struct md_status_event *ev);
/* Frees the history and alerts (job_close_cb). */
void sup_job_info_free(struct sup_job *job);
/* Observes the firing lag of a run started for an on-time slot. */
void sup_note_lag(struct sup *sup, int64_t lag_ms);
/* Closes the job's handles; the job is freed when they and its procs are gone. */
void sup_job_close(struct sup_job *job);

#endif
