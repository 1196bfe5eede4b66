/* test_migrate.c - the embedded migrations against a real PostgreSQL: apply on an empty
 * database, again (nothing), concurrently from several processes (each recorded once), and the
 * schema's promises: the exactly-once run claim, one open alert per key, the registry upsert
 * key, NOTIFY on new messages, batched retention.
 *
 * MESHD_TEST_PG is a superuser conninfo on a throwaway cluster (ctest sets it); every test
 * works in a database of its own, test_mig_<pid>_<n>, dropped at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "meshd/md_alloc.h"
#include "meshd/md_migrate.h"
#include "t.h"

#include "pgtest.h"

static void fresh_db(void)
{
    pgt_fresh_db("test_mig", false);
}

/* Runs sql on db; returns "" on success or the SQLSTATE (static copy) of the error. */
static const char *exec_state(const char *sql)
{
    static char state[8];
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);

    state[0] = '\0';
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(state, sizeof state, "%s", s ? s : "?????");
    }
    PQclear(r);
    return state;
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

static size_t nmigrations(void)
{
    const struct md_migration *list;
    return md_migrations(&list);
}

static void migrate_ok(void)
{
    struct md_error err = {0};
    int n = md_migrate_sync(db, NULL, NULL, &err);
    if (n < 0)
        T_FAIL("md_migrate_sync: %s", err.msg);
}

TEST(migrations_embedded_in_order)
{
    const struct md_migration *list;
    size_t n = md_migrations(&list);

    T_ASSERT_TRUE(n >= 1);
    T_ASSERT_EQ(1, list[0].version);
    T_ASSERT_STREQ("registry", list[0].name);
    T_ASSERT_CONTAINS(list[0].sql, "CREATE TABLE agent_runs");
    for (size_t i = 1; i < n; i++)
        T_ASSERT_TRUE(list[i].version > list[i - 1].version);
}

TEST(migrate_empty_db)
{
    struct md_error err = {0};

    fresh_db();
    T_ASSERT_EQ((long long)nmigrations(), md_migrate_sync(db, NULL, NULL, &err));
    T_ASSERT_EQ((long long)nmigrations(), scalar("SELECT count(*) FROM meshd_migrations"));
    T_ASSERT_EQ(5, scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND "
                          "tablename IN ('agent_registry', 'agent_runs', 'agent_metrics', "
                          "'agent_alerts', 'agent_messages')"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM meshd_migrations WHERE version = 1 AND "
                          "name = 'registry' AND length(checksum) = 32"));
    /* The tables are documented in the catalog. */
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM unnest(ARRAY['agent_registry', 'agent_runs', "
                          "'agent_metrics', 'agent_alerts', 'agent_messages']) t "
                          "WHERE obj_description(t::regclass, 'pg_class') IS NULL"));
}

TEST(migrate_twice_applies_nothing)
{
    const struct md_migration *list;
    size_t n = md_migrations(&list);
    struct md_error err = {0};

    fresh_db();
    T_ASSERT_EQ((long long)n, md_migrate_sync(db, NULL, NULL, &err));
    T_ASSERT_EQ(0, md_migrate_sync(db, NULL, NULL, &err));
    /* The script itself is idempotent too, even without md_migrate_sync's pre-check. */
    for (size_t i = 0; i < n; i++) {
        char *s = md_migration_script(&list[i]);
        PGresult *r = PQexec(db, s);
        md_free(s);
        int outcome = md_migration_outcome(r);
        PQclear(r);
        T_ASSERT_EQ(MD_MIGRATION_PRESENT, outcome);
    }
    T_ASSERT_EQ(PQTRANS_IDLE, PQtransactionStatus(db));
    T_ASSERT_EQ((long long)n, scalar("SELECT count(*) FROM meshd_migrations"));
}

/* A migration whose text contains the script's own dollar-quote tags still applies, and an
 * edited text under a recorded version is reported as CHANGED, not applied. */
TEST(migration_script_quoting_and_changed_text)
{
    struct md_migration m = {9001, "it's",
                             "CREATE TABLE t_q (s text DEFAULT $meshd_sql$x$meshd_sql$);\n"
                             "COMMENT ON TABLE t_q IS $meshd_do$ y $meshd_do$; -- ?? end"};
    struct md_migration edited = {9001, "it's", "CREATE TABLE t_never (a int)"};
    char *s;
    PGresult *r;
    int outcome;

    fresh_db();
    s = md_migration_script(&m);
    r = PQexec(db, s);
    md_free(s);
    outcome = md_migration_outcome(r);
    if (outcome < 0)
        fprintf(stderr, "  %s", PQresultErrorMessage(r));
    PQclear(r);
    T_ASSERT_EQ(MD_MIGRATION_APPLIED, outcome);
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM meshd_migrations WHERE name = 'it''s'"));

    s = md_migration_script(&edited);
    r = PQexec(db, s);
    md_free(s);
    outcome = md_migration_outcome(r);
    PQclear(r);
    T_ASSERT_EQ(MD_MIGRATION_CHANGED, outcome);
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM pg_tables WHERE tablename = 't_never'"));
}

/* A failing migration leaves nothing behind: no table, no record, an idle connection. */
TEST(migration_failure_rolls_back)
{
    struct md_migration bad = {9002, "bad", "CREATE TABLE t_half (a int);\nSELECT 1/0;"};
    char *s;
    PGresult *r;

    fresh_db();
    s = md_migration_script(&bad);
    r = PQexec(db, s);
    md_free(s);
    T_ASSERT_EQ(MD_EDB, md_migration_outcome(r));
    T_ASSERT_STREQ("22012", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
    T_ASSERT_EQ(PQTRANS_IDLE, PQtransactionStatus(db));
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM pg_tables WHERE tablename IN ('t_half', "
                          "'meshd_migrations')"));
}

#define RACERS 4

/* RACERS processes, each with its own connection, start migrating the same empty database at
 * the same moment (released together through a pipe).  All succeed; together they apply each
 * migration exactly once. */
TEST(migrate_concurrent_runners)
{
    int go[2];
    pid_t pids[RACERS];
    int total = 0;

    fresh_db();
    T_ASSERT_EQ(0, pipe(go));
    fflush(NULL);
    for (int i = 0; i < RACERS; i++) {
        pids[i] = fork();
        T_ASSERT_TRUE(pids[i] >= 0);
        if (pids[i] == 0) {
            char c;
            struct md_error err = {0};
            PGconn *mine = connect_db();
            close(go[1]);
            if (mine == NULL)
                _exit(100);
            if (read(go[0], &c, 1) < 0) /* EOF when the parent closes its end: go */
                _exit(101);
            int n = md_migrate_sync(mine, NULL, NULL, &err);
            if (n < 0)
                fprintf(stderr, "  racer %d: %s\n", i, err.msg);
            PQfinish(mine);
            _exit(n < 0 ? 102 : n);
        }
    }
    close(go[0]);
    usleep(200 * 1000); /* let every racer connect */
    close(go[1]);
    for (int i = 0; i < RACERS; i++) {
        int st;
        T_ASSERT_EQ(pids[i], waitpid(pids[i], &st, 0));
        T_ASSERT_TRUE(WIFEXITED(st));
        T_ASSERT_TRUE(WEXITSTATUS(st) < 100);
        total += WEXITSTATUS(st);
    }
    T_ASSERT_EQ((long long)nmigrations(), total);
    T_ASSERT_EQ((long long)nmigrations(), scalar("SELECT count(*) FROM meshd_migrations"));
    T_ASSERT_EQ((long long)nmigrations(),
                scalar("SELECT count(DISTINCT version) FROM meshd_migrations"));
}

TEST(schema_run_claim_is_exactly_once)
{
    fresh_db();
    migrate_ok();
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, scheduled_for, status, started_at) "
              "VALUES ('r1', 'backup', 'pc', '2025-06-01T03:00:00Z', 'running', now())");
    /* A second node claiming the same slot loses, whatever its run id. */
    T_ASSERT_STREQ("23505",
                   exec_state("INSERT INTO agent_runs (run_id, job, node, scheduled_for, status) "
                              "VALUES ('r2', 'backup', 'nas', '2025-06-01T03:00:00Z', 'running')"));
    /* The claim as the scheduler writes it: the loser gets no row back. */
    T_ASSERT_EQ(0, scalar("WITH c AS (INSERT INTO agent_runs (run_id, job, node, scheduled_for, "
                          "status) VALUES ('r3', 'backup', 'nas', '2025-06-01T03:00:00Z', "
                          "'running') ON CONFLICT (job, scheduled_for) DO NOTHING RETURNING 1) "
                          "SELECT count(*) FROM c"));
    /* Another slot, another job, and unscheduled runs do not conflict. */
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, scheduled_for, status, reason) VALUES "
              "('r4', 'backup', 'pc', '2025-06-02T03:00:00Z', 'missed', 'meshd was down'), "
              "('r5', 'report', 'pc', '2025-06-01T03:00:00Z', 'running', NULL), "
              "('r6', 'backup', 'pc', NULL, 'running', NULL), "
              "('r7', 'backup', 'pc', NULL, 'running', NULL)");
    /* run_id is unique: replays upsert by it. */
    T_ASSERT_STREQ("23505", exec_state("INSERT INTO agent_runs (run_id, job, node, status) "
                                       "VALUES ('r1', 'x', 'pc', 'running')"));
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, status, exit_code, finished_at) "
              "VALUES ('r1', 'backup', 'pc', 'succeeded', 0, now()) ON CONFLICT (run_id) DO "
              "UPDATE SET status = EXCLUDED.status, exit_code = EXCLUDED.exit_code, "
              "finished_at = EXCLUDED.finished_at");
    T_ASSERT_EQ(0, scalar("SELECT exit_code FROM agent_runs WHERE run_id = 'r1'"));
    /* Checks: status vocabulary, a missed run needs its reason, exit code xor signal. */
    T_ASSERT_STREQ("23514", exec_state("INSERT INTO agent_runs (run_id, job, node, status) "
                                       "VALUES ('r8', 'j', 'pc', 'exploded')"));
    T_ASSERT_STREQ("23514", exec_state("INSERT INTO agent_runs (run_id, job, node, status) "
                                       "VALUES ('r8', 'j', 'pc', 'skipped')"));
    T_ASSERT_STREQ("23514",
                   exec_state("INSERT INTO agent_runs (run_id, job, node, status, exit_code, "
                              "signal) VALUES ('r8', 'j', 'pc', 'failed', 1, 9)"));
}

TEST(schema_one_open_alert_per_key)
{
    fresh_db();
    migrate_ok();
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message) "
              "VALUES ('pc', 'disk:/var', 'warning', 'disk 91% full')");
    T_ASSERT_STREQ("23505", exec_state("INSERT INTO agent_alerts (node, key, severity, message) "
                                       "VALUES ('nas', 'disk:/var', 'critical', 'again')"));
    /* The dedup upsert bumps the open alert instead. */
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message) VALUES ('pc', "
              "'disk:/var', 'critical', 'disk 99% full') ON CONFLICT (key) WHERE status = "
              "'open' DO UPDATE SET count = agent_alerts.count + 1, severity = "
              "EXCLUDED.severity, message = EXCLUDED.message");
    T_ASSERT_EQ(2, scalar("SELECT count FROM agent_alerts WHERE key = 'disk:/var'"));
    /* Resolved, then raised again: a resolved and an open alert with one key coexist. */
    T_EXEC_OK("UPDATE agent_alerts SET status = 'resolved', resolved_at = now() "
              "WHERE key = 'disk:/var' AND status = 'open'");
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message) "
              "VALUES ('pc', 'disk:/var', 'warning', 'disk 91% full')");
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_alerts WHERE key = 'disk:/var'"));
    /* resolved_at goes with status; severity vocabulary; event ids are unique. */
    T_ASSERT_STREQ("23514", exec_state("UPDATE agent_alerts SET status = 'resolved' "
                                       "WHERE status = 'open'"));
    T_ASSERT_STREQ("23514", exec_state("INSERT INTO agent_alerts (node, key, severity, message) "
                                       "VALUES ('pc', 'k2', 'fatal', 'm')"));
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message, event_id) "
              "VALUES ('pc', 'k3', 'info', 'm', 'e1')");
    T_EXEC_OK("UPDATE agent_alerts SET status = 'resolved', resolved_at = now() WHERE key = 'k3'");
    T_ASSERT_STREQ("23505", exec_state("INSERT INTO agent_alerts (node, key, severity, message, "
                                       "event_id) VALUES ('pc', 'k3', 'info', 'm', 'e1')"));
}

TEST(schema_registry_rows)
{
    fresh_db();
    migrate_ok();
    const char *upsert = "INSERT INTO agent_registry (kind, node, job, state, pid) VALUES "
                         "('node', 'pc', NULL, 'running', 10), ('job', 'pc', 'backup', "
                         "'stopped', NULL) ON CONFLICT (node, (coalesce(job, ''))) DO UPDATE "
                         "SET state = EXCLUDED.state, pid = EXCLUDED.pid, restarts = "
                         "agent_registry.restarts + 1";
    T_EXEC_OK(upsert);
    T_EXEC_OK(upsert);
    T_ASSERT_EQ(2, scalar("SELECT count(*) FROM agent_registry"));
    T_ASSERT_EQ(2, scalar("SELECT sum(restarts) FROM agent_registry"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_registry WHERE updated_at >= created_at "
                          "AND kind = 'node'"));
    /* A node row has no job, a job row has one. */
    T_ASSERT_STREQ("23514", exec_state("INSERT INTO agent_registry (kind, node, job, state) "
                                       "VALUES ('node', 'nas', 'x', 'running')"));
    T_ASSERT_STREQ("23514", exec_state("INSERT INTO agent_registry (kind, node, job, state) "
                                       "VALUES ('job', 'nas', NULL, 'running')"));
    T_ASSERT_STREQ("23514", exec_state("INSERT INTO agent_registry (kind, node, job, state) "
                                       "VALUES ('job', 'nas', '', 'running')"));
}

TEST(schema_message_insert_notifies)
{
    PGnotify *nf;
    int got = 0;

    fresh_db();
    migrate_ok();
    T_EXEC_OK("LISTEN agent_messages");
    T_EXEC_OK("INSERT INTO agent_messages (type, payload, source) VALUES "
              "('scrape.done', '{\"n\": 3}', 'pc/scrape'), ('scrape.done', '{}', 'pc/scrape')");
    T_EXEC_OK("INSERT INTO agent_messages (type, status) VALUES ('quiet', 'done')");
    /* The notification came with the INSERT's reply; drain what libpq already read. */
    for (int tries = 0; tries < 50 && got == 0; tries++) {
        T_ASSERT_TRUE(PQconsumeInput(db));
        while ((nf = PQnotifies(db)) != NULL) {
            T_ASSERT_STREQ("agent_messages", nf->relname);
            T_ASSERT_STREQ("scrape.done", nf->extra);
            got++;
            PQfreemem(nf);
        }
        if (got == 0)
            usleep(10 * 1000);
    }
    T_ASSERT_EQ(1, got); /* one per type and transaction; none for a row inserted as done */
    /* The consumer's claim query. */
    T_ASSERT_EQ(2, scalar("WITH c AS (UPDATE agent_messages m SET status = 'processing', "
                          "claimed_by = 't', claimed_at = now(), attempts = attempts + 1 "
                          "WHERE id IN (SELECT id FROM agent_messages WHERE status = 'pending' "
                          "AND type = 'scrape.done' ORDER BY created_at LIMIT 10 FOR UPDATE "
                          "SKIP LOCKED) RETURNING 1) SELECT count(*) FROM c"));
}

TEST(prune_in_batches_keeps_recent)
{
    fresh_db();
    migrate_ok();
    /* Old: 25 finished runs, 1 still running; 12 metrics; 7 done + 1 failed messages, 2 old
     * but pending; 1 resolved alert and 1 old open one.  Recent: 5 runs, 3 metrics, 4 done. */
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, status, created_at) SELECT 'old' || i, "
              "'j', 'pc', 'succeeded', now() - interval '10 days' FROM generate_series(1, 25) i");
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, status, created_at) VALUES ('long', "
              "'j', 'pc', 'running', now() - interval '10 days')");
    T_EXEC_OK("INSERT INTO agent_runs (run_id, job, node, status) SELECT 'new' || i, 'j', "
              "'pc', 'failed' FROM generate_series(1, 5) i");
    T_EXEC_OK("INSERT INTO agent_metrics (node, job, name, value, created_at) SELECT 'pc', 'j', "
              "'rows', i, now() - interval '10 days' FROM generate_series(1, 12) i");
    T_EXEC_OK("INSERT INTO agent_metrics (node, job, name, value) SELECT 'pc', 'j', 'rows', i "
              "FROM generate_series(1, 3) i");
    T_EXEC_OK("INSERT INTO agent_messages (type, status, created_at, processed_at) SELECT 't', "
              "CASE WHEN i = 8 THEN 'failed' ELSE 'done' END, now() - interval '11 days', "
              "now() - interval '10 days' FROM generate_series(1, 8) i");
    T_EXEC_OK("INSERT INTO agent_messages (type, created_at) SELECT 't', now() - interval "
              "'10 days' FROM generate_series(1, 2)");
    T_EXEC_OK("INSERT INTO agent_messages (type, status, processed_at) SELECT 't', 'done', "
              "now() FROM generate_series(1, 4)");
    T_EXEC_OK("INSERT INTO agent_alerts (node, key, severity, message, status, opened_at, "
              "resolved_at) VALUES ('pc', 'a', 'info', 'm', 'resolved', now() - interval "
              "'12 days', now() - interval '10 days'), ('pc', 'b', 'info', 'm', 'open', now() - "
              "interval '12 days', NULL)");

    /* One call: at most 10 per table. */
    T_ASSERT_EQ(10 + 10 + 8 + 1, scalar("SELECT meshd_prune('1 day', 10)"));
    long long more, total = 29, calls = 1;
    while ((more = scalar("SELECT meshd_prune('1 day', 10)")) > 0) {
        total += more;
        calls++;
    }
    T_ASSERT_EQ(0, more);
    T_ASSERT_EQ(25 + 12 + 8 + 1, total);
    T_ASSERT_EQ(3, calls);
    T_ASSERT_EQ(6, scalar("SELECT count(*) FROM agent_runs"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_runs WHERE run_id = 'long'"));
    T_ASSERT_EQ(3, scalar("SELECT count(*) FROM agent_metrics"));
    T_ASSERT_EQ(6, scalar("SELECT count(*) FROM agent_messages WHERE type = 't'"));
    /* The open alert's message (0006), pending but recent, stays. */
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_messages WHERE type = 'alert'"));
    T_ASSERT_EQ(0, scalar("SELECT count(*) FROM agent_messages WHERE status = 'done' AND "
                          "processed_at < now() - interval '1 day'"));
    T_ASSERT_EQ(1, scalar("SELECT count(*) FROM agent_alerts"));
    T_ASSERT_STREQ("P0001", exec_state("SELECT meshd_prune('1 day', 0)"));
}

T_MAIN()
