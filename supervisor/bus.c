/* bus.c - bus.h: the message bus end to end (docs/cluster.md).  `on: TYPE` jobs take pending
 * agent_messages rows of their type one at a time (FOR UPDATE SKIP LOCKED, so several nodes
 * share the work), the most urgent first (priority, then FIFO), skipping messages addressed to
 * another node or job (to_node, to_job; sql/0005), woken by NOTIFY agent_messages, and each
 * message's outcome is written back (done, failed, or pending again when meshd stopped its run)
 * until the database confirms it.
 *
 * The bus uses its own connection when the config had on: jobs at start (fetches never wait
 * behind a batch of events), else the registry's; the registry (registry_internal.h) tells it
 * of its connection, its schema, its heartbeat tick and its end.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "bus_internal.h"
#include "job.h"
#include "meshd/md_alloc.h"
#include "meshd/md_db.h"
#include "meshd/md_log.h"
#include "registry_internal.h"
#include "sup.h"

/* A message's completion, kept until the database confirmed it. */
struct msg_done {
    struct msg_done *next;
    int64_t id;
    char status[16];
    char *error;
    bool inflight;
};

struct sup_bus {
    struct sup *sup;
    struct md_db *db; /* its own connection, or NULL: it uses the registry's */
    bool listening;   /* LISTEN agent_messages sent on the current session */
    bool requeued;    /* this node's abandoned messages were given back (once) */
    bool closed;
    struct msg_done *dones; /* message completions not yet confirmed */
    struct sup_reg_watch watch;
};

/* fetch answers with id 0 when there is none (or no database). */
typedef void sup_msg_cb(struct sup *sup, const char *job, int64_t id, int priority,
                        const char *payload);

/* ---- the database side -------------------------------------------------------------------- */

static void ignore_cb(void *ud, int status, PGresult *res)
{
    (void)ud;
    if (res != NULL && status < 0)
        md_log(MD_LOG_WARN, "bus: %s", sup_reg_esc(PQresultErrorMessage(res)));
}

static void notify_cb(void *ud, const char *channel, const char *payload)
{
    struct sup_bus *b = ud;

    if (strcmp(channel, "agent_messages") == 0 && !b->closed)
        sup_bus_wake(b->sup, payload);
}

/* The connection the bus uses: its own when the config had on: jobs at start, so fetches never
 * wait behind a batch of events; else the registry's. */
static struct md_db *bus_conn(const struct sup_bus *b)
{
    return b->db != NULL ? b->db : sup_registry_db(b->sup);
}

static void msg_dones_send(struct sup_bus *b);

static void bus_listen(struct sup_bus *b)
{
    struct sup *sup = b->sup;
    bool any = false;

    for (size_t i = 0; i < sup->cfg->njobs; i++)
        any |= sup->cfg->jobs[i].kind == MD_JOB_EVENT;
    if (!any || b->listening || bus_conn(b) == NULL)
        return;
    if (md_db_state(bus_conn(b)) != MD_DB_IDLE && md_db_state(bus_conn(b)) != MD_DB_BUSY)
        return; /* its state callback calls again once connected */
    b->listening = md_db_send(bus_conn(b), "LISTEN agent_messages", 0, NULL, ignore_cb, b) == 0;
    if (!b->requeued) {
        /* Messages this node had taken when it stopped or crashed go back to the queue. */
        char prefix[200];
        const char *params[1] = {prefix};
        snprintf(prefix, sizeof prefix, "%s/%%", sup->cfg->node_name);
        b->requeued = md_db_send(bus_conn(b),
                                 "UPDATE agent_messages SET status = 'pending', "
                                 "claimed_by = NULL, claimed_at = NULL WHERE status = "
                                 "'processing' AND claimed_by LIKE $1",
                                 1, params, ignore_cb, b) == 0;
    }
    msg_dones_send(b);
    sup_bus_wake(sup, NULL); /* what arrived while nobody listened */
}

static void db_state_cb(struct md_db *db, enum md_db_state st, void *ud)
{
    struct sup_bus *b = ud;

    (void)db;
    if (st != MD_DB_IDLE && st != MD_DB_BUSY)
        b->listening = false;
    if (st == MD_DB_IDLE && !b->closed && sup_registry_ready(b->sup) && !b->listening)
        bus_listen(b);
}

bool sup_bus_up(const struct sup *sup)
{
    const struct sup_bus *b = sup->bus;

    return b != NULL && bus_conn(b) != NULL && sup_registry_ready(sup) &&
           (md_db_state(bus_conn(b)) == MD_DB_IDLE || md_db_state(bus_conn(b)) == MD_DB_BUSY);
}

struct msg_fetch {
    struct sup *sup;
    char *job;
    sup_msg_cb *cb;
    int64_t id;
    int priority;
    char *payload;
};

static void fetch_cb(void *ud, int status, PGresult *res)
{
    struct msg_fetch *f = ud;

    if (res != NULL) {
        if (status == 0 && PQntuples(res) == 1) {
            f->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            f->payload = md_xstrdup(PQgetvalue(res, 0, 1));
            f->priority = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10);
        } else if (status < 0) {
            md_log(MD_LOG_WARN, "bus: fetch for job=%s failed: %s", f->job,
                   sup_reg_field(res, PG_DIAG_MESSAGE_PRIMARY));
        }
        return;
    }
    f->cb(f->sup, f->job, f->id, f->priority, f->payload);
    md_free(f->payload);
    md_free(f->job);
    md_free(f);
}

/* Claims the most urgent pending message of `type` that job may take: addressed to nobody, or
 * to this node ($3) and/or this job ($4).  The subquery walks agent_messages_pending
 * (type, priority, created_at, id) in order and stops at the first row it can lock; messages
 * for other consumers are filtered, never locked.  A message addressed to a node or job that
 * never asks stays pending (meshctl health reports one whose target the registry does not
 * know): nothing here can tell a target that is down for an hour from one that will never be. */
const char sup_bus_claim_sql[] =
    "UPDATE agent_messages m SET status = 'processing', claimed_by = $2, claimed_at = now(), "
    "attempts = m.attempts + 1 WHERE m.id = (SELECT id FROM agent_messages WHERE status = "
    "'pending' AND type = $1 AND (to_node IS NULL OR to_node = $3) AND (to_job IS NULL OR "
    "to_job = $4) ORDER BY priority, created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
    "RETURNING m.id, m.payload::text, m.priority";

static void msg_fetch(struct sup *sup, const char *job, const char *type, sup_msg_cb *cb)
{
    char who[200];
    const char *params[4] = {type, who, sup->cfg->node_name, job};
    struct msg_fetch *f;

    if (!sup_bus_up(sup)) {
        cb(sup, job, 0, 0, NULL);
        return;
    }
    snprintf(who, sizeof who, "%s/%s", sup->cfg->node_name, job);
    f = md_xcalloc(1, sizeof *f);
    f->sup = sup;
    f->job = md_xstrdup(job);
    f->cb = cb;
    if (md_db_send(bus_conn(sup->bus), sup_bus_claim_sql, 4, params, fetch_cb, f) < 0) {
        md_free(f->job);
        md_free(f);
        cb(sup, job, 0, 0, NULL);
    }
}

static void done_cb(void *ud, int status, PGresult *res)
{
    struct msg_done *d = ud;

    if (res != NULL)
        return;
    d->inflight = false;
    if (status == 0)
        d->id = 0; /* confirmed: the next msg_dones_send drops it; else it is sent again */
}

static void msg_dones_send(struct sup_bus *b)
{
    static const char sql[] =
        "UPDATE agent_messages SET status = $2, error = $3, processed_at = CASE WHEN $2 = "
        "'pending' THEN NULL ELSE now() END, claimed_by = CASE WHEN $2 = 'pending' THEN NULL "
        "ELSE claimed_by END WHERE id = $1 AND status = 'processing'";
    struct msg_done **pp = &b->dones;

    while (*pp != NULL) {
        struct msg_done *d = *pp;
        char id[32];
        const char *params[3] = {id, d->status, d->error};
        if (d->id == 0 && !d->inflight) { /* confirmed */
            *pp = d->next;
            md_free(d->error);
            md_free(d);
            continue;
        }
        pp = &d->next;
        if (d->inflight || !sup_bus_up(b->sup))
            continue;
        snprintf(id, sizeof id, "%" PRId64, d->id);
        if (md_db_send(bus_conn(b), sql, 3, params, done_cb, d) == 0)
            d->inflight = true;
    }
}

/* The message's run is over: status "done" or "failed" (with error), or "pending" to give it
 * back.  Kept and sent again until the database confirms. */
static void msg_done(struct sup *sup, int64_t id, const char *status, const char *error)
{
    struct sup_bus *b = sup->bus;
    struct msg_done *d;

    if (b == NULL || id <= 0)
        return;
    d = md_xcalloc(1, sizeof *d);
    d->id = id;
    snprintf(d->status, sizeof d->status, "%s", status);
    d->error = error ? md_xstrdup(error) : NULL;
    d->next = b->dones;
    b->dones = d;
    msg_dones_send(b);
}

/* ---- dispatch: `on:` jobs ------------------------------------------------------------------ */

static void msg_fetched(struct sup *sup, const char *name, int64_t id, int priority,
                        const char *payload)
{
    struct sup_job *job = sup_job_find(sup, name);

    if (job != NULL)
        job->msg_fetching = false;
    if (id == 0)
        return;
    if (job == NULL || job->cfg->kind != MD_JOB_EVENT || !job->cfg->enabled || job->paused ||
        sup->stopping || job->msg_id != 0 || sup_job_busy(job)) {
        msg_done(sup, id, "pending", NULL); /* not now: back to the queue */
        return;
    }
    job->msg_id = id;
    job->msg_payload = md_xstrdup(payload ? payload : "{}");
    md_log(MD_LOG_NOTICE, "message: job=%s id=%" PRId64 " type=%s priority=%d", job->name, id,
           job->cfg->event, priority);
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
}

void sup_bus_wake(struct sup *sup, const char *type)
{
    if (sup->stopping)
        return;
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        const struct md_job *j = job->cfg;
        if (j == NULL || job->retired || j->kind != MD_JOB_EVENT || !j->enabled || job->paused ||
            job->msg_id != 0 || job->msg_fetching || sup_job_busy(job))
            continue;
        if (type != NULL && strcmp(type, j->event) != 0)
            continue;
        job->msg_fetching = true;
        msg_fetch(sup, job->name, j->event, msg_fetched);
    }
}

/* The message's last run is over (no retry pending): tell the bus, then take the next one. */
void sup_bus_msg_finished(struct sup_job *job)
{
    struct sup *sup = job->sup;
    char err[64] = "";
    const char *status = job->msg_outcome == RUN_SUCCEEDED ? "done"
                         : job->msg_outcome == RUN_STOPPED ? "pending" /* meshd stopped it */
                                                           : "failed";

    if (job->msg_outcome != RUN_SUCCEEDED && job->msg_outcome != RUN_STOPPED) {
        if (job->prog.last_signal != 0)
            snprintf(err, sizeof err, "%s: signal %d", sup_run_status_name(job->msg_outcome),
                     job->prog.last_signal);
        else
            snprintf(err, sizeof err, "%s: exit code %d", sup_run_status_name(job->msg_outcome),
                     job->prog.last_exit_code);
    }
    md_log(MD_LOG_NOTICE, "message %s: job=%s id=%" PRId64 "%s%s", status, job->name, job->msg_id,
           err[0] ? " error=" : "", err);
    msg_done(sup, job->msg_id, status, err[0] ? err : NULL);
    job->msg_id = 0;
    md_free(job->msg_payload);
    job->msg_payload = NULL;
    if (!sup->stopping && job->cfg != NULL && job->cfg->event != NULL)
        sup_bus_wake(sup, job->cfg->event);
}

/* ---- the registry's news -------------------------------------------------------------------- */

static void registry_session(void *ud, enum md_db_state st)
{
    struct sup_bus *b = ud;

    if (b->db == NULL && st != MD_DB_IDLE && st != MD_DB_BUSY)
        b->listening = false; /* a new session will need its LISTEN */
    if (st == MD_DB_IDLE && sup_registry_ready(b->sup) && !b->listening)
        bus_listen(b);
}

static void registry_ready(void *ud)
{
    bus_listen(ud);
}

static void registry_tick(void *ud)
{
    struct sup_bus *b = ud;

    msg_dones_send(b); /* completions that could not be sent yet */
    if (b->listening)
        sup_bus_wake(b->sup, NULL); /* a missed NOTIFY is found at the next tick */
}

static void db_closed(void *ud)
{
    struct sup_bus *b = ud;

    sup_registry_release(b->sup); /* after the bus's final callbacks */
}

static void registry_closing(void *ud)
{
    struct sup_bus *b = ud;

    b->closed = true;
    if (b->db != NULL) {
        struct md_db *db = b->db;
        b->db = NULL;
        sup_registry_hold(b->sup);
        md_db_close(db, db_closed, b);
    }
}

static void registry_closed(void *ud)
{
    struct sup_bus *b = ud;

    while (b->dones != NULL) {
        struct msg_done *d = b->dones;
        b->dones = d->next;
        if (d->id != 0)
            md_log(MD_LOG_WARN,
                   "bus: message id=%" PRId64 " left '%s' unrecorded; the next "
                   "start gives it back to the queue",
                   d->id, d->status);
        md_free(d->error);
        md_free(d);
    }
    b->sup->bus = NULL;
    md_free(b);
}

void sup_bus_start(struct sup *sup)
{
    const struct md_config *cfg = sup->cfg;
    struct sup_bus *b;

    if (sup->reg == NULL)
        return;
    b = md_xcalloc(1, sizeof *b);
    b->sup = sup;
    for (size_t i = 0; i < cfg->njobs && sup_registry_db(sup) != NULL && b->db == NULL; i++) {
        struct md_db_config dc;
        if (cfg->jobs[i].kind != MD_JOB_EVENT)
            continue;
        sup_registry_db_config(sup, &dc);
        dc.state_cb = db_state_cb;
        dc.notify_cb = notify_cb;
        dc.ud = b;
        dc.on_connect = "SET application_name = 'meshd-bus'";
        if (md_db_open(sup->loop, &dc, &b->db) < 0)
            b->db = NULL;
    }
    b->watch.session = registry_session;
    b->watch.ready = registry_ready;
    b->watch.notify = notify_cb;
    b->watch.tick = registry_tick;
    b->watch.closing = registry_closing;
    b->watch.closed = registry_closed;
    b->watch.ud = b;
    sup_registry_watch(sup, &b->watch);
    sup->bus = b;
}
