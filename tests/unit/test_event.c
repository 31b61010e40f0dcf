/* Unit tests of event parsing (SPEC §3): aliases, ids, accounts, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZE 65536

static char errbuf[256];

/* Parses a NUL-terminated value; returns the result code. */
static int parse(const char *json, brw_event_t *ev, const char **reason) {
  memset(errbuf, 'x', sizeof(errbuf));
  errbuf[sizeof(errbuf) - 1] = '\0';
  return brw_event_parse(json, json ? strlen(json) : 0, MAX_SIZE, ev, reason,
                         errbuf, sizeof(errbuf));
}

/* Every error message is one line and quotes little of the input. */
static void assert_message_sane(void) {
  size_t n = strlen(errbuf);
  assert_true(n > 0);
  assert_true(n < 160);
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)errbuf[i] < 0x20 || (unsigned char)errbuf[i] >= 0x7f)
      fail_msg("unprintable byte in \"%s\"", errbuf);
  }
}

static void expect_ok(const char *json, brw_event_type_t type, uint64_t id,
                      const char *account) {
  brw_event_t ev;
  const char *reason = "unset";
  int rc = parse(json, &ev, &reason);
  if (rc != 0)
    fail_msg("%s rejected: %s (%s)", json, errbuf, reason);
  assert_int_equal(ev.type, type);
  assert_true(ev.campaign_id == id);
  assert_string_equal(ev.account, account);
}

static void expect_fail(const char *json, int code, const char *want) {
  brw_event_t ev;
  const char *reason = NULL;
  int rc = parse(json, &ev, &reason);
  if (rc != code)
    fail_msg("%s: got %d, want %d", json ? json : "(null)", rc, code);
  assert_non_null(reason);
  if (strcmp(reason, want) != 0)
    fail_msg("%s: reason %s, want %s", json ? json : "(null)", reason, want);
  assert_message_sane();
}

static void test_valid_minimal(void **state) {
  (void)state;
  brw_event_t ev;
  assert_int_equal(parse("{\"campaign_id\": 53651994}", &ev, NULL), 0);
  assert_int_equal(ev.type, BRW_EVENT_SENT);
  assert_true(ev.campaign_id == 53651994);
  assert_string_equal(ev.account, "default");
  assert_true(ev.occurred_at_ms == 0);
}

static void test_valid_types(void **state) {
  (void)state;
  expect_ok("{\"type\":\"campaign.sent\",\"campaign_id\":1}", BRW_EVENT_SENT, 1,
            "default");
  expect_ok("{\"type\":\"campaign.finished\",\"campaign_id\":2}",
            BRW_EVENT_FINISHED, 2, "default");
  /* The alias `event`. */
  expect_ok("{\"event\":\"campaign.finished\",\"campaign_id\":3}",
            BRW_EVENT_FINISHED, 3, "default");
  expect_ok("{\"event\":\"campaign.sent\",\"campaign_id\":4}", BRW_EVENT_SENT,
            4, "default");
  /* `type` wins over `event`. */
  expect_ok("{\"type\":\"campaign.sent\",\"event\":\"campaign.finished\","
            "\"campaign_id\":5}",
            BRW_EVENT_SENT, 5, "default");
  /* A null type counts as absent. */
  expect_ok("{\"type\":null,\"campaign_id\":6}", BRW_EVENT_SENT, 6, "default");
}

static void test_valid_id_aliases(void **state) {
  (void)state;
  expect_ok("{\"id\":77}", BRW_EVENT_SENT, 77, "default");
  expect_ok("{\"data\":{\"id\":78}}", BRW_EVENT_SENT, 78, "default");
  expect_ok("{\"data\":{\"id\":\"79\"}}", BRW_EVENT_SENT, 79, "default");
  /* Precedence: campaign_id > id > data.id. */
  expect_ok("{\"campaign_id\":1,\"id\":2,\"data\":{\"id\":3}}", BRW_EVENT_SENT,
            1, "default");
  expect_ok("{\"id\":2,\"data\":{\"id\":3}}", BRW_EVENT_SENT, 2, "default");
  expect_ok("{\"campaign_id\":null,\"id\":2}", BRW_EVENT_SENT, 2, "default");
  /* A bad campaign_id is not masked by a good alias. */
  expect_fail("{\"campaign_id\":\"x\",\"id\":2}", BRW_EPARSE,
              BRW_REASON_INVALID_ID);
  /* The message names the field that was used. */
  expect_fail("{\"data\":{\"id\":\"x1\"}}", BRW_EPARSE, BRW_REASON_INVALID_ID);
  assert_non_null(strstr(errbuf, "data.id \"x1\""));
  expect_fail("{\"id\":-1}", BRW_EPARSE, BRW_REASON_INVALID_ID);
  assert_true(strncmp(errbuf, "id ", 3) == 0);
  /* BSG's own send response forwarded as the event. */
  expect_ok("{\"result\":\"ok\",\"data\":{\"id\":53651994,\"status\":"
            "\"creation\"}}",
            BRW_EVENT_SENT, 53651994, "default");
}

static void test_valid_id_forms(void **state) {
  (void)state;
  expect_ok("{\"campaign_id\":\"53651994\"}", BRW_EVENT_SENT, 53651994,
            "default");
  expect_ok("{\"campaign_id\":\"0012\"}", BRW_EVENT_SENT, 12, "default");
  /* 2^53 exactly is the largest valid id, as a number and as a string. */
  expect_ok("{\"campaign_id\":9007199254740992}", BRW_EVENT_SENT,
            UINT64_C(9007199254740992), "default");
  expect_ok("{\"campaign_id\":\"9007199254740992\"}", BRW_EVENT_SENT,
            UINT64_C(9007199254740992), "default");
  expect_ok("{\"campaign_id\":1}", BRW_EVENT_SENT, 1, "default");
}

static void test_invalid_ids(void **state) {
  (void)state;
  static const char *bad[] = {
      "{\"campaign_id\":\"../1\"}",
      "{\"campaign_id\":0}",
      "{\"campaign_id\":\"0\"}",
      "{\"campaign_id\":-5}",
      "{\"campaign_id\":\"-5\"}",
      "{\"campaign_id\":\"12a\"}",
      "{\"campaign_id\":\"\"}",
      "{\"campaign_id\":\" 12\"}",
      "{\"campaign_id\":\"12 \"}",
      "{\"campaign_id\":\"+12\"}",
      "{\"campaign_id\":12.0}",
      "{\"campaign_id\":1e3}",
      "{\"campaign_id\":\"1e3\"}",
      "{\"campaign_id\":9007199254740993}",
      "{\"campaign_id\":\"9007199254740993\"}",
      "{\"campaign_id\":9223372036854775807}",
      "{\"campaign_id\":\"99999999999999999999999999999999999999999\"}",
      "{\"campaign_id\":\"18446744073709551617\"}",
      "{\"campaign_id\":true}",
      "{\"campaign_id\":[1]}",
      "{\"campaign_id\":{\"id\":1}}",
      "{\"id\":\"1/../2\"}",
      "{\"data\":{\"id\":-1}}",
      "{\"data\":{\"id\":\"abc\"}}",
      "{\"data\":7}",
      "{\"type\":\"campaign.sent\"}",
      "{}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    expect_fail(bad[i], BRW_EPARSE, BRW_REASON_INVALID_ID);
}

static void test_invalid_json(void **state) {
  (void)state;
  static const char *bad[] = {
      "",        "not json", "{\"campaign_id\":1",           "[1,2]", "42",
      "\"str\"", "null",     "{\"campaign_id\":1} trailing",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    expect_fail(bad[i], BRW_EPARSE, BRW_REASON_INVALID_JSON);
  expect_fail(NULL, BRW_EPARSE, BRW_REASON_INVALID_JSON);
  /* Invalid UTF-8 is not JSON. */
  expect_fail("{\"campaign_id\":1,\"x\":\"\xff\"}", BRW_EPARSE,
              BRW_REASON_INVALID_JSON);
}

static void test_unknown_type(void **state) {
  (void)state;
  expect_fail("{\"type\":\"campaign.created\",\"campaign_id\":1}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_TYPE);
  expect_fail("{\"type\":\"CAMPAIGN.SENT\",\"campaign_id\":1}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_TYPE);
  expect_fail("{\"event\":\"sent\",\"campaign_id\":1}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_TYPE);
  expect_fail("{\"type\":1,\"campaign_id\":1}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_TYPE);
  expect_fail("{\"type\":{},\"campaign_id\":1}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_TYPE);
}

static void test_accounts(void **state) {
  (void)state;
  char json[256];
  expect_ok("{\"campaign_id\":1,\"account\":\"eu-2.prod_x\"}", BRW_EVENT_SENT,
            1, "eu-2.prod_x");
  expect_ok("{\"campaign_id\":1,\"account\":null}", BRW_EVENT_SENT, 1,
            "default");
  /* Exactly 64 bytes is the longest name. */
  snprintf(json, sizeof(json), "{\"campaign_id\":1,\"account\":\"%064d\"}", 0);
  expect_ok(json, BRW_EVENT_SENT, 1,
            "0000000000000000000000000000000000000000000000000000000000000000");
  snprintf(json, sizeof(json), "{\"campaign_id\":1,\"account\":\"%065d\"}", 0);
  expect_fail(json, BRW_EPARSE, BRW_REASON_UNKNOWN_ACCOUNT);
  expect_fail("{\"campaign_id\":1,\"account\":\"\"}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_ACCOUNT);
  expect_fail("{\"campaign_id\":1,\"account\":\"a b\"}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_ACCOUNT);
  expect_fail("{\"campaign_id\":1,\"account\":\"../etc\"}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_ACCOUNT);
  expect_fail("{\"campaign_id\":1,\"account\":\"a\\nb\"}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_ACCOUNT);
  expect_fail("{\"campaign_id\":1,\"account\":\"caf\xc3\xa9\"}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_ACCOUNT);
  expect_fail("{\"campaign_id\":1,\"account\":5}", BRW_EPARSE,
              BRW_REASON_UNKNOWN_ACCOUNT);
}

static void test_occurred_at(void **state) {
  (void)state;
  brw_event_t ev;
  assert_int_equal(parse("{\"campaign_id\":1,\"occurred_at\":"
                         "\"2026-11-27T10:00:00Z\"}",
                         &ev, NULL),
                   0);
  assert_true(ev.occurred_at_ms == INT64_C(1795773600000));
  assert_int_equal(parse("{\"campaign_id\":1,\"occurred_at\":"
                         "\"2026-11-27T13:00:00.250+03:00\"}",
                         &ev, NULL),
                   0);
  assert_true(ev.occurred_at_ms == INT64_C(1795773600250));
  /* Invalid or non-string times are ignored, not errors. */
  assert_int_equal(
      parse("{\"campaign_id\":1,\"occurred_at\":\"yesterday\"}", &ev, NULL), 0);
  assert_true(ev.occurred_at_ms == 0);
  assert_int_equal(
      parse("{\"campaign_id\":1,\"occurred_at\":1795773600}", &ev, NULL), 0);
  assert_true(ev.occurred_at_ms == 0);
}

static void test_size_limit(void **state) {
  (void)state;
  brw_event_t ev;
  const char *reason = NULL;
  size_t n = MAX_SIZE + 1;
  char *big = malloc(n);
  assert_non_null(big);
  /* Not even JSON: the size is checked before parsing. */
  memset(big, 'x', n);
  assert_int_equal(
      brw_event_parse(big, n, MAX_SIZE, &ev, &reason, errbuf, sizeof(errbuf)),
      BRW_ETOOLARGE);
  assert_string_equal(reason, BRW_REASON_TOO_LARGE);
  assert_message_sane();

  /* A valid event padded to exactly the limit is accepted. */
  const char *head = "{\"campaign_id\":9,\"pad\":\"";
  size_t hl = strlen(head);
  memcpy(big, head, hl);
  memset(big + hl, 'a', MAX_SIZE - hl - 2);
  memcpy(big + MAX_SIZE - 2, "\"}", 2);
  assert_int_equal(brw_event_parse(big, MAX_SIZE, MAX_SIZE, &ev, &reason,
                                   errbuf, sizeof(errbuf)),
                   0);
  assert_true(ev.campaign_id == 9);
  /* One byte over the limit is not. */
  assert_int_equal(brw_event_parse(big, MAX_SIZE, MAX_SIZE - 1, &ev, &reason,
                                   errbuf, sizeof(errbuf)),
                   BRW_ETOOLARGE);
  free(big);
}

static void test_message_does_not_echo_input(void **state) {
  (void)state;
  char json[600];
  brw_event_t ev;
  const char *reason;
  memcpy(json, "{\"campaign_id\":\"", 16);
  memset(json + 16, '7', 500);
  memcpy(json + 516, "z\"}", 4);
  assert_int_equal(parse(json, &ev, &reason), BRW_EPARSE);
  assert_string_equal(reason, BRW_REASON_INVALID_ID);
  assert_message_sane();
  /* At most ~64 bytes of the id are quoted. */
  assert_null(strstr(errbuf, "77777777777777777777777777777777777777777777777"
                             "77777777777777777777"));

  /* A type with a newline and a quote stays one line. */
  assert_int_equal(
      parse("{\"type\":\"a\\nb\\\"c\",\"campaign_id\":1}", &ev, &reason),
      BRW_EPARSE);
  assert_string_equal(reason, BRW_REASON_UNKNOWN_TYPE);
  assert_message_sane();

  /* A tiny error buffer is truncated, not overrun. */
  char small[8];
  memset(small, 'q', sizeof(small));
  assert_int_equal(
      brw_event_parse("[]", 2, MAX_SIZE, &ev, &reason, small, sizeof(small)),
      BRW_EPARSE);
  assert_int_equal(strlen(small), sizeof(small) - 1);
  /* NULL reason and errbuf are tolerated. */
  assert_int_equal(brw_event_parse("[]", 2, MAX_SIZE, &ev, NULL, NULL, 0),
                   BRW_EPARSE);
}

static void test_ignores_other_fields(void **state) {
  (void)state;
  expect_ok("{\"campaign_id\":5,\"extra\":{\"deep\":[1,2,{\"x\":null}]},"
            "\"id\":\"garbage\",\"account\":\"acme\"}",
            BRW_EVENT_SENT, 5, "acme");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_minimal),
      cmocka_unit_test(test_valid_types),
      cmocka_unit_test(test_valid_id_aliases),
      cmocka_unit_test(test_valid_id_forms),
      cmocka_unit_test(test_invalid_ids),
      cmocka_unit_test(test_invalid_json),
      cmocka_unit_test(test_unknown_type),
      cmocka_unit_test(test_accounts),
      cmocka_unit_test(test_occurred_at),
      cmocka_unit_test(test_size_limit),
      cmocka_unit_test(test_message_does_not_echo_input),
      cmocka_unit_test(test_ignores_other_fields),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
