/* Unit tests of the HTTP client (src/http.c): curl multi on a real libuv
 * loop against the scripted test server (tests/unit/support/testsrv.h), and
 * the pure Retry-After parser.
 *
 * Every case runs its own loop; uv_loop_init, uv_run and uv_loop_close must
 * all succeed, so a handle left open by the client fails the case. Waits
 * are generous (a loaded 2-core machine); only the timeout case uses a short
 * limit, because that limit is what it tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "brw/http.h"
#include "brw/log.h"
#include "brw/timeutil.h"
#include "testsrv.h"
#include "uvtest.h"

/* How long a case waits for something that should happen at once. */
#define WAIT_MS 10000

/* ---- harness: a loop, a ticker, the server and the client ---- */

typedef struct {
  int calls;
  brw_http_outcome_t outcome;
  long status;
  char body[8192];
  size_t len;
  char error[CURL_ERROR_SIZE];
  int64_t retry_after_ms;
  int http_version;
  long new_connections; /* summed over the calls */
  int tls;
} result_t;

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick; /* wakes uv_run(ONCE) so conditions are re-checked */
  testsrv_t *srv;
  brw_http_t *h;
  int closed;
  int loop_open; /* set up by fx_open, not yet shut down */
} fx_t;

static void on_resp(const brw_http_resp_t *resp, void *arg) {
  result_t *r = arg;
  r->calls++;
  r->outcome = resp->outcome;
  r->status = resp->status;
  r->len = resp->len;
  snprintf(r->body, sizeof(r->body), "%.*s", (int)resp->len, resp->body);
  snprintf(r->error, sizeof(r->error), "%s", resp->error);
  r->retry_after_ms = resp->retry_after_ms;
  r->http_version = resp->http_version;
  r->new_connections += resp->new_connections;
  r->tls = resp->tls;
}

static void on_http_closed(void *arg) {
  ((fx_t *)arg)->closed++;
}

static brw_http_opts_t default_opts(void) {
  brw_http_opts_t o;
  memset(&o, 0, sizeof(o));
  o.max_connections = 4;
  o.timeout_ms = WAIT_MS;
  o.max_response = 1024 * 1024;
  o.user_agent = "brw-test";
  return o;
}

/* Opens a case: a loop, the server with `handler`, a client with `opts`
 * (NULL: default_opts). */
static void fx_open(fx_t *fx, const brw_http_opts_t *opts,
                    testsrv_handler handler, void *arg) {
  memset(fx, 0, sizeof(*fx));
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  fx->loop_open = 1;
  assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
  fx->srv = testsrv_start(handler, arg);
  assert_non_null(fx->srv);
  brw_http_opts_t o = opts ? *opts : default_opts();
  assert_int_equal(brw_http_new(&fx->loop, &o, &fx->h), 0);
}

/* Closes the client (unless the case did), the ticker and the loop, then
 * stops the server. Returns 0, or -1 when the loop did not close cleanly or
 * the close callback did not run exactly once. */
static int fx_shutdown(fx_t *fx) {
  int rc = 0;
  if (!fx->loop_open)
    return 0;
  fx->loop_open = 0;
  if (fx->h) {
    brw_http_close(fx->h, on_http_closed, fx);
    fx->h = NULL;
  }
  uv_close((uv_handle_t *)&fx->tick, NULL);
  if (uv_run(&fx->loop, UV_RUN_DEFAULT) != 0 || fx->closed != 1)
    rc = -1;
  if (uv_loop_close(&fx->loop) != 0)
    rc = -1;
  testsrv_stop(fx->srv);
  fx->srv = NULL;
  return rc;
}

/* The end of every case: everything must close cleanly. */
static void fx_close(fx_t *fx) {
  assert_int_equal(fx_shutdown(fx), 0);
}

static int fx_setup(void **state) {
  fx_t *fx = calloc(1, sizeof(*fx));
  if (!fx)
    return -1;
  *state = fx;
  return 0;
}

/* Runs after a failed case too, so that a failure leaves no thread, socket
 * or allocation behind (and the leak checker reports only real leaks). */
static int fx_teardown(void **state) {
  fx_t *fx = *state;
  fx_shutdown(fx);
  free(fx);
  return 0;
}

typedef int (*pred_fn)(fx_t *fx, const void *arg);

/* Runs the loop until pred holds (returns 1) or max_ms passed (returns 0). */
typedef struct {
  pred_fn pred;
  fx_t *fx;
} pred_call_t;

static int call_pred(void *ctx, const void *arg) {
  const pred_call_t *c = ctx;
  return c->pred(c->fx, arg);
}

static int run_until(fx_t *fx, pred_fn pred, const void *arg, uint64_t max_ms) {
  pred_call_t c = {pred, fx};
  return uvtest_run_until(&fx->loop, &fx->tick, pred ? call_pred : NULL, &c,
                          arg, max_ms);
}

static void run_for(fx_t *fx, uint64_t ms) {
  run_until(fx, NULL, NULL, ms);
}

static int pred_called(fx_t *fx, const void *arg) {
  return ((const result_t *)arg)->calls > 0;
}

/* The server has received at least *(const size_t *)arg requests. */
static int pred_server_count(fx_t *fx, const void *arg) {
  return testsrv_count(fx->srv, NULL, NULL) >= *(const size_t *)arg;
}

/* Waits until the server has finished with every request it received. */
static int pred_server_idle(fx_t *fx, const void *arg) {
  size_t n = testsrv_log_len(fx->srv);
  for (size_t i = 0; i < n; i++) {
    testsrv_entry_t e;
    assert_int_equal(testsrv_log_get(fx->srv, i, &e), 0);
    if (!e.finished)
      return 0;
  }
  return n > 0;
}

static void request(fx_t *fx, const char *method, const char *path,
                    const char *bearer, const char *json_body, result_t *r) {
  char url[256];
  snprintf(url, sizeof(url), "%s%s", testsrv_url(fx->srv), path);
  memset(r, 0, sizeof(*r));
  assert_non_null(brw_http_request(fx->h, method, url, bearer, NULL, NULL,
                                   json_body, on_resp, r));
}

/* ---- the server's script ---- */

/* What the handler saw of the last request (under the server's lock). */
typedef struct {
  char method[16];
  char authorization[256];
  char traceparent[128];
  char tracestate[600];
  char content_type[64];
  char body[256];
} seen_t;

static seen_t seen;

static void copy_hdr(char *dst, size_t len, const char *v) {
  snprintf(dst, len, "%s", v ? v : "");
}

static void http_date(char *buf, size_t len, time_t t) {
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Serves the paths the cases use; runs on the server's threads. */
static void handler(const testsrv_req_t *req, testsrv_resp_t *resp, void *arg) {
  const char *p = req->path;
  snprintf(seen.method, sizeof(seen.method), "%s", req->method);
  copy_hdr(seen.authorization, sizeof(seen.authorization), req->authorization);
  copy_hdr(seen.traceparent, sizeof(seen.traceparent),
           testsrv_header(req, "traceparent"));
  copy_hdr(seen.tracestate, sizeof(seen.tracestate),
           testsrv_header(req, "tracestate"));
  copy_hdr(seen.content_type, sizeof(seen.content_type),
           testsrv_header(req, "Content-Type"));
  snprintf(seen.body, sizeof(seen.body), "%s", req->body);
  if (!strcmp(p, "/ok")) {
    testsrv_resp_bodyf(resp, "{\"hello\":\"world\"}");
  } else if (!strcmp(p, "/echo")) {
    testsrv_resp_bodyf(resp, "%s %s", req->method, req->body);
  } else if (!strcmp(p, "/huge")) {
    resp->huge_body = 64u * 1024 * 1024;
  } else if (!strcmp(p, "/huge-nolength")) {
    resp->huge_body = 64u * 1024 * 1024;
    resp->no_length = 1;
  } else if (!strcmp(p, "/slow")) {
    resp->delay_ms = 3000;
    testsrv_resp_bodyf(resp, "{}");
  } else if (!strcmp(p, "/slow-short")) {
    resp->delay_ms = 400;
    testsrv_resp_bodyf(resp, "{}");
  } else if (!strcmp(p, "/ra/secs")) {
    resp->status = 429;
    testsrv_resp_header(resp, "Retry-After: 7");
  } else if (!strcmp(p, "/ra/date")) {
    char d[64];
    http_date(d, sizeof(d), time(NULL) + 30);
    resp->status = 503;
    testsrv_resp_header(resp, "Retry-After: %s", d);
  } else if (!strcmp(p, "/ra/past")) {
    char d[64];
    http_date(d, sizeof(d), time(NULL) - 3600);
    resp->status = 503;
    testsrv_resp_header(resp, "Retry-After: %s", d);
  } else if (!strcmp(p, "/ra/garbage")) {
    resp->status = 503;
    testsrv_resp_header(resp, "Retry-After: soon");
  } else if (!strcmp(p, "/hangup")) {
    resp->close_without_answer = 1;
  } else if (!strcmp(p, "/truncated")) {
    testsrv_resp_bodyf(resp, "{\"data\":{\"id\":1,\"status\":\"done\"}}");
    resp->truncate_after = 10;
  } else {
    resp->status = 404;
    testsrv_resp_bodyf(resp, "{\"message\":\"no such path\"}");
  }
}

/* ---- transfers ---- */

static void test_get_200(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, handler, NULL);
  char url[256];
  snprintf(url, sizeof(url), "%s/ok", testsrv_url(fx->srv));
  memset(&r, 0, sizeof(r));
  const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  brw_http_req_t *req = brw_http_request(
      fx->h, "GET", url, "tok.en.x", tp,
      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", NULL, on_resp, &r);
  assert_non_null(req);
  assert_int_equal(brw_http_active(fx->h), 1);
  assert_int_equal(r.calls, 0); /* never before the loop runs */
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.calls, 1);
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_string_equal(r.error, "");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "{\"hello\":\"world\"}");
  assert_int_equal(r.len, strlen("{\"hello\":\"world\"}"));
  assert_int_equal(r.retry_after_ms, -1);
  assert_int_equal(brw_http_active(fx->h), 0);
  testsrv_lock(fx->srv);
  assert_string_equal(seen.method, "GET");
  assert_string_equal(seen.authorization, "Bearer tok.en.x");
  assert_string_equal(seen.traceparent, tp);
  assert_string_equal(seen.tracestate,
                      "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
  testsrv_unlock(fx->srv);

  /* A POST carries its JSON body with its content type; no bearer, no
   * Authorization header. A status other than 2xx is still OK. */
  request(fx, "POST", "/echo", NULL, "{\"api_key\":\"k\"}", &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_string_equal(r.body, "POST {\"api_key\":\"k\"}");
  testsrv_lock(fx->srv);
  assert_string_equal(seen.authorization, "");
  assert_string_equal(seen.content_type, "application/json");
  testsrv_unlock(fx->srv);
  request(fx, "GET", "/nothing-here", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_int_equal(r.status, 404);
  fx_close(fx);
}

/* The server's answer to the last request was cut short by the client. */
static void assert_aborted(fx_t *fx) {
  assert_true(run_until(fx, pred_server_idle, NULL, WAIT_MS));
  testsrv_entry_t e;
  assert_int_equal(testsrv_log_get(fx->srv, testsrv_log_len(fx->srv) - 1, &e),
                   0);
  assert_int_equal(e.answered, 0);
  assert_true(e.body_written < e.body_planned);
}

/* A body over max_response whose size the server does not announce (no
 * Content-Length): the write callback stops the transfer at the cap. */
static void test_too_large_unannounced(void **state) {
  fx_t *fx = *state;
  result_t r;
  brw_http_opts_t o = default_opts();
  o.max_response = 64 * 1024;
  fx_open(fx, &o, handler, NULL);
  request(fx, "GET", "/huge-nolength", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_TOO_LARGE);
  assert_true(r.len <= o.max_response);
  assert_string_not_equal(r.error, "");
  assert_aborted(fx);
  fx_close(fx);
}

/* Regression: a Content-Length over max_response makes curl refuse the
 * transfer itself (CURLE_FILESIZE_EXCEEDED) before any body reaches
 * on_body; it must still be classified BRW_HTTP_TOO_LARGE, not as a
 * generic transport error. */
static void test_too_large_announced(void **state) {
  fx_t *fx = *state;
  result_t r;
  brw_http_opts_t o = default_opts();
  o.max_response = 64 * 1024;
  fx_open(fx, &o, handler, NULL);
  request(fx, "GET", "/huge", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_aborted(fx);
  assert_int_equal(r.outcome, BRW_HTTP_TOO_LARGE);
  assert_true(r.len <= o.max_response);
  fx_close(fx);
}

static void test_timeout(void **state) {
  fx_t *fx = *state;
  result_t r;
  brw_http_opts_t o = default_opts();
  o.timeout_ms = 300; /* the server answers /slow after 3 s */
  fx_open(fx, &o, handler, NULL);
  uint64_t t0 = uv_hrtime();
  request(fx, "GET", "/slow", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  assert_int_equal(r.outcome, BRW_HTTP_TIMEOUT);
  assert_int_equal(r.status, 0);
  assert_string_not_equal(r.error, "");
  assert_true(ms >= 250);
  assert_true(ms < 2500); /* long before the answer would have come */
  fx_close(fx);
}

static void test_connect_refused(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, handler, NULL);
  int port = testsrv_closed_port();
  assert_true(port > 0);
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
  memset(&r, 0, sizeof(r));
  assert_non_null(
      brw_http_request(fx->h, "GET", url, NULL, NULL, NULL, NULL, on_resp, &r));
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_CONNECT);
  assert_int_equal(r.status, 0);
  assert_string_not_equal(r.error, "");
  fx_close(fx);
}

/* https:// to a plain-HTTP port: the server answers the ClientHello with a
 * plain-text 400, which is no TLS record. */
static void test_tls_to_plain_port(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, handler, NULL);
  char url[128];
  snprintf(url, sizeof(url), "https://127.0.0.1:%d/ok", testsrv_port(fx->srv));
  memset(&r, 0, sizeof(r));
  assert_non_null(
      brw_http_request(fx->h, "GET", url, NULL, NULL, NULL, NULL, on_resp, &r));
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_TLS);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.tls, 1);
  assert_int_equal(r.http_version, 0);
  /* The connection was made and its handshake failed: one attempt. */
  brw_http_stats_t st;
  brw_http_stats(fx->h, &st);
  assert_int_equal(st.tls_handshakes, 1);
  fx_close(fx);
}

/* The server closes without answering, or cuts the body short: other
 * transport errors, without a status. */
static void test_hangup_and_truncation(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, handler, NULL);
  request(fx, "GET", "/hangup", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_TRANSPORT);
  assert_string_not_equal(r.error, "");
  request(fx, "GET", "/truncated", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_TRANSPORT);
  assert_string_not_equal(r.error, "");
  fx_close(fx);
}

static void test_retry_after_header(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, handler, NULL);
  request(fx, "GET", "/ra/secs", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_int_equal(r.status, 429);
  assert_int_equal(r.retry_after_ms, 7000);

  /* An HTTP date 30 s ahead, in whole seconds: between 28 and 30 s from
   * when the client reads it. */
  request(fx, "GET", "/ra/date", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.status, 503);
  assert_in_range(r.retry_after_ms, 28000, 30000);

  request(fx, "GET", "/ra/past", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.retry_after_ms, 0);

  request(fx, "GET", "/ra/garbage", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.status, 503);
  assert_int_equal(r.retry_after_ms, -1);

  /* No header: -1, also on a connection that carried one before. */
  request(fx, "GET", "/ok", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.retry_after_ms, -1);
  fx_close(fx);
}

static void test_cancel(void **state) {
  fx_t *fx = *state;
  result_t r1, r2, r3;
  fx_open(fx, NULL, handler, NULL);

  /* Canceled before the loop ever ran. */
  request(fx, "GET", "/ok", NULL, NULL, &r1);
  char url[256];
  snprintf(url, sizeof(url), "%s/slow-short", testsrv_url(fx->srv));
  memset(&r2, 0, sizeof(r2));
  brw_http_req_t *req =
      brw_http_request(fx->h, "GET", url, NULL, NULL, NULL, NULL, on_resp, &r2);
  assert_non_null(req);
  brw_http_cancel(req);
  assert_int_equal(brw_http_active(fx->h), 1);
  assert_true(run_until(fx, pred_called, &r1, WAIT_MS));
  assert_int_equal(r1.status, 200);

  /* Canceled while the server holds the answer back. */
  memset(&r3, 0, sizeof(r3));
  req =
      brw_http_request(fx->h, "GET", url, NULL, NULL, NULL, NULL, on_resp, &r3);
  assert_non_null(req);
  size_t want = testsrv_count(fx->srv, NULL, NULL) + 1;
  assert_true(run_until(fx, pred_server_count, &want, WAIT_MS));
  brw_http_cancel(req);
  assert_int_equal(brw_http_active(fx->h), 0);
  run_for(fx, 700); /* past the server's 400 ms delay */
  assert_int_equal(r2.calls, 0);
  assert_int_equal(r3.calls, 0);

  /* The client still works. */
  request(fx, "GET", "/ok", NULL, NULL, &r1);
  assert_true(run_until(fx, pred_called, &r1, WAIT_MS));
  assert_int_equal(r1.outcome, BRW_HTTP_OK);
  assert_int_equal(r1.status, 200);
  fx_close(fx);
}

static void test_close_in_flight(void **state) {
  fx_t *fx = *state;
  result_t r[3];
  fx_open(fx, NULL, handler, NULL);
  for (int i = 0; i < 3; i++)
    request(fx, "GET", "/slow", NULL, NULL, &r[i]);
  size_t want = 3;
  assert_true(run_until(fx, pred_server_count, &want, WAIT_MS));
  assert_int_equal(brw_http_active(fx->h), 3);
  uint64_t t0 = uv_hrtime();
  brw_http_close(fx->h, on_http_closed, fx);
  fx->h = NULL;
  assert_int_equal(fx->closed, 0); /* asynchronous */
  fx_close(fx); /* runs the loop until every handle is closed */
  assert_int_equal(fx->closed, 1);
  assert_true((uv_hrtime() - t0) / 1000000 < 1000); /* did not wait */
  for (int i = 0; i < 3; i++)
    assert_int_equal(r[i].calls, 0);
}

/* Closing a client that never sent anything. */
static void test_close_unused(void **state) {
  fx_t *fx = *state;
  fx_open(fx, NULL, handler, NULL);
  fx_close(fx);
}

static void test_keepalive(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, handler, NULL);
  for (int i = 0; i < 5; i++) {
    request(fx, "GET", "/ok", NULL, NULL, &r);
    assert_true(run_until(fx, pred_called, &r, WAIT_MS));
    assert_int_equal(r.status, 200);
  }
  assert_int_equal(testsrv_count(fx->srv, "GET", "/ok"), 5);
  assert_int_equal(testsrv_connections(fx->srv), 1);
  /* What the response and the counters say of it: HTTP/1.1 (the server
   * has no HTTP/2), one plain connection opened, no TLS handshake. */
  assert_int_equal(r.http_version, 11);
  assert_int_equal(r.tls, 0);
  brw_http_stats_t st;
  brw_http_stats(fx->h, &st);
  assert_int_equal(st.connections, 1);
  assert_int_equal(st.tls_handshakes, 0);
  fx_close(fx);
}

/* http.proxy: a proxy that is down fails the request as a connection
 * failure; a host in http.no_proxy goes direct through the same client
 * options. */
static void test_proxy_options(void **state) {
  fx_t *fx = *state;
  result_t r;
  uv_tcp_t probe; /* a port nothing listens on: bound, closed */
  struct sockaddr_in addr;
  int len = sizeof(addr);
  uv_loop_t tmp;
  assert_int_equal(uv_loop_init(&tmp), 0);
  assert_int_equal(uv_tcp_init(&tmp, &probe), 0);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  assert_int_equal(uv_tcp_bind(&probe, (struct sockaddr *)&addr, 0), 0);
  assert_int_equal(
      uv_tcp_getsockname(&probe, (struct sockaddr *)&addr, &len), 0);
  uv_close((uv_handle_t *)&probe, NULL);
  uv_run(&tmp, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&tmp), 0);
  char proxy[64];
  snprintf(proxy, sizeof(proxy), "http://user:pw@127.0.0.1:%d",
           ntohs(addr.sin_port));

  brw_http_opts_t o = default_opts();
  o.proxy = proxy;
  fx_open(fx, &o, handler, NULL);
  request(fx, "GET", "/ok", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_CONNECT);
  assert_int_equal(testsrv_count(fx->srv, "GET", "/ok"), 0);
  assert_null(strstr(r.error, "pw"));
  fx_close(fx);

  o.no_proxy = "127.0.0.1";
  fx_open(fx, &o, handler, NULL);
  request(fx, "GET", "/ok", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(testsrv_count(fx->srv, "GET", "/ok"), 1);
  fx_close(fx);
}

/* ---- reuse: pooled handles, cached headers, persistent socket polls ---- */

/* Like request(), with a traceparent. */
static void request_tp(fx_t *fx, const char *method, const char *path,
                       const char *bearer, const char *tp,
                       const char *json_body, result_t *r) {
  char url[256];
  snprintf(url, sizeof(url), "%s%s", testsrv_url(fx->srv), path);
  memset(r, 0, sizeof(*r));
  assert_non_null(brw_http_request(fx->h, method, url, bearer, tp, NULL,
                                   json_body, on_resp, r));
}

static brw_http_stats_t stats(fx_t *fx) {
  brw_http_stats_t st;
  brw_http_stats(fx->h, &st);
  return st;
}

/* Open file descriptors of the process (sockets included). */
static int count_fds(void) {
  uv_fs_t req;
  int n = uv_fs_scandir(NULL, &req, "/proc/self/fd", 0, NULL);
  uv_fs_req_cleanup(&req);
  return n;
}

/* "/who" answers with what the request carried: "METHOD auth|traceparent|
 * content-type|content-length|body" ("-" for a missing header);
 * "/who-slow" does so after 300 ms; "/close" answers and closes the
 * connection ("Connection: close"). The rest is handler(). */
static void who_handler(const testsrv_req_t *req, testsrv_resp_t *resp,
                        void *arg) {
  const char *p = req->path;
  if (!strcmp(p, "/who") || !strcmp(p, "/who-slow")) {
    const char *tp = testsrv_header(req, "traceparent");
    const char *ct = testsrv_header(req, "Content-Type");
    const char *cl = testsrv_header(req, "Content-Length");
    if (!strcmp(p, "/who-slow"))
      resp->delay_ms = 300;
    testsrv_resp_bodyf(resp, "%s %s|%s|%s|%s|%s", req->method,
                       req->authorization ? req->authorization : "-",
                       tp ? tp : "-", ct ? ct : "-", cl ? cl : "-", req->body);
  } else if (!strcmp(p, "/empty")) {
    /* No body: the server writes one segment, so a loop of these does not
     * wait for delayed ACKs between the head and the body. */
  } else if (!strcmp(p, "/close")) {
    resp->close_after = 1;
    testsrv_resp_bodyf(resp, "{}");
  } else {
    handler(req, resp, arg);
  }
}

/* Many sequential requests: one easy handle, one connection, one socket
 * context and one formatted Authorization line serve them all. */
static void test_reuse_many(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, who_handler, NULL);
  for (int i = 0; i < 200; i++) {
    request(fx, "GET", "/empty", "tok.A", NULL, &r);
    assert_true(run_until(fx, pred_called, &r, WAIT_MS));
    assert_int_equal(r.outcome, BRW_HTTP_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
  }
  assert_int_equal(testsrv_count(fx->srv, "GET", "/empty"), 200);
  assert_int_equal(testsrv_connections(fx->srv), 1);
  for (size_t i = 0; i < 200; i++) {
    testsrv_entry_t e;
    assert_int_equal(testsrv_log_get(fx->srv, i, &e), 0);
    assert_string_equal(e.authorization, "Bearer tok.A");
    assert_int_equal(e.conn, 1);
  }
  request(fx, "GET", "/who", "tok.A", NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_string_equal(r.body, "GET Bearer tok.A|-|-|-|");
  brw_http_stats_t st = stats(fx);
  assert_int_equal(st.requests, 201);
  assert_int_equal(st.easy_created, 1);
  assert_int_equal(st.easy_reused, 200);
  assert_int_equal(st.easy_idle, 1);
  assert_int_equal(st.sockets_opened, 1);
  assert_int_equal(st.sockets_closed, 0);
  assert_int_equal(st.polls, 1);
  /* A new connection starts its poll a few times; a reused one not at all
   * (it was once per event change and request). */
  assert_true(st.poll_changes <= 4);
  assert_int_equal(st.auth_built, 1);
  assert_int_equal(st.auth_cached, 1);

  /* A transfer aborted by the size cap leaves nothing behind on the handle
   * that the next request gets (the aborted connection is closed). */
  request(fx, "GET", "/huge-nolength", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_TOO_LARGE);
  request(fx, "GET", "/ra/secs", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.status, 429);
  assert_int_equal(r.retry_after_ms, 7000);
  request(fx, "GET", "/who", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_string_equal(r.body, "GET -|-|-|-|");
  assert_int_equal(r.retry_after_ms, -1);
  /* A failed connection on the same handle reports no stale status. */
  char url[128];
  int port = testsrv_closed_port();
  assert_true(port > 0);
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/ok", port);
  memset(&r, 0, sizeof(r));
  assert_non_null(
      brw_http_request(fx->h, "GET", url, NULL, NULL, NULL, NULL, on_resp, &r));
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_CONNECT);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.len, 0);
  st = stats(fx);
  assert_int_equal(st.easy_created, 1);
  assert_int_equal(st.sockets_opened, 3);
  assert_int_equal(st.sockets_closed, 2);
  assert_int_equal(st.polls, 1);
  fx_close(fx);
}

/* A pooled handle that sent a POST sends a plain GET next: no body, no
 * Content-Type, no Content-Length; also after a POST without a body. */
static void test_get_after_post(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, who_handler, NULL);
  request(fx, "POST", "/who", "tok.A", "{\"a\":1}", &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_string_equal(r.body,
                      "POST Bearer tok.A|-|application/json|7|{\"a\":1}");
  request(fx, "GET", "/who", "tok.A", NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_string_equal(r.body, "GET Bearer tok.A|-|-|-|");
  /* curl's own content type for an empty form, as before pooling. */
  request(fx, "POST", "/who", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_string_equal(r.body, "POST -|-|application/x-www-form-urlencoded|0|");
  request(fx, "GET", "/who", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_string_equal(r.body, "GET -|-|-|-|");
  /* A body with the GET method is sent as a POST, as it always was. */
  request(fx, "GET", "/who", NULL, "{}", &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_string_equal(r.body, "POST -|-|application/json|2|{}");
  request(fx, "GET", "/who", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_string_equal(r.body, "GET -|-|-|-|");
  assert_int_equal(testsrv_count(fx->srv, "GET", "/who"), 3);
  assert_int_equal(testsrv_count(fx->srv, "POST", "/who"), 3);
  brw_http_stats_t st = stats(fx);
  assert_int_equal(st.easy_created, 1);
  assert_int_equal(testsrv_connections(fx->srv), 1);
  fx_close(fx);
}

static int pred_all_called(fx_t *fx, const void *arg) {
  const result_t *r = arg;
  for (int i = 0; r[i].calls >= 0 && i < 16; i++)
    if (r[i].calls == 0)
      return 0;
  return 1;
}

/* Requests in flight at the same time, each with its own bearer (or none)
 * and traceparent, get their own headers; more bearers than the cache holds
 * are still right, and cached lines are built once. */
static void test_bearers_in_flight(void **state) {
  fx_t *fx = *state;
  result_t r[9];
  fx_open(fx, NULL, who_handler, NULL);
  char tp_long[201];
  memset(tp_long, 'f', sizeof(tp_long) - 1);
  tp_long[sizeof(tp_long) - 1] = '\0';
  const char *tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  struct {
    const char *bearer;
    const char *tp;
  } in[8] = {{"tok.A", NULL}, {"tok.B", NULL}, {"tok.A", tp},
             {NULL, tp},      {"tok.C", NULL}, {"tok.D", tp_long},
             {"tok.E", NULL}, {"tok.F", NULL}};
  for (int i = 0; i < 8; i++)
    request_tp(fx, "GET", "/who-slow", in[i].bearer, in[i].tp, NULL, &r[i]);
  r[8].calls = -1; /* end mark for pred_all_called */
  assert_int_equal(brw_http_active(fx->h), 8);
  assert_true(run_until(fx, pred_all_called, r, WAIT_MS));
  for (int i = 0; i < 8; i++) {
    char want[512];
    char auth[64] = "-";
    if (in[i].bearer)
      snprintf(auth, sizeof(auth), "Bearer %s", in[i].bearer);
    snprintf(want, sizeof(want), "GET %s|%s|-|-|", auth,
             in[i].tp ? in[i].tp : "-");
    assert_int_equal(r[i].outcome, BRW_HTTP_OK);
    assert_string_equal(r[i].body, want);
  }
  /* Six bearers, A once: six lines. The cache held A to D; E and F came
   * while every cached line was in use, so theirs went with their
   * requests. */
  brw_http_stats_t st = stats(fx);
  assert_int_equal(st.auth_built, 6);
  assert_int_equal(st.auth_cached, 4);

  /* Now F takes the least recently used slot, and is built only once. */
  for (int i = 0; i < 2; i++) {
    request(fx, "GET", "/who", "tok.F", NULL, &r[0]);
    assert_true(run_until(fx, pred_called, &r[0], WAIT_MS));
    assert_string_equal(r[0].body, "GET Bearer tok.F|-|-|-|");
  }
  st = stats(fx);
  assert_int_equal(st.auth_built, 7);
  assert_int_equal(st.auth_cached, 4);
  request(fx, "GET", "/who", "tok.A", NULL, &r[0]);
  assert_true(run_until(fx, pred_called, &r[0], WAIT_MS));
  assert_string_equal(r[0].body, "GET Bearer tok.A|-|-|-|");
  fx_close(fx);
}

/* The server closes the connection after its answer: curl closes the
 * socket, its context goes with it, and the next request opens a new
 * connection with a new context. */
static void test_server_closes(void **state) {
  fx_t *fx = *state;
  result_t r;
  fx_open(fx, NULL, who_handler, NULL);
  request(fx, "GET", "/who", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(stats(fx).polls, 1);
  request(fx, "GET", "/close", NULL, NULL, &r);
  assert_true(run_until(fx, pred_called, &r, WAIT_MS));
  assert_int_equal(r.outcome, BRW_HTTP_OK);
  assert_int_equal(r.status, 200);
  brw_http_stats_t st = stats(fx);
  assert_int_equal(st.sockets_opened, 1);
  assert_int_equal(st.sockets_closed, 1);
  assert_int_equal(st.polls, 0);
  for (int i = 0; i < 3; i++) {
    request(fx, "GET", "/who", NULL, NULL, &r);
    assert_true(run_until(fx, pred_called, &r, WAIT_MS));
    assert_int_equal(r.outcome, BRW_HTTP_OK);
  }
  assert_int_equal(testsrv_connections(fx->srv), 2);
  st = stats(fx);
  assert_int_equal(st.sockets_opened, 2);
  assert_int_equal(st.sockets_closed, 1);
  assert_int_equal(st.polls, 1);
  assert_int_equal(st.easy_created, 1);
  fx_close(fx);
}

/* Closing a client with pooled handles and idle kept-alive connections
 * leaves no handle, socket or allocation; connections whose server went
 * away while idle wake the loop once each, not in a busy loop. */
static void test_close_idle(void **state) {
  fx_t *fx = *state;
  result_t r[4];
  int fds0 = count_fds();
  assert_true(fds0 > 0);
  fx_open(fx, NULL, who_handler, NULL);
  for (int i = 0; i < 3; i++)
    request(fx, "GET", "/who-slow", "tok.A", NULL, &r[i]);
  r[3].calls = -1;
  assert_true(run_until(fx, pred_all_called, r, WAIT_MS));
  assert_int_equal(testsrv_connections(fx->srv), 3);
  brw_http_stats_t st = stats(fx);
  assert_int_equal(st.easy_idle, 3);
  assert_int_equal(st.polls, 3);
  assert_int_equal(brw_http_active(fx->h), 0);

  /* The server goes away: the idle sockets read EOF. */
  testsrv_stop(fx->srv);
  fx->srv = testsrv_start(who_handler, NULL);
  assert_non_null(fx->srv);
  run_for(fx, 300);
  st = stats(fx);
  assert_true(st.idle_wakeups >= 1);
  assert_true(st.idle_wakeups <= 3);
  assert_int_equal(st.sockets_closed, 0); /* curl notices on reuse */

  /* A new server works; the dead connections are dropped on the way. */
  request(fx, "GET", "/who", "tok.A", NULL, &r[0]);
  assert_true(run_until(fx, pred_called, &r[0], WAIT_MS));
  assert_int_equal(r[0].outcome, BRW_HTTP_OK);
  assert_string_equal(r[0].body, "GET Bearer tok.A|-|-|-|");
  assert_int_equal(stats(fx).easy_created, 3);
  fx_close(fx);
  assert_int_equal(count_fds(), fds0);
}

/* ---- brw_http_parse_retry_after ---- */

/* 2023-11-14T22:13:20Z */
#define NOW_MS INT64_C(1700000000000)

static void test_parse_retry_after_seconds(void **state) {
  assert_int_equal(brw_http_parse_retry_after("120", NOW_MS), 120000);
  assert_int_equal(brw_http_parse_retry_after(" 5 ", NOW_MS), 5000);
  assert_int_equal(brw_http_parse_retry_after("\t5\r\n", NOW_MS), 5000);
  assert_int_equal(brw_http_parse_retry_after("0", NOW_MS), 0);
  /* Huge values are capped, never overflow, never negative. */
  int64_t cap = brw_http_parse_retry_after("1000000000", NOW_MS);
  assert_true(cap > 0);
  assert_true(cap <= INT64_C(1000000000) * 1000);
  int64_t v = brw_http_parse_retry_after("99999999999999999999999999", NOW_MS);
  assert_int_equal(v, cap);
  assert_int_equal(brw_http_parse_retry_after("999999999", NOW_MS),
                   INT64_C(999999999) * 1000);
}

static void test_parse_retry_after_dates(void **state) {
  /* One minute ahead, in the three formats HTTP allows. */
  assert_int_equal(
      brw_http_parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", NOW_MS),
      60000);
  assert_int_equal(
      brw_http_parse_retry_after("Tuesday, 14-Nov-23 22:14:20 GMT", NOW_MS),
      60000);
  assert_int_equal(
      brw_http_parse_retry_after("Tue Nov 14 22:14:20 2023", NOW_MS), 60000);
  /* Past dates mean "now". */
  assert_int_equal(
      brw_http_parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", NOW_MS), 0);
  assert_int_equal(
      brw_http_parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", NOW_MS), 0);
  /* The instant itself. */
  assert_int_equal(
      brw_http_parse_retry_after("Tue, 14 Nov 2023 22:13:20 GMT", NOW_MS), 0);
}

/* Years up to 2^31 - 1 are valid HTTP-date syntax (curl_getdate reads
 * them); t * 1000 overflowed int64 past year ~292 million, which UBSan
 * aborts on. Capped like a huge delta-seconds instead. */
static void test_parse_retry_after_far_dates(void **state) {
  int64_t cap = brw_http_parse_retry_after("999999999", NOW_MS);
  assert_int_equal(
      brw_http_parse_retry_after("Sun, 01 Jan 2147483647 00:00:00 GMT", NOW_MS),
      cap);
  assert_int_equal(
      brw_http_parse_retry_after("Thu, 01 Jan 300000000 00:00:00 GMT", NOW_MS),
      cap);
  /* Year 9999 still fits: just under 8000 years ahead, capped too. */
  assert_int_equal(
      brw_http_parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW_MS), cap);
}

static void test_parse_retry_after_garbage(void **state) {
  assert_int_equal(brw_http_parse_retry_after("", NOW_MS), -1);
  assert_int_equal(brw_http_parse_retry_after("   ", NOW_MS), -1);
  assert_int_equal(brw_http_parse_retry_after("soon", NOW_MS), -1);
  assert_int_equal(brw_http_parse_retry_after("-5", NOW_MS), -1);
  assert_int_equal(brw_http_parse_retry_after("1.5", NOW_MS), -1);
  assert_int_equal(brw_http_parse_retry_after("12 apples", NOW_MS), -1);
  char longv[300];
  memset(longv, '1', sizeof(longv) - 1);
  longv[sizeof(longv) - 1] = '\0';
  /* Too long to be a date or a number we keep: either -1 or the cap. */
  int64_t v = brw_http_parse_retry_after(longv, NOW_MS);
  assert_true(v == -1 || v > 0);
}

/* ---- the loop keeps serving I/O while curl asks for "again at once" ---- */

/* A chain of requests that each fail at once, without I/O (a protocol the
 * client refuses), each started from the previous one's callback: every
 * step makes curl ask for a 0 ms timeout. */
#define CHAIN_LEN 400

typedef struct {
  fx_t *fx;
  int done;       /* requests completed */
  int probe_seen; /* `done` when the probe pipe was served, -1 before */
  int fds[2];
  uv_poll_t probe;
  brw_http_outcome_t outcome;
} chain_t;

static void on_chain_resp(const brw_http_resp_t *resp, void *arg) {
  chain_t *c = arg;
  c->outcome = resp->outcome;
  if (++c->done < CHAIN_LEN)
    assert_non_null(brw_http_request(c->fx->h, "GET", "ftp://127.0.0.1/x", NULL,
                                     NULL, NULL, NULL, on_chain_resp, c));
}

static void on_chain_probe(uv_poll_t *p, int status, int events) {
  chain_t *c = p->data;
  if (c->probe_seen < 0)
    c->probe_seen = c->done;
  uv_poll_stop(p);
}

static int pred_chain_done(fx_t *fx, const void *arg) {
  return ((const chain_t *)arg)->done >= CHAIN_LEN;
}

/* curl's 0 ms timeouts go through an idle handle, not a 0 ms timer that
 * libuv 1.44 runs again in the same timer pass: a pipe that is readable
 * from the start is served while the chain still runs. With the 0 ms timer
 * it was served only after the whole chain. */
static void test_zero_timeout_chain(void **state) {
  fx_t *fx = *state;
  /* Static: a failed assertion leaves the probe to the teardown's loop. */
  static chain_t c;
  memset(&c, 0, sizeof(c));
  c.fx = fx;
  c.probe_seen = -1;
  fx_open(fx, NULL, handler, NULL);
  assert_int_equal(pipe(c.fds), 0);
  assert_int_equal(write(c.fds[1], "x", 1), 1);
  assert_int_equal(uv_poll_init(&fx->loop, &c.probe, c.fds[0]), 0);
  c.probe.data = &c;
  assert_int_equal(uv_poll_start(&c.probe, UV_READABLE, on_chain_probe), 0);
  assert_non_null(brw_http_request(fx->h, "GET", "ftp://127.0.0.1/x", NULL,
                                   NULL, NULL, NULL, on_chain_resp, &c));
  assert_true(run_until(fx, pred_chain_done, &c, WAIT_MS));
  uv_close((uv_handle_t *)&c.probe, NULL);
  close(c.fds[0]);
  close(c.fds[1]);
  assert_int_equal(c.done, CHAIN_LEN);
  assert_int_not_equal(c.outcome, BRW_HTTP_OK);
  assert_true(c.probe_seen >= 0);
  assert_true(c.probe_seen < CHAIN_LEN);
  fx_close(fx);
}

/* A case with the fixture (torn down even when the case fails). */
#define FX_TEST(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  brw_log_setup(getenv("BRW_TEST_LOG") ? BRW_LOG_DEBUG : BRW_LOG_OFF,
                BRW_LOG_TEXT, "test_http");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_retry_after_seconds),
      cmocka_unit_test(test_parse_retry_after_dates),
      cmocka_unit_test(test_parse_retry_after_far_dates),
      cmocka_unit_test(test_parse_retry_after_garbage),
      FX_TEST(test_get_200),
      FX_TEST(test_too_large_unannounced),
      FX_TEST(test_too_large_announced),
      FX_TEST(test_timeout),
      FX_TEST(test_connect_refused),
      FX_TEST(test_tls_to_plain_port),
      FX_TEST(test_hangup_and_truncation),
      FX_TEST(test_retry_after_header),
      FX_TEST(test_cancel),
      FX_TEST(test_close_in_flight),
      FX_TEST(test_close_unused),
      FX_TEST(test_keepalive),
      FX_TEST(test_proxy_options),
      FX_TEST(test_reuse_many),
      FX_TEST(test_zero_timeout_chain),
      FX_TEST(test_get_after_post),
      FX_TEST(test_bearers_in_flight),
      FX_TEST(test_server_closes),
      FX_TEST(test_close_idle),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  brw_log_cleanup();
  curl_global_cleanup();
  return rc;
}
