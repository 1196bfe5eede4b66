/* config_internal.h - what config.c and config_yaml.c share; not part of the public API.
 *
 * config_yaml.c turns YAML text into a small tree of md__ynode (libyaml's event API, so that
 * aliases can be refused before they are expanded and every node keeps its position).
 * config.c walks the tree against its key tables and fills struct md_config.
 */
#ifndef MESHD_CONFIG_INTERNAL_H
#define MESHD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "meshd/md_config.h"

/* Collections nested deeper than this are refused (the tree walkers recurse). */
#define MD__YAML_MAX_DEPTH 64

enum md__ytype {
    MD__Y_SCALAR,
    MD__Y_SEQ,
    MD__Y_MAP, /* kids holds key, value, key, value, ... */
    MD__Y_BAD, /* stands in for a refused node (an alias); already reported, walkers skip it */
};

struct md__ynode {
    enum md__ytype type;
    int line, col;         /* 1-based start of the node */
    int end_line, end_col; /* 1-based position just after the node */
    /* Scalars: the value (NUL-terminated copy; may contain NUL bytes, hence len). */
    char *value;
    size_t len;
    bool plain;  /* plain style without a tag: null/bool/number resolution applies */
    bool quoted; /* single- or double-quoted on one line: the text starts one column in */
    struct md__ynode **kids;
    size_t n, cap;
};

/* Parses text into *root (NULL for an empty document).  Syntax errors, aliases, unsupported
 * tags, nesting deeper than MD__YAML_MAX_DEPTH and a second document are added to diag as
 * errors.  Returns the number of errors added; *root is set (possibly partial) either way and
 * the caller frees it with md__ynode_free. */
int md__yaml_parse(const char *text, size_t len, struct md__ynode **root, struct md_diag *diag);
void md__ynode_free(struct md__ynode *n);

/* True for a plain scalar that YAML resolves to null: "", "~", "null", "Null", "NULL". */
bool md__ynode_is_null(const struct md__ynode *n);

/* Appends an item to d; msg is printf-formatted.  Never fails (aborts on OOM). */
void md__diag_add(struct md_diag *d, enum md_diag_severity sev, int line, int col,
                  const char *fmt, ...) MD_PRINTF(5, 6);

#endif
