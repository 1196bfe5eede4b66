/* prog.c - one program's process state machine (see prog.h for the table and the contract).
 *
 * Shape: prog_step() is one exhaustive switch on the state, each case a switch on the event with
 * no default, so the compiler (-Wswitch) flags any cell added to an enum and not handled here
 * (s6-supervise's table, written as code).  Every state change goes through prog_set_state(),
 * the only writer of p->state (supervisord's change_state); each caller first states which
 * source states it accepts with prog_expect() (supervisord's _assertInState), and the funnel
 * checks the edge against legal_from[] as well.
 *
 * Nothing here touches the outside world: the caller passes the time and the random bits in
 * and carries the actions out.  Asserts guard our own invariants and caller contract
 * violations (bad enum values); an event the caller can legitimately race into (a status line
 * read after the exit, a stale timer, a start request while running) is ignored.
 */
#include "prog.h"

#include <assert.h>
#include <limits.h>
#include <stddef.h>

#include "meshd/md_err.h"

#define S(st) (1u << (st))

/* Which states may enter each state: the edges of the table in prog.h, and nothing else. */
static const unsigned legal_from[PROG_NSTATES] = {
    [PROG_STOPPED] = S(PROG_BACKOFF) | S(PROG_STOPPING) | S(PROG_EXITED) | S(PROG_FATAL),
    [PROG_STARTING] = S(PROG_STOPPED) | S(PROG_BACKOFF) | S(PROG_EXITED) | S(PROG_FATAL),
    [PROG_RUNNING] = S(PROG_STARTING),
    [PROG_BACKOFF] = S(PROG_STARTING) | S(PROG_RUNNING),
    [PROG_STOPPING] = S(PROG_STARTING) | S(PROG_RUNNING),
    [PROG_EXITED] = S(PROG_STARTING) | S(PROG_RUNNING),
    [PROG_FATAL] = S(PROG_STARTING) | S(PROG_RUNNING),
};

/* States that own the prog's timer. */
#define TIMED_STATES (S(PROG_STARTING) | S(PROG_BACKOFF) | S(PROG_STOPPING))

static void prog_expect(const struct prog *p, unsigned mask)
{
    assert(S(p->state) & mask);
    (void)p;
    (void)mask;
}

/* The funnel.  Stamps the time and the reason and records the edge in out (from stays the
 * state prog_step started in, so a two-hop step such as STOPPED -> STARTING -> RUNNING with
 * start_secs 0 reports one change).  Logging and marking the registry dirty are the caller's
 * job, driven by out->from != out->to. */
static void prog_set_state(struct prog *p, enum prog_state to, const char *reason, uint64_t now,
                           struct prog_actions *out)
{
    assert((unsigned)to < PROG_NSTATES);
    assert(legal_from[to] & S(p->state));
    assert(reason != NULL);
    (void)legal_from; /* only read by the assert: keep NDEBUG builds warning-free */
    p->state = to;
    p->state_since_ms = now;
    p->reason = reason;
    if (to == PROG_RUNNING)
        p->running_since_ms = now;
    out->to = to;
    out->reason = reason;
}

uint64_t prog_backoff_ms(const struct prog_policy *pol, unsigned tries, uint32_t rand)
{
    uint64_t initial = pol->backoff_initial_ms;
    uint64_t cap = pol->backoff_max_ms < initial ? initial : pol->backoff_max_ms;
    uint64_t base, j, range, off;

    if (initial == 0)
        return 0;
    /* initial << tries without overflow: shifting by >= 64 is undefined, and any bit shifted
     * out means the true value is above every cap anyway. */
    if (tries >= 64 || initial > (cap >> tries))
        base = cap;
    else
        base = initial << tries;

    /* +-10%: off = floor(rand * (2j + 1) / 2^32), a multiply-shift (no modulo bias, rand 2^31
     * lands exactly on j), split in two so it cannot overflow 64 bits for any base. */
    j = base / 10;
    range = 2 * j + 1;
    off = (range >> 32) * rand + (((range & 0xffffffffu) * rand) >> 32);
    base -= j;
    return base > UINT64_MAX - off ? UINT64_MAX : base + off;
}

/* Spawn from a state without a process.  Arms the start_secs timer, or goes straight on to
 * RUNNING when neither a ready line nor start_secs is asked for (nothing to wait for). */
static void prog_spawn(struct prog *p, const struct prog_policy *pol, uint64_t now,
                       const char *reason, struct prog_actions *out)
{
    prog_expect(p, S(PROG_STOPPED) | S(PROG_BACKOFF) | S(PROG_EXITED) | S(PROG_FATAL));
    out->flags |= ACT_SPAWN;
    prog_set_state(p, PROG_STARTING, reason, now, out);
    if (pol->ready_line)
        return; /* readiness comes as EV_READY; no timer (a start timeout is the caller's) */
    if (pol->start_secs_ms > 0) {
        out->flags |= ACT_ARM_TIMER;
        out->timer_ms = pol->start_secs_ms;
        return;
    }
    /* STARTING -> RUNNING: start_secs 0, ready at spawn */
    prog_set_state(p, PROG_RUNNING, "started (start_secs 0)", now, out);
}

static void run_done(enum prog_outcome outcome, struct prog_actions *out)
{
    out->flags |= ACT_RUN_DONE;
    out->outcome = outcome;
}

/* Entering a state without a timer from one that may own it. */
static void cancel_timer_from(enum prog_state from, struct prog_actions *out)
{
    if (S(from) & TIMED_STATES)
        out->flags |= ACT_CANCEL_TIMER;
}

/* A run attempt ended on its own (EV_EXITED) or never began (EV_SPAWN_FAILED) while STARTING
 * or RUNNING.  The classification and counting rules are in prog.h above prog_step. */
static void run_ended(struct prog *p, const struct prog_policy *pol, const struct prog_input *in,
                      struct prog_actions *out)
{
    enum prog_state from = p->state;
    bool spawn_failed = in->ev == EV_SPAWN_FAILED;
    bool before_ready = from == PROG_STARTING || spawn_failed;
    bool clean = !spawn_failed && in->term_signal == 0 && in->exit_code == 0;
    bool permanent = !spawn_failed && in->term_signal == 0 && in->exit_code == MD_EXIT_PERMANENT;
    bool counts;
    const char *reason;

    prog_expect(p, S(PROG_STARTING) | S(PROG_RUNNING));
    p->last_exit_code = in->exit_code;
    p->last_signal = spawn_failed ? 0 : in->term_signal;
    run_done(clean ? PROG_OUTCOME_SUCCEEDED : PROG_OUTCOME_FAILED, out);

    /* Healthy running clears the streak before this exit is counted.  A spawn failure seen in
     * RUNNING (start_secs 0) never ran, so it never was healthy. */
    if (from == PROG_RUNNING && !spawn_failed && in->now_ms >= p->running_since_ms &&
        in->now_ms - p->running_since_ms >= pol->backoff_reset_ms)
        p->tries = 0;

    if (permanent) {
        /* STARTING|RUNNING -> FATAL: exit 100 means "don't retry" (s6, nginx) */
        cancel_timer_from(from, out);
        out->flags |= ACT_GAVE_UP;
        prog_set_state(p, PROG_FATAL, "permanent failure (exit 100)", in->now_ms, out);
        return;
    }
    if (pol->restart == PROG_RESTART_NEVER) {
        /* STARTING|RUNNING -> EXITED: restart never; failures are recorded, not retried */
        cancel_timer_from(from, out);
        if (clean)
            p->tries = 0;
        prog_set_state(p, PROG_EXITED, clean ? "exited" : "exited, failed (restart never)",
                       in->now_ms, out);
        return;
    }
    if (clean && pol->restart == PROG_RESTART_ON_FAILURE) {
        /* STARTING|RUNNING -> EXITED: success ends the failure streak, even a quick one */
        cancel_timer_from(from, out);
        p->tries = 0;
        prog_set_state(p, PROG_EXITED, "exited", in->now_ms, out);
        return;
    }

    /* Restarting.  A failure counts; so does an exit 0 under restart always before readiness
     * (a service that can't get ready is crash-looping even if it exits cleanly). */
    counts = !clean || before_ready;
    if (!counts) {
        /* RUNNING -> BACKOFF: exit 0 under restart always; the count stays where it is */
        out->flags |= ACT_ARM_TIMER;
        out->timer_ms = prog_backoff_ms(pol, p->tries, in->rand);
        prog_set_state(p, PROG_BACKOFF, "exited (restart always)", in->now_ms, out);
        return;
    }
    if (p->tries < UINT_MAX)
        p->tries++;
    if (pol->max_retries >= 0 && p->tries > (unsigned)pol->max_retries) {
        /* STARTING|RUNNING -> FATAL: retries exhausted */
        cancel_timer_from(from, out);
        out->flags |= ACT_GAVE_UP;
        prog_set_state(p, PROG_FATAL, "retries exhausted", in->now_ms, out);
        return;
    }
    if (spawn_failed)
        reason = "spawn failed";
    else if (from == PROG_STARTING)
        reason = "exited before ready";
    else
        reason = "exited unexpectedly";
    /* STARTING|RUNNING -> BACKOFF: a counted failure with retries left */
    out->flags |= ACT_ARM_TIMER;
    out->timer_ms = prog_backoff_ms(pol, p->tries - 1, in->rand);
    prog_set_state(p, PROG_BACKOFF, reason, in->now_ms, out);
}

/* STARTING|RUNNING -> STOPPING: ask politely, escalate when the timer fires. */
static void stop_process(struct prog *p, const struct prog_policy *pol, const struct prog_input *in,
                         struct prog_actions *out)
{
    prog_expect(p, S(PROG_STARTING) | S(PROG_RUNNING));
    out->flags |= ACT_KILL | ACT_ARM_TIMER;
    out->signal = pol->stop_signal;
    out->timer_ms = pol->stop_timeout_ms;
    prog_set_state(p, PROG_STOPPING, in->reason ? in->reason : "stop requested", in->now_ms, out);
}

/* BACKOFF|EXITED|FATAL -> STOPPED: no process to stop, only a timer to drop. */
static void stop_idle(struct prog *p, const struct prog_input *in, struct prog_actions *out)
{
    prog_expect(p, S(PROG_BACKOFF) | S(PROG_EXITED) | S(PROG_FATAL));
    cancel_timer_from(p->state, out);
    prog_set_state(p, PROG_STOPPED, in->reason ? in->reason : "stop requested", in->now_ms, out);
}

static void impossible(struct prog_actions *out, const char *why)
{
    out->flags = ACT_IMPOSSIBLE;
    out->reason = why;
}

void prog_init(struct prog *p)
{
    *p = (struct prog){.state = PROG_STOPPED, .reason = "not started"};
}

void prog_step(struct prog *p, const struct prog_policy *pol, const struct prog_input *in,
               struct prog_actions *out)
{
    const char *start_reason = in->reason ? in->reason : "start requested";

    assert((unsigned)p->state < PROG_NSTATES);
    assert((unsigned)in->ev < PROG_NEVENTS);
    *out = (struct prog_actions){.from = p->state, .to = p->state};

    switch (p->state) {
    case PROG_STOPPED:
        switch (in->ev) {
        case EV_START:
            /* STOPPED -> STARTING: a fresh start, fresh count */
            p->tries = 0;
            prog_spawn(p, pol, in->now_ms, start_reason, out);
            return;
        case EV_SPAWN_FAILED:
            impossible(out, "spawn failure with no spawn");
            return;
        case EV_EXITED:
            impossible(out, "exit with no process");
            return;
        case EV_READY:       /* a late status line */
        case EV_STOP:        /* already stopped */
        case EV_TIMER_FIRED: /* stale */
            return;
        }
        break;

    case PROG_STARTING:
        switch (in->ev) {
        case EV_SPAWN_FAILED:
        case EV_EXITED:
            /* STARTING -> EXITED|BACKOFF|FATAL: ended before ready */
            run_ended(p, pol, in, out);
            return;
        case EV_READY:
            if (!pol->ready_line)
                return; /* start_secs governs; the line is informational */
            /* STARTING -> RUNNING: ready line received */
            cancel_timer_from(p->state, out);
            prog_set_state(p, PROG_RUNNING, "ready", in->now_ms, out);
            return;
        case EV_TIMER_FIRED:
            if (pol->ready_line)
                return; /* no timer belongs to STARTING in this mode: stale */
            /* STARTING -> RUNNING: start_secs elapsed */
            prog_set_state(p, PROG_RUNNING, "start_secs elapsed", in->now_ms, out);
            return;
        case EV_STOP:
            /* STARTING -> STOPPING: stop requested */
            stop_process(p, pol, in, out);
            return;
        case EV_START: /* already starting: concurrency policy is the caller's */
            return;
        }
        break;

    case PROG_RUNNING:
        switch (in->ev) {
        case EV_EXITED:
        case EV_SPAWN_FAILED: /* only with start_secs 0, see prog.h */
            /* RUNNING -> EXITED|BACKOFF|FATAL: the process ended */
            run_ended(p, pol, in, out);
            return;
        case EV_STOP:
            /* RUNNING -> STOPPING: stop requested */
            stop_process(p, pol, in, out);
            return;
        case EV_START:       /* already running */
        case EV_READY:       /* a second ready line */
        case EV_TIMER_FIRED: /* stale (RUNNING owns no timer) */
            return;
        }
        break;

    case PROG_BACKOFF:
        switch (in->ev) {
        case EV_TIMER_FIRED:
            /* BACKOFF -> STARTING: backoff elapsed (FATAL was decided when the run ended) */
            p->restarts++;
            prog_spawn(p, pol, in->now_ms, "backoff elapsed", out);
            return;
        case EV_STOP:
            /* BACKOFF -> STOPPED: stop requested, drop the backoff timer */
            stop_idle(p, in, out);
            return;
        case EV_SPAWN_FAILED:
            impossible(out, "spawn failure with no spawn");
            return;
        case EV_EXITED:
            impossible(out, "exit with no process");
            return;
        case EV_START: /* the backoff timer will start it */
        case EV_READY: /* a late status line of the last run */
            return;
        }
        break;

    case PROG_STOPPING:
        switch (in->ev) {
        case EV_EXITED:
            /* STOPPING -> STOPPED: it stopped as asked; the count is not touched */
            p->last_exit_code = in->exit_code;
            p->last_signal = in->term_signal;
            run_done(PROG_OUTCOME_KILLED, out);
            cancel_timer_from(p->state, out);
            prog_set_state(p, PROG_STOPPED, "stopped", in->now_ms, out);
            return;
        case EV_SPAWN_FAILED:
            /* STOPPING -> STOPPED: the spawn we were stopping never happened (a caller that
             * reports spawn failures late); nothing left to kill */
            p->last_exit_code = in->exit_code;
            p->last_signal = 0;
            run_done(PROG_OUTCOME_FAILED, out);
            cancel_timer_from(p->state, out);
            prog_set_state(p, PROG_STOPPED, "spawn failed while stopping", in->now_ms, out);
            return;
        case EV_TIMER_FIRED:
            /* STOPPING -> STOPPING: stop timeout, SIGKILL and re-arm until the exit arrives
             * (a process in uninterruptible sleep may take a while to die) */
            out->flags = ACT_KILL | ACT_ARM_TIMER;
            out->signal = PROG_SIGKILL;
            out->timer_ms = pol->stop_timeout_ms < PROG_KILL_REARM_MIN_MS ? PROG_KILL_REARM_MIN_MS
                                                                          : pol->stop_timeout_ms;
            out->reason = "stop timeout: SIGKILL";
            return;
        case EV_START: /* the caller restarts after STOPPED */
        case EV_READY: /* too late */
        case EV_STOP:  /* already stopping */
            return;
        }
        break;

    case PROG_EXITED:
    case PROG_FATAL:
        switch (in->ev) {
        case EV_START:
            /* EXITED -> STARTING: next run (count kept); FATAL -> STARTING: operator or reload
             * gives it a fresh count */
            if (p->state == PROG_FATAL)
                p->tries = 0;
            prog_spawn(p, pol, in->now_ms, start_reason, out);
            return;
        case EV_STOP:
            /* EXITED|FATAL -> STOPPED: stop requested */
            stop_idle(p, in, out);
            return;
        case EV_SPAWN_FAILED:
            impossible(out, "spawn failure with no spawn");
            return;
        case EV_EXITED:
            impossible(out, "exit with no process");
            return;
        case EV_READY:       /* a late status line */
        case EV_TIMER_FIRED: /* stale */
            return;
        }
        break;
    }
    /* Only reachable with an out-of-range state or event (asserted above). */
    *out = (struct prog_actions){.from = p->state, .to = p->state};
}

const char *prog_state_name(enum prog_state s)
{
    static const char *const names[PROG_NSTATES] = {
        [PROG_STOPPED] = "STOPPED", [PROG_STARTING] = "STARTING", [PROG_RUNNING] = "RUNNING",
        [PROG_BACKOFF] = "BACKOFF", [PROG_STOPPING] = "STOPPING", [PROG_EXITED] = "EXITED",
        [PROG_FATAL] = "FATAL",
    };
    return (unsigned)s < PROG_NSTATES ? names[s] : "?";
}

const char *prog_outcome_name(enum prog_outcome o)
{
    switch (o) {
    case PROG_OUTCOME_NONE:
        return "NONE";
    case PROG_OUTCOME_SUCCEEDED:
        return "SUCCEEDED";
    case PROG_OUTCOME_FAILED:
        return "FAILED";
    case PROG_OUTCOME_KILLED:
        return "KILLED";
    }
    return "?";
}

const char *prog_event_name(enum prog_event e)
{
    static const char *const names[PROG_NEVENTS] = {
        [EV_START] = "EV_START", [EV_SPAWN_FAILED] = "EV_SPAWN_FAILED",
        [EV_READY] = "EV_READY", [EV_EXITED] = "EV_EXITED",
        [EV_STOP] = "EV_STOP",   [EV_TIMER_FIRED] = "EV_TIMER_FIRED",
    };
    return (unsigned)e < PROG_NEVENTS ? names[e] : "?";
}
