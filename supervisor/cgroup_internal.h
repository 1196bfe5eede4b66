/* cgroup_internal.h - what the cgroup*.c files share; not part of cgroup.h's API.
 *
 * Written for the split of cgroup.c (issue 11): the small cgroupfs I/O and the removal of a run
 * cgroup, which meshd's subtree (clean-up of stale runs at start) and one run's cgroup both use,
 * are to move to cgroup_run.c; until then cgroup.c defines them.
 */
#ifndef MESHD_CGROUP_INTERNAL_H
#define MESHD_CGROUP_INTERNAL_H

#include <stddef.h>
#include <sys/types.h>

struct sup_cg;

#define RUN_NAME_MAX 96 /* a run cgroup's name and its NUL (sup_cg_run_name: len >= 96 fits) */

/* Reads file `name` under dirfd (AT_FDCWD: a path) into buf, NUL-terminated.  Returns the length
 * or -errno; a file longer than cap - 1 is -EFBIG. */
ssize_t sup__cg_read_at(int dirfd, const char *name, char *buf, size_t cap);
/* Writes s to file `name` under dirfd in one write(2).  0 or -errno. */
int sup__cg_write_at(int dirfd, const char *name, const char *s);
/* cgroup.events of the cgroup open as dirfd: 1 populated, 0 empty, or a negative code. */
int sup__cg_populated_at(int dirfd);
/* Takes ownership of dirfd (the cgroup `name` in runs/): removes the cgroup now if it is empty,
 * else kills what is in it and removes it once cgroup.events says it emptied (watched on the
 * loop until sup_cg_close). */
void sup__cg_remove_when_empty(struct sup_cg *cg, int dirfd, const char *name);

#endif
