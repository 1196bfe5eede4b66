/* test_history.c - history.h: the output tail ring, the run records, alerts, histograms. */
#include <stdio.h>

#include "history.h"
#include "meshd/md_alloc.h"
#include "t.h"

static void push(struct sup_tail *t, const char *s)
{
    sup_tail_push(t, s, strlen(s), 8192);
}

TEST(tail_keeps_the_last_lines_oldest_first)
{
    struct sup_tail t;
    char line[32];

    memset(&t, 0, sizeof t);
    T_ASSERT_EQ(t.n, 0);
    T_ASSERT_TRUE(sup_tail_line(&t, 0) == NULL);
    push(&t, "one");
    push(&t, "two");
    T_ASSERT_EQ(t.n, 2);
    T_ASSERT_STREQ(sup_tail_line(&t, 0), "one");
    T_ASSERT_STREQ(sup_tail_line(&t, 1), "two");
    T_ASSERT_TRUE(sup_tail_line(&t, 2) == NULL);
    for (int i = 0; i < 45; i++) {
        snprintf(line, sizeof line, "line %d", i);
        push(&t, line);
    }
    T_ASSERT_EQ(t.n, SUP_TAIL_LINES);
    T_ASSERT_STREQ(sup_tail_line(&t, 0), "line 25");
    T_ASSERT_STREQ(sup_tail_line(&t, SUP_TAIL_LINES - 1), "line 44");
    T_ASSERT_TRUE(sup_tail_line(&t, SUP_TAIL_LINES) == NULL);
    sup_tail_clear(&t);
    T_ASSERT_EQ(t.n, 0);
    T_ASSERT_TRUE(t.line[0] == NULL);
}

TEST(tail_escapes_and_cuts_lines)
{
    struct sup_tail t;
    char big[300];

    memset(&t, 0, sizeof t);
    sup_tail_push(&t, "a\x1b[31mb\n", 8, 8192);
    T_ASSERT_STREQ(sup_tail_line(&t, 0), "a\\x1b[31mb\\n");
    memset(big, 'x', sizeof big);
    sup_tail_push(&t, big, sizeof big, 200); /* cut at 200 bytes */
    T_ASSERT_EQ(strlen(sup_tail_line(&t, 1)), 200);
    /* a slot's buffer is reused: a short line after a long one in the same slot */
    for (int i = 0; i < SUP_TAIL_LINES - 1; i++)
        push(&t, "s");
    T_ASSERT_STREQ(sup_tail_line(&t, SUP_TAIL_LINES - 1), "s");
    T_ASSERT_EQ(strlen(sup_tail_line(&t, 0)), 200);
    sup_tail_clear(&t);
}

TEST(tail_move_leaves_the_source_empty_and_usable)
{
    struct sup_tail a;
    struct sup_lines b;
    char line[16];

    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    push(&a, "kept");
    sup_tail_move(&b, &a);
    T_ASSERT_EQ(a.n, 0);
    T_ASSERT_TRUE(a.line[0] == NULL && a.cap[0] == 0);
    T_ASSERT_EQ(b.n, 1);
    T_ASSERT_STREQ(b.line[0], "kept");
    push(&a, "new");
    T_ASSERT_STREQ(sup_tail_line(&a, 0), "new");
    T_ASSERT_STREQ(b.line[0], "kept");
    sup_lines_clear(&b);
    /* A wrapped ring moves oldest first. */
    for (int i = 0; i < SUP_TAIL_LINES + 3; i++) {
        snprintf(line, sizeof line, "l%d", i);
        push(&a, line);
    }
    sup_tail_move(&b, &a);
    T_ASSERT_EQ(b.n, SUP_TAIL_LINES);
    T_ASSERT_STREQ(b.line[0], "l3"); /* "new" and l0..l2 went */
    T_ASSERT_STREQ(b.line[SUP_TAIL_LINES - 1], "l22");
    sup_lines_clear(&b);
    sup_tail_clear(&a);
}

TEST(history_keeps_the_last_runs)
{
    struct sup_history h;

    memset(&h, 0, sizeof h);
    T_ASSERT_TRUE(sup_history_last(&h) == NULL);
    for (int i = 0; i < 8; i++) {
        struct sup_run_rec *r = sup_history_add(&h);
        snprintf(r->run_id, sizeof r->run_id, "run%d", i);
        r->status = i % 2 ? RUN_FAILED : RUN_SUCCEEDED;
        r->lines.line[r->lines.n++] = md_xstrdup(r->run_id); /* freed when the record is reused */
    }
    T_ASSERT_EQ(h.n, SUP_RUN_HISTORY);
    T_ASSERT_STREQ(sup_history_run(&h, 0)->run_id, "run3");
    T_ASSERT_STREQ(sup_history_last(&h)->run_id, "run7");
    T_ASSERT_STREQ(sup_history_last(&h)->lines.line[0], "run7");
    T_ASSERT_STREQ(sup_run_status_name(sup_history_last(&h)->status), "failed");
    T_ASSERT_TRUE(sup_history_run(&h, SUP_RUN_HISTORY) == NULL);
    sup_history_free(&h);
    T_ASSERT_EQ(h.n, 0);
}

TEST(alerts_update_resolve_and_stay_bounded)
{
    struct sup_history h;
    char key[16];

    memset(&h, 0, sizeof h);
    sup_history_alert(&h, "disk", "90%", 2, 1000);
    sup_history_alert(&h, "disk", NULL, 3, 5000); /* a repeat updates, keeps when it opened */
    T_ASSERT_EQ(h.nalerts, 1);
    T_ASSERT_STREQ(h.alerts->message, "");
    T_ASSERT_EQ(h.alerts->severity, 3);
    T_ASSERT_EQ(h.alerts->opened_ms, 1000);
    sup_history_resolve(&h, "nope");
    T_ASSERT_EQ(h.nalerts, 1);
    sup_history_resolve(&h, "disk");
    T_ASSERT_EQ(h.nalerts, 0);
    T_ASSERT_TRUE(h.alerts == NULL);
    for (int i = 0; i < SUP_ALERTS_MAX + 3; i++) {
        snprintf(key, sizeof key, "k%d", i);
        sup_history_alert(&h, key, "m", 1, i);
    }
    T_ASSERT_EQ(h.nalerts, SUP_ALERTS_MAX);
    T_ASSERT_STREQ(h.alerts->key, "k66"); /* newest first; k0..k2 went */
    for (const struct sup_alert *a = h.alerts; a != NULL; a = a->next)
        T_ASSERT_TRUE(strcmp(a->key, "k0") != 0 && strcmp(a->key, "k2") != 0);
    sup_history_free(&h);
}

TEST(histogram_buckets)
{
    struct sup_history h;

    memset(&h, 0, sizeof h);
    T_ASSERT_EQ(sup_bucket_of(0.0, sup_dur_bounds, SUP_DUR_BUCKETS - 1), 0);
    T_ASSERT_EQ(sup_bucket_of(0.1, sup_dur_bounds, SUP_DUR_BUCKETS - 1), 0); /* le="0.1" */
    T_ASSERT_EQ(sup_bucket_of(0.11, sup_dur_bounds, SUP_DUR_BUCKETS - 1), 1);
    T_ASSERT_EQ(sup_bucket_of(1e9, sup_dur_bounds, SUP_DUR_BUCKETS - 1), SUP_DUR_BUCKETS - 1);
    T_ASSERT_EQ(sup_bucket_of(0.003, sup_lag_bounds, SUP_LAG_BUCKETS - 1), 2);
    sup_history_duration(&h, 2.0);
    sup_history_duration(&h, 8000.0);
    T_ASSERT_EQ(h.dur_bucket[3], 1);
    T_ASSERT_EQ(h.dur_bucket[SUP_DUR_BUCKETS - 1], 1);
    T_ASSERT_EQ(h.dur_count, 2);
}

TEST(run_status_names_are_the_registry_s)
{
    T_ASSERT_STREQ(sup_run_status_name(RUN_SUCCEEDED), "succeeded");
    T_ASSERT_STREQ(sup_run_status_name(RUN_FAILED), "failed");
    T_ASSERT_STREQ(sup_run_status_name(RUN_TIMED_OUT), "timed_out");
    T_ASSERT_STREQ(sup_run_status_name(RUN_STOPPED), "stopped");
    T_ASSERT_STREQ(sup_run_status_name(RUN_UNKNOWN), "unknown");
    T_ASSERT_STREQ(sup_run_status_name(RUN_ABANDONED), "abandoned");
}

T_MAIN()
