/* Unit tests of the kafka module's producer contract (issue 10 item 1): a
 * record refused for good, by the producer or by the broker, is handed back
 * once through on_refused and never produced again by the module; a
 * retriable broker error is retried and delivered; output.max_record_size
 * above the producer's message.max.bytes is a configuration error.
 *
 * The broker is librdkafka's in-process mock cluster, hosted by a bare
 * producer handle; errors are injected with
 * rd_kafka_mock_push_request_errors. Also the words for failures of the
 * security settings (kafka_auth). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/config.h"
#include "brw/error.h"
#include "brw/kafka.h"
#include "brw/log.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define TOPIC "t.out"
#define WAIT_MS 15000

typedef struct {
  rd_kafka_t *mock_rk;
  rd_kafka_mock_cluster_t *mc;
  uv_loop_t loop;
  brw_config_t cfg;
  brw_kafka_t *k;
  uv_timer_t timeout;
  int timed_out;
  /* What the handlers saw. */
  int delivered;
  void *delivered_opaque[8];
  int refused;
  void *refused_opaque;
  rd_kafka_resp_err_t refused_err;
  size_t refused_value_len;
  char refused_header[32];
  int in_produce; /* 1 while brw_kafka_produce runs */
  int refused_in_produce;
  /* When set, on_refused produces this record in place of the refused
   * one (as the application does with a shortened DLQ record). */
  int reproduce;
  int closed;
} fx_t;

static void on_delivered(void *ctx, void *opaque) {
  fx_t *f = ctx;
  if (f->delivered < 8)
    f->delivered_opaque[f->delivered] = opaque;
  f->delivered++;
}

static int produce(fx_t *f, const char *value, size_t value_len, void *opaque,
                   const char *hdr);

static void on_refused(void *ctx, const brw_kafka_record_t *rec, int err,
                       const char *reason) {
  fx_t *f = ctx;
  f->refused++;
  f->refused_opaque = rec->opaque;
  f->refused_err = err;
  f->refused_value_len = rec->value_len;
  f->refused_in_produce = f->in_produce;
  assert_non_null(reason);
  assert_string_equal(rec->topic, TOPIC);
  const void *v;
  size_t n;
  f->refused_header[0] = '\0';
  if (rec->headers && brw_headers_get_last(rec->headers, "h", &v, &n) == 0 &&
      n < sizeof(f->refused_header)) {
    memcpy(f->refused_header, v, n);
    f->refused_header[n] = '\0';
  }
  if (f->reproduce) {
    f->reproduce = 0;
    assert_int_equal(produce(f, "short", 5, (char *)rec->opaque + 1, "again"),
                     0);
  }
}

static void on_fatal(void *ctx, const char *reason) {
  fail_msg("fatal Kafka error: %s", reason);
}

static int produce(fx_t *f, const char *value, size_t value_len, void *opaque,
                   const char *hdr) {
  brw_headers_t *h = brw_headers_new();
  assert_int_equal(brw_headers_add_str(h, "h", hdr), 0);
  brw_kafka_record_t rec = {TOPIC, "k", 1, value, value_len, h, opaque};
  int prev = f->in_produce;
  f->in_produce = 1;
  int r = brw_kafka_produce(f->k, &rec);
  f->in_produce = prev;
  return r;
}

static void on_timeout(uv_timer_t *t) {
  fx_t *f = t->data;
  f->timed_out = 1;
  uv_stop(&f->loop);
}

/* Runs the loop until cond() holds (checked every 10 ms) or WAIT_MS. */
static void check_cond(uv_timer_t *t);
static int (*g_cond)(fx_t *);
static void check_cond(uv_timer_t *t) {
  fx_t *f = t->data;
  if (g_cond(f))
    uv_stop(&f->loop);
}

static int run_until(fx_t *f, int (*cond)(fx_t *)) {
  uv_timer_t poll;
  g_cond = cond;
  f->timed_out = 0;
  uv_timer_init(&f->loop, &poll);
  poll.data = f;
  uv_timer_start(&poll, check_cond, 10, 10);
  uv_timer_start(&f->timeout, on_timeout, WAIT_MS, 0);
  if (!cond(f))
    uv_run(&f->loop, UV_RUN_DEFAULT);
  uv_timer_stop(&f->timeout);
  uv_close((uv_handle_t *)&poll, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  return !f->timed_out;
}

static int settled(fx_t *f) {
  return brw_kafka_in_flight(f->k) == 0 && f->delivered + f->refused > 0;
}

static int setup(void **state) {
  fx_t *f = calloc(1, sizeof(*f));
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
  f->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  assert_non_null(f->mock_rk);
  f->mc = rd_kafka_mock_cluster_new(f->mock_rk, 1);
  assert_non_null(f->mc);
  assert_int_equal(rd_kafka_mock_topic_create(f->mc, TOPIC, 1, 1), 0);
  uv_loop_init(&f->loop);
  uv_timer_init(&f->loop, &f->timeout);
  f->timeout.data = f;
  brw_config_init(&f->cfg);
  assert_int_equal(brw_config_set(&f->cfg, "brokers",
                                  rd_kafka_mock_cluster_bootstraps(f->mc), err,
                                  sizeof(err)),
                   0);
  *state = f;
  return 0;
}

static int start(fx_t *f) {
  char err[512] = "";
  brw_kafka_handlers_t h = {.on_delivered = on_delivered,
                            .on_refused = on_refused,
                            .on_fatal = on_fatal,
                            .ctx = f};
  int r = brw_kafka_new(&f->loop, &f->cfg, &h, &f->k, err, sizeof(err));
  if (r != 0)
    fail_msg("brw_kafka_new: %s", err);
  return r;
}

static void on_closed(void *arg) {
  ((fx_t *)arg)->closed = 1;
}

static int teardown(void **state) {
  fx_t *f = *state;
  if (f->k) {
    brw_kafka_close(f->k, on_closed, f);
    while (!f->closed)
      uv_run(&f->loop, UV_RUN_ONCE);
  }
  uv_close((uv_handle_t *)&f->timeout, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  brw_config_free(&f->cfg);
  rd_kafka_mock_cluster_destroy(f->mc);
  rd_kafka_destroy(f->mock_rk);
  free(f);
  return 0;
}

/* The stall of issue 10: the broker refuses a record for its size. It comes
 * back once through on_refused, with its bytes and headers, and is not
 * produced again by the module (nothing stays in flight); a record produced
 * from the handler in its place is delivered. */
static void test_broker_refusal_handed_back(void **state) {
  fx_t *f = *state;
  static char tag[2];
  start(f);
  rd_kafka_mock_push_request_errors(f->mc, 0 /* Produce */, 1,
                                    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  f->reproduce = 1;
  assert_int_equal(produce(f, "a value", 7, &tag[0], "first"), 0);
  assert_true(run_until(f, settled));
  assert_int_equal(f->refused, 1);
  assert_ptr_equal(f->refused_opaque, &tag[0]);
  assert_int_equal(f->refused_err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  assert_int_equal(f->refused_value_len, 7);
  assert_string_equal(f->refused_header, "first");
  assert_false(f->refused_in_produce);
  assert_int_equal(f->delivered, 1);
  assert_ptr_equal(f->delivered_opaque[0], &tag[1]);
  assert_int_equal(brw_kafka_in_flight(f->k), 0);
  assert_int_equal(brw_kafka_backlog(f->k), 0);
}

/* The producer refuses a record larger than message.max.bytes at once: the
 * handler runs inside brw_kafka_produce, which returns 0 and keeps nothing
 * (before the fix the record waited in the backlog, retried every second
 * for ever, and intake stayed paused). */
static void test_local_refusal_handed_back(void **state) {
  fx_t *f = *state;
  static char tag;
  start(f);
  size_t n = 1000001;
  char *big = malloc(n);
  memset(big, 'x', n);
  assert_int_equal(produce(f, big, n, &tag, "big"), 0);
  free(big);
  assert_int_equal(f->refused, 1);
  assert_true(f->refused_in_produce);
  assert_ptr_equal(f->refused_opaque, &tag);
  assert_int_equal(f->refused_err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  assert_int_equal(f->refused_value_len, n);
  assert_int_equal(brw_kafka_backlog(f->k), 0);
  assert_int_equal(brw_kafka_in_flight(f->k), 0);
  /* And the producer still works. */
  static char tag2;
  assert_int_equal(produce(f, "v", 1, &tag2, "small"), 0);
  assert_true(run_until(f, settled));
  assert_int_equal(f->delivered, 1);
  assert_int_equal(f->refused, 1);
}

/* A retriable broker error is not a refusal: the record is delivered. */
static void test_retriable_error_delivered(void **state) {
  fx_t *f = *state;
  static char tag;
  start(f);
  rd_kafka_mock_push_request_errors(f->mc, 0 /* Produce */, 2,
                                    RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                                    RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  assert_int_equal(produce(f, "v", 1, &tag, "x"), 0);
  assert_true(run_until(f, settled));
  assert_int_equal(f->refused, 0);
  assert_int_equal(f->delivered, 1);
  assert_ptr_equal(f->delivered_opaque[0], &tag);
}

/* output.max_record_size above the producer's effective message.max.bytes
 * is refused, naming both; raising message.max.bytes with it is fine. */
static void test_max_record_size_checked(void **state) {
  fx_t *f = *state;
  char err[512] = "";
  brw_kafka_handlers_t h = {.ctx = f};
  assert_int_equal(brw_config_set(&f->cfg, "output.max_record_size", "2MiB",
                                  err, sizeof(err)),
                   0);
  assert_int_equal(
      brw_kafka_new(&f->loop, &f->cfg, &h, &f->k, err, sizeof(err)),
      BRW_ECONFIG);
  assert_null(f->k);
  assert_non_null(strstr(err, "output.max_record_size"));
  assert_non_null(strstr(err, "message.max.bytes (1000000)"));
  assert_int_equal(brw_config_set(&f->cfg, "kafka.producer.message.max.bytes",
                                  "3000000", err, sizeof(err)),
                   0);
  start(f);
  assert_non_null(f->k);
}

/* Exactly once: a message timeout over the transaction timeout (which
 * librdkafka refuses) exits 2 naming the key that set it; raising the
 * transaction timeout with it is fine, and so is the default. */
static void test_txn_timeouts_checked(void **state) {
  fx_t *f = *state;
  char err[512] = "";
  brw_kafka_handlers_t h = {.ctx = f};
  assert_int_equal(brw_config_set(&f->cfg, "delivery.guarantee",
                                  "exactly_once", err, sizeof(err)),
                   0);
  assert_int_equal(brw_config_set(&f->cfg, "kafka.producer.message.timeout.ms",
                                  "300000", err, sizeof(err)),
                   0);
  assert_int_equal(
      brw_kafka_new(&f->loop, &f->cfg, &h, &f->k, err, sizeof(err)),
      BRW_ECONFIG);
  assert_null(f->k);
  assert_non_null(strstr(err, "kafka.producer.message.timeout.ms"));
  assert_non_null(strstr(err, "transaction.timeout.ms (10000 ms)"));
  assert_int_equal(brw_config_set(&f->cfg,
                                  "kafka.producer.transaction.timeout.ms",
                                  "300000", err, sizeof(err)),
                   0);
  start(f);
  assert_non_null(f->k);
  assert_true(brw_kafka_transactional(f->k));
}

/* The classic protocol's assignor follows the librdkafka version: eager
 * below 2.10.1 (2.0.2 is Debian 12's; 2.10.0 still has #5088), cooperative
 * from 2.10.1 on. */
static void test_default_strategy(void **state) {
  assert_string_equal(brw_kafka_default_strategy(0x020002ff), "roundrobin");
  assert_string_equal(brw_kafka_default_strategy(0x020a00ff), "roundrobin");
  assert_string_equal(brw_kafka_default_strategy(0x020a01ff),
                      "cooperative-sticky");
  assert_string_equal(brw_kafka_default_strategy(0x020e02ff),
                      "cooperative-sticky");
  assert_string_equal(brw_kafka_default_strategy(0x03000000),
                      "cooperative-sticky");
}

/* group.protocol is read from kafka.* and kafka.consumer.* (the consumer's
 * own wins), in any case. A librdkafka without KIP-848 (below 2.12: the
 * floor) refuses the key at configuration time, naming it. */
static void test_group_protocol(void **state) {
  brw_config_t cfg;
  char err[256];
  brw_config_init(&cfg);
  assert_string_equal(brw_kafka_group_protocol(&cfg), "classic");
  if (rd_kafka_version() < 0x020c0000) {
    assert_int_not_equal(brw_config_set(&cfg, "kafka.consumer.group.protocol",
                                        "consumer", err, sizeof(err)),
                         0);
    assert_non_null(strstr(err, "group.protocol"));
    brw_config_free(&cfg);
    return;
  }
  assert_int_equal(brw_config_set(&cfg, "kafka.group.protocol", "CONSUMER",
                                  err, sizeof(err)),
                   0);
  assert_string_equal(brw_kafka_group_protocol(&cfg), "consumer");
  assert_int_equal(brw_config_set(&cfg, "kafka.consumer.group.protocol",
                                  "classic", err, sizeof(err)),
                   0);
  assert_string_equal(brw_kafka_group_protocol(&cfg), "classic");
  brw_config_free(&cfg);
}

/* Which librdkafka errors are about the security settings (kafka_auth),
 * with the texts librdkafka 2.14.2 gives against Kafka 4.1.1
 * (test_kafka_security.py), and which are not. */
static void test_auth_failure_classified(void **state) {
  (void)state;
  assert_string_equal(
      brw__kafka_auth_failure(
          RD_KAFKA_RESP_ERR__AUTHENTICATION,
          "sasl_ssl://127.0.0.1:9093/bootstrap: SASL authentication error: "
          "Authentication failed during authentication due to invalid "
          "credentials with SASL mechanism SCRAM-SHA-512 (after 321ms in "
          "state AUTH_REQ)"),
      "SASL authentication failed");
  assert_string_equal(
      brw__kafka_auth_failure(
          RD_KAFKA_RESP_ERR__SSL,
          "ssl://127.0.0.1:9093/bootstrap: SSL handshake failed: "
          "error:0A000086:SSL routines::certificate verify failed: broker "
          "certificate could not be verified, verify that ssl.ca.location "
          "is correctly configured"),
      "TLS: the broker's certificate was not accepted");
  const char *client = "TLS: the broker refused the client certificate";
  assert_string_equal(
      brw__kafka_auth_failure(
          RD_KAFKA_RESP_ERR__TRANSPORT,
          "ssl://127.0.0.1:9093/bootstrap: Receive failed: "
          "error:0A000412:SSL routines::sslv3 alert bad certificate: SSL "
          "alert number 42 (after 3ms in state APIVERSION_QUERY)"),
      client);
  assert_string_equal(
      brw__kafka_auth_failure(RD_KAFKA_RESP_ERR__SSL,
                              "SSL handshake failed: error:0A00045C:SSL "
                              "routines::tlsv13 alert certificate required"),
      client);
  assert_string_equal(
      brw__kafka_auth_failure(RD_KAFKA_RESP_ERR__SSL,
                              "error:0A000418:SSL routines::tlsv1 alert "
                              "unknown ca: SSL alert number 48"),
      client);
  /* Not about the settings: a broker gone, a PLAINTEXT listener, another
   * alert, other codes. */
  assert_null(brw__kafka_auth_failure(
      RD_KAFKA_RESP_ERR__SSL, "ssl://127.0.0.1:9093/bootstrap: SSL handshake "
                              "failed: Disconnected: connecting to a "
                              "PLAINTEXT broker listener?"));
  assert_null(brw__kafka_auth_failure(
      RD_KAFKA_RESP_ERR__TRANSPORT,
      "ssl://127.0.0.1:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 "
      "failed: Connection refused"));
  assert_null(brw__kafka_auth_failure(
      RD_KAFKA_RESP_ERR__SSL,
      "SSL handshake failed: tlsv1 alert protocol version"));
  assert_null(brw__kafka_auth_failure(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
                                      "certificate verify failed"));
  assert_null(brw__kafka_auth_failure(RD_KAFKA_RESP_ERR__SSL, NULL));
}

/* The words for OpenSSL's verdicts on a broker certificate. */
static void test_x509_failure_named(void **state) {
  (void)state;
  char buf[256];
  brw__kafka_x509_failure(62 /* X509_V_ERR_HOSTNAME_MISMATCH */,
                          "kafka-1.example:9093", buf, sizeof(buf));
  assert_non_null(strstr(buf, "hostname mismatch"));
  assert_non_null(strstr(buf, "\"kafka-1.example\""));
  assert_null(strstr(buf, "9093"));
  brw__kafka_x509_failure(64 /* X509_V_ERR_IP_ADDRESS_MISMATCH */, "[::1]:9093",
                          buf, sizeof(buf));
  assert_non_null(strstr(buf, "hostname mismatch: it is not for \"[::1]\""));
  static const int unknown_ca[] = {2, 18, 19, 20, 21};
  for (size_t i = 0; i < sizeof(unknown_ca) / sizeof(unknown_ca[0]); i++) {
    brw__kafka_x509_failure(unknown_ca[i], "h:1", buf, sizeof(buf));
    assert_non_null(strstr(buf, "unknown CA"));
  }
  brw__kafka_x509_failure(10, "h:1", buf, sizeof(buf));
  assert_string_equal(buf, "expired");
  brw__kafka_x509_failure(9, "h:1", buf, sizeof(buf));
  assert_string_equal(buf, "not valid yet");
  brw__kafka_x509_failure(99, NULL, buf, sizeof(buf));
  assert_string_equal(buf, "X.509 error 99");
  brw__kafka_x509_failure(62, NULL, buf, 8);
  assert_string_equal(buf, "hostnam");
}

int main(void) {
  brw_log_setup(BRW_LOG_ERROR, BRW_LOG_TEXT, "test_kafka");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_broker_refusal_handed_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_local_refusal_handed_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_retriable_error_delivered, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_txn_timeouts_checked, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_max_record_size_checked, setup,
                                      teardown),
      cmocka_unit_test(test_default_strategy),
      cmocka_unit_test(test_group_protocol),
      cmocka_unit_test(test_auth_failure_classified),
      cmocka_unit_test(test_x509_failure_named),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
