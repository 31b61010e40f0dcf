/* The status sweeps' policy (src/sweep.c): the list request, the window,
 * page planning, the cost rule, failure classes and the sweep cadence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "brw/api.h"
#include "brw/error.h"
#include "brw/sweep.h"
#include "brw/timeutil.h"

#define SEC 1000ULL
#define MINUTE (60 * SEC)

/* 2026-12-06 10:00:00 UTC. */
#define T_UTC 1796551200000LL

static void test_path(void **state) {
  char buf[256];
  assert_int_equal(brw_sweep_path(buf, sizeof(buf), T_UTC, NULL, 0), 0);
  assert_string_equal(buf, "/api/campaigns?page%5Blimit%5D=500"
                           "&page%5Boffset%5D=0&sort=id&way=asc"
                           "&filter%5Bfrom%5D=2026-12-06%2010%3A00%3A00");
  /* The API's own zone: two hours east, and the next page's offset. */
  brw_tz_t *tz = brw_tz_fixed(2 * 3600);
  assert_non_null(tz);
  assert_int_equal(brw_sweep_path(buf, sizeof(buf), T_UTC + 999, tz, 1000), 0);
  assert_non_null(strstr(buf, "page%5Boffset%5D=1000&"));
  assert_non_null(strstr(buf, "filter%5Bfrom%5D=2026-12-06%2012%3A00%3A00"));
  brw_tz_free(tz);
  /* Too short a buffer is an error, not a cut query. */
  assert_int_equal(brw_sweep_path(buf, 40, T_UTC, NULL, 0), BRW_ERANGE);
}

static void test_window(void **state) {
  assert_int_equal(brw_sweep_window_from(T_UTC, 60 * MINUTE), T_UTC - 3600000);
  assert_int_equal(brw_sweep_window_from(T_UTC, 0), T_UTC);
  assert_int_equal(brw_sweep_window_from(5000, 60 * MINUTE), 0);
  assert_int_equal(brw_sweep_window_from(0, 0), 0);
}

/* As few pages as cover the window: the total says when to stop; without
 * it, a short page does; never past BRW_SWEEP_MAX_PAGES. */
static void test_pages(void **state) {
  /* 1,234 items: pages at 0, 500, 1000, then done. */
  assert_int_equal(brw_sweep_next_offset(0, 500, 1234, 1), 500);
  assert_int_equal(brw_sweep_next_offset(500, 500, 1234, 2), 1000);
  assert_int_equal(brw_sweep_next_offset(1000, 234, 1234, 3), -1);
  /* Exactly one full page. */
  assert_int_equal(brw_sweep_next_offset(0, 500, 500, 1), -1);
  /* Fewer items than the total says (the list shrank meanwhile): an empty
   * page ends it. */
  assert_int_equal(brw_sweep_next_offset(500, 0, 1234, 2), -1);
  /* No total: full pages go on, a short one ends. */
  assert_int_equal(brw_sweep_next_offset(0, 500, -1, 1), 500);
  assert_int_equal(brw_sweep_next_offset(500, 499, -1, 2), -1);
  /* The cap. */
  assert_int_equal(brw_sweep_next_offset(0, 500, 10000000, BRW_SWEEP_MAX_PAGES),
                   -1);
  assert_int_equal(brw_sweep_pages(-1), 1);
  assert_int_equal(brw_sweep_pages(0), 1);
  assert_int_equal(brw_sweep_pages(500), 1);
  assert_int_equal(brw_sweep_pages(501), 2);
  assert_int_equal(brw_sweep_pages(1000000000), BRW_SWEEP_MAX_PAGES);
}

/* Sweeps pay from pages * max_interval / (2 * sweep_interval) campaigns
 * on: 10 per page with the defaults (10 min, 30 s). */
static void test_worth(void **state) {
  assert_false(brw_sweep_worth(0, 1, 30 * SEC, 10 * MINUTE));
  assert_false(brw_sweep_worth(9, 1, 30 * SEC, 10 * MINUTE));
  assert_true(brw_sweep_worth(10, 1, 30 * SEC, 10 * MINUTE));
  assert_false(brw_sweep_worth(39, 4, 30 * SEC, 10 * MINUTE));
  assert_true(brw_sweep_worth(40, 4, 30 * SEC, 10 * MINUTE));
  assert_true(brw_sweep_worth(2000, 4, 30 * SEC, 10 * MINUTE));
  /* Rarer sweeps pay sooner; pages below 1 count as 1. */
  assert_true(brw_sweep_worth(5, 1, 60 * SEC, 10 * MINUTE));
  assert_true(brw_sweep_worth(10, 0, 30 * SEC, 10 * MINUTE));
}

static void test_classify(void **state) {
  assert_int_equal(brw_sweep_classify(BRW_FETCH_RETRY, 0), BRW_SWEEP_RETRY);
  assert_int_equal(brw_sweep_classify(BRW_FETCH_AUTH_FAILED, 0),
                   BRW_SWEEP_RETRY);
  assert_int_equal(brw_sweep_classify(BRW_FETCH_NOT_FOUND, 0),
                   BRW_SWEEP_UNUSABLE);
  assert_int_equal(brw_sweep_classify(BRW_FETCH_REJECTED, 0),
                   BRW_SWEEP_UNUSABLE);
  assert_int_equal(brw_sweep_classify(BRW_FETCH_OK, 1), BRW_SWEEP_UNUSABLE);
}

static void test_delay(void **state) {
  assert_int_equal(brw_sweep_delay(5000, 0, 30 * SEC), 0); /* the first */
  assert_int_equal(brw_sweep_delay(100 * SEC, 90 * SEC, 30 * SEC), 20 * SEC);
  assert_int_equal(brw_sweep_delay(200 * SEC, 90 * SEC, 30 * SEC), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_path),     cmocka_unit_test(test_window),
      cmocka_unit_test(test_pages),    cmocka_unit_test(test_worth),
      cmocka_unit_test(test_classify), cmocka_unit_test(test_delay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
