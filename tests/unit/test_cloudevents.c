/* Unit tests of the CloudEvents headers (src/cloudevents.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/cloudevents.h"
#include "brw/headers.h"
#include "hdrassert.h"

#include <string.h>

/* The attributes CloudEvents 1.0 requires (specversion, id, source, type),
 * time in RFC 3339 UTC and the subject, in that order; no subject when
 * there is no campaign. */
static void test_headers(void **state) {
  (void)state;
  brw_headers_t *h = brw_headers_new();
  brw_ce_t ce = {.id = "report/default/53651994/done",
                 .source = "/bsg-report-worker/g",
                 .type = BRW_CE_TYPE_REPORT,
                 .time_ms = 1796121600123LL, /* 2026-12-01T10:40:00.123Z */
                 .subject = 53651994};
  assert_int_equal(brw_ce_headers_add(h, &ce), 0);
  assert_int_equal(brw_headers_count(h), 6);
  static const char *const names[] = {"ce_specversion", "ce_id",
                                      "ce_source",      "ce_type",
                                      "ce_time",        "ce_subject"};
  for (size_t i = 0; i < 6; i++) {
    const char *name;
    const void *v;
    size_t n;
    assert_int_equal(brw_headers_get(h, i, &name, &v, &n), 0);
    assert_string_equal(name, names[i]);
  }
  assert_header_last(h, "ce_specversion", "1.0");
  assert_header_last(h, "ce_id", "report/default/53651994/done");
  assert_header_last(h, "ce_source", "/bsg-report-worker/g");
  assert_header_last(h, "ce_type", "world.bsg.campaign.report");
  assert_header_last(h, "ce_time", "2026-12-01T10:40:00Z");
  assert_header_last(h, "ce_subject", "53651994");
  brw_headers_free(h);

  h = brw_headers_new();
  ce.subject = 0;
  ce.type = BRW_CE_TYPE_DLQ;
  assert_int_equal(brw_ce_headers_add(h, &ce), 0);
  assert_int_equal(brw_headers_count(h), 5);
  const void *v;
  size_t n;
  assert_int_not_equal(brw_headers_get_last(h, "ce_subject", &v, &n), 0);
  brw_headers_free(h);
}

/* Ids are functions of what they name, nothing else. */
static void test_ids(void **state) {
  (void)state;
  char a[BRW_CE_ID_MAX], b[BRW_CE_ID_MAX];
  brw_ce_report_id(a, sizeof(a), "default", 53651994, "done");
  assert_string_equal(a, "report/default/53651994/done");
  brw_ce_report_id(b, sizeof(b), "default", 53651994, "expired");
  assert_string_not_equal(a, b);
  brw_ce_report_id(b, sizeof(b), "marketing", 53651994, "done");
  assert_string_not_equal(a, b);
  brw_ce_progress_id(a, sizeof(a), "default", 7, "sending", 0xdeadbeefu);
  assert_string_equal(a, "progress/default/7/sending/deadbeef");
  brw_ce_progress_id(a, sizeof(a), "default", 7, "sending", 0x1u);
  assert_string_equal(a, "progress/default/7/sending/00000001");
  brw_ce_dlq_id(a, sizeof(a), "bsg.campaign.events", 3, 41);
  assert_string_equal(a, "dlq/bsg.campaign.events/3/41");
  /* The largest values fit. */
  brw_ce_report_id(
      a, sizeof(a),
      "a-64-byte-account-name-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      UINT64_MAX, "stopped");
  assert_non_null(strstr(a, "/18446744073709551615/stopped"));
}

/* The default source: a URI-reference whatever the group's name. */
static void test_default_source(void **state) {
  (void)state;
  char s[BRW_CE_SOURCE_MAX];
  brw_ce_default_source("bsg-report-worker", s, sizeof(s));
  assert_string_equal(s, "/bsg-report-worker/bsg-report-worker");
  brw_ce_default_source("team a/b%c~_.", s, sizeof(s));
  assert_string_equal(s, "/bsg-report-worker/team%20a%2Fb%25c~_.");
  brw_ce_default_source("\xc3\xa9", s, sizeof(s));
  assert_string_equal(s, "/bsg-report-worker/%C3%A9");
  brw_ce_default_source("", s, sizeof(s));
  assert_string_equal(s, "/bsg-report-worker/");
  /* Cut at the buffer, never inside a %XX. */
  char small[24];
  brw_ce_default_source("ab cd", small, sizeof(small));
  assert_string_equal(small, "/bsg-report-worker/ab");
  brw_ce_default_source("abc", small, 21);
  assert_string_equal(small, "/bsg-report-worker/a");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_headers),
      cmocka_unit_test(test_ids),
      cmocka_unit_test(test_default_source),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
