/* plan.h - meshd-report's planner and delivery over the registry (plan.c, deliver.c). */
#ifndef MESHD_REPORT_PLAN_H
#define MESHD_REPORT_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"
#include "meshd/md_worker.h"
#include "digest.h"
#include "report.h"
#include "route.h"

/* First key of meshd-report's advisory locks: (key, 0) the schema set-up, (key, 1) planning. */
#define REPORT_KEYSPACE 0x6d727074
#define REPORT_KEYSPACE_SQL "1836216436" /* the same, as SQL text */

/* "{a,b}": the configured receivers' names as a text[] literal (names are [A-Za-z0-9_.-]: no
 * quoting needed).  md_free. */
char *rpt_receiver_names(const struct rpt_cfg *cfg);

/* One note's JSON text (cJSON_free it) for a due group: send.h's format.  idem gets the
 * idempotency key, *raised_ms the newest alert change it reports. */
char *rpt_note_build(const struct rpt_cfg *cfg, const struct rpt_alert *alerts,
                     const struct rpt_due *d, const struct rpt_group *g, const char *node,
                     int64_t now_ms, char *idem, size_t idem_cap, int64_t *raised_ms);

/* One planning round in its own transaction: what fell due is in the outbox when it returns 0.
 * *planned: notifications added; *next_ms: when something next falls due (0: nothing waits);
 * *now_ms: the database's clock the round used. */
int rpt_plan_once(PGconn *db, const struct rpt_cfg *cfg, const char *node, size_t *planned,
                  int64_t *next_ms, int64_t *now_ms, struct md_error *err) MD_MUSTCHECK;

/* The digest into the outbox, one notification per digest receiver (idempotent per receiver
 * and window end). */
int rpt_digest_enqueue(PGconn *db, const struct rpt_cfg *cfg, const char *node,
                       const struct rpt_digest_opts *o, const struct rpt_digest_doc *doc,
                       struct md_error *err) MD_MUSTCHECK;

/* What a delivery round did. */
struct rpt_deliver_stats {
    size_t sent, retried, failed, expired;
    int64_t next_ms;  /* the earliest pending notification's next attempt (0: none) */
    uint8_t said[64]; /* per receiver: what this run told meshd about it (deliver.c) */
};

/* Sends every pending notification of cfg's receivers that is due, one at a time, each
 * claimed with FOR UPDATE SKIP LOCKED and its row lock held across the send, oldest first
 * and in order within a group; records each answer; backs off a receiver that failed.
 * Adds to *st.  Returns 0, -ECANCELED after a stop (the notification in flight stays
 * pending), or a registry error. */
int rpt_deliver(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, const char *node,
                struct rpt_deliver_stats *st, struct md_error *err) MD_MUSTCHECK;

#endif
