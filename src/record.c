/* Record sizes and shortening (see include/brw/record.h). Pure. */
#include "brw/record.h"
#include "brw/error.h"
#include "brw/kafka.h"

#include <stdint.h>
#include <string.h>

/* A varint length prefix takes at most 5 bytes for 32-bit lengths. */
#define VARINT_MAX 5

size_t brw_record_headers_size(const brw_headers_t *hdrs) {
  if (!hdrs)
    return 0;
  size_t n = VARINT_MAX; /* the header count */
  const char *name;
  const void *val;
  size_t size;
  for (size_t i = 0; brw_headers_get(hdrs, i, &name, &val, &size) == 0; i++)
    n += 2 * VARINT_MAX + strlen(name) + size;
  return n;
}

size_t brw_record_size(size_t key_len, size_t value_len, size_t headers_size) {
  /* Saturating: the inputs come from the network and may be anything. */
  size_t n = BRW_RECORD_OVERHEAD;
  size_t parts[3] = {key_len, value_len, headers_size};
  for (int i = 0; i < 3; i++) {
    if (parts[i] > SIZE_MAX - n)
      return SIZE_MAX;
    n += parts[i];
  }
  return n;
}

static size_t min_sz(size_t a, size_t b) {
  return a < b ? a : b;
}

/* The order of the cuts: a record that fits is never touched (the DLQ keeps
 * the original bytes, SPEC §4); the key's own bound comes first (an input
 * key over event.max_key_size is the reason the record is in the DLQ); then
 * the value gives way before a short key does, since the key is what a
 * reader of the DLQ looks the event up by. */
int brw_record_fit(size_t limit, size_t key_max, size_t key_len,
                   size_t value_len, size_t headers_size, int bare,
                   brw_record_fit_t *out) {
  out->key_len = key_len;
  out->value_len = value_len;
  out->cut = 0;
  if (!bare && key_len <= key_max &&
      brw_record_size(key_len, value_len, headers_size) <= limit)
    return 0;
  size_t fixed = brw_record_size(0, 0, headers_size);
  if (fixed > SIZE_MAX - BRW_RECORD_TRUNC_HEADERS ||
      fixed + BRW_RECORD_TRUNC_HEADERS > limit)
    return BRW_ETOOLARGE;
  size_t budget = limit - fixed - BRW_RECORD_TRUNC_HEADERS;
  size_t key = min_sz(key_len, key_max);
  size_t value;
  if (bare) {
    key = min_sz(min_sz(key, BRW_RECORD_KEY_BARE), budget);
    value = 0;
  } else {
    if (key > budget || value_len > budget - key)
      key = min_sz(min_sz(key, BRW_RECORD_KEY_KEEP), budget);
    value = min_sz(value_len, budget - key);
  }
  out->key_len = key;
  out->value_len = value;
  if (key < key_len)
    out->cut |= BRW_RECORD_CUT_KEY;
  if (value < value_len)
    out->cut |= BRW_RECORD_CUT_VALUE;
  return 0;
}

size_t brw_record_utf8_cut(const void *s, size_t len, size_t max) {
  const unsigned char *p = s;
  if (max >= len)
    return len;
  /* Walk back over continuation bytes (10xxxxxx) to the lead byte of the
   * sequence that the cut would split; a sequence is at most 4 bytes. */
  size_t n = max;
  for (int back = 0; back < 4; back++) {
    if ((p[n] & 0xC0) != 0x80)
      return n; /* p[n] starts a sequence (or is ASCII): cut before it */
    if (n == 0)
      break;
    n--;
  }
  return max; /* not UTF-8 here: cut where asked */
}

int brw_record_refusal_permanent(int err) {
  switch (err) {
  case BRW_KAFKA_ERR_MSG_SIZE_TOO_LARGE:
  case BRW_KAFKA_ERR_INVALID_MSG_SIZE:
  case BRW_KAFKA_ERR_RECORD_LIST_TOO_LARGE:
  case BRW_KAFKA_ERR_INVALID_RECORD:
  case BRW_KAFKA_ERR_INVALID_TIMESTAMP:
  case BRW_KAFKA_ERR_INVALID_ARG:
    return 1;
  default:
    return 0;
  }
}
