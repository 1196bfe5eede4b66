/* launch.h - start a child that shares meshd's memory until its exec, and signal it.
 *
 * Why this way: the child borrows meshd's address space until it execs (clone3 with CLONE_VM |
 * CLONE_VFORK, or vfork), so starting it copies no page tables (a fork copies those of every
 * mapped library) and nothing has to be torn down afterwards.  meshd waits only for the child's
 * own few system calls and its execve, and that wait is what makes the launch exact: when
 * sup_launch returns, the child already leads its own session and process group (so a group
 * signal sent at once reaches it), sits in its cgroup (created there by CLONE_INTO_CGROUP: no
 * grandchild can escape, and no cgroup migration to wait for), and has either exec'd or
 * failed - the failure comes back as a return value, naming the step.  glibc's posix_spawn
 * works much the same way but cannot create a child in a cgroup, change ids without a fork, or
 * say which step failed; docs/benchmarks.md compares them.
 *
 * Between the clone and the exec the child runs only raw system calls on memory that belongs
 * to meshd: no allocation, no stdio, no locks, nothing that changes state the parent relies on
 * (errno is the one exception, and meshd reads it only after the call).  Every signal is
 * blocked across the clone, so none of meshd's handlers can run in the child; the child puts
 * every disposition back to the default before unblocking.
 */
#ifndef MESHD_LAUNCH_H
#define MESHD_LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>

#include "meshd/md_err.h"

struct sup_launch {
    const char *path;  /* executable, already resolved (sup_launch_resolve) */
    char *const *argv; /* NULL-terminated */
    char *const *envp; /* NULL-terminated */
    const char *cwd;   /* NULL: meshd's */
    bool set_ids;      /* switch to uid/gid (dropping supplementary groups) */
    uid_t uid;
    gid_t gid;
    int fds[4];     /* become the child's fds 0..3; closed by the caller afterwards */
    int cgroup_dir; /* -1, or the run cgroup's directory (O_DIRECTORY): the child starts in
                     * it (or, where clone3 cannot be used, moves itself there before its
                     * exec), so nothing it forks escapes; borrowed */
    /* NULL, or a line the child writes to note_fd (a file opened O_APPEND) just before its
     * execve: note_head, " <pid> <starttime>", note_tail (which ends the line); starttime is
     * /proc/self/stat field 22, 0 if unreadable.  It is the run's own record that it started
     * (runlog.h): the record exists exactly when the run does, even if meshd dies the moment
     * after. */
    const char *note_head, *note_tail;
    int note_fd;
};

/* What sup_launch started, or where it failed. */
struct sup_launched {
    pid_t pid;        /* the child, leader of its own session and process group */
    int pidfd;        /* a pidfd for it (close-on-exec), readable once it has exited */
    const char *step; /* on failure: the step that failed ("chdir", "execve", ...), static */
};

/* Starts l->path in a new session with fds 0..3 installed, every signal disposition at its
 * default and an empty signal mask, in l->cwd, in the cgroup and under the ids l asks for.
 * Returns 0 once the child has exec'd, or a negative errno with out->step set: a child that
 * failed before its exec has already been reaped, so nothing is left behind.  Called on the
 * loop; it waits only for the child's exec (its cost is measured in docs/benchmarks.md). */
int sup_launch(const struct sup_launch *l, struct sup_launched *out) MD_MUSTCHECK;

/* Sends sig to the child's process group (group) or to the child alone.  A group that does
 * not exist (its leader gone and reaped, or a child not started by sup_launch) falls back to
 * the pid itself, so a signal is never dropped while the child lives.  Returns 0 when the
 * group got it, 1 when only the pid did, or a negative errno (-ESRCH: nobody is left). */
int sup_launch_kill(pid_t pid, bool group, int sig);

/* Raises meshd's soft limit on open files to its hard limit (capped at 1 << 20): a run holds
 * four or five descriptors while it lives, so the common soft limit of 1024 would stop meshd
 * at ~200 concurrent runs.  Children get the original soft limit back before their exec: a
 * program written for select() or that loops over every possible descriptor must not see a
 * raised one (systemd's advice).  Returns 1 when raised (with *from, *to), 0 when there was
 * nothing to raise, or -errno.  Called once, at start. */
int sup_launch_raise_fd_limit(unsigned long *from, unsigned long *to) MD_MUSTCHECK;

/* pipe(2) with both ends close-on-exec, so no other child inherits them.  0 or -errno. */
int sup_launch_pipe(int fds[2]) MD_MUSTCHECK;

/* Finds `file` as execvp would: a name with a '/' is used as is, otherwise each directory of
 * PATH (taken from envp, else meshd's environment, else "/usr/local/bin:/usr/bin:/bin") is
 * tried for an executable regular file.  Returns 0 and *out (caller frees with md_free) or
 * -ENOENT / -EACCES. */
int sup_launch_resolve(const char *file, char *const *envp, char **out) MD_MUSTCHECK;

#endif
