#include "brw/ratelimit.h"
#include "brw/error.h"

#include <math.h>
#include <stdlib.h>

int brw_ratelimit_init(brw_ratelimit_t *rl, double rate) {
  if (!(rate > 0))
    return BRW_EINVAL;
  if (rate < BRW_RATELIMIT_MIN)
    rate = BRW_RATELIMIT_MIN;
  if (rate >= 1) {
    /* floor(rate) requests per second: a fractional part is dropped, since
     * spreading it over a longer window would let more than `rate` start
     * within some one-second window. */
    double n = floor(rate);
    rl->n = n > 100000 ? 100000 : (size_t)n;
    rl->window = 1000;
  } else {
    rl->n = 1;
    rl->window = (uint64_t)llround(1000.0 / rate);
  }
  rl->head = 0;
  rl->count = 0;
  rl->sent = calloc(rl->n, sizeof(*rl->sent));
  return rl->sent ? 0 : BRW_ENOMEM;
}

void brw_ratelimit_free(brw_ratelimit_t *rl) {
  free(rl->sent);
  rl->sent = NULL;
}

uint64_t brw_ratelimit_take(brw_ratelimit_t *rl, uint64_t now_ms) {
  if (rl->count < rl->n) {
    rl->sent[(rl->head + rl->count) % rl->n] = now_ms;
    rl->count++;
    return 0;
  }
  uint64_t oldest = rl->sent[rl->head];
  uint64_t age = now_ms >= oldest ? now_ms - oldest : 0;
  if (age < rl->window)
    return rl->window - age;
  /* The oldest slot has come back: reuse it for this request. */
  rl->sent[rl->head] = now_ms;
  rl->head = (rl->head + 1) % rl->n;
  return 0;
}
