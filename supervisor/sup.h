/* sup.h - struct sup, the supervisor's root object, and its API (sup.c).
 * Private to supervisor/.
 *
 * Ownership: struct sup owns the current config (sup->cfg) and every struct sup_job.  A job
 * borrows its struct md_job from sup->cfg; reload swaps both in one step (sup.c).  A job owns
 * the struct sup_proc of each live process (job.h, proc.h).  Other modules hang their own
 * state here (reg, cluster, bus, http, cg, runlog), each written by its own file only.
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

#define SUP_LIFE_MAX 16 /* sup->life: 12 hex digits */

struct sup;
struct sup_job;

/* What the supervisor object tells the composition root (main.c), libuv's callback style. */
struct sup_hooks {
    /* Started: the jobs exist, the registry is starting; just before services spawn and due
     * slots run.  The HTTP API comes up here.  A negative return is logged, not fatal. */
    int (*started)(struct sup *sup);
    /* Stopped: every job is down and the registry closed; the root handles close next. */
    void (*stopped)(struct sup *sup);
};

struct sup_registry;
struct sup_cluster;
struct sup_bus;
struct sup_http;
struct sup_runlog;

struct sup {
    uv_loop_t *loop;
    struct sup_registry *reg;    /* NULL when the registry is off (registry.h) */
    struct sup_cluster *cluster; /* claims and leases (cluster.h), NULL when off */
    struct sup_bus *bus;         /* the message bus (bus.h), NULL without a registry */
    struct sup_runlog *runlog;   /* the runs file (runlog.h), NULL if it could not be opened */
    struct sup_http *http;       /* NULL when no listener is up (http.h) */
    struct sup_cg *cg;           /* runs' cgroups, on or off (cgroup.h); never NULL once started */
    int64_t started_wall_ms;
    uint64_t status_gen; /* bumped on every change /status shows (http.c's cache key) */
    uint64_t lag_bucket[SUP_LAG_BUCKETS]; /* firing lag of on-time scheduled runs */
    double lag_sum;
    uint64_t lag_count;
    struct md_config *cfg;
    char *config_path;
    struct sup_job *jobs;
    struct sup_job_hooks job_hooks;      /* set by sup_start: what jobs tell the layers above */
    struct sup_hooks hooks;              /* what sup tells main.c */
    const struct sup_proc_ops *proc_ops; /* how jobs run processes (proc.h); tests fake it */

    uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
    uv_poll_t clock_poll; /* timerfd on CLOCK_REALTIME: the schedule's one wake-up */
    int clock_fd;
    int64_t armed_ms; /* instant the timerfd is armed for, or 0 */
    int64_t burst_ms; /* a burst of due jobs is being started in parts: its instant */
    const char *burst_reason;

    /* Min-heap of cron jobs by next_due_ms. */
    struct sup_job **heap;
    size_t heap_len, heap_cap;

    /* Clock-jump detection (scheduler.c). */
    int64_t last_wall_ms;
    int64_t last_boot_minus_mono_ms;

    bool stopping;     /* graceful stop in progress */
    bool closed;       /* the root handles are closing: the loop is about to end */
    int orphan_phase;  /* shutdown: 0 not yet, 1 TERM sent to adopted orphans, 2 KILL sent */
    bool reg_stopping; /* shutdown: waiting for the registry to ship and close */
    uv_timer_t orphan_timer;
    uv_timer_t reap_timer;  /* SIGCHLD: orphans are looked for at most every REAP_DELAY_MS */
    uv_timer_t lease_timer; /* singleton services without their lease ask again */
    unsigned stop_signals;  /* SIGTERM/SIGINT received */
    bool state_dirty;
    char *state_path;
    uint64_t run_seq; /* for run ids of unscheduled runs */
    /* This meshd process's identity among every life of every node: 12 random hex digits,
     * drawn at start.  Execution ids are "<life>-<exec_seq>". */
    char life[SUP_LIFE_MAX];
    uint64_t exec_seq;
    int exit_code;
};

/* sup.c ------------------------------------------------------------------------------------ */

/* Creates the runtime for cfg (takes ownership) and starts every enabled job: services are
 * spawned, cron jobs scheduled (with catch-up from the state directory).  hooks (copied; may be
 * NULL) hear of the start and the end.  Returns 0 or a negative code (logged). */
int sup_start(struct sup *sup, uv_loop_t *loop, struct md_config *cfg, const char *config_path,
              const struct sup_hooks *hooks) MD_MUSTCHECK;
/* SIGHUP: loads the file again; a bad file is logged and the old config keeps running. */
void sup_reload(struct sup *sup);
/* SIGTERM/SIGINT: stops every job; the loop ends once every process is gone. */
void sup_shutdown(struct sup *sup);
/* Reloads like SIGHUP; diag (may be NULL) receives the file's errors and warnings. */
int sup_reload_diag(struct sup *sup, struct md_diag *diag);

/* Starts what a job should be doing now: a service runs, a cron job waits for its slot, an
 * on: job takes a message (nothing when it is disabled or paused). */
void sup_job_activate(struct sup_job *job, int64_t now_s);
/* A job has no process left (job_hooks.idle): a retired job goes, a stop may finish. */
void sup_job_proc_gone(struct sup_job *job);
/* Releases what sup_start allocated, once the loop has ended. */
void sup_cleanup(struct sup *sup);

#endif
