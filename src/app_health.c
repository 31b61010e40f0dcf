/* The app's health (part of the application; src/app_int.h says which file
 * owns what): the reasons that make the worker not ready (Kafka, topics, the
 * group, the accounts, backpressure, refused records), the event loop lag,
 * the health tick, intake backpressure, and the /healthz and /readyz
 * answers. Loop thread only. */

#include "app_int.h"

#include "brw/admin.h"
#include "brw/api.h"
#include "brw/health.h"
#include "brw/kafka.h"
#include "brw/log.h"
#include "brw/metrics.h"

#include <inttypes.h>
#include <stdio.h>

/* The loop is late (event_loop_lag raised, a warning) when the tick fires
 * this much after it was due, or one loop iteration ran this long without
 * waiting for I/O; the reason clears after this many ticks on time in a
 * row, so that one burst of stalls does not log twice. */
#define LOOP_LAG_RAISE_MS 1000
#define LOOP_LAG_CLEAR_TICKS 30
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
void brw__app_on_connection(void *ctx, int up) {
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
void brw__app_update_backpressure(brw_app_t *app) {
  if (!app->kafka || app->stopping)
    return;
  size_t max = (size_t)app->cfg->max_tracked;
  int paused = brw_kafka_paused(app->kafka);
  int backlog = brw_kafka_backlog(app->kafka) > 0;
  /* Exactly once: records waiting for their transaction's commit count
   * with the campaigns, so that a cycle that cannot commit pauses intake
   * instead of growing without bound. */
  size_t held = app->tracked + (app->txn ? brw_txn_pending(app->txn) : 0);
  if (!paused && (held >= max || backlog))
    brw_kafka_pause(app->kafka, 1);
  else if (paused && !backlog && held < max - max / 10)
    brw_kafka_pause(app->kafka, 0);
  paused = brw_kafka_paused(app->kafka);
  brw_metrics_set(app->m, BRW_M_CONSUMPTION_PAUSED, NULL, paused);
  brw_metrics_set(app->m, BRW_M_PARTITIONS_PAUSED, NULL,
                  paused ? app->parts.assigned : 0);
  uint64_t now = uv_now(app->loop);
  hold_update(&app->hold_backlog, backlog, now);
  hold_update(&app->hold_max, paused && held >= max - max / 10, now);
}

/* The real backlog (issue 16), every health tick: input events not read
 * yet on the partitions held (the kafka module's count, renewed with each
 * statistics object and, while paused, each watermark round) and tracked
 * campaigns whose fetch is due but waits in an account's queue (the API
 * client's count, current). Their sum is the autoscaling signal: unlike
 * the consumer lag it does not grow with campaigns that merely take long.
 * An unknown count (no statistics yet) shows as 0. */
static void backlog_update(brw_app_t *app) {
  int64_t unread = app->kafka ? brw_kafka_unread(app->kafka) : 0;
  size_t due = app->api ? brw_api_queued(app->api) : 0;
  if (unread < 0)
    unread = 0;
  brw_metrics_set(app->m, BRW_M_BACKLOG_EVENTS, NULL, (double)unread);
  brw_metrics_set(app->m, BRW_M_CAMPAIGNS_DUE, NULL, (double)due);
  brw_metrics_set(app->m, BRW_M_BACKLOG, NULL, (double)unread + (double)due);
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

/* Exactly once: raised while records have waited TXN_STALL_MS for a
 * commit that goes well (aborts and redos that fail again and again
 * count as waiting), or while the cycle has had no call go well for as
 * long with no open transaction (init or rebuild failing); the detail has
 * the state and the last error. Cleared once neither holds. */
#define TXN_STALL_MS 30000
static void txn_health(brw_app_t *app, uint64_t now) {
  brw_txn_state_t st = brw_txn_state(app->txn);
  int open = st == BRW_TXN_OPEN || st == BRW_TXN_CLOSED;
  uint64_t since = now;
  if (app->txn_waiting_ms)
    since = app->txn_commit_ms > app->txn_waiting_ms ? app->txn_commit_ms
                                                     : app->txn_waiting_ms;
  else if (!open)
    since = app->txn_ok_ms;
  if (now - since >= TXN_STALL_MS)
    brw_health_raise(app->health, BRW_BLOCK_TXN_STALLED, now,
                     "no transaction committed for %" PRIu64
                     " s (state %s, %zu records waiting): %s",
                     (now - since) / 1000, brw_txn_state_name(st),
                     brw_txn_pending(app->txn),
                     app->txn_error[0] ? app->txn_error
                     : app->kafka && brw_kafka_producer_error(app->kafka)[0]
                         ? brw_kafka_producer_error(app->kafka)
                         : "no error yet");
  else
    brw_health_clear(app->health, BRW_BLOCK_TXN_STALLED, now);
}

/* Raises or clears the reasons that are states rather than events (SPEC §7
 * readiness): brokers down, a missing topic, the group not joined, an account
 * without a usable bearer. Runs from the health tick and before each
 * /readyz answer, so the answer is current. Details name topics and
 * accounts, never a key. */
static void health_eval(brw_app_t *app, uint64_t now) {
  brw_health_t *h = app->health;
  char detail[480];
  if (app->txn)
    txn_health(app, now);
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

uint64_t brw__app_hr_ms(void) {
  return uv_hrtime() / 1000000;
}

/* After each poll phase: the time since the previous one, minus the time
 * the loop spent waiting in the kernel for I/O (libuv's idle-time metric),
 * is what the last iteration spent running callbacks without a break: the
 * stall every timer, socket and signal waited through. A stall shorter
 * than the health tick's period is seen here even when it does not make
 * the tick late. */
void brw__app_on_loop_check(uv_check_t *h) {
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
void brw__app_on_health_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  uint64_t hr = brw__app_hr_ms();
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
  brw__app_update_backpressure(app);
  backlog_update(app);
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
  app->tick_due_ms = brw__app_hr_ms() + HEALTH_TICK_MS;
  uv_timer_start(t, brw__app_on_health_timer, HEALTH_TICK_MS, 0);
}

/* /healthz: the loop answers (or there would be no answer at all), and is
 * starved when the health tick is overdue by LOOP_STARVED_MS. */
int brw__app_on_live(void *ctx, char *why, size_t len) {
  brw_app_t *app = ctx;
  uint64_t hr = brw__app_hr_ms();
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
void brw__app_on_ready(void *ctx, brw_admin_readiness_t *out) {
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
