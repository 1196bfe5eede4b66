/* history.c - history.h: run records, output tails, alerts and histograms, in memory. */
#include "history.h"

#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

const double sup_dur_bounds[SUP_DUR_BUCKETS - 1] = {0.1, 0.5, 1,   5,    10,   30,
                                                    60,  300, 900, 1800, 3600, 7200};
const double sup_lag_bounds[SUP_LAG_BUCKETS - 1] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,   0.25,   0.5,   1,    5};

const char *sup_run_status_name(enum sup_run_status s)
{
    switch (s) {
    case RUN_SUCCEEDED:
        return "succeeded";
    case RUN_FAILED:
        return "failed";
    case RUN_TIMED_OUT:
        return "timed_out";
    case RUN_STOPPED:
        return "stopped";
    case RUN_UNKNOWN:
        return "unknown";
    case RUN_ABANDONED:
        return "abandoned";
    }
    return "?";
}

size_t sup_bucket_of(double v, const double *bounds, size_t n)
{
    size_t i = 0;

    while (i < n && v > bounds[i])
        i++;
    return i;
}

/* ---- the output tail ------------------------------------------------------------------------ */

void sup_tail_push(struct sup_tail *t, const char *line, size_t len, size_t max)
{
    unsigned i = t->next;
    size_t need, want;

    need = md_log_escape(t->line[i], t->cap[i], line, len);
    want = (need < max ? need : max) + 1;
    if (t->cap[i] < want) {
        md_free(t->line[i]);
        t->cap[i] = want < 128 ? 128 : want;
        t->line[i] = md_xmalloc(t->cap[i]);
        md_log_escape(t->line[i], t->cap[i], line, len);
    }
    t->next = (i + 1) % SUP_TAIL_LINES;
    if (t->n < SUP_TAIL_LINES)
        t->n++;
}

const char *sup_tail_line(const struct sup_tail *t, unsigned k)
{
    if (k >= t->n)
        return NULL;
    return t->line[(t->next + SUP_TAIL_LINES - t->n + k) % SUP_TAIL_LINES];
}

void sup_tail_move(struct sup_lines *to, struct sup_tail *from)
{
    unsigned first = (from->next + SUP_TAIL_LINES - from->n) % SUP_TAIL_LINES;

    to->n = 0;
    for (unsigned k = 0; k < from->n; k++) {
        unsigned i = (first + k) % SUP_TAIL_LINES;
        to->line[to->n++] = from->line[i];
        from->line[i] = NULL;
    }
    for (unsigned i = 0; i < SUP_TAIL_LINES; i++) /* the spare buffers of a ring never filled */
        md_free(from->line[i]);
    memset(from, 0, sizeof *from);
}

void sup_lines_clear(struct sup_lines *l)
{
    for (unsigned i = 0; i < l->n; i++)
        md_free(l->line[i]);
    memset(l, 0, sizeof *l);
}

void sup_tail_clear(struct sup_tail *t)
{
    for (unsigned i = 0; i < SUP_TAIL_LINES; i++)
        md_free(t->line[i]);
    memset(t, 0, sizeof *t);
}

/* ---- finished runs -------------------------------------------------------------------------- */

struct sup_run_rec *sup_history_add(struct sup_history *h)
{
    struct sup_run_rec *r;

    if (h->n < SUP_RUN_HISTORY) {
        r = &h->rec[(h->next + h->n) % SUP_RUN_HISTORY];
        h->n++;
    } else {
        r = &h->rec[h->next];
        h->next = (h->next + 1) % SUP_RUN_HISTORY;
    }
    sup_lines_clear(&r->lines);
    memset(r, 0, sizeof *r);
    return r;
}

const struct sup_run_rec *sup_history_run(const struct sup_history *h, unsigned k)
{
    if (k >= h->n)
        return NULL;
    return &h->rec[(h->next + k) % SUP_RUN_HISTORY];
}

const struct sup_run_rec *sup_history_last(const struct sup_history *h)
{
    return h->n == 0 ? NULL : sup_history_run(h, h->n - 1);
}

void sup_history_duration(struct sup_history *h, double secs)
{
    h->dur_bucket[sup_bucket_of(secs, sup_dur_bounds, SUP_DUR_BUCKETS - 1)]++;
    h->dur_sum += secs;
    h->dur_count++;
}

/* ---- alerts --------------------------------------------------------------------------------- */

static void alert_free(struct sup_alert *a)
{
    md_free(a->key);
    md_free(a->message);
    md_free(a);
}

void sup_history_alert(struct sup_history *h, const char *key, const char *message, int severity,
                       int64_t now_ms)
{
    struct sup_alert *a, **pp;

    for (a = h->alerts; a != NULL; a = a->next) {
        if (strcmp(a->key, key) == 0) {
            md_free(a->message);
            a->message = md_xstrdup(message ? message : "");
            a->severity = severity;
            return;
        }
    }
    a = md_xcalloc(1, sizeof *a);
    a->key = md_xstrdup(key);
    a->message = md_xstrdup(message ? message : "");
    a->severity = severity;
    a->opened_ms = now_ms;
    a->next = h->alerts;
    h->alerts = a;
    if (++h->nalerts <= SUP_ALERTS_MAX)
        return;
    /* Over the bound: drop the oldest (the list's tail). */
    for (pp = &h->alerts; (*pp)->next != NULL; pp = &(*pp)->next)
        ;
    alert_free(*pp);
    *pp = NULL;
    h->nalerts--;
}

void sup_history_resolve(struct sup_history *h, const char *key)
{
    for (struct sup_alert **pp = &h->alerts; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->key, key) == 0) {
            struct sup_alert *a = *pp;
            *pp = a->next;
            alert_free(a);
            h->nalerts--;
            return;
        }
    }
}

void sup_history_free(struct sup_history *h)
{
    for (unsigned i = 0; i < SUP_RUN_HISTORY; i++)
        sup_lines_clear(&h->rec[i].lines);
    while (h->alerts != NULL) {
        struct sup_alert *a = h->alerts;
        h->alerts = a->next;
        alert_free(a);
    }
    memset(h, 0, sizeof *h);
}
