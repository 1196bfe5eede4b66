/* eval.c - eval.h: a suite's checks prepared against the database, then evaluated. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "eval.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"

/* Statements built from a config hold the user's SQL: cap them generously. */
#define SQL_MAX (4u << 20)

void vresults_free(struct vresults *r)
{
    for (size_t i = 0; i < r->n; i++) {
        md_free(r->v[i].grp);
        md_free(r->v[i].message);
    }
    md_free(r->v);
    memset(r, 0, sizeof *r);
}

static struct vresult *result_add(struct vresults *out, const struct vtable *t,
                                  const struct vcheck *c, const char *grp)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 32;
        out->v = md_xrealloc(out->v, out->cap * sizeof *out->v);
    }
    struct vresult *r = &out->v[out->n++];
    memset(r, 0, sizeof *r);
    r->t = t;
    r->c = c;
    r->grp = md_xstrdup(grp != NULL ? grp : "");
    return r;
}

/* The connection is gone or we are stopping: nothing more to do on it. */
static bool fatal(int rc)
{
    return rc == -ECANCELED || rc == MD_EDBDOWN;
}

/* ---- preparing ------------------------------------------------------------------------------ */

/* The planner's total cost from EXPLAIN (FORMAT JSON). */
static double plan_cost(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *plan = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(root, 0), "Plan");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(plan, "Total Cost");
    double v = cJSON_IsNumber(cost) ? cost->valuedouble : 0;

    cJSON_Delete(root);
    return v;
}

/* A check's SQL refused by the server: a config error that names the check. */
static int check_error(const struct vcheck *c, int rc, struct md_error *err)
{
    char msg[sizeof err->msg];

    if (fatal(rc))
        return rc;
    snprintf(msg, sizeof msg, "%s", err->msg);
    return md_error_set(err, MD_ECONFIG, 0, 0, "%s (%s): %s", c->path, c->name, msg);
}

static int prep_check(PGconn *db, struct vtable *t, struct vcheck *c, const char *scope,
                      double max_cost, struct md_error *err)
{
    struct md_buf q;
    PGresult *res = NULL;
    int rc;

    if (c->type == VC_SCHEMA) {
        const char *params[1] = {c->cfg->expect};
        rc = md_pq_exec(db,
                        "SELECT string_agg(format('%s (%s)', e.key, e.value), ', ') FROM "
                        "jsonb_each_text($1::jsonb) e WHERE to_regtype(e.value) IS NULL",
                        1, params, &res, err);
        if (rc < 0)
            return check_error(c, rc, err);
        if (!PQgetisnull(res, 0, 0))
            md_error_set(err, MD_ECONFIG, 0, 0, "expect: unknown type: %s", PQgetvalue(res, 0, 0));
        rc = PQgetisnull(res, 0, 0) ? 0 : check_error(c, MD_ECONFIG, err);
        PQclear(res);
        return rc;
    }
    if (c->cfg->regex != NULL) {
        const char *params[1] = {c->cfg->regex};
        if ((rc = md_pq_exec(db, "SELECT '' ~ $1", 1, params, NULL, err)) < 0)
            return check_error(c, rc, err);
    }
    md_buf_init(&q, SQL_MAX);
    md_buf_puts(&q, "EXPLAIN (FORMAT JSON) ");
    if (c->type == VC_DUPLICATE) {
        vsql_dup(&q, t, c, scope);
    } else {
        const struct vcheck *one[1] = {c};
        vsql_scan(&q, t, one, 1, scope);
    }
    rc = md_pq_exec(db, md_buf_str(&q), 0, NULL, &res, err);
    md_buf_free(&q);
    if (rc < 0)
        return check_error(c, rc, err);
    c->cost = plan_cost(PQgetvalue(res, 0, 0));
    PQclear(res);
    md_free(c->refused);
    c->refused = NULL;
    if (max_cost > 0 && c->cost > max_cost) {
        c->refused = md_xasprintf("not run: its estimated cost %.6g is over max_cost %.6g", c->cost,
                                  max_cost);
        md_log(MD_LOG_WARN, "%s (%s): %s", c->path, c->name, c->refused);
    }
    if (c->type == VC_DUPLICATE && c->cfg->filter == NULL) {
        /* A unique index on some of the columns, all of them NOT NULL, proves there are no
         * duplicates: no scan needed. */
        struct md_buf cols;
        char oid[16];
        md_buf_init(&cols, 1 << 16);
        md_buf_puts(&cols, "[");
        for (size_t i = 0; i < c->nsample_cols; i++) {
            cJSON *one = cJSON_CreateString(c->sample_cols[i]);
            char *s = cJSON_PrintUnformatted(one);
            cJSON_Delete(one);
            md_buf_printf(&cols, "%s%s", i > 0 ? "," : "", s != NULL ? s : "\"\"");
            cJSON_free(s);
        }
        md_buf_puts(&cols, "]");
        snprintf(oid, sizeof oid, "%" PRIu32, t->oid);
        const char *params[2] = {oid, md_buf_str(&cols)};
        rc = md_pq_exec(
            db,
            "SELECT i.indexrelid::regclass::text FROM pg_index i WHERE i.indrelid = $1::oid "
            "AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid AND "
            "a.attnum = ANY(i.indkey) AND (NOT a.attnotnull OR '\"' || replace(a.attname, "
            "'\"', '\"\"') || '\"' <> ALL(ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))))"
            " ORDER BY i.indisprimary DESC LIMIT 1",
            2, params, &res, err);
        md_buf_free(&cols);
        if (rc < 0)
            return check_error(c, rc, err);
        md_free(c->proof);
        c->proof = PQntuples(res) == 1 ? md_xstrdup(PQgetvalue(res, 0, 0)) : NULL;
        PQclear(res);
    }
    return 0;
}

static int prep_table(PGconn *db, struct vtable *t, const char *scope, double max_cost,
                      const char *path, struct md_error *err)
{
    const char *params[1] = {t->name};
    PGresult *res = NULL;
    int rc;

    rc = md_pq_exec(db,
                    "SELECT c.oid, c.oid::regclass::text, c.relkind FROM pg_class c WHERE "
                    "c.oid = to_regclass($1)",
                    1, params, &res, err);
    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return fatal(rc) ? rc : md_error_set(err, MD_ECONFIG, 0, 0, "%s.table: %s", path, msg);
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.table: relation \"%s\" does not exist", path,
                            t->name);
    }
    t->oid = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
    md_free(t->qname);
    t->qname = md_xstrdup(PQgetvalue(res, 0, 1));
    PQclear(res);

    /* The key shown in samples: key:, else the primary key. */
    for (size_t i = 0; i < t->nkey; i++)
        md_free(t->key[i]);
    md_free(t->key);
    t->key = NULL;
    t->nkey = 0;
    if (t->cfg->key.n > 0) {
        t->key = md_xcalloc(t->cfg->key.n, sizeof *t->key);
        for (size_t i = 0; i < t->cfg->key.n; i++) /* checked by vsuite_bind */
            t->key[t->nkey++] = vsql_column(t->cfg->key.v[i]);
    } else {
        char oid[16];
        const char *p1[1] = {oid};
        snprintf(oid, sizeof oid, "%" PRIu32, t->oid);
        rc = md_pq_exec(db,
                        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
                        "i.indrelid AND a.attnum = ANY(i.indkey) WHERE i.indrelid = $1::oid AND "
                        "i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
                        1, p1, &res, err);
        if (rc < 0)
            return rc;
        t->key = md_xcalloc((size_t)PQntuples(res) + 1, sizeof *t->key);
        for (int i = 0; i < PQntuples(res); i++) {
            struct md_buf b;
            md_buf_init(&b, 8192);
            vsql_ident(&b, PQgetvalue(res, i, 0));
            t->key[t->nkey++] = md_buf_take(&b);
        }
        PQclear(res);
    }
    for (size_t i = 0; i < t->nchecks; i++)
        if ((rc = prep_check(db, t, &t->checks[i], scope, max_cost, err)) < 0)
            return rc;
    return 0;
}

int vprep_suite(PGconn *c, struct vsuite *s, const bool *wanted, char *const *scope,
                double max_cost, struct md_error *err)
{
    int rc;

    for (size_t i = 0; i < s->n; i++) {
        char path[64];
        if (wanted != NULL && !wanted[i])
            continue;
        snprintf(path, sizeof path, "tables[%zu]", i);
        if ((rc = prep_table(c, &s->t[i], scope != NULL ? scope[i] : NULL, max_cost, path, err)) <
            0)
            return rc;
    }
    return 0;
}

/* ---- evaluating ----------------------------------------------------------------------------- */

/* Runs sql under a savepoint: a failure rolls back to it and is returned (with err), the
 * transaction stays usable. */
static int guarded(PGconn *db, const char *sql, int n, const char *const *params, PGresult **res,
                   struct md_error *err)
{
    struct md_error e2 = {0};
    int rc;

    if ((rc = md_pq_exec(db, "SAVEPOINT meshd_check", 0, NULL, NULL, err)) < 0)
        return rc;
    rc = md_pq_exec(db, sql, n, params, res, err);
    if (rc < 0) {
        int rc2 = md_pq_exec(db, "ROLLBACK TO SAVEPOINT meshd_check", 0, NULL, NULL, &e2);
        return rc2 < 0 && fatal(rc2) ? rc2 : rc;
    }
    return md_pq_exec(db, "RELEASE SAVEPOINT meshd_check", 0, NULL, NULL, err);
}

static void judge(struct vresult *r)
{
    const struct vcheck *c = r->c;

    if (!r->has_value) {
        /* nothing to judge (freshness or a metric over no rows): at the highest level set */
        r->outcome = c->fail.set ? VO_FAIL : VO_WARN;
        if (r->message == NULL)
            r->message = md_xstrdup("no rows to judge");
        return;
    }
    r->pct = c->counts && r->rows > 0 ? 100.0 * r->value / (double)r->rows : 0;
    r->outcome = vc_judge(c, r->value, r->pct);
}

static void error_results(struct vresults *out, const struct vtable *t,
                          const struct vcheck *const *cks, size_t n, const char *msg)
{
    for (size_t i = 0; i < n; i++) {
        struct vresult *r = result_add(out, t, cks[i], "");
        r->outcome = VO_ERROR;
        r->message = md_xstrdup(msg);
    }
}

static int run_scan(PGconn *db, const struct vtable *t, const struct vcheck *const *cks, size_t n,
                    const char *scope, struct vresults *out, struct md_error *err)
{
    struct md_buf q;
    PGresult *res = NULL;
    int rc;

    md_buf_init(&q, SQL_MAX);
    vsql_scan(&q, t, cks, n, scope);
    rc = guarded(db, md_buf_str(&q), 0, NULL, &res, err);
    md_buf_free(&q);
    if (rc < 0) {
        if (fatal(rc))
            return rc;
        md_log(MD_LOG_WARN, "%s: a scan of %zu check(s) failed: %s", t->name, n, err->msg);
        error_results(out, t, cks, n, err->msg);
        return 0;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        const char *g = PQgetisnull(res, row, 0) ? "" : PQgetvalue(res, row, 0);
        for (size_t i = 0; i < n; i++) {
            struct vresult *r = result_add(out, t, cks[i], g);
            int vcol = 2 + 2 * (int)i;
            r->has_value = !PQgetisnull(res, row, vcol);
            r->value = r->has_value ? strtod(PQgetvalue(res, row, vcol), NULL) : 0;
            r->rows = strtoll(PQgetvalue(res, row, vcol + 1), NULL, 10);
            if (cks[i]->type == VC_ROW_COUNT && cks[i]->cfg->change)
                continue; /* judged by vresult_change against its baseline */
            judge(r);
        }
    }
    PQclear(res);
    return 0;
}

static int run_dup(PGconn *db, const struct vtable *t, const struct vcheck *c, const char *scope,
                   struct vresults *out, struct md_error *err)
{
    struct md_buf q;
    PGresult *res = NULL;
    int rc;

    if (c->proof != NULL) {
        struct vresult *r = result_add(out, t, c, "");
        r->has_value = true;
        r->rows = -1;
        r->outcome = VO_PASS;
        r->message = md_xasprintf("no duplicates possible: unique index %s", c->proof);
        return 0;
    }
    md_buf_init(&q, SQL_MAX);
    vsql_dup(&q, t, c, scope);
    rc = guarded(db, md_buf_str(&q), 0, NULL, &res, err);
    md_buf_free(&q);
    if (rc < 0) {
        if (fatal(rc))
            return rc;
        const struct vcheck *one[1] = {c};
        error_results(out, t, one, 1, err->msg);
        return 0;
    }
    for (int row = 0; row < PQntuples(res); row++) {
        struct vresult *r =
            result_add(out, t, c, PQgetisnull(res, row, 0) ? "" : PQgetvalue(res, row, 0));
        r->has_value = true;
        r->rows = strtoll(PQgetvalue(res, row, 1), NULL, 10);
        r->value = strtod(PQgetvalue(res, row, 2), NULL);
        judge(r);
    }
    if (PQntuples(res) == 0 && c->group_label == NULL) {
        struct vresult *r = result_add(out, t, c, "");
        r->has_value = true;
        judge(r);
    }
    PQclear(res);
    return 0;
}

static int run_schema(PGconn *db, const struct vtable *t, const struct vcheck *c,
                      struct vresults *out, struct md_error *err)
{
    static const char sql[] =
        "WITH e AS (SELECT key AS col, value AS typ, to_regtype(value) AS oid FROM "
        "jsonb_each_text($2::jsonb)), a AS (SELECT attname::text AS col, atttypid AS oid, "
        "format_type(atttypid, atttypmod) AS ft FROM pg_attribute WHERE attrelid = $1::oid AND "
        "attnum > 0 AND NOT attisdropped) "
        "SELECT coalesce(e.col, a.col), CASE WHEN a.col IS NULL THEN 'missing' WHEN e.col IS "
        "NULL THEN 'extra' ELSE 'type' END, e.typ, a.ft FROM e FULL JOIN a ON a.col = e.col "
        "WHERE a.col IS NULL OR (e.col IS NULL AND NOT $3::bool) OR (e.col IS NOT NULL AND "
        "a.col IS NOT NULL AND (e.oid <> a.oid OR (strpos(e.typ, '(') > 0 AND "
        "substring(replace(e.typ, ' ', '') FROM '\\(.*\\)$') IS DISTINCT FROM "
        "substring(replace(a.ft, ' ', '') FROM '\\(.*\\)$')))) ORDER BY 1";
    char oid[16];
    const char *params[3] = {oid, c->cfg->expect, c->cfg->allow_extra ? "true" : "false"};
    PGresult *res = NULL;
    struct md_buf msg;
    int rc;

    snprintf(oid, sizeof oid, "%" PRIu32, t->oid);
    if ((rc = guarded(db, sql, 3, params, &res, err)) < 0) {
        if (fatal(rc))
            return rc;
        const struct vcheck *one[1] = {c};
        error_results(out, t, one, 1, err->msg);
        return 0;
    }
    struct vresult *r = result_add(out, t, c, "");
    r->has_value = true;
    r->value = PQntuples(res);
    r->rows = -1;
    md_buf_init(&msg, 2000);
    for (int i = 0; i < PQntuples(res); i++) {
        const char *what = PQgetvalue(res, i, 1);
        if (strcmp(what, "missing") == 0)
            md_buf_printf(&msg, "%s%s missing (expected %s)", i ? "; " : "", PQgetvalue(res, i, 0),
                          PQgetvalue(res, i, 2));
        else if (strcmp(what, "extra") == 0)
            md_buf_printf(&msg, "%s%s not expected (%s)", i ? "; " : "", PQgetvalue(res, i, 0),
                          PQgetvalue(res, i, 3));
        else
            md_buf_printf(&msg, "%s%s is %s, expected %s", i ? "; " : "", PQgetvalue(res, i, 0),
                          PQgetvalue(res, i, 3), PQgetvalue(res, i, 2));
    }
    r->message = msg.len > 0 ? md_buf_take(&msg) : NULL;
    md_buf_free(&msg);
    PQclear(res);
    judge(r);
    return 0;
}

static bool scanned(enum vc_type t)
{
    return t != VC_DUPLICATE && t != VC_SCHEMA;
}

int veval_table(PGconn *db, const struct vtable *t, const bool *want, const char *scope,
                struct vresults *out, struct md_error *err)
{
    bool *done = md_xcalloc(t->nchecks + 1, sizeof *done);
    const struct vcheck **group = md_xcalloc(t->nchecks + 1, sizeof *group);
    int rc = 0;

    for (size_t i = 0; i < t->nchecks && rc == 0; i++) {
        const struct vcheck *c = &t->checks[i];
        if (done[i] || (want != NULL && !want[i]))
            continue;
        done[i] = true;
        if (c->refused != NULL) {
            struct vresult *r = result_add(out, t, c, "");
            r->outcome = VO_REFUSED;
            r->message = md_xstrdup(c->refused);
            continue;
        }
        if (c->type == VC_DUPLICATE) {
            rc = run_dup(db, t, c, scope, out, err);
            continue;
        }
        if (c->type == VC_SCHEMA) {
            rc = run_schema(db, t, c, out, err);
            continue;
        }
        /* This check and every later one of the same grouping share one scan; a metric with
         * a filter has its own. */
        size_t n = 0;
        group[n++] = c;
        bool alone = c->type == VC_METRIC && c->filter != NULL;
        for (size_t j = i + 1; j < t->nchecks && !alone; j++) {
            const struct vcheck *d = &t->checks[j];
            if (done[j] || (want != NULL && !want[j]) || d->refused != NULL || !scanned(d->type) ||
                (d->type == VC_METRIC && d->filter != NULL) ||
                strcmp(d->group_key, c->group_key) != 0)
                continue;
            done[j] = true;
            group[n++] = d;
        }
        rc = run_scan(db, t, group, n, scope, out, err);
    }
    md_free(done);
    md_free(group);
    return rc;
}

void vresult_change(struct vresult *r, double base)
{
    double rows = r->value;

    r->rows = (int64_t)rows;
    if (base < 0) {
        r->has_value = false;
        r->outcome = VO_PASS;
        r->message = md_xstrdup("no baseline yet: this run's row count becomes it");
        return;
    }
    r->has_value = true;
    r->value = base > 0 ? 100.0 * (rows - base) / base : rows > 0 ? 100.0 : 0.0;
    r->outcome = vc_judge(r->c, r->value, 0);
    md_free(r->message);
    r->message = md_xasprintf("%.0f rows, %.0f at the baseline", rows, base);
}

char *vresult_key(const struct vresult *r, const char *scope_label)
{
    struct md_buf b;
    char *key;

    md_buf_init(&b, 4096);
    md_buf_printf(&b, "check.%s.%s", r->t->name, r->c->name);
    if (r->grp[0] != '\0')
        md_buf_printf(&b, ".%s", r->grp);
    else if (scope_label != NULL && scope_label[0] != '\0')
        md_buf_printf(&b, "@%s", scope_label);
    key = md_buf_take(&b);
    if (strlen(key) > 200) /* MD_STATUS_NAME_MAX */
        key[200] = '\0';
    return key;
}
