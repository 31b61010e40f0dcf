#include "app_int.h"

#include "brw/admin.h"
#include "brw/api.h"
#include "brw/backoff.h"
#include "brw/error.h"
#include "brw/health.h"
#include "brw/http.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/partitions.h"
#include "brw/timers.h"
#include "brw/timeutil.h"
#include "brw/tracker.h"
#include "brw/versions.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Shutdown polls the producer this often while it flushes. */
#define FLUSH_POLL_MS 20

static void finish_shutdown(brw_app_t *app);

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */

static void on_fatal(void *ctx, const char *reason) {
  brw_app_t *app = ctx;
  brw_log_error("fatal Kafka error, shutting down: %s", reason);
  app->exit_code = 1;
  brw_app_stop(app);
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
  if (cfg->output_cloudevents_source)
    snprintf(app->ce_source, sizeof(app->ce_source), "%s",
             cfg->output_cloudevents_source);
  else
    brw_ce_default_source(cfg->group_id, app->ce_source,
                          sizeof(app->ce_source));
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
  if (!r)
    r = brw_pack_new(&app->pack);
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
  brw_kafka_handlers_t h = {.on_message = brw__app_on_message,
                            .on_assign = brw__app_on_assign,
                            .on_revoke = brw__app_on_revoke,
                            .on_delivered = brw__app_on_delivered,
                            .on_refused = brw__app_on_refused,
                            .on_fatal = on_fatal,
                            .on_connection = brw__app_on_connection,
                            .on_commit_done = brw__app_on_commit_done,
                            .on_txn_done = brw__app_on_txn_done,
                            .on_delivery_failed = brw__app_on_delivery_failed,
                            .ctx = app};
  r = brw_kafka_new(loop, cfg, &h, &app->kafka, errbuf, errlen);
  if (r)
    goto err;
  brw_kafka_set_metrics(app->kafka, app->m);
  if (cfg->metrics_listen && cfg->metrics_listen[0] &&
      strcmp(cfg->metrics_listen, "off") != 0) {
    r = brw_admin_new(loop, cfg->metrics_listen, app->m, brw__app_on_ready, app,
                      &app->admin, errbuf, errlen);
    if (r)
      goto err;
  }
  app->life.sched.min_interval_ms = cfg->poll_min_interval_ms;
  app->life.sched.max_interval_ms = cfg->poll_max_interval_ms;
  app->life.sched.jitter = cfg->poll_jitter;
  app->life.sched.adaptive = cfg->poll_adaptive;
  app->life.initial_delay_ms = cfg->poll_initial_delay_ms;
  app->life.finished_delay_ms = cfg->poll_finished_delay_ms;
  app->life.retry_min_ms = cfg->retry_min_ms;
  app->life.retry_max_ms = cfg->retry_max_ms;
  app->life.not_found_grace_ms = cfg->poll_not_found_grace_ms;
  app->life.max_age_ms = cfg->poll_max_age_ms;
  app->life.answer_ms = cfg->http_timeout_ms;
  app->life.emit_progress = cfg->emit_progress;
  if (brw__app_sweep_init(app) != 0) {
    r = BRW_ENOMEM;
    goto err;
  }
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
  uv_timer_init(loop, &app->txn_timer);
  app->txn_timer.data = app;
  uv_timer_init(loop, &app->health_timer);
  app->health_timer.data = app;
  /* Busy time per iteration needs libuv's idle-time metric (libuv >=
   * 1.39); without it only the tick's lateness is measured. The check
   * handle does not keep the loop alive. */
  uv_check_init(loop, &app->loop_check);
  app->loop_check.data = app;
  if (uv_loop_configure(loop, UV_METRICS_IDLE_TIME) == 0) {
    uv_check_start(&app->loop_check, brw__app_on_loop_check);
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
  /* At least once: the consumer commits what is complete every
   * kafka.commit_interval. Exactly once: each transaction commits it. */
  if (brw_kafka_transactional(app->kafka)) {
    if (brw__app_txn_start(app) != 0)
      return BRW_ENOMEM;
  } else {
    uv_timer_start(&app->commit_timer, brw__app_on_commit_timer,
                   app->cfg->commit_interval_ms, app->cfg->commit_interval_ms);
  }
  int r = brw_kafka_start(app->kafka);
  if (r)
    return r;
  app->started = 1;
  app->started_ms = uv_now(app->loop);
  app->unjoined_ms = app->started_ms;
  app->tick_due_ms = brw__app_hr_ms() + HEALTH_TICK_MS;
  uv_timer_start(&app->health_timer, brw__app_on_health_timer, HEALTH_TICK_MS,
                 0);
  if (app->admin)
    brw_admin_set_live_cb(app->admin, brw__app_on_live, app);
  {
    /* The libraries it runs with, as fields ("librdkafka": "2.14.2", ...). */
    json_t *f = json_pack("{ss ss ss ss si}", "version", BRW_VERSION,
                          "instance", app->instance, BRW_LF_GROUP,
                          app->cfg->group_id, BRW_LF_TOPIC,
                          app->cfg->topic_input, "metrics_port",
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
    brw__app_sweep_stop(app); /* its pages are the API client's */
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
                         (uv_handle_t *)&app->txn_timer,
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
  json_t *by = json_object();
  for (int i = 0; by && i <= BRW_OUTCOME__COUNT; i++)
    json_object_set_new(by,
                        i < BRW_OUTCOME__COUNT ? brw_outcome_names[i]
                                               : "other",
                        json_integer((json_int_t)s->reports_by[i]));
  brw_logj(BRW_LOG_INFO,
           json_pack("{sI sI sI sI sI sI sI so* sI sI}", "events",
                     (json_int_t)s->events, "invalid", (json_int_t)s->invalid,
                     "merged", (json_int_t)s->merged, "late",
                     (json_int_t)s->late, "skipped", (json_int_t)s->skipped,
                     "polls", (json_int_t)s->polls, "reports",
                     (json_int_t)s->reports, "reports_by_outcome", by, "dlq",
                     (json_int_t)s->dlq, "acked", (json_int_t)s->acked),
           "summary");
}

static void on_flush_timer(uv_timer_t *t);

/* The end of the flush step: the summary, then the clients close. */
static void flushed(brw_app_t *app) {
  uv_timer_stop(&app->flush_timer);
  log_summary(app);
  app->flushed = 1;
  finish_shutdown(app);
}

/* Exactly once, shutdown step 2: the transaction cycle commits what is
 * ready and closes (brw__app_txn_stop), within shutdown.timeout; no
 * consumer commit follows (the transactions committed the offsets). What
 * is left uncommitted after the timeout is reported again by the next
 * owner, once. */
static void flush_transactions(brw_app_t *app) {
  brw__app_txn_stop(app);
  if (!app->txn_closed && app->exit_code == 0 &&
      uv_now(app->loop) - app->stop_started < app->cfg->shutdown_timeout_ms)
    return;
  if (!app->txn_closed)
    brw_logj(BRW_LOG_WARN,
             json_pack("{sI}", "records",
                       (json_int_t)brw_txn_pending(app->txn)),
             "shutdown timeout: records of the open transaction are not "
             "committed; their events will be reported by the next owner");
  if (app->revoke.active)
    brw__app_revoke_finish(app);
  flushed(app);
}

void brw__app_shutdown_kick(brw_app_t *app) {
  if (app->stopping && !app->flushed)
    uv_timer_start(&app->flush_timer, on_flush_timer, 0, FLUSH_POLL_MS);
}

/* Shutdown, step 2: waits (without blocking the loop) until the producer
 * has no record in flight or shutdown.timeout passed, then commits what is
 * complete and closes everything. */
static void on_flush_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  if (app->txn) {
    flush_transactions(app);
    return;
  }
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
  brw__app_commit_now(app, 0, 0);
  /* A revocation still waiting ends with this commit. */
  if (app->revoke.active)
    brw__app_revoke_finish(app);
  flushed(app);
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
      brw__app_campaign_revoke(
          brw_list_entry(pt->campaigns.next, campaign_t, pnode));
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
    free(c->rec);
    brw_headers_free(c->rec_hdrs);
    free(c);
  }
  brw__app_txn_free(app);
  brw__app_sweep_free(app);
  brw_partitions_free(&app->parts);
  while (!brw_list_empty(&app->recent_fifo)) {
    recent_t *r = brw_list_entry(app->recent_fifo.next, recent_t, node);
    brw_list_remove(&r->node);
    free(r);
  }
  brw_tracker_free(&app->recent);
  brw_tracker_free(&app->table);
  brw_pack_free(app->pack);
  brw_health_free(app->health);
  brw_metrics_free(app->m);
  free(app);
  return code;
}
