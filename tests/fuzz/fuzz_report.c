/* fuzz_report.c - libFuzzer target: arbitrary bytes as meshd-report's config JSON.
 *
 * Binds and checks the config (rpt_cfg_keys, rpt_cfg_check); when it is taken, plans a fixed
 * set of alerts (open, resolved, muted candidates, a long key, quotes in values) over a few
 * rounds of time, and requires:
 *   - every notification lists at least one alert, and its JSON (rpt_note_build) parses;
 *   - planning again at the same instant finds nothing more due (the state each round writes
 *     is what the next one reads: a notification is never planned twice);
 *   - a next wake-up, when there is one, is in the future;
 *   - quiet hours end after the instant they are asked about.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "plan.h"
#include "report.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *env(const char *name)
{
    return strcmp(name, "PATH") == 0 ? NULL : "x"; /* every *_env is set */
}

static void mk(struct rpt_alert *a, int64_t id, const char *key, const char *sev, const char *job,
               const char *node, int64_t opened, int64_t resolved)
{
    memset(a, 0, sizeof *a);
    a->id = id;
    a->key = md_xstrdup(key);
    a->severity = md_xstrdup(sev);
    a->job = md_xstrdup(job);
    a->node = md_xstrdup(node);
    a->message = md_xstrdup("m \"q\" <b>");
    a->count = id;
    a->opened_ms = a->updated_ms = opened;
    a->resolved_ms = resolved;
    memcpy(a->fp, "0123456789abcdef", 17);
}

static void check_round(const struct rpt_cfg *cfg, struct rpt_alert *alerts, size_t n,
                        struct rpt_groups *gs, int64_t now)
{
    struct rpt_plan_out out = {0}, again = {0};

    rpt_plan(cfg, alerts, n, gs, now, &out);
    if (out.next_ms != 0 && out.next_ms <= now)
        abort(); /* a wake-up in the past would spin */
    for (size_t i = 0; i < out.n; i++) {
        const struct rpt_due *d = &out.v[i];
        char idem[1200];
        int64_t raised;
        if (d->nfiring + d->nresolved == 0)
            abort();
        char *text = rpt_note_build(cfg, alerts, d, &gs->v[d->group], "node", now, idem,
                                    sizeof idem, &raised);
        cJSON *j = cJSON_Parse(text);
        if (j == NULL)
            abort();
        cJSON_Delete(j);
        cJSON_free(text);
    }
    /* plan.c deletes the groups that ended; then the same instant has nothing more */
    size_t k = 0;
    for (size_t i = 0; i < gs->n; i++) {
        gs->v[i].dirty = false;
        if (gs->v[i].live) {
            gs->v[k++] = gs->v[i];
            continue;
        }
        md_free(gs->v[i].receiver);
        md_free(gs->v[i].group_key);
        md_free(gs->v[i].route);
        md_free(gs->v[i].sent);
    }
    gs->n = k;
    rpt_plan_out_free(&out);
    rpt_plan(cfg, alerts, n, gs, now, &again);
    if (again.n != 0)
        abort(); /* planned twice */
    rpt_plan_out_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rpt_cfg cfg = {0};
    struct md_error err = {0};
    struct rpt_alert alerts[6];
    struct rpt_groups gs = {0};
    char longkey[700];
    const int64_t t0 = INT64_C(1796544000000);

    if (md_json_bind((const char *)data, size, rpt_cfg_keys, rpt_cfg_nkeys, &cfg, &err) != 0 ||
        rpt_cfg_check(&cfg, env, &err) != 0) {
        rpt_cfg_free(&cfg);
        return 0;
    }
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    mk(&alerts[0], 1, "meshd.db_down", "critical", "", "pc", t0, 0);
    mk(&alerts[1], 2, "check.parcels.missing", "warning", "dq", "pc", t0, 0);
    mk(&alerts[2], 3, "check.\"x\"\\y", "info", "dq", "cloud", t0 + 1000, 0);
    mk(&alerts[3], 4, "job.load.failed", "warning", "load", "pc", t0, t0 + 5000);
    mk(&alerts[4], 5, longkey, "critical", "load", "pc", t0 + 2000, 0);
    mk(&alerts[5], 6, "job.load.fatal", "critical", "load", "cloud", t0 - 3600000, 0);
    for (size_t i = 0; i < cfg.receivers.n; i++) {
        int64_t q = rpt_quiet_until(&rpt_receiver_at(&cfg, (int)i)->quiet, t0);
        if (q != 0 && q <= t0)
            abort();
    }
    static const int64_t at[] = {0, 1000, 30000, 300000, 3600000, 4 * 3600000, 86400000};
    for (size_t r = 0; r < sizeof at / sizeof at[0]; r++) {
        if (r == 3)
            alerts[1].resolved_ms = t0 + 200000; /* one resolves midway */
        check_round(&cfg, alerts, 6, &gs, t0 + at[r]);
    }
    rpt_groups_free(&gs);
    for (size_t i = 0; i < 6; i++)
        rpt_alert_free(&alerts[i]);
    rpt_cfg_free(&cfg);
    return 0;
}
