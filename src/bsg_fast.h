/* Internal to src/bsg.c and src/bsg_fast.c: the yajl fast path of
 * brw_detail_summary. Called by src/bsg.c only; src/bsg_fast.c calls
 * nothing in src/bsg.c (what both read is in src/bsg_vocab.h). */
#ifndef BRW_BSG_FAST_H
#define BRW_BSG_FAST_H

#include "brw/bsg.h"

/* Fills *out as brw_detail_summary would and returns 1, or returns 0 (and
 * leaves *out alone) when the body is for the jansson path to read. `body`
 * is not empty. */
int brw__bsg_fast_summary(const char *body, size_t len, const brw_tz_t *tz,
                          brw_detail_t *out);

#endif
