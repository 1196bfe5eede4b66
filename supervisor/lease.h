/* lease.h - singleton services in a cluster: they run only on the node that holds their lease
 * (lease.c).  Private to supervisor/.
 */
#ifndef MESHD_LEASE_H
#define MESHD_LEASE_H

#include <stdbool.h>
#include <uv.h>

struct sup;
struct sup_job;

/* A singleton service in a cluster with a registry: it runs only on the node holding its
 * lease. */
bool sup_lease_needed(const struct sup_job *job);
/* job_hooks.service_start: starts a service, or asks for its lease first (a singleton in a
 * cluster); it starts when the lease is ours. */
void sup_service_start(struct sup_job *job);
/* cluster_hooks.leases_changed: the claims' session came up (ask for the leases wanted) or went
 * down (every lease is gone: runs stop or go on per cluster.when_offline). */
void sup_leases_changed(struct sup *sup, bool up);
/* The retry timer runs only while some singleton service may need a lease (start, reload). */
void sup_lease_timer_update(struct sup *sup);
void sup_lease_init(struct sup *sup);
void sup_lease_close(struct sup *sup, uv_close_cb cb);

#endif
