/* md_db.h - a non-blocking PostgreSQL connection driven by a libuv loop.
 *
 * One struct md_db is one libpq connection plus a FIFO of requests.  Everything happens on the
 * loop the connection was opened on: md_db_open returns at once and connects in the background,
 * reconnects with jittered exponential backoff whenever the connection is lost, and never makes
 * a blocking libpq call (no PQexec, no PQconnectdb).  See docs/db.md for the state machine.
 * One caveat libpq imposes: a host *name* is resolved with a synchronous getaddrinfo inside
 * PQconnectPoll, so use a unix socket, an IP address or hostaddr= when that matters.
 *
 * Threading: every function must be called on the loop's thread.  Every function except
 * md_db_open may be called from inside any md_db callback (result, state, notify).
 *
 * Retry semantics: the db layer never resends a request on its own.  A request that was sent and
 * whose connection died before its last result arrived fails with MD_EDB, because the layer
 * cannot know whether the server committed it.  The caller (the registry, with its journal)
 * decides whether to retry.  Requests that were only queued, never sent, survive a lost
 * connection and are sent in order after the reconnect.
 *
 * Secrets: the conninfo may carry a password.  It is never logged; logs and md_db_target() show a
 * redacted target made of host, port, dbname and user only.
 */
#ifndef MESHD_MD_DB_H
#define MESHD_MD_DB_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "md_err.h"

struct md_db;

/* The connection's states (STYLE.md "libpq inside libuv"). */
enum md_db_state {
    MD_DB_DISCONNECTED, /* no connection: just opened (connect is scheduled), or closed */
    MD_DB_CONNECTING,   /* PQconnectPoll in progress, then the on_connect SQL if any */
    MD_DB_IDLE,         /* connected, nothing in flight, the queue is empty */
    MD_DB_BUSY,         /* connected, one request in flight (sent, not all results read) */
    MD_DB_CLOSING,      /* the connection failed: tearing it down (transient) */
    MD_DB_BACKOFF,      /* waiting for the backoff timer before the next connect attempt */
};

/* Called on every state change, after the change.  db is borrowed.  The callback may call
 * md_db_send and md_db_close. */
typedef void md_db_state_cb(struct md_db *db, enum md_db_state state, void *ud);

/* Called once per NOTIFY received (after LISTEN).  channel and payload are borrowed and valid
 * only during the call. */
typedef void md_db_notify_cb(void *ud, const char *channel, const char *payload);

/* The result callback of a request; see md_db_send for the call sequence.  res is borrowed: db.c
 * calls PQclear on it after the callback returns, so never keep or clear it. */
typedef void md_db_result_cb(void *ud, int status, PGresult *res);

struct md_db_config {
    /* A libpq URL ("postgresql://u:pw@host/db?...") or key=value string.  Required.  Copied. */
    const char *conninfo;
    /* Zero means the default.  connect_timeout_ms (5000) bounds the connect plus on_connect;
     * backoff starts at backoff_initial_ms (500), doubles per failed attempt up to backoff_max_ms
     * (30000), and each delay is jittered by +-20%. */
    unsigned connect_timeout_ms;
    unsigned backoff_initial_ms;
    unsigned backoff_max_ms;
    /* Requests waiting (not counting the one in flight) beyond which md_db_send fails with
     * MD_ETOOBIG.  Zero means 10000. */
    size_t max_queue;
    /* SQL run after every (re)connect before the connection counts as IDLE, for example
     * "SET application_name=meshd".  NULL for none.  Copied.  If it fails, the connection is
     * treated as failed (backoff and retry), because a session without its settings must not be
     * used. */
    const char *on_connect;
    md_db_state_cb *state_cb;   /* optional */
    md_db_notify_cb *notify_cb; /* optional */
    void *ud;                   /* passed to state_cb and notify_cb */
};

/* Counters for metrics; they only grow. */
struct md_db_stats {
    uint64_t queries_sent; /* requests handed to libpq (on_connect excluded) */
    uint64_t round_trips;  /* requests completed, successfully or not, after being sent */
    uint64_t connects;     /* connections that reached IDLE */
    uint64_t reconnects;   /* of those, the ones after the first */
    uint64_t failures;     /* connect attempts that failed plus connections lost */
    uint64_t errors;       /* requests that completed with MD_EDB */
    uint64_t notifies;     /* notifications delivered */
};

/* Creates a connection object on loop and schedules the first connect attempt on the loop; it
 * returns before any I/O.  cfg and the strings in it are borrowed only during the call.  On
 * success *out owns the object until md_db_close completes.  Returns 0, MD_ECONFIG if the
 * conninfo is missing or cannot be parsed (the parse error is not logged: it may quote the
 * password), or MD_EDB if libpq cannot be loaded (the daemon loads it on first use, see
 * pq_lazy.c; logged with the loader's reason). */
int md_db_open(uv_loop_t *loop, const struct md_db_config *cfg, struct md_db **out) MD_MUSTCHECK;

/* Starts closing db.  Later, on the loop: the request in flight and every queued request complete
 * with (MD_EDB, NULL), the socket watcher is stopped before PQfinish, all handles are closed, the
 * object is freed, and then closed_cb(ud) runs (if not NULL).  db must not be used after this
 * call except by the request callbacks that are still to run, which may call md_db_send (it
 * fails with MD_EDB).  Must be called exactly once. */
void md_db_close(struct md_db *db, void (*closed_cb)(void *ud), void *ud);

/* Queues a request.  sql and the nparams text parameters (NULL entries are SQL NULL) are copied;
 * the caller keeps nothing alive.  nparams == 0 sends sql as a simple query, so several
 * statements separated by ';' ("BEGIN; ...; COMMIT") run in one round trip; nparams > 0 uses the
 * extended protocol (PQsendQueryParams, text format) and sql must be a single statement.
 *
 * cb(ud, 0, res) runs once per successful PGresult, in order.  A result with an error status
 * (PGRES_FATAL_ERROR, PGRES_BAD_RESPONSE, COPY which is not supported) is passed as
 * cb(ud, MD_EDB, res) so the caller can read PQresultErrorField(res, PG_DIAG_SQLSTATE).  Finally
 * cb(ud, status, NULL) runs exactly once: status 0 if every result succeeded, MD_EDB if any
 * failed or the connection was lost or db was closed.  The final call always comes, even on
 * close; cb may be NULL to ignore everything.
 *
 * If a request leaves the session in a failed transaction block (a "BEGIN; ...; COMMIT" that
 * failed half-way), db.c sends an internal ROLLBACK before the next request.
 *
 * Requests run one at a time in FIFO order.  Requests queued while disconnected wait for the
 * reconnect; the one in flight when the connection dies fails and is never resent.
 * Returns 0, MD_ETOOBIG when the queue is full, MD_EDB after md_db_close was called. */
int md_db_send(struct md_db *db, const char *sql, int nparams, const char *const *params,
               md_db_result_cb *cb, void *ud) MD_MUSTCHECK;

/* The current state; db is borrowed. */
enum md_db_state md_db_state(const struct md_db *db);

/* A static name for a state ("IDLE"), never NULL. */
const char *md_db_state_name(enum md_db_state state);

/* The redacted target "host=... port=... dbname=... user=..." for logs.  Borrowed from db, valid
 * until md_db_close completes.  It never contains the password. */
const char *md_db_target(const struct md_db *db);

/* Copies the counters into *out. */
void md_db_stats(const struct md_db *db, struct md_db_stats *out);

/* Requests waiting in the queue (the one in flight excluded). */
size_t md_db_queued(const struct md_db *db);

#endif
