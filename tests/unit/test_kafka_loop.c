/* Unit tests of the Kafka queue bridge and the topic metadata probe
 * (src/kafka.c) on a real libuv loop,
 * against librdkafka's in-process mock cluster (no broker needed).
 *
 * The flood case proves that the loop keeps serving I/O while the consumer
 * queue holds far more messages than one drain batch: a pipe made readable
 * during the first drain must be served before the queue is empty. On
 * libuv 1.44 a drain that went on through a 0 ms timer restarted from its
 * own callback never left the timer phase until the queue was empty, and
 * this case failed (the pipe was served after the last message).
 *
 * The rebalance cases run two group members on one loop: a revocation the
 * application has not finished holds the group's rebalance without
 * blocking the loop, and a close finishes it.
 *
 * Every case closes the clients and then requires uv_loop_close() == 0. */
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
#include <unistd.h>
#include <uv.h>

#include "brw/config.h"
#include "brw/kafka.h"
#include "brw/log.h"

#define TOPIC "flood"
/* Many times the drain batch (2000), small records. */
#define N_FLOOD 30000
/* Generous: a loaded 2-core machine, and ASan. */
#define WAIT_MS 45000

typedef struct {
  uv_loop_t loop;
  uv_timer_t tick;
  rd_kafka_t *mock_rk; /* hosts the mock cluster */
  rd_kafka_mock_cluster_t *mcluster;
  brw_config_t cfg;
  brw_kafka_t *k;
  int closed;
  /* the flood */
  int consumed;
  int assigned;
  int probe_fd[2]; /* written during the first drain, watched by probe */
  uv_poll_t probe;
  int probe_seen; /* messages consumed when the probe ran; -1 before */
  uv_timer_t probe_timer;
  int timer_seen; /* messages consumed when the 1 ms timer ran; -1 before */
} fx_t;

static void die_unless(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fixture: %s\n", what);
    abort();
  }
}

/* Creates the mock cluster and its topic, and fills the topic with n small
 * records through a producer of its own (flushed before returning). */
static void mock_open(fx_t *fx, int partitions, int n) {
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  die_unless(rd_kafka_conf_set(conf, "client.id", "mock-host", err,
                               sizeof(err)) == RD_KAFKA_CONF_OK,
             err);
  fx->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  die_unless(fx->mock_rk != NULL, err);
  fx->mcluster = rd_kafka_mock_cluster_new(fx->mock_rk, 1);
  die_unless(fx->mcluster != NULL, "mock cluster");
  die_unless(rd_kafka_mock_topic_create(fx->mcluster, TOPIC, partitions, 1) ==
                 RD_KAFKA_RESP_ERR_NO_ERROR,
             "mock topic");
  if (n == 0)
    return;
  conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers",
                    rd_kafka_mock_cluster_bootstraps(fx->mcluster), err,
                    sizeof(err));
  rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof(err));
  rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  die_unless(p != NULL, err);
  char v[64];
  for (int i = 0; i < n; i++) {
    int len = snprintf(v, sizeof(v), "{\"campaign_id\":%d}", i + 1);
    rd_kafka_resp_err_t e;
    while ((e = rd_kafka_producev(
                p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_VALUE(v, (size_t)len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
           RD_KAFKA_RESP_ERR__QUEUE_FULL)
      rd_kafka_poll(p, 10);
    die_unless(e == RD_KAFKA_RESP_ERR_NO_ERROR, "produce");
  }
  die_unless(rd_kafka_flush(p, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR, "flush");
  rd_kafka_destroy(p);
}

static void cfg_set(fx_t *fx, const char *key, const char *value) {
  char err[256];
  die_unless(brw_config_set(&fx->cfg, key, value, err, sizeof(err)) == 0, err);
}

static void fx_open(fx_t *fx, int partitions, int n) {
  memset(fx, 0, sizeof(*fx));
  fx->probe_seen = fx->timer_seen = -1;
  fx->probe_fd[0] = fx->probe_fd[1] = -1;
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(uv_timer_init(&fx->loop, &fx->tick), 0);
  mock_open(fx, partitions, n);
  brw_config_init(&fx->cfg);
  cfg_set(fx, "brokers", rd_kafka_mock_cluster_bootstraps(fx->mcluster));
  cfg_set(fx, "group.id", "flood-test");
  cfg_set(fx, "topic.input", TOPIC);
  cfg_set(fx, "topic.output", "out");
  cfg_set(fx, "topic.dlq", "dlq");
}

static void on_kafka_closed(void *arg) {
  ((fx_t *)arg)->closed++;
}

static int pred_closed(void *ctx, const void *arg) {
  return ((const fx_t *)arg)->closed > 0;
}

/* Closes the clients, the loop and the mock cluster; the loop must close
 * cleanly. */
static void fx_close(fx_t *fx) {
  if (fx->k) {
    brw_kafka_close(fx->k, on_kafka_closed, fx);
    fx->k = NULL;
    assert_true(
        uvtest_run_until(&fx->loop, &fx->tick, pred_closed, NULL, fx, WAIT_MS));
  }
  uv_close((uv_handle_t *)&fx->tick, NULL);
  assert_int_equal(uv_run(&fx->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
  for (int i = 0; i < 2; i++)
    if (fx->probe_fd[i] >= 0)
      close(fx->probe_fd[i]);
  brw_config_free(&fx->cfg);
  rd_kafka_mock_cluster_destroy(fx->mcluster);
  rd_kafka_destroy(fx->mock_rk);
}

/* ---- the flood ---- */

static void on_probe(uv_poll_t *p, int status, int events) {
  fx_t *fx = p->data;
  if (fx->probe_seen < 0)
    fx->probe_seen = fx->consumed;
  uv_poll_stop(p);
}

static void on_probe_timer(uv_timer_t *t) {
  fx_t *fx = t->data;
  fx->timer_seen = fx->consumed;
}

static void on_flood_message(void *ctx, const brw_kafka_message_t *msg) {
  fx_t *fx = ctx;
  if (fx->consumed++ > 0)
    return;
  /* The first message: make the probe pipe readable and arm a 1 ms timer,
   * then hold the loop long enough for librdkafka's fetcher to fill the
   * consumer queue with the rest of the topic (on the mock cluster that
   * takes milliseconds). From here on the queue holds many batches. */
  assert_int_equal(write(fx->probe_fd[1], "x", 1), 1);
  uv_timer_start(&fx->probe_timer, on_probe_timer, 1, 0);
  usleep(1500 * 1000);
}

static void on_flood_assign(void *ctx, const brw_kafka_positions_t *parts) {
  ((fx_t *)ctx)->assigned = 1;
}

static int pred_all_consumed(void *ctx, const void *arg) {
  return ((const fx_t *)arg)->consumed >= N_FLOOD;
}

static void test_flood_serves_io(void **state) {
  fx_t fx;
  char err[512];
  fx_open(&fx, 1, N_FLOOD);
  assert_int_equal(pipe(fx.probe_fd), 0);
  assert_int_equal(uv_poll_init(&fx.loop, &fx.probe, fx.probe_fd[0]), 0);
  fx.probe.data = &fx;
  assert_int_equal(uv_poll_start(&fx.probe, UV_READABLE, on_probe), 0);
  assert_int_equal(uv_timer_init(&fx.loop, &fx.probe_timer), 0);
  fx.probe_timer.data = &fx;

  brw_kafka_handlers_t h = {
      .on_message = on_flood_message, .on_assign = on_flood_assign, .ctx = &fx};
  assert_int_equal(
      brw_kafka_new(&fx.loop, &fx.cfg, &h, &fx.k, err, sizeof(err)), 0);
  assert_int_equal(brw_kafka_start(fx.k), 0);
  int all = uvtest_run_until(&fx.loop, &fx.tick, pred_all_consumed, NULL, &fx,
                             WAIT_MS);
  fprintf(stderr,
          "flood: %d messages consumed; the pipe was served after %d, the "
          "1 ms timer after %d\n",
          fx.consumed, fx.probe_seen, fx.timer_seen);
  assert_true(fx.assigned);
  assert_true(all);
  assert_int_equal(fx.consumed, N_FLOOD);
  /* The point: I/O and timers ran while the flood was still being served. */
  assert_true(fx.probe_seen > 0);
  assert_true(fx.probe_seen < N_FLOOD);
  assert_true(fx.timer_seen > 0);
  assert_true(fx.timer_seen < N_FLOOD);
  uv_close((uv_handle_t *)&fx.probe, NULL);
  uv_close((uv_handle_t *)&fx.probe_timer, NULL);
  fx_close(&fx);
}

/* ---- the topic metadata probe ---- */

typedef struct {
  fx_t *fx;
  brw_topic_state_t want;
} topic_wait_t;

static int pred_input_state(void *ctx, const void *arg) {
  const topic_wait_t *w = arg;
  return brw_kafka_topic_state(w->fx->k, BRW_KAFKA_INPUT, NULL, NULL) ==
         w->want;
}

/* The input topic does not exist: the probe (on the thread pool, the loop
 * keeps running) says so; once the topic is created it says it exists. */
static void test_topic_probe(void **state) {
  fx_t fx;
  char err[512];
  const char *name = NULL;
  int terr = BRW_KAFKA_ERR_NONE;
  fx_open(&fx, 1, 0);
  cfg_set(&fx, "topic.input", "typo.events");
  /* librdkafka 2.0.2's mock cluster answers Metadata v2 at most, so it
   * creates any topic asked for (AllowAutoTopicCreation defaults to true
   * before v4); a real broker does not for this consumer. A topic error makes
   * it answer as a broker without the topic does. */
  rd_kafka_mock_topic_set_error(fx.mcluster, "typo.events",
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  brw_kafka_handlers_t h = {.ctx = &fx};
  assert_int_equal(
      brw_kafka_new(&fx.loop, &fx.cfg, &h, &fx.k, err, sizeof(err)), 0);
  assert_int_equal(brw_kafka_topic_state(fx.k, BRW_KAFKA_INPUT, &name, NULL),
                   BRW_TOPIC_UNKNOWN);
  assert_string_equal(name, "typo.events");
  assert_int_equal(brw_kafka_start(fx.k), 0);
  topic_wait_t w = {&fx, BRW_TOPIC_MISSING};
  assert_true(uvtest_run_until(&fx.loop, &fx.tick, pred_input_state, NULL, &w,
                               WAIT_MS));
  brw_kafka_topic_state(fx.k, BRW_KAFKA_INPUT, NULL, &terr);
  assert_int_equal(terr, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  rd_kafka_mock_topic_set_error(fx.mcluster, "typo.events",
                                RD_KAFKA_RESP_ERR_NO_ERROR);
  w.want = BRW_TOPIC_EXISTS;
  assert_true(uvtest_run_until(&fx.loop, &fx.tick, pred_input_state, NULL, &w,
                               WAIT_MS));
  fx_close(&fx);
}

/* Closing while a probe may be under way on the pool: the clients are
 * destroyed after it, and the loop still closes cleanly. */
static void test_close_during_probe(void **state) {
  fx_t fx;
  char err[512];
  fx_open(&fx, 1, 0);
  cfg_set(&fx, "topic.input", "missing.events");
  rd_kafka_mock_topic_set_error(fx.mcluster, "missing.events",
                                RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  brw_kafka_handlers_t h = {.ctx = &fx};
  assert_int_equal(
      brw_kafka_new(&fx.loop, &fx.cfg, &h, &fx.k, err, sizeof(err)), 0);
  assert_int_equal(brw_kafka_start(fx.k), 0);
  fx_close(&fx);
  assert_int_equal(fx.closed, 1);
}

/* ---- rebalances that do not block the loop ---- */

/* One group member: its client and what its handlers saw. */
typedef struct {
  brw_kafka_t *k;
  int held;      /* partitions assigned minus revoked */
  int revokes;   /* revocations handed to on_revoke */
  int defer;     /* leave a revocation pending (until the test ends it) */
  int pending;   /* a revocation waits for brw_kafka_revoke_done */
  int64_t committed_offset; /* from on_assign: partition 0's, -1 if none */
  char metadata[32];        /* partition 0's commit metadata */
} member_t;

static void on_member_assign(void *ctx, const brw_kafka_positions_t *parts) {
  member_t *m = ctx;
  m->held += parts->cnt;
  for (int i = 0; i < parts->cnt; i++) {
    const brw_kafka_pos_t *e = &parts->elems[i];
    if (e->partition != 0 || e->err)
      continue;
    m->committed_offset = e->offset;
    if (e->metadata && e->metadata_len < sizeof(m->metadata)) {
      memcpy(m->metadata, e->metadata, e->metadata_len);
      m->metadata[e->metadata_len] = '\0';
    }
  }
}

static void on_member_revoke(void *ctx, const brw_kafka_positions_t *parts,
                             int lost, int now) {
  member_t *m = ctx;
  m->revokes++;
  m->held -= parts->cnt;
  if (m->defer && !now) {
    m->pending = 1;
    return;
  }
  brw_kafka_revoke_done(m->k);
}

typedef struct {
  member_t *a, *b;
  int want;
} members_t;

static int pred_a_holds_all(void *ctx, const void *arg) {
  const members_t *w = arg;
  return w->a->held == w->want;
}

static int pred_a_pending(void *ctx, const void *arg) {
  return ((const members_t *)arg)->a->pending;
}

static int pred_split(void *ctx, const void *arg) {
  const members_t *w = arg;
  return w->b->held > 0 && w->a->held > 0 && w->a->held + w->b->held == w->want;
}

static int ticks;
static void on_count_tick(uv_timer_t *t) {
  ticks++;
}

static int pred_never(void *ctx, const void *arg) {
  return 0;
}

static void commit_partition_0(member_t *a) {
  brw_kafka_positions_t l = {0};
  assert_int_equal(brw_kafka_positions_add(&l, 0, 7, "map-of-a", 8), 0);
  assert_int_equal(brw_kafka_commit(a->k, &l, 0), 0);
  brw_kafka_positions_clear(&l);
}

/* Starts member w->a and waits until it holds all w->want partitions, runs
 * `then` (may be NULL), starts member w->b and waits until a's revocation is
 * pending (a defers it). */
static void start_pair(fx_t *fx, members_t *w, void (*then)(member_t *a)) {
  char err[512];
  brw_kafka_handlers_t ha = {.on_assign = on_member_assign,
                             .on_revoke = on_member_revoke, .ctx = w->a};
  brw_kafka_handlers_t hb = {.on_assign = on_member_assign,
                             .on_revoke = on_member_revoke, .ctx = w->b};
  assert_int_equal(
      brw_kafka_new(&fx->loop, &fx->cfg, &ha, &w->a->k, err, sizeof(err)), 0);
  assert_int_equal(brw_kafka_start(w->a->k), 0);
  assert_true(uvtest_run_until(&fx->loop, &fx->tick, pred_a_holds_all, NULL,
                               w, WAIT_MS));
  if (then)
    then(w->a);
  assert_int_equal(
      brw_kafka_new(&fx->loop, &fx->cfg, &hb, &w->b->k, err, sizeof(err)), 0);
  assert_int_equal(brw_kafka_start(w->b->k), 0);
  assert_true(uvtest_run_until(&fx->loop, &fx->tick, pred_a_pending, NULL, w,
                               WAIT_MS));
}

/* Member a holds the 4 partitions and has committed partition 0 with
 * metadata. Member b joins: a's revocation is left pending by its handler.
 * Meanwhile the loop runs (a 10 ms timer keeps firing) and b gets none of
 * a's partitions; once a calls brw_kafka_revoke_done the group goes on and
 * b's on_assign carries the committed offset and metadata, read off the
 * loop. Eager (librdkafka below 2.10.1) or cooperative, the same holds. */
static void test_revoke_waits_for_the_application(void **state) {
  fx_t fx;
  fx_open(&fx, 4, 0);
  cfg_set(&fx, "group.id", "rebalance-test");
  cfg_set(&fx, "kafka.consumer.heartbeat.interval.ms", "200");
  cfg_set(&fx, "kafka.consumer.session.timeout.ms", "6000");
  member_t a = {.defer = 1, .committed_offset = -1};
  member_t b = {.committed_offset = -1};
  members_t w = {&a, &b, 4};
  start_pair(&fx, &w, commit_partition_0);
  /* While a's revocation is pending: the loop is not blocked, and nothing
   * of a's moved. */
  uv_timer_t count;
  uv_timer_init(&fx.loop, &count);
  ticks = 0;
  uv_timer_start(&count, on_count_tick, 10, 10);
  uvtest_run_until(&fx.loop, &fx.tick, pred_never, NULL, &w, 1500);
  uv_timer_stop(&count);
  fprintf(stderr, "revoke pending for 1.5 s: %d ticks of a 10 ms timer; "
                  "b holds %d\n", ticks, b.held);
  assert_true(ticks >= 20);
  assert_int_equal(b.held, 0);
  a.pending = 0;
  a.defer = 0;
  brw_kafka_revoke_done(a.k);
  assert_true(uvtest_run_until(&fx.loop, &fx.tick, pred_split, NULL, &w,
                               WAIT_MS));
  fprintf(stderr, "after the hand-over: a holds %d, b holds %d\n", a.held,
          b.held);
  /* Whoever got partition 0 read a's commit. */
  member_t *owner = b.committed_offset >= 0 ? &b : &a;
  assert_int_equal(owner->committed_offset, 7);
  assert_string_equal(owner->metadata, "map-of-a");
  uv_close((uv_handle_t *)&count, NULL);
  brw_kafka_close(b.k, on_kafka_closed, &fx);
  fx.k = a.k;
  fx_close(&fx);
  assert_int_equal(fx.closed, 2);
}

/* Closing while a revocation is still pending: the close finishes it (the
 * consumer leaves the group) and the loop closes cleanly. */
static void test_close_with_revoke_pending(void **state) {
  fx_t fx;
  fx_open(&fx, 2, 0);
  cfg_set(&fx, "group.id", "rebalance-close-test");
  cfg_set(&fx, "kafka.consumer.heartbeat.interval.ms", "200");
  /* The mock cluster's rebalance after a member left waits for the
   * session timeout. */
  cfg_set(&fx, "kafka.consumer.session.timeout.ms", "6000");
  member_t a = {.defer = 1, .committed_offset = -1};
  member_t b = {.committed_offset = -1};
  members_t w = {&a, &b, 2};
  start_pair(&fx, &w, NULL);
  brw_kafka_close(a.k, on_kafka_closed, &fx);
  /* a left: b takes both partitions. */
  w.a = &b;
  w.want = 2;
  assert_true(uvtest_run_until(&fx.loop, &fx.tick, pred_a_holds_all, NULL, &w,
                               WAIT_MS));
  fx.k = b.k;
  fx_close(&fx);
  assert_int_equal(fx.closed, 2);
}

int main(void) {
  brw_log_setup(getenv("TEST_DEBUG") ? BRW_LOG_DEBUG : BRW_LOG_WARN,
                BRW_LOG_TEXT, "test");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flood_serves_io),
      cmocka_unit_test(test_topic_probe),
      cmocka_unit_test(test_close_during_probe),
      cmocka_unit_test(test_revoke_waits_for_the_application),
      cmocka_unit_test(test_close_with_revoke_pending),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
