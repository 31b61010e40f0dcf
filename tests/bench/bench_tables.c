/* Cost of the worker's per-campaign data structures at many tracked
 * campaigns: the campaign table (src/tracker.c) and the per-partition
 * completed-offset window (src/offsets.c).
 *
 *   bench_tables [N ...]        default: 1000 100000 1000000
 *
 * For each N (campaigns tracked, all in one partition, as the worst case):
 *   insert    ns per brw_tracker_insert filling up to N (growths included)
 *   max ins   the slowest single insert, µs (growth is incremental, so this
 *             is mostly scheduling noise; it was a rehash of the whole table)
 *   find      ns per brw_tracker_find of a random tracked key
 *   remove    ns per brw_tracker_remove + re-insert of a random key, / 2
 *   add       ns per brw_offsets_add of N consecutive offsets
 *   done      ns per brw_offsets_done of a random pending offset (half of
 *             them; the lowest one stays pending, so the window stays N)
 *   encode    µs per brw_offsets_encode into 4000 bytes (the completed-
 *             offset map the commit timer builds every kafka.commit_interval)
 *             with the window N half done, randomly
 *   worst     µs per encode when only the newest of N pending offsets is
 *             done (a linear encoder would walk the whole window) */
#include "brw/offsets.h"
#include "brw/tracker.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int run(size_t n) {
  brw_tracker_t t;
  if (brw_tracker_init(&t) != 0)
    return 1;
  brw_tracker_node_t *nodes = calloc(n, sizeof(*nodes));
  if (!nodes)
    return 1;
  double max_ins = 0;
  double a0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    nodes[i].id = 1000000 + i * 7919;
    nodes[i].partition = 0;
    nodes[i].account = 0;
    double a = now_ns();
    brw_tracker_insert(&t, &nodes[i]);
    double d = now_ns() - a;
    if (d > max_ins)
      max_ins = d;
  }
  double insert_ns = (now_ns() - a0) / (double)n;

  size_t ops = n < 1000000 ? 1000000 : n;
  size_t hits = 0;
  double a = now_ns();
  for (size_t i = 0; i < ops; i++) {
    brw_tracker_node_t *x = &nodes[rnd() % n];
    hits += brw_tracker_find(&t, 0, 0, x->id) == x;
  }
  double find_ns = (now_ns() - a) / (double)ops;
  if (hits != ops)
    fprintf(stderr, "find missed %zu\n", ops - hits);

  a = now_ns();
  for (size_t i = 0; i < ops; i++) {
    brw_tracker_node_t *x = &nodes[rnd() % n];
    brw_tracker_remove(&t, x);
    brw_tracker_insert(&t, x);
  }
  double remove_ns = (now_ns() - a) / (double)ops / 2;

  brw_offsets_t *o = brw_offsets_new();
  if (!o)
    return 1;
  a = now_ns();
  for (size_t i = 0; i < n; i++)
    brw_offsets_add(o, (int64_t)i);
  double add_ns = (now_ns() - a) / (double)n;
  size_t ndone = 0;
  a = now_ns();
  for (size_t i = 0; i < n / 2; i++) {
    int64_t off = 1 + (int64_t)(rnd() % (n > 1 ? n - 1 : 1));
    ndone += brw_offsets_done(o, off) == 0;
  }
  double done_ns = (now_ns() - a) / (double)(n / 2 ? n / 2 : 1);
  char map[4000];
  int reps = n >= 1000000 ? 20 : 200;
  size_t mlen = 0;
  a = now_ns();
  for (int i = 0; i < reps; i++)
    mlen = brw_offsets_encode(o, map, sizeof(map));
  double encode_us = (now_ns() - a) / reps / 1000;

  /* The former worst case for the encoder: everything pending but the
   * newest offset, one done run at the far end of the window. */
  brw_offsets_t *w = brw_offsets_new();
  if (!w)
    return 1;
  for (size_t i = 0; i < n; i++)
    brw_offsets_add(w, (int64_t)i);
  if (n > 1)
    brw_offsets_done(w, (int64_t)n - 1);
  a = now_ns();
  for (int i = 0; i < reps; i++)
    brw_offsets_encode(w, map, sizeof(map));
  double worst_us = (now_ns() - a) / reps / 1000;
  brw_offsets_free(w);

  printf("| %9zu | %6.0f | %8.0f | %5.0f | %6.0f | %5.0f | %5.0f | %9.1f |"
         " %6zu | %9.1f |\n",
         n, insert_ns, max_ins / 1000, find_ns, remove_ns, add_ns, done_ns,
         encode_us, mlen, worst_us);
  fflush(stdout);
  brw_offsets_free(o);
  brw_tracker_free(&t);
  free(nodes);
  return 0;
}

int main(int argc, char **argv) {
  size_t def[] = {1000, 100000, 1000000};
  size_t ns[32];
  size_t k = 0;
  if (argc > 1) {
    for (int i = 1; i < argc && k < 32; i++)
      ns[k++] = (size_t)strtoull(argv[i], NULL, 10);
  } else {
    memcpy(ns, def, sizeof(def));
    k = 3;
  }
  printf("| tracked N | insert ns | max insert µs | find ns | remove ns |"
         " offsets add ns | done ns | encode µs | map bytes | encode worst µs |\n");
  printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < k; i++)
    if (ns[i] && run(ns[i]) != 0)
      return 1;
  return 0;
}
