#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/ratelimit.h"

#include <math.h>

/* Drives a limiter with a greedy client (a request whenever allowed) over
 * `ms` milliseconds and returns the largest number of requests seen in any
 * sliding window of 1000 ms, and the total in *total. */
static size_t max_per_second(double rate, uint64_t ms, size_t *total) {
  brw_ratelimit_t rl;
  assert_int_equal(brw_ratelimit_init(&rl, rate), 0);
  static uint64_t starts[200000];
  size_t n = 0;
  for (uint64_t t = 1000; t < 1000 + ms && n < 200000;) {
    uint64_t wait = brw_ratelimit_take(&rl, t);
    if (wait == 0)
      starts[n++] = t; /* another request at the same ms may follow */
    else
      t += wait;
  }
  brw_ratelimit_free(&rl);
  size_t best = 0, lo = 0;
  for (size_t hi = 0; hi < n; hi++) {
    while (starts[hi] - starts[lo] >= 1000)
      lo++;
    if (hi - lo + 1 > best)
      best = hi - lo + 1;
  }
  *total = n;
  return best;
}

static void test_never_exceeds_rate(void **state) {
  size_t total;
  assert_int_equal(max_per_second(20, 10000, &total), 20);
  assert_in_range(total, 199, 201); /* the full rate is used, too */
  assert_int_equal(max_per_second(1, 10000, &total), 1);
  assert_in_range(total, 10, 10);
  /* 2.5/s: the fraction is dropped, never 3 in a second. */
  assert_int_equal(max_per_second(2.5, 20000, &total), 2);
  assert_in_range(total, 39, 41);
}

static void test_slow_rate(void **state) {
  size_t total;
  /* 0.5/s: one request every 2 s. */
  assert_int_equal(max_per_second(0.5, 10000, &total), 1);
  assert_in_range(total, 5, 5);
}

static void test_wait_time(void **state) {
  brw_ratelimit_t rl;
  assert_int_equal(brw_ratelimit_init(&rl, 2), 0);
  assert_int_equal(brw_ratelimit_take(&rl, 100), 0);
  assert_int_equal(brw_ratelimit_take(&rl, 300), 0);
  /* Both slots used: the first comes back at 1100. */
  assert_int_equal(brw_ratelimit_take(&rl, 400), 700);
  assert_int_equal(brw_ratelimit_take(&rl, 1099), 1);
  assert_int_equal(brw_ratelimit_take(&rl, 1100), 0);
  assert_int_equal(brw_ratelimit_take(&rl, 1100), 200);
  brw_ratelimit_free(&rl);
  assert_int_equal(brw_ratelimit_init(&rl, 0), BRW_EINVAL);
  assert_int_equal(brw_ratelimit_init(&rl, -1), BRW_EINVAL);
}

/* A tiny rate made 1000 / rate overflow llround (1e-300 gives 1e303 ms):
 * the window came out as 2^63 or garbage. It is clamped to the lowest rate,
 * one request per 1000 s. */
static void test_tiny_rate(void **state) {
  (void)state;
  const double rates[] = {1e-300, 4.9e-324, 1e-9, BRW_RATELIMIT_MIN};
  for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
    brw_ratelimit_t rl;
    assert_int_equal(brw_ratelimit_init(&rl, rates[i]), 0);
    assert_int_equal(rl.n, 1);
    assert_int_equal(rl.window, 1000000);
    assert_int_equal(brw_ratelimit_take(&rl, 5000), 0);
    assert_int_equal(brw_ratelimit_take(&rl, 5001), 999999);
    assert_int_equal(brw_ratelimit_take(&rl, 1005000), 0);
    brw_ratelimit_free(&rl);
  }
  brw_ratelimit_t rl;
  assert_int_equal(brw_ratelimit_init(&rl, 0), BRW_EINVAL);
  assert_int_equal(brw_ratelimit_init(&rl, -1), BRW_EINVAL);
  assert_int_equal(brw_ratelimit_init(&rl, NAN), BRW_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_never_exceeds_rate),
      cmocka_unit_test(test_slow_rate),
      cmocka_unit_test(test_wait_time),
      cmocka_unit_test(test_tiny_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
