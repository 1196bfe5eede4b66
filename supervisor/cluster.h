/* cluster.h - slot claims and singleton-service leases among the nodes that share one
 * registry database (cluster.c, docs/cluster.md).  Private to supervisor/.
 */
#ifndef MESHD_CLUSTER_H
#define MESHD_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

struct sup;

/* What the cluster tells the scheduler (set by sup_start; libuv's callback style). */
struct sup_cluster_hooks {
    /* Claims work (again): the connection came up with the schema ready, or a claim batch was
     * answered.  Slots that could not be claimed may be claimed now. */
    void (*claims_back)(struct sup *sup);
    /* The claims' session came up or went down: every lease held on it is gone. */
    void (*leases_changed)(struct sup *sup, bool up);
};

/* After sup_registry_start: opens the claims' connection when the config has cluster: on and
 * the registry a database (else claims are OFFLINE and leases too). */
void sup_cluster_start(struct sup *sup, const struct sup_cluster_hooks *hooks);

/* Cluster claims (docs/cluster.md): before a scheduled slot runs, its node inserts the run's
 * row in agent_runs; the unique (job, scheduled_for) lets exactly one node win.  Claims go over
 * their own connection, so a batch of events in flight never delays a spawn. */
enum sup_claim_outcome {
    SUP_CLAIM_WON,     /* the row is ours: run it */
    SUP_CLAIM_LOST,    /* another node (or an earlier start of this one) has the slot */
    SUP_CLAIM_OFFLINE, /* the database could not be asked in time: cluster.when_offline */
};
/* Called once per claim, maybe before sup_cluster_claim returns (when it is offline).  holder: the
 * node that has the slot (LOST; may be "?"), else NULL.  job is the job's name: look it up, it
 * may be gone.  late: an answer that came after the claim timeout had already been reported
 * as OFFLINE (the callback then hears of the same claim twice). */
typedef void sup_claim_cb(struct sup *sup, const char *job, int64_t slot,
                          enum sup_claim_outcome outcome, const char *holder, bool late);
/* True when the config asks for claims and the claims' connection was opened. */
bool sup_cluster_on(const struct sup *sup);
/* Claims the slot: cb hears the outcome once the batch is answered (sup_cluster_claims_flush),
 * or at once when claims are off or closed. */
void sup_cluster_claim(struct sup *sup, const char *job, int64_t slot, const char *run_id,
                       sup_claim_cb *cb);
/* Singleton service leases: a session advisory lock per job on the claims' connection. */
enum sup_lease_answer {
    SUP_LEASE_GOT,     /* this node holds it */
    SUP_LEASE_HELD,    /* the database says another session holds it */
    SUP_LEASE_OFFLINE, /* the database could not be asked */
};
typedef void sup_lease_cb(struct sup *sup, const char *job, enum sup_lease_answer answer);
void sup_cluster_lease(struct sup *sup, const char *job, sup_lease_cb *cb);
void sup_cluster_lease_release(struct sup *sup, const char *job);
/* Sends the claims made since the last flush as one statement (run_due calls it). */
void sup_cluster_claims_flush(struct sup *sup);

#endif
