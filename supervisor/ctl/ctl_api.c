/* ctl_api.c - meshctl's client commands: ask a running meshd over its HTTP API (docs/api.md).
 *
 *   meshctl status [JOB] [--json]          GET /status (or /api/jobs/JOB): a table, or raw JSON
 *   meshctl logs JOB [--json]              GET /api/jobs/JOB/logs: the output of recent runs
 *   meshctl run|pause|resume|restart|stop JOB   POST /api/jobs/JOB/<action>
 *   meshctl reload                         POST /api/reload
 *
 * The options every command takes, the request and its answer are ctl_client.c's.
 *
 * Exit codes (docs/meshctl.md): 0 ok; 1 meshd refused the action, answered an error, or reports
 * itself unhealthy (status); 2 usage; 3 meshd cannot be reached; 4 not authorized (401/403).
 */
#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "ctl.h"
#include "ctl_client.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_err.h"
#include "meshd/md_log.h"
#include "meshd/md_tz.h"

/* ---- small helpers of the status table ------------------------------------------------------- */

/* The bound of the node line and of a job's detail.  Each is built from one answer, at most
 * CTL_API_MAX_REPLY, and prints each string of it once; what grows on the way is a number
 * printed in full (up to 309 digits from "1e308"), a few per line.  At twice the answer's cap
 * the bound is never reached: the text is never cut short. */
#define STATUS_LINE_MAX (2 * (size_t)CTL_API_MAX_REPLY)

/* Appends sep (unless b is still empty) and then printf output cut at 511 bytes: one item of
 * the node line or of a job's detail (a last_error, say, shows no more than that). */
static void MD_PRINTF(3, 4) add_item(struct md_buf *b, const char *sep, const char *fmt, ...)
{
    char item[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(item, sizeof item, fmt, ap);
    va_end(ap);
    md_buf_printf(b, "%s%s", b->len > 0 ? sep : "", item);
}

/* An API instant (RFC 3339 UTC with milliseconds, "2026-11-25T07:00:00.004Z", docs/api.md) ->
 * Unix seconds.  md_time_parse_iso reads it but drops the fraction, which is added back here:
 * relative times under 10 s show it ("2.5s ago"). */
static bool parse_time(const char *s, double *out)
{
    int64_t t;
    double frac = 0, scale = 0.1;
    const char *p;

    if (md_time_parse_iso(s, &t) != 0)
        return false;
    p = s + strcspn(s, ".,"); /* only the seconds may have a fraction */
    if (*p != '\0')
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += (*p - '0') * scale;
    *out = (double)t + frac;
    return true;
}

/* An uptime the way supervisorctl shows it: 0:41:10, 2 days, 3:04:05. */
static void fmt_uptime(char *buf, size_t size, double secs)
{
    unsigned long long s = secs > 0 ? (unsigned long long)secs : 0, days = s / 86400;

    s %= 86400;
    if (days > 0)
        snprintf(buf, size, "%llu day%s, %llu:%02llu:%02llu", days, days == 1 ? "" : "s", s / 3600,
                 s / 60 % 60, s % 60);
    else
        snprintf(buf, size, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
}

/* "T ago" / "in T" for the instant `when` seen from `now`; "" when `when` is not a time. */
static void fmt_rel(char *buf, size_t size, const char *when, double now)
{
    double t;
    char span[32];

    buf[0] = '\0';
    if (!parse_time(when, &t))
        return;
    ctl_fmt_span(span, sizeof span, t > now ? t - now : now - t);
    snprintf(buf, size, t > now ? "in %s" : "%s ago", span);
}

/* "SIGTERM" for the common signals, else "signal 37" (into buf). */
static const char *signal_name(char *buf, size_t size, int sig)
{
    static const struct {
        int sig;
        const char *name;
    } names[] = {{SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"},
                 {SIGILL, "SIGILL"},   {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},
                 {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
                 {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"}, {SIGPIPE, "SIGPIPE"},
                 {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}};

    for (size_t i = 0; i < MD_ARRAY_SIZE(names); i++)
        if (names[i].sig == sig)
            return names[i].name;
    snprintf(buf, size, "signal %d", sig);
    return buf;
}

/* An API instant for the table: the fraction of "...:SS.fffZ" is noise there. */
static char *short_instant(const char *s)
{
    const char *dot = strchr(s, '.');
    size_t n = dot ? (size_t)(dot - s) : 0;

    if (dot && n == 19 && dot[strspn(dot + 1, "0123456789") + 1] == 'Z')
        return md_xasprintf("%.*sZ", (int)n, s);
    return md_xstrdup(s);
}

static void upcase(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

/* ---- status ------------------------------------------------------------------------------- */

/* One table row; every field is owned. */
struct row {
    char *name, *state, *detail, *next;
};

/* pid, uptime and progress of the run in progress. */
static void detail_running(struct md_buf *b, const cJSON *job, double now)
{
    const cJSON *cur = ctl_jobj(job, "current_run");
    const cJSON *prog = ctl_jobj(cur, "progress");
    double pid, t, done, total;
    char up[48];

    if (ctl_jnum(cur, "pid", &pid) || ctl_jnum(job, "pid", &pid))
        add_item(b, ", ", "pid %.0f", pid);
    if (parse_time(ctl_jstr(cur, "started_at"), &t)) {
        fmt_uptime(up, sizeof up, now - t);
        add_item(b, ", ", "uptime %s", up);
    }
    if (ctl_jnum(prog, "done", &done)) {
        const char *unit = ctl_jstr(prog, "unit");
        if (ctl_jnum(prog, "total", &total) && total > 0)
            add_item(b, ", ", "%.0f/%.0f%s%s (%.0f%%)", done, total, unit ? " " : "",
                     unit ? unit : "", done * 100 / total);
        else
            add_item(b, ", ", "%.0f%s%s done", done, unit ? " " : "", unit ? unit : "");
    }
}

/* "last run failed 3m12s ago: exit 1 after 2.4s" */
static void detail_last_run(struct md_buf *b, const cJSON *job, double now)
{
    const cJSON *last = ctl_jobj(job, "last_run");
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(last, "signal");
    const char *status = ctl_jstr(last, "status");
    const char *when = ctl_jstr(last, "finished_at");
    double code, ms;
    char rel[48], took[32], signame[32];

    if (last == NULL) {
        add_item(b, ", ", "never run");
        return;
    }
    fmt_rel(rel, sizeof rel, when ? when : ctl_jstr(last, "started_at"), now);
    add_item(b, ", ", "last run %s%s%s", status ? status : "ended", rel[0] ? " " : "", rel);
    if (cJSON_IsString(sig))
        md_buf_printf(b, ": %s", sig->valuestring);
    else if (cJSON_IsNumber(sig))
        md_buf_printf(b, ": %s", signal_name(signame, sizeof signame, sig->valueint));
    else if (ctl_jnum(last, "exit_code", &code))
        md_buf_printf(b, ": exit %.0f", code);
    if (ctl_jnum(last, "duration_ms", &ms)) {
        ctl_fmt_span(took, sizeof took, ms / 1000);
        md_buf_printf(b, " after %s", took);
    }
}

/* Restarts, last error and open alerts, after the main detail. */
static void detail_extras(struct md_buf *b, const cJSON *job)
{
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(job, "alerts");
    const char *err = ctl_jstr(job, "last_error");
    double restarts;
    int nalerts = cJSON_IsArray(alerts) ? cJSON_GetArraySize(alerts) : 0;

    if (ctl_jnum(job, "restarts", &restarts) && restarts > 0)
        add_item(b, "; ", "%.0f restart%s", restarts, restarts == 1 ? "" : "s");
    if (err && *err)
        add_item(b, "; ", "%s", err);
    if (nalerts > 0)
        add_item(b, "; ", "%d open alert%s", nalerts, nalerts == 1 ? "" : "s");
    /* Cluster: a singleton without its lease runs elsewhere; slots run by other nodes. */
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(job, "lease_held");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(job, "runs");
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(job, "current_run");
    double elsewhere, msg;
    if (cJSON_IsFalse(lease))
        add_item(b, "; ", "lease held by another node");
    if (cJSON_IsObject(runs) && ctl_jnum(runs, "elsewhere", &elsewhere) && elsewhere > 0)
        add_item(b, "; ", "%.0f slot%s run elsewhere", elsewhere, elsewhere == 1 ? "" : "s");
    if (cJSON_IsObject(cur) && ctl_jnum(cur, "message_id", &msg))
        add_item(b, "; ", "message %.0f", msg);
}

static char *next_run_text(const cJSON *job, double now)
{
    const char *next = ctl_jstr(job, "next_run");
    char rel[48], *shown, *text;

    if (ctl_jtrue(job, "paused"))
        return md_xstrdup("paused");
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(job, "enabled")))
        return md_xstrdup("disabled");
    if (next == NULL)
        return md_xstrdup("-");
    fmt_rel(rel, sizeof rel, next, now);
    shown = short_instant(next);
    text = md_xasprintf("%s%s%s%s", shown, rel[0] ? " (" : "", rel, rel[0] ? ")" : "");
    md_free(shown);
    return text;
}

static void row_fill(struct row *r, const cJSON *job, double now)
{
    const char *name = ctl_jstr(job, "name"), *state = ctl_jstr(job, "state");
    const cJSON *cur = ctl_jobj(job, "current_run");
    double pid;
    struct md_buf detail;

    r->name = md_xstrdup(name ? name : "?");
    r->state = md_xstrdup(state ? state : "?");
    upcase(r->state);
    md_buf_init(&detail, STATUS_LINE_MAX);
    if (cur || ctl_jnum(job, "pid", &pid))
        detail_running(&detail, job, now);
    else
        detail_last_run(&detail, job, now);
    detail_extras(&detail, job);
    r->detail = md_buf_take(&detail);
    if (r->detail == NULL)
        r->detail = md_xstrdup("");
    r->next = next_run_text(job, now);
}

static int width(int w, const char *s)
{
    int n = (int)strlen(s);
    return n > w ? n : w;
}

/* The supervisorctl-style table of jobs (an array, or one job object). */
static void print_jobs(const cJSON *jobs, double now)
{
    int n = cJSON_IsArray(jobs) ? cJSON_GetArraySize(jobs) : cJSON_IsObject(jobs) ? 1 : 0;
    struct row *rows = md_xcalloc((size_t)n, sizeof *rows);
    int wn = 4, ws = 5, wd = 6, i = 0;
    const cJSON *job;

    if (cJSON_IsArray(jobs)) {
        cJSON_ArrayForEach(job, jobs) row_fill(&rows[i++], job, now);
    } else if (n == 1) {
        row_fill(&rows[i++], jobs, now);
    }
    for (i = 0; i < n; i++) {
        wn = width(wn, rows[i].name);
        ws = width(ws, rows[i].state);
        wd = width(wd, rows[i].detail);
    }
    printf("%-*s  %-*s  %-*s  %s\n", wn, "NAME", ws, "STATE", wd, "DETAIL", "NEXT RUN");
    for (i = 0; i < n; i++) {
        printf("%-*s  %-*s  %-*s  %s\n", wn, rows[i].name, ws, rows[i].state, wd, rows[i].detail,
               rows[i].next);
        md_free(rows[i].name);
        md_free(rows[i].state);
        md_free(rows[i].detail);
        md_free(rows[i].next);
    }
    if (n == 0)
        printf("(no jobs)\n");
    md_free(rows);
}

static void node_registry(struct md_buf *b, const cJSON *reg)
{
    double backlog = 0, bytes = 0, dropped = 0, errors = 0;

    if (reg == NULL || !ctl_jtrue(reg, "on")) {
        add_item(b, "; ", "registry off");
        return;
    }
    ctl_jnum(reg, "backlog", &backlog);
    ctl_jnum(reg, "backlog_bytes", &bytes);
    add_item(b, "; ", "registry %s, backlog %.0f event%s (%.1f KiB)",
             ctl_jtrue(reg, "connected") ? "connected" : "DISCONNECTED", backlog,
             backlog == 1 ? "" : "s", bytes / 1024);
    if (ctl_jnum(reg, "dropped", &dropped) && dropped > 0)
        md_buf_printf(b, ", %.0f dropped", dropped);
    if (ctl_jnum(reg, "write_errors", &errors) && errors > 0)
        md_buf_printf(b, ", %.0f write error%s", errors, errors == 1 ? "" : "s");
}

/* "node pc-01 (dev): meshd 0.1.0 pid 4242, up 1:00:00; healthy; registry connected, ..." */
static void print_node(const cJSON *node)
{
    const cJSON *reasons = ctl_jarr(node, "reasons"), *r, *cg;
    const char *name = ctl_jstr(node, "name"), *env = ctl_jstr(node, "environment");
    const char *version = ctl_jstr(node, "version");
    double pid, up;
    char buf[48];
    struct md_buf line, *b = &line;

    md_buf_init(b, STATUS_LINE_MAX);
    md_buf_printf(b, "node %s", name ? name : "?");
    if (env)
        md_buf_printf(b, " (%s)", env);
    md_buf_printf(b, ": meshd%s%s", version ? " " : "", version ? version : "");
    if (ctl_jnum(node, "pid", &pid))
        md_buf_printf(b, " pid %.0f", pid);
    if (ctl_jnum(node, "uptime_s", &up)) {
        fmt_uptime(buf, sizeof buf, up);
        md_buf_printf(b, ", up %s", buf);
    }
    if (ctl_jtrue(node, "stopping"))
        md_buf_printf(b, "; STOPPING");
    if (ctl_jtrue(node, "healthy")) {
        md_buf_printf(b, "; healthy");
    } else {
        md_buf_printf(b, "; UNHEALTHY");
        cJSON_ArrayForEach(r, reasons)
        {
            if (cJSON_IsString(r))
                md_buf_printf(b, "%s%s", r == reasons->child ? ": " : ", ", r->valuestring);
        }
    }
    node_registry(b, ctl_jobj(node, "registry"));
    cg = ctl_jobj(node, "cgroups"); /* each run in a cgroup of its own (docs/supervision.md) */
    if (cg != NULL && !ctl_jtrue(cg, "on"))
        add_item(b, "; ", "cgroups off");
    else if (cg != NULL)
        add_item(b, "; ", "cgroups on%s", ctl_jtrue(cg, "memory") ? "" : " (no memory)");
    printf("%s\n", md_buf_str(b));
    md_buf_free(b);
}

static int status_run(const struct ctl_api_target *t, const struct ctl_api_opts *o)
{
    char *path = o->job ? ctl_api_job_path(o->job, "") : md_xstrdup("/status");
    cJSON *j = NULL;
    const cJSON *node;
    double now = (double)time(NULL);
    int rc = ctl_api_fetch(t, false, path, &j);

    if (rc != CTL_OK)
        goto out;
    node = ctl_jobj(j, "node");
    /* Relative times against meshd's clock (it may run elsewhere); a lone job object carries
     * none, so this machine's clock stands in. */
    if (!parse_time(ctl_jstr(node, "now"), &now))
        now = (double)time(NULL);
    if (o->json) {
        ctl_api_print_json(j);
    } else if (o->job) {
        print_jobs(j, now);
    } else {
        print_node(node);
        print_jobs(cJSON_GetObjectItemCaseSensitive(j, "jobs"), now);
    }
    if (!o->job && !ctl_jtrue(node, "healthy"))
        rc = CTL_REFUSED;
out:
    cJSON_Delete(j);
    md_free(path);
    return rc;
}

static void status_usage(const char *cmd)
{
    fputs("usage: meshctl status [JOB] [--json] [--socket PATH | --url URL [--token T]] "
          "[--config FILE]\n",
          stderr);
    ctl_api_usage();
}

int ctl_status(int argc, char **argv)
{
    return ctl_api_with_target(argc, argv, false, true, status_usage, status_run);
}

/* ---- logs --------------------------------------------------------------------------------- */

static void print_run_log(const cJSON *run)
{
    const char *id = ctl_jstr(run, "run_id"), *start = ctl_jstr(run, "started_at");
    const char *status = ctl_jstr(run, "status"), *fin = ctl_jstr(run, "finished_at");
    const cJSON *l;

    printf("==> run %s  started %s  %s", id ? id : "?", start ? start : "?",
           status ? status : "running");
    if (status && fin)
        printf(" at %s", fin);
    printf(" <==\n");
    cJSON_ArrayForEach(l, ctl_jarr(run, "lines"))
    {
        /* meshd escapes worker output already; a terminal is worth escaping it again for (an
         * older meshd, or anything else that answers on the socket).  Idempotent on safe text. */
        if (cJSON_IsString(l)) {
            char *text = md_log_escape_dup(l->valuestring, strlen(l->valuestring), 1u << 20);
            printf("%s\n", text);
            md_free(text);
        }
    }
}

static int logs_run(const struct ctl_api_target *t, const struct ctl_api_opts *o)
{
    char *path = ctl_api_job_path(o->job, "logs");
    cJSON *j = NULL;
    const cJSON *run;
    int rc = ctl_api_fetch(t, false, path, &j), n = 0;

    if (rc != CTL_OK)
        goto out;
    if (o->json) {
        ctl_api_print_json(j);
        goto out;
    }
    cJSON_ArrayForEach(run, ctl_jarr(j, "runs"))
    {
        if (n++ > 0)
            printf("\n");
        print_run_log(run);
    }
    if (n == 0)
        printf("no runs of %s yet\n", o->job);
out:
    cJSON_Delete(j);
    md_free(path);
    return rc;
}

static void logs_usage(const char *cmd)
{
    fputs("usage: meshctl logs JOB [--json] [--socket PATH | --url URL [--token T]] "
          "[--config FILE]\n",
          stderr);
    ctl_api_usage();
}

int ctl_logs(int argc, char **argv)
{
    return ctl_api_with_target(argc, argv, true, false, logs_usage, logs_run);
}

/* ---- control actions ---------------------------------------------------------------------- */

/* What a successful answer to each action prints (JOB, then the run id for run). */
static void print_done(const struct ctl_api_opts *o, const cJSON *j)
{
    const char *run_id = ctl_jstr(j, "run_id");

    if (o->job == NULL)
        printf("meshd: config reloaded\n");
    else if (strcmp(o->cmd, "run") == 0)
        printf("%s: started%s%s\n", o->job, run_id ? " run " : "", run_id ? run_id : "");
    else if (strcmp(o->cmd, "pause") == 0)
        printf("%s: paused\n", o->job);
    else if (strcmp(o->cmd, "resume") == 0)
        printf("%s: resumed\n", o->job);
    else if (strcmp(o->cmd, "restart") == 0)
        printf("%s: restarting\n", o->job);
    else
        printf("%s: stopping\n", o->job);
}

static int action_run(const struct ctl_api_target *t, const struct ctl_api_opts *o)
{
    char *path = o->job ? ctl_api_job_path(o->job, o->cmd) : md_xstrdup("/api/reload");
    cJSON *j = NULL;
    int rc = ctl_api_fetch(t, true, path, &j);

    if (rc == CTL_OK && o->json)
        ctl_api_print_json(j);
    else if (rc == CTL_OK)
        print_done(o, j);
    cJSON_Delete(j);
    md_free(path);
    return rc;
}

static void action_usage(const char *cmd)
{
    if (strcmp(cmd, "reload") == 0)
        fputs("usage: meshctl reload [--json] [--socket PATH | --url URL [--token T]] "
              "[--config FILE]\n",
              stderr);
    else
        fprintf(stderr,
                "usage: meshctl %s JOB [--json] [--socket PATH | --url URL [--token T]] "
                "[--config FILE]\n",
                cmd);
    ctl_api_usage();
}

int ctl_action(int argc, char **argv)
{
    static const char *const actions[] = {"run", "pause", "resume", "restart", "stop"};
    bool reload = strcmp(argv[0], "reload") == 0;
    size_t k;

    for (k = 0; k < MD_ARRAY_SIZE(actions) && !reload; k++)
        if (strcmp(argv[0], actions[k]) == 0)
            break;
    assert(reload || k < MD_ARRAY_SIZE(actions)); /* meshctl.c dispatches only these */
    return ctl_api_with_target(argc, argv, !reload, false, action_usage, action_run);
}
