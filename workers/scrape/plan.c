/* plan.c - a source's URL template expanded into files.  Pure: no I/O.
 *
 *   url: "https://x/{year}P/{county_name}%20{county}.zip"
 *   each: {county: [11, 16], county_name: [Alachua, Broward]}   zipped: file i takes element i
 *   vars: {year: 2025}                                          the same for every file
 *   partition: {co_no: "{county}"}                              the rows file i owns
 *
 * Values substituted into the URL are percent-encoded ("Miami Dade" -> "Miami%20Dade"); those
 * in the partition are taken as written.  "{{" and "}}" are literal braces.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "scrape.h"

#define MAX_VARS 32

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

char *scrape_template(const char *tpl, const char *const *names, const char *const *values,
                      size_t n, bool url_encode, struct md_error *err)
{
    struct md_buf b;
    const char *p = tpl;
    char *s;

    md_buf_init(&b, 64 * 1024);
    while (*p) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            (void)md_buf_put(&b, p, 1);
            p += 2;
            continue;
        }
        if (*p != '{') {
            (void)md_buf_put(&b, p++, 1);
            continue;
        }
        const char *end = strchr(p, '}');
        size_t i, len = end ? (size_t)(end - p - 1) : 0;
        if (end == NULL) {
            md_buf_free(&b);
            md_error_set(err, MD_ECONFIG, 0, 0, "unclosed '{' (write {{ for a literal brace)");
            return NULL;
        }
        for (i = 0; i < n; i++)
            if (strlen(names[i]) == len && memcmp(names[i], p + 1, len) == 0)
                break;
        if (i == n) {
            char known[120] = "";
            for (size_t k = 0; k < n; k++) {
                size_t used = strlen(known);
                snprintf(known + used, sizeof known - used, "%s%s", k ? ", " : "", names[k]);
            }
            md_buf_free(&b);
            md_error_set(err, MD_ECONFIG, 0, 0, "unknown variable {%.*s} (known: %s)", (int)len,
                         p + 1, n ? known : "none");
            return NULL;
        }
        for (const unsigned char *v = (const unsigned char *)values[i]; *v; v++) {
            if (!url_encode || unreserved(*v)) {
                (void)md_buf_put(&b, v, 1);
            } else {
                char hex[4];
                snprintf(hex, sizeof hex, "%%%02X", *v);
                (void)md_buf_put(&b, hex, 3);
            }
        }
        p = end + 1;
    }
    if (b.full) {
        md_buf_free(&b);
        md_error_set(err, MD_ECONFIG, 0, 0, "expands to over 64 KiB");
        return NULL;
    }
    s = md_buf_take(&b);
    return s ? s : md_xstrdup("");
}

/* A scalar as text: a string as is, an integral number without a fraction, true/false. */
static char *scalar_text(const cJSON *v)
{
    char tmp[64];

    if (cJSON_IsString(v))
        return md_xstrdup(v->valuestring);
    if (cJSON_IsBool(v))
        return md_xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (!cJSON_IsNumber(v))
        return NULL;
    if (v->valuedouble == (double)(long long)v->valuedouble)
        snprintf(tmp, sizeof tmp, "%lld", (long long)v->valuedouble);
    else
        snprintf(tmp, sizeof tmp, "%.17g", v->valuedouble);
    return md_xstrdup(tmp);
}

struct vars {
    size_t n;
    const char *names[MAX_VARS];
    cJSON *each[MAX_VARS]; /* the array, or NULL for a vars: scalar */
    char *fixed[MAX_VARS];
    const char *values[MAX_VARS];
    char *owned[MAX_VARS];
    size_t count; /* files: the each arrays' length, 1 without each */
};

static void vars_free(struct vars *v)
{
    for (size_t i = 0; i < v->n; i++) {
        md_free(v->fixed[i]);
        md_free(v->owned[i]);
    }
}

static int vars_add(struct vars *v, const char *path, const char *name, struct md_error *err)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcmp(v->names[i], name) == 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.%s: variable defined twice", path, name);
    if (v->n == MAX_VARS)
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s: more than %d variables", path, MAX_VARS);
    v->names[v->n] = name;
    return 0;
}

static int vars_bind(struct vars *v, const char *path, cJSON *each, cJSON *fixed,
                     struct md_error *err)
{
    const cJSON *m;
    int rc;

    v->count = 1;
    if (each != NULL && !cJSON_IsObject(each))
        return md_error_set(err, MD_ECONFIG, 0, 0,
                            "%s.each: expected an object of arrays ({county: [11, 16]})", path);
    if (fixed != NULL && !cJSON_IsObject(fixed))
        return md_error_set(err, MD_ECONFIG, 0, 0, "%s.vars: expected an object of values", path);
    for (m = each ? each->child : NULL; m != NULL; m = m->next) {
        int len = cJSON_GetArraySize(m);
        if (!cJSON_IsArray(m) || len == 0)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.each.%s: expected a non-empty array",
                                path, m->string);
        if (m != each->child && (size_t)len != v->count)
            return md_error_set(err, MD_ECONFIG, 0, 0,
                                "%s.each.%s: %d values, but %s has %zu (each: arrays are "
                                "paired element by element)",
                                path, m->string, len, each->child->string, v->count);
        v->count = (size_t)len;
        if ((rc = vars_add(v, path, m->string, err)) < 0)
            return rc;
        v->each[v->n++] = (cJSON *)m;
        for (const cJSON *e = m->child; e != NULL; e = e->next) {
            char *t = scalar_text(e);
            if (t == NULL)
                return md_error_set(err, MD_ECONFIG, 0, 0,
                                    "%s.each.%s: expected strings or numbers", path, m->string);
            md_free(t);
        }
    }
    for (m = fixed ? fixed->child : NULL; m != NULL; m = m->next) {
        if ((rc = vars_add(v, path, m->string, err)) < 0)
            return rc;
        if ((v->fixed[v->n] = scalar_text(m)) == NULL)
            return md_error_set(err, MD_ECONFIG, 0, 0, "%s.vars.%s: expected a string or a number",
                                path, m->string);
        v->n++;
    }
    return 0;
}

/* The values of file i. */
static void vars_select(struct vars *v, size_t i)
{
    for (size_t k = 0; k < v->n; k++) {
        md_free(v->owned[k]);
        v->owned[k] = NULL;
        if (v->each[k] != NULL)
            v->values[k] = v->owned[k] = scalar_text(cJSON_GetArrayItem(v->each[k], (int)i));
        else
            v->values[k] = v->fixed[k];
    }
}

static int check_columns(const struct scrape_source *s, const char *path, struct md_error *err)
{
    cJSON *c;
    int rc = 0;

    if (s->columns == NULL)
        return 0;
    c = cJSON_Parse(s->columns);
    if (cJSON_IsString(c)) {
        if (strcmp(c->valuestring, "auto") != 0 && strcmp(c->valuestring, "strict") != 0)
            rc = md_error_set(err, MD_ECONFIG, 0, 0,
                              "%s.columns: \"%s\" is not auto, strict or a map", path,
                              c->valuestring);
    } else if (cJSON_IsObject(c) && c->child != NULL) {
        for (const cJSON *m = c->child; m != NULL && rc == 0; m = m->next)
            if (!cJSON_IsString(m) || m->valuestring[0] == '\0')
                rc = md_error_set(err, MD_ECONFIG, 0, 0,
                                  "%s.columns.%s: expected the table column's name", path,
                                  m->string);
    } else {
        rc = md_error_set(err, MD_ECONFIG, 0, 0,
                          "%s.columns: expected auto, strict or a map {FILE_COLUMN: column}", path);
    }
    cJSON_Delete(c);
    return rc;
}

static int plan_source(const struct scrape_source *s, size_t si, struct scrape_file **files,
                       size_t *nf, size_t *cap, struct md_error *err)
{
    char path[32];
    struct vars v = {0};
    cJSON *each = s->each ? cJSON_Parse(s->each) : NULL;
    cJSON *fixed = s->vars ? cJSON_Parse(s->vars) : NULL;
    cJSON *part = s->partition ? cJSON_Parse(s->partition) : NULL;
    int rc;

    snprintf(path, sizeof path, "sources[%zu]", si);
    if ((rc = vars_bind(&v, path, each, fixed, err)) < 0 || (rc = check_columns(s, path, err)) < 0)
        goto out;
    if (part != NULL && (!cJSON_IsObject(part) || part->child == NULL)) {
        rc = md_error_set(err, MD_ECONFIG, 0, 0,
                          "%s.partition: expected an object {column: \"{var}\"}", path);
        goto out;
    }
    for (const cJSON *m = part ? part->child : NULL; m != NULL; m = m->next)
        if (!cJSON_IsString(m) && !cJSON_IsNumber(m)) {
            rc = md_error_set(err, MD_ECONFIG, 0, 0, "%s.partition.%s: expected a string", path,
                              m->string);
            goto out;
        }
    for (size_t i = 0; i < v.count; i++) {
        struct scrape_file *f;
        struct md_error e2 = {0};
        struct md_buf label;

        vars_select(&v, i);
        if (*nf == *cap) {
            *cap = *cap ? *cap * 2 : 16;
            *files = md_xrealloc(*files, *cap * sizeof **files);
        }
        f = &(*files)[*nf];
        memset(f, 0, sizeof *f);
        f->src = s;
        f->src_index = si;
        if ((f->url = scrape_template(s->url, v.names, v.values, v.n, true, &e2)) == NULL) {
            rc = md_error_set(err, MD_ECONFIG, 0, 0, "%s.url: %s", path, e2.msg);
            goto out;
        }
        (*nf)++;
        f->npart = (size_t)cJSON_GetArraySize(part);
        f->part_col = md_xcalloc(f->npart + 1, sizeof *f->part_col);
        f->part_val = md_xcalloc(f->npart + 1, sizeof *f->part_val);
        md_buf_init(&label, 64 * 1024);
        size_t k = 0;
        for (const cJSON *m = part ? part->child : NULL; m != NULL; m = m->next, k++) {
            char *tv = scalar_text(m);
            f->part_col[k] = md_xstrdup(m->string);
            f->part_val[k] = scrape_template(tv, v.names, v.values, v.n, false, &e2);
            md_free(tv);
            if (f->part_val[k] == NULL) {
                md_buf_free(&label);
                rc = md_error_set(err, MD_ECONFIG, 0, 0, "%s.partition.%s: %s", path, m->string,
                                  e2.msg);
                goto out;
            }
            if (k)
                (void)md_buf_put(&label, ",", 1);
            (void)md_buf_puts(&label, f->part_val[k]);
        }
        f->label = md_buf_take(&label);
        if (f->label == NULL)
            f->label = md_xstrdup("");
    }
out:
    vars_free(&v);
    cJSON_Delete(each);
    cJSON_Delete(fixed);
    cJSON_Delete(part);
    return rc;
}

void scrape_files_free(struct scrape_file *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        md_free(f[i].url);
        md_free(f[i].label);
        for (size_t k = 0; k < f[i].npart; k++) {
            md_free(f[i].part_col ? f[i].part_col[k] : NULL);
            md_free(f[i].part_val ? f[i].part_val[k] : NULL);
        }
        md_free(f[i].part_col);
        md_free(f[i].part_val);
    }
    md_free(f);
}

int scrape_plan(const struct scrape_cfg *cfg, struct scrape_file **out, size_t *n,
                struct md_error *err)
{
    const struct scrape_source *src = cfg->sources.v;
    struct scrape_file *files = NULL;
    size_t nf = 0, cap = 0;
    int rc = 0;

    for (size_t i = 0; i < cfg->sources.n && rc == 0; i++) {
        for (size_t j = 0; j < i && rc == 0; j++)
            if (strcmp(src[i].name, src[j].name) == 0)
                rc = md_error_set(err, MD_ECONFIG, 0, 0,
                                  "sources[%zu].name: \"%s\" is also sources[%zu]'s name", i,
                                  src[i].name, j);
        if (rc == 0)
            rc = plan_source(&src[i], i, &files, &nf, &cap, err);
    }
    for (size_t i = 0; i < nf && rc == 0; i++)
        for (size_t j = 0; j < i && rc == 0; j++)
            if (strcmp(files[i].url, files[j].url) == 0)
                rc = md_error_set(err, MD_ECONFIG, 0, 0,
                                  "sources[%zu].url: two files expand to the same URL %s",
                                  files[i].src_index, files[i].url);
    if (rc < 0) {
        scrape_files_free(files, nf);
        return rc;
    }
    *out = files;
    *n = nf;
    return 0;
}
