#include "brw/sweep.h"

#include "brw/api.h"
#include "brw/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* "yyyy-mm-dd%20hh%3Amm%3Ass" of epoch second `s` in `tz`. */
static int local_text(char *buf, size_t len, int64_t s, const brw_tz_t *tz) {
  time_t t = (time_t)(s + (tz ? brw_tz_offset_at(tz, s) : 0));
  struct tm tm;
  if (!gmtime_r(&t, &tm))
    return BRW_ERANGE;
  int n = snprintf(buf, len, "%04d-%02d-%02d%%20%02d%%3A%02d%%3A%02d",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec);
  return n > 0 && (size_t)n < len ? 0 : BRW_ERANGE;
}

int brw_sweep_path(char *buf, size_t len, const brw_sweep_window_t *w,
                   const brw_tz_t *tz, int64_t offset) {
  char from[48], to[48];
  if (local_text(from, sizeof(from), w->from_ms / 1000, tz) != 0 ||
      local_text(to, sizeof(to), (w->to_ms + 999) / 1000, tz) != 0)
    return BRW_ERANGE;
  int n = snprintf(buf, len,
                   "/api/campaigns?page%%5Blimit%%5D=%d&page%%5Boffset%%5D=%" PRId64
                   "&sort=id&way=asc&filter%%5Bfrom%%5D=%s&filter%%5Bto%%5D=%s",
                   BRW_SWEEP_PAGE_LIMIT, offset, from, to);
  return n > 0 && (size_t)n < len ? 0 : BRW_ERANGE;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

size_t brw_sweep_plan(int64_t *times, size_t n, uint64_t margin_ms,
                      brw_sweep_window_t *out, size_t max) {
  if (n == 0)
    return 0;
  if (max < 1)
    max = 1;
  if (max > BRW_SWEEP_MAX_WINDOWS)
    max = BRW_SWEEP_MAX_WINDOWS;
  qsort(times, n, sizeof(times[0]), cmp_i64);
  int64_t m = margin_ms > (uint64_t)INT64_MAX / 4 ? INT64_MAX / 4
                                                  : (int64_t)margin_ms;
  /* The widest gaps above two margins split, at most max - 1 of them
   * (ties: the newer gap splits, the older campaigns share a window): kept
   * by width in top[], widest first, in one pass. */
  size_t top[BRW_SWEEP_MAX_WINDOWS], ntop = 0;
  for (size_t i = 1; i < n; i++) {
    int64_t g = times[i] - times[i - 1];
    if (g <= 2 * m)
      continue;
    size_t at = ntop;
    while (at > 0 && times[top[at - 1]] - times[top[at - 1] - 1] <= g)
      at--; /* `<=`: a later gap of equal width goes first */
    if (at >= max - 1)
      continue;
    size_t last = ntop < max - 1 ? ntop : max - 2;
    for (size_t j = last; j > at; j--)
      top[j] = top[j - 1];
    top[at] = i;
    if (ntop < max - 1)
      ntop++;
  }
  /* The splits in time order. */
  for (size_t a = 1; a < ntop; a++)
    for (size_t b = a; b > 0 && top[b - 1] > top[b]; b--) {
      size_t x = top[b];
      top[b] = top[b - 1];
      top[b - 1] = x;
    }
  size_t w = 0;
  out[0].from_ms = times[0] - m;
  for (size_t j = 0; j < ntop; j++) {
    out[w].to_ms = times[top[j] - 1] + m;
    out[++w].from_ms = times[top[j]] - m;
  }
  out[w].to_ms = times[n - 1] + m;
  for (size_t i = 0; i <= w; i++)
    if (out[i].from_ms < 0)
      out[i].from_ms = 0;
  return w + 1;
}

int64_t brw_sweep_next_offset(int64_t offset, size_t n, int64_t total,
                              int pages_done) {
  if (n == 0 || pages_done >= BRW_SWEEP_MAX_PAGES)
    return -1;
  int64_t next = offset + (int64_t)n;
  if (total >= 0)
    return next < total ? next : -1;
  return n >= BRW_SWEEP_PAGE_LIMIT ? next : -1;
}

int64_t brw_sweep_pages(int64_t total) {
  if (total <= 0)
    return 1;
  int64_t p = (total + BRW_SWEEP_PAGE_LIMIT - 1) / BRW_SWEEP_PAGE_LIMIT;
  return p < BRW_SWEEP_MAX_PAGES ? p : BRW_SWEEP_MAX_PAGES;
}

uint64_t brw_sweep_interval(size_t tracked, int64_t pages, long worth,
                            uint64_t sweep_interval_ms,
                            uint64_t max_interval_ms) {
  if (tracked == 0)
    return UINT64_MAX;
  if (pages < 1)
    pages = 1;
  if (sweep_interval_ms > max_interval_ms)
    sweep_interval_ms = max_interval_ms; /* a campaign is seen by then */
  /* In doubles: the product of a duration in ms and the pages overflows
   * nothing there; the result is capped below. */
  if (worth < 1)
    worth = 1;
  double gap = (double)pages * (double)worth * (double)max_interval_ms /
               (2.0 * (double)tracked);
  if (gap >= 1.8e19)
    return UINT64_MAX;
  uint64_t g = (uint64_t)gap;
  return g > sweep_interval_ms ? g : sweep_interval_ms;
}

int brw_sweep_worth(size_t tracked, int64_t pages, uint64_t sweep_interval_ms,
                    uint64_t max_interval_ms) {
  (void)max_interval_ms;
  if (pages < 1)
    pages = 1;
  (void)sweep_interval_ms;
  return tracked > 0 && (int64_t)tracked >= pages;
}

brw_sweep_failure_t brw_sweep_classify(int fetch_status, int bad_body) {
  if (bad_body)
    return BRW_SWEEP_UNUSABLE;
  switch ((brw_fetch_status_t)fetch_status) {
  case BRW_FETCH_NOT_FOUND:
  case BRW_FETCH_REJECTED:
    return BRW_SWEEP_UNUSABLE;
  case BRW_FETCH_OK:
  case BRW_FETCH_RETRY:
  case BRW_FETCH_AUTH_FAILED:
    break;
  }
  return BRW_SWEEP_RETRY;
}

uint64_t brw_sweep_delay(uint64_t now, uint64_t last_start,
                         uint64_t sweep_interval_ms) {
  if (!last_start)
    return 0;
  uint64_t at = last_start + sweep_interval_ms;
  return at > now ? at - now : 0;
}
