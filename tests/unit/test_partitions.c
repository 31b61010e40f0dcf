/* Unit tests of the partitions module (src/partitions.c): assignment with
 * and without a completed-offset map, received and completed offsets,
 * generation guarding, the commit list and its metadata, the only-revoking
 * filter, a commit's result, forgetting a partition; and, against
 * librdkafka's in-process mock cluster (no broker needed), a commit list
 * sent with brw_kafka_commit coming back to a new member's assignment with
 * its map, so that the events it names are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "uvtest.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "brw/config.h"
#include "brw/error.h"
#include "brw/kafka.h"
#include "brw/log.h"
#include "brw/offsets.h"
#include "brw/partitions.h"

/* Receives offsets [from, to) of partition p, all taken. */
static void receive(brw_partitions_t *t, int32_t p, int64_t from, int64_t to) {
  for (int64_t o = from; o < to; o++) {
    brw_part_t *pt;
    assert_int_equal(brw_partitions_received(t, p, o, &pt), BRW_PART_TAKE);
    assert_non_null(pt);
  }
}

static void assign(brw_partitions_t *t, int32_t p, int64_t offset,
                   const char *meta) {
  brw_kafka_positions_t l = {0};
  assert_int_equal(
      brw_kafka_positions_add(&l, p, offset, meta, meta ? strlen(meta) : 0), 0);
  brw_partitions_assign(t, &l);
  brw_kafka_positions_clear(&l);
}

/* No map (a new group, or a failed read): every event is taken, and the
 * commit carries the lowest pending offset and no metadata. */
static void test_assign_without_map(void **state) {
  (void)state;
  brw_partitions_t t;
  brw_partitions_init(&t);
  brw_kafka_positions_t l = {0};
  assert_int_equal(brw_kafka_positions_add(&l, 2, -1001, NULL, 0), 0);
  assert_int_equal(brw_kafka_positions_add(&l, 0, 5, "brw1:5:1,1", 10), 0);
  l.elems[1].err = BRW_KAFKA_ERR_FAIL; /* its read failed: map unused */
  assert_int_equal(brw_partitions_assign(&t, &l), 2);
  assert_int_equal(t.assigned, 2);
  assert_null(brw_partitions_get(&t, 1));
  brw_part_t *p0 = brw_partitions_get(&t, 0), *p2 = brw_partitions_get(&t, 2);
  assert_true(p0->assigned && p2->assigned);
  assert_int_not_equal(p0->generation, p2->generation);
  /* Assigned again while held: left as it is. */
  uint64_t gen = p2->generation;
  assert_int_equal(brw_partitions_assign(&t, &l), 0);
  assert_int_equal(p2->generation, gen);
  brw_kafka_positions_clear(&l);

  brw_part_t *pt;
  assert_int_equal(brw_partitions_received(&t, 1, 0, &pt), BRW_PART_IGNORE);
  assert_null(pt);
  receive(&t, 0, 5, 8); /* 6 would be skipped with the map */
  /* A redelivery is ignored. */
  assert_int_equal(brw_partitions_received(&t, 0, 6, &pt), BRW_PART_IGNORE);
  receive(&t, 2, 0, 3);
  brw_partitions_done(&t, 2, p2->generation, 0);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 2);
  assert_int_equal(l.elems[0].partition, 0);
  assert_int_equal(l.elems[0].offset, 5);
  assert_null(l.elems[0].metadata);
  assert_int_equal(l.elems[1].partition, 2);
  assert_int_equal(l.elems[1].offset, 1);
  assert_null(l.elems[1].metadata);
  brw_kafka_positions_clear(&l);
  brw_partitions_free(&t);
}

/* The map of the last commit: the events it names are skipped (and count
 * as done), the others taken; a map of another position is ignored. */
static void test_assign_with_map(void **state) {
  (void)state;
  /* The map a previous owner wrote: 10 pending, 11 and 12 done, 13
   * pending, 14 done. */
  brw_offsets_t *o = brw_offsets_new();
  for (int64_t i = 10; i < 15; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  brw_offsets_done(o, 11);
  brw_offsets_done(o, 12);
  brw_offsets_done(o, 14);
  char map[BRW_PARTITIONS_MAP_MAX];
  assert_true(brw_offsets_encode(o, map, sizeof(map)) > 0);
  brw_offsets_free(o);

  brw_partitions_t t;
  brw_partitions_init(&t);
  assign(&t, 3, 10, map);
  assign(&t, 4, 11, map); /* another position: replayed */
  brw_part_t *pt;
  int want[] = {BRW_PART_TAKE, BRW_PART_SKIP, BRW_PART_SKIP,
                BRW_PART_TAKE, BRW_PART_SKIP, BRW_PART_TAKE};
  for (int i = 0; i < 6; i++)
    assert_int_equal(brw_partitions_received(&t, 3, 10 + i, &pt), want[i]);
  for (int i = 0; i < 4; i++)
    assert_int_equal(brw_partitions_received(&t, 4, 11 + i, &pt),
                     BRW_PART_TAKE);
  /* The skipped ones are done: 10 completes, the position moves to 13. */
  pt = brw_partitions_get(&t, 3);
  brw_partitions_done(&t, 3, pt->generation, 10);
  brw_kafka_positions_t l = {0};
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 2);
  assert_int_equal(l.elems[0].partition, 3);
  assert_int_equal(l.elems[0].offset, 13);
  /* ... with the map of what is done above it (14). */
  assert_non_null(l.elems[0].metadata);
  brw_offset_ranges_t r = {0};
  assert_int_equal(
      brw_offsets_decode(l.elems[0].metadata, l.elems[0].metadata_len, 13, &r),
      0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.ranges[0][0], 14);
  assert_int_equal(r.ranges[0][1], 15);
  free(r.ranges);
  assert_int_equal(l.elems[1].offset, 11);
  brw_kafka_positions_clear(&l);
  brw_partitions_free(&t);
}

/* A completion of an earlier generation completes nothing in a later one:
 * the partition moved away and came back meanwhile. */
static void test_generation_guard(void **state) {
  (void)state;
  brw_partitions_t t;
  brw_partitions_init(&t);
  assign(&t, 0, -1001, NULL);
  receive(&t, 0, 0, 2);
  uint64_t old = brw_partitions_get(&t, 0)->generation;
  brw_part_t *pt = brw_partitions_revoke(&t, 0);
  assert_non_null(pt);
  brw_partitions_forget(&t, pt);
  assert_int_equal(t.assigned, 0);
  assign(&t, 0, 0, NULL);
  assert_int_equal(t.assigned, 1);
  assert_int_not_equal(pt->generation, old);
  receive(&t, 0, 0, 2);
  brw_partitions_done(&t, 0, old, 0); /* the old generation's: nothing */
  brw_kafka_positions_t l = {0};
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 1);
  assert_int_equal(l.elems[0].offset, 0);
  brw_kafka_positions_clear(&l);
  brw_partitions_done(&t, 0, pt->generation, 0);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 1);
  assert_int_equal(l.elems[0].offset, 1);
  brw_kafka_positions_clear(&l);
  brw_partitions_free(&t);
}

/* The list holds what changed since it was last sent, only the revoking
 * partitions when asked; records under way of a revoking partition are
 * counted until the last one is over. */
static void test_commit_list_and_revoking(void **state) {
  (void)state;
  brw_partitions_t t;
  brw_partitions_init(&t);
  assign(&t, 0, 0, NULL);
  assign(&t, 1, 0, NULL);
  receive(&t, 0, 0, 4);
  receive(&t, 1, 0, 4);
  brw_kafka_positions_t l = {0};
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 2);
  brw_kafka_positions_clear(&l);
  /* Nothing changed: nothing to send. */
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 0);
  brw_part_t *p0 = brw_partitions_get(&t, 0), *p1 = brw_partitions_get(&t, 1);
  /* Done 2 of partition 0: same position, new map. */
  brw_partitions_done(&t, 0, p0->generation, 2);
  brw_partitions_done(&t, 1, p1->generation, 0);
  brw_part_inflight_add(p1);
  brw_part_inflight_add(p1);
  brw_part_inflight_add(p0);
  assert_ptr_equal(brw_partitions_revoke(&t, 1), p1);
  assert_null(brw_partitions_revoke(&t, 7));
  brw_part_t *pt;
  assert_int_equal(brw_partitions_received(&t, 1, 4, &pt), BRW_PART_IGNORE);
  assert_int_equal(brw_partitions_revoking_inflight(&t), 2);
  assert_int_equal(brw_partitions_inflight_done(&t, 1, p1->generation), 0);
  assert_int_equal(brw_partitions_inflight_done(&t, 0, p0->generation), 0);
  assert_int_equal(brw_partitions_inflight_done(&t, 1, p1->generation + 9), 0);
  assert_int_equal(brw_partitions_inflight_done(&t, 1, p1->generation), 1);
  assert_int_equal(brw_partitions_revoking_inflight(&t), 0);
  assert_int_equal(brw_partitions_commit_list(&t, 1, &l), 1);
  assert_int_equal(l.elems[0].partition, 1);
  assert_int_equal(l.elems[0].offset, 1);
  assert_null(l.elems[0].metadata);
  brw_kafka_positions_clear(&l);
  /* Partition 0's change waits for the next full commit. */
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 1);
  assert_int_equal(l.elems[0].partition, 0);
  assert_int_equal(l.elems[0].offset, 0);
  assert_non_null(l.elems[0].metadata);
  assert_int_equal(l.elems[0].metadata_len, strlen(l.elems[0].metadata));
  assert_memory_equal(l.elems[0].metadata, "brw1:", 5);
  brw_kafka_positions_clear(&l);
  brw_partitions_free(&t);
}

/* A commit's result: a failure, or a confirmed position older than the
 * last one sent, makes the partition go again; a commit that could not be
 * sent too; a confirmed one does not. */
static void test_commit_done(void **state) {
  (void)state;
  brw_partitions_t t;
  brw_partitions_init(&t);
  assign(&t, 0, 0, NULL);
  assign(&t, 1, 0, NULL);
  receive(&t, 0, 0, 3);
  receive(&t, 1, 0, 3);
  brw_kafka_positions_t l = {0}, again = {0};
  assert_int_equal(brw_partitions_commit_list(&t, 0, &l), 2);
  /* All good: nothing to send again. */
  assert_int_equal(brw_partitions_commit_done(&t, 0, &l), 0);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 0);
  /* Partition 1 failed on its own. */
  l.elems[1].err = BRW_KAFKA_ERR_FAIL;
  assert_int_equal(brw_partitions_commit_done(&t, 0, &l), 1);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 1);
  assert_int_equal(again.elems[0].partition, 1);
  brw_kafka_positions_clear(&again);
  /* The whole commit failed. */
  l.elems[1].err = 0;
  assert_int_equal(brw_partitions_commit_done(&t, BRW_KAFKA_ERR_FAIL, &l), 1);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 2);
  brw_kafka_positions_clear(&again);
  /* An older position confirmed after a newer one was sent. */
  brw_part_t *p0 = brw_partitions_get(&t, 0);
  brw_partitions_done(&t, 0, p0->generation, 0);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 1);
  assert_int_equal(again.elems[0].offset, 1);
  brw_kafka_positions_clear(&again);
  assert_int_equal(brw_partitions_commit_done(&t, 0, &l), 0); /* offset 0 */
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 1);
  assert_int_equal(again.elems[0].offset, 1);
  brw_kafka_positions_clear(&again);
  /* A commit that could not be sent goes again. */
  brw_partitions_commit_failed(&t, &l);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 2);
  brw_kafka_positions_clear(&again);
  /* A result for a partition no longer held changes nothing. */
  brw_partitions_forget(&t, brw_partitions_get(&t, 1));
  assert_int_equal(t.assigned, 1);
  assert_int_equal(brw_partitions_commit_done(&t, BRW_KAFKA_ERR_FAIL, &l), 1);
  assert_int_equal(brw_partitions_commit_list(&t, 0, &again), 1);
  assert_int_equal(again.elems[0].partition, 0);
  brw_kafka_positions_clear(&again);
  brw_kafka_positions_clear(&l);
  brw_partitions_free(&t);
}

/* ---- against the mock cluster ---- */

#define TOPIC "events"
#define WAIT_MS 45000

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick;
  brw_config_t cfg;
  brw_kafka_t *k;
  brw_partitions_t parts;
  int assigns;
  int closed;
} member_t;

static void on_member_assign(void *ctx, const brw_kafka_positions_t *l) {
  member_t *m = ctx;
  brw_partitions_assign(&m->parts, l);
  m->assigns++;
}

static void on_member_revoke(void *ctx, const brw_kafka_positions_t *l,
                             int lost, int now) {
  member_t *m = ctx;
  for (int i = 0; i < l->cnt; i++) {
    brw_part_t *pt = brw_partitions_revoke(&m->parts, l->elems[i].partition);
    if (pt)
      brw_partitions_forget(&m->parts, pt);
  }
  brw_kafka_revoke_done(m->k);
}

static int pred_assigned(void *ctx, const void *arg) {
  const member_t *m = arg;
  return m->assigns > 0 && m->parts.assigned == 1;
}

static void on_closed(void *arg) {
  ((member_t *)arg)->closed = 1;
}

static int pred_closed(void *ctx, const void *arg) {
  return ((const member_t *)arg)->closed;
}

static void member_join(member_t *m, const char *bootstraps) {
  char err[512];
  memset(m, 0, sizeof(*m));
  brw_partitions_init(&m->parts);
  assert_int_equal(uv_loop_init(&m->loop), 0);
  assert_int_equal(uv_timer_init(&m->loop, &m->tick), 0);
  brw_config_init(&m->cfg);
  const char *kv[][2] = {{"brokers", bootstraps},
                         {"group.id", "partitions-test"},
                         {"topic.input", TOPIC},
                         {"topic.output", "out"},
                         {"topic.dlq", "dlq"},
                         /* librdkafka's mock cluster rebalances after a
                          * member left only once its session timed out:
                          * 6 s, not the default 45 s. */
                         {"kafka.consumer.session.timeout.ms", "6000"},
                         {"kafka.consumer.heartbeat.interval.ms", "200"}};
  for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++)
    assert_int_equal(
        brw_config_set(&m->cfg, kv[i][0], kv[i][1], err, sizeof(err)), 0);
  brw_kafka_handlers_t h = {
      .on_assign = on_member_assign, .on_revoke = on_member_revoke, .ctx = m};
  assert_int_equal(
      brw_kafka_new(&m->loop, &m->cfg, &h, &m->k, err, sizeof(err)), 0);
  assert_int_equal(brw_kafka_start(m->k), 0);
  assert_true(
      uvtest_run_until(&m->loop, &m->tick, pred_assigned, NULL, m, WAIT_MS));
}

static void member_leave(member_t *m) {
  brw_kafka_close(m->k, on_closed, m);
  assert_true(
      uvtest_run_until(&m->loop, &m->tick, pred_closed, NULL, m, WAIT_MS));
  uv_close((uv_handle_t *)&m->tick, NULL);
  assert_int_equal(uv_run(&m->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&m->loop), 0);
  brw_partitions_free(&m->parts);
  brw_config_free(&m->cfg);
}

/* Member a completes offsets 0, 1, 3 and 4 of 0..5 and commits its list
 * (position 2, the map naming 3 and 4) with brw_kafka_commit, then
 * leaves; member b's assignment carries the position and the map, and its
 * partitions module skips 3 and 4 and takes 2 and 5. */
static void test_commit_comes_back_to_a_new_member(void **state) {
  (void)state;
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  rd_kafka_t *mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  assert_non_null(mock_rk);
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mock_rk, 1);
  assert_non_null(mc);
  assert_int_equal(rd_kafka_mock_topic_create(mc, TOPIC, 1, 1), 0);
  const char *bs = rd_kafka_mock_cluster_bootstraps(mc);

  member_t a;
  member_join(&a, bs);
  receive(&a.parts, 0, 0, 6);
  uint64_t gen = brw_partitions_get(&a.parts, 0)->generation;
  int64_t done[] = {0, 1, 3, 4};
  for (int i = 0; i < 4; i++)
    brw_partitions_done(&a.parts, 0, gen, done[i]);
  brw_kafka_positions_t l = {0};
  assert_int_equal(brw_partitions_commit_list(&a.parts, 0, &l), 1);
  assert_int_equal(l.elems[0].offset, 2);
  assert_non_null(l.elems[0].metadata);
  assert_int_equal(brw_kafka_commit(a.k, &l, 0), 0);
  brw_kafka_positions_clear(&l);
  member_leave(&a);

  member_t b;
  member_join(&b, bs);
  brw_part_t *pt;
  int want[] = {BRW_PART_TAKE, BRW_PART_SKIP, BRW_PART_SKIP, BRW_PART_TAKE};
  for (int i = 0; i < 4; i++)
    assert_int_equal(brw_partitions_received(&b.parts, 0, 2 + i, &pt), want[i]);
  member_leave(&b);
  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(mock_rk);
}

int main(void) {
  brw_log_setup(getenv("TEST_DEBUG") ? BRW_LOG_DEBUG : BRW_LOG_WARN,
                BRW_LOG_TEXT, "test");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_assign_without_map),
      cmocka_unit_test(test_assign_with_map),
      cmocka_unit_test(test_generation_guard),
      cmocka_unit_test(test_commit_list_and_revoking),
      cmocka_unit_test(test_commit_done),
      cmocka_unit_test(test_commit_comes_back_to_a_new_member),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
