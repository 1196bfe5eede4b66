/* pq_lazy.c - libpq for the meshd daemon, loaded when the registry is first used.
 *
 * Why: libpq brings OpenSSL, Kerberos and LDAP with it (11 libraries, ~2.7 MB of resident
 * pages once relocated, docs/benchmarks.md), and a meshd without a registry database needs
 * none of it.  So the daemon is linked against this file instead of libpq: each function the
 * daemon uses is defined here as a small trampoline that calls the real one, found with
 * dlsym in libpq.so.5, dlopen'ed on first use.  Every other binary (meshctl, the tests, the
 * workers) links libpq itself and never sees this file.
 *
 * The definitions carry the exact prototypes of <libpq-fe.h>, so the compiler checks them.
 * A daemon that starts calling another PQ function fails to link ("undefined reference to
 * PQfoo"): add one line below.
 *
 * md_db_open calls md__pq_load first, so a missing libpq is an error of the registry (logged,
 * meshd goes on without it), never a crash; a trampoline reached without a loaded library
 * (impossible by that contract) aborts with the reason.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "db_internal.h"
#include "meshd/md_err.h"

#define PQ_SONAME "libpq.so.5"

static void *pq_lib;

int md__pq_load(char *err, size_t len)
{
    const char *why;

    if (pq_lib != NULL)
        return 0;
    /* RTLD_LAZY: libpq's own dependencies bind their symbols when first called, so pages of
     * OpenSSL that a plain-socket connection never runs are never touched. */
    pq_lib = dlopen(PQ_SONAME, RTLD_LAZY | RTLD_LOCAL);
    if (pq_lib != NULL)
        return 0;
    why = dlerror();
    snprintf(err, len, "%s", why != NULL ? why : "cannot load " PQ_SONAME);
    return MD_EDB;
}

static void *pq_sym(const char *name)
{
    char err[256];
    void *f;

    if (md__pq_load(err, sizeof err) < 0 || (f = dlsym(pq_lib, name)) == NULL) {
        const char *why = pq_lib != NULL ? dlerror() : err;
        fprintf(stderr, "meshd: libpq: %s: %s\n", name, why != NULL ? why : "not found");
        abort();
    }
    return f;
}

/* One trampoline.  The function pointer is looked up once; a data-to-function pointer copy
 * through memory is how POSIX says dlsym results are used. */
#define PQ_FN(ret, name, params, args)                                                             \
    ret name params                                                                                \
    {                                                                                              \
        static ret(*fn) params;                                                                    \
        if (fn == NULL)                                                                            \
            *(void **)&fn = pq_sym(#name);                                                         \
        return fn args;                                                                            \
    }
#define PQ_VOID(name, params, args)                                                                \
    void name params                                                                               \
    {                                                                                              \
        static void(*fn) params;                                                                   \
        if (fn == NULL)                                                                            \
            *(void **)&fn = pq_sym(#name);                                                         \
        fn args;                                                                                   \
    }

/* Connections. */
PQ_FN(PGconn *, PQconnectStartParams,
      (const char *const *keywords, const char *const *values, int expand_dbname),
      (keywords, values, expand_dbname))
PQ_FN(PostgresPollingStatusType, PQconnectPoll, (PGconn * conn), (conn))
PQ_VOID(PQfinish, (PGconn * conn), (conn))
PQ_FN(ConnStatusType, PQstatus, (const PGconn *conn), (conn))
PQ_FN(PGTransactionStatusType, PQtransactionStatus, (const PGconn *conn), (conn))
PQ_FN(char *, PQerrorMessage, (const PGconn *conn), (conn))
PQ_FN(int, PQsocket, (const PGconn *conn), (conn))
PQ_FN(int, PQsetnonblocking, (PGconn * conn, int arg), (conn, arg))
PQ_FN(PQnoticeProcessor, PQsetNoticeProcessor, (PGconn * conn, PQnoticeProcessor proc, void *arg),
      (conn, proc, arg))
PQ_FN(PQconninfoOption *, PQconninfoParse, (const char *conninfo, char **errmsg),
      (conninfo, errmsg))
PQ_VOID(PQconninfoFree, (PQconninfoOption * connOptions), (connOptions))
PQ_VOID(PQfreemem, (void *ptr), (ptr))

/* Sending and receiving. */
PQ_FN(int, PQsendQuery, (PGconn * conn, const char *query), (conn, query))
PQ_FN(int, PQsendQueryParams,
      (PGconn * conn, const char *command, int nParams, const Oid *paramTypes,
       const char *const *paramValues, const int *paramLengths, const int *paramFormats,
       int resultFormat),
      (conn, command, nParams, paramTypes, paramValues, paramLengths, paramFormats, resultFormat))
PQ_FN(PGresult *, PQexec, (PGconn * conn, const char *query), (conn, query))
PQ_FN(int, PQflush, (PGconn * conn), (conn))
PQ_FN(int, PQconsumeInput, (PGconn * conn), (conn))
PQ_FN(int, PQisBusy, (PGconn * conn), (conn))
PQ_FN(PGresult *, PQgetResult, (PGconn * conn), (conn))
PQ_FN(PGnotify *, PQnotifies, (PGconn * conn), (conn))

/* Results. */
PQ_FN(ExecStatusType, PQresultStatus, (const PGresult *res), (res))
PQ_FN(char *, PQresultErrorMessage, (const PGresult *res), (res))
PQ_FN(char *, PQresultErrorField, (const PGresult *res, int fieldcode), (res, fieldcode))
PQ_FN(int, PQntuples, (const PGresult *res), (res))
PQ_FN(int, PQnfields, (const PGresult *res), (res))
PQ_FN(char *, PQfname, (const PGresult *res, int field_num), (res, field_num))
PQ_FN(char *, PQgetvalue, (const PGresult *res, int tup_num, int field_num),
      (res, tup_num, field_num))
PQ_VOID(PQclear, (PGresult * res), (res))
