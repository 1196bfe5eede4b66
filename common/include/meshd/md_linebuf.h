/* md_linebuf.h - a capped line splitter for byte streams.
 *
 * The supervisor reads each child's stdout, stderr and status pipe in whatever chunks the kernel
 * hands over; md_linebuf turns those chunks into lines.  Every line is bounded: a line longer
 * than the cap is delivered once, cut to its first cap bytes and flagged MD_LINE_TRUNCATED, and
 * the rest of it is dropped up to the next '\n'.  Memory therefore never exceeds cap + 1 bytes
 * per stream, whatever the child writes (curl's dynbuf "toobig" rule).
 *
 * Rules, precisely:
 * - A line ends at '\n'.  The '\n' is not delivered, nor is one '\r' right before it, so
 *   "a\r\n" and "a\n" both deliver "a".  A '\r' elsewhere is data.
 * - The cap counts the bytes of a line without its terminator ('\n' or "\r\n").  A line of
 *   exactly cap bytes is delivered whole; one of cap + 1 bytes is truncated.
 * - Lines are not NUL-terminated and may contain NUL bytes: always use the length.
 * - Storage is allocated lazily, only for a line split across feeds, grows geometrically up to
 *   cap + 1 bytes, and is reused.  Buffers grown past 4 KiB are released once their line is
 *   delivered, so 600 idle streams cost nothing but the struct.  A line that arrives whole
 *   inside one feed is delivered straight from the caller's data, without a copy.
 * - Total work is O(bytes fed): no byte is scanned twice.
 */
#ifndef MESHD_MD_LINEBUF_H
#define MESHD_MD_LINEBUF_H

#include <stddef.h>

/* Flags passed to md_linebuf_cb. */
enum {
    MD_LINE_TRUNCATED = 1 << 0, /* longer than the cap: these are its first cap bytes */
    MD_LINE_NO_EOL = 1 << 1,    /* delivered by md_linebuf_flush: the stream ended mid-line */
};

/* Called once per line.  line is borrowed: it is valid only during the call and is not
 * NUL-terminated; len <= cap.  The callback must not feed, flush or clean up the same linebuf
 * (record what to do and act after md_linebuf_feed returns). */
typedef void md_linebuf_cb(void *ud, const char *line, size_t len, int flags);

/* Caller-owned; treat the members as private. */
struct md_linebuf {
    char *buf;      /* the pending partial line; NULL until a line spans two feeds */
    size_t len;     /* bytes pending in buf (at most cap + 1: the extra byte may be a '\r') */
    size_t alloc;   /* bytes allocated at buf */
    size_t cap;     /* the longest line delivered whole */
    int discarding; /* inside an over-long line whose prefix was delivered already */
};

/* Initializes lb for lines of at most cap bytes (cap > 0).  Allocates nothing. */
void md_linebuf_init(struct md_linebuf *lb, size_t cap);

/* Releases lb's memory and drops any pending partial line.  lb may be initialized again. */
void md_linebuf_cleanup(struct md_linebuf *lb);

/* Splits n bytes of data (borrowed) and calls cb for each line they complete, in order.  Bytes
 * after the last '\n' are kept until the next feed or md_linebuf_flush.  n may be 0. */
void md_linebuf_feed(struct md_linebuf *lb, const char *data, size_t n, md_linebuf_cb *cb,
                     void *ud);

/* At end of stream: delivers a pending unterminated line (flag MD_LINE_NO_EOL, plus
 * MD_LINE_TRUNCATED if it was too long; a trailing '\r' is stripped) and resets lb to its
 * initial state, keeping nothing pending.  Delivers nothing if no bytes are pending. */
void md_linebuf_flush(struct md_linebuf *lb, md_linebuf_cb *cb, void *ud);

#endif
