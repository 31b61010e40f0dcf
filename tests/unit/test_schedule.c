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
  brw_poll_sample_t s = {st, total, pending, at, 0};
  return s;
}

static const brw_poll_sample_t none = {BRW_STATUS_UNKNOWN, -1, -1, 0, 0};

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

/* ---- deadlines on the monotonic clock (issue 10 item 4) ---- */

#define HOUR_MS 3600000ULL
#define MAX_AGE_MS (72 * HOUR_MS)
#define MONO0 5000000ULL /* uv_now() at the campaign's creation */

static void test_deadline_at(void **state) {
  (void)state;
  /* An event of now: the whole max_age is left. */
  assert_int_equal(brw_deadline_at(T0, MAX_AGE_MS, T0, MONO0),
                   MONO0 + MAX_AGE_MS);
  /* An event 10 h old: 62 h left. */
  assert_int_equal(
      brw_deadline_at(T0 - (int64_t)(10 * HOUR_MS), MAX_AGE_MS, T0, MONO0),
      MONO0 + 62 * HOUR_MS);
  /* Older than max_age, or absurdly old: due at once. */
  assert_int_equal(
      brw_deadline_at(T0 - (int64_t)(80 * HOUR_MS), MAX_AGE_MS, T0, MONO0),
      MONO0);
  assert_int_equal(brw_deadline_at(INT64_MIN, MAX_AGE_MS, INT64_MAX, MONO0),
                   MONO0);
  /* From the future: counts from now, never more than max_age. */
  assert_int_equal(
      brw_deadline_at(T0 + (int64_t)HOUR_MS, MAX_AGE_MS, T0, MONO0),
      MONO0 + MAX_AGE_MS);
  /* Saturates. */
  assert_int_equal(brw_deadline_at(T0, MAX_AGE_MS, T0, UINT64_MAX - 5),
                   UINT64_MAX);
}

static void test_deadline_cap(void **state) {
  (void)state;
  uint64_t d = MONO0 + 1000;
  assert_int_equal(brw_deadline_cap(d, MONO0, 500), 500);
  assert_int_equal(brw_deadline_cap(d, MONO0, 5000), 1000);
  assert_int_equal(brw_deadline_cap(d, d, 5000), 0);
  assert_int_equal(brw_deadline_cap(d, d + 7, 5000), 0);
}

static void test_timer_action(void **state) {
  (void)state;
  uint64_t d = MONO0 + 1000, delay = 0;
  assert_int_equal(brw_timer_action(d, MONO0, 0, 10000, &delay),
                   BRW_TIMER_FETCH);
  assert_int_equal(brw_timer_action(d, MONO0, 1, 10000, &delay),
                   BRW_TIMER_WAIT);
  assert_int_equal(delay, 11000);
  assert_int_equal(brw_timer_action(d, d, 1, 10000, &delay), BRW_TIMER_EXPIRE);
  assert_int_equal(brw_timer_action(d, d, 0, 10000, &delay), BRW_TIMER_EXPIRE);
  assert_int_equal(brw_timer_action(d, d + 1, 1, 0, &delay), BRW_TIMER_EXPIRE);
  /* A zero answer time still waits a positive delay before the deadline. */
  assert_int_equal(brw_timer_action(d, d - 1, 1, 0, &delay), BRW_TIMER_WAIT);
  assert_int_equal(delay, 1);
}

/* The bug: a fetch that never answers (it waits for a login that never
 * succeeds) while the wall clock steps back. The old code compared the
 * wall clock with a wall-clock deadline, found it not passed after the
 * timer (monotonic) had run to it, saw the fetch out and returned without
 * arming the timer: the campaign was never reported. Here the loop of a
 * timer is simulated with the wall clock stepping back an hour at every
 * firing; the campaign expires exactly at the monotonic deadline plus the
 * answer time, whatever the wall clock does. */
static void test_deadline_survives_wall_steps(void **state) {
  (void)state;
  const uint64_t answer = 10000;
  for (int step = -1; step <= 1; step++) {
    int64_t wall = T0;
    uint64_t mono = MONO0;
    uint64_t deadline = brw_deadline_at(wall, MAX_AGE_MS, wall, mono);
    int fetch_out = 0, expired = 0, firings = 0;
    uint64_t delay = 0;
    while (!expired && firings < 1000) {
      firings++;
      switch (brw_timer_action(deadline, mono, fetch_out, answer, &delay)) {
      case BRW_TIMER_EXPIRE:
        expired = 1;
        continue;
      case BRW_TIMER_FETCH:
        /* The fetch starts and never answers; the timer watches it. */
        fetch_out = 1;
        assert_int_equal(brw_timer_action(deadline, mono, 1, answer, &delay),
                         BRW_TIMER_WAIT);
        break;
      case BRW_TIMER_WAIT:
        break;
      }
      assert_true(delay > 0);
      mono += delay;
      wall += step * (int64_t)HOUR_MS * 5; /* steps the deciding code ignores */
    }
    assert_true(expired);
    assert_int_equal(mono, MONO0 + MAX_AGE_MS + answer);
    assert_true(firings <= 3);
  }
}

/* After a failed fetch: the backoff grows per attempt within retry.min and
 * retry.max; a longer Retry-After wins, capped at retry.max; a shorter one
 * (or none, or a negative one) leaves the backoff. */
static void test_retry_delay(void **state) {
  (void)state;
  brw_rng_t rng;
  brw_rng_seed(&rng, 3);
  unsigned attempt = 0;
  /* Without jitter: 1 s, 2 s, 4 s, ... capped at 60 s. */
  assert_int_equal(brw_schedule_retry(1000, 60000, 0, &attempt, -1, &rng),
                   1000);
  assert_int_equal(attempt, 1);
  assert_int_equal(brw_schedule_retry(1000, 60000, 0, &attempt, -1, &rng),
                   2000);
  assert_int_equal(brw_schedule_retry(1000, 60000, 0, &attempt, 0, &rng),
                   4000);
  attempt = 20;
  assert_int_equal(brw_schedule_retry(1000, 60000, 0, &attempt, -1, &rng),
                   60000);
  /* Retry-After longer than the backoff: taken. */
  attempt = 0;
  assert_int_equal(brw_schedule_retry(1000, 60000, 0, &attempt, 30000, &rng),
                   30000);
  assert_int_equal(attempt, 1);
  /* ... but never past retry.max. */
  assert_int_equal(
      brw_schedule_retry(1000, 60000, 0, &attempt, 3600000, &rng), 60000);
  /* Shorter than the backoff: the backoff. */
  attempt = 4; /* 16 s */
  assert_int_equal(brw_schedule_retry(1000, 60000, 0, &attempt, 5000, &rng),
                   16000);
  /* With jitter every delay stays in [min, max] and honours Retry-After. */
  for (unsigned i = 0; i < 200; i++) {
    attempt = i % 12;
    uint64_t d = brw_schedule_retry(1000, 60000, 0.5, &attempt,
                                    i % 3 ? -1 : 7000, &rng);
    assert_true(d >= 1000 && d <= 60000);
    if (i % 3 == 0)
      assert_true(d >= 7000);
  }
}

/* The first fetch, and a campaign.finished for a tracked campaign. */
static void test_event_delays(void **state) {
  (void)state;
  assert_int_equal(brw_schedule_first(30000, 1000, 0), 30000);
  assert_int_equal(brw_schedule_first(30000, 1000, 1), 1000);
  /* finished_delay longer than initial_delay is the operator's choice. */
  assert_int_equal(brw_schedule_first(0, 5000, 1), 5000);
  /* Brought forward only when due later than poll.finished_delay. */
  assert_int_equal(brw_schedule_bring_forward(600000, 1000), 1);
  assert_int_equal(brw_schedule_bring_forward(1001, 1000), 1);
  assert_int_equal(brw_schedule_bring_forward(1000, 1000), 0);
  assert_int_equal(brw_schedule_bring_forward(0, 1000), 0);
  assert_int_equal(brw_schedule_bring_forward(0, 0), 0);
}

/* The 404 grace period runs from the first 404 on the monotonic clock. */
static void test_not_found_grace(void **state) {
  (void)state;
  uint64_t since = 0;
  assert_int_equal(brw_schedule_not_found_over(&since, 5000, 600000), 0);
  assert_int_equal(since, 5000); /* the first 404 */
  assert_int_equal(brw_schedule_not_found_over(&since, 604999, 600000), 0);
  assert_int_equal(since, 5000); /* later ones do not move it */
  assert_int_equal(brw_schedule_not_found_over(&since, 605000, 600000), 1);
  /* A clock reading 0 still records the 404. */
  since = 0;
  assert_int_equal(brw_schedule_not_found_over(&since, 0, 10), 0);
  assert_int_equal(since, 1);
  assert_int_equal(brw_schedule_not_found_over(&since, 11, 10), 1);
  /* No grace: the first 404 ends it. */
  since = 0;
  assert_int_equal(brw_schedule_not_found_over(&since, 42, 0), 1);
}

/* The pace between two fetches is measured on the monotonic clock: a wall
 * step back between them used to hide it, a step forward to slow it. */
static void test_send_rate_monotonic(void **state) {
  (void)state;
  brw_poll_sample_t prev = sample(BRW_STATUS_SENDING, 1000, 800, T0);
  brw_poll_sample_t cur = sample(BRW_STATUS_SENDING, 1000, 700,
                                 T0 - (int64_t)HOUR_MS); /* stepped back */
  prev.mono_ms = MONO0;
  cur.mono_ms = MONO0 + 10000;
  /* 100 messages in 10 s of monotonic time. */
  assert_true(brw_send_rate(&cur, &prev, 0) == 0.01);
  cur.at_ms = T0 + (int64_t)HOUR_MS; /* stepped forward */
  assert_true(brw_send_rate(&cur, &prev, 0) == 0.01);
  /* Without monotonic times (0), the wall clock as before. */
  prev.mono_ms = cur.mono_ms = 0;
  cur.at_ms = T0 + 10000;
  assert_true(brw_send_rate(&cur, &prev, 0) == 0.01);
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
      cmocka_unit_test(test_deadline_at),
      cmocka_unit_test(test_deadline_cap),
      cmocka_unit_test(test_timer_action),
      cmocka_unit_test(test_deadline_survives_wall_steps),
      cmocka_unit_test(test_send_rate_monotonic),
      cmocka_unit_test(test_retry_delay),
      cmocka_unit_test(test_not_found_grace),
      cmocka_unit_test(test_event_delays),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
