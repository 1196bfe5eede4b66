/* looptest.h - run a libuv loop until a condition holds, for the unit tests that drive a real
 * loop (test_db, test_sup).  Header-only, static: include it once per test binary. */
#ifndef MESHD_TESTS_LOOPTEST_H
#define MESHD_TESTS_LOOPTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

static void looptest_tick(uv_timer_t *t)
{
    (void)t; /* only there so UV_RUN_ONCE returns often enough to look at the condition */
}

/* Runs the loop until pred(arg) holds or ms pass; returns whether it held.  A 5 ms tick keeps
 * the loop turning when nothing else happens. */
static inline bool run_until(uv_loop_t *loop, bool (*pred)(void *), void *arg, uint64_t ms)
{
    uv_timer_t tick;
    uint64_t deadline;
    bool ok = false;

    uv_update_time(loop);
    deadline = uv_now(loop) + ms;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, looptest_tick, 5, 5);
    while (uv_now(loop) < deadline) {
        if (pred(arg)) {
            ok = true;
            break;
        }
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

#endif
