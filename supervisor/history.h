/* history.h - what meshd remembers of a job in memory, for /status, /health, /metrics and
 * `meshctl logs`: how a run ended, a run's output tail, the last SUP_RUN_HISTORY finished runs,
 * the open alerts, and the histograms.
 *
 * Pure (L0, docs/architecture.md): no clock, no syscalls; the caller hands in the instants.
 * Everything is bounded; the registry in PostgreSQL keeps the full history.
 */
#ifndef MESHD_HISTORY_H
#define MESHD_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "cgroup.h"

#define SUP_TAIL_LINES 20 /* last output lines kept per run */
#define SUP_RUN_ID_MAX 128
#define SUP_RUN_HISTORY 5  /* finished runs kept per job */
#define SUP_ALERTS_MAX 64  /* open alerts kept per job (the oldest goes beyond that) */
#define SUP_DUR_BUCKETS 13 /* run-duration histogram */
#define SUP_LAG_BUCKETS 12 /* firing-lag histogram */

/* How a run ended.  The names (sup_run_status_name) are the registry's agent_runs.status. */
enum sup_run_status {
    RUN_SUCCEEDED,
    RUN_FAILED,
    RUN_TIMED_OUT,
    RUN_STOPPED,   /* stopped by meshd: shutdown, reload, replace */
    RUN_UNKNOWN,   /* adopted from a previous life: it ended, its exit status could not be had */
    RUN_ABANDONED, /* a previous life's run that ended while no meshd watched it */
};

/* "succeeded", "failed", "timed_out", "stopped", "unknown", "abandoned" (static). */
const char *sup_run_status_name(enum sup_run_status s);

/* A run's last output lines, a ring: each line escaped as in the log (md_log_escape: valid
 * UTF-8 without control bytes) and cut at the line cap.  A slot's buffer is reused line after
 * line, so a flood costs no allocation per line.  Zeroed is empty. */
struct sup_tail {
    char *line[SUP_TAIL_LINES];
    size_t cap[SUP_TAIL_LINES]; /* bytes allocated at line[i] */
    unsigned next;              /* where the next line goes */
    unsigned n;                 /* lines kept, at most SUP_TAIL_LINES */
};

/* Keeps line[0..len) (raw bytes, escaped here), cut at max bytes of escaped text (a line is
 * never cut shorter than 127 bytes: the smallest buffer). */
void sup_tail_push(struct sup_tail *t, const char *line, size_t len, size_t max);
/* The k-th oldest line kept (k < t->n), borrowed until the next push or clear. */
const char *sup_tail_line(const struct sup_tail *t, unsigned k);
void sup_tail_clear(struct sup_tail *t);

/* A finished run's last output lines, oldest first: the strings of a tail without the ring's
 * spare buffers (a record is kept long after its run; the buffers' sizes are not). */
struct sup_lines {
    char *line[SUP_TAIL_LINES];
    unsigned n;
};

/* Moves the tail's lines into *to (which must be empty), oldest first; the tail is left empty,
 * ready for more. */
void sup_tail_move(struct sup_lines *to, struct sup_tail *from);
void sup_lines_clear(struct sup_lines *l);

/* A finished run. */
struct sup_run_rec {
    char run_id[SUP_RUN_ID_MAX];
    int64_t slot;       /* scheduled instant (Unix s), 0 for unscheduled runs */
    int64_t started_ms; /* wall clock, Unix ms; 0 if nothing was launched */
    int64_t finished_ms;
    enum sup_run_status status;
    int exit_code, signal;
    uint64_t duration_ms;
    struct sup_cg_usage usage; /* CPU time and peak memory (flags false: not known) */
    struct sup_lines lines;    /* the run's last output lines */
};

/* An open alert raised by a worker ({"event":"alert"}), until {"event":"resolve"}. */
struct sup_alert {
    struct sup_alert *next;
    char *key, *message;
    int severity;      /* enum md_status_severity */
    int64_t opened_ms; /* wall clock, Unix ms */
};

/* A job's memory.  Zeroed is empty; sup_history_free releases it. */
struct sup_history {
    struct sup_run_rec rec[SUP_RUN_HISTORY]; /* ring: rec[next] is the oldest when full */
    unsigned n, next;
    struct sup_alert *alerts; /* newest first */
    unsigned nalerts;
    uint64_t dur_bucket[SUP_DUR_BUCKETS]; /* per bucket; cumulative counts are made rendering */
    double dur_sum;
    uint64_t dur_count;
};

/* A cleared record to fill in for a run that finished, the oldest dropped when full. */
struct sup_run_rec *sup_history_add(struct sup_history *h);
/* The k-th oldest run kept (k < h->n); the newest is k = h->n - 1. */
const struct sup_run_rec *sup_history_run(const struct sup_history *h, unsigned k);
/* The newest run, or NULL. */
const struct sup_run_rec *sup_history_last(const struct sup_history *h);
/* Counts a run's duration in the histogram. */
void sup_history_duration(struct sup_history *h, double secs);
/* Opens an alert, or updates the open one of that key (keeping when it opened); beyond
 * SUP_ALERTS_MAX the oldest goes.  message may be NULL. */
void sup_history_alert(struct sup_history *h, const char *key, const char *message, int severity,
                       int64_t now_ms);
/* Resolves the open alert of that key, if any. */
void sup_history_resolve(struct sup_history *h, const char *key);
void sup_history_free(struct sup_history *h);

/* Upper bounds (seconds) of the histograms' finite buckets, and the bucket of a value (n: the
 * +Inf bucket). */
extern const double sup_dur_bounds[SUP_DUR_BUCKETS - 1];
extern const double sup_lag_bounds[SUP_LAG_BUCKETS - 1];
size_t sup_bucket_of(double v, const double *bounds, size_t n);

#endif
