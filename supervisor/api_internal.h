/* api_internal.h - what the HTTP API's files share with each other and nobody else sees.
 *
 * The API of api.h is one driving adapter in three files, with calls going down only
 * (tests/layers.py): api.c routes each request and carries out the control actions; view.c
 * renders the JSON answers and the page and owns the health verdict (api_healthy); metrics.c
 * writes the Prometheus text (api_metrics).  metrics.c reads the health verdict and the state
 * words from view.c, so /metrics cannot disagree with /health and /status: hence view sits one
 * rank below metrics in tests/layers.py.  view.c calls neither of the others.
 *
 * Every function here renders from memory and may be called from a loop callback.
 */
#ifndef MESHD_API_INTERNAL_H
#define MESHD_API_INTERNAL_H

#include <stdint.h>

#include "prog.h"

struct cJSON;
struct api_reply;
struct sup;
struct sup_job;

/* Sets rp to code and o printed unformatted as application/json (rp->body malloc'd, owned by
 * rp's holder as api.h says).  Takes ownership of o and frees it; aborts when o cannot be
 * printed (out of memory). */
void view_reply_json(struct api_reply *rp, unsigned code, struct cJSON *o);

/* A job state as the API spells it: "stopped", "starting", ... "fatal" (static). */
const char *view_state_word(enum prog_state s);

/* The failed runs as the API reports them: job->runs_failed without the timed-out and stopped
 * runs, which are reported on their own.  job is borrowed. */
uint64_t view_runs_failed_only(const struct sup_job *job);

/* The answers of GET /health (200 or 503), GET /status, GET /api/jobs/NAME and
 * GET /api/jobs/NAME/logs, written into rp.  sup and job are borrowed. */
void view_health(struct sup *sup, struct api_reply *rp);
void view_status(struct sup *sup, struct api_reply *rp);
void view_job(struct sup_job *job, struct api_reply *rp);
void view_logs(struct sup_job *job, struct api_reply *rp);

/* The answer of GET / and /index.html: the status page (page.h), static (rp->body_static). */
void view_page(struct api_reply *rp);

#endif
