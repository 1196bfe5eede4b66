/* orphans.h - the children meshd did not start: grandchildren reparented to it (it is a child
 * subreaper, and PID 1 in a container), which must be reaped or they stay zombies, and which
 * must not outlive it (orphans.c).  Private to supervisor/.
 */
#ifndef MESHD_ORPHANS_H
#define MESHD_ORPHANS_H

#include <stddef.h>

enum sup_orphan_action {
    SUP_ORPHAN_REAP, /* waitpid(WNOHANG): a zombie goes, a live one stays */
    SUP_ORPHAN_TERM, /* SIGTERM (the stop) */
    SUP_ORPHAN_KILL, /* SIGKILL (past the stop's grace) */
};

/* Applies a to each child of this process (/proc/self/task/<pid>/children) whose pid is not in
 * ours[0..n) (sorted ascending: meshd's own runs, reaped through their pidfds, whose exit status
 * a waitpid here could steal).  Returns how many children it applied a to. */
int sup_orphans(const int *ours, size_t n, enum sup_orphan_action a);

#endif
