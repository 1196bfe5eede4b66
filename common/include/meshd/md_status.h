/* md_status.h - the worker status protocol, both sides.
 *
 * A worker writes one JSON object per line to the file descriptor named by MESHD_STATUS_FD
 * (never to stdout, so logs and protocol stay apart: s6's notification-fd).  Every object has an
 * "event" member; the events and their fields are listed in docs/status-protocol.md, which is
 * the contract for workers written in any language.  Unknown members are ignored so the protocol
 * can grow; an unknown event is an error.
 *
 * Supervisor side: split the pipe with md_linebuf (cap MD_STATUS_LINE_MAX), then hand each line
 * to md_status_parse, which validates it strictly and copies it into a typed md_status_event.
 * A line that fails is logged and counted by the caller; it is never fatal.
 *
 * Worker side: md_status_open, then md_status_ready() and friends.  When MESHD_STATUS_FD is not
 * set the writer is disabled and every call is a no-op returning 0, so a worker also runs by
 * hand.  The writer never emits a line that md_status_parse would reject.
 */
#ifndef MESHD_MD_STATUS_H
#define MESHD_MD_STATUS_H

#include "md_err.h"

#include <stddef.h>

/* The longest status line in bytes, without its '\n'.  Longer lines are a protocol error. */
#define MD_STATUS_LINE_MAX 65536
/* Longest metric name, alert/resolve key, message type and progress unit, in bytes. */
#define MD_STATUS_NAME_MAX 200
/* Longest alert message, in bytes. */
#define MD_STATUS_TEXT_MAX 4096
/* The largest result summary meshd stores (agent_runs.summary), as compact JSON bytes: a larger
 * one is stored as {"truncated":true,"bytes":N}.  It leaves the run's output tail its room. */
#define MD_STATUS_SUMMARY_MAX (16 * 1024)
/* A bus message's priority (agent_messages.priority): a whole number, lower runs first; a
 * message that gives none gets the default. */
#define MD_STATUS_PRIORITY_MIN 0
#define MD_STATUS_PRIORITY_MAX 1000000
#define MD_STATUS_PRIORITY_DEFAULT 100

enum md_status_kind {
    MD_ST_READY,     /* the worker is up: STARTING -> RUNNING */
    MD_ST_HEARTBEAT, /* still alive, nothing else to say */
    MD_ST_PROGRESS,  /* done of total units processed */
    MD_ST_METRIC,    /* one named number */
    MD_ST_ALERT,     /* raise (or refresh) the alert named by key */
    MD_ST_RESOLVE,   /* clear the alert named by key */
    MD_ST_MESSAGE,   /* a typed, free-form JSON payload for other systems */
    MD_ST_RESULT,    /* the outcome of this run, with a JSON summary */
};

enum md_status_severity {
    MD_SEV_CRITICAL,
    MD_SEV_WARNING,
    MD_SEV_INFO,
};

/* One parsed line.  Owns every string it points to; release with md_status_event_cleanup.
 * Only the member of u named by kind is meaningful.  Strings are NUL-terminated, valid UTF-8
 * and contain no NUL byte. */
struct md_status_event {
    enum md_status_kind kind;
    union {
        struct {
            double done;  /* finite, >= 0 */
            double total; /* finite, >= 0 when has_total; 0 otherwise */
            int has_total;
            char *unit; /* NULL when absent */
        } progress;
        struct {
            char *name;   /* 1..MD_STATUS_NAME_MAX bytes, no control characters */
            double value; /* finite */
        } metric;
        struct {
            enum md_status_severity severity;
            char *key;     /* 1..MD_STATUS_NAME_MAX bytes, no control characters */
            char *message; /* 0..MD_STATUS_TEXT_MAX bytes; may hold newlines */
        } alert;
        struct {
            char *key;
        } resolve;
        struct {
            char *type;       /* 1..MD_STATUS_NAME_MAX bytes, no control characters */
            char *payload;    /* any JSON value as compact JSON text; NULL when absent */
            int has_priority; /* 0: absent, the bus gives it MD_STATUS_PRIORITY_DEFAULT */
            int priority;     /* MD_STATUS_PRIORITY_MIN..MAX when has_priority, else 0 */
            char *to_node;    /* a node name (md_name_ok's rule), or NULL: any node */
            char *to_job;     /* a job name (same rule), or NULL: any on: job of the type */
        } message;
        struct {
            int ok;        /* 1 for "ok", 0 for "failed" */
            char *summary; /* any JSON value as compact JSON text; NULL when absent */
        } result;
    } u;
};

/* Parses one status line (len bytes at line, borrowed, need not be NUL-terminated, without its
 * '\n') into ev, which the caller owns and need not initialize.  The cJSON tree lives only
 * inside this call.
 *
 * Returns 0 and fills ev (release it with md_status_event_cleanup), or a negative code and
 * leaves ev empty (cleanup is then optional and harmless):
 *   MD_ETOOBIG  len > MD_STATUS_LINE_MAX;
 *   MD_EPROTO   anything else wrong: not UTF-8, not JSON, not an object, unknown event, a
 *               missing or mistyped field, a bad enum value, a string over its cap, a number
 *               that is not finite.
 * On failure err (may be NULL) gets a message naming the problem, such as
 * "status line: 'metric' needs a numeric 'value'", and err->col the 1-based byte column when
 * the problem has a position (0 otherwise); err->line is 0.  Safe from any callback; touches
 * no global state except cJSON's last-error pointer. */
int md_status_parse(const char *line, size_t len, struct md_status_event *ev,
                    struct md_error *err) MD_MUSTCHECK;

/* Frees the strings ev owns and leaves it empty (kind MD_ST_READY).  Idempotent. */
void md_status_event_cleanup(struct md_status_event *ev);

/* "ready", "heartbeat", ... : the wire name of an event kind.  Static; never NULL. */
const char *md_status_kind_name(enum md_status_kind kind);
/* "critical", "warning", "info".  Static; never NULL. */
const char *md_status_severity_name(enum md_status_severity sev);

/* Renders ev (borrowed) as one compact status line without the '\n'.  On success *out is a
 * NUL-terminated string the caller frees with md_free and *outlen its length.  Returns 0,
 * -EINVAL if ev holds something md_status_parse would reject (a non-finite number, an
 * over-long or empty name, invalid UTF-8, a payload/summary that is not JSON text), or
 * MD_ETOOBIG if the line would exceed MD_STATUS_LINE_MAX.  *out is NULL on failure. */
int md_status_format(const struct md_status_event *ev, char **out, size_t *outlen) MD_MUSTCHECK;

/* ---- worker side --------------------------------------------------------------------------
 *
 * A writer is not thread-safe: serialize calls.  Each call renders one line and writes it with
 * one write() loop (EINTR and short writes retried, EAGAIN waited out with poll), so lines up to
 * PIPE_BUF bytes are atomic on a pipe.  The calls block while the pipe is full.
 *
 * SIGPIPE: a write to a status pipe whose reader is gone must not kill the worker, so
 * md_status_open sets SIGPIPE to SIG_IGN if (and only if) it is SIG_DFL; a handler or an ignore
 * the program installed itself is left alone.  Writes then fail with -EPIPE, which a worker may
 * ignore: the supervisor is gone or has closed the pipe.  The same applies to the worker's
 * stdout and stderr, whose writes then fail with EPIPE instead of killing the process.
 * Worker side only: the supervisor never calls md_status_open (it owns no status fd; its
 * children's signal dispositions are reset by its launcher before exec).
 */

struct md_status_writer {
    int fd; /* -1: disabled, every call is a no-op returning 0 */
};

/* Reads MESHD_STATUS_FD and prepares w (caller-owned).  Returns 0 when the fd is usable;
 * otherwise w is disabled and the result says why: -ENOENT (variable not set or empty: the
 * worker was started by hand), -EINVAL (not a decimal fd number), -EBADF (not an open fd, or
 * opened read-only).  The fd is marked close-on-exec so that programs the worker runs do not
 * speak for it, nor hold the pipe open after the worker is gone. */
int md_status_open(struct md_status_writer *w);

/* Closes the fd (the supervisor sees EOF) and disables w.  Harmless on a disabled writer. */
void md_status_close(struct md_status_writer *w);

/* Each sends one event.  String arguments are borrowed.  Returns 0 (also when w is disabled),
 * -EINVAL for arguments md_status_parse would reject, MD_ETOOBIG for a line over the cap,
 * -EPIPE when the reader is gone, or another -errno from write/poll. */
int md_status_ready(struct md_status_writer *w);
int md_status_heartbeat(struct md_status_writer *w);
/* total < 0 means unknown and is omitted; unit may be NULL. */
int md_status_progress(struct md_status_writer *w, double done, double total, const char *unit);
int md_status_metric(struct md_status_writer *w, const char *name, double value);
int md_status_alert(struct md_status_writer *w, enum md_status_severity severity, const char *key,
                    const char *message);
int md_status_resolve(struct md_status_writer *w, const char *key);
/* payload_json is JSON text (any value) or NULL to omit the payload.  The message has the
 * default priority and no target (any `on: type` job on any node takes it). */
int md_status_message(struct md_status_writer *w, const char *type, const char *payload_json);
/* The same with a priority (MD_STATUS_PRIORITY_MIN..MAX, lower runs first; a negative value
 * omits it: the default) and an optional target: only the node named to_node, and only its job
 * named to_job, take the message (NULL: any).  A target that never runs an `on: type` job
 * leaves the message pending (docs/cluster.md).  -EINVAL for a priority over the maximum or a
 * target that is not a node/job name. */
int md_status_message_to(struct md_status_writer *w, const char *type, const char *payload_json,
                         int priority, const char *to_node, const char *to_job);
/* summary_json is JSON text (any value) or NULL to omit the summary. */
int md_status_result(struct md_status_writer *w, int ok, const char *summary_json);

/* Sends an already formatted event.  Same returns as above. */
int md_status_send(struct md_status_writer *w, const struct md_status_event *ev);

#endif
