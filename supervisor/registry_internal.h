/* registry_internal.h - what registry.c's tests need and nothing else does. */
#ifndef MESHD_REGISTRY_INTERNAL_H
#define MESHD_REGISTRY_INTERNAL_H

/* The statement a claim batch is sent as (7 text parameters: run ids, jobs and slot instants
 * as PostgreSQL arrays, the node, its life, the claim's order key: ISO time and journal id).
 * One answer row per slot, in the order of the arrays: run_id, won ("t"/"f"), holder. */
extern const char sup_reg_claim_sql[];

#endif
