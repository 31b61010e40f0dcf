#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/schedule.h"

#define MIN_MS 15000
#define MAX_MS 600000
#define GUARD_MS (MIN_MS / 4)
#define T0 1700000000000LL /* an epoch ms */

static brw_schedule_opts_t opts(int adaptive, double jitter) {
  brw_schedule_opts_t o = {MIN_MS, MAX_MS, jitter, adaptive};
  return o;
}

static brw_poll_sample_t sample(brw_status_t st, int64_t total, int64_t pending,
                                int64_t at) {
  brw_poll_sample_t s = {st, total, pending, at};
  return s;
}

static const brw_poll_sample_t none = {BRW_STATUS_UNKNOWN, -1, -1, 0};

/* adaptive=false is the plain backoff, whatever the detail says. */
static void test_plain_backoff(void **state) {
  brw_schedule_opts_t o = opts(0, 0.2);
  brw_rng_t a, b;
  brw_rng_seed(&a, 9);
  brw_rng_seed(&b, 9);
  unsigned attempt = 0;
  brw_poll_sample_t cur = sample(BRW_STATUS_SCHEDULED, 100, 100, T0);
  for (unsigned i = 0; i < 12; i++) {
    brw_schedule_basis_t basis = BRW_BASIS_ESTIMATE;
    uint64_t d = brw_schedule_next(&o, &cur, &none, T0 + 3600000, 0, T0,
                                   &attempt, &a, &basis);
    assert_int_equal(d, brw_backoff_ms(MIN_MS, MAX_MS, i, 0.2, &b));
    assert_int_equal(basis, BRW_BASIS_BACKOFF);
  }
  assert_int_equal(attempt, 12);
  /* A send with a measurable pace too. */
  cur = sample(BRW_STATUS_SENDING, 1000, 500, T0);
  brw_schedule_basis_t basis;
  uint64_t d = brw_schedule_next(&o, &cur, &none, 0, T0 - 60000, T0, &attempt,
                                 &a, &basis);
  assert_int_equal(d, brw_backoff_ms(MIN_MS, MAX_MS, 12, 0.2, &b));
  assert_int_equal(basis, BRW_BASIS_BACKOFF);
}

static void test_scheduled_start(void **state) {
  brw_schedule_opts_t o = opts(1, 0.2);
  brw_rng_t rng;
  brw_rng_seed(&rng, 1);
  unsigned attempt = 0;
  brw_schedule_basis_t basis;
  brw_poll_sample_t cur = sample(BRW_STATUS_SCHEDULED, 100, 100, T0);
  /* Five hours ahead: one wait, past poll.max_interval. */
  uint64_t d = brw_schedule_next(&o, &cur, &none, T0 + 5 * 3600000LL, 0, T0,
                                 &attempt, &rng, &basis);
  assert_int_equal(d, 5 * 3600000ULL + GUARD_MS);
  assert_int_equal(basis, BRW_BASIS_SCHEDULED_START);
  /* Two seconds ahead: not sooner than poll.min_interval. */
  d = brw_schedule_next(&o, &cur, &none, T0 + 2000, 0, T0, &attempt, &rng,
                        &basis);
  assert_int_equal(d, MIN_MS);
  assert_int_equal(basis, BRW_BASIS_SCHEDULED_START);
  /* The start has passed and it still waits: the backoff. */
  d = brw_schedule_next(&o, &cur, &none, T0 - 1000, 0, T0, &attempt, &rng,
                        &basis);
  assert_int_equal(basis, BRW_BASIS_BACKOFF);
  assert_in_range(d, MIN_MS, MAX_MS);
}

static void test_estimate_from_actual_start(void **state) {
  brw_schedule_opts_t o = opts(1, 0.2);
  brw_rng_t rng;
  brw_rng_seed(&rng, 2);
  unsigned attempt = 0;
  brw_schedule_basis_t basis;
  /* Half of 1,000 resolved in the 60 s since the start: 60 s to go. */
  brw_poll_sample_t cur = sample(BRW_STATUS_SENDING, 1000, 500, T0);
  assert_true(brw_send_rate(&cur, &none, T0 - 60000) > 0);
  uint64_t d = brw_schedule_next(&o, &cur, &none, 0, T0 - 60000, T0, &attempt,
                                 &rng, &basis);
  assert_int_equal(basis, BRW_BASIS_ESTIMATE);
  assert_int_equal(d, 60000 + GUARD_MS);
  /* Almost done: not sooner than poll.min_interval. */
  cur.pending = 10;
  d = brw_schedule_next(&o, &cur, &none, 0, T0 - 60000, T0, &attempt, &rng,
                        &basis);
  assert_int_equal(d, MIN_MS);
  /* Hours to go: bounded by poll.max_interval, jittered. */
  cur.pending = 999;
  for (int i = 0; i < 100; i++) {
    d = brw_schedule_next(&o, &cur, &none, 0, T0 - 60000, T0, &attempt, &rng,
                          &basis);
    assert_int_equal(basis, BRW_BASIS_ESTIMATE);
    assert_in_range(d, MAX_MS * 8 / 10, MAX_MS);
  }
}

static void test_estimate_between_fetches(void **state) {
  brw_schedule_opts_t o = opts(1, 0);
  brw_rng_t rng;
  brw_rng_seed(&rng, 3);
  unsigned attempt = 0;
  brw_schedule_basis_t basis;
  /* 100 resolved in the last 10 s: 70 s to go, whatever the start says
   * (a pause in between would make the pace since the start too slow). */
  brw_poll_sample_t prev = sample(BRW_STATUS_SENDING, 1000, 800, T0 - 10000);
  brw_poll_sample_t cur = sample(BRW_STATUS_SENDING, 1000, 700, T0);
  uint64_t d = brw_schedule_next(&o, &cur, &prev, 0, T0 - 3600000, T0,
                                 &attempt, &rng, &basis);
  assert_int_equal(basis, BRW_BASIS_ESTIMATE);
  assert_int_equal(d, 70000 + GUARD_MS);
  /* Nothing moved since: no estimate, the backoff. */
  prev.pending = 700;
  d = brw_schedule_next(&o, &cur, &prev, 0, T0 - 3600000, T0, &attempt, &rng,
                        &basis);
  assert_int_equal(basis, BRW_BASIS_BACKOFF);
  /* The fetch before was paused: the pace since the actual start. */
  prev = sample(BRW_STATUS_PAUSED, 1000, 800, T0 - 10000);
  d = brw_schedule_next(&o, &cur, &prev, 0, T0 - 30000, T0, &attempt, &rng,
                        &basis);
  assert_int_equal(basis, BRW_BASIS_ESTIMATE);
  assert_int_equal(d, 70000 + GUARD_MS); /* 300 in 30 s: 700 in 70 s */
}

/* No usable numbers: the backoff, never a division by zero. */
static void test_no_estimate(void **state) {
  brw_schedule_opts_t o = opts(1, 0);
  brw_rng_t rng;
  brw_rng_seed(&rng, 4);
  struct {
    brw_status_t st;
    int64_t total, pending, actual;
  } cases[] = {
      {BRW_STATUS_SENDING, -1, 10, T0 - 1000},   /* no total */
      {BRW_STATUS_SENDING, 0, 0, T0 - 1000},     /* empty */
      {BRW_STATUS_SENDING, 100, -1, T0 - 1000},  /* no statistics */
      {BRW_STATUS_SENDING, 100, 200, T0 - 1000}, /* more pending than total */
      {BRW_STATUS_SENDING, 100, 100, T0 - 1000}, /* nothing resolved yet */
      {BRW_STATUS_SENDING, 100, 50, 0},          /* no actual start */
      {BRW_STATUS_SENDING, 100, 50, T0 + 5000},  /* a start in the future */
      {BRW_STATUS_PAUSED, 100, 50, T0 - 1000},
      {BRW_STATUS_MODERATION, 100, 100, 0},
      {BRW_STATUS_CREATION, 100, 100, 0},
      {BRW_STATUS_UNKNOWN, 100, 50, T0 - 1000},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    unsigned attempt = 3;
    brw_schedule_basis_t basis = BRW_BASIS_ESTIMATE;
    brw_poll_sample_t cur =
        sample(cases[i].st, cases[i].total, cases[i].pending, T0);
    uint64_t d = brw_schedule_next(&o, &cur, &none, 0, cases[i].actual, T0,
                                   &attempt, &rng, &basis);
    assert_int_equal(basis, BRW_BASIS_BACKOFF);
    assert_int_equal(d, MIN_MS << 3);
    assert_int_equal(attempt, 4);
  }
}

/* A whole linear send, fetched as each policy says: the adaptive one sees
 * the end within poll.min_interval with far fewer fetches. */
static unsigned run_send(int adaptive, int64_t duration_ms, int64_t *late_ms) {
  brw_schedule_opts_t o = opts(adaptive, 0.2);
  brw_rng_t rng;
  brw_rng_seed(&rng, 5);
  const int64_t total = 5000, start = T0, end = T0 + duration_ms;
  int64_t now = T0 + 20000; /* the first fetch sees it sending */
  brw_poll_sample_t prev = none;
  unsigned attempt = 0, fetches = 0;
  for (;;) {
    fetches++;
    if (now >= end) {
      *late_ms = now - end;
      return fetches;
    }
    int64_t pending = total - total * (now - start) / duration_ms;
    brw_poll_sample_t cur = sample(BRW_STATUS_SENDING, total, pending, now);
    brw_schedule_basis_t basis;
    uint64_t d = brw_schedule_next(&o, &cur, &prev, 0, start, now, &attempt,
                                   &rng, &basis);
    assert_in_range(d, MIN_MS, MAX_MS);
    prev = cur;
    now += (int64_t)d;
  }
}

static void test_linear_send(void **state) {
  int64_t durations[] = {5 * 60000, 45 * 60000, 4 * 3600000};
  for (size_t i = 0; i < 3; i++) {
    int64_t late_b, late_a;
    unsigned b = run_send(0, durations[i], &late_b);
    unsigned a = run_send(1, durations[i], &late_a);
    print_message("send %lld min: backoff %u fetches, %lld s late; adaptive "
                  "%u fetches, %lld s late\n",
                  (long long)durations[i] / 60000, b, (long long)late_b / 1000,
                  a, (long long)late_a / 1000);
    assert_true(a < b);
    assert_true(late_a <= MIN_MS);
    assert_true(late_a <= late_b);
  }
}

static void test_resets(void **state) {
  brw_schedule_opts_t plain = opts(0, 0.2), adaptive = opts(1, 0.2);
  /* Plain backoff: every change restarts it (SPEC §5). */
  assert_true(brw_schedule_resets(&plain, BRW_STATUS_SENDING,
                                  BRW_STATUS_PAUSED));
  assert_true(brw_schedule_resets(&plain, BRW_STATUS_PAUSED,
                                  BRW_STATUS_SENDING));
  assert_true(brw_schedule_resets(&plain, BRW_STATUS_CREATION,
                                  BRW_STATUS_MODERATION));
  assert_false(brw_schedule_resets(&plain, BRW_STATUS_SENDING,
                                   BRW_STATUS_SENDING));
  /* Adaptive: a pause goes on from the grown backoff; a resume restarts. */
  assert_false(brw_schedule_resets(&adaptive, BRW_STATUS_SENDING,
                                   BRW_STATUS_PAUSED));
  assert_true(brw_schedule_resets(&adaptive, BRW_STATUS_PAUSED,
                                  BRW_STATUS_SENDING));
  assert_true(brw_schedule_resets(&adaptive, BRW_STATUS_SCHEDULED,
                                  BRW_STATUS_SENDING));
  assert_false(brw_schedule_resets(&adaptive, BRW_STATUS_PAUSED,
                                   BRW_STATUS_PAUSED));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_backoff),
      cmocka_unit_test(test_scheduled_start),
      cmocka_unit_test(test_estimate_from_actual_start),
      cmocka_unit_test(test_estimate_between_fetches),
      cmocka_unit_test(test_no_estimate),
      cmocka_unit_test(test_linear_send),
      cmocka_unit_test(test_resets),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
