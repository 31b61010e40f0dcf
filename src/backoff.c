#include "brw/backoff.h"

void brw_rng_seed(brw_rng_t *rng, uint64_t seed) {
  rng->s = seed ? seed : 0x9E3779B97F4A7C15ull;
}

/* splitmix64: fast, good enough for jitter, and never stuck at zero. */
uint64_t brw_rng_next(brw_rng_t *rng) {
  uint64_t z = (rng->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double brw_rng_unit(brw_rng_t *rng) {
  return (double)(brw_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t brw_backoff_ms(uint64_t min_ms, uint64_t max_ms, unsigned attempt,
                        double jitter, brw_rng_t *rng) {
  if (max_ms < min_ms)
    max_ms = min_ms;
  uint64_t base = min_ms ? min_ms : 1;
  for (unsigned i = 0; i < attempt && base < max_ms; i++)
    base = base > max_ms / 2 ? max_ms : base * 2;
  if (base > max_ms)
    base = max_ms;
  if (jitter < 0)
    jitter = 0;
  if (jitter > 1)
    jitter = 1;
  uint64_t cut = (uint64_t)((double)base * jitter * brw_rng_unit(rng));
  uint64_t d = base - cut;
  return d < min_ms ? min_ms : d;
}
