/* prog.h - one program's process state machine: pure, no I/O.
 *
 * prog_step() takes one event (with the loop's monotonic time and the exit status, if any) and
 * returns what the caller must do: spawn, kill, arm or cancel the prog's timer, record a finished
 * run, shout about a program that gave up.  It makes no syscall, reads no clock, allocates nothing
 * and logs nothing, so tests/unit/test_prog.c drives it with scripted events and a fake clock
 * (supervisord's DummyOptions idea).  job.c carries the actions out with libuv and turns libuv
 * callbacks back into events (s6-supervise's state x event table plus supervisord's seam).
 *
 * The table (rows: state now; "-": ignored, see prog_step for the "impossible" cells):
 *
 *  from \ event | START    | SPAWN_FAILED | READY    | EXITED    | STOP     | TIMER_FIRED
 *  -------------+----------+--------------+----------+-----------+----------+----------------
 *  STOPPED      | STARTING | impossible   | -        | impossible| -        | -
 *  STARTING     | -        | run ended    | RUNNING* | run ended | STOPPING | RUNNING**
 *  RUNNING      | -        | run ended*** | -        | run ended | STOPPING | -
 *  BACKOFF      | -        | impossible   | -        | impossible| STOPPED  | STARTING
 *  STOPPING     | -        | STOPPED      | -        | STOPPED   | -        | SIGKILL, re-arm
 *  EXITED       | STARTING | impossible   | -        | impossible| STOPPED  | -
 *  FATAL        | STARTING | impossible   | -        | impossible| STOPPED  | -
 *
 *  *   only with policy ready_line; without it EV_READY is ignored (start_secs governs).
 *  **  only without ready_line (the start_secs timer); with it a timer event is stale.
 *  *** only reachable with start_secs 0, where EV_START goes straight to RUNNING and a failing
 *      spawn is reported afterwards; treated exactly like a spawn failure in STARTING.
 *
 * "run ended" classifies the exit (see prog_step) into EXITED, BACKOFF or FATAL.
 *
 * Timer contract: the caller keeps exactly ONE timer per prog.  ACT_ARM_TIMER (re)arms it for
 * timer_ms from now, replacing whatever was armed; ACT_CANCEL_TIMER stops it.  Only STARTING
 * (start_secs), BACKOFF and STOPPING (stop timeout) own a timer; a stale EV_TIMER_FIRED in any
 * other state is ignored.
 */
#ifndef MESHD_PROG_H
#define MESHD_PROG_H

#include <stdbool.h>
#include <stdint.h>

/* Signal sent when the stop timeout elapses.  A plain number keeps this module free of
 * <signal.h>; SIGKILL is 9 on every platform meshd runs on. */
#define PROG_SIGKILL 9

/* Lower bound for the SIGKILL re-arm period, so stop_timeout_ms 0 cannot spin the loop. */
#define PROG_KILL_REARM_MIN_MS 100

enum prog_state {
    PROG_STOPPED,  /* no process, no timer; waits for EV_START (initial state, after a stop) */
    PROG_STARTING, /* spawned, not yet ready: waits for start_secs or the worker's ready line */
    PROG_RUNNING,  /* ready; running_since_ms says since when */
    PROG_BACKOFF,  /* no process; the backoff timer spawns it again when it fires */
    PROG_STOPPING, /* stop signal sent; the timer escalates to SIGKILL until the exit comes */
    PROG_EXITED,   /* no process: the run ended and policy says no restart (waits for next fire) */
    PROG_FATAL,    /* no process: gave up (retries exhausted or exit 100); needs a fresh EV_START */
};
#define PROG_NSTATES 7

enum prog_event {
    EV_START,        /* start requested: scheduler fire, service boot, operator, reload */
    EV_SPAWN_FAILED, /* the spawn failed (ENOENT, EACCES...): no process was created */
    EV_READY,        /* the worker wrote {"event":"ready"} on its status fd */
    EV_EXITED,       /* the process exited or was killed (exit_code / term_signal) */
    EV_STOP,         /* stop requested: operator, shutdown, reload, run timeout */
    EV_TIMER_FIRED,  /* the prog's single timer fired */
};
#define PROG_NEVENTS 6

enum prog_restart {
    PROG_RESTART_NEVER,      /* every exit ends in EXITED */
    PROG_RESTART_ON_FAILURE, /* failures back off and retry; exit 0 ends in EXITED */
    PROG_RESTART_ALWAYS,     /* exit 0 restarts too */
};

/* Copied from the job's config by the caller; passed to each prog_step (borrowed), so a reload
 * may change it between calls. */
struct prog_policy {
    bool service;                /* always-on (informational here: the caller sends EV_START) */
    enum prog_restart restart;   /* what an exit leads to, see prog_step */
    int max_retries;             /* failures in a row before FATAL; < 0: retry forever */
    uint64_t backoff_initial_ms; /* first backoff delay; 0 disables backoff (restart at once) */
    uint64_t backoff_max_ms;     /* cap for the doubling delay (a cap below initial = initial) */
    uint64_t backoff_reset_ms;   /* running this long before an exit clears the failure count */
    uint64_t start_secs_ms;      /* STARTING -> RUNNING after this long (without ready_line) */
    bool ready_line;             /* readiness is the worker's ready line, not start_secs */
    int stop_signal;             /* sent on EV_STOP (SIGTERM usually) */
    uint64_t stop_timeout_ms;    /* grace period before SIGKILL, and between SIGKILLs */
};

/* One program's supervision state.  The caller owns the storage (prog_init/no cleanup needed).
 * All fields are read-only for the caller. */
struct prog {
    enum prog_state state;
    unsigned tries;            /* failures in a row (spawn failures, crashes, early exits) */
    unsigned restarts;         /* automatic respawns from BACKOFF, ever (for the registry) */
    uint64_t state_since_ms;   /* now_ms of the last state change */
    uint64_t running_since_ms; /* now_ms when RUNNING was last entered (0: never) */
    int last_exit_code;        /* of the last run (for EV_SPAWN_FAILED: the caller's code) */
    int last_signal;           /* of the last run; 0 if it exited normally */
    const char *reason;        /* static: why the last state change happened; never NULL */
};

/* One event.  Fields an event doesn't use are ignored. */
struct prog_input {
    enum prog_event ev;
    uint64_t now_ms;    /* the loop's monotonic time (uv_now); never goes backwards */
    int exit_code;      /* EV_EXITED: exit status; EV_SPAWN_FAILED: the error code (e.g. -ENOENT) */
    int term_signal;    /* EV_EXITED: killing signal, 0 if it exited normally */
    uint32_t rand;      /* 32 random bits for backoff jitter (used when arming a backoff) */
    const char *reason; /* optional static string for EV_START / EV_STOP ("run timeout",
                         * "reload", "shutdown"); NULL means the default reason */
};

/* Bits of prog_actions.flags. */
#define ACT_SPAWN (1u << 0)        /* spawn the process now */
#define ACT_KILL (1u << 1)         /* send .signal to the process (group) */
#define ACT_ARM_TIMER (1u << 2)    /* (re)arm the prog's timer for .timer_ms from now */
#define ACT_CANCEL_TIMER (1u << 3) /* stop the prog's timer */
#define ACT_GAVE_UP (1u << 4)      /* went FATAL: log loudly (warn/error "gave up") */
#define ACT_RUN_DONE (1u << 5)     /* a run attempt ended: record .outcome and p->last_* */
/* The event cannot happen in this state (an exit or spawn failure with no process): a caller
 * bug to log; nothing else is set and p is unchanged. */
#define ACT_IMPOSSIBLE (1u << 6)

enum prog_outcome {
    PROG_OUTCOME_NONE,      /* no ACT_RUN_DONE */
    PROG_OUTCOME_SUCCEEDED, /* exit code 0, no signal */
    PROG_OUTCOME_FAILED,    /* nonzero exit, killed by a signal not ours, or spawn failed */
    PROG_OUTCOME_KILLED,    /* ended after we asked it to stop (EV_STOP), whatever its status */
};

/* What prog_step asks the caller to do.  An ignored event gives flags 0, reason NULL and
 * from == to.  A state change shows as from != to; it may come with no action at all (STARTING ->
 * RUNNING on start_secs, EXITED -> STOPPED).  Perform the actions in this order: record
 * ACT_RUN_DONE, then ACT_CANCEL_TIMER / ACT_ARM_TIMER (never both), then ACT_KILL, then ACT_SPAWN
 * last: a synchronous spawn failure (proc.h) feeds EV_SPAWN_FAILED right away, and the timer that
 * event arms must not be overwritten by the start_secs timer of the step that asked for the spawn.
 */
struct prog_actions {
    unsigned flags;            /* ACT_* bits */
    int signal;                /* ACT_KILL: which signal */
    uint64_t timer_ms;         /* ACT_ARM_TIMER: delay from now */
    enum prog_outcome outcome; /* ACT_RUN_DONE: how the run ended */
    enum prog_state from, to;  /* state before/after; from != to iff the state changed */
    const char *reason;        /* static, for the log line; NULL iff the event was ignored */
};

/* Puts p in STOPPED with no tries and no history.  Caller owns p. */
void prog_init(struct prog *p);

/* Applies one event to p under policy pol and fills out (all three borrowed, none kept).
 * Pure and reentrant: callable from any callback.  Events not valid in the current state are
 * ignored: out->flags 0, out->reason NULL, p untouched.  An event that cannot happen at all
 * (an exit or spawn failure while no process exists) sets only ACT_IMPOSSIBLE and a reason.
 *
 * Exit classification (EV_EXITED from STARTING/RUNNING; EV_SPAWN_FAILED counts as a failure):
 *  - exit 100 without a signal: permanent, FATAL at once with ACT_GAVE_UP, whatever the policy.
 *  - failure (nonzero exit or a signal): restart never -> EXITED; otherwise the failure count
 *    goes up and the prog backs off (BACKOFF, timer prog_backoff_ms(pol, tries - 1, rand)), or
 *    goes FATAL with ACT_GAVE_UP once tries > max_retries (max_retries 3: the 4th failure in a
 *    row gives up).
 *  - exit 0: restart never/on-failure -> EXITED and the failure count is cleared (a success ends
 *    the streak; a quick exit 0 is a success, unlike supervisord).  Restart always -> BACKOFF
 *    with prog_backoff_ms(pol, tries, rand) and the count unchanged; but an exit 0 before
 *    readiness (from STARTING) counts as a failure ("exited before ready").
 *  - Before counting, an exit from RUNNING after at least backoff_reset_ms of running clears
 *    the count (healthy running resets it; backoff_reset_ms 0 resets it on reaching RUNNING).
 * EV_START resets the count when it comes from STOPPED or FATAL, not from EXITED.
 * Every run that ends (into EXITED, BACKOFF, FATAL or STOPPED) sets ACT_RUN_DONE. */
void prog_step(struct prog *p, const struct prog_policy *pol, const struct prog_input *in,
               struct prog_actions *out);

/* The backoff delay before retry number tries + 1: min(initial << tries, max) with +-10%
 * jitter taken from rand (rand 0 gives -10%, UINT32_MAX +10%, 1u << 31 the exact value).
 * Saturates instead of overflowing; initial 0 gives 0.  Pure. */
uint64_t prog_backoff_ms(const struct prog_policy *pol, unsigned tries, uint32_t rand);

/* "STOPPED", "STARTING", ...; "?" for values out of range.  Static storage. */
const char *prog_state_name(enum prog_state s);

/* "SUCCEEDED", "FAILED", "KILLED", "NONE"; "?" for values out of range.  Static storage. */
const char *prog_outcome_name(enum prog_outcome o);

/* "EV_START", ...; "?" for values out of range.  Static storage. */
const char *prog_event_name(enum prog_event e);

#endif
