/* CloudEvents 1.0, Kafka protocol binding, binary content mode: the ce_*
 * headers of the records the worker produces (SPEC §4, docs/design.md
 * "CloudEvents"). The record's key and value stay as they are, so that a
 * consumer that does not know CloudEvents reads the same record as without
 * them.
 *
 * Pure: no I/O, no logging, no configuration. */
#ifndef BRW_CLOUDEVENTS_H
#define BRW_CLOUDEVENTS_H

#include "brw/headers.h"

#include <stddef.h>
#include <stdint.h>

/* The event types (ce_type). */
#define BRW_CE_TYPE_REPORT "world.bsg.campaign.report"
#define BRW_CE_TYPE_PROGRESS "world.bsg.campaign.progress"
#define BRW_CE_TYPE_DLQ "world.bsg.campaign.event.dead_lettered"

/* Longest ce_id and ce_source written (NUL included). */
#define BRW_CE_ID_MAX 320
#define BRW_CE_SOURCE_MAX 512

/* One record's attributes. */
typedef struct {
  const char *id;     /* ce_id */
  const char *source; /* ce_source */
  const char *type;   /* ce_type */
  int64_t time_ms;    /* ce_time (epoch ms, written RFC 3339 UTC) */
  uint64_t subject;   /* ce_subject: the campaign id; 0: none */
} brw_ce_t;

/* Adds ce_specversion ("1.0"), ce_id, ce_source, ce_type, ce_time and,
 * when there is one, ce_subject to h. Returns 0 or BRW_ENOMEM (some may be
 * added then: the caller frees h). */
int brw_ce_headers_add(brw_headers_t *h, const brw_ce_t *ce);

/* The default ce_source: "/bsg-report-worker/" and the consumer group, its
 * bytes outside RFC 3986's unreserved set percent-encoded, so that it is a
 * URI-reference whatever the group is called. Stable across restarts,
 * instances and scaling: every worker of a group writes the same source,
 * so that (source, id) identifies an outcome wherever it was produced.
 * Writes a NUL-terminated string (cut at `len`, never in a %XX). */
void brw_ce_default_source(const char *group_id, char *out, size_t len);

/* ce_id of a final report: "report/<account>/<campaign id>/<outcome>".
 * One campaign has one final outcome, so every copy of its report (a
 * replay after a crash, a rebalance) carries the same id. */
void brw_ce_report_id(char *out, size_t len, const char *account,
                      uint64_t campaign_id, const char *outcome);

/* ce_id of a progress report: "progress/<account>/<campaign id>/<status>/
 * <digest as 8 hex digits>", the digest of the detail the report was built
 * from: the same detail gives the same id. */
void brw_ce_progress_id(char *out, size_t len, const char *account,
                        uint64_t campaign_id, const char *status,
                        uint32_t digest);

/* ce_id of a DLQ record: "dlq/<topic>/<partition>/<offset>", the input
 * record it carries. */
void brw_ce_dlq_id(char *out, size_t len, const char *topic, int32_t partition,
                   int64_t offset);

#endif
