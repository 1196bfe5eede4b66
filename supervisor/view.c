/* view.c - the HTTP API's answers (docs/api.md), rendered from memory: /health and the health
 * verdict behind it, /status, /api/jobs/NAME and /api/jobs/NAME/logs, and the status page's
 * static bytes (page.h).  Also what api.c and metrics.c share with it (api_internal.h): the
 * JSON reply, the state words, the failed-run count as reported.  Calls nothing of api.c or
 * metrics.c (tests/layers.py).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "api_internal.h"
#include "meshd/md_time.h"
#include "page.h"
#include "registry.h"
#include "sup.h"

#define DROP_RECENT_MS (10 * 60 * 1000) /* a journal drop keeps /health red this long */

/* ---- helpers ------------------------------------------------------------------------------ */

static const char *kind_name(enum md_job_kind k)
{
    switch (k) {
    case MD_JOB_CRON:
        return "cron";
    case MD_JOB_SERVICE:
        return "service";
    case MD_JOB_EVENT:
        return "event";
    }
    return "?";
}

const char *view_state_word(enum prog_state s)
{
    switch (s) {
    case PROG_STOPPED:
        return "stopped";
    case PROG_STARTING:
        return "starting";
    case PROG_RUNNING:
        return "running";
    case PROG_BACKOFF:
        return "backoff";
    case PROG_STOPPING:
        return "stopping";
    case PROG_EXITED:
        return "exited";
    case PROG_FATAL:
        return "fatal";
    }
    return "?";
}

static struct sup_proc *primary_of(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            return p;
    return NULL;
}

/* runs_failed counts every run that did not succeed; timed-out and stopped runs are
 * reported on their own (they are noted a moment after the failure count, so clamp). */
uint64_t view_runs_failed_only(const struct sup_job *job)
{
    uint64_t other = job->runs_timed_out + job->runs_stopped;
    return job->runs_failed > other ? job->runs_failed - other : 0;
}

static const struct sup_run_rec *last_rec(const struct sup_job *job)
{
    return sup_history_last(&job->history);
}

void view_reply_json(struct api_reply *rp, unsigned code, cJSON *o)
{
    rp->code = code;
    rp->ctype = "application/json";
    rp->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (rp->body == NULL)
        abort();
    rp->len = strlen(rp->body);
}

/* ---- health ------------------------------------------------------------------------------- */

static void reason(cJSON *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reason(cJSON *reasons, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    if (reasons == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON_AddItemToArray(reasons, cJSON_CreateString(msg));
}

bool api_healthy(struct sup *sup, cJSON *reasons)
{
    struct sup_reg_stats st;
    int64_t now = md_time_wall_ms();
    bool ok = true;

    if (sup->stopping) {
        reason(reasons, "meshd is stopping");
        ok = false;
    }
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        const struct md_job *j = job->cfg;
        if (job->retired || j == NULL)
            continue;
        if (job->prog.state == PROG_FATAL) {
            reason(reasons, "job '%s' is fatal: %s", job->name,
                   job->last_error ? job->last_error : "gave up");
            ok = false;
        }
        if (j->expect_success_ms > 0 && j->enabled && !job->paused) {
            int64_t since = job->last_success_ms > sup->started_wall_ms ? job->last_success_ms
                                                                        : sup->started_wall_ms;
            if (now - since > (int64_t)j->expect_success_ms) {
                reason(reasons,
                       "job '%s' has not succeeded for %" PRId64 "s (expect.succeed_"
                       "within %" PRIu64 "s)",
                       job->name, (now - since) / 1000, j->expect_success_ms / 1000);
                ok = false;
            }
        }
    }
    sup_registry_stats(sup, &st);
    if (st.on && st.bound_bytes > 0 && st.backlog_bytes >= st.bound_bytes / 10 * 9) {
        reason(reasons,
               "registry backlog %" PRIu64 " bytes is at its bound (%" PRIu64
               " bytes): the database has been away too long",
               st.backlog_bytes, st.bound_bytes);
        ok = false;
    } else if (st.on && st.last_drop_ms != 0 && now - st.last_drop_ms < DROP_RECENT_MS) {
        reason(reasons, "registry journal dropped %" PRIu64 " events in the last %d minutes",
               st.dropped, DROP_RECENT_MS / 60000);
        ok = false;
    }
    return ok;
}

void view_health(struct sup *sup, struct api_reply *rp)
{
    cJSON *o = cJSON_CreateObject(), *reasons = cJSON_CreateArray();
    bool ok = api_healthy(sup, reasons);

    cJSON_AddStringToObject(o, "status", ok ? "ok" : "unhealthy");
    cJSON_AddStringToObject(o, "node", sup->cfg->node_name);
    cJSON_AddNumberToObject(o, "uptime_s",
                            (double)((md_time_wall_ms() - sup->started_wall_ms) / 1000));
    if (ok)
        cJSON_Delete(reasons);
    else
        cJSON_AddItemToObject(o, "reasons", reasons);
    view_reply_json(rp, ok ? 200 : 503, o);
}

/* ---- status ------------------------------------------------------------------------------- */

static cJSON *run_rec_json(const struct sup_run_rec *r)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "run_id", r->run_id);
    md_time_json(o, "scheduled_for", r->slot * 1000);
    md_time_json(o, "started_at", r->started_ms);
    md_time_json(o, "finished_at", r->finished_ms);
    cJSON_AddStringToObject(o, "status", sup_run_status_name(r->status));
    if (r->signal != 0) {
        cJSON_AddNullToObject(o, "exit_code");
        cJSON_AddNumberToObject(o, "signal", r->signal);
    } else {
        if (r->exit_code >= 0)
            cJSON_AddNumberToObject(o, "exit_code", r->exit_code);
        else /* not known: a run adopted from a previous life */
            cJSON_AddNullToObject(o, "exit_code");
        cJSON_AddNullToObject(o, "signal");
    }
    cJSON_AddNumberToObject(o, "duration_ms", (double)r->duration_ms);
    /* From the run's cgroup; null when meshd runs without cgroups (or without the memory
     * controller, for the peak). */
    if (r->usage.cpu) {
        cJSON_AddNumberToObject(o, "cpu_usec", (double)r->usage.usage_usec);
        cJSON_AddNumberToObject(o, "cpu_user_usec", (double)r->usage.user_usec);
        cJSON_AddNumberToObject(o, "cpu_system_usec", (double)r->usage.system_usec);
    } else {
        cJSON_AddNullToObject(o, "cpu_usec");
        cJSON_AddNullToObject(o, "cpu_user_usec");
        cJSON_AddNullToObject(o, "cpu_system_usec");
    }
    if (r->usage.memory)
        cJSON_AddNumberToObject(o, "memory_peak_bytes", (double)r->usage.memory_peak);
    else
        cJSON_AddNullToObject(o, "memory_peak_bytes");
    return o;
}

static cJSON *job_json(struct sup_job *job)
{
    const struct md_job *j = job->cfg;
    const struct sup_run_rec *last = last_rec(job);
    struct sup_proc *p = primary_of(job);
    cJSON *o = cJSON_CreateObject(), *runs, *alerts;

    cJSON_AddStringToObject(o, "name", job->name);
    cJSON_AddStringToObject(o, "kind", kind_name(j->kind));
    cJSON_AddStringToObject(o, "schedule",
                            j->kind == MD_JOB_CRON      ? j->schedule
                            : j->kind == MD_JOB_SERVICE ? "always"
                                                        : j->event);
    cJSON_AddStringToObject(o, "timezone", md_tz_name(j->tz));
    cJSON_AddBoolToObject(o, "enabled", j->enabled);
    cJSON_AddBoolToObject(o, "paused", job->paused);
    if (j->singleton)
        cJSON_AddBoolToObject(o, "lease_held", job->lease_held);
    cJSON_AddStringToObject(o, "state", view_state_word(job->prog.state));
    if (p != NULL && p->pid > 0)
        cJSON_AddNumberToObject(o, "pid", p->pid);
    else
        cJSON_AddNullToObject(o, "pid");
    cJSON_AddNumberToObject(o, "restarts", job->restarts);
    runs = cJSON_AddObjectToObject(o, "runs");
    cJSON_AddNumberToObject(runs, "succeeded", (double)job->runs_ok);
    cJSON_AddNumberToObject(runs, "failed", (double)view_runs_failed_only(job));
    cJSON_AddNumberToObject(runs, "timed_out", (double)job->runs_timed_out);
    cJSON_AddNumberToObject(runs, "stopped", (double)job->runs_stopped);
    cJSON_AddNumberToObject(runs, "skipped", (double)job->runs_skipped);
    cJSON_AddNumberToObject(runs, "missed", (double)job->runs_missed);
    cJSON_AddNumberToObject(runs, "elsewhere", (double)job->runs_elsewhere);
    md_time_json(o, "next_run", job->paused ? 0 : job->next_slot * 1000);
    if (last != NULL)
        cJSON_AddItemToObject(o, "last_run", run_rec_json(last));
    else
        cJSON_AddNullToObject(o, "last_run");
    if (p != NULL) {
        cJSON *cur = cJSON_AddObjectToObject(o, "current_run");
        cJSON_AddStringToObject(cur, "run_id", p->run_id);
        md_time_json(cur, "started_at", p->started_wall_ms);
        cJSON_AddNumberToObject(cur, "pid", p->pid);
        if (job->msg_id != 0) /* an on: job's run: the bus message it is for */
            cJSON_AddNumberToObject(cur, "message_id", (double)job->msg_id);
        if (p->has_progress) {
            cJSON *pr = cJSON_AddObjectToObject(cur, "progress");
            cJSON_AddNumberToObject(pr, "done", p->progress_done);
            if (p->has_total)
                cJSON_AddNumberToObject(pr, "total", p->progress_total);
            else
                cJSON_AddNullToObject(pr, "total");
            if (p->progress_unit != NULL)
                cJSON_AddStringToObject(pr, "unit", p->progress_unit);
            else
                cJSON_AddNullToObject(pr, "unit");
        } else {
            cJSON_AddNullToObject(cur, "progress");
        }
    } else {
        cJSON_AddNullToObject(o, "current_run");
    }
    alerts = cJSON_AddArrayToObject(o, "alerts");
    for (const struct sup_alert *a = job->history.alerts; a != NULL; a = a->next) {
        cJSON *ao = cJSON_CreateObject();
        cJSON_AddStringToObject(ao, "key", a->key);
        cJSON_AddStringToObject(ao, "severity",
                                md_status_severity_name((enum md_status_severity)a->severity));
        cJSON_AddStringToObject(ao, "message", a->message);
        md_time_json(ao, "opened_at", a->opened_ms);
        cJSON_AddItemToArray(alerts, ao);
    }
    if (job->prog.state == PROG_FATAL && job->last_error != NULL)
        cJSON_AddStringToObject(o, "last_error", job->last_error);
    else
        cJSON_AddNullToObject(o, "last_error");
    return o;
}

void view_job(struct sup_job *job, struct api_reply *rp)
{
    view_reply_json(rp, 200, job_json(job));
}

void view_status(struct sup *sup, struct api_reply *rp)
{
    const struct md_config *cfg = sup->cfg;
    cJSON *o = cJSON_CreateObject(), *node, *reg, *cgs, *reasons, *jobs;
    struct sup_reg_stats st;
    int64_t now = md_time_wall_ms();
    bool ok;

    node = cJSON_AddObjectToObject(o, "node");
    cJSON_AddStringToObject(node, "name", cfg->node_name);
    cJSON_AddStringToObject(node, "environment", cfg->node_env);
    cJSON_AddNumberToObject(node, "pid", (double)getpid());
    cJSON_AddStringToObject(node, "version", MESHD_VERSION);
    md_time_json(node, "started_at", sup->started_wall_ms);
    cJSON_AddNumberToObject(node, "uptime_s", (double)((now - sup->started_wall_ms) / 1000));
    md_time_json(node, "now", now);
    cJSON_AddStringToObject(node, "config", sup->config_path);
    cJSON_AddBoolToObject(node, "stopping", sup->stopping);
    reasons = cJSON_CreateArray();
    ok = api_healthy(sup, reasons);
    cJSON_AddBoolToObject(node, "healthy", ok);
    cJSON_AddItemToObject(node, "reasons", reasons);
    sup_registry_stats(sup, &st);
    reg = cJSON_AddObjectToObject(node, "registry");
    cJSON_AddBoolToObject(reg, "on", st.on);
    cJSON_AddBoolToObject(reg, "connected", st.connected);
    cJSON_AddNumberToObject(reg, "backlog", (double)st.backlog);
    cJSON_AddNumberToObject(reg, "backlog_bytes", (double)st.backlog_bytes);
    cJSON_AddNumberToObject(reg, "bound_bytes", (double)st.bound_bytes);
    cJSON_AddNumberToObject(reg, "dropped", (double)st.dropped);
    cJSON_AddNumberToObject(reg, "write_errors", (double)st.batches_failed);
    cJSON_AddNumberToObject(reg, "events", (double)st.events);
    cgs = cJSON_AddObjectToObject(node, "cgroups");
    cJSON_AddBoolToObject(cgs, "on", sup->cg != NULL && sup->cg->on);
    cJSON_AddBoolToObject(cgs, "memory", sup->cg != NULL && sup->cg->memory);
    if (sup->cg != NULL && sup->cg->path != NULL)
        cJSON_AddStringToObject(cgs, "path", sup->cg->path);
    else
        cJSON_AddNullToObject(cgs, "path");
    if (sup->cg != NULL && sup->cg->why != NULL)
        cJSON_AddStringToObject(cgs, "why", sup->cg->why);
    else
        cJSON_AddNullToObject(cgs, "why");
    jobs = cJSON_AddArrayToObject(o, "jobs");
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        if (!job->retired && job->cfg != NULL)
            cJSON_AddItemToArray(jobs, job_json(job));
    view_reply_json(rp, 200, o);
}

static cJSON *record_lines_json(const struct sup_lines *l)
{
    cJSON *a = cJSON_CreateArray();

    for (unsigned k = 0; k < l->n; k++)
        cJSON_AddItemToArray(a, cJSON_CreateString(l->line[k]));
    return a;
}

static cJSON *lines_json(const struct sup_tail *t)
{
    cJSON *a = cJSON_CreateArray();

    for (unsigned k = 0; k < t->n; k++)
        cJSON_AddItemToArray(a, cJSON_CreateString(sup_tail_line(t, k)));
    return a;
}

void view_logs(struct sup_job *job, struct api_reply *rp)
{
    cJSON *o = cJSON_CreateObject(), *runs;

    cJSON_AddStringToObject(o, "job", job->name);
    runs = cJSON_AddArrayToObject(o, "runs");
    for (unsigned i = 0; i < job->history.n; i++) {
        const struct sup_run_rec *r = sup_history_run(&job->history, i);
        cJSON *ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "run_id", r->run_id);
        md_time_json(ro, "started_at", r->started_ms);
        md_time_json(ro, "finished_at", r->finished_ms);
        cJSON_AddStringToObject(ro, "status", sup_run_status_name(r->status));
        cJSON_AddItemToObject(ro, "lines", record_lines_json(&r->lines));
        cJSON_AddItemToArray(runs, ro);
    }
    /* Runs in progress last (the primary and any concurrent ones), oldest first. */
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next) {
        cJSON *ro;
        if (p->end_recorded || !p->launched)
            continue;
        ro = cJSON_CreateObject();
        cJSON_AddStringToObject(ro, "run_id", p->run_id);
        md_time_json(ro, "started_at", p->started_wall_ms);
        cJSON_AddNullToObject(ro, "finished_at");
        cJSON_AddNullToObject(ro, "status");
        cJSON_AddItemToObject(ro, "lines", lines_json(&p->tail));
        cJSON_AddItemToArray(runs, ro);
    }
    view_reply_json(rp, 200, o);
}

/* ---- the page ----------------------------------------------------------------------------- */

void view_page(struct api_reply *rp)
{
    rp->code = 200;
    rp->ctype = "text/html; charset=utf-8";
    rp->body = (char *)md_page_html;
    rp->len = md_page_html_len;
    rp->body_static = true;
}
