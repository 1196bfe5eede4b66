/* check.h - meshd-validate's checks: the config vocabulary, thresholds, and the SQL each check
 * becomes.  Pure: no I/O, no database (tests/unit/test_validate_check.c drives it directly),
 * and shared with meshd-remediate, which re-runs a suite's checks inside its own transaction.
 *
 * A suite is a list of tables, each with its checks (docs/validate.md).  vsuite_bind turns the
 * JSON of `tables:` into compiled checks: each knows its type, name, alert key, thresholds, and
 * the SQL pieces the scan is built from.  The SQL builders then write:
 *
 *   vsql_scan     ONE aggregate SELECT for a table and a group_by: every check of that
 *                 grouping is a column (count(*) FILTER (WHERE ...), max(...), a metric
 *                 expression), references are hash-joined in, so N checks cost one scan
 *   vsql_dup      a duplicate check's GROUP BY ... HAVING count(*) > 1 (unless a unique index
 *                 proves it, see validate.c)
 *   vsql_samples  a failing check's rows, LIMIT samples, as jsonb (key columns, tested columns)
 *
 * The user's SQL (filter, condition, expression) is spliced in as written, in parentheses;
 * vsql_expr_lint refuses what would break out of them (an unbalanced parenthesis, a ';', a
 * comment), so a typo is a config error naming the check rather than a different query.
 */
#ifndef MESHD_VALIDATE_CHECK_H
#define MESHD_VALIDATE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_buf.h"
#include "meshd/md_err.h"
#include "meshd/md_json.h"

enum vc_type {
    VC_ROW_COUNT,
    VC_MISSING,
    VC_INVALID,
    VC_DUPLICATE,
    VC_FRESHNESS,
    VC_SCHEMA,
    VC_FAILED_ROWS,
    VC_METRIC,
};

/* ---- the config, as md_json binds it ------------------------------------------------------- */

struct vc_check_cfg {
    char *type; /* one of vc_type_names */
    char *name; /* default: derived from type and column(s) */
    char *column;
    struct md_strv columns; /* duplicate: the key; failed_rows, metric: columns to sample */
    char *filter;           /* SQL condition: the rows this check looks at */
    struct md_strv group_by;
    char *warn, *fail; /* conditions: "> 0", "> 5%", "< 1", "not between -20% and 20%", "> 26h" */
    bool change;       /* row_count: the value is the % change from the baseline */
    char *missing_values;           /* JSON array: values that count as missing besides NULL */
    char *values;                   /* JSON array: the accepted values */
    char *regex;                    /* POSIX regex the value (as text) must match */
    char *min, *max;                /* JSON number or string: inclusive bounds */
    int64_t min_length, max_length; /* -1: none */
    char *reference;                /* "[schema.]table.column": the value must be present there */
    char *expect;                   /* schema: JSON object column -> type */
    bool allow_extra;               /* schema: columns not in expect are fine */
    char *condition;  /* failed_rows: SQL a good row satisfies (NULL counts as good) */
    char *expression; /* metric: an aggregate SQL expression */
    int64_t samples;  /* -1: the suite's */
};

struct vc_table_cfg {
    char *table;                 /* [schema.]table */
    struct md_strv key;          /* columns that identify a row in samples; default: primary key */
    char *filter;                /* SQL condition for every check of the table */
    struct md_strv partition;    /* columns of a scrape.changed partition label, in order */
    struct md_json_array checks; /* struct vc_check_cfg */
};

/* ---- thresholds ----------------------------------------------------------------------------- */

enum vc_op { OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE, OP_BETWEEN, OP_NOT_BETWEEN };

enum vc_unit {
    U_COUNT,   /* a plain number: compared with the count (or value) */
    U_PERCENT, /* "5%": compared with the percentage of the rows looked at */
    U_SECONDS, /* "26h", "90m", "2d": freshness */
};

struct vc_threshold {
    bool set;
    enum vc_op op;
    enum vc_unit unit;
    double a, b; /* b: between only */
};

/* Parses a condition ("> 0", ">= 5%", "< 1", "= 0", "!= 3", "between 1 and 5", "not between
 * -20% and 20%", "> 26h").  Durations: a number with s, m, h or d.  Returns 0, or MD_ECONFIG
 * with err saying what was expected (the caller prefixes the key path). */
int vc_threshold_parse(const char *s, struct vc_threshold *t, struct md_error *err) MD_MUSTCHECK;

/* True when the condition holds for v (the value in t's unit). */
bool vc_threshold_hit(const struct vc_threshold *t, double v);

/* "> 5%" etc. into buf, for messages. */
void vc_threshold_text(const struct vc_threshold *t, char *buf, size_t cap);

/* ---- compiled checks ------------------------------------------------------------------------ */

enum vc_outcome { VO_PASS, VO_WARN, VO_FAIL, VO_REFUSED, VO_ERROR };

struct vcheck {
    const struct vc_check_cfg *cfg; /* borrowed from the bound config */
    enum vc_type type;
    size_t index;      /* within its table */
    char *name;        /* as given or derived ("missing_phy_addr1") */
    char *path;        /* "tables[0].checks[3]", for messages */
    char *bad;         /* SQL true for a bad row (missing, invalid, failed_rows); or NULL */
    char *agg;         /* SQL aggregate: freshness's age in seconds, metric's value; or NULL */
    char *filter;      /* the check's own filter, or NULL */
    char *group_label; /* SQL text label of the check's group ("co_no"::text ...), or NULL */
    char *group_key;   /* group_by joined with ",": checks with the same one share a scan */
    char *ref_table;   /* invalid with reference: the quoted table and column joined */
    char *ref_col;     /* in as r<index> (SELECT DISTINCT col AS mv_ref), or NULL */
    char *column;      /* quoted, the column tested (missing, invalid, freshness), or NULL */
    struct vc_threshold warn, fail;
    int64_t samples;    /* cap of failed-row samples written */
    char **sample_cols; /* quoted columns shown in a sample besides the key; NULL: whole row */
    size_t nsample_cols;
    bool counts; /* the value is a count of bad rows (percent is meaningful) */
    /* Set by vprep_suite (eval.h) against the database: */
    double cost;   /* the planner's estimate of its query */
    char *refused; /* why it is not run (over max_cost), or NULL */
    char *proof;   /* duplicate: the unique index that proves it, or NULL */
};

struct vtable {
    const struct vc_table_cfg *cfg;
    char *name;   /* as written: alert keys and results use it */
    char *qname;  /* quoted, for SQL ("property"."parcels"); validate.c may replace it with
                   * the server's regclass text */
    char *filter; /* or NULL */
    struct vcheck *checks;
    size_t nchecks;
    /* Set by vprep_suite (eval.h) against the database: */
    char **key; /* quoted key columns for samples: key:, else the primary key; may be none */
    size_t nkey;
    uint32_t oid; /* the table's; 0 until prepared */
};

struct vsuite {
    struct md_json_array tables; /* struct vc_table_cfg, owned (vsuite_free) */
    struct vtable *t;
    size_t n;
};

/* Binds json (the value of `tables:`, a JSON array) and compiles every check: names derived
 * and unique per table, thresholds parsed (defaults: fail "> 0" for the bad-row counts and
 * schema, fail "< 1" for row_count; freshness and metric need one), the options each type
 * needs present and those it does not take absent, expressions linted, identifiers quoted.
 * default_samples applies where a check has none.  Messages name the paths from "tables"
 * ("tables[0].checks[2].fail: ...").  Returns 0, or MD_ECONFIG / MD_EPARSE with err naming the
 * path.  Release with vsuite_free, also after a failure. */
int vsuite_bind(const char *json, size_t len, int64_t default_samples, struct vsuite *s,
                struct md_error *err) MD_MUSTCHECK;
void vsuite_free(struct vsuite *s);

const char *vc_type_name(enum vc_type t);
const char *vc_outcome_name(enum vc_outcome o);

/* Judges a value: fail's condition first, then warn's.  v is the count or value; pct the
 * percentage of rows (for counts; 0 when none were looked at). */
enum vc_outcome vc_judge(const struct vcheck *c, double v, double pct);

/* ---- SQL ------------------------------------------------------------------------------------ */

/* Appends s as a quoted identifier ("a""b") / a standard string literal ('it''s'). */
void vsql_ident(struct md_buf *b, const char *s);
void vsql_literal(struct md_buf *b, const char *s);
/* Appends [schema.]table, each part quoted.  False when name is not one or two non-empty
 * parts separated by '.' (a quoted part may hold dots: "my.schema".t). */
bool vsql_qualified(struct md_buf *b, const char *name);

/* A column name as SQL folds it ("Jv" -> jv; "\"Jv\"" stays Jv), quoted: a new string, or
 * NULL when name is not one identifier. */
char *vsql_column(const char *name);

/* 0 when expr is safe to splice inside parentheses: balanced parentheses outside quotes, no
 * ';' and no comment outside quotes, quotes closed, not empty.  Else MD_ECONFIG with why. */
int vsql_expr_lint(const char *expr, struct md_error *err) MD_MUSTCHECK;

/* The scan of table t for the checks cks[n], which share one group_by.  scope is an extra SQL
 * condition (a partition) or NULL.  Columns: g (group label, NULL without group_by), n (rows),
 * then per check i: v<i> (bad rows, or the value) and r<i> (rows the check looked at). */
void vsql_scan(struct md_buf *b, const struct vtable *t, const struct vcheck *const *cks, size_t n,
               const char *scope);

/* A duplicate check, per group: g, rows, and extra (count - 1 summed over the duplicated keys:
 * the rows a de-duplication would remove). */
void vsql_dup(struct md_buf *b, const struct vtable *t, const struct vcheck *c, const char *scope);

/* A failing check's samples: k (jsonb of key columns), r (jsonb of the tested columns, or the
 * whole row) and g, at most c->samples rows.  Restricted to the groups in $1 (a JSON array of
 * labels) when the check has group_by.  key[nkey] are quoted column names (may be empty). */
void vsql_samples(struct md_buf *b, const struct vtable *t, const struct vcheck *c,
                  const char *scope, char *const *key, size_t nkey);

/* jsonb_build_object('a', t."a", ...) of the quoted columns cols[n] (keys unquoted). */
void vsql_json_object(struct md_buf *b, char *const *cols, size_t n);

/* Appends the SQL for a scrape.changed partition label ("11" or "11,2026") on the columns
 * cols[n]: "co_no" = '11' AND ...  False when the label does not have n parts. */
bool vsql_scope(struct md_buf *b, const struct md_strv *cols, const char *label);

#endif
