#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

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
      cmocka_unit_test(test_list_splice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
