/* launch.c - fork and exec without waiting for the exec (see launch.h). */
#define _GNU_SOURCE /* pidfd_open, P_PIDFD */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "meshd/md_alloc.h"

/* Everything between fork and exec runs in the child of a single-threaded parent, so it is
 * safe, but it keeps to async-signal-safe calls anyway.  On failure it writes errno to the
 * error pipe (close-on-exec: a successful exec closes it unwritten) and exits 127. */
MD_NORETURN static void child(const struct sup_launch *l, int errw)
{
    int hi[4], e;
    sigset_t all;

    /* Signals are blocked (see sup_launch) until the dispositions are back to default: a
     * signal caught here would run meshd's libuv handler, which writes into the pipe it shares
     * with the parent, and meshd would act on a signal meant for this child. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL); /* meshd ignores SIGPIPE; a worker gets the default */
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    if (setsid() < 0)
        goto fail;
    /* Move the four fds above 3 first, so installing one cannot clobber another. */
    for (int i = 0; i < 4; i++)
        if ((hi[i] = fcntl(l->fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
            goto fail;
    for (int i = 0; i < 4; i++)
        if (dup2(hi[i], i) < 0) /* dup2 clears close-on-exec on the target */
            goto fail;
    if (l->cwd != NULL && chdir(l->cwd) < 0)
        goto fail;
    if (l->set_ids) {
        if (setgroups(0, NULL) < 0 && errno != EPERM)
            goto fail;
        if (setgid(l->gid) < 0 || setuid(l->uid) < 0)
            goto fail;
    }
    execve(l->path, l->argv, l->envp);
fail:
    e = errno;
    while (write(errw, &e, sizeof e) < 0 && errno == EINTR)
        ;
    _exit(127);
}

int sup_launch(const struct sup_launch *l, pid_t *pid, int *pidfd, int *errfd)
{
    int ep[2], fd, r;
    sigset_t all, old;
    pid_t p;

    if ((r = sup_launch_pipe(ep)) < 0)
        return r;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    p = fork();
    if (p == 0)
        child(l, ep[1]);
    r = p < 0 ? -errno : 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(ep[1]);
    if (r < 0) {
        close(ep[0]);
        return r;
    }
    fd = pidfd_open(p, 0);
    if (fd < 0) {
        /* Kernel older than 5.3: nothing to watch the child with.  Take it back. */
        r = -errno;
        kill(p, SIGKILL);
        while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
            ;
        close(ep[0]);
        return r;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(ep[0], F_SETFL, O_NONBLOCK);
    *pid = p;
    *pidfd = fd;
    *errfd = ep[0];
    return 0;
}

int sup_launch_pipe(int fds[2])
{
    return pipe2(fds, O_CLOEXEC) < 0 ? -errno : 0;
}

int sup_launch_error(int errfd)
{
    int e = 0;
    ssize_t n = read(errfd, &e, sizeof e);

    return n == (ssize_t)sizeof e && e > 0 ? -e : 0;
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
