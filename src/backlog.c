#include "brw/backlog.h"

#include <stdio.h>

/* librdkafka's RD_KAFKA_OFFSET_INVALID, which its statistics print for an
 * offset it does not know. */
#define OFFSET_UNKNOWN (-1001)

void brw_backlog_part_init(brw_backlog_part_t *p, int32_t partition) {
  p->partition = partition;
  p->start = OFFSET_UNKNOWN;
  p->app = p->committed = p->lo = p->end = OFFSET_UNKNOWN;
  p->qlo = p->qend = OFFSET_UNKNOWN;
  p->qat = 0;
}

/* An integer field of a statistics object, or OFFSET_UNKNOWN. */
static int64_t stat_offset(const json_t *o, const char *name) {
  const json_t *v = json_object_get(o, name);
  return json_is_integer(v) ? (int64_t)json_integer_value(v) : OFFSET_UNKNOWN;
}

size_t brw_backlog_read_stats(const json_t *root, const char *topic,
                              int read_committed, brw_backlog_part_t *parts,
                              size_t n) {
  const json_t *ps = json_object_get(
      json_object_get(json_object_get(root, "topics"), topic), "partitions");
  size_t found = 0;
  for (size_t i = 0; i < n; i++) {
    brw_backlog_part_t *p = &parts[i];
    char key[16];
    snprintf(key, sizeof(key), "%d", (int)p->partition);
    const json_t *o = json_object_get(ps, key);
    if (!json_is_object(o)) {
      p->app = p->committed = p->lo = p->end = OFFSET_UNKNOWN;
      continue;
    }
    found++;
    p->app = stat_offset(o, "app_offset");
    p->committed = stat_offset(o, "committed_offset");
    p->lo = stat_offset(o, "lo_offset");
    p->end = stat_offset(o, read_committed ? "ls_offset" : "hi_offset");
  }
  return found;
}

int64_t brw_backlog_unread(const brw_backlog_part_t *p,
                           brw_backlog_reset_t reset, uint64_t now,
                           uint64_t fresh_ms) {
  int fresh = p->qat && now >= p->qat && now - p->qat <= fresh_ms;
  int64_t end = p->end;
  int64_t lo = p->lo;
  if (fresh && p->qend > end)
    end = p->qend;
  if (fresh && p->qlo > lo)
    lo = p->qlo;
  if (end < 0)
    return -1;
  int64_t pos = p->app >= 0         ? p->app
                : p->start >= 0     ? p->start
                : p->committed >= 0 ? p->committed
                                    : -1;
  if (pos < 0) {
    if (reset == BRW_BACKLOG_RESET_LATEST)
      pos = end;
    else if (reset == BRW_BACKLOG_RESET_EARLIEST && lo >= 0)
      pos = lo;
    else
      return -1;
  }
  if (lo >= 0 && pos < lo)
    pos = lo;
  return end > pos ? end - pos : 0;
}

int64_t brw_backlog_sum(const brw_backlog_part_t *parts, size_t n,
                        brw_backlog_reset_t reset, uint64_t now,
                        uint64_t fresh_ms) {
  int64_t sum = 0;
  int known = 0;
  for (size_t i = 0; i < n; i++) {
    int64_t u = brw_backlog_unread(&parts[i], reset, now, fresh_ms);
    if (u < 0)
      continue;
    sum += u;
    known = 1;
  }
  return n > 0 && !known ? -1 : sum;
}
