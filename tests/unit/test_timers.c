#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/timers.h"
#include "uvtest.h"

/* A caller's struct with an embedded timer, as a campaign has. */
typedef struct {
  int id;
  brw_timer_t timer;
} item_t;

/* What the callbacks of one test see: the order they fired in, and what
 * some of them do when they fire. */
#define MAX_ITEMS 1000
static struct {
  brw_timers_t *ts;
  item_t items[MAX_ITEMS];
  int fired[4 * MAX_ITEMS];
  size_t nfired;
  int restart_self; /* on_restart: restart with 0 this many times */
  item_t *victim;   /* on_stop_other: stop this one */
  int closed;
} g;

static void reset(brw_timers_t *ts) {
  memset(&g, 0, sizeof(g));
  g.ts = ts;
  for (int i = 0; i < MAX_ITEMS; i++) {
    g.items[i].id = i;
    brw_timer_init(&g.items[i].timer);
  }
}

static void on_fire(brw_timer_t *t) {
  item_t *it = brw_timer_entry(t, item_t, timer);
  assert_false(brw_timer_pending(t));
  g.fired[g.nfired++] = it->id;
}

static void on_closed(void *arg) {
  (*(int *)arg)++;
}

/* Closes the set and checks that the loop has nothing left. */
/* Every case: a fresh loop, a set on it, and the items reset. */
static void open_all(uv_loop_t *loop, brw_timers_t *ts) {
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(brw_timers_init(ts, loop), 0);
  reset(ts);
}

static void close_all(uv_loop_t *loop, brw_timers_t *ts) {
  int closed = 0;
  brw_timers_close(ts, on_closed, &closed);
  brw_timers_close(ts, on_closed, &closed); /* twice: nothing */
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void test_layout(void **state) {
  /* The point of the module: small entries, and zeroed memory is a valid
   * stopped timer. */
  assert_true(sizeof(brw_timer_t) <= 24);
  brw_timer_t t;
  memset(&t, 0, sizeof(t));
  assert_false(brw_timer_pending(&t));
}

static int fired_at_least(void *ctx, const void *arg) {
  return g.nfired >= *(const size_t *)arg;
}

/* Through the real loop: timers fire in due order, after their timeout. */
static void test_order_by_due_real_loop(void **state) {
  uv_loop_t loop;
  uv_timer_t tick;
  brw_timers_t ts;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_timer_init(&loop, &tick);
  assert_int_equal(brw_timers_init(&ts, &loop), 0);
  reset(&ts);
  static const uint64_t timeouts[] = {40, 10, 30, 0, 20, 50};
  uv_update_time(&loop);
  uint64_t t0 = uv_now(&loop);
  for (int i = 0; i < 6; i++)
    assert_int_equal(
        brw_timer_start(&ts, &g.items[i].timer, timeouts[i], on_fire), 0);
  assert_int_equal(brw_timers_count(&ts), 6);
  assert_true(brw__timers_verify(&ts));
  size_t want = 6;
  assert_true(
      uvtest_run_until(&loop, &tick, fired_at_least, NULL, &want, 2000));
  static const int order[] = {3, 1, 4, 2, 0, 5};
  assert_memory_equal(g.fired, order, sizeof(order));
  assert_true(uv_now(&loop) - t0 >= 50);
  assert_int_equal(brw_timers_count(&ts), 0);
  assert_false(uv_is_active((uv_handle_t *)&ts.timer));
  uv_close((uv_handle_t *)&tick, NULL);
  close_all(&loop, &ts);
}

/* Equal due times fire in (re)start order; a re-armed timer counts as
 * started when it was re-armed. */
static void test_fifo_equal_due(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  uint64_t now = uv_now(&loop);
  for (int i = 0; i < 200; i++)
    assert_int_equal(brw_timer_start(&ts, &g.items[i].timer, 7, on_fire), 0);
  /* Re-arm 0, 50 and 100 to the same due: they move to the end. */
  for (int i = 0; i <= 100; i += 50)
    assert_int_equal(brw_timer_start(&ts, &g.items[i].timer, 7, on_fire), 0);
  assert_true(brw__timers_verify(&ts));
  assert_int_equal(brw_timers_fire_due(&ts, now + 6), 0);
  assert_int_equal(brw_timers_fire_due(&ts, now + 7), 200);
  size_t k = 0;
  for (int i = 0; i < 200; i++)
    if (i % 50 != 0 || i > 100)
      assert_int_equal(g.fired[k++], i);
  assert_int_equal(g.fired[k++], 0);
  assert_int_equal(g.fired[k++], 50);
  assert_int_equal(g.fired[k++], 100);
  close_all(&loop, &ts);
}

/* The earliest due time among g.items[0..n) that are pending. */
static uint64_t min_due(int n) {
  uint64_t m = UINT64_MAX;
  for (int i = 0; i < n; i++)
    if (brw_timer_pending(&g.items[i].timer) &&
        brw_timer_due(&g.items[i].timer) < m)
      m = brw_timer_due(&g.items[i].timer);
  return m;
}

/* The uv timer is armed for the head, whatever happened to it. */
static void assert_armed_for_head(brw_timers_t *ts, int n) {
  if (brw_timers_count(ts) == 0) {
    assert_false(uv_is_active((uv_handle_t *)&ts->timer));
    return;
  }
  assert_true(uv_is_active((uv_handle_t *)&ts->timer));
  assert_int_equal(ts->armed_for, min_due(n));
  /* The uv timer is due with the head, or 1 ms later for a head that a
   * callback started already due (see rearm() in src/timers.c). */
  uint64_t due_in = uv_timer_get_due_in(&ts->timer);
  uint64_t head = min_due(n), now = uv_now(ts->loop);
  if (head > now)
    assert_int_equal(due_in, head - now);
  else
    assert_in_range(due_in, 0, 1);
}

static void test_stop_and_rearm(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  uint64_t now = uv_now(&loop);
  /* items i due at now + 100 + 10 i: 0 is the head, 99 the tail */
  for (int i = 0; i < 100; i++) {
    assert_int_equal(
        brw_timer_start(&ts, &g.items[i].timer, 100 + 10 * i, on_fire), 0);
    assert_armed_for_head(&ts, 100);
  }
  brw_timer_stop(&ts, &g.items[0].timer); /* head */
  assert_armed_for_head(&ts, 100);
  brw_timer_stop(&ts, &g.items[0].timer);  /* again: nothing */
  brw_timer_stop(&ts, &g.items[50].timer); /* middle */
  brw_timer_stop(&ts, &g.items[99].timer); /* tail */
  assert_int_equal(brw_timers_count(&ts), 97);
  assert_true(brw__timers_verify(&ts));
  assert_armed_for_head(&ts, 100);
  /* re-arm the head later, the tail earliest, a middle one to the end */
  assert_int_equal(brw_timer_start(&ts, &g.items[1].timer, 5000, on_fire), 0);
  assert_armed_for_head(&ts, 100);
  assert_int_equal(brw_timer_start(&ts, &g.items[98].timer, 1, on_fire), 0);
  assert_armed_for_head(&ts, 100);
  assert_int_equal(brw_timer_start(&ts, &g.items[30].timer, 6000, on_fire), 0);
  assert_int_equal(brw_timers_count(&ts), 97);
  assert_true(brw__timers_verify(&ts));
  assert_int_equal(brw_timers_fire_due(&ts, now + 10000), 97);
  size_t k = 0;
  assert_int_equal(g.fired[k++], 98);
  for (int i = 2; i < 98; i++)
    if (i != 50 && i != 30)
      assert_int_equal(g.fired[k++], i);
  assert_int_equal(g.fired[k++], 1);
  assert_int_equal(g.fired[k++], 30);
  assert_int_equal(k, 97);
  assert_armed_for_head(&ts, 100);
  close_all(&loop, &ts);
}

/* The uv timer is started only when the head's due time changes. libuv's
 * loop->timer_counter (a private field, read only here) counts every
 * uv_timer_start on the loop. */
static void test_uv_timer_started_only_for_new_head(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  uint64_t c0 = loop.timer_counter;
  for (int i = 0; i < 500; i++) /* later and later: one head */
    brw_timer_start(&ts, &g.items[i].timer, 1000 + (uint64_t)i, on_fire);
  assert_int_equal(loop.timer_counter - c0, 1);
  for (int i = 1; i < 500; i++) /* re-arm all but the head, still later */
    brw_timer_start(&ts, &g.items[i].timer, 2000 + (uint64_t)i, on_fire);
  for (int i = 250; i < 500; i++)
    brw_timer_stop(&ts, &g.items[i].timer);
  assert_int_equal(loop.timer_counter - c0, 1);
  c0 = loop.timer_counter;
  for (int i = 500; i < 600; i++) /* earlier and earlier: a new head each */
    brw_timer_start(&ts, &g.items[i].timer, 999 - (uint64_t)(i - 500), on_fire);
  assert_int_equal(loop.timer_counter - c0, 100);
  assert_armed_for_head(&ts, 600);
  close_all(&loop, &ts);
}

static void on_restart(brw_timer_t *t) {
  on_fire(t);
  if (g.restart_self > 0) {
    g.restart_self--;
    assert_int_equal(brw_timer_start(g.ts, t, 0, on_restart), 0);
    assert_true(brw_timer_pending(t));
  }
}

/* A callback that restarts itself with 0 fires once per pass, and the loop
 * goes on (with libuv 1.44 a 0-timeout uv timer restarted in its callback
 * would spin in uv__run_timers: the test would hang). */
static void test_restart_self_with_zero(void **state) {
  uv_loop_t loop;
  uv_timer_t tick;
  brw_timers_t ts;
  assert_int_equal(uv_loop_init(&loop), 0);
  uv_timer_init(&loop, &tick);
  assert_int_equal(brw_timers_init(&ts, &loop), 0);
  reset(&ts);
  g.restart_self = 1000000;
  assert_int_equal(brw_timer_start(&ts, &g.items[0].timer, 0, on_restart), 0);
  assert_int_equal(brw_timers_fire_due(&ts, uv_now(&loop)), 1);
  assert_int_equal(brw_timers_fire_due(&ts, uv_now(&loop)), 1);
  assert_int_equal(g.nfired, 2);
  /* Each loop iteration fires it at most once, and uv_run returns. */
  for (int i = 0; i < 20; i++) {
    size_t before = g.nfired;
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_in_range(g.nfired - before, 0, 1);
  }
  size_t want = g.nfired + 5;
  assert_true(
      uvtest_run_until(&loop, &tick, fired_at_least, NULL, &want, 2000));
  g.restart_self = 0;
  want = g.nfired + 1;
  assert_true(
      uvtest_run_until(&loop, &tick, fired_at_least, NULL, &want, 2000));
  assert_false(brw_timer_pending(&g.items[0].timer));
  assert_int_equal(brw_timers_count(&ts), 0);
  uv_close((uv_handle_t *)&tick, NULL);
  close_all(&loop, &ts);
}

/* One pass fires at most pass_max timers, in due order; the rest fire in
 * the following passes. */
static void test_pass_cap(void **state) {
  (void)state;
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  ts.pass_max = 100;
  for (int i = 0; i < MAX_ITEMS; i++)
    assert_int_equal(brw_timer_start(&ts, &g.items[i].timer, 0, on_fire), 0);
  uint64_t now = uv_now(&loop);
  for (int pass = 0; pass < MAX_ITEMS / 100; pass++)
    assert_int_equal(brw_timers_fire_due(&ts, now), 100);
  assert_int_equal(brw_timers_fire_due(&ts, now), 0);
  for (int i = 0; i < MAX_ITEMS; i++)
    assert_int_equal(g.fired[i], i);
  close_all(&loop, &ts);
}

static size_t g_fired_when_io;

static void on_pipe_readable(uv_poll_t *p, int status, int events) {
  (void)status;
  (void)events;
  g_fired_when_io = g.nfired;
  uv_poll_stop(p);
}

/* Many timers due at once do not hold up I/O: a pipe readable from the
 * start is served after the first capped pass, not after every timer (it
 * was served only after all of them before the cap). */
static void test_pass_cap_serves_io(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_timer_t tick;
  uv_poll_t poll;
  brw_timers_t ts;
  int fds[2];
  open_all(&loop, &ts);
  ts.pass_max = 100;
  uv_timer_init(&loop, &tick);
  assert_int_equal(pipe(fds), 0);
  assert_int_equal(write(fds[1], "x", 1), 1);
  uv_poll_init(&loop, &poll, fds[0]);
  g_fired_when_io = (size_t)-1;
  for (int i = 0; i < MAX_ITEMS; i++)
    assert_int_equal(brw_timer_start(&ts, &g.items[i].timer, 0, on_fire), 0);
  uv_poll_start(&poll, UV_READABLE, on_pipe_readable);
  size_t want = MAX_ITEMS;
  assert_true(
      uvtest_run_until(&loop, &tick, fired_at_least, NULL, &want, 5000));
  assert_true(g_fired_when_io < MAX_ITEMS);
  uv_close((uv_handle_t *)&tick, NULL);
  uv_close((uv_handle_t *)&poll, NULL);
  close_all(&loop, &ts);
  close(fds[0]);
  close(fds[1]);
}

static void on_stop_other(brw_timer_t *t) {
  on_fire(t);
  brw_timer_stop(g.ts, &g.victim->timer);
  assert_false(brw_timer_pending(&g.victim->timer));
}

static void on_restart_other(brw_timer_t *t) {
  on_fire(t);
  assert_int_equal(brw_timer_start(g.ts, &g.victim->timer, 0, on_fire), 0);
}

/* A callback stops a timer due in the same pass: it does not fire. One that
 * restarts it with 0 delays it to the next pass. */
static void test_stop_other_in_pass(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  uint64_t now = uv_now(&loop);
  g.victim = &g.items[1];
  brw_timer_start(&ts, &g.items[0].timer, 0, on_stop_other);
  brw_timer_start(&ts, &g.items[1].timer, 0, on_fire);
  brw_timer_start(&ts, &g.items[2].timer, 0, on_fire);
  assert_int_equal(brw_timers_fire_due(&ts, now), 2);
  assert_int_equal(g.nfired, 2);
  assert_int_equal(g.fired[0], 0);
  assert_int_equal(g.fired[1], 2);
  assert_int_equal(brw_timers_count(&ts), 0);

  g.nfired = 0;
  g.victim = &g.items[4];
  brw_timer_start(&ts, &g.items[3].timer, 0, on_restart_other);
  brw_timer_start(&ts, &g.items[4].timer, 0, on_fire);
  brw_timer_start(&ts, &g.items[5].timer, 0, on_fire);
  assert_int_equal(brw_timers_fire_due(&ts, now), 2);
  assert_int_equal(g.fired[0], 3);
  assert_int_equal(g.fired[1], 5);
  assert_true(brw_timer_pending(&g.items[4].timer));
  assert_int_equal(brw_timers_fire_due(&ts, now), 1);
  assert_int_equal(g.fired[2], 4);
  close_all(&loop, &ts);
}

/* Every 2^32 starts the sequence numbers are compacted: the order of equal
 * due times and "started before the pass" survive it. */
static void test_sequence_wrap(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  uint64_t now = uv_now(&loop);
  for (int i = 0; i < 300; i++) {
    if (i == 100)
      ts.next_seq = UINT32_MAX - 50; /* jumping ahead is harmless */
    assert_int_equal(brw_timer_start(&ts, &g.items[i].timer,
                                     10 + (uint64_t)(i % 3), on_fire),
                     0);
  }
  assert_true(ts.next_seq < 1000); /* it was renumbered */
  assert_true(brw__timers_verify(&ts));
  assert_int_equal(brw_timers_fire_due(&ts, now + 20), 300);
  size_t k = 0;
  for (int r = 0; r < 3; r++)
    for (int i = r; i < 300; i += 3)
      assert_int_equal(g.fired[k++], i);

  /* A wrap inside a pass: each callback restarts itself with 0. */
  reset(&ts);
  g.restart_self = 100;
  for (int i = 0; i < 50; i++)
    brw_timer_start(&ts, &g.items[i].timer, 0, on_restart);
  ts.next_seq = UINT32_MAX - 20;
  assert_int_equal(brw_timers_fire_due(&ts, now), 50);
  assert_int_equal(brw_timers_count(&ts), 50);
  assert_int_equal(brw_timers_fire_due(&ts, now), 50);
  for (int i = 0; i < 100; i++)
    assert_int_equal(g.fired[i], i % 50);
  assert_true(brw__timers_verify(&ts));
  close_all(&loop, &ts);
}

static void test_errors(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  assert_int_equal(brw_timer_start(&ts, &g.items[0].timer, 5, NULL),
                   BRW_EINVAL);
  assert_false(brw_timer_pending(&g.items[0].timer));
  /* A timeout that overflows uv_now + timeout is clamped, not wrapped. */
  assert_int_equal(brw_timer_start(&ts, &g.items[1].timer, UINT64_MAX, on_fire),
                   0);
  assert_int_equal(brw_timer_due(&g.items[1].timer), UINT64_MAX);
  assert_int_equal(brw_timer_start(&ts, &g.items[2].timer, 5, on_fire), 0);
  assert_int_equal(brw_timers_fire_due(&ts, UINT64_MAX - 1), 1);
  int closed = 0;
  brw_timers_close(&ts, on_closed, &closed);
  assert_int_equal(brw_timer_start(&ts, &g.items[3].timer, 5, on_fire),
                   BRW_ECANCELED);
  assert_false(brw_timer_pending(&g.items[3].timer));
  assert_int_equal(brw_timers_fire_due(&ts, UINT64_MAX), 0);
  brw_timer_stop(&ts, &g.items[1].timer); /* after close: marks it stopped */
  assert_false(brw_timer_pending(&g.items[1].timer));
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_close_in_pass(brw_timer_t *t) {
  on_fire(t);
  brw_timers_close(g.ts, on_closed, &g.closed);
}

/* Closing with timers pending forgets them; closing from a callback stops
 * the pass. The loop then closes cleanly. */
static void test_close_pending(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  for (int i = 0; i < 100; i++)
    brw_timer_start(&ts, &g.items[i].timer, 3600 * 1000, on_fire);
  close_all(&loop, &ts);
  assert_int_equal(g.nfired, 0);

  open_all(&loop, &ts);
  brw_timer_start(&ts, &g.items[0].timer, 0, on_close_in_pass);
  for (int i = 1; i < 10; i++)
    brw_timer_start(&ts, &g.items[i].timer, 0, on_fire);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(g.nfired, 1);
  assert_int_equal(g.closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- 100,000 random operations against a reference model ---- */

/* The model: per item, pending, due, and a 64-bit start sequence that
 * never wraps. */
static struct {
  int pending[MAX_ITEMS];
  uint64_t due[MAX_ITEMS];
  uint64_t seq[MAX_ITEMS];
  uint64_t next_seq;
  uint64_t pass_seq;
  uint64_t pass_now;
  size_t count;
  size_t fired;
} m;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545F4914F6CDD1Dull;
}

static void on_model_fire(brw_timer_t *t);

static void model_start(int id, uint64_t timeout) {
  assert_int_equal(
      brw_timer_start(g.ts, &g.items[id].timer, timeout, on_model_fire), 0);
  if (!m.pending[id])
    m.count++;
  m.pending[id] = 1;
  m.due[id] = uv_now(g.ts->loop) + timeout;
  m.seq[id] = m.next_seq++;
  assert_true(brw_timer_pending(&g.items[id].timer));
  assert_int_equal(brw_timer_due(&g.items[id].timer), m.due[id]);
}

static void model_stop(int id) {
  brw_timer_stop(g.ts, &g.items[id].timer);
  if (m.pending[id])
    m.count--;
  m.pending[id] = 0;
  assert_false(brw_timer_pending(&g.items[id].timer));
}

/* The timer the model says fires next in the current pass, or -1. */
static int model_next(void) {
  int best = -1;
  for (int i = 0; i < MAX_ITEMS; i++) {
    if (!m.pending[i] || m.due[i] > m.pass_now || m.seq[i] >= m.pass_seq)
      continue;
    if (best < 0 || m.due[i] < m.due[best] ||
        (m.due[i] == m.due[best] && m.seq[i] < m.seq[best]))
      best = i;
  }
  return best;
}

/* Fires: must be the model's next; then does what a callback may do. */
static void on_model_fire(brw_timer_t *t) {
  item_t *it = brw_timer_entry(t, item_t, timer);
  assert_int_equal(it->id, model_next());
  assert_true(m.pending[it->id]);
  m.pending[it->id] = 0;
  m.count--;
  m.fired++;
  for (uint64_t k = rnd() % 3; k > 0; k--) {
    uint64_t r = rnd();
    int id = r % 4 == 0 ? it->id : (int)((r >> 8) % MAX_ITEMS);
    if (r % 3 == 0)
      model_stop(id);
    else
      model_start(id, (r >> 32) % 30);
  }
}

static void test_random_against_model(void **state) {
  uv_loop_t loop;
  brw_timers_t ts;
  open_all(&loop, &ts);
  memset(&m, 0, sizeof(m));
  /* The loop never runs here: the test moves its cached time (uv_now, the
   * private field loop.time) forward by hand instead of waiting. */
  uint64_t fires = 0;
  for (int op = 0; op < 100000; op++) {
    uint64_t r = rnd();
    int id = (int)((r >> 16) % MAX_ITEMS);
    switch (r % 10) {
    case 0:
    case 1:
    case 2:
    case 3:
      model_start(id, (r >> 40) % 200);
      break;
    case 4:
    case 5:
      model_stop(id);
      break;
    case 6:
    case 7:
      loop.time += (r >> 40) % 10;
      /* fall through */
    default:
      m.pass_now = uv_now(&loop);
      m.pass_seq = m.next_seq;
      size_t before = m.fired;
      size_t n = brw_timers_fire_due(&ts, uv_now(&loop));
      assert_int_equal(n, m.fired - before);
      assert_int_equal(model_next(), -1); /* none left behind */
      fires += n;
      break;
    }
    if (op % 20000 == 19999 && ts.next_seq < UINT32_MAX - 200)
      ts.next_seq = UINT32_MAX - (uint32_t)(rnd() % 100); /* force renumber */
    assert_int_equal(brw_timers_count(&ts), m.count);
    assert_armed_for_head(&ts, MAX_ITEMS);
    if (op % 97 == 0) {
      assert_true(brw__timers_verify(&ts));
      for (int i = 0; i < MAX_ITEMS; i++)
        assert_int_equal(brw_timer_pending(&g.items[i].timer), m.pending[i]);
    }
  }
  assert_true(fires > 10000); /* the test did fire timers, many */
  assert_true(brw__timers_verify(&ts));
  close_all(&loop, &ts);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_layout),
      cmocka_unit_test(test_order_by_due_real_loop),
      cmocka_unit_test(test_fifo_equal_due),
      cmocka_unit_test(test_stop_and_rearm),
      cmocka_unit_test(test_uv_timer_started_only_for_new_head),
      cmocka_unit_test(test_restart_self_with_zero),
      cmocka_unit_test(test_stop_other_in_pass),
      cmocka_unit_test(test_pass_cap),
      cmocka_unit_test(test_pass_cap_serves_io),
      cmocka_unit_test(test_sequence_wrap),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_close_pending),
      cmocka_unit_test(test_random_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
