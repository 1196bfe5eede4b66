/* test_scrape_plan.c - meshd-scrape's URL templates (workers/scrape/plan.c): each: pairs its
 * arrays element by element, vars: are shared, values are percent-encoded in the URL and taken
 * as written in the partition, and every mistake names its key path. */
#include <string.h>

#include "meshd/md_alloc.h"
#include "scrape.h"
#include "t.h"

static struct scrape_source source(const char *url, const char *each, const char *vars,
                                   const char *part)
{
    struct scrape_source s;
    memset(&s, 0, sizeof s);
    s.name = (char *)"nal";
    s.url = (char *)url;
    s.each = (char *)each;
    s.vars = (char *)vars;
    s.partition = (char *)part;
    return s;
}

static int plan(struct scrape_source *src, size_t n, struct scrape_file **f, size_t *nf,
                struct md_error *err)
{
    struct scrape_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.sources.v = src;
    cfg.sources.n = n;
    return scrape_plan(&cfg, f, nf, err);
}

TEST(template_substitutes_and_encodes)
{
    const char *names[] = {"county", "name"};
    const char *values[] = {"23", "Miami Dade/ñ"};
    struct md_error err = {0};
    char *s;

    s = scrape_template("x/{name}%20{county}.zip", names, values, 2, true, &err);
    T_ASSERT_STREQ("x/Miami%20Dade%2F%C3%B1%2023.zip", s);
    md_free(s);
    s = scrape_template("{{{county}}}", names, values, 2, false, &err);
    T_ASSERT_STREQ("{23}", s);
    md_free(s);
    s = scrape_template("plain", names, values, 0, true, &err);
    T_ASSERT_STREQ("plain", s);
    md_free(s);
}

TEST(template_unknown_variable_lists_known)
{
    const char *names[] = {"county", "year"};
    const char *values[] = {"11", "2025"};
    struct md_error err = {0};

    T_ASSERT_TRUE(scrape_template("{countyname}", names, values, 2, true, &err) == NULL);
    T_ASSERT_TRUE(strstr(err.msg, "unknown variable {countyname}") != NULL);
    T_ASSERT_TRUE(strstr(err.msg, "county, year") != NULL);
    T_ASSERT_TRUE(scrape_template("{open", names, values, 2, true, &err) == NULL);
    T_ASSERT_TRUE(strstr(err.msg, "unclosed") != NULL);
}

TEST(each_pairs_arrays_and_partition_follows)
{
    struct scrape_source s =
        source("https://h/{year}P/{county_name}%20{county}.zip",
               "{\"county\":[11,16,23],\"county_name\":[\"Alachua\",\"Broward\",\"Miami Dade\"]}",
               "{\"year\":2025}", "{\"co_no\":\"{county}\",\"asmnt_yr\":\"{year}\"}");
    struct scrape_file *f = NULL;
    size_t n = 0;
    struct md_error err = {0};

    T_ASSERT_EQ(0, plan(&s, 1, &f, &n, &err));
    T_ASSERT_EQ(3, n);
    T_ASSERT_STREQ("https://h/2025P/Alachua%2011.zip", f[0].url);
    T_ASSERT_STREQ("https://h/2025P/Miami%20Dade%2023.zip", f[2].url);
    T_ASSERT_EQ(2, f[1].npart);
    T_ASSERT_STREQ("co_no", f[1].part_col[0]);
    T_ASSERT_STREQ("16", f[1].part_val[0]);
    T_ASSERT_STREQ("2025", f[1].part_val[1]);
    T_ASSERT_STREQ("16,2025", f[1].label);
    scrape_files_free(f, n);
}

TEST(no_each_is_one_file_without_partition)
{
    struct scrape_source s = source("file:///data/sdf.csv", NULL, NULL, NULL);
    struct scrape_file *f = NULL;
    size_t n = 0;
    struct md_error err = {0};

    T_ASSERT_EQ(0, plan(&s, 1, &f, &n, &err));
    T_ASSERT_EQ(1, n);
    T_ASSERT_EQ(0, f[0].npart);
    T_ASSERT_STREQ("", f[0].label);
    scrape_files_free(f, n);
}

static void expect_error(const char *url, const char *each, const char *vars, const char *part,
                         const char *columns, const char *want)
{
    struct scrape_source s = source(url, each, vars, part);
    struct scrape_file *f = NULL;
    size_t n = 0;
    struct md_error err = {0};

    s.columns = (char *)columns;
    T_ASSERT_EQ(MD_ECONFIG, plan(&s, 1, &f, &n, &err));
    if (strstr(err.msg, want) == NULL)
        T_FAIL("error \"%s\" lacks \"%s\"", err.msg, want);
}

TEST(mistakes_name_their_key_path)
{
    expect_error("u/{c}", "{\"c\":[1,2],\"d\":[1]}", NULL, NULL, NULL,
                 "sources[0].each.d: 1 values, but c has 2");
    expect_error("u/{c}", "{\"c\":[]}", NULL, NULL, NULL, "sources[0].each.c: expected a non");
    expect_error("u/{c}", "{\"c\":[{\"x\":1}]}", NULL, NULL, NULL, "expected strings or numbers");
    expect_error("u/{x}", "{\"c\":[1]}", NULL, NULL, NULL, "sources[0].url: unknown variable {x}");
    expect_error("u/{c}", "{\"c\":[1]}", "{\"c\":2}", NULL, NULL, "variable defined twice");
    expect_error("u/{c}", "{\"c\":[1]}", NULL, "{\"co_no\":\"{k}\"}", NULL,
                 "sources[0].partition.co_no: unknown variable {k}");
    expect_error("u/{c}", "{\"c\":[1]}", NULL, "[1]", NULL, "sources[0].partition: expected");
    expect_error("u/{c}", "{\"c\":[1]}", NULL, NULL, "\"loose\"", "sources[0].columns");
    expect_error("u/{c}", "{\"c\":[1]}", NULL, NULL, "{\"A\":1}", "sources[0].columns.A");
    expect_error("u/x", "{\"c\":[1,2]}", NULL, NULL, NULL, "two files expand to the same URL");
}

TEST(source_names_are_unique)
{
    struct scrape_source s[2] = {source("u/a", NULL, NULL, NULL), source("u/b", NULL, NULL, NULL)};
    struct scrape_file *f = NULL;
    size_t n = 0;
    struct md_error err = {0};

    T_ASSERT_EQ(MD_ECONFIG, plan(s, 2, &f, &n, &err));
    T_ASSERT_TRUE(strstr(err.msg, "sources[1].name") != NULL);
}

T_MAIN()
