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

static void on_flood_message(void *ctx, const rd_kafka_message_t *rkm) {
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

static void on_flood_assign(void *ctx,
                            const rd_kafka_topic_partition_list_t *parts) {
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
  rd_kafka_resp_err_t terr = RD_KAFKA_RESP_ERR_NO_ERROR;
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

int main(void) {
  brw_log_setup(getenv("TEST_DEBUG") ? BRW_LOG_DEBUG : BRW_LOG_WARN,
                BRW_LOG_TEXT, "test");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_flood_serves_io),
      cmocka_unit_test(test_topic_probe),
      cmocka_unit_test(test_close_during_probe),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
