/* proc.h - one child process of meshd and its pipes: the process adapter.
 *
 * sup_proc_spawn() starts a program described by a struct sup_proc_spec and watches it: the
 * child leads its own session and process group, gets spec->stdin on fd 0 (then EOF), has fd 1
 * and fd 2 read line by line into meshd's log and the output tail, and fd 3, the status pipe
 * (MESHD_STATUS_FD), read with a 64 KiB line cap and parsed with md_status_parse.  Its exit is
 * seen through a pidfd; after it, the pipes are drained for a moment, then everything closes.
 *
 * The proc knows nothing of jobs.  News goes up through the callbacks its owner hands in
 * (libuv's exit_cb style): a status line, the exit, a run timeout, the last close.  The owner
 * (job.c) keeps the proc on its own list (next) and may read every field; proc.c writes all of
 * them but those marked "owner".
 *
 * A proc is heap-allocated, owns eight handles and frees itself when the last one has closed;
 * before that its owner hears closed() and, once it is freed, gone().
 */
#ifndef MESHD_PROC_H
#define MESHD_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "meshd/md_linebuf.h"
#include "meshd/md_log.h"
#include "meshd/md_status.h"
#include "cgroup.h"
#include "history.h"

#define SUP_OUTPUT_LINE_MAX 8192 /* stdout/stderr lines are cut here */
#define SUP_EXEC_ID_MAX 40       /* "<life>-<seq>" */

struct sup_proc;
struct sup_runlog;
struct sup_runlog_run;

/* What a proc tells its owner.  ud is spec->ud.  Every callback may be NULL but exited. */
struct sup_proc_cbs {
    /* A valid status line (md_status.h), after proc.c logged it; ev is borrowed. */
    void (*status)(struct sup_proc *p, const struct md_status_event *ev, void *ud);
    /* A status line that did not parse (logged and counted in p->bad_status). */
    void (*bad_status)(struct sup_proc *p, void *ud);
    /* The run timeout expired.  Return true when the owner stops the run itself; false and the
     * proc escalates on its own: the stop signal, then SIGKILL every stop_timeout. */
    bool (*timed_out)(struct sup_proc *p, void *ud);
    /* The child ended (p->exited is set, p->duration_ms known); exit_code is -1 and
     * term_signal 0 when it cannot be known (an adopted run).  The owner calls
     * sup_proc_finish first; the pipes drain afterwards. */
    void (*exited)(struct sup_proc *p, int exit_code, int term_signal, void *ud);
    /* Every handle is closed and the run's usage read (p->usage): the last moment p may be
     * read.  Then the runs file learns the run is over, p is freed, and gone(ud) follows. */
    void (*closed)(struct sup_proc *p, void *ud);
    void (*gone)(void *ud);
};

/* What to run.  Strings are borrowed for the call only, but name, which the proc borrows until
 * gone() (the owner's name for it in the log). */
struct sup_proc_spec {
    uv_loop_t *loop;
    const struct sup_proc_cbs *cbs;
    void *ud;
    const char *name;
    const char *run_id;
    const char *exec_id;
    int64_t slot;      /* scheduled instant (Unix s), or 0 */
    char kind;         /* the runs file's kind: 's' slot, 'm' manual, 'v' service, 'e' event */
    char *const *argv; /* argv[0] looked up in envp's PATH */
    char *const *envp;
    const char *cwd;        /* NULL: meshd's */
    const char *user;       /* NULL: meshd's user */
    const char *stdin_data; /* written to fd 0, then EOF */
    uint64_t timeout_ms;    /* 0: none */
    int stop_signal;
    uint64_t stop_timeout_ms;
    bool stop_group;    /* signals go to the child's whole process group */
    uint32_t log_burst; /* each stream's log limit (md_log_limit) */
    uint64_t log_interval_ms;
    struct sup_cg *cg;         /* runs' cgroups (cgroup.h), or NULL */
    struct sup_runlog *runlog; /* the runs file (runlog.h), or NULL */
};

/* The largest result summary a run keeps (compact JSON bytes; a larger one is noted as truncated):
 * with the output tail's share it keeps the registry's run_end event under 64 KiB. */
#define SUP_SUMMARY_MAX MD_STATUS_SUMMARY_MAX

struct sup_proc {
    uv_poll_t exitw; /* readable when the child has exited (a pidfd) */
    int pidfd;       /* the child's pidfd (launch.h); closed in proc_free */
    uv_pipe_t in, out, err, status;
    uv_timer_t timeout; /* run timeout, then the stop's SIGKILL escalation, then the drain */
    uv_timer_t logw;    /* log_limit: armed while a window holds suppressed lines, to log their
                         * summary when it ends */
    uv_check_t resume;  /* restarts the pipes paused after a full read (read_pause) */
    unsigned paused;    /* those pipes: 1 stdout, 2 stderr, 4 status */
    uv_write_t write_req;
    int pending_closes;
    const struct sup_proc_cbs *cbs;
    void *ud;
    const char *name;
    struct sup_runlog *runlog;
    struct sup_proc *next; /* owner: its list of procs */
    int pid;
    bool primary; /* owner: driven by the job's prog state machine */
    bool exited;
    bool launched; /* a child exists: exitw is initialized and needs closing */
    bool adopted;  /* a previous life's run, taken over at start-up (sup_proc_adopt): not
                    * our child (its exit status cannot be had), no pipes */
    bool timed_out;
    bool killing; /* a stop is under way: stop signal sent, SIGKILL next */
    bool stop_group;
    int stop_signal;
    uint64_t stop_timeout_ms;
    char run_id[SUP_RUN_ID_MAX];
    /* This execution's identity, "<life>-<seq>": one per spawn (a retry of the same run gets
     * a new one); the life part names the meshd process that started it. */
    char exec_id[SUP_EXEC_ID_MAX];
    int64_t slot;        /* scheduled instant (Unix s), or 0 */
    uint64_t started_ms; /* loop time */
    int64_t started_wall_ms;
    uint64_t duration_ms; /* known once exited */
    bool has_progress, has_total;
    double progress_done, progress_total;
    char *progress_unit;
    char *stdin_data;
    struct md_linebuf lb_out, lb_err, lb_status;
    struct md_log_limit limit[3]; /* log_limit of stdout, stderr and the status stream's lines */
    struct sup_tail tail;         /* the last output lines (history.h) */
    unsigned bad_status;
    char *result;              /* last {"event":"result"} status word, or NULL */
    char *result_summary;      /* its summary object, compact JSON <= SUP_SUMMARY_MAX, or NULL */
    struct sup_cg_run *cg;     /* the run's cgroup (cgroup.h), or NULL: released before closed() */
    struct sup_cg_usage usage; /* read from it before closed() */
    /* owner: how the run ended, set when it is recorded; the registry's run_end goes out in
     * closed(), after the pipes were drained, so it carries the whole output tail. */
    bool end_recorded;
    enum sup_run_status end_status;
    int end_code, end_signal;
    bool end_retry;          /* owner: the run goes on with another attempt (not over yet) */
    const char *end_gave_up; /* owner: the job went FATAL with this end: why (static), or NULL */
    unsigned end_tries;      /* owner: failures in a row, this one included */
};

/* Starts spec's program.  *out is the new proc in every case: on failure (a negative errno,
 * logged, a failing exec included: launch.h) it is already exited and closing itself, and its
 * owner still hears closed() and gone(). */
int sup_proc_spawn(const struct sup_proc_spec *spec, struct sup_proc **out);

/* Takes over a run a previous life of meshd started (runlog.h r, borrowed; cg: its run cgroup,
 * taken over, or NULL): watched through a pidfd, no pipes, its run timeout (spec->timeout_ms)
 * counted from its real start.  spec's argv, envp, stdin and the like are not used.  Returns 0,
 * or -ESRCH when the process is gone after all or is another one now (cg is then released). */
int sup_proc_adopt(const struct sup_proc_spec *spec, const struct sup_runlog_run *r,
                   struct sup_cg_run *cg, struct sup_proc **out);

/* Sends sig to the proc (its whole group when spec->stop_group; with SIGKILL and a cgroup, the
 * whole cgroup). */
void sup_proc_kill(struct sup_proc *p, int sig);
/* Stops the run: its stop signal now, SIGKILL every stop_timeout after, until it is gone. */
void sup_proc_stop(struct sup_proc *p);
/* SIGKILL now (shutdown's second signal), and the exit counts as a stop. */
void sup_proc_kill_hard(struct sup_proc *p);
/* From exited(): logs the exit (expected when meshd stopped the run, or it exited 0) and makes
 * sure nothing the run started outlives it.  With a cgroup, everything left in it is killed;
 * else, when stopped (meshd ended the run) and signals go to the group, the rest of the group. */
void sup_proc_finish(struct sup_proc *p, int exit_code, int term_signal, bool stopped);
/* A reload's new log limits apply to a running proc at once. */
void sup_proc_set_log_limit(struct sup_proc *p, uint32_t burst, uint64_t interval_ms);

/* The operations above as a table: a job calls them through sup->proc_ops, which is
 * sup_proc_ops in the daemon and fakes in tests/unit/test_job.c (no process at all). */
struct sup_proc_ops {
    int (*spawn)(const struct sup_proc_spec *spec, struct sup_proc **out);
    int (*adopt)(const struct sup_proc_spec *spec, const struct sup_runlog_run *r,
                 struct sup_cg_run *cg, struct sup_proc **out);
    void (*kill)(struct sup_proc *p, int sig);
    void (*stop)(struct sup_proc *p);
    void (*kill_hard)(struct sup_proc *p);
    void (*finish)(struct sup_proc *p, int exit_code, int term_signal, bool stopped);
    void (*set_log_limit)(struct sup_proc *p, uint32_t burst, uint64_t interval_ms);
};
extern const struct sup_proc_ops sup_proc_ops;

#endif
