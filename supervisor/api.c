/* api.c - the HTTP API's entry point (api.h, docs/api.md): routes each request, checks its
 * method and authorization, and carries out the control actions.  The JSON answers are
 * view.c's, the Prometheus text is metrics.c's (api_internal.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "api_internal.h"
#include "meshd/md_alloc.h"
#include "control.h"
#include "sup.h"

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

/* ---- control ------------------------------------------------------------------------------ */

static unsigned code_of(int rc)
{
    switch (rc) {
    case -EBUSY:
    case -EALREADY:
        return 409;
    case -ESHUTDOWN:
        return 503;
    default:
        return 500;
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
            snprintf(err, sizeof err, "%s",
                     rc == -ESHUTDOWN ? "meshd is stopping" : "the action failed");
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
        snprintf(msg, sizeof msg,
                 rc == -ESHUTDOWN ? "meshd is stopping"
                                  : "reload failed: %s has errors; the running configuration "
                                    "is kept",
                 sup->config_path);
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
        reply_error(rp, 401,
                    "no API token is configured (http.token or MESHD_API_TOKEN): "
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
        view_page(rp);
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
