/* config_diag.c - the list of diagnostics (struct md_diag), and reporting against the tree.
 *
 * A message names the key it is about ("key 'jobs.scrape.timeout': ...") and the position of
 * the node at fault.  Text from the file is shown through md__show (control characters
 * masked, long text cut).  An unknown key gets the closest known one as a hint, and a key
 * given twice in a mapping is reported, which libyaml does not do.
 */
#include "config_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"

/* ---- diagnostics ------------------------------------------------------------------------ */

void md_diag_init(struct md_diag *d)
{
    memset(d, 0, sizeof *d);
}

void md_diag_cleanup(struct md_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        md_free(d->items[i].msg);
    md_free(d->items);
    md_diag_init(d);
}

MD_PRINTF(5, 0)
static void diag_vadd(struct md_diag *d, enum md_diag_severity sev, int line, int col,
                      const char *fmt, va_list ap)
{
    va_list ap2;
    struct md_diag_item *it;
    int n;

    /* The capacity is implied: 4, then doubled each time n reaches a power of two >= 4. */
    if (d->n == 0 || (d->n >= 4 && (d->n & (d->n - 1)) == 0))
        d->items = md_xrealloc(d->items, (d->n ? d->n * 2 : 4) * sizeof *d->items);
    it = &d->items[d->n++];
    it->severity = sev;
    it->line = line;
    it->col = col;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        n = 0;
    it->msg = md_xmalloc((size_t)n + 1);
    vsnprintf(it->msg, (size_t)n + 1, fmt, ap);
    if (sev == MD_DIAG_ERROR)
        d->nerrors++;
    else
        d->nwarnings++;
}

void md__diag_add(struct md_diag *d, enum md_diag_severity sev, int line, int col, const char *fmt,
                  ...)
{
    va_list ap;

    va_start(ap, fmt);
    diag_vadd(d, sev, line, col, fmt, ap);
    va_end(ap);
}

struct sort_item {
    struct md_diag_item item;
    size_t seq;
};

static int sort_cmp(const void *a, const void *b)
{
    const struct sort_item *x = a, *y = b;

    if (x->item.line != y->item.line)
        return x->item.line < y->item.line ? -1 : 1;
    if (x->item.col != y->item.col)
        return x->item.col < y->item.col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq; /* stable */
}

/* Sorts items [from, n) by position, keeping the order of items at the same position. */
void md__diag_sort(struct md_diag *d, size_t from)
{
    size_t n = d->n - from;
    struct sort_item *tmp;

    if (n < 2)
        return;
    tmp = md_xmalloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        tmp[i].item = d->items[from + i];
        tmp[i].seq = i;
    }
    qsort(tmp, n, sizeof *tmp, sort_cmp);
    for (size_t i = 0; i < n; i++)
        d->items[from + i] = tmp[i].item;
    md_free(tmp);
}

char *md_diag_format(const struct md_diag_item *it, const char *file)
{
    const char *sev = it->severity == MD_DIAG_ERROR ? "error" : "warning";

    /* A position part only for what is known: 0 means unknown (a file that cannot be opened
     * has neither), never "line 0". */
    if (it->line > 0 && it->col > 0)
        return md_xasprintf("%s:%d:%d: %s: %s", file, it->line, it->col, sev, it->msg);
    if (it->line > 0)
        return md_xasprintf("%s:%d: %s: %s", file, it->line, sev, it->msg);
    return md_xasprintf("%s: %s: %s", file, sev, it->msg);
}

void md_diag_print(const struct md_diag *d, const char *file, void *fp)
{
    FILE *f = fp;

    for (size_t i = 0; i < d->n; i++) {
        char *line = md_diag_format(&d->items[i], file);
        fprintf(f, "%s\n", line);
        md_free(line);
    }
}

/* ---- the walk's context and reporting helpers ---------------------------------------------- */

MD_PRINTF(6, 0)
static void vreport(struct ctx *c, enum md_diag_severity sev, int line, int col, const char *path,
                    const char *fmt, va_list ap)
{
    char *msg;
    va_list ap2;
    int n;

    if (c->quiet)
        return;
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    msg = md_xmalloc((size_t)(n < 0 ? 0 : n) + 1);
    vsnprintf(msg, (size_t)(n < 0 ? 0 : n) + 1, fmt, ap);
    if (path)
        md__diag_add(c->diag, sev, line, col, "key '%s': %s", path, msg);
    else
        md__diag_add(c->diag, sev, line, col, "%s", msg);
    md_free(msg);
    if (sev == MD_DIAG_ERROR)
        c->nerrors++;
}

MD_PRINTF(5, 6)
void md__err_pos(struct ctx *c, int line, int col, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(c, MD_DIAG_ERROR, line, col, path, fmt, ap);
    va_end(ap);
}

MD_PRINTF(4, 5)
void md__err_at(struct ctx *c, const struct md__ynode *n, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(c, MD_DIAG_ERROR, n->line, n->col, path, fmt, ap);
    va_end(ap);
}

MD_PRINTF(5, 6)
void md__warn_pos(struct ctx *c, int line, int col, const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(c, MD_DIAG_WARNING, line, col, path, fmt, ap);
    va_end(ap);
}

/* Copies s into buf for a message: control characters become '?', long text is cut. */
const char *md__show(const char *s, size_t len, char *buf, size_t size)
{
    size_t i, o = 0, max = size - 4;

    for (i = 0; i < len && o < max; i++)
        buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* "a mapping", "a sequence", "an empty value" or the quoted text, for "got ..." messages. */
const char *md__describe(const struct md__ynode *n, char *buf, size_t size)
{
    char tmp[72];

    if (n->type == MD__Y_MAP)
        return "a mapping";
    if (n->type == MD__Y_SEQ)
        return "a sequence";
    if (md__ynode_is_null(n))
        return "an empty value";
    snprintf(buf, size, "'%s'", md__show(n->value, n->len, tmp, sizeof tmp));
    return buf;
}

/* The scalar text of n, or NULL after reporting "expected <expect>, got ...". */
const char *md__scalar(struct ctx *c, const struct md__ynode *n, const char *path,
                       const char *expect)
{
    char buf[80];

    if (n->type == MD__Y_BAD)
        return NULL;
    if (n->type != MD__Y_SCALAR || md__ynode_is_null(n)) {
        md__err_at(c, n, path, "expected %s, got %s", expect, md__describe(n, buf, sizeof buf));
        return NULL;
    }
    if (strlen(n->value) != n->len) {
        md__err_at(c, n, path, "the value contains a NUL character");
        return NULL;
    }
    return n->value;
}

/* Column of byte `off` of a scalar's text, when the text sits on one line exactly as
 * written (plain, or quoted without escapes); otherwise the node's own column. */
int md__inner_col(const struct md__ynode *n, size_t off)
{
    if (n->type != MD__Y_SCALAR || n->line != n->end_line)
        return n->col;
    if (n->plain && (size_t)(n->end_col - n->col) == n->len)
        return n->col + (int)off;
    if (n->quoted && (size_t)(n->end_col - n->col) == n->len + 2)
        return n->col + 1 + (int)off;
    return n->col;
}

/* Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
 * neighbours ("nmae" -> "name") each cost 1. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t d[NAME_MAX_LEN + 1][NAME_MAX_LEN + 1];

    if (la > NAME_MAX_LEN || lb > NAME_MAX_LEN)
        return (size_t)-1;
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The closest of names[] (n of them, stride bytes apart) to key, or NULL if none is close. */
static const char *did_you_mean(const char *key, const void *names, size_t n, size_t stride)
{
    const char *best = NULL;
    size_t bestd = (size_t)-1;

    for (size_t i = 0; i < n; i++) {
        const char *cand = *(const char *const *)((const char *)names + i * stride);
        size_t d = edit_distance(key, cand), limit = strlen(cand) <= 4 ? 1 : 2;
        if (d <= limit && d < bestd) {
            best = cand;
            bestd = d;
        }
    }
    return best;
}

void md__unknown_key(struct ctx *c, const struct md__ynode *k, const char *prefix,
                     const void *names, size_t n, size_t stride)
{
    char buf[80];
    const char *shown = md__show(k->value, k->len, buf, sizeof buf);
    const char *hint = did_you_mean(k->value, names, n, stride);

    if (hint)
        md__err_at(c, k, NULL, "unknown key '%s%s%s' (did you mean '%s'?)", prefix,
                   *prefix ? "." : "", shown, hint);
    else
        md__err_at(c, k, NULL, "unknown key '%s%s%s'", prefix, *prefix ? "." : "", shown);
}

void md__make_path(char *buf, size_t size, const char *prefix, const char *key, size_t klen)
{
    char tmp[80];

    snprintf(buf, size, "%s%s%s", prefix, *prefix ? "." : "", md__show(key, klen, tmp, sizeof tmp));
}

/* A mapping key must be a scalar; returns false (after reporting) otherwise. */
bool md__key_ok(struct ctx *c, const struct md__ynode *k, const char *prefix)
{
    if (k->type == MD__Y_BAD)
        return false;
    if (k->type != MD__Y_SCALAR) {
        md__err_at(c, k, NULL, "keys under '%s' must be plain strings", *prefix ? prefix : "(top)");
        return false;
    }
    if (strlen(k->value) != k->len) {
        md__err_at(c, k, NULL, "a key under '%s' contains a NUL character",
                   *prefix ? prefix : "(top)");
        return false;
    }
    return true;
}

struct dup_ent {
    const struct md__ynode *key;
    size_t idx;
};

static int dup_cmp(const void *a, const void *b)
{
    const struct dup_ent *x = a, *y = b;
    size_t l = x->key->len < y->key->len ? x->key->len : y->key->len;
    int r = memcmp(x->key->value, y->key->value, l);

    if (r != 0)
        return r;
    if (x->key->len != y->key->len)
        return x->key->len < y->key->len ? -1 : 1;
    return x->idx < y->idx ? -1 : 1;
}

/* Reports every repeated key of map (libyaml does not) and returns an array, one flag per
 * pair, true for a repeat; the walkers skip those.  Caller frees with md_free.  Sorting
 * keeps this O(n log n): a 1 MiB file can hold 100k keys. */
bool *md__find_dups(struct ctx *c, const struct md__ynode *map, const char *prefix, bool jobs)
{
    size_t np = map->n / 2, m = 0;
    bool *dup = md_xcalloc(np ? np : 1, sizeof *dup);
    struct dup_ent *e = md_xmalloc((np ? np : 1) * sizeof *e);
    char path[256];

    for (size_t i = 0; i < np; i++)
        if (map->kids[2 * i]->type == MD__Y_SCALAR)
            e[m++] = (struct dup_ent){map->kids[2 * i], i};
    qsort(e, m, sizeof *e, dup_cmp);
    for (size_t i = 1; i < m; i++) {
        size_t first = i - 1;
        if (e[i].key->len != e[first].key->len ||
            memcmp(e[i].key->value, e[first].key->value, e[i].key->len) != 0)
            continue;
        while (first > 0 && dup[e[first].idx])
            first--; /* the group's first entry: the earliest occurrence in the file */
        dup[e[i].idx] = true;
        md__make_path(path, sizeof path, prefix, e[i].key->value, e[i].key->len);
        if (jobs)
            md__err_at(c, e[i].key, NULL, "duplicate job '%s' (first defined at line %d)",
                       path + sizeof "jobs", e[first].key->line);
        else
            md__err_at(c, e[i].key, NULL, "duplicate key '%s' (first at line %d)", path,
                       e[first].key->line);
    }
    md_free(e);
    return dup;
}
