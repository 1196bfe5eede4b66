/* registry.c - journal every registry event, ship batches to PostgreSQL (see registry.h).
 *
 * Flow: an event is built with cJSON, appended to the journal (which assigns its id), and a
 * short coalescing timer is armed.  When it fires and nothing is in flight, the pending events
 * after the ack watermark (at most BATCH_MAX, BATCH_BYTES) are sent as one JSON array in one
 * statement; on success the batch is acked, on failure it stays pending and is sent again
 * after RETRY_MS or the next reconnect.  At most one batch is in flight, so acks come in order.
 *
 * The event's id ("<node>/<journal id>") is not stored in the journal record (the journal
 * assigns the id while appending); it is put in front of each record when a batch is built.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_db.h"
#include "meshd/md_journal.h"
#include "meshd/md_log.h"
#include "meshd/md_migrate.h"
#include "meshd/md_time.h"
#include "registry.h"
#include "runlog.h"
#include "registry_internal.h"
#include "sup.h"

#define COALESCE_MS 20          /* events of one burst go out together */
#define RETRY_MS 2000           /* after a failed batch or migration */
#define SYNC_MS 1000            /* journal fdatasync at most this often */
#define STOP_GRACE_MS 1000      /* at shutdown, time to ship what is pending */
#define PRUNE_EVERY_MS 300000   /* retention pass */
#define BATCH_MAX 2000          /* events per round trip (a backlog drains in big ones) */
#define BATCH_BYTES (4u << 20)

struct claim;
struct claim_batch;

/* A bus message's completion, kept until the database confirmed it. */
struct msg_done {
    struct msg_done *next;
    int64_t id;
    char status[16];
    char *error;
    bool inflight;
};

struct sup_registry {
    struct sup *sup;
    struct md_journal *journal;
    struct md_db *db;
    struct md_db *claim_db;  /* cluster claims, on their own connection; NULL without them */
    struct md_db *bus_db;    /* the message bus (on: jobs at start), or NULL: it uses db */
    struct claim *batch;     /* claims of this wake-up, not sent yet */
    struct claim_batch *waiting; /* flushed, waiting for the claims connection (FIFO) */
    bool claims_up;          /* the claims' session is up (leases may be held on it) */
    bool claims_down;        /* not up since claims_down_ms (start, or the connection lost) */
    uint64_t claims_down_ms; /* uv_now then: past claim_timeout, claims are OFFLINE at once */
    bool listening;          /* LISTEN agent_messages sent on the current session */
    bool requeued;           /* this node's abandoned messages were given back (once) */
    struct msg_done *dones;  /* message completions not yet confirmed */
    uv_timer_t flush;  /* coalescing window, retry delay */
    uv_timer_t sync;   /* journal fdatasync */
    uv_timer_t tick;   /* heartbeat, retention; also the stop deadline */
    char *id_prefix;   /* {"id":"<node, JSON-escaped>/ */
    const struct md_migration *migs;
    size_t nmigs, mig_next;
    int mig_outcome;
    bool migrated, migrating, inflight, stopping, closed;
    bool overflowed;   /* the journal hit its bound: raise the alert at the next chance */
    bool overflow_alerted;
    unsigned batch_retries;  /* the batch in flight: sent again after 40P01/40001 so often */
    char batch_sqlstate[6];  /* the batch in flight failed with this SQLSTATE */
    uint64_t inflight_last;
    size_t inflight_n;
    uint64_t n_events, n_batches_ok, n_batches_failed, n_acked;
    int64_t last_drop_ms;
    uint64_t last_prune_ms;
    int pending_closes;
    void (*done)(struct sup *);
};

static cJSON *event_new(struct sup *sup, const char *type)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL)
        abort(); /* cJSON allocates with malloc: out of memory */
    cJSON_AddStringToObject(o, "type", type);
    md_time_json(o, "at", md_time_wall_ms());
    cJSON_AddStringToObject(o, "node", sup->cfg->node_name);
    cJSON_AddStringToObject(o, "env", sup->cfg->node_env);
    cJSON_AddStringToObject(o, "life", sup->life);
    return o;
}

/* A run event speaks for its execution: "exec", and "life" replaced by the execution's own
 * (the part of the exec id before its last '-'), which is not this meshd's when it reports the
 * end of a run it adopted from a previous life. */
static void exec_identity(cJSON *o, const char *exec_id)
{
    const char *dash = strrchr(exec_id, '-');
    char life[SUP_EXEC_ID_MAX];
    cJSON *v;

    cJSON_AddStringToObject(o, "exec", exec_id);
    if (dash == NULL)
        return;
    snprintf(life, sizeof life, "%.*s", (int)(dash - exec_id), exec_id);
    if ((v = cJSON_CreateString(life)) == NULL)
        abort(); /* out of memory */
    cJSON_ReplaceItemInObject(o, "life", v);
}

/* SQLSTATEs that mean "try again" (not "the registry is away"): deadlock detected and
 * serialization failure.  meshd_claim and meshd_apply_events take their rows in one global
 * order, so neither should happen; if one does, the statement is sent again at once, at most
 * RETRY_SQL_MAX times in a row. */
#define RETRY_SQL_MAX 5

static bool sqlstate_retryable(const char *s)
{
    return strcmp(s, "40P01") == 0 || strcmp(s, "40001") == 0;
}

static void flush_cb(uv_timer_t *t);
static void sync_cb(uv_timer_t *t);
static void kick(struct sup_registry *r, uint64_t delay_ms);
static void send_batch(struct sup_registry *r);

/* Appends the event (takes ownership of o) and arms the flush. */
static void emit(struct sup *sup, cJSON *o, enum md_jprio prio)
{
    struct sup_registry *r = sup->reg;
    char *json;
    uint64_t id;
    int rc;

    if (r == NULL || r->closed) {
        cJSON_Delete(o);
        return;
    }
    json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (json == NULL)
        abort();
    rc = md_journal_append(r->journal, prio, json, strlen(json), &id);
    if (rc < 0)
        md_log_err(MD_LOG_WARN, rc, "registry event not journalled: bytes=%zu", strlen(json));
    else
        r->n_events++;
    cJSON_free(json);
    if (!uv_is_active((uv_handle_t *)&r->sync)) {
        /* fdatasync blocks for a few ms.  Cron slots fall on whole wall-clock seconds, so sync
         * in the middle of a second, at least SYNC_MS from now, well clear of the next burst of
         * spawns. */
        int64_t now = md_time_wall_ms();
        uv_timer_start(&r->sync, sync_cb, SYNC_MS + (uint64_t)((1500 - now % 1000) % 1000), 0);
    }
    kick(r, r->overflowed ? 0 : COALESCE_MS);
}

/* ---- batches ----------------------------------------------------------------------------- */

struct batch {
    char *buf;
    size_t len, cap;
    size_t n;
    uint64_t last;
    const char *prefix;
};

static void batch_put(struct batch *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 8192;
        b->buf = md_xrealloc(b->buf, b->cap);
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static int batch_visit(void *ud, uint64_t id, enum md_jprio prio, const char *json, size_t len)
{
    struct batch *b = ud;
    char idbuf[32];

    (void)prio;
    if (len < 2 || json[0] != '{')
        return 0; /* not ours: skip (never written by this file) */
    batch_put(b, b->n ? "," : "[", 1);
    batch_put(b, b->prefix, strlen(b->prefix));
    snprintf(idbuf, sizeof idbuf, "%" PRIu64 "\"", id);
    batch_put(b, idbuf, strlen(idbuf));
    if (len > 2)
        batch_put(b, ",", 1);
    batch_put(b, json + 1, len - 1);
    b->n++;
    b->last = id;
    return b->len >= BATCH_BYTES;
}

/* Text from the server for a log line, escaped (md_log_escape): an error message may quote
 * the data that caused it - a worker's output, a payload.  Returned in one of four static
 * buffers, so a log call may hold up to four; valid until the fifth call. */
static const char *esc(const char *v)
{
    static char ring[4][512];
    static unsigned next;
    char *b = ring[next++ % 4];

    if (v == NULL)
        return "-";
    md_log_escape(b, sizeof ring[0], v, strlen(v));
    return b;
}

static const char *field(const PGresult *res, int code)
{
    return esc(PQresultErrorField(res, code));
}

static void batch_cb(void *ud, int status, PGresult *res)
{
    struct sup_registry *r = ud;
    int rc;

    if (res != NULL) {
        if (status < 0) {
            snprintf(r->batch_sqlstate, sizeof r->batch_sqlstate, "%s",
                     field(res, PG_DIAG_SQLSTATE));
            md_log(MD_LOG_WARN, "registry write failed: sqlstate=%s error=%s",
                   r->batch_sqlstate, field(res, PG_DIAG_MESSAGE_PRIMARY));
        }
        return;
    }
    r->inflight = false;
    if (status < 0) {
        r->n_batches_failed++;
        if (r->closed)
            return;
        /* A deadlock or serialization failure is not an outage: send the batch again at once
         * (a few times; meshd_apply_events takes its rows in a global order, so it should
         * never deadlock).  Anything else waits RETRY_MS or the reconnect. */
        if (sqlstate_retryable(r->batch_sqlstate) && r->batch_retries < RETRY_SQL_MAX) {
            r->batch_retries++;
            r->batch_sqlstate[0] = '\0';
            send_batch(r);
            if (r->inflight)
                return;
        }
        r->batch_retries = 0;
        r->batch_sqlstate[0] = '\0';
        kick(r, RETRY_MS);
        return;
    }
    r->batch_retries = 0;
    r->batch_sqlstate[0] = '\0';
    r->n_batches_ok++;
    r->n_acked += r->inflight_n;
    rc = md_journal_ack(r->journal, r->inflight_last);
    if (rc < 0)
        md_log_err(MD_LOG_WARN, rc, "journal ack: id=%" PRIu64, r->inflight_last);
    /* Everything is in the database: the sync scheduled for these events has nothing to do,
     * so it need not wake the loop (an idle node's heartbeat costs two wake-ups). */
    if (!md_journal_sync_due(r->journal))
        uv_timer_stop(&r->sync);
    /* A backlog goes out back to back: the next batch is sent from here, not from a timer
     * that a busy loop would serve late. */
    if (md_journal_count(r->journal) > 0 && !r->closed)
        send_batch(r);
}

static void send_batch(struct sup_registry *r)
{
    struct batch b = {.prefix = r->id_prefix};
    const char *params[1];
    enum md_db_state st;
    int rc;

    if (r->db == NULL || r->inflight || !r->migrated)
        return;
    st = md_db_state(r->db);
    if (st != MD_DB_IDLE && st != MD_DB_BUSY)
        return; /* the reconnect will kick us */
    md_journal_pending(r->journal, md_journal_acked(r->journal), batch_visit, &b, BATCH_MAX);
    if (b.n == 0) {
        md_free(b.buf);
        return;
    }
    batch_put(&b, "]", 1);
    params[0] = b.buf;
    rc = md_db_send(r->db, "SELECT meshd_apply_events($1::jsonb)", 1, params, batch_cb, r);
    md_free(b.buf);
    if (rc < 0) {
        md_log_err(MD_LOG_WARN, rc, "registry batch not queued: events=%zu", b.n);
        kick(r, RETRY_MS);
        return;
    }
    r->inflight = true;
    r->inflight_last = b.last;
    r->inflight_n = b.n;
}

static void raise_overflow_alert(struct sup_registry *r)
{
    struct sup *sup = r->sup;
    cJSON *o;
    char msg[200];

    r->overflowed = false;
    if (r->overflow_alerted)
        return; /* one alert per meshd run: it stays open until someone resolves it */
    r->overflow_alerted = true;
    snprintf(msg, sizeof msg, "meshd's local journal hit its bound (%" PRIu64
             " bytes) while the database was away; low-value events were dropped",
             sup->cfg->journal_max_bytes);
    o = event_new(sup, "alert");
    cJSON_AddStringToObject(o, "key", "meshd.journal_full");
    cJSON_AddStringToObject(o, "severity", "critical");
    cJSON_AddStringToObject(o, "message", msg);
    emit(sup, o, MD_JPRIO_RUN); /* never dropped itself */
}

static void flush_cb(uv_timer_t *t)
{
    struct sup_registry *r = MD_CONTAINER_OF(t, struct sup_registry, flush);

    if (r->overflowed)
        raise_overflow_alert(r);
    send_batch(r);
}

static void kick(struct sup_registry *r, uint64_t delay_ms)
{
    if (r->db == NULL || r->closed)
        return;
    /* A pending earlier flush stands; a retry delay never postpones a sooner flush. */
    if (uv_is_active((uv_handle_t *)&r->flush) &&
        uv_timer_get_due_in(&r->flush) <= delay_ms)
        return;
    uv_timer_start(&r->flush, flush_cb, delay_ms, 0);
}

/* ---- migrations, connection ------------------------------------------------------------- */

static void migrate_next(struct sup_registry *r);
static void claims_resume(struct sup_registry *r);
static void bus_listen(struct sup_registry *r);
static void bus_notify_cb(void *ud, const char *channel, const char *payload);
static void msg_dones_send(struct sup_registry *r);

static void migrate_cb(void *ud, int status, PGresult *res)
{
    struct sup_registry *r = ud;
    const struct md_migration *m = &r->migs[r->mig_next];

    if (res != NULL) {
        int o = md_migration_outcome(res);
        if (o >= 0)
            r->mig_outcome = o;
        else if (status < 0)
            md_log(MD_LOG_ERROR, "migration failed: version=%d name=%s error=%s", m->version,
                   m->name, esc(PQresultErrorMessage(res)));
        return;
    }
    if (status < 0) {
        r->migrating = false;
        kick(r, RETRY_MS); /* flush_cb retries the migrations first */
        return;
    }
    if (r->mig_outcome == MD_MIGRATION_APPLIED)
        md_log(MD_LOG_NOTICE, "migrated: version=%d name=%s", m->version, m->name);
    else if (r->mig_outcome == MD_MIGRATION_CHANGED)
        md_log(MD_LOG_WARN, "migration edited after release: version=%d name=%s", m->version,
               m->name);
    r->mig_next++;
    migrate_next(r);
}

static void migrate_next(struct sup_registry *r)
{
    char *sql;
    int rc;

    if (r->mig_next == r->nmigs) {
        r->migrating = false;
        r->migrated = true;
        md_log(MD_LOG_NOTICE, "registry ready: target=%s pending=%zu", md_db_target(r->db),
               md_journal_count(r->journal));
        kick(r, 0);
        bus_listen(r);
        if (r->claims_up)
            claims_resume(r); /* claims waited for the schema */
        return;
    }
    r->migrating = true;
    r->mig_outcome = -1;
    sql = md_migration_script(&r->migs[r->mig_next]);
    rc = md_db_send(r->db, sql, 0, NULL, migrate_cb, r);
    md_free(sql);
    if (rc < 0) {
        r->migrating = false;
        kick(r, RETRY_MS);
    }
}

static void db_state_cb(struct md_db *db, enum md_db_state st, void *ud)
{
    struct sup_registry *r = ud;

    (void)db;
    if (r->bus_db == NULL && st != MD_DB_IDLE && st != MD_DB_BUSY)
        r->listening = false; /* a new session will need its LISTEN */
    if (st != MD_DB_IDLE || r->closed)
        return;
    if (r->migrated && !r->listening)
        bus_listen(r);
    if (!r->migrated && !r->migrating) {
        r->mig_next = 0;
        migrate_next(r);
    } else if (r->migrated) {
        kick(r, 0);
    }
}

/* ---- timers ------------------------------------------------------------------------------ */

static void sync_cb(uv_timer_t *t)
{
    struct sup_registry *r = MD_CONTAINER_OF(t, struct sup_registry, sync);
    int rc = md_journal_sync(r->journal);

    if (rc < 0)
        md_log_err(MD_LOG_WARN, rc, "journal sync");
}

static void overflow_cb(void *ud, size_t dropped, uint64_t bytes)
{
    struct sup *sup = ud;

    /* The journal must not be called back from here: the alert is raised by flush_cb. */
    if (sup->reg != NULL) {
        sup->reg->overflowed = true;
        sup->reg->last_drop_ms = md_time_wall_ms();
    }
    md_log(MD_LOG_ERROR, "journal full: dropped=%zu bytes=%" PRIu64 " bound=%" PRIu64
           "; the database has been away too long", dropped, bytes,
           sup->cfg->journal_max_bytes);
}

static void prune_cb(void *ud, int status, PGresult *res)
{
    (void)ud;
    if (res != NULL && status < 0)
        md_log(MD_LOG_WARN, "retention prune failed: %s", esc(PQresultErrorMessage(res)));
}

static void tick_cb(uv_timer_t *t)
{
    struct sup_registry *r = MD_CONTAINER_OF(t, struct sup_registry, tick);
    struct sup *sup = r->sup;
    uint64_t now = uv_now(sup->loop);

    emit(sup, event_new(sup, "heartbeat"), MD_JPRIO_HEARTBEAT);
    kick(r, 0); /* a lone event: nothing to coalesce with, no extra wake-up for it */
    msg_dones_send(r);                 /* completions that could not be sent yet */
    if (r->listening)
        sup_bus_wake(sup, NULL);       /* a missed NOTIFY is found at the next tick */
    if (r->migrated && now - r->last_prune_ms >= PRUNE_EVERY_MS) {
        char interval[48];
        const char *params[1] = {interval};
        r->last_prune_ms = now;
        snprintf(interval, sizeof interval, "%" PRIu64 " seconds",
                 sup->cfg->retention_ms / 1000);
        if (md_db_send(r->db, "SELECT meshd_prune($1::interval, 1000)", 1, params, prune_cb,
                       r) < 0)
            md_log(MD_LOG_WARN, "retention prune not queued");
    }
}

/* ---- start / stop ------------------------------------------------------------------------ */

static void claim_db_state_cb(struct md_db *db, enum md_db_state st, void *ud);
static void bus_db_state_cb(struct md_db *db, enum md_db_state st, void *ud);

int sup_registry_start(struct sup *sup)
{
    const struct md_config *cfg = sup->cfg;
    const char *url = cfg->registry_url_set ? cfg->registry_url : getenv("DATABASE_URL");
    struct md_journal_opts jo = {0};
    struct md_db_config dc = {0};
    struct sup_registry *r;
    char *dir, *node;
    cJSON *s;
    int rc;

    if (url == NULL || *url == '\0') {
        md_log(MD_LOG_NOTICE, "registry off: no registry.url and no DATABASE_URL");
        return 0;
    }
    r = md_xcalloc(1, sizeof *r);
    r->sup = sup;
    jo.max_bytes = cfg->journal_max_bytes;
    jo.overflow_cb = overflow_cb;
    jo.ud = sup;
    dir = md_xasprintf("%s/journal", cfg->state_dir);
    rc = md_journal_open(dir, &jo, &r->journal);
    if (rc < 0) {
        md_log_err(MD_LOG_ERROR, rc, "registry off: journal not opened: dir=%s", dir);
        md_free(dir);
        md_free(r);
        return rc;
    }
    md_free(dir);
    s = cJSON_CreateString(cfg->node_name);
    node = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    /* node is "\"name\"": keep the escaped name without its closing quote. */
    node[strlen(node) - 1] = '\0';
    r->id_prefix = md_xasprintf("{\"id\":%s/", node);
    cJSON_free(node);
    r->nmigs = md_migrations(&r->migs);

    uv_timer_init(sup->loop, &r->flush);
    uv_timer_init(sup->loop, &r->sync);
    uv_timer_init(sup->loop, &r->tick);
    r->pending_closes = 3;
    sup->reg = r;

    dc.conninfo = url;
    dc.on_connect = "SET application_name = 'meshd'";
    dc.state_cb = db_state_cb;
    dc.notify_cb = bus_notify_cb;
    dc.ud = r;
    rc = md_db_open(sup->loop, &dc, &r->db);
    if (rc < 0) {
        md_log_err(MD_LOG_ERROR, rc, "registry: %s; events are journalled until it is fixed",
                   rc == MD_ECONFIG ? "bad database URL (not shown)" : "no database client");
        r->db = NULL;
    } else {
        md_log(MD_LOG_NOTICE, "registry: target=%s journal_pending=%zu", md_db_target(r->db),
               md_journal_count(r->journal));
    }
    if (cfg->cluster && r->db != NULL) {
        dc.state_cb = claim_db_state_cb;
        /* Service leases are session advisory locks on this connection: if this node dies or
         * sleeps, the server must notice soon and drop the session (and its locks), so other
         * nodes can take over.  Keepalives from the server side, as the client cannot send
         * them while it sleeps (they do not apply to a unix socket, where death is seen at
         * once). */
        dc.on_connect = "SET application_name = 'meshd-claims'; SET tcp_keepalives_idle = 10; "
                        "SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3";
        r->claims_down = true; /* until the first connect: claims wait up to claim_timeout */
        r->claims_down_ms = uv_now(sup->loop);
        if (md_db_open(sup->loop, &dc, &r->claim_db) < 0)
            r->claim_db = NULL;
        else
            md_log(MD_LOG_NOTICE, "cluster: claiming scheduled slots in the registry "
                   "(when_offline=%s)", cfg->cluster_offline_skip ? "skip" : "run");
    }
    for (size_t i = 0; i < cfg->njobs && r->db != NULL && r->bus_db == NULL; i++) {
        if (cfg->jobs[i].kind != MD_JOB_EVENT)
            continue;
        dc.state_cb = bus_db_state_cb;
        dc.notify_cb = bus_notify_cb;
        dc.on_connect = "SET application_name = 'meshd-bus'";
        if (md_db_open(sup->loop, &dc, &r->bus_db) < 0)
            r->bus_db = NULL;
    }
    uv_timer_start(&r->tick, tick_cb, cfg->heartbeat_ms, cfg->heartbeat_ms);
    return 0;
}

static void reg_release(struct sup_registry *r)
{
    if (--r->pending_closes > 0)
        return;
    struct sup *sup = r->sup;
    void (*done)(struct sup *) = r->done;
    while (r->dones != NULL) {
        struct msg_done *d = r->dones;
        r->dones = d->next;
        if (d->id != 0)
            md_log(MD_LOG_WARN, "bus: message id=%" PRId64 " left '%s' unrecorded; the next "
                   "start gives it back to the queue", d->id, d->status);
        md_free(d->error);
        md_free(d);
    }
    md_journal_close(r->journal);
    md_free(r->id_prefix);
    md_free(r);
    sup->reg = NULL;
    done(sup);
}

static void reg_handle_closed(uv_handle_t *h)
{
    reg_release(h->data);
}

static void db_closed(void *ud)
{
    struct sup_registry *r = ud;

    r->db = NULL;
    r->flush.data = r->sync.data = r->tick.data = r;
    uv_close((uv_handle_t *)&r->flush, reg_handle_closed);
    uv_close((uv_handle_t *)&r->sync, reg_handle_closed);
    uv_close((uv_handle_t *)&r->tick, reg_handle_closed);
}

static void claims_abort(struct sup_registry *r);

/* The claims' session ended (or came up): the leases held on it are gone. */
static void claim_db_state_cb(struct md_db *db, enum md_db_state st, void *ud)
{
    struct sup_registry *r = ud;

    (void)db;
    if (r->closed)
        return;
    if (st == MD_DB_IDLE) {
        if (r->claims_up)
            return;
        r->claims_up = true;
        r->claims_down = false;
        sup_leases_changed(r->sup, true);
        if (r->migrated)
            claims_resume(r);
    } else if (st != MD_DB_BUSY && r->claims_up) {
        r->claims_up = false;
        r->claims_down = true;
        r->claims_down_ms = uv_now(r->sup->loop);
        sup_leases_changed(r->sup, false);
    }
}

static void claim_db_closed(void *ud)
{
    reg_release(ud); /* after the claims' final callbacks: they use the registry */
}

static void reg_close(struct sup_registry *r)
{
    if (r->closed)
        return;
    r->closed = true;
    claims_abort(r);
    if (r->claim_db != NULL) {
        struct md_db *cdb = r->claim_db;
        r->claim_db = NULL;
        r->pending_closes++;
        md_db_close(cdb, claim_db_closed, r);
    }
    if (r->bus_db != NULL) {
        struct md_db *bdb = r->bus_db;
        r->bus_db = NULL;
        r->pending_closes++;
        md_db_close(bdb, claim_db_closed, r); /* the same release */
    }
    uv_timer_stop(&r->flush);
    uv_timer_stop(&r->sync);
    uv_timer_stop(&r->tick);
    md_log(MD_LOG_NOTICE, "registry closed: unsent=%zu (kept in the journal) events=%" PRIu64
           " batches=%" PRIu64 " failed_batches=%" PRIu64 " acked=%" PRIu64 " dropped=%" PRIu64,
           md_journal_count(r->journal), r->n_events, r->n_batches_ok, r->n_batches_failed,
           r->n_acked, md_journal_dropped(r->journal));
    if (r->db != NULL)
        md_db_close(r->db, db_closed, r);
    else
        db_closed(r);
}

static void stop_deadline_cb(uv_timer_t *t)
{
    struct sup_registry *r = MD_CONTAINER_OF(t, struct sup_registry, tick);

    /* Done when everything is acked, or when the grace period is over. */
    if (md_journal_count(r->journal) == 0 || uv_now(t->loop) >= r->last_prune_ms)
        reg_close(r);
}

void sup_registry_stop(struct sup *sup, void (*done)(struct sup *))
{
    struct sup_registry *r = sup->reg;

    if (r == NULL) {
        done(sup);
        return;
    }
    if (r->stopping)
        return;
    sup_reg_node(sup, "down");
    r->stopping = true;
    r->done = done;
    if (r->db == NULL || !r->migrated) {
        reg_close(r);
        return;
    }
    /* Reuse the tick: poll every 20 ms until the journal is empty or the grace is over. */
    r->last_prune_ms = uv_now(sup->loop) + STOP_GRACE_MS;
    uv_timer_start(&r->tick, stop_deadline_cb, 20, 20);
    kick(r, 0);
}

void sup_registry_stats(const struct sup *sup, struct sup_reg_stats *out)
{
    const struct sup_registry *r = sup->reg;

    memset(out, 0, sizeof *out);
    if (r == NULL)
        return;
    out->on = true;
    out->connected = r->db != NULL && r->migrated && !r->closed &&
                     (md_db_state(r->db) == MD_DB_IDLE || md_db_state(r->db) == MD_DB_BUSY);
    out->events = r->n_events;
    out->batches_ok = r->n_batches_ok;
    out->batches_failed = r->n_batches_failed;
    out->events_acked = r->n_acked;
    out->dropped = md_journal_dropped(r->journal);
    out->backlog = md_journal_count(r->journal);
    out->backlog_bytes = md_journal_bytes(r->journal);
    out->bound_bytes = sup->cfg->journal_max_bytes;
    out->last_drop_ms = r->last_drop_ms;
}

/* ---- cluster claims ---------------------------------------------------------------------- */

/* One slot's claim.  Claims made during one wake-up of the scheduler wait in r->batch and go
 * out together in one statement (sup_reg_claims_flush): a burst of due jobs costs one round
 * trip and one timer, not one per job. */
struct claim {
    struct claim *next;
    char *job, *run_id, *when;
    int64_t slot;
    sup_claim_cb *cb;
    bool answered;      /* the database answered (or the batch failed) */
};

/* The claims of one statement, in the order of its arrays (the answer rows come back in that
 * order; meshd_claim itself inserts them in the global lock order), and their common timeout.
 * A batch is parked in r->waiting while the claims connection is not up (or the schema not
 * migrated), in flight once sent, and closed (timer closing, then freed) when it is over. */
struct claim_batch {
    uv_timer_t timer;   /* claim_timeout, from the flush */
    struct sup *sup;
    struct claim_batch *next; /* r->waiting */
    struct claim **v;
    size_t n;
    char *ids, *jobs, *whens; /* the statement's arrays */
    char at[40], seq[24];     /* the claim's order key: the node's clock and last journal id */
    char sqlstate[6];   /* of the attempt in flight, if it failed with an SQL error */
    unsigned sends;
    bool sent;          /* in flight */
    bool closing;
    bool timed_out;     /* reported OFFLINE already: a later answer is "late" */
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

static void waiting_remove(struct sup_registry *r, struct claim_batch *b)
{
    for (struct claim_batch **pp = &r->waiting; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            b->next = NULL;
            return;
        }
    }
}

static bool claims_ready(const struct sup_registry *r)
{
    enum md_db_state st;

    if (r->claim_db == NULL || r->closed || !r->migrated)
        return false;
    st = md_db_state(r->claim_db);
    return st == MD_DB_IDLE || st == MD_DB_BUSY;
}

static void claims_cb(void *ud, int status, PGresult *res);

/* Sends the batch if claims can be made now; else parks it until they can, unless the claims
 * connection has been down for longer than claim_timeout already (a real outage: the answer is
 * OFFLINE at once, no slot waits for a database that is away). */
static void batch_send(struct sup_registry *r, struct claim_batch *b)
{
    const struct md_config *cfg = r->sup->cfg;
    const char *params[7];

    if (claims_ready(r)) {
        params[0] = b->ids;
        params[1] = b->jobs;
        params[2] = b->whens;
        params[3] = cfg->node_name;
        params[4] = r->sup->life;
        params[5] = b->at;
        params[6] = b->seq;
        b->sqlstate[0] = '\0';
        if (md_db_send(r->claim_db, sup_reg_claim_sql, 7, params, claims_cb, b) == 0) {
            b->sent = true;
            b->sends++;
            return;
        }
    }
    if (r->closed || (r->claims_down &&
                      uv_now(r->sup->loop) - r->claims_down_ms >= cfg->claim_timeout_ms)) {
        batch_end(b);
        return;
    }
    b->next = NULL;
    struct claim_batch **pp = &r->waiting;
    while (*pp != NULL)
        pp = &(*pp)->next;
    *pp = b; /* FIFO: slots are claimed in the order they came due */
}

/* Claims can be made again (the connection is up and the schema migrated): send what waited,
 * then let the scheduler claim the slots it could not claim while they could not be made. */
static void claims_resume(struct sup_registry *r)
{
    struct claim_batch *w = r->waiting;

    r->waiting = NULL;
    while (w != NULL) {
        struct claim_batch *next = w->next;
        w->next = NULL;
        batch_send(r, w);
        w = next;
    }
    sup_claims_back(r->sup);
}

static void batch_timeout_cb(uv_timer_t *t)
{
    struct claim_batch *b = MD_CONTAINER_OF(t, struct claim_batch, timer);
    struct sup_registry *r = b->sup->reg;
    const struct md_config *cfg = b->sup->cfg;

    b->timed_out = true;
    md_log(MD_LOG_WARN, "cluster: no answer to %zu claim(s) within %" PRIu64 " ms (%s); "
           "when_offline=%s", b->n, cfg->claim_timeout_ms,
           b->sent ? "the registry is slow" : "no claims connection",
           cfg->cluster_offline_skip ? "skip" : "run");
    for (size_t i = 0; i < b->n; i++)
        if (!b->v[i]->answered)
            b->v[i]->cb(b->sup, b->v[i]->job, b->v[i]->slot, SUP_CLAIM_OFFLINE, NULL, false);
    if (!b->sent) {
        waiting_remove(r, b); /* never sent: nothing will come back */
        batch_end(b);
    }
}

/* The batch in flight: row i answers claim i; the final call decides what the rest is. */
static void claims_cb(void *ud, int status, PGresult *res)
{
    struct claim_batch *b = ud;
    struct sup_registry *r = b->sup->reg;

    if (res != NULL) {
        if (status < 0) {
            snprintf(b->sqlstate, sizeof b->sqlstate, "%s", field(res, PG_DIAG_SQLSTATE));
            md_log(sqlstate_retryable(b->sqlstate) ? MD_LOG_NOTICE : MD_LOG_ERROR,
                   "cluster: claims failed: sqlstate=%s error=%s", b->sqlstate,
                   field(res, PG_DIAG_MESSAGE_PRIMARY));
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
        sup_claims_back(b->sup); /* the registry answers: claim what could not be claimed */
        return;
    }
    if (r != NULL && !r->closed && !b->timed_out) {
        if (b->sqlstate[0] == '\0') {
            /* The connection was lost with the claims in flight: they may have been committed
             * or not.  Send them again once it is back (meshd_claim answers "won" for this
             * life's own unstarted claim), within claim_timeout. */
            batch_send(r, b);
            return;
        }
        if (sqlstate_retryable(b->sqlstate) && b->sends < RETRY_SQL_MAX) {
            batch_send(r, b);
            return;
        }
    }
    batch_end(b); /* any other SQL error: the claims are OFFLINE (logged above) */
}

/* A PostgreSQL array literal of quoted elements (run ids, job names and ISO times hold no
 * quote or backslash, but escape them anyway). */
static void array_put(struct batch *b, const char *s, bool first)
{
    batch_put(b, first ? "{\"" : ",\"", 2);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            batch_put(b, "\\", 1);
        batch_put(b, s, 1);
    }
    batch_put(b, "\"", 1);
}

void sup_reg_claims_flush(struct sup *sup)
{
    struct sup_registry *r = sup->reg;
    struct batch ids = {0}, jobs = {0}, whens = {0};
    struct claim_batch *b;
    struct claim *c;
    size_t n = 0;

    if (r == NULL || r->batch == NULL)
        return;
    b = md_xcalloc(1, sizeof *b);
    b->sup = sup;
    for (c = r->batch; c != NULL; c = c->next)
        n++;
    b->v = md_xcalloc(n, sizeof *b->v);
    for (c = r->batch; c != NULL; c = c->next) {
        array_put(&ids, c->run_id, b->n == 0);
        array_put(&jobs, c->job, b->n == 0);
        array_put(&whens, c->when, b->n == 0);
        b->v[b->n++] = c;
    }
    r->batch = NULL;
    batch_put(&ids, "}", 1);
    batch_put(&jobs, "}", 1);
    batch_put(&whens, "}", 1);
    b->ids = ids.buf;
    b->jobs = jobs.buf;
    b->whens = whens.buf;
    /* Every event journalled so far is ordered before this claim: a runs_reconciled of an
     * earlier life, applied late, leaves the claim alone (sql/0004, meshd_reconcile_run). */
    md_time_fmt_ms(md_time_wall_ms(), b->at, sizeof b->at);
    snprintf(b->seq, sizeof b->seq, "%" PRIu64, md_journal_last_id(r->journal));
    uv_timer_init(sup->loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, batch_timeout_cb, sup->cfg->claim_timeout_ms, 0);
    batch_send(r, b);
}

static void claims_abort(struct sup_registry *r)
{
    /* Claims not sent yet: offline.  Those in flight end in md_db_close's final callbacks. */
    struct claim *c = r->batch;

    r->batch = NULL;
    for (struct claim *p = c; p != NULL; p = p->next)
        claim_answer(r->sup, p, SUP_CLAIM_OFFLINE, NULL, false);
    claims_free(c);
    while (r->waiting != NULL) {
        struct claim_batch *b = r->waiting;
        r->waiting = b->next;
        b->next = NULL;
        batch_end(b);
    }
}

/* ---- singleton service leases ---------------------------------------------------------------- */

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
                   field(res, PG_DIAG_MESSAGE_PRIMARY));
        return;
    }
    /* A lease won on a session that is gone already is no lease. */
    if (q->answer == SUP_LEASE_GOT &&
        (q->sup->reg == NULL || q->sup->reg->claim_db == NULL ||
         (md_db_state(q->sup->reg->claim_db) != MD_DB_IDLE &&
          md_db_state(q->sup->reg->claim_db) != MD_DB_BUSY)))
        q->answer = SUP_LEASE_OFFLINE;
    q->cb(q->sup, q->job, q->answer);
    md_free(q->job);
    md_free(q);
}

static const char lease_key[] = "hashtextextended('meshd.service:' || $1, 0)";

void sup_reg_lease(struct sup *sup, const char *job, sup_lease_cb *cb)
{
    char sql[160];
    const char *params[1] = {job};
    struct lease_req *q;
    enum md_db_state st;

    if (!sup_reg_claiming(sup) ||
        ((st = md_db_state(sup->reg->claim_db)) != MD_DB_IDLE && st != MD_DB_BUSY)) {
        cb(sup, job, SUP_LEASE_OFFLINE);
        return;
    }
    q = md_xcalloc(1, sizeof *q);
    q->sup = sup;
    q->job = md_xstrdup(job);
    q->cb = cb;
    q->answer = SUP_LEASE_OFFLINE; /* unless a row says otherwise */
    snprintf(sql, sizeof sql, "SELECT pg_try_advisory_lock(%s)", lease_key);
    if (md_db_send(sup->reg->claim_db, sql, 1, params, lease_cb, q) < 0) {
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

void sup_reg_lease_release(struct sup *sup, const char *job)
{
    char sql[160];
    const char *params[1] = {job};

    if (!sup_reg_claiming(sup))
        return;
    snprintf(sql, sizeof sql, "SELECT pg_advisory_unlock(%s)", lease_key);
    if (md_db_send(sup->reg->claim_db, sql, 1, params, unlock_cb, NULL) < 0)
        md_log(MD_LOG_WARN, "cluster: lease of job=%s not released (it goes with the session)",
               job);
}

bool sup_reg_claiming(const struct sup *sup)
{
    return sup->cfg->cluster && sup->reg != NULL && sup->reg->claim_db != NULL;
}

void sup_reg_claim(struct sup *sup, const char *job, int64_t slot, const char *run_id,
                   sup_claim_cb *cb)
{
    struct sup_registry *r = sup->reg;
    struct claim *c;
    char when[80];

    /* Whether the claims connection is up is decided at the flush: a claim waits for it
     * (within claim_timeout) rather than being OFFLINE at once, at start-up and after a
     * reconnect. */
    if (!sup_reg_claiming(sup) || r->closed) {
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
    c->next = r->batch; /* the statement's arrays follow this list; rows come back in its order
                         * (meshd_claim sorts the inserts itself) */
    r->batch = c;
}

/* ---- the message bus --------------------------------------------------------------------- */

static void ignore_cb(void *ud, int status, PGresult *res)
{
    (void)ud;
    if (res != NULL && status < 0)
        md_log(MD_LOG_WARN, "bus: %s", esc(PQresultErrorMessage(res)));
}

static void bus_notify_cb(void *ud, const char *channel, const char *payload)
{
    struct sup_registry *r = ud;

    if (strcmp(channel, "agent_messages") == 0 && !r->closed)
        sup_bus_wake(r->sup, payload);
}

/* The connection the bus uses: its own when the config had on: jobs at start, so fetches never
 * wait behind a batch of events; else the registry's. */
static struct md_db *bus_conn(const struct sup_registry *r)
{
    return r->bus_db != NULL ? r->bus_db : r->db;
}

static void bus_db_state_cb(struct md_db *db, enum md_db_state st, void *ud)
{
    struct sup_registry *r = ud;

    (void)db;
    if (st != MD_DB_IDLE && st != MD_DB_BUSY)
        r->listening = false;
    if (st == MD_DB_IDLE && !r->closed && r->migrated && !r->listening)
        bus_listen(r);
}

static void bus_listen(struct sup_registry *r)
{
    struct sup *sup = r->sup;
    bool any = false;

    for (size_t i = 0; i < sup->cfg->njobs; i++)
        any |= sup->cfg->jobs[i].kind == MD_JOB_EVENT;
    if (!any || r->listening || bus_conn(r) == NULL)
        return;
    if (md_db_state(bus_conn(r)) != MD_DB_IDLE && md_db_state(bus_conn(r)) != MD_DB_BUSY)
        return; /* its state callback calls again once connected */
    r->listening = md_db_send(bus_conn(r), "LISTEN agent_messages", 0, NULL, ignore_cb, r) == 0;
    if (!r->requeued) {
        /* Messages this node had taken when it stopped or crashed go back to the queue. */
        char prefix[200];
        const char *params[1] = {prefix};
        snprintf(prefix, sizeof prefix, "%s/%%", sup->cfg->node_name);
        r->requeued = md_db_send(bus_conn(r), "UPDATE agent_messages SET status = 'pending', "
                                 "claimed_by = NULL, claimed_at = NULL WHERE status = "
                                 "'processing' AND claimed_by LIKE $1", 1, params, ignore_cb,
                                 r) == 0;
    }
    msg_dones_send(r);
    sup_bus_wake(sup, NULL); /* what arrived while nobody listened */
}

bool sup_reg_bus_up(const struct sup *sup)
{
    const struct sup_registry *r = sup->reg;

    return r != NULL && bus_conn(r) != NULL && r->migrated && !r->closed &&
           (md_db_state(bus_conn(r)) == MD_DB_IDLE || md_db_state(bus_conn(r)) == MD_DB_BUSY);
}

struct msg_fetch {
    struct sup *sup;
    char *job;
    sup_msg_cb *cb;
    int64_t id;
    char *payload;
};

static void fetch_cb(void *ud, int status, PGresult *res)
{
    struct msg_fetch *f = ud;

    if (res != NULL) {
        if (status == 0 && PQntuples(res) == 1) {
            f->id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            f->payload = md_xstrdup(PQgetvalue(res, 0, 1));
        } else if (status < 0) {
            md_log(MD_LOG_WARN, "bus: fetch for job=%s failed: %s", f->job,
                   field(res, PG_DIAG_MESSAGE_PRIMARY));
        }
        return;
    }
    f->cb(f->sup, f->job, f->id, f->payload);
    md_free(f->payload);
    md_free(f->job);
    md_free(f);
}

void sup_reg_msg_fetch(struct sup *sup, const char *job, const char *type, sup_msg_cb *cb)
{
    static const char sql[] =
        "UPDATE agent_messages m SET status = 'processing', claimed_by = $2, claimed_at = now(), "
        "attempts = m.attempts + 1 WHERE m.id = (SELECT id FROM agent_messages WHERE status = "
        "'pending' AND type = $1 ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING m.id, m.payload::text";
    char who[200];
    const char *params[2] = {type, who};
    struct msg_fetch *f;

    if (!sup_reg_bus_up(sup)) {
        cb(sup, job, 0, NULL);
        return;
    }
    snprintf(who, sizeof who, "%s/%s", sup->cfg->node_name, job);
    f = md_xcalloc(1, sizeof *f);
    f->sup = sup;
    f->job = md_xstrdup(job);
    f->cb = cb;
    if (md_db_send(bus_conn(sup->reg), sql, 2, params, fetch_cb, f) < 0) {
        md_free(f->job);
        md_free(f);
        cb(sup, job, 0, NULL);
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

static void msg_dones_send(struct sup_registry *r)
{
    static const char sql[] =
        "UPDATE agent_messages SET status = $2, error = $3, processed_at = CASE WHEN $2 = "
        "'pending' THEN NULL ELSE now() END, claimed_by = CASE WHEN $2 = 'pending' THEN NULL "
        "ELSE claimed_by END WHERE id = $1 AND status = 'processing'";
    struct msg_done **pp = &r->dones;

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
        if (d->inflight || !sup_reg_bus_up(r->sup))
            continue;
        snprintf(id, sizeof id, "%" PRId64, d->id);
        if (md_db_send(bus_conn(r), sql, 3, params, done_cb, d) == 0)
            d->inflight = true;
    }
}

void sup_reg_msg_done(struct sup *sup, int64_t id, const char *status, const char *error)
{
    struct sup_registry *r = sup->reg;
    struct msg_done *d;

    if (r == NULL || id <= 0)
        return;
    d = md_xcalloc(1, sizeof *d);
    d->id = id;
    snprintf(d->status, sizeof d->status, "%s", status);
    d->error = error ? md_xstrdup(error) : NULL;
    d->next = r->dones;
    r->dones = d;
    msg_dones_send(r);
}

/* ---- events ------------------------------------------------------------------------------ */

void sup_reg_node(struct sup *sup, const char *state)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "node");
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    emit(sup, o, MD_JPRIO_EVENT);
}

void sup_reg_job(struct sup_job *job)
{
    struct sup *sup = job->sup;
    const struct sup_proc *p;
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "job");
    cJSON_AddStringToObject(o, "job", job->name);
    cJSON_AddStringToObject(o, "state", prog_state_name(job->prog.state));
    for (p = job->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            break;
    if (p != NULL)
        cJSON_AddNumberToObject(o, "pid", p->pid);
    if (job->next_slot != 0)
        md_time_json(o, "next_run_at", job->next_slot * 1000);
    cJSON_AddNumberToObject(o, "restarts", job->restarts);
    emit(sup, o, MD_JPRIO_EVENT);
}

void sup_reg_run_start(struct sup_job *job, const struct sup_proc *p)
{
    struct sup *sup = job->sup;
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "run_start");
    cJSON_AddStringToObject(o, "job", job->name);
    cJSON_AddStringToObject(o, "run_id", p->run_id);
    exec_identity(o, p->exec_id);
    md_time_json(o, "started_at", p->started_wall_ms);
    if (p->slot != 0)
        md_time_json(o, "scheduled_for", p->slot * 1000);
    cJSON_AddNumberToObject(o, "pid", p->pid);
    cJSON_AddNumberToObject(o, "attempt", p->primary ? job->prog.tries + 1 : 1);
    emit(sup, o, MD_JPRIO_RUN);
}

/* The run's output tail as one text, newest lines last: as many of the newest lines as fit in
 * TAIL_JSON_MAX once JSON-escaped, so that the run_end event stays under MD_JOURNAL_EVENT_MAX
 * (64 KiB, with room for its other fields) and agent_runs.output_tail under its 64 KiB CHECK;
 * 20 lines of up to 8 KiB would not.  The lines are escaped already (sup_tail_push): valid
 * UTF-8 without control bytes, which PostgreSQL's text and the journal take as they are.
 * Returns NULL when there are no lines; the caller frees the text. */
#define TAIL_JSON_MAX (56 * 1024)

static char *tail_text(const struct sup_tail *t)
{
    size_t total = 0, len = 0;
    unsigned first = t->n; /* the first line kept (0 = oldest) */
    char *out;

    for (unsigned k = t->n; k-- > 0;) {
        const char *l = sup_tail_line(t, k);
        size_t cost = 2; /* the '\n', escaped */
        for (const char *c = l; *c != '\0'; c++)
            cost += (*c == '"' || *c == '\\') ? 2 : 1;
        if (total + cost > TAIL_JSON_MAX)
            break;
        total += cost;
        first = k;
    }
    if (first == t->n)
        return NULL;
    out = md_xmalloc(total + 1);
    for (unsigned k = first; k < t->n; k++) {
        const char *l = sup_tail_line(t, k);
        size_t n = strlen(l);
        memcpy(out + len, l, n);
        len += n;
        out[len++] = '\n';
    }
    out[len] = '\0';
    return out;
}

void sup_reg_run_end(struct sup_job *job, const struct sup_proc *p, const char *run_id,
                     enum sup_run_status status, int exit_code, int signal, const char *reason)
{
    struct sup *sup = job->sup;
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "run_end");
    cJSON_AddStringToObject(o, "job", job->name);
    cJSON_AddStringToObject(o, "run_id", run_id);
    md_time_json(o, "finished_at", md_time_wall_ms());
    cJSON_AddStringToObject(o, "status", sup_run_status_name(status));
    if (signal != 0)
        cJSON_AddNumberToObject(o, "signal", signal);
    else if (exit_code >= 0) /* -1: not known (a run adopted from a previous life) */
        cJSON_AddNumberToObject(o, "exit_code", exit_code);
    if (reason != NULL)
        cJSON_AddStringToObject(o, "reason", reason);
    if (p != NULL) {
        char *tail = tail_text(&p->tail);
        exec_identity(o, p->exec_id);
        md_time_json(o, "started_at", p->started_wall_ms); /* for a run_start never sent */
        cJSON_AddNumberToObject(o, "duration_ms", (double)p->duration_ms);
        if (p->slot != 0)
            md_time_json(o, "scheduled_for", p->slot * 1000);
        if (tail != NULL)
            cJSON_AddStringToObject(o, "output_tail", tail);
        md_free(tail);
        if (p->result != NULL)
            cJSON_AddStringToObject(o, "result", p->result);
        if (p->usage.cpu) { /* the run's cgroup (cgroup.h); absent: not known */
            cJSON_AddNumberToObject(o, "cpu_usec", (double)p->usage.usage_usec);
            cJSON_AddNumberToObject(o, "cpu_user_usec", (double)p->usage.user_usec);
            cJSON_AddNumberToObject(o, "cpu_system_usec", (double)p->usage.system_usec);
        }
        if (p->usage.memory)
            cJSON_AddNumberToObject(o, "memory_peak_bytes", (double)p->usage.memory_peak);
    }
    emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_slot(struct sup_job *job, const char *kind, int64_t slot, const char *reason)
{
    struct sup *sup = job->sup;
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, kind);
    cJSON_AddStringToObject(o, "job", job->name);
    md_time_json(o, "scheduled_for", slot * 1000);
    cJSON_AddStringToObject(o, "reason", reason);
    emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_slots_missed(struct sup_job *job, int64_t from, int64_t to, uint64_t count,
                          const char *reason)
{
    struct sup *sup = job->sup;
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "slots_missed");
    cJSON_AddStringToObject(o, "job", job->name);
    md_time_json(o, "from", from * 1000);
    md_time_json(o, "to", to * 1000);
    cJSON_AddNumberToObject(o, "count", (double)count);
    cJSON_AddStringToObject(o, "reason", reason);
    emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_run_abandoned(struct sup *sup, const struct sup_runlog_run *r, const char *reason)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "run_end");
    cJSON_AddStringToObject(o, "job", r->job);
    cJSON_AddStringToObject(o, "run_id", r->run_id);
    exec_identity(o, r->exec_id);
    md_time_json(o, "finished_at", md_time_wall_ms());
    cJSON_AddStringToObject(o, "status", sup_run_status_name(RUN_ABANDONED));
    cJSON_AddStringToObject(o, "reason", reason);
    if (r->slot != 0)
        md_time_json(o, "scheduled_for", r->slot * 1000);
    md_time_json(o, "started_at", r->started_ms);
    if (r->has_pid)
        cJSON_AddNumberToObject(o, "pid", r->pid);
    emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_runs_reconciled(struct sup *sup, const char *const *adopted, size_t n)
{
    cJSON *o, *a;

    if (sup->reg == NULL)
        return;
    o = event_new(sup, "runs_reconciled");
    a = cJSON_AddArrayToObject(o, "adopted");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(adopted[i]));
    emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_status(struct sup_job *job, const struct sup_proc *p,
                    const struct md_status_event *ev)
{
    struct sup *sup = job->sup;
    enum md_jprio prio = MD_JPRIO_EVENT;
    cJSON *o, *payload;

    if (sup->reg == NULL)
        return;
    switch (ev->kind) {
    case MD_ST_METRIC:
        o = event_new(sup, "metric");
        cJSON_AddStringToObject(o, "name", ev->u.metric.name);
        cJSON_AddNumberToObject(o, "value", ev->u.metric.value);
        prio = MD_JPRIO_METRIC;
        break;
    case MD_ST_ALERT:
        o = event_new(sup, "alert");
        cJSON_AddStringToObject(o, "key", ev->u.alert.key);
        cJSON_AddStringToObject(o, "severity", md_status_severity_name(ev->u.alert.severity));
        cJSON_AddStringToObject(o, "message", ev->u.alert.message);
        break;
    case MD_ST_RESOLVE:
        o = event_new(sup, "resolve");
        cJSON_AddStringToObject(o, "key", ev->u.resolve.key);
        break;
    case MD_ST_MESSAGE:
        o = event_new(sup, "message");
        cJSON_AddStringToObject(o, "msg_type", ev->u.message.type);
        payload = ev->u.message.payload ? cJSON_Parse(ev->u.message.payload) : NULL;
        if (payload != NULL)
            cJSON_AddItemToObject(o, "payload", payload);
        break;
    case MD_ST_PROGRESS:
        o = event_new(sup, "progress");
        cJSON_AddNumberToObject(o, "done", ev->u.progress.done);
        if (ev->u.progress.has_total)
            cJSON_AddNumberToObject(o, "total", ev->u.progress.total);
        if (ev->u.progress.unit != NULL)
            cJSON_AddStringToObject(o, "unit", ev->u.progress.unit);
        prio = MD_JPRIO_HEARTBEAT;
        break;
    case MD_ST_HEARTBEAT:
        o = event_new(sup, "heartbeat");
        prio = MD_JPRIO_HEARTBEAT;
        break;
    default:
        return; /* ready and result are folded into job and run_end events */
    }
    cJSON_AddStringToObject(o, "job", job->name);
    cJSON_AddStringToObject(o, "run_id", p->run_id);
    emit(sup, o, prio);
}
