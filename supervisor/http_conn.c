/* http_conn.c - one connection of the HTTP server: its states and lists, reading into its
 * buffer, writing the answer (sendmsg), keep-alive, lingering close; answer bodies.  http.c has
 * the design and the server around it (accept, limits, the deadline timer, routing), which a
 * connection reaches only through struct sup_http's dispatch and arm (http_internal.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>
#include <uv.h>

#include "api.h"
#include "http_internal.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "sup.h"

static void conn_poll_cb(uv_poll_t *p, int status, int events);

/* ---- bodies ------------------------------------------------------------------------------- */

/* Takes data when owned. */
struct body *sup__http_body_new(const char *data, size_t len, bool owned)
{
    struct body *b = md_xmalloc(sizeof *b);

    b->refs = 1;
    b->owned = owned;
    b->len = len;
    b->data = data;
    return b;
}

void sup__http_body_unref(struct body *b)
{
    if (b == NULL || --b->refs > 0)
        return;
    if (b->owned)
        free((char *)b->data); /* cJSON_Print / md_xasprintf memory */
    md_free(b);
}

/* ---- states and their lists --------------------------------------------------------------- */

static void list_remove(struct listener *l, struct conn *c)
{
    struct conn_list *li = &l->list[c->state];

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        li->head = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    else
        li->tail = c->prev;
    c->prev = c->next = NULL;
}

static void list_append(struct listener *l, struct conn *c)
{
    struct conn_list *li = &l->list[c->state];

    c->prev = li->tail;
    c->next = NULL;
    if (li->tail != NULL)
        li->tail->next = c;
    else
        li->head = c;
    li->tail = c;
}

/* Moves c to the end of state's list, its deadline counting from now. */
static void set_state(struct conn *c, enum conn_state state)
{
    struct listener *l = c->l;

    list_remove(l, c);
    c->state = state;
    c->since = uv_now(l->h->sup->loop);
    list_append(l, c);
    l->h->arm(l);
}

static void set_events(struct conn *c, int events)
{
    if (c->events != events) {
        c->events = events;
        uv_poll_start(&c->poll, events, conn_poll_cb);
    }
}

static void conn_closed(uv_handle_t *hd)
{
    md_free(MD_CONTAINER_OF(hd, struct conn, poll));
}

/* Closes c at once (no answer); safe to call more than once. */
void sup__http_conn_close(struct conn *c)
{
    struct listener *l = c->l;

    if (c->closing)
        return;
    c->closing = true;
    list_remove(l, c);
    l->count--;
    uv_close((uv_handle_t *)&c->poll, conn_closed); /* stops polling, drops stale events */
    close(c->fd);
    c->fd = -1;
    md_free(c->buf);
    c->buf = NULL;
    sup__http_body_unref(c->body);
    c->body = NULL;
    if (l->waiting_fd >= 0)
        l->h->arm(l); /* room for the waiting connection: the timer admits it (not from in here) */
}

/* ---- answers ------------------------------------------------------------------------------ */

/* "Fri, 04 Dec 2026 16:30:59 GMT", rendered once a second; not locale-dependent. */
static const char *http_date(void)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static char text[80]; /* 29 used; room for what the compiler cannot rule out */
    static time_t at = -1;
    time_t now = time(NULL);
    struct tm tm;

    if (now != at && gmtime_r(&now, &tm) != NULL) {
        snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                 tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        at = now;
    }
    return text;
}

/* The request method was parsed (so HEAD is known): the URL began after it. */
static bool is_head(const struct conn *c)
{
    return c->rq.url_len > 0 && c->parser.method == HTTP_HEAD;
}

/* Starts writing an answer: status line and headers into c->out, body shared (takes the
 * caller's reference to b). */
void sup__http_answer(struct conn *c, unsigned code, const char *ctype, struct body *b,
                      const char *allow, bool challenge, bool page)
{
    const char *reason = http_status_str((enum http_status)code);
    int n;

    if (c->closing) { /* the listeners were closed meanwhile (shutdown) */
        sup__http_body_unref(b);
        return;
    }
    if (c->rq.fail != 0 || c->parser.upgrade || !http_should_keep_alive(&c->parser) ||
        c->l->h->sup->stopping)
        c->close_after = true;
    n = snprintf(c->out, sizeof c->out,
                 "HTTP/1.1 %u %s\r\nDate: %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n%s%s%s%s%sContent-Length: %zu\r\n%s\r\n",
                 code, reason, http_date(), ctype,
                 /* the page: nothing from elsewhere, ever */
                 page ? "Content-Security-Policy: default-src 'self'; script-src "
                        "'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; "
                        "frame-ancestors 'none'\r\n"
                      : "",
                 allow != NULL ? "Allow: " : "", allow != NULL ? allow : "",
                 allow != NULL ? "\r\n" : "",
                 challenge ? "WWW-Authenticate: Bearer realm=\"meshd\"\r\n" : "", b->len,
                 c->close_after              ? "Connection: close\r\n"
                 : c->parser.http_minor == 0 ? "Connection: keep-alive\r\n"
                                             : "");
    if (n < 0 || (size_t)n >= sizeof c->out)
        MD_UNREACHABLE(); /* every part is ours and bounded */
    c->out_len = (size_t)n;
    c->out_off = 0;
    c->body = b;
    c->body_len = is_head(c) ? 0 : b->len;
    c->body_off = 0;
    set_state(c, CONN_WRITING);
}

void sup__http_answer_reply(struct conn *c, struct api_reply *rp)
{
    struct body *b = sup__http_body_new(rp->body, rp->len, !rp->body_static);

    sup__http_answer(c, rp->code, rp->ctype, b, rp->allow, rp->challenge, rp->body_static);
}

void sup__http_answer_error(struct conn *c, unsigned code, const char *msg)
{
    /* msg: a fixed string of ours, no escaping needed */
    char *text = md_xasprintf("{\"error\":\"%s\"}", msg);

    c->rq.fail = code; /* closes the connection after */
    sup__http_answer(c, code, "application/json", sup__http_body_new(text, strlen(text), true),
                     NULL, false, false);
}

/* ---- connection I/O ----------------------------------------------------------------------- */

/* The answer is written: get ready for the next request, or close. */
static void answer_done(struct conn *c)
{
    sup__http_body_unref(c->body);
    c->body = NULL;
    if (c->close_after) {
        if (c->eof || shutdown(c->fd, SHUT_WR) < 0) {
            sup__http_conn_close(c);
            return;
        }
        set_state(c, CONN_LINGER);
        set_events(c, UV_READABLE);
        return;
    }
    /* Drop the answered request; what follows it (pipelined) moves to the front. */
    if (c->len > c->parsed)
        memmove(c->buf, c->buf + c->parsed, c->len - c->parsed);
    c->len -= c->parsed;
    c->parsed = 0;
    memset(&c->rq, 0, sizeof c->rq);
    http_parser_pause(&c->parser, 0);
    if (c->len == 0 && c->cap > BUF_MIN) { /* a grown buffer is not kept while idle */
        md_free(c->buf);
        c->buf = NULL;
        c->cap = 0;
    }
    set_state(c, c->len > 0 ? CONN_READING : CONN_IDLE);
    set_events(c, UV_READABLE);
}

/* Writes what the socket takes.  0: all written; 1: wait for writable; <0: the peer is gone. */
static int flush(struct conn *c)
{
    while (c->out_off < c->out_len || c->body_off < c->body_len) {
        struct iovec iov[2];
        struct msghdr msg = {.msg_iov = iov};
        ssize_t n;

        if (c->out_off < c->out_len) {
            iov[msg.msg_iovlen].iov_base = c->out + c->out_off;
            iov[msg.msg_iovlen++].iov_len = c->out_len - c->out_off;
        }
        if (c->body_off < c->body_len) {
            iov[msg.msg_iovlen].iov_base = (char *)c->body->data + c->body_off;
            iov[msg.msg_iovlen++].iov_len = c->body_len - c->body_off;
        }
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -errno;
        }
        size_t k = (size_t)n < c->out_len - c->out_off ? (size_t)n : c->out_len - c->out_off;
        c->out_off += k;
        c->body_off += (size_t)n - k;
    }
    return 0;
}

/* Room to read into, growing the buffer when it is full; 0 when the request may not grow. */
static size_t room(struct conn *c)
{
    size_t max = c->rq.head_done ? BUF_MAX : HEAD_MAX;

    if (c->len >= max)
        return 0;
    if (c->len == c->cap) {
        size_t cap = c->cap == 0 ? BUF_MIN : c->cap * 2;
        c->cap = cap < BUF_MAX ? cap : BUF_MAX;
        c->buf = md_xrealloc(c->buf, c->cap);
    }
    return (c->cap < max ? c->cap : max) - c->len;
}

/* Drops what a lingering client still sends; closes at its end. */
static void linger_read(struct conn *c)
{
    char sink[4096];

    for (;;) {
        ssize_t n = recv(c->fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        sup__http_conn_close(c);
        return;
    }
}

/* Moves the connection along as far as it can go without waiting: parse, answer, write, read;
 * returns when the socket must be waited for (poll set accordingly) or c is closed. */
void sup__http_conn_run(struct conn *c)
{
    while (!c->closing) {
        if (c->state == CONN_LINGER) {
            linger_read(c);
            return;
        }
        if (c->state == CONN_WRITING) {
            int r = flush(c);
            if (r > 0) {
                set_events(c, UV_WRITABLE);
                return;
            }
            if (r < 0) {
                sup__http_conn_close(c);
                return;
            }
            answer_done(c);
            continue;
        }
        /* IDLE or READING */
        if (c->rq.fail != 0 || sup__http_parse(c)) {
            if (c->rq.fail != 0)
                sup__http_answer_error(c, c->rq.fail,
                                       c->rq.fail_msg != NULL ? c->rq.fail_msg : "bad request");
            else
                c->l->h->dispatch(c);
            continue;
        }
        if (c->eof) {
            sup__http_conn_close(c); /* the client is gone, or left a request unfinished */
            return;
        }
        size_t want = room(c);
        if (want == 0) { /* cannot happen: sup__http_parse() refuses a head that fills HEAD_MAX */
            c->rq.fail = 431;
            continue;
        }
        ssize_t n = recv(c->fd, c->buf + c->len, want, MSG_DONTWAIT);
        if (n > 0) {
            if (c->state == CONN_IDLE)
                set_state(c, CONN_READING); /* the request's clock starts at its first byte */
            c->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            c->eof = true;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            set_events(c, UV_READABLE);
            return;
        }
        sup__http_conn_close(c);
        return;
    }
}

static void conn_poll_cb(uv_poll_t *p, int status, int events)
{
    struct conn *c = MD_CONTAINER_OF(p, struct conn, poll);

    (void)events;
    if (status < 0) {
        sup__http_conn_close(c);
        return;
    }
    sup__http_conn_run(c);
}

void sup__http_admit(struct listener *l, int fd)
{
    struct conn *c = md_xcalloc(1, sizeof *c);

    c->l = l;
    c->fd = fd;
    c->state = CONN_IDLE;
    c->since = uv_now(l->h->sup->loop);
    http_parser_init(&c->parser, HTTP_REQUEST);
    uv_poll_init(l->h->sup->loop, &c->poll, fd); /* set_events() starts it */
    list_append(l, c);
    l->count++;
    l->h->arm(l);
    sup__http_conn_run(c); /* the request is often there already */
}
