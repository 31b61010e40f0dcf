#include "uvtest.h"

static void on_tick(uv_timer_t *t) {
  (void)t;
}

int uvtest_run_until(uv_loop_t *loop, uv_timer_t *tick, uvtest_pred_fn pred,
                     void *ctx, const void *arg, uint64_t max_ms) {
  uv_update_time(loop);
  uint64_t deadline = uv_now(loop) + max_ms;
  uv_timer_start(tick, on_tick, 5, 5);
  int ok = 1;
  while (!pred || !pred(ctx, arg)) {
    uv_update_time(loop);
    if (uv_now(loop) >= deadline) {
      ok = 0;
      break;
    }
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_timer_stop(tick);
  return ok;
}
