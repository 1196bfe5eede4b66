/* send_github.c - one GitHub issue per alert fingerprint, through the REST API (send.h,
 * docs/report-receivers.md).
 *
 * A github note carries exactly one alert.  Its issue is found without the search API (which
 * has its own, much lower, rate limit and an indexing lag):
 *
 *   - meshd_report.github_issues maps (receiver, fingerprint) to the issue number, URL and
 *     state, written after every step;
 *   - when that row is missing (a new registry, a deleted row, another repo), the issue is found
 *     again by its fingerprint label: GET /repos/{o}/{r}/issues?labels=meshd-fp:<fp>&state=all
 *     (the core quota; newest first; pull requests skipped; an open issue wins over closed
 *     ones).  Every issue meshd opens carries that label and the hidden body marker
 *     <!-- meshd:fp=<fp> -->.
 *
 * The life cycle, by meshd.kind:
 *
 *   firing       the listing above, always (it is the truth about open or closed, and it makes
 *   escalation   a retry idempotent): an open issue gets a comment ("firing again", or
 *                "escalated" with the mention), unless its body carries this very
 *                notification's marker <!-- meshd:note=<idempotencyKey> --> (a retry whose
 *                first attempt created it); a closed one closed less than reopen_within ago is
 *                reopened (PATCH state open) and gets a comment; otherwise a new issue is
 *                created (title, body, labels meshd, meshd-fp:<fp>, severity:<s>, job:<j>,
 *                plus the receiver's labels).
 *   repeat       a comment: still firing, how often, the last message, the link.  No issue
 *                yet (its firing never got through): one is created.
 *   resolved     a comment, then PATCH {"state":"closed","state_reason":"completed"}.  No
 *                issue, or one already closed: nothing to do (sent).
 *
 * Each step is a few requests under one deadline (the receiver's timeout).  A step cut short
 * (a timeout, a 5xx on its second request) is retried whole: it may repeat a comment, never an
 * issue, since a create is always preceded by the listing and an issue carries its label from
 * the start.  A mapped issue that answers 404 or 410 (deleted, transferred) loses its row and
 * the step is retried, which finds or creates the right one.
 *
 * Rate limits: 429, and 403 with Retry-After or x-ratelimit-remaining: 0, are RPT_RETRY with
 * retry_after_ms from Retry-After, else from x-ratelimit-reset; any other 403 (no permission)
 * RPT_FAILED, as is 401 (a bad token).  The token goes only into the Authorization header.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "http.h"
#include "meshd/md_alloc.h"
#include "meshd/md_pq.h"
#include "meshd/md_time.h"
#include "meshd/md_tz.h"
#include "render.h"
#include "send_internal.h"

#define API_VERSION "2022-11-28"
#define LIST_PER_PAGE 30
#define LIST_BODY_MAX (2 * 1024 * 1024) /* 30 issues with their bodies */

/* An issue as far as the life cycle needs it. */
struct issue {
    bool found;
    int64_t number;
    char url[256]; /* html_url */
    bool open;
    int64_t closed_ms; /* Unix ms; 0 unknown or open */
    int64_t created_ms;
    int occurrences; /* firing episodes on it (the registry's count; 1 when rebuilt) */
    bool has_note;   /* its body carries this notification's marker */
    bool mapped;     /* it came from the registry row, not from GitHub just now */
};

struct gh {
    const struct rpt_receiver *r;
    PGconn *db; /* NULL: no registry (the mapping is always rebuilt) */
    const cJSON *note, *alert;
    const char *kind, *idem, *fp;
    bool escalation;
    char fp_label[RPT_GH_LABEL_MAX + 1];
    char *base; /* "<url>/repos/<owner>/<name>/issues" */
    struct curl_slist *hdrs;
    int64_t deadline;
    struct rpt_answer *a;
    long last_code;
    bool acted; /* GitHub took a change (an issue, a comment, a state) in this step */
};

/* ---- the registry ---------------------------------------------------------------------------- */

/* Runs sql on the registry; inside a transaction of the caller's (deliver.c holds the outbox
 * row's lock in one) under a savepoint, so a failure here does not abort it.  Returns 0 or a
 * code as md_pq_exec; *res (may be NULL) for the caller to PQclear. */
static int db_exec(struct gh *g, const char *sql, int n, const char *const *params, PGresult **res)
{
    struct md_error err = {0};
    bool sp = PQtransactionStatus(g->db) == PQTRANS_INTRANS;
    int rc;

    if (res != NULL)
        *res = NULL;
    if (sp && (rc = md_pq_exec(g->db, "SAVEPOINT rpt_github", 0, NULL, NULL, &err)) < 0)
        goto fail;
    if ((rc = md_pq_exec(g->db, sql, n, params, res, &err)) < 0) {
        struct md_error e2 = {0};
        /* If this fails too the connection is gone, and the caller's transaction with it. */
        if (sp && md_pq_exec(g->db, "ROLLBACK TO SAVEPOINT rpt_github", 0, NULL, NULL, &e2) < 0)
            rc = rc == -ECANCELED ? rc : MD_EDBDOWN;
        goto fail;
    }
    if (sp && (rc = md_pq_exec(g->db, "RELEASE SAVEPOINT rpt_github", 0, NULL, NULL, &err)) < 0)
        goto fail;
    return 0;
fail:
    if (res != NULL && *res != NULL) {
        PQclear(*res);
        *res = NULL;
    }
    /* The receiver may have done its part: keep its outcome, say what went wrong after. */
    {
        char prev[sizeof g->a->detail];
        snprintf(prev, sizeof prev, "%s", g->a->detail);
        rpt_answer_set(g->a, g->acted ? g->a->outcome : RPT_RETRY, g->a->code,
                       "%s%sregistry (meshd_report.github_issues): %s", prev, prev[0] ? "; " : "",
                       err.msg);
    }
    return rc;
}

static int db_load(struct gh *g, struct issue *is)
{
    static const char sql[] =
        "SELECT repo, number, url, state, occurrences,"
        " COALESCE((extract(epoch FROM closed_at) * 1000)::bigint, 0),"
        " (extract(epoch FROM opened_at) * 1000)::bigint"
        " FROM meshd_report.github_issues WHERE receiver = $1 AND fingerprint = $2";
    const char *params[] = {g->r->name, g->fp};
    PGresult *res;
    int rc;

    memset(is, 0, sizeof *is);
    if (g->db == NULL)
        return 0;
    if ((rc = db_exec(g, sql, 2, params, &res)) < 0)
        return rc;
    /* A row for another repo (the receiver's repo changed) is no mapping for this one. */
    if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), g->r->repo) == 0) {
        is->found = is->mapped = true;
        is->number = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
        snprintf(is->url, sizeof is->url, "%s", PQgetvalue(res, 0, 2));
        is->open = strcmp(PQgetvalue(res, 0, 3), "open") == 0;
        is->occurrences = (int)strtol(PQgetvalue(res, 0, 4), NULL, 10);
        is->closed_ms = strtoll(PQgetvalue(res, 0, 5), NULL, 10);
        is->created_ms = strtoll(PQgetvalue(res, 0, 6), NULL, 10);
    }
    PQclear(res);
    return 0;
}

/* Writes is as the mapping.  opened_ms > 0: the issue was opened (created or reopened) then. */
static int db_store(struct gh *g, const struct issue *is, int64_t opened_ms)
{
    static const char sql[] =
        "INSERT INTO meshd_report.github_issues AS g"
        " (receiver, fingerprint, repo, number, url, state, occurrences, opened_at, closed_at,"
        " updated_at)"
        " VALUES ($1, $2, $3, $4::integer, $5, $6, $7::integer,"
        " COALESCE(to_timestamp(NULLIF($8::bigint, 0) / 1000.0), now()),"
        " to_timestamp(NULLIF($9::bigint, 0) / 1000.0), now())"
        " ON CONFLICT (receiver, fingerprint) DO UPDATE SET repo = EXCLUDED.repo,"
        " number = EXCLUDED.number, url = EXCLUDED.url, state = EXCLUDED.state,"
        " occurrences = EXCLUDED.occurrences,"
        " opened_at = CASE WHEN $8::bigint > 0 THEN EXCLUDED.opened_at ELSE g.opened_at END,"
        " closed_at = EXCLUDED.closed_at, updated_at = now()";
    char number[24], occ[16], opened[24], closed[24];
    const char *params[] = {g->r->name, g->fp,   g->r->repo,
                            number,     is->url, is->open ? "open" : "closed",
                            occ,        opened,  closed};

    if (g->db == NULL)
        return 0;
    snprintf(number, sizeof number, "%" PRId64, is->number);
    snprintf(occ, sizeof occ, "%d", is->occurrences > 0 ? is->occurrences : 1);
    snprintf(opened, sizeof opened, "%" PRId64, opened_ms);
    snprintf(closed, sizeof closed, "%" PRId64, is->open ? 0 : is->closed_ms);
    return db_exec(g, sql, 9, params, NULL);
}

static int db_forget(struct gh *g)
{
    static const char sql[] =
        "DELETE FROM meshd_report.github_issues WHERE receiver = $1 AND fingerprint = $2";
    const char *params[] = {g->r->name, g->fp};

    return g->db == NULL ? 0 : db_exec(g, sql, 2, params, NULL);
}

/* ---- the API --------------------------------------------------------------------------------- */

/* GitHub's rate limits (docs.github.com rest/using-the-rest-api/rate-limits-for-the-rest-api):
 * the primary one answers 403 or 429 with x-ratelimit-remaining: 0 and the reset instant; a
 * secondary one 403 or 429 with Retry-After.  Any other 403 is a permission problem. */
static void classify_limits(struct gh *g, const struct rpt_http_resp *resp)
{
    struct rpt_answer *a = g->a;
    bool limited = resp->retry_after_ms > 0 || resp->ratelimit_remaining == 0;

    if (resp->code != 403 && resp->code != 429)
        return;
    if (resp->code == 403 && !limited)
        return; /* rpt_http made it RPT_FAILED */
    a->outcome = RPT_RETRY;
    a->retry_after_ms = resp->retry_after_ms;
    if (a->retry_after_ms == 0 && resp->ratelimit_reset > 0) {
        int64_t wait = resp->ratelimit_reset * 1000 - md_time_wall_ms();
        a->retry_after_ms = wait > 1000 ? wait : 1000;
    }
}

/* One request to path (after the issues base: "", "/12", "/12/comments", "?labels=...").
 * *ok when it answered 2xx; otherwise g->a holds the answer and the step stops. */
static int gh_req(struct gh *g, const char *method, const char *path, const cJSON *body,
                  struct rpt_http_resp *resp, size_t body_max, bool *ok)
{
    char *url = md_xasprintf("%s%s", g->base, path), *text = NULL;
    struct rpt_http_req q = {.method = method,
                             .url = url,
                             .headers = g->hdrs,
                             .body_max = body_max,
                             .deadline_ms = g->deadline};
    int rc;

    *ok = false;
    if (body != NULL) {
        text = cJSON_PrintUnformatted(body);
        q.body = text;
        q.len = text ? strlen(text) : 0;
    }
    rc = rpt_http(g->r, &q, resp, g->a);
    md_free(url);
    cJSON_free(text);
    if (rc < 0)
        return rc;
    g->last_code = resp->code;
    classify_limits(g, resp);
    *ok = g->a->outcome == RPT_SENT;
    if (*ok && strcmp(method, "GET") != 0)
        g->acted = true;
    return 0;
}

static cJSON *parse_body(const struct rpt_http_resp *resp)
{
    return resp->body_cut ? NULL : cJSON_ParseWithLength(md_buf_str(&resp->body), resp->body.len);
}

static int64_t iso_ms(const char *s)
{
    int64_t t;
    return s[0] && md_time_parse_iso(s, &t) == 0 ? t * 1000 : 0;
}

/* An issue object (GitHub's shape) into is; false when it is not one. */
static bool issue_from_json(struct gh *g, const cJSON *j, struct issue *is)
{
    const cJSON *num = cJSON_GetObjectItemCaseSensitive(j, "number");

    if (!cJSON_IsNumber(num) || num->valuedouble < 1)
        return false;
    memset(is, 0, sizeof *is);
    is->found = true;
    is->number = (int64_t)num->valuedouble;
    snprintf(is->url, sizeof is->url, "%s", rpt_jstr(j, "html_url"));
    is->open = strcmp(rpt_jstr(j, "state"), "open") == 0;
    is->closed_ms = is->open ? 0 : iso_ms(rpt_jstr(j, "closed_at"));
    is->created_ms = iso_ms(rpt_jstr(j, "created_at"));
    is->has_note = rpt_gh_has_note(rpt_jstr(j, "body"), g->idem);
    return true;
}

/* The fingerprint's issue on GitHub, by its label: the newest open one, else the newest.
 * is->found false when there is none.  *ok as for gh_req. */
static int gh_find(struct gh *g, struct issue *is, bool *ok)
{
    struct rpt_http_resp resp;
    char *label = curl_easy_escape(NULL, g->fp_label, 0), *path;
    const cJSON *it;
    cJSON *arr;
    int rc;

    memset(is, 0, sizeof *is);
    if (label == NULL) {
        rpt_answer_set(g->a, RPT_RETRY, 0, "out of memory (curl_easy_escape)");
        *ok = false;
        return 0;
    }
    path = md_xasprintf("?labels=%s&state=all&sort=created&direction=desc&per_page=%d", label,
                        LIST_PER_PAGE);
    curl_free(label);
    rc = gh_req(g, "GET", path, NULL, &resp, LIST_BODY_MAX, ok);
    md_free(path);
    if (rc < 0 || !*ok)
        goto out;
    if ((arr = parse_body(&resp)) == NULL || !cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        rpt_answer_set(g->a, RPT_RETRY, resp.code,
                       "HTTP %ld: the issue listing is not a JSON array%s", resp.code,
                       resp.body_cut ? " (too long)" : "");
        *ok = false;
        goto out;
    }
    cJSON_ArrayForEach(it, arr)
    {
        struct issue c;
        if (cJSON_GetObjectItemCaseSensitive(it, "pull_request") != NULL ||
            !issue_from_json(g, it, &c))
            continue;
        /* open beats closed; among equals the higher number (the newer) */
        if (!is->found || (c.open && !is->open) || (c.open == is->open && c.number > is->number))
            *is = c;
    }
    cJSON_Delete(arr);
out:
    rpt_http_resp_free(&resp);
    return rc;
}

static int gh_comment(struct gh *g, const struct issue *is, enum rpt_gh_event ev, int occurrence,
                      bool *ok)
{
    struct rpt_http_resp resp;
    char *text = rpt_gh_comment(g->note, g->alert, ev, occurrence, g->r->mention);
    char path[48];
    cJSON *body = cJSON_CreateObject();
    int rc;

    cJSON_AddStringToObject(body, "body", text);
    md_free(text);
    snprintf(path, sizeof path, "/%" PRId64 "/comments", is->number);
    rc = gh_req(g, "POST", path, body, &resp, 0, ok);
    cJSON_Delete(body);
    rpt_http_resp_free(&resp);
    return rc;
}

/* PATCH the issue's state: open ("reopened") or closed ("completed"). */
static int gh_set_state(struct gh *g, struct issue *is, bool open, bool *ok)
{
    struct rpt_http_resp resp;
    cJSON *body = cJSON_CreateObject(), *j;
    char path[32];
    int rc;

    cJSON_AddStringToObject(body, "state", open ? "open" : "closed");
    cJSON_AddStringToObject(body, "state_reason", open ? "reopened" : "completed");
    snprintf(path, sizeof path, "/%" PRId64, is->number);
    rc = gh_req(g, "PATCH", path, body, &resp, 0, ok);
    cJSON_Delete(body);
    if (rc == 0 && *ok) {
        struct issue n;
        is->open = open;
        is->closed_ms = open ? 0 : md_time_wall_ms();
        if ((j = parse_body(&resp)) != NULL && issue_from_json(g, j, &n)) {
            snprintf(is->url, sizeof is->url, "%s", n.url);
            if (!open && n.closed_ms > 0)
                is->closed_ms = n.closed_ms;
        }
        cJSON_Delete(j);
    }
    rpt_http_resp_free(&resp);
    return rc;
}

static int gh_create(struct gh *g, struct issue *is, bool *ok)
{
    struct rpt_http_resp resp;
    char *title = rpt_gh_title(g->alert, g->r->subject_prefix);
    char *text = rpt_gh_body(g->note, g->alert, g->r->mention);
    cJSON *body = cJSON_CreateObject(), *j;
    int rc;

    cJSON_AddStringToObject(body, "title", title);
    cJSON_AddStringToObject(body, "body", text);
    cJSON_AddItemToObject(body, "labels", rpt_gh_labels(g->r, g->alert));
    md_free(title);
    md_free(text);
    rc = gh_req(g, "POST", "", body, &resp, 0, ok);
    cJSON_Delete(body);
    if (rc == 0 && *ok) {
        if ((j = parse_body(&resp)) == NULL || !issue_from_json(g, j, is)) {
            /* Created, but we cannot tell which: the next step finds it by its label. */
            memset(is, 0, sizeof *is);
        }
        is->open = true;
        is->occurrences = 1;
        cJSON_Delete(j);
    }
    rpt_http_resp_free(&resp);
    return rc;
}

/* ---- the life cycle -------------------------------------------------------------------------- */

static void sent(struct gh *g, const struct issue *is, const char *fmt, ...) MD_PRINTF(3, 4);

static void sent(struct gh *g, const struct issue *is, const char *fmt, ...)
{
    char what[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (g->last_code > 0)
        rpt_answer_set(g->a, RPT_SENT, g->last_code, "HTTP %ld: %s", g->last_code, what);
    else
        rpt_answer_set(g->a, RPT_SENT, 0, "%s", what);
    if (is != NULL)
        rpt_clean_text(g->a->ref, sizeof g->a->ref, is->url, strlen(is->url));
}

/* A mapped issue that is gone (404, 410): forget the row, try again. */
static int gone(struct gh *g, const struct issue *is)
{
    if (!is->mapped || (g->last_code != 404 && g->last_code != 410))
        return 0;
    {
        char prev[sizeof g->a->detail];
        snprintf(prev, sizeof prev, "%s", g->a->detail);
        rpt_answer_set(g->a, RPT_RETRY, g->last_code,
                       "%s (issue #%" PRId64 " is gone: its mapping is dropped, the next attempt "
                       "looks for the issue again)",
                       prev, is->number);
    }
    return db_forget(g);
}

/* firing, escalation */
static int step_open(struct gh *g, const struct issue *mapped)
{
    struct issue is;
    bool ok;
    int rc, occ;

    if ((rc = gh_find(g, &is, &ok)) < 0 || !ok)
        return rc;
    occ = mapped->found && mapped->number == is.number && mapped->occurrences > 0
              ? mapped->occurrences
              : 1;
    if (is.found && is.open && is.has_note) {
        is.occurrences = occ;
        sent(g, &is, "issue #%" PRId64 " was opened by this notification already", is.number);
        return db_store(g, &is, 0);
    }
    if (is.found && is.open) {
        if (!g->escalation)
            occ++;
        if ((rc = gh_comment(g, &is, g->escalation ? RPT_GH_ESCALATED : RPT_GH_FIRING_AGAIN, occ,
                             &ok)) < 0 ||
            !ok)
            return rc;
        is.occurrences = occ;
        sent(g, &is, "commented on open issue #%" PRId64, is.number);
        return db_store(g, &is, 0);
    }
    if (is.found && is.closed_ms > 0 &&
        md_time_wall_ms() - is.closed_ms < (int64_t)g->r->reopen_within_ms) {
        if ((rc = gh_set_state(g, &is, true, &ok)) < 0 || !ok)
            return rc;
        occ++;
        is.occurrences = occ;
        /* Reopened: the mapping says so even if the comment fails. */
        if ((rc = db_store(g, &is, md_time_wall_ms())) < 0)
            return rc;
        if ((rc = gh_comment(g, &is, RPT_GH_REOPENED, occ, &ok)) < 0 || !ok)
            return rc;
        sent(g, &is, "reopened issue #%" PRId64 " and commented", is.number);
        return 0;
    }
    if ((rc = gh_create(g, &is, &ok)) < 0 || !ok)
        return rc;
    if (!is.found) {
        sent(g, NULL, "created an issue (its number will be found by its label)");
        return 0;
    }
    sent(g, &is, "opened issue #%" PRId64, is.number);
    return db_store(g, &is, is.created_ms > 0 ? is.created_ms : md_time_wall_ms());
}

/* The issue for repeat and resolved: the mapping, else the listing (and the mapping is
 * written).  is->found false: there is none. */
static int known_issue(struct gh *g, struct issue *is, bool *ok)
{
    int rc;

    *ok = true;
    if (is->found)
        return 0;
    if ((rc = gh_find(g, is, ok)) < 0 || !*ok || !is->found)
        return rc;
    is->occurrences = 1;
    return db_store(g, is, is->created_ms);
}

static int step_repeat(struct gh *g, struct issue *is)
{
    bool ok;
    int rc;

    if ((rc = known_issue(g, is, &ok)) < 0 || !ok)
        return rc;
    if (!is->found)
        return step_open(g, is); /* its firing never got through */
    if ((rc = gh_comment(g, is, RPT_GH_REPEAT, 0, &ok)) < 0)
        return rc;
    if (!ok)
        return gone(g, is);
    sent(g, is, "commented on issue #%" PRId64, is->number);
    return 0;
}

static int step_resolved(struct gh *g, struct issue *is)
{
    bool ok;
    int rc;

    if ((rc = known_issue(g, is, &ok)) < 0 || !ok)
        return rc;
    if (!is->found) {
        sent(g, NULL, "no issue for this alert: nothing to close");
        return 0;
    }
    if (!is->open) {
        sent(g, is, "issue #%" PRId64 " is closed already", is->number);
        return 0;
    }
    if ((rc = gh_comment(g, is, RPT_GH_RESOLVED, 0, &ok)) < 0)
        return rc;
    if (!ok)
        return gone(g, is);
    if ((rc = gh_set_state(g, is, false, &ok)) < 0 || !ok)
        return rc;
    if ((rc = db_store(g, is, 0)) < 0)
        return rc;
    sent(g, is, "commented on issue #%" PRId64 " and closed it", is->number);
    return 0;
}

/* The fingerprint as the planner makes it: 16 hex digits (a little laxer: 1..40 of [0-9a-z]). */
static bool fp_ok(const char *fp)
{
    size_t n = strlen(fp);

    if (n == 0 || n > 40)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((fp[i] >= '0' && fp[i] <= '9') || (fp[i] >= 'a' && fp[i] <= 'z')))
            return false;
    return true;
}

static bool headers(struct gh *g)
{
    char *auth = md_xasprintf("Bearer %s", g->r->token);
    bool ok = rpt_header_add(&g->hdrs, "Authorization", auth) &&
              rpt_header_add(&g->hdrs, "Accept", "application/vnd.github+json") &&
              rpt_header_add(&g->hdrs, "X-GitHub-Api-Version", API_VERSION) &&
              rpt_header_add(&g->hdrs, "Content-Type", "application/json");

    /* the token is not kept anywhere else */
    memset(auth, 0, strlen(auth));
    md_free(auth);
    return ok;
}

int rpt_send_github(const struct rpt_receiver *r, const struct rpt_send_ctx *ctx, const cJSON *note,
                    struct rpt_answer *a)
{
    const cJSON *alerts = cJSON_GetObjectItemCaseSensitive(note, "alerts");
    struct gh g = {.r = r, .note = note, .a = a};
    struct issue mapped;
    const char *slash;
    char *owner = NULL, *name = NULL, *base;
    size_t blen;
    int rc = 0;

    g.db = ctx != NULL ? ctx->db : NULL;
    g.kind = rpt_note_meshd(note, "kind");
    g.idem = rpt_note_meshd(note, "idempotencyKey");
    g.escalation = strcmp(g.kind, "escalation") == 0;
    if (strcmp(g.kind, "digest") == 0) {
        rpt_answer_set(a, RPT_FAILED, 0, "a github receiver takes no digest");
        return 0;
    }
    if (!cJSON_IsArray(alerts) || cJSON_GetArraySize(alerts) != 1) {
        rpt_answer_set(a, RPT_FAILED, 0, "a github note carries exactly one alert, not %d",
                       cJSON_IsArray(alerts) ? cJSON_GetArraySize(alerts) : 0);
        return 0;
    }
    g.alert = cJSON_GetArrayItem(alerts, 0);
    g.fp = rpt_jstr(g.alert, "fingerprint");
    if (!fp_ok(g.fp)) {
        rpt_answer_set(a, RPT_FAILED, 0, "the alert's fingerprint \"%.40s\" is not hex digits",
                       g.fp);
        return 0;
    }
    rpt_gh_fp_label(g.fp, g.fp_label, sizeof g.fp_label);
    if (r->token == NULL || !headers(&g)) {
        rpt_answer_set(a, RPT_FAILED, 0, "the token is missing or holds a control character");
        goto out;
    }
    slash = strchr(r->repo, '/');
    owner = curl_easy_escape(NULL, r->repo, (int)(slash - r->repo));
    name = curl_easy_escape(NULL, slash + 1, 0);
    if (owner == NULL || name == NULL) {
        rpt_answer_set(a, RPT_RETRY, 0, "out of memory (curl_easy_escape)");
        goto out;
    }
    base = md_xstrdup(r->url);
    blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        base[--blen] = '\0';
    g.base = md_xasprintf("%s/repos/%s/%s/issues", base, owner, name);
    md_free(base);
    g.deadline = rpt_deadline(r->timeout_ms);

    if ((rc = db_load(&g, &mapped)) < 0)
        goto out;
    if (strcmp(g.kind, "firing") == 0 || g.escalation)
        rc = step_open(&g, &mapped);
    else if (strcmp(g.kind, "repeat") == 0)
        rc = step_repeat(&g, &mapped);
    else
        rc = step_resolved(&g, &mapped);
out:
    curl_free(owner);
    curl_free(name);
    curl_slist_free_all(g.hdrs);
    md_free(g.base);
    return rc;
}
