/* ctl_migrate.c - `meshctl migrate [--url URL]`: bring the registry schema up to date.
 *
 * Applies the migrations embedded in the binary (md_migrate.h) that the database does not have
 * yet, in order, each in its own transaction; safe to run again and while meshd runs on other
 * nodes.  URL is a libpq connection string or URI, default $DATABASE_URL.  Prints one line per
 * migration applied and a summary naming the target as host/port/dbname/user -- never the
 * password.  Exit 0 ok (also when nothing was pending), 1 database error, 2 usage (also a URL
 * libpq cannot parse).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ctl.h"
#include "meshd/md_alloc.h"
#include "meshd/md_err.h"
#include "meshd/md_migrate.h"
#include "meshd/md_pq.h"

static void migrate_usage(void)
{
    fputs("usage: meshctl migrate [--url URL]   (URL defaults to $DATABASE_URL)\n", stderr);
}

static void on_migration(const struct md_migration *m, int outcome, void *arg)
{
    (void)arg;
    if (outcome == MD_MIGRATION_APPLIED)
        printf("applied %04d_%s\n", m->version, m->name);
    else if (outcome == MD_MIGRATION_PRESENT)
        printf("present %04d_%s (applied concurrently by another migrator)\n", m->version, m->name);
    else
        fprintf(stderr,
                "meshctl migrate: warning: %04d_%s differs from the text the database applied "
                "(a released migration was edited)\n",
                m->version, m->name);
}

/* Warns (stderr) when the database was migrated by a newer meshd than this one. */
static void check_newer(PGconn *conn, int ours)
{
    PGresult *res = PQexec(conn, "SELECT max(version) FROM meshd_migrations");

    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        int theirs = atoi(PQgetvalue(res, 0, 0));
        if (theirs > ours)
            fprintf(stderr,
                    "meshctl migrate: warning: the database has schema version %d, newer than "
                    "this meshctl's %d\n",
                    theirs, ours);
    }
    PQclear(res);
}

int ctl_migrate(int argc, char **argv)
{
    const char *url = NULL;
    const struct md_migration *list;
    size_t n = md_migrations(&list);
    struct md_error err = {0};
    PGconn *conn = NULL;
    char *target = NULL, *why = NULL;
    int rc = 2, applied;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (strncmp(argv[i], "--url=", 6) == 0) {
            url = argv[i] + 6;
        } else {
            migrate_usage();
            goto out;
        }
    }
    url = md_pq_url(url, NULL);
    if (url == NULL) {
        fputs("meshctl migrate: no database: pass --url or set DATABASE_URL\n", stderr);
        goto out;
    }
    target = md_pq_target(url, MD_PQ_TARGET_URL);
    switch (md_pq_connect(url, NULL, &conn, &why)) {
    case 0:
        break;
    case MD_ECONFIG: /* a bad URL is a usage error */
        fprintf(stderr, "meshctl migrate: %s\n", why);
        goto out;
    default:
        fprintf(stderr, "meshctl migrate: %s: %s", target, why);
        rc = 1;
        goto out;
    }
    rc = 1;
    applied = md_migrate_sync(conn, on_migration, NULL, &err);
    if (applied < 0) {
        fprintf(stderr, "meshctl migrate: %s: %s\n", target, err.msg);
        goto out;
    }
    if (n > 0)
        check_newer(conn, list[n - 1].version);
    printf("%s: %d migration%s applied, schema at version %d\n", target, applied,
           applied == 1 ? "" : "s", n > 0 ? list[n - 1].version : 0);
    rc = 0;
out:
    PQfinish(conn);
    md_free(why);
    md_free(target);
    return rc;
}
