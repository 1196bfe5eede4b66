/* t.h - the tiny test runner.
 *
 * TEST(name) { ... } registers a test; T_MAIN() runs them all (or those named on the command
 * line) and exits 0, 1 on any failure, or 77 (ctest SKIP_RETURN_CODE) when every test skipped.
 * Assertions print both values with file:line and end the current test.
 */
#ifndef MESHD_TESTS_T_H
#define MESHD_TESTS_T_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct t_case {
    const char *name;
    void (*fn)(void);
};

#define T_MAX_CASES 512
static struct t_case t_cases[T_MAX_CASES];
static int t_ncases;
static jmp_buf t_jmp;
static int t_failed_now, t_skipped_now;

static inline void t_register(const char *name, void (*fn)(void))
{
    if (t_ncases == T_MAX_CASES) {
        fprintf(stderr, "t.h: too many tests\n");
        exit(2);
    }
    t_cases[t_ncases].name = name;
    t_cases[t_ncases].fn = fn;
    t_ncases++;
}

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void t_reg_##name(void)                                    \
    {                                                                                              \
        t_register(#name, test_##name);                                                            \
    }                                                                                              \
    static void test_##name(void)

#define T_FAIL(...)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        t_failed_now = 1;                                                                          \
        longjmp(t_jmp, 1);                                                                         \
    } while (0)

#define T_SKIP(why)                                                                                \
    do {                                                                                           \
        fprintf(stderr, "  skip: %s\n", (why));                                                    \
        t_skipped_now = 1;                                                                         \
        longjmp(t_jmp, 1);                                                                         \
    } while (0)

#define T_ASSERT_TRUE(c)                                                                           \
    do {                                                                                           \
        if (!(c))                                                                                  \
            T_FAIL("assertion failed: %s", #c);                                                    \
    } while (0)
#define T_ASSERT_FALSE(c) T_ASSERT_TRUE(!(c))

#define T_ASSERT_EQ(a, b)                                                                          \
    do {                                                                                           \
        int64_t t_a_ = (int64_t)(a), t_b_ = (int64_t)(b);                                          \
        if (t_a_ != t_b_)                                                                          \
            T_FAIL("%s == %s: %lld != %lld", #a, #b, (long long)t_a_, (long long)t_b_);            \
    } while (0)
#define T_ASSERT_NE(a, b)                                                                          \
    do {                                                                                           \
        int64_t t_a_ = (int64_t)(a), t_b_ = (int64_t)(b);                                          \
        if (t_a_ == t_b_)                                                                          \
            T_FAIL("%s != %s: both %lld", #a, #b, (long long)t_a_);                                \
    } while (0)
#define T_ASSERT_STREQ(a, b)                                                                       \
    do {                                                                                           \
        const char *t_a_ = (a), *t_b_ = (b);                                                       \
        if (t_a_ == NULL || t_b_ == NULL || strcmp(t_a_, t_b_) != 0)                               \
            T_FAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, t_a_ ? t_a_ : "(null)",                   \
                   t_b_ ? t_b_ : "(null)");                                                        \
    } while (0)
#define T_ASSERT_CONTAINS(hay, needle)                                                             \
    do {                                                                                           \
        const char *t_h_ = (hay), *t_n_ = (needle);                                                \
        if (t_h_ == NULL || strstr(t_h_, t_n_) == NULL)                                            \
            T_FAIL("\"%s\" does not contain \"%s\"", t_h_ ? t_h_ : "(null)", t_n_);                \
    } while (0)

/* The throwaway PostgreSQL cluster's superuser conninfo (MESHD_TEST_PG, which ctest sets for the
 * tests declared with `pg` in CMakeLists.txt).  Without it the current test skips, or fails when
 * MESHD_REQUIRE_PG=1 (make test sets it: there, a PostgreSQL test that ctest gives no cluster is
 * a mistake in its declaration, not a reason to skip).  Never returns NULL or "". */
static inline const char *t_pg_conninfo(void)
{
    const char *ci = getenv("MESHD_TEST_PG");
    const char *req = getenv("MESHD_REQUIRE_PG");

    if (ci != NULL && ci[0] != '\0')
        return ci;
    if (req != NULL && strcmp(req, "1") == 0)
        T_FAIL("needs PostgreSQL but ctest gave it no cluster (MESHD_TEST_PG is not set, "
               "MESHD_REQUIRE_PG=1): declare it with `pg` in its md_test() line in CMakeLists.txt");
    T_SKIP("MESHD_TEST_PG is not set (no throwaway PostgreSQL)");
    return NULL; /* not reached */
}

static inline int t_main(int argc, char **argv)
{
    /* volatile: these live across setjmp/longjmp (-Wclobbered). */
    volatile int failed = 0, skipped = 0, ran = 0;

    for (volatile int i = 0; i < t_ncases; i++) {
        if (argc > 1) {
            int want = 0;
            for (int j = 1; j < argc; j++)
                want |= strcmp(argv[j], t_cases[i].name) == 0;
            if (!want)
                continue;
        }
        t_failed_now = t_skipped_now = 0;
        fprintf(stderr, "[ RUN  ] %s\n", t_cases[i].name);
        if (setjmp(t_jmp) == 0)
            t_cases[i].fn();
        ran++;
        if (t_failed_now) {
            failed++;
            fprintf(stderr, "[ FAIL ] %s\n", t_cases[i].name);
        } else if (t_skipped_now) {
            skipped++;
            fprintf(stderr, "[ SKIP ] %s\n", t_cases[i].name);
        } else {
            fprintf(stderr, "[  OK  ] %s\n", t_cases[i].name);
        }
    }
    printf("%d passed, %d failed, %d skipped\n", ran - failed - skipped, failed, skipped);
    if (failed)
        return 1;
    if (ran > 0 && skipped == ran)
        return 77;
    return 0;
}

#define T_MAIN()                                                                                   \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return t_main(argc, argv);                                                                 \
    }

#endif
