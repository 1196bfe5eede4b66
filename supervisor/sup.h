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
#include "job.h"
#include "prog.h"

#define SUP_LIFE_MAX 16        /* sup->life: 12 hex digits */


struct sup;
struct sup_job;

struct sup_registry;
struct sup_cluster;
struct sup_bus;
struct sup_http;
struct sup_runlog;

struct sup {
    uv_loop_t *loop;
    struct sup_registry *reg;  /* NULL when the registry is off (registry.h) */
    struct sup_cluster *cluster; /* claims and leases (cluster.h), NULL when off */
    struct sup_bus *bus;       /* the message bus (bus.h), NULL without a registry */
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
    struct sup_job_hooks job_hooks; /* set by sup_start: what jobs tell the layers above */

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
/* Starts a service (or asks for its lease first, for a singleton in a cluster). */
void sup_service_start(struct sup_job *job);
/* The claims' database session came up or went down (cluster_hooks): leases are gone. */
void sup_leases_changed(struct sup *sup, bool up);
/* Claims work (again): the connection came up, or a claim batch was answered (cluster_hooks).
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
/* Reloads like SIGHUP; diag (may be NULL) receives the file's errors and warnings. */
int sup_reload_diag(struct sup *sup, struct md_diag *diag);

/* A job has no process left (job_hooks.idle): a retired job goes, a stop may finish. */
void sup_job_proc_gone(struct sup_job *job);
/* Releases what sup_start allocated, once the loop has ended. */
void sup_cleanup(struct sup *sup);

#endif
