/* Exactly once (delivery.guarantee = exactly_once; part of the
 * application, src/app_int.h says which file owns what): carries out the
 * steps of the transaction cycle (src/txn.c decides, docs/transactions.md
 * says why) with the records the app keeps. Loop thread only.
 *
 * A record's id in the cycle is its completion's address: a completion the
 * cycle holds (`taken`) is freed only when the cycle hands it back,
 * committed or dropped. Each completion keeps its record's bytes until
 * then, so that an aborted transaction is produced again from memory, with
 * no fetch. Its input offsets are marked done when the commit that covers
 * it starts, and that commit sends the positions and completed-offset maps
 * (brw_partitions_commit_list) in the transaction: the records and the
 * offsets they complete become visible together, or not at all. */

#include "app_int.h"

#include "brw/error.h"
#include "brw/headers.h"
#include "brw/kafka.h"
#include "brw/log.h"
#include "brw/list.h"
#include "brw/metrics.h"
#include "brw/offsets.h"
#include "brw/partitions.h"
#include "brw/txn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failed transactional call is logged at most this often (with the
 * count held back); every one is counted in commit_failures_total when it
 * is a commit. */
#define TXN_LOG_INTERVAL_MS 10000
/* The longest wait between two attempts of a transactional call, or
 * before the redo after aborts in a row. */
#define TXN_RETRY_MAX_MS 30000

static uint64_t id_of(const completion_t *c) {
  return (uint64_t)(uintptr_t)c;
}

static completion_t *of_id(uint64_t id) {
  return (completion_t *)(uintptr_t)id;
}

static void txn_feed(brw_app_t *app, const brw_txn_input_t *in);

/* Forgets the record `c` keeps (it completes its offsets without one). */
static void drop_rec(completion_t *c) {
  free(c->rec);
  brw_headers_free(c->rec_hdrs);
  c->rec = NULL;
  c->rec_hdrs = NULL;
  c->has_rec = 0;
}

/* Produces a kept record into the open transaction. A record the producer
 * refuses at once comes back through on_refused (brw__app_txn_put makes its
 * smaller form and produces that from inside this call); any other failure
 * loses the transaction. */
static void produce_kept(brw_app_t *app, completion_t *c) {
  c->seq = app->txn_seq;
  if (!c->has_rec)
    return; /* given up: its offsets complete without a record */
  brw_headers_t *h = NULL;
  if (c->rec_hdrs && !(h = brw_headers_copy(c->rec_hdrs))) {
    brw_txn_input_t in = {.kind = BRW_TXIN_DELIVERY_FAILED,
                          .now = uv_now(app->loop),
                          .seq = c->seq};
    brw_log_error("out of memory copying a record's headers: the "
                  "transaction is aborted and produced again");
    txn_feed(app, &in);
    return;
  }
  brw_kafka_record_t rec = {c->kind == 1 ? app->cfg->topic_dlq
                                         : app->cfg->topic_output,
                            c->rec,
                            c->rec_key_len,
                            c->rec + c->rec_key_len,
                            c->rec_value_len,
                            h,
                            c};
  completion_t *outer = app->txn_producing;
  app->txn_producing = c;
  int r = brw_kafka_produce(app->kafka, &rec);
  app->txn_producing = outer;
  if (r != 0) {
    uint64_t held = 0;
    brw_txn_input_t in = {.kind = BRW_TXIN_DELIVERY_FAILED,
                          .now = uv_now(app->loop),
                          .seq = c->seq};
    if (brw__app_log_allowed(app, &app->txn_log, TXN_LOG_INTERVAL_MS, &held))
      brw_logj(BRW_LOG_WARN, json_pack("{sI}", "suppressed", (json_int_t)held),
               "transaction: the producer does not take a record (%s); the "
               "transaction is aborted and produced again",
               brw_strerror(r));
    txn_feed(app, &in);
  }
}

/* The commit starts: the offsets of its records are marked done, and the
 * positions that changed go with it. With no record (the keep-alive, a
 * revocation or a stop with nothing ready) the positions held are sent
 * anyway, so that the transaction is not empty. */
static void commit_offsets(brw_app_t *app, const brw_txn_step_t *st) {
  for (size_t i = 0; i < st->n_commit; i++) {
    completion_t *c = of_id(st->commit[i]);
    if (c->marked)
      continue;
    c->marked = 1;
    for (int j = 0; j < c->n; j++)
      brw_partitions_done(&app->parts, c->partition, c->generation,
                          c->offsets[j]);
  }
  brw_partitions_commit_list(&app->parts, 0, &app->txn_offsets);
  if (app->txn_offsets.cnt == 0 && st->n_commit == 0) {
    brw_partitions_resend_all(&app->parts);
    brw_partitions_commit_list(&app->parts, 0, &app->txn_offsets);
  }
}

/* The offsets of a commit are settled by its result: confirmed when it
 * went well; sent again later when it failed for good (the transaction is
 * aborted). After a retriable failure they are kept for the commit's next
 * attempt, which sends exactly them (or, when the failed attempt sent them
 * already, nothing: librdkafka refuses send_offsets once the commit began),
 * so that what is confirmed is what went. */
static void settle_offsets(brw_app_t *app, brw_txn_result_t result) {
  if (!app->txn_offsets_live)
    return;
  if (result == BRW_TXN_RETRIABLE)
    return;
  if (result == BRW_TXN_OK)
    brw_partitions_commit_done(&app->parts, 0, &app->txn_offsets);
  else
    brw_partitions_commit_failed(&app->parts, &app->txn_offsets);
  brw_kafka_positions_clear(&app->txn_offsets);
  app->txn_offsets_live = 0;
}

/* The partitions held, for a rebuild to read their committed offsets. */
static void held_partitions(brw_app_t *app, brw_kafka_positions_t *out) {
  for (int32_t p = 0; p < app->parts.nparts; p++) {
    brw_part_t *pt = brw_partitions_get(&app->parts, p);
    if (pt && pt->assigned)
      brw_kafka_positions_add(out, p, -1, NULL, 0); /* out of memory: the
                                                       partition is not read */
  }
}

/* 1 when every offset of `c` is below `pos` or in `done`. */
static int covered(const completion_t *c, int64_t pos,
                   const brw_offset_ranges_t *done) {
  for (int i = 0; i < c->n; i++) {
    size_t cursor = 0;
    if (c->offsets[i] >= pos &&
        !brw_offset_ranges_contain(done, &cursor, c->offsets[i]))
      return 0;
  }
  return c->n > 0;
}

/* After a rebuild: a commit the old producer left in doubt (EndTxn sent,
 * the answer lost, then fenced) is committed or aborted by the new
 * producer's init_transactions. The records whose offsets the group's
 * committed offsets already cover were published with them: they are not
 * produced again (kept in the cycle without a record, so that their
 * completions settle with the next commit). A record that completes no
 * offset (a progress report) cannot be told apart and goes again. */
static void resolve_in_doubt(brw_app_t *app,
                             const brw_kafka_positions_t *committed) {
  size_t skipped = 0;
  for (int i = 0; i < committed->cnt; i++) {
    const brw_kafka_pos_t *e = &committed->elems[i];
    brw_part_t *pt = brw_partitions_get(&app->parts, e->partition);
    if (e->err || e->offset < 0 || !pt || !pt->assigned)
      continue;
    brw_offset_ranges_t done = {0};
    if (e->metadata_len &&
        brw_offsets_decode(e->metadata, e->metadata_len, e->offset, &done) !=
            0)
      done.n = 0;
    brw_list_t *it;
    for (it = app->completions.next; it != &app->completions; it = it->next) {
      completion_t *c = brw_list_entry(it, completion_t, node);
      if (!c->taken || !c->has_rec || c->partition != e->partition ||
          c->generation != pt->generation || !covered(c, e->offset, &done))
        continue;
      drop_rec(c);
      skipped++;
    }
    free(done.ranges);
  }
  if (skipped)
    brw_logj(BRW_LOG_WARN, json_pack("{sI}", "records", (json_int_t)skipped),
             "transaction: the commit left in doubt by the old producer had "
             "gone through; its records are not produced again");
}

static void start_call(brw_app_t *app, const brw_txn_step_t *st) {
  brw_kafka_positions_t held = {0};
  if (st->call == BRW_TXN_CALL_COMMIT && !app->txn_offsets_live) {
    commit_offsets(app, st);
    app->txn_offsets_live = 1;
  } else if (st->call != BRW_TXN_CALL_COMMIT) {
    /* A commit given up after its retries: its offsets go again. */
    settle_offsets(app, BRW_TXN_FATAL);
  }
  if (st->call == BRW_TXN_CALL_REBUILD)
    held_partitions(app, &held);
  brw_logj(BRW_LOG_DEBUG,
           json_pack("{ss sI sI}", "call", brw_txn_call_name(st->call),
                     "records", (json_int_t)st->n_commit, "partitions",
                     (json_int_t)app->txn_offsets.cnt),
           "transaction: %s", brw_txn_call_name(st->call));
  int r = brw_kafka_txn_call(
      app->kafka, st->call,
      st->call == BRW_TXN_CALL_REBUILD ? &held : &app->txn_offsets);
  brw_kafka_positions_clear(&held);
  if (r != 0) {
    brw_txn_input_t in = {.kind = BRW_TXIN_CALL_DONE,
                          .now = uv_now(app->loop),
                          .result = BRW_TXN_RETRIABLE};
    brw_log_error("cannot start the transactional call %s; tried again",
                  brw_txn_call_name(st->call));
    txn_feed(app, &in);
  }
}

static void on_txn_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  brw_txn_input_t in = {.kind = BRW_TXIN_TICK, .now = uv_now(app->loop)};
  txn_feed(app, &in);
}

/* Carries out one step, in the order txn.h gives. */
static void carry(brw_app_t *app, const brw_txn_step_t *st) {
  for (size_t i = 0; i < st->n_committed; i++)
    brw__app_completion_settle(app, of_id(st->committed[i]), 0);
  for (size_t i = 0; i < st->n_dropped; i++)
    brw__app_completion_free(app, of_id(st->dropped[i]));
  if (st->n_dropped)
    brw_logj(BRW_LOG_INFO,
             json_pack("{sI}", "records", (json_int_t)st->n_dropped),
             "transaction: records of partitions that left are not "
             "committed; their events are reported by the next owner");
  if (st->release && app->revoke.active)
    brw__app_revoke_finish(app);
  if (st->closed) {
    app->txn_closed = 1;
    uv_timer_stop(&app->txn_timer);
    brw__app_shutdown_kick(app);
  }
  if (st->begin) {
    app->txn_seq = st->seq;
    if (brw_kafka_txn_begin(app->kafka) != 0) {
      /* The producer cannot take a transaction: the cycle aborts (and an
       * abort that fails makes a new producer). When the step also asked
       * for its commit (a pending flush), the cycle waits for that call's
       * end: it gets it, as a requires-abort, instead of the call. */
      brw_txn_input_t in = {.kind = BRW_TXIN_DELIVERY_FAILED,
                            .now = uv_now(app->loop),
                            .seq = st->seq};
      if (st->call != BRW_TXN_CALL_NONE) {
        in.kind = BRW_TXIN_CALL_DONE;
        in.result = BRW_TXN_REQUIRES_ABORT;
      }
      if (st->tick)
        uv_timer_start(&app->txn_timer, on_txn_timer, st->tick_in_ms, 0);
      txn_feed(app, &in);
      st = NULL;
    }
  }
  if (st) {
    for (size_t i = 0; i < st->n_produce; i++)
      produce_kept(app, of_id(st->produce[i]));
    if (st->call != BRW_TXN_CALL_NONE)
      start_call(app, st);
    if (st->tick)
      uv_timer_start(&app->txn_timer, on_txn_timer, st->tick_in_ms, 0);
  }
  brw__app_update_backpressure(app);
}

/* Feeds an input to the cycle and carries out its step. An input that
 * comes while a step is carried out (a produce that failed, a revocation
 * handed over by brw_kafka_revoke_done) waits its turn: a step's id lists
 * stay valid only until the next brw_txn_on. */
static void txn_feed(brw_app_t *app, const brw_txn_input_t *in) {
  if (!app->txn)
    return;
  if (app->txn_npending == app->txn_cappending) {
    size_t cap = app->txn_cappending ? app->txn_cappending * 2 : 8;
    brw_txn_input_t *v = realloc(app->txn_pending, cap * sizeof(*v));
    if (!v) {
      brw_log_error("out of memory queueing a transaction input (%s)",
                    brw_txn_input_name(in->kind));
      return;
    }
    app->txn_pending = v;
    app->txn_cappending = cap;
  }
  app->txn_pending[app->txn_npending++] = *in;
  if (app->txn_busy)
    return;
  app->txn_busy = 1;
  for (size_t i = 0; i < app->txn_npending; i++) {
    brw_txn_input_t next = app->txn_pending[i];
    brw_txn_step_t st;
    brw_txn_state_t was = brw_txn_state(app->txn);
    brw_txn_on(app->txn, &next, &st);
    if (st.refused) {
      /* After the close, or out of memory: not taken; its offsets stay
       * pending and are replayed. */
      completion_t *c = of_id(next.id);
      c->taken = 0;
      brw__app_completion_free(app, c);
    }
    if (brw_txn_state(app->txn) != was)
      brw_logj(BRW_LOG_DEBUG,
               json_pack("{ss ss ss}", "from", brw_txn_state_name(was), "to",
                         brw_txn_state_name(brw_txn_state(app->txn)), "input",
                         brw_txn_input_name(next.kind)),
               "transaction state");
    carry(app, &st);
  }
  app->txn_npending = 0;
  app->txn_busy = 0;
  if (brw_txn_pending(app->txn) == 0)
    app->txn_waiting_ms = 0;
  else if (app->txn_waiting_ms == 0)
    app->txn_waiting_ms = uv_now(app->loop);
}

int brw__app_txn_start(brw_app_t *app) {
  const brw_config_t *cfg = app->cfg;
  brw_txn_opts_t o = {
      .interval_ms = cfg->commit_interval_ms,
      /* Well under the broker's transactional.id.expiration.ms (7 days):
       * an idle worker keeps its producer id (docs/transactions.md). */
      .keepalive_ms = 3600 * 1000,
      /* The API's retry bounds, at most TXN_RETRY_MAX_MS apart: a
       * transaction coordinator that is back is used within seconds. */
      .retry_min_ms = cfg->retry_min_ms < TXN_RETRY_MAX_MS ? cfg->retry_min_ms
                                                           : TXN_RETRY_MAX_MS,
      .retry_max_ms = cfg->retry_max_ms < TXN_RETRY_MAX_MS ? cfg->retry_max_ms
                                                           : TXN_RETRY_MAX_MS,
      .jitter = 0.2,
      .max_commit_retries = 3,
      .max_abort_retries = 3,
  };
  brw_txn_step_t st;
  app->txn_ok_ms = app->txn_commit_ms = uv_now(app->loop);
  app->txn = brw_txn_new(&o, brw_rng_next(&app->rng), &st);
  if (!app->txn)
    return BRW_ENOMEM;
  app->txn_busy = 1;
  carry(app, &st);
  app->txn_busy = 0;
  return 0;
}

/* The cycle takes `c`, the first time it is handed over. Returns 1 when it
 * did now. */
static int take(brw_app_t *app, completion_t *c) {
  if (c->taken)
    return 0;
  c->taken = 1;
  brw_txn_input_t in = {
      .kind = BRW_TXIN_READY, .now = uv_now(app->loop), .id = id_of(c)};
  txn_feed(app, &in);
  return 1;
}

/* Keeps the record built for `c` (borrowed bytes, owned headers) and hands
 * `c` to the cycle the first time. A completion the cycle has already is
 * being built again after a refusal: from inside its own produce (the
 * producer refused it at once), the new form goes now; from a delivery
 * report, the transaction aborts (on_delivery_failed) and the new form
 * goes with its redo. */
void brw__app_txn_put(brw_app_t *app, completion_t *c, const void *key,
                      size_t key_len, const void *value, size_t value_len,
                      brw_headers_t *hdrs) {
  char *rec = malloc(key_len + value_len + 1);
  if (!rec) {
    brw_headers_free(hdrs);
    brw_log_error("out of memory keeping a record for its transaction");
    if (!c->taken)
      brw__app_completion_free(app, c); /* its events are replayed */
    return;
  }
  if (key_len)
    memcpy(rec, key, key_len);
  if (value_len)
    memcpy(rec + key_len, value, value_len);
  drop_rec(c);
  c->rec = rec;
  c->rec_hdrs = hdrs;
  c->rec_key_len = (uint32_t)key_len;
  c->rec_value_len = (uint32_t)value_len;
  c->has_rec = 1;
  if (!take(app, c) && app->txn_producing == c)
    produce_kept(app, c);
}

/* `c` completes its offsets without a record (given up): held by the cycle
 * like any other, so that its offsets are committed with a transaction. */
void brw__app_txn_empty(brw_app_t *app, completion_t *c) {
  c->given_up = 1;
  drop_rec(c);
  take(app, c);
}

void brw__app_txn_revoke(brw_app_t *app, int lost) {
  brw_txn_input_t in = {
      .kind = BRW_TXIN_REVOKE, .now = uv_now(app->loop), .lost = lost};
  txn_feed(app, &in);
}

void brw__app_txn_stop(brw_app_t *app) {
  if (app->txn_stopped)
    return;
  app->txn_stopped = 1;
  brw_txn_input_t in = {.kind = BRW_TXIN_STOP, .now = uv_now(app->loop)};
  txn_feed(app, &in);
}

void brw__app_on_txn_done(void *ctx, brw_txn_call_t call,
                          brw_txn_result_t result, const char *reason,
                          const brw_kafka_positions_t *committed) {
  brw_app_t *app = ctx;
  if (committed)
    resolve_in_doubt(app, committed);
  if (call == BRW_TXN_CALL_COMMIT) {
    if (result == BRW_TXN_OK) {
      app->st.commits++;
      brw_metrics_inc(app->m, BRW_M_COMMITS, NULL, 1);
    } else {
      brw_metrics_inc(app->m, BRW_M_COMMIT_FAILURES, NULL, 1);
    }
    settle_offsets(app, result);
  }
  if (result == BRW_TXN_OK) {
    app->txn_ok_ms = uv_now(app->loop);
    if (call == BRW_TXN_CALL_COMMIT)
      app->txn_commit_ms = app->txn_ok_ms;
    /* An abort that went well keeps the error that made it. */
    if (call != BRW_TXN_CALL_ABORT)
      app->txn_error[0] = '\0';
    if (call != BRW_TXN_CALL_INIT)
      brw_metrics_inc(app->m, BRW_M_TRANSACTIONS,
                      call == BRW_TXN_CALL_COMMIT  ? "committed"
                      : call == BRW_TXN_CALL_ABORT ? "aborted"
                                                   : "producer_rebuilt",
                      1);
  } else {
    snprintf(app->txn_error, sizeof(app->txn_error), "%s %s: %s",
             brw_txn_call_name(call), brw_txn_result_name(result),
             reason ? reason : "");
  }
  uint64_t held = 0;
  if (result != BRW_TXN_OK &&
      brw__app_log_allowed(app, &app->txn_log, TXN_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_WARN,
             json_pack("{ss ss ss sI}", "call", brw_txn_call_name(call),
                       "result", brw_txn_result_name(result), "error",
                       reason ? reason : "", "suppressed", (json_int_t)held),
             "transaction: %s failed (%s): %s", brw_txn_call_name(call),
             brw_txn_result_name(result), reason ? reason : "");
  else if (result == BRW_TXN_OK && call != BRW_TXN_CALL_COMMIT)
    brw_logj(BRW_LOG_INFO, json_pack("{ss}", "call", brw_txn_call_name(call)),
             "transaction: %s done", brw_txn_call_name(call));
  brw_txn_input_t in = {.kind = BRW_TXIN_CALL_DONE,
                        .now = uv_now(app->loop),
                        .result = result};
  txn_feed(app, &in);
  if (app->stopping)
    brw__app_shutdown_kick(app);
}

/* Purged records (an abort's) fail with these: expected, not logged. */
#define ERR_PURGE_QUEUE (-152)
#define ERR_PURGE_INFLIGHT (-151)

void brw__app_on_delivery_failed(void *ctx, void *opaque, int err,
                                 const char *reason) {
  brw_app_t *app = ctx;
  completion_t *c = opaque;
  uint64_t held = 0;
  /* A producer's fatal error was logged by the kafka module, and its
   * rebuild follows; purged records of an abort are expected. */
  if (c && err != ERR_PURGE_QUEUE && err != ERR_PURGE_INFLIGHT &&
      brw__app_log_allowed(app, &app->txn_log, TXN_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_WARN,
             json_pack("{ss sI}", "error", brw_kafka_err_name(err),
                       "suppressed", (json_int_t)held),
             "transaction: a record failed, the transaction is aborted and "
             "produced again: %s",
             reason ? reason : "");
  if (c && err != ERR_PURGE_QUEUE && err != ERR_PURGE_INFLIGHT)
    snprintf(app->txn_error, sizeof(app->txn_error), "a record failed: %s",
             reason ? reason : brw_kafka_err_name(err));
  brw_txn_input_t in = {.kind = BRW_TXIN_DELIVERY_FAILED,
                        .now = uv_now(app->loop),
                        .seq = c ? c->seq : app->txn_seq};
  txn_feed(app, &in);
}

void brw__app_txn_free(brw_app_t *app) {
  brw_txn_free(app->txn);
  app->txn = NULL;
  free(app->txn_pending);
  app->txn_pending = NULL;
  brw_kafka_positions_clear(&app->txn_offsets);
}
