/* test_report_digest - the digest's pure rendering (workers/report/digest_render.c): the
 * verdict, escaping in the three documents, cleaning and cutting, the caps on lists, the order
 * of the jobs table, aligned text columns, and what the workers' summaries are read as.  The
 * registry side is tests/integration/test_report_digest.py. */
#include "t.h"

#include <stdarg.h>

#include "digest_internal.h"
#include "meshd/md_alloc.h"

#define T0 1764918000000LL /* 2025-12-05 07:00:00 UTC */
#define HOUR 3600000LL
#define DAY (24 * HOUR)

static char *sdup(const char *s)
{
    return s != NULL ? md_xstrdup(s) : NULL;
}

/* An empty model of the day [T0, T0 + DAY), read at its end. */
static void model(struct rpt_dg *d)
{
    memset(d, 0, sizeof *d);
    d->since_ms = T0;
    d->until_ms = T0 + DAY;
    d->built_ms = T0 + DAY + 3000;
    d->top = 10;
}

static struct rpt_dg_job *add_job(struct rpt_dg *d, const char *name, enum rpt_dg_kind kind,
                                  int64_t runs, int64_t ok, int64_t failed)
{
    d->jobs = md_xrealloc(d->jobs, (d->njobs + 1) * sizeof *d->jobs);
    struct rpt_dg_job *j = &d->jobs[d->njobs++];
    memset(j, 0, sizeof *j);
    j->job = sdup(name);
    j->kind = kind;
    j->c.runs = runs;
    j->c.ok = ok;
    j->c.failed = failed;
    j->p50_ms = 60000;
    j->max_ms = 120000;
    j->last_status = sdup(failed > 0 ? "failed" : "succeeded");
    j->last_ok_ms = ok > 0 ? T0 + HOUR : 0;
    d->t.runs += runs;
    d->t.ok += ok;
    d->t.failed += failed;
    d->jobs_total++;
    return j;
}

static struct rpt_dg_run *add_failure(struct rpt_dg *d, const char *job, const char *why)
{
    d->failures = md_xrealloc(d->failures, (d->nfailures + 1) * sizeof *d->failures);
    struct rpt_dg_run *r = &d->failures[d->nfailures++];
    memset(r, 0, sizeof *r);
    r->job = sdup(job);
    r->run_id = sdup("r1");
    r->node = sdup("pc");
    r->status = sdup("failed");
    r->why = sdup(why);
    r->exit_code = 1;
    r->signal = -1;
    r->started_ms = T0 + 2 * HOUR;
    r->duration_ms = 5000;
    return r;
}

static void add_alert(struct rpt_dg *d, const char *sev, const char *key, const char *msg)
{
    d->alerts = md_xrealloc(d->alerts, (d->nalerts + 1) * sizeof *d->alerts);
    struct rpt_dg_alert *a = &d->alerts[d->nalerts++];
    memset(a, 0, sizeof *a);
    a->severity = sdup(sev);
    a->key = sdup(key);
    a->node = sdup("pc");
    a->message = sdup(msg);
    a->count = 1;
    a->opened_ms = T0 + HOUR;
    d->open[strcmp(sev, "critical") == 0 ? 0 : strcmp(sev, "warning") == 0 ? 1 : 2]++;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The first line of text that starts with prefix (a static copy), or NULL. */
static const char *line_starting(const char *text, const char *prefix)
{
    static char buf[4096];
    size_t pl = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, pl) == 0) {
            size_t n = strcspn(p, "\n");
            if (n >= sizeof buf)
                n = sizeof buf - 1;
            memcpy(buf, p, n);
            buf[n] = '\0';
            return buf;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return NULL;
}

/* The line of text that contains needle (a static copy), or NULL. */
static const char *line_with(const char *text, const char *needle)
{
    static char buf[4096];
    const char *p = strstr(text, needle);
    if (p == NULL)
        return NULL;
    while (p > text && p[-1] != '\n')
        p--;
    size_t n = strcspn(p, "\n");
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/* ---- pieces ------------------------------------------------------------------------------- */

TEST(clean_folds_controls_and_keeps_utf8)
{
    char *s = rpt_dg_clean("  a\tb\r\n\x1b[31mc  \xc3\xa9t\xc3\xa9 \xff\xfe end\n", 0);
    T_ASSERT_STREQ("a b [31mc  \xc3\xa9t\xc3\xa9 ?? end", s);
    T_ASSERT_EQ(21, rpt_dg_width(s));
    md_free(s);
    s = rpt_dg_clean(NULL, 10);
    T_ASSERT_STREQ("", s);
    md_free(s);
    /* a C1 control (U+0085, NEL) is a line break too; an overlong NUL is not UTF-8 */
    s = rpt_dg_clean("x\xc2\x85y\xc0\x80z", 0);
    T_ASSERT_STREQ("x y??z", s);
    md_free(s);
}

TEST(clean_cuts_at_code_points)
{
    char *s = rpt_dg_clean("abcdefghij", 10);
    T_ASSERT_STREQ("abcdefghij", s); /* exactly the limit: whole */
    md_free(s);
    s = rpt_dg_clean("abcdefghijk", 10);
    T_ASSERT_STREQ("abcdefg...", s);
    T_ASSERT_EQ(10, rpt_dg_width(s));
    md_free(s);
    /* multi-byte characters are never split */
    s = rpt_dg_clean("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", 5);
    T_ASSERT_STREQ("\xc3\xa9\xc3\xa9...", s);
    md_free(s);
    s = rpt_dg_clean("abc de      fgh", 9);
    T_ASSERT_STREQ("abc de...", s);
    md_free(s);
}

TEST(html_escape_every_special)
{
    char *s = rpt_dg_html_escape("<script>alert(\"x\")</script> & 'y'");
    T_ASSERT_STREQ("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;", s);
    md_free(s);
}

TEST(md_escape_pipes_and_markup)
{
    char *s = rpt_dg_md_escape("a|b *c* _d_ `e` [f](g) <h> #i \\j ~k &l");
    T_ASSERT_STREQ("a\\|b \\*c\\* \\_d\\_ \\`e\\` \\[f\\](g) \\<h\\> \\#i \\\\j \\~k \\&l", s);
    md_free(s);
}

TEST(numbers_durations_times)
{
    char b[64];
    rpt_dg_fmt_count(0, b, sizeof b);
    T_ASSERT_STREQ("0", b);
    rpt_dg_fmt_count(999, b, sizeof b);
    T_ASSERT_STREQ("999", b);
    rpt_dg_fmt_count(1204, b, sizeof b);
    T_ASSERT_STREQ("1,204", b);
    rpt_dg_fmt_count(1234567890, b, sizeof b);
    T_ASSERT_STREQ("1,234,567,890", b);
    rpt_dg_fmt_count(-100000, b, sizeof b);
    T_ASSERT_STREQ("-100,000", b);
    rpt_dg_fmt_duration(850, b, sizeof b);
    T_ASSERT_STREQ("850ms", b);
    rpt_dg_fmt_duration(12345, b, sizeof b);
    T_ASSERT_STREQ("12.3s", b);
    rpt_dg_fmt_duration(723000, b, sizeof b);
    T_ASSERT_STREQ("12m03s", b);
    rpt_dg_fmt_duration(11040000, b, sizeof b);
    T_ASSERT_STREQ("3h04m", b);
    rpt_dg_fmt_duration(2 * DAY + HOUR, b, sizeof b);
    T_ASSERT_STREQ("2d01h", b);
    rpt_dg_fmt_duration(-1, b, sizeof b);
    T_ASSERT_STREQ("-", b);
    rpt_dg_fmt_time(T0, b, sizeof b);
    T_ASSERT_STREQ("2025-12-05 07:00", b);
    rpt_dg_fmt_time(0, b, sizeof b);
    T_ASSERT_STREQ("-", b);
}

/* ---- the verdict -------------------------------------------------------------------------- */

TEST(verdict_ok)
{
    struct rpt_dg d;
    bool att;
    model(&d);
    add_job(&d, "hourly", DG_COMMAND, 1204, 1204, 0);
    char *v = rpt_dg_verdict(&d, &att);
    T_ASSERT_STREQ("OK: 1,204 runs, 0 failed", v);
    T_ASSERT_FALSE(att);
    md_free(v);
    /* notes that need no one's attention */
    d.t.skipped = 2;
    d.open[1] = 1;
    v = rpt_dg_verdict(&d, &att);
    T_ASSERT_STREQ("OK: 1,204 runs, 0 failed; 2 skipped slots, 1 open warning", v);
    T_ASSERT_FALSE(att);
    md_free(v);
    rpt_dg_free(&d);
    model(&d);
    v = rpt_dg_verdict(&d, &att);
    T_ASSERT_STREQ("OK: no runs in the window", v);
    md_free(v);
    rpt_dg_free(&d);
}

TEST(verdict_attention_names_the_load)
{
    struct rpt_dg d;
    bool att;
    model(&d);
    add_job(&d, "hourly", DG_COMMAND, 24, 22, 2);
    add_job(&d, "nightly-load", DG_SCRAPE, 1, 0, 1);
    add_alert(&d, "critical", "scrape.nal.11", "HTTP 404");
    add_alert(&d, "critical", "check.parcels.x", "5 bad rows");
    char *v = rpt_dg_verdict(&d, &att);
    T_ASSERT_STREQ("ATTENTION: 3 failed runs, 2 open critical alerts, load 'nightly-load' did not "
                   "succeed in the window",
                   v);
    T_ASSERT_TRUE(att);
    md_free(v);
    rpt_dg_free(&d);
}

TEST(verdict_missed_fatal_overdue_silent_suites)
{
    struct rpt_dg d;
    bool att;
    model(&d);
    struct rpt_dg_job *j = add_job(&d, "daily", DG_COMMAND, 0, 0, 0);
    j->c.missed = 3;
    d.t.missed = 3;
    j = add_job(&d, "stuck", DG_COMMAND, 0, 0, 0);
    j->state = sdup("fatal");
    j->state_node = sdup("pc");
    j = add_job(&d, "weekly", DG_COMMAND, 0, 0, 0);
    j->next_run_ms = T0 + 3 * HOUR; /* due in the window, nothing recorded */
    j = add_job(&d, "late", DG_COMMAND, 0, 0, 0);
    j->next_run_ms = T0 + DAY - 60000; /* due within the grace: not yet overdue */
    d.nodes = md_xcalloc(2, sizeof *d.nodes);
    d.nodes[0].node = sdup("cloud");
    d.nodes[0].state = sdup("up");
    d.nodes[0].heartbeat_ms = T0 + 20 * HOUR;
    d.nodes[1].node = sdup("laptop");
    d.nodes[1].state = sdup("down"); /* shut down cleanly: not silent */
    d.nodes[1].heartbeat_ms = T0;
    d.nnodes = d.nodes_total = 2;
    d.work = md_xcalloc(1, sizeof *d.work);
    d.nwork = 1;
    d.work[0].job = sdup("dq");
    d.work[0].kind = DG_VALIDATE;
    d.work[0].suite = sdup("parcels");
    rpt_dg_work_from_summary(&d.work[0],
                             "{\"suite\":\"parcels\",\"results\":12,\"pass\":10,\"warn\":0,"
                             "\"fail\":2,\"refused\":0,\"error\":0}",
                             10);
    char *v = rpt_dg_verdict(&d, &att);
    T_ASSERT_STREQ("ATTENTION: job 'daily' did not succeed in the window, 3 slots missed, suite "
                   "'parcels' has 2 failing checks, job 'stuck' is FATAL on pc, job 'weekly' was "
                   "due at 2025-12-05 10:00 and did not run, node 'cloud' silent since "
                   "2025-12-06 03:00",
                   v);
    md_free(v);
    rpt_dg_free(&d);
}

TEST(verdict_is_capped)
{
    struct rpt_dg d;
    bool att;
    model(&d);
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "job%02d", i);
        struct rpt_dg_job *j = add_job(&d, name, DG_COMMAND, 1, 0, 1);
        j->state = sdup("fatal");
    }
    char *v = rpt_dg_verdict(&d, &att);
    T_ASSERT_CONTAINS(v, "ATTENTION: 40 failed runs, job 'job00' did not succeed");
    T_ASSERT_CONTAINS(v, "37 more jobs did not succeed");
    T_ASSERT_CONTAINS(v, " and 37 more");
    T_ASSERT_TRUE(strlen(v) < 600);
    md_free(v);
    rpt_dg_free(&d);
}

/* ---- the documents ------------------------------------------------------------------------ */

TEST(render_failing_job_first_and_escaped_everywhere)
{
    struct rpt_dg d;
    struct rpt_digest_doc doc;
    model(&d);
    d.external_url = "http://pc:8080/";
    d.node = "pc";
    add_job(&d, "a-fine-job", DG_COMMAND, 24, 24, 0);
    add_job(&d, "b|<pipe>", DG_COMMAND, 3, 2, 1);
    add_job(&d, "nightly-load", DG_SCRAPE, 1, 0, 1);
    add_failure(&d, "nightly-load", "2 of 67 file(s) failed: nal/11: HTTP 404 <Not Found>");
    add_failure(&d, "b|<pipe>", "exit 1\nsecond line\x1b[0m");
    add_alert(&d, "critical", "scrape.nal.11", "x < y & \"quoted\" | piped");
    rpt_dg_render(&d, &doc);

    T_ASSERT_TRUE(doc.attention);
    T_ASSERT_EQ(28, doc.runs);
    T_ASSERT_EQ(2, doc.failed);
    T_ASSERT_EQ(1, doc.open_critical);
    T_ASSERT_CONTAINS(doc.subject, "meshd digest 2025-12-06: ATTENTION: 2 failed runs");
    /* the headline comes first in every document */
    const char *head = "ATTENTION: 2 failed runs, 1 open critical alert, load 'nightly-load' did "
                       "not succeed in the window\n\n";
    T_ASSERT_TRUE(strncmp(doc.text, head, strlen(head)) == 0);
    T_ASSERT_CONTAINS(doc.markdown, "# ATTENTION: 2 failed runs");
    T_ASSERT_TRUE(strncmp(doc.markdown, "# ATTENTION", 11) == 0);
    T_ASSERT_CONTAINS(doc.html, "<h1 style=\"font-size:18px;margin:0 0 8px;color:#b00020\">"
                                "ATTENTION: 2 failed runs");

    /* jobs: failures first (1 failed each: by name then, after the failure counts) */
    const char *jobs = strstr(doc.text, "\nJobs\n");
    T_ASSERT_TRUE(jobs != NULL);
    const char *b = strstr(jobs, "b|<pipe>"), *n = strstr(jobs, "nightly-load"),
               *a = strstr(jobs, "a-fine-job");
    T_ASSERT_TRUE(b != NULL && n != NULL && a != NULL);
    T_ASSERT_TRUE(b < a && n < a);

    /* HTML: nothing from the data is markup */
    T_ASSERT_EQ(0, count_of(doc.html, "<pipe>"));
    T_ASSERT_EQ(0, count_of(doc.html, "<Not Found>"));
    T_ASSERT_CONTAINS(doc.html, "b|&lt;pipe&gt;");
    T_ASSERT_CONTAINS(doc.html, "x &lt; y &amp; &quot;quoted&quot; | piped");
    T_ASSERT_CONTAINS(doc.html, "<a href=\"http://pc:8080/#job=b%7C%3Cpipe%3E\">");
    T_ASSERT_TRUE(strncmp(doc.html, "<!DOCTYPE html>", 15) == 0);
    T_ASSERT_CONTAINS(doc.html, "</body></html>\n");

    /* Markdown: '|' never splits a cell; links and markup escaped */
    T_ASSERT_CONTAINS(doc.markdown, "[b\\|\\<pipe\\>](http://pc:8080/#job=b%7C%3Cpipe%3E)");
    T_ASSERT_CONTAINS(doc.markdown, "x \\< y \\& \"quoted\" \\| piped");
    /* every row of the alerts table has as many unescaped pipes as its header */
    const char *hdr = line_with(doc.markdown, "| severity |");
    T_ASSERT_TRUE(hdr != NULL);
    size_t pipes = count_of(hdr, "|");
    const char *row = line_with(doc.markdown, "| **critical** |");
    T_ASSERT_TRUE(row != NULL);
    T_ASSERT_EQ(pipes, count_of(row, "|") - count_of(row, "\\|"));

    /* text: no control characters but newlines, and the cleaned why on one line */
    for (const char *p = doc.text; *p; p++)
        T_ASSERT_TRUE(*p == '\n' || (unsigned char)*p >= 0x20);
    T_ASSERT_CONTAINS(doc.text, "exit 1 second line [0m");
    T_ASSERT_CONTAINS(doc.text, "Status page: http://pc:8080/");
    T_ASSERT_CONTAINS(doc.text, "Built by meshd-report on node pc.");

    /* sections the model has nothing for say so in one line */
    T_ASSERT_CONTAINS(doc.text, "No missed or skipped slots in the window.\n");
    T_ASSERT_CONTAINS(doc.text, "No scrape runs in the window.\n");
    T_ASSERT_CONTAINS(doc.text, "No validate runs in the window.\n");
    T_ASSERT_CONTAINS(doc.text, "No remediate runs in the window.\n");
    T_ASSERT_CONTAINS(doc.text, "No refresh runs in the window.\n");
    T_ASSERT_CONTAINS(doc.markdown, "No missed or skipped slots in the window.\n\n");
    T_ASSERT_CONTAINS(doc.html, "<p style=\"margin:4px 0\">No validate runs in the window.</p>");
    rpt_digest_doc_free(&doc);
    rpt_dg_free(&d);
}

TEST(render_text_columns_align)
{
    struct rpt_dg d;
    struct rpt_digest_doc doc;
    model(&d);
    add_job(&d, "x", DG_COMMAND, 5, 5, 0);
    add_job(&d, "\xc3\xa9t\xc3\xa9-job", DG_COMMAND, 12345, 12345, 0); /* 7 code points */
    add_job(&d, "a-much-longer-job-name", DG_COMMAND, 7, 7, 0);
    rpt_dg_render(&d, &doc);
    const char *hdr = line_starting(doc.text, "job  ");
    T_ASSERT_TRUE(hdr != NULL);
    /* "runs" is right-aligned: in every row its last digit sits under its 's' */
    size_t end = (size_t)(strstr(hdr, "runs") - hdr) + 4;
    const char *rows[] = {"x  ", "\xc3\xa9t\xc3\xa9-job ", "a-much-longer-job-name "};
    const char *nums[] = {"5", "12,345", "7"};
    for (int i = 0; i < 3; i++) {
        char line[4096];
        const char *l = line_starting(doc.text, rows[i]);
        T_ASSERT_TRUE(l != NULL);
        snprintf(line, sizeof line, "%s", l);
        /* the column in code points, not bytes */
        size_t cp = 0, k = 0;
        while (line[k] != '\0' && cp < end)
            cp += ((unsigned char)line[k++] & 0xc0) != 0x80;
        while (((unsigned char)line[k] & 0xc0) == 0x80)
            k++;
        size_t nl = strlen(nums[i]);
        T_ASSERT_TRUE(k >= nl);
        T_ASSERT_TRUE(strncmp(line + k - nl, nums[i], nl) == 0);
        T_ASSERT_TRUE(line[k] == ' ');
    }
    /* no line ends in white space */
    T_ASSERT_EQ(0, count_of(doc.text, " \n"));
    rpt_digest_doc_free(&doc);
    rpt_dg_free(&d);
}

TEST(render_caps_lists_and_cells)
{
    struct rpt_dg d;
    struct rpt_digest_doc doc;
    char longmsg[3000];
    model(&d);
    memset(longmsg, 'm', sizeof longmsg - 1);
    longmsg[sizeof longmsg - 1] = '\0';
    for (int i = 0; i < 80; i++) {
        char name[32];
        snprintf(name, sizeof name, "job%02d", i);
        add_job(&d, name, DG_COMMAND, 10, i < 30 ? 9 : 10, i < 30 ? 1 : 0);
    }
    for (int i = 0; i < 10; i++) /* what build reads: top of them */
        add_failure(&d, "job00", longmsg);
    for (int i = 0; i < 10; i++)
        add_alert(&d, "warning", "k", longmsg);
    d.open[1] = 37;
    rpt_dg_render(&d, &doc);
    T_ASSERT_CONTAINS(doc.text, "and 30 more jobs\n");
    T_ASSERT_CONTAINS(doc.text, "and 20 more failed runs\n");
    T_ASSERT_CONTAINS(doc.text, "and 27 more open alerts\n");
    T_ASSERT_CONTAINS(doc.markdown, "and 30 more jobs\n");
    T_ASSERT_CONTAINS(doc.html, "and 30 more jobs</p>");
    /* the 30 failing jobs are among the 50 shown; job79 (no failure) is not */
    T_ASSERT_CONTAINS(doc.text, "job29");
    T_ASSERT_TRUE(strstr(doc.text, "job79") == NULL);
    /* a cell is cut to its column */
    T_ASSERT_EQ(0,
                count_of(doc.text,
                         "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"
                         "mmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmmm"));
    T_ASSERT_CONTAINS(doc.text, "mmm...");
    T_ASSERT_TRUE(strlen(doc.text) < 40000);
    T_ASSERT_TRUE(strlen(doc.html) < 120000);
    T_ASSERT_TRUE(strlen(doc.markdown) < 40000);
    rpt_digest_doc_free(&doc);
    rpt_dg_free(&d);
}

TEST(render_worker_sections)
{
    struct rpt_dg d;
    struct rpt_digest_doc doc;
    model(&d);
    struct rpt_dg_job *j = add_job(&d, "nightly-load", DG_SCRAPE, 1, 1, 0);
    j->last_change_ms = T0 + 3 * HOUR;
    j = add_job(&d, "views", DG_REFRESH, 24, 24, 0);
    j->last_change_ms = T0 + 5 * HOUR;
    add_job(&d, "dq", DG_VALIDATE, 48, 47, 1);
    add_job(&d, "fixer", DG_REMEDIATE, 2, 2, 0);
    d.work = md_xcalloc(4, sizeof *d.work);
    d.nwork = 4;
    struct rpt_dg_work *w = &d.work[0];
    w->job = sdup("dq");
    w->kind = DG_VALIDATE;
    w->runs = 48;
    w->bad_runs = 1;
    w->sum[1] = 570; /* pass */
    w->sum[2] = 3;   /* warn */
    w->sum[3] = 2;   /* fail */
    w->last_ms = T0 + 23 * HOUR;
    rpt_dg_work_from_summary(
        w,
        "{\"suite\":\"parcels\",\"results\":12,\"pass\":10,\"warn\":1,\"fail\":1,\"refused\":0,"
        "\"error\":0,\"failing\":[{\"key\":\"check.parcels.addr\",\"outcome\":\"warn\","
        "\"value\":5,\"text\":\"5 bad row(s)\"},{\"key\":\"check.parcels.dor_uc.11\",\"outcome\":"
        "\"fail\",\"value\":2}]}",
        10);
    w = &d.work[1];
    w->job = sdup("nightly-load");
    w->kind = DG_SCRAPE;
    w->runs = 1;
    w->sum[0] = 67;
    w->sum[1] = 3;
    w->sum[4] = 1204000;
    rpt_dg_work_from_summary(
        w,
        "{\"files\":67,\"loaded\":3,\"unchanged\":63,\"failed\":1,\"rows\":1204000,\"inserted\":1,"
        "\"updated\":2,\"deleted\":3,\"rejected\":0,\"bytes_downloaded\":9,\"items\":[{\"source\":"
        "\"nal\",\"file\":\"11\",\"outcome\":\"failed\",\"error\":\"HTTP "
        "404\"},{\"source\":\"nal\","
        "\"file\":\"12\",\"outcome\":\"loaded\",\"rows\":5}]}",
        10);
    w = &d.work[2];
    w->job = sdup("views");
    w->kind = DG_REFRESH;
    w->runs = 24;
    w->sum[0] = 30;
    w->sum[1] = 42;
    rpt_dg_work_from_summary(w, "{\"refreshed\":1,\"skipped\":1,\"failed\":0,\"views\":[]}", 10);
    w = &d.work[3];
    w->job = sdup("fixer");
    w->kind = DG_REMEDIATE;
    w->runs = 2;
    w->sum[0] = 1; /* planned */
    w->sum[1] = 1; /* applied */
    d.fixes = md_xcalloc(1, sizeof *d.fixes);
    d.nfixes = 1;
    d.fixes_total = 3;
    d.fixes[0].job = sdup("fixer");
    d.fixes[0].what = sdup("cents_to_dollars");
    d.fixes[0].outcome = sdup("applied");
    d.fixes[0].text = sdup("plan 0a1b2c3d4e5f6a7b");
    d.fixes[0].rows = 10066;
    d.fixes[0].at_ms = T0 + 4 * HOUR;
    rpt_dg_render(&d, &doc);

    /* validate: fail before warn, the check's text or its value */
    T_ASSERT_EQ(2, d.work[0].nitems);
    T_ASSERT_STREQ("check.parcels.dor_uc.11", d.work[0].items[0].what);
    T_ASSERT_STREQ("value 2", d.work[0].items[0].text);
    T_ASSERT_STREQ("parcels", d.work[0].suite);
    T_ASSERT_CONTAINS(doc.text, "Suite parcels (job dq): 48 runs, 1 with failures; results: 570 "
                                "pass, 3 warn, 2 fail, 0 refused, 0 error.");
    T_ASSERT_CONTAINS(doc.text, "Latest run 2025-12-06 06:00: 1 fail, 1 warn, 0 error of 12 "
                                "results.");
    T_ASSERT_TRUE(strstr(doc.text, "check.parcels.dor_uc.11") <
                  strstr(doc.text, "check.parcels.addr"));
    /* scrape: totals and the file that failed */
    T_ASSERT_CONTAINS(doc.text, "Load nightly-load: 1 run, 67 files (3 loaded, 0 unchanged, 0 "
                                "failed); 1,204,000 rows read");
    T_ASSERT_EQ(1, d.work[1].nitems);
    T_ASSERT_STREQ("nal/11", d.work[1].items[0].what);
    T_ASSERT_CONTAINS(doc.text, "HTTP 404");
    T_ASSERT_CONTAINS(doc.text, "Refresh views: 24 runs: 30 views refreshed, 42 skipped, 0 "
                                "failed.");
    /* remediation */
    T_ASSERT_CONTAINS(doc.text, "fixer: 2 runs: 1 planned, 1 applied.");
    T_ASSERT_CONTAINS(doc.text, "cents_to_dollars");
    T_ASSERT_CONTAINS(doc.text, "10,066");
    T_ASSERT_CONTAINS(doc.text, "and 2 more fixes\n");
    /* freshness lists the load and the refresh */
    const char *fresh = strstr(doc.text, "\nData freshness\n");
    T_ASSERT_TRUE(fresh != NULL);
    T_ASSERT_CONTAINS(fresh, "nightly-load  scrape");
    T_ASSERT_CONTAINS(fresh, "2025-12-05 10:00");
    T_ASSERT_FALSE(strstr(doc.text, "No scrape runs") != NULL);
    rpt_digest_doc_free(&doc);
    rpt_dg_free(&d);
}

TEST(summary_shapes_and_why)
{
    char *s = rpt_dg_run_why(NULL,
                             "{\"files\":67,\"loaded\":0,\"unchanged\":65,\"failed\":2,\"rows\":0,"
                             "\"items\":[{\"source\":\"nal\",\"file\":\"11\",\"outcome\":"
                             "\"rejected\",\"error\":\"bad header\"},{\"source\":\"nal\","
                             "\"file\":\"12\",\"outcome\":\"failed\",\"error\":\"HTTP 500\"}]}",
                             "ignored\n");
    T_ASSERT_STREQ("2 of 67 file(s) failed: nal/11: bad header", s);
    md_free(s);
    s = rpt_dg_run_why(
        NULL,
        "{\"suite\":\"p\",\"results\":3,\"pass\":1,\"warn\":1,\"fail\":1,"
        "\"refused\":0,\"error\":0,\"failing\":[{\"key\":\"w\",\"outcome\":\"warn\"},"
        "{\"key\":\"check.p.x\",\"outcome\":\"fail\",\"text\":\"3 bad\"}]}",
        NULL);
    T_ASSERT_STREQ("1 check(s) failed, 0 could not run: check.p.x: 3 bad", s);
    md_free(s);
    s = rpt_dg_run_why(NULL,
                       "{\"refreshed\":0,\"skipped\":0,\"failed\":1,\"views\":[{\"view\":"
                       "\"public.mv_a\",\"outcome\":\"failed\",\"error\":\"canceling (57014)\"}]}",
                       NULL);
    T_ASSERT_STREQ("1 item(s) failed: public.mv_a: canceling (57014)", s);
    md_free(s);
    s = rpt_dg_run_why(NULL,
                       "{\"refused\":1,\"suite\":\"p\",\"fixes\":[{\"fix\":\"f\",\"outcome\":"
                       "\"refused\",\"why\":\"over max_rows\"}]}",
                       NULL);
    T_ASSERT_STREQ("fix f refused: over max_rows", s);
    md_free(s);
    s = rpt_dg_run_why("spawn failed", NULL, "x\n");
    T_ASSERT_STREQ("spawn failed", s);
    md_free(s);
    s = rpt_dg_run_why(NULL, "{\"rows\":1}", "first\n\nTraceback: boom  \n\n");
    T_ASSERT_STREQ("Traceback: boom", s);
    md_free(s);
    s = rpt_dg_run_why(NULL, "not json", NULL);
    T_ASSERT_TRUE(s == NULL);
    s = rpt_dg_run_why("", "[1,2]", "");
    T_ASSERT_TRUE(s == NULL);

    /* a summary cut by meshd, or one of another shape, gives no items and no counts */
    struct rpt_dg_work w = {.kind = DG_SCRAPE};
    rpt_dg_work_from_summary(&w, "{\"truncated\":true,\"bytes\":99999}", 10);
    T_ASSERT_EQ(0, w.nitems);
    T_ASSERT_EQ(-1, w.last[0]);
    rpt_dg_work_from_summary(&w, NULL, 10);
    T_ASSERT_EQ(0, w.nitems);
    /* items are capped, and counted */
    rpt_dg_work_from_summary(&w,
                             "{\"files\":3,\"loaded\":0,\"failed\":3,\"items\":["
                             "{\"source\":\"s\",\"outcome\":\"failed\",\"error\":\"a\"},"
                             "{\"source\":\"s\",\"outcome\":\"failed\",\"error\":\"b\"},"
                             "{\"source\":\"s\",\"outcome\":\"refused\",\"error\":\"c\"}]}",
                             2);
    T_ASSERT_EQ(2, w.nitems);
    T_ASSERT_EQ(3, w.items_total);
    T_ASSERT_EQ(3, w.last[0]);
    T_ASSERT_STREQ("s", w.items[0].what);
    struct rpt_dg d = {0};
    d.work = md_xcalloc(1, sizeof *d.work);
    d.work[0] = w;
    d.nwork = 1;
    rpt_dg_free(&d);
}

TEST(kinds)
{
    T_ASSERT_EQ(DG_SCRAPE, rpt_dg_kind_of("scrape"));
    T_ASSERT_EQ(DG_REFRESH, rpt_dg_kind_of("refresh"));
    T_ASSERT_EQ(DG_COMMAND, rpt_dg_kind_of(NULL));
    T_ASSERT_EQ(DG_COMMAND, rpt_dg_kind_of("python"));
    for (int k = 0; k < DG_NKINDS; k++) {
        int n = 0;
        while (rpt_dg_kind_counts[k][n] != NULL)
            n++;
        T_ASSERT_TRUE(n <= RPT_DG_MAX_COUNTS);
    }
}

T_MAIN()
