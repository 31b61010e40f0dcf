/* Unit tests of event parsing (SPEC §3): aliases, ids, accounts, limits;
 * CloudEvents in binary and structured mode, configured type names. */
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

/* ------------------------------------------------------------------------ */
/* CloudEvents and configured type names                                    */

/* Headers of a test message, as C strings; NULL is absent. */
typedef struct {
  const char *content_type;
  const char *specversion;
  const char *type;
  const char *time;
} hdrs_t;

static const brw_event_types_t TYPES = {
    .sent = "com.example.sms.campaign.sent, com.example.sms.sent",
    .finished = "com.example.sms.campaign.finished"};

static void set_header(brw_event_input_t *in, brw_event_header_t h,
                       const char *s) {
  if (s) {
    in->headers[h].ptr = s;
    in->headers[h].len = strlen(s);
  }
}

/* Parses a NUL-terminated value with headers h (NULL: none) and types. */
static int parse_msg(const char *json, const hdrs_t *h,
                     const brw_event_types_t *types, brw_event_t *ev,
                     const char **reason) {
  brw_event_input_t in;
  memset(&in, 0, sizeof(in));
  in.value = json;
  in.len = json ? strlen(json) : 0;
  if (h) {
    set_header(&in, BRW_EVENT_H_CONTENT_TYPE, h->content_type);
    set_header(&in, BRW_EVENT_H_CE_SPECVERSION, h->specversion);
    set_header(&in, BRW_EVENT_H_CE_TYPE, h->type);
    set_header(&in, BRW_EVENT_H_CE_TIME, h->time);
  }
  memset(errbuf, 'x', sizeof(errbuf));
  errbuf[sizeof(errbuf) - 1] = '\0';
  return brw_event_parse_msg(&in, types, MAX_SIZE, ev, reason, errbuf,
                             sizeof(errbuf));
}

static void msg_ok(const char *json, const hdrs_t *h,
                   const brw_event_types_t *types, brw_event_shape_t shape,
                   brw_event_type_t type, uint64_t id, brw_event_t *out) {
  brw_event_t ev;
  const char *reason = "unset";
  int rc = parse_msg(json, h, types, &ev, &reason);
  if (rc != 0)
    fail_msg("%s rejected: %s (%s)", json, errbuf, reason);
  assert_null(reason);
  assert_int_equal(ev.shape, shape);
  assert_int_equal(ev.type, type);
  if (ev.campaign_id != id)
    fail_msg("%s: campaign id %llu, want %llu", json,
             (unsigned long long)ev.campaign_id, (unsigned long long)id);
  if (out)
    *out = ev;
}

static void msg_fail(const char *json, const hdrs_t *h,
                     const brw_event_types_t *types, brw_event_shape_t shape,
                     const char *want, const char *in_message) {
  brw_event_t ev;
  const char *reason = NULL;
  int rc = parse_msg(json, h, types, &ev, &reason);
  if (rc != BRW_EPARSE)
    fail_msg("%s: got %d, want BRW_EPARSE", json ? json : "(null)", rc);
  assert_non_null(reason);
  if (strcmp(reason, want) != 0)
    fail_msg("%s: reason %s (%s), want %s", json ? json : "(null)", reason,
             errbuf, want);
  assert_int_equal(ev.shape, shape);
  assert_message_sane();
  if (in_message && !strstr(errbuf, in_message))
    fail_msg("%s: message \"%s\" lacks \"%s\"", json, errbuf, in_message);
}

static void test_binary_type_from_header(void **state) {
  (void)state;
  hdrs_t h = {.specversion = "1.0", .type = "campaign.finished"};
  /* ce_type wins over the value's type (and event). */
  msg_ok("{\"type\":\"campaign.sent\",\"campaign_id\":5}", &h, NULL,
         BRW_EVENT_CE_BINARY, BRW_EVENT_FINISHED, 5, NULL);
  msg_ok("{\"event\":\"nonsense\",\"type\":7,\"id\":\"6\"}", &h, NULL,
         BRW_EVENT_CE_BINARY, BRW_EVENT_FINISHED, 6, NULL);
  h.type = "campaign.sent";
  msg_ok("{\"type\":\"campaign.finished\",\"data\":{\"id\":7}}", &h, NULL,
         BRW_EVENT_CE_BINARY, BRW_EVENT_SENT, 7, NULL);
  /* ce_type alone (no ce_specversion) is binary mode too. */
  h.specversion = NULL;
  h.type = "campaign.finished";
  msg_ok("{\"campaign_id\":8}", &h, NULL, BRW_EVENT_CE_BINARY,
         BRW_EVENT_FINISHED, 8, NULL);
  /* Mapped names. */
  h.type = "com.example.sms.campaign.finished";
  msg_ok("{\"campaign_id\":9}", &h, &TYPES, BRW_EVENT_CE_BINARY,
         BRW_EVENT_FINISHED, 9, NULL);
  h.type = "com.example.sms.sent";
  msg_ok("{\"campaign_id\":10}", &h, &TYPES, BRW_EVENT_CE_BINARY,
         BRW_EVENT_SENT, 10, NULL);
  /* Unknown: without the mapping, another case, a prefix, empty. */
  h.type = "com.example.sms.campaign.finished";
  msg_fail("{\"campaign_id\":9}", &h, NULL, BRW_EVENT_CE_BINARY,
           BRW_REASON_UNKNOWN_TYPE, "unknown ce_type");
  h.type = "COM.EXAMPLE.SMS.CAMPAIGN.FINISHED";
  msg_fail("{\"campaign_id\":9}", &h, &TYPES, BRW_EVENT_CE_BINARY,
           BRW_REASON_UNKNOWN_TYPE, NULL);
  h.type = "com.example.sms.campaign";
  msg_fail("{\"campaign_id\":9}", &h, &TYPES, BRW_EVENT_CE_BINARY,
           BRW_REASON_UNKNOWN_TYPE, NULL);
  h.type = "";
  msg_fail("{\"campaign_id\":9}", &h, &TYPES, BRW_EVENT_CE_BINARY,
           BRW_REASON_UNKNOWN_TYPE, NULL);
  /* The value's type does not rescue an unknown ce_type. */
  h.type = "com.other.thing";
  msg_fail("{\"type\":\"campaign.sent\",\"campaign_id\":9}", &h, &TYPES,
           BRW_EVENT_CE_BINARY, BRW_REASON_UNKNOWN_TYPE, NULL);
  /* ce_specversion without ce_type. */
  h.type = NULL;
  h.specversion = "1.0";
  msg_fail("{\"type\":\"campaign.sent\",\"campaign_id\":9}", &h, NULL,
           BRW_EVENT_CE_BINARY, BRW_REASON_UNKNOWN_TYPE, "ce_type");
}

static void test_binary_headers(void **state) {
  (void)state;
  hdrs_t h = {.specversion = "1.0", .type = "campaign.sent"};
  h.specversion = "0.3";
  msg_fail("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY,
           BRW_REASON_INVALID_JSON, "ce_specversion \"0.3\"");
  h.specversion = "1.0";
  /* content-type is the data's: JSON, with parameters, any case. */
  h.content_type = "application/json; charset=utf-8";
  msg_ok("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT,
         1, NULL);
  h.content_type = " Application/JSON ";
  msg_ok("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT,
         1, NULL);
  h.content_type = "application/vnd.example.campaign+json";
  msg_ok("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT,
         1, NULL);
  h.content_type = "text/plain";
  msg_fail("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY,
           BRW_REASON_INVALID_JSON, "text/plain");
  h.content_type = "application/avro";
  msg_fail("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY,
           BRW_REASON_INVALID_JSON, NULL);
  h.content_type = "json";
  msg_fail("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY,
           BRW_REASON_INVALID_JSON, NULL);
  h.content_type = NULL;
  /* The value is read as a plain event's fields. */
  msg_fail("{\"campaign_id\":\"12a\"}", &h, NULL, BRW_EVENT_CE_BINARY,
           BRW_REASON_INVALID_ID, "campaign_id \"12a\"");
  msg_fail("{\"campaign_id\":1,\"account\":\"a b\"}", &h, NULL,
           BRW_EVENT_CE_BINARY, BRW_REASON_UNKNOWN_ACCOUNT, NULL);
  msg_fail("not json", &h, NULL, BRW_EVENT_CE_BINARY, BRW_REASON_INVALID_JSON,
           NULL);
  msg_fail("", &h, NULL, BRW_EVENT_CE_BINARY, BRW_REASON_INVALID_JSON, NULL);
  msg_fail("[1]", &h, NULL, BRW_EVENT_CE_BINARY, BRW_REASON_INVALID_JSON, NULL);
  brw_event_t ev;
  msg_ok("{\"campaign_id\":1,\"account\":\"eu\"}", &h, NULL,
         BRW_EVENT_CE_BINARY, BRW_EVENT_SENT, 1, &ev);
  assert_string_equal(ev.account, "eu");
  /* An envelope as a binary event's value: the modes mixed up. */
  msg_fail("{\"specversion\":\"1.0\",\"type\":\"campaign.sent\",\"id\":\"4\","
           "\"data\":{\"campaign_id\":1}}",
           &h, NULL, BRW_EVENT_CE_BINARY, BRW_REASON_INVALID_JSON,
           "specversion");
}

static void test_binary_ce_time(void **state) {
  (void)state;
  brw_event_t ev;
  hdrs_t h = {.specversion = "1.0",
              .type = "campaign.sent",
              .time = "2026-11-27T10:00:00Z"};
  msg_ok("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT,
         1, &ev);
  assert_true(ev.occurred_at_ms == INT64_C(1795773600000));
  h.time = "2026-11-27T13:00:00.250+03:00";
  msg_ok("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT,
         1, &ev);
  assert_true(ev.occurred_at_ms == INT64_C(1795773600250));
  /* The data's occurred_at wins. */
  msg_ok("{\"campaign_id\":1,\"occurred_at\":\"2026-11-27T11:00:00Z\"}", &h,
         NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT, 1, &ev);
  assert_true(ev.occurred_at_ms == INT64_C(1795777200000));
  /* ... unless it is invalid, which is as if absent. */
  msg_ok("{\"campaign_id\":1,\"occurred_at\":\"soon\"}", &h, NULL,
         BRW_EVENT_CE_BINARY, BRW_EVENT_SENT, 1, &ev);
  assert_true(ev.occurred_at_ms == INT64_C(1795773600250));
  /* A bad ce_time is ignored, not an error. */
  static const char *bad[] = {"yesterday", "", "2026-13-01T00:00:00Z",
                              "2026-11-27T10:00:00Z and then some more text "
                              "that makes it longer than sixty-four bytes"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    h.time = bad[i];
    msg_ok("{\"campaign_id\":1}", &h, NULL, BRW_EVENT_CE_BINARY, BRW_EVENT_SENT,
           1, &ev);
    assert_true(ev.occurred_at_ms == 0);
  }
  /* A NUL inside the header's bytes does not end it early. */
  brw_event_input_t in;
  const char *reason = NULL;
  static const char nul_time[] = "2026-11-27T10:00:00Z\0junk";
  memset(&in, 0, sizeof(in));
  in.value = "{\"campaign_id\":1}";
  in.len = strlen(in.value);
  set_header(&in, BRW_EVENT_H_CE_TYPE, "campaign.sent");
  in.headers[BRW_EVENT_H_CE_TIME].ptr = nul_time;
  in.headers[BRW_EVENT_H_CE_TIME].len = sizeof(nul_time) - 1;
  assert_int_equal(brw_event_parse_msg(&in, NULL, MAX_SIZE, &ev, &reason,
                                       errbuf, sizeof(errbuf)),
                   0);
  assert_true(ev.occurred_at_ms == 0);
}

/* Header values are bytes with a length, not C strings: nothing is read
 * past it. */
static void test_binary_headers_are_bounded(void **state) {
  (void)state;
  brw_event_t ev;
  brw_event_input_t in;
  const char *reason = NULL;
  static const char buf[] = "campaign.finishedXYZ1.0+2026-11-27T10:00:00Zjunk";
  memset(&in, 0, sizeof(in));
  in.value = "{\"campaign_id\":3}";
  in.len = strlen(in.value);
  in.headers[BRW_EVENT_H_CE_TYPE].ptr = buf;
  in.headers[BRW_EVENT_H_CE_TYPE].len = strlen("campaign.finished");
  in.headers[BRW_EVENT_H_CE_SPECVERSION].ptr = buf + 20;
  in.headers[BRW_EVENT_H_CE_SPECVERSION].len = 3;
  in.headers[BRW_EVENT_H_CE_TIME].ptr = buf + 24;
  in.headers[BRW_EVENT_H_CE_TIME].len = strlen("2026-11-27T10:00:00Z");
  assert_int_equal(brw_event_parse_msg(&in, NULL, MAX_SIZE, &ev, &reason,
                                       errbuf, sizeof(errbuf)),
                   0);
  assert_int_equal(ev.type, BRW_EVENT_FINISHED);
  assert_true(ev.occurred_at_ms == INT64_C(1795773600000));
  /* One byte short of the name is another name. */
  in.headers[BRW_EVENT_H_CE_TYPE].len--;
  assert_int_equal(brw_event_parse_msg(&in, NULL, MAX_SIZE, &ev, &reason,
                                       errbuf, sizeof(errbuf)),
                   BRW_EPARSE);
  assert_string_equal(reason, BRW_REASON_UNKNOWN_TYPE);
  assert_non_null(strstr(errbuf, "\"campaign.finishe\""));

  /* A long ce_type with a newline and quotes: one line, 48 bytes quoted. */
  char big[1000];
  memset(big, 'q', sizeof(big));
  big[3] = '\n';
  big[5] = '"';
  in.headers[BRW_EVENT_H_CE_TYPE].ptr = big;
  in.headers[BRW_EVENT_H_CE_TYPE].len = sizeof(big);
  assert_int_equal(brw_event_parse_msg(&in, NULL, MAX_SIZE, &ev, &reason,
                                       errbuf, sizeof(errbuf)),
                   BRW_EPARSE);
  assert_message_sane();
  assert_null(
      strstr(errbuf, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"));
  assert_non_null(strstr(errbuf, "...\""));
}

static const char ENVELOPE_HEAD[] =
    "{\"specversion\":\"1.0\",\"source\":\"/sms\","
    "\"id\":\"77\",";

static void test_structured_header(void **state) {
  (void)state;
  char json[512];
  brw_event_t ev;
  hdrs_t h = {.content_type = "application/cloudevents+json; charset=utf-8"};
  snprintf(json, sizeof(json),
           "%s\"type\":\"campaign.finished\",\"data\":{\"campaign_id\":5,"
           "\"account\":\"eu\",\"type\":\"campaign.sent\"}}",
           ENVELOPE_HEAD);
  /* The envelope's id (77) is not the campaign id; data's type is not the
   * type. */
  msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_FINISHED, 5, &ev);
  assert_string_equal(ev.account, "eu");
  h.content_type = "Application/CloudEvents+JSON";
  msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_FINISHED, 5, NULL);
  h.content_type = " application/cloudevents+json ;charset=UTF-8";
  msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_FINISHED, 5, NULL);
  /* The header wins over ce_* headers (the Kafka binding's rule). */
  h.type = "something.else";
  h.specversion = "0.3";
  msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_FINISHED, 5, NULL);
  h.type = h.specversion = NULL;
  /* Formats other than JSON, and batches, are not read. */
  h.content_type = "application/cloudevents+avro";
  msg_fail(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_REASON_INVALID_JSON,
           "application/cloudevents+avro");
  h.content_type = "application/cloudevents-batch+json";
  msg_fail(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_REASON_INVALID_JSON,
           NULL);
  /* With the header, a value that is no envelope is refused. */
  h.content_type = "application/cloudevents+json";
  msg_fail("{\"type\":\"campaign.sent\",\"campaign_id\":5}", &h, NULL,
           BRW_EVENT_CE_STRUCTURED, BRW_REASON_INVALID_JSON, "specversion");
  msg_fail("not json", &h, NULL, BRW_EVENT_CE_STRUCTURED,
           BRW_REASON_INVALID_JSON, NULL);
  /* Another content-type leaves a plain event plain. */
  h.content_type = "application/json";
  msg_ok("{\"type\":\"campaign.sent\",\"campaign_id\":5}", &h, NULL,
         BRW_EVENT_PLAIN, BRW_EVENT_SENT, 5, NULL);
  h.content_type = "text/plain";
  msg_ok("{\"campaign_id\":5}", &h, NULL, BRW_EVENT_PLAIN, BRW_EVENT_SENT, 5,
         NULL);
}

static void test_structured_without_header(void **state) {
  (void)state;
  char json[512];
  brw_event_t ev;
  const char *reason;
  /* specversion at the root makes an envelope, header or not. */
  snprintf(json, sizeof(json),
           "%s\"type\":\"campaign.sent\",\"data\":{\"id\":\"6\"}}",
           ENVELOPE_HEAD);
  msg_ok(json, NULL, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_SENT, 6, NULL);
  /* So does the old entry point. */
  assert_int_equal(parse(json, &ev, &reason), 0);
  assert_int_equal(ev.shape, BRW_EVENT_CE_STRUCTURED);
  assert_true(ev.campaign_id == 6);
  /* Without data the envelope's id is never taken. */
  snprintf(json, sizeof(json), "%s\"type\":\"campaign.sent\"}", ENVELOPE_HEAD);
  msg_fail(json, NULL, NULL, BRW_EVENT_CE_STRUCTURED, BRW_REASON_INVALID_ID,
           "without data");
  /* A specversion that is not a string still marks an envelope. */
  msg_fail("{\"specversion\":1.0,\"type\":\"campaign.sent\",\"id\":\"7\","
           "\"data\":{\"campaign_id\":7}}",
           NULL, NULL, BRW_EVENT_CE_STRUCTURED, BRW_REASON_INVALID_JSON,
           "specversion");
  /* A null specversion is absent: a plain event. */
  msg_ok("{\"specversion\":null,\"id\":7}", NULL, NULL, BRW_EVENT_PLAIN,
         BRW_EVENT_SENT, 7, NULL);
  /* Plain events carry no shape but plain. */
  msg_ok("{\"campaign_id\":8}", NULL, NULL, BRW_EVENT_PLAIN, BRW_EVENT_SENT, 8,
         NULL);
}

static void test_structured_refusals(void **state) {
  (void)state;
  char json[512];
  hdrs_t h = {.content_type = "application/cloudevents+json"};
  static const struct {
    const char *rest; /* after ENVELOPE_HEAD */
    const char *reason;
    const char *in_message;
  } cases[] = {
      /* data missing, null, or not an object */
      {"\"type\":\"campaign.sent\"}", BRW_REASON_INVALID_ID, "without data"},
      {"\"type\":\"campaign.sent\",\"data\":null}", BRW_REASON_INVALID_ID,
       NULL},
      {"\"type\":\"campaign.sent\",\"data\":\"{\\\"campaign_id\\\":5}\"}",
       BRW_REASON_INVALID_JSON, "data is not a JSON object"},
      {"\"type\":\"campaign.sent\",\"data\":[5]}", BRW_REASON_INVALID_JSON,
       NULL},
      {"\"type\":\"campaign.sent\",\"data\":5}", BRW_REASON_INVALID_JSON, NULL},
      /* binary data */
      {"\"type\":\"campaign.sent\",\"data_base64\":\"eyJpZCI6NX0=\"}",
       BRW_REASON_INVALID_JSON, "data_base64"},
      {"\"type\":\"campaign.sent\",\"data\":{\"campaign_id\":5},"
       "\"data_base64\":\"eyJpZCI6NX0=\"}",
       BRW_REASON_INVALID_JSON, "data_base64"},
      /* data that is not JSON */
      {"\"type\":\"campaign.sent\",\"datacontenttype\":\"application/xml\","
       "\"data\":{\"campaign_id\":5}}",
       BRW_REASON_INVALID_JSON, "application/xml"},
      {"\"type\":\"campaign.sent\",\"datacontenttype\":7,"
       "\"data\":{\"campaign_id\":5}}",
       BRW_REASON_INVALID_JSON, "datacontenttype"},
      /* type */
      {"\"data\":{\"campaign_id\":5}}", BRW_REASON_UNKNOWN_TYPE, "type"},
      {"\"type\":5,\"data\":{\"campaign_id\":5}}", BRW_REASON_UNKNOWN_TYPE,
       NULL},
      {"\"type\":\"com.example.sms.campaign.exploded\","
       "\"data\":{\"campaign_id\":5}}",
       BRW_REASON_UNKNOWN_TYPE, "com.example.sms.campaign.exploded"},
      /* the fields in data, named with their path */
      {"\"type\":\"campaign.sent\",\"data\":{\"campaign_id\":\"x\"}}",
       BRW_REASON_INVALID_ID, "data.campaign_id \"x\""},
      {"\"type\":\"campaign.sent\",\"data\":{\"data\":{\"id\":-1}}}",
       BRW_REASON_INVALID_ID, "data.data.id"},
      {"\"type\":\"campaign.sent\",\"data\":{}}", BRW_REASON_INVALID_ID,
       "data.campaign_id"},
      {"\"type\":\"campaign.sent\",\"data\":{\"campaign_id\":5,"
       "\"account\":\"../x\"}}",
       BRW_REASON_UNKNOWN_ACCOUNT, NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    snprintf(json, sizeof(json), "%s%s", ENVELOPE_HEAD, cases[i].rest);
    msg_fail(json, &h, &TYPES, BRW_EVENT_CE_STRUCTURED, cases[i].reason,
             cases[i].in_message);
    /* The same without the header. */
    msg_fail(json, NULL, &TYPES, BRW_EVENT_CE_STRUCTURED, cases[i].reason,
             cases[i].in_message);
  }
  /* Versions other than 1.0. */
  static const char *versions[] = {"\"0.3\"", "\"1.0.0\"", "\"2.0\"",
                                   "\"\"",    "1",         "{}"};
  for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
    snprintf(json, sizeof(json),
             "{\"specversion\":%s,\"type\":\"campaign.sent\",\"id\":\"a\","
             "\"source\":\"/s\",\"data\":{\"campaign_id\":5}}",
             versions[i]);
    msg_fail(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_REASON_INVALID_JSON,
             "specversion");
  }
  /* JSON data content types are fine. */
  static const char *json_types[] = {
      "application/json", "application/json; charset=utf-8", "text/json",
      "application/cloudevents+json", "application/vnd.example+JSON"};
  for (size_t i = 0; i < sizeof(json_types) / sizeof(json_types[0]); i++) {
    snprintf(json, sizeof(json),
             "%s\"type\":\"campaign.sent\",\"datacontenttype\":\"%s\","
             "\"data\":{\"campaign_id\":5}}",
             ENVELOPE_HEAD, json_types[i]);
    msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_SENT, 5, NULL);
  }
}

static void test_structured_types_and_time(void **state) {
  (void)state;
  char json[512];
  brw_event_t ev;
  hdrs_t h = {.content_type = "application/cloudevents+json"};
  snprintf(json, sizeof(json),
           "%s\"type\":\"com.example.sms.campaign.finished\","
           "\"time\":\"2026-11-27T10:00:00Z\",\"data\":{\"campaign_id\":5}}",
           ENVELOPE_HEAD);
  msg_ok(json, &h, &TYPES, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_FINISHED, 5, &ev);
  /* The envelope's time is occurred_at when data has none. */
  assert_true(ev.occurred_at_ms == INT64_C(1795773600000));
  msg_fail(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_REASON_UNKNOWN_TYPE,
           "unknown CloudEvent type");
  /* data's occurred_at wins. */
  snprintf(json, sizeof(json),
           "%s\"type\":\"com.example.sms.sent\",\"time\":\"2026-11-27T10:00:"
           "00Z\",\"data\":{\"campaign_id\":5,\"occurred_at\":\"2026-11-27T11:"
           "00:00Z\"}}",
           ENVELOPE_HEAD);
  msg_ok(json, &h, &TYPES, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_SENT, 5, &ev);
  assert_true(ev.occurred_at_ms == INT64_C(1795777200000));
  /* A bad time is ignored. */
  snprintf(json, sizeof(json),
           "%s\"type\":\"campaign.sent\",\"time\":\"noon\","
           "\"data\":{\"campaign_id\":5}}",
           ENVELOPE_HEAD);
  msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_SENT, 5, &ev);
  assert_true(ev.occurred_at_ms == 0);
  snprintf(json, sizeof(json),
           "%s\"type\":\"campaign.sent\",\"time\":17,"
           "\"data\":{\"campaign_id\":5}}",
           ENVELOPE_HEAD);
  msg_ok(json, &h, NULL, BRW_EVENT_CE_STRUCTURED, BRW_EVENT_SENT, 5, &ev);
  assert_true(ev.occurred_at_ms == 0);
  /* The size limit counts the envelope. */
  snprintf(json, sizeof(json),
           "%s\"type\":\"campaign.sent\",\"data\":{\"campaign_id\":5}}",
           ENVELOPE_HEAD);
  brw_event_input_t in;
  const char *reason = NULL;
  memset(&in, 0, sizeof(in));
  in.value = json;
  in.len = strlen(json);
  set_header(&in, BRW_EVENT_H_CONTENT_TYPE, "application/cloudevents+json");
  assert_int_equal(brw_event_parse_msg(&in, NULL, in.len - 1, &ev, &reason,
                                       errbuf, sizeof(errbuf)),
                   BRW_ETOOLARGE);
  assert_string_equal(reason, BRW_REASON_TOO_LARGE);
  assert_int_equal(ev.shape, BRW_EVENT_CE_STRUCTURED);
}

static void test_plain_type_names(void **state) {
  (void)state;
  msg_ok("{\"type\":\"com.example.sms.campaign.sent\",\"campaign_id\":1}", NULL,
         &TYPES, BRW_EVENT_PLAIN, BRW_EVENT_SENT, 1, NULL);
  /* Spaces around a name in the list do not count. */
  msg_ok("{\"type\":\"com.example.sms.sent\",\"campaign_id\":1}", NULL, &TYPES,
         BRW_EVENT_PLAIN, BRW_EVENT_SENT, 1, NULL);
  msg_ok("{\"event\":\"com.example.sms.campaign.finished\",\"campaign_id\":2}",
         NULL, &TYPES, BRW_EVENT_PLAIN, BRW_EVENT_FINISHED, 2, NULL);
  /* The built-in names stay. */
  msg_ok("{\"type\":\"campaign.finished\",\"campaign_id\":3}", NULL, &TYPES,
         BRW_EVENT_PLAIN, BRW_EVENT_FINISHED, 3, NULL);
  msg_ok("{\"campaign_id\":3}", NULL, &TYPES, BRW_EVENT_PLAIN, BRW_EVENT_SENT,
         3, NULL);
  /* Whole names only, case-sensitive; without the mapping, unknown. */
  static const char *unknown[] = {
      "{\"type\":\"com.example.sms\",\"campaign_id\":1}",
      "{\"type\":\"com.example.sms.sent2\",\"campaign_id\":1}",
      "{\"type\":\" com.example.sms.sent\",\"campaign_id\":1}",
      "{\"type\":\"Com.example.sms.sent\",\"campaign_id\":1}",
      "{\"type\":\"com.example.sms.sent,com.example.sms.campaign.sent\","
      "\"campaign_id\":1}",
      "{\"type\":\"\",\"campaign_id\":1}",
  };
  for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
    msg_fail(unknown[i], NULL, &TYPES, BRW_EVENT_PLAIN, BRW_REASON_UNKNOWN_TYPE,
             "unknown event type");
  msg_fail("{\"type\":\"com.example.sms.sent\",\"campaign_id\":1}", NULL, NULL,
           BRW_EVENT_PLAIN, BRW_REASON_UNKNOWN_TYPE, NULL);
  brw_event_types_t empty = {.sent = "", .finished = " "};
  msg_fail("{\"type\":\"\",\"campaign_id\":1}", NULL, &empty, BRW_EVENT_PLAIN,
           BRW_REASON_UNKNOWN_TYPE, NULL);
}

static void test_types_check(void **state) {
  (void)state;
  char why[256], name[300], list[8192];
  static const char *good[] = {NULL,
                               "",
                               "  ",
                               "a",
                               "com.example.sms.campaign.sent",
                               " a , b ,c",
                               "campaign.sent",
                               "x-y_z:1/2#3"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    if (brw_event_types_check(good[i], BRW_EVENT_SENT, why, sizeof(why)) != 0)
      fail_msg("\"%s\" refused: %s", good[i] ? good[i] : "(null)", why);
  }
  static const struct {
    const char *list;
    brw_event_type_t meaning;
    const char *in_why;
  } bad[] = {
      {"a,,b", BRW_EVENT_SENT, "empty name"},
      {"a,", BRW_EVENT_SENT, "empty name"},
      {",a", BRW_EVENT_SENT, "empty name"},
      {"a, ,b", BRW_EVENT_FINISHED, "empty name"},
      {"a b", BRW_EVENT_SENT, "\"a b\" holds a space"},
      {"caf\xc3\xa9", BRW_EVENT_SENT, "printable ASCII"},
      {"a\x01", BRW_EVENT_SENT, "printable ASCII"},
      {"campaign.finished", BRW_EVENT_SENT,
       "\"campaign.finished\" is the built-in name of campaign.finished"},
      {"x, campaign.sent", BRW_EVENT_FINISHED, "built-in name"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    why[0] = '\0';
    if (brw_event_types_check(bad[i].list, bad[i].meaning, why, sizeof(why)) !=
        -1)
      fail_msg("\"%s\" accepted", bad[i].list);
    if (!strstr(why, bad[i].in_why))
      fail_msg("\"%s\": \"%s\" lacks \"%s\"", bad[i].list, why, bad[i].in_why);
    for (const char *p = why; *p; p++)
      assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
  }
  /* 255 bytes is the longest name; 32 the most names. */
  memset(list, 'n', 255);
  list[255] = '\0';
  assert_int_equal(brw_event_types_check(list, BRW_EVENT_SENT, why, 256), 0);
  list[255] = 'n';
  list[256] = '\0';
  assert_int_equal(brw_event_types_check(list, BRW_EVENT_SENT, why, 256), -1);
  assert_non_null(strstr(why, "256 bytes, longer than 255"));
  assert_true(strlen(why) < 120);
  size_t n = 0;
  for (int i = 0; i < 32; i++)
    n += (size_t)snprintf(list + n, sizeof(list) - n, "%st%d", i ? "," : "", i);
  assert_int_equal(brw_event_types_check(list, BRW_EVENT_SENT, why, 256), 0);
  snprintf(list + n, sizeof(list) - n, ",t32");
  assert_int_equal(brw_event_types_check(list, BRW_EVENT_SENT, why, 256), -1);
  assert_non_null(strstr(why, "more than 32"));

  /* Overlap of the two lists. */
  brw_event_types_t t = {.sent = "a, b,c", .finished = "d,c "};
  assert_int_equal(brw_event_types_overlap(&t, name, sizeof(name)), 1);
  assert_string_equal(name, "c");
  t.finished = "d";
  assert_int_equal(brw_event_types_overlap(&t, name, sizeof(name)), 0);
  t.finished = NULL;
  assert_int_equal(brw_event_types_overlap(&t, name, sizeof(name)), 0);
  assert_int_equal(brw_event_types_overlap(NULL, name, sizeof(name)), 0);
  t.sent = "longname";
  t.finished = "longname";
  assert_int_equal(brw_event_types_overlap(&t, name, 5), 1);
  assert_string_equal(name, "long");
}

static void test_shape_names(void **state) {
  (void)state;
  assert_string_equal(brw_event_shape_name(BRW_EVENT_PLAIN), "plain");
  assert_string_equal(brw_event_shape_name(BRW_EVENT_CE_BINARY), "ce_binary");
  assert_string_equal(brw_event_shape_name(BRW_EVENT_CE_STRUCTURED),
                      "ce_structured");
  assert_string_equal(brw_event_shape_name((brw_event_shape_t)9), "unknown");
  assert_string_equal(brw_event_header_names[BRW_EVENT_H_CONTENT_TYPE],
                      "content-type");
  assert_string_equal(brw_event_header_names[BRW_EVENT_H_CE_SPECVERSION],
                      "ce_specversion");
  assert_string_equal(brw_event_header_names[BRW_EVENT_H_CE_TYPE], "ce_type");
  assert_string_equal(brw_event_header_names[BRW_EVENT_H_CE_TIME], "ce_time");
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
      cmocka_unit_test(test_binary_type_from_header),
      cmocka_unit_test(test_binary_headers),
      cmocka_unit_test(test_binary_ce_time),
      cmocka_unit_test(test_binary_headers_are_bounded),
      cmocka_unit_test(test_structured_header),
      cmocka_unit_test(test_structured_without_header),
      cmocka_unit_test(test_structured_refusals),
      cmocka_unit_test(test_structured_types_and_time),
      cmocka_unit_test(test_plain_type_names),
      cmocka_unit_test(test_types_check),
      cmocka_unit_test(test_shape_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
