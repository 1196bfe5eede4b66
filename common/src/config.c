/* config.c - the schedule file: a tree from config_yaml.c, checked against key tables.
 *
 * The public entry points: md_config_parse walks the top level and hands each section to its
 * builder (config_sections.c; config_job_build.c, which builds jobs from the key table in
 * config_job.c); md_config_load reads a file within its 1 MiB cap; md_config_free; and the
 * comparisons a reload uses to tell which jobs changed.  config_internal.h says which of the
 * config_*.c files holds what.
 *
 * Every problem is collected (the walk never stops at the first one) and the list is sorted
 * by position at the end.  Environment values are never put into a message.
 */
#include "config_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "meshd/md_alloc.h"

/* ---- the top level --------------------------------------------------------------------------- */

static const char *const top_keys[] = {"node", "registry", "http", "cluster", "defaults", "jobs"};

int md_config_parse(const char *text, size_t len, const char *name, struct md_config **out,
                    struct md_diag *diag)
{
    struct md_diag local;
    struct ctx c = {0};
    struct md__ynode *root = NULL;
    const struct md__ynode *sect[MD_ARRAY_SIZE(top_keys)] = {0};
    struct defaults def;
    size_t first;
    char buf[80];
    bool *dup;

    *out = NULL;
    if (diag == NULL) {
        md_diag_init(&local);
        diag = &local;
    }
    first = diag->n;
    c.diag = diag;
    if (name == NULL)
        name = "<config>";
    if (len > MD_CONFIG_MAX_BYTES) {
        md__err_pos(&c, 0, 0, NULL, "the file is larger than 1 MiB (%zu bytes)", len);
        goto out;
    }
    c.nerrors += md__yaml_parse(text, len, &root, diag);
    if (c.nerrors > 0)
        goto out;
    if (root == NULL) {
        md__err_pos(&c, 1, 1, NULL,
                    "the file is empty: expected a mapping with node:, defaults: "
                    "and jobs:");
        goto out;
    }
    if (root->type != MD__Y_MAP) {
        md__err_at(&c, root, NULL,
                   "expected a mapping with node:, defaults: and jobs: at the top, "
                   "got %s",
                   md__describe(root, buf, sizeof buf));
        goto out;
    }
    c.cfg = md_xcalloc(1, sizeof *c.cfg);
    c.cfg->path = md_xstrdup(name);
    dup = md__find_dups(&c, root, "", false);
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const struct md__ynode *kn = root->kids[i];
        size_t j;

        if (dup[i / 2] || !md__key_ok(&c, kn, ""))
            continue;
        for (j = 0; j < MD_ARRAY_SIZE(top_keys); j++)
            if (strcmp(kn->value, top_keys[j]) == 0)
                break;
        if (j == MD_ARRAY_SIZE(top_keys))
            md__unknown_key(&c, kn, "", top_keys, MD_ARRAY_SIZE(top_keys), sizeof top_keys[0]);
        else
            sect[j] = root->kids[i + 1];
    }
    md_free(dup);
    md__node_build(&c, sect[0]);
    md__registry_build(&c, sect[1]);
    md__http_build(&c, sect[2]);
    md__cluster_build(&c, sect[3]);
    md__defaults_check(&c, sect[4], &def);
    md__jobs_build(&c, sect[5], &def);
out:
    md__ynode_free(root);
    md__diag_sort(diag, first);
    if (diag == &local)
        md_diag_cleanup(&local);
    if (c.nerrors > 0) {
        md_config_free(c.cfg);
        return MD_ECONFIG;
    }
    *out = c.cfg;
    return 0;
}

int md_config_load(const char *path, struct md_config **out, struct md_diag *diag)
{
    struct md_diag local;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc;

    *out = NULL;
    if (diag == NULL) {
        md_diag_init(&local);
        diag = &local;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        md__diag_add(diag, MD_DIAG_ERROR, 0, 0, "cannot open: %s", strerror(-rc));
        goto out;
    }
    /* Read up to one byte past the cap: that byte tells "too big" from "exactly the cap". */
    buf = md_xmalloc(MD_CONFIG_MAX_BYTES + 1);
    for (;;) {
        ssize_t n = read(fd, buf + len, MD_CONFIG_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            md__diag_add(diag, MD_DIAG_ERROR, 0, 0, "cannot read: %s", strerror(-rc));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > MD_CONFIG_MAX_BYTES) {
            md__diag_add(diag, MD_DIAG_ERROR, 0, 0, "the file is larger than 1 MiB");
            rc = MD_ECONFIG;
            goto out;
        }
    }
    rc = md_config_parse(buf, len, path, out, diag);
out:
    if (fd >= 0)
        close(fd);
    md_free(buf);
    if (diag == &local)
        md_diag_cleanup(&local);
    return rc;
}

void md_config_free(struct md_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->njobs; i++)
        md__job_cleanup(&cfg->jobs[i]);
    md_free(cfg->jobs);
    md_free(cfg->path);
    md_free(cfg->node_name);
    md_free(cfg->node_env);
    md_free(cfg->state_dir);
    md_free(cfg->worker_dir);
    md_free(cfg->log_level);
    md_free(cfg->cgroups);
    md_free(cfg->registry_url);
    md_free(cfg->http_host);
    md_free(cfg->http_token);
    md_free(cfg);
}

const struct md_job *md_config_job(const struct md_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->njobs; i++)
        if (strcmp(cfg->jobs[i].name, name) == 0)
            return &cfg->jobs[i];
    return NULL;
}

/* ---- comparison for reload ------------------------------------------------------------------- */

static bool str_eq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

bool md_job_same_process(const struct md_job *a, const struct md_job *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->worker, b->worker) || a->argc != b->argc ||
        a->nenv != b->nenv || a->kind != b->kind)
        return false;
    for (size_t i = 0; i < a->argc; i++)
        if (!str_eq(a->argv[i], b->argv[i]))
            return false;
    for (size_t i = 0; i < a->nenv; i++)
        if (!str_eq(a->env[i].name, b->env[i].name) || !str_eq(a->env[i].value, b->env[i].value))
            return false;
    return str_eq(a->workdir, b->workdir) && str_eq(a->user, b->user) &&
           a->timeout_ms == b->timeout_ms && a->restart == b->restart &&
           a->max_retries == b->max_retries && a->backoff_initial_ms == b->backoff_initial_ms &&
           a->backoff_max_ms == b->backoff_max_ms && a->backoff_reset_ms == b->backoff_reset_ms &&
           a->start_secs_ms == b->start_secs_ms && a->ready_line == b->ready_line &&
           a->stop_signal == b->stop_signal && a->stop_timeout_ms == b->stop_timeout_ms &&
           a->stop_group == b->stop_group && a->concurrency == b->concurrency &&
           a->enabled == b->enabled && str_eq(a->config_json, b->config_json);
}

bool md_job_same_schedule(const struct md_job *a, const struct md_job *b)
{
    const char *za = a->tz ? md_tz_name(a->tz) : "UTC", *zb = b->tz ? md_tz_name(b->tz) : "UTC";

    if (a->kind != b->kind || !str_eq(a->schedule, b->schedule) || !str_eq(a->event, b->event) ||
        !str_eq(za, zb) || a->jitter_ms != b->jitter_ms || a->catchup_ms != b->catchup_ms ||
        !str_eq(a->prefer, b->prefer) || a->takeover_ms != b->takeover_ms ||
        a->singleton != b->singleton)
        return false;
    if (a->kind == MD_JOB_CRON)
        return a->cron.sec == b->cron.sec && a->cron.min == b->cron.min &&
               a->cron.hour == b->cron.hour && a->cron.dom == b->cron.dom &&
               a->cron.month == b->cron.month && a->cron.dow == b->cron.dow &&
               a->cron.flags == b->cron.flags && a->cron.dst == b->cron.dst;
    return true;
}
