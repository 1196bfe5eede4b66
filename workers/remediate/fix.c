/* fix.c - remediate.h: fixes compiled, tied to their checks, and their SQL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "remediate.h"

static const char *const action_names[] = {"update", "delete", "quarantine", "rerun", NULL};
static const char *const apply_names[] = {"plan", "auto", "approval", NULL};

const char *rm_action_name(enum rm_action a)
{
    return action_names[a];
}

const char *rm_apply_name(enum rm_apply a)
{
    return apply_names[a];
}

#define FX(m) offsetof(struct rm_fix_cfg, m)

const struct md_json_key rm_fix_keys[RM_NFIX_KEYS] = {
    {.name = "name", .type = MD_J_STRING, .off = FX(name), .required = true},
    {.name = "check", .type = MD_J_STRING, .off = FX(check), .required = true},
    {.name = "table", .type = MD_J_STRING, .off = FX(table)},
    {.name = "where", .type = MD_J_STRING, .off = FX(where)},
    {.name = "action",
     .type = MD_J_STRING,
     .off = FX(action),
     .required = true,
     .choices = action_names},
    {.name = "set", .type = MD_J_RAW, .off = FX(set)},
    {.name = "order_by", .type = MD_J_STRING, .off = FX(order_by)},
    {.name = "reason", .type = MD_J_STRING, .off = FX(reason)},
    {.name = "message", .type = MD_J_STRING, .off = FX(message)},
    {.name = "payload", .type = MD_J_RAW, .off = FX(payload)},
    {.name = "to_job", .type = MD_J_STRING, .off = FX(to_job)},
    {.name = "apply", .type = MD_J_STRING, .off = FX(apply), .choices = apply_names},
    {.name = "max_rows",
     .type = MD_J_INT,
     .off = FX(max_rows),
     .def = "-1",
     .min = -1,
     .max = 1e12},
    {.name = "max_percent",
     .type = MD_J_DOUBLE,
     .off = FX(max_percent),
     .def = "-1",
     .min = -1,
     .max = 100},
    {.name = "enabled", .type = MD_J_BOOL, .off = FX(enabled), .def = "true"},
};

static int choice(const char *s, const char *const *names)
{
    for (int i = 0; names[i] != NULL; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return 0;
}

/* The fix as canonical JSON: the keys in table order, absent ones left out. */
static char *fix_def(const struct rm_fix_cfg *k)
{
    cJSON *o = cJSON_CreateObject();
    const struct {
        const char *name, *value;
        bool raw;
    } s[] = {{"name", k->name, false},         {"check", k->check, false},
             {"table", k->table, false},       {"where", k->where, false},
             {"action", k->action, false},     {"set", k->set, true},
             {"order_by", k->order_by, false}, {"reason", k->reason, false},
             {"message", k->message, false},   {"payload", k->payload, true},
             {"to_job", k->to_job, false}};
    char *text;

    for (size_t i = 0; i < MD_ARRAY_SIZE(s); i++) {
        if (s[i].value == NULL)
            continue;
        if (s[i].raw) {
            cJSON *v = cJSON_Parse(s[i].value);
            if (v != NULL)
                cJSON_AddItemToObject(o, s[i].name, v);
        } else {
            cJSON_AddStringToObject(o, s[i].name, s[i].value);
        }
    }
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text != NULL ? text : md_xstrdup("{}");
}

static int lint(const char *what, const char *expr, struct md_error *err)
{
    int rc = vsql_expr_lint(expr, err);

    if (rc < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return md_error_set(err, rc, 0, 0, "%s: %s", what, msg);
    }
    return 0;
}

/* Compiles one fix; err without the path (the caller adds it). */
static int fix_compile(struct rm_fix *f, const struct rm_fix_cfg *k, const struct rm_cfg *run,
                       struct md_error *err)
{
    int rc;

    f->cfg = k;
    f->action = (enum rm_action)choice(k->action, action_names);
    f->apply = (enum rm_apply)choice(k->apply != NULL                    ? k->apply
                                     : run != NULL && run->apply != NULL ? run->apply
                                                                         : "plan",
                                     apply_names);
    f->max_rows = k->max_rows >= 0 ? k->max_rows : run != NULL ? run->max_rows : 1000;
    f->max_percent = k->max_percent >= 0 ? k->max_percent : run != NULL ? run->max_percent : 1;
    for (const char *p = k->name; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "name: \"%s\" must be letters, digits, '_' or '-'", k->name);
    if (k->name[0] == '\0' || strlen(k->name) > 100)
        return md_error_set(err, MD_ECONFIG, 0, 0, "name: 1-100 characters");
    if (k->where != NULL && (rc = lint("where", k->where, err)) < 0)
        return rc;
    if (k->order_by != NULL && (rc = lint("order_by", k->order_by, err)) < 0)
        return rc;
    const struct {
        bool set;
        enum rm_action only;
        const char *name;
    } opts[] = {{k->set != NULL, RA_UPDATE, "set"},
                {k->reason != NULL, RA_QUARANTINE, "reason"},
                {k->message != NULL, RA_RERUN, "message"},
                {k->payload != NULL, RA_RERUN, "payload"},
                {k->to_job != NULL, RA_RERUN, "to_job"}};
    for (size_t i = 0; i < MD_ARRAY_SIZE(opts); i++)
        if (opts[i].set && f->action != opts[i].only)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s: not an option of a %s fix",
                                opts[i].name, k->action);
    if (f->action == RA_RERUN && (k->where != NULL || k->order_by != NULL))
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s: a rerun fix changes no rows (it asks a job to run again)",
                            k->where != NULL ? "where" : "order_by");
    if (f->action == RA_RERUN && k->message == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "message: required for a rerun fix (the bus message type the job "
                            "to run again has in on:)");
    if (k->message != NULL && !md_event_name_ok(k->message))
        return md_error_set(err, MD_ECONFIG, 0, 0, "message: \"%s\" is not a message type",
                            k->message);
    if (k->to_job != NULL && !md_name_ok(k->to_job))
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "to_job: \"%s\" is not a job name (letters, digits, '_', '-', '.')",
                            k->to_job);
    if (k->payload != NULL) {
        cJSON *p = cJSON_Parse(k->payload);
        bool ok = cJSON_IsObject(p);
        cJSON_Delete(p);
        if (!ok)
            return md_error_set(err, MD_ECONFIG, 0, 0, "payload: expected an object");
    }
    if (f->action == RA_UPDATE) {
        cJSON *s = k->set != NULL ? cJSON_Parse(k->set) : NULL;
        if (!cJSON_IsObject(s) || s->child == NULL) {
            cJSON_Delete(s);
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "set: required for an update fix: an object of column: SQL "
                                "expression ({sale_prc1: \"sale_prc1 / 100\"})");
        }
        f->nset = (size_t)cJSON_GetArraySize(s);
        f->set_cols = md_xcalloc(f->nset, sizeof *f->set_cols);
        f->set_exprs = md_xcalloc(f->nset, sizeof *f->set_exprs);
        size_t i = 0;
        rc = 0;
        for (const cJSON *v = s->child; v != NULL && rc == 0; v = v->next, i++) {
            char what[160];
            snprintf(what, sizeof what, "set.%.100s", v->string);
            if (!cJSON_IsString(v) && !cJSON_IsNumber(v)) {
                rc = md_error_set(err, MD_ECONFIG, 0, 0, "%s: expected an SQL expression", what);
                break;
            }
            f->set_cols[i] = vsql_column(v->string);
            f->set_exprs[i] = cJSON_IsString(v) ? md_xstrdup(v->valuestring)
                                                : md_xasprintf("%.17g", v->valuedouble);
            if (f->set_cols[i] == NULL)
                rc = md_error_set(err, MD_ECONFIG, 0, 0, "%s: not a column name", what);
            else
                rc = lint(what, f->set_exprs[i], err);
        }
        cJSON_Delete(s);
        if (rc < 0)
            return rc;
    }
    f->def = fix_def(k);
    return 0;
}

int rm_fixes_compile(const struct rm_cfg *cfg, struct rm_fix **fixes, size_t *n,
                     struct md_error *err)
{
    const struct rm_fix_cfg *k = cfg->fixes.v;
    int rc;

    *n = 0;
    *fixes = md_xcalloc(cfg->fixes.n + 1, sizeof **fixes);
    for (size_t i = 0; i < cfg->fixes.n; i++) {
        struct rm_fix *f = &(*fixes)[i];
        *n = i + 1;
        f->path = md_xasprintf("fixes[%zu]", i);
        if ((rc = fix_compile(f, &k[i], cfg, err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return md_error_set(err, rc, 0, 0, "%s.%s", f->path, msg);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(k[j].name, k[i].name) == 0)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s.name: \"%s\" is already the name of fixes[%zu]", f->path,
                                    k[i].name, j);
    }
    return 0;
}

static void fix_free(struct rm_fix *f)
{
    for (size_t i = 0; i < f->nset; i++) {
        md_free(f->set_cols[i]);
        md_free(f->set_exprs[i]);
    }
    md_free(f->set_cols);
    md_free(f->set_exprs);
    md_free(f->def);
    md_free(f->path);
}

void rm_fixes_free(struct rm_fix *fixes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fix_free(&fixes[i]);
}

int rm_fix_from_def(const char *def, const struct rm_cfg *run, struct rm_fix_cfg *fcfg,
                    struct rm_fix *f, struct md_error *err)
{
    int rc;

    memset(fcfg, 0, sizeof *fcfg);
    memset(f, 0, sizeof *f);
    f->path = md_xstrdup("plan");
    if ((rc = md_json_bind(def, strlen(def), rm_fix_keys, RM_NFIX_KEYS, fcfg, err)) < 0)
        return rc;
    return fix_compile(f, fcfg, run, err);
}

void rm_fix_cfg_free(struct rm_fix_cfg *fcfg)
{
    md_json_free(rm_fix_keys, RM_NFIX_KEYS, fcfg);
}

int rm_fix_resolve(struct rm_fix *f, struct vsuite *s, struct md_error *err)
{
    const char *want_table = f->cfg->table, *want = f->cfg->check;
    const char *dot = strrchr(want, '.');
    char *tbl = NULL;
    size_t found = 0;

    f->t = NULL;
    f->c = NULL;
    if (want_table == NULL && dot != NULL) { /* "table.name" */
        tbl = md_xstrndup(want, (size_t)(dot - want));
        want_table = tbl;
        want = dot + 1;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (want_table != NULL && strcmp(s->t[i].name, want_table) != 0)
            continue;
        for (size_t j = 0; j < s->t[i].nchecks; j++)
            if (strcmp(s->t[i].checks[j].name, want) == 0) {
                found++;
                f->t = &s->t[i];
                f->c = &s->t[i].checks[j];
            }
    }
    md_free(tbl);
    if (found == 0)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s (%s).check: the suite has no check \"%s\"%s%s", f->path,
                            f->cfg->name, f->cfg->check, f->cfg->table ? " in table " : "",
                            f->cfg->table ? f->cfg->table : "");
    if (found > 1)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s (%s).check: \"%s\" names a check in %zu tables: say which "
                            "(table: or \"table.check\")",
                            f->path, f->cfg->name, f->cfg->check, found);
    if (f->action != RA_RERUN && f->cfg->where == NULL && !f->c->counts)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s (%s): check %s is a %s check, which has no failing rows to %s: "
                            "give where:, or use a rerun fix",
                            f->path, f->cfg->name, f->c->name, vc_type_name(f->c->type),
                            f->cfg->action);
    return 0;
}

/* ---- SQL ------------------------------------------------------------------------------------ */

static void key_json(struct md_buf *b, const struct vtable *t)
{
    if (t->nkey > 0)
        vsql_json_object(b, t->key, t->nkey);
    else
        md_buf_puts(b, "jsonb_build_object('ctid', t.ctid::text)");
}

static void where_rows(struct md_buf *b, const struct rm_fix *f, const char *scope)
{
    const struct vtable *t = f->t;
    const struct vcheck *c = f->c;

    md_buf_puts(b, " WHERE true");
    if (t->filter != NULL)
        md_buf_printf(b, " AND (%s)", t->filter);
    if (scope != NULL)
        md_buf_printf(b, " AND (%s)", scope);
    if (c->filter != NULL)
        md_buf_printf(b, " AND (%s)", c->filter);
    if (f->cfg->where != NULL)
        md_buf_printf(b, " AND (%s)", f->cfg->where);
    else if (c->bad != NULL)
        md_buf_printf(b, " AND (%s)", c->bad);
}

void rmsql_targets(struct md_buf *b, const struct rm_fix *f, const char *scope)
{
    const struct vtable *t = f->t;
    const struct vcheck *c = f->c;

    md_buf_puts(b, "CREATE TEMP TABLE _mr_targets ON COMMIT DROP AS ");
    if (c->type == VC_DUPLICATE && f->cfg->where == NULL) {
        /* every copy of a duplicated key but the first (order_by, else the physical order) */
        md_buf_puts(b, "SELECT tid, k FROM (SELECT t.ctid AS tid, ");
        key_json(b, t);
        md_buf_puts(b, " AS k, row_number() OVER (PARTITION BY ");
        for (size_t i = 0; i < c->nsample_cols; i++)
            md_buf_printf(b, "%st.%s", i > 0 ? ", " : "", c->sample_cols[i]);
        md_buf_printf(b, " ORDER BY %s) AS mv_rn FROM %s t",
                      f->cfg->order_by != NULL ? f->cfg->order_by : "t.ctid", t->qname);
        where_rows(b, f, scope);
        md_buf_puts(b, ") d WHERE mv_rn > 1");
        return;
    }
    md_buf_puts(b, "SELECT t.ctid AS tid, ");
    key_json(b, t);
    md_buf_printf(b, " AS k FROM %s t", t->qname);
    if (c->ref_table != NULL && f->cfg->where == NULL)
        md_buf_printf(
            b, " LEFT JOIN (SELECT DISTINCT %s AS mv_ref FROM %s) r%zu ON r%zu.mv_ref = t.%s",
            c->ref_col, c->ref_table, c->index, c->index, c->column);
    where_rows(b, f, scope);
}

void rmsql_audit(struct md_buf *b, const struct rm_fix *f)
{
    md_buf_puts(b, "INSERT INTO meshd_remediate.audit (run_id, plan, fix, tbl, action, row_key, "
                   "before) SELECT $1, $2, ");
    vsql_literal(b, f->cfg->name);
    md_buf_puts(b, ", ");
    vsql_literal(b, f->t->qname);
    md_buf_printf(b, ", '%s', x.k, to_jsonb(t) FROM %s t JOIN _mr_targets x ON t.ctid = x.tid",
                  rm_action_name(f->action), f->t->qname);
}

void rmsql_action(struct md_buf *b, const struct rm_fix *f)
{
    const char *q = f->t->qname;

    switch (f->action) {
    case RA_UPDATE:
        md_buf_printf(b, "WITH u AS (UPDATE %s t SET ", q);
        for (size_t i = 0; i < f->nset; i++)
            md_buf_printf(b, "%s%s = (%s)", i > 0 ? ", " : "", f->set_cols[i], f->set_exprs[i]);
        md_buf_puts(b, " FROM _mr_targets x WHERE t.ctid = x.tid RETURNING x.k AS k, to_jsonb(t) "
                       "AS after) UPDATE meshd_remediate.audit a SET after = u.after FROM u "
                       "WHERE a.run_id = $1 AND a.plan = $2 AND a.row_key = u.k");
        break;
    case RA_DELETE:
        md_buf_printf(b, "DELETE FROM %s t USING _mr_targets x WHERE t.ctid = x.tid", q);
        break;
    case RA_QUARANTINE:
        md_buf_printf(
            b,
            "WITH d AS (DELETE FROM %s t USING _mr_targets x WHERE t.ctid = x.tid "
            "RETURNING x.k AS k, to_jsonb(t) AS r) INSERT INTO meshd_remediate.quarantine "
            "(run_id, fix, tbl, reason, row_key, row_data) SELECT $1, ",
            q);
        vsql_literal(b, f->cfg->name);
        md_buf_puts(b, ", ");
        vsql_literal(b, q);
        md_buf_puts(b, ", $2, k, r FROM d");
        break;
    case RA_RERUN:
        break;
    }
}
