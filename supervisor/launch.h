/* launch.h - fork and exec a child without waiting for the exec.
 *
 * uv_spawn (libuv 1.44) blocks the loop until the child's execve has succeeded or failed, so a
 * second of many due jobs cannot start before the first has exec'd: ~0.45 ms of serialised
 * kernel work per child here.  sup_launch forks, hands the exec to the child and returns at
 * once, so children exec in parallel on other cores while the loop forks the next one.  An exec
 * failure is reported afterwards through a close-on-exec pipe, read once the child has exited.
 */
#ifndef MESHD_LAUNCH_H
#define MESHD_LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>

#include "meshd/md_err.h"

struct sup_launch {
    const char *path;   /* executable, already resolved (sup_launch_resolve) */
    char *const *argv;  /* NULL-terminated */
    char *const *envp;  /* NULL-terminated */
    const char *cwd;    /* NULL: meshd's */
    bool set_ids;       /* switch to uid/gid (dropping supplementary groups) */
    uid_t uid;
    gid_t gid;
    int fds[4];         /* become the child's fds 0..3; closed by the caller afterwards */
};

/* Forks a child that starts a new session (it leads its own process group), installs fds 0..3,
 * resets every signal disposition and the signal mask, changes directory and ids, and execs.
 * Returns 0 and sets *pid, *pidfd (a pidfd for the child, close-on-exec) and *errfd (the
 * non-blocking read end of the exec-error pipe), or a negative errno (nothing left behind).
 * Called on the loop: it never waits for the child. */
int sup_launch(const struct sup_launch *l, pid_t *pid, int *pidfd, int *errfd) MD_MUSTCHECK;

/* pipe(2) with both ends close-on-exec, so no other child inherits them.  0 or -errno. */
int sup_launch_pipe(int fds[2]) MD_MUSTCHECK;

/* Once the child has exited: 0 if its exec succeeded, else the negative errno of the step
 * that failed (chdir, setuid, execve...).  Reads errfd; does not close it. */
int sup_launch_error(int errfd);

/* Finds `file` as execvp would: a name with a '/' is used as is, otherwise each directory of
 * PATH (taken from envp, else meshd's environment, else "/usr/local/bin:/usr/bin:/bin") is
 * tried for an executable regular file.  Returns 0 and *out (caller frees with md_free) or
 * -ENOENT / -EACCES. */
int sup_launch_resolve(const char *file, char *const *envp, char **out) MD_MUSTCHECK;

#endif
