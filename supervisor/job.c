/* job.c - one job's run lifecycle: the glue between prog.c's pure state machine and the
 * job's processes (proc.h).
 *
 * sup_job_event() feeds one event to a job's prog and carries out the actions it returns:
 * spawn a run (a struct sup_proc_spec built here: argv, environment, identity, limits), signal
 * it, arm the prog's single timer.  What a proc reports (a status line, its exit, a timeout, its
 * last close) comes back through proc_cbs and is turned into events, counters, the job's
 * memory (history.h) and registry events.  What happens next once a run is over (a restart a
 * reload asked for, an operator's run-now, a replace's newer slot, the bus's next message) is
 * decided here too.
 *
 * Upward news goes through struct sup_job_hooks (sup.h), set by the supervisor object: a job
 * with no process left (idle), a service to start (it may need its lease), the bus to wake.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"
#include "jobalert.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_rand.h"
#include "meshd/md_status.h"
#include "meshd/md_time.h"
#include "proc.h"
#include "registry.h"
#include "runlog.h"
#include "sup.h"

extern char **environ;

void sup_run_id(struct sup *sup, const char *job, int64_t slot, char *buf, size_t len)
{
    struct tm tm;
    time_t t;

    if (slot != 0) {
        /* Stable for the slot: the same job and scheduled instant give the same id on every
         * node and every retry, so workers can make their writes idempotent. */
        t = (time_t)slot;
        gmtime_r(&t, &tm);
        snprintf(buf, len, "%s@%04d%02d%02dT%02d%02d%02dZ", job, tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return;
    }
    int64_t now = md_time_wall_ms();
    t = (time_t)(now / 1000);
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s@%04d%02d%02dT%02d%02d%02d.%03dZ-%" PRIu64, job, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000),
             ++sup->run_seq);
}

struct sup_job *sup_job_find(struct sup *sup, const char *name)
{
    for (struct sup_job *job = sup->jobs; job != NULL; job = job->next)
        if (!job->retired && job->cfg != NULL && strcmp(job->name, name) == 0)
            return job;
    return NULL;
}

bool sup_job_busy(const struct sup_job *job)
{
    switch (job->prog.state) {
    case PROG_STARTING:
    case PROG_RUNNING:
    case PROG_BACKOFF:
    case PROG_STOPPING:
        return true;
    default:
        return false;
    }
}

static struct sup_proc *job_primary(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            return p;
    return NULL;
}

static int env_name_eq(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Whether a variable of meshd's own environment ("NAME=value") passes to its children.  Not:
 * meshd's identity and API token (MESHD_*, but MESHD_WORKER_DIR), and the registry's
 * credential - DATABASE_URL and libpq's PG* variables (PGPASSWORD, PGHOST, PGSERVICE...).
 * A worker's data database is the job's business: a job that wants one of these names it in
 * its env: (or defaults.env), e.g. DATABASE_URL: "${DATABASE_URL}". */
static bool env_inherited(const char *e)
{
    if (strncmp(e, "MESHD_", 6) == 0)
        return strncmp(e, "MESHD_WORKER_DIR=", 17) == 0;
    if (strncmp(e, "DATABASE_URL=", 13) == 0)
        return false;
    if (e[0] == 'P' && e[1] == 'G') {
        const char *c = e + 2;
        while ((*c >= 'A' && *c <= 'Z') || *c == '_')
            c++;
        return !(c > e + 2 && *c == '=');
    }
    return true;
}

/* Builds the child's environment: meshd's own minus what env_inherited keeps back, then the
 * job's env, then the run's identity.  Caller frees every string and the array. */
static char **build_env(struct sup_job *job, int64_t slot, const char *run_id, bool primary)
{
    const struct md_job *j = job->cfg;
    size_t n = 0, k = 0;
    char **env;
    char when[40];
    struct tm tm;
    time_t t = (time_t)(slot ? slot : md_time_wall_ms() / 1000);

    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (char **e = environ; *e != NULL; e++)
        n++;
    env = md_xcalloc(n + j->nenv + 10, sizeof *env);
    for (char **e = environ; *e != NULL; e++) {
        bool skip = !env_inherited(*e);
        for (size_t i = 0; !skip && i < j->nenv; i++)
            skip = env_name_eq(*e, j->env[i].name);
        if (!skip)
            env[k++] = md_xstrdup(*e);
    }
    for (size_t i = 0; i < j->nenv; i++)
        env[k++] = md_xasprintf("%s=%s", j->env[i].name, j->env[i].value);
    env[k++] = md_xasprintf("MESHD_JOB=%s", job->name);
    env[k++] = md_xasprintf("MESHD_NODE=%s", job->sup->cfg->node_name);
    env[k++] = md_xasprintf("MESHD_RUN_ID=%s", run_id);
    env[k++] = md_xasprintf("MESHD_SCHEDULED_AT=%s", when);
    env[k++] = md_xstrdup("MESHD_STATUS_FD=3");
    env[k++] = md_xasprintf("MESHD_STATE_DIR=%s", job->sup->cfg->state_dir);
    if (job->msg_id != 0 && primary) { /* an `on:` job's message (the bus) */
        env[k++] = md_xasprintf("MESHD_MESSAGE_ID=%" PRId64, job->msg_id);
        env[k++] = md_xasprintf("MESHD_MESSAGE_TYPE=%s", j->event ? j->event : "");
        if (job->msg_payload != NULL && strlen(job->msg_payload) <= SUP_MSG_ENV_MAX)
            env[k++] = md_xasprintf("MESHD_MESSAGE_PAYLOAD=%s", job->msg_payload);
    }
    env[k] = NULL;
    return env;
}

static void env_free(char **env)
{
    for (char **e = env; *e != NULL; e++)
        md_free(*e);
    md_free(env);
}

/* ---- a job's birth and config ------------------------------------------------------------- */

static void job_policy(struct sup_job *job)
{
    const struct md_job *j = job->cfg;
    struct prog_policy *p = &job->pol;

    p->service = j->kind == MD_JOB_SERVICE;
    p->restart = j->restart == MD_RESTART_ALWAYS       ? PROG_RESTART_ALWAYS
                 : j->restart == MD_RESTART_ON_FAILURE ? PROG_RESTART_ON_FAILURE
                                                       : PROG_RESTART_NEVER;
    p->max_retries = j->max_retries;
    p->backoff_initial_ms = j->backoff_initial_ms;
    p->backoff_max_ms = j->backoff_max_ms;
    p->backoff_reset_ms = j->backoff_reset_ms;
    p->start_secs_ms = j->start_secs_ms;
    p->ready_line = j->ready_line;
    p->stop_signal = j->stop_signal;
    p->stop_timeout_ms = j->stop_timeout_ms;
}

struct sup_job *sup_job_new(struct sup *sup, const struct md_job *cfg)
{
    struct sup_job *job = md_xcalloc(1, sizeof *job);

    job->sup = sup;
    job->name = md_xstrdup(cfg->name);
    job->cfg = cfg;
    job->heap_idx = SIZE_MAX;
    job->stop_status = RUN_STOPPED;
    /* Unknown whether a previous life left one of its alerts open: the first success says. */
    job->alerts_maybe_open = sup_jobalert_keys(cfg->kind);
    prog_init(&job->prog);
    job_policy(job);
    uv_timer_init(sup->loop, &job->timer);
    job->timer.data = job;
    job->next = sup->jobs;
    sup->jobs = job;
    return job;
}

void sup_job_set_config(struct sup_job *job, const struct md_job *cfg)
{
    job->cfg = cfg;
    job_policy(job);
    sup_job_log_limits(job);
}

/* ---- what the registry hears ------------------------------------------------------------------
 */

static const struct sup_reg_exec *reg_exec(const struct sup_proc *p, struct sup_reg_exec *x)
{
    x->run_id = p->run_id;
    x->exec_id = p->exec_id;
    x->slot = p->slot;
    x->started_ms = p->started_wall_ms;
    x->pid = p->pid;
    x->duration_ms = p->duration_ms;
    x->result = p->result;
    x->summary = p->result_summary;
    x->tail = &p->tail;
    x->usage = &p->usage;
    return x;
}

static void reg_run_start(struct sup_job *job, const struct sup_proc *p)
{
    struct sup_reg_exec x;

    sup_reg_run_start(job->sup, job->name, reg_exec(p, &x), p->primary ? job->prog.tries + 1 : 1);
}

void sup_job_report(struct sup_job *job)
{
    const struct sup_proc *p;
    struct sup_reg_job j = {
        .name = job->name,
        .state = prog_state_name(job->prog.state),
        .next_slot = job->next_slot,
        .restarts = job->restarts,
    };

    for (p = job->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            break;
    j.pid = p != NULL ? p->pid : 0;
    sup_reg_job(job->sup, &j);
}

/* ---- what a proc reports ------------------------------------------------------------------ */

static void on_status(struct sup_proc *p, const struct md_status_event *ev, void *ud)
{
    struct sup_job *job = ud;

    switch (ev->kind) {
    case MD_ST_READY:
        if (p->primary && !p->exited)
            sup_job_event(job, EV_READY, 0, 0);
        break;
    case MD_ST_HEARTBEAT:
        job->last_heartbeat_ms = (uint64_t)md_time_wall_ms();
        break;
    default:
        break;
    }
    sup_job_note_status(job, ev);
    sup_reg_status(job->sup, job->name, p->run_id, ev);
}

static void on_bad_status(struct sup_proc *p, void *ud)
{
    struct sup_job *job = ud;

    (void)p;
    job->bad_status_lines++;
}

static bool on_timed_out(struct sup_proc *p, void *ud)
{
    struct sup_job *job = ud;

    if (!p->primary)
        return false; /* an extra (allow) run has no prog: the proc escalates on its own */
    job->stop_status = RUN_TIMED_OUT;
    sup_job_event(job, EV_STOP, 0, 0);
    return true;
}

static void on_exited(struct sup_proc *p, int exit_code, int term_signal, void *ud)
{
    struct sup_job *job = ud;
    bool ours = p->killing || p->timed_out || (p->primary && job->prog.state == PROG_STOPPING);
    enum sup_run_status st;

    job->sup->proc_ops->finish(p, exit_code, term_signal, ours);
    if (p->primary) {
        job->ending = p;
        sup_job_event(job, EV_EXITED, exit_code, term_signal);
        job->ending = NULL;
        return;
    }
    st = p->timed_out                           ? RUN_TIMED_OUT
         : p->killing                           ? RUN_STOPPED
         : p->adopted                           ? RUN_UNKNOWN
         : (exit_code == 0 && term_signal == 0) ? RUN_SUCCEEDED
                                                : RUN_FAILED;
    p->end_recorded = true;
    p->end_status = st;
    p->end_code = exit_code; /* -1 with no signal: not known */
    p->end_signal = term_signal;
    if (st == RUN_SUCCEEDED)
        job->runs_ok++;
    else if (st != RUN_UNKNOWN)
        job->runs_failed++;
    md_log(MD_LOG_NOTICE, "run done: job=%s run=%s status=%s", job->name, p->run_id,
           sup_run_status_name(st));
}

static void on_closed(struct sup_proc *p, void *ud)
{
    struct sup_job *job = ud;

    if (p->end_recorded) {
        struct sup_reg_exec x;
        struct sup_jobalert_run a = {
            .run_id = p->run_id,
            .status = p->end_status,
            .exit_code = p->end_code,
            .signal = p->end_signal,
            .retrying = p->end_retry,
            .gave_up = p->end_gave_up,
            .tries = p->end_tries,
        };
        sup_reg_run_end(job->sup, job->name, p->run_id, reg_exec(p, &x), p->end_status, p->end_code,
                        p->end_signal, NULL);
        /* Keep the run, with its output tail, in the job's history. */
        sup_job_note_run(job, p, p->run_id, p->end_status, p->end_code, p->end_signal);
        /* After its run_end, so that whoever an alert wakes finds the run recorded. */
        sup_jobalert_run_end(job, &a);
    }
    for (struct sup_proc **pp = &job->procs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
}

static void on_gone(void *ud)
{
    struct sup_job *job = ud;

    if (job->procs == NULL && !job->closing)
        job->sup->job_hooks.idle(job);
}

static const struct sup_proc_cbs job_proc_cbs = {
    .status = on_status,
    .bad_status = on_bad_status,
    .timed_out = on_timed_out,
    .exited = on_exited,
    .closed = on_closed,
    .gone = on_gone,
};

/* ---- spawning ------------------------------------------------------------------------------ */

/* What every run of the job shares: the program, its limits and where it reports. */
static void spec_init(struct sup_job *job, struct sup_proc_spec *spec, const char *run_id,
                      const char *exec_id, int64_t slot)
{
    const struct md_job *j = job->cfg;

    memset(spec, 0, sizeof *spec);
    spec->loop = job->sup->loop;
    spec->cbs = &job_proc_cbs;
    spec->ud = job;
    spec->name = job->name;
    spec->run_id = run_id;
    spec->exec_id = exec_id;
    spec->slot = slot;
    spec->kind = j->kind == MD_JOB_SERVICE ? 'v'
                 : j->kind == MD_JOB_EVENT ? 'e'
                 : slot != 0               ? 's'
                                           : 'm';
    spec->argv = j->argv;
    spec->cwd = j->workdir;
    spec->user = j->user;
    spec->stdin_data = j->config_json ? j->config_json : "{}";
    spec->timeout_ms = j->kind != MD_JOB_SERVICE ? j->timeout_ms : 0;
    spec->stop_signal = j->stop_signal;
    spec->stop_timeout_ms = j->stop_timeout_ms;
    spec->stop_group = j->stop_group;
    spec->log_burst = (uint32_t)j->log_burst;
    spec->log_interval_ms = j->log_interval_ms;
    spec->cg = job->sup->cg;
    spec->runlog = job->sup->runlog;
}

/* Starts one run of the job.  primary: driven by the prog (else an extra "allow" run).
 * Returns 0 or a negative errno (logged); the failed proc closes itself. */
static int job_spawn(struct sup_job *job, int64_t slot, bool primary)
{
    struct sup *sup = job->sup;
    struct sup_proc_spec spec;
    struct sup_proc *p;
    char run_id[SUP_RUN_ID_MAX], exec_id[SUP_EXEC_ID_MAX];
    char **env;
    int r;

    if (primary && slot != 0) {
        snprintf(run_id, sizeof run_id, "%s", job->run_id);
    } else {
        sup_run_id(sup, job->name, slot, run_id, sizeof run_id);
        if (primary) /* a service: every spawn is a run of its own */
            snprintf(job->run_id, sizeof job->run_id, "%s", run_id);
    }
    snprintf(exec_id, sizeof exec_id, "%s-%" PRIu64, sup->life, ++sup->exec_seq);
    env = build_env(job, slot, run_id, primary);
    spec_init(job, &spec, run_id, exec_id, slot);
    spec.envp = env;
    r = sup->proc_ops->spawn(&spec, &p);
    env_free(env);
    p->primary = primary && r == 0; /* a failed primary: the prog hears EV_SPAWN_FAILED */
    p->next = job->procs;
    job->procs = p;
    if (job->fire_due_ms != 0) { /* an on-time slot (scheduler.c): how late is this spawn? */
        sup_note_lag(sup, p->started_wall_ms - job->fire_due_ms);
        job->fire_due_ms = 0;
    }
    if (r == 0)
        reg_run_start(job, p);
    return r;
}

void sup_job_spawn_extra(struct sup_job *job, int64_t slot)
{
    if (job_spawn(job, slot, false) < 0)
        job->runs_failed++;
}

bool sup_job_has_adopted(const struct sup_job *job)
{
    for (const struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->adopted && !p->exited)
            return true;
    return false;
}

int sup_job_adopt(struct sup_job *job, const struct sup_runlog_run *r, struct sup_cg_run *cg,
                  bool stop)
{
    struct sup_proc_spec spec;
    struct sup_proc *p;
    int64_t age_ms;
    int rc;

    spec_init(job, &spec, r->run_id, r->exec_id, r->slot);
    spec.stop_group = true;                            /* every run leads its own group */
    spec.timeout_ms = stop ? 0 : job->cfg->timeout_ms; /* counted from its real start */
    rc = job->sup->proc_ops->adopt(&spec, r, cg, &p);
    if (rc < 0)
        return rc;
    p->next = job->procs;
    job->procs = p;
    age_ms = md_time_wall_ms() - r->started_ms;
    md_log(MD_LOG_NOTICE, "adopted: job=%s run=%s pid=%d exec=%s started=%" PRId64 "ms_ago%s",
           job->name, p->run_id, p->pid, p->exec_id, age_ms < 0 ? 0 : age_ms,
           stop ? " action=stop" : "");
    /* Its run_start again, with its own exec id and start time: the previous life may have
     * died before journalling it (a replay of one that was sent changes nothing). */
    reg_run_start(job, p);
    if (stop)
        job->sup->proc_ops->stop(p);
    job->sup->status_gen++;
    return 0;
}

void sup_job_stop_adopted(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->adopted)
            job->sup->proc_ops->stop(p);
}

void sup_job_kill_all(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        job->sup->proc_ops->kill_hard(p);
}

void sup_job_log_limits(struct sup_job *job)
{
    if (job->cfg == NULL)
        return;
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        job->sup->proc_ops->set_log_limit(p, (uint32_t)job->cfg->log_burst,
                                          job->cfg->log_interval_ms);
}

/* ---- the state machine driver ----------------------------------------------------------- */

static void job_timer_cb(uv_timer_t *t)
{
    struct sup_job *job = MD_CONTAINER_OF(t, struct sup_job, timer);

    sup_job_event(job, EV_TIMER_FIRED, 0, 0);
}

static void record_run(struct sup_job *job, const struct prog_actions *act)
{
    enum sup_run_status st;

    switch (act->outcome) {
    case PROG_OUTCOME_SUCCEEDED:
        st = RUN_SUCCEEDED;
        break;
    case PROG_OUTCOME_KILLED:
        st = job->stop_status;
        break;
    default:
        st = RUN_FAILED;
        break;
    }
    if (st == RUN_SUCCEEDED)
        job->runs_ok++;
    else
        job->runs_failed++;
    job->msg_outcome = st;
    if (job->ending != NULL) {
        /* Shipped when the proc is freed, with its whole output tail. */
        job->ending->end_recorded = true;
        job->ending->end_status = st;
        job->ending->end_code = job->prog.last_exit_code;
        job->ending->end_signal = job->prog.last_signal;
        job->ending->end_retry = act->to == PROG_BACKOFF;
        job->ending->end_gave_up = (act->flags & ACT_GAVE_UP) ? act->reason : NULL;
        job->ending->end_tries = job->prog.tries;
    } else {
        /* Nothing was launched (unknown program, no such user, out of pipes). */
        struct sup_jobalert_run a = {
            .run_id = job->run_id,
            .status = st,
            .exit_code = job->prog.last_exit_code,
            .spawn_failed = true,
            .retrying = act->to == PROG_BACKOFF,
            .gave_up = (act->flags & ACT_GAVE_UP) ? act->reason : NULL,
            .tries = job->prog.tries,
        };
        sup_reg_run_end(job->sup, job->name, job->run_id, NULL, st, job->prog.last_exit_code,
                        job->prog.last_signal, "spawn failed");
        sup_job_note_run(job, NULL, job->run_id, st, job->prog.last_exit_code,
                         job->prog.last_signal);
        sup_jobalert_run_end(job, &a);
    }
    md_log(st == RUN_SUCCEEDED ? MD_LOG_INFO : MD_LOG_NOTICE,
           "run done: job=%s run=%s status=%s code=%d signal=%d", job->name, job->run_id,
           sup_run_status_name(st), job->prog.last_exit_code, job->prog.last_signal);
}

void sup_job_event(struct sup_job *job, enum prog_event ev, int exit_code, int term_signal)
{
    struct sup *sup = job->sup;
    struct prog_input in = {
        .ev = ev,
        .now_ms = uv_now(sup->loop),
        .exit_code = exit_code,
        .term_signal = term_signal,
        .rand = md_rand32(),
    };
    struct prog_actions act;

    prog_step(&job->prog, &job->pol, &in, &act);
    sup->status_gen++;
    if (act.flags & ACT_IMPOSSIBLE) {
        md_log(MD_LOG_ERROR, "impossible event: job=%s state=%s event=%s: %s", job->name,
               prog_state_name(job->prog.state), prog_event_name(ev), act.reason);
        return;
    }
    if (act.flags == 0 && act.from == act.to)
        return;
    if (act.flags & ACT_RUN_DONE)
        record_run(job, &act);
    if (act.from != act.to) {
        sup_job_report(job);
        if (act.to == PROG_RUNNING && job->cfg != NULL && job->cfg->kind == MD_JOB_SERVICE)
            sup_jobalert_running(job); /* a service is healthy again: its fatal alert is over */
        if (act.to == PROG_BACKOFF)
            md_log(MD_LOG_NOTICE, "backoff: job=%s delay_ms=%" PRIu64 " tries=%u reason=%s",
                   job->name, act.timer_ms, job->prog.tries, act.reason);
        else
            md_log(MD_LOG_INFO, "state: job=%s from=%s to=%s reason=%s", job->name,
                   prog_state_name(act.from), prog_state_name(act.to), act.reason);
    }
    if (act.to == PROG_STARTING && job->last_error != NULL) {
        md_free(job->last_error);
        job->last_error = NULL;
    }
    if (act.flags & ACT_GAVE_UP) {
        md_log(MD_LOG_ERROR, "gave up: job=%s state=FATAL tries=%u reason=%s code=%d signal=%d",
               job->name, job->prog.tries, act.reason, job->prog.last_exit_code,
               job->prog.last_signal);
        md_free(job->last_error);
        job->last_error = md_xasprintf("gave up after %u tries: %s", job->prog.tries, act.reason);
    }
    if (act.flags & ACT_CANCEL_TIMER)
        uv_timer_stop(&job->timer);
    if (act.flags & ACT_ARM_TIMER)
        uv_timer_start(&job->timer, job_timer_cb, act.timer_ms, 0);
    if (act.flags & ACT_KILL) {
        struct sup_proc *p = job_primary(job);
        if (p != NULL)
            sup->proc_ops->kill(p, act.signal);
    }
    if (act.from == PROG_BACKOFF && act.to == PROG_STARTING)
        job->restarts++;
    if (act.flags & ACT_SPAWN) {
        job->stop_status = RUN_STOPPED;
        int r = job_spawn(job, job->cur_slot, true);
        if (r < 0) {
            sup_job_event(job, EV_SPAWN_FAILED, r, 0);
            return;
        }
    }
    /* A job waiting to be restarted (reload changed it) or to start a newer slot (replace)
     * goes on once its old process is gone. */
    if (job->msg_id != 0 && (job->prog.state == PROG_STOPPED || job->prog.state == PROG_EXITED ||
                             job->prog.state == PROG_FATAL)) {
        sup->job_hooks.msg_finished(job); /* the bus: its message is done, the next one */
        if (job->prog.state != PROG_STOPPED && job->prog.state != PROG_EXITED &&
            job->prog.state != PROG_FATAL)
            return; /* the next message started it again */
    }
    if (job->prog.state == PROG_STOPPED || job->prog.state == PROG_EXITED ||
        job->prog.state == PROG_FATAL) {
        if (job->retired || sup->stopping || job->cfg == NULL)
            return;
        if (job->restart_pending) {
            job->restart_pending = false;
            md_log(MD_LOG_NOTICE, "restarting: job=%s reason=config changed", job->name);
            if (job->cfg->kind == MD_JOB_SERVICE && job->cfg->enabled && !job->paused)
                sup->job_hooks.service_start(job);
        } else if (job->pending_now) {
            job->pending_now = false; /* restart or run-now (replace) by the operator */
            job->cur_slot = 0;
            sup_job_event(job, EV_START, 0, 0);
        } else if (job->pending_slot != 0) {
            int64_t slot = job->pending_slot;
            job->pending_slot = 0;
            job->cur_slot = slot;
            sup_run_id(sup, job->name, slot, job->run_id, sizeof job->run_id);
            sup_job_event(job, EV_START, 0, 0);
        }
    }
}

static void job_close_cb(uv_handle_t *h)
{
    struct sup_job *job = h->data;

    sup_job_info_free(job);
    md_free(job->msg_payload);
    md_free(job->name);
    md_free(job);
}

void sup_job_close(struct sup_job *job)
{
    /* Called once the job has no process left (job_hooks.idle): a proc never outlives its job. */
    assert(job->procs == NULL);
    job->closing = true;
    job->timer.data = job;
    uv_close((uv_handle_t *)&job->timer, job_close_cb);
}

/* ---- the job's memory (history.h) ------------------------------------------------------- */

void sup_job_note_run(struct sup_job *job, struct sup_proc *p, const char *run_id,
                      enum sup_run_status status, int exit_code, int signal)
{
    struct sup_run_rec *r = sup_history_add(&job->history);
    int64_t now = md_time_wall_ms();

    job->sup->status_gen++;
    snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
    r->status = status;
    r->exit_code = exit_code;
    r->signal = signal;
    r->finished_ms = now;
    if (p != NULL) {
        r->slot = p->slot;
        r->started_ms = p->started_wall_ms;
        r->duration_ms = p->duration_ms;
        r->usage = p->usage;
        sup_tail_move(&r->lines, &p->tail);
        if (p->started_wall_ms != 0)
            sup_history_duration(&job->history, (double)p->duration_ms / 1000.0);
    } else {
        r->slot = job->cur_slot;
    }
    if (status == RUN_SUCCEEDED)
        job->last_success_ms = now;
    else if (status == RUN_TIMED_OUT)
        job->runs_timed_out++;
    else if (status == RUN_STOPPED)
        job->runs_stopped++;
}

void sup_job_note_status(struct sup_job *job, const struct md_status_event *ev)
{
    job->sup->status_gen++;
    if (ev->kind == MD_ST_ALERT)
        sup_history_alert(&job->history, ev->u.alert.key, ev->u.alert.message,
                          (int)ev->u.alert.severity, md_time_wall_ms());
    else if (ev->kind == MD_ST_RESOLVE)
        sup_history_resolve(&job->history, ev->u.resolve.key);
}

void sup_job_info_free(struct sup_job *job)
{
    sup_history_free(&job->history);
    md_free(job->last_error);
    job->last_error = NULL;
}

void sup_note_lag(struct sup *sup, int64_t lag_ms)
{
    double secs = lag_ms > 0 ? (double)lag_ms / 1000.0 : 0.0;

    sup->lag_bucket[sup_bucket_of(secs, sup_lag_bounds, SUP_LAG_BUCKETS - 1)]++;
    sup->lag_sum += secs;
    sup->lag_count++;
}
