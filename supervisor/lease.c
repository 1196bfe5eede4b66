/* lease.c - lease.h: singleton services in a cluster run only on the node that holds their
 * lease (cluster.h: a session advisory lock on the claims' connection).  Asking for it, starting
 * the service when it is ours, stopping a run that has lost it, asking again every
 * LEASE_RETRY_MS while a singleton waits.
 */
#include <stdbool.h>

#include "cluster.h"
#include "job.h"
#include "lease.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "sup.h"

#define LEASE_RETRY_MS 3000 /* a singleton service without its lease asks again this often */

/* A singleton service in a cluster with a registry runs only on the node that holds its lease
 * (a session advisory lock on the claims' connection, cluster.c). */
bool sup_lease_needed(const struct sup_job *job)
{
    const struct md_job *j = job->cfg;

    return j != NULL && j->kind == MD_JOB_SERVICE && j->singleton && job->sup->cfg->cluster &&
           job->sup->reg != NULL;
}

static bool wants_to_run(const struct sup_job *job)
{
    return job->cfg != NULL && job->cfg->enabled && !job->paused && !job->retired &&
           !job->sup->stopping;
}

static void lease_answered(struct sup *sup, const char *name, enum sup_lease_answer answer)
{
    struct sup_job *job = sup_job_find(sup, name);

    if (job == NULL) {
        if (answer == SUP_LEASE_GOT)
            sup_cluster_lease_release(sup, name);
        return;
    }
    job->lease_pending = false;
    if (answer != SUP_LEASE_GOT) {
        /* Running without the lease (it was lost with the session, when_offline=run): stop
         * once another node is seen holding it, or at once with when_offline=skip. */
        if (sup_job_busy(job) && !job->lease_held &&
            (answer == SUP_LEASE_HELD || sup->cfg->cluster_offline_skip)) {
            md_log(MD_LOG_WARN, "cluster: job=%s runs here without its lease%s: stopping it",
                   job->name, answer == SUP_LEASE_HELD ? " and another node holds it" : "");
            job->stop_status = RUN_STOPPED;
            sup_job_event(job, EV_STOP, 0, 0);
        }
        return;
    }
    if (!wants_to_run(job) || !sup_lease_needed(job)) {
        sup_cluster_lease_release(sup, name);
        return;
    }
    if (!job->lease_held)
        md_log(MD_LOG_NOTICE, "cluster: lease taken: job=%s runs on this node", job->name);
    job->lease_held = true;
    sup->status_gen++;
    if (!sup_job_busy(job)) {
        job->cur_slot = 0;
        sup_job_event(job, EV_START, 0, 0);
    }
}

static void lease_ask(struct sup_job *job)
{
    if (job->lease_pending)
        return;
    job->lease_pending = true;
    sup_cluster_lease(job->sup, job->name, lease_answered);
}

void sup_service_start(struct sup_job *job)
{
    if (sup_lease_needed(job) && !job->lease_held) {
        lease_ask(job); /* started when the lease is ours */
        return;
    }
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
}

static void lease_timer_cb(uv_timer_t *t);

/* The retry timer runs only while some singleton service may need a lease, so a node without
 * one keeps its zero idle wake-ups.  Called at start and after each reload. */
void sup_lease_timer_update(struct sup *sup)
{
    bool any = false;

    for (size_t i = 0; i < sup->cfg->njobs; i++)
        any |= sup->cfg->jobs[i].kind == MD_JOB_SERVICE && sup->cfg->jobs[i].singleton;
    any = any && sup->cfg->cluster && sup->reg != NULL;
    if (any && !uv_is_active((uv_handle_t *)&sup->lease_timer))
        uv_timer_start(&sup->lease_timer, lease_timer_cb, LEASE_RETRY_MS, LEASE_RETRY_MS);
    else if (!any)
        uv_timer_stop(&sup->lease_timer);
}

static void lease_timer_cb(uv_timer_t *t)
{
    struct sup *sup = MD_CONTAINER_OF(t, struct sup, lease_timer);

    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        if (sup_lease_needed(job) && !job->lease_held && wants_to_run(job))
            lease_ask(job);
}

void sup_leases_changed(struct sup *sup, bool up)
{
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        if (!sup_lease_needed(job))
            continue;
        if (up) {
            if (!job->lease_held && wants_to_run(job))
                lease_ask(job);
            continue;
        }
        job->lease_pending = false;
        if (!job->lease_held)
            continue;
        job->lease_held = false;
        sup->status_gen++;
        if (sup->cfg->cluster_offline_skip && sup_job_busy(job)) {
            md_log(MD_LOG_WARN,
                   "cluster: lease of job=%s lost with the database session: "
                   "stopping it (when_offline=skip)",
                   job->name);
            job->stop_status = RUN_STOPPED;
            sup_job_event(job, EV_STOP, 0, 0);
        } else if (sup_job_busy(job)) {
            md_log(MD_LOG_WARN,
                   "cluster: lease of job=%s lost with the database session: it "
                   "keeps running here until another node is seen holding it (when_offline=run)",
                   job->name);
        }
    }
}

void sup_lease_init(struct sup *sup)
{
    uv_timer_init(sup->loop, &sup->lease_timer);
}

void sup_lease_close(struct sup *sup, uv_close_cb cb)
{
    uv_timer_stop(&sup->lease_timer);
    uv_close((uv_handle_t *)&sup->lease_timer, cb);
}
