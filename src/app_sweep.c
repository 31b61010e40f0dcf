/* Status sweeps (part of the application; src/app_int.h says which file
 * owns what): one sweeper per account when poll.strategy is sweep or auto.
 * src/sweep.c has the policy, src/campaign.c what a listing does to a
 * campaign; this file runs the sweeps: when one starts, its pages, the
 * listings it hands to the campaigns, and what a failed page does. Loop
 * thread only.
 *
 * Every wait has a way out. A campaign that asked for a sweep and was not
 * listed fetches its detail when that sweep ends, or at the latest after
 * the sweep gap + 3 × http.timeout (its own timer); a failed page makes the account's campaigns
 * poll details until a page works again (retried with the retry backoff);
 * with poll.strategy=auto, a list that cannot be used (403, 404, a body
 * that is not a list, or one that lists none of the account's campaigns
 * three sweeps in a row) is left alone for an hour, with one line in the
 * log. */

#include "app_int.h"

#include "brw/api.h"
#include "brw/bsg.h"
#include "brw/error.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/sweep.h"
#include "brw/timers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One line a minute at most about an account's failing list, one in ten
 * minutes about sweeps that cost too much (the account's campaigns may
 * hover around the bound). */
#define SWEEP_LOG_INTERVAL_MS 60000
#define SWEEP_COST_LOG_INTERVAL_MS 600000

struct app_sweeper_s {
  brw_app_t *app;
  int account;
  brw_timer_t timer;       /* the next sweep, or the retry of a failed page */
  brw_fetch_t *page;       /* the page in flight */
  int running;             /* a sweep is under way */
  int again;               /* a campaign asked for a sweep while one ran */
  brw_sweep_window_t win[BRW_SWEEP_MAX_WINDOWS]; /* the running sweep's */
  size_t nwin, wi;         /* ... how many, the one being read */
  int64_t offset;          /* the page in flight's offset in it */
  int64_t cost;            /* the running sweep's pages, by the totals */
  int64_t *times;          /* first events, for the plan (grown, kept) */
  size_t ntimes_cap;
  int pages;               /* pages of the running sweep so far */
  size_t matched;          /* tracked campaigns it listed so far */
  int blind;               /* complete sweeps in a row that listed none of
                              the account's tracked campaigns */
  uint64_t round;          /* sweeps started (the running one's number) */
  uint64_t last_start;     /* uv_now() of the last sweep's start, 0: none */
  int64_t est_pages;       /* what the last sweep cost, in pages (1 before) */
  int costly;              /* the last decision said too costly */
  int failing;             /* the last page failed: details until one works */
  uint64_t unusable_until; /* auto: no sweeps before then (uv_now) */
  unsigned err_attempt;
  size_t tracked;           /* the account's tracked campaigns */
  brw_log_limit_t log;      /* failed pages */
  brw_log_limit_t cost_log; /* too costly */
};

static void on_sweep_timer(brw_timer_t *t);
static void on_page(brw_fetch_result_t *res, void *arg);
static void sweep_end(app_sweeper_t *s);

int brw__app_sweep_init(brw_app_t *app) {
  if (brw_config_sweep_mode(app->cfg) == 0)
    return 0;
  int n = (int)app->cfg->naccounts;
  app->sweepers = calloc((size_t)n, sizeof(*app->sweepers));
  if (!app->sweepers)
    return BRW_ENOMEM;
  for (int i = 0; i < n; i++) {
    app_sweeper_t *s = &app->sweepers[i];
    s->app = app;
    s->account = i;
    s->est_pages = 1;
    brw_timer_init(&s->timer);
  }
  /* A campaign waits for the sweep it asked for this long: the gap
   * between two sweeps, and room for a few pages. */
  app->life.sweep_wait_ms =
      app->cfg->poll_sweep_interval_ms + 3 * app->cfg->http_timeout_ms;
  return 0;
}

/* Cancels the page in flight and the timers; before the API client
 * closes (no callback runs after it). */
void brw__app_sweep_stop(brw_app_t *app) {
  if (!app->sweepers)
    return;
  for (int i = 0; i < (int)app->cfg->naccounts; i++) {
    app_sweeper_t *s = &app->sweepers[i];
    if (s->page) {
      brw_api_cancel(s->page);
      s->page = NULL;
    }
    s->running = 0;
    if (app->timers.loop)
      brw_timer_stop(&app->timers, &s->timer);
  }
}

void brw__app_sweep_free(brw_app_t *app) {
  for (int i = 0; app->sweepers && i < (int)app->cfg->naccounts; i++)
    free(app->sweepers[i].times);
  free(app->sweepers);
  app->sweepers = NULL;
}

void brw__app_sweep_tracked(brw_app_t *app, int account, int delta) {
  if (!app->sweepers || account < 0 || account >= (int)app->cfg->naccounts)
    return;
  app_sweeper_t *s = &app->sweepers[account];
  if (delta < 0 && s->tracked < (size_t)-delta)
    s->tracked = 0;
  else
    s->tracked = (size_t)((ptrdiff_t)s->tracked + delta);
}

int brw__app_sweeping(brw_app_t *app, int account) {
  if (!app->sweepers || app->stopping || account < 0 ||
      account >= (int)app->cfg->naccounts)
    return 0;
  app_sweeper_t *s = &app->sweepers[account];
  uint64_t now = uv_now(app->loop);
  if (s->failing || (s->unusable_until && now < s->unusable_until))
    return 0;
  const brw_config_t *cfg = app->cfg;
  if (brw_sweep_worth(s->tracked, s->est_pages, cfg->poll_sweep_interval_ms,
                      cfg->poll_max_interval_ms)) {
    s->costly = 0;
    return 1;
  }
  if (!s->costly) {
    s->costly = 1;
    brw_metrics_inc(app->m, BRW_M_SWEEP_FALLBACKS, "too_costly", 1);
    if (brw_log_limit(&s->cost_log, now, SWEEP_COST_LOG_INTERVAL_MS, NULL))
      brw_logj(BRW_LOG_INFO,
               json_pack("{ss sI sI}", "account", cfg->accounts[account].name,
                         "tracked", (json_int_t)s->tracked, "pages",
                         (json_int_t)s->est_pages),
               "status sweeps cost more than details for this account's "
               "campaigns: detail polling, its list looked at again every "
               "poll.max_interval");
  }
  /* Too costly: one campaign in a poll.max_interval still asks, so that a
   * list that shrank is seen. */
  return !s->last_start || now - s->last_start >= cfg->poll_max_interval_ms;
}

/* The gap between two of the account's sweeps (brw_sweep_interval),
 * capped at poll.max_interval (beyond it the account is not swept, bar a
 * probe). */
static uint64_t sweep_gap(const app_sweeper_t *s) {
  const brw_config_t *cfg = s->app->cfg;
  uint64_t g = brw_sweep_interval(s->tracked, s->est_pages,
                                  cfg->poll_sweep_page_worth,
                                  cfg->poll_sweep_interval_ms,
                                  cfg->poll_max_interval_ms);
  return g < cfg->poll_max_interval_ms ? g : cfg->poll_max_interval_ms;
}

uint64_t brw__app_sweep_wait(brw_app_t *app, int account) {
  if (!app->sweepers || account < 0 || account >= (int)app->cfg->naccounts)
    return 0;
  /* The gap, and room for the pages of a sweep. */
  return sweep_gap(&app->sweepers[account]) + 3 * app->cfg->http_timeout_ms;
}

void brw__app_sweep_request(brw_app_t *app, int account) {
  if (!app->sweepers || app->stopping || account < 0 ||
      account >= (int)app->cfg->naccounts)
    return;
  app_sweeper_t *s = &app->sweepers[account];
  if (s->running) {
    s->again = 1;
    return;
  }
  if (brw_timer_pending(&s->timer))
    return; /* the next sweep is armed (or a retry, sooner or later) */
  uint64_t d = brw_sweep_delay(uv_now(app->loop), s->last_start,
                               sweep_gap(s));
  if (brw_timer_start(&app->timers, &s->timer, d, on_sweep_timer) != 0)
    brw_log_error("out of memory for a sweep timer: the campaigns that "
                  "wait for it fetch their details");
}

/* Calls fn for every tracked campaign of the sweeper's account (in the
 * partitions held); fn may drop the campaign it is given. */
static void each_campaign(app_sweeper_t *s,
                          void (*fn)(app_sweeper_t *s, campaign_t *c,
                                     void *arg),
                          void *arg) {
  brw_app_t *app = s->app;
  for (int32_t p = 0; p < app->parts.nparts; p++) {
    brw_part_t *pt = app->parts.parts[p];
    if (!pt || !pt->assigned)
      continue;
    brw_list_t *it, *tmp;
    brw_list_foreach_safe(it, tmp, &pt->campaigns) {
      campaign_t *c = brw_list_entry(it, campaign_t, pnode);
      if (c->key.account == s->account)
        fn(s, c, arg);
    }
  }
}

static void add_time(app_sweeper_t *s, campaign_t *c, void *arg) {
  size_t *n = arg;
  if (*n < s->ntimes_cap)
    s->times[(*n)++] = c->first_event_ms;
}

/* Collects the first events of the account's tracked campaigns into
 * s->times; returns how many (0: none, or out of memory). */
static size_t collect_times(app_sweeper_t *s) {
  if (s->ntimes_cap < s->tracked) {
    size_t cap = s->tracked + s->tracked / 2 + 16;
    int64_t *t = realloc(s->times, cap * sizeof(*t));
    if (!t)
      return 0;
    s->times = t;
    s->ntimes_cap = cap;
  }
  size_t n = 0;
  each_campaign(s, add_time, &n);
  return n;
}

static void send_page(app_sweeper_t *s) {
  brw_app_t *app = s->app;
  char path[320];
  if (brw_sweep_path(path, sizeof(path), &s->win[s->wi], app->cfg->api_tz,
                     s->offset) != 0 ||
      !(s->page = brw_api_list(app->api, s->account, path, on_page, s))) {
    brw_log_error("cannot start a campaign list request: the campaigns that "
                  "wait for it fetch their details");
    sweep_end(s);
  }
}

/* Starts a sweep: plans the creation windows of the account's tracked
 * campaigns (brw_sweep_plan) and asks for the first page. */
static void sweep_begin(app_sweeper_t *s) {
  brw_app_t *app = s->app;
  size_t n = collect_times(s);
  if (n == 0) {
    /* Nothing tracked on this account any more (or no memory for the
     * plan): the next campaign starts afresh (a failure before is no
     * reason to keep it on details); a waiting one has its watchdog. */
    s->failing = 0;
    return;
  }
  s->nwin = brw_sweep_plan(s->times, n, app->cfg->poll_sweep_margin_ms,
                           s->win, BRW_SWEEP_MAX_WINDOWS);
  s->running = 1;
  s->again = 0;
  s->pages = 0;
  s->matched = 0;
  s->cost = 0;
  s->round++;
  s->wi = 0;
  s->offset = 0;
  s->last_start = uv_now(app->loop);
  send_page(s);
}

static void on_sweep_timer(brw_timer_t *t) {
  app_sweeper_t *s = brw_timer_entry(t, app_sweeper_t, timer);
  if (s->app->stopping || s->running)
    return;
  sweep_begin(s);
}

/* The sweep numbered `round` is over: every campaign of the account that
 * waits for it and was not listed fetches now (BRW_CIN_SWEPT), instead of
 * at its watchdog. One pass over the account's campaigns, as at the
 * sweep's start. */
typedef struct {
  uint64_t round;
  int failed;
} release_t;

static void release_one(app_sweeper_t *s, campaign_t *c, void *arg) {
  const release_t *r = arg;
  (void)s;
  if (c->life.sweep & BRW_CSWEEP_AWAIT)
    brw__app_campaign_swept(c, (int)(r->round & 1), r->failed);
}

static void release(app_sweeper_t *s, uint64_t round, int failed) {
  release_t r = {round, failed};
  each_campaign(s, release_one, &r);
}

int brw__app_sweep_round(brw_app_t *app, int account) {
  if (!app->sweepers || account < 0 || account >= (int)app->cfg->naccounts)
    return 0;
  /* The next sweep to start serves an ask, whether one runs or not. */
  return (int)((app->sweepers[account].round + 1) & 1);
}

/* The sweep is over (complete or cut short): campaigns it did not list
 * fetch their details; the next sweep if a campaign asked meanwhile. */
static void sweep_end(app_sweeper_t *s) {
  s->running = 0;
  if (!s->app->stopping)
    release(s, s->round, 0);
  if (s->again) {
    s->again = 0;
    brw__app_sweep_request(s->app, s->account);
  }
}

/* poll.strategy=auto: the list cannot be used for this account; details
 * for BRW_SWEEP_REPROBE_MS, one line. */
static void give_up(app_sweeper_t *s, const char *why) {
  brw_app_t *app = s->app;
  s->failing = 0;
  s->err_attempt = 0;
  s->blind = 0;
  s->unusable_until = uv_now(app->loop) + BRW_SWEEP_REPROBE_MS;
  brw_logj(BRW_LOG_WARN,
           json_pack("{ss ss sI}", "account",
                     app->cfg->accounts[s->account].name, "error", why,
                     "retry_in_ms", (json_int_t)BRW_SWEEP_REPROBE_MS),
           "the campaign list cannot be used for status sweeps: detail "
           "polling for this account (poll.strategy=auto), the list is "
           "tried again in an hour");
}

/* A complete sweep that listed none of the account's tracked campaigns,
 * BRW_SWEEP_BLIND_MAX times in a row, is a list that does not show them (a
 * server reading filter[from] in another zone, filtering on another
 * field): with auto the account goes back to details; with sweep one WARN
 * a minute says so (its campaigns fall back one by one, as misses). */
static void sweep_blind(app_sweeper_t *s) {
  brw_app_t *app = s->app;
  if (s->matched > 0 || s->tracked == 0) {
    s->blind = 0;
    return;
  }
  if (++s->blind < BRW_SWEEP_BLIND_MAX)
    return;
  char why[160];
  snprintf(why, sizeof(why),
           "%d sweeps in a row listed none of the account's %zu tracked "
           "campaigns",
           s->blind, s->tracked);
  brw_metrics_inc(app->m, BRW_M_SWEEP_FALLBACKS, "list_unusable", 1);
  if (brw_config_sweep_mode(app->cfg) == 2) {
    give_up(s, why);
    return;
  }
  uint64_t held = 0;
  if (brw_log_limit(&s->log, uv_now(app->loop), SWEEP_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_WARN,
             json_pack("{ss ss sI}", "account",
                       app->cfg->accounts[s->account].name, "error", why,
                       "suppressed", (json_int_t)held),
             "status sweeps do not list this account's campaigns: they fall "
             "back to details one by one (check api.timezone and "
             "poll.sweep_margin; poll.strategy=auto would stop sweeping)");
}

/* A failed page: the account's campaigns poll details until a page works;
 * the sweep is tried again after the retry backoff (or the server's
 * Retry-After), except that with poll.strategy=auto a list that cannot be
 * used is left alone for BRW_SWEEP_REPROBE_MS. */
static void page_failed(app_sweeper_t *s, brw_fetch_result_t *res, int bad_body,
                        const char *why) {
  brw_app_t *app = s->app;
  const brw_config_t *cfg = app->cfg;
  brw_sweep_failure_t f = brw_sweep_classify(res->status, bad_body);
  int unusable_auto =
      f == BRW_SWEEP_UNUSABLE && brw_config_sweep_mode(cfg) == 2;
  uint64_t now = uv_now(app->loop);
  uint64_t d =
      brw_schedule_retry(cfg->retry_min_ms, cfg->retry_max_ms, cfg->poll_jitter,
                         &s->err_attempt, res->retry_after_ms, &app->rng);
  brw_metrics_inc(app->m, BRW_M_SWEEP_PAGES, "failed", 1);
  brw_metrics_inc(app->m, BRW_M_SWEEP_FALLBACKS,
                  f == BRW_SWEEP_UNUSABLE ? "list_unusable" : "list_failed", 1);
  s->failing = 1;
  s->running = 0;
  s->again = 0;
  if (!app->stopping)
    release(s, s->round, 1);
  uint64_t held = 0;
  if (unusable_auto) {
    give_up(s, why);
    return;
  }
  if (brw_log_limit(&s->log, now, SWEEP_LOG_INTERVAL_MS, &held))
    brw_logj(BRW_LOG_WARN,
             json_pack("{ss ss sI sI}", "account",
                       cfg->accounts[s->account].name, "error", why, "retry_ms",
                       (json_int_t)d, "suppressed", (json_int_t)held),
             "a campaign list page failed: detail polling for this account "
             "until a sweep works again (one line a minute; "
             "sweep_pages_total{result=\"failed\"} counts them)");
  if (brw_timer_start(&app->timers, &s->timer, d, on_sweep_timer) != 0)
    s->failing = 0; /* no retry without a timer: campaigns ask again */
}

/* Hands a listed campaign to every tracked campaign of that id on this
 * account (one per partition that holds it). Returns how many. */
static int hand_out(app_sweeper_t *s, const brw_campaign_list_item_t *it) {
  brw_app_t *app = s->app;
  int n = 0;
  for (int32_t p = 0; p < app->parts.nparts; p++) {
    brw_part_t *pt = app->parts.parts[p];
    if (!pt || !pt->assigned)
      continue;
    campaign_t *c =
        (campaign_t *)brw_tracker_find(&app->table, p, s->account, it->id);
    if (c) {
      brw__app_campaign_listed(c, it);
      n++;
    }
  }
  return n;
}

static void on_page(brw_fetch_result_t *res, void *arg) {
  app_sweeper_t *s = arg;
  brw_app_t *app = s->app;
  s->page = NULL;
  if (res->status != BRW_FETCH_OK) {
    page_failed(s, res, 0, res->message);
    return;
  }
  brw_campaign_list_t list;
  char err[200];
  int r = brw_campaign_list_parse(res->body, res->body_len, app->cfg->api_tz,
                                  &list, err, sizeof(err));
  if (r != 0) {
    char why[256];
    snprintf(why, sizeof(why), "bad campaign list: %s",
             r == BRW_ENOMEM ? "out of memory" : err);
    page_failed(s, res, r != BRW_ENOMEM, why);
    return;
  }
  s->failing = 0;
  s->err_attempt = 0;
  s->pages++;
  brw_metrics_inc(app->m, BRW_M_SWEEP_PAGES, "ok", 1);
  int matched = 0;
  for (size_t i = 0; i < list.n && !app->stopping; i++)
    matched += hand_out(s, &list.items[i]);
  brw_metrics_observe(app->m, BRW_M_SWEEP_PAGE_CAMPAIGNS, NULL, matched);
  s->matched += (size_t)matched;
  if (s->offset == 0) /* a window's first page: what the window costs */
    s->cost += brw_sweep_pages(list.total >= 0 ? list.total : (int64_t)list.n);
  int64_t next = brw_sweep_next_offset(s->offset, list.n, list.total, s->pages);
  if (next < 0 && list.total < 0 && s->offset > 0)
    s->cost += s->offset / BRW_SWEEP_PAGE_LIMIT; /* no total: what it took */
  brw_campaign_list_clear(&list);
  if (app->stopping) {
    sweep_end(s);
    return;
  }
  if (next < 0 && s->wi + 1 < s->nwin && s->pages < BRW_SWEEP_MAX_PAGES) {
    s->wi++; /* the next window */
    next = 0;
  }
  if (next >= 0) {
    s->offset = next;
    send_page(s);
    return;
  }
  s->est_pages = s->cost > 0 ? s->cost : 1; /* complete */
  sweep_blind(s);
  sweep_end(s);
}
