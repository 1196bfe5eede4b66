/* report.c - meshd-report's run (report.h): set up its tables, then plan and deliver until
 * nothing falls due within `linger`, woken early by every alert change (LISTEN
 * agent_messages: meshd publishes an `alert` message on each); or build and send the digest.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "digest.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_time.h"
#include "plan.h"
#include "send.h"

extern const unsigned char report_schema_sql[];

struct totals {
    size_t rounds, planned;
    struct rpt_deliver_stats d;
    int64_t next_ms;
};

static char *summary_json(const struct totals *t)
{
    cJSON *o = cJSON_CreateObject();
    char *s;

    cJSON_AddNumberToObject(o, "rounds", (double)t->rounds);
    cJSON_AddNumberToObject(o, "planned", (double)t->planned);
    cJSON_AddNumberToObject(o, "sent", (double)t->d.sent);
    cJSON_AddNumberToObject(o, "retried", (double)t->d.retried);
    cJSON_AddNumberToObject(o, "refused", (double)t->d.failed);
    cJSON_AddNumberToObject(o, "gave_up", (double)t->d.expired);
    md_time_json(o, "next_at", t->next_ms);
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s == NULL)
        abort(); /* out of memory */
    {
        char *copy = md_xstrdup(s);
        cJSON_free(s);
        return copy;
    }
}

/* Waits up to ms for an `alert` notification on agent_messages (true), or the time (false).
 * A stop ends the wait early (md_worker_stopping tells).  MD_EDBDOWN when the connection is
 * gone. */
static int wait_alert(PGconn *db, int64_t ms, bool *woken, struct md_error *err)
{
    int64_t until = md_time_clock_ms(CLOCK_MONOTONIC) + ms;

    *woken = false;
    while (!*woken && !md_worker_stopping()) {
        int64_t left = until - md_time_clock_ms(CLOCK_MONOTONIC);
        struct pollfd pfd = {.fd = PQsocket(db), .events = POLLIN};
        PGnotify *n;

        if (left <= 0)
            break;
        if (pfd.fd < 0)
            return md_error_set(err, MD_EDBDOWN, 0, 0, "the registry connection is gone");
        if (poll(&pfd, 1, left > 60000 ? 60000 : (int)left) < 0 && errno != EINTR)
            return md_error_set(err, -errno, 0, 0, "poll: %s", strerror(errno));
        if (PQconsumeInput(db) == 0)
            return md_error_set(err, MD_EDBDOWN, 0, 0, "the registry went away: %s",
                                PQerrorMessage(db));
        while ((n = PQnotifies(db)) != NULL) {
            *woken |= strcmp(n->extra, "alert") == 0;
            PQfreemem(n);
        }
    }
    return 0;
}

static int notify_run(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, const char *node,
                      struct totals *t, struct md_error *err)
{
    int rc;

    if ((rc = md_pq_exec(db, "LISTEN agent_messages", 0, NULL, NULL, err)) < 0)
        return rc;
    for (;;) {
        int64_t now_ms, next;
        size_t planned;
        bool woken;

        if (md_worker_stopping())
            return -ECANCELED;
        if ((rc = rpt_plan_once(db, cfg, node, &planned, &next, &now_ms, err)) < 0)
            return rc;
        t->rounds++;
        t->planned += planned;
        t->d.next_ms = 0;
        if ((rc = rpt_deliver(w, db, cfg, node, &t->d, err)) < 0)
            return rc;
        if (t->d.next_ms > 0 && (next == 0 || t->d.next_ms < next))
            next = t->d.next_ms;
        /* Due already but not taken: another node is sending it.  Look again in a second
         * rather than spin. */
        if (next != 0 && next <= now_ms)
            next = now_ms + 1000;
        t->next_ms = next;
        if (next == 0 || next - now_ms > (int64_t)cfg->linger_ms)
            return 0; /* the next run (an alert's, or the cron's) takes it from here */
        md_log(MD_LOG_DEBUG, "lingering: due_in_ms=%" PRId64, next - now_ms);
        if ((rc = wait_alert(db, next - now_ms + 50, &woken, err)) < 0)
            return rc;
    }
}

static int digest_run(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, const char *node,
                      struct totals *t, char **summary, struct md_error *err)
{
    struct rpt_digest_opts o = {0};
    struct rpt_digest_doc doc = {0};
    const char *dir = cfg->digest.dir;
    char path[4096] = "", dirbuf[4096];
    int64_t now = md_time_wall_ms();
    int rc;

    o.until_ms = w->scheduled_at_ms > 0 ? w->scheduled_at_ms : now;
    o.since_ms = o.until_ms - (int64_t)cfg->digest.window_ms;
    o.top = cfg->digest.top;
    o.node = node;
    o.external_url = cfg->external_url;
    if ((rc = rpt_digest_build(db, &o, &doc, err)) < 0)
        return rc;
    if (dir == NULL && getenv("MESHD_STATE_DIR") != NULL) {
        snprintf(dirbuf, sizeof dirbuf, "%s/digest", getenv("MESHD_STATE_DIR"));
        dir = dirbuf;
    }
    if (dir != NULL &&
        (rc = rpt_digest_write_file(dir, o.until_ms, doc.markdown, path, sizeof path, err)) < 0)
        goto out;
    if ((rc = rpt_digest_enqueue(db, cfg, node, &o, &doc, err)) < 0)
        goto out;
    rc = rpt_deliver(w, db, cfg, node, &t->d, err);
out:
    if (rc == 0) {
        cJSON *s = cJSON_CreateObject();
        char *text;
        cJSON_AddStringToObject(s, "subject", doc.subject);
        if (path[0] != '\0')
            cJSON_AddStringToObject(s, "file", path);
        cJSON_AddNumberToObject(s, "sent", (double)t->d.sent);
        cJSON_AddNumberToObject(s, "retried", (double)t->d.retried);
        cJSON_AddNumberToObject(s, "refused", (double)t->d.failed);
        text = cJSON_PrintUnformatted(s);
        cJSON_Delete(s);
        *summary = md_xstrdup(text != NULL ? text : "{}");
        cJSON_free(text);
    }
    rpt_digest_doc_free(&doc);
    return rc;
}

int rpt_run(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, char **summary,
            struct md_error *err)
{
    struct totals t = {0};
    char host[256] = "";
    const char *node = w->node;
    int rc;

    *summary = NULL;
    if (node == NULL || node[0] == '\0') {
        if (gethostname(host, sizeof host - 1) != 0)
            snprintf(host, sizeof host, "localhost");
        node = host;
    }
    if ((rc = md_worker_apply_sql(db, (const char *)report_schema_sql, REPORT_KEYSPACE, err)) < 0)
        return rc;
    if ((rc = rpt_send_global_init()) < 0)
        return md_error_set(err, rc, 0, 0, "libcurl could not be initialized");
    if (strcmp(cfg->mode, "digest") == 0) {
        rc = digest_run(w, db, cfg, node, &t, summary, err);
    } else {
        rc = notify_run(w, db, cfg, node, &t, err);
        *summary = summary_json(&t);
    }
    rpt_send_global_cleanup();
    if (rc == 0 && t.d.failed + t.d.expired > 0)
        rc = md_error_set(err, REPORT_EREFUSED, 0, 0,
                          "%zu notification(s) refused by their receiver, %zu given up "
                          "(meshd_report.outbox has their answers)",
                          t.d.failed, t.d.expired);
    return rc;
}
