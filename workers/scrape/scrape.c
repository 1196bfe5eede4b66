/* scrape.c - meshd-scrape's run: the files of the plan downloaded on fetch.c's thread while
 * this one loads those that arrived (load.c), each file's state in meshd_scrape.files, and
 * what meshd hears: progress, metrics, alerts, scrape.changed messages, the summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "fetch.h"
#include "meshd/md_alloc.h"
#include "meshd/md_fs.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "meshd/md_status.h"
#include "scrape.h"

/* First key of meshd-scrape's advisory locks (the schema set-up). */
#define KEYSPACE 0x6d736372

extern const unsigned char scrape_schema_sql[];
extern const size_t scrape_schema_sql_len;

struct sfile {
    struct scrape_file *f;
    struct fetch_item it;
    char *path;
    char *url_shown; /* the URL without user:password@ */
    bool known;      /* meshd_scrape.files has a row */
    char *etag_prev, *sha_prev;
    int64_t lm_prev;
    enum scrape_outcome out;
    struct scrape_counts c;
    double seconds; /* the load's */
    int rc;
    char error[300];
};

struct run {
    struct md_worker *w;
    PGconn *db;
    const struct scrape_cfg *cfg;
    struct scrape_file *files;
    size_t n;
    struct sfile *s;
    char *dir;
    size_t done;
    int64_t bytes_received;
};

static const char *outcome_name(enum scrape_outcome o)
{
    static const char *const names[] = {"pending",  "unchanged", "same bytes", "loaded",
                                        "rejected", "refused",   "failed",     "stopped"};
    return (size_t)o < MD_ARRAY_SIZE(names) ? names[o] : "?";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "<dir>/<source>/<i>-<the URL's last segment, sanitized>" */
static char *file_path(const char *dir, const struct scrape_file *f, size_t i)
{
    const char *u = f->url, *q = u + strcspn(u, "?#"), *b = q;
    while (b > u && b[-1] != '/')
        b--;
    char name[101];
    size_t n = 0;
    for (; b < q && n < sizeof name - 1; b++)
        name[n++] = (char)((*b >= 'a' && *b <= 'z') || (*b >= 'A' && *b <= 'Z') ||
                                   (*b >= '0' && *b <= '9') || *b == '.' || *b == '-' || *b == '_'
                               ? *b
                               : '_');
    name[n] = '\0';
    return md_xasprintf("%s/%s/%zu-%s", dir, f->src->name, i, n > 0 ? name : "file");
}

/* ---- status -------------------------------------------------------------------------------- */

static void item_name(const struct sfile *s, char *buf, size_t cap)
{
    if (s->f->label[0] != '\0')
        snprintf(buf, cap, "scrape.%s.%s", s->f->src->name, s->f->label);
    else
        snprintf(buf, cap, "scrape.%s", s->f->src->name);
}

static void metric(struct run *r, const struct sfile *s, const char *what, double v)
{
    char item[MD_STATUS_NAME_MAX], name[MD_STATUS_NAME_MAX + 1];
    item_name(s, item, sizeof item);
    int n = snprintf(name, sizeof name, "%s.%s", item, what);
    if (n > 0 && n < MD_STATUS_NAME_MAX)
        (void)md_status_metric(&r->w->st, name, v);
}

static void report(struct run *r, struct sfile *s)
{
    char key[MD_STATUS_NAME_MAX];
    item_name(s, key, sizeof key);
    switch (s->out) {
    case SCRAPE_UNCHANGED:
    case SCRAPE_SAME_BYTES:
        (void)md_status_resolve(&r->w->st, key);
        md_log(MD_LOG_INFO, "%s: source=%s file=%s url=%s", outcome_name(s->out), s->f->src->name,
               s->f->label, s->url_shown);
        break;
    case SCRAPE_LOADED:
        (void)md_status_resolve(&r->w->st, key);
        md_log(MD_LOG_INFO,
               "loaded: source=%s file=%s rows=%" PRIu64 " inserted=%" PRIu64 " updated=%" PRIu64
               " deleted=%" PRIu64 " unchanged=%" PRIu64 " rejected=%" PRIu64 " bytes=%" PRId64
               " download_s=%.1f load_s=%.1f",
               s->f->src->name, s->f->label, s->c.rows, s->c.inserted, s->c.updated, s->c.deleted,
               s->c.unchanged, s->c.rejected, s->it.bytes, s->it.seconds, s->seconds);
        metric(r, s, "rows", (double)s->c.rows);
        metric(r, s, "inserted", (double)s->c.inserted);
        metric(r, s, "updated", (double)s->c.updated);
        metric(r, s, "deleted", (double)s->c.deleted);
        metric(r, s, "rejected", (double)s->c.rejected);
        metric(r, s, "load_seconds", s->seconds);
        break;
    case SCRAPE_STOPPED:
        break;
    default:
        md_log(MD_LOG_ERROR, "%s: source=%s file=%s: %s", outcome_name(s->out), s->f->src->name,
               s->f->label, s->error);
        (void)md_status_alert(&r->w->st, MD_SEV_CRITICAL, key, s->error);
        break;
    }
    if (s->it.bytes_received > 0)
        metric(r, s, "download_bytes", (double)s->it.bytes_received);
}

/* scrape.changed for a committed load, then its row marked announced.  Run by hand there is no
 * bus: the row stays unannounced for the next run under meshd. */
static void announce(struct run *r, const char *url, const char *source, const char *table,
                     const char *part, const char *inserted, const char *updated,
                     const char *deleted, const char *run_id)
{
    if (r->w->st.fd < 0)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", source);
    cJSON_AddStringToObject(o, "table", table);
    cJSON_AddStringToObject(o, "partition", part);
    cJSON_AddNumberToObject(o, "inserted", strtod(inserted, NULL));
    cJSON_AddNumberToObject(o, "updated", strtod(updated, NULL));
    cJSON_AddNumberToObject(o, "deleted", strtod(deleted, NULL));
    cJSON_AddStringToObject(o, "run_id", run_id);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int rc = text != NULL ? md_status_message(&r->w->st, "scrape.changed", text) : -ENOMEM;
    cJSON_free(text);
    if (rc < 0)
        return;
    struct md_error err = {0};
    const char *p[] = {url, table};
    if (md_pq_exec(r->db,
                   "UPDATE meshd_scrape.files SET announced = true WHERE url = $1 AND target = $2",
                   2, p, NULL, &err) < 0)
        md_log(MD_LOG_WARN, "could not mark %s announced: %s", url, err.msg);
}

static int reannounce(struct run *r, struct md_error *err)
{
    PGresult *res;
    int rc;
    if (r->w->st.fd < 0)
        return 0;
    rc = md_pq_exec(r->db,
                    "SELECT url, source, target, part, inserted::text, updated::text,"
                    "       deleted::text, run_id FROM meshd_scrape.files WHERE NOT announced"
                    " ORDER BY loaded_at",
                    0, NULL, &res, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(res); i++) {
        md_log(MD_LOG_INFO, "announcing the load of %s by run %s again (it was not announced)",
               PQgetvalue(res, i, 0), PQgetvalue(res, i, 7));
        announce(r, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                 PQgetvalue(res, i, 3), PQgetvalue(res, i, 4), PQgetvalue(res, i, 5),
                 PQgetvalue(res, i, 6), PQgetvalue(res, i, 7));
    }
    PQclear(res);
    return 0;
}

/* ---- one file ------------------------------------------------------------------------------ */

/* A file found unchanged: its validators may still be new (a 200 with the same bytes). */
static void touch(struct run *r, struct sfile *s)
{
    char lm[24];
    snprintf(lm, sizeof lm, "%" PRId64, s->it.last_modified_new);
    const char *p[] = {s->url_shown, s->it.etag_new[0] ? s->it.etag_new : NULL,
                       s->it.last_modified_new > 0 ? lm : NULL, s->f->src->table};
    struct md_error err = {0};
    if (md_pq_exec(r->db,
                   "UPDATE meshd_scrape.files SET checked_at = now(),"
                   " etag = coalesce($2, etag),"
                   " last_modified = coalesce(to_timestamp($3::bigint), last_modified)"
                   " WHERE url = $1 AND target = $4",
                   4, p, NULL, &err) < 0)
        md_log(MD_LOG_WARN, "could not record %s as checked: %s", s->url_shown, err.msg);
}

static void load_one(struct run *r, struct sfile *s)
{
    const struct scrape_cfg *cfg = r->cfg;
    struct md_error err = {0};
    struct scrape_load_in in = {
        .file = s->f,
        .url = s->url_shown,
        .path = s->path,
        .run_id = r->w->run_id,
        .max_bad_rows = s->f->src->max_bad_rows >= 0 ? s->f->src->max_bad_rows : cfg->max_bad_rows,
        .etag = s->it.etag_new,
        .last_modified = s->it.last_modified_new,
        .bytes = s->it.bytes,
        .sha256 = s->it.sha256,
    };
    double t0 = now_s();
    md_log(MD_LOG_INFO, "loading: source=%s file=%s bytes=%" PRId64 " into %s", s->f->src->name,
           s->f->label, s->it.bytes, s->f->src->table);
    s->rc = scrape_load(r->w, r->db, &in, &s->c, &s->out, &err);
    s->seconds = now_s() - t0;
    if (s->rc < 0)
        snprintf(s->error, sizeof s->error, "%s", err.msg);
    if (s->rc == 0 && s->c.inserted + s->c.updated + s->c.deleted > 0) {
        char a[24], b[24], c[24];
        snprintf(a, sizeof a, "%" PRIu64, s->c.inserted);
        snprintf(b, sizeof b, "%" PRIu64, s->c.updated);
        snprintf(c, sizeof c, "%" PRIu64, s->c.deleted);
        announce(r, s->url_shown, s->f->src->name, s->f->src->table, s->f->label, a, b, c,
                 r->w->run_id);
    }
}

static void finished(struct run *r, struct sfile *s)
{
    switch (s->it.outcome) {
    case FETCH_NOT_MODIFIED:
        s->out = SCRAPE_UNCHANGED;
        touch(r, s);
        break;
    case FETCH_DOWNLOADED:
        if (!r->cfg->force && s->known && s->sha_prev != NULL &&
            strcmp(s->sha_prev, s->it.sha256) == 0) {
            s->out = SCRAPE_SAME_BYTES;
            touch(r, s);
        } else {
            load_one(r, s);
        }
        if (!r->cfg->keep_files && s->out != SCRAPE_STOPPED && unlink(s->path) < 0 &&
            errno != ENOENT)
            md_log(MD_LOG_WARN, "could not remove %s: %s", s->path, strerror(errno));
        break;
    case FETCH_FAILED:
        s->out = SCRAPE_FAILED;
        s->rc = s->it.permanent ? MD_EDB : MD_ERETRY;
        snprintf(s->error, sizeof s->error, "%s", s->it.error);
        break;
    default:
        s->out = SCRAPE_STOPPED;
        s->rc = -ECANCELED;
        snprintf(s->error, sizeof s->error, "stopped");
        break;
    }
    report(r, s);
}

/* ---- the run ------------------------------------------------------------------------------- */

static int session_setup(struct run *r, struct md_error *err)
{
    char sql[3][96];
    snprintf(sql[0], sizeof sql[0], "SET statement_timeout = %" PRIu64,
             r->cfg->statement_timeout_ms);
    snprintf(sql[1], sizeof sql[1], "SET lock_timeout = %" PRIu64, r->cfg->lock_timeout_ms);
    snprintf(sql[2], sizeof sql[2], "SET synchronous_commit = on");
    for (size_t i = 0; i < MD_ARRAY_SIZE(sql); i++) {
        int rc = md_pq_exec(r->db, sql[i], 0, NULL, NULL, err);
        if (rc < 0)
            return rc;
    }
    return md_worker_apply_sql(r->db, (const char *)scrape_schema_sql, KEYSPACE, err);
}

static int read_state(struct run *r, struct md_error *err)
{
    PGresult *res;
    int rc = md_pq_exec(r->db,
                        "SELECT url, etag, coalesce(extract(epoch FROM last_modified)::bigint, 0),"
                        "       sha256, target FROM meshd_scrape.files",
                        0, NULL, &res, err);
    if (rc < 0)
        return rc;
    for (int i = 0; i < PQntuples(res); i++)
        for (size_t j = 0; j < r->n; j++) {
            struct sfile *s = &r->s[j];
            if (strcmp(s->url_shown, PQgetvalue(res, i, 0)) != 0 ||
                strcmp(s->f->src->table, PQgetvalue(res, i, 4)) != 0)
                continue;
            s->known = true;
            if (!PQgetisnull(res, i, 1))
                s->etag_prev = md_xstrdup(PQgetvalue(res, i, 1));
            s->lm_prev = strtoll(PQgetvalue(res, i, 2), NULL, 10);
            if (!PQgetisnull(res, i, 3))
                s->sha_prev = md_xstrdup(PQgetvalue(res, i, 3));
        }
    PQclear(res);
    return 0;
}

static char *download_dir(const struct run *r, struct md_error *err)
{
    const char *state = getenv("MESHD_STATE_DIR");
    if (r->cfg->download_dir != NULL && r->cfg->download_dir[0] != '\0')
        return md_xstrdup(r->cfg->download_dir);
    if (state != NULL && state[0] != '\0')
        return md_xasprintf("%s/scrape", state);
    md_error_set(err, MD_ECONFIG, 0, 0,
                 "download_dir: not set, and MESHD_STATE_DIR is not either (run by hand, set "
                 "download_dir)");
    return NULL;
}

static int fetch_all(struct run *r, struct md_error *err)
{
    struct fetch_opts o;
    struct fetcher *f = NULL;
    struct fetch_item *items = md_xcalloc(r->n > 0 ? r->n : 1, sizeof *items);
    int rc;

    fetch_opts_init(&o);
    o.concurrency = (int)r->cfg->concurrency;
    o.per_host = (int)r->cfg->per_host;
    o.retries = (int)r->cfg->retries;
    o.max_backoff_ms = r->cfg->max_backoff_ms;
    o.connect_timeout_ms = r->cfg->connect_timeout_ms;
    o.stall_ms = r->cfg->stall_ms;
    o.stall_bytes_per_s = (long)r->cfg->stall_speed;
    o.user_agent = r->cfg->user_agent;
    for (size_t i = 0; i < r->n; i++) {
        struct sfile *s = &r->s[i];
        items[i] = (struct fetch_item){.url = s->f->url,
                                       .etag = r->cfg->force ? NULL : s->etag_prev,
                                       .last_modified = r->cfg->force ? 0 : s->lm_prev,
                                       .path = s->path,
                                       .user = s};
    }
    if ((rc = fetch_start(&f, items, r->n, &o)) < 0) {
        md_free(items);
        return md_error_set(err, rc, 0, 0, "cannot start the downloads: %s", strerror(-rc));
    }
    bool stopped = false;
    while (!fetch_done(f)) {
        if (md_worker_stopping() && !stopped) {
            fetch_stop(f);
            stopped = true;
        }
        (void)md_worker_tick(r->w);
        struct fetch_item *it = fetch_next(f, 200);
        if (it == NULL) { /* waiting for a download */
            (void)md_worker_progress(r->w, (double)fetch_bytes(f), -1, "bytes downloaded");
            continue;
        }
        struct sfile *s = it->user;
        s->it = *it;
        if (md_worker_stopping() && it->outcome == FETCH_DOWNLOADED) {
            s->out = SCRAPE_STOPPED; /* downloaded, not loaded: the next run loads it */
            s->rc = -ECANCELED;
        } else {
            finished(r, s);
        }
        r->done++;
        r->bytes_received = fetch_bytes(f);
        (void)md_worker_progress(r->w, (double)r->done, (double)r->n, "files");
    }
    r->bytes_received = fetch_bytes(f);
    fetch_free(f);
    md_free(items);
    return 0;
}

/* ---- summary ------------------------------------------------------------------------------- */

enum sum_items { SUM_ALL, SUM_FAILED, SUM_COUNTS };

static char *summary_json(const struct run *r, enum sum_items items)
{
    cJSON *o = cJSON_CreateObject();
    size_t n[SCRAPE_STOPPED + 1] = {0};
    uint64_t ins = 0, upd = 0, del = 0, rows = 0, rej = 0;

    for (size_t i = 0; i < r->n; i++) {
        n[r->s[i].out]++;
        ins += r->s[i].c.inserted;
        upd += r->s[i].c.updated;
        del += r->s[i].c.deleted;
        rows += r->s[i].c.rows;
        rej += r->s[i].c.rejected;
    }
    cJSON_AddNumberToObject(o, "files", (double)r->n);
    cJSON_AddNumberToObject(o, "loaded", (double)n[SCRAPE_LOADED]);
    cJSON_AddNumberToObject(o, "unchanged", (double)(n[SCRAPE_UNCHANGED] + n[SCRAPE_SAME_BYTES]));
    cJSON_AddNumberToObject(o, "failed",
                            (double)(n[SCRAPE_FAILED] + n[SCRAPE_REJECTED] + n[SCRAPE_REFUSED]));
    if (n[SCRAPE_STOPPED] + n[SCRAPE_PENDING] > 0)
        cJSON_AddNumberToObject(o, "not_done", (double)(n[SCRAPE_STOPPED] + n[SCRAPE_PENDING]));
    cJSON_AddNumberToObject(o, "rows", (double)rows);
    cJSON_AddNumberToObject(o, "inserted", (double)ins);
    cJSON_AddNumberToObject(o, "updated", (double)upd);
    cJSON_AddNumberToObject(o, "deleted", (double)del);
    cJSON_AddNumberToObject(o, "rejected", (double)rej);
    cJSON_AddNumberToObject(o, "bytes_downloaded", (double)r->bytes_received);
    if (items != SUM_COUNTS) {
        cJSON *a = cJSON_AddArrayToObject(o, "items");
        for (size_t i = 0; i < r->n; i++) {
            const struct sfile *s = &r->s[i];
            bool bad =
                s->out == SCRAPE_FAILED || s->out == SCRAPE_REJECTED || s->out == SCRAPE_REFUSED;
            if (items == SUM_FAILED && !bad)
                continue;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "source", s->f->src->name);
            if (s->f->label[0])
                cJSON_AddStringToObject(e, "file", s->f->label);
            cJSON_AddStringToObject(e, "url", s->url_shown);
            cJSON_AddStringToObject(e, "outcome", outcome_name(s->out));
            if (s->out == SCRAPE_LOADED) {
                cJSON_AddNumberToObject(e, "rows", (double)s->c.rows);
                cJSON_AddNumberToObject(e, "inserted", (double)s->c.inserted);
                cJSON_AddNumberToObject(e, "updated", (double)s->c.updated);
                cJSON_AddNumberToObject(e, "deleted", (double)s->c.deleted);
                cJSON_AddNumberToObject(e, "unchanged", (double)s->c.unchanged);
                if (s->c.rejected)
                    cJSON_AddNumberToObject(e, "rejected", (double)s->c.rejected);
                cJSON_AddNumberToObject(e, "load_seconds",
                                        (double)(int64_t)(s->seconds * 1000) / 1000);
            }
            if (s->it.bytes_received > 0)
                cJSON_AddNumberToObject(e, "bytes_received", (double)s->it.bytes_received);
            if (s->it.resumed)
                cJSON_AddBoolToObject(e, "resumed", true);
            if (bad)
                cJSON_AddStringToObject(e, "error", s->error);
            cJSON_AddItemToArray(a, e);
        }
    }
    if (items != SUM_ALL)
        cJSON_AddStringToObject(o, "truncated",
                                items == SUM_FAILED ? "failed items only" : "counts only");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static char *summary_build(const void *ctx, int detail)
{
    return summary_json(ctx, (enum sum_items)detail);
}

/* The run's result: a stop; else a temporary failure (meshd retries: the files that did load
 * are 304 next time); else any other failure (exit 1: alerts say which); else 0. */
static int result(const struct run *r, struct md_error *err)
{
    size_t bad = 0, temp = 0;
    const char *first = NULL;
    if (md_worker_stopping())
        return md_error_set(err, -ECANCELED, 0, 0, "stopped");
    for (size_t i = 0; i < r->n; i++) {
        const struct sfile *s = &r->s[i];
        if (s->out == SCRAPE_STOPPED)
            return md_error_set(err, -ECANCELED, 0, 0, "stopped");
        if (s->rc == 0)
            continue;
        bad++;
        temp +=
            s->rc == MD_ERETRY || s->rc == MD_EDBDOWN || s->rc == MD_ELOCKED || s->rc == -ETIMEDOUT;
        if (first == NULL)
            first = s->error;
    }
    if (bad == 0)
        return 0;
    return md_error_set(err, temp > 0 ? MD_ERETRY : MD_EDB, 0, 0, "%zu of %zu files failed%s: %s",
                        bad, r->n, temp > 0 ? " (some may succeed on a retry)" : "", first);
}

int scrape_run(struct md_worker *w, PGconn *db, const struct scrape_cfg *cfg, char **summary,
               struct md_error *err)
{
    struct run r = {.w = w, .db = db, .cfg = cfg};
    int rc;

    *summary = NULL;
    if ((rc = scrape_plan(cfg, &r.files, &r.n, err)) < 0)
        return rc;
    if ((r.dir = download_dir(&r, err)) == NULL) {
        rc = MD_ECONFIG;
        goto out;
    }
    r.s = md_xcalloc(r.n > 0 ? r.n : 1, sizeof *r.s);
    for (size_t i = 0; i < r.n; i++) {
        r.s[i].f = &r.files[i];
        r.s[i].path = file_path(r.dir, &r.files[i], i);
        r.s[i].url_shown = fetch_url_shown(r.files[i].url);
    }
    for (size_t i = 0; i < cfg->sources.n; i++) {
        const struct scrape_source *src = &((const struct scrape_source *)cfg->sources.v)[i];
        char *d = md_xasprintf("%s/%s", r.dir, src->name);
        rc = md_mkdir_p(d, 0700);
        if (rc < 0)
            md_error_set(err, rc, 0, 0, "download_dir: cannot create %s: %s", d, strerror(-rc));
        md_free(d);
        if (rc < 0)
            goto out;
    }
    if ((rc = session_setup(&r, err)) < 0 || (rc = reannounce(&r, err)) < 0 ||
        (rc = read_state(&r, err)) < 0)
        goto out;
    md_log(MD_LOG_INFO, "plan: %zu file(s) from %zu source(s), downloads in %s", r.n,
           cfg->sources.n, r.dir);
    if ((rc = fetch_all(&r, err)) < 0)
        goto done;
    rc = result(&r, err);
done:
    *summary = md_worker_summary_fit(summary_build, &r, SUM_COUNTS + 1);
out:
    for (size_t i = 0; r.s != NULL && i < r.n; i++) {
        md_free(r.s[i].path);
        md_free(r.s[i].url_shown);
        md_free(r.s[i].etag_prev);
        md_free(r.s[i].sha_prev);
    }
    md_free(r.s);
    md_free(r.dir);
    scrape_files_free(r.files, r.n);
    return rc;
}
