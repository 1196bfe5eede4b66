/* report_digest_probe - builds meshd-report's digest (workers/report/digest.h) of a window of
 * the registry at $DATABASE_URL, writes its Markdown file, and prints the whole of it as JSON,
 * for tests/integration/test_report_digest.py and bench/report_digest.py.
 *
 *   report_digest_probe SINCE_MS UNTIL_MS [--top N] [--node NAME] [--url URL] [--dir DIR]
 *                       [--explain | --plans] [--repeat N]
 *
 * SINCE_MS and UNTIL_MS are Unix milliseconds.  --dir writes digest-YYYY-MM-DD.md there
 * (rpt_digest_write_file).  --explain loads auto_explain (a superuser's session) with
 * enable_seqscan off and collects the plan of every statement the digest runs, as the server's
 * JSON, in "plans": a query that no index can serve still shows its Seq Scan.  --plans does
 * the same with the planner left alone and EXPLAIN ANALYZE's figures (where the time goes; the
 * instrumentation slows it, so time builds without it).  --repeat N
 * builds it N times on one connection and reports each build's milliseconds in "build_ms"
 * (the document printed is the last one's).
 *
 * stdout, one JSON object: subject, text, html, markdown, attention, runs, ok, failed, lost,
 * missed, skipped, jobs, open_critical, open_alerts, build_ms [...], path (or null), plans [...].
 * Exit: 0, 1 when the digest or the file failed (message on stderr), 2 usage, 111 no database.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "digest.h"
#include "meshd/md_alloc.h"
#include "meshd/md_err.h"
#include "meshd/md_pq.h"

static void usage(void)
{
    fputs("usage: report_digest_probe SINCE_MS UNTIL_MS [--top N] [--node NAME] [--url URL] "
          "[--dir DIR] [--explain | --plans] [--repeat N]\n",
          stderr);
    exit(2);
}

static int64_t num(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0')
        usage();
    return (int64_t)v;
}

/* auto_explain's notices: "duration: 0.1 ms  plan:\n{...}" */
static void on_notice(void *ud, const char *msg)
{
    cJSON *plans = ud;
    if (strstr(msg, "plan:") != NULL)
        cJSON_AddItemToArray(plans, cJSON_CreateString(msg));
    else
        fprintf(stderr, "notice: %s", msg);
}

/* The digest as one JSON object on stdout; takes builds and plans. */
static void print_doc(const struct rpt_digest_doc *doc, const char *path, cJSON *builds,
                      cJSON *plans)
{
    cJSON *out = cJSON_CreateObject();

    cJSON_AddStringToObject(out, "subject", doc->subject);
    cJSON_AddStringToObject(out, "text", doc->text);
    cJSON_AddStringToObject(out, "html", doc->html);
    cJSON_AddStringToObject(out, "markdown", doc->markdown);
    cJSON_AddBoolToObject(out, "attention", doc->attention);
    cJSON_AddNumberToObject(out, "runs", (double)doc->runs);
    cJSON_AddNumberToObject(out, "ok", (double)doc->ok);
    cJSON_AddNumberToObject(out, "failed", (double)doc->failed);
    cJSON_AddNumberToObject(out, "lost", (double)doc->lost);
    cJSON_AddNumberToObject(out, "missed", (double)doc->missed);
    cJSON_AddNumberToObject(out, "skipped", (double)doc->skipped);
    cJSON_AddNumberToObject(out, "jobs", (double)doc->jobs);
    cJSON_AddNumberToObject(out, "open_critical", (double)doc->open_critical);
    cJSON_AddNumberToObject(out, "open_alerts", (double)doc->open_alerts);
    cJSON_AddItemToObject(out, "build_ms", builds);
    if (path[0] != '\0')
        cJSON_AddStringToObject(out, "path", path);
    else
        cJSON_AddNullToObject(out, "path");
    cJSON_AddItemToObject(out, "plans", plans);
    char *text = cJSON_PrintUnformatted(out);
    puts(text);
    cJSON_free(text);
    cJSON_Delete(out);
}

int main(int argc, char **argv)
{
    struct rpt_digest_opts o = {0};
    struct rpt_digest_doc doc = {0};
    struct md_error err = {0};
    const char *dir = NULL, *url;
    char path[4096] = "";
    bool explain = false, analyze = false;
    int64_t repeat = 1;
    PGconn *db = NULL;
    char *why = NULL;
    cJSON *plans = NULL, *builds = NULL;
    int rc, status = 1;

    if (argc < 3)
        usage();
    o.since_ms = num(argv[1]);
    o.until_ms = num(argv[2]);
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--explain") == 0)
            explain = true;
        else if (strcmp(argv[i], "--plans") == 0)
            analyze = true;
        else if (i + 1 >= argc)
            usage();
        else if (strcmp(argv[i], "--top") == 0)
            o.top = num(argv[++i]);
        else if (strcmp(argv[i], "--node") == 0)
            o.node = argv[++i];
        else if (strcmp(argv[i], "--url") == 0)
            o.external_url = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0)
            dir = argv[++i];
        else if (strcmp(argv[i], "--repeat") == 0)
            repeat = num(argv[++i]);
        else
            usage();
    }
    url = md_pq_url(NULL, NULL);
    if (url == NULL) {
        fputs("report_digest_probe: set DATABASE_URL\n", stderr);
        return 2;
    }
    if (md_pq_connect(url, "10", &db, &why) < 0) {
        fprintf(stderr, "report_digest_probe: %s\n", why);
        md_free(why);
        return 111;
    }
    plans = cJSON_CreateArray();
    builds = cJSON_CreateArray();
    PQsetNoticeProcessor(db, on_notice, plans);
    if (explain || analyze) {
        static const char *const setup[] = {
            "LOAD 'auto_explain'",
            "SET auto_explain.log_min_duration = 0",
            "SET auto_explain.log_level = 'notice'",
            "SET auto_explain.log_format = 'json'",
            "SET enable_seqscan = off",
            "SET auto_explain.log_analyze = on",
        };
        for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
            if ((i == 4 && !explain) || (i == 5 && !analyze))
                continue;
            PGresult *r = PQexec(db, setup[i]);
            bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
            PQclear(r);
            if (!ok) {
                fprintf(stderr, "report_digest_probe: %s: %s", setup[i], PQerrorMessage(db));
                goto out;
            }
        }
    }
    for (int64_t i = 0; i < repeat; i++) {
        struct timespec a, b;
        rpt_digest_doc_free(&doc);
        clock_gettime(CLOCK_MONOTONIC, &a);
        rc = rpt_digest_build(db, &o, &doc, &err);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc < 0) {
            fprintf(stderr, "report_digest_probe: digest: %s (%s)\n", err.msg, md_strerror(rc));
            goto out;
        }
        cJSON_AddItemToArray(builds, cJSON_CreateNumber((double)(b.tv_sec - a.tv_sec) * 1e3 +
                                                        (double)(b.tv_nsec - a.tv_nsec) / 1e6));
    }
    if (dir != NULL &&
        (rc = rpt_digest_write_file(dir, o.until_ms, doc.markdown, path, sizeof path, &err)) < 0) {
        fprintf(stderr, "report_digest_probe: %s\n", err.msg);
        goto out;
    }
    PQfinish(db);
    db = NULL;
    print_doc(&doc, path, builds, plans); /* takes them */
    builds = plans = NULL;
    status = 0;
out:
    if (db != NULL)
        PQfinish(db);
    cJSON_Delete(builds);
    cJSON_Delete(plans);
    rpt_digest_doc_free(&doc);
    return status;
}
