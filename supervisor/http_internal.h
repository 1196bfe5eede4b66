/* http_internal.h - what the http*.c files share; not part of http.h's API.
 *
 * The HTTP server is three files, each calling only the ones below it (tests/layers.py):
 *   http.c          the server: listeners and their sockets, accept, the connection limit and
 *                   displacement, the deadline timer, authentication, routing to api.c with the
 *                   /status and /metrics cache, start and close (the design is at its top)
 *   http_conn.c     one connection: its states and lists, reading, writing the answer,
 *                   keep-alive, lingering close; answer bodies
 *   http_request.c  reading one request: the http-parser callbacks, the checks http-parser's
 *                   non-strict build leaves to us, the head and body limits, the request target
 * A connection reports up through struct sup_http's dispatch and arm, which http.c sets.
 */
#ifndef MESHD_HTTP_INTERNAL_H
#define MESHD_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "http.h"

struct api_reply;
struct sup;

#define HEAD_MAX (16 * 1024) /* request line + headers */
#define BODY_MAX 4096
#define BUF_MIN 2048 /* a connection's input buffer starts this big, grows to BUF_MAX */
#define BUF_MAX (HEAD_MAX + BODY_MAX)
#define OUT_HEAD_MAX 640 /* an answer's status line and headers (all ours, bounded) */

enum conn_state { CONN_IDLE, CONN_READING, CONN_WRITING, CONN_LINGER, CONN_NSTATES };

/* A reference-counted answer body, shared by the cache and every connection writing it. */
struct body {
    unsigned refs;
    bool owned; /* data is malloc'd and freed with the last reference */
    size_t len;
    const char *data;
};

/* What the parser callbacks collect about the request being read.  Offsets are into the
 * connection's buffer, which holds the whole request (head and body) until it is answered. */
struct request {
    size_t url_off, url_len;
    size_t name_off, name_len;   /* the header name being read */
    size_t value_off, value_len; /* its value, so far */
    size_t auth_off, auth_len;   /* the Authorization value */
    unsigned hosts, auths;
    bool in_value;   /* the last callback was a header value */
    bool in_headers; /* a header name has begun: the request line is complete */
    bool head_done, done;
    bool te;       /* Transfer-Encoding was sent */
    bool expect;   /* Expect: 100-continue */
    unsigned fail; /* 0, or the status to answer (and close) with */
    const char *fail_msg;
};

struct listener;

struct conn {
    uv_poll_t poll;
    struct listener *l;
    struct conn *prev, *next; /* in l->list[state], oldest first */
    enum conn_state state;
    uint64_t since; /* loop time the state was entered: its deadline's start */
    int fd;
    int events; /* what poll watches */
    bool eof;   /* the client shut down its side */
    bool closing;
    http_parser parser;
    struct request rq;
    char *buf;               /* NULL until the first byte */
    size_t cap, len, parsed; /* parsed <= len <= cap; the request being read starts at 0 */
    /* the answer being written */
    char out[OUT_HEAD_MAX];
    size_t out_len, out_off;
    struct body *body;
    size_t body_len, body_off; /* body_len is 0 for HEAD */
    bool close_after;
};

struct conn_list {
    struct conn *head, *tail;
};

struct listener {
    struct sup_http *h;
    int lfd;
    uv_poll_t accept;
    uv_timer_t timer;  /* the earliest deadline of the lists below, and retries */
    uint64_t armed_at; /* when timer fires (loop time), 0 when stopped */
    struct conn_list list[CONN_NSTATES];
    unsigned count;        /* connections held, all states */
    int waiting_fd;        /* accepted on a full table, admitted once room is made; or -1 */
    uint64_t paused_until; /* accepting paused after EMFILE until then, or 0 */
    bool accepting;        /* accept is polled */
    uint64_t displaced;    /* connections closed to admit new ones */
    uint64_t accept_errors;
    bool trusted; /* the unix socket: no token needed */
    bool open;
    char name[80]; /* for the log */
};

/* GET /status and /metrics render every job (~1 ms for 200 jobs); under a flood of readers
 * that would starve the loop.  The rendered body is kept, shared by every connection writing
 * it, until something it shows changes (sup->status_gen) or it is CACHE_MS old (uptime,
 * backlog). */
struct cached {
    struct body *body;
    const char *ctype;
    uint64_t gen;
    uint64_t at_ms; /* loop time it was rendered */
};

struct sup_http {
    struct sup *sup;
    struct sup_http_hooks hooks;
    /* The server's part that a connection calls (http_conn.c names nothing in http.c: calls go
     * down only, docs/architecture.md).  Set by sup_http_start. */
    void (*dispatch)(struct conn *c); /* a request is in, nothing wrong found: answer it */
    void (*arm)(struct listener *l);  /* one of l's connections came, changed state or went */
    struct cached status, metrics;
    struct listener l[2];
    char *sock_path; /* unlinked at close */
    int tcp_port;    /* the bound TCP port, or -1 */
    int pending_closes;
};

/* ---- http_conn.c: one connection ----------------------------------------------------------- */

/* A body with one reference, the caller's.  Takes data when owned (freed with free(3): the
 * memory of cJSON_Print or md_xasprintf). */
struct body *sup__http_body_new(const char *data, size_t len, bool owned);
/* Drops a reference; the last one frees b.  NULL is a no-op. */
void sup__http_body_unref(struct body *b);

/* Takes fd (an accepted, non-blocking socket) into l's table as a new IDLE connection and
 * serves what it sent already.  l must have room (make_room). */
void sup__http_admit(struct listener *l, int fd);
/* Moves the connection along as far as it can go without waiting: parse, answer, write, read;
 * returns when the socket must be waited for (poll set accordingly) or c is closed. */
void sup__http_conn_run(struct conn *c);
/* Closes c at once (no answer) and frees it in its close callback; safe to call more than
 * once. */
void sup__http_conn_close(struct conn *c);

/* Starts writing an answer: status line and headers into c->out, body shared (takes the
 * caller's reference to b).  allow: the Allow header's value or NULL; challenge: a
 * WWW-Authenticate header; page: the status page's Content-Security-Policy. */
void sup__http_answer(struct conn *c, unsigned code, const char *ctype, struct body *b,
                      const char *allow, bool challenge, bool page);
/* Starts writing api_dispatch's reply (takes its body when it is not static). */
void sup__http_answer_reply(struct conn *c, struct api_reply *rp);
/* Starts writing {"error":"msg"} with code, and closes after (msg: a fixed string of ours). */
void sup__http_answer_error(struct conn *c, unsigned code, const char *msg);

/* ---- http_request.c: reading one request -------------------------------------------------- */

/* Feeds the parser what is buffered.  Returns true when the request is complete or refused
 * (c->rq.fail: an answer can be written), false when more bytes are needed. */
bool sup__http_parse(struct conn *c);
/* The request target in c->buf, turned into the decoded path api.c takes (NUL-terminated, in
 * place).  NULL with *why set when it is not one. */
char *sup__http_request_path(struct conn *c, const char **why);

#endif
