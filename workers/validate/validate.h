/* validate.h - meshd-validate: data-quality checks, one scan per table (docs/validate.md).
 *
 * The parts:
 *   check.c     pure: the check vocabulary bound and compiled, thresholds, the SQL text
 *   eval.c      the checks against the database: prepared (EXPLAIN, cost guard, proofs) and
 *               evaluated (shared with meshd-remediate)
 *   validate.c  the run: the scope of an on: scrape.changed run, baselines and last
 *               outcomes, samples, the history written, alerts, metrics, validation.failed
 */
#ifndef MESHD_VALIDATE_H
#define MESHD_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "check.h"
#include "meshd/md_err.h"
#include "meshd/md_worker.h"

/* A fail-level check failed (or a check could not run): exit 1. */
#define VALIDATE_EFAILED (-1920)

/* First key of meshd-validate's advisory locks (the schema set-up). */
#define VALIDATE_KEYSPACE 0x6d76616c

struct validate_cfg {
    struct md_worker_db database;
    char *suite;  /* default: the job's name */
    char *tables; /* JSON, compiled by vsuite_bind; NULL: the suite's stored one */
    uint64_t statement_timeout_ms;
    double max_cost; /* 0: no cost guard */
    int64_t samples;
    uint64_t retention_ms;
};

extern const unsigned char validate_schema_sql[];
extern const size_t validate_schema_sql_len;

/* The `tables:` JSON suite `suite` last ran with (meshd_validate.suites): for a job that names
 * a suite without repeating its checks, and for meshd-remediate.  Returns 0 with *json set
 * (md_free), MD_ECONFIG when no run of that suite was ever stored, or a code of md_pq_exec. */
int validate_load_suite(PGconn *db, const char *suite, char **json,
                        struct md_error *err) MD_MUSTCHECK;

/* One run over the compiled suite s.  *summary gets the result summary (md_free) even on
 * failure.  Returns 0, VALIDATE_EFAILED, or a code from the kit (MD_ECONFIG for SQL the
 * server refuses, MD_EDBDOWN, -ECANCELED, ...). */
int validate_run(struct md_worker *w, PGconn *db, const struct validate_cfg *cfg, struct vsuite *s,
                 char **summary, struct md_error *err) MD_MUSTCHECK;

#endif
