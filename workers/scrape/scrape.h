/* scrape.h - meshd-scrape: downloads the files that changed, loads the rows that changed.
 *
 * The parts (docs/scrape.md):
 *   plan.c    pure: a source's URL template and `each:`/`vars:` expanded into the files
 *   fetch.c   the downloads (a thread driving libcurl): conditional GET, resume, retries
 *   reader.c  a downloaded file as a byte stream: the zip member, gunzip, or plain
 *   csv.c     pure: the streaming CSV parser, transcoding to UTF-8
 *   load.c    one file into its table: row hashes, the diff against the partition's (key,
 *             hash), COPY of the changed rows, upsert, deletes, rejects; one transaction
 *   scrape.c  the run: state per URL, the order of things, alerts, metrics, messages, summary
 */
#ifndef MESHD_SCRAPE_H
#define MESHD_SCRAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "meshd/md_err.h"
#include "meshd/md_json.h"
#include "meshd/md_worker.h"

/* ---- the config (bound by main.c's key table) ---------------------------------------------- */

struct scrape_format {
    char *type;      /* "csv" */
    bool header;     /* the first record names the columns (required for columns: auto) */
    char *encoding;  /* utf8 | latin1 | cp1252 */
    char *archive;   /* auto | zip | gzip | none */
    char *member;    /* zip: glob of the member to read (fnmatch, case-insensitive) */
    char *delimiter; /* one character */
    char *quote;     /* one character */
};

struct scrape_deletes {
    char *mode;         /* delete | mark | keep */
    double max_percent; /* a file that would delete more of its partition is refused */
    char *column;       /* mark: the timestamptz or boolean column set on rows gone from the file */
};

struct scrape_source {
    char *name;
    char *url;  /* template: {var} */
    char *each; /* JSON object of equal-length arrays, or NULL */
    char *vars; /* JSON object of scalars, or NULL */
    struct scrape_format format;
    char *table; /* [schema.]table */
    struct md_strv key;
    char *partition; /* JSON object column -> template, or NULL (the file owns the whole table) */
    char *columns;   /* JSON: "auto", "strict" or {"FILE_COLUMN": "table_column", ...} */
    struct scrape_deletes deletes;
    char *duplicates;     /* error | last */
    int64_t max_bad_rows; /* -1: the run's */
    char *hash_column;
};

struct scrape_cfg {
    struct md_worker_db database;
    struct md_json_array sources; /* struct scrape_source */
    int64_t concurrency;
    int64_t per_host;
    int64_t retries;
    int64_t max_bad_rows;
    uint64_t connect_timeout_ms;
    uint64_t stall_ms;
    int64_t stall_speed;
    uint64_t max_backoff_ms;
    uint64_t statement_timeout_ms;
    uint64_t lock_timeout_ms;
    char *download_dir;
    char *user_agent;
    bool force; /* load even when the server says 304 or the bytes are the same */
    bool keep_files;
};

/* ---- plan.c: the files of a source ---------------------------------------------------------- */

/* One file: a source's template with one combination of its variables. */
struct scrape_file {
    const struct scrape_source *src; /* borrowed from the config */
    size_t src_index;
    char *url;
    char *label; /* the partition's values joined by ',' ("11"), or "" */
    size_t npart;
    char **part_col; /* the partition columns (borrowed names are copied) */
    char **part_val; /* their values */
};

/* Expands every source of cfg into files (*out, *n; free with scrape_files_free).  Checks the
 * templates: an unknown {var}, `each:` arrays of unequal length, a non-scalar value, a bad
 * `columns:` or `partition:` shape, two files with the same URL.  Returns 0 or MD_ECONFIG with
 * err naming the key path (sources[0].url: ...). */
int scrape_plan(const struct scrape_cfg *cfg, struct scrape_file **out, size_t *n,
                struct md_error *err) MD_MUSTCHECK;
void scrape_files_free(struct scrape_file *f, size_t n);

/* Expands one template: {name} from names/values (n of them), "{{" and "}}" stand for braces.
 * url_encode percent-encodes the substituted values (RFC 3986 unreserved characters stay).
 * Returns the new string, or NULL with err set ("unknown variable {x}"; the caller prefixes
 * the key path). */
char *scrape_template(const char *tpl, const char *const *names, const char *const *values,
                      size_t n, bool url_encode, struct md_error *err);

/* ---- load.c: one file into its table -------------------------------------------------------- */

enum scrape_outcome {
    SCRAPE_PENDING,
    SCRAPE_UNCHANGED,  /* 304 / not modified */
    SCRAPE_SAME_BYTES, /* downloaded, same SHA-256 as the last load */
    SCRAPE_LOADED,     /* committed (possibly with no row changed) */
    SCRAPE_REJECTED,   /* bad input: nothing written */
    SCRAPE_REFUSED,    /* the delete guard: nothing written, critical alert */
    SCRAPE_FAILED,     /* download or database failure */
    SCRAPE_STOPPED,
};

struct scrape_counts {
    uint64_t rows; /* data records in the file */
    uint64_t inserted, updated, unchanged, deleted, rejected;
    uint64_t existing; /* rows of the partition before the load */
};

/* What load.c needs to know of the file besides its config. */
struct scrape_load_in {
    const struct scrape_file *file;
    const char *url;      /* the file's URL as recorded: without user:password@ */
    const char *path;     /* the downloaded file */
    const char *run_id;   /* MESHD_RUN_ID, "" by hand */
    int64_t max_bad_rows; /* resolved */
    /* recorded with the load in meshd_scrape.files */
    const char *etag;
    int64_t last_modified;
    int64_t bytes;
    const char *sha256;
};

/* Loads one file in one transaction (docs/scrape.md "How a file is loaded").  Returns 0 with
 * counts filled and *outcome SCRAPE_LOADED, or a negative code with err saying why and
 * *outcome REJECTED (bad input: MD_EPARSE; a header that does not fit the table: MD_ECONFIG),
 * REFUSED (delete guard: MD_EREFUSED below), STOPPED (-ECANCELED) or FAILED (database). */
#define SCRAPE_EREFUSED (-1901)
int scrape_load(struct md_worker *w, PGconn *db, const struct scrape_load_in *in,
                struct scrape_counts *counts, enum scrape_outcome *outcome,
                struct md_error *err) MD_MUSTCHECK;

/* Rows read so far by the load in progress (for progress lines). */
uint64_t scrape_load_rows_read(void);

/* ---- scrape.c ------------------------------------------------------------------------------- */

/* The whole run.  *summary (JSON, caller frees) is set even on failure when anything ran. */
int scrape_run(struct md_worker *w, PGconn *db, const struct scrape_cfg *cfg, char **summary,
               struct md_error *err) MD_MUSTCHECK;

#endif
