/* cluster.c - cluster.h: slot claims and singleton-service leases, on the claims' own
 * connection to the registry's database (docs/cluster.md).
 *
 * Claims: before a scheduled slot runs, its node inserts the run's row (meshd_claim); the
 * unique (job, scheduled_for) lets exactly one node win.  The claims of one scheduler wake-up
 * go out as one statement, with one timeout (claim_timeout); while the connection is down (or
 * the schema not migrated) they wait, up to that timeout, then are OFFLINE.  Leases: a session
 * advisory lock per singleton job on the same connection, so they go with the session.
 *
 * The registry (registry_internal.h) tells this file when its schema is ready and when it
 * closes; the scheduler hears back through struct sup_cluster_hooks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_db.h"
#include "meshd/md_log.h"
#include "meshd/md_time.h"
#include "registry_internal.h"
#include "sup.h"

/* Bound of each array of a claim statement (run ids, jobs, instants of one wake-up). */
#define CLAIM_ARRAY_MAX (64u << 20)

struct claim;
struct claim_batch;

struct sup_cluster {
    struct sup *sup;
    struct md_db *db;            /* the claims' connection; NULL once closing */
    struct claim *batch;         /* claims of this wake-up, not sent yet */
    struct claim_batch *waiting; /* flushed, waiting for the claims connection (FIFO) */
    bool up;                     /* the claims' session is up (leases may be held on it) */
    bool down;                   /* not up since down_ms (start, or the connection lost) */
    uint64_t down_ms;            /* uv_now then: past claim_timeout, claims are OFFLINE at once */
    bool closed;
    struct sup_cluster_hooks hooks;
    struct sup_reg_watch watch;
};

/* ---- claims ------------------------------------------------------------------------------ */

/* One slot's claim.  Claims made during one wake-up of the scheduler wait in cl->batch and go
 * out together in one statement (sup_cluster_claims_flush): a burst of due jobs costs one round
 * trip and one timer, not one per job. */
struct claim {
    struct claim *next;
    char *job, *run_id, *when;
    int64_t slot;
    sup_claim_cb *cb;
    bool answered; /* the database answered (or the batch failed) */
};

/* The claims of one statement, in the order of its arrays (the answer rows come back in that
 * order; meshd_claim itself inserts them in the global lock order), and their common timeout.
 * A batch is parked in cl->waiting while the claims connection is not up (or the schema not
 * migrated), in flight once sent, and closed (timer closing, then freed) when it is over. */
struct claim_batch {
    uv_timer_t timer; /* claim_timeout, from the flush */
    struct sup *sup;
    struct claim_batch *next; /* cl->waiting */
    struct claim **v;
    size_t n;
    char *ids, *jobs, *whens; /* the statement's arrays */
    char at[40], seq[24];     /* the claim's order key: the node's clock and last journal id */
    char sqlstate[6];         /* of the attempt in flight, if it failed with an SQL error */
    unsigned sends;
    bool sent; /* in flight */
    bool closing;
    bool timed_out; /* reported OFFLINE already: a later answer is "late" */
};

const char sup_reg_claim_sql[] =
    "SELECT run_id, won, holder FROM meshd_claim($1::text[], $2::text[], $3::timestamptz[], $4, "
    "$5, $6::timestamptz, $7::bigint)";

static void claims_free(struct claim *c)
{
    while (c != NULL) {
        struct claim *next = c->next;
        md_free(c->job);
        md_free(c->run_id);
        md_free(c->when);
        md_free(c);
        c = next;
    }
}

static void claim_answer(struct sup *sup, struct claim *c, enum sup_claim_outcome out,
                         const char *holder, bool timed_out)
{
    if (c->answered)
        return;
    c->answered = true;
    if (!timed_out || out != SUP_CLAIM_OFFLINE)
        c->cb(sup, c->job, c->slot, out, holder, timed_out);
}

static void batch_freed(uv_handle_t *h)
{
    struct claim_batch *b = h->data;

    for (size_t i = 0; i < b->n; i++) {
        b->v[i]->next = NULL;
        claims_free(b->v[i]);
    }
    md_free(b->v);
    md_free(b->ids);
    md_free(b->jobs);
    md_free(b->whens);
    md_free(b);
}

/* Every claim not answered yet is OFFLINE; then the batch is closed (freed later). */
static void batch_end(struct claim_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        claim_answer(b->sup, b->v[i], SUP_CLAIM_OFFLINE, NULL, b->timed_out);
    if (b->closing)
        return;
    b->closing = true;
    uv_timer_stop(&b->timer);
    uv_close((uv_handle_t *)&b->timer, batch_freed);
}

static void waiting_remove(struct sup_cluster *cl, struct claim_batch *b)
{
    for (struct claim_batch **pp = &cl->waiting; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            b->next = NULL;
            return;
        }
    }
}

static bool claims_ready(const struct sup_cluster *cl)
{
    enum md_db_state st;

    if (cl->db == NULL || cl->closed || !sup_registry_ready(cl->sup))
        return false;
    st = md_db_state(cl->db);
    return st == MD_DB_IDLE || st == MD_DB_BUSY;
}

static void claims_cb(void *ud, int status, PGresult *res);

/* Sends the batch if claims can be made now; else parks it until they can, unless the claims
 * connection has been down for longer than claim_timeout already (a real outage: the answer is
 * OFFLINE at once, no slot waits for a database that is away). */
static void batch_send(struct sup_cluster *cl, struct claim_batch *b)
{
    const struct md_config *cfg = cl->sup->cfg;
    const char *params[7];

    if (claims_ready(cl)) {
        params[0] = b->ids;
        params[1] = b->jobs;
        params[2] = b->whens;
        params[3] = cfg->node_name;
        params[4] = cl->sup->life;
        params[5] = b->at;
        params[6] = b->seq;
        b->sqlstate[0] = '\0';
        if (md_db_send(cl->db, sup_reg_claim_sql, 7, params, claims_cb, b) == 0) {
            b->sent = true;
            b->sends++;
            return;
        }
    }
    if (cl->closed || (cl->down && uv_now(cl->sup->loop) - cl->down_ms >= cfg->claim_timeout_ms)) {
        batch_end(b);
        return;
    }
    b->next = NULL;
    struct claim_batch **pp = &cl->waiting;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = b; /* FIFO: slots are claimed in the order they came due */
}

/* Claims can be made again (the connection is up and the schema migrated): send what waited,
 * then let the scheduler claim the slots it could not claim while they could not be made. */
static void claims_resume(struct sup_cluster *cl)
{
    struct claim_batch *w = cl->waiting;

    cl->waiting = NULL;
    while (w != NULL) {
        struct claim_batch *next = w->next;
        w->next = NULL;
        batch_send(cl, w);
        w = next;
    }
    cl->hooks.claims_back(cl->sup);
}

static void batch_timeout_cb(uv_timer_t *t)
{
    struct claim_batch *b = MD_CONTAINER_OF(t, struct claim_batch, timer);
    struct sup_cluster *cl = b->sup->cluster;
    const struct md_config *cfg = b->sup->cfg;

    b->timed_out = true;
    md_log(MD_LOG_WARN,
           "cluster: no answer to %zu claim(s) within %" PRIu64 " ms (%s); "
           "when_offline=%s",
           b->n, cfg->claim_timeout_ms, b->sent ? "the registry is slow" : "no claims connection",
           cfg->cluster_offline_skip ? "skip" : "run");
    for (size_t i = 0; i < b->n; i++)
        if (!b->v[i]->answered)
            b->v[i]->cb(b->sup, b->v[i]->job, b->v[i]->slot, SUP_CLAIM_OFFLINE, NULL, false);
    if (!b->sent) {
        waiting_remove(cl, b); /* never sent: nothing will come back */
        batch_end(b);
    }
}

/* The batch in flight: row i answers claim i; the final call decides what the rest is. */
static void claims_cb(void *ud, int status, PGresult *res)
{
    struct claim_batch *b = ud;
    struct sup_cluster *cl = b->sup->cluster;

    if (res != NULL) {
        if (status < 0) {
            snprintf(b->sqlstate, sizeof b->sqlstate, "%s", sup_reg_field(res, PG_DIAG_SQLSTATE));
            md_log(sup_reg_retryable(b->sqlstate) ? MD_LOG_NOTICE : MD_LOG_ERROR,
                   "cluster: claims failed: sqlstate=%s error=%s", b->sqlstate,
                   sup_reg_field(res, PG_DIAG_MESSAGE_PRIMARY));
            return;
        }
        for (int i = 0; i < PQntuples(res) && (size_t)i < b->n; i++) {
            bool won = strcmp(PQgetvalue(res, i, 1), "t") == 0;
            claim_answer(b->sup, b->v[i], won ? SUP_CLAIM_WON : SUP_CLAIM_LOST,
                         won ? NULL : PQgetvalue(res, i, 2), b->timed_out);
        }
        return;
    }
    b->sent = false;
    if (status == 0) {
        batch_end(b);
        cl->hooks.claims_back(b->sup); /* the registry answers: claim what could not be claimed */
        return;
    }
    if (!cl->closed && !b->timed_out) {
        if (b->sqlstate[0] == '\0') {
            /* The connection was lost with the claims in flight: they may have been committed
             * or not.  Send them again once it is back (meshd_claim answers "won" for this
             * life's own unstarted claim), within claim_timeout. */
            batch_send(cl, b);
            return;
        }
        if (sup_reg_retryable(b->sqlstate) && b->sends < SUP_REG_RETRY_MAX) {
            batch_send(cl, b);
            return;
        }
    }
    batch_end(b); /* any other SQL error: the claims are OFFLINE (logged above) */
}

/* A PostgreSQL array literal of quoted elements (run ids, job names and ISO times hold no
 * quote or backslash, but escape them anyway). */
static void array_put(struct md_buf *b, const char *s, bool first)
{
    md_buf_put(b, first ? "{\"" : ",\"", 2);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            md_buf_put(b, "\\", 1);
        md_buf_put(b, s, 1);
    }
    md_buf_put(b, "\"", 1);
}

void sup_cluster_claims_flush(struct sup *sup)
{
    struct sup_cluster *cl = sup->cluster;
    struct md_buf ids, jobs, whens;
    struct claim_batch *b;
    struct claim *c;
    size_t n = 0;

    if (cl == NULL || cl->batch == NULL)
        return;
    b = md_xcalloc(1, sizeof *b);
    b->sup = sup;
    for (c = cl->batch; c != NULL; c = c->next)
        n++;
    /* Three arrays of n quoted elements, each at most twice its text (escapes): the bound can
     * only be reached by a claim of a name or id no config can hold. */
    md_buf_init(&ids, CLAIM_ARRAY_MAX);
    md_buf_init(&jobs, CLAIM_ARRAY_MAX);
    md_buf_init(&whens, CLAIM_ARRAY_MAX);
    b->v = md_xcalloc(n, sizeof *b->v);
    for (c = cl->batch; c != NULL; c = c->next) {
        array_put(&ids, c->run_id, b->n == 0);
        array_put(&jobs, c->job, b->n == 0);
        array_put(&whens, c->when, b->n == 0);
        b->v[b->n++] = c;
    }
    cl->batch = NULL;
    md_buf_put(&ids, "}", 1);
    md_buf_put(&jobs, "}", 1);
    md_buf_put(&whens, "}", 1);
    b->ids = md_buf_take(&ids);
    b->jobs = md_buf_take(&jobs);
    b->whens = md_buf_take(&whens);
    /* Every event journalled so far is ordered before this claim: a runs_reconciled of an
     * earlier life, applied late, leaves the claim alone (sql/0004, meshd_reconcile_run). */
    md_time_fmt_ms(md_time_wall_ms(), b->at, sizeof b->at);
    snprintf(b->seq, sizeof b->seq, "%" PRIu64, sup_registry_last_id(sup));
    uv_timer_init(sup->loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, batch_timeout_cb, sup->cfg->claim_timeout_ms, 0);
    batch_send(cl, b);
}

static void claims_abort(struct sup_cluster *cl)
{
    /* Claims not sent yet: offline.  Those in flight end in md_db_close's final callbacks. */
    struct claim *c = cl->batch;

    cl->batch = NULL;
    for (struct claim *p = c; p != NULL; p = p->next)
        claim_answer(cl->sup, p, SUP_CLAIM_OFFLINE, NULL, false);
    claims_free(c);
    while (cl->waiting != NULL) {
        struct claim_batch *b = cl->waiting;
        cl->waiting = b->next;
        b->next = NULL;
        batch_end(b);
    }
}

/* ---- singleton service leases -------------------------------------------------------------- */

struct lease_req {
    struct sup *sup;
    char *job;
    sup_lease_cb *cb;
    enum sup_lease_answer answer;
};

static void lease_cb(void *ud, int status, PGresult *res)
{
    struct lease_req *q = ud;

    if (res != NULL) {
        if (status == 0 && PQntuples(res) == 1)
            q->answer = strcmp(PQgetvalue(res, 0, 0), "t") == 0 ? SUP_LEASE_GOT : SUP_LEASE_HELD;
        else if (status < 0)
            md_log(MD_LOG_WARN, "cluster: lease of job=%s not taken: %s", q->job,
                   sup_reg_field(res, PG_DIAG_MESSAGE_PRIMARY));
        return;
    }
    /* A lease won on a session that is gone already is no lease. */
    if (q->answer == SUP_LEASE_GOT && (q->sup->cluster == NULL || q->sup->cluster->db == NULL ||
                                       (md_db_state(q->sup->cluster->db) != MD_DB_IDLE &&
                                        md_db_state(q->sup->cluster->db) != MD_DB_BUSY)))
        q->answer = SUP_LEASE_OFFLINE;
    q->cb(q->sup, q->job, q->answer);
    md_free(q->job);
    md_free(q);
}

static const char lease_key[] = "hashtextextended('meshd.service:' || $1, 0)";

void sup_cluster_lease(struct sup *sup, const char *job, sup_lease_cb *cb)
{
    char sql[160];
    const char *params[1] = {job};
    struct lease_req *q;
    enum md_db_state st;

    if (!sup_cluster_on(sup) ||
        ((st = md_db_state(sup->cluster->db)) != MD_DB_IDLE && st != MD_DB_BUSY)) {
        cb(sup, job, SUP_LEASE_OFFLINE);
        return;
    }
    q = md_xcalloc(1, sizeof *q);
    q->sup = sup;
    q->job = md_xstrdup(job);
    q->cb = cb;
    q->answer = SUP_LEASE_OFFLINE; /* unless a row says otherwise */
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%s)", lease_key);
    if (md_db_send(sup->cluster->db, sql, 1, params, lease_cb, q) < 0) {
        md_free(q->job);
        md_free(q);
        cb(sup, job, SUP_LEASE_OFFLINE);
    }
}

static void unlock_cb(void *ud, int status, PGresult *res)
{
    (void)ud;
    (void)status;
    (void)res;
}

void sup_cluster_lease_release(struct sup *sup, const char *job)
{
    char sql[160];
    const char *params[1] = {job};

    if (!sup_cluster_on(sup))
        return;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%s)", lease_key);
    if (md_db_send(sup->cluster->db, sql, 1, params, unlock_cb, NULL) < 0)
        md_log(MD_LOG_WARN, "cluster: lease of job=%s not released (it goes with the session)",
               job);
}

bool sup_cluster_on(const struct sup *sup)
{
    return sup->cfg->cluster && sup->cluster != NULL && sup->cluster->db != NULL;
}

void sup_cluster_claim(struct sup *sup, const char *job, int64_t slot, const char *run_id,
                       sup_claim_cb *cb)
{
    struct sup_cluster *cl = sup->cluster;
    struct claim *c;
    char when[80];

    /* Whether the claims connection is up is decided at the flush: a claim waits for it
     * (within claim_timeout) rather than being OFFLINE at once, at start-up and after a
     * reconnect. */
    if (!sup_cluster_on(sup) || cl->closed) {
        cb(sup, job, slot, SUP_CLAIM_OFFLINE, NULL, false);
        return;
    }
    c = md_xcalloc(1, sizeof *c);
    c->job = md_xstrdup(job);
    c->run_id = md_xstrdup(run_id);
    md_time_fmt_ms(slot * 1000, when, sizeof when);
    c->when = md_xstrdup(when);
    c->slot = slot;
    c->cb = cb;
    c->next = cl->batch; /* the statement's arrays follow this list; rows come back in its
                          * order (meshd_claim sorts the inserts itself) */
    cl->batch = c;
}

/* ---- the connection ------------------------------------------------------------------------ */

/* The claims' session ended (or came up): the leases held on it are gone. */
static void db_state_cb(struct md_db *db, enum md_db_state st, void *ud)
{
    struct sup_cluster *cl = ud;

    (void)db;
    if (cl->closed)
        return;
    if (st == MD_DB_IDLE) {
        if (cl->up)
            return;
        cl->up = true;
        cl->down = false;
        cl->hooks.leases_changed(cl->sup, true);
        if (sup_registry_ready(cl->sup))
            claims_resume(cl);
    } else if (st != MD_DB_BUSY && cl->up) {
        cl->up = false;
        cl->down = true;
        cl->down_ms = uv_now(cl->sup->loop);
        cl->hooks.leases_changed(cl->sup, false);
    }
}

static void registry_ready(void *ud)
{
    struct sup_cluster *cl = ud;

    if (cl->up)
        claims_resume(cl); /* claims waited for the schema */
}

static void db_closed(void *ud)
{
    struct sup_cluster *cl = ud;

    sup_registry_release(cl->sup); /* after the claims' final callbacks: they use the cluster */
}

static void registry_closing(void *ud)
{
    struct sup_cluster *cl = ud;
    struct md_db *db = cl->db;

    cl->closed = true;
    claims_abort(cl);
    cl->db = NULL;
    sup_registry_hold(cl->sup);
    md_db_close(db, db_closed, cl);
}

static void registry_closed(void *ud)
{
    struct sup_cluster *cl = ud;

    cl->sup->cluster = NULL;
    md_free(cl);
}

void sup_cluster_start(struct sup *sup, const struct sup_cluster_hooks *hooks)
{
    struct md_db_config dc;
    struct sup_cluster *cl;

    if (!sup->cfg->cluster || sup_registry_db(sup) == NULL)
        return;
    cl = md_xcalloc(1, sizeof *cl);
    cl->sup = sup;
    cl->hooks = *hooks;
    sup_registry_db_config(sup, &dc);
    dc.state_cb = db_state_cb;
    dc.ud = cl;
    /* Service leases are session advisory locks on this connection: if this node dies or
     * sleeps, the server must notice soon and drop the session (and its locks), so other
     * nodes can take over.  Keepalives from the server side, as the client cannot send them
     * while it sleeps (they do not apply to a unix socket, where death is seen at once). */
    dc.on_connect = "SET application_name = 'meshd-claims'; SET tcp_keepalives_idle = 10; "
                    "SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";
    cl->down = true; /* until the first connect: claims wait up to claim_timeout */
    cl->down_ms = uv_now(sup->loop);
    if (md_db_open(sup->loop, &dc, &cl->db) < 0) {
        md_free(cl);
        return;
    }
    md_log(MD_LOG_NOTICE, "cluster: claiming scheduled slots in the registry (when_offline=%s)",
           sup->cfg->cluster_offline_skip ? "skip" : "run");
    cl->watch.ready = registry_ready;
    cl->watch.closing = registry_closing;
    cl->watch.closed = registry_closed;
    cl->watch.ud = cl;
    sup_registry_watch(sup, &cl->watch);
    sup->cluster = cl;
}
