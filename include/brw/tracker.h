/* The campaign table: campaigns tracked by (partition, account, id).
 *
 * Keying by partition as well keeps ownership simple when Kafka moves a
 * partition away: everything of that partition is forgotten together, and
 * the next owner resumes from the committed offset. Producers key events by
 * campaign id, so one campaign normally lives in one partition; if it does
 * not, each partition tracks it on its own (at least once, never lost).
 *
 * An intrusive chained hash table that doubles as it grows: lookups and
 * inserts are O(1) on average; no operation scans all campaigns. */
#ifndef BRW_TRACKER_H
#define BRW_TRACKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct brw_tracker_node_s {
  struct brw_tracker_node_s *next;
  uint64_t id;
  int32_t partition;
  int32_t account;
} brw_tracker_node_t;

typedef struct {
  brw_tracker_node_t **buckets;
  size_t nbuckets; /* a power of two */
  size_t count;
} brw_tracker_t;

int brw_tracker_init(brw_tracker_t *t);
/* Frees the bucket array only; the nodes belong to the caller. */
void brw_tracker_free(brw_tracker_t *t);

/* Returns the node with that key, or NULL. */
brw_tracker_node_t *brw_tracker_find(const brw_tracker_t *t, int32_t partition,
                                     int32_t account, uint64_t id);
/* Inserts a node whose key fields are set; the key must not be present.
 * Returns 0 or BRW_ENOMEM (when growing fails the node is still inserted). */
int brw_tracker_insert(brw_tracker_t *t, brw_tracker_node_t *n);
/* Removes a node that is in the table. */
void brw_tracker_remove(brw_tracker_t *t, brw_tracker_node_t *n);

#endif
