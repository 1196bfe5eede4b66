/* md_worker.h - what every meshd worker shares: identity, config, stop, status, exit.
 *
 * A worker is a batch process without an event loop (DESIGN: "anything blocking runs in a
 * worker process").  Its life:
 *
 *   md_worker_init       identity from the environment, log ident "meshd-<name>", the status
 *                        fd, flag-only SIGTERM/SIGINT handlers; --config FILE, --help
 *   md_worker_config     the JSON config (stdin, or --config FILE) bound through a key table
 *   md_worker_connect    PostgreSQL, application_name "meshd-<name>/<job>", cancellable
 *   md_status_ready(&w->st), then the work, calling md_worker_tick() in long loops
 *   md_worker_finish     the result line, the exit code; after a stop, death by the signal
 *
 * Run by meshd, the worker's stdout/stderr are logged by meshd with its own timestamp, so log
 * lines are written without one ("warn meshd-refresh[42]: ..."); run by hand (MESHD_STATUS_FD
 * unset) the status calls are no-ops and the log lines are stamped as usual.
 *
 * Stopping: meshd sends SIGTERM to the worker's process group, then SIGKILL after the job's
 * stop_timeout.  The handler only sets a flag and calls PQcancel on the connections
 * md_worker_connect made (libpq documents PQcancel as safe in a signal handler), so the query
 * in flight ends at once with "canceling statement due to user request"; md_pq_exec then
 * returns -ECANCELED, the worker unwinds (its transaction rolls back) and md_worker_finish
 * re-raises the signal with the default action: meshd sees a stop, not a failure.
 */
#ifndef MESHD_MD_WORKER_H
#define MESHD_MD_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"
#include "meshd/md_json.h"
#include "meshd/md_status.h"

/* One per process (the stop flag and the cancel slots are process-wide).  The strings are
 * borrowed from the environment or argv. */
struct md_worker {
    const char *name;            /* "refresh": ident "meshd-refresh", application_name */
    const char *job;             /* MESHD_JOB, "" when run by hand */
    const char *run_id;          /* MESHD_RUN_ID, "" when run by hand */
    const char *node;            /* MESHD_NODE, "" when run by hand */
    int64_t scheduled_at_ms;     /* MESHD_SCHEDULED_AT as Unix ms; 0 when unset */
    int64_t message_id;          /* MESHD_MESSAGE_ID; 0 unless an on: run */
    const char *message_type;    /* MESHD_MESSAGE_TYPE; NULL unless an on: run */
    const char *message_payload; /* MESHD_MESSAGE_PAYLOAD (JSON text); NULL when absent */
    const char *config_path;     /* --config FILE; NULL: stdin */
    struct md_status_writer st;  /* disabled (every call a no-op) when run by hand */
    uint64_t heartbeat_ms;       /* md_worker_tick's heartbeat period; default 10 s */
    int64_t last_beat_ms;        /* monotonic ms of the last status line */
    int64_t last_progress_ms;    /* monotonic ms of the last progress line */
    char ident[64];              /* "meshd-<name>": the log ident, which md_log borrows, so w
                                  * must outlive logging (keep it in main until the finish) */
};

/* The `database: {url: ...}` member every worker's config has (url NULL: $DATABASE_URL, see
 * md_worker_connect).  In a key table: MD_WORKER_DATABASE_KEY(offsetof(struct cfg, database)). */
struct md_worker_db {
    char *url;
};
extern const struct md_json_key md_worker_db_keys[1];
#define MD_WORKER_DATABASE_KEY(offset)                                                             \
    {                                                                                              \
        .name = "database", .type = MD_J_OBJECT, .off = (offset), .sub = md_worker_db_keys,        \
        .nsub = 1                                                                                  \
    }

/* Sets up w for the worker called name (borrowed, static): reads the identity environment,
 * parses argv (--config FILE or --config=FILE, --help, --version; anything else is a usage
 * error), initializes logging (level from $MESHD_LOG_LEVEL, default info; no timestamp when
 * MESHD_STATUS_FD is set, md_log_set_stamp) and the status writer, and installs the
 * SIGTERM/SIGINT handlers (no SA_RESTART).  --help and --version print and exit 0.
 * On MD_ECONFIG pass the code to md_worker_finish, which exits 100.
 * usage is the worker's one-paragraph description for --help (may be NULL).
 * Returns 0, or MD_ECONFIG (a bad argument or a malformed MESHD_* variable, logged). */
int md_worker_init(struct md_worker *w, const char *name, int argc, char **argv,
                   const char *usage) MD_MUSTCHECK;

/* Reads the config document (stdin to EOF, or the --config file; at most 1 MiB; empty means
 * {}) and binds it to out through keys[n] (md_json.h).  Returns 0, MD_ECONFIG / MD_EPARSE
 * with err naming the key path, MD_ETOOBIG, or -errno from reading (-ECANCELED when a stop
 * interrupted it).  Release out with md_json_free, also after a failure. */
int md_worker_config(struct md_worker *w, const struct md_json_key *keys, size_t n, void *out,
                     struct md_error *err) MD_MUSTCHECK;

/* Connects to url (NULL or "": $DATABASE_URL) with application_name "meshd-<name>/<job>"
 * (just "meshd-<name>" by hand) and a 10 s connect_timeout unless url sets one, and registers
 * the connection for cancellation on a stop.  Returns 0 with *conn set (release it with
 * md_worker_disconnect), MD_ECONFIG (no database named, or not a valid connection string),
 * or MD_EDBDOWN (could not connect); err says which, naming the target, never the password.
 * The server's NOTICEs are logged at info.  A stop during the connect does not interrupt it
 * (libpq retries EINTR): it ends within connect_timeout, and the first query is refused. */
int md_worker_connect(struct md_worker *w, const char *url, PGconn **conn,
                      struct md_error *err) MD_MUSTCHECK;
/* Unregisters and closes a connection from md_worker_connect.  NULL is harmless. */
void md_worker_disconnect(PGconn *conn);

/* Applies a worker's own SQL (sql/workers/<name>.sql, embedded): each statement (';' at a line's
 * end ends one) in one transaction under pg_advisory_xact_lock(lock_key, 0), so two workers
 * starting together do not race on it.  Every statement must be idempotent (IF NOT EXISTS):
 * it runs at every start.  NOTICEs below warning are silenced for the transaction.  Returns 0
 * or a code as md_pq_exec. */
int md_worker_apply_sql(PGconn *c, const char *sql, int32_t lock_key,
                        struct md_error *err) MD_MUSTCHECK;

/* The run's id for what the worker stores: MESHD_RUN_ID, or "manual-<unix seconds>-<pid>" when
 * run by hand (unique enough to tell hand runs apart in a history table).  Into buf (cap >= 48). */
void md_worker_run_name(const struct md_worker *w, char *buf, size_t cap);

/* True once SIGTERM or SIGINT arrived.  Async-signal-safe. */
bool md_worker_stopping(void);

/* For long loops: returns -ECANCELED once stopping; otherwise sends a heartbeat when no status
 * line went out for heartbeat_ms (a heartbeat or progress line sent through md_worker_*; a
 * write error is ignored: the reader's absence is meshd's business), and returns 0. */
int md_worker_tick(struct md_worker *w);

/* A progress line, at most one a second (the last one, done == total, always goes out).
 * total < 0: unknown.  unit may be NULL.  Returns what md_status_progress returns, 0 when
 * the line was held back. */
int md_worker_progress(struct md_worker *w, double done, double total, const char *unit);

/* The result summary, cut to what meshd stores (MD_STATUS_SUMMARY_MAX): build(ctx, detail) is
 * called with detail 0 (the most), 1, ... levels - 1 (the least) until its text fits; the last
 * one is taken whatever its size.  build returns JSON text the caller of cJSON frees
 * (cJSON_PrintUnformatted), or NULL.  Returns a new string (md_free), "{}" when build failed. */
char *md_worker_summary_fit(char *(*build)(const void *ctx, int detail), const void *ctx,
                            int levels);

/* The exit code for a result rc: 0 -> 0; MD_ECONFIG, MD_EPARSE, MD_ESQL, -EINVAL -> 100;
 * MD_EDBDOWN, MD_ELOCKED, MD_ERETRY, -ENOSPC, -EAGAIN, -ENOMEM -> 111; anything else -> 1. */
int md_worker_exit_code(int rc);

/* Ends the run: sends {"event":"result"} (ok when rc == 0; summary_json borrowed, JSON text or
 * NULL), closes the status fd and exits with md_worker_exit_code(rc).  After a SIGTERM or
 * SIGINT it sends no result and re-raises that signal with the default action instead, so
 * meshd records a stop.  The stop signals are blocked first: one that arrives during the
 * finish does not change the outcome.  Callable right after a failed md_worker_init. */
MD_NORETURN void md_worker_finish(struct md_worker *w, int rc, const char *summary_json);

#endif
