#include "brw/timers.h"
#include "brw/error.h"

#include <assert.h>
#include <stdlib.h>

_Static_assert(sizeof(void *) != 8 || sizeof(brw_timer_t) == 24,
               "brw_timer_t is meant to stay 24 bytes on 64-bit targets");

/* Slot numbers and sequence numbers are 32-bit; far more timers than this
 * would need 16 GB of heap alone. */
#define MAX_PENDING ((size_t)UINT32_MAX / 2)

#define PARENT(i) (((i)-1) >> 2)
#define FIRST_CHILD(i) (((i) << 2) + 1)

/* The heap order: earlier due first, then earlier start. Sequence numbers
 * are compared as plain integers: renumber() keeps every pending one below
 * next_seq, so they never wrap. */
static inline int before(const brw_timer_t *a, const brw_timer_t *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static inline void place(brw_timer_t **heap, size_t i, brw_timer_t *t) {
  heap[i] = t;
  t->index = (uint32_t)(i + 1);
}

/* Moves `t` from slot i towards the root until its parent is before it,
 * shifting the parents down into the hole. */
static void sift_up(brw_timer_t **heap, size_t i, brw_timer_t *t) {
  while (i > 0) {
    size_t p = PARENT(i);
    brw_timer_t *pt = heap[p];
    if (!before(t, pt))
      break;
    place(heap, i, pt);
    i = p;
  }
  place(heap, i, t);
}

/* Moves `t` from slot i towards the leaves until no child is before it.
 * The four children are compared pairwise: their entries are independent
 * loads, so their cache misses overlap. (Explicit prefetching did not
 * measurably help: tests/bench/bench_timers.) */
static void sift_down(brw_timer_t **heap, size_t n, size_t i, brw_timer_t *t) {
  for (;;) {
    size_t c = FIRST_CHILD(i);
    if (c >= n)
      break;
    size_t best = c;
    if (c + 4 <= n) {
      brw_timer_t *c0 = heap[c], *c1 = heap[c + 1], *c2 = heap[c + 2],
                  *c3 = heap[c + 3];
      brw_timer_t *m01 = before(c1, c0) ? c1 : c0;
      brw_timer_t *m23 = before(c3, c2) ? c3 : c2;
      size_t b01 = m01 == c0 ? c : c + 1;
      size_t b23 = m23 == c2 ? c + 2 : c + 3;
      best = before(m23, m01) ? b23 : b01;
    } else {
      for (size_t k = c + 1; k < n; k++)
        if (before(heap[k], heap[best]))
          best = k;
    }
    if (!before(heap[best], t))
      break;
    place(heap, i, heap[best]);
    i = best;
  }
  place(heap, i, t);
}

/* Puts `t`, whose key changed or which was just written to slot i, where
 * it belongs. */
static void fix(brw_timers_t *ts, size_t i, brw_timer_t *t) {
  if (i > 0 && before(t, ts->heap[PARENT(i)]))
    sift_up(ts->heap, i, t);
  else
    sift_down(ts->heap, ts->count, i, t);
}

/* Takes the timer in slot i out of the heap (it is then not pending). */
static void heap_remove(brw_timers_t *ts, size_t i) {
  brw_timer_t *t = ts->heap[i];
  size_t last = --ts->count;
  t->index = 0;
  if (i != last)
    fix(ts, i, ts->heap[last]);
}

static int by_seq(const void *a, const void *b) {
  uint32_t x = (*(brw_timer_t *const *)a)->seq;
  uint32_t y = (*(brw_timer_t *const *)b)->seq;
  return (x > y) - (x < y);
}

/* Called when the 32-bit start counter is about to wrap (once in 4 billion
 * starts): gives the pending timers the sequence numbers 0..count-1 in
 * their present order, so that every order they define (ties on due, and
 * "started before the pass") stays the same, then rebuilds the heap.
 * O(n log n) without allocating: about 0.1 s at 10^6 pending. */
static void renumber(brw_timers_t *ts) {
  brw_timer_t **heap = ts->heap;
  size_t n = ts->count;
  uint32_t boundary = 0;
  qsort(heap, n, sizeof(*heap), by_seq);
  for (size_t i = 0; i < n; i++) {
    if (heap[i]->seq < ts->pass_seq)
      boundary = (uint32_t)(i + 1);
    heap[i]->seq = (uint32_t)i;
    heap[i]->index = (uint32_t)(i + 1);
  }
  ts->pass_seq = boundary;
  ts->next_seq = (uint32_t)n;
  if (n > 1)
    for (size_t i = PARENT(n - 1) + 1; i-- > 0;)
      sift_down(heap, n, i, heap[i]);
}

static void on_timer(uv_timer_t *handle);

/* Makes the uv timer fire when the head is due, or stops it when nothing is
 * pending. It is started only when the head's due time differs from the
 * one it was started for, so operations that leave the head alone (most of
 * them) cost no libuv call. Not during a pass: the pass re-arms once at its
 * end, with after_pass set, when a head that is already due (which must
 * then have been started during the pass) is deferred by 1 ms: a 0 timeout
 * from inside a uv timer callback would run it again in the same
 * uv__run_timers loop on libuv < 1.48. */
static void rearm(brw_timers_t *ts, int after_pass) {
  if (ts->firing || ts->closing)
    return;
  if (ts->count == 0) {
    if (ts->armed) {
      uv_timer_stop(&ts->timer);
      ts->armed = 0;
    }
    return;
  }
  brw_timer_t *head = ts->heap[0];
  if (ts->armed && head->due == ts->armed_for)
    return;
  uint64_t now = uv_now(ts->loop);
  uint64_t timeout = 0;
  if (head->due > now)
    timeout = head->due - now;
  else if (after_pass && (head->seq >= ts->pass_seq || ts->capped))
    timeout = 1;
  uv_timer_start(&ts->timer, on_timer, timeout, 0);
  ts->armed = 1;
  ts->armed_for = head->due;
}

/* One pass: pops and fires the head while it is due at `now` and was
 * started before the pass. Every timer started during the pass gets a seq
 * >= pass_seq; with the real uv_now such a timer is also never before a
 * timer that qualifies (its due is >= now), so stopping at the first one
 * that does not qualify skips none that do. The head is re-read after every
 * callback, which may have changed the heap in any way. */
static size_t run_pass(brw_timers_t *ts, uint64_t now) {
  size_t fired = 0;
  ts->firing = 1;
  ts->capped = 0;
  ts->pass_seq = ts->next_seq;
  while (ts->count > 0 && !ts->closing) {
    brw_timer_t *t = ts->heap[0];
    if (t->due > now || t->seq >= ts->pass_seq)
      break;
    if (fired == ts->pass_max) {
      /* The rest after the poll phase: re-armed for 1 ms, not 0, which
       * libuv < 1.48 would run again in this same timer phase. */
      ts->capped = 1;
      break;
    }
    heap_remove(ts, 0);
    fired++;
    t->cb(t);
  }
  ts->firing = 0;
  rearm(ts, 1);
  return fired;
}

static void on_timer(uv_timer_t *handle) {
  brw_timers_t *ts = brw_timer_entry(handle, brw_timers_t, timer);
  ts->armed = 0; /* a one-shot uv timer is stopped before its callback */
  run_pass(ts, uv_now(ts->loop));
}

size_t brw_timers_fire_due(brw_timers_t *ts, uint64_t now) {
  if (ts->firing || ts->closing)
    return 0;
  return run_pass(ts, now);
}

int brw_timers_init(brw_timers_t *ts, uv_loop_t *loop) {
  *ts = (brw_timers_t){0};
  ts->loop = loop;
  ts->pass_max = BRW_TIMERS_PASS_MAX;
  return uv_timer_init(loop, &ts->timer) == 0 ? 0 : BRW_EIO;
}

void brw_timer_init(brw_timer_t *t) {
  *t = (brw_timer_t){0};
}

/* Doubles the heap array. Returns 0 or BRW_ENOMEM (the heap is then
 * unchanged). Never shrinks: the array is 8 bytes per timer at the largest
 * count seen. */
static int grow(brw_timers_t *ts) {
  if (ts->count >= MAX_PENDING)
    return BRW_ENOMEM;
  size_t cap = ts->cap ? ts->cap * 2 : 64;
  if (cap > MAX_PENDING)
    cap = MAX_PENDING;
  brw_timer_t **heap = realloc(ts->heap, cap * sizeof(*heap));
  if (!heap)
    return BRW_ENOMEM;
  ts->heap = heap;
  ts->cap = cap;
  return 0;
}

int brw_timer_start(brw_timers_t *ts, brw_timer_t *t, uint64_t timeout_ms,
                    brw_timer_cb cb) {
  if (!cb)
    return BRW_EINVAL;
  if (ts->closing)
    return BRW_ECANCELED;
  if (!t->index && ts->count == ts->cap) {
    int rc = grow(ts);
    if (rc != 0)
      return rc;
  }
  if (ts->next_seq == UINT32_MAX)
    renumber(ts);
  uint64_t now = uv_now(ts->loop);
  t->due = timeout_ms > UINT64_MAX - now ? UINT64_MAX : now + timeout_ms;
  t->cb = cb;
  t->seq = ts->next_seq++;
  if (t->index) {
    assert(t->index <= ts->count && ts->heap[t->index - 1] == t);
    fix(ts, t->index - 1, t);
  } else {
    ts->count++;
    sift_up(ts->heap, ts->count - 1, t);
  }
  rearm(ts, 0);
  return 0;
}

void brw_timer_stop(brw_timers_t *ts, brw_timer_t *t) {
  if (!t->index)
    return;
  if (ts->closing) {
    /* The heap may be freed already; the set forgets every entry anyway. */
    t->index = 0;
    return;
  }
  assert(t->index <= ts->count && ts->heap[t->index - 1] == t);
  heap_remove(ts, t->index - 1);
  rearm(ts, 0);
}

int brw_timer_pending(const brw_timer_t *t) {
  return t->index != 0;
}

uint64_t brw_timer_due(const brw_timer_t *t) {
  return t->due;
}

size_t brw_timers_count(const brw_timers_t *ts) {
  return ts->count;
}

static void on_closed(uv_handle_t *handle) {
  brw_timers_t *ts = brw_timer_entry(handle, brw_timers_t, timer);
  free(ts->heap);
  ts->heap = NULL;
  ts->count = 0;
  ts->cap = 0;
  if (ts->close_cb)
    ts->close_cb(ts->close_arg);
}

void brw_timers_close(brw_timers_t *ts, void (*cb)(void *arg), void *arg) {
  if (ts->closing)
    return;
  ts->closing = 1;
  ts->close_cb = cb;
  ts->close_arg = arg;
  ts->armed = 0;
  uv_close((uv_handle_t *)&ts->timer, on_closed);
}

int brw__timers_verify(const brw_timers_t *ts) {
  if (ts->count > ts->cap)
    return 0;
  for (size_t i = 0; i < ts->count; i++) {
    const brw_timer_t *t = ts->heap[i];
    if (t->index != i + 1 || t->seq >= ts->next_seq)
      return 0;
    if (i > 0 && before(t, ts->heap[PARENT(i)]))
      return 0;
  }
  return 1;
}
