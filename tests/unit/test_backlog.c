/* The real backlog's arithmetic (src/backlog.c): reading librdkafka's
 * statistics of the held input partitions, the position's fallbacks
 * (app_offset, the committed offset read at the assignment, the
 * statistics' committed offset, auto.offset.reset), the end of a paused
 * partition from a watermark query while it is fresh, and never a
 * negative count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "brw/backlog.h"

#define FRESH 15000
#define EARLIEST BRW_BACKLOG_RESET_EARLIEST

/* A consumer's statistics as librdkafka 2.14.2 prints them, trimmed to the
 * fields that matter and a few that do not: partition 0 read up to 21 of
 * 21 with its commit at 0 (a long campaign at offset 0), partition 1 just
 * assigned (nothing read yet; librdkafka prints -1001), partition 2 not
 * held, and the unassigned-partition entry -1. ls_offset differs from
 * hi_offset on partition 0 (a transaction open on the input). */
static const char k_stats[] =
    "{\"name\":\"rdkafka#consumer-1\",\"type\":\"consumer\",\"topics\":{"
    "\"other\":{\"partitions\":{\"0\":{\"partition\":0,\"hi_offset\":99,"
    "\"ls_offset\":99,\"app_offset\":1}}},"
    "\"t.in\":{\"topic\":\"t.in\",\"partitions\":{"
    "\"0\":{\"partition\":0,\"fetch_state\":\"active\",\"next_offset\":21,"
    "\"app_offset\":21,\"stored_offset\":-1001,\"committed_offset\":0,"
    "\"lo_offset\":0,\"hi_offset\":24,\"ls_offset\":21,\"consumer_lag\":21},"
    "\"1\":{\"partition\":1,\"fetch_state\":\"offset-query\","
    "\"app_offset\":-1001,\"committed_offset\":-1001,\"lo_offset\":-1001,"
    "\"hi_offset\":-1001,\"ls_offset\":-1001,\"consumer_lag\":-1},"
    "\"2\":{\"partition\":2,\"fetch_state\":\"none\",\"app_offset\":-1001,"
    "\"committed_offset\":7,\"lo_offset\":0,\"hi_offset\":50,"
    "\"ls_offset\":50},"
    "\"-1\":{\"partition\":-1,\"app_offset\":-1001,\"hi_offset\":-1001}}}}}";

static json_t *stats(void) {
  json_error_t e;
  json_t *root = json_loads(k_stats, 0, &e);
  if (!root)
    fail_msg("stats: %s", e.text);
  return root;
}

static brw_backlog_part_t part(int32_t id) {
  brw_backlog_part_t p;
  brw_backlog_part_init(&p, id);
  return p;
}

static void test_read_stats(void **state) {
  json_t *root = stats();
  brw_backlog_part_t ps[3] = {part(0), part(1), part(5)};
  ps[0].start = 0;
  ps[2].app = 3; /* from an earlier read: the partition is gone since */
  assert_int_equal(brw_backlog_read_stats(root, "t.in", 1, ps, 3), 2);
  assert_int_equal(ps[0].app, 21);
  assert_int_equal(ps[0].committed, 0);
  assert_int_equal(ps[0].lo, 0);
  assert_int_equal(ps[0].end, 21);  /* ls_offset under read_committed */
  assert_int_equal(ps[0].start, 0); /* not the statistics' */
  assert_int_equal(ps[1].app, -1001);
  assert_int_equal(ps[1].end, -1001);
  assert_int_equal(ps[2].app, -1001);
  assert_int_equal(ps[2].end, -1001);
  /* read_uncommitted: the high watermark. */
  assert_int_equal(brw_backlog_read_stats(root, "t.in", 0, ps, 1), 1);
  assert_int_equal(ps[0].end, 24);
  /* Another topic's partitions are not the input's. */
  assert_int_equal(brw_backlog_read_stats(root, "missing", 1, ps, 1), 0);
  assert_int_equal(ps[0].end, -1001);
  /* No topics at all (a statistics object of the producer, say). */
  json_t *empty = json_object();
  assert_int_equal(brw_backlog_read_stats(empty, "t.in", 1, ps, 1), 0);
  assert_int_equal(brw_backlog_read_stats(NULL, "t.in", 1, ps, 1), 0);
  json_decref(empty);
  json_decref(root);
}

/* Issue 16's case: a long campaign at offset 0 holds the commit there while
 * the 20 events behind it were read and reported. The consumer lag is 21;
 * nothing is left to read. */
static void test_long_campaign_ahead(void **state) {
  json_t *root = stats();
  brw_backlog_part_t p = part(0);
  brw_backlog_read_stats(root, "t.in", 1, &p, 1);
  assert_int_equal(p.end - p.committed, 21);
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 1000, FRESH), 0);
  json_decref(root);
}

static void test_position_fallbacks(void **state) {
  brw_backlog_part_t p = part(0);
  p.end = 100;
  p.lo = 10;
  /* Nothing known of the position: auto.offset.reset decides. */
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 0, FRESH), 90);
  assert_int_equal(brw_backlog_unread(&p, BRW_BACKLOG_RESET_LATEST, 0, FRESH),
                   0);
  assert_int_equal(brw_backlog_unread(&p, BRW_BACKLOG_RESET_NONE, 0, FRESH),
                   -1);
  /* The statistics' committed offset, then the worker's own read at the
   * assignment (a commit at 0 is not in librdkafka's statistics), then
   * app_offset once a record was read. */
  p.committed = 40;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 0, FRESH), 60);
  p.start = 30;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 0, FRESH), 70);
  p.app = 95;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 0, FRESH), 5);
  /* A position below the low watermark: those records are gone, the
   * consumer starts at the low watermark. */
  p.app = -1001;
  p.start = 2;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 0, FRESH), 90);
  /* Earliest without a known low watermark: unknown. */
  brw_backlog_part_t q = part(1);
  q.end = 5;
  assert_int_equal(brw_backlog_unread(&q, EARLIEST, 0, FRESH), -1);
  /* No end: unknown, whatever the position. */
  q.end = -1001;
  q.app = 3;
  assert_int_equal(brw_backlog_unread(&q, EARLIEST, 0, FRESH), -1);
}

static void test_never_negative(void **state) {
  /* The end in the statistics is older than the position (the position
   * moved on since the last fetch answer). */
  brw_backlog_part_t p = part(0);
  p.end = 21;
  p.app = 23;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 0, FRESH), 0);
}

/* A paused partition: librdkafka fetches nothing, so the statistics keep
 * the end of the last fetch answer; the query's end counts while fresh, and
 * the statistics' again once they are newer. */
static void test_paused_end(void **state) {
  brw_backlog_part_t p = part(0);
  p.app = 23;
  p.end = 23;
  p.lo = 0;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 50000, FRESH), 0);
  p.qend = 48;
  p.qlo = 0;
  p.qat = 50000;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 50000, FRESH), 25);
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 50000 + FRESH, FRESH), 25);
  /* Too old: the statistics' end again. */
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 50000 + FRESH + 1, FRESH),
                   0);
  /* A clock before the answer (never, but not a fresh answer). */
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 40000, FRESH), 0);
  /* Resumed: the statistics caught up past the query. */
  p.end = 60;
  p.app = 50;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 50000, FRESH), 10);
  /* A query's low watermark above the position (retention while paused). */
  p.end = 23;
  p.app = 23;
  p.qlo = 30;
  assert_int_equal(brw_backlog_unread(&p, EARLIEST, 50000, FRESH), 18);
  /* Assigned while paused: no statistics end at all, only the query's. */
  brw_backlog_part_t q = part(1);
  q.start = 0;
  q.qend = 12;
  q.qlo = 0;
  q.qat = 1;
  assert_int_equal(brw_backlog_unread(&q, EARLIEST, 1, FRESH), 12);
}

static void test_sum(void **state) {
  brw_backlog_part_t ps[3] = {part(0), part(1), part(2)};
  assert_int_equal(brw_backlog_sum(ps, 0, EARLIEST, 0, FRESH), 0);
  assert_int_equal(brw_backlog_sum(ps, 3, EARLIEST, 0, FRESH), -1);
  ps[0].end = 10;
  ps[0].app = 4;
  ps[2].end = 7;
  ps[2].start = 0;
  assert_int_equal(brw_backlog_sum(ps, 3, EARLIEST, 0, FRESH), 13);
  /* An unknown partition counts 0 and does not hide the others. */
  ps[1].end = 9;
  assert_int_equal(brw_backlog_sum(ps, 3, BRW_BACKLOG_RESET_NONE, 0, FRESH),
                   13);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_read_stats),
      cmocka_unit_test(test_long_campaign_ahead),
      cmocka_unit_test(test_position_fallbacks),
      cmocka_unit_test(test_never_negative),
      cmocka_unit_test(test_paused_end),
      cmocka_unit_test(test_sum),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
