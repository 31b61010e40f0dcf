/* The exactly-once transaction cycle (src/txn.c) driven by a fake world
 * that plays the caller and a transactional producer: every path by name,
 * then random sequences of records, ticks, call results of every class,
 * delivery failures, revocations and stops, checked against the
 * invariants brw/txn.h promises (one call at a time, produce only inside a
 * begun transaction, a commit covers exactly what was produced since its
 * begin, each id committed at most once and in the order it was made
 * ready, nothing lost, releases only with no transaction holding records,
 * the keep-alive). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/txn.h"

#define SEC 1000ULL
#define HOUR (3600 * SEC)
#define MAXID 2048

enum { ST_NONE = 0, ST_READY, ST_COMMITTED, ST_DROPPED };

/* The caller and its producer, as the worker would keep them. */
typedef struct {
  brw_txn_t *t;
  brw_txn_opts_t o;
  uint64_t now;
  brw_txn_step_t last;
  /* the producer */
  int inited;          /* init_transactions succeeded on this producer */
  int in_txn;          /* begun; no commit or abort started since */
  uint64_t seq;        /* the transaction begun last */
  brw_txn_call_t call; /* in flight */
  uint64_t call_ids[MAXID];
  size_t n_call_ids;
  uint64_t produced[MAXID]; /* since the begin */
  size_t n_produced;
  int ending; /* a commit of the transaction started: it may be retried */
  int doomed; /* a record of the transaction failed: its commit fails */
  /* the timer */
  int armed;
  uint64_t due;
  /* the ids: 1..n_ids were made ready */
  uint8_t status[MAXID + 1];
  uint8_t at_revoke[MAXID + 1]; /* uncommitted when the revocation came */
  uint64_t n_ids;
  uint64_t last_committed; /* commits keep the order ids were made ready */
  int revoke_pending, revoke_lost;
  uint64_t revoke_upto;
  int stopping, closed;
  uint64_t stop_upto;
  uint64_t last_commit_ok;
  int commits, aborts, rebuilds, releases, drops, redos;
} world_t;

static brw_txn_opts_t default_opts(void) {
  brw_txn_opts_t o;
  memset(&o, 0, sizeof(o));
  o.interval_ms = 1 * SEC;
  o.keepalive_ms = 1 * HOUR;
  o.retry_min_ms = 100;
  o.retry_max_ms = 10 * SEC;
  o.jitter = 0;
  o.max_commit_retries = 3;
  o.max_abort_retries = 3;
  return o;
}

static int ids_equal(const uint64_t *a, size_t na, const uint64_t *b,
                     size_t nb) {
  return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

/* The ids made ready and neither committed nor dropped, in order. */
static size_t uncommitted(const world_t *w, uint64_t *out) {
  size_t n = 0;
  for (uint64_t id = 1; id <= w->n_ids; id++)
    if (w->status[id] == ST_READY)
      out[n++] = id;
  return n;
}

/* Carries a step out as the caller does, in the documented order, checking
 * what every step must satisfy. */
static void apply(world_t *w, const brw_txn_step_t *st) {
  w->last = *st;
  brw_txn_state_t s = brw_txn_state(w->t);
  for (size_t i = 0; i < st->n_committed; i++) {
    uint64_t id = st->committed[i];
    assert_true(id >= 1 && id <= w->n_ids);
    assert_int_equal(w->status[id], ST_READY); /* committed once */
    assert_true(id > w->last_committed);       /* in order */
    w->last_committed = id;
    w->status[id] = ST_COMMITTED;
  }
  if (st->n_dropped) /* only a lost assignment or a close drops */
    assert_true((w->revoke_pending && w->revoke_lost) || st->closed);
  for (size_t i = 0; i < st->n_dropped; i++) {
    uint64_t id = st->dropped[i];
    assert_int_equal(w->status[id], ST_READY);
    w->status[id] = ST_DROPPED;
    w->drops++;
  }
  if (st->release) {
    assert_true(w->revoke_pending || w->closed);
    /* No transaction holds records, none is in flight. */
    assert_int_equal(w->call, BRW_TXN_CALL_NONE);
    assert_false(w->in_txn && w->n_produced > 0);
    /* What was uncommitted at the revocation is committed now (or,
     * lost, dropped). */
    for (uint64_t id = 1; id <= w->revoke_upto; id++) {
      if (!w->at_revoke[id])
        continue;
      w->at_revoke[id] = 0;
      if (w->revoke_lost)
        assert_int_not_equal(w->status[id], ST_READY);
      else
        assert_int_equal(w->status[id], ST_COMMITTED);
    }
    w->revoke_pending = 0;
    w->releases++;
  }
  if (st->closed) {
    assert_true(w->stopping);
    assert_int_equal(s, BRW_TXN_CLOSED);
    assert_int_equal(w->call, BRW_TXN_CALL_NONE);
    for (uint64_t id = 1; id <= w->stop_upto; id++)
      assert_int_not_equal(w->status[id], ST_READY);
    for (uint64_t id = 1; id <= w->n_ids; id++)
      assert_int_not_equal(w->status[id], ST_READY);
    w->closed = 1;
    w->in_txn = 0;
  }
  if (st->begin) {
    assert_true(w->inited);
    assert_false(w->in_txn);
    assert_int_equal(w->call, BRW_TXN_CALL_NONE);
    assert_true(st->seq > w->seq);
    w->seq = st->seq;
    w->in_txn = 1;
    w->n_produced = 0;
    w->doomed = 0;
    w->ending = 0;
    /* A new transaction starts with every uncommitted id, in order: after
     * a commit the buffered ones, after an abort or a rebuild the redo. */
    uint64_t want[MAXID];
    size_t n = uncommitted(w, want);
    assert_true(ids_equal(st->produce, st->n_produce, want, n));
    if (n)
      w->redos++;
  }
  for (size_t i = 0; i < st->n_produce; i++) {
    uint64_t id = st->produce[i];
    assert_true(w->in_txn);
    assert_int_equal(w->call, BRW_TXN_CALL_NONE);
    assert_int_equal(w->status[id], ST_READY);
    assert_int_equal(st->seq, w->seq);
    if (w->n_produced)
      assert_true(id > w->produced[w->n_produced - 1]);
    w->produced[w->n_produced++] = id;
  }
  if (st->call != BRW_TXN_CALL_NONE) {
    assert_int_equal(w->call, BRW_TXN_CALL_NONE); /* one at a time */
    switch (st->call) {
    case BRW_TXN_CALL_INIT:
      assert_false(w->inited);
      break;
    case BRW_TXN_CALL_REBUILD:
      w->inited = 0;
      w->in_txn = 0;
      w->ending = 0;
      w->n_produced = 0;
      w->rebuilds++;
      break;
    case BRW_TXN_CALL_COMMIT:
      assert_true(w->inited);
      assert_true(w->in_txn || w->ending); /* or a retry */
      /* It covers exactly what was produced since the begin. */
      assert_true(
          ids_equal(st->commit, st->n_commit, w->produced, w->n_produced));
      w->in_txn = 0;
      w->ending = 1;
      break;
    case BRW_TXN_CALL_ABORT:
      assert_true(w->inited);
      w->in_txn = 0;
      w->ending = 0;
      w->aborts++;
      break;
    default:
      fail_msg("no such call");
    }
    w->call = st->call;
    w->n_call_ids = st->n_commit;
    if (st->n_commit)
      memcpy(w->call_ids, st->commit, st->n_commit * sizeof(uint64_t));
  }
  w->armed = st->tick;
  w->due = w->now + st->tick_in_ms;
  /* Never stuck: a call is out, the timer is armed, or it is closed. */
  s = brw_txn_state(w->t);
  if (s != BRW_TXN_CLOSED)
    assert_true(w->call != BRW_TXN_CALL_NONE || w->armed);
  if (s == BRW_TXN_OPEN)
    assert_true(w->in_txn && w->call == BRW_TXN_CALL_NONE);
  size_t n_ready = 0;
  for (uint64_t id = 1; id <= w->n_ids; id++)
    n_ready += w->status[id] == ST_READY;
  assert_int_equal(brw_txn_pending(w->t), n_ready);
}

static void start(world_t *w, brw_txn_opts_t o) {
  memset(w, 0, sizeof(*w));
  w->o = o;
  w->now = 1000 * SEC;
  brw_txn_step_t st;
  w->t = brw_txn_new(&w->o, 42, &st);
  assert_non_null(w->t);
  assert_int_equal(brw_txn_state(w->t), BRW_TXN_INIT);
  assert_int_equal(st.call, BRW_TXN_CALL_INIT);
  apply(w, &st);
}

static void finish(world_t *w) {
  brw_txn_free(w->t);
}

static void input(world_t *w, brw_txn_input_t in) {
  brw_txn_step_t st;
  in.now = w->now;
  int rc = brw_txn_on(w->t, &in, &st);
  assert_int_equal(rc, 0);
  apply(w, &st);
}

/* Record n_ids + 1 is complete. */
static uint64_t ready(world_t *w) {
  assert_true(w->n_ids < MAXID);
  uint64_t id = w->n_ids + 1;
  brw_txn_step_t st;
  brw_txn_input_t in = {.kind = BRW_TXIN_READY, .now = w->now, .id = id};
  assert_int_equal(brw_txn_on(w->t, &in, &st), 0);
  if (st.refused) {
    assert_true(w->closed);
    return 0;
  }
  w->n_ids = id;
  w->status[id] = ST_READY;
  apply(w, &st);
  return id;
}

static void tick(world_t *w) {
  brw_txn_input_t in = {.kind = BRW_TXIN_TICK};
  input(w, in);
}

/* The timer fires when due, and a tick that was due moves on: a call
 * starts or the next tick is later (no spinning at one instant). */
static void fire(world_t *w) {
  assert_true(w->armed);
  if (w->due > w->now)
    w->now = w->due;
  tick(w);
  assert_true(w->last.call != BRW_TXN_CALL_NONE || !w->armed ||
              w->due > w->now);
}

/* The call in flight ends with `r` (a failed delivery in the transaction
 * makes librdkafka's commit a requires-abort). */
static void done(world_t *w, brw_txn_result_t r) {
  brw_txn_call_t c = w->call;
  assert_int_not_equal(c, BRW_TXN_CALL_NONE);
  if (c == BRW_TXN_CALL_COMMIT && w->doomed && r == BRW_TXN_OK)
    r = BRW_TXN_REQUIRES_ABORT;
  /* The ids it covered (a commit may start again within the step). */
  uint64_t *ids = malloc(sizeof(uint64_t) * (w->n_call_ids + 1));
  size_t n_ids = w->n_call_ids;
  assert_non_null(ids);
  if (n_ids)
    memcpy(ids, w->call_ids, n_ids * sizeof(uint64_t));
  w->call = BRW_TXN_CALL_NONE;
  if ((c == BRW_TXN_CALL_INIT || c == BRW_TXN_CALL_REBUILD) && r == BRW_TXN_OK)
    w->inited = 1;
  brw_txn_input_t in = {.kind = BRW_TXIN_CALL_DONE, .result = r};
  input(w, in);
  if (c == BRW_TXN_CALL_COMMIT && r == BRW_TXN_OK) {
    /* Exactly the ids the commit covered are committed. */
    assert_true(ids_equal(w->last.committed, w->last.n_committed, ids, n_ids));
    w->last_commit_ok = w->now;
    w->commits++;
  } else {
    assert_int_equal(w->last.n_committed, 0);
  }
  free(ids);
}

static void revoke(world_t *w, int lost) {
  assert_false(w->revoke_pending);
  w->revoke_pending = 1;
  w->revoke_lost = lost;
  w->revoke_upto = w->n_ids;
  for (uint64_t id = 1; id <= w->n_ids; id++)
    w->at_revoke[id] = w->status[id] == ST_READY;
  brw_txn_input_t in = {.kind = BRW_TXIN_REVOKE, .lost = lost};
  input(w, in);
}

static void stop(world_t *w) {
  if (!w->stopping)
    w->stop_upto = w->n_ids;
  w->stopping = 1;
  brw_txn_input_t in = {.kind = BRW_TXIN_STOP};
  input(w, in);
}

/* A record of transaction `seq` failed. */
static void delivery_failed(world_t *w, uint64_t id, uint64_t seq) {
  if (seq == w->seq)
    w->doomed = 1;
  brw_txn_input_t in = {.kind = BRW_TXIN_DELIVERY_FAILED, .id = id, .seq = seq};
  input(w, in);
}

#define ASSERT_IDS(ptr, n, ...)                                                \
  do {                                                                         \
    const uint64_t want_[] = {__VA_ARGS__};                                    \
    assert_true(                                                               \
        ids_equal((ptr), (n), want_, sizeof(want_) / sizeof(want_[0])));       \
  } while (0)

/* init ok: an empty transaction begins. */
static void opened(world_t *w) {
  done(w, BRW_TXN_OK);
  assert_int_equal(brw_txn_state(w->t), BRW_TXN_OPEN);
  assert_true(w->last.begin);
}

/* A world with an open transaction holding ids 1..n. */
static void open_with(world_t *w, int n) {
  start(w, default_opts());
  opened(w);
  for (int i = 0; i < n; i++)
    ready(w);
}

/* The timer ends the interval and the commit succeeds. */
static void commit_ok(world_t *w) {
  fire(w);
  assert_int_equal(w->last.call, BRW_TXN_CALL_COMMIT);
  done(w, BRW_TXN_OK);
}

/* ---- paths by name --------------------------------------------------- */

static void test_happy_cycle(void **state) {
  world_t w;
  start(&w, default_opts());
  ready(&w); /* buffered while init runs */
  assert_int_equal(w.last.n_produce, 0);
  opened(&w);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1);
  ready(&w);
  ready(&w);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 3);
  assert_true(w.last.tick);
  assert_int_equal(w.last.tick_in_ms, 1 * SEC);
  w.now += 500;
  tick(&w); /* early: nothing */
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  fire(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  ASSERT_IDS(w.last.commit, w.last.n_commit, 1, 2, 3);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_COMMITTING);
  ready(&w); /* during the commit: buffered */
  ready(&w);
  assert_int_equal(w.last.n_produce, 0);
  assert_false(w.last.tick);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1, 2, 3);
  assert_true(w.last.begin);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 4, 5);
  fire(&w);
  ASSERT_IDS(w.last.commit, w.last.n_commit, 4, 5);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 4, 5);
  assert_int_equal(brw_txn_pending(w.t), 0);
  assert_int_equal(w.commits, 2);
  finish(&w);
}

/* An empty interval commits nothing, until the keep-alive is due: then a
 * commit with no ids (offsets only). */
static void test_empty_interval_keepalive(void **state) {
  world_t w;
  brw_txn_opts_t o = default_opts();
  o.keepalive_ms = 10 * SEC;
  start(&w, o);
  opened(&w);
  uint64_t opened_at = w.now;
  for (int i = 0; i < 9; i++) {
    fire(&w);
    assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
    assert_true(w.last.tick);
  }
  fire(&w);
  assert_int_equal(w.now, opened_at + 10 * SEC);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  assert_int_equal(w.last.n_commit, 0);
  done(&w, BRW_TXN_OK);
  assert_int_equal(w.last.n_committed, 0);
  assert_true(w.last.begin);
  /* The next keep-alive is a period after that commit. */
  for (int i = 0; i < 9; i++) {
    fire(&w);
    assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  }
  fire(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  finish(&w);
}

static void test_commit_retriable(void **state) {
  world_t w;
  open_with(&w, 1);
  fire(&w);
  done(&w, BRW_TXN_RETRIABLE);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  assert_true(w.last.tick);
  assert_int_equal(w.last.tick_in_ms, 100); /* retry.min */
  tick(&w);                                 /* too early */
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  fire(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  ASSERT_IDS(w.last.commit, w.last.n_commit, 1);
  done(&w, BRW_TXN_RETRIABLE);
  assert_int_equal(w.last.tick_in_ms, 200); /* backing off */
  commit_ok(&w);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1);
  assert_int_equal(w.aborts, 0);
  finish(&w);
}

/* A commit that stays retriable past max_commit_retries is aborted and
 * redone. */
static void test_commit_retriable_too_often(void **state) {
  world_t w;
  open_with(&w, 1);
  fire(&w);
  ready(&w); /* buffered behind the commit */
  for (int i = 0; i < 3; i++) {
    done(&w, BRW_TXN_RETRIABLE);
    fire(&w);
    assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  }
  done(&w, BRW_TXN_RETRIABLE);
  assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_ABORTING);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.begin);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1, 2);
  fire(&w);
  ASSERT_IDS(w.last.commit, w.last.n_commit, 1, 2);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1, 2);
  finish(&w);
}

/* requires-abort: abort, then the aborted ids again first, in order, then
 * those buffered meanwhile; committed once. */
static void test_requires_abort_redo(void **state) {
  world_t w;
  open_with(&w, 2);
  fire(&w);
  uint64_t seq = w.seq;
  ready(&w);
  done(&w, BRW_TXN_REQUIRES_ABORT);
  assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  ready(&w);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.begin);
  assert_true(w.last.seq > seq);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1, 2, 3, 4);
  commit_ok(&w);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1, 2, 3, 4);
  assert_int_equal(w.commits, 1);
  finish(&w);
}

/* A delivery failure in the open transaction aborts it at once; a late
 * failure of an older transaction changes nothing. */
static void test_delivery_failed(void **state) {
  world_t w;
  open_with(&w, 2);
  uint64_t seq = w.seq;
  delivery_failed(&w, 1, seq - 1); /* another transaction's: nothing */
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_OPEN);
  delivery_failed(&w, 2, seq);
  assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  ready(&w);
  assert_int_equal(w.last.n_produce, 0);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1, 2, 3);
  delivery_failed(&w, 2, seq); /* late, of the aborted one: nothing */
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  fire(&w);
  /* A failure while the commit runs: the commit fails, then the redo. */
  delivery_failed(&w, 3, w.seq);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  done(&w, BRW_TXN_OK); /* the world makes it a requires-abort */
  assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  done(&w, BRW_TXN_OK); /* the second abort in a row: the redo waits */
  assert_int_equal(w.last.n_produce, 0);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_ABORTING);
  fire(&w);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1, 2, 3);
  commit_ok(&w);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1, 2, 3);
  finish(&w);
}

/* A record that fails at once every time: from the second abort in a row
 * the redo waits a backoff that grows (retry.min doubling to retry.max),
 * instead of spinning abort after abort; a commit that goes well resets
 * it, and a lost assignment drops the records at once, not after the
 * wait. */
static void test_aborts_back_off(void **state) {
  world_t w;
  open_with(&w, 1);
  uint64_t prev_gap = 0;
  for (int i = 0; i < 6; i++) {
    delivery_failed(&w, 1, w.seq);
    assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
    uint64_t t0 = w.now;
    done(&w, BRW_TXN_OK);
    if (i == 0) {
      ASSERT_IDS(w.last.produce, w.last.n_produce, 1); /* at once */
      continue;
    }
    assert_int_equal(w.last.n_produce, 0);
    fire(&w);
    ASSERT_IDS(w.last.produce, w.last.n_produce, 1);
    /* retry.min 100 ms doubling (no jitter in these cases). */
    uint64_t gap = w.now - t0;
    assert_int_equal(gap, 100u << (i - 1));
    assert_true(gap > prev_gap);
    prev_gap = gap;
  }
  fire(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1);
  /* Reset: the next abort redoes at once. */
  ready(&w);
  delivery_failed(&w, 2, w.seq);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 2);
  /* Waiting for a redo, a lost assignment drops at once. */
  delivery_failed(&w, 2, w.seq);
  done(&w, BRW_TXN_OK);
  assert_int_equal(w.last.n_produce, 0);
  revoke(&w, 1);
  assert_true(w.last.release);
  ASSERT_IDS(w.last.dropped, w.last.n_dropped, 2);
  /* Waiting for a redo, a stop does not wait out the backoff: the redo
   * and its commit go at once. */
  ready(&w);
  delivery_failed(&w, 3, w.seq);
  done(&w, BRW_TXN_OK);
  assert_int_equal(w.last.n_produce, 0);
  stop(&w);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 3);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.closed);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 3);
  finish(&w);
}

/* Fatal during a commit: the producer is rebuilt (a retriable init
 * resumes after a backoff), then every uncommitted id is produced again,
 * and committed once. */
static void test_fatal_commit_rebuild(void **state) {
  world_t w;
  open_with(&w, 2);
  fire(&w);
  ready(&w);
  done(&w, BRW_TXN_FATAL);
  assert_int_equal(w.last.call, BRW_TXN_CALL_REBUILD);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_REBUILDING);
  ready(&w);
  done(&w, BRW_TXN_RETRIABLE);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  fire(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_INIT); /* resumes */
  done(&w, BRW_TXN_FATAL); /* a new producer again, after a backoff */
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  fire(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_REBUILD);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.begin);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1, 2, 3, 4);
  commit_ok(&w);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1, 2, 3, 4);
  assert_int_equal(w.commits, 1);
  assert_int_equal(w.rebuilds, 2);
  finish(&w);
}

/* Fatal during an abort, and an abort that keeps failing: both rebuild. */
static void test_fatal_abort(void **state) {
  world_t w;
  open_with(&w, 1);
  fire(&w);
  done(&w, BRW_TXN_REQUIRES_ABORT);
  done(&w, BRW_TXN_FATAL);
  assert_int_equal(w.last.call, BRW_TXN_CALL_REBUILD);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1);
  delivery_failed(&w, 1, w.seq);
  for (int i = 0; i < 3; i++) {
    done(&w, BRW_TXN_RETRIABLE);
    fire(&w);
    assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  }
  done(&w, BRW_TXN_RETRIABLE);
  assert_int_equal(w.last.call, BRW_TXN_CALL_REBUILD);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1);
  commit_ok(&w);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1);
  finish(&w);
}

/* A revocation commits every id ready before it, then releases. */
static void test_revoke_commits_first(void **state) {
  world_t w;
  open_with(&w, 2);
  revoke(&w, 0);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT); /* at once */
  assert_false(w.last.release);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1, 2);
  assert_true(w.last.release);
  /* Revoked while a commit runs, with ids buffered behind it: a second
   * commit takes them before the release. */
  ready(&w);
  fire(&w);
  ready(&w);
  revoke(&w, 0);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 3);
  assert_false(w.last.release);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 4);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  ready(&w); /* after the revocation: not waited for */
  done(&w, BRW_TXN_REQUIRES_ABORT);
  done(&w, BRW_TXN_OK); /* the redo commits at once */
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  ASSERT_IDS(w.last.commit, w.last.n_commit, 4, 5);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.release);
  /* With nothing ready, the commit carries offsets only. */
  revoke(&w, 0);
  assert_int_equal(w.last.n_commit, 0);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.release);
  assert_int_equal(w.releases, 3);
  finish(&w);
}

/* A lost assignment aborts, drops what is uncommitted and releases. */
static void test_revoke_lost_aborts(void **state) {
  world_t w;
  open_with(&w, 0);
  revoke(&w, 1); /* nothing open: at once */
  assert_true(w.last.release);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  ready(&w);
  ready(&w);
  revoke(&w, 1);
  assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  assert_false(w.last.release);
  ready(&w);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.dropped, w.last.n_dropped, 1, 2, 3);
  assert_true(w.last.release);
  assert_true(w.last.begin);
  assert_int_equal(w.last.n_produce, 0);
  /* Lost while a commit runs: the commit's answer decides, the buffered
   * ids are dropped. */
  ready(&w);
  fire(&w);
  ready(&w);
  revoke(&w, 1);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 4);
  ASSERT_IDS(w.last.dropped, w.last.n_dropped, 5);
  assert_true(w.last.release);
  /* Lost while a commit waits out a retry: it aborts instead. */
  ready(&w);
  fire(&w);
  done(&w, BRW_TXN_RETRIABLE);
  revoke(&w, 1);
  assert_int_equal(w.last.call, BRW_TXN_CALL_ABORT);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.dropped, w.last.n_dropped, 6);
  assert_true(w.last.release);
  finish(&w);
}

/* A stop commits what is ready, then closes; afterwards nothing is taken
 * and a revocation is released at once. */
static void test_stop(void **state) {
  world_t w;
  open_with(&w, 1);
  stop(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  ready(&w); /* after the stop: handed back at the close */
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.committed, w.last.n_committed, 1);
  ASSERT_IDS(w.last.dropped, w.last.n_dropped, 2);
  assert_true(w.last.closed);
  assert_false(w.last.begin);
  assert_false(w.last.tick);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_CLOSED);
  assert_int_equal(ready(&w), 0); /* refused */
  stop(&w);
  tick(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  revoke(&w, 0);
  assert_true(w.last.release);
  finish(&w);

  /* Stopped during init: once init is done, an (empty) commit, closed. */
  start(&w, default_opts());
  ready(&w);
  stop(&w);
  assert_int_equal(w.last.call, BRW_TXN_CALL_NONE);
  done(&w, BRW_TXN_OK);
  ASSERT_IDS(w.last.produce, w.last.n_produce, 1);
  assert_int_equal(w.last.call, BRW_TXN_CALL_COMMIT);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.closed);
  finish(&w);
}

/* Inputs that cannot apply change nothing and ask for nothing. */
static void test_impossible_inputs(void **state) {
  world_t w;
  start(&w, default_opts());
  brw_txn_step_t st;
  brw_txn_input_t in = {.kind = BRW_TXIN_TICK, .now = w.now};
  assert_int_equal(brw_txn_on(w.t, &in, &st), 0); /* init in flight */
  assert_int_equal(st.call, BRW_TXN_CALL_NONE);
  assert_false(st.tick || st.begin || st.release);
  in.kind = BRW_TXIN_DELIVERY_FAILED;
  brw_txn_on(w.t, &in, &st);
  assert_int_equal(st.call, BRW_TXN_CALL_NONE);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_INIT);
  opened(&w);
  ready(&w);
  in.kind = BRW_TXIN_CALL_DONE; /* no call in flight */
  in.result = BRW_TXN_FATAL;
  brw_txn_on(w.t, &in, &st);
  assert_int_equal(st.call, BRW_TXN_CALL_NONE);
  assert_int_equal(st.n_committed + st.n_dropped + st.n_produce, 0);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_OPEN);
  in.result = BRW_TXN_OK;
  brw_txn_on(w.t, &in, &st);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_OPEN);
  assert_false(st.begin);
  commit_ok(&w);
  stop(&w);
  done(&w, BRW_TXN_OK);
  assert_true(w.last.closed);
  in.kind = BRW_TXIN_CALL_DONE;
  brw_txn_on(w.t, &in, &st);
  assert_false(st.closed || st.begin);
  assert_int_equal(brw_txn_state(w.t), BRW_TXN_CLOSED);
  finish(&w);
  brw_txn_free(NULL);
  for (int s = 0; s <= BRW_TXN__COUNT; s++)
    assert_non_null(brw_txn_state_name((brw_txn_state_t)s));
  assert_string_equal(brw_txn_state_name(BRW_TXN_REBUILDING), "rebuilding");
  assert_string_equal(brw_txn_call_name(BRW_TXN_CALL_REBUILD), "rebuild");
  assert_string_equal(brw_txn_result_name(BRW_TXN_REQUIRES_ABORT),
                      "requires_abort");
  assert_string_equal(brw_txn_input_name(BRW_TXIN_STOP), "stop");
  assert_string_equal(brw_txn_input_name((brw_txn_input_kind_t)99), "?");
}

/* ---- properties over random sequences -------------------------------- */

static uint64_t pick(brw_rng_t *r, uint64_t n) {
  return n ? brw_rng_next(r) % n : 0;
}

static brw_txn_result_t random_result(brw_rng_t *r) {
  uint64_t k = pick(r, 20);
  return k < 11   ? BRW_TXN_OK
         : k < 15 ? BRW_TXN_RETRIABLE
         : k < 18 ? BRW_TXN_REQUIRES_ABORT
                  : BRW_TXN_FATAL;
}

/* Only successful calls and due ticks, until nothing is pending: then
 * every id made ready is committed exactly once or was dropped (checked
 * where it happened: a lost assignment or the close). */
static void settle(world_t *w) {
  for (int guard = 0;; guard++) {
    assert_true(guard < 10000);
    if (w->call != BRW_TXN_CALL_NONE) {
      w->now += 5;
      done(w, BRW_TXN_OK);
      continue;
    }
    brw_txn_state_t s = brw_txn_state(w->t);
    if (s == BRW_TXN_CLOSED ||
        (s == BRW_TXN_OPEN && brw_txn_pending(w->t) == 0 && !w->revoke_pending))
      break;
    fire(w);
  }
  for (uint64_t id = 1; id <= w->n_ids; id++)
    assert_true(w->status[id] == ST_COMMITTED || w->status[id] == ST_DROPPED);
}

/* Thousands of random lives: records, ticks due and early, results of
 * every class, delivery failures (current and stale), revocations lost or
 * not, a stop now and then. apply() checks (a) one call at a time, (b)
 * produce only inside a begun transaction, (c) each id committed at most
 * once, in order, and a commit covering exactly its transaction, (e) a
 * release only with no transaction holding records; settle() checks (d)
 * everything is committed or dropped in the end. */
static void test_random_sequences(void **state) {
  brw_rng_t r;
  brw_rng_seed(&r, 20261207);
  long total_commits = 0, total_aborts = 0, total_rebuilds = 0,
       total_releases = 0, total_drops = 0, total_redos = 0;
  for (int life = 0; life < 3000; life++) {
    world_t *w = calloc(1, sizeof(*w));
    brw_txn_opts_t o = default_opts();
    o.interval_ms = 1 + pick(&r, 2000);
    o.keepalive_ms = o.interval_ms + pick(&r, 20000);
    o.retry_min_ms = 1 + pick(&r, 100);
    o.retry_max_ms = o.retry_min_ms + pick(&r, 1000);
    o.jitter = (double)pick(&r, 5) / 10.0;
    o.max_commit_retries = (unsigned)pick(&r, 4);
    o.max_abort_retries = (unsigned)pick(&r, 4);
    start(w, o);
    int steps = 50 + (int)pick(&r, 400);
    for (int i = 0; i < steps && !w->closed; i++) {
      uint64_t k = pick(&r, 100);
      w->now += pick(&r, 300);
      if (k < 35) {
        if (w->n_ids < MAXID - 1)
          ready(w);
      } else if (k < 55) {
        if (w->call != BRW_TXN_CALL_NONE)
          done(w, random_result(&r));
      } else if (k < 75) {
        if (w->armed)
          fire(w);
      } else if (k < 80) {
        tick(w); /* at any time: harmless */
      } else if (k < 86) {
        if (w->n_produced && pick(&r, 3))
          delivery_failed(w, w->produced[pick(&r, w->n_produced)], w->seq);
        else if (w->seq > 1)
          delivery_failed(w, 1, w->seq - 1 - pick(&r, w->seq - 1));
      } else if (k < 92) {
        if (!w->revoke_pending)
          revoke(w, (int)pick(&r, 3) == 0);
      } else if (k < 93) {
        stop(w);
      }
    }
    settle(w);
    if (!w->closed && pick(&r, 4) == 0) {
      stop(w);
      settle(w);
      assert_true(w->closed);
    }
    total_commits += w->commits;
    total_aborts += w->aborts;
    total_rebuilds += w->rebuilds;
    total_releases += w->releases;
    total_drops += w->drops;
    total_redos += w->redos;
    finish(w);
    free(w);
  }
  /* The lives went down every path. */
  assert_true(total_commits > 10000);
  assert_true(total_aborts > 1000);
  assert_true(total_rebuilds > 1000);
  assert_true(total_releases > 1000);
  assert_true(total_drops > 1000);
  assert_true(total_redos > 1000);
}

/* (f) An idle world whose calls take up to `lat` ms still commits at
 * least once per keep-alive period (plus the commit's own time), after
 * recovering from random failures. */
static void test_keepalive_idle(void **state) {
  brw_rng_t r;
  brw_rng_seed(&r, 7);
  for (int life = 0; life < 200; life++) {
    world_t *w = calloc(1, sizeof(*w));
    brw_txn_opts_t o = default_opts();
    o.interval_ms = 1 + pick(&r, 60 * SEC);
    o.keepalive_ms = o.interval_ms + pick(&r, 2 * HOUR);
    uint64_t lat = 1 + pick(&r, 5 * SEC);
    start(w, o);
    for (int i = 0; i < 20; i++) { /* a rough start */
      if (w->call != BRW_TXN_CALL_NONE) {
        w->now += pick(&r, lat);
        done(w, random_result(&r));
      } else {
        fire(w);
      }
    }
    settle(w);
    uint64_t last = w->last_commit_ok ? w->last_commit_ok : w->now;
    int commits = w->commits;
    uint64_t until = w->now + 7 * 24 * HOUR;
    while (w->now < until) {
      if (w->call != BRW_TXN_CALL_NONE) {
        w->now += pick(&r, lat);
        done(w, BRW_TXN_OK);
        if (w->commits > commits) {
          assert_true(w->now - last <= o.keepalive_ms + lat);
          last = w->now;
          commits = w->commits;
        }
        continue;
      }
      fire(w);
      assert_true(w->now - last <= o.keepalive_ms + lat);
    }
    assert_true((uint64_t)w->commits >= 7 * 24 * HOUR / (o.keepalive_ms + lat));
    finish(w);
    free(w);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_happy_cycle),
      cmocka_unit_test(test_empty_interval_keepalive),
      cmocka_unit_test(test_commit_retriable),
      cmocka_unit_test(test_commit_retriable_too_often),
      cmocka_unit_test(test_requires_abort_redo),
      cmocka_unit_test(test_delivery_failed),
      cmocka_unit_test(test_aborts_back_off),
      cmocka_unit_test(test_fatal_commit_rebuild),
      cmocka_unit_test(test_fatal_abort),
      cmocka_unit_test(test_revoke_commits_first),
      cmocka_unit_test(test_revoke_lost_aborts),
      cmocka_unit_test(test_stop),
      cmocka_unit_test(test_impossible_inputs),
      cmocka_unit_test(test_random_sequences),
      cmocka_unit_test(test_keepalive_idle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
