/* The library versions --version, the start line and the info gauges show
 * (src/versions.c): asked of each library at run time, and the librdkafka
 * that is loaded is the one the build compiled against (the current line's
 * RUNPATH, or Debian's for -DBRW_RDKAFKA=system), never the other line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/versions.h"

#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

static void test_runtime_versions(void **state) {
  brw_lib_version_t v[BRW_VERSIONS_N];
  brw_versions(v);
  assert_string_equal(v[0].name, "librdkafka");
  assert_string_equal(v[0].version, rd_kafka_version_str());
  assert_string_equal(v[1].name, "libcurl");
  assert_string_equal(v[1].version,
                      curl_version_info(CURLVERSION_NOW)->version);
  assert_string_equal(v[2].name, "libuv");
  assert_string_equal(v[2].version, uv_version_string());
  assert_string_equal(v[3].name, "jansson");
  assert_string_equal(v[3].version, jansson_version_str());
}

/* The librdkafka loaded at run time is the one whose header the build used:
 * RD_KAFKA_VERSION is 0xMMmmrrpp (pp 0xff for a release). */
static void test_rdkafka_loaded_is_built_against(void **state) {
  char want[32];
  snprintf(want, sizeof(want), "%d.%d.%d", (RD_KAFKA_VERSION >> 24) & 0xff,
           (RD_KAFKA_VERSION >> 16) & 0xff, (RD_KAFKA_VERSION >> 8) & 0xff);
  assert_int_equal(rd_kafka_version(), RD_KAFKA_VERSION);
  assert_string_equal(rd_kafka_version_str(), want);
}

static void test_line(void **state) {
  char buf[256], want[256];
  brw_lib_version_t v[BRW_VERSIONS_N];
  brw_versions(v);
  brw_versions_line(buf, sizeof(buf));
  snprintf(want, sizeof(want), "librdkafka/%s libcurl/%s libuv/%s jansson/%s",
           v[0].version, v[1].version, v[2].version, v[3].version);
  assert_string_equal(buf, want);
  /* Cut, and terminated. */
  brw_versions_line(buf, 12);
  assert_string_equal(buf, "librdkafka/");
  brw_versions_line(buf, 1);
  assert_string_equal(buf, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_runtime_versions),
      cmocka_unit_test(test_rdkafka_loaded_is_built_against),
      cmocka_unit_test(test_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
