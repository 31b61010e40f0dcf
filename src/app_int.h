/* Internal to the app: shared by src/app.c and the files split from it, and
 * by nothing else (the public API is include/brw/app.h). Which file owns
 * what:
 * - src/app.c: wiring and lifecycle (brw_app_new/start/stop/free), signals,
 *   the shutdown stages, the summary line, on_fatal.
 * - src/app_output.c: producing (completions, reports, DLQ records), the
 *   dedupe memory of reported campaigns, delivery reports and refused
 *   records.
 * - src/app_health.c: the health reasons, backpressure, the event loop lag,
 *   the health tick, /healthz and /readyz.
 * - src/app_rebalance.c: commits, assignment and revocation.
 * - src/app_campaign.c: the campaigns (table, timers, fetches, outcomes) and
 *   the intake of input events (brw__app_on_message).
 * - src/app_txn.c: exactly once (delivery.guarantee): carries out the
 *   transaction cycle's steps (src/txn.c) with the kept records.
 * - src/app_sweep.c: status sweeps (poll.strategy): one sweeper per
 *   account reads its campaign list and hands the listings to the
 *   campaigns.
 * Every function declared here runs on the loop thread; the comment above
 * its definition says what it does. Helpers used by one file only stay
 * static in that file. */
#ifndef BRW_APP_INT_H
#define BRW_APP_INT_H

#include "brw/admin.h"
#include "brw/api.h"
#include "brw/app.h"
#include "brw/backoff.h"
#include "brw/campaign.h"
#include "brw/cloudevents.h"
#include "brw/health.h"
#include "brw/http.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/pack.h"
#include "brw/partitions.h"
#include "brw/schedule.h"
#include "brw/sweep.h"
#include "brw/timers.h"
#include "brw/tracker.h"
#include "brw/txn.h"
#include "brw/vocab.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The health tick: how often the reasons are evaluated (and the event loop
 * lag is measured). */
#define HEALTH_TICK_MS 1000
/* event_loop_lag_seconds is the largest lag of this many last ticks, so that
 * a stall between two scrapes (every 15-30 s) is still seen. A tick's lag
 * is the larger of how late it fired and the longest iteration since the
 * last tick (see on_loop_check). */
#define LOOP_LAG_WINDOW 15

/* An account's sweeper (src/app_sweep.c). */
typedef struct app_sweeper_s app_sweeper_t;

/* What a produced record completes once the broker acknowledges it. */
typedef struct {
  brw_list_t node; /* app->completions */
  int32_t partition;
  uint64_t generation;
  uint64_t campaign_id; /* final reports: remembered once acknowledged */
  int32_t account;
  int kind; /* 0 report, 1 dlq, 2 progress */
  /* How often the broker refused this record (see on_refused): the limit
   * it is built to shrinks with each refusal (refusal_limit). */
  uint8_t level;
  uint8_t refused; /* counted in app->refused_open */
  uint8_t tp_len;  /* final reports: ev's trace context, as campaign_t's */
  /* Final reports: the campaign's first event (owned, key bytes first), so
   * that a report the broker refuses can go to the DLQ as too_large. */
  char *ev;
  uint32_t ev_key_len;
  uint32_t ev_value_len;
  char outcome[32]; /* report outcome or DLQ reason */
  uint64_t t_final; /* uv_hrtime() when the outcome was decided */
  /* Exactly once: the record as last built (key bytes, then value), kept
   * until its transaction commits so that an abort can produce it again;
   * its headers; the transaction it was last produced into. `taken`: the
   * transaction cycle has it (freed only through its committed or dropped
   * lists); `has_rec` 0: it completes its offsets without a record (given
   * up, or published already by a commit left in doubt); `given_up`: by
   * the give-up paths (not counted as published); `marked`: its offsets are
   * marked done (at its commit's start). */
  char *rec;
  brw_headers_t *rec_hdrs;
  uint32_t rec_key_len;
  uint32_t rec_value_len;
  uint64_t seq;
  uint8_t taken, has_rec, given_up, marked;
  int n;
  int64_t offsets[];
} completion_t;

/* One tracked campaign. Kept small: a worker may track a million of them
 * (docs/PERFORMANCE.md counts the bytes). Its lifecycle's state is `life`
 * (src/campaign.c decides); the rest is what carrying out its steps needs:
 * the timer, the fetch, the offsets to complete and what a report or a DLQ
 * record carries. */
typedef struct campaign_s {
  brw_tracker_node_t key; /* first: the table's node */
  brw_list_t pnode;       /* in part->campaigns */
  brw_app_t *app;
  brw_part_t *part;
  brw_timer_t timer; /* in app->timers */
  brw_fetch_t *fetch;
  brw_campaign_t life;
  /* Input offsets waiting for this campaign's outcome: the first event's,
   * and those of merged events (an array only once there are any). */
  int64_t first_offset;
  int64_t *more_offsets;
  int64_t first_event_ms; /* wall clock: the report's first_event_at */
  char *last_error;       /* owned, set by a failed fetch */
  /* The first event's key and value, for a campaign-level DLQ record, and
   * its trace context: the traceparent header (tp_len bytes and a NUL, 0
   * when none), then, only after a traceparent, the tracestate header and a
   * NUL (an empty string when none). One allocation, in that order. */
  char *ev;
  /* The last detail's body, packed (src/pack.c), NULL before one: an
   * `expired` report carries it (SPEC §4). */
  char *detail;
  uint32_t detail_len;
  uint32_t detail_crc; /* its brw_pack_digest: an unchanged body is not
                          packed again */
  uint32_t ev_key_len;
  uint32_t ev_value_len;
  int32_t events;
  uint8_t nmore, capmore; /* at most MERGED_OFFSETS_MAX */
  uint8_t tp_len;         /* at most TRACEPARENT_MAX */
} campaign_t;

/* The traceparent of a first event kept as campaign_t's ev (key, value,
 * trace context), NUL-terminated and borrowed from `ev`, or NULL. */
static inline const char *brw__app_ev_traceparent(const char *ev,
                                                  uint32_t key_len,
                                                  uint32_t value_len,
                                                  uint8_t tp_len) {
  return ev && tp_len ? ev + key_len + value_len : NULL;
}

/* ... and its tracestate (NULL when none). */
static inline const char *brw__app_ev_tracestate(const char *ev,
                                                 uint32_t key_len,
                                                 uint32_t value_len,
                                                 uint8_t tp_len) {
  const char *ts = ev && tp_len ? ev + key_len + value_len + tp_len + 1 : NULL;
  return ts && ts[0] ? ts : NULL;
}

/* The traceparent of a campaign's first event, or NULL. */
static inline const char *brw__app_traceparent(const campaign_t *c) {
  return brw__app_ev_traceparent(c->ev, c->ev_key_len, c->ev_value_len,
                                 c->tp_len);
}

/* The tracestate of a campaign's first event, or NULL. */
static inline const char *brw__app_tracestate(const campaign_t *c) {
  return brw__app_ev_tracestate(c->ev, c->ev_key_len, c->ev_value_len,
                                c->tp_len);
}

/* A campaign whose final report was acknowledged, remembered for
 * dedupe.window so that a late event for it completes at once instead of
 * starting a second tracking and a second report. */
typedef struct {
  brw_tracker_node_t key; /* first: the table's node */
  brw_list_t node;        /* app->recent_fifo, oldest first */
  uint64_t expires;       /* uv_now() time */
} recent_t;

/* How long a condition has held, or has been gone (uv_now() times; 0 is
 * "not so"). */
typedef struct {
  uint64_t on_since;
  uint64_t off_since;
} hold_t;

typedef struct {
  uint64_t events;
  uint64_t invalid;
  uint64_t merged;
  uint64_t late;
  uint64_t skipped;
  uint64_t polls;
  uint64_t reports;
  /* By brw_outcome_t; the last: another outcome (never, today). */
  uint64_t reports_by[BRW_OUTCOME__COUNT + 1];
  uint64_t progress;
  uint64_t dlq;
  uint64_t acked;
  uint64_t commits;
} app_stats_t;

struct brw_app_s {
  uv_loop_t *loop;
  const brw_config_t *cfg;
  brw_http_t *http;
  brw_api_t *api;
  brw_kafka_t *kafka;
  brw_metrics_t *m;
  brw_health_t *health; /* why progress stops (logged, /readyz, metric) */
  brw_admin_t *admin;
  /* Log limits: one per DLQ reason (the last slot takes any other), one for
   * refused records, one for given-up records. */
  brw_log_limit_t dlq_log[BRW_DLQ__COUNT + 1];
  brw_log_limit_t refused_log;
  brw_log_limit_t fetch_fail_log;
  brw_log_limit_t drop_log;
  size_t refused_open; /* completions refused at least once, not yet done */
  uint64_t last_refused_ms; /* uv_now() of the last refusal */
  uint64_t suppressed_seen; /* brw_log_suppressed_total() at the last tick */
  brw_tracker_t table;
  brw_tracker_t recent;
  brw_list_t recent_fifo;
  brw_partitions_t parts; /* the input partitions held, their commits */
  brw_list_t completions;
  size_t tracked;
  brw_rng_t rng;
  brw_timers_t timers; /* the campaigns' timers, on one uv timer */
  brw_campaign_opts_t life; /* the lifecycle's settings (campaign.h) */
  brw_pack_t *pack;         /* packs the campaigns' last details */
  uv_timer_t commit_timer;
  uv_timer_t flush_timer;
  uv_timer_t health_timer; /* the health tick */
  uint64_t tick_due_ms;    /* uv_hrtime() ms at which the tick is due */
  unsigned ticks_on_time;  /* ticks in a row without lag */
  uint64_t lag_ms[LOOP_LAG_WINDOW]; /* the last ticks' lags, a ring */
  uv_check_t loop_check;   /* measures each loop iteration's busy time */
  uint64_t busy_t, busy_idle; /* uv_hrtime() and idle time, last check */
  uint64_t busy_max_ns;    /* the longest iteration since the last tick */
  unsigned lag_next;
  uint64_t started_ms; /* uv_now() at brw_app_start */
  uint64_t unjoined_ms; /* since when not joined: the start, or a lost
                           assignment */
  int joined;          /* an assignment arrived (maybe empty) and was not
                          lost since */
  /* The revocation under way (one at a time: the kafka module waits for
   * brw_kafka_revoke_done before it hands over the next rebalance event). */
  struct {
    int active;
    int committing; /* 0: waiting for the records under way; 1: for the
                       commit */
    uint64_t began;    /* uv_now() */
    uint64_t deadline; /* uv_now() time the current phase ends */
  } revoke;
  uv_timer_t revoke_timer; /* deadlines, and kicks from callbacks */
  hold_t hold_backlog; /* records wait for the producer queue */
  hold_t hold_max;     /* paused at max.tracked */
  /* Status sweeps (src/app_sweep.c): one per account; NULL with
   * poll.strategy=detail. */
  app_sweeper_t *sweepers;
  /* Exactly once (src/app_txn.c); txn NULL: at least once. */
  brw_txn_t *txn;
  uv_timer_t txn_timer;
  brw_kafka_positions_t txn_offsets; /* what the commit under way sends */
  int txn_offsets_live;              /* ... until its result settles it */
  uint64_t txn_seq;                  /* the open transaction's number */
  completion_t *txn_producing;       /* inside its brw_kafka_produce */
  brw_txn_input_t *txn_pending;      /* inputs that came while a step
                                        was carried out */
  size_t txn_npending, txn_cappending;
  int txn_busy;    /* a step is being carried out */
  int txn_stopped; /* STOP was sent */
  int txn_closed;  /* ... and the cycle closed */
  uint64_t txn_ok_ms;  /* uv_now() of the last call that went well (or the
                          start) */
  uint64_t txn_commit_ms; /* ... of the last commit that went well */
  uint64_t txn_waiting_ms; /* since when records wait (0: none wait) */
  char txn_error[192]; /* the last call's error, "" when none */
  brw_log_limit_t txn_log;
  uv_signal_t sigterm;
  uv_signal_t sigint;
  int started;
  int stopping;
  int exit_code;
  uint64_t stop_started; /* uv_now() when the shutdown began */
  int flushed;           /* the producer flush step is over */
  int stage;             /* 0, 1 clients closing, 2 handles closing, 3 done */
  int closes_pending;    /* uv handles (and clients) still closing */
  app_stats_t st;
  char instance[128];
  char ce_source[BRW_CE_SOURCE_MAX]; /* output.cloudevents: ce_source */
};

/* Goes on with the shutdown's flush step at once (src/app.c). */
void brw__app_shutdown_kick(brw_app_t *app);

/* Producing (src/app_output.c). */
completion_t *brw__app_completion_new(brw_app_t *app, brw_part_t *pt, int kind,
                                      const int64_t *offsets, int n);
completion_t *brw__app_campaign_completion(campaign_t *c, int kind,
                                           int with_offsets);
int brw__app_recent_has(brw_app_t *app, int32_t partition, int32_t account,
                        uint64_t id);
void brw__app_on_delivered(void *ctx, void *opaque);
int brw__app_log_allowed(brw_app_t *app, brw_log_limit_t *l, uint64_t interval,
                         uint64_t *held);
void brw__app_dlq_send(brw_app_t *app, int32_t partition, const void *key,
                       size_t key_len, size_t key_max, const void *value,
                       size_t value_len, int64_t source_offset,
                       uint64_t campaign_id, const char *traceparent,
                       const char *reason, const char *message,
                       completion_t *comp);
void brw__app_on_refused(void *ctx, const brw_kafka_record_t *rec, int err,
                         const char *reason);
void brw__app_report_send(brw_app_t *app, campaign_t *c, int final,
                          const char *outcome);

void brw__app_completion_free(brw_app_t *app, completion_t *c);
void brw__app_completion_settle(brw_app_t *app, completion_t *c,
                                int mark_offsets);

/* Exactly once (src/app_txn.c). */
int brw__app_txn_start(brw_app_t *app);
void brw__app_txn_put(brw_app_t *app, completion_t *c, const void *key,
                      size_t key_len, const void *value, size_t value_len,
                      brw_headers_t *hdrs);
void brw__app_txn_empty(brw_app_t *app, completion_t *c);
void brw__app_txn_revoke(brw_app_t *app, int lost);
void brw__app_txn_stop(brw_app_t *app);
void brw__app_on_txn_done(void *ctx, brw_txn_call_t call,
                          brw_txn_result_t result, const char *reason,
                          const brw_kafka_positions_t *committed);
void brw__app_on_delivery_failed(void *ctx, void *opaque, int err,
                                 const char *reason);
void brw__app_txn_free(brw_app_t *app);

/* Health and backpressure (src/app_health.c). */
void brw__app_on_connection(void *ctx, int up);
void brw__app_update_backpressure(brw_app_t *app);
uint64_t brw__app_hr_ms(void);
void brw__app_on_loop_check(uv_check_t *h);
void brw__app_on_health_timer(uv_timer_t *t);
int brw__app_on_live(void *ctx, char *why, size_t len);
void brw__app_on_ready(void *ctx, brw_admin_readiness_t *out);

/* Commits and rebalances (src/app_rebalance.c). */
void brw__app_commit_now(brw_app_t *app, int only_revoking, int async);
void brw__app_on_commit_done(void *ctx, int err,
                             const brw_kafka_positions_t *offsets);
void brw__app_on_commit_timer(uv_timer_t *t);
void brw__app_on_assign(void *ctx, const brw_kafka_positions_t *parts);
void brw__app_revoke_finish(brw_app_t *app);
void brw__app_revoke_kick(brw_app_t *app);
void brw__app_on_revoke(void *ctx, const brw_kafka_positions_t *parts, int lost,
                        int now);

/* Status sweeps (src/app_sweep.c). */
int brw__app_sweep_init(brw_app_t *app);
void brw__app_sweep_stop(brw_app_t *app);
void brw__app_sweep_free(brw_app_t *app);
void brw__app_sweep_tracked(brw_app_t *app, int account, int delta);
int brw__app_sweeping(brw_app_t *app, int account);
void brw__app_sweep_request(brw_app_t *app, int account);
int brw__app_sweep_round(brw_app_t *app, int account);
uint64_t brw__app_sweep_wait(brw_app_t *app, int account);

/* The fields of log lines about input records and campaigns
 * (src/app_campaign.c; the names: BRW_LF_* in brw/log.h). */
json_t *brw__app_input_fields(const brw_app_t *app, int32_t partition,
                              int64_t offset, const char *traceparent,
                              json_t *more);
json_t *brw__app_campaign_fields(const campaign_t *c, json_t *more);

/* Campaigns and intake (src/app_campaign.c). */
void brw__app_campaign_listed(campaign_t *c, const brw_campaign_list_item_t *it);
void brw__app_campaign_swept(campaign_t *c, int round, int failed);
void brw__app_campaign_drop(campaign_t *c);
void brw__app_campaign_revoke(campaign_t *c);
void brw__app_on_message(void *ctx, const brw_kafka_message_t *msg);

#endif
