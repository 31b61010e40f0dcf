/* Unit tests of the log module's redaction (src/log.c): pinned and rotating
 * secrets, the JSON-escaped form, messages cut after redaction, and
 * brw_log_redact_into. The secrets here are made up; a failing assertion
 * prints the line that leaked, so they must not be real ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brw/health.h"
#include "brw/log.h"
#include "brw/metrics.h"

#define KEY "live_k3y_0123456789abcdef"

/* Lines written while a test runs, captured in memory. */
static char *g_buf;
static size_t g_len;
static FILE *g_f;

static int setup(void **state) {
  (void)state;
  g_f = open_memstream(&g_buf, &g_len);
  assert_non_null(g_f);
  brw_log_set_output(g_f);
  brw_log_setup(BRW_LOG_DEBUG, BRW_LOG_JSON, "test");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  brw_log_set_output(NULL);
  fclose(g_f);
  free(g_buf);
  g_buf = NULL;
  g_len = 0;
  brw_log_cleanup();
  brw_log_set_rotating_max(BRW_LOG_MAX_ROTATING);
  return 0;
}

/* What has been written so far (a stable pointer until the next log). */
static const char *captured(void) {
  fflush(g_f);
  return g_buf ? g_buf : "";
}

/* Writes `n` distinct bearers through the rotating set. */
static void add_bearers(int n) {
  char bearer[64];
  for (int i = 0; i < n; i++) {
    snprintf(bearer, sizeof(bearer), "eyJhbGciOiJIUzI1NiJ9.bearer-%04d", i);
    brw_log_add_secret(bearer);
  }
}

/* Issue 10 item 5: the key was evicted by the 65th bearer and then written
 * in clear text. */
static void test_key_survives_many_bearers(void **state) {
  (void)state;
  brw_log_pin_secret(KEY);
  add_bearers(100);
  brw_log_info("login with %s failed", KEY);
  assert_null(strstr(captured(), KEY));
  assert_non_null(strstr(captured(), "login with [REDACTED] failed"));
  assert_int_equal(brw_log_secret_count(1), 1);
  assert_int_equal(brw_log_secret_count(0), BRW_LOG_MAX_ROTATING);
}

/* Rotating secrets are bounded: the oldest bearer is forgotten, the newest
 * ones are still redacted. */
static void test_bearers_rotate(void **state) {
  (void)state;
  add_bearers(BRW_LOG_MAX_ROTATING + 1);
  brw_log_info("old eyJhbGciOiJIUzI1NiJ9.bearer-0000 new "
               "eyJhbGciOiJIUzI1NiJ9.bearer-%04d",
               BRW_LOG_MAX_ROTATING);
  /* The first one was pushed out (bounded memory), the last one is kept. */
  assert_non_null(strstr(captured(), "old eyJhbGciOiJIUzI1NiJ9.bearer-0000"));
  assert_non_null(strstr(captured(), "new [REDACTED]"));
  assert_int_equal(brw_log_secret_count(0), BRW_LOG_MAX_ROTATING);
}

/* The bound can be raised (many accounts) and lowered (the oldest go). */
static void test_rotating_max(void **state) {
  (void)state;
  brw_log_set_rotating_max(200);
  add_bearers(150);
  assert_int_equal(brw_log_secret_count(0), 150);
  brw_log_info("first eyJhbGciOiJIUzI1NiJ9.bearer-0000");
  assert_non_null(strstr(captured(), "first [REDACTED]"));
  brw_log_set_rotating_max(10);
  assert_int_equal(brw_log_secret_count(0), 10);
  brw_log_info("kept eyJhbGciOiJIUzI1NiJ9.bearer-0149 gone "
               "eyJhbGciOiJIUzI1NiJ9.bearer-0139");
  assert_non_null(strstr(captured(), "kept [REDACTED] gone eyJ"));
}

/* A key first seen as rotating and then pinned stays for good; a bearer equal
 * to a pinned key does not unpin it. */
static void test_pin_after_add(void **state) {
  (void)state;
  brw_log_add_secret(KEY);
  brw_log_pin_secret(KEY);
  brw_log_add_secret(KEY);
  add_bearers(200);
  brw_log_warn("%s", KEY);
  assert_null(strstr(captured(), KEY));
  assert_int_equal(brw_log_secret_count(1), 1);
}

/* A secret holding '"' and '\' is escaped by json_dumps, and the raw form no
 * longer matches the line; the escaped form must be redacted too, in the
 * message and in the fields. */
static void test_json_escaped_secret(void **state) {
  (void)state;
  static const char weird[] = "live_q\"uo\\te\x01z";
  brw_log_pin_secret(weird);
  brw_logj(BRW_LOG_INFO, json_pack("{ss}", "error", weird), "got %s", weird);
  const char *out = captured();
  assert_null(strstr(out, "q\\\"uo\\\\te\\u0001z"));
  assert_null(strstr(out, "uo\\\\te"));
  assert_non_null(strstr(out, "\"msg\":\"got [REDACTED]\""));
  assert_non_null(strstr(out, "\"error\":\"[REDACTED]\""));
  /* In text format the raw form is what appears, and it is redacted. */
  brw_log_setup(BRW_LOG_DEBUG, BRW_LOG_TEXT, "test");
  brw_logj(BRW_LOG_INFO, json_pack("{ss}", "error", weird), "text %s", weird);
  out = captured();
  assert_null(strstr(out, "uo\\te"));
  assert_non_null(strstr(out, "text [REDACTED] error=[REDACTED]"));
}

/* A secret that is a part of a longer one: the longer is replaced whole,
 * whatever the order of registration. */
static void test_nested_secrets(void **state) {
  (void)state;
  brw_log_pin_secret("abcd1234");
  brw_log_add_secret("xyz-abcd1234-tail");
  brw_log_info("a=%s b=%s", "xyz-abcd1234-tail", "abcd1234");
  const char *out = captured();
  assert_non_null(strstr(out, "a=[REDACTED] b=[REDACTED]\""));
  assert_null(strstr(out, "tail"));
}

/* A message longer than BRW_LOG_MSG_MAX with a key across the cut: before,
 * the message was cut first and the key's first bytes were written. */
static void test_cut_after_redaction(void **state) {
  (void)state;
  char pad[BRW_LOG_MSG_MAX];
  size_t n = BRW_LOG_MSG_MAX - 10;
  memset(pad, 'p', n);
  pad[n] = '\0';
  brw_log_pin_secret(KEY);
  brw_log_info("%s%s and more", pad, KEY);
  const char *out = captured();
  assert_null(strstr(out, "live_k3y"));
  assert_non_null(strstr(out, "pp[REDACTED]"));
  /* A short secret is ignored rather than hiding every "abc". */
  brw_log_pin_secret("abc");
  assert_int_equal(brw_log_secret_count(1), 1);
}

static void test_redact_into(void **state) {
  (void)state;
  char out[64];
  brw_log_pin_secret(KEY);
  brw_log_add_secret("bearer-xyz-0001");
  size_t n = brw_log_redact_into("HTTP 401: bad key " KEY " / bearer-xyz-0001",
                                 out, sizeof(out));
  assert_string_equal(out, "HTTP 401: bad key [REDACTED] / [REDACTED]");
  assert_int_equal(n, strlen(out));
  /* Cut after redaction: the key's prefix cannot survive a short buffer. */
  char small[24];
  brw_log_redact_into("HTTP 401: key " KEY, small, sizeof(small));
  assert_string_equal(small, "HTTP 401: key [REDACTED");
  /* In place, and NULL. */
  char buf[64];
  snprintf(buf, sizeof(buf), "x %s y", KEY);
  brw_log_redact_into(buf, buf, sizeof(buf));
  assert_string_equal(buf, "x [REDACTED] y");
  brw_log_redact_into(NULL, buf, sizeof(buf));
  assert_string_equal(buf, "");
  /* A cut never splits a UTF-8 sequence. */
  char u[5];
  brw_log_redact_into("ab\xc3\xa9z", u, sizeof(u));
  assert_string_equal(u, "ab\xc3\xa9");
  char u2[4];
  brw_log_redact_into("ab\xc3\xa9z", u2, sizeof(u2));
  assert_string_equal(u2, "ab");
}

/* /readyz shows the detail of a reason, which may quote API text. */
static void test_health_detail_redacted(void **state) {
  (void)state;
  brw_metrics_t *m = brw_metrics_new();
  brw_health_t *h = brw_health_new(m);
  brw_log_pin_secret(KEY);
  brw_health_raise(h, BRW_BLOCK_TOPIC_MISSING, 1000, "API said: %s", KEY);
  assert_string_equal(brw_health_detail(h, BRW_BLOCK_TOPIC_MISSING),
                      "API said: [REDACTED]");
  assert_null(strstr(captured(), KEY));
  brw_health_free(h);
  brw_metrics_free(m);
}

/* A message that is not UTF-8 (API text, an event's key) lost its "msg"
 * member: jansson refused it. Invalid bytes become '?'. */
static void test_msg_not_utf8(void **state) {
  (void)state;
  brw_log_info("bad \xff byte, cut \xe2\x82 and fine \xe2\x82\xac, "
               "surrogate \xed\xa0\x80 overlong \xc0\xaf");
  assert_non_null(strstr(captured(),
                         "\"msg\":\"bad ? byte, cut ?? and fine \xe2\x82\xac, "
                         "surrogate ??? overlong ??\""));
}

static void test_secret_free(void **state) {
  (void)state;
  char buf[8] = "secret!";
  brw_secret_wipe(buf, sizeof(buf));
  for (size_t i = 0; i < sizeof(buf); i++)
    assert_int_equal(buf[i], 0);
  brw_secret_free(NULL);
  brw_secret_free(strdup("x"));
}

/* The trace context of a W3C traceparent, under OpenTelemetry's log names;
 * nothing for one that is not valid. */
static void test_trace_fields(void **state) {
  (void)state;
  json_t *f = json_object();
  brw_log_trace_fields(
      f, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  assert_string_equal(json_string_value(json_object_get(f, "trace_id")),
                      "0af7651916cd43dd8448eb211c80319c");
  assert_string_equal(json_string_value(json_object_get(f, "span_id")),
                      "b7ad6b7169203331");
  assert_string_equal(json_string_value(json_object_get(f, "trace_flags")),
                      "01");
  json_decref(f);
  /* A later version may append fields after a '-'. */
  f = json_object();
  brw_log_trace_fields(
      f, "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-xyz");
  assert_string_equal(json_string_value(json_object_get(f, "trace_id")),
                      "0af7651916cd43dd8448eb211c80319c");
  json_decref(f);
  static const char *const bad[] = {
      NULL,
      "",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
      "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00x",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    f = json_object();
    assert_ptr_equal(brw_log_trace_fields(f, bad[i]), f);
    assert_int_equal(json_object_size(f), 0);
    json_decref(f);
  }
  assert_null(brw_log_trace_fields(NULL, bad[2]));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_key_survives_many_bearers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_bearers_rotate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rotating_max, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pin_after_add, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_escaped_secret, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_nested_secrets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cut_after_redaction, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_redact_into, setup, teardown),
      cmocka_unit_test_setup_teardown(test_health_detail_redacted, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_msg_not_utf8, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secret_free, setup, teardown),
      cmocka_unit_test(test_trace_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
