/* cgroup.h - each run in a cgroup v2 of its own, where meshd has a writable subtree.
 *
 * meshd's own cgroup is the "0::" line of /proc/self/cgroup, found under a cgroup2 mount of
 * /proc/self/mountinfo.  When it is writable (a systemd unit with Delegate=yes, a container's
 * cgroup namespace, a cgroup an operator made for meshd) meshd lays it out as
 *
 *     <own>/supervisor/          meshd itself, moved there at start (controllers can only be
 *                                enabled in <own>/cgroup.subtree_control once no process is
 *                                left in <own>: the no-internal-process rule)
 *     <own>/runs/                memory controller enabled for its children when available
 *     <own>/runs/<job>-<seq>/    one run; the child starts in it (launch.h cgroup_dir),
 *                                so nothing it forks, even after setsid, is outside it
 *
 * At the end of a run (its process exited, on its own, by timeout or by a stop) everything left
 * in its cgroup is killed with cgroup.kill; the run's CPU time (cpu.stat) and peak memory
 * (memory.peak, with the memory controller) are read when the run is recorded, then the
 * directory is removed, at once when empty, else once cgroup.events says "populated 0" (an
 * inotify watch, uv_fs_event).  Run cgroups a previous meshd left in <own>/runs are killed and
 * removed at start, but those of runs this life adopts (sup.c, runlog.h).
 *
 * meshd runs without cgroups, exactly as before, when node.cgroups is off, when it sits in the
 * root cgroup (it owns no subtree there: the root is shared with everything else on the host),
 * when the kernel lacks cgroup.kill (Linux < 5.14), or when creating the layout fails (not
 * delegated, a read-only /sys/fs/cgroup); sup_cg_new logs one line either way.
 *
 * Blocking: the functions below do small synchronous cgroupfs operations on the loop -- mkdir,
 * rmdir, open, and reads and writes of a few bytes -- tens of microseconds each, a handful per
 * run; none waits for a process.  sup_cg_new also reads /proc/self/mountinfo once.
 *
 * The parsers take text and do no I/O (tests/unit/test_cgroup.c).
 */
#ifndef MESHD_CGROUP_H
#define MESHD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshd/md_err.h"

/* ---- parsers (pure) ------------------------------------------------------------------------ */

/* One line of /proc/self/mountinfo (without its '\n'):
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
 * ROOT and MOUNTPOINT have space, tab, newline and backslash escaped as \ooo (octal).  Returns 1
 * for a cgroup2 mount, with MOUNTPOINT and ROOT unescaped into point and root; 0 for any other
 * file system type; -EINVAL for a malformed line; -ENAMETOOLONG when a path does not fit. */
int sup_cg_parse_mount(const char *line, char *point, size_t plen, char *root,
                       size_t rlen) MD_MUSTCHECK;

/* The text of /proc/self/cgroup: copies the path of the cgroup v2 line ("0::PATH") into path.
 * Returns 0, -ENOENT when there is no such line (no cgroup2 hierarchy), -EINVAL when it is not
 * an absolute path, -ENAMETOOLONG when it does not fit. */
int sup_cg_parse_self(const char *text, char *path, size_t len) MD_MUSTCHECK;

/* Where the cgroup `own` (a path in the hierarchy) is in a cgroup2 mount with mount point `point`
 * showing the hierarchy from `root`: point + the rest of own after root.  Returns 0, -ENOENT when
 * own is not under root (root "/a" holds "/a" and "/a/b", not "/ab"), -ENAMETOOLONG. */
int sup_cg_join(const char *point, const char *root, const char *own, char *out,
                size_t len) MD_MUSTCHECK;

/* What a run used: CPU time from cpu.stat, peak memory from memory.peak.  A flag is false when
 * the value could not be read (no cgroup, no memory controller). */
struct sup_cg_usage {
    bool cpu;
    bool memory;
    uint64_t usage_usec; /* user + system */
    uint64_t user_usec;
    uint64_t system_usec;
    uint64_t memory_peak; /* bytes */
};

/* The text of cpu.stat ("KEY VALUE" lines; cgroup v2 always has usage_usec, user_usec and
 * system_usec, more with the cpu controller).  Sets u->cpu and the three values; returns 0, or
 * -EINVAL (u unchanged) unless all three are there as decimal numbers. */
int sup_cg_parse_cpu_stat(const char *text, struct sup_cg_usage *u) MD_MUSTCHECK;

/* A file holding one decimal number and maybe a '\n' (memory.peak).  0 or -EINVAL. */
int sup_cg_parse_u64(const char *text, uint64_t *v) MD_MUSTCHECK;

/* The text of cgroup.events: 1 when its "populated" line says 1, 0 when 0, -EINVAL without one. */
int sup_cg_parse_populated(const char *text) MD_MUSTCHECK;

/* True when the space-separated list (cgroup.controllers) names the controller. */
bool sup_cg_has_controller(const char *list, const char *name);

/* A run cgroup's directory name: the job name with every byte outside [A-Za-z0-9_.-] (and a
 * leading '.') made '_', cut to 64 bytes, then "-<seq>".  len >= 96 always fits. */
void sup_cg_run_name(const char *job, uint64_t seq, char *buf, size_t len);

/* ---- meshd's subtree ----------------------------------------------------------------------- */

struct sup_cg_pending;

/* Read-only outside cgroup.c and cgroup_run.c. */
struct sup_cg {
    uv_loop_t *loop;
    bool on;         /* runs get cgroups of their own */
    bool memory;     /* ... with the memory controller: memory.peak is recorded */
    char *path;      /* <own>, e.g. /sys/fs/cgroup/system.slice/meshd.service; NULL when off */
    char *runs_path; /* <own>/runs; NULL when off */
    int runs_fd;     /* O_DIRECTORY on runs_path, -1 when off */
    char *why;       /* off: why; on without memory: why not; else NULL */
    uint64_t seq;    /* for run cgroup names */
    unsigned stale;  /* run cgroups of a previous meshd found at start */
    struct sup_cg_pending *pending; /* removals waiting for their cgroup to empty */
    bool closed;
};

/* Finds meshd's cgroup and sets up the layout above (moving meshd into <own>/supervisor), unless
 * enabled is false (node.cgroups: off).  Always returns a struct (caller frees with
 * sup_cg_free), on or off, and logs one line saying which and why.  Called once at start,
 * on the loop, before any run is launched.  keep: the nkeep run cgroup names (borrowed) of a
 * previous life's runs that are still alive and will be adopted; every other run cgroup there
 * is killed and removed. */
struct sup_cg *sup_cg_new(uv_loop_t *loop, bool enabled, const char *const *keep, size_t nkeep);
/* At shutdown: tries once more to remove what waits for removal and closes the watches (a
 * cgroup still populated is logged and left).  Safe to call when off. */
void sup_cg_close(struct sup_cg *cg);
/* After the loop has ended (every handle closed).  NULL is a no-op. */
void sup_cg_free(struct sup_cg *cg);

/* ---- one run's cgroup ---------------------------------------------------------------------- */

struct sup_cg_run;

/* Creates <own>/runs/<job>-<seq> (cg must be on).  Returns 0 with *out (released with
 * sup_cg_run_release), whose sup_cg_run_dirfd is what struct sup_launch.cgroup_dir takes; or
 * -errno, with nothing left behind. */
int sup_cg_run_new(struct sup_cg *cg, const char *job, struct sup_cg_run **out) MD_MUSTCHECK;
/* Takes over runs/<name>, the cgroup of a run a previous life started and this one adopts
 * (runlog.h; sup_cg_new was told to keep it).  Returns 0 with *out, or -errno. */
int sup_cg_run_adopt(struct sup_cg *cg, const char *name, struct sup_cg_run **out) MD_MUSTCHECK;
/* The directory name, for logs. */
const char *sup_cg_run_name_of(const struct sup_cg_run *r);
/* The run cgroup's directory, opened O_RDONLY|O_DIRECTORY|O_CLOEXEC (borrowed, valid until
 * sup_cg_run_release): what clone3's CLONE_INTO_CGROUP takes (launch.h). */
int sup_cg_run_dirfd(const struct sup_cg_run *r);
/* Kills every process in the run's cgroup (cgroup.kill: SIGKILL to all of them, descendants
 * included, race-free against forks).  Returns 1 when something was there to kill, 0 when it was
 * already empty, or -errno. */
int sup_cg_run_kill(struct sup_cg_run *r) MD_MUSTCHECK;
/* Reads what the run used so far into *u (flags false for what cannot be read). */
void sup_cg_run_usage(const struct sup_cg_run *r, struct sup_cg_usage *u);
/* Takes ownership of r: kills what is still in it and removes the directory, now when it is
 * empty, else once it empties (watched on the loop until sup_cg_close). */
void sup_cg_run_release(struct sup_cg_run *r);

#endif
