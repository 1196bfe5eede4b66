/* test_status.c - status protocol: parser tables, writer, pipe round trips, fake_worker. */
#include "meshd/md_alloc.h"
#include "meshd/md_linebuf.h"
#include "meshd/md_status.h"
#include "t.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* Parses line and renders the event back with md_status_format: the canonical form shows
 * every typed field, in a fixed order, with unknown members dropped. */
static char *canon(const char *line, struct md_error *err, int *rc)
{
    struct md_status_event ev;
    char *out = NULL;
    size_t n;

    *rc = md_status_parse(line, strlen(line), &ev, err);
    if (*rc < 0)
        return NULL;
    *rc = md_status_format(&ev, &out, &n);
    md_status_event_cleanup(&ev);
    return out;
}

static const struct {
    const char *in, *want;
} valid[] = {
    {"{\"event\":\"ready\"}", "{\"event\":\"ready\"}"},
    {"  {\"event\" : \"ready\", \"pid\": 12}\t\r\n", "{\"event\":\"ready\"}"},
    {"{\"event\":\"heartbeat\",\"ts\":\"x\"}", "{\"event\":\"heartbeat\"}"},
    {"{\"event\":\"progress\",\"done\":5}", "{\"event\":\"progress\",\"done\":5}"},
    {"{\"event\":\"progress\",\"done\":5,\"total\":10,\"unit\":\"rows\"}",
     "{\"event\":\"progress\",\"done\":5,\"total\":10,\"unit\":\"rows\"}"},
    {"{\"unit\":\"MB\",\"total\":0,\"done\":0.5,\"event\":\"progress\"}",
     "{\"event\":\"progress\",\"done\":0.5,\"total\":0,\"unit\":\"MB\"}"},
    {"{\"event\":\"progress\",\"done\":3000000000,\"total\":1e10}",
     "{\"event\":\"progress\",\"done\":3000000000,\"total\":10000000000}"},
    {"{\"event\":\"metric\",\"name\":\"rows_loaded\",\"value\":123.0}",
     "{\"event\":\"metric\",\"name\":\"rows_loaded\",\"value\":123}"},
    {"{\"event\":\"metric\",\"name\":\"lag.s\",\"value\":-1.25e-3,\"labels\":{}}",
     "{\"event\":\"metric\",\"name\":\"lag.s\",\"value\":-0.00125}"},
    {"{\"event\":\"alert\",\"severity\":\"critical\",\"key\":\"disk\",\"message\":\"full\"}",
     "{\"event\":\"alert\",\"severity\":\"critical\",\"key\":\"disk\",\"message\":\"full\"}"},
    {"{\"event\":\"alert\",\"severity\":\"info\",\"key\":\"k\",\"message\":\"\"}",
     "{\"event\":\"alert\",\"severity\":\"info\",\"key\":\"k\",\"message\":\"\"}"},
    {"{\"event\":\"alert\",\"severity\":\"warning\",\"key\":\"caf\\u00e9\",\"message\":\"a\\nb\"}",
     "{\"event\":\"alert\",\"severity\":\"warning\",\"key\":\"caf\xc3\xa9\","
     "\"message\":\"a\\nb\"}"},
    {"{\"event\":\"resolve\",\"key\":\"disk\"}", "{\"event\":\"resolve\",\"key\":\"disk\"}"},
    {"{\"event\":\"message\",\"type\":\"validation.failed\"}",
     "{\"event\":\"message\",\"type\":\"validation.failed\"}"},
    {"{\"event\":\"message\",\"type\":\"t\",\"payload\":{ \"a\" : [1, 2.5, null, true] }}",
     "{\"event\":\"message\",\"type\":\"t\",\"payload\":{\"a\":[1,2.5,null,true]}}"},
    {"{\"event\":\"message\",\"type\":\"t\",\"payload\":\"just a string\"}",
     "{\"event\":\"message\",\"type\":\"t\",\"payload\":\"just a string\"}"},
    /* priority and target: canonical order type, priority, to_node, to_job, payload */
    {"{\"to_job\":\"remediate\",\"payload\":{},\"event\":\"message\",\"priority\":5,"
     "\"type\":\"t\",\"to_node\":\"pc-01.home\"}",
     "{\"event\":\"message\",\"type\":\"t\",\"priority\":5,\"to_node\":\"pc-01.home\","
     "\"to_job\":\"remediate\",\"payload\":{}}"},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":0}",
     "{\"event\":\"message\",\"type\":\"t\",\"priority\":0}"},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":1e6}",
     "{\"event\":\"message\",\"type\":\"t\",\"priority\":1000000}"},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":100.0,\"to_job\":\"J_1\"}",
     "{\"event\":\"message\",\"type\":\"t\",\"priority\":100,\"to_job\":\"J_1\"}"},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":-0}",
     "{\"event\":\"message\",\"type\":\"t\",\"priority\":0}"},
    {"{\"event\":\"result\",\"status\":\"ok\"}", "{\"event\":\"result\",\"status\":\"ok\"}"},
    {"{\"event\":\"result\",\"status\":\"failed\",\"summary\":{\"rows\":3,\"why\":\"x\\\"y\"}}",
     "{\"event\":\"result\",\"status\":\"failed\",\"summary\":{\"rows\":3,\"why\":\"x\\\"y\"}}"},
    {"{\"event\":\"result\",\"status\":\"ok\",\"summary\":null}",
     "{\"event\":\"result\",\"status\":\"ok\",\"summary\":null}"},
};

TEST(status_parse_valid_table)
{
    for (size_t i = 0; i < MD_ARRAY_SIZE(valid); i++) {
        struct md_error err = {0};
        int rc;
        char *got = canon(valid[i].in, &err, &rc);
        if (rc != 0)
            T_FAIL("valid[%zu] %s: rc %d: %s", i, valid[i].in, rc, err.msg);
        if (strcmp(got, valid[i].want) != 0)
            T_FAIL("valid[%zu]: got %s want %s", i, got, valid[i].want);
        md_free(got);
    }
}

TEST(status_parse_fields)
{
    struct md_status_event ev;
    const char *l;

    l = "{\"event\":\"progress\",\"done\":7,\"total\":9,\"unit\":\"rows\"}";
    T_ASSERT_EQ(0, md_status_parse(l, strlen(l), &ev, NULL));
    T_ASSERT_EQ(ev.kind, MD_ST_PROGRESS);
    T_ASSERT_TRUE(ev.u.progress.done == 7 && ev.u.progress.total == 9);
    T_ASSERT_TRUE(ev.u.progress.has_total);
    T_ASSERT_STREQ(ev.u.progress.unit, "rows");
    md_status_event_cleanup(&ev);
    md_status_event_cleanup(&ev); /* idempotent */

    l = "{\"event\":\"progress\",\"done\":7}";
    T_ASSERT_EQ(0, md_status_parse(l, strlen(l), &ev, NULL));
    T_ASSERT_FALSE(ev.u.progress.has_total);
    T_ASSERT_TRUE(ev.u.progress.unit == NULL);
    md_status_event_cleanup(&ev);

    l = "{\"event\":\"alert\",\"severity\":\"warning\",\"key\":\"k1\",\"message\":\"m\"}";
    T_ASSERT_EQ(0, md_status_parse(l, strlen(l), &ev, NULL));
    T_ASSERT_EQ(ev.kind, MD_ST_ALERT);
    T_ASSERT_EQ(ev.u.alert.severity, MD_SEV_WARNING);
    T_ASSERT_STREQ(ev.u.alert.key, "k1");
    T_ASSERT_STREQ(ev.u.alert.message, "m");
    md_status_event_cleanup(&ev);

    l = "{\"event\":\"result\",\"status\":\"failed\"}";
    T_ASSERT_EQ(0, md_status_parse(l, strlen(l), &ev, NULL));
    T_ASSERT_EQ(ev.u.result.ok, 0);
    T_ASSERT_TRUE(ev.u.result.summary == NULL);
    md_status_event_cleanup(&ev);

    /* Not NUL-terminated: the parser must stop at len. */
    l = "{\"event\":\"ready\"}garbage";
    T_ASSERT_EQ(0, md_status_parse(l, 17, &ev, NULL));
    T_ASSERT_EQ(ev.kind, MD_ST_READY);
}

static const struct {
    const char *in;
    int rc;
    const char *msg; /* a substring of err.msg */
    int col;         /* -1: don't care */
} invalid[] = {
    {"", MD_EPROTO, "not valid JSON", -1},
    {"   ", MD_EPROTO, "not valid JSON", -1},
    {"not json", MD_EPROTO, "not valid JSON", 1},
    {"{\"event\":\"ready\"", MD_EPROTO, "not valid JSON", -1},
    {"{\"event\":\"ready\"} x", MD_EPROTO, "unexpected data after the JSON object", 19},
    {"{\"event\":\"ready\"}{}", MD_EPROTO, "unexpected data", 18},
    {"[\"event\",\"ready\"]", MD_EPROTO, "not a JSON object", 1},
    {"\"ready\"", MD_EPROTO, "not a JSON object", 1},
    {"{}", MD_EPROTO, "needs a string 'event'", 0},
    {"{\"event\":1}", MD_EPROTO, "needs a string 'event'", 0},
    {"{\"Event\":\"ready\"}", MD_EPROTO, "needs a string 'event'", 0},
    {"{\"event\":\"READY\"}", MD_EPROTO, "unknown event 'READY'", 0},
    {"{\"event\":\"started\"}", MD_EPROTO, "unknown event 'started'", 0},
    /* progress */
    {"{\"event\":\"progress\"}", MD_EPROTO, "'progress' needs a numeric 'done'", 0},
    {"{\"event\":\"progress\",\"done\":\"5\"}", MD_EPROTO, "'progress' needs a numeric 'done'", 0},
    {"{\"event\":\"progress\",\"done\":-1}", MD_EPROTO, "'progress': 'done' is negative", 0},
    {"{\"event\":\"progress\",\"done\":1e999}", MD_EPROTO, "'done' is not a finite number", 0},
    {"{\"event\":\"progress\",\"done\":1,\"total\":null}", MD_EPROTO,
     "'progress' needs a numeric 'total'", 0},
    {"{\"event\":\"progress\",\"done\":1,\"total\":-2}", MD_EPROTO, "'total' is negative", 0},
    {"{\"event\":\"progress\",\"done\":1,\"unit\":5}", MD_EPROTO,
     "'progress' needs a string 'unit'", 0},
    {"{\"event\":\"progress\",\"done\":1,\"unit\":\"\"}", MD_EPROTO, "'unit' is empty", 0},
    /* metric */
    {"{\"event\":\"metric\",\"name\":\"x\"}", MD_EPROTO, "'metric' needs a numeric 'value'", 0},
    {"{\"event\":\"metric\",\"name\":\"x\",\"value\":\"1\"}", MD_EPROTO,
     "'metric' needs a numeric 'value'", 0},
    {"{\"event\":\"metric\",\"name\":\"x\",\"value\":true}", MD_EPROTO,
     "'metric' needs a numeric 'value'", 0},
    {"{\"event\":\"metric\",\"name\":\"x\",\"value\":-1e400}", MD_EPROTO,
     "'value' is not a finite number", 0},
    {"{\"event\":\"metric\",\"value\":1}", MD_EPROTO, "'metric' needs a string 'name'", 0},
    {"{\"event\":\"metric\",\"name\":\"\",\"value\":1}", MD_EPROTO, "'name' is empty", 0},
    {"{\"event\":\"metric\",\"name\":\"a\\tb\",\"value\":1}", MD_EPROTO,
     "'name' contains a control character", 0},
    {"{\"event\":\"metric\",\"name\":\"a\\u007fb\",\"value\":1}", MD_EPROTO,
     "'name' contains a control character", 0},
    {"{\"event\":\"metric\",\"name\":\"a\\u0000b\",\"value\":1}", MD_EPROTO,
     "\\u0000 is not allowed", 28},
    {"{\"event\":\"metric\",\"name\":\"a\tb\",\"value\":1}", MD_EPROTO,
     "unescaped control character", 28},
    /* alert */
    {"{\"event\":\"alert\",\"key\":\"k\",\"message\":\"m\"}", MD_EPROTO,
     "'alert' needs a string 'severity'", 0},
    {"{\"event\":\"alert\",\"severity\":\"fatal\",\"key\":\"k\",\"message\":\"m\"}", MD_EPROTO,
     "'severity' must be critical, warning or info, not 'fatal'", 0},
    {"{\"event\":\"alert\",\"severity\":\"info\",\"message\":\"m\"}", MD_EPROTO,
     "'alert' needs a string 'key'", 0},
    {"{\"event\":\"alert\",\"severity\":\"info\",\"key\":\"k\"}", MD_EPROTO,
     "'alert' needs a string 'message'", 0},
    {"{\"event\":\"alert\",\"severity\":\"info\",\"key\":\"k\",\"message\":[]}", MD_EPROTO,
     "'alert' needs a string 'message'", 0},
    /* resolve */
    {"{\"event\":\"resolve\"}", MD_EPROTO, "'resolve' needs a string 'key'", 0},
    {"{\"event\":\"resolve\",\"key\":null}", MD_EPROTO, "'resolve' needs a string 'key'", 0},
    /* message */
    {"{\"event\":\"message\",\"payload\":{}}", MD_EPROTO, "'message' needs a string 'type'", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":-1}", MD_EPROTO,
     "'message': 'priority' must be a whole number from 0 to 1000000", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":1000001}", MD_EPROTO,
     "'message': 'priority' must be a whole number from 0 to 1000000", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":1.5}", MD_EPROTO,
     "'priority' must be a whole number", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":\"5\"}", MD_EPROTO,
     "'priority' must be a whole number", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":null}", MD_EPROTO,
     "'priority' must be a whole number", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":1e999}", MD_EPROTO,
     "'priority' must be a whole number", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"priority\":true}", MD_EPROTO,
     "'priority' must be a whole number", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"to_node\":5}", MD_EPROTO,
     "'message' needs a string 'to_node'", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"to_node\":\"\"}", MD_EPROTO,
     "'message': 'to_node' is empty", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"to_node\":\"my pc\"}", MD_EPROTO,
     "'message': 'to_node' is not a node name (1 to 64 letters, digits, '_', '.' or '-')", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"to_job\":\"a/b\"}", MD_EPROTO,
     "'message': 'to_job' is not a job name", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"to_job\":\"a\\nb\"}", MD_EPROTO,
     "'message': 'to_job' contains a control character", 0},
    {"{\"event\":\"message\",\"type\":\"t\",\"to_job\":["
     "\"j\"]}",
     MD_EPROTO, "'message' needs a string 'to_job'", 0},
    /* 65 bytes: a valid status-protocol name, but no job can be called that */
    {"{\"event\":\"message\",\"type\":\"t\",\"to_job\":\""
     "jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj\"}",
     MD_EPROTO, "'to_job' is not a job name", 0},
    /* result */
    {"{\"event\":\"result\"}", MD_EPROTO, "'result' needs a string 'status'", 0},
    {"{\"event\":\"result\",\"status\":\"OK\"}", MD_EPROTO,
     "'status' must be ok or failed, not 'OK'", 0},
    {"{\"event\":\"result\",\"status\":true}", MD_EPROTO, "'result' needs a string 'status'", 0},
    /* bytes */
    {"{\"event\":\"ready\",\"x\":\"\xff\"}", MD_EPROTO, "invalid UTF-8", 23},
    /* overlong, surrogate */
    {"{\"event\":\"ready\",\"x\":\"\xc0\xaf\"}", MD_EPROTO, "invalid UTF-8", 23},
    {"{\"event\":\"ready\",\"x\":\"\xed\xa0\x80\"}", MD_EPROTO, "invalid UTF-8", 23},
    {"{\"event\":\"ready\",\"x\":\"\xe2\x82\"}", MD_EPROTO, "invalid UTF-8", 23}, /* cut short */
    {"{\"event\":\"ready\",\"x\":\"\\ud800\"}", MD_EPROTO, "not valid JSON", -1},
};

TEST(status_parse_invalid_table)
{
    for (size_t i = 0; i < MD_ARRAY_SIZE(invalid); i++) {
        struct md_status_event ev;
        struct md_error err = {0};
        int rc = md_status_parse(invalid[i].in, strlen(invalid[i].in), &ev, &err);
        if (rc != invalid[i].rc)
            T_FAIL("invalid[%zu] %s: rc %d want %d (%s)", i, invalid[i].in, rc, invalid[i].rc,
                   err.msg);
        if (strncmp(err.msg, "status line: ", 13) != 0 || strstr(err.msg, invalid[i].msg) == NULL)
            T_FAIL("invalid[%zu] %s: message \"%s\" lacks \"%s\"", i, invalid[i].in, err.msg,
                   invalid[i].msg);
        if (invalid[i].col >= 0 && err.col != invalid[i].col)
            T_FAIL("invalid[%zu] %s: col %d want %d", i, invalid[i].in, err.col, invalid[i].col);
        /* A failed parse leaves nothing to free, and cleanup stays harmless. */
        T_ASSERT_EQ(ev.kind, MD_ST_READY);
        md_status_event_cleanup(&ev);
    }
}

/* A valid line of exactly n bytes. */
static char *line_of(size_t n)
{
    static const char head[] = "{\"event\":\"message\",\"type\":\"t\",\"payload\":\"";
    char *s = md_xmalloc(n + 1);
    size_t h = sizeof head - 1;

    memcpy(s, head, h);
    memset(s + h, 'x', n - h - 2);
    memcpy(s + n - 2, "\"}", 3);
    return s;
}

TEST(status_parse_caps)
{
    struct md_status_event ev;
    struct md_error err;
    char *s, name[MD_STATUS_NAME_MAX + 2], text[MD_STATUS_TEXT_MAX + 2], buf[8192];

    s = line_of(MD_STATUS_LINE_MAX);
    T_ASSERT_EQ(0, md_status_parse(s, MD_STATUS_LINE_MAX, &ev, &err));
    T_ASSERT_EQ(strlen(ev.u.message.payload), MD_STATUS_LINE_MAX - 41);
    md_status_event_cleanup(&ev);
    md_free(s);
    s = line_of(MD_STATUS_LINE_MAX + 1);
    T_ASSERT_EQ(MD_ETOOBIG, md_status_parse(s, MD_STATUS_LINE_MAX + 1, &ev, &err));
    T_ASSERT_CONTAINS(err.msg, "longer than 65536 bytes");
    md_free(s);

    memset(name, 'n', sizeof name);
    name[MD_STATUS_NAME_MAX] = '\0'; /* exactly 200 */
    snprintf(buf, sizeof buf, "{\"event\":\"resolve\",\"key\":\"%s\"}", name);
    T_ASSERT_EQ(0, md_status_parse(buf, strlen(buf), &ev, &err));
    md_status_event_cleanup(&ev);
    name[MD_STATUS_NAME_MAX] = 'n';
    name[MD_STATUS_NAME_MAX + 1] = '\0'; /* 201 */
    snprintf(buf, sizeof buf, "{\"event\":\"resolve\",\"key\":\"%s\"}", name);
    T_ASSERT_EQ(MD_EPROTO, md_status_parse(buf, strlen(buf), &ev, &err));
    T_ASSERT_CONTAINS(err.msg, "'resolve': 'key' is longer than 200 bytes");

    memset(text, 'm', sizeof text);
    text[MD_STATUS_TEXT_MAX] = '\0';
    snprintf(buf, sizeof buf,
             "{\"event\":\"alert\",\"severity\":\"info\",\"key\":\"k\",\"message\":\"%s\"}", text);
    T_ASSERT_EQ(0, md_status_parse(buf, strlen(buf), &ev, &err));
    md_status_event_cleanup(&ev);
    text[MD_STATUS_TEXT_MAX] = 'm';
    text[MD_STATUS_TEXT_MAX + 1] = '\0';
    snprintf(buf, sizeof buf,
             "{\"event\":\"alert\",\"severity\":\"info\",\"key\":\"k\",\"message\":\"%s\"}", text);
    T_ASSERT_EQ(MD_EPROTO, md_status_parse(buf, strlen(buf), &ev, &err));
    T_ASSERT_CONTAINS(err.msg, "'message' is longer than 4096 bytes");

    /* Caps count bytes of the decoded string: 67 three-byte characters = 201 bytes. */
    strcpy(buf, "{\"event\":\"resolve\",\"key\":\"");
    for (int i = 0; i < 67; i++)
        strcat(buf, "\\u20ac");
    strcat(buf, "\"}");
    T_ASSERT_EQ(MD_EPROTO, md_status_parse(buf, strlen(buf), &ev, &err));
    T_ASSERT_CONTAINS(err.msg, "longer than 200 bytes");
}

TEST(status_kind_names)
{
    static const char *const want[] = {"ready", "heartbeat", "progress", "metric",
                                       "alert", "resolve",   "message",  "result"};
    for (int k = MD_ST_READY; k <= MD_ST_RESULT; k++)
        T_ASSERT_STREQ(md_status_kind_name((enum md_status_kind)k), want[k]);
    T_ASSERT_STREQ(md_status_kind_name((enum md_status_kind)99), "unknown");
    T_ASSERT_STREQ(md_status_severity_name(MD_SEV_CRITICAL), "critical");
    T_ASSERT_STREQ(md_status_severity_name(MD_SEV_WARNING), "warning");
    T_ASSERT_STREQ(md_status_severity_name(MD_SEV_INFO), "info");
}

/* ---- writer ------------------------------------------------------------------------------ */

static void set_fd_env(int fd)
{
    char buf[16];
    snprintf(buf, sizeof buf, "%d", fd);
    setenv("MESHD_STATUS_FD", buf, 1);
}

TEST(status_open_disabled_and_bad)
{
    struct md_status_writer w;
    int p[2];

    unsetenv("MESHD_STATUS_FD");
    T_ASSERT_EQ(-ENOENT, md_status_open(&w));
    T_ASSERT_EQ(w.fd, -1);
    /* Disabled: everything is a no-op that succeeds, even arguments that would be refused. */
    T_ASSERT_EQ(0, md_status_ready(&w));
    T_ASSERT_EQ(0, md_status_metric(&w, "", NAN));
    T_ASSERT_EQ(0, md_status_result(&w, 1, "{not json"));
    md_status_close(&w);

    setenv("MESHD_STATUS_FD", "", 1);
    T_ASSERT_EQ(-ENOENT, md_status_open(&w));
    setenv("MESHD_STATUS_FD", "three", 1);
    T_ASSERT_EQ(-EINVAL, md_status_open(&w));
    setenv("MESHD_STATUS_FD", "3x", 1);
    T_ASSERT_EQ(-EINVAL, md_status_open(&w));
    setenv("MESHD_STATUS_FD", "-1", 1);
    T_ASSERT_EQ(-EINVAL, md_status_open(&w));
    setenv("MESHD_STATUS_FD", "99999999999", 1);
    T_ASSERT_EQ(-EINVAL, md_status_open(&w));
    setenv("MESHD_STATUS_FD", "1000", 1); /* not open */
    T_ASSERT_EQ(-EBADF, md_status_open(&w));
    T_ASSERT_EQ(w.fd, -1);

    T_ASSERT_EQ(0, pipe(p));
    set_fd_env(p[0]); /* the read end */
    T_ASSERT_EQ(-EBADF, md_status_open(&w));
    set_fd_env(p[1]);
    T_ASSERT_EQ(0, md_status_open(&w));
    T_ASSERT_EQ(w.fd, p[1]);
    T_ASSERT_TRUE(fcntl(p[1], F_GETFD) & FD_CLOEXEC);
    md_status_close(&w);
    T_ASSERT_EQ(w.fd, -1);
    T_ASSERT_TRUE(fcntl(p[1], F_GETFD) < 0); /* closed */
    close(p[0]);
    unsetenv("MESHD_STATUS_FD");
}

/* Reads everything from fd and parses each line; returns the number of events in evs. */
struct collect {
    struct md_status_event evs[16];
    int n, bad;
    struct md_error err;
};

static void collect_cb(void *ud, const char *line, size_t len, int flags)
{
    struct collect *c = ud;
    if (flags != 0 || c->n == 16 || md_status_parse(line, len, &c->evs[c->n], &c->err) < 0) {
        c->bad++;
        return;
    }
    c->n++;
}

static void collect_fd(int fd, struct collect *c)
{
    struct md_linebuf lb;
    char buf[4096];
    ssize_t r;

    memset(c, 0, sizeof *c);
    md_linebuf_init(&lb, MD_STATUS_LINE_MAX);
    while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            md_linebuf_feed(&lb, buf, (size_t)r, collect_cb, c);
    md_linebuf_flush(&lb, collect_cb, c);
    md_linebuf_cleanup(&lb);
}

static void collect_cleanup(struct collect *c)
{
    for (int i = 0; i < c->n; i++)
        md_status_event_cleanup(&c->evs[i]);
}

TEST(status_writer_roundtrip_escaping)
{
    /* Quotes, backslashes, control characters, a would-be line break, non-ASCII, JSON-looking
     * text: the line must stay one line and come back byte for byte. */
    static const char nasty[] =
        "q\"uo\\te\n{\"event\":\"ready\"}\r\t\x01 caf\xc3\xa9 \xf0\x9f\x98\x80 \\u0041";
    struct md_status_writer w;
    struct collect c;
    int p[2];

    T_ASSERT_EQ(0, pipe(p));
    set_fd_env(p[1]);
    T_ASSERT_EQ(0, md_status_open(&w));
    T_ASSERT_EQ(0, md_status_ready(&w));
    T_ASSERT_EQ(0, md_status_heartbeat(&w));
    T_ASSERT_EQ(0, md_status_progress(&w, 12, 100, "rows"));
    T_ASSERT_EQ(0, md_status_progress(&w, 0.25, -1, NULL));
    T_ASSERT_EQ(0, md_status_metric(&w, "lag \"p99\"", 0.1 + 0.2));
    T_ASSERT_EQ(0, md_status_alert(&w, MD_SEV_CRITICAL, "k\\ey", nasty));
    T_ASSERT_EQ(0, md_status_resolve(&w, "caf\xc3\xa9"));
    T_ASSERT_EQ(0,
                md_status_message(&w, "validation.failed", "{\"why\": \"x\\ny\", \"n\": [1,2]}"));
    T_ASSERT_EQ(0, md_status_message(&w, "t", NULL));
    T_ASSERT_EQ(0, md_status_result(&w, 1, "{\"rows\":3}\n"));
    T_ASSERT_EQ(0, md_status_result(&w, 0, NULL));
    T_ASSERT_EQ(0, md_status_message_to(&w, "fix.me", "[1]", 7, "pc", "remediate"));
    T_ASSERT_EQ(0, md_status_message_to(&w, "fix.me", NULL, -1, NULL, NULL));
    T_ASSERT_EQ(0, md_status_message_to(&w, "fix.me", NULL, 0, NULL, "j"));
    md_status_close(&w);
    unsetenv("MESHD_STATUS_FD");
    collect_fd(p[0], &c);
    close(p[0]);

    if (c.bad)
        T_FAIL("%d bad lines: %s", c.bad, c.err.msg);
    T_ASSERT_EQ(c.n, 14);
    T_ASSERT_EQ(c.evs[0].kind, MD_ST_READY);
    T_ASSERT_EQ(c.evs[1].kind, MD_ST_HEARTBEAT);
    T_ASSERT_EQ(c.evs[2].kind, MD_ST_PROGRESS);
    T_ASSERT_TRUE(c.evs[2].u.progress.done == 12 && c.evs[2].u.progress.total == 100);
    T_ASSERT_STREQ(c.evs[2].u.progress.unit, "rows");
    T_ASSERT_TRUE(c.evs[3].u.progress.done == 0.25 && !c.evs[3].u.progress.has_total);
    T_ASSERT_TRUE(c.evs[3].u.progress.unit == NULL);
    T_ASSERT_STREQ(c.evs[4].u.metric.name, "lag \"p99\"");
    T_ASSERT_TRUE(c.evs[4].u.metric.value == 0.1 + 0.2); /* doubles survive exactly */
    T_ASSERT_EQ(c.evs[5].u.alert.severity, MD_SEV_CRITICAL);
    T_ASSERT_STREQ(c.evs[5].u.alert.key, "k\\ey");
    T_ASSERT_STREQ(c.evs[5].u.alert.message, nasty);
    T_ASSERT_STREQ(c.evs[6].u.resolve.key, "caf\xc3\xa9");
    T_ASSERT_STREQ(c.evs[7].u.message.type, "validation.failed");
    T_ASSERT_STREQ(c.evs[7].u.message.payload, "{\"why\":\"x\\ny\",\"n\":[1,2]}");
    T_ASSERT_TRUE(c.evs[8].u.message.payload == NULL);
    T_ASSERT_EQ(c.evs[9].u.result.ok, 1);
    T_ASSERT_STREQ(c.evs[9].u.result.summary, "{\"rows\":3}");
    T_ASSERT_EQ(c.evs[10].u.result.ok, 0);
    T_ASSERT_TRUE(c.evs[10].u.result.summary == NULL);
    /* md_status_message leaves priority and target out; md_status_message_to carries them. */
    T_ASSERT_FALSE(c.evs[7].u.message.has_priority);
    T_ASSERT_TRUE(c.evs[7].u.message.to_node == NULL && c.evs[7].u.message.to_job == NULL);
    T_ASSERT_STREQ(c.evs[11].u.message.type, "fix.me");
    T_ASSERT_STREQ(c.evs[11].u.message.payload, "[1]");
    T_ASSERT_TRUE(c.evs[11].u.message.has_priority);
    T_ASSERT_EQ(c.evs[11].u.message.priority, 7);
    T_ASSERT_STREQ(c.evs[11].u.message.to_node, "pc");
    T_ASSERT_STREQ(c.evs[11].u.message.to_job, "remediate");
    T_ASSERT_FALSE(c.evs[12].u.message.has_priority); /* -1: the default, left out */
    T_ASSERT_TRUE(c.evs[12].u.message.to_node == NULL && c.evs[12].u.message.to_job == NULL);
    T_ASSERT_TRUE(c.evs[13].u.message.has_priority);
    T_ASSERT_EQ(c.evs[13].u.message.priority, 0);
    T_ASSERT_TRUE(c.evs[13].u.message.to_node == NULL);
    T_ASSERT_STREQ(c.evs[13].u.message.to_job, "j");
    collect_cleanup(&c);
}

TEST(status_writer_refuses)
{
    struct md_status_writer w;
    struct collect c;
    char name[MD_STATUS_NAME_MAX + 2], *big;
    int p[2];

    memset(name, 'n', sizeof name);
    name[MD_STATUS_NAME_MAX + 1] = '\0';
    T_ASSERT_EQ(0, pipe(p));
    set_fd_env(p[1]);
    T_ASSERT_EQ(0, md_status_open(&w));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, "x", INFINITY));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, "x", NAN));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, "", 1));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, NULL, 1));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, "a\nb", 1));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, name, 1));
    T_ASSERT_EQ(-EINVAL, md_status_metric(&w, "bad\xff utf8", 1));
    T_ASSERT_EQ(-EINVAL, md_status_progress(&w, -1, 10, NULL));
    T_ASSERT_EQ(-EINVAL, md_status_progress(&w, 1, NAN, NULL));
    T_ASSERT_EQ(-EINVAL, md_status_alert(&w, (enum md_status_severity)7, "k", "m"));
    T_ASSERT_EQ(-EINVAL, md_status_alert(&w, MD_SEV_INFO, "k", NULL));
    T_ASSERT_EQ(-EINVAL, md_status_resolve(&w, ""));
    T_ASSERT_EQ(-EINVAL, md_status_message(&w, "t", "{\"a\":"));
    T_ASSERT_EQ(-EINVAL, md_status_message(&w, "t", "{} {}"));
    T_ASSERT_EQ(-EINVAL,
                md_status_message_to(&w, "t", NULL, MD_STATUS_PRIORITY_MAX + 1, NULL, NULL));
    T_ASSERT_EQ(-EINVAL, md_status_message_to(&w, "t", NULL, 1, "", NULL));
    T_ASSERT_EQ(-EINVAL, md_status_message_to(&w, "t", NULL, 1, "a b", NULL));
    T_ASSERT_EQ(-EINVAL, md_status_message_to(&w, "t", NULL, 1, NULL, "x\ny"));
    T_ASSERT_EQ(-EINVAL, md_status_message_to(&w, NULL, NULL, 1, NULL, NULL));
    T_ASSERT_EQ(-EINVAL, md_status_result(&w, 1, ""));
    name[MD_STATUS_NAME_MAX] = '\0';
    T_ASSERT_EQ(0, md_status_metric(&w, name, 1)); /* exactly 200 bytes is fine */

    big = md_xmalloc(MD_STATUS_LINE_MAX + 16);
    big[0] = '"';
    memset(big + 1, 'b', MD_STATUS_LINE_MAX);
    strcpy(big + 1 + MD_STATUS_LINE_MAX, "\"");
    T_ASSERT_EQ(MD_ETOOBIG, md_status_result(&w, 1, big));
    md_free(big);

    md_status_close(&w);
    unsetenv("MESHD_STATUS_FD");
    collect_fd(p[0], &c); /* only the one accepted line went out */
    close(p[0]);
    T_ASSERT_EQ(c.bad, 0);
    T_ASSERT_EQ(c.n, 1);
    T_ASSERT_STREQ(c.evs[0].u.metric.name, name);
    collect_cleanup(&c);
}

TEST(status_writer_epipe_does_not_kill)
{
    struct md_status_writer w;
    struct sigaction sa;
    int p[2];

    /* Restore the default so md_status_open has something to change (an earlier test may
     * already have set SIG_IGN). */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    T_ASSERT_EQ(0, sigaction(SIGPIPE, &sa, NULL));
    T_ASSERT_EQ(0, pipe(p));
    set_fd_env(p[1]);
    T_ASSERT_EQ(0, md_status_open(&w));
    unsetenv("MESHD_STATUS_FD");
    T_ASSERT_EQ(0, sigaction(SIGPIPE, NULL, &sa));
    T_ASSERT_TRUE(sa.sa_handler == SIG_IGN);
    close(p[0]);
    T_ASSERT_EQ(-EPIPE, md_status_ready(&w));
    T_ASSERT_EQ(-EPIPE, md_status_metric(&w, "x", 1));
    md_status_close(&w);
}

static void ignore_handler(int sig)
{
}

TEST(status_open_keeps_own_sigpipe_handler)
{
    struct md_status_writer w;
    struct sigaction sa;
    int p[2];

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ignore_handler;
    T_ASSERT_EQ(0, sigaction(SIGPIPE, &sa, NULL));
    T_ASSERT_EQ(0, pipe(p));
    set_fd_env(p[1]);
    T_ASSERT_EQ(0, md_status_open(&w));
    unsetenv("MESHD_STATUS_FD");
    T_ASSERT_EQ(0, sigaction(SIGPIPE, NULL, &sa));
    T_ASSERT_TRUE(sa.sa_handler == ignore_handler);
    md_status_close(&w);
    close(p[0]);
    sa.sa_handler = SIG_DFL;
    T_ASSERT_EQ(0, sigaction(SIGPIPE, &sa, NULL));
}

TEST(status_writer_large_line_through_pipe)
{
    /* A 60 KiB line is far over PIPE_BUF: the writer must push it through in pieces while a
     * reader drains the pipe, and the reader must see one intact line. */
    struct md_status_writer w;
    struct collect c;
    char *payload = md_xmalloc(60003);
    int p[2], status;
    pid_t pid;

    payload[0] = '"';
    memset(payload + 1, 'y', 60000);
    strcpy(payload + 60001, "\"");
    T_ASSERT_EQ(0, pipe(p));
    pid = fork();
    T_ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        set_fd_env(p[1]);
        if (md_status_open(&w) < 0 || md_status_message(&w, "big", payload) < 0 ||
            md_status_ready(&w) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    collect_fd(p[0], &c);
    close(p[0]);
    T_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    T_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    T_ASSERT_EQ(c.bad, 0);
    T_ASSERT_EQ(c.n, 2);
    T_ASSERT_EQ(strlen(c.evs[0].u.message.payload), 60002);
    T_ASSERT_EQ(c.evs[1].kind, MD_ST_READY);
    collect_cleanup(&c);
    md_free(payload);
}

/* ---- fake_worker speaks the protocol ------------------------------------------------------ */

struct fw_lines {
    int ok, bad, truncated;
    int kinds[32];
    size_t lens[32];
};

static void fw_cb(void *ud, const char *line, size_t len, int flags)
{
    struct fw_lines *f = ud;
    struct md_status_event ev;

    if (f->ok + f->bad < 32)
        f->lens[f->ok + f->bad] = len;
    if (flags & MD_LINE_TRUNCATED)
        f->truncated++;
    if (md_status_parse(line, len, &ev, NULL) < 0) {
        f->kinds[f->ok + f->bad] = -1;
        f->bad++;
        return;
    }
    f->kinds[f->ok + f->bad] = (int)ev.kind;
    f->ok++;
    md_status_event_cleanup(&ev);
}

TEST(status_fake_worker_lines)
{
    const char *fw = getenv("MESHD_FAKE_WORKER");
    struct md_linebuf lb;
    struct fw_lines f;
    char buf[4096];
    ssize_t r;
    int p[2], status;
    pid_t pid;

    if (fw == NULL || *fw == '\0')
        T_SKIP("MESHD_FAKE_WORKER not set");
    T_ASSERT_EQ(0, pipe(p));
    pid = fork();
    T_ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        set_fd_env(p[1]);
        execl(fw, fw, "ready", "metric", "rows", "2.5", "heartbeat", "badstatus", "status",
              "{\"event\":\"resolve\",\"key\":\"k\"}", "longstatus", "1000", "longstatus", "65536",
              "longstatus", "65537", "longstatus", "10", "exit", "3", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    memset(&f, 0, sizeof f);
    md_linebuf_init(&lb, MD_STATUS_LINE_MAX);
    while ((r = read(p[0], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0)
            md_linebuf_feed(&lb, buf, (size_t)r, fw_cb, &f);
    md_linebuf_flush(&lb, fw_cb, &f);
    md_linebuf_cleanup(&lb);
    close(p[0]);
    T_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    T_ASSERT_TRUE(WIFEXITED(status));
    T_ASSERT_EQ(WEXITSTATUS(status), 3);

    T_ASSERT_EQ(f.ok + f.bad, 9);
    T_ASSERT_EQ(f.kinds[0], MD_ST_READY);
    T_ASSERT_EQ(f.kinds[1], MD_ST_METRIC);
    T_ASSERT_EQ(f.kinds[2], MD_ST_HEARTBEAT);
    T_ASSERT_EQ(f.kinds[3], -1); /* badstatus */
    T_ASSERT_EQ(f.kinds[4], MD_ST_RESOLVE);
    T_ASSERT_EQ(f.kinds[5], MD_ST_MESSAGE);
    T_ASSERT_EQ(f.lens[5], 1000);
    T_ASSERT_EQ(f.kinds[6], MD_ST_MESSAGE); /* exactly the cap */
    T_ASSERT_EQ(f.lens[6], 65536);
    T_ASSERT_EQ(f.kinds[7], -1); /* cap + 1: truncated, then rejected */
    T_ASSERT_EQ(f.truncated, 1);
    T_ASSERT_EQ(f.kinds[8], -1); /* 10 bytes of 'x' */
    T_ASSERT_EQ(f.lens[8], 10);
}

TEST(status_fake_worker_unknown_action)
{
    const char *fw = getenv("MESHD_FAKE_WORKER");
    int status;
    pid_t pid;

    if (fw == NULL || *fw == '\0')
        T_SKIP("MESHD_FAKE_WORKER not set");
    pid = fork();
    T_ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 2);
        unsetenv("MESHD_STATUS_FD");
        execl(fw, fw, "ready", "frobnicate", (char *)NULL);
        _exit(127);
    }
    T_ASSERT_EQ(waitpid(pid, &status, 0), pid);
    T_ASSERT_TRUE(WIFEXITED(status));
    T_ASSERT_EQ(WEXITSTATUS(status), 100);
}

T_MAIN()
