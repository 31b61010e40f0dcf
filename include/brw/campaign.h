/* A tracked campaign's lifecycle (SPEC §5), as one pure state machine.
 *
 * Every decision about a campaign passes through brw_campaign_on: an input
 * (an event merged into it, its timer fired, a fetch answered or failed, its
 * partition left) and the clock come in, one step goes out: arm the timer,
 * start a fetch, publish a progress report, or end it with a report, a DLQ
 * record or nothing. No I/O, no libuv, no librdkafka: src/app_campaign.c
 * carries the steps out, and tests/unit/test_campaign.c drives the whole
 * policy with a fake clock. "When next" is src/schedule.c's; this module
 * says which of its rules applies.
 *
 *                      timer                  a detail, not final
 *   first event -> NEW ------> FETCHING -------------------------> POLLING
 *                              ^  |  \         a failure              |
 *                              |  |   `-----------------> RETRYING    |
 *                              |  |                          |        |
 *                              +--|--------- timer ----------+--------+
 *                                 |
 *    a final status; a detail or  |   and from any state: the timer at
 *    a failure past the deadline; |   the deadline, a revocation
 *    404s past the grace period   v
 *                               ENDED: a report, a DLQ record, or forgotten
 *
 * Every state but ENDED has its timer armed, so a campaign cannot be
 * forgotten: in NEW, POLLING and RETRYING it fires for the next fetch (never
 * after the deadline), in FETCHING it is the watchdog, which fires at the
 * deadline plus http.timeout so that a request under way can answer first,
 * and ends the campaign if the fetch never does (a login that never
 * succeeds, say). */
#ifndef BRW_CAMPAIGN_H
#define BRW_CAMPAIGN_H

#include "brw/backoff.h"
#include "brw/bsg.h"
#include "brw/schedule.h"
#include "brw/vocab.h"

#include <stdint.h>

#define BRW_CAMPAIGN_STATES(X)                                                 \
  X(NEW, "new")           /* tracked; the first fetch is scheduled */         \
  X(FETCHING, "fetching") /* a fetch is out; the timer is the watchdog */     \
  X(POLLING, "polling")   /* seen, not final; the next poll is scheduled */   \
  X(RETRYING, "retrying") /* the last fetch failed; the retry is scheduled */ \
  X(ENDED, "ended")       /* reported, sent to the DLQ or forgotten */
typedef enum {
#define BRW_X_(e, s) BRW_CAMPAIGN_##e,
  BRW_CAMPAIGN_STATES(BRW_X_)
#undef BRW_X_
  BRW_CAMPAIGN__COUNT
} brw_campaign_state_t;

/* The state's name, static ("new", ...). */
const char *brw_campaign_state_name(brw_campaign_state_t s);

/* The settings the policy reads (SPEC §5, from the configuration). */
typedef struct {
  brw_schedule_opts_t sched;    /* poll.min/max_interval, jitter, adaptive */
  uint64_t initial_delay_ms;    /* poll.initial_delay */
  uint64_t finished_delay_ms;   /* poll.finished_delay */
  uint64_t retry_min_ms;        /* retry.min */
  uint64_t retry_max_ms;        /* retry.max */
  uint64_t not_found_grace_ms;  /* poll.not_found_grace */
  uint64_t max_age_ms;          /* poll.max_age */
  uint64_t answer_ms;           /* http.timeout: how long a fetch may take */
  uint64_t sweep_wait_ms;       /* how long a campaign waits for the sweep
                                   it asked for before it fetches itself */
  int emit_progress;            /* output.emit_progress */
} brw_campaign_opts_t;

/* What the policy remembers of a campaign: 56 bytes, embedded in the app's
 * campaign (the bytes count at 10^6 campaigns, docs/PERFORMANCE.md). Times
 * are on the monotonic clock of the timers (ms), so that a step of the wall
 * clock moves neither the deadline nor a grace period. */
typedef struct {
  uint64_t deadline;        /* poll.max_age after the first event */
  uint64_t not_found_since; /* the first 404 of a run of them; 0: none */
  uint64_t last_fetch_mono; /* the last detail's fetch; 0 before one */
  int64_t pending;          /* its unresolved messages, -1 when unknown */
  uint64_t stats_hash;      /* its statistics' fingerprint */
  int32_t polls;            /* details fetched */
  uint8_t state;            /* brw_campaign_state_t */
  uint8_t status;           /* the last detail's brw_status_t */
  uint8_t seen;             /* a detail was fetched */
  uint8_t error_class;      /* the last failure's brw_retry_class_t + 1,
                               0 when a detail came after it */
  uint8_t poll_attempt;     /* polls since the status last changed */
  uint8_t err_attempt;      /* failures in a row */
  uint8_t finished_hint;    /* a campaign.finished came while fetching */
  /* Status sweeps (poll.strategy, src/app_sweep.c): BRW_CSWEEP_* flags,
   * the last listed status (brw_status_t), and the sweeps in a row that
   * did not list it while it waited for one. */
  uint8_t sweep;
  uint8_t lstatus;
  uint8_t misses;
} brw_campaign_t;

/* brw_campaign_t.sweep flags. */
#define BRW_CSWEEP_AWAIT 1  /* asked for a sweep; the timer is its watchdog */
#define BRW_CSWEEP_WANT 2   /* needs a detail: listed terminal, or a
                               campaign.finished came; sweeps do not stand
                               in for its fetches */
#define BRW_CSWEEP_LISTED 4 /* a sweep listed it at least once */
#define BRW_CSWEEP_ROUND 8  /* the parity of the sweep it waits for */
/* A campaign that sweeps missed this many times in a row is polled with
 * details until a sweep lists it again. */
#define BRW_CSWEEP_MISSES_MAX 2

typedef enum {
  BRW_CIN_EVENT = 0,   /* a further event merged into the campaign */
  BRW_CIN_TIMER,       /* its timer fired */
  BRW_CIN_FETCHED,     /* a fetch answered with a detail, kept */
  BRW_CIN_FAILED,      /* a fetch failed */
  BRW_CIN_NOT_STARTED, /* a fetch could not start, or its detail could not
                          be kept (out of memory): tried again later */
  BRW_CIN_REVOKED,     /* its partition left, or the worker stops */
  BRW_CIN_LISTED,      /* a status sweep listed it (poll.strategy) */
  BRW_CIN_SWEPT        /* a sweep of its account ended (complete, cut
                          short or failed) */
} brw_campaign_input_kind_t;

/* The input's name, static ("event", "timer", "fetched", "failed",
 * "not_started", "revoked", "listed", "swept"). */
const char *brw_campaign_input_name(brw_campaign_input_kind_t k);

typedef struct {
  brw_campaign_input_kind_t kind;
  uint64_t now;   /* the monotonic clock (ms) */
  int64_t wall_ms; /* FETCHED: the wall clock, for the API's own times */
  /* EVENT */
  int finished;       /* a campaign.finished */
  uint64_t due_in_ms; /* when the timer fires, from now (0: now, or none) */
  /* TIMER, FAILED: the account's API key is rejected (at the deadline, the
   * campaign's event goes to the DLQ as auth_failed). */
  int account_failed;
  /* TIMER: the account's status sweeps may stand in for this fetch (the
   * strategy sweeps, the list answers, and sweeping is cheaper than
   * details; src/app_sweep.c decides). */
  int sweeping;
  /* TIMER: the parity of the sweep that will serve an ask (the account's
   * sweeps are numbered); SWEPT: the parity of the sweep that ended. A
   * campaign that waits for that sweep and was not listed by it fetches at
   * once instead of at its watchdog. */
  int sweep_round;
  /* TIMER: how long an ask waits for its sweep (the account's gap between
   * sweeps and room for its pages); 0: opts.sweep_wait_ms. */
  uint64_t sweep_wait_ms;
  /* SWEPT: the sweep failed (not a miss: the list did not answer). */
  int sweep_failed;
  /* FETCHED: the detail's summary; LISTED: the list item's status and
   * start times (the list has no totals). */
  brw_status_t status;
  int64_t total, pending;
  int64_t scheduled_start_ms, actual_start_ms; /* epoch ms, 0: absent */
  uint64_t stats_hash;
  /* FAILED */
  brw_retry_class_t error_class;
  int64_t retry_after_ms; /* the server's Retry-After, <= 0: none */
} brw_campaign_input_t;

typedef enum {
  BRW_CEND_NONE = 0, /* it goes on */
  BRW_CEND_REPORT,   /* publish the final report (outcome) */
  BRW_CEND_DLQ,      /* send the first event to the DLQ (reason) */
  BRW_CEND_FORGET    /* drop it; its offsets stay pending, replayed */
} brw_campaign_end_t;

/* One step, carried out in this order: progress, fetch, arm, end. */
typedef struct {
  brw_campaign_end_t end;
  brw_outcome_t outcome;   /* REPORT */
  brw_dlq_reason_t reason; /* DLQ */
  /* DLQ: the record's error.message, static; when `last_error` is set the
   * message of the last failed fetch goes instead, if one is kept. */
  const char *message;
  int last_error;
  int progress; /* publish a progress report (the status or statistics
                   changed, output.emit_progress) */
  int fetch;    /* start a fetch */
  int sweep;    /* ask the account's sweeper for a sweep soon */
  int arm;      /* (re)arm the timer to fire after timer_ms; 0: leave it */
  uint64_t timer_ms;
  /* A poll scheduled after a detail: what chose its delay
   * (polls_scheduled_total); -1 for any other step. */
  int basis;
} brw_campaign_step_t;

/* The first event's time as the report states it (first_event_at): its
 * occurred_at, or now when that is absent or in the future. */
int64_t brw_campaign_first_event_ms(int64_t occurred_at_ms, int64_t wall_ms);

/* Starts a campaign whose first event happened at `first_event_ms` (wall
 * clock, brw_campaign_first_event_ms), read at wall time `wall_ms` =
 * monotonic time `now`: its deadline is fixed here, on the monotonic clock,
 * and its first fetch armed (poll.finished_delay after a campaign.finished,
 * else poll.initial_delay). */
void brw_campaign_start(brw_campaign_t *c, const brw_campaign_opts_t *o,
                        uint64_t now, int64_t wall_ms, int64_t first_event_ms,
                        int finished, brw_campaign_step_t *out);

/* The transition function: applies `in` to *c and says what to do in *out.
 * Inputs that cannot apply in the current state (a fetch result without a
 * fetch out, anything after ENDED) change nothing and ask for nothing.
 * `rng` jitters the delays. */
void brw_campaign_on(brw_campaign_t *c, const brw_campaign_opts_t *o,
                     const brw_campaign_input_t *in, brw_rng_t *rng,
                     brw_campaign_step_t *out);

#endif
