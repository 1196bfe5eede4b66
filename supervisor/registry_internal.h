/* registry_internal.h - what the registry's own files share: regevent.c builds the events
 * registry.c journals and ships; cluster.c and bus.c run their own connections next to the
 * registry's, and hear of it through a struct sup_reg_watch.  Not for anyone else.
 */
#ifndef MESHD_REGISTRY_INTERNAL_H
#define MESHD_REGISTRY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_db.h"
#include "meshd/md_journal.h"

struct cJSON;
struct sup;

/* The statement a claim batch is sent as (7 text parameters: run ids, jobs and slot instants
 * as PostgreSQL arrays, the node, its life, the claim's order key: ISO time and journal id).
 * One answer row per slot, in the order of the arrays: run_id, won ("t"/"f"), holder. */
extern const char sup_reg_claim_sql[];

/* ---- events (registry.c) --------------------------------------------------------------- */

/* A new event of that type with its common fields (at, node, env, life). */
struct cJSON *sup_reg_event_new(struct sup *sup, const char *type);
/* Journals the event (takes o) and arms the shipping; dropped when the registry is off or
 * closed. */
void sup_reg_emit(struct sup *sup, struct cJSON *o, enum md_jprio prio);

/* ---- for the registry's other connections (cluster.c, bus.c) ---------------------------- */

/* SQLSTATEs that mean "try again" (deadlock, serialization failure), not "the registry is
 * away"; a statement that fails so is sent again at once, at most SUP_REG_RETRY_MAX times. */
#define SUP_REG_RETRY_MAX 5
bool sup_reg_retryable(const char *sqlstate);
/* Text from the server for a log line, escaped (md_log_escape): an error message may quote the
 * data that caused it.  In one of four static buffers, valid until the fifth call. */
const char *sup_reg_esc(const char *v);
const char *sup_reg_field(const PGresult *res, int code);

/* The registry's connection settings (conninfo and the like) for another connection of this
 * node: only state_cb, notify_cb, ud and on_connect are left to set. */
void sup_registry_db_config(const struct sup *sup, struct md_db_config *out);
/* The registry's own connection, or NULL (no database, or it could not be opened). */
struct md_db *sup_registry_db(const struct sup *sup);
/* The schema is migrated and the registry not closing: statements may be sent. */
bool sup_registry_ready(const struct sup *sup);
/* The id of the last event journalled (the claims' order key). */
uint64_t sup_registry_last_id(const struct sup *sup);
/* The registry waits for every hold to be released before it is freed and calls its done. */
void sup_registry_hold(struct sup *sup);
void sup_registry_release(struct sup *sup);

/* What the registry tells its neighbours (any callback may be NULL).  ud is the watch's. */
struct sup_reg_watch {
    /* The registry's connection changed state (md_db.h). */
    void (*session)(void *ud, enum md_db_state st);
    /* The schema is migrated: statements may be sent from now on. */
    void (*ready)(void *ud);
    /* A NOTIFY arrived on the registry's connection. */
    void (*notify)(void *ud, const char *channel, const char *payload);
    /* The heartbeat tick (registry.heartbeat). */
    void (*tick)(void *ud);
    /* The registry closes: close your connections (with a hold until they are closed). */
    void (*closing)(void *ud);
    /* Every hold is released; the registry is freed next. */
    void (*closed)(void *ud);
    void *ud;
    struct sup_reg_watch *next;
};
/* Adds w (borrowed until closed) to the registry's watchers, called in the order added. */
void sup_registry_watch(struct sup *sup, struct sup_reg_watch *w);

#endif
