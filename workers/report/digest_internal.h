/* digest_internal.h - the digest's model: what digest.c reads from the registry, as plain
 * structs, and the pure functions that turn it into the three documents (digest_render.c).
 * digest.c, digest_render.c and tests/unit/test_report_digest.c include it, nothing else.
 *
 * Every string member is owned by the model (md_free; rpt_dg_free releases all); a string
 * that may be absent is NULL.  Instants are Unix ms, 0 meaning "none"; durations are ms,
 * -1 meaning "none".
 */
#ifndef MESHD_REPORT_DIGEST_INTERNAL_H
#define MESHD_REPORT_DIGEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"

/* What a job's runs are, told by the shape of their result summaries. */
enum rpt_dg_kind { DG_COMMAND, DG_SCRAPE, DG_VALIDATE, DG_REMEDIATE, DG_REFRESH, DG_NKINDS };

/* The summary members a kind's runs are counted by (summed over the window); NULL-terminated,
 * at most RPT_DG_MAX_COUNTS.  rpt_dg_kind_names[k] is the SQL/summary name of the kind. */
#define RPT_DG_MAX_COUNTS 10
extern const char *const rpt_dg_kind_names[DG_NKINDS];
extern const char *const *const rpt_dg_kind_counts[DG_NKINDS];
/* "scrape" -> DG_SCRAPE ...; NULL or unknown: DG_COMMAND. */
enum rpt_dg_kind rpt_dg_kind_of(const char *name);

/* Runs in the window, by outcome.  A gap of missed slots recorded as one row counts its slots. */
struct rpt_dg_counts {
    int64_t runs;    /* every status but missed and skipped */
    int64_t ok;      /* succeeded */
    int64_t failed;  /* failed, timed_out */
    int64_t lost;    /* abandoned, unknown */
    int64_t stopped; /* meshd stopped it (shutdown, reload, replace) */
    int64_t running;
    int64_t missed, skipped; /* slots */
    int64_t retried;         /* runs that took more than one attempt */
    int64_t retry_failures;  /* failed attempts of those runs (agent_executions) */
    int64_t duplicated;      /* runs executed by more than one meshd life */
};

struct rpt_dg_job {
    char *job;
    enum rpt_dg_kind kind; /* of its newest run with a summary in the window */
    struct rpt_dg_counts c;
    int64_t p50_ms, max_ms; /* run durations; -1: none */
    char *last_status;      /* its newest row's status in the window; NULL: no row */
    int64_t last_ok_ms;     /* end of its newest success before until (the look-back); 0: none */
    int64_t last_change_ms; /* scrape/refresh: end of its newest success that loaded a file or
                             * refreshed a view; 0: none */
    char *state;            /* agent_registry: its worst state over the nodes (fatal first) */
    char *state_node;       /* the node of that state */
    int64_t next_run_ms;    /* agent_registry: the earliest next_run_at; 0: none */
};

/* A failed run, or one of the longest. */
struct rpt_dg_run {
    char *job, *run_id, *node, *status;
    char *why; /* one line: the reason, the summary's first failure, the last output line */
    int exit_code, signal; /* -1: none */
    int64_t started_ms, scheduled_ms, duration_ms;
};

/* Missed or skipped slots of one job for one reason. */
struct rpt_dg_slots {
    char *job, *status, *reason;
    int64_t slots, first_ms, last_ms;
};

struct rpt_dg_alert {
    char *severity, *key, *job, *node, *message;
    int64_t count, opened_ms;
};

struct rpt_dg_node {
    char *node, *state, *environment;
    int64_t heartbeat_ms;
};

/* One thing a worker's summary lists: a failing check, a file that failed, a view that failed,
 * a fix and what became of it. */
struct rpt_dg_item {
    char *job;     /* remediation items: the job; else NULL */
    char *what;    /* check key, "source/file", view, fix */
    char *outcome; /* fail, warn, error, refused; failed, rejected; applied, planned ... */
    char *text;    /* the error, the check's description, the plan and why */
    int64_t rows;  /* -1: none */
    int64_t at_ms;
};

/* A worker job's results in the window: its counts summed over its runs, and what its newest
 * run lists (for remediation: the fixes of every run, in rpt_dg.fixes). */
struct rpt_dg_work {
    char *job;
    enum rpt_dg_kind kind;
    char *suite;                     /* validate, remediate: the newest run's suite */
    int64_t runs, bad_runs;          /* runs, and runs whose summary reports a failure */
    int64_t sum[RPT_DG_MAX_COUNTS];  /* rpt_dg_kind_counts[kind] summed over the runs */
    int64_t last[RPT_DG_MAX_COUNTS]; /* the same, of the newest run (-1: not in its summary) */
    int64_t last_ms;                 /* the newest run's record time */
    char *last_status;               /* its status */
    struct rpt_dg_item *items;       /* of the newest run: failing checks, failed files ... */
    size_t nitems;
    int64_t items_total; /* before the cap */
};

/* The whole digest, as read. */
struct rpt_dg {
    int64_t since_ms, until_ms, built_ms; /* built_ms: the snapshot's now() */
    int64_t top;
    const char *node, *external_url; /* borrowed (the opts') */
    struct rpt_dg_counts t;          /* every job */
    int64_t jobs_total;              /* jobs with a row in the window */
    struct rpt_dg_job *jobs;         /* with a row in the window, or in agent_registry */
    size_t njobs;
    struct rpt_dg_run *failures; /* newest first; t.failed + t.lost in all */
    size_t nfailures;
    struct rpt_dg_slots *slots; /* most slots first */
    size_t nslots;
    int64_t slots_total; /* (job, status, reason) groups */
    struct rpt_dg_run *longest;
    size_t nlongest;
    struct rpt_dg_alert *alerts; /* open, critical first */
    size_t nalerts;
    int64_t open[3];                 /* open now (opened before until): critical, warning, info */
    int64_t raised, raised_resolved; /* opened in the window, and of those resolved since */
    struct rpt_dg_node *nodes;
    size_t nnodes;
    int64_t nodes_total;
    struct rpt_dg_work *work; /* scrape, validate, remediate, refresh jobs */
    size_t nwork;
    struct rpt_dg_item *fixes; /* remediation items of the window, newest first */
    size_t nfixes;
    int64_t fixes_total;
};

void rpt_dg_free(struct rpt_dg *d);

/* Renders d into out (its strings and counts; out zeroed first).  Pure: no clock, no I/O. */
void rpt_dg_render(const struct rpt_dg *d, struct rpt_digest_doc *out);

/* The verdict line alone ("OK: ..." / "ATTENTION: ..."), a new string; *attention set. */
char *rpt_dg_verdict(const struct rpt_dg *d, bool *attention);

/* Reads a result summary (JSON text of kind k; NULL or not JSON: nothing) into w: w->suite,
 * w->last[] and the items of what failed (validate: failing checks, fail first; scrape: the
 * files that failed; refresh: the views and other items that failed), at most max of them,
 * w->items_total counting all.  Replaces what w held of these. */
void rpt_dg_work_from_summary(struct rpt_dg_work *w, const char *summary, size_t max);

/* One line saying why a run failed: its reason; else the first failure its summary names
 * (summary: JSON text or NULL); else the last non-empty line of output (the output tail's end,
 * or NULL).  A new string, or NULL when there is nothing to say. */
char *rpt_dg_run_why(const char *reason, const char *summary, const char *output);

/* ---- the pieces, for the tests ---------------------------------------------------------- */

/* s as one clean line of at most max code points (max 0: no limit): control characters and
 * line breaks become spaces, invalid UTF-8 bytes '?', trailing white space dropped, and a cut
 * ends in "...".  NULL gives "".  A new string. */
char *rpt_dg_clean(const char *s, size_t max);
/* Code points of UTF-8 text (which rpt_dg_clean made valid). */
size_t rpt_dg_width(const char *s);
/* HTML text and attribute escaping: & < > " ' as entities.  A new string. */
char *rpt_dg_html_escape(const char *s);
/* Markdown (CommonMark, GitHub tables) escaping: ASCII punctuation with a meaning (\ ` * _ [ ]
 * < > | # ~ &) behind a backslash, so a cell shows its text as written and '|' never splits
 * a table cell.  A new string. */
char *rpt_dg_md_escape(const char *s);
/* 1204 -> "1,204"; negative numbers with their sign. */
void rpt_dg_fmt_count(int64_t n, char *buf, size_t cap);
/* 850 -> "850ms", 12300 -> "12.3s", 723000 -> "12m03s", 11040000 -> "3h04m", 2 days -> "2d00h";
 * negative: "-". */
void rpt_dg_fmt_duration(int64_t ms, char *buf, size_t cap);
/* "2026-12-06 07:00" (UTC, to the minute); 0: "-". */
void rpt_dg_fmt_time(int64_t ms, char *buf, size_t cap);

#endif
