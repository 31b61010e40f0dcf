/* The stall-reason registry (src/health.c) and the log rate limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/health.h"
#include "brw/log.h"

#include <string.h>

static void test_names_match_metric_labels(void **state) {
  (void)state;
  const brw_metric_def_t *d = brw_metrics_def(BRW_M_BLOCKED);
  assert_non_null(d->known);
  int i = 0;
  for (; d->known[i]; i++)
    assert_string_equal(d->known[i], brw_health_name((brw_block_t)i));
  assert_int_equal(i, BRW_BLOCK__COUNT);
  assert_null(brw_health_name(BRW_BLOCK__COUNT));
}

static void test_raise_clear_and_readiness(void **state) {
  (void)state;
  brw_log_setup(BRW_LOG_OFF, BRW_LOG_JSON, NULL);
  brw_metrics_t *m = brw_metrics_new();
  brw_health_t *h = brw_health_new(m);
  assert_true(brw_health_ready(h));
  /* A reason that does not block readiness. */
  brw_health_raise(h, BRW_BLOCK_MAX_TRACKED, 1000, "%d campaigns", 5);
  assert_true(brw_health_ready(h));
  assert_string_equal(brw_health_detail(h, BRW_BLOCK_MAX_TRACKED),
                      "5 campaigns");
  /* One that does. */
  brw_health_raise(h, BRW_BLOCK_TOPIC_MISSING, 2000, "topic %s", "x");
  assert_false(brw_health_ready(h));
  assert_int_equal(brw_metrics_get(m, BRW_M_BLOCKED, "input_topic_missing"),
                   1);
  /* Raising again updates the detail and counts no second raise. */
  brw_health_raise(h, BRW_BLOCK_TOPIC_MISSING, 3000, "topic %s", "y");
  assert_string_equal(brw_health_detail(h, BRW_BLOCK_TOPIC_MISSING),
                      "topic y");
  assert_int_equal(
      brw_metrics_get(m, BRW_M_BLOCKED_TOTAL, "input_topic_missing"), 1);
  assert_int_equal(brw_health_held_ms(h, BRW_BLOCK_TOPIC_MISSING, 5000),
                   3000);
  json_t *j = brw_health_json(h, 5000);
  assert_non_null(json_object_get(j, "input_topic_missing"));
  assert_int_equal(json_integer_value(json_object_get(
                       json_object_get(j, "input_topic_missing"), "seconds")),
                   3);
  assert_true(json_is_false(json_object_get(
      json_object_get(j, "input_topic_missing"), "ready")));
  assert_null(json_object_get(j, "kafka_down"));
  json_decref(j);
  brw_health_clear(h, BRW_BLOCK_TOPIC_MISSING, 6000);
  assert_true(brw_health_ready(h));
  assert_null(brw_health_detail(h, BRW_BLOCK_TOPIC_MISSING));
  assert_int_equal(brw_metrics_get(m, BRW_M_BLOCKED, "input_topic_missing"),
                   0);
  /* A second episode counts again. */
  brw_health_set(h, BRW_BLOCK_TOPIC_MISSING, 1, 7000, NULL);
  assert_int_equal(
      brw_metrics_get(m, BRW_M_BLOCKED_TOTAL, "input_topic_missing"), 2);
  assert_null(brw_health_detail(h, BRW_BLOCK_TOPIC_MISSING));
  brw_health_tick(h, 7000 + BRW_HEALTH_RELOG_MS);
  brw_health_free(h);
  brw_metrics_free(m);
}

/* A detail that quotes a secret across its 512-byte cut keeps no prefix of
 * it: redacted whole, then cut. */
static void test_detail_redacted_before_cut(void **state) {
  (void)state;
  brw_log_setup(BRW_LOG_OFF, BRW_LOG_JSON, NULL);
  const char *key = "live_health_secret_0123456789";
  brw_log_pin_secret(key);
  brw_health_t *h = brw_health_new(NULL);
  brw_health_raise(h, BRW_BLOCK_ACCOUNT_AUTH, 1, "%0500d %s", 0, key);
  const char *d = brw_health_detail(h, BRW_BLOCK_ACCOUNT_AUTH);
  assert_non_null(d);
  assert_null(strstr(d, "live_h"));
  assert_non_null(strstr(d, "[RED"));
  brw_health_free(h);
  brw_log_cleanup();
}

static void test_log_limit(void **state) {
  (void)state;
  brw_log_limit_t l = {0};
  uint64_t sup = 99;
  uint64_t total0 = brw_log_suppressed_total();
  assert_true(brw_log_limit(&l, 100, 1000, &sup));
  assert_int_equal(sup, 0);
  assert_false(brw_log_limit(&l, 200, 1000, &sup));
  assert_false(brw_log_limit(&l, 1099, 1000, &sup));
  assert_true(brw_log_limit(&l, 1100, 1000, &sup));
  assert_int_equal(sup, 2);
  assert_false(brw_log_limit(&l, 1101, 1000, NULL));
  assert_true(brw_log_limit(&l, 5000, 1000, &sup));
  assert_int_equal(sup, 1);
  /* Every held-back line counts process-wide (log_lines_suppressed_total). */
  assert_int_equal(brw_log_suppressed_total() - total0, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names_match_metric_labels),
      cmocka_unit_test(test_raise_clear_and_readiness),
      cmocka_unit_test(test_detail_redacted_before_cut),
      cmocka_unit_test(test_log_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
