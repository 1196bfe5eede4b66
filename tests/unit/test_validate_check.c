/* test_validate_check.c - meshd-validate's pure part (workers/validate/check.c): conditions
 * parsed and judged, the check vocabulary bound and refused with the path named, user SQL
 * linted, identifiers and literals quoted, and the SQL of a scan, a duplicate check, samples
 * and a partition scope.  The SQL is run for real by tests/integration/test_validate.py. */
#include <string.h>

#include "check.h"
#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "t.h"

static struct vc_threshold th(const char *s)
{
    struct vc_threshold t;
    struct md_error err = {0};
    if (vc_threshold_parse(s, &t, &err) != 0)
        T_FAIL("\"%s\" refused: %s", s, err.msg);
    return t;
}

TEST(conditions_parse_and_judge)
{
    struct vc_threshold t = th("> 0");
    T_ASSERT_TRUE(t.op == OP_GT && t.unit == U_COUNT && t.a == 0);
    T_ASSERT_TRUE(vc_threshold_hit(&t, 1));
    T_ASSERT_FALSE(vc_threshold_hit(&t, 0));
    t = th(">=5%");
    T_ASSERT_TRUE(t.op == OP_GE && t.unit == U_PERCENT && t.a == 5);
    t = th("  <  -20.5% ");
    T_ASSERT_TRUE(t.op == OP_LT && t.a == -20.5);
    t = th("> 26h");
    T_ASSERT_TRUE(t.unit == U_SECONDS && t.a == 26 * 3600);
    t = th("> 2d");
    T_ASSERT_TRUE(t.a == 2 * 86400);
    t = th("!= 3");
    T_ASSERT_TRUE(vc_threshold_hit(&t, 2) && !vc_threshold_hit(&t, 3));
    t = th("<> 3");
    T_ASSERT_TRUE(t.op == OP_NE);
    t = th("= 0");
    T_ASSERT_TRUE(vc_threshold_hit(&t, 0) && !vc_threshold_hit(&t, 0.5));
    t = th("not between -10% and 10%");
    T_ASSERT_TRUE(t.op == OP_NOT_BETWEEN && t.a == -10 && t.b == 10 && t.unit == U_PERCENT);
    T_ASSERT_TRUE(vc_threshold_hit(&t, -10.5) && vc_threshold_hit(&t, 11));
    T_ASSERT_FALSE(vc_threshold_hit(&t, 10) || vc_threshold_hit(&t, -10) ||
                   vc_threshold_hit(&t, 0));
    t = th("BETWEEN 1 AND 5");
    T_ASSERT_TRUE(vc_threshold_hit(&t, 1) && vc_threshold_hit(&t, 5) && !vc_threshold_hit(&t, 6));

    char buf[64];
    vc_threshold_text(&t, buf, sizeof buf);
    T_ASSERT_STREQ("between 1 and 5", buf);
    t = th("> 5%");
    vc_threshold_text(&t, buf, sizeof buf);
    T_ASSERT_STREQ("> 5%", buf);

    const char *bad[] = {
        "",      "0",     "> ",      "> x",     ">> 1",      "> 1 2",           "> 5%%",
        "> 5 %", "> inf", "> nan",   "> 1e999", "between 1", "between 5 and 1", "between 1% and 5",
        "> 5km", "not 5", "< 1,000", "> 0x10"};
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++) {
        struct vc_threshold x;
        struct md_error err = {0};
        if (vc_threshold_parse(bad[i], &x, &err) != MD_ECONFIG)
            T_FAIL("\"%s\" taken", bad[i]);
        T_ASSERT_TRUE(strstr(err.msg, "is not a condition") != NULL);
    }
}

TEST(quoting)
{
    struct md_buf b;
    md_buf_init(&b, 4096);
    vsql_ident(&b, "we\"ird");
    md_buf_puts(&b, " ");
    vsql_literal(&b, "it's");
    T_ASSERT_STREQ("\"we\"\"ird\" 'it''s'", md_buf_str(&b));
    md_buf_free(&b);

    const struct {
        const char *in, *out;
    } q[] = {{"property.parcels", "\"property\".\"parcels\""},
             {"Parcels", "\"parcels\""},
             {"\"My.Schema\".T", "\"My.Schema\".\"t\""},
             {"\"a\"\"b\"", "\"a\"\"b\""}};
    for (size_t i = 0; i < MD_ARRAY_SIZE(q); i++) {
        md_buf_init(&b, 4096);
        T_ASSERT_TRUE(vsql_qualified(&b, q[i].in));
        T_ASSERT_STREQ(q[i].out, md_buf_str(&b));
        md_buf_free(&b);
    }
    const char *bad[] = {"", "a.", ".a", "a.b.c", "a b", "\"open", "a;b", "a-b"};
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++) {
        md_buf_init(&b, 4096);
        if (vsql_qualified(&b, bad[i]))
            T_FAIL("\"%s\" taken as %s", bad[i], md_buf_str(&b));
        md_buf_free(&b);
    }
    char *c = vsql_column("PHY_ADDR1");
    T_ASSERT_STREQ("\"phy_addr1\"", c);
    md_free(c);
    T_ASSERT_TRUE(vsql_column("a.b") == NULL);
}

TEST(user_sql_is_linted)
{
    const char *ok[] = {"tv_nsd <= av_nsd AND av_nsd <= jv",
                        "name <> 'a;b -- c /* d'",
                        "\"we;ird\" IS NULL",
                        "x = E'it\\'s; ok'",
                        "f(a, (b + c)) > 0",
                        "x = $$;--$$",
                        "x = $t$ ) $t$"};
    const char *bad[] = {"",           "   ",       "a) OR (1 = 1", "(a",     "a; DROP TABLE x",
                         "a -- c",     "a /* c */", "'open",        "\"open", "x = $1",
                         "x = $$open", "a)(b"};
    struct md_error err = {0};
    for (size_t i = 0; i < MD_ARRAY_SIZE(ok); i++)
        if (vsql_expr_lint(ok[i], &err) != 0)
            T_FAIL("\"%s\" refused: %s", ok[i], err.msg);
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++)
        if (vsql_expr_lint(bad[i], &err) != MD_ECONFIG)
            T_FAIL("\"%s\" taken", bad[i]);
}

static int bind(const char *json, struct vsuite *s, struct md_error *err)
{
    memset(err, 0, sizeof *err);
    return vsuite_bind(json, strlen(json), 20, s, err);
}

/* The error for json mentions want. */
static void refused(const char *json, const char *want)
{
    struct vsuite s;
    struct md_error err;
    int rc = bind(json, &s, &err);
    vsuite_free(&s);
    if (rc == 0)
        T_FAIL("taken: %s", json);
    if (strstr(err.msg, want) == NULL)
        T_FAIL("error \"%s\" does not say \"%s\"", err.msg, want);
}

TEST(bad_checks_name_their_path)
{
    refused("{}", "expected an array");
    refused("[]", "tables");
    refused("[{\"table\":\"t\"}]", "tables[0].checks: required");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"nope\"}]}]", "tables[0].checks[0].type");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"missing\"}]}]",
            "tables[0].checks[0].column: required");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\"},{\"type\":\"missing\","
            "\"column\":\"a\",\"fail\":\"> x\"}]}]",
            "tables[0].checks[1].fail: \"> x\" is not a condition");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\",\"column\":\"a\"}]}]",
            "column: not an option of a row_count check");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\"},{\"type\":\"row_count\"}]}]",
            "already the name of tables[0].checks[0]");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"invalid\",\"column\":\"a\"}]}]",
            "needs values, regex");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"failed_rows\",\"condition\":\"a\"}]}]",
            "name: required");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"failed_rows\",\"name\":\"x\","
            "\"condition\":\"a) OR (true\"}]}]",
            "tables[0].checks[0].condition:");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"freshness\",\"column\":\"at\"}]}]",
            "warn or fail: required");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"freshness\",\"column\":\"at\","
            "\"warn\":\"> 5%\"}]}]",
            "is an age");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\",\"fail\":\"< 5%\"}]}]",
            "a percentage needs a check that counts bad rows");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\",\"change\":true,"
            "\"fail\":\"< -5\"}]}]",
            "a change is a percentage");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"missing\",\"column\":\"a\","
            "\"warn\":\"> 1h\"}]}]",
            "only for a freshness check");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"invalid\",\"column\":\"a\","
            "\"values\":[{}]}]}]",
            "values[0]: expected a string, a number or a boolean");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"schema\",\"expect\":[\"a\"]}]}]",
            "expect: expected an object");
    refused("[{\"table\":\"a.b.c\",\"checks\":[{\"type\":\"row_count\"}]}]",
            "tables[0].table: \"a.b.c\" is not [schema.]table");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\"}]},{\"table\":\"t\","
            "\"checks\":[{\"type\":\"row_count\"}]}]",
            "listed twice");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"invalid\",\"column\":\"a\","
            "\"reference\":\"x\"}]}]",
            "is not [schema.]table.column");
    refused("[{\"table\":\"t\",\"checks\":[{\"type\":\"row_count\",\"name\":\"a b\"}]}]",
            "must be 1-100 letters");
}

TEST(defaults_and_names)
{
    struct vsuite s;
    struct md_error err;
    int rc = bind("[{\"table\":\"property.parcels\",\"checks\":["
                  "{\"type\":\"row_count\"},"
                  "{\"type\":\"missing\",\"column\":\"Dor_UC\",\"samples\":3},"
                  "{\"type\":\"duplicate\",\"columns\":[\"co_no\",\"parcel_id\"]},"
                  "{\"type\":\"row_count\",\"change\":true,\"warn\":\"< -10%\"}]}]",
                  &s, &err);
    if (rc != 0)
        T_FAIL("%s", err.msg);
    T_ASSERT_EQ(1, s.n);
    T_ASSERT_STREQ("\"property\".\"parcels\"", s.t[0].qname);
    const struct vcheck *c = s.t[0].checks;
    T_ASSERT_STREQ("row_count", c[0].name);
    T_ASSERT_TRUE(c[0].fail.set && c[0].fail.op == OP_LT && c[0].fail.a == 1 && !c[0].warn.set);
    T_ASSERT_STREQ("missing_Dor_UC", c[1].name);
    T_ASSERT_STREQ("\"dor_uc\"", c[1].column);
    T_ASSERT_EQ(3, c[1].samples);
    T_ASSERT_TRUE(c[1].fail.op == OP_GT && c[1].fail.a == 0 && c[1].counts);
    T_ASSERT_STREQ("duplicate_co_no_parcel_id", c[2].name);
    T_ASSERT_EQ(20, c[2].samples);
    T_ASSERT_STREQ("row_count_change", c[3].name);
    T_ASSERT_TRUE(!c[3].fail.set && c[3].warn.set);

    /* judging: percent for counting checks, the value otherwise; fail before warn */
    struct vcheck k = c[1];
    k.warn = th("> 1%");
    k.fail = th("> 10%");
    T_ASSERT_EQ(VO_PASS, vc_judge(&k, 5, 0.5));
    T_ASSERT_EQ(VO_WARN, vc_judge(&k, 5, 1.5));
    T_ASSERT_EQ(VO_FAIL, vc_judge(&k, 5, 10.5));
    vsuite_free(&s);
}

TEST(one_scan_for_a_grouping)
{
    struct vsuite s;
    struct md_error err;
    int rc = bind("[{\"table\":\"p\",\"filter\":\"asmnt_yr = 2025\",\"checks\":["
                  "{\"type\":\"row_count\"},"
                  "{\"type\":\"missing\",\"column\":\"a\",\"missing_values\":[\"\",\"N/A\"]},"
                  "{\"type\":\"invalid\",\"column\":\"c\",\"values\":[11,\"12\",true],"
                  "\"regex\":\"^1\",\"min\":0,\"max\":1e9,\"min_length\":1,\"max_length\":3},"
                  "{\"type\":\"invalid\",\"column\":\"d\",\"reference\":\"s.ref.code\","
                  "\"filter\":\"x > 0\"},"
                  "{\"type\":\"failed_rows\",\"name\":\"le\",\"condition\":\"a <= b\"},"
                  "{\"type\":\"freshness\",\"column\":\"at\",\"fail\":\"> 1d\"},"
                  "{\"type\":\"metric\",\"name\":\"m\",\"expression\":\"avg(jv)\",\"warn\":\"< 1\"}"
                  "]}]",
                  &s, &err);
    if (rc != 0)
        T_FAIL("%s", err.msg);
    const struct vtable *t = &s.t[0];
    const struct vcheck *cks[7];
    for (size_t i = 0; i < 7; i++)
        cks[i] = &t->checks[i];
    struct md_buf b;
    md_buf_init(&b, 1 << 20);
    vsql_scan(&b, t, cks, 7, "t.\"co_no\" = '11'");
    const char *q = md_buf_str(&b);
    const char *want[] = {
        "SELECT NULL::text AS g, count(*) AS n, count(*) AS v0, count(*) AS r0",
        "count(*) FILTER (WHERE (t.\"a\" IS NULL OR t.\"a\"::text IN ('', 'N/A'))) AS v1",
        "t.\"c\" IS NOT NULL AND NOT coalesce((true AND t.\"c\" IN ('11', '12', 'true') AND "
        "t.\"c\"::text ~ '^1' AND t.\"c\" >= '0' AND t.\"c\" <= '1000000000' AND "
        "length(t.\"c\"::text) >= 1 AND length(t.\"c\"::text) <= 3), false)",
        "count(*) FILTER (WHERE (x > 0) AND (t.\"d\" IS NOT NULL AND NOT coalesce((true AND "
        "r3.mv_ref IS NOT NULL), false))) AS v3, count(*) FILTER (WHERE x > 0) AS r3",
        "count(*) FILTER (WHERE (NOT (a <= b))) AS v4",
        "extract(epoch FROM now() - (max(t.\"at\"))::timestamptz)::float8 AS v5",
        "(avg(jv))::float8 AS v6",
        " FROM \"p\" t LEFT JOIN (SELECT DISTINCT \"code\" AS mv_ref FROM \"s\".\"ref\") r3 ON "
        "r3.mv_ref = t.\"d\" WHERE true AND (asmnt_yr = 2025) AND (t.\"co_no\" = '11')",
    };
    for (size_t i = 0; i < MD_ARRAY_SIZE(want); i++)
        if (strstr(q, want[i]) == NULL)
            T_FAIL("the scan lacks\n  %s\nin\n  %s", want[i], q);
    T_ASSERT_TRUE(strstr(q, "GROUP BY") == NULL);
    T_ASSERT_EQ(1, (int64_t)(strstr(q, " FROM \"p\"") != NULL));
    md_buf_free(&b);
    vsuite_free(&s);
}

TEST(groups_duplicates_samples_scope)
{
    struct vsuite s;
    struct md_error err;
    int rc = bind("[{\"table\":\"p\",\"checks\":["
                  "{\"type\":\"missing\",\"column\":\"a\",\"group_by\":[\"co_no\",\"yr\"]},"
                  "{\"type\":\"duplicate\",\"columns\":[\"k1\",\"k2\"],\"group_by\":[\"co_no\"]},"
                  "{\"type\":\"failed_rows\",\"name\":\"f\",\"condition\":\"a > 0\"}]}]",
                  &s, &err);
    if (rc != 0)
        T_FAIL("%s", err.msg);
    const struct vtable *t = &s.t[0];
    const struct vcheck *c0 = &t->checks[0];
    struct md_buf b;

    md_buf_init(&b, 1 << 20);
    vsql_scan(&b, t, &c0, 1, NULL);
    T_ASSERT_TRUE(strstr(md_buf_str(&b), "SELECT coalesce(t.\"co_no\"::text, '(null)') || ',' || "
                                         "coalesce(t.\"yr\"::text, '(null)') AS g") != NULL);
    T_ASSERT_TRUE(strstr(md_buf_str(&b), " GROUP BY 1") != NULL);
    md_buf_free(&b);

    md_buf_init(&b, 1 << 20);
    vsql_dup(&b, t, &t->checks[1], NULL);
    T_ASSERT_STREQ("SELECT g, sum(c)::int8 AS rows, coalesce(sum(c - 1) FILTER (WHERE c > 1), "
                   "0)::float8 AS extra FROM (SELECT coalesce(t.\"co_no\"::text, '(null)') AS g, "
                   "count(*) AS c FROM \"p\" t WHERE true GROUP BY 1, t.\"k1\", t.\"k2\") d "
                   "GROUP BY g",
                   md_buf_str(&b));
    md_buf_free(&b);

    char *key[2] = {"\"k1\"", "\"k2\""};
    md_buf_init(&b, 1 << 20);
    vsql_samples(&b, t, &t->checks[2], NULL, key, 2);
    T_ASSERT_STREQ("SELECT jsonb_build_object('k1', t.\"k1\", 'k2', t.\"k2\") AS k, to_jsonb(t) "
                   "AS r, NULL::text AS g FROM \"p\" t WHERE true AND (NOT (a > 0)) LIMIT 20",
                   md_buf_str(&b));
    md_buf_free(&b);

    md_buf_init(&b, 1 << 20);
    vsql_samples(&b, t, &t->checks[0], NULL, key, 2);
    T_ASSERT_TRUE(strstr(md_buf_str(&b), "jsonb_build_object('a', t.\"a\") AS r") != NULL);
    T_ASSERT_TRUE(strstr(md_buf_str(&b), "= ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb"
                                         "))) LIMIT 20") != NULL);
    md_buf_free(&b);

    struct md_strv two = {(char *[]){"co_no", "Asmnt_Yr", NULL}, 2};
    md_buf_init(&b, 4096);
    T_ASSERT_TRUE(vsql_scope(&b, &two, "11,2026"));
    T_ASSERT_STREQ("t.\"co_no\" = '11' AND t.\"asmnt_yr\" = '2026'", md_buf_str(&b));
    md_buf_free(&b);
    const char *bad[] = {"11", "11,2026,3"};
    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++) {
        md_buf_init(&b, 4096);
        if (vsql_scope(&b, &two, bad[i]))
            T_FAIL("\"%s\" taken: %s", bad[i], md_buf_str(&b));
        md_buf_free(&b);
    }
    struct md_strv one = {(char *[]){"co_no", NULL}, 1};
    md_buf_init(&b, 4096);
    T_ASSERT_TRUE(vsql_scope(&b, &one, "1'1"));
    T_ASSERT_STREQ("t.\"co_no\" = '1''1'", md_buf_str(&b));
    md_buf_free(&b);
    vsuite_free(&s);
}

T_MAIN()
