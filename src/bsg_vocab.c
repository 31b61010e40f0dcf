/* The words of a campaign detail that both detail parsers read: statuses,
 * keys and their aliases, the statistics counters' sums, and the digit
 * parser (src/bsg_vocab.h says why they are in one place). */
#include "bsg_vocab.h"

#include <string.h>
#include <strings.h>

/* ---- statuses ----------------------------------------------------------- */

/* The names are brw/vocab.h's list (brw_status_names); the report's
 * outcomes are the final ones plus "expired". */

brw_status_t brw_status_parse(const char *s) {
  if (!s)
    return BRW_STATUS_UNKNOWN;
  for (int i = 1; i < BRW_STATUS__COUNT; i++) {
    if (!strcasecmp(s, brw_status_names[i]))
      return (brw_status_t)i;
  }
  return BRW_STATUS_UNKNOWN;
}

const char *brw_status_name(brw_status_t st) {
  return (unsigned)st < BRW_STATUS__COUNT ? brw_status_names[st]
                                          : brw_status_names[0];
}

int brw_status_is_terminal(brw_status_t st) {
  switch (st) {
#define BRW_X_(e, s) case BRW_STATUS_##e:
    BRW_STATUSES(BRW_VOCAB_SKIP, BRW_X_)
#undef BRW_X_
    return 1;
  default:
    return 0;
  }
}

/* ---- keys and aliases --------------------------------------------------- */

/* BSG's public examples disagree on some names (SPEC §2): the scheduled
 * start comes as started_at, start_date or start_at, and so on. */
const char *const brw__bsg_vocab_keys[BRW__BSG_VOCAB_KEYS] = {
    [BRW__BSG_VOCAB_STATUS] = "status",
    [BRW__BSG_VOCAB_ID] = "id",
    [BRW__BSG_VOCAB_STARTED_AT] = "started_at",
    [BRW__BSG_VOCAB_START_DATE] = "start_date",
    [BRW__BSG_VOCAB_START_AT] = "start_at",
    [BRW__BSG_VOCAB_ACTUAL_START_AT] = "actual_start_at",
    [BRW__BSG_VOCAB_REAL_START_AT] = "real_start_at",
    [BRW__BSG_VOCAB_TOTAL_MESSAGES] = "total_messages",
    [BRW__BSG_VOCAB_TOTAL_PHONES] = "total_phones",
    [BRW__BSG_VOCAB_STATISTICS] = "statistics",
    [BRW__BSG_VOCAB_TYPE] = "type",
    [BRW__BSG_VOCAB_MESSAGE_TYPE] = "message_type",
    [BRW__BSG_VOCAB_CREATED_AT] = "created_at",
    [BRW__BSG_VOCAB_CREATION_AT] = "creation_at",
    [BRW__BSG_VOCAB_FINISHED_AT] = "finished_at",
};

/* ---- figures ------------------------------------------------------------ */

int brw__bsg_vocab_digits(const char *s, size_t n, int64_t *out) {
  int64_t x = 0;
  if (n == 0)
    return -1;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    if (x > (INT64_MAX - (s[i] - '0')) / 10)
      return -1;
    x = x * 10 + (s[i] - '0');
  }
  *out = x;
  return 0;
}

int64_t brw__bsg_vocab_sat_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r))
    return b > 0 ? INT64_MAX : INT64_MIN;
  return r;
}

/* ---- statistics counters ------------------------------------------------ */

/* Which sum a counter goes into (SPEC §2 statistics; the reasons are in
 * docs/design.md, "Statistics and rates"). The counters split the messages
 * by their current status, so each message is in exactly one: `read` is a
 * delivered message that was also read (Viber, RCS) and counts as
 * delivered; `unknown` (no delivery report will come) is neither delivered,
 * failed nor pending, and enters only the denominator of the rates, as do
 * counters this table does not know. */
enum { SUM_NONE, SUM_DELIVERED, SUM_FAILED, SUM_PENDING };
static int counter_sum(const char *key) {
  static const struct {
    const char *key;
    int sum;
  } k[] = {{"delivered", SUM_DELIVERED}, {"read", SUM_DELIVERED},
           {"failed", SUM_FAILED},       {"undelivered", SUM_FAILED},
           {"expired", SUM_FAILED},      {"not_viber_user", SUM_FAILED},
           {"not_rcs_user", SUM_FAILED}, {"sent", SUM_PENDING},
           {"scheduled", SUM_PENDING},   {"moderation", SUM_PENDING},
           {"accepted", SUM_PENDING},    {"sending", SUM_PENDING}};
  for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
    if (!strcmp(key, k[i].key))
      return k[i].sum;
  return SUM_NONE;
}

static void sums_add(brw_detail_t *d, const char *key, int64_t n) {
  switch (counter_sum(key)) {
  case SUM_DELIVERED:
    d->delivered = brw__bsg_vocab_sat_add(d->delivered, n);
    break;
  case SUM_FAILED:
    d->failed = brw__bsg_vocab_sat_add(d->failed, n);
    break;
  case SUM_PENDING:
    d->pending = brw__bsg_vocab_sat_add(d->pending, n);
    break;
  default:
    break;
  }
}

/* One counter's share of the statistics fingerprint: FNV-1a of the key,
 * mixed with the value. Shares are added, so the order of keys does not
 * matter. */
static uint64_t stat_share(const char *key, int64_t n) {
  uint64_t h = 14695981039346656037ull;
  for (const unsigned char *p = (const unsigned char *)key; *p; p++)
    h = (h ^ *p) * 1099511628211ull;
  h ^= (uint64_t)n + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h = (h ^ (h >> 31)) * 0xBF58476D1CE4E5B9ull;
  return h ^ (h >> 29);
}

void brw__bsg_vocab_count(brw_detail_t *d, const char *key, int64_t total) {
  sums_add(d, key, total);
  d->counted = brw__bsg_vocab_sat_add(d->counted, total);
  d->stats_hash += stat_share(key, total);
}
