/* ctl_next.c - `meshctl next`: preview the fire instants of a cron expression or a job.
 *
 *   meshctl next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]
 *   meshctl next --job NAME [FILE] [--from ISO8601] [--count N]
 *
 * Prints the next N (default 1, at most 100000) instants strictly after --from (default now),
 * one per line, as ISO-8601 with seconds and a numeric offset in the zone.  Exit 0; 2 for bad
 * input (message on stderr); 1 when the schedule has no further fire within 100 years.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_cron.h"
#include "meshd/md_tz.h"

#define NEXT_MAX_COUNT 100000

static void next_usage(void)
{
    fputs("usage: meshctl next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]\n"
          "       meshctl next --job NAME [FILE] [--from ISO8601] [--count N]\n",
          stderr);
}

/* Prints "meshctl next: MSG", then the expression with a caret under column col. */
static void print_expr_error(const char *expr, const struct md_error *e)
{
    fprintf(stderr, "meshctl next: %s\n", e->msg);
    if (e->col <= 0)
        return;
    fprintf(stderr, "  %s\n  ", expr);
    for (int i = 1; i < e->col; i++)
        fputc(expr[i - 1] == '\t' ? '\t' : ' ', stderr);
    fputs("^\n", stderr);
}

static int parse_count(const char *s, long *out)
{
    char *end;
    long v;

    if (s[0] < '0' || s[0] > '9')
        return -1;
    v = strtol(s, &end, 10);
    if (*end != '\0' || v < 1 || v > NEXT_MAX_COUNT)
        return -1;
    *out = v;
    return 0;
}

int ctl_next(int argc, char **argv)
{
    const char *expr = NULL, *zone = NULL, *from = NULL, *count_s = NULL, *job = NULL;
    const char *file = NULL, *pos[8];
    size_t npos = 0;
    char *joined = NULL;
    struct md_config *cfg = NULL;
    struct md_tz *own_tz = NULL;
    const struct md_tz *tz = NULL;
    struct md_cron cron;
    struct md_error err = {0, 0, ""};
    long count = 1;
    int64_t t;
    int rc = 2;
    bool bad = false;

    for (int i = 1; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            next_usage();
            return 0;
        }
        if ((v = ctl_opt_value("--tz", argc, argv, &i, &bad)) != NULL)
            zone = v;
        else if ((v = ctl_opt_value("--from", argc, argv, &i, &bad)) != NULL)
            from = v;
        else if ((v = ctl_opt_value("--count", argc, argv, &i, &bad)) != NULL)
            count_s = v;
        else if ((v = ctl_opt_value("--job", argc, argv, &i, &bad)) != NULL)
            job = v;
        else if (bad)
            return 2;
        else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "meshctl next: unknown option '%s'\n", argv[i]);
            next_usage();
            return 2;
        } else if (npos < MD_ARRAY_SIZE(pos)) {
            pos[npos++] = argv[i];
        } else {
            fprintf(stderr, "meshctl next: too many arguments\n");
            next_usage();
            return 2;
        }
        if (bad)
            return 2;
    }
    if (job != NULL) {
        if (npos > 1) {
            fprintf(stderr, "meshctl next: unexpected argument '%s'\n", pos[1]);
            next_usage();
            return 2;
        }
        file = npos ? pos[0] : NULL;
        if (zone != NULL) {
            fprintf(stderr, "meshctl next: --tz cannot be used with --job (the job's zone "
                            "applies)\n");
            return 2;
        }
    } else if (npos == 0) {
        fprintf(stderr, "meshctl next: missing cron expression\n");
        next_usage();
        return 2;
    } else {
        /* 'EXPR' is one argument; unquoted fields (next 0 0 '*' '*' '*') are joined. */
        size_t len = 0;
        for (size_t k = 0; k < npos; k++)
            len += strlen(pos[k]) + 1;
        joined = md_xmalloc(len);
        joined[0] = '\0';
        for (size_t k = 0; k < npos; k++) {
            if (k)
                strcat(joined, " ");
            strcat(joined, pos[k]);
        }
        expr = joined;
    }
    if (count_s != NULL && parse_count(count_s, &count) != 0) {
        fprintf(stderr, "meshctl next: bad --count '%s': expected a number from 1 to %d\n", count_s,
                NEXT_MAX_COUNT);
        goto out;
    }

    if (job != NULL) {
        struct md_diag diag;
        const struct md_job *j;
        int lrc;

        if (file == NULL)
            file = ctl_default_config();
        md_diag_init(&diag);
        lrc = md_config_load(file, &cfg, &diag);
        if (lrc != 0) {
            md_diag_print(&diag, file, stderr);
            if (diag.nerrors == 0)
                fprintf(stderr, "meshctl next: cannot load %s: %s\n", file, md_strerror(lrc));
            md_diag_cleanup(&diag);
            goto out;
        }
        md_diag_cleanup(&diag);
        j = md_config_job(cfg, job);
        if (j == NULL) {
            fprintf(stderr, "meshctl next: %s: no job named '%s'\n", file, job);
            goto out;
        }
        if (j->kind != MD_JOB_CRON) {
            fprintf(stderr, "meshctl next: job '%s' has no cron schedule\n", job);
            goto out;
        }
        cron = j->cron;
        tz = j->tz;
    } else {
        int prc = md_cron_parse(&cron, expr, &err);
        if (prc != 0) {
            print_expr_error(expr, &err);
            goto out;
        }
        if (zone != NULL) {
            int zrc = md_tz_load(zone, &own_tz);
            if (zrc != 0) {
                fprintf(stderr, "meshctl next: unknown time zone '%s'%s%s\n", zone,
                        zrc == MD_ENOTZ ? "" : ": ", zrc == MD_ENOTZ ? "" : md_strerror(zrc));
                goto out;
            }
            tz = own_tz;
        }
    }

    if (from != NULL) {
        if (md_tz_parse_iso(tz, from, &t) != 0) {
            fprintf(stderr,
                    "meshctl next: bad --from '%s': expected ISO-8601 such as "
                    "2026-03-08T01:30:00-05:00, 2026-03-08T06:30:00Z or 2026-03-08T01:30 (local "
                    "time in the zone)\n",
                    from);
            goto out;
        }
    } else {
        t = (int64_t)time(NULL);
    }

    rc = 0;
    for (long k = 0; k < count; k++) {
        char buf[64];
        if (md_cron_next(&cron, tz, t, &t) != 0) {
            fprintf(stderr, "meshctl next: no %sfire time within 100 years\n", k ? "further " : "");
            rc = 1;
            break;
        }
        md_tz_format_iso(tz, t, buf, sizeof buf);
        puts(buf);
    }
out:
    md_free(joined);
    md_tz_free(own_tz);
    if (cfg != NULL)
        md_config_free(cfg);
    return rc;
}
