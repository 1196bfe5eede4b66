/* spawn.c - the glue between prog.c's pure state machine and real processes.
 *
 * sup_job_event() feeds one event to a job's prog and carries out the actions it returns:
 * uv_spawn, kill(2), the prog's single timer.  libuv callbacks (exit, pipe reads, timers) are
 * turned back into events here.  Every child:
 *   - is started by launch.c (vfork + exec: when it returns, the child leads its own group
 *     and has exec'd) and watched through a pidfd;
 *   - runs in its own session and process group (setsid), so a stop or a
 *     run timeout can signal the whole group and nothing a worker forked survives it;
 *   - gets its job config as JSON on fd 0, which is closed once written;
 *   - has fd 1 and fd 2 read line by line into meshd's log (prefixed with job and run id), the
 *     last SUP_TAIL_LINES kept for the run record;
 *   - has fd 3, the status pipe (MESHD_STATUS_FD), read with a 64 KiB line cap and parsed with
 *     md_status_parse; a bad line is logged and counted, never fatal.
 * Whatever a worker wrote reaches the log only through md_log_escape, and each of its three
 * streams is rate-limited (the job's log_limit, see log_gate); the output tail is kept whole.
 * A proc is heap-allocated and owns eight handles; it frees itself when the last one has closed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"
#include "runlog.h"
#include "registry.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_rand.h"
#include "meshd/md_time.h"
#include "meshd/md_status.h"
#include "sup.h"

extern char **environ;

/* After a child exits, its pipes may still hold output (or a grandchild may keep them open).
 * Read on for this long, then close them. */
#define DRAIN_MS 200
#define PROC_HANDLES 8

void sup_run_id(struct sup *sup, const char *job, int64_t slot, char *buf, size_t len)
{
    struct tm tm;
    time_t t;

    if (slot != 0) {
        /* Stable for the slot: the same job and scheduled instant give the same id on every
         * node and every retry, so workers can make their writes idempotent. */
        t = (time_t)slot;
        gmtime_r(&t, &tm);
        snprintf(buf, len, "%s@%04d%02d%02dT%02d%02d%02dZ", job, tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        return;
    }
    int64_t now = md_time_wall_ms();
    t = (time_t)(now / 1000);
    gmtime_r(&t, &tm);
    snprintf(buf, len, "%s@%04d%02d%02dT%02d%02d%02d.%03dZ-%" PRIu64, job, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(now % 1000),
             ++sup->run_seq);
}

static struct sup_proc *job_primary(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->primary && !p->exited)
            return p;
    return NULL;
}

/* ---- teardown --------------------------------------------------------------------------- */

static void proc_free(struct sup_proc *p)
{
    struct sup_job *job = p->job;

    if (p->cg != NULL) {
        /* Killed at the exit; read what it used before the run is recorded, then let the
         * directory go (removed now, or once its last process is gone). */
        sup_cg_run_usage(p->cg, &p->usage);
        sup_cg_run_release(p->cg);
        p->cg = NULL;
        if (p->usage.cpu) {
            char mem[24] = "-";
            if (p->usage.memory)
                snprintf(mem, sizeof mem, "%" PRIu64, p->usage.memory_peak / 1024);
            md_log(MD_LOG_INFO,
                   "usage: job=%s run=%s cpu_user_ms=%" PRIu64 " cpu_system_ms=%" PRIu64
                   " memory_peak_kib=%s",
                   job ? job->name : "?", p->run_id, p->usage.user_usec / 1000,
                   p->usage.system_usec / 1000, mem);
        }
    }
    if (job != NULL && p->end_recorded) {
        sup_reg_run_end(job, p, p->run_id, p->end_status, p->end_code, p->end_signal, NULL);
        /* Keep the run, with its output tail, in the job's history. */
        sup_job_note_run(job, p, p->run_id, p->end_status, p->end_code, p->end_signal);
    }
    if (job != NULL) {
        for (struct sup_proc **pp = &job->procs; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        }
    }
    /* Recorded (or never launched): a later life has nothing to reconcile for it. */
    sup_runlog_end(p->sup->runlog, p->exec_id);
    if (p->pidfd >= 0)
        close(p->pidfd);
    sup_tail_clear(&p->tail);
    md_linebuf_cleanup(&p->lb_out);
    md_linebuf_cleanup(&p->lb_err);
    md_linebuf_cleanup(&p->lb_status);
    md_free(p->stdin_data);
    md_free(p->result);
    md_free(p->progress_unit);
    md_free(p);
    if (job != NULL)
        sup_job_proc_gone(job);
}

static void proc_close_cb(uv_handle_t *h)
{
    struct sup_proc *p = h->data;

    if (--p->pending_closes == 0)
        proc_free(p);
}

static void close_once(struct sup_proc *p, uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, proc_close_cb);
}

/* Flushes a pending unterminated line of a stream at EOF. */
static void out_line_cb(void *ud, const char *line, size_t len, int flags);
static void err_line_cb(void *ud, const char *line, size_t len, int flags);
static void status_line_cb(void *ud, const char *line, size_t len, int flags);

static void log_limits_end(struct sup_proc *p);

static void proc_close_all(struct sup_proc *p)
{
    md_linebuf_flush(&p->lb_out, out_line_cb, p);
    md_linebuf_flush(&p->lb_err, err_line_cb, p);
    md_linebuf_flush(&p->lb_status, status_line_cb, p);
    log_limits_end(p);
    close_once(p, (uv_handle_t *)&p->logw);
    close_once(p, (uv_handle_t *)&p->resume);
    if (p->launched)
        close_once(p, (uv_handle_t *)&p->exitw);
    close_once(p, (uv_handle_t *)&p->in);
    close_once(p, (uv_handle_t *)&p->out);
    close_once(p, (uv_handle_t *)&p->err);
    close_once(p, (uv_handle_t *)&p->status);
    close_once(p, (uv_handle_t *)&p->timeout);
}

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
    md_log(MD_LOG_WARN, "suppressed: job=%s run=%s stream=%s lines=%" PRIu64,
           p->job ? p->job->name : "?", p->run_id, stream_names[s], n);
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
static void log_limits_end(struct sup_proc *p)
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
    if (p->job != NULL && p->job->cfg != NULL) {
        /* A reload applies to running processes at once (md_job_same_process ignores it). */
        l->burst = (uint32_t)p->job->cfg->log_burst;
        l->interval_ms = p->job->cfg->log_interval_ms;
    }
    ok = md_log_limit_take(l, uv_now(p->logw.loop), &ended);
    if (ended > 0) /* the window ended before logw_cb could report it */
        log_suppressed(p, s, ended);
    if (!ok && l->suppressed == 1) {
        md_log(MD_LOG_WARN, "log limit reached: job=%s run=%s stream=%s burst=%" PRIu32
               " interval_ms=%" PRIu64 ": further lines are counted, not logged, until the window"
               " ends", p->job ? p->job->name : "?", p->run_id, stream_names[s], l->burst,
               l->interval_ms);
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
    md_log(MD_LOG_NOTICE, "output: job=%s run=%s stream=%s%s | %s", p->job ? p->job->name : "?",
           p->run_id, stream_names[s], (flags & MD_LINE_TRUNCATED) ? " truncated=yes" : "", text);
}

static void out_line_cb(void *ud, const char *line, size_t len, int flags)
{
    log_output(ud, STREAM_OUT, line, len, flags);
}

static void err_line_cb(void *ud, const char *line, size_t len, int flags)
{
    log_output(ud, STREAM_ERR, line, len, flags);
}

/* The parser guarantees names without control characters and valid UTF-8, but the log does not
 * depend on that: every string from the worker goes through esc(). */
static void status_line_cb(void *ud, const char *line, size_t len, int flags)
{
    struct sup_proc *p = ud;
    struct sup_job *job = p->job;
    struct md_status_event ev;
    struct md_error err = {0};
    const char *name = job ? job->name : "?";
    char a[4 * MD_STATUS_NAME_MAX + 1], text[4096];
    int r;

    if (flags & MD_LINE_TRUNCATED)
        r = md_error_set(&err, MD_ETOOBIG, 0, 0, "status line over %d bytes", MD_STATUS_LINE_MAX);
    else
        r = md_status_parse(line, len, &ev, &err);
    if (r < 0) {
        p->bad_status++;
        if (job != NULL)
            job->bad_status_lines++;
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
        if (job != NULL && p->primary && !p->exited)
            sup_job_event(job, EV_READY, 0, 0);
        break;
    case MD_ST_HEARTBEAT:
        if (job != NULL)
            job->last_heartbeat_ms = (uint64_t)md_time_wall_ms();
        if (log_gate(p, STREAM_STATUS, MD_LOG_DEBUG))
            md_log(MD_LOG_DEBUG, "heartbeat: job=%s run=%s", name, p->run_id);
        break;
    case MD_ST_PROGRESS:
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
    case MD_ST_MESSAGE:
        if (log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            md_log(MD_LOG_INFO, "message: job=%s run=%s type=%s", name, p->run_id,
                   esc(a, sizeof a, ev.u.message.type));
        break;
    case MD_ST_RESULT:
        md_free(p->result);
        p->result = md_xstrdup(ev.u.result.ok ? "ok" : "failed");
        if (log_gate(p, STREAM_STATUS, MD_LOG_INFO))
            md_log(MD_LOG_INFO, "result: job=%s run=%s status=%s", name, p->run_id, p->result);
        break;
    }
    if (job != NULL) {
        sup_job_note_status(job, p, &ev);
        sup_reg_status(job, p, &ev);
    }
    md_status_event_cleanup(&ev);
}

/* One static read buffer: the loop is single-threaded and each read is consumed (split into
 * lines, copied where kept) before the next alloc_cb.  As large as a pipe's default capacity. */
#define READ_BUF 65536

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[READ_BUF];

    (void)h;
    (void)suggested;
    buf->base = slab;
    buf->len = sizeof slab;
}

/* A child that writes as fast as we read must not hold the loop.  libuv reads a readable pipe
 * up to 32 times in a row for as long as each read fills the buffer: 2 MiB, which as bad status
 * lines is ~18 ms of parsing, while a due cron slot and every other child wait.  So a read that
 * filled the buffer (the pipe was full: the writer is ahead of us) pauses that pipe, and
 * p->resume, a check handle, starts it again right after this round of I/O.  Each round then
 * reads at most one buffer per pipe, and the timers and the other pipes get their turn in
 * between; throughput stays that of 64 KiB reads. */
static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void resume_cb(uv_check_t *c)
{
    struct sup_proc *p = MD_CONTAINER_OF(c, struct sup_proc, resume);
    uv_pipe_t *pipes[3] = {&p->out, &p->err, &p->status};

    for (int i = 0; i < 3; i++) {
        if (p->paused & (1u << i)) {
            if (!uv_is_closing((uv_handle_t *)pipes[i]))
                uv_read_start((uv_stream_t *)pipes[i], alloc_cb, read_cb);
        }
    }
    p->paused = 0;
    uv_check_stop(c);
}

static void read_pause(struct sup_proc *p, uv_stream_t *s)
{
    unsigned bit = s == (uv_stream_t *)&p->out ? 1u : s == (uv_stream_t *)&p->err ? 2u : 4u;

    uv_read_stop(s);
    p->paused |= bit;
    uv_check_start(&p->resume, resume_cb);
}

static void maybe_finish(struct sup_proc *p)
{
    /* After exit, close once every reading pipe has hit EOF (or the drain timer fires). */
    if (p->exited && uv_is_closing((uv_handle_t *)&p->out) &&
        uv_is_closing((uv_handle_t *)&p->err) && uv_is_closing((uv_handle_t *)&p->status))
        proc_close_all(p);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct sup_proc *p = s->data;
    struct md_linebuf *lb;
    md_linebuf_cb *cb;

    if (s == (uv_stream_t *)&p->out) {
        lb = &p->lb_out;
        cb = out_line_cb;
    } else if (s == (uv_stream_t *)&p->err) {
        lb = &p->lb_err;
        cb = err_line_cb;
    } else {
        lb = &p->lb_status;
        cb = status_line_cb;
    }
    if (n > 0) {
        md_linebuf_feed(lb, buf->base, (size_t)n, cb, p);
        if ((size_t)n == buf->len && !uv_is_closing((uv_handle_t *)s))
            read_pause(p, s);
        return;
    }
    if (n == 0)
        return; /* EAGAIN */
    /* EOF or error: deliver what is pending, stop reading, close this pipe. */
    md_linebuf_flush(lb, cb, p);
    close_once(p, (uv_handle_t *)s);
    maybe_finish(p);
}

/* ---- stdin ------------------------------------------------------------------------------ */

static void stdin_written_cb(uv_write_t *req, int status)
{
    struct sup_proc *p = req->data;

    /* EPIPE: the child never read its config (or already exited).  Not an error of ours. */
    if (status < 0 && status != UV_EPIPE && status != UV_ECANCELED)
        md_log_err(MD_LOG_INFO, status, "stdin: job=%s run=%s", p->job ? p->job->name : "?",
                   p->run_id);
    /* Closing fd 0's other end gives the child EOF after its config. */
    close_once(p, (uv_handle_t *)&p->in);
}

/* ---- exit and timeouts ------------------------------------------------------------------ */

static void drain_timer_cb(uv_timer_t *t)
{
    struct sup_proc *p = MD_CONTAINER_OF(t, struct sup_proc, timeout);

    proc_close_all(p);
}

static void proc_exited(struct sup_proc *p, int exit_status, int term_signal)
{
    struct sup_job *job = p->job;
    const char *name = job ? job->name : "?";
    uint64_t dur = uv_now(p->exitw.loop) - p->started_ms;
    bool ours = p->killing || p->timed_out || (job && p->primary &&
                                               job->prog.state == PROG_STOPPING);

    p->exited = true;
    p->duration_ms = dur;
    if (p->adopted)
        md_log(MD_LOG_NOTICE, "exited: job=%s run=%s pid=%d status=unknown duration_ms=%" PRIu64
               " adopted=yes", name, p->run_id, p->pid, dur);
    else if (term_signal != 0)
        md_log(MD_LOG_NOTICE, "exited: job=%s run=%s pid=%d signal=%s duration_ms=%" PRIu64
               " expected=%s", name, p->run_id, p->pid, strsignal(term_signal), dur,
               ours ? "yes" : "no");
    else
        md_log(MD_LOG_NOTICE, "exited: job=%s run=%s pid=%d code=%d duration_ms=%" PRIu64
               " expected=%s", name, p->run_id, p->pid, (int)exit_status, dur,
               (exit_status == 0 || ours) ? "yes" : "no");

    if (p->cg != NULL) {
        /* The run is over, however it ended: nothing it started may outlive it, neither what
         * left its process group (setsid) nor what an exit 0 left behind. */
        int k = sup_cg_run_kill(p->cg);
        if (k > 0)
            md_log(MD_LOG_NOTICE, "killed leftovers: job=%s run=%s cgroup=%s", name, p->run_id,
                   sup_cg_run_name_of(p->cg));
        else if (k < 0)
            md_log_err(MD_LOG_WARN, k, "cgroup.kill: job=%s run=%s cgroup=%s", name, p->run_id,
                       sup_cg_run_name_of(p->cg));
    } else if (ours && p->stop_group) {
        /* Whatever the worker forked into its group must not outlive a run we stopped.  The
         * group id cannot have been reused while members remain; with none left this is
         * ESRCH. */
        kill(-p->pid, SIGKILL);
    }

    uv_timer_stop(&p->timeout);
    if (job != NULL && p->primary) {
        job->ending = p;
        sup_job_event(job, EV_EXITED, (int)exit_status, term_signal);
        job->ending = NULL;
    } else if (job != NULL) {
        enum sup_run_status st = p->timed_out ? RUN_TIMED_OUT
                                 : p->killing ? RUN_STOPPED
                                 : p->adopted ? RUN_UNKNOWN
                                 : (exit_status == 0 && term_signal == 0) ? RUN_SUCCEEDED
                                                                          : RUN_FAILED;
        p->end_recorded = true;
        p->end_status = st;
        p->end_code = exit_status; /* -1 with no signal: not known */
        p->end_signal = term_signal;
        if (st == RUN_SUCCEEDED)
            job->runs_ok++;
        else if (st != RUN_UNKNOWN)
            job->runs_failed++;
        md_log(MD_LOG_NOTICE, "run done: job=%s run=%s status=%s", name, p->run_id,
               sup_run_status_name(st));
    }
    close_once(p, (uv_handle_t *)&p->exitw);
    close_once(p, (uv_handle_t *)&p->in);
    /* Give the pipes a moment to deliver the last lines, then close everything. */
    uv_timer_start(&p->timeout, drain_timer_cb, DRAIN_MS, 0);
    maybe_finish(p);
}

static void exitw_cb(uv_poll_t *h, int status, int events)
{
    struct sup_proc *p = MD_CONTAINER_OF(h, struct sup_proc, exitw);
    siginfo_t si;

    (void)events;
    if (p->exited)
        return;
    if (p->adopted) {
        /* Not our child: the pidfd says it ended, nothing says how. */
        proc_exited(p, -1, 0);
        return;
    }
    memset(&si, 0, sizeof si);
    if (waitid(P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return;
        /* ECHILD: someone else reaped it.  Treat it as gone, status unknown. */
        md_log_err(MD_LOG_ERROR, -errno, "waitid: job=%s pid=%d",
                   p->job ? p->job->name : "?", p->pid);
        si.si_pid = p->pid;
        si.si_code = CLD_KILLED;
        si.si_status = SIGKILL;
    }
    if (si.si_pid == 0)
        return; /* not exited yet */
    (void)status;
    if (si.si_code == CLD_EXITED)
        proc_exited(p, si.si_status, 0);
    else
        proc_exited(p, 0, si.si_status);
}

static void run_timeout_cb(uv_timer_t *t)
{
    struct sup_proc *p = MD_CONTAINER_OF(t, struct sup_proc, timeout);
    struct sup_job *job = p->job;

    if (p->exited)
        return;
    if (!p->timed_out && !p->killing) { /* killing: a stop's escalation, not a timeout */
        p->timed_out = true;
        md_log(MD_LOG_WARN, "timeout: job=%s run=%s pid=%d", job ? job->name : "?", p->run_id,
               p->pid);
        if (job != NULL && p->primary) {
            job->stop_status = RUN_TIMED_OUT;
            sup_job_event(job, EV_STOP, 0, 0);
            return;
        }
    }
    /* An extra (allow) run has no prog: escalate here, TERM then KILL every stop_timeout. */
    sup_proc_kill(p, p->killing ? SIGKILL : p->stop_signal);
    p->killing = true;
    uv_timer_start(&p->timeout, run_timeout_cb, p->stop_timeout_ms ? p->stop_timeout_ms : 100, 0);
}

void sup_proc_kill(struct sup_proc *p, int sig)
{
    const char *name = p->job ? p->job->name : "?";
    int r;

    if (sig == SIGKILL && p->cg != NULL) {
        /* The whole cgroup: the group and whatever left it. */
        r = sup_cg_run_kill(p->cg);
        if (r < 0)
            md_log_err(MD_LOG_WARN, r, "cgroup.kill: job=%s run=%s cgroup=%s",
                       p->job ? p->job->name : "?", p->run_id, sup_cg_run_name_of(p->cg));
        else
            md_log(MD_LOG_INFO, "signalled: job=%s run=%s pid=%d signal=%s cgroup=%s",
                   p->job ? p->job->name : "?", p->run_id, p->pid, strsignal(sig),
                   sup_cg_run_name_of(p->cg));
        return;
    }
    if (p->exited && !p->stop_group)
        return;
    r = sup_launch_kill(p->pid, p->stop_group, sig);
    if (r < 0 && r != -ESRCH)
        md_log_err(MD_LOG_WARN, r, "kill: job=%s run=%s pid=%d signal=%d", name, p->run_id,
                   p->pid, sig);
    else if (r < 0)
        md_log(MD_LOG_INFO, "signal not sent: job=%s run=%s pid=%d signal=%s: nothing left",
               name, p->run_id, p->pid, strsignal(sig));
    else
        md_log(MD_LOG_INFO, "signalled: job=%s run=%s pid=%d signal=%s group=%s", name,
               p->run_id, p->pid, strsignal(sig),
               r == 0 && p->stop_group ? "yes" : p->stop_group ? "no (none left)" : "no");
}

void sup_proc_stop(struct sup_proc *p)
{
    if (p->exited || p->killing)
        return;
    p->killing = true;
    sup_proc_kill(p, p->stop_signal);
    /* SIGKILL after stop_timeout if it is still there (run_timeout_cb escalates). */
    uv_timer_start(&p->timeout, run_timeout_cb, p->stop_timeout_ms ? p->stop_timeout_ms : 100, 0);
}

void sup_job_stop_adopted(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->adopted)
            sup_proc_stop(p);
}

void sup_job_kill_all(struct sup_job *job)
{
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next) {
        p->killing = true;
        sup_proc_kill(p, SIGKILL);
    }
}

/* ---- spawning --------------------------------------------------------------------------- */

static int env_name_eq(const char *entry, const char *name)
{
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Whether a variable of meshd's own environment ("NAME=value") passes to its children.  Not:
 * meshd's identity and API token (MESHD_*, but MESHD_WORKER_DIR), and the registry's
 * credential - DATABASE_URL and libpq's PG* variables (PGPASSWORD, PGHOST, PGSERVICE...).
 * A worker's data database is the job's business: a job that wants one of these names it in
 * its env: (or defaults.env), e.g. DATABASE_URL: "${DATABASE_URL}". */
static bool env_inherited(const char *e)
{
    if (strncmp(e, "MESHD_", 6) == 0)
        return strncmp(e, "MESHD_WORKER_DIR=", 17) == 0;
    if (strncmp(e, "DATABASE_URL=", 13) == 0)
        return false;
    if (e[0] == 'P' && e[1] == 'G') {
        const char *c = e + 2;
        while ((*c >= 'A' && *c <= 'Z') || *c == '_')
            c++;
        return !(c > e + 2 && *c == '=');
    }
    return true;
}

/* Builds the child's environment: meshd's own minus what env_inherited keeps back, then the
 * job's env, then the run's identity.  Caller frees every string and the array. */
static char **build_env(struct sup_job *job, struct sup_proc *p)
{
    const struct md_job *j = job->cfg;
    size_t n = 0, k = 0;
    char **env;
    char when[40];
    struct tm tm;
    time_t t = (time_t)(p->slot ? p->slot : md_time_wall_ms() / 1000);

    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    for (char **e = environ; *e != NULL; e++)
        n++;
    env = md_xcalloc(n + j->nenv + 9, sizeof *env);
    for (char **e = environ; *e != NULL; e++) {
        bool skip = !env_inherited(*e);
        for (size_t i = 0; !skip && i < j->nenv; i++)
            skip = env_name_eq(*e, j->env[i].name);
        if (!skip)
            env[k++] = md_xstrdup(*e);
    }
    for (size_t i = 0; i < j->nenv; i++)
        env[k++] = md_xasprintf("%s=%s", j->env[i].name, j->env[i].value);
    env[k++] = md_xasprintf("MESHD_JOB=%s", job->name);
    env[k++] = md_xasprintf("MESHD_NODE=%s", job->sup->cfg->node_name);
    env[k++] = md_xasprintf("MESHD_RUN_ID=%s", p->run_id);
    env[k++] = md_xasprintf("MESHD_SCHEDULED_AT=%s", when);
    env[k++] = md_xstrdup("MESHD_STATUS_FD=3");
    if (job->msg_id != 0 && p->primary) { /* an `on:` job's message (the bus) */
        env[k++] = md_xasprintf("MESHD_MESSAGE_ID=%" PRId64, job->msg_id);
        env[k++] = md_xasprintf("MESHD_MESSAGE_TYPE=%s", j->event ? j->event : "");
        if (job->msg_payload != NULL && strlen(job->msg_payload) <= SUP_MSG_ENV_MAX)
            env[k++] = md_xasprintf("MESHD_MESSAGE_PAYLOAD=%s", job->msg_payload);
    }
    env[k] = NULL;
    return env;
}

static void env_free(char **env)
{
    for (char **e = env; *e != NULL; e++)
        md_free(*e);
    md_free(env);
}

/* Initializes a new proc's line buffers and handles (all but exitw, which needs a pidfd) and
 * links it to its job. */
static void proc_handles_init(struct sup_proc *p)
{
    struct sup_job *job = p->job;
    uv_loop_t *loop = job->sup->loop;

    md_linebuf_init(&p->lb_out, SUP_OUTPUT_LINE_MAX);
    md_linebuf_init(&p->lb_err, SUP_OUTPUT_LINE_MAX);
    md_linebuf_init(&p->lb_status, MD_STATUS_LINE_MAX);
    uv_pipe_init(loop, &p->in, 0);
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_pipe_init(loop, &p->status, 0);
    uv_timer_init(loop, &p->timeout);
    uv_timer_init(loop, &p->logw);
    uv_check_init(loop, &p->resume);
    p->in.data = p->out.data = p->err.data = p->status.data = p->timeout.data = p->logw.data = p;
    p->resume.data = p;
    for (int s = 0; s < 3; s++)
        md_log_limit_init(&p->limit[s], (uint32_t)job->cfg->log_burst, job->cfg->log_interval_ms);
    p->pending_closes = PROC_HANDLES - 1; /* exitw joins once there is a child to watch */
    p->next = job->procs;
    job->procs = p;
}

/* Spawns one process for job.  primary: driven by the prog (else an extra "allow" run).
 * Returns 0 or a negative errno (already logged); on failure nothing is left behind but
 * handles that close themselves.  A failing exec is reported here too (launch.h). */
static int proc_spawn(struct sup_job *job, int64_t slot, bool primary)
{
    struct sup *sup = job->sup;
    const struct md_job *j = job->cfg;
    struct sup_proc *p = md_xcalloc(1, sizeof *p);
    struct sup_launch l;
    struct sup_launched out;
    char note_head[64], note_tail[160];
    int fds[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    char **env = NULL, *path = NULL;
    int r;

    p->sup = sup;
    p->job = job;
    p->primary = primary;
    p->slot = slot;
    p->pidfd = -1;
    p->stop_group = j->stop_group;
    p->stop_signal = j->stop_signal;
    p->stop_timeout_ms = j->stop_timeout_ms;
    p->started_ms = uv_now(sup->loop);
    p->started_wall_ms = md_time_wall_ms();
    if (job->fire_due_ms != 0) { /* an on-time slot (sched.c): how late is this spawn? */
        sup_note_lag(sup, p->started_wall_ms - job->fire_due_ms);
        job->fire_due_ms = 0;
    }
    if (primary && slot != 0) {
        snprintf(p->run_id, sizeof p->run_id, "%s", job->run_id);
    } else {
        sup_run_id(sup, job->name, slot, p->run_id, sizeof p->run_id);
        if (primary) /* a service: every spawn is a run of its own */
            snprintf(job->run_id, sizeof job->run_id, "%s", p->run_id);
    }
    snprintf(p->exec_id, sizeof p->exec_id, "%s-%" PRIu64, sup->life, ++sup->exec_seq);
    proc_handles_init(p);

    /* The intent goes to disk before the spawn: if meshd dies from here on, its next life
     * knows this slot was taken (runlog.h). */
    {
        struct sup_runlog_run rr = {.slot = slot, .started_ms = p->started_wall_ms};
        snprintf(rr.exec_id, sizeof rr.exec_id, "%s", p->exec_id);
        snprintf(rr.job, sizeof rr.job, "%s", job->name);
        snprintf(rr.run_id, sizeof rr.run_id, "%s", p->run_id);
        rr.kind = j->kind == MD_JOB_SERVICE ? 'v' : j->kind == MD_JOB_EVENT ? 'e'
                  : slot != 0 ? 's' : 'm';
        (void)sup_runlog_begin(sup->runlog, &rr);
    }

    env = build_env(job, p);
    memset(&l, 0, sizeof l);
    l.cgroup_dir = -1;
    r = sup_launch_resolve(j->argv[0], env, &path);
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r, "spawn failed: job=%s run=%s file=%s", job->name, p->run_id,
                   j->argv[0]);
        goto fail;
    }
    if (j->user != NULL) {
        /* getpwnam may consult NSS; users are local in practice and this runs once a spawn. */
        struct passwd *pw = getpwnam(j->user);
        if (pw == NULL) {
            md_log(MD_LOG_ERROR, "spawn failed: job=%s run=%s: unknown user '%s'", job->name,
                   p->run_id, j->user);
            r = -EINVAL;
            goto fail;
        }
        l.set_ids = true;
        l.uid = pw->pw_uid;
        l.gid = pw->pw_gid;
    }
    for (int i = 0; i < 4; i++) {
        if ((r = sup_launch_pipe(fds[i])) < 0) {
            md_log_err(MD_LOG_ERROR, r, "spawn failed: job=%s run=%s: pipe", job->name,
                       p->run_id);
            goto fail;
        }
    }
    /* fd 0 reads the config; 1, 2 and the status fd 3 write to us. */
    l.fds[0] = fds[0][0];
    l.fds[1] = fds[1][1];
    l.fds[2] = fds[2][1];
    l.fds[3] = fds[3][1];
    l.path = path;
    l.argv = j->argv;
    l.envp = env;
    l.cwd = j->workdir;
    if (sup->cg != NULL && sup->cg->on) {
        /* A mkdir and two opens in cgroupfs, synchronous (cgroup.h).  Without it the run still
         * runs, as it would with cgroups off. */
        int cr = sup_cg_run_new(sup->cg, job->name, &p->cg);
        if (cr < 0)
            md_log_err(MD_LOG_WARN, cr, "cgroup: job=%s run=%s runs without a cgroup of its own",
                       job->name, p->run_id);
        else
            l.cgroup_dir = sup_cg_run_dirfd(p->cg);
    }
    /* The run writes its own P record to the runs file, just before its exec (runlog.h). */
    if (sup_runlog_note(sup->runlog, p->exec_id, p->cg != NULL ? sup_cg_run_name_of(p->cg) : NULL,
                        &l.note_fd, note_head, sizeof note_head, note_tail, sizeof note_tail)) {
        l.note_head = note_head;
        l.note_tail = note_tail;
    }
    r = sup_launch(&l, &out);
    for (int i = 0; i < 4; i++) { /* the child's ends */
        close(l.fds[i]);
        fds[i][i == 0 ? 0 : 1] = -1;
    }
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r, "spawn failed: job=%s run=%s file=%s step=%s", job->name,
                   p->run_id, path, out.step);
        goto fail;
    }
    p->pid = (int)out.pid;
    p->pidfd = out.pidfd;
    sup_runlog_launched(sup->runlog, p->exec_id, p->pid,
                        p->cg != NULL ? sup_cg_run_name_of(p->cg) : NULL);
    p->launched = true;
    p->pending_closes++;
    uv_poll_init(sup->loop, &p->exitw, p->pidfd);
    p->exitw.data = p;
    uv_poll_start(&p->exitw, UV_READABLE, exitw_cb);
    uv_pipe_open(&p->in, fds[0][1]);
    uv_pipe_open(&p->out, fds[1][0]);
    uv_pipe_open(&p->err, fds[2][0]);
    uv_pipe_open(&p->status, fds[3][0]);
    env_free(env);
    md_free(path);
    md_log(MD_LOG_NOTICE, "spawned: job=%s run=%s pid=%d", job->name, p->run_id, p->pid);
    sup_reg_run_start(job, p);

    uv_read_start((uv_stream_t *)&p->out, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&p->err, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&p->status, alloc_cb, read_cb);
    p->stdin_data = md_xstrdup(j->config_json ? j->config_json : "{}");
    {
        uv_buf_t b = uv_buf_init(p->stdin_data, (unsigned)strlen(p->stdin_data));
        p->write_req.data = p;
        r = uv_write(&p->write_req, (uv_stream_t *)&p->in, &b, 1, stdin_written_cb);
        if (r < 0)
            close_once(p, (uv_handle_t *)&p->in);
    }
    if (j->timeout_ms > 0 && j->kind != MD_JOB_SERVICE)
        uv_timer_start(&p->timeout, run_timeout_cb, j->timeout_ms, 0);
    return 0;

fail:
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++)
            if (fds[i][k] >= 0)
                close(fds[i][k]);
    env_free(env);
    md_free(path);
    p->exited = true;
    p->primary = false; /* the prog hears of it through EV_SPAWN_FAILED, not an exit */
    proc_close_all(p);
    return r;
}

void sup_job_spawn_extra(struct sup_job *job, int64_t slot)
{
    if (proc_spawn(job, slot, false) < 0)
        job->runs_failed++;
}

bool sup_job_has_adopted(const struct sup_job *job)
{
    for (const struct sup_proc *p = job->procs; p != NULL; p = p->next)
        if (p->adopted && !p->exited)
            return true;
    return false;
}

int sup_job_adopt(struct sup_job *job, const struct sup_runlog_run *r, struct sup_cg_run *cg,
                  bool stop)
{
    struct sup *sup = job->sup;
    const struct md_job *j = job->cfg;
    struct sup_proc *p;
    uint64_t st = 0;
    int fd;
    int64_t age_ms;

    /* The pidfd first, then the identity check: a pid reused after the check would otherwise
     * slip in between. */
    fd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    if (fd < 0 || sup_runlog_starttime(r->pid, &st) < 0 || st != r->starttime) {
        if (fd >= 0)
            close(fd);
        if (cg != NULL)
            sup_cg_run_release(cg);
        return -ESRCH;
    }
    p = md_xcalloc(1, sizeof *p);
    p->sup = sup;
    p->job = job;
    p->adopted = true;
    p->slot = r->slot;
    p->pid = r->pid;
    p->pidfd = fd;
    p->cg = cg;
    p->stop_group = true; /* every run leads its own group (launch.c) */
    p->stop_signal = j->stop_signal;
    p->stop_timeout_ms = j->stop_timeout_ms;
    p->started_wall_ms = r->started_ms;
    age_ms = md_time_wall_ms() - r->started_ms;
    if (age_ms < 0)
        age_ms = 0;
    /* Monotonic start, so durations and the timeout count from the real start. */
    p->started_ms = uv_now(sup->loop) > (uint64_t)age_ms ? uv_now(sup->loop) - (uint64_t)age_ms
                                                          : 0;
    snprintf(p->run_id, sizeof p->run_id, "%s", r->run_id);
    snprintf(p->exec_id, sizeof p->exec_id, "%s", r->exec_id);
    proc_handles_init(p);
    /* No pipes: the run's stdout and status pipe went with the life that started it. */
    close_once(p, (uv_handle_t *)&p->in);
    close_once(p, (uv_handle_t *)&p->out);
    close_once(p, (uv_handle_t *)&p->err);
    close_once(p, (uv_handle_t *)&p->status);
    p->launched = true;
    p->pending_closes++;
    uv_poll_init(sup->loop, &p->exitw, p->pidfd);
    p->exitw.data = p;
    uv_poll_start(&p->exitw, UV_READABLE, exitw_cb);
    md_log(MD_LOG_NOTICE, "adopted: job=%s run=%s pid=%d exec=%s started=%" PRId64 "ms_ago%s",
           job->name, p->run_id, p->pid, p->exec_id, age_ms, stop ? " action=stop" : "");
    /* Its run_start again, with its own exec id and start time: the previous life may have
     * died before journalling it (a replay of one that was sent changes nothing). */
    sup_reg_run_start(job, p);
    if (stop) {
        sup_proc_stop(p);
    } else if (j->timeout_ms > 0) {
        /* The run's timeout counts from its real start. */
        uint64_t left = (uint64_t)age_ms >= j->timeout_ms ? 0 : j->timeout_ms - (uint64_t)age_ms;
        uv_timer_start(&p->timeout, run_timeout_cb, left, 0);
    }
    sup->status_gen++;
    return 0;
}

/* ---- the state machine driver ----------------------------------------------------------- */

static void job_timer_cb(uv_timer_t *t)
{
    struct sup_job *job = MD_CONTAINER_OF(t, struct sup_job, timer);

    sup_job_event(job, EV_TIMER_FIRED, 0, 0);
}

static void record_run(struct sup_job *job, const struct prog_actions *act)
{
    enum sup_run_status st;

    switch (act->outcome) {
    case PROG_OUTCOME_SUCCEEDED: st = RUN_SUCCEEDED; break;
    case PROG_OUTCOME_KILLED: st = job->stop_status; break;
    default: st = RUN_FAILED; break;
    }
    if (st == RUN_SUCCEEDED)
        job->runs_ok++;
    else
        job->runs_failed++;
    job->msg_outcome = st;
    if (job->ending != NULL) {
        /* Shipped when the proc is freed, with its whole output tail. */
        job->ending->end_recorded = true;
        job->ending->end_status = st;
        job->ending->end_code = job->prog.last_exit_code;
        job->ending->end_signal = job->prog.last_signal;
    } else {
        /* Nothing was launched (unknown program, no such user, out of pipes). */
        sup_reg_run_end(job, NULL, job->run_id, st, job->prog.last_exit_code,
                        job->prog.last_signal, "spawn failed");
        sup_job_note_run(job, NULL, job->run_id, st, job->prog.last_exit_code,
                         job->prog.last_signal);
    }
    md_log(st == RUN_SUCCEEDED ? MD_LOG_INFO : MD_LOG_NOTICE,
           "run done: job=%s run=%s status=%s code=%d signal=%d", job->name, job->run_id,
           sup_run_status_name(st), job->prog.last_exit_code, job->prog.last_signal);
}

static void msg_finished(struct sup_job *job);

void sup_job_event(struct sup_job *job, enum prog_event ev, int exit_code, int term_signal)
{
    struct sup *sup = job->sup;
    struct prog_input in = {
        .ev = ev,
        .now_ms = uv_now(sup->loop),
        .exit_code = exit_code,
        .term_signal = term_signal,
        .rand = md_rand32(),
    };
    struct prog_actions act;

    prog_step(&job->prog, &job->pol, &in, &act);
    sup->status_gen++;
    if (act.flags & ACT_IMPOSSIBLE) {
        md_log(MD_LOG_ERROR, "impossible event: job=%s state=%s event=%s: %s", job->name,
               prog_state_name(job->prog.state), prog_event_name(ev), act.reason);
        return;
    }
    if (act.flags == 0 && act.from == act.to)
        return;
    if (act.flags & ACT_RUN_DONE)
        record_run(job, &act);
    if (act.from != act.to) {
        sup_reg_job(job);
        if (act.to == PROG_BACKOFF)
            md_log(MD_LOG_NOTICE, "backoff: job=%s delay_ms=%" PRIu64 " tries=%u reason=%s",
                   job->name, act.timer_ms, job->prog.tries, act.reason);
        else
            md_log(MD_LOG_INFO, "state: job=%s from=%s to=%s reason=%s", job->name,
                   prog_state_name(act.from), prog_state_name(act.to), act.reason);
    }
    if (act.to == PROG_STARTING && job->last_error != NULL) {
        md_free(job->last_error);
        job->last_error = NULL;
    }
    if (act.flags & ACT_GAVE_UP) {
        md_log(MD_LOG_ERROR, "gave up: job=%s state=FATAL tries=%u reason=%s code=%d signal=%d",
               job->name, job->prog.tries, act.reason, job->prog.last_exit_code,
               job->prog.last_signal);
        md_free(job->last_error);
        job->last_error = md_xasprintf("gave up after %u tries: %s", job->prog.tries,
                                       act.reason);
    }
    if (act.flags & ACT_CANCEL_TIMER)
        uv_timer_stop(&job->timer);
    if (act.flags & ACT_ARM_TIMER)
        uv_timer_start(&job->timer, job_timer_cb, act.timer_ms, 0);
    if (act.flags & ACT_KILL) {
        struct sup_proc *p = job_primary(job);
        if (p != NULL)
            sup_proc_kill(p, act.signal);
    }
    if (act.from == PROG_BACKOFF && act.to == PROG_STARTING)
        job->restarts++;
    if (act.flags & ACT_SPAWN) {
        job->stop_status = RUN_STOPPED;
        int r = proc_spawn(job, job->cur_slot, true);
        if (r < 0) {
            sup_job_event(job, EV_SPAWN_FAILED, r, 0);
            return;
        }
    }
    /* A job waiting to be restarted (reload changed it) or to start a newer slot (replace)
     * goes on once its old process is gone. */
    if (job->msg_id != 0 && (job->prog.state == PROG_STOPPED || job->prog.state == PROG_EXITED ||
                             job->prog.state == PROG_FATAL)) {
        msg_finished(job);
        if (job->prog.state != PROG_STOPPED && job->prog.state != PROG_EXITED &&
            job->prog.state != PROG_FATAL)
            return; /* the next message started it again */
    }
    if (job->prog.state == PROG_STOPPED || job->prog.state == PROG_EXITED ||
        job->prog.state == PROG_FATAL) {
        if (job->retired || sup->stopping || job->cfg == NULL)
            return;
        if (job->restart_pending) {
            job->restart_pending = false;
            md_log(MD_LOG_NOTICE, "restarting: job=%s reason=config changed", job->name);
            if (job->cfg->kind == MD_JOB_SERVICE && job->cfg->enabled && !job->paused)
                sup_service_start(job);
        } else if (job->pending_now) {
            job->pending_now = false; /* restart or run-now (replace) by the operator */
            job->cur_slot = 0;
            sup_job_event(job, EV_START, 0, 0);
        } else if (job->pending_slot != 0) {
            int64_t slot = job->pending_slot;
            job->pending_slot = 0;
            job->cur_slot = slot;
            sup_run_id(sup, job->name, slot, job->run_id, sizeof job->run_id);
            sup_job_event(job, EV_START, 0, 0);
        }
    }
}

/* The message's last run is over (no retry pending): tell the bus, then take the next one. */
static void msg_finished(struct sup_job *job)
{
    struct sup *sup = job->sup;
    char err[64] = "";
    const char *status = job->msg_outcome == RUN_SUCCEEDED ? "done"
                         : job->msg_outcome == RUN_STOPPED ? "pending" /* meshd stopped it */
                                                           : "failed";

    if (job->msg_outcome != RUN_SUCCEEDED && job->msg_outcome != RUN_STOPPED) {
        if (job->prog.last_signal != 0)
            snprintf(err, sizeof err, "%s: signal %d", sup_run_status_name(job->msg_outcome),
                     job->prog.last_signal);
        else
            snprintf(err, sizeof err, "%s: exit code %d", sup_run_status_name(job->msg_outcome),
                     job->prog.last_exit_code);
    }
    md_log(MD_LOG_NOTICE, "message %s: job=%s id=%" PRId64 "%s%s", status, job->name,
           job->msg_id, err[0] ? " error=" : "", err);
    sup_reg_msg_done(sup, job->msg_id, status, err[0] ? err : NULL);
    job->msg_id = 0;
    md_free(job->msg_payload);
    job->msg_payload = NULL;
    if (!sup->stopping && job->cfg != NULL && job->cfg->event != NULL)
        sup_bus_wake(sup, job->cfg->event);
}

static void job_close_cb(uv_handle_t *h)
{
    struct sup_job *job = h->data;

    sup_job_info_free(job);
    md_free(job->msg_payload);
    md_free(job->name);
    md_free(job);
}

void sup_job_close(struct sup_job *job)
{
    /* Called once the job has no live process.  Let go of procs still draining: they must not touch the job after it is freed. */
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        p->job = NULL;
    job->procs = NULL;
    job->closing = true;
    job->timer.data = job;
    uv_close((uv_handle_t *)&job->timer, job_close_cb);
}

/* ---- the job's memory (history.h) ------------------------------------------------------- */

void sup_job_note_run(struct sup_job *job, struct sup_proc *p, const char *run_id,
                      enum sup_run_status status, int exit_code, int signal)
{
    struct sup_run_rec *r = sup_history_add(&job->history);
    int64_t now = md_time_wall_ms();

    job->sup->status_gen++;
    snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
    r->status = status;
    r->exit_code = exit_code;
    r->signal = signal;
    r->finished_ms = now;
    if (p != NULL) {
        r->slot = p->slot;
        r->started_ms = p->started_wall_ms;
        r->duration_ms = p->duration_ms;
        r->usage = p->usage;
        sup_tail_move(&r->tail, &p->tail);
        if (p->started_wall_ms != 0)
            sup_history_duration(&job->history, (double)p->duration_ms / 1000.0);
    } else {
        r->slot = job->cur_slot;
    }
    if (status == RUN_SUCCEEDED)
        job->last_success_ms = now;
    else if (status == RUN_TIMED_OUT)
        job->runs_timed_out++;
    else if (status == RUN_STOPPED)
        job->runs_stopped++;
}

void sup_job_note_status(struct sup_job *job, struct sup_proc *p,
                         const struct md_status_event *ev)
{
    job->sup->status_gen++;
    switch (ev->kind) {
    case MD_ST_ALERT:
        sup_history_alert(&job->history, ev->u.alert.key, ev->u.alert.message,
                          (int)ev->u.alert.severity, md_time_wall_ms());
        break;
    case MD_ST_RESOLVE:
        sup_history_resolve(&job->history, ev->u.resolve.key);
        break;
    case MD_ST_PROGRESS:
        p->has_progress = true;
        p->has_total = ev->u.progress.has_total != 0;
        p->progress_done = ev->u.progress.done;
        p->progress_total = ev->u.progress.total;
        md_free(p->progress_unit);
        p->progress_unit = ev->u.progress.unit ? md_xstrdup(ev->u.progress.unit) : NULL;
        break;
    default:
        break;
    }
}

void sup_job_info_free(struct sup_job *job)
{
    sup_history_free(&job->history);
    md_free(job->last_error);
    job->last_error = NULL;
}

void sup_note_lag(struct sup *sup, int64_t lag_ms)
{
    double secs = lag_ms > 0 ? (double)lag_ms / 1000.0 : 0.0;

    sup->lag_bucket[sup_bucket_of(secs, sup_lag_bounds, SUP_LAG_BUCKETS - 1)]++;
    sup->lag_sum += secs;
    sup->lag_count++;
}
