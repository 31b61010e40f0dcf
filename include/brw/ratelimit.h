/* A per-account request rate limit (SPEC §5 `api.rate_limit`).
 *
 * A token bucket in which every token comes back exactly one window after it
 * was spent (a sliding-window log): with a rate of r requests per second
 * (r >= 1) at most floor(r) requests start in ANY one-second window, so the
 * API never sees more than the configured rate, however it measures, while
 * bursts up to floor(r) are still allowed after a quiet second. A fractional
 * part of a rate above 1 is dropped (2.5 allows 2 per second); a rate below
 * 1 allows one request per 1/r seconds. */
#ifndef BRW_RATELIMIT_H
#define BRW_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t *sent;   /* ring of the start times of the last `n` requests */
  size_t n;         /* requests allowed per window */
  size_t head;      /* oldest entry */
  size_t count;     /* entries used */
  uint64_t window;  /* ms */
} brw_ratelimit_t;

/* The lowest rate: one request per 1000 s. api.rate_limit refuses less at
 * load, and brw_ratelimit_init raises a lower rate to it, so the window
 * (1000 / rate ms) stays far inside uint64 (1e-300 made llround overflow). */
#define BRW_RATELIMIT_MIN 0.001

/* Returns 0, BRW_EINVAL (rate not > 0, or NaN) or BRW_ENOMEM; a rate below
 * BRW_RATELIMIT_MIN counts as BRW_RATELIMIT_MIN. brw_ratelimit_free
 * releases. */
int brw_ratelimit_init(brw_ratelimit_t *rl, double rate);
void brw_ratelimit_free(brw_ratelimit_t *rl);

/* Takes a slot at monotonic time `now_ms` (never decreasing): returns 0 when
 * the request may start now (the slot is used), or the number of ms until
 * one is free (nothing is used). */
uint64_t brw_ratelimit_take(brw_ratelimit_t *rl, uint64_t now_ms);

#endif
