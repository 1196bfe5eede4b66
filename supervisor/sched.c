/* sched.c - jobs, the cron heap, catch-up, reload and shutdown.
 *
 * The next fire instant of every cron job sits in one min-heap; one timer is armed for the
 * earliest.  That timer is a Linux timerfd on CLOCK_REALTIME with TFD_TIMER_ABSTIME, watched
 * by a uv_poll_t, rather than a uv_timer_t, for three reasons:
 *   - it fires at the wall-clock instant itself, so a slot is never late because the monotonic
 *     clock (which libuv timers use) stood still while the machine was suspended;
 *   - TFD_TIMER_CANCEL_ON_SET makes it wake us when the wall clock is stepped (NTP, an admin's
 *     date -s), so a jump is noticed at once, without polling;
 *   - with nothing due, meshd sleeps: there is no periodic tick at all.
 *
 * Clock jumps (our choice, after OpenBSD cron's small/medium/negative/large classes):
 *   - Forward (suspend/resume, NTP step forward, meshd down): every slot that passed is looked
 *     at once when we wake.  The latest one runs if it is at most catch_up late; it and all
 *     earlier ones are otherwise logged as missed, with the reason.  Never more than one run.
 *   - Backward: slots that already ran are never run again (next_slot stays where it was) for
 *     fixed-time jobs, as cronie does; wildcard jobs (minute or hour field starts with '*')
 *     are rescheduled from the new "now", so an every-minute job keeps running every minute.
 * Timeouts and backoff never read the wall clock: they run on libuv's monotonic timers.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_rand.h"
#include "meshd/md_time.h"
#include "cgroup.h"
#include "http.h"
#include "launch.h"
#include "bus.h"
#include "cluster.h"
#include "notify.h"
#include "registry.h"
#include "runlog.h"
#include "sup.h"

/* A slot that starts within this long of its due time is on time, not a catch-up. */
#define ON_TIME_MS 1000
/* Growth of (boot time - monotonic time) beyond this between two wakes means a suspend. */
#define SUSPEND_MS 1000
/* At most this many missed slots of one job are logged one by one; the rest are counted. */
#define MISSED_LOG_MAX 5
/* Bound on the slots walked for one job in one wake (an every-second job after a long sleep):
 * past it the walk skips to the catch-up window, counting the rest without listing them. */
#define WALK_MAX 100000
/* At shutdown, adopted orphans get SIGTERM and this long before SIGKILL. */
#define LEASE_RETRY_MS 3000  /* a singleton service without its lease asks again this often */
#define RUN_BURST 48         /* due jobs started per wake-up; the rest on the next */
#define REAP_DELAY_MS 50    /* SIGCHLD bursts share one orphan scan */
#define ORPHAN_GRACE_MS 5000

static void fmt_slot(int64_t slot, const struct md_tz *tz, char *buf, size_t len)
{
    md_tz_format_iso(tz, slot, buf, len);
}

/* ---- the heap ----------------------------------------------------------------------------- */

static bool heap_less(struct sup_job *a, struct sup_job *b)
{
    return a->next_due_ms < b->next_due_ms;
}

static void heap_swap(struct sup *sup, size_t i, size_t j)
{
    struct sup_job *t = sup->heap[i];

    sup->heap[i] = sup->heap[j];
    sup->heap[j] = t;
    sup->heap[i]->heap_idx = i;
    sup->heap[j]->heap_idx = j;
}

static void heap_up(struct sup *sup, size_t i)
{
    while (i > 0 && heap_less(sup->heap[i], sup->heap[(i - 1) / 2])) {
        heap_swap(sup, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct sup *sup, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < sup->heap_len && heap_less(sup->heap[l], sup->heap[m]))
            m = l;
        if (r < sup->heap_len && heap_less(sup->heap[r], sup->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(sup, i, m);
        i = m;
    }
}

static void heap_remove(struct sup *sup, struct sup_job *job)
{
    size_t i = job->heap_idx;

    if (i == SIZE_MAX)
        return;
    sup->heap_len--;
    if (i != sup->heap_len) {
        sup->heap[i] = sup->heap[sup->heap_len];
        sup->heap[i]->heap_idx = i;
        heap_up(sup, i);
        heap_down(sup, i);
    }
    job->heap_idx = SIZE_MAX;
}

static void heap_push(struct sup *sup, struct sup_job *job)
{
    if (sup->heap_len == sup->heap_cap) {
        sup->heap_cap = sup->heap_cap ? sup->heap_cap * 2 : 16;
        sup->heap = md_xrealloc(sup->heap, sup->heap_cap * sizeof *sup->heap);
    }
    job->heap_idx = sup->heap_len;
    sup->heap[sup->heap_len++] = job;
    heap_up(sup, job->heap_idx);
}

/* ---- the wall-clock timer ----------------------------------------------------------------- */

static void clock_arm(struct sup *sup)
{
    struct itimerspec its;
    int64_t due = sup->heap_len ? sup->heap[0]->next_due_ms : 0;

    if (sup->clock_fd < 0 || due == sup->armed_ms)
        return;
    memset(&its, 0, sizeof its);
    if (due > 0) {
        its.it_value.tv_sec = (time_t)(due / 1000);
        its.it_value.tv_nsec = (long)(due % 1000) * 1000000L;
    }
    /* With nothing due the timer is disarmed, but CANCEL_ON_SET still needs an armed absolute
     * timer to report clock steps, so park it far in the future instead. */
    if (due == 0)
        its.it_value.tv_sec = (time_t)4102444800; /* 2100-01-01 */
    if (timerfd_settime(sup->clock_fd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &its, NULL) < 0)
        md_log_err(MD_LOG_ERROR, -errno, "timerfd_settime");
    sup->armed_ms = due;
}

/* In a cluster, a job that prefers another node is due takeover_after later here: the
 * preferred node claims the slot first, and this one runs it only if nobody did. */
static int64_t takeover_delay_ms(const struct sup_job *job)
{
    const struct md_job *j = job->cfg;

    if (j == NULL || j->prefer == NULL || !job->sup->cfg->cluster ||
        strcmp(j->prefer, job->sup->cfg->node_name) == 0)
        return 0;
    return (int64_t)j->takeover_ms;
}

/* Computes the job's next slot strictly after `after` and puts it in the heap. */
static void job_schedule(struct sup_job *job, int64_t after)
{
    struct sup *sup = job->sup;
    const struct md_job *j = job->cfg;
    int64_t next;

    heap_remove(sup, job);
    job->next_slot = 0;
    if (j == NULL || j->kind != MD_JOB_CRON || !j->enabled || sup->stopping || job->paused)
        return;
    if (md_cron_next(&j->cron, j->tz, after, &next) < 0) {
        md_log(MD_LOG_WARN, "unscheduled: job=%s reason=no fire time in the next 100 years",
               job->name);
        return;
    }
    job->next_slot = next;
    job->next_due_ms = next * 1000 + takeover_delay_ms(job);
    if (j->jitter_ms > 0) {
        job->next_due_ms += (int64_t)md_rand_upto(j->jitter_ms);
    }
    heap_push(sup, job);
}

/* ---- running a slot ----------------------------------------------------------------------- */

/* Busy for a new slot: its own run, or a run a previous life started and this one adopted. */
static bool slot_busy(struct sup_job *job)
{
    return sup_job_busy(job) || sup_job_has_adopted(job);
}

static void run_slot_now(struct sup_job *job, int64_t slot)
{
    const struct md_job *j = job->cfg;
    char when[40];

    fmt_slot(slot, j->tz, when, sizeof when);
    if (slot_busy(job)) {
        switch (j->concurrency) {
        case MD_CONC_FORBID:
            job->runs_skipped++;
            if (sup_job_busy(job))
                md_log(MD_LOG_WARN, "skipped: job=%s slot=%s reason=previous run %s still %s",
                       job->name, when, job->run_id, prog_state_name(job->prog.state));
            else
                md_log(MD_LOG_WARN, "skipped: job=%s slot=%s reason=a run adopted from meshd's "
                       "previous life is still running", job->name, when);
            sup_reg_slot(job, "run_skipped", slot, "previous run still active");
            return;
        case MD_CONC_REPLACE:
            md_log(MD_LOG_NOTICE, "replacing: job=%s slot=%s old_run=%s", job->name, when,
                   job->run_id);
            if (!sup_job_busy(job)) {
                /* Only an adopted run: stop it and start the new one now (they overlap for at
                 * most its stop_timeout). */
                sup_job_stop_adopted(job);
                break;
            }
            job->pending_slot = slot;
            if (job->prog.state != PROG_STOPPING) {
                job->stop_status = RUN_STOPPED;
                sup_job_event(job, EV_STOP, 0, 0);
            }
            return;
        case MD_CONC_ALLOW:
            if (!sup_job_busy(job))
                break; /* only an adopted run: this one is the job's own */
            sup_job_spawn_extra(job, slot);
            return;
        }
    }
    job->cur_slot = slot;
    sup_run_id(job->sup, job->name, slot, job->run_id, sizeof job->run_id);
    sup_job_event(job, EV_START, 0, 0);
}

static void run_slot(struct sup_job *job, int64_t slot);

/* ---- slots that could not be claimed (cluster.when_offline: skip) ------------------------ */

/* A slot whose claim could not be made (no claims connection within claim_timeout, or an SQL
 * error) does not run: another node may run it.  It is remembered, one per job: the latest;
 * when claims work again (sup_claims_back) it is claimed then, if it is still inside the job's
 * catch-up window and no later slot of the job was handled since, and runs if won.  Otherwise
 * it is recorded missed with the reason.  A missed record never hides a run: the registry keeps
 * the first record of a slot, so if another node ran it, that run stays. */
static void unclaimed_missed(struct sup_job *job, int64_t slot, const char *reason)
{
    char when[40];

    fmt_slot(slot, job->cfg->tz, when, sizeof when);
    job->runs_missed++;
    job->sup->status_gen++;
    md_log(MD_LOG_WARN, "missed: job=%s slot=%s reason=%s", job->name, when, reason);
    sup_reg_slot(job, "run_missed", slot, reason);
}

static void unclaimed_remember(struct sup_job *job, int64_t slot)
{
    static const char superseded[] = "could not be claimed (registry unreachable); a later "
                                     "slot superseded it";
    char when[40];

    if (job->unclaimed_slot == slot)
        return;
    if (job->unclaimed_slot > slot) { /* answers out of order: the later one stays */
        unclaimed_missed(job, slot, superseded);
        return;
    }
    if (job->unclaimed_slot != 0)
        unclaimed_missed(job, job->unclaimed_slot, superseded);
    job->unclaimed_slot = slot;
    fmt_slot(slot, job->cfg->tz, when, sizeof when);
    md_log(MD_LOG_WARN, "unclaimed: job=%s slot=%s reason=registry unreachable; it runs if the "
           "registry answers within the catch-up window (cluster.when_offline=skip)", job->name,
           when);
}

void sup_claims_back(struct sup *sup)
{
    int64_t now = md_time_wall_ms();
    bool any = false;

    if (sup->stopping)
        return; /* sup_unclaimed_flush records them */
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        int64_t slot = job->unclaimed_slot, late;
        const struct md_job *j = job->cfg;
        char when[40], reason[200];

        if (slot == 0)
            continue;
        job->unclaimed_slot = 0;
        if (j == NULL || job->retired || j->kind != MD_JOB_CRON)
            continue;
        if (job->last_slot > slot) {
            unclaimed_missed(job, slot, "could not be claimed (registry unreachable); a later "
                                        "slot superseded it");
            continue;
        }
        late = now - slot * 1000 - takeover_delay_ms(job);
        if (late > ON_TIME_MS && (uint64_t)late > j->catchup_ms) {
            snprintf(reason, sizeof reason, "could not be claimed: registry unreachable for "
                     "%" PRId64 "s, past the catch-up window of %" PRIu64 "s", late / 1000,
                     j->catchup_ms / 1000);
            unclaimed_missed(job, slot, reason);
            continue;
        }
        fmt_slot(slot, j->tz, when, sizeof when);
        md_log(MD_LOG_NOTICE, "cluster: claiming job=%s slot=%s again (the registry answers; "
               "late_ms=%" PRId64 ")", job->name, when, late);
        run_slot(job, slot);
        any = true;
    }
    if (any)
        sup_cluster_claims_flush(sup);
}

void sup_unclaimed_flush(struct sup *sup)
{
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        int64_t slot = job->unclaimed_slot;
        job->unclaimed_slot = 0;
        if (slot != 0 && job->cfg != NULL)
            unclaimed_missed(job, slot, "could not be claimed: registry unreachable until meshd "
                                        "stopped");
    }
}

/* The registry's answer to a slot's claim (cluster mode).  late: OFFLINE was reported for it
 * already (claim_timeout), and this is the database's answer after all. */
static void claim_answered(struct sup *sup, const char *name, int64_t slot,
                           enum sup_claim_outcome out, const char *holder, bool late)
{
    struct sup_job *job = sup_job_find(sup, name);
    bool skip = sup->cfg->cluster_offline_skip;
    char when[40];

    if (job == NULL || job->cfg == NULL || sup->stopping || job->cfg->kind != MD_JOB_CRON)
        return;
    fmt_slot(slot, job->cfg->tz, when, sizeof when);
    switch (out) {
    case SUP_CLAIM_WON:
        if (late && !skip)
            return; /* it ran already, as when_offline says: and the slot is ours, good */
        if (late) {
            /* Remembered as unclaimed at the timeout: run it now (the slot is ours) if it is
             * still remembered; else it was recorded missed (our claim row becomes that record)
             * or is being claimed again (that answer decides). */
            if (job->unclaimed_slot != slot)
                return;
            job->unclaimed_slot = 0;
            md_log(MD_LOG_WARN, "cluster: late claim answer for job=%s slot=%s: running it now",
                   job->name, when);
        } else {
            job->fire_due_ms = slot * 1000 + takeover_delay_ms(job);
        }
        if (slot_busy(job) && job->cfg->concurrency == MD_CONC_FORBID) {
            /* It became busy while the claim was out (a run started by hand): the slot's row
             * is ours, so it becomes the slot's skipped record rather than stay 'running'. */
            job->fire_due_ms = 0;
            job->runs_skipped++;
            md_log(MD_LOG_WARN, "skipped: job=%s slot=%s reason=previous run %s still %s",
                   job->name, when, job->run_id, prog_state_name(job->prog.state));
            sup_reg_slot(job, "run_skipped", slot, "previous run still active");
            return;
        }
        run_slot_now(job, slot);
        job->fire_due_ms = 0;
        return;
    case SUP_CLAIM_LOST:
        if (late && !skip) {
            md_log(MD_LOG_ERROR, "cluster: job=%s slot=%s ran here without its claim, and %s "
                   "has it too (when_offline=run)", job->name, when, holder);
            return;
        }
        if (job->unclaimed_slot == slot)
            job->unclaimed_slot = 0; /* another node has it: nothing to retry */
        job->runs_elsewhere++;
        sup->status_gen++;
        md_log(MD_LOG_INFO, "claimed elsewhere: job=%s slot=%s by=%s", job->name, when, holder);
        return;
    case SUP_CLAIM_OFFLINE:
        if (skip) {
            unclaimed_remember(job, slot);
            return;
        }
        md_log(MD_LOG_NOTICE, "cluster: running job=%s slot=%s without a claim (registry "
               "unreachable; cluster.when_offline=run: at-least-once)", job->name, when);
        run_slot_now(job, slot);
        return;
    }
}

static void run_slot(struct sup_job *job, int64_t slot)
{
    char run_id[SUP_RUN_ID_MAX];

    /* A slot skipped here is not claimed: another node may still run it. */
    if (!sup_cluster_on(job->sup) ||
        (slot_busy(job) && job->cfg->concurrency == MD_CONC_FORBID)) {
        run_slot_now(job, slot);
        return;
    }
    sup_run_id(job->sup, job->name, slot, run_id, sizeof run_id);
    sup_cluster_claim(job->sup, job->name, slot, run_id, claim_answered);
}

/* A due job: walk every slot up to now, run the latest if it is on time or inside the catch-up
 * window, log the others as missed, and schedule the next one. */
static void job_due(struct sup_job *job, int64_t now_ms, const char *why)
{
    const struct md_job *j = job->cfg;
    int64_t first = job->next_slot, latest = first, before = 0, n;
    uint64_t count = 1, walked = 0;
    char a[40], b[40];

    while (md_cron_next(&j->cron, j->tz, latest, &n) == 0 && n * 1000 <= now_ms) {
        before = latest; /* the last missed slot, once the walk ends */
        latest = n;
        count++;
        if (++walked != WALK_MAX)
            continue;
        /* Too many to walk one by one (an every-second job after a long sleep): jump to the
         * start of the catch-up window, estimating the slots skipped from the mean period so
         * far.  Only the count is approximate; latest is always a real slot. */
        int64_t from = now_ms / 1000 - (int64_t)(j->catchup_ms / 1000) - 1;
        if (from > latest) {
            int64_t period = (latest - first) / (int64_t)(count - 1);
            count += (uint64_t)((from - latest) / (period > 0 ? period : 1));
            if (md_cron_next(&j->cron, j->tz, from, &n) == 0 && n * 1000 <= now_ms) {
                latest = n;
                count++;
            }
        }
    }
    if (count > 1) {
        uint64_t missed = count - 1;
        job->runs_missed += missed;
        fmt_slot(first, j->tz, a, sizeof a);
        if (missed <= MISSED_LOG_MAX) {
            int64_t s = first;
            for (uint64_t i = 0; i < missed; i++) {
                fmt_slot(s, j->tz, a, sizeof a);
                md_log(MD_LOG_WARN, "missed: job=%s slot=%s reason=%s; a later slot superseded it",
                       job->name, a, why);
                sup_reg_slot(job, "run_missed", s, why);
                if (md_cron_next(&j->cron, j->tz, s, &s) < 0)
                    break;
            }
        } else {
            /* Too many to record one by one (an every-second job after a night asleep, or
             * more due than meshd can start): one record of the gap, never a log line only. */
            fmt_slot(latest, j->tz, b, sizeof b);
            md_log(MD_LOG_WARN, "missed: job=%s count=%" PRIu64 " from=%s before=%s reason=%s",
                   job->name, missed, a, b, why);
            sup_reg_slots_missed(job, first, before, missed, why);
        }
    }

    int64_t late = now_ms - latest * 1000 - (int64_t)j->jitter_ms - takeover_delay_ms(job);
    fmt_slot(latest, j->tz, a, sizeof a);
    if (late <= ON_TIME_MS) {
        job->fire_due_ms = job->next_due_ms; /* proc_spawn observes the firing lag */
        run_slot(job, latest);
        job->fire_due_ms = 0;
    } else if ((uint64_t)late <= j->catchup_ms) {
        md_log(MD_LOG_NOTICE, "catching up: job=%s slot=%s late_ms=%" PRId64 " reason=%s",
               job->name, a, late, why);
        run_slot(job, latest);
    } else {
        job->runs_missed++;
        sup_reg_slot(job, "run_missed", latest, why);
        md_log(MD_LOG_WARN, "missed: job=%s slot=%s late_ms=%" PRId64
               " reason=%s; outside the catch-up window of %" PRIu64 "s",
               job->name, a, late, why, j->catchup_ms / 1000);
    }
    job->last_slot = latest;
    job->sup->state_dirty = true;
    job_schedule(job, latest > now_ms / 1000 ? latest : now_ms / 1000);
}

static void state_save(struct sup *sup);

/* Runs every job that is due, then re-arms the timer for the next one.
 *
 * At most RUN_BURST jobs per wake-up: a thousand jobs due in the same second would otherwise
 * hold the loop for a second of fork+exec, during which no exit, status line or HTTP request
 * is served.  The rest of the burst runs on the next loop iteration (the timer is armed in the
 * past, so it fires at once), judged against the burst's first instant, so they are still "on
 * time" for the catch-up rules. */
static void run_due(struct sup *sup, const char *why)
{
    int64_t now = sup->burst_ms != 0 ? sup->burst_ms : md_time_wall_ms();
    const char *reason = why != NULL ? why : sup->burst_ms != 0 ? sup->burst_reason : NULL;
    unsigned n = 0;

    if (reason == NULL) {
        /* Were we woken late because the machine slept?  CLOCK_BOOTTIME counts suspended
         * time, CLOCK_MONOTONIC does not. */
        int64_t d = md_time_clock_ms(CLOCK_BOOTTIME) - md_time_clock_ms(CLOCK_MONOTONIC);
        reason = d - sup->last_boot_minus_mono_ms > SUSPEND_MS ? "machine was suspended"
                                                               : "meshd was busy";
        sup->last_boot_minus_mono_ms = d;
    }
    sup->burst_ms = 0;
    while (sup->heap_len > 0 && sup->heap[0]->next_due_ms <= now) {
        if (n++ == RUN_BURST) {
            sup->burst_ms = now;
            sup->burst_reason = reason;
            sup->armed_ms = -1; /* re-arm: the next due instant is already past */
            break;
        }
        job_due(sup->heap[0], now, reason);
    }
    sup_cluster_claims_flush(sup); /* the claims of this wake-up, in one round trip */
    if (sup->burst_ms == 0)
        sup->last_wall_ms = now;
    if (sup->state_dirty)
        state_save(sup);
    clock_arm(sup);
}

static void clock_step(struct sup *sup)
{
    int64_t now = md_time_wall_ms();
    int64_t expected = sup->last_wall_ms;

    md_log(MD_LOG_WARN, "clock stepped: wall_ms=%" PRId64 " last_seen_ms=%" PRId64, now,
           expected);
    if (now < expected) {
        /* Backward: fixed-time jobs keep their next slot (what ran does not run again);
         * wildcard jobs follow the new time. */
        for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
            const struct md_job *j = job->cfg;
            if (j == NULL || j->kind != MD_JOB_CRON || job->heap_idx == SIZE_MAX)
                continue;
            if (j->cron.flags & (MD_CRON_MIN_STAR | MD_CRON_HOUR_STAR))
                job_schedule(job, now / 1000 - 1);
        }
    }
    sup->armed_ms = -1; /* the step cancelled the timer: re-arm whatever is due */
    run_due(sup, "wall clock stepped");
}

static void clock_cb(uv_poll_t *h, int status, int events)
{
    struct sup *sup = MD_CONTAINER_OF(h, struct sup, clock_poll);
    uint64_t ticks;
    ssize_t r;

    (void)events;
    if (status < 0) {
        md_log_err(MD_LOG_ERROR, status, "clock poll");
        return;
    }
    r = read(sup->clock_fd, &ticks, sizeof ticks);
    if (r < 0 && errno == ECANCELED) {
        clock_step(sup);
        return;
    }
    if (r < 0 && errno != EAGAIN)
        md_log_err(MD_LOG_ERROR, -errno, "timerfd read");
    sup->armed_ms = -1;
    run_due(sup, NULL);
}

void sup_clock_check(struct sup *sup)
{
    /* The timerfd may be ready in the same epoll batch as other work (a flood of HTTP
     * requests); whoever is about to do a lot of work calls this first, so due jobs start
     * before it, not after.  The timerfd's own wake-up then finds nothing due. */
    if (sup->armed_ms > 0 && !sup->closed && md_time_wall_ms() >= sup->armed_ms)
        run_due(sup, NULL);
}

/* ---- the state file: last slot of each job ------------------------------------------------ */

/* One line per cron job, "name<TAB>slot", rewritten whole (temp file + rename) after each wake
 * that handled a slot.  It is a few hundred bytes into the page cache, without fsync: a crash
 * may lose the last write, which at worst turns one catch-up into a "missed" line. */
static void state_save(struct sup *sup)
{
    char *tmp = md_xasprintf("%s.tmp", sup->state_path);
    FILE *f = fopen(tmp, "we");

    sup->state_dirty = false;
    if (f == NULL) {
        md_log_err(MD_LOG_WARN, -errno, "state not saved: path=%s", tmp);
        md_free(tmp);
        return;
    }
    fputs("# meshd schedule state: job, last handled slot (Unix seconds), [paused]\n", f);
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        if ((job->last_slot != 0 || job->paused) && !job->retired)
            fprintf(f, "%s\t%" PRId64 "%s\n", job->name, job->last_slot,
                    job->paused ? "\tpaused" : "");
    if (fclose(f) != 0 || rename(tmp, sup->state_path) != 0)
        md_log_err(MD_LOG_WARN, -errno, "state not saved: path=%s", sup->state_path);
    md_free(tmp);
}

static void state_load(struct sup *sup)
{
    FILE *f = fopen(sup->state_path, "re");
    char line[512];

    if (f == NULL) {
        if (errno != ENOENT)
            md_log_err(MD_LOG_WARN, -errno, "state not read: path=%s", sup->state_path);
        return;
    }
    while (fgets(line, sizeof line, f) != NULL) {
        char *tab = strchr(line, '\t'), *end;
        long long v;
        if (line[0] == '#' || tab == NULL)
            continue;
        *tab = '\0';
        errno = 0;
        v = strtoll(tab + 1, &end, 10);
        if (errno != 0 || end == tab + 1 || v < 0)
            continue;
        bool paused = strncmp(end, "\tpaused", 7) == 0;
        for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
            if (strcmp(job->name, line) == 0) {
                job->last_slot = v;
                job->paused = paused;
            }
        }
    }
    fclose(f);
}

static int mkdir_p(const char *path)
{
    char *p = md_xstrdup(path);
    int r = 0;

    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            r = -errno;
            goto out;
        }
        *s = '/';
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        r = -errno;
out:
    md_free(p);
    return r;
}

/* ---- singleton services: leases ----------------------------------------------------------- */

/* A singleton service in a cluster with a registry runs only on the node that holds its lease
 * (a session advisory lock on the claims' connection, registry.c). */
static bool needs_lease(const struct sup_job *job)
{
    const struct md_job *j = job->cfg;

    return j != NULL && j->kind == MD_JOB_SERVICE && j->singleton && job->sup->cfg->cluster &&
           job->sup->reg != NULL;
}

static bool wants_to_run(const struct sup_job *job)
{
    return job->cfg != NULL && job->cfg->enabled && !job->paused && !job->retired &&
           !job->sup->stopping;
}

static void lease_answered(struct sup *sup, const char *name, enum sup_lease_answer answer)
{
    struct sup_job *job = sup_job_find(sup, name);

    if (job == NULL) {
        if (answer == SUP_LEASE_GOT)
            sup_cluster_lease_release(sup, name);
        return;
    }
    job->lease_pending = false;
    if (answer != SUP_LEASE_GOT) {
        /* Running without the lease (it was lost with the session, when_offline=run): stop
         * once another node is seen holding it, or at once with when_offline=skip. */
        if (sup_job_busy(job) && !job->lease_held &&
            (answer == SUP_LEASE_HELD || sup->cfg->cluster_offline_skip)) {
            md_log(MD_LOG_WARN, "cluster: job=%s runs here without its lease%s: stopping it",
                   job->name, answer == SUP_LEASE_HELD ? " and another node holds it" : "");
            job->stop_status = RUN_STOPPED;
            sup_job_event(job, EV_STOP, 0, 0);
        }
        return;
    }
    if (!wants_to_run(job) || !needs_lease(job)) {
        sup_cluster_lease_release(sup, name);
        return;
    }
    if (!job->lease_held)
        md_log(MD_LOG_NOTICE, "cluster: lease taken: job=%s runs on this node", job->name);
    job->lease_held = true;
    sup->status_gen++;
    if (!sup_job_busy(job)) {
        job->cur_slot = 0;
        sup_job_event(job, EV_START, 0, 0);
    }
}

static void lease_ask(struct sup_job *job)
{
    if (job->lease_pending)
        return;
    job->lease_pending = true;
    sup_cluster_lease(job->sup, job->name, lease_answered);
}

void sup_service_start(struct sup_job *job)
{
    if (needs_lease(job) && !job->lease_held) {
        lease_ask(job); /* started when the lease is ours */
        return;
    }
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
}

static void lease_timer_cb(uv_timer_t *t);

/* The retry timer runs only while some singleton service may need a lease, so a node without
 * one keeps its zero idle wake-ups.  Called at start and after each reload. */
static void lease_timer_update(struct sup *sup)
{
    bool any = false;

    for (size_t i = 0; i < sup->cfg->njobs; i++)
        any |= sup->cfg->jobs[i].kind == MD_JOB_SERVICE && sup->cfg->jobs[i].singleton;
    any = any && sup->cfg->cluster && sup->reg != NULL;
    if (any && !uv_is_active((uv_handle_t *)&sup->lease_timer))
        uv_timer_start(&sup->lease_timer, lease_timer_cb, LEASE_RETRY_MS, LEASE_RETRY_MS);
    else if (!any)
        uv_timer_stop(&sup->lease_timer);
}

static void lease_timer_cb(uv_timer_t *t)
{
    struct sup *sup = MD_CONTAINER_OF(t, struct sup, lease_timer);

    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        if (needs_lease(job) && !job->lease_held && wants_to_run(job))
            lease_ask(job);
}

void sup_leases_changed(struct sup *sup, bool up)
{
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        if (!needs_lease(job))
            continue;
        if (up) {
            if (!job->lease_held && wants_to_run(job))
                lease_ask(job);
            continue;
        }
        job->lease_pending = false;
        if (!job->lease_held)
            continue;
        job->lease_held = false;
        sup->status_gen++;
        if (sup->cfg->cluster_offline_skip && sup_job_busy(job)) {
            md_log(MD_LOG_WARN, "cluster: lease of job=%s lost with the database session: "
                   "stopping it (when_offline=skip)", job->name);
            job->stop_status = RUN_STOPPED;
            sup_job_event(job, EV_STOP, 0, 0);
        } else if (sup_job_busy(job)) {
            md_log(MD_LOG_WARN, "cluster: lease of job=%s lost with the database session: it "
                   "keeps running here until another node is seen holding it (when_offline=run)",
                   job->name);
        }
    }
}

/* ---- jobs ---------------------------------------------------------------------------------- */

static void job_policy(struct sup_job *job)
{
    const struct md_job *j = job->cfg;
    struct prog_policy *p = &job->pol;

    p->service = j->kind == MD_JOB_SERVICE;
    p->restart = j->restart == MD_RESTART_ALWAYS       ? PROG_RESTART_ALWAYS
                 : j->restart == MD_RESTART_ON_FAILURE ? PROG_RESTART_ON_FAILURE
                                                       : PROG_RESTART_NEVER;
    p->max_retries = j->max_retries;
    p->backoff_initial_ms = j->backoff_initial_ms;
    p->backoff_max_ms = j->backoff_max_ms;
    p->backoff_reset_ms = j->backoff_reset_ms;
    p->start_secs_ms = j->start_secs_ms;
    p->ready_line = j->ready_line;
    p->stop_signal = j->stop_signal;
    p->stop_timeout_ms = j->stop_timeout_ms;
}

static struct sup_job *job_new(struct sup *sup, const struct md_job *cfg)
{
    struct sup_job *job = md_xcalloc(1, sizeof *job);

    job->sup = sup;
    job->name = md_xstrdup(cfg->name);
    job->cfg = cfg;
    job->heap_idx = SIZE_MAX;
    job->stop_status = RUN_STOPPED;
    prog_init(&job->prog);
    job_policy(job);
    uv_timer_init(sup->loop, &job->timer);
    job->timer.data = job;
    job->next = sup->jobs;
    sup->jobs = job;
    return job;
}

/* Starts what a job should be doing now: a service runs, a cron job waits for its slot. */
static void job_activate(struct sup_job *job, int64_t now_s)
{
    const struct md_job *j = job->cfg;

    if (!j->enabled)
        return;
    if (job->paused) {
        md_log(MD_LOG_NOTICE, "paused: job=%s (resume it with meshctl resume %s)", job->name,
               job->name);
        return;
    }
    switch (j->kind) {
    case MD_JOB_SERVICE:
        sup_service_start(job);
        break;
    case MD_JOB_CRON:
        if (job->last_slot != 0 && job->last_slot < now_s) {
            /* Resume from the last handled slot: run_due sees what was missed meanwhile. */
            int64_t next;
            if (md_cron_next(&j->cron, j->tz, job->last_slot, &next) == 0 && next <= now_s) {
                heap_remove(job->sup, job);
                job->next_slot = next;
                job->next_due_ms = next * 1000 + takeover_delay_ms(job);
                heap_push(job->sup, job);
                break;
            }
        }
        job_schedule(job, now_s);
        break;
    case MD_JOB_EVENT:
        sup_bus_wake(job->sup, j->event); /* its messages, if the bus is up */
        break;
    }
}

static void job_deactivate(struct sup_job *job)
{
    heap_remove(job->sup, job);
    job->pending_slot = 0;
    if (job->prog.state != PROG_STOPPED) {
        job->stop_status = RUN_STOPPED;
        sup_job_event(job, EV_STOP, 0, 0);
    }
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (!p->primary && !p->exited && !p->killing)
            sup_proc_stop(p);
}

static void job_unlink(struct sup *sup, struct sup_job *job)
{
    for (struct sup_job **pp = &sup->jobs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            return;
        }
    }
}

static void shutdown_finish(struct sup *sup);
static void sup_close_cb(uv_handle_t *h);

void sup_job_proc_gone(struct sup_job *job)
{
    struct sup *sup = job->sup;

    if (job->procs != NULL || job->closing)
        return;
    if (job->retired || sup->stopping) {
        heap_remove(sup, job);
        job_unlink(sup, job);
        sup_job_close(job);
        if (job->retired)
            md_log(MD_LOG_NOTICE, "removed: job=%s", job->name);
    }
    if (sup->stopping)
        shutdown_finish(sup);
}

/* ---- start, reload, shutdown -------------------------------------------------------------- */

static void orphan_reap(struct sup *sup);

static void reap_timer_cb(uv_timer_t *t)
{
    orphan_reap(MD_CONTAINER_OF(t, struct sup, reap_timer));
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct sup *sup = h->data;

    switch (signum) {
    case SIGHUP:
        sup_reload(sup);
        break;
    case SIGCHLD:
        /* Our own runs are reaped through their pidfds; this is for adopted orphans.  The
         * scan reads /proc, so bursts of exits (a thousand runs ending in the same second)
         * share one scan.  During the stop every signal counts, at once. */
        if (sup->orphan_phase > 0)
            orphan_reap(sup);
        else if (!uv_is_active((uv_handle_t *)&sup->reap_timer))
            uv_timer_start(&sup->reap_timer, reap_timer_cb, REAP_DELAY_MS, 0);
        break;
    default:
        md_log(MD_LOG_NOTICE, "signal: %s", strsignal(signum));
        sup_shutdown(sup);
        break;
    }
}

static bool config_has_job(const struct md_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->njobs; i++)
        if (strcmp(cfg->jobs[i].name, name) == 0)
            return true;
    return false;
}

/* The runs a previous life of this node began and did not see end (runlog.h), once the jobs
 * exist.  Policy (docs/supervision.md, "After a crash"):
 *   - a scheduled or manual run still running is adopted: watched to its end, its timeout
 *     still counting from its real start, stopped like any run at shutdown; its end is recorded
 *     as unknown (no exit status: it is not our child);
 *   - a service or an on: job's run still running is stopped (the service starts afresh, the
 *     message goes back to the queue), as is a run of a job no longer in the config;
 *   - a run that is gone is recorded abandoned, with the reason.
 * Then the registry hears which executions this life adopted: every other run its earlier lives
 * left 'running' is closed as abandoned there. */
static void reconcile(struct sup *sup, const struct sup_runlog_run *left, const bool *alive,
                      size_t n)
{
    const char **adopted = md_xcalloc(n + 1, sizeof *adopted);
    size_t na = 0;

    for (size_t i = 0; i < n; i++) {
        const struct sup_runlog_run *r = &left[i];
        struct sup_job *job = sup_job_find(sup, r->job);
        const char *why;

        if (alive[i] && job != NULL) {
            struct sup_cg_run *cg = NULL;
            bool stop = r->kind == 'v' || r->kind == 'e' || !job->cfg->enabled;
            if (r->cgroup[0] != '\0' && sup_cg_run_adopt(sup->cg, r->cgroup, &cg) < 0)
                cg = NULL;
            if (sup_job_adopt(job, r, cg, stop) == 0) {
                adopted[na++] = r->exec_id;
                continue;
            }
            why = "it ended while meshd was down; its outcome is not known";
        } else if (alive[i]) {
            /* Nothing to hand it to: its job left the config while meshd was down. */
            md_log(MD_LOG_WARN, "killing a run of a job that is no longer configured: job=%s "
                   "run=%s pid=%d", r->job, r->run_id, r->pid);
            (void)sup_launch_kill(r->pid, true, SIGKILL);
            why = "meshd restarted and its job is no longer configured; killed";
        } else if (!r->has_pid) {
            /* The run writes its P record itself just before its exec (runlog.h): without one
             * it never ran.  Its slot is not handled: catch-up decides, as for any slot. */
            md_log(MD_LOG_NOTICE, "not started: job=%s run=%s exec=%s reason=meshd stopped "
                   "before launching it", r->job, r->run_id, r->exec_id);
            (void)sup_runlog_end(sup->runlog, r->exec_id);
            continue;
        } else {
            why = "it ended while meshd was down; its outcome is not known";
        }
        md_log(MD_LOG_WARN, "abandoned: job=%s run=%s exec=%s reason=%s", r->job, r->run_id,
               r->exec_id, why);
        sup_reg_run_abandoned(sup, r, why);
        if (job != NULL)
            sup_job_note_run(job, NULL, r->run_id, RUN_ABANDONED, -1, 0);
        (void)sup_runlog_end(sup->runlog, r->exec_id);
    }
    if (n > 0)
        md_log(MD_LOG_NOTICE, "reconciled: runs_left=%zu adopted=%zu", n, na);
    sup_reg_runs_reconciled(sup, adopted, na);
    md_free(adopted);
}

int sup_start(struct sup *sup, uv_loop_t *loop, struct md_config *cfg, const char *config_path)
{
    int64_t now = md_time_wall_ms();
    struct sup_runlog_run *left = NULL;
    bool *alive = NULL;
    const char **keep = NULL;
    size_t nleft = 0, nkeep = 0;
    int r;

    memset(sup, 0, sizeof *sup);
    sup->loop = loop;
    sup->cfg = cfg;
    sup->config_path = md_xstrdup(config_path);
    sup->job_hooks.idle = sup_job_proc_gone;
    sup->job_hooks.service_start = sup_service_start;
    sup->job_hooks.msg_finished = sup_bus_msg_finished;
    sup->started_wall_ms = now;
    sup->armed_ms = 0;
    sup->last_wall_ms = now;
    sup->last_boot_minus_mono_ms = md_time_clock_ms(CLOCK_BOOTTIME) - md_time_clock_ms(CLOCK_MONOTONIC);
    {
        uint8_t b[6];
        md_rand_bytes(b, sizeof b);
        snprintf(sup->life, sizeof sup->life, "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
                 b[4], b[5]);
    }

    {
        unsigned long from = 0, to = 0;
        int fr = sup_launch_raise_fd_limit(&from, &to);
        if (fr > 0)
            md_log(MD_LOG_INFO, "open files: limit raised from %lu to %lu (runs get %lu)", from,
                   to, from);
        else if (fr < 0)
            md_log_err(MD_LOG_WARN, fr, "open files: limit not raised");
    }
    r = mkdir_p(cfg->state_dir);
    if (r < 0)
        md_log_err(MD_LOG_WARN, r, "state dir: path=%s (catch-up after downtime disabled)",
                   cfg->state_dir);
    sup->state_path = md_xasprintf("%s/schedule.state", cfg->state_dir);
    /* The runs a previous life left (runlog.h), looked at before the cgroups are set up: the
     * cgroups of those still alive are kept for adoption, every other stale one is killed. */
    if (r == 0 && sup_runlog_open(loop, cfg->state_dir, &sup->runlog, &left, &nleft) < 0)
        sup->runlog = NULL;
    if (nleft > 0) {
        alive = md_xcalloc(nleft, sizeof *alive);
        keep = md_xcalloc(nleft, sizeof *keep);
        for (size_t i = 0; i < nleft; i++) {
            alive[i] = sup_runlog_alive(&left[i]);
            if (alive[i] && left[i].cgroup[0] != '\0' && config_has_job(cfg, left[i].job))
                keep[nkeep++] = left[i].cgroup;
        }
    }

    sup->clock_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sup->clock_fd < 0) {
        r = -errno;
        md_log_err(MD_LOG_ERROR, r, "timerfd_create");
        return r;
    }
    uv_poll_init(loop, &sup->clock_poll, sup->clock_fd);
    uv_poll_start(&sup->clock_poll, UV_READABLE, clock_cb);
    /* Before any run is launched: meshd moves itself into <own>/supervisor (cgroup.h). */
    sup->cg = sup_cg_new(loop, strcmp(cfg->cgroups, "off") != 0, keep, nkeep);
    md_free(keep);

    uv_timer_init(loop, &sup->orphan_timer);
    uv_timer_init(loop, &sup->reap_timer);
    uv_timer_init(loop, &sup->lease_timer);
    uv_signal_init(loop, &sup->sig_term);
    uv_signal_init(loop, &sup->sig_int);
    uv_signal_init(loop, &sup->sig_hup);
    uv_signal_init(loop, &sup->sig_chld);
    sup->sig_term.data = sup->sig_int.data = sup->sig_hup.data = sup->sig_chld.data = sup;
    uv_signal_start(&sup->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&sup->sig_int, signal_cb, SIGINT);
    uv_signal_start(&sup->sig_hup, signal_cb, SIGHUP);
    uv_signal_start(&sup->sig_chld, signal_cb, SIGCHLD);

    /* Jobs are prepended; create them in reverse so sup->jobs is in file order. */
    for (size_t i = cfg->njobs; i-- > 0;)
        job_new(sup, &cfg->jobs[i]);
    state_load(sup);
    /* A slot whose run started is handled, whatever became of the run: it never runs again
     * and is never recorded missed, even when the state file had not caught up. */
    for (size_t i = 0; i < nleft; i++) {
        struct sup_job *job = sup_job_find(sup, left[i].job);
        if (job != NULL && left[i].kind == 's' && left[i].has_pid &&
            left[i].slot > job->last_slot) {
            job->last_slot = left[i].slot;
            sup->state_dirty = true;
        }
    }
    if (sup_registry_start(sup) < 0)
        md_log(MD_LOG_WARN, "running without a registry");
    {
        static const struct sup_cluster_hooks cluster_hooks = {
            .claims_back = sup_claims_back,
            .leases_changed = sup_leases_changed,
        };
        sup_cluster_start(sup, &cluster_hooks);
    }
    sup_bus_start(sup);
    reconcile(sup, left, alive, nleft);
    md_free(left);
    md_free(alive);
    sup_notify_init(sup);
    lease_timer_update(sup);
    if (sup_http_start(sup) < 0)
        md_log(MD_LOG_WARN, "running without the HTTP API");
    sup_reg_node(sup, "up");
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        sup_reg_job(job);
    md_log(MD_LOG_NOTICE, "started: node=%s environment=%s jobs=%zu config=%s", cfg->node_name,
           cfg->node_env, cfg->njobs, config_path);
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        job_activate(job, now / 1000);
    run_due(sup, "meshd was down");
    sup_notify_ready(sup);
    return 0;
}

void sup_reload(struct sup *sup)
{
    (void)sup_reload_diag(sup, NULL);
}

int sup_reload_diag(struct sup *sup, struct md_diag *out)
{
    struct md_config *ncfg = NULL;
    struct md_diag local, *diag = out != NULL ? out : &local;
    struct sup_job *job, *next;
    int64_t now = md_time_wall_ms();
    unsigned added = 0, removed = 0, changed = 0, same = 0;
    size_t first;
    int r;

    if (sup->stopping)
        return -ESHUTDOWN;
    if (out == NULL)
        md_diag_init(&local);
    first = diag->n;
    sup_notify_reloading(sup);
    r = md_config_load(sup->config_path, &ncfg, diag);
    for (size_t i = first; i < diag->n; i++) {
        const struct md_diag_item *it = &diag->items[i];
        char *line = md_diag_format(it, sup->config_path);
        md_log(it->severity == MD_DIAG_ERROR ? MD_LOG_ERROR : MD_LOG_WARN, "%s", line);
        md_free(line);
    }
    size_t nerrors = diag->nerrors;
    if (out == NULL)
        md_diag_cleanup(&local);
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r, "reload failed: config=%s errors=%zu; keeping the running "
                   "configuration", sup->config_path, nerrors);
        sup_notify_ready(sup);
        return r;
    }
    if ((ncfg->http_host == NULL) != (sup->cfg->http_host == NULL) ||
        ncfg->http_port != sup->cfg->http_port ||
        (ncfg->http_host != NULL && strcmp(ncfg->http_host, sup->cfg->http_host) != 0))
        md_log(MD_LOG_WARN, "reload: http.listen changed; the new address takes effect at the "
               "next start (token and anonymous_read apply now)");

    /* Match running jobs to the new config by name. */
    for (job = sup->jobs; job != NULL; job = next) {
        const struct md_job *oj = job->cfg, *nj;
        next = job->next;
        if (job->retired)
            continue;
        nj = md_config_job(ncfg, job->name);
        if (nj == NULL) {
            removed++;
            if (job->lease_held) {
                job->lease_held = false;
                sup_cluster_lease_release(sup, job->name);
            }
            job->retired = true;
            job_deactivate(job);
            job->cfg = NULL;
            if (job->procs == NULL)
                sup_job_proc_gone(job);
            continue;
        }
        bool same_proc = md_job_same_process(oj, nj);
        bool same_sched = md_job_same_schedule(oj, nj) && oj->kind == nj->kind;
        bool was_enabled = oj->enabled;
        job->cfg = nj;
        job_policy(job);
        sup_job_log_limits(job); /* a reload applies to running processes at once */
        if (same_proc && same_sched && was_enabled == nj->enabled) {
            same++;
            continue;
        }
        changed++;
        if (!nj->enabled) {
            job_deactivate(job);
            continue;
        }
        if (!same_sched) {
            heap_remove(sup, job);
            if (oj->kind == MD_JOB_SERVICE && nj->kind != MD_JOB_SERVICE && sup_job_busy(job)) {
                job->stop_status = RUN_STOPPED;
                sup_job_event(job, EV_STOP, 0, 0);
            }
        }
        if (nj->kind == MD_JOB_SERVICE) {
            if (sup_job_busy(job)) {
                if (!same_proc || oj->kind != MD_JOB_SERVICE) {
                    job->restart_pending = true;
                    if (job->prog.state != PROG_STOPPING) {
                        job->stop_status = RUN_STOPPED;
                        sup_job_event(job, EV_STOP, 0, 0);
                    }
                }
            } else {
                job_activate(job, now / 1000);
            }
        } else if (nj->kind == MD_JOB_CRON && (!same_sched || !was_enabled)) {
            job_schedule(job, now / 1000);
        }
    }
    /* New jobs, in file order. */
    for (size_t i = ncfg->njobs; i-- > 0;) {
        bool found = false;
        for (job = sup->jobs; job != NULL && !found; job = job->next)
            found = !job->retired && job->cfg == &ncfg->jobs[i];
        if (found)
            continue;
        added++;
        job = job_new(sup, &ncfg->jobs[i]);
        md_log(MD_LOG_NOTICE, "added: job=%s", job->name);
        job_activate(job, now / 1000);
    }
    md_config_free(sup->cfg);
    sup->cfg = ncfg;
    sup->status_gen++;
    lease_timer_update(sup);
    md_log(MD_LOG_NOTICE, "reloaded: config=%s jobs=%zu added=%u removed=%u changed=%u "
           "unchanged=%u", sup->config_path, ncfg->njobs, added, removed, changed, same);
    sup->state_dirty = true;
    run_due(sup, "meshd was busy");
    sup_notify_ready(sup);
    return 0;
}

/* ---- operator control (the API) ----------------------------------------------------------- */


static void stop_extras(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (!p->primary && !p->exited && !p->killing)
            sup_proc_stop(p);
}

static void stop_primary(struct sup_job *job)
{
    if (job->prog.state == PROG_STOPPING || job->prog.state == PROG_STOPPED)
        return;
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
}

int sup_job_run_now(struct sup_job *job, char *run_id, size_t len, char *err, size_t errlen)
{
    const struct md_job *j = job->cfg;

    run_id[0] = '\0';
    if (job->sup->stopping) {
        snprintf(err, errlen, "meshd is stopping");
        return -ESHUTDOWN;
    }
    if (needs_lease(job) && !job->lease_held) {
        snprintf(err, errlen, "job '%s' is a singleton service and another node holds its "
                 "lease (or the database is away)", job->name);
        return -EBUSY;
    }
    if (sup_job_busy(job)) {
        if (j->kind == MD_JOB_SERVICE) {
            snprintf(err, errlen, "job '%s' is a service and already %s", job->name,
                     prog_state_name(job->prog.state));
            return -EBUSY;
        }
        switch (j->concurrency) {
        case MD_CONC_ALLOW:
            sup_job_spawn_extra(job, 0);
            if (job->procs != NULL)
                snprintf(run_id, len, "%s", job->procs->run_id);
            md_log(MD_LOG_NOTICE, "run requested: job=%s run=%s (beside the current run)",
                   job->name, run_id);
            return 0;
        case MD_CONC_REPLACE:
            md_log(MD_LOG_NOTICE, "run requested: job=%s replacing run=%s", job->name,
                   job->run_id);
            job->pending_slot = 0;
            job->pending_now = true;
            stop_primary(job);
            return 0;
        case MD_CONC_FORBID:
            snprintf(err, errlen, "job '%s' has a run in progress (%s) and concurrency is "
                     "forbid", job->name, job->run_id);
            return -EBUSY;
        }
    }
    job->cur_slot = 0;
    md_log(MD_LOG_NOTICE, "run requested: job=%s", job->name);
    sup_job_event(job, EV_START, 0, 0);
    snprintf(run_id, len, "%s", job->run_id);
    return 0;
}

int sup_job_set_paused(struct sup_job *job, bool paused)
{
    struct sup *sup = job->sup;
    const struct md_job *j = job->cfg;
    int64_t now_s = md_time_wall_ms() / 1000;

    if (sup->stopping)
        return -ESHUTDOWN;
    if (job->paused == paused)
        return 0;
    job->paused = paused;
    sup->status_gen++;
    md_log(MD_LOG_NOTICE, "%s: job=%s", paused ? "paused" : "resumed", job->name);
    if (paused) {
        heap_remove(sup, job);
        job->next_slot = 0;
        job->pending_slot = 0;
        if (j->kind == MD_JOB_SERVICE) {
            job->restart_pending = job->pending_now = false;
            stop_primary(job);
            if (job->lease_held) { /* paused here: another node may run it */
                job->lease_held = false;
                sup_cluster_lease_release(sup, job->name);
            }
        }
    } else if (j->enabled) {
        /* The schedule goes on from now: the slots passed while paused are not caught up. */
        if (j->kind == MD_JOB_CRON && job->last_slot < now_s)
            job->last_slot = now_s;
        if (j->kind == MD_JOB_CRON)
            job_schedule(job, now_s);
        else if (j->kind == MD_JOB_SERVICE && !sup_job_busy(job))
            job_activate(job, now_s);
        clock_arm(sup);
    }
    state_save(sup); /* at once: a pause must survive a crash right after it */
    return 0;
}

int sup_job_restart(struct sup_job *job, char *err, size_t errlen)
{
    if (job->sup->stopping) {
        snprintf(err, errlen, "meshd is stopping");
        return -ESHUTDOWN;
    }
    if (needs_lease(job) && !job->lease_held) {
        snprintf(err, errlen, "job '%s' is a singleton service and another node holds its "
                 "lease (or the database is away)", job->name);
        return -EBUSY;
    }
    md_log(MD_LOG_NOTICE, "restart requested: job=%s state=%s", job->name,
           prog_state_name(job->prog.state));
    job->pending_slot = 0;
    if (sup_job_busy(job)) {
        job->pending_now = true;
        stop_primary(job);
        return 0;
    }
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
    return 0;
}

int sup_job_stop(struct sup_job *job, char *err, size_t errlen)
{
    bool extras = false;

    if (job->sup->stopping) {
        snprintf(err, errlen, "meshd is stopping");
        return -ESHUTDOWN;
    }
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        extras |= !p->primary && !p->exited;
    if (!sup_job_busy(job) && !extras) {
        snprintf(err, errlen, "job '%s' is not running (state %s)", job->name,
                 prog_state_name(job->prog.state));
        return -EALREADY;
    }
    md_log(MD_LOG_NOTICE, "stop requested: job=%s state=%s", job->name,
           prog_state_name(job->prog.state));
    job->pending_slot = 0;
    job->pending_now = job->restart_pending = false;
    stop_primary(job);
    stop_extras(job);
    return 0;
}

static void sup_close_cb(uv_handle_t *h)
{
    (void)h;
}

static int orphans_each(struct sup *sup, void (*fn)(struct sup *, pid_t));
static void orphan_wait(struct sup *sup, pid_t pid);
static void orphan_term(struct sup *sup, pid_t pid);
static void orphan_timer_cb(uv_timer_t *t);

/* Runs once every job is down.  What a worker forked and left behind was adopted by meshd (a
 * subreaper); it must not outlive meshd either: SIGTERM, then SIGKILL after ORPHAN_GRACE_MS,
 * and the loop ends only once every one has been reaped. */
static void shutdown_finish(struct sup *sup)
{
    if (sup->jobs != NULL || sup->closed)
        return;
    orphans_each(sup, orphan_wait);
    if (sup->orphan_phase == 0) {
        sup->orphan_phase = 1;
        if (orphans_each(sup, orphan_term) > 0) {
            uv_timer_start(&sup->orphan_timer, orphan_timer_cb, ORPHAN_GRACE_MS, 0);
            return;
        }
    } else if (orphans_each(sup, orphan_wait) > 0) {
        return; /* more SIGCHLDs (or the timer) will call us again */
    }
    if (!sup->reg_stopping) {
        /* Last: record the node as down and give the registry a moment to ship. */
        sup->reg_stopping = true;
        sup_registry_stop(sup, shutdown_finish);
        return;
    }
    if (sup->reg != NULL)
        return; /* sup_registry_stop calls us again when it is done */
    sup_http_close(sup);
    sup_notify_close(sup);
    sup_cg_close(sup->cg);
    sup_runlog_close(sup->runlog); /* every run has ended and been recorded */
    sup->runlog = NULL;
    sup->closed = true;
    uv_timer_stop(&sup->orphan_timer);
    uv_close((uv_handle_t *)&sup->orphan_timer, sup_close_cb);
    uv_timer_stop(&sup->lease_timer);
    uv_close((uv_handle_t *)&sup->lease_timer, sup_close_cb);
    uv_close((uv_handle_t *)&sup->reap_timer, sup_close_cb);
    if (sup->state_dirty)
        state_save(sup);
    uv_poll_stop(&sup->clock_poll);
    uv_close((uv_handle_t *)&sup->clock_poll, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_term, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_int, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_hup, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_chld, sup_close_cb);
    md_log(MD_LOG_NOTICE, "stopped: every job is down");
}

void sup_shutdown(struct sup *sup)
{
    sup->stop_signals++;
    if (sup->stopping) {
        /* A second signal: don't wait for stop timeouts. */
        md_log(MD_LOG_WARN, "stopping now: SIGKILL to every process group");
        for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
            sup_job_kill_all(job);
        return;
    }
    sup->stopping = true;
    md_log(MD_LOG_NOTICE, "stopping: jobs=%zu", sup->cfg->njobs);
    sup_notify_stopping(sup);
    sup_unclaimed_flush(sup); /* slots that could not be claimed: recorded missed, not lost */
    for (struct sup_job *job = sup->jobs, *next; job != NULL; job = next) {
        next = job->next;
        job_deactivate(job);
        if (job->procs == NULL)
            sup_job_proc_gone(job);
    }
    shutdown_finish(sup);
}

void sup_cleanup(struct sup *sup)
{
    if (sup->clock_fd >= 0)
        close(sup->clock_fd);
    sup->clock_fd = -1;
    md_free(sup->heap);
    sup_cg_free(sup->cg);
    sup->cg = NULL;
    md_free(sup->state_path);
    md_free(sup->config_path);
    md_config_free(sup->cfg);
    sup->cfg = NULL;
}

/* ---- orphans ------------------------------------------------------------------------------- */

/* meshd is a child subreaper (and PID 1 in a container): orphaned grandchildren are reparented
 * to it and must be reaped, or they stay zombies.  Our own runs are reaped through their pidfds
 * (proc.c) and a waitpid(-1) here could steal their exit status, so list our children from
 * /proc and reap only the ones that are not ours. */
static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The pids of our live runs, sorted (caller frees): one pass over the jobs per scan, then a
 * binary search per child, instead of a walk of every job for every child. */
static int *our_pids(struct sup *sup, size_t *n)
{
    size_t cap = 64;
    int *v = md_xmalloc(cap * sizeof *v);

    *n = 0;
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        for (struct sup_proc *p = job->procs; p != NULL; p = p->next) {
            if (p->pid <= 0 || p->exited)
                continue;
            if (*n == cap)
                v = md_xrealloc(v, (cap *= 2) * sizeof *v);
            v[(*n)++] = p->pid;
        }
    }
    qsort(v, *n, sizeof *v, cmp_int);
    return v;
}

/* Calls fn for each child of meshd that is not one of its runs (an adopted orphan, live or a
 * zombie); returns how many there were. */
static int orphans_each(struct sup *sup, void (*fn)(struct sup *, pid_t))
{
    char path[64], *buf;
    size_t len = 0, cap = 8192;
    ssize_t n;
    int fd, count = 0;

    snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)getpid());
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* One pid is at most 8 bytes here; read it all, however many children there are. */
    buf = md_xmalloc(cap);
    while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)n;
        if (cap - len < 64)
            buf = md_xrealloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    size_t nours;
    int *ours = our_pids(sup, &nours);
    for (char *s = buf, *end; *s != '\0'; s = end) {
        long pid = strtol(s, &end, 10);
        int key = (int)pid;
        if (end == s)
            break;
        if (pid > 0 && bsearch(&key, ours, nours, sizeof *ours, cmp_int) == NULL) {
            count++;
            fn(sup, (pid_t)pid);
        }
    }
    md_free(ours);
    md_free(buf);
    return count;
}

static void orphan_wait(struct sup *sup, pid_t pid)
{
    int st;

    (void)sup;
    if (waitpid(pid, &st, WNOHANG) > 0)
        md_log(MD_LOG_INFO, "reaped orphan: pid=%ld", (long)pid);
}

static void orphan_term(struct sup *sup, pid_t pid)
{
    (void)sup;
    md_log(MD_LOG_NOTICE, "stopping orphan: pid=%ld signal=TERM", (long)pid);
    kill(pid, SIGTERM);
}

static void orphan_kill(struct sup *sup, pid_t pid)
{
    (void)sup;
    md_log(MD_LOG_WARN, "killing orphan: pid=%ld signal=KILL", (long)pid);
    kill(pid, SIGKILL);
}

static void orphan_reap(struct sup *sup)
{
    orphans_each(sup, orphan_wait);
    if (sup->orphan_phase > 0)
        shutdown_finish(sup);
}

static void orphan_timer_cb(uv_timer_t *t)
{
    struct sup *sup = MD_CONTAINER_OF(t, struct sup, orphan_timer);

    /* Past the grace period: SIGKILL whatever is left, then look again shortly. */
    sup->orphan_phase = 2;
    orphans_each(sup, orphan_kill);
    uv_timer_start(&sup->orphan_timer, orphan_timer_cb, 100, 0);
    orphan_reap(sup);
}
