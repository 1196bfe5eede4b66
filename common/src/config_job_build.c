/* config_job_build.c - defaults: and jobs:, each job built from the key table in config_job.c.
 *
 * How a job is built (job_build):
 *   1. the table defaults;
 *   2. the keys that say what and when to run (worker, command, args, schedule, on), which
 *      only a job may set; they fix the job's kind;
 *   3. for every other key, the value from `defaults:` (if it parsed and is meaningful for the
 *      kind; a timeout in defaults simply does not apply to services), then the job's own;
 *   4. cross-key checks, the time zone, and cron lint warnings.
 * `defaults:` is checked once on its own, so its problems are reported once, not per job;
 * step 3 then re-applies its nodes with reporting switched off.
 */
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"

/* ---- jobs ----------------------------------------------------------------------------------- */

/* Why key k cannot be set for a job of this kind, or NULL if it can. */
static const char *not_for_kind(const struct key_def *k, enum md_job_kind kind)
{
    if ((k->flags & (K_NOT_SERVICE | K_CRON_ONLY)) && kind == MD_JOB_SERVICE)
        return "not allowed for a service (schedule: always)";
    if ((k->flags & K_CRON_ONLY) && kind != MD_JOB_CRON)
        return "only allowed with a cron schedule";
    return NULL;
}

/* Finds each key of map in md__job_keys: seen[k] = its value node.  Reports unknown keys and
 * repeats.  prefix is "defaults" or "jobs.NAME". */
static void collect_keys(struct ctx *c, const struct md__ynode *map, const char *prefix,
                         const struct md__ynode **seen, const struct md__ynode **seen_key)
{
    bool *dup = md__find_dups(c, map, prefix, false);

    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct md__ynode *kn = map->kids[i];
        size_t j;

        if (dup[i / 2] || !md__key_ok(c, kn, prefix))
            continue;
        for (j = 0; j < NJOBKEYS; j++)
            if (strcmp(kn->value, md__job_keys[j].name) == 0)
                break;
        if (j == NJOBKEYS) {
            md__unknown_key(c, kn, prefix, md__job_keys, NJOBKEYS, sizeof md__job_keys[0]);
            continue;
        }
        seen[j] = map->kids[i + 1];
        seen_key[j] = kn;
    }
    md_free(dup);
}

static void check_backoff(struct ctx *c, struct jobwork *w, const char *prefix)
{
    char path[300];

    if (w->backoff_node && w->job->backoff_initial_ms > w->job->backoff_max_ms) {
        snprintf(path, sizeof path, "%s.backoff", prefix);
        md__err_at(c, w->backoff_node, path, "initial (%llums) is greater than max (%llums)",
                   (unsigned long long)w->job->backoff_initial_ms,
                   (unsigned long long)w->job->backoff_max_ms);
    }
}

void md__defaults_check(struct ctx *c, const struct md__ynode *map, struct defaults *def)
{
    const struct md__ynode *seen_key[NJOBKEYS] = {0};
    struct md_job tmpl = {0};
    struct jobwork w = {.job = &tmpl, .in_defaults = true};
    char path[300], buf[80];

    memset(def, 0, sizeof *def);
    if (map == NULL || md__ynode_is_null(map) || map->type == MD__Y_BAD)
        return;
    if (map->type != MD__Y_MAP) {
        md__err_at(c, map, "defaults", "expected a mapping of job settings, got %s",
                   md__describe(map, buf, sizeof buf));
        return;
    }
    md__job_set_defaults(&tmpl);
    collect_keys(c, map, "defaults", def->node, seen_key);
    for (size_t k = 0; k < NJOBKEYS; k++) {
        if (def->node[k] == NULL)
            continue;
        if (md__job_keys[k].flags & K_JOB_ONLY) {
            md__err_at(c, seen_key[k], NULL,
                       "key 'defaults.%s': not allowed in defaults (each job says what to run and "
                       "when)",
                       md__job_keys[k].name);
            def->node[k] = NULL;
            continue;
        }
        snprintf(path, sizeof path, "defaults.%s", md__job_keys[k].name);
        def->ok[k] = md__apply_key(c, &w, &md__job_keys[k], def->node[k], path);
    }
    check_backoff(c, &w, "defaults");
    md__job_cleanup(&tmpl);
}

struct lint_ud {
    struct ctx *c;
    const struct md__ynode *node;
    const char *path;
};

static void lint_cb(void *ud, int col, const char *msg)
{
    struct lint_ud *l = ud;

    md__warn_pos(l->c, l->node->line,
                 col > 0 ? md__inner_col(l->node, (size_t)col - 1) : l->node->col, l->path, "%s",
                 msg);
}

/* The worker's executable: <node.worker_dir | $MESHD_WORKER_DIR | libexec/meshd>/meshd-NAME. */
static char *worker_path(const struct md_config *cfg, const char *worker)
{
    const char *dir = cfg->worker_dir;

    if (dir == NULL || *dir == '\0')
        dir = getenv("MESHD_WORKER_DIR");
    if (dir == NULL || *dir == '\0')
        dir = "libexec/meshd";
    return md_xasprintf("%s/meshd-%s", dir, worker);
}

static void job_finish(struct ctx *c, struct jobwork *w, const struct md__ynode *name_node,
                       const char *prefix)
{
    struct md_job *job = w->job;
    char path[300];
    int rc;

    /* What. */
    if (job->worker) {
        md__strv_push(&job->argv, &job->argc, worker_path(c->cfg, job->worker));
        for (size_t i = 0; i < w->nargs; i++)
            md__strv_push(&job->argv, &job->argc, md_xstrdup(w->args[i]));
    } else if (w->cmd) {
        job->argv = w->cmd;
        job->argc = w->ncmd;
        w->cmd = NULL;
    } else if (!w->worker_node && !w->command_node) {
        md__err_at(c, name_node, prefix, "missing worker: or command: (what to run)");
    }
    /* When. */
    if (!w->schedule_node && !w->on_node)
        md__err_at(c, name_node, prefix,
                   "missing schedule: (a cron expression or 'always') or on: EVENT");
    /* Restart policy: services restart, runs do not, unless told otherwise.  A defaults:
     * restart of 'always' only applies to services, like the other kind-specific keys. */
    if (w->restart_src == 0 || (w->restart_src == 1 && job->restart == MD_RESTART_ALWAYS &&
                                w->kind_known && job->kind != MD_JOB_SERVICE)) {
        job->restart =
            job->kind == MD_JOB_SERVICE && w->kind_known ? MD_RESTART_ALWAYS : MD_RESTART_NEVER;
    } else if (w->restart_src == 2 && job->restart == MD_RESTART_ALWAYS && w->kind_known &&
               job->kind != MD_JOB_SERVICE) {
        snprintf(path, sizeof path, "%s.restart", prefix);
        md__err_at(c, w->restart_node, path,
                   "'always' is only for services (schedule: always); use on-failure to retry "
                   "failed runs");
    }
    check_backoff(c, w, prefix);
    if (job->config_json == NULL)
        job->config_json = md_xstrdup("{}");
    if (job->tz == NULL && (rc = md_tz_load("UTC", &job->tz)) != 0) {
        md__err_at(c, name_node, prefix, "cannot load time zone 'UTC': %s", md_strerror(rc));
        job->tz = NULL;
    }
    if (job->kind == MD_JOB_CRON && w->cron_ok && job->tz) {
        struct lint_ud l = {c, w->schedule_node, NULL};
        snprintf(path, sizeof path, "%s.schedule", prefix);
        l.path = path;
        md_cron_lint(&job->cron, job->schedule, job->tz, lint_cb, &l);
    }
}

static void job_build(struct ctx *c, struct md_job *job, const struct md__ynode *name_node,
                      const struct md__ynode *map, const struct defaults *def)
{
    const struct md__ynode *seen[NJOBKEYS] = {0}, *seen_key[NJOBKEYS] = {0};
    struct jobwork w = {.job = job};
    char prefix[128], path[300];

    snprintf(prefix, sizeof prefix, "jobs.%s", job->name);
    md__job_set_defaults(job);
    collect_keys(c, map, prefix, seen, seen_key);
    for (size_t k = 0; k < NJOBKEYS; k++) {
        const struct key_def *kd = &md__job_keys[k];
        const char *why;

        snprintf(path, sizeof path, "%s.%s", prefix, kd->name);
        if (kd->flags & K_JOB_ONLY) {
            if (seen[k])
                (void)md__apply_key(c, &w, kd, seen[k], path);
            continue;
        }
        if (def->ok[k] && !(w.kind_known && not_for_kind(kd, job->kind))) {
            c->quiet = true;
            w.from_defaults = true;
            (void)md__apply_key(c, &w, kd, def->node[k], path);
            w.from_defaults = false;
            c->quiet = false;
        }
        if (seen[k] == NULL)
            continue;
        if (w.kind_known && (why = not_for_kind(kd, job->kind)) != NULL) {
            md__err_at(c, seen_key[k], path, "%s", why);
            continue;
        }
        (void)md__apply_key(c, &w, kd, seen[k], path);
    }
    job_finish(c, &w, name_node, prefix);
    md__strv_free(w.cmd);
    md__strv_free(w.args);
}

void md__jobs_build(struct ctx *c, const struct md__ynode *map, const struct defaults *def)
{
    struct md_config *cfg = c->cfg;
    char buf[80];
    bool *dup;

    if (map == NULL || md__ynode_is_null(map)) {
        md__warn_pos(c, map ? map->line : 0, map ? map->col : 0, NULL, "no jobs defined");
        return;
    }
    if (map->type == MD__Y_BAD)
        return;
    if (map->type != MD__Y_MAP) {
        md__err_at(c, map, "jobs", "expected a mapping from job name to settings, got %s",
                   md__describe(map, buf, sizeof buf));
        return;
    }
    if (map->n == 0)
        md__warn_pos(c, map->line, map->col, NULL, "no jobs defined");
    dup = md__find_dups(c, map, "jobs", true);
    cfg->jobs = md_xcalloc(map->n / 2 + 1, sizeof *cfg->jobs);
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct md__ynode *kn = map->kids[i], *vn = map->kids[i + 1];
        struct md_job *job;
        char path[128];

        if (dup[i / 2] || !md__key_ok(c, kn, "jobs"))
            continue;
        if (!md__valid_name(kn->value, kn->len)) {
            md__err_at(c, kn, NULL, "bad job name '%s' (1 to 64 letters, digits, '_', '.' or '-')",
                       md__show(kn->value, kn->len, buf, sizeof buf));
            continue;
        }
        snprintf(path, sizeof path, "jobs.%s", kn->value);
        if (vn->type == MD__Y_BAD)
            continue;
        if (vn->type != MD__Y_MAP) {
            md__err_at(c, vn, path, "expected a mapping of job settings, got %s",
                       md__describe(vn, buf, sizeof buf));
            continue;
        }
        job = &cfg->jobs[cfg->njobs++];
        job->name = md_xstrdup(kn->value);
        job->line = kn->line;
        job->col = kn->col;
        job_build(c, job, kn, vn, def);
    }
    md_free(dup);
}
