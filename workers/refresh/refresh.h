/* refresh.h - meshd-refresh's database work: materialized views in dependency order, each under
 * a transaction-level advisory lock, concurrent when it can be, skipped when no input changed;
 * then the configured indexes and VACUUM (ANALYZE)s.  docs/refresh.md is the user's page.
 */
#ifndef MESHD_REFRESH_REFRESH_H
#define MESHD_REFRESH_REFRESH_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"
#include "meshd/md_json.h"
#include "meshd/md_worker.h"
#include "plan.h"

/* The job's config (main.c's key table binds it). */
struct refresh_cfg {
    struct md_worker_db database;  /* url NULL: $DATABASE_URL */
    struct md_strv views;          /* materialized views, as written ("mv_x", "analytics.mv_y") */
    struct md_strv schemas;        /* every materialized view in these schemas */
    uint64_t lock_timeout_ms;      /* per attempt */
    int64_t attempts;              /* 1..10 */
    uint64_t statement_timeout_ms; /* 0: none */
    int64_t parallel;              /* 1..8 connections */
    bool skip_unchanged;
    bool force;
    char *mode_name;        /* "auto", "concurrent" or "plain", as written */
    enum plan_want mode;    /* mode_name, mapped by main.c */
    bool analyze;           /* VACUUM (ANALYZE) a view after a concurrent refresh */
    struct md_strv indexes; /* CREATE INDEX statements, ensured */
    struct md_strv vacuum;  /* tables to VACUUM (ANALYZE) */
};

/* Does the whole job on db (borrowed; more connections are opened through w for parallel > 1).
 * Reports each item over w's status writer.  *summary gets the result summary as JSON text
 * (caller frees with md_free) whenever the work started, also on failure.
 * Returns 0 when every item succeeded or was skipped; MD_EDB when one failed (the others still
 * ran); MD_ECONFIG (err names the key or the cycle) for a config the database contradicts;
 * MD_EDBDOWN when the database went away; -ECANCELED after a stop. */
int refresh_run(struct md_worker *w, PGconn *db, const struct refresh_cfg *cfg, char **summary,
                struct md_error *err) MD_MUSTCHECK;

#endif
