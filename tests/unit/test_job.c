/* test_job.c - one job's run lifecycle (job.c) through its seams: process operations faked
 * (sup->proc_ops: no process at all, the test plays each exit), upward news recorded
 * (sup->job_hooks).  Replace, restart while stopping, message completion, extra runs, the
 * history a run leaves, and the idle hook once the last proc is gone.  And meshd's own alerts
 * about the job (jobalert.c) as its memory keeps them: a failed run, FATAL, missed slots. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "job.h"
#include "jobalert.h"
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_log.h"
#include "proc.h"
#include "sup.h"
#include "t.h"

#define S1 1764054000LL /* 2025-11-25T07:00:00Z */
#define S2 (S1 + 60)

/* ---- fake process operations ----------------------------------------------------------------- */

static struct {
    int spawned, kills, stops, kill_hards, finished;
    int last_sig;
    bool last_finish_stopped;
    int64_t last_slot;
    char last_run_id[SUP_RUN_ID_MAX];
    bool last_had_message; /* MESHD_MESSAGE_ID in the run's environment */
    int next_pid;
    /* job_hooks */
    int idle, service_start, msg_finished;
    enum sup_run_status msg_outcome;
} F;

static int fake_spawn(const struct sup_proc_spec *spec, struct sup_proc **out)
{
    struct sup_proc *p = md_xcalloc(1, sizeof *p);

    p->cbs = spec->cbs;
    p->ud = spec->ud;
    p->name = spec->name;
    p->slot = spec->slot;
    p->pid = ++F.next_pid + 1000;
    p->pidfd = -1;
    p->launched = true;
    p->started_wall_ms = 1;
    p->stop_signal = spec->stop_signal;
    snprintf(p->run_id, sizeof p->run_id, "%s", spec->run_id);
    snprintf(p->exec_id, sizeof p->exec_id, "%s", spec->exec_id);
    F.spawned++;
    F.last_slot = spec->slot;
    snprintf(F.last_run_id, sizeof F.last_run_id, "%s", spec->run_id);
    F.last_had_message = false;
    for (char *const *e = spec->envp; *e != NULL; e++)
        F.last_had_message |= strncmp(*e, "MESHD_MESSAGE_ID=", 17) == 0;
    *out = p;
    return 0;
}

static int fake_adopt(const struct sup_proc_spec *spec, const struct sup_runlog_run *r,
                      struct sup_cg_run *cg, struct sup_proc **out)
{
    (void)spec, (void)r, (void)cg, (void)out;
    return -1;
}

static void fake_kill(struct sup_proc *p, int sig)
{
    (void)p;
    F.kills++;
    F.last_sig = sig;
}

static void fake_stop(struct sup_proc *p)
{
    p->killing = true;
    F.stops++;
}

static void fake_kill_hard(struct sup_proc *p)
{
    p->killing = true;
    F.kill_hards++;
}

static void fake_finish(struct sup_proc *p, int code, int sig, bool stopped)
{
    (void)p, (void)code, (void)sig;
    F.finished++;
    F.last_finish_stopped = stopped;
}

static void fake_set_log_limit(struct sup_proc *p, uint32_t burst, uint64_t interval_ms)
{
    (void)p, (void)burst, (void)interval_ms;
}

static const struct sup_proc_ops fake_ops = {
    .spawn = fake_spawn,
    .adopt = fake_adopt,
    .kill = fake_kill,
    .stop = fake_stop,
    .kill_hard = fake_kill_hard,
    .finish = fake_finish,
    .set_log_limit = fake_set_log_limit,
};

/* The process ends (exit code or signal), its pipes drain, its handles close: what proc.c
 * reports, in its order. */
static void proc_ends(struct sup_proc *p, int code, int sig, const char *last_line)
{
    const struct sup_proc_cbs *cbs = p->cbs;
    void *ud = p->ud;

    if (last_line != NULL)
        sup_tail_push(&p->tail, last_line, strlen(last_line), SUP_OUTPUT_LINE_MAX);
    p->exited = true;
    p->duration_ms = 5;
    cbs->exited(p, code, sig, ud);
    cbs->closed(p, ud);
    sup_tail_clear(&p->tail);
    md_free(p);
    cbs->gone(ud);
}

/* ---- fake hooks --------------------------------------------------------------------------------
 */

static void hook_idle(struct sup_job *job)
{
    (void)job;
    F.idle++;
}

static void hook_service_start(struct sup_job *job)
{
    F.service_start++;
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
}

static void hook_msg_finished(struct sup_job *job)
{
    F.msg_finished++;
    F.msg_outcome = job->msg_outcome;
    job->msg_id = 0;
    md_free(job->msg_payload);
    job->msg_payload = NULL;
}

/* ---- a supervisor with nothing but jobs -------------------------------------------------------
 */

static struct sup g_sup;
static uv_loop_t g_loop;

static struct sup_job *setup(const char *yaml, const char *name)
{
    struct md_config *cfg = NULL;
    struct md_diag d;

    md_log_init("test_job", MD_LOG_WARN); /* the runs' notices are expected */
    memset(&F, 0, sizeof F);
    memset(&g_sup, 0, sizeof g_sup);
    md_diag_init(&d);
    if (md_config_parse(yaml, strlen(yaml), "job.yaml", &cfg, &d) != 0) {
        md_diag_print(&d, "job.yaml", stderr);
        T_FAIL("config rejected");
    }
    md_diag_cleanup(&d);
    T_ASSERT_EQ(0, uv_loop_init(&g_loop));
    g_sup.loop = &g_loop;
    g_sup.cfg = cfg;
    g_sup.proc_ops = &fake_ops;
    g_sup.job_hooks.idle = hook_idle;
    g_sup.job_hooks.service_start = hook_service_start;
    g_sup.job_hooks.msg_finished = hook_msg_finished;
    snprintf(g_sup.life, sizeof g_sup.life, "0123456789ab");
    for (size_t i = 0; i < cfg->njobs; i++)
        if (strcmp(cfg->jobs[i].name, name) == 0)
            return sup_job_new(&g_sup, &cfg->jobs[i]);
    T_FAIL("no job %s", name);
    return NULL;
}

static struct sup_proc *primary(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            return p;
    return NULL;
}

/* Closes the job (it must have no procs) and the loop: nothing may be left. */
static void teardown(struct sup_job *job)
{
    T_ASSERT_TRUE(job->procs == NULL);
    g_sup.jobs = NULL;
    sup_job_close(job);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    T_ASSERT_EQ(0, uv_loop_close(&g_loop));
    md_config_free(g_sup.cfg);
}

static void start_slot(struct sup_job *job, int64_t slot)
{
    job->cur_slot = slot;
    sup_run_id(&g_sup, job->name, slot, job->run_id, sizeof job->run_id);
    sup_job_event(job, EV_START, 0, 0);
}

/* ---- tests ------------------------------------------------------------------------------------
 */

TEST(a_run_that_succeeds_is_recorded_once)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  c:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n",
                                "c");
    struct sup_proc *p;

    start_slot(job, S1);
    T_ASSERT_EQ(F.spawned, 1);
    T_ASSERT_EQ(F.last_slot, S1);
    T_ASSERT_STREQ(F.last_run_id, "c@20251125T070000Z");
    T_ASSERT_TRUE((p = primary(job)) != NULL);
    proc_ends(p, 0, 0, "all done");
    T_ASSERT_EQ(job->runs_ok, 1);
    T_ASSERT_EQ(job->runs_failed, 0);
    T_ASSERT_EQ(F.finished, 1);
    T_ASSERT_FALSE(F.last_finish_stopped);
    T_ASSERT_EQ(job->history.n, 1);
    T_ASSERT_EQ(sup_history_last(&job->history)->status, RUN_SUCCEEDED);
    T_ASSERT_STREQ(sup_history_last(&job->history)->run_id, "c@20251125T070000Z");
    T_ASSERT_EQ(sup_history_last(&job->history)->lines.n, 1);
    T_ASSERT_STREQ(sup_history_last(&job->history)->lines.line[0], "all done");
    T_ASSERT_EQ(F.idle, 1);    /* no process left */
    T_ASSERT_EQ(F.spawned, 1); /* a cron job's run is not restarted */
    teardown(job);
}

TEST(replace_stops_the_run_then_starts_the_newer_slot)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  r:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n    concurrency: replace\n"
                                "    stop_signal: INT\n",
                                "r");
    struct sup_proc *p1, *p2;

    start_slot(job, S1);
    p1 = primary(job);
    T_ASSERT_TRUE(p1 != NULL);
    /* The scheduler's replace (scheduler.c run_slot_now): the newer slot waits for the stop. */
    job->pending_slot = S2;
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    T_ASSERT_EQ(F.kills, 1);
    T_ASSERT_EQ(F.last_sig, SIGINT);
    T_ASSERT_EQ(job->prog.state, PROG_STOPPING);
    T_ASSERT_EQ(F.spawned, 1); /* not before the old run is gone */
    proc_ends(p1, 0, SIGINT, NULL);
    T_ASSERT_TRUE(F.last_finish_stopped); /* "expected=yes": meshd stopped it */
    T_ASSERT_EQ(F.spawned, 2);
    T_ASSERT_EQ(F.last_slot, S2);
    T_ASSERT_STREQ(F.last_run_id, "r@20251125T070100Z");
    T_ASSERT_EQ(job->pending_slot, 0);
    T_ASSERT_EQ(job->runs_stopped, 1);
    T_ASSERT_EQ(sup_history_last(&job->history)->status, RUN_STOPPED);
    T_ASSERT_EQ(F.idle, 0); /* the new run is alive */
    p2 = primary(job);
    T_ASSERT_TRUE(p2 != NULL && p2 != p1);
    proc_ends(p2, 1, 0, NULL);
    T_ASSERT_EQ(job->runs_failed, 2); /* stopped counts among the failed, plus this one */
    T_ASSERT_EQ(sup_history_last(&job->history)->status, RUN_FAILED);
    T_ASSERT_EQ(F.idle, 1);
    teardown(job);
}

TEST(restart_while_stopping_starts_once_the_old_run_is_gone)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  s:\n    command: [x]\n"
                                "    schedule: always\n",
                                "s");
    struct sup_proc *p1;

    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
    p1 = primary(job);
    T_ASSERT_TRUE(p1 != NULL);
    T_ASSERT_EQ(F.last_slot, 0); /* a service run: an unscheduled id */
    /* An operator's stop, then a restart while it is stopping (control.c). */
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    T_ASSERT_EQ(job->prog.state, PROG_STOPPING);
    job->pending_now = true;
    sup_job_event(job, EV_STOP, 0, 0); /* a second stop changes nothing */
    T_ASSERT_EQ(F.kills, 1);
    T_ASSERT_EQ(F.spawned, 1);
    proc_ends(p1, 0, SIGTERM, NULL);
    T_ASSERT_EQ(F.spawned, 2);
    T_ASSERT_FALSE(job->pending_now);
    T_ASSERT_EQ(job->restarts, 0); /* an operator's restart is not a crash restart */
    T_ASSERT_TRUE(primary(job) != NULL);
    /* meshd stops: the service's run is stopped, and nothing starts after it. */
    g_sup.stopping = true;
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    proc_ends(primary(job), 0, SIGTERM, NULL);
    T_ASSERT_EQ(F.spawned, 2);
    T_ASSERT_EQ(job->runs_stopped, 2);
    T_ASSERT_EQ(F.idle, 1);
    teardown(job);
}

TEST(reload_restart_of_a_service_goes_through_the_hook)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  s:\n    command: [x]\n"
                                "    schedule: always\n",
                                "s");

    sup_job_event(job, EV_START, 0, 0);
    job->restart_pending = true; /* sup.c's reload: the config changed */
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    proc_ends(primary(job), 0, SIGTERM, NULL);
    T_ASSERT_EQ(F.service_start, 1); /* a singleton may need its lease first */
    T_ASSERT_EQ(F.spawned, 2);
    T_ASSERT_FALSE(job->restart_pending);
    g_sup.stopping = true;
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    proc_ends(primary(job), 0, SIGTERM, NULL);
    teardown(job);
}

TEST(a_message_run_completes_its_message)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  m:\n    command: [x]\n"
                                "    on: refresh.requested\n",
                                "m");

    /* bus.c's dispatch: the message, then the start. */
    job->msg_id = 42;
    job->msg_payload = md_xstrdup("{\"table\":\"parcels\"}");
    job->cur_slot = 0;
    sup_job_event(job, EV_START, 0, 0);
    T_ASSERT_EQ(F.spawned, 1);
    T_ASSERT_TRUE(F.last_had_message);
    proc_ends(primary(job), 0, 0, NULL);
    T_ASSERT_EQ(F.msg_finished, 1);
    T_ASSERT_EQ(F.msg_outcome, RUN_SUCCEEDED);
    T_ASSERT_EQ(job->msg_id, 0);

    /* A failing run of the next message: its outcome is failed, the message is done once. */
    job->msg_id = 43;
    job->msg_payload = md_xstrdup("{}");
    sup_job_event(job, EV_START, 0, 0);
    proc_ends(primary(job), 3, 0, NULL);
    T_ASSERT_EQ(F.msg_finished, 2);
    T_ASSERT_EQ(F.msg_outcome, RUN_FAILED);

    /* Stopped by meshd: the message goes back (pending), it is not failed. */
    job->msg_id = 44;
    job->msg_payload = md_xstrdup("{}");
    sup_job_event(job, EV_START, 0, 0);
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    proc_ends(primary(job), 0, SIGTERM, NULL);
    T_ASSERT_EQ(F.msg_finished, 3);
    T_ASSERT_EQ(F.msg_outcome, RUN_STOPPED);
    T_ASSERT_EQ(F.spawned, 3);
    teardown(job);
}

TEST(a_run_timeout_stops_the_run_and_records_it_timed_out)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  t:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n    timeout: 1s\n",
                                "t");
    struct sup_proc *p;

    start_slot(job, S1);
    p = primary(job);
    p->timed_out = true;                        /* proc.c sets it, then asks its owner */
    T_ASSERT_TRUE(p->cbs->timed_out(p, p->ud)); /* the prog stops it, not the proc */
    T_ASSERT_EQ(F.kills, 1);
    proc_ends(p, 0, SIGTERM, NULL);
    T_ASSERT_EQ(job->runs_timed_out, 1);
    T_ASSERT_EQ(sup_history_last(&job->history)->status, RUN_TIMED_OUT);
    teardown(job);
}

TEST(extra_runs_of_allow_are_counted_on_their_own)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  a:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n    concurrency: allow\n",
                                "a");
    struct sup_proc *extra;

    start_slot(job, S1);
    sup_job_spawn_extra(job, S2);
    T_ASSERT_EQ(F.spawned, 2);
    extra = job->procs; /* the newest first */
    T_ASSERT_FALSE(extra->primary);
    T_ASSERT_TRUE(extra->cbs->timed_out != NULL && !extra->cbs->timed_out(extra, extra->ud));
    extra->timed_out = false;
    proc_ends(extra, 0, 0, NULL);
    T_ASSERT_EQ(job->runs_ok, 1);
    T_ASSERT_EQ(F.idle, 0); /* the primary still runs */
    proc_ends(primary(job), 2, 0, NULL);
    T_ASSERT_EQ(job->runs_failed, 1);
    T_ASSERT_EQ(job->history.n, 2);
    T_ASSERT_EQ(F.idle, 1);
    /* meshd's second signal: every proc is killed hard (none left here: nothing to do). */
    sup_job_kill_all(job);
    T_ASSERT_EQ(F.kill_hards, 0);
    teardown(job);
}

/* ---- meshd's own alerts (jobalert.c), as the job's memory keeps them ---------------------- */

static const struct sup_alert *alert_of(struct sup_job *job, const char *key)
{
    for (const struct sup_alert *a = job->history.alerts; a != NULL; a = a->next)
        if (strcmp(a->key, key) == 0)
            return a;
    return NULL;
}

TEST(a_failed_run_raises_its_alert_and_a_success_resolves_it)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  c:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n",
                                "c");
    const struct sup_alert *a;

    /* Born not knowing: a previous life may have left any of its keys open. */
    T_ASSERT_EQ(SUP_JOBALERT_FAILED | SUP_JOBALERT_FATAL | SUP_JOBALERT_MISSED,
                job->alerts_maybe_open);
    start_slot(job, S1);
    proc_ends(primary(job), 3, 0, NULL);
    T_ASSERT_TRUE((a = alert_of(job, "job.c.failed")) != NULL);
    T_ASSERT_EQ(MD_SEV_WARNING, a->severity); /* failure_alert's default */
    T_ASSERT_STREQ("run c@20251125T070000Z failed: exit code 3", a->message);
    T_ASSERT_EQ(1, job->history.nalerts);
    start_slot(job, S2);
    proc_ends(primary(job), 2, 0, NULL); /* again: the same alert, refreshed */
    T_ASSERT_EQ(1, job->history.nalerts);
    T_ASSERT_STREQ("run c@20251125T070100Z failed: exit code 2",
                   alert_of(job, "job.c.failed")->message);
    start_slot(job, S2 + 60);
    proc_ends(primary(job), 0, 0, NULL);
    T_ASSERT_EQ(0, job->history.nalerts);
    T_ASSERT_EQ(0, job->alerts_maybe_open); /* every resolve sent */
    teardown(job);
}

TEST(failure_alert_sets_the_severity_or_turns_the_alerts_off)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  c:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n    failure_alert: critical\n"
                                "    timeout: 1500ms\n",
                                "c");
    struct sup_proc *p;

    start_slot(job, S1);
    proc_ends(primary(job), -1, SIGKILL, NULL);
    T_ASSERT_EQ(MD_SEV_CRITICAL, alert_of(job, "job.c.failed")->severity);
    T_ASSERT_CONTAINS(alert_of(job, "job.c.failed")->message, "failed: killed by signal 9 (");
    start_slot(job, S2); /* a timed-out run is a failure too */
    p = primary(job);
    p->timed_out = true;
    T_ASSERT_TRUE(p->cbs->timed_out(p, p->ud));
    proc_ends(p, -1, SIGTERM, NULL);
    T_ASSERT_STREQ("run c@20251125T070100Z timed out (timeout 1500ms)",
                   alert_of(job, "job.c.failed")->message);
    teardown(job);

    job = setup("node: {name: t}\ndefaults: {failure_alert: none}\njobs:\n  c:\n"
                "    command: [x]\n    schedule: '* * * * *'\n    restart: on-failure\n"
                "    max_retries: 0\n",
                "c");
    start_slot(job, S1);
    proc_ends(primary(job), 3, 0, NULL); /* failed, and FATAL: neither alert */
    T_ASSERT_EQ(PROG_FATAL, job->prog.state);
    sup_jobalert_missed(job, 2, S1, S2, "meshd was down");
    T_ASSERT_EQ(0, job->history.nalerts);
    teardown(job);
}

TEST(a_stopped_run_raises_nothing)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  c:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n",
                                "c");

    start_slot(job, S1);
    job->stop_status = RUN_STOPPED;
    sup_job_event(job, EV_STOP, 0, 0);
    proc_ends(primary(job), -1, SIGTERM, NULL);
    T_ASSERT_EQ(RUN_STOPPED, sup_history_last(&job->history)->status);
    T_ASSERT_EQ(0, job->history.nalerts);
    teardown(job);
}

TEST(retries_raise_once_the_run_is_over_then_fatal)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  r:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n    restart: on-failure\n"
                                "    max_retries: 2\n    backoff: {initial: 0}\n",
                                "r");
    const struct sup_alert *a;

    start_slot(job, S1);
    for (int i = 0; i < 2; i++) {
        proc_ends(primary(job), 3, 0, NULL);
        T_ASSERT_EQ(PROG_BACKOFF, job->prog.state);
        T_ASSERT_EQ(0, job->history.nalerts); /* another attempt follows: not over yet */
        sup_job_event(job, EV_TIMER_FIRED, 0, 0);
    }
    proc_ends(primary(job), 4, 0, NULL);
    T_ASSERT_EQ(PROG_FATAL, job->prog.state);
    T_ASSERT_EQ(2, job->history.nalerts);
    T_ASSERT_STREQ("run r@20251125T070000Z failed: exit code 4",
                   alert_of(job, "job.r.failed")->message);
    T_ASSERT_TRUE((a = alert_of(job, "job.r.fatal")) != NULL);
    T_ASSERT_EQ(MD_SEV_CRITICAL, a->severity);
    T_ASSERT_STREQ("gave up after 3 failures in a row (retries exhausted); last run "
                   "r@20251125T070000Z failed: exit code 4",
                   a->message);
    /* Started again (the next slot), it runs and succeeds: both are over. */
    start_slot(job, S2);
    T_ASSERT_EQ(2, job->history.nalerts); /* starting is not succeeding */
    proc_ends(primary(job), 0, 0, NULL);
    T_ASSERT_EQ(0, job->history.nalerts);
    teardown(job);
}

TEST(a_service_gives_up_and_is_fine_again_once_running)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  s:\n    command: [x]\n"
                                "    schedule: always\n",
                                "s");

    T_ASSERT_EQ(SUP_JOBALERT_FATAL, job->alerts_maybe_open);
    sup_job_event(job, EV_START, 0, 0);
    proc_ends(primary(job), 100, 0, NULL);
    T_ASSERT_EQ(PROG_FATAL, job->prog.state);
    T_ASSERT_EQ(1, job->history.nalerts); /* no failed alert for a service */
    T_ASSERT_CONTAINS(alert_of(job, "job.s.fatal")->message,
                      "gave up (permanent failure (exit 100)); last run s@");
    T_ASSERT_CONTAINS(alert_of(job, "job.s.fatal")->message, " failed: exit code 100");
    sup_job_event(job, EV_START, 0, 0); /* a reload, the operator */
    T_ASSERT_EQ(1, job->history.nalerts);
    sup_job_event(job, EV_TIMER_FIRED, 0, 0); /* start_secs: RUNNING */
    T_ASSERT_EQ(PROG_RUNNING, job->prog.state);
    T_ASSERT_EQ(0, job->history.nalerts);
    sup_job_event(job, EV_STOP, 0, 0);
    proc_ends(primary(job), -1, SIGTERM, NULL);
    teardown(job);
}

TEST(missed_slots_raise_one_alert_resolved_by_a_success)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  c:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n",
                                "c");

    sup_jobalert_missed(job, 1, S1, S1, "meshd was down");
    T_ASSERT_STREQ("slot 2025-11-25T07:00:00+00:00 missed: meshd was down",
                   alert_of(job, "job.c.missed")->message);
    sup_jobalert_missed(job, 3, S1, S2 + 60, "meshd was down");
    T_ASSERT_EQ(1, job->history.nalerts);
    T_ASSERT_EQ(MD_SEV_WARNING, alert_of(job, "job.c.missed")->severity);
    T_ASSERT_STREQ("3 slots missed, 2025-11-25T07:00:00+00:00 to 2025-11-25T07:02:00+00:00: "
                   "meshd was down",
                   alert_of(job, "job.c.missed")->message);
    start_slot(job, S2 + 120);
    proc_ends(primary(job), 0, 0, NULL);
    T_ASSERT_EQ(0, job->history.nalerts);
    /* In a cluster another node may have run them: no alert. */
    g_sup.cfg->cluster = true;
    sup_jobalert_missed(job, 3, S1, S2 + 60, "meshd was down");
    T_ASSERT_EQ(0, job->history.nalerts);
    teardown(job);
}

/* A resolve is sent only for a key that may be open; in cluster mode (another node may have
 * raised it) every key of the job again SUP_JOBALERT_RECHECK_MS after the last resolves.  The
 * registry is off here: alerts_resolved_ms moves exactly when resolves are sent. */
TEST(resolves_are_sent_again_only_in_cluster_mode_after_a_while)
{
    struct sup_job *job = setup("node: {name: t}\njobs:\n  c:\n    command: [x]\n"
                                "    schedule: '* * * * *'\n",
                                "c");
    uint64_t now = uv_now(&g_loop), long_ago = now - SUP_JOBALERT_RECHECK_MS - 1;

    T_ASSERT_TRUE(now > SUP_JOBALERT_RECHECK_MS + 1);
    start_slot(job, S1);
    proc_ends(primary(job), 0, 0, NULL); /* the first success: every key, once */
    T_ASSERT_EQ(0, job->alerts_maybe_open);
    T_ASSERT_EQ(now, job->alerts_resolved_ms);
    job->alerts_resolved_ms = long_ago;
    start_slot(job, S2);
    proc_ends(primary(job), 0, 0, NULL); /* alone, nothing was raised since: none */
    T_ASSERT_EQ(long_ago, job->alerts_resolved_ms);
    g_sup.cfg->cluster = true;
    start_slot(job, S2 + 60);
    proc_ends(primary(job), 0, 0, NULL); /* another node may have raised them: all again */
    T_ASSERT_EQ(now, job->alerts_resolved_ms);
    T_ASSERT_EQ(0, job->alerts_maybe_open);
    start_slot(job, S2 + 120);
    proc_ends(primary(job), 0, 0, NULL); /* but not at every success */
    T_ASSERT_EQ(now, job->alerts_resolved_ms);
    teardown(job);
}

T_MAIN()
