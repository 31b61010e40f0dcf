/* Time helpers: wall clock, BSG / ISO 8601 timestamps, RFC 3339 output.
 *
 * Calendar arithmetic is done here, in proleptic Gregorian days since
 * 1970-01-01, rather than with mktime()/timegm(): mktime depends on the TZ
 * environment variable and the process's locale state, and the BSG zone is a
 * configured fixed offset, not the host's zone. */
#include "brw/timeutil.h"
#include "brw/error.h"
#include "timeutil_int.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Fixed offsets beyond +-14h do not exist (UTC+14 is Kiribati). */
#define TZ_MAX_S (14 * 3600)

int64_t brw_now_ms(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
    return 0;
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t brw_time_until_ms(int64_t epoch_s, int64_t now_ms) {
  int64_t ms, d;
  if (__builtin_mul_overflow(epoch_s, 1000, &ms))
    return epoch_s > 0 ? INT64_MAX : 0;
  if (__builtin_sub_overflow(ms, now_ms, &d))
    return ms > now_ms ? INT64_MAX : 0;
  return d < 0 ? 0 : d;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm, valid
 * for every year representable here). m is 1..12, d is 1..31. Shared with
 * src/tz.c (timeutil_int.h). */
int64_t brw__days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* The inverse of days_from_civil. */
void brw__civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m) {
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* Reads exactly n digits at *p into *out and advances *p. Returns 0, or -1
 * (and leaves *p alone) when fewer than n digits are there. */
static int read_digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!is_digit((*p)[i]))
      return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

/* Parses a numeric zone designator "+hh:mm", "+hhmm", "+hh" or, when
 * `short_hour` is set, "+h" / "+h:mm" too, ending at the end of the string.
 * Sets *offset_s. Returns 0 or -1. */
static int parse_offset(const char *p, int short_hour, int32_t *offset_s) {
  int sign, hh, mm = 0;
  if (*p == '+')
    sign = 1;
  else if (*p == '-')
    sign = -1;
  else
    return -1;
  p++;
  if (read_digits(&p, 2, &hh) != 0) {
    if (!short_hour || read_digits(&p, 1, &hh) != 0 || is_digit(*p))
      return -1;
    /* "+3" or "+3:30": a single hour digit takes minutes only after ':'. */
    if (*p == ':' && (p++, read_digits(&p, 2, &mm) != 0))
      return -1;
  } else if (*p == ':') {
    p++;
    if (read_digits(&p, 2, &mm) != 0)
      return -1;
  } else if (is_digit(*p)) {
    if (read_digits(&p, 2, &mm) != 0)
      return -1;
  }
  if (*p != '\0' || mm > 59)
    return -1;
  int32_t off = (int32_t)(hh * 3600 + mm * 60);
  if (off > TZ_MAX_S)
    return -1;
  *offset_s = sign * off;
  return 0;
}

int brw_tz_parse(const char *s, int32_t *offset_s) {
  if (!s || !offset_s)
    return BRW_EINVAL;
  if (!strcmp(s, "UTC") || !strcmp(s, "utc") || !strcmp(s, "Z") ||
      !strcmp(s, "z")) {
    *offset_s = 0;
    return 0;
  }
  return parse_offset(s, 1, offset_s) == 0 ? 0 : BRW_EINVAL;
}

/* Accepted forms, all anchored at both ends (no surrounding spaces):
 *   yyyy-mm-dd
 *   yyyy-mm-dd[ T]hh:mm[:ss[(.|,)fraction]][Z|+hh:mm|+hhmm|+hh]
 * Sets *local_s (the wall time read as if it were UTC), *frac_ms, and
 * *has_zone with *zone_s when the text names its zone. Seconds may be 60
 * (RFC 3339's leap second); it rolls over into the next minute, as POSIX
 * time does. Returns 0 or -1. */
static int parse_fields(const char *s, int64_t *local_s, int *frac_ms,
                        int *has_zone, int32_t *zone_s) {
  int y, mo, d, hh = 0, mi = 0, ss = 0;
  const char *p = s;

  *frac_ms = 0;
  *has_zone = 0;
  if (!s)
    return -1;
  if (read_digits(&p, 4, &y) != 0 || *p++ != '-' ||
      read_digits(&p, 2, &mo) != 0 || *p++ != '-' ||
      read_digits(&p, 2, &d) != 0)
    return -1;
  if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
    return -1;

  if (*p != '\0') {
    if (*p != ' ' && *p != 'T' && *p != 't')
      return -1;
    p++;
    if (read_digits(&p, 2, &hh) != 0 || *p++ != ':' ||
        read_digits(&p, 2, &mi) != 0)
      return -1;
    if (*p == ':') {
      p++;
      if (read_digits(&p, 2, &ss) != 0)
        return -1;
      if (*p == '.' || *p == ',') {
        /* Any number of fraction digits; milliseconds are kept, the rest is
         * truncated (the output has second precision anyway). */
        int n = 0;
        p++;
        if (!is_digit(*p))
          return -1;
        for (; is_digit(*p); p++, n++) {
          if (n < 3)
            *frac_ms = *frac_ms * 10 + (*p - '0');
        }
        for (; n < 3; n++)
          *frac_ms *= 10;
      }
    }
    if (hh > 23 || mi > 59 || ss > 60)
      return -1;
    if (*p == 'Z' || *p == 'z') {
      if (p[1] != '\0')
        return -1;
      *has_zone = 1;
      *zone_s = 0;
    } else if (*p != '\0') {
      if (parse_offset(p, 0, zone_s) != 0)
        return -1;
      *has_zone = 1;
    }
  }
  *local_s = brw__days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss;
  return 0;
}

/* The instant must also fall in years 0001..9999 in UTC: a zone or a leap
 * second can move "9999-12-31 23:59:59" into year 10000, which
 * brw_time_format would write with five digits (not RFC 3339), or
 * "0001-01-01 00:00:00" into year 0, which this parser then rejects when
 * the report is read back. Found by fuzz/fuzz_time.c. */
static int finish(int64_t secs, int frac_ms, int64_t *ms) {
  if (secs < brw__days_from_civil(1, 1, 1) * 86400 ||
      secs >= brw__days_from_civil(10000, 1, 1) * 86400)
    return BRW_EPARSE;
  *ms = secs * 1000 + frac_ms;
  return 0;
}

int brw_time_parse(const char *s, int32_t tz_offset_s, int64_t *ms) {
  int64_t local;
  int frac, has_zone;
  int32_t zone = 0;
  if (!ms || parse_fields(s, &local, &frac, &has_zone, &zone) != 0)
    return BRW_EPARSE;
  return finish(local - (has_zone ? zone : tz_offset_s), frac, ms);
}

int brw_time_parse_tz(const char *s, const brw_tz_t *tz, int64_t *ms) {
  int64_t local;
  int frac, has_zone;
  int32_t zone = 0;
  if (!ms || parse_fields(s, &local, &frac, &has_zone, &zone) != 0)
    return BRW_EPARSE;
  return finish(local - (has_zone ? zone : brw_tz_offset_local(tz, local)),
                frac, ms);
}

char *brw_time_format(int64_t ms, char *buf, size_t len) {
  /* Floor division, so that instants before 1970 format correctly. */
  int64_t secs = ms / 1000 - (ms % 1000 < 0);
  int64_t days = secs / 86400 - (secs % 86400 < 0);
  int64_t sod = secs - days * 86400;
  int64_t y;
  int m, d;

  if (!buf || len == 0)
    return buf;
  brw__civil_from_days(days, &y, &m, &d);
  snprintf(buf, len, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
           (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60));
  return buf;
}
