/* Backoff with jitter (SPEC §5), and the deterministic PRNG it uses. */
#ifndef BRW_BACKOFF_H
#define BRW_BACKOFF_H

#include <stdint.h>

/* xorshift-style PRNG state; seed it with anything non-zero. */
typedef struct {
  uint64_t s;
} brw_rng_t;

void brw_rng_seed(brw_rng_t *rng, uint64_t seed);
uint64_t brw_rng_next(brw_rng_t *rng);
/* Uniform in [0, 1). */
double brw_rng_unit(brw_rng_t *rng);

/* The delay before attempt number `attempt` (0 for the first retry or poll):
 * min * 2^attempt, capped at max, then reduced by up to `jitter` (0..1) of
 * itself at random, and never below min. So every result lies in
 * [min, max], and successive attempts spread out instead of arriving in
 * lock-step. */
uint64_t brw_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned attempt,
                        double jitter, brw_rng_t *rng);

#endif
