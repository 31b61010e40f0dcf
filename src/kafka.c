#include "brw/kafka.h"
#include "brw/backlog.h"
#include "brw/error.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/record.h"

#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/x509_vfy.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* How many queue items one drain serves before yielding to the rest of the
 * loop; the remainder is served by the `more` idle handle, one batch per loop
 * iteration, so that every iteration passes through the poll phase (sockets,
 * signals, the admin server) and the timer phase in between. */
#define DRAIN_BATCH 2000
/* The safety drain interval, and the retry delay for records whose delivery
 * failed. */
#define SAFETY_MS 250
#define REDELIVER_MS 1000
/* Failed produce attempts are logged at most once per interval (with the
 * count held back): during an outage every record in flight fails. */
#define RETRY_LOG_MS 10000
/* The topic metadata probe: how often while every topic is known to exist,
 * how often while one is missing or not known yet, and how long one
 * metadata request may take (on a thread of libuv's pool, never the loop). */
#define PROBE_OK_MS 30000
#define PROBE_WAIT_MS 2000
#define PROBE_TIMEOUT_MS 3000
/* A non-fatal error of librdkafka (a broker connection failing, say), or a
 * warning of its log, is logged once, then at most once per interval per
 * error code or log facility. */
#define ERROR_LOG_INTERVAL_MS 60000
#define ERROR_LIMITS 16
/* How long the committed-offset read of an assignment may take (on the
 * thread pool); without its answer the events are replayed from the
 * committed offset, none skipped. */
#define COMMITTED_TIMEOUT_MS 10000
/* The longest one transactional call waits (exactly once): a call that
 * times out is retriable, and src/txn.c decides what follows. Shutdown
 * waits for a call under way. */
#define TXN_CALL_TIMEOUT_MS 10000
/* How much of a security failure's text is kept (brw_kafka_auth_failure). */
#define AUTH_WHY_MAX 480
/* The watermark query of the paused input partitions (see wm_start), on
 * libuv's pool, one round per statistics interval while consumption is
 * paused: at most WM_PARTS_MAX partitions a round (the next round goes on
 * with the next ones), each query's leader lookup and requests bounded by
 * WM_TIMEOUT_MS, none started WM_ROUND_MS after the round began. An
 * answer counts for WM_FRESH_INTERVALS statistics intervals (a round or
 * two may fail). */
#define WM_PARTS_MAX 32
#define WM_TIMEOUT_MS 2000
#define WM_ROUND_MS 4000
#define WM_FRESH_INTERVALS 3

/* The codes include/brw/kafka.h names are librdkafka's. */
_Static_assert(BRW_KAFKA_ERR_NONE == RD_KAFKA_RESP_ERR_NO_ERROR, "code");
_Static_assert(BRW_KAFKA_ERR_UNKNOWN_TOPIC_OR_PART ==
                   RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
               "code");
_Static_assert(BRW_KAFKA_ERR_INVALID_MSG_SIZE ==
                   RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE,
               "code");
_Static_assert(BRW_KAFKA_ERR_MSG_SIZE_TOO_LARGE ==
                   RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
               "code");
_Static_assert(BRW_KAFKA_ERR_RECORD_LIST_TOO_LARGE ==
                   RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
               "code");
_Static_assert(BRW_KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED ==
                   RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
               "code");
_Static_assert(BRW_KAFKA_ERR_INVALID_TIMESTAMP ==
                   RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP,
               "code");
_Static_assert(BRW_KAFKA_ERR_INVALID_RECORD == RD_KAFKA_RESP_ERR_INVALID_RECORD,
               "code");
_Static_assert(BRW_KAFKA_ERR_INVALID_ARG == RD_KAFKA_RESP_ERR__INVALID_ARG,
               "code");
_Static_assert(BRW_KAFKA_ERR_FAIL == RD_KAFKA_RESP_ERR__FAIL, "code");
_Static_assert(BRW_KAFKA_ERR_FATAL == RD_KAFKA_RESP_ERR__FATAL, "code");

/* A record waiting for the producer queue (or for a retry after a failed
 * delivery). Owns copies of everything. */
typedef struct {
  brw_list_t node;
  char *topic;
  void *key;
  size_t key_len;
  void *value;
  size_t value_len;
  rd_kafka_headers_t *headers;
  void *opaque;
  uint64_t not_before; /* uv_now() before which it is not retried */
} backlog_rec_t;

/* A queue bridged to the loop: librdkafka writes a byte into pipe[1] when the
 * queue gets an item; uv_poll on pipe[0] wakes us. */
typedef struct {
  brw_kafka_t *k;
  rd_kafka_queue_t *rkqu;
  int pipe[2];
  uv_poll_t poll;
  int is_consumer;
} qbridge_t;

/* The metadata probe: one request per topic the worker uses, run on libuv's
 * thread pool because rd_kafka_metadata() blocks. The work function reads
 * only this struct (handles set before it is queued) and writes only its
 * results; the loop thread reads them in the after-work callback. */
typedef struct {
  uv_work_t req;
  brw_kafka_t *k;                             /* read on the loop thread only */
  rd_kafka_t *rk[BRW_KAFKA__TOPICS];          /* borrowed */
  rd_kafka_topic_t *rkt[BRW_KAFKA__TOPICS];   /* owned by brw_kafka_t */
  brw_topic_state_t found[BRW_KAFKA__TOPICS]; /* results */
  rd_kafka_resp_err_t err[BRW_KAFKA__TOPICS];
  atomic_int stop; /* set by brw_kafka_close: skip the requests left */
} probe_t;

/* A round of watermark queries (wm_start). Like the probe, the work
 * function reads only this struct (set before it is queued) and writes
 * only its results; the loop thread applies them in wm_done. */
typedef struct {
  uv_work_t req;
  brw_kafka_t *k;    /* read on the loop thread only */
  rd_kafka_t *rk;    /* borrowed: the consumer */
  const char *topic; /* borrowed: the input topic's name */
  int n;
  int32_t part[WM_PARTS_MAX];
  int64_t lo[WM_PARTS_MAX]; /* results */
  int64_t hi[WM_PARTS_MAX];
  rd_kafka_resp_err_t err[WM_PARTS_MAX];
  atomic_int stop; /* set by brw_kafka_close: skip the queries left */
} wmark_t;

/* A rebalance event waiting for its turn (they are handled one at a time,
 * in order: an assignment waits for its committed-offset read, a revocation
 * for the application's brw_kafka_revoke_done). */
typedef struct rebal_s {
  struct rebal_s *next;
  int assign; /* 1: partitions assigned; 0: revoked */
  int lost;   /* revoked because the assignment was lost */
  int coop;   /* incremental (COOPERATIVE) protocol */
  rd_kafka_topic_partition_list_t *parts; /* owned copy */
} rebal_t;

/* The committed-offset read of an assignment, on libuv's pool:
 * rd_kafka_committed() blocks for a round trip to the group coordinator
 * (up to COMMITTED_TIMEOUT_MS). Like the probe, the work function touches
 * only this struct. */
typedef struct {
  uv_work_t req;
  brw_kafka_t *k;
  rd_kafka_t *rk;                         /* borrowed */
  rd_kafka_topic_partition_list_t *parts; /* owned; filled by the work */
  rd_kafka_resp_err_t err;
  int abandoned; /* the clients closed first: the result is not used */
  int eo;        /* exactly once: a read that fails is tried again */
  atomic_int stop; /* set with abandoned: no further attempt */
} cread_t;

/* The rate limit of one kind of librdkafka line: an error code (fac "") or
 * a log facility (err 0). */
typedef struct {
  int err;
  char fac[16];
  brw_log_limit_t limit;
} err_limit_t;

struct brw_kafka_s {
  uv_loop_t *loop;
  rd_kafka_t *rk_c; /* consumer */
  rd_kafka_t *rk_p; /* producer */
  brw_kafka_handlers_t h;
  brw_metrics_t *m; /* borrowed, may be NULL */
  char *topic_input;
  char *topics[BRW_KAFKA__TOPICS]; /* input, output, DLQ names (owned) */
  qbridge_t qc;
  qbridge_t qp;
  uv_timer_t timer;       /* safety drain, backlog retries */
  uv_idle_t more;         /* active while a drain stopped at its batch limit */
  uv_timer_t probe_timer; /* the next topic metadata probe */
  probe_t probe;
  int probing; /* probe.req is queued or running */
  int probe_stale; /* a consumer error said the input topic is missing
                     while a probe was under way */
  rebal_t *rebal;      /* the rebalance event being handled, or NULL */
  rebal_t *rebal_head; /* events waiting for it, oldest first */
  rebal_t *rebal_tail;
  cread_t *cread;      /* the committed-offset read under way, or NULL */
  int creads;          /* reads on the pool (abandoned ones included) */
  int in_close;        /* inside rd_kafka_consumer_close */
  brw_topic_state_t topic_state[BRW_KAFKA__TOPICS];
  rd_kafka_resp_err_t topic_err[BRW_KAFKA__TOPICS];
  err_limit_t err_limits[ERROR_LIMITS];
  unsigned err_next; /* the slot the next new error code takes */
  brw_list_t backlog;
  size_t nbacklog;
  size_t in_flight; /* queued in librdkafka, not yet reported */
  int paused;
  int fatal;
  int consumer_closed;
  int closing;
  size_t commits_in_flight;
  int up; /* connection state last reported */
  int all_down_c, all_down_p;
  /* Per client ([0] consumer, [1] producer), on the loop thread: why the
   * brokers refuse it when its security settings are the cause ("" when
   * none since it last reached a broker; brw_kafka_auth_failure), the last
   * certificate verification failure librdkafka logged (SSLCERTVRFY, for
   * the handshake error that follows it), and whether it ever reached a
   * broker. */
  char auth_why[2][AUTH_WHY_MAX];
  char verify_why[2][AUTH_WHY_MAX];
  int reached[2];
  brw_log_limit_t retry_log; /* failed produce attempts */
  int pending_closes;
  void (*close_cb)(void *);
  void *close_arg;
  /* Exactly once (delivery.guarantee): the producer is transactional, its
   * events are served as events (see drain_events), and its
   * transactional calls run on libuv's pool, one at a time. */
  int eo;
  rd_kafka_conf_t *pconf; /* a copy of the producer's configuration, for a
                             rebuild */
  struct txw_s *txw;      /* the call under way, or NULL */
  struct txw_s *txw_held; /* a commit waiting for the backlog to drain */
  int offsets_sent;       /* send_offsets done in this transaction */
  char producer_error[256]; /* the producer's last error line, "" */
  /* The real backlog (include/brw/backlog.h, brw_kafka_unread): the input
   * partitions held (as assigned by rebal_apply), with what the statistics
   * and the watermark queries said of each; how the consumer reads
   * (isolation.level, auto.offset.reset) and how often its statistics
   * come. */
  brw_backlog_part_t *held; /* owned, freed with the module */
  size_t nheld, capheld;
  int read_committed;
  brw_backlog_reset_t reset;
  uint64_t stats_ms;
  int64_t unread;
  wmark_t wm;
  int wm_busy;    /* wm.req is queued or running */
  size_t wm_next; /* the index in `held` the next round starts at */
};

static int drain_queue(qbridge_t *q);

static int error_log_ok(brw_kafka_t *k, int err, const char *fac,
                        uint64_t *suppressed);

/* The client index of auth_why, verify_why and reached. */
static int client_of(const brw_kafka_t *k, const rd_kafka_t *rk) {
  return rk == k->rk_p;
}

/* Keeps librdkafka's SSLCERTVRFY line, "Certificate (subject=S, issuer=I)
 * verification callback failed: WHY", as "WHY; certificate subject=S,
 * issuer=I". */
static void keep_verify_failure(brw_kafka_t *k, const rd_kafka_t *rk,
                                const char *buf) {
  static const char k_failed[] = "verification callback failed: ";
  const char *why = strstr(buf, k_failed);
  const char *subj = strstr(buf, "(subject=");
  const char *end = subj ? strchr(subj, ')') : NULL;
  char *out = k->verify_why[client_of(k, rk)];
  if (!why) {
    snprintf(out, AUTH_WHY_MAX, "%s", buf);
    return;
  }
  why += sizeof(k_failed) - 1;
  if (subj && end)
    snprintf(out, AUTH_WHY_MAX, "%s; certificate %.*s", why,
             (int)(end - subj - 1), subj + 1);
  else
    snprintf(out, AUTH_WHY_MAX, "%s", why);
}

/* log_cb: on the loop thread (logs are routed to the queues). A broker
 * connection failure comes twice from librdkafka: as this log line (facility
 * FAIL) and as an error (on_error); only the error is logged, once, then
 * rate-limited, so the FAIL line goes to debug. Warnings and errors are
 * logged once, then at most once a minute per facility: during an outage
 * librdkafka repeats them at every retry. */
static void log_kafka(const rd_kafka_t *rk, int level, const char *fac,
                      const char *buf) {
  brw_kafka_t *k = rd_kafka_opaque(rk);
  brw_log_level_t l = level <= 3   ? BRW_LOG_ERROR
                      : level <= 5 ? BRW_LOG_WARN
                      : level <= 6 ? BRW_LOG_INFO
                                   : BRW_LOG_DEBUG;
  if (fac && !strcmp(fac, "FAIL"))
    l = BRW_LOG_DEBUG;
  /* Exactly once: the transactional producer says why a transaction
   * failed in its error lines (TXNERR, ADDPARTS, ...), before any limit
   * holds them back: kept for transactions_stalled's detail. */
  if (k && k->eo && rk == k->rk_p && level <= 3)
    snprintf(k->producer_error, sizeof(k->producer_error), "%s", buf);
  /* A broker certificate that failed verification (on_cert_verify named
   * why): kept for the handshake error that follows, which says it. */
  if (k && fac && !strcmp(fac, "SSLCERTVRFY")) {
    keep_verify_failure(k, rk, buf);
    l = BRW_LOG_DEBUG;
  }
  if (!brw_log_enabled(l))
    return;
  uint64_t suppressed = 0;
  /* Configuration warnings come once each, at start-up: all are kept. */
  if (l >= BRW_LOG_WARN && k && !(fac && !strcmp(fac, "CONFWARN")) &&
      !error_log_ok(k, 0, fac, &suppressed))
    return;
  brw_logj(l,
           json_pack("{ss ss sI}", "client", rd_kafka_name(rk), "facility",
                     fac ? fac : "", "suppressed", (json_int_t)suppressed),
           "librdkafka: %s", buf);
}

static void set_connection(brw_kafka_t *k) {
  int up = !(k->all_down_c || k->all_down_p);
  if (up != k->up) {
    k->up = up;
    brw_metrics_set(k->m, BRW_M_KAFKA_BROKERS_UP, NULL, up);
    if (k->h.on_connection)
      k->h.on_connection(k->h.ctx, up);
  }
}

/* Whether a line about error `err` (or of log facility `fac`, with err 0)
 * may be written now: the first one is, then at most one per
 * ERROR_LOG_INTERVAL_MS per kind (*suppressed gets the count held back
 * meanwhile). A handful of kinds are tracked; a new one takes the oldest
 * slot. */
static int error_log_ok(brw_kafka_t *k, int err, const char *fac,
                        uint64_t *suppressed) {
  char key[16];
  snprintf(key, sizeof(key), "%s", fac ? fac : "");
  err_limit_t *e = NULL;
  for (int i = 0; i < ERROR_LIMITS && !e; i++)
    if (k->err_limits[i].limit.next_ms && k->err_limits[i].err == err &&
        !strcmp(k->err_limits[i].fac, key))
      e = &k->err_limits[i];
  if (!e) {
    e = &k->err_limits[k->err_next++ % ERROR_LIMITS];
    memset(e, 0, sizeof(*e));
    e->err = err;
    memcpy(e->fac, key, sizeof(key));
  }
  return brw_log_limit(&e->limit, uv_now(k->loop), ERROR_LOG_INTERVAL_MS,
                       suppressed);
}

const char *brw__kafka_auth_failure(int err, const char *reason) {
  const char *r = reason ? reason : "";
  if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION ||
      err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED)
    return "SASL authentication failed";
  if (err != RD_KAFKA_RESP_ERR__SSL && err != RD_KAFKA_RESP_ERR__TRANSPORT)
    return NULL;
  if (strstr(r, "certificate verify failed"))
    return "TLS: the broker's certificate was not accepted";
  /* OpenSSL's text for a TLS alert the broker sent: "sslv3 alert bad
   * certificate", "tlsv13 alert certificate required", "tlsv1 alert
   * unknown ca", ... */
  const char *alert = strstr(r, " alert ");
  if (alert && (strstr(alert, "certificate") || strstr(alert, "unknown ca")))
    return "TLS: the broker refused the client certificate";
  return NULL;
}

void brw__kafka_x509_failure(int x509_error, const char *broker_name, char *buf,
                             size_t len) {
  /* broker_name is "host:port"; an IPv6 host is in brackets. */
  const char *colon = broker_name ? strrchr(broker_name, ':') : NULL;
  int hostlen = colon ? (int)(colon - broker_name)
                      : (broker_name ? (int)strlen(broker_name) : 0);
  switch (x509_error) {
  case X509_V_ERR_HOSTNAME_MISMATCH:
  case X509_V_ERR_IP_ADDRESS_MISMATCH:
    snprintf(buf, len,
             "hostname mismatch: it is not for \"%.*s\" (the address in "
             "`brokers`, or one the cluster advertises)",
             hostlen, broker_name ? broker_name : "");
    break;
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
  case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
  case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
  case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
  case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    snprintf(buf, len,
             "unknown CA: no CA of kafka.ssl.ca.location (or of the "
             "system's store when unset) signed it");
    break;
  case X509_V_ERR_CERT_HAS_EXPIRED:
    snprintf(buf, len, "expired");
    break;
  case X509_V_ERR_CERT_NOT_YET_VALID:
    snprintf(buf, len, "not valid yet");
    break;
  default:
    snprintf(buf, len, "X.509 error %d", x509_error);
  }
}

/* ssl.certificate.verify_cb: runs on a librdkafka broker thread, for each
 * certificate of a broker's chain, after OpenSSL's own checks; *x509_error
 * is their verdict. It decides nothing: it accepts exactly what OpenSSL
 * accepted (as OpenSSL does without a callback) and changes no error.
 * When OpenSSL refused, it names the reason in errstr, which librdkafka
 * logs (facility SSLCERTVRFY) and log_kafka keeps on the loop thread for
 * the handshake error that follows: that error's own text is "certificate
 * verify failed" for an unknown CA and a hostname mismatch alike. Touches
 * nothing but its arguments. */
static int on_cert_verify(rd_kafka_t *rk, const char *broker_name,
                          int32_t broker_id, int *x509_error, int depth,
                          const char *buf, size_t size, char *errstr,
                          size_t errstr_size, void *opaque) {
  (void)rk, (void)broker_id, (void)depth, (void)buf, (void)size, (void)opaque;
  if (*x509_error == X509_V_OK)
    return 1;
  brw__kafka_x509_failure(*x509_error, broker_name, errstr, errstr_size);
  return 0;
}

/* Installs on_cert_verify when the configuration (complete, kafka.*
 * applied) verifies brokers' certificates over TLS; with verification off,
 * OpenSSL would still call it, and the failures it logged would be noise. */
static void watch_cert_verify(rd_kafka_conf_t *conf) {
  char proto[32] = "", verify[16] = "";
  size_t plen = sizeof(proto), vlen = sizeof(verify);
  if (rd_kafka_conf_get(conf, "security.protocol", proto, &plen) !=
          RD_KAFKA_CONF_OK ||
      rd_kafka_conf_get(conf, "enable.ssl.certificate.verification", verify,
                        &vlen) != RD_KAFKA_CONF_OK)
    return;
  if ((!strcasecmp(proto, "ssl") || !strcasecmp(proto, "sasl_ssl")) &&
      !strcmp(verify, "true"))
    (void)rd_kafka_conf_set_ssl_cert_verify_cb(conf, on_cert_verify);
}

/* Keeps a security failure of client i (what: brw__kafka_auth_failure's
 * phrase), with librdkafka's text, minus its "(after Nms in state X)"
 * suffix, which changes at every retry. A certificate verification failure
 * says instead the reason on_cert_verify gave and the broker (librdkafka's
 * text up to its first ": "): OpenSSL's own words ("certificate verify
 * failed", "verify that ssl.ca.location is correctly configured") would
 * mislead about a hostname mismatch. */
static void keep_auth_failure(brw_kafka_t *k, int i, const char *what,
                              const char *reason) {
  const char *r = reason ? reason : "";
  size_t n = strlen(r);
  const char *after = strstr(r, " (after ");
  if (after && n && r[n - 1] == ')')
    n = (size_t)(after - r);
  char *out = k->auth_why[i];
  const char *colon = strstr(r, ": ");
  int len;
  if (strstr(r, "certificate verify failed") && k->verify_why[i][0] &&
      colon) {
    /* A copy: GCC cannot tell that two rows of the struct do not overlap
     * (-Werror=restrict). */
    char verdict[AUTH_WHY_MAX];
    memcpy(verdict, k->verify_why[i], sizeof(verdict));
    len = snprintf(out, AUTH_WHY_MAX, "%s: %s; broker %.*s", what, verdict,
                   (int)(colon - r), r);
  } else {
    len = snprintf(out, AUTH_WHY_MAX, "%s: %.*s", what, (int)n, r);
  }
  if (len >= AUTH_WHY_MAX) /* cut: say so */
    memcpy(out + AUTH_WHY_MAX - 4, "...", 4);
}

/* A fatal error of a client: logged, and the application told once. A
 * group.instance.id still held by another member gets a hint: under KIP-848
 * a member killed without leaving keeps it until its session expires, so
 * the restart of a crashed static member is fenced until then. (By name:
 * 2.0.2's header lacks the code.) */
static void go_fatal(brw_kafka_t *k, rd_kafka_t *rk) {
  char buf[512];
  rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, buf, sizeof(buf));
  const char *name = rd_kafka_err2name(ferr);
  const char *hint =
      !strcmp(name, "UNRELEASED_INSTANCE_ID")
          ? "; another member holds this group.instance.id: a second worker "
            "with the same id, or (KIP-848) a member that was killed and "
            "keeps it until the broker's group.consumer.session.timeout.ms "
            "passes, after which a restart succeeds"
          : "";
  brw_logj(BRW_LOG_ERROR, json_pack("{ss}", "error", name),
           "kafka fatal error: %s%s", buf, hint);
  if (!k->fatal) {
    k->fatal = 1;
    if (k->h.on_fatal)
      k->h.on_fatal(k->h.ctx, buf);
  }
}

/* Exactly once: a fatal error of the transactional producer (fenced by
 * another producer with the same transactional.id, an unknown producer id,
 * ...) does not stop the worker: the application's transaction cycle
 * aborts and rebuilds the producer (src/txn.c). */
static void producer_fatal(brw_kafka_t *k, rd_kafka_t *rk) {
  char buf[512];
  rd_kafka_resp_err_t ferr = rd_kafka_fatal_error(rk, buf, sizeof(buf));
  brw_logj(BRW_LOG_WARN, json_pack("{ss}", "error", rd_kafka_err2name(ferr)),
           "transactional producer failed for good, it will be made again: "
           "%s",
           buf);
  if (k->h.on_delivery_failed)
    k->h.on_delivery_failed(k->h.ctx, NULL, RD_KAFKA_RESP_ERR__FATAL, buf);
}

/* error_cb: runs on the loop thread (errors are served from the queues). Only
 * a fatal error is fatal; everything else librdkafka retries by itself.
 * "All brokers down" is not logged here: the application hears of it through
 * on_connection (and its health registry says it once). Other errors are
 * logged once, then at most once a minute per code. */
static void on_error(rd_kafka_t *rk, int err, const char *reason,
                     void *opaque) {
  brw_kafka_t *k = opaque;
  if (err == RD_KAFKA_RESP_ERR__FATAL && k->eo && rk == k->rk_p) {
    producer_fatal(k, rk);
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    go_fatal(k, rk);
    return;
  }
  if (k->eo && rk == k->rk_p)
    snprintf(k->producer_error, sizeof(k->producer_error), "%s: %s",
             rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    if (rk == k->rk_c)
      k->all_down_c = 1;
    else
      k->all_down_p = 1;
    set_connection(k);
    return;
  }
  /* A failure of the security settings (SASL, certificates) is kept for
   * the application's health registry, which says it once as the reason
   * the worker is not ready (kafka_auth) while no broker takes the client.
   * Once the client has reached a broker (another broker may refuse it
   * later), it is logged below as well, like any other error. */
  const char *what = brw__kafka_auth_failure(err, reason);
  int i = client_of(k, rk);
  if (what) {
    keep_auth_failure(k, i, what, reason);
    if (!k->reached[i]) {
      brw_logj(BRW_LOG_DEBUG,
               json_pack("{ss ss}", "client", rd_kafka_name(rk), "error",
                         rd_kafka_err2name((rd_kafka_resp_err_t)err)),
               "kafka: %s", reason);
      return;
    }
  }
  uint64_t suppressed = 0;
  if (!error_log_ok(k, err, NULL, &suppressed))
    return;
  brw_logj(BRW_LOG_WARN,
           json_pack("{ss ss sI}", "client", rd_kafka_name(rk), "error",
                     rd_kafka_err2name((rd_kafka_resp_err_t)err), "suppressed",
                     (json_int_t)suppressed),
           "kafka: %s", reason);
}

/* The brokers are back once any request succeeds; the statistics callback is
 * not enabled, so a fetched message or a delivery report clears the flag. */
static void mark_up(brw_kafka_t *k, rd_kafka_t *rk) {
  int i = client_of(k, rk);
  k->reached[i] = 1;
  k->auth_why[i][0] = '\0';
  k->verify_why[i][0] = '\0';
  if (rk == k->rk_c && k->all_down_c) {
    k->all_down_c = 0;
    set_connection(k);
  } else if (rk == k->rk_p && k->all_down_p) {
    k->all_down_p = 0;
    set_connection(k);
  }
}

static void backlog_free(backlog_rec_t *b) {
  free(b->topic);
  free(b->key);
  free(b->value);
  if (b->headers)
    rd_kafka_headers_destroy(b->headers);
  free(b);
}

/* ---- the boundary's conversions ---- */

/* librdkafka's copy of `h` (owned by the caller; NULL for NULL). */
static rd_kafka_headers_t *headers_to_rd(const brw_headers_t *h) {
  if (!h)
    return NULL;
  size_t n = brw_headers_count(h);
  rd_kafka_headers_t *rh = rd_kafka_headers_new(n ? n : 1);
  const char *name;
  const void *v;
  size_t len;
  for (size_t i = 0; brw_headers_get(h, i, &name, &v, &len) == 0; i++)
    rd_kafka_header_add(rh, name, -1, v, v ? (ssize_t)len : 0);
  return rh;
}

/* Our copy of librdkafka's headers (owned by the caller), or NULL for none
 * or when out of memory. */
static brw_headers_t *headers_from_rd(const rd_kafka_headers_t *rh) {
  if (!rh)
    return NULL;
  brw_headers_t *h = brw_headers_new();
  const char *name;
  const void *v;
  size_t len;
  for (size_t i = 0; h && rd_kafka_header_get_all(rh, i, &name, &v, &len) ==
                              RD_KAFKA_RESP_ERR_NO_ERROR;
       i++) {
    if (brw_headers_add(h, name, v, len) != 0) {
      brw_headers_free(h);
      h = NULL;
    }
  }
  return h;
}

/* A list of positions from librdkafka's (every element, whatever its
 * topic: the consumer subscribes to the input topic only). Returns 0 or
 * BRW_ENOMEM (then *out is empty). */
static int positions_from_rd(const rd_kafka_topic_partition_list_t *parts,
                             brw_kafka_positions_t *out) {
  memset(out, 0, sizeof(*out));
  for (int i = 0; parts && i < parts->cnt; i++) {
    const rd_kafka_topic_partition_t *e = &parts->elems[i];
    if (brw_kafka_positions_add(out, e->partition, e->offset, e->metadata,
                                e->metadata_size) != 0) {
      brw_kafka_positions_clear(out);
      return BRW_ENOMEM;
    }
    out->elems[out->cnt - 1].err = e->err;
  }
  return 0;
}

/* librdkafka's list (owned by the caller) of positions of the input
 * topic, metadata included. */
static rd_kafka_topic_partition_list_t *
positions_to_rd(const brw_kafka_t *k, const brw_kafka_positions_t *l) {
  rd_kafka_topic_partition_list_t *parts =
      rd_kafka_topic_partition_list_new(l->cnt > 0 ? l->cnt : 1);
  for (int i = 0; i < l->cnt; i++) {
    const brw_kafka_pos_t *p = &l->elems[i];
    rd_kafka_topic_partition_t *e =
        rd_kafka_topic_partition_list_add(parts, k->topic_input, p->partition);
    e->offset = p->offset;
    if (p->metadata && p->metadata_len > 0) {
      /* The list owns its elements' metadata and frees it with free(). */
      e->metadata = malloc(p->metadata_len);
      if (e->metadata) {
        memcpy(e->metadata, p->metadata, p->metadata_len);
        e->metadata_size = p->metadata_len;
      }
    }
  }
  return parts;
}

int brw_kafka_positions_add(brw_kafka_positions_t *l, int32_t partition,
                            int64_t offset, const void *metadata, size_t len) {
  if (l->cnt == l->cap) {
    int ncap = l->cap ? l->cap * 2 : 8;
    brw_kafka_pos_t *ne = realloc(l->elems, sizeof(*ne) * (size_t)ncap);
    if (!ne)
      return BRW_ENOMEM;
    l->elems = ne;
    l->cap = ncap;
  }
  char *meta = NULL;
  if (metadata && len > 0) {
    if (!(meta = malloc(len + 1)))
      return BRW_ENOMEM;
    memcpy(meta, metadata, len);
    meta[len] = '\0';
  }
  l->elems[l->cnt++] =
      (brw_kafka_pos_t){partition, offset, meta, meta ? len : 0, 0};
  return 0;
}

void brw_kafka_positions_clear(brw_kafka_positions_t *l) {
  for (int i = 0; i < l->cnt; i++)
    free(l->elems[i].metadata);
  free(l->elems);
  memset(l, 0, sizeof(*l));
}

const char *brw_kafka_err_name(int err) {
  return rd_kafka_err2name((rd_kafka_resp_err_t)err);
}

const char *brw_kafka_err_str(int err) {
  return rd_kafka_err2str((rd_kafka_resp_err_t)err);
}

int brw_kafka_message_header(const brw_kafka_message_t *msg, const char *name,
                             const void **value, size_t *len) {
  rd_kafka_headers_t *hdrs = NULL;
  if (!msg->priv ||
      rd_kafka_message_headers(msg->priv, &hdrs) !=
          RD_KAFKA_RESP_ERR_NO_ERROR ||
      rd_kafka_header_get_last(hdrs, name, value, len) !=
          RD_KAFKA_RESP_ERR_NO_ERROR)
    return BRW_ENOENT;
  return 0;
}

const char *brw_kafka_version_str(void) {
  return rd_kafka_version_str();
}

int brw_kafka_conf_check(const char *prop, const char *value, char *errbuf,
                         size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf)
    return BRW_ENOMEM;
  rd_kafka_conf_res_t res =
      rd_kafka_conf_set(conf, prop, value, errbuf, errlen);
  rd_kafka_conf_destroy(conf);
  return res == RD_KAFKA_CONF_OK        ? 0
         : res == RD_KAFKA_CONF_UNKNOWN ? BRW_ENOENT
                                        : BRW_EINVAL;
}

void brw_kafka_set_metrics(brw_kafka_t *k, brw_metrics_t *m) {
  k->m = m;
}

/* Tries to hand one record to librdkafka. Returns librdkafka's answer:
 * NO_ERROR when queued (the headers then belong to librdkafka), _QUEUE_FULL,
 * _FATAL, a permanent refusal (brw_record_refusal_permanent, e.g.
 * MSG_SIZE_TOO_LARGE), or another error worth retrying later (logged). On
 * any error the headers stay the caller's. */
static rd_kafka_resp_err_t try_produce(brw_kafka_t *k, const char *topic,
                                       const void *key, size_t key_len,
                                       const void *value, size_t value_len,
                                       rd_kafka_headers_t *headers,
                                       void *opaque) {
  rd_kafka_resp_err_t err;
  if (headers)
    err = rd_kafka_producev(
        k->rk_p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
  else
    err = rd_kafka_producev(
        k->rk_p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_VALUE((void *)value, value_len),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    k->in_flight++;
    return err;
  }
  uint64_t held = 0;
  if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL && err != RD_KAFKA_RESP_ERR__FATAL &&
      !brw_record_refusal_permanent(err) && !k->eo &&
      brw_log_limit(&k->retry_log, uv_now(k->loop), RETRY_LOG_MS, &held))
    brw_logj(BRW_LOG_ERROR,
             json_pack("{ss ss sI}", BRW_LF_TOPIC, topic, "error",
                       rd_kafka_err2name(err), "suppressed", (json_int_t)held),
             "produce failed, retrying: %s", rd_kafka_err2str(err));
  return err;
}

/* A record was refused for good: hands it back to the application (which
 * owns its opaque again) instead of retrying it for ever, the stall of
 * issue 10. Everything in `rec` is borrowed for the call. */
static void refuse(brw_kafka_t *k, const brw_kafka_record_t *rec,
                   rd_kafka_resp_err_t err) {
  if (k->h.on_refused) {
    k->h.on_refused(k->h.ctx, rec, err, rd_kafka_err2str(err));
    return;
  }
  brw_logj(BRW_LOG_ERROR,
           json_pack("{ss ss sI sI}", BRW_LF_TOPIC, rec->topic, "error",
                     rd_kafka_err2name(err), "key_bytes",
                     (json_int_t)rec->key_len, "value_bytes",
                     (json_int_t)rec->value_len),
           "record refused, dropped: %s", rd_kafka_err2str(err));
}

static backlog_rec_t *backlog_new(const char *topic, const void *key,
                                  size_t key_len, const void *value,
                                  size_t value_len, rd_kafka_headers_t *hdrs,
                                  void *opaque) {
  backlog_rec_t *b = calloc(1, sizeof(*b));
  if (!b)
    return NULL;
  b->topic = strdup(topic);
  b->key_len = key_len;
  b->value_len = value_len;
  b->key = key_len ? malloc(key_len) : NULL;
  b->value = value_len ? malloc(value_len) : NULL;
  if (!b->topic || (key_len && !b->key) || (value_len && !b->value)) {
    b->headers = NULL;
    backlog_free(b);
    return NULL;
  }
  if (key_len)
    memcpy(b->key, key, key_len);
  if (value_len)
    memcpy(b->value, value, value_len);
  b->headers = hdrs;
  b->opaque = opaque;
  brw_list_init(&b->node);
  return b;
}

static void txw_release_held(brw_kafka_t *k);
static void txw_free(struct txw_s *w);

/* Exactly once: a record of the open transaction could not be produced, or
 * its delivery failed: the transaction cannot commit. The application
 * hears of it (on_delivery_failed; opaque may be NULL), and a commit held
 * for the backlog (brw_kafka_txn_call), which would never start, ends
 * with requires-abort: the abort drops the backlog and the cycle produces
 * every record again. The handlers may start the abort at once, which
 * clears the backlog: the caller must not hold a backlog record. */
static void eo_record_failed(brw_kafka_t *k, void *opaque,
                             rd_kafka_resp_err_t err) {
  struct txw_s *held = k->txw_held;
  k->txw_held = NULL;
  if (held)
    txw_free(held);
  if (k->h.on_delivery_failed)
    k->h.on_delivery_failed(k->h.ctx, opaque, err, rd_kafka_err2str(err));
  if (held && k->h.on_txn_done) {
    char why[256];
    snprintf(why, sizeof(why),
             "%s: a record failed before the commit could start: %s",
             rd_kafka_err2name(err), rd_kafka_err2str(err));
    k->h.on_txn_done(k->h.ctx, BRW_TXN_CALL_COMMIT, BRW_TXN_REQUIRES_ABORT, why,
                     NULL);
  }
}

/* Moves what fits from the backlog into the producer queue, oldest first, so
 * that order is kept. */
static void flush_backlog(brw_kafka_t *k) {
  uint64_t now = uv_now(k->loop);
  while (!brw_list_empty(&k->backlog)) {
    backlog_rec_t *b = brw_list_entry(k->backlog.next, backlog_rec_t, node);
    if (b->not_before > now)
      break;
    rd_kafka_resp_err_t err =
        try_produce(k, b->topic, b->key, b->key_len, b->value, b->value_len,
                    b->headers, b->opaque);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
      break;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      b->headers = NULL; /* librdkafka owns them now */
    } else if (k->eo) {
      /* Exactly once: no retry of its own. A record refused for good goes
       * back to the application, which builds its smaller form for the
       * redo; any failure loses the transaction (eo_record_failed). */
      brw_list_remove(&b->node);
      k->nbacklog--;
      if (brw_record_refusal_permanent(err)) {
        brw_headers_t *h = headers_from_rd(b->headers);
        brw_kafka_record_t rec = {b->topic,     b->key, b->key_len, b->value,
                                  b->value_len, h,      b->opaque};
        refuse(k, &rec, err);
        brw_headers_free(h);
      }
      void *opaque = b->opaque;
      backlog_free(b);
      eo_record_failed(k, opaque, err);
      return;
    } else if (err == RD_KAFKA_RESP_ERR__FATAL) {
      return;
    } else if (brw_record_refusal_permanent(err)) {
      /* Retrying gives the same answer: the application decides. It may
       * produce again from the handler, which appends to the backlog; this
       * record is out of it first. */
      brw_list_remove(&b->node);
      k->nbacklog--;
      brw_headers_t *h = headers_from_rd(b->headers);
      brw_kafka_record_t rec = {b->topic,     b->key, b->key_len, b->value,
                                b->value_len, h,      b->opaque};
      refuse(k, &rec, err);
      brw_headers_free(h);
      backlog_free(b);
      continue;
    } else {
      /* A local error an operator or time cures (unknown topic in the local
       * metadata): keep it for a later retry rather than lose it, but move
       * it to the end so others are not blocked. */
      b->not_before = now + REDELIVER_MS;
      brw_list_remove(&b->node);
      brw_list_insert_tail(&k->backlog, &b->node);
      if (k->nbacklog == 1)
        break;
      continue;
    }
    brw_list_remove(&b->node);
    k->nbacklog--;
    backlog_free(b);
  }
  if (k->txw_held && k->nbacklog == 0)
    txw_release_held(k);
}

/* dr_msg_cb: on the loop thread, from the producer queue drain. A failed
 * delivery is produced again after a pause: the report or DLQ record is the
 * only proof of work whose input offset is otherwise never committed. A
 * permanent refusal (brw_record_refusal_permanent) is not: sending the same
 * bytes again gets the same answer, so the record goes back to the
 * application (on_refused). */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                        void *opaque) {
  brw_kafka_t *k = opaque;
  k->in_flight--;
  if (k->closing)
    return; /* purged at close; the application frees its opaques */
  if (rkm->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    mark_up(k, rk);
    if (k->h.on_delivered)
      k->h.on_delivered(k->h.ctx, rkm->_private);
    return;
  }
  if (!k->fatal && (brw_record_refusal_permanent(rkm->err) || k->eo)) {
    rd_kafka_headers_t *rh = NULL;
    if (rd_kafka_message_headers(rkm, &rh) != RD_KAFKA_RESP_ERR_NO_ERROR)
      rh = NULL;
    brw_headers_t *h = headers_from_rd(rh);
    brw_kafka_record_t rec = {rd_kafka_topic_name(rkm->rkt),
                              rkm->key,
                              rkm->key_len,
                              rkm->payload,
                              rkm->len,
                              h,
                              rkm->_private};
    /* Exactly once: the transaction is lost with any failed record, and
     * librdkafka retried it already; the application aborts and produces
     * the transaction's records again (a refused one as on_refused made
     * it). */
    if (brw_record_refusal_permanent(rkm->err))
      refuse(k, &rec, rkm->err);
    brw_headers_free(h);
    if (k->eo)
      eo_record_failed(k, rkm->_private, rkm->err);
    return;
  }
  uint64_t held = 0;
  if (brw_log_limit(&k->retry_log, uv_now(k->loop), RETRY_LOG_MS, &held))
    brw_logj(BRW_LOG_WARN,
             json_pack("{ss ss sI}", BRW_LF_TOPIC,
                       rd_kafka_topic_name(rkm->rkt), "error",
                       rd_kafka_err2name(rkm->err), "suppressed",
                       (json_int_t)held),
             "delivery failed, producing again: %s",
             rd_kafka_err2str(rkm->err));
  if (k->fatal)
    return;
  rd_kafka_headers_t *hdrs = NULL;
  if (rd_kafka_message_headers(rkm, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
    hdrs = rd_kafka_headers_copy(hdrs);
  else
    hdrs = NULL;
  backlog_rec_t *b =
      backlog_new(rd_kafka_topic_name(rkm->rkt), rkm->key, rkm->key_len,
                  rkm->payload, rkm->len, hdrs, rkm->_private);
  if (!b) {
    if (hdrs)
      rd_kafka_headers_destroy(hdrs);
    brw_log_error("out of memory keeping a failed record; it will be "
                  "replayed from its input offset after a restart");
    return;
  }
  b->not_before = uv_now(k->loop) + REDELIVER_MS;
  brw_list_insert_tail(&k->backlog, &b->node);
  k->nbacklog++;
}

/* The application's headers become librdkafka's here, once: the backlog
 * and the retries keep librdkafka's copy. */
int brw_kafka_produce(brw_kafka_t *k, const brw_kafka_record_t *rec) {
  if (k->fatal || !k->rk_p) {
    brw_headers_free(rec->headers);
    return BRW_EFATAL;
  }
  rd_kafka_headers_t *rh = headers_to_rd(rec->headers);
  if (k->nbacklog == 0) {
    rd_kafka_resp_err_t err =
        try_produce(k, rec->topic, rec->key, rec->key_len, rec->value,
                    rec->value_len, rh, rec->opaque);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      brw_headers_free(rec->headers); /* librdkafka owns rh now */
      return 0;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
      if (rh)
        rd_kafka_headers_destroy(rh);
      brw_headers_free(rec->headers);
      return BRW_EFATAL;
    }
    if (brw_record_refusal_permanent(err)) {
      /* The handler borrows the headers; they are still ours after it. */
      refuse(k, rec, err);
      if (rh)
        rd_kafka_headers_destroy(rh);
      brw_headers_free(rec->headers);
      return 0;
    }
    if (k->eo && err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      /* Exactly once: the transaction cannot take it (its producer is in
       * an abortable state, __STATE): the caller aborts and redoes. */
      if (rh)
        rd_kafka_headers_destroy(rh);
      brw_headers_free(rec->headers);
      return BRW_EKAFKA;
    }
  }
  brw_headers_free(rec->headers);
  backlog_rec_t *b = backlog_new(rec->topic, rec->key, rec->key_len, rec->value,
                                 rec->value_len, rh, rec->opaque);
  if (!b) {
    if (rh)
      rd_kafka_headers_destroy(rh);
    return BRW_ENOMEM;
  }
  brw_list_insert_tail(&k->backlog, &b->node);
  k->nbacklog++;
  return 0;
}

size_t brw_kafka_backlog(const brw_kafka_t *k) {
  return k->nbacklog;
}

size_t brw_kafka_in_flight(const brw_kafka_t *k) {
  return k->in_flight + k->nbacklog;
}

/* ---- exactly once: the transactional calls ----
 *
 * They block, so they run on libuv's pool, one at a time; the work function
 * touches only its txw_t (and the producer, whose API is thread-safe), the
 * after-work callback hands the result to the application on the loop. The
 * producer's events keep being served on the loop meanwhile (drain_events),
 * which is what commit and abort wait for. */

static void release_clients(brw_kafka_t *k);
static void on_timer(uv_timer_t *t);

typedef struct txw_s {
  uv_work_t req;
  brw_kafka_t *k;
  brw_txn_call_t call;
  rd_kafka_t *rk;         /* the producer it runs on; REBUILD: the old one,
                             destroyed by the work (may be NULL) */
  rd_kafka_t *made;       /* REBUILD: the new producer */
  rd_kafka_conf_t *conf;  /* REBUILD: the configuration it is made from */
  rd_kafka_topic_partition_list_t *offsets;  /* COMMIT: to send; REBUILD:
                                                to read back; or NULL */
  rd_kafka_t *rk_c;       /* REBUILD: the consumer, for the read */
  int read_ok;            /* REBUILD: `offsets` hold what was read */
  rd_kafka_consumer_group_metadata_t *cgmd;  /* COMMIT, with offsets */
  int offsets_sent;       /* COMMIT: send_offsets went through */
  brw_txn_result_t result;
  char reason[512];
} txw_t;

static void txw_free(txw_t *w) {
  if (w->offsets)
    rd_kafka_topic_partition_list_destroy(w->offsets);
  if (w->cgmd)
    rd_kafka_consumer_group_metadata_destroy(w->cgmd);
  if (w->conf)
    rd_kafka_conf_destroy(w->conf);
  free(w);
}

/* The class of a transactional error (docs/transactions.md): fatal first,
 * then requires-abort, then retriable; an error with none of the flags
 * (a call in the wrong state) cannot be cured by calling again: fatal. */
static brw_txn_result_t txn_class(rd_kafka_error_t *e, char *reason,
                                  size_t len) {
  if (!e) {
    reason[0] = '\0';
    return BRW_TXN_OK;
  }
  snprintf(reason, len, "%s: %s", rd_kafka_error_name(e),
           rd_kafka_error_string(e));
  brw_txn_result_t r = rd_kafka_error_is_fatal(e) ? BRW_TXN_FATAL
                       : rd_kafka_error_txn_requires_abort(e)
                           ? BRW_TXN_REQUIRES_ABORT
                       : rd_kafka_error_is_retriable(e) ? BRW_TXN_RETRIABLE
                                                        : BRW_TXN_FATAL;
  rd_kafka_error_destroy(e);
  return r;
}

static void txw_work(uv_work_t *req) {
  txw_t *w = req->data;
  rd_kafka_error_t *e = NULL;
  switch (w->call) {
  case BRW_TXN_CALL_INIT:
    e = rd_kafka_init_transactions(w->rk, TXN_CALL_TIMEOUT_MS);
    break;
  case BRW_TXN_CALL_COMMIT:
    if (w->offsets) {
      e = rd_kafka_send_offsets_to_transaction(w->rk, w->offsets, w->cgmd,
                                               TXN_CALL_TIMEOUT_MS);
      if (e)
        break;
      w->offsets_sent = 1;
    }
    e = rd_kafka_commit_transaction(w->rk, TXN_CALL_TIMEOUT_MS);
    break;
  case BRW_TXN_CALL_ABORT:
    e = rd_kafka_abort_transaction(w->rk, TXN_CALL_TIMEOUT_MS);
    break;
  case BRW_TXN_CALL_REBUILD: {
    char err[256];
    if (w->rk)
      rd_kafka_destroy(w->rk);
    w->rk = NULL;
    w->made = rd_kafka_new(RD_KAFKA_PRODUCER, w->conf, err, sizeof(err));
    if (!w->made) {
      snprintf(w->reason, sizeof(w->reason), "cannot make the producer: %s",
               err);
      w->result = BRW_TXN_FATAL;
      return;
    }
    w->conf = NULL; /* the producer's now */
    e = rd_kafka_init_transactions(w->made, TXN_CALL_TIMEOUT_MS);
    /* The old producer's transaction is committed or aborted by now: what
     * the group's offsets say tells the application which of its records
     * are published already. */
    if (!e && w->offsets && w->rk_c)
      w->read_ok = rd_kafka_committed(w->rk_c, w->offsets,
                                      TXN_CALL_TIMEOUT_MS) ==
                   RD_KAFKA_RESP_ERR_NO_ERROR;
    break;
  }
  case BRW_TXN_CALL_NONE:
    break;
  }
  w->result = txn_class(e, w->reason, sizeof(w->reason));
}

/* The producer leaves the loop (REBUILD): its queue no longer wakes it,
 * and what it had in flight is forgotten (the application keeps every
 * record of an uncommitted transaction and produces it again). */
static void producer_detach(brw_kafka_t *k) {
  if (k->qp.rkqu) {
    rd_kafka_queue_io_event_enable(k->qp.rkqu, -1, NULL, 0);
    rd_kafka_queue_destroy(k->qp.rkqu);
    k->qp.rkqu = NULL;
  }
  k->rk_p = NULL;
  k->in_flight = 0;
}

/* A new producer joins the loop, on the same wake-up pipe. */
static void producer_attach(brw_kafka_t *k, rd_kafka_t *rk) {
  k->rk_p = rk;
  rd_kafka_set_log_queue(rk, NULL);
  k->qp.rkqu = rd_kafka_queue_get_main(rk);
  rd_kafka_queue_io_event_enable(k->qp.rkqu, k->qp.pipe[1], "1", 1);
  k->all_down_p = 0;
  k->reached[1] = 0;
  k->auth_why[1][0] = '\0';
  k->verify_why[1][0] = '\0';
  set_connection(k);
  /* Anything queued before the wake-up was enabled. */
  uv_timer_start(&k->timer, on_timer, 0, SAFETY_MS);
}

static void backlog_clear(brw_kafka_t *k) {
  while (!brw_list_empty(&k->backlog)) {
    backlog_rec_t *b = brw_list_entry(k->backlog.next, backlog_rec_t, node);
    brw_list_remove(&b->node);
    backlog_free(b);
  }
  k->nbacklog = 0;
}

static void txw_done(uv_work_t *req, int status) {
  txw_t *w = req->data;
  brw_kafka_t *k = w->k;
  k->txw = NULL;
  if (w->made) {
    if (k->closing)
      rd_kafka_destroy(w->made);
    else
      producer_attach(k, w->made);
    w->made = NULL;
  }
  if (w->offsets_sent)
    k->offsets_sent = 1;
  brw_txn_call_t call = w->call;
  brw_txn_result_t result = status ? BRW_TXN_FATAL : w->result;
  char reason[sizeof(w->reason)];
  snprintf(reason, sizeof(reason), "%s",
           status ? uv_strerror(status) : w->reason);
  brw_kafka_positions_t committed = {0};
  int have = call == BRW_TXN_CALL_REBUILD && result == BRW_TXN_OK &&
             w->read_ok && positions_from_rd(w->offsets, &committed) == 0;
  txw_free(w);
  if (k->closing) {
    brw_kafka_positions_clear(&committed);
    release_clients(k);
    return;
  }
  if (k->h.on_txn_done)
    k->h.on_txn_done(k->h.ctx, call, result, reason[0] ? reason : NULL,
                     have ? &committed : NULL);
  brw_kafka_positions_clear(&committed);
}

static int txw_start(brw_kafka_t *k, txw_t *w) {
  int r = uv_queue_work(k->loop, &w->req, txw_work, txw_done);
  if (r != 0) {
    brw_log_error("cannot start a transactional call: %s", uv_strerror(r));
    txw_free(w);
    return BRW_ENOMEM;
  }
  k->txw = w;
  return 0;
}

/* A commit held while the backlog was produced: the backlog is empty. */
static void txw_release_held(brw_kafka_t *k) {
  txw_t *w = k->txw_held;
  k->txw_held = NULL;
  w->rk = k->rk_p;
  if (txw_start(k, w) != 0 && k->h.on_txn_done)
    k->h.on_txn_done(k->h.ctx, BRW_TXN_CALL_COMMIT, BRW_TXN_RETRIABLE,
                     "out of memory", NULL);
}

int brw_kafka_transactional(const brw_kafka_t *k) {
  return k->eo;
}

const char *brw_kafka_producer_error(const brw_kafka_t *k) {
  return k->producer_error;
}

int brw_kafka_txn_begin(brw_kafka_t *k) {
  if (!k->eo || !k->rk_p)
    return BRW_EKAFKA;
  char reason[512];
  rd_kafka_error_t *e = rd_kafka_begin_transaction(k->rk_p);
  k->offsets_sent = 0;
  if (!e)
    return 0;
  txn_class(e, reason, sizeof(reason));
  brw_logj(BRW_LOG_WARN, NULL, "cannot begin a transaction: %s", reason);
  return BRW_EKAFKA;
}

int brw_kafka_txn_call(brw_kafka_t *k, brw_txn_call_t call,
                       const brw_kafka_positions_t *offsets) {
  if (!k->eo || k->txw || k->txw_held || k->closing ||
      call == BRW_TXN_CALL_NONE)
    return BRW_EINVAL;
  txw_t *w = calloc(1, sizeof(*w));
  if (!w)
    return BRW_ENOMEM;
  w->req.data = w;
  w->k = k;
  w->call = call;
  w->rk = k->rk_p;
  switch (call) {
  case BRW_TXN_CALL_COMMIT:
    if (!k->offsets_sent && offsets && offsets->cnt > 0 && k->rk_c &&
        !k->consumer_closed) {
      w->cgmd = rd_kafka_consumer_group_metadata(k->rk_c);
      if (w->cgmd)
        w->offsets = positions_to_rd(k, offsets);
    }
    if (k->nbacklog > 0) {
      /* Every record of the transaction goes before its commit: the
       * backlog is produced first (flush_backlog starts the commit). */
      k->txw_held = w;
      return 0;
    }
    break;
  case BRW_TXN_CALL_ABORT:
    backlog_clear(k);
    break;
  case BRW_TXN_CALL_REBUILD:
    backlog_clear(k);
    w->conf = rd_kafka_conf_dup(k->pconf);
    if (!w->conf) {
      free(w);
      return BRW_ENOMEM;
    }
    if (offsets && offsets->cnt > 0 && k->rk_c && !k->consumer_closed) {
      w->offsets = positions_to_rd(k, offsets);
      w->rk_c = k->rk_c;
    }
    producer_detach(k);
    break;
  default:
    break;
  }
  if (!w->rk && call != BRW_TXN_CALL_REBUILD) {
    txw_free(w);
    return BRW_EINVAL;
  }
  return txw_start(k, w);
}

/* ---- the real backlog ----
 *
 * The input events not read yet on the partitions held
 * (include/brw/backlog.h does the arithmetic): `held` follows the
 * assignment (rebal_apply), each statistics object of the consumer
 * refreshes its numbers (on_stats), and while consumption is paused a
 * round of watermark queries on libuv's pool refreshes their ends.
 *
 * Why the queries: librdkafka learns a partition's high watermark (and
 * last stable offset) only from its fetch answers (rdkafka_fetcher.c sets
 * rktp_hi_offset from the FetchResponse), and a paused partition is not
 * fetched (rd_kafka_toppar_fetch_decide: "paused"); its periodic
 * consumer-lag request (rd_kafka_toppar_consumer_lag_req) asks only for
 * the low watermark, and not at all from brokers with Fetch v5 or later.
 * So while paused, exactly when the backlog matters, the statistics keep
 * the end of the last fetch. rd_kafka_query_watermark_offsets blocks (a
 * ListOffsets round trip, with the consumer's isolation.level): it runs
 * on the pool, bounded, one round at a time. */

static void release_clients(brw_kafka_t *k);

/* The entry of held partition p, or NULL. */
static brw_backlog_part_t *held_find(brw_kafka_t *k, int32_t p) {
  for (size_t i = 0; i < k->nheld; i++)
    if (k->held[i].partition == p)
      return &k->held[i];
  return NULL;
}

/* Partition p is assigned (again): its numbers start unknown. Out of
 * memory it is not counted. */
static void held_add(brw_kafka_t *k, int32_t p) {
  brw_backlog_part_t *e = held_find(k, p);
  if (!e) {
    if (k->nheld == k->capheld) {
      size_t ncap = k->capheld ? 2 * k->capheld : 16;
      brw_backlog_part_t *n = realloc(k->held, ncap * sizeof(*n));
      if (!n)
        return;
      k->held = n;
      k->capheld = ncap;
    }
    e = &k->held[k->nheld++];
  }
  brw_backlog_part_init(e, p);
}

static void held_remove(brw_kafka_t *k, int32_t p) {
  brw_backlog_part_t *e = held_find(k, p);
  if (e)
    *e = k->held[--k->nheld];
}

/* The committed offsets an assignment read (the worker's own read, from
 * which consumption starts): a fallback for the position of a partition
 * nothing was read from yet. */
static void held_start(brw_kafka_t *k,
                       const rd_kafka_topic_partition_list_t *committed) {
  for (int i = 0; committed && i < committed->cnt; i++) {
    const rd_kafka_topic_partition_t *e = &committed->elems[i];
    brw_backlog_part_t *h = held_find(k, e->partition);
    if (h && !e->err)
      h->start = e->offset;
  }
}

/* How long a watermark answer counts. */
static uint64_t wm_fresh_ms(const brw_kafka_t *k) {
  return WM_FRESH_INTERVALS * k->stats_ms + WM_ROUND_MS;
}

static void unread_update(brw_kafka_t *k) {
  k->unread = brw_backlog_sum(k->held, k->nheld, k->reset, uv_now(k->loop),
                              wm_fresh_ms(k));
}

int64_t brw_kafka_unread(const brw_kafka_t *k) {
  return k->unread;
}

/* On a thread of libuv's pool: one query per partition of the round, each
 * bounded by WM_TIMEOUT_MS (librdkafka looks up the leader, then sends
 * two ListOffsets requests with that timeout); none is started after
 * WM_ROUND_MS, or once brw_kafka_close asked to stop. The consumer stays
 * valid until wm_done ran (release_clients waits for it). */
static void wm_work(uv_work_t *req) {
  wmark_t *w = req->data;
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < w->n; i++) {
    if (atomic_load(&w->stop) || (uv_hrtime() - t0) / 1000000 >= WM_ROUND_MS) {
      w->err[i] = RD_KAFKA_RESP_ERR__TIMED_OUT;
      continue;
    }
    w->err[i] = rd_kafka_query_watermark_offsets(
        w->rk, w->topic, w->part[i], &w->lo[i], &w->hi[i], WM_TIMEOUT_MS);
  }
}

/* On the loop thread: the answers become the partitions' query fields
 * (a partition no longer held is skipped). A failed query leaves the last
 * answer, which stops counting once it is too old: the backlog then reads
 * low (the statistics' stale end) rather than never changing. Failures are
 * logged at DEBUG, once a minute. */
static void wm_done(uv_work_t *req, int status) {
  wmark_t *w = req->data;
  brw_kafka_t *k = w->k;
  k->wm_busy = 0;
  if (k->closing) {
    release_clients(k);
    return;
  }
  uint64_t now = uv_now(k->loop);
  for (int i = 0; i < w->n; i++) {
    rd_kafka_resp_err_t err = status ? RD_KAFKA_RESP_ERR__DESTROY : w->err[i];
    brw_backlog_part_t *h = held_find(k, w->part[i]);
    if (!err && h) {
      h->qlo = w->lo[i];
      h->qend = w->hi[i];
      h->qat = now ? now : 1;
      continue;
    }
    uint64_t held = 0;
    char part[16];
    snprintf(part, sizeof(part), "%" PRId32, w->part[i]);
    if (err && brw_log_enabled(BRW_LOG_DEBUG) &&
        error_log_ok(k, err, "WMARK", &held))
      brw_logj(BRW_LOG_DEBUG,
               json_pack("{ss ss ss sI}", BRW_LF_TOPIC, w->topic,
                         BRW_LF_PARTITION, part, "error",
                         rd_kafka_err2name(err), "suppressed",
                         (json_int_t)held),
               "watermark query of a paused partition failed: %s",
               rd_kafka_err2str(err));
  }
  unread_update(k);
}

/* Starts a round of watermark queries while consumption is paused, unless
 * one is under way, no broker is up or the consumer is closing. From
 * on_stats: one round per statistics interval at most. */
static void wm_start(brw_kafka_t *k) {
  if (!k->paused || !k->nheld || k->wm_busy || k->closing ||
      k->consumer_closed || !k->up || !k->rk_c)
    return;
  wmark_t *w = &k->wm;
  w->req.data = w;
  w->k = k;
  w->rk = k->rk_c;
  w->topic = k->topic_input;
  w->n = k->nheld < WM_PARTS_MAX ? (int)k->nheld : WM_PARTS_MAX;
  for (int i = 0; i < w->n; i++)
    w->part[i] = k->held[(k->wm_next + (size_t)i) % k->nheld].partition;
  k->wm_next = (k->wm_next + (size_t)w->n) % k->nheld;
  atomic_store(&w->stop, 0);
  if (uv_queue_work(k->loop, &w->req, wm_work, wm_done) == 0)
    k->wm_busy = 1;
}

/* ---- rebalances ----
 *
 * The rebalance callback only queues the event; the events are handled one
 * at a time, on the loop, without blocking it:
 * - an assignment first reads the group's committed offsets and their
 *   metadata (the completed-offset maps) on libuv's pool, then hands them to
 *   on_assign and assigns the partitions;
 * - a revocation pauses the partitions and hands them to on_revoke, which
 *   waits for the reports under way through callbacks and commits, then
 *   calls brw_kafka_revoke_done; only then are they unassigned.
 * librdkafka's group state waits for the assign or unassign call, whenever
 * it comes. Inside rd_kafka_consumer_close (shutdown), which serves the
 * callback itself and waits for it, everything is done at once. */

static void rebal_next(brw_kafka_t *k);

static void rebal_free(rebal_t *op) {
  if (!op)
    return;
  rd_kafka_topic_partition_list_destroy(op->parts);
  free(op);
}

/* Hands a revocation to the application. Out of memory for the list, it
 * gets an empty one: the partitions leave without a commit and the next
 * owner replays them. */
static void revoke_call(brw_kafka_t *k, const rebal_t *op, int now) {
  brw_kafka_positions_t l;
  positions_from_rd(op->parts, &l);
  k->h.on_revoke(k->h.ctx, &l, op->lost, now);
  brw_kafka_positions_clear(&l);
}

/* Calls the assign or unassign that the protocol wants. */
static void rebal_apply(brw_kafka_t *k, const rebal_t *op) {
  rd_kafka_error_t *e = NULL;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (op->assign && op->coop)
    e = rd_kafka_incremental_assign(k->rk_c, op->parts);
  else if (op->assign)
    err = rd_kafka_assign(k->rk_c, op->parts);
  else if (op->coop)
    e = rd_kafka_incremental_unassign(k->rk_c, op->parts);
  else
    err = rd_kafka_assign(k->rk_c, NULL);
  if (e || err)
    brw_logj(BRW_LOG_ERROR,
             json_pack("{ss}", "error",
                       rd_kafka_err2name(e ? rd_kafka_error_code(e) : err)),
             "%s: %s", op->assign ? "assign" : "unassign",
             e ? rd_kafka_error_string(e) : rd_kafka_err2str(err));
  if (e)
    rd_kafka_error_destroy(e);
  /* The partitions held: an eager assignment replaces them all, an eager
   * revocation ends them all, an incremental one adds or removes its own. */
  if (!op->coop)
    k->nheld = 0;
  for (int i = 0; i < op->parts->cnt; i++) {
    if (op->assign)
      held_add(k, op->parts->elems[i].partition);
    else if (op->coop)
      held_remove(k, op->parts->elems[i].partition);
  }
  k->wm_next = 0;
  unread_update(k);
  /* A partition paused while it was revoked (see rebal_next) and assigned
   * again fetches unless intake is paused. */
  if (op->assign && k->paused)
    rd_kafka_pause_partitions(k->rk_c, op->parts);
  else if (op->assign)
    rd_kafka_resume_partitions(k->rk_c, op->parts);
}

/* An assignment whose committed offsets are known (or could not be read:
 * the elements carry the error): the application takes the partitions,
 * then they are assigned. */
static void assign_done(brw_kafka_t *k, rebal_t *op,
                        const rd_kafka_topic_partition_list_t *committed) {
  if (k->h.on_assign) {
    brw_kafka_positions_t l;
    if (positions_from_rd(committed, &l) != 0) {
      /* Without their positions the partitions replay from the committed
       * offsets, as after a failed read. */
      positions_from_rd(op->parts, &l);
      for (int i = 0; i < l.cnt; i++)
        l.elems[i].err = RD_KAFKA_RESP_ERR__FAIL;
    }
    k->h.on_assign(k->h.ctx, &l);
    brw_kafka_positions_clear(&l);
  }
  rebal_apply(k, op);
  held_start(k, committed);
  k->rebal = NULL;
  rebal_free(op);
}

/* The first partition error of a read, or 0. */
static rd_kafka_resp_err_t part_error(const rd_kafka_topic_partition_list_t *l) {
  for (int i = 0; l && i < l->cnt; i++)
    if (l->elems[i].err)
      return l->elems[i].err;
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

/* Exactly once: a read that fails is tried again, COMMITTED_EO_ATTEMPTS
 * times per round on the pool, then the loop starts another round (and
 * logs). A previous owner's transaction that holds offsets pending makes
 * the broker answer UNSTABLE_OFFSET_COMMIT (librdkafka retries it until
 * the call's timeout) until the transaction commits or the broker aborts
 * it (transaction.timeout.ms, then its cleanup interval): without the
 * completed-offset map the partitions would report again what that owner
 * committed. */
#define COMMITTED_EO_ATTEMPTS 6
#define COMMITTED_EO_PAUSE_US 500000

static void cread_work(uv_work_t *req) {
  cread_t *r = req->data;
  for (int i = 0;; i++) {
    r->err = rd_kafka_committed(r->rk, r->parts, COMMITTED_TIMEOUT_MS);
    if (!r->eo || (!r->err && !part_error(r->parts)) ||
        i + 1 >= COMMITTED_EO_ATTEMPTS || atomic_load(&r->stop))
      return;
    usleep(COMMITTED_EO_PAUSE_US);
  }
}

static void close_step(brw_kafka_t *k);
static void destroy_clients(brw_kafka_t *k);

/* Once the clients are closing and no job on libuv's pool (the metadata
 * probe, a committed-offset read) uses them any more, they are destroyed:
 * from brw_kafka_close, or from the last job's after-work callback. */
static void release_clients(brw_kafka_t *k) {
  if (!k->closing || k->probing || k->creads || k->txw || k->wm_busy)
    return;
  destroy_clients(k);
  close_step(k);
}

/* The read is over: on the loop thread. */
static void cread_done(uv_work_t *req, int status) {
  cread_t *r = req->data;
  brw_kafka_t *k = r->k;
  k->creads--;
  if (k->cread == r)
    k->cread = NULL;
  if (r->abandoned) {
    rd_kafka_topic_partition_list_destroy(r->parts);
    free(r);
    release_clients(k);
    return;
  }
  rd_kafka_resp_err_t err = status ? RD_KAFKA_RESP_ERR__DESTROY : r->err;
  if (r->eo && !k->closing && (err || part_error(r->parts))) {
    rd_kafka_resp_err_t e = err ? err : part_error(r->parts);
    uint64_t held = 0;
    if (error_log_ok(k, e, "OFFSETREAD", &held))
      brw_logj(BRW_LOG_WARN,
               json_pack("{ss sI}", "error", rd_kafka_err2name(e),
                         "suppressed", (json_int_t)held),
               "cannot read the group's committed offsets yet: %s; the new "
               "partitions wait and the read goes on (exactly once: without "
               "their completed-offset maps, what a previous owner "
               "committed would be reported again)",
               rd_kafka_err2str(e));
    if (uv_queue_work(k->loop, &r->req, cread_work, cread_done) == 0) {
      k->cread = r;
      k->creads++;
      return;
    }
  }
  if (err) {
    brw_logj(BRW_LOG_WARN, json_pack("{ss}", "error", rd_kafka_err2name(err)),
             "cannot read committed offsets: %s; the new partitions replay "
             "from their committed offsets, skipping nothing",
             rd_kafka_err2str(err));
    for (int i = 0; i < r->parts->cnt; i++)
      if (!r->parts->elems[i].err)
        r->parts->elems[i].err = err;
  }
  assign_done(k, k->rebal, r->parts);
  rd_kafka_topic_partition_list_destroy(r->parts);
  free(r);
  rebal_next(k);
}

/* Starts the event at the head of the queue, unless one is under way. */
static void rebal_next(brw_kafka_t *k) {
  while (!k->rebal && k->rebal_head && !k->closing) {
    rebal_t *op = k->rebal_head;
    k->rebal_head = op->next;
    if (!k->rebal_head)
      k->rebal_tail = NULL;
    op->next = NULL;
    k->rebal = op;
    if (op->assign) {
      cread_t *r = calloc(1, sizeof(*r));
      if (r) {
        r->req.data = r;
        r->k = k;
        r->rk = k->rk_c;
        r->eo = k->eo;
        r->parts = rd_kafka_topic_partition_list_copy(op->parts);
      }
      if (r && r->parts &&
          uv_queue_work(k->loop, &r->req, cread_work, cread_done) == 0) {
        k->cread = r;
        k->creads++;
        return; /* cread_done goes on */
      }
      if (r && r->parts)
        rd_kafka_topic_partition_list_destroy(r->parts);
      free(r);
      /* No read: the partitions replay from their committed offsets. */
      rd_kafka_topic_partition_list_t *c =
          rd_kafka_topic_partition_list_copy(op->parts);
      for (int i = 0; i < c->cnt; i++)
        c->elems[i].err = RD_KAFKA_RESP_ERR__FAIL;
      assign_done(k, op, c);
      rd_kafka_topic_partition_list_destroy(c);
      continue;
    }
    /* A revocation: stop fetching what is leaving, then let the
     * application hand it over. It calls brw_kafka_revoke_done, perhaps
     * from inside on_revoke. */
    if (!op->lost)
      rd_kafka_pause_partitions(k->rk_c, op->parts);
    if (k->h.on_revoke)
      revoke_call(k, op, 0);
    else
      brw_kafka_revoke_done(k);
  }
}

void brw_kafka_revoke_done(brw_kafka_t *k) {
  rebal_t *op = k->rebal;
  if (!op || op->assign)
    return;
  if (!k->consumer_closed)
    rebal_apply(k, op);
  k->rebal = NULL;
  rebal_free(op);
  if (!k->in_close)
    rebal_next(k);
}

/* Inside rd_kafka_consumer_close, or when the consumer is about to close:
 * the events under way and queued are handled at once. An assignment whose
 * read is still on the pool is assigned without the application (the close
 * revokes it right after: nothing was consumed from it); a revocation the
 * application has not finished is unassigned (its records in flight are
 * abandoned and replayed, as at any close). */
static void rebal_finish_now(brw_kafka_t *k) {
  if (k->rebal) {
    rebal_t *op = k->rebal;
    if (op->assign && k->cread) {
      k->cread->abandoned = 1;
      atomic_store(&k->cread->stop, 1);
      k->cread = NULL;
    }
    rebal_apply(k, op);
    k->rebal = NULL;
    rebal_free(op);
  }
  while (k->rebal_head) {
    rebal_t *op = k->rebal_head;
    k->rebal_head = op->next;
    if (!k->rebal_head)
      k->rebal_tail = NULL;
    k->rebal = op;
    if (!op->assign && k->h.on_revoke)
      revoke_call(k, op, 1);
    if (k->rebal) { /* the handler did not call brw_kafka_revoke_done */
      rebal_apply(k, op);
      k->rebal = NULL;
      rebal_free(op);
    }
  }
}

/* rebalance_cb: on the loop thread, from rd_kafka_consumer_poll (or from
 * rd_kafka_consumer_close). Errors other than assign and revoke are handled
 * as a revocation of everything, as librdkafka asks. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
  brw_kafka_t *k = opaque;
  const char *proto = rd_kafka_rebalance_protocol(rk);
  int coop = proto && !strcmp(proto, "COOPERATIVE");
  int assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
  int lost = !assign && rd_kafka_assignment_lost(rk);
  if (assign || err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
    brw_logj(BRW_LOG_INFO,
             json_pack("{si ss sb}", "count", parts->cnt, "protocol",
                       coop ? "cooperative" : "eager", "lost", lost),
             "partitions %s", assign ? "assigned" : "revoked");
  else
    brw_logj(BRW_LOG_WARN, json_pack("{ss}", "error", rd_kafka_err2name(err)),
             "rebalance failed: %s; the assignment is cleared",
             rd_kafka_err2str(err));
  rebal_t *op = calloc(1, sizeof(*op));
  rd_kafka_topic_partition_list_t *copy =
      op ? rd_kafka_topic_partition_list_copy(parts) : NULL;
  if (!op || !copy) {
    /* Out of memory: librdkafka's state must still move on. */
    brw_log_error("out of memory in a rebalance; the partitions are %s "
                  "without the application",
                  assign ? "assigned" : "revoked");
    rebal_t tmp = {.assign = assign, .coop = coop, .parts = parts};
    rebal_apply(k, &tmp);
    free(op);
    return;
  }
  op->assign = assign;
  op->lost = lost;
  op->coop = coop;
  op->parts = copy;
  if (k->rebal_tail)
    k->rebal_tail->next = op;
  else
    k->rebal_head = op;
  k->rebal_tail = op;
  if (k->in_close)
    rebal_finish_now(k);
  else
    rebal_next(k);
}

/* A commit refused because the group's generation (or, with KIP-848, the
 * member's epoch) moved on while it was under way: an ordinary part of an
 * incremental rebalance, not a fault. */
static int commit_crossed_rebalance(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION ||
         err == RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS ||
#if RD_KAFKA_VERSION >= 0x020c0000
         err == RD_KAFKA_RESP_ERR_STALE_MEMBER_EPOCH ||
#endif
         err == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID;
}

/* The result of an asynchronous commit: on the loop thread, served from
 * the consumer queue (rd_kafka_commit_queue). */
static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque) {
  brw_kafka_t *k = opaque;
  if (k->commits_in_flight > 0)
    k->commits_in_flight--;
  if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
    return;
  int failed = err != RD_KAFKA_RESP_ERR_NO_ERROR;
  for (int i = 0; !failed && offsets && i < offsets->cnt; i++)
    if (offsets->elems[i].err)
      failed = 1;
  rd_kafka_resp_err_t e0 = err ? err : failed ? offsets->elems[0].err : 0;
  if (failed)
    brw_metrics_inc(k->m, BRW_M_COMMIT_FAILURES, NULL, 1);
  if (failed)
    brw_logj(commit_crossed_rebalance(e0) ? BRW_LOG_INFO : BRW_LOG_WARN,
             json_pack("{ss}", "error", rd_kafka_err2name(e0)),
             commit_crossed_rebalance(e0)
                 ? "offset commit crossed a rebalance; sent again at the "
                   "next commit"
                 : "offset commit failed; retried at the next commit");
  else if (rk == k->rk_c)
    mark_up(k, rk);
  if (offsets && k->h.on_commit_done) {
    brw_kafka_positions_t l;
    if (positions_from_rd(offsets, &l) != 0)
      return; /* the next commit tick sends what changed */
    k->h.on_commit_done(k->h.ctx, err, &l);
    brw_kafka_positions_clear(&l);
  }
}

/* stats_cb: on the loop thread (statistics are served from the consumer
 * queue). Sums consumer_lag over the partitions this member fetches. Returns
 * 0: librdkafka frees the JSON. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
  brw_kafka_t *k = opaque;
  json_t *root = json_loadb(json, len, 0, NULL);
  /* A broker in state UP means the client reaches the cluster again, even
   * when no message or delivery report says so (an idle input topic). */
  const char *bname;
  json_t *b;
  json_object_foreach(json_object_get(root, "brokers"), bname, b) {
    const char *state = json_string_value(json_object_get(b, "state"));
    if (json_integer_value(json_object_get(b, "nodeid")) >= 0 && state &&
        !strcmp(state, "UP")) {
      mark_up(k, rk);
      break;
    }
  }
  if (rk == k->rk_c) {
    json_t *topics = json_object_get(root, "topics");
    int64_t sum = 0;
    int known = 0;
    const char *tname;
    json_t *t;
    json_object_foreach(topics, tname, t) {
      const char *pname;
      json_t *p;
      json_object_foreach(json_object_get(t, "partitions"), pname, p) {
        json_int_t id = json_integer_value(json_object_get(p, "partition"));
        json_t *lag = json_object_get(p, "consumer_lag");
        if (id < 0 || !json_is_integer(lag) || json_integer_value(lag) < 0)
          continue;
        sum += json_integer_value(lag);
        known = 1;
      }
    }
    if (known)
      brw_metrics_set(k->m, BRW_M_CONSUMER_LAG, NULL, (double)sum);
    /* The real backlog: the held partitions' numbers, then a watermark
     * round for them while paused (their ends no longer move here). */
    if (k->nheld) {
      brw_backlog_read_stats(root, k->topic_input, k->read_committed, k->held,
                             k->nheld);
      unread_update(k);
      wm_start(k);
    }
  }
  json_decref(root);
  return 0;
}

static void probe_soon(brw_kafka_t *k);

/* An error from the consumer queue. librdkafka reports a subscribed topic
 * that does not exist (or that this client may not read) this way, once per
 * change: the topic is marked missing at once, and the metadata probe
 * checks again soon, since only the probe clears it. The application's
 * health registry says so; the line itself goes to debug. Other errors are
 * logged once, then at most once a minute per code. */
static void consumer_error(brw_kafka_t *k, const rd_kafka_message_t *rkm) {
  if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
    return;
  /* A consumer's fatal error (KIP-848 fencing a duplicate
   * group.instance.id, say) arrives here, not through error_cb. */
  if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
    go_fatal(k, k->rk_c);
    return;
  }
  if (rkm->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
      rkm->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
      rkm->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
    const char *name = rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : NULL;
    if (!name || !strcmp(name, k->topics[BRW_KAFKA_INPUT])) {
      k->topic_state[BRW_KAFKA_INPUT] = BRW_TOPIC_MISSING;
      k->topic_err[BRW_KAFKA_INPUT] = rkm->err;
      probe_soon(k);
      brw_logj(BRW_LOG_DEBUG,
               json_pack("{ss}", "error", rd_kafka_err2name(rkm->err)),
               "consumer: %s", rd_kafka_message_errstr(rkm));
      return;
    }
  }
  uint64_t suppressed = 0;
  if (!error_log_ok(k, rkm->err, NULL, &suppressed))
    return;
  brw_logj(BRW_LOG_WARN,
           json_pack("{ss sI}", "error", rd_kafka_err2name(rkm->err),
                     "suppressed", (json_int_t)suppressed),
           "consumer: %s", rd_kafka_message_errstr(rkm));
}

/* Exactly once: the transactional producer's queue is served as events,
 * not callbacks. commit_transaction and abort_transaction, on libuv's
 * pool, wait for the delivery reports of the transaction's records; with
 * callbacks they would serve the queue themselves, running the
 * application's handlers on that thread. With events they only wait for
 * the count of records to reach zero while this drain, on the loop, hands
 * each report and line to the same handlers as the callbacks do. */
static int drain_events(brw_kafka_t *k) {
  int more = 1;
  for (int i = 0; i < DRAIN_BATCH / 100 && k->rk_p; i++) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(k->qp.rkqu, 0);
    if (!ev) {
      more = 0;
      break;
    }
    rd_kafka_t *rk = k->rk_p;
    switch (rd_kafka_event_type(ev)) {
    case RD_KAFKA_EVENT_DR: {
      const rd_kafka_message_t *m;
      while ((m = rd_kafka_event_message_next(ev)))
        on_delivery(rk, m, k);
      break;
    }
    case RD_KAFKA_EVENT_ERROR:
      on_error(rk,
               rd_kafka_event_error_is_fatal(ev) ? RD_KAFKA_RESP_ERR__FATAL
                                                 : rd_kafka_event_error(ev),
               rd_kafka_event_error_string(ev), k);
      break;
    case RD_KAFKA_EVENT_LOG: {
      const char *fac = NULL, *str = NULL;
      int level = 6;
      if (rd_kafka_event_log(ev, &fac, &str, &level) == 0 && str)
        log_kafka(rk, level, fac, str);
      break;
    }
    case RD_KAFKA_EVENT_STATS: {
      const char *j = rd_kafka_event_stats(ev);
      if (j)
        on_stats(rk, (char *)j, strlen(j), k);
      break;
    }
    default:
      break;
    }
    rd_kafka_event_destroy(ev);
  }
  flush_backlog(k);
  return more;
}

/* Serves one queue: consumer messages (with rebalances, commits, logs and
 * errors as callbacks) or producer events (delivery reports, logs, errors).
 * Stops after DRAIN_BATCH items and returns 1 (more may be waiting): the
 * caller lets the `more` idle handle go on at the next loop iteration, so
 * the loop stays responsive under a flood. Returns 0 when the queue is
 * empty. */
static int drain_queue(qbridge_t *q) {
  brw_kafka_t *k = q->k;
  char tmp[64];
  while (read(q->pipe[0], tmp, sizeof(tmp)) > 0)
    ;
  if (q->is_consumer) {
    if (!k->rk_c || k->consumer_closed)
      return 0;
    for (int i = 0; i < DRAIN_BATCH; i++) {
      rd_kafka_message_t *rkm = rd_kafka_consumer_poll(k->rk_c, 0);
      if (!rkm)
        return 0;
      if (rkm->err) {
        consumer_error(k, rkm);
      } else {
        mark_up(k, k->rk_c);
        brw_kafka_message_t msg = {
            rkm->partition, rkm->offset, rkm->key, rkm->key_len,
            rkm->payload,   rkm->len,    rkm};
        if (k->h.on_message)
          k->h.on_message(k->h.ctx, &msg);
      }
      rd_kafka_message_destroy(rkm);
    }
  } else {
    if (!k->rk_p)
      return 0;
    if (k->eo)
      return drain_events(k);
    int more = 1;
    for (int i = 0; i < DRAIN_BATCH / 100; i++) {
      if (rd_kafka_poll(k->rk_p, 0) == 0) {
        more = 0;
        break;
      }
    }
    flush_backlog(k);
    return more;
  }
  return 1; /* the batch ran out: more may be waiting */
}

static void on_more(uv_idle_t *idle);

/* Goes on with a drain that stopped at its batch limit on the next loop
 * iteration, or stops doing so when the queues are empty. Not a 0 ms timer:
 * libuv 1.44 runs a timer restarted with 0 ms from its own callback again in
 * the same pass of the timer phase, so a flood kept the loop in that phase
 * until the queue was empty. An idle handle runs once per iteration, and
 * while it is active the poll phase does not block, so I/O is served
 * between two batches. */
static void set_more(brw_kafka_t *k, int more) {
  if (k->closing)
    return;
  if (more)
    uv_idle_start(&k->more, on_more);
  else
    uv_idle_stop(&k->more);
}

static void on_queue_readable(uv_poll_t *poll, int status, int events) {
  qbridge_t *q = poll->data;
  if (drain_queue(q))
    set_more(q->k, 1);
}

/* One batch of each queue per loop iteration while either has more. */
static void on_more(uv_idle_t *idle) {
  brw_kafka_t *k = idle->data;
  int more = drain_queue(&k->qc);
  more |= drain_queue(&k->qp);
  set_more(k, more);
}

/* The safety drain (a wake-up may be missed) and the backlog retries; and
 * producer_queue_records. */
static void on_timer(uv_timer_t *t) {
  brw_kafka_t *k = t->data;
  brw_metrics_set(k->m, BRW_M_PRODUCER_QUEUE_RECORDS, NULL,
                  (double)brw_kafka_in_flight(k));
  int more = drain_queue(&k->qc);
  more |= drain_queue(&k->qp);
  if (more)
    set_more(k, 1);
}

/* ---- the topic metadata probe ---- */

static void on_probe_timer(uv_timer_t *t);
static void probe_done(uv_work_t *req, int status);

/* On a thread of libuv's pool: one metadata request per topic, each bounded
 * by PROBE_TIMEOUT_MS. rd_kafka_metadata() is thread-safe; the handles stay
 * valid until the after-work callback ran (brw_kafka_close waits for it). A
 * topic is missing when the broker says UNKNOWN_TOPIC_OR_PART (or that this
 * client may not see it); it exists when it has partitions; anything else (no
 * broker reachable, a timeout, a topic being created) leaves it as it was. */
static void probe_work(uv_work_t *req) {
  probe_t *p = req->data;
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++)
    p->found[i] = BRW_TOPIC_UNKNOWN;
  for (int i = 0; i < BRW_KAFKA__TOPICS && !atomic_load(&p->stop); i++) {
    const struct rd_kafka_metadata *md = NULL;
    p->err[i] =
        rd_kafka_metadata(p->rk[i], 0, p->rkt[i], &md, PROBE_TIMEOUT_MS);
    if (!p->err[i] && md && md->topic_cnt == 1) {
      p->err[i] = md->topics[0].err;
      if (p->err[i] == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
          p->err[i] == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        p->found[i] = BRW_TOPIC_MISSING;
      else if (!p->err[i] && md->topics[0].partition_cnt > 0)
        p->found[i] = BRW_TOPIC_EXISTS;
    }
    if (md)
      rd_kafka_metadata_destroy(md);
  }
}

/* Starts a probe unless one is under way or the clients are closing. While
 * every broker is down a probe could learn nothing, and would only hold up a
 * shutdown: it waits. */
static void probe_start(brw_kafka_t *k) {
  if (k->probing || k->closing)
    return;
  if (!k->up) {
    uv_timer_start(&k->probe_timer, on_probe_timer, PROBE_WAIT_MS, 0);
    return;
  }
  probe_t *p = &k->probe;
  atomic_store(&p->stop, 0);
  p->req.data = p;
  p->k = k;
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++)
    p->rk[i] = i == BRW_KAFKA_INPUT || k->eo ? k->rk_c : k->rk_p;
  if (uv_queue_work(k->loop, &p->req, probe_work, probe_done) == 0)
    k->probing = 1;
  else
    uv_timer_start(&k->probe_timer, on_probe_timer, PROBE_WAIT_MS, 0);
}

/* On the loop thread: applies the results and schedules the next probe
 * (sooner while a topic is missing or not known yet). When the clients are
 * closing, brw_kafka_close waited for this to destroy them. */
static void probe_done(uv_work_t *req, int status) {
  probe_t *p = req->data;
  brw_kafka_t *k = p->k;
  k->probing = 0;
  if (k->closing) {
    release_clients(k);
    return;
  }
  int all = 1, stale = k->probe_stale;
  k->probe_stale = 0;
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++) {
    if (stale && i == BRW_KAFKA_INPUT && p->found[i] == BRW_TOPIC_EXISTS) {
      all = 0; /* the consumer said it is missing since: probe again soon */
      continue;
    }
    if (status == 0 && p->found[i] != BRW_TOPIC_UNKNOWN) {
      if (p->found[i] != k->topic_state[i])
        brw_logj(BRW_LOG_DEBUG,
                 json_pack("{ss ss}", BRW_LF_TOPIC, k->topics[i], "error",
                           rd_kafka_err2name(p->err[i])),
                 "topic metadata: %s",
                 p->found[i] == BRW_TOPIC_EXISTS ? "exists" : "missing");
      k->topic_state[i] = p->found[i];
      k->topic_err[i] = p->err[i];
    }
    all &= k->topic_state[i] == BRW_TOPIC_EXISTS;
  }
  uv_timer_start(&k->probe_timer, on_probe_timer,
                 all ? PROBE_OK_MS : PROBE_WAIT_MS, 0);
}

static void on_probe_timer(uv_timer_t *t) {
  probe_start(t->data);
}

/* A consumer error said the input topic is missing: probe again within a
 * short while (not at once: librdkafka may say it several times). */
static void probe_soon(brw_kafka_t *k) {
  if (k->closing)
    return;
  if (k->probing) {
    /* The probe under way may have read the metadata before the topic
     * went: its "exists" is not to be believed (probe_done). */
    k->probe_stale = 1;
    return;
  }
  uint64_t due = uv_timer_get_due_in(&k->probe_timer);
  if (!uv_is_active((uv_handle_t *)&k->probe_timer) || due > PROBE_WAIT_MS)
    uv_timer_start(&k->probe_timer, on_probe_timer, PROBE_WAIT_MS, 0);
}

/* Creates the non-blocking wake-up pipe of a queue bridge. */
static int bridge_pipe(qbridge_t *q) {
  if (pipe(q->pipe) != 0) {
    q->pipe[0] = q->pipe[1] = -1;
    return BRW_EIO;
  }
  for (int i = 0; i < 2; i++) {
    int fl = fcntl(q->pipe[i], F_GETFL);
    fcntl(q->pipe[i], F_SETFL, fl | O_NONBLOCK);
    fcntl(q->pipe[i], F_SETFD, FD_CLOEXEC);
  }
  return 0;
}

static void bridge_start(brw_kafka_t *k, qbridge_t *q, rd_kafka_queue_t *rkqu,
                         int is_consumer) {
  q->k = k;
  q->rkqu = rkqu;
  q->is_consumer = is_consumer;
  rd_kafka_queue_io_event_enable(rkqu, q->pipe[1], "1", 1);
  uv_poll_init(k->loop, &q->poll, q->pipe[0]);
  q->poll.data = q;
  uv_poll_start(&q->poll, UV_READABLE, on_queue_readable);
}

/* Applies one key to a librdkafka configuration. */
static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                    char *errbuf, size_t errlen) {
  char err[256];
  if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) !=
      RD_KAFKA_CONF_OK) {
    snprintf(errbuf, errlen, "kafka.%s: %s", key, err);
    return BRW_ECONFIG;
  }
  return 0;
}

static int apply_list(rd_kafka_conf_t *conf, const brw_kv_t *kv, size_t n,
                      char *errbuf, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    int r = conf_set(conf, kv[i].key, kv[i].value, errbuf, errlen);
    if (r)
      return r;
  }
  return 0;
}

static rd_kafka_conf_t *base_conf(brw_kafka_t *k, const brw_config_t *cfg,
                                  char *errbuf, size_t errlen) {
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (conf_set(conf, "bootstrap.servers", cfg->brokers, errbuf, errlen) ||
      conf_set(conf, "log.queue", "true", errbuf, errlen) ||
      conf_set(conf, "client.id", "bsg-report-worker", errbuf, errlen)) {
    rd_kafka_conf_destroy(conf);
    return NULL;
  }
  rd_kafka_conf_set_log_cb(conf, log_kafka);
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_opaque(conf, k);
  return conf;
}

/* The value of a kafka.* key as one client sees it: kafka.consumer.* (or
 * kafka.producer.*) wins over kafka.*, a later entry over an earlier one;
 * NULL when no key sets it. */
static const char *client_key(const brw_config_t *cfg, int producer,
                              const char *key) {
  const char *v = NULL;
  const brw_kv_t *own = producer ? cfg->kafka_producer : cfg->kafka_consumer;
  size_t nown = producer ? cfg->nkafka_producer : cfg->nkafka_consumer;
  for (size_t i = 0; i < cfg->nkafka_common; i++)
    if (!strcmp(cfg->kafka_common[i].key, key))
      v = cfg->kafka_common[i].value;
  for (size_t i = 0; i < nown; i++)
    if (!strcmp(own[i].key, key))
      v = own[i].value;
  return v;
}

static const char *consumer_key(const brw_config_t *cfg, const char *key) {
  return client_key(cfg, 0, key);
}

/* Exactly once: librdkafka refuses a message timeout longer than the
 * transaction timeout, which the worker lowers to 10 s; a kafka.* key that
 * sets one (or its alias) is named, as any bad configuration value is. */
static int check_txn_timeouts(const brw_config_t *cfg, rd_kafka_conf_t *pc,
                              char *errbuf, size_t errlen) {
  static const char *const keys[] = {"message.timeout.ms",
                                     "delivery.timeout.ms"};
  char tt[32];
  size_t tlen = sizeof(tt);
  if (rd_kafka_conf_get(pc, "transaction.timeout.ms", tt, &tlen) !=
      RD_KAFKA_CONF_OK)
    return 0;
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
    const char *v = client_key(cfg, 1, keys[i]);
    int own = 0;
    for (size_t j = 0; j < cfg->nkafka_producer; j++)
      own |= !strcmp(cfg->kafka_producer[j].key, keys[i]);
    if (v && strtoull(v, NULL, 10) > strtoull(tt, NULL, 10)) {
      snprintf(errbuf, errlen,
               "kafka.%s%s: %s ms exceeds the producer's "
               "transaction.timeout.ms (%s ms) with delivery.guarantee = "
               "exactly_once; lower it or raise "
               "kafka.producer.transaction.timeout.ms",
               own ? "producer." : "", keys[i], v, tt);
      return BRW_ECONFIG;
    }
  }
  return 0;
}

const char *brw_kafka_group_protocol(const brw_config_t *cfg) {
  const char *v = consumer_key(cfg, "group.protocol");
  return v && !strcasecmp(v, "consumer") ? "consumer" : "classic";
}

const char *brw_kafka_default_strategy(int version) {
  /* rd_kafka_version(): 0xMMmmrrxx */
  return (unsigned)version >= 0x020a0100u ? "cooperative-sticky"
                                           : "roundrobin";
}

int brw_kafka_new(uv_loop_t *loop, const brw_config_t *cfg,
                  const brw_kafka_handlers_t *handlers, brw_kafka_t **out,
                  char *errbuf, size_t errlen) {
  brw_kafka_t *k = calloc(1, sizeof(*k));
  if (!k)
    return BRW_ENOMEM;
  k->loop = loop;
  k->h = *handlers;
  k->up = 1;
  brw_list_init(&k->backlog);
  k->topic_input = strdup(cfg->topic_input);
  k->topics[BRW_KAFKA_INPUT] = strdup(cfg->topic_input);
  k->topics[BRW_KAFKA_OUTPUT] = strdup(cfg->topic_output);
  k->topics[BRW_KAFKA_DLQ] = strdup(cfg->topic_dlq);
  char err[512];
  int r = BRW_ECONFIG;

  /* The group protocol and, for the classic one, the assignor (SPEC §6):
   * - group.protocol=consumer (KIP-848, brokers >= 4.0): the broker
   *   assigns; librdkafka refuses partition.assignment.strategy with it.
   * - classic, librdkafka >= 2.10.1: cooperative-sticky, so a scale event
   *   moves only the partitions that change owner. Older lines commit
   *   during a cooperative rebalance with ILLEGAL_GENERATION and then
   *   treat the member's other partitions as lost (librdkafka #4908, fixed
   *   in 2.10.0; 2.10.0 itself has #5088): eager roundrobin there.
   * kafka.consumer.partition.assignment.strategy overrides the choice. */
  const char *protocol = brw_kafka_group_protocol(cfg);
  const char *strategy = NULL;
  if (strcmp(protocol, "consumer") != 0)
    strategy = brw_kafka_default_strategy(rd_kafka_version());

  /* Consumer: manual commits of what is complete, never auto-commit. The
   * defaults come first so that kafka.* keys can override them. */
  rd_kafka_conf_t *cc = base_conf(k, cfg, errbuf, errlen);
  if (!cc)
    goto err;
  if (conf_set(cc, "group.id", cfg->group_id, errbuf, errlen) ||
      conf_set(cc, "enable.auto.commit", "false", errbuf, errlen) ||
      conf_set(cc, "enable.auto.offset.store", "false", errbuf, errlen) ||
      /* A partition with no committed offset (a new group, or a commit that
       * retention removed) starts at its oldest event, so that none is
       * skipped; kafka.consumer.auto.offset.reset, applied below, wins.
       * Documented in docs/configuration.md and logged at start. */
      conf_set(cc, "auto.offset.reset", "earliest", errbuf, errlen) ||
      conf_set(cc, "statistics.interval.ms", "5000", errbuf, errlen) ||
      (strategy && conf_set(cc, "partition.assignment.strategy", strategy,
                            errbuf, errlen)) ||
      apply_list(cc, cfg->kafka_common, cfg->nkafka_common, errbuf, errlen) ||
      apply_list(cc, cfg->kafka_consumer, cfg->nkafka_consumer, errbuf,
                 errlen) ||
      /* Correctness, not tuning: offsets are committed only by the app. */
      conf_set(cc, "enable.auto.commit", "false", errbuf, errlen) ||
      conf_set(cc, "enable.auto.offset.store", "false", errbuf, errlen)) {
    rd_kafka_conf_destroy(cc);
    goto err;
  }
  rd_kafka_conf_set_rebalance_cb(cc, on_rebalance);
  watch_cert_verify(cc);
  rd_kafka_conf_set_stats_cb(cc, on_stats);
  k->rk_c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
  if (!k->rk_c) {
    rd_kafka_conf_destroy(cc);
    snprintf(errbuf, errlen, "kafka consumer: %s", err);
    r = BRW_EKAFKA;
    goto err;
  }
  rd_kafka_poll_set_consumer(k->rk_c);
  {
    char strat[128] = "";
    size_t slen = sizeof(strat);
    if (strcmp(protocol, "consumer") != 0)
      rd_kafka_conf_get(rd_kafka_conf(k->rk_c),
                        "partition.assignment.strategy", strat, &slen);
    brw_logj(BRW_LOG_INFO,
             json_pack("{ss ss}", "group.protocol", protocol,
                       "partition.assignment.strategy",
                       strat[0] ? strat : "(broker side)"),
             "consumer group protocol %s%s%s", protocol,
             strat[0] ? ", assignor " : "", strat);
  }
  {
    char reset[32] = "?";
    size_t rlen = sizeof(reset);
    rd_kafka_conf_get(rd_kafka_conf(k->rk_c), "auto.offset.reset", reset,
                      &rlen);
    /* librdkafka reports its own synonyms: smallest, largest, error. */
    const char *word = !strcmp(reset, "smallest")  ? "earliest"
                       : !strcmp(reset, "largest") ? "latest"
                                                   : reset;
    brw_logj(BRW_LOG_INFO, json_pack("{ss}", "auto.offset.reset", word),
             "partitions without a committed offset start at the %s offset",
             word);
    k->reset = !strcmp(word, "earliest") ? BRW_BACKLOG_RESET_EARLIEST
               : !strcmp(word, "latest") ? BRW_BACKLOG_RESET_LATEST
                                         : BRW_BACKLOG_RESET_NONE;
  }
  {
    /* What the real backlog reads as a partition's end (the last stable
     * offset under read_committed, librdkafka's default), and how often
     * its statistics come (0: never, then backlog_events stays unknown). */
    char v[32] = "";
    size_t vlen = sizeof(v);
    rd_kafka_conf_get(rd_kafka_conf(k->rk_c), "isolation.level", v, &vlen);
    k->read_committed = strcmp(v, "read_uncommitted") != 0;
    vlen = sizeof(v);
    v[0] = '\0';
    rd_kafka_conf_get(rd_kafka_conf(k->rk_c), "statistics.interval.ms", v,
                      &vlen);
    k->stats_ms = (uint64_t)strtoull(v, NULL, 10);
  }

  /* Producer: idempotent (ordered, no duplicates from internal retries),
   * acks from all replicas, and the Java client's partitioner so that report
   * keys land where Java producers would put them. */
  rd_kafka_conf_t *pc = base_conf(k, cfg, errbuf, errlen);
  if (!pc)
    goto err;
  /* batch.size no larger than one record may be: a broker refuses a whole
   * batch that exceeds the topic's max.message.bytes, and librdkafka does
   * not split it, so the small records batched with a large one would be
   * refused with it. With batches bounded by output.max_record_size, a
   * topic that takes records of that size takes every batch. */
  char bsz[32];
  snprintf(bsz, sizeof(bsz), "%llu",
           (unsigned long long)cfg->output_max_record_size);
  char tid[512];
  snprintf(tid, sizeof(tid), "%s-%s", cfg->group_id,
           cfg->instance_id ? cfg->instance_id : "");
  k->eo = brw_config_exactly_once(cfg);
  if (conf_set(pc, "enable.idempotence", "true", errbuf, errlen) ||
      /* Exactly once: a transactional producer. transaction.timeout.ms is
       * how long a transaction left open by a killed worker holds back
       * read_committed readers before the broker aborts it (unless a
       * restart with the same worker.instance fences it at once); Kafka
       * Streams uses 10 s too. kafka.* may override both. */
      (k->eo &&
       (conf_set(pc, "transactional.id", tid, errbuf, errlen) ||
        conf_set(pc, "transaction.timeout.ms", "10000", errbuf, errlen))) ||
      conf_set(pc, "batch.size", bsz, errbuf, errlen) ||
      conf_set(pc, "acks", "all", errbuf, errlen) ||
      conf_set(pc, "partitioner", "murmur2_random", errbuf, errlen) ||
      conf_set(pc, "linger.ms", "5", errbuf, errlen) ||
      conf_set(pc, "statistics.interval.ms", "5000", errbuf, errlen) ||
      apply_list(pc, cfg->kafka_common, cfg->nkafka_common, errbuf, errlen) ||
      apply_list(pc, cfg->kafka_producer, cfg->nkafka_producer, errbuf,
                 errlen) ||
      /* SPEC §6: the producer is idempotent, whatever kafka.* says. */
      conf_set(pc, "enable.idempotence", "true", errbuf, errlen)) {
    rd_kafka_conf_destroy(pc);
    goto err;
  }
  /* The worker shortens records to output.max_record_size itself; a
   * producer that refused records below that size would make every large
   * DLQ record a refusal, so that is a configuration error. The value read
   * back is librdkafka's effective one (its default, or kafka.*). */
  {
    char mmb[32];
    size_t mlen = sizeof(mmb);
    if (rd_kafka_conf_get(pc, "message.max.bytes", mmb, &mlen) ==
            RD_KAFKA_CONF_OK &&
        cfg->output_max_record_size > strtoull(mmb, NULL, 10)) {
      snprintf(errbuf, errlen,
               "output.max_record_size: %llu bytes exceed the producer's "
               "message.max.bytes (%s); raise "
               "kafka.producer.message.max.bytes or lower "
               "output.max_record_size",
               (unsigned long long)cfg->output_max_record_size, mmb);
      rd_kafka_conf_destroy(pc);
      goto err;
    }
  }
  watch_cert_verify(pc);
  if (k->eo && (r = check_txn_timeouts(cfg, pc, errbuf, errlen)) != 0) {
    rd_kafka_conf_destroy(pc);
    goto err;
  }
  r = BRW_ECONFIG;
  if (k->eo) {
    rd_kafka_conf_set_events(pc, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR |
                                     RD_KAFKA_EVENT_LOG |
                                     RD_KAFKA_EVENT_STATS);
    k->pconf = rd_kafka_conf_dup(pc);
    if (!k->pconf) {
      rd_kafka_conf_destroy(pc);
      r = BRW_ENOMEM;
      goto err;
    }
  } else {
    rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
    rd_kafka_conf_set_stats_cb(pc, on_stats);
  }
  k->rk_p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
  if (!k->rk_p) {
    rd_kafka_conf_destroy(pc);
    snprintf(errbuf, errlen, "kafka producer: %s", err);
    r = BRW_EKAFKA;
    goto err;
  }

  /* The topics the metadata probe looks up: the input topic through the
   * consumer, the others through the producer that writes them; with
   * exactly once all through the consumer, because the producer may be
   * made again (brw_kafka_txn_call REBUILD) while a probe runs. */
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++) {
    if (!k->topics[i] ||
        !(k->probe.rkt[i] = rd_kafka_topic_new(
              i == BRW_KAFKA_INPUT || k->eo ? k->rk_c : k->rk_p,
              k->topics[i], NULL))) {
      snprintf(errbuf, errlen, "kafka: cannot create a topic handle");
      r = BRW_EKAFKA;
      goto err;
    }
  }

  /* Route logs to the queues the loop serves. */
  rd_kafka_set_log_queue(k->rk_c, NULL);
  rd_kafka_set_log_queue(k->rk_p, NULL);
  if (bridge_pipe(&k->qc) || bridge_pipe(&k->qp)) {
    snprintf(errbuf, errlen, "kafka: cannot create a wake-up pipe");
    r = BRW_EIO;
    goto err;
  }
  uv_timer_init(loop, &k->timer);
  k->timer.data = k;
  uv_idle_init(loop, &k->more);
  k->more.data = k;
  uv_timer_init(loop, &k->probe_timer);
  k->probe_timer.data = k;
  bridge_start(k, &k->qc, rd_kafka_queue_get_consumer(k->rk_c), 1);
  bridge_start(k, &k->qp, rd_kafka_queue_get_main(k->rk_p), 0);
  uv_timer_start(&k->timer, on_timer, SAFETY_MS, SAFETY_MS);
  *out = k;
  return 0;

err:
  for (int i = 0; i < 2; i++) {
    if (k->qc.pipe[i] > 0)
      close(k->qc.pipe[i]);
    if (k->qp.pipe[i] > 0)
      close(k->qp.pipe[i]);
  }
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++) {
    if (k->probe.rkt[i])
      rd_kafka_topic_destroy(k->probe.rkt[i]);
    free(k->topics[i]);
  }
  if (k->rk_c)
    rd_kafka_destroy(k->rk_c);
  if (k->rk_p)
    rd_kafka_destroy(k->rk_p);
  if (k->pconf)
    rd_kafka_conf_destroy(k->pconf);
  free(k->topic_input);
  free(k);
  *out = NULL;
  return r;
}

int brw_kafka_start(brw_kafka_t *k) {
  rd_kafka_topic_partition_list_t *topics =
      rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, k->topic_input,
                                    RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t err = rd_kafka_subscribe(k->rk_c, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err) {
    brw_log_error("subscribe: %s", rd_kafka_err2str(err));
    return BRW_EKAFKA;
  }
  probe_start(k);
  return 0;
}

int brw_kafka_commit(brw_kafka_t *k, const brw_kafka_positions_t *l,
                     int async) {
  if (!k->rk_c || k->consumer_closed || !l || l->cnt == 0)
    return 0;
  brw_metrics_inc(k->m, BRW_M_COMMITS, NULL, 1);
  rd_kafka_topic_partition_list_t *offsets = positions_to_rd(k, l);
  if (async) {
    /* The result comes back on the consumer queue, which the loop drains. */
    rd_kafka_resp_err_t qerr =
        rd_kafka_commit_queue(k->rk_c, offsets, k->qc.rkqu, on_commit, k);
    rd_kafka_topic_partition_list_destroy(offsets);
    if (qerr) {
      brw_metrics_inc(k->m, BRW_M_COMMIT_FAILURES, NULL, 1);
      brw_logj(BRW_LOG_WARN, json_pack("{ss}", "error", rd_kafka_err2name(qerr)),
               "offset commit failed: %s", rd_kafka_err2str(qerr));
      return BRW_EKAFKA;
    }
    k->commits_in_flight++;
    return 0;
  }
  rd_kafka_resp_err_t err = rd_kafka_commit(k->rk_c, offsets, 0);
  rd_kafka_topic_partition_list_destroy(offsets);
  if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
    brw_metrics_inc(k->m, BRW_M_COMMIT_FAILURES, NULL, 1);
    brw_logj(BRW_LOG_WARN, json_pack("{ss}", "error", rd_kafka_err2name(err)),
             "offset commit failed: %s", rd_kafka_err2str(err));
    return BRW_EKAFKA;
  }
  return 0;
}

size_t brw_kafka_commits_in_flight(const brw_kafka_t *k) {
  return k->commits_in_flight;
}

void brw_kafka_pause(brw_kafka_t *k, int pause) {
  if (!k->rk_c || k->consumer_closed || k->paused == pause)
    return;
  rd_kafka_topic_partition_list_t *parts = NULL;
  if (rd_kafka_assignment(k->rk_c, &parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (pause)
      rd_kafka_pause_partitions(k->rk_c, parts);
    else
      rd_kafka_resume_partitions(k->rk_c, parts);
    rd_kafka_topic_partition_list_destroy(parts);
  }
  k->paused = pause;
  brw_logj(BRW_LOG_INFO, NULL, "consumption %s", pause ? "paused" : "resumed");
}

int brw_kafka_paused(const brw_kafka_t *k) {
  return k->paused;
}

int brw_kafka_connected(const brw_kafka_t *k) {
  return k->up;
}

const char *brw_kafka_auth_failure(const brw_kafka_t *k) {
  for (int i = 0; i < 2; i++)
    if ((i ? k->all_down_p : k->all_down_c) && k->auth_why[i][0])
      return k->auth_why[i];
  return NULL;
}

brw_topic_state_t brw_kafka_topic_state(const brw_kafka_t *k,
                                        brw_kafka_topic_t which,
                                        const char **name, int *err) {
  if ((unsigned)which >= BRW_KAFKA__TOPICS)
    return BRW_TOPIC_UNKNOWN;
  if (name)
    *name = k->topics[which];
  if (err)
    *err = k->topic_err[which];
  return k->topic_state[which];
}

void brw_kafka_close_consumer(brw_kafka_t *k) {
  if (!k->rk_c || k->consumer_closed)
    return;
  /* rd_kafka_consumer_close blocks this thread while it leaves the group
   * (bounded by librdkafka's own timeouts); it serves the rebalance callback
   * itself and waits for it, so rebalance events are handled at once from
   * here on (the revoke handler still commits, synchronously). At shutdown,
   * after intake stopped and the producer was flushed, nothing else waits
   * on the loop. */
  k->in_close = 1;
  rebal_finish_now(k);
  rd_kafka_resp_err_t err = rd_kafka_consumer_close(k->rk_c);
  if (err)
    brw_log_warn("consumer close: %s", rd_kafka_err2str(err));
  k->consumer_closed = 1;
}

/* One step of the close: a loop handle closed, or the clients were
 * destroyed. The last one frees everything and runs the callback. */
static void close_step(brw_kafka_t *k) {
  if (--k->pending_closes > 0)
    return;
  close(k->qc.pipe[0]);
  close(k->qc.pipe[1]);
  close(k->qp.pipe[0]);
  close(k->qp.pipe[1]);
  void (*cb)(void *) = k->close_cb;
  void *arg = k->close_arg;
  rebal_free(k->rebal);
  while (k->rebal_head) {
    rebal_t *op = k->rebal_head;
    k->rebal_head = op->next;
    rebal_free(op);
  }
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++)
    free(k->topics[i]);
  if (k->txw_held)
    txw_free(k->txw_held);
  if (k->pconf)
    rd_kafka_conf_destroy(k->pconf);
  free(k->topic_input);
  free(k->held);
  free(k);
  if (cb)
    cb(arg);
}

static void on_closed(uv_handle_t *handle) {
  close_step(handle->data);
}

/* Destroys both clients (the topic handles first). Not while a metadata
 * probe may still use them: see brw_kafka_close. */
static void destroy_clients(brw_kafka_t *k) {
  for (int i = 0; i < BRW_KAFKA__TOPICS; i++) {
    if (k->probe.rkt[i])
      rd_kafka_topic_destroy(k->probe.rkt[i]);
    k->probe.rkt[i] = NULL;
  }
  rd_kafka_destroy(k->rk_c);
  if (k->rk_p)
    rd_kafka_destroy(k->rk_p);
  k->rk_c = NULL;
  k->rk_p = NULL;
}

void brw_kafka_close(brw_kafka_t *k, void (*cb)(void *arg), void *arg) {
  brw_kafka_close_consumer(k);
  k->closing = 1;
  backlog_clear(k);
  rd_kafka_queue_io_event_enable(k->qc.rkqu, -1, NULL, 0);
  if (k->qp.rkqu) {
    rd_kafka_queue_io_event_enable(k->qp.rkqu, -1, NULL, 0);
    rd_kafka_queue_destroy(k->qp.rkqu);
    k->qp.rkqu = NULL;
  }
  rd_kafka_queue_destroy(k->qc.rkqu);
  if (k->in_flight)
    brw_logj(BRW_LOG_WARN, json_pack("{sI}", "records", (json_int_t)k->in_flight),
             "records not acknowledged at close; their events will be "
             "replayed");
  /* Purge what is left so rd_kafka_destroy does not wait for it. */
  if (k->rk_p)
    rd_kafka_purge(k->rk_p,
                   RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  k->close_cb = cb;
  k->close_arg = arg;
  uv_timer_stop(&k->timer);
  uv_timer_stop(&k->probe_timer);
  uv_idle_stop(&k->more);
  uv_poll_stop(&k->qc.poll);
  uv_poll_stop(&k->qp.poll);
  /* Five handles, and the clients. */
  k->pending_closes = 6;
  uv_close((uv_handle_t *)&k->timer, on_closed);
  uv_close((uv_handle_t *)&k->more, on_closed);
  uv_close((uv_handle_t *)&k->probe_timer, on_closed);
  k->qc.poll.data = k;
  k->qp.poll.data = k;
  uv_close((uv_handle_t *)&k->qc.poll, on_closed);
  uv_close((uv_handle_t *)&k->qp.poll, on_closed);
  /* A metadata probe or a committed-offset read on the thread pool may
   * still use the clients: they are destroyed when the last is over (the
   * probe's request under way, at most PROBE_TIMEOUT_MS, the others
   * skipped; the read, at most COMMITTED_TIMEOUT_MS), from its after-work
   * callback (release_clients). A probe not started yet is canceled. */
  if (k->probing) {
    atomic_store(&k->probe.stop, 1);
    uv_cancel((uv_req_t *)&k->probe.req);
  }
  if (k->wm_busy) {
    atomic_store(&k->wm.stop, 1);
    uv_cancel((uv_req_t *)&k->wm.req);
  }
  release_clients(k);
}
