#include "brw/campaign.h"

#include <string.h>

/* A million of them are embedded in campaigns (docs/PERFORMANCE.md). */
_Static_assert(sizeof(brw_campaign_t) <= 56, "brw_campaign_t grew");

static const char *const state_names[BRW_CAMPAIGN__COUNT + 1] = {
#define BRW_X_(e, s) s,
    BRW_CAMPAIGN_STATES(BRW_X_)
#undef BRW_X_
        NULL};

const char *brw_campaign_state_name(brw_campaign_state_t s) {
  return (unsigned)s < BRW_CAMPAIGN__COUNT ? state_names[s] : "?";
}

const char *brw_campaign_input_name(brw_campaign_input_kind_t k) {
  static const char *const names[] = {"event",   "timer",       "fetched",
                                       "failed",  "not_started", "revoked",
                                       "listed",  "swept"};
  return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

/* Attempt counters are a byte each: the backoff reaches poll.max_interval
 * (or retry.max) long before 255 doublings, so saturating changes nothing. */
static uint8_t attempt_byte(unsigned a) {
  return a > UINT8_MAX ? UINT8_MAX : (uint8_t)a;
}

static void step_init(brw_campaign_step_t *out) {
  memset(out, 0, sizeof(*out));
  out->basis = -1;
}

/* Arms the timer for `delay_ms`, never past the deadline: the moment the
 * deadline passes, the campaign is looked at. */
static void arm(const brw_campaign_t *c, uint64_t now, uint64_t delay_ms,
                brw_campaign_step_t *out) {
  out->arm = 1;
  out->timer_ms = brw_deadline_cap(c->deadline, now, delay_ms);
}

static void end_report(brw_campaign_t *c, brw_outcome_t outcome,
                       brw_campaign_step_t *out) {
  c->state = BRW_CAMPAIGN_ENDED;
  out->end = BRW_CEND_REPORT;
  out->outcome = outcome;
}

static void end_dlq(brw_campaign_t *c, brw_dlq_reason_t reason,
                    const char *message, int last_error,
                    brw_campaign_step_t *out) {
  c->state = BRW_CAMPAIGN_ENDED;
  out->end = BRW_CEND_DLQ;
  out->reason = reason;
  out->message = message;
  out->last_error = last_error;
}

/* The deadline passed (SPEC §5 poll.max_age). A campaign that was seen is
 * reported as `expired` with its last detail (SPEC §4). One that never
 * answered with a detail goes to the DLQ with the reason it did not: the
 * account's key is rejected, the API does not know the campaign, or it
 * answered with errors; one that was never even fetched (the deadline
 * came before the first fetch, or a fetch never answered) is an `expired`
 * report without a detail. */
static void expire(brw_campaign_t *c, int account_failed,
                   brw_campaign_step_t *out) {
  if (c->seen)
    end_report(c, BRW_OUTCOME_EXPIRED, out);
  else if (account_failed)
    end_dlq(c, BRW_DLQ_AUTH_FAILED, "the account's API key is rejected", 0,
            out);
  else if (c->not_found_since)
    end_dlq(c, BRW_DLQ_NOT_FOUND, "not found", 1, out);
  else if (c->error_class)
    end_dlq(c, BRW_DLQ_BAD_RESPONSE,
            brw_retry_class_names[c->error_class - 1], 1, out);
  else
    end_report(c, BRW_OUTCOME_EXPIRED, out);
}

/* Schedules the next attempt after a failure: the retry backoff, or the
 * server's Retry-After when longer (brw_schedule_retry). */
static void retry(brw_campaign_t *c, const brw_campaign_opts_t *o,
                  uint64_t now, int64_t retry_after_ms, brw_rng_t *rng,
                  brw_campaign_step_t *out) {
  unsigned a = c->err_attempt;
  uint64_t d = brw_schedule_retry(o->retry_min_ms, o->retry_max_ms,
                                  o->sched.jitter, &a, retry_after_ms, rng);
  c->err_attempt = attempt_byte(a);
  c->state = BRW_CAMPAIGN_RETRYING;
  arm(c, now, d, out);
}

int64_t brw_campaign_first_event_ms(int64_t occurred_at_ms, int64_t wall_ms) {
  return occurred_at_ms > 0 && occurred_at_ms < wall_ms ? occurred_at_ms
                                                        : wall_ms;
}

void brw_campaign_start(brw_campaign_t *c, const brw_campaign_opts_t *o,
                        uint64_t now, int64_t wall_ms, int64_t first_event_ms,
                        int finished, brw_campaign_step_t *out) {
  memset(c, 0, sizeof(*c));
  step_init(out);
  c->pending = -1;
  c->state = BRW_CAMPAIGN_NEW;
  /* The wall clock is read here once; from now on the deadline lives on
   * the monotonic clock. */
  c->deadline = brw_deadline_at(first_event_ms, o->max_age_ms, wall_ms, now);
  arm(c, now,
      brw_schedule_first(o->initial_delay_ms, o->finished_delay_ms, finished),
      out);
}

/* A further event. A campaign.finished says the send is over, so the report
 * is near: a next fetch due later than poll.finished_delay is brought
 * forward to it, and the success backoff starts again. While a fetch is
 * out its answer comes first; the hint is kept for the poll after it (it
 * was dropped once, and the next poll waited for the grown backoff). */
static void on_event(brw_campaign_t *c, const brw_campaign_opts_t *o,
                     const brw_campaign_input_t *in,
                     brw_campaign_step_t *out) {
  if (in->finished && c->state == BRW_CAMPAIGN_FETCHING)
    c->finished_hint = 1;
  if (in->finished && c->state != BRW_CAMPAIGN_FETCHING) {
    /* The send is over: its next look is a detail, not a sweep. */
    c->sweep = (uint8_t)((c->sweep & ~BRW_CSWEEP_AWAIT) | BRW_CSWEEP_WANT);
  }
  if (!in->finished || c->state == BRW_CAMPAIGN_FETCHING ||
      !brw_schedule_bring_forward(in->due_in_ms, o->finished_delay_ms))
    return;
  c->poll_attempt = 0;
  arm(c, in->now, o->finished_delay_ms, out);
}

/* Starts a fetch, watched by the timer until the deadline plus
 * http.timeout (brw_timer_action). */
static void start_fetch(brw_campaign_t *c, const brw_campaign_opts_t *o,
                        uint64_t now, brw_campaign_step_t *out) {
  uint64_t d = 0;
  c->sweep &= (uint8_t)~BRW_CSWEEP_AWAIT;
  c->state = BRW_CAMPAIGN_FETCHING;
  out->fetch = 1;
  brw_timer_action(c->deadline, now, 1, o->answer_ms, &d);
  out->arm = 1;
  out->timer_ms = d;
}

/* A look is due. With status sweeps (in->sweeping) it asks the account's
 * sweeper instead of fetching, and waits for the listing up to
 * sweep_wait_ms; returns 1 then. It fetches itself (returns 0) when it
 * needs a detail (listed terminal, a campaign.finished), when the sweep it
 * waited for did not list it (a miss; after BRW_CSWEEP_MISSES_MAX in a row
 * it is polled with details until a sweep lists it again), and in the
 * last wait before its deadline, so that an `expired` report carries a
 * detail. The wait is the input's (the account's gap between sweeps), or
 * opts.sweep_wait_ms. */
static int sweep_instead(brw_campaign_t *c, const brw_campaign_opts_t *o,
                         const brw_campaign_input_t *in,
                         brw_campaign_step_t *out) {
  if (c->sweep & BRW_CSWEEP_AWAIT) {
    c->sweep &= (uint8_t)~BRW_CSWEEP_AWAIT;
    if (in->sweeping && c->misses < UINT8_MAX)
      c->misses++; /* the watchdog: no listing came */
    return 0;
  }
  uint64_t wait = in->sweep_wait_ms ? in->sweep_wait_ms : o->sweep_wait_ms;
  if (!in->sweeping || (c->sweep & BRW_CSWEEP_WANT) ||
      c->misses >= BRW_CSWEEP_MISSES_MAX || c->deadline - in->now <= wait)
    return 0;
  c->sweep = (uint8_t)((c->sweep & ~BRW_CSWEEP_ROUND) | BRW_CSWEEP_AWAIT |
                       (in->sweep_round & 1 ? BRW_CSWEEP_ROUND : 0));
  out->sweep = 1;
  arm(c, in->now, wait, out);
  return 1;
}

/* The timer fired: past the deadline the campaign ends; a fetch out is
 * given until the deadline plus http.timeout (the watchdog); otherwise the
 * fetch starts, watched the same way (brw_timer_action). */
static void on_timer(brw_campaign_t *c, const brw_campaign_opts_t *o,
                     const brw_campaign_input_t *in,
                     brw_campaign_step_t *out) {
  uint64_t d = 0;
  int fetching = c->state == BRW_CAMPAIGN_FETCHING;
  switch (brw_timer_action(c->deadline, in->now, fetching, o->answer_ms, &d)) {
  case BRW_TIMER_EXPIRE:
    expire(c, in->account_failed, out);
    return;
  case BRW_TIMER_WAIT:
    out->arm = 1;
    out->timer_ms = d;
    return;
  case BRW_TIMER_FETCH:
    break;
  }
  if (sweep_instead(c, o, in, out))
    return;
  start_fetch(c, o, in->now, out);
}

/* A fetch failed. Past the deadline the campaign ends with what it has; a
 * 404 is polled on for poll.not_found_grace after the first of a run (the
 * API may not show a new campaign yet), then goes to the DLQ; anything else
 * is retried with backoff. */
static void on_failed(brw_campaign_t *c, const brw_campaign_opts_t *o,
                      const brw_campaign_input_t *in, brw_rng_t *rng,
                      brw_campaign_step_t *out) {
  c->error_class = (uint8_t)(in->error_class + 1);
  /* A 404 starts the grace period even at the deadline, so that a campaign
   * the API never showed goes to the DLQ as not_found. */
  int over = in->error_class == BRW_RETRY_404 &&
             brw_schedule_not_found_over(&c->not_found_since, in->now,
                                         o->not_found_grace_ms);
  if (in->now >= c->deadline) {
    expire(c, in->account_failed, out);
    return;
  }
  if (over) {
    end_dlq(c, BRW_DLQ_NOT_FOUND,
            "campaign not found after the grace period", 0, out);
    return;
  }
  retry(c, o, in->now, in->retry_after_ms, rng, out);
}

/* The outcome of a final status (done, stopped, spam: the same words). */
static brw_outcome_t status_outcome(brw_status_t st) {
  int i = brw_vocab_find(brw_outcome_names, brw_status_name(st));
  return i < 0 ? BRW_OUTCOME_EXPIRED : (brw_outcome_t)i;
}

/* The delay of the next poll after a look that saw `cur` (brw_schedule_next
 * with the input's start times), advancing the attempt counter; the rule
 * that chose it goes into the step (polls_scheduled_total). */
static uint64_t next_poll(brw_campaign_t *c, const brw_campaign_opts_t *o,
                          const brw_campaign_input_t *in,
                          const brw_poll_sample_t *cur,
                          const brw_poll_sample_t *prev, brw_rng_t *rng,
                          brw_campaign_step_t *out) {
  unsigned a = c->poll_attempt;
  brw_schedule_basis_t basis;
  uint64_t d = brw_schedule_next(&o->sched, cur, prev, in->scheduled_start_ms,
                                 in->actual_start_ms, in->wall_ms, &a, rng,
                                 &basis);
  c->poll_attempt = attempt_byte(a);
  out->basis = (int)basis;
  return d;
}

/* A detail came. A final status ends the campaign with its report; past the
 * deadline it ends as `expired` with this detail; otherwise the next poll
 * is scheduled (brw_schedule_next), after a progress report when the
 * status or the statistics changed. */
static void on_fetched(brw_campaign_t *c, const brw_campaign_opts_t *o,
                       const brw_campaign_input_t *in, brw_rng_t *rng,
                       brw_campaign_step_t *out) {
  brw_status_t st = in->status;
  c->polls++;
  c->sweep &= (uint8_t)~BRW_CSWEEP_WANT;
  c->lstatus = (uint8_t)st;
  c->err_attempt = 0;
  c->not_found_since = 0;
  c->error_class = 0;
  int changed = !c->seen || c->status != st || c->stats_hash != in->stats_hash;
  if (c->seen && brw_schedule_resets(&o->sched, (brw_status_t)c->status, st))
    c->poll_attempt = 0;
  /* The previous detail as a sample; its wall time is derived from the
   * monotonic interval, which is what the pace is measured on. */
  brw_poll_sample_t prev = {BRW_STATUS_UNKNOWN, -1, -1, 0, 0};
  if (c->seen) {
    prev.status = (brw_status_t)c->status;
    prev.pending = c->pending;
    prev.mono_ms = c->last_fetch_mono;
    prev.at_ms = in->wall_ms - (int64_t)(in->now - c->last_fetch_mono);
    if (prev.at_ms <= 0)
      prev.at_ms = 1;
  }
  c->seen = 1;
  c->status = (uint8_t)st;
  c->pending = in->pending;
  c->stats_hash = in->stats_hash;
  c->last_fetch_mono = in->now;
  if (brw_status_is_terminal(st)) {
    end_report(c, status_outcome(st), out);
    return;
  }
  if (in->now >= c->deadline) {
    end_report(c, BRW_OUTCOME_EXPIRED, out);
    return;
  }
  out->progress = o->emit_progress && changed;
  brw_poll_sample_t cur = {st, in->total, in->pending, in->wall_ms, in->now};
  uint64_t d = next_poll(c, o, in, &cur, &prev, rng, out);
  if (c->finished_hint) {
    /* A campaign.finished came while this fetch was out. */
    c->finished_hint = 0;
    if (brw_schedule_bring_forward(d, o->finished_delay_ms)) {
      c->poll_attempt = 0;
      d = o->finished_delay_ms;
    }
  }
  c->state = BRW_CAMPAIGN_POLLING;
  arm(c, in->now, d, out);
}

/* A status sweep listed the campaign (poll.strategy; the list item has its
 * status and start times, no totals). A terminal status, or with
 * output.emit_progress a status that changed, needs a detail: it is
 * fetched now (the report is built from it). Otherwise, if the campaign
 * was waiting for this sweep, its next look is scheduled as after a detail
 * without totals: the backoff, or near a scheduled start. A campaign that
 * was not waiting keeps its timer. While a fetch is out, its answer comes
 * first and the listing changes nothing. */
static void on_listed(brw_campaign_t *c, const brw_campaign_opts_t *o,
                      const brw_campaign_input_t *in, brw_rng_t *rng,
                      brw_campaign_step_t *out) {
  brw_status_t st = in->status;
  int was = c->sweep & BRW_CSWEEP_LISTED ? (brw_status_t)c->lstatus
                                         : (c->seen ? (brw_status_t)c->status
                                                    : BRW_STATUS_UNKNOWN);
  int changed = (int)st != was;
  int awaiting = c->sweep & BRW_CSWEEP_AWAIT;
  c->misses = 0;
  c->sweep = (uint8_t)((c->sweep & ~BRW_CSWEEP_AWAIT) | BRW_CSWEEP_LISTED);
  c->lstatus = (uint8_t)st;
  if (brw_status_is_terminal(st) ||
      (o->emit_progress && changed && st != BRW_STATUS_UNKNOWN)) {
    if (brw_status_is_terminal(st))
      c->sweep |= BRW_CSWEEP_WANT;
    start_fetch(c, o, in->now, out);
    return;
  }
  if (!awaiting)
    return;
  if (changed && was != BRW_STATUS_UNKNOWN &&
      brw_schedule_resets(&o->sched, (brw_status_t)was, st))
    c->poll_attempt = 0;
  brw_poll_sample_t prev = {BRW_STATUS_UNKNOWN, -1, -1, 0, 0};
  brw_poll_sample_t cur = {st, -1, -1, in->wall_ms, in->now};
  uint64_t d = next_poll(c, o, in, &cur, &prev, rng, out);
  c->state = BRW_CAMPAIGN_POLLING;
  arm(c, in->now, d, out);
}

/* The sweep a campaign waited for ended without listing it (cut short,
 * failed, or the list does not show it): it fetches now rather than at
 * its watchdog, counting a miss unless the sweep failed. A sweep of the
 * other parity is not the one it waits for (it asked while that one ran).
 * At or past the deadline the timer, armed for it, decides. */
static void on_swept(brw_campaign_t *c, const brw_campaign_opts_t *o,
                     const brw_campaign_input_t *in,
                     brw_campaign_step_t *out) {
  int round = c->sweep & BRW_CSWEEP_ROUND ? 1 : 0;
  if (!(c->sweep & BRW_CSWEEP_AWAIT) || round != (in->sweep_round & 1) ||
      in->now >= c->deadline)
    return;
  if (!in->sweep_failed && c->misses < UINT8_MAX)
    c->misses++;
  start_fetch(c, o, in->now, out);
}

void brw_campaign_on(brw_campaign_t *c, const brw_campaign_opts_t *o,
                     const brw_campaign_input_t *in, brw_rng_t *rng,
                     brw_campaign_step_t *out) {
  step_init(out);
  if (c->state == BRW_CAMPAIGN_ENDED)
    return;
  int fetching = c->state == BRW_CAMPAIGN_FETCHING;
  switch (in->kind) {
  case BRW_CIN_EVENT:
    on_event(c, o, in, out);
    return;
  case BRW_CIN_TIMER:
    on_timer(c, o, in, out);
    return;
  case BRW_CIN_FETCHED:
    if (fetching)
      on_fetched(c, o, in, rng, out);
    return;
  case BRW_CIN_FAILED:
    if (fetching)
      on_failed(c, o, in, rng, out);
    return;
  case BRW_CIN_NOT_STARTED:
    if (fetching)
      retry(c, o, in->now, 0, rng, out);
    return;
  case BRW_CIN_REVOKED:
    c->state = BRW_CAMPAIGN_ENDED;
    out->end = BRW_CEND_FORGET;
    return;
  case BRW_CIN_LISTED:
    if (!fetching)
      on_listed(c, o, in, rng, out);
    return;
  case BRW_CIN_SWEPT:
    if (!fetching)
      on_swept(c, o, in, out);
    return;
  }
}
