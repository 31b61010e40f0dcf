/* The app's output (part of the application; src/app_int.h says which file
 * owns what): the records it produces (final and progress reports, DLQ
 * records), the completions that finish their input offsets once the broker
 * acknowledges them, the memory of recently reported campaigns (dedupe), and
 * what happens to a record the broker refuses. Loop thread only. */

#include "app_int.h"

#include "brw/bsg.h"
#include "brw/headers.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/error.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/pack.h"
#include "brw/partitions.h"
#include "brw/record.h"
#include "brw/report.h"
#include "brw/timeutil.h"
#include "brw/tracker.h"
#include "brw/vocab.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Repeated lines about DLQ records (per reason) and refused records are
 * written at most once per interval, saying how many were held back. A
 * given-up record is an ERROR, at most one line a second. */
#define DLQ_LOG_INTERVAL_MS 10000
#define DROP_LOG_INTERVAL_MS 1000
/* error.message is a header: a long API error text is cut to this. */
#define DLQ_MESSAGE_MAX 512
/* After a refusal a record is built again within a quarter of the previous
 * limit, REFUSAL_SHRINKS times; then a DLQ record goes bare (headers and a
 * short key), and refused bare it is given up (on_refused). */
#define REFUSAL_SHRINKS 3
#define LEVEL_BARE (REFUSAL_SHRINKS + 1)

/* ------------------------------------------------------------------------ */
/* Producing                                                                */

/* A completion for n offsets (filled in by the caller), linked into
 * app->completions. */
static completion_t *completion_alloc(brw_app_t *app, brw_part_t *pt, int kind,
                                      int n) {
  completion_t *c = malloc(sizeof(*c) + sizeof(int64_t) * (size_t)n);
  if (!c) {
    brw_log_error("out of memory: a record is not produced; its events "
                  "stay pending and are replayed");
    return NULL;
  }
  c->partition = pt ? pt->partition : -1;
  c->generation = pt ? pt->generation : 0;
  c->campaign_id = 0;
  c->account = -1;
  c->t_final = uv_hrtime();
  c->kind = kind;
  c->level = 0;
  c->refused = 0;
  c->ev = NULL;
  c->ev_key_len = c->ev_value_len = 0;
  c->outcome[0] = '\0';
  c->rec = NULL;
  c->rec_hdrs = NULL;
  c->rec_key_len = c->rec_value_len = 0;
  c->seq = 0;
  c->taken = c->has_rec = c->given_up = c->marked = 0;
  c->n = n;
  if (pt && n > 0)
    brw_part_inflight_add(pt);
  brw_list_init(&c->node);
  brw_list_insert_tail(&app->completions, &c->node);
  return c;
}

completion_t *brw__app_completion_new(brw_app_t *app, brw_part_t *pt, int kind,
                                      const int64_t *offsets, int n) {
  completion_t *c = completion_alloc(app, pt, kind, n);
  if (c && n)
    memcpy(c->offsets, offsets, sizeof(int64_t) * (size_t)n);
  return c;
}

/* A completion carrying a campaign's offsets (`with_offsets`) or none. */
completion_t *brw__app_campaign_completion(campaign_t *c, int kind,
                                           int with_offsets) {
  int n = with_offsets ? 1 + c->nmore : 0;
  completion_t *comp = completion_alloc(c->app, c->part, kind, n);
  if (comp && n) {
    comp->offsets[0] = c->first_offset;
    if (c->nmore)
      memcpy(comp->offsets + 1, c->more_offsets,
             sizeof(int64_t) * (size_t)c->nmore);
  }
  return comp;
}

/* Unlinks and frees a completion. Once no refused one is left, the health
 * tick clears record_refused (after REFUSED_CLEAR_MS without a refusal).
 * Exactly once: only for one the transaction cycle does not hold (not
 * taken, or in its committed or dropped list). */
void brw__app_completion_free(brw_app_t *app, completion_t *c) {
  if (c->refused)
    app->refused_open--;
  if (c->n > 0 &&
      brw_partitions_inflight_done(&app->parts, c->partition, c->generation))
    brw__app_revoke_kick(app);
  brw_list_remove(&c->node);
  free(c->ev);
  free(c->rec);
  brw_headers_free(c->rec_hdrs);
  free(c);
}

/* A completion that will not be produced as it is (refused, given up, out
 * of memory): freed, its offsets left pending; or, exactly once, when the
 * transaction cycle holds it, kept without a record. */
static void completion_abandon(brw_app_t *app, completion_t *c) {
  if (app->txn && c->taken)
    brw__app_txn_empty(app, c);
  else
    brw__app_completion_free(app, c);
}

/* Hands a record to the producer; `comp` comes back through on_delivered
 * or on_refused (which may run before this returns). */
static void produce(brw_app_t *app, const char *topic, const void *key,
                    size_t key_len, const void *value, size_t value_len,
                    brw_headers_t *hdrs, completion_t *comp) {
  if (app->txn) {
    /* Exactly once: kept, and produced when its transaction is open. */
    brw__app_txn_put(app, comp, key, key_len, value, value_len, hdrs);
    brw__app_update_backpressure(app);
    return;
  }
  brw_kafka_record_t rec = {topic,    key,  key_len, value,
                            value_len, hdrs, comp};
  int r = brw_kafka_produce(app->kafka, &rec);
  if (r != 0) {
    /* Only after a fatal error (shutdown follows) or out of memory: the
     * offsets stay pending and are replayed by the next run. */
    brw__app_completion_free(app, comp);
  }
  brw__app_update_backpressure(app);
}

/* Drops remembered campaigns that expired, and the oldest beyond
 * max.tracked. Entries are appended in expiry order, so only the head is
 * ever looked at. */
static void recent_expire(brw_app_t *app) {
  uint64_t now = uv_now(app->loop);
  while (!brw_list_empty(&app->recent_fifo)) {
    recent_t *r = brw_list_entry(app->recent_fifo.next, recent_t, node);
    if (r->expires > now && app->recent.count <= (size_t)app->cfg->max_tracked)
      break;
    brw_list_remove(&r->node);
    brw_tracker_remove(&app->recent, &r->key);
    free(r);
  }
}

static void recent_add(brw_app_t *app, int32_t partition, int32_t account,
                       uint64_t id) {
  if (app->cfg->dedupe_window_ms == 0 ||
      brw_tracker_find(&app->recent, partition, account, id))
    return;
  recent_t *r = calloc(1, sizeof(*r));
  if (!r)
    return; /* only costs a possible duplicate report */
  r->key.id = id;
  r->key.partition = partition;
  r->key.account = account;
  r->expires = uv_now(app->loop) + app->cfg->dedupe_window_ms;
  brw_list_init(&r->node);
  brw_list_insert_tail(&app->recent_fifo, &r->node);
  brw_tracker_insert(&app->recent, &r->key);
  recent_expire(app);
}

int brw__app_recent_has(brw_app_t *app, int32_t partition, int32_t account,
                        uint64_t id) {
  recent_expire(app);
  return brw_tracker_find(&app->recent, partition, account, id) != NULL;
}

/* A record is published (at least once: acknowledged; exactly once: its
 * transaction committed, its offsets marked at the commit's start, so
 * mark_offsets 0): counted, its campaign remembered, its offsets done, and
 * the completion freed. */
void brw__app_completion_settle(brw_app_t *app, completion_t *c,
                                int mark_offsets) {
  if (app->txn && c->given_up) {
    /* Exactly once, given up (dlq_give_up counted it): no record. */
  } else if (c->kind == 0) {
    recent_add(app, c->partition, c->account, c->campaign_id);
    brw_metrics_inc(app->m, BRW_M_REPORTS_PUBLISHED, c->outcome, 1);
    brw_metrics_observe(app->m, BRW_M_REPORT_DELAY, NULL,
                        (double)(uv_hrtime() - c->t_final) / 1e9);
  } else if (c->kind == 1) {
    brw_metrics_inc(app->m, BRW_M_DLQ_RECORDS, c->outcome, 1);
  } else {
    brw_metrics_inc(app->m, BRW_M_PROGRESS_REPORTS, NULL, 1);
  }
  for (int i = 0; mark_offsets && i < c->n; i++)
    brw_partitions_done(&app->parts, c->partition, c->generation,
                        c->offsets[i]);
  app->st.acked++;
  brw__app_completion_free(app, c);
  brw__app_update_backpressure(app);
}

void brw__app_on_delivered(void *ctx, void *opaque) {
  brw_app_t *app = ctx;
  if (app->txn)
    return; /* exactly once: settled when its transaction commits */
  brw__app_completion_settle(app, opaque, 1);
}

/* Each DLQ reason (brw_dlq_reason_names) has a log limit of its own; a
 * word outside the table shares the last slot of app->dlq_log. */
static brw_log_limit_t *dlq_log_limit(brw_app_t *app, const char *reason) {
  int i = brw_vocab_find(brw_dlq_reason_names, reason);
  return &app->dlq_log[i < 0 ? BRW_DLQ__COUNT : i];
}

/* 1 when a line under limit `l` may be written now, with *held set to the
 * lines held back since the last one (counted by brw_log_limit). */
int brw__app_log_allowed(brw_app_t *app, brw_log_limit_t *l, uint64_t interval,
                         uint64_t *held) {
  return brw_log_limit(l, uv_now(app->loop), interval, held);
}

static const char *kind_name(int kind) {
  return kind == 0 ? "report" : kind == 2 ? "progress" : "dlq";
}

/* The fields of a line about a completion's record: its input record (the
 * first offset), its campaign when it has one, the trace context a final
 * report keeps, and the members of `more` (stolen). */
static json_t *completion_fields(brw_app_t *app, const completion_t *c,
                                 json_t *more) {
  json_t *f = brw__app_input_fields(
      app, c->partition, c->n ? c->offsets[0] : -1,
      brw__app_ev_traceparent(c->ev, c->ev_key_len, c->ev_value_len, c->tp_len),
      more);
  if (f && c->campaign_id)
    json_object_set_new(f, "campaign_id",
                        json_integer((json_int_t)c->campaign_id));
  return f;
}

/* The last resort for a DLQ record that even its bare form could not get
 * accepted (or that cannot be built within output.max_record_size): its
 * input offsets are completed without a record, loudly (an ERROR naming the
 * source partition and offset, dlq_records_dropped_total), so that the
 * partition moves on. The alternative, a partition stalled for ever behind
 * one record, stops every event after it (SPEC §4, docs/design.md). Frees
 * the completion. */
static void dlq_give_up(brw_app_t *app, completion_t *c, const char *why) {
  uint64_t held = 0;
  brw_metrics_inc(app->m, BRW_M_DLQ_DROPPED, NULL, 1);
  if (brw__app_log_allowed(app, &app->drop_log, DROP_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_ERROR,
             completion_fields(app, c,
                               json_pack("{ss si ss sI}", "dlq_topic",
                                         app->cfg->topic_dlq, "offsets", c->n,
                                         "reason", c->outcome, "suppressed",
                                         (json_int_t)held)),
             "DLQ record given up, its event is completed without one: %s; "
             "read the event from the input topic at this offset",
             why);
  if (app->txn) {
    /* Exactly once: the offsets complete with the transaction. */
    brw__app_txn_empty(app, c);
    return;
  }
  for (int i = 0; i < c->n; i++)
    brw_partitions_done(&app->parts, c->partition, c->generation,
                        c->offsets[i]);
  brw__app_completion_free(app, c);
  brw__app_update_backpressure(app);
}

/* The size a record refused `level` times is built to:
 * output.max_record_size, divided by 4 per refusal. */
static size_t refusal_limit(const brw_app_t *app, int level) {
  size_t limit = (size_t)app->cfg->output_max_record_size;
  for (int i = 0; i < level && i < REFUSAL_SHRINKS; i++)
    limit /= 4;
  return limit;
}

/* Produces a DLQ record made of `key` and `value` (borrowed) and the
 * headers `h` (owned; handed on), shortened so that the whole record fits
 * refusal_limit(comp->level) and the key `key_max` (brw_record_fit; bare at
 * LEVEL_BARE, or when not even the headers fit a shrunk limit). A
 * shortened record says so: error.truncated ("key", "value" or
 * "key,value", against the original sizes orig_key_len and orig_value_len)
 * and error.original_key_size / error.original_value_size. Cuts fall on
 * UTF-8 boundaries. Takes over `comp` (kind 1): it comes back through
 * on_delivered or on_refused, or is given up here. */
static void dlq_produce(brw_app_t *app, completion_t *comp, const void *key,
                        size_t key_len, size_t key_max, const void *value,
                        size_t value_len, brw_headers_t *h, size_t orig_key_len,
                        size_t orig_value_len) {
  if (!h) {
    brw_log_error("out of memory building a DLQ record's headers: not "
                  "produced; its events stay pending and are replayed");
    completion_abandon(app, comp);
    return;
  }
  brw_record_fit_t f;
  size_t hsize = brw_record_headers_size(h);
  int r = brw_record_fit(refusal_limit(app, comp->level), key_max, key_len,
                         value_len, hsize, comp->level >= LEVEL_BARE, &f);
  if (r != 0 && comp->level > 0) {
    comp->level = LEVEL_BARE;
    r = brw_record_fit(app->cfg->output_max_record_size, key_max, key_len,
                       value_len, hsize, 1, &f);
  }
  if (r != 0) {
    brw_headers_free(h);
    dlq_give_up(app, comp, "its headers alone exceed output.max_record_size");
    return;
  }
  if (f.key_len < key_len)
    f.key_len = brw_record_utf8_cut(key, key_len, f.key_len);
  if (f.value_len < value_len)
    f.value_len = brw_record_utf8_cut(value, value_len, f.value_len);
  int cut_key = f.key_len < orig_key_len;
  int cut_value = f.value_len < orig_value_len;
  if (cut_key || cut_value) {
    char num[32];
    /* Out of memory a header is missing: the record still goes. */
    brw_headers_add_str(h, "error.truncated",
                        cut_key && cut_value ? "key,value"
                        : cut_key            ? "key"
                                             : "value");
    snprintf(num, sizeof(num), "%zu", orig_key_len);
    brw_headers_add_str(h, "error.original_key_size", num);
    snprintf(num, sizeof(num), "%zu", orig_value_len);
    brw_headers_add_str(h, "error.original_value_size", num);
    brw_metrics_inc(app->m, BRW_M_DLQ_TRUNCATED, NULL, 1);
  }
  produce(app, app->cfg->topic_dlq, key, f.key_len, value, f.value_len, h,
          comp);
}

/* Adds the CloudEvents headers (output.cloudevents=binary) of a record:
 * ce_time is now. Returns 0 or BRW_ENOMEM. */
static int ce_headers(brw_app_t *app, brw_headers_t *h, const char *type,
                      const char *id, uint64_t campaign_id) {
  if (!brw_config_cloudevents(app->cfg))
    return 0;
  brw_ce_t ce = {.id = id,
                 .source = app->ce_source,
                 .type = type,
                 .time_ms = brw_now_ms(),
                 .subject = campaign_id};
  return brw_ce_headers_add(h, &ce);
}

/* The headers every DLQ record carries (SPEC §4), and the CloudEvents ones
 * (ce_id from the input record; ce_subject the campaign, 0 when the event
 * named none). New; the caller owns them; NULL when out of memory. The
 * message is cut to DLQ_MESSAGE_MAX bytes. */
static brw_headers_t *dlq_headers(brw_app_t *app, int32_t partition,
                                  int64_t source_offset, uint64_t campaign_id,
                                  const char *reason, const char *message) {
  brw_headers_t *h = brw_headers_new();
  char num[32];
  size_t mlen = strlen(message);
  /* The API's text may quote a secret: redacted first, then cut. */
  char clean[1024];
  brw_log_redact_into(message, clean, sizeof(clean));
  mlen = strlen(clean);
  char part[32];
  snprintf(part, sizeof(part), "%" PRId32, partition);
  snprintf(num, sizeof(num), "%" PRId64, source_offset);
  if (!h || brw_headers_add_str(h, "error.reason", reason) ||
      brw_headers_add(
          h, "error.message", clean,
          brw_record_utf8_cut(
              clean, mlen, mlen < DLQ_MESSAGE_MAX ? mlen : DLQ_MESSAGE_MAX)) ||
      brw_headers_add_str(h, "source.topic", app->cfg->topic_input) ||
      brw_headers_add_str(h, "source.partition", part) ||
      brw_headers_add_str(h, "source.offset", num)) {
    brw_headers_free(h);
    return NULL;
  }
  char id[BRW_CE_ID_MAX];
  brw_ce_dlq_id(id, sizeof(id), app->cfg->topic_input, partition,
                source_offset);
  if (ce_headers(app, h, BRW_CE_TYPE_DLQ, id, campaign_id) != 0) {
    brw_headers_free(h);
    return NULL;
  }
  return h;
}

/* Sends the original bytes of an event to the DLQ with the reason headers
 * (SPEC §4), shortened only when the record would not fit (dlq_produce;
 * `key_max` bounds the key on its own, SIZE_MAX for none). The offsets of
 * `comp` (a completion, made kind 1 here, or NULL when it could not be
 * allocated: nothing is sent, the offsets stay pending) complete when the
 * broker acknowledges it. The WARN line is rate-limited per reason (the
 * metrics count every record). */
void brw__app_dlq_send(brw_app_t *app, int32_t partition, const void *key,
                       size_t key_len, size_t key_max, const void *value,
                       size_t value_len, int64_t source_offset,
                       uint64_t campaign_id, const char *traceparent,
                       const char *reason, const char *message,
                       completion_t *comp) {
  if (!comp)
    return;
  comp->kind = 1;
  snprintf(comp->outcome, sizeof(comp->outcome), "%s", reason);
  app->st.dlq++;
  uint64_t held = 0;
  if (brw__app_log_allowed(app, dlq_log_limit(app, reason), DLQ_LOG_INTERVAL_MS,
                           &held)) {
    json_t *f = brw__app_input_fields(
        app, partition, source_offset, traceparent,
        json_pack("{ss ss sI}", "reason", reason, "error", message,
                  "suppressed", (json_int_t)held));
    if (f && campaign_id)
      json_object_set_new(f, "campaign_id",
                          json_integer((json_int_t)campaign_id));
    brw_logj(BRW_LOG_WARN, f, "event sent to the DLQ");
  }
  comp->campaign_id = campaign_id;
  dlq_produce(
      app, comp, key, key_len, key_max, value, value_len,
      dlq_headers(app, partition, source_offset, campaign_id, reason, message),
      key_len, value_len);
}

/* Reads a decimal size header of a refused record; `dflt` when absent. */
static size_t header_size(const brw_headers_t *h, const char *name,
                          size_t dflt) {
  const void *v;
  size_t n;
  char buf[32];
  if (!h || brw_headers_get_last(h, name, &v, &n) != 0 || !v || n == 0 ||
      n >= sizeof(buf))
    return dflt;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return (size_t)strtoull(buf, NULL, 10);
}

/* A record was refused for good (kafka on_refused; loop thread, possibly
 * from inside brw_kafka_produce). Nothing is retried as it was built for
 * the limit that failed:
 * - a DLQ record is built again within a quarter of that limit
 *   (refusal_limit), up to REFUSAL_SHRINKS times, then bare (headers and a
 *   short key), and given up when even that is refused (dlq_give_up);
 * - a final report is produced again unchanged while it is within the
 *   shrunk limit, then goes to the DLQ as too_large with the campaign's
 *   first event, and its offsets complete with that record;
 * - a progress report is skipped (it completes nothing).
 * Why shrink by steps rather than jump to the smallest form: the broker
 * refuses a whole batch when the batch exceeds the topic's
 * max.message.bytes, so the records batched with the culprit are refused
 * with it. Shrinking by steps makes the culprit smaller each round while
 * small records go again unchanged, and librdkafka knows no other way
 * (it does not split a refused batch as the Java producer does).
 * record_refused is raised until every refused record is settled. */
void brw__app_on_refused(void *ctx, const brw_kafka_record_t *rec, int err,
                         const char *reason) {
  brw_app_t *app = ctx;
  completion_t *c = rec->opaque;
  uint64_t now = uv_now(app->loop), held = 0;
  int64_t src = c->n ? c->offsets[0] : -1;
  size_t size = brw_record_size(rec->key_len, rec->value_len,
                                brw_record_headers_size(rec->headers));
  brw_metrics_inc(app->m, BRW_M_RECORDS_REFUSED, kind_name(c->kind), 1);
  if (!c->refused) {
    c->refused = 1;
    app->refused_open++;
  }
  app->last_refused_ms = now;
  brw_health_raise(app->health, BRW_BLOCK_RECORD_REFUSED, now,
                   "topic %s refused a %s record of %zu bytes (%s); source "
                   "partition %" PRId32 " offset %" PRId64,
                   rec->topic, kind_name(c->kind), size,
                   brw_kafka_err_name(err), c->partition, src);
  if (brw__app_log_allowed(app, &app->refused_log, DLQ_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_WARN,
             completion_fields(
                 app, c,
                 json_pack("{ss ss ss sI sI si sI}", "output_topic", rec->topic,
                           "kind", kind_name(c->kind), "error",
                           brw_kafka_err_name(err), "key_bytes",
                           (json_int_t)rec->key_len, "value_bytes",
                           (json_int_t)rec->value_len, "refusals", c->level + 1,
                           "suppressed", (json_int_t)held)),
             "record refused for good, not produced again as it is: %s",
             reason);
  if (c->kind == 2) {
    completion_abandon(app, c);
    return;
  }
  if (c->kind == 0) {
    if (c->level < REFUSAL_SHRINKS &&
        size <= refusal_limit(app, c->level + 1)) {
      /* Small enough to have been refused with a larger batch-mate. */
      brw_headers_t *h = rec->headers ? brw_headers_copy(rec->headers) : NULL;
      c->level++;
      produce(app, rec->topic, rec->key, rec->key_len, rec->value,
              rec->value_len, h, c);
      return;
    }
    char msg[192];
    snprintf(msg, sizeof(msg), "the report of %zu bytes was refused: %s",
             rec->value_len, brw_kafka_err_name(err));
    app->st.dlq++;
    c->kind = 1;
    c->level = 0;
    snprintf(c->outcome, sizeof(c->outcome), "%s", BRW_REASON_TOO_LARGE);
    /* c->ev stays the completion's until it is freed, after produce. */
    dlq_produce(app, c, c->ev, c->ev_key_len, SIZE_MAX,
                c->ev ? c->ev + c->ev_key_len : NULL, c->ev_value_len,
                dlq_headers(app, c->partition, src, c->campaign_id,
                            BRW_REASON_TOO_LARGE, msg),
                c->ev_key_len, c->ev_value_len);
    return;
  }
  if (c->level >= LEVEL_BARE) {
    dlq_give_up(app, c, reason);
    return;
  }
  /* Again, from what was refused, with the same headers except the
   * truncation ones, which dlq_produce adds again against the original
   * sizes. */
  c->level++;
  brw_headers_t *h = rec->headers ? brw_headers_copy(rec->headers) : NULL;
  if (!h) {
    dlq_give_up(app, c, "out of memory copying its headers");
    return;
  }
  size_t okey = header_size(rec->headers, "error.original_key_size",
                            rec->key_len);
  size_t oval = header_size(rec->headers, "error.original_value_size",
                            rec->value_len);
  brw_headers_remove(h, "error.truncated");
  brw_headers_remove(h, "error.original_key_size");
  brw_headers_remove(h, "error.original_value_size");
  dlq_produce(app, c, rec->key, rec->key_len, SIZE_MAX, rec->value,
              rec->value_len, h, okey, oval);
}

/* The outcome's index in brw_outcome_names; BRW_OUTCOME__COUNT for
 * anything else (a progress status). */
static int outcome_index(const char *o) {
  int i = brw_vocab_find(brw_outcome_names, o);
  return i < 0 ? BRW_OUTCOME__COUNT : i;
}

/* Publishes a report for a campaign. A final report takes the campaign's
 * offsets along; a progress report completes nothing. */
void brw__app_report_send(brw_app_t *app, campaign_t *c, int final,
                          const char *outcome) {
  brw_report_input_t in = {0};
  in.campaign_id = c->key.id;
  in.account = app->cfg->accounts[c->key.account].name;
  in.final = final;
  in.outcome = outcome;
  brw_detail_t full;
  char perr[128];
  in.detail = NULL;
  if (c->detail) {
    /* The body passed brw_detail_summary when it came, so this fails only
     * for memory: the report then goes without its detail, said loudly. */
    char *body = NULL;
    size_t blen = 0;
    int r = brw_pack_unbody(app->pack, c->detail, c->detail_len, &body, &blen);
    if (r == 0 && brw_detail_parse(body, blen, app->cfg->api_tz, &full, perr,
                                   sizeof(perr)) == 0)
      in.detail = &full;
    else
      brw_logj(BRW_LOG_ERROR, brw__app_campaign_fields(c, NULL),
               "cannot rebuild the last detail of campaign %" PRIu64 ": %s",
               c->key.id, r == 0 ? perr : brw_strerror(r));
    free(body);
  }
  in.events = c->events;
  in.polls = c->life.polls;
  in.first_event_ms = c->first_event_ms;
  in.reported_ms = brw_now_ms();
  in.source_topic = app->cfg->topic_input;
  in.source_partition = c->part->partition;
  in.source_offset = c->first_offset;
  in.worker_version = BRW_VERSION;
  in.worker_instance = app->instance;
  in.traceparent = brw__app_traceparent(c);
  in.tracestate = brw__app_tracestate(c);
  size_t len = 0;
  char *json = brw_report_build(&in, &len);
  if (in.detail)
    brw_detail_clear(&full);
  if (!json) {
    brw_log_error("out of memory building a report");
    return;
  }
  /* ce_id: one per final outcome; a progress report's from its detail. */
  char ce_id[BRW_CE_ID_MAX];
  if (final)
    brw_ce_report_id(ce_id, sizeof(ce_id), in.account, c->key.id, outcome);
  else
    brw_ce_progress_id(ce_id, sizeof(ce_id), in.account, c->key.id, outcome,
                       c->detail_crc);
  brw_headers_t *h = brw_headers_new();
  if (!h || brw_headers_add_str(h, "content-type", "application/json") ||
      (in.traceparent &&
       brw_headers_add_str(h, "traceparent", in.traceparent)) ||
      (in.tracestate && brw_headers_add_str(h, "tracestate", in.tracestate)) ||
      ce_headers(app, h, final ? BRW_CE_TYPE_REPORT : BRW_CE_TYPE_PROGRESS,
                 ce_id, c->key.id)) {
    brw_log_error("out of memory building a report");
    brw_headers_free(h);
    free(json);
    return;
  }
  char key[24];
  int klen = snprintf(key, sizeof(key), "%" PRIu64, c->key.id);
  size_t rsize = brw_record_size((size_t)klen, len, brw_record_headers_size(h));
  if (rsize > app->cfg->output_max_record_size) {
    /* A report that cannot fit (a detail carrying huge pass-through
     * fields): a final one goes to the DLQ as too_large with the first
     * event, and the campaign's offsets complete with that record; a
     * progress report is skipped. Never produced to be refused. */
    brw_headers_free(h);
    free(json);
    brw_metrics_inc(app->m, BRW_M_RECORDS_REFUSED,
                    final ? "report" : "progress", 1);
    char msg[192];
    snprintf(msg, sizeof(msg),
             "the %s report of %zu bytes exceeds output.max_record_size "
             "(%" PRIu64 " bytes)",
             final ? "final" : "progress", rsize,
             (uint64_t)app->cfg->output_max_record_size);
    if (!final) {
      uint64_t held = 0;
      if (brw__app_log_allowed(app, &app->refused_log, DLQ_LOG_INTERVAL_MS,
                               &held))
        brw_logj(BRW_LOG_WARN,
                 brw__app_campaign_fields(
                     c, json_pack("{sI}", "suppressed", (json_int_t)held)),
                 "%s; skipped", msg);
      return;
    }
    brw__app_dlq_send(app, c->part->partition, c->ev, c->ev_key_len, SIZE_MAX,
                      c->ev ? c->ev + c->ev_key_len : NULL, c->ev_value_len,
                      c->first_offset, c->key.id, in.traceparent,
                      BRW_REASON_TOO_LARGE, msg,
                      brw__app_campaign_completion(c, 1, 1));
    return;
  }
  completion_t *comp = brw__app_campaign_completion(c, final ? 0 : 2, final);
  if (!comp) {
    brw_headers_free(h);
    free(json);
    return;
  }
  snprintf(comp->outcome, sizeof(comp->outcome), "%s", outcome);
  comp->campaign_id = c->key.id;
  comp->account = c->key.account;
  if (final) {
    app->st.reports++;
    app->st.reports_by[outcome_index(outcome)]++;
    brw_metrics_observe(app->m, BRW_M_POLLS_PER_CAMPAIGN, NULL, c->life.polls);
    brw_logj(
        BRW_LOG_INFO,
        brw__app_campaign_fields(c, json_pack("{ss si}", "outcome", outcome,
                                              "polls", c->life.polls)),
        "campaign reported");
  } else {
    app->st.progress++;
  }
  if (final) {
    /* The campaign is dropped after this: its first event moves to the
     * completion, for the DLQ should the broker refuse the report. */
    comp->ev = c->ev;
    comp->ev_key_len = c->ev_key_len;
    comp->ev_value_len = c->ev_value_len;
    comp->tp_len = c->tp_len;
    c->ev = NULL;
  }
  produce(app, app->cfg->topic_output, key, (size_t)klen, json, len, h, comp);
  free(json);
}
