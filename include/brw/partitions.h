/* The input partitions this member holds, and what it must commit for
 * them (SPEC §6): per partition the completion tracking of its offsets
 * (include/brw/offsets.h), the position and completed-offset map last sent
 * in a commit, the offsets the last commit's map says are done (skipped
 * when they arrive again), a generation that changes at every assignment,
 * and the records under way that complete its offsets.
 *
 * The application (src/app.c) keeps its campaigns in each partition's
 * `campaigns` list and decides when to commit; this module keeps the
 * bookkeeping: assignment (decoding the maps read with the committed
 * offsets), received and completed offsets, the list of positions to
 * commit (with their maps as metadata) and the reconciling of a commit's
 * result, and forgetting a partition that left.
 *
 * No I/O, no librdkafka; logs a warning for a map it cannot use and for an
 * offset completed twice. Loop thread only. */
#ifndef BRW_PARTITIONS_H
#define BRW_PARTITIONS_H

#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/offsets.h"

#include <stddef.h>
#include <stdint.h>

/* The completed-offset map must fit Kafka's default
 * offset.metadata.max.bytes (4096) with room to spare. */
#define BRW_PARTITIONS_MAP_MAX 4000

/* One input partition. The application reads the first fields and owns
 * `campaigns`; the rest is this module's. */
typedef struct {
  int32_t partition;
  int assigned;         /* held by this member */
  uint64_t generation;  /* changes at every assignment */
  int revoking;         /* being handed over: takes no events */
  size_t inflight;      /* records of this generation under way that
                           complete offsets (brw_part_inflight_add) */
  brw_list_t campaigns; /* the application's; initialised empty here */
  /* This module's. */
  brw_offsets_t *offsets;
  int64_t committed;        /* last position sent in a commit, -1 before */
  char *committed_map;      /* last map sent (owned), or NULL */
  int dirty;                /* offsets changed since the last commit */
  brw_offset_ranges_t skip; /* done above the commit, from its map */
  size_t skip_cursor;
} brw_part_t;

/* Every partition seen, indexed by number. Zero it, or brw_partitions_init. */
typedef struct {
  brw_part_t **parts;
  int32_t nparts;
  uint64_t generation; /* the last one handed out */
  int assigned;        /* partitions held */
} brw_partitions_t;

void brw_partitions_init(brw_partitions_t *t);
/* Frees every partition (their campaign lists must be empty). */
void brw_partitions_free(brw_partitions_t *t);

/* Partition p, or NULL when it was never assigned. */
brw_part_t *brw_partitions_get(const brw_partitions_t *t, int32_t p);

/* An assignment (on_assign's list: each element's committed offset and
 * metadata, or its err). Every partition not held yet (or held but being
 * revoked) starts afresh: new completion tracking, a new generation, and
 * the offsets the element's map says are done above its offset, to be
 * skipped. A partition already held is left as it is. A map that is not
 * one of this position is ignored with a warning (plain replay). Returns
 * the number of partitions taken afresh. */
int brw_partitions_assign(brw_partitions_t *t,
                          const brw_kafka_positions_t *parts);

/* What to do with a consumed offset. */
typedef enum {
  BRW_PART_IGNORE = 0, /* not held, leaving, or a redelivery: nothing */
  BRW_PART_TAKE,       /* new: pending until brw_partitions_done */
  BRW_PART_SKIP        /* done before the last commit (its map): marked
                          done already */
} brw_part_verdict_t;

/* A consumed offset of partition p; *out gets the partition (NULL when
 * ignored). */
brw_part_verdict_t brw_partitions_received(brw_partitions_t *t, int32_t p,
                                           int64_t offset, brw_part_t **out);

/* Marks an offset of partition p done, if p is still held in generation
 * `gen` (else its new owner replays it: nothing). An offset not pending is
 * logged. */
void brw_partitions_done(brw_partitions_t *t, int32_t p, uint64_t gen,
                         int64_t offset);

/* A record that completes offsets of pt is under way; and it is over (of
 * generation `gen`): returns 1 when that was the last one of a partition
 * being revoked (the revocation may go on). */
void brw_part_inflight_add(brw_part_t *pt);
int brw_partitions_inflight_done(brw_partitions_t *t, int32_t p, uint64_t gen);

/* Records under way of the partitions being revoked. */
size_t brw_partitions_revoking_inflight(const brw_partitions_t *t);

/* Partition p leaves (a revocation began): it takes no more events.
 * Returns it when it was held, else NULL. */
brw_part_t *brw_partitions_revoke(brw_partitions_t *t, int32_t p);

/* Appends to `out` the positions to commit: every held partition (only
 * those being revoked, when `only_revoking`) whose position or map changed
 * since it was last sent, with the map (at most BRW_PARTITIONS_MAP_MAX
 * bytes) as metadata. They count as sent from here on. Returns the number
 * appended. */
int brw_partitions_commit_list(brw_partitions_t *t, int only_revoking,
                               brw_kafka_positions_t *out);

/* Every held partition is sent again at the next commit, changed or not
 * (exactly once: a transaction with no record still commits offsets, so
 * that it is not empty). */
void brw_partitions_resend_all(brw_partitions_t *t);

/* A commit of `l` could not be sent: its partitions are sent again at the
 * next commit. */
void brw_partitions_commit_failed(brw_partitions_t *t,
                                  const brw_kafka_positions_t *l);

/* An asynchronous commit's result (on_commit_done): a held partition that
 * failed (err, or its element's err), or whose confirmed position is not
 * the last one sent (an older commit retried by librdkafka may complete
 * after a newer one and overwrite it), is sent again at the next commit.
 * Returns 1 when any held partition failed. */
int brw_partitions_commit_done(brw_partitions_t *t, int err,
                               const brw_kafka_positions_t *l);

/* Forgets a partition (its campaigns must be gone): no longer held, its
 * tracking freed. */
void brw_partitions_forget(brw_partitions_t *t, brw_part_t *pt);

#endif
