#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
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

/* ---- The encoder against a reference ------------------------------------
 *
 * A model of the tracker with one state per offset in a plain array, and an
 * encoder written straight from the header's description of the format: it
 * walks every offset from the commit position, so it is obviously right and
 * obviously slow. The real encoder must produce the same bytes. */

enum { REF_GAP = 0, REF_PENDING = 1, REF_DONE = 2 };

typedef struct {
  uint8_t *state; /* by offset, from 0 */
  size_t cap;
  int64_t next; /* one past the highest added; -1 before any */
  size_t npending;
  int64_t low; /* nothing below is pending */
} ref_t;

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x9E3779B97F4A7C15ull;
}

static void ref_add(ref_t *r, int64_t off) {
  if ((size_t)off >= r->cap) {
    size_t ncap = r->cap ? r->cap : 256;
    while (ncap <= (size_t)off)
      ncap *= 2;
    r->state = realloc(r->state, ncap);
    assert_non_null(r->state);
    memset(r->state + r->cap, REF_GAP, ncap - r->cap);
    r->cap = ncap;
  }
  r->state[off] = REF_PENDING;
  r->next = off + 1;
  r->npending++;
}

static int64_t ref_committable(ref_t *r) {
  if (r->next < 0)
    return -1;
  while (r->low < r->next && r->state[r->low] != REF_PENDING)
    r->low++;
  return r->low;
}

static size_t ref_encode(ref_t *r, char *buf, size_t len) {
  if (len == 0)
    return 0;
  buf[0] = '\0';
  int64_t base = ref_committable(r);
  if (base < 0 || base == r->next)
    return 0;
  size_t used = (size_t)snprintf(buf, len, "brw1:%lld:", (long long)base);
  if (used >= len) {
    buf[0] = '\0';
    return 0;
  }
  int64_t at = base;
  int any = 0;
  for (;;) {
    int64_t nd = 0, d = 0;
    while (at + nd < r->next && r->state[at + nd] != REF_DONE)
      nd++;
    while (at + nd + d < r->next && r->state[at + nd + d] == REF_DONE)
      d++;
    if (d == 0)
      break;
    char pair[64];
    size_t m = (size_t)snprintf(pair, sizeof(pair), "%s%lld,%lld",
                                any ? "," : "", (long long)nd, (long long)d);
    if (used + m >= len)
      break;
    memcpy(buf + used, pair, m + 1);
    used += m;
    any = 1;
    at += nd + d;
  }
  if (!any) {
    buf[0] = '\0';
    return 0;
  }
  return used;
}

/* Compares encode at buffer sizes from too small for the prefix to 4000. */
static void check_encode(const brw_offsets_t *o, ref_t *r) {
  static const size_t lens[] = {0, 1, 5, 8, 12, 14, 17, 23, 31, 64, 200, 4000};
  assert_int_equal(brw_offsets_committable(o), ref_committable(r));
  assert_int_equal(brw_offsets_pending(o), r->npending);
  for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
    char got[4000], want[4000];
    memset(got, 'x', sizeof(got));
    memset(want, 'x', sizeof(want));
    size_t n = brw_offsets_encode(o, got, lens[k]);
    size_t m = ref_encode(r, want, lens[k]);
    assert_int_equal(n, m);
    if (lens[k] > 0)
      assert_string_equal(got, want);
  }
}

/* One random history. `gap_pct`: chance that an add skips offsets;
 * `head_pct`: chance per step of completing the oldest pending offset (low
 * values let the window grow, high ones slide it around the ring);
 * `done_pct`: chance of completing a random pending one; `hold`: the oldest
 * pending offset is not completed while the window is narrower than that, so
 * a wide window slides. */
typedef struct {
  int steps, gap_pct, head_pct, done_pct, check_every;
  int64_t hold;
} history_t;

static void random_history(history_t h) {
  brw_offsets_t *o = brw_offsets_new();
  assert_non_null(o);
  ref_t r = {NULL, 0, -1, 0, 0};
  int64_t *pend = NULL; /* pending offsets, unordered */
  size_t npend = 0, pcap = 0;
  int64_t off = (int64_t)(rnd() % 1000);
  for (int s = 0; s < h.steps; s++) {
    int roll = (int)(rnd() % 100);
    if (roll < 45 || npend == 0) {
      if ((int)(rnd() % 100) < h.gap_pct)
        off += 1 + (int64_t)(rnd() % (rnd() % 8 == 0 ? 300 : 5));
      assert_int_equal(brw_offsets_add(o, off), 0);
      ref_add(&r, off);
      if (npend == pcap) {
        pcap = pcap ? pcap * 2 : 64;
        pend = realloc(pend, pcap * sizeof(*pend));
        assert_non_null(pend);
      }
      pend[npend++] = off;
      off++;
    } else {
      size_t k;
      if ((int)(rnd() % 100) < h.head_pct) {
        k = 0; /* the oldest pending */
        for (size_t i = 1; i < npend; i++)
          if (pend[i] < pend[k])
            k = i;
      } else if ((int)(rnd() % 100) < h.done_pct) {
        k = (size_t)(rnd() % npend);
      } else {
        continue;
      }
      if (pend[k] == ref_committable(&r) && r.next - pend[k] < h.hold)
        continue;
      assert_int_equal(brw_offsets_done(o, pend[k]), 0);
      assert_int_equal(brw_offsets_done(o, pend[k]), BRW_ENOENT);
      r.state[pend[k]] = REF_DONE;
      r.npending--;
      pend[k] = pend[--npend];
    }
    if (s % h.check_every == 0)
      check_encode(o, &r);
  }
  check_encode(o, &r);
  /* Drain in random order, checking as the head moves. */
  while (npend > 0) {
    size_t k = (size_t)(rnd() % npend);
    assert_int_equal(brw_offsets_done(o, pend[k]), 0);
    r.state[pend[k]] = REF_DONE;
    r.npending--;
    pend[k] = pend[--npend];
    if (npend % 7 == 0)
      check_encode(o, &r);
  }
  check_encode(o, &r);
  free(pend);
  free(r.state);
  brw_offsets_free(o);
}

static void test_encode_matches_reference(void **state) {
  for (int seed = 0; seed < 40; seed++) {
    rng = 0x2545F4914F6CDD1Dull + (uint64_t)seed * 7919;
    int gap = (int)(rnd() % 40), head = (int)(rnd() % 30);
    int done = 20 + (int)(rnd() % 80), every = 1 + (int)(rnd() % 5);
    random_history((history_t){3000, gap, head, done, every, 0});
  }
  /* A sliding window: the head keeps completing, so the ring wraps many
   * times at a small capacity. */
  rng = 42;
  random_history((history_t){20000, 10, 60, 50, 3, 0});
  /* A growing window: the head almost never completes. */
  rng = 43;
  random_history((history_t){20000, 20, 1, 60, 50, 0});
  /* A window held thousands of offsets wide (a ring of 4096 or more:
   * several index levels) sliding with most of it done, so that whole words
   * of done slots are dropped at the head and reused as the ring wraps. */
  for (int seed = 0; seed < 6; seed++) {
    rng = 1000 + (uint64_t)seed;
    random_history((history_t){30000, seed % 3 * 10, 10 + seed * 10, 95, 11,
                               2500 + seed * 500});
  }
}

/* Runs that cross the end of the ring: with offset 39 stuck pending in a
 * ring of 64, offsets 39..102 occupy ring slots 39..63 then 0..38, so offset
 * x sits in slot x % 64. Every done/pending pattern of offsets 60..67 (slots
 * 60..63, 0..3) is checked, with and without a done run up to the newest. */
static void test_encode_wraparound(void **state) {
  for (int pat = 0; pat < 512; pat++) {
    brw_offsets_t *o = brw_offsets_new();
    ref_t r = {NULL, 0, -1, 0, 0};
    for (int64_t i = 0; i < 50; i++) {
      assert_int_equal(brw_offsets_add(o, i), 0);
      ref_add(&r, i);
    }
    for (int64_t i = 0; i < 39; i++) {
      assert_int_equal(brw_offsets_done(o, i), 0);
      r.state[i] = REF_DONE;
      r.npending--;
    }
    for (int64_t i = 50; i < 103; i++) {
      assert_int_equal(brw_offsets_add(o, i), 0);
      ref_add(&r, i);
    }
    for (int b = 0; b < 9; b++) {
      /* bits 0..7: offsets 60..67; bit 8: 68..102 (to the newest) */
      if (!(pat & (1 << b)))
        continue;
      for (int64_t x = 60 + b; x < (b < 8 ? 61 + b : 103); x++) {
        assert_int_equal(brw_offsets_done(o, x), 0);
        r.state[x] = REF_DONE;
        r.npending--;
      }
    }
    check_encode(o, &r);
    /* Completing the stuck head moves the window past the wrap. */
    assert_int_equal(brw_offsets_done(o, 39), 0);
    r.state[39] = REF_DONE;
    r.npending--;
    check_encode(o, &r);
    free(r.state);
    brw_offsets_free(o);
  }
}

/* Marks [from, to) done in both. */
static void done_range(brw_offsets_t *o, ref_t *r, int64_t from, int64_t to) {
  for (int64_t x = from; x < to; x++) {
    assert_int_equal(brw_offsets_done(o, x), 0);
    r->state[x] = REF_DONE;
    r->npending--;
  }
}

/* Done runs long enough to fill whole words of every index level (4096 and
 * 262144 slots fill a level-1 and a level-2 word) are dropped at the head,
 * then the same ring slots are reused with other runs: summaries of dropped
 * slots must not survive. */
static void test_encode_long_runs_reused(void **state) {
  const int64_t lens[] = {100, 5000, 300000};
  for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
    int64_t L = lens[k];
    brw_offsets_t *o = brw_offsets_new();
    ref_t r = {NULL, 0, -1, 0, 0};
    for (int64_t i = 0; i <= 2 * L; i++) {
      assert_int_equal(brw_offsets_add(o, i), 0);
      ref_add(&r, i);
    }
    done_range(o, &r, 1, 2 * L); /* head and newest pending */
    check_encode(o, &r);
    done_range(o, &r, 0, 1); /* drops 0..2L-1; head stays at ring 2L */
    check_encode(o, &r);
    /* The ring now wraps over the slots just dropped. */
    int64_t b = 2 * L + 1;
    for (int64_t i = b; i < b + 2 * L; i++) {
      assert_int_equal(brw_offsets_add(o, i), 0);
      ref_add(&r, i);
    }
    done_range(o, &r, b + 1, b + L);
    done_range(o, &r, b + L + 1, b + 2 * L - 1);
    check_encode(o, &r);
    char buf[4000], want[128];
    brw_offsets_encode(o, buf, sizeof(buf));
    snprintf(want, sizeof(want), "brw1:%lld:2,%lld,1,%lld", (long long)(b - 1),
             (long long)(L - 1), (long long)(L - 2));
    assert_string_equal(buf, want);
    /* Drop everything; the window restarts at ring 0 over old slots. */
    done_range(o, &r, b - 1, b + 1);
    done_range(o, &r, b + L, b + L + 1);
    done_range(o, &r, b + 2 * L - 1, b + 2 * L);
    assert_int_equal(brw_offsets_pending(o), 0);
    int64_t c = b + 2 * L;
    for (int64_t i = c; i < c + L; i++) {
      assert_int_equal(brw_offsets_add(o, i), 0);
      ref_add(&r, i);
    }
    done_range(o, &r, c + 1, c + L / 2);
    check_encode(o, &r);
    free(r.state);
    brw_offsets_free(o);
  }
}

/* The cases the old encoder walked the whole window for: a window of 10^6
 * with only the newest done, and one with everything done but the head. */
static void test_encode_sparse_wide(void **state) {
  const int64_t n = 1000000;
  brw_offsets_t *o = brw_offsets_new();
  for (int64_t i = 0; i < n; i++)
    assert_int_equal(brw_offsets_add(o, i), 0);
  char buf[4000];
  assert_int_equal(brw_offsets_encode(o, buf, sizeof(buf)), 0);
  assert_int_equal(brw_offsets_done(o, n - 1), 0);
  size_t m = brw_offsets_encode(o, buf, sizeof(buf));
  assert_string_equal(buf, "brw1:0:999999,1");
  assert_int_equal(m, strlen(buf));
  for (int64_t i = 1; i < n - 1; i++)
    assert_int_equal(brw_offsets_done(o, i), 0);
  brw_offsets_encode(o, buf, sizeof(buf));
  assert_string_equal(buf, "brw1:0:1,999999");
  assert_int_equal(brw_offsets_done(o, 0), 0);
  assert_int_equal(brw_offsets_encode(o, buf, sizeof(buf)), 0);
  assert_int_equal(brw_offsets_committable(o), n);
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
      cmocka_unit_test(test_encode_matches_reference),
      cmocka_unit_test(test_encode_wraparound),
      cmocka_unit_test(test_encode_sparse_wide),
      cmocka_unit_test(test_encode_long_runs_reused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
