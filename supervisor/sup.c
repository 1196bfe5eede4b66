/* sup.c - struct sup, the supervisor object: start, the reload diff, the shutdown sequence,
 * job activation (control.c has the operator's run now, pause, restart and stop).
 *
 * It wires the layers below (docs/architecture.md): jobs (job.h) tell it through job_hooks
 * when they are idle, when a service is to start and when a bus message's run is over; the
 * cluster (cluster.h) through cluster_hooks; the composition root (main.c) hears of start and
 * stop through struct sup_hooks (the HTTP API).  The scheduler (scheduler.h) decides when cron
 * jobs run, the bus (bus.h) when on: jobs do, lease.h whether a singleton service may.
 *
 * Shutdown (sup_shutdown): every job is stopped; once the last process is gone, the orphans
 * meshd adopted get SIGTERM then SIGKILL, the registry ships what it can, and the root handles
 * close, which ends the loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bus.h"
#include "cgroup.h"
#include "cluster.h"
#include "job.h"
#include "launch.h"
#include "lease.h"
#include "meshd/md_alloc.h"
#include "meshd/md_fs.h"
#include "meshd/md_log.h"
#include "meshd/md_rand.h"
#include "meshd/md_time.h"
#include "notify.h"
#include "orphans.h"
#include "registry.h"
#include "runlog.h"
#include "scheduler.h"
#include "statefile.h"
#include "sup.h"

#define REAP_DELAY_MS 50 /* SIGCHLD bursts share one orphan scan */
#define ORPHAN_GRACE_MS                                                                            \
    5000 /* at shutdown, adopted orphans get SIGTERM and this long before SIGKILL */

/* ---- jobs ---------------------------------------------------------------------------------- */

/* READY=1 to the service manager, with a summary of the jobs (notify.h). */
static void notify_ready(struct sup *sup)
{
    struct sup_notify_counts c = {0};

    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        if (job->retired || job->cfg == NULL)
            continue;
        c.jobs++;
        c.running += job->prog.state == PROG_RUNNING || job->prog.state == PROG_STARTING;
        c.scheduled += job->next_slot != 0;
        c.fatal += job->prog.state == PROG_FATAL;
        c.paused += job->paused;
    }
    sup_notify_ready(&c);
}

/* Starts what a job should be doing now: a service runs, a cron job waits for its slot. */
void sup_job_activate(struct sup_job *job, int64_t now_s)
{
    const struct md_job *j = job->cfg;

    if (!j->enabled)
        return;
    if (job->paused) {
        md_log(MD_LOG_NOTICE, "paused: job=%s (resume it with meshctl resume %s)", job->name,
               job->name);
        return;
    }
    switch (j->kind) {
    case MD_JOB_SERVICE:
        sup_service_start(job);
        break;
    case MD_JOB_CRON:
        sched_job_start(job, now_s);
        break;
    case MD_JOB_EVENT:
        sup_bus_wake(job->sup, j->event); /* its messages, if the bus is up */
        break;
    }
}

static void job_deactivate(struct sup_job *job)
{
    sched_job_remove(job);
    job->pending_slot = 0;
    if (job->prog.state != PROG_STOPPED) {
        job->stop_status = RUN_STOPPED;
        sup_job_event(job, EV_STOP, 0, 0);
    }
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (!p->primary && !p->exited && !p->killing)
            sup_proc_stop(p);
}

static void job_unlink(struct sup *sup, struct sup_job *job)
{
    for (struct sup_job **pp = &sup->jobs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == job) {
            *pp = job->next;
            return;
        }
    }
}

static void shutdown_finish(struct sup *sup);

void sup_job_proc_gone(struct sup_job *job)
{
    struct sup *sup = job->sup;

    if (job->procs != NULL || job->closing)
        return;
    if (job->retired || sup->stopping) {
        sched_job_remove(job);
        job_unlink(sup, job);
        sup_job_close(job);
        if (job->retired)
            md_log(MD_LOG_NOTICE, "removed: job=%s", job->name);
    }
    if (sup->stopping)
        shutdown_finish(sup);
}

/* ---- start, reload, shutdown -------------------------------------------------------------- */

static void orphan_reap(struct sup *sup);

static void reap_timer_cb(uv_timer_t *t)
{
    orphan_reap(MD_CONTAINER_OF(t, struct sup, reap_timer));
}

static void signal_cb(uv_signal_t *h, int signum)
{
    struct sup *sup = h->data;

    switch (signum) {
    case SIGHUP:
        sup_reload(sup);
        break;
    case SIGCHLD:
        /* Our own runs are reaped through their pidfds; this is for adopted orphans.  The
         * scan reads /proc, so bursts of exits (a thousand runs ending in the same second)
         * share one scan.  During the stop every signal counts, at once. */
        if (sup->orphan_phase > 0)
            orphan_reap(sup);
        else if (!uv_is_active((uv_handle_t *)&sup->reap_timer))
            uv_timer_start(&sup->reap_timer, reap_timer_cb, REAP_DELAY_MS, 0);
        break;
    default:
        md_log(MD_LOG_NOTICE, "signal: %s", strsignal(signum));
        sup_shutdown(sup);
        break;
    }
}

static bool config_has_job(const struct md_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->njobs; i++)
        if (strcmp(cfg->jobs[i].name, name) == 0)
            return true;
    return false;
}

/* The runs a previous life of this node began and did not see end (runlog.h), once the jobs
 * exist.  Policy (docs/supervision.md, "After a crash"):
 *   - a scheduled or manual run still running is adopted: watched to its end, its timeout
 *     still counting from its real start, stopped like any run at shutdown; its end is recorded
 *     as unknown (no exit status: it is not our child);
 *   - a service or an on: job's run still running is stopped (the service starts afresh, the
 *     message goes back to the queue), as is a run of a job no longer in the config;
 *   - a run that is gone is recorded abandoned, with the reason.
 * Then the registry hears which executions this life adopted: every other run its earlier lives
 * left 'running' is closed as abandoned there. */
static void reconcile(struct sup *sup, const struct sup_runlog_run *left, const bool *alive,
                      size_t n)
{
    const char **adopted = md_xcalloc(n + 1, sizeof *adopted);
    size_t na = 0;

    for (size_t i = 0; i < n; i++) {
        const struct sup_runlog_run *r = &left[i];
        struct sup_job *job = sup_job_find(sup, r->job);
        const char *why;

        if (alive[i] && job != NULL) {
            struct sup_cg_run *cg = NULL;
            bool stop = r->kind == 'v' || r->kind == 'e' || !job->cfg->enabled;
            if (r->cgroup[0] != '\0' && sup_cg_run_adopt(sup->cg, r->cgroup, &cg) < 0)
                cg = NULL;
            if (sup_job_adopt(job, r, cg, stop) == 0) {
                adopted[na++] = r->exec_id;
                continue;
            }
            why = "it ended while meshd was down; its outcome is not known";
        } else if (alive[i]) {
            /* Nothing to hand it to: its job left the config while meshd was down. */
            md_log(MD_LOG_WARN,
                   "killing a run of a job that is no longer configured: job=%s "
                   "run=%s pid=%d",
                   r->job, r->run_id, r->pid);
            (void)sup_launch_kill(r->pid, true, SIGKILL);
            why = "meshd restarted and its job is no longer configured; killed";
        } else if (!r->has_pid) {
            /* The run writes its P record itself just before its exec (runlog.h): without one
             * it never ran.  Its slot is not handled: catch-up decides, as for any slot. */
            md_log(MD_LOG_NOTICE,
                   "not started: job=%s run=%s exec=%s reason=meshd stopped "
                   "before launching it",
                   r->job, r->run_id, r->exec_id);
            (void)sup_runlog_end(sup->runlog, r->exec_id);
            continue;
        } else {
            why = "it ended while meshd was down; its outcome is not known";
        }
        md_log(MD_LOG_WARN, "abandoned: job=%s run=%s exec=%s reason=%s", r->job, r->run_id,
               r->exec_id, why);
        sup_reg_run_abandoned(sup, r, why);
        if (job != NULL)
            sup_job_note_run(job, NULL, r->run_id, RUN_ABANDONED, -1, 0);
        (void)sup_runlog_end(sup->runlog, r->exec_id);
    }
    if (n > 0)
        md_log(MD_LOG_NOTICE, "reconciled: runs_left=%zu adopted=%zu", n, na);
    sup_reg_runs_reconciled(sup, adopted, na);
    md_free(adopted);
}

int sup_start(struct sup *sup, uv_loop_t *loop, struct md_config *cfg, const char *config_path,
              const struct sup_hooks *hooks)
{
    int64_t now = md_time_wall_ms();
    struct sup_runlog_run *left = NULL;
    bool *alive = NULL;
    const char **keep = NULL;
    size_t nleft = 0, nkeep = 0;
    int r;

    memset(sup, 0, sizeof *sup);
    sup->loop = loop;
    sup->cfg = cfg;
    sup->config_path = md_xstrdup(config_path);
    if (hooks != NULL)
        sup->hooks = *hooks;
    sup->proc_ops = &sup_proc_ops;
    sup->job_hooks.idle = sup_job_proc_gone;
    sup->job_hooks.service_start = sup_service_start;
    sup->job_hooks.msg_finished = sup_bus_msg_finished;
    sup->clock_fd = -1;
    sup->started_wall_ms = now;
    {
        uint8_t b[6];
        md_rand_bytes(b, sizeof b);
        snprintf(sup->life, sizeof sup->life, "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
                 b[4], b[5]);
    }

    {
        unsigned long from = 0, to = 0;
        int fr = sup_launch_raise_fd_limit(&from, &to);
        if (fr > 0)
            md_log(MD_LOG_INFO, "open files: limit raised from %lu to %lu (runs get %lu)", from, to,
                   from);
        else if (fr < 0)
            md_log_err(MD_LOG_WARN, fr, "open files: limit not raised");
    }
    r = md_mkdir_p(cfg->state_dir, 0755);
    if (r < 0)
        md_log_err(MD_LOG_WARN, r, "state dir: path=%s (catch-up after downtime disabled)",
                   cfg->state_dir);
    sup->state_path = md_xasprintf("%s/schedule.state", cfg->state_dir);
    /* The runs a previous life left (runlog.h), looked at before the cgroups are set up: the
     * cgroups of those still alive are kept for adoption, every other stale one is killed. */
    if (r == 0 && sup_runlog_open(loop, cfg->state_dir, &sup->runlog, &left, &nleft) < 0)
        sup->runlog = NULL;
    if (nleft > 0) {
        alive = md_xcalloc(nleft, sizeof *alive);
        keep = md_xcalloc(nleft, sizeof *keep);
        for (size_t i = 0; i < nleft; i++) {
            alive[i] = sup_runlog_alive(&left[i]);
            if (alive[i] && left[i].cgroup[0] != '\0' && config_has_job(cfg, left[i].job))
                keep[nkeep++] = left[i].cgroup;
        }
    }

    r = sched_start(sup);
    if (r < 0)
        return r;
    /* Before any run is launched: meshd moves itself into <own>/supervisor (cgroup.h). */
    sup->cg = sup_cg_new(loop, strcmp(cfg->cgroups, "off") != 0, keep, nkeep);
    md_free(keep);

    uv_timer_init(loop, &sup->orphan_timer);
    uv_timer_init(loop, &sup->reap_timer);
    sup_lease_init(sup);
    uv_signal_init(loop, &sup->sig_term);
    uv_signal_init(loop, &sup->sig_int);
    uv_signal_init(loop, &sup->sig_hup);
    uv_signal_init(loop, &sup->sig_chld);
    sup->sig_term.data = sup->sig_int.data = sup->sig_hup.data = sup->sig_chld.data = sup;
    uv_signal_start(&sup->sig_term, signal_cb, SIGTERM);
    uv_signal_start(&sup->sig_int, signal_cb, SIGINT);
    uv_signal_start(&sup->sig_hup, signal_cb, SIGHUP);
    uv_signal_start(&sup->sig_chld, signal_cb, SIGCHLD);

    /* Jobs are prepended; create them in reverse so sup->jobs is in file order. */
    for (size_t i = cfg->njobs; i-- > 0;)
        sup_job_new(sup, &cfg->jobs[i]);
    sched_state_load(sup);
    /* A slot whose run started is handled, whatever became of the run: it never runs again
     * and is never recorded missed, even when the state file had not caught up. */
    for (size_t i = 0; i < nleft; i++) {
        struct sup_job *job = sup_job_find(sup, left[i].job);
        if (job != NULL && left[i].kind == 's' && left[i].has_pid &&
            left[i].slot > job->last_slot) {
            job->last_slot = left[i].slot;
            sup->state_dirty = true;
        }
    }
    if (sup_registry_start(sup) < 0)
        md_log(MD_LOG_WARN, "running without a registry");
    {
        static const struct sup_cluster_hooks cluster_hooks = {
            .claims_back = sup_claims_back,
            .leases_changed = sup_leases_changed,
        };
        sup_cluster_start(sup, &cluster_hooks);
    }
    sup_bus_start(sup);
    reconcile(sup, left, alive, nleft);
    md_free(left);
    md_free(alive);
    sup_notify_init(sup->loop);
    sup_lease_timer_update(sup);
    if (sup->hooks.started != NULL && sup->hooks.started(sup) < 0)
        md_log(MD_LOG_WARN, "running without the HTTP API");
    sup_reg_node(sup, "up");
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        sup_job_report(job);
    md_log(MD_LOG_NOTICE, "started: node=%s environment=%s jobs=%zu config=%s", cfg->node_name,
           cfg->node_env, cfg->njobs, config_path);
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        sup_job_activate(job, now / 1000);
    sched_run_due(sup, "meshd was down");
    notify_ready(sup);
    return 0;
}

void sup_reload(struct sup *sup)
{
    (void)sup_reload_diag(sup, NULL);
}

int sup_reload_diag(struct sup *sup, struct md_diag *out)
{
    struct md_config *ncfg = NULL;
    struct md_diag local, *diag = out != NULL ? out : &local;
    struct sup_job *job, *next;
    int64_t now = md_time_wall_ms();
    unsigned added = 0, removed = 0, changed = 0, same = 0;
    size_t first;
    int r;

    if (sup->stopping)
        return -ESHUTDOWN;
    if (out == NULL)
        md_diag_init(&local);
    first = diag->n;
    sup_notify_reloading();
    r = md_config_load(sup->config_path, &ncfg, diag);
    for (size_t i = first; i < diag->n; i++) {
        const struct md_diag_item *it = &diag->items[i];
        char *line = md_diag_format(it, sup->config_path);
        md_log(it->severity == MD_DIAG_ERROR ? MD_LOG_ERROR : MD_LOG_WARN, "%s", line);
        md_free(line);
    }
    size_t nerrors = diag->nerrors;
    if (out == NULL)
        md_diag_cleanup(&local);
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r,
                   "reload failed: config=%s errors=%zu; keeping the running "
                   "configuration",
                   sup->config_path, nerrors);
        notify_ready(sup);
        return r;
    }
    if ((ncfg->http_host == NULL) != (sup->cfg->http_host == NULL) ||
        ncfg->http_port != sup->cfg->http_port ||
        (ncfg->http_host != NULL && strcmp(ncfg->http_host, sup->cfg->http_host) != 0))
        md_log(MD_LOG_WARN, "reload: http.listen changed; the new address takes effect at the "
                            "next start (token and anonymous_read apply now)");

    /* Match running jobs to the new config by name. */
    for (job = sup->jobs; job != NULL; job = next) {
        const struct md_job *oj = job->cfg, *nj;
        next = job->next;
        if (job->retired)
            continue;
        nj = md_config_job(ncfg, job->name);
        if (nj == NULL) {
            removed++;
            if (job->lease_held) {
                job->lease_held = false;
                sup_cluster_lease_release(sup, job->name);
            }
            job->retired = true;
            job_deactivate(job);
            job->cfg = NULL;
            if (job->procs == NULL)
                sup_job_proc_gone(job);
            continue;
        }
        bool same_proc = md_job_same_process(oj, nj);
        bool same_sched = md_job_same_schedule(oj, nj) && oj->kind == nj->kind;
        bool was_enabled = oj->enabled;
        sup_job_set_config(job, nj); /* log limits apply to running processes at once */
        if (same_proc && same_sched && was_enabled == nj->enabled) {
            same++;
            continue;
        }
        changed++;
        if (!nj->enabled) {
            job_deactivate(job);
            continue;
        }
        if (!same_sched) {
            sched_job_remove(job);
            if (oj->kind == MD_JOB_SERVICE && nj->kind != MD_JOB_SERVICE && sup_job_busy(job)) {
                job->stop_status = RUN_STOPPED;
                sup_job_event(job, EV_STOP, 0, 0);
            }
        }
        if (nj->kind == MD_JOB_SERVICE) {
            if (sup_job_busy(job)) {
                if (!same_proc || oj->kind != MD_JOB_SERVICE) {
                    job->restart_pending = true;
                    if (job->prog.state != PROG_STOPPING) {
                        job->stop_status = RUN_STOPPED;
                        sup_job_event(job, EV_STOP, 0, 0);
                    }
                }
            } else {
                sup_job_activate(job, now / 1000);
            }
        } else if (nj->kind == MD_JOB_CRON && (!same_sched || !was_enabled)) {
            sched_job_schedule(job, now / 1000);
        }
    }
    /* New jobs, in file order. */
    for (size_t i = ncfg->njobs; i-- > 0;) {
        bool found = false;
        for (job = sup->jobs; job != NULL && !found; job = job->next)
            found = !job->retired && job->cfg == &ncfg->jobs[i];
        if (found)
            continue;
        added++;
        job = sup_job_new(sup, &ncfg->jobs[i]);
        md_log(MD_LOG_NOTICE, "added: job=%s", job->name);
        sup_job_activate(job, now / 1000);
    }
    md_config_free(sup->cfg);
    sup->cfg = ncfg;
    sup->status_gen++;
    sup_lease_timer_update(sup);
    md_log(MD_LOG_NOTICE,
           "reloaded: config=%s jobs=%zu added=%u removed=%u changed=%u "
           "unchanged=%u",
           sup->config_path, ncfg->njobs, added, removed, changed, same);
    sup->state_dirty = true;
    sched_run_due(sup, "meshd was busy");
    notify_ready(sup);
    return 0;
}

static void sup_close_cb(uv_handle_t *h)
{
    (void)h;
}

static void orphan_timer_cb(uv_timer_t *t);
static int orphans(struct sup *sup, enum sup_orphan_action a);

/* Runs once every job is down.  What a worker forked and left behind was adopted by meshd (a
 * subreaper); it must not outlive meshd either: SIGTERM, then SIGKILL after ORPHAN_GRACE_MS,
 * and the loop ends only once every one has been reaped. */
static void shutdown_finish(struct sup *sup)
{
    if (sup->jobs != NULL || sup->closed)
        return;
    orphans(sup, SUP_ORPHAN_REAP);
    if (sup->orphan_phase == 0) {
        sup->orphan_phase = 1;
        if (orphans(sup, SUP_ORPHAN_TERM) > 0) {
            uv_timer_start(&sup->orphan_timer, orphan_timer_cb, ORPHAN_GRACE_MS, 0);
            return;
        }
    } else if (orphans(sup, SUP_ORPHAN_REAP) > 0) {
        return; /* more SIGCHLDs (or the timer) will call us again */
    }
    if (!sup->reg_stopping) {
        /* Last: record the node as down and give the registry a moment to ship. */
        sup->reg_stopping = true;
        sup_registry_stop(sup, shutdown_finish);
        return;
    }
    if (sup->reg != NULL)
        return; /* sup_registry_stop calls us again when it is done */
    if (sup->hooks.stopped != NULL)
        sup->hooks.stopped(sup);
    sup_notify_close();
    sup_cg_close(sup->cg);
    sup_runlog_close(sup->runlog); /* every run has ended and been recorded */
    sup->runlog = NULL;
    sup->closed = true;
    uv_timer_stop(&sup->orphan_timer);
    uv_close((uv_handle_t *)&sup->orphan_timer, sup_close_cb);
    sup_lease_close(sup, sup_close_cb);
    uv_close((uv_handle_t *)&sup->reap_timer, sup_close_cb);
    if (sup->state_dirty)
        sched_state_save(sup);
    sched_close(sup, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_term, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_int, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_hup, sup_close_cb);
    uv_close((uv_handle_t *)&sup->sig_chld, sup_close_cb);
    md_log(MD_LOG_NOTICE, "stopped: every job is down");
}

void sup_shutdown(struct sup *sup)
{
    sup->stop_signals++;
    if (sup->stopping) {
        /* A second signal: don't wait for stop timeouts. */
        md_log(MD_LOG_WARN, "stopping now: SIGKILL to every process group");
        for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
            sup_job_kill_all(job);
        return;
    }
    sup->stopping = true;
    md_log(MD_LOG_NOTICE, "stopping: jobs=%zu", sup->cfg->njobs);
    sup_notify_stopping();
    sup_unclaimed_flush(sup); /* slots that could not be claimed: recorded missed, not lost */
    for (struct sup_job *job = sup->jobs, *next; job != NULL; job = next) {
        next = job->next;
        job_deactivate(job);
        if (job->procs == NULL)
            sup_job_proc_gone(job);
    }
    shutdown_finish(sup);
}

void sup_cleanup(struct sup *sup)
{
    sched_cleanup(sup);
    sup_cg_free(sup->cg);
    sup->cg = NULL;
    md_free(sup->state_path);
    md_free(sup->config_path);
    md_config_free(sup->cfg);
    sup->cfg = NULL;
}

/* ---- orphans ------------------------------------------------------------------------------- */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The pids of our live runs, sorted (caller frees): one pass over the jobs per scan, then a
 * binary search per child, instead of a walk of every job for every child. */
static int *our_pids(struct sup *sup, size_t *n)
{
    size_t cap = 64;
    int *v = md_xmalloc(cap * sizeof *v);

    *n = 0;
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next) {
        for (struct sup_proc *p = job->procs; p != NULL; p = p->next) {
            if (p->pid <= 0 || p->exited)
                continue;
            if (*n == cap)
                v = md_xrealloc(v, (cap *= 2) * sizeof *v);
            v[(*n)++] = p->pid;
        }
    }
    qsort(v, *n, sizeof *v, cmp_int);
    return v;
}

/* Applies a to every child of meshd that is not one of its runs (orphans.h). */
static int orphans(struct sup *sup, enum sup_orphan_action a)
{
    size_t n;
    int *ours = our_pids(sup, &n);
    int count = sup_orphans(ours, n, a);

    md_free(ours);
    return count;
}

static void orphan_reap(struct sup *sup)
{
    orphans(sup, SUP_ORPHAN_REAP);
    if (sup->orphan_phase > 0)
        shutdown_finish(sup);
}

static void orphan_timer_cb(uv_timer_t *t)
{
    struct sup *sup = MD_CONTAINER_OF(t, struct sup, orphan_timer);

    /* Past the grace period: SIGKILL whatever is left, then look again shortly. */
    sup->orphan_phase = 2;
    orphans(sup, SUP_ORPHAN_KILL);
    uv_timer_start(&sup->orphan_timer, orphan_timer_cb, 100, 0);
    orphan_reap(sup);
}
