/*
 * flood: the flooding worker of `firing_lag.sh --flood`.
 *
 *   flood FD KIND FROM UNTIL COUNTFILE
 *
 * Sleeps until the wall-clock second FROM (Unix seconds), then writes newline-terminated lines
 * to file descriptor FD as fast as the reader takes them until the second UNTIL, then writes
 * the number of bytes it wrote (one decimal line) to COUNTFILE and sleeps until it is killed
 * (it runs as a service; exiting would make meshd restart it).
 *
 * KIND is "text" (62-byte lines of ordinary output, each with an ESC colour sequence in it, like
 * a tool that colours its output) or "badjson" (38-byte lines that are not JSON: for the status
 * fd).  Those are the mean line lengths of the two floods of issue 9, item 7.
 * Lines are written in 64 KiB blocks, whole lines only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char block[65536];

static size_t fill(const char *kind)
{
    size_t n = 0;
    unsigned i = 0;

    for (;;) {
        char line[128];
        int k;
        if (strcmp(kind, "text") == 0)
            k = snprintf(line, sizeof line,
                         "flood %08u \033[31mred\033[0m and some more ordinary words.....\n", i++);
        else
            k = snprintf(line, sizeof line, "{\"event\":\"metric\",\"value\":%09u,}\n", i++);
        if (n + (size_t)k > sizeof block)
            return n;
        memcpy(block + n, line, (size_t)k);
        n += (size_t)k;
    }
}

int main(int argc, char **argv)
{
    unsigned long long total = 0;
    long long from, until;
    size_t len;
    FILE *f;
    int fd;

    if (argc != 6 || (strcmp(argv[2], "text") != 0 && strcmp(argv[2], "badjson") != 0)) {
        fprintf(stderr, "usage: flood FD text|badjson FROM UNTIL COUNTFILE\n");
        return 100;
    }
    signal(SIGPIPE, SIG_IGN);
    fd = atoi(argv[1]);
    from = atoll(argv[3]);
    until = atoll(argv[4]);
    len = fill(argv[2]);
    while (time(NULL) < from)
        usleep(10000);
    while (time(NULL) < until) {
        /* Time is checked once a block: a block takes microseconds unless the reader is slow,
         * and then the write blocks anyway. */
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(fd, block + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                goto done;
            off += (size_t)w;
            total += (unsigned long long)w;
        }
    }
done:
    f = fopen(argv[5], "w");
    if (f != NULL) {
        fprintf(f, "%llu\n", total);
        fclose(f);
    }
    for (;;)
        pause();
}
