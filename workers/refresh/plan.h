/* plan.h - the pure decisions of meshd-refresh: no libpq, no I/O, so tests/unit/test_refresh_plan.c
 * checks them without a database.
 *
 *   plan_order        the refresh order of materialized views from their dependencies, or the
 *                     cycle that makes one impossible
 *   plan_choose_mode  REFRESH ... CONCURRENTLY or a plain REFRESH, and why
 *   plan_skip         refresh, or skip because no input table changed since the last refresh
 *   plan_inputs_*     the input counters as the text kept in meshd_refresh.view_state
 *   plan_index_parse  the index and table a configured CREATE INDEX statement names
 */
#ifndef MESHD_REFRESH_PLAN_H
#define MESHD_REFRESH_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_buf.h"
#include "meshd/md_err.h"

/* Caps: a job handles at most this many views (listed plus their upstream), and watches at most
 * this many input tables per view (more: the view is never skipped). */
#define PLAN_MAX_VIEWS 256
#define PLAN_MAX_INPUTS 128

/* ---- dependency order ----------------------------------------------------------------------- */

/* One materialized view as the planner sees it.  deps are indexes into the same array: the
 * materialized views this one reads (directly or through plain views), which must be refreshed
 * first.  All borrowed. */
struct plan_view {
    const char *name; /* "schema.view", for messages */
    const size_t *deps;
    size_t ndeps;
};

/* Fills order[0..n) with the indexes of views[0..n) so that every view comes after its deps.
 * Among views that are ready at the same time, the lower index goes first, so the order is the
 * configured one wherever dependencies allow.  Returns 0, or MD_ECONFIG with err naming a cycle
 * ("materialized views depend on each other in a cycle: a -> b -> a"). */
int plan_order(const struct plan_view *views, size_t n, size_t *order,
               struct md_error *err) MD_MUSTCHECK;

/* ---- concurrent or plain -------------------------------------------------------------------- */

/* The config's mode: auto (concurrent when the view allows it, else plain with a warning),
 * plain always, or concurrent only (a view that does not allow it fails, never blocks readers). */
enum plan_want { PLAN_WANT_AUTO, PLAN_WANT_CONCURRENT, PLAN_WANT_PLAIN };

/* What the catalogs say about a view, read just before its refresh, and what the config wants. */
struct plan_mode_facts {
    enum plan_want want;
    bool populated;        /* pg_class.relispopulated */
    int unique_indexes;    /* valid unique indexes on plain columns: no WHERE, no expressions */
    bool clean_key;        /* one of them has no NULLs in its columns (per pg_stats) */
    const char *null_cols; /* else the NULL-holding columns of one of them ("a, b"); may be NULL */
};

enum plan_mode { PLAN_PLAIN, PLAN_CONCURRENT };

struct plan_mode_choice {
    enum plan_mode mode;
    const char *why; /* static: why plain (NULL for concurrent); with refuse, why not concurrent */
    bool warn_plain; /* plain although the config did not ask for it: say why, once */
    bool refuse;     /* mode: concurrent, and the view does not allow it: do not refresh */
    bool null_warn;  /* concurrent, but rows with NULL keys are rewritten on every refresh */
};

void plan_choose_mode(const struct plan_mode_facts *f, struct plan_mode_choice *out);

/* ---- skip what did not change --------------------------------------------------------------- */

/* The counters of one input table (a leaf table the view reads, through plain views and
 * upstream materialized views).  filenode changes on TRUNCATE, which moves none of the
 * cumulative counters. */
struct plan_input {
    uint32_t oid;
    uint32_t filenode;
    int64_t ins, upd, del; /* pg_stat_user_tables.n_tup_ins/upd/del */
};

struct plan_inputs {
    struct plan_input v[PLAN_MAX_INPUTS];
    size_t n;    /* sorted by oid */
    bool opaque; /* an input without counters (a foreign table) or too many inputs */
};

/* Everything the skip decision looks at.  stored_* describe the last successful refresh
 * (has_state false: none recorded). */
struct plan_skip_facts {
    bool force;
    bool skip_unchanged;
    bool populated;
    bool has_state;
    uint32_t view_oid, stored_view_oid;
    const char *stats_reset, *stored_stats_reset; /* pg_stat_database.stats_reset as text; NULL */
    const struct plan_inputs *now, *stored;
};

/* True to skip.  *why (static) says why either way: "unchanged", or why it must refresh. */
bool plan_skip(const struct plan_skip_facts *f, const char **why);

/* "oid/filenode/ins/upd/del" per input, space-separated: the text kept in view_state.inputs.
 * Returns false when b is full. */
bool plan_inputs_format(const struct plan_inputs *in, struct md_buf *b);
/* Parses what plan_inputs_format wrote.  Returns 0, or -EINVAL (then the state is ignored and
 * the view refreshed). */
int plan_inputs_parse(const char *text, struct plan_inputs *out) MD_MUSTCHECK;

/* ---- configured indexes --------------------------------------------------------------------- */

#define PLAN_IDENT_MAX 64 /* NAMEDATALEN */

/* What "CREATE [UNIQUE] INDEX [CONCURRENTLY] [IF NOT EXISTS] name ON [ONLY] table ..." names. */
struct plan_index_stmt {
    char name[PLAN_IDENT_MAX * 2];  /* the index name as stored (unquoted, folded) */
    char table[PLAN_IDENT_MAX * 5]; /* the table, quoted, schema-qualified when written so */
    bool concurrently;
};

/* Returns 0, or MD_ECONFIG with err saying what is missing (an index without a name cannot be
 * checked for existence, so the name is required). */
int plan_index_parse(const char *sql, struct plan_index_stmt *out,
                     struct md_error *err) MD_MUSTCHECK;

#endif
