/* md_err.h - error codes and the human-facing error record.
 *
 * Fallible functions return 0 or a negative code: -errno for system errors, libuv's own codes
 * passed through unchanged, and meshd's codes in -1000..-1999 (clear of errno values and of
 * libuv's -3000 and -4094/-4095).  md_strerror() names all of them.
 */
#ifndef MESHD_MD_ERR_H
#define MESHD_MD_ERR_H

#include <stddef.h>

#if defined(__GNUC__)
#define MD_MUSTCHECK __attribute__((warn_unused_result))
#define MD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define MD_NORETURN __attribute__((noreturn))
#else
#define MD_MUSTCHECK
#define MD_PRINTF(fmt, args)
#define MD_NORETURN
#endif

enum {
    MD_ECONFIG = -1000, /* the configuration is invalid */
    MD_EPARSE = -1001,  /* text could not be parsed (cron, ISO-8601, YAML) */
    MD_EDB = -1002,     /* the database failed */
    MD_EPROTO = -1003,  /* a peer broke the protocol (status line, HTTP) */
    MD_ENOTZ = -1004,   /* unknown time zone */
    MD_ENEVER = -1005,  /* a schedule that can never fire */
    MD_ETOOBIG = -1006, /* input over its hard cap */
    MD_EDBDOWN = -1007, /* the database is unreachable or shutting down (temporary) */
    MD_ELOCKED = -1008, /* a lock was not granted within lock_timeout (temporary) */
    MD_ESQL = -1009,    /* the SQL or the objects it names are wrong (permanent) */
    MD_ERETRY = -1010,  /* serialization failure or deadlock: run the transaction again */
};

/* Exit codes shared by every meshd binary (s6's scheme). */
enum {
    MD_EXIT_OK = 0,
    MD_EXIT_FAILED = 1,      /* the run failed: retry per policy */
    MD_EXIT_PERMANENT = 100, /* usage or config error: do not retry */
    MD_EXIT_TEMPORARY = 111, /* temporary system failure: back off and retry */
};

/* A failure a human must fix.  line and col are 1-based; 0 means "not known". */
struct md_error {
    int line, col;
    char msg[200];
};

/* Returns a static description of any code above (never NULL). */
const char *md_strerror(int code);

/* Fills err (if not NULL) with the position and a printf-formatted message; returns code. */
int md_error_set(struct md_error *err, int code, int line, int col, const char *fmt, ...)
    MD_PRINTF(5, 6);

#endif
