/* test_registry_sql.c - meshd_apply_events() (sql/0002_apply_events.sql, 0003) against a real
 * PostgreSQL: every event type lands in its table with the right values, a replayed batch changes
 * nothing, malformed events and unknown types are skipped without failing the batch, run_end
 * without run_start, out-of-order job events, the (job, scheduled_for) claim between missed and
 * started runs, and 1000 mixed events in one call (timed).  And the bus (0005): a message
 * event's priority and target, and the claim bus.c sends (its order, its targets, its plan).
 * And the alert messages (0006): one per open, repeat and resolve, none for a replay, and
 * their retention.
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
#include "bus_internal.h"
#include "meshd/md_migrate.h"
#include "registry_internal.h"
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

/* ---- issue 10: executions, ownership, reconciliation, lock order --------------------------- */

/* The text of a one-row, one-column query (empty on error or no row), into buf. */
static const char *text_of(const char *sql, char *buf, size_t len)
{
    PGresult *r = PQexec(db, sql);

    buf[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "  text_of(%s): %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return buf;
}

/* One claim batch as meshd sends it (sup_reg_claim_sql), on conn c: slots given as
 * "job@YYYY-MM-DDTHH:MM:SSZ"; the answers ("t"/"f" per slot, in the order given) into won. */
static void claim_send(PGconn *c, const char *node, const char *life, int n,
                       const char *const *slots)
{
    char ids[1024] = "{", jobs[1024] = "{", whens[1024] = "{";
    const char *params[7];

    for (int i = 0; i < n; i++) {
        const char *at = strchr(slots[i], '@');
        char job[64], when[40], id[128];
        snprintf(job, sizeof job, "%.*s", (int)(at - slots[i]), slots[i]);
        snprintf(when, sizeof when, "%s", at + 1);
        /* the run id: job@YYYYMMDDTHHMMSSZ */
        snprintf(id, sizeof id, "%s@%.4s%.2s%.2sT%.2s%.2s%.2sZ", job, when, when + 5, when + 8,
                 when + 11, when + 14, when + 17);
        snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s\"%s\"", i ? "," : "", id);
        snprintf(jobs + strlen(jobs), sizeof jobs - strlen(jobs), "%s\"%s\"", i ? "," : "", job);
        snprintf(whens + strlen(whens), sizeof whens - strlen(whens), "%s\"%s\"", i ? "," : "",
                 when);
    }
    strcat(ids, "}");
    strcat(jobs, "}");
    strcat(whens, "}");
    params[0] = ids;
    params[1] = jobs;
    params[2] = whens;
    params[3] = node;
    params[4] = life;
    params[5] = "2025-06-01T03:00:00.5Z";
    params[6] = "100";
    T_ASSERT_EQ(1, PQsendQueryParams(c, sup_reg_claim_sql, 7, NULL, params, NULL, NULL, 0));
}

/* The answers of a claim sent with claim_send: "t"/"f" per slot into won (n chars + NUL), the
 * SQLSTATE of a failure into state ("" when it succeeded). */
static void claim_recv(PGconn *c, char *won, size_t wonlen, char *state, size_t statelen)
{
    PGresult *r;

    won[0] = state[0] = '\0';
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            for (int i = 0; i < PQntuples(r) && (size_t)i + 1 < wonlen; i++) {
                won[i] = PQgetvalue(r, i, 1)[0];
                won[i + 1] = '\0';
            }
        } else {
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(state, statelen, "%s", s ? s : "?");
            fprintf(stderr, "  claim failed: %s", PQresultErrorMessage(r));
        }
        PQclear(r);
    }
}

/* One claim, synchronously, on db; returns the answers ("tf..."). */
static const char *claim(const char *node, const char *life, int n, const char *const *slots,
                         char *won, size_t len)
{
    char state[16];

    claim_send(db, node, life, n, slots);
    claim_recv(db, won, len, state, sizeof state);
    if (state[0] != '\0')
        T_FAIL("claim failed: SQLSTATE %s", state);
    return won;
}

/* A second session on the test database, with a short deadlock timeout so that a deadlock is
 * detected quickly, and a lock timeout so that a test never hangs. */
static PGconn *session(void)
{
    PGconn *c = connect_db();

    T_ASSERT_TRUE(c != NULL);
    PQsetNoticeProcessor(c, NULL, NULL);
    PGresult *r = PQexec(c, "SET deadlock_timeout = '100ms'; SET lock_timeout = '30s'");
    T_ASSERT_EQ(PGRES_COMMAND_OK, PQresultStatus(r));
    PQclear(r);
    return c;
}

static void session_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fprintf(stderr, "  %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    T_ASSERT_TRUE(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK);
}

/* Waits (up to 20 s) until the backend of c waits for a lock. */
static void wait_blocked(PGconn *c)
{
    char q[160], buf[32];

    snprintf(q, sizeof q,
             "SELECT coalesce(wait_event_type, '-') FROM pg_stat_activity WHERE "
             "pid = %d",
             PQbackendPID(c));
    for (int i = 0; i < 2000; i++) {
        if (strcmp(text_of(q, buf, sizeof buf), "Lock") == 0)
            return;
        usleep(10000);
    }
    T_FAIL("session %d never waited for a lock", PQbackendPID(c));
}

/* The SQLSTATE of the statement sent on c ("" when it succeeded); result rows are dropped. */
static void recv_state(PGconn *c, char *state, size_t len)
{
    PGresult *r;

    state[0] = '\0';
    while ((r = PQgetResult(c)) != NULL) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(state, len, "%s", s ? s : "?");
            fprintf(stderr, "  session %d: %s", PQbackendPID(c), PQresultErrorMessage(r));
        }
        PQclear(r);
    }
}

/* Sends an event batch (' for ") on c without waiting. */
static void apply_send(PGconn *c, const char *json)
{
    char *text = md_xstrdup(json);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    const char *params[1] = {text};
    T_ASSERT_EQ(1, PQsendQueryParams(c, "SELECT meshd_apply_events($1::jsonb)", 1, NULL, params,
                                     NULL, NULL, 0));
    md_free(text);
}

#define SLOT_X "2025-06-01T03:00:00Z"
#define SLOT_Y "2025-06-01T03:00:01Z"
#define RUN_X "j@20250601T030000Z"
#define RUN_Y "j@20250601T030001Z"

/* Two nodes claim the same slots in opposite orders: a's batch (k at X, a gate, k at Y) and
 * b's (k at Y, another gate, k at X).  Each is held at its gate (a row another session inserted
 * and has not committed) after its first insert; then the gates open.  Inserted in the order
 * given, a holds X and waits for Y while b holds Y and waits for X: a deadlock (40P01), which
 * meshd used to take for "registry unreachable".  meshd_claim inserts in (job, run id) order:
 * no deadlock, and each slot is won exactly once. */
TEST(claims_in_opposite_orders_do_not_deadlock)
{
    static const char *const sa[] = {"k@" SLOT_X, "gate1@" SLOT_X, "k@" SLOT_Y};
    static const char *const sb[] = {"k@" SLOT_Y, "gate2@" SLOT_X, "k@" SLOT_X};
    char wa[8], wb[8], ea[16], eb[16];

    fresh_db();
    PGconn *g1 = session(), *g2 = session(), *a = session(), *b = session();
    session_exec(g1, "BEGIN");
    session_exec(g1, "INSERT INTO agent_runs (run_id, job, node, scheduled_for, status) VALUES "
                     "('gate1@20250601T030000Z', 'gate1', 'z', '" SLOT_X "', 'running')");
    session_exec(g2, "BEGIN");
    session_exec(g2, "INSERT INTO agent_runs (run_id, job, node, scheduled_for, status) VALUES "
                     "('gate2@20250601T030000Z', 'gate2', 'z', '" SLOT_X "', 'running')");
    claim_send(a, "a", "aaaaaaaaaaaa", 3, sa);
    wait_blocked(a);
    claim_send(b, "b", "bbbbbbbbbbbb", 3, sb);
    wait_blocked(b);
    session_exec(g1, "COMMIT");
    session_exec(g2, "COMMIT");
    claim_recv(a, wa, sizeof wa, ea, sizeof ea);
    claim_recv(b, wb, sizeof wb, eb, sizeof eb);
    PQfinish(g1);
    PQfinish(g2);
    PQfinish(a);
    PQfinish(b);
    T_ASSERT_STREQ("", ea);
    T_ASSERT_STREQ("", eb);
    /* The gates were taken by z; k at X and k at Y went to exactly one node each. */
    T_ASSERT_EQ('f', wa[1]);
    T_ASSERT_EQ('f', wb[1]);
    T_ASSERT_TRUE((wa[0] == 't') != (wb[2] == 't'));
    T_ASSERT_TRUE((wa[2] == 't') != (wb[0] == 't'));
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_runs WHERE job = 'k'"));
}

/* The claim's answer: won once; lost to the holder; a claim sent again by the same life (its
 * answer was lost with the connection) is won again until the run starts; the claim row carries
 * the claiming life and the node's order key. */
TEST(claim_rows_carry_the_claiming_life)
{
    static const char *const s[] = {"k@" SLOT_X, "k@" SLOT_Y};
    char won[8], buf[200];

    fresh_db();
    T_ASSERT_STREQ("tt", claim("a", "aaaaaaaaaaaa", 2, s, won, sizeof won));
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_runs WHERE node = 'a' AND life = "
                          "'aaaaaaaaaaaa' AND status = 'running' AND exec_id IS NULL AND "
                          "event_at = '2025-06-01T03:00:00.5Z' AND event_seq = 100"));
    T_ASSERT_STREQ("ff", claim("b", "bbbbbbbbbbbb", 2, s, won, sizeof won));
    T_ASSERT_STREQ("tt", claim("a", "aaaaaaaaaaaa", 2, s, won, sizeof won));
    /* Another life of the same node (a restart) does not get it. */
    T_ASSERT_STREQ("ff", claim("a", "cccccccccccc", 2, s, won, sizeof won));
    /* Once a's run of X started, X is no longer won, even by a. */
    T_ASSERT_EQ(1, apply("[{'id':'a/101','type':'run_start','at':'2025-06-01T03:00:00.6Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'k',"
                         "'run_id':'k@20250601T030000Z','scheduled_for':'" SLOT_X "',"
                         "'started_at':'2025-06-01T03:00:00.6Z','pid':5}]"));
    T_ASSERT_STREQ("ft", claim("a", "aaaaaaaaaaaa", 2, s, won, sizeof won));
    PGresult *r = PQexecParams(db,
                               "SELECT holder FROM meshd_claim('{k@20250601T030000Z}', "
                               "'{k}', '{" SLOT_X "}', 'b', 'bbbbbbbbbbbb', now(), 1)",
                               0, NULL, NULL, NULL, NULL, 0);
    T_ASSERT_EQ(PGRES_TUPLES_OK, PQresultStatus(r));
    snprintf(buf, sizeof buf, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    T_ASSERT_STREQ("a (running)", buf);
}

/* Event batches of two nodes writing the same runs in opposite orders: a closes X then Y, b
 * (which ran both without a claim) starts Y then X.  b waits at Y (held by a third session),
 * then a takes X and waits at Y behind b; when Y is let go, b needs X: a deadlock, unless both
 * batches take the runs in the same order.  Likewise two alerts raised in opposite orders. */
static void opposite_batches(const char *hold, const char *batch_a, const char *batch_b)
{
    char ea[16], eb[16];
    PGconn *g = session(), *a = session(), *b = session();

    session_exec(g, "BEGIN");
    session_exec(g, hold);
    apply_send(b, batch_b);
    wait_blocked(b);
    apply_send(a, batch_a);
    wait_blocked(a);
    session_exec(g, "COMMIT");
    recv_state(a, ea, sizeof ea);
    recv_state(b, eb, sizeof eb);
    PQfinish(g);
    PQfinish(a);
    PQfinish(b);
    T_ASSERT_STREQ("", ea);
    T_ASSERT_STREQ("", eb);
}

TEST(event_batches_in_opposite_orders_do_not_deadlock)
{
    fresh_db();
    T_ASSERT_EQ(2, apply("[{'id':'a/101','type':'run_start','at':'2025-06-01T03:00:00.6Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j',"
                         "'run_id':'" RUN_X "','scheduled_for':'" SLOT_X "',"
                         "'started_at':'2025-06-01T03:00:00.6Z','pid':5},"
                         "{'id':'a/102','type':'run_start','at':'2025-06-01T03:00:01.6Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'j',"
                         "'run_id':'" RUN_Y "','scheduled_for':'" SLOT_Y "',"
                         "'started_at':'2025-06-01T03:00:01.6Z','pid':6}]"));
    opposite_batches("SELECT 1 FROM agent_runs WHERE run_id = '" RUN_Y "' FOR UPDATE",
                     "[{'id':'a/103','type':'run_end','at':'2025-06-01T03:00:05Z','node':'a',"
                     "'life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j','run_id':'" RUN_X "',"
                     "'finished_at':'2025-06-01T03:00:05Z','status':'succeeded','exit_code':0},"
                     "{'id':'a/104','type':'run_end','at':'2025-06-01T03:00:06Z','node':'a',"
                     "'life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'j','run_id':'" RUN_Y "',"
                     "'finished_at':'2025-06-01T03:00:06Z','status':'succeeded','exit_code':0}]",
                     "[{'id':'b/7','type':'run_start','at':'2025-06-01T03:00:06Z','node':'b',"
                     "'life':'bbbbbbbbbbbb','exec':'bbbbbbbbbbbb-1','job':'j','run_id':'" RUN_Y "',"
                     "'scheduled_for':'" SLOT_Y "','started_at':'2025-06-01T03:00:06Z','pid':70},"
                     "{'id':'b/8','type':'run_start','at':'2025-06-01T03:00:06.1Z','node':'b',"
                     "'life':'bbbbbbbbbbbb','exec':'bbbbbbbbbbbb-2','job':'j','run_id':'" RUN_X "',"
                     "'scheduled_for':'" SLOT_X
                     "','started_at':'2025-06-01T03:00:06.1Z','pid':71}]");
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_runs WHERE job = 'j' AND node = 'a' AND "
                          "status = 'succeeded' AND lives = 2 AND executions = 2"));

    T_ASSERT_EQ(2, apply("[{'id':'a/1','type':'alert','at':'2025-06-01T03:00:00Z','node':'a',"
                         "'key':'k1','severity':'info','message':'m'},"
                         "{'id':'a/2','type':'alert','at':'2025-06-01T03:00:00Z','node':'a',"
                         "'key':'k2','severity':'info','message':'m'}]"));
    opposite_batches("SELECT 1 FROM agent_alerts WHERE key = 'k2' FOR UPDATE",
                     "[{'id':'a/3','type':'alert','at':'2025-06-01T03:00:01Z','node':'a',"
                     "'key':'k1','severity':'info','message':'m'},"
                     "{'id':'a/4','type':'alert','at':'2025-06-01T03:00:01Z','node':'a',"
                     "'key':'k2','severity':'info','message':'m'}]",
                     "[{'id':'b/3','type':'alert','at':'2025-06-01T03:00:01Z','node':'b',"
                     "'key':'k2','severity':'info','message':'m'},"
                     "{'id':'b/4','type':'alert','at':'2025-06-01T03:00:01Z','node':'b',"
                     "'key':'k1','severity':'info','message':'m'}]");
    T_ASSERT_EQ(6, scalar("SELECT sum(count) FROM agent_alerts"));
}

/* The slot of node a (claimed by life A, run and finished) is run again by node b (it could
 * not claim: when_offline run) and by a's next life C (a restart that re-ran it): the row stays
 * a's, every execution is kept, and the run counts 3 lives.  A retry by a's own life is the
 * same run's next attempt.  Before 0004 every later start overwrote the row. */
TEST(second_execution_never_overwrites_the_first)
{
    static const char *const s[] = {"j@" SLOT_Y};
    static const char *const a_run =
        "[{'id':'a/11','type':'run_start','at':'2025-06-01T03:00:00.6Z','node':'a',"
        "'life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j','run_id':'" RUN_X "',"
        "'scheduled_for':'" SLOT_X "','started_at':'2025-06-01T03:00:00.6Z','pid':5,"
        "'attempt':1},"
        "{'id':'a/12','type':'run_end','at':'2025-06-01T03:00:02Z','node':'a',"
        "'life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j','run_id':'" RUN_X "',"
        "'finished_at':'2025-06-01T03:00:02Z','status':'failed','exit_code':3,"
        "'output_tail':'from a','duration_ms':1400,'scheduled_for':'" SLOT_X "'}]";
    char won[8], before[64], after[64], buf[200];

    fresh_db();
    T_ASSERT_EQ(2, apply(a_run));
    /* b ran it too, later; its end comes after a's. */
    long long nb = apply("[{'id':'b/5','type':'run_start','at':'2025-06-01T03:00:00.5Z',"
                         "'node':'b','life':'bbbbbbbbbbbb','exec':'bbbbbbbbbbbb-9','job':'j',"
                         "'run_id':'" RUN_X "','scheduled_for':'" SLOT_X "',"
                         "'started_at':'2025-06-01T03:00:00.5Z','pid':90,'attempt':1},"
                         "{'id':'b/6','type':'run_end','at':'2025-06-01T03:00:09Z','node':'b',"
                         "'life':'bbbbbbbbbbbb','exec':'bbbbbbbbbbbb-9','job':'j',"
                         "'run_id':'" RUN_X "','finished_at':'2025-06-01T03:00:09Z',"
                         "'status':'succeeded','exit_code':0,'output_tail':'from b'}]");
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = '" RUN_X "' AND node "
                          "= 'a' AND status = 'failed' AND exit_code = 3 AND pid = 5 AND "
                          "output_tail = 'from a'"));
    T_ASSERT_EQ(2, nb);
    /* a's next life re-runs it after a restart. */
    T_ASSERT_EQ(1, apply("[{'id':'a/20','type':'run_start','at':'2025-06-01T03:00:03Z',"
                         "'node':'a','life':'cccccccccccc','exec':'cccccccccccc-1','job':'j',"
                         "'run_id':'" RUN_X "','scheduled_for':'" SLOT_X "',"
                         "'started_at':'2025-06-01T03:00:03Z','pid':6,'attempt':1}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = '" RUN_X "' AND node "
                          "= 'a' AND life = 'aaaaaaaaaaaa' AND exec_id = 'aaaaaaaaaaaa-1' AND "
                          "status = 'failed' AND exit_code = 3 AND pid = 5 AND output_tail = "
                          "'from a' AND duration_ms = 1400 AND executions = 3 AND lives = 3"));
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_executions WHERE run_id = '" RUN_X "'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_executions WHERE exec_id = "
                          "'bbbbbbbbbbbb-9' AND node = 'b' AND life = 'bbbbbbbbbbbb' AND status "
                          "= 'succeeded' AND exit_code = 0 AND started_at = "
                          "'2025-06-01T03:00:00.5Z' AND duration_ms = 8500"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_executions WHERE exec_id = "
                          "'cccccccccccc-1' AND node = 'a' AND status = 'running'"));
    T_ASSERT_STREQ("failed", text_of("SELECT status FROM agent_executions WHERE exec_id = "
                                     "'aaaaaaaaaaaa-1'",
                                     buf, sizeof buf));
    /* Replays change nothing. */
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(a_run));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_executions"));

    /* a's own retry: the row follows it (attempt 2, its exec), a 4th execution, still 3 lives. */
    T_ASSERT_EQ(1, apply("[{'id':'a/13','type':'run_start','at':'2025-06-01T03:00:04Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'j',"
                         "'run_id':'" RUN_X "','scheduled_for':'" SLOT_X "',"
                         "'started_at':'2025-06-01T03:00:04Z','pid':7,'attempt':2}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = '" RUN_X "' AND "
                          "exec_id = 'aaaaaaaaaaaa-2' AND attempt = 2 AND status = 'running' AND "
                          "exit_code IS NULL AND executions = 4 AND lives = 3"));

    /* Slot Y, claimed by a: b's start lands before a's, and is a duplicate all the same. */
    T_ASSERT_STREQ("t", claim("a", "aaaaaaaaaaaa", 1, s, won, sizeof won));
    T_ASSERT_EQ(1, apply("[{'id':'b/7','type':'run_start','at':'2025-06-01T03:00:01.1Z',"
                         "'node':'b','life':'bbbbbbbbbbbb','exec':'bbbbbbbbbbbb-10','job':'j',"
                         "'run_id':'" RUN_Y "','scheduled_for':'" SLOT_Y "',"
                         "'started_at':'2025-06-01T03:00:01.1Z','pid':91}]"));
    T_ASSERT_EQ(1, apply("[{'id':'a/30','type':'run_start','at':'2025-06-01T03:00:01.2Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-3','job':'j',"
                         "'run_id':'" RUN_Y "','scheduled_for':'" SLOT_Y "',"
                         "'started_at':'2025-06-01T03:00:01.2Z','pid':8}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = '" RUN_Y "' AND node "
                          "= 'a' AND exec_id = 'aaaaaaaaaaaa-3' AND pid = 8 AND executions = 2 "
                          "AND lives = 2"));
}

/* abandoned and unknown are final statuses a run_end may carry (0004). */
TEST(abandoned_and_unknown_statuses)
{
    fresh_db();
    T_ASSERT_EQ(2, apply("[{'id':'a/1','type':'run_end','at':'2025-06-01T03:00:05Z','node':'a',"
                         "'life':'cccccccccccc','exec':'aaaaaaaaaaaa-4','job':'j',"
                         "'run_id':'r1','finished_at':'2025-06-01T03:00:05Z',"
                         "'status':'abandoned','reason':'the process was gone'},"
                         "{'id':'a/2','type':'run_end','at':'2025-06-01T03:00:06Z','node':'a',"
                         "'life':'cccccccccccc','exec':'aaaaaaaaaaaa-5','job':'j',"
                         "'run_id':'r2','finished_at':'2025-06-01T03:00:06Z',"
                         "'status':'unknown','reason':'adopted; exit status not known'}]"));
    T_ASSERT_EQ(0, nwarnings);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'r1' AND status = "
                          "'abandoned' AND life = 'aaaaaaaaaaaa' AND exec_id = 'aaaaaaaaaaaa-4'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'r2' AND status = "
                          "'unknown' AND exit_code IS NULL"));
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_executions WHERE life = 'aaaaaaaaaaaa' "
                          "AND status IN ('abandoned', 'unknown')"));
}

/* runs_reconciled: what a's earlier life A left 'running' is closed as abandoned, except the
 * executions the new life C adopted; C's own claims (sent on the claims connection, maybe
 * applied before the event) and other nodes' runs are left alone; a replay, and a late
 * runs_reconciled of an earlier life, change nothing. */
TEST(runs_reconciled_abandons_what_a_previous_life_left)
{
    static const char *const sa[] = {"j@2025-06-01T03:00:00Z", "j@2025-06-01T03:00:01Z",
                                     "j@2025-06-01T03:00:02Z", "j@2025-06-01T03:00:03Z"};
    static const char *const sb[] = {"j@2025-06-01T03:00:04Z"};
    const char *params[7];
    char won[8], before[64], after[64], buf[200];

    fresh_db();
    T_ASSERT_EQ(1, apply("[{'id':'a/1','type':'job','at':'2025-06-01T02:59:00Z','node':'a',"
                         "'job':'j','state':'STOPPED'}]"));
    T_ASSERT_STREQ("tttt", claim("a", "aaaaaaaaaaaa", 4, sa, won, sizeof won));
    T_ASSERT_STREQ("t", claim("b", "bbbbbbbbbbbb", 1, sb, won, sizeof won));
    /* 03:00:00 claimed, never started; :01 started (gone); :02 started (adopted); :03 done. */
    T_ASSERT_EQ(4, apply("[{'id':'a/101','type':'run_start','at':'2025-06-01T03:00:01.1Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j',"
                         "'run_id':'j@20250601T030001Z','started_at':'2025-06-01T03:00:01.1Z'},"
                         "{'id':'a/102','type':'run_start','at':'2025-06-01T03:00:02.1Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'j',"
                         "'run_id':'j@20250601T030002Z','started_at':'2025-06-01T03:00:02.1Z'},"
                         "{'id':'a/103','type':'run_start','at':'2025-06-01T03:00:03.1Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-3','job':'j',"
                         "'run_id':'j@20250601T030003Z','started_at':'2025-06-01T03:00:03.1Z'},"
                         "{'id':'a/104','type':'run_end','at':'2025-06-01T03:00:03.5Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-3','job':'j',"
                         "'run_id':'j@20250601T030003Z','finished_at':'2025-06-01T03:00:03.5Z',"
                         "'status':'succeeded','exit_code':0}]"));
    /* A's duplicate of b's slot, still running when A died. */
    T_ASSERT_EQ(1, apply("[{'id':'a/105','type':'run_start','at':'2025-06-01T03:00:04.1Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-4','job':'j',"
                         "'run_id':'j@20250601T030004Z','started_at':'2025-06-01T03:00:04.1Z'}]"));
    /* a restarts as life C, whose catch-up claim lands before its runs_reconciled. */
    params[0] = "{j@20250601T030010Z}";
    params[1] = "{j}";
    params[2] = "{2025-06-01T03:00:10Z}";
    params[3] = "a";
    params[4] = "cccccccccccc";
    params[5] = "2025-06-01T03:00:20Z";
    params[6] = "106";
    PGresult *r = PQexecParams(db, sup_reg_claim_sql, 7, NULL, params, NULL, NULL, 0);
    T_ASSERT_EQ(PGRES_TUPLES_OK, PQresultStatus(r));
    PQclear(r);

    static const char *const rr =
        "[{'id':'a/107','type':'runs_reconciled','at':'2025-06-01T03:00:19Z','node':'a',"
        "'life':'cccccccccccc','adopted':['aaaaaaaaaaaa-2']}]";
    T_ASSERT_EQ(1, apply(rr));
    T_ASSERT_EQ(0, nwarnings);
    T_ASSERT_STREQ("abandoned|claimed, never started: meshd on a restarted",
                   text_of("SELECT status || '|' || reason FROM agent_runs WHERE run_id = "
                           "'j@20250601T030000Z' AND finished_at = '2025-06-01T03:00:19Z'",
                           buf, sizeof buf));
    T_ASSERT_STREQ("abandoned|meshd on a restarted; the run ended unobserved",
                   text_of("SELECT status || '|' || reason FROM agent_runs WHERE run_id = "
                           "'j@20250601T030001Z'",
                           buf, sizeof buf));
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_executions WHERE status = 'abandoned' AND "
                          "exec_id IN ('aaaaaaaaaaaa-1', 'aaaaaaaaaaaa-4') AND reason = 'meshd "
                          "on a restarted; the run ended unobserved'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030002Z' "
                          "AND status = 'running'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030003Z' "
                          "AND status = 'succeeded'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030004Z' "
                          "AND status = 'running' AND node = 'b'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030010Z' "
                          "AND status = 'running' AND life = 'cccccccccccc'"));
    T_ASSERT_EQ(5, scalar("SELECT count(*) FROM agent_runs WHERE status = 'running' OR "
                          "status = 'abandoned'"));

    /* Replayed: nothing.  An earlier life's runs_reconciled applied only now (it was journalled
     * before C started, C's journal replays it): C's claim and the adopted run stay. */
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(rr));
    T_ASSERT_EQ(0, apply("[{'id':'a/90','type':'runs_reconciled','at':'2025-06-01T02:59:30Z',"
                         "'node':'a','life':'dddddddddddd','adopted':[]}]"));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);

    /* The adopted run ends, seen by C without its exit status. */
    T_ASSERT_EQ(1, apply("[{'id':'a/108','type':'run_end','at':'2025-06-01T03:01:00Z',"
                         "'node':'a','life':'cccccccccccc','exec':'aaaaaaaaaaaa-2','job':'j',"
                         "'run_id':'j@20250601T030002Z','finished_at':'2025-06-01T03:01:00Z',"
                         "'status':'unknown','reason':'adopted after a restart'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T030002Z' "
                          "AND status = 'unknown' AND lives = 1 AND executions = 1"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_executions WHERE exec_id = "
                          "'aaaaaaaaaaaa-2' AND status = 'unknown'"));
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM agent_runs WHERE node = 'a' AND status = "
                          "'running' AND life <> 'cccccccccccc'"));
}

/* In one batch, runs_reconciled applies at its place in the journal: what a previous life
 * recorded before it is closed (or finished, if its end came first), what this life starts
 * after it is not. */
TEST(runs_reconciled_keeps_journal_order_in_a_batch)
{
    fresh_db();
    T_ASSERT_EQ(5, apply("[{'id':'a/1','type':'run_start','at':'2025-06-01T03:00:00Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'z',"
                         "'run_id':'z@20250601T030000Z','started_at':'2025-06-01T03:00:00Z'},"
                         "{'id':'a/2','type':'run_start','at':'2025-06-01T03:00:01Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'b',"
                         "'run_id':'b@20250601T030001Z','started_at':'2025-06-01T03:00:01Z'},"
                         "{'id':'a/3','type':'run_end','at':'2025-06-01T03:00:02Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'b',"
                         "'run_id':'b@20250601T030001Z','finished_at':'2025-06-01T03:00:02Z',"
                         "'status':'succeeded','exit_code':0},"
                         "{'id':'a/4','type':'runs_reconciled','at':'2025-06-01T03:00:09Z',"
                         "'node':'a','life':'cccccccccccc','adopted':[]},"
                         "{'id':'a/5','type':'run_start','at':'2025-06-01T03:00:10Z',"
                         "'node':'a','life':'cccccccccccc','exec':'cccccccccccc-1','job':'a',"
                         "'run_id':'a@20250601T030010Z','started_at':'2025-06-01T03:00:10Z'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'z@20250601T030000Z' "
                          "AND status = 'abandoned'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'b@20250601T030001Z' "
                          "AND status = 'succeeded'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'a@20250601T030010Z' "
                          "AND status = 'running'"));
    /* A malformed runs_reconciled is skipped with one warning; the rest of the batch applies. */
    T_ASSERT_EQ(1, apply("[{'id':'a/6','type':'runs_reconciled','at':'2025-06-01T03:00:11Z',"
                         "'node':'a','life':'cccccccccccc','adopted':[1,2]},"
                         "{'id':'a/7','type':'run_missed','at':'2025-06-01T03:00:12Z',"
                         "'node':'a','life':'cccccccccccc','job':'a',"
                         "'scheduled_for':'2025-06-01T03:00:11Z','reason':'r'}]"));
    T_ASSERT_EQ(1, nwarnings);
}

/* slots_missed: one row for a gap, with the count and the range; a replay and a gap whose first
 * slot is recorded already change nothing.  A life's own claim it never started can become the
 * slot's missed or skipped record; another life's cannot. */
TEST(slots_missed_and_unstarted_claims)
{
    static const char *const gap =
        "[{'id':'a/1','type':'slots_missed','at':'2025-06-01T04:00:00Z','node':'a',"
        "'life':'aaaaaaaaaaaa','job':'j','from':'2025-06-01T03:00:01Z',"
        "'to':'2025-06-01T03:59:59Z','count':3599,'reason':'meshd was busy'}]";
    static const char *const s[] = {"j@2025-06-01T05:00:00Z", "j@2025-06-01T05:00:01Z"};
    char won[8], buf[300], before[64], after[64];

    fresh_db();
    T_ASSERT_EQ(1, apply("[{'id':'a/0','type':'job','at':'2025-06-01T02:00:00Z','node':'a',"
                         "'job':'j','state':'STOPPED'}]"));
    T_ASSERT_EQ(1, apply(gap));
    T_ASSERT_STREQ("j@20250601T030001Z|missed|3599|meshd was busy (3599 slots from "
                   "2025-06-01T03:00:01Z to 2025-06-01T03:59:59Z)",
                   text_of("SELECT concat_ws('|', run_id, status, missed_count, reason) FROM "
                           "agent_runs WHERE scheduled_for = '2025-06-01T03:00:01Z' AND "
                           "missed_until = '2025-06-01T03:59:59Z'",
                           buf, sizeof buf));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE job = 'j' AND "
                          "last_run_status = 'missed'"));
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(gap));
    T_ASSERT_EQ(0, apply("[{'id':'b/1','type':'slots_missed','at':'2025-06-01T04:00:00Z',"
                         "'node':'b','job':'j','from':'2025-06-01T03:00:01Z',"
                         "'to':'2025-06-01T03:00:05Z','count':5,'reason':'x'}]"));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    /* Malformed: a count that is not a whole number >= 1, to before from. */
    T_ASSERT_EQ(0, apply("[{'id':'a/2','type':'slots_missed','at':'2025-06-01T04:00:00Z',"
                         "'node':'a','job':'j','from':'2025-06-01T06:00:01Z',"
                         "'to':'2025-06-01T06:59:59Z','count':0,'reason':'r'},"
                         "{'id':'a/3','type':'slots_missed','at':'2025-06-01T04:00:00Z',"
                         "'node':'a','job':'j','from':'2025-06-01T06:00:01Z',"
                         "'to':'2025-06-01T05:59:59Z','count':2,'reason':'r'}]"));
    T_ASSERT_EQ(2, nwarnings);

    T_ASSERT_STREQ("tt", claim("a", "aaaaaaaaaaaa", 2, s, won, sizeof won));
    T_ASSERT_EQ(0, apply("[{'id':'b/2','type':'run_missed','at':'2025-06-01T05:00:09Z',"
                         "'node':'a','life':'cccccccccccc','job':'j',"
                         "'scheduled_for':'2025-06-01T05:00:00Z','reason':'late'}]"));
    T_ASSERT_EQ(2, apply("[{'id':'a/4','type':'run_missed','at':'2025-06-01T05:00:09Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','job':'j',"
                         "'scheduled_for':'2025-06-01T05:00:00Z',"
                         "'reason':'the claim was answered too late'},"
                         "{'id':'a/5','type':'run_skipped','at':'2025-06-01T05:00:09Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','job':'j',"
                         "'scheduled_for':'2025-06-01T05:00:01Z',"
                         "'reason':'previous run still active'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T050000Z' "
                          "AND status = 'missed' AND started_at IS NULL AND reason = 'the claim "
                          "was answered too late'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'j@20250601T050001Z' "
                          "AND status = 'skipped'"));
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
    T_ASSERT_EQ(40, scalar("SELECT count(*) FROM agent_messages WHERE type = 'done'"));
    T_ASSERT_EQ(40, scalar("SELECT sum(count) FROM agent_alerts"));
    /* 0006: an alert message per raise, 4 opens and 36 repeats; none from the replay. */
    T_ASSERT_EQ(4, scalar("SELECT count(*) FROM agent_messages WHERE type = 'alert' AND "
                          "payload->>'event' = 'open'"));
    T_ASSERT_EQ(36, scalar("SELECT count(*) FROM agent_messages WHERE type = 'alert' AND "
                           "payload->>'event' = 'repeat'"));
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

/* meshd_prune deletes old finished executions, never a running one. */
TEST(prune_deletes_old_finished_executions)
{
    fresh_db();
    T_ASSERT_EQ(3, apply("[{'id':'a/1','type':'run_start','at':'2025-06-01T03:00:00Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j',"
                         "'run_id':'r1','started_at':'2025-06-01T03:00:00Z'},"
                         "{'id':'a/2','type':'run_end','at':'2025-06-01T03:00:01Z','node':'a',"
                         "'life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-1','job':'j','run_id':'r1',"
                         "'finished_at':'2025-06-01T03:00:01Z','status':'succeeded',"
                         "'exit_code':0},"
                         "{'id':'a/3','type':'run_start','at':'2025-06-01T03:00:02Z',"
                         "'node':'a','life':'aaaaaaaaaaaa','exec':'aaaaaaaaaaaa-2','job':'j',"
                         "'run_id':'r2','started_at':'2025-06-01T03:00:02Z'}]"));
    T_ASSERT_EQ(0, scalar("SELECT meshd_prune('1 day')"));
    T_EXEC_OK("UPDATE agent_executions SET created_at = now() - interval '2 days'");
    T_EXEC_OK("UPDATE agent_runs SET created_at = now() - interval '2 days'");
    T_ASSERT_EQ(2, scalar("SELECT meshd_prune('1 day')")); /* r1's row and its execution */
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_executions WHERE exec_id = "
                          "'aaaaaaaaaaaa-2' AND status = 'running'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'r2'"));
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

/* 0005: a message event's priority and target land in their columns (absent: 100 and NULL);
 * a bad priority or a target that is not a string makes the event malformed (skipped, with a
 * WARNING, the rest applied); a replay changes nothing. */
TEST(message_priority_and_target)
{
    char before[64], after[64];
    static const char *batch =
        "[{'id':'pc/1','type':'message','at':'2025-06-01T03:00:00Z','node':'pc','job':'check',"
        "'run_id':'check@20250601T030000Z','msg_type':'fix.it','payload':{'n':1},'priority':5,"
        "'to_node':'cloud','to_job':'remediate'},"
        "{'id':'pc/"
        "2','type':'message','at':'2025-06-01T03:00:01Z','node':'pc','msg_type':'fix.it'},"
        "{'id':'pc/3','type':'message','at':'2025-06-01T03:00:02Z','node':'pc','msg_type':'fix.it',"
        "'priority':0,'to_job':'remediate','to_node':null},"
        "{'id':'pc/4','type':'message','at':'2025-06-01T03:00:03Z','node':'pc','msg_type':'fix.it',"
        "'priority':1.5},"
        "{'id':'pc/5','type':'message','at':'2025-06-01T03:00:04Z','node':'pc','msg_type':'fix.it',"
        "'priority':1000001},"
        "{'id':'pc/6','type':'message','at':'2025-06-01T03:00:05Z','node':'pc','msg_type':'fix.it',"
        "'priority':'5'},"
        "{'id':'pc/7','type':'message','at':'2025-06-01T03:00:06Z','node':'pc','msg_type':'fix.it',"
        "'to_node':7},"
        "{'id':'pc/8','type':'message','at':'2025-06-01T03:00:07Z','node':'pc','msg_type':'fix.it',"
        "'priority':1000000,'to_node':''}]";

    fresh_db();
    T_ASSERT_EQ(4, apply(batch));
    T_ASSERT_EQ(4, nwarnings);
    T_ASSERT_EQ(4, scalar("SELECT count(*) FROM agent_messages"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE event_id = 'pc/1' AND "
                          "priority = 5 AND to_node = 'cloud' AND to_job = 'remediate' AND "
                          "type = 'fix.it' AND payload = '{\"n\":1}' AND source = 'pc/check' AND "
                          "run_id = 'check@20250601T030000Z' AND status = 'pending' AND "
                          "created_at = '2025-06-01T03:00:00Z'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE event_id = 'pc/2' AND "
                          "priority = 100 AND to_node IS NULL AND to_job IS NULL AND "
                          "payload = '{}' AND source = 'pc'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE event_id = 'pc/3' AND "
                          "priority = 0 AND to_node IS NULL AND to_job = 'remediate'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE event_id = 'pc/8' AND "
                          "priority = 1000000 AND to_node IS NULL"));
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(batch));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    /* The columns' own CHECKs, for producers that insert directly. */
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_messages WHERE priority <> 100"));
    PGresult *r = PQexec(db, "INSERT INTO agent_messages (type, priority) VALUES ('t', -1)");
    T_ASSERT_EQ(PGRES_FATAL_ERROR, PQresultStatus(r));
    T_ASSERT_STREQ("23514", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
    r = PQexec(db, "INSERT INTO agent_messages (type, to_job) VALUES ('t', '')");
    T_ASSERT_STREQ("23514", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
}

/* 0006: every open, repeat and resolve of an alert puts one 'alert' message on the bus, in
 * the same transaction, with the alert as it is after the change; a replay writes nothing;
 * a change that is none of the three writes nothing. */
#define ALERT_MSG(ev, sev, cnt, job, resolved)                                                     \
    "SELECT count(*) FROM agent_messages m JOIN agent_alerts a ON a.id = "                         \
    "(m.payload->>'id')::bigint "                                                                  \
    "WHERE m.type = 'alert' AND m.source = 'meshd' AND m.status = 'pending' AND "                  \
    "m.to_node IS NULL AND m.to_job IS NULL AND m.event_id IS NULL AND m.payload = "               \
    "jsonb_build_object('event', '" ev "', 'id', a.id, 'key', a.key, 'severity', '" sev "', "      \
    "'job', " job ", 'node', 'pc', 'message', a.message, 'count', " cnt ", 'opened_at', "          \
    "meshd_json_time(a.opened_at), 'updated_at', meshd_json_time(a.updated_at), "                  \
    "'resolved_at', " resolved ")"

TEST(alert_changes_put_messages_on_the_bus)
{
    char before[64], after[64];
    static const char *batch =
        "[{'id':'pc/1','type':'alert','at':'2025-06-01T03:00:12.5Z','node':'pc','job':'backup',"
        "'key':'disk:/var','severity':'warning','message':'91% full'},"
        "{'id':'pc/2','type':'alert','at':'2025-06-01T03:00:13Z','node':'pc','job':'backup',"
        "'key':'disk:/var','severity':'critical','message':'99% full'},"
        "{'id':'pc/3','type':'resolve','at':'2025-06-01T03:10:00Z','node':'pc','job':'backup',"
        "'key':'disk:/var'},"
        "{'id':'pc/4','type':'resolve','at':'2025-06-01T03:10:01Z','node':'pc','key':'nothing'},"
        "{'id':'pc/5','type':'alert','at':'2025-06-01T03:11:00Z','node':'pc','key':'node.k',"
        "'severity':'info','message':'a node alert'}]";

    fresh_db();
    /* One at a time, to see each message as its change left the alert. */
    T_ASSERT_EQ(1, apply("[{'id':'pc/1','type':'alert','at':'2025-06-01T03:00:12.5Z','node':'pc',"
                         "'job':'backup','key':'disk:/var','severity':'warning','message':'91% "
                         "full'}]"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages"));
    T_ASSERT_EQ(1, scalar(ALERT_MSG("open", "warning", "1", "'backup'", "NULL")));
    T_ASSERT_EQ(50, scalar("SELECT priority FROM agent_messages"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE payload->>'opened_at' = "
                          "'2025-06-01T03:00:12.500Z'"));
    T_EXEC_OK("UPDATE agent_messages SET status = 'done', processed_at = now()");

    T_ASSERT_EQ(1, apply("[{'id':'pc/2','type':'alert','at':'2025-06-01T03:00:13Z','node':'pc',"
                         "'job':'backup','key':'disk:/var','severity':'critical','message':'99% "
                         "full'}]"));
    T_ASSERT_EQ(1, scalar(ALERT_MSG("repeat", "critical", "2", "'backup'", "NULL")));
    T_ASSERT_EQ(10, scalar("SELECT priority FROM agent_messages WHERE status = 'pending'"));
    T_EXEC_OK("UPDATE agent_messages SET status = 'done', processed_at = now()");

    T_ASSERT_EQ(2, apply("[{'id':'pc/3','type':'resolve','at':'2025-06-01T03:10:00Z','node':'pc',"
                         "'job':'backup','key':'disk:/var'},"
                         "{'id':'pc/4','type':'resolve','at':'2025-06-01T03:10:01Z','node':'pc',"
                         "'key':'nothing'},"
                         "{'id':'pc/5','type':'alert','at':'2025-06-01T03:11:00Z','node':'pc',"
                         "'key':'node.k','severity':'info','message':'a node alert'}]"));
    T_ASSERT_EQ(
        1, scalar(ALERT_MSG("resolve", "critical", "2", "'backup'", "'2025-06-01T03:10:00.000Z'")));
    T_ASSERT_EQ(1, scalar(ALERT_MSG("open", "info", "1", "NULL", "NULL")));
    T_ASSERT_EQ(100, scalar("SELECT priority FROM agent_messages WHERE payload->>'key' = "
                            "'node.k'"));
    T_ASSERT_EQ(4, scalar("SELECT count(*) FROM agent_messages"));

    /* Replayed, the whole batch changes no alert, so it writes no message. */
    snapshot(before, sizeof before);
    T_ASSERT_EQ(0, apply(batch));
    snapshot(after, sizeof after);
    T_ASSERT_STREQ(before, after);
    T_ASSERT_EQ(4, scalar("SELECT count(*) FROM agent_messages"));

    /* Changes that are neither an open, a repeat nor a resolve: none.  A resolved row
     * inserted as such, an edit of an open alert's message, a count set back. */
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message, status, resolved_at) "
              "VALUES ('pc', 'old', 'critical', 'm', 'resolved', now())");
    T_EXEC_OK("UPDATE agent_alerts SET message = 'edited' WHERE key = 'node.k'");
    T_EXEC_OK("UPDATE agent_alerts SET count = 5 WHERE key = 'node.k'");
    T_ASSERT_EQ(5, scalar("SELECT count(*) FROM agent_messages"));
    T_ASSERT_EQ(1, scalar(ALERT_MSG("repeat", "info", "5", "NULL", "NULL")));
    T_EXEC_OK("UPDATE agent_alerts SET count = 1 WHERE key = 'node.k'");
    T_EXEC_OK("UPDATE agent_alerts SET message = 'again' WHERE status = 'resolved'");
    T_ASSERT_EQ(5, scalar("SELECT count(*) FROM agent_messages"));

    /* Any writer: psql's raise of a key resolved before opens a new alert, and says so. */
    T_EXEC_OK("INSERT INTO agent_alerts (node, job, key, severity, message) "
              "VALUES ('pc', 'backup', 'disk:/var', 'warning', 'by hand')");
    T_ASSERT_EQ(1, scalar(ALERT_MSG("open", "warning", "1", "'backup'", "NULL")));
    T_ASSERT_EQ(2, scalar("SELECT count(DISTINCT payload->>'id') FROM agent_messages WHERE "
                          "payload->>'key' = 'disk:/var'"));
}

/* 0006: meshd_prune deletes pending alert messages older than its age (nobody consumes them),
 * never a pending message of another type, a processing one, or the alert itself. */
TEST(prune_deletes_alert_messages_nobody_took)
{
    fresh_db();
    T_ASSERT_EQ(1, apply("[{'id':'pc/1','type':'alert','at':'2025-06-01T03:00:00Z','node':'pc',"
                         "'key':'k','severity':'warning','message':'m'}]"));
    T_EXEC_OK("INSERT INTO agent_messages (type, created_at) VALUES "
              "('other', now() - interval '2 days'), ('alert', now() - interval '2 days'), "
              "('alert', now() - interval '2 hours')");
    T_EXEC_OK("INSERT INTO agent_messages (type, status, claimed_at, created_at) VALUES "
              "('alert', 'processing', now(), now() - interval '2 days')");
    T_EXEC_OK("UPDATE agent_messages SET created_at = now() - interval '3 days' WHERE source = "
              "'meshd'");
    T_EXEC_OK("UPDATE meshd_applied_events SET applied_at = now()");
    T_ASSERT_EQ(2, scalar("SELECT meshd_prune('1 day')"));
    T_ASSERT_EQ(0, scalar("SELECT meshd_prune('1 day')"));
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_messages"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE type = 'other'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE status = 'processing'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE type = 'alert' AND "
                          "status = 'pending' AND created_at > now() - interval '1 day'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_alerts WHERE key = 'k' AND status = 'open'"));
}

/* Runs bus.c's claim for (type, node, job); the claimed message's payload->>'n' (0 when
 * nothing was claimed, -1 on error). */
static long long bus_claim(const char *type, const char *node, const char *job)
{
    char who[200];
    const char *params[4] = {type, who, node, job};
    long long n = -1;
    PGresult *r;

    snprintf(who, sizeof who, "%s/%s", node, job);
    r = PQexecParams(db, sup_bus_claim_sql, 4, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0) {
        n = 0;
    } else if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        const char *p = strstr(PQgetvalue(r, 0, 1), "\"n\": ");
        n = p ? atoll(p + 5) : -1;
    } else {
        fprintf(stderr, "  claim: %s", PQresultErrorMessage(r));
    }
    PQclear(r);
    return n;
}

/* The claim takes the most urgent message it may: priority, then created_at, then id (FIFO
 * within a priority); messages for another node or job are left pending, and taken by that
 * one; other types are never touched. */
TEST(bus_claim_order_and_targets)
{
    fresh_db();
    T_EXEC_OK("INSERT INTO agent_messages (type, payload, priority, to_node, to_job, created_at) "
              "VALUES "
              "('w', '{\"n\": 1}', 100, NULL, NULL, '2025-06-01T03:00:01Z'), "
              "('w', '{\"n\": 2}', 100, NULL, NULL, '2025-06-01T03:00:00Z'), "  /* older */
              "('w', '{\"n\": 3}', 5, NULL, NULL, '2025-06-01T03:00:09Z'), "    /* urgent */
              "('w', '{\"n\": 4}', 200, NULL, NULL, '2025-06-01T02:00:00Z'), "  /* oldest, lazy */
              "('w', '{\"n\": 5}', 0, 'b', NULL, '2025-06-01T02:00:00Z'), "     /* node b's */
              "('w', '{\"n\": 6}', 0, NULL, 'other', '2025-06-01T02:00:00Z'), " /* job other's */
              "('w', '{\"n\": 7}', 1, 'a', 'work', '2025-06-01T04:00:00Z'), "   /* a/work's */
              "('w', '{\"n\": 8}', 100, NULL, NULL, '2025-06-01T03:00:01Z'), "  /* ties n=1 */
              "('x', '{\"n\": 9}', 0, NULL, NULL, '2025-06-01T01:00:00Z')");    /* other type */
    /* n=1 and n=8 share priority and created_at: the id decides (1 was inserted first). */
    static const long long want[] = {7, 3, 2, 1, 8, 4, 0};
    for (size_t i = 0; i < MD_ARRAY_SIZE(want); i++)
        T_ASSERT_EQ(want[i], bus_claim("w", "a", "work"));
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_messages WHERE status = 'pending'"));
    T_ASSERT_EQ(6, bus_claim("w", "a", "other"));
    T_ASSERT_EQ(5, bus_claim("w", "b", "work"));
    T_ASSERT_EQ(0, bus_claim("w", "b", "other"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE status = 'pending' AND "
                          "type = 'x'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE payload->>'n' = '5' AND "
                          "claimed_by = 'b/work' AND attempts = 1 AND status = 'processing'"));
}

/* The claim stays one index scan on agent_messages_pending in the claim's order: no sort, no
 * sequential scan, with many finished messages and other types around. */
TEST(bus_claim_is_an_index_scan)
{
    fresh_db();
    T_EXEC_OK("INSERT INTO agent_messages (type, status, created_at, processed_at) "
              "SELECT 'w', 'done', now() - interval '1 day', now() FROM generate_series(1, 20000)");
    T_EXEC_OK("INSERT INTO agent_messages (type, payload, priority, to_node, created_at) "
              "SELECT CASE WHEN g % 4 = 0 THEN 'w' ELSE 't' || (g % 50) END, "
              "jsonb_build_object('n', g), g % 7 * 50, CASE WHEN g % 3 = 0 THEN 'b' END, now() "
              "FROM generate_series(1, 4000) g");
    T_EXEC_OK("ANALYZE agent_messages");
    PGresult *r = PQexecParams(db,
                               "EXPLAIN (COSTS OFF) SELECT id FROM agent_messages WHERE status = "
                               "'pending' AND type = $1 AND (to_node IS NULL OR to_node = $2) "
                               "AND (to_job IS NULL OR to_job = $3) ORDER BY priority, "
                               "created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                               3, NULL, (const char *const[]){"w", "a", "work"}, NULL, NULL, 0);
    T_ASSERT_EQ(PGRES_TUPLES_OK, PQresultStatus(r));
    char plan[4096] = "";
    for (int i = 0; i < PQntuples(r); i++) {
        strncat(plan, PQgetvalue(r, i, 0), sizeof plan - strlen(plan) - 2);
        strcat(plan, "\n");
    }
    PQclear(r);
    fprintf(stderr, "%s", plan);
    T_ASSERT_CONTAINS(plan, "Index Scan using agent_messages_pending on agent_messages");
    T_ASSERT_TRUE(strstr(plan, "Sort") == NULL);
    T_ASSERT_TRUE(strstr(plan, "Seq Scan") == NULL);
    /* And the statement bus.c sends takes the first 'w' of priority 0 not for node b (all
     * created at the same instant, so by id): g = 28. */
    T_ASSERT_EQ(28, bus_claim("w", "a", "work"));
}

T_MAIN()
