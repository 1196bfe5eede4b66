/* ctl_common.c - what several meshctl subcommands share. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

const char *ctl_default_config(void)
{
    const char *p = getenv("MESHD_CONFIG");
    return p && *p ? p : "conf/meshd.yaml";
}

const char *ctl_opt_value(const char *name, int argc, char **argv, int *i, bool *bad)
{
    size_t n = strlen(name);
    const char *a = argv[*i];

    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=')
        return a + n + 1;
    if (a[n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "meshctl %s: %s needs a value\n", argv[0], name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

/* "3m12s", or "3m" when terse and the smaller unit is zero. */
static void span_pair(char *buf, size_t size, unsigned long long hi, const char *hunit,
                      unsigned long long lo, const char *lunit, bool terse)
{
    if (terse && lo == 0)
        snprintf(buf, size, "%llu%s", hi, hunit);
    else
        snprintf(buf, size, "%llu%s%02llu%s", hi, hunit, lo, lunit);
}

/* The ladder both spans climb: milliseconds, seconds with a tenth, seconds, then two units
 * (m+s, h+m, d+h).  exact is ctl_fmt_ms: ms, the span in whole milliseconds, decides every
 * step (secs is only ms / 1000.0, for the tenth: a double would drop milliseconds of a span
 * past 2^53), fractions are shown up to a minute, a zero smaller unit is dropped and hours go
 * up to 48.  Otherwise secs decides, as ctl_fmt_span documents. */
static void fmt_span(char *buf, size_t size, double secs, uint64_t ms, bool exact)
{
    unsigned long long s = exact ? ms / 1000 : secs > 0 ? (unsigned long long)secs : 0;

    if (exact && ms < 1000)
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    else if (!exact && secs > 0 && secs < 1)
        snprintf(buf, size, "%.0fms", secs * 1000);
    else if (exact ? ms < 60000 && ms % 1000 != 0 : secs > 0 && secs < 10)
        snprintf(buf, size, "%.1fs", secs);
    else if (s < 60)
        snprintf(buf, size, "%llus", s);
    else if (s < 3600)
        span_pair(buf, size, s / 60, "m", s % 60, "s", exact);
    else if (s < (exact ? 172800 : 86400))
        span_pair(buf, size, s / 3600, "h", s / 60 % 60, "m", exact);
    else
        span_pair(buf, size, s / 86400, "d", s / 3600 % 24, "h", exact);
}

void ctl_fmt_span(char *buf, size_t size, double secs)
{
    fmt_span(buf, size, secs, 0, false);
}

void ctl_fmt_ms(char *buf, size_t size, uint64_t ms)
{
    fmt_span(buf, size, (double)ms / 1000.0, ms, true);
}
