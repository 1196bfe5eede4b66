/* value.h - the pure parts of meshd-scrape's loader (load.c): COPY text escaping, the checks
 * of a CSV field against its column's type, and the per-record bits and record -> line map.
 * No I/O, no database: tests/unit/test_scrape_value.c drives them directly.
 */
#ifndef MESHD_SCRAPE_VALUE_H
#define MESHD_SCRAPE_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "meshd/md_buf.h"

/* A column's type, as far as the loader checks values itself (anything else: CT_OTHER, the
 * server checks it). */
enum ctype { CT_TEXT, CT_INT2, CT_INT4, CT_INT8, CT_NUM, CT_FLOAT, CT_BOOL, CT_OTHER };

/* md_buf_put, without the call when there is room: once per field of every row. */
static inline void val_put(struct md_buf *b, const char *s, size_t n)
{
    if (b->p != NULL && b->len + n < b->cap) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
    } else {
        md_buf_put(b, s, n);
    }
}

/* Appends v in decimal (no printf: once or twice per row). */
void val_put_i64(struct md_buf *b, int64_t v);

/* Appends s (n bytes) to b escaped for COPY's text format (\\, \t, \n, \r). */
void copy_escape(struct md_buf *b, const char *s, size_t n);

/* The canonical text of an integer of type t ("+011" -> "11", " -0 " -> "0") into buf (cap >=
 * 24): surrounding blanks and tabs are allowed, nothing else.  False when s (n bytes) is not
 * an integer or is out of t's range. */
bool val_int_canon(const char *s, size_t n, enum ctype t, char *buf, size_t cap);

/* True when s is a number PostgreSQL's numeric (is_float false) or float8 (true) input takes:
 * [blanks][sign]digits[.digits][e[sign]digits][blanks], ".5", "NaN", "Infinity" (and "inf" for
 * a float), case-insensitive. */
bool val_num_ok(const char *s, size_t n, bool is_float);

/* True for PostgreSQL's boolean words: t f true false y n yes no on off 1 0 (any case,
 * surrounding blanks allowed).  PostgreSQL also takes unique prefixes ("tr"); those are
 * refused here, as no file writes them. */
bool val_bool_ok(const char *s, size_t n);

/* Characters (code points) of valid UTF-8 text. */
size_t val_utf8_chars(const char *s, size_t n);

bool val_is_int(enum ctype t);

/* "bigint", "numeric", ... for messages. */
const char *val_type_name(enum ctype t);

/* One bit per data record, grown on demand (record numbers start at 1). */
struct bits {
    uint64_t *w;
    size_t nw;
};

void bits_set(struct bits *b, uint64_t i);
bool bits_get(const struct bits *b, uint64_t i);
void bits_clear(struct bits *b); /* every bit to 0, keeping the memory */
/* The index of the n-th (1-based) set bit, or 0 when fewer are set. */
uint64_t bits_nth(const struct bits *b, uint64_t n);

/* Record number -> the physical line it starts on.  Note a checkpoint (rec, line) for the
 * first record and wherever a record does not start on the line after the previous one ended
 * (a quoted line break, a blank line); the lines in between are counted from the last one. */
struct linemap {
    uint64_t *rec, *line;
    size_t n, alloc;
};

void linemap_note(struct linemap *m, uint64_t rec, uint64_t line);
/* The line of record rec (>= the first noted record); rec + 1 when nothing was noted. */
uint64_t linemap_line(const struct linemap *m, uint64_t rec);

#endif
