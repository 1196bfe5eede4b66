/* meshctl - the operator's command line: check a schedule, preview fire times, migrate the
 * registry, check the fleet's health, and control a running meshd over its API. */
#include <stdbool.h>
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
          "       meshctl publish TYPE [PAYLOAD_JSON] [--url URL] [--source NAME] [--priority N]\n"
          "                       [--to-node NODE] [--to-job JOB]\n"
          "       meshctl status [JOB] [--json] [API]\n"
          "       meshctl run|pause|resume|restart|stop JOB [--json] [API]\n"
          "       meshctl reload [--json] [API]\n"
          "       meshctl logs JOB [--json] [API]\n"
          "FILE defaults to $MESHD_CONFIG, else conf/meshd.yaml.\n"
          "API: --socket PATH (default <node.state_dir>/meshd.sock of --config FILE), or\n"
          "     --url http://HOST:PORT [--token TOKEN] (default $MESHD_API_TOKEN).\n"
          "Exit codes of the API commands: 0 ok, 1 meshd refused or answered an error (status:\n"
          "unhealthy), 2 usage, 3 meshd not running or unreachable, 4 not authorized.\n",
          f);
}

/* The control actions ctl_action handles. */
static bool is_action(const char *cmd)
{
    static const char *const actions[] = {"run", "pause", "resume", "restart", "stop", "reload"};

    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(cmd, actions[i]) == 0)
            return true;
    return false;
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
    if (strcmp(argv[1], "publish") == 0)
        return ctl_publish(argc - 1, argv + 1);
    if (strcmp(argv[1], "status") == 0)
        return ctl_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "logs") == 0)
        return ctl_logs(argc - 1, argv + 1);
    if (is_action(argv[1]))
        return ctl_action(argc - 1, argv + 1);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "meshctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
