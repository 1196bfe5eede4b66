/* registry.h - the supervisor's side of the registry in PostgreSQL.
 *
 * Every registry event (node up/down, heartbeats, job state changes, run start and end, missed
 * and skipped slots, worker metrics, alerts, messages, progress) is built as one JSON object,
 * appended to the local journal (<state_dir>/journal, md_journal) and only then shipped: pending
 * events go to PostgreSQL in batches, one round trip each (SELECT meshd_apply_events($1)), and
 * are acked in the journal once the server confirmed them.  While the database is away meshd
 * keeps supervising and journalling; the journal is replayed in order when it is back, and the
 * server side is idempotent by event id, so a crash mid-replay neither loses nor duplicates.
 *
 * Nothing here blocks the loop on the database (md_db is non-blocking).  Journal writes are
 * local page-cache writes; fdatasync runs at most once a second, off the spawn path.
 *
 * Without a database (no registry.url and no $DATABASE_URL) the registry is off: nothing is
 * journalled and every function below is a cheap no-op; status lives in memory.
 */
#ifndef MESHD_REGISTRY_H
#define MESHD_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "meshd/md_status.h"
#include "history.h"

struct sup;
struct sup_cg_usage;
struct sup_registry;
struct sup_tail;

/* Opens the journal and starts connecting (if a database is configured).  Returns 0 or a
 * negative code (logged); on failure meshd runs on without a registry. */
int sup_registry_start(struct sup *sup) MD_MUSTCHECK;
/* At shutdown: records the node as down, tries for up to a second to ship what is pending, then
 * closes everything and calls done(sup).  Calls done at once when the registry is off. */
void sup_registry_stop(struct sup *sup, void (*done)(struct sup *));

/* Counters since start, for /metrics, /health and the shutdown log line. */
struct sup_reg_stats {
    bool on;                 /* a database is configured */
    bool connected;          /* the connection is up and the schema migrated */
    uint64_t events;         /* appended to the journal */
    uint64_t batches_ok;     /* round trips that applied a batch */
    uint64_t batches_failed; /* round trips that failed (batch kept, sent again) */
    uint64_t events_acked;   /* confirmed by PostgreSQL */
    uint64_t dropped;        /* dropped by the journal's bound */
    uint64_t backlog;        /* journalled, not yet confirmed */
    uint64_t backlog_bytes;
    uint64_t bound_bytes; /* the journal's bound */
    int64_t last_drop_ms; /* wall clock of the last drop at the bound, 0 if none */
};
void sup_registry_stats(const struct sup *sup, struct sup_reg_stats *out);

void sup_reg_node(struct sup *sup, const char *state);
/* A job's state, for a "job" event (all borrowed). */
struct sup_reg_job {
    const char *name;
    const char *state; /* prog_state_name() */
    int pid;           /* its primary run's, 0 when none runs */
    int64_t next_slot; /* Unix s, 0 if none */
    unsigned restarts;
};
void sup_reg_job(struct sup *sup, const struct sup_reg_job *j);
/* One execution of a run, for run_start and run_end (all borrowed). */
struct sup_reg_exec {
    const char *run_id;
    const char *exec_id; /* "<life>-<seq>" */
    int64_t slot;        /* Unix s, 0 for an unscheduled run */
    int64_t started_ms;  /* wall clock */
    int pid;
    uint64_t duration_ms; /* run_end */
    const char *result;   /* run_end: the worker's result word, or NULL */
    const char
        *summary; /* run_end: its summary object (compact JSON, <= SUP_SUMMARY_MAX) or NULL */
    const struct sup_tail *tail;      /* run_end: its last output lines */
    const struct sup_cg_usage *usage; /* run_end: what its cgroup used (flags: known) */
};
void sup_reg_run_start(struct sup *sup, const char *job, const struct sup_reg_exec *x,
                       unsigned attempt);
/* A run ended.  x is NULL when nothing was launched. */
void sup_reg_run_end(struct sup *sup, const char *job, const char *run_id,
                     const struct sup_reg_exec *x, enum sup_run_status status, int exit_code,
                     int signal, const char *reason);
/* A slot that did not run: kind is "run_missed" or "run_skipped". */
void sup_reg_slot(struct sup *sup, const char *job, const char *kind, int64_t slot,
                  const char *reason);
/* Slots from..to (Unix s, both included) of job were missed, count of them in all, for one
 * reason (a gap too long to record slot by slot: the machine slept, meshd was down or
 * overloaded).  One event, one agent_runs row (docs/registry.md). */
void sup_reg_slots_missed(struct sup *sup, const char *job, int64_t from, int64_t to,
                          uint64_t count, const char *reason);
/* A run a previous life began whose process is gone (runlog.h r, borrowed): its end, status
 * abandoned, with its own exec id, slot and start time, so the run and its execution are
 * recorded even when the previous life died before journalling its start. */
struct sup_runlog_run;
void sup_reg_run_abandoned(struct sup *sup, const struct sup_runlog_run *r, const char *reason);
/* At start-up, once the runs a previous life of this node left behind have been looked at:
 * adopted (n execution ids, borrowed) are still running and watched by this life; every other
 * run this node's earlier lives left 'running' in the registry is closed as abandoned. */
void sup_reg_runs_reconciled(struct sup *sup, const char *const *adopted, size_t n);
/* meshd's own alert about a job (jobalert.h): raises, or raises again, the alert named key
 * with severity ("critical", "warning", "info") and message; or resolves it.  An "alert" or
 * "resolve" event, as a worker's status line makes, with the job named and no run (all
 * borrowed).  Journalled as run records are: never dropped at the journal's bound, since a
 * lost raise hides a failure and a lost resolve leaves the alert open until the next one. */
void sup_reg_alert(struct sup *sup, const char *job, const char *key, const char *severity,
                   const char *message);
void sup_reg_resolve(struct sup *sup, const char *job, const char *key);
/* A worker's status line (metric, alert, resolve, message, progress, heartbeat) in a run. */
void sup_reg_status(struct sup *sup, const char *job, const char *run_id,
                    const struct md_status_event *ev);

#endif
