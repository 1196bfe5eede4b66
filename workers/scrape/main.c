/* meshd-scrape - downloads the files that changed and loads the rows that changed
 * (docs/scrape.md).
 *
 * main.c binds the config and drives the kit's life cycle (md_worker.h); the run is scrape.c,
 * the parts plan.c, fetch.c, reader.c, csv.c and load.c.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "meshd/md_log.h"
#include "meshd/md_worker.h"
#include "scrape.h"

#define CFG(m) offsetof(struct scrape_cfg, m)
#define SRC(m) offsetof(struct scrape_source, m)

static const char *const types[] = {"csv", NULL};
static const char *const encodings[] = {"utf8", "latin1", "cp1252", NULL};
static const char *const archives[] = {"auto", "zip", "gzip", "none", NULL};
static const char *const delete_modes[] = {"delete", "mark", "keep", NULL};
static const char *const dup_modes[] = {"error", "last", NULL};

static const struct md_json_key format_keys[] = {
    {.name = "type",
     .type = MD_J_STRING,
     .off = offsetof(struct scrape_format, type),
     .def = "\"csv\"",
     .choices = types},
    {.name = "header",
     .type = MD_J_BOOL,
     .off = offsetof(struct scrape_format, header),
     .def = "true"},
    {.name = "encoding",
     .type = MD_J_STRING,
     .off = offsetof(struct scrape_format, encoding),
     .def = "\"utf8\"",
     .choices = encodings},
    {.name = "archive",
     .type = MD_J_STRING,
     .off = offsetof(struct scrape_format, archive),
     .def = "\"auto\"",
     .choices = archives},
    {.name = "member", .type = MD_J_STRING, .off = offsetof(struct scrape_format, member)},
    {.name = "delimiter",
     .type = MD_J_STRING,
     .off = offsetof(struct scrape_format, delimiter),
     .def = "\",\""},
    {.name = "quote",
     .type = MD_J_STRING,
     .off = offsetof(struct scrape_format, quote),
     .def = "\"\\\"\""},
};

static const struct md_json_key delete_keys[] = {
    {.name = "mode",
     .type = MD_J_STRING,
     .off = offsetof(struct scrape_deletes, mode),
     .def = "\"delete\"",
     .choices = delete_modes},
    {.name = "max_percent",
     .type = MD_J_DOUBLE,
     .off = offsetof(struct scrape_deletes, max_percent),
     .def = "5",
     .min = 0,
     .max = 100},
    {.name = "column", .type = MD_J_STRING, .off = offsetof(struct scrape_deletes, column)},
};

static const struct md_json_key source_keys[] = {
    {.name = "name", .type = MD_J_STRING, .off = SRC(name), .required = true},
    {.name = "url", .type = MD_J_STRING, .off = SRC(url), .required = true},
    {.name = "each", .type = MD_J_RAW, .off = SRC(each)},
    {.name = "vars", .type = MD_J_RAW, .off = SRC(vars)},
    {.name = "format",
     .type = MD_J_OBJECT,
     .off = SRC(format),
     .def = "{}",
     .sub = format_keys,
     .nsub = MD_ARRAY_SIZE(format_keys)},
    {.name = "table", .type = MD_J_STRING, .off = SRC(table), .required = true},
    {.name = "key", .type = MD_J_STRV, .off = SRC(key), .required = true, .min = 1, .max = 16},
    {.name = "partition", .type = MD_J_RAW, .off = SRC(partition)},
    {.name = "columns", .type = MD_J_RAW, .off = SRC(columns), .def = "\"auto\""},
    {.name = "deletes",
     .type = MD_J_OBJECT,
     .off = SRC(deletes),
     .def = "{}",
     .sub = delete_keys,
     .nsub = MD_ARRAY_SIZE(delete_keys)},
    {.name = "duplicates",
     .type = MD_J_STRING,
     .off = SRC(duplicates),
     .def = "\"error\"",
     .choices = dup_modes},
    {.name = "max_bad_rows",
     .type = MD_J_INT,
     .off = SRC(max_bad_rows),
     .def = "-1",
     .min = -1,
     .max = 1e9},
    {.name = "hash_column",
     .type = MD_J_STRING,
     .off = SRC(hash_column),
     .def = "\"meshd_row_hash\""},
};

static const struct md_json_key keys[] = {
    MD_WORKER_DATABASE_KEY(CFG(database)),
    {.name = "sources",
     .type = MD_J_ARRAY,
     .off = CFG(sources),
     .required = true,
     .min = 1,
     .max = 64,
     .sub = source_keys,
     .nsub = MD_ARRAY_SIZE(source_keys),
     .elem_size = sizeof(struct scrape_source)},
    {.name = "concurrency",
     .type = MD_J_INT,
     .off = CFG(concurrency),
     .def = "4",
     .min = 1,
     .max = 32},
    {.name = "per_host", .type = MD_J_INT, .off = CFG(per_host), .def = "2", .min = 1, .max = 32},
    {.name = "retries", .type = MD_J_INT, .off = CFG(retries), .def = "5", .min = 0, .max = 20},
    {.name = "max_bad_rows",
     .type = MD_J_INT,
     .off = CFG(max_bad_rows),
     .def = "0",
     .min = 0,
     .max = 1e9},
    {.name = "connect_timeout",
     .type = MD_J_DURATION,
     .off = CFG(connect_timeout_ms),
     .def = "\"30s\"",
     .min = 100,
     .max = 600e3},
    {.name = "stall_time",
     .type = MD_J_DURATION,
     .off = CFG(stall_ms),
     .def = "\"60s\"",
     .min = 1000,
     .max = 3600e3},
    {.name = "stall_speed",
     .type = MD_J_INT,
     .off = CFG(stall_speed),
     .def = "1024",
     .min = 1,
     .max = 1e9},
    {.name = "max_backoff",
     .type = MD_J_DURATION,
     .off = CFG(max_backoff_ms),
     .def = "\"60s\"",
     .min = 100,
     .max = 3600e3},
    {.name = "statement_timeout",
     .type = MD_J_DURATION,
     .off = CFG(statement_timeout_ms),
     .def = "\"2h\""},
    {.name = "lock_timeout",
     .type = MD_J_DURATION,
     .off = CFG(lock_timeout_ms),
     .def = "\"30s\"",
     .min = 1,
     .max = 3600e3},
    {.name = "download_dir", .type = MD_J_STRING, .off = CFG(download_dir)},
    {.name = "user_agent", .type = MD_J_STRING, .off = CFG(user_agent)},
    {.name = "force", .type = MD_J_BOOL, .off = CFG(force), .def = "false"},
    {.name = "keep_files", .type = MD_J_BOOL, .off = CFG(keep_files), .def = "false"},
};

static const char usage[] =
    "Downloads the files of its sources: (HTTP(S) or file://) that changed since the last run "
    "(ETag, Last-Modified, SHA-256), and loads into each source's table only the rows that "
    "changed (row hashes), with deletes under a guard, in one transaction per file.  Config: "
    "JSON on stdin (docs/scrape.md).";

/* What the key table cannot say. */
static int check(const struct scrape_cfg *cfg, struct md_error *err)
{
    const struct scrape_source *s = cfg->sources.v;
    for (size_t i = 0; i < cfg->sources.n; i++) {
        const struct scrape_format *f = &s[i].format;
        if (strlen(f->delimiter) != 1 || strlen(f->quote) != 1 || f->delimiter[0] == f->quote[0])
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "sources[%zu].format: delimiter and quote must be two different "
                                "single characters",
                                i);
        if (!f->header)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "sources[%zu].format.header: false is not supported: columns are "
                                "matched by the header's names",
                                i);
        if (strcmp(s[i].deletes.mode, "mark") != 0 && s[i].deletes.column != NULL)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "sources[%zu].deletes.column: only for mode: mark", i);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct md_worker w;
    struct scrape_cfg cfg = {0};
    struct md_error err = {0};
    PGconn *db = NULL;
    char *summary = NULL;
    int rc;

    if ((rc = md_worker_init(&w, "scrape", argc, argv, usage)) < 0)
        md_worker_finish(&w, rc, NULL);
    if ((rc = md_worker_config(&w, MD_JSON_KEYS(keys), &cfg, &err)) < 0 ||
        (rc = check(&cfg, &err)) < 0)
        goto out;
    if ((rc = md_worker_connect(&w, cfg.database.url, &db, &err)) < 0)
        goto out;
    (void)md_status_ready(&w.st);
    rc = scrape_run(&w, db, &cfg, &summary, &err);
out:
    if (rc < 0 && rc != -ECANCELED)
        md_log(MD_LOG_ERROR, "%s", err.msg);
    md_worker_disconnect(db);
    md_json_free(MD_JSON_KEYS(keys), &cfg);
    md_worker_finish(&w, rc, summary);
}
