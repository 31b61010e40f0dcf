/* Unit tests of the §4 report: shape, key order, metrics. The built text is
 * parsed back with jansson and checked field by field. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/bsg.h"
#include "brw/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 2026-11-27T10:00:00Z */
#define T0 INT64_C(1795773600000)

static const char *const DETAIL =
    "{\"data\":{\"id\":53651994,\"name\":\"Black Friday\",\"sender\":\"BSG\","
    "\"type\":\"sms\",\"status\":\"done\","
    "\"started_at\":\"2026-11-27 10:00:00\","
    "\"actual_start_at\":\"2026-11-27 10:00:05\","
    "\"created_at\":\"2026-11-27 09:00:00\","
    "\"finished_at\":\"2026-11-27 10:09:06\","
    "\"statistics\":{\"delivered\":7,\"undelivered\":3},"
    "\"total_messages\":10,\"total_phones\":10,\"total_price\":\"0.16\","
    "\"currency\":\"USD\"}}";

static void parse_detail(const char *body, brw_detail_t *d) {
  char err[128];
  if (brw_detail_parse(body, strlen(body), 0, d, err, sizeof(err)) != 0)
    fail_msg("detail rejected: %s", err);
}

static brw_report_input_t base_input(const brw_detail_t *d) {
  brw_report_input_t in = {
      .campaign_id = 53651994,
      .account = "default",
      .final = 1,
      .outcome = "done",
      .detail = d,
      .events = 2,
      .polls = 5,
      .first_event_ms = T0 - 60000,
      .reported_ms = T0 + 600000,
      .source_topic = "bsg.campaign.events",
      .source_partition = 3,
      .source_offset = 41,
      .worker_version = "0.1.0",
      .worker_instance = "host-1",
      .traceparent = NULL,
  };
  return in;
}

/* Builds the report, checks the returned length, and parses it back. */
static json_t *build(const brw_report_input_t *in, char **text_out) {
  size_t len = 0;
  char *text = brw_report_build(in, &len);
  json_error_t jerr;
  assert_non_null(text);
  assert_int_equal(len, strlen(text));
  /* Compact: one line. */
  assert_null(strchr(text, '\n'));
  json_t *root = json_loads(text, 0, &jerr);
  if (!root)
    fail_msg("report is not JSON: %s\n%s", jerr.text, text);
  if (text_out)
    *text_out = text;
  else
    free(text);
  return root;
}

static json_t *path(json_t *root, const char *a, const char *b) {
  json_t *v = json_object_get(root, a);
  return b ? json_object_get(v, b) : v;
}

static void assert_keys(json_t *obj, const char *const *keys, size_t n) {
  const char *key;
  json_t *v;
  size_t i = 0;
  assert_true(json_is_object(obj));
  assert_int_equal(json_object_size(obj), n);
  /* jansson keeps insertion order, so this checks the text's order. */
  json_object_foreach(obj, key, v) {
    assert_true(i < n);
    assert_string_equal(key, keys[i]);
    i++;
  }
}

static void test_shape(void **state) {
  (void)state;
  static const char *const top[] = {"schema",  "campaign_id", "account",
                                    "final",   "outcome",     "campaign",
                                    "metrics", "tracking",    "worker"};
  static const char *const metrics[] = {"delivery_rate", "failure_rate",
                                        "pending", "duration_seconds"};
  static const char *const tracking[] = {"events", "polls", "first_event_at",
                                         "reported_at", "source"};
  static const char *const source[] = {"topic", "partition", "offset"};
  static const char *const worker[] = {"version", "instance"};
  brw_detail_t d;
  parse_detail(DETAIL, &d);
  brw_report_input_t in = base_input(&d);
  json_t *r = build(&in, NULL);

  assert_keys(r, top, 9);
  assert_keys(path(r, "metrics", NULL), metrics, 4);
  assert_keys(path(r, "tracking", NULL), tracking, 5);
  assert_keys(path(path(r, "tracking", NULL), "source", NULL), source, 3);
  assert_keys(path(r, "worker", NULL), worker, 2);

  assert_string_equal(json_string_value(path(r, "schema", NULL)),
                      "bsg.campaign.report.v1");
  assert_true(json_is_integer(path(r, "campaign_id", NULL)));
  assert_true(json_integer_value(path(r, "campaign_id", NULL)) == 53651994);
  assert_string_equal(json_string_value(path(r, "account", NULL)), "default");
  assert_true(json_is_true(path(r, "final", NULL)));
  assert_string_equal(json_string_value(path(r, "outcome", NULL)), "done");

  /* The campaign object is the detail's, unchanged. */
  assert_true(json_equal(path(r, "campaign", NULL), d.campaign));
  assert_string_equal(json_string_value(path(r, "campaign", "started_at")),
                      "2026-11-27T10:00:00Z");
  assert_string_equal(json_string_value(path(r, "campaign", "total_price")),
                      "0.16");

  json_t *t = path(r, "tracking", NULL);
  assert_int_equal(json_integer_value(json_object_get(t, "events")), 2);
  assert_int_equal(json_integer_value(json_object_get(t, "polls")), 5);
  assert_string_equal(json_string_value(json_object_get(t, "first_event_at")),
                      "2026-11-27T09:59:00Z");
  assert_string_equal(json_string_value(json_object_get(t, "reported_at")),
                      "2026-11-27T10:10:00Z");
  json_t *s = json_object_get(t, "source");
  assert_string_equal(json_string_value(json_object_get(s, "topic")),
                      "bsg.campaign.events");
  assert_int_equal(json_integer_value(json_object_get(s, "partition")), 3);
  assert_int_equal(json_integer_value(json_object_get(s, "offset")), 41);
  assert_string_equal(json_string_value(path(r, "worker", "version")), "0.1.0");
  assert_string_equal(json_string_value(path(r, "worker", "instance")),
                      "host-1");
  assert_null(path(r, "traceparent", NULL));

  json_decref(r);
  brw_detail_clear(&d);
}

static void test_metrics(void **state) {
  (void)state;
  brw_detail_t d;
  char *text;
  parse_detail(DETAIL, &d);
  brw_report_input_t in = base_input(&d);
  json_t *r = build(&in, &text);
  json_t *m = path(r, "metrics", NULL);

  /* delivered 7, undelivered 3, total 10. */
  assert_true(json_is_real(json_object_get(m, "delivery_rate")));
  assert_true(json_is_real(json_object_get(m, "failure_rate")));
  assert_true(fabs(json_real_value(json_object_get(m, "delivery_rate")) - 0.7) <
              1e-12);
  assert_true(fabs(json_real_value(json_object_get(m, "failure_rate")) - 0.3) <
              1e-12);
  /* Printed as written, not as 0.69999999999999996. */
  assert_non_null(strstr(text, "\"delivery_rate\":0.7,"));
  assert_non_null(strstr(text, "\"failure_rate\":0.3,"));
  assert_int_equal(json_integer_value(json_object_get(m, "pending")), 0);
  /* 10:09:06 - 10:00:05 (the actual start wins). */
  assert_true(json_is_integer(json_object_get(m, "duration_seconds")));
  assert_int_equal(json_integer_value(json_object_get(m, "duration_seconds")),
                   541);
  free(text);
  json_decref(r);
  brw_detail_clear(&d);
}

static double rate_of(json_t *r, const char *key) {
  json_t *v = path(r, "metrics", key);
  if (!json_is_real(v))
    fail_msg("metrics.%s is not a real", key);
  return json_real_value(v);
}

static void test_rates_rounding_and_fallback_total(void **state) {
  (void)state;
  brw_detail_t d;
  /* No total_messages: the sum of all counters (unknown ones included) is
   * the denominator: 2 / 3 rounds to 0.6667. */
  parse_detail("{\"data\":{\"id\":1,\"status\":\"sending\",\"statistics\":{"
               "\"delivered\":2,\"sent\":0,\"clicks\":1}}}",
               &d);
  brw_report_input_t in = base_input(&d);
  in.final = 0;
  in.outcome = "sending";
  json_t *r = build(&in, NULL);
  assert_true(fabs(rate_of(r, "delivery_rate") - 0.6667) < 1e-12);
  assert_true(fabs(rate_of(r, "failure_rate")) < 1e-12);
  assert_true(json_is_false(path(r, "final", NULL)));
  assert_string_equal(json_string_value(path(r, "outcome", NULL)), "sending");
  json_decref(r);
  brw_detail_clear(&d);

  /* total_messages wins when larger than the counters' sum: 1 / 3. */
  parse_detail("{\"data\":{\"id\":1,\"status\":\"sending\",\"total_messages\":"
               "\"3\",\"statistics\":{\"delivered\":1,\"failed\":1}}}",
               &d);
  in = base_input(&d);
  r = build(&in, NULL);
  assert_true(fabs(rate_of(r, "delivery_rate") - 0.3333) < 1e-12);
  assert_true(fabs(rate_of(r, "failure_rate") - 0.3333) < 1e-12);
  json_decref(r);
  brw_detail_clear(&d);

  /* A total_messages smaller than the counters' own sum (9) gave rates
   * over 1 when it was the denominator; the larger of the two keeps them
   * in [0, 1]: 1 / 9 = 0.1111. */
  parse_detail("{\"data\":{\"id\":1,\"status\":\"sending\",\"total_messages\":"
               "\"3\",\"statistics\":{\"delivered\":1,\"failed\":1,"
               "\"sent\":5,\"accepted\":2}}}",
               &d);
  in = base_input(&d);
  r = build(&in, NULL);
  assert_true(fabs(rate_of(r, "delivery_rate") - 0.1111) < 1e-12);
  assert_true(fabs(rate_of(r, "failure_rate") - 0.1111) < 1e-12);
  assert_int_equal(json_integer_value(path(r, "metrics", "pending")), 7);
  json_decref(r);
  brw_detail_clear(&d);
}

/* A rate member is null or a number in [0, 1] (report.schema.json). */
static void assert_rate_in_range(json_t *r, const char *key) {
  json_t *v = path(r, "metrics", key);
  if (json_is_null(v))
    return;
  if (!json_is_real(v) && !json_is_integer(v))
    fail_msg("metrics.%s is neither a number nor null", key);
  double x = json_number_value(v);
  if (!(x >= 0 && x <= 1))
    fail_msg("metrics.%s = %g is outside [0, 1]", key, x);
}

/* Issue 10 item 9: whatever a parsed detail holds, the rates are in
 * [0, 1] and pending >= 0, by construction. The cases: BSG's 13 counters,
 * totals smaller and larger than the counters, counters near INT64_MAX
 * whose sum still fits (the sums must not overflow on the way). */
static void test_rates_within_schema(void **state) {
  (void)state;
  static const char *const bodies[] = {
      "{\"id\":1,\"status\":\"done\",\"total_messages\":100,\"statistics\":"
      "{\"delivered\":40,\"sent\":1,\"scheduled\":2,\"moderation\":3,"
      "\"accepted\":4,\"sending\":5,\"expired\":6,\"failed\":7,"
      "\"undelivered\":8,\"unknown\":9,\"read\":10,\"not_viber_user\":2,"
      "\"not_rcs_user\":3}}",
      "{\"id\":1,\"status\":\"done\",\"total_messages\":1,\"statistics\":"
      "{\"delivered\":500,\"read\":500,\"failed\":1000}}",
      "{\"id\":1,\"status\":\"done\",\"total_messages\":"
      "9223372036854775807,\"statistics\":{\"delivered\":1}}",
      "{\"id\":1,\"status\":\"done\",\"statistics\":{\"delivered\":"
      "4611686018427387904,\"read\":4611686018427387903}}",
      "{\"id\":1,\"status\":\"done\",\"statistics\":[{\"failed\":"
      "9223372036854775806},{\"unknown\":1}]}",
      "{\"id\":1,\"status\":\"done\",\"total_messages\":5,\"statistics\":"
      "{\"unknown\":5}}",
  };
  static const double want_delivery[] = {0.5, 0.5, 0, 1, 0, 0};
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    brw_detail_t d;
    parse_detail(bodies[i], &d);
    brw_report_input_t in = base_input(&d);
    json_t *r = build(&in, NULL);
    assert_rate_in_range(r, "delivery_rate");
    assert_rate_in_range(r, "failure_rate");
    if (fabs(rate_of(r, "delivery_rate") - want_delivery[i]) > 1e-12)
      fail_msg("case %zu: delivery_rate %g, want %g", i,
               rate_of(r, "delivery_rate"), want_delivery[i]);
    assert_true(json_integer_value(path(r, "metrics", "pending")) >= 0);
    json_decref(r);
    brw_detail_clear(&d);
  }
}

/* A detail that did not come from the parser (inconsistent sums) still
 * gives no value the schema forbids: such a rate is null. */
static void test_rates_inconsistent_detail(void **state) {
  (void)state;
  brw_detail_t d;
  parse_detail(DETAIL, &d);
  d.delivered = -159; /* the -1.59 of the issue, with total 100 */
  d.total_messages = 100;
  d.counted = 10;
  d.failed = 1000;
  d.pending = -1;
  brw_report_input_t in = base_input(&d);
  json_t *r = build(&in, NULL);
  assert_true(json_is_null(path(r, "metrics", "delivery_rate")));
  assert_true(json_is_null(path(r, "metrics", "failure_rate")));
  assert_true(json_is_null(path(r, "metrics", "pending")));
  json_decref(r);
  brw_detail_clear(&d);
}

static void test_null_metrics(void **state) {
  (void)state;
  brw_detail_t d;
  /* Total 0 (no counters, total_messages 0) and no times: all null but
   * pending. */
  parse_detail("{\"data\":{\"id\":1,\"status\":\"done\",\"total_messages\":0,"
               "\"statistics\":{\"delivered\":0}}}",
               &d);
  brw_report_input_t in = base_input(&d);
  json_t *r = build(&in, NULL);
  assert_true(json_is_null(path(r, "metrics", "delivery_rate")));
  assert_true(json_is_null(path(r, "metrics", "failure_rate")));
  assert_true(json_is_null(path(r, "metrics", "duration_seconds")));
  assert_true(json_is_integer(path(r, "metrics", "pending")));
  json_decref(r);
  brw_detail_clear(&d);

  /* Duration falls back to the scheduled start, then to creation; a finish
   * before the start is no duration. */
  parse_detail("{\"data\":{\"id\":1,\"status\":\"done\","
               "\"start_date\":\"2026-11-27 10:00:00\","
               "\"finished_at\":\"2026-11-27 10:01:40\"}}",
               &d);
  in = base_input(&d);
  r = build(&in, NULL);
  assert_int_equal(json_integer_value(path(r, "metrics", "duration_seconds")),
                   100);
  json_decref(r);
  brw_detail_clear(&d);
  parse_detail("{\"data\":{\"id\":1,\"status\":\"done\","
               "\"creation_at\":\"2026-11-27 10:00:00\","
               "\"finished_at\":\"2026-11-27 11:00:00\"}}",
               &d);
  in = base_input(&d);
  r = build(&in, NULL);
  assert_int_equal(json_integer_value(path(r, "metrics", "duration_seconds")),
                   3600);
  json_decref(r);
  brw_detail_clear(&d);
  parse_detail("{\"data\":{\"id\":1,\"status\":\"done\","
               "\"actual_start_at\":\"2026-11-27 12:00:00\","
               "\"finished_at\":\"2026-11-27 11:00:00\"}}",
               &d);
  in = base_input(&d);
  r = build(&in, NULL);
  assert_true(json_is_null(path(r, "metrics", "duration_seconds")));
  json_decref(r);
  brw_detail_clear(&d);
}

static void test_expired_without_detail(void **state) {
  (void)state;
  brw_report_input_t in = base_input(NULL);
  in.outcome = "expired";
  in.account = "eu";
  in.first_event_ms = 0;
  json_t *r = build(&in, NULL);
  assert_true(json_is_true(path(r, "final", NULL)));
  assert_string_equal(json_string_value(path(r, "outcome", NULL)), "expired");
  assert_string_equal(json_string_value(path(r, "account", NULL)), "eu");
  assert_non_null(path(r, "campaign", NULL));
  assert_true(json_is_null(path(r, "campaign", NULL)));
  assert_true(json_is_null(path(r, "metrics", "delivery_rate")));
  assert_true(json_is_null(path(r, "metrics", "failure_rate")));
  assert_true(json_is_null(path(r, "metrics", "pending")));
  assert_true(json_is_null(path(r, "metrics", "duration_seconds")));
  /* An unknown first event time is null rather than 1970. */
  assert_true(json_is_null(path(r, "tracking", "first_event_at")));
  json_decref(r);
}

static void test_traceparent(void **state) {
  (void)state;
  const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  char *text;
  brw_report_input_t in = base_input(NULL);
  in.traceparent = tp;
  json_t *r = build(&in, &text);
  assert_string_equal(json_string_value(path(r, "traceparent", NULL)), tp);
  /* Top level and last. */
  const char *k = strstr(text, "\"traceparent\"");
  assert_non_null(k);
  assert_true(k > strstr(text, "\"worker\""));
  assert_int_equal(json_object_size(r), 10);
  free(text);
  json_decref(r);
  /* An empty one is not given. */
  in.traceparent = "";
  r = build(&in, NULL);
  assert_null(path(r, "traceparent", NULL));
  json_decref(r);
  /* tracestate follows it, only with a traceparent. */
  in.tracestate = "rojo=00f067aa0ba902b7";
  r = build(&in, NULL);
  assert_null(path(r, "tracestate", NULL));
  json_decref(r);
  in.traceparent = tp;
  r = build(&in, &text);
  assert_string_equal(json_string_value(path(r, "tracestate", NULL)),
                      "rojo=00f067aa0ba902b7");
  assert_true(strstr(text, "\"tracestate\"") > strstr(text, "\"traceparent\""));
  assert_int_equal(json_object_size(r), 11);
  free(text);
  json_decref(r);
}

static void test_big_id_and_strings(void **state) {
  (void)state;
  brw_report_input_t in = base_input(NULL);
  in.campaign_id = UINT64_C(9007199254740992);
  in.worker_instance = "h\"o\\st\n";
  in.source_offset = INT64_C(123456789012);
  json_t *r = build(&in, NULL);
  assert_true(json_integer_value(path(r, "campaign_id", NULL)) ==
              INT64_C(9007199254740992));
  assert_string_equal(json_string_value(path(r, "worker", "instance")),
                      "h\"o\\st\n");
  assert_true(json_integer_value(path(path(r, "tracking", NULL), "source",
                                      "offset")) == INT64_C(123456789012));
  json_decref(r);
  /* A NULL len pointer and a NULL input are tolerated. */
  char *text = brw_report_build(&in, NULL);
  assert_non_null(text);
  free(text);
  assert_null(brw_report_build(NULL, NULL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shape),
      cmocka_unit_test(test_metrics),
      cmocka_unit_test(test_rates_rounding_and_fallback_total),
      cmocka_unit_test(test_rates_within_schema),
      cmocka_unit_test(test_rates_inconsistent_detail),
      cmocka_unit_test(test_null_metrics),
      cmocka_unit_test(test_expired_without_detail),
      cmocka_unit_test(test_traceparent),
      cmocka_unit_test(test_big_id_and_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
