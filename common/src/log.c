#include "meshd/md_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum md_log_level md__log_level = MD_LOG_NOTICE;

static const char *log_ident = "meshd";
static int log_journal; /* stderr is journald's stream: it stamps the line and takes the
                         * priority from a "<N>" prefix, and adds ident[pid] itself */

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

/* $JOURNAL_STREAM is "DEV:INODE" of the stream systemd connected; it counts only if our
 * stderr is still that stream (not redirected by a shell in between). */
static int stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void md_log_init(const char *ident, enum md_log_level level)
{
    log_ident = ident;
    md__log_level = level;
    log_journal = stderr_is_journal();
}

int md_log_level_parse(const char *s, enum md_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum md_log_level)i;
            return 0;
        }
    }
    return MD_EPARSE;
}

void md__log(enum md_log_level level, int err, const char *fmt, ...)
{
    char line[4096];
    size_t n = 0;
    va_list ap;
    int r;

    if (log_journal) {
        /* syslog priorities: err 3, warning 4, notice 5, info 6, debug 7 */
        r = snprintf(line, sizeof line, "<%d>", 3 + (int)level);
        n = (size_t)r;
    } else {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
        r = snprintf(line + n, sizeof line - n, ".%03ldZ ", (long)(tv.tv_usec / 1000));
        n += (size_t)r;
    }
    if (!log_journal) {
        r = snprintf(line + n, sizeof line - n, "%s %s[%ld]: ", level_names[level], log_ident,
                     (long)getpid());
        n += (size_t)r;
    }
    va_start(ap, fmt);
    r = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (r > 0)
        n = n + (size_t)r < sizeof line ? n + (size_t)r : sizeof line - 1;
    if (err != 0 && n < sizeof line - 1) {
        r = snprintf(line + n, sizeof line - n, ": %s (%d)", md_strerror(err), err);
        if (r > 0)
            n = n + (size_t)r < sizeof line ? n + (size_t)r : sizeof line - 1;
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2; /* truncated: keep room for the newline */
    line[n++] = '\n';
    /* One write(2) per line so lines from meshd and its children never interleave mid-line. */
    for (size_t off = 0; off < n;) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void md__unreachable(const char *file, int line)
{
    md__log(MD_LOG_ERROR, 0, "unreachable: file=%s line=%d", file, line);
    abort();
}
