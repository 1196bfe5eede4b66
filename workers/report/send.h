/* send.h - meshd-report's receivers: one notification (an outbox row's payload) to one
 * receiver, over libcurl, blocking, with the receiver's timeout, cancelled by a stop.
 *
 * The notification ("note") is a JSON object, the outbox's payload column, built by plan.c.
 * Its top level is Alertmanager's webhook payload (version 4), so a generic webhook receiver
 * written for Alertmanager reads it unchanged, plus a "meshd" member:
 *
 *   {"version": "4",
 *    "groupKey": "route1/{job=\"load\"}",         the group (route + grouping labels)
 *    "status": "firing" | "resolved",              firing while any alert in it fires
 *    "receiver": "chat",
 *    "groupLabels": {"job": "load"},               the group_by labels and their values
 *    "commonLabels": {...}, "commonAnnotations": {...},   those every alert shares
 *    "externalURL": "http://pc:8080/" | "",
 *    "truncatedAlerts": 0,                         alerts left out by max_alerts
 *    "alerts": [{"status": "firing" | "resolved",
 *                "labels": {"alertname": key, "key": key, "severity": "critical" | "warning"
 *                           | "info", "job": "load" (absent for node alerts), "node": "pc"},
 *                "annotations": {"message": "..."},
 *                "startsAt": RFC 3339 UTC, "endsAt": RFC 3339 UTC or "0001-01-01T00:00:00Z",
 *                "generatorURL": "" or externalURL + "#job=<job>",
 *                "fingerprint": 16 hex digits (of the key),
 *                "count": times raised while open, "id": agent_alerts.id}],
 *    "meshd": {"kind": "firing"      first notification of the group (or new alerts in it)
 *                     | "repeat"      the same alerts still firing after repeat_interval
 *                     | "resolved"    every alert of the group resolved
 *                     | "escalation"  escalate_to step (level >= 1); one alert per note
 *                     | "digest",
 *              "idempotencyKey": "...",   unique per notification; the Idempotency-Key header,
 *                                         and the e-mail's Message-ID is derived from it
 *              "route": "route1", "level": 0 (escalation step, 0 for the route's own),
 *              "node": the sending meshd node, "createdAt": RFC 3339,
 *              "digest": {"subject": "...", "text": "...", "html": "...", "markdown": "..."}
 *                        only for kind digest (its alerts[] is empty)}}
 *
 * A GitHub receiver always gets one alert per note (its groups are per fingerprint): kind
 * firing opens (or reopens) that fingerprint's issue, repeat comments, resolved comments and
 * closes, escalation opens or comments with the mention.  GitHub never gets digests.
 */
#ifndef MESHD_REPORT_SEND_H
#define MESHD_REPORT_SEND_H

#include <stdint.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "report.h"

enum rpt_outcome {
    RPT_SENT,   /* the receiver took it */
    RPT_RETRY,  /* try again later: connection failed, timed out, 408, 429, 5xx, SMTP 4xx */
    RPT_FAILED, /* it will never take it: other 4xx, SMTP 5xx, a note it cannot render */
};

struct rpt_answer {
    enum rpt_outcome outcome;
    long code;              /* HTTP status or SMTP reply code; 0: no answer */
    int64_t retry_after_ms; /* from Retry-After (429, 503); 0: none given */
    char detail[512];       /* the receiver's words: "HTTP 429 Too Many Requests: <body start>",
                             * "SMTP 550 ...", or libcurl's error; control characters as '?' */
    char ref[256];          /* what the receiver made of it: the html_url, the
                             * Message-ID; "" when nothing */
};

/* What a sender may need beyond the receiver and the note. */
struct rpt_send_ctx {
    PGconn *db;       /* the registry (github: meshd_report.github_issues) */
    const char *node; /* this meshd node (MESHD_NODE, else the host name) */
};

/* Sends note to r and fills *a.  Returns 0 whatever the receiver answered (a->outcome says);
 * -ECANCELED when a stop interrupted it (a->outcome RPT_RETRY); MD_EDB / MD_EDBDOWN (or
 * another md_pq_exec code: MD_ESQL when the table is missing) when the registry failed
 * (github's mapping).  Then a->outcome is RPT_RETRY if GitHub was not changed yet, else what
 * GitHub answered (an issue may have been created); the statements run under a savepoint when
 * ctx->db is inside a transaction, so that transaction stays usable.  Never logs secrets,
 * never echoes the token: any secret of r found in a->detail or a->ref is replaced by "***". */
int rpt_send(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx, const cJSON *note,
             struct rpt_answer *a) MD_MUSTCHECK;

/* Once per process, before the first rpt_send / after the last.  rpt_send_global_init
 * initializes libcurl and ignores SIGPIPE for the process (a write to a closed socket then
 * fails with EPIPE instead of killing the worker); returns 0, -ENOMEM or -errno. */
int rpt_send_global_init(void) MD_MUSTCHECK;
void rpt_send_global_cleanup(void);

#endif
