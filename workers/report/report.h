/* report.h - meshd-report: alerts in the registry become notifications, routed, grouped,
 * inhibited, escalated, delivered exactly once through an outbox; and a digest of the registry.
 * docs/report.md is the user's page.
 *
 * The parts:
 *   report.h    the config and the run; config.c its key tables and checks, report.c the run
 *               (plan, deliver, linger on LISTEN; or the digest)
 *   route.h     pure: matchers, inhibition, quiet hours, grouping and timing -> what is due
 *   plan.h      plan.c, the registry side of route.c: load alerts and group state, write the
 *               outbox; deliver.c: claim outbox rows (FOR UPDATE SKIP LOCKED), send, record
 *               the answer, back off
 *   send.h      the receivers: send_webhook.c, send_email.c, send_github.c over http.c, their
 *               texts (pure) in render.c
 *   digest.h    the digest: the registry's window as text, HTML and Markdown (digest.c the
 *               SQL, digest_render.c the pure rendering)
 */
#ifndef MESHD_REPORT_REPORT_H
#define MESHD_REPORT_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"
#include "meshd/md_json.h"
#include "meshd/md_tz.h"
#include "meshd/md_worker.h"

/* A receiver's kind (its `type`). */
enum rpt_kind { RPT_WEBHOOK, RPT_EMAIL, RPT_GITHUB };

/* Quiet hours: [from, to) local time in timezone, on days (empty: every day).  from > to
 * spans midnight ("22:00".."07:00").  Only notifications without a firing critical alert are
 * held; they go out when the window ends (the state then, not a replay of the night). */
struct rpt_quiet {
    char *from, *to;     /* "HH:MM"; both NULL: no quiet hours */
    char *timezone;      /* IANA name; NULL: UTC */
    struct md_strv days; /* "mon".."sun" */
    /* set by rpt_cfg_check */
    int from_min, to_min; /* minutes after midnight */
    unsigned day_mask;    /* bit 0 = Sunday .. bit 6 = Saturday; 0x7f when days is empty */
    struct md_tz *tz;
};

/* One receiver.  The *_env members name environment variables; the values are read once, by
 * rpt_cfg_check, into the plain members below them (never logged, never stored). */
struct rpt_receiver {
    char *name;
    char *type; /* "webhook" | "email" | "github" */
    enum rpt_kind kind;
    uint64_t timeout_ms; /* one request (all of a GitHub life-cycle step); default 10 s */
    char *ca_file;       /* PEM bundle to trust (a private CA); NULL: the system's */
    bool insecure;       /* skip TLS verification (tests, never production) */
    struct rpt_quiet quiet;
    int64_t max_alerts; /* alerts listed in one notification, the rest counted; 0: all */

    /* webhook */
    char *url;        /* webhook: the endpoint; email: smtp://host[:port] or smtps://...;
                       * github: the API base, default https://api.github.com */
    char *format;     /* webhook: "json" (Alertmanager's v4 payload plus "meshd") | "slack" */
    char *secret_env; /* webhook: HMAC-SHA256 key for X-Meshd-Signature */
    char *secret;

    /* email */
    char *tls;  /* "starttls" (required; default for smtp://) | "none"; smtps:// is TLS */
    char *from; /* the From address */
    struct md_strv to;
    char *subject_prefix; /* default "[meshd]" */
    char *username_env, *password_env;
    char *username, *password;

    /* github */
    char *repo;      /* "owner/name" */
    char *token_env; /* default GITHUB_TOKEN */
    char *token;
    struct md_strv labels;     /* added to every issue, beside meshd's own */
    char *mention;             /* "@team" written into a new issue's body, or NULL */
    uint64_t reopen_within_ms; /* a closed issue younger than this is reopened, else a new one;
                                * default 30 d */
};

/* Label matchers: each list is OR of glob patterns (fnmatch, no FNM_PATHNAME), the lists are
 * ANDed; an empty list matches everything. */
struct rpt_match {
    struct md_strv key, severity, job, node;
};

struct rpt_route {
    char *name; /* default "route<N>" (1-based) */
    struct rpt_match match;
    struct md_strv receivers;    /* names in receivers[] */
    struct md_strv group_by;     /* of key, severity, job, node; ["..."]: every label (one alert a
                                  * group); []: one group for the route */
    uint64_t group_wait_ms;      /* default 30 s */
    uint64_t group_interval_ms;  /* default 5 m */
    uint64_t repeat_interval_ms; /* default 4 h; rounded up to a multiple of group_interval */
    bool send_resolved;          /* default true */
    bool cont;                   /* "continue": also try the routes after this one */
    uint64_t escalate_after_ms;  /* 0: no escalation */
    struct md_strv escalate_to;  /* receivers, one step per escalate_after */
    /* set by rpt_cfg_check: indexes into cfg->receivers.v */
    int *rcv, *esc;
};

struct rpt_inhibit {
    struct rpt_match source, target;
    struct md_strv equal; /* labels that must be equal (absent = "") */
};

struct rpt_digest {
    uint64_t window_ms;       /* default 24 h */
    struct md_strv receivers; /* where it is sent; none: only the file */
    char *dir;                /* Markdown files; default $MESHD_STATE_DIR/digest, else none */
    int64_t top;              /* longest runs, failures listed; default 10 */
    int *rcv;                 /* set by rpt_cfg_check */
};

struct rpt_cfg {
    struct md_worker_db database; /* the registry's database */
    char *mode;                   /* "notify" (default) | "digest" */
    char *external_url;           /* meshd's status page, for links; NULL: none */
    uint64_t linger_ms;           /* notify: stay for what falls due within this; default 2 m */
    uint64_t give_up_after_ms;    /* a notification still unsent after this fails; 24 h */
    uint64_t keep_ms;             /* sent and failed notifications are deleted after; 30 d */
    uint64_t backoff_ms, max_backoff_ms; /* retries: 1 s doubling to 5 m */
    struct md_json_array receivers;      /* struct rpt_receiver */
    struct md_json_array routes;         /* struct rpt_route */
    struct md_json_array inhibit;        /* struct rpt_inhibit */
    struct rpt_digest digest;
};

/* The key table main.c binds the config with. */
extern const struct md_json_key rpt_cfg_keys[];
extern const size_t rpt_cfg_nkeys;

/* Checks what the key tables cannot: receiver names unique and known where used, the
 * fields each type needs (url, to/from, repo), HH:MM and zones of quiet hours, group_by
 * labels; reads the *_env secrets.  Fills the index arrays.  MD_ECONFIG naming the path
 * ("receivers[1].to: required for an email receiver").  getenv_fn: getenv, or a test's. */
int rpt_cfg_check(struct rpt_cfg *cfg, const char *(*getenv_fn)(const char *),
                  struct md_error *err) MD_MUSTCHECK;
/* md_json_free plus what rpt_cfg_check allocated. */
void rpt_cfg_free(struct rpt_cfg *cfg);

static inline const struct rpt_receiver *rpt_receiver_at(const struct rpt_cfg *cfg, int i)
{
    return &((const struct rpt_receiver *)cfg->receivers.v)[i];
}

/* The run's result when a receiver refused a notification, or one was given up: exit 1. */
#define REPORT_EREFUSED (-1950)

/* The run (mode notify or digest).  *summary: the result summary (md_free).  Returns 0, 1-class
 * codes (MD_EDB ...) as md_worker_exit_code takes them, -ECANCELED after a stop. */
int rpt_run(struct md_worker *w, PGconn *db, const struct rpt_cfg *cfg, char **summary,
            struct md_error *err) MD_MUSTCHECK;

#endif
