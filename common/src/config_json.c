/* config_json.c - a job's config: key, any YAML, kept as compact JSON for the worker.
 *
 * Scalars resolve as in the YAML 1.2 core schema (quoted text stays a string) and numbers keep
 * their digits.  ${VAR} in a string is expanded from meshd's environment first (md__expand_config:
 * only "${" is special, so SQL's $1 and $$ stay as written).  The cJSON tree never outlives
 * md__key_config: print, copy, delete.
 */
#include "config_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_log.h"

/* ---- config: any YAML to JSON ---------------------------------------------------------------- */

static void *json_check(void *p)
{
    if (p == NULL) {
        fputs("fatal: out of memory in cJSON\n", stderr); /* cJSON only fails on OOM here */
        abort();
    }
    return p;
}

/* True if s is a JSON number as written (RFC 8259 grammar). */
static bool is_json_number(const char *s)
{
    const char *p = s;

    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return false;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* A plain YAML scalar resolved as in the YAML 1.2 core schema; quoted text stays a string.
 * Numbers keep their exact digits (cJSON raw), so 64-bit ids survive the trip. */
static cJSON *json_scalar(const struct md__ynode *n, const char *s)
{
    char *end;
    bool b;

    if (!n->plain)
        return json_check(cJSON_CreateString(s));
    if (md__ynode_is_null(n))
        return json_check(cJSON_CreateNull());
    if (md__parse_bool(s, &b))
        return json_check(cJSON_CreateBool(b));
    if (is_json_number(s))
        return json_check(cJSON_CreateRaw(s));
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2]) {
        unsigned long long v;
        errno = 0;
        v = strtoull(s + 2, &end, s[1] == 'x' ? 16 : 8);
        if (errno == 0 && *end == '\0' && s[2] != '-' && s[2] != '+' && s[2] != ' ') {
            char num[32];
            snprintf(num, sizeof num, "%llu", v);
            return json_check(cJSON_CreateRaw(num));
        }
    } else if ((s[0] == '+' || s[0] == '-' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9')) &&
               strspn(s, "+-.0123456789eE") == strlen(s)) {
        double d;
        errno = 0;
        d = strtod(s, &end);
        if (errno == 0 && *end == '\0' && d == d && d - d == 0)
            return json_check(cJSON_CreateNumber(d));
    }
    return json_check(cJSON_CreateString(s));
}

static cJSON *to_json(struct ctx *c, const struct md__ynode *n, const char *path, bool *ok)
{
    char kpath[300];
    cJSON *j;

    switch (n->type) {
    case MD__Y_BAD:
        *ok = false;
        return json_check(cJSON_CreateNull());
    case MD__Y_SCALAR: {
        char *x = NULL;
        if (strlen(n->value) != n->len) {
            md__err_at(c, n, path, "the value contains a NUL character");
            *ok = false;
        } else if (strstr(n->value, "${") != NULL &&
                   (x = md__expand_config(c, n, n->value, path)) == NULL) {
            *ok = false;
        }
        /* A plain scalar resolves after expansion (count: ${ROWS:-500} is a number). */
        j = json_scalar(n, x ? x : n->value);
        md_free(x);
        return j;
    }
    case MD__Y_SEQ:
        j = json_check(cJSON_CreateArray());
        for (size_t i = 0; i < n->n; i++) {
            snprintf(kpath, sizeof kpath, "%s[%zu]", path, i);
            cJSON_AddItemToArray(j, to_json(c, n->kids[i], kpath, ok));
        }
        return j;
    case MD__Y_MAP: {
        bool *dup = md__find_dups(c, n, path, false);
        j = json_check(cJSON_CreateObject());
        for (size_t i = 0; i + 1 < n->n; i += 2) {
            const struct md__ynode *kn = n->kids[i];
            if (dup[i / 2] || !md__key_ok(c, kn, path)) {
                *ok = false;
                continue;
            }
            if (strlen(kn->value) != kn->len) {
                md__err_at(c, kn, path, "a key contains a NUL character");
                *ok = false;
                continue;
            }
            md__make_path(kpath, sizeof kpath, path, kn->value, kn->len);
            cJSON_AddItemToObject(j, kn->value, to_json(c, n->kids[i + 1], kpath, ok));
        }
        md_free(dup);
        return j;
    }
    }
    MD_UNREACHABLE();
}

bool md__key_config(struct ctx *c, struct jobwork *w, const struct key_def *k,
                    const struct md__ynode *v, const char *path)
{
    bool ok = true;
    cJSON *j = to_json(c, v, path, &ok);
    char *text = json_check(cJSON_PrintUnformatted(j));

    /* The tree never outlives this function: print, copy, delete. */
    md_free(w->job->config_json);
    w->job->config_json = md_xstrdup(text);
    cJSON_free(text);
    cJSON_Delete(j);
    return ok;
}
