/* ctl_client.h - meshctl's client of meshd's HTTP API (docs/api.md), private to supervisor/ctl/:
 * the options every API command takes and where they point, one request and its answer, and
 * typed reads of the answer's JSON.  The commands themselves are in ctl_api.c.
 *
 * Blocking libcurl (easy interface), one request per command: fine in a command-line tool, never
 * inside meshd's loop.  libcurl's and cJSON's allocations go through the md_x* helpers
 * (ctl_api_with_target sets that up), so a NULL from either library means a protocol problem,
 * never a lack of memory.
 */
#ifndef MESHD_CTL_CLIENT_H
#define MESHD_CTL_CLIENT_H

#include <stdbool.h>

#include <cjson/cJSON.h>

/* The API commands' exit codes (docs/meshctl.md). */
enum {
    CTL_OK = 0,
    CTL_REFUSED = 1, /* an error answer, a refused action, or unhealthy */
    CTL_USAGE = 2,
    CTL_UNREACHABLE = 3, /* no socket, nothing listening, timeout, broken connection */
    CTL_UNAUTHORIZED = 4,
};

/* The cap on an answer's body; a bigger one is refused (exit CTL_REFUSED). */
#define CTL_API_MAX_REPLY (16u * 1024 * 1024) /* /status of a big node is far below this */

/* What the command line asked for; every string is borrowed from argv. */
struct ctl_api_opts {
    const char *cmd;    /* argv[0]: "status", "run", ... (for messages and the path) */
    const char *job;    /* the JOB operand, or NULL */
    const char *socket; /* --socket */
    const char *url;    /* --url */
    const char *token;  /* --token */
    const char *config; /* --config */
    bool json;
};

/* Where and how to send requests.  Owns its strings. */
struct ctl_api_target {
    char *socket;      /* unix socket path; NULL when talking to base over TCP */
    char *base;        /* "http://localhost" for the socket, else --url without a trailing / */
    char *token;       /* bearer token, or NULL */
    char *config_note; /* why the fallback socket was used, or NULL */
};

/* The frame of every API command.  Parses argv (argv[0] is the command; want_job: a JOB operand
 * is required, opt_job: it may be given) into the options; on a bad command line prints why,
 * then usage(argv[0]), and returns CTL_USAGE.  Otherwise sets up libcurl and cJSON, works out
 * the target (--socket, --url, or the socket in the state_dir of --config) and returns what
 * fn(target, options) returns (CTL_USAGE, without calling fn, for a token meshctl cannot send).
 * Both arguments of fn are borrowed for the call.  Flushes stdout before it returns. */
int ctl_api_with_target(int argc, char **argv, bool want_job, bool opt_job,
                        void (*usage)(const char *cmd),
                        int (*fn)(const struct ctl_api_target *, const struct ctl_api_opts *));

/* Prints the lines on the options every API command shares and its exit codes (stderr), for a
 * command's usage function to end with. */
void ctl_api_usage(void);

/* Sends GET (or POST without a body) to the target's base + path.  A 2xx answer with a JSON
 * object: CTL_OK and the object in *out (the caller cJSON_Deletes it).  Anything else: *out is
 * NULL, why is printed to stderr (the error answer's message and diagnostics, or why no answer
 * came) and the exit code for it is returned. */
int ctl_api_fetch(const struct ctl_api_target *t, bool post, const char *path, cJSON **out);

/* "/api/jobs/<JOB escaped>/<what>" (what may be ""); the caller frees it with md_free. */
char *ctl_api_job_path(const char *job, const char *what);

/* Prints j pretty, and a newline, to stdout. */
void ctl_api_print_json(const cJSON *j);

/* Typed reads of the member key of o (o may be NULL; a missing member or one of another type
 * reads as absent).  Results are borrowed from o. */
const char *ctl_jstr(const cJSON *o, const char *key);       /* the string, or NULL */
bool ctl_jnum(const cJSON *o, const char *key, double *out); /* false when no number */
bool ctl_jtrue(const cJSON *o, const char *key);             /* the literal true */
const cJSON *ctl_jarr(const cJSON *o, const char *key);      /* the array, or NULL */
const cJSON *ctl_jobj(const cJSON *o, const char *key);      /* the object, or NULL */

#endif
