#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/offsets.h"

static void test_empty(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  assert_int_equal(brw_offsets_committable(o), -1);
  assert_int_equal(brw_offsets_pending(o), 0);
  assert_int_equal(brw_offsets_done(o, 0), BRW_ENOENT);
  brw_offsets_free(o);
}

static void test_in_order(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  for (int64_t i = 10; i < 15; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  assert_int_equal(brw_offsets_committable(o), 10);
  for (int64_t i = 10; i < 15; i++) {
    assert_int_equal(brw_offsets_done(o, i), 0);
    assert_int_equal(brw_offsets_committable(o), i + 1);
  }
  assert_int_equal(brw_offsets_pending(o), 0);
  brw_offsets_free(o);
}

static void test_out_of_order(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  for (int64_t i = 0; i < 5; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  assert_int_equal(brw_offsets_done(o, 3), 0);
  assert_int_equal(brw_offsets_done(o, 1), 0);
  assert_int_equal(brw_offsets_committable(o), 0);
  assert_int_equal(brw_offsets_done(o, 0), 0);
  /* 0 and 1 done, 2 pending: commit position is 2. */
  assert_int_equal(brw_offsets_committable(o), 2);
  assert_int_equal(brw_offsets_done(o, 2), 0);
  /* 3 was done already, 4 is pending. */
  assert_int_equal(brw_offsets_committable(o), 4);
  assert_int_equal(brw_offsets_done(o, 3), BRW_ENOENT);
  assert_int_equal(brw_offsets_done(o, 4), 0);
  assert_int_equal(brw_offsets_committable(o), 5);
  brw_offsets_free(o);
}

static void test_gaps_and_redelivery(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  assert_int_equal(brw_offsets_add(o, 100), 0);
  assert_int_equal(brw_offsets_add(o, 105), 0); /* 101..104 compacted away */
  assert_int_equal(brw_offsets_add(o, 105), BRW_EINVAL);
  assert_int_equal(brw_offsets_add(o, 50), BRW_EINVAL);
  assert_int_equal(brw_offsets_done(o, 102), BRW_ENOENT);
  assert_int_equal(brw_offsets_done(o, 105), 0);
  assert_int_equal(brw_offsets_committable(o), 100);
  assert_int_equal(brw_offsets_done(o, 100), 0);
  assert_int_equal(brw_offsets_committable(o), 106);
  assert_int_equal(brw_offsets_pending(o), 0);
  brw_offsets_free(o);
}

/* A long window with a stuck head, wrapping the ring many times. */
static void test_wide_window(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  const int64_t n = 100000;
  for (int64_t i = 0; i < n; i++) {
    assert_int_equal(brw_offsets_add(o, i), 0);
    if (i > 0 && i % 3 != 0)
      assert_int_equal(brw_offsets_done(o, i), 0);
  }
  assert_int_equal(brw_offsets_committable(o), 0);
  assert_int_equal(brw_offsets_done(o, 0), 0);
  assert_int_equal(brw_offsets_committable(o), 3);
  for (int64_t i = 3; i < n; i += 3)
    assert_int_equal(brw_offsets_done(o, i), 0);
  assert_int_equal(brw_offsets_committable(o), n);
  assert_int_equal(brw_offsets_pending(o), 0);
  /* Reuse after draining, ring wraps again. */
  for (int64_t i = n; i < n + 500; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  for (int64_t i = n + 499; i >= n; i--)
    assert_int_equal(brw_offsets_done(o, i), 0);
  assert_int_equal(brw_offsets_committable(o), n + 500);
  brw_offsets_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_in_order),
      cmocka_unit_test(test_out_of_order),
      cmocka_unit_test(test_gaps_and_redelivery),
      cmocka_unit_test(test_wide_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
