/* scrape_fetch_probe - runs meshd-scrape's download engine (workers/scrape/fetch.h) on one job
 * read from stdin and prints what became of each item, for tests/integration/test_scrape_fetch.py.
 *
 * stdin, one JSON object (at most 1 MiB):
 *
 *   {"opts": {"concurrency": 4, "per_host": 2, "retries": 5, "backoff_ms": 1000,
 *             "max_backoff_ms": 60000, "connect_timeout_ms": 30000, "stall_ms": 60000,
 *             "stall_bytes_per_s": 1024, "max_recv_speed": 0, "user_agent": "..."},
 *    "items": [{"url": "...", "etag": "\"...\"" or null, "last_modified": 0, "path": "..."}],
 *    "stop_after_ms": 500}
 *
 * Every key of "opts" is optional (fetch_opts_init's defaults); so are "etag",
 * "last_modified" and "stop_after_ms" (call fetch_stop that many ms after fetch_start).  An
 * unknown key is an error, so a typo in a test cannot pass unnoticed.  SIGTERM also calls
 * fetch_stop (from the loop: the handler only sets a flag).
 *
 * stdout: one JSON line per item, flushed, in the order fetch_next returns them: "i" (the item's
 * index), "outcome" ("NOT_MODIFIED", "DOWNLOADED", "FAILED", "STOPPED") and every out field of
 * struct fetch_item under its own name.  fetch.c's log lines ("retrying: ...") go to stderr.
 *
 * Exit status: 0 once every item was printed, 100 for a bad job (message on stderr), 111 when
 * fetch_start fails.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "fetch.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_time.h"

#define PROBE_NAME "scrape_fetch_probe"
#include "probe.h"

#define POLL_MS 20 /* how often the loop looks at the stop flag and the stop_after_ms deadline */

/* The strings an item borrows, owned here (the cJSON tree is gone before fetch_start). */
struct owned {
    char *url;
    char *etag;
    char *path;
};

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}

/* A whole number in [min, max] (cJSON keeps numbers as doubles: exact below 2^53). */
static int64_t num(const cJSON *v, const char *what, int64_t min, int64_t max)
{
    double d;

    if (!cJSON_IsNumber(v))
        die(100, "%s: not a number", what);
    d = v->valuedouble;
    if (d != (double)(int64_t)d || d < (double)min || d > (double)max)
        die(100, "%s: %g is not a whole number in [%lld, %lld]", what, d, (long long)min,
            (long long)max);
    return (int64_t)d;
}

static char *str(const cJSON *v, const char *what)
{
    if (!cJSON_IsString(v))
        die(100, "%s: not a string", what);
    return md_xstrdup(v->valuestring);
}

static void parse_opts(const cJSON *j, struct fetch_opts *o, char **ua)
{
    const cJSON *v;

    fetch_opts_init(o);
    if (j == NULL)
        return;
    if (!cJSON_IsObject(j))
        die(100, "opts: not an object");
    cJSON_ArrayForEach(v, j)
    {
        const char *k = v->string;

        if (strcmp(k, "concurrency") == 0)
            o->concurrency = (int)num(v, k, 0, 1000);
        else if (strcmp(k, "per_host") == 0)
            o->per_host = (int)num(v, k, 0, 1000);
        else if (strcmp(k, "retries") == 0)
            o->retries = (int)num(v, k, 0, 1000);
        else if (strcmp(k, "backoff_ms") == 0)
            o->backoff_ms = (uint64_t)num(v, k, 0, 86400000);
        else if (strcmp(k, "max_backoff_ms") == 0)
            o->max_backoff_ms = (uint64_t)num(v, k, 0, 86400000);
        else if (strcmp(k, "connect_timeout_ms") == 0)
            o->connect_timeout_ms = (uint64_t)num(v, k, 0, 86400000);
        else if (strcmp(k, "stall_ms") == 0)
            o->stall_ms = (uint64_t)num(v, k, 0, 86400000);
        else if (strcmp(k, "stall_bytes_per_s") == 0)
            o->stall_bytes_per_s = (long)num(v, k, 0, 1L << 30);
        else if (strcmp(k, "max_recv_speed") == 0)
            o->max_recv_speed = num(v, k, 0, INT64_C(1) << 40);
        else if (strcmp(k, "user_agent") == 0)
            o->user_agent = *ua = str(v, k);
        else
            die(100, "opts: unknown key \"%s\"", k);
    }
}

static void parse_item(const cJSON *j, size_t i, struct fetch_item *it, struct owned *own)
{
    const cJSON *v;
    char what[64];

    if (!cJSON_IsObject(j))
        die(100, "items[%zu]: not an object", i);
    cJSON_ArrayForEach(v, j)
    {
        const char *k = v->string;

        snprintf(what, sizeof what, "items[%zu].%s", i, k);
        if (strcmp(k, "url") == 0)
            it->url = own->url = str(v, what);
        else if (strcmp(k, "path") == 0)
            it->path = own->path = str(v, what);
        else if (strcmp(k, "etag") == 0 && !cJSON_IsNull(v))
            it->etag = own->etag = str(v, what);
        else if (strcmp(k, "last_modified") == 0)
            it->last_modified = num(v, what, 0, INT64_C(1) << 40);
        else if (strcmp(k, "etag") != 0)
            die(100, "items[%zu]: unknown key \"%s\"", i, k);
    }
    if (it->url == NULL || it->path == NULL)
        die(100, "items[%zu]: url and path are required", i);
}

static const char *outcome_name(enum fetch_outcome o)
{
    switch (o) {
    case FETCH_PENDING:
        return "PENDING";
    case FETCH_NOT_MODIFIED:
        return "NOT_MODIFIED";
    case FETCH_DOWNLOADED:
        return "DOWNLOADED";
    case FETCH_FAILED:
        return "FAILED";
    case FETCH_STOPPED:
        return "STOPPED";
    }
    return "?";
}

static void print_item(const struct fetch_item *it, size_t i)
{
    cJSON *o = cJSON_CreateObject();
    char *line;

    if (o == NULL)
        die(111, "out of memory");
    cJSON_AddNumberToObject(o, "i", (double)i);
    cJSON_AddStringToObject(o, "outcome", outcome_name(it->outcome));
    cJSON_AddNumberToObject(o, "http_code", (double)it->http_code);
    cJSON_AddStringToObject(o, "etag_new", it->etag_new);
    cJSON_AddNumberToObject(o, "last_modified_new", (double)it->last_modified_new);
    cJSON_AddNumberToObject(o, "bytes", (double)it->bytes);
    cJSON_AddNumberToObject(o, "bytes_received", (double)it->bytes_received);
    cJSON_AddStringToObject(o, "sha256", it->sha256);
    cJSON_AddNumberToObject(o, "attempts", it->attempts);
    cJSON_AddBoolToObject(o, "resumed", it->resumed);
    cJSON_AddNumberToObject(o, "seconds", it->seconds);
    cJSON_AddStringToObject(o, "error", it->error);
    cJSON_AddBoolToObject(o, "permanent", it->permanent);
    if ((line = cJSON_PrintUnformatted(o)) == NULL)
        die(111, "out of memory");
    printf("%s\n", line);
    fflush(stdout);
    cJSON_free(line);
    cJSON_Delete(o);
}

int main(void)
{
    struct sigaction sa;
    struct fetch_opts opts;
    struct fetch_item *items;
    struct owned *own;
    struct fetcher *f;
    const cJSON *arr, *v;
    cJSON *job;
    char *text, *ua = NULL;
    size_t len, n, i = 0;
    int64_t stop_at = -1;
    bool stopped = false;
    int rc;

    md_log_init("scrape_fetch_probe", MD_LOG_INFO);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0)
        die(111, "sigaction: %s", strerror(errno));

    /* Parse, copy into typed structs, delete: the tree never outlives this block. */
    text = read_stdin(&len);
    if ((job = cJSON_ParseWithLength(text, len)) == NULL || !cJSON_IsObject(job))
        die(100, "stdin: not a JSON object");
    md_free(text);
    cJSON_ArrayForEach(v, job)
    {
        if (strcmp(v->string, "opts") != 0 && strcmp(v->string, "items") != 0 &&
            strcmp(v->string, "stop_after_ms") != 0)
            die(100, "unknown key \"%s\"", v->string);
    }
    parse_opts(cJSON_GetObjectItemCaseSensitive(job, "opts"), &opts, &ua);
    arr = cJSON_GetObjectItemCaseSensitive(job, "items");
    if (!cJSON_IsArray(arr))
        die(100, "items: not an array");
    n = (size_t)cJSON_GetArraySize(arr);
    items = md_xcalloc(n ? n : 1, sizeof *items);
    own = md_xcalloc(n ? n : 1, sizeof *own);
    cJSON_ArrayForEach(v, arr)
    {
        parse_item(v, i, &items[i], &own[i]);
        i++;
    }
    if ((v = cJSON_GetObjectItemCaseSensitive(job, "stop_after_ms")) != NULL)
        stop_at = num(v, "stop_after_ms", 0, 86400000);
    cJSON_Delete(job);

    if ((rc = fetch_start(&f, items, n, &opts)) < 0)
        die(111, "fetch_start: %s", strerror(-rc));
    if (stop_at >= 0)
        stop_at += md_time_clock_ms(CLOCK_MONOTONIC);
    while (!fetch_done(f)) {
        struct fetch_item *it;

        if (!stopped &&
            (got_term || (stop_at >= 0 && md_time_clock_ms(CLOCK_MONOTONIC) >= stop_at))) {
            fetch_stop(f);
            stopped = true;
        }
        if ((it = fetch_next(f, POLL_MS)) != NULL)
            print_item(it, (size_t)(it - items));
    }
    fetch_free(f);

    for (i = 0; i < n; i++) {
        md_free(own[i].url);
        md_free(own[i].etag);
        md_free(own[i].path);
    }
    md_free(own);
    md_free(items);
    md_free(ua);
    return 0;
}
