/* regevent.c - the registry's events, built from the supervisor's state (registry.h): node,
 * job, run start and end, missed and skipped slots, abandoned runs, worker status lines, meshd's
 * own alerts about its jobs.  Each is one JSON object handed to registry.c, which journals and
 * ships it (registry_internal.h); docs/registry.md has their fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_time.h"
#include "registry.h"
#include "registry_internal.h"
#include "runlog.h"
#include "cgroup.h"
#include "history.h"
#include "sup.h"

/* A run event speaks for its execution: "exec", and "life" replaced by the execution's own
 * (the part of the exec id before its last '-'), which is not this meshd's when it reports the
 * end of a run it adopted from a previous life. */
static void exec_identity(cJSON *o, const char *exec_id)
{
    const char *dash = strrchr(exec_id, '-');
    char life[SUP_EXEC_ID_MAX];
    cJSON *v;

    cJSON_AddStringToObject(o, "exec", exec_id);
    if (dash == NULL)
        return;
    snprintf(life, sizeof life, "%.*s", (int)(dash - exec_id), exec_id);
    if ((v = cJSON_CreateString(life)) == NULL)
        abort(); /* out of memory */
    cJSON_ReplaceItemInObject(o, "life", v);
}

void sup_reg_job(struct sup *sup, const struct sup_reg_job *j)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "job");
    cJSON_AddStringToObject(o, "job", j->name);
    cJSON_AddStringToObject(o, "state", j->state);
    if (j->pid > 0)
        cJSON_AddNumberToObject(o, "pid", j->pid);
    if (j->next_slot != 0)
        md_time_json(o, "next_run_at", j->next_slot * 1000);
    cJSON_AddNumberToObject(o, "restarts", j->restarts);
    sup_reg_emit(sup, o, MD_JPRIO_EVENT);
}

void sup_reg_run_start(struct sup *sup, const char *job, const struct sup_reg_exec *x,
                       unsigned attempt)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "run_start");
    cJSON_AddStringToObject(o, "job", job);
    cJSON_AddStringToObject(o, "run_id", x->run_id);
    exec_identity(o, x->exec_id);
    md_time_json(o, "started_at", x->started_ms);
    if (x->slot != 0)
        md_time_json(o, "scheduled_for", x->slot * 1000);
    cJSON_AddNumberToObject(o, "pid", x->pid);
    cJSON_AddNumberToObject(o, "attempt", attempt);
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

/* The run's output tail as one text, newest lines last: as many of the newest lines as fit in
 * TAIL_JSON_MAX once JSON-escaped, so that the run_end event stays under MD_JOURNAL_EVENT_MAX
 * (64 KiB, with room for its other fields) and agent_runs.output_tail under its 64 KiB CHECK;
 * 20 lines of up to 8 KiB would not.  The lines are escaped already (sup_tail_push): valid
 * UTF-8 without control bytes, which PostgreSQL's text and the journal take as they are.
 * Returns NULL when there are no lines; the caller frees the text. */
#define TAIL_JSON_MAX (56 * 1024)

static char *tail_text(const struct sup_tail *t, size_t budget)
{
    size_t total = 0, len = 0;
    unsigned first = t->n; /* the first line kept (0 = oldest) */
    char *out;

    for (unsigned k = t->n; k-- > 0;) {
        const char *l = sup_tail_line(t, k);
        size_t cost = 2; /* the '\n', escaped */
        for (const char *c = l; *c != '\0'; c++)
            cost += (*c == '"' || *c == '\\') ? 2 : 1;
        if (total + cost > budget)
            break;
        total += cost;
        first = k;
    }
    if (first == t->n)
        return NULL;
    out = md_xmalloc(total + 1);
    for (unsigned k = first; k < t->n; k++) {
        const char *l = sup_tail_line(t, k);
        size_t n = strlen(l);
        memcpy(out + len, l, n);
        len += n;
        out[len++] = '\n';
    }
    out[len] = '\0';
    return out;
}

void sup_reg_run_end(struct sup *sup, const char *job, const char *run_id,
                     const struct sup_reg_exec *x, enum sup_run_status status, int exit_code,
                     int signal, const char *reason)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "run_end");
    cJSON_AddStringToObject(o, "job", job);
    cJSON_AddStringToObject(o, "run_id", run_id);
    md_time_json(o, "finished_at", md_time_wall_ms());
    cJSON_AddStringToObject(o, "status", sup_run_status_name(status));
    if (signal != 0)
        cJSON_AddNumberToObject(o, "signal", signal);
    else if (exit_code >= 0) /* -1: not known (a run adopted from a previous life) */
        cJSON_AddNumberToObject(o, "exit_code", exit_code);
    if (reason != NULL)
        cJSON_AddStringToObject(o, "reason", reason);
    if (x != NULL) {
        size_t slen = x->summary != NULL ? strlen(x->summary) : 0;
        /* The summary's share comes out of the tail's (SUP_SUMMARY_MAX): together under 64 KiB */
        char *tail = x->tail != NULL ? tail_text(x->tail, TAIL_JSON_MAX - slen) : NULL;
        exec_identity(o, x->exec_id);
        md_time_json(o, "started_at", x->started_ms); /* for a run_start never sent */
        cJSON_AddNumberToObject(o, "duration_ms", (double)x->duration_ms);
        if (x->slot != 0)
            md_time_json(o, "scheduled_for", x->slot * 1000);
        if (tail != NULL)
            cJSON_AddStringToObject(o, "output_tail", tail);
        md_free(tail);
        if (x->result != NULL)
            cJSON_AddStringToObject(o, "result", x->result);
        if (x->summary != NULL) {
            cJSON *s = cJSON_Parse(x->summary); /* the status parser's own compact output */
            if (s != NULL)
                cJSON_AddItemToObject(o, "summary", s);
        }
        if (x->usage != NULL && x->usage->cpu) { /* the run's cgroup; absent: not known */
            cJSON_AddNumberToObject(o, "cpu_usec", (double)x->usage->usage_usec);
            cJSON_AddNumberToObject(o, "cpu_user_usec", (double)x->usage->user_usec);
            cJSON_AddNumberToObject(o, "cpu_system_usec", (double)x->usage->system_usec);
        }
        if (x->usage != NULL && x->usage->memory)
            cJSON_AddNumberToObject(o, "memory_peak_bytes", (double)x->usage->memory_peak);
    }
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_slot(struct sup *sup, const char *job, const char *kind, int64_t slot,
                  const char *reason)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, kind);
    cJSON_AddStringToObject(o, "job", job);
    md_time_json(o, "scheduled_for", slot * 1000);
    cJSON_AddStringToObject(o, "reason", reason);
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_slots_missed(struct sup *sup, const char *job, int64_t from, int64_t to,
                          uint64_t count, const char *reason)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "slots_missed");
    cJSON_AddStringToObject(o, "job", job);
    md_time_json(o, "from", from * 1000);
    md_time_json(o, "to", to * 1000);
    cJSON_AddNumberToObject(o, "count", (double)count);
    cJSON_AddStringToObject(o, "reason", reason);
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_run_abandoned(struct sup *sup, const struct sup_runlog_run *r, const char *reason)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "run_end");
    cJSON_AddStringToObject(o, "job", r->job);
    cJSON_AddStringToObject(o, "run_id", r->run_id);
    exec_identity(o, r->exec_id);
    md_time_json(o, "finished_at", md_time_wall_ms());
    cJSON_AddStringToObject(o, "status", sup_run_status_name(RUN_ABANDONED));
    cJSON_AddStringToObject(o, "reason", reason);
    if (r->slot != 0)
        md_time_json(o, "scheduled_for", r->slot * 1000);
    md_time_json(o, "started_at", r->started_ms);
    if (r->has_pid)
        cJSON_AddNumberToObject(o, "pid", r->pid);
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_runs_reconciled(struct sup *sup, const char *const *adopted, size_t n)
{
    cJSON *o, *a;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "runs_reconciled");
    a = cJSON_AddArrayToObject(o, "adopted");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(adopted[i]));
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_alert(struct sup *sup, const char *job, const char *key, const char *severity,
                   const char *message)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "alert");
    cJSON_AddStringToObject(o, "job", job);
    cJSON_AddStringToObject(o, "key", key);
    cJSON_AddStringToObject(o, "severity", severity);
    cJSON_AddStringToObject(o, "message", message);
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_resolve(struct sup *sup, const char *job, const char *key)
{
    cJSON *o;

    if (sup->reg == NULL)
        return;
    o = sup_reg_event_new(sup, "resolve");
    cJSON_AddStringToObject(o, "job", job);
    cJSON_AddStringToObject(o, "key", key);
    sup_reg_emit(sup, o, MD_JPRIO_RUN);
}

void sup_reg_status(struct sup *sup, const char *job, const char *run_id,
                    const struct md_status_event *ev)
{
    enum md_jprio prio = MD_JPRIO_EVENT;
    cJSON *o, *payload;

    if (sup->reg == NULL)
        return;
    switch (ev->kind) {
    case MD_ST_METRIC:
        o = sup_reg_event_new(sup, "metric");
        cJSON_AddStringToObject(o, "name", ev->u.metric.name);
        cJSON_AddNumberToObject(o, "value", ev->u.metric.value);
        prio = MD_JPRIO_METRIC;
        break;
    case MD_ST_ALERT:
        o = sup_reg_event_new(sup, "alert");
        cJSON_AddStringToObject(o, "key", ev->u.alert.key);
        cJSON_AddStringToObject(o, "severity", md_status_severity_name(ev->u.alert.severity));
        cJSON_AddStringToObject(o, "message", ev->u.alert.message);
        break;
    case MD_ST_RESOLVE:
        o = sup_reg_event_new(sup, "resolve");
        cJSON_AddStringToObject(o, "key", ev->u.resolve.key);
        break;
    case MD_ST_MESSAGE:
        o = sup_reg_event_new(sup, "message");
        cJSON_AddStringToObject(o, "msg_type", ev->u.message.type);
        payload = ev->u.message.payload ? cJSON_Parse(ev->u.message.payload) : NULL;
        if (payload != NULL)
            cJSON_AddItemToObject(o, "payload", payload);
        if (ev->u.message.has_priority) /* absent: the column's default */
            cJSON_AddNumberToObject(o, "priority", ev->u.message.priority);
        if (ev->u.message.to_node != NULL)
            cJSON_AddStringToObject(o, "to_node", ev->u.message.to_node);
        if (ev->u.message.to_job != NULL)
            cJSON_AddStringToObject(o, "to_job", ev->u.message.to_job);
        break;
    case MD_ST_PROGRESS:
        o = sup_reg_event_new(sup, "progress");
        cJSON_AddNumberToObject(o, "done", ev->u.progress.done);
        if (ev->u.progress.has_total)
            cJSON_AddNumberToObject(o, "total", ev->u.progress.total);
        if (ev->u.progress.unit != NULL)
            cJSON_AddStringToObject(o, "unit", ev->u.progress.unit);
        prio = MD_JPRIO_HEARTBEAT;
        break;
    case MD_ST_HEARTBEAT:
        o = sup_reg_event_new(sup, "heartbeat");
        prio = MD_JPRIO_HEARTBEAT;
        break;
    default:
        return; /* ready and result are folded into job and run_end events */
    }
    cJSON_AddStringToObject(o, "job", job);
    cJSON_AddStringToObject(o, "run_id", run_id);
    sup_reg_emit(sup, o, prio);
}
