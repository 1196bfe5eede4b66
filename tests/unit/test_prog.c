/* test_prog.c - the process state machine, driven by scripted events and a fake clock.
 *
 * No processes, no loop: each test feeds prog_step() events with made-up times and exit
 * statuses and checks the states and actions (supervisord's test_transition_* with
 * DummyOptions).  The cells_* tests walk every cell of the table in prog.h; the rest pin down
 * the policies: backoff, retries, healthy reset, exit classes, readiness, stop escalation.
 */
#include <stdint.h>
#include <string.h>

#include "prog.h"
#include "t.h"

#define SIGTERM_ 15
#define MID (1u << 31)  /* rand value that gives the jitter-free delay */
#define ANY 0xffffffffu /* "don't check the flags" in a script step */

static struct prog_policy pol_default(void)
{
    return (struct prog_policy){
        .service = true,
        .restart = PROG_RESTART_ON_FAILURE,
        .max_retries = 3,
        .backoff_initial_ms = 1000,
        .backoff_max_ms = 60000,
        .backoff_reset_ms = 10000,
        .start_secs_ms = 1000,
        .ready_line = false,
        .stop_signal = SIGTERM_,
        .stop_timeout_ms = 5000,
    };
}

static struct prog_actions step_full(struct prog *p, const struct prog_policy *pol,
                                     enum prog_event ev, uint64_t now, int code, int sig,
                                     uint32_t rnd, const char *reason)
{
    struct prog_input in = {
        .ev = ev,
        .now_ms = now,
        .exit_code = code,
        .term_signal = sig,
        .rand = rnd,
        .reason = reason,
    };
    struct prog_actions out;

    memset(&out, 0xa5, sizeof out); /* prog_step must fill every field */
    prog_step(p, pol, &in, &out);
    return out;
}

static struct prog_actions step(struct prog *p, const struct prog_policy *pol, enum prog_event ev,
                                uint64_t now, int code, int sig)
{
    return step_full(p, pol, ev, now, code, sig, MID, NULL);
}

/* One line of a script: feed (ev, now, code, sig), expect state and flags (ANY: skip). */
struct sstep {
    enum prog_event ev;
    uint64_t now;
    int code, sig;
    enum prog_state want;
    unsigned flags;
};

static void run_script(int line, struct prog *p, const struct prog_policy *pol,
                       const struct sstep *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct prog_actions a = step(p, pol, s[i].ev, s[i].now, s[i].code, s[i].sig);
        if (p->state != s[i].want || a.to != s[i].want)
            T_FAIL("script at line %d, step %zu (%s): state %s, want %s", line, i,
                   prog_event_name(s[i].ev), prog_state_name(p->state), prog_state_name(s[i].want));
        if (s[i].flags != ANY && a.flags != s[i].flags)
            T_FAIL("script at line %d, step %zu (%s): flags 0x%x, want 0x%x", line, i,
                   prog_event_name(s[i].ev), a.flags, s[i].flags);
    }
}

#define RUN(p, pol, ...)                                                                           \
    do {                                                                                           \
        const struct sstep s_[] = {__VA_ARGS__};                                                   \
        run_script(__LINE__, (p), (pol), s_, sizeof s_ / sizeof s_[0]);                            \
    } while (0)

/* Drives a fresh prog into state st at time now (policy pol must be pol_default-like). */
static void reach(struct prog *p, const struct prog_policy *pol, enum prog_state st, uint64_t now)
{
    prog_init(p);
    if (st == PROG_STOPPED)
        return;
    step(p, pol, EV_START, now, 0, 0);
    switch (st) {
    case PROG_RUNNING:
        step(p, pol, EV_TIMER_FIRED, now, 0, 0);
        break;
    case PROG_BACKOFF:
        step(p, pol, EV_EXITED, now, 1, 0);
        break;
    case PROG_STOPPING:
        step(p, pol, EV_STOP, now, 0, 0);
        break;
    case PROG_EXITED:
        step(p, pol, EV_EXITED, now, 0, 0);
        break;
    case PROG_FATAL:
        step(p, pol, EV_EXITED, now, 100, 0);
        break;
    case PROG_STOPPED:
    case PROG_STARTING:
        break;
    }
    T_ASSERT_STREQ(prog_state_name(p->state), prog_state_name(st));
}

/* One row of the table: for each event (exit/spawn failure with code 1), the expected state
 * and flags.  An ignored cell must leave p byte-for-byte unchanged with reason NULL. */
struct cell {
    enum prog_state to;
    unsigned flags;
};

static void check_row(enum prog_state from, const struct cell row[PROG_NEVENTS])
{
    struct prog_policy pol = pol_default();

    for (int e = 0; e < PROG_NEVENTS; e++) {
        struct prog p, before;
        struct prog_actions a;

        reach(&p, &pol, from, 1000);
        before = p;
        a = step(&p, &pol, (enum prog_event)e, 2000, 1, 0);
        if (p.state != row[e].to || a.flags != row[e].flags)
            T_FAIL("%s + %s: got %s flags 0x%x, want %s flags 0x%x", prog_state_name(from),
                   prog_event_name((enum prog_event)e), prog_state_name(p.state), a.flags,
                   prog_state_name(row[e].to), row[e].flags);
        T_ASSERT_EQ(a.from, from);
        T_ASSERT_EQ(a.to, p.state);
        if (a.flags == 0 && row[e].to == from) {
            T_ASSERT_TRUE(a.reason == NULL);
            T_ASSERT_TRUE(memcmp(&p, &before, sizeof p) == 0);
        } else {
            T_ASSERT_TRUE(a.reason != NULL);
        }
        if (a.flags == ACT_IMPOSSIBLE)
            T_ASSERT_TRUE(memcmp(&p, &before, sizeof p) == 0);
        if (p.state != from)
            T_ASSERT_EQ(p.state_since_ms, 2000);
    }
}

#define RD ACT_RUN_DONE
#define IMP ACT_IMPOSSIBLE

/* Rows in event order: START, SPAWN_FAILED, READY, EXITED, STOP, TIMER_FIRED. */

TEST(cells_stopped)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER},
        {PROG_STOPPED, IMP},
        {PROG_STOPPED, 0},
        {PROG_STOPPED, IMP},
        {PROG_STOPPED, 0},
        {PROG_STOPPED, 0},
    };
    check_row(PROG_STOPPED, row);
}

TEST(cells_starting)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_STARTING, 0},
        {PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {PROG_STARTING, 0}, /* no ready_line: start_secs governs */
        {PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {PROG_STOPPING, ACT_KILL | ACT_ARM_TIMER},
        {PROG_RUNNING, 0},
    };
    check_row(PROG_STARTING, row);
}

TEST(cells_running)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_RUNNING, 0},
        {PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {PROG_RUNNING, 0},
        {PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {PROG_STOPPING, ACT_KILL | ACT_ARM_TIMER},
        {PROG_RUNNING, 0},
    };
    check_row(PROG_RUNNING, row);
}

TEST(cells_backoff)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_BACKOFF, 0},
        {PROG_BACKOFF, IMP},
        {PROG_BACKOFF, 0},
        {PROG_BACKOFF, IMP},
        {PROG_STOPPED, ACT_CANCEL_TIMER},
        {PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER},
    };
    check_row(PROG_BACKOFF, row);
}

TEST(cells_stopping)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_STOPPING, 0}, {PROG_STOPPED, RD | ACT_CANCEL_TIMER},
        {PROG_STOPPING, 0}, {PROG_STOPPED, RD | ACT_CANCEL_TIMER},
        {PROG_STOPPING, 0}, {PROG_STOPPING, ACT_KILL | ACT_ARM_TIMER},
    };
    check_row(PROG_STOPPING, row);
}

TEST(cells_exited)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER},
        {PROG_EXITED, IMP},
        {PROG_EXITED, 0},
        {PROG_EXITED, IMP},
        {PROG_STOPPED, 0},
        {PROG_EXITED, 0},
    };
    check_row(PROG_EXITED, row);
}

TEST(cells_fatal)
{
    const struct cell row[PROG_NEVENTS] = {
        {PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER},
        {PROG_FATAL, IMP},
        {PROG_FATAL, 0},
        {PROG_FATAL, IMP},
        {PROG_STOPPED, 0},
        {PROG_FATAL, 0},
    };
    check_row(PROG_FATAL, row);
}

TEST(cells_ready_line_starting)
{
    /* The STARTING row when readiness is the ready line: the timer is stale, READY counts. */
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.ready_line = true;
    prog_init(&p);
    a = step(&p, &pol, EV_START, 0, 0, 0);
    T_ASSERT_EQ(a.flags, ACT_SPAWN); /* no start_secs timer */
    T_ASSERT_EQ(p.state, PROG_STARTING);
    a = step(&p, &pol, EV_TIMER_FIRED, 5000, 0, 0);
    T_ASSERT_EQ(a.flags, 0);
    T_ASSERT_TRUE(a.reason == NULL);
    T_ASSERT_EQ(p.state, PROG_STARTING);
    a = step(&p, &pol, EV_READY, 7000, 0, 0);
    T_ASSERT_EQ(p.state, PROG_RUNNING);
    T_ASSERT_EQ(a.flags, ACT_CANCEL_TIMER);
    T_ASSERT_STREQ(a.reason, "ready");
    T_ASSERT_EQ(p.running_since_ms, 7000);
    a = step(&p, &pol, EV_READY, 8000, 0, 0); /* a second ready line */
    T_ASSERT_EQ(a.flags, 0);
    T_ASSERT_EQ(p.state, PROG_RUNNING);
}

TEST(names)
{
    T_ASSERT_STREQ(prog_state_name(PROG_STOPPED), "STOPPED");
    T_ASSERT_STREQ(prog_state_name(PROG_STARTING), "STARTING");
    T_ASSERT_STREQ(prog_state_name(PROG_RUNNING), "RUNNING");
    T_ASSERT_STREQ(prog_state_name(PROG_BACKOFF), "BACKOFF");
    T_ASSERT_STREQ(prog_state_name(PROG_STOPPING), "STOPPING");
    T_ASSERT_STREQ(prog_state_name(PROG_EXITED), "EXITED");
    T_ASSERT_STREQ(prog_state_name(PROG_FATAL), "FATAL");
    T_ASSERT_STREQ(prog_state_name((enum prog_state)99), "?");
    T_ASSERT_STREQ(prog_event_name(EV_TIMER_FIRED), "EV_TIMER_FIRED");
    T_ASSERT_STREQ(prog_event_name((enum prog_event) - 1), "?");
    T_ASSERT_STREQ(prog_outcome_name(PROG_OUTCOME_KILLED), "KILLED");
    T_ASSERT_STREQ(prog_outcome_name(PROG_OUTCOME_SUCCEEDED), "SUCCEEDED");
}

TEST(init)
{
    struct prog p;

    memset(&p, 0xff, sizeof p);
    prog_init(&p);
    T_ASSERT_EQ(p.state, PROG_STOPPED);
    T_ASSERT_EQ(p.tries, 0);
    T_ASSERT_EQ(p.restarts, 0);
    T_ASSERT_EQ(p.state_since_ms, 0);
    T_ASSERT_EQ(p.running_since_ms, 0);
    T_ASSERT_TRUE(p.reason != NULL);
}

/* ---- backoff arithmetic ---- */

TEST(backoff_growth_and_cap)
{
    struct prog_policy pol = pol_default();
    const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};

    for (unsigned t = 0; t < sizeof want / sizeof want[0]; t++)
        T_ASSERT_EQ(prog_backoff_ms(&pol, t, MID), want[t]);
}

TEST(backoff_jitter_bounds)
{
    struct prog_policy pol = pol_default();
    const uint32_t rs[] = {0,       1,          12345,          MID - 1,   MID,
                           MID + 1, 0xdeadbeef, UINT32_MAX - 1, UINT32_MAX};

    T_ASSERT_EQ(prog_backoff_ms(&pol, 0, 0), 900);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 0, UINT32_MAX), 1100);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 10, 0), 54000);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 10, UINT32_MAX), 66000);
    for (unsigned t = 0; t < 12; t++) {
        uint64_t base = prog_backoff_ms(&pol, t, MID), prev = 0;
        for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
            uint64_t d = prog_backoff_ms(&pol, t, rs[i]);
            T_ASSERT_TRUE(d >= base - base / 10 && d <= base + base / 10);
            T_ASSERT_TRUE(d >= prev); /* monotonic in rand */
            prev = d;
        }
    }
}

TEST(backoff_no_overflow)
{
    struct prog_policy pol = pol_default();

    pol.backoff_max_ms = UINT64_MAX;
    T_ASSERT_EQ(prog_backoff_ms(&pol, 63, MID), UINT64_MAX);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 64, MID), UINT64_MAX);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 1000, UINT32_MAX), UINT64_MAX); /* saturates */
    T_ASSERT_EQ(prog_backoff_ms(&pol, 1000, 0), UINT64_MAX - UINT64_MAX / 10);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 20, MID), 1000ull << 20);
    pol.backoff_initial_ms = UINT64_MAX / 2 + 1;
    T_ASSERT_EQ(prog_backoff_ms(&pol, 1, MID), UINT64_MAX);
    pol = pol_default();
    T_ASSERT_EQ(prog_backoff_ms(&pol, UINT32_MAX, MID), 60000);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 60, 0), 54000);
}

TEST(backoff_zero_initial)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.backoff_initial_ms = 0;
    for (unsigned t = 0; t < 70; t++)
        T_ASSERT_EQ(prog_backoff_ms(&pol, t, UINT32_MAX), 0);
    /* The benchmark's "backoff 0": a crash re-arms a 0 ms timer, i.e. restart at once. */
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 50000, 0, 9);
    T_ASSERT_EQ(a.flags, RD | ACT_ARM_TIMER);
    T_ASSERT_EQ(a.timer_ms, 0);
}

TEST(backoff_cap_below_initial)
{
    struct prog_policy pol = pol_default();

    pol.backoff_initial_ms = 5000;
    pol.backoff_max_ms = 2000;
    T_ASSERT_EQ(prog_backoff_ms(&pol, 0, MID), 5000);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 3, MID), 5000);
    pol.backoff_max_ms = 0;
    T_ASSERT_EQ(prog_backoff_ms(&pol, 3, MID), 5000);
}

TEST(backoff_tiny_has_no_jitter)
{
    struct prog_policy pol = pol_default();

    pol.backoff_initial_ms = 5;
    T_ASSERT_EQ(prog_backoff_ms(&pol, 0, 0), 5);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 0, UINT32_MAX), 5);
    T_ASSERT_EQ(prog_backoff_ms(&pol, 1, 0), 9); /* 10 - 1 */
    T_ASSERT_EQ(prog_backoff_ms(&pol, 1, UINT32_MAX), 11);
}

TEST(backoff_jitter_through_step)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    reach(&p, &pol, PROG_STARTING, 0);
    a = step_full(&p, &pol, EV_EXITED, 100, 1, 0, 0, NULL);
    T_ASSERT_EQ(a.timer_ms, 900);
    step(&p, &pol, EV_TIMER_FIRED, 1000, 0, 0);
    a = step_full(&p, &pol, EV_EXITED, 1100, 1, 0, UINT32_MAX, NULL);
    T_ASSERT_EQ(a.timer_ms, 2200); /* second failure: 2000 + 10% */
}

/* ---- retries and FATAL ---- */

TEST(fatal_after_max_retries)
{
    /* max_retries 3: three retries, the 4th failure in a row gives up (supervisord's
     * test_transition_backoff_to_fatal, with our counting). */
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;
    const uint64_t delays[] = {1000, 2000, 4000};
    uint64_t now = 0;

    prog_init(&p);
    step(&p, &pol, EV_START, now, 0, 0);
    for (unsigned i = 0; i < 3; i++) {
        a = step(&p, &pol, EV_EXITED, now += 10, 1, 0);
        T_ASSERT_EQ(p.state, PROG_BACKOFF);
        T_ASSERT_EQ(p.tries, i + 1);
        T_ASSERT_EQ(a.timer_ms, delays[i]);
        T_ASSERT_STREQ(a.reason, "exited before ready");
        a = step(&p, &pol, EV_TIMER_FIRED, now += delays[i], 0, 0);
        T_ASSERT_EQ(p.state, PROG_STARTING);
        T_ASSERT_EQ(a.flags, ACT_SPAWN | ACT_ARM_TIMER);
        T_ASSERT_STREQ(a.reason, "backoff elapsed");
        T_ASSERT_EQ(p.restarts, i + 1);
    }
    a = step(&p, &pol, EV_EXITED, now += 10, 1, 0);
    T_ASSERT_EQ(p.state, PROG_FATAL);
    T_ASSERT_EQ(a.flags, RD | ACT_GAVE_UP | ACT_CANCEL_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_STREQ(a.reason, "retries exhausted");
    T_ASSERT_STREQ(p.reason, "retries exhausted");
    T_ASSERT_EQ(p.tries, 4);
    T_ASSERT_EQ(p.state_since_ms, now);
}

TEST(fatal_max_retries_zero)
{
    struct prog_policy pol = pol_default();
    struct prog p;

    pol.max_retries = 0;
    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER},
        {EV_TIMER_FIRED, 1000, 0, 0, PROG_RUNNING, 0},
        {EV_EXITED, 2000, 2, 0, PROG_FATAL, RD | ACT_GAVE_UP});
}

TEST(retry_forever_when_negative)
{
    struct prog_policy pol = pol_default();
    struct prog p;

    pol.max_retries = -1;
    reach(&p, &pol, PROG_STARTING, 0);
    for (unsigned i = 0; i < 200; i++) {
        step(&p, &pol, EV_EXITED, i * 100000ull + 1, 1, 0);
        T_ASSERT_EQ(p.state, PROG_BACKOFF);
        step(&p, &pol, EV_TIMER_FIRED, i * 100000ull + 90000, 0, 0);
        T_ASSERT_EQ(p.state, PROG_STARTING);
    }
    T_ASSERT_EQ(p.tries, 200);
}

TEST(healthy_running_resets_tries)
{
    struct prog_policy pol = pol_default(); /* reset after 10 s of running */
    struct prog p;
    struct prog_actions a;

    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 100, 1, 0, PROG_BACKOFF, ANY}, /* tries 1 */
        {EV_TIMER_FIRED, 1100, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 1200, 1, 0, PROG_BACKOFF, ANY}, /* tries 2 */
        {EV_TIMER_FIRED, 3200, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 4200, 0, 0, PROG_RUNNING, 0}); /* running since 4200 */
    T_ASSERT_EQ(p.tries, 2);
    a = step(&p, &pol, EV_EXITED, 14200, 0, 9); /* exactly backoff_reset_ms of running */
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(p.tries, 1);       /* reset to 0, then this crash counted */
    T_ASSERT_EQ(a.timer_ms, 1000); /* back to the initial delay */
    T_ASSERT_STREQ(a.reason, "exited unexpectedly");
}

TEST(short_running_does_not_reset)
{
    struct prog_policy pol = pol_default();
    struct prog p;

    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 1000, 0, 0, PROG_RUNNING, 0},
        {EV_EXITED, 10999, 1, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER}, /* 9999 ms: tries 1 */
        {EV_TIMER_FIRED, 12000, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 13000, 0, 0, PROG_RUNNING, 0},
        {EV_EXITED, 14000, 1, 0, PROG_BACKOFF, ANY}, /* tries 2 */
        {EV_TIMER_FIRED, 16000, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 17000, 0, 0, PROG_RUNNING, 0},
        {EV_EXITED, 18000, 0, 11, PROG_BACKOFF, ANY}, /* tries 3 */
        {EV_TIMER_FIRED, 22000, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 23000, 0, 0, PROG_RUNNING, 0},
        {EV_EXITED, 24000, 1, 0, PROG_FATAL, RD | ACT_GAVE_UP}); /* tries 4 > 3 */
}

TEST(reset_zero_resets_on_every_running_exit)
{
    /* backoff_reset_ms 0 is STYLE.md's "counters reset once RUNNING is reached". */
    struct prog_policy pol = pol_default();
    struct prog p;

    pol.backoff_reset_ms = 0;
    prog_init(&p);
    step(&p, &pol, EV_START, 0, 0, 0);
    for (unsigned i = 0; i < 20; i++) {
        uint64_t t = i * 10000ull;
        RUN(&p, &pol, {EV_TIMER_FIRED, t + 1000, 0, 0, PROG_RUNNING, 0},
            {EV_EXITED, t + 1001, 1, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER},
            {EV_TIMER_FIRED, t + 3000, 0, 0, PROG_STARTING, ANY});
        T_ASSERT_EQ(p.tries, 1);
    }
}

/* ---- exit classes x restart policies ---- */

TEST(exit100_is_fatal_from_starting_and_running)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    reach(&p, &pol, PROG_STARTING, 0);
    a = step(&p, &pol, EV_EXITED, 10, 100, 0);
    T_ASSERT_EQ(p.state, PROG_FATAL);
    T_ASSERT_EQ(a.flags, RD | ACT_GAVE_UP | ACT_CANCEL_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_STREQ(a.reason, "permanent failure (exit 100)");
    T_ASSERT_EQ(p.tries, 0); /* not a retry count matter */

    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 99999, 100, 0);
    T_ASSERT_EQ(p.state, PROG_FATAL);
    T_ASSERT_EQ(a.flags, RD | ACT_GAVE_UP);
    T_ASSERT_EQ(p.last_exit_code, 100);
}

TEST(exit100_fatal_under_every_policy)
{
    const enum prog_restart rs[] = {PROG_RESTART_NEVER, PROG_RESTART_ON_FAILURE,
                                    PROG_RESTART_ALWAYS};

    for (size_t i = 0; i < 3; i++) {
        struct prog_policy pol = pol_default();
        struct prog p;

        pol.restart = rs[i];
        pol.max_retries = -1;
        reach(&p, &pol, PROG_RUNNING, 0);
        step(&p, &pol, EV_EXITED, 50000, 100, 0);
        T_ASSERT_EQ(p.state, PROG_FATAL);
    }
}

TEST(exit100_with_signal_is_not_permanent)
{
    struct prog_policy pol = pol_default();
    struct prog p;

    reach(&p, &pol, PROG_RUNNING, 0);
    step(&p, &pol, EV_EXITED, 2000, 100, 6);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
}

TEST(restart_never)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.restart = PROG_RESTART_NEVER;
    /* exit 0 */
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 5000, 0, 0);
    T_ASSERT_EQ(p.state, PROG_EXITED);
    T_ASSERT_EQ(a.flags, RD);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_SUCCEEDED);
    T_ASSERT_STREQ(a.reason, "exited");
    /* exit 1 */
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 5000, 1, 0);
    T_ASSERT_EQ(p.state, PROG_EXITED);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_EQ(p.tries, 0);
    T_ASSERT_STREQ(a.reason, "exited, failed (restart never)");
    /* killed by a signal, before ready: the start_secs timer is cancelled */
    reach(&p, &pol, PROG_STARTING, 0);
    a = step(&p, &pol, EV_EXITED, 300, 0, 9);
    T_ASSERT_EQ(p.state, PROG_EXITED);
    T_ASSERT_EQ(a.flags, RD | ACT_CANCEL_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_EQ(p.last_signal, 9);
    T_ASSERT_EQ(p.last_exit_code, 0);
}

TEST(restart_on_failure)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    /* exit 0, even a quick one before start_secs, is a success (unlike supervisord) */
    reach(&p, &pol, PROG_STARTING, 0);
    a = step(&p, &pol, EV_EXITED, 10, 0, 0);
    T_ASSERT_EQ(p.state, PROG_EXITED);
    T_ASSERT_EQ(a.flags, RD | ACT_CANCEL_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_SUCCEEDED);
    /* exit 1 */
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 2000, 1, 0);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_EQ(p.tries, 1);
    /* signal */
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 2000, 0, 15);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_EQ(p.last_signal, 15);
}

TEST(restart_on_failure_success_ends_streak)
{
    struct prog_policy pol = pol_default();
    struct prog p;

    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY}, {EV_EXITED, 10, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 1010, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 1020, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 3020, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 3030, 0, 0, PROG_EXITED, RD | ACT_CANCEL_TIMER});
    T_ASSERT_EQ(p.tries, 0);
}

TEST(restart_always_exit0_after_ready)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.restart = PROG_RESTART_ALWAYS;
    prog_init(&p);
    /* two early failures first: tries 2 */
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY}, {EV_EXITED, 10, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 1010, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 1020, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 3020, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 4020, 0, 0, PROG_RUNNING, 0});
    a = step(&p, &pol, EV_EXITED, 5000, 0, 0); /* short run, clean exit: restart, no count */
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(a.flags, RD | ACT_ARM_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_SUCCEEDED);
    T_ASSERT_EQ(p.tries, 2);
    T_ASSERT_EQ(a.timer_ms, 4000); /* prog_backoff_ms(tries = 2) */
    T_ASSERT_STREQ(a.reason, "exited (restart always)");
    /* many clean exits after readiness never go FATAL */
    for (unsigned i = 0; i < 10; i++) {
        uint64_t t = 10000 + i * 100000ull;
        RUN(&p, &pol, {EV_TIMER_FIRED, t, 0, 0, PROG_STARTING, ANY},
            {EV_TIMER_FIRED, t + 1000, 0, 0, PROG_RUNNING, 0},
            {EV_EXITED, t + 2000, 0, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER});
    }
    T_ASSERT_EQ(p.tries, 2);
}

TEST(restart_always_exit0_before_ready_counts)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.restart = PROG_RESTART_ALWAYS;
    reach(&p, &pol, PROG_STARTING, 0);
    a = step(&p, &pol, EV_EXITED, 10, 0, 0);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(p.tries, 1);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_SUCCEEDED);
    T_ASSERT_STREQ(a.reason, "exited before ready");
    RUN(&p, &pol, {EV_TIMER_FIRED, 2000, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 2010, 0, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 5000, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 5010, 0, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 9000, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 9010, 0, 0, PROG_FATAL, RD | ACT_GAVE_UP | ACT_CANCEL_TIMER});
}

TEST(restart_always_failures)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.restart = PROG_RESTART_ALWAYS;
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 2000, 1, 0);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(p.tries, 1);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_EXITED, 2000, 0, 9);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(p.tries, 1);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
}

/* ---- spawn failure ---- */

TEST(spawn_failure_backs_off_then_gives_up)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.max_retries = 1;
    reach(&p, &pol, PROG_STARTING, 0);
    a = step(&p, &pol, EV_SPAWN_FAILED, 0, -2, 0);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_EQ(a.flags, RD | ACT_ARM_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_EQ(a.timer_ms, 1000);
    T_ASSERT_STREQ(a.reason, "spawn failed");
    T_ASSERT_EQ(p.last_exit_code, -2);
    T_ASSERT_EQ(p.last_signal, 0);
    RUN(&p, &pol, {EV_TIMER_FIRED, 1000, 0, 0, PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER},
        {EV_SPAWN_FAILED, 1000, -2, 0, PROG_FATAL, RD | ACT_GAVE_UP | ACT_CANCEL_TIMER});
}

TEST(spawn_failure_restart_never)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.restart = PROG_RESTART_NEVER;
    reach(&p, &pol, PROG_STARTING, 0);
    a = step(&p, &pol, EV_SPAWN_FAILED, 0, -13, 0);
    T_ASSERT_EQ(p.state, PROG_EXITED);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
    T_ASSERT_EQ(p.last_exit_code, -13);
}

TEST(spawn_failure_in_stopping)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    reach(&p, &pol, PROG_STOPPING, 0);
    a = step(&p, &pol, EV_SPAWN_FAILED, 10, -2, 0);
    T_ASSERT_EQ(p.state, PROG_STOPPED);
    T_ASSERT_EQ(a.flags, RD | ACT_CANCEL_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_FAILED);
}

/* ---- readiness ---- */

TEST(start_secs_path)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    prog_init(&p);
    a = step(&p, &pol, EV_START, 500, 0, 0);
    T_ASSERT_EQ(a.flags, ACT_SPAWN | ACT_ARM_TIMER);
    T_ASSERT_EQ(a.timer_ms, 1000);
    T_ASSERT_STREQ(a.reason, "start requested");
    a = step(&p, &pol, EV_READY, 700, 0, 0); /* informational without ready_line */
    T_ASSERT_EQ(a.flags, 0);
    T_ASSERT_EQ(p.state, PROG_STARTING);
    a = step(&p, &pol, EV_TIMER_FIRED, 1500, 0, 0);
    T_ASSERT_EQ(p.state, PROG_RUNNING);
    T_ASSERT_EQ(a.flags, 0);
    T_ASSERT_EQ(a.from, PROG_STARTING);
    T_ASSERT_STREQ(a.reason, "start_secs elapsed");
    T_ASSERT_EQ(p.running_since_ms, 1500);
}

TEST(ready_line_exit_before_ready)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.ready_line = true;
    pol.start_secs_ms = 0; /* irrelevant in ready_line mode */
    prog_init(&p);
    a = step(&p, &pol, EV_START, 0, 0, 0);
    T_ASSERT_EQ(p.state, PROG_STARTING); /* waits for the line even with start_secs 0 */
    T_ASSERT_EQ(a.flags, ACT_SPAWN);
    a = step(&p, &pol, EV_EXITED, 20000, 1, 0);
    T_ASSERT_EQ(p.state, PROG_BACKOFF);
    T_ASSERT_STREQ(a.reason, "exited before ready");
    a = step(&p, &pol, EV_TIMER_FIRED, 21000, 0, 0);
    T_ASSERT_EQ(a.flags, ACT_SPAWN); /* respawn in ready_line mode arms nothing */
    RUN(&p, &pol, {EV_READY, 21500, 0, 0, PROG_RUNNING, ACT_CANCEL_TIMER},
        {EV_EXITED, 40000, 1, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER});
    T_ASSERT_EQ(p.tries, 1); /* 18.5 s of healthy running reset the count first */
}

TEST(start_secs_zero_goes_straight_to_running)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.start_secs_ms = 0;
    prog_init(&p);
    a = step(&p, &pol, EV_START, 700, 0, 0);
    T_ASSERT_EQ(p.state, PROG_RUNNING);
    T_ASSERT_EQ(a.flags, ACT_SPAWN);
    T_ASSERT_EQ(a.from, PROG_STOPPED);
    T_ASSERT_EQ(a.to, PROG_RUNNING);
    T_ASSERT_EQ(p.running_since_ms, 700);
    T_ASSERT_EQ(p.state_since_ms, 700);
    /* and from BACKOFF too */
    RUN(&p, &pol, {EV_EXITED, 800, 1, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {EV_TIMER_FIRED, 1800, 0, 0, PROG_RUNNING, ACT_SPAWN});
}

TEST(start_secs_zero_spawn_failure)
{
    /* uv_spawn fails after EV_START already said RUNNING: still a failure, never "healthy". */
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.start_secs_ms = 0;
    pol.backoff_reset_ms = 0;
    pol.max_retries = 2;
    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_RUNNING, ACT_SPAWN},
        {EV_SPAWN_FAILED, 0, -2, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {EV_TIMER_FIRED, 1000, 0, 0, PROG_RUNNING, ACT_SPAWN},
        {EV_SPAWN_FAILED, 1000, -2, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER});
    T_ASSERT_EQ(p.tries, 2);
    step(&p, &pol, EV_TIMER_FIRED, 3000, 0, 0);
    a = step(&p, &pol, EV_SPAWN_FAILED, 3000, -2, 0);
    T_ASSERT_EQ(p.state, PROG_FATAL);
    T_ASSERT_EQ(a.flags, RD | ACT_GAVE_UP);
}

/* ---- stopping ---- */

TEST(stop_escalates_to_sigkill)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_STOP, 10000, 0, 0);
    T_ASSERT_EQ(p.state, PROG_STOPPING);
    T_ASSERT_EQ(a.flags, ACT_KILL | ACT_ARM_TIMER);
    T_ASSERT_EQ(a.signal, SIGTERM_);
    T_ASSERT_EQ(a.timer_ms, 5000);
    T_ASSERT_STREQ(a.reason, "stop requested");
    for (int i = 0; i < 3; i++) {
        a = step(&p, &pol, EV_TIMER_FIRED, 15000 + i * 5000ull, 0, 0);
        T_ASSERT_EQ(p.state, PROG_STOPPING);
        T_ASSERT_EQ(a.flags, ACT_KILL | ACT_ARM_TIMER);
        T_ASSERT_EQ(a.signal, PROG_SIGKILL);
        T_ASSERT_EQ(a.timer_ms, 5000);
        T_ASSERT_STREQ(a.reason, "stop timeout: SIGKILL");
        T_ASSERT_EQ(p.state_since_ms, 10000); /* not a state change */
    }
    a = step(&p, &pol, EV_EXITED, 26000, 0, 9);
    T_ASSERT_EQ(p.state, PROG_STOPPED);
    T_ASSERT_EQ(a.flags, RD | ACT_CANCEL_TIMER);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_KILLED);
    T_ASSERT_EQ(p.last_signal, 9);
    T_ASSERT_STREQ(a.reason, "stopped");
}

TEST(stop_clean_exit_is_killed_and_keeps_tries)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY}, {EV_EXITED, 10, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 1010, 0, 0, PROG_STARTING, ANY},
        {EV_STOP, 1100, 0, 0, PROG_STOPPING, ACT_KILL | ACT_ARM_TIMER}); /* replaces start_secs */
    a = step(&p, &pol, EV_EXITED, 1200, 0, 0);
    T_ASSERT_EQ(p.state, PROG_STOPPED);
    T_ASSERT_EQ(a.outcome, PROG_OUTCOME_KILLED);
    T_ASSERT_EQ(p.tries, 1);
    T_ASSERT_EQ(p.last_exit_code, 0);
}

TEST(stop_timeout_zero)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.stop_timeout_ms = 0;
    reach(&p, &pol, PROG_RUNNING, 0);
    a = step(&p, &pol, EV_STOP, 2000, 0, 0);
    T_ASSERT_EQ(a.timer_ms, 0); /* SIGKILL on the next loop turn */
    a = step(&p, &pol, EV_TIMER_FIRED, 2000, 0, 0);
    T_ASSERT_EQ(a.signal, PROG_SIGKILL);
    T_ASSERT_EQ(a.timer_ms, PROG_KILL_REARM_MIN_MS); /* no SIGKILL spin */
}

TEST(stop_without_process)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    reach(&p, &pol, PROG_BACKOFF, 0);
    a = step_full(&p, &pol, EV_STOP, 300, 0, 0, MID, "shutdown");
    T_ASSERT_EQ(p.state, PROG_STOPPED);
    T_ASSERT_EQ(a.flags, ACT_CANCEL_TIMER);
    T_ASSERT_STREQ(a.reason, "shutdown");
    T_ASSERT_STREQ(p.reason, "shutdown");
    T_ASSERT_EQ(p.state_since_ms, 300);

    reach(&p, &pol, PROG_FATAL, 0);
    a = step(&p, &pol, EV_STOP, 400, 0, 0);
    T_ASSERT_EQ(p.state, PROG_STOPPED);
    T_ASSERT_EQ(a.flags, 0);
    T_ASSERT_EQ(a.from, PROG_FATAL);
    T_ASSERT_STREQ(a.reason, "stop requested");
}

TEST(stop_reason_run_timeout)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    reach(&p, &pol, PROG_RUNNING, 0);
    a = step_full(&p, &pol, EV_STOP, 3600000, 0, 0, MID, "run timeout");
    T_ASSERT_EQ(p.state, PROG_STOPPING);
    T_ASSERT_STREQ(a.reason, "run timeout");
}

/* ---- starting again ---- */

TEST(start_from_fatal_resets_tries)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    struct prog_actions a;

    pol.max_retries = 0;
    reach(&p, &pol, PROG_STARTING, 0);
    step(&p, &pol, EV_EXITED, 10, 1, 0);
    T_ASSERT_EQ(p.state, PROG_FATAL);
    T_ASSERT_EQ(p.tries, 1);
    a = step_full(&p, &pol, EV_START, 5000, 0, 0, MID, "operator");
    T_ASSERT_EQ(p.state, PROG_STARTING);
    T_ASSERT_EQ(a.flags, ACT_SPAWN | ACT_ARM_TIMER);
    T_ASSERT_EQ(p.tries, 0);
    T_ASSERT_STREQ(a.reason, "operator");
}

TEST(start_from_stopped_resets_tries)
{
    struct prog_policy pol = pol_default();
    struct prog p;

    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY}, {EV_EXITED, 10, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 1010, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 1020, 1, 0, PROG_BACKOFF, ANY},
        {EV_STOP, 1030, 0, 0, PROG_STOPPED, ACT_CANCEL_TIMER});
    T_ASSERT_EQ(p.tries, 2);
    step(&p, &pol, EV_START, 2000, 0, 0);
    T_ASSERT_EQ(p.tries, 0);
}

TEST(start_from_exited_keeps_tries)
{
    /* Only a policy change (reload) can leave a count behind in EXITED; it survives. */
    struct prog_policy pol = pol_default();
    struct prog p;

    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_STARTING, ANY}, {EV_EXITED, 10, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 1010, 0, 0, PROG_STARTING, ANY});
    pol.restart = PROG_RESTART_NEVER;
    RUN(&p, &pol, {EV_EXITED, 1020, 1, 0, PROG_EXITED, RD | ACT_CANCEL_TIMER},
        {EV_START, 60000, 0, 0, PROG_STARTING, ACT_SPAWN | ACT_ARM_TIMER});
    T_ASSERT_EQ(p.tries, 1);
}

TEST(cron_job_lifecycle)
{
    /* A run-to-completion job: each fire runs once and waits in EXITED. */
    struct prog_policy pol = pol_default();
    struct prog p;

    pol.service = false;
    pol.start_secs_ms = 0;
    prog_init(&p);
    RUN(&p, &pol, {EV_START, 0, 0, 0, PROG_RUNNING, ACT_SPAWN},
        {EV_EXITED, 300, 0, 0, PROG_EXITED, RD}, {EV_TIMER_FIRED, 400, 0, 0, PROG_EXITED, 0},
        {EV_START, 60000, 0, 0, PROG_RUNNING, ACT_SPAWN},
        {EV_START, 60001, 0, 0, PROG_RUNNING, 0}, /* overlap: caller's concurrency policy */
        {EV_EXITED, 60300, 3, 0, PROG_BACKOFF, RD | ACT_ARM_TIMER},
        {EV_START, 60400, 0, 0, PROG_BACKOFF, 0},
        {EV_TIMER_FIRED, 61300, 0, 0, PROG_RUNNING, ACT_SPAWN},
        {EV_EXITED, 61400, 0, 0, PROG_EXITED, RD});
    T_ASSERT_EQ(p.tries, 0);
    T_ASSERT_EQ(p.restarts, 1);
}

/* ---- bookkeeping ---- */

TEST(impossible_events_change_nothing)
{
    struct prog_policy pol = pol_default();
    const enum prog_state idle[] = {PROG_STOPPED, PROG_BACKOFF, PROG_EXITED, PROG_FATAL};

    for (size_t i = 0; i < 4; i++) {
        for (int k = 0; k < 2; k++) {
            struct prog p, before;
            struct prog_actions a;

            reach(&p, &pol, idle[i], 0);
            before = p;
            a = step(&p, &pol, k ? EV_EXITED : EV_SPAWN_FAILED, 100, 1, 0);
            T_ASSERT_EQ(a.flags, ACT_IMPOSSIBLE);
            T_ASSERT_EQ(a.from, idle[i]);
            T_ASSERT_EQ(a.to, idle[i]);
            T_ASSERT_TRUE(a.reason != NULL);
            T_ASSERT_TRUE(memcmp(&p, &before, sizeof p) == 0);
        }
    }
}

TEST(state_since_stamped_on_every_change)
{
    struct prog_policy pol = pol_default();
    struct prog p;
    const struct sstep s[] = {
        {EV_START, 100, 0, 0, PROG_STARTING, ANY},
        {EV_TIMER_FIRED, 1100, 0, 0, PROG_RUNNING, ANY},
        {EV_EXITED, 1200, 1, 0, PROG_BACKOFF, ANY},
        {EV_TIMER_FIRED, 2200, 0, 0, PROG_STARTING, ANY},
        {EV_STOP, 2300, 0, 0, PROG_STOPPING, ANY},
        {EV_EXITED, 2400, 0, 15, PROG_STOPPED, ANY},
        {EV_START, 2500, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 2600, 0, 0, PROG_EXITED, ANY},
        {EV_START, 2700, 0, 0, PROG_STARTING, ANY},
        {EV_EXITED, 2800, 100, 0, PROG_FATAL, ANY},
        {EV_STOP, 2900, 0, 0, PROG_STOPPED, ANY},
    };

    prog_init(&p);
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        struct prog_actions a = step(&p, &pol, s[i].ev, s[i].now, s[i].code, s[i].sig);
        T_ASSERT_EQ(p.state, s[i].want);
        T_ASSERT_EQ(p.state_since_ms, s[i].now);
        T_ASSERT_TRUE(a.from != a.to);
        T_ASSERT_TRUE(p.reason == a.reason);
        /* an ignored event afterwards stamps nothing */
        a = step(&p, &pol, EV_READY, s[i].now + 1, 0, 0);
        T_ASSERT_EQ(p.state_since_ms, s[i].now);
    }
}

TEST(run_done_exactly_when_a_run_ends)
{
    /* Feed a long random-ish script and check ACT_RUN_DONE is set iff the step took the prog
     * from a state with a process (STARTING/RUNNING/STOPPING) to one without. */
    struct prog_policy pol = pol_default();
    struct prog p;
    uint32_t x = 12345;
    uint64_t now = 0;

    pol.max_retries = 5;
    prog_init(&p);
    for (int i = 0; i < 5000; i++) {
        struct prog_actions a;
        enum prog_event ev;
        int code;
        bool had, has;

        x = x * 1103515245u + 12345u;
        ev = (enum prog_event)((x >> 16) % PROG_NEVENTS);
        code = ((x >> 8) & 3) == 0 ? 0 : ((x >> 8) & 3) == 1 ? 100 : 1;
        now += (x >> 20) & 0xfff;
        had = p.state == PROG_STARTING || p.state == PROG_RUNNING || p.state == PROG_STOPPING;
        a = step_full(&p, &pol, ev, now, code, 0, x, NULL);
        has = p.state == PROG_STARTING || p.state == PROG_RUNNING || p.state == PROG_STOPPING;
        T_ASSERT_EQ(!!(a.flags & ACT_RUN_DONE), had && !has);
        T_ASSERT_EQ(!!(a.flags & ACT_SPAWN), !had && has);
        T_ASSERT_FALSE((a.flags & ACT_ARM_TIMER) && (a.flags & ACT_CANCEL_TIMER));
        T_ASSERT_EQ(!!(a.flags & ACT_GAVE_UP), a.to == PROG_FATAL && a.from != PROG_FATAL);
        T_ASSERT_EQ(a.to, p.state);
        if (!(a.flags & ACT_RUN_DONE))
            T_ASSERT_EQ(a.outcome, PROG_OUTCOME_NONE);
        if (p.state == PROG_FATAL && a.from != PROG_FATAL && code != 100)
            T_ASSERT_TRUE(p.tries > 5);
    }
}

T_MAIN()
