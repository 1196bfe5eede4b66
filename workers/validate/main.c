/* meshd-validate - data-quality checks, one scan per table (docs/validate.md).
 *
 * main.c binds the config and drives the kit's life cycle (md_worker.h); the checks are
 * check.c, their evaluation eval.c, the run validate.c.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "meshd/md_log.h"
#include "meshd/md_worker.h"
#include "validate.h"

#define CFG(m) offsetof(struct validate_cfg, m)

static const struct md_json_key keys[] = {
    MD_WORKER_DATABASE_KEY(CFG(database)),
    {.name = "suite", .type = MD_J_STRING, .off = CFG(suite)},
    {.name = "tables", .type = MD_J_RAW, .off = CFG(tables)},
    {.name = "statement_timeout",
     .type = MD_J_DURATION,
     .off = CFG(statement_timeout_ms),
     .def = "\"10m\"",
     .min = 1,
     .max = 86400e3},
    {.name = "max_cost",
     .type = MD_J_DOUBLE,
     .off = CFG(max_cost),
     .def = "0",
     .min = 0,
     .max = 1e15},
    {.name = "samples", .type = MD_J_INT, .off = CFG(samples), .def = "20", .min = 0, .max = 1000},
    {.name = "retention",
     .type = MD_J_DURATION,
     .off = CFG(retention_ms),
     .def = "\"90d\"",
     .min = 3600e3,
     .max = 3650 * 86400e3},
};

static const char usage[] =
    "Runs data-quality checks (row_count, missing, invalid, duplicate, freshness, schema, "
    "failed_rows, metric) over the tables: in config, all aggregate checks of a table in one "
    "scan; keeps every value in meshd_validate.results, raises an alert per failing check and "
    "resolves it when it passes, and publishes validation.failed.  Config: JSON on stdin "
    "(docs/validate.md).";

int main(int argc, char **argv)
{
    struct md_worker w;
    struct validate_cfg cfg = {0};
    struct vsuite suite = {0};
    struct md_error err = {0};
    PGconn *db = NULL;
    char *summary = NULL;
    int rc;

    if ((rc = md_worker_init(&w, "validate", argc, argv, usage)) < 0)
        md_worker_finish(&w, rc, NULL); /* logged; finish turns it into the exit code */
    if ((rc = md_worker_config(&w, MD_JSON_KEYS(keys), &cfg, &err)) < 0)
        goto out;
    if (cfg.suite == NULL && cfg.tables == NULL) {
        rc = md_error_set(&err, MD_ECONFIG, 0, 0,
                          "tables: required (or suite: naming a suite another job defines)");
        goto out;
    }
    /* The checks are compiled before connecting: a config error needs no database. */
    if (cfg.tables != NULL &&
        (rc = vsuite_bind(cfg.tables, strlen(cfg.tables), cfg.samples, &suite, &err)) < 0)
        goto out;
    if ((rc = md_worker_connect(&w, cfg.database.url, &db, &err)) < 0)
        goto out;
    if (cfg.tables == NULL) { /* the suite's stored checks */
        if ((rc = validate_load_suite(db, cfg.suite, &cfg.tables, &err)) < 0 ||
            (rc = vsuite_bind(cfg.tables, strlen(cfg.tables), cfg.samples, &suite, &err)) < 0)
            goto out;
        md_log(MD_LOG_INFO, "suite %s: the checks its defining job stored", cfg.suite);
    }
    (void)md_status_ready(&w.st);
    rc = validate_run(&w, db, &cfg, &suite, &summary, &err);
out:
    if (rc < 0 && rc != -ECANCELED) /* a stop is logged by md_worker_finish */
        md_log(rc == VALIDATE_EFAILED ? MD_LOG_WARN : MD_LOG_ERROR, "%s", err.msg);
    md_worker_disconnect(db);
    vsuite_free(&suite);
    md_json_free(MD_JSON_KEYS(keys), &cfg);
    md_worker_finish(&w, rc, summary); /* exits; summary dies with the process */
}
