/* launch_internal.h - what launch.c's tests need and nobody else. */
#ifndef MESHD_LAUNCH_INTERNAL_H
#define MESHD_LAUNCH_INTERNAL_H

#include <stdbool.h>

/* Makes sup_launch use vfork (and the cgroup.procs write) even where clone3 would do, so the
 * tests cover both paths in one build.  Returns whether clone3 is compiled in at all. */
bool sup__launch_force_vfork(bool on);

#endif
