/*
 * firestamp: the command of the firing-lag benchmark's every-second jobs.
 *
 * First thing in main(), reads CLOCK_REALTIME; then parses MESHD_SCHEDULED_AT
 * ("YYYY-MM-DDTHH:MM:SSZ", UTC) and appends one line to the file named by argv[1]:
 *
 *   <MESHD_JOB> <scheduled epoch s> <exec epoch s.ns> <lag us> <MESHD_RUN_ID> <MESHD_NODE>
 *
 * (the node says which of several meshd ran the slot: firing_lag.sh --cluster --nodes N).
 *
 * Built statically (bench/firing_lag.sh) so that no ld.so / shared-library start-up sits
 * between the exec and the clock read.  What remains (glibc's static start-up, which runs
 * cpuid) still cost ~0.45 ms after execve on the 2-vCPU VM of docs/benchmarks.md.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    const char *at = getenv("MESHD_SCHEDULED_AT");
    const char *job = getenv("MESHD_JOB");
    const char *run = getenv("MESHD_RUN_ID");
    const char *node = getenv("MESHD_NODE");
    struct tm tm;
    char line[512];
    long long sched = -1;
    int fd, n;

    if (argc < 2)
        return 2;
    memset(&tm, 0, sizeof tm);
    if (at && sscanf(at, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) == 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        sched = (long long)timegm(&tm);
    }
    double lag_us =
        sched < 0 ? -1.0 : ((double)now.tv_sec - (double)sched) * 1e6 + now.tv_nsec / 1e3;
    n = snprintf(line, sizeof line, "%s %lld %lld.%09ld %.1f %s %s\n", job ? job : "-", sched,
                 (long long)now.tv_sec, now.tv_nsec, lag_us, run ? run : "-", node ? node : "-");
    if (n < 0 || (size_t)n >= sizeof line)
        return 1;
    fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 1;
    if (write(fd, line, (size_t)n) != n)
        return 1;
    close(fd);
    return 0;
}
