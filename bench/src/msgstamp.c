/*
 * msgstamp: the command of the bus-latency benchmark's `on:` jobs (bench/bus_latency.sh).
 *
 * First thing in main(), reads CLOCK_REALTIME; then appends one line to the file named by
 * argv[1] (O_APPEND, one write: several nodes may share the file):
 *
 *   <MESHD_MESSAGE_ID> <MESHD_RUN_ID> <exec epoch s.ns> <MESHD_NODE>
 *
 * The script joins the line with the message's row (created_at, claimed_at) and the run's
 * (agent_runs.started_at).  Built statically, like firestamp, so no ld.so start-up sits between
 * the exec and the clock read.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);

    const char *id = getenv("MESHD_MESSAGE_ID");
    const char *run = getenv("MESHD_RUN_ID");
    const char *node = getenv("MESHD_NODE");
    char line[512];
    int fd, n;

    if (argc < 2)
        return 2;
    n = snprintf(line, sizeof line, "%s %s %lld.%09ld %s\n", id ? id : "-", run ? run : "-",
                 (long long)now.tv_sec, now.tv_nsec, node ? node : "-");
    if (n < 0 || (size_t)n >= sizeof line)
        return 1;
    fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, line, (size_t)n) != n)
        return 1;
    close(fd);
    return 0;
}
