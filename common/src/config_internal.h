/* config_internal.h - what the config_*.c files share; not part of the public API.
 *
 * config_yaml.c turns YAML text into a small tree of md__ynode (libyaml's event API, so that
 * aliases can be refused before they are expanded and every node keeps its position).  The
 * other files walk the tree against key tables and fill struct md_config:
 *   config.c            md_config_parse, md_config_load, md_config_free, the reload comparisons
 *   config_diag.c       struct md_diag; the walk's reporting helpers, did-you-mean, repeated keys
 *   config_value.c      durations, booleans, integers, signals, sizes, names, ${VAR} expansion
 *   config_job.c        the job key table and its custom keys
 *   config_job_build.c  defaults: and jobs:, each job built from that table
 *   config_json.c       the config: key, any YAML to JSON
 *   config_sections.c   node:, registry:, http:, cluster:
 * test_config.c includes this header for md__diag_add.
 */
#ifndef MESHD_CONFIG_INTERNAL_H
#define MESHD_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "meshd/md_config.h"

/* ---- config_yaml.c: the YAML tree ------------------------------------------------------------ */

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

/* ---- config_diag.c: diagnostics and the walk's reporting helpers ----------------------------- */

#define NAME_MAX_LEN 64 /* job, node and worker names; did-you-mean compares no longer keys */

/* The walk's context, one per md_config_parse. */
struct ctx {
    struct md_diag *diag;
    int nerrors; /* errors added by this parse (diag may hold older items) */
    bool quiet;  /* re-applying defaults: anything wrong there was reported already */
    struct md_config *cfg;
};

/* Appends an item to d; msg is printf-formatted.  Never fails (aborts on OOM). */
void md__diag_add(struct md_diag *d, enum md_diag_severity sev, int line, int col, const char *fmt,
                  ...) MD_PRINTF(5, 6);

/* Sorts d's items [from, n) by position, keeping the order of items at the same position. */
void md__diag_sort(struct md_diag *d, size_t from);

/* Report an error or a warning at a position (err_at: at node n's start).  path, if not NULL,
 * is the key path the message is about: "key 'PATH': message".  Nothing is reported while
 * c->quiet is set. */
void md__err_pos(struct ctx *c, int line, int col, const char *path, const char *fmt, ...)
    MD_PRINTF(5, 6);
void md__err_at(struct ctx *c, const struct md__ynode *n, const char *path, const char *fmt, ...)
    MD_PRINTF(4, 5);
void md__warn_pos(struct ctx *c, int line, int col, const char *path, const char *fmt, ...)
    MD_PRINTF(5, 6);

/* s (len bytes) copied into buf for a message: control characters become '?', long text is
 * cut.  Returns buf. */
const char *md__show(const char *s, size_t len, char *buf, size_t size);
/* "a mapping", "a sequence", "an empty value" or the quoted text, for "got ..." messages. */
const char *md__describe(const struct md__ynode *n, char *buf, size_t size);
/* The scalar text of n, or NULL after reporting "expected <expect>, got ...". */
const char *md__scalar(struct ctx *c, const struct md__ynode *n, const char *path,
                       const char *expect);
/* Column of byte off of a scalar's text where that is known, else the node's own column. */
int md__inner_col(const struct md__ynode *n, size_t off);
/* Reports key k as unknown under prefix, with the closest of names[] (n of them, stride bytes
 * apart, each starting with a const char *) as a did-you-mean hint. */
void md__unknown_key(struct ctx *c, const struct md__ynode *k, const char *prefix,
                     const void *names, size_t n, size_t stride);
/* "prefix.key" (or "key" under the top level) into buf, the key shown as by md__show. */
void md__make_path(char *buf, size_t size, const char *prefix, const char *key, size_t klen);
/* A mapping key must be a scalar; returns false (after reporting) otherwise. */
bool md__key_ok(struct ctx *c, const struct md__ynode *k, const char *prefix);
/* Reports every repeated key of map and returns one flag per pair, true for a repeat (jobs:
 * "duplicate job" instead of "duplicate key").  Caller frees with md_free. */
bool *md__find_dups(struct ctx *c, const struct md__ynode *map, const char *prefix, bool jobs);

/* ---- config_value.c: value parsers ----------------------------------------------------------- */

/* Each returns false (and leaves *out alone) for text that is not a value of its type. */
bool md__parse_bool(const char *s, bool *out);     /* true/True/TRUE, false/False/FALSE */
bool md__parse_int(const char *s, long long *out); /* decimal, "-3" allowed for range checks */
bool md__parse_signal(const char *s, int *out);    /* TERM, SIGTERM, term or 1..64 */
bool md__parse_size(const char *s, uint64_t *out); /* bytes, or with KiB, MiB or GiB */
/* [A-Za-z0-9_.-]{1,64}: job names and node names. */
bool md__valid_name(const char *s, size_t len);
/* An environment variable name: a letter or '_', then letters, digits and '_' (at most 128). */
bool md__env_name_ok(const char *s, size_t len);
/* s with ${NAME} and ${NAME:-default} expanded from meshd's environment and $$ as '$'; v is
 * the node s came from (for error positions).  Returns a string the caller frees with
 * md_free, or NULL after reporting.  A message never shows a value. */
char *md__expand_env(struct ctx *c, const struct md__ynode *v, const char *s, const char *path);
/* The same for a job's config: strings: only ${ is special, $${ is a literal ${. */
char *md__expand_config(struct ctx *c, const struct md__ynode *v, const char *s, const char *path);

/* ---- config_job.c: the job key table --------------------------------------------------------- */

/* Per-job scratch while a job is being built. */
struct jobwork {
    struct md_job *job;
    bool in_defaults;   /* building the defaults: template, not a job */
    bool from_defaults; /* the value being applied comes from defaults: */
    bool kind_known;
    bool cron_ok;
    const struct md__ynode *worker_node, *command_node, *args_node;
    const struct md__ynode *schedule_node, *on_node, *backoff_node;
    const struct md__ynode *restart_node;
    int restart_src; /* 0: not set, 1: from defaults:, 2: set by the job */
    char **cmd;      /* command: split into words (NULL-terminated) */
    size_t ncmd;
    char **args; /* args: (NULL-terminated) */
    size_t nargs;
};

enum ktype { KT_DURATION, KT_BOOL, KT_INT, KT_ENUM, KT_SIGNAL, KT_STRING, KT_CUSTOM };
enum {
    K_JOB_ONLY = 1 << 0,    /* says what or when to run: not allowed in defaults: */
    K_NOT_SERVICE = 1 << 1, /* meaningless for schedule: always */
    K_CRON_ONLY = 1 << 2,   /* meaningful only with a cron schedule */
};

struct key_def;
/* Parses node v for key k into w->job.  Returns false after reporting a problem. */
typedef bool key_fn(struct ctx *c, struct jobwork *w, const struct key_def *k,
                    const struct md__ynode *v, const char *path);

struct key_def {
    const char *name;
    enum ktype type;
    unsigned flags;
    size_t off;      /* the field in struct md_job, typed by `type` (KT_ENUM: an int-sized enum) */
    const char *def; /* default, parsed like a value from the file; NULL: zero/NULL */
    long long min, max;            /* KT_INT range, KT_DURATION maximum (ms) */
    const struct enum_name *enums; /* KT_ENUM: NULL-terminated */
    key_fn *fn;                    /* KT_CUSTOM: the parser; others: a check run afterwards */
};

/* The keys of a job and of defaults:, in the order they are applied.  NJOBKEYS is their
 * number (a constant, for arrays indexed by key; config_job.c asserts it). */
#define NJOBKEYS 30
extern const struct key_def md__job_keys[];

/* Applies node v for key k to w->job; returns false after reporting a problem. */
bool md__apply_key(struct ctx *c, struct jobwork *w, const struct key_def *k,
                   const struct md__ynode *v, const char *path);
/* Sets every key's default in job (restart is settled later, from the job's kind). */
void md__job_set_defaults(struct md_job *job);
/* Frees what job owns and zeroes it. */
void md__job_cleanup(struct md_job *job);
/* Grows a NULL-terminated string vector by one (takes ownership of s). */
void md__strv_push(char ***v, size_t *n, char *s);
/* Frees a NULL-terminated string vector and its strings; NULL is fine. */
void md__strv_free(char **v);

/* config: any YAML, kept as compact JSON in config_json (config_json.c). */
key_fn md__key_config;

/* ---- config_job_build.c: defaults: and jobs: ------------------------------------------------- */

/* The defaults: section, checked once; ok[k] says which of its keys parsed. */
struct defaults {
    const struct md__ynode *node[NJOBKEYS];
    bool ok[NJOBKEYS];
};

/* Checks defaults: (map may be NULL) once and fills *def for md__jobs_build. */
void md__defaults_check(struct ctx *c, const struct md__ynode *map, struct defaults *def);
/* Builds c->cfg->jobs from jobs: (map may be NULL), each job over the defaults in def. */
void md__jobs_build(struct ctx *c, const struct md__ynode *map, const struct defaults *def);

/* ---- config_sections.c: node:, registry:, http:, cluster: ------------------------------------ */

/* Each fills its part of c->cfg, defaults included; map is the section or NULL if absent. */
void md__node_build(struct ctx *c, const struct md__ynode *map);
void md__registry_build(struct ctx *c, const struct md__ynode *map);
void md__http_build(struct ctx *c, const struct md__ynode *map);
void md__cluster_build(struct ctx *c, const struct md__ynode *map);

#endif
