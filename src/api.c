#include "brw/api.h"
#include "brw/backoff.h"
#include "brw/error.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bearer is renewed this long before its `exp`, and assumed to live this
 * long when the JWT carries no `exp`. */
#define BEARER_MARGIN_MS 60000
#define BEARER_DEFAULT_TTL_MS (30 * 60000)

typedef struct {
  brw_api_t *api;
  int index;
  const char *name;
  const char *key;
  char *bearer;
  int64_t bearer_expires_ms;
  brw_http_req_t *login; /* in flight */
  brw_list_t waiters;    /* fetches waiting for a bearer */
  uv_timer_t timer;      /* login retry while the key is rejected */
  int failed;            /* key rejected at the last login */
  int64_t failed_until_ms;
  unsigned fail_attempt;
} account_t;

struct brw_api_s {
  brw_http_t *http;
  const brw_config_t *cfg;
  account_t *accounts;
  int naccounts;
  brw_rng_t rng;
  brw_api_stats_t stats;
  int pending_closes;
  void (*close_cb)(void *);
  void *close_arg;
};

struct brw_fetch_s {
  brw_list_t node; /* in the account's waiters while waiting */
  brw_api_t *api;
  account_t *acct;
  uint64_t id;
  char *traceparent;
  brw_http_req_t *req;
  int relogged; /* a 401 already caused one re-login */
  brw_fetch_cb cb;
  void *arg;
};

static void on_account_timer(uv_timer_t *t);

int brw_api_new(uv_loop_t *loop, brw_http_t *http, const brw_config_t *cfg,
                brw_api_t **out) {
  brw_api_t *api = calloc(1, sizeof(*api));
  if (!api)
    return BRW_ENOMEM;
  api->http = http;
  api->cfg = cfg;
  api->naccounts = (int)cfg->naccounts;
  api->accounts = calloc(cfg->naccounts ? cfg->naccounts : 1,
                         sizeof(account_t));
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
    uv_timer_init(loop, &a->timer);
    a->timer.data = a;
    brw_log_add_secret(a->key);
  }
  brw_rng_seed(&api->rng, (uint64_t)brw_now_ms());
  *out = api;
  return 0;
}

static void fetch_free(brw_fetch_t *f) {
  brw_list_remove(&f->node);
  free(f->traceparent);
  free(f);
}

static void on_account_closed(uv_handle_t *h) {
  account_t *a = h->data;
  brw_api_t *api = a->api;
  if (--api->pending_closes > 0)
    return;
  void (*cb)(void *) = api->close_cb;
  void *arg = api->close_arg;
  for (int i = 0; i < api->naccounts; i++)
    free(api->accounts[i].bearer);
  free(api->accounts);
  free(api);
  if (cb)
    cb(arg);
}

void brw_api_close(brw_api_t *api, void (*cb)(void *arg), void *arg) {
  api->close_cb = cb;
  api->close_arg = arg;
  api->pending_closes = api->naccounts;
  for (int i = 0; i < api->naccounts; i++) {
    account_t *a = &api->accounts[i];
    if (a->login)
      brw_http_cancel(a->login);
    a->login = NULL;
    brw_list_t *pos, *tmp;
    brw_list_foreach_safe(pos, tmp, &a->waiters) {
      fetch_free(brw_list_entry(pos, brw_fetch_t, node));
    }
    uv_timer_stop(&a->timer);
    uv_close((uv_handle_t *)&a->timer, on_account_closed);
  }
  if (api->naccounts == 0) {
    free(api->accounts);
    free(api);
    if (cb)
      cb(arg);
  }
}

/* Completes a fetch: runs its callback, then frees it. */
static void fetch_finish(brw_fetch_t *f, brw_fetch_result_t *res) {
  brw_list_remove(&f->node);
  f->req = NULL;
  f->cb(res, f->arg);
  brw_detail_clear(&res->detail);
  fetch_free(f);
}

static void fetch_fail(brw_fetch_t *f, brw_fetch_status_t st,
                       const char *cls, long http_status, int64_t retry_after,
                       const char *fmt, const char *detail) {
  brw_fetch_result_t res;
  memset(&res, 0, sizeof(res));
  res.status = st;
  res.error_class = cls;
  res.http_status = http_status;
  res.retry_after_ms = retry_after;
  snprintf(res.message, sizeof(res.message), fmt, detail ? detail : "");
  if (st == BRW_FETCH_RETRY)
    f->api->stats.retries++;
  fetch_finish(f, &res);
}

static void send_detail(brw_fetch_t *f);
static void start_login(account_t *a);

static int bearer_valid(const account_t *a) {
  return a->bearer && brw_now_ms() < a->bearer_expires_ms - BEARER_MARGIN_MS;
}

static void drop_bearer(account_t *a) {
  free(a->bearer);
  a->bearer = NULL;
}

static const char *transport_class(brw_http_outcome_t o) {
  switch (o) {
  case BRW_HTTP_CONNECT:
    return "connect";
  case BRW_HTTP_DNS:
    return "dns";
  case BRW_HTTP_TLS:
    return "tls";
  case BRW_HTTP_TIMEOUT:
    return "timeout";
  case BRW_HTTP_TOO_LARGE:
    return "too_large";
  default:
    return "transport";
  }
}

/* Fails every waiter of an account with the same result. */
static void fail_waiters(account_t *a, brw_fetch_status_t st, const char *cls,
                         long http_status, int64_t retry_after,
                         const char *msg) {
  while (!brw_list_empty(&a->waiters)) {
    brw_fetch_t *f = brw_list_entry(a->waiters.next, brw_fetch_t, node);
    fetch_fail(f, st, cls, http_status, retry_after, "%s", msg);
  }
}

static void on_login(const brw_http_resp_t *resp, void *arg) {
  account_t *a = arg;
  brw_api_t *api = a->api;
  a->login = NULL;
  char msg[200];
  if (resp->outcome != BRW_HTTP_OK) {
    snprintf(msg, sizeof(msg), "login: %s", resp->error);
    brw_logj(BRW_LOG_WARN, json_pack("{ss ss}", "account", a->name, "class",
                                     transport_class(resp->outcome)),
             "%s", msg);
    fail_waiters(a, BRW_FETCH_RETRY, transport_class(resp->outcome), 0, -1,
                 msg);
    return;
  }
  if (resp->status == 200) {
    char *bearer = brw_bearer_parse(resp->body, resp->len);
    if (bearer) {
      brw_log_add_secret(bearer);
      int64_t exp_s;
      int64_t now = brw_now_ms();
      drop_bearer(a);
      a->bearer = bearer;
      a->bearer_expires_ms = brw_jwt_exp(bearer, &exp_s) == 0
                                 ? exp_s * 1000
                                 : now + BEARER_DEFAULT_TTL_MS;
      /* A lifetime shorter than twice the margin would make every request
       * log in again; renew at half the lifetime instead. */
      if (a->bearer_expires_ms - now < 2 * BEARER_MARGIN_MS)
        a->bearer_expires_ms = now + BEARER_MARGIN_MS +
                               (a->bearer_expires_ms - now) / 2;
      if (a->failed)
        brw_logj(BRW_LOG_INFO, json_pack("{ss}", "account", a->name),
                 "account's key accepted again");
      a->failed = 0;
      a->fail_attempt = 0;
      while (!brw_list_empty(&a->waiters)) {
        brw_fetch_t *f = brw_list_entry(a->waiters.next, brw_fetch_t, node);
        brw_list_remove(&f->node);
        send_detail(f);
      }
      return;
    }
    fail_waiters(a, BRW_FETCH_RETRY, "bad_body", 200, -1,
                 "login: response without a bearer");
    return;
  }
  char apimsg[128];
  brw_api_error_message(resp->body, resp->len, apimsg, sizeof(apimsg));
  if (resp->status == 401 || resp->status == 403) {
    api->stats.login_failures++;
    a->failed = 1;
    uint64_t d = brw_backoff_ms(api->cfg->retry_min_ms, api->cfg->retry_max_ms,
                                a->fail_attempt++, api->cfg->poll_jitter,
                                &api->rng);
    a->failed_until_ms = brw_now_ms() + (int64_t)d;
    snprintf(msg, sizeof(msg), "login rejected (HTTP %ld): %s", resp->status,
             apimsg);
    brw_logj(BRW_LOG_ERROR,
             json_pack("{ss sI}", "account", a->name, "backoff_ms",
                       (json_int_t)d),
             "%s", msg);
    /* The account backs off as a whole: its fetches wait behind the next
     * login attempt instead of each sending one. The tracker's deadline
     * ends campaigns that wait too long (DLQ auth_failed). */
    uv_timer_start(&a->timer, on_account_timer, d, 0);
    return;
  }
  snprintf(msg, sizeof(msg), "login: HTTP %ld %s", resp->status, apimsg);
  brw_logj(BRW_LOG_WARN, json_pack("{ss}", "account", a->name), "%s", msg);
  fail_waiters(a, BRW_FETCH_RETRY,
               resp->status == 429 ? "429"
               : resp->status >= 500 ? "5xx"
                                     : "login",
               resp->status, resp->retry_after_ms, msg);
}

static void on_account_timer(uv_timer_t *t) {
  account_t *a = t->data;
  if (!brw_list_empty(&a->waiters))
    start_login(a);
}

/* Starts a login for the account unless one is in flight: every fetch that
 * needs a bearer waits behind the same login. */
static void start_login(account_t *a) {
  if (a->login || uv_is_active((uv_handle_t *)&a->timer))
    return;
  brw_api_t *api = a->api;
  json_t *body = json_pack("{ss}", "api_key", a->key);
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  char url[1024];
  snprintf(url, sizeof(url), "%s/api/auth/login", api->cfg->api_url);
  api->stats.logins++;
  api->stats.requests++;
  a->login = text ? brw_http_request(api->http, "POST", url, NULL, NULL, text,
                                     on_login, a)
                  : NULL;
  if (text) {
    memset(text, 0, strlen(text));
    free(text);
  }
  if (!a->login)
    uv_timer_start(&a->timer, on_account_timer, api->cfg->retry_min_ms, 0);
}

static void on_detail(const brw_http_resp_t *resp, void *arg) {
  brw_fetch_t *f = arg;
  account_t *a = f->acct;
  f->req = NULL;
  if (resp->outcome != BRW_HTTP_OK) {
    fetch_fail(f, BRW_FETCH_RETRY, transport_class(resp->outcome), 0, -1,
               "%s", resp->error);
    return;
  }
  long st = resp->status;
  if (st == 200) {
    brw_fetch_result_t res;
    memset(&res, 0, sizeof(res));
    char err[200];
    if (brw_detail_parse(resp->body, resp->len,
                         f->api->cfg->api_tz_offset_s, &res.detail, err,
                         sizeof(err)) != 0) {
      fetch_fail(f, BRW_FETCH_RETRY, "bad_body", st, -1, "bad response: %s",
                 err);
      return;
    }
    if (res.detail.id != f->id) {
      char m[96];
      snprintf(m, sizeof(m), "%llu", (unsigned long long)res.detail.id);
      brw_detail_clear(&res.detail);
      fetch_fail(f, BRW_FETCH_RETRY, "bad_body", st, -1,
                 "bad response: detail of campaign %s", m);
      return;
    }
    res.status = BRW_FETCH_OK;
    res.http_status = 200;
    res.retry_after_ms = -1;
    res.error_class = "ok";
    fetch_finish(f, &res);
    return;
  }
  char apimsg[128];
  brw_api_error_message(resp->body, resp->len, apimsg, sizeof(apimsg));
  char m[200];
  snprintf(m, sizeof(m), "HTTP %ld %s", st, apimsg);
  if (st == 401) {
    f->api->stats.unauthorized++;
    if (!f->relogged) {
      /* The bearer expired early or was revoked: log in once more and
       * retry this request behind the login. */
      f->relogged = 1;
      drop_bearer(a);
      brw_list_insert_tail(&a->waiters, &f->node);
      start_login(a);
      return;
    }
    fetch_fail(f, BRW_FETCH_RETRY, "401", st, -1, "%s", m);
    return;
  }
  if (st == 404) {
    fetch_fail(f, BRW_FETCH_NOT_FOUND, "404", st, -1, "%s", m);
    return;
  }
  if (st == 429 || st == 408) {
    fetch_fail(f, BRW_FETCH_RETRY, "429", st, resp->retry_after_ms, "%s", m);
    return;
  }
  if (st >= 500 || st < 200) {
    fetch_fail(f, BRW_FETCH_RETRY, "5xx", st, resp->retry_after_ms, "%s", m);
    return;
  }
  fetch_fail(f, BRW_FETCH_REJECTED, "4xx", st, -1, "%s", m);
}

static void send_detail(brw_fetch_t *f) {
  brw_api_t *api = f->api;
  char url[1024];
  snprintf(url, sizeof(url), "%s/api/campaigns/%llu/detail", api->cfg->api_url,
           (unsigned long long)f->id);
  api->stats.requests++;
  f->req = brw_http_request(api->http, "GET", url, f->acct->bearer,
                            f->traceparent, NULL, on_detail, f);
  if (!f->req) {
    /* Never complete synchronously: wait and try again behind the account
     * timer. */
    brw_list_insert_tail(&f->acct->waiters, &f->node);
    if (!uv_is_active((uv_handle_t *)&f->acct->timer))
      uv_timer_start(&f->acct->timer, on_account_timer, api->cfg->retry_min_ms,
                     0);
  }
}

brw_fetch_t *brw_api_fetch(brw_api_t *api, int account, uint64_t campaign_id,
                           const char *traceparent, brw_fetch_cb cb,
                           void *arg) {
  if (account < 0 || account >= api->naccounts)
    return NULL;
  brw_fetch_t *f = calloc(1, sizeof(*f));
  if (!f)
    return NULL;
  f->api = api;
  f->acct = &api->accounts[account];
  f->id = campaign_id;
  f->traceparent = traceparent ? strdup(traceparent) : NULL;
  f->cb = cb;
  f->arg = arg;
  brw_list_init(&f->node);
  account_t *a = f->acct;
  if (bearer_valid(a)) {
    send_detail(f);
    return f;
  }
  /* Waits for the account's login (or its backoff after a rejected key).
   * The callback never runs before this function returns. */
  brw_list_insert_tail(&a->waiters, &f->node);
  start_login(a);
  return f;
}

void brw_api_cancel(brw_fetch_t *f) {
  if (!f)
    return;
  if (f->req)
    brw_http_cancel(f->req);
  fetch_free(f);
}

int brw_api_account_failed(const brw_api_t *api, int account) {
  return account >= 0 && account < api->naccounts &&
         api->accounts[account].failed;
}

void brw_api_get_stats(const brw_api_t *api, brw_api_stats_t *out) {
  *out = api->stats;
}
