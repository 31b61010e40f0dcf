/* When to fetch a campaign that is not terminal yet (SPEC §5): plain
 * exponential backoff, or the adaptive schedule built on it. Pure: the
 * clock and the random generator are the caller's. */
#ifndef BRW_SCHEDULE_H
#define BRW_SCHEDULE_H

#include "brw/vocab.h"

#include "brw/backoff.h"
#include "brw/bsg.h"

#include <stdint.h>

typedef struct {
  uint64_t min_interval_ms; /* poll.min_interval */
  uint64_t max_interval_ms; /* poll.max_interval */
  double jitter;            /* poll.jitter */
  int adaptive;             /* poll.adaptive */
} brw_schedule_opts_t;

/* What one successful fetch saw. */
typedef struct {
  brw_status_t status;
  int64_t total;    /* total_messages, -1 when unknown */
  int64_t pending;  /* messages not resolved yet, -1 when unknown */
  int64_t at_ms;    /* when it was fetched (epoch ms), 0: no such fetch */
  /* The same moment on the monotonic clock (uv_now), 0 when unknown: the
   * pace between two fetches is measured on it, so that a step of the wall
   * clock between them does not fake a pace. at_ms stays for comparisons
   * with the API's own (wall-clock) times. */
  uint64_t mono_ms;
} brw_poll_sample_t;

/* What chose a delay (brw_schedule_basis_t, brw/vocab.h); its name, a
 * metrics label. */
const char *brw_schedule_basis_name(brw_schedule_basis_t b);

/* The pace of a send in messages resolved per ms: from the previous fetch
 * when it also saw the send under way and something moved since, otherwise
 * from the actual start (where nothing was resolved yet). 0 when there is
 * no usable progress. */
double brw_send_rate(const brw_poll_sample_t *cur, const brw_poll_sample_t *prev,
                     int64_t actual_start_ms);

/* The delay until the next fetch, in ms, after a non-terminal answer `cur`
 * (`prev`: the fetch before it, at_ms 0 when none) of a campaign whose
 * detail gives the scheduled start and the actual start (epoch ms, 0 when
 * absent). `attempt` counts the polls since the last status change and is
 * advanced.
 *
 * Backoff: poll.min_interval doubling to poll.max_interval, each delay
 * reduced by up to `jitter` of itself (never below the minimum).
 *
 * Adaptive: a campaign scheduled for later is fetched min/4 after its
 * start; a campaign sending, min/4 after the moment its unresolved
 * messages run out at the measured pace, but at least min and at most
 * max (jittered), so that a send that stops early or slows down is seen as
 * soon as by a backoff that has grown; anything else (no totals, no
 * progress, paused, moderation, a start already passed) is the backoff. */
uint64_t brw_schedule_next(const brw_schedule_opts_t *o,
                           const brw_poll_sample_t *cur,
                           const brw_poll_sample_t *prev,
                           int64_t scheduled_start_ms, int64_t actual_start_ms,
                           int64_t now_ms, unsigned *attempt, brw_rng_t *rng,
                           brw_schedule_basis_t *basis);

/* Whether a status change from `from` to `to` restarts the backoff at
 * poll.min_interval. It does, except that the adaptive schedule lets the
 * backoff go on growing into a pause: a paused campaign changes only when
 * someone resumes or stops it, which a grown backoff sees soon enough, and
 * after a resume the estimate takes over again. */
int brw_schedule_resets(const brw_schedule_opts_t *o, brw_status_t from,
                        brw_status_t to);

/* ---- events (SPEC §5 poll.initial_delay, poll.finished_delay) --------- */

/* The delay of a new campaign's first fetch: poll.finished_delay after a
 * campaign.finished (the send is over, the report is near), else
 * poll.initial_delay. */
uint64_t brw_schedule_first(uint64_t initial_delay_ms,
                            uint64_t finished_delay_ms, int finished);

/* A campaign.finished for a campaign already tracked, whose next fetch is
 * due in `due_in_ms` (0: now or no timer): 1 when the fetch is to be
 * brought forward to poll.finished_delay (it is due later than that; the
 * success backoff then restarts), else 0 (it stays). */
int brw_schedule_bring_forward(uint64_t due_in_ms,
                               uint64_t finished_delay_ms);

/* ---- after a failed fetch (SPEC §5 retry.*, poll.not_found_grace) ------ */

/* The delay before the next attempt after a failed fetch: the jittered
 * backoff of *attempt (brw_backoff_ms between retry_min_ms and
 * retry_max_ms; *attempt then counts one more), or the server's
 * Retry-After (retry_after_ms > 0) when that is longer, itself capped at
 * retry_max_ms, so that no answer can park a campaign for longer than the
 * operator allowed. */
uint64_t brw_schedule_retry(uint64_t retry_min_ms, uint64_t retry_max_ms,
                            double jitter, unsigned *attempt,
                            int64_t retry_after_ms, brw_rng_t *rng);

/* The 404 grace period: a campaign the API does not show yet is polled on
 * until `grace_ms` after its first 404. *since (monotonic ms; 0: no 404
 * yet) records that first 404 at `now`; returns 1 once the grace period has
 * passed (the campaign goes to the DLQ as not_found), else 0. A clock that
 * reads 0 is taken as 1, so that a 404 is never lost. */
int brw_schedule_not_found_over(uint64_t *since, uint64_t now,
                                uint64_t grace_ms);

/* ---- campaign deadlines (SPEC §5 poll.max_age) ------------------------
 *
 * A deadline counts from the first event's occurred_at, a wall-clock time,
 * but it is kept on the monotonic clock of the timers (uv_now, ms): the
 * wall clock is read once, when the campaign is created, and a later step
 * of it (NTP, a VM resumed, an operator) moves neither the deadline nor
 * the timers. Before, the deadline was compared with the wall clock and the
 * timers ran on the monotonic one; a step back while a fetch was out made
 * the timer fire "before" the deadline, return, and never be armed again. */

/* The monotonic time of the deadline of a campaign whose first event
 * happened at wall time `first_event_ms`, computed at wall time
 * `wall_now_ms` = monotonic time `mono_now_ms`: mono_now_ms plus what is
 * left of max_age_ms, which is clamped to [0, max_age_ms] (an event from
 * the future counts from now). Saturates instead of overflowing. */
uint64_t brw_deadline_at(int64_t first_event_ms, uint64_t max_age_ms,
                         int64_t wall_now_ms, uint64_t mono_now_ms);

/* `delay_ms`, shortened so that a timer started at `now` fires no later than
 * `deadline` (both monotonic). */
uint64_t brw_deadline_cap(uint64_t deadline, uint64_t now, uint64_t delay_ms);

/* What a campaign's timer does when it fires. Every case acts: the timer
 * either ends the campaign, starts a fetch, or is armed again. */
typedef enum {
  BRW_TIMER_EXPIRE = 0, /* the deadline passed: report or DLQ now */
  BRW_TIMER_FETCH,      /* start a fetch */
  BRW_TIMER_WAIT        /* a fetch is out: wake up again after *delay_ms */
} brw_timer_action_t;

/* Decides for a timer firing at monotonic `now`, with a fetch out or not.
 * While a fetch is out the timer watches the deadline plus `answer_ms`
 * (http.timeout), so that a request under way at the deadline can answer
 * first; *delay_ms (WAIT only) is always > 0, so the timer cannot spin,
 * and after it `now` is past the deadline, so a fetch that never answers
 * (say, waiting for a login that never succeeds) still ends at the
 * deadline. */
brw_timer_action_t brw_timer_action(uint64_t deadline, uint64_t now,
                                    int fetch_out, uint64_t answer_ms,
                                    uint64_t *delay_ms);

#endif
