/* The input partitions held and their commits (see
 * include/brw/partitions.h). */
#include "brw/partitions.h"
#include "brw/error.h"
#include "brw/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A log line's fields about an input partition and offset (their names:
 * BRW_LF_*), and the members of `more` (stolen; may be NULL). */
static json_t *fields(int32_t partition, int64_t offset, json_t *more) {
  char part[16];
  snprintf(part, sizeof(part), "%" PRId32, partition);
  json_t *f = json_pack("{ss sI}", BRW_LF_PARTITION, part, BRW_LF_OFFSET,
                        (json_int_t)offset);
  if (f && more)
    json_object_update(f, more);
  json_decref(more);
  return f;
}

void brw_partitions_init(brw_partitions_t *t) {
  memset(t, 0, sizeof(*t));
}

/* Back to "not assigned yet": the tracking and the maps freed. The
 * campaigns list and `assigned` are the caller's business. */
static void part_reset(brw_part_t *pt) {
  brw_offsets_free(pt->offsets);
  pt->offsets = NULL;
  free(pt->committed_map);
  pt->committed_map = NULL;
  free(pt->skip.ranges);
  pt->skip.ranges = NULL;
  pt->skip.n = 0;
  pt->skip_cursor = 0;
  pt->dirty = 0;
  pt->committed = -1;
  pt->revoking = 0;
  pt->inflight = 0;
}

void brw_partitions_free(brw_partitions_t *t) {
  for (int32_t p = 0; p < t->nparts; p++) {
    if (t->parts[p]) {
      part_reset(t->parts[p]);
      free(t->parts[p]);
    }
  }
  free(t->parts);
  memset(t, 0, sizeof(*t));
}

brw_part_t *brw_partitions_get(const brw_partitions_t *t, int32_t p) {
  if (p < 0 || p >= t->nparts)
    return NULL;
  return t->parts[p];
}

/* Partition p, created (not assigned) when new; NULL when out of memory. */
static brw_part_t *part_ensure(brw_partitions_t *t, int32_t p) {
  if (p < 0)
    return NULL;
  if (p >= t->nparts) {
    int32_t n = p + 1;
    brw_part_t **np = realloc(t->parts, sizeof(*np) * (size_t)n);
    if (!np)
      return NULL;
    for (int32_t i = t->nparts; i < n; i++)
      np[i] = NULL;
    t->parts = np;
    t->nparts = n;
  }
  if (!t->parts[p]) {
    brw_part_t *pt = calloc(1, sizeof(*pt));
    if (!pt)
      return NULL;
    pt->partition = p;
    pt->committed = -1;
    brw_list_init(&pt->campaigns);
    t->parts[p] = pt;
  }
  return t->parts[p];
}

/* Fresh completion tracking per partition, and the completed-offset map of
 * the last commit, so that events completed above the committed offset are
 * skipped instead of fetched and reported again. An element whose committed
 * offset could not be read replays from its committed offset (at least
 * once, never lost). Partitions already held (none, with the incremental
 * protocols) are untouched: their campaigns keep their timers and
 * fetches. */
int brw_partitions_assign(brw_partitions_t *t,
                          const brw_kafka_positions_t *parts) {
  int taken = 0;
  for (int i = 0; i < parts->cnt; i++) {
    const brw_kafka_pos_t *e = &parts->elems[i];
    brw_part_t *pt = part_ensure(t, e->partition);
    if (!pt || (pt->assigned && !pt->revoking))
      continue; /* already ours: left as it is */
    part_reset(pt);
    pt->offsets = brw_offsets_new();
    if (!pt->assigned)
      t->assigned++;
    pt->assigned = 1;
    pt->generation = ++t->generation;
    taken++;
    if (e->err || e->offset < 0 || !e->metadata || e->metadata_len == 0)
      continue;
    if (brw_offsets_decode(e->metadata, e->metadata_len, e->offset,
                           &pt->skip) != 0) {
      brw_logj(BRW_LOG_WARN, fields(pt->partition, e->offset, NULL),
               "commit metadata is not a completed-offset map of this "
               "position; replaying from the committed offset");
      continue;
    }
    int64_t n = 0;
    for (size_t j = 0; j < pt->skip.n; j++)
      n += pt->skip.ranges[j][1] - pt->skip.ranges[j][0];
    brw_logj(BRW_LOG_INFO,
             fields(pt->partition, e->offset,
                    json_pack("{sI}", "completed", (json_int_t)n)),
             "resuming; completed events above the commit are skipped");
  }
  return taken;
}

brw_part_verdict_t brw_partitions_received(brw_partitions_t *t, int32_t p,
                                           int64_t offset, brw_part_t **out) {
  brw_part_t *pt = brw_partitions_get(t, p);
  *out = NULL;
  if (!pt || !pt->assigned || pt->revoking)
    return BRW_PART_IGNORE; /* not ours, or leaving: its next owner reads it */
  if (brw_offsets_add(pt->offsets, offset) != 0)
    return BRW_PART_IGNORE; /* a redelivery of an offset already tracked */
  *out = pt;
  pt->dirty = 1;
  if (pt->skip.n &&
      brw_offset_ranges_contain(&pt->skip, &pt->skip_cursor, offset)) {
    /* Completed before the last commit (the map in its metadata says so):
     * its report or DLQ record is already in Kafka. */
    brw_offsets_done(pt->offsets, offset);
    return BRW_PART_SKIP;
  }
  return BRW_PART_TAKE;
}

void brw_partitions_done(brw_partitions_t *t, int32_t p, uint64_t gen,
                         int64_t offset) {
  brw_part_t *pt = brw_partitions_get(t, p);
  if (!pt || !pt->assigned || pt->generation != gen)
    return; /* the partition moved away meanwhile: its new owner replays */
  pt->dirty = 1;
  if (brw_offsets_done(pt->offsets, offset) != 0)
    brw_logj(BRW_LOG_WARN, fields(p, offset, NULL),
             "offset completed twice or unknown");
}

void brw_part_inflight_add(brw_part_t *pt) {
  pt->inflight++;
}

int brw_partitions_inflight_done(brw_partitions_t *t, int32_t p, uint64_t gen) {
  brw_part_t *pt = brw_partitions_get(t, p);
  return pt && pt->assigned && pt->generation == gen && pt->inflight > 0 &&
         --pt->inflight == 0 && pt->revoking;
}

size_t brw_partitions_revoking_inflight(const brw_partitions_t *t) {
  size_t left = 0;
  for (int32_t p = 0; p < t->nparts; p++) {
    const brw_part_t *pt = t->parts[p];
    if (pt && pt->assigned && pt->revoking)
      left += pt->inflight;
  }
  return left;
}

brw_part_t *brw_partitions_revoke(brw_partitions_t *t, int32_t p) {
  brw_part_t *pt = brw_partitions_get(t, p);
  if (!pt || !pt->assigned)
    return NULL;
  pt->revoking = 1;
  return pt;
}

/* The map goes into the commit's metadata, so that the next owner of the
 * partition skips events completed above the position. A partition whose
 * position and map are those last sent is not sent again. */
int brw_partitions_commit_list(brw_partitions_t *t, int only_revoking,
                               brw_kafka_positions_t *out) {
  char map[BRW_PARTITIONS_MAP_MAX];
  int n = 0;
  for (int32_t p = 0; p < t->nparts; p++) {
    brw_part_t *pt = t->parts[p];
    if (!pt || !pt->assigned || !pt->dirty)
      continue;
    if (only_revoking && !pt->revoking)
      continue;
    int64_t pos = brw_offsets_committable(pt->offsets);
    if (pos < 0)
      continue;
    size_t mlen = brw_offsets_encode(pt->offsets, map, sizeof(map));
    int same_map = mlen == 0
                       ? pt->committed_map == NULL
                       : pt->committed_map && !strcmp(pt->committed_map, map);
    pt->dirty = 0;
    if (pos == pt->committed && same_map)
      continue;
    if (brw_kafka_positions_add(out, p, pos, mlen > 0 ? map : NULL, mlen) !=
        0) {
      pt->dirty = 1; /* sent at the next commit */
      continue;
    }
    n++;
    pt->committed = pos;
    free(pt->committed_map);
    pt->committed_map = mlen > 0 ? strdup(map) : NULL;
  }
  return n;
}

/* Forgets what was last sent, so that the next commit sends it again. */
static void resend(brw_partitions_t *t, int32_t p, int held_only) {
  brw_part_t *pt = brw_partitions_get(t, p);
  if (!pt || (held_only && !pt->assigned))
    return;
  pt->committed = -1;
  pt->dirty = 1;
}

void brw_partitions_resend_all(brw_partitions_t *t) {
  for (int32_t p = 0; p < t->nparts; p++)
    resend(t, p, 1);
}

void brw_partitions_commit_failed(brw_partitions_t *t,
                                  const brw_kafka_positions_t *l) {
  for (int i = 0; i < l->cnt; i++)
    resend(t, l->elems[i].partition, 0);
}

int brw_partitions_commit_done(brw_partitions_t *t, int err,
                               const brw_kafka_positions_t *l) {
  int failed = 0;
  for (int i = 0; i < l->cnt; i++) {
    const brw_kafka_pos_t *e = &l->elems[i];
    brw_part_t *pt = brw_partitions_get(t, e->partition);
    if (!pt || !pt->assigned)
      continue;
    if (err || e->err || e->offset != pt->committed) {
      failed |= err || e->err;
      resend(t, e->partition, 1);
    }
  }
  return failed;
}

void brw_partitions_forget(brw_partitions_t *t, brw_part_t *pt) {
  part_reset(pt);
  if (pt->assigned)
    t->assigned--;
  pt->assigned = 0;
}
