/*
 * metric2: the command of the registry-rate benchmark's every-second jobs (bench/registry_rate.sh).
 *
 * Writes two metric events to the status fd (MESHD_STATUS_FD, docs/status-protocol.md), one
 * JSON object per line, in a single write(), and exits 0.  So each run costs the registry a
 * run_start, a run_end and two metric events (plus whatever job-state events meshd adds).
 * Built statically so that the run itself is as cheap as a fork+exec can be.
 */
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    static const char lines[] = "{\"event\":\"metric\",\"name\":\"rows\",\"value\":1}\n"
                                "{\"event\":\"metric\",\"name\":\"bytes\",\"value\":512}\n";
    const char *fd_s = getenv("MESHD_STATUS_FD");
    int fd = fd_s != NULL ? atoi(fd_s) : -1;

    if (fd < 0)
        return 2;
    if (write(fd, lines, sizeof lines - 1) != (ssize_t)(sizeof lines - 1))
        return 1;
    return 0;
}
