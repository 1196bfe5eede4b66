/* test_log.c - md_log: escaping text from outside, rate limits, the line writer. */
#include "meshd/md_alloc.h"
#include "meshd/md_log.h"
#include "t.h"

#include <fcntl.h>
#include <unistd.h>

/* Escapes a literal of n bytes into a roomy buffer and returns it (static storage). */
static const char *esc(const char *s, size_t n)
{
    static char buf[1024];
    size_t len = md_log_escape(buf, sizeof buf, s, n);

    if (len != strlen(buf))
        return "(length mismatch)";
    return buf;
}
#define ESC(lit) esc((lit), sizeof(lit) - 1)

/* A strict UTF-8 check, written apart from log.c's (Python's decoder would be the reference;
 * this mirrors its rules: no overlongs, no surrogates, nothing past U+10FFFF). */
static int valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned c = s[i], need, cp, min;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (i + need >= n)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

static int has_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 1;
    return 0;
}

TEST(escape_plain_text_is_unchanged)
{
    T_ASSERT_STREQ("", ESC(""));
    T_ASSERT_STREQ("hello, world: 42% done", ESC("hello, world: 42% done"));
    /* A backslash stays: escaping is for display, not an encoding. */
    T_ASSERT_STREQ("C:\\temp\\x1b", ESC("C:\\temp\\x1b"));
    /* Valid UTF-8 of every length stays. */
    T_ASSERT_STREQ("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0",
                   ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\xa0"));
    T_ASSERT_STREQ("\xef\xbf\xbf \xf4\x8f\xbf\xbf \xed\x9f\xbf",
                   ESC("\xef\xbf\xbf \xf4\x8f\xbf\xbf \xed\x9f\xbf")); /* U+FFFF U+10FFFF U+D7FF */
}

TEST(escape_controls)
{
    T_ASSERT_STREQ("\\x1b[2J\\x1b]0;pwned\\x07", ESC("\x1b[2J\x1b]0;pwned\x07"));
    T_ASSERT_STREQ("a\\nb\\rc\\td", ESC("a\nb\rc\td"));
    T_ASSERT_STREQ("\\x00\\x01\\x08\\x1f\\x7f ~", ESC("\x00\x01\x08\x1f\x7f ~"));
    /* The C1 controls as UTF-8 (U+009B is CSI to some terminals), and the first non-control. */
    T_ASSERT_STREQ("\\u0080\\u009b[31m\\u009f\xc2\xa0",
                   ESC("\xc2\x80\xc2\x9b[31m\xc2\x9f\xc2\xa0"));
}

TEST(escape_invalid_utf8_byte_by_byte)
{
    T_ASSERT_STREQ("caf\\xe9", ESC("caf\xe9"));                        /* Latin-1 */
    T_ASSERT_STREQ("\\x80\\xbf", ESC("\x80\xbf"));                     /* stray continuations */
    T_ASSERT_STREQ("\\xc0\\xaf \\xc1\\xbf", ESC("\xc0\xaf \xc1\xbf")); /* overlong 2-byte */
    T_ASSERT_STREQ("\\xe0\\x80\\xaf", ESC("\xe0\x80\xaf"));            /* overlong 3-byte */
    T_ASSERT_STREQ("\\xf0\\x8f\\xbf\\xbf", ESC("\xf0\x8f\xbf\xbf"));   /* overlong 4-byte */
    T_ASSERT_STREQ("\\xed\\xa0\\x80", ESC("\xed\xa0\x80"));            /* a surrogate */
    T_ASSERT_STREQ("\\xf4\\x90\\x80\\x80", ESC("\xf4\x90\x80\x80"));   /* past U+10FFFF */
    T_ASSERT_STREQ("\\xf5\\xff\\xfe", ESC("\xf5\xff\xfe"));
    /* A sequence cut short: its lead is escaped and the next byte is looked at afresh. */
    T_ASSERT_STREQ("\\xe2\\x82x", ESC("\xe2\x82x"));
    T_ASSERT_STREQ("\\xe2\xc3\xa9", ESC("\xe2\xc3\xa9"));
    T_ASSERT_STREQ("ok\\xf0\\x9f\\x98", ESC("ok\xf0\x9f\x98")); /* at the end of the input */
}

TEST(escape_never_cuts_inside_an_escape_or_a_character)
{
    char buf[16];
    size_t n;

    n = md_log_escape(buf, 6, "ab\033cd", 5); /* "ab\x1bcd" needs 8 + NUL */
    T_ASSERT_EQ(8, n);
    T_ASSERT_STREQ("ab", buf); /* "\x1b" does not fit after "ab" in 5 */
    n = md_log_escape(buf, 7, "ab\033cd", 5);
    T_ASSERT_STREQ("ab\\x1b", buf);
    n = md_log_escape(buf, 5, "abc\xe2\x82\xac", 6);
    T_ASSERT_EQ(6, n);
    T_ASSERT_STREQ("abc", buf);               /* the euro sign needs 3 bytes */
    n = md_log_escape(buf, 4, "abcdefgh", 8); /* plain ASCII is cut anywhere */
    T_ASSERT_EQ(8, n);
    T_ASSERT_STREQ("abc", buf);
    T_ASSERT_EQ(4, md_log_escape(NULL, 0, "\x1b", 1)); /* measuring */
    n = md_log_escape(buf, 1, "x", 1);
    T_ASSERT_EQ(1, n);
    T_ASSERT_STREQ("", buf);
}

TEST(escape_dup_caps_the_result)
{
    static const char bold[] = "\x1b[1mbold\x1b[0m";
    char *s = md_log_escape_dup(bold, sizeof bold - 1, 1000);
    T_ASSERT_STREQ("\\x1b[1mbold\\x1b[0m", s);
    md_free(s);
    s = md_log_escape_dup("\x1b[1mbold", 9, 6);
    T_ASSERT_STREQ("\\x1b[1", s);
    md_free(s);
    s = md_log_escape_dup("a\0b", 3, 100); /* a NUL byte does not end the text */
    T_ASSERT_STREQ("a\\x00b", s);
    md_free(s);
}

/* Every byte string of length 1..3 over a set of interesting bytes: the result is valid UTF-8,
 * holds no control byte, and measuring agrees with writing. */
TEST(escape_output_is_always_safe)
{
    static const unsigned char bytes[] = {0x00, 0x07, 0x0a, 0x0d, 0x1b, 0x20, 0x41, 0x5c, 0x7f,
                                          0x80, 0x9b, 0xa0, 0xbf, 0xc0, 0xc2, 0xc3, 0xdf, 0xe0,
                                          0xe2, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff};
    const size_t nb = sizeof bytes;
    char in[3], out[64];

    for (size_t a = 0; a < nb; a++)
        for (size_t b = 0; b <= nb; b++)
            for (size_t c = 0; c <= nb; c++) {
                size_t n = 1;
                in[0] = (char)bytes[a];
                if (b < nb) {
                    in[n++] = (char)bytes[b];
                    if (c < nb)
                        in[n++] = (char)bytes[c];
                } else if (c < nb) {
                    continue;
                }
                size_t len = md_log_escape(out, sizeof out, in, n);
                T_ASSERT_EQ(len, strlen(out));
                T_ASSERT_EQ(len, md_log_escape(NULL, 0, in, n));
                T_ASSERT_TRUE(len <= 4 * n);
                if (!valid_utf8((const unsigned char *)out, len) || has_control(out))
                    T_FAIL("unsafe escape of %02x %02x %02x: \"%s\"", (unsigned char)in[0],
                           n > 1 ? (unsigned char)in[1] : 0, n > 2 ? (unsigned char)in[2] : 0, out);
            }
}

TEST(limit_lets_a_burst_through_then_counts)
{
    struct md_log_limit l;
    uint64_t ended = 99;

    md_log_limit_init(&l, 3, 1000);
    T_ASSERT_EQ(UINT64_MAX, md_log_limit_due(&l));
    for (int i = 0; i < 3; i++) {
        T_ASSERT_TRUE(md_log_limit_take(&l, 100 + (uint64_t)i, &ended));
        T_ASSERT_EQ(0, ended);
    }
    T_ASSERT_EQ(UINT64_MAX, md_log_limit_due(&l)); /* nothing held back yet */
    T_ASSERT_FALSE(md_log_limit_take(&l, 200, &ended));
    T_ASSERT_EQ(1, l.suppressed); /* the first line held back */
    T_ASSERT_EQ(1100, md_log_limit_due(&l));
    for (int i = 0; i < 9; i++)
        T_ASSERT_FALSE(md_log_limit_take(&l, 1099, &ended));
    T_ASSERT_EQ(0, md_log_limit_close(&l, 1099, false)); /* not over yet */
    T_ASSERT_EQ(10, md_log_limit_close(&l, 1100, false));
    T_ASSERT_EQ(UINT64_MAX, md_log_limit_due(&l));
    T_ASSERT_EQ(0, md_log_limit_close(&l, 5000, true)); /* nothing left to report */
    /* The next line opens a new window with a whole burst. */
    for (int i = 0; i < 3; i++)
        T_ASSERT_TRUE(md_log_limit_take(&l, 1500, &ended));
    T_ASSERT_FALSE(md_log_limit_take(&l, 1500, &ended));
    T_ASSERT_EQ(2500, md_log_limit_due(&l));
}

TEST(limit_window_over_without_close_reports_on_the_next_line)
{
    struct md_log_limit l;
    uint64_t ended = 99;

    md_log_limit_init(&l, 2, 30000);
    T_ASSERT_TRUE(md_log_limit_take(&l, 0, &ended));
    T_ASSERT_TRUE(md_log_limit_take(&l, 1, &ended));
    T_ASSERT_FALSE(md_log_limit_take(&l, 2, &ended));
    T_ASSERT_FALSE(md_log_limit_take(&l, 3, &ended));
    T_ASSERT_EQ(0, ended);
    /* 30 s later (the caller's timer has not run yet): the summary comes with this line. */
    T_ASSERT_TRUE(md_log_limit_take(&l, 30000, &ended));
    T_ASSERT_EQ(2, ended);
    T_ASSERT_TRUE(md_log_limit_take(&l, 30001, &ended));
    T_ASSERT_EQ(0, ended);
    T_ASSERT_FALSE(md_log_limit_take(&l, 30002, &ended));
    /* The source ends before the window does: force reports it. */
    T_ASSERT_EQ(0, md_log_limit_close(&l, 30003, false));
    T_ASSERT_EQ(1, md_log_limit_close(&l, 30003, true));
}

TEST(limit_quiet_window_reports_nothing)
{
    struct md_log_limit l;
    uint64_t ended = 99;

    md_log_limit_init(&l, 5, 100);
    for (uint64_t t = 0; t < 10000; t += 50) { /* 2 lines a window: never limited */
        T_ASSERT_TRUE(md_log_limit_take(&l, t, &ended));
        T_ASSERT_EQ(0, ended);
    }
    T_ASSERT_EQ(0, md_log_limit_close(&l, 20000, false));
}

TEST(limit_zero_burst_is_no_limit)
{
    struct md_log_limit l;
    uint64_t ended = 99;

    md_log_limit_init(&l, 0, 0);
    for (int i = 0; i < 100000; i++)
        T_ASSERT_TRUE(md_log_limit_take(&l, 0, &ended));
    T_ASSERT_EQ(0, ended);
    T_ASSERT_EQ(UINT64_MAX, md_log_limit_due(&l));
    T_ASSERT_EQ(0, md_log_limit_close(&l, 0, true));
}

/* md__log writes to fd 2: point it at a file for the duration of fn. */
static size_t capture(void (*fn)(void), char *out, size_t size)
{
    char path[] = "/tmp/test_log.XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    ssize_t n;

    if (fd < 0 || saved < 0)
        return 0;
    unlink(path);
    dup2(fd, 2);
    fn();
    dup2(saved, 2);
    close(saved);
    n = pread(fd, out, size - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

static void log_long_euros(void)
{
    char text[6001];

    /* 2000 euro signs (3 bytes each): the 4 KiB line must be cut between two of them. */
    for (int i = 0; i < 2000; i++)
        memcpy(text + 3 * i, "\xe2\x82\xac", 3);
    text[6000] = '\0';
    md_log_init("test", MD_LOG_NOTICE);
    for (int shift = 0; shift < 3; shift++)
        md_log(MD_LOG_NOTICE, "%.*sx %s", shift, "ab", text);
}

TEST(log_line_cut_at_a_character_boundary)
{
    static char out[16384];
    size_t n = capture(log_long_euros, out, sizeof out);
    int lines = 0;

    T_ASSERT_TRUE(n > 0);
    for (char *l = out, *nl; (nl = strchr(l, '\n')) != NULL; l = nl + 1) {
        lines++;
        T_ASSERT_TRUE(nl - l < 4096);
        T_ASSERT_TRUE(nl - l > 4000);
        if (!valid_utf8((const unsigned char *)l, (size_t)(nl - l)))
            T_FAIL("line %d (%d bytes) is not valid UTF-8", lines, (int)(nl - l));
    }
    T_ASSERT_EQ(3, lines);
}

static void log_one_unstamped(void)
{
    md_log_init("meshd-kit", MD_LOG_INFO);
    md_log_set_stamp(false);
    md_log(MD_LOG_WARN, "bare: k=%d", 1);
    md_log_set_stamp(true);
    md_log(MD_LOG_WARN, "stamped: k=%d", 2);
}

/* A worker under meshd writes "warn meshd-kit[42]: ..." with no timestamp: meshd stamps the
 * line when it logs the worker's stderr again. */
TEST(log_without_stamp)
{
    static char out[1024];
    char want[64], *second;

    unsetenv("JOURNAL_STREAM");
    T_ASSERT_TRUE(capture(log_one_unstamped, out, sizeof out) > 0);
    snprintf(want, sizeof want, "warn meshd-kit[%ld]: bare: k=1\n", (long)getpid());
    T_ASSERT_EQ(0, strncmp(out, want, strlen(want)));
    second = out + strlen(want);
    /* "2026-12-05T10:30:41.123Z warn ..." */
    T_ASSERT_TRUE(strlen(second) > 25 && second[4] == '-' && second[10] == 'T' &&
                  second[23] == 'Z');
    T_ASSERT_CONTAINS(second, " warn meshd-kit[");
    T_ASSERT_CONTAINS(second, "stamped: k=2\n");
}

T_MAIN()
