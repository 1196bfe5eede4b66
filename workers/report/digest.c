/* digest.c - the digest's registry side: one REPEATABLE READ READ ONLY transaction of bounded
 * queries into the model of digest_internal.h, rendered by digest_render.c; and the Markdown
 * file, written atomically.
 *
 * Every query over agent_runs is bounded by the window on agent_runs_created (created_at), or
 * by a job on agent_runs_job_recent (job, created_at DESC) with LIMIT 1 for the look-back of a
 * job's last success; agent_alerts goes through agent_alerts_triage (status, severity,
 * opened_at DESC); agent_executions through agent_executions_run (run_id), only for the runs of
 * the window that took several executions.  tests/integration/test_report_digest.py checks the
 * plans with enable_seqscan off; docs/benchmarks.md has the figures at 30 days x 1,000 runs.
 *
 * What the workers did comes from their result summaries (agent_runs.summary), told apart by
 * their shape (KIND_SQL) since the registry does not record which program a job runs.  The
 * summaries' members are read with jsonb_typeof guards: a command's summary can hold anything,
 * and a cast error would cost the whole digest.
 */
#include "digest_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_fs.h"
#include "meshd/md_pq.h"
#include "meshd/md_time.h"

/* Jobs read at most (failures first); nodes listed at most; fix items and worker jobs. */
#define JOBS_MAX "1000"
#define NODES_MAX "50"
#define WORK_MAX "200"
/* How far back a job's last success and last data change are looked for, before the window
 * (or the window's length, when longer).  Retention usually ends the look-back first. */
#define LOOKBACK_MS (31LL * 86400000)

/* A timestamptz as Unix ms (NULL stays NULL).  date_part's double, not extract's numeric:
 * numeric arithmetic on every row of a month cost a third of a query. */
#define MS(x) "(date_part('epoch', " x ") * 1000)::bigint"
/* A numeric member of a jsonb object, NULL unless it is a JSON number. */
#define NUM(o, k)                                                                                  \
    "(CASE WHEN jsonb_typeof(" o " -> '" k "') = 'number' THEN (" o " ->> '" k "')::numeric END)"
/* The worker a summary comes from, by its shape (docs/validate.md, remediate.md, scrape.md,
 * refresh.md: "Summary"); NULL for anything else. */
#define KIND_SQL(s)                                                                                \
    "(CASE WHEN " s " ? 'results' AND " s " ? 'pass' AND " s " ? 'fail' THEN 'validate' "          \
    "WHEN " s " ? 'fixes' OR (" s " ? 'planned' AND " s " ? 'applied' AND " s                      \
    " ? 'undone') THEN 'remediate' "                                                               \
    "WHEN " s " ? 'files' AND " s " ? 'loaded' AND " s " ? 'rows' THEN 'scrape' "                  \
    "WHEN " s " ? 'refreshed' AND " s " ? 'skipped' AND " s " ? 'failed' THEN 'refresh' END)"
/* A success that changed data: a load that loaded a file, a refresh that refreshed a view. */
#define CHANGED_SQL(s)                                                                             \
    "coalesce(" NUM(s, "loaded") ", 0) + coalesce(" NUM(s, "refreshed") ", 0) > 0"
#define WINDOW_OF(a) a "created_at >= $1::timestamptz AND " a "created_at < $2::timestamptz"
#define WINDOW WINDOW_OF("")
#define FAILED "('failed', 'timed_out')"
#define LOST "('abandoned', 'unknown')"

/* The counts of struct rpt_dg_counts, over the rows in scope (runs, then the slots). */
#define COUNTS_SQL                                                                                 \
    "count(*) FILTER (WHERE status NOT IN ('missed', 'skipped')), "                                \
    "count(*) FILTER (WHERE status = 'succeeded'), "                                               \
    "count(*) FILTER (WHERE status IN " FAILED "), "                                               \
    "count(*) FILTER (WHERE status IN " LOST "), "                                                 \
    "count(*) FILTER (WHERE status = 'stopped'), "                                                 \
    "count(*) FILTER (WHERE status = 'running'), "                                                 \
    "coalesce(sum(coalesce(missed_count, 1)) FILTER (WHERE status = 'missed'), 0), "               \
    "count(*) FILTER (WHERE status = 'skipped'), "                                                 \
    "count(*) FILTER (WHERE attempt > 1), "                                                        \
    "count(*) FILTER (WHERE lives > 1)"

/* The SQL, laid out by hand (the macros above make up its words). */
/* clang-format off */

/* The window's counts and the snapshot's now(). */
static const char totals_sql[] =
    "SELECT " MS("now()") ", count(DISTINCT job), " COUNTS_SQL " "
    "FROM agent_runs WHERE " WINDOW;

/* The failed attempts of the window's retried runs: each execution but the run's last (the
 * owner's exec_id) that did not succeed; agent_executions_run per run. */
static const char retries_sql[] =
    "SELECT count(*) FROM agent_runs r JOIN agent_executions x ON x.run_id = r.run_id "
    "WHERE " WINDOW_OF("r.") " AND r.attempt > 1 AND x.exec_id IS DISTINCT FROM r.exec_id "
    "AND x.status NOT IN ('succeeded', 'running')";

/* Per job: w its rows of the window, reg its registry rows (worst state first), then index
 * probes on agent_runs_job_recent (job, created_at DESC) that stop at their first row: the
 * newest row's status in the window, and, only for the jobs the window says nothing about,
 * the look-back of the last success and of the last data change of a load or refresh.  ($1
 * since, $2 until, $3 the look-back's start.)  A job's kind is max() of its summaries' kinds:
 * one job runs one program. */
static const char jobs_sql[] =
    "WITH w(job, runs, ok, failed, lost, stopped, running, missed, skipped, retried, "
    "       duplicated, p50, mx, last_ok, kind, last_change) AS ("
    "  SELECT job, " COUNTS_SQL ", "
    "         percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms), max(duration_ms), "
    "         max(coalesce(finished_at, created_at)) FILTER (WHERE status = 'succeeded'), "
    "         max(kind), "
    "         max(coalesce(finished_at, created_at)) FILTER (WHERE status = 'succeeded' "
    "                                                        AND changed) "
    "    FROM (SELECT job, status, missed_count, duration_ms, attempt, lives, created_at, "
    "                 finished_at, " KIND_SQL("summary") " AS kind, "
    "                 " CHANGED_SQL("summary") " AS changed "
    "            FROM agent_runs WHERE " WINDOW ") rr "
    "   GROUP BY job), "
    "reg AS ("
    "  SELECT job, "
    "         (array_agg(state ORDER BY CASE state WHEN 'fatal' THEN 0 WHEN 'backoff' THEN 1 "
    "                                   ELSE 2 END, node))[1] AS state, "
    "         (array_agg(node ORDER BY CASE state WHEN 'fatal' THEN 0 WHEN 'backoff' THEN 1 "
    "                                  ELSE 2 END, node))[1] AS state_node, "
    "         min(next_run_at) AS next_run_at "
    "    FROM agent_registry WHERE kind = 'job' GROUP BY job), "
    "n AS (SELECT job FROM w UNION SELECT job FROM reg) "
    "SELECT n.job, coalesce(w.kind, ch.kind), "
    "       coalesce(w.runs, 0), coalesce(w.ok, 0), coalesce(w.failed, 0), coalesce(w.lost, 0), "
    "       coalesce(w.stopped, 0), coalesce(w.running, 0), coalesce(w.missed, 0), "
    "       coalesce(w.skipped, 0), coalesce(w.retried, 0), coalesce(w.duplicated, 0), "
    "       w.p50, w.mx, ls.status, " MS("coalesce(w.last_ok, ok.at)") ", "
    "       " MS("coalesce(w.last_change, ch.at)") ", reg.state, reg.state_node, "
    "       " MS("reg.next_run_at") " "
    "  FROM n LEFT JOIN w ON w.job = n.job LEFT JOIN reg ON reg.job = n.job "
    "  LEFT JOIN LATERAL (SELECT r.status FROM agent_runs r "
    "                      WHERE w.job IS NOT NULL AND r.job = n.job "
    "                        AND r.created_at >= $1::timestamptz AND r.created_at < $2::timestamptz "
    "                      ORDER BY r.created_at DESC LIMIT 1) ls ON true "
    "  LEFT JOIN LATERAL (SELECT coalesce(r.finished_at, r.created_at) AS at FROM agent_runs r "
    "                      WHERE w.last_ok IS NULL AND r.job = n.job AND r.status = 'succeeded' "
    "                        AND r.created_at >= $3::timestamptz AND r.created_at < $1::timestamptz "
    "                      ORDER BY r.created_at DESC LIMIT 1) ok ON true "
    "  LEFT JOIN LATERAL (SELECT coalesce(r.finished_at, r.created_at) AS at, "
    "                            " KIND_SQL("r.summary") " AS kind FROM agent_runs r "
    "                      WHERE w.last_change IS NULL "
    "                        AND (w.job IS NULL OR w.kind IN ('scrape', 'refresh')) "
    "                        AND r.job = n.job AND r.status = 'succeeded' "
    "                        AND r.created_at >= $3::timestamptz AND r.created_at < $1::timestamptz "
    "                        AND " CHANGED_SQL("r.summary") " "
    "                      ORDER BY r.created_at DESC LIMIT 1) ch ON true "
    " ORDER BY coalesce(w.failed + w.lost, 0) DESC, coalesce(w.missed, 0) DESC, n.job "
    " LIMIT " JOBS_MAX;

/* The failed runs of the window, newest first: ordered by created_at alone, so the backward
 * index scan stops after top rows. */
static const char failed_sql[] =
    "SELECT job, run_id, node, status, reason, exit_code, signal, " MS("started_at") ", "
    "       " MS("scheduled_for") ", duration_ms, summary::text, right(output_tail, 2000) "
    "  FROM agent_runs WHERE " WINDOW " AND (status IN " FAILED " OR status IN " LOST ") "
    " ORDER BY created_at DESC LIMIT $3::bigint";

/* The longest runs of the window: the top-N sort carries two columns and the rows are read
 * after it (sorting whole rows of a month was most of the query). */
static const char longest_sql[] =
    "SELECT r.job, r.run_id, r.node, r.status, r.reason, r.exit_code, r.signal, "
    "       " MS("r.started_at") ", " MS("r.scheduled_for") ", r.duration_ms, NULL, NULL "
    "  FROM (SELECT id, duration_ms FROM agent_runs "
    "         WHERE " WINDOW " AND duration_ms IS NOT NULL "
    "         ORDER BY duration_ms DESC LIMIT $3::bigint) t "
    "  JOIN agent_runs r ON r.id = t.id ORDER BY t.duration_ms DESC";

/* Missed and skipped slots, grouped by the reason with its numbers taken out ("registry
 * unreachable for 312s ..."); the newest wording is shown. */
static const char slots_sql[] =
    "SELECT job, status, (array_agg(reason ORDER BY created_at DESC))[1], "
    "       sum(coalesce(missed_count, 1)) AS n, " MS("min(scheduled_for)") ", "
    "       " MS("max(coalesce(missed_until, scheduled_for))") ", count(*) OVER () "
    "  FROM agent_runs WHERE " WINDOW " AND status IN ('missed', 'skipped') "
    " GROUP BY job, status, regexp_replace(coalesce(reason, ''), '[0-9]+', 'N', 'g') "
    " ORDER BY n DESC, job, status LIMIT $3::bigint";

/* The alerts' counts, each one range of agent_alerts_triage (status, severity, opened_at). */
static const char alert_counts_sql[] =
    "SELECT (SELECT count(*) FROM agent_alerts WHERE status = 'open' AND severity = 'critical' "
    "          AND opened_at < $2::timestamptz), "
    "       (SELECT count(*) FROM agent_alerts WHERE status = 'open' AND severity = 'warning' "
    "          AND opened_at < $2::timestamptz), "
    "       (SELECT count(*) FROM agent_alerts WHERE status = 'open' AND severity = 'info' "
    "          AND opened_at < $2::timestamptz), "
    "       (SELECT count(*) FROM agent_alerts WHERE status IN ('open', 'resolved') "
    "          AND severity IN ('critical', 'warning', 'info') "
    "          AND opened_at >= $1::timestamptz AND opened_at < $2::timestamptz), "
    "       (SELECT count(*) FROM agent_alerts WHERE status = 'resolved' "
    "          AND severity IN ('critical', 'warning', 'info') "
    "          AND opened_at >= $1::timestamptz AND opened_at < $2::timestamptz)";

/* The open alerts, critical first.  ($1 until, $2 top.) */
static const char alerts_sql[] =
    "SELECT severity, key, job, node, message, count, " MS("opened_at") " "
    "  FROM agent_alerts WHERE status = 'open' AND opened_at < $1::timestamptz "
    " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, "
    "          opened_at DESC LIMIT $2::bigint";

static const char nodes_sql[] =
    "SELECT node, state, environment, " MS("last_heartbeat") ", count(*) OVER () "
    "  FROM agent_registry WHERE kind = 'node' "
    " ORDER BY node LIMIT " NODES_MAX;

/* Per worker job (the head; a sum per count name follows, then work_tail_sql): its runs,
 * those whose summary reports a failure, and its newest run, whose summary is read next. */
static const char work_head_sql[] =
    "SELECT job, kind, count(*), "
    "       count(*) FILTER (WHERE CASE kind "
    "         WHEN 'validate' THEN coalesce(" NUM("summary", "fail") ", 0) "
    "                            + coalesce(" NUM("summary", "error") ", 0) > 0 "
    "         WHEN 'remediate' THEN coalesce(" NUM("summary", "refused") ", 0) "
    "                             + coalesce(" NUM("summary", "stale") ", 0) "
    "                             + coalesce(" NUM("summary", "failed") ", 0) > 0 "
    "         ELSE coalesce(" NUM("summary", "failed") ", 0) > 0 END), "
    "       " MS("max(created_at)") ", "
    "       (array_agg(id ORDER BY created_at DESC, id DESC))[1], "
    "       (array_agg(status ORDER BY created_at DESC, id DESC))[1]";
static const char work_sum_sql[] = ", coalesce(sum(" NUM("summary", "%s") "), 0)";
static const char work_tail_sql[] =
    " FROM (SELECT id, job, status, created_at, summary, " KIND_SQL("summary") " AS kind "
    "         FROM agent_runs WHERE " WINDOW " AND summary IS NOT NULL) rr "
    "WHERE kind IS NOT NULL GROUP BY job, kind ORDER BY job, kind LIMIT " WORK_MAX;

/* The newest summaries of the worker jobs, by primary key, in the order given. */
static const char summaries_sql[] =
    "SELECT i.o, r.summary::text FROM unnest($1::bigint[]) WITH ORDINALITY AS i(id, o) "
    "  JOIN agent_runs r ON r.id = i.id";

/* The fixes of the window's remediate runs but those that found nothing, newest first. */
static const char fixes_sql[] =
    "SELECT r.job, " MS("r.created_at") ", e ->> 'fix', e ->> 'outcome', " NUM("e", "rows") ", "
    "       e ->> 'plan', e ->> 'why', count(*) OVER () "
    "  FROM agent_runs r, "
    "       jsonb_array_elements(CASE WHEN jsonb_typeof(r.summary -> 'fixes') = 'array' "
    "                            THEN r.summary -> 'fixes' ELSE '[]'::jsonb END) e "
    " WHERE " WINDOW_OF("r.") " AND r.summary ? 'fixes' AND jsonb_typeof(e) = 'object' "
    "   AND coalesce(e ->> 'outcome', '') <> 'nothing' "
    " ORDER BY r.created_at DESC LIMIT $3::bigint";

/* clang-format on */

struct ctx {
    const struct rpt_digest_opts *o;
    struct rpt_dg *d;
    char since[40], until[40], lookback[40], top[24];
};

/* ---- reading results ------------------------------------------------------------------------ */

static char *gs(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : md_xstrdup(PQgetvalue(r, row, col));
}

static const char *gv(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* An integer or numeric column, clamped to int64; def when NULL. */
static int64_t gi(const PGresult *r, int row, int col, int64_t def)
{
    if (PQgetisnull(r, row, col))
        return def;
    double v = strtod(PQgetvalue(r, row, col), NULL);
    if (v >= 9.2e18)
        return INT64_MAX;
    if (v <= -9.2e18)
        return INT64_MIN;
    return (int64_t)v;
}

static void counts_at(const PGresult *r, int row, int col, struct rpt_dg_counts *c)
{
    c->runs = gi(r, row, col + 0, 0);
    c->ok = gi(r, row, col + 1, 0);
    c->failed = gi(r, row, col + 2, 0);
    c->lost = gi(r, row, col + 3, 0);
    c->stopped = gi(r, row, col + 4, 0);
    c->running = gi(r, row, col + 5, 0);
    c->missed = gi(r, row, col + 6, 0);
    c->skipped = gi(r, row, col + 7, 0);
    c->retried = gi(r, row, col + 8, 0);
    c->duplicated = gi(r, row, col + 9, 0);
}

/* ---- the queries ---------------------------------------------------------------------------- */

static int read_totals(PGconn *db, struct ctx *x, struct md_error *err)
{
    const char *p[] = {x->since, x->until};
    PGresult *r = NULL;
    int rc;

    if ((rc = md_pq_exec(db, totals_sql, 2, p, &r, err)) < 0)
        return rc;
    x->d->built_ms = gi(r, 0, 0, 0);
    x->d->jobs_total = gi(r, 0, 1, 0);
    counts_at(r, 0, 2, &x->d->t);
    PQclear(r);
    if (x->d->t.retried == 0)
        return 0;
    if ((rc = md_pq_exec(db, retries_sql, 2, p, &r, err)) < 0)
        return rc;
    x->d->t.retry_failures = gi(r, 0, 0, 0);
    PQclear(r);
    return 0;
}

static int read_jobs(PGconn *db, struct ctx *x, struct md_error *err)
{
    const char *p[] = {x->since, x->until, x->lookback};
    PGresult *r = NULL;
    int rc;

    if ((rc = md_pq_exec(db, jobs_sql, 3, p, &r, err)) < 0)
        return rc;
    int n = PQntuples(r);
    x->d->jobs = md_xcalloc((size_t)n + 1, sizeof *x->d->jobs);
    for (int i = 0; i < n; i++) {
        struct rpt_dg_job *j = &x->d->jobs[i];
        j->job = gs(r, i, 0);
        j->kind = rpt_dg_kind_of(gv(r, i, 1));
        counts_at(r, i, 2, &j->c);
        j->p50_ms = gi(r, i, 12, -1);
        j->max_ms = gi(r, i, 13, -1);
        j->last_status = gs(r, i, 14);
        j->last_ok_ms = gi(r, i, 15, 0);
        j->last_change_ms = gi(r, i, 16, 0);
        j->state = gs(r, i, 17);
        j->state_node = gs(r, i, 18);
        j->next_run_ms = gi(r, i, 19, 0);
    }
    x->d->njobs = (size_t)n;
    PQclear(r);
    return 0;
}

/* Failed runs or the longest ones, with what they say about why. */
static int read_runs(PGconn *db, struct ctx *x, bool failed, struct md_error *err)
{
    const char *p[] = {x->since, x->until, x->top};
    PGresult *r = NULL;
    int rc;

    if ((rc = md_pq_exec(db, failed ? failed_sql : longest_sql, 3, p, &r, err)) < 0)
        return rc;
    int n = PQntuples(r);
    struct rpt_dg_run *v = md_xcalloc((size_t)n + 1, sizeof *v);
    for (int i = 0; i < n; i++) {
        v[i].job = gs(r, i, 0);
        v[i].run_id = gs(r, i, 1);
        v[i].node = gs(r, i, 2);
        v[i].status = gs(r, i, 3);
        v[i].exit_code = (int)gi(r, i, 5, -1);
        v[i].signal = (int)gi(r, i, 6, -1);
        v[i].started_ms = gi(r, i, 7, 0);
        v[i].scheduled_ms = gi(r, i, 8, 0);
        v[i].duration_ms = gi(r, i, 9, -1);
        if (failed)
            v[i].why = rpt_dg_run_why(gv(r, i, 4), gv(r, i, 10), gv(r, i, 11));
    }
    if (failed)
        x->d->failures = v, x->d->nfailures = (size_t)n;
    else
        x->d->longest = v, x->d->nlongest = (size_t)n;
    PQclear(r);
    return 0;
}

static int read_slots(PGconn *db, struct ctx *x, struct md_error *err)
{
    const char *p[] = {x->since, x->until, x->top};
    PGresult *r = NULL;
    int rc;

    if ((rc = md_pq_exec(db, slots_sql, 3, p, &r, err)) < 0)
        return rc;
    int n = PQntuples(r);
    x->d->slots = md_xcalloc((size_t)n + 1, sizeof *x->d->slots);
    for (int i = 0; i < n; i++) {
        struct rpt_dg_slots *s = &x->d->slots[i];
        s->job = gs(r, i, 0);
        s->status = gs(r, i, 1);
        s->reason = gs(r, i, 2);
        s->slots = gi(r, i, 3, 0);
        s->first_ms = gi(r, i, 4, 0);
        s->last_ms = gi(r, i, 5, 0);
        x->d->slots_total = gi(r, i, 6, 0);
    }
    x->d->nslots = (size_t)n;
    PQclear(r);
    return 0;
}

static int read_alerts(PGconn *db, struct ctx *x, struct md_error *err)
{
    const char *p[] = {x->since, x->until};
    const char *pl[] = {x->until, x->top};
    PGresult *r = NULL;
    int rc;

    if ((rc = md_pq_exec(db, alert_counts_sql, 2, p, &r, err)) < 0)
        return rc;
    for (int i = 0; i < 3; i++)
        x->d->open[i] = gi(r, 0, i, 0);
    x->d->raised = gi(r, 0, 3, 0);
    x->d->raised_resolved = gi(r, 0, 4, 0);
    PQclear(r);

    if ((rc = md_pq_exec(db, alerts_sql, 2, pl, &r, err)) < 0)
        return rc;
    int n = PQntuples(r);
    x->d->alerts = md_xcalloc((size_t)n + 1, sizeof *x->d->alerts);
    for (int i = 0; i < n; i++) {
        struct rpt_dg_alert *a = &x->d->alerts[i];
        a->severity = gs(r, i, 0);
        a->key = gs(r, i, 1);
        a->job = gs(r, i, 2);
        a->node = gs(r, i, 3);
        a->message = gs(r, i, 4);
        a->count = gi(r, i, 5, 1);
        a->opened_ms = gi(r, i, 6, 0);
    }
    x->d->nalerts = (size_t)n;
    PQclear(r);
    return 0;
}

static int read_nodes(PGconn *db, struct ctx *x, struct md_error *err)
{
    PGresult *r = NULL;
    int rc;

    if ((rc = md_pq_exec(db, nodes_sql, 0, NULL, &r, err)) < 0)
        return rc;
    int n = PQntuples(r);
    x->d->nodes = md_xcalloc((size_t)n + 1, sizeof *x->d->nodes);
    for (int i = 0; i < n; i++) {
        x->d->nodes[i].node = gs(r, i, 0);
        x->d->nodes[i].state = gs(r, i, 1);
        x->d->nodes[i].environment = gs(r, i, 2);
        x->d->nodes[i].heartbeat_ms = gi(r, i, 3, 0);
        x->d->nodes_total = gi(r, i, 4, 0);
    }
    x->d->nnodes = (size_t)n;
    PQclear(r);
    return 0;
}

/* The distinct count names of every kind, in order; returns how many. */
static size_t count_names(const char **names)
{
    size_t n = 0;
    for (int k = 1; k < DG_NKINDS; k++)
        for (int i = 0; rpt_dg_kind_counts[k][i] != NULL; i++) {
            size_t j = 0;
            while (j < n && strcmp(names[j], rpt_dg_kind_counts[k][i]) != 0)
                j++;
            if (j == n)
                names[n++] = rpt_dg_kind_counts[k][i];
        }
    return n;
}

static int read_work(PGconn *db, struct ctx *x, struct md_error *err)
{
    const char *p[] = {x->since, x->until};
    const char *names[DG_NKINDS * RPT_DG_MAX_COUNTS];
    size_t nn = count_names(names);
    struct md_buf sql, ids;
    PGresult *r = NULL;
    int rc;

    md_buf_init(&sql, 64 * 1024);
    md_buf_puts(&sql, work_head_sql);
    for (size_t i = 0; i < nn; i++)
        md_buf_printf(&sql, work_sum_sql, names[i], names[i]);
    md_buf_puts(&sql, work_tail_sql);
    rc = md_pq_exec(db, md_buf_str(&sql), 2, p, &r, err);
    md_buf_free(&sql);
    if (rc < 0)
        return rc;
    int n = PQntuples(r);
    md_buf_init(&ids, 1 << 20);
    md_buf_puts(&ids, "{");
    x->d->work = md_xcalloc((size_t)n + 1, sizeof *x->d->work);
    for (int i = 0; i < n; i++) {
        struct rpt_dg_work *w = &x->d->work[i];
        w->job = gs(r, i, 0);
        w->kind = rpt_dg_kind_of(gv(r, i, 1));
        w->runs = gi(r, i, 2, 0);
        w->bad_runs = gi(r, i, 3, 0);
        w->last_ms = gi(r, i, 4, 0);
        md_buf_printf(&ids, "%s%s", i ? "," : "", PQgetvalue(r, i, 5));
        w->last_status = gs(r, i, 6);
        for (int k = 0; rpt_dg_kind_counts[w->kind][k] != NULL; k++)
            for (size_t c = 0; c < nn; c++)
                if (strcmp(names[c], rpt_dg_kind_counts[w->kind][k]) == 0)
                    w->sum[k] = gi(r, i, 7 + (int)c, 0);
    }
    x->d->nwork = (size_t)n;
    md_buf_puts(&ids, "}");
    PQclear(r);
    if (n == 0) {
        md_buf_free(&ids);
        return 0;
    }

    const char *pi[] = {md_buf_str(&ids)};
    rc = md_pq_exec(db, summaries_sql, 1, pi, &r, err);
    md_buf_free(&ids);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t o = gi(r, i, 0, 0);
        if (o >= 1 && o <= n)
            rpt_dg_work_from_summary(&x->d->work[o - 1], gv(r, i, 1), (size_t)x->o->top);
    }
    PQclear(r);
    return 0;
}

static int read_fixes(PGconn *db, struct ctx *x, struct md_error *err)
{
    const char *p[] = {x->since, x->until, x->top};
    PGresult *r = NULL;
    bool any = false;
    int rc;

    for (size_t i = 0; i < x->d->nwork; i++)
        any |= x->d->work[i].kind == DG_REMEDIATE;
    if (!any)
        return 0;
    if ((rc = md_pq_exec(db, fixes_sql, 3, p, &r, err)) < 0)
        return rc;
    int n = PQntuples(r);
    x->d->fixes = md_xcalloc((size_t)n + 1, sizeof *x->d->fixes);
    for (int i = 0; i < n; i++) {
        struct rpt_dg_item *f = &x->d->fixes[i];
        const char *plan = gv(r, i, 5), *why = gv(r, i, 6);
        f->job = gs(r, i, 0);
        f->at_ms = gi(r, i, 1, 0);
        f->what = md_xstrdup(gv(r, i, 2) ? gv(r, i, 2) : "?");
        f->outcome = md_xstrdup(gv(r, i, 3) ? gv(r, i, 3) : "?");
        f->rows = gi(r, i, 4, -1);
        if (plan != NULL || why != NULL)
            f->text = md_xasprintf("%s%s%s%s", plan ? "plan " : "", plan ? plan : "",
                                   plan && why ? ": " : "", why ? why : "");
        x->d->fixes_total = gi(r, i, 7, 0);
    }
    x->d->nfixes = (size_t)n;
    PQclear(r);
    return 0;
}

/* The transaction: one snapshot for every number.  md_pq_tx runs it again from scratch after a
 * serialization failure (which a read-only transaction does not really get), so it starts by
 * emptying the model. */
static int build_tx(PGconn *db, void *ud, struct md_error *err)
{
    struct ctx *x = ud;
    int rc;

    rpt_dg_free(x->d);
    x->d->since_ms = x->o->since_ms;
    x->d->until_ms = x->o->until_ms;
    x->d->top = x->o->top;
    x->d->node = x->o->node;
    x->d->external_url = x->o->external_url;
    if ((rc = md_pq_exec(db, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                         NULL, err)) < 0 ||
        (rc = md_pq_exec(db,
                         "SELECT set_config('statement_timeout', '120s', true) "
                         "WHERE current_setting('statement_timeout') = '0'",
                         0, NULL, NULL, err)) < 0 ||
        (rc = read_totals(db, x, err)) < 0 || (rc = read_jobs(db, x, err)) < 0 ||
        (rc = read_runs(db, x, true, err)) < 0 || (rc = read_slots(db, x, err)) < 0 ||
        (rc = read_runs(db, x, false, err)) < 0 || (rc = read_alerts(db, x, err)) < 0 ||
        (rc = read_nodes(db, x, err)) < 0 || (rc = read_work(db, x, err)) < 0 ||
        (rc = read_fixes(db, x, err)) < 0)
        return rc;
    return 0;
}

int rpt_digest_build(PGconn *registry, const struct rpt_digest_opts *o, struct rpt_digest_doc *out,
                     struct md_error *err)
{
    struct rpt_dg d = {0};
    struct rpt_digest_opts opts = *o;
    struct ctx x = {.o = &opts, .d = &d};
    int64_t back;
    int rc;

    memset(out, 0, sizeof *out);
    if (o->since_ms <= 0 || o->until_ms <= o->since_ms)
        return md_error_set(err, -EINVAL, 0, 0, "digest: the window must have since < until");
    if (opts.top <= 0)
        opts.top = RPT_DIGEST_DEFAULT_TOP;
    if (opts.top > RPT_DIGEST_MAX_TOP)
        opts.top = RPT_DIGEST_MAX_TOP;
    back = o->until_ms - o->since_ms > LOOKBACK_MS ? o->until_ms - o->since_ms : LOOKBACK_MS;
    md_time_fmt_ms(o->since_ms, x.since, sizeof x.since);
    md_time_fmt_ms(o->until_ms, x.until, sizeof x.until);
    md_time_fmt_ms(o->until_ms - back > 0 ? o->until_ms - back : 1, x.lookback, sizeof x.lookback);
    snprintf(x.top, sizeof x.top, "%" PRId64, opts.top);
    rc = md_pq_tx(registry, build_tx, &x, 3, err);
    if (rc == 0)
        rpt_dg_render(&d, out);
    rpt_dg_free(&d);
    return rc;
}

/* ---- the file ------------------------------------------------------------------------------- */

static int write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int fsync_retry(int fd)
{
    while (fsync(fd) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

int rpt_digest_write_file(const char *dir, int64_t until_ms, const char *markdown, char *path_out,
                          size_t cap, struct md_error *err)
{
    time_t t = (time_t)(until_ms / 1000);
    struct tm tm;
    char *path = NULL, *tmp = NULL;
    int fd = -1, dfd = -1, rc;

    if (dir == NULL || dir[0] == '\0' || markdown == NULL || gmtime_r(&t, &tm) == NULL)
        return md_error_set(err, -EINVAL, 0, 0, "digest file: no directory, text or date");
    if ((rc = md_mkdir_p(dir, 0700)) < 0)
        return md_error_set(err, rc, 0, 0, "digest file: cannot create %s: %s", dir, strerror(-rc));
    path = md_xasprintf("%s/digest-%04d-%02d-%02d.md", dir, tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday);
    /* The pid keeps two writers (two nodes sharing a state directory, a rerun) off each
     * other's temporary file; the rename decides which digest stays. */
    tmp = md_xasprintf("%s/.digest-%04d-%02d-%02d.md.%ld.tmp", dir, tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, (long)getpid());
    if (path_out != NULL && (size_t)snprintf(path_out, cap, "%s", path) >= cap) {
        rc = md_error_set(err, -ENAMETOOLONG, 0, 0, "digest file: %s: path longer than %zu bytes",
                          path, cap);
        goto out;
    }
    (void)unlink(tmp); /* left by a process of the same pid that died before its rename */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = md_error_set(err, -errno, 0, 0, "digest file: cannot create %s: %s", tmp,
                          strerror(errno));
        goto out;
    }
    if ((rc = write_all(fd, markdown, strlen(markdown))) < 0 || (rc = fsync_retry(fd)) < 0) {
        md_error_set(err, rc, 0, 0, "digest file: cannot write %s: %s", tmp, strerror(-rc));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        rc = md_error_set(err, -errno, 0, 0, "digest file: cannot write %s: %s", tmp,
                          strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = md_error_set(err, -errno, 0, 0, "digest file: cannot rename %s to %s: %s", tmp, path,
                          strerror(errno));
        goto fail;
    }
    /* The rename is durable once the directory is. */
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync_retry(dfd) < 0) {
        rc = md_error_set(err, -errno, 0, 0, "digest file: cannot sync the directory %s: %s", dir,
                          strerror(errno));
        goto out; /* the file is in place; only its durability is in doubt */
    }
    rc = 0;
    goto out;
fail:
    if (fd >= 0)
        close(fd);
    fd = -1;
    (void)unlink(tmp);
out:
    if (dfd >= 0)
        close(dfd);
    md_free(tmp);
    md_free(path);
    return rc;
}
