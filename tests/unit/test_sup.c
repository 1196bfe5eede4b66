/* test_sup.c - the supervisor on a real libuv loop with real processes (tests/fakes/fake_worker),
 * in-process, so the sanitizers see every handle and allocation of sup.c, scheduler.c, job.c and
 * proc.c.  Every test ends by stopping the supervisor and asserting uv_loop_close() == 0: no leaked
 * handle. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_log.h"
#include "meshd/md_time.h"
#include "http.h"
#include "scheduler.h"
#include "sup.h"
#include "looptest.h"
#include "t.h"

static char tmpdir[256];
static const char *fake;

static void setup(void)
{
    fake = getenv("MESHD_FAKE_WORKER");
    if (fake == NULL || access(fake, X_OK) != 0)
        T_SKIP("MESHD_FAKE_WORKER not set");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_sup.XXXXXX");
    T_ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
    md_log_init("test_sup", getenv("TEST_VERBOSE") ? MD_LOG_DEBUG : MD_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN); /* as meshd's main() does: a child may exit before its stdin */
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    T_ASSERT_EQ(0, system(cmd));
}

/* Writes the config text (with @F@ replaced by the fake worker and @D@ by the temp dir). */
static char *write_config(const char *name, const char *text)
{
    char *path = md_xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");

    T_ASSERT_TRUE(f != NULL);
    for (const char *s = text; *s != '\0'; s++) {
        if (strncmp(s, "@F@", 3) == 0) {
            fputs(fake, f);
            s += 2;
        } else if (strncmp(s, "@D@", 3) == 0) {
            fputs(tmpdir, f);
            s += 2;
        } else {
            fputc(*s, f);
        }
    }
    T_ASSERT_EQ(0, fclose(f));
    return path;
}

/* As main.c: the HTTP API's before_batch hook starts due cron work before a request. */
static void http_before_batch(void *ud)
{
    sup_clock_check(ud);
}

static int http_start(struct sup *sup)
{
    const struct sup_http_hooks http_hooks = {.before_batch = http_before_batch, .ud = sup};

    return sup_http_start(sup, &http_hooks);
}

static void start(struct sup *sup, uv_loop_t *loop, const char *path)
{
    struct md_config *cfg = NULL;
    struct md_diag d;

    md_diag_init(&d);
    int r = md_config_load(path, &cfg, &d);
    if (r < 0)
        md_diag_print(&d, path, stderr);
    md_diag_cleanup(&d);
    T_ASSERT_EQ(0, r);
    T_ASSERT_EQ(0, uv_loop_init(loop));
    static const struct sup_hooks hooks = {.started = http_start,
                                           .stopped = sup_http_close}; /* as main.c */

    T_ASSERT_EQ(0, sup_start(sup, loop, cfg, path, &hooks));
}

static struct sup_job *job_named(struct sup *sup, const char *name)
{
    for (struct sup_job *j = sup->jobs; j != NULL; j = j->next)
        if (strcmp(j->name, name) == 0)
            return j;
    return NULL;
}

static int primary_pid(struct sup *sup, const char *name)
{
    struct sup_job *j = job_named(sup, name);
    if (j == NULL)
        return 0;
    for (struct sup_proc *p = j->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            return p->pid;
    return 0;
}

/* Stops the supervisor, runs the loop dry and checks that nothing leaked. */
static void stop(struct sup *sup, uv_loop_t *loop)
{
    sup_shutdown(sup);
    uv_run(loop, UV_RUN_DEFAULT);
    T_ASSERT_TRUE(sup->jobs == NULL);
    sup_cleanup(sup);
    T_ASSERT_EQ(0, uv_loop_close(loop));
}

static bool svc_running(void *arg)
{
    struct sup *sup = arg;
    struct sup_job *j = job_named(sup, "svc");
    return j && j->prog.state == PROG_RUNNING && primary_pid(sup, "svc") > 0;
}

static int first_pid;
static bool svc_restarted(void *arg)
{
    struct sup *sup = arg;
    int pid = primary_pid(sup, "svc");
    return svc_running(sup) && pid != 0 && pid != first_pid;
}

TEST(service_restarts_after_kill)
{
    struct sup sup;
    uv_loop_t loop;

    setup();
    char *path = write_config("a.yaml", "node: {name: t, state_dir: '@D@/state'}\n"
                                        "jobs:\n"
                                        "  svc:\n"
                                        "    command: ['@F@', loop]\n"
                                        "    schedule: always\n"
                                        "    start_secs: 100ms\n"
                                        "    backoff: {initial: 50ms, max: 100ms}\n");
    start(&sup, &loop, path);
    T_ASSERT_TRUE(run_until(&loop, svc_running, &sup, 10000));
    first_pid = primary_pid(&sup, "svc");
    T_ASSERT_EQ(0, kill(first_pid, SIGKILL));
    T_ASSERT_TRUE(run_until(&loop, svc_restarted, &sup, 10000));
    T_ASSERT_EQ(1, job_named(&sup, "svc")->restarts);
    stop(&sup, &loop);
    md_free(path);
    teardown();
}

static bool crash_fatal(void *arg)
{
    struct sup *sup = arg;
    struct sup_job *j = job_named(sup, "crash");
    return j && j->prog.state == PROG_FATAL && j->procs == NULL;
}

TEST(crash_loop_goes_fatal)
{
    struct sup sup;
    uv_loop_t loop;

    setup();
    char *path = write_config("b.yaml", "node: {name: t, state_dir: '@D@/state'}\n"
                                        "jobs:\n"
                                        "  crash:\n"
                                        "    command: ['@F@', exit, '3']\n"
                                        "    schedule: always\n"
                                        "    max_retries: 2\n"
                                        "    backoff: {initial: 10ms, max: 20ms}\n");
    start(&sup, &loop, path);
    T_ASSERT_TRUE(run_until(&loop, crash_fatal, &sup, 10000));
    struct sup_job *j = job_named(&sup, "crash");
    T_ASSERT_EQ(3, j->runs_failed); /* the first try and two retries */
    T_ASSERT_EQ(2, j->restarts);
    stop(&sup, &loop);
    md_free(path);
    teardown();
}

static bool two_runs(void *arg)
{
    struct sup *sup = arg;
    struct sup_job *j = job_named(sup, "tick");
    return j && j->runs_ok >= 2;
}

TEST(cron_fires_and_records_slot)
{
    struct sup sup;
    uv_loop_t loop;
    char *state;
    FILE *f;
    char line[256];

    setup();
    char *path = write_config("c.yaml", "node: {name: t, state_dir: '@D@/state'}\n"
                                        "jobs:\n"
                                        "  tick:\n"
                                        "    command: ['@F@', exit, '0']\n"
                                        "    schedule: '* * * * * *'\n");
    start(&sup, &loop, path);
    T_ASSERT_TRUE(run_until(&loop, two_runs, &sup, 10000));
    struct sup_job *j = job_named(&sup, "tick");
    T_ASSERT_TRUE(j->last_slot > 0);
    T_ASSERT_TRUE(j->next_slot > j->last_slot);
    /* The run id names the scheduled UTC second. */
    T_ASSERT_TRUE(strncmp(j->run_id, "tick@20", 7) == 0);
    T_ASSERT_EQ('Z', j->run_id[strlen(j->run_id) - 1]);
    stop(&sup, &loop);
    state = md_xasprintf("%s/state/schedule.state", tmpdir);
    f = fopen(state, "r");
    T_ASSERT_TRUE(f != NULL);
    bool found = false;
    while (fgets(line, sizeof line, f))
        found |= strncmp(line, "tick\t", 5) == 0;
    fclose(f);
    T_ASSERT_TRUE(found);
    md_free(state);
    md_free(path);
    teardown();
}

static bool both_running(void *arg)
{
    struct sup *sup = arg;
    return primary_pid(sup, "keep") > 0 && primary_pid(sup, "edit") > 0 &&
           job_named(sup, "keep")->prog.state == PROG_RUNNING &&
           job_named(sup, "edit")->prog.state == PROG_RUNNING;
}

static int edit_pid;
static bool edited(void *arg)
{
    struct sup *sup = arg;
    int pid = primary_pid(sup, "edit");
    return both_running(sup) && pid != edit_pid && job_named(sup, "gone") == NULL &&
           primary_pid(sup, "new") > 0;
}

/* Per loop iteration, the largest number of status lines meshd took from the flooding job. */
struct flood_watch {
    struct sup *sup;
    uint64_t last, most, target;
};

static bool flood_read(void *arg)
{
    struct flood_watch *w = arg;
    struct sup_job *j = job_named(w->sup, "flood");
    uint64_t n = j ? j->bad_status_lines : 0;

    if (n - w->last > w->most)
        w->most = n - w->last;
    w->last = n;
    return n >= w->target;
}

static bool flood_started(void *arg)
{
    return primary_pid(arg, "flood") > 0;
}

/* A child that writes faster than meshd reads must not hold the loop: with its status pipe
 * grown to 1 MiB and full, libuv alone would read 32 x 64 KiB (27000 of these lines) in one go
 * while timers and other children wait; meshd takes one read's worth per loop iteration. */
TEST(flooding_pipe_is_read_one_buffer_per_iteration)
{
    struct sup sup;
    uv_loop_t loop;
    struct flood_watch w = {.sup = &sup, .target = 40000};

    setup();
    char *path = write_config("f.yaml", "node: {name: t, state_dir: '@D@/state'}\n"
                                        "jobs:\n"
                                        "  flood:\n"
                                        "    command: ['@F@', pipe-size, '3', '1048576',\n"
                                        "              flood-badstatus, '60000', loop]\n"
                                        "    schedule: always\n");
    start(&sup, &loop, path);
    T_ASSERT_TRUE(run_until(&loop, flood_started, &sup, 10000));
    usleep(300 * 1000); /* the loop stands still: the child fills its 1 MiB pipe */
    T_ASSERT_TRUE(run_until(&loop, flood_read, &w, 20000));
    /* Lines of 35 to 39 bytes: a 64 KiB read completes at most 1873 of them. */
    fprintf(stderr, "  at most %llu status lines in one loop iteration\n",
            (unsigned long long)w.most);
    if (w.most > 1900)
        T_FAIL("%llu status lines read in one loop iteration", (unsigned long long)w.most);
    T_ASSERT_TRUE(w.most > 100); /* it did flood */
    stop(&sup, &loop);
    md_free(path);
    teardown();
}

TEST(reload_diff_keeps_untouched)
{
    struct sup sup;
    uv_loop_t loop;
    const char *base = "node: {name: t, state_dir: '@D@/state'}\n"
                       "defaults: {start_secs: 50ms, stop_timeout: 2s}\n"
                       "jobs:\n"
                       "  keep: {command: ['@F@', loop], schedule: always}\n"
                       "  edit: {command: ['@F@', loop], schedule: always}\n"
                       "  gone: {command: ['@F@', loop], schedule: always}\n";
    const char *next = "node: {name: t, state_dir: '@D@/state'}\n"
                       "defaults: {start_secs: 50ms, stop_timeout: 2s}\n"
                       "jobs:\n"
                       "  keep: {command: ['@F@', loop], schedule: always}\n"
                       "  edit: {command: ['@F@', sleep, '1', loop], schedule: always}\n"
                       "  new: {command: ['@F@', loop], schedule: always}\n";

    setup();
    char *path = write_config("d.yaml", base);
    start(&sup, &loop, path);
    T_ASSERT_TRUE(run_until(&loop, both_running, &sup, 10000));
    int keep_pid = primary_pid(&sup, "keep");
    edit_pid = primary_pid(&sup, "edit");

    /* A broken edit changes nothing. */
    md_free(write_config("d.yaml", "jobs:\n  keep: {command: [x], schedule: '99 * * * *'}\n"));
    sup_reload(&sup);
    T_ASSERT_EQ(keep_pid, primary_pid(&sup, "keep"));
    T_ASSERT_EQ(edit_pid, primary_pid(&sup, "edit"));
    T_ASSERT_TRUE(job_named(&sup, "gone") != NULL);

    md_free(write_config("d.yaml", next));
    sup_reload(&sup);
    T_ASSERT_TRUE(run_until(&loop, edited, &sup, 10000));
    T_ASSERT_EQ(keep_pid, primary_pid(&sup, "keep"));
    stop(&sup, &loop);
    md_free(path);
    teardown();
}

static bool timed_out(void *arg)
{
    struct sup *sup = arg;
    struct sup_job *j = job_named(sup, "slow");
    return j && j->runs_failed >= 1 && j->procs == NULL;
}

TEST(run_timeout_kills_group)
{
    struct sup sup;
    uv_loop_t loop;
    char child_file[300];
    char buf[64] = {0};

    setup();
    snprintf(child_file, sizeof child_file, "%s/child.pid", tmpdir);
    char *path = write_config(
        "e.yaml", "node: {name: t, state_dir: '@D@/state'}\n"
                  "jobs:\n"
                  "  slow:\n"
                  "    command: ['@F@', spawn-child, '@D@/child.pid', ignore, TERM, loop]\n"
                  "    schedule: '* * * * * *'\n"
                  "    timeout: 300ms\n"
                  "    stop_timeout: 200ms\n");
    start(&sup, &loop, path);
    T_ASSERT_TRUE(run_until(&loop, timed_out, &sup, 10000));
    T_ASSERT_EQ(RUN_TIMED_OUT, job_named(&sup, "slow")->stop_status);
    stop(&sup, &loop);
    FILE *f = fopen(child_file, "r");
    T_ASSERT_TRUE(f != NULL);
    T_ASSERT_TRUE(fgets(buf, sizeof buf, f) != NULL);
    fclose(f);
    int child = (int)strtol(buf, NULL, 10);
    T_ASSERT_TRUE(child > 0);
    /* The grandchild was SIGKILLed with its group; as our orphan it was also reaped. */
    for (int i = 0; i < 200 && kill(child, 0) == 0; i++)
        usleep(10000);
    T_ASSERT_EQ(-1, kill(child, 0));
    md_free(path);
    teardown();
}

static bool caught_up(void *arg)
{
    struct sup *sup = arg;
    struct sup_job *j = job_named(sup, "sec");
    return j && j->runs_ok + j->runs_failed >= 1;
}

/* Two days down with an every-second job: 172,800 missed slots, more than the walk bound, so
 * the skip-ahead path runs; exactly one catch-up run and an exact missed count. */
TEST(catch_up_after_long_downtime)
{
    struct sup sup;
    uv_loop_t loop;
    char *state_dir, *state;
    FILE *f;
    int64_t last = md_time_wall_ms() / 1000 - 2 * 86400;

    setup();
    state_dir = md_xasprintf("%s/state", tmpdir);
    T_ASSERT_EQ(0, mkdir(state_dir, 0755));
    state = md_xasprintf("%s/schedule.state", state_dir);
    f = fopen(state, "w");
    T_ASSERT_TRUE(f != NULL);
    fprintf(f, "# test\nsec\t%lld\nunknown-job\t5\n", (long long)last);
    T_ASSERT_EQ(0, fclose(f));
    char *path = write_config("f.yaml", "node: {name: t, state_dir: '@D@/state'}\n"
                                        "jobs:\n"
                                        "  sec:\n"
                                        "    command: ['@F@', exit, '0']\n"
                                        "    schedule: '* * * * * *'\n"
                                        "    catch_up: 1h\n");
    start(&sup, &loop, path);
    struct sup_job *j = job_named(&sup, "sec");
    /* sup_start handled the backlog synchronously: one run started, the rest missed. */
    int64_t latest = j->last_slot;
    T_ASSERT_TRUE(latest >= last + 2 * 86400 - 5);
    T_ASSERT_EQ(latest - (last + 1), j->runs_missed);
    T_ASSERT_TRUE(run_until(&loop, caught_up, &sup, 10000));
    stop(&sup, &loop);
    md_free(path);
    md_free(state);
    md_free(state_dir);
    teardown();
}

T_MAIN()
