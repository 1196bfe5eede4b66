/* config_job.c - the job key table, and the parsers of the keys that need more than a type.
 *
 * A static table drives the job keys (redis standardConfig, nginx ngx_command_t): each entry
 * gives the key's name, how its value is parsed, where it lands in struct md_job, its default
 * and its range.  The same table serves `defaults:` and `jobs.NAME:`, so a key can never be
 * accepted in one place and not understood in the other.  config_job_build.c applies it.
 */
#include "config_internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

#define DUR_MAX (365ULL * 86400 * 1000) /* no duration key accepts more than a year */

/* ---- the job key table --------------------------------------------------------------------- */

struct enum_name {
    const char *name;
    int value;
};

_Static_assert(sizeof(enum md_restart) == sizeof(int), "KT_ENUM stores enums as int");
_Static_assert(sizeof(enum md_concurrency) == sizeof(int), "KT_ENUM stores enums as int");
_Static_assert(sizeof(enum md_failure_alert) == sizeof(int), "KT_ENUM stores enums as int");

static const struct enum_name restart_names[] = {{"never", MD_RESTART_NEVER},
                                                 {"on-failure", MD_RESTART_ON_FAILURE},
                                                 {"always", MD_RESTART_ALWAYS},
                                                 {NULL, 0}};
static const struct enum_name conc_names[] = {
    {"forbid", MD_CONC_FORBID}, {"allow", MD_CONC_ALLOW}, {"replace", MD_CONC_REPLACE}, {NULL, 0}};
static const struct enum_name dst_names[] = {
    {"cronie", MD_CRON_DST_CRONIE}, {"skip", MD_CRON_DST_SKIP}, {NULL, 0}};
static const struct enum_name ready_names[] = {{"start_secs", 0}, {"line", 1}, {NULL, 0}};
static const struct enum_name failure_alert_names[] = {{"critical", MD_FAILURE_ALERT_CRITICAL},
                                                       {"warning", MD_FAILURE_ALERT_WARNING},
                                                       {"info", MD_FAILURE_ALERT_INFO},
                                                       {"none", MD_FAILURE_ALERT_NONE},
                                                       {NULL, 0}};

static key_fn key_worker, key_command, key_args, key_schedule, key_on, key_timezone, key_dst,
    key_env, key_user, key_restart, key_backoff, key_ready, key_expect, key_prefer, key_singleton,
    key_log_limit, key_log_interval;

#define OFF(f) offsetof(struct md_job, f)
const struct key_def md__job_keys[] = {
    /* What and when: first, so the kind is known before the rest. */
    {"worker", KT_CUSTOM, K_JOB_ONLY, 0, NULL, 0, 0, NULL, key_worker},
    {"command", KT_CUSTOM, K_JOB_ONLY, 0, NULL, 0, 0, NULL, key_command},
    {"args", KT_CUSTOM, K_JOB_ONLY, 0, NULL, 0, 0, NULL, key_args},
    {"schedule", KT_CUSTOM, K_JOB_ONLY, 0, NULL, 0, 0, NULL, key_schedule},
    {"on", KT_CUSTOM, K_JOB_ONLY, 0, NULL, 0, 0, NULL, key_on},
    /* How. */
    {"timezone", KT_CUSTOM, 0, 0, NULL, 0, 0, NULL, key_timezone},
    {"dst", KT_CUSTOM, K_CRON_ONLY, 0, NULL, 0, 0, dst_names, key_dst},
    {"env", KT_CUSTOM, 0, 0, NULL, 0, 0, NULL, key_env},
    {"workdir", KT_STRING, 0, OFF(workdir), NULL, 0, 0, NULL, NULL},
    {"user", KT_STRING, 0, OFF(user), NULL, 0, 0, NULL, key_user},
    {"timeout", KT_DURATION, K_NOT_SERVICE, OFF(timeout_ms), "0", 0, DUR_MAX, NULL, NULL},
    {"restart", KT_ENUM, 0, OFF(restart), NULL, 0, 0, restart_names, key_restart},
    {"max_retries", KT_INT, 0, OFF(max_retries), "5", 0, 1000, NULL, NULL},
    {"backoff", KT_CUSTOM, 0, 0, NULL, 0, 0, NULL, key_backoff},
    {"start_secs", KT_DURATION, 0, OFF(start_secs_ms), "1s", 0, DUR_MAX, NULL, NULL},
    {"ready", KT_CUSTOM, 0, 0, NULL, 0, 0, ready_names, key_ready},
    {"stop_signal", KT_SIGNAL, 0, OFF(stop_signal), "TERM", 0, 0, NULL, NULL},
    {"stop_timeout", KT_DURATION, 0, OFF(stop_timeout_ms), "10s", 0, DUR_MAX, NULL, NULL},
    {"stop_group", KT_BOOL, 0, OFF(stop_group), "true", 0, 0, NULL, NULL},
    {"concurrency", KT_ENUM, K_NOT_SERVICE, OFF(concurrency), "forbid", 0, 0, conc_names, NULL},
    /* Every kind: a service has no failed alert, but none also turns off its fatal one.  Not
     * critical by default: meshctl health fails while a critical alert is open, so a failing
     * health-check job would keep itself failing. */
    {"failure_alert", KT_ENUM, 0, OFF(failure_alert), "warning", 0, 0, failure_alert_names, NULL},
    {"jitter", KT_DURATION, K_CRON_ONLY, OFF(jitter_ms), "0", 0, DUR_MAX, NULL, NULL},
    {"catch_up", KT_DURATION, K_CRON_ONLY, OFF(catchup_ms), "1h", 0, DUR_MAX, NULL, NULL},
    {"prefer", KT_STRING, K_CRON_ONLY, OFF(prefer), NULL, 0, 0, NULL, key_prefer},
    {"takeover_after", KT_DURATION, K_CRON_ONLY, OFF(takeover_ms), "1m", 0, DUR_MAX, NULL, NULL},
    {"singleton", KT_BOOL, K_JOB_ONLY, OFF(singleton), "false", 0, 0, NULL, key_singleton},
    {"enabled", KT_BOOL, 0, OFF(enabled), "true", 0, 0, NULL, NULL},
    {"config", KT_CUSTOM, 0, 0, NULL, 0, 0, NULL, md__key_config},
    {"expect", KT_CUSTOM, K_NOT_SERVICE, 0, NULL, 0, 0, NULL, key_expect},
    {"log_limit", KT_CUSTOM, 0, 0, NULL, 0, 0, NULL, key_log_limit},
};
_Static_assert(MD_ARRAY_SIZE(md__job_keys) == NJOBKEYS, "config_internal.h: NJOBKEYS is wrong");

static const struct key_def backoff_keys[] = {
    {"initial", KT_DURATION, 0, OFF(backoff_initial_ms), "1s", 0, DUR_MAX, NULL, NULL},
    {"max", KT_DURATION, 0, OFF(backoff_max_ms), "60s", 0, DUR_MAX, NULL, NULL},
    {"reset", KT_DURATION, 0, OFF(backoff_reset_ms), "60s", 0, DUR_MAX, NULL, NULL},
};

/* expect: what `meshctl health` checks about the job's runs.  0 = no expectation (also the way
 * a job turns off one it inherits from defaults:). */
static const struct key_def expect_keys[] = {
    {"succeed_within", KT_DURATION, 0, OFF(expect_success_ms), NULL, 0, DUR_MAX, NULL, NULL},
};
/* log_limit: how many of a run's lines meshd logs, per stream (stdout, stderr, status): at most
 * burst in a window of interval, then a summary of what was held back (docs/supervision.md).
 * 1000 lines per 30 s: 33 lines a second sustained is more than a worker needs for a human to
 * read, one flooding run stays far below journald's own per-service limit (10000 per 30 s), which
 * would otherwise drop meshd's lines about every other job, and a full burst costs the loop a few
 * milliseconds of writes.  burst 0 turns the limit off. */
static const struct key_def log_limit_keys[] = {
    {"burst", KT_INT, 0, OFF(log_burst), "1000", 0, 1000000, NULL, NULL},
    {"interval", KT_DURATION, 0, OFF(log_interval_ms), "30s", 0, 86400000, NULL, key_log_interval},
};
#undef OFF

static const char *expect_text(const struct key_def *k, char *buf, size_t size)
{
    size_t o;

    switch (k->type) {
    case KT_DURATION:
        return "a duration like 30s, 5m or 1h30m";
    case KT_BOOL:
        return "true or false";
    case KT_INT:
        return "an integer";
    case KT_SIGNAL:
        return "a signal like TERM, SIGINT or 15";
    case KT_STRING:
        return "a string";
    case KT_ENUM:
    case KT_CUSTOM:
        if (k->enums == NULL)
            return "a value";
        o = (size_t)snprintf(buf, size, "one of");
        for (const struct enum_name *e = k->enums; e->name && o < size; e++)
            o += (size_t)snprintf(buf + o, size - o, "%s %s", e == k->enums ? "" : ",", e->name);
        return buf;
    }
    return "a value";
}

static bool lookup_enum(const struct enum_name *e, const char *s, int *out)
{
    for (; e->name; e++) {
        if (strcmp(e->name, s) == 0) {
            *out = e->value;
            return true;
        }
    }
    return false;
}

/* Parses text for a typed key into dst.  On failure writes the message tail into why. */
static bool parse_typed(const struct key_def *k, const char *s, void *dst, char *why, size_t wlen)
{
    char ebuf[96], sbuf[72];
    const char *shown = md__show(s, strlen(s), sbuf, sizeof sbuf);
    uint64_t ms;
    long long n;
    int iv;
    bool b;

    switch (k->type) {
    case KT_DURATION:
        if (md_duration_parse(s, &ms) != 0) {
            snprintf(why, wlen, "expected %s, got '%s'", expect_text(k, ebuf, sizeof ebuf), shown);
            return false;
        }
        if (ms > (uint64_t)k->max) {
            snprintf(why, wlen, "'%s' is too long (at most %llud)", shown,
                     (unsigned long long)k->max / 86400000ULL);
            return false;
        }
        memcpy(dst, &ms, sizeof ms);
        return true;
    case KT_BOOL:
        if (!md__parse_bool(s, &b)) {
            bool yaml11 = !strcasecmp(s, "yes") || !strcasecmp(s, "no") || !strcasecmp(s, "on") ||
                          !strcasecmp(s, "off");
            snprintf(why, wlen, "expected true or false, got '%s'%s", shown,
                     yaml11 ? " (YAML 1.2 has no yes/no/on/off booleans)" : "");
            return false;
        }
        memcpy(dst, &b, sizeof b);
        return true;
    case KT_INT:
        if (!md__parse_int(s, &n)) {
            snprintf(why, wlen, "expected an integer, got '%s'", shown);
            return false;
        }
        if (n < k->min || n > k->max) {
            snprintf(why, wlen, "%s is out of range %lld..%lld", shown, k->min, k->max);
            return false;
        }
        iv = (int)n;
        memcpy(dst, &iv, sizeof iv);
        return true;
    case KT_SIGNAL:
        if (!md__parse_signal(s, &iv)) {
            snprintf(why, wlen, "expected %s, got '%s'", expect_text(k, ebuf, sizeof ebuf), shown);
            return false;
        }
        memcpy(dst, &iv, sizeof iv);
        return true;
    case KT_ENUM:
        if (!lookup_enum(k->enums, s, &iv)) {
            snprintf(why, wlen, "expected %s, got '%s'", expect_text(k, ebuf, sizeof ebuf), shown);
            return false;
        }
        memcpy(dst, &iv, sizeof iv);
        return true;
    case KT_STRING: {
        char *old, *copy;
        if (*s == '\0') {
            snprintf(why, wlen, "must not be empty");
            return false;
        }
        memcpy(&old, dst, sizeof old);
        md_free(old);
        copy = md_xstrdup(s);
        memcpy(dst, &copy, sizeof copy);
        return true;
    }
    case KT_CUSTOM:
        break;
    }
    MD_UNREACHABLE();
}

/* Applies node v for key k to w->job; returns false after reporting a problem. */
bool md__apply_key(struct ctx *c, struct jobwork *w, const struct key_def *k,
                   const struct md__ynode *v, const char *path)
{
    char ebuf[96], why[256];
    const char *s;

    if (k->type == KT_CUSTOM)
        return k->fn(c, w, k, v, path);
    if ((s = md__scalar(c, v, path, expect_text(k, ebuf, sizeof ebuf))) == NULL)
        return false;
    if (!parse_typed(k, s, (char *)w->job + k->off, why, sizeof why)) {
        md__err_at(c, v, path, "%s", why);
        return false;
    }
    return k->fn ? k->fn(c, w, k, v, path) : true;
}

void md__job_set_defaults(struct md_job *job)
{
    char why[256];

    for (size_t i = 0; i < NJOBKEYS; i++)
        if (md__job_keys[i].def && !parse_typed(&md__job_keys[i], md__job_keys[i].def,
                                                (char *)job + md__job_keys[i].off, why, sizeof why))
            MD_UNREACHABLE();
    for (size_t i = 0; i < MD_ARRAY_SIZE(backoff_keys); i++)
        if (!parse_typed(&backoff_keys[i], backoff_keys[i].def, (char *)job + backoff_keys[i].off,
                         why, sizeof why))
            MD_UNREACHABLE();
    for (size_t i = 0; i < MD_ARRAY_SIZE(log_limit_keys); i++)
        if (!parse_typed(&log_limit_keys[i], log_limit_keys[i].def,
                         (char *)job + log_limit_keys[i].off, why, sizeof why))
            MD_UNREACHABLE();
    job->restart = MD_RESTART_NEVER; /* settled in job_finish from the kind */
}

void md__strv_free(char **v)
{
    if (v == NULL)
        return;
    for (char **p = v; *p; p++)
        md_free(*p);
    md_free(v);
}

void md__job_cleanup(struct md_job *job)
{
    md_free(job->name);
    md_free(job->worker);
    md__strv_free(job->argv);
    md_free(job->schedule);
    md_free(job->event);
    md_tz_free(job->tz);
    for (size_t i = 0; i < job->nenv; i++) {
        md_free(job->env[i].name);
        md_free(job->env[i].value);
    }
    md_free(job->env);
    md_free(job->workdir);
    md_free(job->user);
    md_free(job->prefer);
    md_free(job->config_json);
    memset(job, 0, sizeof *job);
}

/* ---- custom keys: what to run ---------------------------------------------------------------- */

/* Grows a NULL-terminated string vector by one (takes ownership of s). */
void md__strv_push(char ***v, size_t *n, char *s)
{
    *v = md_xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

static bool key_worker(struct ctx *c, struct jobwork *w, const struct key_def *k,
                       const struct md__ynode *v, const char *path)
{
    const char *s;
    bool ok;

    w->worker_node = v;
    if ((s = md__scalar(c, v, path, "a worker name like refresh")) == NULL)
        return false;
    ok = *s && strlen(s) <= NAME_MAX_LEN;
    for (const char *p = s; *p && ok; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-';
    if (!ok) {
        char buf[72];
        md__err_at(c, v, path, "bad worker name '%s' (lower-case letters, digits, '_' and '-')",
                   md__show(s, strlen(s), buf, sizeof buf));
        return false;
    }
    w->job->worker = md_xstrdup(s);
    return true;
}

/* Grammar (POSIX sh word splitting with no expansion of any kind; there is no shell):
 *   command = *blank [ word *( 1*blank word ) ] *blank      blank = SP | TAB | CR | LF
 *   word    = 1*( char | "\" any | "'" *not-' "'" | DQUOTE *( dqchar | "\" any ) DQUOTE )
 * Outside quotes a backslash takes the next character literally (backslash-newline is
 * dropped).  Inside double quotes it does so only before $ ` " \ and newline, as in sh.
 * Unquoted shell operators are passed on literally, which is rarely what was meant: warn. */
static bool split_command(struct ctx *c, struct jobwork *w, const struct md__ynode *v,
                          const char *s, const char *path)
{
    size_t len = strlen(s), blen = 0;
    char *buf = md_xmalloc(len + 1);
    bool in_word = false, warned = false;
    size_t i = 0;

    while (i <= len) {
        char ch = s[i];
        if (ch == '\0' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            if (in_word)
                md__strv_push(&w->cmd, &w->ncmd, md_xstrndup(buf, blen));
            in_word = false;
            blen = 0;
            i++;
            continue;
        }
        in_word = true;
        if (ch == '\\') {
            if (s[i + 1] == '\0') {
                md__err_pos(c, v->line, md__inner_col(v, i), path,
                            "command ends with a lone backslash");
                goto fail;
            }
            if (s[i + 1] != '\n')
                buf[blen++] = s[i + 1];
            i += 2;
        } else if (ch == '\'') {
            const char *end = strchr(s + i + 1, '\'');
            if (end == NULL) {
                md__err_pos(c, v->line, md__inner_col(v, i), path,
                            "unterminated ' quote in command");
                goto fail;
            }
            memcpy(buf + blen, s + i + 1, (size_t)(end - (s + i + 1)));
            blen += (size_t)(end - (s + i + 1));
            i = (size_t)(end - s) + 1;
        } else if (ch == '"') {
            size_t open = i++;
            for (;;) {
                if (s[i] == '\0') {
                    md__err_pos(c, v->line, md__inner_col(v, open), path,
                                "unterminated \" quote in command");
                    goto fail;
                }
                if (s[i] == '"')
                    break;
                if (s[i] == '\\' && s[i + 1] && strchr("$`\"\\\n", s[i + 1])) {
                    if (s[i + 1] != '\n')
                        buf[blen++] = s[i + 1];
                    i += 2;
                    continue;
                }
                buf[blen++] = s[i++];
            }
            i++;
        } else {
            if (!warned && strchr("|&;<>`$", ch)) {
                md__warn_pos(c, v->line, md__inner_col(v, i), path,
                             "'%c' is passed to the program as is: a command does not run in a "
                             "shell (write command: [sh, -c, '...'] for shell syntax)",
                             ch);
                warned = true;
            }
            buf[blen++] = ch;
            i++;
        }
    }
    md_free(buf);
    if (w->ncmd == 0) {
        md__err_at(c, v, path, "command is empty");
        return false;
    }
    return true;
fail:
    md_free(buf);
    md__strv_free(w->cmd);
    w->cmd = NULL;
    w->ncmd = 0;
    return false;
}

/* A sequence of scalars into a string vector; false after reporting. */
static bool seq_strings(struct ctx *c, const struct md__ynode *v, const char *path,
                        const char *expect, char ***out, size_t *n)
{
    char ipath[300];
    bool ok = true;

    if (v->type == MD__Y_BAD)
        return false;
    if (v->type != MD__Y_SEQ) {
        char buf[80];
        md__err_at(c, v, path, "expected %s, got %s", expect, md__describe(v, buf, sizeof buf));
        return false;
    }
    for (size_t i = 0; i < v->n; i++) {
        const char *s;
        snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
        if ((s = md__scalar(c, v->kids[i], ipath, "a string")) == NULL) {
            ok = false;
            continue;
        }
        md__strv_push(out, n, md_xstrdup(s));
    }
    return ok;
}

static bool key_command(struct ctx *c, struct jobwork *w, const struct key_def *k,
                        const struct md__ynode *v, const char *path)
{
    const char *s;

    w->command_node = v;
    if (w->worker_node) {
        md__err_at(c, v, path, "a job runs either worker: or command:, not both");
        return false;
    }
    if (v->type == MD__Y_SEQ) {
        if (!seq_strings(c, v, path, "a command", &w->cmd, &w->ncmd))
            return false;
        if (w->ncmd == 0 || w->cmd[0][0] == '\0') {
            md__err_at(c, v, path, "command is empty");
            return false;
        }
        return true;
    }
    if ((s = md__scalar(c, v, path, "a command line or a list of arguments")) == NULL)
        return false;
    return split_command(c, w, v, s, path);
}

static bool key_args(struct ctx *c, struct jobwork *w, const struct key_def *k,
                     const struct md__ynode *v, const char *path)
{
    w->args_node = v;
    if (w->command_node) {
        md__err_at(c, v, path, "args: is for worker: jobs; put a command's arguments in command:");
        return false;
    }
    return seq_strings(c, v, path, "a list of arguments", &w->args, &w->nargs);
}

/* ---- custom keys: when ------------------------------------------------------------------- */

static bool key_schedule(struct ctx *c, struct jobwork *w, const struct key_def *k,
                         const struct md__ynode *v, const char *path)
{
    struct md_error e = {0};
    const char *s;
    int rc;

    w->schedule_node = v;
    if ((s = md__scalar(c, v, path, "a cron expression or 'always'")) == NULL)
        return false;
    w->kind_known = true;
    if (strcmp(s, "always") == 0) {
        w->job->kind = MD_JOB_SERVICE;
        return true;
    }
    w->job->kind = MD_JOB_CRON;
    w->job->schedule = md_xstrdup(s);
    rc = md_cron_parse(&w->job->cron, s, &e);
    if (rc != 0) {
        e.msg[sizeof e.msg - 1] = '\0';
        md__err_pos(c, v->line, e.col > 0 ? md__inner_col(v, (size_t)e.col - 1) : v->col, path,
                    "%s", e.msg[0] ? e.msg : md_strerror(rc));
        return false;
    }
    w->cron_ok = true;
    return true;
}

static bool key_on(struct ctx *c, struct jobwork *w, const struct key_def *k,
                   const struct md__ynode *v, const char *path)
{
    const char *s;
    bool ok;

    w->on_node = v;
    if (w->schedule_node) {
        md__err_at(c, v, path, "a job has either schedule: or on:, not both");
        return false;
    }
    if ((s = md__scalar(c, v, path, "an event name like data.loaded")) == NULL)
        return false;
    ok = md_event_name_ok(s);
    if (!ok) {
        char buf[72];
        md__err_at(c, v, path,
                   "bad event name '%s' (a letter, then letters, digits, '_', '.', ':' or '-')",
                   md__show(s, strlen(s), buf, sizeof buf));
        return false;
    }
    w->kind_known = true;
    w->job->kind = MD_JOB_EVENT;
    w->job->event = md_xstrdup(s);
    return true;
}

static bool key_timezone(struct ctx *c, struct jobwork *w, const struct key_def *k,
                         const struct md__ynode *v, const char *path)
{
    const char *s = md__scalar(c, v, path, "an IANA time zone like America/New_York");
    struct md_tz *tz = NULL;
    char buf[72];
    int rc;

    if (s == NULL)
        return false;
    rc = md_tz_load(s, &tz);
    if (rc == MD_ENOTZ || rc == MD_EPARSE || rc == -ENOENT) {
        md__err_at(c, v, path, "unknown time zone '%s'", md__show(s, strlen(s), buf, sizeof buf));
        return false;
    }
    if (rc != 0) {
        md__err_at(c, v, path, "cannot load time zone '%s': %s",
                   md__show(s, strlen(s), buf, sizeof buf), md_strerror(rc));
        return false;
    }
    md_tz_free(w->job->tz);
    w->job->tz = tz;
    return true;
}

/* A scalar that must be one of k->enums: stores its value in *val, or reports the error. */
static bool enum_value(struct ctx *c, const struct key_def *k, const struct md__ynode *v,
                       const char *path, int *val)
{
    char ebuf[96], sbuf[72];
    const char *s = md__scalar(c, v, path, expect_text(k, ebuf, sizeof ebuf));

    if (s == NULL)
        return false;
    if (!lookup_enum(k->enums, s, val)) {
        md__err_at(c, v, path, "expected %s, got '%s'", ebuf,
                   md__show(s, strlen(s), sbuf, sizeof sbuf));
        return false;
    }
    return true;
}

static bool key_dst(struct ctx *c, struct jobwork *w, const struct key_def *k,
                    const struct md__ynode *v, const char *path)
{
    int val;

    if (!enum_value(c, k, v, path, &val))
        return false;
    w->job->cron.dst = (uint8_t)val;
    return true;
}

/* ---- custom keys: how ---------------------------------------------------------------------- */

static const char *const reserved_env[] = {"MESHD_JOB",  "MESHD_RUN_ID",    "MESHD_SCHEDULED_AT",
                                           "MESHD_NODE", "MESHD_STATUS_FD", "MESHD_STATE_DIR"};

static bool key_env(struct ctx *c, struct jobwork *w, const struct key_def *k,
                    const struct md__ynode *v, const char *path)
{
    struct md_job *job = w->job;
    char vpath[300], buf[80];
    bool ok = true, *dup;

    if (v->type == MD__Y_BAD || md__ynode_is_null(v))
        return v->type != MD__Y_BAD;
    if (v->type != MD__Y_MAP) {
        md__err_at(c, v, path, "expected a mapping of NAME: value, got %s",
                   md__describe(v, buf, sizeof buf));
        return false;
    }
    dup = md__find_dups(c, v, path, false);
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct md__ynode *kn = v->kids[i], *vn = v->kids[i + 1];
        const char *raw;
        char *val;
        size_t j;

        if (dup[i / 2] || !md__key_ok(c, kn, path)) {
            ok = false;
            continue;
        }
        md__make_path(vpath, sizeof vpath, path, kn->value, kn->len);
        if (!md__env_name_ok(kn->value, kn->len)) {
            md__err_at(c, kn, NULL,
                       "key '%s': bad environment variable name (letters, digits and '_', not "
                       "starting with a digit)",
                       vpath);
            ok = false;
            continue;
        }
        for (j = 0; j < MD_ARRAY_SIZE(reserved_env); j++)
            if (strcmp(kn->value, reserved_env[j]) == 0)
                break;
        if (j < MD_ARRAY_SIZE(reserved_env)) {
            md__err_at(c, kn, vpath, "%s is set by meshd for every run", kn->value);
            ok = false;
            continue;
        }
        if (vn->type == MD__Y_BAD) {
            ok = false;
            continue;
        }
        if (md__ynode_is_null(vn)) {
            raw = "";
        } else if (vn->type != MD__Y_SCALAR) {
            md__err_at(c, vn, vpath, "expected a string, got %s",
                       md__describe(vn, buf, sizeof buf));
            ok = false;
            continue;
        } else if (strlen(vn->value) != vn->len) {
            md__err_at(c, vn, vpath, "the value contains a NUL character");
            ok = false;
            continue;
        } else {
            raw = vn->value;
        }
        if ((val = md__expand_env(c, vn, raw, vpath)) == NULL) {
            ok = false;
            continue;
        }
        /* A job's env is merged over defaults.env: same name, the job wins. */
        for (j = 0; j < job->nenv; j++)
            if (strcmp(job->env[j].name, kn->value) == 0)
                break;
        if (j == job->nenv) {
            job->env = md_xrealloc(job->env, (job->nenv + 1) * sizeof *job->env);
            job->env[j].name = md_xstrdup(kn->value);
            job->nenv++;
        } else {
            md_free(job->env[j].value);
        }
        job->env[j].value = val;
    }
    md_free(dup);
    return ok;
}

static bool key_user(struct ctx *c, struct jobwork *w, const struct key_def *k,
                     const struct md__ynode *v, const char *path)
{
    const char *u = w->job->user;
    char buf[72];

    /* Only a warning: the file may be checked on another machine than the one it runs on. */
    if (u[strspn(u, "0123456789")] != '\0' && getpwnam(u) == NULL)
        md__warn_pos(c, v->line, v->col, path, "no user '%s' on this machine",
                     md__show(u, strlen(u), buf, sizeof buf));
    return true;
}

static bool key_prefer(struct ctx *c, struct jobwork *w, const struct key_def *k,
                       const struct md__ynode *v, const char *path)
{
    const char *p = w->job->prefer;
    char buf[72];

    (void)k;
    if (md__valid_name(p, strlen(p)))
        return true;
    md__err_at(c, v, path, "'%s': a node name is 1 to 64 letters, digits, '_', '.' or '-'",
               md__show(p, strlen(p), buf, sizeof buf));
    return false;
}

static bool key_singleton(struct ctx *c, struct jobwork *w, const struct key_def *k,
                          const struct md__ynode *v, const char *path)
{
    (void)k;
    if (!w->job->singleton || w->job->kind == MD_JOB_SERVICE)
        return true;
    md__err_at(c, v, path,
               "singleton applies to services (schedule: always); a scheduled job is "
               "claimed slot by slot in a cluster anyway");
    return false;
}

static bool key_restart(struct ctx *c, struct jobwork *w, const struct key_def *k,
                        const struct md__ynode *v, const char *path)
{
    w->restart_src = w->from_defaults ? 1 : 2;
    w->restart_node = v;
    return true;
}

static bool key_ready(struct ctx *c, struct jobwork *w, const struct key_def *k,
                      const struct md__ynode *v, const char *path)
{
    int val;

    if (!enum_value(c, k, v, path, &val))
        return false;
    w->job->ready_line = val == 1;
    return true;
}

/* A nested mapping of job keys (backoff:, expect:): every key must be one of keys[], each value
 * goes through md__apply_key; `what` names the keys for the type error. */
static bool apply_submap(struct ctx *c, struct jobwork *w, const struct md__ynode *v,
                         const char *path, const struct key_def *keys, size_t nkeys,
                         const char *what)
{
    char kpath[300], buf[80];
    bool ok = true, *dup;

    if (v->type == MD__Y_BAD)
        return false;
    if (v->type != MD__Y_MAP) {
        md__err_at(c, v, path, "expected a mapping with %s, got %s", what,
                   md__describe(v, buf, sizeof buf));
        return false;
    }
    dup = md__find_dups(c, v, path, false);
    for (size_t i = 0; i + 1 < v->n; i += 2) {
        const struct md__ynode *kn = v->kids[i];
        size_t j;

        if (dup[i / 2] || !md__key_ok(c, kn, path)) {
            ok = false;
            continue;
        }
        for (j = 0; j < nkeys; j++)
            if (strcmp(kn->value, keys[j].name) == 0)
                break;
        if (j == nkeys) {
            md__unknown_key(c, kn, path, keys, nkeys, sizeof keys[0]);
            ok = false;
            continue;
        }
        md__make_path(kpath, sizeof kpath, path, kn->value, kn->len);
        ok &= md__apply_key(c, w, &keys[j], v->kids[i + 1], kpath);
    }
    md_free(dup);
    return ok;
}

static bool key_backoff(struct ctx *c, struct jobwork *w, const struct key_def *kd,
                        const struct md__ynode *v, const char *path)
{
    (void)kd;
    if (!w->from_defaults)
        w->backoff_node = v; /* defaults' own initial > max: reported by md__defaults_check */
    return apply_submap(c, w, v, path, backoff_keys, MD_ARRAY_SIZE(backoff_keys),
                        "initial, max and reset");
}

static bool key_expect(struct ctx *c, struct jobwork *w, const struct key_def *kd,
                       const struct md__ynode *v, const char *path)
{
    (void)kd;
    return apply_submap(c, w, v, path, expect_keys, MD_ARRAY_SIZE(expect_keys), "succeed_within");
}

static bool key_log_limit(struct ctx *c, struct jobwork *w, const struct key_def *kd,
                          const struct md__ynode *v, const char *path)
{
    (void)kd;
    return apply_submap(c, w, v, path, log_limit_keys, MD_ARRAY_SIZE(log_limit_keys),
                        "burst and interval");
}

static bool key_log_interval(struct ctx *c, struct jobwork *w, const struct key_def *k,
                             const struct md__ynode *v, const char *path)
{
    char buf[72];

    (void)k;
    if (w->job->log_interval_ms >= 1000)
        return true;
    md__err_at(c, v, path, "'%s' is too short (at least 1s)",
               md__show(v->value, v->len, buf, sizeof buf));
    return false;
}
