#include "brw/tracker.h"
#include "brw/error.h"

#include <stdlib.h>

static uint64_t hash_key(int32_t partition, int32_t account, uint64_t id) {
  uint64_t h = id * 0x9E3779B97F4A7C15ull;
  h ^= ((uint64_t)(uint32_t)partition << 32 | (uint32_t)account) *
       0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  return h;
}

int brw_tracker_init(brw_tracker_t *t) {
  t->nbuckets = 1024;
  t->count = 0;
  t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
  return t->buckets ? 0 : BRW_ENOMEM;
}

void brw_tracker_free(brw_tracker_t *t) {
  free(t->buckets);
  t->buckets = NULL;
  t->nbuckets = 0;
  t->count = 0;
}

brw_tracker_node_t *brw_tracker_find(const brw_tracker_t *t, int32_t partition,
                                     int32_t account, uint64_t id) {
  size_t b = hash_key(partition, account, id) & (t->nbuckets - 1);
  for (brw_tracker_node_t *n = t->buckets[b]; n; n = n->next)
    if (n->id == id && n->partition == partition && n->account == account)
      return n;
  return NULL;
}

/* Rehashes into twice as many buckets. The table stays usable if the
 * allocation fails; chains just get longer. */
static int grow(brw_tracker_t *t) {
  size_t nb = t->nbuckets * 2;
  brw_tracker_node_t **nbk = calloc(nb, sizeof(*nbk));
  if (!nbk)
    return BRW_ENOMEM;
  for (size_t i = 0; i < t->nbuckets; i++) {
    brw_tracker_node_t *n = t->buckets[i];
    while (n) {
      brw_tracker_node_t *next = n->next;
      size_t b = hash_key(n->partition, n->account, n->id) & (nb - 1);
      n->next = nbk[b];
      nbk[b] = n;
      n = next;
    }
  }
  free(t->buckets);
  t->buckets = nbk;
  t->nbuckets = nb;
  return 0;
}

int brw_tracker_insert(brw_tracker_t *t, brw_tracker_node_t *n) {
  size_t b = hash_key(n->partition, n->account, n->id) & (t->nbuckets - 1);
  n->next = t->buckets[b];
  t->buckets[b] = n;
  t->count++;
  if (t->count > t->nbuckets)
    return grow(t);
  return 0;
}

void brw_tracker_remove(brw_tracker_t *t, brw_tracker_node_t *n) {
  size_t b = hash_key(n->partition, n->account, n->id) & (t->nbuckets - 1);
  for (brw_tracker_node_t **pp = &t->buckets[b]; *pp; pp = &(*pp)->next) {
    if (*pp == n) {
      *pp = n->next;
      n->next = NULL;
      t->count--;
      return;
    }
  }
}
