/* config.c - meshd-report's config: the key tables (report.h's structs) and the checks the
 * tables cannot make.  docs/report.md documents every key.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "report.h"

#define RCV(m) offsetof(struct rpt_receiver, m)
#define RT(m) offsetof(struct rpt_route, m)
#define QH(m) offsetof(struct rpt_quiet, m)
#define MT(m) offsetof(struct rpt_match, m)
#define IH(m) offsetof(struct rpt_inhibit, m)
#define DG(m) offsetof(struct rpt_digest, m)
#define CFG(m) offsetof(struct rpt_cfg, m)

#define DAY_MS (24.0 * 3600e3)

static const char *const kinds[] = {"webhook", "email", "github", NULL};
static const char *const formats[] = {"json", "slack", NULL};
static const char *const tls_modes[] = {"starttls", "none", NULL};
static const char *const modes[] = {"notify", "digest", NULL};

static const struct md_json_key quiet_keys[] = {
    /* from and to go together (check_quiet): an absent quiet_hours binds as {}, no hours. */
    {.name = "from", .type = MD_J_STRING, .off = QH(from)},
    {.name = "to", .type = MD_J_STRING, .off = QH(to)},
    {.name = "timezone", .type = MD_J_STRING, .off = QH(timezone)},
    {.name = "days", .type = MD_J_STRV, .off = QH(days), .max = 7},
};

static const struct md_json_key receiver_keys[] = {
    {.name = "name", .type = MD_J_STRING, .off = RCV(name), .required = true},
    {.name = "type", .type = MD_J_STRING, .off = RCV(type), .required = true, .choices = kinds},
    {.name = "timeout",
     .type = MD_J_DURATION,
     .off = RCV(timeout_ms),
     .def = "\"10s\"",
     .min = 100,
     .max = 300e3},
    {.name = "ca_file", .type = MD_J_STRING, .off = RCV(ca_file)},
    {.name = "insecure", .type = MD_J_BOOL, .off = RCV(insecure), .def = "false"},
    {.name = "quiet_hours",
     .type = MD_J_OBJECT,
     .off = RCV(quiet),
     .sub = quiet_keys,
     .nsub = MD_ARRAY_SIZE(quiet_keys)},
    {.name = "max_alerts",
     .type = MD_J_INT,
     .off = RCV(max_alerts),
     .def = "0",
     .min = 0,
     .max = 1000},
    {.name = "url", .type = MD_J_STRING, .off = RCV(url)},
    {.name = "format", .type = MD_J_STRING, .off = RCV(format), .choices = formats},
    {.name = "secret_env", .type = MD_J_STRING, .off = RCV(secret_env)},
    {.name = "tls", .type = MD_J_STRING, .off = RCV(tls), .choices = tls_modes},
    {.name = "from", .type = MD_J_STRING, .off = RCV(from)},
    {.name = "to", .type = MD_J_STRV, .off = RCV(to), .max = 100},
    {.name = "subject_prefix", .type = MD_J_STRING, .off = RCV(subject_prefix)},
    {.name = "username_env", .type = MD_J_STRING, .off = RCV(username_env)},
    {.name = "password_env", .type = MD_J_STRING, .off = RCV(password_env)},
    {.name = "repo", .type = MD_J_STRING, .off = RCV(repo)},
    {.name = "token_env", .type = MD_J_STRING, .off = RCV(token_env)},
    {.name = "labels", .type = MD_J_STRV, .off = RCV(labels), .max = 20},
    {.name = "mention", .type = MD_J_STRING, .off = RCV(mention)},
    {.name = "reopen_within",
     .type = MD_J_DURATION,
     .off = RCV(reopen_within_ms),
     .def = "\"30d\""},
};

static const struct md_json_key match_keys[] = {
    {.name = "key", .type = MD_J_STRV, .off = MT(key), .max = 100},
    {.name = "severity", .type = MD_J_STRV, .off = MT(severity), .max = 3},
    {.name = "job", .type = MD_J_STRV, .off = MT(job), .max = 100},
    {.name = "node", .type = MD_J_STRV, .off = MT(node), .max = 100},
};

static const struct md_json_key route_keys[] = {
    {.name = "name", .type = MD_J_STRING, .off = RT(name)},
    {.name = "match",
     .type = MD_J_OBJECT,
     .off = RT(match),
     .sub = match_keys,
     .nsub = MD_ARRAY_SIZE(match_keys)},
    {.name = "receivers",
     .type = MD_J_STRV,
     .off = RT(receivers),
     .required = true,
     .min = 1,
     .max = 20},
    {.name = "group_by", .type = MD_J_STRV, .off = RT(group_by), .def = "[\"job\"]", .max = 4},
    {.name = "group_wait",
     .type = MD_J_DURATION,
     .off = RT(group_wait_ms),
     .def = "\"30s\"",
     .max = DAY_MS},
    {.name = "group_interval",
     .type = MD_J_DURATION,
     .off = RT(group_interval_ms),
     .def = "\"5m\"",
     .min = 1000,
     .max = DAY_MS},
    {.name = "repeat_interval",
     .type = MD_J_DURATION,
     .off = RT(repeat_interval_ms),
     .def = "\"4h\"",
     .min = 1000,
     .max = 30 * DAY_MS},
    {.name = "send_resolved", .type = MD_J_BOOL, .off = RT(send_resolved), .def = "true"},
    {.name = "continue", .type = MD_J_BOOL, .off = RT(cont), .def = "false"},
    {.name = "escalate_after",
     .type = MD_J_DURATION,
     .off = RT(escalate_after_ms),
     .def = "0",
     .max = 30 * DAY_MS},
    {.name = "escalate_to", .type = MD_J_STRV, .off = RT(escalate_to), .max = 10},
};

static const struct md_json_key inhibit_keys[] = {
    {.name = "source",
     .type = MD_J_OBJECT,
     .off = IH(source),
     .required = true,
     .sub = match_keys,
     .nsub = MD_ARRAY_SIZE(match_keys)},
    {.name = "target",
     .type = MD_J_OBJECT,
     .off = IH(target),
     .required = true,
     .sub = match_keys,
     .nsub = MD_ARRAY_SIZE(match_keys)},
    {.name = "equal", .type = MD_J_STRV, .off = IH(equal), .max = 4},
};

static const struct md_json_key digest_keys[] = {
    {.name = "window",
     .type = MD_J_DURATION,
     .off = DG(window_ms),
     .def = "\"24h\"",
     .min = 60e3,
     .max = 92 * DAY_MS},
    {.name = "receivers", .type = MD_J_STRV, .off = DG(receivers), .max = 20},
    {.name = "dir", .type = MD_J_STRING, .off = DG(dir)},
    {.name = "top", .type = MD_J_INT, .off = DG(top), .def = "10", .min = 1, .max = 1000},
};

const struct md_json_key rpt_cfg_keys[] = {
    MD_WORKER_DATABASE_KEY(CFG(database)),
    {.name = "mode", .type = MD_J_STRING, .off = CFG(mode), .def = "\"notify\"", .choices = modes},
    {.name = "external_url", .type = MD_J_STRING, .off = CFG(external_url)},
    {.name = "linger",
     .type = MD_J_DURATION,
     .off = CFG(linger_ms),
     .def = "\"2m\"",
     .max = 3600e3},
    {.name = "give_up_after",
     .type = MD_J_DURATION,
     .off = CFG(give_up_after_ms),
     .def = "\"24h\"",
     .min = 60e3,
     .max = 30 * DAY_MS},
    {.name = "keep",
     .type = MD_J_DURATION,
     .off = CFG(keep_ms),
     .def = "\"30d\"",
     .min = 3600e3,
     .max = 3650 * DAY_MS},
    {.name = "backoff",
     .type = MD_J_DURATION,
     .off = CFG(backoff_ms),
     .def = "\"1s\"",
     .min = 100,
     .max = 3600e3},
    {.name = "max_backoff",
     .type = MD_J_DURATION,
     .off = CFG(max_backoff_ms),
     .def = "\"5m\"",
     .min = 1000,
     .max = DAY_MS},
    {.name = "receivers",
     .type = MD_J_ARRAY,
     .off = CFG(receivers),
     .max = 50,
     .sub = receiver_keys,
     .nsub = MD_ARRAY_SIZE(receiver_keys),
     .elem_size = sizeof(struct rpt_receiver)},
    {.name = "routes",
     .type = MD_J_ARRAY,
     .off = CFG(routes),
     .max = 100,
     .sub = route_keys,
     .nsub = MD_ARRAY_SIZE(route_keys),
     .elem_size = sizeof(struct rpt_route)},
    {.name = "inhibit",
     .type = MD_J_ARRAY,
     .off = CFG(inhibit),
     .max = 50,
     .sub = inhibit_keys,
     .nsub = MD_ARRAY_SIZE(inhibit_keys),
     .elem_size = sizeof(struct rpt_inhibit)},
    {.name = "digest",
     .type = MD_J_OBJECT,
     .off = CFG(digest),
     .sub = digest_keys,
     .nsub = MD_ARRAY_SIZE(digest_keys)},
};
const size_t rpt_cfg_nkeys = MD_ARRAY_SIZE(rpt_cfg_keys);

static struct rpt_receiver *rcv_at(struct rpt_cfg *cfg, size_t i)
{
    return &((struct rpt_receiver *)cfg->receivers.v)[i];
}

static struct rpt_route *route_at(struct rpt_cfg *cfg, size_t i)
{
    return &((struct rpt_route *)cfg->routes.v)[i];
}

static int find_receiver(const struct rpt_cfg *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->receivers.n; i++)
        if (strcmp(rpt_receiver_at(cfg, (int)i)->name, name) == 0)
            return (int)i;
    return -1;
}

/* names[] -> indexes into receivers (md_xmalloc'd, n entries). */
static int resolve_names(const struct rpt_cfg *cfg, const struct md_strv *names, int **out,
                         const char *path, struct md_error *err)
{
    *out = md_xcalloc(names->n + 1, sizeof **out);
    for (size_t i = 0; i < names->n; i++) {
        int k = find_receiver(cfg, names->v[i]);
        if (k < 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s[%zu]: no receiver named \"%s\"", path, i,
                                names->v[i]);
        (*out)[i] = k;
    }
    return 0;
}

static bool label_ok(const char *l)
{
    return strcmp(l, "key") == 0 || strcmp(l, "severity") == 0 || strcmp(l, "job") == 0 ||
           strcmp(l, "node") == 0;
}

static int check_labels(const struct md_strv *v, bool dots, const char *path, struct md_error *err)
{
    for (size_t i = 0; i < v->n; i++) {
        if (dots && strcmp(v->v[i], "...") == 0) {
            if (v->n != 1)
                return md_error_set(err, MD_ECONFIG, 0, 0, "%s: \"...\" (every label) stands alone",
                                    path);
            continue;
        }
        if (!label_ok(v->v[i]))
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s[%zu]: unknown label \"%s\" (key, severity, job, node%s)", path,
                                i, v->v[i], dots ? " or \"...\"" : "");
    }
    return 0;
}

static int check_match(const struct rpt_match *m, const char *path, struct md_error *err)
{
    static const char *const sev[] = {"critical", "warning", "info"};

    for (size_t i = 0; i < m->severity.n; i++) {
        bool ok = strpbrk(m->severity.v[i], "*?[") != NULL;
        for (size_t k = 0; k < 3 && !ok; k++)
            ok = strcmp(m->severity.v[i], sev[k]) == 0;
        if (!ok)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s.severity[%zu]: \"%s\" is not critical, warning or info", path,
                                i, m->severity.v[i]);
    }
    return 0;
}

/* "HH:MM" -> minutes after midnight, or -1. */
static int parse_hhmm(const char *s)
{
    if (s == NULL || strlen(s) != 5 || s[2] != ':')
        return -1;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return -1;
    int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
    return h < 24 && m < 60 ? h * 60 + m : -1;
}

static int check_quiet(struct rpt_quiet *q, const char *path, struct md_error *err)
{
    static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
    int rc;

    q->day_mask = 0x7f;
    if ((q->from == NULL) != (q->to == NULL))
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.%s: required with %s", path,
                            q->from == NULL ? "from" : "to", q->from == NULL ? "to" : "from");
    if (q->from == NULL) {
        if (q->timezone != NULL || q->days.n > 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s: timezone and days need from and to",
                                path);
        return 0;
    }
    if ((q->from_min = parse_hhmm(q->from)) < 0)
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.from: \"%s\" is not a time HH:MM", path,
                            q->from);
    if ((q->to_min = parse_hhmm(q->to)) < 0)
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.to: \"%s\" is not a time HH:MM", path,
                            q->to);
    if (q->from_min == q->to_min)
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s: from and to are the same time", path);
    if (q->days.n > 0)
        q->day_mask = 0;
    for (size_t i = 0; i < q->days.n; i++) {
        size_t k = 0;
        while (k < 7 && strcmp(q->days.v[i], days[k]) != 0)
            k++;
        if (k == 7)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s.days[%zu]: \"%s\" is not a day (sun, mon, ... sat)", path, i,
                                q->days.v[i]);
        q->day_mask |= 1u << k;
    }
    if ((rc = md_tz_load(q->timezone != NULL ? q->timezone : "UTC", &q->tz)) < 0)
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.timezone: unknown time zone \"%s\"", path,
                            q->timezone);
    return 0;
}

/* A member set on a receiver of a type that does not read it is a mistake worth naming. */
static int only_for(const struct rpt_receiver *r, const char *path, struct md_error *err)
{
    static const struct {
        const char *name;
        size_t off;
        enum rpt_kind kind;
        bool strv;
    } only[] = {
        {"format", RCV(format), RPT_WEBHOOK, false},
        {"secret_env", RCV(secret_env), RPT_WEBHOOK, false},
        {"tls", RCV(tls), RPT_EMAIL, false},
        {"from", RCV(from), RPT_EMAIL, false},
        {"to", RCV(to), RPT_EMAIL, true},
        {"subject_prefix", RCV(subject_prefix), RPT_EMAIL, false},
        {"username_env", RCV(username_env), RPT_EMAIL, false},
        {"password_env", RCV(password_env), RPT_EMAIL, false},
        {"repo", RCV(repo), RPT_GITHUB, false},
        {"token_env", RCV(token_env), RPT_GITHUB, false},
        {"labels", RCV(labels), RPT_GITHUB, true},
        {"mention", RCV(mention), RPT_GITHUB, false},
    };
    for (size_t i = 0; i < MD_ARRAY_SIZE(only); i++) {
        const char *p = (const char *)r + only[i].off;
        bool set = only[i].strv ? ((const struct md_strv *)(const void *)p)->n > 0
                                : *(char *const *)(const void *)p != NULL;
        if (set && r->kind != only[i].kind)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.%s: only for a %s receiver", path,
                                only[i].name, kinds[only[i].kind]);
    }
    return 0;
}

static int read_env(const char *(*getenv_fn)(const char *), const char *var, char **out,
                    const char *path, const char *member, struct md_error *err)
{
    const char *v;

    if (var == NULL)
        return 0;
    if ((v = getenv_fn(var)) == NULL || *v == '\0')
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.%s: $%s is not set", path, member, var);
    *out = md_xstrdup(v);
    return 0;
}

static int check_receiver(struct rpt_cfg *cfg, size_t i, const char *(*getenv_fn)(const char *),
                          struct md_error *err)
{
    struct rpt_receiver *r = rcv_at(cfg, i);
    char path[32];
    int rc;

    snprintf(path, sizeof path, "receivers[%zu]", i);
    if (!md_name_ok(r->name))
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s.name: \"%s\" is not a name (1-64 of A-Z a-z 0-9 _ . -)", path,
                            r->name);
    for (size_t k = 0; k < i; k++)
        if (strcmp(rcv_at(cfg, k)->name, r->name) == 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.name: \"%s\" is used twice", path,
                                r->name);
    for (int k = 0; kinds[k] != NULL; k++)
        if (strcmp(r->type, kinds[k]) == 0)
            r->kind = (enum rpt_kind)k;
    if ((rc = only_for(r, path, err)) < 0)
        return rc;
    if (r->subject_prefix == NULL)
        r->subject_prefix = md_xstrdup("[meshd]");
    {
        char qpath[48];
        snprintf(qpath, sizeof qpath, "%s.quiet_hours", path);
        if ((rc = check_quiet(&r->quiet, qpath, err)) < 0)
            return rc;
    }
    switch (r->kind) {
    case RPT_WEBHOOK:
        if (r->url == NULL)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.url: required for a webhook receiver",
                                path);
        if (strncmp(r->url, "http://", 7) != 0 && strncmp(r->url, "https://", 8) != 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.url: not an http:// or https:// URL",
                                path);
        if (r->format == NULL)
            r->format = md_xstrdup("json");
        return read_env(getenv_fn, r->secret_env, &r->secret, path, "secret_env", err);
    case RPT_EMAIL:
        if (r->url == NULL ||
            (strncmp(r->url, "smtp://", 7) != 0 && strncmp(r->url, "smtps://", 8) != 0))
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s.url: an smtp://host[:port] or smtps://host[:port] URL is "
                                "required for an email receiver",
                                path);
        if (r->from == NULL)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.from: required for an email receiver",
                                path);
        if (r->to.n == 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.to: required for an email receiver",
                                path);
        if (r->tls == NULL)
            r->tls = md_xstrdup("starttls");
        if ((rc = read_env(getenv_fn, r->username_env, &r->username, path, "username_env", err)) <
            0)
            return rc;
        return read_env(getenv_fn, r->password_env, &r->password, path, "password_env", err);
    case RPT_GITHUB:
        if (r->repo == NULL || strchr(r->repo, '/') == NULL || strchr(r->repo, '/') == r->repo ||
            strchr(r->repo, '/')[1] == '\0' || strchr(strchr(r->repo, '/') + 1, '/') != NULL)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s.repo: \"owner/name\" is required for a github receiver", path);
        if (r->url == NULL)
            r->url = md_xstrdup("https://api.github.com");
        if (r->token_env == NULL)
            r->token_env = md_xstrdup("GITHUB_TOKEN");
        return read_env(getenv_fn, r->token_env, &r->token, path, "token_env", err);
    }
    return 0;
}

static int check_route(struct rpt_cfg *cfg, size_t i, struct md_error *err)
{
    struct rpt_route *rt = route_at(cfg, i);
    char path[32], sub[48];
    int rc;

    snprintf(path, sizeof path, "routes[%zu]", i);
    if (rt->name == NULL) {
        char name[32];
        snprintf(name, sizeof name, "route%zu", i + 1);
        rt->name = md_xstrdup(name);
    } else if (!md_name_ok(rt->name)) {
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s.name: \"%s\" is not a name (1-64 of A-Z a-z 0-9 _ . -)", path,
                            rt->name);
    }
    for (size_t k = 0; k < i; k++)
        if (strcmp(route_at(cfg, k)->name, rt->name) == 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.name: \"%s\" is used twice", path,
                                rt->name);
    snprintf(sub, sizeof sub, "%s.match", path);
    if ((rc = check_match(&rt->match, sub, err)) < 0)
        return rc;
    snprintf(sub, sizeof sub, "%s.group_by", path);
    if ((rc = check_labels(&rt->group_by, true, sub, err)) < 0)
        return rc;
    /* Alertmanager's rule: repeat_interval is a whole number of group_intervals (rounded up). */
    if (rt->repeat_interval_ms % rt->group_interval_ms != 0)
        rt->repeat_interval_ms +=
            rt->group_interval_ms - rt->repeat_interval_ms % rt->group_interval_ms;
    snprintf(sub, sizeof sub, "%s.receivers", path);
    if ((rc = resolve_names(cfg, &rt->receivers, &rt->rcv, sub, err)) < 0)
        return rc;
    snprintf(sub, sizeof sub, "%s.escalate_to", path);
    if ((rc = resolve_names(cfg, &rt->escalate_to, &rt->esc, sub, err)) < 0)
        return rc;
    if ((rt->escalate_after_ms == 0) != (rt->escalate_to.n == 0))
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s: escalate_after and escalate_to go together",
                            path);
    return 0;
}

int rpt_cfg_check(struct rpt_cfg *cfg, const char *(*getenv_fn)(const char *), struct md_error *err)
{
    char path[48];
    int rc;

    for (size_t i = 0; i < cfg->receivers.n; i++)
        if ((rc = check_receiver(cfg, i, getenv_fn, err)) < 0)
            return rc;
    if (strcmp(cfg->mode, "notify") == 0 && cfg->receivers.n == 0)
        return md_error_set(err, MD_ECONFIG, 0, 0, "receivers: at least one is required");
    if (cfg->routes.n == 0 && cfg->receivers.n > 0) {
        /* No routes: every alert to every receiver, bound through the route key table so the
         * defaults are the documented ones. */
        cJSON *doc = cJSON_CreateObject(), *names = cJSON_AddArrayToObject(doc, "receivers");
        struct md_error e2 = {0};
        char *text;
        cJSON_AddStringToObject(doc, "name", "default");
        for (size_t k = 0; k < cfg->receivers.n; k++)
            cJSON_AddItemToArray(names, cJSON_CreateString(rcv_at(cfg, k)->name));
        text = cJSON_PrintUnformatted(doc);
        cJSON_Delete(doc);
        if (text == NULL)
            abort(); /* out of memory */
        cfg->routes.v = md_xcalloc(1, sizeof(struct rpt_route));
        cfg->routes.n = 1;
        rc = md_json_bind(text, strlen(text), route_keys, MD_ARRAY_SIZE(route_keys),
                          route_at(cfg, 0), &e2);
        cJSON_free(text);
        if (rc < 0)
            return md_error_set(err, rc, 0, 0, "the default route: %s", e2.msg);
    }
    for (size_t i = 0; i < cfg->routes.n; i++)
        if ((rc = check_route(cfg, i, err)) < 0)
            return rc;
    for (size_t i = 0; i < cfg->inhibit.n; i++) {
        struct rpt_inhibit *ih = &((struct rpt_inhibit *)cfg->inhibit.v)[i];
        snprintf(path, sizeof path, "inhibit[%zu].source", i);
        if ((rc = check_match(&ih->source, path, err)) < 0)
            return rc;
        snprintf(path, sizeof path, "inhibit[%zu].target", i);
        if ((rc = check_match(&ih->target, path, err)) < 0)
            return rc;
        snprintf(path, sizeof path, "inhibit[%zu].equal", i);
        if ((rc = check_labels(&ih->equal, false, path, err)) < 0)
            return rc;
    }
    if ((rc = resolve_names(cfg, &cfg->digest.receivers, &cfg->digest.rcv, "digest.receivers",
                            err)) < 0)
        return rc;
    for (size_t i = 0; i < cfg->digest.receivers.n; i++)
        if (rpt_receiver_at(cfg, cfg->digest.rcv[i])->kind == RPT_GITHUB)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "digest.receivers[%zu]: \"%s\" is a github receiver (a digest "
                                "goes to e-mail or a webhook)",
                                i, cfg->digest.receivers.v[i]);
    if (strcmp(cfg->mode, "digest") == 0 && cfg->digest.receivers.n == 0 &&
        cfg->digest.dir == NULL && getenv_fn("MESHD_STATE_DIR") == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "digest: nowhere to send it (set digest.receivers or digest.dir)");
    if (cfg->backoff_ms > cfg->max_backoff_ms)
        return md_error_set(err, MD_ECONFIG, 0, 0, "backoff: longer than max_backoff");
    return 0;
}

void rpt_cfg_free(struct rpt_cfg *cfg)
{
    for (size_t i = 0; i < cfg->receivers.n; i++) {
        struct rpt_receiver *r = rcv_at(cfg, i);
        md_tz_free(r->quiet.tz);
        md_free(r->secret);
        md_free(r->username);
        md_free(r->password);
        md_free(r->token);
        r->quiet.tz = NULL;
        r->secret = r->username = r->password = r->token = NULL;
    }
    for (size_t i = 0; i < cfg->routes.n; i++) {
        md_free(route_at(cfg, i)->rcv);
        md_free(route_at(cfg, i)->esc);
        route_at(cfg, i)->rcv = route_at(cfg, i)->esc = NULL;
    }
    md_free(cfg->digest.rcv);
    cfg->digest.rcv = NULL;
    md_json_free(rpt_cfg_keys, rpt_cfg_nkeys, cfg);
}
