/* Internal to src/bsg.c and src/bsg_fast.c: the words of a campaign detail
 * that both parsers read (SPEC §2), and how figures sent as text are read.
 *
 * The jansson parser (src/bsg.c, the reference) and the yajl fast path
 * (src/bsg_fast.c) must agree on every detail (fuzz/fuzz_detail.c checks
 * it), so what they agree on lives here once: the detail's keys and their
 * aliases, which sum a statistics counter goes into, and the digit parser.
 * The status table behind brw_status_parse (include/brw/bsg.h) is here too.
 * A leaf: this file calls neither parser, and neither parser calls the
 * other for any of it. Pure functions and constant tables. */
#ifndef BRW_BSG_VOCAB_H
#define BRW_BSG_VOCAB_H

#include "brw/bsg.h"

#include <stddef.h>
#include <stdint.h>

/* The keys of a detail object ("data", or the bare root) that the parsers
 * look up by name, indexes into brw__bsg_vocab_keys. The aliases of one
 * field are adjacent, preferred first: the field is the first of them
 * present with a non-null value. The keys before BRW__BSG_VOCAB_SUMMARY_KEYS
 * are all that brw_detail_summary reads. */
typedef enum {
  BRW__BSG_VOCAB_STATUS,
  BRW__BSG_VOCAB_ID,
  BRW__BSG_VOCAB_STARTED_AT, /* the scheduled start */
  BRW__BSG_VOCAB_START_DATE,
  BRW__BSG_VOCAB_START_AT,
  BRW__BSG_VOCAB_ACTUAL_START_AT, /* the actual start */
  BRW__BSG_VOCAB_REAL_START_AT,
  BRW__BSG_VOCAB_TOTAL_MESSAGES,
  BRW__BSG_VOCAB_TOTAL_PHONES,
  BRW__BSG_VOCAB_STATISTICS,
  BRW__BSG_VOCAB_SUMMARY_KEYS,
  /* Read only by the full parse, for the report's "campaign" object. */
  BRW__BSG_VOCAB_TYPE = BRW__BSG_VOCAB_SUMMARY_KEYS,
  BRW__BSG_VOCAB_MESSAGE_TYPE,
  BRW__BSG_VOCAB_CREATED_AT,
  BRW__BSG_VOCAB_CREATION_AT,
  BRW__BSG_VOCAB_FINISHED_AT,
  BRW__BSG_VOCAB_KEYS
} brw__bsg_vocab_key_t;

/* How many aliases each field has: the distance to the next field, so the
 * counts follow the enum. */
#define BRW__BSG_VOCAB_START_N                                                 \
  (BRW__BSG_VOCAB_ACTUAL_START_AT - BRW__BSG_VOCAB_STARTED_AT)
#define BRW__BSG_VOCAB_ACTUAL_N                                                \
  (BRW__BSG_VOCAB_TOTAL_MESSAGES - BRW__BSG_VOCAB_ACTUAL_START_AT)
#define BRW__BSG_VOCAB_TYPE_N (BRW__BSG_VOCAB_CREATED_AT - BRW__BSG_VOCAB_TYPE)
#define BRW__BSG_VOCAB_CREATED_N                                               \
  (BRW__BSG_VOCAB_FINISHED_AT - BRW__BSG_VOCAB_CREATED_AT)
#define BRW__BSG_VOCAB_FINISHED_N                                              \
  (BRW__BSG_VOCAB_KEYS - BRW__BSG_VOCAB_FINISHED_AT)

/* The key names, static, indexed by brw__bsg_vocab_key_t. */
extern const char *const brw__bsg_vocab_keys[BRW__BSG_VOCAB_KEYS];

/* Parses a non-empty string of ASCII digits, n bytes (no sign, no spaces;
 * leading zeros are fine), into *out. Returns 0, or -1 (and leaves *out
 * alone) for anything else or a value above INT64_MAX. The API sends
 * counters, totals and ids as JSON integers or as such strings. */
int brw__bsg_vocab_digits(const char *s, size_t n, int64_t *out);

/* a + b, or INT64_MAX / INT64_MIN where that overflows: statistics sums
 * saturate. */
int64_t brw__bsg_vocab_sat_add(int64_t a, int64_t b);

/* Adds one summed statistics counter (its total over every item of an
 * array) to d's sums (the counter map in src/bsg_vocab.c says which sum),
 * `counted` and statistics fingerprint. */
void brw__bsg_vocab_count(brw_detail_t *d, const char *key, int64_t total);

#endif
