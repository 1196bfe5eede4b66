/* test_report_route.c - meshd-report's config checks (workers/report/config.c) and its pure
 * routing engine (route.c): matchers, inhibition, grouping, group_wait / group_interval /
 * repeat_interval, send_resolved, quiet hours, escalation, per-alert GitHub groups.  The
 * registry side runs for real in tests/integration/test_report.py. */
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "report.h"
#include "route.h"
#include "t.h"

#define S 1000
#define MIN (60 * S)
#define T0 INT64_C(1796544000000) /* 2026-12-06T08:00:00Z, a Sunday */

static const char *fake_env(const char *name)
{
    if (strcmp(name, "HOOK_SECRET") == 0)
        return "s3cret";
    if (strcmp(name, "GITHUB_TOKEN") == 0)
        return "ghp_x";
    return NULL;
}

static int load(struct rpt_cfg *cfg, const char *json, struct md_error *err)
{
    int rc;
    memset(cfg, 0, sizeof *cfg);
    memset(err, 0, sizeof *err);
    rc = md_json_bind(json, strlen(json), rpt_cfg_keys, rpt_cfg_nkeys, cfg, err);
    return rc < 0 ? rc : rpt_cfg_check(cfg, fake_env, err);
}

static void refused(const char *json, const char *want)
{
    struct rpt_cfg cfg;
    struct md_error err;
    int rc = load(&cfg, json, &err);
    rpt_cfg_free(&cfg);
    if (rc == 0)
        T_FAIL("taken: %s", json);
    T_ASSERT_CONTAINS(err.msg, want);
}

#define HOOK "{\"name\": \"chat\", \"type\": \"webhook\", \"url\": \"http://127.0.0.1:1/h\"}"

TEST(config_refusals_name_the_path)
{
    refused("{}", "receivers: at least one is required");
    refused("{\"receivers\": [{\"name\": \"m\", \"type\": \"email\", \"url\": \"smtp://h\","
            " \"from\": \"a@b\"}]}",
            "receivers[0].to: required for an email receiver");
    refused("{\"receivers\": [{\"name\": \"m\", \"type\": \"email\", \"url\": \"http://h\"}]}",
            "receivers[0].url: an smtp://");
    refused("{\"receivers\": [{\"name\": \"g\", \"type\": \"github\", \"repo\": \"o/r\","
            " \"token_env\": \"NOPE\"}]}",
            "receivers[0].token_env: $NOPE is not set");
    refused("{\"receivers\": [{\"name\": \"g\", \"type\": \"github\", \"repo\": \"o\"}]}",
            "receivers[0].repo");
    refused("{\"receivers\": [" HOOK ", " HOOK "]}", "receivers[1].name: \"chat\" is used twice");
    refused("{\"receivers\": [{\"name\": \"chat\", \"type\": \"webhook\", \"url\": \"http://h\","
            " \"repo\": \"o/r\"}]}",
            "receivers[0].repo: only for a github receiver");
    refused("{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"mail\"]}]}",
            "routes[0].receivers[0]: no receiver named \"mail\"");
    refused("{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
            " \"group_by\": [\"host\"]}]}",
            "routes[0].group_by[0]: unknown label \"host\"");
    refused("{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
            " \"escalate_after\": \"30m\"}]}",
            "routes[0]: escalate_after and escalate_to go together");
    refused("{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
            " \"match\": {\"severity\": [\"fatal\"]}}]}",
            "routes[0].match.severity[0]: \"fatal\" is not critical, warning or info");
    refused("{\"receivers\": [{\"name\": \"chat\", \"type\": \"webhook\", \"url\": \"http://h\","
            " \"quiet_hours\": {\"from\": \"25:00\", \"to\": \"07:00\"}}]}",
            "receivers[0].quiet_hours.from: \"25:00\" is not a time HH:MM");
    refused("{\"receivers\": [{\"name\": \"chat\", \"type\": \"webhook\", \"url\": \"http://h\","
            " \"quiet_hours\": {\"from\": \"22:00\", \"to\": \"07:00\", \"timezone\": "
            "\"Mars/Base\"}}]}",
            "receivers[0].quiet_hours.timezone: unknown time zone \"Mars/Base\"");
    refused("{\"receivers\": [" HOOK
            ", {\"name\": \"g\", \"type\": \"github\", \"repo\": \"o/r\"}],"
            " \"digest\": {\"receivers\": [\"g\"]}}",
            "digest.receivers[0]: \"g\" is a github receiver");
}

TEST(config_defaults)
{
    struct rpt_cfg cfg;
    struct md_error err;
    T_ASSERT_EQ(load(&cfg,
                     "{\"receivers\": [" HOOK ", {\"name\": \"h2\", \"type\": \"webhook\","
                     " \"url\": \"https://x/y\", \"secret_env\": \"HOOK_SECRET\"}]}",
                     &err),
                0);
    T_ASSERT_EQ(cfg.routes.n, 1);
    const struct rpt_route *rt = cfg.routes.v;
    T_ASSERT_STREQ(rt->name, "default");
    T_ASSERT_EQ(rt->receivers.n, 2);
    T_ASSERT_EQ(rt->group_wait_ms, 30 * S);
    T_ASSERT_EQ(rt->group_interval_ms, 5 * MIN);
    T_ASSERT_EQ(rt->repeat_interval_ms, 240 * MIN);
    T_ASSERT_TRUE(rt->send_resolved);
    T_ASSERT_STREQ(rpt_receiver_at(&cfg, 1)->secret, "s3cret");
    T_ASSERT_STREQ(rpt_receiver_at(&cfg, 0)->format, "json");
    rpt_cfg_free(&cfg);

    /* repeat_interval rounds up to a whole number of group_intervals (Alertmanager) */
    T_ASSERT_EQ(load(&cfg,
                     "{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
                     " \"group_interval\": \"7m\", \"repeat_interval\": \"1h\"}]}",
                     &err),
                0);
    T_ASSERT_EQ(((const struct rpt_route *)cfg.routes.v)->repeat_interval_ms, 63 * MIN);
    rpt_cfg_free(&cfg);
}

/* The fixture: a config, alerts, groups carried from round to round. */
struct world {
    struct rpt_cfg cfg;
    struct rpt_alert a[16];
    size_t n;
    struct rpt_groups g;
    struct rpt_plan_out out;
};

static void world_init(struct world *w, const char *json)
{
    struct md_error err;
    memset(w, 0, sizeof *w);
    if (load(&w->cfg, json, &err) != 0)
        T_FAIL("config: %s", err.msg);
}

static struct rpt_alert *alert(struct world *w, int64_t id, const char *key, const char *sev,
                               const char *job, const char *node, int64_t opened)
{
    struct rpt_alert *a = &w->a[w->n++];
    memset(a, 0, sizeof *a);
    a->id = id;
    a->key = md_xstrdup(key);
    a->severity = md_xstrdup(sev);
    a->job = md_xstrdup(job);
    a->node = md_xstrdup(node);
    a->message = md_xstrdup("m");
    a->count = 1;
    a->opened_ms = a->updated_ms = opened;
    snprintf(a->fp, sizeof a->fp, "%016llx", (unsigned long long)id);
    return a;
}

/* One planning round at now; the groups that ended are dropped as plan.c deletes them. */
static size_t round_at(struct world *w, int64_t now)
{
    rpt_plan_out_free(&w->out);
    rpt_plan(&w->cfg, w->a, w->n, &w->g, now, &w->out);
    for (size_t i = 0; i < w->g.n; i++)
        w->g.v[i].dirty = false;
    return w->out.n;
}

/* Groups that ended are deleted before the next round (plan.c's write-back). */
static void settle(struct world *w)
{
    size_t k = 0;
    for (size_t i = 0; i < w->g.n; i++) {
        if (w->g.v[i].live) {
            w->g.v[k++] = w->g.v[i];
            continue;
        }
        md_free(w->g.v[i].receiver);
        md_free(w->g.v[i].group_key);
        md_free(w->g.v[i].route);
        md_free(w->g.v[i].sent);
    }
    w->g.n = k;
    rpt_plan_out_free(&w->out); /* its dues point at groups by index */
}

static void world_free(struct world *w)
{
    rpt_plan_out_free(&w->out);
    rpt_groups_free(&w->g);
    for (size_t i = 0; i < w->n; i++)
        rpt_alert_free(&w->a[i]);
    rpt_cfg_free(&w->cfg);
}

static const struct rpt_due *due(struct world *w, size_t i)
{
    T_ASSERT_TRUE(i < w->out.n);
    return &w->out.v[i];
}

static const char *gkey(struct world *w, const struct rpt_due *d)
{
    return w->g.v[d->group].group_key;
}

TEST(group_wait_then_one_note_for_the_group)
{
    struct world w;
    world_init(&w, "{\"receivers\": [" HOOK "]}");
    alert(&w, 1, "check.parcels.missing", "warning", "dq", "pc", T0);
    alert(&w, 2, "check.parcels.dup", "critical", "dq", "pc", T0 + 5 * S);
    alert(&w, 3, "job.load.failed", "warning", "load", "pc", T0 + 6 * S);

    T_ASSERT_EQ(round_at(&w, T0 + 10 * S), 0);
    T_ASSERT_EQ(w.out.next_ms, T0 + 30 * S); /* the oldest alert's group_wait */
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + 30 * S), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_FIRING);
    T_ASSERT_EQ(due(&w, 0)->nfiring, 2);
    T_ASSERT_STREQ(gkey(&w, due(&w, 0)), "default/{job=\"dq\"}");
    T_ASSERT_EQ(w.out.next_ms, T0 + 36 * S); /* job=load's group is due next */
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + 36 * S), 1);
    T_ASSERT_STREQ(gkey(&w, due(&w, 0)), "default/{job=\"load\"}");
    settle(&w);
    /* Nothing changes: the next thing is the repeat, 4 h after each group's notification. */
    T_ASSERT_EQ(round_at(&w, T0 + 60 * S), 0);
    T_ASSERT_EQ(w.out.next_ms, T0 + 30 * S + 240 * MIN);
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + 30 * S + 240 * MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_REPEAT);
    T_ASSERT_EQ(due(&w, 0)->nfiring, 2);
    world_free(&w);
}

TEST(resolved_within_group_wait_is_never_sent)
{
    struct world w;
    world_init(&w, "{\"receivers\": [" HOOK "]}");
    struct rpt_alert *a = alert(&w, 1, "k", "warning", "j", "pc", T0);
    a->resolved_ms = T0 + 10 * S;
    T_ASSERT_EQ(round_at(&w, T0 + 60 * S), 0);
    T_ASSERT_EQ(w.g.n, 1);
    T_ASSERT_FALSE(w.g.v[0].live); /* made this round, ended unsent: nothing to store */
    T_ASSERT_FALSE(w.g.v[0].dirty);
    world_free(&w);
}

TEST(new_alert_waits_group_interval_resolve_after_it)
{
    struct world w;
    world_init(&w, "{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
                   " \"group_wait\": \"0s\", \"group_interval\": \"1m\"}]}");
    alert(&w, 1, "a", "warning", "j", "pc", T0);
    T_ASSERT_EQ(round_at(&w, T0), 1);
    settle(&w);
    alert(&w, 2, "b", "warning", "j", "pc", T0 + 10 * S);
    T_ASSERT_EQ(round_at(&w, T0 + 10 * S), 0);
    T_ASSERT_EQ(w.out.next_ms, T0 + MIN);
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_FIRING);
    T_ASSERT_EQ(due(&w, 0)->nfiring, 2);
    settle(&w);
    /* one resolves: a "firing" update listing it resolved, a group_interval later */
    w.a[0].resolved_ms = T0 + 70 * S;
    T_ASSERT_EQ(round_at(&w, T0 + 90 * S), 0);
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + 2 * MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_FIRING);
    T_ASSERT_EQ(due(&w, 0)->nfiring, 1);
    T_ASSERT_EQ(due(&w, 0)->nresolved, 1);
    settle(&w);
    /* the last resolves: "resolved", and the group ends */
    w.a[1].resolved_ms = T0 + 130 * S;
    T_ASSERT_EQ(round_at(&w, T0 + 3 * MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_RESOLVED);
    T_ASSERT_EQ(due(&w, 0)->nresolved, 1);
    T_ASSERT_FALSE(w.g.v[due(&w, 0)->group].live);
    settle(&w);
    T_ASSERT_EQ(w.g.n, 0);
    world_free(&w);
}

TEST(send_resolved_false_ends_quietly)
{
    struct world w;
    world_init(&w, "{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
                   " \"group_wait\": \"0s\", \"send_resolved\": false}]}");
    alert(&w, 1, "a", "warning", "j", "pc", T0);
    T_ASSERT_EQ(round_at(&w, T0), 1);
    settle(&w);
    w.a[0].resolved_ms = T0 + S;
    T_ASSERT_EQ(round_at(&w, T0 + 10 * MIN), 0);
    T_ASSERT_FALSE(w.g.v[0].live);
    settle(&w);
    T_ASSERT_EQ(w.g.n, 0);
    world_free(&w);
}

TEST(inhibition_mutes_check_alerts_of_the_same_node)
{
    struct world w;
    world_init(&w, "{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
                   " \"group_wait\": \"0s\", \"group_by\": [\"...\"]}],"
                   " \"inhibit\": [{\"source\": {\"key\": [\"meshd.db_down\"]},"
                   " \"target\": {\"key\": [\"check.*\"]}, \"equal\": [\"node\"]}]}");
    alert(&w, 1, "meshd.db_down", "critical", "", "pc", T0);
    alert(&w, 2, "check.parcels.missing@pc", "warning", "dq", "pc", T0);
    alert(&w, 3, "check.parcels.missing@cloud", "warning", "dq", "cloud", T0);
    T_ASSERT_EQ(round_at(&w, T0), 2);
    T_ASSERT_TRUE(w.a[1].inhibited);
    T_ASSERT_FALSE(w.a[2].inhibited);
    T_ASSERT_FALSE(w.a[0].inhibited);
    settle(&w);
    /* The database is back: the muted alert is notified now */
    w.a[0].resolved_ms = T0 + MIN;
    T_ASSERT_EQ(round_at(&w, T0 + 6 * MIN), 2); /* db_down resolved + check@pc firing */
    world_free(&w);
}

TEST(routes_first_match_and_continue)
{
    struct world w;
    world_init(
        &w, "{\"receivers\": [" HOOK ", {\"name\": \"ops\", \"type\": \"webhook\","
            " \"url\": \"http://127.0.0.1:1/o\"}],"
            " \"routes\": [{\"name\": \"crit\", \"match\": {\"severity\": [\"critical\"]},"
            "   \"receivers\": [\"ops\"], \"group_wait\": \"0s\", \"continue\": true},"
            "  {\"name\": \"dq\", \"match\": {\"key\": [\"check.*\"]}, \"receivers\": [\"chat\"],"
            "   \"group_wait\": \"0s\"},"
            "  {\"name\": \"rest\", \"receivers\": [\"chat\"], \"group_wait\": \"0s\"}]}");
    alert(&w, 1, "check.x", "critical", "dq", "pc", T0);    /* crit (continue) + dq */
    alert(&w, 2, "check.y", "warning", "dq", "pc", T0);     /* dq only */
    alert(&w, 3, "job.z.failed", "warning", "z", "pc", T0); /* rest */
    T_ASSERT_EQ(round_at(&w, T0), 3);
    size_t seen = 0;
    for (size_t i = 0; i < w.out.n; i++) {
        const char *k = gkey(&w, due(&w, i));
        if (strcmp(k, "crit/{job=\"dq\"}") == 0) {
            seen |= 1;
            T_ASSERT_EQ(due(&w, i)->nfiring, 1);
        } else if (strcmp(k, "dq/{job=\"dq\"}") == 0) {
            seen |= 2;
            T_ASSERT_EQ(due(&w, i)->nfiring, 2);
        } else if (strcmp(k, "rest/{job=\"z\"}") == 0)
            seen |= 4;
    }
    T_ASSERT_EQ(seen, 7);
    world_free(&w);
}

TEST(quiet_hours_hold_all_but_critical)
{
    struct world w;
    /* T0 is 08:00 UTC, 03:00 in New York: inside 22:00-07:00 there */
    world_init(&w, "{\"receivers\": [{\"name\": \"chat\", \"type\": \"webhook\","
                   " \"url\": \"http://h/x\", \"quiet_hours\": {\"from\": \"22:00\","
                   " \"to\": \"07:00\", \"timezone\": \"America/New_York\"}}],"
                   " \"routes\": [{\"receivers\": [\"chat\"], \"group_wait\": \"0s\","
                   " \"repeat_interval\": \"24h\"}]}");
    alert(&w, 1, "a", "warning", "j1", "pc", T0);
    alert(&w, 2, "b", "critical", "j2", "pc", T0);
    T_ASSERT_EQ(round_at(&w, T0), 1);
    T_ASSERT_STREQ(gkey(&w, due(&w, 0)), "route1/{job=\"j2\"}");
    T_ASSERT_EQ(w.out.next_ms, T0 + 4 * 60 * MIN); /* 07:00 New York = 12:00 UTC */
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + 4 * 60 * MIN), 1);
    T_ASSERT_STREQ(gkey(&w, due(&w, 0)), "route1/{job=\"j1\"}");
    world_free(&w);
}

TEST(quiet_until_days_and_midnight)
{
    struct rpt_cfg cfg;
    struct md_error err;
    T_ASSERT_EQ(load(&cfg,
                     "{\"receivers\": [{\"name\": \"chat\", \"type\": \"webhook\","
                     " \"url\": \"http://h/x\", \"quiet_hours\": {\"from\": \"12:00\","
                     " \"to\": \"13:30\", \"days\": [\"sat\"]}}]}",
                     &err),
                0);
    const struct rpt_quiet *q = &rpt_receiver_at(&cfg, 0)->quiet;
    T_ASSERT_EQ(rpt_quiet_until(q, T0 + 4 * 60 * MIN), 0); /* Sunday 12:00: not a quiet day */
    T_ASSERT_EQ(rpt_quiet_until(q, T0 + 4 * 60 * MIN - 24 * 60 * MIN + 15 * MIN),
                T0 + 5 * 60 * MIN + 30 * MIN - 24 * 60 * MIN); /* Saturday 12:15 -> 13:30 */
    rpt_cfg_free(&cfg);
}

TEST(escalation_steps_per_alert)
{
    struct world w;
    world_init(&w, "{\"receivers\": [" HOOK ", {\"name\": \"gh\", \"type\": \"github\","
                   " \"repo\": \"o/r\"}],"
                   " \"routes\": [{\"receivers\": [\"chat\"], \"group_wait\": \"0s\","
                   " \"escalate_after\": \"30m\", \"escalate_to\": [\"gh\"]}]}");
    alert(&w, 1, "job.load.fatal", "critical", "load", "pc", T0);
    T_ASSERT_EQ(round_at(&w, T0), 1);
    T_ASSERT_EQ(w.out.next_ms, T0 + 30 * MIN);
    settle(&w);
    T_ASSERT_EQ(round_at(&w, T0 + 30 * MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_ESCALATION);
    T_ASSERT_EQ(due(&w, 0)->level, 1);
    T_ASSERT_STREQ(gkey(&w, due(&w, 0)), "route1/esc1/{key=\"job.load.fatal\"}");
    T_ASSERT_STREQ(w.g.v[due(&w, 0)->group].receiver, "gh");
    settle(&w);
    /* resolved: both the route's receiver and the escalation's hear it */
    w.a[0].resolved_ms = T0 + 40 * MIN;
    T_ASSERT_EQ(round_at(&w, T0 + 41 * MIN), 2);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_RESOLVED);
    T_ASSERT_EQ(due(&w, 1)->kind, RPT_N_RESOLVED);
    world_free(&w);
}

TEST(github_groups_per_alert_and_reopens)
{
    struct world w;
    world_init(&w, "{\"receivers\": [{\"name\": \"gh\", \"type\": \"github\","
                   " \"repo\": \"o/r\"}], \"routes\": [{\"receivers\": [\"gh\"],"
                   " \"group_wait\": \"0s\", \"group_interval\": \"1m\"}]}");
    alert(&w, 1, "check.a", "warning", "dq", "pc", T0);
    alert(&w, 2, "check.b", "warning", "dq", "pc", T0);
    T_ASSERT_EQ(round_at(&w, T0), 2);
    T_ASSERT_EQ(due(&w, 0)->nfiring, 1);
    T_ASSERT_EQ(due(&w, 1)->nfiring, 1);
    settle(&w);
    w.a[0].resolved_ms = T0 + S;
    T_ASSERT_EQ(round_at(&w, T0 + MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_RESOLVED);
    settle(&w);
    /* the same key fires again (a new alert row): the same group key, a new generation */
    alert(&w, 3, "check.a", "warning", "dq", "pc", T0 + 2 * MIN);
    T_ASSERT_EQ(round_at(&w, T0 + 2 * MIN), 1);
    T_ASSERT_EQ(due(&w, 0)->kind, RPT_N_FIRING);
    T_ASSERT_STREQ(gkey(&w, due(&w, 0)), "route1/{key=\"check.a\"}");
    world_free(&w);
}

TEST(group_key_is_bounded_and_escaped)
{
    struct world w;
    char buf[256], longkey[600];
    world_init(&w, "{\"receivers\": [" HOOK "], \"routes\": [{\"receivers\": [\"chat\"],"
                   " \"group_by\": [\"key\"]}]}");
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    struct rpt_alert *a = alert(&w, 1, "a\"b\\c", "warning", "j", "pc", T0);
    rpt_group_key(w.cfg.routes.v, 0, RPT_WEBHOOK, a, buf, sizeof buf);
    T_ASSERT_STREQ(buf, "route1/{key=\"a\\\"b\\\\c\"}");
    struct rpt_alert *b = alert(&w, 2, longkey, "warning", "j", "pc", T0);
    rpt_group_key(w.cfg.routes.v, 0, RPT_WEBHOOK, b, buf, sizeof buf);
    T_ASSERT_EQ(strlen(buf), sizeof buf - 1);
    T_ASSERT_CONTAINS(buf, "~");
    world_free(&w);
}

T_MAIN()
