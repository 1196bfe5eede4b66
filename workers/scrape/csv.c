/* csv.c - the streaming CSV parser (csv.h). */
#include "csv.h"

#include "meshd/md_alloc.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BUF_MIN 256
#define FIELDS_MIN 16

/* Parser states.  Line ends and delimiters are ASCII and never part of a multi-byte UTF-8
 * sequence, so the UTF-8 decoder (u_need/u_have) runs beside these states, not inside them. */
enum {
    ST_REC,   /* between records: no byte of the next one seen yet (an LF here is a blank line) */
    ST_FIELD, /* after a delimiter, or at a record's first byte: the next field has not begun */
    ST_UNQ,   /* inside an unquoted field */
    ST_QUO,   /* inside a quoted field */
    ST_QQ,    /* a quote inside a quoted field: its end, or the first half of a "" pair */
    ST_CR,    /* a CR outside quotes: the start of CR LF, or data if no LF follows; cr_from is the
               * state it arrived in */
};

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};
static const unsigned char FFFD[3] = {0xEF, 0xBF, 0xBD};

/* Windows-1252 0x80-0x9F; 0 marks the five undefined bytes. */
static const uint16_t CP1252[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178,
};

/* Invariants between calls:
 *  - buf[0..len) holds the ended fields of the current record, each followed by a NUL, then the
 *    text of the field being read, from fstart.  len + 1 <= alloc whenever len > 0, so ending a
 *    field always has room for its NUL once something was written.
 *  - u_have > 0 only in ST_UNQ or ST_QUO; those bytes are the last u_have bytes of buf.
 *  - bad == NULL or bad == bad_msg; both reset with each record. */

MD_PRINTF(3, 4) static int fail(struct csv_parser *p, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->errmsg, sizeof p->errmsg, fmt, ap);
    va_end(ap);
    p->err = code;
    return code;
}

MD_PRINTF(2, 3) static void set_bad(struct csv_parser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->bad != NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(p->bad_msg, sizeof p->bad_msg, fmt, ap);
    va_end(ap);
    p->bad = p->bad_msg;
    p->bad_field = p->nf;
}

/* The record does not fit in max_record.  Almost always a quote that never closed swallowed the
 * lines after it, so name the line the user should look at. */
static int too_big(struct csv_parser *p)
{
    unsigned long long q = p->quote_line, r = p->rec_line, l = p->line;

    if (p->state == ST_QUO || p->state == ST_QQ)
        return fail(p, MD_ETOOBIG,
                    "line %llu: record longer than %zu bytes (max_record) inside a quoted field "
                    "opened on line %llu: unterminated quote?",
                    r, p->max_record, q);
    if (l > r)
        return fail(p, MD_ETOOBIG,
                    "line %llu: record longer than %zu bytes (max_record), spanning lines "
                    "%llu-%llu: unbalanced quote?",
                    r, p->max_record, r, l);
    return fail(p, MD_ETOOBIG, "line %llu: record longer than %zu bytes (max_record)", r,
                p->max_record);
}

/* Makes room for need bytes in buf, or fails past max_record. */
static int grow(struct csv_parser *p, size_t need)
{
    size_t a;

    if (need > p->max_record)
        return too_big(p);
    a = p->alloc ? (p->alloc > p->max_record / 2 ? p->max_record : p->alloc * 2) : BUF_MIN;
    if (a < need)
        a = need;
    if (a > p->max_record)
        a = p->max_record;
    p->buf = md_xrealloc(p->buf, a);
    p->alloc = a;
    return 0;
}

/* Appends k bytes, keeping one byte free for the field's NUL. */
static inline int put(struct csv_parser *p, const void *src, size_t k)
{
    int rc;

    if (p->len + k + 1 > p->alloc && (rc = grow(p, p->len + k + 1)) != 0)
        return rc;
    memcpy(p->buf + p->len, src, k);
    p->len += k;
    return 0;
}

static inline int put1(struct csv_parser *p, unsigned char c)
{
    int rc;

    if (p->len + 2 > p->alloc && (rc = grow(p, p->len + 2)) != 0)
        return rc;
    p->buf[p->len++] = (char)c;
    return 0;
}

/* 1-based position, in the field's delivered text, of the byte at buf offset off. */
static size_t field_pos(const struct csv_parser *p, size_t off)
{
    return off - p->fstart + 1;
}

/* The pending UTF-8 sequence cannot complete: replace its bytes with one U+FFFD. */
static int utf8_cut(struct csv_parser *p)
{
    size_t at = p->len - p->u_have;

    set_bad(p, "invalid UTF-8 at byte %zu of the field", field_pos(p, at));
    p->len = at;
    p->u_need = p->u_have = 0;
    return put(p, FFFD, sizeof FFFD);
}

/* One byte >= 0x80 of UTF-8 input, outside the fast path: a continuation of the pending
 * sequence, or the start of a new one.  Ranges from Unicode table 3-7; an invalid byte ends the
 * pending sequence (its maximal subpart becomes one U+FFFD) and is then looked at afresh. */
static int utf8_byte(struct csv_parser *p, unsigned char c)
{
    int rc;

    if (p->u_need > 0) {
        if (c >= p->u_lo && c <= p->u_hi) {
            if ((rc = put1(p, c)) != 0)
                return rc;
            p->u_lo = 0x80;
            p->u_hi = 0xBF;
            p->u_have++;
            if (--p->u_need == 0)
                p->u_have = 0;
            return 0;
        }
        if ((rc = utf8_cut(p)) != 0)
            return rc;
    }
    if (c < 0xC2 || c > 0xF4) {
        set_bad(p, "invalid UTF-8 at byte %zu of the field", field_pos(p, p->len));
        return put(p, FFFD, sizeof FFFD);
    }
    if ((rc = put1(p, c)) != 0)
        return rc;
    p->u_have = 1;
    p->u_lo = 0x80;
    p->u_hi = 0xBF;
    if (c < 0xE0) {
        p->u_need = 1;
    } else if (c < 0xF0) {
        p->u_need = 2;
        if (c == 0xE0)
            p->u_lo = 0xA0; /* overlong */
        else if (c == 0xED)
            p->u_hi = 0x9F; /* surrogates */
    } else {
        p->u_need = 3;
        if (c == 0xF0)
            p->u_lo = 0x90; /* overlong */
        else if (c == 0xF4)
            p->u_hi = 0x8F; /* past U+10FFFF */
    }
    return 0;
}

/* The length of the complete, valid UTF-8 sequence at s (n bytes available), or 0. */
static inline size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;

    if (c < 0xC2 || c > 0xF4)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
        return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4
                                                                                                : 0;
}

/* The length of the run of plain bytes at s: bytes the stop table lets through and, in UTF-8,
 * complete valid sequences.  Such a run is copied as it is. */
static inline size_t scan(const struct csv_parser *p, const unsigned char *s, size_t n,
                          const unsigned char *stop)
{
    size_t j = 0, k;

    for (;;) {
        while (j < n && !stop[s[j]])
            j++;
        if (j == n || s[j] < 0x80 || p->enc != CSV_UTF8 || (k = utf8_len(s + j, n - j)) == 0)
            return j;
        j += k;
    }
}

/* A byte the fast path stopped at that is data: NUL or >= 0x80. */
static int put_special(struct csv_parser *p, unsigned char c)
{
    const unsigned char *t;

    if (c == 0) {
        set_bad(p, "NUL byte at byte %zu of the field", field_pos(p, p->len));
        return put(p, FFFD, sizeof FFFD);
    }
    if (p->enc == CSV_UTF8)
        return utf8_byte(p, c);
    t = p->hi[c - 0x80];
    if (t[0] == 0) {
        set_bad(p, "byte 0x%02X undefined in Windows-1252 at byte %zu of the field", c,
                field_pos(p, p->len));
        return put(p, FFFD, sizeof FFFD);
    }
    return put(p, t + 1, t[0]);
}

static inline int end_field(struct csv_parser *p)
{
    int rc;

    assert(p->u_need == 0);
    if (p->nf == p->max_fields)
        return fail(p, MD_ETOOBIG, "line %llu: record has more than %zu fields (max_fields)",
                    (unsigned long long)p->rec_line, p->max_fields);
    if (p->nf == p->falloc) {
        size_t a = p->falloc ? p->falloc * 2 : FIELDS_MIN;
        if (a > p->max_fields)
            a = p->max_fields;
        p->f = md_xrealloc(p->f, a * sizeof *p->f);
        p->falloc = a;
    }
    if (p->len + 1 > p->alloc && (rc = grow(p, p->len + 1)) != 0)
        return rc;
    p->f[p->nf].len = p->len - p->fstart;
    p->f[p->nf].quoted = p->fquoted;
    p->buf[p->len++] = '\0';
    p->nf++;
    p->fstart = p->len;
    p->fquoted = false;
    return 0;
}

/* Ends the last field and delivers the record.  eol: it ended with a LF (not at EOF). */
static int emit(struct csv_parser *p, csv_record_cb *cb, void *ctx, bool eol)
{
    struct csv_record rec;
    size_t off = 0;
    int rc;

    if ((rc = end_field(p)) != 0)
        return rc;
    /* Pointers are set only now: buf may have moved while the record grew. */
    for (size_t i = 0; i < p->nf; i++) {
        p->f[i].p = p->buf + off;
        off += p->f[i].len + 1;
    }
    rec.f = p->f;
    rec.n = p->nf;
    rec.line = p->rec_line;
    rec.end_line = p->line;
    rec.bad = p->bad;
    rec.bad_field = p->bad ? p->bad_field : 0;
    if (eol)
        p->line++;
    p->records++;
    if (p->bad)
        p->bad_records++;
    rc = cb(ctx, &rec);
    /* Reset before returning even on a stop, so the parser can go on from the next byte. */
    p->state = ST_REC;
    p->len = p->fstart = p->nf = 0;
    p->bad = NULL;
    return rc;
}

/* The state machine over s[0..n).  *used gets the bytes consumed, which is n unless the
 * callback stopped the feed or a fatal error struck. */
static int parse(struct csv_parser *p, const unsigned char *s, size_t n, csv_record_cb *cb,
                 void *ctx, size_t *used)
{
    size_t i = 0, k;
    int rc = 0;

    while (i < n && rc == 0) {
        unsigned char c = s[i];

        if (p->u_need > 0 && c < 0x80 && (rc = utf8_cut(p)) != 0)
            break;
        switch (p->state) {
        case ST_REC:
            if (c == '\n') { /* a blank line */
                p->line++;
                i++;
                continue;
            }
            p->rec_line = p->line;
            if (c == '\r') {
                p->cr_from = ST_REC;
                p->state = ST_CR;
                i++;
                continue;
            }
            p->state = ST_FIELD;
            /* fall through */
        case ST_FIELD:
            if (c == p->quote) {
                p->state = ST_QUO;
                p->fquoted = true;
                p->quote_line = p->line;
            } else if (c == p->delim) {
                rc = end_field(p);
            } else if (c == '\n') {
                rc = emit(p, cb, ctx, true);
            } else if (c == '\r') {
                p->cr_from = ST_FIELD;
                p->state = ST_CR;
            } else {
                p->state = ST_UNQ;
                continue; /* the field's first byte: read it there */
            }
            i++;
            break;
        case ST_UNQ:
            if (p->u_need == 0 && (k = scan(p, s + i, n - i, p->stop_unq)) > 0) {
                if ((rc = put(p, s + i, k)) != 0)
                    break;
                if ((i += k) == n)
                    break;
                c = s[i];
            }
            i++;
            if (c == p->delim) {
                rc = end_field(p);
                p->state = ST_FIELD;
            } else if (c == '\n') {
                rc = emit(p, cb, ctx, true);
            } else if (c == '\r') {
                p->cr_from = ST_UNQ;
                p->state = ST_CR;
            } else {
                rc = put_special(p, c);
            }
            break;
        case ST_QUO:
            if (p->u_need == 0 && (k = scan(p, s + i, n - i, p->stop_quo)) > 0) {
                if ((rc = put(p, s + i, k)) != 0)
                    break;
                if ((i += k) == n)
                    break;
                c = s[i];
            }
            i++;
            if (c == p->quote) {
                p->state = ST_QQ;
            } else if (c == '\n') {
                rc = put1(p, c);
                p->line++;
            } else {
                rc = put_special(p, c);
            }
            break;
        case ST_QQ:
            if (c == p->quote) { /* "" */
                p->state = ST_QUO;
                rc = put1(p, c);
            } else if (c == p->delim) {
                rc = end_field(p);
                p->state = ST_FIELD;
            } else if (c == '\n') {
                rc = emit(p, cb, ctx, true);
            } else if (c == '\r') {
                p->cr_from = ST_QQ;
                p->state = ST_CR;
            } else {
                set_bad(p, "text after a closing quote");
                p->state = ST_UNQ;
                continue; /* keep it as data */
            }
            i++;
            break;
        case ST_CR:
            if (c == '\n') {
                i++;
                if (p->cr_from == ST_REC) { /* a blank line, CR LF */
                    p->line++;
                    p->state = ST_REC;
                } else {
                    rc = emit(p, cb, ctx, true);
                }
                break;
            }
            /* A lone CR: data, starting or continuing an unquoted field; c is read there. */
            if (p->cr_from == ST_QQ)
                set_bad(p, "text after a closing quote");
            p->state = ST_UNQ;
            rc = put1(p, '\r');
            break;
        }
    }
    *used = i;
    return rc;
}

int csv_init(struct csv_parser *p, const struct csv_opts *o)
{
    static const struct csv_opts dflt = {0};
    unsigned char d, q;

    memset(p, 0, sizeof *p);
    if (o == NULL)
        o = &dflt;
    p->line = p->rec_line = p->quote_line = 1;
    p->delim = d = (unsigned char)(o->delim ? o->delim : ',');
    p->quote = q = (unsigned char)(o->quote ? o->quote : '"');
    p->enc = o->encoding;
    p->max_record = o->max_record ? o->max_record : CSV_MAX_RECORD_DEFAULT;
    p->max_fields = o->max_fields ? o->max_fields : CSV_MAX_FIELDS_DEFAULT;
    p->bom = p->enc == CSV_UTF8 ? 0 : -1;
    p->state = ST_REC;
    if (d >= 0x80 || q >= 0x80 || d == q || d == '\r' || d == '\n' || q == '\r' || q == '\n')
        return fail(p, -EINVAL,
                    "delimiter and quote must be two different ASCII characters, not CR or LF");
    if (p->enc != CSV_UTF8 && p->enc != CSV_LATIN1 && p->enc != CSV_CP1252)
        return fail(p, -EINVAL, "unknown encoding %d", (int)p->enc);

    for (unsigned c = 0x80; c < 0x100; c++)
        p->stop_unq[c] = p->stop_quo[c] = 1;
    p->stop_unq[0] = p->stop_unq['\n'] = p->stop_unq['\r'] = p->stop_unq[d] = 1;
    p->stop_quo[0] = p->stop_quo['\n'] = p->stop_quo[q] = 1;

    for (unsigned c = 0x80; c < 0x100; c++) {
        unsigned cp = c;
        unsigned char *t = p->hi[c - 0x80];
        if (p->enc == CSV_CP1252 && c < 0xA0)
            cp = CP1252[c - 0x80];
        if (cp == 0) {
            t[0] = 0; /* undefined */
        } else if (cp < 0x800) {
            t[0] = 2;
            t[1] = (unsigned char)(0xC0 | cp >> 6);
            t[2] = (unsigned char)(0x80 | (cp & 0x3F));
        } else {
            t[0] = 3;
            t[1] = (unsigned char)(0xE0 | cp >> 12);
            t[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
            t[3] = (unsigned char)(0x80 | (cp & 0x3F));
        }
    }
    return 0;
}

void csv_cleanup(struct csv_parser *p)
{
    md_free(p->buf);
    md_free(p->f);
    p->buf = NULL;
    p->f = NULL;
    p->len = p->alloc = p->nf = p->falloc = p->fstart = 0;
}

/* The BOM prefix matched so far turned out not to be a BOM: parse those bytes as data.  They
 * cannot end a record, so the callback is never reached. */
static int bom_replay(struct csv_parser *p, csv_record_cb *cb, void *ctx)
{
    size_t k = (size_t)p->bom, used;

    p->bom = -1;
    return parse(p, BOM, k, cb, ctx, &used);
}

int csv_feed(struct csv_parser *p, const void *data, size_t n, csv_record_cb *cb, void *ctx)
{
    const unsigned char *s = data;
    size_t skip = 0, used = 0;
    int rc;

    if (p->err)
        return p->err;
    assert(!p->finished);
    if (n == 0) /* data may be NULL */
        return 0;
    if (p->bom >= 0) {
        while (skip < n && p->bom < 3 && s[skip] == BOM[p->bom]) {
            skip++;
            p->bom++;
        }
        if (p->bom == 3) {
            p->bom = -1;
        } else if (skip == n) {
            p->bytes += n;
            return 0;
        } else if ((rc = bom_replay(p, cb, ctx)) != 0) {
            p->bytes += skip;
            return rc;
        }
    }
    rc = parse(p, s + skip, n - skip, cb, ctx, &used);
    p->bytes += skip + used;
    return rc;
}

int csv_finish(struct csv_parser *p, csv_record_cb *cb, void *ctx)
{
    int rc;

    if (p->err)
        return p->err;
    assert(!p->finished);
    p->finished = true;
    if (p->bom > 0 && (rc = bom_replay(p, cb, ctx)) != 0)
        return rc;
    if (p->u_need > 0 && (rc = utf8_cut(p)) != 0)
        return rc;
    switch (p->state) {
    case ST_REC:
        return 0;
    case ST_CR: /* "\r" at EOF is taken for a CR LF cut short */
        if (p->cr_from == ST_REC)
            return 0;
        break;
    case ST_QUO:
        return fail(p, MD_EPARSE, "line %llu: unterminated quoted field (EOF)",
                    (unsigned long long)p->quote_line);
    default:
        break;
    }
    return emit(p, cb, ctx, false);
}

const char *csv_error(const struct csv_parser *p)
{
    return p->errmsg;
}
