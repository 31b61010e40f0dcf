/* The BSG One API client (SPEC §2, §5): per-account authentication (login,
 * bearer reuse, refresh shortly before its `exp` with a fallback to login,
 * one re-login on a 401), a per-account rate limit, and campaign detail
 * fetches, over the loop's HTTP client.
 *
 * Every callback runs on the loop thread. Bearers and keys are registered
 * with the log redactor and never logged. */
#ifndef BRW_API_H
#define BRW_API_H

#include "brw/bsg.h"
#include "brw/config.h"
#include "brw/http.h"
#include "brw/metrics.h"

#include <stdint.h>

typedef struct brw_api_s brw_api_t;
typedef struct brw_fetch_s brw_fetch_t;

typedef enum {
  BRW_FETCH_OK = 0,      /* detail parsed */
  BRW_FETCH_NOT_FOUND,   /* 404 */
  BRW_FETCH_RETRY,       /* transient: transport, timeout, 5xx, 429, bad body */
  BRW_FETCH_AUTH_FAILED, /* the account's key is rejected */
  BRW_FETCH_REJECTED     /* another 4xx: the request itself is refused */
} brw_fetch_status_t;

typedef struct {
  brw_fetch_status_t status;
  /* When OK: the summary of the detail (brw_detail_summary: status, id,
   * times, totals, sums; `campaign` is NULL) and the body it came from,
   * borrowed for the callback's duration, from which brw_detail_parse
   * builds the report's object when one is needed. */
  brw_detail_t detail;
  const char *body;
  size_t body_len;
  long http_status;       /* 0 without a response */
  int64_t retry_after_ms; /* from Retry-After, -1 when absent */
  const char *error_class; /* static: a name of brw_retry_class_names
                              (brw/vocab.h); "ok" on success */
  char message[256];      /* one line for logs and DLQ error.message */
} brw_fetch_result_t;

/* Runs once per fetch that was started, unless canceled, and never before
 * brw_api_fetch returned. `res` is borrowed. */
typedef void (*brw_fetch_cb)(brw_fetch_result_t *res, void *arg);

/* Creates the client. `cfg` is borrowed and must outlive it (accounts,
 * api.url, api.timezone, retry.*). Returns 0 or BRW_ENOMEM. */
int brw_api_new(uv_loop_t *loop, brw_http_t *http, const brw_config_t *cfg,
                brw_api_t **out);
/* Counts requests, latencies, logins, refreshes and retries in `m`
 * (borrowed; NULL turns counting off). */
void brw_api_set_metrics(brw_api_t *api, brw_metrics_t *m);

/* Cancels every fetch and login (no callbacks), closes the account timers
 * and frees the client; cb runs after that. Call before brw_http_close. */
void brw_api_close(brw_api_t *api, void (*cb)(void *arg), void *arg);

/* Fetches GET {api.url}/api/campaigns/{id}/detail for an account (its index
 * in cfg->accounts). Logs in first when needed. Returns a handle valid until
 * the callback runs or brw_api_cancel; NULL on out of memory. */
brw_fetch_t *brw_api_fetch(brw_api_t *api, int account, uint64_t campaign_id,
                           const char *traceparent, const char *tracestate,
                           brw_fetch_cb cb, void *arg);
/* Fetches one page of the campaign list for an account:
 * GET {api.url}{path}, where `path` is "/api/campaigns?..." (src/app_sweep.c
 * builds the query). Same queue, login, rate limit and result classes as a
 * detail fetch (404 is BRW_FETCH_NOT_FOUND, another 4xx REJECTED); on 200
 * the result is OK with the body, unparsed (brw_campaign_list_parse), and
 * `detail` empty. Its failures are not counted in api_retries_total (the
 * sweeper counts them). Returns NULL on out of memory or a path that does
 * not start with '/'. */
brw_fetch_t *brw_api_list(brw_api_t *api, int account, const char *path,
                          brw_fetch_cb cb, void *arg);
/* Cancels a detail fetch or a list page (no callback). */
void brw_api_cancel(brw_fetch_t *f);

/* 1 when the account's key was rejected at its last login. */
int brw_api_account_failed(const brw_api_t *api, int account);
/* 1 when the account can serve fetches: it holds a usable bearer, or has
 * none and its logins have not failed (SPEC §7 readiness). 0 while its key
 * is rejected; after a login that answered 200 with an unusable bearer
 * (expired, malformed, ...); or after two other failed logins in a row
 * (transport, 429, 5xx, 4xx) — each until a login or refresh works. When 0,
 * *reason (may be NULL) is set to a static one-line text saying why (for
 * /readyz and the log; never a secret); when 1, to NULL. An account index
 * out of range is not usable. */
int brw_api_account_usable(const brw_api_t *api, int account,
                           const char **reason);

/* Detail fetches waiting in the accounts' queues: for a bearer (a login,
 * or its backoff after a failed one), for a rate-limit slot, or for a
 * connection (http.max_connections). Not those whose request is out, and
 * not list pages. O(1): counted as fetches come and go. What the
 * campaigns_due gauge shows (src/app_health.c). */
size_t brw_api_queued(const brw_api_t *api);

/* Counters for the closing summary. */
typedef struct {
  uint64_t requests;
  uint64_t logins;
  uint64_t login_failures;
  uint64_t refreshes;
  uint64_t refresh_failures;
  uint64_t unauthorized;
  uint64_t retries; /* transient failures */
} brw_api_stats_t;
void brw_api_get_stats(const brw_api_t *api, brw_api_stats_t *out);

#endif
