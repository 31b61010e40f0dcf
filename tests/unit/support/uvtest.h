/* Loop helpers shared by the unit tests that run a real libuv loop. */
#ifndef BRW_UVTEST_H
#define BRW_UVTEST_H

#include <stdint.h>
#include <uv.h>

/* A condition checked between loop iterations: 1 when it holds. */
typedef int (*uvtest_pred_fn)(void *ctx, const void *arg);

/* Runs `loop` one iteration at a time until pred(ctx, arg) holds (returns
 * 1) or max_ms passed (returns 0); pred NULL just runs for max_ms. `tick` is
 * an initialised timer of the loop, started every 5 ms meanwhile so that
 * the condition is re-checked even when nothing else happens, and stopped
 * before returning. */
int uvtest_run_until(uv_loop_t *loop, uv_timer_t *tick, uvtest_pred_fn pred,
                     void *ctx, const void *arg, uint64_t max_ms);

#endif
