/* config_value.c - the text of scalar values: booleans, integers, signals, sizes, names, and
 * ${VAR} expansion (durations are in duration.c).
 *
 * A parser takes a value's whole text and accepts nothing around it: no spaces, no sign noise.
 * md__expand_env is here because three keys share it: a job's env values, registry.url and
 * http.token.
 */
#include "config_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "meshd/md_alloc.h"

/* ---- scalar value parsers ------------------------------------------------------------------ */

bool md__parse_bool(const char *s, bool *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        *out = true;
    else if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        *out = false;
    else
        return false;
    return true;
}

/* A decimal integer without sign noise ("-3" is accepted so the range check can name it). */
bool md__parse_int(const char *s, long long *out)
{
    char *end;
    long long v;

    if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
        return false;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

static const struct {
    const char *name;
    int sig;
} signal_names[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"ABRT", SIGABRT}, {"KILL", SIGKILL},
    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"WINCH", SIGWINCH},
};

/* "TERM", "SIGTERM", "term" or a number 1..64. */
bool md__parse_signal(const char *s, int *out)
{
    long long n;

    if (md__parse_int(s, &n)) {
        if (n < 1 || n > 64)
            return false;
        *out = (int)n;
        return true;
    }
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < MD_ARRAY_SIZE(signal_names); i++) {
        if (strcasecmp(s, signal_names[i].name) == 0) {
            *out = signal_names[i].sig;
            return true;
        }
    }
    return false;
}

/* Grammar:
 *   size = 1*DIGIT [ "KiB" | "MiB" | "GiB" ]      ; plain bytes, or binary multiples
 * No sign, no spaces, no fractions; overflow of uint64 is an error. */
bool md__parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *name;
        uint64_t mul;
    } units[] = {{"", 1}, {"KiB", 1ULL << 10}, {"MiB", 1ULL << 20}, {"GiB", 1ULL << 30}};
    uint64_t v = 0;
    const char *p = s;

    if (!md_parse_digits(&p, &v))
        return false;
    for (size_t i = 0; i < MD_ARRAY_SIZE(units); i++) {
        if (strcmp(p, units[i].name) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return false;
            *out = v * units[i].mul;
            return true;
        }
    }
    return false;
}

/* ---- ${VAR} in string values ----------------------------------------------------------------- */

bool md__env_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > 128 ||
        !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/* Grammar of an env value:
 *   value   = *( text | "$$" | "${" name [ ":-" default ] "}" )
 *   name    = ( ALPHA | "_" ) *( ALNUM | "_" )
 *   default = *( any character but "}" )          ; taken literally
 * ${NAME} is NAME from meshd's environment; ${NAME:-x} is x when NAME is unset or empty.
 * Any other '$' is an error so that a typo never silently becomes text.  Messages name the
 * variable but never show a value: values are often secrets.
 *
 * Loose (a job's config: strings, which hold SQL): only "${" is special and "$${" writes a
 * literal "${"; every other '$' ($1, $$, $tag$ quoting) is text. */
static char *expand(struct ctx *c, const struct md__ynode *v, const char *s, const char *path,
                    bool loose)
{
    size_t cap = strlen(s) + 1, n = 0;
    char *out = md_xmalloc(cap);

    for (size_t i = 0; s[i];) {
        const char *add = s + i;
        size_t alen = 1;

        if (loose && s[i] == '$' && s[i + 1] == '$' && s[i + 2] == '{') {
            alen = 2; /* "$${" -> "${": the '$' and '{' of the text */
            add = "${";
            i += 3;
            goto append;
        }
        if (s[i] == '$' && (!loose || s[i + 1] == '{')) {
            size_t start = i, nend;
            const char *val, *def = NULL;
            size_t deflen = 0;

            if (s[i + 1] == '$') {
                alen = 1;
                i += 2;
                goto append;
            }
            if (s[i + 1] != '{') {
                md__err_pos(
                    c, v->line, md__inner_col(v, i), path,
                    "'$' must start ${NAME} or ${NAME:-default} (write $$ for a literal $)");
                goto fail;
            }
            for (nend = i + 2; s[nend] && s[nend] != '}' && s[nend] != ':'; nend++)
                ;
            if (!md__env_name_ok(s + i + 2, nend - (i + 2))) {
                md__err_pos(c, v->line, md__inner_col(v, start), path,
                            "bad variable name in ${...} (letters, digits and '_')");
                goto fail;
            }
            if (s[nend] == ':') {
                if (s[nend + 1] != '-') {
                    md__err_pos(c, v->line, md__inner_col(v, nend), path,
                                "expected ':-' after the variable name in ${...}");
                    goto fail;
                }
                def = s + nend + 2;
                deflen = strcspn(def, "}");
                i = nend + 2 + deflen;
            } else {
                i = nend;
            }
            if (s[i] != '}') {
                md__err_pos(c, v->line, md__inner_col(v, start), path, "unterminated ${");
                goto fail;
            }
            i++;
            {
                char *name = md_xstrndup(s + start + 2, nend - (start + 2));
                val = getenv(name);
                if (def && (val == NULL || *val == '\0')) {
                    add = def;
                    alen = deflen;
                } else if (val == NULL) {
                    md__err_pos(c, v->line, md__inner_col(v, start), path,
                                "environment variable '%s' is not set (write ${%s:-default} to "
                                "give a default)",
                                name, name);
                    md_free(name);
                    goto fail;
                } else {
                    add = val;
                    alen = strlen(val);
                }
                md_free(name);
            }
        } else {
            i++;
        }
    append:
        if (n + alen + 1 > cap) {
            cap = (n + alen + 1) * 2;
            out = md_xrealloc(out, cap);
        }
        memcpy(out + n, add, alen);
        n += alen;
    }
    out[n] = '\0';
    return out;
fail:
    md_free(out);
    return NULL;
}

char *md__expand_env(struct ctx *c, const struct md__ynode *v, const char *s, const char *path)
{
    return expand(c, v, s, path, false);
}

char *md__expand_config(struct ctx *c, const struct md__ynode *v, const char *s, const char *path)
{
    return expand(c, v, s, path, true);
}
