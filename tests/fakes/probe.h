/* probe.h - what the test probes (tests/fakes/NAME_probe.c: a worker's part driven from a test)
 * share: dying with a message and an exit code, and reading a JSON request from stdin.  Each
 * probe defines PROBE_NAME before including it. */
#ifndef MESHD_TESTS_PROBE_H
#define MESHD_TESTS_PROBE_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"

#define PROBE_STDIN_MAX (1024 * 1024)

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs(PROBE_NAME ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

/* stdin to EOF (at most PROBE_STDIN_MAX bytes, else exit 100), NUL-terminated; md_free. */
static char *read_stdin(size_t *len)
{
    char *buf = md_xmalloc(PROBE_STDIN_MAX + 1);
    size_t n = 0, r;

    while ((r = fread(buf + n, 1, PROBE_STDIN_MAX + 1 - n, stdin)) > 0) {
        n += r;
        if (n > PROBE_STDIN_MAX)
            die(100, "stdin: more than %d bytes", PROBE_STDIN_MAX);
    }
    if (ferror(stdin))
        die(100, "stdin: %s", strerror(errno));
    buf[n] = '\0';
    *len = n;
    return buf;
}

#endif
