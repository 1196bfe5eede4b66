/* json.c - binds a JSON document to a C struct through a key table (md_json.h).
 *
 * The document is parsed whole with cJSON, walked against the table, copied into the struct and
 * deleted before returning (STYLE: cJSON trees never outlive the function that parsed them).
 * Each level of the walk appends its part of the key path ("views", "[2]", ".lock_timeout") to
 * one buffer and cuts it off again on the way back, so every message names the path the user
 * wrote without any allocation.
 *
 * Limits (one rule for every type that has them): min == max == 0 means none; otherwise min is
 * the lower bound, and max the upper bound unless max < min (then there is no upper bound, so
 * {.min = 1000} alone means "at least 1 s").
 */
#include "meshd/md_json.h"

#include "meshd/md_alloc.h"
#include "meshd/md_config.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The walk's state: where the error goes and the key path so far. */
struct bind {
    struct md_error *err;
    char path[256];
    size_t len;
};

static int bind_object(struct bind *b, const cJSON *obj, const struct md_json_key *keys, size_t n,
                       void *base);

/* cJSON reports allocation failure as NULL.  Where NULL can only mean OOM we abort, as
 * md_xmalloc does. */
static void *need(void *p)
{
    if (p == NULL) {
        fprintf(stderr, "fatal: out of memory in cJSON\n");
        abort();
    }
    return p;
}

/* Appends ".name" (just "name" at the top) or "[i]" to the path; returns the old length for
 * path_pop.  A path too long for the buffer is cut: the message stays readable. */
static size_t path_push_key(struct bind *b, const char *name)
{
    size_t old = b->len;
    int r = snprintf(b->path + b->len, sizeof b->path - b->len, "%s%s", b->len ? "." : "", name);

    if (r > 0)
        b->len = b->len + (size_t)r < sizeof b->path ? b->len + (size_t)r : sizeof b->path - 1;
    return old;
}

static size_t path_push_index(struct bind *b, size_t i)
{
    size_t old = b->len;
    int r = snprintf(b->path + b->len, sizeof b->path - b->len, "[%zu]", i);

    if (r > 0)
        b->len = b->len + (size_t)r < sizeof b->path ? b->len + (size_t)r : sizeof b->path - 1;
    return old;
}

static void path_pop(struct bind *b, size_t old)
{
    b->len = old;
    b->path[old] = '\0';
}

/* Fills the error as "<path>: <why>" and returns MD_ECONFIG. */
MD_PRINTF(2, 3) static int fail(struct bind *b, const char *fmt, ...)
{
    char why[sizeof b->err->msg];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return md_error_set(b->err, MD_ECONFIG, 0, 0, "%s: %s", b->len ? b->path : "(top level)", why);
}

static bool has_min(const struct md_json_key *k)
{
    return k->min != 0 || k->max != 0;
}

static bool has_max(const struct md_json_key *k)
{
    return (k->min != 0 || k->max != 0) && k->max >= k->min;
}

/* "1h30m", "5s", "250ms": a duration written the way md_duration_parse reads it. */
static void fmt_duration(uint64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t n = 0;

    buf[0] = '\0';
    if (ms == 0) {
        snprintf(buf, size, "0s");
        return;
    }
    for (size_t i = 0; i < MD_ARRAY_SIZE(units) && ms > 0; i++) {
        if (ms < units[i].ms)
            continue;
        int r = snprintf(buf + n, size - n, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
        if (r < 0 || (size_t)r >= size - n)
            return;
        n += (size_t)r;
        ms %= units[i].ms;
    }
}

static int check_number(struct bind *b, const struct md_json_key *k, double v)
{
    if (has_min(k) && v < k->min)
        return fail(b, "%.15g is under the minimum %.15g", v, k->min);
    if (has_max(k) && v > k->max)
        return fail(b, "%.15g is over the maximum %.15g", v, k->max);
    return 0;
}

static int check_count(struct bind *b, const struct md_json_key *k, size_t count)
{
    if (has_min(k) && (double)count < k->min)
        return fail(b, "%zu items, at least %.15g needed", count, k->min);
    if (has_max(k) && (double)count > k->max)
        return fail(b, "%zu items, at most %.15g allowed", count, k->max);
    return 0;
}

static int bind_string(struct bind *b, const cJSON *v, const struct md_json_key *k, char **out)
{
    char list[160];
    size_t n = 0;

    if (!cJSON_IsString(v))
        return fail(b, "expected a string");
    if (k->choices == NULL) {
        *out = md_xstrdup(v->valuestring);
        return 0;
    }
    list[0] = '\0';
    for (const char *const *c = k->choices; *c != NULL; c++) {
        if (strcmp(*c, v->valuestring) == 0) {
            *out = md_xstrdup(v->valuestring);
            return 0;
        }
        int r = snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *c);
        if (r > 0)
            n = n + (size_t)r < sizeof list ? n + (size_t)r : sizeof list - 1;
    }
    return fail(b, "\"%.40s\" is not one of %s", v->valuestring, list);
}

static int bind_int(struct bind *b, const cJSON *v, const struct md_json_key *k, int64_t *out)
{
    double d;

    /* cJSON keeps numbers as doubles: integers beyond 2^53 are already rounded, and the
     * int64_t range check must be done on the double before converting. */
    if (!cJSON_IsNumber(v))
        return fail(b, "expected an integer");
    d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return fail(b, "expected an integer");
    if (check_number(b, k, d) < 0)
        return MD_ECONFIG;
    *out = (int64_t)d;
    return 0;
}

static int bind_double(struct bind *b, const cJSON *v, const struct md_json_key *k, double *out)
{
    /* cJSON reads 1e999 as infinity. */
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(b, "expected a finite number");
    if (check_number(b, k, v->valuedouble) < 0)
        return MD_ECONFIG;
    *out = v->valuedouble;
    return 0;
}

static int bind_duration(struct bind *b, const cJSON *v, const struct md_json_key *k, uint64_t *out)
{
    char have[48], lim[48];
    uint64_t ms;

    if (cJSON_IsString(v)) {
        if (md_duration_parse(v->valuestring, &ms) < 0)
            return fail(b, "expected a duration such as \"5s\" or \"30m\"");
    } else if (cJSON_IsNumber(v)) {
        /* A number is seconds, fractions allowed (0.25 is 250 ms); 1e12 s is ~31700 years. */
        double s = v->valuedouble;
        if (!isfinite(s) || s < 0 || s > 1e12)
            return fail(b, "expected a duration such as \"5s\" or \"30m\"");
        ms = (uint64_t)llround(s * 1000.0);
    } else {
        return fail(b, "expected a duration such as \"5s\" or \"30m\"");
    }
    fmt_duration(ms, have, sizeof have);
    if (has_min(k) && (double)ms < k->min) {
        fmt_duration((uint64_t)k->min, lim, sizeof lim);
        return fail(b, "%s is under the minimum %s", have, lim);
    }
    if (has_max(k) && (double)ms > k->max) {
        fmt_duration((uint64_t)k->max, lim, sizeof lim);
        return fail(b, "%s is over the maximum %s", have, lim);
    }
    *out = ms;
    return 0;
}

/* The list is stored before its items are checked, so that a failure half way leaves a
 * well-formed list for md_json_free. */
static int bind_strv(struct bind *b, const cJSON *v, const struct md_json_key *k,
                     struct md_strv *out)
{
    size_t count, i = 0;
    const cJSON *it;

    if (cJSON_IsString(v)) {
        out->v = md_xcalloc(2, sizeof *out->v);
        out->v[0] = md_xstrdup(v->valuestring);
        out->n = 1;
        return check_count(b, k, 1);
    }
    if (!cJSON_IsArray(v))
        return fail(b, "expected a string or an array of strings");
    count = (size_t)cJSON_GetArraySize(v);
    out->v = md_xcalloc(count + 1, sizeof *out->v);
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it)) {
            size_t old = path_push_index(b, i);
            int rc = fail(b, "expected a string");
            path_pop(b, old);
            return rc;
        }
        out->v[i++] = md_xstrdup(it->valuestring);
        out->n = i;
    }
    return check_count(b, k, count);
}

static int bind_array(struct bind *b, const cJSON *v, const struct md_json_key *k,
                      struct md_json_array *out)
{
    size_t count, i = 0;
    const cJSON *it;
    int rc;

    if (!cJSON_IsArray(v))
        return fail(b, "expected an array of objects");
    count = (size_t)cJSON_GetArraySize(v);
    if ((rc = check_count(b, k, count)) < 0)
        return rc;
    /* n is the whole count from the start: every element is zeroed, so md_json_free can walk
     * them all whatever happened to the ones after a failure. */
    out->v = md_xcalloc(count ? count : 1, k->elem_size);
    out->n = count;
    cJSON_ArrayForEach(it, v)
    {
        size_t old = path_push_index(b, i);
        rc = bind_object(b, it, k->sub, k->nsub, (char *)out->v + i * k->elem_size);
        path_pop(b, old);
        if (rc < 0)
            return rc;
        i++;
    }
    return 0;
}

static int bind_raw(const cJSON *v, char **out)
{
    char *text = need(cJSON_PrintUnformatted(v));

    *out = md_xstrdup(text);
    cJSON_free(text);
    return 0;
}

static int bind_value(struct bind *b, const cJSON *v, const struct md_json_key *k, void *base)
{
    void *m = (char *)base + k->off;

    switch (k->type) {
    case MD_J_STRING:
        return bind_string(b, v, k, m);
    case MD_J_INT:
        return bind_int(b, v, k, m);
    case MD_J_DOUBLE:
        return bind_double(b, v, k, m);
    case MD_J_BOOL:
        if (!cJSON_IsBool(v))
            return fail(b, "expected true or false");
        *(bool *)m = cJSON_IsTrue(v);
        return 0;
    case MD_J_DURATION:
        return bind_duration(b, v, k, m);
    case MD_J_STRV:
        return bind_strv(b, v, k, m);
    case MD_J_OBJECT:
        return bind_object(b, v, k->sub, k->nsub, m);
    case MD_J_ARRAY:
        return bind_array(b, v, k, m);
    case MD_J_RAW:
        return bind_raw(v, m);
    }
    return fail(b, "key table: unknown type %d", (int)k->type);
}

/* A key that is absent (or null): its default, or {} for an object so that its own members'
 * defaults apply; otherwise the member stays as the caller zeroed it. */
static int bind_absent(struct bind *b, const struct md_json_key *k, void *base)
{
    const char *def = k->def;
    cJSON *v;
    int rc;

    if (k->required)
        return fail(b, "required");
    if (def == NULL && k->type == MD_J_OBJECT)
        def = "{}";
    if (def == NULL)
        return 0;
    v = cJSON_Parse(def);
    if (v == NULL) /* a bug in the worker's key table, not in the user's config */
        return fail(b, "the key table's default is not JSON: %.60s", def);
    rc = bind_value(b, v, k, base);
    cJSON_Delete(v);
    return rc;
}

static int unknown_key(struct bind *b, const struct md_json_key *keys, size_t n)
{
    char list[160];
    size_t len = 0;

    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int r = snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "", keys[i].name);
        if (r < 0 || (size_t)r >= sizeof list - len) {
            snprintf(list + len, sizeof list - len, ", ...");
            break;
        }
        len += (size_t)r;
    }
    return fail(b, "unknown key (known: %s)", n ? list : "none");
}

/* Every member of obj must be in the table, once. */
static int check_members(struct bind *b, const cJSON *obj, const struct md_json_key *keys, size_t n)
{
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        size_t i = 0, old;
        int rc = 0;

        while (i < n && strcmp(keys[i].name, m->string) != 0)
            i++;
        old = path_push_key(b, m->string);
        if (i == n)
            rc = unknown_key(b, keys, n);
        for (const cJSON *p = obj->child; rc == 0 && p != m; p = p->next)
            if (strcmp(p->string, m->string) == 0)
                rc = fail(b, "given twice");
        path_pop(b, old);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int bind_object(struct bind *b, const cJSON *obj, const struct md_json_key *keys, size_t n,
                       void *base)
{
    int rc;

    if (!cJSON_IsObject(obj))
        return fail(b, "expected an object");
    if ((rc = check_members(b, obj, keys, n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, keys[i].name);
        size_t old = path_push_key(b, keys[i].name);

        if (v == NULL || cJSON_IsNull(v))
            rc = bind_absent(b, &keys[i], base);
        else
            rc = bind_value(b, v, &keys[i], base);
        path_pop(b, old);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool all_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

/* MD_EPARSE for a syntax error at byte offset off: the message gives the offset and its line
 * and column, err->col the 1-based byte position (md_json.h). */
static int syntax_error(struct md_error *err, const char *json, size_t len, size_t off,
                        const char *what)
{
    int line = 1, col = 1;

    for (size_t i = 0; i < off && i < len; i++) {
        if (json[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return md_error_set(err, MD_EPARSE, 0, (int)off + 1,
                        "%s at byte offset %zu (line %d, column %d)", what, off, line, col);
}

int md_json_bind(const char *json, size_t len, const struct md_json_key *keys, size_t n, void *out,
                 struct md_error *err)
{
    struct bind b = {.err = err};
    const char *end = NULL;
    cJSON *doc;
    int rc;

    if (json == NULL || all_space(json, len)) {
        json = "{}";
        len = 2;
    }
    doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (doc == NULL) {
        size_t off = end != NULL && end >= json ? (size_t)(end - json) : 0;
        return syntax_error(err, json, len, off, "invalid JSON");
    }
    /* ParseWithLengthOpts stops after the value: anything but white space after it is an
     * error too ("{} x"). */
    if (end != NULL && !all_space(end, len - (size_t)(end - json))) {
        size_t off = (size_t)(end - json);
        while (all_space(json + off, 1))
            off++;
        cJSON_Delete(doc);
        return syntax_error(err, json, len, off, "text after the JSON document");
    }
    rc = bind_object(&b, doc, keys, n, out);
    cJSON_Delete(doc);
    return rc;
}

static void free_strv(struct md_strv *sv)
{
    for (size_t i = 0; i < sv->n; i++)
        md_free(sv->v[i]);
    md_free(sv->v);
    sv->v = NULL;
    sv->n = 0;
}

void md_json_free(const struct md_json_key *keys, size_t n, void *out)
{
    for (size_t i = 0; i < n; i++) {
        const struct md_json_key *k = &keys[i];
        void *m = (char *)out + k->off;

        switch (k->type) {
        case MD_J_STRING:
        case MD_J_RAW:
            md_free(*(char **)m);
            *(char **)m = NULL;
            break;
        case MD_J_STRV:
            free_strv(m);
            break;
        case MD_J_OBJECT:
            md_json_free(k->sub, k->nsub, m);
            break;
        case MD_J_ARRAY: {
            struct md_json_array *a = m;
            for (size_t j = 0; j < a->n; j++)
                md_json_free(k->sub, k->nsub, (char *)a->v + j * k->elem_size);
            md_free(a->v);
            a->v = NULL;
            a->n = 0;
            break;
        }
        case MD_J_INT:
        case MD_J_DOUBLE:
        case MD_J_BOOL:
        case MD_J_DURATION:
            break;
        }
    }
}
