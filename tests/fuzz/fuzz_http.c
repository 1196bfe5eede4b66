/* fuzz_http.c - libFuzzer target: raw bytes -> a TCP connection to meshd's HTTP listener.
 *
 * Once per process: a real supervisor (sup_start) on its own libuv loop, with a config whose
 * jobs never fire, a token, anonymous reads on, and the TCP listener on a free loopback port.
 * Per input: connect, send the bytes, shut down our side, and turn the loop until meshd closes
 * the connection (or a bound of iterations).  So every request goes through the whole path a
 * hostile client reaches: accept, http-parser and http.c's limits, authentication, routing,
 * rendering of /status, /metrics, /api/jobs/..., errors.  POSTs without the token are refused,
 * so nothing is spawned.  Checked: whatever meshd answers starts with "HTTP/1.1 " and a
 * three-digit status; ASan/UBSan (MESHD_FUZZ=ON) catch memory errors in the handlers.
 * An input of odd length is sent in pieces of 1 to 8 bytes (its last byte says how many) with
 * a turn of the loop after each, so meshd's reads split names, values and the URL anywhere.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "http.h"
#include "meshd/md_config.h"
#include "meshd/md_log.h"
#include "scheduler.h"
#include "sup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sup g_sup;
static uv_loop_t g_loop;
static int g_port = -1;

static char dir[] = "/tmp/meshd-fuzz-http-XXXXXX";

/* The state directory holds the socket and the schedule state; leave nothing behind. */
static void cleanup(void)
{
    static const char *const files[] = {"meshd.sock", "schedule.state", "schedule.state.tmp"};
    char path[sizeof dir + 32];

    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
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

static void setup(void)
{
    char yaml[1024];
    struct md_config *cfg = NULL;

    if (mkdtemp(dir) == NULL)
        abort();
    atexit(cleanup);
    snprintf(yaml, sizeof yaml,
             "node: {name: fuzz, state_dir: '%s'}\n"
             "registry: {url: ''}\n"
             "http: {listen: '127.0.0.1:0', token: 'fuzz-token-0123456789abcdef'}\n"
             "jobs:\n"
             "  nightly: {command: ['true'], schedule: '0 0 1 1 *'}\n"
             "  other: {command: ['true'], schedule: '0 0 29 2 *', expect: {succeed_within: 1h}}\n"
             "  manual: {command: ['true'], on: refresh.requested}\n",
             dir);
    md_log_init("fuzz_http", MD_LOG_ERROR);
    if (md_config_parse(yaml, strlen(yaml), "fuzz.yaml", &cfg, NULL) != 0)
        abort();
    uv_loop_init(&g_loop);
    static const struct sup_hooks hooks = {.started = http_start, .stopped = sup_http_close};

    if (sup_start(&g_sup, &g_loop, cfg, "fuzz.yaml", &hooks) != 0)
        abort();
    g_port = sup_http_port(&g_sup);
    if (g_port <= 0)
        abort();
}

static int connect_local(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        abort();
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)g_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        abort(); /* blocking connect to our own listening socket: the backlog takes it */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* small pieces go out as sent */
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char reply[512];
    size_t got = 0, sent = 0, piece = size;
    bool eof = false;
    int fd;

    if (g_port < 0)
        setup();
    if (size > 64 * 1024)
        return 0;
    if (size % 2 == 1)
        piece = 1 + data[size - 1] % 8u;
    fd = connect_local();
    /* Send what the socket takes, turning the loop so meshd reads; then half-close and read
     * until meshd closes, or until it has answered and gone quiet (a keep-alive connection
     * stays open until its idle timeout), or 50 quiet turns without an answer. */
    for (int i = 0, quiet = 0; i < 20000 && (sent < size || !eof); i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < size ? POLLOUT : 0)};
        uv_run(&g_loop, UV_RUN_NOWAIT);
        if (poll(&pfd, 1, 1) <= 0) {
            if (sent == size && ++quiet >= (got > 0 ? 5 : 50))
                break;
            continue;
        }
        quiet = 0;
        if ((pfd.revents & POLLOUT) && sent < size) {
            size_t want = size - sent < piece ? size - sent : piece;
            ssize_t n = send(fd, data + sent, want, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                sent = size; /* meshd closed on us: fine */
            if (sent == size)
                shutdown(fd, SHUT_WR);
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0) {
                eof = n == 0 || errno != EAGAIN;
                if (eof && sent < size)
                    sent = size;
                continue;
            }
            if (got < sizeof reply) {
                size_t k = (size_t)n < sizeof reply - got ? (size_t)n : sizeof reply - got;
                memcpy(reply + got, buf, k);
                got += k;
            }
        }
    }
    close(fd);
    /* Any answer is a well-formed status line. */
    if (got >= 12 && (memcmp(reply, "HTTP/1.1 ", 9) != 0 || reply[9] < '1' || reply[9] > '5' ||
                      reply[10] < '0' || reply[10] > '9' || reply[11] < '0' || reply[11] > '9'))
        abort();
    return 0;
}
