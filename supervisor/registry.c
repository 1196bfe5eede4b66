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
#include "meshd/md_buf.h"
#include "meshd/md_db.h"
#include "meshd/md_journal.h"
#include "meshd/md_log.h"
#include "meshd/md_migrate.h"
#include "meshd/md_time.h"
#include "registry.h"
#include "registry_internal.h"
#include "sup.h"

#define COALESCE_MS 20        /* events of one burst go out together */
#define RETRY_MS 2000         /* after a failed batch or migration */
#define SYNC_MS 1000          /* journal fdatasync at most this often */
#define STOP_GRACE_MS 1000    /* at shutdown, time to ship what is pending */
#define PRUNE_EVERY_MS 300000 /* retention pass */
#define BATCH_MAX 2000        /* events per round trip (a backlog drains in big ones) */
#define BATCH_BYTES (4u << 20)

struct sup_registry {
    struct sup *sup;
    struct md_journal *journal;
    struct md_db *db;
    struct md_db_config dc;      /* how db was opened (cluster.c and bus.c open theirs alike) */
    char *url;                   /* dc.conninfo's copy: the config it came from may be swapped */
    struct sup_reg_watch *watch; /* cluster.c, bus.c (registry_internal.h) */
    uv_timer_t flush;            /* coalescing window, retry delay */
    uv_timer_t sync;             /* journal fdatasync */
    uv_timer_t tick;             /* heartbeat, retention */
    uv_timer_t stop; /* at shutdown: polls until the journal is empty or stop_deadline_ms */
    char *id_prefix; /* {"id":"<node, JSON-escaped>/ */
    const struct md_migration *migs;
    size_t nmigs, mig_next;
    int mig_outcome;
    bool migrated, migrating, inflight, stopping, closed;
    bool overflowed; /* the journal hit its bound: raise the alert at the next chance */
    bool overflow_alerted;
    unsigned batch_retries; /* the batch in flight: sent again after 40P01/40001 so often */
    char batch_sqlstate[6]; /* the batch in flight failed with this SQLSTATE */
    uint64_t inflight_last;
    size_t inflight_n;
    uint64_t n_events, n_batches_ok, n_batches_failed, n_acked;
    int64_t last_drop_ms;
    uint64_t last_prune_ms;
    uint64_t stop_deadline_ms; /* loop time when shutdown stops waiting for the database */
    int pending_closes;
    void (*done)(struct sup *);
};

cJSON *sup_reg_event_new(struct sup *sup, const char *type)
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

/* meshd_claim and meshd_apply_events take their rows in one global order, so neither a
 * deadlock nor a serialization failure should happen; if one does, the statement is sent again
 * at once, at most SUP_REG_RETRY_MAX times in a row. */
bool sup_reg_retryable(const char *s)
{
    return strcmp(s, "40P01") == 0 || strcmp(s, "40001") == 0;
}

static void flush_cb(uv_timer_t *t);
static void sync_cb(uv_timer_t *t);
static void kick(struct sup_registry *r, uint64_t delay_ms);
static void send_batch(struct sup_registry *r);

void sup_reg_emit(struct sup *sup, cJSON *o, enum md_jprio prio)
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

/* A batch is built past BATCH_BYTES by at most one event and its id; its buffer's bound. */
#define BATCH_BUF_MAX (BATCH_BYTES + MD_JOURNAL_EVENT_MAX + 256)

struct batch {
    struct md_buf buf;
    size_t n;
    uint64_t last;
    const char *prefix;
};

static int batch_visit(void *ud, uint64_t id, enum md_jprio prio, const char *json, size_t len)
{
    struct batch *b = ud;

    (void)prio;
    if (len < 2 || json[0] != '{')
        return 0; /* not ours: skip (never written by this file) */
    md_buf_puts(&b->buf, b->n ? "," : "[");
    md_buf_printf(&b->buf, "%s%" PRIu64 "\"", b->prefix, id);
    if (len > 2)
        md_buf_puts(&b->buf, ",");
    md_buf_put(&b->buf, json + 1, len - 1);
    b->n++;
    b->last = id;
    return b->buf.len >= BATCH_BYTES;
}

/* Text from the server for a log line, escaped (md_log_escape): an error message may quote
 * the data that caused it - a worker's output, a payload.  Returned in one of four static
 * buffers, so a log call may hold up to four; valid until the fifth call. */
const char *sup_reg_esc(const char *v)
{
    static char ring[4][512];
    static unsigned next;
    char *b = ring[next++ % 4];

    if (v == NULL)
        return "-";
    md_log_escape(b, sizeof ring[0], v, strlen(v));
    return b;
}

const char *sup_reg_field(const PGresult *res, int code)
{
    return sup_reg_esc(PQresultErrorField(res, code));
}

static void batch_cb(void *ud, int status, PGresult *res)
{
    struct sup_registry *r = ud;
    int rc;

    if (res != NULL) {
        if (status < 0) {
            snprintf(r->batch_sqlstate, sizeof r->batch_sqlstate, "%s",
                     sup_reg_field(res, PG_DIAG_SQLSTATE));
            md_log(MD_LOG_WARN, "registry write failed: sqlstate=%s error=%s", r->batch_sqlstate,
                   sup_reg_field(res, PG_DIAG_MESSAGE_PRIMARY));
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
        if (sup_reg_retryable(r->batch_sqlstate) && r->batch_retries < SUP_REG_RETRY_MAX) {
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
    md_buf_init(&b.buf, BATCH_BUF_MAX);
    md_journal_pending(r->journal, md_journal_acked(r->journal), batch_visit, &b, BATCH_MAX);
    if (b.n == 0) {
        md_buf_free(&b.buf);
        return;
    }
    md_buf_puts(&b.buf, "]");
    params[0] = md_buf_str(&b.buf);
    rc = md_db_send(r->db, "SELECT meshd_apply_events($1::jsonb)", 1, params, batch_cb, r);
    md_buf_free(&b.buf);
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
    snprintf(msg, sizeof msg,
             "meshd's local journal hit its bound (%" PRIu64
             " bytes) while the database was away; low-value events were dropped",
             sup->cfg->journal_max_bytes);
    o = sup_reg_event_new(sup, "alert");
    cJSON_AddStringToObject(o, "key", "meshd.journal_full");
    cJSON_AddStringToObject(o, "severity", "critical");
    cJSON_AddStringToObject(o, "message", msg);
    sup_reg_emit(sup, o, MD_JPRIO_RUN); /* never dropped itself */
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
    if (uv_is_active((uv_handle_t *)&r->flush) && uv_timer_get_due_in(&r->flush) <= delay_ms)
        return;
    uv_timer_start(&r->flush, flush_cb, delay_ms, 0);
}

/* ---- migrations, connection ------------------------------------------------------------- */

static void migrate_next(struct sup_registry *r);

#define WATCHERS(r, w) for (struct sup_reg_watch *w = (r)->watch; w != NULL; w = w->next)

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
                   m->name, sup_reg_esc(PQresultErrorMessage(res)));
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
        WATCHERS(r, w) /* the bus listens, claims that waited for the schema go out */
        if (w->ready != NULL)
            w->ready(w->ud);
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
    WATCHERS(r, w) /* the bus, when it uses this connection: a new session needs its LISTEN */
    if (w->session != NULL)
        w->session(w->ud, st);
    if (st != MD_DB_IDLE || r->closed)
        return;
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
    md_log(MD_LOG_ERROR,
           "journal full: dropped=%zu bytes=%" PRIu64 " bound=%" PRIu64
           "; the database has been away too long",
           dropped, bytes, sup->cfg->journal_max_bytes);
}

static void prune_cb(void *ud, int status, PGresult *res)
{
    (void)ud;
    if (res != NULL && status < 0)
        md_log(MD_LOG_WARN, "retention prune failed: %s", sup_reg_esc(PQresultErrorMessage(res)));
}

static void tick_cb(uv_timer_t *t)
{
    struct sup_registry *r = MD_CONTAINER_OF(t, struct sup_registry, tick);
    struct sup *sup = r->sup;
    uint64_t now = uv_now(sup->loop);

    sup_reg_emit(sup, sup_reg_event_new(sup, "heartbeat"), MD_JPRIO_HEARTBEAT);
    kick(r, 0);    /* a lone event: nothing to coalesce with, no extra wake-up for it */
    WATCHERS(r, w) /* the bus: completions not sent yet, a NOTIFY missed */
    if (w->tick != NULL)
        w->tick(w->ud);
    if (r->migrated && now - r->last_prune_ms >= PRUNE_EVERY_MS) {
        char interval[48];
        const char *params[1] = {interval};
        r->last_prune_ms = now;
        snprintf(interval, sizeof interval, "%" PRIu64 " seconds", sup->cfg->retention_ms / 1000);
        if (md_db_send(r->db, "SELECT meshd_prune($1::interval, 1000)", 1, params, prune_cb, r) < 0)
            md_log(MD_LOG_WARN, "retention prune not queued");
    }
}

/* The node's own event (up at start, down at stop): the registry's, not regevent.c's. */
void sup_reg_node(struct sup *sup, const char *state)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "node");
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    sup_reg_emit(sup, o, MD_JPRIO_EVENT);
}

/* ---- start / stop ------------------------------------------------------------------------ */

static void db_notify_cb(void *ud, const char *channel, const char *payload)
{
    struct sup_registry *r = ud;

    WATCHERS(r, w) /* the bus, when it listens on this connection */
    if (w->notify != NULL)
        w->notify(w->ud, channel, payload);
}

int sup_registry_start(struct sup *sup)
{
    const struct md_config *cfg = sup->cfg;
    const char *url = cfg->registry_url_set ? cfg->registry_url : getenv("DATABASE_URL");
    struct md_journal_opts jo = {0};
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
    uv_timer_init(sup->loop, &r->stop);
    r->pending_closes = 4;
    sup->reg = r;

    r->url = md_xstrdup(url);
    r->dc.conninfo = r->url;
    r->dc.on_connect = "SET application_name = 'meshd'";
    r->dc.state_cb = db_state_cb;
    r->dc.notify_cb = db_notify_cb;
    r->dc.ud = r;
    rc = md_db_open(sup->loop, &r->dc, &r->db);
    if (rc < 0) {
        md_log_err(MD_LOG_ERROR, rc, "registry: %s; events are journalled until it is fixed",
                   rc == MD_ECONFIG ? "bad database URL (not shown)" : "no database client");
        r->db = NULL;
    } else {
        md_log(MD_LOG_NOTICE, "registry: target=%s journal_pending=%zu", md_db_target(r->db),
               md_journal_count(r->journal));
    }
    uv_timer_start(&r->tick, tick_cb, cfg->heartbeat_ms, cfg->heartbeat_ms);
    return 0;
}

void sup_registry_watch(struct sup *sup, struct sup_reg_watch *w)
{
    struct sup_reg_watch **pp = &sup->reg->watch;

    while (*pp != NULL)
        pp = &(*pp)->next;
    w->next = NULL;
    *pp = w;
}

void sup_registry_db_config(const struct sup *sup, struct md_db_config *out)
{
    *out = sup->reg->dc;
    out->state_cb = NULL;
    out->notify_cb = NULL;
    out->ud = NULL;
    out->on_connect = NULL;
}

struct md_db *sup_registry_db(const struct sup *sup)
{
    return sup->reg != NULL ? sup->reg->db : NULL;
}

bool sup_registry_ready(const struct sup *sup)
{
    return sup->reg != NULL && sup->reg->migrated && !sup->reg->closed;
}

uint64_t sup_registry_last_id(const struct sup *sup)
{
    return md_journal_last_id(sup->reg->journal);
}

void sup_registry_hold(struct sup *sup)
{
    sup->reg->pending_closes++;
}

void sup_registry_release(struct sup *sup)
{
    struct sup_registry *r = sup->reg;

    if (--r->pending_closes > 0)
        return;
    void (*done)(struct sup *) = r->done;
    for (struct sup_reg_watch *w = r->watch, *next; w != NULL; w = next) {
        next = w->next; /* closed() frees the watcher with its owner */
        if (w->closed != NULL)
            w->closed(w->ud);
    }
    md_journal_close(r->journal);
    md_free(r->url);
    md_free(r->id_prefix);
    md_free(r);
    sup->reg = NULL;
    done(sup);
}

static void reg_handle_closed(uv_handle_t *h)
{
    struct sup_registry *r = h->data;

    sup_registry_release(r->sup);
}

static void db_closed(void *ud)
{
    struct sup_registry *r = ud;

    r->db = NULL;
    r->flush.data = r->sync.data = r->tick.data = r->stop.data = r;
    uv_close((uv_handle_t *)&r->flush, reg_handle_closed);
    uv_close((uv_handle_t *)&r->sync, reg_handle_closed);
    uv_close((uv_handle_t *)&r->tick, reg_handle_closed);
    uv_close((uv_handle_t *)&r->stop, reg_handle_closed);
}

static void reg_close(struct sup_registry *r)
{
    if (r->closed)
        return;
    r->closed = true;
    WATCHERS(r, w) /* the claims and the bus close their connections, each with a hold */
    if (w->closing != NULL)
        w->closing(w->ud);
    uv_timer_stop(&r->flush);
    uv_timer_stop(&r->sync);
    uv_timer_stop(&r->tick);
    uv_timer_stop(&r->stop);
    md_log(MD_LOG_NOTICE,
           "registry closed: unsent=%zu (kept in the journal) events=%" PRIu64 " batches=%" PRIu64
           " failed_batches=%" PRIu64 " acked=%" PRIu64 " dropped=%" PRIu64,
           md_journal_count(r->journal), r->n_events, r->n_batches_ok, r->n_batches_failed,
           r->n_acked, md_journal_dropped(r->journal));
    if (r->db != NULL)
        md_db_close(r->db, db_closed, r);
    else
        db_closed(r);
}

static void stop_poll_cb(uv_timer_t *t)
{
    struct sup_registry *r = MD_CONTAINER_OF(t, struct sup_registry, stop);

    /* Done when everything is acked, or when the grace period is over. */
    if (md_journal_count(r->journal) == 0 || uv_now(t->loop) >= r->stop_deadline_ms)
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
    /* No more heartbeats: poll every 20 ms until the journal is empty or the grace is over. */
    uv_timer_stop(&r->tick);
    r->stop_deadline_ms = uv_now(sup->loop) + STOP_GRACE_MS;
    uv_timer_start(&r->stop, stop_poll_cb, 20, 20);
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
