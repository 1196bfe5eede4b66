/* test_db.c - md_db against a real PostgreSQL (MESHD_TEST_PG, set by the ctest 'pg' fixture)
 * on a real libuv loop.  Every test ends with md_db_close, its closed_cb, and
 * uv_loop_close() == 0: no handle, watcher or request is leaked.  Blocking libpq is used in the
 * tests only, never in db.c. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "db_internal.h"
#include "meshd/md_alloc.h"
#include "meshd/md_db.h"
#include "meshd/md_log.h"
#include "looptest.h"
#include "t.h"

static const char *pg(void)
{
    const char *ci = t_pg_conninfo();
    md_log_init("test_db", getenv("TEST_VERBOSE") ? MD_LOG_DEBUG : MD_LOG_ERROR);
    return ci;
}

/* ---- loop helpers ------------------------------------------------------------------------ */

static bool never(void *arg)
{
    (void)arg;
    return false;
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static void closed_cb(void *ud)
{
    *(bool *)ud = true;
}

static void close_db(uv_loop_t *loop, struct md_db *db)
{
    bool closed = false;
    md_db_close(db, closed_cb, &closed);
    T_ASSERT_TRUE(run_until(loop, flag_set, &closed, 5000));
}

static void finish_loop(uv_loop_t *loop)
{
    uv_run(loop, UV_RUN_NOWAIT);
    T_ASSERT_EQ(0, uv_loop_close(loop));
}

/* ---- a request recorder ------------------------------------------------------------------ */

struct rec {
    int nres;      /* per-result calls */
    int nerr;      /* per-result calls with MD_EDB */
    bool done;     /* the final call came */
    int status;    /* the final status */
    int finals;    /* how many final calls (must be 1) */
    char val[128]; /* the first column of the first row of the last tuple result */
    char val2[128];
    char sqlstate[8];
    int *order; /* optional: append id on completion */
    int *norder;
    int id;
};

static void rec_cb(void *ud, int status, PGresult *res)
{
    struct rec *r = ud;

    if (res == NULL) {
        r->done = true;
        r->status = status;
        r->finals++;
        if (r->order != NULL)
            r->order[(*r->norder)++] = r->id;
        return;
    }
    r->nres++;
    if (status != 0) {
        r->nerr++;
        const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(r->sqlstate, sizeof r->sqlstate, "%s", ss != NULL ? ss : "");
        return;
    }
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0) {
        snprintf(r->val, sizeof r->val, "%s",
                 PQgetisnull(res, 0, 0) ? "(null)" : PQgetvalue(res, 0, 0));
        if (PQnfields(res) > 1)
            snprintf(r->val2, sizeof r->val2, "%s", PQgetvalue(res, 0, 1));
    }
}

static bool rec_done(void *arg)
{
    return ((struct rec *)arg)->done;
}

static struct md_db *open_db(uv_loop_t *loop, const char *conninfo)
{
    struct md_db_config cfg = {.conninfo = conninfo};
    struct md_db *db = NULL;
    T_ASSERT_EQ(0, md_db_open(loop, &cfg, &db));
    return db;
}

/* ---- tests ------------------------------------------------------------------------------- */

TEST(db_scrub)
{
    char out[64];
    md__db_scrub("pw", "a pw b\nline pwpw\n", out, sizeof out);
    T_ASSERT_STREQ("a *** b line ******", out);
    md__db_scrub(NULL, "plain\n", out, sizeof out);
    T_ASSERT_STREQ("plain", out);
    md__db_scrub("x", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", out, 8);
    T_ASSERT_STREQ("*******", out);
}

TEST(db_bad_conninfo)
{
    uv_loop_t loop;
    struct md_db *db = (struct md_db *)1;
    struct md_db_config cfg = {.conninfo = "host='unterminated password=s3cretpw"};

    md_log_init("test_db", MD_LOG_ERROR);
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(MD_ECONFIG, md_db_open(&loop, &cfg, &db));
    T_ASSERT_TRUE(db == NULL);
    cfg.conninfo = NULL;
    T_ASSERT_EQ(MD_ECONFIG, md_db_open(&loop, &cfg, &db));
    finish_loop(&loop);
}

TEST(db_select_1)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec r = {0};
    struct md_db_stats st;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db *db = open_db(&loop, ci);
    T_ASSERT_EQ(MD_DB_DISCONNECTED, md_db_state(db)); /* open does no I/O */
    T_ASSERT_CONTAINS(md_db_target(db), "user=postgres");
    T_ASSERT_CONTAINS(md_db_target(db), "dbname=postgres");
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &r, 5000));
    T_ASSERT_EQ(0, r.status);
    T_ASSERT_EQ(1, r.nres);
    T_ASSERT_EQ(1, r.finals);
    T_ASSERT_STREQ("1", r.val);
    T_ASSERT_EQ(MD_DB_IDLE, md_db_state(db));
    md_db_stats(db, &st);
    T_ASSERT_EQ(1, st.queries_sent);
    T_ASSERT_EQ(1, st.round_trips);
    T_ASSERT_EQ(1, st.connects);
    T_ASSERT_EQ(0, st.reconnects);
    T_ASSERT_EQ(0, st.failures);
    close_db(&loop, db);
    finish_loop(&loop);
}

TEST(db_params)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec r = {0};
    const char *params[] = {"2", "40", NULL};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db *db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(db, "SELECT $1::int + $2::int, ($3::text IS NULL)::text", 3, params,
                              rec_cb, &r));
    params[0] = "999"; /* copied at send: changing it now must not matter */
    T_ASSERT_TRUE(run_until(&loop, rec_done, &r, 5000));
    T_ASSERT_EQ(0, r.status);
    T_ASSERT_STREQ("42", r.val);
    T_ASSERT_STREQ("true", r.val2);
    close_db(&loop, db);
    finish_loop(&loop);
}

TEST(db_error_sqlstate_then_next_runs)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec a = {0}, b = {0};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db *db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 1/0", 0, NULL, rec_cb, &a));
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 2", 0, NULL, rec_cb, &b));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &b, 5000));
    T_ASSERT_TRUE(a.done);
    T_ASSERT_EQ(MD_EDB, a.status);
    T_ASSERT_EQ(1, a.nerr);
    T_ASSERT_STREQ("22012", a.sqlstate); /* division_by_zero */
    T_ASSERT_EQ(0, b.status);
    T_ASSERT_STREQ("2", b.val);
    struct md_db_stats st;
    md_db_stats(db, &st);
    T_ASSERT_EQ(1, st.errors);
    T_ASSERT_EQ(0, st.failures); /* an SQL error is not a connection failure */
    close_db(&loop, db);
    finish_loop(&loop);
}

TEST(db_fifo_many)
{
    enum { N = 500 };
    const char *ci = pg();
    uv_loop_t loop;
    static struct rec r[N];
    static int order[N];
    int norder = 0;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db *db = open_db(&loop, ci);
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++) {
        char buf[16];
        const char *p[] = {buf};
        snprintf(buf, sizeof buf, "%d", i);
        r[i].id = i;
        r[i].order = order;
        r[i].norder = &norder;
        T_ASSERT_EQ(0, md_db_send(db, "SELECT $1::int * 2", 1, p, rec_cb, &r[i]));
    }
    T_ASSERT_EQ(N, md_db_queued(db));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &r[N - 1], 20000));
    T_ASSERT_EQ(N, norder);
    for (int i = 0; i < N; i++) {
        char want[16];
        snprintf(want, sizeof want, "%d", i * 2);
        T_ASSERT_EQ(i, order[i]);
        T_ASSERT_EQ(0, r[i].status);
        T_ASSERT_STREQ(want, r[i].val);
    }
    close_db(&loop, db);
    finish_loop(&loop);
}

TEST(db_multi_statement)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec a = {0}, b = {0}, c = {0};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db *db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(db,
                              "CREATE TEMP TABLE t (x int); BEGIN; INSERT INTO t VALUES (1), (2);"
                              " COMMIT; SELECT sum(x) FROM t",
                              0, NULL, rec_cb, &a));
    /* Fails half-way: the session is left in an aborted transaction, which db.c rolls back. */
    T_ASSERT_EQ(0, md_db_send(db, "BEGIN; INSERT INTO t VALUES (100); SELECT 1/0; COMMIT", 0, NULL,
                              rec_cb, &b));
    T_ASSERT_EQ(0, md_db_send(db, "SELECT sum(x) FROM t", 0, NULL, rec_cb, &c));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &c, 5000));
    T_ASSERT_EQ(0, a.status);
    T_ASSERT_EQ(5, a.nres);
    T_ASSERT_STREQ("3", a.val);
    T_ASSERT_EQ(MD_EDB, b.status);
    T_ASSERT_STREQ("22012", b.sqlstate);
    T_ASSERT_EQ(0, c.status);
    T_ASSERT_STREQ("3", c.val); /* the 100 was rolled back */
    close_db(&loop, db);
    finish_loop(&loop);
}

/* A repeating 10 ms timer that records the longest gap between its ticks. */
struct stall {
    uv_timer_t t;
    uint64_t last_ns, max_gap_ns;
    int ticks;
};

static void stall_cb(uv_timer_t *t)
{
    struct stall *s = MD_CONTAINER_OF(t, struct stall, t);
    uint64_t now = uv_hrtime();
    if (s->last_ns != 0 && now - s->last_ns > s->max_gap_ns)
        s->max_gap_ns = now - s->last_ns;
    s->last_ns = now;
    s->ticks++;
}

struct states {
    int seen[MD_DB_BACKOFF + 1];
    int changes;
};

static void states_cb(struct md_db *db, enum md_db_state st, void *ud)
{
    struct states *s = ud;
    (void)db;
    s->seen[st]++;
    s->changes++;
}

TEST(db_refused_backs_off_without_blocking)
{
    md_log_init("test_db", getenv("TEST_VERBOSE") ? MD_LOG_DEBUG : MD_LOG_ERROR);
    uv_loop_t loop;
    struct stall s = {0};
    struct states sts;
    memset(&sts, 0, sizeof sts);
    struct rec r = {0};
    struct md_db_config cfg = {
        .conninfo = "host=/nonexistent/meshd-no-pg port=5432 user=postgres dbname=postgres",
        .backoff_initial_ms = 20,
        .backoff_max_ms = 80,
        .state_cb = states_cb,
        .ud = &sts,
    };
    struct md_db *db;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &db));
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r));
    uv_timer_init(&loop, &s.t);
    uv_timer_start(&s.t, stall_cb, 10, 10);
    run_until(&loop, never, NULL, 600);
    struct md_db_stats st;
    md_db_stats(db, &st);
    T_ASSERT_TRUE(st.failures >= 4);
    T_ASSERT_TRUE(sts.seen[MD_DB_BACKOFF] >= 4);
    T_ASSERT_TRUE(sts.seen[MD_DB_CONNECTING] >= 4);
    T_ASSERT_EQ(0, st.connects);
    T_ASSERT_FALSE(r.done); /* queued requests wait for a connection */
    T_ASSERT_EQ(1, md_db_queued(db));
    T_ASSERT_TRUE(s.ticks >= 40);
    T_ASSERT_TRUE(s.max_gap_ns < 100 * 1000000ull);
    close_db(&loop, db);
    T_ASSERT_TRUE(r.done);
    T_ASSERT_EQ(MD_EDB, r.status);
    T_ASSERT_EQ(1, r.finals);
    uv_close((uv_handle_t *)&s.t, NULL);
    finish_loop(&loop);
}

/* A server that accepts the connection (the kernel does, via the backlog) and never answers. */
TEST(db_connect_timeout)
{
    md_log_init("test_db", getenv("TEST_VERBOSE") ? MD_LOG_DEBUG : MD_LOG_ERROR);
    char dir[] = "/tmp/test_db.XXXXXX";
    char path[100], ci[256];
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    uv_loop_t loop;
    struct stall s = {0};
    struct states sts;
    memset(&sts, 0, sizeof sts);

    T_ASSERT_TRUE(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/.s.PGSQL.5432", dir);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    T_ASSERT_TRUE(lfd >= 0);
    T_ASSERT_EQ(0, bind(lfd, (struct sockaddr *)&sa, sizeof sa));
    T_ASSERT_EQ(0, listen(lfd, 16));
    snprintf(ci, sizeof ci, "host=%s port=5432 user=postgres dbname=postgres", dir);

    struct md_db_config cfg = {.conninfo = ci,
                               .connect_timeout_ms = 100,
                               .backoff_initial_ms = 20,
                               .backoff_max_ms = 40,
                               .state_cb = states_cb,
                               .ud = &sts};
    struct md_db *db;
    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &db));
    uv_timer_init(&loop, &s.t);
    uv_timer_start(&s.t, stall_cb, 10, 10);
    run_until(&loop, never, NULL, 500);
    struct md_db_stats st;
    md_db_stats(db, &st);
    T_ASSERT_TRUE(st.failures >= 2);
    T_ASSERT_TRUE(st.failures <= 5); /* each attempt waited for its 100 ms timeout */
    T_ASSERT_TRUE(sts.seen[MD_DB_BACKOFF] >= 2);
    T_ASSERT_TRUE(s.max_gap_ns < 100 * 1000000ull);
    close_db(&loop, db);
    uv_close((uv_handle_t *)&s.t, NULL);
    finish_loop(&loop);
    close(lfd);
    unlink(path);
    rmdir(dir);
}

struct reconn {
    struct md_db *db;
    uint64_t want;
};

static bool reconnected(void *arg)
{
    struct reconn *rc = arg;
    struct md_db_stats st;
    md_db_stats(rc->db, &st);
    return st.reconnects >= rc->want && md_db_state(rc->db) == MD_DB_IDLE;
}

static bool is_busy(void *arg)
{
    return md_db_state(arg) == MD_DB_BUSY;
}

TEST(db_server_kills_session)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec pid = {0}, sleep = {0}, queued = {0}, kill = {0}, after = {0};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db_config cfg = {.conninfo = ci, .backoff_initial_ms = 20, .backoff_max_ms = 50};
    struct md_db *a, *b;
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &a));
    b = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(a, "SELECT pg_backend_pid()", 0, NULL, rec_cb, &pid));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &pid, 5000));
    T_ASSERT_EQ(0, md_db_send(a, "SELECT pg_sleep(30)", 0, NULL, rec_cb, &sleep));
    T_ASSERT_EQ(0, md_db_send(a, "SELECT 7", 0, NULL, rec_cb, &queued));
    T_ASSERT_TRUE(run_until(&loop, is_busy, a, 5000));
    const char *p[] = {pid.val};
    T_ASSERT_EQ(0, md_db_send(b, "SELECT pg_terminate_backend($1::int)", 1, p, rec_cb, &kill));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &sleep, 10000));
    T_ASSERT_EQ(MD_EDB, sleep.status); /* in flight when the session died: failed, not resent */
    T_ASSERT_EQ(1, sleep.finals);
    /* The two sessions are independent: b's answer may come after a's failure. */
    T_ASSERT_TRUE(run_until(&loop, rec_done, &kill, 10000));
    T_ASSERT_STREQ("t", kill.val);
    /* The request that was only queued survives and runs on the new connection. */
    T_ASSERT_TRUE(run_until(&loop, rec_done, &queued, 10000));
    T_ASSERT_EQ(0, queued.status);
    T_ASSERT_STREQ("7", queued.val);
    struct reconn rc = {a, 1};
    T_ASSERT_TRUE(run_until(&loop, reconnected, &rc, 5000));
    T_ASSERT_EQ(0, md_db_send(a, "SELECT 1", 0, NULL, rec_cb, &after));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &after, 5000));
    T_ASSERT_EQ(0, after.status);
    struct md_db_stats st;
    md_db_stats(a, &st);
    T_ASSERT_EQ(1, st.reconnects);
    T_ASSERT_EQ(1, st.failures);
    close_db(&loop, a);
    close_db(&loop, b);
    finish_loop(&loop);
}

static bool is_connecting(void *arg)
{
    return md_db_state(arg) == MD_DB_CONNECTING;
}

TEST(db_close_early_and_while_connecting)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec r1 = {0}, r2 = {0};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    /* Closed before the loop ever ran. */
    struct md_db *db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r1));
    close_db(&loop, db);
    T_ASSERT_EQ(MD_EDB, r1.status);
    T_ASSERT_EQ(1, r1.finals);

    /* Closed in the middle of the connect handshake. */
    db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r2));
    T_ASSERT_TRUE(run_until(&loop, is_connecting, db, 5000));
    close_db(&loop, db);
    T_ASSERT_EQ(MD_EDB, r2.status);
    T_ASSERT_EQ(1, r2.finals);
    finish_loop(&loop);
}

TEST(db_close_while_busy)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec busy = {0}, queued = {0}, late = {0};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    struct md_db *db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(db, "SELECT pg_sleep(10)", 0, NULL, rec_cb, &busy));
    T_ASSERT_EQ(0, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &queued));
    T_ASSERT_TRUE(run_until(&loop, is_busy, db, 5000));
    uint64_t t0 = uv_hrtime();
    bool closed = false;
    md_db_close(db, closed_cb, &closed);
    T_ASSERT_EQ(MD_EDB, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &late));
    T_ASSERT_TRUE(run_until(&loop, flag_set, &closed, 5000));
    T_ASSERT_TRUE(uv_hrtime() - t0 < 1000 * 1000000ull); /* did not wait for the sleep */
    T_ASSERT_EQ(MD_EDB, busy.status);
    T_ASSERT_EQ(MD_EDB, queued.status);
    T_ASSERT_EQ(1, busy.finals);
    T_ASSERT_FALSE(late.done);
    finish_loop(&loop);
}

/* Closing from inside a result callback: db.c is in the middle of delivering. */
struct close_in_cb {
    struct md_db *db;
    bool closed;
    int results, finals, final_status;
};

static void close_in_cb(void *ud, int status, PGresult *res)
{
    struct close_in_cb *c = ud;
    if (res != NULL) {
        c->results++;
        if (c->results == 1)
            md_db_close(c->db, closed_cb, &c->closed);
        return;
    }
    c->finals++;
    c->final_status = status;
}

TEST(db_close_from_callback)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct close_in_cb c = {0};
    struct rec next = {0};

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    c.db = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(c.db, "SELECT 1; SELECT 2; SELECT 3", 0, NULL, close_in_cb, &c));
    T_ASSERT_EQ(0, md_db_send(c.db, "SELECT 4", 0, NULL, rec_cb, &next));
    T_ASSERT_TRUE(run_until(&loop, flag_set, &c.closed, 5000));
    T_ASSERT_EQ(1, c.results); /* nothing delivered after close */
    T_ASSERT_EQ(1, c.finals);
    T_ASSERT_EQ(MD_EDB, c.final_status);
    T_ASSERT_EQ(MD_EDB, next.status);
    finish_loop(&loop);
}

struct notes {
    int n;
    char channel[64], payload[64];
};

static void notify_cb(void *ud, const char *channel, const char *payload)
{
    struct notes *n = ud;
    n->n++;
    snprintf(n->channel, sizeof n->channel, "%s", channel);
    snprintf(n->payload, sizeof n->payload, "%s", payload);
}

static bool got_note(void *arg)
{
    return ((struct notes *)arg)->n > 0;
}

TEST(db_listen_notify)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct notes notes = {0};
    struct rec l = {0}, n = {0};
    struct md_db_config cfg = {.conninfo = ci, .notify_cb = notify_cb, .ud = &notes};
    struct md_db *a, *b;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &a));
    b = open_db(&loop, ci);
    T_ASSERT_EQ(0, md_db_send(a, "LISTEN meshd_test", 0, NULL, rec_cb, &l));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &l, 5000));
    T_ASSERT_EQ(0, l.status);
    /* a is IDLE now: the notification arrives with no request in flight. */
    const char *p[] = {"hello"};
    T_ASSERT_EQ(0, md_db_send(b, "SELECT pg_notify('meshd_test', $1)", 1, p, rec_cb, &n));
    T_ASSERT_TRUE(run_until(&loop, got_note, &notes, 5000));
    T_ASSERT_EQ(1, notes.n);
    T_ASSERT_STREQ("meshd_test", notes.channel);
    T_ASSERT_STREQ("hello", notes.payload);
    close_db(&loop, a);
    close_db(&loop, b);
    finish_loop(&loop);
}

TEST(db_on_connect)
{
    const char *ci = pg();
    uv_loop_t loop;
    struct rec r = {0};
    struct states sts;
    memset(&sts, 0, sizeof sts);
    struct md_db_config cfg = {.conninfo = ci, .on_connect = "SET application_name = 'meshd_t'"};
    struct md_db *db;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &db));
    T_ASSERT_EQ(0,
                md_db_send(db, "SELECT current_setting('application_name')", 0, NULL, rec_cb, &r));
    T_ASSERT_TRUE(run_until(&loop, rec_done, &r, 5000));
    T_ASSERT_STREQ("meshd_t", r.val);
    struct md_db_stats st;
    md_db_stats(db, &st);
    T_ASSERT_EQ(1, st.queries_sent); /* on_connect is not counted */
    close_db(&loop, db);

    /* A failing on_connect counts as a failed connection: back off, never IDLE. */
    cfg.on_connect = "SET no_such_setting_xyz = 1";
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 40;
    cfg.state_cb = states_cb;
    cfg.ud = &sts;
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &db));
    run_until(&loop, never, NULL, 300);
    md_db_stats(db, &st);
    T_ASSERT_TRUE(st.failures >= 2);
    T_ASSERT_EQ(0, sts.seen[MD_DB_IDLE]);
    close_db(&loop, db);
    finish_loop(&loop);
}

TEST(db_queue_bound)
{
    md_log_init("test_db", MD_LOG_ERROR);
    uv_loop_t loop;
    struct rec r[4] = {{0}};
    struct md_db_config cfg = {.conninfo = "host=/nonexistent/meshd-no-pg dbname=x",
                               .max_queue = 3};
    struct md_db *db;

    T_ASSERT_EQ(0, uv_loop_init(&loop));
    T_ASSERT_EQ(0, md_db_open(&loop, &cfg, &db));
    for (int i = 0; i < 3; i++)
        T_ASSERT_EQ(0, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r[i]));
    T_ASSERT_EQ(MD_ETOOBIG, md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r[3]));
    T_ASSERT_EQ(3, md_db_queued(db));
    close_db(&loop, db);
    for (int i = 0; i < 3; i++)
        T_ASSERT_EQ(MD_EDB, r[i].status);
    T_ASSERT_FALSE(r[3].done);
    finish_loop(&loop);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[1 << 16];
    size_t n = f != NULL ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

TEST(db_password_never_logged)
{
    const char *ci = pg();
    char *err = NULL;
    const char *host = NULL;
    PQconninfoOption *opts = PQconninfoParse(ci, &err);
    T_ASSERT_TRUE(opts != NULL);
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "host") == 0)
            host = o->val;
    T_ASSERT_TRUE(host != NULL);
    char url[512], bad[512], logpath[] = "/tmp/test_db_log.XXXXXX";
    snprintf(url, sizeof url, "postgresql://postgres:s3cretpw@/postgres?host=%s", host);
    snprintf(bad, sizeof bad, "postgresql://postgres:s3cretpw@/postgres?host=/nonexistent/x");
    PQconninfoFree(opts);

    int logfd = mkstemp(logpath);
    T_ASSERT_TRUE(logfd >= 0);
    fflush(stderr);
    int saved = dup(2);
    T_ASSERT_TRUE(saved >= 0);
    dup2(logfd, 2);
    md_log_init("test_db", MD_LOG_DEBUG);

    uv_loop_t loop;
    struct rec r = {0}, e = {0};
    struct md_db *db, *dead, *none = NULL;
    struct md_db_config cfg = {.conninfo = url, .on_connect = "SET application_name = meshd"};
    int rc_open = uv_loop_init(&loop);
    rc_open |= md_db_open(&loop, &cfg, &db);
    cfg.conninfo = bad;
    cfg.backoff_initial_ms = 20;
    rc_open |= md_db_open(&loop, &cfg, &dead);
    cfg.conninfo = "postgresql://postgres:s3cretpw@/postgres?host=%zz"; /* unparseable */
    int rc_bad = md_db_open(&loop, &cfg, &none);
    if (rc_open == 0) {
        if (md_db_send(db, "SELECT 1", 0, NULL, rec_cb, &r) == 0)
            run_until(&loop, rec_done, &r, 5000);
        if (md_db_send(db, "SELECT 's3cretpw'::int", 0, NULL, rec_cb, &e) == 0)
            run_until(&loop, rec_done, &e, 5000);
        run_until(&loop, never, NULL, 100);
        bool c1 = false, c2 = false;
        md_db_close(db, closed_cb, &c1);
        md_db_close(dead, closed_cb, &c2);
        run_until(&loop, flag_set, &c1, 5000);
        run_until(&loop, flag_set, &c2, 5000);
    }

    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(logfd);
    md_log_init("test_db", getenv("TEST_VERBOSE") ? MD_LOG_DEBUG : MD_LOG_ERROR);
    const char *log = slurp(logpath);
    unlink(logpath);
    if (getenv("TEST_VERBOSE"))
        fputs(log, stderr);
    T_ASSERT_EQ(0, rc_open);
    T_ASSERT_EQ(MD_ECONFIG, rc_bad);
    T_ASSERT_TRUE(none == NULL);
    T_ASSERT_EQ(0, r.status);
    T_ASSERT_EQ(MD_EDB, e.status); /* the error text quotes the SQL, which holds the secret */
    T_ASSERT_CONTAINS(log, "db connected: target=host=");
    T_ASSERT_CONTAINS(log, "user=postgres");
    T_ASSERT_CONTAINS(log, "db connect failed: target=host=/nonexistent/x");
    T_ASSERT_TRUE(strstr(log, "s3cretpw") == NULL);
    finish_loop(&loop);
}

T_MAIN()
