/* pq_exec.c - blocking queries for workers: exec, COPY in and out, transactions with retry,
 * and cancellation from a signal handler (md_pq.h, "blocking queries").
 *
 * An object of its own, apart from pq.c: it calls PQexecParams, PQputCopyData and the rest,
 * which the daemon's lazy libpq (pq_lazy.c) has no trampolines for.  meshd_common is a static
 * archive, so this object is linked only into binaries that call it, and those link libpq.
 *
 * Cancellation.  A worker's SIGTERM handler calls md_pq_cancel_all, which calls PQcancel on
 * every registered connection (libpq documents PQcancel as safe in a signal handler when given
 * a PGcancel made beforehand and a stack buffer) and sets a flag, so that the 57014 the
 * statement in flight then fails with is reported as -ECANCELED and not as a statement_timeout.
 * The slots are changed only with SIGTERM and SIGINT blocked: the handler never sees a slot
 * whose PGcancel is being freed.  This file's only mutable state is those slots and the flag.
 */
#include "meshd/md_pq.h"

#include "meshd/md_alloc.h"
#include "meshd/md_rand.h"
#include "pq_exec_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CANCEL_SLOTS 16
#define COPY_CHUNK (64 * 1024)

static struct {
    PGconn *conn;             /* touched only outside the handler */
    PGcancel *volatile token; /* read by the handler */
} slots[CANCEL_SLOTS];

/* Set by md_pq_cancel_all: the process is stopping, and a 57014 is our cancel. */
static volatile sig_atomic_t cancelling;

/* ---- classes --------------------------------------------------------------------------- */

int md_pq_sqlstate_code(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return MD_EDBDOWN;
    if (strcmp(s, "57014") == 0)
        return cancelling ? -ECANCELED : -ETIMEDOUT;
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "53", 2) == 0 || strcmp(s, "57P01") == 0 ||
        strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0)
        return MD_EDBDOWN;
    if (strcmp(s, "55P03") == 0)
        return MD_ELOCKED;
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
        return MD_ERETRY;
    if (strncmp(s, "42", 2) == 0 || strncmp(s, "3D", 2) == 0 || strncmp(s, "3F", 2) == 0 ||
        strncmp(s, "28", 2) == 0)
        return MD_ESQL;
    return MD_EDB;
}

/* The code and message of a failed result (res may be NULL: libpq could not even build one).
 * The server's primary message never holds the password; a libpq message about the
 * connection names host and port only. */
static int result_error(PGconn *c, const PGresult *res, struct md_error *err)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *ctx = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    int code, line = 0;

    if (state != NULL)
        code = md_pq_sqlstate_code(state);
    else
        code = PQstatus(c) == CONNECTION_BAD ? MD_EDBDOWN : MD_EDB;
    if (msg == NULL) {
        msg = PQerrorMessage(c);
        if (msg == NULL || msg[0] == '\0')
            msg = "the connection to the server was lost";
    }
    /* A COPY FROM error's context is "COPY t, line N[, column c: ...]": keep N. */
    if (ctx != NULL && strncmp(ctx, "COPY ", 5) == 0) {
        const char *at = strstr(ctx, ", line ");
        if (at != NULL) {
            long n = strtol(at + 7, NULL, 10);
            line = n > 0 && n <= INT_MAX ? (int)n : 0;
        }
    }
    /* libpq's own messages end in a newline, and may have several lines: keep the first. */
    int len = (int)strcspn(msg, "\n");
    if (state != NULL)
        return md_error_set(err, code, line, 0, "%.*s (%s)", len, msg, state);
    return md_error_set(err, code, line, 0, "%.*s", len, msg);
}

static int stopping_error(struct md_error *err)
{
    return md_error_set(err, -ECANCELED, 0, 0, "not run: the worker is stopping");
}

/* Reads the results left after a COPY or a failure until libpq says the command is over, so
 * that the connection can take the next one. */
static void drain(PGconn *c)
{
    PGresult *r;

    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
}

/* ---- exec ------------------------------------------------------------------------------ */

static int copy_refused(PGconn *c, PGresult *res, struct md_error *err);

int md_pq_exec(PGconn *c, const char *sql, int nparams, const char *const *params, PGresult **res,
               struct md_error *err)
{
    PGresult *r;
    int rc = 0;

    if (res != NULL)
        *res = NULL;
    /* A stop that lands between two statements finds no query to cancel: check here too, so
     * that the next one is not started.  (A signal between this check and the send still
     * lets that one statement run; the stop_timeout's SIGKILL bounds it.) */
    if (cancelling)
        return stopping_error(err);
    r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        break;
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
        return copy_refused(c, r, err);
    default:
        rc = result_error(c, r, err);
        PQclear(r);
        return rc;
    }
    if (res != NULL)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* A COPY through md_pq_exec: end it (the server rolls it back) and say what to use. */
static int copy_refused(PGconn *c, PGresult *res, struct md_error *err)
{
    bool in = PQresultStatus(res) == PGRES_COPY_IN;

    PQclear(res);
    if (in) {
        PQputCopyEnd(c, "md_pq_exec does not run COPY");
    } else {
        char *buf;
        int n;
        while ((n = PQgetCopyData(c, &buf, 0)) > 0)
            PQfreemem(buf);
    }
    drain(c);
    return md_error_set(err, -EINVAL, 0, 0, "COPY goes through md_pq_copy_%s, not md_pq_exec",
                        in ? "in" : "out");
}

/* The result of a COPY once its data is over: 0 and the row count, or its error. */
static int copy_result(PGconn *c, uint64_t *rows, struct md_error *err)
{
    PGresult *r = PQgetResult(c);
    int rc = 0;

    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = result_error(c, r, err);
    } else if (rows != NULL) {
        *rows = strtoull(PQcmdTuples(r), NULL, 10);
    }
    PQclear(r);
    drain(c);
    return rc;
}

/* Starts copy_sql and checks that the server went into the COPY state want. */
static int copy_start(PGconn *c, const char *copy_sql, ExecStatusType want, struct md_error *err)
{
    PGresult *r;
    int rc;

    if (cancelling)
        return stopping_error(err);
    r = PQexec(c, copy_sql);
    if (PQresultStatus(r) == want) {
        PQclear(r);
        return 0;
    }
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        return md_error_set(err, -EINVAL, 0, 0, "not a COPY %s: %.80s",
                            want == PGRES_COPY_IN ? "FROM STDIN" : "TO STDOUT", copy_sql);
    }
    if (PQresultStatus(r) == PGRES_COPY_IN || PQresultStatus(r) == PGRES_COPY_OUT)
        return copy_refused(c, r, err);
    rc = result_error(c, r, err);
    PQclear(r);
    return rc;
}

int md_pq_copy_in(PGconn *c, const char *copy_sql, md_pq_fill_cb *fill, void *ud, uint64_t *rows,
                  struct md_error *err)
{
    char *buf;
    int rc;

    if (rows != NULL)
        *rows = 0;
    if ((rc = copy_start(c, copy_sql, PGRES_COPY_IN, err)) < 0)
        return rc;
    buf = md_xmalloc(COPY_CHUNK);
    for (;;) {
        size_t len = 0;

        rc = cancelling ? stopping_error(err) : fill(ud, buf, COPY_CHUNK, &len);
        if (rc < 0) {
            /* The server discards the rows sent so far and answers with 57014 "COPY from
             * stdin failed": that answer is drained, the caller's code is what counts. */
            PQputCopyEnd(c, "aborted by the worker");
            drain(c);
            goto out;
        }
        if (len == 0)
            break;
        if (PQputCopyData(c, buf, (int)len) != 1) {
            rc = result_error(c, NULL, err);
            drain(c);
            goto out;
        }
    }
    if (PQputCopyEnd(c, NULL) != 1) {
        rc = result_error(c, NULL, err);
        drain(c);
        goto out;
    }
    rc = copy_result(c, rows, err);
out:
    md_free(buf);
    return rc;
}

/* Stops a COPY TO STDOUT whose reader gave up.  There is no protocol message for it: the
 * statement is cancelled and the rest of its data read and dropped until the server ends it
 * (with 57014, or with success if it had sent everything already).  PQcancel returns once the
 * postmaster has signalled the backend, so by the time the drain is over the cancel cannot
 * reach a later statement on this connection. */
static void copy_out_abort(PGconn *c)
{
    PGcancel *cn = PQgetCancel(c);
    char errbuf[256], *buf;

    if (cn != NULL) {
        (void)PQcancel(cn, errbuf, sizeof errbuf);
        PQfreeCancel(cn);
    }
    while (PQgetCopyData(c, &buf, 0) > 0)
        PQfreemem(buf);
    drain(c);
}

int md_pq_copy_out(PGconn *c, const char *copy_sql, md_pq_row_cb *row, void *ud,
                   struct md_error *err)
{
    int rc;

    if ((rc = copy_start(c, copy_sql, PGRES_COPY_OUT, err)) < 0)
        return rc;
    for (;;) {
        char *buf;
        int n = PQgetCopyData(c, &buf, 0);

        if (n == -1)
            return copy_result(c, NULL, err);
        if (n < 0) {
            rc = result_error(c, NULL, err);
            drain(c);
            return rc;
        }
        rc = row(ud, buf, (size_t)n);
        PQfreemem(buf);
        if (rc < 0) {
            copy_out_abort(c);
            return rc;
        }
    }
}

/* ---- transactions ---------------------------------------------------------------------- */

/* BEGIN, COMMIT and ROLLBACK run even while stopping (md_pq_exec would refuse them): rolling
 * back is exactly what a stop asks for. */
static int tx_cmd(PGconn *c, const char *sql, struct md_error *err)
{
    PGresult *r = PQexec(c, sql);
    int rc = 0;

    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = result_error(c, r, err);
    else if (strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        /* COMMIT of a transaction that failed earlier "succeeds" as ROLLBACK: fn swallowed
         * an error.  Nothing was written; say so. */
        rc = md_error_set(err, MD_EDB, 0, 0, "the transaction failed and was rolled back");
    PQclear(r);
    return rc;
}

/* A random pause of 10..50 ms times the attempt, so that two workers that collided do not
 * collide again in step.  Returns -ECANCELED when a stop interrupts it. */
static int tx_backoff(unsigned attempt, struct md_error *err)
{
    uint64_t ms = (10 + md_rand_upto(40)) * attempt;
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};

    if (nanosleep(&ts, NULL) < 0 && cancelling)
        return stopping_error(err);
    return cancelling ? stopping_error(err) : 0;
}

int md_pq_tx(PGconn *c, md_pq_tx_fn *fn, void *ud, unsigned attempts, struct md_error *err)
{
    int rc;

    if (attempts < 1)
        attempts = 1;
    if (attempts > 10)
        attempts = 10;
    for (unsigned i = 1;; i++) {
        if (cancelling)
            return stopping_error(err);
        if ((rc = tx_cmd(c, "BEGIN", err)) < 0)
            return rc;
        rc = fn(c, ud, err);
        if (rc == 0) {
            rc = tx_cmd(c, "COMMIT", err);
            if (rc == 0)
                return 0;
        }
        /* After a failed COMMIT the transaction is over already; ROLLBACK then only warns. */
        if (PQtransactionStatus(c) != PQTRANS_IDLE && PQstatus(c) == CONNECTION_OK) {
            struct md_error ignored;
            (void)tx_cmd(c, "ROLLBACK", &ignored);
        }
        if (rc != MD_ERETRY || i >= attempts)
            return rc;
        if ((rc = tx_backoff(i, err)) < 0)
            return rc;
    }
}

/* ---- cancellation ---------------------------------------------------------------------- */

/* Blocks the stop signals while a slot changes; restores the mask with unblock. */
static void block_stop(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, old);
}

static void unblock_stop(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}

int md_pq_cancel_register(PGconn *c)
{
    PGcancel *token;
    sigset_t old;
    int free_slot = -1;

    for (int i = 0; i < CANCEL_SLOTS; i++) {
        if (slots[i].conn == c)
            return 0;
        if (slots[i].conn == NULL && free_slot < 0)
            free_slot = i;
    }
    if (free_slot < 0)
        return MD_ETOOBIG;
    token = PQgetCancel(c);
    if (token == NULL) /* not connected */
        return MD_EDBDOWN;
    block_stop(&old);
    slots[free_slot].conn = c;
    slots[free_slot].token = token;
    unblock_stop(&old);
    return 0;
}

void md_pq_cancel_forget(PGconn *c)
{
    PGcancel *token = NULL;
    sigset_t old;

    if (c == NULL)
        return;
    block_stop(&old);
    for (int i = 0; i < CANCEL_SLOTS; i++) {
        if (slots[i].conn == c) {
            token = slots[i].token;
            slots[i].token = NULL;
            slots[i].conn = NULL;
            break;
        }
    }
    unblock_stop(&old);
    if (token != NULL)
        PQfreeCancel(token);
}

void md_pq_cancel_all(void)
{
    int saved = errno; /* a signal handler must leave errno as it found it */

    cancelling = 1;
    for (int i = 0; i < CANCEL_SLOTS; i++) {
        PGcancel *token = slots[i].token;
        char errbuf[256];
        if (token != NULL)
            (void)PQcancel(token, errbuf, sizeof errbuf);
    }
    errno = saved;
}

void md__pq_cancel_reset(void)
{
    cancelling = 0;
}
