/* fuzz_cron.c - libFuzzer target: arbitrary bytes as a cron expression.
 *
 * Parses a NUL-terminated copy; if it parses, asks for a few next fires from a fixed instant in
 * UTC and in a DST zone, checks that they increase strictly, and runs the linter.  The zones
 * are loaded once (tzdata must be installed; UTC falls back to the built-in zone).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_cron.h"
#include "meshd/md_tz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct md_tz *utc, *dst_zone;

static void ignore_warning(void *ud, int col, const char *msg)
{
    (void)ud;
    (void)col;
    (void)msg;
}

static void walk(const struct md_cron *c, const struct md_tz *tz, int64_t t)
{
    for (int i = 0; i < 4; i++) {
        int64_t next;
        if (md_cron_next(c, tz, t, &next) != 0)
            return;
        if (next <= t)
            abort(); /* must be strictly after */
        t = next;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct md_cron c;
    struct md_error err;
    char *expr;

    if (utc == NULL) {
        if (md_tz_load("UTC", &utc) != 0 || md_tz_load("America/New_York", &dst_zone) != 0)
            abort();
    }
    if (size > 4096)
        return 0;
    expr = malloc(size + 1);
    if (expr == NULL)
        return 0;
    memcpy(expr, data, size);
    expr[size] = '\0';
    if (md_cron_parse(&c, expr, &err) == 0) {
        /* 2026-03-07T12:00:00Z: a day before a spring-forward gap. */
        walk(&c, utc, 1772884800);
        walk(&c, dst_zone, 1772884800);
        c.dst = MD_CRON_DST_SKIP;
        /* 2026-10-31T16:00:00Z: the day before a fall-back fold. */
        walk(&c, dst_zone, 1793462400);
        md_cron_lint(&c, expr, dst_zone, ignore_warning, NULL);
    } else if (err.col < 0 || (size_t)err.col > size + 1 ||
               memchr(err.msg, '\0', sizeof err.msg) == NULL) {
        abort(); /* the column points into the expression (or just past it) */
    }
    free(expr);
    return 0;
}
