/* Unit tests of the detail vocabulary both detail parsers share
 * (src/bsg_vocab.c): the digit parser's edges, saturating sums, the
 * counter map, the alias lists and the status table. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/bsg_vocab.h"

#include <string.h>

/* Parses the NUL-terminated s; *out starts at a sentinel, so a refusal
 * that writes it is seen. */
static int digits(const char *s, int64_t *out) {
  *out = 4242;
  return brw__bsg_vocab_digits(s, strlen(s), out);
}

static void test_digits_accepted(void **state) {
  (void)state;
  int64_t n;
  assert_int_equal(digits("0", &n), 0);
  assert_true(n == 0);
  assert_int_equal(digits("7", &n), 0);
  assert_true(n == 7);
  assert_int_equal(digits("1234567890", &n), 0);
  assert_true(n == 1234567890);
  /* Leading zeros are read as decimal (not octal) and do not count
   * towards overflow. */
  assert_int_equal(digits("007", &n), 0);
  assert_true(n == 7);
  assert_int_equal(digits("000", &n), 0);
  assert_true(n == 0);
  assert_int_equal(digits("0000000000000000000000009223372036854775807", &n),
                   0);
  assert_true(n == INT64_MAX);
  /* The largest value: INT64_MAX exactly. */
  assert_int_equal(digits("9223372036854775807", &n), 0);
  assert_true(n == INT64_MAX);
  assert_int_equal(digits("9223372036854775799", &n), 0);
  assert_true(n == INT64_MAX - 8);
}

static void test_digits_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "", "+1", "-1", "-0", " 1", "1 ", "1.0", "1e3", "0x1f", "1,000", "1_000",
      "\xd9\xa1", "\t7", "7\n", "abc",
      /* INT64_MAX + 1, and longer */
      "9223372036854775808", "9223372036854775810", "10000000000000000000",
      "99999999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int64_t n;
    if (digits(bad[i], &n) != -1)
      fail_msg("accepted \"%s\"", bad[i]);
    /* *out is left alone on a refusal. */
    assert_true(n == 4242);
  }
}

static void test_digits_length(void **state) {
  (void)state;
  int64_t n = 1;
  /* Exactly n bytes are read: no terminator needed, none looked for. */
  assert_int_equal(brw__bsg_vocab_digits("12x", 2, &n), 0);
  assert_true(n == 12);
  assert_int_equal(brw__bsg_vocab_digits("12\0"
                                         "3",
                                         4, &n),
                   -1);
  n = 5;
  assert_int_equal(brw__bsg_vocab_digits("12", 0, &n), -1);
  assert_true(n == 5);
}

static void test_sat_add(void **state) {
  (void)state;
  assert_true(brw__bsg_vocab_sat_add(2, 3) == 5);
  assert_true(brw__bsg_vocab_sat_add(INT64_MAX - 1, 1) == INT64_MAX);
  assert_true(brw__bsg_vocab_sat_add(INT64_MAX, 1) == INT64_MAX);
  assert_true(brw__bsg_vocab_sat_add(INT64_MAX, INT64_MAX) == INT64_MAX);
  assert_true(brw__bsg_vocab_sat_add(INT64_MIN, -1) == INT64_MIN);
  assert_true(brw__bsg_vocab_sat_add(INT64_MAX, INT64_MIN) == -1);
}

/* Which sum each known counter goes into (design.md, "Statistics and
 * rates"); anything else enters `counted` only. */
static void test_counter_map(void **state) {
  (void)state;
  static const struct {
    const char *key;
    int sum; /* 0 none, 1 delivered, 2 failed, 3 pending */
  } cases[] = {{"delivered", 1},    {"read", 1},     {"failed", 2},
               {"undelivered", 2},  {"expired", 2},  {"not_viber_user", 2},
               {"not_rcs_user", 2}, {"sent", 3},     {"scheduled", 3},
               {"moderation", 3},   {"accepted", 3}, {"sending", 3},
               {"unknown", 0},      {"clicks", 0},   {"Delivered", 0},
               {"delivered ", 0},   {"", 0}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    brw_detail_t d;
    memset(&d, 0, sizeof(d));
    brw__bsg_vocab_count(&d, cases[i].key, 5);
    int64_t want[4] = {0, 0, 0, 0};
    want[cases[i].sum] = 5;
    if (d.delivered != want[1] || d.failed != want[2] || d.pending != want[3] ||
        d.counted != 5)
      fail_msg("\"%s\": delivered %lld failed %lld pending %lld counted %lld",
               cases[i].key, (long long)d.delivered, (long long)d.failed,
               (long long)d.pending, (long long)d.counted);
    assert_true(d.stats_hash != 0);
  }
}

/* The fingerprint depends on keys and values, not on their order; sums
 * saturate. */
static void test_count_fingerprint(void **state) {
  (void)state;
  brw_detail_t a, b, c;
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&c, 0, sizeof(c));
  brw__bsg_vocab_count(&a, "delivered", 3);
  brw__bsg_vocab_count(&a, "sent", 2);
  brw__bsg_vocab_count(&b, "sent", 2);
  brw__bsg_vocab_count(&b, "delivered", 3);
  brw__bsg_vocab_count(&c, "sent", 3);
  brw__bsg_vocab_count(&c, "delivered", 2);
  assert_true(a.stats_hash == b.stats_hash);
  assert_true(a.stats_hash != c.stats_hash);
  assert_true(a.delivered == 3 && a.pending == 2 && a.counted == 5);
  brw__bsg_vocab_count(&a, "read", INT64_MAX);
  assert_true(a.delivered == INT64_MAX);
  assert_true(a.counted == INT64_MAX);
}

/* The alias lists: each field's names in order of preference, and the
 * summary's keys first. */
static void test_aliases(void **state) {
  (void)state;
  const char *const *k = brw__bsg_vocab_keys;
  /* Each field: its first key, its alias count and the aliases, preferred
   * first (SPEC §2). */
  static const struct {
    int first, n;
    const char *names[3];
  } fields[] = {
      {BRW__BSG_VOCAB_STARTED_AT,
       BRW__BSG_VOCAB_START_N,
       {"started_at", "start_date", "start_at"}},
      {BRW__BSG_VOCAB_ACTUAL_START_AT,
       BRW__BSG_VOCAB_ACTUAL_N,
       {"actual_start_at", "real_start_at"}},
      {BRW__BSG_VOCAB_TYPE, BRW__BSG_VOCAB_TYPE_N, {"type", "message_type"}},
      {BRW__BSG_VOCAB_CREATED_AT,
       BRW__BSG_VOCAB_CREATED_N,
       {"created_at", "creation_at"}},
      {BRW__BSG_VOCAB_FINISHED_AT, BRW__BSG_VOCAB_FINISHED_N, {"finished_at"}},
  };
  for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
    int expect = 0;
    while (expect < 3 && fields[f].names[expect])
      expect++;
    assert_int_equal(fields[f].n, expect);
    for (int a = 0; a < expect; a++)
      assert_string_equal(k[fields[f].first + a], fields[f].names[a]);
  }
  /* Every key is named, and once. */
  for (int i = 0; i < BRW__BSG_VOCAB_KEYS; i++) {
    assert_non_null(k[i]);
    for (int j = 0; j < i; j++)
      if (!strcmp(k[i], k[j]))
        fail_msg("\"%s\" twice", k[i]);
  }
  assert_true(BRW__BSG_VOCAB_STATUS < BRW__BSG_VOCAB_SUMMARY_KEYS);
  assert_true(BRW__BSG_VOCAB_STATISTICS < BRW__BSG_VOCAB_SUMMARY_KEYS);
  assert_true(BRW__BSG_VOCAB_TYPE >= BRW__BSG_VOCAB_SUMMARY_KEYS);
}

/* Every status's name parses back to it, in any case. */
static void test_status_table(void **state) {
  (void)state;
  for (int st = BRW_STATUS_CREATION; st <= BRW_STATUS_SPAM; st++) {
    const char *name = brw_status_name((brw_status_t)st);
    char upper[32];
    size_t n = strlen(name);
    assert_true(n < sizeof(upper));
    for (size_t i = 0; i <= n; i++)
      upper[i] =
          name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i];
    assert_int_equal(brw_status_parse(name), st);
    assert_int_equal(brw_status_parse(upper), st);
  }
  /* "unknown" is the name of an unrecognised value, not a status sent. */
  assert_int_equal(brw_status_parse("unknown"), BRW_STATUS_UNKNOWN);
  assert_int_equal(brw_status_parse("done "), BRW_STATUS_UNKNOWN);
  assert_true(brw_status_is_terminal(BRW_STATUS_DONE));
  assert_true(brw_status_is_terminal(BRW_STATUS_STOPPED));
  assert_true(brw_status_is_terminal(BRW_STATUS_SPAM));
  assert_false(brw_status_is_terminal(BRW_STATUS_PAUSED));
  assert_false(brw_status_is_terminal(BRW_STATUS_UNKNOWN));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_digits_accepted),
      cmocka_unit_test(test_digits_refused),
      cmocka_unit_test(test_digits_length),
      cmocka_unit_test(test_sat_add),
      cmocka_unit_test(test_counter_map),
      cmocka_unit_test(test_count_fingerprint),
      cmocka_unit_test(test_aliases),
      cmocka_unit_test(test_status_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
