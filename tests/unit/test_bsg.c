/* Unit tests of the BSG One API data module: every SPEC §2 variant of the
 * campaign detail, the campaign list, malformed bodies, prices, statuses,
 * error bodies, JWTs and login responses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/bsg.h"
#include "../../src/bsg_fast.h"
#include "brw/error.h"
#include "brw/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char errbuf[256];

/* Parses `body` (NUL-terminated) with zone offset tz; fails the test when it
 * is rejected. The caller clears *d. */
static void detail_ok(const char *body, int32_t tz, brw_detail_t *d) {
  brw_tz_t *zone = brw_tz_fixed(tz);
  assert_non_null(zone);
  int rc =
      brw_detail_parse(body, strlen(body), zone, d, errbuf, sizeof(errbuf));
  brw_tz_free(zone);
  if (rc != 0)
    fail_msg("detail rejected: %s\nbody: %s", errbuf, body);
  assert_non_null(d->campaign);
  assert_true(json_is_object(d->campaign));
}

/* The campaign member `key`, borrowed. */
static json_t *cget(const brw_detail_t *d, const char *key) {
  return json_object_get(d->campaign, key);
}

static void assert_cstr(const brw_detail_t *d, const char *key,
                        const char *want) {
  json_t *v = cget(d, key);
  if (!json_is_string(v))
    fail_msg("campaign.%s is not a string", key);
  assert_string_equal(json_string_value(v), want);
}

static void assert_cnull(const brw_detail_t *d, const char *key) {
  json_t *v = cget(d, key);
  if (!json_is_null(v))
    fail_msg("campaign.%s is not null", key);
}

static int64_t stat_of(const brw_detail_t *d, const char *key) {
  json_t *v = json_object_get(cget(d, "statistics"), key);
  if (!json_is_integer(v))
    fail_msg("statistics.%s is not an integer", key);
  return json_integer_value(v);
}

/* The detail of SPEC §4's example, in BSG's documented shape. */
static const char *const FULL =
    "{\"data\":{\"id\":53651994,\"name\":\"Black Friday\",\"sender\":\"BSG\","
    "\"type\":\"sms\",\"status\":\"done\","
    "\"started_at\":\"2026-11-27 10:00:00\","
    "\"actual_start_at\":\"2026-11-27 10:00:05\","
    "\"created_at\":\"2026-11-27 09:00:00\","
    "\"finished_at\":\"2026-11-27 10:09:06\","
    "\"statistics\":{\"delivered\":7,\"undelivered\":3,\"sent\":0},"
    "\"total_messages\":10,\"total_phones\":10,\"total_price\":\"0.16\","
    "\"currency\":\"USD\",\"extra\":true}}";

static void test_full_shape_and_order(void **state) {
  (void)state;
  brw_detail_t d;
  char *text;
  detail_ok(FULL, 0, &d);
  assert_true(d.id == 53651994);
  assert_int_equal(d.status, BRW_STATUS_DONE);
  assert_string_equal(d.status_raw, "done");
  text = json_dumps(d.campaign, JSON_COMPACT);
  assert_non_null(text);
  /* Exact text: the key order of the report and nothing else (no id, no
   * "extra", no alternative_channels when absent). */
  assert_string_equal(
      text, "{\"name\":\"Black Friday\",\"sender\":\"BSG\",\"type\":\"sms\","
            "\"status\":\"done\",\"started_at\":\"2026-11-27T10:00:00Z\","
            "\"actual_start_at\":\"2026-11-27T10:00:05Z\","
            "\"created_at\":\"2026-11-27T09:00:00Z\","
            "\"finished_at\":\"2026-11-27T10:09:06Z\","
            "\"statistics\":{\"delivered\":7,\"undelivered\":3,\"sent\":0},"
            "\"total_messages\":10,\"total_phones\":10,"
            "\"total_price\":\"0.16\",\"currency\":\"USD\"}");
  free(text);
  assert_true(d.scheduled_start_ms == INT64_C(1795773600000));
  assert_true(d.actual_start_ms == INT64_C(1795773605000));
  assert_true(d.created_ms == INT64_C(1795770000000));
  assert_true(d.finished_ms == INT64_C(1795774146000));
  assert_true(d.total_messages == 10);
  assert_true(d.delivered == 7);
  assert_true(d.failed == 3);
  assert_true(d.pending == 0);
  brw_detail_clear(&d);
  assert_null(d.campaign);
  /* Clearing twice is harmless. */
  brw_detail_clear(&d);
}

static void test_id_integer_and_string(void **state) {
  (void)state;
  brw_detail_t d;
  detail_ok("{\"data\":{\"id\":42,\"status\":\"sending\"}}", 0, &d);
  assert_true(d.id == 42);
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":\"4242\",\"status\":\"sending\"}}", 0, &d);
  assert_true(d.id == 4242);
  brw_detail_clear(&d);
  /* A bare object without "data" is accepted too. */
  detail_ok("{\"id\":\"7\",\"status\":\"done\"}", 0, &d);
  assert_true(d.id == 7);
  brw_detail_clear(&d);
}

static void test_absent_and_null_strings(void **state) {
  (void)state;
  brw_detail_t d;
  detail_ok("{\"data\":{\"id\":1,\"status\":\"creation\",\"name\":null}}", 0,
            &d);
  assert_cnull(&d, "name");
  assert_cnull(&d, "sender");
  assert_cnull(&d, "currency");
  assert_cnull(&d, "type");
  assert_cnull(&d, "started_at");
  assert_cnull(&d, "actual_start_at");
  assert_cnull(&d, "created_at");
  assert_cnull(&d, "finished_at");
  assert_cnull(&d, "total_messages");
  assert_cnull(&d, "total_phones");
  assert_cnull(&d, "total_price");
  /* Absent statistics are an empty object, not null. */
  assert_true(json_is_object(cget(&d, "statistics")));
  assert_int_equal(json_object_size(cget(&d, "statistics")), 0);
  assert_null(cget(&d, "alternative_channels"));
  assert_true(d.total_messages == -1);
  assert_true(d.scheduled_start_ms == 0 && d.finished_ms == 0);
  /* Every key is present even when null. */
  assert_int_equal(json_object_size(d.campaign), 13);
  brw_detail_clear(&d);
  /* A name of the wrong type is null too. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"creation\",\"name\":5,"
            "\"sender\":\"S\",\"currency\":\"EUR\"}}",
            0, &d);
  assert_cnull(&d, "name");
  assert_cstr(&d, "sender", "S");
  assert_cstr(&d, "currency", "EUR");
  brw_detail_clear(&d);
}

static void test_statuses(void **state) {
  (void)state;
  static const struct {
    const char *text;
    brw_status_t st;
    int terminal;
  } cases[] = {
      {"creation", BRW_STATUS_CREATION, 0},
      {"moderation", BRW_STATUS_MODERATION, 0},
      {"scheduled", BRW_STATUS_SCHEDULED, 0},
      {"sending", BRW_STATUS_SENDING, 0},
      {"paused", BRW_STATUS_PAUSED, 0},
      {"stopped", BRW_STATUS_STOPPED, 1},
      {"done", BRW_STATUS_DONE, 1},
      {"spam", BRW_STATUS_SPAM, 1},
      {"DONE", BRW_STATUS_DONE, 1},
      {"Sending", BRW_STATUS_SENDING, 0},
      {"sPaM", BRW_STATUS_SPAM, 1},
      {"archived", BRW_STATUS_UNKNOWN, 0},
      {"done ", BRW_STATUS_UNKNOWN, 0},
      {"", BRW_STATUS_UNKNOWN, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    brw_status_t st = brw_status_parse(cases[i].text);
    if (st != cases[i].st)
      fail_msg("status \"%s\" parsed as %d", cases[i].text, (int)st);
    assert_int_equal(brw_status_is_terminal(st), cases[i].terminal);
  }
  assert_int_equal(brw_status_parse(NULL), BRW_STATUS_UNKNOWN);
  assert_string_equal(brw_status_name(BRW_STATUS_UNKNOWN), "unknown");
  assert_string_equal(brw_status_name(BRW_STATUS_DONE), "done");
  assert_string_equal(brw_status_name(BRW_STATUS_MODERATION), "moderation");
  assert_string_equal(brw_status_name((brw_status_t)99), "unknown");
}

static void test_status_in_detail(void **state) {
  (void)state;
  brw_detail_t d;
  /* Mixed case: canonical status, lower-cased raw value in the output. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"DONE\"}}", 0, &d);
  assert_int_equal(d.status, BRW_STATUS_DONE);
  assert_true(brw_status_is_terminal(d.status));
  assert_string_equal(d.status_raw, "done");
  assert_cstr(&d, "status", "done");
  brw_detail_clear(&d);
  /* Unknown: accepted, non-terminal, raw value kept. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"Queued_For_Review\"}}", 0, &d);
  assert_int_equal(d.status, BRW_STATUS_UNKNOWN);
  assert_false(brw_status_is_terminal(d.status));
  assert_string_equal(d.status_raw, "queued_for_review");
  assert_cstr(&d, "status", "queued_for_review");
  brw_detail_clear(&d);
  /* A long unknown status is truncated in status_raw only, and a known
   * prefix does not make it known. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done_but_with_a_very_long_"
            "suffix_beyond_32\"}}",
            0, &d);
  assert_int_equal(d.status, BRW_STATUS_UNKNOWN);
  assert_int_equal(strlen(d.status_raw), sizeof(d.status_raw) - 1);
  assert_cstr(&d, "status", "done_but_with_a_very_long_suffix_beyond_32");
  brw_detail_clear(&d);
}

static void test_type_aliases(void **state) {
  (void)state;
  brw_detail_t d;
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"message_type\":"
            "\"viber\"}}",
            0, &d);
  assert_cstr(&d, "type", "viber");
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"type\":\"instant\"}}", 0,
            &d);
  assert_cstr(&d, "type", "instant");
  brw_detail_clear(&d);
  /* `type` wins over `message_type`. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"type\":\"rcs\","
            "\"message_type\":\"sms\"}}",
            0, &d);
  assert_cstr(&d, "type", "rcs");
  brw_detail_clear(&d);
}

static void test_time_aliases(void **state) {
  (void)state;
  brw_detail_t d;
  /* start_date, real_start_at, creation_at. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\","
            "\"start_date\":\"2026-11-27 10:00:00\","
            "\"real_start_at\":\"2026-11-27 10:01:00\","
            "\"creation_at\":\"2026-11-27 09:00:00\","
            "\"finished_at\":null}}",
            0, &d);
  assert_cstr(&d, "started_at", "2026-11-27T10:00:00Z");
  assert_cstr(&d, "actual_start_at", "2026-11-27T10:01:00Z");
  assert_cstr(&d, "created_at", "2026-11-27T09:00:00Z");
  assert_cnull(&d, "finished_at");
  assert_true(d.actual_start_ms == INT64_C(1795773660000));
  assert_true(d.finished_ms == 0);
  /* The output uses the canonical names only. */
  assert_null(cget(&d, "start_date"));
  assert_null(cget(&d, "real_start_at"));
  assert_null(cget(&d, "creation_at"));
  brw_detail_clear(&d);
  /* start_at. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"scheduled\","
            "\"start_at\":\"2026-11-28 00:00:00\"}}",
            0, &d);
  assert_cstr(&d, "started_at", "2026-11-28T00:00:00Z");
  assert_true(d.scheduled_start_ms == INT64_C(1795824000000));
  brw_detail_clear(&d);
  /* started_at wins over the aliases; a null one falls through. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\","
            "\"started_at\":\"2026-11-27 11:00:00\","
            "\"start_date\":\"2026-11-27 12:00:00\","
            "\"actual_start_at\":null,"
            "\"real_start_at\":\"2026-11-27 11:30:00\"}}",
            0, &d);
  assert_cstr(&d, "started_at", "2026-11-27T11:00:00Z");
  assert_cstr(&d, "actual_start_at", "2026-11-27T11:30:00Z");
  brw_detail_clear(&d);
}

static void test_time_zone_and_iso(void **state) {
  (void)state;
  brw_detail_t d;
  /* The configured zone (+03:00) applies to zone-less times. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\","
            "\"started_at\":\"2026-11-27 13:00:00\","
            "\"finished_at\":\"2026-11-27T10:30:00Z\","
            "\"created_at\":\"2026-11-27T12:00:00+02:00\"}}",
            3 * 3600, &d);
  assert_cstr(&d, "started_at", "2026-11-27T10:00:00Z");
  /* An explicit zone wins. */
  assert_cstr(&d, "finished_at", "2026-11-27T10:30:00Z");
  assert_cstr(&d, "created_at", "2026-11-27T10:00:00Z");
  assert_true(d.scheduled_start_ms == INT64_C(1795773600000));
  brw_detail_clear(&d);
  /* Unparseable times become null; the detail is still good. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\","
            "\"started_at\":\"0000-00-00 00:00:00\","
            "\"finished_at\":\"soon\",\"created_at\":12345}}",
            0, &d);
  assert_cnull(&d, "started_at");
  assert_cnull(&d, "finished_at");
  assert_cnull(&d, "created_at");
  assert_true(d.scheduled_start_ms == 0 && d.finished_ms == 0 &&
              d.created_ms == 0);
  brw_detail_clear(&d);
}

static void test_statistics_object(void **state) {
  (void)state;
  brw_detail_t d;
  detail_ok("{\"data\":{\"id\":1,\"status\":\"sending\",\"statistics\":{"
            "\"delivered\":5,\"sent\":\"2\",\"scheduled\":1,\"moderation\":1,"
            "\"accepted\":1,\"sending\":1,\"expired\":1,\"failed\":1,"
            "\"undelivered\":1,\"unknown\":4,\"read\":2,\"not_viber_user\":1,"
            "\"not_rcs_user\":1,\"clicked\":9,\"ratio\":0.5,\"note\":\"x\","
            "\"nested\":{\"a\":1},\"flag\":true,\"neg\":\"-3\"}}}",
            0, &d);
  assert_true(stat_of(&d, "delivered") == 5);
  /* A decimal string counter is read as an integer. */
  assert_true(stat_of(&d, "sent") == 2);
  /* Unknown integer counters are kept. */
  assert_true(stat_of(&d, "clicked") == 9);
  assert_true(stat_of(&d, "unknown") == 4);
  assert_true(stat_of(&d, "read") == 2);
  /* Non-integer values are dropped. */
  json_t *s = cget(&d, "statistics");
  assert_null(json_object_get(s, "ratio"));
  assert_null(json_object_get(s, "note"));
  assert_null(json_object_get(s, "nested"));
  assert_null(json_object_get(s, "flag"));
  assert_null(json_object_get(s, "neg"));
  assert_int_equal(json_object_size(s), 14);
  /* delivered + read (a read message was delivered) */
  assert_true(d.delivered == 7);
  /* failed + undelivered + expired + not_viber_user + not_rcs_user */
  assert_true(d.failed == 5);
  /* sent + scheduled + moderation + accepted + sending */
  assert_true(d.pending == 6);
  /* Every integer counter: unknown (4) and clicked (9) included. */
  assert_true(d.counted == 31);
  brw_detail_clear(&d);
}

/* brw_detail_summary gives what brw_detail_parse gives, but no object. */
static void summary_agrees(const char *body, uint64_t *hash) {
  brw_detail_t d, m;
  char e1[128], e2[128];
  brw_tz_t *zone = brw_tz_fixed(3600);
  assert_non_null(zone);
  int rc = brw_detail_parse(body, strlen(body), zone, &d, e1, sizeof(e1));
  int rs = brw_detail_summary(body, strlen(body), zone, &m, e2, sizeof(e2));
  brw_tz_free(zone);
  assert_int_equal(rs, rc);
  assert_null(m.campaign);
  if (rc != 0) {
    assert_string_equal(e1, e2);
    return;
  }
  assert_true(m.id == d.id);
  assert_int_equal(m.status, d.status);
  assert_string_equal(m.status_raw, d.status_raw);
  assert_true(m.scheduled_start_ms == d.scheduled_start_ms);
  assert_true(m.actual_start_ms == d.actual_start_ms);
  assert_true(m.total_messages == d.total_messages);
  assert_true(m.delivered == d.delivered);
  assert_true(m.failed == d.failed);
  assert_true(m.pending == d.pending);
  assert_true(m.counted == d.counted);
  assert_true(m.stats_hash == d.stats_hash);
  if (hash)
    *hash = m.stats_hash;
  brw_detail_clear(&d);
  brw_detail_clear(&m);
}

static void test_summary(void **state) {
  (void)state;
  static const char *const bodies[] = {
      FULL,
      "{\"data\":{\"id\":\"7\",\"status\":\"SENDING\",\"start_date\":"
      "\"2026-01-02T03:04:05+02:00\",\"real_start_at\":\"2026-01-02 03:04:06\","
      "\"total_messages\":\"100\",\"statistics\":[{\"sent\":4,\"scheduled\":"
      "50},{\"delivered\":\"40\",\"failed\":6,\"x\":1.5}]}}",
      "{\"id\":1,\"status\":\"paused\",\"statistics\":\"n/a\"}",
      "{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":["
      "{\"delivered\":9223372036854775807},{\"delivered\":5}]}}",
      "{\"data\":{\"status\":\"done\"}}",
      "{\"data\":{\"id\":0,\"status\":\"done\"}}",
      "{\"data\":[]}",
      "<html>",
      "",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
    summary_agrees(bodies[i], NULL);

  /* The fingerprint: the same counters in another order or split over an
   * array give the same value; one counter changed gives another. */
  uint64_t a, b, c, e;
  summary_agrees("{\"id\":1,\"status\":\"sending\",\"statistics\":"
                 "{\"delivered\":3,\"sent\":2,\"read\":1}}",
                 &a);
  summary_agrees("{\"id\":1,\"status\":\"sending\",\"statistics\":"
                 "{\"read\":1,\"sent\":2,\"delivered\":3}}",
                 &b);
  summary_agrees("{\"id\":1,\"status\":\"sending\",\"statistics\":"
                 "[{\"read\":1,\"delivered\":1},{\"sent\":2,\"delivered\":2}]}",
                 &c);
  summary_agrees("{\"id\":1,\"status\":\"sending\",\"statistics\":"
                 "{\"delivered\":2,\"sent\":3,\"read\":1}}",
                 &e);
  assert_true(a == b);
  assert_true(a == c);
  assert_true(a != e);
}

/* The yajl fast path answers for plain bodies (and agrees with the full
 * parse: summary_agrees runs it) and declines what only jansson reads the
 * reference way. */
static int fast_takes(const char *body) {
  brw_detail_t d;
  return brw__bsg_fast_summary(body, strlen(body), 0, &d);
}

static void test_summary_fast_path(void **state) {
  (void)state;
  static const char *const taken[] = {
      FULL,
      "{\"id\":\"12\",\"status\":\"Sending\",\"statistics\":[{\"sent\":1},"
      "{\"sent\":\"2\",\"x\":[1,{\"y\":2}]},7,null],\"total_messages\":5}",
      "{\"data\":{\"id\":3,\"status\":\"paused\",\"statistics\":null,"
      "\"start_at\":null,\"start_date\":\"2026-01-01 10:00:00\"},\"status\":1}",
      "{\"data\":{\"id\":4,\"status\":\"a\\\"b\",\"total_messages\":1.5e3}}",
  };
  static const char *const declined[] = {
      "{\"data\":{\"id\":1,\"status\":\"done\",\"name\":\"\\u00e9\"}}",
      "{\"data\":{\"id\":1,\"status\":\"done\",\"name\":\"caf\xc3\xa9\"}}",
      "{\"data\":{\"id\":1,\"status\":\"done\",\"status\":\"sending\"}}",
      "{\"data\":{\"id\":1,\"status\":\"done\"},\"data\":{}}",
      "{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":"
      "{\"sent\":1,\"sent\":2}}}",
      "{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":"
      "{\"sent\":1,\"sent\":\"x\"}}}",
      "{\"data\":{\"id\":99999999999999999999,\"status\":\"done\"}}",
      "{\"data\":{\"id\":1,\"status\":\"done\",\"x\":1e999}}",
      "{\"data\":[],\"id\":1,\"status\":\"done\"}",
      "{\"data\":null,\"id\":1,\"status\":\"done\"}",
      "{\"data\":{\"id\":1,\"status\":\"\"}}",
      "{\"data\":{\"id\":0,\"status\":\"done\"}}",
      "{\"data\":{\"status\":\"done\"}}",
      "[1]",
      "{\"data\":{\"id\":1,\"status\":\"done\"}} x",
      /* an unfinished token after the root: yajl does not report it */
      "{\"data\":{\"id\":1,\"status\":\"done\"}}\"st",
  };
  for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
    if (!fast_takes(taken[i]))
      fail_msg("fast path declined: %s", taken[i]);
    summary_agrees(taken[i], NULL);
  }
  for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
    if (fast_takes(declined[i]))
      fail_msg("fast path took: %s", declined[i]);
    summary_agrees(declined[i], NULL);
  }
}

static void test_statistics_array(void **state) {
  (void)state;
  brw_detail_t d;
  char *text;
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":["
            "{\"delivered\":3,\"undelivered\":1},"
            "{\"delivered\":4,\"undelivered\":\"2\",\"clicks\":1},"
            "null,7,\"x\",[1],"
            "{\"expired\":1,\"clicks\":2}]}}",
            0, &d);
  text = json_dumps(cget(&d, "statistics"), JSON_COMPACT);
  /* Summed per key, in order of first appearance. */
  assert_string_equal(
      text, "{\"delivered\":7,\"undelivered\":3,\"clicks\":3,\"expired\":1}");
  free(text);
  assert_true(d.delivered == 7);
  assert_true(d.failed == 4);
  assert_true(d.pending == 0);
  brw_detail_clear(&d);
  /* An empty array and a non-object give an empty object. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":[]}}", 0,
            &d);
  assert_int_equal(json_object_size(cget(&d, "statistics")), 0);
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":\"n/a\"}}",
            0, &d);
  assert_int_equal(json_object_size(cget(&d, "statistics")), 0);
  brw_detail_clear(&d);
  /* The largest sum that fits is kept as it is. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":["
            "{\"delivered\":9223372036854775806},{\"delivered\":1}]}}",
            0, &d);
  assert_true(stat_of(&d, "delivered") == INT64_MAX);
  assert_true(d.counted == INT64_MAX);
  brw_detail_clear(&d);
}

static void test_totals(void **state) {
  (void)state;
  brw_detail_t d;
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"total_messages\":\"12\","
            "\"total_phones\":\"11\"}}",
            0, &d);
  assert_true(json_integer_value(cget(&d, "total_messages")) == 12);
  assert_true(json_is_integer(cget(&d, "total_phones")));
  assert_true(json_integer_value(cget(&d, "total_phones")) == 11);
  assert_true(d.total_messages == 12);
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"total_messages\":\"1x\","
            "\"total_phones\":\"-1\"}}",
            0, &d);
  assert_cnull(&d, "total_messages");
  assert_cnull(&d, "total_phones");
  assert_true(d.total_messages == -1);
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"total_messages\":0}}", 0,
            &d);
  assert_true(d.total_messages == 0);
  brw_detail_clear(&d);
}

/* SPEC §4: a detail whose figures a report could not state within its
 * schema is a bad response (issue 10 item 9: BSG's OpenAPI spec gives the
 * counters as plain integers with no minimum, and a report said
 * delivery_rate -1.59). Both parsers refuse it with the same reason. */
static void detail_refused(const char *body, const char *why) {
  brw_detail_t d, m;
  char e2[256];
  assert_int_equal(
      brw_detail_parse(body, strlen(body), 0, &d, errbuf, sizeof(errbuf)),
      BRW_EBADRESP);
  assert_null(d.campaign);
  if (!strstr(errbuf, why))
    fail_msg("reason \"%s\" lacks \"%s\" for %s", errbuf, why, body);
  assert_int_equal(
      brw_detail_summary(body, strlen(body), 0, &m, e2, sizeof(e2)),
      BRW_EBADRESP);
  assert_string_equal(e2, errbuf);
  /* The fast path leaves it to the reference. */
  assert_int_equal(brw__bsg_fast_summary(body, strlen(body), 0, &m), 0);
}

static void test_figures_refused(void **state) {
  (void)state;
  /* A negative known counter, as in the report that said -1.59. */
  detail_refused("{\"data\":{\"id\":1,\"status\":\"done\",\"total_messages\":"
                 "10,\"statistics\":{\"delivered\":-159,\"failed\":1}}}",
                 "statistics counter \"delivered\" is negative");
  /* Any counter: the schema says counts >= 0 for all of them. */
  detail_refused("{\"id\":1,\"status\":\"sending\",\"statistics\":"
                 "{\"clicks\":-1}}",
                 "statistics counter \"clicks\" is negative");
  /* In an array item, even when the per-key sum would be positive. */
  detail_refused("{\"id\":1,\"status\":\"done\",\"statistics\":["
                 "{\"delivered\":10},{\"delivered\":-5}]}",
                 "is negative");
  /* Sums that do not fit in int64: per key, and across keys. */
  detail_refused("{\"data\":{\"id\":1,\"status\":\"done\",\"statistics\":["
                 "{\"delivered\":9223372036854775807},{\"delivered\":5}]}}",
                 "statistics counters overflow");
  detail_refused("{\"id\":1,\"status\":\"done\",\"statistics\":{"
                 "\"delivered\":9223372036854775807,\"failed\":1}}",
                 "statistics counters overflow");
  detail_refused("{\"id\":1,\"status\":\"done\",\"statistics\":{"
                 "\"delivered\":\"9223372036854775807\",\"x\":\"1\"}}",
                 "statistics counters overflow");
  /* Negative integer totals. */
  detail_refused("{\"id\":1,\"status\":\"done\",\"total_messages\":-10}",
                 "total_messages is negative");
  detail_refused("{\"data\":{\"id\":1,\"status\":\"done\",\"total_phones\":"
                 "\"5\",\"total_messages\":5,\"statistics\":{},"
                 "\"total_phones\":-1}}",
                 "total_phones is negative");
}

/* BSG's OpenAPI example shape: all 13 counters present. The counters split
 * the messages by status: delivered + read are delivered, the five failure
 * counters failed, the five in-flight ones pending, unknown none of them. */
static void test_figures_spec_counters(void **state) {
  (void)state;
  brw_detail_t d;
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\",\"total_messages\":"
            "100,\"statistics\":{\"delivered\":40,\"sent\":1,"
            "\"scheduled\":2,\"moderation\":3,\"accepted\":4,\"sending\":5,"
            "\"expired\":6,\"failed\":7,\"undelivered\":8,\"unknown\":9,"
            "\"read\":10,\"not_viber_user\":2,\"not_rcs_user\":3}}}",
            0, &d);
  assert_true(d.delivered == 50);
  assert_true(d.failed == 26);
  assert_true(d.pending == 15);
  assert_true(d.counted == 100);
  brw_detail_clear(&d);
  /* Zeros everywhere are fine. */
  detail_ok("{\"id\":1,\"status\":\"creation\",\"total_messages\":0,"
            "\"statistics\":{\"delivered\":0,\"unknown\":0}}",
            0, &d);
  assert_true(d.counted == 0);
  brw_detail_clear(&d);
}

static void test_price_in_detail(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *want; /* NULL: null */
  } cases[] = {
      {"\"0.16\"", "0.16"}, {"\"35,0987645\"", "35.0987645"},
      {"0.16", "0.16"},     {"5", "5"},
      {"\"5\"", "5"},       {"\"abc\"", NULL},
      {"null", NULL},       {"[1]", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char body[256];
    brw_detail_t d;
    snprintf(body, sizeof(body),
             "{\"data\":{\"id\":1,\"status\":\"done\",\"total_price\":%s}}",
             cases[i].json);
    detail_ok(body, 0, &d);
    if (cases[i].want)
      assert_cstr(&d, "total_price", cases[i].want);
    else
      assert_cnull(&d, "total_price");
    brw_detail_clear(&d);
  }
}

static void test_alternative_channels(void **state) {
  (void)state;
  brw_detail_t d;
  char *text;
  detail_ok(
      "{\"data\":{\"id\":1,\"status\":\"done\",\"alternative_channels\":"
      "{\"sms\":{\"sender\":\"X\",\"text\":\"hi\"}},\"currency\":\"EUR\"}}",
      0, &d);
  text = json_dumps(d.campaign, JSON_COMPACT);
  /* Passed through, and last. */
  assert_non_null(strstr(text,
                         ",\"currency\":\"EUR\",\"alternative_channels\":"
                         "{\"sms\":{\"sender\":\"X\",\"text\":\"hi\"}}}"));
  free(text);
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\","
            "\"alternative_channels\":[]}}",
            0, &d);
  assert_true(json_is_array(cget(&d, "alternative_channels")));
  assert_int_equal(json_array_size(cget(&d, "alternative_channels")), 0);
  brw_detail_clear(&d);
  detail_ok("{\"data\":{\"id\":1,\"status\":\"done\","
            "\"alternative_channels\":null}}",
            0, &d);
  assert_non_null(cget(&d, "alternative_channels"));
  assert_cnull(&d, "alternative_channels");
  brw_detail_clear(&d);
}

static void expect_bad(const char *body, size_t len) {
  brw_detail_t d;
  memset(&d, 0x5a, sizeof(d));
  errbuf[0] = '\0';
  int rc = brw_detail_parse(body, len, 0, &d, errbuf, sizeof(errbuf));
  if (rc != BRW_EBADRESP)
    fail_msg("accepted (%d): %.*s", rc, (int)len, body ? body : "");
  /* Nothing to free, and a one-line reason. */
  assert_null(d.campaign);
  assert_true(d.total_messages == -1);
  assert_true(strlen(errbuf) > 0);
  assert_null(strchr(errbuf, '\n'));
}

static void test_malformed_bodies(void **state) {
  (void)state;
  static const char *bad[] = {
      "not json",
      "{\"data\":{\"id\":1,\"status\":\"done\"",
      "{\"data\":{\"id\":1,\"sta",
      "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body>"
      "</html>",
      "  \n<!DOCTYPE html>",
      "",
      "   \n ",
      "[]",
      "[{\"id\":1,\"status\":\"done\"}]",
      "\"done\"",
      "null",
      "{\"data\":null}",
      "{\"data\":[]}",
      "{\"data\":\"x\"}",
      "{\"data\":{\"id\":1}}",
      "{\"data\":{\"id\":1,\"status\":null}}",
      "{\"data\":{\"id\":1,\"status\":5}}",
      "{\"data\":{\"id\":1,\"status\":\"\"}}",
      "{\"data\":{\"status\":\"done\"}}",
      "{\"data\":{\"id\":null,\"status\":\"done\"}}",
      "{\"data\":{\"id\":\"abc\",\"status\":\"done\"}}",
      "{\"data\":{\"id\":0,\"status\":\"done\"}}",
      "{\"data\":{\"id\":1.5,\"status\":\"done\"}}",
      "{\"message\":\"Unauthenticated.\"}",
      "{\"data\":{\"id\":1,\"status\":\"done\"}} {}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    expect_bad(bad[i], strlen(bad[i]));
  expect_bad(NULL, 0);
  /* Length is honoured: the valid prefix of a longer buffer is not read as
   * a whole document. */
  expect_bad("{\"data\":{\"id\":1,\"status\":\"done\"}}", 20);
}

static void test_malformed_reasons(void **state) {
  (void)state;
  brw_detail_t d;
  const char *html = "<html>oops</html>";
  assert_int_equal(
      brw_detail_parse(html, strlen(html), 0, &d, errbuf, sizeof(errbuf)),
      BRW_EBADRESP);
  assert_non_null(strstr(errbuf, "HTML"));
  assert_int_equal(brw_detail_parse("", 0, 0, &d, errbuf, sizeof(errbuf)),
                   BRW_EBADRESP);
  assert_non_null(strstr(errbuf, "empty"));
  const char *nostatus = "{\"data\":{\"id\":1}}";
  assert_int_equal(brw_detail_parse(nostatus, strlen(nostatus), 0, &d, errbuf,
                                    sizeof(errbuf)),
                   BRW_EBADRESP);
  assert_non_null(strstr(errbuf, "status"));
  /* A NULL errbuf is tolerated. */
  assert_int_equal(brw_detail_parse("[]", 2, 0, &d, NULL, 0), BRW_EBADRESP);
}

static void test_price_normalize(void **state) {
  (void)state;
  static const struct {
    const char *json;
    const char *want; /* NULL: BRW_EPARSE */
  } cases[] = {
      {"\"0.16\"", "0.16"},
      {"\"35,0987645\"", "35.0987645"},
      {"\"35.0987645\"", "35.0987645"},
      {"\"12\"", "12"},
      {"\"0\"", "0"},
      {"\".5\"", "0.5"},
      {"\"5.\"", "5"},
      /* Textual: more digits than a double holds survive exactly. */
      {"\"0.12345678901234567890123\"", "0.12345678901234567890123"},
      {"\"100.10\"", "100.10"},
      {"0.16", "0.16"},
      {"0.1", "0.1"},
      {"35.0987645", "35.0987645"},
      {"5", "5"},
      {"0", "0"},
      {"5.0", "5"},
      {"0.0", "0"},
      {"1e-7", "0.0000001"},
      {"1.5e3", "1500"},
      {"123456789.25", "123456789.25"},
      {"\"\"", NULL},
      {"\".\"", NULL},
      {"\"1.2.3\"", NULL},
      {"\"1,234.56\"", NULL},
      {"\"-1\"", NULL},
      {"\"+1\"", NULL},
      {"\" 1\"", NULL},
      {"\"1e3\"", NULL},
      {"\"abc\"", NULL},
      {"-0.5", NULL},
      {"-5", NULL},
      {"null", NULL},
      {"true", NULL},
      {"{}", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[64];
    json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    int rc = brw_price_normalize(v, buf, sizeof(buf));
    json_decref(v);
    if (cases[i].want) {
      if (rc != 0)
        fail_msg("price %s rejected", cases[i].json);
      assert_string_equal(buf, cases[i].want);
    } else if (rc != BRW_EPARSE) {
      fail_msg("price %s accepted as \"%s\"", cases[i].json, buf);
    }
  }
  /* NULL value and a buffer too small. */
  char small[4];
  assert_int_equal(brw_price_normalize(NULL, small, sizeof(small)), BRW_EPARSE);
  json_t *v = json_string("35,0987645");
  assert_int_equal(brw_price_normalize(v, small, sizeof(small)), BRW_EPARSE);
  json_decref(v);
  v = json_integer(12345);
  assert_int_equal(brw_price_normalize(v, small, sizeof(small)), BRW_EPARSE);
  json_decref(v);
}

static void api_msg(const char *body, char *buf, size_t n) {
  brw_api_error_message(body, body ? strlen(body) : 0, buf, n);
}

/* An API that quotes the key: the text is redacted whole, then cut, so no
 * prefix of a key that straddles the cut survives (issue 10, item 7). */
static void test_api_error_message_redacted_before_cut(void **state) {
  (void)state;
  const char *key = "live_0123456789abcdefghijklmnopqrstuvwxyz";
  brw_log_pin_secret(key);
  char body[512], buf[128];
  /* The key starts at byte 110 of the message: a 128-byte cut would keep
   * its first 17 bytes. */
  snprintf(body, sizeof(body),
           "{\"message\":\"%0110d%s is not valid\"}", 0, key);
  brw_api_error_message(body, strlen(body), buf, sizeof(buf));
  assert_null(strstr(buf, "live_0123"));
  assert_non_null(strstr(buf, "[REDACTED]"));
  assert_int_equal(strlen(buf), sizeof(buf) - 1);
  /* In the errors member too. */
  snprintf(body, sizeof(body),
           "{\"message\":\"%0100d\",\"errors\":{\"api_key\":[\"%s\"]}}",
           0, key);
  brw_api_error_message(body, strlen(body), buf, sizeof(buf));
  assert_null(strstr(buf, "live_0123"));
  brw_log_cleanup();
}

static void test_api_error_message(void **state) {
  (void)state;
  char buf[128];
  api_msg("{\"message\":\"Unauthenticated.\"}", buf, sizeof(buf));
  assert_string_equal(buf, "Unauthenticated.");
  api_msg("{\"message\":\"The given data was invalid.\",\"errors\":"
          "{\"api_key\":[\"The api key field is required.\"]}}",
          buf, sizeof(buf));
  assert_string_equal(buf, "The given data was invalid. (api_key: The api key "
                           "field is required.)");
  api_msg("{\"error\":20,\"errorDescription\":\"Invalid API key\"}", buf,
          sizeof(buf));
  assert_string_equal(buf, "error 20: Invalid API key");
  api_msg("{\"error\":\"Too Many Requests\"}", buf, sizeof(buf));
  assert_string_equal(buf, "Too Many Requests");
  /* Sanitised to printable ASCII on one line. */
  api_msg("{\"message\":\"bad\\nline\\u0007 caf\\u00e9\"}", buf, sizeof(buf));
  assert_string_equal(buf, "bad line  caf??");
  /* Truncated to the buffer. */
  api_msg("{\"message\":\"0123456789\"}", buf, 5);
  assert_string_equal(buf, "0123");
  /* Nothing found: "". */
  memset(buf, 'x', sizeof(buf));
  api_msg("<html>502</html>", buf, sizeof(buf));
  assert_string_equal(buf, "");
  memset(buf, 'x', sizeof(buf));
  api_msg("{\"foo\":1}", buf, sizeof(buf));
  assert_string_equal(buf, "");
  memset(buf, 'x', sizeof(buf));
  api_msg("[\"message\"]", buf, sizeof(buf));
  assert_string_equal(buf, "");
  memset(buf, 'x', sizeof(buf));
  api_msg(NULL, buf, sizeof(buf));
  assert_string_equal(buf, "");
  /* A zero-sized buffer is left alone. */
  api_msg("{\"message\":\"m\"}", buf, 0);
}

/* Builds "header.<base64url(payload)>.sig" with or without padding. */
static void make_jwt(const char *payload, int pad, char *out, size_t n) {
  static const char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const unsigned char *p = (const unsigned char *)payload;
  size_t len = strlen(payload), k = 0;
  k += (size_t)snprintf(out, n, "eyJhbGciOiJIUzI1NiJ9.");
  for (size_t i = 0; i < len; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16;
    size_t rem = len - i;
    if (rem > 1)
      v |= (uint32_t)p[i + 1] << 8;
    if (rem > 2)
      v |= p[i + 2];
    out[k++] = alphabet[(v >> 18) & 63];
    out[k++] = alphabet[(v >> 12) & 63];
    if (rem > 1)
      out[k++] = alphabet[(v >> 6) & 63];
    else if (pad)
      out[k++] = '=';
    if (rem > 2)
      out[k++] = alphabet[v & 63];
    else if (pad)
      out[k++] = '=';
  }
  snprintf(out + k, n - k, ".c2lnbmF0dXJl");
}

/* Found by fuzz/fuzz_detail.c: a status cut inside a multi-byte character
 * (at 63 bytes for the report, 31 for status_raw) was not UTF-8, so
 * json_string failed and a valid body came back as BRW_ENOMEM. */
static void test_detail_status_utf8_cut(void **state) {
  (void)state;
#define X30 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
  brw_detail_t d;
  /* e acute ("\xc3\xa9") at bytes 30..31 and 62..63. */
  detail_ok("{\"data\":{\"id\":1,\"status\":\"" X30 "\\u00e9" X30
            "\\u00e9z\"}}",
            0, &d);
  assert_int_equal(d.status, BRW_STATUS_UNKNOWN);
  assert_string_equal(d.status_raw, X30);
  assert_cstr(&d, "status", X30 "\xc3\xa9" X30);
  brw_detail_clear(&d);
#undef X30
}

/* Found by fuzz/fuzz_jwt.c: a real exp that rounds to (double)JWT_EXP_MAX,
 * i.e. INT64_MAX / 1000 + 1, was accepted, so exp * 1000 overflowed. */
static void test_jwt_exp_real_bound(void **state) {
  (void)state;
  char tok[256];
  int64_t exp = 99;
  make_jwt("{\"exp\":9.223372036854775e15}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("{\"exp\":9223372036854775.5}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  assert_true(exp == 99);
  /* The largest double below the bound is still read. */
  make_jwt("{\"exp\":9.223372036854774e15}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), 0);
  assert_true(exp == INT64_C(9223372036854774));
  assert_true(exp <= INT64_MAX / 1000);
}

static void test_jwt_exp(void **state) {
  (void)state;
  char tok[512];
  int64_t exp = 0;
  /* 32 bytes: no padding needed. */
  make_jwt("{\"sub\":\"x\",\"exp\":1795773600000}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), 0);
  assert_true(exp == INT64_C(1795773600000));
  /* Lengths needing one and two padding characters, with and without. */
  const char *p1 = "{\"exp\":1795773600}";           /* 18 bytes: none */
  const char *p2 = "{\"exp\":1795773600 }";          /* 19 bytes: == */
  const char *p3 = "{\"iat\":1,\"exp\":1795773600}"; /* 26 bytes: = */
  const char *payloads[] = {p1, p2, p3};
  for (int i = 0; i < 3; i++) {
    for (int pad = 0; pad <= 1; pad++) {
      exp = 0;
      make_jwt(payloads[i], pad, tok, sizeof(tok));
      if (brw_jwt_exp(tok, &exp) != 0)
        fail_msg("jwt %s rejected", tok);
      assert_true(exp == 1795773600);
    }
  }
  make_jwt(p2, 1, tok, sizeof(tok));
  assert_non_null(strstr(tok, "==."));
  make_jwt(p3, 1, tok, sizeof(tok));
  assert_non_null(strstr(tok, "=."));
  /* A real exp (some issuers write 1.7957736E9). */
  make_jwt("{\"exp\":1795773600.75}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), 0);
  assert_true(exp == 1795773600);
  /* A token exactly as a real issuer writes it. */
  assert_int_equal(
      brw_jwt_exp(
          "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3"
          "ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyLCJleH"
          "AiOjE1MTYyNDI2MjJ9.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
          &exp),
      0);
  assert_true(exp == 1516242622);

  /* Failures. */
  exp = 99;
  make_jwt("{\"sub\":\"x\"}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("{\"exp\":\"1795773600\"}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("{\"exp\":9223372036854775807}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("{\"exp\":1e300}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("{\"exp\":-5}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("{\"exp\":null}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("[1795773600]", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  make_jwt("not json at all", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("not-a-jwt", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("a.b", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("a..c", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("hdr.!!!$$$***.sig", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("hdr.eyJle.sig", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("hdr.e.sig", &exp), BRW_EPARSE);
  /* A length of 4n+1 is never base64, even when the rest decodes. */
  make_jwt(p1, 0, tok, sizeof(tok));
  char *sig = strrchr(tok, '.');
  memmove(sig + 1, sig, strlen(sig) + 1);
  *sig = 'A';
  assert_int_equal(brw_jwt_exp(tok, &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp("hdr.eyJ=leHAi.sig", &exp), BRW_EPARSE);
  assert_int_equal(brw_jwt_exp(NULL, &exp), BRW_EPARSE);
  assert_true(exp == 99);
}

static void test_bearer_parse(void **state) {
  (void)state;
  static const struct {
    const char *body;
    const char *want;
  } cases[] = {
      {"{\"bearer\":\"eyJ.abc.def\"}", "eyJ.abc.def"},
      {"{\"data\":{\"bearer\":\"tok1\"}}", "tok1"},
      {"{\"token\":\"tok2\"}", "tok2"},
      {"{\"access_token\":\"tok3\",\"expires_in\":3600}", "tok3"},
      {"{\"bearer\":null,\"token\":\"tok4\"}", "tok4"},
      {"{\"bearer\":\"\"}", NULL},
      {"{\"bearer\":5}", NULL},
      {"{\"bearer\":\"a b\"}", NULL},
      {"{\"bearer\":\"abc\\r\\nX-Evil: 1\"}", NULL},
      {"{\"message\":\"Unauthenticated.\"}", NULL},
      {"[\"bearer\"]", NULL},
      {"<html></html>", NULL},
      {"", NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *tok = brw_bearer_parse(cases[i].body, strlen(cases[i].body));
    if (cases[i].want) {
      if (!tok)
        fail_msg("no bearer in %s", cases[i].body);
      assert_string_equal(tok, cases[i].want);
    } else if (tok) {
      fail_msg("bearer \"%s\" found in %s", tok, cases[i].body);
    }
    free(tok);
  }
  assert_null(brw_bearer_parse(NULL, 0));
}

/* brw_jwt_times: opaque tokens carry no times; a JWT must have a readable
 * payload and, when present, a numeric exp; iat is read when usable. */
static void test_jwt_times(void **state) {
  (void)state;
  char tok[512];
  brw_jwt_times_t t;
  make_jwt("{\"iat\":1700000000,\"exp\":1700003600}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_times(tok, &t), 0);
  assert_true(t.is_jwt && t.has_exp && t.has_iat);
  assert_true(t.exp_s == 1700003600 && t.iat_s == 1700000000);
  make_jwt("{\"sub\":\"x\"}", 0, tok, sizeof(tok)); /* no exp: default */
  assert_int_equal(brw_jwt_times(tok, &t), 0);
  assert_true(t.is_jwt && !t.has_exp && !t.has_iat);
  make_jwt("{\"exp\":1700003600,\"iat\":\"yesterday\"}", 0, tok, sizeof(tok));
  assert_int_equal(brw_jwt_times(tok, &t), 0); /* a bad iat is left out */
  assert_true(t.has_exp && !t.has_iat);
  /* Opaque tokens (Sanctum-style, a JWE, one dot): no times, no error. */
  const char *opaque[] = {"1|abcdef", "a.b", "a.b.c.d.e", "nodots"};
  for (size_t i = 0; i < 4; i++) {
    assert_int_equal(brw_jwt_times(opaque[i], &t), 0);
    assert_false(t.is_jwt || t.has_exp);
  }
  /* Shaped like a JWT, but the lifetime cannot be read. */
  const char *bad[] = {"{\"exp\":\"1700003600\"}", "{\"exp\":-5}",
                       "{\"exp\":null}", "[1,2]", "not json"};
  for (size_t i = 0; i < 5; i++) {
    make_jwt(bad[i], 0, tok, sizeof(tok));
    assert_int_equal(brw_jwt_times(tok, &t), BRW_EPARSE);
    assert_true(t.is_jwt);
  }
  assert_int_equal(brw_jwt_times("hdr..sig", &t), BRW_EPARSE);
  assert_int_equal(brw_jwt_times("hdr.!!!.sig", &t), BRW_EPARSE);
  assert_int_equal(brw_jwt_times(NULL, &t), BRW_EPARSE);
}

/* brw_bearer_read: one status per way a 200 can be unusable, a line that
 * says why and never holds the token, and the token when usable. */
static void test_bearer_read(void **state) {
  (void)state;
  const int64_t now = INT64_C(1764000000000); /* 2025-11-24T16:00:00Z */
  char tok[512], body[700], line[300];
  brw_bearer_t b;

  make_jwt("{\"iat\":1764000000,\"exp\":1764003600}", 0, tok, sizeof(tok));
  snprintf(body, sizeof(body), "{\"bearer\":\"%s\"}", tok);
  assert_int_equal(brw_bearer_read(body, strlen(body), now, 1000, &b), 0);
  assert_int_equal(b.status, BRW_BEARER_OK);
  assert_string_equal(b.token, tok);
  assert_true(b.jwt.exp_s == 1764003600);
  brw_bearer_clear(&b);
  assert_null(b.token);

  /* An opaque token is usable (no exp: the caller assumes a lifetime). */
  assert_int_equal(brw_bearer_read("{\"token\":\"1|abc\"}", 17, now, 1000, &b),
                   0);
  assert_string_equal(b.token, "1|abc");
  assert_string_equal(b.field, "token");
  brw_bearer_clear(&b);

  struct {
    const char *payload; /* a JWT built around it, or NULL: body as is */
    const char *body;
    brw_bearer_status_t want;
    const char *name;
    const char *says;
  } cases[] = {
      {"{\"iat\":1738000000,\"exp\":1738003600}", NULL, BRW_BEARER_EXPIRED,
       "expired",
       "JWT exp 2025-01-27T18:46:40Z is 300 days in the past; issued (iat) "
       "2025-01-27T17:46:40Z, 300 days ago by this host's clock: this host's "
       "clock and the issuer's disagree, or the gateway serves a stale "
       "token"},
      {"{\"iat\":1764000000,\"exp\":1764000000}", NULL, BRW_BEARER_EXPIRED,
       "expired", "the issuer grants too short a lifetime"},
      {"{\"exp\":1763999000}", NULL, BRW_BEARER_EXPIRED, "expired",
       "16 min in the past; no iat: check this host's clock"},
      {"{\"exp\":1764000000.5}", NULL, BRW_BEARER_EXPIRED, "expired",
       "is 0.0 s in the past"},
      {"{\"exp\":1764000000}", "x", BRW_BEARER_EXPIRES_SOON, "expires_soon",
       "is only 0.5 s away"},
      {"{\"exp\":\"soon\"}", NULL, BRW_BEARER_BAD_JWT, "bad_jwt",
       "shaped like a JWT"},
      {NULL, "{\"bearer\":\"abc def\"}", BRW_BEARER_BAD_CHAR, "bad_char",
       "holds whitespace (0x20 at byte 3 of 7)"},
      {NULL, "{\"bearer\":\"abc\\u0001\"}", BRW_BEARER_BAD_CHAR, "bad_char",
       "a control character (0x01"},
      {NULL, "{\"bearer\":\"abc\\u00e9\"}", BRW_BEARER_BAD_CHAR, "bad_char",
       "a non-ASCII byte (0xc3"},
      {NULL, "{\"bearer\":\"\"}", BRW_BEARER_EMPTY, "empty", "empty string"},
      {NULL, "{\"bearer\":null}", BRW_BEARER_NOT_STRING, "not_string",
       "\"bearer\" is null, not a string"},
      {NULL, "{\"data\":{\"token\":[1]}}", BRW_BEARER_NOT_STRING,
       "not_string", "\"token\" is array, not a string"},
      {NULL, "{\"message\":\"ok\"}", BRW_BEARER_MISSING, "missing",
       "no \"bearer\" field"},
      {NULL, "<html>502</html>", BRW_BEARER_NOT_JSON, "not_json",
       "not a JSON object"},
      {NULL, "", BRW_BEARER_NOT_JSON, "not_json", "not a JSON object"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int64_t t = now;
    if (cases[i].payload) {
      make_jwt(cases[i].payload, 0, tok, sizeof(tok));
      snprintf(body, sizeof(body), "{\"bearer\":\"%s\"}", tok);
      if (cases[i].body)
        t = now - 500; /* exp is 0.5 s ahead */
    } else {
      snprintf(body, sizeof(body), "%s", cases[i].body);
      tok[0] = '\0';
    }
    int rc = brw_bearer_read(body, strlen(body), t, 1000, &b);
    if (rc != BRW_EPARSE || b.status != cases[i].want)
      fail_msg("case %zu: rc %d status %d", i, rc, (int)b.status);
    assert_null(b.token);
    assert_string_equal(brw_bearer_status_name(b.status), cases[i].name);
    brw_bearer_describe(&b, t, line, sizeof(line));
    if (!strstr(line, cases[i].says))
      fail_msg("case %zu: \"%s\" lacks \"%s\"", i, line, cases[i].says);
    if (tok[0])
      assert_null(strstr(line, tok + 21)); /* never the payload */
    brw_bearer_clear(&b);
  }
  /* Too long. */
  size_t big = BRW_BEARER_MAX + 20;
  char *huge = malloc(big + 20);
  assert_non_null(huge);
  memcpy(huge, "{\"bearer\":\"", 11);
  memset(huge + 11, 'a', BRW_BEARER_MAX + 1);
  memcpy(huge + 11 + BRW_BEARER_MAX + 1, "\"}", 3);
  assert_int_equal(brw_bearer_read(huge, strlen(huge), now, 1000, &b),
                   BRW_EPARSE);
  assert_int_equal(b.status, BRW_BEARER_TOO_LONG);
  brw_bearer_describe(&b, now, line, sizeof(line));
  assert_non_null(strstr(line, "16385 bytes long"));
  free(huge);
  /* A tiny buffer is cut, never overrun. */
  assert_string_equal(brw_bearer_describe(&b, now, line, 5), "\"bea");
}

/* ---- campaign list ----------------------------------------------------- */

/* Parses a list body (NUL-terminated) with zone offset tz; fails the test
 * when it is rejected. The caller clears *l. */
static void list_ok(const char *body, int32_t tz, brw_campaign_list_t *l) {
  brw_tz_t *zone = brw_tz_fixed(tz);
  assert_non_null(zone);
  memset(l, 0x5a, sizeof(*l));
  int rc = brw_campaign_list_parse(body, strlen(body), zone, l, errbuf,
                                   sizeof(errbuf));
  brw_tz_free(zone);
  if (rc != 0)
    fail_msg("list rejected: %s\nbody: %s", errbuf, body);
  assert_true(l->n == 0 || l->items != NULL);
}

/* The item with id `id`, or a test failure. */
static const brw_campaign_list_item_t *list_find(const brw_campaign_list_t *l,
                                                 uint64_t id) {
  for (size_t i = 0; i < l->n; i++)
    if (l->items[i].id == id)
      return &l->items[i];
  fail_msg("no item %llu in the list", (unsigned long long)id);
  return NULL;
}

/* A page in the documented shape (SearchCampaignResource): every field of
 * CampaignSchema, zone-less times in the API zone, meta.page. */
static const char *const LIST_PAGE =
    "{\"data\":["
    "{\"id\":53651994,\"name\":\"Black Friday\",\"sender\":\"BSG\","
    "\"status\":\"done\",\"message_type\":\"sms\","
    "\"start_at\":\"2026-11-27 10:00:00\","
    "\"real_start_at\":\"2026-11-27 10:00:05\","
    "\"finished_at\":\"2026-11-27 10:09:06\","
    "\"created_at\":\"2026-11-27 09:00:00\","
    "\"statistics\":{\"delivered\":7,\"sent\":2},"
    "\"calculated_price\":\"0.16\",\"currency\":\"USD\"},"
    "{\"id\":53651995,\"name\":\"Cyber Monday\",\"sender\":\"BSG\","
    "\"status\":\"sending\",\"message_type\":\"viber\","
    "\"start_at\":\"2026-11-30 08:00:00\",\"real_start_at\":null,"
    "\"finished_at\":null,\"created_at\":\"2026-11-27 09:30:00\","
    "\"calculated_price\":12.5,\"currency\":\"EUR\"}],"
    "\"meta\":{\"page\":{\"total\":1234,\"limit\":2,\"offset\":100}}}";

static void test_list_page(void **state) {
  (void)state;
  brw_campaign_list_t l;
  const brw_campaign_list_item_t *it;
  list_ok(LIST_PAGE, 0, &l);
  assert_int_equal(l.n, 2);
  assert_int_equal(l.skipped, 0);
  assert_true(l.total == 1234 && l.limit == 2 && l.offset == 100);
  /* In the order of the page. */
  it = &l.items[0];
  assert_true(it->id == 53651994);
  assert_int_equal(it->status, BRW_STATUS_DONE);
  assert_true(it->scheduled_start_ms == INT64_C(1795773600000));
  assert_true(it->actual_start_ms == INT64_C(1795773605000));
  assert_true(it->created_ms == INT64_C(1795770000000));
  assert_true(it->finished_ms == INT64_C(1795774146000));
  assert_true(it->delivered == 7 && it->sent == 2);
  it = &l.items[1];
  assert_true(it->id == 53651995);
  assert_int_equal(it->status, BRW_STATUS_SENDING);
  assert_true(it->scheduled_start_ms == INT64_C(1796025600000));
  assert_true(it->actual_start_ms == 0);
  assert_true(it->created_ms == INT64_C(1795771800000));
  assert_true(it->finished_ms == 0);
  /* No statistics: the counters are unknown, not zero. */
  assert_true(it->delivered == -1 && it->sent == -1);
  brw_campaign_list_clear(&l);
  assert_null(l.items);
  assert_int_equal(l.n, 0);
  assert_true(l.total == -1);
  /* Clearing twice is harmless. */
  brw_campaign_list_clear(&l);
}

static void test_list_variants(void **state) {
  (void)state;
  brw_campaign_list_t l;
  const brw_campaign_list_item_t *it;
  /* The API zone is +03:00. */
  list_ok("{\"data\":["
          /* A string id, an upper-case status, the aliases of the detail. */
          "{\"id\":\"4242\",\"status\":\"DONE\","
          "\"start_date\":\"2026-11-27 13:00:00\","
          "\"real_start_at\":\"2026-11-27 13:01:00\","
          "\"creation_at\":\"2026-11-27 12:00:00\","
          "\"finished_at\":\"2026-11-27 13:09:06\","
          "\"statistics\":[{\"delivered\":3,\"sent\":1},null,7,"
          "{\"delivered\":\"4\",\"undelivered\":9},{\"sent\":2}]},"
          /* ISO 8601 times: an explicit zone wins over the API zone. */
          "{\"id\":2,\"status\":\"Scheduled\","
          "\"started_at\":\"2026-11-27T10:00:00Z\","
          "\"actual_start_at\":\"2026-11-27T12:00:05+02:00\","
          "\"created_at\":\"2026-11-27T09:00:00Z\",\"statistics\":null},"
          /* Unusable fields degrade one by one; the item is kept. */
          "{\"id\":3,\"status\":\"archived\",\"start_at\":\"soon\","
          "\"real_start_at\":\"0000-00-00 00:00:00\",\"created_at\":12345,"
          "\"finished_at\":false,"
          "\"statistics\":{\"delivered\":-1,\"sent\":\"n/a\"}},"
          "{\"id\":4,\"status\":5,\"statistics\":[{\"delivered\":"
          "9223372036854775807},{\"delivered\":1,\"sent\":0}]},"
          "{\"id\":5,\"statistics\":\"n/a\"},"
          "{\"id\":6,\"status\":\"PAUSED\"}"
          "]}",
          3 * 3600, &l);
  assert_int_equal(l.n, 6);
  assert_int_equal(l.skipped, 0);

  it = list_find(&l, 4242);
  assert_int_equal(it->status, BRW_STATUS_DONE);
  assert_true(it->scheduled_start_ms == INT64_C(1795773600000));
  assert_true(it->actual_start_ms == INT64_C(1795773660000));
  assert_true(it->created_ms == INT64_C(1795770000000));
  assert_true(it->finished_ms == INT64_C(1795774146000));
  /* Summed over the objects of the array; other entries ignored. */
  assert_true(it->delivered == 7);
  assert_true(it->sent == 3);

  it = list_find(&l, 2);
  assert_int_equal(it->status, BRW_STATUS_SCHEDULED);
  assert_true(it->scheduled_start_ms == INT64_C(1795773600000));
  assert_true(it->actual_start_ms == INT64_C(1795773605000));
  assert_true(it->created_ms == INT64_C(1795770000000));
  assert_true(it->finished_ms == 0);
  assert_true(it->delivered == -1 && it->sent == -1);

  it = list_find(&l, 3);
  assert_int_equal(it->status, BRW_STATUS_UNKNOWN);
  assert_true(it->scheduled_start_ms == 0 && it->actual_start_ms == 0 &&
              it->created_ms == 0 && it->finished_ms == 0);
  /* A negative counter is unusable, and text that is not a number is
   * ignored as in the detail. */
  assert_true(it->delivered == -1 && it->sent == -1);

  it = list_find(&l, 4);
  assert_int_equal(it->status, BRW_STATUS_UNKNOWN);
  /* A sum beyond int64 is unusable; a zero is a zero. */
  assert_true(it->delivered == -1);
  assert_true(it->sent == 0);

  it = list_find(&l, 5);
  assert_int_equal(it->status, BRW_STATUS_UNKNOWN);
  assert_true(it->delivered == -1 && it->sent == -1);

  it = list_find(&l, 6);
  assert_int_equal(it->status, BRW_STATUS_PAUSED);
  brw_campaign_list_clear(&l);
}

static void test_list_terminal_items(void **state) {
  (void)state;
  brw_campaign_list_t l;
  static const struct {
    uint64_t id;
    brw_status_t st;
  } want[] = {
      {1, BRW_STATUS_DONE}, {2, BRW_STATUS_STOPPED}, {3, BRW_STATUS_SPAM}};
  list_ok("{\"data\":["
          "{\"id\":1,\"status\":\"done\","
          "\"finished_at\":\"2026-11-27 10:09:06\"},"
          "{\"id\":2,\"status\":\"Stopped\","
          "\"finished_at\":\"2026-11-27 10:09:06\"},"
          "{\"id\":3,\"status\":\"SPAM\","
          "\"finished_at\":\"2026-11-27T10:09:06Z\"}],"
          "\"meta\":{\"page\":{\"total\":3,\"limit\":20,\"offset\":0}}}",
          0, &l);
  assert_int_equal(l.n, 3);
  for (size_t i = 0; i < 3; i++) {
    assert_true(l.items[i].id == want[i].id);
    assert_int_equal(l.items[i].status, want[i].st);
    assert_true(brw_status_is_terminal(l.items[i].status));
    assert_true(l.items[i].finished_ms == INT64_C(1795774146000));
  }
  brw_campaign_list_clear(&l);
}

static void test_list_skipped(void **state) {
  (void)state;
  brw_campaign_list_t l;
  list_ok("{\"data\":["
          "7,\"x\",null,[{\"id\":1}],true,"
          "{\"status\":\"done\"},"
          "{\"id\":null,\"status\":\"done\"},"
          "{\"id\":0,\"status\":\"done\"},"
          "{\"id\":-3,\"status\":\"done\"},"
          "{\"id\":1.5,\"status\":\"done\"},"
          "{\"id\":\"12a\",\"status\":\"done\"},"
          "{\"id\":\"\",\"status\":\"done\"},"
          "{\"id\":\" 12\",\"status\":\"done\"},"
          "{\"id\":9007199254740993,\"status\":\"done\"},"
          "{\"id\":\"9007199254740993\",\"status\":\"done\"},"
          "{\"id\":\"99999999999999999999999\",\"status\":\"done\"},"
          "{\"id\":{\"v\":1},\"status\":\"done\"},"
          /* Kept: the largest id, and a string one with leading zeros. */
          "{\"id\":9007199254740992,\"status\":\"done\"},"
          "{\"id\":\"0012\",\"status\":\"sending\"}"
          "],\"meta\":{\"page\":{\"total\":19,\"limit\":50,\"offset\":0}}}",
          0, &l);
  assert_int_equal(l.skipped, 17);
  assert_int_equal(l.n, 2);
  assert_true(l.items[0].id == UINT64_C(9007199254740992));
  assert_int_equal(l.items[0].status, BRW_STATUS_DONE);
  assert_true(l.items[1].id == 12);
  assert_int_equal(l.items[1].status, BRW_STATUS_SENDING);
  /* The page's meta counts what the API has, skipped items included. */
  assert_true(l.total == 19);
  brw_campaign_list_clear(&l);
  /* A page of nothing but unusable entries. */
  list_ok("{\"data\":[1,{\"id\":0}]}", 0, &l);
  assert_int_equal(l.n, 0);
  assert_int_equal(l.skipped, 2);
  assert_null(l.items);
  brw_campaign_list_clear(&l);
}

static void test_list_bare_array(void **state) {
  (void)state;
  brw_campaign_list_t l;
  list_ok("  [{\"id\":1,\"status\":\"done\",\"statistics\":{\"delivered\":1}},"
          "{\"id\":\"2\",\"status\":\"sending\"}] ",
          0, &l);
  assert_int_equal(l.n, 2);
  assert_true(l.items[0].id == 1 && l.items[1].id == 2);
  assert_true(l.items[0].delivered == 1 && l.items[0].sent == -1);
  assert_true(l.total == -1 && l.limit == -1 && l.offset == -1);
  brw_campaign_list_clear(&l);
  list_ok("[]", 0, &l);
  assert_int_equal(l.n, 0);
  assert_null(l.items);
  brw_campaign_list_clear(&l);
}

static void test_list_empty_and_meta(void **state) {
  (void)state;
  brw_campaign_list_t l;
  list_ok("{\"data\":[],\"meta\":{\"page\":{\"total\":0,\"limit\":100,"
          "\"offset\":0}}}",
          0, &l);
  assert_int_equal(l.n, 0);
  assert_int_equal(l.skipped, 0);
  assert_null(l.items);
  assert_true(l.total == 0 && l.limit == 100 && l.offset == 0);
  brw_campaign_list_clear(&l);
  /* Meta absent, null, not an object, or without a page: -1s. */
  static const char *const no_meta[] = {
      "{\"data\":[{\"id\":1}]}",
      "{\"data\":[{\"id\":1}],\"meta\":null}",
      "{\"data\":[{\"id\":1}],\"meta\":[1,2]}",
      "{\"data\":[{\"id\":1}],\"meta\":{\"total\":5}}",
      "{\"data\":[{\"id\":1}],\"meta\":{\"page\":\"1\"}}",
  };
  for (size_t i = 0; i < sizeof(no_meta) / sizeof(no_meta[0]); i++) {
    list_ok(no_meta[i], 0, &l);
    assert_int_equal(l.n, 1);
    if (l.total != -1 || l.limit != -1 || l.offset != -1)
      fail_msg("meta read from %s", no_meta[i]);
    brw_campaign_list_clear(&l);
  }
  /* Each field on its own: a decimal string is read as the detail reads
   * figures; negative, real, null or other values are -1. */
  list_ok("{\"data\":[],\"meta\":{\"page\":{\"total\":\"17\",\"limit\":-1,"
          "\"offset\":1.5}}}",
          0, &l);
  assert_true(l.total == 17 && l.limit == -1 && l.offset == -1);
  brw_campaign_list_clear(&l);
  list_ok("{\"data\":[],\"meta\":{\"page\":{\"total\":null,\"limit\":true,"
          "\"offset\":40}}}",
          0, &l);
  assert_true(l.total == -1 && l.limit == -1 && l.offset == 40);
  brw_campaign_list_clear(&l);
}

/* The body is refused with a one-line reason, and *out holds nothing. */
static void list_refused(const char *body, size_t len, const char *why) {
  brw_campaign_list_t l;
  memset(&l, 0x5a, sizeof(l));
  errbuf[0] = '\0';
  int rc = brw_campaign_list_parse(body, len, NULL, &l, errbuf, sizeof(errbuf));
  if (rc != BRW_EBADRESP)
    fail_msg("accepted (%d): %.*s", rc, (int)len, body ? body : "");
  assert_null(l.items);
  assert_int_equal(l.n, 0);
  assert_int_equal(l.skipped, 0);
  assert_true(l.total == -1 && l.limit == -1 && l.offset == -1);
  assert_true(strlen(errbuf) > 0);
  assert_null(strchr(errbuf, '\n'));
  if (why && !strstr(errbuf, why))
    fail_msg("reason \"%s\" does not say \"%s\"", errbuf, why);
}

static void test_list_refused(void **state) {
  (void)state;
  static const struct {
    const char *body, *why;
  } bad[] = {
      {"{\"data\":{\"id\":1,\"status\":\"done\"}}", "not an array"},
      {"{\"data\":null}", "not an array"},
      {"{\"data\":\"x\"}", "not an array"},
      {"{\"data\":7,\"meta\":{\"page\":{\"total\":1}}}", "not an array"},
      {"{\"meta\":{\"page\":{\"total\":0}}}", "no \"data\""},
      {"{\"message\":\"Unauthenticated.\"}", "no \"data\""},
      {"not json", "not JSON"},
      {"{\"data\":[{\"id\":1}", "not JSON"},
      {"{\"data\":[]} {}", "not JSON"},
      {"{\"data\":[{\"id\":99999999999999999999999}]}", "not JSON"},
      {"<html><body>502 Bad Gateway</body></html>", "HTML"},
      {"", "empty"},
      {" \n\t", "empty"},
      /* jansson reads only an object or an array as a document. */
      {"\"done\"", "not JSON"},
      {"42", "not JSON"},
      {"null", "not JSON"},
      /* So does a \u0000 anywhere (the detail's rule too). */
      {"{\"data\":[{\"id\":1,\"status\":\"done\\u0000x\"}]}", "not JSON"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    list_refused(bad[i].body, strlen(bad[i].body), bad[i].why);
  list_refused(NULL, 0, "empty");
  /* Length is honoured: a valid prefix is not read as a whole document. */
  list_refused("{\"data\":[{\"id\":1}]}", 12, "not JSON");
  /* The reason quotes no body bytes (a secret could be among them). */
  list_refused("{\"data\":{\"token\":\"s3cr3t-value\"}}", 33, NULL);
  assert_null(strstr(errbuf, "s3cr3t"));
  /* A NULL errbuf is tolerated. */
  brw_campaign_list_t l;
  assert_int_equal(brw_campaign_list_parse("{}", 2, NULL, &l, NULL, 0),
                   BRW_EBADRESP);
  assert_null(l.items);
}

/* A full page as the API serves it at its largest: 500 items of over 2 KB
 * each (1 MB), every tenth without a usable id. */
static void test_list_large_page(void **state) {
  (void)state;
  const size_t n = 500, cap = 1100 * 1024;
  char *body = malloc(cap), pad[2001];
  size_t k = 0;
  brw_campaign_list_t l;
  assert_non_null(body);
  memset(pad, 'x', sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  k += (size_t)snprintf(body + k, cap - k, "{\"data\":[");
  for (size_t i = 0; i < n; i++) {
    k += (size_t)snprintf(
        body + k, cap - k,
        "%s{\"id\":%s%zu,\"name\":\"%s\",\"status\":\"%s\","
        "\"start_at\":\"2026-11-27 10:00:00\",\"finished_at\":null,"
        "\"statistics\":{\"delivered\":%zu,\"sent\":1}}",
        i ? "," : "", i % 10 == 9 ? "-" : "", i + 1, pad,
        i % 2 ? "sending" : "done", i);
    assert_true(k < cap);
  }
  k += (size_t)snprintf(body + k, cap - k,
                        "],\"meta\":{\"page\":{\"total\":%zu,\"limit\":%zu,"
                        "\"offset\":0}}}",
                        n, n);
  assert_true(k < cap && k > 1000 * 1000);
  assert_int_equal(
      brw_campaign_list_parse(body, k, NULL, &l, errbuf, sizeof(errbuf)), 0);
  free(body);
  assert_int_equal(l.n, 450);
  assert_int_equal(l.skipped, 50);
  assert_true(l.total == 500 && l.limit == 500);
  assert_true(l.items[0].id == 1 && l.items[449].id == 499);
  assert_true(l.items[449].delivered == 498 && l.items[449].sent == 1);
  assert_true(l.items[449].scheduled_start_ms == INT64_C(1795773600000));
  brw_campaign_list_clear(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_full_shape_and_order),
      cmocka_unit_test(test_api_error_message_redacted_before_cut),
      cmocka_unit_test(test_id_integer_and_string),
      cmocka_unit_test(test_absent_and_null_strings),
      cmocka_unit_test(test_statuses),
      cmocka_unit_test(test_status_in_detail),
      cmocka_unit_test(test_type_aliases),
      cmocka_unit_test(test_time_aliases),
      cmocka_unit_test(test_time_zone_and_iso),
      cmocka_unit_test(test_statistics_object),
      cmocka_unit_test(test_statistics_array),
      cmocka_unit_test(test_summary),
      cmocka_unit_test(test_summary_fast_path),
      cmocka_unit_test(test_totals),
      cmocka_unit_test(test_figures_refused),
      cmocka_unit_test(test_figures_spec_counters),
      cmocka_unit_test(test_price_in_detail),
      cmocka_unit_test(test_alternative_channels),
      cmocka_unit_test(test_malformed_bodies),
      cmocka_unit_test(test_malformed_reasons),
      cmocka_unit_test(test_price_normalize),
      cmocka_unit_test(test_api_error_message),
      cmocka_unit_test(test_detail_status_utf8_cut),
      cmocka_unit_test(test_jwt_exp),
      cmocka_unit_test(test_jwt_exp_real_bound),
      cmocka_unit_test(test_bearer_parse),
      cmocka_unit_test(test_jwt_times),
      cmocka_unit_test(test_bearer_read),
      cmocka_unit_test(test_list_page),
      cmocka_unit_test(test_list_variants),
      cmocka_unit_test(test_list_terminal_items),
      cmocka_unit_test(test_list_skipped),
      cmocka_unit_test(test_list_bare_array),
      cmocka_unit_test(test_list_empty_and_meta),
      cmocka_unit_test(test_list_refused),
      cmocka_unit_test(test_list_large_page),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
