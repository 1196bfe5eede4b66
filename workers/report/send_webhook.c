/* send_webhook.c - a notification as one HTTP POST (send.h, docs/report-receivers.md).
 *
 *   format json   the note itself, compact JSON (Alertmanager's v4 payload plus "meshd")
 *   format slack  {"text", "blocks"} for a Slack incoming webhook (render.c keeps its limits)
 *
 * Headers: Content-Type: application/json, Idempotency-Key: <meshd.idempotencyKey>, and with a
 * secret
 *
 *   X-Meshd-Timestamp: <Unix seconds when signed>
 *   X-Meshd-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 *
 * The timestamp is signed with the body so a receiver can refuse a replay of an old request
 * (Stripe's and Slack's scheme); the Idempotency-Key stays the same across retries, the
 * timestamp and signature do not.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "meshd/md_alloc.h"
#include "meshd/md_time.h"
#include "render.h"
#include "send_internal.h"

int rpt_send_webhook(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx,
                     const cJSON *note, struct rpt_answer *a)
{
    struct rpt_http_req q = {.method = "POST", .url = r->url};
    struct curl_slist *hdrs = NULL;
    char *body = NULL;
    int rc = 0;

    (void)ctx;
    if (r->format != NULL && strcmp(r->format, "slack") == 0) {
        cJSON *m = rpt_render_slack(note, r->subject_prefix);
        body = cJSON_PrintUnformatted(m);
        cJSON_Delete(m);
    } else {
        body = cJSON_PrintUnformatted(note);
    }
    if (body == NULL) {
        rpt_answer_set(a, RPT_RETRY, 0, "out of memory (rendering the body)");
        return 0;
    }
    if (!rpt_header_add(&hdrs, "Content-Type", "application/json")) {
        rpt_answer_set(a, RPT_RETRY, 0, "out of memory (headers)");
        goto out;
    }
    if (!rpt_header_add(&hdrs, "Idempotency-Key", rpt_note_meshd(note, "idempotencyKey"))) {
        rpt_answer_set(a, RPT_FAILED, 0, "meshd.idempotencyKey has control characters");
        goto out;
    }
    if (r->secret != NULL) {
        char ts[24], sig[65], *msg;
        snprintf(ts, sizeof ts, "%" PRId64, md_time_wall_ms() / 1000);
        msg = md_xasprintf("%s.%s", ts, body);
        rpt_hmac_sha256_hex(r->secret, strlen(r->secret), msg, strlen(msg), sig);
        md_free(msg);
        char *val = md_xasprintf("sha256=%s", sig);
        bool ok = rpt_header_add(&hdrs, "X-Meshd-Timestamp", ts) &&
                  rpt_header_add(&hdrs, "X-Meshd-Signature", val);
        md_free(val);
        if (!ok) {
            rpt_answer_set(a, RPT_RETRY, 0, "out of memory (headers)");
            goto out;
        }
    }
    q.headers = hdrs;
    q.body = body;
    q.len = strlen(body);
    q.deadline_ms = rpt_deadline(r->timeout_ms);
    rc = rpt_http(r, &q, NULL, a);
out:
    curl_slist_free_all(hdrs);
    cJSON_free(body);
    return rc;
}
