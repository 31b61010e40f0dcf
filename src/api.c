#include "brw/api.h"
#include "brw/backoff.h"
#include "brw/error.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/ratelimit.h"
#include "brw/timeutil.h"
#include "brw/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A bearer is renewed (refreshed) this long before its `exp`, and assumed to
 * live this long when the JWT carries no `exp`. */
#define BEARER_MARGIN_MS 60000
#define BEARER_DEFAULT_TTL_MS (30 * 60000)
/* A bearer with less life than this left when it arrives is refused: exp
 * has a resolution of one second, so this is "expired or expiring within
 * the second" (a lifetime of 0, or clocks that disagree), never a usable
 * short lifetime (those are renewed at half their life). */
#define BEARER_MIN_LIFE_MS 1000
/* Detail requests one pump starts (or fails to start) before it yields to
 * the loop: the rest go on in the next loop iteration, after the poll phase,
 * so that a long ready queue never holds up sockets, timers and signals. */
#define PUMP_BATCH 64
/* A login failure of an account is logged at most this often (and at every
 * change of its reason); the lines held back are counted in the next one. */
#define LOGIN_LOG_INTERVAL_MS 60000

typedef enum { AUTH_NONE = 0, AUTH_LOGIN, AUTH_REFRESH } auth_kind_t;

/* Why the account's last login failed. */
typedef enum {
  LOGIN_OK = 0,      /* it did not (or no login yet) */
  LOGIN_REJECTED,    /* 401/403: the key is not accepted */
  LOGIN_NO_BEARER,   /* 200, but the bearer cannot be used */
  LOGIN_TRANSIENT    /* transport, 429, 5xx, another 4xx, a local failure */
} login_fail_t;

/* One BSG account: its key, its bearer, its rate limit and its queues.
 *
 * A fetch is in exactly one place: `waiters` (no usable bearer yet),
 * `ready` (has a bearer, waits for a rate-limit slot) or in flight. The
 * account's authentication request (login or refresh) takes a slot from the
 * same rate limit, ahead of the detail requests. */
typedef struct {
  brw_api_t *api;
  int index;
  const char *name;
  const char *key;
  char *bearer;
  uint64_t bearer_gen;      /* changes with every new bearer */
  int64_t bearer_expires_ms; /* wall clock */
  int64_t bearer_renew_ms;   /* refresh from then on */
  brw_http_req_t *auth_req;  /* login or refresh in flight */
  auth_kind_t auth_kind;     /* of auth_req */
  auth_kind_t auth_wanted;   /* waiting for a rate-limit slot */
  brw_list_t waiters;
  brw_list_t ready;
  brw_list_t inflight; /* fetches whose request is out */
  brw_ratelimit_t rl;
  uv_timer_t backoff_timer; /* next login after a failed one */
  uv_timer_t rl_timer;      /* next rate-limit slot */
  int failed;               /* key rejected at the last login */
  unsigned fail_attempt;    /* logins failed in a row (any reason) */
  login_fail_t last_fail;   /* why the last login failed */
  const char *fail_reason;  /* static, for brw_api_account_usable */
  int pump_due;             /* a pump is asked for (api->idle) */
  const char *logged_reason; /* static: the reason last logged, or NULL */
  brw_log_limit_t fail_log; /* login failure lines */
} account_t;

struct brw_api_s {
  uv_loop_t *loop;
  brw_http_t *http;
  const brw_config_t *cfg;
  account_t *accounts;
  int naccounts;
  brw_rng_t rng;
  brw_api_stats_t stats;
  brw_metrics_t *m; /* borrowed, may be NULL */
  /* Runs the pumps that are due now, once per loop iteration (see
   * pump_soon). */
  uv_idle_t idle;
  long transfers;   /* requests handed to curl and not finished */
  /* Detail fetches alive (from brw_api_fetch to their callback or
   * cancel), and those of them whose request is out: brw_api_queued is
   * the difference. */
  size_t details;
  size_t details_out;
  /* The HTTP version and transport of the last answer (0: none yet), for
   * the line that says when they change and for the transfer cap. */
  int http_version;
  int http_tls;
  /* A proxy is set (http.proxy, or a variable curl reads): the readiness
   * detail of an unreachable API names it. */
  int via_proxy;
  int pending_closes;
  void (*close_cb)(void *);
  void *close_arg;
};

struct brw_fetch_s {
  brw_list_t node; /* in waiters or ready while not in flight */
  brw_api_t *api;
  account_t *acct;
  uint64_t id;       /* a detail's campaign; 0: a list page */
  char *path;        /* a list page: path and query, after api.url */
  char *traceparent;
  char *tracestate; /* only with a traceparent */
  brw_http_req_t *req;
  uint64_t bearer_gen; /* of the bearer the request was sent with */
  int relogged;        /* a 401 already caused one re-login */
  int counted;         /* a detail fetch counted in api->details */
  int out;             /* its request is out (counted in details_out) */
  brw_fetch_cb cb;
  void *arg;
};

static void account_pump(account_t *a);

void brw_api_set_metrics(brw_api_t *api, brw_metrics_t *m) {
  api->m = m;
}

/* An answer's HTTP version as http.version spells it: "1.1", "2". */
static const char *version_name(int v) {
  return v == 10 ? "1.0" : v == 11 ? "1.1" : v == 20 ? "2" : "3";
}

/* Logs the HTTP version and transport when they change (the first answer,
 * a server that starts or stops offering HTTP/2): one line per change. */
static void note_protocol(brw_api_t *api, const brw_http_resp_t *resp) {
  if (resp->http_version == 0 ||
      (resp->http_version == api->http_version && resp->tls == api->http_tls))
    return;
  api->http_version = resp->http_version;
  api->http_tls = resp->tls;
  const char *ver = version_name(resp->http_version);
  const char *want = api->cfg->http_version ? api->cfg->http_version : "auto";
  json_t *f = json_pack("{ss sb ss}", "http_version", ver, "tls", resp->tls,
                        "http.version", want);
  if (resp->http_version < 20 && !strcmp(want, "2"))
    brw_logj(BRW_LOG_WARN, f,
             "the API answered over HTTP/%s although http.version is 2: the "
             "server (or a proxy in between) does not offer HTTP/2",
             ver);
  else
    brw_logj(BRW_LOG_INFO, f, "API protocol: HTTP/%s%s", ver,
             resp->tls ? " over TLS" : "");
}

/* Counts one answered (or failed) request by status class, with its
 * duration, the connections it opened and its HTTP version. */
static void count_response(brw_api_t *api, const brw_http_resp_t *resp) {
  note_protocol(api, resp);
  if (!api->m)
    return;
  if (resp->new_connections > 0)
    brw_metrics_inc(api->m, BRW_M_API_CONNECTIONS, resp->tls ? "tls" : "tcp",
                    (double)resp->new_connections);
  if (resp->http_version)
    brw_metrics_inc(api->m, BRW_M_API_RESPONSES_BY_VERSION,
                    version_name(resp->http_version), 1);
  static const char *classes[] = {"error", "1xx", "2xx", "3xx", "4xx", "5xx"};
  long st = resp->outcome == BRW_HTTP_OK ? resp->status : 0;
  const char *cls = st >= 100 && st < 600 ? classes[st / 100] : "error";
  brw_metrics_inc(api->m, BRW_M_API_REQUESTS, cls, 1);
  brw_metrics_observe(api->m, BRW_M_API_REQUEST_DURATION, NULL, resp->total_s);
}

static void count_rejected_accounts(brw_api_t *api) {
  if (!api->m)
    return;
  int n = 0;
  for (int i = 0; i < api->naccounts; i++)
    n += api->accounts[i].failed;
  brw_metrics_set(api->m, BRW_M_ACCOUNTS_REJECTED, NULL, n);
}

static void on_backoff_timer(uv_timer_t *t) {
  account_pump(t->data);
}

static void on_rl_timer(uv_timer_t *t) {
  account_pump(t->data);
}

/* Runs every pump that was asked for. The handle is stopped first, so that
 * a pump that asks again (its batch was full, or a callback queued a fetch)
 * runs in the next loop iteration, never twice in this one. */
static void on_idle(uv_idle_t *h) {
  brw_api_t *api = h->data;
  uv_idle_stop(h);
  for (int i = 0; i < api->naccounts; i++)
    if (api->accounts[i].pump_due)
      account_pump(&api->accounts[i]);
}

/* Asks for a pump of the account on this loop iteration, off the caller's
 * stack. An idle handle, not a 0 ms timer: on libuv < 1.45 a timer started
 * at 0 ms from a timer callback runs again in the same timer phase, so a
 * chain of pumps (a transfer that fails at once frees a slot, which pumps,
 * which starts a transfer that fails at once, ...) would never reach the
 * poll phase. An active idle handle makes the poll phase non-blocking and
 * runs once per iteration. */
static void pump_soon(account_t *a) {
  a->pump_due = 1;
  if (!uv_is_active((uv_handle_t *)&a->api->idle))
    uv_idle_start(&a->api->idle, on_idle);
}

/* Requests are handed to curl only while fewer than it can send at once
 * are under way: curl would queue the rest itself, but its queue costs time
 * per queued transfer on every removal (quadratic under a burst,
 * docs/PERFORMANCE.md), holds memory per transfer, and starts each
 * transfer's timeout while it waits. The rest wait in the accounts' queues.
 * What curl can send at once: one request per connection over HTTP/1.1,
 * http.max_streams per connection once the API answers over HTTP/2 (until
 * then, and when a server stops offering it, HTTP/1.1 is assumed). */
static int have_capacity(const brw_api_t *api) {
  long cap = api->cfg->http_max_connections;
  if (api->http_version >= 20 && api->cfg->http_max_streams > 1)
    cap *= api->cfg->http_max_streams;
  return api->transfers < cap;
}

/* A transfer finished or was canceled: every account with work waiting
 * gets a pump (deferred, so that no callback runs inside another). */
static void transfer_done(brw_api_t *api) {
  if (api->transfers > 0)
    api->transfers--;
  for (int i = 0; i < api->naccounts; i++) {
    account_t *o = &api->accounts[i];
    if ((!brw_list_empty(&o->ready) || o->auth_wanted != AUTH_NONE) &&
        !uv_is_active((uv_handle_t *)&o->rl_timer))
      pump_soon(o);
  }
}

int brw_api_new(uv_loop_t *loop, brw_http_t *http, const brw_config_t *cfg,
                brw_api_t **out) {
  brw_api_t *api = calloc(1, sizeof(*api));
  if (!api)
    return BRW_ENOMEM;
  api->loop = loop;
  api->http = http;
  api->cfg = cfg;
  api->naccounts = (int)cfg->naccounts;
  /* The variables curl reads for api.url's scheme (only the lower-case
   * http_proxy for http://, as curl does). */
  static const char *const proxy_env[] = {"all_proxy", "ALL_PROXY",
                                          "https_proxy", "HTTPS_PROXY",
                                          "http_proxy"};
  int plain = cfg->api_url && !strncasecmp(cfg->api_url, "http://", 7);
  api->via_proxy = cfg->http_proxy != NULL;
  for (size_t i = 0; i < sizeof(proxy_env) / sizeof(proxy_env[0]); i++) {
    const char *v = getenv(proxy_env[i]);
    int applies = i < 2 || (plain ? i == 4 : i < 4);
    if (applies && v && *v)
      api->via_proxy = 1;
  }
  api->accounts =
      calloc(cfg->naccounts ? cfg->naccounts : 1, sizeof(account_t));
  if (!api->accounts) {
    free(api);
    return BRW_ENOMEM;
  }
  for (int i = 0; i < api->naccounts; i++) {
    account_t *a = &api->accounts[i];
    a->api = api;
    a->index = i;
    a->name = cfg->accounts[i].name;
    a->key = cfg->accounts[i].key;
    brw_list_init(&a->waiters);
    brw_list_init(&a->ready);
    brw_list_init(&a->inflight);
    if (brw_ratelimit_init(&a->rl, cfg->api_rate_limit) != 0) {
      for (int j = 0; j < i; j++)
        brw_ratelimit_free(&api->accounts[j].rl);
      free(api->accounts);
      free(api);
      return BRW_ENOMEM;
    }
    brw_log_pin_secret(a->key); /* for the life of the process */
  }
  /* The handles are initialised last, once nothing can fail, so that a
   * failed construction leaves no handle to close. */
  uv_idle_init(loop, &api->idle);
  api->idle.data = api;
  for (int i = 0; i < api->naccounts; i++) {
    account_t *a = &api->accounts[i];
    uv_timer_init(loop, &a->backoff_timer);
    a->backoff_timer.data = a;
    uv_timer_init(loop, &a->rl_timer);
    a->rl_timer.data = a;
  }
  brw_rng_seed(&api->rng, (uint64_t)brw_now_ms());
  *out = api;
  return 0;
}

/* Marks a fetch's request out (1) or back (0), for brw_api_queued. */
static void fetch_out(brw_fetch_t *f, int out) {
  if (f->out == out)
    return;
  f->out = out;
  if (!f->path) {
    if (out)
      f->api->details_out++;
    else
      f->api->details_out--;
  }
}

/* The fetch is over (its callback is about to run) or canceled: it no
 * longer counts in brw_api_queued. */
static void fetch_uncount(brw_fetch_t *f) {
  fetch_out(f, 0);
  if (f->counted) {
    f->counted = 0;
    f->api->details--;
  }
}

static void fetch_free(brw_fetch_t *f) {
  fetch_uncount(f);
  brw_list_remove(&f->node);
  free(f->traceparent);
  free(f->tracestate);
  free(f->path);
  free(f);
}

/* Counts one closed handle; the last one frees the client. */
static void handle_closed(brw_api_t *api) {
  if (--api->pending_closes > 0)
    return;
  void (*cb)(void *) = api->close_cb;
  void *arg = api->close_arg;
  for (int i = 0; i < api->naccounts; i++) {
    brw_secret_free(api->accounts[i].bearer);
    brw_ratelimit_free(&api->accounts[i].rl);
  }
  free(api->accounts);
  free(api);
  if (cb)
    cb(arg);
}

static void on_account_closed(uv_handle_t *h) {
  handle_closed(((account_t *)h->data)->api);
}

static void on_idle_closed(uv_handle_t *h) {
  handle_closed(h->data);
}

static void free_queue(brw_list_t *q) {
  while (!brw_list_empty(q)) {
    brw_fetch_t *f = brw_list_entry(q->next, brw_fetch_t, node);
    if (f->req)
      brw_http_cancel(f->req);
    fetch_free(f);
  }
}

void brw_api_close(brw_api_t *api, void (*cb)(void *arg), void *arg) {
  api->close_cb = cb;
  api->close_arg = arg;
  api->pending_closes = 2 * api->naccounts + 1;
  for (int i = 0; i < api->naccounts; i++) {
    account_t *a = &api->accounts[i];
    if (a->auth_req)
      brw_http_cancel(a->auth_req);
    a->auth_req = NULL;
    free_queue(&a->waiters);
    free_queue(&a->ready);
    free_queue(&a->inflight);
    uv_close((uv_handle_t *)&a->backoff_timer, on_account_closed);
    uv_close((uv_handle_t *)&a->rl_timer, on_account_closed);
  }
  uv_close((uv_handle_t *)&api->idle, on_idle_closed);
}

/* Completes a fetch: runs its callback, then frees it. */
static void fetch_finish(brw_fetch_t *f, brw_fetch_result_t *res) {
  brw_list_remove(&f->node);
  f->req = NULL;
  fetch_uncount(f);
  f->cb(res, f->arg);
  brw_detail_clear(&res->detail);
  fetch_free(f);
}

static void fetch_fail(brw_fetch_t *f, brw_fetch_status_t st, const char *cls,
                       long http_status, int64_t retry_after,
                       const char *message) {
  brw_fetch_result_t res;
  memset(&res, 0, sizeof(res));
  res.status = st;
  res.error_class = cls;
  res.http_status = http_status;
  res.retry_after_ms = retry_after;
  brw_log_redact_into(message, res.message, sizeof(res.message));
  if (st == BRW_FETCH_RETRY)
    f->api->stats.retries++;
  if (f->api->m && !f->path) /* a list page's failures: src/app_sweep.c */
    brw_metrics_inc(f->api->m, BRW_M_API_RETRIES, cls, 1);
  fetch_finish(f, &res);
}

/* The bearer may still be sent (it has not expired). */
static int bearer_usable(const account_t *a) {
  return a->bearer && brw_now_ms() < a->bearer_expires_ms;
}

/* The bearer is usable and not yet due for renewal. */
static int bearer_fresh(const account_t *a) {
  return a->bearer && brw_now_ms() < a->bearer_renew_ms;
}

static void drop_bearer(account_t *a) {
  brw_secret_free(a->bearer);
  a->bearer = NULL;
}

/* A retry class's name (brw/vocab.h), static. */
#define CLS(c) (brw_retry_class_names[BRW_RETRY_##c])

static const char *transport_class(brw_http_outcome_t o) {
  switch (o) {
  case BRW_HTTP_CONNECT:
    return CLS(CONNECT);
  case BRW_HTTP_DNS:
    return CLS(DNS);
  case BRW_HTTP_TLS:
    return CLS(TLS);
  case BRW_HTTP_TIMEOUT:
    return CLS(TIMEOUT);
  case BRW_HTTP_TOO_LARGE:
    return CLS(TOO_LARGE);
  default:
    return CLS(TRANSPORT);
  }
}

/* Fails every fetch that waits for a bearer with the same result. Those
 * that wait now are failed, not those that a callback queues meanwhile (a
 * caller that fetches again at once would otherwise loop here for ever). */
static void fail_waiters(account_t *a, brw_fetch_status_t st, const char *cls,
                         long http_status, int64_t retry_after,
                         const char *msg) {
  brw_list_t now;
  brw_list_init(&now);
  brw_list_splice_tail(&now, &a->waiters);
  while (!brw_list_empty(&now)) {
    brw_fetch_t *f = brw_list_entry(now.next, brw_fetch_t, node);
    fetch_fail(f, st, cls, http_status, retry_after, msg);
  }
}

/* Stores a new bearer (owned from now on) and schedules its renewal:
 * BEARER_MARGIN_MS before `exp`, or at half the lifetime when the lifetime
 * is short. `jwt` holds what brw_bearer_read read from it; a token without
 * exp is assumed to live BEARER_DEFAULT_TTL_MS. */
static void set_bearer(account_t *a, char *bearer, const brw_jwt_times_t *jwt,
                       int64_t now) {
  brw_log_add_secret(bearer);
  drop_bearer(a);
  a->bearer = bearer;
  a->bearer_gen++;
  a->bearer_expires_ms =
      jwt->has_exp ? jwt->exp_s * 1000 : now + BEARER_DEFAULT_TTL_MS;
  int64_t life = a->bearer_expires_ms - now;
  a->bearer_renew_ms = life > 2 * BEARER_MARGIN_MS
                           ? a->bearer_expires_ms - BEARER_MARGIN_MS
                           : now + (life > 0 ? life / 2 : 0);
}

/* Moves every waiter to the ready queue (a bearer is there now). */
static void release_waiters(account_t *a) {
  brw_list_splice_tail(&a->ready, &a->waiters);
}

/* The readiness text of a login that answered 200 without a usable bearer
 * (static: brw_api_account_usable hands it out). */
static const char *no_bearer_reason(brw_bearer_status_t st) {
  switch (st) {
  case BRW_BEARER_EXPIRED:
    return "logins answer a bearer whose JWT exp has passed (check the "
           "clock of this host and of the issuer)";
  case BRW_BEARER_EXPIRES_SOON:
    return "logins answer a bearer that expires within a second";
  case BRW_BEARER_BAD_JWT:
    return "logins answer a malformed JWT (its exp cannot be read)";
  case BRW_BEARER_BAD_CHAR:
    return "logins answer a bearer with characters that cannot go into an "
           "HTTP header";
  default:
    return "logins answer 200 without a usable bearer";
  }
}

/* A login or refresh worked: the account's failure state ends. */
static void auth_succeeded(account_t *a) {
  brw_api_t *api = a->api;
  if (a->failed)
    brw_logj(BRW_LOG_INFO, json_pack("{ss}", "account", a->name),
             "account's key accepted again");
  else if (a->fail_attempt > 0)
    brw_logj(BRW_LOG_INFO,
             json_pack("{ss sI}", "account", a->name, "failed_logins",
                       (json_int_t)a->fail_attempt),
             "login works again");
  a->failed = 0;
  a->fail_attempt = 0;
  a->last_fail = LOGIN_OK;
  a->fail_reason = NULL;
  a->logged_reason = NULL;
  count_rejected_accounts(api);
}

/* A login failed: counts it, logs it (rate-limited per account) and backs
 * the account off (retry.min .. retry.max, at least Retry-After up to
 * retry.max): no login is sent before backoff_timer fires, and the timer
 * sends one even when no fetch waits, so that the account's state (and
 * readiness) recovers on its own. `label` is the reason's metric label,
 * `why` its readiness text (static), `msg` the log line. */
static void login_failed(account_t *a, login_fail_t kind, const char *label,
                         const char *why, long http_status,
                         int64_t retry_after_ms, const char *msg,
                         const char *apimsg) {
  brw_api_t *api = a->api;
  const brw_config_t *cfg = api->cfg;
  api->stats.login_failures++;
  if (api->m) {
    brw_metrics_inc(api->m, BRW_M_API_LOGIN_FAILURES, NULL, 1);
    brw_metrics_inc(api->m, BRW_M_API_AUTH_FAILURES, label, 1);
  }
  a->last_fail = kind;
  a->fail_reason = why;
  uint64_t d = brw_backoff_ms(cfg->retry_min_ms, cfg->retry_max_ms,
                              a->fail_attempt++, cfg->poll_jitter, &api->rng);
  if (retry_after_ms > 0) {
    uint64_t ra = (uint64_t)retry_after_ms;
    if (ra > cfg->retry_max_ms)
      ra = cfg->retry_max_ms;
    if (ra > d)
      d = ra;
  }
  if (d == 0)
    d = 1; /* never due at once: see pump_soon */
  uint64_t held = 0;
  int changed = !a->logged_reason || strcmp(a->logged_reason, label) != 0;
  int ok = brw_log_limit(&a->fail_log, uv_now(api->loop),
                         LOGIN_LOG_INTERVAL_MS, &held);
  if (!ok && changed)
    a->fail_log.suppressed--; /* a new reason is written after all */
  if (ok || changed) {
    a->logged_reason = label;
    json_t *fields = json_pack(
        "{ss ss sI sI sI sI}", "account", a->name, "reason", label, "status",
        (json_int_t)http_status, "attempt", (json_int_t)a->fail_attempt,
        "backoff_ms", (json_int_t)d, "suppressed", (json_int_t)held);
    if (fields && apimsg && *apimsg)
      json_object_set_new(fields, "error", json_string(apimsg));
    if (api->m && held)
      brw_metrics_inc(api->m, BRW_M_LOG_SUPPRESSED, NULL, (double)held);
    /* A rejected key and an unusable bearer make the account not ready:
     * errors. A transient failure is a warning until it repeats. */
    brw_logj(kind == LOGIN_TRANSIENT && a->fail_attempt < 2 ? BRW_LOG_WARN
                                                            : BRW_LOG_ERROR,
             fields, "%s", msg);
  }
  uv_timer_start(&a->backoff_timer, on_backoff_timer, d, 0);
}

static void on_auth(const brw_http_resp_t *resp, void *arg) {
  account_t *a = arg;
  brw_api_t *api = a->api;
  auth_kind_t kind = a->auth_kind;
  const char *what = kind == AUTH_REFRESH ? "refresh" : "login";
  a->auth_req = NULL;
  a->auth_kind = AUTH_NONE;
  transfer_done(api);
  count_response(api, resp);
  char msg[256];
  char apimsg[128] = "";
  const char *label; /* the failure's reason label */
  const char *cls;   /* the waiters' error class */

  if (resp->outcome == BRW_HTTP_OK && resp->status == 200) {
    brw_bearer_t b;
    int64_t now = brw_now_ms();
    int rc = brw_bearer_read(resp->body, resp->len, now, BEARER_MIN_LIFE_MS,
                             &b);
    if (rc == 0) {
      set_bearer(a, b.token, &b.jwt, now); /* takes the token */
      b.token = NULL;
      auth_succeeded(a);
      release_waiters(a);
      account_pump(a);
      return;
    }
    if (rc == BRW_ENOMEM) {
      b.status = BRW_BEARER_NOT_JSON;
      snprintf(msg, sizeof(msg), "%s: out of memory reading the answer", what);
      label = "local";
    } else {
      char why[200];
      brw_bearer_describe(&b, now, why, sizeof(why));
      snprintf(msg, sizeof(msg),
               "%s: HTTP 200 but the answer has no usable bearer: %s", what,
               why);
      label = brw_bearer_status_name(b.status);
    }
    brw_bearer_status_t st = b.status;
    brw_bearer_clear(&b);
    if (kind == AUTH_LOGIN) {
      /* The key works, the bearer does not: the account backs off as a
       * whole; its waiting fetches fail with the reason (which their
       * campaigns keep for the DLQ record at the deadline), and those that
       * come meanwhile wait for the next attempt. */
      login_failed(a, LOGIN_NO_BEARER, label, no_bearer_reason(st), 200,
                   -1, msg, NULL);
      fail_waiters(a, BRW_FETCH_RETRY, CLS(AUTH), 200, -1, msg);
      account_pump(a);
      return;
    }
  } else if (resp->outcome != BRW_HTTP_OK) {
    snprintf(msg, sizeof(msg), "%s: %s", what, resp->error);
    label = resp->outcome == BRW_HTTP_TLS ? "tls" : "transport";
  } else {
    brw_api_error_message(resp->body, resp->len, apimsg, sizeof(apimsg));
    snprintf(msg, sizeof(msg), "%s: HTTP %ld %s", what, resp->status, apimsg);
    label = resp->status == 401 || resp->status == 403 ? "rejected"
            : resp->status == 429                      ? "429"
            : resp->status >= 500                      ? "5xx"
                                                       : "4xx";
  }

  if (kind == AUTH_REFRESH) {
    /* A refresh that did not work falls back to a login. A refused bearer
     * is dropped; after a transient failure (or an unusable new bearer) the
     * current one stays in use until it expires. */
    api->stats.refresh_failures++;
    if (api->m)
      brw_metrics_inc(api->m, BRW_M_API_AUTH_FAILURES, label, 1);
    brw_logj(BRW_LOG_INFO,
             json_pack("{ss sI ss}", "account", a->name, "status",
                       (json_int_t)resp->status, "error", msg),
             "bearer refresh failed; logging in");
    if (resp->outcome == BRW_HTTP_OK &&
        (resp->status == 401 || resp->status == 403))
      drop_bearer(a);
    a->auth_wanted = AUTH_LOGIN;
    account_pump(a);
    return;
  }

  if (resp->outcome == BRW_HTTP_OK &&
      (resp->status == 401 || resp->status == 403)) {
    a->failed = 1;
    count_rejected_accounts(api);
    /* The account backs off as a whole: its fetches wait behind the next
     * login attempt instead of each sending one, and the tracker's
     * deadline ends campaigns that wait too long (DLQ auth_failed). */
    login_failed(a, LOGIN_REJECTED, label,
                 "the API key was rejected at the last login", resp->status,
                 -1, "login rejected: the account's API key is not accepted",
                 apimsg);
    return;
  }
  /* Transport, 429, 5xx, another 4xx: the waiting fetches fail (retried by
   * their campaigns), and the account's next login waits for its backoff. */
  if (resp->outcome != BRW_HTTP_OK)
    cls = transport_class(resp->outcome);
  else
    cls = resp->status == 429   ? CLS(429)
          : resp->status >= 500 ? CLS(5XX)
                                : CLS(LOGIN);
  login_failed(a, LOGIN_TRANSIENT, label,
               resp->outcome == BRW_HTTP_TLS
                   ? "logins fail: TLS with the API fails (its certificate "
                     "is not trusted or does not name the host; the log "
                     "says which): check http.ca_file and api.url"
               : resp->outcome != BRW_HTTP_OK && api->via_proxy
                   ? "logins fail: the API cannot be reached through the "
                     "proxy (http.proxy, or HTTPS_PROXY/ALL_PROXY unless "
                     "NO_PROXY exempts the API): check that it is up and "
                     "allows CONNECT to the API's host and port"
               : resp->outcome != BRW_HTTP_OK
                   ? "logins fail: the API cannot be reached"
                   : "logins fail: the API answers them with an error",
               resp->status, resp->retry_after_ms, msg, apimsg);
  fail_waiters(a, BRW_FETCH_RETRY, cls, resp->status, resp->retry_after_ms,
               msg);
  account_pump(a);
}

/* Sends the login or refresh request. Returns 0, or BRW_EHTTP when the
 * request could not be started. */
static int send_auth(account_t *a, auth_kind_t kind) {
  brw_api_t *api = a->api;
  char url[1024];
  char *text = NULL;
  const char *bearer = NULL;
  if (kind == AUTH_LOGIN) {
    json_t *body = json_pack("{ss}", "api_key", a->key);
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
      return BRW_ENOMEM;
    snprintf(url, sizeof(url), "%s/api/auth/login", api->cfg->api_url);
    api->stats.logins++;
    if (api->m)
      brw_metrics_inc(api->m, BRW_M_API_LOGINS, NULL, 1);
  } else {
    bearer = a->bearer;
    snprintf(url, sizeof(url), "%s/api/auth/refresh", api->cfg->api_url);
    api->stats.refreshes++;
    if (api->m)
      brw_metrics_inc(api->m, BRW_M_API_REFRESHES, NULL, 1);
  }
  api->stats.requests++;
  brw_metrics_inc(api->m, BRW_M_API_CALLS,
                  kind == AUTH_LOGIN ? "login" : "refresh", 1);
  a->auth_req = brw_http_request(api->http, "POST", url, bearer, NULL, NULL,
                                 text, on_auth, a);
  if (text) {
    /* The body holds the key: wipe it before it goes back to malloc. */
    brw_secret_free(text);
  }
  if (!a->auth_req)
    return BRW_EHTTP;
  api->transfers++;
  a->auth_kind = kind;
  return 0;
}

static void on_detail(const brw_http_resp_t *resp, void *arg);

static int send_detail(brw_fetch_t *f) {
  brw_api_t *api = f->api;
  char url[1024];
  if (f->path)
    snprintf(url, sizeof(url), "%s%s", api->cfg->api_url, f->path);
  else
    snprintf(url, sizeof(url), "%s/api/campaigns/%llu/detail",
             api->cfg->api_url, (unsigned long long)f->id);
  api->stats.requests++;
  brw_metrics_inc(api->m, BRW_M_API_CALLS, f->path ? "list" : "detail", 1);
  f->bearer_gen = f->acct->bearer_gen;
  f->req = brw_http_request(api->http, "GET", url, f->acct->bearer,
                            f->traceparent, f->tracestate, NULL, on_detail, f);
  if (!f->req)
    return BRW_EHTTP;
  api->transfers++;
  fetch_out(f, 1);
  brw_list_insert_tail(&f->acct->inflight, &f->node);
  return 0;
}

/* Takes a rate-limit slot, or arms the timer for the next one. The clock is
 * read afresh (uv_now is cached per loop iteration and may lag by the length
 * of one), so that slots never come back early. */
static int take_slot(account_t *a) {
  uint64_t wait = brw_ratelimit_take(&a->rl, uv_hrtime() / 1000000);
  if (wait == 0)
    return 1;
  if (!uv_is_active((uv_handle_t *)&a->rl_timer))
    uv_timer_start(&a->rl_timer, on_rl_timer, wait, 0);
  return 0;
}

/* Moves the account forward: decides whether it needs a login or a
 * refresh, then starts what the rate limit allows, authentication first.
 * Called after every change of the account's state; never runs a fetch
 * callback, except to fail fetches when a request cannot be started.
 *
 * Every queue has a wake-up: `waiters` the answer of the login in flight,
 * or backoff_timer, or the login this pump sends (it is wanted whenever a
 * fetch waits and no usable bearer is held); `ready` the rate-limit timer
 * (take_slot), transfer_done (capacity) or pump_soon (a full batch). The
 * order matters: fetches whose bearer expired go back to `waiters` BEFORE
 * the login decision, which must see them (a login that answered an
 * already expired bearer left them stranded once). */
static void account_pump(account_t *a) {
  brw_api_t *api = a->api;
  int backoff = uv_is_active((uv_handle_t *)&a->backoff_timer);
  a->pump_due = 0;
  if (!bearer_usable(a)) {
    /* The bearer expired while fetches were ready: they wait for the next
     * one, ahead of those that were already waiting. */
    brw_list_splice_tail(&a->ready, &a->waiters);
    brw_list_splice_tail(&a->waiters, &a->ready);
  }
  if (!backoff && !a->auth_req && a->auth_wanted == AUTH_NONE) {
    /* After a failed login the account logs in again at its backoff even
     * when nothing waits, so that its state recovers by itself. */
    if (!bearer_usable(a) &&
        (!brw_list_empty(&a->waiters) || a->fail_attempt > 0))
      a->auth_wanted = AUTH_LOGIN;
    else if (bearer_usable(a) && !bearer_fresh(a))
      a->auth_wanted = AUTH_REFRESH;
  }
  if (!backoff && a->auth_wanted != AUTH_NONE && !a->auth_req) {
    if (a->auth_wanted == AUTH_REFRESH && !bearer_usable(a))
      a->auth_wanted = AUTH_LOGIN;
    if (!have_capacity(api))
      return; /* transfer_done pumps again */
    if (!take_slot(a))
      return;
    auth_kind_t kind = a->auth_wanted;
    a->auth_wanted = AUTH_NONE;
    if (send_auth(a, kind) != 0) {
      const char *m = kind == AUTH_LOGIN ? "cannot start the login request"
                                         : "cannot start the refresh request";
      login_failed(a, LOGIN_TRANSIENT, "local",
                   "logins fail: the request cannot be started", 0, -1, m,
                   NULL);
      fail_waiters(a, BRW_FETCH_RETRY, CLS(LOCAL), 0, -1, m);
    }
  }
  int started = 0;
  while (!brw_list_empty(&a->ready)) {
    if (!have_capacity(api))
      return; /* transfer_done pumps again */
    if (started++ == PUMP_BATCH) {
      pump_soon(a);
      return;
    }
    if (!take_slot(a))
      return;
    brw_fetch_t *f = brw_list_entry(a->ready.next, brw_fetch_t, node);
    brw_list_remove(&f->node);
    if (send_detail(f) != 0)
      fetch_fail(f, BRW_FETCH_RETRY, CLS(LOCAL), 0, -1,
                 "cannot start the request");
  }
}

static void on_detail(const brw_http_resp_t *resp, void *arg) {
  brw_fetch_t *f = arg;
  account_t *a = f->acct;
  f->req = NULL;
  fetch_out(f, 0);
  brw_list_remove(&f->node); /* out of inflight */
  transfer_done(f->api);
  count_response(f->api, resp);
  if (resp->outcome != BRW_HTTP_OK) {
    fetch_fail(f, BRW_FETCH_RETRY, transport_class(resp->outcome), 0, -1,
               resp->error);
    return;
  }
  long st = resp->status;
  char m[256];
  if (st == 200) {
    brw_fetch_result_t res;
    memset(&res, 0, sizeof(res));
    char err[200];
    /* A list page is the sweeper's to parse (brw_campaign_list_parse). */
    if (!f->path && brw_detail_summary(resp->body, resp->len,
                           f->api->cfg->api_tz, &res.detail, err,
                           sizeof(err)) != 0) {
      snprintf(m, sizeof(m), "bad response: %s", err);
      fetch_fail(f, BRW_FETCH_RETRY, CLS(BAD_BODY), st, -1, m);
      return;
    }
    if (!f->path && res.detail.id != f->id) {
      snprintf(m, sizeof(m), "bad response: detail of campaign %llu",
               (unsigned long long)res.detail.id);
      brw_detail_clear(&res.detail);
      fetch_fail(f, BRW_FETCH_RETRY, CLS(BAD_BODY), st, -1, m);
      return;
    }
    res.status = BRW_FETCH_OK;
    res.body = resp->body;
    res.body_len = resp->len;
    res.http_status = 200;
    res.retry_after_ms = -1;
    res.error_class = "ok";
    fetch_finish(f, &res);
    return;
  }
  char apimsg[128];
  brw_api_error_message(resp->body, resp->len, apimsg, sizeof(apimsg));
  snprintf(m, sizeof(m), "HTTP %ld %s", st, apimsg);
  if (st == 401) {
    f->api->stats.unauthorized++;
    if (!f->relogged) {
      /* The bearer expired early or was revoked: log in once more and
       * retry this request behind the login. A bearer renewed meanwhile
       * is kept: only the one this request used is dropped. */
      f->relogged = 1;
      if (f->bearer_gen == a->bearer_gen) {
        drop_bearer(a);
        if (!a->auth_req)
          a->auth_wanted = AUTH_LOGIN;
      }
      brw_list_insert_tail(a->bearer ? &a->ready : &a->waiters, &f->node);
      account_pump(a);
      return;
    }
    fetch_fail(f, BRW_FETCH_RETRY, CLS(401), st, -1, m);
    return;
  }
  if (st == 404) {
    fetch_fail(f, BRW_FETCH_NOT_FOUND, CLS(404), st, -1, m);
    return;
  }
  if (st == 429 || st == 408) {
    fetch_fail(f, BRW_FETCH_RETRY, CLS(429), st, resp->retry_after_ms, m);
    return;
  }
  if (st >= 500 || st < 200) {
    fetch_fail(f, BRW_FETCH_RETRY, CLS(5XX), st, resp->retry_after_ms, m);
    return;
  }
  fetch_fail(f, BRW_FETCH_REJECTED, CLS(4XX), st, -1, m);
}

static brw_fetch_t *fetch_start(brw_api_t *api, int account,
                                uint64_t campaign_id, const char *path,
                                const char *traceparent, const char *tracestate,
                                brw_fetch_cb cb, void *arg);

brw_fetch_t *brw_api_fetch(brw_api_t *api, int account, uint64_t campaign_id,
                           const char *traceparent, const char *tracestate,
                           brw_fetch_cb cb, void *arg) {
  return fetch_start(api, account, campaign_id, NULL, traceparent, tracestate,
                     cb, arg);
}

brw_fetch_t *brw_api_list(brw_api_t *api, int account, const char *path,
                          brw_fetch_cb cb, void *arg) {
  if (!path || path[0] != '/')
    return NULL;
  return fetch_start(api, account, 0, path, NULL, NULL, cb, arg);
}

/* Queues a detail fetch (path NULL) or a list page, and starts it when a
 * bearer and a rate-limit slot allow. */
static brw_fetch_t *fetch_start(brw_api_t *api, int account,
                                uint64_t campaign_id, const char *path,
                                const char *traceparent, const char *tracestate,
                                brw_fetch_cb cb, void *arg) {
  if (account < 0 || account >= api->naccounts)
    return NULL;
  brw_fetch_t *f = calloc(1, sizeof(*f));
  if (!f)
    return NULL;
  f->api = api;
  f->acct = &api->accounts[account];
  f->id = campaign_id;
  f->traceparent = traceparent ? strdup(traceparent) : NULL;
  f->tracestate =
      traceparent && tracestate && tracestate[0] ? strdup(tracestate) : NULL;
  f->path = path ? strdup(path) : NULL;
  f->cb = cb;
  f->arg = arg;
  if (path && !f->path) {
    free(f->traceparent);
    free(f->tracestate);
    free(f);
    return NULL;
  }
  if (!path) {
    f->counted = 1;
    api->details++;
  }
  brw_list_init(&f->node);
  account_t *a = f->acct;
  /* A usable bearer is used even while its refresh is due; otherwise the
   * fetch waits for the account's login (or its backoff after a rejected
   * key). Fetches are queued and started by the pump, so the callback
   * never runs before this function returns. */
  brw_list_insert_tail(bearer_usable(a) ? &a->ready : &a->waiters, &f->node);
  if (brw_list_empty(&a->ready) || a->ready.next != &f->node ||
      a->auth_req || a->auth_wanted != AUTH_NONE || !have_capacity(api) ||
      uv_is_active((uv_handle_t *)&a->rl_timer) || a->pump_due ||
      !bearer_fresh(a)) {
    /* Something is queued ahead or due: let the pump decide, off this
     * call stack, so that a request that cannot start fails later. During
     * a backoff the pump only queues it; backoff_timer wakes it. */
    if (!uv_is_active((uv_handle_t *)&a->rl_timer))
      pump_soon(a);
    return f;
  }
  /* The common case: a fresh bearer and a free slot. */
  if (take_slot(a)) {
    brw_list_remove(&f->node);
    if (send_detail(f) != 0) {
      brw_list_insert_tail(&a->ready, &f->node);
      uv_timer_start(&a->rl_timer, on_rl_timer, api->cfg->retry_min_ms, 0);
    }
  }
  return f;
}

void brw_api_cancel(brw_fetch_t *f) {
  if (!f)
    return;
  if (f->req) {
    brw_http_cancel(f->req);
    f->req = NULL;
    fetch_out(f, 0);
    transfer_done(f->api);
  }
  fetch_free(f);
}

size_t brw_api_queued(const brw_api_t *api) {
  return api->details - api->details_out;
}

int brw_api_account_failed(const brw_api_t *api, int account) {
  return account >= 0 && account < api->naccounts &&
         api->accounts[account].failed;
}

/* Readiness (SPEC §7): an account is usable while it holds a usable
 * bearer, or has none and its logins have not failed. A rejected key and a
 * login that answered an unusable bearer make it unusable at once (neither
 * heals by retrying soon); transport and server failures only from the
 * second in a row, so that one blip does not flap readiness. */
int brw_api_account_usable(const brw_api_t *api, int account,
                           const char **reason) {
  const char *why = NULL;
  if (account < 0 || account >= api->naccounts) {
    why = "no such account";
  } else {
    const account_t *a = &api->accounts[account];
    if (a->failed)
      why = "the API key was rejected at the last login";
    else if (!bearer_usable(a) && a->fail_attempt > 0 &&
             (a->last_fail == LOGIN_NO_BEARER || a->fail_attempt >= 2))
      why = a->fail_reason ? a->fail_reason : "logins fail";
  }
  if (reason)
    *reason = why;
  return why == NULL;
}

void brw_api_get_stats(const brw_api_t *api, brw_api_stats_t *out) {
  *out = api->stats;
}
