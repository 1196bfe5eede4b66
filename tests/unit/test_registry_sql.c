/* test_registry_sql.c - meshd_apply_events() (sql/0002_apply_events.sql, 0003) against a real
 * PostgreSQL: every event type lands in its table with the right values, a replayed batch changes
 * nothing, malformed events and unknown types are skipped without failing the batch, run_end
 * without run_start, out-of-order job events, the (job, scheduled_for) claim between missed and
 * started runs, and 1000 mixed events in one call (timed).
 *
 * MESHD_TEST_PG is a superuser conninfo on a throwaway cluster (ctest sets it); every test works
 * in a database of its own, test_regsql_<pid>_<n>, dropped at the end.
 *
 * Events are written with ' for " (apply() swaps them) to keep the JSON readable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "meshd/md_alloc.h"
#include "meshd/md_migrate.h"
#include "t.h"

#include "pgtest.h"

static int nwarnings; /* WARNINGs the server sent on db since the last apply() */

static void count_warnings(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    (void)arg;
    if (sev && strcmp(sev, "WARNING") == 0) {
        nwarnings++;
        if (getenv("MESHD_TEST_VERBOSE"))
            fprintf(stderr, "  server: %s", PQresultErrorMessage(res));
    }
}

/* A migrated, empty database for this test, counting the server's warnings. */
static void fresh_db(void)
{
    pgt_fresh_db("test_regsql", true);
    PQsetNoticeReceiver(db, count_warnings, NULL);
}

/* SELECT meshd_apply_events($1) with json (' turned into "); returns the function's result, or
 * -1 on error (printed).  Resets nwarnings first. */
static long long apply(const char *json)
{
    char *text = md_xstrdup(json);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    const char *params[1] = {text};
    nwarnings = 0;
    PGresult *r =
        PQexecParams(db, "SELECT meshd_apply_events($1::jsonb)", 1, NULL, params, NULL, NULL, 0);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "  meshd_apply_events: %s", PQresultErrorMessage(r));
    PQclear(r);
    md_free(text);
    return v;
}

/* The single value of a one-row, one-column query, as a number (-1 on error). */
static long long scalar(const char *sql)
{
    PGresult *r = PQexec(db, sql);
    long long v = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = atoll(PQgetvalue(r, 0, 0));
    else
        fprintf(stderr, "  scalar(%s): %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return v;
}

/* A fingerprint of every row of every registry table (md5 of their text forms), into buf. */
static void snapshot(char *buf, size_t len)
{
    PGresult *r = PQexec(
        db, "SELECT md5(concat_ws('#', "
            "(SELECT string_agg(t::text, '|' ORDER BY id) FROM agent_registry t), "
            "(SELECT string_agg(t::text, '|' ORDER BY id) FROM agent_runs t), "
            "(SELECT string_agg(t::text, '|' ORDER BY id) FROM agent_metrics t), "
            "(SELECT string_agg(t::text, '|' ORDER BY id) FROM agent_alerts t), "
            "(SELECT string_agg(t::text, '|' ORDER BY id) FROM agent_messages t), "
            "(SELECT string_agg(t::text, '|' ORDER BY event_id) FROM meshd_applied_events t)))");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "  snapshot: %s", PQresultErrorMessage(r));
        PQclear(r);
        T_FAIL("snapshot failed");
    }
    snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

static long long total_rows(void)
{
    return scalar("SELECT (SELECT count(*) FROM agent_registry) + (SELECT count(*) FROM "
                  "agent_runs) + (SELECT count(*) FROM agent_metrics) + (SELECT count(*) FROM "
                  "agent_alerts) + (SELECT count(*) FROM agent_messages)");
}

#define RUN1 "backup@20250601T030000Z"

/* One event of every type (and a second raise of the same alert key). */
static const char *every_type =
    "[{'id':'pc/1','type':'node','at':'2025-06-01T03:00:00Z','node':'pc','env':'prod',"
    "'state':'up','pid':100},"
    "{'id':'pc/2','type':'heartbeat','at':'2025-06-01T03:00:30Z','node':'pc'},"
    "{'id':'pc/3','type':'job','at':'2025-06-01T03:00:01Z','node':'pc','job':'backup',"
    "'state':'RUNNING','pid':200,'next_run_at':'2025-06-02T03:00:00+02:00','restarts':2},"
    "{'id':'pc/4','type':'run_start','at':'2025-06-01T03:00:01Z','node':'pc','job':'backup',"
    "'run_id':'" RUN1 "','scheduled_for':'2025-06-01T03:00:00Z',"
    "'started_at':'2025-06-01T03:00:01.250Z','pid':200,'attempt':1},"
    "{'id':'pc/5','type':'progress','at':'2025-06-01T03:00:10Z','node':'pc','job':'backup',"
    "'run_id':'" RUN1 "','done':5,'total':10,'unit':'files'},"
    "{'id':'pc/6','type':'metric','at':'2025-06-01T03:00:11Z','node':'pc','job':'backup',"
    "'run_id':'" RUN1 "','name':'rows','value':42.5},"
    "{'id':'pc/7','type':'alert','at':'2025-06-01T03:00:12Z','node':'pc','job':'backup',"
    "'key':'disk:/var','severity':'warning','message':'91% full'},"
    "{'id':'pc/8','type':'alert','at':'2025-06-01T03:00:13Z','node':'pc','job':'backup',"
    "'key':'disk:/var','severity':'critical','message':'99% full'},"
    "{'id':'pc/9','type':'message','at':'2025-06-01T03:00:14Z','node':'pc','job':'backup',"
    "'run_id':'" RUN1 "','msg_type':'backup.done','payload':{'files':[1,2]}},"
    "{'id':'pc/10','type':'run_end','at':'2025-06-01T03:01:01Z','node':'pc','job':'backup',"
    "'run_id':'" RUN1 "','finished_at':'2025-06-01T03:01:01Z','status':'failed',"
    "'exit_code':3,'signal':null,'reason':'exit 3','output_tail':'oops\\nbad',"
    "'summary':{'files':10},'duration_ms':59750},"
    "{'id':'pc/11','type':'run_missed','at':'2025-06-01T04:00:05Z','node':'pc','job':'backup',"
    "'scheduled_for':'2025-06-01T06:00:00+02:00','reason':'meshd was down'},"
    "{'id':'pc/12','type':'run_skipped','at':'2025-06-01T05:00:02Z','node':'pc','job':'backup',"
    "'scheduled_for':'2025-06-01T05:00:00Z','reason':'still running'},"
    "{'id':'pc/13','type':'resolve','at':'2025-06-01T05:10:00Z','node':'pc','key':'disk:/var'},"
    "{'id':'pc/14','type':'resolve','at':'2025-06-01T05:11:00Z','node':'pc','key':'none-open'}]";

TEST(every_event_type_lands)
{
    fresh_db();
    /* 14 events; resolving a key with no open alert changes nothing. */
    T_ASSERT_EQ(13, apply(every_type));
    T_ASSERT_EQ(0, nwarnings);

    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE kind = 'node' AND node = "
                          "'pc' AND job IS NULL AND state = 'up' AND pid = 100 AND environment "
                          "= 'prod' AND last_heartbeat = '2025-06-01T03:00:30Z' AND event_id = "
                          "'pc/1'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE kind = 'job' AND node = "
                          "'pc' AND job = 'backup' AND state = 'running' AND pid = 200 AND "
                          "restarts = 2 AND next_run_at = '2025-06-02T01:00:00Z' AND "
                          "last_heartbeat = '2025-06-01T03:00:10Z' AND progress->>'done' = '5' "
                          "AND progress->>'total' = '10' AND progress->>'unit' = 'files' AND "
                          "progress->>'run_id' = '" RUN1 "' AND last_run_id = "
                          "'backup@20250601T050000Z' AND last_run_status = 'skipped' AND "
                          "last_run_at = '2025-06-01T05:00:02Z'"));
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_registry"));

    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = '" RUN1 "' AND job = "
                          "'backup' AND node = 'pc' AND scheduled_for = '2025-06-01T03:00:00Z' "
                          "AND started_at = '2025-06-01T03:00:01.25Z' AND finished_at = "
                          "'2025-06-01T03:01:01Z' AND duration_ms = 59750 AND status = 'failed' "
                          "AND exit_code = 3 AND signal IS NULL AND reason = 'exit 3' AND "
                          "output_tail = E'oops\\nbad' AND summary = '{\"files\": 10}' AND pid "
                          "= 200 AND attempt = 1 AND event_id = 'pc/10'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = "
                          "'backup@20250601T040000Z' AND scheduled_for = '2025-06-01T04:00:00Z' "
                          "AND status = 'missed' AND reason = 'meshd was down' AND started_at IS "
                          "NULL AND finished_at IS NULL"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = "
                          "'backup@20250601T050000Z' AND status = 'skipped' AND reason = "
                          "'still running'"));
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_runs"));

    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_metrics WHERE node = 'pc' AND job = "
                          "'backup' AND run_id = '" RUN1 "' AND name = 'rows' AND value = 42.5 "
                          "AND created_at = '2025-06-01T03:00:11Z' AND event_id = 'pc/6'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_alerts WHERE key = 'disk:/var' AND node = "
                          "'pc' AND job = 'backup' AND count = 2 AND severity = 'critical' AND "
                          "message = '99% full' AND opened_at = '2025-06-01T03:00:12Z' AND "
                          "status = 'resolved' AND resolved_at = '2025-06-01T05:10:00Z' AND "
                          "event_id = 'pc/7' AND last_event_id = 'pc/13'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_alerts"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE type = 'backup.done' AND "
                          "payload = '{\"files\": [1, 2]}' AND source = 'pc/backup' AND status "
                          "= 'pending' AND run_id = '" RUN1 "' AND created_at = "
                          "'2025-06-01T03:00:14Z' AND event_id = 'pc/9'"));
}

TEST(replayed_batch_changes_nothing)
{
    char before[64], after[64];

    fresh_db();
    T_ASSERT_EQ(13, apply(every_type));
    long long rows = total_rows();
    snapshot(before, sizeof before);

    /* The whole batch again, as after a crash between COMMIT and the journal ack. */
    T_ASSERT_EQ(0, apply(every_type));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    T_ASSERT_EQ(rows, total_rows());
    T_ASSERT_EQ(2, scalar("SELECT count FROM agent_alerts WHERE key = 'disk:/var'"));

    /* A replayed alert after the key was resolved and raised again: the new alert is neither
     * bumped nor resolved by the replayed raise and resolve. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/15','type':'alert','at':'2025-06-01T06:00:00Z','node':'pc',"
                         "'key':'disk:/var','severity':'info','message':'again'}]"));
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(every_type));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_alerts WHERE key = 'disk:/var' AND status "
                          "= 'open' AND count = 1 AND message = 'again'"));
}

TEST(malformed_events_are_skipped_others_applied)
{
    fresh_db();
    T_ASSERT_EQ(3, apply("[{'id':'pc/1','type':'metric','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'name':'a','value':1},"
                         /* missing value */
                         "{'id':'pc/2','type':'metric','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'name':'b'},"
                         /* a timestamp without an offset */
                         "{'id':'pc/3','type':'metric','at':'2025-06-01T03:00:00','node':'pc',"
                         "'name':'c','value':1},"
                         /* exit code out of range: a CHECK constraint */
                         "{'id':'pc/4','type':'run_end','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'job':'j','run_id':'r4','finished_at':'2025-06-01T03:00:00Z',"
                         "'status':'failed','exit_code':999},"
                         /* not a number */
                         "{'id':'pc/5','type':'job','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'job':'j','state':'RUNNING','pid':'x'},"
                         /* an id that is not node/number, and an event that is not an object */
                         "{'id':'pc','type':'heartbeat','at':'2025-06-01T03:00:00Z','node':'pc'},"
                         "42,"
                         "{'id':'pc/8','type':'message','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'msg_type':'t','payload':null},"
                         "{'id':'pc/9','type':'job','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'job':'j','state':'BACKOFF'}]"));
    T_ASSERT_EQ(6, nwarnings);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_metrics"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_metrics WHERE name = 'a'"));
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM agent_runs"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE payload = 'null'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE job = 'j' AND state = "
                          "'backoff' AND pid IS NULL AND restarts = 0"));
    /* Not an array at all: the call fails (a daemon bug, not an event to skip). */
    T_ASSERT_EQ(-1, apply("{'id':'pc/1'}"));
    T_ASSERT_EQ(0, apply("[]"));
}

TEST(unknown_type_is_skipped)
{
    fresh_db();
    T_ASSERT_EQ(1, apply("[{'id':'pc/1','type':'teleport','at':'2025-06-01T03:00:00Z',"
                         "'node':'pc','to':'mars'},"
                         "{'id':'pc/2','type':'heartbeat','at':'2025-06-01T03:00:00Z',"
                         "'node':'pc'}]"));
    T_ASSERT_EQ(1, nwarnings);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE kind = 'node' AND state = "
                          "'up' AND last_heartbeat = '2025-06-01T03:00:00Z'"));
}

TEST(run_end_without_run_start)
{
    fresh_db();
    T_ASSERT_EQ(2, apply("[{'id':'pc/1','type':'job','at':'2025-06-01T02:00:00Z','node':'pc',"
                         "'job':'scrape','state':'STOPPED'},"
                         "{'id':'pc/7','type':'run_end','at':'2025-06-01T03:00:05Z','node':'pc',"
                         "'job':'scrape','run_id':'scrape@20250601T030000Z',"
                         "'scheduled_for':'2025-06-01T03:00:00Z',"
                         "'started_at':'2025-06-01T03:00:01Z',"
                         "'finished_at':'2025-06-01T03:00:05.5Z','status':'timed_out',"
                         "'signal':9,'reason':'timeout 4s'}]"));
    /* No duration_ms in the event: computed from the wall-clock times. */
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = "
                          "'scrape@20250601T030000Z' AND status = 'timed_out' AND signal = 9 AND "
                          "exit_code IS NULL AND duration_ms = 4500 AND scheduled_for = "
                          "'2025-06-01T03:00:00Z' AND started_at = '2025-06-01T03:00:01Z'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE job = 'scrape' AND "
                          "last_run_id = 'scrape@20250601T030000Z' AND last_run_status = "
                          "'timed_out'"));
    /* The lost run_start turns up late (replayed): it does not reopen the finished run. */
    T_ASSERT_EQ(0, apply("[{'id':'pc/6','type':'run_start','at':'2025-06-01T03:00:01Z',"
                         "'node':'pc','job':'scrape','run_id':'scrape@20250601T030000Z',"
                         "'scheduled_for':'2025-06-01T03:00:00Z',"
                         "'started_at':'2025-06-01T03:00:01Z','pid':55}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE status = 'timed_out'"));
    /* A retry of the same slot (a later run_start) reopens it, clearing the first result. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/9','type':'run_start','at':'2025-06-01T03:00:15Z',"
                         "'node':'pc','job':'scrape','run_id':'scrape@20250601T030000Z',"
                         "'scheduled_for':'2025-06-01T03:00:00Z',"
                         "'started_at':'2025-06-01T03:00:15Z','pid':56,'attempt':2}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE status = 'running' AND attempt "
                          "= 2 AND pid = 56 AND finished_at IS NULL AND signal IS NULL AND "
                          "reason IS NULL AND duration_ms IS NULL"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE last_run_status = "
                          "'running' AND last_run_at = '2025-06-01T03:00:15Z'"));
}

TEST(job_events_out_of_order)
{
    fresh_db();
    T_ASSERT_EQ(1, apply("[{'id':'pc/20','type':'job','at':'2025-06-01T03:00:02Z','node':'pc',"
                         "'job':'svc','state':'RUNNING','pid':300,'restarts':1}]"));
    /* Older (by time), delivered late: ignored. */
    T_ASSERT_EQ(0, apply("[{'id':'pc/10','type':'job','at':'2025-06-01T03:00:01Z','node':'pc',"
                         "'job':'svc','state':'STARTING','pid':300,'restarts':1}]"));
    /* Same time, lower journal id: older too. */
    T_ASSERT_EQ(0, apply("[{'id':'pc/19','type':'job','at':'2025-06-01T03:00:02Z','node':'pc',"
                         "'job':'svc','state':'STARTING','pid':300,'restarts':1}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE job = 'svc' AND state = "
                          "'running' AND event_id = 'pc/20'"));
    /* Same time, higher id (two changes within one clock tick, in one batch): both apply. */
    T_ASSERT_EQ(2, apply("[{'id':'pc/21','type':'job','at':'2025-06-01T03:00:02Z','node':'pc',"
                         "'job':'svc','state':'STOPPING','pid':300,'restarts':1},"
                         "{'id':'pc/22','type':'job','at':'2025-06-01T03:00:02Z','node':'pc',"
                         "'job':'svc','state':'EXITED','pid':null,'restarts':1}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE job = 'svc' AND state = "
                          "'exited' AND pid IS NULL AND event_id = 'pc/22'"));
    /* Node events and heartbeats follow the same rule; an old heartbeat does not go back. */
    T_ASSERT_EQ(2, apply("[{'id':'pc/30','type':'node','at':'2025-06-01T03:10:00Z','node':'pc',"
                         "'state':'down'},"
                         "{'id':'pc/31','type':'heartbeat','at':'2025-06-01T03:20:00Z',"
                         "'node':'pc'}]"));
    T_ASSERT_EQ(0, apply("[{'id':'pc/29','type':'node','at':'2025-06-01T03:05:00Z','node':'pc',"
                         "'state':'up','pid':1},"
                         "{'id':'pc/28','type':'heartbeat','at':'2025-06-01T03:15:00Z',"
                         "'node':'pc'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE kind = 'node' AND state = "
                          "'down' AND last_heartbeat = '2025-06-01T03:20:00Z'"));
}

/* The claim: one row per (job, scheduled_for), whichever event records the slot first. */
TEST(slot_claim_between_missed_and_started)
{
    fresh_db();
    /* Missed first, then a run_start for the same slot (cannot happen by design): the slot stays
     * missed, with a warning. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/1','type':'run_missed','at':'2025-06-01T03:30:00Z',"
                         "'node':'pc','job':'b','scheduled_for':'2025-06-01T03:00:00Z',"
                         "'reason':'outside the catch-up window'}]"));
    T_ASSERT_EQ(0, apply("[{'id':'pc/2','type':'run_start','at':'2025-06-01T03:30:01Z',"
                         "'node':'pc','job':'b','run_id':'b@20250601T030000Z',"
                         "'scheduled_for':'2025-06-01T03:00:00Z',"
                         "'started_at':'2025-06-01T03:30:01Z','pid':9},"
                         "{'id':'pc/3','type':'run_end','at':'2025-06-01T03:30:02Z',"
                         "'node':'pc','job':'b','run_id':'b@20250601T030000Z',"
                         "'finished_at':'2025-06-01T03:30:02Z','status':'succeeded',"
                         "'exit_code':0}]"));
    T_ASSERT_EQ(2, nwarnings);
    /* Another node's run of the slot under another run id: the claim holds. */
    T_ASSERT_EQ(0, apply("[{'id':'nas/1','type':'run_start','at':'2025-06-01T03:00:01Z',"
                         "'node':'nas','job':'b','run_id':'b-other',"
                         "'scheduled_for':'2025-06-01T03:00:00Z',"
                         "'started_at':'2025-06-01T03:00:01Z'}]"));
    T_ASSERT_EQ(1, nwarnings);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE status = 'missed'"));

    /* Started first, then a missed/skipped record of that slot: the run stays. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/10','type':'run_start','at':'2025-06-01T04:00:01Z',"
                         "'node':'pc','job':'b','run_id':'b@20250601T040000Z',"
                         "'scheduled_for':'2025-06-01T04:00:00Z',"
                         "'started_at':'2025-06-01T04:00:01Z','pid':10}]"));
    T_ASSERT_EQ(0, apply("[{'id':'pc/11','type':'run_skipped','at':'2025-06-01T04:00:02Z',"
                         "'node':'pc','job':'b','scheduled_for':'2025-06-01T04:00:00Z',"
                         "'reason':'overlap'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE scheduled_for = "
                          "'2025-06-01T04:00:00Z' AND status = 'running'"));
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_runs"));
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* 1000 events: 200 runs, each start + end + two metrics + one of job/heartbeat/progress/alert/
 * message; timed, then replayed (timed too). */
TEST(thousand_mixed_events_in_one_call)
{
    size_t cap = 1024 * 1024, len = 0;
    char *buf = md_xmalloc(cap);
    char at[32], at2[32];
    int id = 0;
    char before[64], after[64];

    fresh_db();
    len += (size_t)snprintf(buf + len, cap - len, "[");
    for (int i = 0; i < 200; i++) {
        int s = i * 10; /* seconds after 03:00:00 */
        snprintf(at, sizeof at, "2025-06-01T%02d:%02d:%02dZ", 3 + s / 3600, s / 60 % 60, s % 60);
        snprintf(at2, sizeof at2, "2025-06-01T%02d:%02d:%02dZ", 3 + (s + 5) / 3600,
                 (s + 5) / 60 % 60, (s + 5) % 60);
        const char *job = (i % 4 == 0)   ? "alpha"
                          : (i % 4 == 1) ? "beta"
                          : (i % 4 == 2) ? "gamma"
                                         : "delta";
        len += (size_t)snprintf(
            buf + len, cap - len,
            "%s{'id':'pc/%d','type':'run_start','at':'%s','node':'pc','job':'%s',"
            "'run_id':'%s@%d','scheduled_for':'%s','started_at':'%s','pid':%d,'attempt':1},"
            "{'id':'pc/%d','type':'metric','at':'%s','node':'pc','job':'%s','run_id':'%s@%d',"
            "'name':'rows','value':%d},"
            "{'id':'pc/%d','type':'metric','at':'%s','node':'pc','job':'%s','run_id':'%s@%d',"
            "'name':'bytes','value':%d.5},",
            i ? "," : "", id + 1, at, job, job, i, at, at, 1000 + i, id + 2, at2, job, job, i, i,
            id + 3, at2, job, job, i, i * 7);
        id += 3;
        switch (i % 5) {
        case 0:
            len += (size_t)snprintf(buf + len, cap - len,
                                    "{'id':'pc/%d','type':'job','at':'%s','node':'pc','job':"
                                    "'%s','state':'RUNNING','pid':%d,'restarts':0},",
                                    ++id, at, job, 1000 + i);
            break;
        case 1:
            len += (size_t)snprintf(buf + len, cap - len,
                                    "{'id':'pc/%d','type':'heartbeat','at':'%s','node':'pc'},",
                                    ++id, at2);
            break;
        case 2:
            len += (size_t)snprintf(buf + len, cap - len,
                                    "{'id':'pc/%d','type':'progress','at':'%s','node':'pc',"
                                    "'job':'%s','run_id':'%s@%d','done':%d,'total':null,"
                                    "'unit':null},",
                                    ++id, at2, job, job, i, i);
            break;
        case 3:
            len += (size_t)snprintf(buf + len, cap - len,
                                    "{'id':'pc/%d','type':'alert','at':'%s','node':'pc',"
                                    "'job':'%s','key':'slow:%s','severity':'warning',"
                                    "'message':'run %d was slow'},",
                                    ++id, at2, job, job, i);
            break;
        default:
            len += (size_t)snprintf(buf + len, cap - len,
                                    "{'id':'pc/%d','type':'message','at':'%s','node':'pc',"
                                    "'job':'%s','run_id':'%s@%d','msg_type':'done',"
                                    "'payload':{'i':%d}},",
                                    ++id, at2, job, job, i, i);
            break;
        }
        len += (size_t)snprintf(buf + len, cap - len,
                                "{'id':'pc/%d','type':'run_end','at':'%s','node':'pc',"
                                "'job':'%s','run_id':'%s@%d','finished_at':'%s',"
                                "'status':'%s','exit_code':%d,'duration_ms':%d,"
                                "'output_tail':'line %d'}",
                                ++id, at2, job, job, i, at2, i % 7 ? "succeeded" : "failed",
                                i % 7 ? 0 : 1, 5000 + i, i);
    }
    len += (size_t)snprintf(buf + len, cap - len, "]");
    T_ASSERT_TRUE(len < cap - 1);
    T_ASSERT_EQ(1000, id);

    double t0 = now_ms();
    long long n = apply(buf);
    double t1 = now_ms();
    T_ASSERT_EQ(1000, n);
    snapshot(before, sizeof before);
    double t2 = now_ms();
    T_ASSERT_EQ(0, apply(buf));
    double t3 = now_ms();
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    fprintf(stderr, "  1000 events (%zu bytes): %.1f ms; replayed: %.1f ms\n", len, t1 - t0,
            t3 - t2);
    md_free(buf);

    T_ASSERT_EQ(200, scalar("SELECT count(*) FROM agent_runs WHERE finished_at IS NOT NULL"));
    T_ASSERT_EQ(400, scalar("SELECT count(*) FROM agent_metrics"));
    T_ASSERT_EQ(40, scalar("SELECT count(*) FROM agent_messages"));
    T_ASSERT_EQ(40, scalar("SELECT sum(count) FROM agent_alerts"));
    T_ASSERT_EQ(4, scalar("SELECT count(*) FROM agent_alerts"));
    T_ASSERT_EQ(29, scalar("SELECT count(*) FROM agent_runs WHERE status = 'failed'"));
    T_ASSERT_TRUE(t1 - t0 < 10000); /* a sanity bound only; the time is printed above */
}

/* meshd_prune forgets old applied alert/resolve ids too. */
TEST(prune_forgets_applied_ids)
{
    fresh_db();
    T_ASSERT_EQ(1, apply("[{'id':'pc/1','type':'alert','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'key':'k','severity':'info','message':'m'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM meshd_applied_events"));
    T_ASSERT_EQ(0, scalar("SELECT meshd_prune('1 day')"));
    T_ASSERT_EQ(1, scalar("WITH u AS (UPDATE meshd_applied_events SET applied_at = now() - "
                          "interval '2 days' RETURNING 1) SELECT count(*) FROM u"));
    T_ASSERT_EQ(1, scalar("SELECT meshd_prune('1 day')"));
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM meshd_applied_events"));
}

/* 0003: a run_end's CPU time and peak memory land on the run; a replay changes nothing; a bad
 * figure is dropped (the run is still recorded); the next attempt clears them; a run_end whose
 * run_start was lost carries them too. */
TEST(run_usage_figures)
{
    char before[64], after[64];
    static const char *run =
        "[{'id':'pc/1','type':'run_start','at':'2025-06-01T03:00:01Z','node':'pc','job':'j',"
        "'run_id':'j@20250601T030000Z','scheduled_for':'2025-06-01T03:00:00Z',"
        "'started_at':'2025-06-01T03:00:01Z','pid':7},"
        "{'id':'pc/2','type':'run_end','at':'2025-06-01T03:00:09Z','node':'pc','job':'j',"
        "'run_id':'j@20250601T030000Z','finished_at':'2025-06-01T03:00:09Z',"
        "'status':'succeeded','exit_code':0,'duration_ms':8000,'cpu_usec':312345,"
        "'cpu_user_usec':300000,'cpu_system_usec':12345,'memory_peak_bytes':4194304}]";

    fresh_db();
    T_ASSERT_EQ(2, apply(run));
    T_ASSERT_EQ(0, nwarnings);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030000Z' "
                          "AND status = 'succeeded' AND cpu_usec = 312345 AND cpu_user_usec = "
                          "300000 AND cpu_system_usec = 12345 AND memory_peak_bytes = 4194304"));
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(run));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);

    /* Without figures (meshd without cgroups) and with bad ones: NULL, the run is recorded. */
    T_ASSERT_EQ(2, apply("[{'id':'pc/3','type':'run_end','at':'2025-06-01T04:00:09Z','node':'pc',"
                         "'job':'j','run_id':'r-none','finished_at':'2025-06-01T04:00:09Z',"
                         "'status':'failed','exit_code':1},"
                         "{'id':'pc/4','type':'run_end','at':'2025-06-01T04:00:10Z','node':'pc',"
                         "'job':'j','run_id':'r-bad','finished_at':'2025-06-01T04:00:10Z',"
                         "'status':'failed','exit_code':1,'cpu_usec':-5,'cpu_user_usec':'7',"
                         "'cpu_system_usec':1.5,'memory_peak_bytes':1e30}]"));
    T_ASSERT_EQ(0, nwarnings);
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_runs WHERE run_id IN ('r-none', 'r-bad') "
                          "AND status = 'failed' AND cpu_usec IS NULL AND cpu_user_usec IS NULL "
                          "AND cpu_system_usec IS NULL AND memory_peak_bytes IS NULL"));

    /* A retry of the slot: the first attempt's figures go with its result. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/5','type':'run_start','at':'2025-06-01T03:01:00Z',"
                         "'node':'pc','job':'j','run_id':'j@20250601T030000Z',"
                         "'scheduled_for':'2025-06-01T03:00:00Z',"
                         "'started_at':'2025-06-01T03:01:00Z','pid':8,'attempt':2}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030000Z' "
                          "AND status = 'running' AND cpu_usec IS NULL AND memory_peak_bytes IS "
                          "NULL"));
    /* Its end without a memory figure (no memory controller). */
    T_ASSERT_EQ(1, apply("[{'id':'pc/6','type':'run_end','at':'2025-06-01T03:01:05Z','node':'pc',"
                         "'job':'j','run_id':'j@20250601T030000Z',"
                         "'finished_at':'2025-06-01T03:01:05Z','status':'succeeded',"
                         "'exit_code':0,'cpu_usec':20,'cpu_user_usec':15,'cpu_system_usec':5}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030000Z' "
                          "AND cpu_usec = 20 AND cpu_user_usec = 15 AND cpu_system_usec = 5 AND "
                          "memory_peak_bytes IS NULL"));

    /* run_start lost: the run is recorded from its end, figures included. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/7','type':'run_end','at':'2025-06-01T05:00:05Z','node':'pc',"
                         "'job':'j','run_id':'r-lost','started_at':'2025-06-01T05:00:00Z',"
                         "'finished_at':'2025-06-01T05:00:05Z','status':'stopped',"
                         "'signal':15,'cpu_usec':9000000000,'cpu_user_usec':8000000000,"
                         "'cpu_system_usec':1000000000,'memory_peak_bytes':8589934592}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'r-lost' AND status "
                          "= 'stopped' AND cpu_usec = 9000000000 AND memory_peak_bytes = "
                          "8589934592"));
}

T_MAIN()
