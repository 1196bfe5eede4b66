/* migrate.c - the embedded migrations and the script that applies one of them.
 *
 * Design (docs/registry.md, "Migrations"): a migration is applied by one simple-protocol query
 * string, which PostgreSQL runs as one implicit transaction:
 *
 *   DO $meshd_do$ ... $meshd_do$;      lock, bookkeeping table, apply-if-absent, record
 *   SELECT current_setting(...), N;    the outcome, as the last result
 *
 * The DO block takes pg_advisory_xact_lock(MIGRATE_LOCK_KEY) first, so two nodes (or two
 * meshctl runs) migrating at once are serialized, and the second one finds the version already
 * recorded once it gets the lock.  It applies the migration with EXECUTE, which runs a
 * multi-statement text, and records it in the same transaction: a failure anywhere rolls back
 * both the schema change and the record.  "Already applied" is a normal outcome, not an error
 * (no 23505 to interpret, no aborted transaction left on the connection, no ERROR line in the
 * server log on every start).
 */
#include "meshd/md_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"

/* Defined in the file cmake/embed_sql.cmake generates from sql/. */
size_t md__migrations_data(const struct md_migration **out);

/* 'meshdmig' as a big-endian int64: the advisory lock every migrator of a database takes.
 * Advisory locks are per database, so clusters hosting several meshd databases don't contend. */
#define MIGRATE_LOCK_KEY "7882833614980606311"

size_t md_migrations(const struct md_migration **out)
{
    return md__migrations_data(out);
}

/* A dollar-quote tag "$base$" (or "$base_N$") that does not occur in text.  Caller frees. */
static char *dollar_tag(const char *base, const char *text)
{
    char *tag = md_xasprintf("$%s$", base);

    for (int i = 1; strstr(text, tag) != NULL; i++) {
        md_free(tag);
        tag = md_xasprintf("$%s_%d$", base, i);
    }
    return tag;
}

/* name with single quotes doubled, for a standard-conforming string literal.  Caller frees. */
static char *sql_literal_body(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 2 : 1;
    char *out = md_xmalloc(n + 1), *q = out;
    for (const char *p = s; *p; p++) {
        if (*p == '\'')
            *q++ = '\'';
        *q++ = *p;
    }
    *q = '\0';
    return out;
}

char *md_migration_script(const struct md_migration *m)
{
    /* Both tags must be absent from the migration text; the outer one also from the inner. */
    char *itag = dollar_tag("meshd_sql", m->sql);
    char *both = md_xasprintf("%s%s", m->sql, itag);
    char *otag = dollar_tag("meshd_do", both);
    char *name = sql_literal_body(m->name);
    char *script = md_xasprintf(
        "DO %s\n"
        "DECLARE\n"
        "    s constant text := %s%s%s;\n"
        "    old text;\n"
        "BEGIN\n"
        "    PERFORM pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ");\n"
        "    IF to_regclass('meshd_migrations') IS NULL THEN\n"
        "        CREATE TABLE meshd_migrations (\n"
        "            version    integer PRIMARY KEY,\n"
        "            name       text NOT NULL,\n"
        "            checksum   text NOT NULL,\n"
        "            applied_at timestamptz NOT NULL DEFAULT now()\n"
        "        );\n"
        "        COMMENT ON TABLE meshd_migrations IS\n"
        "            'Registry schema migrations applied (meshd md_migrate); checksum = md5 of "
        "the text.';\n"
        "    END IF;\n"
        "    SELECT checksum INTO old FROM meshd_migrations WHERE version = %d;\n"
        "    IF NOT FOUND THEN\n"
        "        EXECUTE s;\n"
        "        INSERT INTO meshd_migrations (version, name, checksum) VALUES (%d, '%s', "
        "md5(s));\n"
        "        PERFORM set_config('meshd.migration', 'applied', true);\n"
        "    ELSIF old = md5(s) THEN\n"
        "        PERFORM set_config('meshd.migration', 'present', true);\n"
        "    ELSE\n"
        "        PERFORM set_config('meshd.migration', 'changed', true);\n"
        "    END IF;\n"
        "END\n"
        "%s;\n"
        "SELECT current_setting('meshd.migration') AS meshd_migration, %d AS version;\n",
        otag, itag, m->sql, itag, m->version, m->version, name, otag, m->version);

    md_free(name);
    md_free(otag);
    md_free(both);
    md_free(itag);
    return script;
}

int md_migration_outcome(const PGresult *res)
{
    const char *v;

    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        PQnfields(res) != 2 || strcmp(PQfname(res, 0), "meshd_migration") != 0)
        return MD_EDB;
    v = PQgetvalue(res, 0, 0);
    if (strcmp(v, "applied") == 0)
        return MD_MIGRATION_APPLIED;
    if (strcmp(v, "present") == 0)
        return MD_MIGRATION_PRESENT;
    if (strcmp(v, "changed") == 0)
        return MD_MIGRATION_CHANGED;
    return MD_EDB;
}

/* The server's message without its trailing newline, into err. */
static int db_error(struct md_error *err, const char *what, const char *msg)
{
    size_t n = strlen(msg);

    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        n--;
    return md_error_set(err, MD_EDB, 0, 0, "%s: %.*s", what, (int)n, msg);
}

/* Marks in applied[] (indexed like the migration list) the versions meshd_migrations holds. */
static int read_applied(PGconn *conn, const struct md_migration *list, size_t n,
                        unsigned char *applied, struct md_error *err)
{
    PGresult *res = PQexec(conn, "SELECT version FROM meshd_migrations");
    int rc = 0;

    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int r = 0; r < PQntuples(res); r++) {
            int v = atoi(PQgetvalue(res, r, 0));
            for (size_t i = 0; i < n; i++)
                if (list[i].version == v)
                    applied[i] = 1;
        }
        goto out;
    }
    /* The table does not exist yet: SQLSTATE 42P01 (undefined_table).  Nothing applied. */
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state == NULL || strcmp(state, "42P01") != 0)
        rc = db_error(err, "reading meshd_migrations", PQerrorMessage(conn));
out:
    PQclear(res);
    return rc;
}

int md_migrate_sync(PGconn *conn, md_migrate_cb cb, void *arg, struct md_error *err)
{
    const struct md_migration *list;
    size_t n = md_migrations(&list);
    unsigned char *applied = md_xcalloc(n, 1);
    int count = 0, rc;

    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        count = md_error_set(err, MD_EDB, 0, 0, "migrate: the connection is not idle");
        goto out;
    }
    rc = read_applied(conn, list, n, applied, err);
    if (rc < 0) {
        count = rc;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (applied[i])
            continue;
        char *script = md_migration_script(&list[i]);
        PGresult *res = PQexec(conn, script); /* the last result: the outcome, or the error */
        md_free(script);
        int outcome = md_migration_outcome(res);
        if (outcome < 0) {
            char what[120];
            snprintf(what, sizeof what, "migration %04d_%s", list[i].version, list[i].name);
            count = db_error(err, what, res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
            if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
                count = md_error_set(err, MD_EDB, 0, 0, "%s: unexpected result", what);
            PQclear(res);
            goto out;
        }
        PQclear(res);
        if (outcome == MD_MIGRATION_APPLIED)
            count++;
        if (cb)
            cb(&list[i], outcome, arg);
    }
out:
    md_free(applied);
    return count;
}
