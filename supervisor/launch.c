/* launch.c - clone3 (or vfork) and exec, and signals to what was launched (see launch.h). */
#define _GNU_SOURCE /* vfork, syscall */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "launch_internal.h"
#include "meshd/md_alloc.h"

/* Where a child that failed before its exec leaves the reason: meshd's own memory, shared
 * with the child until it execs or exits. */
struct child_err {
    int err;
    const char *step;
};

/* The soft limit on open files meshd started with, restored in each child (see
 * sup_launch_raise_fd_limit); fd_limit_raised is false until it was raised. */
static struct rlimit child_nofile;
static bool fd_limit_raised;

/* What the child needs: borrowed from sup_launch's frame, which outlives the child's use of
 * it (the parent is suspended until the child execs or exits). */
struct child_ctx {
    const struct sup_launch *l;
    volatile struct child_err *ce;
    bool in_cgroup; /* created in its cgroup already (CLONE_INTO_CGROUP) */
};

/* The kernel's struct sigaction (x86_64, aarch64 and most others: no sa_restorer needed for
 * SIG_DFL).  glibc's sigaction refuses signals 32 and 33, which it keeps for itself; but an
 * ignored 32 or 33 that meshd inherited would pass to every worker through the exec, so the
 * child resets them with the raw system call, like every other signal. */
struct k_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long mask;
};

static void reset_signal(int sig)
{
    static const struct k_sigaction dfl = {.handler = SIG_DFL};

    (void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
}

/* Appends the decimal form of v to buf at *n (buf large enough). */
static void put_u64(char *buf, size_t *n, uint64_t v)
{
    char d[24];
    int k = 0;

    do
        d[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (k > 0)
        buf[(*n)++] = d[--k];
}

/* The child's note (launch.h note_fd): one write(2) of "<head> <pid> <starttime><tail>".  Raw
 * system calls and stack memory only; a failure is not the launch's failure (the parent
 * learns the pid anyway), so it is ignored. */
static void write_note(const struct sup_launch *l)
{
    char buf[768], st[1024];
    size_t n = 0, hl = strlen(l->note_head), tl = strlen(l->note_tail);
    uint64_t start = 0;
    ssize_t r;
    int fd;

    if (hl + tl + 48 > sizeof buf)
        return;
    fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        r = read(fd, st, sizeof st - 1);
        close(fd);
        if (r > 0) {
            /* Field 22, counted after the ')' that ends the command name. */
            char *p = NULL;
            st[r] = '\0';
            for (ssize_t i = r - 1; i >= 0 && p == NULL; i--)
                if (st[i] == ')')
                    p = st + i;
            for (int f = 0; p != NULL && f < 20; f++) {
                while (*p != '\0' && *p != ' ')
                    p++;
                if (*p == ' ')
                    p++;
            }
            while (p != NULL && *p >= '0' && *p <= '9')
                start = start * 10 + (uint64_t)(*p++ - '0');
        }
    }
    memcpy(buf, l->note_head, hl);
    n = hl;
    buf[n++] = ' ';
    put_u64(buf, &n, (uint64_t)syscall(SYS_getpid));
    buf[n++] = ' ';
    put_u64(buf, &n, start);
    memcpy(buf + n, l->note_tail, tl);
    n += tl;
    (void)!write(l->note_fd, buf, n);
}

/* The child's side, on meshd's memory and stack (see launch.h): raw system calls only.  The
 * ids change through syscall(2) rather than glibc's setuid family, which would try to apply
 * the change to every thread of the process - meshd's threads, not the child's. */
MD_NORETURN static void child(void *arg)
{
    const struct child_ctx *cx = arg;
    const struct sup_launch *l = cx->l;
    volatile struct child_err *ce = cx->ce;
    const char *step;
    int hi[4];
    sigset_t none;

    /* Signals stay blocked (see sup_launch) until every disposition is back to the default:
     * a signal caught before that would run one of meshd's handlers here, on meshd's memory.
     * SIGPIPE is ignored by meshd; a worker gets the default. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            reset_signal(sig);
    sigemptyset(&none);
    step = "sigprocmask";
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        goto fail;
    step = "setsid";
    if (setsid() < 0)
        goto fail;
    step = "setrlimit";
    if (fd_limit_raised && syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &child_nofile, NULL) < 0)
        goto fail;
    if (l->cgroup_dir >= 0 && !cx->in_cgroup) {
        /* vfork path: move in by writing cgroup.procs.  The write waits for an RCU grace
         * period (milliseconds), which is why clone3 is preferred. */
        int fd;
        step = "cgroup";
        if ((fd = openat(l->cgroup_dir, "cgroup.procs", O_WRONLY | O_CLOEXEC)) < 0)
            goto fail;
        if (write(fd, "0", 1) != 1)
            goto fail;
        close(fd);
    }
    /* Move the four fds above 3 first, so installing one cannot clobber another. */
    step = "dup";
    for (int i = 0; i < 4; i++)
        if ((hi[i] = fcntl(l->fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
            goto fail;
    for (int i = 0; i < 4; i++)
        if (dup2(hi[i], i) < 0) /* dup2 clears close-on-exec on the target */
            goto fail;
    step = "chdir";
    if (l->cwd != NULL && chdir(l->cwd) < 0)
        goto fail;
    if (l->set_ids) {
        step = "setgroups";
        if (syscall(SYS_setgroups, 0, NULL) < 0 && errno != EPERM)
            goto fail;
        step = "setgid";
        if (syscall(SYS_setgid, l->gid) < 0)
            goto fail;
        step = "setuid";
        if (syscall(SYS_setuid, l->uid) < 0)
            goto fail;
    }
    if (l->note_head != NULL)
        write_note(l);
    step = "execve";
    execve(l->path, l->argv, l->envp);
fail:
    ce->err = errno;
    ce->step = step;
    _exit(127);
}

/* clone3 with CLONE_VM | CLONE_VFORK, the child running fn(arg) on a stack of its own.
 *
 * Why: a child created with CLONE_INTO_CGROUP starts in its cgroup, whereas moving it there
 * through cgroup.procs waits for an RCU grace period (~8 ms here, measured in
 * docs/supervision.md) - with the parent held by the vfork all along.  clone3 has no glibc
 * wrapper (2.36), and a CLONE_VM child cannot return from a syscall() wrapper on the parent's
 * stack (it would pop the frame the parent returns through), so the child is started on a
 * stack of its own by a few instructions of assembly.  x86_64 only; elsewhere, under
 * AddressSanitizer (whose stack bookkeeping cannot follow a stack switch) and on kernels
 * without clone3 or CLONE_INTO_CGROUP (before 5.7), sup_launch uses vfork. */
struct md_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
    uint64_t set_tid, set_tid_size, cgroup;
};
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#if defined(__x86_64__) && defined(SYS_clone3) && !defined(__SANITIZE_ADDRESS__)
#define HAVE_CLONE3_VM 1
/* The child's stack: one, since sup_launch runs on the loop's thread only and the parent is
 * suspended while the child uses it. */
static _Alignas(64) char child_stack[64 * 1024];

static long clone3_vm(struct md_clone_args *ca, void (*fn)(void *), void *arg)
{
    register long rax __asm__("rax") = SYS_clone3;
    register struct md_clone_args *rdi __asm__("rdi") = ca;
    register unsigned long rsi __asm__("rsi") = sizeof *ca;
    register void (*r12)(void *) __asm__("r12") = fn;
    register void *r13 __asm__("r13") = arg;

    /* In the child, rax is 0 and rsp is the top of child_stack; r12 and r13 survive the
     * syscall.  fn never returns (it execs or _exits). */
    __asm__ volatile("syscall\n\t"
                     "testq %%rax, %%rax\n\t"
                     "jnz 1f\n\t"
                     "xorl %%ebp, %%ebp\n\t"
                     "movq %%r13, %%rdi\n\t"
                     "callq *%%r12\n\t"
                     "ud2\n"
                     "1:"
                     : "+r"(rax)
                     : "r"(rdi), "r"(rsi), "r"(r12), "r"(r13)
                     : "rcx", "r11", "memory", "cc");
    return rax;
}
#endif

static bool force_vfork;

bool sup__launch_force_vfork(bool on)
{
    force_vfork = on;
#ifdef HAVE_CLONE3_VM
    return true;
#else
    return false;
#endif
}

int sup_launch(const struct sup_launch *l, struct sup_launched *out)
{
    volatile struct child_err ce = {0, NULL};
    struct child_ctx cx = {.l = l, .ce = &ce};
    sigset_t all, old;
    pid_t p = -1;
    int r, fd = -1;
#ifdef HAVE_CLONE3_VM
    static bool no_clone3; /* the kernel said ENOSYS/EINVAL once: vfork from then on */
#endif

    out->pid = -1;
    out->pidfd = -1;
    out->step = NULL;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
#ifdef HAVE_CLONE3_VM
    if (!no_clone3 && !force_vfork) {
        struct md_clone_args ca = {
            .flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD,
            .pidfd = (uint64_t)(uintptr_t)&fd,
            .exit_signal = SIGCHLD,
            .stack = (uint64_t)(uintptr_t)child_stack,
            .stack_size = sizeof child_stack,
        };
        if (l->cgroup_dir >= 0) {
            ca.flags |= CLONE_INTO_CGROUP;
            ca.cgroup = (uint64_t)l->cgroup_dir;
            cx.in_cgroup = true;
        }
        long rc = clone3_vm(&ca, child, &cx);
        if (rc == -ENOSYS || rc == -EINVAL) {
            no_clone3 = true;
            cx.in_cgroup = false;
            fd = -1;
        } else if (rc < 0) {
            sigprocmask(SIG_SETMASK, &old, NULL);
            out->step = "clone3";
            return (int)rc;
        } else {
            p = (pid_t)rc;
        }
    }
#endif
    if (p < 0) {
        p = vfork();
        if (p == 0)
            child(&cx);
    }
    r = p < 0 ? -errno : 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        out->step = "vfork";
        return r;
    }
    /* Here the child has exec'd or exited.  It is ours to reap (meshd's orphan scan runs on
     * this same loop and leaves its runs alone), so its pid cannot be reused before the pidfd
     * below is taken. */
    if (ce.err != 0) {
        out->step = ce.step;
        r = -ce.err;
        goto reap;
    }
    if (fd < 0 && (fd = (int)syscall(SYS_pidfd_open, p, 0)) < 0) {
        /* Kernel older than 5.3: nothing to watch the child with.  Take it back. */
        out->step = "pidfd_open";
        r = -errno;
        kill(-p, SIGKILL);
        goto reap;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    out->pid = p;
    out->pidfd = fd;
    return 0;

reap:
    if (fd >= 0)
        close(fd);
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
        ;
    return r;
}

int sup_launch_raise_fd_limit(unsigned long *from, unsigned long *to)
{
    struct rlimit rl;
    rlim_t want;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > (1u << 20) ? (1u << 20) : rl.rlim_max;
    if (rl.rlim_cur >= want)
        return 0;
    child_nofile = rl;
    *from = (unsigned long)rl.rlim_cur;
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    fd_limit_raised = true;
    *to = (unsigned long)want;
    return 1;
}

int sup_launch_kill(pid_t pid, bool group, int sig)
{
    if (group) {
        if (kill(-pid, sig) == 0)
            return 0;
        if (errno != ESRCH)
            return -errno;
    }
    if (kill(pid, sig) == 0)
        return group ? 1 : 0;
    return -errno;
}

int sup_launch_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

static int try_path(const char *dir, size_t dlen, const char *file, char **out)
{
    char *p = md_xasprintf("%.*s/%s", (int)dlen, dir, file);
    struct stat st;

    if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
        if (access(p, X_OK) == 0) {
            *out = p;
            return 0;
        }
        md_free(p);
        return -EACCES;
    }
    md_free(p);
    return -ENOENT;
}

int sup_launch_resolve(const char *file, char *const *envp, char **out)
{
    const char *path = NULL;
    int r = -ENOENT;

    if (*file == '\0')
        return -ENOENT;
    if (strchr(file, '/') != NULL) {
        *out = md_xstrdup(file);
        return 0;
    }
    for (char *const *e = envp; e != NULL && *e != NULL; e++)
        if (strncmp(*e, "PATH=", 5) == 0)
            path = *e + 5;
    if (path == NULL)
        path = getenv("PATH");
    if (path == NULL || *path == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *s = path;; s++) {
        const char *end = strchr(s, ':');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        int t = len == 0 ? try_path(".", 1, file, out) : try_path(s, len, file, out);
        if (t == 0)
            return 0;
        if (t == -EACCES)
            r = -EACCES; /* as execvp: report EACCES if some candidate was not executable */
        if (end == NULL)
            break;
        s = end;
    }
    return r;
}
