/* brw-mock-kafka: librdkafka's mock cluster as a process, with error
 * injection on standard input (tests only; tests/integration/
 * test_txn_faults.py drives it).
 *
 *   brw-mock-kafka [--brokers N] TOPIC:PARTITIONS...
 *
 * Creates the cluster (1 broker unless --brokers says otherwise) and the
 * topics, prints the bootstrap servers as one line on stdout, then reads
 * commands from stdin, one a line, and answers each with one line on
 * stdout, "ok" or "error: WHY":
 *
 *   push API COUNT ERROR...  the next COUNT requests of API (a name from
 *                            the table below, or its number) fail with the
 *                            ERRORs in turn (ERROR: a Kafka error name as
 *                            rd_kafka_err2name spells it, PRODUCER_FENCED,
 *                            or a number; NO_ERROR lets one through);
 *                            COUNT may exceed the ERRORs: the last one
 *                            repeats
 *   delay BROKER API MS [ERROR]
 *                            the next request of API that broker BROKER
 *                            (1..N) serves is answered MS milliseconds late,
 *                            with ERROR (default NO_ERROR); it goes before
 *                            the errors pushed with `push`
 *   clear API                forget the errors still pushed for API
 *   quit                     (or end of input) destroy the cluster, exit 0
 *
 * The errors are the cluster's (rd_kafka_mock_push_request_errors): they
 * hit whichever client sends the next such request, so inject only into
 * requests that the client under test alone sends (the transactional ones:
 * AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit). The
 * mock's log lines go to stderr. */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The request types a test may name (Kafka protocol ApiKeys); any other
 * is given by number. */
static const struct {
  const char *name;
  int16_t key;
} k_apis[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"InitProducerId", 22},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

/* A whole decimal number in [lo, hi], or -1 when s is none. */
static long number(const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return -1;
  return v;
}

static int api_key(const char *s) {
  for (size_t i = 0; i < sizeof(k_apis) / sizeof(k_apis[0]); i++)
    if (!strcmp(s, k_apis[i].name))
      return k_apis[i].key;
  return (int)number(s, 0, 32767);
}

/* An error by its name (with or without the RD_KAFKA_RESP_ERR_ prefix) or
 * its number; -10000 when unknown. */
static int error_code(const char *s) {
  const struct rd_kafka_err_desc *d;
  size_t n;
  if (!strncmp(s, "RD_KAFKA_RESP_ERR_", 18))
    s += 18;
  rd_kafka_get_err_descs(&d, &n);
  for (size_t i = 0; i < n; i++)
    if (d[i].name && !strcmp(d[i].name, s))
      return d[i].code;
  if (*s == '-' && number(s + 1, 1, 9999) > 0)
    return -(int)number(s + 1, 1, 9999);
  long v = number(s, 0, 32767);
  return v < 0 ? -10000 : (int)v;
}

/* Runs one command line (split in place); writes the answer to stdout.
 * Returns 1 for quit. */
static int command(rd_kafka_mock_cluster_t *mc, char *line) {
  char *argv[64];
  int argc = 0;
  for (char *t = strtok(line, " \t\r\n"); t && argc < 64;
       t = strtok(NULL, " \t\r\n"))
    argv[argc++] = t;
  if (argc == 0)
    return 0; /* blank line: nothing to answer */
  if (!strcmp(argv[0], "quit"))
    return 1;
  if (!strcmp(argv[0], "push") && argc >= 4) {
    int key = api_key(argv[1]);
    long cnt = number(argv[2], 1, 1000);
    rd_kafka_resp_err_t errs[1000];
    if (key < 0 || cnt < argc - 3) {
      printf("error: bad request type or count: %s %s\n", argv[1], argv[2]);
      return 0;
    }
    for (int i = 3; i < argc; i++) {
      int e = error_code(argv[i]);
      if (e == -10000) {
        printf("error: unknown error name: %s\n", argv[i]);
        return 0;
      }
      errs[i - 3] = (rd_kafka_resp_err_t)e;
    }
    for (long i = argc - 3; i < cnt; i++)
      errs[i] = errs[argc - 4]; /* the last one repeats */
    rd_kafka_mock_push_request_errors_array(mc, (int16_t)key, (size_t)cnt,
                                            errs);
    printf("ok\n");
    return 0;
  }
  if (!strcmp(argv[0], "delay") && (argc == 4 || argc == 5)) {
    long broker = number(argv[1], 1, 9);
    int key = api_key(argv[2]);
    long ms = number(argv[3], 0, 600000);
    int e = argc == 5 ? error_code(argv[4]) : 0;
    if (broker < 0 || key < 0 || ms < 0 || e == -10000) {
      printf("error: want delay BROKER API MS [ERROR]\n");
      return 0;
    }
    rd_kafka_resp_err_t r = rd_kafka_mock_broker_push_request_error_rtts(
        mc, (int32_t)broker, (int16_t)key, 1, (rd_kafka_resp_err_t)e, (int)ms);
    if (r)
      printf("error: %s\n", rd_kafka_err2str(r));
    else
      printf("ok\n");
    return 0;
  }
  if (!strcmp(argv[0], "clear") && argc == 2 && api_key(argv[1]) >= 0) {
    rd_kafka_mock_clear_request_errors(mc, (int16_t)api_key(argv[1]));
    printf("ok\n");
    return 0;
  }
  printf("error: unknown command: %s (push API COUNT ERROR..., delay BROKER "
         "API MS [ERROR], clear API, quit)\n",
         argv[0]);
  return 0;
}

int main(int argc, char **argv) {
  int brokers = 1, first = 1;
  if (argc > 2 && !strcmp(argv[1], "--brokers")) {
    brokers = (int)number(argv[2], 1, 9);
    first = 3;
  }
  if (brokers < 1 || first >= argc) {
    fprintf(stderr, "usage: brw-mock-kafka [--brokers N] TOPIC:PARTITIONS...\n"
                    "then commands on stdin: push API COUNT ERROR..., "
                    "delay BROKER API MS [ERROR], clear API, quit\n");
    return 2;
  }

  /* The host handle: a producer with no brokers of its own, whose only
   * job is to run the mock cluster's thread. Its log lines (and the
   * mock's) go to stderr, librdkafka's default. */
  char err[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "client.id", "brw-mock-kafka", err, sizeof(err));
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (!rk) {
    fprintf(stderr, "brw-mock-kafka: %s\n", err);
    return 1;
  }
  rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
  if (!mc) {
    fprintf(stderr, "brw-mock-kafka: cannot create the mock cluster\n");
    rd_kafka_destroy(rk);
    return 1;
  }

  /* TOPIC:PARTITIONS, replication factor 1. */
  for (int i = first; i < argc; i++) {
    char *colon = strrchr(argv[i], ':');
    long parts = colon ? number(colon + 1, 1, 1000) : -1;
    if (parts < 0) {
      fprintf(stderr, "brw-mock-kafka: want TOPIC:PARTITIONS, not %s\n",
              argv[i]);
      return 2;
    }
    *colon = '\0';
    rd_kafka_resp_err_t e =
        rd_kafka_mock_topic_create(mc, argv[i], (int)parts, 1);
    if (e) {
      fprintf(stderr, "brw-mock-kafka: topic %s: %s\n", argv[i],
              rd_kafka_err2str(e));
      return 1;
    }
  }

  /* The one line the test waits for, then the commands. */
  printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
  fflush(stdout);
  char line[4096];
  while (fgets(line, sizeof(line), stdin)) {
    if (command(mc, line))
      break;
    fflush(stdout);
  }

  rd_kafka_mock_cluster_destroy(mc);
  rd_kafka_destroy(rk);
  return 0;
}
