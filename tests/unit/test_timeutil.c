/* Unit tests of timeutil: zones, BSG and ISO 8601 timestamps, RFC 3339. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/timeutil.h"

#include <string.h>

/* 2026-11-27T10:00:00Z */
#define T_20261127_10 INT64_C(1795773600000)

static int64_t parse_ok(const char *s, int32_t tz) {
  int64_t ms = -1;
  assert_int_equal(brw_time_parse(s, tz, &ms), 0);
  return ms;
}

static void assert_parse_fails(const char *s) {
  int64_t ms = 12345;
  assert_int_equal(brw_time_parse(s, 0, &ms), BRW_EPARSE);
}

static void test_now(void **state) {
  (void)state;
  int64_t a = brw_now_ms();
  /* After 2020-01-01 and before 2100-01-01. */
  assert_true(a > INT64_C(1577836800000));
  assert_true(a < INT64_C(4102444800000));
  assert_true(brw_now_ms() >= a);
}

/* Seconds from the network times 1000 must not overflow (a Retry-After
 * HTTP-date may name year 2^31). */
static void test_until_ms(void **state) {
  (void)state;
  int64_t now = T_20261127_10;
  assert_int_equal(brw_time_until_ms(now / 1000 + 60, now), 60000);
  assert_int_equal(brw_time_until_ms(now / 1000, now), 0);
  assert_int_equal(brw_time_until_ms(0, now), 0);
  assert_int_equal(brw_time_until_ms(INT64_MIN, now), 0);
  assert_true(brw_time_until_ms(INT64_MAX / 1000, now) > 0);
  assert_int_equal(brw_time_until_ms(INT64_MAX / 1000 + 1, now), INT64_MAX);
  assert_int_equal(brw_time_until_ms(INT64_MAX, now), INT64_MAX);
  /* 67767976201996800: 01 Jan 2147483647, as curl_getdate returns it. */
  assert_int_equal(brw_time_until_ms(INT64_C(67767976201996800), now),
                   INT64_MAX);
  assert_int_equal(brw_time_until_ms(INT64_MAX / 1000, INT64_MIN), INT64_MAX);
}

static void test_tz_parse_valid(void **state) {
  (void)state;
  int32_t off = 99;
  assert_int_equal(brw_tz_parse("UTC", &off), 0);
  assert_int_equal(off, 0);
  off = 99;
  assert_int_equal(brw_tz_parse("Z", &off), 0);
  assert_int_equal(off, 0);
  assert_int_equal(brw_tz_parse("+03:00", &off), 0);
  assert_int_equal(off, 3 * 3600);
  assert_int_equal(brw_tz_parse("-0530", &off), 0);
  assert_int_equal(off, -(5 * 3600 + 30 * 60));
  assert_int_equal(brw_tz_parse("+3", &off), 0);
  assert_int_equal(off, 3 * 3600);
  assert_int_equal(brw_tz_parse("-3:30", &off), 0);
  assert_int_equal(off, -(3 * 3600 + 30 * 60));
  assert_int_equal(brw_tz_parse("+05", &off), 0);
  assert_int_equal(off, 5 * 3600);
  assert_int_equal(brw_tz_parse("+14:00", &off), 0);
  assert_int_equal(off, 14 * 3600);
  assert_int_equal(brw_tz_parse("-12:00", &off), 0);
  assert_int_equal(off, -12 * 3600);
  assert_int_equal(brw_tz_parse("+00:00", &off), 0);
  assert_int_equal(off, 0);
}

static void test_tz_parse_invalid(void **state) {
  (void)state;
  static const char *bad[] = {
      "",        "utc+3",  "GMT",     "Europe/Moscow", "3",      "+",
      "+15",     "+14:30", "-15:00",  "+03:60",        "+3:0",   "+123",
      "+03:00 ", " +03",   "+03:00x", "++3",           "+0300:", "+03:5"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int32_t off = 77;
    if (brw_tz_parse(bad[i], &off) != BRW_EINVAL)
      fail_msg("zone \"%s\" was accepted", bad[i]);
    assert_int_equal(off, 77);
  }
  assert_int_equal(brw_tz_parse(NULL, NULL), BRW_EINVAL);
}

static void test_parse_bsg_format(void **state) {
  (void)state;
  assert_true(parse_ok("2026-11-27 10:00:00", 0) == T_20261127_10);
  /* The configured zone applies to zone-less text. */
  assert_true(parse_ok("2026-11-27 13:00:00", 3 * 3600) == T_20261127_10);
  assert_true(parse_ok("2026-11-27 04:30:00", -(5 * 3600 + 1800)) ==
              T_20261127_10);
  assert_true(parse_ok("1970-01-01 00:00:00", 0) == 0);
  assert_true(parse_ok("1970-01-01 00:00:01", 0) == 1000);
  /* Crossing a day boundary backwards through the offset. */
  assert_true(parse_ok("2026-01-01 01:00:00", 3 * 3600) ==
              parse_ok("2025-12-31 22:00:00", 0));
  /* Minutes without seconds. */
  assert_true(parse_ok("2026-11-27 10:00", 0) == T_20261127_10);
}

static void test_parse_iso(void **state) {
  (void)state;
  /* An explicit zone wins over the configured one. */
  assert_true(parse_ok("2026-11-27T10:00:00Z", 3 * 3600) == T_20261127_10);
  assert_true(parse_ok("2026-11-27T10:00:00z", 3 * 3600) == T_20261127_10);
  assert_true(parse_ok("2026-11-27T13:00:00+03:00", 0) == T_20261127_10);
  assert_true(parse_ok("2026-11-27T13:00:00+0300", -7200) == T_20261127_10);
  assert_true(parse_ok("2026-11-27T13:00:00+03", 0) == T_20261127_10);
  assert_true(parse_ok("2026-11-27T05:00:00-05:00", 0) == T_20261127_10);
  assert_true(parse_ok("2026-11-27 13:00:00+03:00", 0) == T_20261127_10);
  /* Without a zone, 'T' form uses the configured zone too. */
  assert_true(parse_ok("2026-11-27T12:00:00", 7200) == T_20261127_10);
  /* Fractions: milliseconds kept, the rest truncated. */
  assert_true(parse_ok("2026-11-27T10:00:00.5Z", 0) == T_20261127_10 + 500);
  assert_true(parse_ok("2026-11-27T10:00:00.123456789Z", 0) ==
              T_20261127_10 + 123);
  assert_true(parse_ok("2026-11-27T10:00:00,25Z", 0) == T_20261127_10 + 250);
  assert_true(parse_ok("2026-11-27T10:00:00.000001+00:00", 0) == T_20261127_10);
}

static void test_parse_bare_date(void **state) {
  (void)state;
  assert_true(parse_ok("2026-11-27", 0) == T_20261127_10 - 10 * 3600000);
  /* Midnight in the configured zone. */
  assert_true(parse_ok("2026-11-27", 3600) ==
              T_20261127_10 - 11 * INT64_C(3600000));
}

static void test_parse_calendar(void **state) {
  (void)state;
  /* Leap years: divisible by 4, except centuries, except by 400. */
  assert_true(parse_ok("2024-02-29 00:00:00", 0) -
                  parse_ok("2024-02-28 00:00:00", 0) ==
              86400000);
  assert_true(parse_ok("2000-02-29", 0) == INT64_C(951782400000));
  assert_true(parse_ok("2024-03-01", 0) - parse_ok("2024-02-29", 0) ==
              86400000);
  assert_true(parse_ok("2023-12-31T23:59:59Z", 0) == INT64_C(1704067199000));
  assert_true(parse_ok("1969-12-31T23:59:59Z", 0) == -1000);
  /* A leap second rolls over into the next minute. */
  assert_true(parse_ok("2016-12-31T23:59:60Z", 0) ==
              parse_ok("2017-01-01T00:00:00Z", 0));
}

static void test_parse_invalid(void **state) {
  (void)state;
  static const char *bad[] = {
      "",
      "2026",
      "2026-11",
      "2026-13-01",
      "2026-00-10",
      "2026-11-00",
      "2026-11-31",
      "2026-02-29",
      "1900-02-29",
      "2026-04-31 00:00:00",
      "2026-11-27 24:00:00",
      "2026-11-27 10:60:00",
      "2026-11-27 10:00:61",
      "2026-11-27 10",
      "2026-11-27 10:00:00 ",
      " 2026-11-27",
      "2026-11-27X10:00:00",
      "2026-11-27T10:00:00ZZ",
      "2026-11-27T10:00:00.Z",
      "2026-11-27T10:00:00+15:00",
      "2026-11-27T10:00:00+03:0",
      "2026-11-27T10:00:00 UTC",
      "26-11-27",
      "2026/11/27",
      "0000-01-01",
      "2026-1-27",
      "not a date",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t ms = 12345;
    if (brw_time_parse(bad[i], 0, &ms) != BRW_EPARSE)
      fail_msg("time \"%s\" was accepted", bad[i]);
    assert_true(ms == 12345);
  }
  assert_parse_fails(NULL);
}

static void test_format(void **state) {
  (void)state;
  char buf[32];
  assert_string_equal(brw_time_format(T_20261127_10, buf, sizeof(buf)),
                      "2026-11-27T10:00:00Z");
  /* Sub-second parts are dropped, not rounded. */
  assert_string_equal(brw_time_format(T_20261127_10 + 999, buf, sizeof(buf)),
                      "2026-11-27T10:00:00Z");
  assert_string_equal(brw_time_format(0, buf, sizeof(buf)),
                      "1970-01-01T00:00:00Z");
  assert_string_equal(brw_time_format(-1, buf, sizeof(buf)),
                      "1969-12-31T23:59:59Z");
  assert_string_equal(brw_time_format(INT64_C(951782400000), buf, 21),
                      "2000-02-29T00:00:00Z");
  /* Truncation never overflows the buffer. */
  memset(buf, 'x', sizeof(buf));
  brw_time_format(T_20261127_10, buf, 5);
  assert_string_equal(buf, "2026");
}

static void test_roundtrip(void **state) {
  (void)state;
  char buf[32];
  /* Every day of several years, including leap days and pre-1970 ones. */
  for (int64_t day = -800; day < 25000; day += 7) {
    int64_t ms = day * 86400000 + 12 * 3600000 + 34 * 60000 + 56000;
    brw_time_format(ms, buf, sizeof(buf));
    assert_true(parse_ok(buf, 0) == ms);
  }
}

/* Found by fuzz/fuzz_time.c: a zone or a leap second moved an instant out
 * of years 0001..9999 UTC, which brw_time_format then wrote as "10000-..."
 * (not RFC 3339) or "0000-..." (which brw_time_parse rejects). */
static void test_parse_year_range(void **state) {
  (void)state;
  int64_t ms = 12345;
  char buf[32];
  assert_int_equal(brw_time_parse("9999-12-31T23:59:60Z", 0, &ms), BRW_EPARSE);
  assert_int_equal(brw_time_parse("9999-12-31 23:59:59", -3600, &ms),
                   BRW_EPARSE);
  assert_int_equal(brw_time_parse("0001-01-01 00:00:00", 3600, &ms),
                   BRW_EPARSE);
  assert_int_equal(brw_time_parse("0001-01-01T00:00:00+00:01", 0, &ms),
                   BRW_EPARSE);
  assert_true(ms == 12345);
  /* The limits themselves still parse and read back. */
  brw_time_format(parse_ok("9999-12-31T23:59:59.999Z", 0), buf, sizeof(buf));
  assert_string_equal(buf, "9999-12-31T23:59:59Z");
  brw_time_format(parse_ok("0001-01-01 03:00:00", 3 * 3600), buf, sizeof(buf));
  assert_string_equal(buf, "0001-01-01T00:00:00Z");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_now),
      cmocka_unit_test(test_until_ms),
      cmocka_unit_test(test_tz_parse_valid),
      cmocka_unit_test(test_tz_parse_invalid),
      cmocka_unit_test(test_parse_bsg_format),
      cmocka_unit_test(test_parse_iso),
      cmocka_unit_test(test_parse_bare_date),
      cmocka_unit_test(test_parse_calendar),
      cmocka_unit_test(test_parse_invalid),
      cmocka_unit_test(test_format),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_parse_year_range),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
