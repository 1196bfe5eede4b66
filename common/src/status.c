/* status.c - the status protocol: strict parsing (supervisor side) and the writer (worker side).
 *
 * Grammar of one line (RFC 8259 JSON, then the checks below):
 *
 *   line     = ws object ws                      ; at most MD_STATUS_LINE_MAX bytes, UTF-8
 *   object   = { "event": kind, <fields of kind>, <any other members, ignored> }
 *   ready    = {}
 *   heartbeat= {}
 *   progress = "done": number>=0 [, "total": number>=0] [, "unit": name]
 *   metric   = "name": name, "value": number
 *   alert    = "severity": "critical"|"warning"|"info", "key": name, "message": text
 *   resolve  = "key": name
 *   message  = "type": name [, "payload": any] [, "priority": whole]
 *              [, "to_node": meshd-name] [, "to_job": meshd-name]
 *   result   = "status": "ok"|"failed" [, "summary": any]
 *   name     = string of 1..200 bytes without control characters
 *   text     = string of 0..4096 bytes
 *   number   = a finite JSON number (cJSON reads 1e999 as infinity: rejected)
 *   whole    = a number with no fractional part, 0..1000000 (1e2 and 100.0 are 100)
 *   meshd-name = a name that can be a job or node name: 1..64 of [A-Za-z0-9_.-] (md_name_ok);
 *              stricter than name, since a target no job can have would wait forever
 *
 * Strings must be valid UTF-8 and free of NUL (raw or as \u0000): the values end up in log lines
 * and PostgreSQL text/jsonb columns, which accept neither.
 */
#include "meshd/md_status.h"

#include "meshd/md_alloc.h"
#include "meshd/md_config.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PFX "status line: "

static const char *const kind_names[] = {
    [MD_ST_READY] = "ready",     [MD_ST_HEARTBEAT] = "heartbeat", [MD_ST_PROGRESS] = "progress",
    [MD_ST_METRIC] = "metric",   [MD_ST_ALERT] = "alert",         [MD_ST_RESOLVE] = "resolve",
    [MD_ST_MESSAGE] = "message", [MD_ST_RESULT] = "result",
};

static const char *const severity_names[] = {
    [MD_SEV_CRITICAL] = "critical",
    [MD_SEV_WARNING] = "warning",
    [MD_SEV_INFO] = "info",
};

const char *md_status_kind_name(enum md_status_kind kind)
{
    if ((unsigned)kind < MD_ARRAY_SIZE(kind_names))
        return kind_names[kind];
    return "unknown";
}

const char *md_status_severity_name(enum md_status_severity sev)
{
    if ((unsigned)sev < MD_ARRAY_SIZE(severity_names))
        return severity_names[sev];
    return "unknown";
}

/* cJSON reports allocation failure as NULL, like a syntax error.  Where NULL can only mean OOM
 * we abort, as md_xmalloc does. */
static void *need(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory in cJSON\n");
        abort();
    }
    return p;
}

/* ---- parsing ---------------------------------------------------------------------------- */

/* Checks what cJSON lets through: UTF-8 validity (no overlongs, surrogates or code points past
 * U+10FFFF), NUL bytes, raw control characters inside strings (RFC 8259 forbids them; cJSON
 * accepts them) and the \u0000 escape (cJSON would silently cut the string there).  The string
 * tracking is exact for valid JSON; for invalid JSON cJSON fails afterwards anyway. */
static int scan_line(const unsigned char *s, size_t len, struct md_error *err)
{
    int in_str = 0, esc = 0;
    size_t i = 0;

    while (i < len) {
        unsigned c = s[i];

        if (c == 0)
            return md_error_set(err, MD_EPROTO, 0, (int)i + 1, PFX "NUL byte");
        if (c < 0x80) {
            if (in_str) {
                if (c < 0x20)
                    return md_error_set(err, MD_EPROTO, 0, (int)i + 1,
                                        PFX "unescaped control character in a string");
                if (esc) {
                    esc = 0;
                    if (c == 'u' && len - i > 4 && memcmp(s + i + 1, "0000", 4) == 0)
                        return md_error_set(err, MD_EPROTO, 0, (int)i,
                                            PFX "\\u0000 is not allowed in a string");
                } else if (c == '\\') {
                    esc = 1;
                } else if (c == '"') {
                    in_str = 0;
                }
            } else if (c == '"') {
                in_str = 1;
            }
            i++;
            continue;
        }
        esc = 0;

        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            goto bad_utf8;
        }
        if (len - i <= n)
            goto bad_utf8;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                goto bad_utf8;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad_utf8;
        i += n + 1;
    }
    return 0;

bad_utf8:
    return md_error_set(err, MD_EPROTO, 0, (int)i + 1, PFX "invalid UTF-8");
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

enum { F_REQUIRED = 1, F_NAME = 2 };

/* Copies string member `field` of obj into *out (md_free; NULL when absent and optional).
 * F_NAME: 1..MD_STATUS_NAME_MAX bytes without control characters; else up to max bytes. */
static int get_string(const cJSON *obj, const char *ev, const char *field, int flags, size_t max,
                      char **out, struct md_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    size_t n;

    *out = NULL;
    if (it == NULL && !(flags & F_REQUIRED))
        return 0;
    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s' needs a string '%s'", ev, field);
    n = strlen(it->valuestring);
    if (flags & F_NAME) {
        max = MD_STATUS_NAME_MAX;
        if (n == 0)
            return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s': '%s' is empty", ev, field);
        if (has_control(it->valuestring))
            return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s': '%s' contains a control character",
                                ev, field);
    }
    if (n > max)
        return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s': '%s' is longer than %zu bytes", ev,
                            field, max);
    *out = md_xstrndup(it->valuestring, n);
    return 0;
}

/* Reads number member `field`; *present (may be NULL for required fields) says if it was there. */
static int get_number(const cJSON *obj, const char *ev, const char *field, int flags, int nonneg,
                      double *out, int *present, struct md_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);

    *out = 0;
    if (present)
        *present = it != NULL;
    if (it == NULL && !(flags & F_REQUIRED))
        return 0;
    if (!cJSON_IsNumber(it))
        return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s' needs a numeric '%s'", ev, field);
    if (!isfinite(it->valuedouble))
        return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s': '%s' is not a finite number", ev,
                            field);
    if (nonneg && it->valuedouble < 0)
        return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s': '%s' is negative", ev, field);
    *out = it->valuedouble;
    return 0;
}

/* Reads optional whole-number member `field` in lo..hi; *present says if it was there. */
static int get_whole(const cJSON *obj, const char *ev, const char *field, int lo, int hi, int *out,
                     int *present, struct md_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    double v;

    *out = 0;
    *present = 0;
    if (it == NULL)
        return 0;
    v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
    if (!isfinite(v) || v != floor(v) || v < lo || v > hi)
        return md_error_set(err, MD_EPROTO, 0, 0,
                            PFX "'%s': '%s' must be a whole number from %d to %d", ev, field, lo,
                            hi);
    *out = (int)v;
    *present = 1;
    return 0;
}

/* Optional string member `field` that must be a job or node name (md_name_ok), into *out. */
static int get_meshd_name(const cJSON *obj, const char *ev, const char *field, const char *what,
                          char **out, struct md_error *err)
{
    int rc = get_string(obj, ev, field, F_NAME, 0, out, err);

    if (rc < 0 || *out == NULL || md_name_ok(*out))
        return rc;
    md_free(*out);
    *out = NULL;
    return md_error_set(err, MD_EPROTO, 0, 0,
                        PFX
                        "'%s': '%s' is not a %s name (1 to 64 letters, digits, '_', '.' or '-')",
                        ev, field, what);
}

/* Renders optional member `field` (any JSON value) as compact JSON text into *out. */
static void get_json(const cJSON *obj, const char *field, char **out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);
    char *s;

    *out = NULL;
    if (it == NULL)
        return;
    s = need(cJSON_PrintUnformatted(it));
    *out = md_xstrdup(s);
    cJSON_free(s);
}

/* Matches string member `field` against names[0..n); *idx gets the index. */
static int get_enum(const cJSON *obj, const char *ev, const char *field, const char *const *names,
                    size_t n, const char *expect, int *idx, struct md_error *err)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);

    if (!cJSON_IsString(it) || it->valuestring == NULL)
        return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s' needs a string '%s'", ev, field);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(it->valuestring, names[i]) == 0) {
            *idx = (int)i;
            return 0;
        }
    }
    return md_error_set(err, MD_EPROTO, 0, 0, PFX "'%s': '%s' must be %s, not '%.40s'", ev, field,
                        expect, it->valuestring);
}

static int parse_fields(const cJSON *root, enum md_status_kind kind, struct md_status_event *ev,
                        struct md_error *err)
{
    const char *name = kind_names[kind];
    static const char *const result_names[] = {"failed", "ok"};
    int rc = 0, idx = 0;

    switch (kind) {
    case MD_ST_READY:
    case MD_ST_HEARTBEAT:
        break;
    case MD_ST_PROGRESS:
        if ((rc = get_number(root, name, "done", F_REQUIRED, 1, &ev->u.progress.done, NULL, err)) <
                0 ||
            (rc = get_number(root, name, "total", 0, 1, &ev->u.progress.total,
                             &ev->u.progress.has_total, err)) < 0 ||
            (rc = get_string(root, name, "unit", F_NAME, 0, &ev->u.progress.unit, err)) < 0)
            return rc;
        break;
    case MD_ST_METRIC:
        if ((rc = get_string(root, name, "name", F_REQUIRED | F_NAME, 0, &ev->u.metric.name, err)) <
                0 ||
            (rc = get_number(root, name, "value", F_REQUIRED, 0, &ev->u.metric.value, NULL, err)) <
                0)
            return rc;
        break;
    case MD_ST_ALERT:
        if ((rc = get_enum(root, name, "severity", severity_names, MD_ARRAY_SIZE(severity_names),
                           "critical, warning or info", &idx, err)) < 0)
            return rc;
        ev->u.alert.severity = (enum md_status_severity)idx;
        if ((rc = get_string(root, name, "key", F_REQUIRED | F_NAME, 0, &ev->u.alert.key, err)) <
                0 ||
            (rc = get_string(root, name, "message", F_REQUIRED, MD_STATUS_TEXT_MAX,
                             &ev->u.alert.message, err)) < 0)
            return rc;
        break;
    case MD_ST_RESOLVE:
        if ((rc = get_string(root, name, "key", F_REQUIRED | F_NAME, 0, &ev->u.resolve.key, err)) <
            0)
            return rc;
        break;
    case MD_ST_MESSAGE:
        if ((rc = get_string(root, name, "type", F_REQUIRED | F_NAME, 0, &ev->u.message.type,
                             err)) < 0 ||
            (rc = get_whole(root, name, "priority", MD_STATUS_PRIORITY_MIN, MD_STATUS_PRIORITY_MAX,
                            &ev->u.message.priority, &ev->u.message.has_priority, err)) < 0 ||
            (rc = get_meshd_name(root, name, "to_node", "node", &ev->u.message.to_node, err)) < 0 ||
            (rc = get_meshd_name(root, name, "to_job", "job", &ev->u.message.to_job, err)) < 0)
            return rc;
        get_json(root, "payload", &ev->u.message.payload);
        break;
    case MD_ST_RESULT:
        if ((rc = get_enum(root, name, "status", result_names, MD_ARRAY_SIZE(result_names),
                           "ok or failed", &idx, err)) < 0)
            return rc;
        ev->u.result.ok = idx;
        get_json(root, "summary", &ev->u.result.summary);
        break;
    }
    return 0;
}

static int is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int md_status_parse(const char *line, size_t len, struct md_status_event *ev, struct md_error *err)
{
    cJSON *root = NULL;
    const cJSON *evt;
    char *copy = NULL;
    const char *end = NULL;
    int rc, kind = -1;

    memset(ev, 0, sizeof *ev);
    if (len > MD_STATUS_LINE_MAX)
        return md_error_set(err, MD_ETOOBIG, 0, 0, PFX "longer than %d bytes", MD_STATUS_LINE_MAX);
    if ((rc = scan_line((const unsigned char *)line, len, err)) < 0)
        return rc;

    /* cJSON 1.7.15 reads one byte past buffer_length (DaveGamble/cJSON#804), and our lines
     * point into a read buffer, so parse a NUL-terminated copy: the stray read sees the NUL. */
    copy = md_xstrndup(line, len);
    root = cJSON_ParseWithLengthOpts(copy, len, &end, 0);
    if (root == NULL) {
        int col = end != NULL && end >= copy && end <= copy + len ? (int)(end - copy) + 1 : 0;
        rc = md_error_set(err, MD_EPROTO, 0, col, PFX "not valid JSON");
        goto out;
    }
    while (end < copy + len && is_json_ws(*end))
        end++;
    if (end != copy + len) {
        rc = md_error_set(err, MD_EPROTO, 0, (int)(end - copy) + 1,
                          PFX "unexpected data after the JSON object");
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        rc = md_error_set(err, MD_EPROTO, 0, 1, PFX "not a JSON object");
        goto out;
    }

    evt = cJSON_GetObjectItemCaseSensitive(root, "event");
    if (!cJSON_IsString(evt) || evt->valuestring == NULL) {
        rc = md_error_set(err, MD_EPROTO, 0, 0, PFX "needs a string 'event'");
        goto out;
    }
    for (size_t i = 0; i < MD_ARRAY_SIZE(kind_names); i++)
        if (strcmp(evt->valuestring, kind_names[i]) == 0)
            kind = (int)i;
    if (kind < 0) {
        rc = md_error_set(err, MD_EPROTO, 0, 0, PFX "unknown event '%.60s'", evt->valuestring);
        goto out;
    }
    ev->kind = (enum md_status_kind)kind;
    rc = parse_fields(root, ev->kind, ev, err);

out:
    if (rc < 0)
        md_status_event_cleanup(ev);
    cJSON_Delete(root);
    md_free(copy);
    return rc;
}

void md_status_event_cleanup(struct md_status_event *ev)
{
    switch (ev->kind) {
    case MD_ST_READY:
    case MD_ST_HEARTBEAT:
        break;
    case MD_ST_PROGRESS:
        md_free(ev->u.progress.unit);
        break;
    case MD_ST_METRIC:
        md_free(ev->u.metric.name);
        break;
    case MD_ST_ALERT:
        md_free(ev->u.alert.key);
        md_free(ev->u.alert.message);
        break;
    case MD_ST_RESOLVE:
        md_free(ev->u.resolve.key);
        break;
    case MD_ST_MESSAGE:
        md_free(ev->u.message.type);
        md_free(ev->u.message.payload);
        md_free(ev->u.message.to_node);
        md_free(ev->u.message.to_job);
        break;
    case MD_ST_RESULT:
        md_free(ev->u.result.summary);
        break;
    }
    memset(ev, 0, sizeof *ev);
}

/* ---- formatting ------------------------------------------------------------------------- */

static int add_string(cJSON *obj, const char *field, const char *s)
{
    if (s == NULL)
        return -EINVAL;
    need(cJSON_AddStringToObject(obj, field, s));
    return 0;
}

/* cJSON prints doubles with %.15g and accepts the result if it is within an epsilon of the
 * value, so 0.1 + 0.2 would arrive as 0.3.  Typed numbers go out as the shortest text that reads
 * back as exactly the same double. */
static int add_number(cJSON *obj, const char *field, double v)
{
    char buf[32];

    if (!isfinite(v))
        return -EINVAL; /* cJSON would print null */
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    need(cJSON_AddRawToObject(obj, field, buf));
    return 0;
}

/* Adds JSON text json (NULL: nothing) as member field.  Trailing whitespace is allowed. */
static int add_json(cJSON *obj, const char *field, const char *json)
{
    const char *end = NULL;
    size_t n;
    cJSON *it;

    if (json == NULL)
        return 0;
    n = strlen(json);
    it = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (it == NULL)
        return -EINVAL;
    while (end < json + n && is_json_ws(*end))
        end++;
    if (end != json + n) {
        cJSON_Delete(it);
        return -EINVAL;
    }
    cJSON_AddItemToObject(obj, field, it);
    return 0;
}

/* Like md_status_format, but *out has room for one more byte (the writer's '\n'). */
static int format_line(const struct md_status_event *ev, char **out, size_t *outlen)
{
    cJSON *root = NULL;
    char *s = NULL;
    size_t n;
    int rc = -EINVAL;
    struct md_status_event check;

    *out = NULL;
    *outlen = 0;
    if ((unsigned)ev->kind >= MD_ARRAY_SIZE(kind_names))
        return -EINVAL;
    root = need(cJSON_CreateObject());
    need(cJSON_AddStringToObject(root, "event", kind_names[ev->kind]));
    switch (ev->kind) {
    case MD_ST_READY:
    case MD_ST_HEARTBEAT:
        rc = 0;
        break;
    case MD_ST_PROGRESS:
        if ((rc = add_number(root, "done", ev->u.progress.done)) < 0 ||
            (ev->u.progress.has_total &&
             (rc = add_number(root, "total", ev->u.progress.total)) < 0) ||
            (ev->u.progress.unit && (rc = add_string(root, "unit", ev->u.progress.unit)) < 0))
            goto out;
        break;
    case MD_ST_METRIC:
        if ((rc = add_string(root, "name", ev->u.metric.name)) < 0 ||
            (rc = add_number(root, "value", ev->u.metric.value)) < 0)
            goto out;
        break;
    case MD_ST_ALERT:
        if ((unsigned)ev->u.alert.severity >= MD_ARRAY_SIZE(severity_names)) {
            rc = -EINVAL;
            goto out;
        }
        need(cJSON_AddStringToObject(root, "severity", severity_names[ev->u.alert.severity]));
        if ((rc = add_string(root, "key", ev->u.alert.key)) < 0 ||
            (rc = add_string(root, "message", ev->u.alert.message)) < 0)
            goto out;
        break;
    case MD_ST_RESOLVE:
        if ((rc = add_string(root, "key", ev->u.resolve.key)) < 0)
            goto out;
        break;
    case MD_ST_MESSAGE:
        if ((rc = add_string(root, "type", ev->u.message.type)) < 0)
            goto out;
        if (ev->u.message.has_priority) {
            if (ev->u.message.priority < MD_STATUS_PRIORITY_MIN ||
                ev->u.message.priority > MD_STATUS_PRIORITY_MAX) {
                rc = -EINVAL;
                goto out;
            }
            need(cJSON_AddNumberToObject(root, "priority", ev->u.message.priority));
        }
        if ((ev->u.message.to_node &&
             (rc = add_string(root, "to_node", ev->u.message.to_node)) < 0) ||
            (ev->u.message.to_job && (rc = add_string(root, "to_job", ev->u.message.to_job)) < 0) ||
            (rc = add_json(root, "payload", ev->u.message.payload)) < 0)
            goto out;
        break;
    case MD_ST_RESULT:
        need(cJSON_AddStringToObject(root, "status", ev->u.result.ok ? "ok" : "failed"));
        if ((rc = add_json(root, "summary", ev->u.result.summary)) < 0)
            goto out;
        break;
    }

    s = need(cJSON_PrintUnformatted(root));
    n = strlen(s);
    if (n > MD_STATUS_LINE_MAX) {
        rc = MD_ETOOBIG;
        goto out;
    }
    /* The writer promises never to emit a line the reader rejects (lengths, control
     * characters, UTF-8), so run the reader over it rather than restating its rules here. */
    rc = md_status_parse(s, n, &check, NULL);
    md_status_event_cleanup(&check);
    if (rc < 0) {
        rc = -EINVAL;
        goto out;
    }
    *out = md_xmalloc(n + 2);
    memcpy(*out, s, n + 1);
    *outlen = n;

out:
    if (s != NULL)
        cJSON_free(s);
    cJSON_Delete(root);
    return rc;
}

int md_status_format(const struct md_status_event *ev, char **out, size_t *outlen)
{
    return format_line(ev, out, outlen);
}

/* ---- writer ----------------------------------------------------------------------------- */

int md_status_open(struct md_status_writer *w)
{
    const char *s = getenv("MESHD_STATUS_FD");
    struct sigaction sa;
    char *end;
    long v;
    int fl;

    w->fd = -1;
    if (s == NULL || *s == '\0')
        return -ENOENT;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > INT_MAX)
        return -EINVAL;
    fl = fcntl((int)v, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) == O_RDONLY)
        return -EBADF;
    /* fds 0-2 are allowed (MESHD_STATUS_FD=1 shows the lines on a terminal), but must not lose
     * their meaning for programs the worker runs. */
    if (v > 2) {
        int fdfl = fcntl((int)v, F_GETFD);
        if (fdfl >= 0 && !(fdfl & FD_CLOEXEC))
            (void)fcntl((int)v, F_SETFD, fdfl | FD_CLOEXEC);
    }
    /* A vanished reader must turn into -EPIPE, not kill the worker.  Respect any disposition
     * the program chose itself. */
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && !(sa.sa_flags & SA_SIGINFO) &&
        sa.sa_handler == SIG_DFL) {
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGPIPE, &sa, NULL);
    }
    w->fd = (int)v;
    return 0;
}

void md_status_close(struct md_status_writer *w)
{
    if (w->fd >= 0)
        (void)close(w->fd);
    w->fd = -1;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r >= 0) {
            p += r;
            n -= (size_t)r;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            /* Someone handed us a non-blocking fd: wait, keeping the line in one piece. */
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        return -errno;
    }
    return 0;
}

int md_status_send(struct md_status_writer *w, const struct md_status_event *ev)
{
    char *line;
    size_t n;
    int rc;

    if (w->fd < 0)
        return 0;
    if ((rc = format_line(ev, &line, &n)) < 0)
        return rc;
    line[n] = '\n';
    rc = write_all(w->fd, line, n + 1);
    md_free(line);
    return rc;
}

int md_status_ready(struct md_status_writer *w)
{
    struct md_status_event ev = {.kind = MD_ST_READY};
    return md_status_send(w, &ev);
}

int md_status_heartbeat(struct md_status_writer *w)
{
    struct md_status_event ev = {.kind = MD_ST_HEARTBEAT};
    return md_status_send(w, &ev);
}

int md_status_progress(struct md_status_writer *w, double done, double total, const char *unit)
{
    struct md_status_event ev = {.kind = MD_ST_PROGRESS};
    ev.u.progress.done = done;
    ev.u.progress.has_total = !(total < 0);
    ev.u.progress.total = ev.u.progress.has_total ? total : 0;
    ev.u.progress.unit = (char *)unit;
    return md_status_send(w, &ev);
}

int md_status_metric(struct md_status_writer *w, const char *name, double value)
{
    struct md_status_event ev = {.kind = MD_ST_METRIC};
    ev.u.metric.name = (char *)name;
    ev.u.metric.value = value;
    return md_status_send(w, &ev);
}

int md_status_alert(struct md_status_writer *w, enum md_status_severity severity, const char *key,
                    const char *message)
{
    struct md_status_event ev = {.kind = MD_ST_ALERT};
    ev.u.alert.severity = severity;
    ev.u.alert.key = (char *)key;
    ev.u.alert.message = (char *)message;
    return md_status_send(w, &ev);
}

int md_status_resolve(struct md_status_writer *w, const char *key)
{
    struct md_status_event ev = {.kind = MD_ST_RESOLVE};
    ev.u.resolve.key = (char *)key;
    return md_status_send(w, &ev);
}

int md_status_message(struct md_status_writer *w, const char *type, const char *payload_json)
{
    struct md_status_event ev = {.kind = MD_ST_MESSAGE};
    ev.u.message.type = (char *)type;
    ev.u.message.payload = (char *)payload_json;
    return md_status_send(w, &ev);
}

int md_status_message_to(struct md_status_writer *w, const char *type, const char *payload_json,
                         int priority, const char *to_node, const char *to_job)
{
    struct md_status_event ev = {.kind = MD_ST_MESSAGE};
    ev.u.message.type = (char *)type;
    ev.u.message.payload = (char *)payload_json;
    ev.u.message.has_priority = priority >= 0;
    ev.u.message.priority = priority >= 0 ? priority : 0;
    ev.u.message.to_node = (char *)to_node;
    ev.u.message.to_job = (char *)to_job;
    return md_status_send(w, &ev);
}

int md_status_result(struct md_status_writer *w, int ok, const char *summary_json)
{
    struct md_status_event ev = {.kind = MD_ST_RESULT};
    ev.u.result.ok = ok != 0;
    ev.u.result.summary = (char *)summary_json;
    return md_status_send(w, &ev);
}
