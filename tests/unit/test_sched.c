/* test_sched.c - the scheduler's decisions as pure functions (scheduler_internal.h): the
 * catch-up walk after downtime or a suspend, and the backward clock step.  Table-driven: each
 * row is a cron expression, the job's next slot, "now", its catch-up window and delays, and
 * what the wake must decide. */
#include <stdio.h>

#include "meshd/md_cron.h"
#include "meshd/md_err.h"
#include "meshd/md_time.h"
#include "meshd/md_tz.h"
#include "scheduler_internal.h"
#include "t.h"

#define T0 1764054000LL /* 2025-11-25T07:00:00Z, a Tuesday */
#define MIN 60LL
#define HOUR 3600LL
#define DAY 86400LL

struct walk_case {
    const char *name;
    const char *expr;
    const char *zone;  /* NULL: UTC */
    int64_t next_slot; /* Unix s */
    int64_t now_ms;
    uint64_t catchup_ms;
    uint64_t jitter_ms;
    int64_t takeover_ms;
    /* expected */
    int64_t latest;
    uint64_t missed;
    int64_t before; /* -1: do not check */
    enum sched_verdict verdict;
    int64_t late_ms; /* INT64_MIN: do not check */
};

#define ANY_LATE INT64_MIN

/* clang-format off */ /* one row a case, laid out by hand */
static const struct walk_case walks[] = {
    {"on time to the ms", "0 7 * * *", NULL, T0, T0 * 1000, 0, 0, 0,
     T0, 0, 0, SCHED_ON_TIME, 0},
    {"on time within a second", "0 7 * * *", NULL, T0, T0 * 1000 + 1000, 0, 0, 0,
     T0, 0, 0, SCHED_ON_TIME, 1000},
    {"a second late and no catch-up: missed", "0 7 * * *", NULL, T0, T0 * 1000 + 1001, 0, 0, 0,
     T0, 0, 0, SCHED_MISSED, 1001},
    {"late inside the window: caught up", "0 7 * * *", NULL, T0, (T0 + 30 * MIN) * 1000,
     HOUR * 1000, 0, 0, T0, 0, 0, SCHED_CATCH_UP, 30 * MIN * 1000},
    {"late exactly at the window's edge: caught up", "0 7 * * *", NULL, T0,
     (T0 + HOUR) * 1000, HOUR * 1000, 0, 0, T0, 0, 0, SCHED_CATCH_UP, HOUR * 1000},
    {"just past the window: missed", "0 7 * * *", NULL, T0, (T0 + HOUR) * 1000 + 1,
     HOUR * 1000, 0, 0, T0, 0, 0, SCHED_MISSED, HOUR * 1000 + 1},
    {"jitter does not make a slot late", "0 7 * * *", NULL, T0, T0 * 1000 + 40000, 0, 40000, 0,
     T0, 0, 0, SCHED_ON_TIME, 0},
    {"a takeover delay does not either", "0 7 * * *", NULL, T0, T0 * 1000 + 2500, 0, 0, 2000,
     T0, 0, 0, SCHED_ON_TIME, 500},
    {"three days down, daily job: the latest runs, two missed", "0 7 * * *", NULL, T0,
     (T0 + 2 * DAY + 10 * MIN) * 1000, HOUR * 1000, 0, 0,
     T0 + 2 * DAY, 2, T0 + DAY, SCHED_CATCH_UP, 10 * MIN * 1000},
    {"a night asleep, every minute: all but the latest missed", "* * * * *", NULL, T0,
     (T0 + 8 * HOUR + 30) * 1000, 5 * MIN * 1000, 0, 0,
     T0 + 8 * HOUR, 8 * 60, T0 + 8 * HOUR - MIN, SCHED_CATCH_UP, 30000},
    {"woken right at a later slot: it runs on time", "*/15 * * * *", NULL, T0,
     (T0 + HOUR) * 1000, 0, 0, 0, T0 + HOUR, 4, T0 + 45 * MIN, SCHED_ON_TIME, 0},
    {"a week asleep, hourly, no window: everything missed", "0 * * * *", NULL, T0,
     (T0 + 7 * DAY + 20 * MIN) * 1000, 0, 0, 0,
     T0 + 7 * DAY, 7 * 24, T0 + 7 * DAY - HOUR, SCHED_MISSED, 20 * MIN * 1000},
    {"weekday job over a weekend", "0 7 * * 1-5", NULL, T0 + 3 * DAY /* Fri */,
     (T0 + 6 * DAY + 5) * 1000 /* Mon 07:00:05 */, MIN * 1000, 0, 0,
     T0 + 6 * DAY, 1, T0 + 3 * DAY, SCHED_CATCH_UP, 5000},
    {"a zone: 07:00 New York is 12:00Z", "0 7 * * *", "America/New_York", T0 + 5 * HOUR,
     (T0 + DAY + 5 * HOUR) * 1000, 0, 0, 0, T0 + DAY + 5 * HOUR, 1, T0 + 5 * HOUR,
     SCHED_ON_TIME, 0},
    /* An every-second job after two days asleep: more slots than SCHED_WALK_MAX; the walk
     * jumps to the catch-up window and estimates the count (the latest is exact). */
    {"every second after two days: the walk is bounded", "* * * * * *", NULL, T0,
     (T0 + 2 * DAY) * 1000 + 400, 10 * 1000, 0, 0,
     T0 + 2 * DAY, 2 * DAY, -1, SCHED_ON_TIME, 400},
};
/* clang-format on */

static void load(const char *expr, const char *zone, struct md_cron *c, struct md_tz **tz)
{
    struct md_error e = {0};

    if (md_cron_parse(c, expr, &e) != 0)
        T_FAIL("cron '%s': %s", expr, e.msg);
    *tz = NULL;
    if (zone != NULL && md_tz_load(zone, tz) != 0)
        T_FAIL("zone %s", zone);
}

TEST(catch_up_walk_table)
{
    for (size_t i = 0; i < sizeof walks / sizeof walks[0]; i++) {
        const struct walk_case *c = &walks[i];
        struct md_cron cron;
        struct md_tz *tz;
        struct sched_walk w;

        load(c->expr, c->zone, &cron, &tz);
        sched_walk(&cron, tz, c->next_slot, c->now_ms, c->catchup_ms, c->jitter_ms, c->takeover_ms,
                   &w);
        md_tz_free(tz);
        if (w.first != c->next_slot || w.latest != c->latest || w.missed != c->missed ||
            (c->before >= 0 && w.before != c->before) || w.verdict != c->verdict ||
            (c->late_ms != ANY_LATE && w.late_ms != c->late_ms))
            T_FAIL("%s: latest %lld (want %lld) missed %llu (want %llu) before %lld (want %lld) "
                   "verdict %d (want %d) late %lld (want %lld)",
                   c->name, (long long)w.latest, (long long)c->latest, (unsigned long long)w.missed,
                   (unsigned long long)c->missed, (long long)w.before, (long long)c->before,
                   (int)w.verdict, (int)c->verdict, (long long)w.late_ms, (long long)c->late_ms);
    }
}

TEST(a_bounded_walk_is_fast_and_its_latest_exact)
{
    /* 30 days of every-second slots (2.6 million) must not be walked one by one. */
    struct md_cron cron;
    struct md_tz *tz;
    struct sched_walk w;
    int64_t t = md_time_clock_ms(CLOCK_MONOTONIC);

    load("* * * * * *", NULL, &cron, &tz);
    sched_walk(&cron, tz, T0, (T0 + 30 * DAY) * 1000 + 999, 60 * 1000, 0, 0, &w);
    T_ASSERT_EQ(w.latest, T0 + 30 * DAY);
    T_ASSERT_EQ(w.verdict, SCHED_ON_TIME);
    /* the estimate: within a second's worth of the true 2,592,000 */
    T_ASSERT_TRUE(w.missed > 30 * DAY - 2 && w.missed < 30 * DAY + 2);
    T_ASSERT_TRUE(md_time_clock_ms(CLOCK_MONOTONIC) - t < 5000); /* generous: not a bench */
}

struct step_case {
    const char *expr;
    bool follows;
};

/* clang-format off */ /* one row a case, laid out by hand */
static const struct step_case steps[] = {
    {"* * * * *", true},          /* every minute: keeps running every minute */
    {"*/5 * * * *", true},        /* a step of the wildcard is still a wildcard */
    {"0 * * * *", true},          /* fixed minute, every hour: follows */
    {"30 7 * * *", false},        /* a fixed time does not run again */
    {"0 7 * * 1-5", false},
    {"0,30 9-17 * * *", false},   /* a list and a range: fixed */
    {"*/10 * * * * *", true},     /* seconds field: the minute is still '*' */
    {"@daily", false},
    {"@hourly", true},
};
/* clang-format on */

TEST(backward_clock_step_table)
{
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        struct md_cron cron;
        struct md_tz *tz;

        load(steps[i].expr, NULL, &cron, &tz);
        if (sched_follows_backward_step(&cron) != steps[i].follows)
            T_FAIL("'%s': follows a backward step: %d, want %d", steps[i].expr,
                   (int)sched_follows_backward_step(&cron), (int)steps[i].follows);
    }
}

TEST(backward_step_then_walk_never_reruns_a_fixed_slot)
{
    /* 07:00 ran; the clock steps back to 06:59:30.  The job keeps next_slot = tomorrow 07:00:
     * nothing is due at the new "now", so today's 07:00 does not run twice. */
    struct md_cron cron;
    struct md_tz *tz;
    int64_t next;

    load("0 7 * * *", NULL, &cron, &tz);
    T_ASSERT_FALSE(sched_follows_backward_step(&cron));
    T_ASSERT_EQ(0, md_cron_next(&cron, tz, T0, &next));
    T_ASSERT_EQ(next, T0 + DAY);
    T_ASSERT_TRUE(next * 1000 > (T0 - 30) * 1000); /* not due: the wake does nothing */
    /* An every-minute job follows the new time: scheduled from now - 1, its next slot is
     * 07:00 again - a minute job may run the same minute twice, by design (as cronie). */
    load("* * * * *", NULL, &cron, &tz);
    T_ASSERT_TRUE(sched_follows_backward_step(&cron));
    T_ASSERT_EQ(0, md_cron_next(&cron, tz, T0 - 30 - 1, &next));
    T_ASSERT_EQ(next, T0);
}

T_MAIN()
