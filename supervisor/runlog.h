/* runlog.h - the runs this node has started and not yet recorded as ended, on disk.
 *
 * Why: a meshd killed in the middle of a burst of spawns must never, in its next life, run a
 * slot again whose run had started, nor record it as missed, nor leave its registry row
 * 'running' for ever; and the run itself may still be running (reparented, but alive).  So
 * before each spawn the run's intent is appended to <state_dir>/runs, after the spawn its pid
 * and start time (written by the run itself, before its exec), and once its end is recorded an
 * end mark.  The next life reads the file:
 * every intent without an end mark is a run it must reconcile (sup.c: adopt or record).
 *
 * The file, one record per line, fields separated by one space (job names and run ids hold
 * none):
 *
 *   B <exec> <kind> <slot> <started_ms> <job> <run_id>   the intent, written before the spawn
 *   P <exec> <pid> <starttime> <boot> <cgroup>            written by the run itself just before
 *                                                         its exec: its start time
 *                                                         (/proc/PID/stat field 22), the boot
 *                                                         id, its run cgroup's name or -
 *   E <exec>                                              the run's end was recorded
 *
 * kind is s (a scheduled slot), m (manual), v (service), e (an on: job's message run).
 *
 * Durability: each record is one write(2) into the page cache before the call returns, so a
 * crash of meshd (SIGKILL, abort) loses nothing; an fdatasync follows within SYNC_MS, off the
 * spawn path (a power loss may lose the last second, as the registry journal may).  A torn last
 * line is ignored.  The file is rewritten with only the live runs when it has grown past a
 * bound, and at open.
 *
 * All calls do small blocking file I/O on the loop (local disk, page cache): a documented
 * exception to "nothing blocks", like the journal's.
 */
#ifndef MESHD_RUNLOG_H
#define MESHD_RUNLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "meshd/md_err.h"
#include "sup.h"

#define SUP_RUNLOG_CG_MAX 96

/* One run, as the file has it. */
struct sup_runlog_run {
    char exec_id[SUP_EXEC_ID_MAX];
    char kind;          /* 's' 'm' 'v' 'e' */
    int64_t slot;       /* Unix s, 0 if unscheduled */
    int64_t started_ms; /* wall clock at the intent */
    char job[65];
    char run_id[SUP_RUN_ID_MAX];
    bool has_pid; /* a P record was written */
    int pid;
    uint64_t starttime;             /* clock ticks after boot (/proc/PID/stat field 22) */
    char boot[40];                  /* /proc/sys/kernel/random/boot_id */
    char cgroup[SUP_RUNLOG_CG_MAX]; /* the run cgroup's name, "" if none */
};

struct sup_runlog;

/* Opens <dir>/runs, creating it.  *left (caller frees with md_free) receives the *nleft runs a
 * previous life began and did not end; they stay in the file until sup_runlog_end.  Returns 0
 * or -errno (logged; meshd then runs without crash safety). */
int sup_runlog_open(uv_loop_t *loop, const char *dir, struct sup_runlog **out,
                    struct sup_runlog_run **left, size_t *nleft) MD_MUSTCHECK;

/* Appends the intent of a run about to be spawned (r: exec_id, kind, slot, started_ms, job,
 * run_id).  0 or -errno (logged once; the spawn goes on). */
int sup_runlog_begin(struct sup_runlog *rl, const struct sup_runlog_run *r);

/* The P record of a run begun with sup_runlog_begin is written by the run itself, just before
 * its exec (launch.h note_fd): so it exists exactly when the run does, even when meshd dies the
 * moment after.  This fills the launch's note: *fd (borrowed), head "P <exec>" and tail
 * " <boot> <cgroup or ->\n" (cgroup: the run cgroup's name or NULL).  Returns false (no note)
 * when the file is not open. */
bool sup_runlog_note(struct sup_runlog *rl, const char *exec_id, const char *cgroup, int *fd,
                     char *head, size_t hn, char *tail, size_t tn);

/* The run was launched as pid (after a launch that carried the note): the record in memory
 * takes the pid and start time, and the file is synced within SYNC_MS. */
void sup_runlog_launched(struct sup_runlog *rl, const char *exec_id, int pid, const char *cgroup);

/* The run's end was recorded (or it never launched). */
int sup_runlog_end(struct sup_runlog *rl, const char *exec_id);

/* Whether pid is still the process r describes (same boot, same start time). */
bool sup_runlog_alive(const struct sup_runlog_run *r);

/* Reads /proc/PID/stat's start time.  0 or -errno. */
int sup_runlog_starttime(int pid, uint64_t *out);

/* Syncs, closes the file and frees rl once its timer has closed (on the loop).  NULL is a
 * no-op. */
void sup_runlog_close(struct sup_runlog *rl);

/* Parses one line into *r, or returns its record type: 'B', 'P', 'E' with the fields it has
 * (for P and E only exec_id and the P fields), or -1 for a malformed line.  Pure. */
int sup_runlog_parse(const char *line, struct sup_runlog_run *r);

#endif
