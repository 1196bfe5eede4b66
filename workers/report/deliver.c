/* deliver.c - meshd-report's outbox delivery (plan.h): one notification at a time, claimed
 * with FOR UPDATE SKIP LOCKED, its row lock held while it is sent, the answer recorded in the
 * same transaction.  So exactly one node sends each notification, and only a crash (or a lost
 * registry connection) between the send and the COMMIT sends one again: the row is still
 * pending.  The receivers that can use it get the same idempotency key both times.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_status.h"
#include "plan.h"
#include "send.h"

/* What may be sent now: due, of a configured receiver that is not held back, and not behind an
 * older pending notification of its group (a group's notifications go out in order: a
 * "resolved" never overtakes its "firing").  CLAIMABLE is that condition on outbox o. */
#define CLAIMABLE                                                                                  \
    " o.status = 'pending' AND o.next_attempt_at <= now() AND o.receiver = ANY ($1::text[])"       \
    " AND NOT EXISTS (SELECT 1 FROM meshd_report.receivers r"                                      \
    "                  WHERE r.name = o.receiver AND r.paused_until > now())"                      \
    " AND NOT EXISTS (SELECT 1 FROM meshd_report.outbox p"                                         \
    "                  WHERE p.status = 'pending' AND p.receiver = o.receiver"                     \
    "                    AND p.group_key = o.group_key AND p.id < o.id)"

/* The next batch of candidates, oldest (planning order) first, without locks: evaluating
 * CLAIMABLE over every pending row once per batch, not once per notification, keeps a backlog
 * of thousands linear. */
static const char candidates_sql[] =
    "SELECT o.id FROM meshd_report.outbox o WHERE" CLAIMABLE " ORDER BY o.id LIMIT 100";

/* One candidate, locked: a row another node is sending is locked, so skipped; and the rows
 * behind it in its group are not claimable, because it still reads pending here. */
static const char claim_sql[] =
    "SELECT o.id, o.receiver, o.payload::text, o.attempts FROM meshd_report.outbox o"
    " WHERE o.id = $2 AND" CLAIMABLE " FOR UPDATE OF o SKIP LOCKED";

static const char sent_sql[] =
    "UPDATE meshd_report.outbox SET status = 'sent', attempts = attempts + 1, sent_at = now(),"
    "       sent_by = $2, code = $3, answer = $4, ref = $5 WHERE id = $1";

static const char failed_sql[] =
    "UPDATE meshd_report.outbox SET status = 'failed', attempts = attempts + 1, sent_by = $2,"
    "       code = $3, answer = $4 WHERE id = $1";

static const char retry_sql[] =
    "UPDATE meshd_report.outbox SET attempts = attempts + 1, code = $2, answer = $3,"
    "       next_attempt_at = now() + $4::bigint * interval '1 millisecond' WHERE id = $1";

static const char receiver_ok_sql[] =
    "INSERT INTO meshd_report.receivers AS r (name, failures, last_ok_at, updated_at)"
    " VALUES ($1, 0, now(), now())"
    " ON CONFLICT (name) DO UPDATE SET failures = 0, paused_until = NULL, last_ok_at = now(),"
    "   updated_at = now()";

static const char receiver_fail_sql[] =
    "INSERT INTO meshd_report.receivers AS r (name, paused_until, failures, last_error, updated_at)"
    " VALUES ($1, now() + $2::bigint * interval '1 millisecond', 1, $3, now())"
    " ON CONFLICT (name) DO UPDATE SET failures = r.failures + 1, last_error = $3,"
    "   paused_until = CASE WHEN $2::bigint > 0"
    "                       THEN now() + $2::bigint * interval '1 millisecond' END,"
    "   updated_at = now()";

static const char give_up_sql[] =
    "UPDATE meshd_report.outbox SET status = 'failed',"
    "       answer = 'gave up after ' || $1 || ' ms unsent: ' || coalesce(answer, 'never tried')"
    " WHERE status = 'pending' AND created_at < now() - $1::bigint * interval '1 millisecond'";

/* Retention: what was sent or failed longer ago than `keep`, a batch at a time. */
static const char prune_sql[] =
    "DELETE FROM meshd_report.outbox WHERE id IN (SELECT id FROM meshd_report.outbox"
    " WHERE status <> 'pending' AND created_at < now() - $1::bigint * interval '1 millisecond'"
    " ORDER BY id LIMIT 10000)";

/* When the next attempt may be: over the head of each group (a row behind an older pending one
 * waits for that one, not for its own time), the later of its time and its receiver's pause. */
static const char next_sql[] =
    "SELECT (extract(epoch FROM min(greatest(o.next_attempt_at,"
    "                                         coalesce(r.paused_until, o.next_attempt_at))))"
    "        * 1000)::bigint"
    "  FROM meshd_report.outbox o LEFT JOIN meshd_report.receivers r ON r.name = o.receiver"
    " WHERE o.status = 'pending' AND o.receiver = ANY ($1::text[])"
    "   AND NOT EXISTS (SELECT 1 FROM meshd_report.outbox p"
    "                    WHERE p.status = 'pending' AND p.receiver = o.receiver"
    "                      AND p.group_key = o.group_key AND p.id < o.id)";

static const struct rpt_receiver *receiver_named(const struct rpt_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->receivers.n; i++)
        if (strcmp(rpt_receiver_at(cfg, (int)i)->name, name) == 0)
            return rpt_receiver_at(cfg, (int)i);
    return NULL;
}

/* The wait before attempt number `attempts` + 1: backoff doubled per attempt up to
 * max_backoff, or the receiver's Retry-After when longer (capped at an hour). */
static int64_t retry_wait(const struct rpt_cfg *cfg, int64_t attempts, int64_t retry_after_ms)
{
    int64_t wait = (int64_t)cfg->backoff_ms;

    for (int64_t i = 0; i < attempts && wait < (int64_t)cfg->max_backoff_ms; i++)
        wait *= 2;
    if (wait > (int64_t)cfg->max_backoff_ms)
        wait = (int64_t)cfg->max_backoff_ms;
    if (retry_after_ms > wait)
        wait = retry_after_ms < 3600000 ? retry_after_ms : 3600000;
    return wait;
}

/* Alerts about the receivers themselves, raised at most once a run each. */
static void receiver_alert(struct md_worker *w, const struct rpt_cfg *cfg,
                           const struct rpt_receiver *r, bool ok, const struct rpt_answer *a,
                           int64_t attempts, struct rpt_deliver_stats *st)
{
    size_t i = (size_t)(r - rpt_receiver_at(cfg, 0));
    uint8_t want = ok ? 1 : 2; /* said[i]: 0 nothing yet, 1 resolved, 2 alerted this run */
    char key[128], msg[700];

    if (i >= sizeof st->said || st->said[i] == want)
        return;
    snprintf(key, sizeof key, "report.receiver.%s", r->name);
    if (ok) {
        st->said[i] = want;
        (void)md_status_resolve(&w->st, key);
        return;
    }
    snprintf(msg, sizeof msg, "%s receiver %s %s: %s", r->type, r->name,
             a->outcome == RPT_FAILED ? "refused a notification" : "is not answering", a->detail);
    /* A receiver that is down a moment is not news: the first retry is quiet. */
    if (a->outcome == RPT_FAILED || attempts >= 2) {
        st->said[i] = want;
        (void)md_status_alert(&w->st, MD_SEV_WARNING, key, msg);
    }
}

static int one(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, const char *node,
               const char *rcv_list, const char *candidate, struct rpt_deliver_stats *st,
               bool *claimed, struct md_error *err)
{
    const struct rpt_send_ctx ctx = {.db = db, .node = node};
    const char *p[5];
    PGresult *r = NULL;
    struct rpt_answer a;
    const struct rpt_receiver *rcv;
    char id[24], code[24], wait[24];
    int64_t attempts;
    cJSON *note;
    int rc;

    *claimed = false;
    if ((rc = md_pq_exec(db, "BEGIN", 0, NULL, NULL, err)) < 0)
        return rc;
    p[0] = rcv_list;
    p[1] = candidate;
    if ((rc = md_pq_exec(db, claim_sql, 2, p, &r, err)) < 0)
        goto rollback;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return md_pq_exec(db, "COMMIT", 0, NULL, NULL, err);
    }
    *claimed = true;
    snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
    rcv = receiver_named(cfg, PQgetvalue(r, 0, 1));
    attempts = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    note = cJSON_Parse(PQgetvalue(r, 0, 2));
    PQclear(r);
    memset(&a, 0, sizeof a);
    if (rcv == NULL || note == NULL) { /* cannot happen: the claim names configured ones */
        cJSON_Delete(note);
        rc = md_error_set(err, MD_EDB, 0, 0, "outbox %s: unreadable", id);
        goto rollback;
    }
    rc = rpt_send(rcv, &ctx, note, &a);
    cJSON_Delete(note);
    if (rc < 0) /* a stop (the notification stays pending), or the registry failed */
        goto rollback;
    snprintf(code, sizeof code, "%ld", a.code);
    p[0] = id;
    p[1] = node;
    p[2] = a.code > 0 ? code : NULL;
    p[3] = a.detail;
    switch (a.outcome) {
    case RPT_SENT:
        p[4] = a.ref[0] != '\0' ? a.ref : NULL;
        if ((rc = md_pq_exec(db, sent_sql, 5, p, NULL, err)) < 0)
            goto rollback;
        p[0] = rcv->name;
        if ((rc = md_pq_exec(db, receiver_ok_sql, 1, p, NULL, err)) < 0)
            goto rollback;
        st->sent++;
        md_log(MD_LOG_INFO, "sent: id=%s receiver=%s attempt=%" PRId64 " %s", id, rcv->name,
               attempts + 1, a.detail);
        break;
    case RPT_RETRY:
        snprintf(wait, sizeof wait, "%" PRId64, retry_wait(cfg, attempts, a.retry_after_ms));
        p[1] = p[2];
        p[2] = p[3];
        p[3] = wait;
        if ((rc = md_pq_exec(db, retry_sql, 4, p, NULL, err)) < 0)
            goto rollback;
        p[0] = rcv->name;
        p[1] = wait;
        p[2] = a.detail;
        if ((rc = md_pq_exec(db, receiver_fail_sql, 3, p, NULL, err)) < 0)
            goto rollback;
        st->retried++;
        md_log(MD_LOG_WARN, "retrying: id=%s receiver=%s attempt=%" PRId64 " wait_ms=%s %s", id,
               rcv->name, attempts + 1, wait, a.detail);
        break;
    case RPT_FAILED:
        if ((rc = md_pq_exec(db, failed_sql, 4, p, NULL, err)) < 0)
            goto rollback;
        p[0] = rcv->name;
        p[1] = "0";
        p[2] = a.detail;
        if ((rc = md_pq_exec(db, receiver_fail_sql, 3, p, NULL, err)) < 0)
            goto rollback;
        st->failed++;
        md_log(MD_LOG_ERROR, "refused: id=%s receiver=%s %s", id, rcv->name, a.detail);
        break;
    }
    if ((rc = md_pq_exec(db, "COMMIT", 0, NULL, NULL, err)) < 0)
        return rc; /* sent but not recorded: it goes out once more (docs/report.md) */
    receiver_alert(w, cfg, rcv, a.outcome == RPT_SENT, &a, attempts + 1, st);
    return 0;
rollback : {
    struct md_error ignore = {0};
    /* A failure here leaves the session aborted or gone: the caller's next statement
     * says so.  The claim's row lock goes with the transaction either way. */
    if (md_pq_exec(db, "ROLLBACK", 0, NULL, NULL, &ignore) < 0)
        md_log(MD_LOG_DEBUG, "rollback: %s", ignore.msg);
}
    return rc;
}

int rpt_deliver(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, const char *node,
                struct rpt_deliver_stats *st, struct md_error *err)
{
    char *list = rpt_receiver_names(cfg), give_up[24], keep[24];
    const char *p[1];
    PGresult *r;
    bool claimed = true; /* a batch claimed something: look again */
    int rc;

    snprintf(give_up, sizeof give_up, "%" PRIu64, cfg->give_up_after_ms);
    p[0] = give_up;
    if ((rc = md_pq_exec(db, give_up_sql, 1, p, &r, err)) < 0)
        goto out;
    st->expired += strtoull(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    snprintf(keep, sizeof keep, "%" PRIu64, cfg->keep_ms);
    p[0] = keep;
    if ((rc = md_pq_exec(db, prune_sql, 1, p, NULL, err)) < 0)
        goto out;
    /* Batches of candidates until a batch yields nothing: the rest is not due, held back, or
     * being sent by another node. */
    while (claimed) {
        PGresult *cand;
        claimed = false;
        p[0] = list;
        if ((rc = md_pq_exec(db, candidates_sql, 1, p, &cand, err)) < 0)
            goto out;
        for (int i = 0; i < PQntuples(cand) && rc == 0; i++) {
            bool got = false;
            if (md_worker_stopping())
                rc = -ECANCELED;
            else {
                (void)md_worker_tick(w);
                rc = one(w, db, cfg, node, list, PQgetvalue(cand, i, 0), st, &got, err);
            }
            claimed |= got;
        }
        PQclear(cand);
        if (rc < 0)
            goto out;
    }
    p[0] = list;
    if ((rc = md_pq_exec(db, next_sql, 1, p, &r, err)) < 0)
        goto out;
    st->next_ms = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
out:
    md_free(list);
    return rc;
}
