/* db.c - libpq's asynchronous API driven by libuv (STYLE.md "libpq inside libuv", docs/db.md).
 *
 * Invariants:
 * - db->conn is non-NULL exactly in CONNECTING, IDLE and BUSY.
 * - At most one request is in flight (db->inflight), because libpq allows one command per
 *   connection until PQgetResult returns NULL.  During CONNECTING the only one that can be in
 *   flight is the internal on_connect request.
 * - db->watch polls the current socket; older watchers may still be closing.  db->pending counts
 *   every handle not yet closed (the timer and each watcher); the object is freed in the last
 *   close_cb, and only once md_db_close was called.
 * - One timer serves the connect timeout (CONNECTING), the backoff (BACKOFF), the deferred first
 *   connect (DISCONNECTED) and the deferred teardown (db->closing): those never overlap.
 * - md_db_close never tears down synchronously: it may be called from a callback that db.c is
 *   in the middle of delivering.  It sets db->closing and arms the timer at 0 ms; every loop in
 *   this file checks db->closing after each user callback and stops.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "db_internal.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_rand.h"

#define DB_DEF_CONNECT_TIMEOUT_MS 5000u
#define DB_DEF_BACKOFF_INITIAL_MS 500u
#define DB_DEF_BACKOFF_MAX_MS 30000u
#define DB_DEF_MAX_QUEUE 10000u

struct db_req {
    struct db_req *next;
    char *sql;
    int nparams;
    char **params;
    md_db_result_cb *cb;
    void *ud;
    bool internal; /* on_connect or rollback: not the caller's, no callback */
    bool rollback; /* the internal ROLLBACK after a request left a failed transaction */
    bool failed;   /* an error result was seen */
};

/* One watcher per socket generation, freed in its close_cb (curl multi-uv.c).  poll comes first
 * so the uv_poll_t pointer is the struct pointer. */
struct db_watch {
    uv_poll_t poll;
    struct md_db *db;
    int fd;
    int events; /* what the watcher is started with; 0 when stopped */
};

static void db_on_poll(uv_poll_t *h, int status, int events);
static void db_fail(struct md_db *db, const char *fmt, ...) MD_PRINTF(2, 3);
static void db_kick(struct md_db *db);

const char *md_db_state_name(enum md_db_state state)
{
    switch (state) {
    case MD_DB_DISCONNECTED:
        return "DISCONNECTED";
    case MD_DB_CONNECTING:
        return "CONNECTING";
    case MD_DB_IDLE:
        return "IDLE";
    case MD_DB_BUSY:
        return "BUSY";
    case MD_DB_CLOSING:
        return "CLOSING";
    case MD_DB_BACKOFF:
        return "BACKOFF";
    }
    return "UNKNOWN";
}

/* ---- secrets ------------------------------------------------------------------------------ */

/* The password of the parsed conninfo, or NULL: kept only so that error texts can be scrubbed
 * of it.  The target shown in logs is md_pq_target's, which has none. */
static char *db_password(const PQconninfoOption *opts)
{
    for (const PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0')
            return md_xstrdup(o->val);
    return NULL;
}

/* Copies a libpq message into out as one line (blank runs folded, trailing space dropped), with
 * every occurrence of the password replaced by "***".  libpq's messages are not known to quote
 * the password; this is the belt to that pair of braces. */
void md__db_scrub(const char *password, const char *msg, char *out, size_t outsz)
{
    size_t n = 0, pwlen = password != NULL ? strlen(password) : 0;

    for (const char *s = msg != NULL ? msg : ""; *s != '\0' && n + 1 < outsz;) {
        if (pwlen > 0 && strncmp(s, password, pwlen) == 0) {
            for (const char *m = "***"; *m != '\0' && n + 1 < outsz; m++)
                out[n++] = *m;
            s += pwlen;
            continue;
        }
        char c = (*s == '\n' || *s == '\r' || *s == '\t') ? ' ' : *s;
        if (c != ' ' || (n > 0 && out[n - 1] != ' ')) /* fold runs of blanks into one */
            out[n++] = c;
        s++;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* libpq prints NOTICEs to stderr by default; route them through md_log instead. */
static void db_notice(void *arg, const char *message)
{
    struct md_db *db = arg;
    char msg[512];

    md__db_scrub(db->password, message, msg, sizeof msg);
    md_log(MD_LOG_INFO, "db notice: target=%s message=%s", db->target, msg);
}

/* ---- states, timer, watchers ------------------------------------------------------------- */

static void db_set_state(struct md_db *db, enum md_db_state to)
{
    if (db->state == to)
        return;
    md_log(MD_LOG_DEBUG, "db state: target=%s from=%s to=%s", db->target,
           md_db_state_name(db->state), md_db_state_name(to));
    db->state = to;
    if (db->cfg_state_cb != NULL)
        db->cfg_state_cb(db, to, db->cfg_ud);
}

static void db_maybe_free(struct md_db *db)
{
    if (!db->closed || db->pending > 0)
        return;
    void (*cb)(void *) = db->closed_cb;
    void *ud = db->closed_ud;
    md_free(db->conninfo);
    md_free(db->target);
    md_free(db->password);
    md_free(db->on_connect);
    md_free(db);
    if (cb != NULL)
        cb(ud);
}

static void db_timer_closed(uv_handle_t *h)
{
    struct md_db *db = MD_CONTAINER_OF(h, struct md_db, timer);
    db->pending--;
    db_maybe_free(db);
}

static void db_watch_closed(uv_handle_t *h)
{
    struct db_watch *w = (struct db_watch *)h;
    struct md_db *db = w->db;

    md_free(w);
    db->pending--;
    db_maybe_free(db);
}

/* Stops and closes the current watcher.  Must run before PQfinish closes its fd. */
static void db_watch_drop(struct md_db *db)
{
    struct db_watch *w = db->watch;

    if (w == NULL)
        return;
    db->watch = NULL;
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, db_watch_closed);
}

static void db_watch_pause(struct md_db *db)
{
    if (db->watch != NULL && db->watch->events != 0) {
        uv_poll_stop(&db->watch->poll);
        db->watch->events = 0;
    }
}

/* Polls fd for events, replacing the watcher when libpq moved to another socket. */
static int db_watch(struct md_db *db, int fd, int events)
{
    struct db_watch *w = db->watch;
    int r;

    if (w != NULL && w->fd != fd) {
        db_watch_drop(db);
        w = NULL;
    }
    if (w == NULL) {
        w = md_xcalloc(1, sizeof *w);
        w->db = db;
        w->fd = fd;
        r = uv_poll_init(db->loop, &w->poll, fd);
        if (r < 0) {
            md_free(w); /* never initialized: no close needed */
            return r;
        }
        db->pending++;
        db->watch = w;
    }
    if (w->events == events)
        return 0;
    r = uv_poll_start(&w->poll, events, db_on_poll);
    w->events = r < 0 ? 0 : events;
    return r;
}

static void db_on_timer(uv_timer_t *t);

static void db_timer_arm(struct md_db *db, uint64_t ms)
{
    if (db->closing)
        return; /* the 0 ms teardown is armed and must stay so */
    uv_timer_start(&db->timer, db_on_timer, ms, 0);
}

/* Jittered exponential backoff: min(initial << tries, max) +-20%. */
static uint64_t db_backoff_ms(struct md_db *db)
{
    uint64_t d = db->backoff_initial_ms;

    for (unsigned i = 0; i < db->tries && d < db->backoff_max_ms; i++)
        d *= 2;
    if (d > db->backoff_max_ms)
        d = db->backoff_max_ms;
    uint64_t span = d * 2 / 5; /* 40% wide, centred on d */
    if (span > 0)
        d = d - span / 2 + md_rand_upto(span); /* spread between nodes */
    return d;
}

/* ---- requests ---------------------------------------------------------------------------- */

static void db_req_free(struct db_req *req)
{
    for (int i = 0; i < req->nparams; i++)
        md_free(req->params[i]);
    md_free(req->params);
    md_free(req->sql);
    md_free(req);
}

static struct db_req *db_req_new(const char *sql, int nparams, const char *const *params)
{
    struct db_req *req = md_xcalloc(1, sizeof *req);

    req->sql = md_xstrdup(sql);
    req->nparams = nparams;
    if (nparams > 0) {
        req->params = md_xcalloc((size_t)nparams, sizeof *req->params);
        for (int i = 0; i < nparams; i++)
            req->params[i] = params[i] != NULL ? md_xstrdup(params[i]) : NULL;
    }
    return req;
}

/* Runs the final callback of req and frees it. */
static void db_req_finish(struct md_db *db, struct db_req *req, int status)
{
    if (!req->internal) {
        if (status < 0)
            db->stats.errors++;
        if (req->cb != NULL)
            req->cb(req->ud, status, NULL);
    }
    db_req_free(req);
}

static struct db_req *db_queue_pop(struct md_db *db)
{
    struct db_req *req = db->head;

    if (req != NULL) {
        db->head = req->next;
        if (db->head == NULL)
            db->tail = NULL;
        db->nqueued--;
        req->next = NULL;
    }
    return req;
}

int md_db_send(struct md_db *db, const char *sql, int nparams, const char *const *params,
               md_db_result_cb *cb, void *ud)
{
    assert(sql != NULL && nparams >= 0 && (nparams == 0 || params != NULL));
    if (db->closing)
        return MD_EDB;
    if (nparams > 65535 || db->nqueued >= db->max_queue)
        return MD_ETOOBIG;

    struct db_req *req = db_req_new(sql, nparams, params);
    req->cb = cb;
    req->ud = ud;
    if (db->tail != NULL)
        db->tail->next = req;
    else
        db->head = req;
    db->tail = req;
    db->nqueued++;
    if (db->state == MD_DB_IDLE)
        db_kick(db);
    return 0;
}

/* PQflush until done (poll readable only) or the socket is full (poll writable too). */
static int db_flush(struct md_db *db)
{
    int r = PQflush(db->conn);

    if (r < 0) {
        db_fail(db, "%s", PQerrorMessage(db->conn));
        return -1;
    }
    db->flushing = r == 1;
    r = db_watch(db, PQsocket(db->conn), db->flushing ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    if (r < 0) {
        db_fail(db, "poll: %s", uv_strerror(r));
        return -1;
    }
    return 0;
}

/* Hands req to libpq.  The connection must be up with nothing in flight. */
static void db_send_req(struct md_db *db, struct db_req *req)
{
    int ok;

    db->inflight = req;
    if (req->nparams == 0)
        ok = PQsendQuery(db->conn, req->sql);
    else
        ok = PQsendQueryParams(db->conn, req->sql, req->nparams, NULL,
                               (const char *const *)req->params, NULL, NULL, 0);
    if (!req->internal)
        db->stats.queries_sent++;
    if (!ok) {
        /* The arguments were checked in md_db_send, so a refusal means the connection is bad. */
        db_fail(db, "send: %s", PQerrorMessage(db->conn));
        return;
    }
    db_flush(db);
}

/* With the connection up and nothing in flight: send the next request, or become IDLE. */
static void db_kick(struct md_db *db)
{
    if (db->closing || db->conn == NULL || db->inflight != NULL)
        return;
    struct db_req *req = db_queue_pop(db);
    if (req == NULL) {
        db_set_state(db, MD_DB_IDLE);
        return;
    }
    db_set_state(db, MD_DB_BUSY);
    if (db->closing || db->conn == NULL) { /* the state callback closed db */
        db_req_finish(db, req, MD_EDB);
        return;
    }
    db_send_req(db, req);
}

/* ---- connection lifecycle ---------------------------------------------------------------- */

/* Any failure of the connection: tear it down and back off (STYLE rule 4).  The request in
 * flight fails; queued requests wait for the next connection. */
static void db_fail(struct md_db *db, const char *fmt, ...)
{
    char raw[512], msg[512];
    va_list ap;
    enum md_db_state was = db->state;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    md__db_scrub(db->password, raw, msg, sizeof msg);

    /* uv_poll_stop before PQfinish: PQfinish closes the fd, and libuv forbids closing a
     * polled fd. */
    db_watch_drop(db);
    if (db->conn != NULL) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    db->flushing = false;
    uv_timer_stop(&db->timer);
    db->stats.failures++;

    uint64_t delay = db_backoff_ms(db);
    if (was == MD_DB_IDLE || was == MD_DB_BUSY)
        md_log(MD_LOG_WARN, "db lost: target=%s error=%s", db->target, msg);
    else
        md_log(db->tries == 0 ? MD_LOG_WARN : MD_LOG_INFO,
               "db connect failed: target=%s attempt=%u retry_in_ms=%llu error=%s", db->target,
               db->tries + 1, (unsigned long long)delay, msg);
    db->tries++;

    db_set_state(db, MD_DB_CLOSING);
    struct db_req *req = db->inflight;
    db->inflight = NULL;
    if (req != NULL) {
        db->stats.round_trips += !req->internal;
        db_req_finish(db, req, MD_EDB);
    }
    if (db->closing)
        return;
    db_set_state(db, MD_DB_BACKOFF);
    db_timer_arm(db, delay);
}

static void db_connected(struct md_db *db)
{
    uv_timer_stop(&db->timer);
    db->stats.connects++;
    if (db->ever_connected) {
        db->stats.reconnects++;
        md_log(MD_LOG_NOTICE, "db reconnected: target=%s attempts=%u", db->target, db->tries);
    } else {
        md_log(MD_LOG_NOTICE, "db connected: target=%s", db->target);
    }
    db->ever_connected = true;
    db->tries = 0;
    db_kick(db);
}

/* One PQconnectPoll step.  The watcher is paused around the call because libpq may close the
 * socket and open another one (next host or address, SSL or GSS fallback) inside it; a paused
 * watcher is not registered with epoll, so a closed or reused fd number cannot confuse libuv.
 * PQsocket is read again after every call, as libpq documents. */
static void db_connect_step(struct md_db *db)
{
    db_watch_pause(db);
    PostgresPollingStatusType st = PQconnectPoll(db->conn);
    int fd = PQsocket(db->conn);
    int r;

    switch (st) {
    case PGRES_POLLING_FAILED:
        db_fail(db, "%s", PQerrorMessage(db->conn));
        return;
    case PGRES_POLLING_READING:
    case PGRES_POLLING_WRITING:
        if (fd < 0) {
            db_fail(db, "connect: no socket");
            return;
        }
        r = db_watch(db, fd, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE);
        if (r < 0)
            db_fail(db, "poll: %s", uv_strerror(r));
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(db->conn, 1) != 0) {
            db_fail(db, "setnonblocking: %s", PQerrorMessage(db->conn));
            return;
        }
        if (db->on_connect != NULL) {
            /* Still CONNECTING (and under the connect timeout) until it completes. */
            struct db_req *req = db_req_new(db->on_connect, 0, NULL);
            req->internal = true;
            db_send_req(db, req);
            return;
        }
        db_connected(db);
        return;
    default: /* PGRES_POLLING_ACTIVE is obsolete and never returned */
        db_fail(db, "connect: unexpected poll status %d", (int)st);
        return;
    }
}

static void db_connect_start(struct md_db *db)
{
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {db->conninfo, "meshd", NULL};

    db_set_state(db, MD_DB_CONNECTING);
    if (db->closing)
        return;
    db_timer_arm(db, db->connect_timeout_ms);
    /* expand_dbname=1: the conninfo (URL or key=value) is expanded in place of dbname. */
    db->conn = PQconnectStartParams(keys, vals, 1);
    if (db->conn == NULL) {
        db_fail(db, "out of memory");
        return;
    }
    PQsetNoticeProcessor(db->conn, db_notice, db);
    if (PQstatus(db->conn) == CONNECTION_BAD) {
        db_fail(db, "%s", PQerrorMessage(db->conn));
        return;
    }
    /* libpq: behave as if PQconnectPoll had returned PGRES_POLLING_WRITING. */
    int fd = PQsocket(db->conn);
    int r = fd < 0 ? UV_EBADF : db_watch(db, fd, UV_WRITABLE);
    if (r < 0)
        db_fail(db, "poll: %s", uv_strerror(r));
}

/* Runs when md_db_close was called, from the timer, so never inside another db.c callback. */
static void db_teardown(struct md_db *db)
{
    db_watch_drop(db);
    if (db->conn != NULL) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    struct db_req *req = db->inflight;
    db->inflight = NULL;
    if (req != NULL)
        db_req_finish(db, req, MD_EDB);
    while ((req = db_queue_pop(db)) != NULL)
        db_req_finish(db, req, MD_EDB);
    db_set_state(db, MD_DB_DISCONNECTED);
    db->closed = true;
    uv_close((uv_handle_t *)&db->timer, db_timer_closed);
}

static void db_on_timer(uv_timer_t *t)
{
    struct md_db *db = MD_CONTAINER_OF(t, struct md_db, timer);

    if (db->closing) {
        db_teardown(db);
        return;
    }
    switch (db->state) {
    case MD_DB_DISCONNECTED:
    case MD_DB_BACKOFF:
        db_connect_start(db);
        break;
    case MD_DB_CONNECTING:
        db_fail(db, "connect timeout after %u ms", db->connect_timeout_ms);
        break;
    default:
        break;
    }
}

/* ---- receiving --------------------------------------------------------------------------- */

static void db_notifies(struct md_db *db)
{
    PGnotify *n;

    while (!db->closing && db->conn != NULL && (n = PQnotifies(db->conn)) != NULL) {
        db->stats.notifies++;
        if (db->cfg_notify_cb != NULL)
            db->cfg_notify_cb(db->cfg_ud, n->relname, n->extra);
        PQfreemem(n);
    }
}

/* The request in flight got its NULL result. */
static void db_complete(struct md_db *db)
{
    struct db_req *req = db->inflight;

    db->inflight = NULL;
    if (req->rollback) {
        db_req_free(req);
        db_kick(db);
        return;
    }
    if (req->internal) {
        bool failed = req->failed;
        db_req_free(req);
        if (failed)
            db_fail(db, "on_connect failed: %s", db->errbuf);
        else
            db_connected(db);
        return;
    }
    db->stats.round_trips++;
    db_req_finish(db, req, req->failed ? MD_EDB : 0);
    if (db->closing || db->conn == NULL)
        return;
    /* "BEGIN; ...; COMMIT" that failed half-way leaves the session in an aborted transaction,
     * where every later request would fail too.  Requests are independent, so end it here. */
    if (PQtransactionStatus(db->conn) == PQTRANS_INERROR) {
        md_log(MD_LOG_INFO, "db rollback: target=%s reason=request left a failed transaction",
               db->target);
        req = db_req_new("ROLLBACK", 0, NULL);
        req->internal = req->rollback = true;
        db_send_req(db, req);
        return;
    }
    db_kick(db);
}

/* STYLE rule 3: while libpq has a complete result, hand it over and clear it. */
static void db_drain(struct md_db *db)
{
    while (!db->closing && db->conn != NULL && db->inflight != NULL && !PQisBusy(db->conn)) {
        struct db_req *req = db->inflight;
        PGresult *res = PQgetResult(db->conn);

        if (res == NULL) {
            if (PQstatus(db->conn) == CONNECTION_BAD) {
                db_fail(db, "%s", PQerrorMessage(db->conn));
                return;
            }
            db_complete(db);
            continue;
        }
        ExecStatusType st = PQresultStatus(res);
        bool copy = st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
        bool bad = copy || st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE ||
                   st == PGRES_NONFATAL_ERROR;
        if (bad) {
            req->failed = true;
            md__db_scrub(db->password, PQresultErrorMessage(res), db->errbuf, sizeof db->errbuf);
        }
        if (!req->internal && req->cb != NULL)
            req->cb(req->ud, bad ? MD_EDB : 0, res);
        PQclear(res);
        if (copy) {
            /* The protocol now waits for COPY data we will never send: reset the session. */
            db_fail(db, "COPY is not supported");
            return;
        }
    }
}

static void db_on_poll(uv_poll_t *h, int status, int events)
{
    struct md_db *db = ((struct db_watch *)h)->db;

    if (db->closing || db->conn == NULL)
        return;
    if (status < 0) {
        db_fail(db, "poll: %s", uv_strerror(status));
        return;
    }
    if (db->state == MD_DB_CONNECTING && db->inflight == NULL) {
        db_connect_step(db);
        return;
    }
    if ((events & UV_READABLE) && !PQconsumeInput(db->conn)) {
        db_fail(db, "%s", PQerrorMessage(db->conn));
        return;
    }
    /* Flush after reading too: the server may refuse our data until we read its own. */
    if (db->flushing && db_flush(db) < 0)
        return;
    db_drain(db);
    db_notifies(db);
    if (!db->closing && db->conn != NULL && PQstatus(db->conn) == CONNECTION_BAD)
        db_fail(db, "%s", PQerrorMessage(db->conn));
}

/* ---- public ------------------------------------------------------------------------------ */

int md_db_open(uv_loop_t *loop, const struct md_db_config *cfg, struct md_db **out)
{
    char *err = NULL;
    PQconninfoOption *opts;

    assert(loop != NULL && cfg != NULL && out != NULL);
    *out = NULL;
    if (cfg->conninfo == NULL)
        return MD_ECONFIG;
    if (md__pq_load != NULL) {
        char why[256];
        if (md__pq_load(why, sizeof why) < 0) {
            md_log(MD_LOG_ERROR, "db: cannot load libpq: %s", why);
            return MD_EDB;
        }
    }
    opts = PQconninfoParse(cfg->conninfo, &err);
    if (opts == NULL) {
        /* err may quote the conninfo, password included: never print it. */
        PQfreemem(err);
        return MD_ECONFIG;
    }

    struct md_db *db = md_xcalloc(1, sizeof *db);
    db->loop = loop;
    db->conninfo = md_xstrdup(cfg->conninfo);
    db->target = md_pq_target(cfg->conninfo, MD_PQ_TARGET_CONNINFO);
    db->password = db_password(opts);
    PQconninfoFree(opts);
    db->on_connect = cfg->on_connect != NULL ? md_xstrdup(cfg->on_connect) : NULL;
    db->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DB_DEF_CONNECT_TIMEOUT_MS;
    db->backoff_initial_ms =
        cfg->backoff_initial_ms ? cfg->backoff_initial_ms : DB_DEF_BACKOFF_INITIAL_MS;
    db->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : DB_DEF_BACKOFF_MAX_MS;
    if (db->backoff_max_ms < db->backoff_initial_ms)
        db->backoff_max_ms = db->backoff_initial_ms;
    db->max_queue = cfg->max_queue ? cfg->max_queue : DB_DEF_MAX_QUEUE;
    db->cfg_state_cb = cfg->state_cb;
    db->cfg_notify_cb = cfg->notify_cb;
    db->cfg_ud = cfg->ud;
    db->state = MD_DB_DISCONNECTED;
    uv_timer_init(loop, &db->timer); /* cannot fail on Unix */
    db->pending = 1;
    /* Connect from the loop, not from here: the caller gets *out before any callback runs. */
    uv_timer_start(&db->timer, db_on_timer, 0, 0);
    *out = db;
    return 0;
}

void md_db_close(struct md_db *db, void (*closed_cb)(void *ud), void *ud)
{
    assert(db != NULL && !db->closing);
    db->closing = true;
    db->closed_cb = closed_cb;
    db->closed_ud = ud;
    /* No more I/O callbacks; the teardown itself runs from the timer, outside any callback. */
    db_watch_pause(db);
    uv_timer_start(&db->timer, db_on_timer, 0, 0);
}

enum md_db_state md_db_state(const struct md_db *db)
{
    return db->state;
}

const char *md_db_target(const struct md_db *db)
{
    return db->target;
}

void md_db_stats(const struct md_db *db, struct md_db_stats *out)
{
    *out = db->stats;
}

size_t md_db_queued(const struct md_db *db)
{
    return db->nqueued;
}
