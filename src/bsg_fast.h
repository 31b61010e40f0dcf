/* Internal to src/bsg.c and src/bsg_fast.c: the yajl fast path of
 * brw_detail_summary. */
#ifndef BRW_BSG_FAST_H
#define BRW_BSG_FAST_H

#include "brw/bsg.h"

/* Fills *out as brw_detail_summary would and returns 1, or returns 0 (and
 * leaves *out alone) when the body is for the jansson path to read. `body`
 * is not empty. */
int brw_detail_summary_fast(const char *body, size_t len, const brw_tz_t *tz,
                            brw_detail_t *out);

/* Adds one summed statistics counter to the sums and the fingerprint. */
void brw_detail_count(brw_detail_t *d, const char *key, int64_t total);

#endif
