/* bus.h - the message bus (agent_messages; bus.c, docs/cluster.md).  Private to supervisor/. */
#ifndef MESHD_BUS_H
#define MESHD_BUS_H

#include <stdbool.h>

struct sup;
struct sup_job;

/* After sup_registry_start (and sup_cluster_start): the bus of a node with a registry; its own
 * connection when the config has on: jobs. */
void sup_bus_start(struct sup *sup);
/* Messages of `type` (NULL: any) may be pending: each idle, enabled `on:` job of that type
 * fetches one. */
void sup_bus_wake(struct sup *sup, const char *type);
/* The bus's connection is up with the schema ready. */
bool sup_bus_up(const struct sup *sup);
/* job_hooks.msg_finished: the run of job's message is over (no retry pending).  Writes the
 * outcome (job->msg_outcome: done, failed with the error, or pending again when meshd stopped
 * it), clears the job's message and wakes the bus for the next. */
void sup_bus_msg_finished(struct sup_job *job);

#endif
