/* ctl_client.c - ctl_client.h: meshctl's client of meshd's HTTP API.
 *
 * Every API command takes --socket PATH (default <state_dir>/meshd.sock, state_dir from --config
 * FILE, else ctl_default_config(); var/state/meshd.sock when the config cannot be loaded) or
 * --url http://HOST:PORT with --token T (default $MESHD_API_TOKEN), sent as a bearer token.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "ctl.h"
#include "ctl_client.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_config.h"

#define API_CONNECT_TIMEOUT_MS 2000L
#define API_TIMEOUT_MS 10000L
#define API_FALLBACK_SOCKET "var/state/meshd.sock"
#define API_SUN_PATH_MAX 107 /* sizeof(sun_path) - 1 on Linux */

/* One HTTP answer.  body is bounded at CTL_API_MAX_REPLY; body.full when the answer was bigger. */
struct api_reply {
    long status;
    struct md_buf body;
};

/* ---- the answer's JSON ----------------------------------------------------------------------- */

const char *ctl_jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool ctl_jnum(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return false;
    *out = v->valuedouble;
    return true;
}

bool ctl_jtrue(const cJSON *o, const char *key)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* The array under key, or NULL (cJSON_ArrayForEach takes NULL as empty). */
const cJSON *ctl_jarr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsArray(v) ? v : NULL;
}

const cJSON *ctl_jobj(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsObject(v) ? v : NULL;
}

/* ---- options and target ------------------------------------------------------------------- */

/* Fills o from argv.  want_job: a JOB operand is required; opt_job: it may be given (status).
 * Returns false after printing the problem. */
static bool parse_opts(int argc, char **argv, struct ctl_api_opts *o, bool want_job, bool opt_job)
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
static bool target_init(struct ctl_api_target *t, const struct ctl_api_opts *o)
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

static void target_cleanup(struct ctl_api_target *t)
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

    if (!md_buf_put(&r->body, data, n))
        return 0; /* over the cap (body.full): makes curl stop with CURLE_WRITE_ERROR */
    return n;
}

/* Prints why no answer came and returns the exit code for it. */
static int report_transport(const struct ctl_api_target *t, CURLcode rc, const char *errbuf,
                            const struct api_reply *r)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    struct stat st;

    if (r->body.full) {
        fprintf(stderr, "meshctl: meshd's answer is over %u MiB: refused\n",
                CTL_API_MAX_REPLY / (1024 * 1024));
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

static CURL *api_easy(const struct ctl_api_target *t, const char *url, struct curl_slist *hdrs,
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
static int api_call(const struct ctl_api_target *t, bool post, const char *path,
                    struct api_reply *r)
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
static void print_error(const struct ctl_api_target *t, const struct api_reply *r, const cJSON *j)
{
    const char *msg = ctl_jstr(j, "error");
    const cJSON *d;

    const char *body = md_buf_str(&r->body);
    size_t len = strcspn(body, "\r\n");

    if (msg)
        fprintf(stderr, "meshctl: %s (HTTP %ld)\n", msg, r->status);
    else
        fprintf(stderr, "meshctl: meshd answered HTTP %ld%s%.*s\n", r->status, len ? ": " : "",
                (int)(len > 200 ? 200 : len), body);
    cJSON_ArrayForEach(d, ctl_jarr(j, "diagnostics"))
    {
        if (cJSON_IsString(d))
            fprintf(stderr, "  %s\n", d->valuestring);
    }
    if (r->status == 401 && t->socket == NULL)
        fprintf(stderr, "meshctl: pass the API token with --token or $MESHD_API_TOKEN\n");
}

/* Turns an answer into the parsed JSON of a 2xx (caller deletes *out) or an exit code. */
static int api_answer(const struct ctl_api_target *t, const struct api_reply *r, cJSON **out)
{
    cJSON *j = r->body.len ? cJSON_ParseWithLength(md_buf_str(&r->body), r->body.len) : NULL;

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

int ctl_api_fetch(const struct ctl_api_target *t, bool post, const char *path, cJSON **out)
{
    struct api_reply r = {0};
    int rc;

    md_buf_init(&r.body, CTL_API_MAX_REPLY);
    rc = api_call(t, post, path, &r);
    *out = NULL;
    if (rc == CTL_OK)
        rc = api_answer(t, &r, out);
    md_buf_free(&r.body);
    return rc;
}

char *ctl_api_job_path(const char *job, const char *what)
{
    char *esc = curl_easy_escape(NULL, job, 0);
    char *p;

    if (esc == NULL)
        abort(); /* only on OOM */
    p = md_xasprintf("/api/jobs/%s%s%s", esc, *what ? "/" : "", what);
    curl_free(esc);
    return p;
}

void ctl_api_print_json(const cJSON *j)
{
    char *s = cJSON_Print(j);

    if (s == NULL)
        abort(); /* only on OOM */
    printf("%s\n", s);
    cJSON_free(s);
}

/* The allocators of both libraries become the aborting md_x* ones (see ctl_client.h). */
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

int ctl_api_with_target(int argc, char **argv, bool want_job, bool opt_job,
                        void (*usage)(const char *cmd),
                        int (*fn)(const struct ctl_api_target *, const struct ctl_api_opts *))
{
    struct ctl_api_opts o;
    struct ctl_api_target t;
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

void ctl_api_usage(void)
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
