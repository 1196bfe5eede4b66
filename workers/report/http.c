/* http.c - one blocking libcurl transfer for a receiver, and its answer (http.h).
 *
 * Blocking is right here: meshd-report is a worker process, and a notification is sent while
 * its outbox row is locked, one at a time.  curl_easy_perform polls at most a second at a
 * time, and a stop signal interrupts the poll (no SA_RESTART), so the progress callback sees
 * the stop flag at once or within the second.
 */
#include "http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "meshd/md_alloc.h"
#include "meshd/md_time.h"
#include "meshd/md_worker.h"
#include "render.h"

#ifndef MESHD_VERSION
#define MESHD_VERSION "dev"
#endif

#define BODY_SHOWN 300 /* bytes of a response body in a->detail */

int64_t rpt_deadline(uint64_t timeout_ms)
{
    return md_time_clock_ms(CLOCK_MONOTONIC) + (int64_t)timeout_ms;
}

void rpt_http_resp_free(struct rpt_http_resp *resp)
{
    md_buf_free(&resp->body);
}

/* "scheme://user:pw@host..." -> "scheme://host..." everywhere in s, in place: libcurl's words
 * may quote a URL, and a URL may carry a password. */
static void redact_urls(char *s)
{
    char *p = s;

    while ((p = strstr(p, "://")) != NULL) {
        char *auth = p + 3, *at = NULL;
        size_t alen = strcspn(auth, "/?# \t\"'");
        for (char *q = auth; q < auth + alen; q++)
            if (*q == '@')
                at = q;
        if (at != NULL)
            memmove(auth, at + 1, strlen(at + 1) + 1);
        p = auth;
    }
}

void rpt_answer_set(struct rpt_answer *a, enum rpt_outcome o, long code, const char *fmt, ...)
{
    char raw[sizeof a->detail * 2];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    redact_urls(raw);
    a->outcome = o;
    a->code = code;
    rpt_clean_text(a->detail, sizeof a->detail, raw, strlen(raw));
}

void rpt_answer_http(struct rpt_answer *a, enum rpt_outcome o, const struct rpt_http_resp *resp)
{
    char body[BODY_SHOWN + 1];
    size_t n = resp->body.len < BODY_SHOWN ? resp->body.len : BODY_SHOWN;
    const char *sep = resp->reason[0] ? " " : "";

    /* The body's start, one line: JSON error objects and short text pages read well so. */
    memcpy(body, md_buf_str(&resp->body), n);
    body[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (body[i] == '\n' || body[i] == '\r' || body[i] == '\t')
            body[i] = ' ';
    while (n > 0 && body[n - 1] == ' ')
        body[--n] = '\0';
    if (n > 0)
        rpt_answer_set(a, o, resp->code, "HTTP %ld%s%s: %s%s", resp->code, sep, resp->reason, body,
                       resp->body.len > BODY_SHOWN || resp->body_cut ? "..." : "");
    else
        rpt_answer_set(a, o, resp->code, "HTTP %ld%s%s", resp->code, sep, resp->reason);
}

bool rpt_header_add(struct curl_slist **list, const char *name, const char *value)
{
    struct curl_slist *l;
    char *line;

    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    line = md_xasprintf("%s: %s", name, value);
    l = curl_slist_append(*list, line);
    md_free(line);
    if (l == NULL)
        return false;
    *list = l;
    return true;
}

/* ---- libcurl set-up -------------------------------------------------------------------------- */

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)arg, (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return md_worker_stopping() ? 1 : 0;
}

/* One connection cache (and DNS cache, TLS sessions) for every transfer of the process: a run
 * sending many notifications to one receiver keeps its connection open between them instead of
 * a TCP (and TLS) handshake each.  libcurl only reuses a connection whose TLS settings match.
 * The worker is single-threaded: no lock callbacks. */
static CURLSH *share;

int rpt_http_share_init(void)
{
    if ((share = curl_share_init()) == NULL ||
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK ||
        curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK) {
        rpt_http_share_cleanup();
        return -ENOMEM;
    }
    return 0;
}

void rpt_http_share_cleanup(void)
{
    if (share != NULL)
        curl_share_cleanup(share);
    share = NULL;
}

CURLcode rpt_curl_setup(CURL *c, const struct rpt_receiver *r, int64_t deadline_ms,
                        const char *protocols, char *errbuf)
{
    int64_t left = deadline_ms - md_time_clock_ms(CLOCK_MONOTONIC);
    CURLcode rc;

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if ((rc = curl_easy_setopt(c, (opt), (val))) != CURLE_OK)                                  \
            return rc;                                                                             \
    } while (0)
    if (left < 1)
        left = 1;
    errbuf[0] = '\0';
    SET(CURLOPT_ERRORBUFFER, errbuf);
    /* No SIGALRM for name look-ups (Debian's libcurl resolves on a thread anyway); SIGPIPE is
     * ignored for the process by rpt_send_global_init. */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_TIMEOUT_MS, (long)left);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)left);
    SET(CURLOPT_NOPROGRESS, 0L);
    SET(CURLOPT_XFERINFOFUNCTION, on_progress);
    SET(CURLOPT_PROTOCOLS_STR, protocols);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_USERAGENT, "meshd-report/" MESHD_VERSION);
    if (share != NULL)
        SET(CURLOPT_SHARE, share);
    if (r->ca_file != NULL)
        SET(CURLOPT_CAINFO, r->ca_file);
    if (r->insecure) {
        SET(CURLOPT_SSL_VERIFYPEER, 0L);
        SET(CURLOPT_SSL_VERIFYHOST, 0L);
    }
#undef SET
    return CURLE_OK;
}

/* Failures that trying again later cannot fix: the configuration is wrong. */
static bool curl_permanent(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_USE_SSL_FAILED:     /* no STARTTLS where it is required */
    case CURLE_SSL_CACERT_BADFILE: /* ca_file unreadable */
    case CURLE_SSL_CERTPROBLEM:    /* our own certificate */
    case CURLE_BAD_FUNCTION_ARGUMENT:
        return true;
    default:
        return false;
    }
}

int rpt_curl_failed(struct rpt_answer *a, CURLcode rc, const char *errbuf, const char *what)
{
    const char *words = errbuf != NULL && errbuf[0] ? errbuf : curl_easy_strerror(rc);
    const char *pre = what != NULL ? what : "", *sep = what != NULL ? ": " : "";

    if (rc == CURLE_ABORTED_BY_CALLBACK && md_worker_stopping()) {
        rpt_answer_set(a, RPT_RETRY, 0, "%s%sstopped before the receiver answered", pre, sep);
        return -ECANCELED;
    }
    if (rc == CURLE_USE_SSL_FAILED)
        words = "the server does not offer STARTTLS, which tls: starttls requires";
    rpt_answer_set(a, curl_permanent(rc) ? RPT_FAILED : RPT_RETRY, 0, "%s%s%s (curl %d)", pre, sep,
                   words, (int)rc);
    return 0;
}

/* ---- the transfer ---------------------------------------------------------------------------- */

struct xfer {
    struct rpt_http_resp *resp;
    size_t max;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb, room = x->max - x->resp->body.len;

    if (n > room) {
        x->resp->body_cut = true;
        if (room > 0)
            md_buf_put(&x->resp->body, p, room);
    } else {
        md_buf_put(&x->resp->body, p, n);
    }
    return n;
}

/* A whole number header value, or -1. */
static int64_t header_int(const char *v, size_t n)
{
    int64_t x = 0;
    size_t i = 0, digits = 0;

    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    for (; i < n && v[i] >= '0' && v[i] <= '9' && digits < 18; i++, digits++)
        x = x * 10 + (v[i] - '0');
    return digits > 0 ? x : -1;
}

/* Keeps what we read of the last response's head; a status line starts a new one (after a
 * 100 Continue). */
static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    struct rpt_http_resp *resp = x->resp;
    size_t n = size * nmemb;

    if (n > 5 && memcmp(p, "HTTP/", 5) == 0) {
        const char *sp = memchr(p, ' ', n), *r = NULL;
        size_t len = 0;
        resp->reason[0] = '\0';
        resp->ratelimit_remaining = -1;
        resp->ratelimit_reset = 0;
        if (sp != NULL)
            r = memchr(sp + 1, ' ', n - (size_t)(sp + 1 - p));
        if (r != NULL) {
            r++;
            len = n - (size_t)(r - p);
            while (len > 0 && (r[len - 1] == '\r' || r[len - 1] == '\n' || r[len - 1] == ' '))
                len--;
            rpt_clean_text(resp->reason, sizeof resp->reason, r, len);
        }
    } else if (n > 22 && strncasecmp(p, "x-ratelimit-remaining:", 22) == 0) {
        resp->ratelimit_remaining = header_int(p + 22, n - 22);
    } else if (n > 18 && strncasecmp(p, "x-ratelimit-reset:", 18) == 0) {
        int64_t v = header_int(p + 18, n - 18);
        resp->ratelimit_reset = v > 0 ? v : 0;
    }
    return n;
}

/* For HTTP/2, whose status line has no reason phrase. */
static const char *reason_of(long code)
{
    static const struct {
        long code;
        const char *text;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {408, "Request Timeout"},
        {410, "Gone"},
        {413, "Content Too Large"},
        {422, "Unprocessable Entity"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].code == code)
            return reasons[i].text;
    return "";
}

int rpt_http(const struct rpt_receiver *r, const struct rpt_http_req *q, struct rpt_http_resp *resp,
             struct rpt_answer *a)
{
    struct rpt_http_resp local;
    struct xfer x;
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE];
    curl_off_t ra = 0;
    CURL *c = NULL;
    CURLcode rc;
    int ret = 0;

    if (resp == NULL)
        resp = &local;
    memset(resp, 0, sizeof *resp);
    md_buf_init(&resp->body, (q->body_max ? q->body_max : RPT_HTTP_BODY_MAX) + 1);
    resp->ratelimit_remaining = -1;
    x.resp = resp;
    x.max = q->body_max ? q->body_max : RPT_HTTP_BODY_MAX;

    if ((c = curl_easy_init()) == NULL) {
        rpt_answer_set(a, RPT_RETRY, 0, "out of memory (curl_easy_init)");
        goto out;
    }
    /* Our own copy of the list, with "Expect:" (no 100-continue round trip for a large body). */
    for (const struct curl_slist *h = q->headers; h != NULL; h = h->next) {
        struct curl_slist *l = curl_slist_append(hdrs, h->data);
        if (l == NULL)
            goto nomem;
        hdrs = l;
    }
    {
        struct curl_slist *l = curl_slist_append(hdrs, "Expect:");
        if (l == NULL)
            goto nomem;
        hdrs = l;
    }
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if ((rc = curl_easy_setopt(c, (opt), (val))) != CURLE_OK)                                  \
            goto setopt_failed;                                                                    \
    } while (0)
    if ((rc = rpt_curl_setup(c, r, q->deadline_ms, "http,https", errbuf)) != CURLE_OK)
        goto setopt_failed;
    SET(CURLOPT_URL, q->url);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, &x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, &x);
    if (strcmp(q->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
    } else {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(q->body ? q->len : 0));
        SET(CURLOPT_POSTFIELDS, q->body ? q->body : "");
        if (strcmp(q->method, "POST") != 0)
            SET(CURLOPT_CUSTOMREQUEST, q->method);
    }
#undef SET

    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        ret = rpt_curl_failed(a, rc, errbuf, NULL);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->code);
    curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra);
    /* libcurl turns an HTTP date into seconds from now; one in the past is no wait */
    if (ra > 0 && ra < (curl_off_t)30 * 86400)
        resp->retry_after_ms = (int64_t)ra * 1000;
    if (resp->reason[0] == '\0')
        snprintf(resp->reason, sizeof resp->reason, "%s", reason_of(resp->code));
    if (resp->code >= 200 && resp->code <= 299) {
        rpt_answer_http(a, RPT_SENT, resp);
    } else if (resp->code == 408 || resp->code == 429 || (resp->code >= 500 && resp->code <= 599)) {
        rpt_answer_http(a, RPT_RETRY, resp);
        a->retry_after_ms = resp->retry_after_ms;
    } else {
        rpt_answer_http(a, RPT_FAILED, resp);
    }
    goto out;

setopt_failed:
    rpt_answer_set(a, RPT_FAILED, 0, "could not set up the request: %s", curl_easy_strerror(rc));
    goto out;
nomem:
    rpt_answer_set(a, RPT_RETRY, 0, "out of memory (curl_slist_append)");
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    if (resp == &local)
        rpt_http_resp_free(&local);
    return ret;
}
