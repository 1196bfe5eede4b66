/* test_ctl_health.c - `meshctl health` against a real PostgreSQL: a fresh database per test
 * (test_health_<pid>_<n>, migrated, registry rows inserted with SQL), a temp config, and
 * ctl_health() run in-process with stdout captured in a temp file.
 *
 * MESHD_TEST_PG is a superuser conninfo on a throwaway cluster (ctest sets it). */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "ctl.h"
#include "meshd/md_alloc.h"
#include "meshd/md_migrate.h"
#include "t.h"

#include "pgtest.h"

static char url[512], cfg_path[64] = "", out_path[64] = "";
static char out[65536]; /* the captured stdout of the last run */

static void cleanup_files(void)
{
    if (cfg_path[0])
        unlink(cfg_path);
    if (out_path[0])
        unlink(out_path);
}

/* A migrated, empty database for this test; url points at it. */
static void fresh_db(void)
{
    pgt_fresh_db("test_health", true);
    PQsetNoticeProcessor(db, NULL, NULL);
    snprintf(url, sizeof url, "%s dbname=%s", getenv("MESHD_TEST_PG"), dbname);
}

static void write_config(const char *yaml)
{
    int fd;

    if (cfg_path[0] == '\0') {
        snprintf(cfg_path, sizeof cfg_path, "/tmp/test_health_%ld_XXXXXX", (long)getpid());
        fd = mkstemp(cfg_path);
    } else {
        fd = open(cfg_path, O_WRONLY | O_TRUNC);
    }
    T_ASSERT_TRUE(fd >= 0);
    T_ASSERT_EQ((ssize_t)strlen(yaml), write(fd, yaml, strlen(yaml)));
    close(fd);
}

/* node n1 with jobs daily (expect 26h) and hourly; job off is disabled. */
static const char *const std_config = "node:\n"
                                      "  name: n1\n"
                                      "jobs:\n"
                                      "  daily:\n"
                                      "    command: /bin/true\n"
                                      "    schedule: '@daily'\n"
                                      "    expect: {succeed_within: 26h}\n"
                                      "  hourly:\n"
                                      "    command: /bin/true\n"
                                      "    schedule: '@hourly'\n"
                                      "  off:\n"
                                      "    command: /bin/true\n"
                                      "    schedule: '@hourly'\n"
                                      "    enabled: false\n";

/* A healthy node n1: node row up with a fresh heartbeat, both enabled jobs registered, a
 * succeeded run of daily 2 hours ago, a resolved critical alert and an open warning. */
static void healthy_fleet(void)
{
    fresh_db();
    write_config(std_config);
    T_EXEC_OK("INSERT INTO agent_registry (kind, node, job, state, last_heartbeat) VALUES "
              "('node', 'n1', NULL, 'up', now() - interval '20 seconds'), "
              "('job', 'n1', 'daily', 'stopped', NULL), "
              "('job', 'n1', 'hourly', 'stopped', NULL), "
              "('node', 'n2', NULL, 'down', now() - interval '3 days')");
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, status, started_at, finished_at) VALUES "
              "('r1', 'daily', 'n1', 'succeeded', now() - interval '2h 1min', "
              "now() - interval '2 hours'), "
              "('r2', 'daily', 'n1', 'failed', now() - interval '1h', now() - interval '59min'), "
              "('r3', 'hourly', 'n1', 'running', now(), NULL)");
    T_EXEC_OK("INSERT INTO agent_alerts (node, job, key, severity, message, status, resolved_at) "
              "VALUES ('n1', 'daily', 'old', 'critical', 'was bad', 'resolved', now()), "
              "('n1', NULL, 'disk', 'warning', 'disk 85%', 'open', NULL)");
}

/* Runs ctl_health with args (NULL-terminated) and the given extra options, capturing stdout
 * in out[]; returns its exit code. */
static int run_health(const char *first, ...)
{
    char *argv[32];
    int argc = 0, saved, fd, rc;
    va_list ap;
    ssize_t n;

    argv[argc++] = (char *)"health";
    va_start(ap, first);
    for (const char *a = first; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;

    if (out_path[0] == '\0') {
        snprintf(out_path, sizeof out_path, "/tmp/test_health_out_%ld_XXXXXX", (long)getpid());
        fd = mkstemp(out_path);
    } else {
        fd = open(out_path, O_RDWR | O_TRUNC);
    }
    if (fd < 0)
        return -1;
    fflush(stdout);
    saved = dup(1);
    dup2(fd, 1);
    rc = ctl_health(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    fprintf(stderr, "---- meshctl health -> %d\n%s", rc, out);
    return rc;
}

#define HEALTH(...) run_health("--url", url, "--config", cfg_path, __VA_ARGS__, (const char *)NULL)

/* The check called name (and, for expect, job) in the --json output of the last run. */
static const cJSON *json_check(const cJSON *root, const char *name, const char *job)
{
    const cJSON *c;

    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "checks"))
    {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(c, "job");
        if (strcmp(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring, name) == 0 &&
            (job == NULL || (cJSON_IsString(j) && strcmp(j->valuestring, job) == 0)))
            return c;
    }
    return NULL;
}

TEST(healthy_fleet_exits_0)
{
    healthy_fleet();
    T_ASSERT_EQ(0, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "CHECK");
    T_ASSERT_CONTAINS(out, "database");
    T_ASSERT_CONTAINS(out, "node n1 and its 2 enabled jobs are registered");
    T_ASSERT_CONTAINS(out, "no open critical alert");
    T_ASSERT_CONTAINS(out, "expect daily");
    T_ASSERT_CONTAINS(out, "no slot executed more than once in the last 24h");
    T_ASSERT_CONTAINS(out, "healthy: 7 checks passed");
    T_ASSERT_TRUE(strstr(out, "FAIL") == NULL);
    T_ASSERT_TRUE(strstr(out, "password") == NULL);
}

TEST(stale_heartbeat_exits_1_with_the_reason)
{
    healthy_fleet();
    T_EXEC_OK("UPDATE agent_registry SET last_heartbeat = now() - interval '10 minutes' "
              "WHERE node = 'n1' AND job IS NULL");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "heartbeat is stale, last 10m ago (limit 5m)");
    T_ASSERT_CONTAINS(out, "UNHEALTHY: 1 of 7 checks failed");
    /* A longer --stale accepts it. */
    T_ASSERT_EQ(0, HEALTH("--stale", "15m"));
}

TEST(node_down_is_unhealthy)
{
    healthy_fleet();
    T_EXEC_OK("UPDATE agent_registry SET state = 'down' WHERE node = 'n1' AND job IS NULL");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "node n1 is down (stopped cleanly");
}

TEST(missing_job_row_exits_1)
{
    healthy_fleet();
    T_EXEC_OK("DELETE FROM agent_registry WHERE job = 'hourly'");
    T_ASSERT_EQ(1, HEALTH("--json"));
    cJSON *root = cJSON_Parse(out);
    T_ASSERT_TRUE(root != NULL);
    const cJSON *c = json_check(root, "registered", NULL);
    T_ASSERT_TRUE(c != NULL);
    T_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c, "ok")));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "missing_jobs");
    T_ASSERT_EQ(1, cJSON_GetArraySize(m));
    T_ASSERT_STREQ("hourly", cJSON_GetArrayItem(m, 0)->valuestring);
    T_ASSERT_CONTAINS(cJSON_GetObjectItemCaseSensitive(c, "detail")->valuestring,
                      "jobs not registered on this node: hourly");
    cJSON_Delete(root);
}

TEST(no_node_row_exits_1)
{
    healthy_fleet();
    T_EXEC_OK("DELETE FROM agent_registry WHERE node = 'n1'");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "no node row for n1; jobs not registered on this node: daily, hourly");
    T_ASSERT_CONTAINS(out, "node n1 has never reported");
}

TEST(open_critical_alert_exits_1)
{
    healthy_fleet();
    T_EXEC_OK("INSERT INTO agent_alerts (node, job, key, severity, message) "
              "VALUES ('n2', 'sync', 'sync.failing', 'critical', 'sync failed 3 times')");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "1 open critical alert: sync.failing [n2/sync] sync failed 3 times");
    T_ASSERT_EQ(1, HEALTH("--json"));
    cJSON *root = cJSON_Parse(out);
    T_ASSERT_TRUE(root != NULL);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(json_check(root, "alerts", NULL), "alerts");
    T_ASSERT_EQ(1, cJSON_GetArraySize(a));
    T_ASSERT_STREQ("sync.failing",
                   cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(a, 0), "key")->valuestring);
    cJSON_Delete(root);
}

TEST(a_long_list_names_ten_and_counts_the_rest)
{
    healthy_fleet();
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message) SELECT 'n2', 'k' || "
              "lpad(g::text, 2, '0'), 'critical', 'm' || g FROM generate_series(1, 12) g");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "12 open critical alerts:");
    T_ASSERT_CONTAINS(out, "; and 2 more");
    int shown = 0;
    for (const char *p = strstr(out, "[n2] m"); p != NULL; p = strstr(p + 1, "[n2] m"))
        shown++;
    T_ASSERT_EQ(10, shown);
}

TEST(expect_window_missed_and_met)
{
    healthy_fleet();
    /* The last success is 30 hours old: missed (the later failure does not count). */
    T_EXEC_OK("UPDATE agent_runs SET started_at = now() - interval '30h 1min', "
              "finished_at = now() - interval '30 hours' WHERE run_id = 'r1'");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "job daily: last success 30h ago");
    T_ASSERT_CONTAINS(out, "expected within 26h");
    /* A success on another node (cluster: any node may win the slot) meets it. */
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, status, started_at, finished_at) "
              "VALUES ('r9', 'daily', 'n2', 'succeeded', now() - interval '25h', "
              "now() - interval '25 hours')");
    T_ASSERT_EQ(0, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "job daily: last success 25h ago");
    /* Never succeeded at all. */
    T_EXEC_OK("DELETE FROM agent_runs WHERE status = 'succeeded'");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "job daily has never succeeded (expected within 26h)");
}

/* A slot executed by two lives (node n1, then n2 without a claim), recorded through
 * meshd_apply_events as meshd sends it: unhealthy, with the job, the slot, the nodes and the
 * lives; outside --duplicates-since it no longer counts. */
TEST(slot_executed_twice_exits_1)
{
    healthy_fleet();
    T_EXEC_OK("SELECT meshd_apply_events('["
              "{\"id\":\"n1/1\",\"type\":\"run_start\",\"at\":\"2025-06-01T03:00:01Z\","
              "\"node\":\"n1\",\"life\":\"aaaaaaaaaaaa\",\"exec\":\"aaaaaaaaaaaa-1\","
              "\"job\":\"hourly\",\"run_id\":\"hourly@20250601T030000Z\","
              "\"scheduled_for\":\"2025-06-01T03:00:00Z\","
              "\"started_at\":\"2025-06-01T03:00:01Z\"},"
              "{\"id\":\"n2/1\",\"type\":\"run_start\",\"at\":\"2025-06-01T03:00:01Z\","
              "\"node\":\"n2\",\"life\":\"bbbbbbbbbbbb\",\"exec\":\"bbbbbbbbbbbb-7\","
              "\"job\":\"hourly\",\"run_id\":\"hourly@20250601T030000Z\","
              "\"scheduled_for\":\"2025-06-01T03:00:00Z\","
              "\"started_at\":\"2025-06-01T03:00:01Z\"}]'::jsonb)");
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out,
                      "1 slot executed more than once in the last 24h: hourly "
                      "2025-06-01T03:00:00Z by 2 lives (aaaaaaaaaaaa, bbbbbbbbbbbb) on n1, n2");
    T_ASSERT_EQ(1, HEALTH("--json", "--duplicates-since", "1h"));
    cJSON *root = cJSON_Parse(out);
    T_ASSERT_TRUE(root != NULL);
    const cJSON *c = json_check(root, "duplicates", NULL);
    T_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c, "ok")));
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "duplicates"), 0);
    T_ASSERT_STREQ("hourly", cJSON_GetObjectItemCaseSensitive(d, "job")->valuestring);
    T_ASSERT_STREQ("2025-06-01T03:00:00Z",
                   cJSON_GetObjectItemCaseSensitive(d, "slot")->valuestring);
    T_ASSERT_EQ(2, cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(d, "nodes")));
    T_ASSERT_STREQ(
        "bbbbbbbbbbbb",
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(d, "lives"), 1)->valuestring);
    T_ASSERT_EQ(2, cJSON_GetObjectItemCaseSensitive(d, "executions")->valuedouble);
    cJSON_Delete(root);
    /* Two days ago: outside the default window of 24h, inside one of 3 days. */
    T_EXEC_OK("UPDATE agent_runs SET created_at = now() - interval '2 days' WHERE lives > 1");
    T_ASSERT_EQ(0, HEALTH("--stale", "5m"));
    T_ASSERT_EQ(1, HEALTH("--stale", "5m", "--duplicates-since", "3d"));
    T_ASSERT_EQ(2, HEALTH("--duplicates-since", "never"));
}

/* A bus message addressed to a node or job the registry does not know, pending for longer
 * than --stale: nobody will take it.  One for a known target, a fresh one, and one already
 * done do not count. */
TEST(message_for_an_unknown_target_exits_1)
{
    healthy_fleet();
    T_EXEC_OK("INSERT INTO agent_messages (type, to_node, to_job, status, created_at) VALUES "
              "('a.b', 'n1', NULL, 'pending', now() - interval '1h'), "          /* known node */
              "('a.b', NULL, 'daily', 'pending', now() - interval '1h'), "       /* known job */
              "('a.b', 'n1', 'hourly', 'pending', now() - interval '1h'), "      /* both known */
              "('a.b', 'gone', NULL, 'done', now() - interval '1h'), "           /* not pending */
              "('a.b', 'later', NULL, 'pending', now() - interval '1 minute'), " /* young */
              "('a.b', NULL, NULL, 'pending', now() - interval '1h')");          /* no target */
    T_ASSERT_EQ(0, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "no message pending for an unknown node or job (limit 5m)");
    T_EXEC_OK("INSERT INTO agent_messages (type, to_node, to_job, created_at) VALUES "
              "('a.b', 'pcx', NULL, now() - interval '2h'), "
              "('c.d', 'n2', 'daily', now() - interval '1h')"); /* daily is n1's */
    T_ASSERT_EQ(1, HEALTH("--stale", "5m"));
    T_ASSERT_CONTAINS(out, "2 messages pending for a node or job the registry does not know "
                           "(older than 5m):");
    T_ASSERT_CONTAINS(out, " a.b to_node=pcx; id ");
    T_ASSERT_CONTAINS(out, " c.d to_node=n2 to_job=daily");
    T_ASSERT_EQ(1, HEALTH("--json"));
    cJSON *root = cJSON_Parse(out);
    T_ASSERT_TRUE(root != NULL);
    const cJSON *c = json_check(root, "messages", NULL);
    T_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(c, "ok")));
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(c, "messages");
    T_ASSERT_EQ(2, cJSON_GetArraySize(m));
    T_ASSERT_STREQ(
        "pcx", cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 0), "to_node")->valuestring);
    T_ASSERT_TRUE(
        cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(m, 0), "to_job")));
    cJSON_Delete(root);
    /* The young one's target registers late: nothing changes; a longer --stale hides both. */
    T_ASSERT_EQ(0, HEALTH("--stale", "3h"));
}

TEST(slow_threshold)
{
    healthy_fleet();
    T_ASSERT_EQ(0, HEALTH("--slow", "10s"));
    T_ASSERT_CONTAINS(out, "latest-run query");
    T_ASSERT_CONTAINS(out, "(limit 10s)");
}

TEST(json_parses_and_has_the_fields)
{
    healthy_fleet();
    T_ASSERT_EQ(0, HEALTH("--json"));
    cJSON *root = cJSON_Parse(out);
    T_ASSERT_TRUE(root != NULL);
    T_ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "healthy")));
    const cJSON *checks = cJSON_GetObjectItemCaseSensitive(root, "checks");
    T_ASSERT_TRUE(cJSON_IsArray(checks));
    T_ASSERT_EQ(7, cJSON_GetArraySize(checks));
    const cJSON *c;
    cJSON_ArrayForEach(c, checks)
    {
        T_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "name")));
        T_ASSERT_TRUE(cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(c, "ok")));
        T_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "detail")));
    }
    T_ASSERT_TRUE(cJSON_IsNumber(
        cJSON_GetObjectItemCaseSensitive(json_check(root, "database", NULL), "query_ms")));
    T_ASSERT_STREQ("up",
                   cJSON_GetObjectItemCaseSensitive(json_check(root, "heartbeat", NULL), "state")
                       ->valuestring);
    T_ASSERT_TRUE(cJSON_IsNumber(
        cJSON_GetObjectItemCaseSensitive(json_check(root, "expect", "daily"), "age_ms")));
    cJSON_Delete(root);
}

TEST(unreachable_database_exits_2)
{
    write_config(std_config);
    T_ASSERT_EQ(2, run_health("--url",
                              "host=/nonexistent-meshd-dir port=1 user=u password=s3cret "
                              "connect_timeout=2",
                              "--config", cfg_path, (const char *)NULL));
    T_ASSERT_EQ(2, run_health("--url", "host=/nonexistent-meshd-dir password=s3cret", "--json",
                              "--config", cfg_path, (const char *)NULL));
    cJSON *root = cJSON_Parse(out);
    T_ASSERT_TRUE(root != NULL);
    T_ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root, "healthy")));
    T_ASSERT_TRUE(strstr(out, "s3cret") == NULL);
    cJSON_Delete(root);
}

TEST(could_not_check_exits_2)
{
    write_config(std_config);
    unsetenv("DATABASE_URL");
    /* No URL anywhere. */
    T_ASSERT_EQ(2, run_health("--config", cfg_path, (const char *)NULL));
    /* A bad config. */
    write_config("jobs:\n  x:\n    command: true\n");
    T_ASSERT_EQ(2,
                run_health("--url", "host=/nonexistent", "--config", cfg_path, (const char *)NULL));
    /* Usage. */
    T_ASSERT_EQ(2, run_health("--stale", "soon", (const char *)NULL));
    T_ASSERT_EQ(2, run_health("--bogus", (const char *)NULL));
}

TEST(url_from_registry_url_in_the_config)
{
    char *yaml;

    healthy_fleet();
    unsetenv("DATABASE_URL");
    yaml = md_xasprintf("%sregistry:\n  url: \"%s\"\n", std_config, url);
    write_config(yaml);
    md_free(yaml);
    T_ASSERT_EQ(0, run_health("--config", cfg_path, (const char *)NULL));
    T_ASSERT_CONTAINS(out, dbname);
}

int main(int argc, char **argv)
{
    pgt_extra_cleanup = cleanup_files;
    return t_main(argc, argv);
}
