/* md_config.h - the YAML schedule, loaded into typed structs.
 *
 * The file has six top-level sections:
 *
 *   node:      name, environment, state_dir, worker_dir, log_level, cgroups
 *   registry:  url, heartbeat, retention, journal_max (the shared database; optional)
 *   http:      listen, token, anonymous_read, max_connections (the API; optional)
 *   cluster:   enabled, when_offline, claim_timeout (several nodes, one database; optional)
 *   defaults:  any job key except the ones that say what and when to run
 *   jobs:      a mapping from job name to job settings
 *
 * Every job says what to run (worker: NAME, or command: "string" | [argv...]) and when
 * (schedule: "CRON" | "always", or on: EVENT).  See docs/configuration.md for every key.
 * Validation reports every problem at once as "file:line:col: error: message" with the key
 * path named ("jobs.scrape.schedule"), and warns (without failing) about traps.
 */
#ifndef MESHD_MD_CONFIG_H
#define MESHD_MD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_cron.h"
#include "md_err.h"
#include "md_tz.h"

#define MD_CONFIG_MAX_BYTES (1024 * 1024) /* a bigger file is an error, not a realloc */

enum md_job_kind {
    MD_JOB_CRON,    /* schedule: a cron expression */
    MD_JOB_SERVICE, /* schedule: always */
    MD_JOB_EVENT,   /* on: EVENT: a run per pending agent_messages row of that type */
};

enum md_restart { MD_RESTART_NEVER, MD_RESTART_ON_FAILURE, MD_RESTART_ALWAYS };
enum md_concurrency { MD_CONC_FORBID, MD_CONC_ALLOW, MD_CONC_REPLACE };

/* failure_alert: the severity of meshd's own alert when a run of the job fails
 * (job.<name>.failed), or none: meshd raises no alert of its own about the job at all (failed,
 * fatal, missed).  The first three are in md_status_severity's order (md_status.h). */
enum md_failure_alert {
    MD_FAILURE_ALERT_CRITICAL,
    MD_FAILURE_ALERT_WARNING, /* the default */
    MD_FAILURE_ALERT_INFO,
    MD_FAILURE_ALERT_NONE,
};

struct md_env_var {
    char *name;
    char *value; /* after ${VAR} expansion; never log it */
};

struct md_job {
    char *name;
    int line, col; /* where the job's name appears in the file */

    /* What to run. */
    char *worker; /* worker name (runs <worker_dir>/meshd-<worker>), or NULL */
    char **argv;  /* NULL-terminated argv; for a worker, argv[0] is the resolved path */
    size_t argc;

    /* When. */
    enum md_job_kind kind;
    char *schedule; /* the cron text as written (MD_JOB_CRON), else NULL */
    struct md_cron cron;
    char *event;      /* MD_JOB_EVENT: the event name, else NULL */
    struct md_tz *tz; /* owned; never NULL after a successful load (UTC by default) */

    /* How. */
    struct md_env_var *env;
    size_t nenv;
    char *workdir;       /* NULL: meshd's working directory */
    char *user;          /* NULL: meshd's user */
    uint64_t timeout_ms; /* run timeout; 0 = none */
    enum md_restart restart;
    int max_retries; /* failed starts before FATAL */
    uint64_t backoff_initial_ms;
    uint64_t backoff_max_ms;
    uint64_t backoff_reset_ms; /* healthy running time that resets the retry counter */
    uint64_t start_secs_ms;    /* running this long counts as started */
    bool ready_line;           /* started only on {"event":"ready"} (start_secs is then ignored) */
    int stop_signal;           /* signal number */
    uint64_t stop_timeout_ms;  /* then SIGKILL */
    bool stop_group;           /* signal the whole process group */
    enum md_concurrency concurrency;
    enum md_failure_alert failure_alert; /* meshd's alerts about the job (docs/supervision.md) */
    uint64_t jitter_ms;                  /* random delay 0..jitter added to each scheduled fire */
    uint64_t catchup_ms;                 /* catch-up window for missed scheduled runs */
    bool enabled;
    char *prefer;               /* cluster: the node that runs this job's slots; others wait
                                 * takeover_ms and run a slot only if it was not claimed */
    uint64_t takeover_ms;       /* default 1m */
    bool singleton;             /* cluster: a service that runs on one node at a time (lease) */
    uint64_t expect_success_ms; /* expect.succeed_within: a 'succeeded' run must have finished
                                 * this recently (meshctl health); 0 = no expectation */
    char *config_json;          /* free-form worker config as compact JSON ("{}" if none) */
    int log_burst;              /* log_limit.burst: lines logged per stream and window; 0: all */
    uint64_t log_interval_ms;   /* log_limit.interval: the window, 1s..1d, default 30s */
};

struct md_config {
    char *path;       /* as given to md_config_load */
    char *node_name;  /* default: the host name */
    char *node_env;   /* environment label, default "default" */
    char *state_dir;  /* default: "var/state" (relative to meshd's working directory) */
    char *worker_dir; /* default: the libexec/meshd directory beside the meshd binary */
    char *log_level;  /* "error|warn|notice|info|debug", default "notice" */
    char *cgroups;    /* "auto" (default): each run in a cgroup of its own where meshd has a
                       * writable cgroup v2 subtree; "off" (docs/supervision.md) */

    /* registry: the shared database.  Every field has its default even without the section. */
    char *registry_url;         /* libpq URL or key=value conninfo, after ${VAR} expansion; may hold
                                 * a password: never log it.  NULL when registry.url is absent (the
                                 * daemon then falls back to $DATABASE_URL itself); "" when it was
                                 * given but expanded to empty: explicitly no database. */
    bool registry_url_set;      /* registry.url was given, even if it expanded to "" */
    uint64_t heartbeat_ms;      /* node heartbeat period, 1s..1h, default 30s */
    uint64_t retention_ms;      /* run history, metrics and processed messages older than this
                                 * are pruned; 1h..3650d, default 30d */
    uint64_t journal_max_bytes; /* bound of the local journal, 1MiB..64GiB, default 64MiB */

    /* http: the API listener (docs/api.md).  Every field has its default without the section. */
    char *http_host;               /* IP literal to bind, default "127.0.0.1"; "::" or "0.0.0.0"
                                    * for all interfaces; NULL when http.listen is "" (TCP off) */
    int http_port;                 /* 0..65535, default 8470 ($PORT overrides it at start) */
    bool http_port_set;            /* http.listen named a port */
    char *http_token;              /* bearer token after ${VAR} expansion; never log it.  NULL when
                                    * http.token is absent (meshd then reads $MESHD_API_TOKEN) */
    bool http_anonymous_read;      /* GETs other than /health without a token, default true */
    unsigned http_max_connections; /* 1..65535, default 256 */

    /* cluster: several nodes, one registry database (docs/cluster.md). */
    bool cluster;              /* claim each scheduled slot in agent_runs before running it */
    bool cluster_offline_skip; /* when_offline: skip (default) or run a slot that cannot be
                                * claimed */
    uint64_t claim_timeout_ms; /* 100ms..1m, default 5s */

    struct md_job *jobs; /* in file order */
    size_t njobs;
};

enum md_diag_severity { MD_DIAG_ERROR, MD_DIAG_WARNING };

struct md_diag_item {
    enum md_diag_severity severity;
    int line, col; /* 1-based, 0 if not known */
    char *msg;     /* "key 'jobs.scrape.schedule': bad minute field: ..." */
};

/* Every problem found by one load, in file order. */
struct md_diag {
    struct md_diag_item *items;
    size_t n, nerrors, nwarnings;
};

/* An event (message type) name: a letter, then letters, digits, '_', '.', ':' or '-', at most
 * 128 bytes. */
bool md_event_name_ok(const char *s);

/* A job or node name (job names and node.name follow one rule): 1 to 64 letters, digits, '_',
 * '.' or '-'.  Also what a bus message's to_node/to_job must look like. */
bool md_name_ok(const char *s);

/* Reads and validates `path`.  On success returns 0 and *out (caller frees with
 * md_config_free).  On failure returns MD_ECONFIG (or a negative errno if the file cannot be
 * read) and *out is NULL.  Either way diag (caller cleans up with md_diag_cleanup) receives
 * every error and warning.  Reads the process environment for ${VAR} expansion.  Blocking
 * file I/O: call at start-up or on SIGHUP, not per request. */
int md_config_load(const char *path, struct md_config **out, struct md_diag *diag) MD_MUSTCHECK;

/* The same on a buffer; `name` is used in messages and as cfg->path. */
int md_config_parse(const char *text, size_t len, const char *name, struct md_config **out,
                    struct md_diag *diag) MD_MUSTCHECK;

void md_config_free(struct md_config *cfg);
void md_diag_init(struct md_diag *d);
void md_diag_cleanup(struct md_diag *d);
/* One item as "file:line:col: error: msg" (or "warning"); "file:line: ..." when the column is
 * unknown and "file: ..." when the line is too (an unreadable file), never a 0 position.  The
 * result is the caller's, freed with md_free.  Every place that shows a diagnostic uses it. */
char *md_diag_format(const struct md_diag_item *it, const char *file);
/* Prints each item to f, md_diag_format's line and '\n'. */
void md_diag_print(const struct md_diag *d, const char *file, void *f /* FILE * */);

/* Borrowed pointer to the job called name, or NULL. */
const struct md_job *md_config_job(const struct md_config *cfg, const char *name);

/* True when two jobs would run the same way: every field that affects a running process
 * (what, how, env) is equal.  Used by reload to keep untouched jobs running. */
bool md_job_same_process(const struct md_job *a, const struct md_job *b);
/* True when the "when" part (kind, schedule, event, zone, jitter, catch-up) is equal. */
bool md_job_same_schedule(const struct md_job *a, const struct md_job *b);

/* Parses "250ms", "30s", "5m", "1h30m", "2d" or a plain integer (seconds) into ms.
 * Returns 0 or MD_EPARSE. */
int md_duration_parse(const char *s, uint64_t *out_ms) MD_MUSTCHECK;

/* Reads the decimal digits at *p into *v and moves *p past them.  False when there are none or
 * the number does not fit 64 bits.  Shared by the duration and size parsers. */
bool md_parse_digits(const char **p, uint64_t *v) MD_MUSTCHECK;

#endif
