/* control.h - operator control of one job (control.c), for the API.  Private to supervisor/.
 *
 * Each returns 0, or a negative code with a message in err: -EBUSY (a run is in progress, or
 * another node holds a singleton's lease), -EALREADY (nothing to do), -ESHUTDOWN (meshd is
 * stopping).
 */
#ifndef MESHD_CONTROL_H
#define MESHD_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

struct sup_job;

/* Starts an unscheduled run now; run_id receives its id. */
int sup_job_run_now(struct sup_job *job, char *run_id, size_t len, char *err, size_t errlen);
/* No scheduled runs, a service stays stopped; persisted in the state file. */
int sup_job_set_paused(struct sup_job *job, bool paused);
int sup_job_restart(struct sup_job *job, char *err, size_t errlen);
int sup_job_stop(struct sup_job *job, char *err, size_t errlen);

#endif
