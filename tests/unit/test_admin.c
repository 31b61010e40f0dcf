/* Unit tests of the admin HTTP server (src/admin.c) on a real libuv loop.
 *
 * The loop runs on the test's main thread; each request is a blocking curl
 * easy transfer on a helper thread, which wakes the loop with a uv_async_t
 * when it is done. So the loop itself must serve every request: if the
 * server ran anywhere else, or blocked, the transfer would time out.
 *
 * Every case closes the server and then requires uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "uvtest.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "brw/admin.h"
#include "brw/error.h"
#include <jansson.h>
#include "brw/log.h"
#include "brw/metrics.h"

/* Generous: a loaded 2-core machine, and ASan. */
#define WAIT_MS 15000

/* ---- harness ---- */

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick; /* wakes uv_run(ONCE) so conditions are re-checked */
  brw_metrics_t *m;
  brw_admin_t *a;
  int closed;      /* close callbacks run */
  int close_calls; /* brw_admin_close calls made */
  int loop_open;
  brw_admin_readiness_t ready; /* what the readiness callback reports */
  int ready_calls;
  int starved; /* > 0: the liveness callback says the loop is this late */
  int live_calls;
  char base[64]; /* "http://127.0.0.1:PORT" */
} fx_t;

static void on_tick(uv_timer_t *t) {}

static void on_admin_closed(void *arg) {
  ((fx_t *)arg)->closed++;
}

static void on_ready(void *ctx, brw_admin_readiness_t *out) {
  fx_t *fx = ctx;
  fx->ready_calls++;
  *out = fx->ready;
  /* The server takes a reference of `blocked`; the fixture keeps its own. */
  if (out->blocked)
    json_incref(out->blocked);
}

/* /healthz's liveness callback: starved while fx->starved is set. */
static int on_live(void *ctx, char *why, size_t len) {
  fx_t *fx = ctx;
  fx->live_calls++;
  if (!fx->starved)
    return 1;
  snprintf(why, len, "event loop %d s late", fx->starved);
  return 0;
}

/* Closes the server; its callback counts in fx->closed. */
static void fx_admin_close(fx_t *fx) {
  brw_admin_close(fx->a, on_admin_closed, fx);
  fx->a = NULL;
  fx->close_calls++;
}

static void fx_open_loop(fx_t *fx) {
  memset(fx, 0, sizeof(*fx));
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  fx->loop_open = 1;
  assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
  fx->m = brw_metrics_new();
  assert_non_null(fx->m);
}

/* Opens a case: a loop, a registry, the server on 127.0.0.1:0. */
static void fx_open(fx_t *fx) {
  char err[256];
  fx_open_loop(fx);
  assert_int_equal(brw_admin_new(&fx->loop, "127.0.0.1:0", fx->m, on_ready, fx,
                                 &fx->a, err, sizeof(err)),
                   0);
  assert_true(brw_admin_port(fx->a) > 0);
  snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%d",
           brw_admin_port(fx->a));
}

/* Closes the server (unless the case did), the ticker and the loop. Returns
 * 0, or -1 when the loop did not close cleanly or the close callback did
 * not run exactly once. */
static int fx_shutdown(fx_t *fx) {
  int rc = 0;
  if (!fx->loop_open)
    return 0;
  fx->loop_open = 0;
  if (fx->a)
    fx_admin_close(fx);
  uv_close((uv_handle_t *)&fx->tick, NULL);
  if (uv_run(&fx->loop, UV_RUN_DEFAULT) != 0 || fx->closed != fx->close_calls)
    rc = -1;
  if (uv_loop_close(&fx->loop) != 0)
    rc = -1;
  brw_metrics_free(fx->m);
  fx->m = NULL;
  json_decref(fx->ready.blocked);
  fx->ready.blocked = NULL;
  return rc;
}

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

/* Runs after a failed case too, so that nothing is left behind. */
static int fx_teardown(void **state) {
  fx_t *fx = *state;
  fx_shutdown(fx);
  free(fx);
  return 0;
}

typedef int (*pred_fn)(const void *arg);

/* Runs the loop until pred holds (returns 1) or max_ms passed (returns 0). */
typedef struct {
  pred_fn pred;
} pred_call_t;

static int call_pred(void *ctx, const void *arg) {
  return ((const pred_call_t *)ctx)->pred(arg);
}

static int run_until(fx_t *fx, pred_fn pred, const void *arg, uint64_t max_ms) {
  pred_call_t c = {pred};
  return uvtest_run_until(&fx->loop, &fx->tick, pred ? call_pred : NULL, &c,
                          arg, max_ms);
}

/* ---- requests on helper threads ---- */

typedef struct {
  /* in */
  char url[256];
  const char *method; /* GET, HEAD, POST, or any custom method */
  size_t post_len;    /* POST: body of this many 'p' bytes (0: "a=1") */
  size_t big_header;  /* > 0: add an X-Big header of this many bytes */
  int twice;          /* perform the transfer a second time, same handle */
  /* out */
  CURLcode rc;
  long status;
  long second_connects; /* twice: connections the second transfer opened */
  char ctype[128];
  char allow[128];
  char *body;
  size_t len;
  char err[CURL_ERROR_SIZE];
  /* plumbing */
  uv_async_t async;
  int done;   /* set on the loop thread by the async callback */
  int closed; /* async handle closed */
  pthread_t thread;
} req_t;

static size_t on_body(char *p, size_t size, size_t n, void *arg) {
  req_t *r = arg;
  char *b = realloc(r->body, r->len + size * n + 1);
  if (!b)
    return 0;
  memcpy(b + r->len, p, size * n);
  r->body = b;
  r->len += size * n;
  b[r->len] = '\0';
  return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg) {
  req_t *r = arg;
  size_t len = size * n;
  if (len > 6 && !strncasecmp(p, "Allow:", 6)) {
    size_t v = 6;
    while (v < len && p[v] == ' ')
      v++;
    snprintf(r->allow, sizeof(r->allow), "%.*s", (int)(len - v), p + v);
    r->allow[strcspn(r->allow, "\r\n")] = '\0';
  }
  return len;
}

static void *req_thread(void *arg) {
  req_t *r = arg;
  CURL *c = curl_easy_init();
  struct curl_slist *hdrs = NULL;
  char *post = NULL, *big = NULL;
  char *ct = NULL;
  if (!c) {
    r->rc = CURLE_FAILED_INIT;
    goto out;
  }
  curl_easy_setopt(c, CURLOPT_URL, r->url);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)WAIT_MS);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  if (!strcmp(r->method, "HEAD")) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (!strcmp(r->method, "POST")) {
    if (r->post_len) {
      post = malloc(r->post_len);
      if (post)
        memset(post, 'p', r->post_len);
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)r->post_len);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    } else {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, "a=1");
    }
  } else if (!strcmp(r->method, "GET-BODY")) {
    /* GET with a 64 KiB body sent without waiting for 100-continue. */
    post = malloc(64 * 1024);
    if (post)
      memset(post, 'g', 64 * 1024);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 64L * 1024L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
    hdrs = curl_slist_append(hdrs, "Expect:");
  } else if (strcmp(r->method, "GET") != 0) {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
  }
  if (r->big_header) {
    big = malloc(r->big_header + 8);
    if (big) {
      memcpy(big, "X-Big: ", 7);
      memset(big + 7, 'b', r->big_header);
      big[7 + r->big_header] = '\0';
      hdrs = curl_slist_append(hdrs, big);
    }
  }
  if (hdrs)
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  r->rc = curl_easy_perform(c);
  if (r->twice && r->rc == CURLE_OK) {
    r->rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &r->second_connects);
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
    snprintf(r->ctype, sizeof(r->ctype), "%s", ct);
  curl_easy_cleanup(c);
  curl_slist_free_all(hdrs);
  free(post);
  free(big);
out:
  uv_async_send(&r->async); /* thread-safe: wakes the loop */
  return NULL;
}

static void on_async(uv_async_t *h) {
  ((req_t *)h->data)->done = 1;
}

static void on_async_closed(uv_handle_t *h) {
  ((req_t *)h->data)->closed = 1;
}

static int pred_done(const void *arg) {
  return ((const req_t *)arg)->done;
}

static int pred_closed(const void *arg) {
  return ((const req_t *)arg)->closed;
}

/* Starts a request on its own thread (the loop must run to serve it). */
static void req_start(fx_t *fx, req_t *r, const char *method,
                      const char *path) {
  memset(r, 0, sizeof(*r));
  snprintf(r->url, sizeof(r->url), "%s%s", fx->base, path);
  r->method = method;
  assert_int_equal(uv_async_init(&fx->loop, &r->async, on_async), 0);
  r->async.data = r;
}

static void req_launch(req_t *r) {
  assert_int_equal(pthread_create(&r->thread, NULL, req_thread, r), 0);
}

/* Runs the loop until the request's thread is done, then joins it. */
static void req_finish(fx_t *fx, req_t *r) {
  assert_true(run_until(fx, pred_done, r, WAIT_MS + 5000));
  pthread_join(r->thread, NULL);
  uv_close((uv_handle_t *)&r->async, on_async_closed);
  assert_true(run_until(fx, pred_closed, r, WAIT_MS));
}

static void req_free(req_t *r) {
  free(r->body);
  r->body = NULL;
}

/* One request, start to finish. */
static void request(fx_t *fx, req_t *r, const char *method, const char *path) {
  req_start(fx, r, method, path);
  req_launch(r);
  req_finish(fx, r);
}

/* ---- the endpoints ---- */

static void test_metrics_endpoint(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  brw_metrics_inc(fx->m, BRW_M_EVENTS_MERGED, NULL, 42);
  brw_metrics_inc(fx->m, BRW_M_DLQ_RECORDS, "not_found", 3);
  request(fx, &r, "GET", "/metrics");
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(strncmp(r.ctype, "text/plain; version=0.0.4", 25), 0);
  assert_non_null(r.body);
  assert_non_null(
      strstr(r.body, "# TYPE bsg_report_worker_events_merged_total counter\n"));
  assert_non_null(
      strstr(r.body, "\nbsg_report_worker_events_merged_total 42\n"));
  assert_non_null(strstr(
      r.body,
      "\nbsg_report_worker_dlq_records_total{reason=\"not_found\"} 3\n"));
  assert_non_null(strstr(r.body, "bsg_report_worker_build_info{version=\""));
  req_free(&r);

  /* The next scrape sees the registry as it is now. */
  brw_metrics_inc(fx->m, BRW_M_EVENTS_MERGED, NULL, 1);
  request(fx, &r, "GET", "/metrics?x=1");
  assert_int_equal(r.status, 200);
  assert_non_null(
      strstr(r.body, "\nbsg_report_worker_events_merged_total 43\n"));
  req_free(&r);

  /* HEAD: same status and type, no body. */
  request(fx, &r, "HEAD", "/metrics");
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_int_equal(strncmp(r.ctype, "text/plain; version=0.0.4", 25), 0);
  assert_int_equal(r.len, 0);
  req_free(&r);
  fx_close(fx);
}

static void test_healthz(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  request(fx, &r, "GET", "/healthz");
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  assert_int_equal(strncmp(r.ctype, "text/plain", 10), 0);
  req_free(&r);
  assert_int_equal(fx->ready_calls, 0); /* liveness does not ask readiness */
  fx_close(fx);
}

/* A scraper's connection is kept alive between requests. */
static void test_keep_alive(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  req_start(fx, &r, "GET", "/healthz");
  r.twice = 1;
  req_launch(&r);
  req_finish(fx, &r);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\nok\n");
  assert_int_equal(r.second_connects, 0); /* the first connection, reused */
  req_free(&r);
  fx_close(fx);
}

static void test_readyz(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  fx->ready.kafka = fx->ready.topic = fx->ready.assigned = fx->ready.accounts =
      1;
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.ctype, "application/json");
  assert_string_equal(
      r.body, "{\"ready\":true,\"kafka\":true,\"topic\":true,"
              "\"assigned\":true,\"accounts\":true,"
              "\"starting\":false,\"stopping\":false,\"blocked\":{}}\n");
  assert_int_equal(fx->ready_calls, 1);
  req_free(&r);

  fx->ready.kafka = 0;
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 503);
  assert_string_equal(
      r.body, "{\"ready\":false,\"kafka\":false,\"topic\":true,"
              "\"assigned\":true,\"accounts\":true,"
              "\"starting\":false,\"stopping\":false,\"blocked\":{}}\n");
  req_free(&r);

  fx->ready.kafka = 1;
  fx->ready.accounts = 0;
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 503);
  assert_non_null(strstr(r.body, "\"accounts\":false"));
  req_free(&r);

  fx->ready.accounts = 0;
  fx->ready.starting = 1;
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 503);
  assert_non_null(strstr(r.body, "\"starting\":true,\"stopping\":false"));
  req_free(&r);

  fx->ready.starting = 0;
  fx->ready.accounts = 1;
  fx->ready.stopping = 1;
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 503);
  assert_non_null(strstr(r.body, "\"ready\":false"));
  assert_non_null(strstr(r.body, "\"stopping\":true"));
  req_free(&r);
  assert_int_equal(fx->ready_calls, 5);
  fx_close(fx);
}

/* A missing input topic, and a reason in `blocked` alone, each make the
 * worker not ready; the reasons are passed through as given. */
static void test_readyz_topic_and_blocked(void **state) {
  fx_t *fx = *state;
  req_t r;
  json_t *body;
  fx_open(fx);
  fx->ready.kafka = fx->ready.assigned = fx->ready.accounts = 1;
  fx->ready.topic = 0;
  fx->ready.blocked = json_pack("{s{sb sI ss}}", "input_topic_missing", "ready",
                                0, "seconds", (json_int_t)12, "detail",
                                "topic \"typo.events\" does not exist");
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 503);
  body = json_loads(r.body, 0, NULL);
  assert_non_null(body);
  assert_true(json_is_false(json_object_get(body, "ready")));
  assert_true(json_is_false(json_object_get(body, "topic")));
  assert_true(json_is_true(json_object_get(body, "kafka")));
  assert_true(json_equal(json_object_get(body, "blocked"), fx->ready.blocked));
  json_decref(body);
  req_free(&r);

  /* Every boolean true, but a reason marked not ready holds. */
  fx->ready.topic = 1;
  fx->ready.not_ready = 1;
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 503);
  assert_non_null(strstr(r.body, "\"ready\":false"));
  req_free(&r);

  /* A reason that does not block readiness is listed while ready. */
  fx->ready.not_ready = 0;
  json_decref(fx->ready.blocked);
  fx->ready.blocked = json_pack("{s{sb sI}}", "producer_backlog", "ready", 1,
                                "seconds", (json_int_t)3);
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"ready\":true"));
  assert_non_null(strstr(r.body, "\"blocked\":{\"producer_backlog\":{"));
  req_free(&r);
  fx_close(fx);
}

/* /healthz follows the liveness callback: 503 with the reason while the
 * loop is starved, "ok" again after. */
static void test_healthz_starved(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  brw_admin_set_live_cb(fx->a, on_live, fx);
  request(fx, &r, "GET", "/healthz");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  req_free(&r);
  fx->starved = 42;
  request(fx, &r, "GET", "/healthz");
  assert_int_equal(r.status, 503);
  assert_string_equal(r.body, "starved: event loop 42 s late\n");
  req_free(&r);
  fx->starved = 0;
  request(fx, &r, "GET", "/healthz");
  assert_int_equal(r.status, 200);
  req_free(&r);
  assert_int_equal(fx->live_calls, 3);
  assert_int_equal(fx->ready_calls, 0);
  fx_close(fx);
}

/* Without a readiness callback the server is always ready. */
static void test_readyz_default(void **state) {
  fx_t *fx = *state;
  req_t r;
  char err[256];
  fx_open_loop(fx);
  assert_int_equal(brw_admin_new(&fx->loop, "127.0.0.1:0", fx->m, NULL, NULL,
                                 &fx->a, err, sizeof(err)),
                   0);
  snprintf(fx->base, sizeof(fx->base), "http://127.0.0.1:%d",
           brw_admin_port(fx->a));
  request(fx, &r, "GET", "/readyz");
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"ready\":true"));
  req_free(&r);
  fx_close(fx);
}

static void test_not_found(void **state) {
  fx_t *fx = *state;
  const char *paths[] = {"/", "/nope", "/metrics/x", "/healthz/", "/METRICS"};
  req_t r;
  fx_open(fx);
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    request(fx, &r, "GET", paths[i]);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 404);
    req_free(&r);
  }
  fx_close(fx);
}

static void test_method_not_allowed(void **state) {
  fx_t *fx = *state;
  const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS"};
  req_t r;
  fx_open(fx);
  for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
    request(fx, &r, methods[i], "/metrics");
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, HEAD");
    req_free(&r);
  }
  /* A large body is never read: the answer comes at once (curl waits for
   * 100-continue and gets the 405 instead). */
  req_start(fx, &r, "POST", "/metrics");
  r.post_len = 4 * 1024 * 1024;
  req_launch(&r);
  req_finish(fx, &r);
  assert_int_equal(r.status, 405);
  req_free(&r);
  /* The server is still fine. */
  request(fx, &r, "GET", "/healthz");
  assert_int_equal(r.status, 200);
  req_free(&r);
  fx_close(fx);
}

/* A GET with a body is answered without reading the body. */
static void test_get_with_body(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  req_start(fx, &r, "GET-BODY", "/healthz");
  req_launch(&r);
  req_finish(fx, &r);
  assert_int_equal(r.rc, CURLE_OK);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "ok\n");
  req_free(&r);
  fx_close(fx);
}

/* A request head over the cap is refused, and the server carries on. */
static void test_request_too_large(void **state) {
  fx_t *fx = *state;
  req_t r;
  fx_open(fx);
  req_start(fx, &r, "GET", "/metrics");
  r.big_header = 64 * 1024;
  req_launch(&r);
  req_finish(fx, &r);
  /* MHD answers 431 (or closes); either way no 200. */
  assert_true(r.rc != CURLE_OK || r.status >= 400);
  req_free(&r);
  request(fx, &r, "GET", "/healthz");
  assert_int_equal(r.status, 200);
  req_free(&r);
  fx_close(fx);
}

/* ---- the loop is never blocked ---- */

static int connect_port(int port) {
  struct sockaddr_in sin;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  memset(&sin, 0, sizeof(sin));
  sin.sin_family = AF_INET;
  sin.sin_port = htons((uint16_t)port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
  return fd;
}

/* A client that sends half a request and stalls holds up nobody; several
 * clients at once are all served. */
static void test_concurrent_and_stalled(void **state) {
  fx_t *fx = *state;
  enum { N = 8 };
  req_t r[N];
  const char *half = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  int stalled;
  fx_open(fx);
  stalled = connect_port(brw_admin_port(fx->a));
  assert_int_equal(send(stalled, half, strlen(half), 0), (ssize_t)strlen(half));
  for (int i = 0; i < N; i++) {
    req_start(fx, &r[i], "GET", i % 2 ? "/metrics" : "/healthz");
    req_launch(&r[i]);
  }
  for (int i = 0; i < N; i++) {
    req_finish(fx, &r[i]);
    assert_int_equal(r[i].rc, CURLE_OK);
    assert_int_equal(r[i].status, 200);
    req_free(&r[i]);
  }
  close(stalled);
  fx_close(fx);
}

/* Reads from a raw client socket while the loop runs, until `want` appears
 * in what was read or the connection ends. Returns the bytes read. */
static size_t read_until(fx_t *fx, int fd, char *buf, size_t len,
                         const char *want) {
  size_t got = 0;
  uint64_t deadline;
  uv_update_time(&fx->loop);
  deadline = uv_now(&fx->loop) + WAIT_MS;
  buf[0] = '\0';
  uv_timer_start(&fx->tick, on_tick, 5, 5);
  while (uv_now(&fx->loop) < deadline && !strstr(buf, want)) {
    ssize_t n;
    uv_run(&fx->loop, UV_RUN_ONCE);
    n = recv(fd, buf + got, len - 1 - got, MSG_DONTWAIT);
    if (n == 0)
      break;
    if (n > 0) {
      got += (size_t)n;
      buf[got] = '\0';
    }
    uv_update_time(&fx->loop);
  }
  uv_timer_stop(&fx->tick);
  return got;
}

/* Pipelined requests arrive in one read: MHD has the second one buffered
 * with no further socket event, and only its timeout (0) makes the loop
 * run it again. */
static void test_pipelined(void **state) {
  fx_t *fx = *state;
  const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n";
  char buf[4096];
  int fd;
  fx_open(fx);
  fx->ready.kafka = fx->ready.topic = fx->ready.assigned = fx->ready.accounts =
      1;
  fd = connect_port(brw_admin_port(fx->a));
  assert_int_equal(send(fd, two, strlen(two), 0), (ssize_t)strlen(two));
  read_until(fx, fd, buf, sizeof(buf), "\"blocked\":{}}");
  assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
  assert_non_null(strstr(buf, "\r\n\r\nok\n"));
  assert_non_null(strstr(buf, "{\"ready\":true"));
  close(fd);
  fx_close(fx);
}

/* ---- start-up errors ---- */

static void test_bad_listen(void **state) {
  fx_t *fx = *state;
  const char *bad[] = {
      "nonsense",        "127.0.0.1",        "127.0.0.1:",   "127.0.0.1:abc",
      "127.0.0.1:70000", "127.0.0.1:123456", "::1:80",       "[::1]",
      "[]:80",           "[::1:80",          "127.0.0.1:-1", ""};
  char err[256];
  brw_admin_t *a = NULL;
  fx_open_loop(fx);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    err[0] = '\0';
    assert_int_equal(brw_admin_new(&fx->loop, bad[i], fx->m, NULL, NULL, &a,
                                   err, sizeof(err)),
                     BRW_ECONFIG);
    assert_null(a);
    assert_int_equal(strncmp(err, "metrics.listen: ", 16), 0);
  }
  assert_int_equal(brw_admin_new(&fx->loop, "127.0.0.1:0", NULL, NULL, NULL, &a,
                                 err, sizeof(err)),
                   BRW_EINVAL);
  assert_int_equal(
      brw_admin_new(NULL, "127.0.0.1:0", fx->m, NULL, NULL, &a, NULL, 0),
      BRW_EINVAL);
  assert_null(a);
  fx_close(fx);
}

static void test_port_in_use(void **state) {
  fx_t *fx = *state;
  char listen[64], err[256];
  brw_admin_t *b = NULL;
  fx_open(fx);
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", brw_admin_port(fx->a));
  assert_int_equal(
      brw_admin_new(&fx->loop, listen, fx->m, NULL, NULL, &b, err, sizeof(err)),
      BRW_EIO);
  assert_null(b);
  assert_non_null(strstr(err, listen)); /* the message names the address */
  assert_non_null(strstr(err, "in use"));
  fx_close(fx);
}

/* The other accepted forms: a host name, and IPv6 where the host has it. */
static void test_listen_forms(void **state) {
  fx_t *fx = *state;
  char err[256];
  req_t r;
  int rc;
  fx_open_loop(fx);
  assert_int_equal(brw_admin_new(&fx->loop, "localhost:0", fx->m, NULL, NULL,
                                 &fx->a, err, sizeof(err)),
                   0);
  assert_true(brw_admin_port(fx->a) > 0);
  fx_admin_close(fx);
  rc = brw_admin_new(&fx->loop, "[::1]:0", fx->m, NULL, NULL, &fx->a, err,
                     sizeof(err));
  if (rc == 0) {
    snprintf(fx->base, sizeof(fx->base), "http://[::1]:%d",
             brw_admin_port(fx->a));
    request(fx, &r, "GET", "/healthz");
    assert_int_equal(r.status, 200);
    req_free(&r);
  } else {
    /* No IPv6 on this host: a bind error, not a config error. */
    assert_int_equal(rc, BRW_EIO);
    fx->a = NULL;
  }
  fx_close(fx);
  assert_int_equal(fx->closed, rc == 0 ? 2 : 1);
}

/* ---- shutdown ---- */

static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  assert_non_null(d);
  while ((e = readdir(d)))
    n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Close frees the port at once, leaves no descriptor open, and the loop
 * closes cleanly, even with a client still connected. */
static void test_close(void **state) {
  fx_t *fx = *state;
  const char *get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  char listen[64], err[256], buf[512];
  int fds_before, port, idle;
  ssize_t n;
  fx_open_loop(fx);
  fds_before = count_fds();
  assert_int_equal(brw_admin_new(&fx->loop, "127.0.0.1:0", fx->m, NULL, NULL,
                                 &fx->a, err, sizeof(err)),
                   0);
  port = brw_admin_port(fx->a);
  /* A keep-alive client that got its answer and stays connected. */
  idle = connect_port(port);
  assert_int_equal(send(idle, get, strlen(get), 0), (ssize_t)strlen(get));
  assert_true(read_until(fx, idle, buf, sizeof(buf), "\r\n\r\nok\n") > 0);
  assert_int_equal(strncmp(buf, "HTTP/1.1 200", 12), 0);
  /* Kept alive: still open, nothing more to read. */
  n = recv(idle, buf, sizeof(buf), MSG_DONTWAIT);
  assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));

  fx_admin_close(fx);
  assert_int_equal(fx->closed, 0); /* never before the handles are closed */
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(fx->closed, 1);
  /* The idle client sees the connection closed. */
  n = recv(idle, buf, sizeof(buf), 0);
  assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
  close(idle);
  assert_int_equal(count_fds(), fds_before);
  /* The same port can be bound again. */
  snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
  assert_int_equal(brw_admin_new(&fx->loop, listen, fx->m, NULL, NULL, &fx->a,
                                 err, sizeof(err)),
                   0);
  assert_int_equal(brw_admin_port(fx->a), port);
  fx_close(fx);
  assert_int_equal(fx->closed, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_metrics_endpoint, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_healthz, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_keep_alive, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_readyz, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_readyz_topic_and_blocked, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_healthz_starved, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_readyz_default, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_not_found, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_method_not_allowed, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_get_with_body, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_request_too_large, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_and_stalled, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(test_pipelined, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_bad_listen, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_port_in_use, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_listen_forms, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(test_close, fx_setup, fx_teardown),
  };
  int rc;
  brw_log_setup(BRW_LOG_ERROR, BRW_LOG_TEXT, "test_admin");
  curl_global_init(CURL_GLOBAL_DEFAULT);
  rc = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  brw_log_cleanup();
  return rc;
}
