/* load.c - one downloaded file into its table, in one transaction (docs/scrape.md "How a file
 * is loaded").
 *
 *   1. The header is matched to the table's columns (auto, strict or a map); the key and the
 *      partition columns must be there (or be the partition's constants).
 *   2. Under pg_try_advisory_xact_lock(table, partition): when the partition is empty and a
 *      unique index covers the key, the rows are COPYed straight into the table (one pass).
 *   3. Otherwise, pass one streams the file (reader -> csv -> here): every row is checked
 *      against its column types, formatted as a COPY text line and hashed (XXH3 of the line),
 *      and only its key, hash and record number go to a temporary table.  The server then
 *      finds duplicates, the records whose key is new or whose hash differs from the table's,
 *      and the partition's keys the file lacks; the worker keeps one bit per record of it.
 *   4. Pass two reads the file again and COPYs only the flagged records, whole, to a second
 *      temporary table; then one UPDATE ... FROM, one INSERT ... SELECT and one DELETE (or a
 *      mark) apply the difference, unless the delete guard refuses the file.  Bad rows go to
 *      meshd_scrape.rejects, and the file's validators and counts to meshd_scrape.files, in the
 *      same transaction.
 *
 * Memory does not grow with the table or the file: one CSV record, one chunk of output, and
 * two bits per record (a 10 M-row file: 2.5 MB); the keys are compared by the server.  The
 * price is reading the file twice when the partition has rows, which costs far less than
 * writing rows that did not change.
 */
#define _GNU_SOURCE /* O_TMPFILE */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cjson/cJSON.h>

#include "csv.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_log.h"
#include "meshd/md_pq.h"
#include "reader.h"
#include "value.h"
#include "scrape.h"

#define LOCK_SPACE "meshd-scrape "
#define CHUNK (256u * 1024u)
#define OUT_MAX ((size_t)64 << 20) /* one chunk's rows: a 256 KiB chunk never comes near it */
#define RAW_MAX 2000               /* bytes of a rejected row kept in meshd_scrape.rejects */
#define MAX_REJECTS_KEPT 100000

/* A column of the table. */
struct tcol {
    char *name;
    enum ctype type;
    int64_t maxlen; /* varchar(n)/char(n): n; else -1 */
    bool bpchar;
    bool notnull;
};

/* A column of the load: a table column fed by a field of the file or by the partition. */
struct lcol {
    const struct tcol *t;
    char *ident;          /* quoted identifier */
    int field;            /* the record's field, or -1 */
    const char *constant; /* field < 0: the partition's value */
    int part;             /* the partition column it is, or -1 */
};

enum pass {
    P_DIRECT, /* every good row into the table */
    P_KEYS,   /* every row's key and hash into _meshd_keys */
    P_STAGE,  /* the flagged rows into _meshd_stage */
    P_FIND,   /* the key of record find_rec, then the first record with that key */
};

struct reject {
    uint64_t line;
    char *reason;
    char *raw;
};

struct load {
    struct md_worker *w;
    PGconn *db;
    const struct scrape_load_in *in;
    const struct scrape_source *src;
    struct scrape_counts *c;
    struct md_error *err;

    char *table; /* regclass text, quoted as needed */
    struct tcol *tc;
    size_t ntc;
    struct lcol *lc;
    size_t nlc;
    size_t nfields; /* the header's */
    size_t *key;    /* key i is lc[key[i]] */
    size_t nkey;
    char **kid;                    /* the key's columns as the table names them, quoted */
    char *hash_ident, *mark_ident; /* quoted */
    enum ctype mark_type;          /* CT_BOOL, or a timestamp */
    char *part_sql;                /* "t.a = '11' AND ..." or "true" */
    char *marked_sql;              /* "t.m IS NOT NULL" / "coalesce(t.m, false)" / "false" */
    uint64_t seed;                 /* of the row hash: the load's column list */
    bool dup_last;
    uint64_t existing_live; /* rows of the partition not marked */

    /* reading the file: one pass at a time */
    enum pass pass;
    struct reader *rd;
    char *name;   /* what is read, for messages ("NAL11P202501.csv (in 0-nal.zip)") */
    int spill;    /* -1, or an unnamed file holding what pass one unpacked */
    bool spilled; /* it holds all of it: pass two reads it instead of unpacking again */
    struct csv_parser csv;
    bool csv_ready;
    bool header_done;
    bool skip_header;
    uint64_t rec; /* data records seen in this pass */
    bool eof;
    char *chunk;
    size_t clen, coff; /* the chunk read, and how much of it the parser took */
    struct md_buf out; /* COPY data not yet sent */
    size_t out_off;
    struct md_buf line, keytext;
    struct bits sent;  /* records sent in the COPY of this pass */
    struct bits stage; /* records pass two sends */
    struct linemap lm;
    uint64_t last_end; /* physical line where the previous record ended */
    uint64_t find_rec; /* P_FIND: the record whose key is wanted, then the first one with it */
    char *find_key;
    uint64_t found;

    int64_t max_bad;
    struct reject *rej;
    size_t nrej, rej_i;
    char first_bad[200];
    uint64_t gone; /* rows of the partition not in the file, not marked yet */
};

/* The file's row in meshd_scrape.files, written with its load: validators, counts; announced
 * is true when there is nothing to announce. */
static const char SQL_FILE_UPSERT[] =
    "INSERT INTO meshd_scrape.files (url, source, target, part, etag, last_modified, bytes,"
    "       sha256, rows, inserted, updated, deleted, unchanged, rejected, run_id, announced,"
    "       loaded_at)"
    " VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint), $7, $8, $9, $10, $11, $12, $13, $14,"
    "         $15, $16, now())"
    " ON CONFLICT (url, target) DO UPDATE SET source = EXCLUDED.source, target = EXCLUDED.target,"
    "       part = EXCLUDED.part, etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified,"
    "       bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256, rows = EXCLUDED.rows,"
    "       inserted = EXCLUDED.inserted, updated = EXCLUDED.updated,"
    "       deleted = EXCLUDED.deleted, unchanged = EXCLUDED.unchanged,"
    "       rejected = EXCLUDED.rejected, run_id = EXCLUDED.run_id,"
    "       announced = EXCLUDED.announced, loaded_at = EXCLUDED.loaded_at";

static uint64_t rows_read;

uint64_t scrape_load_rows_read(void)
{
    return rows_read;
}

/* ---- small helpers ------------------------------------------------------------------------ */

static char *ident(PGconn *db, const char *name)
{
    char *q = PQescapeIdentifier(db, name, strlen(name));
    char *r = md_xstrdup(q != NULL ? q : "\"?\"");
    PQfreemem(q);
    return r;
}

static char *literal(PGconn *db, const char *v)
{
    char *q = PQescapeLiteral(db, v, strlen(v));
    char *r = md_xstrdup(q != NULL ? q : "NULL");
    PQfreemem(q);
    return r;
}

static int exec(struct load *l, const char *sql, PGresult **res)
{
    return md_pq_exec(l->db, sql, 0, NULL, res, l->err);
}

/* Rows a command changed, from its tag. */
static uint64_t tuples(PGresult *r)
{
    const char *t = PQcmdTuples(r);
    return t != NULL && *t != '\0' ? strtoull(t, NULL, 10) : 0;
}

static void buf_clear(struct md_buf *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

/* ---- the table ---------------------------------------------------------------------------- */

static const char SQL_COLUMNS[] =
    "SELECT a.attname, a.atttypid::int, t.typcategory, a.attnotnull,"
    "       CASE WHEN a.atttypid IN (1042, 1043) AND a.atttypmod > 4 THEN a.atttypmod - 4"
    "            ELSE -1 END, $1::regclass::text"
    "  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
    " WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped"
    "   AND a.attgenerated = ''"
    " ORDER BY a.attnum";

static enum ctype ctype_of(int oid, char cat)
{
    switch (oid) {
    case 21:
        return CT_INT2;
    case 23:
        return CT_INT4;
    case 20:
        return CT_INT8;
    case 1700:
        return CT_NUM;
    case 700:
    case 701:
        return CT_FLOAT;
    case 16:
        return CT_BOOL;
    default:
        return cat == 'S' ? CT_TEXT : CT_OTHER;
    }
}

static int read_table(struct load *l)
{
    const char *p[1] = {l->src->table};
    PGresult *r;
    int rc = md_pq_exec(l->db, SQL_COLUMNS, 1, p, &r, l->err);
    if (rc < 0)
        return rc == MD_ESQL ? md_error_set(l->err, MD_ECONFIG, 0, 0, "table %s: %s", l->src->table,
                                            l->err->msg)
                             : rc;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        return md_error_set(l->err, MD_ECONFIG, 0, 0, "table %s has no columns", l->src->table);
    }
    l->table = md_xstrdup(PQgetvalue(r, 0, 5));
    l->tc = md_xcalloc((size_t)n, sizeof *l->tc);
    l->ntc = (size_t)n;
    for (int i = 0; i < n; i++) {
        struct tcol *t = &l->tc[i];
        t->name = md_xstrdup(PQgetvalue(r, i, 0));
        t->type = ctype_of(atoi(PQgetvalue(r, i, 1)), PQgetvalue(r, i, 2)[0]);
        t->notnull = PQgetvalue(r, i, 3)[0] == 't';
        t->maxlen = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        t->bpchar = atoi(PQgetvalue(r, i, 1)) == 1042;
    }
    PQclear(r);
    return 0;
}

static struct tcol *tcol_find(struct load *l, const char *name, bool nocase)
{
    for (size_t i = 0; i < l->ntc; i++)
        if ((nocase ? strcasecmp : strcmp)(l->tc[i].name, name) == 0)
            return &l->tc[i];
    return nocase ? NULL : tcol_find(l, name, true);
}

/* Adds the hash column (and the mark column) when the table lacks them.  An ALTER takes an
 * ACCESS EXCLUSIVE lock for a moment, so it is done only when needed. */
static int ensure_column(struct load *l, const char *name, const char *type, char **ident_out,
                         enum ctype *t_out)
{
    struct tcol *t = tcol_find(l, name, false);
    *ident_out = ident(l->db, t != NULL ? t->name : name);
    if (t != NULL) {
        if (t_out != NULL)
            *t_out = t->type;
        return 0;
    }
    char *sql =
        md_xasprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", l->table, *ident_out, type);
    int rc = exec(l, sql, NULL);
    md_free(sql);
    if (rc == 0)
        md_log(MD_LOG_INFO, "added column %s %s to %s", name, type, l->table);
    if (t_out != NULL)
        *t_out = CT_OTHER;
    return rc;
}

/* ---- the header --------------------------------------------------------------------------- */

static int add_lcol(struct load *l, const struct tcol *t, int field, const char *constant)
{
    for (size_t i = 0; i < l->nlc; i++)
        if (l->lc[i].t == t)
            return md_error_set(l->err, MD_ECONFIG, 0, 0,
                                "%s: column %s is fed twice by the header (field %d)", l->name,
                                t->name, field + 1);
    l->lc = md_xrealloc(l->lc, (l->nlc + 1) * sizeof *l->lc);
    l->lc[l->nlc++] = (struct lcol){
        .t = t, .ident = ident(l->db, t->name), .field = field, .constant = constant, .part = -1};
    return 0;
}

static bool reserved(const struct load *l, const struct tcol *t)
{
    const char *hash = l->src->hash_column != NULL ? l->src->hash_column : "meshd_row_hash";
    const char *mark = l->src->deletes.column;
    return strcmp(t->name, hash) == 0 || (mark != NULL && strcmp(t->name, mark) == 0);
}

static int map_header(struct load *l, const struct csv_record *rec)
{
    const char *path = l->name;
    const char *mode = "auto";
    cJSON *map = NULL;
    int rc = 0;
    size_t ignored = 0;

    l->nfields = rec->n;
    if (l->src->columns != NULL) {
        map = cJSON_Parse(l->src->columns);
        if (cJSON_IsString(map))
            mode = map->valuestring;
    }
    if (cJSON_IsObject(map)) {
        const cJSON *m;
        cJSON_ArrayForEach(m, map)
        {
            size_t f = 0;
            while (f < rec->n && strcasecmp(rec->f[f].p, m->string) != 0)
                f++;
            if (f == rec->n) {
                rc = md_error_set(l->err, MD_ECONFIG, 0, 0,
                                  "%s: columns.%s: the header has no such column", path, m->string);
                goto out;
            }
            struct tcol *t = tcol_find(l, m->valuestring, false);
            if (t == NULL) {
                rc = md_error_set(l->err, MD_ECONFIG, 0, 0, "columns.%s: %s has no column %s",
                                  m->string, l->table, m->valuestring);
                goto out;
            }
            if ((rc = add_lcol(l, t, (int)f, NULL)) < 0)
                goto out;
        }
    } else {
        for (size_t f = 0; f < rec->n; f++) {
            const char *h = rec->f[f].p;
            struct tcol *t = tcol_find(l, h, true);
            if (t != NULL && !reserved(l, t)) {
                if ((rc = add_lcol(l, t, (int)f, NULL)) < 0)
                    goto out;
            } else if (strcmp(mode, "strict") == 0) {
                rc = md_error_set(l->err, MD_ECONFIG, 0, 0,
                                  "%s: header column \"%s\" (field %zu) is not a column of %s "
                                  "(columns: strict)",
                                  path, h, f + 1, l->table);
                goto out;
            } else {
                ignored++;
            }
        }
        if (ignored > 0)
            md_log(MD_LOG_INFO, "%s: %zu header column(s) not in %s are ignored", path, ignored,
                   l->table);
    }
    /* The partition: a column from the file is checked on every row; one the file lacks is
     * filled with the partition's value. */
    for (size_t p = 0; p < l->in->file->npart; p++) {
        const char *col = l->in->file->part_col[p];
        struct tcol *t = tcol_find(l, col, false);
        if (t == NULL) {
            rc = md_error_set(l->err, MD_ECONFIG, 0, 0, "partition.%s: %s has no such column", col,
                              l->table);
            goto out;
        }
        size_t i = 0;
        while (i < l->nlc && l->lc[i].t != t)
            i++;
        if (i == l->nlc && (rc = add_lcol(l, t, -1, l->in->file->part_val[p])) < 0)
            goto out;
        l->lc[i].part = (int)p;
    }
    if (l->nlc == 0) {
        rc = md_error_set(l->err, MD_ECONFIG, 0, 0,
                          "%s: no header column names a column of %s (header starts \"%s\")", path,
                          l->table, rec->f[0].p);
        goto out;
    }
    l->key = md_xcalloc(l->src->key.n, sizeof *l->key);
    l->nkey = l->src->key.n;
    for (size_t k = 0; k < l->nkey; k++) {
        size_t i = 0;
        while (i < l->nlc && strcasecmp(l->lc[i].t->name, l->src->key.v[k]) != 0)
            i++;
        if (i == l->nlc) {
            rc = md_error_set(l->err, MD_ECONFIG, 0, 0,
                              "%s: key column %s is not in the file's header (nor a partition "
                              "column)",
                              path, l->src->key.v[k]);
            goto out;
        }
        l->key[k] = i;
    }
    /* The row hash's seed: the load's columns, so a changed mapping rewrites every row. */
    XXH3_state_t *st = XXH3_createState();
    if (st == NULL) {
        rc = md_error_set(l->err, -ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    XXH3_64bits_reset(st);
    for (size_t i = 0; i < l->nlc; i++)
        XXH3_64bits_update(st, l->lc[i].t->name, strlen(l->lc[i].t->name) + 1);
    l->seed = XXH3_64bits_digest(st);
    XXH3_freeState(st);
out:
    cJSON_Delete(map);
    return rc;
}

/* ---- rows --------------------------------------------------------------------------------- */

static void raw_of(const struct csv_record *rec, struct md_buf *b)
{
    for (size_t i = 0; i < rec->n && b->len < RAW_MAX; i++) {
        if (i > 0)
            md_buf_put(b, ",", 1);
        md_buf_put(b, rec->f[i].p, rec->f[i].len);
    }
    if (b->len > RAW_MAX)
        b->len = RAW_MAX;
}

/* A bad row: counted, kept for meshd_scrape.rejects, or the end of the load. */
static int bad_row(struct load *l, const struct csv_record *rec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_row(struct load *l, const struct csv_record *rec, const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    l->c->rejected++;
    if (l->first_bad[0] == '\0')
        snprintf(l->first_bad, sizeof l->first_bad, "%s:%" PRIu64 ": %s", l->name, rec->line, why);
    if ((int64_t)l->c->rejected > l->max_bad) {
        if (l->max_bad == 0)
            return md_error_set(l->err, MD_EPARSE, 0, 0, "%s", l->first_bad);
        return md_error_set(l->err, MD_EPARSE, 0, 0,
                            "more than max_bad_rows (%" PRId64 ") bad rows; the first: %s",
                            l->max_bad, l->first_bad);
    }
    if (l->nrej < MAX_REJECTS_KEPT) {
        struct md_buf raw;
        md_buf_init(&raw, RAW_MAX + 64);
        raw_of(rec, &raw);
        l->rej = md_xrealloc(l->rej, (l->nrej + 1) * sizeof *l->rej);
        l->rej[l->nrej++] =
            (struct reject){.line = rec->line,
                            .reason = md_xstrdup(why),
                            .raw = raw.p != NULL ? md_buf_take(&raw) : md_xstrdup("")};
        md_buf_free(&raw);
    }
    return 0;
}

/* The value of lc for rec: s/n (NULL for SQL NULL), canonical for an integer (in canon, >= 32
 * bytes).  Returns NULL, or why the value is bad (written to why). */
static const char *value_of(const struct load *l, const struct lcol *lc,
                            const struct csv_record *rec, bool is_key, const char **s_out,
                            size_t *n_out, char *canon, char *why, size_t cap)
{
    const struct tcol *t = lc->t;
    const char *s = lc->constant;
    size_t n;
    bool quoted = false;

    if (lc->field >= 0) {
        s = rec->f[lc->field].p;
        n = rec->f[lc->field].len;
        quoted = rec->f[lc->field].quoted;
    } else {
        n = strlen(s);
    }
    *s_out = NULL;
    *n_out = 0;
    /* Empty is NULL, except a quoted "" in a text column. */
    if (n == 0 && !(quoted && t->type == CT_TEXT)) {
        if (is_key || t->notnull) {
            snprintf(why, cap, "column %s: empty, but it is %s", t->name,
                     is_key ? "a key column" : "NOT NULL");
            return why;
        }
        return NULL;
    }
    if (val_is_int(t->type)) {
        if (!val_int_canon(s, n, t->type, canon, 32)) {
            snprintf(why, cap, "column %s: \"%.40s\" is not %s %s", t->name, s,
                     t->type == CT_INT4 ? "an" : "a", val_type_name(t->type));
            return why;
        }
        s = canon;
        n = strlen(canon);
    } else if ((t->type == CT_NUM || t->type == CT_FLOAT) &&
               !val_num_ok(s, n, t->type == CT_FLOAT)) {
        snprintf(why, cap, "column %s: \"%.40s\" is not %s", t->name, s,
                 t->type == CT_NUM ? "a number" : val_type_name(t->type));
        return why;
    } else if (t->type == CT_BOOL && !val_bool_ok(s, n)) {
        snprintf(why, cap, "column %s: \"%.40s\" is not a boolean", t->name, s);
        return why;
    } else if (t->maxlen > 0) {
        size_t m = n;
        if (t->bpchar)
            while (m > 0 && s[m - 1] == ' ')
                m--;
        size_t chars = val_utf8_chars(s, m);
        if ((int64_t)chars > t->maxlen) {
            snprintf(why, cap, "column %s: %zu characters, but it holds %" PRId64, t->name, chars,
                     t->maxlen);
            return why;
        }
    }
    if (lc->part >= 0 && lc->field >= 0) {
        const char *want = l->in->file->part_val[lc->part];
        char wc[32];
        bool same = val_is_int(t->type) && val_int_canon(want, strlen(want), t->type, wc, sizeof wc)
                        ? strcmp(wc, s) == 0
                        : strlen(want) == n && memcmp(want, s, n) == 0;
        if (!same) {
            snprintf(why, cap, "column %s: \"%.40s\", but this file holds %s = %s", t->name, s,
                     t->name, want);
            return why;
        }
    }
    if (is_key && t->bpchar) /* char(n)::text drops the padding: compare the same way */
        while (n > 0 && s[n - 1] == ' ')
            n--;
    *s_out = s;
    *n_out = n;
    return NULL;
}

/* The key of rec into l->keytext.  Returns NULL, or why it is bad. */
static const char *row_key(struct load *l, const struct csv_record *rec, char *why, size_t cap)
{
    buf_clear(&l->keytext);
    for (size_t k = 0; k < l->nkey; k++) {
        const char *s;
        size_t n;
        char canon[32];
        if (value_of(l, &l->lc[l->key[k]], rec, true, &s, &n, canon, why, cap) != NULL)
            return why;
        if (k > 0)
            val_put(&l->keytext, "\t", 1);
        copy_escape(&l->keytext, s, n);
    }
    return NULL;
}

/* The row as a COPY line into l->line.  Returns NULL, or why it is bad. */
static const char *row_line(struct load *l, const struct csv_record *rec, char *why, size_t cap)
{
    buf_clear(&l->line);
    for (size_t i = 0; i < l->nlc; i++) {
        const char *s;
        size_t n;
        char canon[32];
        if (i > 0)
            val_put(&l->line, "\t", 1);
        if (value_of(l, &l->lc[i], rec, false, &s, &n, canon, why, cap) != NULL)
            return why;
        if (s == NULL)
            val_put(&l->line, "\\N", 2);
        else
            copy_escape(&l->line, s, n);
    }
    return NULL;
}

static int emit(struct load *l, size_t mark)
{
    val_put(&l->out, "\n", 1);
    if (l->out.full || l->line.full || l->keytext.full) {
        l->out.len = mark;
        return md_error_set(l->err, -ENOMEM, 0, 0, "out of memory");
    }
    bits_set(&l->sent, l->rec);
    return 0;
}

/* P_DIRECT and P_KEYS: every record is checked; the first pass also counts. */
static int first_pass_record(struct load *l, const struct csv_record *rec)
{
    char why[160];
    const char *bad = NULL;

    l->c->rows++;
    rows_read++;
    if (l->rec == 1 || rec->line != l->last_end + 1)
        linemap_note(&l->lm, l->rec, rec->line);
    l->last_end = rec->end_line;
    /* A record with too few or too many fields still has its key when the key's fields are
     * there: its row in the table is then kept, not deleted. */
    bool key_ok = rec->n == l->nfields;
    if (!key_ok) {
        key_ok = true;
        for (size_t k = 0; k < l->nkey; k++)
            key_ok &= l->lc[l->key[k]].field < (int)rec->n;
        if (rec->end_line > rec->line)
            snprintf(why, sizeof why,
                     "%zu fields, but the header has %zu (the record runs to line %" PRIu64
                     ": a quote left open?)",
                     rec->n, l->nfields, rec->end_line);
        else
            snprintf(why, sizeof why, "%zu fields, but the header has %zu", rec->n, l->nfields);
        bad = why;
    }
    char kwhy[160];
    if (key_ok && row_key(l, rec, kwhy, sizeof kwhy) != NULL) {
        key_ok = false;
        if (bad == NULL)
            bad = strcpy(why, kwhy);
    }
    if (bad != NULL) {
        /* reported below */
    } else if (rec->bad != NULL) {
        const char *col = NULL;
        for (size_t i = 0; i < l->nlc; i++)
            if (l->lc[i].field == (int)rec->bad_field)
                col = l->lc[i].t->name;
        if (col != NULL)
            snprintf(why, sizeof why, "column %s: %s", col, rec->bad);
        else
            snprintf(why, sizeof why, "field %zu: %s", rec->bad_field + 1, rec->bad);
        bad = why;
    } else {
        bad = row_line(l, rec, why, sizeof why);
    }
    size_t mark = l->out.len;
    if (l->pass == P_KEYS && key_ok) {
        /* A bad row's key is sent too, flagged: its row in the table is neither changed nor
         * deleted. */
        uint64_t rh = bad ? 0 : XXH3_64bits_withSeed(l->line.p, l->line.len, l->seed);
        val_put(&l->out, l->keytext.p, l->keytext.len);
        val_put(&l->out, "\t", 1);
        val_put_i64(&l->out, (int64_t)rh);
        val_put(&l->out, "\t", 1);
        val_put_i64(&l->out, (int64_t)l->rec);
        val_put(&l->out, bad ? "\tt" : "\tf", 2);
        int rc = emit(l, mark);
        if (rc < 0)
            return rc;
    }
    if (bad != NULL)
        return bad_row(l, rec, "%s", bad);
    if (l->pass == P_DIRECT) {
        uint64_t rh = XXH3_64bits_withSeed(l->line.p, l->line.len, l->seed);
        val_put(&l->out, l->line.p, l->line.len);
        val_put(&l->out, "\t", 1);
        val_put_i64(&l->out, (int64_t)rh);
        return emit(l, mark);
    }
    return 0;
}

static int on_record(void *ud, const struct csv_record *rec)
{
    struct load *l = ud;
    char why[160];
    int rc;

    if (!l->header_done) {
        l->header_done = true;
        l->last_end = rec->end_line;
        return (rc = map_header(l, rec)) < 0 ? rc : 1; /* 1: the caller starts the COPY */
    }
    if (l->skip_header) { /* a later pass meets the header again */
        l->skip_header = false;
        return 0;
    }
    l->rec++;
    switch (l->pass) {
    case P_DIRECT:
    case P_KEYS:
        return first_pass_record(l, rec);
    case P_STAGE: {
        if (!bits_get(&l->stage, l->rec))
            return 0;
        if (row_line(l, rec, why, sizeof why) != NULL) /* it passed the first time */
            return md_error_set(l->err, MD_EPARSE, 0, 0,
                                "%s:%" PRIu64 ": changed between reads: %s", l->name, rec->line,
                                why);
        size_t mark = l->out.len;
        uint64_t rh = XXH3_64bits_withSeed(l->line.p, l->line.len, l->seed);
        val_put(&l->out, l->line.p, l->line.len);
        val_put(&l->out, "\t", 1);
        val_put_i64(&l->out, (int64_t)rh);
        return emit(l, mark);
    }
    case P_FIND:
        if (rec->n != l->nfields || row_key(l, rec, why, sizeof why) != NULL)
            return 0;
        if (l->find_key == NULL) {
            if (l->rec == l->find_rec) {
                l->find_key = md_xstrndup(l->keytext.p, l->keytext.len);
                return 2; /* start again: the first record with this key */
            }
        } else if (strlen(l->find_key) == l->keytext.len &&
                   memcmp(l->find_key, l->keytext.p, l->keytext.len) == 0) {
            l->found = l->rec;
            return 3;
        }
        return 0;
    }
    return 0;
}

/* Pass one keeps what it unpacks in an unnamed file (O_TMPFILE) next to the download, so
 * that pass two reads plain CSV instead of inflating the zip again: inflating is most of a
 * pass's time.  It costs the file's unpacked size on disk for the load's duration, freed when
 * the file is closed (also by a crash).  Without room for it, pass two unpacks again. */
static void spill_open(struct load *l)
{
    char *dir = md_xstrdup(l->in->path), *slash = strrchr(dir, '/');
    if (slash != NULL)
        *slash = '\0';
    l->spill = open(slash != NULL ? dir : ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (l->spill < 0)
        md_log(MD_LOG_INFO, "%s: no spill file (%s): pass two unpacks the file again", l->name,
               strerror(errno));
    md_free(dir);
}

static void spill_write(struct load *l, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(l->spill, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            md_log(MD_LOG_INFO, "%s: spill file: %s: pass two unpacks the file again", l->name,
                   w < 0 ? strerror(errno) : "short write");
            close(l->spill);
            l->spill = -1;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Opens the file for a pass. */
static int pass_open(struct load *l, enum pass p)
{
    struct csv_opts co = {0};
    const struct scrape_format *f = &l->src->format;

    reader_close(l->rd);
    l->rd = NULL;
    if (l->csv_ready)
        csv_cleanup(&l->csv);
    l->csv_ready = false;
    if (f->delimiter != NULL)
        co.delim = f->delimiter[0];
    if (f->quote != NULL)
        co.quote = f->quote[0];
    if (f->encoding != NULL && strcmp(f->encoding, "latin1") == 0)
        co.encoding = CSV_LATIN1;
    else if (f->encoding != NULL && strcmp(f->encoding, "cp1252") == 0)
        co.encoding = CSV_CP1252;
    if (csv_init(&l->csv, &co) < 0)
        return md_error_set(l->err, MD_ECONFIG, 0, 0, "format: %s", csv_error(&l->csv));
    l->csv_ready = true;
    int rc;
    if (p != P_KEYS && p != P_DIRECT && l->spilled) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", l->spill);
        rc = reader_open(&l->rd, path, "none", NULL, l->err);
    } else {
        rc = reader_open(&l->rd, l->in->path, f->archive, f->member, l->err);
    }
    if (rc < 0)
        return rc;
    if (l->name == NULL)
        l->name = md_xstrdup(reader_name(l->rd));
    if (p == P_KEYS && reader_is_archive(l->rd))
        spill_open(l);
    l->pass = p;
    l->skip_header = l->header_done;
    l->rec = 0;
    l->eof = false;
    l->clen = l->coff = 0;
    l->out_off = 0;
    buf_clear(&l->out);
    bits_clear(&l->sent);
    return 0;
}

/* Parses on until out holds bytes to send or the input ends.  Returns 0, the callback's stop
 * (1: the header was mapped; 2, 3: P_FIND), or a negative code with l->err set. */
static int pump(struct load *l)
{
    while (!l->eof && l->out.len == l->out_off) {
        int rc = md_worker_tick(l->w);
        if (rc < 0)
            return md_error_set(l->err, rc, 0, 0, "stopped");
        if (l->pass == P_DIRECT || l->pass == P_KEYS) /* at most one line a second */
            (void)md_worker_progress(l->w, (double)rows_read, -1, "rows read");
        if (l->out_off > 0) {
            buf_clear(&l->out);
            l->out_off = 0;
        }
        if (l->coff == l->clen) {
            ssize_t n = reader_read(l->rd, l->chunk, CHUNK, l->err);
            if (n < 0)
                return (int)n;
            l->clen = (size_t)n;
            l->coff = 0;
            if (l->pass == P_KEYS && l->spill >= 0)
                spill_write(l, l->chunk, (size_t)n);
        }
        if (l->clen == 0) {
            rc = csv_finish(&l->csv, on_record, l);
            l->eof = true;
            l->spilled = l->pass == P_KEYS && l->spill >= 0;
        } else {
            uint64_t before = l->csv.bytes;
            rc = csv_feed(&l->csv, l->chunk + l->coff, l->clen - l->coff, on_record, l);
            l->coff = rc > 0 ? l->coff + (size_t)(l->csv.bytes - before) : l->clen;
        }
        if (rc < 0 && csv_error(&l->csv)[0] != '\0')
            return md_error_set(l->err, rc, 0, 0, "%s: %s", l->name, csv_error(&l->csv));
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int fill_rows(void *ud, char *buf, size_t cap, size_t *len)
{
    struct load *l = ud;
    int rc = pump(l);
    if (rc < 0)
        return rc;
    size_t n = l->out.len - l->out_off;
    if (n > cap)
        n = cap;
    if (n > 0)
        memcpy(buf, l->out.p + l->out_off, n);
    l->out_off += n;
    *len = n;
    return 0;
}

/* Reads the file to its end in pass p (with nothing to send: P_FIND). */
static int pass_run(struct load *l, enum pass p)
{
    int rc = pass_open(l, p);
    while (rc >= 0 && !l->eof) {
        rc = pump(l);
        if (rc == 2) /* P_FIND: the key is known: from the top again */
            rc = pass_open(l, P_FIND);
        if (rc == 3)
            break;
    }
    return rc < 0 ? rc : 0;
}

/* The file line of record r. */
static uint64_t rec_line(const struct load *l, uint64_t r)
{
    return linemap_line(&l->lm, r);
}

/* The server refused row n of a COPY: name the file's line (and for a duplicate key in the
 * direct load, the earlier line with that key). */
static int copy_failed(struct load *l, int rc)
{
    if (rc >= 0 || rc == -ECANCELED || l->err->line <= 0)
        return rc;
    uint64_t r = bits_nth(&l->sent, (uint64_t)l->err->line);
    if (r == 0)
        return rc;
    char msg[sizeof l->err->msg];
    snprintf(msg, sizeof msg, "%s", l->err->msg);
    if (strstr(msg, "(23505)") != NULL && l->pass == P_DIRECT) {
        struct md_error keep = *l->err;
        l->find_rec = r;
        md_free(l->find_key);
        l->find_key = NULL;
        l->found = 0;
        if (pass_run(l, P_FIND) == 0 && l->found != 0 && l->found != r) {
            struct md_buf k; /* "11\tX\t2025" -> "11, X, 2025" */
            md_buf_init(&k, 1 << 16);
            for (const char *t = l->find_key; *t; t++)
                *t == '\t' ? md_buf_puts(&k, ", ") : md_buf_put(&k, t, 1);
            md_free(l->find_key);
            l->find_key = md_buf_take(&k);
            md_buf_free(&k);
            return md_error_set(l->err, MD_EPARSE, 0, 0,
                                "%s: lines %" PRIu64 " and %" PRIu64 " have the same key (%.60s); "
                                "with duplicates: last the later row would win",
                                l->name, rec_line(l, l->found), rec_line(l, r), l->find_key);
        }
        *l->err = keep;
    }
    return md_error_set(l->err, MD_EPARSE, 0, 0, "%s:%" PRIu64 ": the database refused the row: %s",
                        l->name, rec_line(l, r), msg);
}

/* "a, b, c": the key's columns, quoted. */
static char *key_list(const struct load *l)
{
    struct md_buf b;
    md_buf_init(&b, 1 << 16);
    for (size_t k = 0; k < l->nkey; k++)
        md_buf_printf(&b, "%s%s", k > 0 ? ", " : "", l->kid[k]);
    return md_buf_take(&b);
}

/* "a.k1 = b.k1 AND ...": the key's columns of a equal to b's. */
static char *key_join(const struct load *l, const char *a, const char *b)
{
    struct md_buf s;
    md_buf_init(&s, 1 << 16);
    for (size_t k = 0; k < l->nkey; k++)
        md_buf_printf(&s, "%s%s.%s = %s.%s", k > 0 ? " AND " : "", a, l->kid[k], b, l->kid[k]);
    return md_buf_take(&s);
}

static int fill_rejects(void *ud, char *buf, size_t cap, size_t *len)
{
    struct load *l = ud;
    struct md_buf b;
    md_buf_init(&b, cap);
    *len = 0;
    for (; l->rej_i < l->nrej; l->rej_i++) {
        const struct reject *r = &l->rej[l->rej_i];
        size_t before = b.len;
        copy_escape(&b, l->in->run_id, strlen(l->in->run_id));
        md_buf_put(&b, "\t", 1);
        copy_escape(&b, l->src->name, strlen(l->src->name));
        md_buf_put(&b, "\t", 1);
        copy_escape(&b, l->in->url, strlen(l->in->url));
        md_buf_printf(&b, "\t%" PRIu64 "\t", r->line);
        copy_escape(&b, r->reason, strlen(r->reason));
        md_buf_put(&b, "\t", 1);
        copy_escape(&b, r->raw, strlen(r->raw));
        md_buf_put(&b, "\n", 1);
        if (b.full) {
            b.len = before;
            break;
        }
    }
    if (b.len > 0)
        memcpy(buf, b.p, b.len);
    *len = b.len;
    md_buf_free(&b);
    return 0;
}

static char *cols_list(const struct load *l, const char *prefix)
{
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    for (size_t i = 0; i < l->nlc; i++)
        md_buf_printf(&b, "%s%s%s", i > 0 ? ", " : "", prefix, l->lc[i].ident);
    md_buf_printf(&b, ", %s%s", prefix, l->hash_ident);
    return md_buf_take(&b);
}

static int record_file(struct load *l)
{
    const struct scrape_load_in *in = l->in;
    const struct scrape_counts *c = l->c;
    char n[8][24], lm[24], by[24];
    uint64_t v[] = {c->rows, c->inserted, c->updated, c->deleted, c->unchanged, c->rejected};
    for (size_t i = 0; i < MD_ARRAY_SIZE(v); i++)
        snprintf(n[i], sizeof n[i], "%" PRIu64, v[i]);
    snprintf(lm, sizeof lm, "%" PRId64, in->last_modified);
    snprintf(by, sizeof by, "%" PRId64, in->bytes);
    bool quiet = c->inserted + c->updated + c->deleted == 0;
    const char *p[] = {in->url,
                       l->src->name,
                       l->src->table,
                       in->file->label,
                       in->etag != NULL && in->etag[0] ? in->etag : NULL,
                       in->last_modified > 0 ? lm : NULL,
                       by,
                       in->sha256,
                       n[0],
                       n[1],
                       n[2],
                       n[3],
                       n[4],
                       n[5],
                       in->run_id,
                       quiet ? "true" : "false"};
    return md_pq_exec(l->db, SQL_FILE_UPSERT, (int)MD_ARRAY_SIZE(p), p, NULL, l->err);
}

/* ---- the steps in the database ------------------------------------------------------------ */

static PGresult *one_row(struct load *l, const char *sql, int *rc)
{
    PGresult *r = NULL;
    *rc = exec(l, sql, &r);
    if (*rc == 0 && PQntuples(r) != 1) {
        PQclear(r);
        r = NULL;
        *rc = md_error_set(l->err, MD_EDB, 0, 0, "unexpected result");
    }
    return r;
}

/* The partition's size, and whether a unique index makes a duplicate key in the file fail. */
static int survey(struct load *l, bool *empty, bool *unique)
{
    int rc;
    char *sql = md_xasprintf("SELECT count(*), count(*) FILTER (WHERE NOT (%s)) FROM %s t WHERE %s",
                             l->marked_sql, l->table, l->part_sql);
    PGresult *r = one_row(l, sql, &rc);
    md_free(sql);
    if (r == NULL)
        return rc;
    l->c->existing = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    l->existing_live = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    *empty = l->c->existing == 0;
    /* a unique index (no predicate, no expression) on some of the key's columns */
    struct md_buf names;
    md_buf_init(&names, 1 << 16);
    md_buf_puts(&names, "{");
    for (size_t k = 0; k < l->nkey; k++) {
        md_buf_puts(&names, k > 0 ? ",\"" : "\"");
        for (const char *p = tcol_find(l, l->src->key.v[k], false)->name; *p; p++) {
            if (*p == '"' || *p == '\\')
                md_buf_put(&names, "\\", 1);
            md_buf_put(&names, p, 1);
        }
        md_buf_puts(&names, "\"");
    }
    md_buf_puts(&names, "}");
    const char *p[] = {l->table, md_buf_str(&names)};
    rc = md_pq_exec(l->db,
                    "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = $1::regclass"
                    " AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL"
                    " AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey::int2[]) k WHERE k NOT IN"
                    " (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = i.indrelid"
                    "  AND a.attname = ANY ($2::text[]))))",
                    2, p, &r, l->err);
    md_buf_free(&names);
    if (rc < 0)
        return rc;
    *unique = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return 0;
}

/* Starts the COPY of a pass whose header is mapped, and streams the file into it. */
static int copy_pass(struct load *l, const char *copy_sql, uint64_t *rows)
{
    int rc = md_pq_copy_in(l->db, copy_sql, fill_rows, l, rows, l->err);
    return copy_failed(l, rc);
}

/* Pass one (P_KEYS): every record's key, hash and number into _meshd_keys. */
static int keys_pass(struct load *l)
{
    char *keys = key_list(l);
    char *sql = md_xasprintf("CREATE TEMP TABLE _meshd_keys ON COMMIT DROP AS SELECT %s,"
                             " 0::bigint AS _hash, 0::bigint AS _rec, false AS _bad"
                             " FROM %s WITH NO DATA",
                             keys, l->table);
    int rc = exec(l, sql, NULL);
    md_free(sql);
    if (rc == 0) {
        sql = md_xasprintf("COPY _meshd_keys (%s, _hash, _rec, _bad) FROM STDIN", keys);
        rc = copy_pass(l, sql, NULL);
        md_free(sql);
    }
    md_free(keys);
    return rc < 0 ? rc : exec(l, "ANALYZE _meshd_keys", NULL);
}

/* Duplicate keys in the file: an error naming two lines, or (duplicates: last) a warning.
 * *extra: the rows that lose to a later one. */
static int duplicates(struct load *l, uint64_t *extra)
{
    char *keys = key_list(l);
    char *sql = md_xasprintf("WITH d AS (SELECT min(_rec) a, max(_rec) b, count(*) - 1 AS n,"
                             " concat_ws(', ', %s) k FROM _meshd_keys GROUP BY %s"
                             " HAVING count(*) > 1)"
                             " SELECT (SELECT count(*) FROM d), (SELECT sum(n) FROM d), a, b, k"
                             " FROM d ORDER BY a LIMIT 1",
                             keys, keys);
    PGresult *r;
    int rc = exec(l, sql, &r);
    md_free(sql);
    md_free(keys);
    *extra = 0;
    if (rc < 0 || PQntuples(r) == 0) {
        if (rc == 0)
            PQclear(r);
        return rc;
    }
    uint64_t n = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    uint64_t a = strtoull(PQgetvalue(r, 0, 2), NULL, 10);
    uint64_t b = strtoull(PQgetvalue(r, 0, 3), NULL, 10);
    *extra = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    if (!l->dup_last)
        rc = md_error_set(l->err, MD_EPARSE, 0, 0,
                          "%s: lines %" PRIu64 " and %" PRIu64 " have the same key (%.60s)%s; "
                          "with duplicates: last the later row would win",
                          l->name, rec_line(l, a), rec_line(l, b), PQgetvalue(r, 0, 4),
                          n > 1 ? ", and more keys repeat" : "");
    else
        md_log(MD_LOG_WARN,
               "%s: %" PRIu64 " key(s) appear more than once, first at lines %" PRIu64
               " and %" PRIu64 " (%.60s): the last row of each wins (duplicates: last)",
               l->name, n, rec_line(l, a), rec_line(l, b), PQgetvalue(r, 0, 4));
    PQclear(r);
    return rc;
}

/* A statement that joins the file's keys (or rows) with the whole partition: nested loops
 * are turned off for it.  With statistics that do not know the partition yet (a county
 * loaded for the first time since the last ANALYZE) the planner may otherwise pick a nested
 * loop over a million rows on each side, which runs for hours; a hash join is never much worse
 * here. */
static int bulk(struct load *l, const char *sql, PGresult **res)
{
    int rc = exec(l, "SET LOCAL enable_nestloop = off", NULL);
    if (rc == 0)
        rc = exec(l, sql, res);
    if (rc == 0 && (rc = exec(l, "SET LOCAL enable_nestloop TO DEFAULT", NULL)) < 0 &&
        res != NULL) {
        PQclear(*res);
        *res = NULL;
    }
    return rc;
}

/* Statistics of the key and partition columns, after a load that changed a good part of the
 * partition: the next day's plans depend on them, and autovacuum may not have come by. */
static int analyze(struct load *l)
{
    uint64_t changed = l->c->inserted + l->c->deleted;
    if (changed == 0 || changed * 10 < l->c->existing)
        return 0;
    struct md_buf cols;
    md_buf_init(&cols, 1 << 16);
    for (size_t k = 0; k < l->nkey; k++)
        md_buf_printf(&cols, "%s%s", k > 0 ? ", " : "", l->lc[l->key[k]].ident);
    for (size_t i = 0; i < l->nlc; i++) {
        bool key = false;
        for (size_t k = 0; k < l->nkey; k++)
            key |= l->key[k] == i;
        if (l->lc[i].part >= 0 && !key)
            md_buf_printf(&cols, ", %s", l->lc[i].ident);
    }
    char *sql = md_xasprintf("ANALYZE %s (%s)", l->table, md_buf_str(&cols));
    int rc = exec(l, sql, NULL);
    md_free(sql);
    md_buf_free(&cols);
    return rc;
}

static int on_stage_rec(void *ud, const char *row, size_t len)
{
    struct load *l = ud;
    (void)len;
    bits_set(&l->stage, strtoull(row, NULL, 10));
    return 0;
}

/* The records to write: new keys, changed hashes, rows that come back after a mark. */
static int changed(struct load *l, bool dups, uint64_t *n)
{
    char *keys = key_list(l);
    char *join = key_join(l, "t", "k");
    char *src = dups ? md_xasprintf("(SELECT DISTINCT ON (%s) * FROM _meshd_keys WHERE NOT _bad"
                                    " ORDER BY %s, _rec DESC)",
                                    keys, keys)
                     : md_xstrdup("(SELECT * FROM _meshd_keys WHERE NOT _bad)");
    char *sql =
        md_xasprintf("COPY (SELECT DISTINCT k._rec FROM %s k LEFT JOIN %s t ON %s AND %s"
                     " WHERE t.%s IS NULL OR t.%s IS DISTINCT FROM k._hash OR %s)"
                     " TO STDOUT",
                     src, l->table, join, l->part_sql, l->kid[0], l->hash_ident, l->marked_sql);
    /* t.<first key> IS NULL: no row (keys are never NULL in the table rows compared) */
    int rc = exec(l, "SET LOCAL enable_nestloop = off", NULL); /* as bulk() */
    if (rc == 0)
        rc = md_pq_copy_out(l->db, sql, on_stage_rec, l, l->err);
    if (rc == 0)
        rc = exec(l, "SET LOCAL enable_nestloop TO DEFAULT", NULL);
    md_free(sql);
    md_free(src);
    md_free(keys);
    md_free(join);
    if (rc < 0)
        return rc;
    *n = 0;
    for (size_t i = 0; i < l->stage.nw; i++)
        *n += (uint64_t)__builtin_popcountll(l->stage.w[i]);
    return 0;
}

static char *gone_where(const struct load *l)
{
    char *join = key_join(l, "t", "k");
    char *w =
        md_xasprintf("%s AND NOT EXISTS (SELECT 1 FROM _meshd_keys k WHERE %s)", l->part_sql, join);
    md_free(join);
    return w;
}

static int guard(struct load *l)
{
    const char *mode = l->src->deletes.mode != NULL ? l->src->deletes.mode : "delete";
    double pct = l->existing_live > 0 ? 100.0 * (double)l->gone / (double)l->existing_live : 0;
    if (strcmp(mode, "keep") == 0 || l->gone == 0 || pct <= l->src->deletes.max_percent)
        return 0;
    return md_error_set(l->err, SCRAPE_EREFUSED, 0, 0,
                        "%s: refused: it would %s %" PRIu64 " of the %" PRIu64 " rows of %s%s%s "
                        "(%.1f%%, more than deletes.max_percent %g); a truncated or wrong file? "
                        "Nothing was written",
                        l->name, strcmp(mode, "mark") == 0 ? "mark" : "delete", l->gone,
                        l->existing_live, l->table, l->in->file->label[0] ? " " : "",
                        l->in->file->label, pct, l->src->deletes.max_percent);
}

/* Pass two: the flagged records into _meshd_stage, then UPDATE and INSERT from it. */
static int stage_and_apply(struct load *l)
{
    char *cols = cols_list(l, ""), *scols = cols_list(l, "s.");
    char *join = key_join(l, "t", "s");
    struct md_buf set;
    PGresult *r;
    md_buf_init(&set, 1 << 20);
    char *sql = md_xasprintf("CREATE TEMP TABLE _meshd_stage ON COMMIT DROP AS SELECT %s FROM %s"
                             " WITH NO DATA",
                             cols, l->table);
    int rc = exec(l, sql, NULL);
    md_free(sql);
    if (rc == 0 && (rc = pass_open(l, P_STAGE)) == 0) {
        sql = md_xasprintf("COPY _meshd_stage (%s) FROM STDIN", cols);
        rc = copy_pass(l, sql, NULL);
        md_free(sql);
    }
    if (rc == 0) { /* the planner needs the row count and the keys' statistics, no more */
        char *keys = key_list(l);
        sql = md_xasprintf("ANALYZE _meshd_stage (%s)", keys);
        rc = exec(l, sql, NULL);
        md_free(sql);
        md_free(keys);
    }
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < l->nlc; i++)
        md_buf_printf(&set, "%s%s = s.%s", i > 0 ? ", " : "", l->lc[i].ident, l->lc[i].ident);
    md_buf_printf(&set, ", %s = s.%s", l->hash_ident, l->hash_ident);
    if (l->mark_ident != NULL)
        md_buf_printf(&set, ", %s = %s", l->mark_ident, l->mark_type == CT_BOOL ? "false" : "NULL");
    sql = md_xasprintf("UPDATE %s t SET %s FROM _meshd_stage s WHERE %s AND %s", l->table,
                       md_buf_str(&set), join, l->part_sql);
    rc = exec(l, sql, &r);
    md_free(sql);
    if (rc < 0)
        goto out;
    l->c->updated = tuples(r);
    PQclear(r);
    sql = md_xasprintf("INSERT INTO %s (%s) SELECT %s FROM _meshd_stage s WHERE NOT EXISTS"
                       " (SELECT 1 FROM %s t WHERE %s AND %s)",
                       l->table, cols, scols, l->table, join, l->part_sql);
    rc = exec(l, sql, &r);
    md_free(sql);
    if (rc < 0)
        goto out;
    l->c->inserted = tuples(r);
    PQclear(r);
out:
    md_free(cols);
    md_free(scols);
    md_free(join);
    md_buf_free(&set);
    return rc;
}

/* The partition's rows the file no longer has: deleted or marked, then the guard, which
 * refuses (and so rolls back) a file that took too many.  Doing it before the guard saves a
 * second scan of the partition; a refusal is rare and costs only the rollback. */
static int deletes(struct load *l)
{
    const char *mode = l->src->deletes.mode != NULL ? l->src->deletes.mode : "delete";
    if (strcmp(mode, "keep") == 0)
        return 0;
    char *where = gone_where(l), *sql;
    if (l->mark_ident != NULL)
        sql = md_xasprintf("UPDATE %s t SET %s = %s WHERE NOT (%s) AND %s", l->table, l->mark_ident,
                           l->mark_type == CT_BOOL ? "true" : "now()", l->marked_sql, where);
    else
        sql = md_xasprintf("DELETE FROM %s t WHERE %s", l->table, where);
    PGresult *r;
    int rc = bulk(l, sql, &r);
    md_free(sql);
    md_free(where);
    if (rc < 0)
        return rc;
    l->gone = l->c->deleted = tuples(r);
    PQclear(r);
    return guard(l);
}

/* ---- the transaction ---------------------------------------------------------------------- */

static int prepare(struct load *l)
{
    const struct scrape_source *src = l->src;
    PGresult *r;
    int rc;

    if ((rc = read_table(l)) < 0)
        return rc;
    l->nkey = src->key.n;
    l->kid = md_xcalloc(l->nkey, sizeof *l->kid);
    for (size_t k = 0; k < src->key.n; k++) {
        const struct tcol *t = tcol_find(l, src->key.v[k], false);
        if (t == NULL)
            return md_error_set(l->err, MD_ECONFIG, 0, 0, "key: %s has no column %s", l->table,
                                src->key.v[k]);
        l->kid[k] = ident(l->db, t->name);
    }
    if ((rc = ensure_column(l, src->hash_column != NULL ? src->hash_column : "meshd_row_hash",
                            "bigint", &l->hash_ident, NULL)) < 0)
        return rc;
    if (src->deletes.mode != NULL && strcmp(src->deletes.mode, "mark") == 0) {
        const char *mc = src->deletes.column != NULL ? src->deletes.column : "meshd_deleted_at";
        if (src->deletes.column != NULL && tcol_find(l, mc, false) == NULL)
            return md_error_set(l->err, MD_ECONFIG, 0, 0,
                                "deletes.column: %s has no column %s (a timestamptz or boolean)",
                                l->table, mc);
        if ((rc = ensure_column(l, mc, "timestamptz", &l->mark_ident, &l->mark_type)) < 0)
            return rc;
        l->marked_sql = l->mark_type == CT_BOOL
                            ? md_xasprintf("coalesce(t.%s, false)", l->mark_ident)
                            : md_xasprintf("t.%s IS NOT NULL", l->mark_ident);
    } else {
        l->marked_sql = md_xstrdup("false");
    }
    struct md_buf ps;
    md_buf_init(&ps, 1 << 16);
    for (size_t p = 0; p < l->in->file->npart; p++) {
        struct tcol *t = tcol_find(l, l->in->file->part_col[p], false);
        if (t == NULL) {
            md_buf_free(&ps);
            return md_error_set(l->err, MD_ECONFIG, 0, 0, "partition.%s: %s has no such column",
                                l->in->file->part_col[p], l->table);
        }
        char *id = ident(l->db, t->name), *lit = literal(l->db, l->in->file->part_val[p]);
        md_buf_printf(&ps, "%st.%s = %s", p > 0 ? " AND " : "", id, lit);
        md_free(id);
        md_free(lit);
    }
    l->part_sql = ps.len > 0 ? md_buf_take(&ps) : md_xstrdup("true");
    md_buf_free(&ps);
    /* Another run on the same partition fails at once (MD_ELOCKED, exit 111: meshd retries)
     * rather than loading it twice at the same time. */
    const char *lp[] = {l->table, l->in->file->label};
    rc = md_pq_exec(l->db,
                    "SELECT pg_try_advisory_xact_lock(hashtext('" LOCK_SPACE "' || $1), "
                    "hashtext($2))",
                    2, lp, &r, l->err);
    if (rc < 0)
        return rc;
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!got)
        return md_error_set(l->err, MD_ELOCKED, 0, 0, "%s%s%s: another run is loading it now",
                            l->table, l->in->file->label[0] ? " " : "", l->in->file->label);
    return 0;
}

static int load_tx(PGconn *db, void *ud, struct md_error *err)
{
    struct load *l = ud;
    bool empty = false, unique = false;
    int rc;
    (void)db;
    (void)err;

    if ((rc = prepare(l)) < 0 || (rc = survey(l, &empty, &unique)) < 0)
        return rc;
    l->dup_last = l->src->duplicates != NULL && strcmp(l->src->duplicates, "last") == 0;
    /* An empty partition under a unique index on the key: straight in, in one pass (a
     * duplicate key fails the COPY, and is then named). */
    enum pass first = empty && unique && !l->dup_last ? P_DIRECT : P_KEYS;
    if ((rc = pass_open(l, first)) < 0)
        return rc;
    if ((rc = pump(l)) < 0) /* up to the header, which decides the columns */
        return rc;
    if (!l->header_done)
        return md_error_set(l->err, MD_EPARSE, 0, 0, "%s: the file is empty (no header)", l->name);
    if (first == P_DIRECT) {
        char *cols = cols_list(l, "");
        char *sql = md_xasprintf("COPY %s (%s) FROM STDIN", l->table, cols);
        uint64_t n = 0;
        rc = copy_pass(l, sql, &n);
        md_free(sql);
        md_free(cols);
        if (rc < 0)
            return rc;
        l->c->inserted = n;
    } else {
        uint64_t extra = 0, nstage = 0;
        if ((rc = keys_pass(l)) < 0 || (rc = duplicates(l, &extra)) < 0 ||
            (rc = changed(l, extra > 0, &nstage)) < 0 || (rc = deletes(l)) < 0)
            return rc;
        uint64_t good = l->c->rows - l->c->rejected;
        l->c->unchanged = good > nstage + extra ? good - nstage - extra : 0;
        md_log(MD_LOG_INFO,
               "%s: %" PRIu64 " rows, %" PRIu64 " to write, %" PRIu64 " unchanged, %" PRIu64
               " gone from the file (%s)",
               l->name, l->c->rows, nstage, l->c->unchanged, l->gone,
               l->src->deletes.mode != NULL ? l->src->deletes.mode : "delete");
        if (nstage > 0 && (rc = stage_and_apply(l)) < 0)
            return rc;
    }
    if ((rc = analyze(l)) < 0)
        return rc;
    if (l->nrej > 0 &&
        (rc = md_pq_copy_in(l->db,
                            "COPY meshd_scrape.rejects (run_id, source, url, line, reason, raw) "
                            "FROM STDIN",
                            fill_rejects, l, NULL, l->err)) < 0)
        return rc;
    return record_file(l);
}

int scrape_load(struct md_worker *w, PGconn *db, const struct scrape_load_in *in,
                struct scrape_counts *counts, enum scrape_outcome *outcome, struct md_error *err)
{
    struct load l = {.w = w,
                     .db = db,
                     .in = in,
                     .src = in->file->src,
                     .c = counts,
                     .err = err,
                     .max_bad = in->max_bad_rows,
                     .spill = -1};
    int rc;

    memset(counts, 0, sizeof *counts);
    *outcome = SCRAPE_FAILED;
    rows_read = 0;
    md_buf_init(&l.out, OUT_MAX);
    md_buf_init(&l.line, CSV_MAX_RECORD_DEFAULT * 2 + 4096);
    md_buf_init(&l.keytext, 1 << 16);
    l.chunk = md_xmalloc(CHUNK);
    rc = md_pq_tx(db, load_tx, &l, 1, err);
    if (rc == 0)
        *outcome = SCRAPE_LOADED;
    else if (rc == -ECANCELED || md_worker_stopping())
        *outcome = SCRAPE_STOPPED;
    else if (rc == SCRAPE_EREFUSED)
        *outcome = SCRAPE_REFUSED;
    else if (rc == MD_EPARSE || rc == MD_ECONFIG || rc == MD_ETOOBIG)
        *outcome = SCRAPE_REJECTED;
    if (rc < 0) { /* nothing was written */
        struct scrape_counts keep = {
            .rows = counts->rows, .existing = counts->existing, .rejected = counts->rejected};
        *counts = keep;
    }
    reader_close(l.rd);
    if (l.spill >= 0)
        close(l.spill);
    md_free(l.name);
    if (l.csv_ready)
        csv_cleanup(&l.csv);
    md_buf_free(&l.out);
    md_buf_free(&l.line);
    md_buf_free(&l.keytext);
    md_free(l.chunk);
    md_free(l.sent.w);
    md_free(l.stage.w);
    md_free(l.lm.rec);
    md_free(l.lm.line);
    md_free(l.find_key);
    for (size_t i = 0; i < l.nrej; i++) {
        md_free(l.rej[i].reason);
        md_free(l.rej[i].raw);
    }
    md_free(l.rej);
    for (size_t i = 0; i < l.ntc; i++)
        md_free(l.tc[i].name);
    md_free(l.tc);
    for (size_t i = 0; i < l.nlc; i++)
        md_free(l.lc[i].ident);
    md_free(l.lc);
    md_free(l.key);
    for (size_t k = 0; l.kid != NULL && k < l.nkey; k++)
        md_free(l.kid[k]);
    md_free(l.kid);
    md_free(l.table);
    md_free(l.hash_ident);
    md_free(l.mark_ident);
    md_free(l.part_sql);
    md_free(l.marked_sql);
    return rc;
}
