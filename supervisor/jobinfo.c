/* jobinfo.c - what the supervisor remembers about each job for /status, /health, /metrics and
 * `meshctl logs`: the last SUP_RUN_HISTORY finished runs with their output tails, open alerts,
 * the running worker's progress, run-duration and firing-lag histograms.
 *
 * Everything here is memory only and bounded; the registry in PostgreSQL keeps the history.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "sup.h"

/* Upper bounds (seconds) of the histograms' finite buckets; api.c renders them. */
const double sup_dur_bounds[SUP_DUR_BUCKETS - 1] = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900,
                                                     1800, 3600, 7200};
const double sup_lag_bounds[SUP_LAG_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1, 0.25, 0.5, 1, 5};

static void rec_clear(struct sup_run_rec *r)
{
    for (unsigned i = 0; i < SUP_TAIL_LINES; i++)
        md_free(r->lines[i]);
    memset(r, 0, sizeof *r);
}

static size_t bucket_of(double v, const double *bounds, size_t n)
{
    size_t i = 0;

    while (i < n && v > bounds[i])
        i++;
    return i; /* n: the +Inf bucket */
}

void sup_job_note_run(struct sup_job *job, struct sup_proc *p, const char *run_id,
                      const char *status, int exit_code, int signal)
{
    struct sup_run_rec *r;
    int64_t now = sup_wall_ms();

    job->sup->status_gen++;
    if (job->hist_n < SUP_RUN_HISTORY) {
        r = &job->hist[(job->hist_next + job->hist_n) % SUP_RUN_HISTORY];
        job->hist_n++;
    } else {
        r = &job->hist[job->hist_next];
        job->hist_next = (job->hist_next + 1) % SUP_RUN_HISTORY;
    }
    rec_clear(r);
    snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
    r->status = status;
    r->exit_code = exit_code;
    r->signal = signal;
    r->finished_ms = now;
    if (p != NULL) {
        unsigned k = 0;
        r->slot = p->slot;
        r->started_ms = p->started_wall_ms;
        r->duration_ms = p->duration_ms;
        r->usage = p->usage;
        for (unsigned i = 0; i < SUP_TAIL_LINES; i++) {
            unsigned idx = (p->tail_next + i) % SUP_TAIL_LINES;
            if (p->tail[idx] != NULL) {
                r->lines[k++] = p->tail[idx];
                p->tail[idx] = NULL;
            }
        }
        if (p->started_wall_ms != 0) {
            double secs = (double)p->duration_ms / 1000.0;
            job->dur_bucket[bucket_of(secs, sup_dur_bounds, SUP_DUR_BUCKETS - 1)]++;
            job->dur_sum += secs;
            job->dur_count++;
        }
    } else {
        r->slot = job->cur_slot;
    }
    if (strcmp(status, "succeeded") == 0)
        job->last_success_ms = now;
    else if (strcmp(status, "timed_out") == 0)
        job->runs_timed_out++;
    else if (strcmp(status, "stopped") == 0)
        job->runs_stopped++;
}

static void alert_free(struct sup_alert *a)
{
    md_free(a->key);
    md_free(a->message);
    md_free(a);
}

static void alert_open(struct sup_job *job, const struct md_status_event *ev)
{
    struct sup_alert *a, **pp;

    for (a = job->alerts; a != NULL; a = a->next) {
        if (strcmp(a->key, ev->u.alert.key) == 0) {
            /* One open alert per key: a repeat updates it, keeping when it opened. */
            md_free(a->message);
            a->message = md_xstrdup(ev->u.alert.message ? ev->u.alert.message : "");
            a->severity = (int)ev->u.alert.severity;
            return;
        }
    }
    a = md_xcalloc(1, sizeof *a);
    a->key = md_xstrdup(ev->u.alert.key);
    a->message = md_xstrdup(ev->u.alert.message ? ev->u.alert.message : "");
    a->severity = (int)ev->u.alert.severity;
    a->opened_ms = sup_wall_ms();
    a->next = job->alerts;
    job->alerts = a;
    if (++job->nalerts <= SUP_ALERTS_MAX)
        return;
    /* Over the bound: drop the oldest (the list's tail). */
    for (pp = &job->alerts; (*pp)->next != NULL; pp = &(*pp)->next)
        ;
    alert_free(*pp);
    *pp = NULL;
    job->nalerts--;
}

static void alert_resolve(struct sup_job *job, const char *key)
{
    for (struct sup_alert **pp = &job->alerts; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct sup_alert *a = *pp;
            *pp = a->next;
            alert_free(a);
            job->nalerts--;
            return;
        }
    }
}

void sup_job_note_status(struct sup_job *job, struct sup_proc *p,
                         const struct md_status_event *ev)
{
    job->sup->status_gen++;
    switch (ev->kind) {
    case MD_ST_ALERT:
        alert_open(job, ev);
        break;
    case MD_ST_RESOLVE:
        alert_resolve(job, ev->u.resolve.key);
        break;
    case MD_ST_PROGRESS:
        p->has_progress = true;
        p->has_total = ev->u.progress.has_total != 0;
        p->progress_done = ev->u.progress.done;
        p->progress_total = ev->u.progress.total;
        md_free(p->progress_unit);
        p->progress_unit = ev->u.progress.unit ? md_xstrdup(ev->u.progress.unit) : NULL;
        break;
    default:
        break;
    }
}

void sup_job_info_free(struct sup_job *job)
{
    for (unsigned i = 0; i < SUP_RUN_HISTORY; i++)
        rec_clear(&job->hist[i]);
    while (job->alerts != NULL) {
        struct sup_alert *a = job->alerts;
        job->alerts = a->next;
        alert_free(a);
    }
    job->nalerts = 0;
    md_free(job->last_error);
    job->last_error = NULL;
}

void sup_fmt_ms(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

void sup_json_time(struct cJSON *o, const char *key, int64_t ms)
{
    char buf[80];

    if (ms <= 0) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    sup_fmt_ms(ms, buf, sizeof buf);
    cJSON_AddStringToObject(o, key, buf);
}

void sup_note_lag(struct sup *sup, int64_t lag_ms)
{
    double secs = lag_ms > 0 ? (double)lag_ms / 1000.0 : 0.0;

    sup->lag_bucket[bucket_of(secs, sup_lag_bounds, SUP_LAG_BUCKETS - 1)]++;
    sup->lag_sum += secs;
    sup->lag_count++;
}
