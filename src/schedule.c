#include "brw/schedule.h"

const char *brw_schedule_basis_name(brw_schedule_basis_t b) {
  return (unsigned)b < BRW_BASIS__COUNT ? brw_basis_names[b]
                                        : brw_basis_names[BRW_BASIS_BACKOFF];
}

double brw_send_rate(const brw_poll_sample_t *cur, const brw_poll_sample_t *prev,
                     int64_t actual_start_ms) {
  if (cur->total <= 0 || cur->pending < 0 || cur->pending > cur->total)
    return 0;
  /* The interval between two fetches on the monotonic clock when both
   * have it (a wall-clock step between them must not fake a pace). */
  int64_t between = cur->at_ms - prev->at_ms;
  if (prev->mono_ms > 0 && cur->mono_ms > 0)
    between = cur->mono_ms > prev->mono_ms
                  ? (int64_t)(cur->mono_ms - prev->mono_ms)
                  : 0;
  if (prev->at_ms > 0 && prev->status == BRW_STATUS_SENDING &&
      prev->pending >= cur->pending && between > 0) {
    if (prev->pending == cur->pending)
      return 0; /* nothing moved since the last fetch */
    return (double)(prev->pending - cur->pending) / (double)between;
  }
  if (actual_start_ms > 0 && cur->at_ms > actual_start_ms &&
      cur->pending < cur->total)
    return (double)(cur->total - cur->pending) /
           (double)(cur->at_ms - actual_start_ms);
  return 0;
}

uint64_t brw_schedule_next(const brw_schedule_opts_t *o,
                           const brw_poll_sample_t *cur,
                           const brw_poll_sample_t *prev,
                           int64_t scheduled_start_ms, int64_t actual_start_ms,
                           int64_t now_ms, unsigned *attempt, brw_rng_t *rng,
                           brw_schedule_basis_t *basis) {
  uint64_t min = o->min_interval_ms;
  uint64_t backoff =
      brw_backoff_ms(min, o->max_interval_ms, (*attempt)++, o->jitter, rng);
  *basis = BRW_BASIS_BACKOFF;
  if (!o->adaptive)
    return backoff;
  /* A little after the moment: an answer is not instant, and a status
   * flips on the API's side some time after its own clock says so. */
  uint64_t guard = min / 4;
  if (cur->status == BRW_STATUS_SCHEDULED && scheduled_start_ms > now_ms) {
    uint64_t near = (uint64_t)(scheduled_start_ms - now_ms) + guard;
    *basis = BRW_BASIS_SCHEDULED_START;
    return near > min ? near : min;
  }
  if (cur->status != BRW_STATUS_SENDING)
    return backoff;
  double rate = brw_send_rate(cur, prev, actual_start_ms);
  if (rate <= 0)
    return backoff;
  /* The end as the pace predicts it, from the fetch that measured it. */
  double left = (double)cur->pending / rate - (double)(now_ms - cur->at_ms);
  uint64_t bound =
      brw_backoff_ms(o->max_interval_ms, o->max_interval_ms, 0, o->jitter, rng);
  uint64_t d;
  if (left >= (double)bound)
    d = bound;
  else if (left <= 0)
    d = guard;
  else
    d = (uint64_t)left + guard;
  *basis = BRW_BASIS_ESTIMATE;
  return d < min ? min : d > bound ? bound : d;
}

int brw_schedule_resets(const brw_schedule_opts_t *o, brw_status_t from,
                        brw_status_t to) {
  if (from == to)
    return 0;
  return !(o->adaptive && to == BRW_STATUS_PAUSED);
}

uint64_t brw_deadline_at(int64_t first_event_ms, uint64_t max_age_ms,
                         int64_t wall_now_ms, uint64_t mono_now_ms) {
  uint64_t left = max_age_ms;
  if (first_event_ms < wall_now_ms) {
    /* The age of the event, saturated: an absurd occurred_at is old. */
    uint64_t age = (uint64_t)wall_now_ms - (uint64_t)first_event_ms;
    left = age >= max_age_ms ? 0 : max_age_ms - age;
  }
  return mono_now_ms > UINT64_MAX - left ? UINT64_MAX : mono_now_ms + left;
}

uint64_t brw_deadline_cap(uint64_t deadline, uint64_t now, uint64_t delay_ms) {
  uint64_t left = deadline > now ? deadline - now : 0;
  return delay_ms > left ? left : delay_ms;
}

brw_timer_action_t brw_timer_action(uint64_t deadline, uint64_t now,
                                    int fetch_out, uint64_t answer_ms,
                                    uint64_t *delay_ms) {
  if (now >= deadline)
    return BRW_TIMER_EXPIRE;
  if (!fetch_out)
    return BRW_TIMER_FETCH;
  uint64_t left = deadline - now; /* > 0 */
  *delay_ms = left > UINT64_MAX - answer_ms ? UINT64_MAX : left + answer_ms;
  return BRW_TIMER_WAIT;
}

uint64_t brw_schedule_retry(uint64_t retry_min_ms, uint64_t retry_max_ms,
                            double jitter, unsigned *attempt,
                            int64_t retry_after_ms, brw_rng_t *rng) {
  uint64_t d =
      brw_backoff_ms(retry_min_ms, retry_max_ms, (*attempt)++, jitter, rng);
  if (retry_after_ms > 0) {
    uint64_t ra = (uint64_t)retry_after_ms;
    if (ra > retry_max_ms)
      ra = retry_max_ms;
    if (ra > d)
      d = ra;
  }
  return d;
}

int brw_schedule_not_found_over(uint64_t *since, uint64_t now,
                                uint64_t grace_ms) {
  if (!*since)
    *since = now ? now : 1;
  return now >= *since && now - *since >= grace_ms;
}

uint64_t brw_schedule_first(uint64_t initial_delay_ms,
                            uint64_t finished_delay_ms, int finished) {
  return finished ? finished_delay_ms : initial_delay_ms;
}

int brw_schedule_bring_forward(uint64_t due_in_ms,
                               uint64_t finished_delay_ms) {
  return due_in_ms > finished_delay_ms;
}
