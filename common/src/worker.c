/* worker.c - the runtime every meshd worker shares (md_worker.h).
 *
 * A worker is a batch process without a loop, so a stop is a flag: the SIGTERM/SIGINT handler
 * records the signal and calls md_pq_cancel_all (cron's flag-only handler, plus libpq's
 * signal-safe PQcancel), and the code polls md_worker_stopping / md_worker_tick between units
 * of work.  SA_RESTART is off so that a blocking read or sleep returns EINTR and the worker gets
 * to look at the flag.  stop_signal is this file's only mutable state, process-wide on purpose:
 * a signal handler has nowhere else to write.
 *
 * At the end md_worker_finish either exits with the code the result maps to, or, after a stop,
 * dies of the very signal (the glibc manual's "termination in handler" idiom), so that meshd
 * records a stop rather than a failure.
 */
#include "meshd/md_worker.h"

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_time.h"
#include "meshd/md_tz.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef MESHD_VERSION
#define MESHD_VERSION "unknown"
#endif

#define CONFIG_MAX (1024 * 1024)
#define PROGRESS_PERIOD_MS 1000

/* The signal that asked us to stop, 0 until one did. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    if (stop_signal == 0)
        stop_signal = sig;
    md_pq_cancel_all(); /* async-signal-safe, keeps errno */
}

bool md_worker_stopping(void)
{
    return stop_signal != 0;
}

static int64_t mono_ms(void)
{
    return md_time_clock_ms(CLOCK_MONOTONIC);
}

/* ---- init ------------------------------------------------------------------------------ */

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v != NULL ? v : dflt;
}

/* The identity meshd passes in the environment (docs/status-protocol.md).  A variable that is
 * set but malformed is meshd's bug or a hand-made mistake: refuse it rather than guess. */
static int read_identity(struct md_worker *w)
{
    const char *at = getenv("MESHD_SCHEDULED_AT"), *id = getenv("MESHD_MESSAGE_ID");

    w->job = env_or("MESHD_JOB", "");
    w->run_id = env_or("MESHD_RUN_ID", "");
    w->node = env_or("MESHD_NODE", "");
    w->message_type = getenv("MESHD_MESSAGE_TYPE");
    w->message_payload = getenv("MESHD_MESSAGE_PAYLOAD");
    if (at != NULL && at[0] != '\0') {
        int64_t s;
        if (md_time_parse_iso(at, &s) < 0) {
            md_log(MD_LOG_ERROR,
                   "bad environment: MESHD_SCHEDULED_AT=%.40s (want ISO-8601 UTC "
                   "such as 2026-03-08T07:00:00Z)",
                   at);
            return MD_ECONFIG;
        }
        w->scheduled_at_ms = s * 1000;
    }
    if (id != NULL && id[0] != '\0') {
        char *end;
        errno = 0;
        long long v = strtoll(id, &end, 10);
        if (errno != 0 || *end != '\0' || v <= 0) {
            md_log(MD_LOG_ERROR,
                   "bad environment: MESHD_MESSAGE_ID=%.40s (want a positive "
                   "integer)",
                   id);
            return MD_ECONFIG;
        }
        w->message_id = v;
    }
    return 0;
}

static void print_usage(FILE *f, const struct md_worker *w, const char *usage)
{
    fprintf(f, "usage: %s [--config FILE]\n", w->ident);
    if (usage != NULL)
        fprintf(f, "\n%s\n", usage);
    fprintf(f, "\nThe job config is read as JSON from stdin (empty: {}) unless --config names a "
               "file.\nRun by meshd; see docs/workers.md.\n");
}

/* --config FILE (or --config=FILE), --help, --version.  Returns 0, 1 when the program should
 * exit 0 (help or version printed), or MD_ECONFIG. */
static int parse_args(struct md_worker *w, int argc, char **argv, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout, w, usage);
            return 1;
        }
        if (strcmp(a, "--version") == 0) {
            printf("%s %s\n", w->ident, MESHD_VERSION);
            return 1;
        }
        if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            w->config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0 && a[9] != '\0') {
            w->config_path = a + 9;
        } else if (strcmp(a, "--config") == 0) {
            md_log(MD_LOG_ERROR, "usage: %s [--config FILE] (--config needs a FILE)", w->ident);
            return MD_ECONFIG;
        } else {
            md_log(MD_LOG_ERROR, "usage: %s [--config FILE] (got '%.60s'; --help says more)",
                   w->ident, a);
            return MD_ECONFIG;
        }
    }
    return 0;
}

static int init_log(struct md_worker *w)
{
    const char *lv = getenv("MESHD_LOG_LEVEL"), *fd = getenv("MESHD_STATUS_FD");
    enum md_log_level level = MD_LOG_INFO;
    int rc = 0;

    if (lv != NULL && lv[0] != '\0' && md_log_level_parse(lv, &level) < 0)
        rc = MD_ECONFIG;
    md_log_init(w->ident, level);
    /* Under meshd (it gave us a status fd) our stderr is logged again with meshd's stamp. */
    md_log_set_stamp(fd == NULL || fd[0] == '\0');
    if (rc < 0)
        md_log(MD_LOG_ERROR,
               "bad environment: MESHD_LOG_LEVEL=%.40s (want error, warn, notice, "
               "info or debug)",
               lv);
    return rc;
}

static void install_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = 0; /* no SA_RESTART: blocking calls return EINTR and the flag gets seen */
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

int md_worker_init(struct md_worker *w, const char *name, int argc, char **argv, const char *usage)
{
    int rc;

    memset(w, 0, sizeof *w);
    w->name = name;
    w->heartbeat_ms = 10000;
    w->st.fd = -1;
    snprintf(w->ident, sizeof w->ident, "meshd-%s", name);
    if ((rc = init_log(w)) < 0)
        return rc;
    rc = parse_args(w, argc, argv, usage);
    if (rc == 1) {
        fflush(stdout);
        exit(MD_EXIT_OK);
    }
    if (rc < 0)
        return rc;
    if ((rc = read_identity(w)) < 0)
        return rc;
    rc = md_status_open(&w->st);
    if (rc < 0 && rc != -ENOENT) {
        md_log_err(MD_LOG_ERROR, rc, "bad environment: MESHD_STATUS_FD=%.20s",
                   getenv("MESHD_STATUS_FD"));
        return MD_ECONFIG;
    }
    install_handlers();
    w->last_beat_ms = mono_ms();
    md_log(MD_LOG_DEBUG, "started: job=%s run=%s node=%s", w->job, w->run_id, w->node);
    return 0;
}

/* ---- config ---------------------------------------------------------------------------- */

/* Reads fd to EOF into a new buffer (the caller frees it), at most CONFIG_MAX bytes. */
static int read_all(int fd, char **out, size_t *len, struct md_error *err, const char *what)
{
    size_t cap = 4096, n = 0;
    char *buf = md_xmalloc(cap);

    for (;;) {
        if (n == cap) {
            if (cap > CONFIG_MAX) {
                md_free(buf);
                return md_error_set(err, MD_ETOOBIG, 0, 0, "%s: over the 1 MiB config cap", what);
            }
            cap *= 2;
            buf = md_xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR && stop_signal == 0)
            continue;
        if (r < 0) {
            int e = stop_signal != 0 ? ECANCELED : errno;
            md_free(buf);
            return md_error_set(err, -e, 0, 0, "%s: %s", what, strerror(e));
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > CONFIG_MAX) {
        md_free(buf);
        return md_error_set(err, MD_ETOOBIG, 0, 0, "%s: over the 1 MiB config cap", what);
    }
    *out = buf;
    *len = n;
    return 0;
}

int md_worker_config(struct md_worker *w, const struct md_json_key *keys, size_t n, void *out,
                     struct md_error *err)
{
    const char *what = w->config_path != NULL ? w->config_path : "stdin";
    int fd = STDIN_FILENO, rc;
    size_t len = 0;
    char *buf = NULL;

    if (w->config_path != NULL) {
        fd = open(w->config_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            return md_error_set(err, -e, 0, 0, "%s: %s", what, strerror(e));
        }
    }
    rc = read_all(fd, &buf, &len, err, what);
    if (fd != STDIN_FILENO)
        close(fd);
    if (rc < 0)
        return rc;
    rc = md_json_bind(buf, len, keys, n, out, err);
    md_free(buf);
    return rc;
}

/* ---- PostgreSQL ------------------------------------------------------------------------ */

/* libpq prints NOTICEs to stderr as "NOTICE:  ...\n"; route them through md_log so that they
 * carry the worker's ident like every other line. */
static void on_notice(void *ud, const char *msg)
{
    (void)ud;
    md_log(MD_LOG_INFO, "server notice: %.*s", (int)strcspn(msg, "\n"), msg);
}

int md_worker_connect(struct md_worker *w, const char *url, PGconn **conn, struct md_error *err)
{
    const char *u = md_pq_url(url != NULL && url[0] != '\0' ? url : NULL, NULL);
    char app[64];
    PQconninfoOption *parsed;
    PGconn *c;
    int rc;

    *conn = NULL;
    if (u == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "no database: set DATABASE_URL in the job's env: or a url in its "
                            "config");
    /* libpq's parse errors may quote the string, password included: say only that it is bad. */
    parsed = PQconninfoParse(u, NULL);
    if (parsed == NULL)
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "the database URL is not a valid libpq connection string");
    PQconninfoFree(parsed);
    if (w->job != NULL && w->job[0] != '\0')
        snprintf(app, sizeof app, "meshd-%s/%s", w->name, w->job);
    else
        snprintf(app, sizeof app, "meshd-%s", w->name);
    {
        /* The URL goes in last as dbname with expand_dbname: its own connect_timeout or
         * application_name, if it has one, overrides ours. */
        const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
        const char *vals[] = {"10", app, u, NULL};
        c = PQconnectdbParams(keys, vals, 1);
    }
    if (PQstatus(c) != CONNECTION_OK) {
        const char *m = PQerrorMessage(c);
        char *target = md_pq_target(u, MD_PQ_TARGET_URL);
        /* libpq's connect errors name host and port, never the password.  The last line is
         * the reason ("Connection refused", "password authentication failed ..."). */
        rc = md_error_set(err, MD_EDBDOWN, 0, 0, "cannot connect to %s: %.*s", target,
                          (int)strcspn(m, "\n"), m);
        md_free(target);
        PQfinish(c);
        return rc;
    }
    PQsetNoticeProcessor(c, on_notice, NULL);
    if ((rc = md_pq_cancel_register(c)) < 0) {
        PQfinish(c);
        return md_error_set(err, rc, 0, 0, "too many connections for the cancel slots (16)");
    }
    *conn = c;
    return 0;
}

void md_worker_disconnect(PGconn *conn)
{
    if (conn == NULL)
        return;
    md_pq_cancel_forget(conn);
    PQfinish(conn);
}

/* ---- during the run -------------------------------------------------------------------- */

int md_worker_apply_sql(PGconn *c, const char *sql, int32_t lock_key, struct md_error *err)
{
    struct md_error ignored = {0};
    char ks[16];
    const char *keyspace = ks;
    const char *s = sql;
    int rc;

    snprintf(ks, sizeof ks, "%" PRId32, lock_key);
    if ((rc = md_pq_exec(c, "BEGIN", 0, NULL, NULL, err)) < 0)
        return rc;
    /* "schema ... already exists, skipping" on every start is noise. */
    if ((rc = md_pq_exec(c, "SET LOCAL client_min_messages = warning", 0, NULL, NULL, err)) < 0)
        goto fail;
    if ((rc = md_pq_exec(c, "SELECT pg_advisory_xact_lock($1::int, 0)", 1, &keyspace, NULL, err)) <
        0)
        goto fail;
    while (*s) {
        const char *end = strstr(s, ";\n");
        size_t len = end ? (size_t)(end - s) + 1 : strlen(s);
        char *stmt = md_xstrndup(s, len);
        bool blank = strspn(stmt, " \t\n;") == len;
        /* A chunk of comments alone is harmless to send, but skip the empty tail. */
        rc = blank ? 0 : md_pq_exec(c, stmt, 0, NULL, NULL, err);
        md_free(stmt);
        if (rc < 0)
            goto fail;
        s += end ? len + 1 : len;
    }
    return md_pq_exec(c, "COMMIT", 0, NULL, NULL, err);
fail:
    if (md_pq_exec(c, "ROLLBACK", 0, NULL, NULL, &ignored) < 0)
        md_log(MD_LOG_DEBUG, "ROLLBACK after a failed set-up: %s", ignored.msg);
    return rc;
}

int md_worker_tick(struct md_worker *w)
{
    int64_t now;

    if (stop_signal != 0)
        return -ECANCELED;
    now = mono_ms();
    if ((uint64_t)(now - w->last_beat_ms) >= w->heartbeat_ms) {
        (void)md_status_heartbeat(&w->st); /* a lost reader is meshd's business, not ours */
        w->last_beat_ms = now;
    }
    return 0;
}

int md_worker_progress(struct md_worker *w, double done, double total, const char *unit)
{
    int64_t now = mono_ms();
    bool last = total >= 0 && done >= total;
    int rc;

    if (!last && w->last_progress_ms != 0 && now - w->last_progress_ms < PROGRESS_PERIOD_MS)
        return 0;
    rc = md_status_progress(&w->st, done, total, unit);
    w->last_progress_ms = now;
    w->last_beat_ms = now;
    return rc;
}

char *md_worker_summary_fit(char *(*build)(const void *ctx, int detail), const void *ctx,
                            int levels)
{
    char *text = NULL, *out;

    for (int d = 0; d < levels; d++) {
        cJSON_free(text);
        text = build(ctx, d);
        if (text == NULL || strlen(text) <= MD_STATUS_SUMMARY_MAX)
            break;
    }
    out = md_xstrdup(text != NULL ? text : "{}");
    cJSON_free(text);
    return out;
}

/* ---- the end --------------------------------------------------------------------------- */

int md_worker_exit_code(int rc)
{
    switch (rc) {
    case 0:
        return MD_EXIT_OK;
    case MD_ECONFIG:
    case MD_EPARSE:
    case MD_ESQL:
    case -EINVAL:
        return MD_EXIT_PERMANENT;
    case MD_EDBDOWN:
    case MD_ELOCKED:
    case MD_ERETRY:
    case -ENOSPC:
    case -EAGAIN:
    case -ENOMEM:
        return MD_EXIT_TEMPORARY;
    default:
        return MD_EXIT_FAILED;
    }
}

/* Dies of sig with its default action.  The signal is blocked on entry (md_worker_finish), so
 * raise leaves it pending until the mask is restored, when the default action takes the
 * process. */
MD_NORETURN static void die_by(int sig)
{
    sigset_t set;

    signal(sig, SIG_DFL);
    raise(sig);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + sig); /* not reached unless the signal was ignored by force */
}

void md_worker_finish(struct md_worker *w, int rc, const char *summary_json)
{
    sigset_t set;
    int code = md_worker_exit_code(rc);

    /* Block the stop signals first: from here on a stop either happened already (we die of
     * it) or comes too late to matter (the work is over, the exit code is the truth). */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    if (stop_signal == 0)
        (void)md_status_result(&w->st, rc == 0, summary_json);
    md_status_close(&w->st);
    fflush(stdout);
    fflush(stderr);
    if (stop_signal != 0) {
        md_log(MD_LOG_INFO, "stopped: signal=%d", (int)stop_signal);
        die_by(stop_signal);
    }
    md_log(MD_LOG_DEBUG, "exit: code=%d", code);
    exit(code);
}

void md_worker_run_name(const struct md_worker *w, char *buf, size_t cap)
{
    if (w->run_id != NULL && w->run_id[0] != '\0')
        snprintf(buf, cap, "%s", w->run_id);
    else
        snprintf(buf, cap, "manual-%lld-%ld", (long long)time(NULL), (long)getpid());
}

const struct md_json_key md_worker_db_keys[1] = {
    {.name = "url", .type = MD_J_STRING, .off = offsetof(struct md_worker_db, url)},
};
