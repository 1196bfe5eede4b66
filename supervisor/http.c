/* http.c - the API's HTTP/1.1 server: listeners and connections on the libuv loop, requests
 * parsed by http-parser, answers rendered by api.c.
 *
 * Why http-parser (nodejs/http-parser 2.9, Debian's libhttp-parser2.9): the parsing of hostile
 * input is done by a small library with no dependencies, long used by Node.js and libgit2 (its
 * development ended when Node moved to llhttp; Debian carries its security fixes, e.g.
 * CVE-2020-8287); everything else (sockets, limits, timeouts, keep-alive) is ours, which is
 * what lets the connection table be managed as below.  It replaced GNU libmicrohttpd, which
 * Debian builds with HTTPS support (it linked and initialised GnuTLS in a server that speaks no
 * TLS) and whose idle timer restarted with every byte, so one byte a second held a connection
 * for hours.  Debian builds http-parser without HTTP_PARSER_STRICT, so what strict mode would
 * refuse is checked by us: header names are tokens, the URL is visible ASCII, the version is
 * 1.x, no folded header lines (http_request.c: header_done, request_path,
 * on_headers_complete).
 *
 * Each connection is a uv_poll_t on a non-blocking socket, in one of four states, each with its
 * own list (oldest first) and deadline; one timer per listener serves the earliest deadline:
 *
 *   IDLE     no request in progress: just accepted, or between keep-alive requests.  Closed
 *            after KEEPALIVE_MS.
 *   READING  a request has begun (its first byte came): head and body must be in within
 *            REQUEST_MS of that first byte, however slowly the bytes come (408 and closed).
 *   WRITING  the answer is being written: REQUEST_MS for all of it, then closed.
 *   LINGER   answered with "Connection: close": our side is shut down and what the client still
 *            sends is read and dropped until it closes (at most LINGER_MS), so the answer is not
 *            lost to a reset.
 *
 * One request at a time per connection: the parser pauses at the end of each message, and the
 * socket is not read while the answer is written, so pipelined requests are answered in order
 * and a client that does not read its answers stops being read.
 *
 * Each listener holds at most http.max_connections connections.  When it is full, a new
 * connection takes the place of the oldest one in LINGER, else the oldest IDLE one, else the
 * one that has spent longest on its current request if that is more than BUSY_GRACE_MS (its
 * client is slow to send or to read: under pressure, slow clients go first).  If none qualifies
 * the new connection waits (not answered, not polled) until one does, at most BUSY_GRACE_MS,
 * and the listener stops accepting meanwhile, so later ones wait in the kernel's queue in order.
 * The unix socket has its own table: a flood on TCP cannot keep the local `meshctl` out.
 *
 * Limits (docs/api.md): request line and headers HEAD_MAX bytes (414 when the request line is
 * what overflows, else 431); a body over BODY_MAX is 413, a chunked one 411 (the API takes
 * none); two Content-Length headers, Content-Length with Transfer-Encoding, two Host headers, a
 * NUL or other control byte or a bad %-escape in the path: 400.
 *
 * The server is three files, each calling only the ones below it (http_internal.h): this one
 * (listeners and sockets, accept, the table's limit and displacement, the deadline timer,
 * authentication, routing to api.c with the cache, start and close), http_conn.c (one
 * connection: its states and lists, reading, writing the answer, keep-alive, linger) and
 * http_request.c (one request: the parser callbacks, the strict checks, the target).
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <http_parser.h>

#include "api.h"
#include "http.h"
#include "http_internal.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "sup.h"

#define CACHE_MS 1000      /* a rendered /status or /metrics is reused at most this long */
#define KEEPALIVE_MS 10000 /* IDLE: from accept or the last answer to a request's first byte */
#define REQUEST_MS 10000   /* READING: first byte to last; WRITING: the whole answer */
#define LINGER_MS 1000
#define BUSY_GRACE_MS 1000  /* on a full table, a request older than this may be displaced */
#define EMFILE_PAUSE_MS 100 /* out of descriptors: accept again after this */
#define LISTEN_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define ACCEPT_BATCH 64

static void arm(struct listener *l);

/* ---- the cache of /status and /metrics ---------------------------------------------------- */

static void cache_drop(struct cached *c)
{
    sup__http_body_unref(c->body); /* connections still writing it hold their own reference */
    c->body = NULL;
}

/* ---- authentication ----------------------------------------------------------------------- */

static const char *api_token(const struct sup *sup)
{
    const char *t = sup->cfg->http_token != NULL ? sup->cfg->http_token : getenv("MESHD_API_TOKEN");
    return t != NULL && *t != '\0' ? t : NULL;
}

/* Constant time in the length of the expected token, whatever was given. */
static bool token_eq(const char *given, size_t glen, const char *want)
{
    size_t wlen = strlen(want);
    unsigned char diff = glen != wlen;

    for (size_t i = 0; i < wlen; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

/* v, n: the Authorization value (not NUL-terminated, surrounding whitespace included). */
static bool bearer_ok(const char *v, size_t n, const char *want)
{
    if (want == NULL || v == NULL)
        return false;
    while (n > 0 && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n < 7 || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7, n -= 7;
    while (n > 0 && *v == ' ')
        v++, n--;
    return token_eq(v, n, want);
}

/* ---- the connection table and its timer --------------------------------------------------- */

static uint64_t timeout_of(enum conn_state s)
{
    switch (s) {
    case CONN_IDLE:
        return KEEPALIVE_MS;
    case CONN_READING:
    case CONN_WRITING:
        return REQUEST_MS;
    case CONN_LINGER:
        return LINGER_MS;
    case CONN_NSTATES:
        break;
    }
    MD_UNREACHABLE();
}

/* The connection to close to make room on a full table, or NULL (see the top comment). */
static struct conn *displaceable(struct listener *l, uint64_t now)
{
    struct conn *r = l->list[CONN_READING].head, *w = l->list[CONN_WRITING].head, *o;

    if (l->list[CONN_LINGER].head != NULL)
        return l->list[CONN_LINGER].head;
    if (l->list[CONN_IDLE].head != NULL)
        return l->list[CONN_IDLE].head;
    o = r == NULL ? w : w == NULL ? r : r->since <= w->since ? r : w;
    return o != NULL && now - o->since >= BUSY_GRACE_MS ? o : NULL;
}

/* When a full table next has something to displace (loop time), or UINT64_MAX. */
static uint64_t displaceable_at(struct listener *l)
{
    struct conn *r = l->list[CONN_READING].head, *w = l->list[CONN_WRITING].head;
    uint64_t at = UINT64_MAX;

    if (l->list[CONN_LINGER].head != NULL || l->list[CONN_IDLE].head != NULL)
        return 0;
    if (r != NULL)
        at = r->since + BUSY_GRACE_MS;
    if (w != NULL && w->since + BUSY_GRACE_MS < at)
        at = w->since + BUSY_GRACE_MS;
    return at;
}

static bool make_room(struct listener *l, uint64_t now)
{
    static const char busy[] = "{\"error\":\"too many connections, try again\"}\n";
    struct conn *v;

    if (l->count < l->h->sup->cfg->http_max_connections)
        return true;
    v = displaceable(l, now);
    if (v == NULL)
        return false;
    if (v->state == CONN_READING) {
        /* Mid-request: tell it why (best effort; it is slow, so it may not read this). */
        char msg[256];
        int n = snprintf(msg, sizeof msg,
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n"
                         "Retry-After: 1\r\n\r\n%s",
                         sizeof busy - 1, busy);
        ssize_t w = send(v->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    if (l->displaced++ % 1000 == 0)
        md_log(MD_LOG_WARN,
               "http: listener=%s: %u connections open (the limit): closing the "
               "oldest idle or slow one to admit a new one (displaced=%" PRIu64 ")",
               l->name, l->count, l->displaced);
    sup__http_conn_close(v);
    return true;
}

static void accept_start(struct listener *l);

static void timer_cb(uv_timer_t *t)
{
    struct listener *l = MD_CONTAINER_OF(t, struct listener, timer);
    uint64_t now = uv_now(l->h->sup->loop);
    struct conn *c;

    l->armed_at = 0;
    for (int s = 0; s < CONN_NSTATES; s++) {
        while ((c = l->list[s].head) != NULL && now - c->since >= timeout_of(s)) {
            if (s == CONN_READING) {
                /* A slow request: answer 408 (which moves it to WRITING, then LINGER). */
                c->rq.fail = 408;
                c->rq.fail_msg = "the request took too long to arrive";
                sup__http_conn_run(c);
            } else {
                sup__http_conn_close(c);
            }
        }
    }
    if (l->waiting_fd >= 0 && make_room(l, now)) {
        int fd = l->waiting_fd;
        l->waiting_fd = -1;
        sup__http_admit(l, fd);
    }
    if (l->paused_until != 0 && now >= l->paused_until)
        l->paused_until = 0;
    if (l->waiting_fd < 0 && l->paused_until == 0)
        accept_start(l);
    arm(l);
}

/* Makes the timer fire no later than the earliest thing due.  It may fire early (a state left
 * since): timer_cb then finds nothing due and arms it again, which is cheaper than re-arming
 * on every request. */
static void arm(struct listener *l)
{
    uint64_t due = UINT64_MAX, now;

    if (!l->open)
        return;
    for (int s = 0; s < CONN_NSTATES; s++)
        if (l->list[s].head != NULL && l->list[s].head->since + timeout_of(s) < due)
            due = l->list[s].head->since + timeout_of(s);
    if (l->waiting_fd >= 0) {
        uint64_t at = l->count < l->h->sup->cfg->http_max_connections ? 0 : displaceable_at(l);
        if (at < due)
            due = at;
    }
    if (l->paused_until != 0 && l->paused_until < due)
        due = l->paused_until;
    if (due == UINT64_MAX || (l->armed_at != 0 && l->armed_at <= due))
        return;
    now = uv_now(l->h->sup->loop);
    l->armed_at = due > now ? due : now;
    uv_timer_start(&l->timer, timer_cb, l->armed_at - now, 0);
}

/* ---- routing: requests to api.c ----------------------------------------------------------- */

/* Answers a cacheable GET from the cache, or renders it through api_dispatch and keeps it. */
static void answer_cached(struct conn *c, struct cached *k, const struct api_req *areq)
{
    struct sup *sup = c->l->h->sup;
    uint64_t now = uv_now(sup->loop);
    struct api_reply rp;

    if (k->body == NULL || k->gen != sup->status_gen || now - k->at_ms >= CACHE_MS) {
        cache_drop(k);
        api_dispatch(sup, areq, &rp);
        if (rp.code != 200 || rp.body_static) {
            sup__http_answer_reply(c, &rp);
            return;
        }
        k->body = sup__http_body_new(rp.body, rp.len, true);
        k->ctype = rp.ctype;
        k->gen = sup->status_gen;
        k->at_ms = now;
    }
    k->body->refs++;
    sup__http_answer(c, 200, k->ctype, k->body, NULL, false, false);
}

/* The request is in (head and body): route it, start writing the answer. */
static void dispatch(struct conn *c)
{
    struct listener *l = c->l;
    struct sup *sup = l->h->sup;
    const char *why = NULL, *token;
    struct api_req areq;
    struct api_reply rp;
    char *path = sup__http_request_path(c, &why);

    if (path == NULL) {
        sup__http_answer_error(c, 400, why);
        return;
    }
    token = api_token(sup);
    memset(&areq, 0, sizeof areq);
    areq.method = http_method_str((enum http_method)c->parser.method);
    areq.path = path;
    if (l->trusted) {
        areq.can_read = areq.can_write = true;
    } else {
        bool authed = c->rq.auths == 1 && bearer_ok(c->buf + c->rq.auth_off, c->rq.auth_len, token);
        areq.can_write = authed;
        areq.can_read = authed || sup->cfg->http_anonymous_read;
        areq.tcp_no_token = token == NULL;
    }
    if (l->h->hooks.before_batch != NULL)
        l->h->hooks.before_batch(l->h->hooks.ud); /* due cron work starts before this request */
    if (areq.can_read && (c->parser.method == HTTP_GET || c->parser.method == HTTP_HEAD)) {
        if (strcmp(path, "/status") == 0) {
            answer_cached(c, &l->h->status, &areq);
            return;
        }
        if (strcmp(path, "/metrics") == 0) {
            answer_cached(c, &l->h->metrics, &areq);
            return;
        }
    }
    api_dispatch(sup, &areq, &rp);
    sup__http_answer_reply(c, &rp);
}

/* ---- listening ---------------------------------------------------------------------------- */

static void accept_cb(uv_poll_t *p, int status, int events);

static void accept_start(struct listener *l)
{
    if (!l->accepting && l->open) {
        uv_poll_start(&l->accept, UV_READABLE, accept_cb);
        l->accepting = true;
    }
}

static void accept_stop(struct listener *l)
{
    if (l->accepting) {
        uv_poll_stop(&l->accept);
        l->accepting = false;
    }
}

/* Level-triggered: connections left in the backlog wake us again on the next iteration. */
static void accept_cb(uv_poll_t *p, int status, int events)
{
    struct listener *l = MD_CONTAINER_OF(p, struct listener, accept);
    uint64_t now = uv_now(l->h->sup->loop);

    (void)status;
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH && l->accepting; i++) {
        int fd = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        if (fd < 0) {
            int e = errno;
            if (e == EAGAIN || e == EWOULDBLOCK)
                break;
            if (e == EINTR || e == ECONNABORTED || e == EPROTO)
                continue;
            if (l->accept_errors++ % 1000 == 0)
                md_log_err(MD_LOG_WARN, -e, "http: listener=%s: accept (errors=%" PRIu64 ")",
                           l->name, l->accept_errors);
            /* Out of descriptors (EMFILE, ENFILE) or memory: the connection stays queued and
             * the level-triggered poll would fire again at once; wait a little instead. */
            accept_stop(l);
            l->paused_until = now + EMFILE_PAUSE_MS;
            arm(l);
            break;
        }
        if (!l->trusted)
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* pipelined answers */
        if (!make_room(l, now)) {
            l->waiting_fd = fd; /* admitted by the timer once something can be displaced */
            accept_stop(l);
            arm(l);
            break;
        }
        sup__http_admit(l, fd);
    }
}

static int start_listener(struct sup_http *h, struct listener *l, int fd)
{
    l->h = h;
    l->lfd = fd;
    l->waiting_fd = -1;
    uv_poll_init(h->sup->loop, &l->accept, fd);
    uv_timer_init(h->sup->loop, &l->timer);
    l->accept.data = l->timer.data = l;
    l->open = true;
    h->pending_closes += 2;
    accept_start(l);
    return 0;
}

/* ---- sockets ------------------------------------------------------------------------------ */

static int tcp_socket(const char *host, int port, int *bound_port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, one = 1;

    memset(&ss, 0, sizeof ss);
    if (strchr(host, ':') != NULL) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        sl = sizeof *a;
    }
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    sl = sizeof ss;
    *bound_port = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* A live meshd answers on its socket; a stale socket file refuses the connection. */
static bool socket_alive(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool alive;

    if (fd < 0)
        return false;
    alive = connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0;
    close(fd);
    return alive;
}

static int unix_socket(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    mode_t old;
    int fd, r;

    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path)
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST; /* not ours to remove */
        if (socket_alive(&sa))
            return -EADDRINUSE;
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    old = umask(0177); /* the socket file is created 0600 */
    r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r < 0 || chmod(path, 0600) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

int sup_http_start(struct sup *sup, const struct sup_http_hooks *hooks)
{
    const struct md_config *cfg = sup->cfg;
    struct sup_http *h = md_xcalloc(1, sizeof *h);
    const char *penv = getenv("PORT");
    int fd, port = cfg->http_port, bound = 0, opened = 0, wanted = 0;

    h->sup = sup;
    if (hooks != NULL)
        h->hooks = *hooks;
    h->dispatch = dispatch;
    h->arm = arm;
    h->tcp_port = -1;
    h->l[0].waiting_fd = h->l[1].waiting_fd = -1;
    sup->http = h;
    if (penv != NULL && *penv != '\0') {
        char *end;
        long v = strtol(penv, &end, 10);
        if (*end != '\0' || v < 0 || v > 65535)
            md_log(MD_LOG_WARN, "http: ignoring PORT='%.20s': not a port number", penv);
        else
            port = (int)v;
    }
    if (cfg->http_host != NULL) {
        wanted++;
        fd = tcp_socket(cfg->http_host, port, &bound);
        if (fd < 0) {
            md_log_err(MD_LOG_ERROR, fd, "http: cannot listen on %s port %d", cfg->http_host, port);
        } else {
            struct listener *l = &h->l[0];
            snprintf(l->name, sizeof l->name, "%s%s%s:%d", strchr(cfg->http_host, ':') ? "[" : "",
                     cfg->http_host, strchr(cfg->http_host, ':') ? "]" : "", bound);
            if (start_listener(h, l, fd) == 0) {
                opened++;
                h->tcp_port = bound;
                md_log(MD_LOG_NOTICE, "http: listening on %s token=%s anonymous_read=%s", l->name,
                       api_token(sup) ? "set" : "none", cfg->http_anonymous_read ? "yes" : "no");
            }
        }
    }
    wanted++;
    h->sock_path = md_xasprintf("%s/meshd.sock", cfg->state_dir);
    fd = unix_socket(h->sock_path);
    if (fd < 0) {
        md_log_err(MD_LOG_ERROR, fd, "http: no local socket at %s%s", h->sock_path,
                   fd == -EADDRINUSE ? " (another meshd uses this state_dir)" : "");
        md_free(h->sock_path);
        h->sock_path = NULL;
    } else {
        struct listener *l = &h->l[1];
        l->trusted = true;
        snprintf(l->name, sizeof l->name, "unix");
        if (start_listener(h, l, fd) == 0) {
            opened++;
            md_log(MD_LOG_NOTICE, "http: local socket %s", h->sock_path);
        }
    }
    return opened == 0 && wanted > 0 ? -EIO : 0;
}

int sup_http_port(const struct sup *sup)
{
    return sup->http != NULL ? sup->http->tcp_port : -1;
}

static void handle_closed(uv_handle_t *hd)
{
    struct listener *l = hd->data;
    struct sup_http *h = l->h;

    if (--h->pending_closes == 0)
        md_free(h);
}

void sup_http_close(struct sup *sup)
{
    struct sup_http *h = sup->http;

    if (h == NULL)
        return;
    sup->http = NULL;
    for (int i = 0; i < 2; i++) {
        struct listener *l = &h->l[i];
        if (!l->open)
            continue;
        for (int s = 0; s < CONN_NSTATES; s++)
            while (l->list[s].head != NULL)
                sup__http_conn_close(l->list[s].head);
        l->open = false;
        accept_stop(l);
        if (l->waiting_fd >= 0)
            close(l->waiting_fd);
        l->waiting_fd = -1;
        uv_close((uv_handle_t *)&l->accept, handle_closed);
        uv_close((uv_handle_t *)&l->timer, handle_closed);
        close(l->lfd);
    }
    cache_drop(&h->status);
    cache_drop(&h->metrics);
    if (h->sock_path != NULL) {
        unlink(h->sock_path);
        md_free(h->sock_path);
        h->sock_path = NULL;
    }
    if (h->pending_closes == 0)
        md_free(h);
}
