#include "brw/sweep.h"

#include "brw/api.h"
#include "brw/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <time.h>

int brw_sweep_path(char *buf, size_t len, int64_t from_ms, const brw_tz_t *tz,
                   int64_t offset) {
  int64_t s = from_ms / 1000;
  int64_t local = s + (tz ? brw_tz_offset_at(tz, s) : 0);
  time_t t = (time_t)local;
  struct tm tm;
  if (!gmtime_r(&t, &tm))
    return BRW_ERANGE;
  int n =
      snprintf(buf, len,
               "/api/campaigns?page%%5Blimit%%5D=%d&page%%5Boffset%%5D=%" PRId64
               "&sort=id&way=asc&filter%%5Bfrom%%5D="
               "%04d-%02d-%02d%%20%02d%%3A%02d%%3A%02d",
               BRW_SWEEP_PAGE_LIMIT, offset, tm.tm_year + 1900, tm.tm_mon + 1,
               tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return n > 0 && (size_t)n < len ? 0 : BRW_ERANGE;
}

int64_t brw_sweep_window_from(int64_t oldest_first_event_ms,
                              uint64_t margin_ms) {
  if (oldest_first_event_ms <= 0 ||
      margin_ms >= (uint64_t)oldest_first_event_ms)
    return 0;
  return oldest_first_event_ms - (int64_t)margin_ms;
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

int brw_sweep_worth(size_t tracked, int64_t pages, uint64_t sweep_interval_ms,
                    uint64_t max_interval_ms) {
  if (pages < 1)
    pages = 1;
  if (sweep_interval_ms == 0)
    sweep_interval_ms = 1;
  /* tracked * 2 * sweep_interval >= pages * max_interval, in doubles: the
   * products of durations in ms overflow nothing there. */
  return (double)tracked * 2.0 * (double)sweep_interval_ms >=
         (double)pages * (double)max_interval_ms;
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
