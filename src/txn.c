#include "brw/txn.h"

#include "brw/error.h"

#include <stdlib.h>
#include <string.h>

/* A growable array of ids. Arrays are swapped between roles (the open
 * transaction, the buffer, the step's committed and dropped lists) rather
 * than copied, and keep their memory for reuse. */
typedef struct {
  uint64_t *v;
  size_t n, cap;
} idlist_t;

struct brw_txn_s {
  brw_txn_opts_t o;
  brw_rng_t rng;
  uint8_t state;      /* brw_txn_state_t */
  uint8_t call;       /* brw_txn_call_t in flight, or due after a backoff */
  uint8_t call_out;   /* the call is in flight */
  unsigned attempts;  /* retriable (or failed) results of this call */
  uint64_t retry_at;  /* !call_out: when the call starts again */
  uint64_t due;       /* OPEN: the end of the commit interval */
  uint64_t keepalive; /* the latest time for the next commit */
  uint64_t seq;       /* the open transaction's number */
  /* txn: the transaction's ids, in the order they were made ready; all
   * produced while OPEN, covered by the commit while COMMITTING, to be
   * produced again after an abort or a rebuild. buf: ids that came while
   * a call was in flight, newer than every id in txn. While buf holds ids,
   * txn has room for them too, so that merging them allocates nothing. */
  idlist_t txn, buf;
  idlist_t done, gone; /* the step's committed and dropped ids */
  uint64_t n_ready;    /* ids taken */
  uint64_t n_settled;  /* ids committed or dropped */
  /* A revocation or a stop wants every id taken before it committed, by a
   * commit that started after it: flush_upto is n_ready then. */
  uint8_t flush, flush_started;
  uint64_t flush_upto;
  /* Aborts since the last commit that went well: from the second on, the
   * redo waits a backoff (redo_wait, until retry_at), so that a record
   * that fails at once every time (a topic the producer cannot write) does
   * not spin abort after abort. */
  unsigned aborts;
  uint8_t redo_wait;
  uint8_t want_release; /* a revocation waits for its release */
  uint8_t lost;         /* ... and its assignment is lost */
  uint8_t stopping;
};

/* The names, NULL-ended, in the order of their enums. */
static const char *const state_names[] = {
#define BRW_X_(e, s) s,
    BRW_TXN_STATES(BRW_X_)
#undef BRW_X_
        NULL};
static const char *const call_names[] = {"none",  "init",    "commit",
                                         "abort", "rebuild", NULL};
static const char *const result_names[] = {"ok", "retriable", "requires_abort",
                                           "fatal", NULL};
static const char *const input_names[] = {
    "ready", "tick", "call_done", "delivery_failed", "revoke", "stop", NULL};

/* names[i], or "?" past the end of the table. */
static const char *name_at(const char *const *names, unsigned i) {
  for (unsigned k = 0; names[k]; k++)
    if (k == i)
      return names[k];
  return "?";
}

const char *brw_txn_state_name(brw_txn_state_t s) {
  return name_at(state_names, (unsigned)s);
}

const char *brw_txn_call_name(brw_txn_call_t c) {
  return name_at(call_names, (unsigned)c);
}

const char *brw_txn_result_name(brw_txn_result_t r) {
  return name_at(result_names, (unsigned)r);
}

const char *brw_txn_input_name(brw_txn_input_kind_t k) {
  return name_at(input_names, (unsigned)k);
}

/* Makes room for `n` ids in *l. Returns 0 or BRW_ENOMEM (*l unchanged). */
static int reserve(idlist_t *l, size_t n) {
  if (n <= l->cap)
    return 0;
  size_t cap = l->cap ? l->cap : 64;
  while (cap < n)
    cap *= 2;
  uint64_t *v = realloc(l->v, cap * sizeof(*v));
  if (!v)
    return BRW_ENOMEM;
  l->v = v;
  l->cap = cap;
  return 0;
}

static void swap(idlist_t *a, idlist_t *b) {
  idlist_t t = *a;
  *a = *b;
  *b = t;
}

/* Hands every id of *src to the empty *dst (src is left empty), by swapping
 * their memory: nothing is copied or allocated. */
static void take(idlist_t *dst, idlist_t *src) {
  dst->n = 0;
  swap(dst, src);
}

/* Appends buf to txn: the room was reserved when buf was filled. */
static void merge_buffered(brw_txn_t *t) {
  if (t->buf.n)
    memcpy(t->txn.v + t->txn.n, t->buf.v, t->buf.n * sizeof(uint64_t));
  t->txn.n += t->buf.n;
  t->buf.n = 0;
}

/* Starts `call` now. A commit covers the whole transaction; one that starts
 * after a revocation or a stop asked for it counts for that flush. */
static void start_call(brw_txn_t *t, brw_txn_call_t call, brw_txn_step_t *out) {
  t->call = (uint8_t)call;
  t->call_out = 1;
  out->call = call;
  if (call == BRW_TXN_CALL_COMMIT) {
    out->commit = t->txn.v;
    out->n_commit = t->txn.n;
    if (t->flush)
      t->flush_started = 1;
  }
}

/* Enters `state` and starts `call` at once, with a fresh attempt count. */
static void go(brw_txn_t *t, brw_txn_state_t state, brw_txn_call_t call,
               brw_txn_step_t *out) {
  t->state = (uint8_t)state;
  t->attempts = 0;
  start_call(t, call, out);
}

/* The call failed again: it starts again after the backoff, on the tick
 * the step asks for. */
static void backoff(brw_txn_t *t, brw_txn_call_t call, uint64_t now) {
  t->call = (uint8_t)call;
  t->retry_at = now + brw_backoff_ms(t->o.retry_min_ms, t->o.retry_max_ms,
                                     t->attempts - 1, t->o.jitter, &t->rng);
}

/* The call that just failed starts again after the backoff, unless it has
 * failed more than `max` times: then `state` and `call` take over, now. */
static void again_or(brw_txn_t *t, unsigned max, brw_txn_state_t state,
                     brw_txn_call_t call, uint64_t now, brw_txn_step_t *out) {
  if (t->attempts <= max)
    backoff(t, (brw_txn_call_t)t->call, now);
  else
    go(t, state, call, out);
}

/* A lost assignment waits for no transaction to be open or in flight: then
 * every uncommitted id belongs to a partition that is gone (librdkafka
 * loses the whole assignment at once), so they are dropped (their new
 * owners redo them from the last commit) and the partitions released.
 * Called with buf merged or empty. */
static void settle_lost(brw_txn_t *t, brw_txn_step_t *out) {
  if (!t->lost)
    return;
  t->n_settled += t->txn.n;
  take(&t->gone, &t->txn);
  t->lost = 0;
  t->want_release = 0;
  out->release = 1;
}

/* A transaction begins with every id of t->txn, produced in order: after
 * init, every uncommitted id; after an abort, the aborted ones and then
 * those buffered meanwhile; after a commit, those buffered. A pending
 * flush commits it at once. */
static void open_txn(brw_txn_t *t, uint64_t now, brw_txn_step_t *out) {
  t->state = BRW_TXN_OPEN;
  t->attempts = 0;
  t->seq++;
  out->begin = 1;
  out->produce = t->txn.v;
  out->n_produce = t->txn.n;
  t->due = now + t->o.interval_ms;
  if (t->flush)
    go(t, BRW_TXN_COMMITTING, BRW_TXN_CALL_COMMIT, out);
}

/* After init (or a rebuild) or an abort, no transaction holds anything:
 * every uncommitted id goes into the next one, the older first. */
static void redo(brw_txn_t *t, uint64_t now, brw_txn_step_t *out) {
  merge_buffered(t);
  settle_lost(t, out);
  open_txn(t, now, out);
}

/* The commit succeeded: its ids are committed and forgotten, the buffered
 * ones begin the next transaction. A flush is done once a commit that
 * started after it covered every id taken before it; a stop then closes,
 * handing back what came after it. */
static void committed(brw_txn_t *t, uint64_t now, brw_txn_step_t *out) {
  t->aborts = 0;
  t->n_settled += t->txn.n;
  take(&t->done, &t->txn);
  swap(&t->txn, &t->buf);
  t->keepalive = now + t->o.keepalive_ms;
  settle_lost(t, out);
  if (t->flush && t->flush_started && t->n_settled >= t->flush_upto) {
    t->flush = t->flush_started = 0;
    if (t->want_release) {
      t->want_release = 0;
      out->release = 1;
    }
    if (t->stopping) {
      t->n_settled += t->txn.n;
      if (t->txn.n)
        take(&t->gone, &t->txn);
      t->state = BRW_TXN_CLOSED;
      out->closed = 1;
      return;
    }
  }
  open_txn(t, now, out);
}

/* The ends of init_transactions, first or after a rebuild. A retriable
 * one resumes; anything else (a requires-abort cannot happen before a
 * transaction) makes a new producer, after a backoff so that a failure
 * that lasts (an authorization refused) does not spin. */
static void init_done(brw_txn_t *t, brw_txn_result_t r, uint64_t now,
                      brw_txn_step_t *out) {
  t->attempts++;
  switch (r) {
  case BRW_TXN_OK:
    t->keepalive = now + t->o.keepalive_ms;
    redo(t, now, out);
    return;
  case BRW_TXN_RETRIABLE:
    backoff(t, BRW_TXN_CALL_INIT, now);
    return;
  case BRW_TXN_REQUIRES_ABORT:
  case BRW_TXN_FATAL:
    t->state = BRW_TXN_REBUILDING;
    backoff(t, BRW_TXN_CALL_REBUILD, now);
    return;
  }
}

/* The ends of send_offsets + commit. A retriable one is tried again, but
 * not for ever: the transaction holds this interval's records and every
 * record buffered behind it, and past transaction.timeout.ms the
 * coordinator aborts it anyway, so after max_commit_retries an abort and a
 * redo end the wait on our terms. A lost assignment cannot commit (its
 * generation is stale): it aborts instead of retrying. */
static void commit_done(brw_txn_t *t, brw_txn_result_t r, uint64_t now,
                        brw_txn_step_t *out) {
  t->attempts++;
  switch (r) {
  case BRW_TXN_OK:
    committed(t, now, out);
    return;
  case BRW_TXN_RETRIABLE:
    again_or(t, t->lost ? 0 : t->o.max_commit_retries, BRW_TXN_ABORTING,
             BRW_TXN_CALL_ABORT, now, out);
    return;
  case BRW_TXN_REQUIRES_ABORT:
    go(t, BRW_TXN_ABORTING, BRW_TXN_CALL_ABORT, out);
    return;
  case BRW_TXN_FATAL:
    go(t, BRW_TXN_REBUILDING, BRW_TXN_CALL_REBUILD, out);
    return;
  }
}

/* The ends of an abort. An abort that keeps failing is given up after
 * max_abort_retries: a new producer with the same transactional.id fences
 * the old one, and its init aborts what the old one left open. */
static void abort_done(brw_txn_t *t, brw_txn_result_t r, uint64_t now,
                       brw_txn_step_t *out) {
  t->attempts++;
  switch (r) {
  case BRW_TXN_OK:
    if (++t->aborts > 1 && !t->lost) {
      t->redo_wait = 1;
      t->retry_at = now + brw_backoff_ms(t->o.retry_min_ms, t->o.retry_max_ms,
                                         t->aborts - 2, t->o.jitter, &t->rng);
      return;
    }
    redo(t, now, out);
    return;
  case BRW_TXN_RETRIABLE:
  case BRW_TXN_REQUIRES_ABORT:
    again_or(t, t->o.max_abort_retries, BRW_TXN_REBUILDING,
             BRW_TXN_CALL_REBUILD, now, out);
    return;
  case BRW_TXN_FATAL:
    go(t, BRW_TXN_REBUILDING, BRW_TXN_CALL_REBUILD, out);
    return;
  }
}

static void on_call_done(brw_txn_t *t, const brw_txn_input_t *in,
                         brw_txn_step_t *out) {
  if (!t->call_out)
    return;
  t->call_out = 0;
  switch ((brw_txn_call_t)t->call) {
  case BRW_TXN_CALL_INIT:
  case BRW_TXN_CALL_REBUILD:
    init_done(t, in->result, in->now, out);
    return;
  case BRW_TXN_CALL_COMMIT:
    commit_done(t, in->result, in->now, out);
    return;
  case BRW_TXN_CALL_ABORT:
    abort_done(t, in->result, in->now, out);
    return;
  case BRW_TXN_CALL_NONE:
    return;
  }
}

/* The timer. While OPEN: the interval's end commits a transaction with
 * records (an empty one just starts the next interval), and the keep-alive
 * commits even an empty one. While a call waits out its backoff: it starts
 * again. */
static void on_tick(brw_txn_t *t, uint64_t now, brw_txn_step_t *out) {
  if (t->state == BRW_TXN_OPEN) {
    if (now >= t->keepalive || (t->txn.n && now >= t->due))
      go(t, BRW_TXN_COMMITTING, BRW_TXN_CALL_COMMIT, out);
    else if (now >= t->due)
      t->due = now + t->o.interval_ms;
    return;
  }
  if (t->redo_wait) {
    if (now < t->retry_at)
      return;
    t->redo_wait = 0;
    redo(t, now, out);
    if (t->state != BRW_TXN_OPEN || out->call != BRW_TXN_CALL_NONE)
      return;
    /* Open again after the wait: a keep-alive that fell due meanwhile
     * commits now, in this step (no tick at the same instant). */
    if (now >= t->keepalive)
      go(t, BRW_TXN_COMMITTING, BRW_TXN_CALL_COMMIT, out);
    return;
  }
  if (t->state != BRW_TXN_CLOSED && !t->call_out && now >= t->retry_at)
    start_call(t, (brw_txn_call_t)t->call, out);
}

/* A record is ready: into the open transaction at once, else into the
 * buffer until the call in flight ends. */
static int on_ready(brw_txn_t *t, uint64_t id, brw_txn_step_t *out) {
  if (t->state == BRW_TXN_CLOSED) {
    out->refused = 1;
    return 0;
  }
  if (t->state == BRW_TXN_OPEN) {
    if (reserve(&t->txn, t->txn.n + 1) < 0)
      goto err;
    t->txn.v[t->txn.n++] = id;
    out->produce = &t->txn.v[t->txn.n - 1];
    out->n_produce = 1;
  } else {
    if (reserve(&t->buf, t->buf.n + 1) < 0 ||
        reserve(&t->txn, t->txn.n + t->buf.n + 1) < 0)
      goto err;
    t->buf.v[t->buf.n++] = id;
  }
  t->n_ready++;
  return 0;
err:
  out->refused = 1;
  return BRW_ENOMEM;
}

/* A revocation. Not lost: a flush (every id ready now committed), then
 * the release. Lost: nothing more may be committed; the release waits for
 * no transaction to be open with records or in flight. Revocations do not
 * overlap (the rebalance waits for the release); one that comes while
 * another waits joins it, and lost wins. */
static void on_revoke(brw_txn_t *t, int lost, uint64_t now,
                      brw_txn_step_t *out) {
  if (t->state == BRW_TXN_CLOSED) {
    out->release = 1;
    return;
  }
  t->want_release = 1;
  if (!lost) {
    if (t->lost)
      return;
    t->flush = 1;
    t->flush_started = 0;
    t->flush_upto = t->n_ready;
    if (t->state == BRW_TXN_OPEN)
      go(t, BRW_TXN_COMMITTING, BRW_TXN_CALL_COMMIT, out);
    return;
  }
  t->lost = 1;
  if (!t->stopping)
    t->flush = t->flush_started = 0;
  if (t->redo_wait) {
    /* No transaction is open: drop now rather than after the backoff. */
    t->redo_wait = 0;
    redo(t, now, out);
  } else if (t->state == BRW_TXN_OPEN && t->txn.n == 0)
    settle_lost(t, out);
  else if (t->state == BRW_TXN_OPEN ||
           (t->state == BRW_TXN_COMMITTING && !t->call_out))
    go(t, BRW_TXN_ABORTING, BRW_TXN_CALL_ABORT, out);
}

static void on_stop(brw_txn_t *t, uint64_t now, brw_txn_step_t *out) {
  if (t->state == BRW_TXN_CLOSED || t->stopping)
    return;
  t->stopping = 1;
  t->flush = 1;
  t->flush_started = 0;
  t->flush_upto = t->n_ready;
  if (t->redo_wait) {
    /* A shutdown does not wait out the backoff: the redo and its commit
     * go now (the redo sees the flush). */
    t->redo_wait = 0;
    redo(t, now, out);
  } else if (t->state == BRW_TXN_OPEN) {
    go(t, BRW_TXN_COMMITTING, BRW_TXN_CALL_COMMIT, out);
  }
}

/* When the next tick is wanted: the interval's end or the keep-alive while
 * OPEN, the retry while a call waits out its backoff, none otherwise. */
static void next_tick(const brw_txn_t *t, uint64_t now, brw_txn_step_t *out) {
  uint64_t at;
  if (t->state == BRW_TXN_OPEN)
    at = t->due < t->keepalive ? t->due : t->keepalive;
  else if (t->state != BRW_TXN_CLOSED && !t->call_out)
    at = t->retry_at;
  else
    return;
  out->tick = 1;
  out->tick_in_ms = at > now ? at - now : 0;
}

static void step_init(brw_txn_t *t, brw_txn_step_t *out) {
  memset(out, 0, sizeof(*out));
  t->done.n = 0;
  t->gone.n = 0;
}

/* The step's lists point into the module's arrays, set last because the
 * arrays are swapped while the step is made. */
static void step_lists(brw_txn_t *t, brw_txn_step_t *out) {
  out->seq = t->seq;
  out->committed = t->done.v;
  out->n_committed = t->done.n;
  out->dropped = t->gone.v;
  out->n_dropped = t->gone.n;
}

brw_txn_t *brw_txn_new(const brw_txn_opts_t *o, uint64_t seed,
                       brw_txn_step_t *out) {
  brw_txn_t *t = calloc(1, sizeof(*t));
  if (!t)
    return NULL;
  t->o = *o;
  brw_rng_seed(&t->rng, seed);
  step_init(t, out);
  go(t, BRW_TXN_INIT, BRW_TXN_CALL_INIT, out);
  step_lists(t, out);
  return t;
}

void brw_txn_free(brw_txn_t *t) {
  if (!t)
    return;
  free(t->txn.v);
  free(t->buf.v);
  free(t->done.v);
  free(t->gone.v);
  free(t);
}

int brw_txn_on(brw_txn_t *t, const brw_txn_input_t *in, brw_txn_step_t *out) {
  int rc = 0;
  step_init(t, out);
  if (t->state == BRW_TXN_CLOSED && in->kind != BRW_TXIN_READY &&
      in->kind != BRW_TXIN_REVOKE)
    return 0;
  switch (in->kind) {
  case BRW_TXIN_READY:
    rc = on_ready(t, in->id, out);
    break;
  case BRW_TXIN_TICK:
    on_tick(t, in->now, out);
    break;
  case BRW_TXIN_CALL_DONE:
    on_call_done(t, in, out);
    break;
  case BRW_TXIN_DELIVERY_FAILED:
    /* Only the open transaction's own records count: a late report of an
     * aborted one's is history, and while committing the commit itself
     * fails (librdkafka makes it a requires-abort). */
    if (t->state == BRW_TXN_OPEN && in->seq == t->seq)
      go(t, BRW_TXN_ABORTING, BRW_TXN_CALL_ABORT, out);
    break;
  case BRW_TXIN_REVOKE:
    on_revoke(t, in->lost, in->now, out);
    break;
  case BRW_TXIN_STOP:
    on_stop(t, in->now, out);
    break;
  }
  step_lists(t, out);
  next_tick(t, in->now, out);
  return rc;
}

brw_txn_state_t brw_txn_state(const brw_txn_t *t) {
  return (brw_txn_state_t)t->state;
}

size_t brw_txn_pending(const brw_txn_t *t) {
  return (size_t)(t->n_ready - t->n_settled);
}
