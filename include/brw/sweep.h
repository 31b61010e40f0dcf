/* Status sweeps (poll.strategy = sweep or auto): the policy of one
 * account's sweeper, pure (no I/O, no clock). src/app_sweep.c carries it
 * out with the API client; tests/unit/test_sweep.c drives it.
 *
 * A sweep reads the account's campaign list (GET /api/campaigns, BSG's
 * "List of campaigns") from the creation time of its oldest tracked
 * campaign on, page by page, sorted by id, and hands every listed campaign
 * it tracks to that campaign's lifecycle (src/campaign.c, BRW_CIN_LISTED).
 * One page of up to 500 campaigns replaces up to 500 detail fetches; a
 * campaign listed with a final status gets one detail fetch for its
 * report. docs/design.md, "Status sweeps", has the whole design. */
#ifndef BRW_SWEEP_H
#define BRW_SWEEP_H

#include "brw/timeutil.h"

#include <stddef.h>
#include <stdint.h>

/* page[limit] of every list request: the most the API allows. */
#define BRW_SWEEP_PAGE_LIMIT 500
/* A sweep reads at most this many pages (50,000 campaigns); campaigns
 * beyond them are missed and fall back to details. */
#define BRW_SWEEP_MAX_PAGES 100
/* poll.strategy=auto: after a list that cannot be used (403, 404, a body
 * that is not a list), the account is polled with details for this long,
 * then its list is tried again. */
#define BRW_SWEEP_REPROBE_MS (60ull * 60 * 1000)
/* Complete sweeps in a row that list none of the account's tracked
 * campaigns before the list counts as not showing them (auto: unusable). */
#define BRW_SWEEP_BLIND_MAX 3

/* At most this many creation windows per sweep: each costs a request at
 * least. */
#define BRW_SWEEP_MAX_WINDOWS 8

/* One creation window of a sweep: filter[from] .. filter[to], epoch ms. */
typedef struct {
  int64_t from_ms;
  int64_t to_ms;
} brw_sweep_window_t;

/* Writes the path and query of one list page into buf:
 * "/api/campaigns?page%5Blimit%5D=500&page%5Boffset%5D=<offset>&sort=id
 * &way=asc&filter%5Bfrom%5D=<from>&filter%5Bto%5D=<to>", the brackets
 * percent-encoded and the times (epoch ms) written as the API writes its
 * own: zone-less "yyyy-mm-dd hh:mm:ss" in api.timezone (`tz`, NULL: UTC),
 * the space as %20; `to` is rounded up to its second. Returns 0, or
 * BRW_ERANGE when buf is too short. */
int brw_sweep_path(char *buf, size_t len, const brw_sweep_window_t *w,
                   const brw_tz_t *tz, int64_t offset);

/* Plans the creation windows that cover the account's tracked campaigns,
 * given their first events (`times`, epoch ms, any order; sorted in
 * place): each campaign needs [t - margin, t + margin] (it was created
 * before its event; the margin also absorbs clocks and a server that reads
 * the filter in another zone). Overlapping needs merge; beyond `max`
 * windows (at least 1) the closest neighbours merge, so that a campaign
 * paused for days costs its own small window instead of every campaign
 * created since. Writes the windows, oldest first, into out; returns their
 * number (0 when n is 0). Never before the epoch. */
size_t brw_sweep_plan(int64_t *times, size_t n, uint64_t margin_ms,
                      brw_sweep_window_t *out, size_t max);

/* After page `pages_done` (1 for the first) at `offset` answered `n` items
 * with meta.page.total `total` (-1: absent): the next page's offset, or -1
 * when the sweep is complete. Without a total the sweep goes on while pages
 * are full. Never more than BRW_SWEEP_MAX_PAGES pages. */
int64_t brw_sweep_next_offset(int64_t offset, size_t n, int64_t total,
                              int pages_done);

/* The pages one window costs for a list of `total` items (-1: unknown,
 * taken as 1). At least 1. */
int64_t brw_sweep_pages(int64_t total);

/* The gap between two sweeps of an account with `tracked` campaigns in
 * progress when one sweep costs `pages` pages: poll.sweep_interval, or
 * longer when the campaigns are few for the pages. Without sweeps a
 * campaign is fetched about every poll.max_interval / 2 or more often (the
 * backoff and the estimates), so `tracked` campaigns make 2 × tracked /
 * max_interval fetches per ms; the gap keeps the pages per ms at most that
 * divided by `worth` (poll.sweep_page_worth, 40: the detail fetches a page
 * must save):
 *   gap = max(sweep_interval, pages × worth × max_interval / (2 × tracked))
 * A poll.sweep_interval above poll.max_interval counts as the latter.
 * UINT64_MAX when nothing is tracked. The caller caps it at
 * poll.max_interval (brw_sweep_worth says until when that still pays).
 * With several workers in a group each decides on its own campaigns. */
uint64_t brw_sweep_interval(size_t tracked, int64_t pages, long worth,
                            uint64_t sweep_interval_ms,
                            uint64_t max_interval_ms);

/* Whether sweeping pays at all. At its slowest an account is swept every
 * poll.max_interval (the gap above, capped), which costs `pages` pages per
 * poll.max_interval where details would cost about 2 × tracked: sweeps
 * pay while tracked >= pages (one campaign per page, a margin of 2). */
int brw_sweep_worth(size_t tracked, int64_t pages, uint64_t sweep_interval_ms,
                    uint64_t max_interval_ms);

/* What a failed list page means for the account's sweeps. */
typedef enum {
  BRW_SWEEP_RETRY = 0, /* transient (transport, timeout, 5xx, 429, a 401
                          the login could not cure): again after the retry
                          backoff */
  BRW_SWEEP_UNUSABLE   /* the list is not there or not for us (404, 403,
                          another 4xx, a body that is not a list) */
} brw_sweep_failure_t;

/* Classifies a failed page by its brw_fetch_status_t (brw/api.h) and
 * whether a 200's body was unusable. */
brw_sweep_failure_t brw_sweep_classify(int fetch_status, int bad_body);

/* The delay until an account's next sweep, asked for at `now`, when the
 * last one started at `last_start` (0: none yet): at least
 * poll.sweep_interval after the last start. */
uint64_t brw_sweep_delay(uint64_t now, uint64_t last_start,
                         uint64_t sweep_interval_ms);

#endif
