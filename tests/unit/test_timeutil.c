/* Unit tests of timeutil: zones, BSG and ISO 8601 timestamps, RFC 3339. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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


/* ---- zones (issue 10 item 10) ---- */

/* Writes a TZif file into buf: version 0 (v1 only, 32-bit times) or '2'
 * (a v1 block with no transitions, then the 64-bit block and the footer).
 * Returns its length. */
static size_t put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
  return 4;
}

static size_t tzif_block(unsigned char *p, int tsize, const int64_t *at,
                         const uint8_t *idx, size_t n, const int32_t *offs,
                         size_t ntypes, char version, uint32_t leap) {
  size_t k = 0;
  const uint32_t counts[6] = {0, 0, leap, (uint32_t)n, (uint32_t)ntypes, 4};
  memcpy(p, "TZif", 4);
  p[4] = (unsigned char)version;
  memset(p + 5, 0, 15);
  k = 20;
  for (int i = 0; i < 6; i++)
    k += put32(p + k, counts[i]);
  for (size_t i = 0; i < n; i++) {
    if (tsize == 8) {
      k += put32(p + k, (uint32_t)((uint64_t)at[i] >> 32));
      k += put32(p + k, (uint32_t)at[i]);
    } else {
      k += put32(p + k, (uint32_t)(int32_t)at[i]);
    }
  }
  for (size_t i = 0; i < n; i++)
    p[k++] = idx[i];
  for (size_t i = 0; i < ntypes; i++) {
    k += put32(p + k, (uint32_t)offs[i]);
    p[k++] = 0;
    p[k++] = 0;
  }
  memcpy(p + k, "ZZZ", 4);
  k += 4;
  for (uint32_t i = 0; i < leap; i++) {
    memset(p + k, 0, (size_t)tsize + 4);
    k += (size_t)tsize + 4;
  }
  return k;
}

static size_t build_tzif(unsigned char *buf, char version, const int64_t *at,
                         const uint8_t *idx, size_t n, const int32_t *offs,
                         size_t ntypes, const char *footer, uint32_t leap) {
  size_t k = 0;
  if (version == 0)
    return tzif_block(buf, 4, at, idx, n, offs, ntypes, 0, leap);
  k = tzif_block(buf, 4, NULL, NULL, 0, offs, ntypes, version, 0);
  k += tzif_block(buf + k, 8, at, idx, n, offs, ntypes, version, leap);
  buf[k++] = '\n';
  memcpy(buf + k, footer, strlen(footer));
  k += strlen(footer);
  buf[k++] = '\n';
  return k;
}

/* A zone of a POSIX rule alone (no transitions). */
static brw_tz_t *rule_zone(const char *rule, int32_t std_off) {
  unsigned char buf[512];
  brw_tz_t *tz = NULL;
  char why[128] = "";
  size_t n = build_tzif(buf, '2', NULL, NULL, 0, &std_off, 1, rule, 0);
  if (brw_tz_from_tzif(buf, n, &tz, why, sizeof(why)) != 0)
    fail_msg("rule %s refused: %s", rule, why);
  return tz;
}

static int64_t parse_tz_ok(const char *s, const brw_tz_t *tz) {
  int64_t ms = -1;
  if (brw_time_parse_tz(s, tz, &ms) != 0)
    fail_msg("\"%s\" refused", s);
  return ms / 1000;
}

/* UTC seconds of a civil time, through the parser (tested above). */
static int64_t utc(const char *s) {
  return parse_ok(s, 0) / 1000;
}

/* Europe/Kyiv's 2026 changes, as the tz database and EU rules give them:
 * 2026-03-29 01:00Z clocks go 03:00 -> 04:00 (EET +2 -> EEST +3), and
 * 2026-10-25 01:00Z clocks go 04:00 -> 03:00. Checked on any zone with
 * those rules: the system's file and a rule-only file. */
static void check_kyiv_2026(const brw_tz_t *tz) {
  /* Instants. */
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-03-29 00:59:59")), 7200);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-03-29 01:00:00")), 10800);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-10-25 00:59:59")), 10800);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-10-25 01:00:00")), 7200);

  /* Spring forward: 03:00 .. 03:59:59 local do not exist. */
  assert_int_equal(parse_tz_ok("2026-03-29 02:59:59", tz),
                   utc("2026-03-29 00:59:59"));
  /* In the gap: read with the offset before the change (+2), so 03:30 is
   * 01:30Z, which the clocks show as 04:30 EEST. */
  assert_int_equal(parse_tz_ok("2026-03-29 03:00:00", tz),
                   utc("2026-03-29 01:00:00"));
  assert_int_equal(parse_tz_ok("2026-03-29 03:30:00", tz),
                   utc("2026-03-29 01:30:00"));
  assert_int_equal(parse_tz_ok("2026-03-29 04:00:00", tz),
                   utc("2026-03-29 01:00:00"));
  assert_int_equal(parse_tz_ok("2026-03-29 04:30:00", tz),
                   utc("2026-03-29 01:30:00"));

  /* Fall back: 03:00 .. 03:59:59 local happen twice; the first (EEST). */
  assert_int_equal(parse_tz_ok("2026-10-25 02:59:59", tz),
                   utc("2026-10-24 23:59:59"));
  assert_int_equal(parse_tz_ok("2026-10-25 03:00:00", tz),
                   utc("2026-10-25 00:00:00"));
  assert_int_equal(parse_tz_ok("2026-10-25 03:30:00", tz),
                   utc("2026-10-25 00:30:00"));
  assert_int_equal(parse_tz_ok("2026-10-25 03:59:59", tz),
                   utc("2026-10-25 00:59:59"));
  assert_int_equal(parse_tz_ok("2026-10-25 04:00:00", tz),
                   utc("2026-10-25 02:00:00"));

  /* Plain summer and winter times; a zone in the text wins. */
  assert_int_equal(parse_tz_ok("2026-07-01 12:00:00", tz),
                   utc("2026-07-01 09:00:00"));
  assert_int_equal(parse_tz_ok("2026-01-15 12:00:00", tz),
                   utc("2026-01-15 10:00:00"));
  assert_int_equal(parse_tz_ok("2026-07-01T12:00:00Z", tz),
                   utc("2026-07-01 12:00:00"));
  assert_int_equal(parse_tz_ok("2026-07-01T12:00:00+05:00", tz),
                   utc("2026-07-01 07:00:00"));
  /* Far ahead, where only the footer's rule speaks. */
  assert_int_equal(parse_tz_ok("2100-07-01 12:00:00", tz),
                   utc("2100-07-01 09:00:00"));
  assert_int_equal(parse_tz_ok("2100-12-31 23:59:59", tz),
                   utc("2100-12-31 21:59:59"));
  /* 2100-03-28 is the last Sunday of March in 2100. */
  assert_int_equal(parse_tz_ok("2100-03-28 03:30:00", tz),
                   utc("2100-03-28 01:30:00"));
}

static void test_tz_iana_system(void **state) {
  (void)state;
  brw_tz_t *tz = NULL;
  char why[256] = "";
  /* tzdata is a dependency (scripts/install-deps.sh, the Dockerfile). */
  if (brw_tz_load("Europe/Kyiv", &tz, why, sizeof(why)) != 0)
    fail_msg("Europe/Kyiv: %s", why);
  check_kyiv_2026(tz);
  /* Kyiv was on Moscow time (+3, no DST) in 1985. */
  assert_int_equal(brw_tz_offset_at(tz, utc("1985-01-15 12:00:00")), 10800);
  brw_tz_free(tz);
  /* The old spelling is a link in the database. */
  assert_int_equal(brw_tz_load("Europe/Kiev", &tz, why, sizeof(why)), 0);
  assert_int_equal(parse_tz_ok("2026-10-25 03:30:00", tz),
                   utc("2026-10-25 00:30:00"));
  brw_tz_free(tz);
  /* A zone west of UTC, and one without DST. */
  assert_int_equal(brw_tz_load("America/New_York", &tz, why, sizeof(why)), 0);
  assert_int_equal(parse_tz_ok("2026-03-08 02:30:00", tz), /* gap */
                   utc("2026-03-08 07:30:00"));
  assert_int_equal(parse_tz_ok("2026-11-01 01:30:00", tz), /* twice */
                   utc("2026-11-01 05:30:00"));
  brw_tz_free(tz);
  assert_int_equal(brw_tz_load("Asia/Kolkata", &tz, why, sizeof(why)), 0);
  assert_int_equal(parse_tz_ok("2026-07-01 12:00:00", tz),
                   utc("2026-07-01 06:30:00"));
  brw_tz_free(tz);
}

static void test_tz_rules(void **state) {
  (void)state;
  brw_tz_t *tz = rule_zone("EET-2EEST,M3.5.0/3,M10.5.0/4", 7200);
  check_kyiv_2026(tz);
  brw_tz_free(tz);
  /* Southern hemisphere: daylight time across New Year (Sydney). */
  tz = rule_zone("AEST-10AEDT,M10.1.0,M4.1.0/3", 36000);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-01-15 00:00:00")), 39600);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-07-15 00:00:00")), 36000);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-12-31 20:00:00")), 39600);
  /* 2026-04-05 03:00 AEDT -> 02:00 AEST: 02:30 happens twice. */
  assert_int_equal(parse_tz_ok("2026-04-05 02:30:00", tz),
                   utc("2026-04-04 15:30:00"));
  /* 2026-10-04 02:00 AEST -> 03:00 AEDT: 02:30 does not exist. */
  assert_int_equal(parse_tz_ok("2026-10-04 02:30:00", tz),
                   utc("2026-10-03 16:30:00"));
  brw_tz_free(tz);
  /* <+03>-3 style names, no DST, Jn and n dates, negative /time. */
  tz = rule_zone("<+0330>-3:30", 12600);
  assert_int_equal(brw_tz_offset_at(tz, 0), 12600);
  brw_tz_free(tz);
  tz = rule_zone("XXX3YYY,J60/-1,300/25", -10800);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-07-01 00:00:00")), -7200);
  assert_int_equal(brw_tz_offset_at(tz, utc("2026-01-15 00:00:00")), -10800);
  brw_tz_free(tz);
}

static void test_tz_transitions(void **state) {
  (void)state;
  /* v1 only: +1 until 2000-01-01, then +5, then +4 from 2010-01-01. */
  const int64_t at[] = {946684800, 1262304000};
  const uint8_t idx[] = {1, 2};
  const int32_t offs[] = {3600, 18000, 14400};
  unsigned char buf[512];
  brw_tz_t *tz = NULL;
  size_t n = build_tzif(buf, 0, at, idx, 2, offs, 3, NULL, 0);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, NULL, 0), 0);
  assert_int_equal(brw_tz_offset_at(tz, 0), 3600);
  assert_int_equal(brw_tz_offset_at(tz, 946684799), 3600);
  assert_int_equal(brw_tz_offset_at(tz, 946684800), 18000);
  assert_int_equal(brw_tz_offset_at(tz, INT64_MAX), 14400);
  assert_int_equal(brw_tz_offset_at(tz, INT64_MIN), 3600);
  /* 2000-01-01 03:00 local: 02:00Z under +1 is past the change, 22:00Z
   * the day before under +5 is before it: skipped, read with +1. */
  assert_int_equal(parse_tz_ok("2000-01-01 03:00:00", tz),
                   utc("2000-01-01 02:00:00"));
  /* 2009-12-31 23:30 local happens twice (+5, then +4 from 20:00Z). */
  assert_int_equal(parse_tz_ok("2009-12-31 23:30:00", tz),
                   utc("2009-12-31 18:30:00"));
  brw_tz_free(tz);

  /* Version 2 with 64-bit times and an empty footer: the last type holds. */
  n = build_tzif(buf, '2', at, idx, 2, offs, 3, "", 0);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, NULL, 0), 0);
  assert_int_equal(brw_tz_offset_at(tz, INT64_C(4102444800)), 14400);
  brw_tz_free(tz);
}

static void test_tz_damaged(void **state) {
  (void)state;
  const int64_t at[] = {946684800, 1262304000};
  const int64_t back[] = {1262304000, 946684800};
  const uint8_t idx[] = {1, 2}, badidx[] = {1, 3};
  const int32_t offs[] = {3600, 18000, 14400};
  const int32_t huge[] = {3600, 100000};
  unsigned char buf[512];
  char why[128];
  brw_tz_t *tz = NULL;
  size_t n = build_tzif(buf, '2', at, idx, 2, offs, 3, "UTC0", 0);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, NULL, 0), 0);
  brw_tz_free(tz);
  /* Every truncation is refused, never read past. */
  for (size_t k = 0; k < n; k++) {
    tz = (brw_tz_t *)1;
    assert_int_equal(brw_tz_from_tzif(buf, k, &tz, why, sizeof(why)),
                     BRW_EINVAL);
    assert_null(tz);
  }
  /* Trailing bytes, a bad magic, a bad version. */
  buf[n] = 'x';
  assert_int_equal(brw_tz_from_tzif(buf, n + 1, &tz, NULL, 0), BRW_EINVAL);
  buf[0] = 'X';
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, why, sizeof(why)),
                   BRW_EINVAL);
  assert_string_equal(why, "not a TZif file");
  buf[0] = 'T';
  buf[4] = '1';
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, NULL, 0), BRW_EINVAL);

  n = build_tzif(buf, '2', back, idx, 2, offs, 3, "UTC0", 0);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, why, sizeof(why)),
                   BRW_EINVAL);
  assert_string_equal(why, "TZif transitions are damaged");
  n = build_tzif(buf, '2', at, badidx, 2, offs, 3, "UTC0", 0);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, NULL, 0), BRW_EINVAL);
  n = build_tzif(buf, '2', NULL, NULL, 0, huge, 2, "UTC0", 0);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, why, sizeof(why)),
                   BRW_EINVAL);
  assert_string_equal(why, "TZif offset out of range");
  n = build_tzif(buf, '2', at, idx, 2, offs, 3, "UTC0", 1);
  assert_int_equal(brw_tz_from_tzif(buf, n, &tz, why, sizeof(why)),
                   BRW_EINVAL);
  assert_non_null(strstr(why, "leap-second"));
  /* Footers that are not POSIX TZ rules, or DST without its dates. */
  static const char *const bad[] = {
      "EST5EDT", "X0", "EET-2EEST,M3.5.0/3", "EET-2EEST,M13.5.0,M10.5.0",
      "EET-2EEST,M3.6.0,M10.5.0", "EET-2EEST,J0,J100", "EET-2EEST,366,1",
      "EET-25", "<+03-3", "EET-2EEST,M3.5.0/168,M10.5.0", "UTC0 ",
      "EET-2EEST,M3.5.0,M10.5.0,"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    n = build_tzif(buf, '2', NULL, NULL, 0, offs, 1, bad[i], 0);
    if (brw_tz_from_tzif(buf, n, &tz, why, sizeof(why)) != BRW_EINVAL)
      fail_msg("footer \"%s\" accepted", bad[i]);
  }
}

static void test_tz_load(void **state) {
  (void)state;
  brw_tz_t *tz = NULL;
  char why[512];
  /* Fixed forms. */
  assert_int_equal(brw_tz_load("+03:00", &tz, why, sizeof(why)), 0);
  assert_int_equal(brw_tz_offset_at(tz, 0), 10800);
  assert_int_equal(parse_tz_ok("2026-03-29 03:30:00", tz),
                   utc("2026-03-29 00:30:00"));
  brw_tz_free(tz);
  assert_int_equal(brw_tz_load("UTC", &tz, why, sizeof(why)), 0);
  assert_int_equal(brw_tz_offset_local(tz, 12345), 0);
  brw_tz_free(tz);
  /* NULL is UTC everywhere. */
  assert_int_equal(brw_tz_offset_at(NULL, 5), 0);
  assert_int_equal(brw_tz_offset_local(NULL, 5), 0);
  assert_int_equal(parse_tz_ok("2026-07-01 12:00:00", NULL),
                   utc("2026-07-01 12:00:00"));

  /* Names that could leave the zone directory are never looked up. */
  static const char *const bad[] = {
      "../etc/passwd", "/etc/localtime", "Europe//Kyiv", "Europe/Kyiv/",
      "Europe/../Europe/Kyiv", ".", "..", "Europe/.", "Europe/Ky iv",
      "Europe/Kyiv\n", "", "Europe\\Kyiv"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    tz = (brw_tz_t *)1;
    assert_int_equal(brw_tz_load(bad[i], &tz, why, sizeof(why)), BRW_EINVAL);
    assert_null(tz);
    assert_non_null(strstr(why, "is not a time zone"));
  }
  assert_int_equal(brw_tz_load("Europe/Nowhere", &tz, why, sizeof(why)),
                   BRW_EINVAL);
  assert_non_null(strstr(why, "Europe/Nowhere"));
  assert_non_null(strstr(why, "tzdata"));
  /* A directory is not a zone. */
  assert_int_equal(brw_tz_load("Europe", &tz, why, sizeof(why)), BRW_EINVAL);

  /* $TZDIR chooses the database; a file that is not TZif is named. */
  char dir[] = "/tmp/brw-tzdir-XXXXXX", path[256];
  unsigned char buf[512];
  int32_t off = 7200;
  assert_non_null(mkdtemp(dir));
  size_t n = build_tzif(buf, '2', NULL, NULL, 0, &off, 1,
                        "EET-2EEST,M3.5.0/3,M10.5.0/4", 0);
  snprintf(path, sizeof(path), "%s/Test", dir);
  assert_int_equal(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/Test/Kyiv", dir);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, n, f), n);
  fclose(f);
  snprintf(path, sizeof(path), "%s/Test/Junk", dir);
  f = fopen(path, "wb");
  assert_non_null(f);
  fputs("not a zone", f);
  fclose(f);
  const char *old = getenv("TZDIR");
  char *saved = old ? strdup(old) : NULL;
  setenv("TZDIR", dir, 1);
  assert_int_equal(brw_tz_load("Test/Kyiv", &tz, why, sizeof(why)), 0);
  check_kyiv_2026(tz);
  brw_tz_free(tz);
  assert_int_equal(brw_tz_load("Test/Junk", &tz, why, sizeof(why)),
                   BRW_EINVAL);
  assert_non_null(strstr(why, "not a TZif file"));
  if (saved)
    setenv("TZDIR", saved, 1);
  else
    unsetenv("TZDIR");
  free(saved);
  snprintf(path, sizeof(path), "%s/Test/Kyiv", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/Test/Junk", dir);
  unlink(path);
  snprintf(path, sizeof(path), "%s/Test", dir);
  rmdir(path);
  rmdir(dir);
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
      cmocka_unit_test(test_tz_iana_system),
      cmocka_unit_test(test_tz_rules),
      cmocka_unit_test(test_tz_transitions),
      cmocka_unit_test(test_tz_damaged),
      cmocka_unit_test(test_tz_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
