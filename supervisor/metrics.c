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
#include "meshd/md_buf.h"
#include "registry.h"
#include "sup.h"

/* The text's bound: ~2 KiB a job, so far beyond any real config; past it the lines that do not
 * fit are left out whole. */
#define METRICS_MAX (64u << 20)

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

static void histogram(struct md_buf *b, const char *name, const char *labels, const double *bounds,
                      const uint64_t *counts, size_t nb, double sum, uint64_t count)
{
    uint64_t cum = 0;

    for (size_t i = 0; i < nb; i++) {
        cum += counts[i];
        md_buf_printf(b, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
                      bounds[i], cum);
    }
    md_buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, *labels ? "," : "",
                  count);
    md_buf_printf(b, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
                  sum);
    md_buf_printf(b, "%s_count%s%s%s %" PRIu64 "\n", name, *labels ? "{" : "", labels,
                  *labels ? "}" : "", count);
}

#define JOBS_EACH(job, sup)                                                                        \
    for (struct sup_job *job = (sup)->jobs; job != NULL; job = job->next)                          \
        if (!job->retired && job->cfg != NULL)

char *api_metrics(struct sup *sup, size_t *len)
{
    struct md_buf b;
    struct sup_reg_stats st;
    char l[256], lb[300];
    unsigned running = 0;

    md_buf_init(&b, METRICS_MAX);
    md_buf_printf(&b,
                  "# HELP meshd_up 1 while meshd runs and is not stopping.\n"
                  "# TYPE meshd_up gauge\nmeshd_up %d\n",
                  sup->stopping ? 0 : 1);
    md_buf_printf(&b,
                  "# HELP meshd_start_time_seconds When meshd started (Unix time).\n"
                  "# TYPE meshd_start_time_seconds gauge\nmeshd_start_time_seconds %.3f\n",
                  (double)sup->started_wall_ms / 1000.0);
    md_buf_printf(&b,
                  "# HELP meshd_healthy 1 when GET /health answers 200.\n"
                  "# TYPE meshd_healthy gauge\nmeshd_healthy %d\n",
                  api_healthy(sup, NULL) ? 1 : 0);

    md_buf_printf(&b, "# HELP meshd_runs_total Finished runs by job and result.\n"
                      "# TYPE meshd_runs_total counter\n");
    JOBS_EACH(job, sup)
    {
        label(job->name, l, sizeof l);
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"succeeded\"} %" PRIu64 "\n", l,
                      job->runs_ok);
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"failed\"} %" PRIu64 "\n", l,
                      view_runs_failed_only(job));
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"stopped\"} %" PRIu64 "\n", l,
                      job->runs_stopped);
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"timed_out\"} %" PRIu64 "\n", l,
                      job->runs_timed_out);
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"skipped\"} %" PRIu64 "\n", l,
                      job->runs_skipped);
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"missed\"} %" PRIu64 "\n", l,
                      job->runs_missed);
        md_buf_printf(&b, "meshd_runs_total{job=\"%s\",result=\"elsewhere\"} %" PRIu64 "\n", l,
                      job->runs_elsewhere);
    }
    md_buf_printf(&b, "# HELP meshd_run_duration_seconds Duration of finished runs.\n"
                      "# TYPE meshd_run_duration_seconds histogram\n");
    JOBS_EACH(job, sup)
    {
        snprintf(lb, sizeof lb, "job=\"%s\"", label(job->name, l, sizeof l));
        histogram(&b, "meshd_run_duration_seconds", lb, sup_dur_bounds, job->history.dur_bucket,
                  SUP_DUR_BUCKETS - 1, job->history.dur_sum, job->history.dur_count);
    }
    md_buf_printf(&b, "# HELP meshd_restarts_total Restarts after a failure (backoff ended).\n"
                      "# TYPE meshd_restarts_total counter\n");
    JOBS_EACH(job, sup)
    md_buf_printf(&b, "meshd_restarts_total{job=\"%s\"} %u\n", label(job->name, l, sizeof l),
                  job->restarts);
    md_buf_printf(&b, "# HELP meshd_job_state The job's current state (1 for the state it is in).\n"
                      "# TYPE meshd_job_state gauge\n");
    JOBS_EACH(job, sup)
    {
        label(job->name, l, sizeof l);
        for (int s = 0; s < PROG_NSTATES; s++)
            md_buf_printf(&b, "meshd_job_state{job=\"%s\",state=\"%s\"} %d\n", l,
                          view_state_word((enum prog_state)s), (int)job->prog.state == s);
    }
    md_buf_printf(&b, "# HELP meshd_job_paused 1 when the job is paused.\n"
                      "# TYPE meshd_job_paused gauge\n");
    JOBS_EACH(job, sup)
    md_buf_printf(&b, "meshd_job_paused{job=\"%s\"} %d\n", label(job->name, l, sizeof l),
                  job->paused);
    md_buf_printf(&b, "# HELP meshd_status_lines_bad_total Malformed status lines from workers.\n"
                      "# TYPE meshd_status_lines_bad_total counter\n");
    JOBS_EACH(job, sup)
    md_buf_printf(&b, "meshd_status_lines_bad_total{job=\"%s\"} %" PRIu64 "\n",
                  label(job->name, l, sizeof l), job->bad_status_lines);
    md_buf_printf(
        &b, "# HELP meshd_alerts_open Open alerts raised by workers and by meshd about its jobs.\n"
            "# TYPE meshd_alerts_open gauge\n");
    JOBS_EACH(job, sup)
    {
        unsigned n[3] = {0, 0, 0};
        for (const struct sup_alert *a = job->history.alerts; a != NULL; a = a->next)
            if (a->severity >= 0 && a->severity < 3)
                n[a->severity]++;
        label(job->name, l, sizeof l);
        for (int s = 0; s < 3; s++)
            md_buf_printf(&b, "meshd_alerts_open{job=\"%s\",severity=\"%s\"} %u\n", l,
                          md_status_severity_name((enum md_status_severity)s), n[s]);
    }
    JOBS_EACH(job, sup)
    for (struct sup_proc *p = job->procs; p != NULL; p = p->next)
        running += p->launched && !p->exited;
    md_buf_printf(&b,
                  "# HELP meshd_running_workers Worker processes alive now.\n"
                  "# TYPE meshd_running_workers gauge\nmeshd_running_workers %u\n",
                  running);
    md_buf_printf(&b,
                  "# HELP meshd_firing_lag_seconds From a cron slot's due instant to its spawn.\n"
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
            {"meshd_registry_batches_total", "counter", "Registry batches written (round trips).",
             st.batches_ok},
            {"meshd_registry_dropped_events_total", "counter",
             "Events dropped at the journal's bound.", st.dropped},
        };
        for (size_t i = 0; i < sizeof reg / sizeof reg[0]; i++)
            md_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", reg[i].name,
                          reg[i].help, reg[i].name, reg[i].type, reg[i].name, reg[i].v);
    }
    *len = b.len;
    return md_buf_take(&b);
}
