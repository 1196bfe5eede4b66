/* launch_cost - how long sup_launch holds its caller (meshd's loop), per path.
 *
 *   launch_cost CGROUP_DIR [N]
 *
 * Launches /bin/true N times (default 50) through launch.c, each way: clone3 and vfork, without
 * and with a cgroup for the child (CGROUP_DIR, a cgroup v2 directory the caller may create
 * children in; "-" to skip the cgroup rows), spaced 100 ms apart ("alone": what a lone job
 * costs) and back to back ("burst").  Prints the median and p90 of the time sup_launch took, in
 * microseconds, one line per row.  Built and run by bench/launch_cost.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launch.h"
#include "launch_internal.h"

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void row(const char *path, const char *mode, int cgdir, int n, int gap_ms)
{
    char *argv[] = {"true", NULL};
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};
    double *t = calloc((size_t)n, sizeof *t);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    sup__launch_force_vfork(strcmp(mode, "vfork") == 0);
    for (int i = 0; i < n; i++) {
        struct sup_launch l = {.path = path, .argv = argv, .envp = envp, .cgroup_dir = cgdir};
        struct sup_launched out;
        double t0;
        l.fds[0] = l.fds[1] = l.fds[2] = l.fds[3] = null;
        t0 = now_us();
        if (sup_launch(&l, &out) < 0) {
            fprintf(stderr, "launch_cost: %s failed at %s: %s\n", mode, out.step, strerror(errno));
            exit(1);
        }
        t[i] = now_us() - t0;
        waitpid(out.pid, NULL, 0);
        close(out.pidfd);
        if (gap_ms)
            usleep((useconds_t)gap_ms * 1000);
    }
    qsort(t, (size_t)n, sizeof *t, cmp);
    printf("launch_held_us path=%s mode=%s cgroup=%s spacing=%s n=%d median=%.1f p90=%.1f\n", path,
           mode, cgdir >= 0 ? "yes" : "no", gap_ms ? "alone" : "burst", n, t[n / 2], t[n * 9 / 10]);
    close(null);
    free(t);
    sup__launch_force_vfork(false);
}

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 50, cgdir = -1;
    const char *modes[] = {"clone3", "vfork"};

    if (argc < 2) {
        fprintf(stderr, "usage: launch_cost CGROUP_DIR|- [N]\n");
        return 2;
    }
    if (!sup__launch_force_vfork(false))
        modes[0] = "vfork(no clone3 here)";
    if (strcmp(argv[1], "-") != 0 &&
        (cgdir = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        perror(argv[1]);
        return 1;
    }
    for (int c = 0; c < (cgdir >= 0 ? 2 : 1); c++)
        for (int m = 0; m < 2; m++)
            for (int g = 0; g < 2; g++)
                row("/bin/true", modes[m], c ? cgdir : -1, n, g ? 0 : 100);
    return 0;
}
