/* check.c - check.h: the check vocabulary bound and compiled, thresholds, and the SQL. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "meshd/md_alloc.h"

static const char *const type_names[] = {"row_count",   "missing",   "invalid",
                                         "duplicate",   "freshness", "schema",
                                         "failed_rows", "metric",    NULL};

const char *vc_type_name(enum vc_type t)
{
    return type_names[t];
}

const char *vc_outcome_name(enum vc_outcome o)
{
    static const char *const names[] = {"pass", "warn", "fail", "refused", "error"};
    return names[o];
}

/* ---- the key tables ------------------------------------------------------------------------- */

#define CK(m) offsetof(struct vc_check_cfg, m)
#define TB(m) offsetof(struct vc_table_cfg, m)

static const struct md_json_key check_keys[] = {
    {.name = "type", .type = MD_J_STRING, .off = CK(type), .required = true, .choices = type_names},
    {.name = "name", .type = MD_J_STRING, .off = CK(name)},
    {.name = "column", .type = MD_J_STRING, .off = CK(column)},
    {.name = "columns", .type = MD_J_STRV, .off = CK(columns), .max = 32},
    {.name = "filter", .type = MD_J_STRING, .off = CK(filter)},
    {.name = "group_by", .type = MD_J_STRV, .off = CK(group_by), .max = 8},
    {.name = "warn", .type = MD_J_STRING, .off = CK(warn)},
    {.name = "fail", .type = MD_J_STRING, .off = CK(fail)},
    {.name = "change", .type = MD_J_BOOL, .off = CK(change), .def = "false"},
    {.name = "missing_values", .type = MD_J_RAW, .off = CK(missing_values)},
    {.name = "values", .type = MD_J_RAW, .off = CK(values)},
    {.name = "regex", .type = MD_J_STRING, .off = CK(regex)},
    {.name = "min", .type = MD_J_RAW, .off = CK(min)},
    {.name = "max", .type = MD_J_RAW, .off = CK(max)},
    {.name = "min_length",
     .type = MD_J_INT,
     .off = CK(min_length),
     .def = "-1",
     .min = -1,
     .max = 1e9},
    {.name = "max_length",
     .type = MD_J_INT,
     .off = CK(max_length),
     .def = "-1",
     .min = -1,
     .max = 1e9},
    {.name = "reference", .type = MD_J_STRING, .off = CK(reference)},
    {.name = "expect", .type = MD_J_RAW, .off = CK(expect)},
    {.name = "allow_extra", .type = MD_J_BOOL, .off = CK(allow_extra), .def = "true"},
    {.name = "condition", .type = MD_J_STRING, .off = CK(condition)},
    {.name = "expression", .type = MD_J_STRING, .off = CK(expression)},
    {.name = "samples", .type = MD_J_INT, .off = CK(samples), .def = "-1", .min = -1, .max = 1000},
};

static const struct md_json_key table_keys[] = {
    {.name = "table", .type = MD_J_STRING, .off = TB(table), .required = true},
    {.name = "key", .type = MD_J_STRV, .off = TB(key), .max = 16},
    {.name = "filter", .type = MD_J_STRING, .off = TB(filter)},
    {.name = "partition", .type = MD_J_STRV, .off = TB(partition), .max = 8},
    {.name = "checks",
     .type = MD_J_ARRAY,
     .off = TB(checks),
     .required = true,
     .min = 1,
     .max = 500,
     .sub = check_keys,
     .nsub = MD_ARRAY_SIZE(check_keys),
     .elem_size = sizeof(struct vc_check_cfg)},
};

/* The document is the array itself: bound as the one member of a wrapper object. */
struct tables_doc {
    struct md_json_array tables;
};

static const struct md_json_key doc_keys[] = {
    {.name = "tables",
     .type = MD_J_ARRAY,
     .off = offsetof(struct tables_doc, tables),
     .required = true,
     .min = 1,
     .max = 200,
     .sub = table_keys,
     .nsub = MD_ARRAY_SIZE(table_keys),
     .elem_size = sizeof(struct vc_table_cfg)},
};

/* ---- thresholds ----------------------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A number with its unit; *pp moves past it. */
static bool parse_number(const char **pp, double *v, enum vc_unit *unit)
{
    const char *p = skip_ws(*pp);
    char *end;

    if (!(isdigit((unsigned char)*p) || *p == '.' || *p == '-' || *p == '+'))
        return false;
    errno = 0;
    *v = strtod(p, &end);
    if (end == p || errno == ERANGE || !isfinite(*v) ||
        (end[-1] != '.' && !isdigit((unsigned char)end[-1])))
        return false;
    for (const char *q = p; q < end; q++) /* decimal only: strtod also takes 0x10 */
        if (!(isdigit((unsigned char)*q) || strchr(".eE+-", *q) != NULL))
            return false;
    p = end;
    *unit = U_COUNT;
    switch (*p) {
    case '%':
        *unit = U_PERCENT;
        p++;
        break;
    case 's':
        *unit = U_SECONDS;
        p++;
        break;
    case 'm':
        *unit = U_SECONDS, *v *= 60, p++;
        break;
    case 'h':
        *unit = U_SECONDS, *v *= 3600, p++;
        break;
    case 'd':
        *unit = U_SECONDS, *v *= 86400, p++;
        break;
    default:
        break;
    }
    if (isalnum((unsigned char)*p) || *p == '%')
        return false;
    *pp = p;
    return true;
}

static bool word(const char **pp, const char *w)
{
    const char *p = skip_ws(*pp);
    size_t n = strlen(w);

    if (strncasecmp(p, w, n) != 0 || isalnum((unsigned char)p[n]))
        return false;
    *pp = p + n;
    return true;
}

int vc_threshold_parse(const char *s, struct vc_threshold *t, struct md_error *err)
{
    static const struct {
        const char *tok;
        enum vc_op op;
    } ops[] = {{"<=", OP_LE}, {">=", OP_GE}, {"!=", OP_NE}, {"<>", OP_NE},
               {"<", OP_LT},  {">", OP_GT},  {"==", OP_EQ}, {"=", OP_EQ}};
    const char *p = skip_ws(s);
    enum vc_unit ub;
    bool ok = false;

    memset(t, 0, sizeof *t);
    if (word(&p, "not")) {
        t->op = OP_NOT_BETWEEN;
        ok = word(&p, "between");
    } else if (word(&p, "between")) {
        t->op = OP_BETWEEN;
        ok = true;
    } else {
        for (size_t i = 0; i < MD_ARRAY_SIZE(ops); i++)
            if (strncmp(p, ops[i].tok, strlen(ops[i].tok)) == 0) {
                t->op = ops[i].op;
                p += strlen(ops[i].tok);
                ok = parse_number(&p, &t->a, &t->unit);
                break;
            }
    }
    if (ok && (t->op == OP_BETWEEN || t->op == OP_NOT_BETWEEN)) {
        ok = parse_number(&p, &t->a, &t->unit) && word(&p, "and") && parse_number(&p, &t->b, &ub) &&
             ub == t->unit && t->a <= t->b;
    }
    if (!ok || *skip_ws(p) != '\0')
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "\"%s\" is not a condition: expected an operator (< <= > >= = !=) "
                            "and a number, optionally with %% or a duration unit (\"> 0\", "
                            "\"> 5%%\", \"> 26h\"), or \"[not] between A and B\"",
                            s);
    t->set = true;
    return 0;
}

bool vc_threshold_hit(const struct vc_threshold *t, double v)
{
    if (!t->set)
        return false;
    switch (t->op) {
    case OP_LT:
        return v < t->a;
    case OP_LE:
        return v <= t->a;
    case OP_GT:
        return v > t->a;
    case OP_GE:
        return v >= t->a;
    case OP_EQ:
        return v == t->a;
    case OP_NE:
        return v != t->a;
    case OP_BETWEEN:
        return v >= t->a && v <= t->b;
    case OP_NOT_BETWEEN:
        return v < t->a || v > t->b;
    }
    return false;
}

static void num_text(char *buf, size_t cap, double v, enum vc_unit u)
{
    snprintf(buf, cap, "%.15g%s", v, u == U_PERCENT ? "%" : u == U_SECONDS ? "s" : "");
}

void vc_threshold_text(const struct vc_threshold *t, char *buf, size_t cap)
{
    static const char *const op_text[] = {"<", "<=", ">", ">=", "=", "!="};
    char a[48], b[48];

    num_text(a, sizeof a, t->a, t->unit);
    num_text(b, sizeof b, t->b, t->unit);
    if (t->op == OP_BETWEEN || t->op == OP_NOT_BETWEEN)
        snprintf(buf, cap, "%sbetween %s and %s", t->op == OP_NOT_BETWEEN ? "not " : "", a, b);
    else
        snprintf(buf, cap, "%s %s", op_text[t->op], a);
}

enum vc_outcome vc_judge(const struct vcheck *c, double v, double pct)
{
    if (vc_threshold_hit(&c->fail, c->fail.unit == U_PERCENT && c->counts ? pct : v))
        return VO_FAIL;
    if (vc_threshold_hit(&c->warn, c->warn.unit == U_PERCENT && c->counts ? pct : v))
        return VO_WARN;
    return VO_PASS;
}

/* ---- SQL text ------------------------------------------------------------------------------- */

void vsql_ident(struct md_buf *b, const char *s)
{
    md_buf_put(b, "\"", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '"')
            md_buf_put(b, "\"", 1);
        md_buf_put(b, p, 1);
    }
    md_buf_put(b, "\"", 1);
}

void vsql_literal(struct md_buf *b, const char *s)
{
    md_buf_put(b, "'", 1);
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == '\'')
            md_buf_put(b, "'", 1);
        md_buf_put(b, p, 1);
    }
    md_buf_put(b, "'", 1);
}

/* One part of a name at *pp, as SQL folds it: "Quoted" as is (with "" for a quote), bare
 * folded to lower case.  Appended to out (raw, unquoted).  False on an empty or broken part. */
static bool name_part(const char **pp, struct md_buf *out)
{
    const char *p = *pp;
    size_t start = out->len;

    if (*p == '"') {
        for (p++;; p++) {
            if (*p == '\0')
                return false;
            if (*p == '"') {
                if (p[1] != '"')
                    break;
                p++;
            }
            md_buf_put(out, p, 1);
        }
        p++;
    } else {
        for (; *p != '\0' && *p != '.'; p++) {
            char c = (char)tolower((unsigned char)*p);
            if (!(isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80))
                return false;
            md_buf_put(out, &c, 1);
        }
    }
    *pp = p;
    return out->len > start && !out->full;
}

/* Splits name into at most max parts (folded, unquoted).  Returns the count, 0 when broken. */
static size_t name_split(const char *name, char **parts, size_t max)
{
    const char *p = name;
    size_t n = 0;

    while (n < max) {
        struct md_buf b;
        md_buf_init(&b, 4096);
        if (!name_part(&p, &b)) {
            md_buf_free(&b);
            break;
        }
        parts[n++] = md_buf_take(&b);
        if (*p == '\0')
            return n;
        if (*p != '.')
            break;
        p++;
    }
    while (n > 0)
        md_free(parts[--n]);
    return 0;
}

static void free_parts(char **parts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        md_free(parts[i]);
}

bool vsql_qualified(struct md_buf *b, const char *name)
{
    char *parts[2];
    size_t n = name_split(name, parts, 2);

    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            md_buf_put(b, ".", 1);
        vsql_ident(b, parts[i]);
    }
    free_parts(parts, n);
    return n > 0;
}

/* A column name (one part) quoted into a new string, or NULL when it is not one. */
static char *column_ident(const char *name, char **folded)
{
    char *parts[1];
    struct md_buf b;

    if (name_split(name, parts, 1) != 1)
        return NULL;
    md_buf_init(&b, 8192);
    vsql_ident(&b, parts[0]);
    if (folded != NULL)
        *folded = parts[0];
    else
        md_free(parts[0]);
    return md_buf_take(&b);
}

char *vsql_column(const char *name)
{
    return column_ident(name, NULL);
}

int vsql_expr_lint(const char *expr, struct md_error *err)
{
    int depth = 0;
    const char *p = expr;

    if (*skip_ws(expr) == '\0')
        return md_error_set(err, MD_ECONFIG, 0, 0, "an empty SQL expression");
    while (*p != '\0') {
        char c = *p;
        if (c == '\'' || c == '"') {
            bool e_string = c == '\'' && p > expr && (p[-1] == 'E' || p[-1] == 'e') &&
                            (p - 1 == expr || !isalnum((unsigned char)p[-2]));
            for (p++;; p++) {
                if (*p == '\0')
                    return md_error_set(err, MD_ECONFIG, 0, 0, "a %s is left open in \"%s\"",
                                        c == '\'' ? "string" : "quoted name", expr);
                if (e_string && *p == '\\' && p[1] != '\0') {
                    p++;
                    continue;
                }
                if (*p == c) {
                    if (p[1] != c)
                        break;
                    p++;
                }
            }
            p++;
            continue;
        }
        if (c == '$' && isdigit((unsigned char)p[1]))
            return md_error_set(err, MD_ECONFIG, 0, 0, "parameters ($1) are not allowed in \"%s\"",
                                expr);
        if (c == '$' && (p == expr || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            /* $tag$ ... $tag$ */
            const char *t = p + 1;
            while (isalnum((unsigned char)*t) || *t == '_')
                t++;
            if (*t == '$') {
                size_t taglen = (size_t)(t - p) + 1;
                const char *close = t + 1;
                while ((close = strchr(close, '$')) != NULL && strncmp(close, p, taglen) != 0)
                    close++;
                if (close == NULL)
                    return md_error_set(err, MD_ECONFIG, 0, 0,
                                        "a dollar-quoted string is left open in \"%s\"", expr);
                p = close + taglen;
                continue;
            }
        }
        if (c == ';')
            return md_error_set(err, MD_ECONFIG, 0, 0, "\"%s\": one expression, without ';'", expr);
        if ((c == '-' && p[1] == '-') || (c == '/' && p[1] == '*'))
            return md_error_set(err, MD_ECONFIG, 0, 0, "\"%s\": comments are not allowed", expr);
        if (c == '(')
            depth++;
        if (c == ')' && --depth < 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "\"%s\": a ')' without its '('", expr);
        p++;
    }
    if (depth != 0)
        return md_error_set(err, MD_ECONFIG, 0, 0, "\"%s\": a '(' without its ')'", expr);
    return 0;
}

/* A JSON scalar (number, string, boolean) as SQL literal text, or NULL. */
static char *scalar_text(const cJSON *v)
{
    if (cJSON_IsString(v))
        return md_xstrdup(v->valuestring);
    if (cJSON_IsBool(v))
        return md_xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNumber(v)) {
        char buf[64];
        double d = v->valuedouble;
        snprintf(buf, sizeof buf, "%.15g", d);
        if (strtod(buf, NULL) != d)
            snprintf(buf, sizeof buf, "%.17g", d);
        return md_xstrdup(buf);
    }
    return NULL;
}

/* "(lit, lit, ...)" of a JSON array of scalars, appended; MD_ECONFIG when it is not one. */
static int literal_list(struct md_buf *b, const char *json, const char *what, struct md_error *err)
{
    cJSON *a = cJSON_Parse(json);
    int n = 0;

    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) == 0) {
        cJSON_Delete(a);
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s: expected a non-empty list of values", what);
    }
    md_buf_put(b, "(", 1);
    for (const cJSON *v = a->child; v != NULL; v = v->next, n++) {
        char *s = scalar_text(v);
        if (s == NULL) {
            cJSON_Delete(a);
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s[%d]: expected a string, a number or a boolean", what, n);
        }
        if (n > 0)
            md_buf_put(b, ", ", 2);
        vsql_literal(b, s);
        md_free(s);
    }
    md_buf_put(b, ")", 1);
    cJSON_Delete(a);
    return 0;
}

/* The group label: coalesce(t."a"::text, '(null)') [|| ',' || ...]. */
static void group_label(struct md_buf *b, char *const *cols, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            md_buf_puts(b, " || ',' || ");
        md_buf_printf(b, "coalesce(t.%s::text, '(null)')", cols[i]);
    }
}

void vsql_scan(struct md_buf *b, const struct vtable *t, const struct vcheck *const *cks, size_t n,
               const char *scope)
{
    const struct vcheck *c0 = cks[0];
    /* A metric with a filter: its own scan, the filter in WHERE (an arbitrary aggregate takes
     * no FILTER clause from outside). */
    const char *where_filter = c0->type == VC_METRIC && n == 1 ? c0->filter : NULL;

    md_buf_printf(b, "SELECT %s AS g, count(*) AS n",
                  c0->group_label != NULL ? c0->group_label : "NULL::text");
    for (size_t i = 0; i < n; i++) {
        const struct vcheck *c = cks[i];
        const char *f = c == c0 && where_filter != NULL ? NULL : c->filter;
        md_buf_puts(b, ", ");
        switch (c->type) {
        case VC_MISSING:
        case VC_INVALID:
        case VC_FAILED_ROWS:
            md_buf_printf(b, "count(*) FILTER (WHERE %s%s%s(%s))", f ? "(" : "", f ? f : "",
                          f ? ") AND " : "", c->bad);
            break;
        case VC_FRESHNESS:
            md_buf_printf(b, "extract(epoch FROM now() - (max(t.%s)%s%s%s)::timestamptz)::float8",
                          c->column, f ? " FILTER (WHERE " : "", f ? f : "", f ? ")" : "");
            break;
        case VC_METRIC:
            md_buf_printf(b, "(%s)::float8", c->agg);
            break;
        default: /* row_count */
            if (f)
                md_buf_printf(b, "count(*) FILTER (WHERE %s)", f);
            else
                md_buf_puts(b, "count(*)");
            break;
        }
        md_buf_printf(b, " AS v%zu, ", c->index);
        if (f)
            md_buf_printf(b, "count(*) FILTER (WHERE %s)", f);
        else
            md_buf_puts(b, "count(*)");
        md_buf_printf(b, " AS r%zu", c->index);
    }
    md_buf_printf(b, " FROM %s t", t->qname);
    for (size_t i = 0; i < n; i++)
        if (cks[i]->ref_table != NULL)
            md_buf_printf(b,
                          " LEFT JOIN (SELECT DISTINCT %s AS mv_ref FROM %s) r%zu ON r%zu.mv_ref "
                          "= t.%s",
                          cks[i]->ref_col, cks[i]->ref_table, cks[i]->index, cks[i]->index,
                          cks[i]->column);
    md_buf_printf(b, " WHERE true%s%s%s%s%s%s%s%s%s", t->filter ? " AND (" : "",
                  t->filter ? t->filter : "", t->filter ? ")" : "", scope ? " AND (" : "",
                  scope ? scope : "", scope ? ")" : "", where_filter ? " AND (" : "",
                  where_filter ? where_filter : "", where_filter ? ")" : "");
    if (c0->group_label != NULL) {
        md_buf_puts(b, " GROUP BY 1");
    }
}

static void where_common(struct md_buf *b, const struct vtable *t, const struct vcheck *c,
                         const char *scope)
{
    md_buf_puts(b, " WHERE true");
    if (t->filter != NULL)
        md_buf_printf(b, " AND (%s)", t->filter);
    if (scope != NULL)
        md_buf_printf(b, " AND (%s)", scope);
    if (c->filter != NULL)
        md_buf_printf(b, " AND (%s)", c->filter);
}

/* The duplicate key, t-qualified: t."a", t."b". */
static void dup_cols(struct md_buf *b, const struct vcheck *c)
{
    for (size_t i = 0; i < c->nsample_cols; i++)
        md_buf_printf(b, "%st.%s", i > 0 ? ", " : "", c->sample_cols[i]);
}

void vsql_dup(struct md_buf *b, const struct vtable *t, const struct vcheck *c, const char *scope)
{
    md_buf_printf(b,
                  "SELECT g, sum(c)::int8 AS rows, coalesce(sum(c - 1) FILTER (WHERE c > 1), "
                  "0)::float8 AS extra FROM (SELECT %s AS g, count(*) AS c FROM %s t",
                  c->group_label != NULL ? c->group_label : "NULL::text", t->qname);
    where_common(b, t, c, scope);
    md_buf_puts(b, " GROUP BY 1, ");
    dup_cols(b, c);
    md_buf_puts(b, ") d GROUP BY g");
}

void vsql_json_object(struct md_buf *b, char *const *cols, size_t n)
{
    md_buf_puts(b, "jsonb_build_object(");
    for (size_t i = 0; i < n; i++) {
        /* cols[i] is a quoted identifier: its text without the outer quotes, "" -> ". */
        struct md_buf raw;
        md_buf_init(&raw, 8192);
        for (const char *p = cols[i] + 1; p[1] != '\0'; p++) {
            md_buf_put(&raw, p, 1);
            if (*p == '"')
                p++;
        }
        md_buf_puts(b, i > 0 ? ", " : "");
        vsql_literal(b, md_buf_str(&raw));
        md_buf_printf(b, ", t.%s", cols[i]);
        md_buf_free(&raw);
    }
    md_buf_puts(b, ")");
}

void vsql_samples(struct md_buf *b, const struct vtable *t, const struct vcheck *c,
                  const char *scope, char *const *key, size_t nkey)
{
    const char *g = c->group_label != NULL ? c->group_label : "NULL::text";

    md_buf_puts(b, "SELECT ");
    if (c->type == VC_DUPLICATE) {
        vsql_json_object(b, c->sample_cols, c->nsample_cols);
        md_buf_printf(b, " AS k, jsonb_build_object('rows', count(*)) AS r, %s AS g FROM %s t", g,
                      t->qname);
        where_common(b, t, c, scope);
        if (c->group_label != NULL)
            md_buf_printf(b, " AND %s = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))",
                          c->group_label);
        md_buf_puts(b, " GROUP BY ");
        dup_cols(b, c);
        if (c->group_label != NULL)
            md_buf_puts(b, ", 3");
        md_buf_printf(b, " HAVING count(*) > 1 LIMIT %lld", (long long)c->samples);
        return;
    }
    vsql_json_object(b, key, nkey);
    md_buf_puts(b, " AS k, ");
    if (c->sample_cols != NULL)
        vsql_json_object(b, c->sample_cols, c->nsample_cols);
    else
        md_buf_puts(b, "to_jsonb(t)");
    md_buf_printf(b, " AS r, %s AS g FROM %s t", g, t->qname);
    if (c->ref_table != NULL)
        md_buf_printf(
            b, " LEFT JOIN (SELECT DISTINCT %s AS mv_ref FROM %s) r%zu ON r%zu.mv_ref = t.%s",
            c->ref_col, c->ref_table, c->index, c->index, c->column);
    where_common(b, t, c, scope);
    md_buf_printf(b, " AND (%s)", c->bad);
    if (c->group_label != NULL)
        md_buf_printf(b, " AND %s = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))",
                      c->group_label);
    md_buf_printf(b, " LIMIT %lld", (long long)c->samples);
}

bool vsql_scope(struct md_buf *b, const struct md_strv *cols, const char *label)
{
    const char *p = label;

    for (size_t i = 0; i < cols->n; i++) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL && i + 1 < cols->n ? (size_t)(comma - p) : strlen(p);
        char *id = column_ident(cols->v[i], NULL);
        char *val = md_xstrndup(p, len);
        if (id == NULL || (comma != NULL && i + 1 == cols->n) ||
            (comma == NULL && i + 1 < cols->n)) {
            md_free(id);
            md_free(val);
            return false;
        }
        md_buf_printf(b, "%st.%s = ", i > 0 ? " AND " : "", id);
        vsql_literal(b, val);
        md_free(id);
        md_free(val);
        p += len + (i + 1 < cols->n);
    }
    return cols->n > 0;
}

/* ---- compiling ------------------------------------------------------------------------------ */

enum {
    O_COLUMN = 1 << 0,
    O_COLUMNS = 1 << 1,
    O_MISSING = 1 << 2,
    O_VALID = 1 << 3,
    O_EXPECT = 1 << 4,
    O_CONDITION = 1 << 5,
    O_EXPRESSION = 1 << 6,
    O_CHANGE = 1 << 7,
    O_FILTER = 1 << 8,
    O_GROUP = 1 << 9,
    O_SAMPLES = 1 << 10,
};

static const unsigned type_options[] = {
    [VC_ROW_COUNT] = O_CHANGE | O_FILTER | O_GROUP,
    [VC_MISSING] = O_COLUMN | O_MISSING | O_FILTER | O_GROUP | O_SAMPLES,
    [VC_INVALID] = O_COLUMN | O_VALID | O_FILTER | O_GROUP | O_SAMPLES,
    [VC_DUPLICATE] = O_COLUMNS | O_FILTER | O_GROUP | O_SAMPLES,
    [VC_FRESHNESS] = O_COLUMN | O_FILTER | O_GROUP,
    [VC_SCHEMA] = O_EXPECT,
    [VC_FAILED_ROWS] = O_CONDITION | O_COLUMNS | O_FILTER | O_GROUP | O_SAMPLES,
    [VC_METRIC] = O_EXPRESSION | O_FILTER | O_GROUP,
};

/* The first option set in k that a check of its type does not take (allowed), or NULL. */
static const char *foreign_option(const struct vc_check_cfg *k, unsigned allowed)
{
    const struct {
        bool set;
        unsigned bit;
        const char *name;
    } o[] = {
        {k->column != NULL, O_COLUMN, "column"},
        {k->columns.n > 0, O_COLUMNS, "columns"},
        {k->missing_values != NULL, O_MISSING, "missing_values"},
        {k->values != NULL, O_VALID, "values"},
        {k->regex != NULL, O_VALID, "regex"},
        {k->min != NULL, O_VALID, "min"},
        {k->max != NULL, O_VALID, "max"},
        {k->min_length >= 0, O_VALID, "min_length"},
        {k->max_length >= 0, O_VALID, "max_length"},
        {k->reference != NULL, O_VALID, "reference"},
        {k->expect != NULL, O_EXPECT, "expect"},
        {!k->allow_extra, O_EXPECT, "allow_extra"},
        {k->condition != NULL, O_CONDITION, "condition"},
        {k->expression != NULL, O_EXPRESSION, "expression"},
        {k->change, O_CHANGE, "change"},
        {k->filter != NULL, O_FILTER, "filter"},
        {k->group_by.n > 0, O_GROUP, "group_by"},
        {k->samples >= 0, O_SAMPLES, "samples"},
    };
    for (size_t i = 0; i < MD_ARRAY_SIZE(o); i++)
        if (o[i].set && !(allowed & o[i].bit))
            return o[i].name;
    return NULL;
}

static void check_free(struct vcheck *c)
{
    md_free(c->name);
    md_free(c->path);
    md_free(c->bad);
    md_free(c->agg);
    md_free(c->filter);
    md_free(c->group_label);
    md_free(c->group_key);
    md_free(c->ref_table);
    md_free(c->ref_col);
    md_free(c->column);
    md_free(c->refused);
    md_free(c->proof);
    for (size_t i = 0; i < c->nsample_cols; i++)
        md_free(c->sample_cols[i]);
    md_free(c->sample_cols);
}

/* Quotes the columns names[n] into a new array; MD_ECONFIG naming the bad one. */
static int columns_quoted(const struct md_strv *names, char ***out, const char *what,
                          struct md_error *err)
{
    *out = names->n > 0 ? md_xcalloc(names->n, sizeof **out) : NULL;
    for (size_t i = 0; i < names->n; i++)
        if (((*out)[i] = column_ident(names->v[i], NULL)) == NULL)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s[%zu]: \"%s\" is not a column name", what,
                                i, names->v[i]);
    return 0;
}

static int threshold(const char *text, const char *what, struct vc_threshold *t,
                     struct md_error *err)
{
    int rc;

    if (text == NULL)
        return 0;
    if ((rc = vc_threshold_parse(text, t, err)) < 0) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        return md_error_set(err, rc, 0, 0, "%s: %s", what, msg);
    }
    return 0;
}

/* The invalid check's condition for a good value: values, regex, bounds, lengths, reference. */
static int invalid_sql(struct vcheck *c, const struct vc_check_cfg *k, struct md_error *err)
{
    struct md_buf b;
    int rc = 0;
    bool any = false;

    md_buf_init(&b, 1 << 20);
    md_buf_printf(&b, "t.%s IS NOT NULL AND NOT coalesce((true", c->column);
    if (k->values != NULL) {
        md_buf_printf(&b, " AND t.%s IN ", c->column);
        if ((rc = literal_list(&b, k->values, "values", err)) < 0)
            goto out;
        any = true;
    }
    if (k->regex != NULL) {
        md_buf_printf(&b, " AND t.%s::text ~ ", c->column);
        vsql_literal(&b, k->regex);
        any = true;
    }
    const char *bounds[2] = {k->min, k->max};
    for (int i = 0; i < 2; i++) {
        if (bounds[i] == NULL)
            continue;
        cJSON *v = cJSON_Parse(bounds[i]);
        char *s = cJSON_IsBool(v) ? NULL : scalar_text(v);
        cJSON_Delete(v);
        if (s == NULL) {
            rc = md_error_set(err, MD_ECONFIG, 0, 0, "%s: expected a number or a string",
                              i == 0 ? "min" : "max");
            goto out;
        }
        md_buf_printf(&b, " AND t.%s %s ", c->column, i == 0 ? ">=" : "<=");
        vsql_literal(&b, s);
        md_free(s);
        any = true;
    }
    if (k->min_length >= 0)
        md_buf_printf(&b, " AND length(t.%s::text) >= %lld", c->column, (long long)k->min_length);
    if (k->max_length >= 0)
        md_buf_printf(&b, " AND length(t.%s::text) <= %lld", c->column, (long long)k->max_length);
    any |= k->min_length >= 0 || k->max_length >= 0;
    if (k->reference != NULL) {
        char *parts[3];
        size_t n = name_split(k->reference, parts, 3);
        if (n < 2) {
            free_parts(parts, n);
            rc = md_error_set(err, MD_ECONFIG, 0, 0,
                              "reference: \"%s\" is not [schema.]table.column", k->reference);
            goto out;
        }
        struct md_buf q;
        md_buf_init(&q, 8192);
        for (size_t i = 0; i + 1 < n; i++) {
            md_buf_puts(&q, i > 0 ? "." : "");
            vsql_ident(&q, parts[i]);
        }
        c->ref_table = md_buf_take(&q);
        md_buf_init(&q, 8192);
        vsql_ident(&q, parts[n - 1]);
        c->ref_col = md_buf_take(&q);
        free_parts(parts, n);
        md_buf_printf(&b, " AND r%zu.mv_ref IS NOT NULL", c->index);
        any = true;
    }
    if (!any) {
        rc = md_error_set(err, MD_ECONFIG, 0, 0,
                          "an invalid check needs values, regex, min, max, min_length, "
                          "max_length or reference");
        goto out;
    }
    md_buf_puts(&b, "), false)");
    c->bad = md_buf_take(&b);
out:
    md_buf_free(&b);
    return rc;
}

static bool name_ok(const char *s)
{
    if (*s == '\0' || strlen(s) > 100)
        return false;
    for (; *s != '\0'; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* Compiles the check cfg k into c (index i of table t).  err without the path (the caller
 * adds it). */
static int check_compile(struct vcheck *c, const struct vc_check_cfg *k, size_t i,
                         int64_t default_samples, struct md_error *err)
{
    const char *bad_opt;
    enum vc_type type = VC_ROW_COUNT;
    int rc;

    for (int j = 0; type_names[j] != NULL; j++)
        if (strcmp(k->type, type_names[j]) == 0)
            type = (enum vc_type)j;
    c->cfg = k;
    c->type = type;
    c->index = i;
    if ((bad_opt = foreign_option(k, type_options[type])) != NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s: not an option of a %s check", bad_opt,
                            k->type);
    if ((type_options[type] & O_COLUMN) && k->column == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0, "column: required for a %s check", k->type);
    if (type == VC_DUPLICATE && k->columns.n == 0)
        return md_error_set(err, MD_ECONFIG, 0, 0, "columns: required for a duplicate check");
    if (type == VC_SCHEMA && k->expect == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0, "expect: required for a schema check");
    if (type == VC_FAILED_ROWS && k->condition == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0, "condition: required for a failed_rows check");
    if (type == VC_METRIC && k->expression == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0, "expression: required for a metric check");

    if (k->column != NULL && (c->column = column_ident(k->column, NULL)) == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0, "column: \"%s\" is not a column name",
                            k->column);
    /* The name: given, or derived from the type and the column(s). */
    if (k->name != NULL) {
        c->name = md_xstrdup(k->name);
    } else if (type == VC_FAILED_ROWS || type == VC_METRIC) {
        return md_error_set(err, MD_ECONFIG, 0, 0, "name: required for a %s check", k->type);
    } else {
        struct md_buf n;
        md_buf_init(&n, 4096);
        md_buf_puts(&n, k->type);
        if (k->change)
            md_buf_puts(&n, "_change");
        if (k->column != NULL)
            md_buf_printf(&n, "_%s", k->column);
        for (size_t j = 0; j < k->columns.n; j++)
            md_buf_printf(&n, "_%s", k->columns.v[j]);
        c->name = md_buf_take(&n);
        for (char *p = c->name; *p != '\0'; p++)
            if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-'))
                *p = '_';
    }
    if (!name_ok(c->name))
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "name: \"%s\" must be 1-100 letters, digits, '_' or '-'", c->name);

    const char *exprs[3] = {k->filter, k->condition, k->expression};
    const char *expr_names[3] = {"filter", "condition", "expression"};
    for (int j = 0; j < 3; j++) {
        if (exprs[j] != NULL && (rc = vsql_expr_lint(exprs[j], err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return md_error_set(err, rc, 0, 0, "%s: %s", expr_names[j], msg);
        }
    }
    c->filter = k->filter != NULL ? md_xstrdup(k->filter) : NULL;

    /* Thresholds, their units and defaults per type. */
    if ((rc = threshold(k->warn, "warn", &c->warn, err)) < 0 ||
        (rc = threshold(k->fail, "fail", &c->fail, err)) < 0)
        return rc;
    c->counts =
        type == VC_MISSING || type == VC_INVALID || type == VC_DUPLICATE || type == VC_FAILED_ROWS;
    struct vc_threshold *th[2] = {&c->warn, &c->fail};
    for (int j = 0; j < 2; j++) {
        const char *which = j == 0 ? "warn" : "fail";
        if (!th[j]->set)
            continue;
        if (type == VC_FRESHNESS) {
            if (th[j]->unit == U_PERCENT)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s: a freshness threshold is an age (\"> 26h\")", which);
            th[j]->unit = U_SECONDS;
        } else if (th[j]->unit == U_SECONDS) {
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s: a duration is only for a freshness check", which);
        } else if (type == VC_ROW_COUNT && k->change) {
            if (th[j]->unit != U_PERCENT)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s: a change is a percentage (\"< -20%%\")", which);
        } else if (th[j]->unit == U_PERCENT && !c->counts) {
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s: a percentage needs a check that counts bad rows", which);
        }
    }
    if (!c->warn.set && !c->fail.set) {
        if (type == VC_FRESHNESS || type == VC_METRIC || (type == VC_ROW_COUNT && k->change))
            return md_error_set(err, MD_ECONFIG, 0, 0, "warn or fail: required for a %s%s check",
                                k->change ? "change " : "", k->type);
        rc = vc_threshold_parse(type == VC_ROW_COUNT ? "< 1" : "> 0", &c->fail, err);
        if (rc < 0)
            return rc;
    }

    /* The SQL pieces. */
    c->samples = k->samples >= 0 ? k->samples : default_samples;
    switch (type) {
    case VC_MISSING: {
        struct md_buf b;
        md_buf_init(&b, 1 << 20);
        md_buf_printf(&b, "t.%s IS NULL", c->column);
        if (k->missing_values != NULL) {
            md_buf_printf(&b, " OR t.%s::text IN ", c->column);
            if ((rc = literal_list(&b, k->missing_values, "missing_values", err)) < 0) {
                md_buf_free(&b);
                return rc;
            }
        }
        c->bad = md_buf_take(&b);
        break;
    }
    case VC_INVALID:
        if ((rc = invalid_sql(c, k, err)) < 0)
            return rc;
        break;
    case VC_FAILED_ROWS:
        c->bad = md_xasprintf("NOT (%s)", k->condition);
        break;
    case VC_METRIC:
        c->agg = md_xstrdup(k->expression);
        break;
    default:
        break;
    }
    if (c->column != NULL && (type == VC_MISSING || type == VC_INVALID)) {
        c->sample_cols = md_xcalloc(1, sizeof *c->sample_cols);
        c->sample_cols[0] = md_xstrdup(c->column);
        c->nsample_cols = 1;
    } else if (k->columns.n > 0) {
        c->nsample_cols = k->columns.n;
        if ((rc = columns_quoted(&k->columns, &c->sample_cols, "columns", err)) < 0)
            return rc;
    }
    if (type == VC_SCHEMA) {
        cJSON *e = cJSON_Parse(k->expect);
        bool ok = cJSON_IsObject(e) && e->child != NULL;
        for (const cJSON *v = ok ? e->child : NULL; v != NULL; v = v->next)
            ok &= cJSON_IsString(v) && v->valuestring[0] != '\0';
        cJSON_Delete(e);
        if (!ok)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "expect: expected an object of column: type (\"jv\": \"bigint\")");
    }

    /* The grouping: checks with the same group_by share a scan. */
    if (k->group_by.n > 0) {
        char **g;
        struct md_buf b;
        if ((rc = columns_quoted(&k->group_by, &g, "group_by", err)) < 0) {
            for (size_t j = 0; j < k->group_by.n; j++)
                md_free(g[j]);
            md_free(g);
            return rc;
        }
        md_buf_init(&b, 1 << 16);
        group_label(&b, g, k->group_by.n);
        c->group_label = md_buf_take(&b);
        md_buf_init(&b, 1 << 16);
        for (size_t j = 0; j < k->group_by.n; j++) {
            md_buf_printf(&b, "%s%s", j > 0 ? "," : "", g[j]);
            md_free(g[j]);
        }
        md_free(g);
        c->group_key = md_buf_take(&b);
    } else {
        c->group_key = md_xstrdup("");
    }
    return 0;
}

static int table_compile(struct vtable *t, const struct vc_table_cfg *k, int64_t default_samples,
                         const char *path, struct md_error *err)
{
    struct md_buf q;
    int rc;

    t->cfg = k;
    t->name = md_xstrdup(k->table);
    md_buf_init(&q, 8192);
    if (!vsql_qualified(&q, k->table)) {
        md_buf_free(&q);
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.table: \"%s\" is not [schema.]table", path,
                            k->table);
    }
    t->qname = md_buf_take(&q);
    if (k->filter != NULL) {
        if ((rc = vsql_expr_lint(k->filter, err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return md_error_set(err, rc, 0, 0, "%s.filter: %s", path, msg);
        }
        t->filter = md_xstrdup(k->filter);
    }
    const struct md_strv *lists[2] = {&k->key, &k->partition};
    const char *list_names[2] = {"key", "partition"};
    for (int j = 0; j < 2; j++)
        for (size_t i = 0; i < lists[j]->n; i++) {
            char *id = column_ident(lists[j]->v[i], NULL);
            if (id == NULL)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s.%s[%zu]: \"%s\" is not a column name", path, list_names[j],
                                    i, lists[j]->v[i]);
            md_free(id);
        }
    t->checks = md_xcalloc(k->checks.n, sizeof *t->checks);
    for (size_t i = 0; i < k->checks.n; i++) {
        struct vcheck *c = &t->checks[i];
        const struct vc_check_cfg *ck = &((const struct vc_check_cfg *)k->checks.v)[i];
        t->nchecks = i + 1;
        c->path = md_xasprintf("%s.checks[%zu]", path, i);
        if ((rc = check_compile(c, ck, i, default_samples, err)) < 0) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            return md_error_set(err, rc, 0, 0, "%s.%s", c->path, msg);
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->checks[j].name, c->name) == 0)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s.name: \"%s\" is already the name of %s (give one a name:)",
                                    c->path, c->name, t->checks[j].path);
    }
    return 0;
}

int vsuite_bind(const char *json, size_t len, int64_t default_samples, struct vsuite *s,
                struct md_error *err)
{
    struct tables_doc doc = {{0}};
    struct md_buf wrapped;
    int rc;

    memset(s, 0, sizeof *s);
    /* {"tables": <json>} so md_json's messages name the paths as the user wrote them. */
    md_buf_init(&wrapped, len + 64);
    md_buf_puts(&wrapped, "{\"tables\":");
    md_buf_put(&wrapped, json, len);
    md_buf_puts(&wrapped, "}");
    rc = md_json_bind(md_buf_str(&wrapped), wrapped.len, doc_keys, MD_ARRAY_SIZE(doc_keys), &doc,
                      err);
    md_buf_free(&wrapped);
    s->tables = doc.tables;
    if (rc < 0)
        return rc;
    s->t = md_xcalloc(s->tables.n, sizeof *s->t);
    for (size_t i = 0; i < s->tables.n; i++) {
        char path[96];
        snprintf(path, sizeof path, "tables[%zu]", i);
        s->n = i + 1;
        if ((rc = table_compile(&s->t[i], &((const struct vc_table_cfg *)s->tables.v)[i],
                                default_samples, path, err)) < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->t[j].name, s->t[i].name) == 0)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s.table: \"%s\" is listed twice (put its checks together)",
                                    path, s->t[i].name);
    }
    return 0;
}

void vsuite_free(struct vsuite *s)
{
    struct tables_doc doc = {s->tables};

    for (size_t i = 0; i < s->n; i++) {
        struct vtable *t = &s->t[i];
        for (size_t j = 0; j < t->nchecks; j++)
            check_free(&t->checks[j]);
        md_free(t->checks);
        md_free(t->name);
        md_free(t->qname);
        md_free(t->filter);
        for (size_t j = 0; j < t->nkey; j++)
            md_free(t->key[j]);
        md_free(t->key);
    }
    md_free(s->t);
    md_json_free(doc_keys, MD_ARRAY_SIZE(doc_keys), &doc);
    memset(s, 0, sizeof *s);
}
