/* test_worker.c - the worker kit: exit codes, the identity environment, argv, the config
 * document, status lines (read back from a pipe with md_status_parse), the progress rate limit
 * and heartbeat, and the finish path, run in fork()ed children whose exit status is checked. */
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_status.h"
#include "meshd/md_worker.h"
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* md_log borrows w.ident: keep the struct alive for the whole process. */
static struct md_worker w;

static char *argv_plain[] = {"meshd-kit", NULL};

static void clear_env(void)
{
    static const char *const vars[] = {
        "MESHD_JOB",
        "MESHD_RUN_ID",
        "MESHD_NODE",
        "MESHD_SCHEDULED_AT",
        "MESHD_MESSAGE_ID",
        "MESHD_MESSAGE_TYPE",
        "MESHD_MESSAGE_PAYLOAD",
        "MESHD_STATUS_FD",
        "MESHD_LOG_LEVEL",
    };
    for (size_t i = 0; i < MD_ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
    setenv("MESHD_LOG_LEVEL", getenv("TEST_VERBOSE") ? "debug" : "error", 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

TEST(worker_exit_codes)
{
    static const struct {
        int rc, code;
    } map[] = {
        {0, 0},          {MD_ECONFIG, 100}, {MD_EPARSE, 100},  {MD_ESQL, 100},
        {-EINVAL, 100},  {MD_EDBDOWN, 111}, {MD_ELOCKED, 111}, {MD_ERETRY, 111},
        {-ENOSPC, 111},  {-EAGAIN, 111},    {-ENOMEM, 111},    {MD_EDB, 1},
        {-ETIMEDOUT, 1}, {-ECANCELED, 1},   {MD_ETOOBIG, 1},   {-EIO, 1},
    };
    for (size_t i = 0; i < MD_ARRAY_SIZE(map); i++)
        if (md_worker_exit_code(map[i].rc) != map[i].code)
            T_FAIL("rc %d: exit %d, want %d", map[i].rc, md_worker_exit_code(map[i].rc),
                   map[i].code);
}

TEST(worker_init_reads_the_environment)
{
    char *argv[] = {"meshd-kit", "--config", "/etc/kit.json", NULL};

    clear_env();
    setenv("MESHD_JOB", "nightly", 1);
    setenv("MESHD_RUN_ID", "nightly@20260308T070000Z", 1);
    setenv("MESHD_NODE", "pc", 1);
    setenv("MESHD_SCHEDULED_AT", "2026-03-08T07:00:00Z", 1);
    setenv("MESHD_MESSAGE_ID", "42", 1);
    setenv("MESHD_MESSAGE_TYPE", "validation.failed", 1);
    setenv("MESHD_MESSAGE_PAYLOAD", "{\"rule\":\"x\"}", 1);
    T_ASSERT_EQ(0, md_worker_init(&w, "kit", 3, argv, NULL));
    T_ASSERT_STREQ("kit", w.name);
    T_ASSERT_STREQ("meshd-kit", w.ident);
    T_ASSERT_STREQ("nightly", w.job);
    T_ASSERT_STREQ("nightly@20260308T070000Z", w.run_id);
    T_ASSERT_STREQ("pc", w.node);
    T_ASSERT_EQ(1772953200000LL, w.scheduled_at_ms);
    T_ASSERT_EQ(42, w.message_id);
    T_ASSERT_STREQ("validation.failed", w.message_type);
    T_ASSERT_STREQ("{\"rule\":\"x\"}", w.message_payload);
    T_ASSERT_STREQ("/etc/kit.json", w.config_path);
    T_ASSERT_EQ(-1, w.st.fd); /* by hand: no status fd */
    T_ASSERT_EQ(10000, w.heartbeat_ms);
    T_ASSERT_FALSE(md_worker_stopping());

    clear_env();
    T_ASSERT_EQ(0, md_worker_init(&w, "kit", 1, argv_plain, NULL));
    T_ASSERT_STREQ("", w.job);
    T_ASSERT_STREQ("", w.run_id);
    T_ASSERT_EQ(0, w.scheduled_at_ms);
    T_ASSERT_EQ(0, w.message_id);
    T_ASSERT_TRUE(w.message_type == NULL && w.message_payload == NULL && w.config_path == NULL);
    T_ASSERT_EQ(MD_LOG_ERROR, md__log_level);
}

TEST(worker_init_refuses_bad_input)
{
    static const struct {
        const char *var, *val, *arg;
    } bad[] = {
        {NULL, NULL, "--bogus"},
        {NULL, NULL, "--config"}, /* without its FILE */
        {NULL, NULL, "extra"},
        {"MESHD_SCHEDULED_AT", "yesterday", NULL},
        {"MESHD_SCHEDULED_AT", "2026-03-08T07:00:00", NULL}, /* no offset */
        {"MESHD_MESSAGE_ID", "12x", NULL},
        {"MESHD_MESSAGE_ID", "-1", NULL},
        {"MESHD_LOG_LEVEL", "loud", NULL},
        {"MESHD_STATUS_FD", "three", NULL},
    };
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++) {
        char *argv[] = {"meshd-kit", (char *)bad[i].arg, NULL};
        clear_env();
        if (bad[i].var != NULL)
            setenv(bad[i].var, bad[i].val, 1);
        int rc = md_worker_init(&w, "kit", bad[i].arg ? 2 : 1, argv, NULL);
        if (rc != MD_ECONFIG)
            T_FAIL("case %zu (%s): got %d, want MD_ECONFIG", i,
                   bad[i].arg ? bad[i].arg : bad[i].var, rc);
    }
    clear_env();
}

struct kcfg {
    char *table;
    int64_t batch;
    struct md_strv views;
};

static const struct md_json_key kkeys[] = {
    {"table", MD_J_STRING, offsetof(struct kcfg, table), .required = true},
    {"batch", MD_J_INT, offsetof(struct kcfg, batch), .def = "500", .min = 1, .max = 100000},
    {"views", MD_J_STRV, offsetof(struct kcfg, views), .required = false},
};

static void write_file(const char *path, const char *text, size_t pad)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        T_FAIL("fopen %s", path);
    fputs(text, f);
    for (size_t i = 0; i < pad; i++)
        fputc(' ', f);
    fclose(f);
}

TEST(worker_config_from_file)
{
    char path[] = "/tmp/test_worker_cfg.XXXXXX";
    int fd = mkstemp(path);
    char *argv[] = {"meshd-kit", "--config", path, NULL};
    struct kcfg c = {0};
    struct md_error err = {0};

    T_ASSERT_TRUE(fd >= 0);
    close(fd);
    write_file(path, "{\"table\":\"parcels\",\"views\":\"mv_a\"}", 0);
    clear_env();
    T_ASSERT_EQ(0, md_worker_init(&w, "kit", 3, argv, NULL));
    T_ASSERT_EQ(0, md_worker_config(&w, MD_JSON_KEYS(kkeys), &c, &err));
    T_ASSERT_STREQ("parcels", c.table);
    T_ASSERT_EQ(500, c.batch);
    T_ASSERT_STREQ("mv_a", c.views.v[0]);
    md_json_free(MD_JSON_KEYS(kkeys), &c);

    write_file(path, "{\"table\":\"t\",\"batch\":0}", 0);
    T_ASSERT_EQ(MD_ECONFIG, md_worker_config(&w, MD_JSON_KEYS(kkeys), &c, &err));
    T_ASSERT_STREQ("batch: 0 is under the minimum 1", err.msg);
    md_json_free(MD_JSON_KEYS(kkeys), &c);

    /* Exactly 1 MiB is fine, one byte more is not. */
    write_file(path, "{\"table\":\"t\"}", 1024 * 1024 - 13);
    T_ASSERT_EQ(0, md_worker_config(&w, MD_JSON_KEYS(kkeys), &c, &err));
    md_json_free(MD_JSON_KEYS(kkeys), &c);
    write_file(path, "{\"table\":\"t\"}", 1024 * 1024 - 12);
    T_ASSERT_EQ(MD_ETOOBIG, md_worker_config(&w, MD_JSON_KEYS(kkeys), &c, &err));
    T_ASSERT_CONTAINS(err.msg, "1 MiB");
    md_json_free(MD_JSON_KEYS(kkeys), &c);

    unlink(path);
    T_ASSERT_EQ(-ENOENT, md_worker_config(&w, MD_JSON_KEYS(kkeys), &c, &err));
    T_ASSERT_CONTAINS(err.msg, path);
}

/* stdin: point fd 0 at a file for the call. */
static int config_from_stdin(const char *text, struct kcfg *c, struct md_error *err)
{
    char path[] = "/tmp/test_worker_in.XXXXXX";
    int fd = mkstemp(path), saved = dup(0), rc;

    unlink(path);
    if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return -EIO;
    lseek(fd, 0, SEEK_SET);
    dup2(fd, 0);
    close(fd);
    rc = md_worker_config(&w, MD_JSON_KEYS(kkeys), c, err);
    dup2(saved, 0);
    close(saved);
    return rc;
}

TEST(worker_config_from_stdin)
{
    struct kcfg c = {0};
    struct md_error err = {0};

    clear_env();
    T_ASSERT_EQ(0, md_worker_init(&w, "kit", 1, argv_plain, NULL));
    T_ASSERT_EQ(0, config_from_stdin("{\"table\":\"x\",\"batch\":9}", &c, &err));
    T_ASSERT_STREQ("x", c.table);
    T_ASSERT_EQ(9, c.batch);
    md_json_free(MD_JSON_KEYS(kkeys), &c);
    T_ASSERT_EQ(MD_ECONFIG, config_from_stdin("", &c, &err)); /* {}: table is required */
    T_ASSERT_STREQ("table: required", err.msg);
    T_ASSERT_EQ(MD_EPARSE, config_from_stdin("{\"table\":", &c, &err));
    md_json_free(MD_JSON_KEYS(kkeys), &c);
}

/* ---- status lines through a pipe ------------------------------------------------------- */

struct lines {
    struct md_status_event ev[64];
    int n;
};

/* Reads everything from fd until EOF (or, with eof false, until nothing more comes for
 * 100 ms) and parses the lines. */
static void read_lines(int fd, struct lines *out, bool eof)
{
    static char buf[65536];
    size_t n = 0;

    out->n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (!eof && poll(&p, 1, 100) <= 0)
            break;
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    for (char *l = buf, *nl; l < buf + n && (nl = memchr(l, '\n', (size_t)(buf + n - l)));
         l = nl + 1) {
        struct md_error err = {0};
        if (out->n == 64)
            T_FAIL("too many status lines");
        if (md_status_parse(l, (size_t)(nl - l), &out->ev[out->n], &err) != 0)
            T_FAIL("bad status line '%.*s': %s", (int)(nl - l), l, err.msg);
        out->n++;
    }
}

static void lines_cleanup(struct lines *ls)
{
    for (int i = 0; i < ls->n; i++)
        md_status_event_cleanup(&ls->ev[i]);
    ls->n = 0;
}

/* A pipe whose write end is MESHD_STATUS_FD; returns the read end. */
static int status_pipe(int *wfd)
{
    int p[2];
    char num[16];

    if (pipe(p) < 0)
        T_FAIL("pipe");
    snprintf(num, sizeof num, "%d", p[1]);
    setenv("MESHD_STATUS_FD", num, 1);
    *wfd = p[1];
    return p[0];
}

TEST(worker_progress_is_rate_limited)
{
    struct lines ls;
    int wfd, rfd;

    clear_env();
    rfd = status_pipe(&wfd);
    T_ASSERT_EQ(0, md_worker_init(&w, "kit", 1, argv_plain, NULL));
    T_ASSERT_EQ(wfd, w.st.fd);
    for (int i = 1; i <= 1000; i++)
        T_ASSERT_EQ(0, md_worker_progress(&w, i, 1000, "rows"));
    read_lines(rfd, &ls, false);
    T_ASSERT_EQ(2, ls.n); /* the first, then held back until the last */
    T_ASSERT_EQ(MD_ST_PROGRESS, ls.ev[0].kind);
    T_ASSERT_TRUE(ls.ev[0].u.progress.done == 1);
    T_ASSERT_TRUE(ls.ev[1].u.progress.done == 1000 && ls.ev[1].u.progress.total == 1000);
    T_ASSERT_STREQ("rows", ls.ev[1].u.progress.unit);
    lines_cleanup(&ls);
    sleep_ms(1100);
    T_ASSERT_EQ(0, md_worker_progress(&w, 5, -1, NULL)); /* a second later: goes out */
    T_ASSERT_EQ(0, md_worker_progress(&w, 6, -1, NULL)); /* held back */
    read_lines(rfd, &ls, false);
    T_ASSERT_EQ(1, ls.n);
    T_ASSERT_FALSE(ls.ev[0].u.progress.has_total);
    lines_cleanup(&ls);
    md_status_close(&w.st);
    close(rfd);
}

TEST(worker_tick_sends_heartbeats_when_quiet)
{
    struct lines ls;
    int wfd, rfd;

    clear_env();
    rfd = status_pipe(&wfd);
    T_ASSERT_EQ(0, md_worker_init(&w, "kit", 1, argv_plain, NULL));
    w.heartbeat_ms = 50;
    T_ASSERT_EQ(0, md_worker_tick(&w)); /* just started: quiet for less than 50 ms */
    sleep_ms(60);
    T_ASSERT_EQ(0, md_worker_tick(&w));
    T_ASSERT_EQ(0, md_worker_tick(&w));
    read_lines(rfd, &ls, false);
    T_ASSERT_EQ(1, ls.n);
    T_ASSERT_EQ(MD_ST_HEARTBEAT, ls.ev[0].kind);
    lines_cleanup(&ls);
    sleep_ms(60);
    T_ASSERT_EQ(0, md_worker_progress(&w, 1, 2, NULL)); /* a progress line counts */
    T_ASSERT_EQ(0, md_worker_tick(&w));
    read_lines(rfd, &ls, false);
    T_ASSERT_EQ(1, ls.n);
    T_ASSERT_EQ(MD_ST_PROGRESS, ls.ev[0].kind);
    lines_cleanup(&ls);
    md_status_close(&w.st);
    close(rfd);
}

/* ---- the finish path, in children ------------------------------------------------------ */

enum child_mode { CHILD_OK, CHILD_ESQL, CHILD_WAIT_FOR_STOP, CHILD_BAD_ARG };

MD_NORETURN static void child(enum child_mode mode, int rfd)
{
    char *argv[] = {"meshd-kit", "--nope", NULL};
    int rc;

    close(rfd);
    rc = md_worker_init(&w, "kit", mode == CHILD_BAD_ARG ? 2 : 1, argv, NULL);
    if (rc < 0)
        md_worker_finish(&w, rc, NULL);
    (void)md_status_ready(&w.st);
    switch (mode) {
    case CHILD_OK:
        (void)md_worker_progress(&w, 3, 3, "rows");
        md_worker_finish(&w, 0, "{\"rows\":3}");
    case CHILD_ESQL:
        md_worker_finish(&w, MD_ESQL, NULL);
    case CHILD_WAIT_FOR_STOP:
        /* A long loop, as a worker writes it; SIGTERM interrupts the sleep (no SA_RESTART). */
        while ((rc = md_worker_tick(&w)) == 0)
            sleep(5);
        md_worker_finish(&w, rc, NULL);
    case CHILD_BAD_ARG:
        break;
    }
    _exit(99);
}

/* Runs child(mode) with a status pipe; returns its wait status and its status lines. */
static int run_child(enum child_mode mode, struct lines *ls, int stop_after_ready)
{
    int wfd, rfd, status;
    pid_t pid;

    clear_env();
    rfd = status_pipe(&wfd);
    pid = fork();
    if (pid < 0)
        T_FAIL("fork");
    if (pid == 0)
        child(mode, rfd);
    close(wfd);
    if (stop_after_ready) {
        char c;
        /* Wait for the ready line (so the handlers are in place), then stop the child. */
        while (read(rfd, &c, 1) == 1 && c != '\n')
            ;
        sleep_ms(50);
        kill(pid, stop_after_ready);
    }
    read_lines(rfd, ls, true);
    close(rfd);
    waitpid(pid, &status, 0);
    unsetenv("MESHD_STATUS_FD");
    return status;
}

TEST(worker_finish_ok_sends_the_result_and_exits_0)
{
    struct lines ls;
    int st = run_child(CHILD_OK, &ls, 0);

    T_ASSERT_TRUE(WIFEXITED(st));
    T_ASSERT_EQ(0, WEXITSTATUS(st));
    T_ASSERT_EQ(3, ls.n);
    T_ASSERT_EQ(MD_ST_READY, ls.ev[0].kind);
    T_ASSERT_EQ(MD_ST_PROGRESS, ls.ev[1].kind);
    T_ASSERT_EQ(MD_ST_RESULT, ls.ev[2].kind);
    T_ASSERT_EQ(1, ls.ev[2].u.result.ok);
    T_ASSERT_STREQ("{\"rows\":3}", ls.ev[2].u.result.summary);
    lines_cleanup(&ls);
}

TEST(worker_finish_failed_exits_with_the_class)
{
    struct lines ls;
    int st = run_child(CHILD_ESQL, &ls, 0);

    T_ASSERT_TRUE(WIFEXITED(st));
    T_ASSERT_EQ(100, WEXITSTATUS(st));
    T_ASSERT_EQ(2, ls.n);
    T_ASSERT_EQ(MD_ST_RESULT, ls.ev[1].kind);
    T_ASSERT_EQ(0, ls.ev[1].u.result.ok);
    T_ASSERT_TRUE(ls.ev[1].u.result.summary == NULL);
    lines_cleanup(&ls);
}

TEST(worker_usage_error_exits_100)
{
    struct lines ls;
    int st = run_child(CHILD_BAD_ARG, &ls, 0);

    T_ASSERT_TRUE(WIFEXITED(st));
    T_ASSERT_EQ(100, WEXITSTATUS(st));
    T_ASSERT_EQ(0, ls.n); /* init failed before the status fd was opened */
    lines_cleanup(&ls);
}

TEST(worker_sigterm_after_init_dies_by_sigterm)
{
    struct lines ls;
    int st = run_child(CHILD_WAIT_FOR_STOP, &ls, SIGTERM);

    if (!WIFSIGNALED(st))
        T_FAIL("exited %d instead of dying by SIGTERM", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    T_ASSERT_EQ(SIGTERM, WTERMSIG(st));
    T_ASSERT_EQ(0, ls.n); /* the ready line was read before; no result after a stop */
    lines_cleanup(&ls);
}

TEST(worker_sigint_dies_by_sigint)
{
    struct lines ls;
    int st = run_child(CHILD_WAIT_FOR_STOP, &ls, SIGINT);

    T_ASSERT_TRUE(WIFSIGNALED(st));
    T_ASSERT_EQ(SIGINT, WTERMSIG(st));
    lines_cleanup(&ls);
}

T_MAIN()
