/* digest_render.c - the digest's model (digest_internal.h) as plain text, HTML and Markdown.
 *
 * Pure: no clock, no I/O, no registry.  Each section is written once, through a small emitter
 * (headings, paragraphs, tables) that writes the three documents side by side, each escaping in
 * its own way:
 *   text      one line per paragraph, tables in aligned columns (widths in code points), ASCII
 *             decoration only; data cleaned of control characters (rpt_dg_clean)
 *   HTML      a whole document with inline styles (e-mail clients drop <style>), every piece of
 *             data through rpt_dg_html_escape
 *   Markdown  GitHub tables, every piece of data through rpt_dg_md_escape ('|' never splits a
 *             cell, nothing the data holds turns into markup)
 * Cells are cut to their column's width ("...") and lists to the digest's top, with an "and N
 * more" line, so the size of the digest does not grow with the registry.
 */
#include "digest_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"

/* A document's hard cap: far above what the caps on the lists make (tens of KiB). */
#define DOC_MAX (4u << 20)
#define MAX_COLS 12
#define SUMMARY_MAX (1u << 20)
#define HOUR_MS                                                                                    \
    ((int64_t)3600000) /* meshd stores at most 16 KiB; anything bigger is not a summary */

/* Cells of at most this many code points. */
#define W_NAME 40
#define W_KEY 60
#define W_WHY 120
#define W_SHORT 16

/* ---- the kinds ------------------------------------------------------------------------------ */

const char *const rpt_dg_kind_names[DG_NKINDS] = {"command", "scrape", "validate", "remediate",
                                                  "refresh"};

static const char *const scrape_counts[] = {"files",    "loaded",  "unchanged", "failed",   "rows",
                                            "inserted", "updated", "deleted",   "rejected", NULL};
static const char *const validate_counts[] = {"results", "pass",  "warn", "fail",
                                              "refused", "error", NULL};
static const char *const remediate_counts[] = {"planned", "applied", "refused", "stale",
                                               "failed",  "rerun",   "undone",  NULL};
static const char *const refresh_counts[] = {"refreshed", "skipped", "failed", NULL};
static const char *const no_counts[] = {NULL};

const char *const *const rpt_dg_kind_counts[DG_NKINDS] = {no_counts, scrape_counts, validate_counts,
                                                          remediate_counts, refresh_counts};

enum rpt_dg_kind rpt_dg_kind_of(const char *name)
{
    for (int k = 1; name != NULL && k < DG_NKINDS; k++)
        if (strcmp(name, rpt_dg_kind_names[k]) == 0)
            return (enum rpt_dg_kind)k;
    return DG_COMMAND;
}

/* The index of count name in kind k's list, or -1. */
static int count_idx(enum rpt_dg_kind k, const char *name)
{
    for (int i = 0; rpt_dg_kind_counts[k][i] != NULL; i++)
        if (strcmp(rpt_dg_kind_counts[k][i], name) == 0)
            return i;
    return -1;
}

static int64_t wsum(const struct rpt_dg_work *w, const char *name)
{
    int i = count_idx(w->kind, name);
    return i < 0 ? 0 : w->sum[i];
}

static int64_t wlast(const struct rpt_dg_work *w, const char *name)
{
    int i = count_idx(w->kind, name);
    return i < 0 ? -1 : w->last[i];
}

/* ---- text pieces ---------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one (overlongs,
 * surrogates and code points past U+10FFFF included). */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

char *rpt_dg_clean(const char *s, size_t max)
{
    struct md_buf b;
    size_t cps = 0, keep_len = 0, keep_cps = 0;
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    bool cut = false;

    md_buf_init(&b, DOC_MAX);
    /* Leading white space is dropped, runs of it folded into one space. */
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    while (*p != '\0') {
        size_t n = utf8_len(p);
        char one = 0;
        if (n == 0)
            one = '?', n = 1;
        else if (n == 1 && (*p < 0x20 || *p == 0x7f))
            one = ' ';
        else if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0)
            one = ' '; /* C1 controls (U+0080..U+009F) */
        if (one == ' ' && b.len > 0 && b.p[b.len - 1] == ' ') {
            p += n;
            continue;
        }
        if (max > 0 && cps == max) {
            cut = true;
            break;
        }
        /* Where a cut leaves room for "...": three code points back from the limit. */
        if (max > 3 && cps == max - 3)
            keep_len = b.len, keep_cps = cps;
        if (one != 0)
            md_buf_put(&b, &one, 1);
        else
            md_buf_put(&b, p, n);
        cps++;
        p += n;
    }
    if (cut) {
        if (max > 3) {
            b.len = keep_len;
            cps = keep_cps;
        } else {
            b.len = 0;
        }
        while (b.len > 0 && b.p[b.len - 1] == ' ')
            b.len--;
        if (b.p != NULL)
            b.p[b.len] = '\0';
        md_buf_put(&b, "...", max > 3 ? 3 : max);
    }
    while (b.len > 0 && b.p[b.len - 1] == ' ')
        b.p[--b.len] = '\0';
    char *out = md_buf_take(&b);
    return out != NULL ? out : md_xstrdup("");
}

size_t rpt_dg_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

char *rpt_dg_html_escape(const char *s)
{
    struct md_buf b;

    md_buf_init(&b, DOC_MAX);
    for (const char *p = s != NULL ? s : ""; *p != '\0'; p++) {
        switch (*p) {
        case '&':
            md_buf_puts(&b, "&amp;");
            break;
        case '<':
            md_buf_puts(&b, "&lt;");
            break;
        case '>':
            md_buf_puts(&b, "&gt;");
            break;
        case '"':
            md_buf_puts(&b, "&quot;");
            break;
        case '\'':
            md_buf_puts(&b, "&#39;");
            break;
        default:
            md_buf_put(&b, p, 1);
        }
    }
    char *out = md_buf_take(&b);
    return out != NULL ? out : md_xstrdup("");
}

char *rpt_dg_md_escape(const char *s)
{
    struct md_buf b;

    md_buf_init(&b, DOC_MAX);
    for (const char *p = s != NULL ? s : ""; *p != '\0'; p++) {
        if (strchr("\\`*_[]<>|#~&", *p) != NULL)
            md_buf_put(&b, "\\", 1);
        md_buf_put(&b, p, 1);
    }
    char *out = md_buf_take(&b);
    return out != NULL ? out : md_xstrdup("");
}

void rpt_dg_fmt_count(int64_t n, char *buf, size_t cap)
{
    char digits[32];
    uint64_t u = n < 0 ? (uint64_t)0 - (uint64_t)n : (uint64_t)n;
    int len = snprintf(digits, sizeof digits, "%" PRIu64, u);
    size_t o = 0;

    if (cap == 0)
        return;
    if (n < 0 && o + 1 < cap)
        buf[o++] = '-';
    for (int i = 0; i < len && o + 1 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < cap)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

void rpt_dg_fmt_duration(int64_t ms, char *buf, size_t cap)
{
    if (ms < 0)
        snprintf(buf, cap, "-");
    else if (ms < 1000)
        snprintf(buf, cap, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, cap, "%" PRId64 ".%" PRId64 "s", ms / 1000, ms % 1000 / 100);
    else if (ms < 3600000)
        snprintf(buf, cap, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, cap, "%" PRId64 "h%02" PRId64 "m", ms / 3600000, ms / 60000 % 60);
    else
        snprintf(buf, cap, "%" PRId64 "d%02" PRId64 "h", ms / 86400000, ms / 3600000 % 24);
}

void rpt_dg_fmt_time(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms <= 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(buf, cap, "-");
        return;
    }
    snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min);
}

static const char *plural(int64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* A count as "1,204" into a small rotating set of buffers, for use inside one printf. */
static const char *cnt(int64_t n)
{
    static char bufs[16][32];
    static unsigned i;
    char *b = bufs[i++ % 16];
    rpt_dg_fmt_count(n, b, 32);
    return b;
}

static const char *dur(int64_t ms)
{
    static char bufs[8][32];
    static unsigned i;
    char *b = bufs[i++ % 8];
    rpt_dg_fmt_duration(ms, b, 32);
    return b;
}

static const char *when(int64_t ms)
{
    static char bufs[8][32];
    static unsigned i;
    char *b = bufs[i++ % 8];
    rpt_dg_fmt_time(ms, b, 32);
    return b;
}

/* A URL for an href: bytes outside the URL characters (and the ones Markdown or HTML give a
 * meaning to: space, quotes, parentheses, angle brackets, backslash) percent-encoded. */
static void put_url(struct md_buf *b, const char *s)
{
    static const char ok[] = "-._~:/?#[]@!$&*+,;=%";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr(ok, *p) != NULL)
            md_buf_put(b, p, 1);
        else
            md_buf_printf(b, "%%%02X", *p);
    }
}

/* The status page's link for a job: external_url#job=<job> (as send.h's generatorURL). */
static char *job_href(const char *ext, const char *job)
{
    struct md_buf b;

    if (ext == NULL || ext[0] == '\0')
        return NULL;
    md_buf_init(&b, 4096);
    put_url(&b, ext);
    md_buf_puts(&b, "#job=");
    for (const unsigned char *p = (const unsigned char *)job; *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_')
            md_buf_put(&b, p, 1);
        else
            md_buf_printf(&b, "%%%02X", *p);
    }
    return md_buf_take(&b);
}

/* ---- the emitter ---------------------------------------------------------------------------- */

struct col {
    const char *head;
    bool right;
    size_t max; /* code points; 0: no limit */
};

struct cell {
    char *s;    /* cleaned, cut */
    char *href; /* NULL: no link */
    bool bad;   /* shown in red (HTML), bold (Markdown) */
};

struct em {
    struct md_buf t, h, m;
    struct col cols[MAX_COLS];
    size_t ncol;
    struct cell *cells;
    size_t ncell, capcell;
};

static void em_init(struct em *e)
{
    memset(e, 0, sizeof *e);
    md_buf_init(&e->t, DOC_MAX);
    md_buf_init(&e->h, DOC_MAX);
    md_buf_init(&e->m, DOC_MAX);
}

static void put_html(struct md_buf *b, const char *s)
{
    char *x = rpt_dg_html_escape(s);
    md_buf_puts(b, x);
    md_free(x);
}

static void put_md(struct md_buf *b, const char *s)
{
    char *x = rpt_dg_md_escape(s);
    md_buf_puts(b, x);
    md_free(x);
}

/* A section heading. */
static void em_h2(struct em *e, const char *title)
{
    size_t w = rpt_dg_width(title);

    md_buf_printf(&e->t, "\n%s\n", title);
    for (size_t i = 0; i < w; i++)
        md_buf_put(&e->t, "-", 1);
    md_buf_put(&e->t, "\n", 1);
    md_buf_puts(&e->h, "<h2 style=\"font-size:16px;margin:18px 0 6px\">");
    put_html(&e->h, title);
    md_buf_puts(&e->h, "</h2>\n");
    md_buf_puts(&e->m, "## ");
    put_md(&e->m, title);
    md_buf_puts(&e->m, "\n\n");
}

/* One paragraph: text made of our words and cleaned data (every formatted argument that comes
 * from the registry went through rpt_dg_clean, or is a number). */
static void em_para(struct em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void em_para(struct em *e, const char *fmt, ...)
{
    va_list ap;
    char *raw, *line;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    raw = md_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(raw, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    line = rpt_dg_clean(raw, 0);
    md_buf_printf(&e->t, "%s\n", line);
    md_buf_puts(&e->h, "<p style=\"margin:4px 0\">");
    put_html(&e->h, line);
    md_buf_puts(&e->h, "</p>\n");
    put_md(&e->m, line);
    md_buf_puts(&e->m, "\n\n");
    md_free(line);
    md_free(raw);
}

/* A table: em_table(e, cols, n), then cells row by row (em_cell ...), then em_table_end. */
static void em_table(struct em *e, const struct col *cols, size_t n)
{
    if (n > MAX_COLS)
        n = MAX_COLS;
    memcpy(e->cols, cols, n * sizeof *cols);
    e->ncol = n;
    e->ncell = 0;
}

static void em_cell_ex(struct em *e, const char *s, char *href_take, bool bad)
{
    if (e->ncell == e->capcell) {
        e->capcell = e->capcell ? e->capcell * 2 : 64;
        e->cells = md_xrealloc(e->cells, e->capcell * sizeof *e->cells);
    }
    struct cell *c = &e->cells[e->ncell];
    c->s = rpt_dg_clean(s, e->cols[e->ncell % e->ncol].max);
    c->href = href_take;
    c->bad = bad;
    e->ncell++;
}

static void em_cell(struct em *e, const char *s)
{
    em_cell_ex(e, s, NULL, false);
}

static void em_cellf(struct em *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void em_cellf(struct em *e, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    em_cell(e, buf);
}

static void pad(struct md_buf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        md_buf_put(b, " ", 1);
}

static void em_table_end(struct em *e)
{
    size_t nc = e->ncol, nr = nc ? e->ncell / nc : 0;
    size_t w[MAX_COLS];

    /* text: widths in code points, the last column left-aligned is not padded */
    for (size_t c = 0; c < nc; c++) {
        w[c] = rpt_dg_width(e->cols[c].head);
        for (size_t r = 0; r < nr; r++) {
            size_t x = rpt_dg_width(e->cells[r * nc + c].s);
            if (x > w[c])
                w[c] = x;
        }
    }
    for (size_t r = 0; r <= nr + 1; r++) {
        for (size_t c = 0; c < nc; c++) {
            const char *s = r == 0 ? e->cols[c].head : r == 1 ? NULL : e->cells[(r - 2) * nc + c].s;
            size_t sw = s != NULL ? rpt_dg_width(s) : w[c];
            bool last = c + 1 == nc;
            if (c > 0)
                md_buf_puts(&e->t, "  ");
            if (s == NULL) {
                for (size_t i = 0; i < w[c]; i++)
                    md_buf_put(&e->t, "-", 1);
                continue;
            }
            if (e->cols[c].right)
                pad(&e->t, w[c] - sw);
            md_buf_puts(&e->t, s);
            if (!e->cols[c].right && !last)
                pad(&e->t, w[c] - sw);
        }
        /* no trailing blanks: an empty last cell leaves them */
        while (e->t.len > 0 && e->t.p[e->t.len - 1] == ' ')
            e->t.p[--e->t.len] = '\0';
        md_buf_put(&e->t, "\n", 1);
    }

    /* HTML: attributes rather than a style per cell (e-mail clients drop <style>, and a
     * style on every cell made the document ten times the text's size) */
    md_buf_puts(&e->h, "<table cellspacing=\"0\" cellpadding=\"3\" style=\"border-collapse:"
                       "collapse;margin:4px 0 8px\">\n<tr>");
    for (size_t c = 0; c < nc; c++) {
        md_buf_printf(&e->h, "<th align=\"%s\" style=\"border-bottom:2px solid #999\">",
                      e->cols[c].right ? "right" : "left");
        put_html(&e->h, e->cols[c].head);
        md_buf_puts(&e->h, "</th>");
    }
    md_buf_puts(&e->h, "</tr>\n");
    for (size_t r = 0; r < nr; r++) {
        md_buf_puts(&e->h, "<tr valign=\"top\" style=\"border-bottom:1px solid #e0e0e0\">");
        for (size_t c = 0; c < nc; c++) {
            const struct cell *x = &e->cells[r * nc + c];
            md_buf_printf(&e->h, "<td%s%s>", e->cols[c].right ? " align=\"right\"" : "",
                          x->bad ? " style=\"color:#b00020\"" : "");
            if (x->href != NULL) {
                md_buf_puts(&e->h, "<a href=\"");
                put_html(&e->h, x->href);
                md_buf_puts(&e->h, "\">");
            }
            put_html(&e->h, x->s);
            if (x->href != NULL)
                md_buf_puts(&e->h, "</a>");
            md_buf_puts(&e->h, "</td>");
        }
        md_buf_puts(&e->h, "</tr>\n");
    }
    md_buf_puts(&e->h, "</table>\n");

    /* Markdown */
    md_buf_puts(&e->m, "|");
    for (size_t c = 0; c < nc; c++) {
        md_buf_puts(&e->m, " ");
        put_md(&e->m, e->cols[c].head);
        md_buf_puts(&e->m, " |");
    }
    md_buf_puts(&e->m, "\n|");
    for (size_t c = 0; c < nc; c++)
        md_buf_puts(&e->m, e->cols[c].right ? " ---: |" : " --- |");
    md_buf_puts(&e->m, "\n");
    for (size_t r = 0; r < nr; r++) {
        md_buf_puts(&e->m, "|");
        for (size_t c = 0; c < nc; c++) {
            const struct cell *x = &e->cells[r * nc + c];
            md_buf_puts(&e->m, " ");
            if (x->bad && x->s[0] != '\0')
                md_buf_puts(&e->m, "**");
            if (x->href != NULL)
                md_buf_puts(&e->m, "[");
            put_md(&e->m, x->s);
            if (x->href != NULL) {
                md_buf_puts(&e->m, "](");
                md_buf_puts(&e->m, x->href); /* put_url made it safe in a link destination */
                md_buf_puts(&e->m, ")");
            }
            if (x->bad && x->s[0] != '\0')
                md_buf_puts(&e->m, "**");
            md_buf_puts(&e->m, " |");
        }
        md_buf_puts(&e->m, "\n");
    }
    md_buf_puts(&e->m, "\n");

    for (size_t i = 0; i < e->ncell; i++) {
        md_free(e->cells[i].s);
        md_free(e->cells[i].href);
    }
    e->ncell = 0;
}

/* "and 37 more <what>" after a list cut at top. */
static void em_more(struct em *e, int64_t more, const char *one, const char *many)
{
    if (more > 0)
        em_para(e, "and %s more %s", cnt(more), plural(more, one, many));
}

static void em_free(struct em *e)
{
    md_buf_free(&e->t);
    md_buf_free(&e->h);
    md_buf_free(&e->m);
    for (size_t i = 0; i < e->ncell; i++) {
        md_free(e->cells[i].s);
        md_free(e->cells[i].href);
    }
    md_free(e->cells);
}

/* ---- summaries ------------------------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jnum(const cJSON *o, const char *k, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    *out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
    return true;
}

static cJSON *parse_summary(const char *summary)
{
    if (summary == NULL || strlen(summary) > SUMMARY_MAX)
        return NULL;
    cJSON *o = cJSON_Parse(summary);
    if (o != NULL && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static int outcome_rank(const char *o)
{
    static const char *const order[] = {"fail", "error", "warn", "refused"};
    for (int i = 0; o != NULL && i < 4; i++)
        if (strcmp(o, order[i]) == 0)
            return i;
    return 4;
}

/* A number as the summary has it: whole numbers without a fraction. */
static void num_text(const cJSON *v, char *buf, size_t cap)
{
    if (!cJSON_IsNumber(v))
        snprintf(buf, cap, "null");
    else if (v->valuedouble > -9e15 && v->valuedouble < 9e15 &&
             v->valuedouble == (double)(int64_t)v->valuedouble)
        snprintf(buf, cap, "%" PRId64, (int64_t)v->valuedouble);
    else
        snprintf(buf, cap, "%.6g", v->valuedouble);
}

static void item_add(struct rpt_dg_work *w, size_t max, const char *what, const char *outcome,
                     const char *text, int64_t rows)
{
    w->items_total++;
    if (w->nitems >= max)
        return;
    w->items = md_xrealloc(w->items, (w->nitems + 1) * sizeof *w->items);
    struct rpt_dg_item *it = &w->items[w->nitems++];
    memset(it, 0, sizeof *it);
    it->what = md_xstrdup(what != NULL ? what : "");
    it->outcome = md_xstrdup(outcome != NULL ? outcome : "");
    it->text = text != NULL ? md_xstrdup(text) : NULL;
    it->rows = rows;
    it->at_ms = w->last_ms;
}

static void items_clear(struct rpt_dg_work *w)
{
    for (size_t i = 0; i < w->nitems; i++) {
        md_free(w->items[i].job);
        md_free(w->items[i].what);
        md_free(w->items[i].outcome);
        md_free(w->items[i].text);
    }
    md_free(w->items);
    w->items = NULL;
    w->nitems = 0;
    w->items_total = 0;
}

/* validate: the failing[] entries that did not pass, fail first, then error, warn, refused. */
static void validate_items(struct rpt_dg_work *w, const cJSON *o, size_t max)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "failing"), *it;
    for (int rank = 0; rank <= 4; rank++) {
        cJSON_ArrayForEach(it, a)
        {
            const char *outcome = jstr(it, "outcome");
            if (outcome_rank(outcome) != rank || (outcome != NULL && strcmp(outcome, "pass") == 0))
                continue;
            const char *text = jstr(it, "text");
            char buf[64];
            if (text == NULL) {
                char v[40];
                num_text(cJSON_GetObjectItemCaseSensitive(it, "value"), v, sizeof v);
                snprintf(buf, sizeof buf, "value %s", v);
                text = buf;
            }
            item_add(w, max, jstr(it, "key"), outcome, text, -1);
        }
    }
}

static bool bad_outcome(const char *o)
{
    return o != NULL &&
           (strcmp(o, "failed") == 0 || strcmp(o, "rejected") == 0 || strcmp(o, "refused") == 0);
}

/* scrape: the files that failed, were rejected or refused. */
static void scrape_items(struct rpt_dg_work *w, const cJSON *o, size_t max)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "items"))
    {
        const char *outcome = jstr(it, "outcome"), *src = jstr(it, "source"),
                   *file = jstr(it, "file");
        if (!bad_outcome(outcome))
            continue;
        char what[256];
        snprintf(what, sizeof what, "%s%s%s", src != NULL ? src : "?", file != NULL ? "/" : "",
                 file != NULL ? file : "");
        item_add(w, max, what, outcome, jstr(it, "error"), -1);
    }
}

/* refresh: the views, indexes and vacuums that failed. */
static void refresh_items(struct rpt_dg_work *w, const cJSON *o, size_t max)
{
    static const char *const lists[][2] = {
        {"views", "view"}, {"indexes", "index"}, {"vacuum", "table"}};
    for (size_t l = 0; l < 3; l++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, lists[l][0]))
        {
            const char *outcome = jstr(it, "outcome");
            if (outcome == NULL || strcmp(outcome, "failed") != 0)
                continue;
            item_add(w, max, jstr(it, lists[l][1]), outcome, jstr(it, "error"), -1);
        }
    }
}

void rpt_dg_work_from_summary(struct rpt_dg_work *w, const char *summary, size_t max)
{
    cJSON *o = parse_summary(summary);
    const char *const *names = rpt_dg_kind_counts[w->kind];

    items_clear(w);
    for (int i = 0; i < RPT_DG_MAX_COUNTS; i++)
        w->last[i] = -1;
    if (o == NULL)
        return;
    for (int i = 0; names[i] != NULL; i++)
        if (!jnum(o, names[i], &w->last[i]))
            w->last[i] = -1;
    const char *suite = jstr(o, "suite");
    if (suite != NULL) {
        md_free(w->suite);
        w->suite = md_xstrdup(suite);
    }
    switch (w->kind) {
    case DG_VALIDATE:
        validate_items(w, o, max);
        break;
    case DG_SCRAPE:
        scrape_items(w, o, max);
        break;
    case DG_REFRESH:
        refresh_items(w, o, max);
        break;
    default:
        break;
    }
    cJSON_Delete(o);
}

/* The first failure a summary names, as one line; NULL when it names none. */
static char *summary_why(const char *summary)
{
    cJSON *o = parse_summary(summary);
    struct rpt_dg_work w = {0};
    char *out = NULL;
    int64_t n, files;

    if (o == NULL)
        return NULL;
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "failing"))) {
        w.kind = DG_VALIDATE;
        validate_items(&w, o, 1);
        int64_t fail = 0, error = 0;
        (void)jnum(o, "fail", &fail);
        (void)jnum(o, "error", &error);
        if (w.nitems > 0)
            out = md_xasprintf("%" PRId64 " check(s) failed, %" PRId64 " could not run: %s: %s",
                               fail, error, w.items[0].what, w.items[0].text);
    } else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "items")) &&
               jnum(o, "files", &files)) {
        w.kind = DG_SCRAPE;
        scrape_items(&w, o, 1);
        if (w.nitems > 0)
            out = md_xasprintf("%" PRId64 " of %" PRId64 " file(s) failed: %s: %s", w.items_total,
                               files, w.items[0].what,
                               w.items[0].text != NULL ? w.items[0].text : w.items[0].outcome);
    } else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "views"))) {
        w.kind = DG_REFRESH;
        refresh_items(&w, o, 1);
        if (w.nitems > 0)
            out = md_xasprintf("%" PRId64 " item(s) failed: %s: %s", w.items_total, w.items[0].what,
                               w.items[0].text != NULL ? w.items[0].text : "failed");
    } else if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(o, "fixes"))) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, "fixes"))
        {
            const char *oc = jstr(it, "outcome");
            if (oc != NULL && (strcmp(oc, "refused") == 0 || strcmp(oc, "stale") == 0 ||
                               strcmp(oc, "failed") == 0)) {
                const char *why = jstr(it, "why");
                out = md_xasprintf("fix %s %s%s%s", jstr(it, "fix") ? jstr(it, "fix") : "?", oc,
                                   why ? ": " : "", why ? why : "");
                break;
            }
        }
    }
    if (out == NULL && jstr(o, "error") != NULL)
        out = md_xstrdup(jstr(o, "error"));
    if (out == NULL && jnum(o, "failed", &n) && n > 0)
        out = md_xasprintf("%" PRId64 " failed", n);
    items_clear(&w);
    cJSON_Delete(o);
    return out;
}

char *rpt_dg_run_why(const char *reason, const char *summary, const char *output)
{
    char *s = summary_why(summary);
    bool has_reason = reason != NULL && reason[0] != '\0';

    if (has_reason && s != NULL) {
        char *both = md_xasprintf("%s; %s", reason, s);
        md_free(s);
        return both;
    }
    if (has_reason)
        return md_xstrdup(reason);
    if (s != NULL)
        return s;
    /* The last line with something on it (the tail's first line may be cut: that is fine). */
    if (output == NULL)
        return NULL;
    const char *end = output + strlen(output);
    while (end > output && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > output && start[-1] != '\n')
        start--;
    return end > start ? md_xstrndup(start, (size_t)(end - start)) : NULL;
}

/* ---- the verdict ---------------------------------------------------------------------------- */

/* A job that had trouble in the window and no success in it. */
static bool no_success(const struct rpt_dg_job *j)
{
    return j->c.ok == 0 && j->c.failed + j->c.lost + j->c.missed > 0;
}

static bool is_fatal(const struct rpt_dg_job *j)
{
    return j->state != NULL && strcmp(j->state, "fatal") == 0;
}

/* Due in the window (10 minutes of grace at its end) and nothing recorded: the node that
 * should have run it was not there to say. */
static bool overdue(const struct rpt_dg *d, const struct rpt_dg_job *j)
{
    return j->next_run_ms >= d->since_ms && j->next_run_ms < d->until_ms - 10 * 60000 &&
           j->c.runs + j->c.missed + j->c.skipped == 0;
}

/* A node that is not down and has not beaten for 10 minutes (the beat is every 30 s): asleep,
 * crashed or cut off. */
static bool silent(const struct rpt_dg *d, const struct rpt_dg_node *n)
{
    return (n->state == NULL || strcmp(n->state, "down") != 0) &&
           n->heartbeat_ms < d->built_ms - 10 * 60000;
}

static const char *noun_of(enum rpt_dg_kind k)
{
    switch (k) {
    case DG_SCRAPE:
        return "load";
    case DG_VALIDATE:
        return "validation";
    case DG_REFRESH:
        return "refresh";
    case DG_REMEDIATE:
        return "remediation";
    default:
        return "job";
    }
}

#define VERDICT_REASONS 8 /* named at most; the rest "and N more" */
#define VERDICT_NAMES 3   /* jobs named per kind of trouble */

struct reasons {
    struct md_buf b;
    int n, more;
};

static void reason(struct reasons *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(struct reasons *r, const char *fmt, ...)
{
    char buf[400];
    va_list ap;

    if (r->n >= VERDICT_REASONS) {
        r->more++;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (r->n++ > 0)
        md_buf_puts(&r->b, ", ");
    md_buf_puts(&r->b, buf);
}

/* A name for a verdict: cleaned and short. */
static char *vname(const char *s)
{
    return rpt_dg_clean(s, W_NAME);
}

char *rpt_dg_verdict(const struct rpt_dg *d, bool *attention)
{
    struct reasons r = {.n = 0};
    const struct rpt_dg_counts *t = &d->t;
    int named = 0;
    int64_t rest = 0;

    md_buf_init(&r.b, 8192);
    if (t->failed > 0)
        reason(&r, "%s failed %s", cnt(t->failed), plural(t->failed, "run", "runs"));
    if (t->lost > 0)
        reason(&r, "%s %s ended unobserved (abandoned or unknown)", cnt(t->lost),
               plural(t->lost, "run", "runs"));
    if (d->open[0] > 0)
        reason(&r, "%s open critical %s", cnt(d->open[0]), plural(d->open[0], "alert", "alerts"));
    for (size_t i = 0; i < d->njobs; i++) {
        const struct rpt_dg_job *j = &d->jobs[i];
        if (!no_success(j))
            continue;
        if (named++ < VERDICT_NAMES) {
            char *n = vname(j->job);
            reason(&r, "%s '%s' did not succeed in the window", noun_of(j->kind), n);
            md_free(n);
        } else {
            rest++;
        }
    }
    if (rest > 0)
        reason(&r, "%s more %s did not succeed", cnt(rest), plural(rest, "job", "jobs"));
    if (t->missed > 0)
        reason(&r, "%s %s missed", cnt(t->missed), plural(t->missed, "slot", "slots"));
    named = 0, rest = 0;
    for (size_t i = 0; i < d->nwork; i++) {
        const struct rpt_dg_work *w = &d->work[i];
        int64_t fail = wlast(w, "fail"), error = wlast(w, "error");
        if (w->kind != DG_VALIDATE || fail + error <= 0 || fail < 0)
            continue;
        if (named++ < VERDICT_NAMES) {
            char *n = vname(w->suite != NULL ? w->suite : w->job);
            reason(&r, "suite '%s' has %s failing %s", n, cnt(fail + (error > 0 ? error : 0)),
                   plural(fail + (error > 0 ? error : 0), "check", "checks"));
            md_free(n);
        } else {
            rest++;
        }
    }
    if (rest > 0)
        reason(&r, "%s more %s with failing checks", cnt(rest), plural(rest, "suite", "suites"));
    for (size_t i = 0; i < d->njobs; i++) {
        const struct rpt_dg_job *j = &d->jobs[i];
        char *n = vname(j->job), *node = vname(j->state_node);
        if (is_fatal(j))
            reason(&r, "job '%s' is FATAL on %s", n, node[0] ? node : "a node");
        else if (overdue(d, j))
            reason(&r, "job '%s' was due at %s and did not run", n, when(j->next_run_ms));
        md_free(n);
        md_free(node);
    }
    for (size_t i = 0; i < d->nnodes; i++) {
        if (!silent(d, &d->nodes[i]))
            continue;
        char *n = vname(d->nodes[i].node);
        if (d->nodes[i].heartbeat_ms > 0)
            reason(&r, "node '%s' silent since %s", n, when(d->nodes[i].heartbeat_ms));
        else
            reason(&r, "node '%s' has never sent a heartbeat", n);
        md_free(n);
    }
    if (t->duplicated > 0)
        reason(&r, "%s %s ran more than once", cnt(t->duplicated),
               plural(t->duplicated, "slot", "slots"));
    if (r.more > 0)
        md_buf_printf(&r.b, " and %d more", r.more);

    *attention = r.n > 0;
    char *out;
    if (*attention) {
        out = md_xasprintf("ATTENTION: %s", md_buf_str(&r.b));
    } else {
        struct md_buf notes;
        md_buf_init(&notes, 4096);
        if (t->skipped > 0)
            md_buf_printf(&notes, "%s%s skipped %s", notes.len ? ", " : "", cnt(t->skipped),
                          plural(t->skipped, "slot", "slots"));
        if (d->open[1] > 0)
            md_buf_printf(&notes, "%s%s open %s", notes.len ? ", " : "", cnt(d->open[1]),
                          plural(d->open[1], "warning", "warnings"));
        if (t->retried > 0)
            md_buf_printf(&notes, "%s%s retried", notes.len ? ", " : "", cnt(t->retried));
        if (t->runs == 0 && t->skipped == 0)
            out = md_xasprintf("OK: no runs in the window%s%s", notes.len ? "; " : "",
                               md_buf_str(&notes));
        else
            out = md_xasprintf("OK: %s %s, 0 failed%s%s", cnt(t->runs),
                               plural(t->runs, "run", "runs"), notes.len ? "; " : "",
                               md_buf_str(&notes));
        md_buf_free(&notes);
    }
    md_buf_free(&r.b);
    return out;
}

/* ---- the sections --------------------------------------------------------------------------- */

static void counts_para(struct em *e, const struct rpt_dg *d)
{
    const struct rpt_dg_counts *t = &d->t;
    struct md_buf b;

    md_buf_init(&b, 4096);
    md_buf_printf(&b, "Runs: %s in %s %s: %s ok, %s failed", cnt(t->runs), cnt(d->jobs_total),
                  plural(d->jobs_total, "job", "jobs"), cnt(t->ok), cnt(t->failed));
    if (t->lost > 0)
        md_buf_printf(&b, ", %s ended unobserved", cnt(t->lost));
    if (t->stopped > 0)
        md_buf_printf(&b, ", %s stopped by meshd", cnt(t->stopped));
    if (t->running > 0)
        md_buf_printf(&b, ", %s still running", cnt(t->running));
    md_buf_printf(&b, "; slots: %s missed, %s skipped", cnt(t->missed), cnt(t->skipped));
    if (t->retried > 0)
        md_buf_printf(&b, "; %s %s needed a retry (%s failed %s)", cnt(t->retried),
                      plural(t->retried, "run", "runs"), cnt(t->retry_failures),
                      plural(t->retry_failures, "attempt", "attempts"));
    if (t->duplicated > 0)
        md_buf_printf(&b, "; %s %s ran more than once", cnt(t->duplicated),
                      plural(t->duplicated, "slot", "slots"));
    md_buf_puts(&b, ".");
    em_para(e, "%s", md_buf_str(&b));
    md_buf_free(&b);
    em_para(e,
            "Alerts open: %s critical, %s warning, %s info; %s raised in the window, %s of them "
            "resolved since.",
            cnt(d->open[0]), cnt(d->open[1]), cnt(d->open[2]), cnt(d->raised),
            cnt(d->raised_resolved));
}

static int64_t bad_of(const struct rpt_dg_job *j)
{
    return j->c.failed + j->c.lost;
}

/* Failures first: failed runs, missed slots, FATAL or overdue, skipped slots; then by name. */
static int job_cmp(const struct rpt_dg *d, const struct rpt_dg_job *a, const struct rpt_dg_job *b)
{
    if (bad_of(a) != bad_of(b))
        return bad_of(a) > bad_of(b) ? -1 : 1;
    if (no_success(a) != no_success(b))
        return no_success(a) ? -1 : 1;
    if (a->c.missed != b->c.missed)
        return a->c.missed > b->c.missed ? -1 : 1;
    bool fa = is_fatal(a) || overdue(d, a), fb = is_fatal(b) || overdue(d, b);
    if (fa != fb)
        return fa ? -1 : 1;
    if (a->c.skipped != b->c.skipped)
        return a->c.skipped > b->c.skipped ? -1 : 1;
    return strcmp(a->job, b->job);
}

/* Indexes of d->jobs in job_cmp order (md_free). */
static size_t *jobs_order(const struct rpt_dg *d)
{
    size_t *ix = md_xcalloc(d->njobs + 1, sizeof *ix);
    for (size_t i = 0; i < d->njobs; i++) {
        size_t k = i;
        ix[i] = i;
        while (k > 0 && job_cmp(d, &d->jobs[ix[k - 1]], &d->jobs[ix[k]]) > 0) {
            size_t t = ix[k - 1];
            ix[k - 1] = ix[k];
            ix[k] = t;
            k--;
        }
    }
    return ix;
}

static void jobs_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"job", false, W_NAME}, {"kind", false, 10}, {"runs", true, 0},    {"ok", true, 0},
        {"failed", true, 0},    {"missed", true, 0}, {"skipped", true, 0}, {"last", false, 10},
        {"p50", true, 0},       {"max", true, 0},    {"state", false, 60},
    };
    em_h2(e, "Jobs");
    if (d->njobs == 0) {
        em_para(e, "No jobs: no runs in the window, and none in agent_registry.");
        return;
    }
    size_t *ix = jobs_order(d);
    size_t shown = d->njobs < RPT_DIGEST_MAX_JOBS ? d->njobs : RPT_DIGEST_MAX_JOBS;
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < shown; i++) {
        const struct rpt_dg_job *j = &d->jobs[ix[i]];
        char state[200];
        em_cell_ex(e, j->job, job_href(d->external_url, j->job), bad_of(j) > 0 || no_success(j));
        em_cell(e, j->kind == DG_COMMAND ? "" : rpt_dg_kind_names[j->kind]);
        em_cell(e, cnt(j->c.runs));
        em_cell(e, cnt(j->c.ok));
        em_cell_ex(e, cnt(bad_of(j)), NULL, bad_of(j) > 0);
        em_cell_ex(e, cnt(j->c.missed), NULL, j->c.missed > 0);
        em_cell(e, cnt(j->c.skipped));
        em_cell_ex(e, j->last_status != NULL ? j->last_status : "-", NULL,
                   j->last_status != NULL && strcmp(j->last_status, "succeeded") != 0 &&
                       strcmp(j->last_status, "running") != 0 &&
                       strcmp(j->last_status, "skipped") != 0);
        em_cell(e, dur(j->p50_ms));
        em_cell(e, dur(j->max_ms));
        if (overdue(d, j))
            snprintf(state, sizeof state, "%s%sdue %s, did not run", j->state ? j->state : "",
                     j->state ? "; " : "", when(j->next_run_ms));
        else
            snprintf(state, sizeof state, "%s%s%s", j->state ? j->state : "-",
                     is_fatal(j) && j->state_node ? " on " : "",
                     is_fatal(j) && j->state_node ? j->state_node : "");
        em_cell_ex(e, state, NULL, is_fatal(j) || overdue(d, j));
    }
    em_table_end(e);
    if (d->t.lost > 0)
        em_para(e, "failed counts %s %s that ended unobserved (abandoned or unknown).",
                cnt(d->t.lost), plural(d->t.lost, "run", "runs"));
    em_more(e, (int64_t)(d->njobs - shown), "job", "jobs");
    md_free(ix);
}

static void run_status(const struct rpt_dg_run *r, char *buf, size_t cap)
{
    if (r->signal > 0)
        snprintf(buf, cap, "%s (signal %d)", r->status, r->signal);
    else if (r->exit_code >= 0 && strcmp(r->status, "succeeded") != 0)
        snprintf(buf, cap, "%s (exit %d)", r->status, r->exit_code);
    else
        snprintf(buf, cap, "%s", r->status);
}

static int64_t run_at(const struct rpt_dg_run *r)
{
    return r->started_ms > 0 ? r->started_ms : r->scheduled_ms;
}

static void failures_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"started", false, 0},    {"job", false, W_NAME}, {"status", false, 30},
        {"node", false, W_SHORT}, {"took", true, 0},      {"why", false, W_WHY},
    };
    int64_t total = d->t.failed + d->t.lost;

    em_h2(e, "Failed runs");
    if (total == 0 || d->nfailures == 0) {
        em_para(e, "No failed runs in the window.");
        return;
    }
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < d->nfailures; i++) {
        const struct rpt_dg_run *r = &d->failures[i];
        char st[80];
        run_status(r, st, sizeof st);
        em_cell(e, when(run_at(r)));
        em_cell_ex(e, r->job, job_href(d->external_url, r->job), true);
        em_cell_ex(e, st, NULL, true);
        em_cell(e, r->node);
        em_cell(e, dur(r->duration_ms));
        em_cell(e, r->why != NULL ? r->why : "");
    }
    em_table_end(e);
    em_more(e, total - (int64_t)d->nfailures, "failed run", "failed runs");
}

static void slots_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"job", false, W_NAME}, {"slots", true, 0}, {"what", false, 8},
        {"first", false, 0},    {"last", false, 0}, {"why", false, W_WHY},
    };
    em_h2(e, "Missed and skipped slots");
    if (d->nslots == 0) {
        em_para(e, "No missed or skipped slots in the window.");
        return;
    }
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < d->nslots; i++) {
        const struct rpt_dg_slots *s = &d->slots[i];
        bool missed = strcmp(s->status, "missed") == 0;
        em_cell_ex(e, s->job, job_href(d->external_url, s->job), missed);
        em_cell(e, cnt(s->slots));
        em_cell_ex(e, s->status, NULL, missed);
        em_cell(e, when(s->first_ms));
        em_cell(e, when(s->last_ms));
        em_cell(e, s->reason != NULL ? s->reason : "");
    }
    em_table_end(e);
    em_more(e, d->slots_total - (int64_t)d->nslots, "job and reason", "jobs and reasons");
}

static int64_t job_p50(const struct rpt_dg *d, const char *job)
{
    for (size_t i = 0; i < d->njobs; i++)
        if (strcmp(d->jobs[i].job, job) == 0)
            return d->jobs[i].p50_ms;
    return -1;
}

static void longest_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"job", false, W_NAME}, {"took", true, 0},     {"x p50", true, 0},
        {"started", false, 0},  {"status", false, 30}, {"node", false, W_SHORT},
    };
    em_h2(e, "Longest runs");
    if (d->nlongest == 0) {
        em_para(e, "No finished runs in the window.");
        return;
    }
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < d->nlongest; i++) {
        const struct rpt_dg_run *r = &d->longest[i];
        int64_t p50 = job_p50(d, r->job);
        char st[80];
        run_status(r, st, sizeof st);
        em_cell_ex(e, r->job, job_href(d->external_url, r->job), false);
        em_cell(e, dur(r->duration_ms));
        if (p50 > 0)
            em_cellf(e, "%.1f", (double)r->duration_ms / (double)p50);
        else
            em_cell(e, "-");
        em_cell(e, when(run_at(r)));
        em_cell_ex(e, st, NULL, strcmp(r->status, "succeeded") != 0);
        em_cell(e, r->node);
    }
    em_table_end(e);
}

/* The jobs the freshness table lists: loads and refreshes, and any job that had trouble and no
 * success in the window or was due and did not run. */
static bool fresh_listed(const struct rpt_dg *d, const struct rpt_dg_job *j)
{
    return j->kind == DG_SCRAPE || j->kind == DG_REFRESH || no_success(j) || overdue(d, j);
}

/* How old its data is at until: the last change for loads and refreshes, else the last
 * success; never first. */
static int64_t fresh_age(const struct rpt_dg *d, const struct rpt_dg_job *j)
{
    int64_t at = j->kind == DG_SCRAPE || j->kind == DG_REFRESH ? j->last_change_ms : j->last_ok_ms;
    return at > 0 ? d->until_ms - at : INT64_MAX;
}

static void items_table(struct em *e, const struct rpt_dg_item *it, size_t n, const char *what)
{
    const struct col cols[] = {
        {what, false, W_KEY}, {"outcome", false, 10}, {"detail", false, W_WHY}};
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < n; i++) {
        em_cell(e, it[i].what);
        em_cell_ex(e, it[i].outcome, NULL,
                   outcome_rank(it[i].outcome) < 2 || bad_outcome(it[i].outcome));
        em_cell(e, it[i].text != NULL ? it[i].text : "");
    }
    em_table_end(e);
}

static void freshness_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"job", false, W_NAME},         {"kind", false, 10}, {"last success", false, 0},
        {"last data change", false, 0}, {"age", true, 0},
    };
    size_t n = 0, *ix = md_xcalloc(d->njobs + 1, sizeof *ix);

    em_h2(e, "Data freshness");
    for (size_t i = 0; i < d->njobs; i++) {
        if (!fresh_listed(d, &d->jobs[i]))
            continue;
        size_t k = n++;
        ix[k] = i;
        /* stalest first */
        while (k > 0 && fresh_age(d, &d->jobs[ix[k - 1]]) < fresh_age(d, &d->jobs[ix[k]])) {
            size_t t = ix[k - 1];
            ix[k - 1] = ix[k];
            ix[k] = t;
            k--;
        }
    }
    if (n == 0) {
        em_para(e, "No loads, refreshes or stale jobs in the window.");
    } else {
        size_t shown = n < (size_t)d->top ? n : (size_t)d->top;
        em_table(e, cols, MD_ARRAY_SIZE(cols));
        for (size_t i = 0; i < shown; i++) {
            const struct rpt_dg_job *j = &d->jobs[ix[i]];
            bool data = j->kind == DG_SCRAPE || j->kind == DG_REFRESH;
            int64_t age = fresh_age(d, j);
            em_cell_ex(e, j->job, job_href(d->external_url, j->job), no_success(j));
            em_cell(e, j->kind == DG_COMMAND ? "" : rpt_dg_kind_names[j->kind]);
            em_cell_ex(e, j->last_ok_ms > 0 ? when(j->last_ok_ms) : "none", NULL,
                       j->last_ok_ms < d->since_ms);
            em_cell(e, data ? (j->last_change_ms > 0 ? when(j->last_change_ms) : "none") : "");
            em_cell_ex(e, age == INT64_MAX ? "never" : dur(age), NULL, j->last_ok_ms < d->since_ms);
        }
        em_table_end(e);
        em_more(e, (int64_t)(n - shown), "job", "jobs");
        em_para(e,
                "Looked back %s before the window's end; \"none\" means no success in that "
                "time.",
                dur(d->until_ms - d->since_ms > 31LL * 86400000 ? d->until_ms - d->since_ms
                                                                : 31LL * 86400000));
    }
    md_free(ix);

    /* what the loads and refreshes did */
    bool any = false;
    for (size_t i = 0; i < d->nwork; i++) {
        const struct rpt_dg_work *w = &d->work[i];
        char *job;
        if (w->kind != DG_SCRAPE)
            continue;
        any = true;
        job = rpt_dg_clean(w->job, W_NAME);
        em_para(e,
                "Load %s: %s %s, %s files (%s loaded, %s unchanged, %s failed); %s rows read, "
                "%s inserted, %s updated, %s deleted, %s rejected.",
                job, cnt(w->runs), plural(w->runs, "run", "runs"), cnt(wsum(w, "files")),
                cnt(wsum(w, "loaded")), cnt(wsum(w, "unchanged")), cnt(wsum(w, "failed")),
                cnt(wsum(w, "rows")), cnt(wsum(w, "inserted")), cnt(wsum(w, "updated")),
                cnt(wsum(w, "deleted")), cnt(wsum(w, "rejected")));
        if (w->nitems > 0) {
            em_para(e, "Its latest run (%s, %s) failed on:", when(w->last_ms),
                    w->last_status ? w->last_status : "?");
            items_table(e, w->items, w->nitems, "file");
            em_more(e, w->items_total - (int64_t)w->nitems, "file", "files");
        }
        md_free(job);
    }
    if (!any)
        em_para(e, "No scrape runs in the window.");
    any = false;
    for (size_t i = 0; i < d->nwork; i++) {
        const struct rpt_dg_work *w = &d->work[i];
        char *job;
        if (w->kind != DG_REFRESH)
            continue;
        any = true;
        job = rpt_dg_clean(w->job, W_NAME);
        em_para(e, "Refresh %s: %s %s: %s views refreshed, %s skipped, %s failed.", job,
                cnt(w->runs), plural(w->runs, "run", "runs"), cnt(wsum(w, "refreshed")),
                cnt(wsum(w, "skipped")), cnt(wsum(w, "failed")));
        if (w->nitems > 0) {
            em_para(e, "Its latest run (%s, %s) failed on:", when(w->last_ms),
                    w->last_status ? w->last_status : "?");
            items_table(e, w->items, w->nitems, "item");
            em_more(e, w->items_total - (int64_t)w->nitems, "item", "items");
        }
        md_free(job);
    }
    if (!any)
        em_para(e, "No refresh runs in the window.");
}

static void validation_section(struct em *e, const struct rpt_dg *d)
{
    bool any = false;

    em_h2(e, "Validation");
    for (size_t i = 0; i < d->nwork; i++) {
        const struct rpt_dg_work *w = &d->work[i];
        char *job, *suite;
        if (w->kind != DG_VALIDATE)
            continue;
        any = true;
        job = rpt_dg_clean(w->job, W_NAME);
        suite = rpt_dg_clean(w->suite != NULL ? w->suite : w->job, W_NAME);
        em_para(e,
                "Suite %s (job %s): %s %s, %s with failures; results: %s pass, %s warn, %s fail, "
                "%s refused, %s error.",
                suite, job, cnt(w->runs), plural(w->runs, "run", "runs"), cnt(w->bad_runs),
                cnt(wsum(w, "pass")), cnt(wsum(w, "warn")), cnt(wsum(w, "fail")),
                cnt(wsum(w, "refused")), cnt(wsum(w, "error")));
        if (wlast(w, "results") >= 0)
            em_para(e, "Latest run %s: %s fail, %s warn, %s error of %s results.", when(w->last_ms),
                    cnt(wlast(w, "fail")), cnt(wlast(w, "warn")),
                    cnt(wlast(w, "error") > 0 ? wlast(w, "error") : 0), cnt(wlast(w, "results")));
        if (w->nitems > 0) {
            items_table(e, w->items, w->nitems, "check");
            em_more(e, w->items_total - (int64_t)w->nitems, "check", "checks");
        }
        md_free(job);
        md_free(suite);
    }
    if (!any)
        em_para(e, "No validate runs in the window.");
}

static void remediation_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"at", false, 0},       {"job", false, W_NAME}, {"fix", false, W_NAME},
        {"outcome", false, 10}, {"rows", true, 0},      {"detail", false, W_WHY},
    };
    bool any = false;

    em_h2(e, "Remediation");
    for (size_t i = 0; i < d->nwork; i++) {
        const struct rpt_dg_work *w = &d->work[i];
        struct md_buf b;
        if (w->kind != DG_REMEDIATE)
            continue;
        any = true;
        md_buf_init(&b, 2048);
        for (int k = 0; remediate_counts[k] != NULL; k++)
            if (w->sum[k] > 0)
                md_buf_printf(&b, "%s%s %s", b.len ? ", " : "", cnt(w->sum[k]),
                              remediate_counts[k]);
        char *job = rpt_dg_clean(w->job, W_NAME);
        em_para(e, "%s: %s %s%s%s.", job, cnt(w->runs), plural(w->runs, "run", "runs"),
                b.len ? ": " : ", nothing to fix", md_buf_str(&b));
        md_free(job);
        md_buf_free(&b);
    }
    if (!any) {
        em_para(e, "No remediate runs in the window.");
        return;
    }
    if (d->nfixes == 0)
        return;
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < d->nfixes; i++) {
        const struct rpt_dg_item *f = &d->fixes[i];
        em_cell(e, when(f->at_ms));
        em_cell_ex(e, f->job ? f->job : "", job_href(d->external_url, f->job ? f->job : ""), false);
        em_cell(e, f->what);
        em_cell_ex(e, f->outcome, NULL,
                   strcmp(f->outcome, "refused") == 0 || strcmp(f->outcome, "stale") == 0 ||
                       strcmp(f->outcome, "failed") == 0);
        em_cell(e, f->rows >= 0 ? cnt(f->rows) : "");
        em_cell(e, f->text != NULL ? f->text : "");
    }
    em_table_end(e);
    em_more(e, d->fixes_total - (int64_t)d->nfixes, "fix", "fixes");
}

static void alerts_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"severity", false, 8},    {"key", false, W_KEY}, {"job", false, W_NAME},
        {"node", false, W_SHORT},  {"since", false, 0},   {"count", true, 0},
        {"message", false, W_WHY},
    };
    int64_t total = d->open[0] + d->open[1] + d->open[2];

    em_h2(e, "Open alerts");
    if (d->nalerts == 0) {
        em_para(e, "No open alerts.");
        return;
    }
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < d->nalerts; i++) {
        const struct rpt_dg_alert *a = &d->alerts[i];
        em_cell_ex(e, a->severity, NULL, strcmp(a->severity, "critical") == 0);
        em_cell(e, a->key);
        em_cell(e, a->job != NULL ? a->job : "");
        em_cell(e, a->node);
        em_cell(e, when(a->opened_ms));
        em_cell(e, cnt(a->count));
        em_cell(e, a->message);
    }
    em_table_end(e);
    em_more(e, total - (int64_t)d->nalerts, "open alert", "open alerts");
}

static void nodes_section(struct em *e, const struct rpt_dg *d)
{
    static const struct col cols[] = {
        {"node", false, W_NAME},   {"environment", false, W_SHORT},
        {"state", false, W_SHORT}, {"last heartbeat", false, 0},
        {"note", false, 40},
    };
    em_h2(e, "Nodes");
    if (d->nnodes == 0) {
        em_para(e, "No nodes in agent_registry.");
        return;
    }
    em_table(e, cols, MD_ARRAY_SIZE(cols));
    for (size_t i = 0; i < d->nnodes; i++) {
        const struct rpt_dg_node *n = &d->nodes[i];
        bool quiet = silent(d, n);
        em_cell_ex(e, n->node, NULL, quiet);
        em_cell(e, n->environment != NULL ? n->environment : "");
        em_cell(e, n->state != NULL ? n->state : "");
        em_cell(e, when(n->heartbeat_ms));
        em_cell_ex(e, quiet ? "silent for 10 minutes or more" : "", NULL, quiet);
    }
    em_table_end(e);
    em_more(e, d->nodes_total - (int64_t)d->nnodes, "node", "nodes");
}

/* ---- the documents -------------------------------------------------------------------------- */

static void date_of(int64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

void rpt_dg_render(const struct rpt_dg *d, struct rpt_digest_doc *out)
{
    struct em e;
    bool attention;
    char *verdict = rpt_dg_verdict(d, &attention), *subject_raw, *title;
    char date[32];

    memset(out, 0, sizeof *out);
    date_of(d->until_ms, date, sizeof date);
    subject_raw = md_xasprintf("meshd digest %s: %s", date, verdict);
    out->subject = rpt_dg_clean(subject_raw, 200);
    md_free(subject_raw);
    out->attention = attention;
    out->runs = d->t.runs;
    out->ok = d->t.ok;
    out->failed = d->t.failed;
    out->lost = d->t.lost;
    out->missed = d->t.missed;
    out->skipped = d->t.skipped;
    out->jobs = d->jobs_total;
    out->open_critical = d->open[0];
    out->open_alerts = d->open[0] + d->open[1] + d->open[2];

    em_init(&e);
    title = rpt_dg_clean(verdict, 0);
    /* the headline */
    md_buf_printf(&e.t, "%s\n\n", title);
    md_buf_puts(&e.h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
    put_html(&e.h, out->subject);
    md_buf_puts(&e.h, "</title></head>\n<body style=\"font-family:sans-serif;font-size:14px;"
                      "color:#202020\">\n");
    md_buf_printf(&e.h, "<h1 style=\"font-size:18px;margin:0 0 8px;color:%s\">",
                  attention ? "#b00020" : "#1b5e20");
    put_html(&e.h, title);
    md_buf_puts(&e.h, "</h1>\n");
    md_buf_puts(&e.m, "# ");
    put_md(&e.m, title);
    md_buf_puts(&e.m, "\n\n");

    int64_t len = d->until_ms - d->since_ms;
    char span[40];
    if (len % HOUR_MS == 0)
        snprintf(span, sizeof span, "%" PRId64 " h", len / HOUR_MS);
    else
        rpt_dg_fmt_duration(len, span, sizeof span);
    em_para(&e, "meshd digest for %s to %s UTC (%s); read from the registry at %s UTC.",
            when(d->since_ms), when(d->until_ms), span, when(d->built_ms));
    counts_para(&e, d);
    jobs_section(&e, d);
    failures_section(&e, d);
    slots_section(&e, d);
    longest_section(&e, d);
    freshness_section(&e, d);
    validation_section(&e, d);
    remediation_section(&e, d);
    alerts_section(&e, d);
    nodes_section(&e, d);

    /* the footer */
    char *node = rpt_dg_clean(d->node, W_NAME);
    md_buf_puts(&e.t, "\n--\n");
    md_buf_puts(&e.h, "<hr style=\"border:0;border-top:1px solid #ccc\">\n<p style=\"color:#666;"
                      "font-size:12px\">");
    md_buf_puts(&e.m, "---\n\n");
    {
        char *line = md_xasprintf("Built by meshd-report%s%s.", node[0] ? " on node " : "", node);
        md_buf_printf(&e.t, "%s\n", line);
        put_html(&e.h, line);
        put_md(&e.m, line);
        md_free(line);
    }
    if (d->external_url != NULL && d->external_url[0] != '\0') {
        struct md_buf u;
        md_buf_init(&u, 8192);
        put_url(&u, d->external_url);
        md_buf_printf(&e.t, "Status page: %s\n", md_buf_str(&u));
        md_buf_puts(&e.h, " <a href=\"");
        put_html(&e.h, md_buf_str(&u));
        md_buf_puts(&e.h, "\">Status page</a>");
        md_buf_printf(&e.m, " [Status page](%s)", md_buf_str(&u));
        md_buf_free(&u);
    }
    md_buf_puts(&e.h, "</p>\n</body></html>\n");
    md_buf_puts(&e.m, "\n");
    md_free(node);

    out->text = md_buf_take(&e.t);
    out->html = md_buf_take(&e.h);
    out->markdown = md_buf_take(&e.m);
    em_free(&e);
    md_free(title);
    md_free(verdict);
}

/* ---- freeing -------------------------------------------------------------------------------- */

static void run_free(struct rpt_dg_run *r)
{
    md_free(r->job);
    md_free(r->run_id);
    md_free(r->node);
    md_free(r->status);
    md_free(r->why);
}

void rpt_dg_free(struct rpt_dg *d)
{
    for (size_t i = 0; i < d->njobs; i++) {
        md_free(d->jobs[i].job);
        md_free(d->jobs[i].last_status);
        md_free(d->jobs[i].state);
        md_free(d->jobs[i].state_node);
    }
    md_free(d->jobs);
    for (size_t i = 0; i < d->nfailures; i++)
        run_free(&d->failures[i]);
    md_free(d->failures);
    for (size_t i = 0; i < d->nlongest; i++)
        run_free(&d->longest[i]);
    md_free(d->longest);
    for (size_t i = 0; i < d->nslots; i++) {
        md_free(d->slots[i].job);
        md_free(d->slots[i].status);
        md_free(d->slots[i].reason);
    }
    md_free(d->slots);
    for (size_t i = 0; i < d->nalerts; i++) {
        md_free(d->alerts[i].severity);
        md_free(d->alerts[i].key);
        md_free(d->alerts[i].job);
        md_free(d->alerts[i].node);
        md_free(d->alerts[i].message);
    }
    md_free(d->alerts);
    for (size_t i = 0; i < d->nnodes; i++) {
        md_free(d->nodes[i].node);
        md_free(d->nodes[i].state);
        md_free(d->nodes[i].environment);
    }
    md_free(d->nodes);
    for (size_t i = 0; i < d->nwork; i++) {
        items_clear(&d->work[i]);
        md_free(d->work[i].job);
        md_free(d->work[i].suite);
        md_free(d->work[i].last_status);
    }
    md_free(d->work);
    for (size_t i = 0; i < d->nfixes; i++) {
        md_free(d->fixes[i].job);
        md_free(d->fixes[i].what);
        md_free(d->fixes[i].outcome);
        md_free(d->fixes[i].text);
    }
    md_free(d->fixes);
    memset(d, 0, sizeof *d);
}

void rpt_digest_doc_free(struct rpt_digest_doc *d)
{
    md_free(d->subject);
    md_free(d->text);
    md_free(d->html);
    md_free(d->markdown);
    memset(d, 0, sizeof *d);
}
