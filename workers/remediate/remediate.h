/* remediate.h - meshd-remediate: declared fixes for what meshd-validate finds, planned first,
 * applied under guards in one transaction that commits only if the check now passes and no
 * other check got worse, and undone from their before-images (docs/remediate.md).
 *
 * The parts:
 *   fix.c        pure: the fixes bound and compiled, tied to the suite's checks, and the SQL of
 *                the target selection and of each action
 *   remediate.c  the run: which fixes, plan, apply (guards, audit, action, post-check),
 *                approval, undo; alerts and messages
 * The checks are meshd-validate's (workers/validate: check.h, eval.h), read from the suite its
 * job stored (meshd_validate.suites).
 */
#ifndef MESHD_REMEDIATE_H
#define MESHD_REMEDIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "check.h"
#include "meshd/md_buf.h"
#include "meshd/md_err.h"
#include "meshd/md_json.h"
#include "meshd/md_worker.h"

/* A fix was refused (a guard, a stale plan) or rolled back (the post-condition): exit 1. */
#define REMEDIATE_EREFUSED (-1930)

/* First key of meshd-remediate's advisory locks (the schema set-up). */
#define REMEDIATE_KEYSPACE 0x6d726d64

enum rm_action { RA_UPDATE, RA_DELETE, RA_QUARANTINE, RA_RERUN };
enum rm_apply { RP_PLAN, RP_AUTO, RP_APPROVAL };

/* ---- the config, as md_json binds it ------------------------------------------------------- */

struct rm_fix_cfg {
    char *name;
    char *check;        /* the check it remedies: its name, or "table.name" */
    char *table;        /* the check's table, when its name is not unique in the suite */
    char *where;        /* SQL: the target rows; default: the check's failing rows */
    char *action;       /* update | delete | quarantine | rerun */
    char *set;          /* update: JSON object column -> SQL expression */
    char *order_by;     /* duplicate targets: which copy is kept (the first in this order) */
    char *reason;       /* quarantine: the reason stored with the rows */
    char *message;      /* rerun: the bus message type */
    char *payload;      /* rerun: JSON object merged into the message's payload */
    char *to_job;       /* rerun: the job the message is for */
    char *apply;        /* plan | auto | approval; NULL: the run's */
    int64_t max_rows;   /* -1: the run's */
    double max_percent; /* < 0: the run's */
    bool enabled;
};

struct rm_cfg {
    struct md_worker_db database;
    char *suite; /* NULL: the validation.failed message's */
    char *apply;
    struct md_json_array fixes; /* struct rm_fix_cfg */
    int64_t max_rows;
    double max_percent;
    int64_t samples;
    uint64_t statement_timeout_ms;
    uint64_t lock_timeout_ms;
    uint64_t plan_ttl_ms;
    char *undo; /* a run id: undo that run instead (also --undo RUN_ID) */
};

/* The key table of one fix (fix.c): main.c binds fixes: with it, and a fix stored with a plan is
 * bound with it again. */
#define RM_NFIX_KEYS 15
extern const struct md_json_key rm_fix_keys[RM_NFIX_KEYS];

/* ---- compiled fixes ------------------------------------------------------------------------- */

struct rm_fix {
    const struct rm_fix_cfg *cfg; /* borrowed */
    char *path;                   /* "fixes[2]" */
    enum rm_action action;
    enum rm_apply apply;
    char *def;        /* the fix as canonical JSON: stored with a plan, part of its hash */
    char **set_cols;  /* update: quoted columns */
    char **set_exprs; /* and their expressions */
    size_t nset;
    int64_t max_rows;
    double max_percent;
    /* tied to the suite by rm_fix_resolve: */
    struct vtable *t;
    struct vcheck *c;
};

const char *rm_action_name(enum rm_action a);
const char *rm_apply_name(enum rm_apply a);

/* Compiles cfg->fixes into fixes[n] (md_free the array after rm_fixes_free): actions and
 * apply modes checked, set: parsed and linted, names unique, the guards' defaults taken from
 * the run's.  A fix built from a stored definition (an approved plan) goes through
 * rm_fix_from_def instead.  Returns 0 or MD_ECONFIG naming the path. */
int rm_fixes_compile(const struct rm_cfg *cfg, struct rm_fix **fixes, size_t *n,
                     struct md_error *err) MD_MUSTCHECK;
void rm_fixes_free(struct rm_fix *fixes, size_t n);

/* A fix from the definition stored with a plan (rm_fix.def): fcfg is bound (release with
 * rm_fix_cfg_free) and f compiled from it.  The definition holds what the fix changes, not
 * its guards: those are run's (the approving job's max_rows and max_percent). */
int rm_fix_from_def(const char *def, const struct rm_cfg *run, struct rm_fix_cfg *fcfg,
                    struct rm_fix *f, struct md_error *err) MD_MUSTCHECK;
void rm_fix_cfg_free(struct rm_fix_cfg *fcfg);

/* Ties f to its check in s (by table and name).  A fix with a row action needs a check that
 * counts bad rows or duplicates, unless it has where:.  MD_ECONFIG naming the fix otherwise. */
int rm_fix_resolve(struct rm_fix *f, struct vsuite *s, struct md_error *err) MD_MUSTCHECK;

/* ---- SQL ------------------------------------------------------------------------------------ */

/* CREATE TEMP TABLE _mr_targets (tid, k) ON COMMIT DROP AS the fix's target rows: ctid and
 * the key as jsonb (the table's key, else {"ctid": ...}).  scope: an extra condition or NULL. */
void rmsql_targets(struct md_buf *b, const struct rm_fix *f, const char *scope);

/* The before-images into meshd_remediate.audit ($1 run, $2 plan). */
void rmsql_audit(struct md_buf *b, const struct rm_fix *f);

/* The action on _mr_targets ($1 run, $2 plan for the audit's after-images of an update;
 * $1 run, $2 reason for a quarantine).  Not for rerun. */
void rmsql_action(struct md_buf *b, const struct rm_fix *f);

/* ---- the run -------------------------------------------------------------------------------- */

/* One run: an undo (cfg->undo, or an on: remediation.undo message {"run_id"}), an approved plan
 * applied (on: remediation.approve {"plan"}), or the fixes of the failing checks planned and,
 * per their apply mode, applied (on: validation.failed, or any other start: every enabled fix
 * whose check fails now).  *summary gets the result summary (md_free).  Returns 0,
 * REMEDIATE_EREFUSED, or a kit code. */
int remediate_run(struct md_worker *w, PGconn *db, const struct rm_cfg *cfg, struct rm_fix *fixes,
                  size_t nfixes, char **summary, struct md_error *err) MD_MUSTCHECK;

#endif
