/* The simulator's HTTP server: libmicrohttpd with one thread per connection
 * (MHD_USE_THREAD_PER_CONNECTION), so that a slow response can simply sleep
 * without holding up other connections.
 *
 * Threads: on_request and on_completed run on the connection's own thread.
 * All mutable state (counters, the campaign map, the fault rates, the fault
 * sequence) is in sim_server_t behind `mu`; the lock is held only to read or
 * update that state, never while building JSON for the API, sleeping or
 * writing to the socket. The campaign model is pure and runs unlocked.
 *
 * Order of a request to /api/...: count it; draw its faults (one draw per
 * request, from --seed and the request's sequence number); sleep if slow;
 * answer a proxy-level fault (5xx, 429, HTML) without reaching the "app";
 * otherwise run the endpoint, then corrupt a 200 body if the draw said
 * malformed or truncated. /_sim/... requests are never faulted or counted.
 */
#include "sim.h"

#include "brw/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#define BODY_MAX (64 * 1024)
#define MAX_ACCOUNTS 256
#define MAX_ID 9007199254740992ull /* 2^53 */
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

typedef struct {
  char sub[24];
  int64_t sec;   /* the real second being counted */
  int64_t count; /* requests in that second */
  int64_t max;   /* the highest per-second count seen */
  int64_t total;
  int64_t list_total; /* authenticated list requests (not in the above) */
} account_t;

typedef struct {
  int64_t requests_total, logins, login_failures, refreshes, refresh_failures,
      detail_requests, unauthorized, list_requests, list_items;
  int64_t f_5xx, f_429, f_slow, f_malformed, f_truncated, f_html, f_not_found;
  int64_t f_list_5xx, f_list_429, f_list_malformed;
  int64_t codes[600];
} counters_t;

struct sim_server_s {
  sim_config_t conf;
  struct MHD_Daemon *daemon;
  pthread_mutex_t mu;
  /* Guarded by mu. */
  sim_map_t map;
  sim_faults_t faults;
  uint64_t seed;
  uint64_t fault_seq;
  uint64_t list_seq; /* the list's own fault sequence */
  uint64_t jti;
  counters_t n;
  account_t accounts[MAX_ACCOUNTS];
  int naccounts;
  /* Immutable after start. */
  uint64_t token_key;
  atomic_int stopping;
};

/* One HTTP request's upload, owned by MHD's per-request pointer and freed in
 * on_completed. */
typedef struct {
  char *body;
  size_t len;
  size_t cap;
  int too_large;
} req_t;

/* A response being built: `body` is malloc'ed and handed to MHD. */
typedef struct {
  unsigned code;
  char *body;
  size_t len;
  const char *ctype;
  char retry_after[48];
  int rate_limit_headers;
} reply_t;

typedef enum {
  ROUTE_OTHER = 0,
  ROUTE_LOGIN,
  ROUTE_REFRESH,
  ROUTE_DETAIL,
  ROUTE_BAD_ID, /* /api/campaigns/<not an id>/detail */
  ROUTE_LIST    /* /api/campaigns */
} route_t;

typedef enum {
  FAULT_NONE = 0,
  FAULT_5XX,
  FAULT_429,
  FAULT_MALFORMED,
  FAULT_TRUNCATED,
  FAULT_HTML
} fault_t;

/* ---- replies ------------------------------------------------------------- */

static const char *const CT_JSON = "application/json";
static const char *const CT_HTML = "text/html; charset=utf-8";

/* Takes `obj` (stolen). On ENOMEM the reply becomes an empty 500. */
static void reply_json(reply_t *r, unsigned code, json_t *obj) {
  r->code = code;
  r->ctype = CT_JSON;
  r->body = obj ? json_dumps(obj, JSON_FLAGS) : NULL;
  json_decref(obj);
  if (!r->body) {
    r->code = 500;
    r->body = strdup("{}");
  }
  r->len = r->body ? strlen(r->body) : 0;
}

static void reply_message(reply_t *r, unsigned code, const char *message) {
  reply_json(r, code, json_pack("{s:s}", "message", message));
}

static void reply_text(reply_t *r, unsigned code, const char *ctype,
                       const char *text) {
  r->code = code;
  r->ctype = ctype;
  r->body = strdup(text);
  r->len = r->body ? strlen(r->body) : 0;
}

/* ---- small parsers ------------------------------------------------------- */

/* A path segment of 1..16 digits with a value in 1..2^53. */
static int parse_id(const char *s, size_t n, uint64_t *id) {
  uint64_t v = 0;
  if (n == 0 || n > 16)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v == 0 || v > MAX_ID)
    return -1;
  *id = v;
  return 0;
}

/* Classifies /api/... paths. For campaign paths *id is set when valid. */
static route_t classify(const char *url, uint64_t *id) {
  static const char pfx[] = "/api/campaigns/";
  if (!strcmp(url, "/api/auth/login"))
    return ROUTE_LOGIN;
  if (!strcmp(url, "/api/auth/refresh"))
    return ROUTE_REFRESH;
  if (!strcmp(url, "/api/campaigns"))
    return ROUTE_LIST;
  if (!strncmp(url, pfx, sizeof(pfx) - 1)) {
    const char *seg = url + sizeof(pfx) - 1;
    const char *slash = strchr(seg, '/');
    if (!slash || strcmp(slash, "/detail") != 0)
      return ROUTE_OTHER;
    return parse_id(seg, (size_t)(slash - seg), id) == 0 ? ROUTE_DETAIL
                                                         : ROUTE_BAD_ID;
  }
  return ROUTE_OTHER;
}

/* Returns the token of an "Authorization: Bearer <token>" header, borrowed
 * from MHD, or NULL. */
static const char *bearer_of(struct MHD_Connection *conn) {
  const char *h =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
  if (!h || strncasecmp(h, "Bearer ", 7) != 0)
    return NULL;
  h += 7;
  while (*h == ' ')
    h++;
  return *h ? h : NULL;
}

/* ---- faults -------------------------------------------------------------- */

json_t *sim_faults_json(const sim_faults_t *f) {
  char zone[16];
  sim_tz_text(f->list_filter_tz_s, zone, sizeof(zone));
  return json_pack(
      "{s:f s:f s:I s:f s:I s:f s:f s:f s:I s:I s:s s:f s:f s:f s:s s:I s:s "
      "s:s}",
      "fail_5xx", f->fail_5xx, "fail_429", f->fail_429, "retry_after",
      (json_int_t)f->retry_after_s, "slow", f->slow, "slow_ms",
      (json_int_t)f->slow_ms, "malformed", f->malformed, "truncated",
      f->truncated, "html", f->html, "not_found_grace_ms",
      (json_int_t)f->not_found_grace_ms, "token_ttl_ms",
      (json_int_t)f->token_ttl_ms, "bearer_mode",
      sim_bearer_mode_name(f->bearer_mode), "list_fail_5xx", f->list_fail_5xx,
      "list_fail_429", f->list_fail_429, "list_malformed", f->list_malformed,
      "list_mode", sim_list_mode_name(f->list_mode), "list_lag_ms",
      (json_int_t)f->list_lag_ms, "list_filter_on",
      f->list_filter_start ? "start" : "created", "list_filter_zone", zone);
}

/* "created" or "start". Returns 0 or -1. */
static int filter_on_parse(const char *s, int *start) {
  if (s && !strcmp(s, "created"))
    *start = 0;
  else if (s && !strcmp(s, "start"))
    *start = 1;
  else
    return -1;
  return 0;
}

/* Reads a non-negative integer, or a duration text when `dur_unit_ms` is
 * non-zero (numbers are then in that unit). */
static int get_ms(const json_t *v, int64_t unit_ms, int allow_text,
                  int64_t *out) {
  if (json_is_integer(v) && json_integer_value(v) >= 0) {
    *out = (int64_t)json_integer_value(v) * unit_ms;
    return 0;
  }
  if (json_is_real(v) && json_real_value(v) >= 0 &&
      json_real_value(v) < 9e15 / (double)unit_ms) {
    *out = (int64_t)llround(json_real_value(v) * (double)unit_ms);
    return 0;
  }
  if (allow_text && json_is_string(v))
    return sim_duration_parse(json_string_value(v), out);
  return -1;
}

int sim_faults_from_json(const json_t *obj, sim_faults_t *f, char *err,
                         size_t errlen) {
  const char *key;
  json_t *v;
  sim_faults_t nf = *f;

  if (!json_is_object(obj)) {
    snprintf(err, errlen, "body must be a JSON object");
    return -1;
  }
  json_object_foreach((json_t *)obj, key, v) {
    double *rate = NULL;
    int rc = 0;
    if (!strcmp(key, "fail_5xx"))
      rate = &nf.fail_5xx;
    else if (!strcmp(key, "fail_429"))
      rate = &nf.fail_429;
    else if (!strcmp(key, "slow"))
      rate = &nf.slow;
    else if (!strcmp(key, "malformed"))
      rate = &nf.malformed;
    else if (!strcmp(key, "truncated"))
      rate = &nf.truncated;
    else if (!strcmp(key, "html"))
      rate = &nf.html;
    else if (!strcmp(key, "retry_after"))
      rc = get_ms(v, 1, 0, &nf.retry_after_s);
    else if (!strcmp(key, "slow_ms"))
      rc = get_ms(v, 1, 0, &nf.slow_ms);
    else if (!strcmp(key, "not_found_grace"))
      rc = get_ms(v, 1000, 1, &nf.not_found_grace_ms);
    else if (!strcmp(key, "not_found_grace_ms"))
      rc = get_ms(v, 1, 0, &nf.not_found_grace_ms);
    else if (!strcmp(key, "token_ttl"))
      rc = get_ms(v, 1000, 1, &nf.token_ttl_ms);
    else if (!strcmp(key, "token_ttl_ms"))
      rc = get_ms(v, 1, 0, &nf.token_ttl_ms);
    else if (!strcmp(key, "bearer_mode"))
      rc = sim_bearer_mode_parse(json_string_value(v), &nf.bearer_mode);
    else if (!strcmp(key, "list_fail_5xx"))
      rate = &nf.list_fail_5xx;
    else if (!strcmp(key, "list_fail_429"))
      rate = &nf.list_fail_429;
    else if (!strcmp(key, "list_malformed"))
      rate = &nf.list_malformed;
    else if (!strcmp(key, "list_mode"))
      rc = sim_list_mode_parse(json_string_value(v), &nf.list_mode);
    else if (!strcmp(key, "list_lag"))
      rc = get_ms(v, 1000, 1, &nf.list_lag_ms);
    else if (!strcmp(key, "list_lag_ms"))
      rc = get_ms(v, 1, 0, &nf.list_lag_ms);
    else if (!strcmp(key, "list_filter_on"))
      rc = filter_on_parse(json_string_value(v), &nf.list_filter_start);
    else if (!strcmp(key, "list_filter_zone"))
      rc = sim_tz_parse(json_string_value(v), &nf.list_filter_tz_s);
    else {
      snprintf(err, errlen, "unknown key \"%.64s\"", key);
      return -1;
    }
    if (rate) {
      if (!json_is_number(v) || json_number_value(v) < 0 ||
          json_number_value(v) > 1) {
        snprintf(err, errlen, "\"%s\" must be a number in 0..1", key);
        return -1;
      }
      *rate = json_number_value(v);
    } else if (rc != 0) {
      snprintf(err, errlen, "invalid value for \"%s\"", key);
      return -1;
    }
  }
  *f = nf;
  return 0;
}

typedef struct {
  fault_t kind;
  int slow;
  uint64_t detail; /* extra bits choosing the code and the body's form */
} draw_t;

/* One draw per faultable request, from the seed and the request's sequence
 * number: the n-th request of a run gets the same faults every run. Kinds
 * are cumulative (5xx, 429, malformed, truncated, html) so that each rate is
 * exact; slowness is drawn independently and combines with any kind. Called
 * with mu held. */
static draw_t draw_faults(sim_server_t *srv) {
  const sim_faults_t *f = &srv->faults;
  uint64_t k = srv->fault_seq++;
  double u = sim_unit(sim_hash3(k, srv->seed, 7001));
  double acc = 0;
  draw_t d = {FAULT_NONE, 0, sim_hash3(k, srv->seed, 7003)};
  if (u < (acc += f->fail_5xx))
    d.kind = FAULT_5XX;
  else if (u < (acc += f->fail_429))
    d.kind = FAULT_429;
  else if (u < (acc += f->malformed))
    d.kind = FAULT_MALFORMED;
  else if (u < (acc += f->truncated))
    d.kind = FAULT_TRUNCATED;
  else if (u < (acc += f->html))
    d.kind = FAULT_HTML;
  d.slow = f->slow > 0 && sim_unit(sim_hash3(k, srv->seed, 7002)) < f->slow;
  return d;
}

/* The list endpoint's own draw, from its own sequence and other salts, so
 * that listing neither shifts the detail's faults nor shares their rates.
 * Kinds are cumulative as in draw_faults: 5xx, 429, malformed. Called with
 * mu held. */
static draw_t draw_list_faults(sim_server_t *srv) {
  const sim_faults_t *f = &srv->faults;
  uint64_t k = srv->list_seq++;
  double u = sim_unit(sim_hash3(k, srv->seed, 7101));
  double acc = 0;
  draw_t d = {FAULT_NONE, 0, sim_hash3(k, srv->seed, 7103)};
  if (u < (acc += f->list_fail_5xx))
    d.kind = FAULT_5XX;
  else if (u < (acc += f->list_fail_429))
    d.kind = FAULT_429;
  else if (u < (acc += f->list_malformed))
    d.kind = FAULT_MALFORMED;
  return d;
}

static void fault_5xx(reply_t *r, uint64_t bits) {
  static const unsigned codes[] = {500, 502, 503};
  static const char *const json_msgs[] = {"Server Error", "Bad Gateway",
                                          "Service Unavailable"};
  static const char *const titles[] = {"500 Internal Server Error",
                                       "502 Bad Gateway",
                                       "503 Service Temporarily Unavailable"};
  int i = (int)(bits % 3);
  if ((bits >> 8) % 2) {
    char page[512];
    snprintf(page, sizeof(page),
             "<html>\r\n<head><title>%s</title></head>\r\n<body>\r\n"
             "<center><h1>%s</h1></center>\r\n<hr><center>nginx</center>\r\n"
             "</body>\r\n</html>\r\n",
             titles[i], titles[i]);
    reply_text(r, codes[i], CT_HTML, page);
  } else {
    reply_message(r, codes[i], json_msgs[i]);
  }
}

/* Retry-After in seconds, or (one time in four) as an HTTP date rounded up
 * to the next whole second. */
static void fault_429(reply_t *r, uint64_t bits, int64_t retry_after_s,
                      int64_t now_ms) {
  reply_message(r, 429, "Too Many Attempts.");
  r->rate_limit_headers = 1;
  if ((bits >> 16) % 4 == 0)
    sim_time_http(now_ms + retry_after_s * 1000 + 999, r->retry_after,
                  sizeof(r->retry_after));
  else
    snprintf(r->retry_after, sizeof(r->retry_after), "%lld",
             (long long)retry_after_s);
}

/* Makes a valid JSON body invalid: either a '=' for the first ':' or a
 * trailing comma before the last '}'. */
static void corrupt_malformed(reply_t *r, uint64_t bits) {
  if ((bits >> 24) % 2 == 0) {
    char *c = memchr(r->body, ':', r->len);
    if (c) {
      *c = '=';
      return;
    }
  }
  if (r->len > 0 && r->body[r->len - 1] == '}') {
    char *nb = realloc(r->body, r->len + 2);
    if (!nb)
      return;
    r->body = nb;
    r->body[r->len - 1] = ',';
    r->body[r->len] = '}';
    r->body[r->len + 1] = '\0';
    r->len++;
  }
}

static void corrupt_truncated(reply_t *r) {
  r->len = r->len > 1 ? r->len / 2 : r->len;
  r->body[r->len] = '\0';
}

/* ---- counting ------------------------------------------------------------ */

/* The statistics entry of an account, added on first sight; NULL once
 * MAX_ACCOUNTS are tracked. Called with mu held. */
static account_t *account_of(sim_server_t *srv, const char *sub) {
  account_t *a;
  for (int i = 0; i < srv->naccounts; i++)
    if (!strcmp(srv->accounts[i].sub, sub))
      return &srv->accounts[i];
  if (srv->naccounts == MAX_ACCOUNTS)
    return NULL;
  a = &srv->accounts[srv->naccounts++];
  memset(a, 0, sizeof(*a));
  snprintf(a->sub, sizeof(a->sub), "%s", sub);
  return a;
}

/* Counts one authenticated request of an account for max_rps_by_account.
 * Called with mu held. */
static void count_account(sim_server_t *srv, const char *sub, int64_t now_ms) {
  account_t *a = account_of(srv, sub);
  if (!a)
    return;
  if (a->sec != now_ms / 1000) {
    a->sec = now_ms / 1000;
    a->count = 0;
  }
  a->count++;
  a->total++;
  if (a->count > a->max)
    a->max = a->count;
}

/* ---- API endpoints ------------------------------------------------------- */

static int key_listed(const char *key, const char **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(key, list[i]))
      return 1;
  return 0;
}

static void issue(sim_server_t *srv, reply_t *r, const char *sub,
                  int64_t now_ms) {
  uint64_t jti;
  int64_t ttl;
  sim_bearer_mode_t mode;
  char *tok;
  pthread_mutex_lock(&srv->mu);
  jti = ++srv->jti;
  ttl = srv->faults.token_ttl_ms;
  mode = srv->faults.bearer_mode;
  pthread_mutex_unlock(&srv->mu);
  switch (mode) {
  case SIM_BEARER_MISSING:
    reply_json(r, 200, json_pack("{s:s}", "token_type", "Bearer"));
    return;
  case SIM_BEARER_NULL:
    reply_json(r, 200, json_pack("{s:n}", "bearer"));
    return;
  case SIM_BEARER_EMPTY:
    reply_json(r, 200, json_pack("{s:s}", "bearer", ""));
    return;
  case SIM_BEARER_GARBAGE:
    /* {"alg":"HS256","typ":"JWT"} . "not a JSON payload" . "sig" */
    reply_json(r, 200,
               json_pack("{s:s}", "bearer",
                         "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
                         "bm90IGEgSlNPTiBwYXlsb2Fk.c2ln"));
    return;
  case SIM_BEARER_EXPIRED:
    /* Signed and well-formed, but it expired an hour ago: what a client
     * with a clock far ahead, or a gateway serving a stale token, sees. */
    tok = sim_token_issue(srv->token_key, sub, now_ms - ttl - 3600 * 1000,
                          ttl, jti);
    break;
  default:
    tok = sim_token_issue(srv->token_key, sub, now_ms, ttl, jti);
  }
  if (!tok) {
    reply_message(r, 500, "Server Error");
    return;
  }
  if (mode == SIM_BEARER_WHITESPACE) {
    size_t n = strlen(tok);
    char *t2 = realloc(tok, n + 3);
    if (!t2) {
      free(tok);
      reply_message(r, 500, "Server Error");
      return;
    }
    tok = t2;
    memcpy(tok + n, "\r\n", 3);
  }
  reply_json(r, 200, json_pack("{s:s}", "bearer", tok));
  free(tok);
}

static void api_login(sim_server_t *srv, const req_t *req, reply_t *r,
                      int64_t now_ms) {
  json_error_t jerr;
  json_t *root = NULL, *k;
  const char *key;
  char sub[24];
  int ok;

  if (req->len)
    root = json_loadb(req->body, req->len, 0, &jerr);
  k = json_object_get(root, "api_key");
  if (!json_is_string(k) || json_string_length(k) == 0) {
    /* Laravel validates the field before anything else. */
    json_decref(root);
    reply_json(r, 422,
               json_pack("{s:s s:{s:[s]}}", "message",
                         "The api key field is required.", "errors", "api_key",
                         "The api key field is required."));
  } else {
    key = json_string_value(k);
    if (key_listed(key, srv->conf.reject_keys, srv->conf.nreject_keys))
      ok = 0;
    else if (srv->conf.napi_keys)
      ok = key_listed(key, srv->conf.api_keys, srv->conf.napi_keys);
    else
      ok = !strncmp(key, "live_", 5) || !strncmp(key, "test_", 5);
    if (ok) {
      sim_account_of_key(key, sub, sizeof(sub));
      json_decref(root);
      issue(srv, r, sub, now_ms);
    } else {
      json_decref(root);
      reply_json(r, 401,
                 json_pack("{s:s s:{s:[s]}}", "message", "Unauthorized",
                           "errors", "api_key", "The api key is invalid."));
    }
  }
  if (r->code != 200) {
    pthread_mutex_lock(&srv->mu);
    srv->n.login_failures++;
    pthread_mutex_unlock(&srv->mu);
  }
}

static void api_refresh(sim_server_t *srv, struct MHD_Connection *conn,
                        reply_t *r, int64_t now_ms) {
  char sub[24];
  if (sim_token_verify(srv->token_key, bearer_of(conn), now_ms, sub,
                       sizeof(sub)) == SIM_TOKEN_OK) {
    pthread_mutex_lock(&srv->mu);
    count_account(srv, sub, now_ms);
    pthread_mutex_unlock(&srv->mu);
    issue(srv, r, sub, now_ms);
    return;
  }
  pthread_mutex_lock(&srv->mu);
  srv->n.refresh_failures++;
  pthread_mutex_unlock(&srv->mu);
  reply_message(r, 401, "Unauthenticated.");
}

/* A campaign's served view: the lifecycle now, or the snapshot taken when
 * its status was forced. */
static void view_of(const sim_server_t *srv, const sim_plan_t *p,
                    const sim_campaign_t *c, int64_t now_ms, sim_view_t *v) {
  if (c->forced[0]) {
    sim_view_at(p, c->born_ms, c->forced_at_ms, srv->conf.time_scale, v);
    sim_view_force(v, c->forced, c->forced_at_ms);
  } else {
    sim_view_at(p, c->born_ms, now_ms, srv->conf.time_scale, v);
  }
}

/* Serves the counter set by POST /_sim/campaigns/{id} (if any) in the
 * detail's `data`: in the first part when the statistics are an array. */
static void apply_counter(json_t *data, const sim_campaign_t *snap) {
  if (!data || !snap->counter[0])
    return;
  json_t *stats = json_object_get(data, "statistics");
  if (json_is_array(stats))
    stats = json_array_get(stats, 0);
  if (json_is_object(stats))
    json_object_set_new(stats, snap->counter,
                        json_integer((json_int_t)snap->counter_value));
}

/* Copies an account name into a campaign's owner field (cap bytes), cut as
 * the field cuts it, so that a copy compares equal to the stored owner.
 * Names are "acct_" and 8 hex digits and are never cut in practice. */
static void owner_copy(char *dst, size_t cap, const char *sub) {
  size_t n = strnlen(sub, cap - 1);
  memcpy(dst, sub, n);
  dst[n] = '\0';
}

static void api_detail(sim_server_t *srv, struct MHD_Connection *conn,
                       uint64_t id, reply_t *r, int64_t now_ms) {
  sim_campaign_t snap = {0}, *c;
  sim_plan_t plan;
  sim_variant_t var;
  sim_view_t view;
  uint64_t seed;
  int64_t grace;
  char sub[24];
  json_t *data;

  if (sim_token_verify(srv->token_key, bearer_of(conn), now_ms, sub,
                       sizeof(sub)) != SIM_TOKEN_OK) {
    reply_message(r, 401, "Unauthenticated.");
    return;
  }
  pthread_mutex_lock(&srv->mu);
  count_account(srv, sub, now_ms);
  c = sim_map_upsert(&srv->map, id);
  if (c && !c->born_ms) {
    /* Born by this request: only this account lists it. */
    c->born_ms = now_ms;
    owner_copy(c->owner, sizeof(c->owner), sub);
  }
  if (c)
    snap = *c;
  seed = srv->seed;
  grace = srv->faults.not_found_grace_ms;
  if (c && now_ms - snap.born_ms < grace)
    srv->n.f_not_found++;
  pthread_mutex_unlock(&srv->mu);
  if (!c) {
    reply_message(r, 500, "Server Error");
    return;
  }
  if (now_ms - snap.born_ms < grace) {
    reply_message(r, 404, "Campaign not found");
    return;
  }
  sim_plan_make(id, seed, srv->conf.mix, &plan);
  sim_variant_pick(&srv->conf.variant, id, seed, &var);
  view_of(srv, &plan, &snap, now_ms, &view);
  data = sim_detail_json(&plan, &var, &view, srv->conf.tz_offset_s,
                         srv->conf.ms_time);
  if (!data) {
    reply_message(r, 500, "Server Error");
    return;
  }
  apply_counter(data, &snap);
  reply_json(r, 200, json_pack("{s:o}", "data", data));
}

/* ---- the campaign list (GET /api/campaigns) ------------------------------ */

typedef struct {
  sim_list_query_t q;
  int32_t zone_s;
  const char *message; /* the first 422's text, static; NULL while valid */
} list_args_t;

/* One query argument of a list request, on the connection's thread. MHD
 * hands over keys and values percent-decoded, '+' as a space (checked with
 * libmicrohttpd 0.9.75: "page%5Blimit%5D=500" arrives as "page[limit]",
 * "500"), so raw and encoded forms need nothing more here. Stops at the
 * first invalid argument. */
static enum MHD_Result on_list_arg(void *cls, enum MHD_ValueKind kind,
                                   const char *key, const char *value) {
  list_args_t *a = cls;
  (void)kind;
  if (key && sim_list_query_arg(&a->q, key, value, a->zone_s, &a->message))
    return MHD_NO;
  return MHD_YES;
}

/* The detail's `delivered` or `sent` counter, or the value set for it by
 * POST /_sim/campaigns/{id} {"counter":...}. */
static int64_t listed_counter(const sim_campaign_t *c, const sim_view_t *v,
                              sim_counter_t which, const char *name) {
  if (c->counter[0] && !strcmp(c->counter, name))
    return c->counter_value;
  return v->counters[which];
}

/* GET /api/campaigns with the settings `f` read at the request's arrival.
 *
 * The born campaigns this account may list (its own and those without an
 * owner) whose lag has passed are copied under the lock; everything else
 * runs unlocked on the copies: filter, sort (id, created_at and status
 * need no JSON), then JSON for the page only. A plan is made per candidate
 * only when a filter or the sort needs one, so listing ten thousand
 * campaigns by id costs a copy, a sort and one page. */
static void api_list(sim_server_t *srv, struct MHD_Connection *conn,
                     const sim_faults_t *f, reply_t *r, int64_t now_ms) {
  char sub[24], owner[16];
  list_args_t args;
  sim_campaign_t *copy = NULL;
  sim_list_entry_t *ent = NULL;
  char(*status)[33] = NULL;
  size_t ncopy = 0, n = 0, first, last;
  uint64_t seed;
  double scale = srv->conf.time_scale;
  int need_plan;
  json_t *data = NULL;

  if (f->list_mode == SIM_LIST_404) {
    reply_message(r, 404, "Not Found");
    return;
  }
  if (sim_token_verify(srv->token_key, bearer_of(conn), now_ms, sub,
                       sizeof(sub)) != SIM_TOKEN_OK) {
    reply_message(r, 401, "Unauthenticated.");
    return;
  }
  pthread_mutex_lock(&srv->mu);
  account_t *a = account_of(srv, sub);
  if (a)
    a->list_total++;
  pthread_mutex_unlock(&srv->mu);
  if (f->list_mode == SIM_LIST_403) {
    reply_message(r, 403, "This action is unauthorized.");
    return;
  }
  if (f->list_mode == SIM_LIST_GARBAGE) {
    /* A PHP warning printed ahead of the JSON: a 200 no parser accepts. */
    reply_text(r, 200, CT_JSON,
               "<br />\n<b>Warning</b>:  Undefined array key \"data\" in "
               "<b>/var/www/app/Http/Controllers/CampaignController.php</b> "
               "on line <b>87</b><br />\n{\"data\":[]}");
    return;
  }

  sim_list_query_init(&args.q);
  args.zone_s = f->list_filter_tz_s;
  args.message = NULL;
  MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_list_arg, &args);
  if (args.message) {
    reply_message(r, 422, args.message);
    return;
  }

  owner_copy(owner, sizeof(owner), sub);
  pthread_mutex_lock(&srv->mu);
  copy = malloc((srv->map.len ? srv->map.len : 1) * sizeof(*copy));
  for (size_t i = 0; copy && i < srv->map.cap; i++) {
    const sim_campaign_t *c = &srv->map.slots[i];
    if (c->id && c->born_ms && now_ms - c->born_ms >= f->list_lag_ms &&
        (!c->owner[0] || !strcmp(c->owner, owner)))
      copy[ncopy++] = *c;
  }
  seed = srv->seed;
  pthread_mutex_unlock(&srv->mu);
  ent = malloc((ncopy ? ncopy : 1) * sizeof(*ent));
  if (args.q.sort == SIM_SORT_STATUS)
    status = malloc((ncopy ? ncopy : 1) * sizeof(*status));
  if (!copy || !ent || (args.q.sort == SIM_SORT_STATUS && !status))
    goto oom;

  need_plan = args.q.type >= 0 || f->list_filter_start ||
              args.q.sort == SIM_SORT_STATUS;
  for (size_t i = 0; i < ncopy; i++) {
    const sim_campaign_t *c = &copy[i];
    sim_plan_t plan;
    int64_t at = c->born_ms;
    if (need_plan) {
      sim_plan_make(c->id, seed, srv->conf.mix, &plan);
      if (args.q.type >= 0 && (int)plan.type != args.q.type)
        continue;
      if (f->list_filter_start)
        at = c->born_ms + llround((double)plan.planned_start / scale);
    }
    /* The window is inclusive at the precision served: with whole seconds
     * a campaign shown as created at 10:00:00 is inside "to 10:00:00". */
    if (!srv->conf.ms_time)
      at -= ((at % 1000) + 1000) % 1000;
    if ((args.q.has_from && at < args.q.from_ms) ||
        (args.q.has_to && at > args.q.to_ms))
      continue;
    ent[n].id = c->id;
    ent[n].created_ms = c->born_ms;
    ent[n].idx = i;
    ent[n].status = "";
    ent[n].status_key = 0;
    if (status) {
      sim_view_t view;
      view_of(srv, &plan, c, now_ms, &view);
      memcpy(status[i], view.status, sizeof(status[i]));
      ent[n].status = status[i];
      ent[n].status_key = sim_list_status_key(status[i]);
    }
    n++;
  }
  sim_list_sort(ent, n, &args.q);

  first = args.q.offset < (int64_t)n ? (size_t)args.q.offset : n;
  last = n - first > (size_t)args.q.limit ? first + (size_t)args.q.limit : n;
  data = json_array();
  for (size_t i = first; data && i < last; i++) {
    const sim_campaign_t *c = &copy[ent[i].idx];
    sim_plan_t plan;
    sim_view_t view;
    sim_plan_make(c->id, seed, srv->conf.mix, &plan);
    view_of(srv, &plan, c, now_ms, &view);
    if (json_array_append_new(
            data, sim_list_item_json(
                      &plan, &view,
                      listed_counter(c, &view, SIM_C_DELIVERED, "delivered"),
                      listed_counter(c, &view, SIM_C_SENT, "sent"),
                      srv->conf.tz_offset_s, srv->conf.ms_time)) != 0) {
      json_decref(data);
      data = NULL;
    }
  }
  if (!data)
    goto oom;
  pthread_mutex_lock(&srv->mu);
  srv->n.list_items += (int64_t)(last - first);
  pthread_mutex_unlock(&srv->mu);
  reply_json(r, 200,
             json_pack("{s:o s:{s:{s:I s:I s:I}}}", "data", data, "meta",
                       "page", "total", (json_int_t)n, "limit",
                       (json_int_t)args.q.limit, "offset",
                       (json_int_t)args.q.offset));
  free(status);
  free(ent);
  free(copy);
  return;

oom:
  free(status);
  free(ent);
  free(copy);
  reply_message(r, 500, "Server Error");
}

/* ---- control endpoints (/_sim/...) --------------------------------------- */

static json_t *counts_json(const sim_server_t *srv) {
  const counters_t *n = &srv->n;
  json_t *campaigns = json_object(), *rps = json_object(),
         *per_acct = json_object(), *codes = json_object(),
         *list_acct = json_object(), *o;
  char key[24];

  for (size_t i = 0; campaigns && i < srv->map.cap; i++) {
    const sim_campaign_t *c = &srv->map.slots[i];
    if (!c->id)
      continue;
    snprintf(key, sizeof(key), "%" PRIu64, c->id);
    json_object_set_new(campaigns, key, json_integer(c->requests));
  }
  /* An account seen only by the list has no detail or refresh requests and
   * stays out of max_rps_by_account and requests_by_account. */
  for (int i = 0; rps && per_acct && list_acct && i < srv->naccounts; i++) {
    const account_t *a = &srv->accounts[i];
    if (a->total) {
      json_object_set_new(rps, a->sub, json_integer(a->max));
      json_object_set_new(per_acct, a->sub, json_integer(a->total));
    }
    if (a->list_total)
      json_object_set_new(list_acct, a->sub, json_integer(a->list_total));
  }
  for (int i = 100; codes && i < 600; i++) {
    if (!n->codes[i])
      continue;
    snprintf(key, sizeof(key), "%d", i);
    json_object_set_new(codes, key, json_integer(n->codes[i]));
  }
  o = json_pack(
      "{s:I s:I s:I s:I s:I s:I s:I s:{s:I s:I s:I s:I s:I s:I s:I} s:o s:o "
      "s:o s:o s:I}",
      "requests_total", (json_int_t)n->requests_total, "logins",
      (json_int_t)n->logins, "login_failures", (json_int_t)n->login_failures,
      "refreshes", (json_int_t)n->refreshes, "refresh_failures",
      (json_int_t)n->refresh_failures, "detail_requests",
      (json_int_t)n->detail_requests, "unauthorized",
      (json_int_t)n->unauthorized, "faults", "5xx", (json_int_t)n->f_5xx, "429",
      (json_int_t)n->f_429, "slow", (json_int_t)n->f_slow, "malformed",
      (json_int_t)n->f_malformed, "truncated", (json_int_t)n->f_truncated,
      "html", (json_int_t)n->f_html, "not_found", (json_int_t)n->f_not_found,
      "status_codes", codes, "campaigns", campaigns, "max_rps_by_account", rps,
      "requests_by_account", per_acct, "campaigns_tracked",
      (json_int_t)srv->map.len);
  if (!o) {
    json_decref(list_acct);
    return NULL;
  }
  json_object_set_new(o, "list_requests", json_integer(n->list_requests));
  json_object_set_new(o, "list_items", json_integer(n->list_items));
  json_object_set_new(o, "list_requests_by_account", list_acct);
  json_t *faults = json_object_get(o, "faults");
  json_object_set_new(faults, "list_5xx", json_integer(n->f_list_5xx));
  json_object_set_new(faults, "list_429", json_integer(n->f_list_429));
  json_object_set_new(faults, "list_malformed",
                      json_integer(n->f_list_malformed));
  return o;
}

/* The truth about one campaign; see docs/simulator.md for the shape. */
static json_t *truth_json(sim_server_t *srv, uint64_t id, int64_t now_ms) {
  sim_campaign_t snap;
  sim_plan_t plan;
  sim_variant_t var;
  sim_view_t view;
  const sim_campaign_t *c;
  uint64_t seed;
  int64_t grace;
  json_t *o, *detail;

  pthread_mutex_lock(&srv->mu);
  c = sim_map_find(&srv->map, id);
  if (c)
    snap = *c;
  else
    memset(&snap, 0, sizeof(snap));
  seed = srv->seed;
  grace = srv->faults.not_found_grace_ms;
  pthread_mutex_unlock(&srv->mu);

  sim_plan_make(id, seed, srv->conf.mix, &plan);
  sim_variant_pick(&srv->conf.variant, id, seed, &var);
  o = json_pack("{s:I s:b s:s s:I s:o s:o}", "id", (json_int_t)id, "born",
                snap.born_ms != 0, "final_status", sim_status_name(plan.final),
                "requests", (json_int_t)snap.requests, "lifecycle",
                sim_plan_json(&plan, srv->conf.time_scale), "variant",
                sim_variant_json(&var));
  if (!o || !snap.born_ms)
    return o;
  view_of(srv, &plan, &snap, now_ms, &view);
  detail = sim_detail_json(&plan, &var, &view, srv->conf.tz_offset_s,
                           srv->conf.ms_time);
  apply_counter(detail, &snap);
  json_object_set_new(o, "status", json_string(view.status));
  json_object_set_new(o, "terminal", json_boolean(view.terminal));
  json_object_set_new(o, "born_at_ms", json_integer(snap.born_ms));
  json_object_set_new(
      o, "terminal_at_ms",
      json_integer(snap.born_ms +
                   llround((double)plan.terminal_at / srv->conf.time_scale)));
  json_object_set_new(o, "not_found_until_ms",
                      json_integer(snap.born_ms + grace));
  json_object_set_new(o, "forced",
                      snap.forced[0] ? json_string(snap.forced) : json_null());
  json_object_set_new(o, "owner",
                      snap.owner[0] ? json_string(snap.owner) : json_null());
  json_object_set_new(
      o, "counter",
      snap.counter[0]
          ? json_pack("{s:s s:I}", "name", snap.counter, "value",
                      (json_int_t)snap.counter_value)
          : json_null());
  json_object_set_new(o, "canonical", sim_canonical_json(&plan, &var, &view));
  json_object_set_new(o, "detail", detail ? detail : json_null());
  return o;
}

/* Every campaign in the map (born ones; forcing also births) in brief, so
 * that a benchmark gets the truth about thousands of campaigns in one
 * request. The entries are copied under the lock and the plans computed
 * outside it, so detail requests wait only for the copy. Returns a new
 * reference, or NULL on ENOMEM. */
static json_t *campaigns_json(sim_server_t *srv) {
  sim_campaign_t *copy;
  size_t n = 0;
  uint64_t seed;
  double scale = srv->conf.time_scale;
  json_t *arr;

  pthread_mutex_lock(&srv->mu);
  copy = malloc((srv->map.len ? srv->map.len : 1) * sizeof(*copy));
  for (size_t i = 0; copy && i < srv->map.cap; i++)
    if (srv->map.slots[i].id && srv->map.slots[i].born_ms)
      copy[n++] = srv->map.slots[i];
  seed = srv->seed;
  pthread_mutex_unlock(&srv->mu);
  if (!copy)
    return NULL;
  arr = json_array();
  for (size_t i = 0; arr && i < n; i++) {
    const sim_campaign_t *c = &copy[i];
    sim_plan_t plan;
    sim_plan_make(c->id, seed, srv->conf.mix, &plan);
    if (json_array_append_new(
            arr,
            json_pack("{s:I s:I s:I s:s s:b s:b s:I s:I s:o s:o}", "id",
                      (json_int_t)c->id, "born_at_ms", (json_int_t)c->born_ms,
                      "terminal_at_ms",
                      (json_int_t)(c->born_ms +
                                   llround((double)plan.terminal_at / scale)),
                      "final_status", sim_status_name(plan.final),
                      "scheduled_later", plan.later, "pauses", plan.pauses,
                      "send_duration_sim_ms", (json_int_t)plan.send_duration,
                      "requests", (json_int_t)c->requests, "forced",
                      c->forced[0] ? json_string(c->forced) : json_null(),
                      "owner",
                      c->owner[0] ? json_string(c->owner) : json_null()))) {
      json_decref(arr);
      arr = NULL;
    }
  }
  free(copy);
  return arr ? json_pack("{s:I s:o}", "count", (json_int_t)n, "campaigns", arr)
             : NULL;
}

/* At most this many ids per POST /_sim/campaigns, so that one request
 * cannot hold the lock for long or grow the map without bound. */
#define BIRTHS_MAX 1000000

/* A JSON integer that is a campaign id (1..2^53). */
static int json_id(const json_t *v, uint64_t *id) {
  if (!json_is_integer(v) || json_integer_value(v) < 1 ||
      (uint64_t)json_integer_value(v) > MAX_ID)
    return -1;
  *id = (uint64_t)json_integer_value(v);
  return 0;
}

/* POST /_sim/campaigns {"ids":[...]} or {"from":A,"to":B}, with an optional
 * "api_key": births every listed campaign not born yet, now, owned by that
 * key's account (by none without a key: every account lists it). Campaigns
 * already born keep their birth and owner. Answers {"born":N}, N newly
 * born; 400 for another body. */
static void sim_births(sim_server_t *srv, const req_t *req, reply_t *r,
                       int64_t now_ms) {
  json_error_t jerr;
  json_t *root = req->len ? json_loadb(req->body, req->len, 0, &jerr) : NULL;
  json_t *ids = json_object_get(root, "ids"), *key;
  uint64_t lo = 0, hi = 0, id = 0;
  char owner[16] = "";
  int64_t born = 0;
  size_t count = 0;
  int ok = json_is_object(root);

  key = json_object_get(root, "api_key");
  if (ok && key && !json_is_null(key)) {
    ok = json_is_string(key) && json_string_length(key) > 0;
    if (ok)
      sim_account_of_key(json_string_value(key), owner, sizeof(owner));
  }
  if (ok && ids) {
    ok = json_is_array(ids) && json_array_size(ids) <= BIRTHS_MAX &&
         !json_object_get(root, "from") && !json_object_get(root, "to");
    for (size_t i = 0; ok && i < json_array_size(ids); i++)
      ok = json_id(json_array_get(ids, i), &id) == 0;
    count = ok ? json_array_size(ids) : 0;
  } else if (ok) {
    ok = json_id(json_object_get(root, "from"), &lo) == 0 &&
         json_id(json_object_get(root, "to"), &hi) == 0 && lo <= hi &&
         hi - lo < BIRTHS_MAX;
    count = ok ? (size_t)(hi - lo + 1) : 0;
  }
  if (!ok) {
    json_decref(root);
    reply_message(r, 400,
                  "body must be {\"ids\": [N, ...]} or {\"from\": N, "
                  "\"to\": N}, with an optional \"api_key\": \"<key>\"");
    return;
  }
  pthread_mutex_lock(&srv->mu);
  for (size_t i = 0; ok && i < count; i++) {
    sim_campaign_t *c;
    if (ids)
      json_id(json_array_get(ids, i), &id);
    else
      id = lo + i;
    c = sim_map_upsert(&srv->map, id);
    if (!c) {
      ok = 0;
    } else if (!c->born_ms) {
      c->born_ms = now_ms;
      snprintf(c->owner, sizeof(c->owner), "%s", owner);
      born++;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  json_decref(root);
  if (!ok) {
    reply_message(r, 500, "out of memory");
    return;
  }
  brw_logj(BRW_LOG_INFO,
           json_pack("{s:I s:s}", "born", (json_int_t)born, "owner",
                     owner[0] ? owner : "(any)"),
           "campaigns born");
  reply_json(r, 200, json_pack("{s:I}", "born", (json_int_t)born));
}

/* Forced statuses are short words: letters and '_' only. */
static int valid_status_text(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 32)
    return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalpha((unsigned char)s[i]) && s[i] != '_')
      return 0;
  return 1;
}

static void sim_force(sim_server_t *srv, uint64_t id, const req_t *req,
                      reply_t *r, int64_t now_ms) {
  json_error_t jerr;
  json_t *root = req->len ? json_loadb(req->body, req->len, 0, &jerr) : NULL;
  json_t *st = json_object_get(root, "status");
  json_t *ctr = json_object_get(root, "counter");
  json_t *cname = json_object_get(ctr, "name");
  sim_campaign_t *c;

  if (!json_is_object(root) || (!st && !ctr) ||
      (st && !(json_is_null(st) || (json_is_string(st) &&
                                     valid_status_text(json_string_value(st))))) ||
      (ctr && !json_is_null(ctr) &&
       !(json_is_string(cname) && valid_status_text(json_string_value(cname)) &&
         strlen(json_string_value(cname)) < sizeof(c->counter) &&
         json_is_integer(json_object_get(ctr, "value"))))) {
    json_decref(root);
    reply_message(r, 400,
                  "body must be {\"status\": \"<word>\" | null} and/or "
                  "{\"counter\": {\"name\": \"<word>\", \"value\": N} | null}");
    return;
  }
  pthread_mutex_lock(&srv->mu);
  c = sim_map_upsert(&srv->map, id);
  if (c) {
    /* Forcing an unborn campaign births it, so that it has a timeline. */
    if (!c->born_ms)
      c->born_ms = now_ms;
    if (ctr && json_is_null(ctr)) {
      c->counter[0] = '\0';
    } else if (ctr) {
      snprintf(c->counter, sizeof(c->counter), "%s",
               json_string_value(cname));
      c->counter_value =
          (int64_t)json_integer_value(json_object_get(ctr, "value"));
    }
    if (!st) {
      /* only the counter changes */
    } else if (json_is_null(st)) {
      c->forced[0] = '\0';
    } else {
      size_t i;
      const char *s = json_string_value(st);
      for (i = 0; s[i] && i < sizeof(c->forced) - 1; i++)
        c->forced[i] = (char)tolower((unsigned char)s[i]);
      c->forced[i] = '\0';
      c->forced_at_ms = now_ms;
    }
  }
  pthread_mutex_unlock(&srv->mu);
  if (c && st)
    brw_logj(
        BRW_LOG_INFO,
        json_pack("{s:I s:s}", "campaign_id", (json_int_t)id, "forced",
                  json_is_string(st) ? json_string_value(st) : "(released)"),
        "campaign status forced");
  if (c && ctr)
    brw_logj(BRW_LOG_INFO,
             json_pack("{s:I s:s}", "campaign_id", (json_int_t)id, "counter",
                       json_is_null(ctr) ? "(released)"
                                         : json_string_value(cname)),
             "campaign counter set");
  json_decref(root);
  if (!c) {
    reply_message(r, 500, "out of memory");
    return;
  }
  reply_json(r, 200, truth_json(srv, id, now_ms));
}

static void sim_reset(sim_server_t *srv, const req_t *req, reply_t *r) {
  json_error_t jerr;
  json_t *root = req->len ? json_loadb(req->body, req->len, 0, &jerr) : NULL;
  json_t *seed = json_object_get(root, "seed");
  if ((req->len && !json_is_object(root)) ||
      (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0))) {
    json_decref(root);
    reply_message(r, 400, "body must be empty or {\"seed\": N}");
    return;
  }
  pthread_mutex_lock(&srv->mu);
  sim_map_clear(&srv->map);
  memset(&srv->n, 0, sizeof(srv->n));
  srv->naccounts = 0;
  srv->fault_seq = 0;
  srv->list_seq = 0;
  srv->faults = srv->conf.faults;
  if (seed)
    srv->seed = (uint64_t)json_integer_value(seed);
  pthread_mutex_unlock(&srv->mu);
  json_decref(root);
  brw_log_info("simulator state reset");
  reply_json(r, 200, json_pack("{s:b}", "reset", 1));
}

static void sim_set_faults(sim_server_t *srv, const req_t *req, reply_t *r) {
  json_error_t jerr;
  json_t *root = req->len ? json_loadb(req->body, req->len, 0, &jerr) : NULL;
  sim_faults_t f;
  char err[128];
  int rc;

  pthread_mutex_lock(&srv->mu);
  f = srv->faults;
  rc = sim_faults_from_json(root, &f, err, sizeof(err));
  if (rc == 0)
    srv->faults = f;
  pthread_mutex_unlock(&srv->mu);
  json_decref(root);
  if (rc != 0) {
    reply_message(r, 400, err);
    return;
  }
  brw_logj(BRW_LOG_INFO, json_pack("{s:o}", "faults", sim_faults_json(&f)),
           "fault rates changed");
  reply_json(r, 200, sim_faults_json(&f));
}

static json_t *config_json(sim_server_t *srv) {
  json_t *o;
  pthread_mutex_lock(&srv->mu);
  o = json_pack(
      "{s:I s:f s:s s:s s:i s:b s:o s:b}", "seed", (json_int_t)srv->seed,
      "time_scale", srv->conf.time_scale, "mix", sim_mix_name(srv->conf.mix),
      "time_precision", srv->conf.ms_time ? "ms" : "s", "timezone_offset_s",
      (int)srv->conf.tz_offset_s, "variant_mixed", srv->conf.variant.mixed,
      "faults", sim_faults_json(&srv->faults), "auth_faults",
      srv->conf.auth_faults);
  pthread_mutex_unlock(&srv->mu);
  return o;
}

static void handle_control(sim_server_t *srv, const char *url,
                           const char *method, const req_t *req, reply_t *r,
                           int64_t now_ms) {
  static const char cpfx[] = "/_sim/campaigns/";
  int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");

  if (!strcmp(url, "/_sim/stats")) {
    if (!get) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    pthread_mutex_lock(&srv->mu);
    json_t *o = counts_json(srv);
    pthread_mutex_unlock(&srv->mu);
    {
      reply_json(r, 200, o);
      return;
    }
  }
  if (!strncmp(url, cpfx, sizeof(cpfx) - 1)) {
    uint64_t id;
    const char *seg = url + sizeof(cpfx) - 1;
    if (parse_id(seg, strlen(seg), &id) != 0) {
      reply_message(r, 404, "Not Found");
      return;
    }
    if (get) {
      reply_json(r, 200, truth_json(srv, id, now_ms));
      return;
    }
    if (post) {
      sim_force(srv, id, req, r, now_ms);
      return;
    }
    {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
  }
  if (!strcmp(url, "/_sim/reset")) {
    if (!post) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    {
      sim_reset(srv, req, r);
      return;
    }
  }
  if (!strcmp(url, "/_sim/faults")) {
    if (post) {
      sim_set_faults(srv, req, r);
      return;
    }
    if (!get) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    pthread_mutex_lock(&srv->mu);
    json_t *o = sim_faults_json(&srv->faults);
    pthread_mutex_unlock(&srv->mu);
    {
      reply_json(r, 200, o);
      return;
    }
  }
  if (!strcmp(url, "/_sim/campaigns") && get) {
    reply_json(r, 200, campaigns_json(srv));
    return;
  }
  if (!strcmp(url, "/_sim/campaigns") && post) {
    sim_births(srv, req, r, now_ms);
    return;
  }
  if (!strcmp(url, "/_sim/config") && get) {
    reply_json(r, 200, config_json(srv));
    return;
  }
  reply_message(r, 404, "Not Found");
}

/* ---- MHD callbacks ------------------------------------------------------- */

/* Sleeps in short steps so that a stopping server does not wait for a slow
 * response. */
static void sleep_ms(sim_server_t *srv, int64_t ms) {
  while (ms > 0 && !atomic_load(&srv->stopping)) {
    int64_t step = ms < 20 ? ms : 20;
    struct timespec ts = {0, (long)step * 1000000L};
    nanosleep(&ts, NULL);
    ms -= step;
  }
}

static void handle_api(sim_server_t *srv, struct MHD_Connection *conn,
                       const char *url, const char *method, const req_t *req,
                       reply_t *r, int64_t now_ms) {
  uint64_t id = 0;
  route_t route = classify(url, &id);
  /* The list has its own draws (draw_list_faults), not these. */
  int faultable =
      !strncmp(url, "/api/", 5) && route != ROUTE_LIST &&
      (route == ROUTE_DETAIL || route == ROUTE_BAD_ID || srv->conf.auth_faults);
  draw_t d = {FAULT_NONE, 0, 0};
  int64_t slow_ms = 0, retry_after_s = 0;
  sim_faults_t lf; /* the list's settings at arrival */

  memset(&lf, 0, sizeof(lf));
  pthread_mutex_lock(&srv->mu);
  srv->n.requests_total++;
  if (route == ROUTE_LOGIN)
    srv->n.logins++;
  else if (route == ROUTE_REFRESH)
    srv->n.refreshes++;
  else if (route == ROUTE_DETAIL || route == ROUTE_BAD_ID)
    srv->n.detail_requests++;
  else if (route == ROUTE_LIST)
    srv->n.list_requests++;
  if (route == ROUTE_DETAIL) {
    sim_campaign_t *c = sim_map_upsert(&srv->map, id);
    if (c)
      c->requests++;
  }
  if (faultable) {
    d = draw_faults(srv);
    slow_ms = srv->faults.slow_ms;
    retry_after_s = srv->faults.retry_after_s;
    if (d.slow)
      srv->n.f_slow++;
    if (d.kind == FAULT_5XX)
      srv->n.f_5xx++;
    else if (d.kind == FAULT_429)
      srv->n.f_429++;
    else if (d.kind == FAULT_HTML)
      srv->n.f_html++;
  }
  if (route == ROUTE_LIST) {
    lf = srv->faults;
    d = draw_list_faults(srv);
    retry_after_s = lf.retry_after_s;
    if (d.kind == FAULT_5XX)
      srv->n.f_list_5xx++;
    else if (d.kind == FAULT_429)
      srv->n.f_list_429++;
  }
  pthread_mutex_unlock(&srv->mu);

  /* The request is authenticated and answered as of its arrival, as a real
   * server that is slow to send would: a token valid when the request came
   * is not refused because the answer was late. */
  if (d.slow)
    sleep_ms(srv, slow_ms);
  switch (d.kind) {
  case FAULT_5XX: {
    fault_5xx(r, d.detail);
    return;
  }
  case FAULT_429: {
    fault_429(r, d.detail, retry_after_s, now_ms);
    return;
  }
  case FAULT_HTML: {
    reply_text(r, 200, CT_HTML,
               "<!DOCTYPE html>\n<html><head><title>BSG</title></head>"
               "<body><h1>We'll be back soon</h1><p>Scheduled "
               "maintenance.</p></body></html>\n");
    return;
  }
  default:
    break;
  }

  if (req->too_large) {
    reply_message(r, 413, "Payload Too Large");
    return;
  }
  switch (route) {
  case ROUTE_LOGIN:
    if (strcmp(method, "POST") != 0) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    api_login(srv, req, r, now_ms);
    break;
  case ROUTE_REFRESH:
    if (strcmp(method, "POST") != 0) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    api_refresh(srv, conn, r, now_ms);
    break;
  case ROUTE_DETAIL:
    if (strcmp(method, "GET") != 0) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    api_detail(srv, conn, id, r, now_ms);
    break;
  case ROUTE_LIST:
    if (strcmp(method, "GET") != 0) {
      reply_message(r, 405, "Method Not Allowed");
      return;
    }
    api_list(srv, conn, &lf, r, now_ms);
    break;
  default: {
    reply_message(r, 404, "Not Found");
    return;
  }
  }

  if (r->code == 200 && r->body &&
      (d.kind == FAULT_MALFORMED || d.kind == FAULT_TRUNCATED)) {
    if (d.kind == FAULT_MALFORMED)
      corrupt_malformed(r, d.detail);
    else
      corrupt_truncated(r);
    pthread_mutex_lock(&srv->mu);
    if (route == ROUTE_LIST)
      srv->n.f_list_malformed++;
    else if (d.kind == FAULT_MALFORMED)
      srv->n.f_malformed++;
    else
      srv->n.f_truncated++;
    pthread_mutex_unlock(&srv->mu);
  }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  sim_server_t *srv = cls;
  req_t *req = *con_cls;
  reply_t r;
  struct MHD_Response *resp;
  enum MHD_Result ret;
  int64_t start_ms, now_ms;
  int control;

  (void)version;
  if (!req) {
    req = calloc(1, sizeof(*req));
    if (!req)
      return MHD_NO;
    *con_cls = req;
    return MHD_YES;
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    if (!req->too_large && req->len + n <= BODY_MAX) {
      if (req->len + n + 1 > req->cap) {
        size_t ncap = req->cap ? req->cap : 1024;
        while (ncap < req->len + n + 1)
          ncap *= 2;
        char *nb = realloc(req->body, ncap);
        if (!nb)
          return MHD_NO;
        req->body = nb;
        req->cap = ncap;
      }
      memcpy(req->body + req->len, upload_data, n);
      req->len += n;
      req->body[req->len] = '\0';
    } else {
      req->too_large = 1;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }

  memset(&r, 0, sizeof(r));
  start_ms = now_ms = sim_now_ms();
  control = !strncmp(url, "/_sim/", 6);
  if (control) {
    if (req->too_large)
      reply_message(&r, 413, "Payload Too Large");
    else
      handle_control(srv, url, method, req, &r, now_ms);
  } else {
    handle_api(srv, conn, url, method, req, &r, now_ms);
  }
  if (!r.body) {
    /* Only ENOMEM gets here; close the connection rather than lie. */
    return MHD_NO;
  }
  if (!control) {
    pthread_mutex_lock(&srv->mu);
    if (r.code < 600)
      srv->n.codes[r.code]++;
    if (r.code == 401)
      srv->n.unauthorized++;
    pthread_mutex_unlock(&srv->mu);
  }
  if (brw_log_enabled(BRW_LOG_DEBUG))
    brw_logj(BRW_LOG_DEBUG,
             json_pack("{s:s s:s s:i s:I}", "method", method, "path", url,
                       "status", (int)r.code, "ms",
                       (json_int_t)(sim_now_ms() - start_ms)),
             "request");

  resp = MHD_create_response_from_buffer(r.len, r.body, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(r.body);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r.ctype);
  if (r.retry_after[0])
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, r.retry_after);
  if (r.rate_limit_headers) {
    MHD_add_response_header(resp, "X-RateLimit-Limit", "60");
    MHD_add_response_header(resp, "X-RateLimit-Remaining", "0");
  }
  ret = MHD_queue_response(conn, r.code, resp);
  MHD_destroy_response(resp);
  return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  req_t *req = *con_cls;
  (void)cls;
  (void)conn;
  (void)toe;
  if (req) {
    free(req->body);
    free(req);
    *con_cls = NULL;
  }
}

/* MHD's own messages go to the JSON log at debug level: they are mostly
 * about clients that hang up or send garbage, which a simulator under test
 * sees all the time (a failed bind is logged by sim_server_start). They end
 * with a newline, which is dropped. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  char buf[512];
  size_t n;
  (void)cls;
  if (!brw_log_enabled(BRW_LOG_DEBUG))
    return;
  vsnprintf(buf, sizeof(buf), fmt, ap);
  n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
    buf[--n] = '\0';
  brw_logj(BRW_LOG_DEBUG, json_pack("{s:s}", "source", "libmicrohttpd"), "%s",
           buf);
}

/* ---- start / stop -------------------------------------------------------- */

/* Splits "HOST:PORT" or "[V6]:PORT" into its parts. Returns 0 or -1. */
static int split_listen(const char *s, char *host, size_t hlen, char *port,
                        size_t plen) {
  const char *colon;
  size_t n;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':')
      return -1;
    n = (size_t)(end - s - 1);
    colon = end + 1;
    if (n == 0 || n >= hlen)
      return -1;
    memcpy(host, s + 1, n);
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return -1;
    n = (size_t)(colon - s);
    if (n == 0 || n >= hlen)
      return -1;
    memcpy(host, s, n);
  }
  host[n] = '\0';
  if (!colon[1] || strlen(colon + 1) >= plen)
    return -1;
  for (const char *p = colon + 1; *p; p++)
    if (*p < '0' || *p > '9')
      return -1;
  snprintf(port, plen, "%s", colon + 1);
  return atoi(port) <= 65535 ? 0 : -1;
}

int sim_server_start(const sim_config_t *conf, sim_server_t **out, char *bound,
                     size_t boundlen) {
  char host[256], port[16], numhost[NI_MAXHOST];
  struct addrinfo hints, *ai = NULL;
  const union MHD_DaemonInfo *info;
  unsigned flags;
  sim_server_t *srv;
  int rc;

  if (split_listen(conf->listen, host, sizeof(host), port, sizeof(port))) {
    brw_logj(BRW_LOG_ERROR, json_pack("{s:s}", "listen", conf->listen),
             "--listen must be HOST:PORT");
    return -1;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  rc = getaddrinfo(host, port, &hints, &ai);
  if (rc != 0 || !ai) {
    brw_logj(BRW_LOG_ERROR,
             json_pack("{s:s s:s}", "listen", conf->listen, "error",
                       gai_strerror(rc)),
             "cannot resolve the listen address");
    return -1;
  }

  srv = calloc(1, sizeof(*srv));
  if (!srv || sim_map_init(&srv->map, 1024) != 0) {
    free(srv);
    freeaddrinfo(ai);
    return -1;
  }
  srv->conf = *conf;
  srv->faults = conf->faults;
  srv->seed = conf->seed;
  srv->token_key = sim_mix64(conf->seed ^ 0x5EED70C3A11D0001ull);
  pthread_mutex_init(&srv->mu, NULL);

  flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
          MHD_USE_AUTO | MHD_USE_ERROR_LOG;
  if (ai->ai_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  srv->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, srv, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
      MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
      MHD_OPTION_CONNECTION_LIMIT, (unsigned)conf->max_connections,
      MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
      MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
      MHD_OPTION_THREAD_STACK_SIZE, (size_t)(512 * 1024), MHD_OPTION_END);
  if (!srv->daemon) {
    brw_logj(BRW_LOG_ERROR, json_pack("{s:s}", "listen", conf->listen),
             "cannot start the HTTP server (address in use?)");
    freeaddrinfo(ai);
    sim_server_free(srv);
    return -1;
  }
  info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
  if (getnameinfo(ai->ai_addr, ai->ai_addrlen, numhost, sizeof(numhost), NULL,
                  0, NI_NUMERICHOST) != 0)
    snprintf(numhost, sizeof(numhost), "%s", host);
  snprintf(bound, boundlen, ai->ai_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
           numhost, info ? (unsigned)info->port : 0u);
  freeaddrinfo(ai);
  *out = srv;
  return 0;
}

void sim_server_free(sim_server_t *srv) {
  if (!srv)
    return;
  atomic_store(&srv->stopping, 1);
  if (srv->daemon)
    MHD_stop_daemon(srv->daemon);
  pthread_mutex_destroy(&srv->mu);
  sim_map_free(&srv->map);
  free(srv);
}
