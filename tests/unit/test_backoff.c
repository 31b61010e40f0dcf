#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/backoff.h"

static void test_bounds(void **state) {
  brw_rng_t rng;
  brw_rng_seed(&rng, 42);
  for (unsigned attempt = 0; attempt < 70; attempt++) {
    for (int i = 0; i < 200; i++) {
      uint64_t d = brw_backoff_ms(15000, 600000, attempt, 0.2, &rng);
      assert_in_range(d, 15000, 600000);
    }
  }
}

static void test_growth_without_jitter(void **state) {
  brw_rng_t rng;
  brw_rng_seed(&rng, 1);
  assert_int_equal(brw_backoff_ms(1000, 300000, 0, 0, &rng), 1000);
  assert_int_equal(brw_backoff_ms(1000, 300000, 1, 0, &rng), 2000);
  assert_int_equal(brw_backoff_ms(1000, 300000, 5, 0, &rng), 32000);
  assert_int_equal(brw_backoff_ms(1000, 300000, 9, 0, &rng), 300000);
  assert_int_equal(brw_backoff_ms(1000, 300000, 1000, 0, &rng), 300000);
}

/* Jitter spreads values over [base*(1-j), base]; the spread must be real. */
static void test_jitter_spreads(void **state) {
  brw_rng_t rng;
  brw_rng_seed(&rng, 7);
  uint64_t lo = UINT64_MAX, hi = 0;
  double sum = 0;
  const int n = 10000;
  for (int i = 0; i < n; i++) {
    uint64_t d = brw_backoff_ms(1000, 1000000, 4, 0.5, &rng); /* base 16000 */
    assert_in_range(d, 8000, 16000);
    lo = d < lo ? d : lo;
    hi = d > hi ? d : hi;
    sum += (double)d;
  }
  assert_true(lo < 8500);
  assert_true(hi > 15500);
  double mean = sum / n;
  assert_true(mean > 11500 && mean < 12500);
}

static void test_rng_unit_range(void **state) {
  brw_rng_t rng;
  brw_rng_seed(&rng, 0);
  for (int i = 0; i < 100000; i++) {
    double u = brw_rng_unit(&rng);
    assert_true(u >= 0.0 && u < 1.0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_growth_without_jitter),
      cmocka_unit_test(test_jitter_spreads),
      cmocka_unit_test(test_rng_unit_range),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
