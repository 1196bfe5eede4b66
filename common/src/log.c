#include "meshd/md_log.h"

#include "meshd/md_alloc.h"

#include <assert.h>
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

/* false: the line goes to a reader that stamps it itself (a worker's stderr under meshd). */
static bool log_stamp = true;

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

void md_log_set_stamp(bool stamp)
{
    log_stamp = stamp;
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

/* Length of the valid UTF-8 sequence at s (n > 0 bytes available), or 0 when s does not start
 * one: a continuation byte, a lead byte without its continuations, an overlong form
 * (C0, C1, E0 80..9F, F0 80..8F), a surrogate (ED A0..BF) or a code point past U+10FFFF
 * (F4 90.., F5..FF).  RFC 3629, table 3-7 of the Unicode standard. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];

    if (c < 0x80)
        return 1;
    if (c < 0xc2)
        return 0;
    if (c < 0xe0)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c < 0xf0) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))
            return 0;
        return 3;
    }
    if (c < 0xf5) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* A line cut at n bytes may end inside a UTF-8 character: drop that partial character. */
static size_t utf8_cut(const char *line, size_t n)
{
    size_t i = n;

    while (i > 0 && n - i < 3 && ((unsigned char)line[i - 1] & 0xc0) == 0x80)
        i--;
    if (i > 0 && (unsigned char)line[i - 1] >= 0xc0 &&
        utf8_seq((const unsigned char *)line + i - 1, n - i + 1) == 0)
        return i - 1;
    return n;
}

size_t md_log_escape(char *dst, size_t size, const char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)src;
    size_t total = 0, w = 0, i = 0;
    bool full = size == 0;
    char esc[7];

    while (i < n) {
        const char *piece;
        size_t len, adv;
        unsigned c = s[i];

        if (c >= 0x20 && c < 0x7f) {
            /* A run of printable ASCII, cut anywhere. */
            size_t j = i + 1;
            while (j < n && s[j] >= 0x20 && s[j] < 0x7f)
                j++;
            if (!full) {
                size_t k = j - i < size - 1 - w ? j - i : size - 1 - w;
                memcpy(dst + w, src + i, k);
                w += k;
                full = k < j - i;
            }
            total += j - i;
            i = j;
            continue;
        }
        piece = esc;
        adv = 1;
        if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            len = 2;
        } else if (c < 0x80) { /* other C0 controls and DEL */
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            len = 4;
        } else if ((adv = utf8_seq(s + i, n - i)) == 0) {
            esc[0] = '\\';
            esc[1] = 'x';
            esc[2] = hex[c >> 4];
            esc[3] = hex[c & 15];
            len = 4;
            adv = 1;
        } else if (c == 0xc2 && s[i + 1] < 0xa0) { /* C1: U+0080..U+009F */
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[s[i + 1] >> 4];
            esc[5] = hex[s[i + 1] & 15];
            len = 6;
        } else {
            piece = src + i;
            len = adv;
        }
        if (!full) {
            if (w + len < size) {
                memcpy(dst + w, piece, len);
                w += len;
            } else {
                full = true;
            }
        }
        total += len;
        i += adv;
    }
    if (size > 0)
        dst[w] = '\0';
    return total;
}

char *md_log_escape_dup(const char *src, size_t n, size_t max)
{
    size_t len = md_log_escape(NULL, 0, src, n);
    char *out;

    assert(max > 0);
    if (len > max)
        len = max;
    out = md_xmalloc(len + 1);
    md_log_escape(out, len + 1, src, n);
    return out;
}

void md_log_limit_init(struct md_log_limit *l, uint32_t burst, uint64_t interval_ms)
{
    assert(burst == 0 || interval_ms > 0);
    memset(l, 0, sizeof *l);
    l->burst = burst;
    l->interval_ms = interval_ms;
}

bool md_log_limit_take(struct md_log_limit *l, uint64_t now_ms, uint64_t *ended)
{
    *ended = 0;
    if (l->burst == 0)
        return true;
    if (l->open && now_ms - l->begin_ms >= l->interval_ms) {
        *ended = l->suppressed; /* the window ended and nobody closed it yet */
        l->open = false;
    }
    if (!l->open) {
        l->open = true;
        l->begin_ms = now_ms;
        l->passed = 0;
        l->suppressed = 0;
    }
    if (l->passed < l->burst) {
        l->passed++;
        return true;
    }
    l->suppressed++;
    return false;
}

uint64_t md_log_limit_close(struct md_log_limit *l, uint64_t now_ms, bool force)
{
    uint64_t n;

    if (!l->open || (!force && now_ms - l->begin_ms < l->interval_ms))
        return 0;
    n = l->suppressed;
    l->open = false;
    l->passed = 0;
    l->suppressed = 0;
    return n;
}

uint64_t md_log_limit_due(const struct md_log_limit *l)
{
    if (!l->open || l->suppressed == 0)
        return UINT64_MAX;
    return l->begin_ms + l->interval_ms;
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
    } else if (log_stamp) {
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
    if (n >= sizeof line - 1) {
        n = sizeof line - 2; /* truncated: keep room for the newline */
        n = utf8_cut(line, n);
    }
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
