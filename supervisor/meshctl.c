/* meshctl - the operator's command line: check a schedule, preview fire times, migrate the
 * registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "meshd/md_log.h"

static void usage(FILE *f)
{
    fputs("usage: meshctl check [FILE]\n"
          "       meshctl next 'EXPR' [--tz ZONE] [--from ISO8601] [--count N]\n"
          "       meshctl next --job NAME [FILE] [--from ISO8601] [--count N]\n"
          "       meshctl migrate [--url URL]\n"
          "       meshctl health [--url URL] [--config FILE] [--json] [--stale 5m] [--slow 500ms]\n"
          "FILE defaults to $MESHD_CONFIG, else conf/meshd.yaml.\n",
          f);
}

int main(int argc, char **argv)
{
    md_log_init("meshctl", MD_LOG_WARN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "check") == 0)
        return ctl_check(argc - 1, argv + 1);
    if (strcmp(argv[1], "next") == 0)
        return ctl_next(argc - 1, argv + 1);
    if (strcmp(argv[1], "migrate") == 0)
        return ctl_migrate(argc - 1, argv + 1);
    if (strcmp(argv[1], "health") == 0)
        return ctl_health(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "meshctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
