/* md_log.h - one line per event, to stderr.
 *
 * Lines read "<ISO-8601 UTC with ms> <level> <ident>[<pid>]: <event>: key=value ...".  Under
 * systemd (JOURNAL_STREAM set) the timestamp is left to journald, and so it is after
 * md_log_set_stamp(false) (a worker run by meshd, which logs its stderr with a timestamp of its
 * own).  meshd never opens, rotates or
 * owns log files.  Not async-signal-safe: never call from a signal handler.
 */
#ifndef MESHD_MD_LOG_H
#define MESHD_MD_LOG_H

#include "md_err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum md_log_level { MD_LOG_ERROR, MD_LOG_WARN, MD_LOG_NOTICE, MD_LOG_INFO, MD_LOG_DEBUG };

extern enum md_log_level md__log_level;

/* Sets the identity printed before the pid ("meshd", "meshctl") and the level threshold. */
void md_log_init(const char *ident, enum md_log_level level);
/* Whether lines start with a timestamp (default true; md_log_init leaves it as it is).  Under
 * journald the timestamp is left out whatever this says. */
void md_log_set_stamp(bool stamp);
/* Parses "error|warn|notice|info|debug"; returns 0 or MD_EPARSE. */
int md_log_level_parse(const char *s, enum md_log_level *out) MD_MUSTCHECK;

void md__log(enum md_log_level level, int err, const char *fmt, ...) MD_PRINTF(3, 4);

/* The level is checked before the arguments are formatted (redis serverLog). */
#define md_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((level) <= md__log_level)                                                              \
            md__log((level), 0, __VA_ARGS__);                                                      \
    } while (0)
/* Appends ": <md_strerror(err)> (<err>)" to the line; err is passed explicitly, never errno. */
#define md_log_err(level, err, ...)                                                                \
    do {                                                                                           \
        if ((level) <= md__log_level)                                                              \
            md__log((level), (err), __VA_ARGS__);                                                  \
    } while (0)

/* True when a line at level would be written (to skip work for lines that would not be). */
#define md_log_enabled(level) ((level) <= md__log_level)

/* ---- text from outside ------------------------------------------------------------------------
 *
 * Text that meshd did not write itself (a worker's output lines, the strings in its status
 * lines) goes into a log line only through md_log_escape, so that it can neither split or forge
 * a log line nor drive the operator's terminal, and every log line is valid UTF-8:
 *   - '\n' becomes "\n", '\r' "\r", '\t' "\t", every other byte 0x00-0x1f and 0x7f (DEL)
 *     becomes "\xNN": ESC, BEL, backspace and NUL included;
 *   - the C1 controls U+0080-U+009F (which some terminals obey as ESC sequences) become
 *     "\u0080".."\u009f";
 *   - a byte that does not start a valid UTF-8 sequence (a Latin-1 byte, a stray continuation
 *     byte, an overlong form, a surrogate, anything above U+10FFFF, a sequence cut short) becomes
 *     "\xNN", one byte at a time, and the bytes after it are looked at afresh;
 *   - everything else, including '\\' itself, is copied unchanged.  The escaping is for safe
 *     display, not a reversible encoding: a worker that prints the four characters \x1b reads
 *     the same as one that prints ESC.
 */

/* Escapes n bytes at src (borrowed; any bytes, NUL included; need not be NUL-terminated) into
 * dst, which holds size bytes, and NUL-terminates it when size > 0.  Stops before the first
 * escape or UTF-8 character that would not fit whole, so the result is never cut inside one.
 * Returns the length the whole escaped text has (like snprintf: the result was cut if it is
 * >= size); dst may be NULL when size is 0, to measure.  The result is at most 4 * n bytes.
 * Pure; safe anywhere except in a signal handler. */
size_t md_log_escape(char *dst, size_t size, const char *src, size_t n);

/* md_log_escape into a new string of at most max bytes (max > 0; cut as above when longer).
 * The caller frees it with md_free. */
char *md_log_escape_dup(const char *src, size_t n, size_t max);

/* ---- rate limits ------------------------------------------------------------------------------
 *
 * journald's rule, for one source of log lines (one stream of one run): at most burst lines in
 * a window of interval_ms; the window opens with the first line and lasts interval_ms; lines
 * past the burst are not logged but counted, and once the window is over the caller logs one
 * summary with that count.  The next line after a window is over opens a new one.  Pure: the
 * caller passes the (monotonic) time, and decides what to log.
 */
struct md_log_limit {
    uint64_t interval_ms;
    uint64_t begin_ms;   /* when the current window opened */
    uint64_t suppressed; /* lines held back in the current window */
    uint32_t burst;      /* 0: no limit */
    uint32_t passed;     /* lines let through in the current window */
    bool open;           /* a window is open */
};

/* Sets up l (caller-owned) for burst lines per interval_ms (interval_ms > 0 when burst > 0);
 * burst 0 lets every line through. */
void md_log_limit_init(struct md_log_limit *l, uint32_t burst, uint64_t interval_ms);

/* Accounts for one line at now_ms.  Returns true when it may be logged, false when it is
 * suppressed.  When this line found the previous window over with lines suppressed in it,
 * *ended is set to their count, and the caller should log its summary before this line;
 * otherwise *ended is 0.  When false is returned and l->suppressed is 1, this is the first line
 * the window holds back. */
bool md_log_limit_take(struct md_log_limit *l, uint64_t now_ms, uint64_t *ended);

/* Closes the current window if it is over at now_ms, or in any case when force is true (the
 * source ends).  Returns the number of lines it suppressed (0 when none, or when the window
 * is still open). */
uint64_t md_log_limit_close(struct md_log_limit *l, uint64_t now_ms, bool force);

/* When the current window is over and its suppressed lines are due for a summary, in the
 * caller's clock; UINT64_MAX when there is nothing to report. */
uint64_t md_log_limit_due(const struct md_log_limit *l);

/* Logs and aborts: for states that cannot happen. */
#define MD_UNREACHABLE() md__unreachable(__FILE__, __LINE__)
MD_NORETURN void md__unreachable(const char *file, int line);

#endif
