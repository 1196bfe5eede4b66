/* api.c - the HTTP API's entry point (api.h, docs/api.md): routes each request, checks its
 * method and authorization, and carries out the control actions.  The JSON answers are
 * view.c's (api_internal.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "api_internal.h"
#include "meshd/md_alloc.h"
#include "registry.h"
#include "sup.h"

extern const unsigned char md_page_html[];
extern const size_t md_page_html_len;

/* ---- helpers ------------------------------------------------------------------------------ */

static void reply_error(struct api_reply *rp, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reply_error(struct api_reply *rp, unsigned code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    cJSON *o = cJSON_CreateObject();

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON_AddStringToObject(o, "error", msg);
    view_reply_json(rp, code, o);
}

/* ---- metrics ------------------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = md_xrealloc(b->p, b->cap);
    }
}

/* A label value: backslash, double quote and newline escaped (exposition format 0.0.4).
 * Job names are restricted by the config, but nothing here relies on that. */
static const char *label(const char *s, char *out, size_t len)
{
    size_t k = 0;

    for (; *s != '\0' && k + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
    return out;
}

static void histogram(struct buf *b, const char *name, const char *labels, const double *bounds,
                      const uint64_t *counts, size_t nb, double sum, uint64_t count)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < nb; i++) {
        cum += counts[i];
        bprintf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
                bounds[i], cum);
    }
    bprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
            count);
    bprintf(b, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", sum);
    bprintf(b, "%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
            *labels ? "}" : "", count);
}

#define JOBS_EACH(job, sup)                                                                    \
    for (struct sup_job *job = (sup)->jobs; job != NULL; job = job->next)                      \
        if (!job->retired && job->cfg != NULL)

char *api_metrics(struct sup *sup, size_t *len)
{
    struct buf b = {md_xmalloc(16384), 0, 16384};
    struct sup_reg_stats st;
    char l[256], lb[300];
    unsigned running = 0;

    bprintf(&b, "# HELP meshd_up 1 while meshd runs and is not stopping.\n"
                "# TYPE meshd_up gauge\nmeshd_up %d\n", sup->stopping ? 0 : 1);
    bprintf(&b, "# HELP meshd_start_time_seconds When meshd started (Unix time).\n"
                "# TYPE meshd_start_time_seconds gauge\nmeshd_start_time_seconds %.3f\n",
            (double)sup->started_wall_ms / 1000.0);
    bprintf(&b, "# HELP meshd_healthy 1 when GET /health answers 200.\n"
                "# TYPE meshd_healthy gauge\nmeshd_healthy %d\n", api_healthy(sup, NULL) ? 1 : 0);

    bprintf(&b, "# HELP meshd_runs_total Finished runs by job and result.\n"
                "# TYPE meshd_runs_total counter\n");
    JOBS_EACH(job, sup) {
        label(job->name, l, sizeof l);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"succeeded\"} %" PRIu64 "\n", l,
                job->runs_ok);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"failed\"} %" PRIu64 "\n", l,
                view_runs_failed_only(job));
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"stopped\"} %" PRIu64 "\n", l,
                job->runs_stopped);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"timed_out\"} %" PRIu64 "\n", l,
                job->runs_timed_out);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"skipped\"} %" PRIu64 "\n", l,
                job->runs_skipped);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"missed\"} %" PRIu64 "\n", l,
                job->runs_missed);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"elsewhere\"} %" PRIu64 "\n", l,
                job->runs_elsewhere);
    }
    bprintf(&b, "# HELP meshd_run_duration_seconds Duration of finished runs.\n"
                "# TYPE meshd_run_duration_seconds histogram\n");
    JOBS_EACH(job, sup) {
        snprintf(lb, sizeof lb, "job=\"%s\"", label(job->name, l, sizeof l));
        histogram(&b, "meshd_run_duration_seconds", lb, sup_dur_bounds, job->history.dur_bucket,
                  SUP_DUR_BUCKETS - 1, job->history.dur_sum, job->history.dur_count);
    }
    bprintf(&b, "# HELP meshd_restarts_total Restarts after a failure (backoff ended).\n"
                "# TYPE meshd_restarts_total counter\n");
    JOBS_EACH(job, sup)
        bprintf(&b, "meshd_restarts_total{job=\"%s\"} %u\n", label(job->name, l, sizeof l),
                job->restarts);
    bprintf(&b, "# HELP meshd_job_state The job's current state (1 for the state it is in).\n"
                "# TYPE meshd_job_state gauge\n");
    JOBS_EACH(job, sup) {
        label(job->name, l, sizeof l);
        for (int s = 0; s < PROG_NSTATES; s++)
            bprintf(&b, "meshd_job_state{job=\"%s\",state=\"%s\"} %d\n", l,
                    view_state_word((enum prog_state)s), (int)job->prog.state == s);
    }
    bprintf(&b, "# HELP meshd_job_paused 1 when the job is paused.\n"
                "# TYPE meshd_job_paused gauge\n");
    JOBS_EACH(job, sup)
        bprintf(&b, "meshd_job_paused{job=\"%s\"} %d\n", label(job->name, l, sizeof l),
                job->paused);
    bprintf(&b, "# HELP meshd_status_lines_bad_total Malformed status lines from workers.\n"
                "# TYPE meshd_status_lines_bad_total counter\n");
    JOBS_EACH(job, sup)
        bprintf(&b, "meshd_status_lines_bad_total{job=\"%s\"} %" PRIu64 "\n",
                label(job->name, l, sizeof l), job->bad_status_lines);
    bprintf(&b, "# HELP meshd_alerts_open Open alerts raised by workers.\n"
                "# TYPE meshd_alerts_open gauge\n");
    JOBS_EACH(job, sup) {
        unsigned n[3] = {0, 0, 0};
        for (const struct sup_alert *a = job->history.alerts; a != NULL; a = a->next)
            if (a->severity >= 0 && a->severity < 3)
                n[a->severity]++;
        label(job->name, l, sizeof l);
        for (int s = 0; s < 3; s++)
            bprintf(&b, "meshd_alerts_open{job=\"%s\",severity=\"%s\"} %u\n", l,
                    md_status_severity_name((enum md_status_severity)s), n[s]);
    }
    JOBS_EACH(job, sup)
        for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
            running += p->launched && !p->exited;
    bprintf(&b, "# HELP meshd_running_workers Worker processes alive now.\n"
                "# TYPE meshd_running_workers gauge\nmeshd_running_workers %u\n", running);
    bprintf(&b, "# HELP meshd_firing_lag_seconds From a cron slot's due instant to its spawn.\n"
                "# TYPE meshd_firing_lag_seconds histogram\n");
    histogram(&b, "meshd_firing_lag_seconds", "", sup_lag_bounds, sup->lag_bucket,
              SUP_LAG_BUCKETS - 1, sup->lag_sum, sup->lag_count);

    sup_registry_stats(sup, &st);
    {
        const struct {
            const char *name, *type, *help;
            uint64_t v;
        } reg[] = {
            {"meshd_registry_connected", "gauge", "1 when the registry database is connected.",
             st.connected},
            {"meshd_registry_backlog_events", "gauge", "Registry events not yet confirmed.",
             st.backlog},
            {"meshd_registry_backlog_bytes", "gauge", "Bytes of the journal not yet confirmed.",
             st.backlog_bytes},
            {"meshd_registry_events_total", "counter", "Registry events journalled.", st.events},
            {"meshd_registry_write_errors_total", "counter", "Failed registry batch writes.",
             st.batches_failed},
            {"meshd_registry_batches_total", "counter",
             "Registry batches written (round trips).", st.batches_ok},
            {"meshd_registry_dropped_events_total", "counter",
             "Events dropped at the journal's bound.", st.dropped},
        };
        for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
            bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", reg[i].name,
                    reg[i].help, reg[i].name, reg[i].type, reg[i].name, reg[i].v);
    }
    *len = b.len;
    return b.p;
}

/* ---- control ------------------------------------------------------------------------------ */

static unsigned code_of(int rc)
{
    switch (rc) {
    case -EBUSY:
    case -EALREADY: return 409;
    case -ESHUTDOWN: return 503;
    default: return 500;
    }
}

static void handle_action(struct sup *sup, struct sup_job *job, const char *action,
                          struct api_reply *rp)
{
    char err[300] = "", run_id[SUP_RUN_ID_MAX] = "";
    cJSON *o;
    int rc;

    if (strcmp(action, "run") == 0)
        rc = sup_job_run_now(job, run_id, sizeof run_id, err, sizeof err);
    else if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0)
        rc = sup_job_set_paused(job, action[0] == 'p');
    else if (strcmp(action, "restart") == 0)
        rc = sup_job_restart(job, err, sizeof err);
    else
        rc = sup_job_stop(job, err, sizeof err);
    if (rc < 0) {
        if (err[0] == '\0')
            snprintf(err, sizeof err, "%s", rc == -ESHUTDOWN ? "meshd is stopping"
                                                              : "the action failed");
        reply_error(rp, code_of(rc), "%s", err);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddStringToObject(o, "job", job->name);
    if (strcmp(action, "pause") == 0 || strcmp(action, "resume") == 0) {
        cJSON_AddBoolToObject(o, "paused", job->paused);
        view_reply_json(rp, 200, o);
        return;
    }
    if (run_id[0] != '\0')
        cJSON_AddStringToObject(o, "run_id", run_id);
    cJSON_AddStringToObject(o, "state", view_state_word(job->prog.state));
    view_reply_json(rp, 202, o);
    (void)sup;
}

static void handle_reload(struct sup *sup, struct api_reply *rp)
{
    struct md_diag diag;
    cJSON *o, *d;
    int rc;

    md_diag_init(&diag);
    rc = sup_reload_diag(sup, &diag);
    o = cJSON_CreateObject();
    d = cJSON_CreateArray();
    for (size_t i = 0; i < diag.n; i++) {
        char *line = md_diag_format(&diag.items[i], sup->config_path);
        cJSON_AddItemToArray(d, cJSON_CreateString(line));
        md_free(line);
    }
    md_diag_cleanup(&diag);
    if (rc < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, rc == -ESHUTDOWN ? "meshd is stopping"
                                  : "reload failed: %s has errors; the running configuration "
                                    "is kept", sup->config_path);
        cJSON_AddStringToObject(o, "error", msg);
        cJSON_AddItemToObject(o, "diagnostics", d);
        view_reply_json(rp, rc == -ESHUTDOWN ? 503 : 400, o);
        return;
    }
    cJSON_AddTrueToObject(o, "ok");
    cJSON_AddItemToObject(o, "diagnostics", d);
    view_reply_json(rp, 200, o);
}

/* ---- routing ------------------------------------------------------------------------------ */

static bool is_get(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static bool method_ok(const struct api_req *rq, struct api_reply *rp, bool post)
{
    if (post ? strcmp(rq->method, "POST") == 0 : is_get(rq->method))
        return true;
    rp->allow = post ? "POST" : "GET, HEAD";
    reply_error(rp, 405, "method %s is not allowed here (allowed: %s)", rq->method, rp->allow);
    return false;
}

static bool auth_ok(const struct api_req *rq, struct api_reply *rp, bool write)
{
    if (write ? rq->can_write : rq->can_read)
        return true;
    rp->challenge = true;
    if (write && rq->tcp_no_token)
        reply_error(rp, 401, "no API token is configured (http.token or MESHD_API_TOKEN): "
                             "control is only possible over the local socket");
    else
        reply_error(rp, 401, "a valid bearer token is required");
    return false;
}

void api_dispatch(struct sup *sup, const struct api_req *rq, struct api_reply *rp)
{
    const char *path = rq->path;

    memset(rp, 0, sizeof *rp);
    if (strcmp(path, "/health") == 0) {
        if (method_ok(rq, rp, false))
            view_health(sup, rp);
        return;
    }
    if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        if (!method_ok(rq, rp, false))
            return;
        /* The page itself holds no data: it may load without a token and ask for one. */
        rp->code = 200;
        rp->ctype = "text/html; charset=utf-8";
        rp->body = (char *)md_page_html;
        rp->len = md_page_html_len;
        rp->body_static = true;
        return;
    }
    if (strcmp(path, "/status") == 0) {
        if (method_ok(rq, rp, false) && auth_ok(rq, rp, false))
            view_status(sup, rp);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        if (method_ok(rq, rp, false) && auth_ok(rq, rp, false)) {
            rp->code = 200;
            rp->ctype = "text/plain; version=0.0.4; charset=utf-8";
            rp->body = api_metrics(sup, &rp->len);
        }
        return;
    }
    if (strcmp(path, "/api/reload") == 0) {
        if (method_ok(rq, rp, true) && auth_ok(rq, rp, true))
            handle_reload(sup, rp);
        return;
    }
    if (strncmp(path, "/api/jobs/", 10) == 0) {
        const char *name = path + 10, *slash = strchr(name, '/');
        char jname[256];
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        const char *action = slash ? slash + 1 : "";
        struct sup_job *job;
        bool post;

        if (n == 0 || n >= sizeof jname) {
            reply_error(rp, 404, "no such job");
            return;
        }
        memcpy(jname, name, n);
        jname[n] = '\0';
        if (*action == '\0' || strcmp(action, "logs") == 0) {
            post = false;
        } else if (strcmp(action, "run") == 0 || strcmp(action, "pause") == 0 ||
                   strcmp(action, "resume") == 0 || strcmp(action, "restart") == 0 ||
                   strcmp(action, "stop") == 0) {
            post = true;
        } else {
            reply_error(rp, 404, "unknown path %s", path);
            return;
        }
        if (!method_ok(rq, rp, post) || !auth_ok(rq, rp, post))
            return;
        job = sup_job_find(sup, jname);
        if (job == NULL) {
            reply_error(rp, 404, "no such job '%s'", jname);
            return;
        }
        if (!post && *action == '\0')
            view_job(job, rp);
        else if (!post)
            view_logs(job, rp);
        else
            handle_action(sup, job, action, rp);
        return;
    }
    reply_error(rp, 404, "unknown path %s", path);
}
