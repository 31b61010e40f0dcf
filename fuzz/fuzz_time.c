/* Fuzz target: time text (timeutil.h): brw_time_parse, the reader of every
 * BSG timestamp and of events' occurred_at, and brw_tz_parse, the reader of
 * api.timezone; brw_time_format as their inverse.
 *
 * Checked beyond memory safety: a parsed instant formats as RFC 3339 UTC
 * ("yyyy-mm-ddThh:mm:ssZ", the §4 report's form) that parses back to the
 * same second; the configured zone only matters for zone-less text, and then
 * shifts the instant by exactly the offset; an accepted zone is within
 * +-14h and reads back from its canonical form. */
#include "brw/error.h"
#include "brw/timeutil.h"
#include "fuzz.h"

#include <string.h>

#define TZ_MAX_S (14 * 3600)

static int is_rfc3339_utc(const char *s) {
  static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
  if (strlen(s) != sizeof(shape) - 1)
    return 0;
  for (size_t i = 0; i < sizeof(shape) - 1; i++) {
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
      return 0;
  }
  return 1;
}

static int64_t floor_s(int64_t ms) {
  return (ms / 1000 - (ms % 1000 < 0)) * 1000;
}

static void check_roundtrip(int64_t ms) {
  char buf[32];
  int64_t back;
  brw_time_format(ms, buf, sizeof(buf));
  FUZZ_CHECK(is_rfc3339_utc(buf));
  FUZZ_CHECK(brw_time_parse(buf, 0, &back) == 0);
  FUZZ_CHECK(back == floor_s(ms));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const int32_t tzs[] = {0, TZ_MAX_S, -TZ_MAX_S, 5 * 3600 + 1800};
  char *s = fuzz_strdup(data, size);
  int64_t ms[4];
  int rc[4];
  int32_t off;
  char buf[32];

  for (int i = 0; i < 4; i++) {
    rc[i] = brw_time_parse(s, tzs[i], &ms[i]);
    FUZZ_CHECK(rc[i] == 0 || rc[i] == BRW_EPARSE);
    if (rc[i] == 0)
      check_roundtrip(ms[i]);
  }
  /* The zone of the text wins; otherwise the configured one shifts the
   * instant by exactly its offset. Either holds for every pair. */
  for (int i = 1; i < 4; i++) {
    if (rc[0] == 0 && rc[i] == 0) {
      int has_zone = ms[i] == ms[0];
      FUZZ_CHECK(has_zone || ms[i] == ms[0] - (int64_t)tzs[i] * 1000);
    }
  }

  if (brw_tz_parse(s, &off) == 0) {
    int32_t back, a = off < 0 ? -off : off;
    FUZZ_CHECK(a <= TZ_MAX_S);
    snprintf(buf, sizeof(buf), "%c%02d:%02d", off < 0 ? '-' : '+',
             (int)(a / 3600), (int)(a / 60 % 60));
    FUZZ_CHECK(brw_tz_parse(buf, &back) == 0);
    FUZZ_CHECK(back == off);
  } else {
    FUZZ_CHECK(brw_tz_parse(s, &off) == BRW_EINVAL);
  }

  /* brw_time_format must be safe for any instant, and its output read back
   * whenever the year has four digits. The first 8 bytes are the instant. */
  if (size >= 8) {
    uint64_t u = 0;
    int64_t v;
    for (int i = 0; i < 8; i++)
      u = u << 8 | data[i];
    memcpy(&v, &u, sizeof(v));
    brw_time_format(v, buf, sizeof(buf));
    FUZZ_CHECK(strlen(buf) < sizeof(buf));
    if (is_rfc3339_utc(buf) && strncmp(buf, "0000", 4) != 0) {
      int64_t back;
      FUZZ_CHECK(brw_time_parse(buf, 0, &back) == 0);
      FUZZ_CHECK(back == floor_s(v));
    }
  }
  free(s);
  return 0;
}
