/* send_email.c - a notification as one e-mail over SMTP, through libcurl (send.h,
 * docs/report-receivers.md).
 *
 * Transport: url smtp://host[:port] with tls starttls (the default: STARTTLS is required, a
 * server that does not offer it is refused before anything is sent: CURLUSESSL_ALL) or tls
 * none (plain text, for a relay on the same host); smtps://host[:port] is TLS from the first
 * byte.  AUTH with username/password when they are configured (libcurl picks the mechanism
 * the server offers).
 *
 * The message (RFC 5322, CRLF line endings; libcurl's MIME writer builds the body):
 *
 *   Date: Wed, 25 Nov 2026 07:00:00 +0000           when it was sent
 *   From: <from as configured>
 *   To: <to[0]>, <to[1]>, ...
 *   Subject: [meshd] FIRING: 2 alerts job=load       RFC 2047 words when not ASCII
 *   Message-ID: <meshd.<32 hex of SHA-256(idempotencyKey)>@<from's domain>>
 *   MIME-Version: 1.0
 *   Auto-Submitted: auto-generated                  (RFC 3834: no vacation replies)
 *   Content-Type: multipart/alternative; boundary=...
 *     text/plain; charset=utf-8, quoted-printable
 *     text/html; charset=utf-8, quoted-printable
 *
 * The Message-ID depends on the notification alone, so a mail sent again after a crash (the
 * outbox row was not marked sent) is the same message to the reader's client, which may then
 * show it once.
 *
 * Answers: libcurl reports the last SMTP reply code (CURLINFO_RESPONSE_CODE).  A 4xx reply
 * (greylisting, a full queue) is RPT_RETRY, a 5xx (no such user, relaying denied, bad
 * credentials) RPT_FAILED, a failed connection RPT_RETRY.  A refused recipient fails the whole
 * mail (libcurl's default): to a list with a typo in it nothing is sent until the list is fixed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "meshd/md_alloc.h"
#include "meshd/md_time.h"
#include "render.h"
#include "send_internal.h"

/* The addr-spec of "Name <addr>" or of a bare "addr", in angle brackets for MAIL FROM and RCPT
 * TO; NULL when it holds a control character or nothing. */
static char *envelope_addr(const char *s)
{
    const char *lt = strrchr(s, '<'), *gt;
    size_t n;

    if (lt != NULL && (gt = strchr(lt, '>')) != NULL) {
        s = lt + 1;
        n = (size_t)(gt - s);
    } else {
        while (*s == ' ')
            s++;
        n = strlen(s);
        while (n > 0 && s[n - 1] == ' ')
            n--;
    }
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f || s[i] == '<' || s[i] == '>')
            return NULL;
    return md_xasprintf("<%.*s>", (int)n, s);
}

/* The server's last reply line ("550 5.1.1 <b@y.org>: no such user"), for the answer: libcurl
 * keeps only its code.  Only what the server sends (CURLINFO_HEADER_IN) is looked at, never
 * what we send (AUTH lines carry the password). */
struct last_reply {
    char line[200]; /* the last reply but QUIT's 221 (libcurl quits after a failure) */
    char err[200];  /* the last 4xx or 5xx reply */
};

static int on_debug(CURL *c, curl_infotype type, char *data, size_t size, void *arg)
{
    struct last_reply *lr = arg;
    size_t n = size;

    (void)c;
    if (type != CURLINFO_HEADER_IN || size < 4 || strncmp(data, "221", 3) == 0)
        return 0;
    while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n'))
        n--;
    rpt_clean_text(lr->line, sizeof lr->line, data, n);
    if (data[0] == '4' || data[0] == '5')
        snprintf(lr->err, sizeof lr->err, "%s", lr->line);
    return 0;
}

static bool add_part(curl_mime *mime, const char *data, const char *type)
{
    curl_mimepart *part = curl_mime_addpart(mime);

    return part != NULL && curl_mime_data(part, data, CURL_ZERO_TERMINATED) == CURLE_OK &&
           curl_mime_type(part, type) == CURLE_OK &&
           curl_mime_encoder(part, "quoted-printable") == CURLE_OK;
}

int rpt_send_email(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx, const cJSON *note,
                   struct rpt_answer *a)
{
    char *subject = rpt_render_subject(note, r->subject_prefix);
    char *subject_hdr = rpt_rfc2047(subject);
    char *text = rpt_render_text(note), *html = rpt_render_html(note);
    char *from = envelope_addr(r->from), *to_hdr = NULL;
    char msgid[160], date[64], errbuf[CURL_ERROR_SIZE];
    struct last_reply lr;
    struct curl_slist *hdrs = NULL, *rcpt = NULL;
    curl_mime *mime = NULL;
    CURL *c = NULL;
    CURLcode rc;
    long code = 0;
    int ret = 0;

    (void)ctx;
    memset(&lr, 0, sizeof lr);
    rpt_message_id(rpt_note_meshd(note, "idempotencyKey"), r->from, msgid, sizeof msgid);
    rpt_rfc5322_date(md_time_wall_ms(), date, sizeof date);
    if (from == NULL) {
        rpt_answer_set(a, RPT_FAILED, 0, "from: no usable address in \"%.100s\"", r->from);
        goto out;
    }
    {
        struct md_buf b;
        md_buf_init(&b, 64 * 1024);
        for (size_t i = 0; i < r->to.n; i++) {
            char *addr = envelope_addr(r->to.v[i]);
            struct curl_slist *l;
            if (addr == NULL) {
                md_buf_free(&b);
                rpt_answer_set(a, RPT_FAILED, 0, "to[%zu]: no usable address in \"%.100s\"", i,
                               r->to.v[i]);
                goto out;
            }
            l = curl_slist_append(rcpt, addr);
            md_free(addr);
            if (l == NULL) {
                md_buf_free(&b);
                goto nomem;
            }
            rcpt = l;
            md_buf_printf(&b, "%s%s", i ? ", " : "", r->to.v[i]);
        }
        to_hdr = md_buf_take(&b);
        md_buf_free(&b);
    }
    if (!rpt_header_add(&hdrs, "Date", date) || !rpt_header_add(&hdrs, "From", r->from) ||
        !rpt_header_add(&hdrs, "To", to_hdr ? to_hdr : "") ||
        !rpt_header_add(&hdrs, "Message-ID", msgid) ||
        !rpt_header_add(&hdrs, "MIME-Version", "1.0") ||
        !rpt_header_add(&hdrs, "Auto-Submitted", "auto-generated") ||
        !rpt_header_add(&hdrs, "Content-Type", "multipart/alternative")) {
        rpt_answer_set(a, RPT_FAILED, 0, "from or to holds a control character");
        goto out;
    }
    /* A folded subject (CRLF + space between RFC 2047 words) goes in as one header entry:
     * libcurl writes each entry followed by CRLF, as given. */
    {
        char *line = md_xasprintf("Subject: %s", subject_hdr);
        struct curl_slist *l = curl_slist_append(hdrs, line);
        md_free(line);
        if (l == NULL)
            goto nomem;
        hdrs = l;
    }

    if ((c = curl_easy_init()) == NULL || (mime = curl_mime_init(c)) == NULL)
        goto nomem;
    if (!add_part(mime, text, "text/plain; charset=utf-8") ||
        !add_part(mime, html, "text/html; charset=utf-8"))
        goto nomem;
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if ((rc = curl_easy_setopt(c, (opt), (val))) != CURLE_OK)                                  \
            goto setopt_failed;                                                                    \
    } while (0)
    if ((rc = rpt_curl_setup(c, r, rpt_deadline(r->timeout_ms), "smtp,smtps", errbuf)) != CURLE_OK)
        goto setopt_failed;
    SET(CURLOPT_URL, r->url);
    SET(CURLOPT_USE_SSL,
        (long)(r->tls != NULL && strcmp(r->tls, "none") == 0 && strncmp(r->url, "smtps:", 6) != 0
                   ? CURLUSESSL_NONE
                   : CURLUSESSL_ALL));
    if (r->username != NULL)
        SET(CURLOPT_USERNAME, r->username);
    if (r->password != NULL)
        SET(CURLOPT_PASSWORD, r->password);
    SET(CURLOPT_MAIL_FROM, from);
    SET(CURLOPT_MAIL_RCPT, rcpt);
    SET(CURLOPT_HTTPHEADER, hdrs);
    SET(CURLOPT_MIMEPOST, mime);
    /* VERBOSE only feeds on_debug; nothing is printed. */
    SET(CURLOPT_DEBUGFUNCTION, on_debug);
    SET(CURLOPT_DEBUGDATA, &lr);
    SET(CURLOPT_VERBOSE, 1L);
#undef SET

    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK) {
        if (lr.line[0])
            rpt_answer_set(a, RPT_SENT, code, "SMTP %s (%zu recipient%s)", lr.line, r->to.n,
                           r->to.n == 1 ? "" : "s");
        else
            rpt_answer_set(a, RPT_SENT, code, "SMTP %ld: accepted for %zu recipient%s", code,
                           r->to.n, r->to.n == 1 ? "" : "s");
        snprintf(a->ref, sizeof a->ref, "%s", msgid);
        goto out;
    }
    ret = rpt_curl_failed(a, rc, errbuf, "SMTP");
    if (ret < 0 || rc == CURLE_USE_SSL_FAILED)
        goto out;
    /* The server's reply code decides, where there is one: libcurl names a refused command
     * with several codes (CURLE_RECV_ERROR, CURLE_WEIRD_SERVER_REPLY, CURLE_LOGIN_DENIED...). */
    if (code >= 400 && code <= 599) {
        char words[sizeof a->detail];
        snprintf(words, sizeof words, "%s",
                 a->detail + (strncmp(a->detail, "SMTP: ", 6) == 0 ? 6 : 0));
        if (strtol(lr.err, NULL, 10) == code)
            rpt_answer_set(a, code < 500 ? RPT_RETRY : RPT_FAILED, code, "SMTP %s (%s)", lr.err,
                           words);
        else
            rpt_answer_set(a, code < 500 ? RPT_RETRY : RPT_FAILED, code, "SMTP %ld: %s", code,
                           words);
    }
    goto out;

setopt_failed:
    rpt_answer_set(a, RPT_FAILED, 0, "could not set up the mail: %s", curl_easy_strerror(rc));
    goto out;
nomem:
    rpt_answer_set(a, RPT_RETRY, 0, "out of memory (building the mail)");
out:
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    curl_slist_free_all(rcpt);
    md_free(to_hdr);
    md_free(from);
    md_free(text);
    md_free(html);
    md_free(subject_hdr);
    md_free(subject);
    return ret;
}
