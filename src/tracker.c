#include "brw/tracker.h"
#include "brw/error.h"

#include <stdlib.h>

/* Old buckets moved into the new array per insert or remove. Growth starts
 * when count exceeds nbuckets (n old buckets) and the next one needs n more
 * nodes, so any step of at least 1 finishes in time; 4 frees the old array
 * sooner. Each moved bucket costs its chain (about one node at load 1). */
#define MIGRATE_STEP 4

#define SEG_MASK (BRW_TRACKER_SEG - 1)

typedef brw_tracker_node_t **seg_t;

static uint64_t hash_key(int32_t partition, int32_t account, uint64_t id) {
  uint64_t h = id * 0x9E3779B97F4A7C15ull;
  h ^= ((uint64_t)(uint32_t)partition << 32 | (uint32_t)account) *
       0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  return h;
}

static uint64_t node_hash(const brw_tracker_node_t *n) {
  return hash_key(n->partition, n->account, n->id);
}

static size_t nsegs(size_t nb) {
  return nb > BRW_TRACKER_SEG ? nb >> BRW_TRACKER_SEG_SHIFT : 1;
}

static size_t seg_len(size_t nb) {
  return nb < BRW_TRACKER_SEG ? nb : BRW_TRACKER_SEG;
}

static brw_tracker_node_t **bucket(seg_t *segs, size_t b) {
  return &segs[b >> BRW_TRACKER_SEG_SHIFT][b & SEG_MASK];
}

/* Frees an array of nb buckets and those of its segments still allocated. */
static void free_array(seg_t *segs, size_t nb) {
  if (!segs)
    return;
  for (size_t i = 0; i < nsegs(nb); i++)
    free(segs[i]);
  free(segs);
}

int brw_tracker_init(brw_tracker_t *t) {
  t->nbuckets = 1024;
  t->count = 0;
  t->old = NULL;
  t->nold = 0;
  t->moved = 0;
  t->segs = calloc(1, sizeof(*t->segs));
  if (t->segs)
    t->segs[0] = calloc(t->nbuckets, sizeof(**t->segs));
  if (!t->segs || !t->segs[0]) {
    free(t->segs);
    t->segs = NULL;
    return BRW_ENOMEM;
  }
  return 0;
}

void brw_tracker_free(brw_tracker_t *t) {
  free_array(t->segs, t->nbuckets);
  free_array(t->old, t->nold);
  t->segs = NULL;
  t->old = NULL;
  t->nbuckets = 0;
  t->nold = 0;
  t->moved = 0;
  t->count = 0;
}

/* The chain that holds (or would hold) keys of hash h: the old array's bucket
 * while that bucket has not been moved, else the new array's. Every node is
 * in exactly one of them, so a lookup searches one chain. */
static brw_tracker_node_t **chain(const brw_tracker_t *t, uint64_t h) {
  if (t->old) {
    size_t ob = h & (t->nold - 1);
    if (ob >= t->moved)
      return bucket(t->old, ob);
  }
  return bucket(t->segs, h & (t->nbuckets - 1));
}

/* Moves up to `k` buckets of the old array into the new one, freeing each
 * old segment once it is empty and the old array after the last. The nodes
 * of old bucket ob can only land in new buckets ob, ob + nold, ob + 2 nold,
 * ...: those are initialized here, and their segments allocated, just before
 * they are first used, so the new array needs no clearing up front. Returns
 * 0, or BRW_ENOMEM when a segment cannot be allocated (nothing of that
 * bucket moved; a later call retries). */
static int migrate(brw_tracker_t *t, size_t k) {
  while (t->old && k-- > 0) {
    size_t ob = t->moved;
    for (size_t b = ob; b < t->nbuckets; b += t->nold) {
      seg_t *s = &t->segs[b >> BRW_TRACKER_SEG_SHIFT];
      if (!*s && !(*s = malloc(seg_len(t->nbuckets) * sizeof(**s))))
        return BRW_ENOMEM;
      (*s)[b & SEG_MASK] = NULL;
    }
    brw_tracker_node_t *n = *bucket(t->old, ob);
    while (n) {
      brw_tracker_node_t *next = n->next;
      brw_tracker_node_t **pp =
          bucket(t->segs, node_hash(n) & (t->nbuckets - 1));
      n->next = *pp;
      *pp = n;
      n = next;
    }
    t->moved++;
    if (t->moved == t->nold || (t->moved & SEG_MASK) == 0) {
      size_t s = (t->moved - 1) >> BRW_TRACKER_SEG_SHIFT;
      free(t->old[s]);
      t->old[s] = NULL;
    }
    if (t->moved == t->nold) {
      free_array(t->old, t->nold);
      t->old = NULL;
      t->nold = 0;
      t->moved = 0;
    }
  }
  return 0;
}

/* Starts moving the nodes into an array of nb buckets (a power of two above
 * nbuckets); no growth may be in progress. Only the segment table is
 * allocated here (zeroed: no segment yet). The table stays usable if the
 * allocation fails; chains just get longer. */
static int grow_to(brw_tracker_t *t, size_t nb) {
  seg_t *segs = calloc(nsegs(nb), sizeof(*segs));
  if (!segs)
    return BRW_ENOMEM;
  t->old = t->segs;
  t->nold = t->nbuckets;
  t->moved = 0;
  t->segs = segs;
  t->nbuckets = nb;
  return 0;
}

brw_tracker_node_t *brw_tracker_find(const brw_tracker_t *t, int32_t partition,
                                     int32_t account, uint64_t id) {
  brw_tracker_node_t *n = *chain(t, hash_key(partition, account, id));
  for (; n; n = n->next)
    if (n->id == id && n->partition == partition && n->account == account)
      return n;
  return NULL;
}

int brw_tracker_insert(brw_tracker_t *t, brw_tracker_node_t *n) {
  /* The test keeps the common case (no growth) free of a call. */
  int r = t->old ? migrate(t, MIGRATE_STEP) : 0;
  brw_tracker_node_t **pp = chain(t, node_hash(n));
  n->next = *pp;
  *pp = n;
  t->count++;
  if (!r && !t->old && t->count > t->nbuckets)
    r = grow_to(t, t->nbuckets * 2);
  return r;
}

void brw_tracker_remove(brw_tracker_t *t, brw_tracker_node_t *n) {
  /* Moving first: the node may change chains, the lookup below must not.
   * A failed move changes nothing, so it is left to a later call. */
  if (t->old)
    (void)migrate(t, MIGRATE_STEP);
  for (brw_tracker_node_t **pp = chain(t, node_hash(n)); *pp;
       pp = &(*pp)->next) {
    if (*pp == n) {
      *pp = n->next;
      n->next = NULL;
      t->count--;
      return;
    }
  }
}

int brw_tracker_reserve(brw_tracker_t *t, size_t n) {
  int r = migrate(t, SIZE_MAX);
  if (r)
    return r;
  size_t nb = t->nbuckets;
  while (nb < n) {
    if (nb > SIZE_MAX / 4 / sizeof(brw_tracker_node_t *))
      return BRW_ENOMEM;
    nb *= 2;
  }
  if (nb == t->nbuckets)
    return 0;
  r = grow_to(t, nb);
  if (r)
    return r;
  return migrate(t, SIZE_MAX);
}
