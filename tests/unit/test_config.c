/* test_config.c - the schedule file: every key, every error path with its message and
 * position, defaults, env expansion, command splitting, worker config as JSON. */
#define _GNU_SOURCE 1 /* open_memstream is POSIX 2008; keep glibc's declarations on */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h" /* md__diag_add, for the print test */
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "t.h"

/* One parse at a time: the previous result is freed by the next parse and at exit, so a
 * failing assertion (which longjmps out of the test) leaks nothing. */
static struct md_config *cfg;
static struct md_diag diag;
static int rc;

static void reset(void)
{
    md_config_free(cfg);
    cfg = NULL;
    md_diag_cleanup(&diag);
}

static int parse(const char *yaml)
{
    reset();
    rc = md_config_parse(yaml, strlen(yaml), "t.yaml", &cfg, &diag);
    return rc;
}

static void dump(void)
{
    md_diag_print(&diag, "t.yaml", stderr);
}

static const struct md_diag_item *find_diag(const char *needle)
{
    for (size_t i = 0; i < diag.n; i++)
        if (strstr(diag.items[i].msg, needle))
            return &diag.items[i];
    return NULL;
}

/* Asserts an item with this severity and position whose message contains needle. */
#define T_DIAG(sev, ln, cl, needle)                                                                \
    do {                                                                                           \
        const struct md_diag_item *it_ = find_diag(needle);                                        \
        if (it_ == NULL) {                                                                         \
            dump();                                                                                \
            T_FAIL("no diagnostic contains \"%s\"", (needle));                                     \
        }                                                                                          \
        if (it_->severity != (sev) || it_->line != (ln) || it_->col != (cl)) {                     \
            dump();                                                                                \
            T_FAIL("\"%s\": severity %d at %d:%d, expected %d at %d:%d", it_->msg,                 \
                   (int)it_->severity, it_->line, it_->col, (int)(sev), (ln), (cl));               \
        }                                                                                          \
    } while (0)
#define T_ERR(ln, cl, needle) T_DIAG(MD_DIAG_ERROR, ln, cl, needle)
#define T_WARN(ln, cl, needle) T_DIAG(MD_DIAG_WARNING, ln, cl, needle)

#define T_OK(yaml)                                                                                 \
    do {                                                                                           \
        if (parse(yaml) != 0 || diag.nerrors != 0) {                                               \
            dump();                                                                                \
            T_FAIL("expected a valid config, rc=%d", rc);                                          \
        }                                                                                          \
    } while (0)
#define T_BAD(yaml)                                                                                \
    do {                                                                                           \
        T_ASSERT_EQ(MD_ECONFIG, parse(yaml));                                                      \
        T_ASSERT_TRUE(cfg == NULL);                                                                \
    } while (0)

/* A minimal valid job, to which tests append keys at line 4 onwards. */
#define JOB                                                                                        \
    "jobs:\n"               /* 1 */                                                                \
    "  x:\n"                /* 2 */                                                                \
    "    command: run it\n" /* 3 */

/* ---- valid files and defaults ----------------------------------------------------------- */

TEST(minimal_job_gets_every_default)
{
    const struct md_job *j;

    T_OK(JOB "    schedule: '*/5 * * * *'\n");
    T_ASSERT_EQ(0, diag.n);
    T_ASSERT_EQ(1, cfg->njobs);
    T_ASSERT_STREQ("t.yaml", cfg->path);
    T_ASSERT_TRUE(cfg->node_name != NULL && cfg->node_name[0] != '\0');
    T_ASSERT_STREQ("default", cfg->node_env);
    T_ASSERT_STREQ("var/state", cfg->state_dir);
    T_ASSERT_TRUE(cfg->worker_dir == NULL);
    T_ASSERT_STREQ("notice", cfg->log_level);
    T_ASSERT_STREQ("auto", cfg->cgroups);
    j = md_config_job(cfg, "x");
    T_ASSERT_TRUE(j != NULL);
    T_ASSERT_TRUE(md_config_job(cfg, "y") == NULL);
    T_ASSERT_STREQ("x", j->name);
    T_ASSERT_EQ(2, j->line);
    T_ASSERT_EQ(3, j->col);
    T_ASSERT_TRUE(j->worker == NULL);
    T_ASSERT_EQ(2, j->argc);
    T_ASSERT_STREQ("run", j->argv[0]);
    T_ASSERT_STREQ("it", j->argv[1]);
    T_ASSERT_TRUE(j->argv[2] == NULL);
    T_ASSERT_EQ(MD_JOB_CRON, j->kind);
    T_ASSERT_STREQ("*/5 * * * *", j->schedule);
    T_ASSERT_TRUE(j->event == NULL);
    T_ASSERT_TRUE(j->tz != NULL);
    T_ASSERT_STREQ("UTC", md_tz_name(j->tz));
    T_ASSERT_EQ(MD_CRON_DST_CRONIE, j->cron.dst);
    T_ASSERT_EQ(0, j->nenv);
    T_ASSERT_TRUE(j->workdir == NULL);
    T_ASSERT_TRUE(j->user == NULL);
    T_ASSERT_EQ(0, j->timeout_ms);
    T_ASSERT_EQ(MD_RESTART_NEVER, j->restart);
    T_ASSERT_EQ(5, j->max_retries);
    T_ASSERT_EQ(1000, j->backoff_initial_ms);
    T_ASSERT_EQ(60000, j->backoff_max_ms);
    T_ASSERT_EQ(60000, j->backoff_reset_ms);
    T_ASSERT_EQ(1000, j->start_secs_ms);
    T_ASSERT_FALSE(j->ready_line);
    T_ASSERT_EQ(SIGTERM, j->stop_signal);
    T_ASSERT_EQ(10000, j->stop_timeout_ms);
    T_ASSERT_TRUE(j->stop_group);
    T_ASSERT_EQ(MD_CONC_FORBID, j->concurrency);
    T_ASSERT_EQ(MD_FAILURE_ALERT_WARNING, j->failure_alert);
    T_ASSERT_EQ(0, j->jitter_ms);
    T_ASSERT_EQ(3600000, j->catchup_ms);
    T_ASSERT_TRUE(j->enabled);
    T_ASSERT_STREQ("{}", j->config_json);
    T_ASSERT_EQ(1000, j->log_burst);
    T_ASSERT_EQ(30000, j->log_interval_ms);
}

TEST(every_key_set)
{
    const struct md_job *j;

    T_OK("node:\n"
         "  name: pc-01\n"
         "  environment: prod\n"
         "  state_dir: /var/lib/meshd\n"
         "  worker_dir: /opt/meshd/libexec\n"
         "  log_level: debug\n"
         "  cgroups: off\n"
         "jobs:\n"
         "  load:\n"
         "    worker: refresh\n"
         "    args: [--full, '--since=2024-01-01']\n"
         "    schedule: 0 2 * * *\n"
         "    timezone: America/New_York\n"
         "    dst: skip\n"
         "    env: {A: one, B: 2}\n"
         "    workdir: /tmp\n"
         "    user: root\n"
         "    timeout: 1h30m\n"
         "    restart: on-failure\n"
         "    max_retries: 0\n"
         "    backoff: {initial: 250ms, max: 2m, reset: 5m}\n"
         "    start_secs: 0\n"
         "    ready: line\n"
         "    stop_signal: SIGINT\n"
         "    stop_timeout: 3s\n"
         "    stop_group: false\n"
         "    concurrency: replace\n"
         "    failure_alert: critical\n"
         "    jitter: 45s\n"
         "    catch_up: 2d\n"
         "    enabled: false\n"
         "    config: {k: v}\n");
    T_ASSERT_STREQ("pc-01", cfg->node_name);
    T_ASSERT_STREQ("prod", cfg->node_env);
    T_ASSERT_STREQ("/var/lib/meshd", cfg->state_dir);
    T_ASSERT_STREQ("/opt/meshd/libexec", cfg->worker_dir);
    T_ASSERT_STREQ("debug", cfg->log_level);
    T_ASSERT_STREQ("off", cfg->cgroups);
    j = &cfg->jobs[0];
    T_ASSERT_STREQ("refresh", j->worker);
    T_ASSERT_EQ(3, j->argc);
    T_ASSERT_STREQ("/opt/meshd/libexec/meshd-refresh", j->argv[0]);
    T_ASSERT_STREQ("--full", j->argv[1]);
    T_ASSERT_STREQ("--since=2024-01-01", j->argv[2]);
    T_ASSERT_TRUE(j->argv[3] == NULL);
    T_ASSERT_STREQ("America/New_York", md_tz_name(j->tz));
    T_ASSERT_EQ(MD_CRON_DST_SKIP, j->cron.dst);
    T_ASSERT_EQ(2, j->nenv);
    T_ASSERT_STREQ("A", j->env[0].name);
    T_ASSERT_STREQ("one", j->env[0].value);
    T_ASSERT_STREQ("B", j->env[1].name);
    T_ASSERT_STREQ("2", j->env[1].value);
    T_ASSERT_STREQ("/tmp", j->workdir);
    T_ASSERT_STREQ("root", j->user);
    T_ASSERT_EQ(5400000, j->timeout_ms);
    T_ASSERT_EQ(MD_RESTART_ON_FAILURE, j->restart);
    T_ASSERT_EQ(0, j->max_retries);
    T_ASSERT_EQ(250, j->backoff_initial_ms);
    T_ASSERT_EQ(120000, j->backoff_max_ms);
    T_ASSERT_EQ(300000, j->backoff_reset_ms);
    T_ASSERT_EQ(0, j->start_secs_ms);
    T_ASSERT_TRUE(j->ready_line);
    T_ASSERT_EQ(SIGINT, j->stop_signal);
    T_ASSERT_EQ(3000, j->stop_timeout_ms);
    T_ASSERT_FALSE(j->stop_group);
    T_ASSERT_EQ(MD_CONC_REPLACE, j->concurrency);
    T_ASSERT_EQ(MD_FAILURE_ALERT_CRITICAL, j->failure_alert);
    T_ASSERT_EQ(45000, j->jitter_ms);
    T_ASSERT_EQ(2 * 86400000LL, j->catchup_ms);
    T_ASSERT_FALSE(j->enabled);
    T_ASSERT_STREQ("{\"k\":\"v\"}", j->config_json);
}

TEST(service_and_event_kinds)
{
    T_OK("jobs:\n"
         "  web:\n"
         "    command: [server, --port, '8080']\n"
         "    schedule: always\n"
         "  fix:\n"
         "    command: fix\n"
         "    on: validation.failed\n");
    T_ASSERT_EQ(MD_JOB_SERVICE, cfg->jobs[0].kind);
    T_ASSERT_TRUE(cfg->jobs[0].schedule == NULL);
    T_ASSERT_EQ(MD_RESTART_ALWAYS, cfg->jobs[0].restart); /* services restart by default */
    T_ASSERT_EQ(MD_JOB_EVENT, cfg->jobs[1].kind);
    T_ASSERT_STREQ("validation.failed", cfg->jobs[1].event);
    T_ASSERT_EQ(MD_RESTART_NEVER, cfg->jobs[1].restart);
}

TEST(worker_path_resolution)
{
    static const char y[] = "jobs:\n  w:\n    worker: scrape\n    on: go\n";

    unsetenv("MESHD_WORKER_DIR");
    T_OK(y);
    T_ASSERT_STREQ("libexec/meshd/meshd-scrape", cfg->jobs[0].argv[0]);
    T_ASSERT_EQ(1, cfg->jobs[0].argc);
    T_ASSERT_STREQ("scrape", cfg->jobs[0].worker);
    setenv("MESHD_WORKER_DIR", "/w", 1);
    T_OK(y);
    T_ASSERT_STREQ("/w/meshd-scrape", cfg->jobs[0].argv[0]);
    T_OK("node: {worker_dir: /n}\n" /* node.worker_dir wins over the environment */
         "jobs:\n  w:\n    worker: scrape\n    on: go\n");
    T_ASSERT_STREQ("/n/meshd-scrape", cfg->jobs[0].argv[0]);
    unsetenv("MESHD_WORKER_DIR");
}

/* ---- command splitting ------------------------------------------------------------------ */

TEST(command_split_like_a_shell)
{
    const struct md_job *j;

    T_OK("jobs:\n"
         "  x:\n"
         "    command: >-\n"
         "      a  'b c' \"d \\\"e\\\" \\$f \\n\" g\\ h '' x'y'\"z\" 'it''s'\n"
         "    on: go\n");
    j = &cfg->jobs[0];
    T_ASSERT_EQ(7, j->argc);
    T_ASSERT_STREQ("a", j->argv[0]);
    T_ASSERT_STREQ("b c", j->argv[1]);
    T_ASSERT_STREQ("d \"e\" $f \\n", j->argv[2]); /* \n is not special inside "..." */
    T_ASSERT_STREQ("g h", j->argv[3]);
    T_ASSERT_STREQ("", j->argv[4]);
    T_ASSERT_STREQ("xyz", j->argv[5]);
    T_ASSERT_STREQ("its", j->argv[6]);
    T_ASSERT_EQ(0, diag.n);
}

TEST(command_as_sequence)
{
    T_OK("jobs:\n  x:\n    command: [sh, -c, 'echo a; sleep 1 | cat']\n    on: go\n");
    T_ASSERT_EQ(3, cfg->jobs[0].argc);
    T_ASSERT_STREQ("echo a; sleep 1 | cat", cfg->jobs[0].argv[2]);
    T_ASSERT_EQ(0, diag.n); /* no shell warning inside a list */
}

TEST(command_errors)
{
    /* Columns point inside the value: plain scalars directly, quoted ones one further. */
    T_BAD(JOB "    on: go\n"
              "  y:\n"
              "    command: echo 'oops\n"
              "    on: go\n"
              "  z:\n"
              "    command: \"echo \\\"oops\"\n"
              "    on: go\n"
              "  w:\n"
              "    command: echo \\\n"
              "    on: go\n"
              "  v:\n"
              "    command: ''\n"
              "    on: go\n"
              "  u:\n"
              "    command: []\n"
              "    on: go\n"
              "  t:\n"
              "    command: {a: b}\n"
              "    on: go\n"
              "  s:\n"
              "    command: [a, [b]]\n"
              "    on: go\n");
    T_ERR(6, 19, "key 'jobs.y.command': unterminated ' quote in command");
    /* escapes make the text differ from the source: the value's own column is reported */
    T_ERR(9, 14, "key 'jobs.z.command': unterminated \" quote in command");
    T_ERR(12, 19, "key 'jobs.w.command': command ends with a lone backslash");
    T_ERR(15, 14, "key 'jobs.v.command': command is empty");
    T_ERR(18, 14, "key 'jobs.u.command': command is empty");
    T_ERR(21, 14,
          "key 'jobs.t.command': expected a command line or a list of arguments, got a "
          "mapping");
    T_ERR(24, 18, "key 'jobs.s.command[1]': expected a string, got a sequence");
    T_ASSERT_EQ(7, diag.nerrors);
}

TEST(command_shell_syntax_warns)
{
    T_OK(JOB "    on: go\n"
             "  y:\n"
             "    command: echo hi | tee log\n"
             "    on: go\n"
             "  z:\n"
             "    command: sh -c 'a | b; c > d'\n"
             "    on: go\n");
    T_WARN(6, 22, "key 'jobs.y.command': '|' is passed to the program as is");
    T_ASSERT_EQ(1, diag.nwarnings);
}

TEST(worker_xor_command_and_args)
{
    T_BAD("jobs:\n"
          "  a:\n"
          "    worker: w\n"
          "    command: c\n"
          "    on: go\n"
          "  b:\n"
          "    command: c\n"
          "    args: [x]\n"
          "    on: go\n"
          "  c:\n"
          "    on: go\n"
          "  d:\n"
          "    worker: Not_OK\n"
          "    on: go\n"
          "  e:\n"
          "    worker: w\n"
          "    args: x\n"
          "    on: go\n");
    T_ERR(4, 14, "key 'jobs.a.command': a job runs either worker: or command:, not both");
    T_ERR(8, 11, "key 'jobs.b.args': args: is for worker: jobs");
    T_ERR(10, 3, "key 'jobs.c': missing worker: or command: (what to run)");
    T_ERR(13, 13, "key 'jobs.d.worker': bad worker name 'Not_OK'");
    T_ERR(17, 11, "key 'jobs.e.args': expected a list of arguments, got 'x'");
    T_ASSERT_EQ(5, diag.nerrors);
}

/* ---- when ------------------------------------------------------------------------------- */

TEST(schedule_or_on_exactly_one)
{
    T_BAD("jobs:\n"
          "  a:\n"
          "    command: c\n"
          "  b:\n"
          "    command: c\n"
          "    schedule: always\n"
          "    on: go\n"
          "  c:\n"
          "    command: c\n"
          "    on: 9lives\n"
          "  d:\n"
          "    command: c\n"
          "    schedule: [0, 1]\n");
    T_ERR(2, 3, "key 'jobs.a': missing schedule: (a cron expression or 'always') or on: EVENT");
    T_ERR(7, 9, "key 'jobs.b.on': a job has either schedule: or on:, not both");
    T_ERR(10, 9, "key 'jobs.c.on': bad event name '9lives'");
    T_ERR(13, 15, "key 'jobs.d.schedule': expected a cron expression or 'always', got a sequence");
    T_ASSERT_EQ(4, diag.nerrors);
}

TEST(cron_error_column_is_inside_the_expression)
{
    T_BAD("jobs:\n"
          "  a:\n"
          "    command: c\n"
          "    schedule: 0 25 * * *\n"
          "  b:\n"
          "    command: c\n"
          "    schedule: \"0 25 * * *\"\n"
          "  c:\n"
          "    command: c\n"
          "    schedule: '0 0 * 13 *'\n"
          "  d:\n"
          "    command: c\n"
          "    schedule: 61 * * * *\n");
    /* plain at col 15, "25" is byte 2 of the expression; quoted values start one further */
    T_ERR(4, 17, "key 'jobs.a.schedule': ");
    T_ERR(7, 18, "key 'jobs.b.schedule': ");
    T_ERR(10, 22, "key 'jobs.c.schedule': ");
    T_ERR(13, 15, "key 'jobs.d.schedule': ");
    T_ASSERT_CONTAINS(find_diag("jobs.a.schedule")->msg, "hour");
    T_ASSERT_CONTAINS(find_diag("jobs.c.schedule")->msg, "month");
    T_ASSERT_CONTAINS(find_diag("jobs.d.schedule")->msg, "minute");
    T_ASSERT_EQ(4, diag.nerrors);
}

TEST(cron_that_never_fires)
{
    const struct md_diag_item *it;

    T_BAD(JOB "    schedule: 0 0 30 2 *\n");
    T_ASSERT_EQ(1, diag.nerrors);
    it = find_diag("key 'jobs.x.schedule': ");
    T_ASSERT_TRUE(it != NULL);
    T_ASSERT_EQ(4, it->line);
    T_ASSERT_TRUE(it->col >= 15 && it->col <= 15 + 10);
}

TEST(cron_warnings_do_not_fail)
{
    const struct md_diag_item *it;

    T_OK(JOB "    schedule: 0 0 1,15 * 1\n");
    T_ASSERT_EQ(0, diag.nerrors);
    T_ASSERT_TRUE(diag.nwarnings >= 1);
    it = find_diag("key 'jobs.x.schedule': ");
    T_ASSERT_TRUE(it != NULL);
    T_ASSERT_EQ(MD_DIAG_WARNING, it->severity);
    T_ASSERT_EQ(4, it->line);
    T_ASSERT_TRUE(it->col >= 15 && it->col <= 15 + 12);
}

TEST(time_zones)
{
    T_BAD("defaults:\n"
          "  timezone: Nowhere/Land\n" JOB "    schedule: '@daily'\n"
          "    timezone: Mars/Base\n"
          "  y:\n"
          "    command: c\n"
          "    schedule: '@daily'\n"
          "    timezone: ../../etc/passwd\n"
          "  z:\n"
          "    command: c\n"
          "    schedule: '@daily'\n"
          "    timezone: {a: b}\n");
    T_ERR(2, 13, "key 'defaults.timezone': unknown time zone 'Nowhere/Land'");
    T_ERR(7, 15, "key 'jobs.x.timezone': unknown time zone 'Mars/Base'");
    T_ERR(11, 15, "key 'jobs.y.timezone': unknown time zone '../../etc/passwd'");
    T_ERR(15, 15, "key 'jobs.z.timezone': expected an IANA time zone");
    T_ASSERT_EQ(4, diag.nerrors); /* the defaults error is reported once, not per job */
}

TEST(keys_that_do_not_fit_the_kind)
{
    T_BAD("jobs:\n"
          "  web:\n"
          "    command: c\n"
          "    schedule: always\n"
          "    timeout: 5s\n"
          "    concurrency: allow\n"
          "    jitter: 1s\n"
          "    catch_up: 1h\n"
          "    dst: skip\n"
          "  ev:\n"
          "    command: c\n"
          "    on: go\n"
          "    timeout: 5s\n"
          "    jitter: 1s\n"
          "    catch_up: 1h\n"
          "  cr:\n"
          "    command: c\n"
          "    schedule: '@hourly'\n"
          "    restart: always\n");
    T_ERR(5, 5, "key 'jobs.web.timeout': not allowed for a service (schedule: always)");
    T_ERR(6, 5, "key 'jobs.web.concurrency': not allowed for a service");
    T_ERR(7, 5, "key 'jobs.web.jitter': not allowed for a service");
    T_ERR(8, 5, "key 'jobs.web.catch_up': not allowed for a service");
    T_ERR(9, 5, "key 'jobs.web.dst': not allowed for a service");
    T_ERR(14, 5, "key 'jobs.ev.jitter': only allowed with a cron schedule");
    T_ERR(15, 5, "key 'jobs.ev.catch_up': only allowed with a cron schedule");
    T_ERR(19, 14, "key 'jobs.cr.restart': 'always' is only for services");
    T_ASSERT_EQ(8, diag.nerrors); /* a timeout on an event job is fine */
}

TEST(expect_succeed_within)
{
    const struct md_job *j;

    T_OK("defaults:\n"
         "  expect: {succeed_within: 2h}\n"
         "jobs:\n"
         "  daily:\n"
         "    command: run it\n"
         "    schedule: '@daily'\n"
         "    expect:\n"
         "      succeed_within: 26h\n"
         "  inherits:\n"
         "    command: run it\n"
         "    on: deploy\n"
         "  off:\n"
         "    command: run it\n"
         "    schedule: '@hourly'\n"
         "    expect: {succeed_within: 0}\n"
         "  svc:\n"
         "    command: run it\n"
         "    schedule: always\n");
    T_ASSERT_EQ(0, diag.n);
    j = md_config_job(cfg, "daily");
    T_ASSERT_EQ(26ULL * 3600 * 1000, j->expect_success_ms);
    T_ASSERT_EQ(2ULL * 3600 * 1000, md_config_job(cfg, "inherits")->expect_success_ms);
    T_ASSERT_EQ(0, md_config_job(cfg, "off")->expect_success_ms);
    T_ASSERT_EQ(0, md_config_job(cfg, "svc")->expect_success_ms); /* default not for services */
}

TEST(expect_errors)
{
    T_BAD("defaults:\n"
          "  expect: {succed_within: 1h}\n" JOB "    schedule: '@daily'\n"
          "    expect: 26h\n"
          "  y:\n"
          "    command: run it\n"
          "    schedule: '@daily'\n"
          "    expect: {succeed_within: soon}\n"
          "  z:\n"
          "    command: run it\n"
          "    schedule: always\n"
          "    expect: {succeed_within: 1h}\n");
    T_ERR(2, 12, "unknown key 'defaults.expect.succed_within' (did you mean 'succeed_within'?)");
    T_ERR(7, 13, "key 'jobs.x.expect': expected a mapping with succeed_within, got '26h'");
    T_ERR(11, 30,
          "key 'jobs.y.expect.succeed_within': expected a duration like 30s, 5m or "
          "1h30m, got 'soon'");
    T_ERR(15, 5, "key 'jobs.z.expect': not allowed for a service (schedule: always)");
    T_ASSERT_EQ(4, diag.nerrors);
}

TEST(log_limit_merges_key_by_key)
{
    T_OK("defaults:\n"
         "  log_limit: {burst: 200}\n"
         "jobs:\n"
         "  a:\n"
         "    command: run it\n"
         "    schedule: always\n"
         "  b:\n"
         "    command: run it\n"
         "    schedule: '@daily'\n"
         "    log_limit:\n"
         "      interval: 1m\n"
         "  off:\n"
         "    command: run it\n"
         "    on: deploy\n"
         "    log_limit: {burst: 0, interval: 1d}\n");
    T_ASSERT_EQ(0, diag.n);
    T_ASSERT_EQ(200, md_config_job(cfg, "a")->log_burst);
    T_ASSERT_EQ(30000, md_config_job(cfg, "a")->log_interval_ms);
    T_ASSERT_EQ(200, md_config_job(cfg, "b")->log_burst); /* kept from defaults */
    T_ASSERT_EQ(60000, md_config_job(cfg, "b")->log_interval_ms);
    T_ASSERT_EQ(0, md_config_job(cfg, "off")->log_burst);
    T_ASSERT_EQ(86400000, md_config_job(cfg, "off")->log_interval_ms);
}

TEST(log_limit_errors)
{
    T_BAD("defaults:\n"
          "  log_limit: {bursts: 10}\n" JOB "    schedule: '@daily'\n"
          "    log_limit: 1000\n"
          "  y:\n"
          "    command: run it\n"
          "    schedule: always\n"
          "    log_limit: {burst: -1, interval: 500ms}\n"
          "  z:\n"
          "    command: run it\n"
          "    schedule: always\n"
          "    log_limit: {burst: 1000001, interval: 2d}\n");
    T_ERR(2, 15, "unknown key 'defaults.log_limit.bursts' (did you mean 'burst'?)");
    T_ERR(7, 16, "key 'jobs.x.log_limit': expected a mapping with burst and interval, got '1000'");
    T_ERR(11, 24, "key 'jobs.y.log_limit.burst': -1 is out of range 0..1000000");
    T_ERR(11, 38, "key 'jobs.y.log_limit.interval': '500ms' is too short (at least 1s)");
    T_ERR(15, 24, "key 'jobs.z.log_limit.burst': 1000001 is out of range 0..1000000");
    T_ERR(15, 43, "key 'jobs.z.log_limit.interval': '2d' is too long (at most 1d)");
    T_ASSERT_EQ(6, diag.nerrors);
}

/* ---- keys, types and values --------------------------------------------------------------- */

TEST(unknown_keys_with_suggestions)
{
    T_BAD("nod:\n"
          "  name: a\n"
          "node:\n"
          "  nmae: a\n"
          "defaults:\n"
          "  tiemout: 5s\n"
          "  backoff: {intial: 1s}\n" JOB "    schedul: '@daily'\n"
          "    zzz: 1\n");
    T_ERR(1, 1, "unknown key 'nod' (did you mean 'node'?)");
    T_ERR(4, 3, "unknown key 'node.nmae' (did you mean 'name'?)");
    T_ERR(6, 3, "unknown key 'defaults.tiemout' (did you mean 'timeout'?)");
    T_ERR(7, 13, "unknown key 'defaults.backoff.intial' (did you mean 'initial'?)");
    T_ERR(11, 5, "unknown key 'jobs.x.schedul' (did you mean 'schedule'?)");
    T_ERR(12, 5, "unknown key 'jobs.x.zzz'");
    T_ASSERT_TRUE(strstr(find_diag("jobs.x.zzz")->msg, "did you mean") == NULL);
    T_ERR(9, 3, "key 'jobs.x': missing schedule:");
    T_ASSERT_EQ(7, diag.nerrors);
}

TEST(wrong_types_name_the_key)
{
    T_BAD("node: [a]\n"
          "defaults: 5\n" JOB "    schedule: '@daily'\n"
          "    timeout: {a: 1}\n"
          "    max_retries: [1]\n"
          "    stop_group:\n"
          "    env: [A]\n"
          "    backoff: 5s\n"
          "    workdir: ''\n"
          "  y: 5\n");
    T_ERR(1, 7, "key 'node': expected a mapping, got a sequence");
    T_ERR(2, 11, "key 'defaults': expected a mapping of job settings, got '5'");
    T_ERR(7, 14, "key 'jobs.x.timeout': expected a duration like 30s, 5m or 1h30m, got a mapping");
    T_ERR(8, 18, "key 'jobs.x.max_retries': expected an integer, got a sequence");
    T_ERR(9, 16, "key 'jobs.x.stop_group': expected true or false, got an empty value");
    T_ERR(10, 10, "key 'jobs.x.env': expected a mapping of NAME: value, got a sequence");
    T_ERR(11, 14, "key 'jobs.x.backoff': expected a mapping with initial, max and reset, got '5s'");
    T_ERR(12, 14, "key 'jobs.x.workdir': must not be empty");
    T_ERR(13, 6, "key 'jobs.y': expected a mapping of job settings, got '5'");
    T_ASSERT_EQ(9, diag.nerrors);
}

TEST(top_level_shapes)
{
    T_BAD("- a\n- b\n");
    T_ERR(1, 1, "expected a mapping with node:, defaults: and jobs: at the top, got a sequence");
    T_BAD("");
    T_ERR(1, 1, "the file is empty");
    T_BAD("# only a comment\n");
    T_ERR(1, 1, "the file is empty");
    T_BAD("jobs: [a]\n");
    T_ERR(1, 7, "key 'jobs': expected a mapping from job name to settings, got a sequence");
    T_OK("node: {name: a}\n");
    T_WARN(0, 0, "no jobs defined");
    T_OK("jobs: {}\n");
    T_WARN(1, 7, "no jobs defined");
}

TEST(bad_values)
{
    T_BAD(JOB "    schedule: '@daily'\n"
              "    timeout: 5x\n"
              "    start_secs: -1s\n"
              "    stop_timeout: 1.5s\n"
              "    jitter: 30m1h\n"
              "    catch_up: 400d\n"
              "    max_retries: 1001\n"
              "    stop_signal: SIGFOO\n"
              "    enabled: yes\n"
              "    restart: sometimes\n"
              "    concurrency: queue\n"
              "    ready: now\n"
              "    dst: fall-back\n"
              "    user: ''\n"
              "    failure_alert: loud\n");
    T_ERR(5, 14, "key 'jobs.x.timeout': expected a duration like 30s, 5m or 1h30m, got '5x'");
    T_ERR(6, 17, "key 'jobs.x.start_secs': expected a duration like 30s, 5m or 1h30m, got '-1s'");
    T_ERR(7, 19,
          "key 'jobs.x.stop_timeout': expected a duration like 30s, 5m or 1h30m, got "
          "'1.5s'");
    T_ERR(8, 13, "key 'jobs.x.jitter': expected a duration like 30s, 5m or 1h30m, got '30m1h'");
    T_ERR(9, 15, "key 'jobs.x.catch_up': '400d' is too long (at most 365d)");
    T_ERR(10, 18, "key 'jobs.x.max_retries': 1001 is out of range 0..1000");
    T_ERR(11, 18,
          "key 'jobs.x.stop_signal': expected a signal like TERM, SIGINT or 15, got "
          "'SIGFOO'");
    T_ERR(12, 14,
          "key 'jobs.x.enabled': expected true or false, got 'yes' (YAML 1.2 has no "
          "yes/no/on/off booleans)");
    T_ERR(13, 14,
          "key 'jobs.x.restart': expected one of never, on-failure, always, got "
          "'sometimes'");
    T_ERR(14, 18, "key 'jobs.x.concurrency': expected one of forbid, allow, replace, got 'queue'");
    T_ERR(15, 12, "key 'jobs.x.ready': expected one of start_secs, line, got 'now'");
    T_ERR(16, 10, "key 'jobs.x.dst': expected one of cronie, skip, got 'fall-back'");
    T_ERR(17, 11, "key 'jobs.x.user': must not be empty");
    T_ERR(18, 20,
          "key 'jobs.x.failure_alert': expected one of critical, warning, info, none, got "
          "'loud'");
    T_ASSERT_EQ(14, diag.nerrors);
}

TEST(node_values)
{
    T_BAD("node:\n"
          "  name: 'has space'\n"
          "  environment: ''\n"
          "  state_dir: ''\n"
          "  log_level: loud\n"
          "  cgroups: yes\n"
          "jobs: {}\n");
    T_ERR(2, 9,
          "key 'node.name': expected 1 to 64 letters, digits, '_', '.' or '-', got 'has "
          "space'");
    T_ERR(3, 16, "key 'node.environment': expected 1 to 64 letters");
    T_ERR(4, 14, "key 'node.state_dir': must not be empty");
    T_ERR(5, 14,
          "key 'node.log_level': expected one of error, warn, notice, info, debug, got "
          "'loud'");
    T_ERR(6, 12, "key 'node.cgroups': expected auto or off, got 'yes'");
    T_ASSERT_EQ(5, diag.nerrors);
}

/* ---- registry: -------------------------------------------------------------------------- */

#define MIB_ (1024ULL * 1024)
#define DAY_MS (86400ULL * 1000)

TEST(registry_defaults_without_section)
{
    static const char *const files[] = {
        JOB "    schedule: '@daily'\n",
        "registry:\n" JOB "    schedule: '@daily'\n",
        "registry: {}\n" JOB "    schedule: '@daily'\n",
    };

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        T_OK(files[i]);
        T_ASSERT_EQ(0, diag.n);
        T_ASSERT_TRUE(cfg->registry_url == NULL);
        T_ASSERT_TRUE(!cfg->registry_url_set);
        T_ASSERT_EQ(30000, cfg->heartbeat_ms);
        T_ASSERT_EQ(30 * DAY_MS, cfg->retention_ms);
        T_ASSERT_EQ(64 * MIB_, cfg->journal_max_bytes);
    }
}

TEST(registry_values)
{
    setenv("MD_T_REG_HOST", "db.example", 1);
    setenv("MD_T_REG_PASS", "s3cret", 1);
    unsetenv("MD_T_UNSET");
    T_OK("registry:\n"
         "  url: 'postgres://meshd:${MD_T_REG_PASS}@${MD_T_REG_HOST}:5432/meshd'\n"
         "  heartbeat: 1s\n"
         "  retention: 1h\n"
         "  journal_max: 1048576\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_EQ(0, diag.n);
    T_ASSERT_STREQ("postgres://meshd:s3cret@db.example:5432/meshd", cfg->registry_url);
    T_ASSERT_TRUE(cfg->registry_url_set);
    T_ASSERT_EQ(1000, cfg->heartbeat_ms);
    T_ASSERT_EQ(3600000, cfg->retention_ms);
    T_ASSERT_EQ(MIB_, cfg->journal_max_bytes);

    /* The upper bounds, a conninfo default, and the other size suffixes. */
    T_OK("registry:\n"
         "  url: ${MD_T_UNSET:-host=localhost dbname=meshd}\n"
         "  heartbeat: 1h\n"
         "  retention: 3650d\n"
         "  journal_max: 64GiB\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_STREQ("host=localhost dbname=meshd", cfg->registry_url);
    T_ASSERT_EQ(3600000, cfg->heartbeat_ms);
    T_ASSERT_EQ(3650 * DAY_MS, cfg->retention_ms);
    T_ASSERT_EQ(64ULL * 1024 * MIB_, cfg->journal_max_bytes);

    T_OK("registry: {heartbeat: 1m30s, retention: 7d12h, journal_max: 2048KiB}\n" JOB
         "    schedule: '@daily'\n");
    T_ASSERT_TRUE(cfg->registry_url == NULL && !cfg->registry_url_set);
    T_ASSERT_EQ(90000, cfg->heartbeat_ms);
    T_ASSERT_EQ(7 * DAY_MS + 12 * 3600000ULL, cfg->retention_ms);
    T_ASSERT_EQ(2 * MIB_, cfg->journal_max_bytes);
    T_OK("registry: {heartbeat: 30, journal_max: 3MiB}\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_EQ(30000, cfg->heartbeat_ms);
    T_ASSERT_EQ(3 * MIB_, cfg->journal_max_bytes);
}

TEST(registry_url_empty_is_no_database)
{
    setenv("MD_T_EMPTY", "", 1);
    T_OK("registry:\n  url: \"\"\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_TRUE(cfg->registry_url_set);
    T_ASSERT_STREQ("", cfg->registry_url);
    T_OK("registry:\n  url:\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_TRUE(cfg->registry_url_set);
    T_ASSERT_STREQ("", cfg->registry_url);
    T_OK("registry:\n  url: ${MD_T_EMPTY}\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_TRUE(cfg->registry_url_set);
    T_ASSERT_STREQ("", cfg->registry_url);
}

TEST(registry_bad_values)
{
    T_BAD("registry:\n"
          "  heartbeat: 5x\n"
          "  retention: 30m\n"
          "  journal_max: 64MB\n" JOB "    schedule: '@daily'\n");
    T_ERR(2, 14, "key 'registry.heartbeat': expected a duration like 30s, 5m or 1h30m, got '5x'");
    T_ERR(3, 14, "key 'registry.retention': '30m' is out of range 1h..3650d");
    T_ERR(4, 16,
          "key 'registry.journal_max': expected a size in bytes or with KiB, MiB or GiB, "
          "like 64MiB, got '64MB'");
    T_ASSERT_EQ(3, diag.nerrors);

    T_BAD("registry:\n"
          "  heartbeat: 0s\n"
          "  retention: 3651d\n"
          "  journal_max: 512KiB\n" JOB "    schedule: '@daily'\n");
    T_ERR(2, 14, "key 'registry.heartbeat': '0s' is out of range 1s..1h");
    T_ERR(3, 14, "key 'registry.retention': '3651d' is out of range 1h..3650d");
    T_ERR(4, 16, "key 'registry.journal_max': '512KiB' is out of range 1MiB..64GiB");
    T_ASSERT_EQ(3, diag.nerrors);

    T_BAD("registry:\n"
          "  heartbeat: 61m\n"
          "  journal_max: 99999999999999999999GiB\n"
          "  retention:\n"
          "  url: [a]\n" JOB "    schedule: '@daily'\n");
    T_ERR(2, 14, "key 'registry.heartbeat': '61m' is out of range 1s..1h");
    T_ERR(3, 16, "key 'registry.journal_max': expected a size");
    T_ERR(4, 13,
          "key 'registry.retention': expected a duration like 30s, 5m or 1h30m, got an "
          "empty value");
    T_ERR(5, 8, "key 'registry.url': expected a string, got a sequence");
    T_ASSERT_EQ(4, diag.nerrors);

    T_BAD("registry: 5\n" JOB "    schedule: '@daily'\n");
    T_ERR(1, 11, "key 'registry': expected a mapping, got '5'");
    T_BAD("registry:\n  heartbeat: 1s\n  heartbeat: 2s\n" JOB "    schedule: '@daily'\n");
    T_ERR(3, 3, "duplicate key 'registry.heartbeat' (first at line 2)");
}

TEST(registry_unknown_keys)
{
    T_BAD("regsitry:\n"
          "  url: x\n"
          "registry:\n"
          "  hartbeat: 30s\n"
          "  journal-max: 1MiB\n"
          "  dsn: x\n" JOB "    schedule: '@daily'\n");
    T_ERR(1, 1, "unknown key 'regsitry' (did you mean 'registry'?)");
    T_ERR(4, 3, "unknown key 'registry.hartbeat' (did you mean 'heartbeat'?)");
    T_ERR(5, 3, "unknown key 'registry.journal-max' (did you mean 'journal_max'?)");
    T_ERR(6, 3, "unknown key 'registry.dsn'");
    T_ASSERT_TRUE(strstr(find_diag("registry.dsn")->msg, "did you mean") == NULL);
    T_ASSERT_EQ(4, diag.nerrors);
}

/* ---- http: ------------------------------------------------------------------------------ */

TEST(http_defaults_and_values)
{
    T_OK(JOB "    schedule: '@daily'\n");
    T_ASSERT_STREQ("127.0.0.1", cfg->http_host);
    T_ASSERT_EQ(8470, cfg->http_port);
    T_ASSERT_TRUE(cfg->http_token == NULL);
    T_ASSERT_TRUE(cfg->http_anonymous_read);
    T_ASSERT_EQ(256u, cfg->http_max_connections);

    setenv("MD_T_TOKEN", "a-token-of-32-characters-for-it", 1);
    T_OK("http:\n"
         "  listen: '[::1]:9000'\n"
         "  token: ${MD_T_TOKEN}\n"
         "  anonymous_read: false\n"
         "  max_connections: 10\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_STREQ("::1", cfg->http_host);
    T_ASSERT_EQ(9000, cfg->http_port);
    T_ASSERT_STREQ("a-token-of-32-characters-for-it", cfg->http_token);
    T_ASSERT_TRUE(!cfg->http_anonymous_read);
    T_ASSERT_EQ(10u, cfg->http_max_connections);

    static const struct {
        const char *listen, *host;
        int port;
    } forms[] = {
        {"8080", "0.0.0.0", 8080},
        {"':8080'", "0.0.0.0", 8080},
        {"'*:0'", "0.0.0.0", 0},
        {"localhost:1", "127.0.0.1", 1},
        {"10.1.2.3:65535", "10.1.2.3", 65535},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char yaml[200];
        snprintf(yaml, sizeof yaml, "http: {listen: %s}\n" JOB "    schedule: '@daily'\n",
                 forms[i].listen);
        T_OK(yaml);
        T_ASSERT_STREQ(forms[i].host, cfg->http_host);
        T_ASSERT_EQ(forms[i].port, cfg->http_port);
    }
    T_OK("http: {listen: ''}\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_TRUE(cfg->http_host == NULL);
}

TEST(http_bad_values)
{
    T_BAD("http:\n"
          "  listen: example.com:80\n"
          "  token: [x]\n"
          "  anonymous_read: yes\n"
          "  max_connections: 0\n"
          "  lisen: x\n" JOB "    schedule: '@daily'\n");
    T_ERR(2, 11, "key 'http.listen': 'example.com:80': the host must be an IP address");
    T_ERR(3, 10, "key 'http.token': expected a string");
    T_ERR(4, 19, "key 'http.anonymous_read': expected true or false, got 'yes'");
    T_ERR(5, 20, "key 'http.max_connections': expected a number 1..65535, got '0'");
    T_ERR(6, 3, "unknown key 'http.lisen'");
    T_ASSERT_EQ(5, diag.nerrors);
    T_BAD("http: {listen: '127.0.0.1:65536'}\n" JOB "    schedule: '@daily'\n");
    T_ERR(1, 16, "the port is out of range 0..65535");
    T_BAD("http: {listen: '::1:80'}\n" JOB "    schedule: '@daily'\n");
    T_ERR(1, 16, "an IPv6 address goes in brackets");
    T_BAD("http: {listen: '1.2.3.4:'}\n" JOB "    schedule: '@daily'\n");
    T_ERR(1, 16, "expected a port number");
    T_BAD("http: 80\n" JOB "    schedule: '@daily'\n");
    T_ERR(1, 7, "key 'http': expected a mapping");
}

TEST(http_token_is_never_shown)
{
    setenv("MD_T_SHORT", "hunter2", 1);
    T_OK("http: {token: '${MD_T_SHORT}'}\n" JOB "    schedule: '@daily'\n");
    T_WARN(1, 15, "the token is shorter than 16 characters");
    for (size_t i = 0; i < diag.n; i++)
        T_ASSERT_TRUE(strstr(diag.items[i].msg, "hunter2") == NULL);
}

/* ---- cluster: and prefer ------------------------------------------------------------------ */

TEST(cluster_section_and_prefer)
{
    T_OK(JOB "    schedule: '@daily'\n");
    T_ASSERT_TRUE(!cfg->cluster);
    T_ASSERT_TRUE(cfg->cluster_offline_skip); /* the safe default (issue 10) */
    T_ASSERT_EQ(5000u, cfg->claim_timeout_ms);
    T_ASSERT_TRUE(cfg->jobs[0].prefer == NULL);
    T_ASSERT_EQ(60000u, cfg->jobs[0].takeover_ms);

    T_OK("cluster: {enabled: true, when_offline: skip, claim_timeout: 250ms}\n" JOB
         "    schedule: '@daily'\n"
         "    prefer: pc-01\n"
         "    takeover_after: 5m\n");
    T_ASSERT_TRUE(cfg->cluster && cfg->cluster_offline_skip);
    T_ASSERT_EQ(250u, cfg->claim_timeout_ms);
    T_ASSERT_STREQ("pc-01", cfg->jobs[0].prefer);
    T_ASSERT_EQ(300000u, cfg->jobs[0].takeover_ms);

    T_OK("cluster: {enabled: true, when_offline: run}\n" JOB "    schedule: '@daily'\n");
    T_ASSERT_TRUE(cfg->cluster && !cfg->cluster_offline_skip);

    T_BAD("cluster:\n"
          "  enabled: yes\n"
          "  when_offline: maybe\n"
          "  claim_timeout: 2m\n"
          "  mode: x\n" JOB "    schedule: '@daily'\n"
          "    prefer: 'pc 01'\n");
    T_ERR(2, 12, "key 'cluster.enabled': expected true or false, got 'yes'");
    T_ERR(3, 17, "key 'cluster.when_offline': expected run or skip, got 'maybe'");
    T_ERR(4, 18, "key 'cluster.claim_timeout': expected a duration from 100ms to 1m, got '2m'");
    T_ERR(5, 3, "unknown key 'cluster.mode'");
    T_ERR(10, 13, "key 'jobs.x.prefer': 'pc 01': a node name is 1 to 64 letters");
    T_ASSERT_EQ(5, diag.nerrors);

    T_OK("jobs:\n  s:\n    command: run it\n    schedule: always\n    singleton: true\n");
    T_ASSERT_TRUE(cfg->jobs[0].singleton);
    T_BAD(JOB "    schedule: '@daily'\n    singleton: true\n");
    T_ERR(5, 16, "key 'jobs.x.singleton': singleton applies to services");
    T_BAD("defaults: {singleton: true}\n" JOB "    schedule: always\n");
    T_ERR(1, 12, "singleton");
}

TEST(registry_url_errors_never_show_values)
{
    setenv("MD_T_SECRET", "hunter2", 1);
    unsetenv("MD_T_UNSET");
    T_BAD("registry:\n"
          "  url: 'postgres://u:${MD_T_SECRET}@h/${MD_T_UNSET}'\n" JOB "    schedule: '@daily'\n");
    T_ERR(2, 39,
          "key 'registry.url': environment variable 'MD_T_UNSET' is not set (write "
          "${MD_T_UNSET:-default} to give a default)");
    T_ASSERT_EQ(1, diag.nerrors);
    T_BAD("registry:\n"
          "  url: postgres://u:hunter2@h/$db\n" JOB "    schedule: '@daily'\n");
    T_ERR(2, 31, "key 'registry.url': '$' must start ${NAME}");
    T_ASSERT_EQ(1, diag.nerrors);
    for (size_t i = 0; i < diag.n; i++)
        T_ASSERT_TRUE(strstr(diag.items[i].msg, "hunter2") == NULL);
    T_BAD("registry:\n"
          "  url: 'postgres://u:${MD_T_SECRET}@h/${MD_T_UNSET}'\n" JOB "    schedule: '@daily'\n");
    for (size_t i = 0; i < diag.n; i++)
        T_ASSERT_TRUE(strstr(diag.items[i].msg, "hunter2") == NULL);
}

TEST(signals)
{
    static const struct {
        const char *text;
        int sig;
    } ok[] = {{"TERM", SIGTERM}, {"SIGTERM", SIGTERM}, {"int", SIGINT},   {"HUP", SIGHUP},
              {"QUIT", SIGQUIT}, {"KILL", SIGKILL},    {"USR1", SIGUSR1}, {"SIGUSR2", SIGUSR2},
              {"9", 9},          {"'15'", 15}};
    char y[200];

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(y, sizeof y, JOB "    on: go\n    stop_signal: %s\n", ok[i].text);
        T_OK(y);
        T_ASSERT_EQ(ok[i].sig, cfg->jobs[0].stop_signal);
    }
    T_BAD(JOB "    on: go\n    stop_signal: 0\n");
    T_ERR(5, 18, "got '0'");
    T_BAD(JOB "    on: go\n    stop_signal: 65\n");
    T_ERR(5, 18, "got '65'");
}

TEST(durations)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } ok[] = {{"0", 0},          {"30", 30000},
              {"250ms", 250},    {"30s", 30000},
              {"5m", 300000},    {"1h30m", 5400000},
              {"2d", 172800000}, {"1m30s", 90000},
              {"1s500ms", 1500}, {"1d2h3m4s5ms", 93784005}};
    static const char *const bad[] = {"",
                                      "-5s",
                                      "5x",
                                      "1.5s",
                                      "30m1h",
                                      "5s5s",
                                      " 5s",
                                      "5s ",
                                      "s",
                                      "5 s",
                                      "+5",
                                      "99999999999999999999",
                                      "9999999999999999999d",
                                      "1h1h",
                                      "5mss"};
    uint64_t ms;

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ms = 12345;
        T_ASSERT_EQ(0, md_duration_parse(ok[i].text, &ms));
        T_ASSERT_EQ(ok[i].ms, ms);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (md_duration_parse(bad[i], &ms) != MD_EPARSE)
            T_FAIL("'%s' was accepted", bad[i]);
    }
}

/* ---- duplicates and names ----------------------------------------------------------------- */

TEST(duplicates)
{
    T_BAD("jobs:\n"
          "  a:\n"
          "    command: c\n"
          "    on: go\n"
          "    timeout: 1s\n"
          "    timeout: 2s\n"
          "    env: {A: 1, A: 2}\n"
          "  a:\n"
          "    command: d\n"
          "    on: go\n"
          "jobs: {}\n");
    T_ERR(6, 5, "duplicate key 'jobs.a.timeout' (first at line 5)");
    T_ERR(7, 17, "duplicate key 'jobs.a.env.A' (first at line 7)");
    T_ERR(8, 3, "duplicate job 'a' (first defined at line 2)");
    T_ERR(11, 1, "duplicate key 'jobs' (first at line 1)");
    T_ASSERT_EQ(4, diag.nerrors);
}

TEST(bad_names)
{
    T_BAD("jobs:\n"
          "  'has space':\n"
          "    command: c\n"
          "    on: go\n"
          "  ? [complex]\n"
          "  : {command: c, on: go}\n"
          "  "
          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:\n" /* 65 */
          "    command: c\n"
          "    on: go\n");
    T_ERR(2, 3, "bad job name 'has space'");
    T_ERR(5, 5, "keys under 'jobs' must be plain strings");
    T_ERR(7, 3, "bad job name 'aaaa");
    T_ASSERT_EQ(3, diag.nerrors);
}

/* ---- env ----------------------------------------------------------------------------------- */

TEST(env_expansion)
{
    const struct md_job *j;

    setenv("MD_T_HOST", "db.example", 1);
    setenv("MD_T_EMPTY", "", 1);
    unsetenv("MD_T_UNSET");
    T_OK(JOB "    on: go\n"
             "    env:\n"
             "      A: ${MD_T_HOST}\n"
             "      B: 'postgres://${MD_T_HOST}:5432/x'\n"
             "      C: ${MD_T_UNSET:-fallback}\n"
             "      D: ${MD_T_EMPTY:-used when empty}\n"
             "      E: ${MD_T_EMPTY}\n"
             "      F: cost $$5 and $${MD_T_HOST}\n"
             "      G:\n"
             "      H: 42\n");
    j = &cfg->jobs[0];
    T_ASSERT_EQ(8, j->nenv);
    T_ASSERT_STREQ("db.example", j->env[0].value);
    T_ASSERT_STREQ("postgres://db.example:5432/x", j->env[1].value);
    T_ASSERT_STREQ("fallback", j->env[2].value);
    T_ASSERT_STREQ("used when empty", j->env[3].value);
    T_ASSERT_STREQ("", j->env[4].value);
    T_ASSERT_STREQ("cost $5 and ${MD_T_HOST}", j->env[5].value);
    T_ASSERT_STREQ("", j->env[6].value);
    T_ASSERT_STREQ("42", j->env[7].value);
}

TEST(env_errors_never_show_values)
{
    setenv("MD_T_SECRET", "hunter2", 1);
    unsetenv("MD_T_UNSET");
    T_BAD(JOB "    on: go\n"
              "    env:\n"
              "      PASSWORD: ${MD_T_SECRET}\n"
              "      URL: 'x${MD_T_SECRET}y${MD_T_UNSET}'\n"
              "      B: $HOME\n"
              "      C: ${MD_T_SECRET\n"
              "      D: ${1BAD}\n"
              "      E: ${MD_T_SECRET:=x}\n"
              "      1X: a\n"
              "      MESHD_RUN_ID: a\n"
              "      F: {a: b}\n");
    T_ERR(7, 29, "key 'jobs.x.env.URL': environment variable 'MD_T_UNSET' is not set");
    T_ERR(8, 10, "key 'jobs.x.env.B': '$' must start ${NAME} or ${NAME:-default}");
    T_ERR(9, 10, "key 'jobs.x.env.C': unterminated ${");
    T_ERR(10, 10, "key 'jobs.x.env.D': bad variable name in ${...}");
    T_ERR(11, 23, "key 'jobs.x.env.E': expected ':-' after the variable name");
    T_ERR(12, 7, "key 'jobs.x.env.1X': bad environment variable name");
    T_ERR(13, 7, "key 'jobs.x.env.MESHD_RUN_ID': MESHD_RUN_ID is set by meshd for every run");
    T_ERR(14, 10, "key 'jobs.x.env.F': expected a string, got a mapping");
    T_ASSERT_EQ(8, diag.nerrors);
    for (size_t i = 0; i < diag.n; i++)
        T_ASSERT_TRUE(strstr(diag.items[i].msg, "hunter2") == NULL);
}

/* ---- defaults ------------------------------------------------------------------------------ */

TEST(defaults_inherit_and_override)
{
    const struct md_job *a, *b, *s, *e;

    T_OK("defaults:\n"
         "  timezone: Europe/Paris\n"
         "  timeout: 1h\n"
         "  restart: always\n"
         "  max_retries: 9\n"
         "  backoff: {initial: 2s, max: 2m}\n"
         "  env: {A: from-defaults, B: b}\n"
         "  jitter: 5s\n"
         "  concurrency: allow\n"
         "  failure_alert: none\n"
         "  config: {shared: true}\n"
         "jobs:\n"
         "  a:\n"
         "    command: c\n"
         "    schedule: '@hourly'\n"
         "  b:\n"
         "    command: c\n"
         "    schedule: '@hourly'\n"
         "    timezone: UTC\n"
         "    timeout: 5m\n"
         "    restart: on-failure\n"
         "    backoff: {max: 5m}\n"
         "    env: {A: mine, C: c}\n"
         "    failure_alert: info\n"
         "    config: {own: 1}\n"
         "  s:\n"
         "    command: c\n"
         "    schedule: always\n"
         "  e:\n"
         "    command: c\n"
         "    on: go\n");
    a = md_config_job(cfg, "a");
    b = md_config_job(cfg, "b");
    s = md_config_job(cfg, "s");
    e = md_config_job(cfg, "e");
    T_ASSERT_STREQ("Europe/Paris", md_tz_name(a->tz));
    T_ASSERT_EQ(3600000, a->timeout_ms);
    T_ASSERT_EQ(MD_RESTART_NEVER, a->restart); /* 'always' in defaults is for services only */
    T_ASSERT_EQ(9, a->max_retries);
    T_ASSERT_EQ(2000, a->backoff_initial_ms);
    T_ASSERT_EQ(120000, a->backoff_max_ms);
    T_ASSERT_EQ(60000, a->backoff_reset_ms);
    T_ASSERT_EQ(2, a->nenv);
    T_ASSERT_STREQ("from-defaults", a->env[0].value);
    T_ASSERT_EQ(5000, a->jitter_ms);
    T_ASSERT_EQ(MD_CONC_ALLOW, a->concurrency);
    T_ASSERT_EQ(MD_FAILURE_ALERT_NONE, a->failure_alert);
    T_ASSERT_STREQ("{\"shared\":true}", a->config_json);

    T_ASSERT_STREQ("UTC", md_tz_name(b->tz));
    T_ASSERT_EQ(300000, b->timeout_ms);
    T_ASSERT_EQ(MD_RESTART_ON_FAILURE, b->restart);
    T_ASSERT_EQ(2000, b->backoff_initial_ms); /* backoff merges key by key */
    T_ASSERT_EQ(300000, b->backoff_max_ms);
    T_ASSERT_EQ(3, b->nenv); /* env merges by name, the job wins */
    T_ASSERT_STREQ("A", b->env[0].name);
    T_ASSERT_STREQ("mine", b->env[0].value);
    T_ASSERT_STREQ("b", b->env[1].value);
    T_ASSERT_STREQ("C", b->env[2].name);
    T_ASSERT_STREQ("{\"own\":1}", b->config_json); /* config replaces */
    T_ASSERT_EQ(MD_FAILURE_ALERT_INFO, b->failure_alert);

    T_ASSERT_EQ(0, s->timeout_ms); /* timeout, jitter, concurrency skip services */
    T_ASSERT_EQ(0, s->jitter_ms);
    T_ASSERT_EQ(MD_CONC_FORBID, s->concurrency);
    T_ASSERT_EQ(MD_RESTART_ALWAYS, s->restart);
    T_ASSERT_EQ(MD_FAILURE_ALERT_NONE, s->failure_alert); /* every kind takes it */
    T_ASSERT_EQ(MD_FAILURE_ALERT_NONE, e->failure_alert);
    T_ASSERT_EQ(3600000, e->timeout_ms); /* event jobs take a timeout, not jitter */
    T_ASSERT_EQ(0, e->jitter_ms);
    T_ASSERT_EQ(MD_RESTART_NEVER, e->restart);
}

TEST(defaults_errors_reported_once_and_what_when_refused)
{
    T_BAD("defaults:\n"
          "  timeout: nope\n"
          "  command: c\n"
          "  on: go\n"
          "  backoff: {initial: 5m, max: 1m}\n"
          "  failure_alert: Critical\n"
          "jobs:\n"
          "  a: {command: c, on: go}\n"
          "  b: {command: c, on: go}\n");
    T_ERR(2, 12, "key 'defaults.timeout': expected a duration");
    T_ERR(3, 3, "key 'defaults.command': not allowed in defaults");
    T_ERR(4, 3, "key 'defaults.on': not allowed in defaults");
    T_ERR(5, 12, "key 'defaults.backoff': initial (300000ms) is greater than max (60000ms)");
    T_ERR(6, 18,
          "key 'defaults.failure_alert': expected one of critical, warning, info, none, got "
          "'Critical'");
    T_ASSERT_EQ(5, diag.nerrors);
}

/* ---- config -> JSON -------------------------------------------------------------------------- */

TEST(config_to_json)
{
    T_OK(JOB "    on: go\n"
             "    config:\n"
             "      int: 42\n"
             "      neg: -7\n"
             "      plus: +3\n"
             "      octal: 0o17\n"
             "      hex: 0x1F\n"
             "      big: 12345678901234567890\n"
             "      float: 1.5\n"
             "      exp: 1e3\n"
             "      dot: .5\n"
             "      inf: .inf\n"
             "      t: true\n"
             "      f: False\n"
             "      yes: yes\n"
             "      n: null\n"
             "      tilde: ~\n"
             "      empty:\n"
             "      qint: '42'\n"
             "      qtrue: \"true\"\n"
             "      str: hello world\n"
             "      esc: \"tab\\there \\\"q\\\"\"\n"
             "      list: [1, a, {b: [c]}]\n"
             "      nested: {deep: {deeper: []}}\n"
             "      block: |\n"
             "        line 1\n"
             "        line 2\n");
    T_ASSERT_STREQ("{\"int\":42,\"neg\":-7,\"plus\":3,\"octal\":15,\"hex\":31,"
                   "\"big\":12345678901234567890,\"float\":1.5,\"exp\":1e3,\"dot\":0.5,"
                   "\"inf\":\".inf\",\"t\":true,\"f\":false,\"yes\":\"yes\",\"n\":null,"
                   "\"tilde\":null,\"empty\":null,\"qint\":\"42\",\"qtrue\":\"true\","
                   "\"str\":\"hello world\",\"esc\":\"tab\\there \\\"q\\\"\","
                   "\"list\":[1,\"a\",{\"b\":[\"c\"]}],\"nested\":{\"deep\":{\"deeper\":[]}},"
                   "\"block\":\"line 1\\nline 2\\n\"}",
                   cfg->jobs[0].config_json);
    T_OK(JOB "    on: go\n    config: [1, 2]\n");
    T_ASSERT_STREQ("[1,2]", cfg->jobs[0].config_json);
    T_OK(JOB "    on: go\n    config: just text\n");
    T_ASSERT_STREQ("\"just text\"", cfg->jobs[0].config_json);
    T_OK(JOB "    on: go\n    config:\n");
    T_ASSERT_STREQ("null", cfg->jobs[0].config_json);
}

TEST(config_expands_variables)
{
    setenv("MD_T_URL", "postgres://u@h/db", 1);
    setenv("MD_T_ROWS", "500", 1);
    unsetenv("MD_T_UNSET");
    T_OK(JOB "    on: go\n"
             "    config:\n"
             "      url: ${MD_T_URL}\n"
             "      rows: ${MD_T_ROWS}\n"
             "      qrows: '${MD_T_ROWS}'\n"
             "      dflt: ${MD_T_UNSET:-x y}\n"
             "      empty: ${MD_T_UNSET:-}\n"
             "      sql: select $1, $$a$$, $tag$b$tag$ from t where c = '$$${MD_T_ROWS}'\n"
             "      lit: \"$${MD_T_URL}\"\n"
             "      list: [\"a${MD_T_ROWS}b\"]\n");
    T_ASSERT_STREQ("{\"url\":\"postgres://u@h/db\",\"rows\":500,\"qrows\":\"500\","
                   "\"dflt\":\"x y\",\"empty\":\"\","
                   "\"sql\":\"select $1, $$a$$, $tag$b$tag$ from t where c = '$${MD_T_ROWS}'\","
                   "\"lit\":\"${MD_T_URL}\",\"list\":[\"a500b\"]}",
                   cfg->jobs[0].config_json);
    T_BAD(JOB "    on: go\n    config:\n      a: [ok, \"x ${MD_T_UNSET}\"]\n      b: ${1x}\n");
    T_ERR(6, 18, "key 'jobs.x.config.a[1]': environment variable 'MD_T_UNSET' is not set");
    T_ERR(7, 10, "key 'jobs.x.config.b': bad variable name in ${...}");
    T_ASSERT_EQ(2, diag.nerrors);
    unsetenv("MD_T_URL");
    unsetenv("MD_T_ROWS");
}

TEST(config_errors)
{
    T_BAD(JOB "    on: go\n"
              "    config:\n"
              "      a: {x: 1, x: 2}\n"
              "      ? [k]\n"
              "      : v\n");
    T_ERR(6, 17, "duplicate key 'jobs.x.config.a.x' (first at line 6)");
    T_ERR(7, 9, "keys under 'jobs.x.config' must be plain strings");
    T_ASSERT_EQ(2, diag.nerrors);
}

/* ---- YAML-level problems -------------------------------------------------------------------- */

TEST(yaml_syntax_error_has_position)
{
    T_BAD("jobs:\n"
          "  x:\n"
          "    command: echo a: b\n");
    T_ERR(3, 20, "YAML syntax error: mapping values are not allowed in this context");
    T_ASSERT_EQ(1, diag.n);
    T_BAD("jobs:\n  x: [a, b\n");
    T_ASSERT_EQ(1, diag.nerrors);
    T_ASSERT_CONTAINS(diag.items[0].msg, "YAML syntax error");
    T_ASSERT_EQ(3, diag.items[0].line);
    T_BAD("jobs:\n  x: \"\x01\"\n"); /* libyaml's reader refuses control characters */
    T_ERR(2, 7, "YAML: control characters are not allowed");
    T_BAD("jobs:\n  x: \"\xff\"\n");
    T_ERR(2, 7, "YAML: invalid leading UTF-8 octet");
}

TEST(aliases_tags_documents_depth)
{
    char deep[400];
    size_t o = 0;

    T_BAD("defaults: &d {timeout: 1s}\n"
          "jobs:\n"
          "  x:\n"
          "    command: c\n"
          "    on: go\n"
          "    config: *d\n");
    T_ERR(6, 13, "YAML aliases (*name) are not supported");
    T_ASSERT_EQ(1, diag.nerrors);
    T_BAD(JOB "    on: !!binary aGk=\n");
    T_ERR(4, 9, "unsupported YAML tag");
    T_OK(JOB "    on: go\n    config: {a: !!str 1}\n");
    T_ASSERT_STREQ("{\"a\":\"1\"}", cfg->jobs[0].config_json);
    T_BAD("jobs: {}\n---\njobs: {}\n");
    T_ERR(2, 1, "only one YAML document is allowed");
    o += (size_t)snprintf(deep + o, sizeof deep - o, JOB "    on: go\n    config: ");
    for (int i = 0; i < 70; i++)
        deep[o++] = '[';
    deep[o++] = '\n';
    deep[o] = '\0';
    T_BAD(deep);
    T_ASSERT_EQ(1, diag.nerrors);
    T_ASSERT_CONTAINS(diag.items[0].msg, "YAML nesting is deeper than 64 levels");
}

TEST(size_cap)
{
    size_t n = MD_CONFIG_MAX_BYTES + 1;
    char *big = malloc(n + 1);

    T_ASSERT_TRUE(big != NULL);
    memset(big, '#', n);
    big[n] = '\0';
    reset();
    rc = md_config_parse(big, n, "big.yaml", &cfg, &diag);
    free(big);
    T_ASSERT_EQ(MD_ECONFIG, rc);
    T_ERR(0, 0, "larger than 1 MiB");
}

/* ---- many errors, ordering, printing -----------------------------------------------------------
 */

TEST(every_error_at_once_in_file_order)
{
    T_BAD("jobs:\n"
          "  b:\n"
          "    command: c\n"
          "    schedule: 0 99 * * *\n"
          "    timeout: x\n"
          "  a:\n"
          "    cmd: c\n"
          "    on: go\n"
          "node: {log_level: x}\n"
          "defaults: {timeout: y}\n");
    T_ASSERT_EQ(6, diag.nerrors);
    for (size_t i = 1; i < diag.n; i++)
        T_ASSERT_TRUE(diag.items[i - 1].line <= diag.items[i].line);
    T_ERR(4, 17, "key 'jobs.b.schedule'");
    T_ERR(5, 14, "key 'jobs.b.timeout'");
    T_ERR(6, 3, "key 'jobs.a': missing worker: or command:");
    T_ERR(7, 5, "unknown key 'jobs.a.cmd'");
    T_ERR(9, 19, "key 'node.log_level'");
    T_ERR(10, 21, "key 'defaults.timeout'");
}

TEST(diag_print_format)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    T_BAD(JOB "    on: go\n    timeout: 5x\n");
    md__diag_add(&diag, MD_DIAG_WARNING, 0, 0, "no position");
    md__diag_add(&diag, MD_DIAG_WARNING, 7, 0, "line only");
    f = open_memstream(&buf, &len);
    T_ASSERT_TRUE(f != NULL);
    md_diag_print(&diag, "conf/x.yaml", f);
    fclose(f);
    T_ASSERT_STREQ("conf/x.yaml:5:14: error: key 'jobs.x.timeout': expected a duration like "
                   "30s, 5m or 1h30m, got '5x'\n"
                   "conf/x.yaml: warning: no position\n"
                   "conf/x.yaml:7: warning: line only\n",
                   buf);
    free(buf);
    T_ASSERT_EQ(1, diag.nerrors);
    T_ASSERT_EQ(2, diag.nwarnings);
}

/* md_diag_format is what the daemon's reload log line and the reload API show: a diagnostic
 * without a position (a file that cannot be opened) is "FILE: error: ...", never "FILE:0:0:". */
TEST(diag_format_shows_only_the_known_position)
{
    struct md_diag_item line_only = {MD_DIAG_WARNING, 7, 0, (char *)"line only"};
    struct md_diag_item both = {MD_DIAG_ERROR, 3, 9, (char *)"both"};
    char *s;

    reset();
    rc = md_config_load("/nonexistent/m.yaml", &cfg, &diag);
    T_ASSERT_EQ(-ENOENT, rc);
    T_ASSERT_EQ(1, diag.n);
    s = md_diag_format(&diag.items[0], "/nonexistent/m.yaml");
    T_ASSERT_STREQ("/nonexistent/m.yaml: error: cannot open: No such file or directory", s);
    md_free(s);
    s = md_diag_format(&line_only, "m.yaml");
    T_ASSERT_STREQ("m.yaml:7: warning: line only", s);
    md_free(s);
    s = md_diag_format(&both, "m.yaml");
    T_ASSERT_STREQ("m.yaml:3:9: error: both", s);
    md_free(s);
}

TEST(user_unknown_is_a_warning)
{
    T_OK(JOB "    on: go\n    user: no-such-user-meshd-test\n");
    T_WARN(5, 11, "key 'jobs.x.user': no user 'no-such-user-meshd-test' on this machine");
    T_OK(JOB "    on: go\n    user: root\n");
    T_ASSERT_EQ(0, diag.n);
    T_OK(JOB "    on: go\n    user: '1000'\n"); /* a numeric uid is not looked up */
    T_ASSERT_EQ(0, diag.n);
}

/* ---- reload comparison ------------------------------------------------------------------------
 */

TEST(same_process_and_same_schedule)
{
    static const char base[] = "jobs:\n  x:\n    command: run it\n    schedule: '0 * * * *'\n";
    static const struct {
        const char *extra;
        bool same_process, same_schedule;
    } cases[] = {
        {"", true, true},
        {"    timezone: Europe/Paris\n", true, false},
        {"    jitter: 1s\n", true, false},
        {"    catch_up: 2h\n", true, false},
        {"    dst: skip\n", true, false},
        {"    env: {A: b}\n", false, true},
        {"    timeout: 1m\n", false, true},
        {"    workdir: /tmp\n", false, true},
        {"    stop_signal: INT\n", false, true},
        {"    stop_group: false\n", false, true},
        {"    config: {a: 1}\n", false, true},
        {"    backoff: {reset: 1s}\n", false, true},
        {"    ready: line\n", false, true},
        {"    enabled: false\n", false, true},
        /* Applies to running processes at once: no restart for it. */
        {"    log_limit: {burst: 5, interval: 1m}\n", true, true},
    };
    struct md_config *a = NULL;
    char y[300];

    T_OK(base);
    a = cfg;
    cfg = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(y, sizeof y, "%s%s", base, cases[i].extra);
        if (parse(y) != 0) {
            md_config_free(a);
            T_FAIL("case %zu does not parse", i);
        }
        if (md_job_same_process(&a->jobs[0], &cfg->jobs[0]) != cases[i].same_process ||
            md_job_same_schedule(&a->jobs[0], &cfg->jobs[0]) != cases[i].same_schedule) {
            md_config_free(a);
            T_FAIL("case %zu (%s): wrong comparison", i, cases[i].extra);
        }
    }
    T_OK("jobs:\n  x:\n    command: [run, it]\n    schedule: '0 */1 * * *'\n");
    T_ASSERT_TRUE(md_job_same_process(&a->jobs[0], &cfg->jobs[0]));   /* same argv */
    T_ASSERT_FALSE(md_job_same_schedule(&a->jobs[0], &cfg->jobs[0])); /* text differs */
    md_config_free(a);
}

/* ---- files ---------------------------------------------------------------------------------- */

TEST(load_errors)
{
    char path[] = "/tmp/test_config_XXXXXX";
    int fd;
    char *big;

    reset();
    rc = md_config_load("/nonexistent/meshd.yaml", &cfg, &diag);
    T_ASSERT_EQ(-ENOENT, rc);
    T_ASSERT_TRUE(cfg == NULL);
    T_ERR(0, 0, "cannot open: No such file or directory");

    fd = mkstemp(path);
    T_ASSERT_TRUE(fd >= 0);
    big = calloc(1, MD_CONFIG_MAX_BYTES + 10);
    memset(big, '\n', MD_CONFIG_MAX_BYTES + 10);
    T_ASSERT_EQ(MD_CONFIG_MAX_BYTES + 10, write(fd, big, MD_CONFIG_MAX_BYTES + 10));
    free(big);
    close(fd);
    reset();
    rc = md_config_load(path, &cfg, &diag);
    unlink(path);
    T_ASSERT_EQ(MD_ECONFIG, rc);
    T_ERR(0, 0, "the file is larger than 1 MiB");
}

static const char *source_dir(char *buf, size_t size)
{
    const char *env = getenv("MESHD_SOURCE_DIR");
    const char *p;

    if (env && *env)
        return env;
    /* __FILE__ is <root>/tests/unit/test_config.c when CMake passes absolute paths. */
    p = strstr(__FILE__, "tests/unit/test_config.c");
    if (__FILE__[0] != '/' || p == NULL || (size_t)(p - __FILE__) >= size)
        return NULL;
    memcpy(buf, __FILE__, (size_t)(p - __FILE__));
    buf[p - __FILE__] = '\0';
    return buf;
}

TEST(shipped_example_loads)
{
    char dir[4096], path[4200];
    const char *root = source_dir(dir, sizeof dir);

    if (root == NULL)
        T_SKIP("set MESHD_SOURCE_DIR to find conf/meshd.yaml");
    snprintf(path, sizeof path, "%s/conf/meshd.yaml", root);
    reset();
    rc = md_config_load(path, &cfg, &diag);
    if (rc != 0)
        dump();
    T_ASSERT_EQ(0, rc);
    T_ASSERT_EQ(0, diag.nerrors);
    T_ASSERT_TRUE(cfg->njobs >= 5);
    T_ASSERT_TRUE(md_config_job(cfg, "nightly-data-update") != NULL);
    T_ASSERT_STREQ("America/New_York", md_tz_name(md_config_job(cfg, "nightly-data-update")->tz));
}

static void cleanup_at_exit(void)
{
    reset();
}

int main(int argc, char **argv)
{
    atexit(cleanup_at_exit);
    return t_main(argc, argv);
}
