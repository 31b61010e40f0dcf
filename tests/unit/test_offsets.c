#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

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

/* The map of done offsets above the commit position round-trips. */
static void test_map_roundtrip(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  for (int64_t i = 100; i < 120; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  /* done: 102, 103, 107, 110..114; pending the rest. */
  int64_t done[] = {102, 103, 107, 110, 111, 112, 113, 114};
  for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++)
    assert_int_equal(brw_offsets_done(o, done[i]), 0);
  char buf[256];
  size_t n = brw_offsets_encode(o, buf, sizeof(buf));
  assert_true(n > 0);
  assert_string_equal(buf, "brw1:100:2,2,3,1,2,5");
  brw_offset_ranges_t r;
  assert_int_equal(brw_offsets_decode(buf, n, 100, &r), 0);
  assert_int_equal(r.n, 3);
  size_t cur = 0;
  for (int64_t off = 100; off < 125; off++) {
    int want = 0;
    for (size_t i = 0; i < sizeof(done) / sizeof(done[0]); i++)
      if (done[i] == off)
        want = 1;
    assert_int_equal(brw_offset_ranges_contain(&r, &cur, off), want);
  }
  free(r.ranges);
  /* Another base, another format, garbage: refused, nothing decoded. */
  assert_int_equal(brw_offsets_decode(buf, n, 101, &r), BRW_EPARSE);
  assert_null(r.ranges);
  const char *bad[] = {"",           "brw1:",         "brw1:100",
                       "brw1:100:",  "brw1:100:2",    "brw1:100:2,",
                       "brw1:100:2,0", "brw1:100:2,2,", "brw1:100:x,2",
                       "brw2:100:2,2", "{\"json\":1}",  "brw1:100:2,2,3",
                       "brw1:100:9999999999999999999,1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(brw_offsets_decode(bad[i], strlen(bad[i]), 100, &r),
                     BRW_EPARSE);
    assert_null(r.ranges);
  }
  brw_offsets_free(o);
}

/* Nothing done above the position: no map. A map too large for the buffer
 * keeps the runs that fit, and every offset it names is really done. */
static void test_map_empty_and_truncated(void **state) {
  brw_offsets_t *o = brw_offsets_new();
  char buf[64];
  assert_int_equal(brw_offsets_encode(o, buf, sizeof(buf)), 0);
  for (int64_t i = 0; i < 1000; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  assert_int_equal(brw_offsets_encode(o, buf, sizeof(buf)), 0);
  for (int64_t i = 1; i < 1000; i += 2)
    assert_int_equal(brw_offsets_done(o, i), 0);
  size_t n = brw_offsets_encode(o, buf, sizeof(buf));
  assert_true(n > 0 && n < sizeof(buf));
  brw_offset_ranges_t r;
  assert_int_equal(brw_offsets_decode(buf, n, 0, &r), 0);
  assert_true(r.n > 3 && r.n < 500);
  for (size_t i = 0; i < r.n; i++)
    for (int64_t off = r.ranges[i][0]; off < r.ranges[i][1]; off++)
      assert_int_equal(off % 2, 1);
  free(r.ranges);
  /* 4 KiB holds far more than 64 bytes. */
  char big[4096];
  size_t nb = brw_offsets_encode(o, big, sizeof(big));
  assert_true(nb > n && nb < sizeof(big));
  brw_offsets_free(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_in_order),
      cmocka_unit_test(test_out_of_order),
      cmocka_unit_test(test_gaps_and_redelivery),
      cmocka_unit_test(test_wide_window),
      cmocka_unit_test(test_map_roundtrip),
      cmocka_unit_test(test_map_empty_and_truncated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
