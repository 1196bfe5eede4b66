#include "meshd/md_linebuf.h"

#include "meshd/md_alloc.h"

#include <assert.h>
#include <string.h>

/* Buffers grown past this are freed after their line: a stream that once carried one long line
 * should not pin 64 KiB for the rest of the child's life. */
#define LINEBUF_KEEP 4096
#define LINEBUF_MIN 256

/* Invariants between calls:
 *  - discarding == 1 implies len == 0: the prefix of the long line went out already.
 *  - len <= cap, or len == cap + 1 with buf[cap] == '\r' (it may yet turn out to be the '\r' of
 *    a "\r\n" terminator, which does not count against the cap).
 *  - buf == NULL iff alloc == 0. */

void md_linebuf_init(struct md_linebuf *lb, size_t cap)
{
    assert(cap > 0 && cap < (size_t)-1);
    memset(lb, 0, sizeof *lb);
    lb->cap = cap;
}

void md_linebuf_cleanup(struct md_linebuf *lb)
{
    md_free(lb->buf);
    lb->buf = NULL;
    lb->len = lb->alloc = 0;
    lb->discarding = 0;
}

static void append(struct md_linebuf *lb, const char *data, size_t n)
{
    size_t need = lb->len + n;

    assert(need <= lb->cap + 1);
    if (need > lb->alloc) {
        size_t a = lb->alloc ? lb->alloc * 2 : LINEBUF_MIN;
        if (a < need)
            a = need;
        if (a > lb->cap + 1)
            a = lb->cap + 1;
        lb->buf = md_xrealloc(lb->buf, a);
        lb->alloc = a;
    }
    if (n > 0)
        memcpy(lb->buf + lb->len, data, n);
    lb->len = need;
}

/* Called after a buffered line went out. */
static void reset_pending(struct md_linebuf *lb)
{
    lb->len = 0;
    if (lb->alloc > LINEBUF_KEEP) {
        md_free(lb->buf);
        lb->buf = NULL;
        lb->alloc = 0;
    }
}

void md_linebuf_feed(struct md_linebuf *lb, const char *data, size_t n, md_linebuf_cb *cb, void *ud)
{
    const char *end = data + n;

    while (data < end) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        size_t seg = (size_t)((nl ? nl : end) - data); /* bytes before the '\n' (or all) */

        if (lb->discarding) {
            if (nl == NULL)
                return;
            lb->discarding = 0;
            data = nl + 1;
            continue;
        }

        size_t total = lb->len + seg; /* the line so far, any '\r' included */
        char last = seg > 0 ? data[seg - 1] : (lb->len > 0 ? lb->buf[lb->len - 1] : '\0');

        if (nl != NULL) {
            size_t content = total - (last == '\r');
            if (content <= lb->cap) {
                if (lb->len == 0) {
                    cb(ud, data, content, 0);
                } else {
                    append(lb, data, seg);
                    cb(ud, lb->buf, content, 0);
                    reset_pending(lb);
                }
            } else {
                if (lb->len == 0) {
                    cb(ud, data, lb->cap, MD_LINE_TRUNCATED);
                } else {
                    if (lb->len < lb->cap)
                        append(lb, data, lb->cap - lb->len);
                    cb(ud, lb->buf, lb->cap, MD_LINE_TRUNCATED);
                    reset_pending(lb);
                }
            }
            data = nl + 1;
            continue;
        }

        /* No '\n' in the rest of this feed: keep it, unless it is already over the cap. */
        if (total <= lb->cap || (total == lb->cap + 1 && last == '\r')) {
            append(lb, data, seg);
            return;
        }
        if (lb->len == 0) {
            cb(ud, data, lb->cap, MD_LINE_TRUNCATED);
        } else {
            if (lb->len < lb->cap)
                append(lb, data, lb->cap - lb->len);
            cb(ud, lb->buf, lb->cap, MD_LINE_TRUNCATED);
            reset_pending(lb);
        }
        lb->discarding = 1;
        return;
    }
}

void md_linebuf_flush(struct md_linebuf *lb, md_linebuf_cb *cb, void *ud)
{
    if (lb->len > 0) {
        size_t content = lb->len - (lb->buf[lb->len - 1] == '\r');
        if (content <= lb->cap)
            cb(ud, lb->buf, content, MD_LINE_NO_EOL);
        else
            cb(ud, lb->buf, lb->cap, MD_LINE_NO_EOL | MD_LINE_TRUNCATED);
    }
    lb->discarding = 0;
    reset_pending(lb);
}
