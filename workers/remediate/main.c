/* meshd-remediate - declared fixes for what meshd-validate finds: planned, applied under guards
 * with a post-check in the same transaction, undone from their before-images
 * (docs/remediate.md).
 *
 * main.c binds the config and drives the kit's life cycle (md_worker.h); the fixes are fix.c,
 * the run remediate.c.  `--undo RUN_ID` undoes a run (the same as config undo:).
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "meshd/md_log.h"
#include "meshd/md_worker.h"
#include "remediate.h"

#define CFG(m) offsetof(struct rm_cfg, m)

static const char *const apply_modes[] = {"plan", "auto", "approval", NULL};

static const struct md_json_key keys[] = {
    MD_WORKER_DATABASE_KEY(CFG(database)),
    {.name = "suite", .type = MD_J_STRING, .off = CFG(suite)},
    {.name = "apply",
     .type = MD_J_STRING,
     .off = CFG(apply),
     .def = "\"plan\"",
     .choices = apply_modes},
    {.name = "fixes",
     .type = MD_J_ARRAY,
     .off = CFG(fixes),
     .max = 200,
     .sub = rm_fix_keys,
     .nsub = RM_NFIX_KEYS,
     .elem_size = sizeof(struct rm_fix_cfg)},
    {.name = "max_rows",
     .type = MD_J_INT,
     .off = CFG(max_rows),
     .def = "1000",
     .min = 0,
     .max = 1e12},
    {.name = "max_percent",
     .type = MD_J_DOUBLE,
     .off = CFG(max_percent),
     .def = "1",
     .min = 0,
     .max = 100},
    {.name = "samples", .type = MD_J_INT, .off = CFG(samples), .def = "20", .min = 0, .max = 1000},
    {.name = "statement_timeout",
     .type = MD_J_DURATION,
     .off = CFG(statement_timeout_ms),
     .def = "\"10m\"",
     .min = 1,
     .max = 86400e3},
    {.name = "lock_timeout",
     .type = MD_J_DURATION,
     .off = CFG(lock_timeout_ms),
     .def = "\"10s\"",
     .min = 1,
     .max = 3600e3},
    {.name = "plan_ttl",
     .type = MD_J_DURATION,
     .off = CFG(plan_ttl_ms),
     .def = "\"24h\"",
     .min = 1000,
     .max = 365 * 86400e3},
    {.name = "undo", .type = MD_J_STRING, .off = CFG(undo)},
};

static const char usage[] =
    "Applies the fixes in config (update, delete, quarantine, rerun) to the rows meshd-validate's "
    "checks find failing: plans by default (counts, samples, a plan hash), applies with apply: "
    "auto or after a remediation.approve message, in one transaction under max_rows and "
    "max_percent, keeping before-images, and commits only if the check then passes and no "
    "other got worse.  --undo RUN_ID restores a run's rows.  Config: JSON on stdin "
    "(docs/remediate.md).";

int main(int argc, char **argv)
{
    struct md_worker w;
    struct rm_cfg cfg = {0};
    struct md_error err = {0};
    struct rm_fix *fixes = NULL;
    size_t nfixes = 0;
    const char *undo = NULL;
    PGconn *db = NULL;
    char *summary = NULL;
    int rc;

    /* --undo RUN_ID is this worker's own; the kit takes the rest. */
    int n = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--undo") == 0 && i + 1 < argc)
            undo = argv[++i];
        else if (strncmp(argv[i], "--undo=", 7) == 0 && argv[i][7] != '\0')
            undo = argv[i] + 7;
        else
            argv[n++] = argv[i];
    }
    argv[n] = NULL;
    if ((rc = md_worker_init(&w, "remediate", n, argv, usage)) < 0)
        md_worker_finish(&w, rc, NULL); /* logged; finish turns it into the exit code */
    if ((rc = md_worker_config(&w, MD_JSON_KEYS(keys), &cfg, &err)) < 0 ||
        (rc = rm_fixes_compile(&cfg, &fixes, &nfixes, &err)) < 0)
        goto out;
    if (undo != NULL) {
        md_free(cfg.undo);
        cfg.undo = md_xstrdup(undo);
    }
    if (cfg.fixes.n == 0 && cfg.undo == NULL &&
        (w.message_type == NULL || (strcmp(w.message_type, "remediation.approve") != 0 &&
                                    strcmp(w.message_type, "remediation.undo") != 0))) {
        rc = md_error_set(&err, MD_ECONFIG, 0, 0,
                          "fixes: required (unless the job approves plans or undoes runs)");
        goto out;
    }
    if ((rc = md_worker_connect(&w, cfg.database.url, &db, &err)) < 0)
        goto out;
    (void)md_status_ready(&w.st);
    rc = remediate_run(&w, db, &cfg, fixes, nfixes, &summary, &err);
out:
    if (rc < 0 && rc != -ECANCELED) /* a stop is logged by md_worker_finish */
        md_log(rc == REMEDIATE_EREFUSED ? MD_LOG_WARN : MD_LOG_ERROR, "%s", err.msg);
    md_worker_disconnect(db);
    rm_fixes_free(fixes, nfixes);
    md_free(fixes);
    md_json_free(MD_JSON_KEYS(keys), &cfg);
    md_worker_finish(&w, rc, summary); /* exits; summary dies with the process */
}
