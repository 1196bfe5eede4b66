/* ctl_health.c - `meshctl health`: is the fleet healthy, judged from the registry?
 *
 *   meshctl health [--url URL] [--config FILE] [--json] [--stale 5m] [--slow 500ms]
 *                  [--duplicates-since 24h]
 *
 * Checks, for the node the config describes (node.name):
 *   database    the database answers (SELECT 1) and a representative query (the latest run of
 *               each job) runs within --slow;
 *   registered  the node row and a row for every enabled job of the config exist;
 *   heartbeat   the node's heartbeat is newer than --stale and its state is not 'down';
 *   alerts      no open critical alert (any node);
 *   expect      each job with `expect: {succeed_within: D}` has a 'succeeded' run that finished
 *               within D (on any node: in a cluster any node may have won the slot);
 *   duplicates  no run recorded within --duplicates-since was executed by more than one meshd
 *               life (any node: two nodes, or a restarted node re-running a slot);
 *   messages    no bus message addressed to a node or job the registry does not know
 *               (to_node/to_job, sql/0005) has been pending longer than --stale: nobody will
 *               ever take it (a typo, a node renamed or gone).
 * Prints a table (check, status, detail), or with --json one object
 * {"healthy": bool, "checks": [{"name", "ok", "detail", ...}]}.  Exit 0 healthy, 1 unhealthy,
 * 2 could not check (usage, bad config, no URL, cannot connect, query error).  The URL
 * (--url, else $DATABASE_URL, else registry.url) is shown only as user@host:port/dbname.
 *
 * Blocking libpq: fine in a command-line tool.  docs/health.md has the details.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <libpq-fe.h>

#include "ctl.h"
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_err.h"
#include "meshd/md_pq.h"

#define HEALTH_OK 0
#define HEALTH_UNHEALTHY 1
#define HEALTH_CANNOT 2

static void health_usage(void)
{
    fputs("usage: meshctl health [--url URL] [--config FILE] [--json] [--stale 5m] "
          "[--slow 500ms] [--duplicates-since 24h]\n"
          "URL defaults to $DATABASE_URL, else registry.url; FILE to $MESHD_CONFIG, else "
          "conf/meshd.yaml.\n",
          stderr);
}

static void *jcheck(void *p)
{
    if (p == NULL) {
        fputs("meshctl health: out of memory\n", stderr);
        abort();
    }
    return p;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

struct health {
    PGconn *conn;
    const struct md_config *cfg;
    uint64_t stale_ms, slow_ms, dup_ms;
    cJSON *checks; /* array of {name, ok, detail, ...} */
    char *error;   /* set when a query failed: cannot check */
};

/* Appends a check (takes detail) and returns it, for extra fields. */
static cJSON *add_check(struct health *h, const char *name, bool ok, char *detail)
{
    cJSON *c = jcheck(cJSON_CreateObject());

    jcheck(cJSON_AddStringToObject(c, "name", name));
    jcheck(cJSON_AddBoolToObject(c, "ok", ok));
    jcheck(cJSON_AddStringToObject(c, "detail", detail));
    cJSON_AddItemToArray(h->checks, c);
    md_free(detail);
    return c;
}

/* Runs a query with text parameters; NULL after recording the error in h->error. */
static PGresult *query(struct health *h, const char *what, const char *sql, int n,
                       const char *const *params)
{
    PGresult *r = PQexecParams(h->conn, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        return r;
    if (h->error == NULL) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorMessage(r);
        size_t len = strcspn(msg, "\n");
        if (state && (strcmp(state, "42P01") == 0 || strcmp(state, "42703") == 0 ||
                      strcmp(state, "42883") == 0))
            h->error = md_xasprintf("%s: the registry schema is missing (run meshctl migrate): "
                                    "%.*s",
                                    what, (int)len, msg);
        else
            h->error = md_xasprintf("%s: %.*s", what, (int)len, msg);
    }
    PQclear(r);
    return NULL;
}

static bool job_enabled(const struct md_job *j)
{
    return j->enabled;
}

/* The items a check's detail line lists; the rest are counted ("and N more"). */
#define DETAIL_ITEMS 10

/* Item i of n into a check's detail line: the first DETAIL_ITEMS appended after a space (';'
 * between them), then once "; and N more".  fmt (printf) is formatted only for those shown. */
static void MD_PRINTF(4, 5) detail_item(char **detail, int i, int n, const char *fmt, ...)
{
    char *x;

    if (i > DETAIL_ITEMS)
        return;
    if (i == DETAIL_ITEMS) {
        x = md_xasprintf("%s; and %d more", *detail, n - DETAIL_ITEMS);
    } else {
        va_list ap;
        va_start(ap, fmt);
        int len = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        char *item = md_xmalloc(len > 0 ? (size_t)len + 1 : 1);
        va_start(ap, fmt);
        vsnprintf(item, len > 0 ? (size_t)len + 1 : 1, fmt, ap);
        va_end(ap);
        x = md_xasprintf("%s%s %s", *detail, i ? ";" : "", item);
        md_free(item);
    }
    md_free(*detail);
    *detail = x;
}

/* (1) SELECT 1, then the latest run per job of this node, timed against --slow. */
static void check_database(struct health *h, const char *target)
{
    const char *p[1] = {h->cfg->node_name};
    char tbuf[32], lim[32];
    double t0 = now_ms(), t1, ms;
    PGresult *r = query(h, "SELECT 1", "SELECT 1", 0, NULL);
    cJSON *c;

    if (r == NULL)
        return;
    t1 = now_ms();
    PQclear(r);
    r = query(h, "latest runs",
              "SELECT DISTINCT ON (job) job, status, started_at, finished_at FROM agent_runs "
              "WHERE node = $1 ORDER BY job, started_at DESC NULLS LAST",
              1, p);
    if (r == NULL)
        return;
    ms = now_ms() - t1;
    PQclear(r);
    ctl_fmt_ms(lim, sizeof lim, h->slow_ms);
    snprintf(tbuf, sizeof tbuf, "%.1fms", ms);
    c = add_check(h, "database", ms <= (double)h->slow_ms,
                  md_xasprintf("%s answers (SELECT 1 in %.1fms); latest-run query %s (limit %s)%s",
                               target, t1 - t0, tbuf, lim,
                               ms <= (double)h->slow_ms ? "" : ": too slow"));
    jcheck(cJSON_AddNumberToObject(c, "select1_ms", t1 - t0));
    jcheck(cJSON_AddNumberToObject(c, "query_ms", ms));
    jcheck(cJSON_AddNumberToObject(c, "slow_ms", (double)h->slow_ms));
}

/* (2) The node row and one row per enabled job. */
static void check_registered(struct health *h)
{
    const struct md_config *cfg = h->cfg;
    const char *p[1] = {cfg->node_name};
    PGresult *r = query(h, "registry rows", "SELECT job FROM agent_registry WHERE node = $1", 1, p);
    cJSON *missing, *c;
    bool node_row = false;
    size_t nmissing = 0, njobs = 0;
    char *list = md_xstrdup("");

    if (r == NULL) {
        md_free(list);
        return;
    }
    missing = jcheck(cJSON_CreateArray());
    for (int i = 0; i < PQntuples(r); i++)
        if (PQgetisnull(r, i, 0))
            node_row = true;
    for (size_t j = 0; j < cfg->njobs; j++) {
        const struct md_job *job = &cfg->jobs[j];
        bool found = false;

        if (!job_enabled(job))
            continue;
        njobs++;
        for (int i = 0; i < PQntuples(r) && !found; i++)
            found = !PQgetisnull(r, i, 0) && strcmp(PQgetvalue(r, i, 0), job->name) == 0;
        if (!found) {
            char *l = md_xasprintf("%s%s%s", list, nmissing ? ", " : "", job->name);
            md_free(list);
            list = l;
            nmissing++;
            cJSON_AddItemToArray(missing, jcheck(cJSON_CreateString(job->name)));
        }
    }
    PQclear(r);
    if (node_row && nmissing == 0)
        c = add_check(h, "registered", true,
                      md_xasprintf("node %s and its %zu enabled job%s are registered",
                                   cfg->node_name, njobs, njobs == 1 ? "" : "s"));
    else
        c = add_check(h, "registered", false,
                      md_xasprintf("%s%s%s%s%s", node_row ? "" : "no node row for ",
                                   node_row ? "" : cfg->node_name,
                                   !node_row && nmissing ? "; " : "",
                                   nmissing ? "jobs not registered on this node: " : "", list));
    jcheck(cJSON_AddStringToObject(c, "node", cfg->node_name));
    jcheck(cJSON_AddBoolToObject(c, "node_registered", node_row));
    cJSON_AddItemToObject(c, "missing_jobs", missing);
    md_free(list);
}

/* (3) The node's heartbeat is recent and the node is not down. */
static void check_heartbeat(struct health *h)
{
    const char *p[1] = {h->cfg->node_name};
    PGresult *r = query(h, "heartbeat",
                        "SELECT state, (extract(epoch FROM now() - last_heartbeat) * 1000)::bigint,"
                        " to_char(last_heartbeat AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                        "FROM agent_registry WHERE node = $1 AND job IS NULL",
                        1, p);
    char age[32], lim[32];
    cJSON *c;

    if (r == NULL)
        return;
    ctl_fmt_ms(lim, sizeof lim, h->stale_ms);
    if (PQntuples(r) == 0) {
        c = add_check(h, "heartbeat", false,
                      md_xasprintf("node %s has never reported (no node row)", h->cfg->node_name));
    } else {
        const char *state = PQgetvalue(r, 0, 0);
        bool beat = !PQgetisnull(r, 0, 1);
        long long age_ms = beat ? atoll(PQgetvalue(r, 0, 1)) : -1;
        bool fresh = beat && age_ms <= (long long)h->stale_ms;
        bool down = strcmp(state, "down") == 0;

        ctl_fmt_ms(age, sizeof age, age_ms < 0 ? 0 : (uint64_t)age_ms);
        if (down)
            c = add_check(h, "heartbeat", false,
                          md_xasprintf("node %s is down (stopped cleanly; last heartbeat %s%s)",
                                       h->cfg->node_name, beat ? age : "never",
                                       beat ? " ago" : ""));
        else if (!beat)
            c = add_check(h, "heartbeat", false,
                          md_xasprintf("node %s (%s) has no heartbeat", h->cfg->node_name, state));
        else if (!fresh)
            c = add_check(h, "heartbeat", false,
                          md_xasprintf("node %s (%s): heartbeat is stale, last %s ago (limit %s)",
                                       h->cfg->node_name, state, age, lim));
        else
            c = add_check(h, "heartbeat", true,
                          md_xasprintf("node %s (%s): last heartbeat %s ago (limit %s)",
                                       h->cfg->node_name, state, age, lim));
        jcheck(cJSON_AddStringToObject(c, "state", state));
        if (beat) {
            jcheck(cJSON_AddNumberToObject(c, "age_ms", (double)age_ms));
            jcheck(cJSON_AddStringToObject(c, "last_heartbeat", PQgetvalue(r, 0, 2)));
        } else {
            jcheck(cJSON_AddNullToObject(c, "age_ms"));
        }
    }
    jcheck(cJSON_AddNumberToObject(c, "stale_ms", (double)h->stale_ms));
    PQclear(r);
}

/* (4) No open critical alert, on any node. */
static void check_alerts(struct health *h)
{
    PGresult *r = query(h, "alerts",
                        "SELECT key, node, job, message, count, to_char(opened_at AT TIME ZONE "
                        "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM agent_alerts "
                        "WHERE status = 'open' AND severity = 'critical' ORDER BY opened_at DESC",
                        0, NULL);
    cJSON *arr, *c;
    char *detail;
    int n;

    if (r == NULL)
        return;
    n = PQntuples(r);
    arr = jcheck(cJSON_CreateArray());
    detail = n == 0 ? md_xstrdup("no open critical alert")
                    : md_xasprintf("%d open critical alert%s:", n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++) {
        cJSON *a = jcheck(cJSON_CreateObject());
        bool has_job = !PQgetisnull(r, i, 2);

        jcheck(cJSON_AddStringToObject(a, "key", PQgetvalue(r, i, 0)));
        jcheck(cJSON_AddStringToObject(a, "node", PQgetvalue(r, i, 1)));
        if (has_job)
            jcheck(cJSON_AddStringToObject(a, "job", PQgetvalue(r, i, 2)));
        else
            jcheck(cJSON_AddNullToObject(a, "job"));
        jcheck(cJSON_AddStringToObject(a, "message", PQgetvalue(r, i, 3)));
        jcheck(cJSON_AddNumberToObject(a, "count", atof(PQgetvalue(r, i, 4))));
        jcheck(cJSON_AddStringToObject(a, "opened_at", PQgetvalue(r, i, 5)));
        cJSON_AddItemToArray(arr, a);
        detail_item(&detail, i, n, "%s [%s%s%s] %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                    has_job ? "/" : "", has_job ? PQgetvalue(r, i, 2) : "", PQgetvalue(r, i, 3));
    }
    PQclear(r);
    c = add_check(h, "alerts", n == 0, detail);
    cJSON_AddItemToObject(c, "alerts", arr);
}

/* (5) Dead man's switch: jobs with expect.succeed_within succeeded recently enough. */
static void check_expect(struct health *h)
{
    const struct md_config *cfg = h->cfg;

    for (size_t j = 0; j < cfg->njobs; j++) {
        const struct md_job *job = &cfg->jobs[j];
        const char *p[1] = {job->name};
        char win[32], age[32];
        PGresult *r;
        cJSON *c;

        if (!job_enabled(job) || job->expect_success_ms == 0)
            continue;
        r = query(h, "expect",
                  "SELECT (extract(epoch FROM now() - max(finished_at)) * 1000)::bigint, "
                  "to_char(max(finished_at) AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                  "FROM agent_runs WHERE job = $1 AND status = 'succeeded' "
                  "AND finished_at IS NOT NULL",
                  1, p);
        if (r == NULL)
            return;
        ctl_fmt_ms(win, sizeof win, job->expect_success_ms);
        if (PQgetisnull(r, 0, 0)) {
            c = add_check(
                h, "expect", false,
                md_xasprintf("job %s has never succeeded (expected within %s)", job->name, win));
            jcheck(cJSON_AddNullToObject(c, "age_ms"));
        } else {
            long long age_ms = atoll(PQgetvalue(r, 0, 0));
            bool ok = age_ms <= (long long)job->expect_success_ms;

            ctl_fmt_ms(age, sizeof age, age_ms < 0 ? 0 : (uint64_t)age_ms);
            c = add_check(h, "expect", ok,
                          md_xasprintf("job %s: last success %s ago (%s), %s %s", job->name, age,
                                       PQgetvalue(r, 0, 1), ok ? "within" : "expected within",
                                       win));
            jcheck(cJSON_AddNumberToObject(c, "age_ms", (double)age_ms));
            jcheck(cJSON_AddStringToObject(c, "last_success", PQgetvalue(r, 0, 1)));
        }
        jcheck(cJSON_AddStringToObject(c, "job", job->name));
        jcheck(cJSON_AddNumberToObject(c, "succeed_within_ms", (double)job->expect_success_ms));
        PQclear(r);
    }
}

/* The strings of a JSON array, joined with ", " (caller frees). */
static char *join_strings(const cJSON *arr)
{
    const cJSON *e;
    char *out = md_xstrdup("");

    cJSON_ArrayForEach(e, arr)
    {
        char *x;
        if (!cJSON_IsString(e))
            continue;
        x = md_xasprintf("%s%s%s", out, out[0] ? ", " : "", e->valuestring);
        md_free(out);
        out = x;
    }
    return out;
}

/* (6) No slot executed by more than one life (agent_runs.lives, sql/0004) among the runs
 * recorded within --duplicates-since: the run's row names its owner, agent_executions every
 * node and life that ran it. */
static void check_duplicates(struct health *h)
{
    char interval[48], win[32];
    const char *p[1] = {interval};
    PGresult *r;
    cJSON *arr, *c;
    char *detail;
    int n;

    snprintf(interval, sizeof interval, "%llu milliseconds", (unsigned long long)h->dup_ms);
    r = query(h, "duplicates",
              "SELECT r.job, r.run_id, coalesce(to_char(r.scheduled_for AT TIME ZONE 'UTC', "
              "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), ''), r.lives, r.executions, "
              "coalesce((SELECT json_agg(DISTINCT x.node ORDER BY x.node) FROM agent_executions x "
              "WHERE x.run_id = r.run_id), '[]'), "
              "coalesce((SELECT json_agg(DISTINCT x.life ORDER BY x.life) FROM agent_executions x "
              "WHERE x.run_id = r.run_id), '[]') "
              "FROM agent_runs r WHERE r.lives > 1 AND r.created_at >= now() - $1::interval "
              "ORDER BY r.created_at DESC, r.run_id LIMIT 1000",
              1, p);
    if (r == NULL)
        return;
    n = PQntuples(r);
    ctl_fmt_ms(win, sizeof win, h->dup_ms);
    arr = jcheck(cJSON_CreateArray());
    detail = n == 0 ? md_xasprintf("no slot executed more than once in the last %s", win)
                    : md_xasprintf("%s%d slot%s executed more than once in the last %s:",
                                   n == 1000 ? "at least " : "", n, n == 1 ? "" : "s", win);
    for (int i = 0; i < n; i++) {
        cJSON *d = jcheck(cJSON_CreateObject());
        const char *slot = PQgetvalue(r, i, 2);
        cJSON *nodes = cJSON_Parse(PQgetvalue(r, i, 5));
        cJSON *lives = cJSON_Parse(PQgetvalue(r, i, 6));

        if (nodes == NULL)
            nodes = jcheck(cJSON_CreateArray());
        if (lives == NULL)
            lives = jcheck(cJSON_CreateArray());
        jcheck(cJSON_AddStringToObject(d, "job", PQgetvalue(r, i, 0)));
        jcheck(cJSON_AddStringToObject(d, "run_id", PQgetvalue(r, i, 1)));
        if (slot[0] != '\0')
            jcheck(cJSON_AddStringToObject(d, "slot", slot));
        else
            jcheck(cJSON_AddNullToObject(d, "slot"));
        jcheck(cJSON_AddNumberToObject(d, "executions", atof(PQgetvalue(r, i, 4))));
        if (i < DETAIL_ITEMS) {
            char *ns = join_strings(nodes), *ls = join_strings(lives);
            detail_item(&detail, i, n, "%s %s by %s lives (%s) on %s", PQgetvalue(r, i, 0),
                        slot[0] ? slot : PQgetvalue(r, i, 1), PQgetvalue(r, i, 3), ls, ns);
            md_free(ns);
            md_free(ls);
        } else {
            detail_item(&detail, i, n, "%s", ""); /* counted: "and N more" */
        }
        cJSON_AddItemToObject(d, "nodes", nodes);
        cJSON_AddItemToObject(d, "lives", lives);
        cJSON_AddItemToArray(arr, d);
    }
    PQclear(r);
    c = add_check(h, "duplicates", n == 0, detail);
    jcheck(cJSON_AddNumberToObject(c, "since_ms", (double)h->dup_ms));
    cJSON_AddItemToObject(c, "duplicates", arr);
}

/* (7) No pending bus message addressed to a target nobody has: a to_node with no node row, or
 * a to_job with no job row of that name (on to_node, when the message names both), pending for
 * longer than --stale (a node that is starting gets that long to register).  It cannot see
 * whether the named job is an `on:` job of the message's type (the registry does not record
 * `on:`), so such a message waits unreported; docs/cluster.md says so. */
static void check_messages(struct health *h)
{
    char interval[48], lim[32];
    const char *p[1] = {interval};
    PGresult *r;
    cJSON *arr, *c;
    char *detail;
    int n;

    snprintf(interval, sizeof interval, "%llu milliseconds", (unsigned long long)h->stale_ms);
    r = query(h, "messages",
              "SELECT m.id, m.type, m.to_node, m.to_job, to_char(m.created_at AT TIME ZONE "
              "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
              "(extract(epoch FROM now() - m.created_at) * 1000)::bigint "
              "FROM agent_messages m WHERE m.status = 'pending' "
              "AND (m.to_node IS NOT NULL OR m.to_job IS NOT NULL) "
              "AND m.created_at < now() - $1::interval "
              "AND NOT EXISTS (SELECT 1 FROM agent_registry g WHERE "
              "(m.to_job IS NULL AND g.job IS NULL AND g.node = m.to_node) OR "
              "(g.job = m.to_job AND (m.to_node IS NULL OR g.node = m.to_node))) "
              "ORDER BY m.created_at, m.id LIMIT 1000",
              1, p);
    if (r == NULL)
        return;
    n = PQntuples(r);
    ctl_fmt_ms(lim, sizeof lim, h->stale_ms);
    arr = jcheck(cJSON_CreateArray());
    detail = n == 0 ? md_xasprintf("no message pending for an unknown node or job (limit %s)", lim)
                    : md_xasprintf("%s%d message%s pending for a node or job the registry does "
                                   "not know (older than %s):",
                                   n == 1000 ? "at least " : "", n, n == 1 ? "" : "s", lim);
    for (int i = 0; i < n; i++) {
        cJSON *m = jcheck(cJSON_CreateObject());
        bool has_node = !PQgetisnull(r, i, 2), has_job = !PQgetisnull(r, i, 3);

        jcheck(cJSON_AddNumberToObject(m, "id", atof(PQgetvalue(r, i, 0))));
        jcheck(cJSON_AddStringToObject(m, "type", PQgetvalue(r, i, 1)));
        if (has_node)
            jcheck(cJSON_AddStringToObject(m, "to_node", PQgetvalue(r, i, 2)));
        else
            jcheck(cJSON_AddNullToObject(m, "to_node"));
        if (has_job)
            jcheck(cJSON_AddStringToObject(m, "to_job", PQgetvalue(r, i, 3)));
        else
            jcheck(cJSON_AddNullToObject(m, "to_job"));
        jcheck(cJSON_AddStringToObject(m, "created_at", PQgetvalue(r, i, 4)));
        jcheck(cJSON_AddNumberToObject(m, "age_ms", atof(PQgetvalue(r, i, 5))));
        cJSON_AddItemToArray(arr, m);
        detail_item(&detail, i, n, "id %s %s%s%s%s%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                    has_node ? " to_node=" : "", has_node ? PQgetvalue(r, i, 2) : "",
                    has_job ? " to_job=" : "", has_job ? PQgetvalue(r, i, 3) : "");
    }
    PQclear(r);
    c = add_check(h, "messages", n == 0, detail);
    jcheck(cJSON_AddNumberToObject(c, "stale_ms", (double)h->stale_ms));
    cJSON_AddItemToObject(c, "messages", arr);
}

static void print_table(const cJSON *checks, bool healthy)
{
    int w = (int)strlen("CHECK");
    const cJSON *c;
    int nfail = 0, n = 0;

    cJSON_ArrayForEach(c, checks)
    {
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(c, "job");
        int len = (int)strlen(cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring);
        if (cJSON_IsString(job))
            len += 1 + (int)strlen(job->valuestring);
        if (len > w)
            w = len;
    }
    printf("%-*s  %-6s  %s\n", w, "CHECK", "STATUS", "DETAIL");
    cJSON_ArrayForEach(c, checks)
    {
        const cJSON *job = cJSON_GetObjectItemCaseSensitive(c, "job");
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        bool ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "ok"));
        char label[256];

        snprintf(label, sizeof label, "%s%s%s", name, cJSON_IsString(job) ? " " : "",
                 cJSON_IsString(job) ? job->valuestring : "");
        printf("%-*s  %-6s  %s\n", w, label, ok ? "OK" : "FAIL",
               cJSON_GetObjectItemCaseSensitive(c, "detail")->valuestring);
        n++;
        nfail += !ok;
    }
    if (healthy)
        printf("healthy: %d check%s passed\n", n, n == 1 ? "" : "s");
    else
        printf("UNHEALTHY: %d of %d check%s failed\n", nfail, n, n == 1 ? "" : "s");
}

/* The "could not check" outcome: stderr always, and a JSON object on stdout with --json. */
static int cannot_check(bool json, const char *msg)
{
    fprintf(stderr, "meshctl health: %s\n", msg);
    if (json) {
        cJSON *o = jcheck(cJSON_CreateObject());
        char *s;
        jcheck(cJSON_AddBoolToObject(o, "healthy", false));
        jcheck(cJSON_AddBoolToObject(o, "checked", false));
        jcheck(cJSON_AddStringToObject(o, "error", msg));
        jcheck(cJSON_AddArrayToObject(o, "checks"));
        s = jcheck(cJSON_Print(o));
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    }
    fflush(stdout);
    return HEALTH_CANNOT;
}

static bool duration_arg(const char *opt, const char *s, uint64_t *out)
{
    if (md_duration_parse(s, out) != 0 || *out == 0) {
        fprintf(stderr,
                "meshctl health: %s: expected a positive duration like 500ms or 5m, "
                "got '%s'\n",
                opt, s);
        return false;
    }
    return true;
}

int ctl_health(int argc, char **argv)
{
    const char *url = NULL, *cfg_path = NULL;
    bool json = false, healthy = true;
    struct health h = {.stale_ms = 5 * 60 * 1000, .slow_ms = 500, .dup_ms = 24 * 3600 * 1000};
    struct md_config *cfg = NULL;
    struct md_diag diag;
    char *target = NULL, *msg = NULL, *why = NULL;
    int rc = HEALTH_CANNOT;
    const cJSON *c;

    md_diag_init(&diag);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        static const char *const with_value[] = {"--url", "--config", "--stale", "--slow",
                                                 "--duplicates-since"};
        size_t k;

        for (k = 0; k < MD_ARRAY_SIZE(with_value); k++) {
            size_t len = strlen(with_value[k]);
            if (strcmp(a, with_value[k]) == 0 && i + 1 < argc) {
                val = argv[++i];
                break;
            }
            if (strncmp(a, with_value[k], len) == 0 && a[len] == '=') {
                val = a + len + 1;
                break;
            }
        }
        if (k == 0 && val) {
            url = val;
        } else if (k == 1 && val) {
            cfg_path = val;
        } else if (k == 2 && val) {
            if (!duration_arg("--stale", val, &h.stale_ms))
                goto out;
        } else if (k == 3 && val) {
            if (!duration_arg("--slow", val, &h.slow_ms))
                goto out;
        } else if (k == 4 && val) {
            if (!duration_arg("--duplicates-since", val, &h.dup_ms))
                goto out;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else {
            health_usage();
            goto out;
        }
    }
    if (cfg_path == NULL)
        cfg_path = ctl_default_config();
    if (md_config_load(cfg_path, &cfg, &diag) != 0) {
        md_diag_print(&diag, cfg_path, stderr);
        msg = md_xasprintf("cannot load the config %s", cfg_path);
        rc = cannot_check(json, msg);
        goto out;
    }
    h.cfg = cfg;
    /* An empty --url counts as none: $DATABASE_URL, then registry.url. */
    url = md_pq_url(url != NULL && url[0] != '\0' ? url : NULL, cfg->registry_url);
    if (url == NULL) {
        rc = cannot_check(json, "no database: pass --url, set DATABASE_URL or registry.url");
        goto out;
    }
    target = md_pq_target(url, MD_PQ_TARGET_URL);
    /* A 10 s connect timeout unless the URL sets its own. */
    switch (md_pq_connect(url, "10", &h.conn, &why)) {
    case 0:
        break;
    case MD_ECONFIG:
        rc = cannot_check(json, why);
        goto out;
    default: /* libpq's first line is enough here */
        msg = md_xasprintf("cannot connect to %s: %.*s", target, (int)strcspn(why, "\n"), why);
        rc = cannot_check(json, msg);
        goto out;
    }
    PQsetNoticeProcessor(h.conn, NULL, NULL);
    h.checks = jcheck(cJSON_CreateArray());
    check_database(&h, target);
    if (h.error == NULL)
        check_registered(&h);
    if (h.error == NULL)
        check_heartbeat(&h);
    if (h.error == NULL)
        check_alerts(&h);
    if (h.error == NULL)
        check_expect(&h);
    if (h.error == NULL)
        check_duplicates(&h);
    if (h.error == NULL)
        check_messages(&h);
    if (h.error) {
        msg = md_xasprintf("%s: %s", target, h.error);
        rc = cannot_check(json, msg);
        goto out;
    }
    cJSON_ArrayForEach(c, h.checks)
    {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "ok")))
            healthy = false;
    }
    if (json) {
        cJSON *o = jcheck(cJSON_CreateObject());
        char *s;

        jcheck(cJSON_AddBoolToObject(o, "healthy", healthy));
        jcheck(cJSON_AddBoolToObject(o, "checked", true));
        jcheck(cJSON_AddStringToObject(o, "node", cfg->node_name));
        jcheck(cJSON_AddStringToObject(o, "target", target));
        cJSON_AddItemToObject(o, "checks", h.checks);
        h.checks = NULL;
        s = jcheck(cJSON_Print(o));
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        print_table(h.checks, healthy);
    }
    fflush(stdout);
    rc = healthy ? HEALTH_OK : HEALTH_UNHEALTHY;
out:
    cJSON_Delete(h.checks);
    PQfinish(h.conn);
    md_free(h.error);
    md_free(msg);
    md_free(why);
    md_free(target);
    md_config_free(cfg);
    md_diag_cleanup(&diag);
    return rc;
}
