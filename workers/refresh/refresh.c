/* refresh.c - meshd-refresh's database work (refresh.h).
 *
 * One view, one transaction:
 *
 *   BEGIN
 *   pg_try_advisory_xact_lock(KEYSPACE, view oid)   false: another run has it -> skipped: locked
 *   read the catalogs (concurrent or plain), the input counters and the stored state
 *   nothing moved -> ROLLBACK, skipped: unchanged
 *   REFRESH MATERIALIZED VIEW [CONCURRENTLY] v      55P03 (lock_timeout) -> ROLLBACK, back off,
 *   SELECT count(*) FROM v                                              try again
 *   upsert meshd_refresh.view_state
 *   COMMIT
 *   VACUUM (ANALYZE) v    after a concurrent refresh: VACUUM cannot run in a transaction block
 *
 * REFRESH ... CONCURRENTLY is allowed inside a transaction block (PostgreSQL 15; checked), so the
 * lock, the refresh and its state commit or roll back together: a stop (the query cancelled,
 * or the process killed) leaves the view and its state as they were.  The advisory lock is
 * transaction-level, so no exit path can leave it held.
 */
#include "refresh.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_status.h"
#include "meshd/md_time.h"
#include "plan.h"

/* The first key of every advisory lock this worker takes ("mrfx"); the second is the view's
 * oid, or 0 for the schema set-up.  Other programs using two-key advisory locks stay clear of
 * it unless they pick the same first key. */
#define KEYSPACE 0x6d726678

/* The embedded sql/workers/refresh.sql (cmake/embed_file.cmake). */
extern const unsigned char refresh_schema_sql[];
extern const size_t refresh_schema_sql_len;

enum outcome { OUT_PENDING, OUT_RUNNING, OUT_REFRESHED, OUT_SKIPPED, OUT_FAILED };

/* Skip reasons that decide what happens downstream (upstream_blocks), compared by address. */
static const char REASON_LOCKED[] = "locked (another run is refreshing it)";
static const char REASON_UP_LOCKED[] = "upstream locked (another run is refreshing it)";
static const char REASON_UP_FAILED[] = "upstream failed";

static const char *outcome_name(enum outcome o)
{
    switch (o) {
    case OUT_REFRESHED:
        return "refreshed";
    case OUT_SKIPPED:
        return "skipped";
    case OUT_FAILED:
        return "failed";
    default:
        return "not run";
    }
}

struct rview {
    char name[PLAN_IDENT_MAX * 5]; /* format('%I.%I'): safe to paste into SQL */
    uint32_t oid;
    bool listed;  /* named by views: or schemas:, not only an upstream */
    size_t *deps; /* upstream materialized views (indexes into rctx.v) */
    size_t ndeps;
    /* the outcome */
    enum outcome out;
    const char *reason; /* static */
    enum plan_mode mode;
    const char *plain_why; /* static; NULL when concurrent */
    bool warn_plain;       /* plain, not because the config said so (plan_mode_choice) */
    char null_cols[160];   /* concurrent with NULL keys: the columns */
    double seconds;
    int64_t rows;
    int attempts;
    int rc;
    char error[200];
    char warning[240];
};

struct ritem {
    char name[PLAN_IDENT_MAX * 5];
    enum outcome out;
    const char *what; /* static: created, exists, rebuilt, vacuumed */
    double seconds;
    char error[200];
    char warning[240];
};

struct rctx {
    struct md_worker *w;
    const struct refresh_cfg *cfg;
    struct rview *v;
    size_t n;
    size_t *order;
    pthread_mutex_t mu; /* the views' outcomes, the status writer */
    pthread_cond_t cv;  /* a view finished */
    struct plan_index_stmt *idx;
    struct ritem *idx_items;
    size_t nidx;
    struct ritem *vac;
    size_t nvac;
};

static int64_t now_ms(void)
{
    return md_time_clock_ms(CLOCK_MONOTONIC);
}

static int exec0(PGconn *c, const char *sql, struct md_error *err)
{
    return md_pq_exec(c, sql, 0, NULL, NULL, err);
}

static void rollback(PGconn *c)
{
    struct md_error ignored = {0};
    (void)exec0(c, "ROLLBACK", &ignored);
}

/* Sleeps ms, in slices, returning early once a stop arrived. */
static void nap(uint64_t ms)
{
    while (ms > 0 && !md_worker_stopping()) {
        uint64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* ---- set-up --------------------------------------------------------------------------------- */

/* lock_timeout and statement_timeout for the session: every attempt is bounded by them. */
static int session_setup(PGconn *c, const struct refresh_cfg *cfg, struct md_error *err)
{
    char lt[32], st[32];
    const char *params[] = {lt, st};

    snprintf(lt, sizeof lt, "%" PRIu64 "ms", cfg->lock_timeout_ms);
    snprintf(st, sizeof st, "%" PRIu64 "ms", cfg->statement_timeout_ms);
    return md_pq_exec(c,
                      "SELECT set_config('lock_timeout', $1, false), "
                      "set_config('statement_timeout', $2, false)",
                      2, params, NULL, err);
}

static int schema_apply(PGconn *c, struct md_error *err)
{
    return md_worker_apply_sql(c, (const char *)refresh_schema_sql, KEYSPACE, err);
}

/* ---- which views ---------------------------------------------------------------------------- */

static size_t view_find(const struct rctx *x, uint32_t oid)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->v[i].oid == oid)
            return i;
    return x->n;
}

/* Adds a view (once); returns its index, or x->n when over the cap. */
static size_t view_add(struct rctx *x, uint32_t oid, const char *name, bool listed)
{
    size_t i = view_find(x, oid);

    if (i < x->n) {
        x->v[i].listed |= listed;
        return i;
    }
    if (x->n == PLAN_MAX_VIEWS)
        return x->n;
    x->v[i] = (struct rview){.oid = oid, .listed = listed, .out = OUT_PENDING};
    snprintf(x->v[i].name, sizeof x->v[i].name, "%s", name);
    x->n++;
    return i;
}

static int too_many(struct md_error *err)
{
    return md_error_set(err, MD_ECONFIG, 0, 0,
                        "more than %d materialized views (with their upstream) in one job",
                        PLAN_MAX_VIEWS);
}

static const char SQL_RESOLVE[] = "SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relkind "
                                  "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                  "WHERE c.oid = to_regclass($1)";

static int resolve_listed(struct rctx *x, PGconn *c, struct md_error *err)
{
    for (size_t i = 0; i < x->cfg->views.n; i++) {
        const char *name = x->cfg->views.v[i];
        PGresult *res = NULL;
        struct md_error qerr = {0};
        int rc = md_pq_exec(c, SQL_RESOLVE, 1, &name, &res, &qerr);

        if (rc == MD_ESQL) /* invalid name syntax */
            return md_error_set(err, MD_ECONFIG, 0, 0, "views[%zu]: %s", i, qerr.msg);
        if (rc < 0) {
            *err = qerr;
            return rc;
        }
        if (PQntuples(res) == 0 || PQgetvalue(res, 0, 2)[0] != 'm') {
            bool missing = PQntuples(res) == 0;
            PQclear(res);
            return md_error_set(
                err, MD_ECONFIG, 0, 0, "views[%zu]: %s \"%s\"", i,
                missing ? "no such materialized view" : "not a materialized view:", name);
        }
        rc = view_add(x, (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10), PQgetvalue(res, 0, 1),
                      true) == x->n
                 ? too_many(err)
                 : 0;
        PQclear(res);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int resolve_schemas(struct rctx *x, PGconn *c, struct md_error *err)
{
    for (size_t i = 0; i < x->cfg->schemas.n; i++) {
        const char *name = x->cfg->schemas.v[i];
        PGresult *res = NULL;
        int rc = md_pq_exec(c,
                            "SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relkind "
                            "FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid "
                            "AND c.relkind = 'm' WHERE n.nspname = $1 ORDER BY c.relname",
                            1, &name, &res, err);
        if (rc < 0)
            return rc;
        if (PQntuples(res) == 0) {
            PQclear(res);
            return md_error_set(err, MD_ECONFIG, 0, 0, "schemas[%zu]: no schema \"%s\"", i, name);
        }
        for (int r = 0; r < PQntuples(res) && rc == 0; r++) {
            if (PQgetisnull(res, r, 0))
                continue; /* a schema without materialized views */
            if (view_add(x, (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10),
                         PQgetvalue(res, r, 1), true) == x->n)
                rc = too_many(err);
        }
        PQclear(res);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The recursive step both walks share: from a relation's rewrite rule to what it reads; each
 * walk adds its WHERE (which relations it goes on through) and closes the CTE. */
#define SQL_WALK_FROM_RULES                                                                        \
    "WITH RECURSIVE walk(oid, kind) AS ("                                                          \
    " SELECT $1::oid, 'm'::\"char\""                                                               \
    " UNION"                                                                                       \
    " SELECT d.refobjid, c.relkind FROM walk w"                                                    \
    " JOIN pg_rewrite r ON r.ev_class = w.oid"                                                     \
    " JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid"                  \
    "  AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> w.oid"                            \
    " JOIN pg_class c ON c.oid = d.refobjid"

/* The materialized views $1 reads, directly or through plain views (recursively): the walk
 * goes from a rewrite rule to the relations it depends on, and on only through plain views, so
 * an upstream materialized view ends it (its own upstream is found when it is walked). */
static const char SQL_UPSTREAM[] = SQL_WALK_FROM_RULES
    " WHERE w.oid = $1::oid OR w.kind = 'v')"
    " SELECT w.oid, format('%I.%I', n.nspname, c.relname) FROM walk w"
    " JOIN pg_class c ON c.oid = w.oid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE w.kind = 'm' AND w.oid <> $1::oid ORDER BY 2";

static int upstream_add(struct rctx *x, size_t i, PGresult *res, struct md_error *err)
{
    int rows = PQntuples(res);

    x->v[i].deps = md_xcalloc(rows ? (size_t)rows : 1, sizeof *x->v[i].deps);
    for (int r = 0; r < rows; r++) {
        size_t d = view_add(x, (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10),
                            PQgetvalue(res, r, 1), false);
        if (d == x->n)
            return too_many(err);
        x->v[i].deps[x->v[i].ndeps++] = d;
    }
    return 0;
}

/* Walks every view's upstream; views found on the way are appended and walked in turn, so
 * unlisted upstream views join the job (they are refreshed too, first). */
static int discover(struct rctx *x, PGconn *c, struct md_error *err)
{
    for (size_t i = 0; i < x->n; i++) {
        char oid[16];
        const char *p = oid;
        PGresult *res = NULL;
        int rc;

        snprintf(oid, sizeof oid, "%" PRIu32, x->v[i].oid);
        if ((rc = md_pq_exec(c, SQL_UPSTREAM, 1, &p, &res, err)) < 0)
            return rc;
        rc = upstream_add(x, i, res, err);
        PQclear(res);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int order_views(struct rctx *x, struct md_error *err)
{
    struct plan_view *pv = md_xcalloc(x->n ? x->n : 1, sizeof *pv);
    int rc;

    for (size_t i = 0; i < x->n; i++)
        pv[i] = (struct plan_view){x->v[i].name, x->v[i].deps, x->v[i].ndeps};
    x->order = md_xcalloc(x->n ? x->n : 1, sizeof *x->order);
    rc = plan_order(pv, x->n, x->order, err);
    md_free(pv);
    return rc;
}

/* The tables of vacuum:, resolved now so a typo is a config error before any work. */
static int resolve_vacuum(struct rctx *x, PGconn *c, struct md_error *err)
{
    x->nvac = x->cfg->vacuum.n;
    x->vac = md_xcalloc(x->nvac ? x->nvac : 1, sizeof *x->vac);
    for (size_t i = 0; i < x->nvac; i++) {
        const char *name = x->cfg->vacuum.v[i];
        PGresult *res = NULL;
        struct md_error qerr = {0};
        int rc = md_pq_exec(c, "SELECT to_regclass($1)::text", 1, &name, &res, &qerr);

        if (rc == MD_ESQL)
            return md_error_set(err, MD_ECONFIG, 0, 0, "vacuum[%zu]: %s", i, qerr.msg);
        if (rc < 0) {
            *err = qerr;
            return rc;
        }
        if (PQgetisnull(res, 0, 0)) {
            PQclear(res);
            return md_error_set(err, MD_ECONFIG, 0, 0, "vacuum[%zu]: no table \"%s\"", i, name);
        }
        snprintf(x->vac[i].name, sizeof x->vac[i].name, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return 0;
}

static int parse_indexes(struct rctx *x, struct md_error *err)
{
    x->nidx = x->cfg->indexes.n;
    x->idx = md_xcalloc(x->nidx ? x->nidx : 1, sizeof *x->idx);
    x->idx_items = md_xcalloc(x->nidx ? x->nidx : 1, sizeof *x->idx_items);
    for (size_t i = 0; i < x->nidx; i++) {
        struct md_error perr = {0};
        if (plan_index_parse(x->cfg->indexes.v[i], &x->idx[i], &perr) < 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "indexes[%zu]: %s", i, perr.msg);
        snprintf(x->idx_items[i].name, sizeof x->idx_items[i].name, "%s", x->idx[i].name);
    }
    return 0;
}

/* ---- status --------------------------------------------------------------------------------- */

/* Metrics "refresh.<item>.<what>"; the caller holds x->mu. */
static void metric(struct rctx *x, const char *item, const char *what, double value)
{
    char name[MD_STATUS_NAME_MAX + 1];
    int n = snprintf(name, sizeof name, "refresh.%s.%s", item, what);
    if (n > 0 && n < MD_STATUS_NAME_MAX)
        (void)md_status_metric(&x->w->st, name, value);
}

/* The alert "refresh.<item>" on failure, its resolve on success (meshd ignores a resolve of a
 * key it has no open alert for).  The caller holds x->mu. */
static void alert_or_resolve(struct rctx *x, const char *item, bool failed, const char *msg)
{
    char key[MD_STATUS_NAME_MAX + 1];
    int n = snprintf(key, sizeof key, "refresh.%s", item);

    if (n <= 0 || n >= MD_STATUS_NAME_MAX)
        return;
    if (failed)
        (void)md_status_alert(&x->w->st, MD_SEV_CRITICAL, key, msg);
    else
        (void)md_status_resolve(&x->w->st, key);
}

static void view_report(struct rctx *x, const struct rview *v)
{
    char msg[640] = "";

    metric(x, v->name, "skipped", v->out == OUT_SKIPPED ? 1 : 0);
    if (v->out == OUT_REFRESHED) {
        metric(x, v->name, "seconds", v->seconds);
        metric(x, v->name, "rows", (double)v->rows);
        md_log(MD_LOG_INFO, "%s: refreshed (%s, %s): %" PRId64 " rows in %.3f s", v->name,
               v->mode == PLAN_CONCURRENT ? "concurrently" : "plain", v->reason, v->rows,
               v->seconds);
    } else if (v->out == OUT_SKIPPED) {
        md_log(MD_LOG_INFO, "%s: skipped: %s", v->name, v->reason);
    } else if (v->out == OUT_FAILED) {
        snprintf(msg, sizeof msg, "refresh of %s failed after %d attempt(s): %s", v->name,
                 v->attempts, v->error);
        md_log(MD_LOG_ERROR, "%s", msg);
    }
    if (v->out == OUT_REFRESHED || v->out == OUT_FAILED)
        alert_or_resolve(x, v->name, v->out == OUT_FAILED, msg);
    (void)md_worker_tick(x->w);
}

/* ---- one view ------------------------------------------------------------------------------- */

static const char SQL_MODE[] =
    "SELECT c.relispopulated, count(i.indexrelid),"
    " coalesce(bool_or(k.nulls IS NULL) FILTER (WHERE i.indexrelid IS NOT NULL), false),"
    " min(k.nulls)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisunique AND i.indisvalid"
    "  AND i.indpred IS NULL AND i.indexprs IS NULL"
    " LEFT JOIN LATERAL (SELECT string_agg(quote_ident(a.attname::text), ', ' ORDER BY a.attnum)"
    "  AS nulls FROM pg_attribute a JOIN pg_stats s ON s.schemaname = n.nspname"
    "  AND s.tablename = c.relname AND s.attname = a.attname"
    "  WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey::int2[]) AND s.null_frac > 0) k"
    "  ON true"
    " WHERE c.oid = $1::oid GROUP BY c.relispopulated";

static int read_mode(PGconn *c, enum plan_want x_want, const char *oid, struct rview *v,
                     bool *populated, struct md_error *err)
{
    PGresult *res = NULL;
    struct plan_mode_facts f = {0};
    struct plan_mode_choice ch;
    int rc = md_pq_exec(c, SQL_MODE, 1, &oid, &res, err);

    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return md_error_set(err, MD_EDB, 0, 0, "%s is gone", v->name);
    }
    f.populated = PQgetvalue(res, 0, 0)[0] == 't';
    f.unique_indexes = atoi(PQgetvalue(res, 0, 1));
    f.clean_key = PQgetvalue(res, 0, 2)[0] == 't';
    f.null_cols = PQgetisnull(res, 0, 3) ? NULL : PQgetvalue(res, 0, 3);
    f.want = x_want;
    plan_choose_mode(&f, &ch);
    if (ch.refuse) {
        PQclear(res);
        return md_error_set(err, MD_EDB, 0, 0,
                            "mode: concurrent, and %s cannot refresh concurrently: %s", v->name,
                            ch.why);
    }
    v->mode = ch.mode;
    v->plain_why = ch.why;
    v->warn_plain = ch.warn_plain;
    if (ch.null_warn)
        snprintf(v->null_cols, sizeof v->null_cols, "%s", f.null_cols ? f.null_cols : "?");
    *populated = f.populated;
    PQclear(res);
    return 0;
}

/* The counters of every leaf table $1 reads: the walk of SQL_UPSTREAM, going on through
 * upstream materialized views too, and partitioned tables expanded to their partitions (their
 * counters are kept per partition; pg_partition_tree gives nothing for a plain table).  One
 * row more than the cap says "too many". */
static const char SQL_INPUTS[] = SQL_WALK_FROM_RULES
    " WHERE w.kind IN ('v', 'm'))"
    " SELECT DISTINCT c.oid, c.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del"
    " FROM walk w CROSS JOIN LATERAL ("
    "  SELECT w.oid AS relid WHERE w.kind IN ('r', 'f')"
    "  UNION ALL SELECT p.relid FROM pg_partition_tree(w.oid) p WHERE w.kind = 'p' AND p.isleaf"
    " ) l JOIN pg_class c ON c.oid = l.relid"
    " LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid"
    " ORDER BY c.oid LIMIT 129";

static int read_inputs(PGconn *c, const char *oid, struct plan_inputs *in, char *reset,
                       size_t resetcap, bool *has_reset, struct md_error *err)
{
    PGresult *res = NULL;
    int rc = md_pq_exec(c, SQL_INPUTS, 1, &oid, &res, err);

    if (rc < 0)
        return rc;
    in->n = 0;
    in->opaque = PQntuples(res) > PLAN_MAX_INPUTS;
    for (int r = 0; r < PQntuples(res) && !in->opaque; r++) {
        if (PQgetisnull(res, r, 2)) {
            in->opaque = true; /* a foreign table: no counters */
            break;
        }
        in->v[in->n++] = (struct plan_input){(uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10),
                                             (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10),
                                             strtoll(PQgetvalue(res, r, 2), NULL, 10),
                                             strtoll(PQgetvalue(res, r, 3), NULL, 10),
                                             strtoll(PQgetvalue(res, r, 4), NULL, 10)};
    }
    PQclear(res);
    if ((rc = md_pq_exec(c,
                         "SELECT stats_reset::text FROM pg_stat_database "
                         "WHERE datname = current_database()",
                         0, NULL, &res, err)) < 0)
        return rc;
    *has_reset = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    snprintf(reset, resetcap, "%s", *has_reset ? PQgetvalue(res, 0, 0) : "");
    PQclear(res);
    return 0;
}

/* The state of the last successful refresh; *has false when none (or unreadable). */
static int read_state(PGconn *c, const struct rview *v, bool *has, uint32_t *oid, char *reset,
                      size_t resetcap, bool *has_reset, struct plan_inputs *in,
                      struct md_error *err)
{
    PGresult *res = NULL;
    const char *name = v->name;
    int rc = md_pq_exec(c,
                        "SELECT view_oid, stats_reset, inputs FROM meshd_refresh.view_state "
                        "WHERE view_name = $1",
                        1, &name, &res, err);
    if (rc < 0)
        return rc;
    *has = PQntuples(res) == 1 && plan_inputs_parse(PQgetvalue(res, 0, 2), in) == 0;
    if (*has) {
        *oid = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
        *has_reset = !PQgetisnull(res, 0, 1);
        snprintf(reset, resetcap, "%s", *has_reset ? PQgetvalue(res, 0, 1) : "");
    }
    PQclear(res);
    return 0;
}

static int save_state(struct rctx *x, PGconn *c, const struct rview *v, const char *oid,
                      const struct plan_inputs *in, const char *reset, struct md_error *err)
{
    struct md_buf b;
    char secs[32], rows[32];
    const char *params[8];
    int rc;

    md_buf_init(&b, (size_t)PLAN_MAX_INPUTS * 80 + 16);
    if (!plan_inputs_format(in, &b)) {
        md_buf_free(&b);
        md_buf_init(&b, 16);
        (void)md_buf_puts(&b, "opaque");
    }
    snprintf(secs, sizeof secs, "%.6f", v->seconds);
    snprintf(rows, sizeof rows, "%" PRId64, v->rows);
    params[0] = v->name;
    params[1] = oid;
    params[2] = reset[0] ? reset : NULL; /* never reset: NULL, as read_state reads it back */
    params[3] = md_buf_str(&b);
    params[4] = v->mode == PLAN_CONCURRENT ? "concurrent" : "plain";
    params[5] = secs;
    params[6] = rows;
    params[7] = x->w->run_id ? x->w->run_id : "";
    rc = md_pq_exec(c,
                    "INSERT INTO meshd_refresh.view_state AS s (view_name, view_oid, stats_reset,"
                    " inputs, mode, seconds, rows, run_id, refreshed_at)"
                    " VALUES ($1, $2::oid, $3, $4, $5, $6::float8, $7::bigint, $8, now())"
                    " ON CONFLICT (view_name) DO UPDATE SET view_oid = EXCLUDED.view_oid,"
                    " stats_reset = EXCLUDED.stats_reset, inputs = EXCLUDED.inputs,"
                    " mode = EXCLUDED.mode, seconds = EXCLUDED.seconds, rows = EXCLUDED.rows,"
                    " run_id = EXCLUDED.run_id, refreshed_at = EXCLUDED.refreshed_at",
                    8, params, NULL, err);
    md_buf_free(&b);
    return rc;
}

/* Whether to skip, from the counters now and the stored state (plan_skip); refreshing, the
 * counters now are kept in *now for save_state. */
static int decide_skip(struct rctx *x, PGconn *c, struct rview *v, const char *oid, bool populated,
                       struct plan_inputs *now, char *reset, size_t resetcap, bool *skip,
                       struct md_error *err)
{
    struct plan_inputs *stored = md_xcalloc(1, sizeof *stored);
    char sreset[64] = "";
    bool has_reset = false, has_sreset = false, has_state = false;
    uint32_t soid = 0;
    struct plan_skip_facts f;
    int rc;

    if ((rc = read_inputs(c, oid, now, reset, resetcap, &has_reset, err)) < 0 ||
        (rc = read_state(c, v, &has_state, &soid, sreset, sizeof sreset, &has_sreset, stored,
                         err)) < 0)
        goto out;
    f = (struct plan_skip_facts){
        .force = x->cfg->force,
        .skip_unchanged = x->cfg->skip_unchanged,
        .populated = populated,
        .has_state = has_state,
        .view_oid = v->oid,
        .stored_view_oid = soid,
        .stats_reset = has_reset ? reset : NULL,
        .stored_stats_reset = has_sreset ? sreset : NULL,
        .now = now,
        .stored = stored,
    };
    *skip = plan_skip(&f, &v->reason);
out:
    md_free(stored);
    return rc;
}

static int count_rows(PGconn *c, struct rview *v, struct md_error *err)
{
    char *sql = md_xasprintf("SELECT count(*) FROM %s", v->name);
    PGresult *res = NULL;
    int rc = md_pq_exec(c, sql, 0, NULL, &res, err);

    md_free(sql);
    if (rc < 0)
        return rc;
    v->rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* One attempt, one transaction (see the top of the file).  Returns 0 with v->out set, or a
 * code with err filled (the transaction rolled back). */
static int view_attempt(struct rctx *x, PGconn *c, struct rview *v, struct md_error *err)
{
    char oid[16], reset[64] = "";
    const char *params[2];
    char keyspace[16], key[16];
    struct plan_inputs *now = md_xcalloc(1, sizeof *now);
    PGresult *res = NULL;
    bool populated = false, skip = false, got;
    char *sql = NULL;
    int64_t t0;
    int rc;

    snprintf(oid, sizeof oid, "%" PRIu32, v->oid);
    snprintf(keyspace, sizeof keyspace, "%d", KEYSPACE);
    snprintf(key, sizeof key, "%" PRId32, (int32_t)v->oid);
    params[0] = keyspace;
    params[1] = key;
    if ((rc = exec0(c, "BEGIN", err)) < 0)
        goto out;
    if ((rc = md_pq_exec(c, "SELECT pg_try_advisory_xact_lock($1::int, $2::int)", 2, params, &res,
                         err)) < 0)
        goto fail;
    got = PQgetvalue(res, 0, 0)[0] == 't';
    PQclear(res);
    if (!got) {
        v->out = OUT_SKIPPED;
        v->reason = REASON_LOCKED;
        goto fail; /* rc is 0: nothing failed, the transaction just ends */
    }
    if ((rc = read_mode(c, x->cfg->mode, oid, v, &populated, err)) < 0 ||
        (rc = decide_skip(x, c, v, oid, populated, now, reset, sizeof reset, &skip, err)) < 0)
        goto fail;
    if (skip) {
        v->out = OUT_SKIPPED;
        goto fail;
    }
    sql = md_xasprintf("REFRESH MATERIALIZED VIEW %s%s",
                       v->mode == PLAN_CONCURRENT ? "CONCURRENTLY " : "", v->name);
    t0 = now_ms();
    if ((rc = exec0(c, sql, err)) < 0)
        goto fail;
    v->seconds = (double)(now_ms() - t0) / 1000.0;
    if ((rc = count_rows(c, v, err)) < 0 || (rc = save_state(x, c, v, oid, now, reset, err)) < 0 ||
        (rc = exec0(c, "COMMIT", err)) < 0)
        goto fail;
    v->out = OUT_REFRESHED;
    goto out;
fail:
    rollback(c);
out:
    md_free(sql);
    md_free(now);
    return rc;
}

/* VACUUM (ANALYZE) after a concurrent refresh: its DELETE + INSERT diff leaves dead rows (and
 * refreshes pg_stats, which the NULL-key check reads).  A failure is a warning only. */
static void view_vacuum(PGconn *c, struct rview *v)
{
    struct md_error err = {0};
    char *sql = md_xasprintf("VACUUM (ANALYZE) %s", v->name);

    if (exec0(c, sql, &err) < 0) {
        snprintf(v->warning, sizeof v->warning, "VACUUM (ANALYZE) failed: %s", err.msg);
        md_log(MD_LOG_WARN, "%s: %s", v->name, v->warning);
    }
    md_free(sql);
}

/* The backoff after a lock_timeout: 1 s, 2 s, 4 s ... at most 30 s. */
static uint64_t backoff_ms(int attempt)
{
    uint64_t ms = 1000ULL << (attempt > 5 ? 5 : attempt - 1);
    return ms > 30000 ? 30000 : ms;
}

static void view_warn_mode(const struct rview *v)
{
    if (v->mode == PLAN_PLAIN && v->warn_plain)
        md_log(MD_LOG_WARN,
               "%s: plain refresh (readers wait for it): %s; a unique index on plain columns "
               "lets it refresh concurrently",
               v->name, v->plain_why);
    if (v->null_cols[0])
        md_log(MD_LOG_WARN,
               "%s: the unique key column(s) %s hold NULLs: every concurrent refresh deletes "
               "and inserts those rows again",
               v->name, v->null_cols);
}

static void view_run(struct rctx *x, PGconn *c, struct rview *v)
{
    struct md_error err = {0};

    if (!v->listed)
        md_log(MD_LOG_INFO, "%s: upstream of a listed view: refreshed first", v->name);
    for (int attempt = 1;; attempt++) {
        v->attempts = attempt;
        v->out = OUT_RUNNING;
        err = (struct md_error){0};
        v->rc = view_attempt(x, c, v, &err);
        if (attempt == 1 && v->rc == 0 && v->out == OUT_REFRESHED)
            view_warn_mode(v);
        if (v->rc != MD_ELOCKED || attempt >= x->cfg->attempts || md_worker_stopping())
            break;
        md_log(MD_LOG_WARN, "%s: attempt %d of %" PRId64 ": %s; trying again in %" PRIu64 " ms",
               v->name, attempt, x->cfg->attempts, err.msg, backoff_ms(attempt));
        nap(backoff_ms(attempt));
    }
    if (v->rc < 0 && md_worker_stopping())
        v->rc = -ECANCELED; /* stopped during the backoff, or the cancel raced the error */
    if (v->rc == -ECANCELED) {
        /* A stop, not a failure: no alert; the transaction rolled back. */
        v->out = OUT_SKIPPED;
        v->reason = "stopped";
        return;
    }
    if (v->rc < 0) {
        v->out = OUT_FAILED;
        v->reason = v->rc == MD_ELOCKED ? "lock_timeout" : "error";
        snprintf(v->error, sizeof v->error, "%s", err.msg);
        return;
    }
    if (v->out == OUT_REFRESHED && v->mode == PLAN_CONCURRENT && x->cfg->analyze)
        view_vacuum(c, v);
}

/* ---- the views, on one or more connections -------------------------------------------------- */

/* Why a view must not be refreshed after its upstream: NULL when it may.
 *
 * An upstream that failed leaves stale data to read.  An upstream another run holds locked is
 * being refreshed right now: refreshing this view before that commits would read the old data
 * and yet record the input counters as seen, so no later run would refresh it again for those
 * writes.  Either way the view is skipped, and its own counters still differ from the stored ones
 * at the next run.  Both travel down the chain. */
static const char *upstream_blocks(const struct rctx *x, const struct rview *v)
{
    for (size_t d = 0; d < v->ndeps; d++) {
        const struct rview *u = &x->v[v->deps[d]];
        if (u->out == OUT_FAILED || (u->out == OUT_SKIPPED && u->reason == REASON_UP_FAILED))
            return REASON_UP_FAILED;
        if (u->out == OUT_SKIPPED && (u->reason == REASON_LOCKED || u->reason == REASON_UP_LOCKED))
            return REASON_UP_LOCKED;
    }
    return NULL;
}

static bool deps_done(const struct rctx *x, const struct rview *v)
{
    for (size_t d = 0; d < v->ndeps; d++)
        if (x->v[v->deps[d]].out <= OUT_RUNNING)
            return false;
    return true;
}

/* The next view whose dependencies are all done, in plan order; NULL when none is ready
 * (*pending tells whether some are waiting).  The caller holds x->mu. */
static struct rview *next_ready(struct rctx *x, bool *pending)
{
    *pending = false;
    for (size_t i = 0; i < x->n; i++) {
        struct rview *v = &x->v[x->order[i]];
        if (v->out != OUT_PENDING)
            continue;
        if (md_worker_stopping()) {
            v->out = OUT_SKIPPED;
            v->reason = "stopping";
            continue;
        }
        if (!deps_done(x, v)) {
            *pending = true;
            continue;
        }
        if ((v->reason = upstream_blocks(x, v)) != NULL) {
            v->out = OUT_SKIPPED;
            view_report(x, v);
            continue;
        }
        return v;
    }
    return NULL;
}

struct rthread {
    struct rctx *x;
    PGconn *c;
    pthread_t tid;
    bool started;
};

static void *views_loop(void *arg)
{
    struct rthread *t = arg;
    struct rctx *x = t->x;
    bool pending;

    pthread_mutex_lock(&x->mu);
    for (;;) {
        struct rview *v = next_ready(x, &pending);
        if (v) {
            v->out = OUT_RUNNING;
            pthread_mutex_unlock(&x->mu);
            view_run(x, t->c, v);
            pthread_mutex_lock(&x->mu);
            view_report(x, v);
            pthread_cond_broadcast(&x->cv);
            continue;
        }
        if (!pending)
            break;
        pthread_cond_wait(&x->cv, &x->mu);
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
    return NULL;
}

/* Opens the extra connections first, in this thread (md_worker_connect registers each for
 * cancellation), then runs views_loop on each. */
static int run_views(struct rctx *x, PGconn *db, struct md_error *err)
{
    size_t nt = (size_t)x->cfg->parallel;
    struct rthread *t;
    int rc = 0;

    if (nt > x->n)
        nt = x->n ? x->n : 1;
    t = md_xcalloc(nt, sizeof *t);
    t[0] = (struct rthread){.x = x, .c = db};
    for (size_t i = 1; i < nt && rc == 0; i++) {
        t[i].x = x;
        if ((rc = md_worker_connect(x->w, x->cfg->database.url, &t[i].c, err)) == 0)
            rc = session_setup(t[i].c, x->cfg, err);
    }
    if (rc == 0) {
        /* A thread that cannot start leaves its share to the others. */
        for (size_t i = 1; i < nt; i++)
            t[i].started = pthread_create(&t[i].tid, NULL, views_loop, &t[i]) == 0;
        (void)views_loop(&t[0]);
        for (size_t i = 1; i < nt; i++)
            if (t[i].started)
                pthread_join(t[i].tid, NULL);
    }
    for (size_t i = 1; i < nt; i++)
        md_worker_disconnect(t[i].c);
    md_free(t);
    return rc;
}

/* ---- indexes and vacuum --------------------------------------------------------------------- */

static const char SQL_INDEX[] =
    "SELECT i.indisvalid, format('%I.%I', n.nspname, ic.relname), coalesce(s.idx_scan, 0)"
    " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
    " JOIN pg_namespace n ON n.oid = ic.relnamespace"
    " LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = i.indexrelid"
    " WHERE i.indrelid = to_regclass($1) AND ic.relname = $2";

/* Ensures one index: created when missing; an INVALID one (left by a failed CREATE INDEX
 * CONCURRENTLY, which IF NOT EXISTS would then silently keep) dropped and built again.  Runs
 * outside a transaction: CREATE/DROP INDEX CONCURRENTLY cannot run inside one. */
static int index_ensure(struct rctx *x, PGconn *c, size_t i, struct md_error *err)
{
    struct ritem *it = &x->idx_items[i];
    const char *params[] = {x->idx[i].table, x->idx[i].name};
    PGresult *res = NULL;
    int64_t t0 = now_ms();
    int rc = md_pq_exec(c, SQL_INDEX, 2, params, &res, err);

    if (rc < 0)
        return rc;
    if (PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't') {
        it->what = "exists";
        if (strcmp(PQgetvalue(res, 0, 2), "0") == 0)
            snprintf(it->warning, sizeof it->warning, "never used (idx_scan = 0)");
        PQclear(res);
        return 0;
    }
    if (PQntuples(res) == 1) {
        char *drop = md_xasprintf("DROP INDEX CONCURRENTLY IF EXISTS %s", PQgetvalue(res, 0, 1));
        md_log(MD_LOG_WARN,
               "index %s is INVALID (a failed concurrent build): dropping it and "
               "building it again",
               PQgetvalue(res, 0, 1));
        rc = exec0(c, drop, err);
        md_free(drop);
        it->what = "rebuilt";
        snprintf(it->warning, sizeof it->warning, "was INVALID");
    } else {
        it->what = "created";
    }
    PQclear(res);
    if (rc == 0 && (rc = exec0(c, x->cfg->indexes.v[i], err)) == 0)
        it->seconds = (double)(now_ms() - t0) / 1000.0;
    return rc;
}

static void item_report(struct rctx *x, const char *kind, struct ritem *it, int rc,
                        const struct md_error *err)
{
    char item[PLAN_IDENT_MAX * 6];

    snprintf(item, sizeof item, "%s.%s", kind, it->name);
    it->out = rc < 0 ? OUT_FAILED : OUT_REFRESHED;
    if (rc < 0)
        snprintf(it->error, sizeof it->error, "%s", err->msg);
    pthread_mutex_lock(&x->mu);
    metric(x, item, "seconds", it->seconds);
    alert_or_resolve(x, item, rc < 0, it->error);
    (void)md_worker_tick(x->w);
    pthread_mutex_unlock(&x->mu);
    if (rc < 0)
        md_log(MD_LOG_ERROR, "%s %s failed: %s", kind, it->name, it->error);
    else if (it->warning[0])
        md_log(MD_LOG_WARN, "%s %s: %s: %s", kind, it->name, it->what, it->warning);
    else
        md_log(MD_LOG_INFO, "%s %s: %s", kind, it->name, it->what);
}

static int run_indexes(struct rctx *x, PGconn *c)
{
    for (size_t i = 0; i < x->nidx && !md_worker_stopping(); i++) {
        struct md_error err = {0};
        int rc = index_ensure(x, c, i, &err);
        if (rc == -ECANCELED || rc == MD_EDBDOWN)
            return rc;
        item_report(x, "index", &x->idx_items[i], rc, &err);
    }
    return 0;
}

static int run_vacuum(struct rctx *x, PGconn *c)
{
    for (size_t i = 0; i < x->nvac && !md_worker_stopping(); i++) {
        struct md_error err = {0};
        char *sql = md_xasprintf("VACUUM (ANALYZE) %s", x->vac[i].name);
        int64_t t0 = now_ms();
        int rc = exec0(c, sql, &err);

        md_free(sql);
        if (rc == -ECANCELED || rc == MD_EDBDOWN)
            return rc;
        x->vac[i].what = "vacuumed";
        x->vac[i].seconds = (double)(now_ms() - t0) / 1000.0;
        item_report(x, "vacuum", &x->vac[i], rc, &err);
    }
    return 0;
}

/* ---- summary -------------------------------------------------------------------------------- */

static void add_str(cJSON *o, const char *k, const char *v)
{
    if (v && v[0])
        cJSON_AddStringToObject(o, k, v);
}

static cJSON *view_json(const struct rview *v)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "view", v->name);
    cJSON_AddStringToObject(o, "outcome", outcome_name(v->out));
    add_str(o, "reason", v->reason);
    if (!v->listed)
        cJSON_AddBoolToObject(o, "upstream", true);
    if (v->out == OUT_REFRESHED) {
        cJSON_AddStringToObject(o, "mode", v->mode == PLAN_CONCURRENT ? "concurrent" : "plain");
        add_str(o, "plain_because", v->plain_why);
        add_str(o, "null_key_columns", v->null_cols);
        cJSON_AddNumberToObject(o, "seconds", v->seconds);
        cJSON_AddNumberToObject(o, "rows", (double)v->rows);
    }
    if (v->attempts > 1)
        cJSON_AddNumberToObject(o, "attempts", v->attempts);
    add_str(o, "error", v->error);
    add_str(o, "warning", v->warning);
    return o;
}

static cJSON *item_json(const char *key, const struct ritem *it)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, key, it->name);
    cJSON_AddStringToObject(o, "outcome",
                            it->out == OUT_FAILED ? "failed"
                            : it->what            ? it->what
                                                  : "not run");
    if (it->out == OUT_REFRESHED)
        cJSON_AddNumberToObject(o, "seconds", it->seconds);
    add_str(o, "error", it->error);
    add_str(o, "warning", it->warning);
    return o;
}

/* How much of the run a summary lists: every item, the failed ones, or none (the counts); the
 * summary must fit what meshd stores (md_worker_summary_fit). */
enum sum_items { SUM_ALL, SUM_FAILED, SUM_COUNTS };

static char *summary_json(const struct rctx *x, enum sum_items items)
{
    cJSON *o = cJSON_CreateObject(), *a;
    int n[OUT_FAILED + 1] = {0};
    char *text;

    for (size_t i = 0; i < x->n; i++)
        n[x->v[i].out]++;
    cJSON_AddNumberToObject(o, "refreshed", n[OUT_REFRESHED]);
    cJSON_AddNumberToObject(o, "skipped", n[OUT_SKIPPED]);
    cJSON_AddNumberToObject(o, "failed", n[OUT_FAILED]);
    if (items != SUM_COUNTS) {
        bool all = items == SUM_ALL;
        a = cJSON_AddArrayToObject(o, "views");
        for (size_t i = 0; i < x->n; i++)
            if (all || x->v[x->order[i]].out == OUT_FAILED)
                cJSON_AddItemToArray(a, view_json(&x->v[x->order[i]]));
        a = cJSON_AddArrayToObject(o, "indexes");
        for (size_t i = 0; i < x->nidx; i++)
            if (all || x->idx_items[i].out == OUT_FAILED)
                cJSON_AddItemToArray(a, item_json("index", &x->idx_items[i]));
        a = cJSON_AddArrayToObject(o, "vacuum");
        for (size_t i = 0; i < x->nvac; i++)
            if (all || x->vac[i].out == OUT_FAILED)
                cJSON_AddItemToArray(a, item_json("table", &x->vac[i]));
    }
    if (items != SUM_ALL)
        cJSON_AddStringToObject(o, "truncated",
                                items == SUM_FAILED ? "failed items only" : "counts only");
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static char *summary_build(const void *ctx, int detail)
{
    return summary_json(ctx, (enum sum_items)detail);
}

/* ---- the run -------------------------------------------------------------------------------- */

static bool any_failed(const struct rctx *x)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->v[i].out == OUT_FAILED)
            return true;
    for (size_t i = 0; i < x->nidx; i++)
        if (x->idx_items[i].out == OUT_FAILED)
            return true;
    for (size_t i = 0; i < x->nvac; i++)
        if (x->vac[i].out == OUT_FAILED)
            return true;
    return false;
}

/* A view that died with the connection, or by a stop, ends the run with that code. */
static int fatal_view_rc(const struct rctx *x)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->v[i].rc == -ECANCELED || x->v[i].rc == MD_EDBDOWN)
            return x->v[i].rc;
    return 0;
}

static int plan(struct rctx *x, PGconn *db, struct md_error *err)
{
    int rc;

    if ((rc = parse_indexes(x, err)) < 0 || (rc = session_setup(db, x->cfg, err)) < 0)
        return rc;
    if (x->cfg->views.n + x->cfg->schemas.n > 0 && (rc = schema_apply(db, err)) < 0)
        return rc;
    if ((rc = resolve_listed(x, db, err)) < 0 || (rc = resolve_schemas(x, db, err)) < 0 ||
        (rc = discover(x, db, err)) < 0 || (rc = order_views(x, err)) < 0 ||
        (rc = resolve_vacuum(x, db, err)) < 0)
        return rc;
    return 0;
}

static void rctx_free(struct rctx *x)
{
    for (size_t i = 0; i < x->n; i++)
        md_free(x->v[i].deps);
    md_free(x->v);
    md_free(x->order);
    md_free(x->idx);
    md_free(x->idx_items);
    md_free(x->vac);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cv);
}

int refresh_run(struct md_worker *w, PGconn *db, const struct refresh_cfg *cfg, char **summary,
                struct md_error *err)
{
    struct rctx x = {.w = w, .cfg = cfg};
    int rc;

    *summary = NULL;
    x.v = md_xcalloc(PLAN_MAX_VIEWS, sizeof *x.v);
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    if ((rc = plan(&x, db, err)) < 0)
        goto out;
    md_log(MD_LOG_INFO, "plan: %zu materialized view(s), %zu index(es), %zu table(s) to vacuum",
           x.n, x.nidx, x.nvac);
    if ((rc = run_views(&x, db, err)) < 0)
        goto done;
    if ((rc = fatal_view_rc(&x)) < 0) {
        md_error_set(err, rc, 0, 0, "%s", rc == -ECANCELED ? "stopped" : "the database went away");
        goto done;
    }
    if ((rc = run_indexes(&x, db)) < 0 || (rc = run_vacuum(&x, db)) < 0) {
        md_error_set(err, rc, 0, 0, "%s", rc == -ECANCELED ? "stopped" : "the database went away");
        goto done;
    }
    if (any_failed(&x)) {
        rc = MD_EDB;
        md_error_set(err, rc, 0, 0, "some items failed (see the summary)");
    }
done:
    *summary = md_worker_summary_fit(summary_build, &x, SUM_COUNTS + 1);
out:
    rctx_free(&x);
    return rc;
}
