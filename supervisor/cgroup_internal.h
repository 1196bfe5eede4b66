/* cgroup_internal.h - what the cgroup*.c files share; not part of cgroup.h's API.
 *
 *   cgroup.c      meshd's subtree: its own cgroup found (mountinfo, /proc/self/cgroup),
 *                 delegation checked, <own>/supervisor and <own>/runs set up, the memory
 *                 controller, a previous life's runs cleaned up; sup_cg_new, sup_cg_free
 *   cgroup_run.c  one run's cgroup: its name, creation or adoption, cgroup.kill, cpu.stat and
 *                 memory.peak, its removal at once or once it empties (sup_cg_close ends
 *                 those); and the small cgroupfs I/O below, which cgroup.c uses too
 * cgroup.c calls cgroup_run.c, never the other way round (tests/layers.py).
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
