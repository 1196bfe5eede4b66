/* eval.h - a suite's checks against PostgreSQL: prepared once (tables resolved, every query
 * planned by a dry EXPLAIN, the cost guard, unique-index proofs), then evaluated, one scan per
 * table and grouping.  Shared by meshd-validate (validate.c) and meshd-remediate, which
 * evaluates the same checks inside its own transaction before it commits a fix.
 */
#ifndef MESHD_VALIDATE_EVAL_H
#define MESHD_VALIDATE_EVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "check.h"
#include "meshd/md_err.h"

/* One check's verdict on one group (grp "" without group_by). */
struct vresult {
    const struct vtable *t;
    const struct vcheck *c;
    char *grp;
    bool has_value; /* false: no rows to judge (freshness, metric), or refused, or error */
    double value;   /* bad rows, row count, % change, age in seconds, metric */
    int64_t rows;   /* rows the check looked at */
    double pct;     /* value as a percentage of rows (checks that count bad rows) */
    enum vc_outcome outcome;
    char *message; /* a note (refused, error, proof, no rows), or NULL */
};

struct vresults {
    struct vresult *v;
    size_t n, cap;
};

void vresults_free(struct vresults *r);

/* Prepares every table of s that wanted[i] selects (all when wanted is NULL): resolves the
 * table (its regclass text replaces qname), the key columns for samples (key:, else the
 * primary key), plans every check's query with EXPLAIN (a check whose SQL the server refuses
 * is a config error: MD_ECONFIG naming the check and the server's message), refuses the
 * checks whose estimated cost exceeds max_cost (> 0), and finds the unique index that proves
 * a duplicate check.  scope[i] is table i's extra condition or NULL.  Runs in whatever
 * transaction c is in.  Returns 0, MD_ECONFIG, or a code of md_pq_exec. */
int vprep_suite(PGconn *c, struct vsuite *s, const bool *wanted, char *const *scope,
                double max_cost, struct md_error *err) MD_MUSTCHECK;

/* Evaluates table t's checks (only those with want[i] true when want is not NULL) and
 * appends a result per check and group to out: the scans (vsql_scan), duplicate queries
 * (unless proven), schema comparisons, each under a SAVEPOINT so that one failing query (a
 * statement_timeout) makes its checks VO_ERROR and the others go on.  Outcomes are judged,
 * except for row_count change checks, whose value (the row count) the caller turns into a
 * change (vresult_change).  Must run inside a transaction.  Returns 0, or -ECANCELED /
 * MD_EDBDOWN (the connection is gone: nothing more can be said). */
int veval_table(PGconn *c, const struct vtable *t, const bool *want, const char *scope,
                struct vresults *out, struct md_error *err) MD_MUSTCHECK;

/* A row_count change check: its result's row count (r->rows) compared with base (< 0: no
 * baseline).  Sets value to the signed % change and judges it. */
void vresult_change(struct vresult *r, double base);

/* The alert key of a result: check.<table>.<name>[.<group>][@<scope>]. */
char *vresult_key(const struct vresult *r, const char *scope_label);

#endif
