/* bus_internal.h - what bus.c's tests need; not part of bus.h's API. */
#ifndef MESHD_BUS_INTERNAL_H
#define MESHD_BUS_INTERNAL_H

/* The claim an `on:` job sends for its next message (sql/0005's order and targets).
 * Parameters: $1 the job's on: type, $2 the claimer "node/job" (claimed_by), $3 the node's
 * name, $4 the job's name.  Answers zero rows, or one: id, payload as text, priority. */
extern const char sup_bus_claim_sql[];

#endif
