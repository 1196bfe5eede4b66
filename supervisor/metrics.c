/* metrics.c - the HTTP API's GET /metrics: the Prometheus text exposition (format 0.0.4) of
 * meshd's counters, gauges and histograms, rendered from memory.  The health gauge and the state
 * words are view.c's (api_internal.h), so /metrics never disagrees with /health or /status.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "api_internal.h"
#include "meshd/md_alloc.h"
#include "registry.h"
#include "sup.h"

struct buf {
    char *p;
    size_t len, cap;
};

static void bprintf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bprintf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = md_xrealloc(b->p, b->cap);
    }
}

/* A label value: backslash, double quote and newline escaped (exposition format 0.0.4).
 * Job names are restricted by the config, but nothing here relies on that. */
static const char *label(const char *s, char *out, size_t len)
{
    size_t k = 0;

    for (; *s != '\0' && k + 3 < len; s++) {
        if (*s == '\\' || *s == '"') {
            out[k++] = '\\';
            out[k++] = *s;
        } else if (*s == '\n') {
            out[k++] = '\\';
            out[k++] = 'n';
        } else {
            out[k++] = *s;
        }
    }
    out[k] = '\0';
    return out;
}

static void histogram(struct buf *b, const char *name, const char *labels, const double *bounds,
                      const uint64_t *counts, size_t nb, double sum, uint64_t count)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < nb; i++) {
        cum += counts[i];
        bprintf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
                bounds[i], cum);
    }
    bprintf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
            count);
    bprintf(b, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", sum);
    bprintf(b, "%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
            *labels ? "}" : "", count);
}

#define JOBS_EACH(job, sup)                                                                    \
    for (struct sup_job *job = (sup)->jobs; job != NULL; job = job->next)                      \
        if (!job->retired && job->cfg != NULL)

char *api_metrics(struct sup *sup, size_t *len)
{
    struct buf b = {md_xmalloc(16384), 0, 16384};
    struct sup_reg_stats st;
    char l[256], lb[300];
    unsigned running = 0;

    bprintf(&b, "# HELP meshd_up 1 while meshd runs and is not stopping.\n"
                "# TYPE meshd_up gauge\nmeshd_up %d\n", sup->stopping ? 0 : 1);
    bprintf(&b, "# HELP meshd_start_time_seconds When meshd started (Unix time).\n"
                "# TYPE meshd_start_time_seconds gauge\nmeshd_start_time_seconds %.3f\n",
            (double)sup->started_wall_ms / 1000.0);
    bprintf(&b, "# HELP meshd_healthy 1 when GET /health answers 200.\n"
                "# TYPE meshd_healthy gauge\nmeshd_healthy %d\n", api_healthy(sup, NULL) ? 1 : 0);

    bprintf(&b, "# HELP meshd_runs_total Finished runs by job and result.\n"
                "# TYPE meshd_runs_total counter\n");
    JOBS_EACH(job, sup) {
        label(job->name, l, sizeof l);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"succeeded\"} %" PRIu64 "\n", l,
                job->runs_ok);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"failed\"} %" PRIu64 "\n", l,
                view_runs_failed_only(job));
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"stopped\"} %" PRIu64 "\n", l,
                job->runs_stopped);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"timed_out\"} %" PRIu64 "\n", l,
                job->runs_timed_out);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"skipped\"} %" PRIu64 "\n", l,
                job->runs_skipped);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"missed\"} %" PRIu64 "\n", l,
                job->runs_missed);
        bprintf(&b, "meshd_runs_total{job=\"%s\",result=\"elsewhere\"} %" PRIu64 "\n", l,
                job->runs_elsewhere);
    }
    bprintf(&b, "# HELP meshd_run_duration_seconds Duration of finished runs.\n"
                "# TYPE meshd_run_duration_seconds histogram\n");
    JOBS_EACH(job, sup) {
        snprintf(lb, sizeof lb, "job=\"%s\"", label(job->name, l, sizeof l));
        histogram(&b, "meshd_run_duration_seconds", lb, sup_dur_bounds, job->history.dur_bucket,
                  SUP_DUR_BUCKETS - 1, job->history.dur_sum, job->history.dur_count);
    }
    bprintf(&b, "# HELP meshd_restarts_total Restarts after a failure (backoff ended).\n"
                "# TYPE meshd_restarts_total counter\n");
    JOBS_EACH(job, sup)
        bprintf(&b, "meshd_restarts_total{job=\"%s\"} %u\n", label(job->name, l, sizeof l),
                job->restarts);
    bprintf(&b, "# HELP meshd_job_state The job's current state (1 for the state it is in).\n"
                "# TYPE meshd_job_state gauge\n");
    JOBS_EACH(job, sup) {
        label(job->name, l, sizeof l);
        for (int s = 0; s < PROG_NSTATES; s++)
            bprintf(&b, "meshd_job_state{job=\"%s\",state=\"%s\"} %d\n", l,
                    view_state_word((enum prog_state)s), (int)job->prog.state == s);
    }
    bprintf(&b, "# HELP meshd_job_paused 1 when the job is paused.\n"
                "# TYPE meshd_job_paused gauge\n");
    JOBS_EACH(job, sup)
        bprintf(&b, "meshd_job_paused{job=\"%s\"} %d\n", label(job->name, l, sizeof l),
                job->paused);
    bprintf(&b, "# HELP meshd_status_lines_bad_total Malformed status lines from workers.\n"
                "# TYPE meshd_status_lines_bad_total counter\n");
    JOBS_EACH(job, sup)
        bprintf(&b, "meshd_status_lines_bad_total{job=\"%s\"} %" PRIu64 "\n",
                label(job->name, l, sizeof l), job->bad_status_lines);
    bprintf(&b, "# HELP meshd_alerts_open Open alerts raised by workers.\n"
                "# TYPE meshd_alerts_open gauge\n");
    JOBS_EACH(job, sup) {
        unsigned n[3] = {0, 0, 0};
        for (const struct sup_alert *a = job->history.alerts; a != NULL; a = a->next)
            if (a->severity >= 0 && a->severity < 3)
                n[a->severity]++;
        label(job->name, l, sizeof l);
        for (int s = 0; s < 3; s++)
            bprintf(&b, "meshd_alerts_open{job=\"%s\",severity=\"%s\"} %u\n", l,
                    md_status_severity_name((enum md_status_severity)s), n[s]);
    }
    JOBS_EACH(job, sup)
        for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
            running += p->launched && !p->exited;
    bprintf(&b, "# HELP meshd_running_workers Worker processes alive now.\n"
                "# TYPE meshd_running_workers gauge\nmeshd_running_workers %u\n", running);
    bprintf(&b, "# HELP meshd_firing_lag_seconds From a cron slot's due instant to its spawn.\n"
                "# TYPE meshd_firing_lag_seconds histogram\n");
    histogram(&b, "meshd_firing_lag_seconds", "", sup_lag_bounds, sup->lag_bucket,
              SUP_LAG_BUCKETS - 1, sup->lag_sum, sup->lag_count);

    sup_registry_stats(sup, &st);
    {
        const struct {
            const char *name, *type, *help;
            uint64_t v;
        } reg[] = {
            {"meshd_registry_connected", "gauge", "1 when the registry database is connected.",
             st.connected},
            {"meshd_registry_backlog_events", "gauge", "Registry events not yet confirmed.",
             st.backlog},
            {"meshd_registry_backlog_bytes", "gauge", "Bytes of the journal not yet confirmed.",
             st.backlog_bytes},
            {"meshd_registry_events_total", "counter", "Registry events journalled.", st.events},
            {"meshd_registry_write_errors_total", "counter", "Failed registry batch writes.",
             st.batches_failed},
            {"meshd_registry_batches_total", "counter",
             "Registry batches written (round trips).", st.batches_ok},
            {"meshd_registry_dropped_events_total", "counter",
             "Events dropped at the journal's bound.", st.dropped},
        };
        for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
            bprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", reg[i].name,
                    reg[i].help, reg[i].name, reg[i].type, reg[i].name, reg[i].v);
    }
    *len = b.len;
    return b.p;
}
