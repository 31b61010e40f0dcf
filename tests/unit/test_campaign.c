/* The campaign lifecycle (src/campaign.c) driven with a fake clock: every
 * path of the policy by name, then random event sequences checked against
 * the properties the worker promises (never two outcomes, a report only
 * for a final status or past the deadline, a timer armed whenever the
 * campaign goes on, the deadline honoured). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "brw/campaign.h"

#define T0 1700000000000LL /* the wall clock at monotonic 0 */
#define SEC 1000ULL
#define MIN (60 * SEC)

/* One campaign and the world around it: the clock, its timer and its
 * fetch, as src/app_campaign.c keeps them. */
typedef struct {
  brw_campaign_t c;
  brw_campaign_opts_t o;
  brw_rng_t rng;
  uint64_t now;
  int armed;
  uint64_t due;
  int fetch_out;
  int ended;
  brw_campaign_step_t end; /* the step that ended it */
  uint64_t ended_at;
  int fetches, progress, steps;
  int account_failed;
  int sweeping; /* the account's sweeps stand in for fetches */
  int round;    /* the parity of the sweep that serves an ask */
  int sweeps;   /* sweeps asked for */
  brw_campaign_step_t last;
} world_t;

static brw_campaign_opts_t default_opts(void) {
  brw_campaign_opts_t o;
  memset(&o, 0, sizeof(o));
  o.sched.min_interval_ms = 15 * SEC;
  o.sched.max_interval_ms = 10 * MIN;
  o.sched.jitter = 0;
  o.sched.adaptive = 0;
  o.initial_delay_ms = 30 * SEC;
  o.finished_delay_ms = 5 * SEC;
  o.retry_min_ms = 1 * SEC;
  o.retry_max_ms = 60 * SEC;
  o.not_found_grace_ms = 2 * MIN;
  o.max_age_ms = 60 * MIN;
  o.answer_ms = 10 * SEC;
  o.emit_progress = 0;
  o.sweep_wait_ms = 60 * SEC;
  return o;
}

/* Carries a step out as the app does, checking what every step must
 * satisfy. */
static void apply(world_t *w, const brw_campaign_step_t *st) {
  w->last = *st;
  w->steps++;
  assert_false(w->ended);
  if (st->progress) {
    assert_int_equal(st->end, BRW_CEND_NONE);
    w->progress++;
  }
  if (st->sweep) {
    assert_false(st->fetch); /* a sweep stands in for a fetch */
    w->sweeps++;
  }
  if (st->fetch) {
    assert_false(w->fetch_out); /* never two fetches at once */
    w->fetch_out = 1;
    w->fetches++;
  }
  if (st->arm) {
    w->armed = 1;
    w->due = w->now + st->timer_ms;
  }
  if (st->end != BRW_CEND_NONE) {
    assert_false(st->arm);
    assert_false(st->fetch);
    w->ended = 1;
    w->end = *st;
    w->ended_at = w->now;
    w->armed = 0;
    w->fetch_out = 0; /* cancelled by the drop */
    assert_int_equal(w->c.state, BRW_CAMPAIGN_ENDED);
    return;
  }
  /* No campaign without a pending step: its timer is armed, for the next
   * fetch no later than the deadline, or as the watchdog of a fetch. */
  assert_true(w->armed);
  assert_int_not_equal(w->c.state, BRW_CAMPAIGN_ENDED);
  assert_int_equal(w->fetch_out, w->c.state == BRW_CAMPAIGN_FETCHING);
  if (!w->fetch_out)
    assert_true(w->due <= w->c.deadline || w->due == w->now);
  else
    assert_true(w->due <= w->c.deadline + w->o.answer_ms);
}

static void start(world_t *w, brw_campaign_opts_t o, int64_t occurred_ago_ms,
                  int finished) {
  memset(w, 0, sizeof(*w));
  w->o = o;
  brw_rng_seed(&w->rng, 42);
  w->now = 1000 * SEC; /* the monotonic clock does not start at 0 */
  int64_t wall = T0 + (int64_t)w->now;
  brw_campaign_step_t st;
  brw_campaign_start(&w->c, &w->o, w->now, wall,
                     brw_campaign_first_event_ms(wall - occurred_ago_ms, wall),
                     finished, &st);
  assert_int_equal(w->c.state, BRW_CAMPAIGN_NEW);
  apply(w, &st);
}

static void input(world_t *w, brw_campaign_input_t in) {
  brw_campaign_step_t st;
  in.now = w->now;
  in.wall_ms = T0 + (int64_t)w->now;
  brw_campaign_on(&w->c, &w->o, &in, &w->rng, &st);
  apply(w, &st);
}

/* The timer fires when it is due. */
static void fire(world_t *w) {
  assert_true(w->armed);
  w->now = w->due;
  w->armed = 0;
  brw_campaign_input_t in = {.kind = BRW_CIN_TIMER,
                             .account_failed = w->account_failed,
                             .sweeping = w->sweeping,
                             .sweep_round = w->round};
  input(w, in);
}

/* A sweep of parity `round` ends `after` ms from now (failed or not). */
static void swept(world_t *w, uint64_t after, int round, int failed) {
  w->now += after;
  brw_campaign_input_t in = {
      .kind = BRW_CIN_SWEPT, .sweep_round = round, .sweep_failed = failed};
  input(w, in);
}

/* A status sweep lists the campaign `after` ms from now. */
static void listed(world_t *w, uint64_t after, brw_status_t st) {
  w->now += after;
  brw_campaign_input_t in = {.kind = BRW_CIN_LISTED, .status = st};
  input(w, in);
}

/* The fetch out comes back `after` ms from now with `in` (the app stops
 * the watchdog first). */
static void fetch_back(world_t *w, uint64_t after, brw_campaign_input_t in) {
  assert_true(w->fetch_out);
  w->fetch_out = 0;
  w->armed = 0;
  w->now += after;
  input(w, in);
}

static void answer(world_t *w, uint64_t after, brw_status_t st,
                   int64_t total, int64_t pending, uint64_t hash) {
  brw_campaign_input_t in = {.kind = BRW_CIN_FETCHED,
                             .status = st,
                             .total = total,
                             .pending = pending,
                             .stats_hash = hash};
  fetch_back(w, after, in);
}

static void failed(world_t *w, uint64_t after, brw_retry_class_t cls,
                   int64_t retry_after_ms) {
  brw_campaign_input_t in = {.kind = BRW_CIN_FAILED,
                             .error_class = cls,
                             .retry_after_ms = retry_after_ms,
                             .account_failed = w->account_failed};
  fetch_back(w, after, in);
}

static void event(world_t *w, uint64_t after, int finished) {
  w->now += after;
  brw_campaign_input_t in = {.kind = BRW_CIN_EVENT, .finished = finished};
  in.due_in_ms = w->armed && w->due > w->now ? w->due - w->now : 0;
  input(w, in);
}

/* Fires the timer and checks that it started a fetch. */
static void fire_fetch(world_t *w) {
  fire(w);
  assert_true(w->last.fetch);
  assert_int_equal(w->c.state, BRW_CAMPAIGN_FETCHING);
}

static void assert_report(const world_t *w, brw_outcome_t o) {
  assert_true(w->ended);
  assert_int_equal(w->end.end, BRW_CEND_REPORT);
  assert_int_equal(w->end.outcome, o);
}

static void assert_dlq(const world_t *w, brw_dlq_reason_t r) {
  assert_true(w->ended);
  assert_int_equal(w->end.end, BRW_CEND_DLQ);
  assert_int_equal(w->end.reason, r);
  assert_non_null(w->end.message);
}

/* ---- the paths, one by one ------------------------------------------- */

static void test_first_delay(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  assert_int_equal(w.due - w.now, 30 * SEC); /* poll.initial_delay */
  assert_int_equal(w.c.deadline, w.now + 60 * MIN);
  start(&w, default_opts(), 0, 1);
  assert_int_equal(w.due - w.now, 5 * SEC); /* poll.finished_delay */
  /* The deadline counts from the event's occurred_at... */
  start(&w, default_opts(), 50 * MIN, 0);
  assert_int_equal(w.c.deadline, w.now + 10 * MIN);
  /* ...and an event older than poll.max_age is looked at at once. */
  start(&w, default_opts(), 2 * 60 * MIN, 0);
  assert_int_equal(w.due, w.now);
  fire(&w);
  assert_report(&w, BRW_OUTCOME_EXPIRED); /* never fetched */
  /* An occurred_at in the future counts from now. */
  assert_int_equal(brw_campaign_first_event_ms(T0 + 5000, T0), T0);
  assert_int_equal(brw_campaign_first_event_ms(0, T0), T0);
  assert_int_equal(brw_campaign_first_event_ms(T0 - 5, T0), T0 - 5);
}

static void test_final_statuses(void **state) {
  const brw_status_t st[] = {BRW_STATUS_DONE, BRW_STATUS_STOPPED,
                             BRW_STATUS_SPAM};
  const brw_outcome_t out[] = {BRW_OUTCOME_DONE, BRW_OUTCOME_STOPPED,
                               BRW_OUTCOME_SPAM};
  for (int i = 0; i < 3; i++) {
    world_t w;
    start(&w, default_opts(), 0, 0);
    fire_fetch(&w);
    answer(&w, 100, BRW_STATUS_SENDING, 10, 5, 1);
    assert_int_equal(w.c.state, BRW_CAMPAIGN_POLLING);
    fire_fetch(&w);
    answer(&w, 100, st[i], 10, 0, 2);
    assert_report(&w, out[i]);
    assert_int_equal(w.c.polls, 2);
  }
}

/* Non-final details: poll.min_interval doubling to poll.max_interval; a
 * status change starts the backoff again; an unknown status is in
 * progress. */
static void test_poll_backoff(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  uint64_t expect[] = {15 * SEC, 30 * SEC, 60 * SEC, 120 * SEC, 240 * SEC,
                       480 * SEC, 600 * SEC, 600 * SEC};
  for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
    fire_fetch(&w);
    answer(&w, 0, BRW_STATUS_SCHEDULED, 10, 10, 1);
    assert_int_equal(w.last.basis, BRW_BASIS_BACKOFF);
    assert_int_equal(w.due - w.now, expect[i]);
  }
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 10, 1);
  assert_int_equal(w.due - w.now, 15 * SEC);
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_UNKNOWN, 10, 10, 1);
  assert_false(w.ended);
  assert_int_equal(w.due - w.now, 15 * SEC);
}

/* The adaptive schedule is src/schedule.c's; here: its basis comes out. */
static void test_poll_adaptive(void **state) {
  brw_campaign_opts_t o = default_opts();
  o.sched.adaptive = 1;
  world_t w;
  start(&w, o, 0, 0);
  fire_fetch(&w);
  brw_campaign_input_t in = {.kind = BRW_CIN_FETCHED,
                             .status = BRW_STATUS_SCHEDULED,
                             .total = 10,
                             .pending = 10,
                             .scheduled_start_ms =
                                 T0 + (int64_t)w.now + 40 * 60 * 1000};
  fetch_back(&w, 0, in);
  assert_int_equal(w.last.basis, BRW_BASIS_SCHEDULED_START);
  /* 40 min away, capped at the deadline (60 min after the event). */
  assert_int_equal(w.due - w.now, 40 * MIN + 15 * SEC / 4);
}

static void test_progress(void **state) {
  brw_campaign_opts_t o = default_opts();
  o.emit_progress = 1;
  world_t w;
  start(&w, o, 0, 0);
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 10, 1);
  assert_true(w.last.progress); /* the first detail */
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 10, 1);
  assert_false(w.last.progress); /* nothing changed */
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 8, 2);
  assert_true(w.last.progress); /* the statistics changed */
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_PAUSED, 10, 8, 2);
  assert_true(w.last.progress); /* the status changed */
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_DONE, 10, 0, 3);
  assert_false(w.last.progress); /* the final report says it */
  assert_report(&w, BRW_OUTCOME_DONE);
  assert_int_equal(w.progress, 3);
  /* Off: never. */
  start(&w, default_opts(), 0, 0);
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 10, 1);
  assert_false(w.last.progress);
}

/* Failures: retry.min doubling to retry.max; Retry-After when longer,
 * capped at retry.max; a detail resets the count. */
static void test_retry(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  uint64_t expect[] = {1 * SEC, 2 * SEC, 4 * SEC, 8 * SEC};
  for (size_t i = 0; i < 4; i++) {
    fire_fetch(&w);
    failed(&w, 0, BRW_RETRY_5XX, -1);
    assert_int_equal(w.c.state, BRW_CAMPAIGN_RETRYING);
    assert_int_equal(w.due - w.now, expect[i]);
  }
  fire_fetch(&w);
  failed(&w, 0, BRW_RETRY_429, 30 * SEC);
  assert_int_equal(w.due - w.now, 30 * SEC); /* Retry-After > 16 s */
  fire_fetch(&w);
  failed(&w, 0, BRW_RETRY_429, 3600 * SEC);
  assert_int_equal(w.due - w.now, 60 * SEC); /* capped at retry.max */
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  fire_fetch(&w);
  failed(&w, 0, BRW_RETRY_TIMEOUT, -1);
  assert_int_equal(w.due - w.now, 1 * SEC); /* counted afresh */
  /* A fetch that could not start is retried the same way. */
  fire_fetch(&w);
  brw_campaign_input_t in = {.kind = BRW_CIN_NOT_STARTED};
  fetch_back(&w, 0, in);
  assert_int_equal(w.c.state, BRW_CAMPAIGN_RETRYING);
  assert_int_equal(w.due - w.now, 2 * SEC);
}

/* A 404 is polled on for the grace period after the first of a run, then
 * the event goes to the DLQ; a detail in between ends the run. */
static void test_not_found_grace(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  fire_fetch(&w);
  failed(&w, 0, BRW_RETRY_404, -1);
  uint64_t first = w.now;
  while (w.due - first < 2 * MIN) {
    fire_fetch(&w);
    failed(&w, 0, BRW_RETRY_404, -1);
    assert_false(w.ended);
  }
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_CREATION, 10, 10, 1);
  assert_int_equal(w.c.not_found_since, 0);
  /* A new run starts its own grace period. */
  fire_fetch(&w);
  failed(&w, 0, BRW_RETRY_404, -1);
  first = w.now;
  while (!w.ended) {
    fire_fetch(&w);
    failed(&w, 0, BRW_RETRY_404, -1);
  }
  assert_dlq(&w, BRW_DLQ_NOT_FOUND);
  assert_false(w.end.last_error);
  assert_true(w.now - first >= 2 * MIN);
  assert_true(w.now - first < 2 * MIN + 60 * SEC);
}

/* Every fetch fails with `cls` until the campaign ends. */
static void fail_until_the_end(world_t *w, brw_retry_class_t cls) {
  while (!w->ended) {
    fire(w);
    if (w->fetch_out)
      failed(w, 0, cls, -1);
  }
}

/* What the deadline ends with, by what was seen before it. */
static void test_deadline_outcomes(void **state) {
  world_t w;
  /* A detail was seen: expired, with it. */
  start(&w, default_opts(), 0, 0);
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  while (!w.ended) {
    uint64_t before = w.now;
    fire(&w);
    assert_true(w.now <= w.c.deadline);
    if (w.fetch_out)
      answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
    assert_true(w.now > before || w.ended);
  }
  assert_report(&w, BRW_OUTCOME_EXPIRED);
  assert_int_equal(w.ended_at, w.c.deadline);

  /* The account's key is rejected: auth_failed. */
  start(&w, default_opts(), 0, 0);
  w.account_failed = 1;
  fail_until_the_end(&w, BRW_RETRY_AUTH);
  assert_dlq(&w, BRW_DLQ_AUTH_FAILED);

  /* Errors only: bad_response, with the last error's message. */
  start(&w, default_opts(), 0, 0);
  fail_until_the_end(&w, BRW_RETRY_5XX);
  assert_dlq(&w, BRW_DLQ_BAD_RESPONSE);
  assert_true(w.end.last_error);
  assert_string_equal(w.end.message, "5xx");

  /* 404s up to the deadline (grace longer than max_age): not_found. */
  brw_campaign_opts_t o = default_opts();
  o.not_found_grace_ms = 2 * 60 * MIN;
  start(&w, o, 0, 0);
  fail_until_the_end(&w, BRW_RETRY_404);
  assert_dlq(&w, BRW_DLQ_NOT_FOUND);
  assert_true(w.end.last_error);

  /* A first 404 that comes after the deadline is not_found too. */
  o = default_opts();
  o.initial_delay_ms = 2 * 60 * MIN;
  start(&w, o, 0, 0);
  assert_int_equal(w.due, w.c.deadline); /* capped */
  w.now = w.c.deadline - 1; /* a timer of the previous arm ... */
  brw_campaign_input_t tin = {.kind = BRW_CIN_TIMER};
  w.armed = 0;
  input(&w, tin);
  assert_true(w.fetch_out);
  failed(&w, 5 * SEC, BRW_RETRY_404, -1);
  assert_dlq(&w, BRW_DLQ_NOT_FOUND);

  /* Never fetched before the deadline: expired without a detail. */
  o = default_opts();
  o.initial_delay_ms = 2 * 60 * MIN;
  start(&w, o, 0, 0);
  fire(&w);
  assert_report(&w, BRW_OUTCOME_EXPIRED);
}

/* A fetch out at the deadline gets http.timeout more to answer; its answer
 * decides; without one, the watchdog ends the campaign. */
static void test_watchdog(void **state) {
  world_t w;
  brw_campaign_opts_t o = default_opts();
  o.initial_delay_ms = 60 * MIN - 2 * SEC;
  /* The answer comes after the deadline, within http.timeout: a final
   * status is reported as such, anything else as expired. */
  start(&w, o, 0, 0);
  fire_fetch(&w);
  assert_int_equal(w.due, w.c.deadline + o.answer_ms);
  answer(&w, 5 * SEC, BRW_STATUS_DONE, 10, 0, 1);
  assert_report(&w, BRW_OUTCOME_DONE);
  start(&w, o, 0, 0);
  fire_fetch(&w);
  answer(&w, 5 * SEC, BRW_STATUS_SENDING, 10, 5, 1);
  assert_report(&w, BRW_OUTCOME_EXPIRED);
  /* A failure after the deadline, with a detail seen before: expired. */
  start(&w, default_opts(), 0, 0);
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  while (w.due < w.c.deadline) {
    fire_fetch(&w);
    answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  }
  fire(&w); /* at the deadline, no fetch out: ends */
  assert_report(&w, BRW_OUTCOME_EXPIRED);
  /* No answer at all (a login that never succeeds): the watchdog. */
  start(&w, o, 0, 0);
  fire_fetch(&w);
  fire(&w);
  assert_report(&w, BRW_OUTCOME_EXPIRED);
  assert_int_equal(w.ended_at, w.c.deadline + o.answer_ms);
  /* A long max_age: the watchdog waits for the deadline, not less (the
   * HTTP client's own timeout ends a stuck request before). */
  start(&w, default_opts(), 0, 0);
  fire_fetch(&w);
  assert_int_equal(w.due, w.c.deadline + o.answer_ms);
}

/* campaign.finished brings the next fetch forward to poll.finished_delay,
 * unless it is due sooner or a fetch is out. */
static void test_finished_bring_forward(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  event(&w, 1 * SEC, 0); /* a campaign.sent: nothing moves */
  assert_false(w.last.arm);
  event(&w, 1 * SEC, 1);
  assert_true(w.last.arm);
  assert_int_equal(w.due - w.now, 5 * SEC);
  event(&w, 1 * SEC, 1); /* due in 4 s: stays */
  assert_false(w.last.arm);
  fire_fetch(&w);
  event(&w, 1 * SEC, 1); /* a fetch is out: its answer comes first ... */
  assert_false(w.last.arm);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  assert_int_equal(w.due - w.now, 5 * SEC); /* ... and the hint applies */
  fire_fetch(&w);
  for (int i = 0; i < 4; i++) { /* the backoff grows ... */
    answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
    fire_fetch(&w);
  }
  answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  assert_int_equal(w.due - w.now, 240 * SEC);
  event(&w, 0, 1);
  assert_int_equal(w.due - w.now, 5 * SEC);
  fire_fetch(&w);
  answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
  assert_int_equal(w.due - w.now, 15 * SEC); /* ... and starts again */
}

static void test_revoked(void **state) {
  for (int k = 0; k < 4; k++) {
    world_t w;
    start(&w, default_opts(), 0, 0);
    if (k >= 1)
      fire_fetch(&w);
    if (k >= 2)
      answer(&w, 0, BRW_STATUS_SENDING, 10, 5, 1);
    if (k >= 3) {
      fire_fetch(&w);
      failed(&w, 0, BRW_RETRY_5XX, -1);
    }
    brw_campaign_input_t in = {.kind = BRW_CIN_REVOKED};
    input(&w, in);
    assert_true(w.ended);
    assert_int_equal(w.end.end, BRW_CEND_FORGET);
    /* Nothing after the end. */
    brw_campaign_step_t st;
    for (int kind = BRW_CIN_EVENT; kind <= BRW_CIN_REVOKED; kind++) {
      in.kind = (brw_campaign_input_kind_t)kind;
      in.finished = 1;
      in.now = w.now + 1;
      in.status = BRW_STATUS_DONE;
      brw_campaign_on(&w.c, &w.o, &in, &w.rng, &st);
      assert_int_equal(st.end, BRW_CEND_NONE);
      assert_false(st.arm || st.fetch || st.progress);
    }
  }
}

/* A fetch result without a fetch out changes nothing. */
static void test_results_need_a_fetch(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  brw_campaign_t before = w.c;
  brw_campaign_step_t st;
  brw_campaign_input_t in = {.kind = BRW_CIN_FETCHED,
                             .now = w.now,
                             .status = BRW_STATUS_DONE};
  brw_campaign_on(&w.c, &w.o, &in, &w.rng, &st);
  assert_int_equal(st.end, BRW_CEND_NONE);
  in.kind = BRW_CIN_FAILED;
  brw_campaign_on(&w.c, &w.o, &in, &w.rng, &st);
  in.kind = BRW_CIN_NOT_STARTED;
  brw_campaign_on(&w.c, &w.o, &in, &w.rng, &st);
  assert_false(st.arm);
  assert_memory_equal(&before, &w.c, sizeof(before));
  for (int s = 0; s <= BRW_CAMPAIGN__COUNT; s++)
    assert_non_null(brw_campaign_state_name((brw_campaign_state_t)s));
  assert_string_equal(brw_campaign_state_name(BRW_CAMPAIGN_FETCHING),
                      "fetching");
  assert_string_equal(brw_campaign_input_name(BRW_CIN_NOT_STARTED),
                      "not_started");
  assert_string_equal(brw_campaign_input_name(BRW_CIN_REVOKED), "revoked");
  assert_string_equal(brw_campaign_input_name((brw_campaign_input_kind_t)99),
                      "?");
}

/* ---- properties over random sequences -------------------------------- */

static uint64_t pick(brw_rng_t *r, uint64_t n) {
  return n ? brw_rng_next(r) % n : 0;
}

static brw_campaign_opts_t random_opts(brw_rng_t *r) {
  brw_campaign_opts_t o;
  memset(&o, 0, sizeof(o));
  o.sched.min_interval_ms = 1 + pick(r, 2000);
  o.sched.max_interval_ms = o.sched.min_interval_ms + pick(r, 20000);
  o.sched.jitter = (double)pick(r, 5) / 10.0;
  o.sched.adaptive = (int)pick(r, 2);
  o.initial_delay_ms = pick(r, 5000);
  o.finished_delay_ms = pick(r, 3000);
  o.retry_min_ms = 1 + pick(r, 1000);
  o.retry_max_ms = o.retry_min_ms + pick(r, 10000);
  o.not_found_grace_ms = pick(r, 60000);
  o.max_age_ms = pick(r, 120000);
  o.answer_ms = 1 + pick(r, 5000);
  o.emit_progress = (int)pick(r, 2);
  return o;
}

static const brw_status_t some_statuses[] = {
    BRW_STATUS_UNKNOWN,   BRW_STATUS_CREATION, BRW_STATUS_MODERATION,
    BRW_STATUS_SCHEDULED, BRW_STATUS_SENDING,  BRW_STATUS_SENDING,
    BRW_STATUS_SENDING,   BRW_STATUS_PAUSED};

/* Random lives: events at any time, timers firing when due, fetches
 * answering with random details and errors at random times (or never),
 * revocations. After every step apply() checks the invariants; at the end
 * the outcome is checked against what happened. */

/* ---- status sweeps (poll.strategy) ----------------------------------- */

/* While the account sweeps, a due look asks for a sweep instead of a
 * fetch; a non-final listing schedules the next look by the backoff; a
 * final listing fetches the detail once, and its answer reports. */
static void test_sweep_stands_in(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  w.sweeping = 1;
  fire(&w);
  assert_false(w.last.fetch);
  assert_true(w.last.sweep);
  assert_int_equal(w.due - w.now, 60 * SEC); /* waits for it: the watchdog */
  assert_true(w.c.sweep & BRW_CSWEEP_AWAIT);
  listed(&w, 2 * SEC, BRW_STATUS_SENDING);
  assert_false(w.last.fetch);
  assert_int_equal(w.c.state, BRW_CAMPAIGN_POLLING);
  assert_int_equal(w.due - w.now, 15 * SEC); /* poll.min_interval */
  assert_int_equal(w.last.basis, BRW_BASIS_BACKOFF);
  fire(&w);
  assert_true(w.last.sweep);
  listed(&w, 1 * SEC, BRW_STATUS_SENDING);
  assert_int_equal(w.due - w.now, 30 * SEC); /* the backoff grew */
  /* A listing the campaign did not wait for leaves its timer alone. */
  uint64_t due = w.due;
  listed(&w, 1 * SEC, BRW_STATUS_SENDING);
  assert_false(w.last.arm);
  assert_int_equal(w.due, due);
  /* Final in the list: one detail, now; listings meanwhile change
   * nothing. */
  listed(&w, 1 * SEC, BRW_STATUS_DONE);
  assert_true(w.last.fetch);
  assert_int_equal(w.c.state, BRW_CAMPAIGN_FETCHING);
  listed(&w, 1 * SEC, BRW_STATUS_DONE);
  assert_false(w.last.fetch);
  assert_false(w.last.arm);
  answer(&w, 100, BRW_STATUS_DONE, 10, 0, 1);
  assert_report(&w, BRW_OUTCOME_DONE);
  assert_int_equal(w.fetches, 1);
  assert_int_equal(w.sweeps, 2);
}

/* A final listing needs its detail even when that fetch fails: the retry
 * fetches again, it does not wait for another sweep. A listing never ends
 * a campaign by itself. */
static void test_sweep_final_needs_detail(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  w.sweeping = 1;
  listed(&w, 1 * SEC, BRW_STATUS_STOPPED);
  assert_true(w.last.fetch);
  failed(&w, 100, BRW_RETRY_5XX, -1);
  assert_int_equal(w.c.state, BRW_CAMPAIGN_RETRYING);
  fire_fetch(&w);
  answer(&w, 100, BRW_STATUS_STOPPED, 10, 0, 1);
  assert_report(&w, BRW_OUTCOME_STOPPED);
  assert_int_equal(w.fetches, 2);
  assert_int_equal(w.sweeps, 0);
  /* The list says final, the detail not yet: polling goes on, by sweeps
   * again. */
  start(&w, default_opts(), 0, 0);
  w.sweeping = 1;
  listed(&w, 1 * SEC, BRW_STATUS_DONE);
  answer(&w, 100, BRW_STATUS_SENDING, 10, 3, 1);
  assert_int_equal(w.c.state, BRW_CAMPAIGN_POLLING);
  fire(&w);
  assert_true(w.last.sweep);
}

/* The sweep a campaign waited for did not list it: it fetches itself (a
 * miss); after BRW_CSWEEP_MISSES_MAX misses in a row it polls with details
 * until a sweep lists it again. */
static void test_sweep_misses(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  w.sweeping = 1;
  for (int i = 0; i < BRW_CSWEEP_MISSES_MAX; i++) {
    fire(&w);
    assert_true(w.last.sweep);
    fire_fetch(&w); /* the watchdog */
    assert_int_equal(w.c.misses, i + 1);
    answer(&w, 100, BRW_STATUS_SENDING, 10, 5, 1);
  }
  fire_fetch(&w); /* no more asking */
  answer(&w, 100, BRW_STATUS_SENDING, 10, 5, 1);
  listed(&w, 1 * SEC, BRW_STATUS_SENDING);
  assert_int_equal(w.c.misses, 0);
  fire(&w);
  assert_true(w.last.sweep); /* listed again: sweeps again */
  /* Sweeps that stop (the list fails) are not misses: the campaign
   * fetches at its watchdog. */
  w.sweeping = 0;
  fire_fetch(&w);
  assert_int_equal(w.c.misses, 0);
}

/* Without sweeps nothing changes; a campaign.finished wants a detail;
 * close to the deadline a detail is fetched, so that an expired report
 * carries one; with output.emit_progress a changed status is fetched. */
static void test_sweep_exceptions(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  fire_fetch(&w); /* sweeping 0: as always */
  assert_int_equal(w.sweeps, 0);
  start(&w, default_opts(), 0, 0);
  w.sweeping = 1;
  fire(&w);
  assert_true(w.last.sweep);
  event(&w, 1 * SEC, 1); /* campaign.finished */
  assert_true(w.c.sweep & BRW_CSWEEP_WANT);
  fire_fetch(&w);
  assert_int_equal(w.c.misses, 0);
  /* The last sweep_wait_ms before the deadline. */
  start(&w, default_opts(), 60 * MIN - 50 * SEC, 0);
  w.sweeping = 1;
  while (!w.ended) {
    fire(&w);
    if (w.last.fetch)
      answer(&w, 100, BRW_STATUS_SENDING, 10, 5, 1);
  }
  assert_report(&w, BRW_OUTCOME_EXPIRED);
  assert_true(w.c.seen);
  assert_int_equal(w.sweeps, 0);
  /* emit_progress: a status change is a progress report's detail. */
  brw_campaign_opts_t o = default_opts();
  o.emit_progress = 1;
  start(&w, o, 0, 0);
  w.sweeping = 1;
  listed(&w, 1 * SEC, BRW_STATUS_SCHEDULED);
  assert_true(w.last.fetch);
  answer(&w, 100, BRW_STATUS_SCHEDULED, 10, 10, 1);
  assert_true(w.last.progress);
  fire(&w);
  assert_true(w.last.sweep);
  listed(&w, 1 * SEC, BRW_STATUS_SCHEDULED); /* unchanged: no fetch */
  assert_false(w.last.fetch);
  listed(&w, 1 * SEC, BRW_STATUS_SENDING);
  assert_true(w.last.fetch);
}


/* The sweep a campaign waits for ends without listing it: it fetches at
 * once (a miss), not at its watchdog; the end of another sweep (one that
 * ran while it asked) changes nothing; a failed sweep is no miss. */
static void test_sweep_released(void **state) {
  world_t w;
  start(&w, default_opts(), 0, 0);
  w.sweeping = 1;
  w.round = 1;
  fire(&w);
  assert_true(w.last.sweep);
  swept(&w, 1 * SEC, 0, 0); /* the sweep that was running */
  assert_false(w.last.fetch);
  assert_false(w.last.arm);
  assert_true(w.c.sweep & BRW_CSWEEP_AWAIT);
  swept(&w, 1 * SEC, 1, 0); /* its own */
  assert_true(w.last.fetch);
  assert_int_equal(w.c.misses, 1);
  assert_false(w.c.sweep & BRW_CSWEEP_AWAIT);
  answer(&w, 100, BRW_STATUS_SENDING, 10, 5, 1);
  w.round = 0;
  fire(&w);
  assert_true(w.last.sweep);
  swept(&w, 1 * SEC, 0, 1); /* failed */
  assert_true(w.last.fetch);
  assert_int_equal(w.c.misses, 1);
  /* Not waiting: a sweep's end is nothing to it. */
  answer(&w, 100, BRW_STATUS_SENDING, 10, 5, 1);
  swept(&w, 1 * SEC, 0, 0);
  assert_false(w.last.fetch);
  assert_false(w.last.arm);
}

static void test_random_lives(void **state) {
  brw_rng_t r;
  brw_rng_seed(&r, 20261206);
  int ends[4] = {0};
  for (int life = 0; life < 20000; life++) {
    world_t w;
    start(&w, random_opts(&r), (int64_t)pick(&r, 130000), (int)pick(&r, 2));
    brw_rng_seed(&w.rng, brw_rng_next(&r));
    w.account_failed = pick(&r, 10) == 0;
    w.sweeping = pick(&r, 2) == 0;
    int saw_final = 0;            /* a final status was answered */
    brw_status_t final_st = BRW_STATUS_UNKNOWN;
    int answered = 0;             /* a detail was answered */
    int fetch_never_answers = 0;  /* this fetch hangs */
    int guard = 0;
    while (!w.ended) {
      assert_true(++guard < 100000); /* ends, always */
      uint64_t left = w.due - w.now;
      uint64_t roll = pick(&r, 100);
      if (roll < 1) {
        brw_campaign_input_t in = {.kind = BRW_CIN_REVOKED};
        input(&w, in);
        break;
      }
      if (roll < 12) {
        event(&w, pick(&r, left + 1), (int)pick(&r, 2));
        continue;
      }
      if (roll < 22 && w.sweeping) {
        /* A sweep lists it: any status, final ones too (never an end by
         * itself); now and then the sweeps stop or start. */
        uint64_t k = pick(&r, 10);
        listed(&w, pick(&r, left + 1),
               k < 3 ? (k == 0   ? BRW_STATUS_DONE
                        : k == 1 ? BRW_STATUS_STOPPED
                                 : BRW_STATUS_SPAM)
                     : some_statuses[pick(&r, 8)]);
        if (pick(&r, 20) == 0)
          w.sweeping = !w.sweeping;
        continue;
      }
      if (roll < 27 && w.sweeping) {
        /* A sweep ends, of either parity, failed or not; the next ask
         * goes to the other parity now and then. */
        swept(&w, pick(&r, left + 1), (int)pick(&r, 2), pick(&r, 4) == 0);
        if (pick(&r, 3) == 0)
          w.round = !w.round;
        continue;
      }
      if (!w.fetch_out || fetch_never_answers) {
        fire(&w);
        if (w.last.fetch) {
          fetch_never_answers = pick(&r, 20) == 0;
          if (pick(&r, 30) == 0) { /* it could not start */
            brw_campaign_input_t in = {.kind = BRW_CIN_NOT_STARTED};
            fetch_back(&w, 0, in);
          }
        }
        continue;
      }
      /* The fetch out answers before its watchdog. */
      uint64_t after = pick(&r, left + 1);
      if (pick(&r, 2)) {
        brw_status_t st;
        uint64_t k = pick(&r, 40);
        st = k == 0   ? BRW_STATUS_DONE
             : k == 1 ? BRW_STATUS_STOPPED
             : k == 2 ? BRW_STATUS_SPAM
                      : some_statuses[pick(&r, 8)];
        int64_t total = (int64_t)pick(&r, 1000);
        answered = 1;
        if (brw_status_is_terminal(st)) {
          saw_final = 1;
          final_st = st;
        }
        answer(&w, after, st, total, (int64_t)pick(&r, (uint64_t)total + 1),
               pick(&r, 4));
      } else {
        brw_retry_class_t cls =
            pick(&r, 3) == 0 ? BRW_RETRY_404
                             : (brw_retry_class_t)pick(&r, BRW_RETRY__COUNT);
        failed(&w, after, cls, pick(&r, 4) == 0 ? (int64_t)pick(&r, 20000) : -1);
      }
    }
    assert_true(w.ended);
    ends[w.end.end]++;
    /* The deadline is honoured: nothing lives past it, bar a fetch's
     * http.timeout. */
    assert_true(w.ended_at <= w.c.deadline + w.o.answer_ms);
    switch (w.end.end) {
    case BRW_CEND_REPORT:
      if (w.end.outcome == BRW_OUTCOME_EXPIRED) {
        assert_true(w.ended_at >= w.c.deadline);
        assert_false(saw_final);
      } else {
        /* A final outcome only from a final status, the one answered. */
        assert_true(saw_final);
        assert_string_equal(brw_outcome_names[w.end.outcome],
                            brw_status_name(final_st));
      }
      break;
    case BRW_CEND_DLQ:
      /* A campaign that was seen is reported, unless the API stopped
       * showing it (a run of 404s past the grace period). */
      if (w.end.reason != BRW_DLQ_NOT_FOUND)
        assert_false(answered);
      assert_false(saw_final);
      if (w.end.reason != BRW_DLQ_NOT_FOUND)
        assert_true(w.ended_at >= w.c.deadline);
      if (w.end.reason == BRW_DLQ_AUTH_FAILED)
        assert_true(w.account_failed);
      break;
    case BRW_CEND_FORGET:
      break;
    default:
      fail_msg("ended without an end");
    }
  }
  /* The lives reached every kind of end. */
  assert_true(ends[BRW_CEND_REPORT] > 1000);
  assert_true(ends[BRW_CEND_DLQ] > 100);
  assert_true(ends[BRW_CEND_FORGET] > 100);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_first_delay),
      cmocka_unit_test(test_final_statuses),
      cmocka_unit_test(test_poll_backoff),
      cmocka_unit_test(test_poll_adaptive),
      cmocka_unit_test(test_progress),
      cmocka_unit_test(test_retry),
      cmocka_unit_test(test_not_found_grace),
      cmocka_unit_test(test_deadline_outcomes),
      cmocka_unit_test(test_watchdog),
      cmocka_unit_test(test_finished_bring_forward),
      cmocka_unit_test(test_revoked),
      cmocka_unit_test(test_results_need_a_fetch),
      cmocka_unit_test(test_sweep_stands_in),
      cmocka_unit_test(test_sweep_final_needs_detail),
      cmocka_unit_test(test_sweep_misses),
      cmocka_unit_test(test_sweep_exceptions),
      cmocka_unit_test(test_sweep_released),
      cmocka_unit_test(test_random_lives),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
