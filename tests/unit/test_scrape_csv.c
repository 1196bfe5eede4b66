/* test_scrape_csv.c - meshd-scrape's streaming CSV parser (workers/scrape/csv.c): the grammar,
 * chunk boundaries, line numbers, encodings, the record-level flags and the fatal errors, and a
 * crude throughput figure. */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "csv.h"
#include "meshd/md_alloc.h"
#include "t.h"

/* ---- a recorder ----------------------------------------------------------------------------- */

/* Every delivered record, rendered as one line so a whole run compares as one string:
 *   <line>-<end_line>:<field>|<field>...[ !<bad_field>:<bad>]\n
 * where a quoted field is written "text" (inner text raw), an empty unquoted field as ~, and
 * CR, LF and the field separator inside text as \r \n \|. */
struct rec {
    char *out;
    size_t len, alloc;
    int stop_at; /* return 42 from the stop_at-th record (1-based); 0: never */
    int seen;
};

static void out_put(struct rec *r, const char *s, size_t n)
{
    if (r->len + n + 1 > r->alloc) {
        r->alloc = (r->len + n + 1) * 2;
        r->out = md_xrealloc(r->out, r->alloc);
    }
    memcpy(r->out + r->len, s, n);
    r->len += n;
    r->out[r->len] = '\0';
}

static void out_str(struct rec *r, const char *s)
{
    out_put(r, s, strlen(s));
}

static int rec_cb(void *ctx, const struct csv_record *rec)
{
    struct rec *r = ctx;
    char head[64];

    snprintf(head, sizeof head, "%llu-%llu:", (unsigned long long)rec->line,
             (unsigned long long)rec->end_line);
    out_str(r, head);
    for (size_t i = 0; i < rec->n; i++) {
        const struct csv_field *f = &rec->f[i];
        if (i > 0)
            out_str(r, "|");
        if (f->p[f->len] != '\0' || memchr(f->p, '\0', f->len) != NULL)
            out_str(r, "<NUL!>");
        if (f->quoted)
            out_str(r, "\"");
        else if (f->len == 0)
            out_str(r, "~");
        for (size_t j = 0; j < f->len; j++) {
            char c = f->p[j];
            if (c == '\r')
                out_str(r, "\\r");
            else if (c == '\n')
                out_str(r, "\\n");
            else if (c == '|')
                out_str(r, "\\|");
            else
                out_put(r, &c, 1);
        }
        if (f->quoted)
            out_str(r, "\"");
    }
    if (rec->bad) {
        snprintf(head, sizeof head, " !%zu:", rec->bad_field);
        out_str(r, head);
        out_str(r, rec->bad);
    }
    out_str(r, "\n");
    r->seen++;
    return r->seen == r->stop_at ? 42 : 0;
}

/* One parse of in[0..n): step 0 is one feed, otherwise chunks of step bytes; split (nonzero)
 * instead cuts the input in two there.  Returns the first nonzero feed/finish code (0: all
 * went through); the records are in r->out, the error in err. */
struct run {
    struct rec r;
    int rc;
    char err[200];
    uint64_t bytes, records, bad_records, line;
};

static void run_opts(const struct csv_opts *o, const char *in, size_t n, size_t step, size_t split,
                     struct run *out)
{
    struct csv_parser p;
    int rc = 0;

    memset(out, 0, sizeof *out);
    out_str(&out->r, "");
    if (csv_init(&p, o) != 0)
        T_FAIL("csv_init: %s", csv_error(&p));
    if (split) {
        rc = csv_feed(&p, in, split, rec_cb, &out->r);
        if (rc == 0)
            rc = csv_feed(&p, in + split, n - split, rec_cb, &out->r);
    } else if (step == 0) {
        rc = csv_feed(&p, in, n, rec_cb, &out->r);
    } else {
        for (size_t i = 0; i < n && rc == 0; i += step)
            rc = csv_feed(&p, in + i, n - i < step ? n - i : step, rec_cb, &out->r);
    }
    if (rc == 0)
        rc = csv_finish(&p, rec_cb, &out->r);
    out->rc = rc;
    snprintf(out->err, sizeof out->err, "%s", csv_error(&p));
    out->bytes = p.bytes;
    out->records = p.records;
    out->bad_records = p.bad_records;
    out->line = p.line;
    csv_cleanup(&p);
}

static void run_free(struct run *r)
{
    md_free(r->r.out);
    r->r.out = NULL;
}

/* Parses s (NUL-terminated) with o in one feed and checks the rendering and the result. */
#define CHECK_OPTS(o, s, want)                                                                     \
    do {                                                                                           \
        struct run run_;                                                                           \
        run_opts((o), (s), strlen(s), 0, 0, &run_);                                                \
        if (strcmp(run_.r.out, (want)) != 0) {                                                     \
            fprintf(stderr, "  got:\n%s  want:\n%s", run_.r.out, (want));                          \
            run_free(&run_);                                                                       \
            T_FAIL("records differ");                                                              \
        }                                                                                          \
        T_ASSERT_EQ(0, run_.rc);                                                                   \
        run_free(&run_);                                                                           \
    } while (0)
#define CHECK(s, want) CHECK_OPTS(NULL, (s), (want))

static const struct csv_opts LATIN1 = {.encoding = CSV_LATIN1};
static const struct csv_opts CP1252 = {.encoding = CSV_CP1252};

/* ---- the grammar ---------------------------------------------------------------------------- */

TEST(basic_records)
{
    CHECK("a,b,c\n1,2,3\n", "1-1:a|b|c\n2-2:1|2|3\n");
    CHECK("one\n", "1-1:one\n");
    CHECK("", "");
}

TEST(quoted_delimiters_and_newlines)
{
    CHECK("\"a,b\",\"c\nd\",e\n", "1-2:\"a,b\"|\"c\\nd\"|e\n");
    /* CR LF inside quotes is data, kept whole. */
    CHECK("\"x\r\ny\"\r\nz\r\n", "1-2:\"x\\r\\ny\"\n3-3:z\n");
}

TEST(doubled_quote_escapes)
{
    CHECK("\"say \"\"hi\"\"\",\"\"\"\"\n", "1-1:\"say \"hi\"\"|\"\"\"\n");
    CHECK("\"\"\"\"\"\"\n", "1-1:\"\"\"\"\n"); /* """""" is two quotes */
}

TEST(quote_inside_unquoted_field_is_data)
{
    CHECK("ab\"c,d\"\n", "1-1:ab\"c|d\"\n");
}

TEST(crlf_line_ends)
{
    CHECK("a,b\r\nc,d\r\n", "1-1:a|b\n2-2:c|d\n");
    CHECK("\"a\"\r\n\"b\",\r\n", "1-1:\"a\"\n2-2:\"b\"|~\n");
}

TEST(lone_cr_is_data)
{
    CHECK("a\rb,c\n", "1-1:a\\rb|c\n");
    CHECK("a\r\r\n", "1-1:a\\r\n");
    CHECK("\rx\n", "1-1:\\rx\n");
    CHECK(",\r,\n", "1-1:~|\\r|~\n");
    /* A CR at the very end of the input is taken for a CR LF cut short. */
    CHECK("a,b\r", "1-1:a|b\n");
    CHECK("a\n\r", "1-1:a\n");
}

TEST(blank_lines_are_skipped)
{
    CHECK("\n\na\n\r\n\nb\n\n", "3-3:a\n6-6:b\n");
    /* A quoted empty field is not blank. */
    CHECK("\n\"\"\n", "2-2:\"\"\n");
}

struct first {
    size_t n, len[4];
    bool quoted[4];
    char c0;
};

static int first_cb(void *ctx, const struct csv_record *rec)
{
    struct first *f = ctx;

    f->n = rec->n;
    for (size_t i = 0; i < rec->n && i < 4; i++) {
        f->len[i] = rec->f[i].len;
        f->quoted[i] = rec->f[i].quoted;
    }
    f->c0 = rec->f[0].p[0];
    return 0;
}

TEST(empty_vs_quoted_empty)
{
    struct csv_parser p;
    struct first f = {0};

    CHECK(",\"\",x\n", "1-1:~|\"\"|x\n");
    CHECK("a,\n", "1-1:a|~\n");
    CHECK(",\n", "1-1:~|~\n");
    /* The struct itself, not just the rendering: empty fields point at a NUL too. */
    T_ASSERT_EQ(0, csv_init(&p, NULL));
    T_ASSERT_EQ(0, csv_feed(&p, ",\"\"\n", 4, first_cb, &f));
    T_ASSERT_EQ(0, csv_finish(&p, first_cb, &f));
    csv_cleanup(&p);
    T_ASSERT_EQ(2, f.n);
    T_ASSERT_EQ(0, f.len[0]);
    T_ASSERT_FALSE(f.quoted[0]);
    T_ASSERT_EQ(0, f.len[1]);
    T_ASSERT_TRUE(f.quoted[1]);
    T_ASSERT_EQ('\0', f.c0);
}

TEST(last_record_without_line_end)
{
    CHECK("a,b\nc,d", "1-1:a|b\n2-2:c|d\n");
    CHECK("\"q\"", "1-1:\"q\"\n");
    CHECK("a,", "1-1:a|~\n");
}

TEST(custom_delimiter_and_quote)
{
    const struct csv_opts semi = {.delim = ';', .quote = '\''};
    const struct csv_opts tab = {.delim = '\t'};

    CHECK_OPTS(&semi, "a;'b;c';'it''s'\n\"x\",y\n", "1-1:a|\"b;c\"|\"it's\"\n2-2:\"x\",y\n");
    CHECK_OPTS(&tab, "a\tb,c\t\"d\te\"\n", "1-1:a|b,c|\"d\te\"\n");
}

TEST(init_rejects_bad_options)
{
    struct csv_parser p;
    const struct csv_opts same = {.delim = '\'', .quote = '\''};
    const struct csv_opts lf = {.delim = '\n'};
    const struct csv_opts high = {.delim = (char)0xA7};
    const struct csv_opts enc = {.encoding = (enum csv_encoding)7};

    T_ASSERT_EQ(-EINVAL, csv_init(&p, &same));
    T_ASSERT_CONTAINS(csv_error(&p), "different ASCII");
    T_ASSERT_EQ(-EINVAL, csv_feed(&p, "a\n", 2, rec_cb, NULL));
    csv_cleanup(&p);
    T_ASSERT_EQ(-EINVAL, csv_init(&p, &lf));
    csv_cleanup(&p);
    T_ASSERT_EQ(-EINVAL, csv_init(&p, &high));
    csv_cleanup(&p);
    T_ASSERT_EQ(-EINVAL, csv_init(&p, &enc));
    csv_cleanup(&p);
}

/* ---- line numbers --------------------------------------------------------------------------- */

TEST(line_numbers_of_multiline_records)
{
    CHECK("h1,h2\na,\"x\ny\nz\",b\nc\n\n\"p\nq\"\n",
          "1-1:h1|h2\n2-4:a|\"x\\ny\\nz\"|b\n5-5:c\n7-8:\"p\\nq\"\n");
}

TEST(counters)
{
    struct run r;
    const char *in = "a\n\n\"b\nc\"\nd\0x\ne";

    run_opts(NULL, in, 14, 0, 0, &r);
    T_ASSERT_EQ(0, r.rc);
    T_ASSERT_EQ(14, r.bytes);
    T_ASSERT_EQ(4, r.records);
    T_ASSERT_EQ(1, r.bad_records);
    T_ASSERT_EQ(6, r.line); /* five LFs: the parser is on line 6 */
    run_free(&r);
}

/* ---- chunk boundaries ----------------------------------------------------------------------- */

/* A sample with every construct that carries state across a feed: BOM, "" pairs, CR LF, lone CR,
 * quoted CR LF and LF, multi-byte UTF-8 (2, 3 and 4 bytes), invalid UTF-8, NUL, text after a
 * closing quote, blank lines, empty fields and a last record without a line end. */
static const char TRICKY[] = "\xEF\xBB\xBF"
                             "id,name,note\r\n"
                             "1,\"caf\xC3\xA9, \"\"bar\"\"\",\xE2\x82\xAC\xF0\x9F\x98\x80\r\n"
                             "\r\n"
                             "2,\"multi\r\nline\nfield\",a\rb\n"
                             "\n"
                             "3,\"x\"y,\xE2\x82\n"
                             "4,,\"\",\"\"\"\"\r\n"
                             "5,a\0b,\xED\xA0\x80\n"
                             "6,\"\",\"end\"";

static void every_split(const struct csv_opts *o, const char *in, size_t n)
{
    struct run whole, part;

    run_opts(o, in, n, 0, 0, &whole);
    T_ASSERT_EQ(0, whole.rc);
    T_ASSERT_EQ(n, whole.bytes);
    for (size_t split = 1; split < n; split++) {
        run_opts(o, in, n, 0, split, &part);
        if (strcmp(part.r.out, whole.r.out) != 0 || part.rc != 0 || part.bytes != n) {
            fprintf(stderr, "  split %zu:\n%s  one feed:\n%s", split, part.r.out, whole.r.out);
            T_FAIL("a split at byte %zu changes the result", split);
        }
        run_free(&part);
    }
    for (size_t step = 1; step <= 9; step++) {
        run_opts(o, in, n, step, 0, &part);
        if (strcmp(part.r.out, whole.r.out) != 0 || part.rc != 0 || part.bytes != n)
            T_FAIL("feeds of %zu bytes change the result", step);
        run_free(&part);
    }
    run_free(&whole);
}

TEST(chunk_boundaries_at_every_byte)
{
    struct run r;
    const char *want = "1-1:id|name|note\n"
                       "2-2:1|\"caf\xC3\xA9, \"bar\"\"|\xE2\x82\xAC\xF0\x9F\x98\x80\n"
                       "4-6:2|\"multi\\r\\nline\\nfield\"|a\\rb\n"
                       "8-8:3|\"xy\"|\xEF\xBF\xBD !1:text after a closing quote\n"
                       "9-9:4|~|\"\"|\"\"\"\n"
                       "10-10:5|a\xEF\xBF\xBD"
                       "b|\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD !1:NUL byte at byte 2 of the field\n"
                       "11-11:6|\"\"|\"end\"\n";

    run_opts(NULL, TRICKY, sizeof TRICKY - 1, 0, 0, &r);
    if (strcmp(r.r.out, want) != 0) {
        fprintf(stderr, "  got:\n%s  want:\n%s", r.r.out, want);
        T_FAIL("records differ");
    }
    T_ASSERT_EQ(7, r.records);
    T_ASSERT_EQ(2, r.bad_records);
    run_free(&r);
    every_split(NULL, TRICKY, sizeof TRICKY - 1);
    every_split(&LATIN1, TRICKY, sizeof TRICKY - 1);
    every_split(&CP1252, TRICKY, sizeof TRICKY - 1);
}

/* ---- BOM and encodings ---------------------------------------------------------------------- */

TEST(bom_skipped_at_start_only)
{
    CHECK("\xEF\xBB\xBF"
          "a,b\n",
          "1-1:a|b\n");
    CHECK("\xEF\xBB\xBF\n\"q\"\n", "2-2:\"q\"\n");
    CHECK("x\n\xEF\xBB\xBFy\n", "1-1:x\n2-2:\xEF\xBB\xBFy\n");
    /* Not for single-byte encodings: there it is three characters. */
    CHECK_OPTS(&LATIN1,
               "\xEF\xBB\xBF"
               "a\n",
               "1-1:\xC3\xAF\xC2\xBB\xC2\xBF"
               "a\n");
    /* A BOM's first bytes, then something else: data (here invalid UTF-8). */
    CHECK("\xEF\xBB"
          "a\n",
          "1-1:\xEF\xBF\xBD"
          "a !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xEF\xBB", "1-1:\xEF\xBF\xBD !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xEF\xBB\xBF", "");
}

TEST(latin1_to_utf8)
{
    CHECK_OPTS(&LATIN1, "caf\xE9,\xFF\x80\n", "1-1:caf\xC3\xA9|\xC3\xBF\xC2\x80\n");
}

TEST(cp1252_to_utf8)
{
    CHECK_OPTS(&CP1252, "\x80,\x9F,\xE9,\x93q\x94\n",
               "1-1:\xE2\x82\xAC|\xC5\xB8|\xC3\xA9|\xE2\x80\x9Cq\xE2\x80\x9D\n");
    /* The five undefined bytes mark the record bad; each becomes U+FFFD. */
    CHECK_OPTS(&CP1252, "ok,a\x81\n",
               "1-1:ok|a\xEF\xBF\xBD !1:byte 0x81 undefined in Windows-1252 at byte 2 of the "
               "field\n");
    CHECK_OPTS(&CP1252, "\x8D\x8F\x90\x9D\n",
               "1-1:\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD !0:byte 0x8D undefined in "
               "Windows-1252 at byte 1 of the field\n");
}

TEST(valid_utf8_passes)
{
    CHECK("\xC2\x80,\xDF\xBF,\xE0\xA0\x80,\xED\x9F\xBF,\xEE\x80\x80,\xF0\x90\x80\x80,"
          "\xF4\x8F\xBF\xBF\n",
          "1-1:\xC2\x80|\xDF\xBF|\xE0\xA0\x80|\xED\x9F\xBF|\xEE\x80\x80|\xF0\x90\x80\x80|"
          "\xF4\x8F\xBF\xBF\n");
}

#define R "\xEF\xBF\xBD"

TEST(invalid_utf8_flagged_record_delivered)
{
    /* Each maximal invalid subpart is one U+FFFD (Unicode's recommended practice). */
    CHECK("a\xC0\x80z\n", "1-1:a" R R "z !0:invalid UTF-8 at byte 2 of the field\n");
    CHECK("\xE0\x80\x80\n", "1-1:" R R R " !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xED\xA0\x80\n", "1-1:" R R R " !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xF4\x90\x80\x80\n", "1-1:" R R R R " !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xF5,\xFF\n", "1-1:" R "|" R " !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("x,\x80\n", "1-1:x|" R " !1:invalid UTF-8 at byte 1 of the field\n");
    /* Truncated before a delimiter, a quote, a line end and EOF. */
    CHECK("ab\xE2\x82,c\n", "1-1:ab" R "|c !0:invalid UTF-8 at byte 3 of the field\n");
    CHECK("\"\xE2\x82\"\n", "1-1:\"" R "\" !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xF0\x9F\x98\n", "1-1:" R " !0:invalid UTF-8 at byte 1 of the field\n");
    CHECK("\xF0\x9F", "1-1:" R " !0:invalid UTF-8 at byte 1 of the field\n");
    /* A new lead byte cuts the pending sequence. */
    CHECK("\xE2\xC3\xA9\n", "1-1:" R "\xC3\xA9 !0:invalid UTF-8 at byte 1 of the field\n");
    /* Only the first problem is reported; the next record is clean again. */
    struct run r;
    run_opts(NULL, "\x80,\0\nok\n", 7, 0, 0, &r);
    T_ASSERT_STREQ(r.r.out, "1-1:" R "|" R " !0:invalid UTF-8 at byte 1 of the field\n2-2:ok\n");
    T_ASSERT_EQ(1, r.bad_records);
    run_free(&r);
}

TEST(nul_flagged)
{
    struct run r;

    run_opts(NULL, "a\0b,\"\0\"\nc\n", 10, 0, 0, &r);
    T_ASSERT_STREQ(r.r.out, "1-1:a" R "b|\"" R "\" !0:NUL byte at byte 2 of the field\n2-2:c\n");
    T_ASSERT_EQ(1, r.bad_records);
    run_free(&r);
    run_opts(&LATIN1, "x,\0\n", 4, 0, 0, &r);
    T_ASSERT_STREQ(r.r.out, "1-1:x|" R " !1:NUL byte at byte 1 of the field\n");
    run_free(&r);
}

TEST(text_after_closing_quote_flagged)
{
    CHECK("\"ab\"c,d\nnext\n", "1-1:\"abc\"|d !0:text after a closing quote\n2-2:next\n");
    CHECK("x,\"ab\" \n", "1-1:x|\"ab \" !1:text after a closing quote\n");
    CHECK("\"a\"\"b\"\"\"c\n", "1-1:\"a\"b\"c\" !0:text after a closing quote\n");
    /* A lone CR after the closing quote is text too; CR LF is a line end. */
    CHECK("\"a\"\rb\n", "1-1:\"a\\rb\" !0:text after a closing quote\n");
    CHECK("\"a\"\r\n", "1-1:\"a\"\n");
}

/* ---- fatal errors --------------------------------------------------------------------------- */

TEST(unterminated_quote_at_eof)
{
    struct run r;
    const char *in = "a,b\n1,\"open\nline3\nline4";

    run_opts(NULL, in, strlen(in), 0, 0, &r);
    T_ASSERT_EQ(MD_EPARSE, r.rc);
    T_ASSERT_STREQ(r.err, "line 2: unterminated quoted field (EOF)");
    T_ASSERT_STREQ(r.r.out, "1-1:a|b\n");
    run_free(&r);
    /* Closed then reopened by a "" pair at the end. */
    run_opts(NULL, "x\n\n\"a\"\"", 7, 0, 0, &r);
    T_ASSERT_EQ(MD_EPARSE, r.rc);
    T_ASSERT_STREQ(r.err, "line 3: unterminated quoted field (EOF)");
    run_free(&r);
}

TEST(max_record)
{
    const struct csv_opts o = {.max_record = 8};
    struct run r;
    char big[400];

    /* "abc,defg" is 3 + 4 bytes of text and two field ends: exactly 9 > 8. */
    run_opts(&o, "abc,def\nabc,defg\n", 17, 0, 0, &r);
    T_ASSERT_EQ(MD_ETOOBIG, r.rc);
    T_ASSERT_STREQ(r.r.out, "1-1:abc|def\n");
    T_ASSERT_STREQ(r.err, "line 2: record longer than 8 bytes (max_record)");
    run_free(&r);

    /* An unterminated quote swallows the lines after it: the message names where it opened. */
    const struct csv_opts o2 = {.max_record = 64};
    strcpy(big, "h\n\"ok\"\nx,\"oops\n");
    for (int i = 0; i < 30; i++)
        strcat(big, "more,\n");
    run_opts(&o2, big, strlen(big), 0, 0, &r);
    T_ASSERT_EQ(MD_ETOOBIG, r.rc);
    T_ASSERT_STREQ(r.err, "line 3: record longer than 64 bytes (max_record) inside a quoted "
                          "field opened on line 3: unterminated quote?");
    T_ASSERT_STREQ(r.r.out, "1-1:h\n2-2:\"ok\"\n");
    run_free(&r);
    /* Sticky: the parser answers the same from then on (run_opts stops at the first error, so
     * check by hand). */
    struct csv_parser p;
    T_ASSERT_EQ(0, csv_init(&p, &o));
    T_ASSERT_EQ(MD_ETOOBIG, csv_feed(&p, "123456789", 9, rec_cb, NULL));
    T_ASSERT_EQ(MD_ETOOBIG, csv_feed(&p, "\n", 1, rec_cb, NULL));
    T_ASSERT_EQ(MD_ETOOBIG, csv_finish(&p, rec_cb, NULL));
    T_ASSERT_CONTAINS(csv_error(&p), "line 1: record longer than 8 bytes");
    csv_cleanup(&p);
}

TEST(max_record_default_and_memory_bound)
{
    /* A 2 MiB unquoted line fails at the 1 MiB default; the buffer never passed it. */
    size_t n = (size_t)2 << 20;
    char *big = md_xmalloc(n);
    struct csv_parser p;

    memset(big, 'x', n);
    T_ASSERT_EQ(0, csv_init(&p, NULL));
    T_ASSERT_EQ(MD_ETOOBIG, csv_feed(&p, big, n, rec_cb, NULL));
    T_ASSERT_TRUE(p.alloc <= CSV_MAX_RECORD_DEFAULT);
    T_ASSERT_STREQ(csv_error(&p), "line 1: record longer than 1048576 bytes (max_record)");
    csv_cleanup(&p);
    md_free(big);
}

TEST(max_fields)
{
    const struct csv_opts o = {.max_fields = 3};
    struct run r;

    run_opts(&o, "a,b,c\n\n,,,\n", 11, 0, 0, &r);
    T_ASSERT_EQ(MD_ETOOBIG, r.rc);
    T_ASSERT_STREQ(r.r.out, "1-1:a|b|c\n");
    T_ASSERT_STREQ(r.err, "line 3: record has more than 3 fields (max_fields)");
    run_free(&r);
}

/* ---- the callback --------------------------------------------------------------------------- */

TEST(callback_stop_propagates_and_resumes)
{
    struct csv_parser p;
    struct rec r = {.stop_at = 2};
    const char *in = "a\n\"b\nb\"\r\nc\n";
    size_t n = strlen(in);

    T_ASSERT_EQ(0, csv_init(&p, NULL));
    T_ASSERT_EQ(42, csv_feed(&p, in, n, rec_cb, &r));
    T_ASSERT_EQ(2, p.records);
    T_ASSERT_EQ(9, p.bytes); /* through the CR LF of the second record */
    T_ASSERT_EQ(4, p.line);
    /* The rest of the chunk goes on where the stop left it. */
    T_ASSERT_EQ(0, csv_feed(&p, in + p.bytes, n - (size_t)p.bytes, rec_cb, &r));
    T_ASSERT_EQ(0, csv_finish(&p, rec_cb, &r));
    T_ASSERT_STREQ(r.out, "1-1:a\n2-3:\"b\\nb\"\n4-4:c\n");
    csv_cleanup(&p);
    md_free(r.out);

    /* From csv_finish too. */
    struct rec r2 = {.stop_at = 1};
    T_ASSERT_EQ(0, csv_init(&p, NULL));
    T_ASSERT_EQ(0, csv_feed(&p, "last", 4, rec_cb, &r2));
    T_ASSERT_EQ(42, csv_finish(&p, rec_cb, &r2));
    csv_cleanup(&p);
    md_free(r2.out);
}

/* ---- throughput (printed, not asserted) ----------------------------------------------------- */

struct count {
    uint64_t fields, bytes;
};

static int count_cb(void *ctx, const struct csv_record *rec)
{
    struct count *c = ctx;

    c->fields += rec->n;
    for (size_t i = 0; i < rec->n; i++)
        c->bytes += rec->f[i].len;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(throughput)
{
    /* ~50 MB of parcel-like rows: ids, numbers, a date, plain and quoted text (with commas, ""
     * and accents), an empty field. */
    size_t cap = 52u << 20, n = 0, rows = 0;
    char *data = md_xmalloc(cap + 512);
    struct csv_parser p;
    double t0, t1, best = 0;

    while (n < cap - 512) {
        n += (size_t)snprintf(
            data + n, 512,
            "%zu,PARCEL-%07zu,%zu.%02zu,2024-%02zu-%02zu,\"%s, %s\",%s,,"
            "\"note \"\"%zu\"\" r\xC3\xA9sidentiel\",%zu\r\n",
            rows, rows * 7 % 9999991, rows % 100000, rows % 100, rows % 12 + 1, rows % 28 + 1,
            rows % 3 ? "Rue de la Paix" : "Chemin des Cr\xC3\xAAtes",
            rows % 5 ? "Lyon" : "Saint-\xC3\x89tienne", rows % 2 ? "residential" : "commercial",
            rows % 1000, rows * 31 % 977);
        rows++;
    }
    /* Best of three passes: the figure is meant to be quoted, and a shared machine is noisy. */
    for (int pass = 0; pass < 3; pass++) {
        struct count c = {0};
        T_ASSERT_EQ(0, csv_init(&p, NULL));
        t0 = now_s();
        for (size_t i = 0; i < n; i += 65536)
            T_ASSERT_EQ(0, csv_feed(&p, data + i, n - i < 65536 ? n - i : 65536, count_cb, &c));
        T_ASSERT_EQ(0, csv_finish(&p, count_cb, &c));
        t1 = now_s();
        T_ASSERT_EQ(rows, p.records);
        T_ASSERT_EQ(rows * 9, c.fields);
        csv_cleanup(&p);
        if (pass == 0 || t1 - t0 < best)
            best = t1 - t0;
    }
    fprintf(stderr,
            "  throughput: %.1f MB in %.3f s = %.0f MB/s (%zu rows, 64 KiB feeds, best of 3)\n",
            (double)n / 1e6, best, (double)n / 1e6 / best, rows);
    md_free(data);
}

T_MAIN()
