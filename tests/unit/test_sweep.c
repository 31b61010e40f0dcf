/* The status sweeps' policy (src/sweep.c): the list request, the windows,
 * page planning, the cost rule and cadence, failure classes. */
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
  brw_sweep_window_t w = {T_UTC, T_UTC + 90 * 60000 + 1};
  assert_int_equal(brw_sweep_path(buf, sizeof(buf), &w, NULL, 0), 0);
  assert_string_equal(buf, "/api/campaigns?page%5Blimit%5D=500"
                           "&page%5Boffset%5D=0&sort=id&way=asc"
                           "&filter%5Bfrom%5D=2026-12-06%2010%3A00%3A00"
                           "&filter%5Bto%5D=2026-12-06%2011%3A30%3A01");
  /* The API's own zone: two hours east, and the next page's offset. */
  brw_tz_t *tz = brw_tz_fixed(2 * 3600);
  assert_non_null(tz);
  w.from_ms = T_UTC + 999;
  assert_int_equal(brw_sweep_path(buf, sizeof(buf), &w, tz, 1000), 0);
  assert_non_null(strstr(buf, "page%5Boffset%5D=1000&"));
  assert_non_null(strstr(buf, "filter%5Bfrom%5D=2026-12-06%2012%3A00%3A00"));
  assert_non_null(strstr(buf, "filter%5Bto%5D=2026-12-06%2013%3A30%3A01"));
  brw_tz_free(tz);
  /* Too short a buffer is an error, not a cut query. */
  assert_int_equal(brw_sweep_path(buf, 40, &w, NULL, 0), BRW_ERANGE);
}

/* Windows: [t - margin, t + margin] per campaign, merged where they
 * overlap; beyond the cap the closest neighbours merge. */
static void test_plan(void **state) {
  brw_sweep_window_t w[BRW_SWEEP_MAX_WINDOWS];
  const int64_t H = 3600000;
  /* A burst: one window, margin on both sides; any order in. */
  int64_t t1[] = {T_UTC + 5000, T_UTC, T_UTC + 60000};
  assert_int_equal(brw_sweep_plan(t1, 3, H, w, BRW_SWEEP_MAX_WINDOWS), 1);
  assert_int_equal(w[0].from_ms, T_UTC - H);
  assert_int_equal(w[0].to_ms, T_UTC + 60000 + H);
  /* A campaign paused for days, then today's: two small windows, not
   * three days of the account's list. */
  int64_t t2[] = {T_UTC, T_UTC - 72 * H, T_UTC + 10 * 60000};
  assert_int_equal(brw_sweep_plan(t2, 3, H, w, BRW_SWEEP_MAX_WINDOWS), 2);
  assert_int_equal(w[0].from_ms, T_UTC - 73 * H);
  assert_int_equal(w[0].to_ms, T_UTC - 71 * H);
  assert_int_equal(w[1].from_ms, T_UTC - H);
  assert_int_equal(w[1].to_ms, T_UTC + 10 * 60000 + H);
  /* Gaps of exactly two margins still touch: one window. */
  int64_t t3[] = {T_UTC, T_UTC + 2 * H};
  assert_int_equal(brw_sweep_plan(t3, 2, H, w, 4), 1);
  /* Ten campaigns about a day apart, at most 4 windows: the 3 widest gaps
   * split (ties: the newer ones) and every campaign is inside a
   * window. */
  int64_t t4[10];
  for (int i = 0; i < 10; i++)
    t4[i] = T_UTC - (int64_t)(9 - i) * 24 * H - (i >= 7 ? (int64_t)i * H : 0);
  int64_t copy[10];
  memcpy(copy, t4, sizeof(t4));
  size_t k = brw_sweep_plan(t4, 10, H, w, 4);
  assert_int_equal(k, 4);
  /* Gaps: six of 24 h, then 17 h, 23 h, 23 h: the three newest 24 h gaps
   * split (before campaigns 4, 5 and 6), the 17 h and 23 h ones merge. */
  assert_int_equal(w[0].to_ms, copy[3] + H);
  assert_int_equal(w[1].from_ms, copy[4] - H);
  assert_int_equal(w[1].to_ms, copy[4] + H);
  assert_int_equal(w[3].from_ms, copy[6] - H);
  assert_int_equal(w[3].to_ms, copy[9] + H);
  for (int i = 0; i < 10; i++) {
    int in = 0;
    for (size_t j = 0; j < k; j++)
      in |= copy[i] - H >= w[j].from_ms && copy[i] + H <= w[j].to_ms;
    assert_true(in);
  }
  for (size_t j = 1; j < k; j++)
    assert_true(w[j].from_ms > w[j - 1].to_ms);
  /* One window at most: everything in it. */
  assert_int_equal(brw_sweep_plan(t4, 10, H, w, 1), 1);
  assert_int_equal(w[0].from_ms, copy[0] - H);
  /* Nothing tracked; and never before the epoch. */
  assert_int_equal(brw_sweep_plan(t4, 0, H, w, 4), 0);
  int64_t t5[] = {5000};
  assert_int_equal(brw_sweep_plan(t5, 1, H, w, 4), 1);
  assert_int_equal(w[0].from_ms, 0);
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

/* The gap between sweeps: poll.sweep_interval while a page stands in for
 * at least `worth` (poll.sweep_page_worth, 40) detail fetches, longer when the
 * campaigns are few; sweeps pay from one campaign per page on. */
static void test_interval(void **state) {
  const uint64_t S = 30 * SEC, M = 10 * MINUTE;
  const long W = 40;
  /* 4 pages x 40 x 600 s / (2 x 2000) = 24 s: the floor. */
  assert_int_equal(brw_sweep_interval(2000, 4, W, S, M), S);
  /* ... / (2 x 400) = 120 s; / (2 x 100) = 480 s. */
  assert_int_equal(brw_sweep_interval(400, 4, W, S, M), 120 * SEC);
  assert_int_equal(brw_sweep_interval(100, 4, W, S, M), 480 * SEC);
  assert_int_equal(brw_sweep_interval(0, 4, W, S, M), UINT64_MAX);
  /* pages < 1 count as 1: 40 x 600 s / 20 = 1,200 s (the caller caps it
   * at poll.max_interval). */
  assert_int_equal(brw_sweep_interval(10, 0, W, S, M), 1200 * SEC);
  assert_false(brw_sweep_worth(0, 1, S, M));
  assert_true(brw_sweep_worth(1, 1, S, M));
  assert_false(brw_sweep_worth(3, 4, S, M));
  assert_true(brw_sweep_worth(4, 4, S, M));
  assert_true(brw_sweep_worth(2000, 4, S, M));
  assert_true(brw_sweep_worth(1, 0, S, M));
  /* A page worth more details: rarer sweeps; worth below 1 counts as 1. */
  assert_int_equal(brw_sweep_interval(400, 4, 80, S, M), 240 * SEC);
  assert_int_equal(brw_sweep_interval(4000, 4, 0, S, M), S);
  /* A floor above poll.max_interval acts as poll.max_interval. */
  assert_int_equal(brw_sweep_interval(2000, 1, W, 20 * MINUTE, M), M);
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
      cmocka_unit_test(test_path),     cmocka_unit_test(test_plan),
      cmocka_unit_test(test_pages),    cmocka_unit_test(test_interval),
      cmocka_unit_test(test_classify), cmocka_unit_test(test_delay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
