/* launch.c - vfork and exec, and signals to what was launched (see launch.h). */
#define _GNU_SOURCE /* vfork, syscall */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "meshd/md_alloc.h"

/* Where a child that failed before its exec leaves the reason: meshd's own memory, shared
 * with the child until it execs or exits. */
struct child_err {
    int err;
    const char *step;
};

static const struct sigaction sa_default = {.sa_handler = SIG_DFL};

/* The child's side, on meshd's memory and stack (see launch.h): raw system calls only.  The
 * ids change through syscall(2) rather than glibc's setuid family, which would try to apply
 * the change to every thread of the process - meshd's threads, not the child's. */
MD_NORETURN static void child(const struct sup_launch *l, volatile struct child_err *ce)
{
    const char *step;
    int hi[4];
    sigset_t none;

    /* Signals stay blocked (see sup_launch) until every disposition is back to the default:
     * a signal caught before that would run one of meshd's handlers here, on meshd's memory.
     * SIGPIPE is ignored by meshd; a worker gets the default. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa_default, NULL); /* EINVAL for glibc's internal ones: fine */
    sigemptyset(&none);
    step = "sigprocmask";
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        goto fail;
    step = "setsid";
    if (setsid() < 0)
        goto fail;
    step = "cgroup";
    if (l->cgroup_fd >= 0 && write(l->cgroup_fd, "0", 1) != 1)
        goto fail;
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
    step = "execve";
    execve(l->path, l->argv, l->envp);
fail:
    ce->err = errno;
    ce->step = step;
    _exit(127);
}

int sup_launch(const struct sup_launch *l, struct sup_launched *out)
{
    volatile struct child_err ce = {0, NULL};
    sigset_t all, old;
    pid_t p;
    int r, fd;

    out->pid = -1;
    out->pidfd = -1;
    out->step = NULL;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    p = vfork();
    if (p == 0)
        child(l, &ce);
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
    fd = (int)syscall(SYS_pidfd_open, p, 0);
    if (fd < 0) {
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
    while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
        ;
    return r;
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
