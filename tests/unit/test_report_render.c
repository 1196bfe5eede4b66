/* test_report_render.c - meshd-report's receivers' words (workers/report/render.c): subject
 * lines, RFC 2047 words, RFC 5322 dates, Message-IDs, HTML and Slack escaping, Slack's limits,
 * the GitHub issue's title, body markers, comments and labels, the answer's text cleaning, and
 * HMAC-SHA256 against RFC 4231.  No network. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "meshd/md_alloc.h"
#include "render.h"
#include "t.h"

/* A note as plan.c writes it (send.h): n alerts (firing), grouped by job=load. */
static cJSON *note_n(const char *kind, int n, const char *message)
{
    cJSON *note = cJSON_CreateObject(), *alerts, *g, *m;

    cJSON_AddStringToObject(note, "version", "4");
    cJSON_AddStringToObject(note, "groupKey", "route1/{job=\"load\"}");
    cJSON_AddStringToObject(note, "status", strcmp(kind, "resolved") == 0 ? "resolved" : "firing");
    cJSON_AddStringToObject(note, "receiver", "chat");
    g = cJSON_AddObjectToObject(note, "groupLabels");
    cJSON_AddStringToObject(g, "job", "load");
    cJSON_AddStringToObject(note, "externalURL", "http://pc:8080/");
    cJSON_AddNumberToObject(note, "truncatedAlerts", 0);
    alerts = cJSON_AddArrayToObject(note, "alerts");
    for (int i = 0; i < n; i++) {
        cJSON *a = cJSON_CreateObject(), *l = cJSON_AddObjectToObject(a, "labels");
        char key[32];
        snprintf(key, sizeof key, "rows-low-%d", i);
        cJSON_AddStringToObject(a, "status", strcmp(kind, "resolved") == 0 ? "resolved" : "firing");
        cJSON_AddStringToObject(l, "alertname", key);
        cJSON_AddStringToObject(l, "key", key);
        cJSON_AddStringToObject(l, "severity", "critical");
        cJSON_AddStringToObject(l, "job", "load");
        cJSON_AddStringToObject(l, "node", "pc");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(a, "annotations"), "message", message);
        cJSON_AddStringToObject(a, "startsAt", "2026-11-25T07:00:00Z");
        cJSON_AddStringToObject(a, "endsAt",
                                strcmp(kind, "resolved") == 0 ? "2026-11-25T08:00:00Z"
                                                              : "0001-01-01T00:00:00Z");
        cJSON_AddStringToObject(a, "generatorURL", "http://pc:8080/#job=load");
        cJSON_AddStringToObject(a, "fingerprint", "0123456789abcdef");
        cJSON_AddNumberToObject(a, "count", 3);
        cJSON_AddNumberToObject(a, "id", 40 + i);
        cJSON_AddItemToArray(alerts, a);
    }
    m = cJSON_AddObjectToObject(note, "meshd");
    cJSON_AddStringToObject(m, "kind", kind);
    cJSON_AddStringToObject(m, "idempotencyKey", "chat/route1/7/firing");
    cJSON_AddStringToObject(m, "route", "route1");
    cJSON_AddNumberToObject(m, "level", strcmp(kind, "escalation") == 0 ? 1 : 0);
    cJSON_AddStringToObject(m, "node", "pc");
    cJSON_AddStringToObject(m, "createdAt", "2026-11-25T07:00:30Z");
    return note;
}

/* ---- subjects -------------------------------------------------------------------------------- */

TEST(subject_counts_and_group_labels)
{
    cJSON *n2 = note_n("firing", 2, "m"), *n1 = note_n("firing", 1, "m");
    cJSON *r2 = note_n("resolved", 2, "m"), *rep = note_n("repeat", 1, "m");
    char *s;

    s = rpt_render_subject(n2, "[meshd]");
    T_ASSERT_STREQ("[meshd] FIRING: 2 alerts job=load", s);
    md_free(s);
    s = rpt_render_subject(n1, "[meshd]");
    T_ASSERT_STREQ("[meshd] FIRING: rows-low-0 job=load", s);
    md_free(s);
    s = rpt_render_subject(r2, "[meshd]");
    T_ASSERT_STREQ("[meshd] RESOLVED: 2 alerts job=load", s);
    md_free(s);
    s = rpt_render_subject(rep, NULL);
    T_ASSERT_STREQ("STILL FIRING: rows-low-0 job=load", s);
    md_free(s);
    /* truncated alerts count */
    cJSON_ReplaceItemInObject(n2, "truncatedAlerts", cJSON_CreateNumber(5));
    s = rpt_render_subject(n2, "[x]");
    T_ASSERT_STREQ("[x] FIRING: 7 alerts job=load", s);
    md_free(s);
    cJSON_Delete(n2);
    cJSON_Delete(n1);
    cJSON_Delete(r2);
    cJSON_Delete(rep);
}

TEST(subject_of_a_digest_and_control_characters)
{
    cJSON *n = note_n("digest", 0, ""), *d;
    char *s;

    d = cJSON_AddObjectToObject(cJSON_GetObjectItem(n, "meshd"), "digest");
    cJSON_AddStringToObject(d, "subject", "meshd digest:\r\n3 failures");
    s = rpt_render_subject(n, "[meshd]");
    T_ASSERT_STREQ("[meshd] meshd digest:  3 failures", s);
    md_free(s);
    cJSON_ReplaceItemInObject(d, "subject", cJSON_CreateString("[meshd] digest"));
    s = rpt_render_subject(n, "[meshd]");
    T_ASSERT_STREQ("[meshd] digest", s);
    md_free(s);
    cJSON_Delete(n);
}

/* ---- RFC 2047, dates, Message-IDs ------------------------------------------------------------ */

TEST(rfc2047_ascii_unchanged_utf8_encoded)
{
    char *s = rpt_rfc2047("[meshd] FIRING: 2 alerts job=load");
    T_ASSERT_STREQ("[meshd] FIRING: 2 alerts job=load", s);
    md_free(s);
    /* "Grüße" = 47 72 c3 bc c3 9f 65 -> base64 R3LDvMOfZQ== */
    s = rpt_rfc2047("Grüße");
    T_ASSERT_STREQ("=?UTF-8?B?R3LDvMOfZQ==?=", s);
    md_free(s);
    /* ASCII that looks like an encoded-word is encoded too */
    s = rpt_rfc2047("a =?x?= b");
    T_ASSERT_TRUE(strncmp(s, "=?UTF-8?B?", 10) == 0);
    md_free(s);
}

TEST(rfc2047_long_words_folded_never_split_a_character)
{
    /* 60 x "é" (2 bytes each): 120 bytes -> words of at most 45 bytes, i.e. 22 characters */
    char in[200] = "";
    char *s, *save = NULL, *w;
    int words = 0;

    for (int i = 0; i < 60; i++)
        strcat(in, "\xc3\xa9");
    s = rpt_rfc2047(in);
    for (w = strtok_r(s, "\r\n ", &save); w != NULL; w = strtok_r(NULL, "\r\n ", &save)) {
        T_ASSERT_TRUE(strlen(w) <= 75);
        T_ASSERT_TRUE(strncmp(w, "=?UTF-8?B?", 10) == 0);
        /* 44 bytes -> 60 base64 characters, a whole number of characters in each word */
        T_ASSERT_EQ(strlen(w), words < 2 ? 12 + 60 : 12 + 44); /* 32 bytes left: 44 */
        words++;
    }
    T_ASSERT_EQ(3, words);
    md_free(s);
    s = rpt_rfc2047(in);
    T_ASSERT_CONTAINS(s, "?=\r\n =?UTF-8?B?");
    md_free(s);
}

TEST(rfc5322_date)
{
    char buf[64];

    rpt_rfc5322_date(1795590000000LL, buf, sizeof buf); /* 2026-11-25T07:00:00Z, a Wednesday */
    T_ASSERT_STREQ("Wed, 25 Nov 2026 07:00:00 +0000", buf);
    rpt_rfc5322_date(0, buf, sizeof buf);
    T_ASSERT_STREQ("Thu, 01 Jan 1970 00:00:00 +0000", buf);
}

TEST(message_id_deterministic_from_the_key)
{
    char a[160], b[160], c[160], d[160];

    rpt_message_id("chat/route1/7/firing", "meshd <alerts@example.org>", a, sizeof a);
    rpt_message_id("chat/route1/7/firing", "alerts@example.org", b, sizeof b);
    rpt_message_id("chat/route1/8/firing", "alerts@example.org", c, sizeof c);
    rpt_message_id("k", "no-at-sign", d, sizeof d);
    T_ASSERT_STREQ(a, b);
    T_ASSERT_TRUE(strcmp(a, c) != 0);
    T_ASSERT_TRUE(strncmp(a, "<meshd.", 7) == 0);
    T_ASSERT_EQ(strlen("<meshd.") + 32 + strlen("@example.org>"), strlen(a));
    T_ASSERT_CONTAINS(a, "@example.org>");
    T_ASSERT_CONTAINS(d, "@meshd.invalid>");
    /* sha256("k") = 8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a */
    T_ASSERT_STREQ("<meshd.8254c329a92850f6d539dd376f4816ee@meshd.invalid>", d);
}

/* ---- HMAC (RFC 4231 test case 2) ------------------------------------------------------------- */

TEST(hmac_sha256_rfc4231_case2)
{
    char out[65];

    rpt_hmac_sha256_hex("Jefe", 4, "what do ya want for nothing?", 28, out);
    T_ASSERT_STREQ("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", out);
}

/* ---- HTML, text ------------------------------------------------------------------------------ */

TEST(html_escaping_of_worker_text)
{
    cJSON *n = note_n("firing", 1, "<script>alert('x')</script> & \"more\"");
    char *s = rpt_html_escape("<a href=\"x\">&'</a>"), *h;

    T_ASSERT_STREQ("&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;", s);
    md_free(s);
    h = rpt_render_html(n);
    T_ASSERT_TRUE(strstr(h, "<script>") == NULL);
    T_ASSERT_CONTAINS(h, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;more&quot;");
    T_ASSERT_CONTAINS(h, "<a href=\"http://pc:8080/\">");
    md_free(h);
    cJSON_Delete(n);
}

/* Every '\n' is preceded by '\r', and no '\r' stands alone. */
static void assert_crlf(const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\n')
            T_ASSERT_TRUE(p > s && p[-1] == '\r');
        if (*p == '\r')
            T_ASSERT_TRUE(p[1] == '\n');
    }
}

TEST(bodies_have_crlf_line_endings_only)
{
    cJSON *n = note_n("firing", 2, "line one\nline two\r\nline three\rafter a lone CR");
    char *t = rpt_render_text(n), *h = rpt_render_html(n);

    assert_crlf(t);
    assert_crlf(h);
    T_ASSERT_CONTAINS(t, "FIRING: 2 alerts job=load\r\n\r\n");
    T_ASSERT_CONTAINS(t, "[FIRING] critical rows-low-0 (job=load, node=pc)\r\n");
    T_ASSERT_CONTAINS(t, "  line one\r\n  line two\r\n  line three after a lone CR\r\n");
    T_ASSERT_CONTAINS(t, "since 2026-11-25T07:00:00Z, raised 3 times");
    T_ASSERT_CONTAINS(t, "Status page: http://pc:8080/");
    T_ASSERT_CONTAINS(t, "notification chat/route1/7/firing");
    md_free(t);
    md_free(h);
    cJSON_Delete(n);
}

TEST(digest_bodies_come_from_the_note)
{
    cJSON *n = note_n("digest", 0, ""), *d;
    char *t, *h;

    d = cJSON_AddObjectToObject(cJSON_GetObjectItem(n, "meshd"), "digest");
    cJSON_AddStringToObject(d, "subject", "digest");
    cJSON_AddStringToObject(d, "text", "runs: 10\nfailed: 1\n");
    cJSON_AddStringToObject(d, "html", "<html><body><p>runs: 10</p></body></html>\n");
    t = rpt_render_text(n);
    h = rpt_render_html(n);
    T_ASSERT_STREQ("runs: 10\r\nfailed: 1\r\n\r\n", t);
    T_ASSERT_STREQ("<html><body><p>runs: 10</p></body></html>\r\n", h);
    md_free(t);
    md_free(h);
    cJSON_Delete(n);
}

/* ---- cleaning -------------------------------------------------------------------------------- */

TEST(clean_text_controls_and_invalid_utf8)
{
    char out[32];

    T_ASSERT_EQ(8, rpt_clean_text(out, sizeof out,
                                  "a\x01\nb\xff"
                                  "c\xc3\xa9",
                                  8));
    T_ASSERT_STREQ("a??b?c\xc3\xa9", out);
    /* cut never splits a character: "é" needs 2 bytes, only 1 is left */
    T_ASSERT_EQ(3, rpt_clean_text(out, 5, "abc\xc3\xa9", 5));
    T_ASSERT_STREQ("abc", out);
    /* an overlong "/" and a surrogate are not UTF-8 */
    rpt_clean_text(out, sizeof out, "\xc0\xaf\xed\xa0\x80", 5);
    T_ASSERT_STREQ("?????", out);
}

/* ---- Slack ----------------------------------------------------------------------------------- */

TEST(slack_escape_entities_and_cut)
{
    char *s = rpt_slack_escape("a & b <c> d", 100);

    T_ASSERT_STREQ("a &amp; b &lt;c&gt; d", s);
    md_free(s);
    /* the cut falls inside "&amp;": the entity goes whole or not at all */
    s = rpt_slack_escape("abcdef&ghijkl", 10);
    T_ASSERT_STREQ("abcdef...", s);
    md_free(s);
    s = rpt_slack_escape("abcdefghijklmnop", 10);
    T_ASSERT_STREQ("abcdefg...", s);
    T_ASSERT_EQ(10, strlen(s));
    md_free(s);
}

/* Checks a Slack message against the limits; returns the number of blocks. */
static int check_slack(const cJSON *m)
{
    const cJSON *blocks = cJSON_GetObjectItem(m, "blocks"), *b;
    int n = 0;

    T_ASSERT_TRUE(cJSON_IsString(cJSON_GetObjectItem(m, "text")));
    T_ASSERT_TRUE(cJSON_IsArray(blocks));
    cJSON_ArrayForEach(b, blocks)
    {
        const char *type = cJSON_GetObjectItem(b, "type")->valuestring;
        const char *text;
        n++;
        if (strcmp(type, "section") == 0) {
            const cJSON *t = cJSON_GetObjectItem(b, "text");
            T_ASSERT_STREQ("mrkdwn", cJSON_GetObjectItem(t, "type")->valuestring);
            text = cJSON_GetObjectItem(t, "text")->valuestring;
        } else {
            T_ASSERT_STREQ("context", type);
            text = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "elements"), 0),
                                       "text")
                       ->valuestring;
        }
        T_ASSERT_TRUE(strlen(text) >= 1);
        T_ASSERT_TRUE(strlen(text) <= RPT_SLACK_TEXT_MAX);
    }
    T_ASSERT_TRUE(n <= RPT_SLACK_BLOCKS_MAX);
    return n;
}

TEST(slack_shape_and_escaping)
{
    cJSON *n = note_n("firing", 2, "rows < 1000 & falling"), *m = rpt_render_slack(n, "[meshd]");
    const cJSON *blocks = cJSON_GetObjectItem(m, "blocks");
    char *text;

    T_ASSERT_EQ(4, check_slack(m)); /* headline, 2 alerts, context */
    T_ASSERT_STREQ("[meshd] FIRING: 2 alerts job=load",
                   cJSON_GetObjectItem(m, "text")->valuestring);
    text = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, 1), "text"), "text")
               ->valuestring;
    T_ASSERT_CONTAINS(text, "*[FIRING] critical* `rows-low-0` job=load node=pc");
    T_ASSERT_CONTAINS(text, "rows &lt; 1000 &amp; falling");
    text =
        cJSON_GetObjectItem(
            cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, 3), "elements"), 0),
            "text")
            ->valuestring;
    T_ASSERT_CONTAINS(text, "<http://pc:8080/|status page>");
    cJSON_Delete(m);
    cJSON_Delete(n);
}

TEST(slack_10000_char_message_within_limits)
{
    char *big = md_xmalloc(10001);
    cJSON *n, *m;

    for (int i = 0; i < 10000; i++)
        big[i] = "a<&>b\n"[i % 6];
    big[10000] = '\0';
    n = note_n("firing", 1, big);
    m = rpt_render_slack(n, "[meshd]");
    T_ASSERT_EQ(3, check_slack(m));
    T_ASSERT_CONTAINS(
        cJSON_GetObjectItem(
            cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "blocks"), 1), "text"),
            "text")
            ->valuestring,
        "...");
    cJSON_Delete(m);
    cJSON_Delete(n);
    md_free(big);
}

TEST(slack_many_alerts_at_most_50_blocks)
{
    cJSON *n = note_n("firing", 120, "m"), *m = rpt_render_slack(n, "[meshd]");
    const cJSON *blocks = cJSON_GetObjectItem(m, "blocks");

    T_ASSERT_EQ(RPT_SLACK_BLOCKS_MAX, check_slack(m));
    /* headline + 47 alerts + "... and 73 more" + context */
    T_ASSERT_CONTAINS(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(blocks, 48), "text"), "text")
            ->valuestring,
        "and 73 more alerts");
    cJSON_Delete(m);
    cJSON_Delete(n);
}

TEST(slack_digest_split_and_cut)
{
    cJSON *n = note_n("digest", 0, ""), *d, *m;
    size_t len = 300000;
    char *text = md_xmalloc(len + 1);

    for (size_t i = 0; i < len; i++)
        text[i] = i % 100 == 99 ? '\n' : "x&<"[i % 3];
    text[len] = '\0';
    d = cJSON_AddObjectToObject(cJSON_GetObjectItem(n, "meshd"), "digest");
    cJSON_AddStringToObject(d, "subject", "digest");
    cJSON_AddStringToObject(d, "text", text);
    m = rpt_render_slack(n, "[meshd]");
    T_ASSERT_EQ(RPT_SLACK_BLOCKS_MAX, check_slack(m));
    /* every section but the first and the last two ends at a line end, and no entity is cut */
    for (int i = 1; i < RPT_SLACK_BLOCKS_MAX - 2; i++) {
        const char *t = cJSON_GetObjectItem(
                            cJSON_GetObjectItem(
                                cJSON_GetArrayItem(cJSON_GetObjectItem(m, "blocks"), i), "text"),
                            "text")
                            ->valuestring;
        size_t tl = strlen(t);
        T_ASSERT_TRUE(t[tl - 1] == '\n');
        T_ASSERT_TRUE(strncmp(t, "amp;", 4) != 0 && strncmp(t, "lt;", 3) != 0);
    }
    cJSON_Delete(m);
    cJSON_Delete(n);
    md_free(text);
}

/* ---- GitHub ---------------------------------------------------------------------------------- */

static const cJSON *first_alert(const cJSON *note)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(note, "alerts"), 0);
}

TEST(github_title_body_markers)
{
    cJSON *n = note_n("firing", 1, "@everyone look at #12 ``` <b>x</b>");
    char *t = rpt_gh_title(first_alert(n), "[meshd]"), *b = rpt_gh_body(n, first_alert(n), "@ops");

    T_ASSERT_STREQ("[meshd] rows-low-0 (job load)", t);
    T_ASSERT_CONTAINS(b, "<!-- meshd:fp=0123456789abcdef -->");
    T_ASSERT_CONTAINS(b, "<!-- meshd:note=chat/route1/7/firing -->");
    T_ASSERT_TRUE(rpt_gh_has_note(b, "chat/route1/7/firing"));
    T_ASSERT_FALSE(rpt_gh_has_note(b, "chat/route1/8/firing"));
    /* the message sits in a fence longer than its own run of backticks */
    T_ASSERT_CONTAINS(b, "````text\n@everyone look at #12 ``` <b>x</b>\n````\n");
    T_ASSERT_CONTAINS(b, "cc @ops");
    T_ASSERT_CONTAINS(b, "| job | `load` |");
    T_ASSERT_CONTAINS(b, "[meshd status page](<http://pc:8080/#job=load>)");
    md_free(t);
    md_free(b);
    cJSON_Delete(n);
}

TEST(github_comments)
{
    cJSON *n = note_n("repeat", 1, "still low");
    char *c = rpt_gh_comment(n, first_alert(n), RPT_GH_REPEAT, 0, "@ops");

    T_ASSERT_CONTAINS(c, "**Still firing** since 2026-11-25T07:00:00Z: raised 3 times");
    T_ASSERT_CONTAINS(c, "still low");
    T_ASSERT_TRUE(strstr(c, "@ops") == NULL); /* a repeat pings nobody */
    T_ASSERT_CONTAINS(c, "<!-- meshd:note=chat/route1/7/firing -->");
    md_free(c);
    c = rpt_gh_comment(n, first_alert(n), RPT_GH_ESCALATED, 0, "@ops");
    T_ASSERT_CONTAINS(c, "**Escalated (level 0):**");
    T_ASSERT_CONTAINS(c, "cc @ops");
    md_free(c);
    c = rpt_gh_comment(n, first_alert(n), RPT_GH_REOPENED, 2, NULL);
    T_ASSERT_CONTAINS(c, "**Firing again** (reopened), occurrence 2");
    md_free(c);
    cJSON_Delete(n);
}

TEST(github_labels)
{
    struct rpt_receiver r = {0};
    char *extra[] = {"ops", "meshd", "", NULL};
    cJSON *n = note_n("firing", 1, "m"), *l;
    char *text, longjob[80];

    r.labels.v = extra;
    r.labels.n = 3;
    l = rpt_gh_labels(&r, first_alert(n));
    text = cJSON_PrintUnformatted(l);
    T_ASSERT_STREQ("[\"meshd\",\"meshd-fp:0123456789abcdef\",\"severity:critical\",\"job:load\","
                   "\"ops\"]",
                   text);
    cJSON_free(text);
    cJSON_Delete(l);
    /* a job name too long for a label is cut to GitHub's 50 */
    memset(longjob, 'j', 64);
    longjob[64] = '\0';
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(first_alert(n), "labels"), "job",
                              cJSON_CreateString(longjob));
    l = rpt_gh_labels(NULL, first_alert(n));
    T_ASSERT_EQ(RPT_GH_LABEL_MAX, strlen(cJSON_GetArrayItem(l, 3)->valuestring));
    cJSON_Delete(l);
    cJSON_Delete(n);
}

T_MAIN()
