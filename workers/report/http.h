/* http.h - the libcurl side every receiver shares: one blocking transfer with the receiver's
 * TLS settings and deadline, cancelled by a stop, and its answer classified (send.h's
 * struct rpt_answer).  The e-mail sender drives SMTP through the same set-up and error words.
 *
 * The rules (docs/report-receivers.md):
 *
 *   - TLS: ca_file (a PEM bundle) replaces the system's trust store; insecure turns peer and
 *     host verification off.  Only http and https (smtp and smtps for e-mail) are allowed;
 *     redirects are not followed (a webhook that moved is a 3xx, which fails).
 *   - Time: the whole transfer, connect included, must end by the deadline (a monotonic ms
 *     instant; each GitHub request of one life-cycle step gets what is left of the step's).
 *   - Stop: CURLOPT_XFERINFOFUNCTION returns 1 once md_worker_stopping() is true.  libcurl calls
 *     it at least once a second, and at once when the stop signal interrupts its poll (meshd's
 *     workers install their handlers without SA_RESTART), so a stop ends the transfer within
 *     about a second: -ECANCELED, outcome RPT_RETRY.
 *   - Classes: HTTP 2xx is RPT_SENT; 408, 429 and 5xx RPT_RETRY, with Retry-After (seconds or an
 *     HTTP date: libcurl's CURLINFO_RETRY_AFTER) in retry_after_ms; every other status
 *     RPT_FAILED.  Failures below HTTP (refused, reset, timed out, name not resolved, TLS
 *     handshake or certificate) are RPT_RETRY with code 0; a malformed URL, an unsupported
 *     scheme, or a server without STARTTLS when it is required are RPT_FAILED.
 *   - Words: a->detail is "HTTP 429 Too Many Requests: <the body's first bytes>" or libcurl's
 *     error text, cleaned (control characters and invalid UTF-8 as '?'), never holding a URL's
 *     user:password.
 */
#ifndef MESHD_REPORT_HTTP_H
#define MESHD_REPORT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "meshd/md_buf.h"
#include "meshd/md_err.h"
#include "send.h"

/* Response bytes kept by default: enough for any error message and for the GitHub objects we
 * read; the rest is received and dropped (the transfer does not fail for it). */
#define RPT_HTTP_BODY_MAX (64 * 1024)

/* One request.  Everything borrowed for the call. */
struct rpt_http_req {
    const char *method;         /* "GET", "POST" or "PATCH" */
    const char *url;            /* http:// or https:// */
    struct curl_slist *headers; /* extra request headers, or NULL */
    const char *body;           /* POST and PATCH: the body (len bytes); NULL: none */
    size_t len;
    size_t body_max;     /* response bytes kept; 0: RPT_HTTP_BODY_MAX */
    int64_t deadline_ms; /* monotonic ms by which the transfer must end */
};

/* What came back.  rpt_http_resp_free releases it. */
struct rpt_http_resp {
    long code;              /* HTTP status; 0: no response */
    char reason[64];        /* the status line's reason phrase, or a standard one */
    struct md_buf body;     /* the first body_max bytes of the body */
    bool body_cut;          /* more came than body_max */
    int64_t retry_after_ms; /* Retry-After; 0: none */
    /* GitHub's rate-limit headers: remaining -1 when absent; reset Unix s, 0 when absent */
    int64_t ratelimit_remaining, ratelimit_reset;
};

void rpt_http_resp_free(struct rpt_http_resp *resp);

/* The process's shared connection cache (rpt_send_global_init / _cleanup call these):
 * transfers set up by rpt_curl_setup reuse open connections.  0 or -ENOMEM. */
int rpt_http_share_init(void);
void rpt_http_share_cleanup(void);

/* A monotonic deadline timeout_ms from now. */
int64_t rpt_deadline(uint64_t timeout_ms);

/* Sets up c for r: TLS (ca_file, insecure), no signals, the timeout left until deadline_ms
 * (at least 1 ms), the stop callback, errbuf (CURL_ERROR_SIZE bytes) and the allowed
 * protocols (protocols, such as "http,https").  Returns CURLE_OK or the first failing
 * setopt's code. */
CURLcode rpt_curl_setup(CURL *c, const struct rpt_receiver *r, int64_t deadline_ms,
                        const char *protocols, char *errbuf);

/* After a transfer that ended with rc (not CURLE_OK): fills a (outcome, code 0, detail from
 * errbuf or libcurl's words) and returns 0, or -ECANCELED when the stop callback ended it.
 * what prefixes the detail ("SMTP", or NULL). */
int rpt_curl_failed(struct rpt_answer *a, CURLcode rc, const char *errbuf, const char *what);

/* Runs one request for r and classifies the answer into a (outcome, code, retry_after_ms,
 * detail; ref untouched).  resp (zeroed by the caller, or NULL) receives the response.
 * Returns 0 whatever the server answered (libcurl out of memory is RPT_RETRY), or -ECANCELED
 * after a stop. */
int rpt_http(const struct rpt_receiver *r, const struct rpt_http_req *q, struct rpt_http_resp *resp,
             struct rpt_answer *a) MD_MUSTCHECK;

/* Fills a: outcome o, code, detail from the printf format (cleaned, cut to fit). */
void rpt_answer_set(struct rpt_answer *a, enum rpt_outcome o, long code, const char *fmt, ...)
    MD_PRINTF(4, 5);

/* a->detail = "HTTP <code> <reason>: <body start>" ("HTTP 204 No Content" without a body). */
void rpt_answer_http(struct rpt_answer *a, enum rpt_outcome o, const struct rpt_http_resp *resp);

/* Appends a header line "Name: value" to *list; false when value has a control character
 * (it would split the request head) or on out of memory. */
bool rpt_header_add(struct curl_slist **list, const char *name, const char *value);

#endif
