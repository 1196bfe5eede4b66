/* test_pq_exec.c - md_pq_exec, COPY in/out, md_pq_tx and cancellation against a real
 * PostgreSQL (the ctest 'pg' fixture): each SQLSTATE class comes from a real statement, each
 * test in a fresh database (pgtest.h). */
#include "meshd/md_alloc.h"
#include "meshd/md_pq.h"
#include "meshd/md_status.h"
#include "meshd/md_worker.h"
#include "pgtest.h"
#include "pq_exec_internal.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <time.h>

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs sql with md_pq_exec and expects code want, and "(state)" in the message. */
static void expect_class(PGconn *c, const char *sql, int want, const char *state)
{
    struct md_error err = {0};
    PGresult *res = (PGresult *)1;
    int rc = md_pq_exec(c, sql, 0, NULL, &res, &err);

    if (rc != want)
        T_FAIL("%s: got %d (%s), want %d", sql, rc, err.msg, want);
    if (rc == 0)
        PQclear(res);
    else
        T_ASSERT_TRUE(res == NULL);
    if (state != NULL)
        T_ASSERT_CONTAINS(err.msg, state);
}

TEST(pqx_exec_params_and_result)
{
    const char *params[] = {"41", NULL};
    struct md_error err = {0};
    PGresult *res;

    pgt_fresh_db("pqx", false);
    T_ASSERT_EQ(0, md_pq_exec(db, "SELECT $1::int + 1, $2::text IS NULL", 2, params, &res, &err));
    T_ASSERT_STREQ("42", PQgetvalue(res, 0, 0));
    T_ASSERT_STREQ("t", PQgetvalue(res, 0, 1));
    PQclear(res);
    T_ASSERT_EQ(0, md_pq_exec(db, "CREATE TABLE t (a int)", 0, NULL, NULL, &err));
}

TEST(pqx_sql_errors_are_permanent)
{
    pgt_fresh_db("pqx", false);
    expect_class(db, "SELEC 1", MD_ESQL, "(42601)");
    expect_class(db, "SELECT * FROM no_such_table", MD_ESQL,
                 "relation \"no_such_table\" does not exist (42P01)");
    expect_class(db, "SELECT 1/0", MD_EDB, "(22012)");
    expect_class(db, "SELECT 1", 0, NULL); /* the connection is still usable */
}

TEST(pqx_lock_timeout_is_locked)
{
    PGconn *other;

    pgt_fresh_db("pqx", false);
    T_EXEC_OK("CREATE TABLE t (a int)");
    other = connect_db();
    T_ASSERT_TRUE(other != NULL);
    PQclear(PQexec(other, "BEGIN"));
    PQclear(PQexec(other, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE"));
    T_EXEC_OK("SET lock_timeout = '200ms'");
    expect_class(db, "SELECT * FROM t", MD_ELOCKED, "(55P03)");
    PQfinish(other);
}

TEST(pqx_statement_timeout_is_timedout)
{
    int64_t t0;

    pgt_fresh_db("pqx", false);
    md__pq_cancel_reset();
    T_EXEC_OK("SET statement_timeout = '100ms'");
    t0 = mono_ms();
    expect_class(db, "SELECT pg_sleep(10)", -ETIMEDOUT, "(57014)");
    T_ASSERT_TRUE(mono_ms() - t0 < 5000);
}

static void on_alarm(int sig)
{
    (void)sig;
    md_pq_cancel_all();
}

/* The stop path: a signal handler calls md_pq_cancel_all while a statement runs. */
TEST(pqx_cancel_all_is_canceled_within_a_second)
{
    struct sigaction sa = {.sa_handler = on_alarm};
    struct itimerval it = {.it_value = {.tv_usec = 200000}};
    struct md_error err = {0};
    int64_t t0, took;
    int rc;

    pgt_fresh_db("pqx", false);
    md__pq_cancel_reset();
    T_ASSERT_EQ(0, md_pq_cancel_register(db));
    T_ASSERT_EQ(0, md_pq_cancel_register(db)); /* twice: one slot */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    t0 = mono_ms();
    setitimer(ITIMER_REAL, &it, NULL);
    rc = md_pq_exec(db, "SELECT pg_sleep(10)", 0, NULL, NULL, &err);
    took = mono_ms() - t0;
    signal(SIGALRM, SIG_DFL);
    fprintf(stderr, "  cancelled after %lld ms: %s\n", (long long)took, err.msg);
    T_ASSERT_EQ(-ECANCELED, rc);
    T_ASSERT_CONTAINS(err.msg, "(57014)");
    T_ASSERT_TRUE(took < 1000);
    /* Once stopping, nothing new is started. */
    T_ASSERT_EQ(-ECANCELED, md_pq_exec(db, "SELECT 1", 0, NULL, NULL, &err));
    T_ASSERT_CONTAINS(err.msg, "stopping");
    md_pq_cancel_forget(db);
    md__pq_cancel_reset();
    expect_class(db, "SELECT 1", 0, NULL);
}

TEST(pqx_cancel_slots_are_capped)
{
    PGconn *c[17];
    int i;

    pgt_fresh_db("pqx", false);
    for (i = 0; i < 17; i++) {
        c[i] = connect_db();
        T_ASSERT_TRUE(c[i] != NULL);
    }
    for (i = 0; i < 16; i++)
        T_ASSERT_EQ(0, md_pq_cancel_register(c[i]));
    T_ASSERT_EQ(MD_ETOOBIG, md_pq_cancel_register(c[16]));
    md_pq_cancel_forget(c[3]);
    T_ASSERT_EQ(0, md_pq_cancel_register(c[16])); /* the freed slot is reused */
    for (i = 0; i < 17; i++) {
        md_pq_cancel_forget(c[i]);
        PQfinish(c[i]);
    }
    md_pq_cancel_forget(NULL);
}

TEST(pqx_terminated_backend_is_dbdown)
{
    PGconn *other;
    char q[96];
    PGresult *r;

    pgt_fresh_db("pqx", false);
    other = connect_db();
    T_ASSERT_TRUE(other != NULL);
    snprintf(q, sizeof q, "SELECT pg_terminate_backend(%d)", PQbackendPID(other));
    r = PQexec(db, q);
    T_ASSERT_EQ(PGRES_TUPLES_OK, PQresultStatus(r));
    PQclear(r);
    usleep(100000);
    expect_class(other, "SELECT 1", MD_EDBDOWN, NULL);
    PQfinish(other);
}

struct gen {
    int next, last, fail_at;
};

/* Rows "i\tname-i\n" until last; a negative code at fail_at. */
static int gen_fill(void *ud, char *buf, size_t cap, size_t *len)
{
    struct gen *g = ud;
    size_t n = 0;

    while (g->next <= g->last && cap - n > 64) {
        if (g->next == g->fail_at)
            return -EIO;
        n += (size_t)snprintf(buf + n, cap - n, "%d\tname-%d\n", g->next, g->next);
        g->next++;
    }
    *len = n;
    return 0;
}

static long count_rows(const char *table)
{
    char q[96];
    PGresult *r;
    long n;

    snprintf(q, sizeof q, "SELECT count(*) FROM %s", table);
    r = PQexec(db, q);
    n = PQresultStatus(r) == PGRES_TUPLES_OK ? atol(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

TEST(pqx_copy_in_100k_rows)
{
    struct gen g = {.next = 1, .last = 100000};
    struct md_error err = {0};
    uint64_t rows = 0;

    pgt_fresh_db("pqx", false);
    T_EXEC_OK("CREATE TABLE t (id int PRIMARY KEY, name text)");
    if (md_pq_copy_in(db, "COPY t FROM STDIN", gen_fill, &g, &rows, &err) != 0)
        T_FAIL("copy in: %s", err.msg);
    T_ASSERT_EQ(100000, rows);
    T_ASSERT_EQ(100000, count_rows("t"));
}

TEST(pqx_copy_in_aborted_by_fill_or_server)
{
    struct gen g = {.next = 1, .last = 100000, .fail_at = 5000};
    struct md_error err = {0};
    uint64_t rows = 7;

    pgt_fresh_db("pqx", false);
    T_EXEC_OK("CREATE TABLE t (id int PRIMARY KEY, name text)");
    T_ASSERT_EQ(-EIO, md_pq_copy_in(db, "COPY t FROM STDIN", gen_fill, &g, &rows, &err));
    T_ASSERT_EQ(0, rows);
    T_ASSERT_EQ(0, count_rows("t"));
    T_ASSERT_EQ(PQTRANS_IDLE, PQtransactionStatus(db));
    /* A duplicate key: the server's error, classed. */
    g = (struct gen){.next = 1, .last = 10};
    T_EXEC_OK("INSERT INTO t VALUES (5, 'x')");
    T_ASSERT_EQ(MD_EDB, md_pq_copy_in(db, "COPY t FROM STDIN", gen_fill, &g, NULL, &err));
    T_ASSERT_CONTAINS(err.msg, "(23505)");
    /* Not a COPY, and a COPY through md_pq_exec. */
    T_ASSERT_EQ(-EINVAL, md_pq_copy_in(db, "SELECT 1", gen_fill, &g, NULL, &err));
    T_ASSERT_EQ(-EINVAL, md_pq_exec(db, "COPY t FROM STDIN", 0, NULL, NULL, &err));
    T_ASSERT_EQ(-EINVAL, md_pq_exec(db, "COPY t TO STDOUT", 0, NULL, NULL, &err));
    T_ASSERT_EQ(MD_ESQL, md_pq_copy_in(db, "COPY nope FROM STDIN", gen_fill, &g, NULL, &err));
    T_ASSERT_EQ(1, count_rows("t"));
}

struct sink {
    long rows, stop_after;
    size_t bytes;
};

static int sink_row(void *ud, const char *row, size_t len)
{
    struct sink *s = ud;

    if (len == 0 || row[len - 1] != '\n')
        return -EPROTO;
    s->rows++;
    s->bytes += len;
    return s->stop_after > 0 && s->rows >= s->stop_after ? -EPIPE : 0;
}

TEST(pqx_copy_out_all_and_early_abort)
{
    struct sink s = {0};
    struct md_error err = {0};
    int64_t t0;

    pgt_fresh_db("pqx", false);
    T_ASSERT_EQ(0, md_pq_copy_out(db, "COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT",
                                  sink_row, &s, &err));
    T_ASSERT_EQ(1000, s.rows);
    s = (struct sink){.stop_after = 10};
    t0 = mono_ms();
    T_ASSERT_EQ(-EPIPE, md_pq_copy_out(db,
                                       "COPY (SELECT g, repeat('x', 100) FROM "
                                       "generate_series(1, 2000000) g) TO STDOUT",
                                       sink_row, &s, &err));
    /* The function scan computes its rows before the first one goes out: the time is mostly
     * that, the abort itself is quick. */
    fprintf(stderr, "  aborted after %lld ms\n", (long long)(mono_ms() - t0));
    T_ASSERT_EQ(10, s.rows);
    T_ASSERT_EQ(PQTRANS_IDLE, PQtransactionStatus(db));
    expect_class(db, "SELECT 1", 0, NULL);
    T_ASSERT_EQ(MD_ESQL, md_pq_copy_out(db, "COPY nope TO STDOUT", sink_row, &s, &err));
}

struct tx_state {
    PGconn *other;
    int calls;
};

/* The first attempt reads a row in REPEATABLE READ, another connection updates it, then this
 * one updates it too: 40001 "could not serialize access due to concurrent update".  The
 * second attempt meets no rival and commits. */
static int tx_conflict(PGconn *c, void *ud, struct md_error *err)
{
    struct tx_state *st = ud;
    int rc;

    st->calls++;
    if ((rc = md_pq_exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0, NULL, NULL,
                         err)) < 0 ||
        (rc = md_pq_exec(c, "SELECT v FROM t WHERE id = 1", 0, NULL, NULL, err)) < 0)
        return rc;
    if (st->calls == 1)
        PQclear(PQexec(st->other, "UPDATE t SET v = v + 100 WHERE id = 1"));
    return md_pq_exec(c, "UPDATE t SET v = v + 1 WHERE id = 1", 0, NULL, NULL, err);
}

TEST(pqx_tx_retries_a_serialization_failure)
{
    struct tx_state st = {0};
    struct md_error err = {0};
    PGresult *r;

    pgt_fresh_db("pqx", false);
    T_EXEC_OK("CREATE TABLE t (id int PRIMARY KEY, v int)");
    T_EXEC_OK("INSERT INTO t VALUES (1, 0)");
    st.other = connect_db();
    T_ASSERT_TRUE(st.other != NULL);
    if (md_pq_tx(db, tx_conflict, &st, 3, &err) != 0)
        T_FAIL("md_pq_tx: %s", err.msg);
    T_ASSERT_EQ(2, st.calls);
    r = PQexec(db, "SELECT v FROM t WHERE id = 1");
    T_ASSERT_STREQ("101", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* With one attempt the failure is returned, classed as a retry. */
    st.calls = 0;
    T_ASSERT_EQ(MD_ERETRY, md_pq_tx(db, tx_conflict, &st, 1, &err));
    T_ASSERT_CONTAINS(err.msg, "(40001)");
    T_ASSERT_EQ(1, st.calls);
    T_ASSERT_EQ(PQTRANS_IDLE, PQtransactionStatus(db));
    PQfinish(st.other);
}

static int tx_insert_then_fail(PGconn *c, void *ud, struct md_error *err)
{
    int rc = md_pq_exec(c, "INSERT INTO t VALUES (2, 0)", 0, NULL, NULL, err);

    if (rc < 0)
        return rc;
    rc = md_pq_exec(c, "SELECT 1/0", 0, NULL, NULL, err);
    return ud != NULL ? 0 : rc; /* ud set: swallow the error */
}

TEST(pqx_tx_rolls_back_on_failure)
{
    struct md_error err = {0};

    pgt_fresh_db("pqx", false);
    T_EXEC_OK("CREATE TABLE t (id int PRIMARY KEY, v int)");
    T_ASSERT_EQ(MD_EDB, md_pq_tx(db, tx_insert_then_fail, NULL, 3, &err));
    T_ASSERT_CONTAINS(err.msg, "(22012)");
    T_ASSERT_EQ(0, count_rows("t"));
    T_ASSERT_EQ(PQTRANS_IDLE, PQtransactionStatus(db));
    T_ASSERT_EQ(MD_EDB, md_pq_tx(db, tx_insert_then_fail, &err, 3, &err));
    T_ASSERT_CONTAINS(err.msg, "rolled back");
    T_ASSERT_EQ(0, count_rows("t"));
}

TEST(pqx_sqlstate_codes)
{
    md__pq_cancel_reset();
    T_ASSERT_EQ(MD_EDBDOWN, md_pq_sqlstate_code(NULL));
    T_ASSERT_EQ(MD_EDBDOWN, md_pq_sqlstate_code(""));
    T_ASSERT_EQ(MD_EDBDOWN, md_pq_sqlstate_code("08006"));
    T_ASSERT_EQ(MD_EDBDOWN, md_pq_sqlstate_code("53300"));
    T_ASSERT_EQ(MD_EDBDOWN, md_pq_sqlstate_code("57P01"));
    T_ASSERT_EQ(MD_EDBDOWN, md_pq_sqlstate_code("57P03"));
    T_ASSERT_EQ(MD_ELOCKED, md_pq_sqlstate_code("55P03"));
    T_ASSERT_EQ(MD_ERETRY, md_pq_sqlstate_code("40001"));
    T_ASSERT_EQ(MD_ERETRY, md_pq_sqlstate_code("40P01"));
    T_ASSERT_EQ(MD_ESQL, md_pq_sqlstate_code("42P01"));
    T_ASSERT_EQ(MD_ESQL, md_pq_sqlstate_code("3D000"));
    T_ASSERT_EQ(MD_ESQL, md_pq_sqlstate_code("3F000"));
    T_ASSERT_EQ(MD_ESQL, md_pq_sqlstate_code("28P01"));
    T_ASSERT_EQ(-ETIMEDOUT, md_pq_sqlstate_code("57014"));
    T_ASSERT_EQ(MD_EDB, md_pq_sqlstate_code("23505"));
}

/* md_log borrows w.ident: keep it alive for the whole process. */
static struct md_worker w;

/* The test database as one connection string: the base conninfo with dbname replaced. */
static char *test_db_url(void)
{
    return md_xasprintf("%s dbname=%s", t_pg_conninfo(), dbname);
}

static void worker_init(void)
{
    char *argv[] = {"meshd-kit", NULL};

    unsetenv("MESHD_STATUS_FD");
    setenv("MESHD_LOG_LEVEL", getenv("TEST_VERBOSE") ? "debug" : "error", 1);
    setenv("MESHD_JOB", "nightly", 1);
    if (md_worker_init(&w, "kit", 1, argv, NULL) != 0)
        T_FAIL("md_worker_init");
}

TEST(pqx_worker_connect)
{
    struct md_error err = {0};
    char *url, *own;
    PGconn *c;
    PGresult *r;

    pgt_fresh_db("pqx", false);
    md__pq_cancel_reset();
    worker_init();
    url = test_db_url();
    if (md_worker_connect(&w, url, &c, &err) != 0)
        T_FAIL("connect: %s", err.msg);
    r = PQexec(c, "SELECT current_setting('application_name'), current_database()");
    T_ASSERT_STREQ("meshd-kit/nightly", PQgetvalue(r, 0, 0));
    T_ASSERT_STREQ(dbname, PQgetvalue(r, 0, 1));
    PQclear(r);
    md_worker_disconnect(c);
    /* The string's own settings win over ours. */
    own = md_xasprintf("%s application_name=mine", url);
    T_ASSERT_EQ(0, md_worker_connect(&w, own, &c, &err));
    r = PQexec(c, "SHOW application_name");
    T_ASSERT_STREQ("mine", PQgetvalue(r, 0, 0));
    PQclear(r);
    md_worker_disconnect(c);
    md_worker_disconnect(NULL);
    /* $DATABASE_URL when no url is given. */
    setenv("DATABASE_URL", url, 1);
    T_ASSERT_EQ(0, md_worker_connect(&w, "", &c, &err));
    md_worker_disconnect(c);
    unsetenv("DATABASE_URL");
    T_ASSERT_EQ(MD_ECONFIG, md_worker_connect(&w, NULL, &c, &err));
    T_ASSERT_CONTAINS(err.msg, "DATABASE_URL");
    T_ASSERT_EQ(MD_ECONFIG,
                md_worker_connect(&w, "host=h password=secretpw nosuchoption=1", &c, &err));
    T_ASSERT_TRUE(strstr(err.msg, "secretpw") == NULL);
    T_ASSERT_EQ(MD_EDBDOWN,
                md_worker_connect(&w, "postgresql://u:secretpw@127.0.0.1:1/d", &c, &err));
    T_ASSERT_CONTAINS(err.msg, "cannot connect to u@127.0.0.1:1/d");
    T_ASSERT_TRUE(strstr(err.msg, "secretpw") == NULL);
    T_ASSERT_TRUE(c == NULL);
    md_free(own);
    md_free(url);
}

/* The whole stop contract: a worker in pg_sleep(10) gets SIGTERM, the handler cancels the
 * query, md_pq_exec returns -ECANCELED, md_worker_finish re-raises: dead by SIGTERM soon. */
TEST(pqx_worker_sigterm_cancels_the_query)
{
    int p[2], status;
    char num[16], ch;
    int64_t t0, took;
    pid_t pid;
    char *url;

    pgt_fresh_db("pqx", false);
    url = test_db_url();
    T_ASSERT_EQ(0, pipe(p));
    pid = fork();
    T_ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        struct md_error err = {0};
        PGconn *c;
        int rc;
        close(p[0]);
        snprintf(num, sizeof num, "%d", p[1]);
        setenv("MESHD_STATUS_FD", num, 1);
        setenv("MESHD_LOG_LEVEL", "error", 1);
        char *argv[] = {"meshd-kit", NULL};
        if (md_worker_init(&w, "kit", 1, argv, NULL) != 0 ||
            md_worker_connect(&w, url, &c, &err) != 0)
            _exit(98);
        (void)md_status_ready(&w.st);
        rc = md_pq_exec(c, "SELECT pg_sleep(10)", 0, NULL, NULL, &err);
        md_worker_disconnect(c);
        if (rc != -ECANCELED)
            _exit(97);
        md_worker_finish(&w, rc, NULL);
    }
    close(p[1]);
    while (read(p[0], &ch, 1) == 1 && ch != '\n')
        ;
    usleep(300000); /* into the pg_sleep */
    t0 = mono_ms();
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    took = mono_ms() - t0;
    close(p[0]);
    md_free(url);
    fprintf(stderr, "  dead %lld ms after SIGTERM\n", (long long)took);
    if (!WIFSIGNALED(status))
        T_FAIL("exited %d instead of dying by SIGTERM",
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    T_ASSERT_EQ(SIGTERM, WTERMSIG(status));
    T_ASSERT_TRUE(took < 1000);
}

T_MAIN()
