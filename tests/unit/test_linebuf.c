/* test_linebuf.c - the capped line splitter. */
#include "meshd/md_alloc.h"
#include "meshd/md_linebuf.h"
#include "t.h"

/* Every delivered line, rendered as "<flags>:<bytes>\n" with flags T (truncated) and E (no EOL),
 * so a whole run compares as one string. */
struct rec {
    char out[8192];
    size_t len;
    size_t cap;
    int bad; /* a line longer than the cap was delivered */
};

static void rec_cb(void *ud, const char *line, size_t len, int flags)
{
    struct rec *r = ud;
    char head[4];
    size_t h = 0;

    if (len > r->cap)
        r->bad = 1;
    if (flags & MD_LINE_TRUNCATED)
        head[h++] = 'T';
    if (flags & MD_LINE_NO_EOL)
        head[h++] = 'E';
    head[h++] = ':';
    if (r->len + h + len + 1 >= sizeof r->out) {
        r->bad = 1;
        return;
    }
    memcpy(r->out + r->len, head, h);
    memcpy(r->out + r->len + h, line, len);
    r->len += h + len;
    r->out[r->len++] = '\n';
    r->out[r->len] = '\0';
}

/* Feeds in[0..n) in pieces: step 0 means one feed, otherwise chunks of step bytes; split (if
 * nonzero) instead cuts the input in two at that offset. */
static void run(size_t cap, const char *in, size_t n, size_t step, size_t split, struct rec *r)
{
    struct md_linebuf lb;

    memset(r, 0, sizeof *r);
    r->cap = cap;
    md_linebuf_init(&lb, cap);
    if (split) {
        md_linebuf_feed(&lb, in, split, rec_cb, r);
        md_linebuf_feed(&lb, in + split, n - split, rec_cb, r);
    } else if (step == 0) {
        md_linebuf_feed(&lb, in, n, rec_cb, r);
    } else {
        for (size_t i = 0; i < n; i += step)
            md_linebuf_feed(&lb, in + i, n - i < step ? n - i : step, rec_cb, r);
    }
    md_linebuf_flush(&lb, rec_cb, r);
    md_linebuf_cleanup(&lb);
}

/* Literal lengths, so inputs and results may hold NUL bytes. */
#define C(cap, in, want)                                                                           \
    {                                                                                              \
        cap, in, sizeof(in) - 1, want, sizeof(want) - 1                                            \
    }
static const struct {
    size_t cap;
    const char *in;
    size_t in_n;
    const char *want;
    size_t want_n;
} cases[] = {
    C(4, "", ""),
    C(4, "\n", ":\n"),
    C(4, "\n\n", ":\n:\n"),
    C(4, "a\nbb\n", ":a\n:bb\n"),
    C(4, "ab\r\n", ":ab\n"),
    C(4, "\r\n\r\n", ":\n:\n"),
    C(4, "a\rb\n", ":a\rb\n"),     /* a lone '\r' is data */
    C(4, "abc\r\r\n", ":abc\r\n"), /* only one '\r' belongs to the terminator */
    C(4, "abcd\n", ":abcd\n"),     /* exactly the cap */
    C(4, "abcd\r\n", ":abcd\n"),   /* the cap, CRLF: the '\r' does not count */
    C(4, "abcde\n", "T:abcd\n"),   /* cap + 1 */
    C(4, "abcde\r\n", "T:abcd\n"),
    C(4, "abcd\rx\n", "T:abcd\n"),
    C(4, "abcdefghijkl\nok\n", "T:abcd\n:ok\n"), /* truncation, then recovery */
    C(4, "abcdefghijkl\n\n", "T:abcd\n:\n"),
    C(4, "abcdefgh\nabcdefgh\nab\n", "T:abcd\nT:abcd\n:ab\n"),
    C(4, "tail", "E:tail\n"), /* flush: an unterminated line */
    C(4, "tail\r", "E:tail\n"),
    C(4, "x\ntai", ":x\nE:tai\n"),
    C(4, "tails", "T:tail\n"), /* delivered at feed time; flush adds nothing */
    C(4, "tail\rs", "T:tail\n"),
    C(4, "a\0b\n", ":a\0b\n"), /* NUL bytes are data */
    C(1, "a\nbc\n\n", ":a\nT:b\n:\n"),
    C(1, "\r\n", ":\n"),
    C(1, "a\r\n", ":a\n"),
    C(1, "ab", "T:a\n"),
};

TEST(linebuf_table_all_splits)
{
    for (size_t c = 0; c < MD_ARRAY_SIZE(cases); c++) {
        size_t n = cases[c].in_n;
        struct rec want, r;
        memset(&want, 0, sizeof want);
        memcpy(want.out, cases[c].want, cases[c].want_n);
        want.len = cases[c].want_n;

        for (size_t step = 0; step <= n + 1; step++) {
            run(cases[c].cap, cases[c].in, n, step, 0, &r);
            if (r.len != want.len || memcmp(r.out, want.out, r.len) != 0 || r.bad)
                T_FAIL("case %zu step %zu: got \"%s\" want \"%s\"", c, step, r.out, want.out);
        }
        for (size_t split = 1; split < n; split++) {
            run(cases[c].cap, cases[c].in, n, 0, split, &r);
            if (r.len != want.len || memcmp(r.out, want.out, r.len) != 0 || r.bad)
                T_FAIL("case %zu split %zu: got \"%s\" want \"%s\"", c, split, r.out, want.out);
        }
    }
}

/* The rules restated as simply as possible, over the whole input at once. */
static void reference(size_t cap, const char *in, size_t n, struct rec *r)
{
    size_t start = 0;

    memset(r, 0, sizeof *r);
    r->cap = cap;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && in[i] != '\n')
            continue;
        size_t len = i - start;
        int eol = i < n;
        if (len == 0 && !eol)
            break;
        if (len > 0 && in[start + len - 1] == '\r')
            len--;
        if (len <= cap)
            rec_cb(r, in + start, len, eol ? 0 : MD_LINE_NO_EOL);
        else
            rec_cb(r, in + start, cap, MD_LINE_TRUNCATED);
        start = i + 1;
    }
}

TEST(linebuf_random_against_reference)
{
    static const char alphabet[] = "ab\r\n\n";
    char in[600];
    unsigned seed = 12345;
    struct md_linebuf lb;
    struct rec want, got;

    for (int iter = 0; iter < 3000; iter++) {
        size_t n = (size_t)(rand_r(&seed) % sizeof in);
        size_t cap = 1 + (size_t)(rand_r(&seed) % 12);
        for (size_t i = 0; i < n; i++)
            in[i] = alphabet[rand_r(&seed) % 5];
        if (iter % 3 == 0) /* long lines too */
            for (size_t i = 0; i < n; i++)
                if (in[i] == '\n' && rand_r(&seed) % 8)
                    in[i] = 'z';
        reference(cap, in, n, &want);

        memset(&got, 0, sizeof got);
        got.cap = cap;
        md_linebuf_init(&lb, cap);
        for (size_t i = 0; i < n;) {
            size_t k = 1 + (size_t)(rand_r(&seed) % 20);
            if (k > n - i)
                k = n - i;
            md_linebuf_feed(&lb, in + i, k, rec_cb, &got);
            i += k;
        }
        md_linebuf_flush(&lb, rec_cb, &got);
        md_linebuf_cleanup(&lb);
        T_ASSERT_FALSE(got.bad);
        if (got.len != want.len || memcmp(got.out, want.out, got.len) != 0)
            T_FAIL("iter %d cap %zu: got\n%s\nwant\n%s", iter, cap, got.out, want.out);
    }
}

static size_t count_cb_lines;
static void count_cb(void *ud, const char *line, size_t len, int flags)
{
    size_t *total = ud;
    *total += len;
    count_cb_lines++;
}

TEST(linebuf_lazy_and_bounded_memory)
{
    struct md_linebuf lb;
    size_t total = 0;
    char *big = md_xmalloc(200000);

    md_linebuf_init(&lb, 65536);
    T_ASSERT_TRUE(lb.buf == NULL);
    /* Whole lines inside one feed are delivered from the caller's bytes: nothing allocated. */
    md_linebuf_feed(&lb, "one\ntwo\n", 8, count_cb, &total);
    T_ASSERT_TRUE(lb.buf == NULL);
    /* A short partial line takes a small buffer, not the cap. */
    md_linebuf_feed(&lb, "par", 3, count_cb, &total);
    T_ASSERT_TRUE(lb.buf != NULL);
    T_ASSERT_TRUE(lb.alloc <= 256);
    md_linebuf_feed(&lb, "tial\n", 5, count_cb, &total);
    T_ASSERT_TRUE(lb.alloc <= 256); /* small buffers are kept for reuse */

    /* A 60000-byte line split over many feeds grows the buffer, which is released afterwards. */
    memset(big, 'x', 200000);
    for (size_t i = 0; i < 60000; i += 1000)
        md_linebuf_feed(&lb, big + i, 1000, count_cb, &total);
    T_ASSERT_TRUE(lb.alloc >= 60000 && lb.alloc <= 65537);
    md_linebuf_feed(&lb, "\n", 1, count_cb, &total);
    T_ASSERT_TRUE(lb.buf == NULL);

    /* A 200000-byte line never makes the buffer exceed cap + 1. */
    count_cb_lines = 0;
    total = 0;
    for (size_t i = 0; i < 200000; i += 7000)
        md_linebuf_feed(&lb, big + i, 200000 - i < 7000 ? 200000 - i : 7000, count_cb, &total);
    T_ASSERT_TRUE(lb.alloc <= 65537);
    md_linebuf_feed(&lb, "\nnext\n", 6, count_cb, &total);
    T_ASSERT_EQ(count_cb_lines, 2);
    T_ASSERT_EQ(total, 65536 + 4);
    md_linebuf_flush(&lb, count_cb, &total);
    T_ASSERT_EQ(count_cb_lines, 2);
    md_linebuf_cleanup(&lb);
    T_ASSERT_TRUE(lb.buf == NULL);
    md_free(big);
}

TEST(linebuf_flush_resets)
{
    struct md_linebuf lb;
    struct rec r;

    memset(&r, 0, sizeof r);
    r.cap = 4;
    md_linebuf_init(&lb, 4);
    md_linebuf_feed(&lb, "abcdefg", 7, rec_cb, &r); /* truncated, now discarding */
    md_linebuf_flush(&lb, rec_cb, &r);
    md_linebuf_feed(&lb, "xy\n", 3, rec_cb, &r); /* a fresh stream: not discarded */
    md_linebuf_feed(&lb, "z", 1, rec_cb, &r);
    md_linebuf_flush(&lb, rec_cb, &r);
    md_linebuf_flush(&lb, rec_cb, &r); /* nothing pending: no call */
    md_linebuf_cleanup(&lb);
    T_ASSERT_STREQ(r.out, "T:abcd\n:xy\nE:z\n");
}

T_MAIN()
