/* ctl_api.c - meshctl's client commands: ask a running meshd over its HTTP API (docs/api.md).
 *
 *   meshctl status [JOB] [--json]          GET /status (or /api/jobs/JOB): a table, or raw JSON
 *   meshctl logs JOB [--json]              GET /api/jobs/JOB/logs: the output of recent runs
 *   meshctl run|pause|resume|restart|stop JOB   POST /api/jobs/JOB/<action>
 *   meshctl reload                         POST /api/reload
 *
 * Every command takes --socket PATH (default <state_dir>/meshd.sock, state_dir from --config
 * FILE, else ctl_default_config(); var/state/meshd.sock when the config cannot be loaded) or
 * --url http://HOST:PORT with --token T (default $MESHD_API_TOKEN), sent as a bearer token.
 *
 * Exit codes (docs/meshctl.md): 0 ok; 1 meshd refused the action, answered an error, or reports
 * itself unhealthy (status); 2 usage; 3 meshd cannot be reached; 4 not authorized (401/403).
 *
 * Blocking libcurl (easy interface), one request per command: fine in a command-line tool, never
 * inside meshd's loop.  libcurl's and cJSON's allocations go through the md_x* helpers, so a NULL
 * from either library below means a protocol problem, never a lack of memory.
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "ctl.h"
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_err.h"
#include "meshd/md_log.h"
#include "meshd/md_tz.h"

enum {
    CTL_OK = 0,
    CTL_REFUSED = 1, /* an error answer, a refused action, or unhealthy */
    CTL_USAGE = 2,
    CTL_UNREACHABLE = 3, /* no socket, nothing listening, timeout, broken connection */
    CTL_UNAUTHORIZED = 4,
};

#define API_CONNECT_TIMEOUT_MS 2000L
#define API_TIMEOUT_MS 10000L
#define API_MAX_REPLY (16u * 1024 * 1024) /* /status of a big node is far below this */
#define API_FALLBACK_SOCKET "var/state/meshd.sock"
#define API_SUN_PATH_MAX 107 /* sizeof(sun_path) - 1 on Linux */

/* What the command line asked for; every string is borrowed from argv. */
struct api_opts {
    const char *cmd;    /* argv[0]: "status", "run", ... (for messages and the path) */
    const char *job;    /* the JOB operand, or NULL */
    const char *socket; /* --socket */
    const char *url;    /* --url */
    const char *token;  /* --token */
    const char *config; /* --config */
    bool json;
};

/* Where and how to send requests.  Owns its strings (target_cleanup). */
struct api_target {
    char *socket;      /* unix socket path; NULL when talking to base over TCP */
    char *base;        /* "http://localhost" for the socket, else --url without a trailing / */
    char *token;       /* bearer token, or NULL */
    char *config_note; /* why the fallback socket was used, or NULL */
};

/* One HTTP answer; body is NUL-terminated once anything arrived. */
struct api_reply {
    long status;
    char *body;
    size_t len, cap;
    bool toobig;
};

/* ---- small helpers ------------------------------------------------------------------------ */

/* Appends printf output to *s (NULL or from md_xmalloc). */
static void MD_PRINTF(2, 3) sb_addf(char **s, const char *fmt, ...)
{
    size_t old = *s ? strlen(*s) : 0;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* only an invalid format gets here */
    *s = md_xrealloc(*s, old + (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(*s + old, (size_t)n + 1, fmt, ap);
    va_end(ap);
}

/* Appends sep (unless *s is still empty) and then printf output. */
static void MD_PRINTF(3, 4) sb_item(char **s, const char *sep, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    sb_addf(s, "%s%s", *s && **s ? sep : "", buf);
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jnum(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

static bool jtrue(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The array under key, or NULL (cJSON_ArrayForEach takes NULL as empty). */
static const cJSON *jarr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsArray(v) ? v : NULL;
}

static const cJSON *jobj(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsObject(v) ? v : NULL;
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

/* ---- options and target ------------------------------------------------------------------- */

/* Fills o from argv.  want_job: a JOB operand is required; opt_job: it may be given (status).
 * Returns false after printing the problem. */
static bool parse_opts(int argc, char **argv, struct api_opts *o, bool want_job, bool opt_job)
{
    bool bad = false;

    memset(o, 0, sizeof *o);
    o->cmd = argv[0];
    for (int i = 1; i < argc && !bad; i++) {
        const char *v;

        if ((v = ctl_opt_value("--socket", argc, argv, &i, &bad)) != NULL)
            o->socket = v;
        else if ((v = ctl_opt_value("--url", argc, argv, &i, &bad)) != NULL)
            o->url = v;
        else if ((v = ctl_opt_value("--token", argc, argv, &i, &bad)) != NULL)
            o->token = v;
        else if ((v = ctl_opt_value("--config", argc, argv, &i, &bad)) != NULL)
            o->config = v;
        else if (bad)
            break;
        else if (strcmp(argv[i], "--json") == 0)
            o->json = true;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "meshctl %s: unknown option '%s'\n", o->cmd, argv[i]);
            bad = true;
        } else if ((want_job || opt_job) && o->job == NULL)
            o->job = argv[i];
        else {
            fprintf(stderr, "meshctl %s: unexpected argument '%s'\n", o->cmd, argv[i]);
            bad = true;
        }
    }
    if (!bad && want_job && (o->job == NULL || o->job[0] == '\0')) {
        fprintf(stderr, "meshctl %s: which job? (meshctl %s JOB)\n", o->cmd, o->cmd);
        bad = true;
    }
    if (!bad && o->socket && o->url) {
        fprintf(stderr, "meshctl %s: --socket and --url exclude each other\n", o->cmd);
        bad = true;
    }
    if (!bad && o->url && strncmp(o->url, "http://", 7) != 0 &&
        strncmp(o->url, "https://", 8) != 0) {
        fprintf(stderr, "meshctl %s: --url must start with http:// or https://, got '%s'\n", o->cmd,
                o->url);
        bad = true;
    }
    return !bad;
}

/* The socket path from the config's node.state_dir; the fallback (with a note for later) when
 * the config cannot be loaded.  Caller frees with md_free. */
static char *socket_from_config(const char *path, char **note)
{
    struct md_config *cfg = NULL;
    struct md_diag diag;
    char *sock;

    md_diag_init(&diag);
    if (md_config_load(path, &cfg, &diag) == 0) {
        sock = md_xasprintf("%s/meshd.sock", cfg->state_dir);
        md_config_free(cfg);
    } else {
        const struct md_diag_item *first = NULL;

        for (size_t k = 0; k < diag.n && first == NULL; k++)
            if (diag.items[k].severity == MD_DIAG_ERROR)
                first = &diag.items[k];
        if (first) {
            char *line = md_diag_format(first, path);
            *note = md_xasprintf("the config %s could not be loaded (%s)", path, line);
            md_free(line);
        } else {
            *note = md_xasprintf("the config %s could not be loaded", path);
        }
        sock = md_xstrdup(API_FALLBACK_SOCKET);
    }
    md_diag_cleanup(&diag);
    return sock;
}

/* A token goes into a header line: control characters would forge other header lines. */
static bool token_ok(const char *tok)
{
    for (; *tok; tok++)
        if ((unsigned char)*tok < 0x20 || *tok == 0x7f)
            return false;
    return true;
}

/* Fills t from the options; false (after saying why) for a token meshctl cannot send. */
static bool target_init(struct api_target *t, const struct api_opts *o)
{
    const char *tok;

    memset(t, 0, sizeof *t);
    if (o->url) {
        size_t n = strlen(o->url);

        while (n > 0 && o->url[n - 1] == '/')
            n--;
        t->base = md_xstrndup(o->url, n);
        tok = o->token ? o->token : getenv("MESHD_API_TOKEN");
    } else {
        /* The host is never looked up: curl only puts it in the Host: header. */
        t->base = md_xstrdup("http://localhost");
        t->socket = o->socket ? md_xstrdup(o->socket)
                              : socket_from_config(o->config ? o->config : ctl_default_config(),
                                                   &t->config_note);
        tok = o->token; /* the socket needs none; an explicit one does no harm */
    }
    if (tok && !token_ok(tok)) {
        fprintf(stderr, "meshctl %s: the token holds control characters\n", o->cmd);
        return false;
    }
    t->token = tok && *tok ? md_xstrdup(tok) : NULL;
    return true;
}

static void target_cleanup(struct api_target *t)
{
    md_free(t->socket);
    md_free(t->base);
    md_free(t->token);
    md_free(t->config_note);
}

/* ---- one request -------------------------------------------------------------------------- */

/* curl write callback: bounded append (the cap is a protocol error, not a realloc). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct api_reply *r = arg;
    size_t n = size * nmemb;

    if (n > API_MAX_REPLY - r->len) {
        r->toobig = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;

        while (cap < r->len + n + 1)
            cap *= 2;
        r->body = md_xrealloc(r->body, cap);
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

/* Prints why no answer came and returns the exit code for it. */
static int report_transport(const struct api_target *t, CURLcode rc, const char *errbuf,
                            const struct api_reply *r)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    struct stat st;

    if (r->toobig) {
        fprintf(stderr, "meshctl: meshd's answer is over %u MiB: refused\n",
                API_MAX_REPLY / (1024 * 1024));
        return CTL_REFUSED;
    }
    if (t->socket == NULL) {
        fprintf(stderr, "meshctl: cannot connect to %s: %s\n", t->base, why);
        return CTL_UNREACHABLE;
    }
    if (strlen(t->socket) > API_SUN_PATH_MAX)
        fprintf(stderr, "meshctl: cannot connect to %s: a socket path has at most %d bytes\n",
                t->socket, API_SUN_PATH_MAX);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        fprintf(stderr, "meshctl: meshd did not answer within %lds on %s\n", API_TIMEOUT_MS / 1000,
                t->socket);
    else if (stat(t->socket, &st) != 0 && (errno == ENOENT || errno == ENOTDIR))
        fprintf(stderr, "meshctl: meshd is not running (no socket at %s)\n", t->socket);
    else if (rc == CURLE_COULDNT_CONNECT && !S_ISSOCK(st.st_mode))
        fprintf(stderr, "meshctl: %s is not a socket: is --socket right?\n", t->socket);
    else if (rc == CURLE_COULDNT_CONNECT && access(t->socket, W_OK) != 0)
        fprintf(stderr,
                "meshctl: cannot connect to %s: permission denied (the socket is for "
                "meshd's user only)\n",
                t->socket);
    else if (rc == CURLE_COULDNT_CONNECT)
        fprintf(stderr,
                "meshctl: meshd is not running (%s is left over: nothing accepts "
                "connections on it)\n",
                t->socket);
    else
        fprintf(stderr, "meshctl: cannot talk to meshd on %s: %s\n", t->socket, why);
    if (t->config_note)
        fprintf(stderr,
                "meshctl: note: %s, so the default socket %s was used; pass --config "
                "or --socket\n",
                t->config_note, API_FALLBACK_SOCKET);
    return CTL_UNREACHABLE;
}

static CURL *api_easy(const struct api_target *t, const char *url, struct curl_slist *hdrs,
                      struct api_reply *r, char *errbuf)
{
    CURL *c = curl_easy_init();

    if (c == NULL) {
        fputs("meshctl: cannot initialize libcurl\n", stderr);
        abort(); /* its allocations abort on OOM: nothing else fails here */
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (t->socket)
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, t->socket);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, API_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, API_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "meshctl");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    return c;
}

/* Sends METHOD (GET or POST, no body) to base+path and fills *r.  Returns CTL_OK when an HTTP
 * answer arrived, whatever its status; otherwise prints why and returns the exit code. */
static int api_call(const struct api_target *t, bool post, const char *path, struct api_reply *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    char *url = md_xasprintf("%s%s", t->base, path);
    char *auth = t->token ? md_xasprintf("Authorization: Bearer %s", t->token) : NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    CURL *c;
    CURLcode rc;
    int ret = CTL_OK;

    if (auth)
        hdrs = curl_slist_append(hdrs, auth);
    if (hdrs == NULL)
        abort(); /* only on OOM, which the md_x* hooks already abort on */
    c = api_easy(t, url, hdrs, r, errbuf);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        ret = report_transport(t, rc, errbuf, r);
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    md_free(auth);
    md_free(url);
    return ret;
}

/* Prints an error answer: {"error": "...", "diagnostics": [...]} or the start of the body. */
static void print_error(const struct api_target *t, const struct api_reply *r, const cJSON *j)
{
    const char *msg = jstr(j, "error");
    const cJSON *d;

    const char *body = r->body ? r->body : "";
    size_t len = strcspn(body, "\r\n");

    if (msg)
        fprintf(stderr, "meshctl: %s (HTTP %ld)\n", msg, r->status);
    else
        fprintf(stderr, "meshctl: meshd answered HTTP %ld%s%.*s\n", r->status, len ? ": " : "",
                (int)(len > 200 ? 200 : len), body);
    cJSON_ArrayForEach(d, jarr(j, "diagnostics")) {
        if (cJSON_IsString(d))
            fprintf(stderr, "  %s\n", d->valuestring);
    }
    if (r->status == 401 && t->socket == NULL)
        fprintf(stderr, "meshctl: pass the API token with --token or $MESHD_API_TOKEN\n");
}

/* Turns an answer into the parsed JSON of a 2xx (caller deletes *out) or an exit code. */
static int api_answer(const struct api_target *t, const struct api_reply *r, cJSON **out)
{
    cJSON *j = r->len ? cJSON_ParseWithLength(r->body, r->len) : NULL;

    *out = NULL;
    if (r->status >= 200 && r->status < 300) {
        if (cJSON_IsObject(j)) {
            *out = j;
            return CTL_OK;
        }
        fprintf(stderr, "meshctl: meshd answered HTTP %ld without a JSON object\n", r->status);
        cJSON_Delete(j);
        return CTL_REFUSED;
    }
    print_error(t, r, j);
    cJSON_Delete(j);
    return r->status == 401 || r->status == 403 ? CTL_UNAUTHORIZED : CTL_REFUSED;
}

/* One request and its parsed 2xx answer in *out (caller deletes); the exit code otherwise. */
static int api_fetch(const struct api_target *t, bool post, const char *path, cJSON **out)
{
    struct api_reply r = {0};
    int rc = api_call(t, post, path, &r);

    *out = NULL;
    if (rc == CTL_OK)
        rc = api_answer(t, &r, out);
    md_free(r.body);
    return rc;
}

/* "/api/jobs/<JOB escaped>/<what>" (what may be ""). */
static char *job_path(const char *job, const char *what)
{
    char *esc = curl_easy_escape(NULL, job, 0);
    char *p;

    if (esc == NULL)
        abort(); /* only on OOM */
    p = md_xasprintf("/api/jobs/%s%s%s", esc, *what ? "/" : "", what);
    curl_free(esc);
    return p;
}

static void print_json(const cJSON *j)
{
    char *s = cJSON_Print(j);

    if (s == NULL)
        abort(); /* only on OOM */
    printf("%s\n", s);
    cJSON_free(s);
}

/* The allocators of both libraries become the aborting md_x* ones (see the top comment). */
static void libs_init(void)
{
    cJSON_Hooks hooks = {md_xmalloc, md_free};

    cJSON_InitHooks(&hooks);
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, md_xmalloc, md_free, md_xrealloc, md_xstrdup,
                             md_xcalloc) != CURLE_OK) {
        fputs("meshctl: cannot initialize libcurl\n", stderr);
        exit(CTL_UNREACHABLE);
    }
}

/* Parses options, runs fn with a target and returns its code: the frame of every command. */
static int with_target(int argc, char **argv, bool want_job, bool opt_job,
                       void (*usage)(const char *cmd),
                       int (*fn)(const struct api_target *, const struct api_opts *))
{
    struct api_opts o;
    struct api_target t;
    int rc;

    if (!parse_opts(argc, argv, &o, want_job, opt_job)) {
        usage(argv[0]);
        return CTL_USAGE;
    }
    libs_init();
    rc = target_init(&t, &o) ? fn(&t, &o) : CTL_USAGE;
    fflush(stdout);
    target_cleanup(&t);
    curl_global_cleanup();
    return rc;
}

static void common_usage(void)
{
    fputs(
        "  --socket PATH    meshd's unix socket (default <node.state_dir>/meshd.sock of --config)\n"
        "  --config FILE    the schedule to read state_dir from ($MESHD_CONFIG, else "
        "conf/meshd.yaml)\n"
        "  --url URL        the TCP listener instead, e.g. http://127.0.0.1:8470\n"
        "  --token TOKEN    bearer token for --url (default $MESHD_API_TOKEN)\n"
        "exit: 0 ok, 1 refused/error/unhealthy, 2 usage, 3 meshd not reachable, 4 not "
        "authorized\n",
        stderr);
}

/* ---- status ------------------------------------------------------------------------------- */

/* One table row; every field is owned. */
struct row {
    char *name, *state, *detail, *next;
};

/* pid, uptime and progress of the run in progress. */
static void detail_running(char **s, const cJSON *job, double now)
{
    const cJSON *cur = jobj(job, "current_run");
    const cJSON *prog = jobj(cur, "progress");
    double pid, t, done, total;
    char up[48];

    if (jnum(cur, "pid", &pid) || jnum(job, "pid", &pid))
        sb_item(s, ", ", "pid %.0f", pid);
    if (parse_time(jstr(cur, "started_at"), &t)) {
        fmt_uptime(up, sizeof up, now - t);
        sb_item(s, ", ", "uptime %s", up);
    }
    if (jnum(prog, "done", &done)) {
        const char *unit = jstr(prog, "unit");
        if (jnum(prog, "total", &total) && total > 0)
            sb_item(s, ", ", "%.0f/%.0f%s%s (%.0f%%)", done, total, unit ? " " : "",
                    unit ? unit : "", done * 100 / total);
        else
            sb_item(s, ", ", "%.0f%s%s done", done, unit ? " " : "", unit ? unit : "");
    }
}

/* "last run failed 3m12s ago: exit 1 after 2.4s" */
static void detail_last_run(char **s, const cJSON *job, double now)
{
    const cJSON *last = jobj(job, "last_run");
    const cJSON *sig = cJSON_GetObjectItemCaseSensitive(last, "signal");
    const char *status = jstr(last, "status");
    const char *when = jstr(last, "finished_at");
    double code, ms;
    char rel[48], took[32], signame[32];

    if (last == NULL) {
        sb_item(s, ", ", "never run");
        return;
    }
    fmt_rel(rel, sizeof rel, when ? when : jstr(last, "started_at"), now);
    sb_item(s, ", ", "last run %s%s%s", status ? status : "ended", rel[0] ? " " : "", rel);
    if (cJSON_IsString(sig))
        sb_addf(s, ": %s", sig->valuestring);
    else if (cJSON_IsNumber(sig))
        sb_addf(s, ": %s", signal_name(signame, sizeof signame, sig->valueint));
    else if (jnum(last, "exit_code", &code))
        sb_addf(s, ": exit %.0f", code);
    if (jnum(last, "duration_ms", &ms)) {
        ctl_fmt_span(took, sizeof took, ms / 1000);
        sb_addf(s, " after %s", took);
    }
}

/* Restarts, last error and open alerts, after the main detail. */
static void detail_extras(char **s, const cJSON *job)
{
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(job, "alerts");
    const char *err = jstr(job, "last_error");
    double restarts;
    int nalerts = cJSON_IsArray(alerts) ? cJSON_GetArraySize(alerts) : 0;

    if (jnum(job, "restarts", &restarts) && restarts > 0)
        sb_item(s, "; ", "%.0f restart%s", restarts, restarts == 1 ? "" : "s");
    if (err && *err)
        sb_item(s, "; ", "%s", err);
    if (nalerts > 0)
        sb_item(s, "; ", "%d open alert%s", nalerts, nalerts == 1 ? "" : "s");
    /* Cluster: a singleton without its lease runs elsewhere; slots run by other nodes. */
    const cJSON *lease = cJSON_GetObjectItemCaseSensitive(job, "lease_held");
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(job, "runs");
    const cJSON *cur = cJSON_GetObjectItemCaseSensitive(job, "current_run");
    double elsewhere, msg;
    if (cJSON_IsFalse(lease))
        sb_item(s, "; ", "lease held by another node");
    if (cJSON_IsObject(runs) && jnum(runs, "elsewhere", &elsewhere) && elsewhere > 0)
        sb_item(s, "; ", "%.0f slot%s run elsewhere", elsewhere, elsewhere == 1 ? "" : "s");
    if (cJSON_IsObject(cur) && jnum(cur, "message_id", &msg))
        sb_item(s, "; ", "message %.0f", msg);
}

static char *next_run_text(const cJSON *job, double now)
{
    const char *next = jstr(job, "next_run");
    char rel[48], *shown, *text;

    if (jtrue(job, "paused"))
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
    const char *name = jstr(job, "name"), *state = jstr(job, "state");
    const cJSON *cur = jobj(job, "current_run");
    double pid;

    r->name = md_xstrdup(name ? name : "?");
    r->state = md_xstrdup(state ? state : "?");
    upcase(r->state);
    r->detail = NULL;
    if (cur || jnum(job, "pid", &pid))
        detail_running(&r->detail, job, now);
    else
        detail_last_run(&r->detail, job, now);
    detail_extras(&r->detail, job);
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
        cJSON_ArrayForEach(job, jobs)
            row_fill(&rows[i++], job, now);
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

static void node_registry(char **s, const cJSON *reg)
{
    double backlog = 0, bytes = 0, dropped = 0, errors = 0;

    if (reg == NULL || !jtrue(reg, "on")) {
        sb_item(s, "; ", "registry off");
        return;
    }
    jnum(reg, "backlog", &backlog);
    jnum(reg, "backlog_bytes", &bytes);
    sb_item(s, "; ", "registry %s, backlog %.0f event%s (%.1f KiB)",
            jtrue(reg, "connected") ? "connected" : "DISCONNECTED", backlog,
            backlog == 1 ? "" : "s", bytes / 1024);
    if (jnum(reg, "dropped", &dropped) && dropped > 0)
        sb_addf(s, ", %.0f dropped", dropped);
    if (jnum(reg, "write_errors", &errors) && errors > 0)
        sb_addf(s, ", %.0f write error%s", errors, errors == 1 ? "" : "s");
}

/* "node pc-01 (dev): meshd 0.1.0 pid 4242, up 1:00:00; healthy; registry connected, ..." */
static void print_node(const cJSON *node)
{
    const cJSON *reasons = jarr(node, "reasons"), *r, *cg;
    const char *name = jstr(node, "name"), *env = jstr(node, "environment");
    const char *version = jstr(node, "version");
    double pid, up;
    char *s = NULL, buf[48];

    sb_addf(&s, "node %s", name ? name : "?");
    if (env)
        sb_addf(&s, " (%s)", env);
    sb_addf(&s, ": meshd%s%s", version ? " " : "", version ? version : "");
    if (jnum(node, "pid", &pid))
        sb_addf(&s, " pid %.0f", pid);
    if (jnum(node, "uptime_s", &up)) {
        fmt_uptime(buf, sizeof buf, up);
        sb_addf(&s, ", up %s", buf);
    }
    if (jtrue(node, "stopping"))
        sb_addf(&s, "; STOPPING");
    if (jtrue(node, "healthy")) {
        sb_addf(&s, "; healthy");
    } else {
        sb_addf(&s, "; UNHEALTHY");
        cJSON_ArrayForEach(r, reasons) {
            if (cJSON_IsString(r))
                sb_addf(&s, "%s%s", r == reasons->child ? ": " : ", ", r->valuestring);
        }
    }
    node_registry(&s, jobj(node, "registry"));
    cg = jobj(node, "cgroups"); /* each run in a cgroup of its own (docs/supervision.md) */
    if (cg != NULL && !jtrue(cg, "on"))
        sb_item(&s, "; ", "cgroups off");
    else if (cg != NULL)
        sb_item(&s, "; ", "cgroups on%s", jtrue(cg, "memory") ? "" : " (no memory)");
    printf("%s\n", s);
    md_free(s);
}

static int status_run(const struct api_target *t, const struct api_opts *o)
{
    char *path = o->job ? job_path(o->job, "") : md_xstrdup("/status");
    cJSON *j = NULL;
    const cJSON *node;
    double now = (double)time(NULL);
    int rc = api_fetch(t, false, path, &j);

    if (rc != CTL_OK)
        goto out;
    node = jobj(j, "node");
    /* Relative times against meshd's clock (it may run elsewhere); a lone job object carries
     * none, so this machine's clock stands in. */
    if (!parse_time(jstr(node, "now"), &now))
        now = (double)time(NULL);
    if (o->json) {
        print_json(j);
    } else if (o->job) {
        print_jobs(j, now);
    } else {
        print_node(node);
        print_jobs(cJSON_GetObjectItemCaseSensitive(j, "jobs"), now);
    }
    if (!o->job && !jtrue(node, "healthy"))
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
    common_usage();
}

int ctl_status(int argc, char **argv)
{
    return with_target(argc, argv, false, true, status_usage, status_run);
}

/* ---- logs --------------------------------------------------------------------------------- */

static void print_run_log(const cJSON *run)
{
    const char *id = jstr(run, "run_id"), *start = jstr(run, "started_at");
    const char *status = jstr(run, "status"), *fin = jstr(run, "finished_at");
    const cJSON *l;

    printf("==> run %s  started %s  %s", id ? id : "?", start ? start : "?",
           status ? status : "running");
    if (status && fin)
        printf(" at %s", fin);
    printf(" <==\n");
    cJSON_ArrayForEach(l, jarr(run, "lines")) {
        /* meshd escapes worker output already; a terminal is worth escaping it again for (an
         * older meshd, or anything else that answers on the socket).  Idempotent on safe text. */
        if (cJSON_IsString(l)) {
            char *text = md_log_escape_dup(l->valuestring, strlen(l->valuestring), 1u << 20);
            printf("%s\n", text);
            md_free(text);
        }
    }
}

static int logs_run(const struct api_target *t, const struct api_opts *o)
{
    char *path = job_path(o->job, "logs");
    cJSON *j = NULL;
    const cJSON *run;
    int rc = api_fetch(t, false, path, &j), n = 0;

    if (rc != CTL_OK)
        goto out;
    if (o->json) {
        print_json(j);
        goto out;
    }
    cJSON_ArrayForEach(run, jarr(j, "runs")) {
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
    common_usage();
}

int ctl_logs(int argc, char **argv)
{
    return with_target(argc, argv, true, false, logs_usage, logs_run);
}

/* ---- control actions ---------------------------------------------------------------------- */

/* What a successful answer to each action prints (JOB, then the run id for run). */
static void print_done(const struct api_opts *o, const cJSON *j)
{
    const char *run_id = jstr(j, "run_id");

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

static int action_run(const struct api_target *t, const struct api_opts *o)
{
    char *path = o->job ? job_path(o->job, o->cmd) : md_xstrdup("/api/reload");
    cJSON *j = NULL;
    int rc = api_fetch(t, true, path, &j);

    if (rc == CTL_OK && o->json)
        print_json(j);
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
    common_usage();
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
    return with_target(argc, argv, !reload, false, action_usage, action_run);
}
