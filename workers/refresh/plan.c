/* plan.c - meshd-refresh's pure decisions (plan.h). */
#include "plan.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- dependency order ----------------------------------------------------------------------- */

static bool deps_placed(const struct plan_view *v, const bool *placed)
{
    for (size_t d = 0; d < v->ndeps; d++)
        if (!placed[v->deps[d]])
            return false;
    return true;
}

/* Walks from an unplaced view along unplaced deps until a view repeats: with no view ready,
 * every unplaced view has an unplaced dep, so the walk never ends elsewhere.  Writes the cycle
 * into err. */
static int name_cycle(const struct plan_view *views, size_t n, const bool *placed,
                      struct md_error *err)
{
    size_t *path = calloc(n + 1, sizeof *path);
    size_t len = 0, at = 0;
    char text[sizeof err->msg];
    int used = 0;

    if (!path)
        return md_error_set(err, MD_ECONFIG, 0, 0, "materialized views depend on each other");
    while (placed[at])
        at++;
    for (;;) {
        size_t first = len;
        for (size_t i = 0; i < len; i++)
            if (path[i] == at)
                first = i;
        if (first < len) {
            used = snprintf(text, sizeof text, "%s", views[path[first]].name);
            for (size_t i = first + 1; i < len && used < (int)sizeof text; i++)
                used += snprintf(text + used, sizeof text - (size_t)used, " -> %s",
                                 views[path[i]].name);
            if (used < (int)sizeof text)
                snprintf(text + used, sizeof text - (size_t)used, " -> %s", views[at].name);
            break;
        }
        path[len++] = at;
        for (size_t d = 0; d < views[at].ndeps; d++)
            if (!placed[views[at].deps[d]]) {
                at = views[at].deps[d];
                break;
            }
    }
    free(path);
    return md_error_set(err, MD_ECONFIG, 0, 0,
                        "materialized views depend on each other in a cycle: %s", text);
}

int plan_order(const struct plan_view *views, size_t n, size_t *order, struct md_error *err)
{
    bool *placed = calloc(n ? n : 1, sizeof *placed);
    size_t done = 0;
    int rc = 0;

    if (!placed)
        return -ENOMEM;
    while (done < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++)
            if (!placed[i] && deps_placed(&views[i], placed))
                pick = i;
        if (pick == n) {
            rc = name_cycle(views, n, placed, err);
            break;
        }
        placed[pick] = true;
        order[done++] = pick;
    }
    free(placed);
    return rc;
}

/* ---- concurrent or plain -------------------------------------------------------------------- */

void plan_choose_mode(const struct plan_mode_facts *f, struct plan_mode_choice *out)
{
    out->mode = PLAN_PLAIN;
    out->null_warn = false;
    out->warn_plain = false;
    out->refuse = false;
    out->why = NULL;
    if (f->want == PLAN_WANT_PLAIN) {
        out->why = "mode: plain";
        return;
    }
    if (!f->populated)
        /* REFRESH ... CONCURRENTLY refuses a view that was never filled (WITH NO DATA). */
        out->why = "not populated yet (CONCURRENTLY needs data to diff against)";
    else if (f->unique_indexes <= 0)
        out->why = "no valid unique index on plain columns (no WHERE, no expressions)";
    if (out->why != NULL) {
        out->warn_plain = f->want == PLAN_WANT_AUTO;
        out->refuse = f->want == PLAN_WANT_CONCURRENT;
        return;
    }
    out->mode = PLAN_CONCURRENT;
    /* A NULL key never matches its old row, so each such row is deleted and inserted again on
     * every refresh: WAL and bloat grow with them. */
    out->null_warn = !f->clean_key;
}

/* ---- skip what did not change --------------------------------------------------------------- */

static bool same_text(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* Compares two sorted input lists: 1 moved forward (or changed set), 0 same, -1 went back. */
static int inputs_compare(const struct plan_inputs *now, const struct plan_inputs *then)
{
    if (now->n != then->n)
        return 1;
    for (size_t i = 0; i < now->n; i++) {
        const struct plan_input *a = &now->v[i], *b = &then->v[i];
        if (a->oid != b->oid || a->filenode != b->filenode)
            return 1;
        if (a->ins < b->ins || a->upd < b->upd || a->del < b->del)
            return -1;
        if (a->ins != b->ins || a->upd != b->upd || a->del != b->del)
            return 1;
    }
    return 0;
}

bool plan_skip(const struct plan_skip_facts *f, const char **why)
{
    int cmp;

    if (f->force)
        *why = "forced";
    else if (!f->skip_unchanged)
        *why = "skip_unchanged is off";
    else if (!f->populated)
        *why = "not populated";
    else if (!f->has_state)
        *why = "no earlier refresh recorded";
    else if (f->view_oid != f->stored_view_oid)
        *why = "the view was recreated";
    else if (!same_text(f->stats_reset, f->stored_stats_reset))
        *why = "the statistics were reset";
    else if (f->now->opaque || f->stored->opaque)
        *why = "an input has no counters (foreign table, or too many inputs)";
    else if (f->now->n == 0)
        *why = "no input tables to watch (functions only)";
    else if ((cmp = inputs_compare(f->now, f->stored)) < 0)
        *why = "counters went backwards (statistics reset)";
    else if (cmp > 0)
        *why = "inputs changed";
    else {
        *why = "unchanged";
        return true;
    }
    return false;
}

bool plan_inputs_format(const struct plan_inputs *in, struct md_buf *b)
{
    if (in->opaque)
        return md_buf_puts(b, "opaque");
    for (size_t i = 0; i < in->n; i++) {
        const struct plan_input *p = &in->v[i];
        if (!md_buf_printf(b, "%s%" PRIu32 "/%" PRIu32 "/%" PRId64 "/%" PRId64 "/%" PRId64,
                           i ? " " : "", p->oid, p->filenode, p->ins, p->upd, p->del))
            return false;
    }
    return true;
}

int plan_inputs_parse(const char *text, struct plan_inputs *out)
{
    const char *s = text;

    out->n = 0;
    out->opaque = false;
    if (strcmp(text, "opaque") == 0) {
        out->opaque = true;
        return 0;
    }
    while (*s) {
        struct plan_input p;
        unsigned long oid, fnode;
        long long ins, upd, del;
        int used = 0;
        if (out->n == PLAN_MAX_INPUTS ||
            sscanf(s, "%lu/%lu/%lld/%lld/%lld%n", &oid, &fnode, &ins, &upd, &del, &used) != 5 ||
            oid > UINT32_MAX || fnode > UINT32_MAX)
            return -EINVAL;
        p = (struct plan_input){(uint32_t)oid, (uint32_t)fnode, ins, upd, del};
        if (out->n && p.oid <= out->v[out->n - 1].oid)
            return -EINVAL; /* written sorted; anything else is not ours */
        out->v[out->n++] = p;
        s += used;
        if (*s == ' ')
            s++;
        else if (*s)
            return -EINVAL;
    }
    return 0;
}

/* ---- configured indexes --------------------------------------------------------------------- */

static const char *skip_space(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* Matches keyword kw (case-insensitive, whole word) at *s; advances past it and the spaces. */
static bool keyword(const char **s, const char *kw)
{
    size_t n = strlen(kw);
    if (strncasecmp(*s, kw, n) != 0 || isalnum((unsigned char)(*s)[n]) || (*s)[n] == '_')
        return false;
    *s = skip_space(*s + n);
    return true;
}

/* Reads one identifier at *s into out (cap bytes): "quoted" as is ("" is a quote), unquoted
 * folded to lower case as PostgreSQL does.  Returns false when there is none or it is too long. */
static bool ident(const char **s, char *out, size_t cap)
{
    const char *p = *s;
    size_t n = 0;

    if (*p == '"') {
        for (p++;; p++) {
            if (*p == '\0')
                return false;
            if (*p == '"' && p[1] != '"')
                break;
            if (*p == '"')
                p++;
            if (n + 1 >= cap)
                return false;
            out[n++] = *p;
        }
        p++;
    } else {
        if (!isalpha((unsigned char)*p) && *p != '_')
            return false;
        for (; isalnum((unsigned char)*p) || *p == '_' || *p == '$'; p++) {
            if (n + 1 >= cap)
                return false;
            out[n++] = (char)tolower((unsigned char)*p);
        }
    }
    if (n == 0)
        return false;
    out[n] = '\0';
    *s = skip_space(p);
    return true;
}

/* Appends identifier id to out, quoted (inner quotes doubled), for to_regclass. */
static void quote_into(char *out, size_t cap, const char *id)
{
    size_t n = strlen(out);
    if (n + 1 < cap)
        out[n++] = '"';
    for (; *id && n + 2 < cap; id++) {
        if (*id == '"')
            out[n++] = '"';
        out[n++] = *id;
    }
    if (n + 1 < cap)
        out[n++] = '"';
    out[n] = '\0';
}

int plan_index_parse(const char *sql, struct plan_index_stmt *out, struct md_error *err)
{
    const char *s = skip_space(sql);
    char part[PLAN_IDENT_MAX * 2];

    memset(out, 0, sizeof *out);
    if (!keyword(&s, "create"))
        return md_error_set(err, MD_ECONFIG, 0, 0, "expected CREATE [UNIQUE] INDEX ...");
    (void)keyword(&s, "unique");
    if (!keyword(&s, "index"))
        return md_error_set(err, MD_ECONFIG, 0, 0, "expected CREATE [UNIQUE] INDEX ...");
    out->concurrently = keyword(&s, "concurrently");
    if (keyword(&s, "if") && !(keyword(&s, "not") && keyword(&s, "exists")))
        return md_error_set(err, MD_ECONFIG, 0, 0, "expected IF NOT EXISTS");
    if (strncasecmp(s, "on", 2) == 0 && (isspace((unsigned char)s[2]) || s[2] == '\0'))
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "the index needs a name (CREATE INDEX name ON ...), so that an "
                            "existing one is found");
    if (!ident(&s, out->name, sizeof out->name) || !keyword(&s, "on"))
        return md_error_set(err, MD_ECONFIG, 0, 0, "expected an index name, then ON table");
    (void)keyword(&s, "only");
    if (!ident(&s, part, sizeof part))
        return md_error_set(err, MD_ECONFIG, 0, 0, "expected a table name after ON");
    quote_into(out->table, sizeof out->table, part);
    if (*s == '.') {
        s = skip_space(s + 1);
        if (!ident(&s, part, sizeof part))
            return md_error_set(err, MD_ECONFIG, 0, 0, "expected a table name after the schema");
        strcat(out->table, ".");
        quote_into(out->table, sizeof out->table, part);
    }
    return 0;
}
