/* meshd-report - alerts to people: routed, grouped, inhibited, escalated, delivered once
 * through an outbox to webhooks (Slack), e-mail and GitHub issues; and a digest of the
 * registry (docs/report.md).
 *
 * main.c only binds the config and drives the kit's life cycle (md_worker.h); the work is in
 * report.c, plan.c, deliver.c and the senders, the pure decisions in route.c.
 */
#include <errno.h>
#include <stdlib.h>

#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "meshd/md_log.h"
#include "meshd/md_worker.h"
#include "report.h"

static const char usage[] =
    "Turns meshd's alerts (agent_alerts in the registry) into notifications: routes by "
    "severity, job, node and key; groups, waits and repeats as Alertmanager does; mutes by "
    "inhibit rules and quiet hours; escalates what stays unresolved; and delivers each "
    "notification exactly once (an outbox, FOR UPDATE SKIP LOCKED) to webhooks, Slack, e-mail "
    "and GitHub issues.  mode: digest sends a summary of the registry's last day instead.  "
    "Config: JSON on stdin (docs/report.md).";

static const char *env(const char *name)
{
    return getenv(name);
}

int main(int argc, char **argv)
{
    struct md_worker w;
    struct rpt_cfg cfg = {0};
    struct md_error err = {0};
    PGconn *db = NULL;
    char *summary = NULL;
    int rc;

    if ((rc = md_worker_init(&w, "report", argc, argv, usage)) < 0)
        md_worker_finish(&w, rc, NULL); /* logged; finish turns it into the exit code */
    if ((rc = md_worker_config(&w, rpt_cfg_keys, rpt_cfg_nkeys, &cfg, &err)) < 0 ||
        (rc = rpt_cfg_check(&cfg, env, &err)) < 0 ||
        (rc = md_worker_connect(&w, cfg.database.url, &db, &err)) < 0)
        goto out;
    (void)md_status_ready(&w.st);
    rc = rpt_run(&w, db, &cfg, &summary, &err);
out:
    if (rc < 0 && rc != -ECANCELED) /* a stop is logged by md_worker_finish */
        md_log(rc == REPORT_EREFUSED ? MD_LOG_WARN : MD_LOG_ERROR, "%s", err.msg);
    md_worker_disconnect(db);
    rpt_cfg_free(&cfg);
    md_worker_finish(&w, rc, summary); /* exits; summary dies with the process */
}
