/* test_json.c - md_json_bind / md_json_free: every type, defaults, required keys, limits,
 * choices, nested paths, syntax errors; the failures are table-driven by their messages. */
#include "meshd/md_alloc.h"
#include "meshd/md_json.h"
#include "t.h"

#include <stddef.h>

struct item {
    char *c;
    int64_t x;
    struct md_strv tags;
};

struct db {
    char *url;
    uint64_t timeout_ms;
};

struct cfg {
    char *name;
    int64_t n;
    double ratio;
    bool on;
    uint64_t timeout_ms;
    struct md_strv views;
    struct db database;
    struct md_json_array items;
    char *raw;
    char *mode;
    int64_t neg;
};

static const char *const modes[] = {"fast", "safe", NULL};

static const struct md_json_key item_keys[] = {
    {"c", MD_J_STRING, offsetof(struct item, c), .required = true},
    {"x", MD_J_INT, offsetof(struct item, x), .def = "7", .min = 0, .max = 10},
    {"tags", MD_J_STRV, offsetof(struct item, tags), .required = false},
};

static const struct md_json_key db_keys[] = {
    {"url", MD_J_STRING, offsetof(struct db, url), .required = false},
    {"timeout", MD_J_DURATION, offsetof(struct db, timeout_ms), .def = "\"5s\"", .min = 1000},
};

static const struct md_json_key keys[] = {
    {"name", MD_J_STRING, offsetof(struct cfg, name), .required = true},
    {"n", MD_J_INT, offsetof(struct cfg, n), .def = "3", .min = 1, .max = 8},
    {"ratio", MD_J_DOUBLE, offsetof(struct cfg, ratio), .def = "0.5", .min = 0, .max = 1},
    {"on", MD_J_BOOL, offsetof(struct cfg, on), .def = "true"},
    {"timeout", MD_J_DURATION, offsetof(struct cfg, timeout_ms), .def = "\"30m\"", .max = 3600000},
    {"views", MD_J_STRV, offsetof(struct cfg, views), .min = 0, .max = 3},
    {"database", MD_J_OBJECT, offsetof(struct cfg, database), .sub = db_keys,
     .nsub = MD_ARRAY_SIZE(db_keys)},
    {"items", MD_J_ARRAY, offsetof(struct cfg, items), .sub = item_keys,
     .nsub = MD_ARRAY_SIZE(item_keys), .elem_size = sizeof(struct item), .max = 4},
    {"raw", MD_J_RAW, offsetof(struct cfg, raw), .required = false},
    {"mode", MD_J_STRING, offsetof(struct cfg, mode), .def = "\"safe\"", .choices = modes},
    {"neg", MD_J_INT, offsetof(struct cfg, neg), .required = false},
};

static int bind(const char *json, struct cfg *c, struct md_error *err)
{
    memset(c, 0, sizeof *c);
    memset(err, 0, sizeof *err);
    return md_json_bind(json, strlen(json), MD_JSON_KEYS(keys), c, err);
}

TEST(json_every_type)
{
    struct cfg c;
    struct md_error err;
    const char *doc = "{\"name\":\"x\",\"n\":8,\"ratio\":0.25,\"on\":false,\"timeout\":\"1h\","
                      "\"views\":[\"a\",\"b\"],\"database\":{\"url\":\"postgres://h/d\","
                      "\"timeout\":2.5},\"items\":[{\"c\":\"p\",\"x\":1,\"tags\":\"t\"},"
                      "{\"c\":\"q\"}],\"raw\":{\"k\": [1, 2]},\"mode\":\"fast\","
                      "\"neg\":-9007199254740992}";

    T_ASSERT_EQ(0, bind(doc, &c, &err));
    T_ASSERT_STREQ("x", c.name);
    T_ASSERT_EQ(8, c.n);
    T_ASSERT_TRUE(c.ratio == 0.25);
    T_ASSERT_FALSE(c.on);
    T_ASSERT_EQ(3600000, c.timeout_ms);
    T_ASSERT_EQ(2, c.views.n);
    T_ASSERT_STREQ("b", c.views.v[1]);
    T_ASSERT_TRUE(c.views.v[2] == NULL);
    T_ASSERT_STREQ("postgres://h/d", c.database.url);
    T_ASSERT_EQ(2500, c.database.timeout_ms);
    T_ASSERT_EQ(2, c.items.n);
    struct item *it = c.items.v;
    T_ASSERT_STREQ("p", it[0].c);
    T_ASSERT_EQ(1, it[0].x);
    T_ASSERT_EQ(1, it[0].tags.n);
    T_ASSERT_STREQ("t", it[0].tags.v[0]);
    T_ASSERT_STREQ("q", it[1].c);
    T_ASSERT_EQ(7, it[1].x); /* the element's default */
    T_ASSERT_STREQ("{\"k\":[1,2]}", c.raw);
    T_ASSERT_STREQ("fast", c.mode);
    T_ASSERT_EQ(-9007199254740992LL, c.neg);
    md_json_free(MD_JSON_KEYS(keys), &c);
    T_ASSERT_TRUE(c.name == NULL && c.views.v == NULL && c.items.v == NULL);
    T_ASSERT_TRUE(c.database.url == NULL && c.raw == NULL && c.mode == NULL);
}

TEST(json_defaults)
{
    struct cfg c;
    struct md_error err;

    T_ASSERT_EQ(0, bind("{\"name\":\"x\",\"ratio\":null}", &c, &err));
    T_ASSERT_EQ(3, c.n);
    T_ASSERT_TRUE(c.ratio == 0.5); /* null stands for absent */
    T_ASSERT_TRUE(c.on);
    T_ASSERT_EQ(1800000, c.timeout_ms);
    T_ASSERT_EQ(0, c.views.n);
    T_ASSERT_TRUE(c.views.v == NULL);
    T_ASSERT_TRUE(c.database.url == NULL);
    T_ASSERT_EQ(5000, c.database.timeout_ms); /* absent object: its members' defaults */
    T_ASSERT_EQ(0, c.items.n);
    T_ASSERT_TRUE(c.raw == NULL);
    T_ASSERT_STREQ("safe", c.mode);
    md_json_free(MD_JSON_KEYS(keys), &c);
}

TEST(json_empty_document_is_an_empty_object)
{
    static const struct md_json_key k[] = {
        {"on", MD_J_BOOL, 0, .def = "true"},
    };
    bool on = false;
    struct md_error err = {0};

    T_ASSERT_EQ(0, md_json_bind("", 0, MD_JSON_KEYS(k), &on, &err));
    T_ASSERT_TRUE(on);
    on = false;
    T_ASSERT_EQ(0, md_json_bind(" \n\t", 3, MD_JSON_KEYS(k), &on, &err));
    T_ASSERT_TRUE(on);
}

TEST(json_not_nul_terminated)
{
    static const struct md_json_key k[] = {{"n", MD_J_INT, 0, .required = false}};
    const char buf[] = {'{', '"', 'n', '"', ':', '4', '2', '}', '9'};
    int64_t n = 0;
    struct md_error err = {0};

    T_ASSERT_EQ(0, md_json_bind(buf, 8, MD_JSON_KEYS(k), &n, &err));
    T_ASSERT_EQ(42, n);
}

TEST(json_durations)
{
    static const struct {
        const char *doc;
        uint64_t ms;
    } ok[] = {
        {"{\"name\":\"x\",\"timeout\":\"250ms\"}", 250},
        {"{\"name\":\"x\",\"timeout\":\"1h\"}", 3600000},
        {"{\"name\":\"x\",\"timeout\":\"1m30s\"}", 90000},
        {"{\"name\":\"x\",\"timeout\":90}", 90000},
        {"{\"name\":\"x\",\"timeout\":0.25}", 250},
        {"{\"name\":\"x\",\"timeout\":\"45\"}", 45000},
    };

    for (size_t i = 0; i < MD_ARRAY_SIZE(ok); i++) {
        struct cfg c;
        struct md_error err;
        if (bind(ok[i].doc, &c, &err) != 0)
            T_FAIL("%s: %s", ok[i].doc, err.msg);
        T_ASSERT_EQ(ok[i].ms, c.timeout_ms);
        md_json_free(MD_JSON_KEYS(keys), &c);
    }
}

/* Every failure: its code and its whole message. */
TEST(json_errors_name_the_key_path)
{
    static const struct {
        const char *doc;
        int rc;
        const char *msg;
    } bad[] = {
        {"{}", MD_ECONFIG, "name: required"},
        {"[]", MD_ECONFIG, "(top level): expected an object"},
        {"{\"name\":1}", MD_ECONFIG, "name: expected a string"},
        {"{\"name\":\"x\",\"nme\":1}", MD_ECONFIG,
         "nme: unknown key (known: name, n, ratio, on, timeout, views, database, items, raw, "
         "mode, neg)"},
        {"{\"name\":\"x\",\"name\":\"y\"}", MD_ECONFIG, "name: given twice"},
        {"{\"name\":\"x\",\"n\":9}", MD_ECONFIG, "n: 9 is over the maximum 8"},
        {"{\"name\":\"x\",\"n\":0}", MD_ECONFIG, "n: 0 is under the minimum 1"},
        {"{\"name\":\"x\",\"n\":1.5}", MD_ECONFIG, "n: expected an integer"},
        {"{\"name\":\"x\",\"n\":\"3\"}", MD_ECONFIG, "n: expected an integer"},
        {"{\"name\":\"x\",\"n\":1e30}", MD_ECONFIG, "n: expected an integer"},
        {"{\"name\":\"x\",\"ratio\":1.5}", MD_ECONFIG, "ratio: 1.5 is over the maximum 1"},
        {"{\"name\":\"x\",\"ratio\":1e999}", MD_ECONFIG, "ratio: expected a finite number"},
        {"{\"name\":\"x\",\"on\":1}", MD_ECONFIG, "on: expected true or false"},
        {"{\"name\":\"x\",\"timeout\":\"5 minutes\"}", MD_ECONFIG,
         "timeout: expected a duration such as \"5s\" or \"30m\""},
        {"{\"name\":\"x\",\"timeout\":-1}", MD_ECONFIG,
         "timeout: expected a duration such as \"5s\" or \"30m\""},
        {"{\"name\":\"x\",\"timeout\":true}", MD_ECONFIG,
         "timeout: expected a duration such as \"5s\" or \"30m\""},
        {"{\"name\":\"x\",\"timeout\":\"2h\"}", MD_ECONFIG, "timeout: 2h is over the maximum 1h"},
        {"{\"name\":\"x\",\"database\":{\"timeout\":\"500ms\"}}", MD_ECONFIG,
         "database.timeout: 500ms is under the minimum 1s"},
        {"{\"name\":\"x\",\"database\":{\"uri\":\"u\"}}", MD_ECONFIG,
         "database.uri: unknown key (known: url, timeout)"},
        {"{\"name\":\"x\",\"database\":\"u\"}", MD_ECONFIG, "database: expected an object"},
        {"{\"name\":\"x\",\"views\":[\"a\",\"b\",3]}", MD_ECONFIG, "views[2]: expected a string"},
        {"{\"name\":\"x\",\"views\":{}}", MD_ECONFIG,
         "views: expected a string or an array of strings"},
        {"{\"name\":\"x\",\"views\":[\"a\",\"b\",\"c\",\"d\"]}", MD_ECONFIG,
         "views: 4 items, at most 3 allowed"},
        {"{\"name\":\"x\",\"items\":[{\"c\":\"a\"},{\"c\":\"b\",\"x\":11}]}", MD_ECONFIG,
         "items[1].x: 11 is over the maximum 10"},
        {"{\"name\":\"x\",\"items\":[{\"c\":\"a\"},{}]}", MD_ECONFIG, "items[1].c: required"},
        {"{\"name\":\"x\",\"items\":[{\"c\":\"a\",\"tags\":[\"t\",1]}]}", MD_ECONFIG,
         "items[0].tags[1]: expected a string"},
        {"{\"name\":\"x\",\"items\":[1]}", MD_ECONFIG, "items[0]: expected an object"},
        {"{\"name\":\"x\",\"items\":{}}", MD_ECONFIG, "items: expected an array of objects"},
        {"{\"name\":\"x\",\"items\":[{},{},{},{},{}]}", MD_ECONFIG,
         "items: 5 items, at most 4 allowed"},
        {"{\"name\":\"x\",\"mode\":\"slow\"}", MD_ECONFIG,
         "mode: \"slow\" is not one of fast, safe"},
        {"{\"name\":\"x\",}", MD_EPARSE, "invalid JSON at byte offset 12 (line 1, column 13)"},
        {"{\n  \"name\": \"x\"\n  \"n\": 1}", MD_EPARSE,
         "invalid JSON at byte offset 18 (line 3, column 3)"},
        {"{\"name\":\"x\"} x", MD_EPARSE,
         "text after the JSON document at byte offset 13 (line 1, column 14)"},
    };

    for (size_t i = 0; i < MD_ARRAY_SIZE(bad); i++) {
        struct cfg c;
        struct md_error err;
        int rc = bind(bad[i].doc, &c, &err);
        if (rc != bad[i].rc || strcmp(err.msg, bad[i].msg) != 0)
            T_FAIL("%s: got %d \"%s\", want %d \"%s\"", bad[i].doc, rc, err.msg, bad[i].rc,
                   bad[i].msg);
        md_json_free(MD_JSON_KEYS(keys), &c); /* partial results: ASan checks the frees */
    }
}

TEST(json_syntax_error_column_is_the_byte_position)
{
    struct cfg c;
    struct md_error err;

    T_ASSERT_EQ(MD_EPARSE, bind("{\"name\":\"x\",}", &c, &err));
    T_ASSERT_EQ(13, err.col);
    T_ASSERT_EQ(0, err.line);
}

TEST(json_single_string_as_list)
{
    struct cfg c;
    struct md_error err;

    T_ASSERT_EQ(0, bind("{\"name\":\"x\",\"views\":\"mv_sales\"}", &c, &err));
    T_ASSERT_EQ(1, c.views.n);
    T_ASSERT_STREQ("mv_sales", c.views.v[0]);
    T_ASSERT_TRUE(c.views.v[1] == NULL);
    md_json_free(MD_JSON_KEYS(keys), &c);
}

/* A failure late in the document leaves strings, lists and array elements already set: the
 * free must release them all (ASan/LeakSanitizer in the sanitizer build) and zero them. */
TEST(json_free_partial_result)
{
    struct cfg c;
    struct md_error err;

    T_ASSERT_EQ(MD_ECONFIG,
                bind("{\"name\":\"x\",\"views\":[\"a\",\"b\"],\"raw\":[1],\"items\":[{\"c\":\"a\","
                     "\"tags\":[\"t\"]},{\"c\":\"b\",\"tags\":[\"u\",2]},{\"c\":\"c\"}]}",
                     &c, &err));
    T_ASSERT_STREQ("items[1].tags[1]: expected a string", err.msg);
    T_ASSERT_STREQ("x", c.name);
    T_ASSERT_EQ(3, c.items.n);
    md_json_free(MD_JSON_KEYS(keys), &c);
    T_ASSERT_TRUE(c.items.v == NULL && c.items.n == 0 && c.name == NULL);
    md_json_free(MD_JSON_KEYS(keys), &c); /* twice, and on a zeroed struct: harmless */
}

/* Limits print as the numbers they are, not in %g's exponent form ("1e+06"). */
TEST(json_large_limits_read_plainly)
{
    static const struct md_json_key k[] = {
        {"rows", MD_J_INT, 0, .min = 1, .max = 5000000},
    };
    int64_t rows = 0;
    struct md_error err = {0};
    const char *doc = "{\"rows\":12345678}";

    T_ASSERT_EQ(MD_ECONFIG, md_json_bind(doc, strlen(doc), MD_JSON_KEYS(k), &rows, &err));
    T_ASSERT_STREQ("rows: 12345678 is over the maximum 5000000", err.msg);
}

TEST(json_bad_default_is_reported)
{
    static const struct md_json_key k[] = {{"n", MD_J_INT, 0, .def = "three"}};
    int64_t n = 0;
    struct md_error err = {0};

    T_ASSERT_EQ(MD_ECONFIG, md_json_bind("{}", 2, MD_JSON_KEYS(k), &n, &err));
    T_ASSERT_CONTAINS(err.msg, "n: the key table's default is not JSON");
}

T_MAIN()
