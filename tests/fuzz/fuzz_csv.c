/* fuzz_csv.c - libFuzzer target: bytes -> csv_feed/csv_finish (workers/scrape/csv.c).
 *
 * Input: byte 0 picks the options (delimiter, quote, max_record, max_fields), byte 1 seeds the
 * chunking, the rest is the CSV.  For each encoding the CSV is parsed three ways:
 *   1. in one feed;
 *   2. in chunks of pseudo-random sizes (1..64 bytes, now and then a few KiB), with the callback
 *      stopping the feed now and then and the driver resuming with the rest of the chunk;
 *   3. the records of 1, written out again as CSV (quoted where needed), parsed in UTF-8.
 * Checked:
 *   - 1 and 2 agree exactly: every record (fields, flags, lines, bad), the final code, the
 *     message and the counters;
 *   - on every record: 1 <= n <= max_fields; the text plus one byte per field fits max_record;
 *     each field is valid UTF-8 without NUL and NUL-terminated; line <= end_line; a record
 *     starts after the previous one ended; bad_field < n; the counters are consistent;
 *   - 3 delivers no bad record, and writing its records out again gives the same bytes as 1's;
 *   - a parse that fails says why (csv_error is not empty and names a line);
 *   - each field through the loader's value checks (value.c): a canonical integer is canonical
 *     again and fits its type; COPY escaping leaves no raw tab, CR or LF and unescapes back.
 * ASan/UBSan (MESHD_FUZZ=ON) catch the memory errors.
 */
#include "csv.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "value.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STOP 7 /* what the callback returns to stop a feed */

struct out {
    char *p;
    size_t len, alloc;
};

static void out_put(struct out *o, const void *s, size_t n)
{
    if (n == 0)
        return;
    if (o->len + n > o->alloc) {
        o->alloc = (o->len + n) * 2 + 64;
        o->p = md_xrealloc(o->p, o->alloc);
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

struct ctx {
    const struct csv_parser *parser;
    const struct csv_opts *opts;
    uint64_t hash;            /* FNV-1a over every record */
    uint64_t prev_end;        /* end_line of the previous record (0: none yet) */
    uint64_t rng;             /* stop decisions (run 2) */
    int stops;                /* let the callback stop the feed */
    struct out *csv;          /* write the records out as CSV here (NULL: don't) */
    const struct out *expect; /* compare the written CSV with this, as it grows (run 3) */
    uint64_t records;
};

static void mix(uint64_t *h, const void *s, size_t n)
{
    const unsigned char *b = s;

    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3ULL;
    }
}

static uint64_t next(uint64_t *x)
{
    /* xorshift64; never seeded with 0 */
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c < 0xC2 || c > 0xF4)
            return 0;
        k = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        else if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
        if (i + k > n || s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t j = 2; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

/* Writes a record as CSV that parses back to the same text: quoted if it was, or if it must be
 * (it holds the delimiter, the quote at its start, CR or LF; or it is the input's first field
 * and starts with a BOM, which the reparse would skip). */
static void write_record(struct out *o, const struct csv_record *rec, const struct csv_opts *opts,
                         int first)
{
    for (size_t i = 0; i < rec->n; i++) {
        const struct csv_field *f = &rec->f[i];
        int q = f->quoted || memchr(f->p, opts->delim, f->len) || memchr(f->p, '\r', f->len) ||
                memchr(f->p, '\n', f->len) || (f->len > 0 && f->p[0] == opts->quote) ||
                (first && i == 0 && f->len >= 3 && memcmp(f->p, "\xEF\xBB\xBF", 3) == 0);
        if (i > 0)
            out_put(o, &opts->delim, 1);
        if (!q) {
            out_put(o, f->p, f->len);
            continue;
        }
        out_put(o, &opts->quote, 1);
        for (size_t j = 0; j < f->len; j++) {
            if (f->p[j] == opts->quote)
                out_put(o, &opts->quote, 1);
            out_put(o, &f->p[j], 1);
        }
        out_put(o, &opts->quote, 1);
    }
    out_put(o, "\n", 1);
}

/* The loader's checks of one field (workers/scrape/value.c). */
static void check_value(const char *s, size_t n)
{
    static const enum ctype ints[] = {CT_INT2, CT_INT4, CT_INT8};
    char canon[32], again[32];

    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        if (!val_int_canon(s, n, ints[i], canon, sizeof canon))
            continue;
        if (!val_int_canon(canon, strlen(canon), ints[i], again, sizeof again) ||
            strcmp(canon, again) != 0 || !val_num_ok(canon, strlen(canon), false))
            abort();
    }
    (void)val_num_ok(s, n, true);
    (void)val_bool_ok(s, n);
    struct md_buf b;
    md_buf_init(&b, 2 * n + 16);
    copy_escape(&b, s, n);
    const char *e = b.p != NULL ? b.p : "";
    size_t k = 0;
    for (size_t i = 0; i < b.len; i++, k++) {
        char want = e[i];
        if (e[i] == '\t' || e[i] == '\n' || e[i] == '\r')
            abort();
        if (e[i] == '\\') {
            i++;
            want = e[i] == 't' ? '\t' : e[i] == 'n' ? '\n' : e[i] == 'r' ? '\r' : e[i];
            if (e[i] != 't' && e[i] != 'n' && e[i] != 'r' && e[i] != '\\')
                abort();
        }
        if (k >= n || s[k] != want)
            abort();
    }
    if (k != n)
        abort();
    md_buf_free(&b);
}

static int on_record(void *ud, const struct csv_record *rec)
{
    struct ctx *c = ud;
    size_t size = 0;
    uint64_t v;

    if (rec->n < 1 || rec->n > c->opts->max_fields)
        abort();
    if (rec->line > rec->end_line || rec->line <= c->prev_end)
        abort();
    if (rec->end_line > c->parser->line || c->parser->records != c->records + 1)
        abort();
    if (rec->bad ? rec->bad_field >= rec->n || rec->bad[0] == '\0' : rec->bad_field != 0)
        abort();
    c->prev_end = rec->end_line;
    c->records++;
    for (size_t i = 0; i < rec->n; i++) {
        const struct csv_field *f = &rec->f[i];
        if (f->p == NULL || f->p[f->len] != '\0' || !utf8_ok((const unsigned char *)f->p, f->len))
            abort();
        size += f->len + 1;
        mix(&c->hash, &f->len, sizeof f->len);
        mix(&c->hash, &f->quoted, sizeof f->quoted);
        mix(&c->hash, f->p, f->len);
        if (!c->stops)
            check_value(f->p, f->len);
    }
    if (size > c->opts->max_record)
        abort();
    v = rec->n;
    mix(&c->hash, &v, sizeof v);
    mix(&c->hash, &rec->line, sizeof rec->line);
    mix(&c->hash, &rec->end_line, sizeof rec->end_line);
    mix(&c->hash, &rec->bad_field, sizeof rec->bad_field);
    if (rec->bad)
        mix(&c->hash, rec->bad, strlen(rec->bad));
    if (c->csv) {
        write_record(c->csv, rec, c->opts, c->records == 1);
        if (c->expect) {
            if (rec->bad != NULL)
                abort();
            if (c->csv->len > c->expect->len || memcmp(c->csv->p, c->expect->p, c->csv->len) != 0)
                abort();
        }
    }
    if (c->stops && next(&c->rng) % 4 == 0)
        return STOP;
    return 0;
}

struct result {
    uint64_t hash, bytes, records, bad_records, line;
    int rc;
    char err[200];
};

/* Parses in[0..n) with o; chunk_seed 0 is one feed, otherwise pseudo-random chunks and stops. */
static void parse(const struct csv_opts *o, const uint8_t *in, size_t n, uint64_t chunk_seed,
                  struct out *csv, const struct out *expect, struct result *r)
{
    struct csv_parser p;
    struct ctx c = {0};
    int rc = 0;

    if (csv_init(&p, o) != 0)
        abort();
    c.parser = &p;
    c.opts = o;
    c.hash = 0xcbf29ce484222325ULL;
    c.csv = csv;
    c.expect = expect;
    c.stops = chunk_seed != 0;
    c.rng = chunk_seed ^ 0x9e3779b97f4a7c15ULL;
    if (chunk_seed == 0) {
        rc = csv_feed(&p, in, n, on_record, &c);
    } else {
        uint64_t x = chunk_seed;
        size_t i = 0;
        while (i < n && rc == 0) {
            uint64_t z = next(&x);
            size_t k = z % 16 == 0 ? (size_t)(z >> 8) % 4096 + 1 : (size_t)(z >> 8) % 64 + 1;
            if (k > n - i)
                k = n - i;
            for (;;) {
                uint64_t before = p.bytes;
                rc = csv_feed(&p, in + i, k, on_record, &c);
                if (p.bytes - before > k)
                    abort();
                if (rc != STOP)
                    break;
                /* Resume with what the stop left of this chunk. */
                i += (size_t)(p.bytes - before);
                k -= (size_t)(p.bytes - before);
                rc = 0;
            }
            i += k;
        }
    }
    if (rc == 0) {
        rc = csv_finish(&p, on_record, &c);
        if (rc == STOP) /* only the last record can stop here; the parse is complete */
            rc = 0;
    }
    if (rc != 0 && rc != MD_ETOOBIG && rc != MD_EPARSE)
        abort();
    if (rc != 0 && strncmp(csv_error(&p), "line ", 5) != 0)
        abort();
    if (rc == 0 && (p.bytes != n || csv_error(&p)[0] != '\0'))
        abort();
    if (p.alloc > o->max_record || p.records != c.records || p.bad_records > p.records)
        abort();
    r->hash = c.hash;
    r->bytes = p.bytes;
    r->records = p.records;
    r->bad_records = p.bad_records;
    r->line = p.line;
    r->rc = rc;
    memcpy(r->err, csv_error(&p), sizeof r->err);
    r->err[sizeof r->err - 1] = '\0';
    csv_cleanup(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delims[] = {',', ';', '\t', '|'};
    static const char quotes[] = {'"', '\''};
    static const size_t max_records[] = {8, 64, 4096, CSV_MAX_RECORD_DEFAULT};
    static const size_t max_fields[] = {2, 5, 64, CSV_MAX_FIELDS_DEFAULT};
    struct csv_opts o = {0};
    uint64_t seed;

    if (size < 2)
        return 0;
    o.delim = delims[data[0] & 3];
    o.quote = quotes[(data[0] >> 2) & 1];
    o.max_record = max_records[(data[0] >> 3) & 3];
    o.max_fields = max_fields[(data[0] >> 5) & 3];
    seed = (uint64_t)data[1] * 0x2545F4914F6CDD1DULL + 1;
    data += 2, size -= 2;

    for (int e = CSV_UTF8; e <= CSV_CP1252; e++) {
        struct result one, chunked, again;
        struct out csv = {0}, csv2 = {0};
        struct csv_opts o2 = o;

        o.encoding = (enum csv_encoding)e;
        parse(&o, data, size, 0, &csv, NULL, &one);
        parse(&o, data, size, seed, NULL, NULL, &chunked);
        /* bytes after a fatal error is only "inside the failed record" (csv.h). */
        if (one.hash != chunked.hash || one.rc != chunked.rc ||
            (one.rc == 0 && one.bytes != chunked.bytes) || one.bytes > size ||
            chunked.bytes > size || one.records != chunked.records ||
            one.bad_records != chunked.bad_records || one.line != chunked.line ||
            strcmp(one.err, chunked.err) != 0)
            abort();

        /* The records written out parse back to themselves, clean, and the whole of them. */
        o2.encoding = CSV_UTF8;
        /* Written out, a record may need quotes it did not have: room for them. */
        o2.max_record = 3 * o.max_record + 16;
        parse(&o2, (const uint8_t *)csv.p, csv.len, 0, &csv2, &csv, &again);
        if (again.rc != 0 || again.records != one.records || again.bad_records != 0 ||
            csv2.len != csv.len)
            abort();
        md_free(csv.p);
        md_free(csv2.p);
    }
    return 0;
}
