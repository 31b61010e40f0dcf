/* The campaign table: campaigns tracked by (partition, account, id).
 *
 * Keying by partition as well keeps ownership simple when Kafka moves a
 * partition away: everything of that partition is forgotten together, and
 * the next owner resumes from the committed offset. Producers key events by
 * campaign id, so one campaign normally lives in one partition; if it does
 * not, each partition tracks it on its own (at least once, never lost).
 *
 * An intrusive chained hash table that doubles as it grows: lookups and
 * inserts are O(1) on average; no operation scans all campaigns. Growing is
 * incremental, so that no insert stops the loop to rehash a million nodes:
 * the larger bucket array is set up, then every insert and remove moves a
 * few buckets of the old one into it, and lookups meanwhile search the array
 * where the key's bucket currently lives. Bucket arrays are made of segments
 * of BRW_TRACKER_SEG buckets, allocated as the move reaches them and freed as
 * it leaves them, so that no call allocates, clears or frees a large block.
 * All of this runs on the loop thread; the table is not thread-safe. */
#ifndef BRW_TRACKER_H
#define BRW_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#define BRW_TRACKER_SEG_SHIFT 12
#define BRW_TRACKER_SEG ((size_t)1 << BRW_TRACKER_SEG_SHIFT)

/* Embedded as the first member of the caller's struct; the caller sets
 * id/partition/account, the table owns `next`. */
typedef struct brw_tracker_node_s {
  struct brw_tracker_node_s *next;
  uint64_t id;
  int32_t partition;
  int32_t account;
} brw_tracker_node_t;

/* Bucket b of an array is segs[b >> BRW_TRACKER_SEG_SHIFT][b % SEG]; an
 * array smaller than a segment is one segment of its size. */
typedef struct {
  brw_tracker_node_t ***segs;
  size_t nbuckets; /* a power of two */
  size_t count;
  /* While growing (old != NULL): the previous, smaller array, whose buckets
   * from index `moved` on still hold their nodes (segments wholly below it
   * are freed). Buckets of the new array whose source bucket has not been
   * moved are not initialized. */
  brw_tracker_node_t ***old;
  size_t nold;
  size_t moved;
} brw_tracker_t;

int brw_tracker_init(brw_tracker_t *t);
/* Frees the bucket arrays (both while growing); the nodes belong to the
 * caller. */
void brw_tracker_free(brw_tracker_t *t);

/* Returns the node with that key, or NULL. Does not advance a growth. */
brw_tracker_node_t *brw_tracker_find(const brw_tracker_t *t, int32_t partition,
                                     int32_t account, uint64_t id);
/* Inserts a node whose key fields are set; the key must not be present.
 * Returns 0 or BRW_ENOMEM (when growing fails the node is still inserted, and
 * the next insert or remove tries again). */
int brw_tracker_insert(brw_tracker_t *t, brw_tracker_node_t *n);
/* Removes a node that is in the table. */
void brw_tracker_remove(brw_tracker_t *t, brw_tracker_node_t *n);

/* Sizes the table for at least n nodes, so that inserts up to n never grow
 * it. Rehashes the nodes present at once (O(count)): meant for startup.
 * Returns 0 or BRW_ENOMEM (then the table still holds every node, possibly
 * in the middle of a growth that later inserts and removes complete). */
int brw_tracker_reserve(brw_tracker_t *t, size_t n);

#endif
