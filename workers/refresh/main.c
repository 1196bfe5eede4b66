/* meshd-refresh - refreshes materialized views in dependency order (docs/refresh.md).
 *
 * main.c only binds the config and drives the kit's life cycle (md_worker.h); the work is in
 * refresh.c, its pure decisions in plan.c.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "meshd/md_log.h"
#include "meshd/md_worker.h"
#include "refresh.h"

#define CFG(m) offsetof(struct refresh_cfg, m)

/* In the order of enum plan_want. */
static const char *const modes[] = {"auto", "concurrent", "plain", NULL};

static const struct md_json_key keys[] = {
    MD_WORKER_DATABASE_KEY(CFG(database)),
    {.name = "views", .type = MD_J_STRV, .off = CFG(views), .max = 256},
    {.name = "schemas", .type = MD_J_STRV, .off = CFG(schemas), .max = 64},
    {.name = "lock_timeout",
     .type = MD_J_DURATION,
     .off = CFG(lock_timeout_ms),
     .def = "\"5s\"",
     .min = 1,
     .max = 3600e3},
    {.name = "attempts", .type = MD_J_INT, .off = CFG(attempts), .def = "3", .min = 1, .max = 10},
    {.name = "statement_timeout",
     .type = MD_J_DURATION,
     .off = CFG(statement_timeout_ms),
     .def = "\"30m\""},
    {.name = "parallel", .type = MD_J_INT, .off = CFG(parallel), .def = "1", .min = 1, .max = 8},
    {.name = "skip_unchanged", .type = MD_J_BOOL, .off = CFG(skip_unchanged), .def = "true"},
    {.name = "force", .type = MD_J_BOOL, .off = CFG(force), .def = "false"},
    {.name = "mode",
     .type = MD_J_STRING,
     .off = CFG(mode_name),
     .def = "\"auto\"",
     .choices = modes},
    {.name = "analyze", .type = MD_J_BOOL, .off = CFG(analyze), .def = "true"},
    {.name = "indexes", .type = MD_J_STRV, .off = CFG(indexes), .max = 256},
    {.name = "vacuum", .type = MD_J_STRV, .off = CFG(vacuum), .max = 256},
};

static const char usage[] =
    "Refreshes materialized views (views: or schemas:) in dependency order, concurrently when "
    "a unique index allows, skipping those whose input tables did not change; then ensures "
    "indexes: and runs VACUUM (ANALYZE) on vacuum:.  Config: JSON on stdin (docs/refresh.md).";

int main(int argc, char **argv)
{
    struct md_worker w;
    struct refresh_cfg cfg = {0};
    struct md_error err = {0};
    PGconn *db = NULL;
    char *summary = NULL;
    int rc;

    if ((rc = md_worker_init(&w, "refresh", argc, argv, usage)) < 0)
        md_worker_finish(&w, rc, NULL); /* logged; finish turns it into the exit code */
    if ((rc = md_worker_config(&w, MD_JSON_KEYS(keys), &cfg, &err)) == 0 &&
        cfg.views.n + cfg.schemas.n + cfg.indexes.n + cfg.vacuum.n == 0)
        rc = md_error_set(&err, MD_ECONFIG, 0, 0,
                          "nothing to do: set views, schemas, indexes or vacuum");
    if (rc < 0)
        goto out;
    for (int i = 0; modes[i] != NULL; i++)
        if (strcmp(cfg.mode_name, modes[i]) == 0)
            cfg.mode = (enum plan_want)i;
    if ((rc = md_worker_connect(&w, cfg.database.url, &db, &err)) < 0)
        goto out;
    (void)md_status_ready(&w.st);
    rc = refresh_run(&w, db, &cfg, &summary, &err);
out:
    if (rc < 0 && rc != -ECANCELED) /* a stop is logged by md_worker_finish */
        md_log(MD_LOG_ERROR, "%s", err.msg);
    md_worker_disconnect(db);
    md_json_free(MD_JSON_KEYS(keys), &cfg);
    md_worker_finish(&w, rc, summary); /* exits; summary dies with the process */
}
