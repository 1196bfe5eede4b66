/* pgtest.h - a fresh database per test on the throwaway PostgreSQL cluster.
 *
 * ctest sets MESHD_TEST_PG (a superuser conninfo) for the tests declared with `pg` in
 * CMakeLists.txt; without it pgt_fresh_db skips the test, or fails it under MESHD_REQUIRE_PG=1
 * (t_pg_conninfo in t.h).  Blocking libpq is fine here: these are tests, not the daemon.
 * Include once per test binary: it defines the file's `admin`, `db` and `dbname`.
 */
#ifndef MESHD_TESTS_PGTEST_H
#define MESHD_TESTS_PGTEST_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "meshd/md_migrate.h"
#include "t.h"

static PGconn *admin, *db; /* db: the current test's database; both closed at exit */

/* Runs sql on db; fails the test with the server's message if it does not succeed. */
#define T_EXEC_OK(sql)                                                                             \
    do {                                                                                           \
        PGresult *r_ = PQexec(db, (sql));                                                          \
        ExecStatusType st_ = PQresultStatus(r_);                                                   \
        if (st_ != PGRES_COMMAND_OK && st_ != PGRES_TUPLES_OK) {                                   \
            fprintf(stderr, "  %s", PQresultErrorMessage(r_));                                     \
            PQclear(r_);                                                                           \
            T_FAIL("failed: %s", (sql));                                                           \
        }                                                                                          \
        PQclear(r_);                                                                               \
    } while (0)

static char dbname[64];
static int pgt_ndb;
static void (*pgt_extra_cleanup)(void); /* a test file's own clean-up at exit, or NULL */

/* Closes db and drops its database. */
static inline void drop_current(void)
{
    if (db) {
        PQfinish(db);
        db = NULL;
    }
    if (admin && dbname[0]) {
        char q[128];
        snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
        PQclear(PQexec(admin, q));
        dbname[0] = '\0';
    }
}

static inline void pgt_cleanup_at_exit(void)
{
    drop_current();
    PQfinish(admin);
    if (pgt_extra_cleanup)
        pgt_extra_cleanup();
}

/* A new connection to the current test database (caller PQfinish-es it), or NULL. */
static inline PGconn *connect_db(void)
{
    const char *keys[] = {"dbname", "dbname", NULL};
    const char *vals[] = {getenv("MESHD_TEST_PG"), dbname, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "connect %s: %s", dbname, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Creates an empty database <prefix>_<pid>_<n>, connects db to it, and applies the embedded
 * migrations when migrate is true.  Skips the test without a cluster (fails it under
 * MESHD_REQUIRE_PG=1). */
static inline void pgt_fresh_db(const char *prefix, bool migrate)
{
    const char *base = t_pg_conninfo();
    struct md_error err = {0};
    char q[128];
    PGresult *r;

    drop_current();
    if (admin == NULL) {
        admin = PQconnectdb(base);
        if (PQstatus(admin) != CONNECTION_OK)
            T_FAIL("connect %s: %s", base, PQerrorMessage(admin));
        PQsetNoticeProcessor(admin, NULL, NULL);
        atexit(pgt_cleanup_at_exit);
    }
    snprintf(dbname, sizeof dbname, "%s_%ld_%d", prefix, (long)getpid(), pgt_ndb++);
    snprintf(q, sizeof q, "CREATE DATABASE %s", dbname);
    r = PQexec(admin, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "%s", PQresultErrorMessage(r));
        PQclear(r);
        dbname[0] = '\0';
        T_FAIL("CREATE DATABASE failed");
    }
    PQclear(r);
    db = connect_db();
    T_ASSERT_TRUE(db != NULL);
    if (migrate && md_migrate_sync(db, NULL, NULL, &err) < 0)
        T_FAIL("md_migrate_sync: %s", err.msg);
}

#endif
