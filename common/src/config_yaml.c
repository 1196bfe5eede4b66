/* config_yaml.c - YAML text to a tree of md__ynode, through libyaml's event API.
 *
 * Why events and not yaml_parser_load(): the document API expands aliases into shared nodes,
 * so "billion laughs" input costs exponential time to walk, and it cannot tell us that a node
 * was an alias.  Here an alias is refused where it appears (one error, a MD__Y_BAD placeholder
 * keeps the mapping's key/value pairing intact) and nesting depth is capped, so the recursive
 * walkers in config_*.c stay bounded.  libyaml marks are 0-based; nodes store them 1-based.
 */
#include "config_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "meshd/md_alloc.h"

struct builder {
    struct md_diag *diag;
    int nerrors;
    struct md__ynode *root;
    struct md__ynode *stack[MD__YAML_MAX_DEPTH];
    int depth;
};

static struct md__ynode *node_new(enum md__ytype type, const yaml_event_t *ev)
{
    struct md__ynode *n = md_xcalloc(1, sizeof *n);

    n->type = type;
    n->line = (int)ev->start_mark.line + 1;
    n->col = (int)ev->start_mark.column + 1;
    n->end_line = (int)ev->end_mark.line + 1;
    n->end_col = (int)ev->end_mark.column + 1;
    return n;
}

static void node_append(struct md__ynode *parent, struct md__ynode *kid)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap ? parent->cap * 2 : 8;
        parent->kids = md_xrealloc(parent->kids, parent->cap * sizeof *parent->kids);
    }
    parent->kids[parent->n++] = kid;
}

void md__ynode_free(struct md__ynode *n)
{
    /* Depth is capped at MD__YAML_MAX_DEPTH, so recursion is bounded. */
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        md__ynode_free(n->kids[i]);
    md_free(n->kids);
    md_free(n->value);
    md_free(n);
}

bool md__ynode_is_null(const struct md__ynode *n)
{
    if (n == NULL || n->type != MD__Y_SCALAR || !n->plain)
        return false;
    return n->len == 0 || strcmp(n->value, "~") == 0 || strcmp(n->value, "null") == 0 ||
           strcmp(n->value, "Null") == 0 || strcmp(n->value, "NULL") == 0;
}

static void berr(struct builder *b, int line, int col, const char *msg)
{
    md__diag_add(b->diag, MD_DIAG_ERROR, line, col, "%s", msg);
    b->nerrors++;
}

/* Hangs n below the open collection (or makes it the root); n is owned by the tree after. */
static void attach(struct builder *b, struct md__ynode *n)
{
    if (b->depth > 0)
        node_append(b->stack[b->depth - 1], n);
    else if (b->root == NULL)
        b->root = n;
    else
        md__ynode_free(n); /* cannot happen: libyaml gives one root per document */
}

/* Only the core schema's own tags are accepted; "!" (non-specific) and !!str force a string. */
static bool tag_ok(const char *tag, enum md__ytype type, bool *force_string)
{
    static const char pfx[] = "tag:yaml.org,2002:";
    const char *t;

    *force_string = false;
    if (tag == NULL)
        return true;
    if (strcmp(tag, "!") == 0 && type == MD__Y_SCALAR) {
        *force_string = true;
        return true;
    }
    if (strncmp(tag, pfx, sizeof pfx - 1) != 0)
        return false;
    t = tag + sizeof pfx - 1;
    switch (type) {
    case MD__Y_SCALAR:
        *force_string = strcmp(t, "str") == 0;
        return *force_string;
    case MD__Y_SEQ:
        return strcmp(t, "seq") == 0;
    case MD__Y_MAP:
        return strcmp(t, "map") == 0;
    default:
        return false;
    }
}

static void offset_to_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;

    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            c++; /* count characters, not UTF-8 continuation bytes, like libyaml */
        }
    }
    *line = l;
    *col = c;
}

static void syntax_error(struct builder *b, const yaml_parser_t *p, const char *text, size_t len)
{
    int line, col;
    const char *problem = p->problem ? p->problem : "unknown problem";

    if (p->error == YAML_READER_ERROR) {
        offset_to_pos(text, len, p->problem_offset, &line, &col);
        md__diag_add(b->diag, MD_DIAG_ERROR, line, col, "YAML: %s", problem);
    } else if (p->context) {
        md__diag_add(b->diag, MD_DIAG_ERROR, (int)p->problem_mark.line + 1,
                     (int)p->problem_mark.column + 1, "YAML syntax error: %s %s (line %d)", problem,
                     p->context, (int)p->context_mark.line + 1);
    } else {
        md__diag_add(b->diag, MD_DIAG_ERROR, (int)p->problem_mark.line + 1,
                     (int)p->problem_mark.column + 1, "YAML syntax error: %s", problem);
    }
    b->nerrors++;
}

/* Handles one event; returns false to stop parsing. */
static bool on_event(struct builder *b, const yaml_event_t *ev, int *ndocs)
{
    struct md__ynode *n;
    bool force_string;

    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++*ndocs > 1) {
            berr(b, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1,
                 "only one YAML document is allowed (found a second '---')");
            return false;
        }
        return true;
    case YAML_ALIAS_EVENT:
        /* Refused rather than expanded: it keeps the file explicit and defeats alias bombs. */
        n = node_new(MD__Y_BAD, ev);
        attach(b, n);
        berr(b, n->line, n->col,
             "YAML aliases (*name) are not supported; put shared settings in defaults:");
        return true;
    case YAML_SCALAR_EVENT:
        n = node_new(MD__Y_SCALAR, ev);
        n->len = ev->data.scalar.length;
        n->value = md_xstrndup((const char *)ev->data.scalar.value, n->len);
        if (!tag_ok((const char *)ev->data.scalar.tag, MD__Y_SCALAR, &force_string))
            berr(b, n->line, n->col, "unsupported YAML tag (only !!str is allowed on a value)");
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !force_string &&
                   ev->data.scalar.tag == NULL;
        n->quoted = (ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                     ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE) &&
                    n->line == n->end_line;
        attach(b, n);
        return true;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool seq = ev->type == YAML_SEQUENCE_START_EVENT;
        const char *tag =
            (const char *)(seq ? ev->data.sequence_start.tag : ev->data.mapping_start.tag);

        n = node_new(seq ? MD__Y_SEQ : MD__Y_MAP, ev);
        if (b->depth == MD__YAML_MAX_DEPTH) {
            berr(b, n->line, n->col, "YAML nesting is deeper than 64 levels");
            md__ynode_free(n);
            return false;
        }
        if (!tag_ok(tag, n->type, &force_string))
            berr(b, n->line, n->col, "unsupported YAML tag");
        attach(b, n);
        b->stack[b->depth++] = n;
        return true;
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        if (b->depth > 0) {
            n = b->stack[--b->depth];
            n->end_line = (int)ev->end_mark.line + 1;
            n->end_col = (int)ev->end_mark.column + 1;
        }
        return true;
    case YAML_STREAM_END_EVENT:
        return false;
    default:
        return true;
    }
}

int md__yaml_parse(const char *text, size_t len, struct md__ynode **root, struct md_diag *diag)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    struct builder b = {.diag = diag};
    int ndocs = 0;
    bool more = true;

    if (!yaml_parser_initialize(&parser)) {
        fputs("fatal: out of memory initializing libyaml\n", stderr); /* its only failure */
        abort();
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (more) {
        if (!yaml_parser_parse(&parser, &ev)) {
            syntax_error(&b, &parser, text, len);
            break;
        }
        more = on_event(&b, &ev, &ndocs);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    *root = b.root;
    return b.nerrors;
}
