/* The exactly-once transaction cycle (SPEC §6 "Exactly once", issue 14), as
 * one pure state machine; src/app_txn.c carries out its steps in the worker.
 *
 * One Kafka transaction per commit interval holds the records completed in
 * it; its commit sends the input offsets those records complete with it
 * (docs/transactions.md). Every decision about that cycle passes through
 * brw_txn_on: an input (a record is ready, a tick, the transactional call in
 * flight answered, a delivery failed, a revocation, a stop) and the clock
 * come in, one step goes out: begin, produce these ids, start one
 * transactional call, these ids are committed, partitions may be released.
 * No I/O, no libuv, no librdkafka: the caller runs the transactional calls
 * on a thread of their own (they block) and feeds their results back, and
 * tests/unit/test_txn.c drives the whole policy with a fake world.
 *
 *           init ok                      tick (interval, keep-alive),
 *   INIT ------------> OPEN -----------> revoke, stop
 *    |                 ^  ^ \                  |
 *    |      abort ok,  |  |  \ delivery        v
 *    |      redo       |  |   `failed,  ---- COMMITTING --- ok: committed,
 *    |                 |  |   lost revoke    |        |     begin again
 *    |          ABORTING <---------------- requires   | retriable: again
 *    | fatal          |      abort, too many retries  | after a backoff
 *    v                | fatal, too many retries       |
 *   REBUILDING <------+-------------------------------' fatal
 *    | init ok: begin, redo every uncommitted id
 *    `--> OPEN                         stop, once all is committed: CLOSED
 *
 * Records are tracked by an opaque 64-bit id the caller assigns; the caller
 * keeps each record's bytes and completion (the input offsets it
 * completes). The module keeps only ids, in two growable arrays: the ids of
 * the transaction (open, committing or being redone) and the ids that came
 * while it could not take them (a call in flight). Memory is 8 bytes per
 * uncommitted id (the arrays grow by doubling and are kept for reuse), so
 * it is bounded by what the caller hands in and has not seen committed:
 * the caller's backpressure (max.tracked) bounds it.
 *
 * Invariants (checked by test_txn's random sequences):
 * - At most one transactional call is in flight; begin and produce are
 *   asked for only when none is, produce only after the begin of the
 *   transaction it goes into.
 * - Ids are committed in the order they were made ready, each at most
 *   once: an id is reported committed only by the ok of the commit whose
 *   `commit` list held it, and is forgotten then. A commit covers exactly
 *   the ids produced since its begin.
 * - Nothing is lost: an id made ready is committed, or handed back in
 *   `dropped` (a lost assignment, whose new owners redo it; a stop that
 *   ends with it uncommitted), and nothing else. After an abort or a
 *   rebuild every uncommitted id is produced again, the older ones first.
 * - A revocation's release comes only when no transaction with records is
 *   open or in flight: after a commit that started after the revocation
 *   came and that covers every id ready then, or (lost) after the abort,
 *   with those ids dropped.
 * - An open producer commits at least once per keep-alive period, with
 *   offsets only when it has no records, so that its transactional id does
 *   not expire (transactional.id.expiration.ms). */
#ifndef BRW_TXN_H
#define BRW_TXN_H

#include "brw/backoff.h"

#include <stddef.h>
#include <stdint.h>

#define BRW_TXN_STATES(X)                                                      \
  X(INIT, "init")             /* init_transactions in flight (or due) */       \
  X(OPEN, "open")             /* a transaction is open: records go in */       \
  X(COMMITTING, "committing") /* send_offsets + commit in flight (or due) */   \
  X(ABORTING, "aborting")     /* abort in flight (or due) */                   \
  X(REBUILDING, "rebuilding") /* fatal: a new producer is being made */        \
  X(CLOSED, "closed")         /* stopped: nothing more happens */
typedef enum {
#define BRW_X_(e, s) BRW_TXN_##e,
  BRW_TXN_STATES(BRW_X_)
#undef BRW_X_
      BRW_TXN__COUNT
} brw_txn_state_t;

/* The state's name, static ("init", ...). */
const char *brw_txn_state_name(brw_txn_state_t s);

/* The transactional calls, run one at a time on the caller's
 * transactional thread. */
typedef enum {
  BRW_TXN_CALL_NONE = 0,
  BRW_TXN_CALL_INIT,   /* rd_kafka_init_transactions (again: it resumes) */
  BRW_TXN_CALL_COMMIT, /* send_offsets_to_transaction, then
                          commit_transaction(-1) */
  BRW_TXN_CALL_ABORT,  /* rd_kafka_abort_transaction */
  BRW_TXN_CALL_REBUILD /* destroy the producer, make a new one with the
                          same transactional.id, init_transactions */
} brw_txn_call_t;

/* The call's name, static ("none", "init", "commit", "abort", "rebuild"). */
const char *brw_txn_call_name(brw_txn_call_t c);

/* How a call ended: the flags of its rd_kafka_error_t, translated by the
 * caller (an error with none of them is fatal, docs/transactions.md). */
typedef enum {
  BRW_TXN_OK = 0,
  BRW_TXN_RETRIABLE,      /* call it again */
  BRW_TXN_REQUIRES_ABORT, /* abort, then redo */
  BRW_TXN_FATAL           /* rebuild the producer */
} brw_txn_result_t;

/* The result's name, static ("ok", "retriable", "requires_abort",
 * "fatal"). */
const char *brw_txn_result_name(brw_txn_result_t r);

typedef struct {
  uint64_t interval_ms;  /* commit.interval: how long a transaction stays
                            open while it has records */
  uint64_t keepalive_ms; /* the longest an open producer goes without a
                            commit (well under the broker's
                            transactional.id.expiration.ms, 7 days) */
  uint64_t retry_min_ms; /* backoff between retriable attempts */
  uint64_t retry_max_ms;
  double jitter;               /* 0..1, as brw_backoff_ms */
  unsigned max_commit_retries; /* retriable commit results before aborting */
  unsigned max_abort_retries;  /* retriable abort results before rebuilding */
} brw_txn_opts_t;

typedef enum {
  BRW_TXIN_READY = 0,       /* record `id` is complete and must be published */
  BRW_TXIN_TICK,            /* the timer the last step asked for fired */
  BRW_TXIN_CALL_DONE,       /* the call in flight ended with `result` */
  BRW_TXIN_DELIVERY_FAILED, /* a record of transaction `seq` failed */
  BRW_TXIN_REVOKE,          /* a rebalance revokes partitions (`lost`) */
  BRW_TXIN_STOP             /* shutdown: commit what is ready, then close */
} brw_txn_input_kind_t;

/* The input's name, static ("ready", "tick", "call_done",
 * "delivery_failed", "revoke", "stop"). */
const char *brw_txn_input_name(brw_txn_input_kind_t k);

typedef struct {
  brw_txn_input_kind_t kind;
  uint64_t now;            /* the monotonic clock (ms) */
  uint64_t id;             /* READY; DELIVERY_FAILED (for the log only) */
  uint64_t seq;            /* DELIVERY_FAILED: the transaction the record
                              was produced into (step.seq then) */
  brw_txn_result_t result; /* CALL_DONE */
  int lost;                /* REVOKE: the assignment is lost */
} brw_txn_input_t;

/* One step, carried out in this order: committed, dropped, release,
 * closed, begin, produce, call, tick. The id arrays belong to the module
 * and stay valid until the next brw_txn_on or brw_txn_free. */
typedef struct {
  /* These ids are committed, in the order they were made ready: mark
   * the offsets they complete done and free them. */
  const uint64_t *committed;
  size_t n_committed;
  /* These ids will not be committed by this producer (a lost assignment:
   * their partitions' new owners redo them; or left over at close): free
   * them, their offsets stay uncommitted. */
  const uint64_t *dropped;
  size_t n_dropped;
  int release;  /* the revocation's partitions may be released now */
  int closed;   /* the stop is done: the producer may be closed */
  int begin;    /* call rd_kafka_begin_transaction (local, no wait) */
  uint64_t seq; /* the open transaction's number, changed by each begin:
                   tag each record produced with it, so that a late
                   delivery failure of an older one is told apart */
  /* Produce these ids into the open transaction, in this order. */
  const uint64_t *produce;
  size_t n_produce;
  /* Start this call on the transactional thread. COMMIT covers exactly
   * the ids in `commit` (every id produced since the begin): send the
   * offsets they complete plus every earlier committed one, and when it
   * holds none (the keep-alive, a revocation or stop with nothing ready)
   * send the positions held anyway, so that the transaction is not
   * empty. */
  brw_txn_call_t call;
  const uint64_t *commit;
  size_t n_commit;
  int tick; /* arm the timer to fire after tick_in_ms; 0: no
               tick is needed until a later step says so */
  uint64_t tick_in_ms;
  int refused; /* READY after close, or out of memory: the id was
                  not taken (the caller keeps the record) */
} brw_txn_step_t;

typedef struct brw_txn_s brw_txn_t;

/* A new cycle: *out asks for the first init_transactions (the caller made
 * the producer). `seed` seeds the backoff's jitter. Returns NULL when out
 * of memory. Free it with brw_txn_free. */
brw_txn_t *brw_txn_new(const brw_txn_opts_t *o, uint64_t seed,
                       brw_txn_step_t *out);

/* Frees the cycle and its id arrays; the ids in it are the caller's to
 * free (brw_txn_pending counts them). NULL is ignored. */
void brw_txn_free(brw_txn_t *t);

/* The transition function: applies `in` and says what to do in *out.
 * Inputs that cannot apply in the current state (a result with no call in
 * flight, a delivery failure of another transaction, anything after
 * CLOSED) change nothing and ask for nothing. Returns 0, or BRW_ENOMEM
 * when a READY id could not be kept (step.refused, nothing changed). */
int brw_txn_on(brw_txn_t *t, const brw_txn_input_t *in, brw_txn_step_t *out);

brw_txn_state_t brw_txn_state(const brw_txn_t *t);

/* How many ids were taken and are neither committed nor dropped. */
size_t brw_txn_pending(const brw_txn_t *t);

#endif
