/* Many one-shot timers on one libuv timer (one per tracked campaign).
 *
 * A uv_timer_t is 152 bytes and lives in libuv's pointer-linked binary heap;
 * at 1,000,000 campaigns that is 152 MB and 0.6 µs per re-arm
 * (docs/PERFORMANCE.md). A brw_timer_t is 24 bytes, embedded in the
 * caller's struct, plus one 8-byte slot in the set's heap array while it is
 * pending; the set drives all of them from ONE uv_timer_t, armed for the
 * earliest timer and re-armed only when that earliest due time changes.
 *
 * Why a 4-ary min-heap of pointers and not a timing wheel: a wheel is O(1)
 * but needs a list link in every entry (16 bytes more) and cascades or scans
 * to find the next due time for the uv timer; the heap needs only its slot
 * number in the entry, finds the minimum in O(1), and starts, re-arms and
 * stops in O(log4 n) (10 levels at 10^6). With 4 children per node the tree
 * is half as deep as a binary heap, and the four children's entries are
 * independent loads that the CPU fetches in parallel, so a level costs about
 * one cache miss. Timers are ordered by (due, start sequence): timers due in
 * the same millisecond fire in the order they were (re)started.
 *
 * Semantics follow uv_timer_t (libuv >= 1.48) where the worker relies on
 * them:
 *   - Times are in ms relative to uv_now(loop) at the call, as
 *     uv_timer_start; call uv_update_time first if the loop has been busy.
 *   - One pass of the uv timer fires the timers due at the time the pass
 *     began, earliest first, at most pass_max of them (BRW_TIMERS_PASS_MAX);
 *     the rest fire in the next pass, after the poll phase. A callback may start or stop any timer,
 *     including itself and timers due in the same pass (a stopped one does
 *     not fire). A timer (re)started during a pass never fires in that pass,
 *     even with timeout 0: it fires in a later loop iteration, so a callback
 *     that restarts itself with 0 cannot stall the loop. (libuv 1.44 itself
 *     would run such a timer again at once; the set arms its uv timer for
 *     1 ms in that case.)
 *   - Pending timers keep the loop alive, as active uv timers do.
 *
 * Everything runs on the loop thread; nothing here is thread-safe.
 */
#ifndef BRW_TIMERS_H
#define BRW_TIMERS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct brw_timer_s brw_timer_t;

/* Runs on the loop thread when `t` fires; `t` is no longer pending. Get the
 * enclosing struct with brw_timer_entry. */
typedef void (*brw_timer_cb)(brw_timer_t *t);

/* Embedded by the caller; the fields are private to src/timers.c. All zero
 * (static or calloc'ed memory) is the same as brw_timer_init. */
struct brw_timer_s {
  uint64_t due;    /* uv_now() ms at which it fires, while pending */
  brw_timer_cb cb; /* while pending */
  uint32_t index;  /* heap slot + 1 while pending, 0 when not */
  uint32_t seq;    /* start order among pending timers (ties on `due`) */
};

/* The enclosing struct of a timer embedded as `field` of `type`. */
#define brw_timer_entry(ptr, type, field)                                      \
  ((type *)((char *)(ptr)-offsetof(type, field)))

typedef struct brw_timers_s {
  uv_timer_t timer; /* the one libuv timer */
  uv_loop_t *loop;
  brw_timer_t **heap; /* 4-ary min-heap on (due, seq); owned */
  size_t count;       /* pending timers */
  size_t cap;         /* slots allocated in heap */
  uint64_t armed_for; /* the head's due when `timer` was last started */
  uint32_t next_seq;  /* seq of the next start */
  uint32_t pass_seq;  /* timers with seq >= this started after the pass */
  int armed;          /* `timer` is started */
  int firing;         /* inside a pass */
  int capped;         /* the last pass stopped at pass_max */
  size_t pass_max;    /* timers one pass fires at most (BRW_TIMERS_PASS_MAX;
                         tests may lower it) */
  int closing;
  void (*close_cb)(void *arg);
  void *close_arg;
} brw_timers_t;

/* Timers one pass fires at most. The rest of those due fire in the next
 * pass, 1 ms later, after the loop's poll phase: a million campaigns due at
 * once (a restart, a broker back) would otherwise hold sockets, signals and
 * /healthz for seconds. About 1000 fetch starts take a few ms. */
#define BRW_TIMERS_PASS_MAX 1000

/* Initialises an empty set on `loop` (its uv timer is not started; nothing
 * is allocated until the first start). Returns 0 or BRW_EIO. Whether or not
 * anything was started, the set must be closed with brw_timers_close before
 * the loop is closed. */
int brw_timers_init(brw_timers_t *ts, uv_loop_t *loop);

/* Marks `t` not pending. Needed once before first use (or zeroed memory),
 * and again before reusing a timer whose set was closed while it was
 * pending. */
void brw_timer_init(brw_timer_t *t);

/* Makes `t` fire `cb(t)` after `timeout_ms` (relative to uv_now). A pending
 * timer is re-armed: its old due time is dropped, and it counts as started
 * now for the order among timers due in the same ms. Returns 0;
 * BRW_EINVAL when cb is NULL; BRW_ECANCELED after brw_timers_close;
 * BRW_ENOMEM when the heap cannot grow (only when `t` was not pending). On
 * error `t` is unchanged and `cb` never runs. `t` is borrowed: it must stay
 * valid until it fires, is stopped, or the set is closed. */
int brw_timer_start(brw_timers_t *ts, brw_timer_t *t, uint64_t timeout_ms,
                    brw_timer_cb cb);

/* Stops `t` if pending; its callback will not run. Idempotent; allowed from
 * any callback. After brw_timers_close it only marks `t` not pending. */
void brw_timer_stop(brw_timers_t *ts, brw_timer_t *t);

/* 1 when `t` is pending in some set, else 0. */
int brw_timer_pending(const brw_timer_t *t);

/* When a pending `t` fires, in uv_now() ms. */
uint64_t brw_timer_due(const brw_timer_t *t);

/* Number of pending timers. */
size_t brw_timers_count(const brw_timers_t *ts);

/* Closes the uv timer and, in its close callback, frees the heap and then
 * calls cb(arg) (cb may be NULL). Pending timers are forgotten without
 * being touched (the caller owns and may already have freed them; they
 * need brw_timer_init before reuse); no callback runs after this call, even
 * when called from a timer callback in the middle of a pass. The memory of
 * `ts` must stay valid until cb runs. Calling it twice does nothing. */
void brw_timers_close(brw_timers_t *ts, void (*cb)(void *arg), void *arg);

/* For tests and benchmarks: runs one pass as the uv timer does, with `now`
 * in place of uv_now(loop): fires, earliest first, the timers due at or
 * before `now` that were started before this call (at most pass_max), then
 * re-arms the uv
 * timer. Timers that callbacks start still take their due time from
 * uv_now. Returns the number fired; 0 and does nothing when called from a
 * timer callback. */
size_t brw_timers_fire_due(brw_timers_t *ts, uint64_t now);

/* For tests: checks the heap order and every slot number; 1 when they
 * hold. O(n). */
int brw__timers_verify(const brw_timers_t *ts);

#endif
