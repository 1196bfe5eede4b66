/* route.c - meshd-report's pure decisions (route.h): inhibition, routing, grouping, timing,
 * escalation, quiet hours.
 */
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "route.h"

const char *rpt_note_kind_name(enum rpt_note_kind k)
{
    static const char *const names[] = {"firing", "repeat", "resolved", "escalation"};
    return names[k];
}

static const char *label(const struct rpt_alert *a, const char *name)
{
    if (strcmp(name, "key") == 0)
        return a->key;
    if (strcmp(name, "severity") == 0)
        return a->severity;
    if (strcmp(name, "job") == 0)
        return a->job;
    return a->node; /* config.c allows only these four */
}

static bool any_glob(const struct md_strv *v, const char *s)
{
    if (v->n == 0)
        return true;
    for (size_t i = 0; i < v->n; i++)
        if (fnmatch(v->v[i], s, 0) == 0)
            return true;
    return false;
}

bool rpt_match_alert(const struct rpt_match *m, const struct rpt_alert *a)
{
    return any_glob(&m->key, a->key) && any_glob(&m->severity, a->severity) &&
           any_glob(&m->job, a->job) && any_glob(&m->node, a->node);
}

int64_t rpt_quiet_until(const struct rpt_quiet *q, int64_t now_ms)
{
    struct md_civil c;
    int32_t off;
    int minute, day;
    bool quiet;

    if (q->from == NULL || q->tz == NULL)
        return 0;
    md_tz_to_local(q->tz, now_ms / 1000, &c, &off);
    minute = c.hour * 60 + c.min;
    day = c.wday;
    if (q->from_min < q->to_min) {
        quiet = minute >= q->from_min && minute < q->to_min;
    } else if (minute >= q->from_min) {
        quiet = true; /* the window started today */
    } else {
        quiet = minute < q->to_min;
        day = (day + 6) % 7; /* it started yesterday: yesterday's day counts */
    }
    if (!quiet || (q->day_mask & (1u << day)) == 0)
        return 0;
    /* Whole minutes to the window's end, from the start of this minute.  A DST change inside
     * the window moves its wall-clock end by the change; the window then ends that much early
     * or late, once. */
    return (now_ms / 1000 - c.sec + (int64_t)((q->to_min - minute + 1440) % 1440) * 60) * 1000;
}

/* FNV-1a, for cutting an over-long group key to something still unique. */
static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

void rpt_group_key(const struct rpt_route *rt, int level, enum rpt_kind kind,
                   const struct rpt_alert *a, char *buf, size_t cap)
{
    static const char *const all[] = {"key", "severity", "job", "node"};
    static const char *const per_alert[] = {"key"};
    const char *const *labels = (const char *const *)rt->group_by.v;
    size_t nl = rt->group_by.n, len;

    if (level > 0 || kind == RPT_GITHUB) {
        labels = per_alert;
        nl = 1;
    } else if (nl == 1 && strcmp(labels[0], "...") == 0) {
        labels = all;
        nl = 4;
    }
    len = (size_t)snprintf(buf, cap, "%s/", rt->name);
    if (level > 0)
        len += (size_t)snprintf(buf + len, len < cap ? cap - len : 0, "esc%d/", level);
    if (len < cap)
        buf[len++] = '{';
    for (size_t i = 0; i < nl && len < cap; i++) {
        const char *v = label(a, labels[i]);
        len += (size_t)snprintf(buf + len, cap - len, "%s%s=\"", i ? "," : "", labels[i]);
        for (; *v != '\0' && len + 2 < cap; v++) {
            if (*v == '"' || *v == '\\')
                buf[len++] = '\\';
            buf[len++] = *v;
        }
        if (len < cap)
            buf[len++] = '"';
    }
    if (len + 1 < cap) {
        buf[len++] = '}';
        buf[len] = '\0';
        return;
    }
    /* Too long: keep a prefix and make the end unique with a hash of the whole. */
    buf[cap - 1] = '\0';
    {
        char tail[24];
        uint64_t h = fnv1a(buf);
        snprintf(tail, sizeof tail, "~%016llx}", (unsigned long long)h);
        memcpy(buf + cap - 1 - strlen(tail), tail, strlen(tail) + 1);
    }
}

/* The members rpt_plan collects for each group, beside the group's state. */
struct work {
    const struct rpt_route *rt;
    int rcv, level;
    size_t *mem;
    size_t n, cap;
};

static size_t find_group(struct rpt_groups *g, struct work **w, size_t *wcap, const char *rcv,
                         const char *key, const char *route)
{
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->v[i].receiver, rcv) == 0 && strcmp(g->v[i].group_key, key) == 0)
            return i;
    if (g->n == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 16;
        g->v = md_xrealloc(g->v, g->cap * sizeof *g->v);
    }
    memset(&g->v[g->n], 0, sizeof g->v[g->n]);
    g->v[g->n].receiver = md_xstrdup(rcv);
    g->v[g->n].group_key = md_xstrdup(key);
    g->v[g->n].route = md_xstrdup(route);
    g->v[g->n].live = true;
    if (g->n >= *wcap) {
        size_t old = *wcap;
        *wcap = g->cap;
        *w = md_xrealloc(*w, *wcap * sizeof **w);
        memset(*w + old, 0, (*wcap - old) * sizeof **w);
    }
    return g->n++;
}

static void add_member(struct work *w, size_t i)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 8;
        w->mem = md_xrealloc(w->mem, w->cap * sizeof *w->mem);
    }
    w->mem[w->n++] = i;
}

static bool in_sent(const struct rpt_group *g, int64_t id)
{
    for (size_t i = 0; i < g->nsent; i++)
        if (g->sent[i] == id)
            return true;
    return false;
}

static void min_at(int64_t *next, int64_t t)
{
    if (t > 0 && (*next == 0 || t < *next))
        *next = t;
}

static bool equal_labels(const struct md_strv *equal, const struct rpt_alert *a,
                         const struct rpt_alert *b)
{
    for (size_t i = 0; i < equal->n; i++)
        if (strcmp(label(a, equal->v[i]), label(b, equal->v[i])) != 0)
            return false;
    return true;
}

static void inhibit(const struct rpt_cfg *cfg, struct rpt_alert *alerts, size_t n)
{
    const struct rpt_inhibit *rules = cfg->inhibit.v;

    for (size_t t = 0; t < n; t++) {
        alerts[t].inhibited = false;
        if (alerts[t].resolved_ms != 0)
            continue;
        for (size_t r = 0; r < cfg->inhibit.n && !alerts[t].inhibited; r++) {
            if (!rpt_match_alert(&rules[r].target, &alerts[t]))
                continue;
            for (size_t s = 0; s < n; s++) {
                if (s == t || alerts[s].resolved_ms != 0 ||
                    !rpt_match_alert(&rules[r].source, &alerts[s]) ||
                    !equal_labels(&rules[r].equal, &alerts[s], &alerts[t]))
                    continue;
                /* An alert matching both sides cannot mute itself (it is s != t here), and
                 * two that match both sides mute each other only through the source side:
                 * as Alertmanager, a muted source still mutes. */
                alerts[t].inhibited = true;
                break;
            }
        }
    }
}

static void push_due(struct rpt_plan_out *out, const struct rpt_due *d)
{
    if (out->n == out->cap) {
        out->cap = out->cap ? 2 * out->cap : 16;
        out->v = md_xrealloc(out->v, out->cap * sizeof *out->v);
    }
    out->v[out->n++] = *d;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* One group: what is due, if anything. */
static void decide(const struct rpt_cfg *cfg, struct rpt_alert *alerts, struct rpt_groups *gs,
                   size_t gi, struct work *w, int64_t now, struct rpt_plan_out *out)
{
    struct rpt_group *g = &gs->v[gi];
    const struct rpt_route *rt = w->rt;
    size_t *firing = md_xcalloc(w->n + 1, sizeof *firing);
    size_t *resolved = md_xcalloc(w->n + 1, sizeof *resolved);
    size_t nf = 0, nr = 0, kept = 0;
    bool new_firing = false, critical = false;
    int64_t oldest = 0, due;
    enum rpt_note_kind kind;

    if (rt == NULL) { /* a stored group nothing routes to any more: it ends quietly */
        g->live = false;
        g->dirty = true;
        goto out;
    }
    for (size_t k = 0; k < w->n; k++) {
        struct rpt_alert *a = &alerts[w->mem[k]];
        if (a->resolved_ms == 0 && !a->inhibited) {
            firing[nf++] = w->mem[k];
            new_firing |= !in_sent(g, a->id);
            critical |= strcmp(a->severity, "critical") == 0;
            kept += in_sent(g, a->id);
            min_at(&oldest, a->opened_ms > 0 ? a->opened_ms : 1);
        } else if (a->resolved_ms != 0 && in_sent(g, a->id)) {
            resolved[nr++] = w->mem[k];
        }
    }
    if (g->last_sent_ms == 0) {
        if (nf == 0) {
            g->live = false;
            g->dirty = g->dirty || g->seq > 0;
            goto out;
        }
        kind = w->level > 0 ? RPT_N_ESCALATION : RPT_N_FIRING;
        due = w->level > 0 ? now : oldest + (int64_t)rt->group_wait_ms;
        nr = 0;
    } else if (new_firing) {
        kind = RPT_N_FIRING;
        due = g->last_sent_ms + (int64_t)rt->group_interval_ms;
    } else if (nr > 0 && rt->send_resolved) {
        kind = nf == 0 ? RPT_N_RESOLVED : RPT_N_FIRING;
        due = g->last_sent_ms + (int64_t)rt->group_interval_ms;
    } else if (nf > 0) {
        if (kept != g->nsent) { /* some went quiet (muted, or resolved unannounced) */
            g->nsent = 0;
            for (size_t k = 0; k < nf; k++)
                g->sent[g->nsent++] = alerts[firing[k]].id;
            qsort(g->sent, g->nsent, sizeof *g->sent, cmp_i64);
            g->dirty = true;
        }
        kind = RPT_N_REPEAT;
        due = g->last_sent_ms + (int64_t)rt->repeat_interval_ms;
        nr = 0;
    } else { /* nothing fires and nothing is to be said: the group ends */
        g->live = false;
        g->dirty = true;
        goto out;
    }
    if (!rt->send_resolved)
        nr = 0;
    if (due <= now && !critical) {
        int64_t until = rpt_quiet_until(&rpt_receiver_at(cfg, w->rcv)->quiet, now);
        if (until > now)
            due = until;
    }
    if (due > now) {
        min_at(&out->next_ms, due);
        goto out;
    }
    {
        struct rpt_due d = {.rcv = w->rcv,
                            .route = rt,
                            .level = w->level,
                            .group = gi,
                            .kind = kind,
                            .firing = firing,
                            .nfiring = nf,
                            .resolved = resolved,
                            .nresolved = nr};
        push_due(out, &d);
        firing = resolved = NULL;
    }
    g->sent = md_xrealloc(g->sent, (nf + 1) * sizeof *g->sent);
    g->nsent = 0;
    for (size_t k = 0; k < nf; k++)
        g->sent[g->nsent++] = alerts[out->v[out->n - 1].firing[k]].id;
    qsort(g->sent, g->nsent, sizeof *g->sent, cmp_i64);
    if (g->last_sent_ms == 0 || g->first_seen_ms == 0)
        g->first_seen_ms = now;
    g->last_sent_ms = now;
    g->seq++;
    g->live = nf > 0;
    g->dirty = true;
    if (nf > 0) /* the next repeat */
        min_at(&out->next_ms, now + (int64_t)rt->repeat_interval_ms);
out:
    md_free(firing);
    md_free(resolved);
}

void rpt_plan(const struct rpt_cfg *cfg, struct rpt_alert *alerts, size_t n,
              struct rpt_groups *groups, int64_t now_ms, struct rpt_plan_out *out)
{
    const struct rpt_route *routes = cfg->routes.v;
    size_t nstored = groups->n, wcap = groups->n + 16;
    struct work *w = md_xcalloc(wcap, sizeof *w);
    char key[512];

    for (size_t i = 0; i < groups->n; i++)
        groups->v[i].live = true;
    inhibit(cfg, alerts, n);
    for (size_t i = 0; i < n; i++) {
        struct rpt_alert *a = &alerts[i];
        for (size_t r = 0; r < cfg->routes.n; r++) {
            const struct rpt_route *rt = &routes[r];
            if (!rpt_match_alert(&rt->match, a))
                continue;
            for (size_t k = 0; k < rt->receivers.n; k++) {
                const struct rpt_receiver *rc = rpt_receiver_at(cfg, rt->rcv[k]);
                rpt_group_key(rt, 0, rc->kind, a, key, sizeof key);
                size_t gi = find_group(groups, &w, &wcap, rc->name, key, rt->name);
                w[gi].rt = rt;
                w[gi].rcv = rt->rcv[k];
                add_member(&w[gi], i);
            }
            for (size_t k = 0; k < rt->escalate_to.n; k++) {
                const struct rpt_receiver *rc = rpt_receiver_at(cfg, rt->esc[k]);
                int64_t at = a->opened_ms + (int64_t)((k + 1) * rt->escalate_after_ms);
                bool open = a->resolved_ms == 0 && !a->inhibited;
                rpt_group_key(rt, (int)k + 1, rc->kind, a, key, sizeof key);
                if (open && at > now_ms) {
                    min_at(&out->next_ms, at); /* not yet: this step and the later ones */
                    break;
                }
                size_t gi = find_group(groups, &w, &wcap, rc->name, key, rt->name);
                w[gi].rt = rt;
                w[gi].rcv = rt->esc[k];
                w[gi].level = (int)k + 1;
                add_member(&w[gi], i);
            }
            if (!rt->cont)
                break;
        }
    }
    for (size_t gi = 0; gi < groups->n; gi++)
        decide(cfg, alerts, groups, gi, &w[gi], now_ms, out);
    /* Groups made this round that end unsent were never stored: nothing to write for them. */
    for (size_t gi = nstored; gi < groups->n; gi++)
        if (!groups->v[gi].live && groups->v[gi].seq == 0)
            groups->v[gi].dirty = false;
    for (size_t gi = 0; gi < wcap; gi++)
        md_free(w[gi].mem);
    md_free(w);
}

void rpt_plan_out_free(struct rpt_plan_out *out)
{
    for (size_t i = 0; i < out->n; i++) {
        md_free(out->v[i].firing);
        md_free(out->v[i].resolved);
    }
    md_free(out->v);
    memset(out, 0, sizeof *out);
}

void rpt_groups_free(struct rpt_groups *g)
{
    for (size_t i = 0; i < g->n; i++) {
        md_free(g->v[i].receiver);
        md_free(g->v[i].group_key);
        md_free(g->v[i].route);
        md_free(g->v[i].sent);
    }
    md_free(g->v);
    memset(g, 0, sizeof *g);
}

void rpt_alert_free(struct rpt_alert *a)
{
    md_free(a->key);
    md_free(a->severity);
    md_free(a->job);
    md_free(a->node);
    md_free(a->message);
}
