/* md_log.h - one line per event, to stderr.
 *
 * Lines read "<ISO-8601 UTC with ms> <level> <ident>[<pid>]: <event>: key=value ...".  Under
 * systemd (JOURNAL_STREAM set) the timestamp is left to journald.  meshd never opens, rotates or
 * owns log files.  Not async-signal-safe: never call from a signal handler.
 */
#ifndef MESHD_MD_LOG_H
#define MESHD_MD_LOG_H

#include "md_err.h"

enum md_log_level { MD_LOG_ERROR, MD_LOG_WARN, MD_LOG_NOTICE, MD_LOG_INFO, MD_LOG_DEBUG };

extern enum md_log_level md__log_level;

/* Sets the identity printed before the pid ("meshd", "meshctl") and the level threshold. */
void md_log_init(const char *ident, enum md_log_level level);
/* Parses "error|warn|notice|info|debug"; returns 0 or MD_EPARSE. */
int md_log_level_parse(const char *s, enum md_log_level *out) MD_MUSTCHECK;

void md__log(enum md_log_level level, int err, const char *fmt, ...) MD_PRINTF(3, 4);

/* The level is checked before the arguments are formatted (redis serverLog). */
#define md_log(level, ...)                                                                      \
    do {                                                                                        \
        if ((level) <= md__log_level)                                                           \
            md__log((level), 0, __VA_ARGS__);                                                   \
    } while (0)
/* Appends ": <md_strerror(err)> (<err>)" to the line; err is passed explicitly, never errno. */
#define md_log_err(level, err, ...)                                                             \
    do {                                                                                        \
        if ((level) <= md__log_level)                                                           \
            md__log((level), (err), __VA_ARGS__);                                               \
    } while (0)

/* Logs and aborts: for states that cannot happen. */
#define MD_UNREACHABLE() md__unreachable(__FILE__, __LINE__)
MD_NORETURN void md__unreachable(const char *file, int line);

#endif
