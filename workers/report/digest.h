/* digest.h - meshd-report's digest: the registry's window (a day, by default) in one page, as
 * plain text, HTML and Markdown, answering "did last night's load happen, and is the data
 * good?" at a glance.  docs/report.md ("The digest") is the user's page.
 *
 * Everything comes from the registry (agent_runs, agent_executions, agent_alerts,
 * agent_registry), read in one REPEATABLE READ READ ONLY transaction, so every number in the
 * digest is of one snapshot; what a worker did comes from its runs' result summaries
 * (agent_runs.summary: meshd-scrape's files and rows, meshd-validate's check outcomes,
 * meshd-remediate's fixes, meshd-refresh's views).  The page, in order:
 *
 *   the verdict    "OK: 1,204 runs, 0 failed" or "ATTENTION: 3 failed runs, 2 open critical
 *                  alerts, load 'nightly-load' did not succeed in the window"
 *   the counts     runs by outcome, slots missed and skipped, retries, alerts
 *   jobs           per job, failures first: runs, ok, failed, missed, skipped, last, durations
 *   failed runs    newest first, with why (exit code, reason, the summary's first failure)
 *   missed and skipped slots, by job and reason
 *   longest runs
 *   data freshness the last success and the last data change of the loads (scrape) and
 *                  refreshes, and of every job without a success in the window
 *   validation     per suite: outcomes in the window and what the latest run found failing
 *   remediation    the fixes planned, applied, refused
 *   open alerts    critical first
 *   nodes          state and last heartbeat
 *
 * A run is in the window when the registry recorded it in the window (agent_runs.created_at:
 * its slot's claim or its first event, which is its start unless meshd journalled through a
 * database outage), so consecutive windows count every run exactly once; its status is the
 * status now.  Lists are capped (top; the jobs table at RPT_DIGEST_MAX_JOBS) and say how many
 * they leave out ("and 37 more"), so the digest of a huge registry stays a readable size.
 *
 * Blocking (libpq): for the worker, never for an event loop.
 */
#ifndef MESHD_REPORT_DIGEST_H
#define MESHD_REPORT_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"

/* Rows of the jobs table at most (failures first, so the ones left out are the quiet ones). */
#define RPT_DIGEST_MAX_JOBS 50
/* top is clamped to 1..RPT_DIGEST_MAX_TOP (0 or less: RPT_DIGEST_DEFAULT_TOP). */
#define RPT_DIGEST_MAX_TOP 100
#define RPT_DIGEST_DEFAULT_TOP 10

struct rpt_digest_opts {
    int64_t since_ms, until_ms; /* the window [since, until), Unix ms; since < until */
    int64_t top;                /* entries of each list (failures, slots, longest, alerts ...) */
    const char *node;           /* the meshd node building it, named in the footer; NULL: none */
    const char *external_url;   /* meshd's status page: links in the HTML and Markdown; NULL */
};

/* The digest.  The strings are the caller's (rpt_digest_doc_free, or md_free each). */
struct rpt_digest_doc {
    char *subject;  /* one line: "meshd digest 2026-12-06: ATTENTION: 3 failed runs, ..." */
    char *text;     /* plain text: UTF-8 without control characters but '\n', aligned columns */
    char *html;     /* a whole HTML document (inline styles, for e-mail) */
    char *markdown; /* CommonMark with GitHub tables */
    bool attention; /* the verdict is ATTENTION (else OK) */
    /* The counts of the verdict, for the summary and the caller's log line. */
    int64_t runs;            /* runs started in the window (every status but missed, skipped) */
    int64_t ok;              /* succeeded */
    int64_t failed;          /* failed or timed out */
    int64_t lost;            /* abandoned or unknown: ended unobserved */
    int64_t missed, skipped; /* slots */
    int64_t jobs;            /* jobs with a run or a slot in the window */
    int64_t open_critical, open_alerts; /* alerts open now (opened before until) */
};

/* Builds the digest of o's window from the registry (borrowed, connected, idle: no transaction
 * open).  Runs one REPEATABLE READ READ ONLY transaction (with a statement_timeout of 120 s
 * unless the session has one).  Fills *out (zeroed first; free it with rpt_digest_doc_free,
 * also after a failure).  Returns 0, -EINVAL for a bad window (err says so), or a code of
 * md_pq_exec (MD_EDB, MD_EDBDOWN, -ECANCELED after a stop ...) with err the server's words. */
int rpt_digest_build(PGconn *registry, const struct rpt_digest_opts *o, struct rpt_digest_doc *out,
                     struct md_error *err) MD_MUSTCHECK;

/* Frees the strings of d and zeroes it.  Harmless on a zeroed doc. */
void rpt_digest_doc_free(struct rpt_digest_doc *d);

/* Writes markdown (borrowed) to dir/digest-YYYY-MM-DD.md, the UTC date of until_ms, atomically:
 * a temporary file in dir (".digest-*.tmp"), fsync, rename over the name, fsync of dir; a
 * reader sees the old file or the new one, never a part.  dir is created (0700, with its
 * parents) when missing.  The path written goes to path_out (cap bytes; NULL: not wanted).
 * Returns 0, or -errno with err naming the file and the call that failed; nothing is left
 * behind on a failure and the old file, if any, stays as it was, except when only the fsync of
 * dir after the rename fails: the new file is in place then, its durability in doubt. */
int rpt_digest_write_file(const char *dir, int64_t until_ms, const char *markdown, char *path_out,
                          size_t cap, struct md_error *err) MD_MUSTCHECK;

#endif
