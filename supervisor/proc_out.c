/* proc_out.c - what a child writes (proc_internal.h): stdout and stderr lines into meshd's log
 * and the run's output tail, status lines (fd 3) parsed and reported to the proc's owner, and
 * the log limit of each of the three streams.  proc.c reads the pipes and hands each line here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_status.h"
#include "proc.h"
#include "proc_internal.h"

/* ---- log limits ------------------------------------------------------------------------- */

/* Each of a run's three streams has its own limit (md_log_limit: at most log_limit.burst lines
 * per log_limit.interval), so that a flood of stdout neither hides the run's stderr nor its
 * status lines, and no worker can make meshd write more than 3 bursts per window, whatever it
 * writes.  Only what would be logged counts: lines below the log level use no part of a burst.
 * The output tail (sup_tail_push) and the status events themselves are never limited. */
enum { STREAM_OUT, STREAM_ERR, STREAM_STATUS };
static const char *const stream_names[] = {"stdout", "stderr", "status"};

static void log_suppressed(struct sup_proc *p, int s, uint64_t n)
{
    md_log(MD_LOG_WARN, "suppressed: job=%s run=%s stream=%s lines=%" PRIu64, p->name, p->run_id,
           stream_names[s], n);
}

static void logw_cb(uv_timer_t *t);

/* Arms logw for the earliest window that holds suppressed lines, or stops it. */
static void logw_arm(struct sup_proc *p)
{
    uint64_t due = UINT64_MAX, now = uv_now(p->logw.loop);

    for (int s = 0; s < 3; s++) {
        uint64_t d = md_log_limit_due(&p->limit[s]);
        if (d < due)
            due = d;
    }
    if (due == UINT64_MAX)
        uv_timer_stop(&p->logw);
    else
        uv_timer_start(&p->logw, logw_cb, due > now ? due - now : 0, 0);
}

static void logw_cb(uv_timer_t *t)
{
    struct sup_proc *p = MD_CONTAINER_OF(t, struct sup_proc, logw);
    uint64_t now = uv_now(t->loop), n;

    for (int s = 0; s < 3; s++)
        if ((n = md_log_limit_close(&p->limit[s], now, false)) > 0)
            log_suppressed(p, s, n);
    logw_arm(p);
}

/* The run is over: what its windows still hold back is reported now. */
void sup_proc_log_limits_end(struct sup_proc *p)
{
    uint64_t n;

    for (int s = 0; s < 3; s++)
        if ((n = md_log_limit_close(&p->limit[s], 0, true)) > 0)
            log_suppressed(p, s, n);
}

/* True when a line of stream s at level is to be logged now; counts it either way. */
static bool log_gate(struct sup_proc *p, int s, enum md_log_level level)
{
    struct md_log_limit *l = &p->limit[s];
    uint64_t ended;
    bool ok;

    if (!md_log_enabled(level))
        return false;
    ok = md_log_limit_take(l, uv_now(p->logw.loop), &ended);
    if (ended > 0) /* the window ended before logw_cb could report it */
        log_suppressed(p, s, ended);
    if (!ok && l->suppressed == 1) {
        md_log(MD_LOG_WARN,
               "log limit reached: job=%s run=%s stream=%s burst=%" PRIu32 " interval_ms=%" PRIu64
               ": further lines are counted, not logged, until the window"
               " ends",
               p->name, p->run_id, stream_names[s], l->burst, l->interval_ms);
        logw_arm(p);
    }
    return ok;
}

/* ---- output capture --------------------------------------------------------------------- */

/* Worker strings for one log field: escaped (md_log_escape) into buf, which is returned. */
static const char *esc(char *buf, size_t size, const char *s)
{
    md_log_escape(buf, size, s, strlen(s));
    return buf;
}

static void log_output(struct sup_proc *p, int s, const char *line, size_t len, int flags)
{
    char text[4096]; /* md_log's whole line is at most 4 KiB */

    /* Escaped like the log (the tail goes to the API, meshctl and the registry, all of which
     * want valid UTF-8 without control bytes), and cut at the raw line cap. */
    sup_tail_push(&p->tail, line, len, SUP_OUTPUT_LINE_MAX);
    if (!log_gate(p, s, MD_LOG_NOTICE))
        return;
    md_log_escape(text, sizeof text, line, len);
    md_log(MD_LOG_NOTICE, "output: job=%s run=%s stream=%s%s | %s", p->name, p->run_id,
           stream_names[s], (flags & MD_LINE_TRUNCATED) ? " truncated=yes" : "", text);
}

void sup_proc_out_line(void *ud, const char *line, size_t len, int flags)
{
    log_output(ud, STREAM_OUT, line, len, flags);
}

void sup_proc_err_line(void *ud, const char *line, size_t len, int flags)
{
    log_output(ud, STREAM_ERR, line, len, flags);
}

/* What the registry keeps of a result's summary (agent_runs.summary, a jsonb object): the object
 * as the worker wrote it when it fits SUP_SUMMARY_MAX, which leaves the run_end event room for
 * the output tail under MD_JOURNAL_EVENT_MAX; a larger one becomes {"truncated":true,"bytes":N}.
 * Anything that is not an object is not kept.  Either case is logged once per result. */
static char *result_summary(const struct sup_proc *p, const char *name, const char *json)
{
    char note[64];
    size_t n;

    if (json == NULL)
        return NULL;
    if (json[0] != '{') {
        md_log(MD_LOG_WARN, "result: job=%s run=%s summary is not a JSON object: not stored", name,
               p->run_id);
        return NULL;
    }
    n = strlen(json);
    if (n <= SUP_SUMMARY_MAX)
        return md_xstrdup(json);
    md_log(MD_LOG_WARN,
           "result: job=%s run=%s summary of %zu bytes is over %d: stored as truncated", name,
           p->run_id, n, SUP_SUMMARY_MAX);
    snprintf(note, sizeof note, "{\"truncated\":true,\"bytes\":%zu}", n);
    return md_xstrdup(note);
}

/* The parser guarantees names without control characters and valid UTF-8, but the log does not
 * depend on that: every string from the worker goes through esc(). */
void sup_proc_status_line(void *ud, const char *line, size_t len, int flags)
{
    struct sup_proc *p = ud;
    struct md_status_event ev;
    struct md_error err = {0};
    const char *name = p->name;
    char a[4 * MD_STATUS_NAME_MAX + 1], text[4096];
    int r;

    if (flags & MD_LINE_TRUNCATED)
        r = md_error_set(&err, MD_ETOOBIG, 0, 0, "status line over %d bytes", MD_STATUS_LINE_MAX);
    else
        r = md_status_parse(line, len, &ev, &err);
    if (r < 0) {
        p->bad_status++;
        if (p->cbs->bad_status != NULL)
            p->cbs->bad_status(p, p->ud);
        /* The message may quote the line (an unknown event name, a bad enum value). */
        if (log_gate(p, STREAM_STATUS, MD_LOG_WARN))
            md_log(MD_LOG_WARN, "bad status line: job=%s run=%s pid=%d count=%u: %s", name,
                   p->run_id, p->pid, p->bad_status, esc(text, sizeof text, err.msg));
        return;
    }
    switch (ev.kind) {
    case MD_ST_READY:
        if (log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            md_log(MD_LOG_INFO, "ready: job=%s run=%s pid=%d", name, p->run_id, p->pid);
        break;
    case MD_ST_HEARTBEAT:
        if (log_gate(p, STREAM_STATUS, MD_LOG_DEBUG))
            md_log(MD_LOG_DEBUG, "heartbeat: job=%s run=%s", name, p->run_id);
        break;
    case MD_ST_PROGRESS:
        p->has_progress = true;
        p->has_total = ev.u.progress.has_total != 0;
        p->progress_done = ev.u.progress.done;
        p->progress_total = ev.u.progress.total;
        md_free(p->progress_unit);
        p->progress_unit = ev.u.progress.unit ? md_xstrdup(ev.u.progress.unit) : NULL;
        if (!log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            break;
        esc(a, sizeof a, ev.u.progress.unit ? ev.u.progress.unit : "-");
        if (ev.u.progress.has_total)
            md_log(MD_LOG_INFO, "progress: job=%s run=%s done=%.0f total=%.0f unit=%s", name,
                   p->run_id, ev.u.progress.done, ev.u.progress.total, a);
        else
            md_log(MD_LOG_INFO, "progress: job=%s run=%s done=%.0f unit=%s", name, p->run_id,
                   ev.u.progress.done, a);
        break;
    case MD_ST_METRIC:
        if (log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            md_log(MD_LOG_INFO, "metric: job=%s run=%s name=%s value=%g", name, p->run_id,
                   esc(a, sizeof a, ev.u.metric.name), ev.u.metric.value);
        break;
    case MD_ST_ALERT: {
        enum md_log_level lv = ev.u.alert.severity == MD_SEV_CRITICAL ? MD_LOG_ERROR : MD_LOG_WARN;
        if (log_gate(p, STREAM_STATUS, lv))
            md_log(lv, "alert: job=%s run=%s severity=%s key=%s message=%s", name, p->run_id,
                   md_status_severity_name(ev.u.alert.severity), esc(a, sizeof a, ev.u.alert.key),
                   esc(text, sizeof text, ev.u.alert.message));
        break;
    }
    case MD_ST_RESOLVE:
        if (log_gate(p, STREAM_STATUS, MD_LOG_NOTICE))
            md_log(MD_LOG_NOTICE, "resolved: job=%s run=%s key=%s", name, p->run_id,
                   esc(a, sizeof a, ev.u.resolve.key));
        break;
    case MD_ST_MESSAGE: {
        /* Names checked by the parser (md_name_ok): nothing in them needs escaping. */
        char prio[32] = "";
        if (ev.u.message.has_priority)
            snprintf(prio, sizeof prio, " priority=%d", ev.u.message.priority);
        if (log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            md_log(MD_LOG_INFO, "message: job=%s run=%s type=%s%s%s%s%s%s", name, p->run_id,
                   esc(a, sizeof a, ev.u.message.type), prio,
                   ev.u.message.to_node ? " to_node=" : "",
                   ev.u.message.to_node ? ev.u.message.to_node : "",
                   ev.u.message.to_job ? " to_job=" : "",
                   ev.u.message.to_job ? ev.u.message.to_job : "");
        break;
    }
    case MD_ST_RESULT:
        md_free(p->result);
        p->result = md_xstrdup(ev.u.result.ok ? "ok" : "failed");
        md_free(p->result_summary);
        p->result_summary = result_summary(p, name, ev.u.result.summary);
        if (log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            md_log(MD_LOG_INFO, "result: job=%s run=%s status=%s", name, p->run_id, p->result);
        break;
    }
    if (p->cbs->status != NULL)
        p->cbs->status(p, &ev, p->ud);
    md_status_event_cleanup(&ev);
}
