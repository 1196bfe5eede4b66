/* api.h - the HTTP API's routes and answers (docs/api.md), independent of the HTTP library.
 *
 * http.c parses requests (http-parser), decides who the caller is, and hands each request to
 * api_dispatch(), which routes it, carries out control actions through control.c and renders
 * every answer from memory: nothing here waits on PostgreSQL or on a child.
 *
 * Three files implement it (api_internal.h): api.c routes and controls, view.c renders the
 * JSON answers and the page and decides health (api_healthy), metrics.c writes the Prometheus
 * text (api_metrics).
 */
#ifndef MESHD_API_H
#define MESHD_API_H

#include <stdbool.h>
#include <stddef.h>

struct sup;

struct api_req {
    const char *method; /* as received: "GET", "POST", ... */
    const char *path;   /* decoded path, without the query */
    bool can_read;      /* may see /status, /metrics, /api/... GETs and / */
    bool can_write;     /* may POST */
    bool tcp_no_token;  /* TCP and no token configured: POSTs cannot be authorized at all */
};

struct api_reply {
    unsigned code;
    const char *ctype; /* static */
    char *body;        /* malloc'd (owned by the caller once returned), or static if
                        * body_static */
    size_t len;
    bool body_static;
    const char *allow; /* "GET, HEAD" for a 405, else NULL */
    bool challenge;    /* 401: add WWW-Authenticate: Bearer */
};

void api_dispatch(struct sup *sup, const struct api_req *rq, struct api_reply *rp);

/* Health (view.c): true when healthy.  With reasons non-NULL (a cJSON array), appends one
 * string per problem found. */
struct cJSON;
bool api_healthy(struct sup *sup, struct cJSON *reasons);

/* The Prometheus text exposition (metrics.c; malloc'd, *len bytes). */
char *api_metrics(struct sup *sup, size_t *len);

#endif
