/* md_buf.h - a growable text buffer with a mandatory bound (curl's dynbuf idea).
 *
 * Appends that would take it past max fail as a whole (nothing of them is kept) and mark the
 * buffer full; the text so far stays valid and NUL-terminated.  Zeroed is not ready: call
 * md_buf_init.
 */
#ifndef MESHD_MD_BUF_H
#define MESHD_MD_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct md_buf {
    char *p;    /* the text, NUL-terminated once anything was put; NULL while empty */
    size_t len; /* bytes of text, without the NUL */
    size_t cap; /* bytes allocated at p */
    size_t max; /* len never exceeds it */
    bool full;  /* an append was refused */
};

void md_buf_init(struct md_buf *b, size_t max);
/* Appends n bytes; false (and b->full) when they would not fit under max. */
bool md_buf_put(struct md_buf *b, const void *s, size_t n);
bool md_buf_puts(struct md_buf *b, const char *s);
bool md_buf_printf(struct md_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text ("" when empty, never NULL); the buffer keeps it. */
const char *md_buf_str(const struct md_buf *b);
/* Hands the text over (md_free it; NULL when empty) and leaves the buffer empty. */
char *md_buf_take(struct md_buf *b);
void md_buf_free(struct md_buf *b);

#endif
