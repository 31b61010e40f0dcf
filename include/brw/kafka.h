/* Kafka clients on the libuv loop: one consumer (group member) and one
 * idempotent producer (transactional with delivery.guarantee =
 * exactly_once: see brw_kafka_transactional).
 *
 * This header is the whole Kafka boundary: no librdkafka type crosses it.
 * Record headers are brw_headers_t (include/brw/headers.h), consumed
 * messages brw_kafka_message_t, partitions with their positions and commit
 * metadata brw_kafka_positions_t, and librdkafka's error codes plain ints
 * (the values of librdkafka's codes; BRW_KAFKA_ERR_* names the ones the
 * application tests, brw_kafka_err_name gives any one's name). Only
 * src/kafka.c includes librdkafka's header.
 *
 * librdkafka's queues wake the loop through its queue I/O events
 * (a non-blocking pipe watched by uv_poll), and every librdkafka callback the
 * application sees (messages, rebalances, delivery reports, logs, errors,
 * commit results) runs on the loop thread, from the drain of those queues. A
 * drain serves a bounded batch; what is left is served by an idle handle, one
 * batch per loop iteration, so sockets, signals and timers are served during
 * a flood. A slow safety timer drains them too, in case a wake-up is missed.
 * Other threads are libuv's pool, for the calls that block: the metadata
 * probe (see brw_kafka_topic_state), an assignment's committed-offset
 * read, and the transactional calls (brw_kafka_txn_call); each touches
 * nothing but its own request (and librdkafka's thread-safe API).
 *
 * Produce never drops: a record the producer queue cannot take now waits in
 * a backlog (brw_kafka_backlog() > 0 tells the application to pause
 * intake), and a record whose delivery failed for a retriable reason is
 * produced again. A record refused for a reason that lies in the record
 * itself (brw_record_refusal_permanent: its size, its content), by the
 * producer or by the broker, is never retried: it goes back to the
 * application through on_refused, which decides (shorten it, send something
 * else, give it up). The application hears of successful deliveries, of
 * permanent refusals, and of fatal errors. With exactly once nothing is
 * retried here: a failed record loses its transaction (on_delivery_failed),
 * whose records the application produces again after the abort. */
#ifndef BRW_KAFKA_H
#define BRW_KAFKA_H

#include "brw/config.h"
#include "brw/headers.h"
#include "brw/metrics.h"
#include "brw/txn.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct brw_kafka_s brw_kafka_t;
typedef struct brw_kafka_record_s brw_kafka_record_t;

/* The topics the worker uses, for brw_kafka_topic_state. */
typedef enum {
  BRW_KAFKA_INPUT = 0, /* topic.input, looked up through the consumer */
  BRW_KAFKA_OUTPUT,    /* topic.output, through the producer */
  BRW_KAFKA_DLQ,       /* topic.dlq, through the producer */
  BRW_KAFKA__TOPICS
} brw_kafka_topic_t;

/* What is known of a topic's existence. */
typedef enum {
  BRW_TOPIC_UNKNOWN = 0, /* not known yet (no answer from a broker) */
  BRW_TOPIC_EXISTS,      /* the cluster lists it, with partitions */
  BRW_TOPIC_MISSING      /* the cluster does not know it, or this client may
                            not see it */
} brw_topic_state_t;

/* librdkafka's error codes the application names, with librdkafka's values
 * (Kafka's protocol codes, and librdkafka's own negative ones); src/kafka.c
 * checks at compile time that they match. 0 is no error. */
#define BRW_KAFKA_ERR_NONE 0
#define BRW_KAFKA_ERR_UNKNOWN_TOPIC_OR_PART 3
#define BRW_KAFKA_ERR_INVALID_MSG_SIZE 4
#define BRW_KAFKA_ERR_MSG_SIZE_TOO_LARGE 10
#define BRW_KAFKA_ERR_RECORD_LIST_TOO_LARGE 18
#define BRW_KAFKA_ERR_TOPIC_AUTHORIZATION_FAILED 29
#define BRW_KAFKA_ERR_INVALID_TIMESTAMP 32
#define BRW_KAFKA_ERR_INVALID_RECORD 87
#define BRW_KAFKA_ERR_INVALID_ARG (-186) /* librdkafka's _INVALID_ARG */
#define BRW_KAFKA_ERR_FAIL (-196)        /* librdkafka's _FAIL */
#define BRW_KAFKA_ERR_FATAL (-150)       /* librdkafka's _FATAL */

/* librdkafka's name of an error code ("MSG_SIZE_TOO_LARGE"), static. */
const char *brw_kafka_err_name(int err);
/* librdkafka's text for an error code, static. */
const char *brw_kafka_err_str(int err);

/* A consumed message, borrowed for the on_message call. */
typedef struct {
  int32_t partition;
  int64_t offset;
  const void *key; /* NULL when the record has none */
  size_t key_len;
  const void *value;
  size_t value_len;
  const void *priv; /* src/kafka.c's own; for brw_kafka_message_header */
} brw_kafka_message_t;

/* The value of the message's last header named `name`: 0 with *value
 * (borrowed, valid during on_message; NULL for a null value) and *len set,
 * or BRW_ENOENT. */
int brw_kafka_message_header(const brw_kafka_message_t *msg, const char *name,
                             const void **value, size_t *len);

/* A partition of the input topic with a position: the next offset to read
 * and the commit's metadata (the completed-offset map), as read from the
 * group (on_assign), sent in a commit (brw_kafka_commit) or confirmed
 * (on_commit_done). */
typedef struct {
  int32_t partition;
  int64_t offset;      /* the position; negative when there is none */
  char *metadata;      /* owned by the list; NULL when none */
  size_t metadata_len; /* bytes (not NUL-terminated on the wire; the list
                          keeps a NUL after them) */
  int err;             /* a librdkafka error code for this partition, 0 */
} brw_kafka_pos_t;

/* A list of positions. A zeroed struct is an empty list; the list owns its
 * elements and their metadata (brw_kafka_positions_clear frees them). */
typedef struct {
  brw_kafka_pos_t *elems;
  int cnt;
  int cap;
} brw_kafka_positions_t;

/* Appends a position with a copy of `metadata` (len bytes, NULL for none).
 * Returns 0 or BRW_ENOMEM (the list is unchanged). */
int brw_kafka_positions_add(brw_kafka_positions_t *l, int32_t partition,
                            int64_t offset, const void *metadata, size_t len);
/* Frees the elements and their metadata; the list is empty again. */
void brw_kafka_positions_clear(brw_kafka_positions_t *l);

typedef struct {
  /* A consumed message; borrowed, destroyed after the call. */
  void (*on_message)(void *ctx, const brw_kafka_message_t *msg);
  /* Partitions assigned (added to the assignment: with the cooperative and
   * KIP-848 protocols only the new ones). Each element carries the group's
   * committed offset and metadata, read on libuv's pool before this call;
   * an element whose err is set could not be read (the partition replays
   * from its committed offset). The partitions are assigned after the call
   * returns. Borrowed list. */
  void (*on_assign)(void *ctx, const brw_kafka_positions_t *parts);
  /* Partitions revoked (with the cooperative and KIP-848 protocols only the
   * ones that move). lost = 1 when the assignment was lost and must not be
   * committed. They stay assigned (paused) until the handler calls
   * brw_kafka_revoke_done, so it may wait for reports under way, through
   * callbacks, and commit. now = 1 (inside the consumer's close) asks it to
   * finish before it returns; otherwise it may call brw_kafka_revoke_done
   * later or from inside the call. Until then no other rebalance event is
   * handled. Borrowed list. */
  void (*on_revoke)(void *ctx, const brw_kafka_positions_t *parts, int lost,
                    int now);
  /* A produced record was acknowledged by the broker. */
  void (*on_delivered)(void *ctx, void *opaque);
  /* A produced record was refused for good (brw_record_refusal_permanent):
   * by the producer (at once) or by the broker (delivery report).
   * It is not retried; the handler owns rec->opaque again and may produce
   * another record in its place, from inside this call. `rec` and
   * everything it points to (headers included) are borrowed for the call;
   * `err` is librdkafka's code (BRW_KAFKA_ERR_*), `reason` its text. Runs on
   * the loop thread: from a queue
   * drain, from brw_kafka_flush, or from inside brw_kafka_produce (a record
   * refused at once). Without a handler the record is logged and dropped. */
  void (*on_refused)(void *ctx, const brw_kafka_record_t *rec, int err,
                     const char *reason);
  /* A fatal error: the clients cannot go on; the application shuts down
   * and exits 1. `reason` is borrowed. */
  void (*on_fatal)(void *ctx, const char *reason);
  /* The broker connection state changed (1 = up, 0 = all brokers down);
   * kafka_brokers_up is set already. */
  void (*on_connection)(void *ctx, int up);
  /* An asynchronous offset commit completed (err 0, or the error for all
   * partitions; each element carries its own err and the offset sent).
   * commit_failures_total counted it already. Borrowed list. */
  void (*on_commit_done)(void *ctx, int err,
                         const brw_kafka_positions_t *offsets);
  /* Exactly once only (brw_kafka_transactional). A transactional call
   * started by brw_kafka_txn_call ended, with its result class; `reason`
   * is librdkafka's "NAME: text" (borrowed), NULL when it went well.
   * `committed`: after a REBUILD that went well, the group's committed
   * positions and metadata of the partitions it was given, read after the
   * new producer's init_transactions (which ends the old producer's
   * transaction either way); NULL otherwise or when the read failed.
   * Borrowed. */
  void (*on_txn_done)(void *ctx, brw_txn_call_t call, brw_txn_result_t result,
                      const char *reason,
                      const brw_kafka_positions_t *committed);
  /* Exactly once only. A record of the transaction failed (its delivery
   * report has an error, after on_refused for a permanent refusal), or the
   * producer failed for good (opaque NULL, err BRW_KAFKA_ERR_FATAL): the
   * transaction cannot commit. Never retried by this module: the
   * transaction is aborted and its records are produced again. `reason` is
   * borrowed. */
  void (*on_delivery_failed)(void *ctx, void *opaque, int err,
                             const char *reason);
  void *ctx;
} brw_kafka_handlers_t;

/* A record to produce. All pointers are borrowed; the data is copied. */
struct brw_kafka_record_s {
  const char *topic;
  const void *key;
  size_t key_len;
  const void *value;
  size_t value_len;
  brw_headers_t *headers;      /* may be NULL; ownership passes to
                                  brw_kafka_produce */
  void *opaque;                /* handed back to on_delivered/on_refused */
};

/* Creates both clients from the configuration (brokers, group.id, kafka.*
 * pass-through). Returns 0, or BRW_ECONFIG (a bad kafka.* key; message in
 * errbuf naming it) or BRW_EKAFKA. */
int brw_kafka_new(uv_loop_t *loop, const brw_config_t *cfg,
                  const brw_kafka_handlers_t *handlers, brw_kafka_t **out,
                  char *errbuf, size_t errlen);

/* The registry the module keeps its metrics in (borrowed, may be NULL;
 * set before brw_kafka_start): consumer_lag_messages (from librdkafka's
 * statistics, every 5 s), kafka_brokers_up, producer_queue_records (every
 * 250 ms), commits_total and commit_failures_total. */
void brw_kafka_set_metrics(brw_kafka_t *k, brw_metrics_t *m);

/* Subscribes to the input topic. Returns 0 or BRW_EKAFKA. */
int brw_kafka_start(brw_kafka_t *k);

/* Queues a record. Always succeeds for the caller: when the producer queue
 * is full the record waits in the backlog; when the producer refuses it for
 * good, on_refused runs before this returns. Returns 0, or BRW_EFATAL after
 * a fatal error or BRW_ENOMEM (then nothing is queued, the headers are
 * freed and the caller keeps the opaque). */
int brw_kafka_produce(brw_kafka_t *k, const brw_kafka_record_t *rec);

/* Records waiting for room in the producer queue. */
size_t brw_kafka_backlog(const brw_kafka_t *k);
/* Records produced and not yet acknowledged, backlog included. */
size_t brw_kafka_in_flight(const brw_kafka_t *k);

/* Commits offsets (next offset to read, per partition) of the input topic,
 * with each element's metadata (the completed-offset map) when set; the
 * list is borrowed. Counts commits_total (and commit_failures_total). An
 * asynchronous commit reports through on_commit_done;
 * brw_kafka_commits_in_flight() counts those not yet reported.
 * async = 1 returns at once (the result is logged); async = 0 waits: for
 * shutdown, and a revocation inside the consumer's close. Returns 0 or
 * BRW_EKAFKA. */
int brw_kafka_commit(brw_kafka_t *k, const brw_kafka_positions_t *offsets,
                     int async);

/* The revocation handed to on_revoke is over: the partitions are
 * unassigned and the next rebalance event is handled. */
void brw_kafka_revoke_done(brw_kafka_t *k);

size_t brw_kafka_commits_in_flight(const brw_kafka_t *k);

/* The group protocol the configuration asks for: "consumer" (KIP-848, when
 * kafka.group.protocol or kafka.consumer.group.protocol says so) or
 * "classic". */
const char *brw_kafka_group_protocol(const brw_config_t *cfg);
/* The classic protocol's assignor for a librdkafka version
 * (0xMMmmrrxx, as librdkafka numbers its versions): "cooperative-sticky"
 * from 2.10.1 on, where commits
 * during a cooperative rebalance no longer lose the assignment, else
 * "roundrobin" (eager). */
const char *brw_kafka_default_strategy(int version);

/* Exactly once (delivery.guarantee = exactly_once, docs/transactions.md).
 * The producer is transactional: transactional.id "<group.id>-<worker.
 * instance>" (kafka.producer.transactional.id overrides it),
 * transaction.timeout.ms 10 s unless kafka.* sets it. The application
 * (src/app_txn.c, driven by src/txn.c) produces only inside a transaction
 * and commits the input offsets with it; consumer commits
 * (brw_kafka_commit) are not used. */
int brw_kafka_transactional(const brw_kafka_t *k);

/* Exactly once: the transactional producer's last error as librdkafka
 * said it ("NAME: text", such as why the open transaction failed in the
 * background), "" when none. Borrowed, valid until the next drain. */
const char *brw_kafka_producer_error(const brw_kafka_t *k);

/* rd_kafka_begin_transaction (local, does not wait). Returns 0, or
 * BRW_EKAFKA (logged): the transaction cannot begin. */
int brw_kafka_txn_begin(brw_kafka_t *k);

/* Starts a transactional call on libuv's pool (they block); its result
 * comes through on_txn_done, never from inside this call. One at a time.
 * - INIT: init_transactions.
 * - COMMIT: send_offsets_to_transaction with `offsets` (borrowed, copied;
 *   with their metadata, and the consumer's group metadata), unless this
 *   transaction sent some already (a commit tried again), then
 *   commit_transaction. A commit waits for the backlog to be produced
 *   first.
 * - ABORT: abort_transaction; the backlog is dropped (the caller produces
 *   its records again).
 * - REBUILD: the producer is destroyed and made again from the same
 *   configuration (same transactional.id), then init_transactions; records
 *   in flight and the backlog are dropped. Then the committed offsets of
 *   the partitions in `offsets` (their numbers; may be NULL) are read for
 *   on_txn_done: a commit left in doubt by the old producer is resolved by
 *   then.
 * Returns 0, BRW_EINVAL (not transactional, a call under way, closing) or
 * BRW_ENOMEM. */
int brw_kafka_txn_call(brw_kafka_t *k, brw_txn_call_t call,
                       const brw_kafka_positions_t *offsets);

/* Pauses or resumes fetching of every assigned partition. */
void brw_kafka_pause(brw_kafka_t *k, int pause);
int brw_kafka_paused(const brw_kafka_t *k);

/* Input events not read yet on the partitions this member holds (the
 * backlog_events gauge; include/brw/backlog.h says how they are counted):
 * updated from the consumer's statistics (statistics.interval.ms) and, while
 * consumption is paused, from a watermark query of the paused partitions on
 * libuv's thread pool (librdkafka does not fetch a paused partition, so its
 * statistics keep the end of the last fetch). 0 when no partition is held;
 * -1 while none of the held partitions' numbers is known yet (before the
 * first statistics, or with statistics turned off). */
int64_t brw_kafka_unread(const brw_kafka_t *k);

/* Broker connection: 1 when at least one broker is up. */
int brw_kafka_connected(const brw_kafka_t *k);

/* Why no broker takes a client, when its security settings are the cause:
 * SASL authentication failed, the broker's certificate was not accepted
 * (unknown CA, hostname mismatch, expired: named), or the broker refused
 * the client certificate. One line with librdkafka's text, never a
 * password; borrowed, valid until the next drain of the queues. NULL while
 * no client has all its brokers down for such a reason; a client that
 * reaches a broker forgets its failure. */
const char *brw_kafka_auth_failure(const brw_kafka_t *k);

/* Internal, for the unit tests. The phrase brw_kafka_auth_failure starts
 * with for a librdkafka error (code and text), or NULL when the error is
 * not about the security settings. */
const char *brw__kafka_auth_failure(int err, const char *reason);
/* Why OpenSSL refused a broker's certificate (X509_V_ERR_*), in words, into
 * buf: "hostname mismatch: ...", "unknown CA: ...", ... broker_name is
 * librdkafka's "host:port". */
void brw__kafka_x509_failure(int x509_error, const char *broker_name, char *buf,
                             size_t len);

/* Whether a topic the worker uses exists, as the metadata probe last saw it.
 * The probe runs from brw_kafka_start on, on libuv's thread pool (a
 * metadata request blocks, up to 3 s), every 2 s while a topic is missing
 * or unknown and every 30 s once all three exist, not while every broker is
 * down; a consumer error saying the input
 * topic is missing marks it missing at once. *name (may be NULL) gets the
 * topic's name (borrowed, valid until close), *err (may be NULL) the last
 * error the cluster gave for it (0 when none). */
brw_topic_state_t brw_kafka_topic_state(const brw_kafka_t *k,
                                        brw_kafka_topic_t which,
                                        const char **name, int *err);

/* Whether librdkafka knows a client property (a kafka.* key without its
 * prefix) and accepts the value, checked on a scratch configuration.
 * Returns 0, BRW_ENOENT (unknown property), BRW_EINVAL (refused value;
 * librdkafka's reason in errbuf) or BRW_ENOMEM. */
int brw_kafka_conf_check(const char *prop, const char *value, char *errbuf,
                         size_t errlen);

/* The librdkafka version the process runs with ("2.14.2"), static. */
const char *brw_kafka_version_str(void);

/* Close, in the order shutdown needs:
 * brw_kafka_close_consumer: leaves the group (the revoke handler runs first,
 * with now = 1, so the application commits what is complete) and closes
 * the consumer; a rebalance event under way is finished first (see
 * brw_kafka_revoke_done).
 * brw_kafka_close: destroys both clients and closes the loop handles; cb runs
 * after the last handle closed. Records still in flight are abandoned (their
 * offsets were not committed, so they will be replayed). */
void brw_kafka_close_consumer(brw_kafka_t *k);
void brw_kafka_close(brw_kafka_t *k, void (*cb)(void *arg), void *arg);

#endif
