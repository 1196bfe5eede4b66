/* test_pq.c - md_pq.h: a connection string's target, in both forms, never with the password;
 * which URL a tool uses; the blocking connect's failures (no server needed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meshd/md_alloc.h"
#include "meshd/md_err.h"
#include "meshd/md_pq.h"
#include "t.h"

static void target_is(const char *conninfo, enum md_pq_form form, const char *want)
{
    char *got = md_pq_target(conninfo, form);

    T_ASSERT_STREQ(want, got);
    T_ASSERT_TRUE(strstr(got, "hunter2") == NULL);
    md_free(got);
}

TEST(pq_target_url_form)
{
    target_is("host=db port=5433 dbname=meshd user=ops password=hunter2", MD_PQ_TARGET_URL,
              "ops@db:5433/meshd");
    target_is("postgresql://ops:hunter2@db.example:5432/reg", MD_PQ_TARGET_URL,
              "ops@db.example:5432/reg");
    target_is("host=/run/pg dbname=x", MD_PQ_TARGET_URL, "/run/pg/x");
    target_is("password=hunter2", MD_PQ_TARGET_URL, "(default host)/(default db)");
    target_is("", MD_PQ_TARGET_URL, "(default host)/(default db)");
    /* hostaddr is not shown in this form; an empty value counts as unset. */
    target_is("hostaddr=10.0.0.1 user='' dbname=d", MD_PQ_TARGET_URL, "(default host)/d");
}

TEST(pq_target_conninfo_form)
{
    target_is("host=db port=5433 dbname=meshd user=ops password=hunter2", MD_PQ_TARGET_CONNINFO,
              "host=db port=5433 dbname=meshd user=ops");
    target_is("postgresql://ops:hunter2@db.example/reg", MD_PQ_TARGET_CONNINFO,
              "host=db.example dbname=reg user=ops");
    target_is("hostaddr=10.0.0.1 dbname=d", MD_PQ_TARGET_CONNINFO, "host=10.0.0.1 dbname=d");
    target_is("host=h hostaddr=10.0.0.1", MD_PQ_TARGET_CONNINFO, "host=h");
    target_is("password=hunter2", MD_PQ_TARGET_CONNINFO, "(libpq defaults)");
}

TEST(pq_target_conninfo_form_capped)
{
    char conninfo[700], want[600];

    /* 511 bytes at most: the part that goes past them is cut, the parts after it left out. */
    snprintf(conninfo, sizeof conninfo, "host=%0480d port=1 dbname=%030d user=u", 0, 0);
    snprintf(want, sizeof want, "host=%0480d port=1 dbname=%030d", 0, 0);
    want[511] = '\0';
    target_is(conninfo, MD_PQ_TARGET_CONNINFO, want);
}

TEST(pq_target_invalid)
{
    /* libpq's parse error would quote the string: only say that it is bad. */
    target_is("host=db password='hunter2", MD_PQ_TARGET_URL, "(invalid connection string)");
    target_is("not a conninfo hunter2", MD_PQ_TARGET_CONNINFO, "(invalid connection string)");
}

TEST(pq_url_fallbacks)
{
    T_ASSERT_EQ(0, unsetenv("DATABASE_URL"));
    T_ASSERT_TRUE(md_pq_url(NULL, NULL) == NULL);
    T_ASSERT_STREQ("fb", md_pq_url(NULL, "fb"));
    T_ASSERT_STREQ("u", md_pq_url("u", "fb"));
    T_ASSERT_TRUE(md_pq_url(NULL, "") == NULL);
    T_ASSERT_EQ(0, setenv("DATABASE_URL", "env", 1));
    T_ASSERT_STREQ("env", md_pq_url(NULL, "fb"));
    T_ASSERT_STREQ("u", md_pq_url("u", "fb"));
    /* An empty url is not replaced by $DATABASE_URL, only by fallback. */
    T_ASSERT_TRUE(md_pq_url("", NULL) == NULL);
    T_ASSERT_STREQ("fb", md_pq_url("", "fb"));
    T_ASSERT_EQ(0, setenv("DATABASE_URL", "", 1));
    T_ASSERT_STREQ("fb", md_pq_url(NULL, "fb"));
    T_ASSERT_TRUE(md_pq_url(NULL, NULL) == NULL);
    T_ASSERT_EQ(0, unsetenv("DATABASE_URL"));
}

TEST(pq_connect_bad_url)
{
    PGconn *conn = (PGconn *)&conn;
    char *why = NULL;

    T_ASSERT_EQ(MD_ECONFIG, md_pq_connect("host=h password='hunter2", NULL, &conn, &why));
    T_ASSERT_TRUE(conn == NULL);
    T_ASSERT_STREQ("the database URL is not a valid libpq connection string", why);
    md_free(why);
}

TEST(pq_connect_no_server)
{
    PGconn *conn = (PGconn *)&conn;
    char *why = NULL;

    /* libpq's own message, whole (it ends with a newline), for both ways of connecting. */
    T_ASSERT_EQ(MD_EDB, md_pq_connect("host=/nonexistent/sock dbname=x password=hunter2", NULL,
                                      &conn, &why));
    T_ASSERT_TRUE(conn == NULL);
    T_ASSERT_CONTAINS(why, "/nonexistent/sock/.s.PGSQL.5432");
    T_ASSERT_TRUE(why[strlen(why) - 1] == '\n');
    T_ASSERT_TRUE(strstr(why, "hunter2") == NULL);
    md_free(why);
    T_ASSERT_EQ(MD_EDB,
                md_pq_connect("postgresql://u:hunter2@%2Fnonexistent%2Fsock/x", "10", &conn, &why));
    T_ASSERT_TRUE(conn == NULL);
    T_ASSERT_CONTAINS(why, "/nonexistent/sock/.s.PGSQL.5432");
    T_ASSERT_TRUE(strstr(why, "hunter2") == NULL);
    md_free(why);
}

T_MAIN()
