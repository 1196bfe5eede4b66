/* remediate.c - meshd-remediate's run (remediate.h). */
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
#include "remediate.h"
#include "validate.h"

extern const unsigned char remediate_schema_sql[];
extern const size_t remediate_schema_sql_len;

#define SQL_MAX (4u << 20)

struct rrun {
    struct md_worker *w;
    PGconn *db;
    const struct rm_cfg *cfg;
    char run_id[64];
    char *suite_name; /* owned: an approval's comes from a row freed before the summary */
    char *suite_json;
    struct vsuite suite;
    bool have_suite;
    char **scope;       /* per table of the suite: SQL or NULL */
    char **scope_label; /* per table: the partition label or NULL */
    cJSON *items;       /* the summary's items */
    size_t counts[8];   /* by enum outcome */
};

enum outcome { O_NOTHING, O_PLANNED, O_APPLIED, O_REFUSED, O_STALE, O_FAILED, O_RERUN, O_UNDONE };
static const char *const outcome_names[] = {"nothing", "planned", "applied", "refused",
                                            "stale",   "failed",  "rerun",   "undone"};

/* What one fix's plan or apply found. */
struct plan {
    char id[17];
    char hash[65];
    int64_t rows, table_rows;
    bool estimated; /* table_rows is the planner's count (far from the max_percent limit) */
    char *samples;  /* JSON array of row keys (with the rows) */
    char *why;      /* a refusal's reason */
};

static void plan_clear(struct plan *p)
{
    md_free(p->samples);
    md_free(p->why);
    memset(p, 0, sizeof *p);
}

static void item(struct rrun *r, const char *fix, enum outcome o, const char *plan, int64_t rows,
                 const char *why)
{
    cJSON *it = cJSON_CreateObject();

    r->counts[o]++;
    cJSON_AddStringToObject(it, "fix", fix);
    cJSON_AddStringToObject(it, "outcome", outcome_names[o]);
    if (plan != NULL && plan[0] != '\0')
        cJSON_AddStringToObject(it, "plan", plan);
    if (rows >= 0)
        cJSON_AddNumberToObject(it, "rows", (double)rows);
    if (why != NULL)
        cJSON_AddStringToObject(it, "why", why);
    cJSON_AddItemToArray(r->items, it);
}

static void publish(struct rrun *r, const char *type, cJSON *payload)
{
    char *text = cJSON_PrintUnformatted(payload);

    if (text == NULL || md_status_message(&r->w->st, type, text) < 0)
        md_log(MD_LOG_WARN, "%s could not be sent", type);
    cJSON_free(text);
}

static void alert_key(char *buf, size_t cap, const char *fix)
{
    snprintf(buf, cap, "remediation.%s", fix);
}

/* ---- the suite ---------------------------------------------------------------------------- */

/* Loads and prepares suite name; scope_obj (JSON object table -> partition label, or NULL)
 * restricts tables to partitions as the validation.failed message says. */
static int suite_load(struct rrun *r, const char *name, const cJSON *scope_obj,
                      struct md_error *err)
{
    int rc;

    md_free(r->suite_name);
    r->suite_name = md_xstrdup(name);
    if ((rc = validate_load_suite(r->db, name, &r->suite_json, err)) < 0 ||
        (rc = vsuite_bind(r->suite_json, strlen(r->suite_json), r->cfg->samples, &r->suite, err)) <
            0) {
        if (rc == MD_ECONFIG) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            md_error_set(err, rc, 0, 0, "the suite's stored checks: %s", msg);
        }
        return rc;
    }
    r->have_suite = true;
    r->scope = md_xcalloc(r->suite.n + 1, sizeof *r->scope);
    r->scope_label = md_xcalloc(r->suite.n + 1, sizeof *r->scope_label);
    for (size_t i = 0; i < r->suite.n; i++) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(scope_obj, r->suite.t[i].name);
        struct md_buf b;
        if (!cJSON_IsString(l) || r->suite.t[i].cfg->partition.n == 0)
            continue;
        md_buf_init(&b, 1 << 16);
        if (vsql_scope(&b, &r->suite.t[i].cfg->partition, l->valuestring)) {
            r->scope[i] = md_buf_take(&b);
            r->scope_label[i] = md_xstrdup(l->valuestring);
        }
        md_buf_free(&b);
    }
    return vprep_suite(r->db, &r->suite, NULL, r->scope, 0, err);
}

static size_t table_index(const struct rrun *r, const struct vtable *t)
{
    return (size_t)(t - r->suite.t);
}

/* ---- evaluating checks --------------------------------------------------------------------- */

/* The checks a fix's post-condition looks at: its own, and every fail-level check of its table
 * (not row_count change checks, whose baselines belong to validate runs). */
static bool *post_checks(const struct rm_fix *f)
{
    bool *want = md_xcalloc(f->t->nchecks + 1, sizeof *want);

    for (size_t i = 0; i < f->t->nchecks; i++) {
        const struct vcheck *c = &f->t->checks[i];
        want[i] = c == f->c ||
                  (c->fail.set && !(c->type == VC_ROW_COUNT && c->cfg->change) && !c->refused);
    }
    return want;
}

/* True when every result of check c in res passes. */
static bool check_passes(const struct vresults *res, const struct vcheck *c)
{
    bool any = false;

    for (size_t i = 0; i < res->n; i++) {
        if (res->v[i].c != c)
            continue;
        any = true;
        if (res->v[i].outcome != VO_PASS)
            return false;
    }
    return any;
}

static int rank(enum vc_outcome o)
{
    return o == VO_PASS ? 0 : o == VO_WARN ? 1 : 2;
}

/* The first result in after that is worse than in before (outcome up, or more bad rows),
 * other than c's; NULL when none. */
static const struct vresult *got_worse(const struct vresults *before, const struct vresults *after,
                                       const struct vcheck *c)
{
    for (size_t i = 0; i < after->n; i++) {
        const struct vresult *a = &after->v[i];
        if (a->c == c)
            continue;
        const struct vresult *b = NULL;
        for (size_t j = 0; j < before->n && b == NULL; j++)
            if (before->v[j].c == a->c && strcmp(before->v[j].grp, a->grp) == 0)
                b = &before->v[j];
        if (b == NULL) { /* a new group: worse if it does not pass */
            if (a->outcome != VO_PASS)
                return a;
            continue;
        }
        if (rank(a->outcome) > rank(b->outcome))
            return a;
        if (a->c->counts && a->has_value && b->has_value && a->value > b->value)
            return a;
    }
    return NULL;
}

struct eval_ctx {
    const struct vtable *t;
    const bool *want;
    const char *scope;
    struct vresults *out;
};

static int eval_tx(PGconn *db, void *ud, struct md_error *err)
{
    struct eval_ctx *e = ud;

    vresults_free(e->out);
    return veval_table(db, e->t, e->want, e->scope, e->out, err);
}

/* Evaluates the fix's check alone (its own transaction). */
static int check_now(struct rrun *r, const struct rm_fix *f, struct vresults *out,
                     struct md_error *err)
{
    bool *want = md_xcalloc(f->t->nchecks + 1, sizeof *want);
    struct eval_ctx e = {f->t, want, r->scope[table_index(r, f->t)], out};
    int rc;

    want[f->c->index] = true;
    rc = md_pq_tx(r->db, eval_tx, &e, 3, err);
    md_free(want);
    return rc;
}

/* ---- targets ------------------------------------------------------------------------------- */

/* Inside a transaction: selects the fix's targets into _mr_targets and fills p (rows, hash,
 * id, table rows, samples). */
static int targets(struct rrun *r, const struct rm_fix *f, struct plan *p, struct md_error *err)
{
    struct md_buf q;
    PGresult *res = NULL;
    int rc;
    char limit[24];
    const char *scope = r->scope[table_index(r, f->t)];

    md_buf_init(&q, SQL_MAX);
    rmsql_targets(&q, f, scope);
    rc = md_pq_exec(r->db, md_buf_str(&q), 0, NULL, NULL, err);
    md_buf_free(&q);
    if (rc < 0)
        return rc;
    /* The plan hash: the fix as declared, the check's SQL, the sorted target keys. */
    snprintf(limit, sizeof limit, "%" PRId64, r->cfg->samples);
    const char *params[3] = {f->def, f->c->bad != NULL ? f->c->bad : "", limit};
    rc = md_pq_exec(r->db,
                    "SELECT count(*), encode(sha256(convert_to($1 || E'\\n' || $2 || E'\\n' || "
                    "coalesce(string_agg(k::text, E'\\n' ORDER BY k::text), ''), 'UTF8')), "
                    "'hex'), coalesce((SELECT jsonb_agg(s.k) FROM (SELECT k FROM _mr_targets "
                    "ORDER BY k::text LIMIT $3::int) s), '[]')::text FROM _mr_targets",
                    3, params, &res, err);
    if (rc < 0)
        return rc;
    p->rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    snprintf(p->hash, sizeof p->hash, "%s", PQgetvalue(res, 0, 1));
    snprintf(p->id, sizeof p->id, "%.16s", p->hash);
    md_free(p->samples);
    p->samples = md_xstrdup(PQgetvalue(res, 0, 2));
    PQclear(res);
    /* The table's rows, for max_percent.  The planner's count (pg_class.reltuples) when the
     * guard is nowhere near (the targets under half the limit of it) and the whole table is
     * meant: a full scan saved; else counted exactly. */
    if (f->t->filter == NULL && scope == NULL) {
        char oid[16];
        const char *op[1] = {oid};
        snprintf(oid, sizeof oid, "%" PRIu32, f->t->oid);
        if ((rc = md_pq_exec(r->db,
                             "SELECT greatest(reltuples, 0)::int8 FROM pg_class WHERE "
                             "oid = $1::oid",
                             1, op, &res, err)) < 0)
            return rc;
        int64_t est = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
        PQclear(res);
        if (est > 0 && 100.0 * (double)p->rows / (double)est < f->max_percent / 2) {
            p->table_rows = est;
            p->estimated = true;
            return 0;
        }
    }
    p->estimated = false;
    md_buf_init(&q, SQL_MAX);
    md_buf_printf(&q, "SELECT count(*) FROM %s t WHERE true", f->t->qname);
    if (f->t->filter != NULL)
        md_buf_printf(&q, " AND (%s)", f->t->filter);
    if (scope != NULL)
        md_buf_printf(&q, " AND (%s)", scope);
    rc = md_pq_exec(r->db, md_buf_str(&q), 0, NULL, &res, err);
    md_buf_free(&q);
    if (rc < 0)
        return rc;
    p->table_rows = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* The guards; sets p->why and returns REMEDIATE_EREFUSED when one trips. */
static int guards(const struct rm_fix *f, struct plan *p, struct md_error *err)
{
    double pct = p->table_rows > 0 ? 100.0 * (double)p->rows / (double)p->table_rows : 100;

    md_free(p->why);
    p->why = NULL;
    if (p->rows > f->max_rows)
        p->why = md_xasprintf("%" PRId64 " rows to change, over max_rows %" PRId64, p->rows,
                              f->max_rows);
    else if (p->rows > 0 && pct > f->max_percent)
        p->why = md_xasprintf("%" PRId64 " rows to change are %.3g%% of %" PRId64
                              ", over max_percent %.3g",
                              p->rows, pct, p->table_rows, f->max_percent);
    if (p->why == NULL)
        return 0;
    return md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "%s: refused: %s", f->cfg->name, p->why);
}

/* ---- plan ---------------------------------------------------------------------------------- */

struct plan_ctx {
    struct rrun *r;
    const struct rm_fix *f;
    struct plan *p;
};

static int plan_tx(PGconn *db, void *ud, struct md_error *err)
{
    struct plan_ctx *x = ud;

    (void)db;
    return targets(x->r, x->f, x->p, err);
}

static int store_plan(struct rrun *r, const struct rm_fix *f, const struct plan *p,
                      struct md_error *err)
{
    char rows[24], trows[24];
    const char *label = r->scope_label[table_index(r, f->t)];
    const char *params[13] = {p->id,
                              p->hash,
                              r->suite_name,
                              f->cfg->name,
                              f->def,
                              f->t->name,
                              f->c->name,
                              label ? label : "",
                              rm_action_name(f->action),
                              rows,
                              trows,
                              p->samples ? p->samples : "[]",
                              r->run_id};

    snprintf(rows, sizeof rows, "%" PRId64, p->rows);
    snprintf(trows, sizeof trows, "%" PRId64, p->table_rows);
    /* The same plan again (same fix, same targets) keeps its row and its approval window. */
    return md_pq_exec(r->db,
                      "INSERT INTO meshd_remediate.plans (plan, hash, suite, fix, fix_def, tbl, "
                      "check_name, scope, action, rows, table_rows, samples, status, run_id) "
                      "VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11, $12::jsonb, "
                      "'planned', $13) ON CONFLICT (plan) DO UPDATE SET status = CASE WHEN "
                      "plans.status IN ('stale', 'refused', 'failed', 'expired') THEN 'planned' "
                      "ELSE plans.status END, run_id = EXCLUDED.run_id, created_at = CASE WHEN "
                      "plans.status = 'planned' THEN plans.created_at ELSE now() END",
                      13, params, NULL, err);
}

static void set_plan_status(struct rrun *r, const char *plan, const char *status, const char *msg)
{
    struct md_error e2 = {0};
    const char *params[4] = {plan, status, msg, r->run_id};

    if (md_pq_exec(r->db,
                   "UPDATE meshd_remediate.plans SET status = $2, message = $3, applied_run = $4, "
                   "decided_at = now() WHERE plan = $1",
                   4, params, NULL, &e2) < 0)
        md_log(MD_LOG_WARN, "plan %s: its status not recorded: %s", plan, e2.msg);
}

/* ---- apply --------------------------------------------------------------------------------- */

struct apply_ctx {
    struct rrun *r;
    const struct rm_fix *f;
    const char *expect_hash; /* NULL: whatever the targets are now */
    struct plan *p;
    enum outcome out;
    struct vresults before, after;
};

static int apply_tx(PGconn *db, void *ud, struct md_error *err)
{
    struct apply_ctx *x = ud;
    struct rrun *r = x->r;
    const struct rm_fix *f = x->f;
    const char *scope = r->scope[table_index(r, f->t)];
    bool *want = post_checks(f);
    char lock_ms[24];
    struct md_buf q;
    int rc;

    vresults_free(&x->before);
    vresults_free(&x->after);
    snprintf(lock_ms, sizeof lock_ms, "%" PRIu64, r->cfg->lock_timeout_ms);
    const char *lp[1] = {lock_ms};
    /* No writer may change the table between the targets' selection and the post-check;
     * readers go on. */
    md_buf_init(&q, 4096);
    md_buf_printf(&q, "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", f->t->qname);
    if ((rc = md_pq_exec(db, "SELECT set_config('lock_timeout', $1, true)", 1, lp, NULL, err)) <
            0 ||
        (rc = md_pq_exec(db, md_buf_str(&q), 0, NULL, NULL, err)) < 0)
        goto out;
    if ((rc = veval_table(db, f->t, want, scope, &x->before, err)) < 0 ||
        (rc = targets(r, f, x->p, err)) < 0)
        goto out;
    if (x->expect_hash != NULL && strcmp(x->expect_hash, x->p->hash) != 0) {
        md_free(x->p->why);
        x->p->why = md_xasprintf("stale plan: the targets are not those planned (now %" PRId64
                                 " rows, plan %.16s)",
                                 x->p->rows, x->p->hash);
        x->out = O_STALE;
        rc =
            md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "%s: refused: %s", f->cfg->name, x->p->why);
        goto out;
    }
    if ((rc = guards(f, x->p, err)) < 0) {
        x->out = O_REFUSED;
        goto out;
    }
    const char *params[2] = {r->run_id, x->p->id};
    md_buf_free(&q);
    md_buf_init(&q, SQL_MAX);
    rmsql_audit(&q, f);
    if ((rc = md_pq_exec(db, md_buf_str(&q), 2, params, NULL, err)) < 0)
        goto out;
    md_buf_free(&q);
    md_buf_init(&q, SQL_MAX);
    rmsql_action(&q, f);
    const char *reason = f->cfg->reason != NULL ? f->cfg->reason : f->c->name;
    const char *aparams[2] = {r->run_id, f->action == RA_QUARANTINE ? reason : x->p->id};
    if ((rc = md_pq_exec(db, md_buf_str(&q), f->action == RA_DELETE ? 0 : 2, aparams, NULL, err)) <
        0)
        goto out;
    /* The post-condition, in the same transaction. */
    if ((rc = veval_table(db, f->t, want, scope, &x->after, err)) < 0)
        goto out;
    const struct vresult *worse = got_worse(&x->before, &x->after, f->c);
    if (!check_passes(&x->after, f->c) || worse != NULL) {
        md_free(x->p->why);
        if (worse != NULL) {
            char *key = vresult_key(worse, NULL);
            x->p->why = md_xasprintf("rolled back: %s got worse (%s, value %.6g)", key,
                                     vc_outcome_name(worse->outcome), worse->value);
            md_free(key);
        } else {
            x->p->why =
                md_xasprintf("rolled back: check %s does not pass after the fix", f->c->name);
        }
        x->out = O_FAILED;
        rc = md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "%s: %s", f->cfg->name, x->p->why);
        goto out;
    }
    const char *sp[2] = {x->p->id, r->run_id};
    if (x->expect_hash == NULL && (rc = store_plan(r, f, x->p, err)) < 0) /* auto: planned here */
        goto out;
    rc = md_pq_exec(db,
                    "UPDATE meshd_remediate.plans SET status = 'applied', applied_run = $2, "
                    "decided_at = now(), message = NULL WHERE plan = $1",
                    2, sp, NULL, err);
    x->out = O_APPLIED;
out:
    md_buf_free(&q);
    md_free(want);
    return rc;
}

static void tell_failed(struct rrun *r, const struct rm_fix *f, const struct plan *p,
                        enum outcome o)
{
    char key[160];
    cJSON *m = cJSON_CreateObject();

    alert_key(key, sizeof key, f->cfg->name);
    md_log(MD_LOG_ERROR, "%s: %s", f->cfg->name, p->why);
    (void)md_status_alert(&r->w->st, MD_SEV_CRITICAL, key, p->why);
    cJSON_AddStringToObject(m, "fix", f->cfg->name);
    cJSON_AddStringToObject(m, "plan", p->id);
    cJSON_AddStringToObject(m, "outcome", outcome_names[o]);
    cJSON_AddStringToObject(m, "why", p->why);
    cJSON_AddStringToObject(m, "table", f->t->name);
    cJSON_AddStringToObject(m, "check", f->c->name);
    cJSON_AddStringToObject(m, "run_id", r->run_id);
    publish(r, "remediation.failed", m);
    cJSON_Delete(m);
}

/* Applies f (its targets now, or exactly those of expect_hash).  Returns 0, REMEDIATE_EREFUSED
 * (told: alert, message, the plan's status), or a kit code. */
static int apply(struct rrun *r, const struct rm_fix *f, const char *expect_hash,
                 const char *plan_id, struct md_error *err)
{
    struct plan p = {0};
    struct apply_ctx x = {.r = r, .f = f, .expect_hash = expect_hash, .p = &p};
    char key[160];
    int rc;

    rc = md_pq_tx(r->db, apply_tx, &x, 3, err);
    if (rc == REMEDIATE_EREFUSED) {
        struct md_error e2 = {0};
        if (plan_id == NULL && store_plan(r, f, &p, &e2) < 0) /* auto: its plan, for the record */
            md_log(MD_LOG_WARN, "plan %s not recorded: %s", p.id, e2.msg);
        set_plan_status(r, plan_id != NULL ? plan_id : p.id,
                        x.out == O_STALE     ? "stale"
                        : x.out == O_REFUSED ? "refused"
                                             : "failed",
                        p.why);
        tell_failed(r, f, &p, x.out);
        item(r, f->cfg->name, x.out, plan_id != NULL ? plan_id : p.id, p.rows, p.why);
    } else if (rc == 0) {
        cJSON *m = cJSON_CreateObject();
        alert_key(key, sizeof key, f->cfg->name);
        (void)md_status_resolve(&r->w->st, key);
        md_log(MD_LOG_NOTICE, "%s: applied plan %s: %s %" PRId64 " row(s) of %s", f->cfg->name,
               p.id, rm_action_name(f->action), p.rows, f->t->name);
        char metric[200];
        snprintf(metric, sizeof metric, "remediation.%s.rows", f->cfg->name);
        (void)md_status_metric(&r->w->st, metric, (double)p.rows);
        cJSON_AddStringToObject(m, "fix", f->cfg->name);
        cJSON_AddStringToObject(m, "plan", p.id);
        cJSON_AddStringToObject(m, "action", rm_action_name(f->action));
        cJSON_AddNumberToObject(m, "rows", (double)p.rows);
        cJSON_AddStringToObject(m, "table", f->t->name);
        cJSON_AddStringToObject(m, "check", f->c->name);
        cJSON_AddStringToObject(m, "suite", r->suite_name);
        cJSON_AddStringToObject(m, "run_id", r->run_id);
        publish(r, "remediation.applied", m);
        cJSON_Delete(m);
        item(r, f->cfg->name, O_APPLIED, p.id, p.rows, NULL);
    }
    vresults_free(&x.before);
    vresults_free(&x.after);
    plan_clear(&p);
    return rc;
}

/* ---- one fix ------------------------------------------------------------------------------- */

static int rerun(struct rrun *r, const struct rm_fix *f, const struct vresults *now)
{
    cJSON *m = f->cfg->payload != NULL ? cJSON_Parse(f->cfg->payload) : cJSON_CreateObject();
    cJSON *groups = cJSON_CreateArray();

    for (size_t i = 0; i < now->n; i++)
        if (now->v[i].outcome != VO_PASS)
            cJSON_AddItemToArray(groups, cJSON_CreateString(now->v[i].grp));
    cJSON_AddStringToObject(m, "fix", f->cfg->name);
    cJSON_AddStringToObject(m, "table", f->t->name);
    cJSON_AddStringToObject(m, "check", f->c->name);
    cJSON_AddItemToObject(m, "groups", groups);
    if (f->cfg->to_job != NULL)
        cJSON_AddStringToObject(m, "to_job", f->cfg->to_job);
    cJSON_AddStringToObject(m, "run_id", r->run_id);
    /* Only the job named to_job takes it (the bus's target), on whichever node. */
    char *text = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    if (text == NULL ||
        md_status_message_to(&r->w->st, f->cfg->message, text, -1, NULL, f->cfg->to_job) < 0)
        md_log(MD_LOG_WARN, "%s: the %s message could not be sent", f->cfg->name, f->cfg->message);
    cJSON_free(text);
    md_log(MD_LOG_NOTICE, "%s: asked for a rerun (%s%s%s)", f->cfg->name, f->cfg->message,
           f->cfg->to_job != NULL ? " for job " : "", f->cfg->to_job != NULL ? f->cfg->to_job : "");
    item(r, f->cfg->name, O_RERUN, NULL, -1, NULL);
    return 0;
}

static int one_fix(struct rrun *r, const struct rm_fix *f, struct md_error *err)
{
    struct vresults now = {0};
    struct plan p = {0};
    struct plan_ctx x = {r, f, &p};
    char key[160];
    int rc;

    if ((rc = md_worker_tick(r->w)) < 0)
        return md_error_set(err, rc, 0, 0, "stopped");
    if ((rc = check_now(r, f, &now, err)) < 0)
        goto out;
    if (check_passes(&now, f->c)) {
        md_log(MD_LOG_INFO, "%s: check %s passes: nothing to fix", f->cfg->name, f->c->name);
        alert_key(key, sizeof key, f->cfg->name);
        item(r, f->cfg->name, O_NOTHING, NULL, -1, NULL);
        goto out;
    }
    if (f->action == RA_RERUN && f->apply == RP_AUTO) {
        rc = rerun(r, f, &now);
        goto out;
    }
    if (f->action == RA_RERUN) {
        md_log(MD_LOG_NOTICE, "%s: a rerun fix under apply: %s asks nothing yet (use auto)",
               f->cfg->name, rm_apply_name(f->apply));
        item(r, f->cfg->name, O_PLANNED, NULL, -1, "a rerun is only sent with apply: auto");
        goto out;
    }
    /* apply: auto plans inside the apply's own transaction: the targets are selected once,
     * under the lock, and the plan stored with its outcome. */
    if (f->apply == RP_AUTO) {
        rc = apply(r, f, NULL, NULL, err);
        goto out;
    }
    /* The plan: the targets counted and hashed, in a transaction that keeps nothing. */
    if ((rc = md_pq_tx(r->db, plan_tx, &x, 3, err)) < 0 || (rc = store_plan(r, f, &p, err)) < 0)
        goto out;
    md_log(MD_LOG_NOTICE, "%s: plan %s: %s %" PRId64 " of %" PRId64 " row(s) of %s (check %s)",
           f->cfg->name, p.id, rm_action_name(f->action), p.rows, p.table_rows, f->t->name,
           f->c->name);
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "plan", p.id);
    cJSON_AddStringToObject(m, "fix", f->cfg->name);
    cJSON_AddStringToObject(m, "action", rm_action_name(f->action));
    cJSON_AddStringToObject(m, "table", f->t->name);
    cJSON_AddStringToObject(m, "check", f->c->name);
    cJSON_AddNumberToObject(m, "rows", (double)p.rows);
    cJSON_AddNumberToObject(m, "table_rows", (double)p.table_rows);
    cJSON_AddItemToObject(m, "samples", cJSON_Parse(p.samples ? p.samples : "[]"));
    cJSON_AddStringToObject(m, "apply", rm_apply_name(f->apply));
    char *approve = md_xasprintf("meshctl publish remediation.approve '{\"plan\":\"%s\"}'", p.id);
    cJSON_AddStringToObject(m, "approve", approve);
    md_free(approve);
    cJSON_AddStringToObject(m, "run_id", r->run_id);
    publish(r, "remediation.plan", m);
    cJSON_Delete(m);
    item(r, f->cfg->name, O_PLANNED, p.id, p.rows, NULL);
out:
    vresults_free(&now);
    plan_clear(&p);
    return rc;
}

/* ---- approval ------------------------------------------------------------------------------ */

static int approve(struct rrun *r, const char *plan_id, struct md_error *err)
{
    const char *params[2] = {plan_id, NULL};
    char ttl[32];
    PGresult *res = NULL;
    struct rm_fix_cfg fcfg;
    struct rm_fix f;
    int rc;

    snprintf(ttl, sizeof ttl, "%" PRIu64 " milliseconds", r->cfg->plan_ttl_ms);
    params[1] = ttl;
    rc = md_pq_exec(r->db,
                    "SELECT plan, hash, suite, fix_def::text, status, scope, tbl, "
                    "created_at < now() - $2::interval FROM meshd_remediate.plans WHERE plan = $1 "
                    "OR hash = $1 OR (length($1) >= 8 AND plan LIKE $1 || '%') ORDER BY "
                    "created_at DESC LIMIT 2",
                    2, params, &res, err);
    if (rc < 0)
        return rc;
    if (PQntuples(res) != 1) {
        rc = md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "approval of plan %s: %s", plan_id,
                          PQntuples(res) == 0 ? "no such plan" : "the prefix names two plans");
        PQclear(res);
        item(r, "?", O_REFUSED, plan_id, -1, err->msg);
        return rc;
    }
    char *id = md_xstrdup(PQgetvalue(res, 0, 0)), *hash = md_xstrdup(PQgetvalue(res, 0, 1));
    char *suite = md_xstrdup(PQgetvalue(res, 0, 2)), *def = md_xstrdup(PQgetvalue(res, 0, 3));
    char *status = md_xstrdup(PQgetvalue(res, 0, 4)), *scope = md_xstrdup(PQgetvalue(res, 0, 5));
    char *tbl = md_xstrdup(PQgetvalue(res, 0, 6));
    bool expired = PQgetvalue(res, 0, 7)[0] == 't';
    PQclear(res);
    memset(&f, 0, sizeof f);
    memset(&fcfg, 0, sizeof fcfg);
    if (strcmp(status, "planned") != 0 || expired) {
        if (expired && strcmp(status, "planned") == 0)
            set_plan_status(r, id, "expired", "approved after plan_ttl");
        rc =
            md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "approval of plan %s refused: it is %s", id,
                         expired && strcmp(status, "planned") == 0 ? "expired (plan_ttl)" : status);
        item(r, "?", O_REFUSED, id, -1, err->msg);
        goto out;
    }
    if ((rc = rm_fix_from_def(def, r->cfg, &fcfg, &f, err)) < 0)
        goto out;
    cJSON *sc = cJSON_CreateObject();
    if (scope[0] != '\0')
        cJSON_AddStringToObject(sc, tbl, scope);
    rc = suite_load(r, suite, sc, err);
    cJSON_Delete(sc);
    if (rc < 0 || (rc = rm_fix_resolve(&f, &r->suite, err)) < 0)
        goto out;
    md_log(MD_LOG_NOTICE, "plan %s approved: applying %s as planned", id, f.cfg->name);
    rc = apply(r, &f, hash, id, err);
out:
    rm_fixes_free(&f, 1);
    rm_fix_cfg_free(&fcfg);
    md_free(id);
    md_free(hash);
    md_free(suite);
    md_free(def);
    md_free(status);
    md_free(scope);
    md_free(tbl);
    return rc;
}

/* ---- undo ---------------------------------------------------------------------------------- */

struct undo_ctx {
    struct rrun *r;
    const char *run;
    int64_t rows;
    char *why;
};

/* Restores one table's rows of the run. */
static int undo_table(PGconn *db, struct undo_ctx *x, const char *tbl, struct md_error *err)
{
    const char *params[3] = {x->run, tbl, x->r->run_id};
    PGresult *res = NULL;
    struct md_buf q;
    int rc;

    /* The columns that can be written, and the key of an update's rows. */
    md_buf_init(&q, 1 << 16);
    md_buf_printf(&q,
                  "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum), "
                  "string_agg(quote_ident(attname), ', ' ORDER BY attnum) FILTER (WHERE "
                  "attidentity <> 'a'), string_agg('r.' || quote_ident(attname), ', ' ORDER BY "
                  "attnum) FILTER (WHERE attidentity <> 'a'), string_agg('r.' || "
                  "quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = "
                  "'%s'::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''",
                  tbl);
    if ((rc = md_pq_exec(db, md_buf_str(&q), 0, NULL, &res, err)) < 0)
        goto out;
    char *cols = md_xstrdup(PQgetvalue(res, 0, 0)), *ucols = md_xstrdup(PQgetvalue(res, 0, 1));
    char *rcols = md_xstrdup(PQgetvalue(res, 0, 2)), *racols = md_xstrdup(PQgetvalue(res, 0, 3));
    PQclear(res);
    res = NULL;
    md_buf_free(&q);
    md_buf_init(&q, 1 << 20);
    md_buf_printf(&q, "LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE", tbl);
    if ((rc = md_pq_exec(db, md_buf_str(&q), 0, NULL, NULL, err)) < 0)
        goto out_cols;

    /* Updates: each row must still be as the fix left it, then gets its before-image back. */
    rc = md_pq_exec(db,
                    "SELECT count(*), string_agg(DISTINCT k, ',') FROM meshd_remediate.audit a, "
                    "jsonb_object_keys(a.row_key) k WHERE a.run_id = $1 AND a.tbl = $2 AND "
                    "a.action = 'update' AND a.undone_by IS NULL",
                    2, params, &res, err);
    if (rc < 0)
        goto out_cols;
    bool updates = strtoll(PQgetvalue(res, 0, 0), NULL, 10) > 0;
    char *keys = md_xstrdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    res = NULL;
    if (updates) {
        if (strcmp(keys, "ctid") == 0) {
            x->why = md_xasprintf("%s has no key (key: or a primary key): its updated rows "
                                  "cannot be found again",
                                  tbl);
            rc = md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "undo refused: %s", x->why);
            md_free(keys);
            goto out_cols;
        }
        struct md_buf on;
        md_buf_init(&on, 1 << 16);
        char *save = NULL;
        int n = 0;
        for (char *k = strtok_r(keys, ",", &save); k != NULL; k = strtok_r(NULL, ",", &save)) {
            md_buf_printf(&on, "%st.", n++ > 0 ? " AND " : "");
            vsql_ident(&on, k);
            md_buf_puts(&on, " = ka.");
            vsql_ident(&on, k);
        }
        md_buf_free(&q);
        md_buf_init(&q, 1 << 20);
        md_buf_printf(&q,
                      "SELECT count(*) FROM meshd_remediate.audit a CROSS JOIN LATERAL "
                      "jsonb_populate_record(NULL::%s, a.after) ka LEFT JOIN %s t ON %s WHERE "
                      "a.run_id = $1 AND a.tbl = $2 AND a.action = 'update' AND a.undone_by IS "
                      "NULL AND (t IS NULL OR to_jsonb(t) <> a.after)",
                      tbl, tbl, md_buf_str(&on));
        rc = md_pq_exec(db, md_buf_str(&q), 2, params, &res, err);
        if (rc == 0 && strtoll(PQgetvalue(res, 0, 0), NULL, 10) > 0) {
            x->why = md_xasprintf("%s row(s) of %s changed since the fix: not restored over",
                                  PQgetvalue(res, 0, 0), tbl);
            rc = md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "undo refused: %s", x->why);
        }
        PQclear(res);
        res = NULL;
        if (rc == 0) {
            md_buf_free(&q);
            md_buf_init(&q, 1 << 20);
            md_buf_printf(&q,
                          "UPDATE %s t SET (%s) = ROW(%s) FROM meshd_remediate.audit a CROSS "
                          "JOIN LATERAL jsonb_populate_record(NULL::%s, a.after) ka CROSS JOIN "
                          "LATERAL jsonb_populate_record(NULL::%s, a.before) r WHERE a.run_id = "
                          "$1 AND a.tbl = $2 AND a.action = 'update' AND a.undone_by IS NULL AND "
                          "%s",
                          tbl, ucols, rcols, tbl, tbl, md_buf_str(&on));
            rc = md_pq_exec(db, md_buf_str(&q), 2, params, &res, err);
            if (rc == 0)
                x->rows += strtoll(PQcmdTuples(res), NULL, 10);
            PQclear(res);
            res = NULL;
        }
        md_buf_free(&on);
    }
    md_free(keys);
    if (rc < 0)
        goto out_cols;
    /* Deleted and quarantined rows: inserted again (a row with its key back in the table by
     * now makes the undo fail on the unique index, and roll back). */
    md_buf_free(&q);
    md_buf_init(&q, 1 << 20);
    md_buf_printf(&q,
                  "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM "
                  "meshd_remediate.audit a CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, "
                  "a.before) r WHERE a.run_id = $1 AND a.tbl = $2 AND a.action IN ('delete', "
                  "'quarantine') AND a.undone_by IS NULL",
                  tbl, cols, racols, tbl);
    rc = md_pq_exec(db, md_buf_str(&q), 2, params, &res, err);
    if (rc < 0)
        goto out_cols;
    x->rows += strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    res = NULL;
    if ((rc = md_pq_exec(db,
                         "UPDATE meshd_remediate.quarantine SET restored_by = $3 WHERE run_id = "
                         "$1 AND tbl = $2 AND restored_by IS NULL",
                         3, params, NULL, err)) < 0 ||
        (rc = md_pq_exec(db,
                         "UPDATE meshd_remediate.audit SET undone_by = $3 WHERE run_id = $1 AND "
                         "tbl = $2 AND undone_by IS NULL",
                         3, params, NULL, err)) < 0)
        goto out_cols;
out_cols:
    md_free(cols);
    md_free(ucols);
    md_free(rcols);
    md_free(racols);
out:
    PQclear(res);
    md_buf_free(&q);
    return rc;
}

static int undo_tx(PGconn *db, void *ud, struct md_error *err)
{
    struct undo_ctx *x = ud;
    const char *params[1] = {x->run};
    PGresult *res = NULL;
    int rc;

    x->rows = 0;
    md_free(x->why);
    x->why = NULL;
    /* Tables in name order: two undos lock them in the same order. */
    rc = md_pq_exec(db,
                    "SELECT tbl, count(*), count(*) FILTER (WHERE undone_by IS NOT NULL), "
                    "max(undone_by) FROM meshd_remediate.audit WHERE run_id = $1 GROUP BY tbl "
                    "ORDER BY tbl COLLATE \"C\"",
                    1, params, &res, err);
    if (rc < 0)
        return rc;
    int64_t total = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        total += strtoll(PQgetvalue(res, i, 1), NULL, 10);
        if (strtoll(PQgetvalue(res, i, 2), NULL, 10) > 0) {
            x->why =
                md_xasprintf("run %s was already undone (by %s)", x->run, PQgetvalue(res, i, 3));
            PQclear(res);
            return md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "undo refused: %s", x->why);
        }
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        x->why = md_xasprintf("run %s changed no rows: nothing to undo", x->run);
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s", x->why);
    }
    if (total > x->r->cfg->max_rows) {
        PQclear(res);
        x->why = md_xasprintf("%" PRId64 " rows to restore, over max_rows %" PRId64, total,
                              x->r->cfg->max_rows);
        return md_error_set(err, REMEDIATE_EREFUSED, 0, 0, "undo refused: %s", x->why);
    }
    for (int i = 0; i < PQntuples(res) && rc == 0; i++) {
        char *tbl = md_xstrdup(PQgetvalue(res, i, 0));
        rc = undo_table(db, x, tbl, err);
        md_free(tbl);
    }
    PQclear(res);
    return rc;
}

static int undo(struct rrun *r, const char *run, struct md_error *err)
{
    struct undo_ctx x = {.r = r, .run = run};
    int rc;

    md_log(MD_LOG_NOTICE, "undoing run %s", run);
    rc = md_pq_tx(r->db, undo_tx, &x, 3, err);
    if (rc == 0) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "undone", run);
        cJSON_AddNumberToObject(m, "rows", (double)x.rows);
        cJSON_AddStringToObject(m, "run_id", r->run_id);
        publish(r, "remediation.undone", m);
        cJSON_Delete(m);
        md_log(MD_LOG_NOTICE, "run %s undone: %" PRId64 " row(s) restored", run, x.rows);
        item(r, "undo", O_UNDONE, NULL, x.rows, NULL);
    } else if (rc == REMEDIATE_EREFUSED || rc == MD_ECONFIG) {
        item(r, "undo", O_REFUSED, NULL, -1, x.why);
        if (rc == REMEDIATE_EREFUSED)
            (void)md_status_alert(&r->w->st, MD_SEV_CRITICAL, "remediation.undo", x.why);
    }
    md_free(x.why);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------- */

static char *summary_text(struct rrun *r)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    for (size_t i = 0; i < MD_ARRAY_SIZE(outcome_names); i++)
        if (r->counts[i] > 0)
            cJSON_AddNumberToObject(o, outcome_names[i], (double)r->counts[i]);
    if (r->suite_name != NULL)
        cJSON_AddStringToObject(o, "suite", r->suite_name);
    cJSON_AddItemReferenceToObject(o, "fixes", r->items);
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text != NULL && strlen(text) > MD_STATUS_SUMMARY_MAX) {
        cJSON_free(text);
        o = cJSON_CreateObject();
        for (size_t i = 0; i < MD_ARRAY_SIZE(outcome_names); i++)
            cJSON_AddNumberToObject(o, outcome_names[i], (double)r->counts[i]);
        text = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    char *out = md_xstrdup(text != NULL ? text : "{}");
    cJSON_free(text);
    return out;
}

/* Is fix f named among the failing checks of a validation.failed payload? */
static bool named_in(const struct rm_fix *f, const cJSON *checks)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, checks)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(c, "table");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(c, "name");
        if (cJSON_IsString(t) && cJSON_IsString(n) && strcmp(t->valuestring, f->t->name) == 0 &&
            strcmp(n->valuestring, f->c->name) == 0)
            return true;
    }
    return false;
}

int remediate_run(struct md_worker *w, PGconn *db, const struct rm_cfg *cfg, struct rm_fix *fixes,
                  size_t nfixes, char **summary, struct md_error *err)
{
    struct rrun r = {.w = w, .db = db, .cfg = cfg, .items = cJSON_CreateArray()};
    const char *type = w->message_type != NULL ? w->message_type : "";
    cJSON *payload = w->message_payload != NULL ? cJSON_Parse(w->message_payload) : NULL;
    char timeout[32];
    const char *tp[1] = {timeout};
    int rc, worst = 0;

    *summary = NULL;
    md_worker_run_name(w, r.run_id, sizeof r.run_id);
    snprintf(timeout, sizeof timeout, "%" PRIu64, cfg->statement_timeout_ms);
    if ((rc = md_worker_apply_sql(db, (const char *)remediate_schema_sql, REMEDIATE_KEYSPACE,
                                  err)) < 0 ||
        (rc = md_pq_exec(db, "SET standard_conforming_strings = on", 0, NULL, NULL, err)) < 0 ||
        (rc = md_pq_exec(db, "SELECT set_config('statement_timeout', $1, false)", 1, tp, NULL,
                         err)) < 0)
        goto out;

    /* An undo: from the config (or --undo), or a remediation.undo message. */
    const cJSON *undo_run = cJSON_GetObjectItemCaseSensitive(payload, "run_id");
    if (cfg->undo != NULL || strcmp(type, "remediation.undo") == 0) {
        const char *run = cfg->undo != NULL          ? cfg->undo
                          : cJSON_IsString(undo_run) ? undo_run->valuestring
                                                     : NULL;
        rc = run != NULL ? undo(&r, run, err)
                         : md_error_set(err, MD_ECONFIG, 0, 0,
                                        "remediation.undo needs {\"run_id\": \"...\"}");
        goto done;
    }
    if (strcmp(type, "remediation.approve") == 0) {
        const cJSON *plan = cJSON_GetObjectItemCaseSensitive(payload, "plan");
        rc = cJSON_IsString(plan) ? approve(&r, plan->valuestring, err)
                                  : md_error_set(err, MD_ECONFIG, 0, 0,
                                                 "remediation.approve needs {\"plan\": \"...\"}");
        goto done;
    }

    /* Fixes for failing checks. */
    const cJSON *msg_suite = cJSON_GetObjectItemCaseSensitive(payload, "suite");
    const char *suite = cfg->suite != NULL ? cfg->suite
                        : strcmp(type, "validation.failed") == 0 && cJSON_IsString(msg_suite)
                            ? msg_suite->valuestring
                            : NULL;
    if (suite == NULL) {
        rc = md_error_set(err, MD_ECONFIG, 0, 0,
                          "suite: required (the validate suite whose checks the fixes name), "
                          "unless run on: validation.failed");
        goto out;
    }
    if (cfg->suite != NULL && cJSON_IsString(msg_suite) &&
        strcmp(msg_suite->valuestring, cfg->suite) != 0) {
        md_log(MD_LOG_INFO, "validation.failed of suite %s: not this job's (%s)",
               msg_suite->valuestring, cfg->suite);
        goto done;
    }
    if ((rc = suite_load(&r, suite,
                         strcmp(type, "validation.failed") == 0
                             ? cJSON_GetObjectItemCaseSensitive(payload, "scope")
                             : NULL,
                         err)) < 0)
        goto out;
    for (size_t i = 0; i < nfixes; i++)
        if ((rc = rm_fix_resolve(&fixes[i], &r.suite, err)) < 0)
            goto out;
    /* A cut message (too many failures to list) names none: every fix then looks at its
     * check itself. */
    const cJSON *failed = cJSON_GetObjectItemCaseSensitive(payload, "checks");
    bool by_name = strcmp(type, "validation.failed") == 0 && cJSON_IsArray(failed) &&
                   !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(payload, "truncated"));
    for (size_t i = 0; i < nfixes; i++) {
        struct rm_fix *f = &fixes[i];
        if (!f->cfg->enabled)
            continue;
        if (by_name && !named_in(f, failed))
            continue;
        rc = one_fix(&r, f, err);
        if (rc < 0 && rc != REMEDIATE_EREFUSED)
            goto out; /* the database, a stop: the other fixes would fail alike */
        if (rc < 0)
            worst = rc;
    }
    rc = worst;
done:
    if (rc == REMEDIATE_EREFUSED &&
        r.counts[O_REFUSED] + r.counts[O_STALE] + r.counts[O_FAILED] > 1)
        md_error_set(err, rc, 0, 0, "%zu fix(es) refused or rolled back",
                     r.counts[O_REFUSED] + r.counts[O_STALE] + r.counts[O_FAILED]);
    *summary = summary_text(&r);
out:
    cJSON_Delete(payload);
    cJSON_Delete(r.items);
    if (r.have_suite) {
        for (size_t i = 0; i < r.suite.n; i++) {
            md_free(r.scope[i]);
            md_free(r.scope_label[i]);
        }
    }
    md_free(r.scope);
    md_free(r.scope_label);
    vsuite_free(&r.suite);
    md_free(r.suite_json);
    md_free(r.suite_name);
    return rc;
}
