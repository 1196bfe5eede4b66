/* md_migrate.h - the registry schema's migrations, embedded in every binary.
 *
 * The numbered files sql/NNNN_name.sql are compiled into the binary at build time
 * (cmake/embed_sql.cmake), so an installed meshd needs no sql/ directory.  Each migration is
 * applied by sending the text md_migration_script() builds as ONE simple-protocol query
 * (PQsendQuery / PQexec, never the *Params variants, which refuse several statements).  The
 * script is safe to send again, and from several nodes at once: it takes a transaction-scoped
 * advisory lock, creates the bookkeeping table meshd_migrations if needed, and runs the
 * migration only when its version is not recorded yet -- all in one implicit transaction.
 * docs/registry.md describes the design.
 *
 * The daemon sends the scripts through its non-blocking connection (md_db); meshctl and the
 * tests use md_migrate_sync().
 */
#ifndef MESHD_MD_MIGRATE_H
#define MESHD_MD_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"

/* One embedded migration.  All strings are static. */
struct md_migration {
    int version;      /* from the file name, 1, 2, ...: strictly increasing in the list */
    const char *name; /* "registry" for sql/0001_registry.sql */
    const char *sql;  /* the file's text */
};

/* What a migration script found (the single row of its last result). */
enum md_migration_outcome {
    MD_MIGRATION_APPLIED = 0, /* this script ran the migration and recorded it */
    MD_MIGRATION_PRESENT = 1, /* already recorded (by an earlier run or another node): no-op */
    MD_MIGRATION_CHANGED = 2, /* recorded, but the embedded text differs from what was applied
                                 (its md5 differs): a released migration was edited; no-op */
};

/* Sets *out to the embedded migrations, ordered by version (borrowed, static; never NULL) and
 * returns how many there are.  Any thread, any time. */
size_t md_migrations(const struct md_migration **out);

/* Returns the text that applies m idempotently in one transaction and one round trip (caller
 * frees with md_free).  Send it with PQsendQuery/PQexec: it yields several results, and only the
 * last one matters: pass it to md_migration_outcome().  Any error (the server rolls the whole
 * transaction back) means nothing was applied.  Pure; may be called from a callback. */
char *md_migration_script(const struct md_migration *m);

/* Reads the last result of a migration script (borrowed).  Returns an md_migration_outcome, or
 * MD_EDB when res is not the script's final row (the script failed or res is another result). */
int md_migration_outcome(const PGresult *res);

/* Reported by md_migrate_sync for every migration it looked at: outcome is an
 * md_migration_outcome.  Borrowed m; called synchronously. */
typedef void (*md_migrate_cb)(const struct md_migration *m, int outcome, void *arg);

/* BLOCKING: applies every pending migration in order on conn (borrowed, connected, idle, not in
 * a transaction), one transaction per migration.  For meshctl and tests only -- never call it
 * from the daemon's event loop, which must not block on the database (STYLE.md).  cb (may be
 * NULL) hears about each migration that was not already applied before the call started,
 * with its outcome.  Returns how many migrations this call applied (0: the schema was up to
 * date), or MD_EDB with err->msg set (migrations before the failing one stay applied). */
int md_migrate_sync(PGconn *conn, md_migrate_cb cb, void *arg, struct md_error *err) MD_MUSTCHECK;

#endif
