/* value.c - the pure parts of load.c: COPY text escaping, the checks of a field against its
 * column's type, and the per-record bits and line map.  Tested by tests/unit/test_scrape_value.c.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "meshd/md_alloc.h"
#include "value.h"

/* Appends s (n bytes) escaped for COPY text format. */
void copy_escape(struct md_buf *b, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *esc;
        switch (s[i]) {
        case '\\':
            esc = "\\\\";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        default:
            continue;
        }
        val_put(b, s + from, i - from);
        val_put(b, esc, 2);
        from = i + 1;
    }
    val_put(b, s + from, n - from);
}

/* ---- record bits and lines ---------------------------------------------------------------- */

void bits_set(struct bits *b, uint64_t i)
{
    size_t wi = (size_t)(i / 64);
    if (wi >= b->nw) {
        size_t nw = b->nw != 0 ? b->nw : 1024;
        while (nw <= wi)
            nw *= 2;
        b->w = md_xrealloc(b->w, nw * sizeof *b->w);
        memset(b->w + b->nw, 0, (nw - b->nw) * sizeof *b->w);
        b->nw = nw;
    }
    b->w[wi] |= (uint64_t)1 << (i % 64);
}

bool bits_get(const struct bits *b, uint64_t i)
{
    size_t wi = (size_t)(i / 64);
    return wi < b->nw && (b->w[wi] >> (i % 64) & 1u) != 0;
}

void bits_clear(struct bits *b)
{
    if (b->w != NULL)
        memset(b->w, 0, b->nw * sizeof *b->w);
}

/* The n-th (1-based) set bit's index, or 0. */
uint64_t bits_nth(const struct bits *b, uint64_t n)
{
    for (size_t wi = 0; wi < b->nw; wi++) {
        uint64_t c = (uint64_t)__builtin_popcountll(b->w[wi]);
        if (n > c) {
            n -= c;
            continue;
        }
        for (unsigned i = 0; i < 64; i++)
            if ((b->w[wi] >> i & 1u) != 0 && --n == 0)
                return wi * 64 + i;
    }
    return 0;
}

void linemap_note(struct linemap *m, uint64_t rec, uint64_t line)
{
    if (m->n == m->alloc) {
        m->alloc = m->alloc != 0 ? m->alloc * 2 : 16;
        m->rec = md_xrealloc(m->rec, m->alloc * sizeof *m->rec);
        m->line = md_xrealloc(m->line, m->alloc * sizeof *m->line);
    }
    m->rec[m->n] = rec;
    m->line[m->n++] = line;
}

uint64_t linemap_line(const struct linemap *m, uint64_t rec)
{
    size_t lo = 0, hi = m->n; /* the last checkpoint at or before rec */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (m->rec[mid] <= rec)
            lo = mid;
        else
            hi = mid;
    }
    return m->n == 0 ? rec + 1 : m->line[lo] + (rec - m->rec[lo]);
}

/* ---- values ------------------------------------------------------------------------------- */

/* Canonical text of an integer ("+011" -> "11") into buf (>= 24 bytes); false when s is not
 * an integer of type t. */
bool val_int_canon(const char *s, size_t n, enum ctype t, char *buf, size_t cap)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    if (i == n)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    uint64_t lim = t == CT_INT2 ? 32767u : t == CT_INT4 ? 2147483647u : (uint64_t)INT64_MAX;
    if (v > lim + (neg ? 1u : 0u))
        return false;
    if (v == 0)
        neg = false;
    /* by hand: snprintf here was a tenth of a load's time (most NAL columns are numbers) */
    char d[24];
    size_t nd = 0, o = 0;
    do
        d[nd++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    if (nd + (neg ? 1u : 0u) + 1 > cap)
        return false;
    if (neg)
        buf[o++] = '-';
    while (nd > 0)
        buf[o++] = d[--nd];
    buf[o] = '\0';
    return true;
}

bool val_num_ok(const char *s, size_t n, bool is_float)
{
    size_t i = 0, d = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    while (n > i && isspace((unsigned char)s[n - 1]))
        n--;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    const char *w = s + i;
    size_t wl = n - i;
    if ((wl == 3 && strncasecmp(w, "nan", 3) == 0) ||
        (wl == 8 && strncasecmp(w, "infinity", 8) == 0) ||
        (is_float && wl == 3 && strncasecmp(w, "inf", 3) == 0))
        return true;
    for (; i < n && isdigit((unsigned char)s[i]); i++)
        d++;
    if (i < n && s[i] == '.')
        for (i++; i < n && isdigit((unsigned char)s[i]); i++)
            d++;
    if (d == 0)
        return false;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        for (; i < n && isdigit((unsigned char)s[i]); i++)
            e++;
        if (e == 0)
            return false;
    }
    return i == n;
}

bool val_bool_ok(const char *s, size_t n)
{
    static const char *const words[] = {"t",   "f",  "true", "false", "y", "n",
                                        "yes", "no", "on",   "off",   "1", "0"};
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    for (size_t i = 0; i < MD_ARRAY_SIZE(words); i++)
        if (strlen(words[i]) == n && strncasecmp(words[i], s, n) == 0)
            return true;
    return false;
}

size_t val_utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

bool val_is_int(enum ctype t)
{
    return t == CT_INT2 || t == CT_INT4 || t == CT_INT8;
}

const char *val_type_name(enum ctype t)
{
    switch (t) {
    case CT_INT2:
        return "smallint";
    case CT_INT4:
        return "integer";
    case CT_INT8:
        return "bigint";
    case CT_NUM:
        return "numeric";
    case CT_FLOAT:
        return "a floating-point number";
    case CT_BOOL:
        return "boolean";
    default:
        return "text";
    }
}

void val_put_i64(struct md_buf *b, int64_t v)
{
    char d[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do
        d[sizeof d - ++n] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        d[sizeof d - ++n] = '-';
    val_put(b, d + sizeof d - n, n);
}
