/* meshd - the supervisor daemon: argv, signals, the loop, the exit code.  Nothing else. */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <uv.h>

#include "meshd/md_alloc.h"
#include "meshd/md_config.h"
#include "meshd/md_log.h"
#include "http.h"
#include "scheduler.h"
#include "sup.h"

/* The HTTP API's before_batch hook (http.h): due cron work starts before a request is served. */
static void http_before_batch(void *ud)
{
    sup_clock_check(ud);
}

/* sup_hooks.started: the HTTP API comes up, wired to the scheduler through its hook. */
static int http_start(struct sup *sup)
{
    const struct sup_http_hooks http_hooks = {.before_batch = http_before_batch, .ud = sup};

    return sup_http_start(sup, &http_hooks);
}

static void usage(FILE *f)
{
    fputs("usage: meshd [-c FILE] [--log-level LEVEL]\n"
          "  -c, --config FILE      schedule to run (default $MESHD_CONFIG, else conf/meshd.yaml)\n"
          "  -l, --log-level LEVEL  error|warn|notice|info|debug (overrides node.log_level)\n"
          "  -V, --version          print the version and exit\n"
          "Signals: SIGTERM/SIGINT stop every job gracefully; SIGHUP reloads the schedule.\n",
          f);
}

/* Workers are found beside the binary unless MESHD_WORKER_DIR says otherwise: <bin>/libexec/meshd
 * in a build tree, <bin>/../libexec/meshd once installed (PREFIX/bin, PREFIX/libexec/meshd).
 * The config module resolves "worker: NAME" against it. */
static void default_worker_dir(void)
{
    char exe[PATH_MAX];
    ssize_t n;
    char *dir, *bindir;

    if (getenv("MESHD_WORKER_DIR") != NULL)
        return;
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = '\0';
    bindir = dirname(exe);
    dir = md_xasprintf("%s/libexec/meshd", bindir);
    if (access(dir, X_OK) != 0) {
        md_free(dir);
        dir = md_xasprintf("%s/../libexec/meshd", bindir);
    }
    setenv("MESHD_WORKER_DIR", dir, 0);
    md_free(dir);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"log-level", required_argument, NULL, 'l'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = getenv("MESHD_CONFIG");
    const char *level_arg = NULL;
    enum md_log_level level = MD_LOG_NOTICE;
    struct md_config *cfg = NULL;
    struct md_diag diag;
    struct sup sup;
    /* The HTTP API lives above the supervisor: it comes up once the jobs exist and goes once
     * they are all down. */
    static const struct sup_hooks hooks = {.started = http_start, .stopped = sup_http_close};
    uv_loop_t *loop;
    int c, r;

    if (path == NULL || *path == '\0')
        path = "conf/meshd.yaml";
    while ((c = getopt_long(argc, argv, "c:l:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'l':
            level_arg = optarg;
            break;
        case 'V':
            puts("meshd " MESHD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return MD_EXIT_PERMANENT;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return MD_EXIT_PERMANENT;
    }
    if (level_arg != NULL && md_log_level_parse(level_arg, &level) < 0) {
        fprintf(stderr, "meshd: bad --log-level '%s'\n", level_arg);
        return MD_EXIT_PERMANENT;
    }
    md_log_init("meshd", level);
    default_worker_dir();

    md_diag_init(&diag);
    r = md_config_load(path, &cfg, &diag);
    md_diag_print(&diag, path, stderr);
    md_diag_cleanup(&diag);
    if (r < 0) {
        md_log_err(MD_LOG_ERROR, r, "config rejected: path=%s", path);
        return MD_EXIT_PERMANENT;
    }
    if (level_arg == NULL && cfg->log_level != NULL &&
        md_log_level_parse(cfg->log_level, &level) == 0)
        md_log_init("meshd", level);

    /* A write to a child's stdin after it exited must be an EPIPE, not our death.  launch.c
     * resets every signal disposition in the child before exec, so children still get SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Orphaned grandchildren come to us (not to init) so they are reaped and never linger as
     * zombies; as PID 1 in a container that is the case anyway. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        md_log_err(MD_LOG_WARN, -errno, "prctl(PR_SET_CHILD_SUBREAPER)");

    loop = uv_default_loop();
    r = sup_start(&sup, loop, cfg, path, &hooks);
    if (r < 0) {
        md_config_free(cfg);
        return MD_EXIT_TEMPORARY;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    sup_cleanup(&sup);
    r = uv_loop_close(loop);
    if (r != 0)
        md_log_err(MD_LOG_WARN, r, "loop closed with live handles");
    md_log(MD_LOG_NOTICE, "exit: code=0");
    return MD_EXIT_OK;
}
