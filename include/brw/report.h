/* The §4 report event and the derived metrics. */
#ifndef BRW_REPORT_H
#define BRW_REPORT_H

#include "brw/bsg.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t campaign_id;
  const char *account;
  int final;           /* 1 for the final report */
  const char *outcome; /* "done", "stopped", "spam", "expired", or for a
                          progress report the current status */
  const brw_detail_t *detail; /* last detail seen, or NULL */
  int events;
  int polls;
  int64_t first_event_ms;
  int64_t reported_ms;
  const char *source_topic;
  int32_t source_partition;
  int64_t source_offset;
  const char *worker_version;
  const char *worker_instance;
  const char *traceparent; /* may be NULL */
  const char *tracestate;  /* may be NULL (only with a traceparent) */
} brw_report_input_t;

/* Builds the report JSON text (compact, UTF-8). Returns a malloc'ed
 * NUL-terminated string (caller frees) and sets *len, or NULL on out of
 * memory.
 *
 * metrics: delivery_rate = delivered / total, failure_rate = failed / total
 * (delivered, failed, pending as in brw_detail_t), where total is the larger
 * of total_messages and the sum of every counter, so that both rates are in
 * [0, 1] by construction; both null when total is 0; duration_seconds =
 * finished - actual start (or scheduled start, or created), null when a time
 * is missing. */
char *brw_report_build(const brw_report_input_t *in, size_t *len);

#endif
