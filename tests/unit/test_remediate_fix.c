/* test_remediate_fix.c - meshd-remediate's pure part (workers/remediate/fix.c): fixes bound and
 * refused with the path named, tied to a suite's checks, their canonical definition (the plan
 * hash's input), and the SQL of targets, before-images and actions.  The SQL runs for real in
 * tests/integration/test_remediate.py. */
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_buf.h"
#include "meshd/md_json.h"
#include "remediate.h"
#include "t.h"

static const struct md_json_key keys[] = {
    {.name = "fixes",
     .type = MD_J_ARRAY,
     .off = offsetof(struct rm_cfg, fixes),
     .sub = rm_fix_keys,
     .nsub = RM_NFIX_KEYS,
     .elem_size = sizeof(struct rm_fix_cfg)},
    {.name = "apply", .type = MD_J_STRING, .off = offsetof(struct rm_cfg, apply)},
    {.name = "max_rows", .type = MD_J_INT, .off = offsetof(struct rm_cfg, max_rows), .def = "1000"},
    {.name = "max_percent",
     .type = MD_J_DOUBLE,
     .off = offsetof(struct rm_cfg, max_percent),
     .def = "1"},
};

struct bound {
    struct rm_cfg cfg;
    struct rm_fix *fixes;
    size_t n;
    struct md_error err;
    int rc;
};

static void bind(struct bound *b, const char *json)
{
    memset(b, 0, sizeof *b);
    b->rc = md_json_bind(json, strlen(json), MD_JSON_KEYS(keys), &b->cfg, &b->err);
    if (b->rc == 0)
        b->rc = rm_fixes_compile(&b->cfg, &b->fixes, &b->n, &b->err);
}

static void unbind(struct bound *b)
{
    rm_fixes_free(b->fixes, b->n);
    md_free(b->fixes);
    md_json_free(MD_JSON_KEYS(keys), &b->cfg);
}

static void refused(const char *json, const char *want)
{
    struct bound b;
    bind(&b, json);
    int rc = b.rc;
    char msg[sizeof b.err.msg];
    memcpy(msg, b.err.msg, sizeof msg);
    unbind(&b);
    if (rc == 0)
        T_FAIL("taken: %s", json);
    if (strstr(msg, want) == NULL)
        T_FAIL("error \"%s\" does not say \"%s\"", msg, want);
}

TEST(bad_fixes_name_their_path)
{
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\"}]}", "fixes[0].action: required");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"drop\"}]}",
            "fixes[0].action");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"update\"}]}",
            "fixes[0].set: required for an update fix");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"update\",\"set\":[1]}]}",
            "set: required");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"update\",\"set\":{\"x\":"
            "\"1); DELETE FROM t; (\"}}]}",
            "fixes[0].set.x: ");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"update\",\"set\":{\"a.b\":"
            "\"1\"}}]}",
            "set.a.b: not a column name");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"delete\",\"set\":{\"x\":"
            "\"1\"}}]}",
            "set: not an option of a delete fix");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"rerun\"}]}",
            "message: required for a rerun fix");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"rerun\",\"message\":\"m\","
            "\"where\":\"x\"}]}",
            "a rerun fix changes no rows");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"rerun\",\"message\":\"m\","
            "\"payload\":[]}]}",
            "payload: expected an object");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"delete\",\"where\":"
            "\"x -- y\"}]}",
            "fixes[0].where: ");
    refused("{\"fixes\":[{\"name\":\"a b\",\"check\":\"c\",\"action\":\"delete\"}]}",
            "must be letters");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"delete\"},{\"name\":\"a\","
            "\"check\":\"c\",\"action\":\"delete\"}]}",
            "fixes[1].name: \"a\" is already the name of fixes[0]");
    refused("{\"fixes\":[{\"name\":\"a\",\"check\":\"c\",\"action\":\"delete\",\"max_percent\":"
            "101}]}",
            "max_percent");
}

TEST(defaults_and_definition)
{
    struct bound b;
    bind(&b, "{\"apply\":\"auto\",\"max_rows\":50,\"fixes\":[{\"name\":\"cents\",\"check\":"
             "\"sale\",\"action\":\"update\",\"set\":{\"Sale_Prc1\":\"sale_prc1 / 100\"},"
             "\"max_percent\":3,\"enabled\":false},{\"name\":\"q\",\"check\":\"t.c\",\"action\":"
             "\"quarantine\",\"apply\":\"approval\"}]}");
    if (b.rc != 0)
        T_FAIL("%s", b.err.msg);
    T_ASSERT_EQ(2, b.n);
    const struct rm_fix *f = &b.fixes[0];
    T_ASSERT_EQ(RA_UPDATE, f->action);
    T_ASSERT_EQ(RP_AUTO, f->apply);
    T_ASSERT_EQ(50, f->max_rows);
    T_ASSERT_TRUE(f->max_percent == 3);
    T_ASSERT_EQ(1, f->nset);
    T_ASSERT_STREQ("\"sale_prc1\"", f->set_cols[0]);
    T_ASSERT_STREQ("sale_prc1 / 100", f->set_exprs[0]);
    /* the definition: what the fix changes, in a fixed order, not its guards or switches */
    T_ASSERT_STREQ("{\"name\":\"cents\",\"check\":\"sale\",\"action\":\"update\",\"set\":"
                   "{\"Sale_Prc1\":\"sale_prc1 / 100\"}}",
                   f->def);
    T_ASSERT_EQ(RP_APPROVAL, b.fixes[1].apply);
    T_ASSERT_TRUE(b.fixes[1].max_percent == 1);

    /* bound again from the definition, with another run's guards */
    struct rm_cfg run = {.max_rows = 7, .max_percent = 2};
    struct rm_fix_cfg fc;
    struct rm_fix g;
    struct md_error err;
    T_ASSERT_EQ(0, rm_fix_from_def(f->def, &run, &fc, &g, &err));
    T_ASSERT_STREQ(f->def, g.def);
    T_ASSERT_EQ(7, g.max_rows);
    rm_fixes_free(&g, 1);
    rm_fix_cfg_free(&fc);
    unbind(&b);
}

static void suite(struct vsuite *s)
{
    static const char json[] =
        "[{\"table\":\"p\",\"checks\":["
        "{\"type\":\"failed_rows\",\"name\":\"sale\",\"condition\":\"sale <= 20 * jv\","
        "\"filter\":\"yr = 2025\"},"
        "{\"type\":\"duplicate\",\"columns\":[\"co\",\"pid\"]},"
        "{\"type\":\"invalid\",\"column\":\"co\",\"reference\":\"counties.co\"},"
        "{\"type\":\"row_count\"}]},"
        "{\"table\":\"q\",\"checks\":[{\"type\":\"row_count\"}]}]";
    struct md_error err;
    if (vsuite_bind(json, strlen(json), 20, s, &err) != 0)
        T_FAIL("%s", err.msg);
    /* as vprep_suite would: the key */
    s->t[0].key = md_xcalloc(1, sizeof *s->t[0].key);
    s->t[0].key[0] = md_xstrdup("\"id\"");
    s->t[0].nkey = 1;
}

static struct rm_fix fix_of(struct bound *b, const char *json)
{
    bind(b, json);
    if (b->rc != 0)
        T_FAIL("%s", b->err.msg);
    return b->fixes[0];
}

TEST(resolve_against_the_suite)
{
    struct vsuite s;
    struct md_error err;
    struct bound b;
    suite(&s);

    struct rm_fix f = fix_of(&b, "{\"fixes\":[{\"name\":\"x\",\"check\":\"row_count\","
                                 "\"action\":\"delete\"}]}");
    T_ASSERT_EQ(MD_ECONFIG, rm_fix_resolve(&f, &s, &err));
    T_ASSERT_TRUE(strstr(err.msg, "names a check in 2 tables") != NULL);
    unbind(&b);
    f = fix_of(&b,
               "{\"fixes\":[{\"name\":\"x\",\"check\":\"p.row_count\",\"action\":\"delete\"}]}");
    T_ASSERT_EQ(MD_ECONFIG, rm_fix_resolve(&f, &s, &err));
    T_ASSERT_TRUE(strstr(err.msg, "has no failing rows to delete") != NULL);
    unbind(&b);
    f = fix_of(&b, "{\"fixes\":[{\"name\":\"x\",\"check\":\"row_count\",\"table\":\"q\","
                   "\"action\":\"rerun\",\"message\":\"m\"}]}");
    T_ASSERT_EQ(0, rm_fix_resolve(&f, &s, &err));
    T_ASSERT_TRUE(f.t == &s.t[1]);
    unbind(&b);
    f = fix_of(&b, "{\"fixes\":[{\"name\":\"x\",\"check\":\"nope\",\"action\":\"delete\"}]}");
    T_ASSERT_EQ(MD_ECONFIG, rm_fix_resolve(&f, &s, &err));
    T_ASSERT_TRUE(strstr(err.msg, "fixes[0] (x).check: the suite has no check \"nope\"") != NULL);
    unbind(&b);
    vsuite_free(&s);
}

TEST(target_and_action_sql)
{
    struct vsuite s;
    struct md_error err;
    struct bound b;
    struct md_buf q;
    suite(&s);

    struct rm_fix f = fix_of(&b, "{\"fixes\":[{\"name\":\"cents\",\"check\":\"sale\",\"action\":"
                                 "\"update\",\"set\":{\"sale\":\"sale / 100\",\"x\":1}}]}");
    T_ASSERT_EQ(0, rm_fix_resolve(&f, &s, &err));
    md_buf_init(&q, 1 << 20);
    rmsql_targets(&q, &f, "t.\"co\" = '11'");
    T_ASSERT_STREQ("CREATE TEMP TABLE _mr_targets ON COMMIT DROP AS SELECT t.ctid AS tid, "
                   "jsonb_build_object('id', t.\"id\") AS k FROM \"p\" t WHERE true AND "
                   "(t.\"co\" = '11') AND (yr = 2025) AND (NOT (sale <= 20 * jv))",
                   md_buf_str(&q));
    md_buf_free(&q);
    md_buf_init(&q, 1 << 20);
    rmsql_action(&q, &f);
    T_ASSERT_STREQ("WITH u AS (UPDATE \"p\" t SET \"sale\" = (sale / 100), \"x\" = (1) FROM "
                   "_mr_targets x WHERE t.ctid = x.tid RETURNING x.k AS k, to_jsonb(t) AS "
                   "after) UPDATE meshd_remediate.audit a SET after = u.after FROM u WHERE "
                   "a.run_id = $1 AND a.plan = $2 AND a.row_key = u.k",
                   md_buf_str(&q));
    md_buf_free(&q);
    md_buf_init(&q, 1 << 20);
    rmsql_audit(&q, &f);
    T_ASSERT_STREQ("INSERT INTO meshd_remediate.audit (run_id, plan, fix, tbl, action, row_key, "
                   "before) SELECT $1, $2, 'cents', '\"p\"', 'update', x.k, to_jsonb(t) FROM "
                   "\"p\" t JOIN _mr_targets x ON t.ctid = x.tid",
                   md_buf_str(&q));
    md_buf_free(&q);
    unbind(&b);

    /* duplicates: every copy but the first in order_by */
    f = fix_of(&b, "{\"fixes\":[{\"name\":\"d\",\"check\":\"duplicate_co_pid\",\"action\":"
                   "\"delete\",\"order_by\":\"id\"}]}");
    T_ASSERT_EQ(0, rm_fix_resolve(&f, &s, &err));
    md_buf_init(&q, 1 << 20);
    rmsql_targets(&q, &f, NULL);
    T_ASSERT_STREQ("CREATE TEMP TABLE _mr_targets ON COMMIT DROP AS SELECT tid, k FROM (SELECT "
                   "t.ctid AS tid, jsonb_build_object('id', t.\"id\") AS k, row_number() OVER "
                   "(PARTITION BY t.\"co\", t.\"pid\" ORDER BY id) AS mv_rn FROM \"p\" t WHERE "
                   "true) d WHERE mv_rn > 1",
                   md_buf_str(&q));
    md_buf_free(&q);
    md_buf_init(&q, 1 << 20);
    rmsql_action(&q, &f);
    T_ASSERT_STREQ("DELETE FROM \"p\" t USING _mr_targets x WHERE t.ctid = x.tid", md_buf_str(&q));
    md_buf_free(&q);
    unbind(&b);

    /* a reference check's targets join the reference; a quarantine keeps the reason ($2) */
    f = fix_of(&b, "{\"fixes\":[{\"name\":\"q\",\"check\":\"invalid_co\",\"action\":"
                   "\"quarantine\"}]}");
    T_ASSERT_EQ(0, rm_fix_resolve(&f, &s, &err));
    md_buf_init(&q, 1 << 20);
    rmsql_targets(&q, &f, NULL);
    T_ASSERT_TRUE(strstr(md_buf_str(&q), "LEFT JOIN (SELECT DISTINCT \"co\" AS mv_ref FROM "
                                         "\"counties\") r2 ON r2.mv_ref = t.\"co\"") != NULL);
    md_buf_free(&q);
    md_buf_init(&q, 1 << 20);
    rmsql_action(&q, &f);
    T_ASSERT_TRUE(strstr(md_buf_str(&q), "INSERT INTO meshd_remediate.quarantine (run_id, fix, "
                                         "tbl, reason, row_key, row_data) SELECT $1, 'q', "
                                         "'\"p\"', $2, k, r FROM d") != NULL);
    md_buf_free(&q);
    unbind(&b);
    vsuite_free(&s);
}

T_MAIN()
