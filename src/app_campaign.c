/* The app's campaigns (part of the application; src/app_int.h says which
 * file owns what): the intake of input events (brw__app_on_message), the
 * campaign table, each campaign's timer and detail fetches, and its end (a
 * final report, a DLQ record, or dropped with its offsets pending). Loop
 * thread only. */

#include "app_int.h"

#include "brw/api.h"
#include "brw/bsg.h"
#include "brw/error.h"
#include "brw/event.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/partitions.h"
#include "brw/schedule.h"
#include "brw/timers.h"
#include "brw/timeutil.h"
#include "brw/tracker.h"
#include "brw/vocab.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The first fetch after a deadline-capped timer fires this late at most, so
 * that a fetch in flight at the deadline has its answer first. */
#define TRACEPARENT_MAX 128
/* A merged event's offset waits for its campaign's outcome in the
 * campaign's array up to this many; further ones complete at once (see
 * on_message), so that a flood of duplicates costs no memory. */
#define MERGED_OFFSETS_MAX 64
/* At most one line a minute about failing fetches (each is at DEBUG). */
#define FETCH_FAIL_LOG_INTERVAL_MS 60000

static void campaign_schedule(campaign_t *c, uint64_t delay_ms);

/* ------------------------------------------------------------------------ */
/* Campaigns                                                                */

static void campaign_free(campaign_t *c) {
  free(c->seen.body);
  free(c->more_offsets);
  free(c->last_error);
  free(c->traceparent);
  free(c->ev);
  free(c);
}

/* Forgets a campaign: cancels its fetch and timer and frees it (callers
 * return without touching it again). Its offsets stay as they are (done if
 * its outcome was produced, otherwise pending and replayed later). */
void brw__app_campaign_drop(campaign_t *c) {
  brw_app_t *app = c->app;
  if (c->fetch) {
    brw_api_cancel(c->fetch);
    c->fetch = NULL;
  }
  brw_tracker_remove(&app->table, &c->key);
  brw_list_remove(&c->pnode);
  app->tracked--;
  brw_metrics_set(app->m, BRW_M_CAMPAIGNS_TRACKED, NULL, (double)app->tracked);
  brw_timer_stop(&app->timers, &c->timer);
  campaign_free(c);
  brw__app_update_backpressure(app);
}

static void campaign_finalize(campaign_t *c, const char *outcome) {
  brw__app_report_send(c->app, c, 1, outcome);
  brw__app_campaign_drop(c);
}

static void campaign_dlq(campaign_t *c, const char *reason,
                         const char *message) {
  brw_app_t *app = c->app;
  brw__app_dlq_send(app, c->part->partition, c->ev, c->ev_key_len, SIZE_MAX,
                    c->ev ? c->ev + c->ev_key_len : NULL, c->ev_value_len,
                    c->first_offset, reason, message,
                    brw__app_campaign_completion(c, 1, 1));
  brw__app_campaign_drop(c);
}

/* The deadline passed: report what was seen, or send the event to the DLQ
 * when the API never answered usefully. */
static void campaign_expire(campaign_t *c) {
  brw_app_t *app = c->app;
  if (c->seen.body)
    campaign_finalize(c, brw_outcome_names[BRW_OUTCOME_EXPIRED]);
  else if (brw_api_account_failed(app->api, c->key.account))
    campaign_dlq(c, BRW_REASON_AUTH_FAILED,
                 "the account's API key is rejected");
  else if (c->not_found_since)
    campaign_dlq(c, BRW_REASON_NOT_FOUND,
                 c->last_error ? c->last_error : "not found");
  else if (c->last_error_class)
    campaign_dlq(c, BRW_REASON_BAD_RESPONSE,
                 c->last_error ? c->last_error : c->last_error_class);
  else
    campaign_finalize(c, brw_outcome_names[BRW_OUTCOME_EXPIRED]); /* never fetched before the deadline */
}

/* The monotonic clock of the deadlines: the timers' own (uv_now), so that a
 * timer armed for the deadline always finds it passed when it fires. */
static uint64_t mono_now(const brw_app_t *app) {
  return uv_now(app->loop);
}

/* Whether the campaign's deadline has passed. */
static int deadline_passed(const campaign_t *c) {
  return mono_now(c->app) >= c->deadline;
}

static uint64_t cap_to_deadline(campaign_t *c, uint64_t delay) {
  return brw_deadline_cap(c->deadline, mono_now(c->app), delay);
}

static void on_fetched(brw_fetch_result_t *res, void *arg);
static void on_campaign_timer(brw_timer_t *t);

/* Starts (or moves) a campaign's timer. Fails only when the timer heap
 * cannot grow; then the campaign is forgotten with its offsets pending (the
 * events replay after a restart or rebalance) rather than left without a
 * timer forever. */
static void timer_start(campaign_t *c, uint64_t delay_ms) {
  if (brw_timer_start(&c->app->timers, &c->timer, delay_ms,
                      on_campaign_timer) != 0) {
    brw_logj(BRW_LOG_ERROR,
             json_pack("{sI}", "campaign_id", (json_int_t)c->key.id),
             "out of memory for a timer: campaign forgotten, its events "
             "replay later");
    brw__app_campaign_drop(c);
  }
}

/* Every path ends the campaign, starts a fetch or arms the timer again
 * (brw_timer_action): a campaign is never left without a timer. */
static void on_campaign_timer(brw_timer_t *t) {
  campaign_t *c = brw_timer_entry(t, campaign_t, timer);
  brw_app_t *app = c->app;
  uint64_t delay = 0;
  switch (brw_timer_action(c->deadline, mono_now(app), c->fetch != NULL,
                           app->cfg->http_timeout_ms, &delay)) {
  case BRW_TIMER_EXPIRE:
    campaign_expire(c);
    return;
  case BRW_TIMER_WAIT:
    timer_start(c, delay);
    return;
  case BRW_TIMER_FETCH:
    break;
  }
  c->fetch = brw_api_fetch(app->api, c->key.account, c->key.id,
                           c->traceparent, on_fetched, c);
  if (!c->fetch) {
    campaign_schedule(c, app->cfg->retry_min_ms);
    return;
  }
  /* While the fetch is out (or waits for a login), the timer watches the
   * deadline, plus the HTTP timeout so that a request under way can
   * answer first. */
  if (brw_timer_action(c->deadline, mono_now(app), 1,
                       app->cfg->http_timeout_ms, &delay) == BRW_TIMER_WAIT)
    timer_start(c, delay);
  else
    timer_start(c, app->cfg->http_timeout_ms);
}

static void campaign_schedule(campaign_t *c, uint64_t delay_ms) {
  timer_start(c, cap_to_deadline(c, delay_ms));
}

/* Keeps what a successful fetch saw: the summary and a copy of the body.
 * Returns 0 or BRW_ENOMEM (then the previous body is kept). */
static int seen_update(seen_t *s, const brw_fetch_result_t *res) {
  if (res->body_len > UINT32_MAX)
    return BRW_ENOMEM;
  if (!s->body || s->body_len != res->body_len) {
    char *b = realloc(s->body, res->body_len ? res->body_len : 1);
    if (!b)
      return BRW_ENOMEM;
    s->body = b;
  }
  memcpy(s->body, res->body, res->body_len);
  s->body_len = (uint32_t)res->body_len;
  s->status = (uint8_t)res->detail.status;
  s->total = res->detail.total_messages;
  s->pending = res->detail.pending;
  s->scheduled_start_ms = res->detail.scheduled_start_ms;
  s->actual_start_ms = res->detail.actual_start_ms;
  s->stats_hash = res->detail.stats_hash;
  return 0;
}

/* The next poll of a campaign that is not terminal (brw_schedule_next). */
static uint64_t next_poll_delay(brw_app_t *app, campaign_t *c,
                                const brw_poll_sample_t *prev,
                                brw_schedule_basis_t *basis) {
  brw_poll_sample_t cur = {(brw_status_t)c->seen.status, c->seen.total,
                           c->seen.pending, c->last_fetch_ms,
                           c->last_fetch_mono};
  return brw_schedule_next(&app->sched, &cur, prev, c->seen.scheduled_start_ms,
                           c->seen.actual_start_ms, brw_now_ms(),
                           &c->poll_attempt, &app->rng, basis);
}

/* Keeps a failure's class and message for the DLQ record at the deadline. */
static void set_last_error(campaign_t *c, const brw_fetch_result_t *res) {
  c->last_error_class = res->error_class;
  if (c->last_error && !strcmp(c->last_error, res->message))
    return;
  free(c->last_error);
  c->last_error = strdup(res->message); /* NULL: the class stands in */
}

static void fetch_failed(campaign_t *c, brw_fetch_result_t *res) {
  brw_app_t *app = c->app;
  const brw_config_t *cfg = app->cfg;
  set_last_error(c, res);
  /* The grace period is an interval: on the monotonic clock. */
  if (res->status == BRW_FETCH_NOT_FOUND &&
      brw_schedule_not_found_over(&c->not_found_since, mono_now(app),
                                  cfg->poll_not_found_grace_ms)) {
    campaign_dlq(c, BRW_REASON_NOT_FOUND, "campaign not found after the "
                                          "grace period");
    return;
  }
  uint64_t d = brw_schedule_retry(cfg->retry_min_ms, cfg->retry_max_ms,
                                  cfg->poll_jitter, &c->err_attempt,
                                  res->retry_after_ms, &app->rng);
  /* Each failure at DEBUG; a WARN a minute when fetches fail while the
   * account can log in (a login that fails has its own lines, a 401
   * mid-use is followed by a login, and a 404 within the grace period is
   * a campaign the API does not show yet): a server that answers logins
   * but no detail (5xx, a broken HTTP/2 framing, a proxy cutting
   * requests) would otherwise leave nothing above DEBUG while no report
   * comes. */
  uint64_t held = 0;
  int warn = res->status != BRW_FETCH_NOT_FOUND &&
             strcmp(res->error_class, brw_retry_class_names[BRW_RETRY_401]) &&
             brw_api_account_usable(app->api, c->key.account, NULL) &&
             brw__app_log_allowed(app, &app->fetch_fail_log,
                                  FETCH_FAIL_LOG_INTERVAL_MS, &held);
  brw_logj(warn ? BRW_LOG_WARN : BRW_LOG_DEBUG,
           json_pack("{sI ss sI ss sI}", "campaign_id", (json_int_t)c->key.id,
                     "class", res->error_class, "retry_ms", (json_int_t)d,
                     "error", res->message, "suppressed", (json_int_t)held),
           warn ? "API fetches fail, retrying with backoff (one line a "
                  "minute; api_retries_total counts them by class)"
                : "fetch failed, retrying");
  campaign_schedule(c, d);
}

/* A fetch finished (loop thread). */
static void on_fetched(brw_fetch_result_t *res, void *arg) {
  campaign_t *c = arg;
  brw_app_t *app = c->app;
  c->fetch = NULL;
  brw_timer_stop(&app->timers, &c->timer);
  if (res->status != BRW_FETCH_OK) {
    if (deadline_passed(c)) {
      set_last_error(c, res);
      campaign_expire(c);
      return;
    }
    fetch_failed(c, res);
    return;
  }
  c->polls++;
  app->st.polls++;
  c->err_attempt = 0;
  c->not_found_since = 0;
  c->last_error_class = NULL;
  brw_status_t st = res->detail.status;
  if (st == BRW_STATUS_UNKNOWN) {
    brw_metrics_inc(app->m, BRW_M_CAMPAIGN_STATUS_UNKNOWN, NULL, 1);
    brw_logj(BRW_LOG_WARN,
             json_pack("{sI ss}", "campaign_id", (json_int_t)c->key.id,
                       "status", res->detail.status_raw),
             "unknown campaign status; treated as in progress");
  }
  /* What a progress report shows: the status and the statistics. */
  int had = c->seen.body != NULL;
  int changed = !had || c->seen.status != st ||
                c->seen.stats_hash != res->detail.stats_hash;
  if (had && brw_schedule_resets(&app->sched, (brw_status_t)c->seen.status, st))
    c->poll_attempt = 0;
  brw_poll_sample_t prev = {(brw_status_t)c->seen.status, c->seen.total,
                            c->seen.pending, had ? c->last_fetch_ms : 0,
                            had ? c->last_fetch_mono : 0};
  if (seen_update(&c->seen, res) != 0) {
    /* Cannot keep it: as if the fetch had failed, retried later. */
    brw_log_error("out of memory keeping the detail of campaign %" PRIu64,
                  c->key.id);
    campaign_schedule(c, app->cfg->retry_min_ms);
    return;
  }
  c->last_fetch_ms = brw_now_ms();
  c->last_fetch_mono = mono_now(app);
  free(c->last_error);
  c->last_error = NULL;
  if (brw_status_is_terminal(st)) {
    campaign_finalize(c, brw_status_name(st));
    return;
  }
  if (deadline_passed(c)) {
    campaign_finalize(c, brw_outcome_names[BRW_OUTCOME_EXPIRED]);
    return;
  }
  if (app->cfg->emit_progress && changed)
    brw__app_report_send(app, c, 0, brw_status_name(st));
  brw_schedule_basis_t basis;
  uint64_t delay = next_poll_delay(app, c, &prev, &basis);
  brw_metrics_inc(app->m, BRW_M_POLLS_SCHEDULED,
                  brw_schedule_basis_name(basis), 1);
  campaign_schedule(c, delay);
}

/* Adds the offset of a merged event. */
static int campaign_add_offset(campaign_t *c, int64_t off) {
  if (c->nmore == c->capmore) {
    int32_t ncap = c->capmore ? c->capmore * 2 : 2;
    int64_t *n = realloc(c->more_offsets, sizeof(int64_t) * (size_t)ncap);
    if (!n)
      return BRW_ENOMEM;
    c->more_offsets = n;
    c->capmore = ncap;
  }
  c->more_offsets[c->nmore++] = off;
  return 0;
}

static char *header_traceparent(const brw_kafka_message_t *msg) {
  const void *v;
  size_t n;
  if (brw_kafka_message_header(msg, "traceparent", &v, &n) != 0 || !v ||
      n == 0 || n > TRACEPARENT_MAX)
    return NULL;
  /* Only the W3C character set: it goes into an HTTP header. */
  for (size_t i = 0; i < n; i++) {
    char ch = ((const char *)v)[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == '-'))
      return NULL;
  }
  char *s = malloc(n + 1);
  if (s) {
    memcpy(s, v, n);
    s[n] = '\0';
  }
  return s;
}

/* ------------------------------------------------------------------------ */
/* Kafka handlers (loop thread)                                             */

void brw__app_on_message(void *ctx, const brw_kafka_message_t *msg) {
  brw_app_t *app = ctx;
  const brw_config_t *cfg = app->cfg;
  if (app->stopping)
    return; /* not handled: stays uncommitted, replayed by the next run */
  brw_part_t *pt;
  brw_part_verdict_t v =
      brw_partitions_received(&app->parts, msg->partition, msg->offset, &pt);
  if (v == BRW_PART_IGNORE)
    return; /* not ours, leaving, or a redelivery */
  app->st.events++;
  int64_t off = msg->offset;
  if (v == BRW_PART_SKIP) {
    /* Completed before the last commit (the map in its metadata says so):
     * its report or DLQ record is already in Kafka. */
    app->st.skipped++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_SKIPPED, NULL, 1);
    return;
  }

  brw_event_t ev;
  const char *reason = NULL;
  char err[256];
  if (msg->key_len > cfg->event_max_key_size) {
    /* Keys are bounded like values (SPEC §4): a campaign keeps its first
     * event's key, and a DLQ record carries it. The DLQ record keeps the
     * key's first event.max_key_size bytes. */
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, BRW_REASON_TOO_LARGE, 1);
    snprintf(err, sizeof(err),
             "event key of %zu bytes exceeds the limit of %" PRIu64 " bytes",
             msg->key_len, (uint64_t)cfg->event_max_key_size);
    brw__app_dlq_send(app, pt->partition, msg->key, msg->key_len,
                      (size_t)cfg->event_max_key_size, msg->value,
                      msg->value_len, off, BRW_REASON_TOO_LARGE, err,
                      brw__app_completion_new(app, pt, 1, &off, 1));
    return;
  }
  if (brw_event_parse(msg->value, msg->value_len, cfg->event_max_size, &ev,
                      &reason, err, sizeof(err)) != 0) {
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, reason, 1);
    brw__app_dlq_send(app, pt->partition, msg->key, msg->key_len, SIZE_MAX,
                      msg->value, msg->value_len, off, reason, err,
                      brw__app_completion_new(app, pt, 1, &off, 1));
    return;
  }
  int account = brw_config_account_index(cfg, ev.account);
  if (account < 0) {
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, BRW_REASON_UNKNOWN_ACCOUNT, 1);
    snprintf(err, sizeof(err), "unknown account \"%.64s\"", ev.account);
    brw__app_dlq_send(app, pt->partition, msg->key, msg->key_len, SIZE_MAX,
                      msg->value, msg->value_len, off,
                      BRW_REASON_UNKNOWN_ACCOUNT, err,
                      brw__app_completion_new(app, pt, 1, &off, 1));
    return;
  }

  brw_metrics_inc(app->m, BRW_M_EVENTS_CONSUMED,
                  ev.type == BRW_EVENT_FINISHED ? "finished" : "sent", 1);
  campaign_t *c = (campaign_t *)brw_tracker_find(&app->table, pt->partition,
                                                 account, ev.campaign_id);
  if (c) {
    /* A further event merges into the tracked campaign; its offset
     * completes with the campaign's outcome. */
    app->st.merged++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_MERGED, NULL, 1);
    c->events++;
    if (c->nmore >= MERGED_OFFSETS_MAX) {
      /* Past MERGED_OFFSETS_MAX duplicates the offset completes at once,
       * so memory per campaign stays bounded (8 bytes per kept offset).
       * Nothing is lost: the campaign's first offset stays pending until
       * its outcome is acknowledged, so the commit cannot pass it, and any
       * replay (crash, rebalance) re-tracks the campaign from it; this
       * event's report is that campaign's. A replay may skip it (the
       * completed-offset map), losing only its count in tracking.events
       * and a campaign.finished hint. */
      brw_partitions_done(&app->parts, pt->partition, pt->generation, off);
    } else if (campaign_add_offset(c, off) != 0) {
      return; /* stays pending: replayed, never lost */
    }
    if (ev.type == BRW_EVENT_FINISHED && !c->fetch) {
      uint64_t at = brw_timer_due(&c->timer), now = uv_now(app->loop);
      uint64_t due = brw_timer_pending(&c->timer) && at > now ? at - now : 0;
      if (brw_schedule_bring_forward(due, cfg->poll_finished_delay_ms)) {
        c->poll_attempt = 0;
        campaign_schedule(c, cfg->poll_finished_delay_ms);
      }
    }
    return;
  }

  if (brw__app_recent_has(app, pt->partition, account, ev.campaign_id)) {
    /* A late event (say, campaign.finished after the final report): the
     * campaign's report is already acknowledged, so this event is done. */
    app->st.late++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_LATE, NULL, 1);
    brw_partitions_done(&app->parts, pt->partition, pt->generation, off);
    brw_logj(BRW_LOG_DEBUG,
             json_pack("{sI si sI}", "campaign_id", (json_int_t)ev.campaign_id,
                       "partition", pt->partition, "offset", (json_int_t)off),
             "event for a campaign already reported; nothing to do");
    return;
  }

  c = calloc(1, sizeof(*c));
  if (!c)
    return;
  c->app = app;
  c->key.id = ev.campaign_id;
  c->key.partition = pt->partition;
  c->key.account = account;
  c->part = pt;
  c->first_offset = off;
  c->events = 1;
  int64_t now = brw_now_ms();
  c->first_event_ms = ev.occurred_at_ms > 0 && ev.occurred_at_ms < now
                          ? ev.occurred_at_ms
                          : now;
  /* The wall clock is read here once; from now on the deadline lives on the
   * monotonic clock. */
  c->deadline = brw_deadline_at(c->first_event_ms, cfg->poll_max_age_ms, now,
                                mono_now(app));
  c->traceparent = header_traceparent(msg);
  /* event.max_size bounds the value and event.max_key_size the key (both
   * at most 1 GiB): together they bound what a campaign keeps. The check
   * below only guards the 32-bit lengths. */
  size_t klen = msg->key_len <= UINT32_MAX - msg->value_len ? msg->key_len : 0;
  if (klen + msg->value_len > 0 &&
      (c->ev = malloc(klen + msg->value_len)) != NULL) {
    if (klen)
      memcpy(c->ev, msg->key, klen);
    if (msg->value_len)
      memcpy(c->ev + klen, msg->value, msg->value_len);
    c->ev_key_len = (uint32_t)klen;
    c->ev_value_len = (uint32_t)msg->value_len;
  }
  c->seen.total = -1;
  c->seen.pending = -1;
  brw_timer_init(&c->timer);
  brw_list_init(&c->pnode);
  brw_list_insert_tail(&pt->campaigns, &c->pnode);
  brw_tracker_insert(&app->table, &c->key);
  app->tracked++;
  brw_metrics_set(app->m, BRW_M_CAMPAIGNS_TRACKED, NULL, (double)app->tracked);
  campaign_schedule(c, brw_schedule_first(cfg->poll_initial_delay_ms,
                                          cfg->poll_finished_delay_ms,
                                          ev.type == BRW_EVENT_FINISHED));
  brw__app_update_backpressure(app);
}
