/* duration.c - md_duration_parse (md_config.h).
 *
 * A file of its own, apart from config_value.c: workers bind durations from their JSON config
 * (md_json.h), and config_value.o would pull in the YAML side of the config (md__expand_env's
 * diagnostics, then config_yaml.o and libyaml) out of the static archive.
 */
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"

#include <stdint.h>
#include <string.h>

/* Grammar:
 *   duration = 1*DIGIT                     ; seconds
 *            | 1*( 1*DIGIT unit )          ; units strictly decreasing: "1h30m", not "30m1h"
 *   unit     = "d" | "h" | "m" | "s" | "ms"
 * No sign, no spaces, no fractions.  Overflow of uint64 milliseconds is an error. */
bool md_parse_digits(const char **p, uint64_t *v)
{
    const char *start = *p;

    *v = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++) {
        if (*v > (UINT64_MAX - (uint64_t)(**p - '0')) / 10)
            return false;
        *v = *v * 10 + (uint64_t)(**p - '0');
    }
    return *p != start;
}

int md_duration_parse(const char *s, uint64_t *out_ms)
{
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"ms", 1}, {"m", 60000}, {"s", 1000}};
    uint64_t total = 0, last_unit = UINT64_MAX;
    const char *p = s;

    if (s == NULL || *s == '\0')
        return MD_EPARSE;
    while (*p) {
        uint64_t v = 0, mul = 0;
        const char *start = p;

        if (!md_parse_digits(&p, &v))
            return MD_EPARSE;
        if (*p == '\0' && start == s) {
            mul = 1000; /* a bare number: seconds */
        } else {
            for (size_t i = 0; i < MD_ARRAY_SIZE(units); i++) {
                size_t l = strlen(units[i].name);
                if (strncmp(p, units[i].name, l) == 0) {
                    mul = units[i].ms;
                    p += l;
                    break;
                }
            }
            if (mul == 0 || mul >= last_unit)
                return MD_EPARSE;
            last_unit = mul;
        }
        if (v > UINT64_MAX / mul || total > UINT64_MAX - v * mul)
            return MD_EPARSE;
        total += v * mul;
    }
    *out_ms = total;
    return 0;
}
