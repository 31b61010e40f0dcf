/* Why the worker cannot make progress (SPEC §7: "a reason the worker cannot
 * make progress is never silent").
 *
 * Each module that notices a stall raises its reason here and clears it when
 * it is gone; the registry does the rest, the same way for every reason:
 *
 *   - the first raise logs one line (WARN, or ERROR for reasons that make
 *     the worker not ready) with the reason, its detail and a hint;
 *   - while the reason holds, brw_health_tick (a periodic timer of the app)
 *     repeats the line at most once per BRW_HEALTH_RELOG_MS, saying for how
 *     long it has held; a raise with a changed detail does not log again
 *     before then, so a flapping detail cannot flood the log;
 *   - clearing it logs one INFO line with how long it held;
 *   - the gauge bsg_report_worker_blocked{reason} is 1 while it holds, and
 *     bsg_report_worker_blocked_total{reason} counts the raises;
 *   - /readyz lists the reasons that hold; those marked `not_ready` make it
 *     answer 503.
 *
 * Pure apart from logging: the caller passes the time (a monotonic clock,
 * uv_now). Loop thread only, like the metrics registry it writes. */
#ifndef BRW_HEALTH_H
#define BRW_HEALTH_H

#include "brw/metrics.h"

#include <jansson.h>
#include <stdint.h>

/* How often a reason that still holds is logged again. */
#define BRW_HEALTH_RELOG_MS (5 * 60 * 1000)

/* The reasons. Names (brw_health_name) are the metric's label values and the
 * keys of /readyz's "blocked" object; add a row to the table in
 * src/health.c with each new one. */
typedef enum {
  BRW_BLOCK_KAFKA_DOWN = 0,    /* no broker reachable (not ready) */
  BRW_BLOCK_TOPIC_MISSING,     /* the input topic does not exist (not ready) */
  BRW_BLOCK_GROUP_NOT_JOINED,  /* no assignment from the group yet (not
                                  ready) */
  BRW_BLOCK_ACCOUNT_AUTH,      /* an account holds no usable bearer and its
                                  login fails (not ready) */
  BRW_BLOCK_RECORD_REFUSED,    /* the producer or broker refuses a record */
  BRW_BLOCK_PRODUCER_BACKLOG,  /* records wait for the producer queue */
  BRW_BLOCK_MAX_TRACKED,       /* intake paused at max.tracked */
  BRW_BLOCK_LOOP_LAG,          /* the event loop runs late */
  BRW_BLOCK_OUTPUT_TOPIC_MISSING, /* topic.output or topic.dlq does not
                                     exist: records wait */
  BRW_BLOCK_KAFKA_AUTH,        /* no broker takes the clients because of
                                  their security settings: SASL, TLS
                                  certificates (not ready; replaces
                                  kafka_down) */
  BRW_BLOCK_TXN_STALLED,       /* exactly once: no transaction committed
                                  for a while with records waiting, or the
                                  producer cannot init */
  BRW_BLOCK__COUNT
} brw_block_t;

typedef struct brw_health_s brw_health_t;

/* Creates a registry; `m` (borrowed, may be NULL) gets the gauges and
 * counters and must outlive it. Returns NULL when out of memory. */
brw_health_t *brw_health_new(brw_metrics_t *m);
/* Frees it (NULL is fine). Logs nothing. */
void brw_health_free(brw_health_t *h);

/* Raises `b` with a one-line detail (printf format; may be NULL), which
 * replaces the previous detail. Logs as described above. Never fails: a
 * detail that cannot be kept (out of memory) is left out. */
void brw_health_raise(brw_health_t *h, brw_block_t b, uint64_t now_ms,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Clears `b`; nothing happens when it was not raised. */
void brw_health_clear(brw_health_t *h, brw_block_t b, uint64_t now_ms);
/* Raises (cond != 0, with `detail` as a plain string) or clears `b`. */
void brw_health_set(brw_health_t *h, brw_block_t b, int cond,
                    uint64_t now_ms, const char *detail);

/* 1 while `b` holds. */
int brw_health_raised(const brw_health_t *h, brw_block_t b);
/* The detail of a raised reason (borrowed, valid until the next raise or
 * clear of it), or NULL. */
const char *brw_health_detail(const brw_health_t *h, brw_block_t b);
/* Milliseconds `b` has held at now_ms, 0 when it does not. */
uint64_t brw_health_held_ms(const brw_health_t *h, brw_block_t b,
                            uint64_t now_ms);
/* 1 when no reason marked not_ready holds. */
int brw_health_ready(const brw_health_t *h);
/* 1 when `b` makes the worker not ready. */
int brw_health_blocks_ready(brw_block_t b);
/* The reason's stable name ("kafka_down", ...), static; NULL out of range. */
const char *brw_health_name(brw_block_t b);

/* Repeats the log line of every reason that has held for another
 * BRW_HEALTH_RELOG_MS since it was last logged. Call from a periodic timer
 * (every few seconds is plenty). */
void brw_health_tick(brw_health_t *h, uint64_t now_ms);

/* A JSON object {"<name>": {"detail": "...", "seconds": N, "ready": bool},
 * ...} of the reasons that hold, for /readyz. New reference; NULL when out
 * of memory. */
json_t *brw_health_json(const brw_health_t *h, uint64_t now_ms);

#endif
