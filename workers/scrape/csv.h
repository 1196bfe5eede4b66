/* csv.h - a streaming CSV parser for meshd-scrape: bytes in, UTF-8 records out.  Pure: no I/O,
 * no clock, so tests/unit/test_scrape_csv.c and tests/fuzz/fuzz_csv.c drive it directly.
 *
 * The grammar is RFC 4180, with the delimiter and the quote configurable:
 *
 *   file    = *( record eol / eol ) [ record ]      a bare eol is a blank line: skipped
 *   record  = field *( DELIM field )
 *   field   = quoted / unquoted
 *   quoted  = QUOTE *( any byte but QUOTE / QUOTE QUOTE ) QUOTE
 *   unquoted= [ byte but QUOTE ] *byte    where byte is any but DELIM, LF, and a CR that
 *                                         starts a CR LF
 *   eol     = LF / CR LF
 *
 * and these rules where real files stray from it:
 * - Only LF and CR LF end a record, and only outside quotes.  A lone CR is data.  A CR right
 *   before the end of the input is taken for the start of a CR LF and dropped, like md_linebuf.
 * - Inside quotes every byte is data, CR and LF included (so "a\r\nb" keeps its CR), and each LF
 *   still counts as a physical line for the line numbers.
 * - A quote inside an unquoted field (ab"c) is data.  A quote opens a quoted field only as the
 *   field's first byte.
 * - After a closing quote, anything but the delimiter or a line end is kept as data, appended to
 *   the field, and marks the record bad ("text after a closing quote").  The field stays
 *   quoted=true.
 * - Blank lines (nothing between two line ends) are skipped: they are never a record.  A
 *   one-column file therefore cannot express an unquoted empty value on its own line; write "".
 *
 * Encodings.  Field text is always delivered as valid UTF-8 without NUL bytes:
 * - CSV_UTF8 validates (Unicode table 3-7: no overlongs, no surrogates, nothing past U+10FFFF, no
 *   truncated sequence).  Each maximal invalid subpart becomes one U+FFFD and the record is marked
 *   bad ("invalid UTF-8 at byte N of the field").  A UTF-8 BOM at the very start of the input is
 *   skipped; anywhere else it is data (U+FEFF).
 * - CSV_LATIN1 maps every byte to the code point of the same number (>= 0x80: two UTF-8 bytes).
 * - CSV_CP1252 is Latin-1 except 0x80-0x9F, which go through the Windows-1252 table; its five
 *   undefined bytes (0x81 0x8D 0x8F 0x90 0x9D) become U+FFFD and mark the record bad.
 * - A NUL byte, in any encoding, becomes U+FFFD and marks the record bad ("NUL byte at byte N of
 *   the field"): PostgreSQL text cannot hold it.
 * In these messages N is 1-based and counts bytes of the field's text as delivered (after
 * unescaping and transcoding), where the U+FFFD now stands.  Only a record's first problem is
 * reported; a bad record is still delivered whole and parsing goes on.
 *
 * Fatal errors stop the parser (every later csv_feed/csv_finish returns the same code) and
 * csv_error() names the line:
 * - MD_ETOOBIG: a record over max_record bytes, or with more than max_fields fields.  A record's
 *   size is its decoded text plus one byte per field (for its delimiter or line end), which is
 *   the record's length in the file for an unquoted ASCII record.  The usual cause is a quote
 *   that never closes, and the message says so, naming the line where it opened.
 * - MD_EPARSE: the input ends inside a quoted field (csv_finish):
 *   "line N: unterminated quoted field (EOF)", N being the line where that field opened.
 *
 * Memory: one buffer for the current record, grown geometrically and never past max_record
 * bytes, and one array of fields, never past max_fields entries.  Nothing depends on the size of
 * the input, and nothing is allocated per record or per field once the buffers have grown.
 * Total work is O(bytes fed); runs of ordinary bytes are scanned with a table and copied with
 * memcpy.
 */
#ifndef MESHD_SCRAPE_CSV_H
#define MESHD_SCRAPE_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_err.h"

#define CSV_MAX_RECORD_DEFAULT ((size_t)1 << 20)
#define CSV_MAX_FIELDS_DEFAULT ((size_t)4096)

enum csv_encoding { CSV_UTF8, CSV_LATIN1, CSV_CP1252 };

/* Zero in any member means its default, so `struct csv_opts o = {0}` (or NULL) is plain CSV.
 * delim and quote must be different ASCII characters other than CR, LF and NUL. */
struct csv_opts {
    char delim;                 /* ',' */
    char quote;                 /* '"' */
    enum csv_encoding encoding; /* CSV_UTF8 */
    size_t max_record;          /* CSV_MAX_RECORD_DEFAULT (1 MiB); see "size" above */
    size_t max_fields;          /* CSV_MAX_FIELDS_DEFAULT (4096) */
};

/* One field.  p is UTF-8, unescaped ("" is already "), NUL-free, and NUL-terminated at p[len],
 * so it may also be used as a C string.  An empty unquoted field (a NULL, to the caller) has
 * quoted=false and len=0; "" has quoted=true and len=0. */
struct csv_field {
    const char *p;
    size_t len;
    bool quoted;
};

/* One record, as passed to csv_record_cb.  Everything it points to belongs to the parser and is
 * valid only during the callback. */
struct csv_record {
    const struct csv_field *f;
    size_t n;          /* >= 1 */
    uint64_t line;     /* 1-based physical line where the record starts */
    uint64_t end_line; /* physical line where it ends (> line when a quoted field holds a LF) */
    const char *bad;   /* NULL, or why this record is malformed (its first problem; not fatal) */
    size_t bad_field;  /* 0-based index of the field bad refers to; 0 when bad is NULL */
};

/* Called once per record, in order.  Returning nonzero stops the feed: csv_feed (or csv_finish)
 * returns that value at once.  Return a positive value, or a negative code of your own outside
 * MD_ETOOBIG and MD_EPARSE, so the caller can tell a stop from a parse error.  The parser stays
 * usable after a stop: p->bytes counts the input consumed up to and including this record's line
 * end, and the rest of that chunk may be fed again.  The callback must not call csv_feed,
 * csv_finish or csv_cleanup on the parser that called it. */
typedef int csv_record_cb(void *ctx, const struct csv_record *rec);

/* Caller-owned.  The counters are public and read-only; treat the rest as private. */
struct csv_parser {
    uint64_t bytes;       /* input bytes consumed (a skipped BOM included); after a fatal
                           * error, somewhere inside the failed record (where exactly depends
                           * on the chunking) */
    uint64_t records;     /* records delivered */
    uint64_t bad_records; /* of which marked bad */
    uint64_t line;        /* physical line of the next byte: 1 + LFs consumed */

    /* private */
    unsigned char delim, quote;
    enum csv_encoding enc;
    size_t max_record, max_fields;
    int state, cr_from;
    int bom; /* UTF-8 BOM bytes matched at the start of the input, or -1 once past it */
    bool finished;
    int err;           /* 0, or the fatal error every call returns from now on */
    char *buf;         /* the current record: each field's text, then a NUL */
    size_t len, alloc; /* bytes used and allocated at buf; alloc <= max_record */
    size_t fstart;     /* offset in buf of the field being read */
    struct csv_field *f;
    size_t nf, falloc; /* fields ended in this record; entries allocated at f */
    bool fquoted;      /* the field being read opened with a quote */
    uint64_t rec_line, quote_line;
    const char *bad;
    size_t bad_field;
    unsigned u_need, u_have;  /* UTF-8: continuation bytes still expected, and bytes kept */
    unsigned char u_lo, u_hi; /* UTF-8: the range the next continuation byte must fall in */
    unsigned char stop_unq[256], stop_quo[256]; /* bytes that end a run of plain data */
    unsigned char hi[128][4]; /* LATIN1/CP1252: length, then the UTF-8 of each byte >= 0x80 */
    char bad_msg[80];
    char errmsg[200];
};

/* Initializes p with o (borrowed; NULL for the defaults).  Allocates nothing.  Returns 0, or
 * -EINVAL for unusable options (then csv_error says which, csv_feed returns -EINVAL, and
 * csv_cleanup is still allowed). */
int csv_init(struct csv_parser *p, const struct csv_opts *o) MD_MUSTCHECK;

/* Releases p's memory.  p may be initialized again. */
void csv_cleanup(struct csv_parser *p);

/* Parses n bytes of data (borrowed; any chunking: a record, a UTF-8 sequence, a "" pair or a
 * CR LF may straddle two feeds) and calls cb for every record they complete.  Returns 0, a
 * fatal MD_ETOOBIG (see above), or the callback's nonzero value.  n may be 0.  Must not be
 * called after csv_finish. */
int csv_feed(struct csv_parser *p, const void *data, size_t n, csv_record_cb *cb,
             void *ctx) MD_MUSTCHECK;

/* At the end of the input: delivers a last record that had no line end, or fails with
 * MD_EPARSE if the input ended inside a quoted field.  Returns 0, a fatal code, or the
 * callback's nonzero value.  Call it once; afterwards only csv_error, the counters and
 * csv_cleanup are allowed. */
int csv_finish(struct csv_parser *p, csv_record_cb *cb, void *ctx) MD_MUSTCHECK;

/* The fatal error's message, "line N: ..." (borrowed from p; "" when there was none). */
const char *csv_error(const struct csv_parser *p);

#endif
