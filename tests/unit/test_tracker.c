#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "brw/list.h"
#include "brw/tracker.h"

static void test_insert_find_remove(void **state) {
  brw_tracker_t t;
  assert_int_equal(brw_tracker_init(&t), 0);
  const size_t n = 50000;
  brw_tracker_node_t *nodes = calloc(n, sizeof(*nodes));
  for (size_t i = 0; i < n; i++) {
    nodes[i].id = 1000 + i / 2;
    nodes[i].partition = (int32_t)(i % 2); /* same id on two partitions */
    nodes[i].account = 0;
    assert_int_equal(brw_tracker_insert(&t, &nodes[i]), 0);
  }
  assert_int_equal(t.count, n);
  assert_true(t.nbuckets >= n);
  for (size_t i = 0; i < n; i++)
    assert_ptr_equal(brw_tracker_find(&t, nodes[i].partition, 0, nodes[i].id),
                     &nodes[i]);
  assert_null(brw_tracker_find(&t, 0, 1, 1000)); /* other account */
  assert_null(brw_tracker_find(&t, 2, 0, 1000)); /* other partition */
  for (size_t i = 0; i < n; i += 2)
    brw_tracker_remove(&t, &nodes[i]);
  assert_int_equal(t.count, n / 2);
  for (size_t i = 0; i < n; i++) {
    brw_tracker_node_t *f =
        brw_tracker_find(&t, nodes[i].partition, 0, nodes[i].id);
    if (i % 2 == 0)
      assert_null(f);
    else
      assert_ptr_equal(f, &nodes[i]);
  }
  brw_tracker_free(&t);
  free(nodes);
}

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545F4914F6CDD1Dull;
}

static brw_tracker_node_t *old_bucket(const brw_tracker_t *t, size_t b) {
  return t->old[b >> BRW_TRACKER_SEG_SHIFT][b % BRW_TRACKER_SEG];
}

/* Whether n sits in a bucket of the old array not yet moved. */
static int in_old_array(const brw_tracker_t *t, const brw_tracker_node_t *n) {
  for (size_t b = t->moved; t->old && b < t->nold; b++)
    for (const brw_tracker_node_t *p = old_bucket(t, b); p; p = p->next)
      if (p == n)
        return 1;
  return 0;
}

/* Segments of the old array wholly moved are freed at once. */
static void check_old_segments(const brw_tracker_t *t) {
  if (!t->old || t->nold <= BRW_TRACKER_SEG)
    return;
  for (size_t s = 0; s < t->nold / BRW_TRACKER_SEG; s++)
    if ((s + 1) * BRW_TRACKER_SEG <= t->moved)
      assert_null(t->old[s]);
    else
      assert_non_null(t->old[s]);
}

/* Random inserts, finds and removes checked against a flag per node (the
 * reference), over several growths; asserts that growths were in progress
 * during the operations, and that each operation moved few buckets. */
static void test_random_during_growth(void **state) {
  brw_tracker_t t;
  assert_int_equal(brw_tracker_init(&t), 0);
  const size_t n = 40000; /* growths up to 65536 buckets: 16 segments */
  brw_tracker_node_t *nodes = calloc(n, sizeof(*nodes));
  char *in = calloc(n, 1);
  assert_non_null(nodes);
  assert_non_null(in);
  for (size_t i = 0; i < n; i++) {
    /* Each id on three partitions and two accounts; keys are unique. */
    nodes[i].partition = (int32_t)(i % 3);
    nodes[i].account = (int32_t)(i / 3 % 2);
    nodes[i].id = i / 6;
  }
  size_t count = 0, ops_migrating = 0, removed_old = 0;
  for (int step = 0; step < 400000; step++) {
    size_t i = (size_t)(rnd() % n);
    int op = (int)(rnd() % 10);
    int was_migrating = t.old != NULL;
    size_t moved = t.moved;
    if (op < 5 && !in[i]) {
      assert_int_equal(brw_tracker_insert(&t, &nodes[i]), 0);
      in[i] = 1;
      count++;
    } else if (op < 7 && in[i]) {
      if (t.old && step % 16 == 0) /* sampled: the scan is slow */
        removed_old += in_old_array(&t, &nodes[i]);
      brw_tracker_remove(&t, &nodes[i]);
      in[i] = 0;
      count--;
    } else {
      brw_tracker_node_t *f = brw_tracker_find(&t, nodes[i].partition,
                                               nodes[i].account, nodes[i].id);
      if (in[i])
        assert_ptr_equal(f, &nodes[i]);
      else
        assert_null(f);
    }
    if (was_migrating) {
      ops_migrating++;
      if (t.old)
        assert_true(t.moved - moved <= 8);
      check_old_segments(&t);
    }
    assert_int_equal(t.count, count);
    if (step % 50000 == 0)
      for (size_t k = 0; k < n; k++) {
        brw_tracker_node_t *f = brw_tracker_find(&t, nodes[k].partition,
                                                 nodes[k].account, nodes[k].id);
        assert_ptr_equal(f, in[k] ? &nodes[k] : NULL);
      }
  }
  assert_true(ops_migrating > 1000);
  assert_true(removed_old > 0);
  for (size_t k = 0; k < n; k++) {
    brw_tracker_node_t *f =
        brw_tracker_find(&t, nodes[k].partition, nodes[k].account, nodes[k].id);
    assert_ptr_equal(f, in[k] ? &nodes[k] : NULL);
  }
  brw_tracker_free(&t);
  free(in);
  free(nodes);
}

/* Fills the table until a growth starts; returns how many were inserted. */
static size_t fill_until_growing(brw_tracker_t *t, brw_tracker_node_t *nodes,
                                 size_t max) {
  size_t i = 0;
  while (!t->old) {
    assert_true(i < max);
    nodes[i].id = 77 + i;
    assert_int_equal(brw_tracker_insert(t, &nodes[i]), 0);
    i++;
  }
  return i;
}

/* Nodes still in the old array are removed from there; the rest of the table
 * is intact, and the growth completes afterwards. */
static void test_remove_from_old_array(void **state) {
  brw_tracker_t t;
  assert_int_equal(brw_tracker_init(&t), 0);
  const size_t max = 4096;
  brw_tracker_node_t *nodes = calloc(max, sizeof(*nodes));
  size_t k = fill_until_growing(&t, nodes, max);
  assert_int_equal(k, 1025); /* 1024 buckets, load 1 */
  /* Nodes in the last old buckets: moved last, so still in the old array. */
  brw_tracker_node_t *victims[16];
  size_t nv = 0;
  for (size_t b = t.nold; b-- > t.nold - 64 && nv < 16;)
    for (brw_tracker_node_t *p = old_bucket(&t, b); p && nv < 16; p = p->next)
      victims[nv++] = p;
  assert_true(nv >= 8);
  for (size_t v = 0; v < nv; v++) {
    assert_true(in_old_array(&t, victims[v]));
    brw_tracker_remove(&t, victims[v]);
    assert_false(in_old_array(&t, victims[v]));
    assert_null(brw_tracker_find(&t, 0, 0, victims[v]->id));
  }
  assert_int_equal(t.count, k - nv);
  assert_non_null(t.old); /* still growing */
  for (size_t i = 0; i < k; i++) {
    int gone = 0;
    for (size_t v = 0; v < nv; v++)
      gone |= victims[v] == &nodes[i];
    assert_ptr_equal(brw_tracker_find(&t, 0, 0, nodes[i].id),
                     gone ? NULL : &nodes[i]);
  }
  /* Removing nodes alone finishes the growth. */
  for (size_t i = 0; i < k && t.old; i++)
    if (brw_tracker_find(&t, 0, 0, nodes[i].id))
      brw_tracker_remove(&t, &nodes[i]);
  assert_null(t.old);
  assert_int_equal(t.nbuckets, 2048);
  brw_tracker_free(&t);
  free(nodes);
}

/* brw_tracker_free in the middle of a growth frees both arrays (the leak
 * checker of the sanitizer build would say otherwise). */
static void test_free_while_growing(void **state) {
  brw_tracker_t t;
  assert_int_equal(brw_tracker_init(&t), 0);
  brw_tracker_node_t *nodes = calloc(4096, sizeof(*nodes));
  size_t k = fill_until_growing(&t, nodes, 4096);
  brw_tracker_remove(&t, &nodes[0]);
  assert_int_equal(brw_tracker_insert(&t, &nodes[0]), 0);
  assert_non_null(t.old);
  assert_true(t.moved > 0 && t.moved < t.nold);
  brw_tracker_free(&t);
  assert_null(t.segs);
  assert_null(t.old);
  assert_int_equal(t.count, 0);
  (void)k;
  free(nodes);
}

/* reserve sizes the table up front (no growth while filling), and finishes
 * or performs a growth at once when nodes are present. */
static void test_reserve(void **state) {
  brw_tracker_t t;
  assert_int_equal(brw_tracker_init(&t), 0);
  assert_int_equal(brw_tracker_reserve(&t, 100000), 0);
  assert_int_equal(t.nbuckets, 131072);
  assert_null(t.old);
  const size_t n = 100000;
  brw_tracker_node_t *nodes = calloc(n, sizeof(*nodes));
  for (size_t i = 0; i < n; i++) {
    nodes[i].id = i;
    assert_int_equal(brw_tracker_insert(&t, &nodes[i]), 0);
    assert_null(t.old);
  }
  assert_int_equal(t.nbuckets, 131072);
  assert_int_equal(brw_tracker_reserve(&t, 10), 0); /* never shrinks */
  assert_int_equal(t.nbuckets, 131072);
  assert_int_equal(brw_tracker_reserve(&t, 1000000), 0); /* rehash now */
  assert_int_equal(t.nbuckets, 1048576);
  assert_null(t.old);
  for (size_t i = 0; i < n; i++)
    assert_ptr_equal(brw_tracker_find(&t, 0, 0, i), &nodes[i]);
  brw_tracker_free(&t);
  /* During a growth: reserve completes it. */
  assert_int_equal(brw_tracker_init(&t), 0);
  size_t k = fill_until_growing(&t, nodes, n);
  assert_int_equal(brw_tracker_reserve(&t, 0), 0);
  assert_null(t.old);
  assert_int_equal(t.nbuckets, 2048);
  for (size_t i = 0; i < k; i++)
    assert_ptr_equal(brw_tracker_find(&t, 0, 0, nodes[i].id), &nodes[i]);
  brw_tracker_free(&t);
  free(nodes);
}

typedef struct {
  brw_list_t node;
  int v;
} item_t;

static int values(brw_list_t *h, int *out, int max) {
  int n = 0;
  for (brw_list_t *p = h->next; p != h && n < max; p = p->next)
    out[n++] = brw_list_entry(p, item_t, node)->v;
  return n;
}

/* Splicing keeps order, empties the source, and works on empty lists. */
static void test_list_splice(void **state) {
  brw_list_t a, b;
  brw_list_init(&a);
  brw_list_init(&b);
  item_t it[6];
  for (int i = 0; i < 6; i++) {
    it[i].v = i;
    brw_list_init(&it[i].node);
    brw_list_insert_tail(i < 3 ? &a : &b, &it[i].node);
  }
  brw_list_splice_tail(&a, &b);
  assert_true(brw_list_empty(&b));
  int v[8];
  assert_int_equal(values(&a, v, 8), 6);
  for (int i = 0; i < 6; i++)
    assert_int_equal(v[i], i);
  brw_list_splice_tail(&a, &b); /* empty source: no change */
  assert_int_equal(values(&a, v, 8), 6);
  brw_list_splice_tail(&b, &a);
  assert_true(brw_list_empty(&a));
  assert_int_equal(values(&b, v, 8), 6);
  assert_ptr_equal(b.prev, &it[5].node);
  assert_ptr_equal(it[0].node.prev, &b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_insert_find_remove),
      cmocka_unit_test(test_random_during_growth),
      cmocka_unit_test(test_remove_from_old_array),
      cmocka_unit_test(test_free_while_growing),
      cmocka_unit_test(test_reserve),
      cmocka_unit_test(test_list_splice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
