/* plan.c - the registry side of route.c: under one advisory lock (so one node plans at a
 * time), read the alerts and the groups' state, decide with rpt_plan, and write the due
 * notifications into the outbox and the new state back, in one transaction.  A notification
 * is therefore planned exactly once whichever nodes run meshd-report, however often.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_pq.h"
#include "meshd/md_time.h"
#include "plan.h"
#include "route.h"

static const char load_groups_sql[] =
    "SELECT receiver, group_key, route,"
    "       coalesce((extract(epoch FROM first_seen) * 1000)::bigint, 0),"
    "       coalesce((extract(epoch FROM last_sent_at) * 1000)::bigint, 0), sent::text, seq"
    "  FROM meshd_report.groups WHERE receiver = ANY ($1::text[]) ORDER BY receiver, group_key";

/* The open alerts, and the resolved ones a group was last told were firing ($1). */
static const char load_alerts_sql[] =
    "SELECT id, key, severity, coalesce(job, ''), node, message, count,"
    "       (extract(epoch FROM opened_at) * 1000)::bigint,"
    "       (extract(epoch FROM updated_at) * 1000)::bigint,"
    "       coalesce((extract(epoch FROM resolved_at) * 1000)::bigint, 0),"
    "       left(encode(sha256(convert_to(key, 'UTF8')), 'hex'), 16)"
    "  FROM agent_alerts WHERE status = 'open' OR id = ANY ($1::bigint[]) ORDER BY id";

static const char insert_sql[] =
    "INSERT INTO meshd_report.outbox (idem_key, receiver, group_key, kind, payload, raised_at)"
    " VALUES ($1, $2, $3, $4, $5::jsonb, to_timestamp($6::bigint / 1000.0))"
    " ON CONFLICT (idem_key) DO NOTHING";

static const char upsert_group_sql[] =
    "INSERT INTO meshd_report.groups (receiver, group_key, route, first_seen, last_sent_at,"
    "                                 sent, seq, updated_at)"
    " VALUES ($1, $2, $3, to_timestamp($4::bigint / 1000.0), to_timestamp($5::bigint / 1000.0),"
    "         $6::jsonb, $7, now())"
    " ON CONFLICT (receiver, group_key) DO UPDATE SET route = EXCLUDED.route,"
    "   first_seen = EXCLUDED.first_seen, last_sent_at = EXCLUDED.last_sent_at,"
    "   sent = EXCLUDED.sent, seq = EXCLUDED.seq, updated_at = now()";

static const char delete_group_sql[] =
    "DELETE FROM meshd_report.groups WHERE receiver = $1 AND group_key = $2";

struct plan_tx {
    const struct rpt_cfg *cfg;
    const char *node;
    int64_t now_ms;
    size_t planned;
    int64_t next_ms;
};

char *rpt_receiver_names(const struct rpt_cfg *cfg)
{
    struct md_buf b;

    md_buf_init(&b, 1u << 20);
    md_buf_puts(&b, "{");
    for (size_t i = 0; i < cfg->receivers.n; i++)
        md_buf_printf(&b, "%s%s", i ? "," : "", rpt_receiver_at(cfg, (int)i)->name);
    md_buf_puts(&b, "}");
    return md_buf_take(&b);
}

static int64_t i64(const PGresult *r, int row, int col)
{
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* "[1, 2, 3]" (jsonb text) -> ids. */
static void parse_ids(const char *text, int64_t **out, size_t *n)
{
    cJSON *a = cJSON_Parse(text), *e;
    size_t k = 0;

    *out = md_xcalloc((size_t)cJSON_GetArraySize(a) + 1, sizeof **out);
    cJSON_ArrayForEach(e, a)
    {
        if (cJSON_IsNumber(e))
            (*out)[k++] = (int64_t)e->valuedouble;
    }
    *n = k;
    cJSON_Delete(a);
}

/* Only this config's receivers' groups: another report job with receivers of other names
 * (its own routes) plans its own groups beside these without either touching the other's. */
static int load_groups(PGconn *c, const struct rpt_cfg *cfg, struct rpt_groups *gs,
                       struct md_error *err)
{
    const char *p[1];
    PGresult *r;
    char *names = rpt_receiver_names(cfg);
    int rc;

    p[0] = names;
    rc = md_pq_exec(c, load_groups_sql, 1, p, &r, err);
    md_free(names);
    if (rc < 0)
        return rc;
    gs->cap = gs->n = (size_t)PQntuples(r);
    gs->v = md_xcalloc(gs->cap + 1, sizeof *gs->v);
    for (int i = 0; i < PQntuples(r); i++) {
        struct rpt_group *g = &gs->v[i];
        g->receiver = md_xstrdup(PQgetvalue(r, i, 0));
        g->group_key = md_xstrdup(PQgetvalue(r, i, 1));
        g->route = md_xstrdup(PQgetvalue(r, i, 2));
        g->first_seen_ms = i64(r, i, 3);
        g->last_sent_ms = i64(r, i, 4);
        parse_ids(PQgetvalue(r, i, 5), &g->sent, &g->nsent);
        g->seq = i64(r, i, 6);
    }
    PQclear(r);
    return 0;
}

static int load_alerts(PGconn *c, const struct rpt_groups *gs, struct rpt_alert **out, size_t *n,
                       struct md_error *err)
{
    struct md_buf ids;
    const char *params[1];
    PGresult *r;
    int rc;

    md_buf_init(&ids, 64u << 20);
    md_buf_puts(&ids, "{");
    for (size_t i = 0; i < gs->n; i++)
        for (size_t k = 0; k < gs->v[i].nsent; k++)
            md_buf_printf(&ids, "%s%" PRId64, ids.len > 1 ? "," : "", gs->v[i].sent[k]);
    md_buf_puts(&ids, "}");
    params[0] = md_buf_str(&ids);
    rc = md_pq_exec(c, load_alerts_sql, 1, params, &r, err);
    md_buf_free(&ids);
    if (rc < 0)
        return rc;
    *n = (size_t)PQntuples(r);
    *out = md_xcalloc(*n + 1, sizeof **out);
    for (int i = 0; i < PQntuples(r); i++) {
        struct rpt_alert *a = &(*out)[i];
        a->id = i64(r, i, 0);
        a->key = md_xstrdup(PQgetvalue(r, i, 1));
        a->severity = md_xstrdup(PQgetvalue(r, i, 2));
        a->job = md_xstrdup(PQgetvalue(r, i, 3));
        a->node = md_xstrdup(PQgetvalue(r, i, 4));
        a->message = md_xstrdup(PQgetvalue(r, i, 5));
        a->count = i64(r, i, 6);
        a->opened_ms = i64(r, i, 7);
        a->updated_ms = i64(r, i, 8);
        a->resolved_ms = i64(r, i, 9);
        snprintf(a->fp, sizeof a->fp, "%s", PQgetvalue(r, i, 10));
    }
    PQclear(r);
    return 0;
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
    char buf[40];
    if (ms <= 0) {
        cJSON_AddStringToObject(o, key, "0001-01-01T00:00:00Z"); /* Alertmanager's "not yet" */
        return;
    }
    md_time_fmt_ms(ms, buf, sizeof buf);
    cJSON_AddStringToObject(o, key, buf);
}

static cJSON *alert_json(const struct rpt_cfg *cfg, const struct rpt_alert *a, bool firing)
{
    cJSON *o = cJSON_CreateObject(), *labels = cJSON_AddObjectToObject(o, "labels");
    char url[600] = "";

    cJSON_AddStringToObject(o, "status", firing ? "firing" : "resolved");
    cJSON_AddStringToObject(labels, "alertname", a->key);
    cJSON_AddStringToObject(labels, "key", a->key);
    cJSON_AddStringToObject(labels, "severity", a->severity);
    if (a->job[0] != '\0')
        cJSON_AddStringToObject(labels, "job", a->job);
    cJSON_AddStringToObject(labels, "node", a->node);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "annotations"), "message", a->message);
    add_time(o, "startsAt", a->opened_ms);
    add_time(o, "endsAt", firing ? 0 : a->resolved_ms);
    if (cfg->external_url != NULL && a->job[0] != '\0')
        snprintf(url, sizeof url, "%s#job=%s", cfg->external_url, a->job);
    cJSON_AddStringToObject(o, "generatorURL", url);
    cJSON_AddStringToObject(o, "fingerprint", a->fp);
    cJSON_AddNumberToObject(o, "count", (double)a->count);
    cJSON_AddNumberToObject(o, "id", (double)a->id);
    return o;
}

/* The labels every listed alert has with one value (Alertmanager's commonLabels). */
static void common_labels(cJSON *note, cJSON *alerts)
{
    cJSON *common = cJSON_AddObjectToObject(note, "commonLabels");
    cJSON *ann = cJSON_AddObjectToObject(note, "commonAnnotations");
    cJSON *first = cJSON_GetArrayItem(alerts, 0), *l, *a;

    if (first == NULL)
        return;
    cJSON_ArrayForEach(l, cJSON_GetObjectItem(first, "labels"))
    {
        bool same = true;
        cJSON_ArrayForEach(a, alerts)
        {
            cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(a, "labels"), l->string);
            same = same && v != NULL && strcmp(v->valuestring, l->valuestring) == 0;
        }
        if (same)
            cJSON_AddStringToObject(common, l->string, l->valuestring);
    }
    {
        const char *m = cJSON_GetStringValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(first, "annotations"), "message"));
        bool same = m != NULL;
        cJSON_ArrayForEach(a, alerts)
        {
            const char *v = cJSON_GetStringValue(
                cJSON_GetObjectItem(cJSON_GetObjectItem(a, "annotations"), "message"));
            same = same && v != NULL && strcmp(v, m) == 0;
        }
        if (same)
            cJSON_AddStringToObject(ann, "message", m);
    }
}

/* The group's labels, read back from its key's "{k=\"v\",...}" part: what was grouped on. */
static void group_labels(cJSON *note, const struct rpt_route *rt, int level,
                         const struct rpt_alert *a, enum rpt_kind kind)
{
    static const char *const all[] = {"key", "severity", "job", "node"};
    cJSON *gl = cJSON_AddObjectToObject(note, "groupLabels");
    const char *const *labels = (const char *const *)rt->group_by.v;
    size_t n = rt->group_by.n;

    if (level > 0 || kind == RPT_GITHUB) {
        labels = all;
        n = 1;
    } else if (n == 1 && strcmp(labels[0], "...") == 0) {
        labels = all;
        n = 4;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = strcmp(labels[i], "key") == 0        ? a->key
                        : strcmp(labels[i], "severity") == 0 ? a->severity
                        : strcmp(labels[i], "job") == 0      ? a->job
                                                             : a->node;
        cJSON_AddStringToObject(gl, labels[i], v);
    }
}

char *rpt_note_build(const struct rpt_cfg *cfg, const struct rpt_alert *alerts,
                     const struct rpt_due *d, const struct rpt_group *g, const char *node,
                     int64_t now_ms, char *idem, size_t idem_cap, int64_t *raised_ms)
{
    const struct rpt_receiver *rc = rpt_receiver_at(cfg, d->rcv);
    cJSON *note = cJSON_CreateObject(), *list, *m;
    size_t total = d->nfiring + d->nresolved, listed = 0;
    size_t cap = rc->max_alerts > 0 ? (size_t)rc->max_alerts : total;
    const struct rpt_alert *first = &alerts[d->nfiring > 0 ? d->firing[0] : d->resolved[0]];
    char *text;

    snprintf(idem, idem_cap, "%s/%s/%" PRId64 "/%" PRId64, rc->name, g->group_key, g->first_seen_ms,
             g->seq);
    *raised_ms = 0;
    cJSON_AddStringToObject(note, "version", "4");
    cJSON_AddStringToObject(note, "groupKey", g->group_key);
    cJSON_AddStringToObject(note, "status", d->nfiring > 0 ? "firing" : "resolved");
    cJSON_AddStringToObject(note, "receiver", rc->name);
    group_labels(note, d->route, d->level, first, rc->kind);
    list = cJSON_CreateArray();
    for (size_t k = 0; k < total; k++) {
        bool firing = k < d->nfiring;
        const struct rpt_alert *a = &alerts[firing ? d->firing[k] : d->resolved[k - d->nfiring]];
        int64_t t = firing ? a->updated_ms : a->resolved_ms;
        if (t > *raised_ms)
            *raised_ms = t;
        if (listed < cap) {
            cJSON_AddItemToArray(list, alert_json(cfg, a, firing));
            listed++;
        }
    }
    common_labels(note, list);
    cJSON_AddStringToObject(note, "externalURL", cfg->external_url ? cfg->external_url : "");
    cJSON_AddNumberToObject(note, "truncatedAlerts", (double)(total - listed));
    cJSON_AddItemToObject(note, "alerts", list);
    m = cJSON_AddObjectToObject(note, "meshd");
    cJSON_AddStringToObject(m, "kind", rpt_note_kind_name(d->kind));
    cJSON_AddStringToObject(m, "idempotencyKey", idem);
    cJSON_AddStringToObject(m, "route", d->route->name);
    cJSON_AddNumberToObject(m, "level", d->level);
    cJSON_AddStringToObject(m, "node", node);
    md_time_json(m, "createdAt", now_ms);
    cJSON_AddNumberToObject(m, "firing", (double)d->nfiring);
    cJSON_AddNumberToObject(m, "resolved", (double)d->nresolved);
    text = cJSON_PrintUnformatted(note);
    cJSON_Delete(note);
    if (text == NULL)
        abort(); /* out of memory */
    return text;
}

static int write_group(PGconn *c, const struct rpt_group *g, struct md_error *err)
{
    char first[24], last[24], seq[24];
    struct md_buf sent;
    int rc;

    if (!g->live) {
        const char *p[] = {g->receiver, g->group_key};
        return md_pq_exec(c, delete_group_sql, 2, p, NULL, err);
    }
    md_buf_init(&sent, 16u << 20);
    md_buf_puts(&sent, "[");
    for (size_t k = 0; k < g->nsent; k++)
        md_buf_printf(&sent, "%s%" PRId64, k ? "," : "", g->sent[k]);
    md_buf_puts(&sent, "]");
    snprintf(first, sizeof first, "%" PRId64, g->first_seen_ms);
    snprintf(last, sizeof last, "%" PRId64, g->last_sent_ms);
    snprintf(seq, sizeof seq, "%" PRId64, g->seq);
    {
        const char *p[] = {g->receiver, g->group_key,      g->route, first,
                           last,        md_buf_str(&sent), seq};
        rc = md_pq_exec(c, upsert_group_sql, 7, p, NULL, err);
    }
    md_buf_free(&sent);
    return rc;
}

static int plan_fn(PGconn *c, void *ud, struct md_error *err)
{
    struct plan_tx *t = ud;
    struct rpt_groups gs = {0};
    struct rpt_alert *alerts = NULL;
    struct rpt_plan_out out = {0};
    size_t n = 0;
    PGresult *r;
    int rc;

    t->planned = 0;
    t->next_ms = 0;
    if ((rc = md_pq_exec(c,
                         "SELECT pg_advisory_xact_lock(" REPORT_KEYSPACE_SQL ", 1),"
                         " (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                         0, NULL, &r, err)) < 0)
        return rc;
    t->now_ms = i64(r, 0, 1);
    PQclear(r);
    if ((rc = load_groups(c, t->cfg, &gs, err)) < 0 ||
        (rc = load_alerts(c, &gs, &alerts, &n, err)) < 0)
        goto out;
    rpt_plan(t->cfg, alerts, n, &gs, t->now_ms, &out);
    for (size_t i = 0; i < out.n && rc == 0; i++) {
        const struct rpt_due *d = &out.v[i];
        const struct rpt_group *g = &gs.v[d->group];
        char idem[1200], raised[24];
        int64_t raised_ms;
        char *payload =
            rpt_note_build(t->cfg, alerts, d, g, t->node, t->now_ms, idem, sizeof idem, &raised_ms);
        snprintf(raised, sizeof raised, "%" PRId64, raised_ms);
        const char *p[] = {idem,    g->receiver, g->group_key, rpt_note_kind_name(d->kind),
                           payload, raised};
        PGresult *ins = NULL;
        rc = md_pq_exec(c, insert_sql, 6, p, &ins, err);
        cJSON_free(payload);
        if (rc == 0 && strcmp(PQcmdTuples(ins), "1") == 0)
            t->planned++; /* 0: that key is planned already */
        PQclear(ins);
    }
    for (size_t i = 0; i < gs.n && rc == 0; i++)
        if (gs.v[i].dirty)
            rc = write_group(c, &gs.v[i], err);
    t->next_ms = out.next_ms;
out:
    rpt_plan_out_free(&out);
    rpt_groups_free(&gs);
    for (size_t i = 0; i < n; i++)
        rpt_alert_free(&alerts[i]);
    md_free(alerts);
    return rc;
}

int rpt_plan_once(PGconn *db, const struct rpt_cfg *cfg, const char *node, size_t *planned,
                  int64_t *next_ms, int64_t *now_ms, struct md_error *err)
{
    struct plan_tx t = {.cfg = cfg, .node = node};
    int rc = md_pq_tx(db, plan_fn, &t, 3, err);

    *planned = rc == 0 ? t.planned : 0;
    *next_ms = t.next_ms;
    *now_ms = t.now_ms;
    return rc;
}

static const char digest_insert_sql[] =
    "INSERT INTO meshd_report.outbox (idem_key, receiver, group_key, kind, payload)"
    " VALUES ($1, $2, 'digest', 'digest', $3::jsonb) ON CONFLICT (idem_key) DO NOTHING";

int rpt_digest_enqueue(PGconn *db, const struct rpt_cfg *cfg, const char *node,
                       const struct rpt_digest_opts *o, const struct rpt_digest_doc *doc,
                       struct md_error *err)
{
    char until[40];
    int rc = 0;

    md_time_fmt_ms(o->until_ms, until, sizeof until);
    for (size_t i = 0; i < cfg->digest.receivers.n && rc == 0; i++) {
        const struct rpt_receiver *rcv = rpt_receiver_at(cfg, cfg->digest.rcv[i]);
        cJSON *note = cJSON_CreateObject(), *m, *d;
        char idem[256], *text;

        /* One digest per receiver and window end: a second run for the same slot (a retry,
         * another node) adds nothing. */
        snprintf(idem, sizeof idem, "%s/digest/%s", rcv->name, until);
        cJSON_AddStringToObject(note, "version", "4");
        cJSON_AddStringToObject(note, "groupKey", "digest");
        cJSON_AddStringToObject(note, "status", "resolved");
        cJSON_AddStringToObject(note, "receiver", rcv->name);
        cJSON_AddObjectToObject(note, "groupLabels");
        cJSON_AddObjectToObject(note, "commonLabels");
        cJSON_AddObjectToObject(note, "commonAnnotations");
        cJSON_AddStringToObject(note, "externalURL", cfg->external_url ? cfg->external_url : "");
        cJSON_AddNumberToObject(note, "truncatedAlerts", 0);
        cJSON_AddArrayToObject(note, "alerts");
        m = cJSON_AddObjectToObject(note, "meshd");
        cJSON_AddStringToObject(m, "kind", "digest");
        cJSON_AddStringToObject(m, "idempotencyKey", idem);
        cJSON_AddStringToObject(m, "route", "");
        cJSON_AddNumberToObject(m, "level", 0);
        cJSON_AddStringToObject(m, "node", node);
        md_time_json(m, "createdAt", md_time_wall_ms());
        d = cJSON_AddObjectToObject(m, "digest");
        cJSON_AddStringToObject(d, "subject", doc->subject);
        cJSON_AddStringToObject(d, "text", doc->text);
        cJSON_AddStringToObject(d, "html", doc->html);
        cJSON_AddStringToObject(d, "markdown", doc->markdown);
        md_time_json(d, "since", o->since_ms);
        md_time_json(d, "until", o->until_ms);
        text = cJSON_PrintUnformatted(note);
        cJSON_Delete(note);
        if (text == NULL)
            abort(); /* out of memory */
        const char *p[] = {idem, rcv->name, text};
        rc = md_pq_exec(db, digest_insert_sql, 3, p, NULL, err);
        cJSON_free(text);
    }
    return rc;
}
