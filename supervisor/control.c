/* control.c - control.h: what an operator asks of a job (the API, meshctl): run it now, pause
 * or resume it, restart it, stop it.  Each checks the job's state first and answers with a
 * reason when it cannot be done; a pause survives a restart of meshd (the state file).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "cluster.h"
#include "control.h"
#include "job.h"
#include "lease.h"
#include "meshd/md_log.h"
#include "meshd/md_time.h"
#include "scheduler.h"
#include "sup.h"

static void stop_extras(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (!p->primary && !p->exited && !p->killing)
            sup_proc_stop(p);
}

static void stop_primary(struct sup_job *job)
{
    if (job->prog.state == PROG_STOPPING || job->prog.state == PROG_STOPPED)
        return;
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
}

int sup_job_run_now(struct sup_job *job, char *run_id, size_t len, char *err, size_t errlen)
{
    const struct md_job *j = job->cfg;

    run_id[0] = '\0';
    if (job->sup->stopping) {
        snprintf(err, errlen, "meshd is stopping");
        return -ESHUTDOWN;
    }
    if (sup_lease_needed(job) && !job->lease_held) {
        snprintf(err, errlen,
                 "job '%s' is a singleton service and another node holds its "
                 "lease (or the database is away)",
                 job->name);
        return -EBUSY;
    }
    if (sup_job_busy(job)) {
        if (j->kind == MD_JOB_SERVICE) {
            snprintf(err, errlen, "job '%s' is a service and already %s", job->name,
                     prog_state_name(job->prog.state));
            return -EBUSY;
        }
        switch (j->concurrency) {
        case MD_CONC_ALLOW:
            sup_job_spawn_extra(job, 0);
            if (job->procs != NULL)
                snprintf(run_id, len, "%s", job->procs->run_id);
            md_log(MD_LOG_NOTICE, "run requested: job=%s run=%s (beside the current run)",
                   job->name, run_id);
            return 0;
        case MD_CONC_REPLACE:
            md_log(MD_LOG_NOTICE, "run requested: job=%s replacing run=%s", job->name, job->run_id);
            job->pending_slot = 0;
            job->pending_now = true;
            stop_primary(job);
            return 0;
        case MD_CONC_FORBID:
            snprintf(err, errlen,
                     "job '%s' has a run in progress (%s) and concurrency is "
                     "forbid",
                     job->name, job->run_id);
            return -EBUSY;
        }
    }
    job->cur_slot = 0;
    md_log(MD_LOG_NOTICE, "run requested: job=%s", job->name);
    sup_job_event(job, EV_START, 0, 0);
    snprintf(run_id, len, "%s", job->run_id);
    return 0;
}

int sup_job_set_paused(struct sup_job *job, bool paused)
{
    struct sup *sup = job->sup;
    const struct md_job *j = job->cfg;
    int64_t now_s = md_time_wall_ms() / 1000;

    if (sup->stopping)
        return -ESHUTDOWN;
    if (job->paused == paused)
        return 0;
    job->paused = paused;
    sup->status_gen++;
    md_log(MD_LOG_NOTICE, "%s: job=%s", paused ? "paused" : "resumed", job->name);
    if (paused) {
        sched_job_remove(job);
        job->next_slot = 0;
        job->pending_slot = 0;
        if (j->kind == MD_JOB_SERVICE) {
            job->restart_pending = job->pending_now = false;
            stop_primary(job);
            if (job->lease_held) { /* paused here: another node may run it */
                job->lease_held = false;
                sup_cluster_lease_release(sup, job->name);
            }
        }
    } else if (j->enabled) {
        /* The schedule goes on from now: the slots passed while paused are not caught up. */
        if (j->kind == MD_JOB_CRON && job->last_slot < now_s)
            job->last_slot = now_s;
        if (j->kind == MD_JOB_CRON)
            sched_job_schedule(job, now_s);
        else if (j->kind == MD_JOB_SERVICE && !sup_job_busy(job))
            sup_job_activate(job, now_s);
        else if (j->kind == MD_JOB_EVENT) /* what came while paused, now; not at the next tick */
            sup_bus_wake(sup, j->event);
        sched_rearm(sup);
    }
    sched_state_save(sup); /* at once: a pause must survive a crash right after it */
    return 0;
}

int sup_job_restart(struct sup_job *job, char *err, size_t errlen)
{
    if (job->sup->stopping) {
        snprintf(err, errlen, "meshd is stopping");
        return -ESHUTDOWN;
    }
    if (sup_lease_needed(job) && !job->lease_held) {
        snprintf(err, errlen,
                 "job '%s' is a singleton service and another node holds its "
                 "lease (or the database is away)",
                 job->name);
        return -EBUSY;
    }
    md_log(MD_LOG_NOTICE, "restart requested: job=%s state=%s", job->name,
           prog_state_name(job->prog.state));
    job->pending_slot = 0;
    if (sup_job_busy(job)) {
        job->pending_now = true;
        stop_primary(job);
        return 0;
    }
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
    return 0;
}

int sup_job_stop(struct sup_job *job, char *err, size_t errlen)
{
    bool extras = false;

    if (job->sup->stopping) {
        snprintf(err, errlen, "meshd is stopping");
        return -ESHUTDOWN;
    }
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        extras |= !p->primary && !p->exited;
    if (!sup_job_busy(job) && !extras) {
        snprintf(err, errlen, "job '%s' is not running (state %s)", job->name,
                 prog_state_name(job->prog.state));
        return -EALREADY;
    }
    md_log(MD_LOG_NOTICE, "stop requested: job=%s state=%s", job->name,
           prog_state_name(job->prog.state));
    job->pending_slot = 0;
    job->pending_now = job->restart_pending = false;
    stop_primary(job);
    stop_extras(job);
    return 0;
}
