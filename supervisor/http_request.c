/* http_request.c - reading one request: the http-parser callbacks, the head and body limits,
 * the checks the library's non-strict build leaves to us, and the request target (http.c has
 * the design; http_internal.h the shared types).
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <http_parser.h>

#include "http_internal.h"
#include "meshd/md_alloc.h"

/* ---- the request target ------------------------------------------------------------------- */

static bool is_tchar(unsigned char ch)
{
    /* RFC 9110 token characters */
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The request target in c->buf, turned into the decoded path api.c takes (NUL-terminated, in
 * place: the bytes after the URL are parsed already).  NULL with *why set when it is not one.
 *
 *   origin-form    "/" path ["?" query]         the query is ignored
 *   absolute-form  "http://" authority path ["?" query]   (RFC 9112 3.2.2: must be accepted)
 *
 * Every byte must be visible ASCII (RFC 3986; the library also lets TAB, FF and bytes over
 * 0x7F through), a fragment is not part of a request target, "%" must be followed by two hex
 * digits, and the decoded path may hold no control byte (a NUL would end the job name early). */
char *sup__http_request_path(struct conn *c, const char **why)
{
    char *u = c->buf + c->rq.url_off, *p, *end, *path, *o;
    size_t n = c->rq.url_len;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)u[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#') {
            *why = "invalid character in the URL";
            return NULL;
        }
    }
    if (n > 0 && u[0] == '/') {
        p = u;
        end = memchr(u, '?', n);
        if (end == NULL)
            end = u + n;
    } else {
        struct http_parser_url pu;
        http_parser_url_init(&pu);
        if (n < 7 || strncasecmp(u, "http://", 7) != 0 ||
            http_parser_parse_url(u, n, 0, &pu) != 0) {
            *why = "the request target is neither a path nor an http:// URL";
            return NULL;
        }
        if (pu.field_set & (1u << UF_PATH)) {
            p = u + pu.field_data[UF_PATH].off;
            end = p + pu.field_data[UF_PATH].len;
        } else {
            p = u + n - 1; /* "http://host": the path is "/"; reuse the last byte */
            *p = '/';
            end = p + 1;
        }
    }
    path = o = p;
    for (; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '%') {
            int hi = end - p >= 3 ? hexval((unsigned char)p[1]) : -1;
            int lo = end - p >= 3 ? hexval((unsigned char)p[2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "invalid %-escape in the URL";
                return NULL;
            }
            ch = (unsigned char)(hi << 4 | lo);
            p += 2;
            if (ch < 0x20 || ch == 0x7f) {
                *why = "a control character (or NUL) in the URL's path";
                return NULL;
            }
        }
        *o++ = (char)ch;
    }
    *o = '\0'; /* o <= end: at worst the byte after the URL (a space, parsed already) */
    return path;
}

/* ---- parser callbacks --------------------------------------------------------------------- */

static struct conn *conn_of(http_parser *p)
{
    return MD_CONTAINER_OF(p, struct conn, parser);
}

static int reject(struct conn *c, unsigned code, const char *msg)
{
    if (c->rq.fail == 0) {
        c->rq.fail = code;
        c->rq.fail_msg = msg;
    }
    return -1; /* stops the parser */
}

/* Adds a piece to a field that may come in several (one per read); the pieces of one field
 * are contiguous in the buffer unless something was left out between them, which for a header
 * value means a folded line (RFC 9112 5.2: reject it or replace it; we reject). */
static bool extend(struct conn *c, size_t *off, size_t *len, const char *at, size_t n)
{
    size_t o = (size_t)(at - c->buf);

    if (*len == 0)
        *off = o;
    else if (o != *off + *len)
        return false;
    *len += n;
    return true;
}

static int on_message_begin(http_parser *p)
{
    struct conn *c = conn_of(p);

    memset(&c->rq, 0, sizeof c->rq);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);

    if (!extend(c, &c->rq.url_off, &c->rq.url_len, at, n))
        return reject(c, 400, "invalid request line");
    return 0;
}

static bool name_is(const struct conn *c, const char *name)
{
    size_t n = strlen(name);
    return c->rq.name_len == n && strncasecmp(c->buf + c->rq.name_off, name, n) == 0;
}

/* A header line is complete. */
static int header_done(struct conn *c)
{
    for (size_t i = 0; i < c->rq.name_len; i++)
        if (!is_tchar((unsigned char)c->buf[c->rq.name_off + i]))
            return reject(c, 400, "invalid header name");
    /* Between name and value only the colon and blanks: a line break there is a value folded
     * onto the next line, which the library lets through when the first line's value is empty.
     * (An empty value is reported at the start of the next line: nothing to check.) */
    for (size_t i = c->rq.name_off + c->rq.name_len; c->rq.value_len > 0 && i < c->rq.value_off;
         i++)
        if (c->buf[i] == '\r' || c->buf[i] == '\n')
            return reject(c, 400, "folded header lines are not accepted");
    if (name_is(c, "host")) {
        c->rq.hosts++;
    } else if (name_is(c, "authorization")) {
        c->rq.auths++;
        c->rq.auth_off = c->rq.value_off;
        c->rq.auth_len = c->rq.value_len;
    } else if (name_is(c, "transfer-encoding")) {
        c->rq.te = true;
    } else if (name_is(c, "expect")) {
        const char *v = c->buf + c->rq.value_off;
        size_t n = c->rq.value_len;
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        c->rq.expect = n == 12 && strncasecmp(v, "100-continue", 12) == 0; /* others: ignored */
    }
    c->rq.in_value = false;
    c->rq.name_len = c->rq.value_len = 0;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);

    c->rq.in_headers = true;
    if (c->rq.in_value && header_done(c) != 0)
        return -1;
    if (!extend(c, &c->rq.name_off, &c->rq.name_len, at, n))
        return reject(c, 400, "invalid header name");
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    struct conn *c = conn_of(p);

    c->rq.in_value = true;
    if (!extend(c, &c->rq.value_off, &c->rq.value_len, at, n))
        return reject(c, 400, "folded header lines are not accepted");
    return 0;
}

/* The head is in.  What the library does not check is checked here; a declared body over
 * BODY_MAX, or a chunked one, is refused before any of it is read. */
static int on_headers_complete(http_parser *p)
{
    struct conn *c = conn_of(p);

    if (c->rq.in_value && header_done(c) != 0)
        return -1;
    c->rq.head_done = true;
    if (p->http_major != 1)
        return p->http_major == 0 ? reject(c, 400, "HTTP/0.9 is not served")
                                  : reject(c, 505, "only HTTP/1.x is served");
    if (c->rq.hosts > 1 || (c->rq.hosts == 0 && p->http_minor >= 1))
        return reject(c, 400, "an HTTP/1.1 request needs exactly one Host header");
    if (c->rq.auths > 1)
        return reject(c, 400, "more than one Authorization header");
    if (c->rq.te)
        return reject(c, 411,
                      "a chunked body is not accepted: send Content-Length "
                      "(meshd's API takes no body)");
    if (p->content_length != ULLONG_MAX && p->content_length > BODY_MAX)
        return reject(c, 413, "request body too large (meshd's API takes none)");
    if (c->rq.expect && p->content_length != ULLONG_MAX && p->content_length > 0) {
        /* The client waits for this before sending its body.  Nothing else is being written
         * (one request at a time), so the socket's buffer takes these few bytes whole. */
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        ssize_t w = send(c->fd, cont, sizeof cont - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct conn *c = conn_of(p);

    c->rq.done = true;
    http_parser_pause(p, 1); /* one request at a time: the rest waits for this answer */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* The library knows a fixed set of methods; any other is refused at its first unknown byte.
 * A well-formed one ("TOKEN SP") is 501 (RFC 9110 9.1), anything else 400. */
static unsigned unknown_method_status(const struct conn *c)
{
    size_t i = 0;

    while (i < c->len && (c->buf[i] == '\r' || c->buf[i] == '\n'))
        i++;
    if (i == c->len || !is_tchar((unsigned char)c->buf[i]))
        return 400;
    while (i < c->len && is_tchar((unsigned char)c->buf[i]))
        i++;
    return i < c->len && c->buf[i] == ' ' ? 501 : 400;
}

/* Feeds the parser what is buffered.  Returns true when the request is complete or refused
 * (an answer can be written), false when more bytes are needed. */
bool sup__http_parse(struct conn *c)
{
    while (c->rq.fail == 0 && !c->rq.done && c->parsed < c->len) {
        /* The head may not run past HEAD_MAX: give the parser no more than that until it is
         * complete (the rest may be pipelined requests). */
        size_t lim = c->rq.head_done || c->len <= HEAD_MAX ? c->len : HEAD_MAX, n;
        enum http_errno e;

        if (c->parsed >= lim)
            break;
        n = http_parser_execute(&c->parser, &parser_settings, c->buf + c->parsed, lim - c->parsed);
        c->parsed += n;
        e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED || (e == HPE_OK && (n > 0 || c->rq.done)))
            continue;
        if (e == HPE_OK) {
            c->rq.fail = 400; /* the library stopped without a reason: do not spin */
            c->rq.fail_msg = "unparsable request";
            break;
        }
        if (c->rq.fail != 0)
            break; /* ours, from a callback */
        if (e == HPE_INVALID_METHOD)
            c->rq.fail = unknown_method_status(c);
        else if (e == HPE_HEADER_OVERFLOW)
            c->rq.fail = c->rq.in_headers ? 431 : 414;
        else
            c->rq.fail = 400;
        c->rq.fail_msg = c->rq.fail == 501   ? "method not implemented"
                         : c->rq.fail == 400 ? http_errno_description(e)
                                             : "request head too large";
    }
    if (c->rq.fail == 0 && !c->rq.done && !c->rq.head_done && c->parsed >= HEAD_MAX) {
        c->rq.fail = c->rq.in_headers ? 431 : 414;
        c->rq.fail_msg = c->rq.in_headers ? "request headers too large" : "URL too long";
    }
    return c->rq.fail != 0 || c->rq.done;
}
