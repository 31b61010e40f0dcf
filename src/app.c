#include "brw/app.h"
#include "brw/admin.h"
#include "brw/api.h"
#include "brw/backoff.h"
#include "brw/bsg.h"
#include "brw/error.h"
#include "brw/health.h"
#include "brw/event.h"
#include "brw/http.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/offsets.h"
#include "brw/partitions.h"
#include "brw/record.h"
#include "brw/report.h"
#include "brw/schedule.h"
#include "brw/timers.h"
#include "brw/timeutil.h"
#include "brw/tracker.h"
#include "brw/versions.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* How long a revocation waits for the reports under way of the partitions
 * that leave, then for its commit (on the loop, through callbacks; the
 * rebalance waits meanwhile). */
#define REVOKE_DRAIN_MS 5000
#define REVOKE_COMMIT_MS 5000
/* Shutdown polls the producer this often while it flushes. */
#define FLUSH_POLL_MS 20
/* The first fetch after a deadline-capped timer fires this late at most, so
 * that a fetch in flight at the deadline has its answer first. */
#define TRACEPARENT_MAX 128
/* A merged event's offset waits for its campaign's outcome in the
 * campaign's array up to this many; further ones complete at once (see
 * on_message), so that a flood of duplicates costs no memory. */
#define MERGED_OFFSETS_MAX 64
/* Repeated lines about DLQ records (per reason) and refused records are
 * written at most once per interval, saying how many were held back. A
 * given-up record is an ERROR, at most one line a second. */
#define DLQ_LOG_INTERVAL_MS 10000
/* At most one line a minute about failing fetches (each is at DEBUG). */
#define FETCH_FAIL_LOG_INTERVAL_MS 60000
#define DROP_LOG_INTERVAL_MS 1000
/* error.message is a header: a long API error text is cut to this. */
#define DLQ_MESSAGE_MAX 512
/* After a refusal a record is built again within a quarter of the previous
 * limit, REFUSAL_SHRINKS times; then a DLQ record goes bare (headers and a
 * short key), and refused bare it is given up (on_refused). */
#define REFUSAL_SHRINKS 3
#define LEVEL_BARE (REFUSAL_SHRINKS + 1)
/* The health tick: how often the reasons are evaluated (and the event loop
 * lag is measured). */
#define HEALTH_TICK_MS 1000
/* The loop is late (event_loop_lag raised, a warning) when the tick fires
 * this much after it was due, or one loop iteration ran this long without
 * waiting for I/O; the reason clears after this many ticks on time in a
 * row, so that one burst of stalls does not log twice. */
#define LOOP_LAG_RAISE_MS 1000
#define LOOP_LAG_CLEAR_TICKS 30
/* event_loop_lag_seconds is the largest lag of this many last ticks, so that
 * a stall between two scrapes (every 15-30 s) is still seen. A tick's lag
 * is the larger of how late it fired and the longest iteration since the
 * last tick (see on_loop_check). */
#define LOOP_LAG_WINDOW 15
/* /healthz answers 503 when the tick is overdue by this much: the loop runs
 * (it serves the request) but timers do not. Above every bounded blocking
 * wait of the loop (10 s for the committed offsets at an assignment). */
#define LOOP_STARVED_MS 30000
/* group_not_joined is raised (and logged) once the group has not assigned
 * partitions this long after the start; /readyz says "assigned": false from
 * the start until the first assignment. A normal start joins within a few
 * seconds; a rejoin after a restart may wait for session.timeout.ms. */
#define JOIN_GRACE_MS 60000
/* Backpressure is normal at capacity: intake pauses and resumes, maybe
 * every second. producer_backlog and max_tracked are raised once the pause
 * reason has held this long without a break, and cleared once it has been
 * gone this long, so a worker at capacity logs them once, not per cycle. */
#define BACKPRESSURE_HOLD_MS 10000
/* record_refused clears once no refused record is left and none was refused
 * for this long, so that records refused one after another (every progress
 * report to a topic that takes none, say) raise it once, not once each. */
#define REFUSED_CLEAR_MS 10000

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
  /* Final reports: the campaign's first event (owned, key bytes first), so
   * that a report the broker refuses can go to the DLQ as too_large. */
  char *ev;
  uint32_t ev_key_len;
  uint32_t ev_value_len;
  char outcome[32]; /* report outcome or DLQ reason */
  uint64_t t_final; /* uv_hrtime() when the outcome was decided */
  int n;
  int64_t offsets[];
} completion_t;

/* What the last successful fetch of a campaign saw: the summary that
 * scheduling needs, and the body itself, from which the report's object is
 * built only when a report is sent (brw_detail_parse). */
typedef struct {
  int64_t total;   /* total_messages, -1 when unknown */
  int64_t pending; /* unresolved messages, -1 before a detail */
  int64_t scheduled_start_ms;
  int64_t actual_start_ms;
  uint64_t stats_hash;
  char *body; /* owned, body_len bytes, NULL before the first detail */
  uint32_t body_len;
  uint8_t status; /* brw_status_t */
} seen_t;

/* One tracked campaign. Kept small: a worker may track a million of them
 * (docs/PERFORMANCE.md counts the bytes). */
typedef struct campaign_s {
  brw_tracker_node_t key; /* first: the table's node */
  brw_list_t pnode;       /* in part->campaigns */
  brw_app_t *app;
  brw_part_t *part;
  brw_timer_t timer; /* in app->timers */
  brw_fetch_t *fetch;
  /* Input offsets waiting for this campaign's outcome: the first event's,
   * and those of merged events (an array only once there are any). */
  int64_t first_offset;
  int64_t *more_offsets;
  int32_t nmore, capmore;
  int64_t first_event_ms; /* wall clock: the report's first_event_at */
  /* Monotonic times (uv_now ms, the timers' clock), so that a step of the
   * wall clock neither moves a deadline nor stretches a grace period
   * (brw_deadline_at in schedule.h). */
  uint64_t deadline;        /* poll.max_age after the first event */
  uint64_t not_found_since; /* the first 404 of a run of them, 0: none */
  uint64_t last_fetch_mono; /* the last successful fetch, 0 before it */
  int64_t last_fetch_ms;    /* the same on the wall clock, for the API's
                               times in the adaptive schedule */
  int32_t events;
  int32_t polls;
  unsigned poll_attempt;
  unsigned err_attempt;
  const char *last_error_class; /* static */
  char *last_error;             /* owned, set by a failed fetch */
  char *traceparent;
  /* The first event's key and value, for a campaign-level DLQ record: one
   * allocation, the key's bytes first. */
  char *ev;
  uint32_t ev_key_len;
  uint32_t ev_value_len;
  seen_t seen;
} campaign_t;

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
  brw_log_limit_t dlq_log[10];
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
  brw_schedule_opts_t sched;
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
};

static void campaign_schedule(campaign_t *c, uint64_t delay_ms);
static void campaign_drop(campaign_t *c);
static void update_backpressure(brw_app_t *app);
static void finish_shutdown(brw_app_t *app);
static void revoke_kick(brw_app_t *app);

/* ------------------------------------------------------------------------ */
/* Partitions and offsets                                                   */

/* Commits every held partition (only the revoking ones, when
 * `only_revoking`) whose position or completed-offset map changed since it
 * was last sent (brw_partitions_commit_list). */
static void commit_now(brw_app_t *app, int only_revoking, int async) {
  brw_kafka_positions_t l = {0};
  if (brw_partitions_commit_list(&app->parts, only_revoking, &l) == 0) {
    brw_kafka_positions_clear(&l);
    return;
  }
  app->st.commits++;
  if (brw_kafka_commit(app->kafka, &l, async) != 0)
    brw_partitions_commit_failed(&app->parts, &l); /* again at the next tick */
  brw_kafka_positions_clear(&l);
}

/* An asynchronous commit completed. A failed partition is sent again at
 * the next tick; so is one whose confirmed position is not the last one sent
 * (an older commit that librdkafka retried may complete after a newer one and
 * overwrite it: re-sending the newest puts it back). */
static void on_commit_done(void *ctx, int err,
                           const brw_kafka_positions_t *offsets) {
  brw_app_t *app = ctx;
  brw_partitions_commit_done(&app->parts, err, offsets);
  if (app->revoke.active)
    revoke_kick(app);
}

/* One asynchronous commit at a time: a newer commit never races an older
 * one that librdkafka is still retrying. */
static void on_commit_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  if (brw_kafka_commits_in_flight(app->kafka) == 0)
    commit_now(app, 0, 1);
}

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
  c->n = n;
  if (pt && n > 0)
    brw_part_inflight_add(pt);
  brw_list_init(&c->node);
  brw_list_insert_tail(&app->completions, &c->node);
  return c;
}

static completion_t *completion_new(brw_app_t *app, brw_part_t *pt, int kind,
                                    const int64_t *offsets, int n) {
  completion_t *c = completion_alloc(app, pt, kind, n);
  if (c && n)
    memcpy(c->offsets, offsets, sizeof(int64_t) * (size_t)n);
  return c;
}

/* A completion carrying a campaign's offsets (`with_offsets`) or none. */
static completion_t *campaign_completion(campaign_t *c, int kind,
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
 * tick clears record_refused (after REFUSED_CLEAR_MS without a refusal). */
static void completion_free(brw_app_t *app, completion_t *c) {
  if (c->refused)
    app->refused_open--;
  if (c->n > 0 &&
      brw_partitions_inflight_done(&app->parts, c->partition, c->generation))
    revoke_kick(app);
  brw_list_remove(&c->node);
  free(c->ev);
  free(c);
}

/* Hands a record to the producer; `comp` comes back through on_delivered
 * or on_refused (which may run before this returns). */
static void produce(brw_app_t *app, const char *topic, const void *key,
                    size_t key_len, const void *value, size_t value_len,
                    brw_headers_t *hdrs, completion_t *comp) {
  brw_kafka_record_t rec = {topic,    key,  key_len, value,
                            value_len, hdrs, comp};
  int r = brw_kafka_produce(app->kafka, &rec);
  if (r != 0) {
    /* Only after a fatal error (shutdown follows) or out of memory: the
     * offsets stay pending and are replayed by the next run. */
    completion_free(app, comp);
  }
  update_backpressure(app);
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

static int recent_has(brw_app_t *app, int32_t partition, int32_t account,
                      uint64_t id) {
  recent_expire(app);
  return brw_tracker_find(&app->recent, partition, account, id) != NULL;
}

static void on_delivered(void *ctx, void *opaque) {
  brw_app_t *app = ctx;
  completion_t *c = opaque;
  if (c->kind == 0) {
    recent_add(app, c->partition, c->account, c->campaign_id);
    brw_metrics_inc(app->m, BRW_M_REPORTS_PUBLISHED, c->outcome, 1);
    brw_metrics_observe(app->m, BRW_M_REPORT_DELAY, NULL,
                        (double)(uv_hrtime() - c->t_final) / 1e9);
  } else if (c->kind == 1) {
    brw_metrics_inc(app->m, BRW_M_DLQ_RECORDS, c->outcome, 1);
  } else {
    brw_metrics_inc(app->m, BRW_M_PROGRESS_REPORTS, NULL, 1);
  }
  for (int i = 0; i < c->n; i++)
    brw_partitions_done(&app->parts, c->partition, c->generation,
                        c->offsets[i]);
  app->st.acked++;
  completion_free(app, c);
  update_backpressure(app);
}

/* The DLQ reasons with a log limit of their own; anything else shares the
 * last slot of app->dlq_log. */
static const char *const dlq_log_reasons[] = {
    BRW_REASON_INVALID_JSON,   BRW_REASON_INVALID_ID,
    BRW_REASON_UNKNOWN_TYPE,   BRW_REASON_UNKNOWN_ACCOUNT,
    BRW_REASON_TOO_LARGE,      BRW_REASON_INVALID_EVENT,
    BRW_REASON_NOT_FOUND,      BRW_REASON_AUTH_FAILED,
    BRW_REASON_BAD_RESPONSE};
#define NDLQ_LOG_REASONS (sizeof(dlq_log_reasons) / sizeof(dlq_log_reasons[0]))
_Static_assert(NDLQ_LOG_REASONS + 1 <=
                   sizeof(((brw_app_t *)0)->dlq_log) /
                       sizeof(((brw_app_t *)0)->dlq_log[0]),
               "app->dlq_log needs a slot per reason and one for the rest");

static brw_log_limit_t *dlq_log_limit(brw_app_t *app, const char *reason) {
  for (size_t i = 0; i < NDLQ_LOG_REASONS; i++)
    if (!strcmp(reason, dlq_log_reasons[i]))
      return &app->dlq_log[i];
  return &app->dlq_log[NDLQ_LOG_REASONS];
}

/* 1 when a line under limit `l` may be written now, with *held set to the
 * lines held back since the last one (counted by brw_log_limit). */
static int log_allowed(brw_app_t *app, brw_log_limit_t *l, uint64_t interval,
                       uint64_t *held) {
  return brw_log_limit(l, uv_now(app->loop), interval, held);
}

static const char *kind_name(int kind) {
  return kind == 0 ? "report" : kind == 2 ? "progress" : "dlq";
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
  if (log_allowed(app, &app->drop_log, DROP_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_ERROR,
             json_pack("{ss ss si sI si ss sI}", "dlq_topic",
                       app->cfg->topic_dlq, "source_topic",
                       app->cfg->topic_input, "partition", c->partition,
                       "offset",
                       (json_int_t)(c->n ? c->offsets[0] : -1), "offsets",
                       c->n, "reason", c->outcome, "suppressed",
                       (json_int_t)held),
             "DLQ record given up, its event is completed without one: %s; "
             "read the event from the input topic at this offset",
             why);
  for (int i = 0; i < c->n; i++)
    brw_partitions_done(&app->parts, c->partition, c->generation,
                        c->offsets[i]);
  completion_free(app, c);
  update_backpressure(app);
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
    completion_free(app, comp);
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

/* The headers every DLQ record carries (SPEC §4). New; the caller owns
 * them; NULL when out of memory. The message is cut to DLQ_MESSAGE_MAX
 * bytes. */
static brw_headers_t *dlq_headers(brw_app_t *app, int32_t partition,
                                  int64_t source_offset, const char *reason,
                                  const char *message) {
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
  return h;
}

/* Sends the original bytes of an event to the DLQ with the reason headers
 * (SPEC §4), shortened only when the record would not fit (dlq_produce;
 * `key_max` bounds the key on its own, SIZE_MAX for none). The offsets of
 * `comp` (a completion, made kind 1 here, or NULL when it could not be
 * allocated: nothing is sent, the offsets stay pending) complete when the
 * broker acknowledges it. The WARN line is rate-limited per reason (the
 * metrics count every record). */
static void dlq_send(brw_app_t *app, int32_t partition, const void *key,
                     size_t key_len, size_t key_max, const void *value,
                     size_t value_len, int64_t source_offset,
                     const char *reason, const char *message,
                     completion_t *comp) {
  if (!comp)
    return;
  comp->kind = 1;
  snprintf(comp->outcome, sizeof(comp->outcome), "%s", reason);
  app->st.dlq++;
  uint64_t held = 0;
  if (log_allowed(app, dlq_log_limit(app, reason), DLQ_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_WARN,
             json_pack("{ss si sI ss sI}", "reason", reason, "partition",
                       partition, "offset", (json_int_t)source_offset,
                       "error", message, "suppressed", (json_int_t)held),
             "event sent to the DLQ");
  dlq_produce(app, comp, key, key_len, key_max, value, value_len,
              dlq_headers(app, partition, source_offset, reason, message),
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
static void on_refused(void *ctx, const brw_kafka_record_t *rec, int err,
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
  if (log_allowed(app, &app->refused_log, DLQ_LOG_INTERVAL_MS, &held))
    brw_logj(
        BRW_LOG_WARN,
        json_pack("{ss ss ss si sI sI sI si sI}", "topic", rec->topic, "kind",
                  kind_name(c->kind), "error", brw_kafka_err_name(err),
                  "partition", c->partition, "offset", (json_int_t)src,
                  "key_bytes", (json_int_t)rec->key_len, "value_bytes",
                  (json_int_t)rec->value_len, "refusals", c->level + 1,
                  "suppressed", (json_int_t)held),
        "record refused for good, not produced again as it is: %s", reason);
  if (c->kind == 2) {
    completion_free(app, c);
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
                dlq_headers(app, c->partition, src, BRW_REASON_TOO_LARGE,
                            msg),
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
static void report_send(brw_app_t *app, campaign_t *c, int final,
                        const char *outcome) {
  brw_report_input_t in = {0};
  in.campaign_id = c->key.id;
  in.account = app->cfg->accounts[c->key.account].name;
  in.final = final;
  in.outcome = outcome;
  brw_detail_t full;
  char perr[128];
  in.detail = NULL;
  if (c->seen.body) {
    /* The body passed brw_detail_summary, so this fails only for memory. */
    if (brw_detail_parse(c->seen.body, c->seen.body_len,
                         app->cfg->api_tz, &full, perr,
                         sizeof(perr)) == 0)
      in.detail = &full;
    else
      brw_log_error("cannot rebuild the last detail of campaign %" PRIu64
                    ": %s",
                    c->key.id, perr);
  }
  in.events = c->events;
  in.polls = c->polls;
  in.first_event_ms = c->first_event_ms;
  in.reported_ms = brw_now_ms();
  in.source_topic = app->cfg->topic_input;
  in.source_partition = c->part->partition;
  in.source_offset = c->first_offset;
  in.worker_version = BRW_VERSION;
  in.worker_instance = app->instance;
  in.traceparent = c->traceparent;
  size_t len = 0;
  char *json = brw_report_build(&in, &len);
  if (in.detail)
    brw_detail_clear(&full);
  if (!json) {
    brw_log_error("out of memory building a report");
    return;
  }
  brw_headers_t *h = brw_headers_new();
  if (!h || brw_headers_add_str(h, "content-type", "application/json") ||
      (c->traceparent &&
       brw_headers_add_str(h, "traceparent", c->traceparent))) {
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
      if (log_allowed(app, &app->refused_log, DLQ_LOG_INTERVAL_MS, &held))
        brw_logj(BRW_LOG_WARN,
                 json_pack("{sI sI}", "campaign_id", (json_int_t)c->key.id,
                           "suppressed", (json_int_t)held),
                 "%s; skipped", msg);
      return;
    }
    dlq_send(app, c->part->partition, c->ev, c->ev_key_len, SIZE_MAX,
             c->ev ? c->ev + c->ev_key_len : NULL, c->ev_value_len,
             c->first_offset, BRW_REASON_TOO_LARGE, msg,
             campaign_completion(c, 1, 1));
    return;
  }
  completion_t *comp = campaign_completion(c, final ? 0 : 2, final);
  if (!comp) {
    brw_headers_free(h);
    free(json);
    return;
  }
  snprintf(comp->outcome, sizeof(comp->outcome), "%s", outcome);
  comp->campaign_id = c->key.id;
  comp->account = c->key.account;
  if (final) {
    /* The campaign is dropped after this: its first event moves to the
     * completion, for the DLQ should the broker refuse the report. */
    comp->ev = c->ev;
    comp->ev_key_len = c->ev_key_len;
    comp->ev_value_len = c->ev_value_len;
    c->ev = NULL;
  }
  if (final) {
    app->st.reports++;
    app->st.reports_by[outcome_index(outcome)]++;
    brw_metrics_observe(app->m, BRW_M_POLLS_PER_CAMPAIGN, NULL, c->polls);
    brw_logj(BRW_LOG_INFO,
             json_pack("{sI ss ss si si}", "campaign_id",
                       (json_int_t)c->key.id, "account", in.account,
                       "outcome", outcome, "polls", c->polls, "partition",
                       c->part->partition),
             "campaign reported");
  } else {
    app->st.progress++;
  }
  produce(app, app->cfg->topic_output, key, (size_t)klen, json, len, h, comp);
  free(json);
}

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
static void campaign_drop(campaign_t *c) {
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
  update_backpressure(app);
}

static void campaign_finalize(campaign_t *c, const char *outcome) {
  report_send(c->app, c, 1, outcome);
  campaign_drop(c);
}

static void campaign_dlq(campaign_t *c, const char *reason,
                         const char *message) {
  brw_app_t *app = c->app;
  dlq_send(app, c->part->partition, c->ev, c->ev_key_len, SIZE_MAX,
           c->ev ? c->ev + c->ev_key_len : NULL, c->ev_value_len,
           c->first_offset, reason, message, campaign_completion(c, 1, 1));
  campaign_drop(c);
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
    campaign_drop(c);
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
             log_allowed(app, &app->fetch_fail_log,
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
    report_send(app, c, 0, brw_status_name(st));
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

static void on_message(void *ctx, const brw_kafka_message_t *msg) {
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
    dlq_send(app, pt->partition, msg->key, msg->key_len,
             (size_t)cfg->event_max_key_size, msg->value, msg->value_len, off,
             BRW_REASON_TOO_LARGE, err, completion_new(app, pt, 1, &off, 1));
    return;
  }
  if (brw_event_parse(msg->value, msg->value_len, cfg->event_max_size, &ev,
                      &reason, err, sizeof(err)) != 0) {
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, reason, 1);
    dlq_send(app, pt->partition, msg->key, msg->key_len, SIZE_MAX, msg->value,
             msg->value_len, off, reason, err,
             completion_new(app, pt, 1, &off, 1));
    return;
  }
  int account = brw_config_account_index(cfg, ev.account);
  if (account < 0) {
    app->st.invalid++;
    brw_metrics_inc(app->m, BRW_M_EVENTS_INVALID, BRW_REASON_UNKNOWN_ACCOUNT, 1);
    snprintf(err, sizeof(err), "unknown account \"%.64s\"", ev.account);
    dlq_send(app, pt->partition, msg->key, msg->key_len, SIZE_MAX, msg->value,
             msg->value_len, off, BRW_REASON_UNKNOWN_ACCOUNT, err,
             completion_new(app, pt, 1, &off, 1));
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

  if (recent_has(app, pt->partition, account, ev.campaign_id)) {
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
  update_backpressure(app);
}

/* Assignment: the partitions module starts the new partitions afresh,
 * with the completed-offset maps read with their committed offsets
 * (brw_partitions_assign); partitions already held keep their campaigns,
 * timers and fetches. */
static void on_assign(void *ctx, const brw_kafka_positions_t *parts) {
  brw_app_t *app = ctx;
  brw_partitions_assign(&app->parts, parts);
  brw_metrics_set(app->m, BRW_M_PARTITIONS_ASSIGNED, NULL, app->parts.assigned);
  brw_metrics_inc(app->m, BRW_M_PARTITIONS_MOVED, "assigned", parts->cnt);
  /* Joined, with or without partitions: a member of a group with more
   * members than partitions gets none, and is ready. */
  app->joined = 1;
  brw_health_clear(app->health, BRW_BLOCK_GROUP_NOT_JOINED, uv_now(app->loop));
  update_backpressure(app);
}

static void forget_partition(brw_app_t *app, brw_part_t *pt) {
  while (!brw_list_empty(&pt->campaigns)) {
    campaign_t *c = brw_list_entry(pt->campaigns.next, campaign_t, pnode);
    campaign_drop(c);
  }
  brw_partitions_forget(&app->parts, pt);
  brw_metrics_set(app->m, BRW_M_PARTITIONS_ASSIGNED, NULL, app->parts.assigned);
}

/* Revocation (SPEC §6): the partitions that leave hand over what they
 * completed, without blocking the loop.
 * 1. At once: they take no more events (on_message skips them; the kafka
 *    module paused them) and their campaigns are dropped, fetches and
 *    timers cancelled; their events stay uncommitted, so the next owner
 *    tracks them. Every other partition's campaigns go on untouched.
 * 2. The records under way that complete their offsets are waited for,
 *    through delivery callbacks, up to REVOKE_DRAIN_MS, and so is an
 *    asynchronous commit under way (it must not land after ours).
 * 3. Their positions and completed-offset maps are committed
 *    asynchronously; the answer is waited for up to REVOKE_COMMIT_MS.
 * 4. They are forgotten and brw_kafka_revoke_done lets the rebalance go on.
 * A lost assignment (another member may own the partitions already) skips
 * 2 and 3; inside the consumer's close (now = 1) 3 is a synchronous commit
 * (shutdown flushed the producer before). A record acknowledged after its
 * partition left is replayed by the next owner: at least once. */
static void revoke_finish(brw_app_t *app) {
  int moved = 0;
  for (int32_t p = 0; p < app->parts.nparts; p++) {
    brw_part_t *pt = brw_partitions_get(&app->parts, p);
    if (pt && pt->assigned && pt->revoking) {
      forget_partition(app, pt);
      moved++;
    }
  }
  if (app->revoke.active) {
    uint64_t took = uv_now(app->loop) - app->revoke.began;
    brw_logj(BRW_LOG_INFO,
             json_pack("{si sI}", "partitions", moved, "ms", (json_int_t)took),
             "partitions handed over");
    brw_metrics_observe(app->m, BRW_M_REVOKE_SECONDS, NULL,
                        (double)took / 1000.0);
  }
  app->revoke.active = 0;
  uv_timer_stop(&app->revoke_timer);
  if (app->kafka)
    brw_kafka_revoke_done(app->kafka);
}

static void on_revoke_timer(uv_timer_t *t);

/* Goes on with the revocation on the next loop iteration (not from inside
 * the callback that calls this: a delivery report or a commit result). */
static void revoke_kick(brw_app_t *app) {
  if (app->revoke.active)
    uv_timer_start(&app->revoke_timer, on_revoke_timer, 0, 0);
}

static void revoke_step(brw_app_t *app) {
  if (!app->revoke.active)
    return;
  uint64_t now = uv_now(app->loop);
  int late = now >= app->revoke.deadline;
  if (!app->revoke.committing) {
    size_t left = brw_partitions_revoking_inflight(&app->parts);
    if ((left || brw_kafka_commits_in_flight(app->kafka)) && !late) {
      uv_timer_start(&app->revoke_timer, on_revoke_timer,
                     app->revoke.deadline - now, 0);
      return;
    }
    if (left)
      brw_logj(BRW_LOG_WARN, json_pack("{sI}", "records", (json_int_t)left),
               "revoke: records not acknowledged in %d ms; their events "
               "will be reported again by the next owner",
               REVOKE_DRAIN_MS);
    app->revoke.committing = 1;
    app->revoke.deadline = now + REVOKE_COMMIT_MS;
    commit_now(app, 1, 1);
    late = 0;
  }
  if (brw_kafka_commits_in_flight(app->kafka) && !late) {
    uv_timer_start(&app->revoke_timer, on_revoke_timer,
                   app->revoke.deadline - now, 0);
    return;
  }
  revoke_finish(app);
}

static void on_revoke_timer(uv_timer_t *t) {
  revoke_step(t->data);
}

static void on_revoke(void *ctx, const brw_kafka_positions_t *parts, int lost,
                      int now) {
  brw_app_t *app = ctx;
  int n = 0;
  for (int i = 0; i < parts->cnt; i++) {
    brw_part_t *pt =
        brw_partitions_revoke(&app->parts, parts->elems[i].partition);
    if (!pt)
      continue;
    n++;
    while (!brw_list_empty(&pt->campaigns))
      campaign_drop(brw_list_entry(pt->campaigns.next, campaign_t, pnode));
  }
  brw_metrics_inc(app->m, BRW_M_PARTITIONS_MOVED, lost ? "lost" : "revoked",
                  n);
  app->revoke.active = 1;
  app->revoke.committing = 0;
  app->revoke.began = uv_now(app->loop);
  app->revoke.deadline = app->revoke.began + REVOKE_DRAIN_MS;
  /* A lost assignment means the member left the group (session timeout,
   * fenced): not joined until the next assignment. An ordinary revoke is
   * part of a rebalance the member takes part in. */
  if (lost) {
    app->joined = 0;
    app->unjoined_ms = uv_now(app->loop);
    revoke_finish(app);
  } else if (now || !app->kafka || n == 0) {
    if (n)
      commit_now(app, 1, 0);
    revoke_finish(app);
  } else {
    revoke_step(app);
  }
}

static void on_fatal(void *ctx, const char *reason) {
  brw_app_t *app = ctx;
  brw_log_error("fatal Kafka error, shutting down: %s", reason);
  app->exit_code = 1;
  brw_app_stop(app);
}

/* Raises kafka_auth while the brokers refuse the clients' security
 * settings (the kafka module says why), else kafka_down while every broker
 * is down: one reason, so a wrong password is one ERROR line that says so,
 * not also "all brokers are down". */
static void kafka_health(brw_app_t *app, uint64_t now) {
  const char *auth = brw_kafka_auth_failure(app->kafka);
  if (auth)
    brw_health_raise(app->health, BRW_BLOCK_KAFKA_AUTH, now, "%s", auth);
  else
    brw_health_clear(app->health, BRW_BLOCK_KAFKA_AUTH, now);
  brw_health_set(app->health, BRW_BLOCK_KAFKA_DOWN,
                 !auth && !brw_kafka_connected(app->kafka), now,
                 "all brokers are down");
}

/* The broker connection changed. The health registry says it (once, then
 * every few minutes while it holds, and when it clears); the causes are in
 * the kafka module's rate-limited error lines, or in kafka_auth. */
static void on_connection(void *ctx, int up) {
  brw_app_t *app = ctx;
  if (app->kafka)
    kafka_health(app, uv_now(app->loop));
}

static void hold_update(hold_t *h, int cond, uint64_t now) {
  now = now ? now : 1;
  if (cond) {
    if (!h->on_since)
      h->on_since = now;
    h->off_since = 0;
  } else {
    if (!h->off_since)
      h->off_since = now;
    h->on_since = 0;
  }
}

/* Pauses intake at max.tracked campaigns or while produced records wait
 * for room, and resumes below 90 % with an empty backlog. How long each
 * reason for a pause has held is kept for the health tick, which makes it a
 * reason in the health registry once it lasts (hold_health). */
static void update_backpressure(brw_app_t *app) {
  if (!app->kafka || app->stopping)
    return;
  size_t max = (size_t)app->cfg->max_tracked;
  int paused = brw_kafka_paused(app->kafka);
  int backlog = brw_kafka_backlog(app->kafka) > 0;
  if (!paused && (app->tracked >= max || backlog))
    brw_kafka_pause(app->kafka, 1);
  else if (paused && !backlog && app->tracked < max - max / 10)
    brw_kafka_pause(app->kafka, 0);
  paused = brw_kafka_paused(app->kafka);
  brw_metrics_set(app->m, BRW_M_CONSUMPTION_PAUSED, NULL, paused);
  brw_metrics_set(app->m, BRW_M_PARTITIONS_PAUSED, NULL,
                  paused ? app->parts.assigned : 0);
  uint64_t now = uv_now(app->loop);
  hold_update(&app->hold_backlog, backlog, now);
  hold_update(&app->hold_max, paused && app->tracked >= max - max / 10, now);
}

/* Raises `b` once `h` has held BACKPRESSURE_HOLD_MS without a break (with
 * the detail), clears it once it has been gone as long. */
static void hold_health(brw_app_t *app, const hold_t *h, brw_block_t b,
                        uint64_t now, const char *detail) {
  if (h->on_since && now - h->on_since >= BACKPRESSURE_HOLD_MS)
    brw_health_set(app->health, b, 1, now, detail);
  else if (h->off_since && now - h->off_since >= BACKPRESSURE_HOLD_MS)
    brw_health_clear(app->health, b, now);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

/* Raises or clears the reasons that are states rather than events (SPEC §7
 * readiness): brokers down, a missing topic, the group not joined, an account
 * without a usable bearer. Runs from the health tick and before each
 * /readyz answer, so the answer is current. Details name topics and
 * accounts, never a key. */
static void health_eval(brw_app_t *app, uint64_t now) {
  brw_health_t *h = app->health;
  char detail[480];
  if (app->kafka) {
    kafka_health(app, now);
    const char *name = NULL;
    int err = BRW_KAFKA_ERR_NONE;
    if (brw_kafka_topic_state(app->kafka, BRW_KAFKA_INPUT, &name, &err) ==
        BRW_TOPIC_MISSING)
      brw_health_raise(h, BRW_BLOCK_TOPIC_MISSING, now,
                       "topic \"%s\" (topic.input): %s", name,
                       err == BRW_KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED
                           ? "not authorized"
                           : "does not exist");
    else
      brw_health_clear(h, BRW_BLOCK_TOPIC_MISSING, now);
    /* The output and DLQ topics do not make the worker not ready (SPEC §7
     * names the input topic only), but nothing can be reported without
     * them: their records wait in the producer. */
    size_t n = 0;
    detail[0] = '\0';
    for (int t = BRW_KAFKA_OUTPUT; t <= BRW_KAFKA_DLQ; t++) {
      if (brw_kafka_topic_state(app->kafka, (brw_kafka_topic_t)t, &name,
                                NULL) == BRW_TOPIC_MISSING &&
          n < sizeof(detail))
        n += (size_t)snprintf(detail + n, sizeof(detail) - n,
                              "%stopic \"%s\" (%s) does not exist",
                              n ? "; " : "", name,
                              t == BRW_KAFKA_OUTPUT ? "topic.output"
                                                    : "topic.dlq");
    }
    brw_health_set(h, BRW_BLOCK_OUTPUT_TOPIC_MISSING, n > 0, now, detail);
  }
  if (!app->joined && app->started &&
      now - app->unjoined_ms >= JOIN_GRACE_MS)
    brw_health_raise(h, BRW_BLOCK_GROUP_NOT_JOINED, now,
                     "group \"%s\" assigned no partitions in %" PRIu64
                     " s since %s",
                     app->cfg->group_id, (now - app->unjoined_ms) / 1000,
                     app->unjoined_ms == app->started_ms
                         ? "the start"
                         : "the assignment was lost");
  else if (app->joined)
    brw_health_clear(h, BRW_BLOCK_GROUP_NOT_JOINED, now);
  size_t n = 0;
  detail[0] = '\0';
  for (size_t i = 0; app->api && i < app->cfg->naccounts; i++) {
    const char *why = NULL;
    if (brw_api_account_usable(app->api, (int)i, &why) || n >= sizeof(detail))
      continue;
    n += (size_t)snprintf(detail + n, sizeof(detail) - n,
                          "%saccount \"%s\": %s", n ? "; " : "",
                          app->cfg->accounts[i].name,
                          why ? why : "no usable bearer");
  }
  if (app->api)
    brw_health_set(h, BRW_BLOCK_ACCOUNT_AUTH, n > 0, now, detail);
}

static uint64_t hr_ms(void) {
  return uv_hrtime() / 1000000;
}

/* After each poll phase: the time since the previous one, minus the time
 * the loop spent waiting in the kernel for I/O (libuv's idle-time metric),
 * is what the last iteration spent running callbacks without a break: the
 * stall every timer, socket and signal waited through. A stall shorter
 * than the health tick's period is seen here even when it does not make
 * the tick late. */
static void on_loop_check(uv_check_t *h) {
  brw_app_t *app = h->data;
  uint64_t t = uv_hrtime();
  uint64_t idle = uv_metrics_idle_time(app->loop);
  if (app->busy_t) {
    uint64_t span = t - app->busy_t, waited = idle - app->busy_idle;
    uint64_t busy = span > waited ? span - waited : 0;
    if (busy > app->busy_max_ns)
      app->busy_max_ns = busy;
  }
  app->busy_t = t;
  app->busy_idle = idle;
}

/* The health tick, every HEALTH_TICK_MS: measures how late it fired (the
 * event loop lag: the time the loop spent elsewhere past the due time; the
 * gauge shows the largest of the last LOOP_LAG_WINDOW ticks),
 * evaluates the reasons, and lets the registry repeat the ones that hold. */
static void on_health_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  uint64_t hr = hr_ms();
  uint64_t lag = hr > app->tick_due_ms ? hr - app->tick_due_ms : 0;
  uint64_t busy = app->busy_max_ns / 1000000;
  app->busy_max_ns = 0;
  int late = lag >= LOOP_LAG_RAISE_MS;
  lag = busy > lag ? busy : lag;
  uint64_t now = uv_now(app->loop);
  app->lag_ms[app->lag_next++ % LOOP_LAG_WINDOW] = lag;
  uint64_t worst = 0;
  for (int i = 0; i < LOOP_LAG_WINDOW; i++)
    worst = app->lag_ms[i] > worst ? app->lag_ms[i] : worst;
  brw_metrics_set(app->m, BRW_M_EVENT_LOOP_LAG, NULL, (double)worst / 1000.0);
  if (lag >= LOOP_LAG_RAISE_MS) {
    app->ticks_on_time = 0;
    if (late)
      brw_health_raise(app->health, BRW_BLOCK_LOOP_LAG, now,
                       "a 1 s timer fired %.1f s late", (double)lag / 1000.0);
    else
      brw_health_raise(app->health, BRW_BLOCK_LOOP_LAG, now,
                       "one loop iteration ran %.1f s without serving I/O",
                       (double)lag / 1000.0);
  } else if (++app->ticks_on_time >= LOOP_LAG_CLEAR_TICKS) {
    brw_health_clear(app->health, BRW_BLOCK_LOOP_LAG, now);
  }
  update_backpressure(app);
  health_eval(app, now);
  char detail[160];
  if (app->kafka) {
    snprintf(detail, sizeof(detail),
             "%zu records wait for room in the producer queue; intake paused",
             brw_kafka_backlog(app->kafka));
    hold_health(app, &app->hold_backlog, BRW_BLOCK_PRODUCER_BACKLOG, now,
                detail);
  }
  snprintf(detail, sizeof(detail),
           "%zu campaigns tracked, max.tracked %" PRIu64 "; intake paused",
           app->tracked, (uint64_t)app->cfg->max_tracked);
  hold_health(app, &app->hold_max, BRW_BLOCK_MAX_TRACKED, now, detail);
  if (app->refused_open == 0 && now - app->last_refused_ms >= REFUSED_CLEAR_MS)
    brw_health_clear(app->health, BRW_BLOCK_RECORD_REFUSED, now);
  brw_health_tick(app->health, now);
  /* Every limit's held-back lines (the API's and librdkafka's too). */
  uint64_t held = brw_log_suppressed_total();
  brw_metrics_inc(app->m, BRW_M_LOG_SUPPRESSED, NULL,
                  (double)(held - app->suppressed_seen));
  app->suppressed_seen = held;
  app->tick_due_ms = hr_ms() + HEALTH_TICK_MS;
  uv_timer_start(t, on_health_timer, HEALTH_TICK_MS, 0);
}

/* /healthz: the loop answers (or there would be no answer at all), and is
 * starved when the health tick is overdue by LOOP_STARVED_MS. */
static int on_live(void *ctx, char *why, size_t len) {
  brw_app_t *app = ctx;
  uint64_t hr = hr_ms();
  if (!app->started || hr <= app->tick_due_ms + LOOP_STARVED_MS)
    return 1;
  snprintf(why, len, "the event loop's timers run %.1f s late",
           (double)(hr - app->tick_due_ms) / 1000.0);
  return 0;
}

/* /readyz (SPEC §7): connected to Kafka, the input topic exists, the group
 * is joined (with or without partitions), every account holds a usable
 * bearer or is logging in successfully, and no other reason that makes the
 * worker not ready holds; never while stopping. The reasons that hold are
 * listed in "blocked". */
static void on_ready(void *ctx, brw_admin_readiness_t *out) {
  brw_app_t *app = ctx;
  uint64_t now = uv_now(app->loop);
  health_eval(app, now);
  out->kafka = app->kafka && brw_kafka_connected(app->kafka);
  out->topic = app->kafka && brw_kafka_topic_state(app->kafka, BRW_KAFKA_INPUT,
                                                   NULL, NULL) ==
                                 BRW_TOPIC_EXISTS;
  out->assigned = app->joined;
  out->accounts = !brw_health_raised(app->health, BRW_BLOCK_ACCOUNT_AUTH);
  out->stopping = app->stopping;
  /* The first moments: no metadata answer about the input topic yet, or no
   * assignment since the start (group_not_joined is raised after
   * JOIN_GRACE_MS). Not ready, with possibly no reason to name yet. */
  out->starting =
      !app->stopping &&
      (!app->started || !app->kafka ||
       brw_kafka_topic_state(app->kafka, BRW_KAFKA_INPUT, NULL, NULL) ==
           BRW_TOPIC_UNKNOWN ||
       (!app->joined && app->unjoined_ms == app->started_ms));
  out->not_ready = !brw_health_ready(app->health);
  out->blocked = brw_health_json(app->health, now);
}

int brw_app_new(uv_loop_t *loop, const brw_config_t *cfg, brw_app_t **out,
                char *errbuf, size_t errlen) {
  brw_app_t *app = calloc(1, sizeof(*app));
  if (!app)
    return BRW_ENOMEM;
  app->loop = loop;
  app->cfg = cfg;
  brw_list_init(&app->completions);
  brw_rng_seed(&app->rng, (uint64_t)brw_now_ms() ^ (uint64_t)getpid());
  snprintf(app->instance, sizeof(app->instance), "%s", cfg->instance_id);
  brw_list_init(&app->recent_fifo);
  app->m = brw_metrics_new();
  if (app->m) {
    static const brw_metric_id_t info[BRW_VERSIONS_N] = {
        BRW_M_LIBRDKAFKA_INFO, BRW_M_LIBCURL_INFO, BRW_M_LIBUV_INFO,
        BRW_M_JANSSON_INFO};
    brw_lib_version_t v[BRW_VERSIONS_N];
    brw_versions(v);
    for (int i = 0; i < BRW_VERSIONS_N; i++)
      brw_metrics_set(app->m, info[i], v[i].version, 1);
  }
  app->health = app->m ? brw_health_new(app->m) : NULL;
  if (!app->health) {
    brw_metrics_free(app->m);
    free(app);
    return BRW_ENOMEM;
  }
  int r = brw_tracker_init(&app->table);
  if (!r)
    r = brw_tracker_init(&app->recent);
  if (r)
    goto err;
  char ua[128];
  snprintf(ua, sizeof(ua), "bsg-report-worker/%s (+%s)", BRW_VERSION,
           curl_version_info(CURLVERSION_NOW)->version);
  brw_http_opts_t hopts = {
      .max_connections = cfg->http_max_connections,
      .timeout_ms = cfg->http_timeout_ms,
      .max_response = cfg->http_max_response,
      .ca_file = cfg->http_ca_file,
      .user_agent = ua,
      .version = (brw_http_version_t)brw_http_version_parse(cfg->http_version),
      .max_streams = cfg->http_max_streams,
      .proxy = cfg->http_proxy,
      .no_proxy = cfg->http_no_proxy,
      .proxy_ca_file = cfg->http_proxy_ca_file};
  r = brw_http_new(loop, &hopts, &app->http);
  if (r) {
    snprintf(errbuf, errlen, "http client: %s", brw_strerror(r));
    goto err;
  }
  r = brw_api_new(loop, app->http, cfg, &app->api);
  if (r)
    goto err;
  brw_api_set_metrics(app->api, app->m);
  brw_kafka_handlers_t h = {.on_message = on_message,
                            .on_assign = on_assign,
                            .on_revoke = on_revoke,
                            .on_delivered = on_delivered,
                            .on_refused = on_refused,
                            .on_fatal = on_fatal,
                            .on_connection = on_connection,
                            .on_commit_done = on_commit_done,
                            .ctx = app};
  r = brw_kafka_new(loop, cfg, &h, &app->kafka, errbuf, errlen);
  if (r)
    goto err;
  brw_kafka_set_metrics(app->kafka, app->m);
  if (cfg->metrics_listen && cfg->metrics_listen[0] &&
      strcmp(cfg->metrics_listen, "off") != 0) {
    r = brw_admin_new(loop, cfg->metrics_listen, app->m, on_ready, app,
                      &app->admin, errbuf, errlen);
    if (r)
      goto err;
  }
  app->sched.min_interval_ms = cfg->poll_min_interval_ms;
  app->sched.max_interval_ms = cfg->poll_max_interval_ms;
  app->sched.jitter = cfg->poll_jitter;
  app->sched.adaptive = cfg->poll_adaptive;
  if (brw_timers_init(&app->timers, loop) != 0) {
    r = BRW_ENOMEM;
    goto err;
  }
  uv_timer_init(loop, &app->commit_timer);
  app->commit_timer.data = app;
  uv_timer_init(loop, &app->flush_timer);
  app->flush_timer.data = app;
  uv_timer_init(loop, &app->revoke_timer);
  app->revoke_timer.data = app;
  uv_timer_init(loop, &app->health_timer);
  app->health_timer.data = app;
  /* Busy time per iteration needs libuv's idle-time metric (libuv >=
   * 1.39); without it only the tick's lateness is measured. The check
   * handle does not keep the loop alive. */
  uv_check_init(loop, &app->loop_check);
  app->loop_check.data = app;
  if (uv_loop_configure(loop, UV_METRICS_IDLE_TIME) == 0) {
    uv_check_start(&app->loop_check, on_loop_check);
    uv_unref((uv_handle_t *)&app->loop_check);
  }
  uv_signal_init(loop, &app->sigterm);
  app->sigterm.data = app;
  uv_signal_init(loop, &app->sigint);
  app->sigint.data = app;
  *out = app;
  return 0;
err:
  /* Handles created so far are closed by brw_app_free after the loop ran
   * once; partial construction is only possible before any handle of the
   * app itself exists, so the http/api handles are closed here. */
  *out = app;
  app->stopping = 1;
  app->flushed = 1;
  app->exit_code = 1;
  finish_shutdown(app);
  return r ? r : BRW_ENOMEM;
}

static void on_signal(uv_signal_t *s, int signum) {
  brw_app_t *app = s->data;
  if (app->stopping) {
    brw_logj(BRW_LOG_WARN, json_pack("{si}", "signal", signum),
             "second signal: exiting at once");
    _exit(128 + signum);
  }
  brw_logj(BRW_LOG_INFO, json_pack("{si}", "signal", signum),
           "shutting down");
  brw_app_stop(app);
}

int brw_app_start(brw_app_t *app) {
  uv_signal_start(&app->sigterm, on_signal, SIGTERM);
  uv_signal_start(&app->sigint, on_signal, SIGINT);
  uv_timer_start(&app->commit_timer, on_commit_timer,
                 app->cfg->commit_interval_ms, app->cfg->commit_interval_ms);
  int r = brw_kafka_start(app->kafka);
  if (r)
    return r;
  app->started = 1;
  app->started_ms = uv_now(app->loop);
  app->unjoined_ms = app->started_ms;
  app->tick_due_ms = hr_ms() + HEALTH_TICK_MS;
  uv_timer_start(&app->health_timer, on_health_timer, HEALTH_TICK_MS, 0);
  if (app->admin)
    brw_admin_set_live_cb(app->admin, on_live, app);
  {
    /* The libraries it runs with, as fields ("librdkafka": "2.14.2", ...). */
    json_t *f = json_pack("{ss ss ss ss si}", "version", BRW_VERSION,
                          "instance", app->instance, "group",
                          app->cfg->group_id, "input", app->cfg->topic_input,
                          "metrics_port",
                          app->admin ? brw_admin_port(app->admin) : 0);
    brw_lib_version_t v[BRW_VERSIONS_N];
    brw_versions(v);
    for (int i = 0; f && i < BRW_VERSIONS_N; i++)
      json_object_set_new(f, v[i].name, json_string(v[i].version));
    brw_logj(BRW_LOG_INFO, f, "bsg-report-worker started");
  }
  return 0;
}

static void on_handle_closed(uv_handle_t *h) {
  brw_app_t *app = h->data;
  app->closes_pending--;
  finish_shutdown(app);
}

static void on_client_closed(void *arg) {
  brw_app_t *app = arg;
  app->closes_pending--;
  finish_shutdown(app);
}

/* Advances the shutdown once the producer flush is over and nothing is
 * closing: stage 1 closes the clients (Kafka: the consumer leaves the group
 * and both clients are destroyed; then the API client and HTTP), stage 2 the
 * app's own handles; after that the loop has nothing left and uv_run
 * returns. Each stage runs when the previous one's closes have all
 * completed. */
static void finish_shutdown(brw_app_t *app) {
  if (!app->stopping || !app->flushed || app->closes_pending > 0)
    return;
  if (app->stage == 0) {
    app->stage = 1;
    app->closes_pending = 4;
    if (app->admin)
      brw_admin_close(app->admin, on_client_closed, app);
    else
      app->closes_pending--;
    app->admin = NULL;
    if (app->kafka)
      brw_kafka_close(app->kafka, on_client_closed, app);
    else
      app->closes_pending--;
    if (app->api)
      brw_api_close(app->api, on_client_closed, app);
    else
      app->closes_pending--;
    if (app->http)
      brw_http_close(app->http, on_client_closed, app);
    else
      app->closes_pending--;
    app->kafka = NULL;
    app->api = NULL;
    app->http = NULL;
    if (app->closes_pending == 0)
      finish_shutdown(app);
    return;
  }
  if (app->stage == 1) {
    app->stage = 2;
    uv_handle_t *hs[] = {(uv_handle_t *)&app->commit_timer,
                         (uv_handle_t *)&app->flush_timer,
                         (uv_handle_t *)&app->revoke_timer,
                         (uv_handle_t *)&app->health_timer,
                         (uv_handle_t *)&app->loop_check,
                         (uv_handle_t *)&app->sigterm,
                         (uv_handle_t *)&app->sigint};
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
      if (hs[i]->loop && !uv_is_closing(hs[i])) {
        hs[i]->data = app;
        app->closes_pending++;
        uv_close(hs[i], on_handle_closed);
      }
    }
    if (app->timers.loop) {
      app->closes_pending++;
      brw_timers_close(&app->timers, on_client_closed, app);
    }
    if (app->closes_pending == 0)
      finish_shutdown(app);
    return;
  }
  app->stage = 3;
}

static void log_summary(brw_app_t *app) {
  app_stats_t *s = &app->st;
  brw_logj(BRW_LOG_INFO,
           json_pack("{sI sI sI sI sI sI sI s{sI sI sI sI sI} sI sI}", "events",
                     (json_int_t)s->events, "invalid", (json_int_t)s->invalid,
                     "merged", (json_int_t)s->merged, "late",
                     (json_int_t)s->late, "skipped", (json_int_t)s->skipped,
                     "polls",
                     (json_int_t)s->polls, "reports", (json_int_t)s->reports,
                     "reports_by_outcome",
                     brw_outcome_names[BRW_OUTCOME_DONE],
                     (json_int_t)s->reports_by[BRW_OUTCOME_DONE],
                     brw_outcome_names[BRW_OUTCOME_STOPPED],
                     (json_int_t)s->reports_by[BRW_OUTCOME_STOPPED],
                     brw_outcome_names[BRW_OUTCOME_SPAM],
                     (json_int_t)s->reports_by[BRW_OUTCOME_SPAM],
                     brw_outcome_names[BRW_OUTCOME_EXPIRED],
                     (json_int_t)s->reports_by[BRW_OUTCOME_EXPIRED], "other",
                     (json_int_t)s->reports_by[BRW_OUTCOME__COUNT], "dlq",
                     (json_int_t)s->dlq,
                     "acked", (json_int_t)s->acked),
           "summary");
}

/* Shutdown, step 2: waits (without blocking the loop) until the producer
 * has no record in flight or shutdown.timeout passed, then commits what is
 * complete and closes everything. */
static void on_flush_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  size_t left = brw_kafka_in_flight(app->kafka);
  /* Also wait for an asynchronous commit under way, so that it cannot land
   * after (and overwrite) the final commit. After a fatal Kafka error
   * nothing more will be acknowledged: no wait. */
  int busy = left > 0 || brw_kafka_commits_in_flight(app->kafka) > 0;
  if (busy && app->exit_code == 0 &&
      uv_now(app->loop) - app->stop_started < app->cfg->shutdown_timeout_ms)
    return;
  uv_timer_stop(t);
  if (left > 0)
    brw_logj(BRW_LOG_WARN, json_pack("{sI}", "records", (json_int_t)left),
             "shutdown timeout: records not acknowledged will be replayed");
  commit_now(app, 0, 0);
  /* A revocation still waiting ends with this commit. */
  if (app->revoke.active)
    revoke_finish(app);
  log_summary(app);
  app->flushed = 1;
  finish_shutdown(app);
}

void brw_app_stop(brw_app_t *app) {
  if (app->stopping)
    return;
  app->stopping = 1;
  app->stop_started = uv_now(app->loop);
  /* Step 1: no more intake, no more fetches. Campaigns in progress are
   * forgotten with their offsets pending: the next owner resumes them. */
  if (app->kafka)
    brw_kafka_pause(app->kafka, 1);
  for (int32_t p = 0; p < app->parts.nparts; p++) {
    brw_part_t *pt = brw_partitions_get(&app->parts, p);
    if (!pt)
      continue;
    while (!brw_list_empty(&pt->campaigns))
      campaign_drop(brw_list_entry(pt->campaigns.next, campaign_t, pnode));
  }
  uv_timer_stop(&app->commit_timer);
  uv_timer_start(&app->flush_timer, on_flush_timer, 0, FLUSH_POLL_MS);
}

int brw_app_free(brw_app_t *app) {
  int code = app->exit_code;
  while (!brw_list_empty(&app->completions)) {
    completion_t *c = brw_list_entry(app->completions.next, completion_t, node);
    brw_list_remove(&c->node);
    free(c->ev);
    free(c);
  }
  brw_partitions_free(&app->parts);
  while (!brw_list_empty(&app->recent_fifo)) {
    recent_t *r = brw_list_entry(app->recent_fifo.next, recent_t, node);
    brw_list_remove(&r->node);
    free(r);
  }
  brw_tracker_free(&app->recent);
  brw_tracker_free(&app->table);
  brw_health_free(app->health);
  brw_metrics_free(app->m);
  free(app);
  return code;
}
