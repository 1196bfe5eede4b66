/* render.c - what meshd-report's receivers say (render.h).  Pure: no I/O, no clock.
 *
 * Everything is built in md_buf buffers capped at RENDER_MAX: a note is an outbox payload the
 * planner wrote (a few KiB, a digest some hundreds), so the cap is only a backstop; text past it
 * is dropped whole (md_buf refuses the append), never written out of bounds.
 */
#include "render.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"

#define RENDER_MAX (8u * 1024 * 1024)
#define SUBJECT_MAX 250
#define TITLE_MAX 200
#define MESSAGE_MAX 20000 /* of one alert's message in a mail or an issue (GitHub: 65536) */
#define CUT "..."

/* ---- reading the note ------------------------------------------------------------------------ */

const char *rpt_jstr(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : "";
}

int64_t rpt_jint(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!cJSON_IsNumber(v) || v->valuedouble != v->valuedouble)
        return 0;
    if (v->valuedouble > 9e15 || v->valuedouble < -9e15)
        return 0;
    return (int64_t)v->valuedouble;
}

const char *rpt_note_meshd(const cJSON *note, const char *name)
{
    return rpt_jstr(cJSON_GetObjectItemCaseSensitive(note, "meshd"), name);
}

static const cJSON *labels_of(const cJSON *alert)
{
    return cJSON_GetObjectItemCaseSensitive(alert, "labels");
}

static const char *alert_key(const cJSON *alert)
{
    const char *k = rpt_jstr(labels_of(alert), "alertname");
    return k[0] ? k : rpt_jstr(labels_of(alert), "key");
}

static char *take(struct md_buf *b)
{
    char *s = md_buf_take(b);
    md_buf_free(b);
    return s != NULL ? s : md_xstrdup("");
}

/* ---- UTF-8 and cleaning ---------------------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0: not valid (an overlong form,
 * a surrogate, past U+10FFFF, a stray continuation byte, a sequence cut short). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t len;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
        (c == 0xf4 && p[1] > 0x8f))
        return 0;
    return len;
}

size_t rpt_clean_text(char *dst, size_t cap, const char *src, size_t n)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t i = 0, o = 0;

    while (i < n) {
        size_t len = utf8_seq(p + i, n - i);
        if (len <= 1) {
            char c = (len == 0 || p[i] < 0x20 || p[i] == 0x7f) ? '?' : (char)p[i];
            if (o + 1 >= cap)
                break;
            dst[o++] = c;
            i++;
            continue;
        }
        if (o + len >= cap)
            break;
        memcpy(dst + o, p + i, len);
        o += len;
        i += len;
    }
    dst[o] = '\0';
    return o;
}

/* How clean() treats line breaks. */
enum clean_mode {
    ONE_LINE,  /* every control character becomes a space */
    MULTILINE, /* '\n' stays ("\r\n" becomes "\n"), '\t' too; other controls become spaces */
};

/* Appends s cleaned (controls per mode, invalid UTF-8 as '?'), at most max bytes of it (max >
 * 3); a cut is made at a character start and ends with "..." (within max). */
static void put_clean(struct md_buf *b, const char *s, size_t max, enum clean_mode mode)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, o = 0, keep;
    /* cleaning never makes text longer: one byte for one, CRLF for LF */
    char *out = md_xmalloc(n + 1);

    while (i < n) {
        size_t len = utf8_seq(p + i, n - i);
        if (len > 1) {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
            continue;
        }
        if (len == 0) {
            out[o++] = '?';
        } else if (p[i] == '\r' && mode == MULTILINE && i + 1 < n && p[i + 1] == '\n') {
            /* the '\n' comes next */
        } else if ((p[i] < 0x20 || p[i] == 0x7f) &&
                   !(mode == MULTILINE && (p[i] == '\n' || p[i] == '\t'))) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)p[i];
        }
        i++;
    }
    if (o <= max) {
        md_buf_put(b, out, o);
    } else {
        keep = max - (sizeof CUT - 1);
        while (keep > 0 && ((unsigned char)out[keep] & 0xc0) == 0x80)
            keep--;
        md_buf_put(b, out, keep);
        md_buf_puts(b, CUT);
    }
    md_free(out);
}

/* s cleaned to one line of at most max bytes. */
static char *oneline(const char *s, size_t max)
{
    struct md_buf b;

    md_buf_init(&b, RENDER_MAX);
    put_clean(&b, s, max, ONE_LINE);
    return take(&b);
}

/* Appends text with every '\n' turned into CRLF. */
static void put_crlf(struct md_buf *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            md_buf_put(b, "\r\n", 2);
        else if (*p != '\r')
            md_buf_put(b, p, 1);
    }
}

/* ---- small encodings ------------------------------------------------------------------------- */

static bool needs_encoding(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return true;
    /* An ASCII text that looks like an encoded-word would be decoded by the reader. */
    return strstr(s, "=?") != NULL;
}

char *rpt_rfc2047(const char *text)
{
    /* 75 = "=?UTF-8?B?" (10) + 60 base64 characters (45 bytes) + "?=" (2), with room to spare;
     * a word ends early rather than split a character. */
    enum { CHUNK = 45 };
    char *line = oneline(text, SIZE_MAX / 2);
    const unsigned char *p = (const unsigned char *)line;
    size_t n = strlen(line), i = 0;
    struct md_buf b;

    if (!needs_encoding(line))
        return line;
    md_buf_init(&b, RENDER_MAX);
    while (i < n) {
        unsigned char enc[4 * CHUNK / 3 + 4];
        size_t len = 0;
        while (i + len < n) {
            size_t s = utf8_seq(p + i + len, n - i - len);
            if (s == 0)
                s = 1; /* oneline made every invalid byte '?': not reached */
            if (len + s > CHUNK)
                break;
            len += s;
        }
        EVP_EncodeBlock(enc, p + i, (int)len);
        if (i > 0)
            md_buf_puts(&b, "\r\n ");
        md_buf_printf(&b, "=?UTF-8?B?%s?=", (const char *)enc);
        i += len;
    }
    md_free(line);
    return take(&b);
}

void rpt_rfc5322_date(int64_t ms, char *buf, size_t len)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

void rpt_message_id(const char *idem_key, const char *from, char *buf, size_t len)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    char h[2 * EVP_MAX_MD_SIZE + 1], domain[64];
    const char *at = strrchr(from != NULL ? from : "", '@');
    size_t o = 0;

    EVP_Digest(idem_key, strlen(idem_key), d, &dlen, EVP_sha256(), NULL);
    hex(d, dlen, h);
    h[32] = '\0';
    if (at != NULL)
        for (const char *p = at + 1; *p && *p != '>' && o + 1 < sizeof domain; p++)
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '.' || *p == '-')
                domain[o++] = *p;
    domain[o] = '\0';
    snprintf(buf, len, "<meshd.%s@%s>", h, o > 0 ? domain : "meshd.invalid");
}

void rpt_hmac_sha256_hex(const void *key, size_t klen, const void *msg, size_t mlen, char out[65])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    if (HMAC(EVP_sha256(), key, (int)klen, msg, mlen, d, &dlen) == NULL)
        dlen = 0; /* only on allocation failure inside OpenSSL */
    hex(d, dlen, out);
}

static void put_html(struct md_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            md_buf_puts(b, "&amp;");
            break;
        case '<':
            md_buf_puts(b, "&lt;");
            break;
        case '>':
            md_buf_puts(b, "&gt;");
            break;
        case '"':
            md_buf_puts(b, "&quot;");
            break;
        case '\'':
            md_buf_puts(b, "&#39;");
            break;
        default:
            md_buf_put(b, s, 1);
        }
    }
}

char *rpt_html_escape(const char *s)
{
    struct md_buf b;

    md_buf_init(&b, RENDER_MAX);
    put_html(&b, s);
    return take(&b);
}

/* The mrkdwn escape of one cleaned character (len bytes at p). */
static const char *slack_entity(char c)
{
    return c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : NULL;
}

char *rpt_slack_escape(const char *s, size_t max)
{
    struct md_buf clean, b;
    const char *p;
    size_t full = 0;

    /* Clean first (controls, invalid UTF-8), then measure, then escape with the cut: an entity
     * or a character is either whole or not there. */
    md_buf_init(&clean, RENDER_MAX);
    put_clean(&clean, s, RENDER_MAX, MULTILINE);
    for (p = md_buf_str(&clean); *p; p++)
        full += slack_entity(*p) ? strlen(slack_entity(*p)) : 1;
    md_buf_init(&b, RENDER_MAX);
    for (p = md_buf_str(&clean); *p;) {
        const char *e = slack_entity(*p);
        size_t len = e ? strlen(e) : utf8_seq((const unsigned char *)p, strlen(p));
        if (len == 0)
            len = 1;
        if (full > max && b.len + len > max - (sizeof CUT - 1)) {
            md_buf_puts(&b, CUT);
            break;
        }
        md_buf_put(&b, e ? e : p, len);
        p += e ? 1 : len;
    }
    md_buf_free(&clean);
    return take(&b);
}

/* ---- the words of a note --------------------------------------------------------------------- */

static bool note_resolved(const cJSON *note)
{
    const char *kind = rpt_note_meshd(note, "kind");
    return strcmp(kind, "resolved") == 0 ||
           (strcmp(kind, "escalation") != 0 && strcmp(rpt_jstr(note, "status"), "resolved") == 0);
}

static const char *status_word(const cJSON *note)
{
    const char *kind = rpt_note_meshd(note, "kind");

    if (note_resolved(note))
        return "RESOLVED";
    if (strcmp(kind, "repeat") == 0)
        return "STILL FIRING";
    if (strcmp(kind, "escalation") == 0)
        return "ESCALATED";
    return "FIRING";
}

static bool is_digest(const cJSON *note)
{
    return strcmp(rpt_note_meshd(note, "kind"), "digest") == 0;
}

static const cJSON *digest_of(const cJSON *note)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(note, "meshd"),
                                            "digest");
}

/* "FIRING: 2 alerts job=load" (no prefix, not cleaned). */
static void put_headline(struct md_buf *b, const cJSON *note)
{
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(note, "alerts"), *a, *g;
    const char *want = note_resolved(note) ? "resolved" : "firing";
    const cJSON *one = NULL;
    int64_t n = 0, listed = 0;

    cJSON_ArrayForEach(a, alerts)
    {
        listed++;
        if (strcmp(rpt_jstr(a, "status"), want) == 0) {
            n++;
            one = a;
        }
    }
    if (n == 0) { /* a note whose alerts do not say: count them all */
        n = listed;
        one = listed == 1 ? cJSON_GetArrayItem(alerts, 0) : NULL;
    }
    if (!note_resolved(note))
        n += rpt_jint(note, "truncatedAlerts") > 0 ? rpt_jint(note, "truncatedAlerts") : 0;
    md_buf_printf(b, "%s: ", status_word(note));
    if (n == 1 && one != NULL && alert_key(one)[0])
        md_buf_puts(b, alert_key(one));
    else
        md_buf_printf(b, "%lld alert%s", (long long)n, n == 1 ? "" : "s");
    cJSON_ArrayForEach(g, cJSON_GetObjectItemCaseSensitive(note, "groupLabels"))
    {
        if (cJSON_IsString(g) && g->string != NULL)
            md_buf_printf(b, " %s=%s", g->string, g->valuestring);
    }
}

char *rpt_render_subject(const cJSON *note, const char *prefix)
{
    struct md_buf raw;
    char *out;

    md_buf_init(&raw, RENDER_MAX);
    if (prefix == NULL)
        prefix = "";
    if (is_digest(note)) {
        const char *s = rpt_jstr(digest_of(note), "subject");
        if (prefix[0] && strncmp(s, prefix, strlen(prefix)) != 0)
            md_buf_printf(&raw, "%s ", prefix);
        md_buf_puts(&raw, s[0] ? s : "digest");
    } else {
        if (prefix[0])
            md_buf_printf(&raw, "%s ", prefix);
        put_headline(&raw, note);
    }
    out = oneline(md_buf_str(&raw), SUBJECT_MAX);
    md_buf_free(&raw);
    return out;
}

/* An http(s) link that is safe to put in an href or a Markdown/Slack link: no blanks, quotes
 * or angle brackets.  NULL when there is none. */
static const char *safe_link(const char *url)
{
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == '"' || *p == '<' || *p == '>' || *p == '|' ||
            *p == '\'' || *p == '`')
            return NULL;
    return url;
}

/* The link for an alert: its generatorURL, else the note's externalURL. */
static const char *alert_link(const cJSON *note, const cJSON *alert)
{
    const char *l = alert != NULL ? safe_link(rpt_jstr(alert, "generatorURL")) : NULL;
    return l != NULL ? l : safe_link(rpt_jstr(note, "externalURL"));
}

static bool alert_firing(const cJSON *alert)
{
    return strcmp(rpt_jstr(alert, "status"), "resolved") != 0;
}

/* "since 2026-11-25T07:00:00Z, raised 3 times" / "resolved at ..., firing since ..." */
static void put_when(struct md_buf *b, const cJSON *alert)
{
    const char *since = rpt_jstr(alert, "startsAt");
    int64_t count = rpt_jint(alert, "count");

    if (alert_firing(alert))
        md_buf_printf(b, "since %s", since[0] ? since : "?");
    else
        md_buf_printf(b, "resolved at %s, firing since %s", rpt_jstr(alert, "endsAt"),
                      since[0] ? since : "?");
    if (count > 1)
        md_buf_printf(b, ", raised %lld times", (long long)count);
}

/* "job=load node=pc" for the labels that are set. */
static void put_where(struct md_buf *b, const cJSON *alert, const char *sep)
{
    const char *job = rpt_jstr(labels_of(alert), "job"), *node = rpt_jstr(labels_of(alert), "node");

    if (job[0])
        md_buf_printf(b, "job=%s", job);
    if (job[0] && node[0])
        md_buf_puts(b, sep);
    if (node[0])
        md_buf_printf(b, "node=%s", node);
}

static void put_footer_line(struct md_buf *b, const cJSON *note)
{
    const char *node = rpt_note_meshd(note, "node"), *route = rpt_note_meshd(note, "route");

    md_buf_puts(b, "meshd-report");
    if (node[0])
        md_buf_printf(b, ", node %s", node);
    if (route[0])
        md_buf_printf(b, ", route %s", route);
    if (strcmp(rpt_note_meshd(note, "kind"), "escalation") == 0)
        md_buf_printf(
            b, ", escalation level %lld",
            (long long)rpt_jint(cJSON_GetObjectItemCaseSensitive(note, "meshd"), "level"));
    md_buf_printf(b, ", notification %s", rpt_note_meshd(note, "idempotencyKey"));
}

/* ---- e-mail ---------------------------------------------------------------------------------- */

char *rpt_render_text(const cJSON *note)
{
    const cJSON *a;
    struct md_buf raw, b;
    int64_t trunc = rpt_jint(note, "truncatedAlerts");
    const char *link = safe_link(rpt_jstr(note, "externalURL"));

    md_buf_init(&raw, RENDER_MAX);
    if (is_digest(note)) {
        const char *t = rpt_jstr(digest_of(note), "text");
        put_clean(&raw, t[0] ? t : rpt_jstr(digest_of(note), "markdown"), RENDER_MAX, MULTILINE);
        md_buf_puts(&raw, "\n");
    } else {
        struct md_buf head;
        md_buf_init(&head, RENDER_MAX);
        put_headline(&head, note);
        put_clean(&raw, md_buf_str(&head), SUBJECT_MAX, ONE_LINE);
        md_buf_free(&head);
        md_buf_puts(&raw, "\n\n");
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(note, "alerts"))
        {
            struct md_buf line;
            const char *msg =
                rpt_jstr(cJSON_GetObjectItemCaseSensitive(a, "annotations"), "message");
            md_buf_init(&line, RENDER_MAX);
            md_buf_printf(&line, "[%s] %s %s", alert_firing(a) ? "FIRING" : "RESOLVED",
                          rpt_jstr(labels_of(a), "severity"), alert_key(a));
            if (rpt_jstr(labels_of(a), "job")[0] || rpt_jstr(labels_of(a), "node")[0]) {
                md_buf_puts(&line, " (");
                put_where(&line, a, ", ");
                md_buf_puts(&line, ")");
            }
            put_clean(&raw, md_buf_str(&line), 1000, ONE_LINE);
            md_buf_free(&line);
            md_buf_puts(&raw, "\n");
            if (msg[0]) {
                struct md_buf m;
                md_buf_init(&m, RENDER_MAX);
                put_clean(&m, msg, MESSAGE_MAX, MULTILINE);
                md_buf_puts(&raw, "  ");
                for (const char *p = md_buf_str(&m); *p; p++) {
                    md_buf_put(&raw, p, 1);
                    if (*p == '\n' && p[1])
                        md_buf_puts(&raw, "  ");
                }
                md_buf_free(&m);
                md_buf_puts(&raw, "\n");
            }
            md_buf_init(&line, RENDER_MAX);
            put_when(&line, a);
            md_buf_puts(&raw, "  ");
            put_clean(&raw, md_buf_str(&line), 1000, ONE_LINE);
            md_buf_free(&line);
            md_buf_puts(&raw, "\n\n");
        }
        if (trunc > 0)
            md_buf_printf(&raw, "... and %lld more alert%s not listed here.\n\n", (long long)trunc,
                          trunc == 1 ? "" : "s");
        if (link != NULL)
            md_buf_printf(&raw, "Status page: %s\n\n", link);
        md_buf_puts(&raw, "-- \n");
        struct md_buf foot;
        md_buf_init(&foot, RENDER_MAX);
        put_footer_line(&foot, note);
        put_clean(&raw, md_buf_str(&foot), 1000, ONE_LINE);
        md_buf_free(&foot);
        md_buf_puts(&raw, "\n");
    }
    md_buf_init(&b, RENDER_MAX);
    put_crlf(&b, md_buf_str(&raw));
    md_buf_free(&raw);
    return take(&b);
}

/* Appends s cleaned (one line or not) and HTML-escaped. */
static void put_html_clean(struct md_buf *b, const char *s, size_t max, enum clean_mode mode)
{
    struct md_buf c;

    md_buf_init(&c, RENDER_MAX);
    put_clean(&c, s, max, mode);
    put_html(b, md_buf_str(&c));
    md_buf_free(&c);
}

char *rpt_render_html(const cJSON *note)
{
    const cJSON *a;
    struct md_buf raw, b, head;
    int64_t trunc = rpt_jint(note, "truncatedAlerts");
    const char *link = safe_link(rpt_jstr(note, "externalURL"));

    md_buf_init(&raw, RENDER_MAX);
    md_buf_init(&head, RENDER_MAX);
    if (is_digest(note))
        md_buf_puts(&head, rpt_jstr(digest_of(note), "subject"));
    else
        put_headline(&head, note);
    if (is_digest(note) && rpt_jstr(digest_of(note), "html")[0]) {
        put_clean(&raw, rpt_jstr(digest_of(note), "html"), RENDER_MAX, MULTILINE);
        goto out;
    }
    md_buf_puts(&raw, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    put_html_clean(&raw, md_buf_str(&head), SUBJECT_MAX, ONE_LINE);
    md_buf_puts(&raw, "</title></head>\n<body style=\"font-family: sans-serif\">\n<h2>");
    put_html_clean(&raw, md_buf_str(&head), SUBJECT_MAX, ONE_LINE);
    md_buf_puts(&raw, "</h2>\n");
    if (is_digest(note)) {
        const char *t = rpt_jstr(digest_of(note), "text");
        md_buf_puts(&raw, "<pre>");
        put_html_clean(&raw, t[0] ? t : rpt_jstr(digest_of(note), "markdown"), RENDER_MAX,
                       MULTILINE);
        md_buf_puts(&raw, "</pre>\n</body></html>\n");
        goto out;
    }
    md_buf_puts(&raw, "<table cellpadding=\"4\" style=\"border-collapse: collapse\">\n"
                      "<tr><th align=\"left\">status</th><th align=\"left\">severity</th>"
                      "<th align=\"left\">alert</th><th align=\"left\">where</th>"
                      "<th align=\"left\">when</th><th align=\"left\">message</th></tr>\n");
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(note, "alerts"))
    {
        struct md_buf w;
        md_buf_printf(&raw, "<tr valign=\"top\"><td><b>%s</b></td><td>",
                      alert_firing(a) ? "FIRING" : "RESOLVED");
        put_html_clean(&raw, rpt_jstr(labels_of(a), "severity"), 100, ONE_LINE);
        md_buf_puts(&raw, "</td><td><code>");
        put_html_clean(&raw, alert_key(a), 1000, ONE_LINE);
        md_buf_puts(&raw, "</code></td><td>");
        md_buf_init(&w, RENDER_MAX);
        put_where(&w, a, " ");
        put_html_clean(&raw, md_buf_str(&w), 1000, ONE_LINE);
        md_buf_free(&w);
        md_buf_puts(&raw, "</td><td>");
        md_buf_init(&w, RENDER_MAX);
        put_when(&w, a);
        put_html_clean(&raw, md_buf_str(&w), 1000, ONE_LINE);
        md_buf_free(&w);
        md_buf_puts(&raw, "</td><td><pre style=\"white-space: pre-wrap; margin: 0\">");
        put_html_clean(&raw,
                       rpt_jstr(cJSON_GetObjectItemCaseSensitive(a, "annotations"), "message"),
                       MESSAGE_MAX, MULTILINE);
        md_buf_puts(&raw, "</pre></td></tr>\n");
    }
    md_buf_puts(&raw, "</table>\n");
    if (trunc > 0)
        md_buf_printf(&raw, "<p>... and %lld more alert%s not listed here.</p>\n", (long long)trunc,
                      trunc == 1 ? "" : "s");
    if (link != NULL) {
        md_buf_puts(&raw, "<p><a href=\"");
        put_html(&raw, link);
        md_buf_puts(&raw, "\">Status page</a></p>\n");
    }
    md_buf_puts(&raw, "<p style=\"color: #666; font-size: small\">");
    {
        struct md_buf foot;
        md_buf_init(&foot, RENDER_MAX);
        put_footer_line(&foot, note);
        put_html_clean(&raw, md_buf_str(&foot), 1000, ONE_LINE);
        md_buf_free(&foot);
    }
    md_buf_puts(&raw, "</p>\n</body></html>\n");
out:
    md_buf_free(&head);
    md_buf_init(&b, RENDER_MAX);
    put_crlf(&b, md_buf_str(&raw));
    md_buf_free(&raw);
    return take(&b);
}

/* ---- Slack ----------------------------------------------------------------------------------- */

static void add_section(cJSON *blocks, const char *mrkdwn)
{
    cJSON *s = cJSON_CreateObject(), *t = cJSON_AddObjectToObject(s, "text");

    cJSON_AddStringToObject(s, "type", "section");
    cJSON_AddStringToObject(t, "type", "mrkdwn");
    cJSON_AddStringToObject(t, "text", mrkdwn);
    cJSON_AddItemToArray(blocks, s);
}

static void add_context(cJSON *blocks, const char *mrkdwn)
{
    cJSON *c = cJSON_CreateObject(), *els = cJSON_AddArrayToObject(c, "elements");
    cJSON *e = cJSON_CreateObject();

    cJSON_AddStringToObject(c, "type", "context");
    cJSON_AddStringToObject(e, "type", "mrkdwn");
    cJSON_AddStringToObject(e, "text", mrkdwn);
    cJSON_AddItemToArray(els, e);
    cJSON_AddItemToArray(blocks, c);
}

/* An identifier inside `code`: a backtick would end it. */
static void put_code_safe(struct md_buf *b, const char *s)
{
    for (; *s; s++)
        md_buf_put(b, *s == '`' ? "'" : s, 1);
}

/* The context line: "meshd-report, node pc, route route1 | <url|status page>". */
static char *slack_context(const cJSON *note)
{
    struct md_buf raw;
    char *esc, *out;
    const char *link = safe_link(rpt_jstr(note, "externalURL"));

    md_buf_init(&raw, RENDER_MAX);
    put_footer_line(&raw, note);
    esc = rpt_slack_escape(md_buf_str(&raw), RPT_SLACK_TEXT_MAX - 300);
    md_buf_free(&raw);
    if (link == NULL)
        return esc;
    md_buf_init(&raw, RENDER_MAX);
    md_buf_puts(&raw, esc);
    md_free(esc);
    esc = rpt_slack_escape(link, 250);
    if (strstr(esc, CUT) == NULL) /* a cut URL is no link */
        md_buf_printf(&raw, " | <%s|status page>", esc);
    md_free(esc);
    out = take(&raw);
    return out;
}

/* The digest's text in sections of at most RPT_SLACK_TEXT_MAX bytes, cut at line ends where it
 * can be (a longer line is cut at a character, never inside an entity), into at most room
 * sections; the last says what was left out. */
static void slack_digest(cJSON *blocks, const cJSON *note, int room)
{
    const char *t = rpt_jstr(digest_of(note), "text");
    char *esc = rpt_slack_escape(t[0] ? t : rpt_jstr(digest_of(note), "markdown"), RENDER_MAX);
    const char *p = esc;
    size_t left = strlen(esc);
    int used = 0;

    while (left > 0 && used < room) {
        size_t n = left;
        char *chunk;
        if (used == room - 1 && left > RPT_SLACK_TEXT_MAX) {
            add_section(blocks, "_(the digest is longer than a Slack message: the rest is in "
                                "its e-mail and Markdown file)_");
            break;
        }
        if (n > RPT_SLACK_TEXT_MAX) {
            const char *nl;
            n = RPT_SLACK_TEXT_MAX;
            /* back to a line end, else to a character start outside an entity */
            for (nl = p + n; nl > p && nl[-1] != '\n'; nl--)
                ;
            if (nl > p + RPT_SLACK_TEXT_MAX / 2) {
                n = (size_t)(nl - p);
            } else {
                while (n > 0 && ((unsigned char)p[n] & 0xc0) == 0x80)
                    n--;
                for (size_t k = n; k > 0 && n - k < 6; k--) {
                    if (p[k - 1] == ';')
                        break;
                    if (p[k - 1] == '&') {
                        n = k - 1;
                        break;
                    }
                }
            }
        }
        chunk = md_xstrndup(p, n);
        /* Slack refuses an empty or all-blank section */
        if (strspn(chunk, " \n") < n)
            add_section(blocks, chunk);
        md_free(chunk);
        p += n;
        left -= n;
        used++;
    }
    md_free(esc);
}

cJSON *rpt_render_slack(const cJSON *note, const char *prefix)
{
    cJSON *msg = cJSON_CreateObject(), *blocks;
    char *subject = rpt_render_subject(note, prefix), *esc, *ctx;
    struct md_buf raw;
    const cJSON *a, *alerts = cJSON_GetObjectItemCaseSensitive(note, "alerts");
    /* header + alerts + "more" + context */
    int room = RPT_SLACK_BLOCKS_MAX - 3, n = 0, listed = cJSON_GetArraySize(alerts);
    int64_t more = rpt_jint(note, "truncatedAlerts");

    esc = rpt_slack_escape(subject, RPT_SLACK_TEXT_MAX);
    cJSON_AddStringToObject(msg, "text", esc);
    md_free(esc);
    blocks = cJSON_AddArrayToObject(msg, "blocks");

    md_buf_init(&raw, RENDER_MAX);
    md_buf_printf(&raw, "*%s*", subject);
    esc = rpt_slack_escape(md_buf_str(&raw), RPT_SLACK_TEXT_MAX);
    add_section(blocks, esc);
    md_free(esc);
    md_buf_free(&raw);
    md_free(subject);

    if (is_digest(note)) {
        slack_digest(blocks, note, RPT_SLACK_BLOCKS_MAX - 2);
        goto context;
    }
    cJSON_ArrayForEach(a, alerts)
    {
        const char *msgtext =
            rpt_jstr(cJSON_GetObjectItemCaseSensitive(a, "annotations"), "message");
        if (n == room && listed > room) /* keep the last one for the count */
            break;
        md_buf_init(&raw, RENDER_MAX);
        md_buf_printf(&raw, "*[%s] %s* `", alert_firing(a) ? "FIRING" : "RESOLVED",
                      rpt_jstr(labels_of(a), "severity"));
        put_code_safe(&raw, alert_key(a));
        md_buf_puts(&raw, "`");
        if (rpt_jstr(labels_of(a), "job")[0] || rpt_jstr(labels_of(a), "node")[0]) {
            md_buf_puts(&raw, " ");
            put_where(&raw, a, " ");
        }
        md_buf_puts(&raw, "\n");
        put_when(&raw, a);
        if (msgtext[0]) {
            md_buf_puts(&raw, "\n");
            md_buf_puts(&raw, msgtext);
        }
        esc = rpt_slack_escape(md_buf_str(&raw), RPT_SLACK_TEXT_MAX);
        add_section(blocks, esc);
        md_free(esc);
        md_buf_free(&raw);
        n++;
    }
    more += listed - n;
    if (more > 0) {
        md_buf_init(&raw, RENDER_MAX);
        md_buf_printf(&raw, "... and %lld more alert%s not listed here.", (long long)more,
                      more == 1 ? "" : "s");
        add_section(blocks, md_buf_str(&raw));
        md_buf_free(&raw);
    }
context:
    ctx = slack_context(note);
    add_context(blocks, ctx);
    md_free(ctx);
    return msg;
}

/* ---- GitHub ---------------------------------------------------------------------------------- */

char *rpt_gh_title(const cJSON *alert, const char *prefix)
{
    struct md_buf raw;
    const char *job = rpt_jstr(labels_of(alert), "job"), *node = rpt_jstr(labels_of(alert), "node");
    char *out;

    md_buf_init(&raw, RENDER_MAX);
    if (prefix != NULL && prefix[0])
        md_buf_printf(&raw, "%s ", prefix);
    md_buf_puts(&raw, alert_key(alert));
    if (job[0])
        md_buf_printf(&raw, " (job %s)", job);
    else if (node[0])
        md_buf_printf(&raw, " (node %s)", node);
    out = oneline(md_buf_str(&raw), TITLE_MAX);
    md_buf_free(&raw);
    return out;
}

/* A table cell or inline code: one line, no '|' (ends a cell), no '`' (ends the code). */
static void put_md_cell(struct md_buf *b, const char *s, size_t max)
{
    struct md_buf c;

    md_buf_init(&c, RENDER_MAX);
    put_clean(&c, s, max, ONE_LINE);
    for (const char *p = md_buf_str(&c); *p; p++)
        md_buf_put(b, *p == '|' ? "/" : *p == '`' ? "'" : p, 1);
    md_buf_free(&c);
}

/* The message in a fenced code block whose fence is longer than any run of backticks in it, so
 * nothing in the message is Markdown: no @mention pings, no #123 reference, no HTML. */
static void put_md_message(struct md_buf *b, const char *msg)
{
    struct md_buf c;
    size_t run = 0, longest = 0, fence;

    md_buf_init(&c, RENDER_MAX);
    put_clean(&c, msg[0] ? msg : "(no message)", MESSAGE_MAX, MULTILINE);
    for (const char *p = md_buf_str(&c); *p; p++) {
        run = *p == '`' ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    fence = longest < 3 ? 3 : longest + 1;
    for (size_t i = 0; i < fence; i++)
        md_buf_puts(b, "`");
    md_buf_puts(b, "text\n");
    md_buf_puts(b, md_buf_str(&c));
    md_buf_puts(b, "\n");
    for (size_t i = 0; i < fence; i++)
        md_buf_puts(b, "`");
    md_buf_puts(b, "\n");
    md_buf_free(&c);
}

static void put_md_link(struct md_buf *b, const cJSON *note, const cJSON *alert)
{
    const char *link = alert_link(note, alert);
    if (link != NULL)
        md_buf_printf(b, "\n[meshd status page](<%s>)\n", link);
}

/* "@team" as written, one line; nothing when NULL or empty. */
static void put_md_mention(struct md_buf *b, const char *mention)
{
    if (mention == NULL || mention[0] == '\0')
        return;
    md_buf_puts(b, "\ncc ");
    put_clean(b, mention, 500, ONE_LINE);
    md_buf_puts(b, "\n");
}

/* "<!-- meshd:note=<key> -->", the key as a table cell (one line, no '|' or '`'): the same
 * text whether written or looked for. */
static void put_note_marker(struct md_buf *b, const char *idem_key)
{
    md_buf_puts(b, "<!-- meshd:note=");
    put_md_cell(b, idem_key, 200);
    md_buf_puts(b, " -->");
}

static void put_md_note_marker(struct md_buf *b, const cJSON *note)
{
    md_buf_puts(b, "\n");
    put_note_marker(b, rpt_note_meshd(note, "idempotencyKey"));
    md_buf_puts(b, "\n");
}

char *rpt_gh_body(const cJSON *note, const cJSON *alert, const char *mention)
{
    struct md_buf b;
    const cJSON *l = labels_of(alert);
    int64_t count = rpt_jint(alert, "count");
    const bool esc = strcmp(rpt_note_meshd(note, "kind"), "escalation") == 0;

    md_buf_init(&b, RENDER_MAX);
    if (esc)
        md_buf_printf(
            &b, "**Escalated (level %lld):** ",
            (long long)rpt_jint(cJSON_GetObjectItemCaseSensitive(note, "meshd"), "level"));
    md_buf_puts(&b, "meshd alert `");
    put_md_cell(&b, alert_key(alert), 500);
    md_buf_puts(&b, "` is **firing**, severity **");
    put_md_cell(&b, rpt_jstr(l, "severity"), 50);
    md_buf_puts(&b, "**.\n\n| | |\n|---|---|\n| key | `");
    put_md_cell(&b, alert_key(alert), 500);
    md_buf_puts(&b, "` |\n| severity | ");
    put_md_cell(&b, rpt_jstr(l, "severity"), 50);
    md_buf_puts(&b, " |\n");
    if (rpt_jstr(l, "job")[0]) {
        md_buf_puts(&b, "| job | `");
        put_md_cell(&b, rpt_jstr(l, "job"), 200);
        md_buf_puts(&b, "` |\n");
    }
    if (rpt_jstr(l, "node")[0]) {
        md_buf_puts(&b, "| node | `");
        put_md_cell(&b, rpt_jstr(l, "node"), 200);
        md_buf_puts(&b, "` |\n");
    }
    md_buf_puts(&b, "| since | ");
    put_md_cell(&b, rpt_jstr(alert, "startsAt"), 40);
    md_buf_puts(&b, " |\n");
    if (count > 0)
        md_buf_printf(&b, "| raised | %lld time%s |\n", (long long)count, count == 1 ? "" : "s");
    md_buf_puts(&b, "| fingerprint | `");
    put_md_cell(&b, rpt_jstr(alert, "fingerprint"), 40);
    md_buf_puts(&b, "` |\n\nMessage:\n\n");
    put_md_message(&b, rpt_jstr(cJSON_GetObjectItemCaseSensitive(alert, "annotations"), "message"));
    put_md_link(&b, note, alert);
    put_md_mention(&b, mention);
    md_buf_puts(&b,
                "\nmeshd-report opened this issue for the alert and keeps it: a comment when it "
                "repeats, closed when it resolves, reopened when it fires again.\n");
    md_buf_puts(&b, "\n<!-- meshd:fp=");
    put_md_cell(&b, rpt_jstr(alert, "fingerprint"), 40);
    md_buf_puts(&b, " -->");
    put_md_note_marker(&b, note);
    return take(&b);
}

char *rpt_gh_comment(const cJSON *note, const cJSON *alert, enum rpt_gh_event ev, int occurrence,
                     const char *mention)
{
    struct md_buf b;
    int64_t count = rpt_jint(alert, "count");
    const char *msg = rpt_jstr(cJSON_GetObjectItemCaseSensitive(alert, "annotations"), "message");

    md_buf_init(&b, RENDER_MAX);
    switch (ev) {
    case RPT_GH_FIRING_AGAIN:
    case RPT_GH_REOPENED:
        md_buf_puts(&b, ev == RPT_GH_REOPENED ? "**Firing again** (reopened)" : "**Firing again**");
        if (occurrence > 0)
            md_buf_printf(&b, ", occurrence %d", occurrence);
        md_buf_puts(&b, ": since ");
        put_md_cell(&b, rpt_jstr(alert, "startsAt"), 40);
        md_buf_puts(&b, ", severity **");
        put_md_cell(&b, rpt_jstr(labels_of(alert), "severity"), 50);
        md_buf_puts(&b, "**.\n\n");
        put_md_message(&b, msg);
        put_md_link(&b, note, alert);
        if (ev == RPT_GH_REOPENED)
            put_md_mention(&b, mention);
        break;
    case RPT_GH_REPEAT:
        md_buf_puts(&b, "**Still firing** since ");
        put_md_cell(&b, rpt_jstr(alert, "startsAt"), 40);
        if (count > 0)
            md_buf_printf(&b, ": raised %lld time%s", (long long)count, count == 1 ? "" : "s");
        md_buf_puts(&b, ". Last message:\n\n");
        put_md_message(&b, msg);
        put_md_link(&b, note, alert);
        break;
    case RPT_GH_RESOLVED:
        md_buf_puts(&b, "**Resolved** at ");
        put_md_cell(&b, rpt_jstr(alert, "endsAt"), 40);
        md_buf_puts(&b, " (firing since ");
        put_md_cell(&b, rpt_jstr(alert, "startsAt"), 40);
        if (count > 0)
            md_buf_printf(&b, ", raised %lld time%s", (long long)count, count == 1 ? "" : "s");
        md_buf_puts(&b, "). meshd-report closes this issue; it reopens it if the alert fires "
                        "again.\n");
        put_md_link(&b, note, alert);
        break;
    case RPT_GH_ESCALATED:
        md_buf_printf(
            &b, "**Escalated (level %lld):** still firing since ",
            (long long)rpt_jint(cJSON_GetObjectItemCaseSensitive(note, "meshd"), "level"));
        put_md_cell(&b, rpt_jstr(alert, "startsAt"), 40);
        if (count > 0)
            md_buf_printf(&b, ", raised %lld time%s", (long long)count, count == 1 ? "" : "s");
        md_buf_puts(&b, ".\n\n");
        put_md_message(&b, msg);
        put_md_link(&b, note, alert);
        put_md_mention(&b, mention);
        break;
    }
    put_md_note_marker(&b, note);
    return take(&b);
}

/* Appends s cut to max bytes at a character start. */
static void cut_utf8(char *s, size_t max)
{
    size_t n = strlen(s);

    if (n <= max)
        return;
    while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
        max--;
    s[max] = '\0';
}

void rpt_gh_fp_label(const char *fp, char *buf, size_t len)
{
    char clean[RPT_GH_LABEL_MAX + 1];

    rpt_clean_text(clean, sizeof clean, fp, strlen(fp));
    snprintf(buf, len, "meshd-fp:%s", clean);
    cut_utf8(buf, RPT_GH_LABEL_MAX);
}

static void add_label(cJSON *arr, const char *name)
{
    char *l = oneline(name, RENDER_MAX);
    const cJSON *v;

    cut_utf8(l, RPT_GH_LABEL_MAX);
    /* GitHub trims label names; a blank one is refused */
    if (strspn(l, " ") == strlen(l))
        goto out;
    cJSON_ArrayForEach(v, arr)
    {
        if (strcmp(v->valuestring, l) == 0)
            goto out;
    }
    cJSON_AddItemToArray(arr, cJSON_CreateString(l));
out:
    md_free(l);
}

cJSON *rpt_gh_labels(const struct rpt_receiver *r, const cJSON *alert)
{
    cJSON *arr = cJSON_CreateArray();
    const cJSON *l = labels_of(alert);
    char buf[RPT_GH_LABEL_MAX + 64];

    add_label(arr, "meshd");
    rpt_gh_fp_label(rpt_jstr(alert, "fingerprint"), buf, sizeof buf);
    add_label(arr, buf);
    if (rpt_jstr(l, "severity")[0]) {
        snprintf(buf, sizeof buf, "severity:%.40s", rpt_jstr(l, "severity"));
        add_label(arr, buf);
    }
    if (rpt_jstr(l, "job")[0]) {
        char *s = md_xasprintf("job:%s", rpt_jstr(l, "job"));
        add_label(arr, s);
        md_free(s);
    }
    for (size_t i = 0; r != NULL && i < r->labels.n; i++)
        add_label(arr, r->labels.v[i]);
    return arr;
}

bool rpt_gh_has_note(const char *body, const char *idem_key)
{
    struct md_buf m;
    bool found;

    if (body == NULL || idem_key == NULL || idem_key[0] == '\0')
        return false;
    md_buf_init(&m, RENDER_MAX);
    put_note_marker(&m, idem_key);
    found = strstr(body, md_buf_str(&m)) != NULL;
    md_buf_free(&m);
    return found;
}
