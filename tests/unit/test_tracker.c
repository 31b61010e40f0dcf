#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

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

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_insert_find_remove),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
