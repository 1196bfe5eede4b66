#include "meshd/md_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *md_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case MD_ECONFIG:
        return "invalid configuration";
    case MD_EPARSE:
        return "parse error";
    case MD_EDB:
        return "database error";
    case MD_EPROTO:
        return "protocol error";
    case MD_ENOTZ:
        return "unknown time zone";
    case MD_ENEVER:
        return "schedule never fires";
    case MD_ETOOBIG:
        return "input too large";
    case MD_EDBDOWN:
        return "database unavailable";
    case MD_ELOCKED:
        return "lock not available";
    case MD_ESQL:
        return "invalid SQL or object";
    case MD_ERETRY:
        return "serialization failure or deadlock";
    default:
        break;
    }
    if (code < 0 && code > -1000)
        return strerror(-code);
    return "unknown error";
}

int md_error_set(struct md_error *err, int code, int line, int col, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL)
        return code;
    err->line = line;
    err->col = col;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}
