/* md_json.h - binds a JSON document to a C struct through a key table.
 *
 * A worker's config arrives as one JSON document (docs/status-protocol.md, "What a worker
 * gets").  Each worker describes the members it takes in a table of struct md_json_key, the way
 * the YAML config describes its keys: name, type, where in the struct, required or default, and
 * limits.  md_json_bind checks the document against the table and fills the struct; everything
 * wrong is an error that names the key path the user wrote, so the fix is obvious:
 *
 *   views[2]: expected a string
 *   lock_timeout: expected a duration such as "5s" or "30m"
 *   parallel: 9 is over the maximum 8
 *   database.uri: unknown key (known: url)
 *
 * The cJSON tree lives only inside the call (STYLE): the struct owns plain C values and strings
 * that md_json_free releases.  Not thread-safe (cJSON's error pointer); call it before starting
 * threads.
 */
#ifndef MESHD_MD_JSON_H
#define MESHD_MD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_err.h"

enum md_json_type {
    MD_J_STRING,   /* char *: a JSON string (one of choices, when set) */
    MD_J_INT,      /* int64_t: an integral number within [min, max] */
    MD_J_DOUBLE,   /* double: a finite number within [min, max] */
    MD_J_BOOL,     /* bool */
    MD_J_DURATION, /* uint64_t milliseconds: "5s", "30m", "1h30m", "250ms" (md_duration_parse)
                    * or a number of seconds; within [min, max] in ms */
    MD_J_STRV,     /* struct md_strv: an array of strings, or one string standing for a
                    * one-element array; its length within [min, max] when max > 0 */
    MD_J_OBJECT,   /* an embedded struct, its members described by sub[nsub] */
    MD_J_ARRAY,    /* struct md_json_array: an array of objects, each an elem_size struct
                    * described by sub[nsub]; its length within [min, max] when max > 0 */
    MD_J_RAW,      /* char *: any JSON value, kept as compact JSON text */
};

/* A list of strings.  v[n] is NULL. */
struct md_strv {
    char **v;
    size_t n;
};

/* An array of structs: v points to n structs of the key's elem_size, zeroed, then bound. */
struct md_json_array {
    void *v;
    size_t n;
};

/* Write the entries with designated members after the first three, even when none is needed
 * ({"on", MD_J_BOOL, offsetof(struct cfg, on), .required = false}): -Wextra's
 * -Wmissing-field-initializers warns about a positional initializer that leaves members
 * out, and is quiet once one member is designated. */
struct md_json_key {
    const char *name;
    enum md_json_type type;
    size_t off;      /* offsetof the member in the struct being bound */
    bool required;   /* absent is an error ("views: required") */
    const char *def; /* the value when absent, as JSON text ("true", "\"5s\"", "[]"); NULL
                      * leaves the member zero (NULL string, empty list) */
    double min, max; /* limits for INT, DOUBLE, DURATION (ms), STRV and ARRAY lengths; both 0:
                      * none.  For INT and DOUBLE min == max == 0 means unlimited too.
                      * Otherwise min is the lower bound, and max the upper bound unless
                      * max < min, which means no upper bound ({.min = 1000}: "at least
                      * 1 s"). */
    const char *const *choices;    /* STRING: the accepted values, NULL-terminated; NULL: any */
    const struct md_json_key *sub; /* OBJECT, ARRAY: the members */
    size_t nsub;
    size_t elem_size; /* ARRAY: sizeof one element */
};

/* Binds the JSON document json (len bytes, borrowed, need not be NUL-terminated) to out, a
 * struct the caller zeroed, through keys[n].  An empty document (len 0, or only white space)
 * stands for {}.  The document must be an object; a member whose name is not in the table is
 * an error (naming the known keys), as is a member given twice, a wrong type or a value
 * outside its limits.  A member whose value is null counts as absent.  An absent OBJECT key
 * without a def is bound as {}, so that its own members' defaults (and required keys) apply.
 * Returns 0, or MD_ECONFIG with err saying which key path and why (err->line and err->col are
 * 0; for JSON that does not parse, or has text after the document, MD_EPARSE with the byte
 * offset, line and column in the message and offset + 1 in err->col).  On failure out may be
 * partly filled: release it with md_json_free all the same. */
int md_json_bind(const char *json, size_t len, const struct md_json_key *keys, size_t n, void *out,
                 struct md_error *err) MD_MUSTCHECK;

/* Frees every string, list and array md_json_bind set in out (through keys[n]) and zeroes
 * them.  Harmless on a zeroed struct. */
void md_json_free(const struct md_json_key *keys, size_t n, void *out);

/* The members' count of a key table: MD_JSON_KEYS(tbl) expands to "tbl, n". */
#define MD_JSON_KEYS(tbl) (tbl), (sizeof(tbl) / sizeof((tbl)[0]))

#endif
