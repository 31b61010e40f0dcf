/* Unit tests of record sizing and shortening (SPEC §4 "No record may stall
 * a partition"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/record.h"

#include <librdkafka/rdkafka.h> /* the codes, by librdkafka's names */

#include <stdio.h>
#include <string.h>

#define LIMIT (900 * 1024)

/* A record that fits is never touched, whatever its parts. */
static void test_fits_whole(void **state) {
  (void)state;
  brw_record_fit_t f;
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 10, 1000, 300, 0, &f), 0);
  assert_int_equal(f.cut, 0);
  assert_int_equal(f.key_len, 10);
  assert_int_equal(f.value_len, 1000);
  /* Exactly at the limit. */
  size_t v = LIMIT - BRW_RECORD_OVERHEAD - 10 - 300;
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 10, v, 300, 0, &f), 0);
  assert_int_equal(f.cut, 0);
  assert_int_equal(brw_record_size(10, v, 300), LIMIT);
  /* One byte over: cut, and the result fits with the truncation headers. */
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 10, v + 1, 300, 0, &f), 0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_VALUE);
  assert_int_equal(f.key_len, 10);
  assert_true(brw_record_size(f.key_len, f.value_len,
                              300 + BRW_RECORD_TRUNC_HEADERS) <= LIMIT);
}

/* The case: a value of 1,000,100 bytes is cut to the limit, the
 * short key kept. */
static void test_huge_value(void **state) {
  (void)state;
  brw_record_fit_t f;
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 6, 1000100, 400, 0, &f), 0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_VALUE);
  assert_int_equal(f.key_len, 6);
  assert_int_equal(
      brw_record_size(f.key_len, f.value_len, 400 + BRW_RECORD_TRUNC_HEADERS),
      LIMIT);
  assert_true(brw_record_size(f.key_len, f.value_len, 400) < 1000000);
}

/* A key over its own bound is cut to it even when the record would fit; a
 * huge key with a huge value gives way to BRW_RECORD_KEY_KEEP. */
static void test_key_bounds(void **state) {
  (void)state;
  brw_record_fit_t f;
  assert_int_equal(brw_record_fit(LIMIT, 4096, 100000, 50, 400, 0, &f), 0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_KEY);
  assert_int_equal(f.key_len, 4096);
  assert_int_equal(f.value_len, 50);
  /* Key at its bound: untouched. */
  assert_int_equal(brw_record_fit(LIMIT, 4096, 4096, 50, 400, 0, &f), 0);
  assert_int_equal(f.cut, 0);
  /* Key and value both huge, no key bound: the key keeps KEY_KEEP. */
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 600000, 1000000, 400, 0, &f),
                   0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_KEY | BRW_RECORD_CUT_VALUE);
  assert_int_equal(f.key_len, BRW_RECORD_KEY_KEEP);
  assert_true(f.value_len > 800000);
  assert_true(brw_record_size(f.key_len, f.value_len,
                              400 + BRW_RECORD_TRUNC_HEADERS) <= LIMIT);
  /* A key that alone exceeds the limit, no value. */
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 2000000, 0, 400, 0, &f), 0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_KEY);
  assert_int_equal(f.key_len, BRW_RECORD_KEY_KEEP);
  assert_int_equal(f.value_len, 0);
}

/* Bare: value dropped, key short, whatever the limit. */
static void test_bare(void **state) {
  (void)state;
  brw_record_fit_t f;
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 6, 70000, 400, 1, &f), 0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_VALUE);
  assert_int_equal(f.key_len, 6);
  assert_int_equal(f.value_len, 0);
  assert_int_equal(brw_record_fit(LIMIT, 4096, 5000, 10, 400, 1, &f), 0);
  assert_int_equal(f.cut, BRW_RECORD_CUT_KEY | BRW_RECORD_CUT_VALUE);
  assert_int_equal(f.key_len, BRW_RECORD_KEY_BARE);
  /* Nothing to cut: bare keeps a tiny record as it is. */
  assert_int_equal(brw_record_fit(LIMIT, SIZE_MAX, 6, 0, 400, 1, &f), 0);
  assert_int_equal(f.cut, 0);
}

/* Headers that do not fit make it impossible; sizes never overflow. */
static void test_impossible_and_overflow(void **state) {
  (void)state;
  brw_record_fit_t f;
  assert_int_equal(brw_record_fit(1000, SIZE_MAX, 6, 5000, 900, 0, &f),
                   BRW_ETOOLARGE);
  assert_int_equal(brw_record_fit(1000, SIZE_MAX, 6, 5000, 900, 1, &f),
                   BRW_ETOOLARGE);
  assert_int_equal(brw_record_size(SIZE_MAX, 1, 1), SIZE_MAX);
  assert_int_equal(brw_record_size(1, SIZE_MAX - 10, 1), SIZE_MAX);
  assert_int_equal(
      brw_record_fit(LIMIT, SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 1, 0, 0, &f), 0);
  assert_int_equal(f.key_len, BRW_RECORD_KEY_KEEP);
  assert_true(brw_record_size(f.key_len, f.value_len,
                              BRW_RECORD_TRUNC_HEADERS) <= LIMIT);
  /* A limit smaller than the budget of the key: the key itself is cut. */
  assert_int_equal(brw_record_fit(600, SIZE_MAX, 5000, 5000, 0, 0, &f), 0);
  assert_true(
      brw_record_size(f.key_len, f.value_len, BRW_RECORD_TRUNC_HEADERS) <= 600);
  assert_int_equal(f.value_len, 0);
}

/* Header sizes count names and values, and bound the varints. */
static void test_headers_size(void **state) {
  (void)state;
  assert_int_equal(brw_record_headers_size(NULL), 0);
  brw_headers_t *h = brw_headers_new();
  assert_int_equal(brw_record_headers_size(h), 5);
  assert_int_equal(brw_headers_add_str(h, "error.reason", "too_large"), 0);
  assert_int_equal(brw_headers_add_str(h, "source.offset", "12345"), 0);
  assert_int_equal(brw_record_headers_size(h),
                   5 + (10 + 12 + 9) + (10 + 13 + 5));
  brw_headers_free(h);
}

/* A cut never splits a UTF-8 sequence; bytes that are not UTF-8 are cut
 * where asked. */
static void test_utf8_cut(void **state) {
  (void)state;
  const char *s = "ab\xc3\xa9"
                  "cd\xe2\x82\xac"
                  "e"; /* ab é cd € e */
  size_t n = strlen(s);
  assert_int_equal(brw_record_utf8_cut(s, n, 100), n);
  assert_int_equal(brw_record_utf8_cut(s, n, n), n);
  assert_int_equal(brw_record_utf8_cut(s, n, 2), 2);
  assert_int_equal(brw_record_utf8_cut(s, n, 3), 2); /* inside é */
  assert_int_equal(brw_record_utf8_cut(s, n, 4), 4);
  assert_int_equal(brw_record_utf8_cut(s, n, 7), 6); /* inside € */
  assert_int_equal(brw_record_utf8_cut(s, n, 8), 6);
  assert_int_equal(brw_record_utf8_cut(s, n, 9), 9);
  assert_int_equal(brw_record_utf8_cut(s, n, 0), 0);
  const char bin[] = {'\x80', '\x80', '\x80', '\x80', '\x80', '\x80'};
  assert_int_equal(brw_record_utf8_cut(bin, sizeof(bin), 5), 5);
  assert_int_equal(brw_record_utf8_cut(bin, sizeof(bin), 0), 0);
}

/* Only refusals caused by the record itself are permanent. */
static void test_permanent(void **state) {
  (void)state;
  assert_true(
      brw_record_refusal_permanent(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
  assert_true(
      brw_record_refusal_permanent(RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE));
  assert_true(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR_INVALID_RECORD));
  assert_true(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE));
  assert_true(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR__INVALID_ARG));
  assert_false(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR_NO_ERROR));
  assert_false(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
  assert_false(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR__QUEUE_FULL));
  assert_false(brw_record_refusal_permanent(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
  assert_false(brw_record_refusal_permanent(
      RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED));
  assert_false(
      brw_record_refusal_permanent(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION));
  assert_false(brw_record_refusal_permanent(
      RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fits_whole),
      cmocka_unit_test(test_huge_value),
      cmocka_unit_test(test_key_bounds),
      cmocka_unit_test(test_bare),
      cmocka_unit_test(test_impossible_and_overflow),
      cmocka_unit_test(test_headers_size),
      cmocka_unit_test(test_utf8_cut),
      cmocka_unit_test(test_permanent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
