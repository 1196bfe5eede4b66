/* buf.c - md_buf.h. */
#include "meshd/md_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "meshd/md_alloc.h"

#define BUF_MIN 256

void md_buf_init(struct md_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

/* Room for n more bytes and the NUL; false when that would pass max. */
static bool reserve(struct md_buf *b, size_t n)
{
    size_t want;

    if (n > b->max - b->len) {
        b->full = true;
        return false;
    }
    want = b->len + n + 1;
    if (want > b->cap) {
        size_t cap = b->cap ? b->cap : BUF_MIN;
        while (cap < want)
            cap *= 2;
        if (cap > b->max + 1)
            cap = b->max + 1;
        b->p = md_xrealloc(b->p, cap);
        b->cap = cap;
    }
    return true;
}

bool md_buf_put(struct md_buf *b, const void *s, size_t n)
{
    if (!reserve(b, n))
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

bool md_buf_puts(struct md_buf *b, const char *s)
{
    return md_buf_put(b, s, strlen(s));
}

bool md_buf_printf(struct md_buf *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    if ((size_t)n < sizeof small)
        return md_buf_put(b, small, (size_t)n);
    if (!reserve(b, (size_t)n))
        return false;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

const char *md_buf_str(const struct md_buf *b)
{
    return b->p != NULL ? b->p : "";
}

char *md_buf_take(struct md_buf *b)
{
    char *p = b->p;

    b->p = NULL;
    b->len = b->cap = 0;
    b->full = false;
    return p;
}

void md_buf_free(struct md_buf *b)
{
    md_free(md_buf_take(b));
}
