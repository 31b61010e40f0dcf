/* brw-demo: runs the worker end to end with nothing external.
 *
 * 1. A Kafka broker: librdkafka's in-process mock cluster, hosted by a
 *    producer handle of this process, with the three topics of the worker.
 * 2. The simulator (bsg-api-sim) and the worker (bsg-report-worker) as child
 *    processes, the worker pointed at the mock cluster and the simulator.
 * 3. A feed of sample events: campaign.sent for N campaigns, a
 *    campaign.finished for every fourth campaign as the simulator finishes
 *    it (as a BSG webhook would), and three bad events for the DLQ.
 * 4. An observer that reads the report and DLQ topics from the beginning and
 *    prints one line per record as it arrives, and a progress line.
 * 5. When every campaign has its final report (or at the timeout), an
 *    orderly stop: SIGTERM to the worker, its exit code, the simulator's
 *    request counters, the simulator stopped, the worker group's committed
 *    input offsets, and a closing summary.
 *
 * The demo never leaves a process behind: children are stopped on every
 * path, killed by the kernel if the demo dies (demo_proc.c), and a second
 * Ctrl-C kills them at once.
 *
 * Exit code: 0 when every campaign was reported and the worker exited 0;
 * 1 otherwise; 2 for bad arguments. */
#include "demo.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPIC_EVENTS "bsg.campaign.events"
#define TOPIC_REPORTS "bsg.campaign.reports"
#define TOPIC_DLQ "bsg.campaign.events.dlq"
#define WORKER_GROUP "bsg-report-worker"
#define EVENTS_PARTITIONS 4
#define REPORTS_PARTITIONS 4
#define DLQ_PARTITIONS 1

#define FIRST_ID 5000001ULL
#define NBAD 3                /* bad events produced, so DLQ records expected */
#define TICK_MS 100           /* one observer poll */
#define FIN_CHECK_MS 200      /* how often the simulator's truth is consulted */
#define FIN_LEAD_MS 50        /* campaign.finished this early; see below */
#define PROGRESS_MS 3000      /* progress line period */
#define DLQ_GRACE_MS 3000     /* after the last report, wait this for the DLQ */
#define SIM_START_MS 10000    /* for the simulator's "listening" line */
#define WORKER_GRACE_MS 45000 /* > the worker's shutdown.timeout (30 s) */
#define SIM_GRACE_MS 5000
#define MAX_REASONS 16

enum { OUT_DONE, OUT_STOPPED, OUT_SPAM, OUT_EXPIRED, OUT_OTHER, NOUT };
static const char *const out_names[NOUT] = {"done", "stopped", "spam",
                                            "expired", "other"};

/* A watched campaign's campaign.finished: waiting for the simulator to give
 * birth to it (its first detail request), scheduled at its terminal time,
 * or sent. */
enum { FIN_NONE = 0, FIN_WAIT_BORN, FIN_SCHEDULED, FIN_SENT };

typedef struct {
  uint64_t id;
  int fin;           /* FIN_* */
  int64_t fin_at_ms; /* wall clock: when to send campaign.finished */
  int reports;       /* final reports received */
} camp_t;

typedef struct {
  char reason[48];
  int count;
} reason_t;

typedef enum {
  STOP_DONE = 0,
  STOP_TIMEOUT,
  STOP_SIGNAL,
  STOP_WORKER_DIED,
  STOP_SIM_DIED,
  STOP_FAILED
} stop_t;

typedef struct {
  /* Options. */
  char bin_dir[PATH_MAX];
  int ncamps;
  char time_scale[32];
  double timeout_s;
  int quiet;
  /* Paths. */
  char worker_bin[PATH_MAX + 32];
  char sim_bin[PATH_MAX + 32];
  char tmpdir[PATH_MAX];
  /* Kafka: the mock cluster's host handle, the feed, the observer. */
  rd_kafka_t *mock_rk;
  rd_kafka_mock_cluster_t *mcluster;
  char bootstraps[256];
  rd_kafka_t *producer;
  rd_kafka_t *observer;
  /* Children. */
  demo_child_t sim;
  demo_child_t worker;
  int sim_out; /* the simulator's stdout, drained and discarded; -1 */
  char api_url[128];
  /* What happened. */
  camp_t *camps;
  int reported; /* campaigns with at least one final report */
  int duplicates;
  int non_final;
  int strays; /* reports for campaigns the demo did not send, unreadable */
  int outcomes[NOUT];
  long long polls;
  reason_t reasons[MAX_REASONS];
  int nreasons;
  int dlq;
  int sent;     /* campaign.sent events queued */
  int bad_sent; /* bad events queued */
  int finished_sent;
  int produce_failed;
  int fin_disabled;    /* the simulator's truth was not readable */
  long long committed; /* input offsets the worker's group committed, -1 */
  long long produced;  /* input offsets in all (end offsets), -1 */
  long long sim_detail_requests; /* -1 when unknown */
  long long sim_logins;
  int64_t t0;
  int64_t next_progress;
  int64_t next_fin_check;
  int64_t next_fin_due; /* wall clock: the earliest scheduled
                           campaign.finished, INT64_MAX when none */
  int stopping;
} demo_t;

static volatile sig_atomic_t g_signals;

static void on_signal(int sig) {
  (void)sig;
  g_signals++;
}

static double elapsed_s(const demo_t *d) {
  return (double)(demo_mono_ms() - d->t0) / 1000.0;
}

/* A line for the user, unless --quiet. */
static void say(const demo_t *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const demo_t *d, const char *fmt, ...) {
  va_list ap;
  if (d->quiet)
    return;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
}

/* A line on stderr, always. */
static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...) {
  va_list ap;
  fflush(stdout);
  fputs("brw-demo: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* ---- arguments ----------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(
      f,
      "Usage: brw-demo [OPTIONS]\n"
      "Runs bsg-report-worker end to end with nothing external: an in-process\n"
      "Kafka mock cluster, the BSG API simulator, the worker, and a feed of\n"
      "sample events. Prints reports as they arrive and a closing summary.\n"
      "\n"
      "  --bin-dir DIR      where bsg-report-worker and bsg-api-sim are\n"
      "                     (default: the directory of brw-demo)\n"
      "  --campaigns N      campaigns to send (default 40)\n"
      "  --time-scale X     simulator seconds per real second (default 300)\n"
      "  --timeout SECONDS  give up after this long (default 120; units s, m,\n"
      "                     ms accepted)\n"
      "  --quiet            print only the summary\n"
      "  --help             this text\n"
      "\n"
      "Exit code: 0 when every campaign was reported and the worker exited 0,\n"
      "1 otherwise, 2 for bad arguments.\n");
}

/* "120", "120s", "2m", "500ms", "1h" -> seconds. Returns 0 or -1. */
static int parse_seconds(const char *s, double *out) {
  char *end;
  double v;

  errno = 0;
  v = strtod(s, &end);
  if (end == s || errno || !isfinite(v) || v <= 0)
    return -1;
  if (!*end || !strcmp(end, "s"))
    *out = v;
  else if (!strcmp(end, "ms"))
    *out = v / 1000.0;
  else if (!strcmp(end, "m"))
    *out = v * 60.0;
  else if (!strcmp(end, "h"))
    *out = v * 3600.0;
  else
    return -1;
  return 0;
}

/* The directory of this executable: of argv[0] when it names a path, else
 * of /proc/self/exe. Writes into buf. Returns 0 or -1. */
static int self_dir(const char *argv0, char *buf, size_t len) {
  char path[PATH_MAX];
  char *slash;

  if (argv0 && strchr(argv0, '/')) {
    if (!realpath(argv0, path))
      return -1;
  } else {
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
    if (n <= 0)
      return -1;
    path[n] = '\0';
  }
  slash = strrchr(path, '/');
  if (!slash)
    return -1;
  if (slash == path)
    slash++;
  *slash = '\0';
  if (strlen(path) >= len)
    return -1;
  memcpy(buf, path, strlen(path) + 1);
  return 0;
}

/* Returns 0 to run, 1 after --help, 2 on a bad argument (message printed). */
static int parse_args(demo_t *d, int argc, char **argv) {
  int have_bin_dir = 0;

  d->ncamps = 40;
  snprintf(d->time_scale, sizeof(d->time_scale), "300");
  d->timeout_s = 120;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *eq, *v;
    char name[32];
    size_t n;

    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 1;
    }
    if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
      d->quiet = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0) {
      warn("unexpected argument \"%s\" (see --help)", a);
      return 2;
    }
    eq = strchr(a, '=');
    n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    if (n >= sizeof(name)) {
      warn("unknown option \"%s\" (see --help)", a);
      return 2;
    }
    memcpy(name, a + 2, n);
    name[n] = '\0';
    if (strcmp(name, "bin-dir") && strcmp(name, "campaigns") &&
        strcmp(name, "time-scale") && strcmp(name, "timeout")) {
      warn("unknown option \"--%s\" (see --help)", name);
      return 2;
    }
    if (eq)
      v = eq + 1;
    else if (i + 1 < argc)
      v = argv[++i];
    else {
      warn("--%s needs a value", name);
      return 2;
    }

    if (!strcmp(name, "bin-dir")) {
      if (!*v || strlen(v) >= sizeof(d->bin_dir)) {
        warn("--bin-dir: bad directory \"%s\"", v);
        return 2;
      }
      snprintf(d->bin_dir, sizeof(d->bin_dir), "%s", v);
      have_bin_dir = 1;
    } else if (!strcmp(name, "campaigns")) {
      char *end;
      long c;
      errno = 0;
      c = strtol(v, &end, 10);
      if (end == v || *end || errno || c < 1 || c > 100000) {
        warn("--campaigns: expected 1..100000, got \"%s\"", v);
        return 2;
      }
      d->ncamps = (int)c;
    } else if (!strcmp(name, "time-scale")) {
      char *end;
      double x;
      errno = 0;
      x = strtod(v, &end);
      if (end == v || *end || errno || !isfinite(x) || x <= 0 ||
          strlen(v) >= sizeof(d->time_scale)) {
        warn("--time-scale: expected a positive number, got \"%s\"", v);
        return 2;
      }
      snprintf(d->time_scale, sizeof(d->time_scale), "%s", v);
    } else {
      if (parse_seconds(v, &d->timeout_s) != 0) {
        warn("--timeout: expected seconds (e.g. 120, 90s, 2m), got \"%s\"", v);
        return 2;
      }
    }
  }
  if (!have_bin_dir && self_dir(argv[0], d->bin_dir, sizeof(d->bin_dir))) {
    warn("cannot find my own directory; pass --bin-dir");
    return 2;
  }
  return 0;
}

/* ---- Kafka --------------------------------------------------------------- */

/* librdkafka's log callback, on librdkafka's threads: only errors are worth
 * the user's attention in a demo. */
static void on_kafka_log(const rd_kafka_t *rk, int level, const char *fac,
                         const char *buf) {
  if (level <= 3)
    fprintf(stderr, "brw-demo: kafka %s: %s: %s\n", rd_kafka_name(rk), fac,
            buf);
}

/* The feed producer's delivery reports, from rd_kafka_poll on the demo's
 * thread. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                        void *opaque) {
  demo_t *d = opaque;
  if (rkm->err) {
    d->produce_failed++;
    warn("sample event not delivered: %s", rd_kafka_err2str(rkm->err));
  }
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val) {
  char errstr[256];
  if (rd_kafka_conf_set(conf, key, val, errstr, sizeof(errstr)) !=
      RD_KAFKA_CONF_OK) {
    warn("kafka config %s=%s: %s", key, val, errstr);
    return -1;
  }
  return 0;
}

/* Creates the mock cluster and its topics, the feed producer and the
 * observer (assigned to every partition of the report and DLQ topics from
 * the beginning). Everything is released by kafka_teardown, also after a
 * partial failure. Returns 0 or -1 (message printed). */
static int kafka_setup(demo_t *d) {
  static const struct {
    const char *name;
    int partitions;
  } topics[] = {{TOPIC_EVENTS, EVENTS_PARTITIONS},
                {TOPIC_REPORTS, REPORTS_PARTITIONS},
                {TOPIC_DLQ, DLQ_PARTITIONS}};
  char errstr[512];
  rd_kafka_conf_t *conf;
  rd_kafka_topic_partition_list_t *parts;
  rd_kafka_resp_err_t err;
  const char *bs;

  /* The host handle: a producer without brokers whose only job is to run
   * the mock cluster's thread. */
  conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, on_kafka_log);
  if (conf_set(conf, "client.id", "brw-demo-mock")) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  d->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!d->mock_rk) {
    rd_kafka_conf_destroy(conf);
    warn("cannot create the mock cluster's host handle: %s", errstr);
    return -1;
  }
  d->mcluster = rd_kafka_mock_cluster_new(d->mock_rk, 1);
  if (!d->mcluster) {
    warn("cannot create the mock Kafka cluster");
    return -1;
  }
  bs = rd_kafka_mock_cluster_bootstraps(d->mcluster);
  snprintf(d->bootstraps, sizeof(d->bootstraps), "%s", bs ? bs : "");
  for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
    err = rd_kafka_mock_topic_create(d->mcluster, topics[i].name,
                                     topics[i].partitions, 1);
    if (err) {
      warn("cannot create topic %s on the mock cluster: %s", topics[i].name,
           rd_kafka_err2str(err));
      return -1;
    }
  }

  /* The feed. */
  conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, on_kafka_log);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, d);
  if (conf_set(conf, "bootstrap.servers", d->bootstraps) ||
      conf_set(conf, "client.id", "brw-demo-feed") ||
      conf_set(conf, "linger.ms", "5")) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  d->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (!d->producer) {
    rd_kafka_conf_destroy(conf);
    warn("cannot create the feed producer: %s", errstr);
    return -1;
  }

  /* The observer: assign(), not subscribe(), so it joins no group and
   * commits nothing; group.id is set only because a consumer poll needs
   * one. */
  conf = rd_kafka_conf_new();
  rd_kafka_conf_set_log_cb(conf, on_kafka_log);
  if (conf_set(conf, "bootstrap.servers", d->bootstraps) ||
      conf_set(conf, "client.id", "brw-demo-observer") ||
      conf_set(conf, "group.id", "brw-demo-observer") ||
      conf_set(conf, "enable.auto.commit", "false") ||
      conf_set(conf, "enable.partition.eof", "false") ||
      conf_set(conf, "fetch.wait.max.ms", "50")) {
    rd_kafka_conf_destroy(conf);
    return -1;
  }
  d->observer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (!d->observer) {
    rd_kafka_conf_destroy(conf);
    warn("cannot create the observer: %s", errstr);
    return -1;
  }
  rd_kafka_poll_set_consumer(d->observer);
  parts =
      rd_kafka_topic_partition_list_new(REPORTS_PARTITIONS + DLQ_PARTITIONS);
  for (int p = 0; p < REPORTS_PARTITIONS; p++)
    rd_kafka_topic_partition_list_add(parts, TOPIC_REPORTS, p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  for (int p = 0; p < DLQ_PARTITIONS; p++)
    rd_kafka_topic_partition_list_add(parts, TOPIC_DLQ, p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  err = rd_kafka_assign(d->observer, parts);
  rd_kafka_topic_partition_list_destroy(parts);
  if (err) {
    warn("cannot assign the observer: %s", rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

/* Clients first, then the cluster they talk to, then its host. */
static void kafka_teardown(demo_t *d) {
  if (d->observer) {
    rd_kafka_consumer_close(d->observer);
    rd_kafka_destroy(d->observer);
    d->observer = NULL;
  }
  if (d->producer) {
    rd_kafka_flush(d->producer, 2000);
    rd_kafka_destroy(d->producer);
    d->producer = NULL;
  }
  if (d->mcluster) {
    rd_kafka_mock_cluster_destroy(d->mcluster);
    d->mcluster = NULL;
  }
  if (d->mock_rk) {
    rd_kafka_destroy(d->mock_rk);
    d->mock_rk = NULL;
  }
}

/* Queues one sample event (key and value copied). A full queue is waited
 * out; the feed is small. Returns 0 or -1. */
static int produce(demo_t *d, const char *key, const char *value) {
  rd_kafka_resp_err_t err;

  for (int tries = 0; tries < 500; tries++) {
    err = rd_kafka_producev(d->producer, RD_KAFKA_V_TOPIC(TOPIC_EVENTS),
                            RD_KAFKA_V_KEY(key, strlen(key)),
                            RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                            RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      break;
    rd_kafka_poll(d->producer, 10);
  }
  if (err) {
    d->produce_failed++;
    warn("cannot produce a sample event: %s", rd_kafka_err2str(err));
    return -1;
  }
  return 0;
}

static int produce_campaign(demo_t *d, uint64_t id, const char *type) {
  char key[32], value[128];
  snprintf(key, sizeof(key), "%" PRIu64, id);
  snprintf(value, sizeof(value),
           "{\"type\":\"%s\",\"campaign_id\":%" PRIu64 "}", type, id);
  return produce(d, key, value);
}

/* ---- the observer -------------------------------------------------------- */

/* Copies bytes for display: printable ASCII kept, the rest as '?', cut at
 * len - 1. */
static const char *printable(const void *p, size_t n, char *buf, size_t len) {
  const unsigned char *s = p;
  size_t i;
  for (i = 0; s && i < n && i + 1 < len; i++)
    buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? (char)s[i] : '?';
  buf[i] = '\0';
  return buf;
}

static const char *header(const rd_kafka_message_t *rkm, const char *name,
                          char *buf, size_t len) {
  rd_kafka_headers_t *hdrs;
  const void *val;
  size_t size;

  if (rd_kafka_message_headers(rkm, &hdrs) ||
      rd_kafka_header_get_last(hdrs, name, &val, &size))
    return NULL;
  return printable(val, size, buf, len);
}

static camp_t *find_camp(demo_t *d, json_int_t id) {
  if (id < (json_int_t)FIRST_ID ||
      id >= (json_int_t)(FIRST_ID + (uint64_t)d->ncamps))
    return NULL;
  return &d->camps[id - (json_int_t)FIRST_ID];
}

static int outcome_index(const char *s) {
  for (int i = 0; i < OUT_OTHER; i++)
    if (!strcmp(s, out_names[i]))
      return i;
  return OUT_OTHER;
}

/* One report record: count it and print its line, e.g.
 * report  5000007  done     delivered   812/1000  ( 81.2%)  polls 5  ... */
static void on_report(demo_t *d, const rd_kafka_message_t *rkm) {
  json_error_t jerr;
  json_t *root, *camp, *tracking;
  const char *outcome, *price = NULL, *currency = NULL;
  json_int_t id, polls, events;
  char what[64], extra[64] = "";
  camp_t *c;
  int dup = 0;

  root = json_loadb(rkm->payload, rkm->len, 0, &jerr);
  if (!json_is_object(root)) {
    d->strays++;
    say(d, "report  (unreadable at %s [%d] offset %" PRId64 ": %s)",
        rd_kafka_topic_name(rkm->rkt), (int)rkm->partition, rkm->offset,
        jerr.text);
    json_decref(root);
    return;
  }
  id = json_integer_value(json_object_get(root, "campaign_id"));
  outcome = json_string_value(json_object_get(root, "outcome"));
  if (!outcome)
    outcome = "?";
  tracking = json_object_get(root, "tracking");
  polls = json_integer_value(json_object_get(tracking, "polls"));
  events = json_integer_value(json_object_get(tracking, "events"));

  if (!json_is_true(json_object_get(root, "final"))) {
    d->non_final++;
    say(d, "update  %-8lld %-8s (progress report)", (long long)id, outcome);
    json_decref(root);
    return;
  }
  d->polls += polls;
  c = find_camp(d, id);
  if (!c) {
    d->strays++;
  } else if (c->reports++ == 0) {
    d->reported++;
    d->outcomes[outcome_index(outcome)]++;
  } else {
    d->duplicates++;
    dup = 1;
  }

  camp = json_object_get(root, "campaign");
  if (json_is_object(camp)) {
    json_int_t delivered = json_integer_value(
        json_object_get(json_object_get(camp, "statistics"), "delivered"));
    json_t *tm = json_object_get(camp, "total_messages");
    if (json_is_integer(tm) && json_integer_value(tm) > 0) {
      json_int_t total = json_integer_value(tm);
      snprintf(what, sizeof(what), "delivered %5lld/%-5lld (%5.1f%%)",
               (long long)delivered, (long long)total,
               100.0 * (double)delivered / (double)total);
    } else {
      snprintf(what, sizeof(what), "delivered %5lld", (long long)delivered);
    }
    price = json_string_value(json_object_get(camp, "total_price"));
    currency = json_string_value(json_object_get(camp, "currency"));
  } else {
    snprintf(what, sizeof(what), "(no detail seen)");
  }
  if (events > 1)
    snprintf(extra, sizeof(extra), "  events %lld", (long long)events);
  say(d, "report  %-8lld %-8s %-32s polls %-3lld%s%s%s%s%s%s", (long long)id,
      outcome, what, (long long)polls, price ? " price " : "",
      price ? price : "", currency ? " " : "", currency ? currency : "", extra,
      dup  ? "  (again: at least once)"
      : !c ? "  (not ours)"
           : "");
  json_decref(root);
}

/* One DLQ record: count its reason and print it. */
static void on_dlq(demo_t *d, const rd_kafka_message_t *rkm) {
  char reason[48], message[200], key[40];
  const char *r = header(rkm, "error.reason", reason, sizeof(reason));
  const char *m = header(rkm, "error.message", message, sizeof(message));
  int i;

  if (!r)
    r = "(no reason)";
  d->dlq++;
  for (i = 0; i < d->nreasons; i++)
    if (!strcmp(d->reasons[i].reason, r))
      break;
  if (i == d->nreasons && d->nreasons < MAX_REASONS) {
    snprintf(d->reasons[i].reason, sizeof(d->reasons[i].reason), "%s", r);
    d->nreasons++;
  }
  if (i < d->nreasons)
    d->reasons[i].count++;
  say(d, "dlq     %-20s %s  (key \"%s\")", r, m ? m : "",
      printable(rkm->key, rkm->key_len, key, sizeof(key)));
}

static void on_observed(demo_t *d, const rd_kafka_message_t *rkm) {
  if (rkm->err) {
    if (rkm->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
      warn("observer: %s", rd_kafka_message_errstr(rkm));
    return;
  }
  if (!strcmp(rd_kafka_topic_name(rkm->rkt), TOPIC_DLQ))
    on_dlq(d, rkm);
  else
    on_report(d, rkm);
}

/* ---- the simulator's truth: when to send campaign.finished --------------- */

/* Reads /_sim/campaigns/{id}. Returns 1 and sets *terminal_at_ms when the
 * campaign exists in the simulator (its first detail request gave birth to
 * it), 0 when not yet, -1 on error. */
static int sim_terminal_at(demo_t *d, uint64_t id, int64_t *terminal_at_ms) {
  char url[192], err[256];
  char *body;
  long status;
  json_t *root;
  json_error_t jerr;
  int r = -1;

  snprintf(url, sizeof(url), "%s/_sim/campaigns/%" PRIu64, d->api_url, id);
  if (demo_http_get(url, 2000, &body, &status, err, sizeof(err)) != 0) {
    warn("simulator: %s", err);
    return -1;
  }
  root = json_loads(body, 0, &jerr);
  if (status != 200 || !json_is_object(root)) {
    warn("simulator: GET %s: status %ld", url, status);
  } else if (!json_is_true(json_object_get(root, "born"))) {
    r = 0;
  } else if (json_is_integer(json_object_get(root, "terminal_at_ms"))) {
    *terminal_at_ms =
        json_integer_value(json_object_get(root, "terminal_at_ms"));
    r = 1;
  } else {
    warn("simulator: GET %s: no terminal_at_ms", url);
  }
  json_decref(root);
  free(body);
  return r;
}

/* Every fourth campaign gets a campaign.finished event when the simulator
 * finishes it, as a producer fed by BSG's webhooks would send it: the worker
 * then fetches within poll.finished_delay instead of waiting for its next
 * poll. The time is learnt from the simulator once the campaign exists
 * there (`learn`, an HTTP request per campaign, every FIN_CHECK_MS), and the
 * event is sent only if no report came first.
 *
 * It is sent FIN_LEAD_MS before the status flips, so that the worker's
 * fetch, poll.finished_delay (100 ms) after it reads the event, sees the
 * final status. Sent after the flip, it would race with the worker's own
 * polls: a poll that finds the campaign finished first gets it reported and
 * forgotten, and the late event then starts a second tracking and a second
 * report (at least once, but noisy in a demo). */
static void check_finished(demo_t *d, int learn) {
  int64_t now = demo_wall_ms();

  d->next_fin_due = INT64_MAX;
  if (d->fin_disabled)
    return;
  for (int i = 0; i < d->ncamps; i++) {
    camp_t *c = &d->camps[i];
    if (c->fin == FIN_NONE || c->fin == FIN_SENT || c->reports)
      continue;
    if (c->fin == FIN_WAIT_BORN) {
      int64_t at;
      int r;
      if (!learn)
        continue;
      r = sim_terminal_at(d, c->id, &at);
      if (r < 0) {
        warn("no campaign.finished events from now on");
        d->fin_disabled = 1;
        return;
      }
      if (r == 0)
        continue;
      c->fin_at_ms = at - FIN_LEAD_MS;
      c->fin = FIN_SCHEDULED;
    }
    if (c->fin == FIN_SCHEDULED && now >= c->fin_at_ms) {
      if (produce_campaign(d, c->id, "campaign.finished") == 0) {
        d->finished_sent++;
        say(d,
            "event   %-8" PRIu64 " campaign.finished (the simulator is "
            "finishing it)",
            c->id);
      }
      c->fin = FIN_SENT;
    }
    if (c->fin == FIN_SCHEDULED && c->fin_at_ms < d->next_fin_due)
      d->next_fin_due = c->fin_at_ms;
  }
}

/* ---- the loop ------------------------------------------------------------ */

static void drain_sim_stdout(demo_t *d) {
  char buf[4096];
  ssize_t n;

  while (d->sim_out >= 0) {
    n = read(d->sim_out, buf, sizeof(buf));
    if (n > 0)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0 || errno != EAGAIN) {
      close(d->sim_out);
      d->sim_out = -1;
    }
    break;
  }
}

static void print_progress(demo_t *d) {
  say(d,
      "...     %d/%d campaigns reported, %d DLQ records, %d "
      "campaign.finished sent, %.1f s",
      d->reported, d->ncamps, d->dlq, d->finished_sent, elapsed_s(d));
}

/* One turn of the loop, about TICK_MS long: observe, serve the feed's
 * delivery reports and the simulator's stdout, send due campaign.finished
 * events, print progress. A second signal kills the children at once. */
static void tick(void *arg) {
  demo_t *d = arg;
  rd_kafka_message_t *rkm;
  int64_t now, wait = TICK_MS;

  /* Wake up in time for the next campaign.finished: sent late, it would
   * race with the worker's own polls. */
  if (!d->stopping && d->next_fin_due != INT64_MAX) {
    int64_t until = d->next_fin_due - demo_wall_ms();
    if (until < wait)
      wait = until > 0 ? until : 0;
  }
  rkm = rd_kafka_consumer_poll(d->observer, (int)wait);
  while (rkm) {
    on_observed(d, rkm);
    rd_kafka_message_destroy(rkm);
    rkm = rd_kafka_consumer_poll(d->observer, 0);
  }
  rd_kafka_poll(d->producer, 0);
  drain_sim_stdout(d);
  now = demo_mono_ms();
  if (!d->stopping) {
    int learn = now >= d->next_fin_check;
    check_finished(d, learn);
    if (learn)
      d->next_fin_check = now + FIN_CHECK_MS;
  }
  if (!d->stopping && now >= d->next_progress) {
    print_progress(d);
    d->next_progress = now + PROGRESS_MS;
  }
  if (g_signals >= 2)
    demo_children_kill_all();
}

/* Runs until every campaign has its final report (and the DLQ records are
 * in, or DLQ_GRACE_MS passed), the timeout, a signal, or a child's death. */
static stop_t run_loop(demo_t *d) {
  int64_t deadline = d->t0 + (int64_t)(d->timeout_s * 1000.0);
  int64_t all_reported_at = 0;

  for (;;) {
    tick(d);
    if (g_signals)
      return STOP_SIGNAL;
    if (demo_child_poll(&d->worker))
      return STOP_WORKER_DIED;
    if (demo_child_poll(&d->sim))
      return STOP_SIM_DIED;
    if (d->reported >= d->ncamps) {
      if (!all_reported_at)
        all_reported_at = demo_mono_ms();
      if (d->dlq >= NBAD || demo_mono_ms() - all_reported_at >= DLQ_GRACE_MS)
        return STOP_DONE;
    }
    if (demo_mono_ms() >= deadline)
      return STOP_TIMEOUT;
  }
}

/* ---- children ------------------------------------------------------------ */

/* Starts the simulator on an ephemeral port and reads its first stdout line,
 * {"listening":"127.0.0.1:PORT"}, into d->api_url. Returns 0 or -1. */
static int start_sim(demo_t *d) {
  char *argv[] = {
      d->sim_bin,     "--listen",    "127.0.0.1:0",  "--seed", "42",
      "--time-scale", d->time_scale, "--log-format", "text",   NULL};
  char line[512];
  size_t n = 0;
  int fds[2], r;
  int64_t end;
  json_t *root;
  json_error_t jerr;
  const char *addr;

  if (pipe(fds) != 0) {
    warn("pipe: %s", strerror(errno));
    return -1;
  }
  fcntl(fds[0], F_SETFD, FD_CLOEXEC);
  fcntl(fds[1], F_SETFD, FD_CLOEXEC);
  d->sim.name = "simulator";
  snprintf(d->sim.log_path, sizeof(d->sim.log_path), "%s/sim.log", d->tmpdir);
  r = demo_child_spawn(&d->sim, argv, fds[1]);
  close(fds[1]);
  if (r != 0) {
    close(fds[0]);
    warn("cannot start %s: %s", d->sim_bin, strerror(-r));
    return -1;
  }
  d->sim_out = fds[0];

  end = demo_mono_ms() + SIM_START_MS;
  for (;;) {
    struct pollfd pfd = {.fd = d->sim_out, .events = POLLIN};
    int64_t left = end - demo_mono_ms();
    ssize_t k;

    if (g_signals)
      return -1;
    if (left <= 0) {
      warn("the simulator did not say where it listens within %d s",
           SIM_START_MS / 1000);
      return -1;
    }
    r = poll(&pfd, 1, left > 200 ? 200 : (int)left);
    if (r < 0 && errno != EINTR) {
      warn("poll: %s", strerror(errno));
      return -1;
    }
    if (r <= 0)
      continue;
    k = read(d->sim_out, line + n, 1);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      char how[96];
      demo_child_wait(&d->sim, 1000, NULL, NULL);
      warn("the simulator exited before listening (%s); %s:",
           demo_child_describe(&d->sim, how, sizeof(how)), d->sim.log_path);
      demo_log_tail(d->sim.log_path, 10, stderr);
      return -1;
    }
    if (line[n] == '\n' || n + 2 >= sizeof(line))
      break;
    n++;
  }
  line[n] = '\0';
  fcntl(d->sim_out, F_SETFL, fcntl(d->sim_out, F_GETFL) | O_NONBLOCK);

  root = json_loads(line, 0, &jerr);
  addr = json_string_value(json_object_get(root, "listening"));
  if (!addr || strlen(addr) > 80) {
    warn("unexpected first line from the simulator: %s", line);
    json_decref(root);
    return -1;
  }
  snprintf(d->api_url, sizeof(d->api_url), "http://%s", addr);
  json_decref(root);
  return 0;
}

static int start_worker(demo_t *d) {
  char brokers[300], api[160];
  char *argv[] = {d->worker_bin, brokers, api, "--api.key=test_demo_key",
                  "--topic.input=" TOPIC_EVENTS,
                  "--topic.output=" TOPIC_REPORTS, "--topic.dlq=" TOPIC_DLQ,
                  "--poll.initial_delay=500ms", "--poll.finished_delay=100ms",
                  "--poll.min_interval=500ms", "--poll.max_interval=3s",
                  "--retry.min=200ms", "--retry.max=2s",
                  "--kafka.commit_interval=500ms",
                  /* The demo's simulator creates a campaign at its first
                   * detail request: its campaign list shows none before
                   * (docs/design.md, "Status sweeps"). */
                  "--poll.strategy=detail",
                  /* The mock broker holds an empty fetch for the whole
                   * fetch.wait.max.ms (500 ms by default) and does not cut
                   * it short when data arrives, unlike a real broker; a
                   * short wait keeps events flowing promptly. */
                  "--kafka.consumer.fetch.wait.max.ms=50",
                  "--metrics.listen=off", "--log.format=text", NULL};
  int r;

  snprintf(brokers, sizeof(brokers), "--brokers=%s", d->bootstraps);
  snprintf(api, sizeof(api), "--api.url=%s", d->api_url);
  d->worker.name = "worker";
  snprintf(d->worker.log_path, sizeof(d->worker.log_path), "%s/worker.log",
           d->tmpdir);
  r = demo_child_spawn(&d->worker, argv, -1);
  if (r != 0) {
    warn("cannot start %s: %s", d->worker_bin, strerror(-r));
    return -1;
  }
  return 0;
}

/* Reads /_sim/stats into d->sim_detail_requests and d->sim_logins. */
static void fetch_sim_stats(demo_t *d) {
  char url[192], err[256];
  char *body;
  long status;
  json_t *root;
  json_error_t jerr;

  snprintf(url, sizeof(url), "%s/_sim/stats", d->api_url);
  if (demo_http_get(url, 3000, &body, &status, err, sizeof(err)) != 0) {
    warn("simulator: %s", err);
    return;
  }
  root = json_loads(body, 0, &jerr);
  if (status == 200 &&
      json_is_integer(json_object_get(root, "detail_requests"))) {
    d->sim_detail_requests =
        json_integer_value(json_object_get(root, "detail_requests"));
    d->sim_logins = json_integer_value(json_object_get(root, "logins"));
  } else {
    warn("simulator: GET %s: status %ld, no detail_requests", url, status);
  }
  json_decref(root);
  free(body);
}

/* The orderly stop: the worker first (SIGTERM: it commits, flushes and
 * leaves the group; reports it flushes still arrive while we wait), a short
 * drain of the observer, the simulator's counters, then the simulator. */
static void stop_children(demo_t *d) {
  char how[96];
  int64_t t, end;

  d->stopping = 1;
  if (!demo_child_poll(&d->worker)) {
    say(d, "stopping the worker (SIGTERM) ...");
    t = demo_mono_ms();
    demo_child_signal(&d->worker, SIGTERM);
    if (!demo_child_wait(&d->worker, WORKER_GRACE_MS, tick, d)) {
      warn("the worker did not exit within %d s of SIGTERM; killing it",
           WORKER_GRACE_MS / 1000);
      demo_child_stop(&d->worker, 0);
    }
    say(d, "worker  %s after %.1f s",
        demo_child_describe(&d->worker, how, sizeof(how)),
        (double)(demo_mono_ms() - t) / 1000.0);
  }
  end = demo_mono_ms() + 500;
  while (demo_mono_ms() < end && g_signals < 2)
    tick(d);
  if (!demo_child_poll(&d->sim))
    fetch_sim_stats(d);
  demo_child_stop(&d->sim, SIM_GRACE_MS);
}

/* After the worker exited: how far its group committed the input topic,
 * against the end of each partition. With every event handled, the two are
 * equal (SPEC §6: committed only once the report or DLQ record was
 * acknowledged). A consumer that never subscribes asks the group
 * coordinator without joining the group. */
static void fetch_committed(demo_t *d) {
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_topic_partition_list_t *parts;
  rd_kafka_resp_err_t err;
  rd_kafka_t *rk;
  long long committed = 0, produced = 0;

  rd_kafka_conf_set_log_cb(conf, on_kafka_log);
  if (conf_set(conf, "bootstrap.servers", d->bootstraps) ||
      conf_set(conf, "client.id", "brw-demo-offsets") ||
      conf_set(conf, "group.id", WORKER_GROUP) ||
      conf_set(conf, "enable.auto.commit", "false")) {
    rd_kafka_conf_destroy(conf);
    return;
  }
  rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    warn("cannot create a consumer to read commits: %s", errstr);
    return;
  }
  parts = rd_kafka_topic_partition_list_new(EVENTS_PARTITIONS);
  for (int p = 0; p < EVENTS_PARTITIONS; p++)
    rd_kafka_topic_partition_list_add(parts, TOPIC_EVENTS, p);
  err = rd_kafka_committed(rk, parts, 5000);
  for (int i = 0; !err && i < parts->cnt; i++) {
    int64_t lo, hi;
    if (parts->elems[i].err) {
      err = parts->elems[i].err;
      break;
    }
    if (parts->elems[i].offset >= 0)
      committed += parts->elems[i].offset;
    err = rd_kafka_query_watermark_offsets(
        rk, TOPIC_EVENTS, parts->elems[i].partition, &lo, &hi, 5000);
    produced += hi;
  }
  if (err) {
    warn("cannot read the worker's committed offsets: %s",
         rd_kafka_err2str(err));
  } else {
    d->committed = committed;
    d->produced = produced;
  }
  rd_kafka_topic_partition_list_destroy(parts);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

/* ---- summary ------------------------------------------------------------- */

static void row(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void row(const char *name, const char *fmt, ...) {
  va_list ap;
  printf("  %-32s ", name);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
}

static void print_summary(demo_t *d, stop_t why, int ok) {
  static const char *const whys[] = {"every campaign reported",
                                     "timeout",
                                     "interrupted",
                                     "the worker exited on its own",
                                     "the simulator exited on its own",
                                     "setup failed"};
  char how[96];

  printf("\n== brw-demo summary "
         "==========================================\n");
  row("stopped because", "%s", whys[why]);
  if (!d->sent) {
    /* Nothing happened worth a table. */
    row("worker", "%s", demo_child_describe(&d->worker, how, sizeof(how)));
    row("wall time", "%.1f s", elapsed_s(d));
    row("logs", "%s", d->tmpdir);
    row("result", "%s", ok ? "OK" : "FAILED");
    return;
  }
  row("campaigns sent", "%d  (ids %llu..%llu)", d->sent,
      (unsigned long long)FIRST_ID,
      (unsigned long long)(FIRST_ID + (uint64_t)d->sent - 1));
  row("campaign.finished events sent", "%d", d->finished_sent);
  row("bad events sent", "%d", d->bad_sent);
  row("campaigns reported (final)", "%d / %d", d->reported, d->ncamps);
  for (int i = 0; i < NOUT; i++)
    if (i < OUT_OTHER || d->outcomes[i])
      row("", "%-10s %d", out_names[i], d->outcomes[i]);
  if (d->duplicates)
    row("duplicate final reports", "%d  (at-least-once redelivery)",
        d->duplicates);
  if (d->non_final)
    row("progress reports", "%d", d->non_final);
  if (d->strays)
    row("other report records", "%d", d->strays);
  row("DLQ records", "%d", d->dlq);
  for (int i = 0; i < d->nreasons; i++)
    row("", "%-20s %d", d->reasons[i].reason, d->reasons[i].count);
  if (d->committed >= 0)
    row("input offsets committed", "%lld / %lld%s", d->committed, d->produced,
        d->committed == d->produced ? "  (every event handled)" : "");
  row("total polls (tracking.polls)", "%lld", d->polls);
  if (d->sim_detail_requests >= 0) {
    row("simulator detail requests", "%lld", d->sim_detail_requests);
    row("simulator logins", "%lld", d->sim_logins);
  } else {
    row("simulator detail requests", "unknown");
  }
  if (d->produce_failed)
    row("sample events not delivered", "%d", d->produce_failed);
  row("worker", "%s", demo_child_describe(&d->worker, how, sizeof(how)));
  row("wall time", "%.1f s", elapsed_s(d));
  row("logs", "%s/{worker,sim}.log", d->tmpdir);
  row("result", "%s", ok ? "OK" : "FAILED");
  if (why == STOP_TIMEOUT && d->reported < d->ncamps) {
    printf("  not reported:");
    for (int i = 0, shown = 0; i < d->ncamps && shown < 12; i++)
      if (!d->camps[i].reports) {
        printf(" %" PRIu64, d->camps[i].id);
        shown++;
      }
    printf("%s\n", d->ncamps - d->reported > 12 ? " ..." : "");
  }
}

/* ---- main ---------------------------------------------------------------- */

static int make_tmpdir(demo_t *d) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base)
    base = "/tmp";
  snprintf(d->tmpdir, sizeof(d->tmpdir), "%s/brw-demo-%ld", base,
           (long)getpid());
  if (mkdir(d->tmpdir, 0700) == 0)
    return 0;
  /* A stale directory of an earlier process with our pid. */
  snprintf(d->tmpdir, sizeof(d->tmpdir), "%s/brw-demo-XXXXXX", base);
  if (mkdtemp(d->tmpdir))
    return 0;
  warn("cannot create a directory for the logs under %s: %s", base,
       strerror(errno));
  return -1;
}

static int find_binaries(demo_t *d) {
  snprintf(d->worker_bin, sizeof(d->worker_bin), "%s/bsg-report-worker",
           d->bin_dir);
  snprintf(d->sim_bin, sizeof(d->sim_bin), "%s/bsg-api-sim", d->bin_dir);
  if (access(d->worker_bin, X_OK) != 0) {
    warn("%s: %s (build it, or pass --bin-dir)", d->worker_bin,
         strerror(errno));
    return -1;
  }
  if (access(d->sim_bin, X_OK) != 0) {
    warn("%s: %s (build it, or pass --bin-dir)", d->sim_bin, strerror(errno));
    return -1;
  }
  return 0;
}

static void install_signals(void) {
  struct sigaction sa;

  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  sa.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &sa, NULL);
}

/* The bad events, one per DLQ reason the demo shows (NBAD of them). */
static const struct {
  const char *key;
  const char *value;
} bad_events[NBAD] = {
    {"bad-1", "campaign 5000001 was sent {"},
    {"../1", "{\"type\":\"campaign.sent\",\"campaign_id\":\"../1\"}"},
    {"5009999", "{\"type\":\"campaign.sent\",\"campaign_id\":5009999,"
                "\"account\":\"acme\"}"}};

/* Sets everything up and runs the demo. Returns why it stopped; children
 * may still run (main kills what is left). */
static stop_t run(demo_t *d) {
  stop_t why;

  if (kafka_setup(d) != 0)
    return STOP_FAILED;
  say(d, "kafka   mock cluster at %s; topics %s (%d), %s (%d), %s (%d)",
      d->bootstraps, TOPIC_EVENTS, EVENTS_PARTITIONS, TOPIC_REPORTS,
      REPORTS_PARTITIONS, TOPIC_DLQ, DLQ_PARTITIONS);
  if (start_sim(d) != 0)
    return g_signals ? STOP_SIGNAL : STOP_FAILED;
  say(d, "sim     bsg-api-sim at %s (seed 42, time scale %sx), pid %ld",
      d->api_url, d->time_scale, (long)d->sim.pid);
  if (start_worker(d) != 0)
    return STOP_FAILED;
  say(d,
      "worker  bsg-report-worker pid %ld (the mock's group coordinator "
      "holds a first join for 3 s)",
      (long)d->worker.pid);
  say(d, "logs    %s/worker.log, %s/sim.log", d->tmpdir, d->tmpdir);

  for (int i = 0; i < d->ncamps; i++) {
    camp_t *c = &d->camps[i];
    c->id = FIRST_ID + (uint64_t)i;
    c->fin = i % 4 == 3 ? FIN_WAIT_BORN : FIN_NONE;
    if (produce_campaign(d, c->id, "campaign.sent") != 0)
      return STOP_FAILED;
    d->sent++;
  }
  /* Not JSON; an id that would climb out of the URL path; an account the
   * worker does not know. */
  for (size_t i = 0; i < sizeof(bad_events) / sizeof(bad_events[0]); i++) {
    if (produce(d, bad_events[i].key, bad_events[i].value) != 0)
      return STOP_FAILED;
    d->bad_sent++;
  }
  rd_kafka_flush(d->producer, 5000);
  say(d,
      "feed    %d campaign.sent events (ids %llu..%llu) and %d bad events "
      "to %s; a campaign.finished for every 4th campaign when it ends",
      d->ncamps, (unsigned long long)FIRST_ID,
      (unsigned long long)(FIRST_ID + (uint64_t)d->ncamps - 1), NBAD,
      TOPIC_EVENTS);

  d->next_progress = demo_mono_ms() + PROGRESS_MS;
  why = run_loop(d);
  switch (why) {
  case STOP_TIMEOUT:
    warn("timeout after %.0f s: %d of %d campaigns reported", d->timeout_s,
         d->reported, d->ncamps);
    break;
  case STOP_SIGNAL:
    warn("interrupted; stopping (again to kill at once)");
    break;
  case STOP_WORKER_DIED: {
    char how[96];
    warn("the worker exited on its own (%s); last lines of %s:",
         demo_child_describe(&d->worker, how, sizeof(how)), d->worker.log_path);
    demo_log_tail(d->worker.log_path, 15, stderr);
    break;
  }
  case STOP_SIM_DIED: {
    char how[96];
    warn("the simulator exited on its own (%s); last lines of %s:",
         demo_child_describe(&d->sim, how, sizeof(how)), d->sim.log_path);
    demo_log_tail(d->sim.log_path, 15, stderr);
    break;
  }
  default:
    break;
  }
  return why;
}

int main(int argc, char **argv) {
  demo_t d;
  stop_t why = STOP_FAILED;
  int r, ok = 0;

  setvbuf(stdout, NULL, _IOLBF, 0);
  memset(&d, 0, sizeof(d));
  d.sim_out = -1;
  d.sim_detail_requests = -1;
  d.committed = -1;
  d.produced = -1;
  d.next_fin_due = INT64_MAX;
  d.t0 = demo_mono_ms();
  r = parse_args(&d, argc, argv);
  if (r == 1)
    return 0;
  if (r != 0)
    return 2;
  install_signals();
  if (find_binaries(&d) != 0 || make_tmpdir(&d) != 0)
    return 1;
  d.camps = calloc((size_t)d.ncamps, sizeof(*d.camps));
  if (!d.camps || demo_http_init() != 0) {
    warn("out of memory");
    free(d.camps);
    return 1;
  }

  why = run(&d);
  if (d.observer)
    stop_children(&d);
  demo_children_kill_all();
  if (d.observer && d.worker.pid > 0)
    fetch_committed(&d);
  if (d.sim_out >= 0)
    close(d.sim_out);

  ok = why == STOP_DONE && d.reported == d.ncamps &&
       demo_child_exit_code(&d.worker) == 0;
  if (d.worker.pid > 0 && demo_child_exit_code(&d.worker) != 0 &&
      why != STOP_WORKER_DIED) {
    warn("the worker did not exit cleanly; last lines of %s:",
         d.worker.log_path);
    demo_log_tail(d.worker.log_path, 15, stderr);
  }
  print_summary(&d, why, ok);
  kafka_teardown(&d);
  demo_http_cleanup();
  free(d.camps);
  return ok ? 0 : 1;
}
