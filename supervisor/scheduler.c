/* scheduler.c - scheduler.h: when a cron job runs.  The cron heap, the wall-clock timer, slot
 * claims (cluster.h), catch-up, clock jumps and the state file of each job's last slot.
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
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_rand.h"
#include "meshd/md_time.h"
#include "cluster.h"
#include "job.h"
#include "jobalert.h"
#include "registry.h"
#include "scheduler.h"
#include "scheduler_internal.h"
#include "statefile.h"
#include "sup.h"

#define ON_TIME_MS SCHED_ON_TIME_MS
/* Growth of (boot time - monotonic time) beyond this between two wakes means a suspend. */
#define SUSPEND_MS 1000
/* At most this many missed slots of one job are logged one by one; the rest are counted. */
#define MISSED_LOG_MAX 5
#define RUN_BURST 48 /* due jobs started per wake-up; the rest on the next */

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
                md_log(MD_LOG_WARN,
                       "skipped: job=%s slot=%s reason=a run adopted from meshd's "
                       "previous life is still running",
                       job->name, when);
            sup_reg_slot(job->sup, job->name, "run_skipped", slot, "previous run still active");
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
    sup_reg_slot(job->sup, job->name, "run_missed", slot, reason);
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
    md_log(MD_LOG_WARN,
           "unclaimed: job=%s slot=%s reason=registry unreachable; it runs if the "
           "registry answers within the catch-up window (cluster.when_offline=skip)",
           job->name, when);
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
            unclaimed_missed(job, slot,
                             "could not be claimed (registry unreachable); a later "
                             "slot superseded it");
            continue;
        }
        late = now - slot * 1000 - takeover_delay_ms(job);
        if (late > ON_TIME_MS && (uint64_t)late > j->catchup_ms) {
            snprintf(reason, sizeof reason,
                     "could not be claimed: registry unreachable for "
                     "%" PRId64 "s, past the catch-up window of %" PRIu64 "s",
                     late / 1000, j->catchup_ms / 1000);
            unclaimed_missed(job, slot, reason);
            continue;
        }
        fmt_slot(slot, j->tz, when, sizeof when);
        md_log(MD_LOG_NOTICE,
               "cluster: claiming job=%s slot=%s again (the registry answers; "
               "late_ms=%" PRId64 ")",
               job->name, when, late);
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
            unclaimed_missed(job, slot,
                             "could not be claimed: registry unreachable until meshd "
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
            sup_reg_slot(job->sup, job->name, "run_skipped", slot, "previous run still active");
            return;
        }
        run_slot_now(job, slot);
        job->fire_due_ms = 0;
        return;
    case SUP_CLAIM_LOST:
        if (late && !skip) {
            md_log(MD_LOG_ERROR,
                   "cluster: job=%s slot=%s ran here without its claim, and %s "
                   "has it too (when_offline=run)",
                   job->name, when, holder);
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
        md_log(MD_LOG_NOTICE,
               "cluster: running job=%s slot=%s without a claim (registry "
               "unreachable; cluster.when_offline=run: at-least-once)",
               job->name, when);
        run_slot_now(job, slot);
        return;
    }
}

static void run_slot(struct sup_job *job, int64_t slot)
{
    char run_id[SUP_RUN_ID_MAX];

    /* A slot skipped here is not claimed: another node may still run it. */
    if (!sup_cluster_on(job->sup) || (slot_busy(job) && job->cfg->concurrency == MD_CONC_FORBID)) {
        run_slot_now(job, slot);
        return;
    }
    sup_run_id(job->sup, job->name, slot, run_id, sizeof run_id);
    sup_cluster_claim(job->sup, job->name, slot, run_id, claim_answered);
}

/* A due job: walk every slot up to now, run the latest if it is on time or inside the catch-up
 * window, log the others as missed, and schedule the next one. */
void sched_walk(const struct md_cron *cron, const struct md_tz *tz, int64_t next_slot,
                int64_t now_ms, uint64_t catchup_ms, uint64_t jitter_ms, int64_t takeover_ms,
                struct sched_walk *out)
{
    int64_t first = next_slot, latest = first, before = 0, n;
    uint64_t count = 1, walked = 0;

    while (md_cron_next(cron, tz, latest, &n) == 0 && n * 1000 <= now_ms) {
        before = latest; /* the last missed slot, once the walk ends */
        latest = n;
        count++;
        if (++walked != SCHED_WALK_MAX)
            continue;
        /* Too many to walk one by one (an every-second job after a long sleep): jump to the
         * start of the catch-up window, estimating the slots skipped from the mean period so
         * far.  Only the count is approximate; latest is always a real slot. */
        int64_t from = now_ms / 1000 - (int64_t)(catchup_ms / 1000) - 1;
        if (from > latest) {
            int64_t period = (latest - first) / (int64_t)(count - 1);
            count += (uint64_t)((from - latest) / (period > 0 ? period : 1));
            if (md_cron_next(cron, tz, from, &n) == 0 && n * 1000 <= now_ms) {
                latest = n;
                count++;
            }
        }
    }
    out->first = first;
    out->latest = latest;
    out->before = before;
    out->missed = count - 1;
    out->late_ms = now_ms - latest * 1000 - (int64_t)jitter_ms - takeover_ms;
    out->verdict = out->late_ms <= SCHED_ON_TIME_MS       ? SCHED_ON_TIME
                   : (uint64_t)out->late_ms <= catchup_ms ? SCHED_CATCH_UP
                                                          : SCHED_MISSED;
}

bool sched_follows_backward_step(const struct md_cron *cron)
{
    return (cron->flags & (MD_CRON_MIN_STAR | MD_CRON_HOUR_STAR)) != 0;
}

static void job_due(struct sup_job *job, int64_t now_ms, const char *why)
{
    const struct md_job *j = job->cfg;
    struct sched_walk w;
    char a[40], b[40];

    sched_walk(&j->cron, j->tz, job->next_slot, now_ms, j->catchup_ms, j->jitter_ms,
               takeover_delay_ms(job), &w);
    if (w.missed > 0) {
        job->runs_missed += w.missed;
        fmt_slot(w.first, j->tz, a, sizeof a);
        if (w.missed <= MISSED_LOG_MAX) {
            int64_t s = w.first;
            for (uint64_t i = 0; i < w.missed; i++) {
                fmt_slot(s, j->tz, a, sizeof a);
                md_log(MD_LOG_WARN, "missed: job=%s slot=%s reason=%s; a later slot superseded it",
                       job->name, a, why);
                sup_reg_slot(job->sup, job->name, "run_missed", s, why);
                if (md_cron_next(&j->cron, j->tz, s, &s) < 0)
                    break;
            }
        } else {
            /* Too many to record one by one (an every-second job after a night asleep, or
             * more due than meshd can start): one record of the gap, never a log line only. */
            fmt_slot(w.latest, j->tz, b, sizeof b);
            md_log(MD_LOG_WARN, "missed: job=%s count=%" PRIu64 " from=%s before=%s reason=%s",
                   job->name, w.missed, a, b, why);
            sup_reg_slots_missed(job->sup, job->name, w.first, w.before, w.missed, why);
        }
    }

    fmt_slot(w.latest, j->tz, a, sizeof a);
    switch (w.verdict) {
    case SCHED_ON_TIME:
        job->fire_due_ms = job->next_due_ms; /* job_spawn observes the firing lag */
        run_slot(job, w.latest);
        job->fire_due_ms = 0;
        break;
    case SCHED_CATCH_UP:
        md_log(MD_LOG_NOTICE, "catching up: job=%s slot=%s late_ms=%" PRId64 " reason=%s",
               job->name, a, w.late_ms, why);
        run_slot(job, w.latest);
        break;
    case SCHED_MISSED:
        job->runs_missed++;
        sup_reg_slot(job->sup, job->name, "run_missed", w.latest, why);
        md_log(MD_LOG_WARN,
               "missed: job=%s slot=%s late_ms=%" PRId64
               " reason=%s; outside the catch-up window of %" PRIu64 "s",
               job->name, a, w.late_ms, why, j->catchup_ms / 1000);
        break;
    }
    /* One alert for everything this wake-up found missed, after the slots' records. */
    if (w.missed > 0 || w.verdict == SCHED_MISSED)
        sup_jobalert_missed(job, w.missed + (w.verdict == SCHED_MISSED),
                            w.missed > 0 ? w.first : w.latest,
                            w.verdict == SCHED_MISSED ? w.latest : w.before, why);
    job->last_slot = w.latest;
    job->sup->state_dirty = true;
    job_schedule(job, w.latest > now_ms / 1000 ? w.latest : now_ms / 1000);
}

/* Runs every job that is due, then re-arms the timer for the next one.
 *
 * At most RUN_BURST jobs per wake-up: a thousand jobs due in the same second would otherwise
 * hold the loop for a second of fork+exec, during which no exit, status line or HTTP request
 * is served.  The rest of the burst runs on the next loop iteration (the timer is armed in the
 * past, so it fires at once), judged against the burst's first instant, so they are still "on
 * time" for the catch-up rules. */
void sched_run_due(struct sup *sup, const char *why)
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
        sched_state_save(sup);
    clock_arm(sup);
}

static void clock_step(struct sup *sup)
{
    int64_t now = md_time_wall_ms();
    int64_t expected = sup->last_wall_ms;

    md_log(MD_LOG_WARN, "clock stepped: wall_ms=%" PRId64 " last_seen_ms=%" PRId64, now, expected);
    if (now < expected) {
        /* Backward: fixed-time jobs keep their next slot (what ran does not run again);
         * wildcard jobs follow the new time. */
        for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
            const struct md_job *j = job->cfg;
            if (j == NULL || j->kind != MD_JOB_CRON || job->heap_idx == SIZE_MAX)
                continue;
            if (sched_follows_backward_step(&j->cron))
                job_schedule(job, now / 1000 - 1);
        }
    }
    sup->armed_ms = -1; /* the step cancelled the timer: re-arm whatever is due */
    sched_run_due(sup, "wall clock stepped");
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
    sched_run_due(sup, NULL);
}

void sup_clock_check(struct sup *sup)
{
    /* The timerfd may be ready in the same epoll batch as other work (a flood of HTTP
     * requests); whoever is about to do a lot of work calls this first, so due jobs start
     * before it, not after.  The timerfd's own wake-up then finds nothing due. */
    if (sup->armed_ms > 0 && !sup->closed && md_time_wall_ms() >= sup->armed_ms)
        sched_run_due(sup, NULL);
}

/* ---- the state file: last slot of each job ------------------------------------------------ */

void sched_state_save(struct sup *sup)
{
    struct sup_state_entry *v;
    size_t n = 0;

    sup->state_dirty = false;
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        n++;
    v = md_xcalloc(n + 1, sizeof *v);
    n = 0;
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        if ((job->last_slot != 0 || job->paused) && !job->retired)
            v[n++] = (struct sup_state_entry){job->name, job->last_slot, job->paused};
    sup_statefile_save(sup->state_path, v, n);
    md_free(v);
}

static void state_entry(void *ud, const char *name, int64_t last_slot, bool paused)
{
    struct sup *sup = ud;

    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        if (strcmp(job->name, name) == 0) {
            job->last_slot = last_slot;
            job->paused = paused;
        }
    }
}

void sched_state_load(struct sup *sup)
{
    sup_statefile_load(sup->state_path, state_entry, sup);
}

/* ---- the scheduler's life ------------------------------------------------------------------- */

int sched_start(struct sup *sup)
{
    int r;

    sup->armed_ms = 0;
    sup->last_wall_ms = md_time_wall_ms();
    sup->last_boot_minus_mono_ms =
        md_time_clock_ms(CLOCK_BOOTTIME) - md_time_clock_ms(CLOCK_MONOTONIC);
    sup->clock_fd = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sup->clock_fd < 0) {
        r = -errno;
        md_log_err(MD_LOG_ERROR, r, "timerfd_create");
        return r;
    }
    uv_poll_init(sup->loop, &sup->clock_poll, sup->clock_fd);
    uv_poll_start(&sup->clock_poll, UV_READABLE, clock_cb);
    return 0;
}

void sched_close(struct sup *sup, uv_close_cb cb)
{
    uv_poll_stop(&sup->clock_poll);
    uv_close((uv_handle_t *)&sup->clock_poll, cb);
}

void sched_cleanup(struct sup *sup)
{
    if (sup->clock_fd >= 0)
        close(sup->clock_fd);
    sup->clock_fd = -1;
    md_free(sup->heap);
    sup->heap = NULL;
}

void sched_job_remove(struct sup_job *job)
{
    heap_remove(job->sup, job);
}

void sched_job_schedule(struct sup_job *job, int64_t after)
{
    job_schedule(job, after);
}

void sched_rearm(struct sup *sup)
{
    clock_arm(sup);
}

void sched_job_start(struct sup_job *job, int64_t now_s)
{
    const struct md_job *j = job->cfg;

    if (job->last_slot != 0 && job->last_slot < now_s) {
        /* Resume from the last handled slot: sched_run_due sees what was missed meanwhile. */
        int64_t next;
        if (md_cron_next(&j->cron, j->tz, job->last_slot, &next) == 0 && next <= now_s) {
            heap_remove(job->sup, job);
            job->next_slot = next;
            job->next_due_ms = next * 1000 + takeover_delay_ms(job);
            heap_push(job->sup, job);
            return;
        }
    }
    job_schedule(job, now_s);
}
