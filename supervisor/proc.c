/* proc.c - proc.h: one child process, its pipes, its exit, its timeouts.
 *
 * Every child:
 *   - is started by launch.c (vfork + exec: when it returns, the child leads its own group
 *     and has exec'd) and watched through a pidfd;
 *   - runs in its own session and process group (setsid), so a stop or a
 *     run timeout can signal the whole group and nothing a worker forked survives it;
 *   - gets its config as JSON on fd 0, which is closed once written;
 *   - has fd 1 and fd 2 read line by line into meshd's log (prefixed with job and run id), the
 *     last SUP_TAIL_LINES kept in its output tail;
 *   - has fd 3, the status pipe (MESHD_STATUS_FD), read with a 64 KiB line cap and parsed with
 *     md_status_parse; a bad line is logged and counted, never fatal.
 * Whatever a worker wrote reaches the log only through md_log_escape, and each of its three
 * streams is rate-limited (the job's log_limit, see log_gate); the output tail is kept whole.
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
#include "proc.h"
#include "proc_internal.h"
#include "runlog.h"
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_time.h"
#include "meshd/md_status.h"

/* After a child exits, its pipes may still hold output (or a grandchild may keep them open).
 * Read on for this long, then close them. */
#define DRAIN_MS 200
#define PROC_HANDLES 8

/* ---- teardown --------------------------------------------------------------------------- */

static void proc_free(struct sup_proc *p)
{
    void (*gone)(void *) = p->cbs->gone;
    void *ud = p->ud;

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
                   p->name, p->run_id, p->usage.user_usec / 1000, p->usage.system_usec / 1000, mem);
        }
    }
    if (p->cbs->closed != NULL)
        p->cbs->closed(p, ud);
    /* Recorded (or never launched): a later life has nothing to reconcile for it. */
    sup_runlog_end(p->runlog, p->exec_id);
    if (p->pidfd >= 0)
        close(p->pidfd);
    sup_tail_clear(&p->tail);
    md_linebuf_cleanup(&p->lb_out);
    md_linebuf_cleanup(&p->lb_err);
    md_linebuf_cleanup(&p->lb_status);
    md_free(p->stdin_data);
    md_free(p->result);
    md_free(p->result_summary);
    md_free(p->progress_unit);
    md_free(p);
    if (gone != NULL)
        gone(ud);
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

static void proc_close_all(struct sup_proc *p)
{
    md_linebuf_flush(&p->lb_out, sup_proc_out_line, p);
    md_linebuf_flush(&p->lb_err, sup_proc_err_line, p);
    md_linebuf_flush(&p->lb_status, sup_proc_status_line, p);
    sup_proc_log_limits_end(p);
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
        cb = sup_proc_out_line;
    } else if (s == (uv_stream_t *)&p->err) {
        lb = &p->lb_err;
        cb = sup_proc_err_line;
    } else {
        lb = &p->lb_status;
        cb = sup_proc_status_line;
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
        md_log_err(MD_LOG_INFO, status, "stdin: job=%s run=%s", p->name, p->run_id);
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
    p->exited = true;
    p->duration_ms = uv_now(p->exitw.loop) - p->started_ms;
    uv_timer_stop(&p->timeout);
    p->cbs->exited(p, exit_status, term_signal, p->ud);
    close_once(p, (uv_handle_t *)&p->exitw);
    close_once(p, (uv_handle_t *)&p->in);
    /* Give the pipes a moment to deliver the last lines, then close everything. */
    uv_timer_start(&p->timeout, drain_timer_cb, DRAIN_MS, 0);
    maybe_finish(p);
}

void sup_proc_finish(struct sup_proc *p, int exit_status, int term_signal, bool ours)
{
    const char *name = p->name;
    uint64_t dur = p->duration_ms;

    if (p->adopted)
        md_log(MD_LOG_NOTICE,
               "exited: job=%s run=%s pid=%d status=unknown duration_ms=%" PRIu64 " adopted=yes",
               name, p->run_id, p->pid, dur);
    else if (term_signal != 0)
        md_log(MD_LOG_NOTICE,
               "exited: job=%s run=%s pid=%d signal=%s duration_ms=%" PRIu64 " expected=%s", name,
               p->run_id, p->pid, strsignal(term_signal), dur, ours ? "yes" : "no");
    else
        md_log(MD_LOG_NOTICE,
               "exited: job=%s run=%s pid=%d code=%d duration_ms=%" PRIu64 " expected=%s", name,
               p->run_id, p->pid, (int)exit_status, dur, (exit_status == 0 || ours) ? "yes" : "no");

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
        md_log_err(MD_LOG_ERROR, -errno, "waitid: job=%s pid=%d", p->name, p->pid);
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

    if (p->exited)
        return;
    if (!p->timed_out && !p->killing) { /* killing: a stop's escalation, not a timeout */
        p->timed_out = true;
        md_log(MD_LOG_WARN, "timeout: job=%s run=%s pid=%d", p->name, p->run_id, p->pid);
        if (p->cbs->timed_out != NULL && p->cbs->timed_out(p, p->ud))
            return; /* the owner stops it (a job's prog) */
    }
    /* Nobody else stops it: escalate here, TERM then KILL every stop_timeout. */
    sup_proc_kill(p, p->killing ? SIGKILL : p->stop_signal);
    p->killing = true;
    uv_timer_start(&p->timeout, run_timeout_cb, p->stop_timeout_ms ? p->stop_timeout_ms : 100, 0);
}

void sup_proc_kill(struct sup_proc *p, int sig)
{
    const char *name = p->name;
    int r;

    if (sig == SIGKILL && p->cg != NULL) {
        /* The whole cgroup: the group and whatever left it. */
        r = sup_cg_run_kill(p->cg);
        if (r < 0)
            md_log_err(MD_LOG_WARN, r, "cgroup.kill: job=%s run=%s cgroup=%s", p->name, p->run_id,
                       sup_cg_run_name_of(p->cg));
        else
            md_log(MD_LOG_INFO, "signalled: job=%s run=%s pid=%d signal=%s cgroup=%s", p->name,
                   p->run_id, p->pid, strsignal(sig), sup_cg_run_name_of(p->cg));
        return;
    }
    if (p->exited && !p->stop_group)
        return;
    r = sup_launch_kill(p->pid, p->stop_group, sig);
    if (r < 0 && r != -ESRCH)
        md_log_err(MD_LOG_WARN, r, "kill: job=%s run=%s pid=%d signal=%d", name, p->run_id, p->pid,
                   sig);
    else if (r < 0)
        md_log(MD_LOG_INFO, "signal not sent: job=%s run=%s pid=%d signal=%s: nothing left", name,
               p->run_id, p->pid, strsignal(sig));
    else
        md_log(MD_LOG_INFO, "signalled: job=%s run=%s pid=%d signal=%s group=%s", name, p->run_id,
               p->pid, strsignal(sig),
               r == 0 && p->stop_group ? "yes"
               : p->stop_group         ? "no (none left)"
                                       : "no");
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

void sup_proc_kill_hard(struct sup_proc *p)
{
    p->killing = true;
    sup_proc_kill(p, SIGKILL);
}

void sup_proc_set_log_limit(struct sup_proc *p, uint32_t burst, uint64_t interval_ms)
{
    for (int s = 0; s < 3; s++) {
        p->limit[s].burst = burst;
        p->limit[s].interval_ms = interval_ms;
    }
}

/* ---- spawning --------------------------------------------------------------------------- */

/* A new proc for spec, its line buffers and handles initialized (all but exitw, which needs a
 * pidfd). */
static struct sup_proc *proc_new(const struct sup_proc_spec *spec)
{
    struct sup_proc *p = md_xcalloc(1, sizeof *p);
    uv_loop_t *loop = spec->loop;

    p->cbs = spec->cbs;
    p->ud = spec->ud;
    p->name = spec->name;
    p->runlog = spec->runlog;
    p->slot = spec->slot;
    p->pidfd = -1;
    p->stop_group = spec->stop_group;
    p->stop_signal = spec->stop_signal;
    p->stop_timeout_ms = spec->stop_timeout_ms;
    p->started_ms = uv_now(loop);
    p->started_wall_ms = md_time_wall_ms();
    snprintf(p->run_id, sizeof p->run_id, "%s", spec->run_id);
    snprintf(p->exec_id, sizeof p->exec_id, "%s", spec->exec_id);
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
        md_log_limit_init(&p->limit[s], spec->log_burst, spec->log_interval_ms);
    p->pending_closes = PROC_HANDLES - 1; /* exitw joins once there is a child to watch */
    return p;
}

/* The child exists: watch its pidfd. */
static void proc_watch(struct sup_proc *p, uv_loop_t *loop)
{
    p->launched = true;
    p->pending_closes++;
    uv_poll_init(loop, &p->exitw, p->pidfd);
    p->exitw.data = p;
    uv_poll_start(&p->exitw, UV_READABLE, exitw_cb);
}

int sup_proc_spawn(const struct sup_proc_spec *spec, struct sup_proc **out)
{
    struct sup_proc *p = proc_new(spec);
    struct sup_launch l;
    struct sup_launched launched;
    char note_head[64], note_tail[160];
    int fds[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    char *path = NULL;
    int r;

    *out = p;
    /* The intent goes to disk before the spawn: if meshd dies from here on, its next life
     * knows this slot was taken (runlog.h). */
    {
        struct sup_runlog_run rr = {.slot = spec->slot, .started_ms = p->started_wall_ms};
        snprintf(rr.exec_id, sizeof rr.exec_id, "%s", p->exec_id);
        snprintf(rr.job, sizeof rr.job, "%s", p->name);
        snprintf(rr.run_id, sizeof rr.run_id, "%s", p->run_id);
        rr.kind = spec->kind;
        (void)sup_runlog_begin(p->runlog, &rr);
    }

    memset(&l, 0, sizeof l);
    l.cgroup_dir = -1;
    r = sup_launch_resolve(spec->argv[0], (char **)spec->envp, &path);
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r, "spawn failed: job=%s run=%s file=%s", p->name, p->run_id,
                   spec->argv[0]);
        goto fail;
    }
    if (spec->user != NULL) {
        /* getpwnam may consult NSS; users are local in practice and this runs once a spawn. */
        struct passwd *pw = getpwnam(spec->user);
        if (pw == NULL) {
            md_log(MD_LOG_ERROR, "spawn failed: job=%s run=%s: unknown user '%s'", p->name,
                   p->run_id, spec->user);
            r = -EINVAL;
            goto fail;
        }
        l.set_ids = true;
        l.uid = pw->pw_uid;
        l.gid = pw->pw_gid;
    }
    for (int i = 0; i < 4; i++) {
        if ((r = sup_launch_pipe(fds[i])) < 0) {
            md_log_err(MD_LOG_ERROR, r, "spawn failed: job=%s run=%s: pipe", p->name, p->run_id);
            goto fail;
        }
    }
    /* fd 0 reads the config; 1, 2 and the status fd 3 write to us. */
    l.fds[0] = fds[0][0];
    l.fds[1] = fds[1][1];
    l.fds[2] = fds[2][1];
    l.fds[3] = fds[3][1];
    l.path = path;
    l.argv = spec->argv;
    l.envp = spec->envp;
    l.cwd = spec->cwd;
    if (spec->cg != NULL && spec->cg->on) {
        /* A mkdir and two opens in cgroupfs, synchronous (cgroup.h).  Without it the run still
         * runs, as it would with cgroups off. */
        int cr = sup_cg_run_new(spec->cg, p->name, &p->cg);
        if (cr < 0)
            md_log_err(MD_LOG_WARN, cr, "cgroup: job=%s run=%s runs without a cgroup of its own",
                       p->name, p->run_id);
        else
            l.cgroup_dir = sup_cg_run_dirfd(p->cg);
    }
    /* The run writes its own P record to the runs file, just before its exec (runlog.h). */
    if (sup_runlog_note(p->runlog, p->exec_id, p->cg != NULL ? sup_cg_run_name_of(p->cg) : NULL,
                        &l.note_fd, note_head, sizeof note_head, note_tail, sizeof note_tail)) {
        l.note_head = note_head;
        l.note_tail = note_tail;
    }
    r = sup_launch(&l, &launched);
    for (int i = 0; i < 4; i++) { /* the child's ends */
        close(l.fds[i]);
        fds[i][i == 0 ? 0 : 1] = -1;
    }
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r, "spawn failed: job=%s run=%s file=%s step=%s", p->name,
                   p->run_id, path, launched.step);
        goto fail;
    }
    p->pid = (int)launched.pid;
    p->pidfd = launched.pidfd;
    sup_runlog_launched(p->runlog, p->exec_id, p->pid,
                        p->cg != NULL ? sup_cg_run_name_of(p->cg) : NULL);
    proc_watch(p, spec->loop);
    uv_pipe_open(&p->in, fds[0][1]);
    uv_pipe_open(&p->out, fds[1][0]);
    uv_pipe_open(&p->err, fds[2][0]);
    uv_pipe_open(&p->status, fds[3][0]);
    md_free(path);
    md_log(MD_LOG_NOTICE, "spawned: job=%s run=%s pid=%d", p->name, p->run_id, p->pid);

    uv_read_start((uv_stream_t *)&p->out, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&p->err, alloc_cb, read_cb);
    uv_read_start((uv_stream_t *)&p->status, alloc_cb, read_cb);
    p->stdin_data = md_xstrdup(spec->stdin_data);
    {
        uv_buf_t b = uv_buf_init(p->stdin_data, (unsigned)strlen(p->stdin_data));
        p->write_req.data = p;
        r = uv_write(&p->write_req, (uv_stream_t *)&p->in, &b, 1, stdin_written_cb);
        if (r < 0)
            close_once(p, (uv_handle_t *)&p->in);
    }
    if (spec->timeout_ms > 0)
        uv_timer_start(&p->timeout, run_timeout_cb, spec->timeout_ms, 0);
    return 0;

fail:
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 2; k++)
            if (fds[i][k] >= 0)
                close(fds[i][k]);
    md_free(path);
    p->exited = true;
    proc_close_all(p);
    return r;
}

int sup_proc_adopt(const struct sup_proc_spec *spec, const struct sup_runlog_run *r,
                   struct sup_cg_run *cg, struct sup_proc **out)
{
    struct sup_proc *p;
    uint64_t st = 0, now;
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
    p = proc_new(spec);
    p->adopted = true;
    p->pid = r->pid;
    p->pidfd = fd;
    p->cg = cg;
    p->started_wall_ms = r->started_ms;
    age_ms = md_time_wall_ms() - r->started_ms;
    if (age_ms < 0)
        age_ms = 0;
    /* Monotonic start, so durations and the timeout count from the real start. */
    now = uv_now(spec->loop);
    p->started_ms = now > (uint64_t)age_ms ? now - (uint64_t)age_ms : 0;
    /* No pipes: the run's stdout and status pipe went with the life that started it. */
    close_once(p, (uv_handle_t *)&p->in);
    close_once(p, (uv_handle_t *)&p->out);
    close_once(p, (uv_handle_t *)&p->err);
    close_once(p, (uv_handle_t *)&p->status);
    proc_watch(p, spec->loop);
    if (spec->timeout_ms > 0) {
        uint64_t left =
            (uint64_t)age_ms >= spec->timeout_ms ? 0 : spec->timeout_ms - (uint64_t)age_ms;
        uv_timer_start(&p->timeout, run_timeout_cb, left, 0);
    }
    *out = p;
    return 0;
}

const struct sup_proc_ops sup_proc_ops = {
    .spawn = sup_proc_spawn,
    .adopt = sup_proc_adopt,
    .kill = sup_proc_kill,
    .stop = sup_proc_stop,
    .kill_hard = sup_proc_kill_hard,
    .finish = sup_proc_finish,
    .set_log_limit = sup_proc_set_log_limit,
};
