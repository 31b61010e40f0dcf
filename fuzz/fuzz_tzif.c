/* Fuzz target: TZif files and POSIX TZ rules (src/tz.c), the parser behind
 * an IANA api.timezone. The file comes from the host's tz database, so it
 * is trusted in origin but may be damaged, truncated or not TZif at all;
 * the parser must refuse such a file cleanly, never read past it or
 * overflow, and a zone it accepts must answer sensibly for any instant.
 *
 * Checked beyond memory safety, for an accepted zone and instants taken
 * from the input: every offset is within RFC 8536's range; a local time
 * that really occurred (an instant plus its offset) reads back to a valid
 * instant no later than the original one (a repeated hour is read as its
 * first occurrence), with the offset in effect there; and any local time,
 * existing or not, gives an offset of the zone. brw_time_parse_tz agrees
 * with brw_tz_offset_local.
 *
 * The input's first byte picks the mode: odd, the rest is a whole TZif
 * file; even, the rest is a POSIX TZ rule wrapped in a minimal version 2
 * file (so that the rule grammar is reached without building a header). */
#include "brw/error.h"
#include "brw/timeutil.h"
#include "fuzz.h"

#include <string.h>

#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599

static void check_offset(int32_t off) {
  FUZZ_CHECK(off >= UTOFF_MIN && off <= UTOFF_MAX);
}

/* An instant from 8 input bytes, folded into +-400 years around 2000 half
 * the time (where real timestamps are) and anywhere the other half. */
static int64_t instant(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++)
    u = u << 8 | p[i];
  int64_t v;
  memcpy(&v, &u, sizeof(v));
  if (u & 1)
    return v;
  int64_t span = INT64_C(400) * 366 * 86400;
  return INT64_C(946684800) + (int64_t)(u % (uint64_t)(2 * span)) - span;
}

static void check_zone(const brw_tz_t *tz, const uint8_t *data, size_t size) {
  /* A fixed set of instants, plus up to 16 from the input. */
  int64_t ts[24] = {0,          -1,         INT64_MIN,  INT64_MAX,
                    1774746000, 1792890000, 4102444800, -2208988800};
  size_t n = 8;
  for (size_t i = 0; i + 8 <= size && n < 24; i += 8)
    ts[n++] = instant(data + i);

  for (size_t i = 0; i < n; i++) {
    int64_t u = ts[i];
    int32_t off = brw_tz_offset_at(tz, u);
    check_offset(off);
    check_offset(brw_tz_offset_local(tz, u));
    if (u < -(INT64_C(1) << 49) || u > (INT64_C(1) << 49))
      continue; /* the zone clamps far instants; no round trip there */
    /* The local time of u really occurred: it must read back to a valid
     * instant, the earliest one showing that local time. */
    int64_t local = u + off;
    int32_t back = brw_tz_offset_local(tz, local);
    check_offset(back);
    FUZZ_CHECK(brw_tz_offset_at(tz, local - back) == back);
    FUZZ_CHECK(local - back <= u);
  }

  /* The parser applies the same offset as brw_tz_offset_local. */
  static const char *const texts[] = {
      "2026-03-29 03:30:00", "2026-10-25 03:30:00", "1970-01-01 00:00:00",
      "2100-12-31 23:59:59"};
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    int64_t ms, local;
    FUZZ_CHECK(brw_time_parse(texts[i], 0, &local) == 0);
    local /= 1000;
    if (brw_time_parse_tz(texts[i], tz, &ms) == 0)
      FUZZ_CHECK(ms / 1000 == local - brw_tz_offset_local(tz, local));
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  brw_tz_t *tz = NULL;
  char why[128];
  int rc;

  if (size == 0)
    return 0;
  if (data[0] & 1) {
    rc = brw_tz_from_tzif(data + 1, size - 1, &tz, why, sizeof(why));
  } else {
    /* A minimal version 2 file around the rule: one type of +2h. */
    static const uint8_t head[] = {
        'T', 'Z', 'i', 'f', '2',  0,    0, 0, 0,   0,   0,   0, 0, 0,
        0,   0,   0,   0,   0,    0,    0, 0, 0,   0,   0,   0, 0, 0,
        0,   0,   0,   0,   0,    0,    0, 0, 0,   0,   0,   1, 0, 0,
        0,   4,   0,   0,   0x1c, 0x20, 0, 0, 'S', 'T', 'D', 0};
    size_t rl = size - 1, n = 0;
    uint8_t *buf = malloc(2 * sizeof(head) + rl + 2);
    FUZZ_CHECK(buf != NULL);
    memcpy(buf, head, sizeof(head));
    memcpy(buf + sizeof(head), head, sizeof(head));
    n = 2 * sizeof(head);
    buf[n++] = '\n';
    memcpy(buf + n, data + 1, rl);
    n += rl;
    buf[n++] = '\n';
    rc = brw_tz_from_tzif(buf, n, &tz, why, sizeof(why));
    free(buf);
  }
  if (rc == 0) {
    FUZZ_CHECK(tz != NULL);
    check_zone(tz, data + 1, size - 1);
    brw_tz_free(tz);
  } else {
    FUZZ_CHECK(rc == BRW_EINVAL);
    FUZZ_CHECK(tz == NULL);
    FUZZ_CHECK(fuzz_is_one_line(why) && why[0] != '\0');
  }
  return 0;
}
