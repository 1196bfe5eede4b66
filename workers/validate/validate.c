/* validate.c - meshd-validate's run (validate.h). */
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
#include "meshd/md_status.h"
#include "validate.h"

/* Samples named in a validation.failed message, per check. */
#define MSG_SAMPLES 5
/* The message's payload stays well under a status line (MD_STATUS_LINE_MAX). */
#define MSG_MAX (40 * 1024)

/* A failing row kept as a sample (JSON text from the server). */
struct sample {
    const struct vcheck *c;
    const struct vtable *t;
    char *grp, *key, *row;
};

/* The last outcome of a check and group (meshd_validate.state). */
struct prior {
    char *id; /* tbl \x1f name \x1f scope \x1f grp */
    char *tbl, *name, *grp;
    char outcome[16];
    double base_rows; /* < 0: none */
    bool seen;        /* this run judged it */
    bool gone;        /* not seen, though its check ran in the same scope: the group is gone */
};

struct run {
    struct md_worker *w;
    PGconn *db;
    const struct validate_cfg *cfg;
    struct vsuite *s;
    const char *suite;
    char run_id[64];
    bool *wanted;       /* per table */
    char **scope;       /* per table: SQL condition or NULL */
    char **scope_label; /* per table: the partition label or NULL */
    struct vresults res;
    struct sample *samples;
    size_t nsamples, capsamples;
    struct prior *prior;
    size_t nprior;
    size_t counts[VO_ERROR + 1];
    size_t resolved;
    bool skipped_all; /* an on: run for a table this suite does not check */
};

static const char *label_of(const struct run *r, const struct vtable *t)
{
    const char *l = r->scope_label[t - r->s->t];
    return l != NULL ? l : "";
}

/* ---- the scope of an on: scrape.changed run -------------------------------------------------- */

static int table_oid(PGconn *db, const char *name, char *out, size_t cap, struct md_error *err)
{
    const char *params[1] = {name};
    PGresult *res = NULL;
    int rc = md_pq_exec(db, "SELECT to_regclass($1)::oid", 1, params, &res, err);

    if (rc < 0)
        return rc;
    snprintf(out, cap, "%s", PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

/* Which tables this run checks: all, or for scrape.changed the one it names, restricted to
 * the partition when the table says which columns its label has (partition:). */
static int scope_setup(struct run *r, struct md_error *err)
{
    struct vsuite *s = r->s;
    const char *type = r->w->message_type;
    int rc = 0;

    r->wanted = md_xcalloc(s->n, sizeof *r->wanted);
    r->scope = md_xcalloc(s->n, sizeof *r->scope);
    r->scope_label = md_xcalloc(s->n, sizeof *r->scope_label);
    for (size_t i = 0; i < s->n; i++)
        r->wanted[i] = true;
    if (type == NULL || strcmp(type, "scrape.changed") != 0 || r->w->message_payload == NULL)
        return 0;

    cJSON *p = cJSON_Parse(r->w->message_payload);
    const cJSON *tbl = cJSON_GetObjectItemCaseSensitive(p, "table");
    const cJSON *part = cJSON_GetObjectItemCaseSensitive(p, "partition");
    char want_oid[16] = "", oid[16];
    if (!cJSON_IsString(tbl)) {
        md_log(MD_LOG_WARN, "scrape.changed without a table: checking everything");
        cJSON_Delete(p);
        return 0;
    }
    if ((rc = table_oid(r->db, tbl->valuestring, want_oid, sizeof want_oid, err)) < 0)
        goto out;
    size_t matched = 0;
    for (size_t i = 0; i < s->n; i++) {
        if ((rc = table_oid(r->db, s->t[i].name, oid, sizeof oid, err)) < 0)
            goto out;
        r->wanted[i] = want_oid[0] != '\0' && strcmp(oid, want_oid) == 0;
        if (!r->wanted[i])
            continue;
        matched++;
        const struct md_strv *cols = &s->t[i].cfg->partition;
        if (cols->n == 0 || !cJSON_IsString(part) || part->valuestring[0] == '\0') {
            md_log(MD_LOG_INFO, "%s changed: checking the whole table%s", s->t[i].name,
                   cols->n == 0 ? " (no partition: columns configured)" : "");
            continue;
        }
        struct md_buf b;
        md_buf_init(&b, 1 << 16);
        if (!vsql_scope(&b, cols, part->valuestring)) {
            md_log(MD_LOG_WARN,
                   "%s: partition \"%s\" does not have the %zu part(s) partition: names; "
                   "checking the whole table",
                   s->t[i].name, part->valuestring, cols->n);
            md_buf_free(&b);
            continue;
        }
        r->scope[i] = md_buf_take(&b);
        r->scope_label[i] = md_xstrdup(part->valuestring);
        md_log(MD_LOG_INFO, "%s changed: checking partition %s only", s->t[i].name,
               part->valuestring);
    }
    if (matched == 0) {
        md_log(MD_LOG_NOTICE, "scrape.changed for %s: no table of this suite; nothing to check",
               tbl->valuestring);
        r->skipped_all = true;
    }
out:
    cJSON_Delete(p);
    return rc;
}

/* ---- the last outcomes and baselines --------------------------------------------------------- */

static char *prior_id(const char *tbl, const char *name, const char *scope, const char *grp)
{
    return md_xasprintf("%s\x1f%s\x1f%s\x1f%s", tbl, name, scope, grp);
}

static int prior_cmp(const void *a, const void *b)
{
    return strcmp(((const struct prior *)a)->id, ((const struct prior *)b)->id);
}

static struct prior *prior_find(struct run *r, const struct vresult *v)
{
    char *id = prior_id(v->t->name, v->c->name, label_of(r, v->t), v->grp);
    struct prior key = {.id = id};
    struct prior *p =
        r->nprior > 0 ? bsearch(&key, r->prior, r->nprior, sizeof *r->prior, prior_cmp) : NULL;
    md_free(id);
    return p;
}

static int read_prior(struct run *r, struct md_error *err)
{
    const char *params[1] = {r->suite};
    PGresult *res = NULL;
    int rc = md_pq_exec(r->db,
                        "SELECT tbl, name, scope, grp, outcome, coalesce(base_rows, -1) FROM "
                        "meshd_validate.state WHERE suite = $1",
                        1, params, &res, err);

    if (rc < 0)
        return rc;
    r->nprior = (size_t)PQntuples(res);
    r->prior = md_xcalloc(r->nprior + 1, sizeof *r->prior);
    for (size_t i = 0; i < r->nprior; i++) {
        struct prior *p = &r->prior[i];
        int row = (int)i;
        p->id = prior_id(PQgetvalue(res, row, 0), PQgetvalue(res, row, 1), PQgetvalue(res, row, 2),
                         PQgetvalue(res, row, 3));
        p->tbl = md_xstrdup(PQgetvalue(res, row, 0));
        p->name = md_xstrdup(PQgetvalue(res, row, 1));
        p->grp = md_xstrdup(PQgetvalue(res, row, 3));
        snprintf(p->outcome, sizeof p->outcome, "%s", PQgetvalue(res, row, 4));
        p->base_rows = strtod(PQgetvalue(res, row, 5), NULL);
    }
    PQclear(res);
    qsort(r->prior, r->nprior, sizeof *r->prior, prior_cmp);
    return 0;
}

/* ---- evaluating ------------------------------------------------------------------------------ */

static void sample_add(struct run *r, const struct vtable *t, const struct vcheck *c,
                       const char *grp, const char *key, const char *row)
{
    if (r->nsamples == r->capsamples) {
        r->capsamples = r->capsamples ? 2 * r->capsamples : 64;
        r->samples = md_xrealloc(r->samples, r->capsamples * sizeof *r->samples);
    }
    r->samples[r->nsamples++] = (struct sample){
        .c = c, .t = t, .grp = md_xstrdup(grp), .key = md_xstrdup(key), .row = md_xstrdup(row)};
}

static bool failing(enum vc_outcome o)
{
    return o == VO_WARN || o == VO_FAIL;
}

/* Samples of table t's failing checks among results [from, to): one capped query per check,
 * restricted to its failing groups. */
static int take_samples(struct run *r, const struct vtable *t, size_t from, size_t to,
                        struct md_error *err)
{
    const char *scope = r->scope[t - r->s->t];

    for (size_t i = 0; i < t->nchecks; i++) {
        const struct vcheck *c = &t->checks[i];
        if (c->samples == 0 || !(c->counts) || c->proof != NULL)
            continue;
        cJSON *groups = cJSON_CreateArray();
        size_t nfail = 0;
        for (size_t j = from; j < to; j++) {
            const struct vresult *v = &r->res.v[j];
            if (v->c == c && failing(v->outcome) && v->value > 0) {
                cJSON_AddItemToArray(groups, cJSON_CreateString(v->grp));
                nfail++;
            }
        }
        char *gtext = nfail > 0 ? cJSON_PrintUnformatted(groups) : NULL;
        cJSON_Delete(groups);
        if (nfail == 0)
            continue;
        struct md_buf q;
        PGresult *res = NULL;
        const char *params[1] = {gtext};
        md_buf_init(&q, 4u << 20);
        vsql_samples(&q, t, c, scope, t->key, t->nkey);
        int rc = md_pq_exec(r->db, "SAVEPOINT meshd_sample", 0, NULL, NULL, err);
        if (rc == 0)
            rc = md_pq_exec(r->db, md_buf_str(&q), c->group_label != NULL ? 1 : 0, params, &res,
                            err);
        md_buf_free(&q);
        cJSON_free(gtext);
        if (rc < 0) {
            if (rc == -ECANCELED || rc == MD_EDBDOWN)
                return rc;
            md_log(MD_LOG_WARN, "%s (%s): samples not taken: %s", c->path, c->name, err->msg);
            if ((rc = md_pq_exec(r->db, "ROLLBACK TO SAVEPOINT meshd_sample", 0, NULL, NULL, err)) <
                0)
                return rc;
            continue;
        }
        for (int row = 0; row < PQntuples(res); row++)
            sample_add(r, t, c, PQgetisnull(res, row, 2) ? "" : PQgetvalue(res, row, 2),
                       PQgetvalue(res, row, 0), PQgetvalue(res, row, 1));
        PQclear(res);
        if ((rc = md_pq_exec(r->db, "RELEASE SAVEPOINT meshd_sample", 0, NULL, NULL, err)) < 0)
            return rc;
    }
    return 0;
}

static int evaluate(PGconn *db, void *ud, struct md_error *err)
{
    struct run *r = ud;
    size_t done = 0, total = 0;
    int rc;

    (void)db;
    vresults_free(&r->res);
    for (size_t i = 0; i < r->nsamples; i++) {
        md_free(r->samples[i].grp);
        md_free(r->samples[i].key);
        md_free(r->samples[i].row);
    }
    r->nsamples = 0;
    for (size_t i = 0; i < r->s->n; i++)
        total += r->wanted[i];
    if ((rc = md_pq_exec(r->db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", 0,
                         NULL, NULL, err)) < 0)
        return rc;
    for (size_t i = 0; i < r->s->n; i++) {
        const struct vtable *t = &r->s->t[i];
        if (!r->wanted[i])
            continue;
        if ((rc = md_worker_tick(r->w)) < 0)
            return md_error_set(err, rc, 0, 0, "stopped");
        size_t from = r->res.n;
        if ((rc = veval_table(r->db, t, NULL, r->scope[i], &r->res, err)) < 0)
            return rc;
        /* change checks against their baselines, before the samples need the outcomes */
        for (size_t j = from; j < r->res.n; j++) {
            struct vresult *v = &r->res.v[j];
            if (v->c->type == VC_ROW_COUNT && v->c->cfg->change && v->outcome != VO_ERROR &&
                v->outcome != VO_REFUSED) {
                const struct prior *p = prior_find(r, v);
                vresult_change(v, p != NULL ? p->base_rows : -1);
            }
        }
        if ((rc = take_samples(r, t, from, r->res.n, err)) < 0)
            return rc;
        (void)md_worker_progress(r->w, (double)++done, (double)total, "tables");
    }
    return 0;
}

/* ---- writing --------------------------------------------------------------------------------- */

static double num_or_null(const struct vresult *v)
{
    return v->has_value && isfinite(v->value) ? v->value : NAN;
}

static void add_num(cJSON *o, const char *k, double v)
{
    if (isnan(v))
        cJSON_AddNullToObject(o, k);
    else
        cJSON_AddNumberToObject(o, k, v);
}

static int write_all(PGconn *db, void *ud, struct md_error *err)
{
    struct run *r = ud;
    cJSON *results = cJSON_CreateArray(), *fails = cJSON_CreateArray();
    char *rtext = NULL, *ftext = NULL, retention[32];
    int rc;

    for (size_t i = 0; i < r->res.n; i++) {
        const struct vresult *v = &r->res.v[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tbl", v->t->name);
        cJSON_AddStringToObject(o, "name", v->c->name);
        cJSON_AddStringToObject(o, "type", vc_type_name(v->c->type));
        cJSON_AddStringToObject(o, "grp", v->grp);
        cJSON_AddStringToObject(o, "scope", label_of(r, v->t));
        add_num(o, "value", num_or_null(v));
        add_num(o, "rows",
                v->rows >= 0 && v->outcome != VO_REFUSED && v->outcome != VO_ERROR ? (double)v->rows
                                                                                   : NAN);
        add_num(o, "percent", v->c->counts && v->has_value ? v->pct : NAN);
        cJSON_AddStringToObject(o, "outcome", vc_outcome_name(v->outcome));
        if (v->message != NULL)
            cJSON_AddStringToObject(o, "message", v->message);
        /* the baseline a change check compares with next time: this count unless it failed */
        const struct prior *p = prior_find(r, v);
        double base = p != NULL ? p->base_rows : -1;
        if (v->c->type == VC_ROW_COUNT && v->c->cfg->change && v->outcome != VO_FAIL &&
            v->outcome != VO_ERROR && v->outcome != VO_REFUSED)
            base = (double)v->rows;
        add_num(o, "base_rows", base >= 0 ? base : NAN);
        cJSON_AddItemToArray(results, o);
    }
    for (size_t i = 0; i < r->nsamples; i++) {
        const struct sample *s = &r->samples[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "tbl", s->t->name);
        cJSON_AddStringToObject(o, "name", s->c->name);
        cJSON_AddStringToObject(o, "grp", s->grp);
        cJSON_AddRawToObject(o, "row_key", s->key);
        cJSON_AddRawToObject(o, "row_data", s->row);
        cJSON_AddItemToArray(fails, o);
    }
    rtext = cJSON_PrintUnformatted(results);
    ftext = cJSON_PrintUnformatted(fails);
    cJSON_Delete(results);
    cJSON_Delete(fails);
    if (rtext == NULL || ftext == NULL) {
        rc = md_error_set(err, -ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    snprintf(retention, sizeof retention, "%" PRIu64 " milliseconds", r->cfg->retention_ms);
    const char *p3[3] = {r->run_id, r->suite, rtext};
    rc = md_pq_exec(
        db,
        "INSERT INTO meshd_validate.results (run_id, suite, tbl, name, type, grp, scope, value, "
        "rows, percent, outcome, message) SELECT $1, $2, x.tbl, x.name, x.type, x.grp, x.scope, "
        "x.value, x.rows, x.percent, x.outcome, x.message FROM jsonb_to_recordset($3::jsonb) AS "
        "x(tbl text, name text, type text, grp text, scope text, value float8, rows int8, "
        "percent float8, outcome text, message text)",
        3, p3, NULL, err);
    if (rc < 0)
        goto out;
    rc = md_pq_exec(
        db,
        "INSERT INTO meshd_validate.state AS s (suite, tbl, name, scope, grp, outcome, value, "
        "base_rows, run_id, at) SELECT $2, x.tbl, x.name, x.scope, x.grp, x.outcome, x.value, "
        "x.base_rows, $1, now() FROM jsonb_to_recordset($3::jsonb) AS x(tbl text, name text, "
        "scope text, grp text, outcome text, value float8, base_rows int8) ON CONFLICT (suite, "
        "tbl, name, scope, grp) DO UPDATE SET outcome = EXCLUDED.outcome, value = "
        "EXCLUDED.value, base_rows = EXCLUDED.base_rows, run_id = EXCLUDED.run_id, at = now()",
        3, p3, NULL, err);
    if (rc < 0)
        goto out;
    /* Groups judged before and gone now (their rows are gone): forgotten. */
    cJSON *gone = cJSON_CreateArray();
    for (size_t i = 0; i < r->nprior; i++)
        if (r->prior[i].gone)
            cJSON_AddItemToArray(gone, cJSON_CreateString(r->prior[i].id));
    char *gtext = cJSON_PrintUnformatted(gone);
    cJSON_Delete(gone);
    const char *pg[2] = {r->suite, gtext};
    rc = gtext == NULL ? md_error_set(err, -ENOMEM, 0, 0, "out of memory")
                       : md_pq_exec(db,
                                    "DELETE FROM meshd_validate.state WHERE suite = $1 AND tbl "
                                    "|| chr(31) || name || chr(31) || scope || chr(31) || grp IN "
                                    "(SELECT jsonb_array_elements_text($2::jsonb))",
                                    2, pg, NULL, err);
    cJSON_free(gtext);
    if (rc < 0)
        goto out;
    const char *pf[3] = {r->run_id, r->suite, ftext};
    rc = md_pq_exec(db,
                    "INSERT INTO meshd_validate.failures (run_id, suite, tbl, name, grp, row_key, "
                    "row_data) SELECT $1, $2, x.tbl, x.name, x.grp, x.row_key, x.row_data FROM "
                    "jsonb_to_recordset($3::jsonb) AS x(tbl text, name text, grp text, row_key "
                    "jsonb, row_data jsonb)",
                    3, pf, NULL, err);
    if (rc < 0)
        goto out;
    const char *ps[3] = {r->suite, r->cfg->tables, r->run_id};
    rc = md_pq_exec(db,
                    "INSERT INTO meshd_validate.suites (suite, tables, run_id) VALUES ($1, "
                    "$2::jsonb, $3) ON CONFLICT (suite) DO UPDATE SET tables = EXCLUDED.tables, "
                    "run_id = EXCLUDED.run_id, updated_at = now()",
                    3, ps, NULL, err);
    if (rc < 0)
        goto out;
    const char *pr[2] = {r->suite, retention};
    rc = md_pq_exec(db,
                    "DELETE FROM meshd_validate.results WHERE suite = $1 AND at < now() - "
                    "$2::interval",
                    2, pr, NULL, err);
    if (rc == 0)
        rc = md_pq_exec(db,
                        "DELETE FROM meshd_validate.failures WHERE suite = $1 AND at < now() - "
                        "$2::interval",
                        2, pr, NULL, err);
out:
    cJSON_free(rtext);
    cJSON_free(ftext);
    return rc;
}

/* ---- what meshd hears ------------------------------------------------------------------------ */

static void describe(const struct vresult *v, struct md_buf *b)
{
    const struct vcheck *c = v->c;
    char th[96];

    md_buf_printf(b, "%s %s", v->t->name, c->name);
    if (v->grp[0] != '\0')
        md_buf_printf(b, " [%s]", v->grp);
    md_buf_puts(b, ": ");
    if (v->outcome == VO_REFUSED || v->outcome == VO_ERROR || !v->has_value) {
        md_buf_printf(b, "%s", v->message != NULL ? v->message : vc_outcome_name(v->outcome));
        return;
    }
    switch (c->type) {
    case VC_ROW_COUNT:
        if (c->cfg->change)
            md_buf_printf(b, "%+.1f%% rows", v->value);
        else
            md_buf_printf(b, "%.0f rows", v->value);
        break;
    case VC_FRESHNESS:
        md_buf_printf(b, "newest row %.0f s old", v->value);
        break;
    case VC_METRIC:
        md_buf_printf(b, "%.6g", v->value);
        break;
    case VC_SCHEMA:
        md_buf_printf(b, "%.0f column problem(s)", v->value);
        break;
    case VC_DUPLICATE:
        md_buf_printf(b, "%.0f duplicate row(s) (%.3g%% of %" PRId64 ")", v->value, v->pct,
                      v->rows);
        break;
    default:
        md_buf_printf(b, "%.0f bad row(s) (%.3g%% of %" PRId64 ")", v->value, v->pct, v->rows);
        break;
    }
    const struct vc_threshold *t = v->outcome == VO_FAIL ? &c->fail : &c->warn;
    if (failing(v->outcome)) {
        vc_threshold_text(t, th, sizeof th);
        md_buf_printf(b, ", %s at %s", v->outcome == VO_FAIL ? "fail" : "warn", th);
    }
    if (v->message != NULL && c->type != VC_ROW_COUNT)
        md_buf_printf(b, " (%s)", v->message);
}

static void first_sample(const struct run *r, const struct vresult *v, struct md_buf *b)
{
    for (size_t i = 0; i < r->nsamples; i++)
        if (r->samples[i].c == v->c && strcmp(r->samples[i].grp, v->grp) == 0) {
            md_buf_printf(b, "; e.g. %.300s", r->samples[i].key);
            return;
        }
}

static void report(struct run *r)
{
    struct md_status_writer *st = &r->w->st;

    for (size_t i = 0; i < r->res.n; i++) {
        const struct vresult *v = &r->res.v[i];
        struct prior *p = prior_find(r, v);
        char *key = vresult_key(v, label_of(r, v->t));
        r->counts[v->outcome]++;
        if (v->has_value && isfinite(v->value))
            (void)md_status_metric(st, key, v->value);
        if (v->outcome == VO_PASS) {
            if (p != NULL && strcmp(p->outcome, "pass") != 0) {
                (void)md_status_resolve(st, key);
                r->resolved++;
            }
        } else {
            struct md_buf msg;
            md_buf_init(&msg, MD_STATUS_TEXT_MAX);
            describe(v, &msg);
            first_sample(r, v, &msg);
            (void)md_status_alert(st, v->outcome == VO_FAIL ? MD_SEV_CRITICAL : MD_SEV_WARNING, key,
                                  md_buf_str(&msg));
            md_log(v->outcome == VO_FAIL ? MD_LOG_ERROR : MD_LOG_WARN, "%s", md_buf_str(&msg));
            md_buf_free(&msg);
        }
        md_free(key);
    }
}

/* Which prior states this run judged again, and which are gone: groups of a check that ran
 * (in the same scope) without a result for them any more. */
static void mark_priors(struct run *r)
{
    for (size_t i = 0; i < r->res.n; i++) {
        struct prior *p = prior_find(r, &r->res.v[i]);
        if (p != NULL)
            p->seen = true;
    }
    for (size_t i = 0; i < r->nprior; i++) {
        struct prior *p = &r->prior[i];
        for (size_t j = 0; j < r->res.n && !p->seen && !p->gone; j++) {
            const struct vresult *v = &r->res.v[j];
            if (v->outcome == VO_ERROR || v->outcome == VO_REFUSED ||
                strcmp(v->t->name, p->tbl) != 0 || strcmp(v->c->name, p->name) != 0)
                continue;
            char *id = prior_id(p->tbl, p->name, label_of(r, v->t), p->grp);
            p->gone = strcmp(id, p->id) == 0;
            md_free(id);
        }
    }
}

/* Gone groups that were not passing: their alerts resolved. */
static void report_gone(struct run *r)
{
    for (size_t i = 0; i < r->nprior; i++) {
        const struct prior *p = &r->prior[i];
        if (!p->gone || strcmp(p->outcome, "pass") == 0)
            continue;
        for (size_t j = 0; j < r->res.n; j++) {
            const struct vresult *v = &r->res.v[j];
            if (strcmp(v->t->name, p->tbl) != 0 || strcmp(v->c->name, p->name) != 0)
                continue;
            struct vresult gone = *v;
            gone.grp = p->grp;
            char *key = vresult_key(&gone, label_of(r, v->t));
            md_log(MD_LOG_INFO, "%s %s: group %s has no rows any more; resolved", p->tbl, p->name,
                   p->grp);
            (void)md_status_resolve(&r->w->st, key);
            r->resolved++;
            md_free(key);
            break;
        }
    }
}

/* validation.failed: the failing fail-level checks, values and sample keys. */
static void publish_failed(struct run *r)
{
    cJSON *o = cJSON_CreateObject(), *checks = cJSON_AddArrayToObject(o, "checks");
    cJSON *scope = cJSON_AddObjectToObject(o, "scope");
    size_t nfail = 0;
    size_t size = 256;

    cJSON_AddStringToObject(o, "suite", r->suite);
    cJSON_AddStringToObject(o, "run_id", r->run_id);
    for (size_t i = 0; i < r->s->n; i++)
        if (r->scope_label[i] != NULL)
            cJSON_AddStringToObject(scope, r->s->t[i].name, r->scope_label[i]);
    for (size_t i = 0; i < r->res.n; i++) {
        const struct vresult *v = &r->res.v[i];
        if (v->outcome != VO_FAIL)
            continue;
        nfail++;
        if (size > MSG_MAX) {
            cJSON_AddTrueToObject(o, "truncated");
            break;
        }
        cJSON *c = cJSON_CreateObject();
        char *key = vresult_key(v, label_of(r, v->t));
        cJSON_AddStringToObject(c, "table", v->t->name);
        cJSON_AddStringToObject(c, "name", v->c->name);
        cJSON_AddStringToObject(c, "type", vc_type_name(v->c->type));
        cJSON_AddStringToObject(c, "group", v->grp);
        cJSON_AddStringToObject(c, "key", key);
        add_num(c, "value", num_or_null(v));
        add_num(c, "rows", v->rows >= 0 ? (double)v->rows : NAN);
        add_num(c, "percent", v->c->counts && v->has_value ? v->pct : NAN);
        cJSON *sa = cJSON_AddArrayToObject(c, "samples");
        int ns = 0;
        for (size_t j = 0; j < r->nsamples && ns < MSG_SAMPLES; j++)
            if (r->samples[j].c == v->c && strcmp(r->samples[j].grp, v->grp) == 0) {
                cJSON *k = cJSON_Parse(r->samples[j].key);
                if (k != NULL)
                    cJSON_AddItemToArray(sa, k), ns++;
            }
        size += strlen(key) * 2 + 200 + (size_t)ns * 120;
        md_free(key);
        cJSON_AddItemToArray(checks, c);
    }
    cJSON_AddNumberToObject(o, "failed", (double)nfail);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text != NULL && strlen(text) > MSG_MAX + 16 * 1024) {
        /* a pathological sample: send the counts only */
        cJSON_free(text);
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "suite", r->suite);
        cJSON_AddStringToObject(o, "run_id", r->run_id);
        cJSON_AddNumberToObject(o, "failed", (double)nfail);
        cJSON_AddTrueToObject(o, "truncated");
        text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    if (text != NULL && md_status_message(&r->w->st, "validation.failed", text) < 0)
        md_log(MD_LOG_WARN, "validation.failed could not be sent");
    cJSON_free(text);
}

enum { SUM_FULL, SUM_SHORT, SUM_COUNTS };

static char *summary_build(const void *ctx, int detail)
{
    const struct run *r = ctx;
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "suite", r->suite);
    cJSON_AddNumberToObject(o, "results", (double)r->res.n);
    for (int k = VO_PASS; k <= VO_ERROR; k++)
        cJSON_AddNumberToObject(o, vc_outcome_name((enum vc_outcome)k), (double)r->counts[k]);
    cJSON_AddNumberToObject(o, "resolved", (double)r->resolved);
    cJSON_AddNumberToObject(o, "samples", (double)r->nsamples);
    if (r->skipped_all)
        cJSON_AddStringToObject(o, "note", "the changed table is not in this suite");
    cJSON *scope = NULL;
    for (size_t i = 0; i < r->s->n; i++) {
        if (r->scope_label == NULL || r->scope_label[i] == NULL)
            continue;
        if (scope == NULL)
            scope = cJSON_AddObjectToObject(o, "scope");
        cJSON_AddStringToObject(scope, r->s->t[i].name, r->scope_label[i]);
    }
    if (detail < SUM_COUNTS) {
        cJSON *items = cJSON_AddArrayToObject(o, "failing");
        for (size_t i = 0; i < r->res.n; i++) {
            const struct vresult *v = &r->res.v[i];
            if (v->outcome == VO_PASS)
                continue;
            cJSON *it = cJSON_CreateObject();
            char *key = vresult_key(v, label_of(r, v->t));
            cJSON_AddStringToObject(it, "key", key);
            md_free(key);
            cJSON_AddStringToObject(it, "outcome", vc_outcome_name(v->outcome));
            add_num(it, "value", num_or_null(v));
            if (detail == SUM_FULL) {
                struct md_buf b;
                md_buf_init(&b, 1000);
                describe(v, &b);
                cJSON_AddStringToObject(it, "text", md_buf_str(&b));
                md_buf_free(&b);
            }
            cJSON_AddItemToArray(items, it);
        }
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* ---- the run --------------------------------------------------------------------------------- */

int validate_load_suite(PGconn *db, const char *suite, char **json, struct md_error *err)
{
    const char *params[1] = {suite};
    PGresult *res = NULL;
    int rc;

    *json = NULL;
    rc = md_pq_exec(db,
                    "SELECT s.tables::text FROM meshd_validate.suites s WHERE "
                    "to_regclass('meshd_validate.suites') IS NOT NULL AND s.suite = $1",
                    1, params, &res, err);
    if (rc < 0 && strstr(err->msg, "42P01") != NULL) /* the schema is not there yet */
        rc = 0, res = NULL;
    if (rc < 0)
        return rc;
    if (res != NULL && PQntuples(res) == 1)
        *json = md_xstrdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (*json == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "suite \"%s\" has no stored checks: give tables:, or run the job "
                            "that defines the suite first",
                            suite);
    return 0;
}

int validate_run(struct md_worker *w, PGconn *db, const struct validate_cfg *cfg, struct vsuite *s,
                 char **summary, struct md_error *err)
{
    struct run r = {.w = w, .db = db, .cfg = cfg, .s = s};
    char timeout[32];
    const char *params[1] = {timeout};
    int rc;

    *summary = NULL;
    r.suite = cfg->suite != NULL ? cfg->suite : w->job[0] != '\0' ? w->job : "validate";
    md_worker_run_name(w, r.run_id, sizeof r.run_id);
    snprintf(timeout, sizeof timeout, "%" PRIu64, cfg->statement_timeout_ms);
    if ((rc = md_worker_apply_sql(db, (const char *)validate_schema_sql, VALIDATE_KEYSPACE, err)) <
            0 ||
        (rc = md_pq_exec(db, "SET standard_conforming_strings = on", 0, NULL, NULL, err)) < 0 ||
        (rc = md_pq_exec(db, "SELECT set_config('statement_timeout', $1, false)", 1, params, NULL,
                         err)) < 0)
        goto out;
    if ((rc = scope_setup(&r, err)) < 0)
        goto out;
    if (r.skipped_all)
        goto done;
    /* Everything the server would refuse is found before anything runs. */
    if ((rc = vprep_suite(db, s, r.wanted, r.scope, cfg->max_cost, err)) < 0 ||
        (rc = read_prior(&r, err)) < 0)
        goto out;
    if ((rc = md_pq_tx(db, evaluate, &r, 3, err)) < 0)
        goto out;
    /* Tell meshd first, then record.  The other order loses a resolve when the worker dies
     * (or the write fails) between the two: the state would say "pass" and the next run, seeing
     * no change, would never send it.  This way a lost write only means the next run tells
     * again (a second resolve or alert for a key is harmless). */
    mark_priors(&r);
    report(&r);
    report_gone(&r);
    if (r.counts[VO_FAIL] > 0)
        publish_failed(&r);
    if ((rc = md_pq_tx(db, write_all, &r, 3, err)) < 0)
        goto out;
    md_log(MD_LOG_INFO,
           "suite %s: %zu result(s): %zu pass, %zu warn, %zu fail, %zu refused, %zu error; "
           "%zu sample(s), %zu resolved",
           r.suite, r.res.n, r.counts[VO_PASS], r.counts[VO_WARN], r.counts[VO_FAIL],
           r.counts[VO_REFUSED], r.counts[VO_ERROR], r.nsamples, r.resolved);
    if (r.counts[VO_FAIL] > 0 || r.counts[VO_ERROR] > 0)
        rc = md_error_set(err, VALIDATE_EFAILED, 0, 0,
                          "%zu check result(s) failed, %zu could not run", r.counts[VO_FAIL],
                          r.counts[VO_ERROR]);
done:
    *summary = md_worker_summary_fit(summary_build, &r, SUM_COUNTS + 1);
out:
    vresults_free(&r.res);
    for (size_t i = 0; i < r.nsamples; i++) {
        md_free(r.samples[i].grp);
        md_free(r.samples[i].key);
        md_free(r.samples[i].row);
    }
    md_free(r.samples);
    for (size_t i = 0; i < r.nprior; i++) {
        md_free(r.prior[i].id);
        md_free(r.prior[i].tbl);
        md_free(r.prior[i].name);
        md_free(r.prior[i].grp);
    }
    md_free(r.prior);
    for (size_t i = 0; r.scope != NULL && i < s->n; i++) {
        md_free(r.scope[i]);
        md_free(r.scope_label[i]);
    }
    md_free(r.scope);
    md_free(r.scope_label);
    md_free(r.wanted);
    return rc;
}
