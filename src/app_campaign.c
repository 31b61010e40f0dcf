/* The app's campaigns (part of the application; src/app_int.h says which
 * file owns what): the intake of input events (brw__app_on_message), the
 * campaign table, each campaign's timer and detail fetches, and its end (a
 * final report, a DLQ record, or dropped with its offsets pending). Loop
 * thread only. */

#include "app_int.h"

#include "brw/api.h"
#include "brw/bsg.h"
#include "brw/campaign.h"
#include "brw/error.h"
#include "brw/event.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/pack.h"
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

/* A traceparent header longer than this is not kept (a W3C one is 55). */
#define TRACEPARENT_MAX 128
/* Nor a tracestate longer than this: W3C Trace Context asks to pass at
 * least 512 characters on, and allows dropping a longer one whole. */
#define TRACESTATE_MAX 512
/* A merged event's offset waits for its campaign's outcome in the
 * campaign's array up to this many; further ones complete at once (see
 * on_message), so that a flood of duplicates costs no memory. */
#define MERGED_OFFSETS_MAX 64
_Static_assert(MERGED_OFFSETS_MAX <= UINT8_MAX &&
                   TRACEPARENT_MAX <= UINT8_MAX,
               "campaign_t counts merged offsets and traceparent bytes in a "
               "byte each");
/* At most one line a minute about failing fetches (each is at DEBUG). */
#define FETCH_FAIL_LOG_INTERVAL_MS 60000

/* ------------------------------------------------------------------------ */
/* Log fields                                                               */

/* Adds the members of `more` (stolen; may be NULL) to `base` (NULL: out of
 * memory, then the line goes without fields). */
static json_t *merge(json_t *base, json_t *more) {
  if (base && more)
    json_object_update(base, more);
  json_decref(more);
  return base;
}

/* The fields of a line about an input record: its topic, partition (a
 * string, as OpenTelemetry has it) and offset, its trace context, and the
 * members of `more` (stolen). */
json_t *brw__app_input_fields(const brw_app_t *app, int32_t partition,
                              int64_t offset, const char *traceparent,
                              json_t *more) {
  char part[16];
  snprintf(part, sizeof(part), "%" PRId32, partition);
  json_t *f =
      json_pack("{ss ss sI}", BRW_LF_TOPIC, app->cfg->topic_input,
                BRW_LF_PARTITION, part, BRW_LF_OFFSET, (json_int_t)offset);
  return merge(brw_log_trace_fields(f, traceparent), more);
}

/* The fields of every line about a campaign: its id and account, its first
 * event (brw__app_input_fields) and the members of `more` (stolen). */
json_t *brw__app_campaign_fields(const campaign_t *c, json_t *more) {
  json_t *f = brw__app_input_fields(c->app, c->key.partition, c->first_offset,
                                    brw__app_traceparent(c), more);
  if (f) {
    json_object_set_new(f, "campaign_id", json_integer((json_int_t)c->key.id));
    json_object_set_new(
        f, "account", json_string(c->app->cfg->accounts[c->key.account].name));
  }
  return f;
}

/* ------------------------------------------------------------------------ */
/* Campaigns: src/campaign.c decides, this file carries the steps out.      */

static void campaign_free(campaign_t *c) {
  free(c->detail);
  free(c->more_offsets);
  free(c->last_error);
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
  brw__app_sweep_tracked(app, c->key.account, -1);
  brw_metrics_set(app->m, BRW_M_CAMPAIGNS_TRACKED, NULL, (double)app->tracked);
  brw_timer_stop(&app->timers, &c->timer);
  campaign_free(c);
  brw__app_update_backpressure(app);
}

/* The monotonic clock of the lifecycle: the timers' own (uv_now), so that
 * a timer armed for the deadline always finds it passed when it fires. */
static uint64_t mono_now(const brw_app_t *app) {
  return uv_now(app->loop);
}

static void on_fetched(brw_fetch_result_t *res, void *arg);
static void on_campaign_timer(brw_timer_t *t);
static void campaign_input(campaign_t *c, brw_campaign_input_t *in);

/* Decides: applies an input to the campaign's lifecycle (brw_campaign_on)
 * at the current time. State changes are logged at DEBUG, each with the
 * input that made it, as curl logs its transfers' states. */
static void campaign_decide(campaign_t *c, brw_campaign_input_t *in,
                            brw_campaign_step_t *st) {
  brw_app_t *app = c->app;
  brw_campaign_state_t was = (brw_campaign_state_t)c->life.state;
  in->now = mono_now(app);
  brw_campaign_on(&c->life, &app->life, in, &app->rng, st);
  if (c->life.state != was && brw_log_enabled(BRW_LOG_DEBUG))
    brw_logj(
        BRW_LOG_DEBUG,
        brw__app_campaign_fields(
            c, json_pack(
                   "{ss ss ss sI}", "input", brw_campaign_input_name(in->kind),
                   "from", brw_campaign_state_name(was), "to",
                   brw_campaign_state_name((brw_campaign_state_t)c->life.state),
                   "timer_ms", (json_int_t)(st->arm ? st->timer_ms : 0))),
        "campaign state");
}

/* Carries a step out, in its order: progress report, fetch, timer, end.
 * After an end the campaign is freed (callers return without touching it).
 * A fetch that cannot start goes back to the lifecycle as NOT_STARTED; a
 * timer that cannot be armed (out of memory for the heap) forgets the
 * campaign with its offsets pending, so that its events replay after a
 * restart or rebalance rather than wait for a timer that never fires. */
static void campaign_carry(campaign_t *c, const brw_campaign_step_t *st) {
  brw_app_t *app = c->app;
  if (st->progress)
    brw__app_report_send(app, c, 0,
                         brw_status_name((brw_status_t)c->life.status));
  if (st->basis >= 0)
    brw_metrics_inc(app->m, BRW_M_POLLS_SCHEDULED,
                    brw_schedule_basis_name((brw_schedule_basis_t)st->basis),
                    1);
  switch (st->end) {
  case BRW_CEND_REPORT:
    brw__app_report_send(app, c, 1, brw_outcome_names[st->outcome]);
    brw__app_campaign_drop(c);
    return;
  case BRW_CEND_DLQ:
    brw__app_dlq_send(
        app, c->part->partition, c->ev, c->ev_key_len, SIZE_MAX,
        c->ev ? c->ev + c->ev_key_len : NULL, c->ev_value_len, c->first_offset,
        c->key.id, brw__app_traceparent(c), brw_dlq_reason_names[st->reason],
        st->last_error && c->last_error ? c->last_error : st->message,
        brw__app_campaign_completion(c, 1, 1));
    brw__app_campaign_drop(c);
    return;
  case BRW_CEND_FORGET:
    brw__app_campaign_drop(c);
    return;
  case BRW_CEND_NONE:
    break;
  }
  if (st->sweep)
    brw__app_sweep_request(app, c->key.account);
  if (st->fetch) {
    c->fetch = brw_api_fetch(app->api, c->key.account, c->key.id,
                             brw__app_traceparent(c), brw__app_tracestate(c),
                             on_fetched, c);
    if (!c->fetch) {
      brw_campaign_input_t in = {.kind = BRW_CIN_NOT_STARTED};
      campaign_input(c, &in);
      return;
    }
  }
  if (st->arm && brw_timer_start(&app->timers, &c->timer, st->timer_ms,
                                 on_campaign_timer) != 0) {
    brw_logj(BRW_LOG_ERROR, brw__app_campaign_fields(c, NULL),
             "out of memory for a timer: campaign forgotten, its events "
             "replay later");
    brw__app_campaign_drop(c);
  }
}

static void campaign_input(campaign_t *c, brw_campaign_input_t *in) {
  brw_campaign_step_t st;
  campaign_decide(c, in, &st);
  campaign_carry(c, &st);
}

/* Its partition leaves, or the worker stops: the lifecycle forgets it
 * (its offsets stay pending; the next owner or run resumes it). */
void brw__app_campaign_revoke(campaign_t *c) {
  brw_campaign_input_t in = {.kind = BRW_CIN_REVOKED};
  brw_campaign_step_t st;
  campaign_decide(c, &in, &st); /* FORGET: dropped whatever it says */
  brw__app_campaign_drop(c);
}

/* The timer fired: the next fetch, or the watchdog of one, or the
 * deadline. Whether the account's key is rejected decides a DLQ reason at
 * the deadline. */
static void on_campaign_timer(brw_timer_t *t) {
  campaign_t *c = brw_timer_entry(t, campaign_t, timer);
  brw_app_t *app = c->app;
  brw_campaign_input_t in = {
      .kind = BRW_CIN_TIMER,
      .account_failed = brw_api_account_failed(app->api, c->key.account),
      .sweeping = brw__app_sweeping(app, c->key.account),
      .sweep_round = brw__app_sweep_round(app, c->key.account),
      .sweep_wait_ms = brw__app_sweep_wait(app, c->key.account)};
  int awaited = c->life.sweep & BRW_CSWEEP_AWAIT;
  brw_campaign_step_t st;
  campaign_decide(c, &in, &st);
  if (awaited && st.fetch && in.sweeping) /* else the list failed */
    brw_metrics_inc(app->m, BRW_M_SWEEP_FALLBACKS, "unlisted", 1);
  campaign_carry(c, &st);
}

/* The sweep it may wait for ended without listing it (src/app_sweep.c):
 * it fetches now, counted as unlisted unless the sweep failed. */
void brw__app_campaign_swept(campaign_t *c, int round, int failed) {
  brw_campaign_input_t in = {
      .kind = BRW_CIN_SWEPT, .sweep_round = round, .sweep_failed = failed};
  brw_campaign_step_t st;
  campaign_decide(c, &in, &st);
  if (st.fetch && !failed)
    brw_metrics_inc(c->app->m, BRW_M_SWEEP_FALLBACKS, "unlisted", 1);
  campaign_carry(c, &st);
}

/* A status sweep listed the campaign (src/app_sweep.c). */
void brw__app_campaign_listed(campaign_t *c, const brw_campaign_list_item_t *it) {
  brw_campaign_input_t in = {.kind = BRW_CIN_LISTED,
                             .wall_ms = brw_now_ms(),
                             .status = it->status,
                             .scheduled_start_ms = it->scheduled_start_ms,
                             .actual_start_ms = it->actual_start_ms};
  campaign_input(c, &in);
}

/* Keeps the body of a detail, packed, in place of the previous one: an
 * `expired` report is built from it (SPEC §4: the last detail seen).
 * Returns 0 or BRW_ENOMEM (then the previous one is kept). */
static int detail_keep(campaign_t *c, const brw_fetch_result_t *res) {
  /* Packing costs ~10 µs, a third of a fetch's CPU; a campaign that is not
   * sending mostly answers the same body again. */
  uint32_t crc = brw_pack_digest(res->body, res->body_len);
  if (c->detail && crc == c->detail_crc)
    return 0;
  char *packed = NULL;
  uint32_t len = 0;
  int r = brw_pack_body(c->app->pack, res->body, res->body_len, &packed, &len);
  if (r != 0)
    return r;
  free(c->detail);
  c->detail = packed;
  c->detail_len = len;
  c->detail_crc = crc;
  return 0;
}

/* Keeps a failure's message for the DLQ record at the deadline. */
static void set_last_error(campaign_t *c, const brw_fetch_result_t *res) {
  if (c->last_error && !strcmp(c->last_error, res->message))
    return;
  free(c->last_error);
  c->last_error = strdup(res->message); /* NULL: the class stands in */
}

/* Each failure at DEBUG; a WARN a minute when fetches fail while the
 * account can log in (a login that fails has its own lines, a 401 mid-use
 * is followed by a login, and a 404 within the grace period is a campaign
 * the API does not show yet): a server that answers logins but no detail
 * (5xx, a broken HTTP/2 framing, a proxy cutting requests) would otherwise
 * leave nothing above DEBUG while no report comes. */
static void log_fetch_failed(campaign_t *c, const brw_fetch_result_t *res,
                             uint64_t retry_ms) {
  brw_app_t *app = c->app;
  uint64_t held = 0;
  int warn = res->status != BRW_FETCH_NOT_FOUND &&
             strcmp(res->error_class, brw_retry_class_names[BRW_RETRY_401]) &&
             brw_api_account_usable(app->api, c->key.account, NULL) &&
             brw__app_log_allowed(app, &app->fetch_fail_log,
                                  FETCH_FAIL_LOG_INTERVAL_MS, &held);
  brw_logj(warn ? BRW_LOG_WARN : BRW_LOG_DEBUG,
           brw__app_campaign_fields(
               c, json_pack("{ss sI ss sI}", "class", res->error_class,
                            "retry_ms", (json_int_t)retry_ms, "error",
                            res->message, "suppressed", (json_int_t)held)),
           warn ? "API fetches fail, retrying with backoff (one line a "
                  "minute; api_retries_total counts them by class)"
                : "fetch failed, retrying");
}

/* A fetch finished (loop thread): its result goes to the lifecycle. */
static void on_fetched(brw_fetch_result_t *res, void *arg) {
  campaign_t *c = arg;
  brw_app_t *app = c->app;
  brw_campaign_input_t in = {0};
  brw_campaign_step_t st;
  c->fetch = NULL;
  brw_timer_stop(&app->timers, &c->timer);
  if (res->status != BRW_FETCH_OK) {
    int cls = brw_vocab_find(brw_retry_class_names, res->error_class);
    set_last_error(c, res);
    in.kind = BRW_CIN_FAILED;
    in.error_class = cls < 0 ? BRW_RETRY_TRANSPORT : (brw_retry_class_t)cls;
    in.retry_after_ms = res->retry_after_ms;
    in.account_failed = brw_api_account_failed(app->api, c->key.account);
    campaign_decide(c, &in, &st);
    if (st.end == BRW_CEND_NONE)
      log_fetch_failed(c, res, st.timer_ms);
    campaign_carry(c, &st);
    return;
  }
  app->st.polls++;
  const brw_detail_t *d = &res->detail;
  if (d->status == BRW_STATUS_UNKNOWN) {
    brw_metrics_inc(app->m, BRW_M_CAMPAIGN_STATUS_UNKNOWN, NULL, 1);
    brw_logj(
        BRW_LOG_WARN,
        brw__app_campaign_fields(c, json_pack("{ss}", "status", d->status_raw)),
        "unknown campaign status; treated as in progress");
  }
  if (detail_keep(c, res) != 0) {
    /* Cannot keep it: as if the fetch had not started, tried later. */
    brw_logj(BRW_LOG_ERROR, brw__app_campaign_fields(c, NULL),
             "out of memory keeping the detail of campaign %" PRIu64,
             c->key.id);
    in.kind = BRW_CIN_NOT_STARTED;
    campaign_input(c, &in);
    return;
  }
  free(c->last_error);
  c->last_error = NULL;
  in.kind = BRW_CIN_FETCHED;
  in.wall_ms = brw_now_ms();
  in.status = d->status;
  in.total = d->total_messages;
  in.pending = d->pending;
  in.scheduled_start_ms = d->scheduled_start_ms;
  in.actual_start_ms = d->actual_start_ms;
  in.stats_hash = d->stats_hash;
  campaign_input(c, &in);
}

/* Adds the offset of a merged event. */
static int campaign_add_offset(campaign_t *c, int64_t off) {
  if (c->nmore == c->capmore) {
    int ncap = c->capmore ? c->capmore * 2 : 2;
    int64_t *n = realloc(c->more_offsets, sizeof(int64_t) * (size_t)ncap);
    if (!n)
      return BRW_ENOMEM;
    c->more_offsets = n;
    c->capmore = (uint8_t)ncap;
  }
  c->more_offsets[c->nmore++] = off;
  return 0;
}

/* A header's value, or else the CloudEvents binary-mode form of it (the
 * distributed tracing extension's ce_traceparent, ce_tracestate). Returns
 * 0 when either is present. */
static int header_or_ce(const brw_kafka_message_t *msg, const char *name,
                        const char *ce_name, const void **v, size_t *n) {
  return brw_kafka_message_header(msg, name, v, n) == 0
             ? 0
             : brw_kafka_message_header(msg, ce_name, v, n);
}

/* The event's traceparent header (borrowed from the message), when it is
 * one a campaign can keep: at most TRACEPARENT_MAX bytes of the W3C
 * character set (it goes into an HTTP header). Returns its length, 0 when
 * none. */
static size_t header_traceparent(const brw_kafka_message_t *msg,
                                 const char **tp) {
  const void *v;
  size_t n;
  if (header_or_ce(msg, "traceparent", "ce_traceparent", &v, &n) != 0 || !v ||
      n == 0 || n > TRACEPARENT_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char ch = ((const char *)v)[i];
    if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == '-'))
      return 0;
  }
  *tp = v;
  return n;
}

/* The event's tracestate header, when it can be kept: at most
 * TRACESTATE_MAX bytes of printable ASCII (it goes into an HTTP header).
 * Returns its length, 0 when none. */
static size_t header_tracestate(const brw_kafka_message_t *msg,
                                const char **ts) {
  const void *v;
  size_t n;
  if (header_or_ce(msg, "tracestate", "ce_tracestate", &v, &n) != 0 || !v ||
      n == 0 || n > TRACESTATE_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = ((const unsigned char *)v)[i];
    if (ch < 0x20 || ch > 0x7e)
      return 0;
  }
  *ts = v;
  return n;
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
  /* The trace context (not read for a skipped event): the traceparent as
   * a string for the lines and DLQ records of this event, both headers for
   * a campaign it starts. */
  const char *tp = NULL, *ts = NULL;
  size_t tplen = header_traceparent(msg, &tp);
  size_t tslen = tplen ? header_tracestate(msg, &ts) : 0;
  char tpbuf[TRACEPARENT_MAX + 1];
  if (tplen) {
    memcpy(tpbuf, tp, tplen);
    tpbuf[tplen] = '\0';
  }
  const char *traceparent = tplen ? tpbuf : NULL;
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
                      msg->value_len, off, 0, traceparent, BRW_REASON_TOO_LARGE,
                      err, brw__app_completion_new(app, pt, 1, &off, 1));
    return;
  }
  /* The value and, for CloudEvents, the headers that say the shape, the
   * type and the time (borrowed from the message for the call); a header
   * with a null value counts as absent. */
  brw_event_input_t evin = {.value = msg->value, .len = msg->value_len};
  const brw_event_types_t types = {cfg->event_sent_types,
                                   cfg->event_finished_types};
  for (int h = 0; h < BRW_EVENT_H__COUNT; h++) {
    const void *hv = NULL;
    size_t hn = 0;
    if (brw_kafka_message_header(msg, brw_event_header_names[h], &hv, &hn) == 0)
      evin.headers[h] = (brw_event_bytes_t){hv, hn};
  }
  if (brw_event_parse_msg(&evin, &types, cfg->event_max_size, &ev, &reason, err,
                          sizeof(err)) != 0) {
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, reason, 1);
    brw__app_dlq_send(app, pt->partition, msg->key, msg->key_len, SIZE_MAX,
                      msg->value, msg->value_len, off, 0, traceparent, reason,
                      err, brw__app_completion_new(app, pt, 1, &off, 1));
    return;
  }
  int account = brw_config_account_index(cfg, ev.account);
  if (account < 0) {
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, BRW_REASON_UNKNOWN_ACCOUNT, 1);
    snprintf(err, sizeof(err), "unknown account \"%.64s\"", ev.account);
    brw__app_dlq_send(app, pt->partition, msg->key, msg->key_len, SIZE_MAX,
                      msg->value, msg->value_len, off, ev.campaign_id,
                      traceparent, BRW_REASON_UNKNOWN_ACCOUNT, err,
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
    brw_campaign_input_t in = {.kind = BRW_CIN_EVENT,
                               .finished = ev.type == BRW_EVENT_FINISHED};
    uint64_t at = brw_timer_due(&c->timer), now = mono_now(app);
    in.due_in_ms = brw_timer_pending(&c->timer) && at > now ? at - now : 0;
    campaign_input(c, &in);
    return;
  }

  if (brw__app_recent_has(app, pt->partition, account, ev.campaign_id)) {
    /* A late event (say, campaign.finished after the final report): the
     * campaign's report is already acknowledged, so this event is done. */
    app->st.late++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_LATE, NULL, 1);
    brw_partitions_done(&app->parts, pt->partition, pt->generation, off);
    brw_logj(BRW_LOG_DEBUG,
             brw__app_input_fields(app, pt->partition, off, traceparent,
                                   json_pack("{sI ss}", "campaign_id",
                                             (json_int_t)ev.campaign_id,
                                             "account", ev.account)),
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
  int64_t wall = brw_now_ms();
  c->first_event_ms = brw_campaign_first_event_ms(ev.occurred_at_ms, wall);
  /* event.max_size bounds the value and event.max_key_size the key (both
   * at most 1 GiB): together they bound what a campaign keeps. The check
   * below only guards the 32-bit lengths. */
  size_t klen = msg->key_len <= UINT32_MAX - msg->value_len ? msg->key_len : 0;
  size_t evlen = klen + msg->value_len + (tplen ? tplen + 1 + tslen + 1 : 0);
  if (evlen > 0 && (c->ev = malloc(evlen)) != NULL) {
    if (klen)
      memcpy(c->ev, msg->key, klen);
    if (msg->value_len)
      memcpy(c->ev + klen, msg->value, msg->value_len);
    if (tplen) {
      char *t = c->ev + klen + msg->value_len;
      memcpy(t, tp, tplen);
      t[tplen] = '\0';
      if (tslen)
        memcpy(t + tplen + 1, ts, tslen);
      t[tplen + 1 + tslen] = '\0';
    }
    c->ev_key_len = (uint32_t)klen;
    c->ev_value_len = (uint32_t)msg->value_len;
    c->tp_len = (uint8_t)tplen;
  }
  brw_campaign_step_t st;
  brw_campaign_start(&c->life, &app->life, mono_now(app), wall,
                     c->first_event_ms, ev.type == BRW_EVENT_FINISHED, &st);
  brw_timer_init(&c->timer);
  brw_list_init(&c->pnode);
  brw_list_insert_tail(&pt->campaigns, &c->pnode);
  brw_tracker_insert(&app->table, &c->key);
  app->tracked++;
  brw__app_sweep_tracked(app, account, 1);
  brw_metrics_set(app->m, BRW_M_CAMPAIGNS_TRACKED, NULL, (double)app->tracked);
  brw__app_update_backpressure(app);
  campaign_carry(c, &st);
}
