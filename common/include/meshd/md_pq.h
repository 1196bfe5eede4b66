/* md_pq.h - libpq helpers shared by every binary: a connection string's target for people,
 * and the blocking connect of the command-line tools.
 *
 * A connection string (a conninfo "host=... password=..." or a URI "postgresql://u:pw@h/db")
 * may carry a password, so it is never printed as is: logs and messages show its target, made
 * of host, port, dbname and user only.
 *
 * Three objects implement this header, on purpose.  pq.c (md_pq_target) calls no libpq
 * function but PQconninfoParse and PQconninfoFree, which the daemon's lazy libpq (pq_lazy.c)
 * provides: meshd links it through db.c and still has no libpq DT_NEEDED.  pq_connect.c
 * (md_pq_url, md_pq_connect) calls PQconnectdb, and pq_exec.c (the blocking queries below)
 * PQexecParams, COPY and PQcancel, which meshd has no trampolines for: meshd_common is a
 * static archive, so those objects are linked only into the binaries that call them, which
 * link libpq themselves.  Keep it so: a function the daemon calls must not go into those two.
 */
#ifndef MESHD_MD_PQ_H
#define MESHD_MD_PQ_H

#include <libpq-fe.h>

#include <stddef.h>
#include <stdint.h>

#include "meshd/md_err.h"

/* The two ways a target is written. */
enum md_pq_form {
    /* "user@host:port/dbname", parts the string leaves to libpq's defaults shown as
     * "(default host)" and "(default db)" or left out: meshctl's messages and output. */
    MD_PQ_TARGET_URL,
    /* "host=... port=... dbname=... user=...", hostaddr standing in for a missing host, only
     * the parts the string sets, "(libpq defaults)" when it sets none: the daemon's logs
     * (md_db_target). */
    MD_PQ_TARGET_CONNINFO,
};

/* The target of connection string conninfo (borrowed), written in form, never with the
 * password.  A string libpq cannot parse gives "(invalid connection string)": libpq's parse
 * error may quote the password.  The daemon must have loaded libpq first (md_db_open does).
 * Returns a new string; the caller frees it with md_free. */
char *md_pq_target(const char *conninfo, enum md_pq_form form);

/* The connection string a command-line tool uses: url when it is not NULL, else
 * $DATABASE_URL; when that one is unset or empty, fallback (say, the config's registry.url; NULL
 * for none).  An empty url is not replaced by $DATABASE_URL, only by fallback.  Returns a
 * borrowed string, or NULL when all of them are unset or empty (no database was named). */
const char *md_pq_url(const char *url, const char *fallback);

/* Connects to url (borrowed, not NULL), blocking: for command-line tools, never inside an
 * event loop.  connect_timeout is the connect_timeout in seconds that applies unless url sets
 * its own, or NULL to pass url to libpq alone (PQconnectdb).
 * Returns 0 with *conn connected: the caller PQfinish-es it.  Otherwise *conn is NULL and *why
 * (the caller frees it with md_free) says what went wrong, never quoting the password:
 *   MD_ECONFIG  url is not a valid libpq connection string ("the database URL is not a valid
 *               libpq connection string": libpq's parse error may quote the password);
 *   MD_EDB      libpq could not connect: its message as is, which names host and port, may
 *               have several lines and ends with a newline.
 * Prefix the message with md_pq_target(url, MD_PQ_TARGET_URL) to say where. */
int md_pq_connect(const char *url, const char *connect_timeout, PGconn **conn,
                  char **why) MD_MUSTCHECK;

/* ---- blocking queries, for workers (never inside an event loop) -----------------------------
 *
 * Every failure is classed by its SQLSTATE, so a worker's exit code says what meshd should do
 * (md_worker_exit_code):
 *   MD_EDBDOWN  class 08 (connection), 53 (insufficient resources), 57P01-57P03 (shutdown,
 *               cannot connect now), or the connection is gone          -> temporary, 111
 *   MD_ELOCKED  55P03 lock_not_available (lock_timeout)                  -> temporary, 111
 *   MD_ESQL     class 42 (syntax, undefined object, privilege), 3D, 3F, 28 -> permanent, 100
 *   MD_ERETRY   40001 serialization failure, 40P01 deadlock: md_pq_tx runs the transaction
 *               again; what is left after its last attempt               -> temporary, 111
 *   -ECANCELED  57014 after md_pq_cancel_all (a stop); also any call made after it, which is
 *               not run at all (BEGIN/ROLLBACK inside md_pq_tx excepted)
 *   -ETIMEDOUT  57014 otherwise (statement_timeout)
 *   -EINVAL     a COPY given to md_pq_exec, or a statement that is not the COPY asked for
 *   MD_EDB      everything else                                          -> failed, 1
 * err->msg then holds the server's primary message, with its SQLSTATE: "relation \"mv_x\" does
 * not exist (42P01)"; for a lost connection libpq's first line, which names host and port but
 * never the password.  When the server names the data line of a COPY FROM that
 * failed ("COPY t, line 17"), err->line holds it (1-based, the line of the COPY stream); it is
 * 0 otherwise.
 */

/* The class code for a SQLSTATE (5 characters; NULL or "" for a lost connection). */
int md_pq_sqlstate_code(const char *sqlstate);

/* Runs sql with nparams text parameters (params[i] NULL for SQL NULL).  Returns 0 with *res
 * the result when res is not NULL (the caller PQclears it), or a class code above with err
 * filled and *res NULL.  A result of COPY is an error here (use md_pq_copy_in/out). */
int md_pq_exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
               struct md_error *err) MD_MUSTCHECK;

/* COPY ... FROM STDIN: fill is called for the next bytes until it sets *len to 0 (end) or
 * returns a negative code (the COPY is aborted and that code returned).  Returns 0 and the
 * number of rows in *rows (may be NULL), or a code as md_pq_exec. */
typedef int md_pq_fill_cb(void *ud, char *buf, size_t cap, size_t *len);
int md_pq_copy_in(PGconn *c, const char *copy_sql, md_pq_fill_cb *fill, void *ud, uint64_t *rows,
                  struct md_error *err) MD_MUSTCHECK;

/* COPY ... TO STDOUT: row is called with each row as the server sends it (len bytes, ending in
 * '\n'; borrowed for the call).  A negative return stops the COPY (the connection is reset to
 * idle) and is returned.  Returns 0, or a code as md_pq_exec. */
typedef int md_pq_row_cb(void *ud, const char *row, size_t len);
int md_pq_copy_out(PGconn *c, const char *copy_sql, md_pq_row_cb *row, void *ud,
                   struct md_error *err) MD_MUSTCHECK;

/* BEGIN; fn(c, ud, err); COMMIT, or ROLLBACK when fn or COMMIT fails.  A serialization failure
 * (40001) or deadlock (40P01) anywhere in it rolls back and runs fn again, up to attempts
 * times in all (1..10), after a short random backoff.  Returns fn's or COMMIT's result.
 * fn must return the code of the md_pq_exec that failed (MD_ERETRY is how a retry is
 * recognized); a fn that returns 0 after a failed statement gets MD_EDB from the COMMIT,
 * which the server turned into a ROLLBACK. */
typedef int md_pq_tx_fn(PGconn *c, void *ud, struct md_error *err);
int md_pq_tx(PGconn *c, md_pq_tx_fn *fn, void *ud, unsigned attempts,
             struct md_error *err) MD_MUSTCHECK;

/* Cancellation.  md_pq_cancel_register(c) makes c cancellable by md_pq_cancel_all (at most
 * 16 connections at a time; MD_ETOOBIG beyond); md_pq_cancel_forget before PQfinish.
 * md_pq_cancel_all is async-signal-safe: it calls PQcancel on every registered connection
 * and marks the process as cancelling, so a 57014 becomes -ECANCELED. */
int md_pq_cancel_register(PGconn *c) MD_MUSTCHECK;
void md_pq_cancel_forget(PGconn *c);
void md_pq_cancel_all(void);

#endif
