/* report_send_probe - sends one notification to one receiver with meshd-report's senders
 * (workers/report/send.h) and prints the answer, for tests/integration/test_report_receivers.py.
 *
 * stdin, one JSON object (at most 1 MiB):
 *
 *   {"receiver": {...one receiver, exactly as under receivers: in meshd-report's config...},
 *    "note": {...the notification, send.h's JSON...},
 *    "transaction": true}
 *
 * "transaction" (optional): send inside a transaction on the registry connection, as
 * deliver.c does while it holds the outbox row; the probe then runs SELECT 1 and COMMIT and
 * says whether the transaction was still usable ("tx": "ok", or the error).
 *
 * The receiver is bound through the worker's own key table (rpt_cfg_keys, as the config
 * {"receivers": [receiver]}) and checked by rpt_cfg_check, which reads its *_env secrets from
 * the environment: what the probe sends with is what meshd-report would.  With $DATABASE_URL
 * set it connects (md_worker_connect) and passes the connection as the registry (github's
 * mapping table, which the test has created); without it, ctx.db is NULL.
 *
 * stdout, one JSON line: {"rc": <rpt_send's return>, "outcome": "SENT" | "RETRY" | "FAILED",
 * "code": N, "retry_after_ms": N, "detail": "...", "ref": "...", "seconds": wall time of the
 * send, "tx": ... with "transaction"}.  SIGTERM during the send stops it (md_worker's handler sets
 * the flag the senders' progress callback reads): rc is then -ECANCELED (-125).
 *
 * Exit status: 0 once the line is printed, 100 for a bad job or receiver (message on stderr),
 * 111 when the database or libcurl cannot be set up.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_time.h"
#include "meshd/md_worker.h"
#include "report.h"
#include "send.h"

#define PROBE_NAME "report_send_probe"
#include "probe.h"

static const char *env(const char *name)
{
    return getenv(name);
}

static const char *outcome_name(enum rpt_outcome o)
{
    switch (o) {
    case RPT_SENT:
        return "SENT";
    case RPT_RETRY:
        return "RETRY";
    case RPT_FAILED:
        return "FAILED";
    }
    return "?";
}

int main(int argc, char **argv)
{
    struct md_worker w;
    struct md_error err = {0};
    struct rpt_cfg cfg;
    struct rpt_send_ctx ctx = {.db = NULL, .node = "probe"};
    struct rpt_answer a;
    cJSON *job, *note, *doc, *arr, *out;
    char *text, *cfgtext, *line;
    const char *url;
    size_t len;
    int64_t t0;
    bool in_tx = false;
    int rc;

    /* The worker runtime's stop handlers (SIGTERM sets md_worker_stopping). */
    if (md_worker_init(&w, "report-probe", argc, argv, NULL) < 0)
        die(100, "md_worker_init failed");

    text = read_stdin(&len);
    if ((job = cJSON_ParseWithLength(text, len)) == NULL || !cJSON_IsObject(job))
        die(100, "stdin: not a JSON object");
    md_free(text);
    for (const cJSON *v = job->child; v != NULL; v = v->next)
        if (strcmp(v->string, "receiver") != 0 && strcmp(v->string, "note") != 0 &&
            strcmp(v->string, "transaction") != 0)
            die(100, "unknown key \"%s\" (receiver, note, transaction)", v->string);
    in_tx = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(job, "transaction"));
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(job, "receiver")))
        die(100, "receiver: not an object");
    note = cJSON_DetachItemFromObjectCaseSensitive(job, "note");
    if (!cJSON_IsObject(note))
        die(100, "note: not an object");

    /* {"receivers": [receiver]}: bound and checked as the worker's own config. */
    doc = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(doc, "receivers");
    cJSON_AddItemToArray(arr, cJSON_DetachItemFromObjectCaseSensitive(job, "receiver"));
    cJSON_Delete(job);
    cfgtext = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    memset(&cfg, 0, sizeof cfg);
    if ((rc = md_json_bind(cfgtext, strlen(cfgtext), rpt_cfg_keys, rpt_cfg_nkeys, &cfg, &err)) <
            0 ||
        (rc = rpt_cfg_check(&cfg, env, &err)) < 0)
        die(100, "receiver: %s", err.msg);
    cJSON_free(cfgtext);

    if ((url = getenv("DATABASE_URL")) != NULL && url[0] != '\0' &&
        (rc = md_worker_connect(&w, NULL, &ctx.db, &err)) < 0)
        die(111, "database: %s", err.msg);
    if ((rc = rpt_send_global_init()) < 0)
        die(111, "rpt_send_global_init: %s", strerror(-rc));

    if (in_tx && (ctx.db == NULL || md_pq_exec(ctx.db, "BEGIN", 0, NULL, NULL, &err) < 0))
        die(111, "transaction: no database, or BEGIN failed: %s", err.msg);
    t0 = md_time_clock_ms(CLOCK_MONOTONIC);
    rc = rpt_send(rpt_receiver_at(&cfg, 0), &ctx, note, &a);
    out = cJSON_CreateObject();
    if (in_tx) {
        struct md_error e2 = {0};
        bool ok = md_pq_exec(ctx.db, "SELECT 1", 0, NULL, NULL, &e2) == 0 &&
                  md_pq_exec(ctx.db, "COMMIT", 0, NULL, NULL, &e2) == 0;
        cJSON_AddStringToObject(out, "tx", ok ? "ok" : e2.msg);
    }
    cJSON_AddNumberToObject(out, "rc", rc);
    cJSON_AddStringToObject(out, "outcome", outcome_name(a.outcome));
    cJSON_AddNumberToObject(out, "code", (double)a.code);
    cJSON_AddNumberToObject(out, "retry_after_ms", (double)a.retry_after_ms);
    cJSON_AddStringToObject(out, "detail", a.detail);
    cJSON_AddStringToObject(out, "ref", a.ref);
    cJSON_AddNumberToObject(out, "seconds",
                            (double)(md_time_clock_ms(CLOCK_MONOTONIC) - t0) / 1000.0);
    if ((line = cJSON_PrintUnformatted(out)) == NULL)
        die(111, "out of memory");
    printf("%s\n", line);
    fflush(stdout);

    cJSON_free(line);
    cJSON_Delete(out);
    cJSON_Delete(note);
    rpt_send_global_cleanup();
    md_worker_disconnect(ctx.db);
    rpt_cfg_free(&cfg);
    return 0;
}
