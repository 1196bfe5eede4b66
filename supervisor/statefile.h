/* statefile.h - <state_dir>/schedule.state: each cron job's last handled slot and whether the
 * operator paused it, so catch-up after downtime knows where to resume (statefile.c).
 *
 * One line per job, "name<TAB>slot[<TAB>paused]", rewritten whole (temp file + rename) after
 * each wake that handled a slot.  It is a few hundred bytes into the page cache, without fsync:
 * a crash may lose the last write, which at worst turns one catch-up into a "missed" line.
 */
#ifndef MESHD_STATEFILE_H
#define MESHD_STATEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sup_state_entry {
    const char *job;
    int64_t last_slot; /* Unix s, 0 if none */
    bool paused;
};

/* Writes the file (failures are logged, not returned: the schedule goes on). */
void sup_statefile_save(const char *path, const struct sup_state_entry *v, size_t n);
/* Calls cb for each valid line of the file; a missing file is no entry, bad lines are skipped. */
void sup_statefile_load(const char *path,
                        void (*cb)(void *ud, const char *job, int64_t last_slot, bool paused),
                        void *ud);

#endif
