/* jobalert.c - meshd's own alerts about its jobs (see jobalert.h for what and when). */
#include "jobalert.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "meshd/md_config.h"
#include "meshd/md_err.h"
#include "meshd/md_log.h"
#include "meshd/md_status.h"
#include "meshd/md_time.h"
#include "meshd/md_tz.h"
#include "job.h"
#include "registry.h"
#include "sup.h"

_Static_assert((int)MD_FAILURE_ALERT_CRITICAL == (int)MD_SEV_CRITICAL &&
                   (int)MD_FAILURE_ALERT_WARNING == (int)MD_SEV_WARNING &&
                   (int)MD_FAILURE_ALERT_INFO == (int)MD_SEV_INFO,
               "failure_alert's severities are md_status_severity's");

#define KEY_MAX 96 /* "job." + a job name (at most 64 bytes) + ".failed" */

static const char *const suffix[] = {"failed", "fatal", "missed"}; /* by bit number */

unsigned sup_jobalert_keys(int kind)
{
    switch (kind) {
    case MD_JOB_CRON:
        return SUP_JOBALERT_FAILED | SUP_JOBALERT_FATAL | SUP_JOBALERT_MISSED;
    case MD_JOB_EVENT:
        return SUP_JOBALERT_FAILED | SUP_JOBALERT_FATAL;
    default: /* a service never succeeds nor misses a slot: it is RUNNING or not */
        return SUP_JOBALERT_FATAL;
    }
}

static void key_of(const struct sup_job *job, unsigned bit, char *buf, size_t len)
{
    unsigned i = bit == SUP_JOBALERT_FAILED ? 0 : bit == SUP_JOBALERT_FATAL ? 1 : 2;

    snprintf(buf, len, "job.%s.%s", job->name, suffix[i]);
}

/* The job's alerts are off: removed from the schedule (nobody to tell about it any more), or
 * failure_alert: none. */
static bool muted(const struct sup_job *job)
{
    return job->cfg == NULL || job->cfg->failure_alert == MD_FAILURE_ALERT_NONE;
}

static void raise_alert(struct sup_job *job, unsigned bit, enum md_status_severity sev,
                        const char *message)
{
    char key[KEY_MAX];

    key_of(job, bit, key, sizeof key);
    job->alerts_maybe_open |= bit;
    job->sup->status_gen++;
    sup_history_alert(&job->history, key, message, (int)sev, md_time_wall_ms());
    md_log(MD_LOG_NOTICE, "alert: job=%s severity=%s key=%s message=%s", job->name,
           md_status_severity_name(sev), key, message);
    sup_reg_alert(job->sup, job->name, key, md_status_severity_name(sev), message);
}

/* Resolves the keys among bits: in memory always (free), in the registry only those that may
 * be open there (a resolve is an event and a row; see jobalert.h). */
static void resolve(struct sup_job *job, unsigned bits)
{
    uint64_t now = uv_now(job->sup->loop);
    unsigned send;
    char key[KEY_MAX];

    if (job->sup->cfg->cluster && now - job->alerts_resolved_ms >= SUP_JOBALERT_RECHECK_MS)
        job->alerts_maybe_open |= bits & sup_jobalert_keys(job->cfg->kind);
    send = job->alerts_maybe_open & bits;
    for (unsigned bit = 1; bit <= SUP_JOBALERT_MISSED; bit <<= 1) {
        if (!(bits & bit))
            continue;
        key_of(job, bit, key, sizeof key);
        if (job->history.nalerts > 0) {
            sup_history_resolve(&job->history, key);
            job->sup->status_gen++;
        }
        if (!(send & bit))
            continue;
        md_log(MD_LOG_INFO, "resolve: job=%s key=%s", job->name, key);
        sup_reg_resolve(job->sup, job->name, key);
    }
    job->alerts_maybe_open &= ~send;
    if (send != 0)
        job->alerts_resolved_ms = now;
}

/* How a failed run ended: "exit code 3", "killed by signal 9 (Killed)", "spawn failed: ...",
 * "timed out (timeout 30s)". */
static void how_it_ended(const struct sup_job *job, const struct sup_jobalert_run *r, char *buf,
                         size_t len)
{
    uint64_t t = job->cfg->timeout_ms;

    if (r->status == RUN_TIMED_OUT) {
        if (t % 1000 == 0)
            snprintf(buf, len, "timed out (timeout %" PRIu64 "s)", t / 1000);
        else
            snprintf(buf, len, "timed out (timeout %" PRIu64 "ms)", t);
    } else if (r->spawn_failed) {
        snprintf(buf, len, "failed: spawn failed: %s", md_strerror(r->exit_code));
    } else if (r->signal != 0) {
        snprintf(buf, len, "failed: killed by signal %d (%s)", r->signal, strsignal(r->signal));
    } else if (r->exit_code >= 0) {
        snprintf(buf, len, "failed: exit code %d", r->exit_code);
    } else {
        snprintf(buf, len, "failed"); /* an adopted run: its exit status is not known */
    }
}

void sup_jobalert_run_end(struct sup_job *job, const struct sup_jobalert_run *r)
{
    const struct md_job *j = job->cfg;
    char how[160], msg[512];

    if (j == NULL)
        return;
    switch (r->status) {
    case RUN_SUCCEEDED:
        if (j->kind != MD_JOB_SERVICE)
            resolve(job, sup_jobalert_keys(j->kind));
        return;
    case RUN_FAILED:
    case RUN_TIMED_OUT:
        break;
    default:
        return; /* stopped by meshd or a person, or an end nobody saw: not the job's failure */
    }
    if (muted(job))
        return;
    how_it_ended(job, r, how, sizeof how);
    if (j->kind != MD_JOB_SERVICE && !r->retrying) {
        snprintf(msg, sizeof msg, "run %s %s", r->run_id, how);
        raise_alert(job, SUP_JOBALERT_FAILED, (enum md_status_severity)j->failure_alert, msg);
    }
    if (r->gave_up != NULL) {
        if (r->tries > 1) /* retries exhausted; an exit 100 gives up at once, uncounted */
            snprintf(msg, sizeof msg, "gave up after %u failures in a row (%s); last run %s %s",
                     r->tries, r->gave_up, r->run_id, how);
        else
            snprintf(msg, sizeof msg, "gave up (%s); last run %s %s", r->gave_up, r->run_id, how);
        raise_alert(job, SUP_JOBALERT_FATAL, MD_SEV_CRITICAL, msg);
    }
}

void sup_jobalert_running(struct sup_job *job)
{
    if (job->cfg != NULL)
        resolve(job, SUP_JOBALERT_FATAL);
}

void sup_jobalert_missed(struct sup_job *job, uint64_t count, int64_t first, int64_t last,
                         const char *reason)
{
    char a[48], b[48], msg[512];

    /* In a cluster, a slot this node missed is mostly one another node ran: that is what the
     * cluster is for, and this node cannot tell (docs/supervision.md). */
    if (muted(job) || job->sup->cfg->cluster || count == 0)
        return;
    md_tz_format_iso(job->cfg->tz, first, a, sizeof a);
    if (count == 1) {
        snprintf(msg, sizeof msg, "slot %s missed: %s", a, reason);
    } else {
        md_tz_format_iso(job->cfg->tz, last, b, sizeof b);
        snprintf(msg, sizeof msg, "%" PRIu64 " slots missed, %s to %s: %s", count, a, b, reason);
    }
    raise_alert(job, SUP_JOBALERT_MISSED, MD_SEV_WARNING, msg);
}
