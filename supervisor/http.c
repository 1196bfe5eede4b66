/* http.c - libmicrohttpd driven by the libuv loop; authentication; request limits.
 *
 * Why libmicrohttpd: request parsing is where hostile input lives.  GNU libmicrohttpd is small,
 * fuzzed upstream, packaged and security-maintained by Debian, and it can run without threads
 * inside someone else's event loop, which is what a one-loop supervisor needs.
 *
 * meshd accepts connections itself (level-triggered uv_poll on its listening socket) and hands
 * them to the daemon with MHD_add_connection, so it keeps the connection limit in its own hands.
 *
 * Limits (docs/api.md): a connection's memory (request line + headers) is capped, so an
 * oversized header gets 431 from the library (a long URL 414); a body over BODY_MAX bytes gets
 * 413 and a chunked one 411 (the API takes none); idle or slow connections are closed after
 * IDLE_TIMEOUT_S; at most http.max_connections are open at once per listener, and a connection
 * beyond that is answered 503 and closed at once.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "api.h"
#include "http.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "sup.h"

#define BODY_MAX 4096
#define CACHE_MS 1000      /* a rendered /status or /metrics is reused at most this long */
#define CONN_MEMORY_LIMIT (32 * 1024) /* request line + headers, per connection */
#define IDLE_TIMEOUT_S 10
#define LISTEN_BACKLOG 128
#define LINGER_MAX 64      /* refused connections drained at once; beyond, closed at once */
#define LINGER_MS 1000

struct listener {
    struct sup_http *h;
    struct MHD_Daemon *d;
    int lfd;          /* our listening socket: we accept, the daemon serves */
    uv_poll_t accept; /* lfd */
    uv_poll_t poll;   /* the daemon's epoll fd */
    uv_timer_t timer; /* the daemon's next timeout */
    unsigned active;  /* connections the daemon holds */
    unsigned lingering; /* refused connections being drained (struct refused_conn) */
    uint64_t refused; /* answered 503 because active was at the limit */
    bool trusted;     /* the unix socket: no token needed */
    bool open;
    char name[80];    /* for the log */
};

/* GET /status and /metrics render every job (~1 ms for 200 jobs); under a flood of readers
 * that would starve the loop.  The rendered answer is kept as one libmicrohttpd response
 * (reference-counted, queued to any number of connections) until something it shows changes
 * (sup->status_gen) or it is CACHE_MS old (uptime, backlog). */
struct cached {
    struct MHD_Response *resp;
    uint64_t gen;
    uint64_t at_ms;  /* loop time it was rendered */
};

struct sup_http {
    struct sup *sup;
    struct cached status, metrics;
    struct listener l[2];
    char *sock_path;  /* unlinked at close */
    int tcp_port;     /* the bound TCP port, or -1 */
    int pending_closes;
};

/* Per request, kept in the connection's con_cls between handler calls. */
struct request {
    size_t body;
    bool started;
};

/* ---- authentication ----------------------------------------------------------------------- */

static const char *api_token(const struct sup *sup)
{
    const char *t = sup->cfg->http_token != NULL ? sup->cfg->http_token
                                                 : getenv("MESHD_API_TOKEN");
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

static bool bearer_ok(struct MHD_Connection *conn, const char *want)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);

    if (want == NULL || h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    return token_eq(h, strlen(h), want);
}

/* ---- requests ----------------------------------------------------------------------------- */

/* Builds the library's response for rp (takes rp->body).  NULL when out of memory. */
static struct MHD_Response *make_response(struct api_reply *rp)
{
    struct MHD_Response *r;

    if (rp->body_static)
        r = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_PERSISTENT);
    else
        r = MHD_create_response_from_buffer(rp->len, rp->body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        if (!rp->body_static)
            free(rp->body);
        return NULL;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rp->ctype);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (rp->body_static) /* the page: nothing from elsewhere, ever */
        MHD_add_response_header(r, "Content-Security-Policy",
                                "default-src 'self'; script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; img-src 'self' data:; "
                                "frame-ancestors 'none'");
    if (rp->allow != NULL)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rp->allow);
    if (rp->challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"meshd\"");
    return r;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct api_reply *rp)
{
    struct MHD_Response *r = make_response(rp);
    enum MHD_Result ret;

    if (r == NULL)
        return MHD_NO;
    ret = MHD_queue_response(conn, rp->code, r);
    MHD_destroy_response(r);
    return ret;
}

static void cache_drop(struct cached *c)
{
    if (c->resp != NULL)
        MHD_destroy_response(c->resp); /* connections still sending it hold their own ref */
    c->resp = NULL;
}

/* Answers a cacheable GET from the cache, or renders it through api_dispatch and keeps it. */
static enum MHD_Result send_cached(struct MHD_Connection *conn, struct sup *sup,
                                   struct cached *c, const struct api_req *areq)
{
    uint64_t now = uv_now(sup->loop);
    struct api_reply rp;

    if (c->resp == NULL || c->gen != sup->status_gen || now - c->at_ms >= CACHE_MS) {
        cache_drop(c);
        api_dispatch(sup, areq, &rp);
        if (rp.code != 200)
            return send_reply(conn, &rp);
        c->resp = make_response(&rp);
        if (c->resp == NULL)
            return MHD_NO;
        c->gen = sup->status_gen;
        c->at_ms = now;
    }
    return MHD_queue_response(conn, 200, c->resp);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned code, const char *msg)
{
    struct api_reply rp = {.code = code, .ctype = "application/json"};

    rp.body = md_xasprintf("{\"error\":\"%s\"}", msg); /* msg: a fixed string, no escaping */
    rp.len = strlen(rp.body);
    return send_reply(conn, &rp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct listener *l = cls;
    struct sup *sup = l->h->sup;
    struct request *rq = *con_cls;
    struct api_req areq;
    struct api_reply rp;
    const char *token;

    (void)version;
    (void)upload_data;
    if (rq == NULL) {
        /* Headers are in.  Refuse a declared oversized body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
        rq = md_xcalloc(1, sizeof *rq);
        *con_cls = rq;
        /* Answers can only be queued now or once the body is in (libmicrohttpd refuses one
         * in the middle of an upload), so bodies are bounded up front: a declared length
         * over BODY_MAX is refused, and so is a chunked body, whose length is unknown. */
        if (cl != NULL && strtoull(cl, NULL, 10) > BODY_MAX) {
            rq->started = true;
            return send_error(conn, 413, "request body too large (meshd's API takes none)");
        }
        if (te != NULL) {
            rq->started = true;
            return send_error(conn, 411, "a chunked body is not accepted: send "
                                         "Content-Length (meshd's API takes no body)");
        }
        return MHD_YES;
    }
    if (rq->started) {
        *upload_data_size = 0; /* an answer is queued already: discard the rest */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        rq->body += *upload_data_size;
        *upload_data_size = 0;
        /* Cannot happen with the checks above (MHD enforces Content-Length); be safe. */
        return rq->body > BODY_MAX ? MHD_NO : MHD_YES;
    }
    rq->started = true;
    token = api_token(sup);
    memset(&areq, 0, sizeof areq);
    areq.method = method;
    areq.path = url;
    if (l->trusted) {
        areq.can_read = areq.can_write = true;
    } else {
        bool authed = bearer_ok(conn, token);
        areq.can_write = authed;
        areq.can_read = authed || sup->cfg->http_anonymous_read;
        areq.tcp_no_token = token == NULL;
    }
    if (areq.can_read && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
        if (strcmp(url, "/status") == 0)
            return send_cached(conn, sup, &l->h->status, &areq);
        if (strcmp(url, "/metrics") == 0)
            return send_cached(conn, sup, &l->h->metrics, &areq);
    }
    api_dispatch(sup, &areq, &rp);
    return send_reply(conn, &rp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    md_free(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct listener *l = cls;
    char msg[512];
    size_t n;

    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    md_log(MD_LOG_INFO, "http: listener=%s: %s", l->name, msg);
}

/* ---- driving the daemon from the loop ----------------------------------------------------- */

static void drive(struct listener *l);

static void timer_cb(uv_timer_t *t)
{
    drive(MD_CONTAINER_OF(t, struct listener, timer));
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    drive(MD_CONTAINER_OF(p, struct listener, poll));
}

static void drive(struct listener *l)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (!l->open)
        return;
    sup_clock_check(l->h->sup); /* cron before a batch of requests */
    MHD_run(l->d);
    if (MHD_get_timeout(l->d, &ms) == MHD_YES)
        uv_timer_start(&l->timer, timer_cb, (uint64_t)ms, 0);
    else
        uv_timer_stop(&l->timer);
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct listener *l = cls;

    (void)conn;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        l->active++;
    else if (l->active > 0)
        l->active--;
}

/* A refused connection: the 503 is written, our side shut down for writing, and what the
 * client still sends is read and dropped until it closes (or LINGER_MS), so its request
 * arriving late does not turn our answer into a reset.  At most LINGER_MAX at once. */
struct refused_conn {
    uv_poll_t poll;
    uv_timer_t timer;
    struct listener *l;
    int fd, closes;
};

static void linger_closed(uv_handle_t *hd)
{
    struct refused_conn *g = hd->data;

    if (--g->closes == 0) {
        g->l->lingering--;
        close(g->fd);
        md_free(g);
    }
}

static void linger_end(struct refused_conn *g)
{
    if (uv_is_closing((uv_handle_t *)&g->poll))
        return;
    uv_close((uv_handle_t *)&g->poll, linger_closed);
    uv_close((uv_handle_t *)&g->timer, linger_closed);
}

static void linger_read(uv_poll_t *p, int status, int events)
{
    struct refused_conn *g = MD_CONTAINER_OF(p, struct refused_conn, poll);
    char buf[4096];
    ssize_t n;

    (void)events;
    do
        n = status < 0 ? 0 : recv(g->fd, buf, sizeof buf, MSG_DONTWAIT);
    while (n > 0);
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        linger_end(g);
}

static void linger_timeout(uv_timer_t *t)
{
    linger_end(MD_CONTAINER_OF(t, struct refused_conn, timer));
}

static void refuse(struct listener *l, int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                               "application/json\r\nContent-Length: 45\r\nConnection: close"
                               "\r\nRetry-After: 1\r\n\r\n{\"error\":\"too many connections, try "
                               "again\"}";
    struct refused_conn *g;
    ssize_t w = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);

    (void)w; /* a fresh socket's send buffer takes it; if not, the client sees a close */
    if (l->refused++ % 1000 == 0)
        md_log(MD_LOG_WARN, "http: listener=%s: %u connections open (the limit): refusing "
               "with 503 (refused=%" PRIu64 ")", l->name, l->h->sup->cfg->http_max_connections,
               l->refused);
    if (l->lingering >= LINGER_MAX || shutdown(fd, SHUT_WR) < 0) {
        close(fd);
        return;
    }
    g = md_xcalloc(1, sizeof *g);
    g->l = l;
    g->fd = fd;
    g->closes = 2;
    l->lingering++;
    uv_poll_init(l->h->sup->loop, &g->poll, fd);
    uv_timer_init(l->h->sup->loop, &g->timer);
    g->poll.data = g->timer.data = g;
    uv_poll_start(&g->poll, UV_READABLE | UV_DISCONNECT, linger_read);
    uv_timer_start(&g->timer, linger_timeout, LINGER_MS, 0);
}

/* Level-triggered: connections left in the backlog (at the limit, or past the per-callback
 * batch) wake us again on the next loop iteration. */
static void accept_cb(uv_poll_t *p, int status, int events)
{
    struct listener *l = MD_CONTAINER_OF(p, struct listener, accept);
    unsigned max = l->h->sup->cfg->http_max_connections;

    (void)status;
    (void)events;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(l->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                md_log_err(MD_LOG_WARN, -errno, "http: listener=%s: accept", l->name);
            break;
        }
        if (l->active >= max) {
            refuse(l, fd);
            continue;
        }
        if (sl == 0 || ss.ss_family == AF_UNIX) /* unix peers are unnamed */
            sl = sizeof(struct sockaddr_un);
        if (MHD_add_connection(l->d, fd, (struct sockaddr *)&ss, sl) != MHD_YES)
            md_log(MD_LOG_WARN, "http: listener=%s: connection not added", l->name);
        /* MHD_add_connection closes fd itself on failure. */
    }
    drive(l);
}

static int start_daemon(struct sup_http *h, struct listener *l, int fd)
{
    const union MHD_DaemonInfo *info;

    l->h = h;
    l->lfd = fd;
    /* The connection limit is enforced in accept_cb (with a 503), so the daemon's own is
     * only a backstop. */
    l->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0,
                            NULL, NULL, on_request, l,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
                            /* Reject what RFC 7230 calls invalid (HTTP/1.1 without Host,
                             * whitespace before a colon, ...) rather than guess. */
                            MHD_OPTION_STRICT_FOR_CLIENT, 1,
                            MHD_OPTION_CONNECTION_LIMIT,
                            h->sup->cfg->http_max_connections + 16u,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY_LIMIT,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, l,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, l, MHD_OPTION_END);
    if (l->d == NULL) {
        close(fd);
        md_log(MD_LOG_ERROR, "http: listener=%s: libmicrohttpd did not start", l->name);
        return -EIO;
    }
    info = MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD);
    if (info == NULL) {
        MHD_stop_daemon(l->d);
        close(fd);
        md_log(MD_LOG_ERROR, "http: listener=%s: no epoll fd", l->name);
        return -EIO;
    }
    uv_poll_init(h->sup->loop, &l->poll, info->epoll_fd);
    uv_poll_init(h->sup->loop, &l->accept, fd);
    uv_timer_init(h->sup->loop, &l->timer);
    l->poll.data = l->accept.data = l->timer.data = l;
    uv_poll_start(&l->poll, UV_READABLE, poll_cb);
    uv_poll_start(&l->accept, UV_READABLE, accept_cb);
    l->open = true;
    h->pending_closes += 3;
    drive(l);
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

int sup_http_start(struct sup *sup)
{
    const struct md_config *cfg = sup->cfg;
    struct sup_http *h = md_xcalloc(1, sizeof *h);
    const char *penv = getenv("PORT");
    int fd, port = cfg->http_port, bound = 0, opened = 0, wanted = 0;

    h->sup = sup;
    h->tcp_port = -1;
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
            md_log_err(MD_LOG_ERROR, fd, "http: cannot listen on %s port %d", cfg->http_host,
                       port);
        } else {
            struct listener *l = &h->l[0];
            snprintf(l->name, sizeof l->name, "%s%s%s:%d", strchr(cfg->http_host, ':') ? "[" : "",
                     cfg->http_host, strchr(cfg->http_host, ':') ? "]" : "", bound);
            if (start_daemon(h, l, fd) == 0) {
                opened++;
                h->tcp_port = bound;
                md_log(MD_LOG_NOTICE, "http: listening on %s token=%s anonymous_read=%s",
                       l->name, api_token(sup) ? "set" : "none",
                       cfg->http_anonymous_read ? "yes" : "no");
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
        if (start_daemon(h, l, fd) == 0) {
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
        l->open = false;
        uv_poll_stop(&l->poll);
        uv_poll_stop(&l->accept);
        uv_timer_stop(&l->timer);
        MHD_stop_daemon(l->d); /* closes every connection */
        close(l->lfd);
        uv_close((uv_handle_t *)&l->poll, handle_closed);
        uv_close((uv_handle_t *)&l->accept, handle_closed);
        uv_close((uv_handle_t *)&l->timer, handle_closed);
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
