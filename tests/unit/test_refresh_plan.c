/* test_refresh_plan.c - meshd-refresh's pure decisions (workers/refresh/plan.c): the
 * dependency order and its cycles, concurrent or plain, skip or refresh, the stored counters'
 * text, and the configured CREATE INDEX statements. */
#include <errno.h>
#include <string.h>

#include "meshd/md_buf.h"
#include "plan.h"
#include "t.h"

/* ---- order ---------------------------------------------------------------------------------- */

static size_t pos(const size_t *order, size_t n, size_t v)
{
    for (size_t i = 0; i < n; i++)
        if (order[i] == v)
            return i;
    return n;
}

TEST(order_three_level_chain_listed_backwards)
{
    /* c reads b reads a, listed as c, b, a: refreshed a, b, c. */
    const size_t dc[] = {1}, db[] = {2};
    const struct plan_view v[] = {{"c", dc, 1}, {"b", db, 1}, {"a", NULL, 0}};
    size_t order[3];
    struct md_error err = {0};

    T_ASSERT_EQ(0, plan_order(v, 3, order, &err));
    T_ASSERT_EQ(2, order[0]);
    T_ASSERT_EQ(1, order[1]);
    T_ASSERT_EQ(0, order[2]);
}

TEST(order_keeps_config_order_where_free)
{
    /* Independent views keep their order; a diamond d <- b, c <- a comes out a, b, c, d. */
    const size_t db[] = {3}, dc[] = {3}, dd[] = {1, 2};
    const struct plan_view v[] = {
        {"x", NULL, 0}, {"b", db, 1}, {"c", dc, 1}, {"a", NULL, 0}, {"d", dd, 2}};
    size_t order[5];
    struct md_error err = {0};

    T_ASSERT_EQ(0, plan_order(v, 5, order, &err));
    T_ASSERT_EQ(0, order[0]);
    T_ASSERT_TRUE(pos(order, 5, 3) < pos(order, 5, 1));
    T_ASSERT_TRUE(pos(order, 5, 3) < pos(order, 5, 2));
    T_ASSERT_TRUE(pos(order, 5, 1) < pos(order, 5, 4));
    T_ASSERT_TRUE(pos(order, 5, 2) < pos(order, 5, 4));
    T_ASSERT_TRUE(pos(order, 5, 1) < pos(order, 5, 2));
}

TEST(order_cycle_is_a_config_error_naming_it)
{
    /* mv_a -> mv_b -> mv_c -> mv_a (indexes 1 -> 2 -> 3 -> 1), beside a free view. */
    static const size_t d1[] = {2}, d2[] = {3}, d3[] = {1};
    const struct plan_view v[] = {
        {"free", NULL, 0}, {"mv_a", d1, 1}, {"mv_b", d2, 1}, {"mv_c", d3, 1}};
    size_t order[4];
    struct md_error err = {0};

    T_ASSERT_EQ(MD_ECONFIG, plan_order(v, 4, order, &err));
    T_ASSERT_TRUE(strstr(err.msg, "cycle") != NULL);
    T_ASSERT_TRUE(strstr(err.msg, "mv_a -> mv_b -> mv_c -> mv_a") != NULL);
    T_ASSERT_TRUE(strstr(err.msg, "free") == NULL);
}

TEST(order_self_dependency_is_a_cycle)
{
    static const size_t d0[] = {0};
    const struct plan_view v[] = {{"mv_self", d0, 1}};
    size_t order[1];
    struct md_error err = {0};

    T_ASSERT_EQ(MD_ECONFIG, plan_order(v, 1, order, &err));
    T_ASSERT_TRUE(strstr(err.msg, "mv_self -> mv_self") != NULL);
}

TEST(order_empty)
{
    size_t order[1];
    struct md_error err = {0};
    T_ASSERT_EQ(0, plan_order(NULL, 0, order, &err));
}

/* ---- concurrent or plain -------------------------------------------------------------------- */

TEST(mode_concurrent_needs_data_and_a_unique_plain_index)
{
    struct plan_mode_choice ch;
    struct plan_mode_facts f = {.populated = true, .unique_indexes = 1, .clean_key = true};

    plan_choose_mode(&f, &ch);
    T_ASSERT_EQ(PLAN_CONCURRENT, ch.mode);
    T_ASSERT_TRUE(ch.why == NULL);
    T_ASSERT_FALSE(ch.null_warn);

    f.populated = false;
    plan_choose_mode(&f, &ch);
    T_ASSERT_EQ(PLAN_PLAIN, ch.mode);
    T_ASSERT_TRUE(strstr(ch.why, "not populated") != NULL);

    f = (struct plan_mode_facts){.populated = true, .unique_indexes = 0};
    plan_choose_mode(&f, &ch);
    T_ASSERT_EQ(PLAN_PLAIN, ch.mode);
    T_ASSERT_TRUE(strstr(ch.why, "unique index") != NULL);
    T_ASSERT_TRUE(ch.warn_plain);
    T_ASSERT_FALSE(ch.refuse);
}

TEST(mode_from_the_config)
{
    struct plan_mode_choice ch;
    struct plan_mode_facts f = {.want = PLAN_WANT_PLAIN, .populated = true, .unique_indexes = 1};

    plan_choose_mode(&f, &ch); /* asked for: plain, without a warning */
    T_ASSERT_EQ(PLAN_PLAIN, ch.mode);
    T_ASSERT_FALSE(ch.warn_plain);
    T_ASSERT_FALSE(ch.refuse);
    T_ASSERT_STREQ("mode: plain", ch.why);

    f.want = PLAN_WANT_CONCURRENT;
    plan_choose_mode(&f, &ch);
    T_ASSERT_EQ(PLAN_CONCURRENT, ch.mode);
    T_ASSERT_FALSE(ch.refuse);

    f.unique_indexes = 0; /* concurrent only: refused, never a blocking refresh */
    plan_choose_mode(&f, &ch);
    T_ASSERT_TRUE(ch.refuse);
    T_ASSERT_FALSE(ch.warn_plain);
    T_ASSERT_TRUE(strstr(ch.why, "unique index") != NULL);
    f = (struct plan_mode_facts){.want = PLAN_WANT_CONCURRENT, .unique_indexes = 1};
    plan_choose_mode(&f, &ch);
    T_ASSERT_TRUE(ch.refuse);
    T_ASSERT_TRUE(strstr(ch.why, "not populated") != NULL);
}

TEST(mode_warns_about_null_keys)
{
    struct plan_mode_choice ch;
    struct plan_mode_facts f = {
        .populated = true, .unique_indexes = 2, .clean_key = false, .null_cols = "a"};

    plan_choose_mode(&f, &ch);
    T_ASSERT_EQ(PLAN_CONCURRENT, ch.mode);
    T_ASSERT_TRUE(ch.null_warn);
}

/* ---- skip ----------------------------------------------------------------------------------- */

static struct plan_inputs in_a, in_b;

static struct plan_skip_facts base_facts(void)
{
    memset(&in_a, 0, sizeof in_a);
    in_a.n = 2;
    in_a.v[0] = (struct plan_input){100, 5000, 10, 2, 1};
    in_a.v[1] = (struct plan_input){200, 6000, 7, 0, 0};
    in_b = in_a;
    return (struct plan_skip_facts){.skip_unchanged = true,
                                    .populated = true,
                                    .has_state = true,
                                    .view_oid = 42,
                                    .stored_view_oid = 42,
                                    .stats_reset = "t0",
                                    .stored_stats_reset = "t0",
                                    .now = &in_a,
                                    .stored = &in_b};
}

TEST(skip_when_nothing_moved)
{
    struct plan_skip_facts f = base_facts();
    const char *why;

    T_ASSERT_TRUE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strcmp(why, "unchanged") == 0);
    f.stats_reset = f.stored_stats_reset = NULL; /* never reset: NULL both times */
    T_ASSERT_TRUE(plan_skip(&f, &why));
}

TEST(refresh_when_a_counter_moved)
{
    struct plan_skip_facts f = base_facts();
    const char *why;

    in_a.v[1].ins++;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strcmp(why, "inputs changed") == 0);
    f = base_facts();
    in_a.v[0].del++;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    in_a.v[0].filenode = 5001; /* TRUNCATE moves no counter but a new relfilenode */
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    in_a.n = 1; /* the view now reads other tables */
    T_ASSERT_FALSE(plan_skip(&f, &why));
}

TEST(refresh_when_forced_off_unpopulated_new_or_recreated)
{
    struct plan_skip_facts f = base_facts();
    const char *why;

    f.force = true;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strcmp(why, "forced") == 0);
    f = base_facts();
    f.skip_unchanged = false;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    f.populated = false;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    f.has_state = false;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    f.stored_view_oid = 41;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strstr(why, "recreated") != NULL);
}

TEST(refresh_after_a_stats_reset)
{
    struct plan_skip_facts f = base_facts();
    const char *why;

    f.stats_reset = "t1"; /* pg_stat_reset() */
    T_ASSERT_FALSE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strstr(why, "reset") != NULL);
    f = base_facts();
    f.stored_stats_reset = NULL;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    in_a.v[0].ins = 3; /* pg_stat_reset_single_table_counters(): counters went back */
    T_ASSERT_FALSE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strstr(why, "backwards") != NULL);
}

TEST(never_skip_what_cannot_be_watched)
{
    struct plan_skip_facts f = base_facts();
    const char *why;

    in_a.opaque = true;
    T_ASSERT_FALSE(plan_skip(&f, &why));
    f = base_facts();
    in_a.n = in_b.n = 0; /* a view over functions only */
    T_ASSERT_FALSE(plan_skip(&f, &why));
    T_ASSERT_TRUE(strstr(why, "no input") != NULL);
}

TEST(inputs_round_trip)
{
    struct plan_inputs in = {0}, back;
    struct md_buf b;

    in.n = 2;
    in.v[0] = (struct plan_input){16384, 16390, 1000000000000LL, 0, 3};
    in.v[1] = (struct plan_input){4294967295U, 1, 1, 2, 3};
    md_buf_init(&b, 4096);
    T_ASSERT_TRUE(plan_inputs_format(&in, &b));
    T_ASSERT_EQ(0, strcmp(md_buf_str(&b), "16384/16390/1000000000000/0/3 4294967295/1/1/2/3"));
    T_ASSERT_EQ(0, plan_inputs_parse(md_buf_str(&b), &back));
    T_ASSERT_EQ(2, back.n);
    T_ASSERT_EQ(0, memcmp(&in.v[0], &back.v[0], sizeof in.v[0]));
    T_ASSERT_EQ(0, memcmp(&in.v[1], &back.v[1], sizeof in.v[1]));
    md_buf_free(&b);

    T_ASSERT_EQ(0, plan_inputs_parse("", &back));
    T_ASSERT_EQ(0, back.n);
    T_ASSERT_EQ(0, plan_inputs_parse("opaque", &back));
    T_ASSERT_TRUE(back.opaque);
    T_ASSERT_EQ(-EINVAL, plan_inputs_parse("1/2/3", &back));
    T_ASSERT_EQ(-EINVAL, plan_inputs_parse("2/1/1/1/1 1/1/1/1/1", &back)); /* unsorted */
    T_ASSERT_EQ(-EINVAL, plan_inputs_parse("1/1/1/1/1x", &back));
}

/* ---- indexes -------------------------------------------------------------------------------- */

TEST(index_statements_name_their_index_and_table)
{
    struct plan_index_stmt s;
    struct md_error err = {0};

    T_ASSERT_EQ(0,
                plan_index_parse("CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_parcels_county_year"
                                 " ON parcels (co_no, asmnt_yr)",
                                 &s, &err));
    T_ASSERT_EQ(0, strcmp(s.name, "idx_parcels_county_year"));
    T_ASSERT_EQ(0, strcmp(s.table, "\"parcels\""));
    T_ASSERT_TRUE(s.concurrently);

    T_ASSERT_EQ(0, plan_index_parse("  create unique index Idx_X on only Analytics.\"My \"\"T\"\"\""
                                    "(a)",
                                    &s, &err));
    T_ASSERT_EQ(0, strcmp(s.name, "idx_x"));
    T_ASSERT_EQ(0, strcmp(s.table, "\"analytics\".\"My \"\"T\"\"\""));
    T_ASSERT_FALSE(s.concurrently);

    T_ASSERT_EQ(0, plan_index_parse("CREATE INDEX \"Quoted Name\" ON t USING btree (a)", &s, &err));
    T_ASSERT_EQ(0, strcmp(s.name, "Quoted Name"));
}

TEST(index_statements_without_a_name_are_refused)
{
    struct plan_index_stmt s;
    struct md_error err = {0};

    T_ASSERT_EQ(MD_ECONFIG, plan_index_parse("CREATE INDEX ON t (a)", &s, &err));
    T_ASSERT_TRUE(strstr(err.msg, "name") != NULL);
    T_ASSERT_EQ(MD_ECONFIG, plan_index_parse("CREATE INDEX CONCURRENTLY ON t (a)", &s, &err));
    T_ASSERT_EQ(MD_ECONFIG, plan_index_parse("DROP INDEX x", &s, &err));
    T_ASSERT_EQ(MD_ECONFIG, plan_index_parse("CREATE TABLE x (a int)", &s, &err));
    T_ASSERT_EQ(MD_ECONFIG, plan_index_parse("CREATE INDEX IF EXISTS x ON t (a)", &s, &err));
    T_ASSERT_EQ(MD_ECONFIG, plan_index_parse("CREATE INDEX x", &s, &err));
}

T_MAIN()
