/* The real backlog of the input (issue 16): how many input events a worker
 * has not read yet on the partitions it holds. Consumer lag (the committed
 * offset's distance from the end) overstates it: the worker commits an
 * offset only once every earlier event of its partition is handled (SPEC
 * §6), so one long campaign keeps everything behind it "lagging" although
 * it was read and reported long ago.
 *
 * Per held input partition: its end (the last stable offset under
 * read_committed, librdkafka's default isolation, else the high watermark)
 * minus the position of the next record the worker will read. The numbers
 * come from librdkafka's statistics (every statistics.interval.ms) and,
 * for paused partitions whose statistics no longer move, from a watermark
 * query (src/kafka.c runs both; docs/design.md says why).
 *
 * Pure: no I/O, no librdkafka, no clock (times are passed in). */
#ifndef BRW_BACKLOG_H
#define BRW_BACKLOG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Where a partition without a position starts (auto.offset.reset). */
typedef enum {
  BRW_BACKLOG_RESET_EARLIEST = 0, /* the low watermark */
  BRW_BACKLOG_RESET_LATEST,       /* the end: nothing unread */
  BRW_BACKLOG_RESET_NONE          /* an error: the position is unknown */
} brw_backlog_reset_t;

/* What is known of one held partition. Every offset is negative when
 * unknown (librdkafka says -1001, RD_KAFKA_OFFSET_INVALID). */
typedef struct {
  int32_t partition;
  /* The committed offset read when it was assigned (the worker's own read,
   * src/kafka.c), where consumption starts. */
  int64_t start;
  /* From the last statistics: app_offset (the offset of the last record
   * handed to the worker, plus one), committed_offset, lo_offset, and the
   * end (ls_offset or hi_offset, see brw_backlog_read_stats). */
  int64_t app;
  int64_t committed;
  int64_t lo;
  int64_t end;
  /* From the last watermark query: low watermark and end, and when it
   * answered (the caller's clock, ms; 0: never). */
  int64_t qlo;
  int64_t qend;
  uint64_t qat;
} brw_backlog_part_t;

/* A partition just assigned: everything unknown. */
void brw_backlog_part_init(brw_backlog_part_t *p, int32_t partition);

/* Reads the numbers of the `n` partitions in `parts` from a statistics
 * object (`root`, librdkafka's statistics JSON, parsed; borrowed): topic
 * `topic`, topics.<topic>.partitions.<id>. The end is ls_offset when
 * `read_committed`, else hi_offset. A partition the statistics do not show
 * gets unknown values (-1001); `start` and the query fields are left as
 * they are. Returns how many partitions the statistics showed. */
size_t brw_backlog_read_stats(const json_t *root, const char *topic,
                              int read_committed, brw_backlog_part_t *parts,
                              size_t n);

/* The events of one partition not read yet, at time `now` (ms, the clock
 * of `qat`): end - position, never negative. The end is the larger of the
 * statistics' and the query's, the query's counting only while it is at
 * most `fresh_ms` old. The position is, in this order: app_offset; the
 * committed offset read at the assignment (`start`); the statistics'
 * committed_offset; else where `reset` starts (the low watermark, or the
 * end). It is never below the low watermark (records below it were
 * deleted; the consumer starts at it). Returns -1 when the end or the
 * position is unknown. */
int64_t brw_backlog_unread(const brw_backlog_part_t *p,
                           brw_backlog_reset_t reset, uint64_t now,
                           uint64_t fresh_ms);

/* The sum of brw_backlog_unread over `n` partitions; partitions whose
 * numbers are unknown count 0. Returns -1 when n > 0 and none is known,
 * else the sum (0 for no partition). */
int64_t brw_backlog_sum(const brw_backlog_part_t *parts, size_t n,
                        brw_backlog_reset_t reset, uint64_t now,
                        uint64_t fresh_ms);

#endif
