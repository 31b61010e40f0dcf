/* Small pure helpers of the simulator: hashing, parsing of command-line
 * values, time text and base64url. No state, safe from any thread. */
#include "sim.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

uint64_t sim_mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t sim_hash3(uint64_t a, uint64_t b, uint64_t salt) {
  return sim_mix64(sim_mix64(a ^ sim_mix64(b)) ^
                   (salt * 0xD6E8FEB86659FD93ull));
}

double sim_unit(uint64_t h) {
  return (double)(h >> 11) * 0x1.0p-53;
}

int64_t sim_range(uint64_t h, int64_t lo, int64_t hi) {
  uint64_t span = (uint64_t)(hi - lo) + 1;
  return lo + (int64_t)(h % span);
}

int64_t sim_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The number is read with strtod so that "1.5m" works; a unit is required
 * because a bare "30" is ambiguous (the worker's config rejects it too). */
int sim_duration_parse(const char *s, int64_t *ms) {
  static const struct {
    const char *unit;
    double ms;
  } units[] = {{"ms", 1}, {"s", 1e3}, {"m", 6e4}, {"h", 3.6e6}, {"d", 8.64e7}};
  char *end;
  double x;

  if (!s || !*s)
    return -1;
  if (!strcmp(s, "0")) {
    *ms = 0;
    return 0;
  }
  if (!isdigit((unsigned char)s[0]) && s[0] != '.')
    return -1;
  x = strtod(s, &end);
  if (end == s || !isfinite(x) || x < 0)
    return -1;
  for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if (!strcmp(end, units[i].unit)) {
      double v = x * units[i].ms;
      if (v > 9.0e15)
        return -1;
      *ms = (int64_t)llround(v);
      return 0;
    }
  }
  return -1;
}

int sim_rate_parse(const char *s, double *rate) {
  char *end;
  double x;
  if (!s || !*s)
    return -1;
  x = strtod(s, &end);
  if (*end || !isfinite(x) || x < 0 || x > 1)
    return -1;
  *rate = x;
  return 0;
}

int sim_tz_parse(const char *s, int32_t *offset_s) {
  int sign, hh, mm = 0;
  size_t n;
  if (!s)
    return -1;
  if (!strcasecmp(s, "UTC") || !strcmp(s, "Z") || !strcasecmp(s, "GMT")) {
    *offset_s = 0;
    return 0;
  }
  n = strlen(s);
  if (n < 3 || (s[0] != '+' && s[0] != '-'))
    return -1;
  sign = s[0] == '-' ? -1 : 1;
  if (!isdigit((unsigned char)s[1]) || !isdigit((unsigned char)s[2]))
    return -1;
  hh = (s[1] - '0') * 10 + (s[2] - '0');
  if (n == 6 && s[3] == ':' && isdigit((unsigned char)s[4]) &&
      isdigit((unsigned char)s[5]))
    mm = (s[4] - '0') * 10 + (s[5] - '0');
  else if (n == 5 && isdigit((unsigned char)s[3]) &&
           isdigit((unsigned char)s[4]))
    mm = (s[3] - '0') * 10 + (s[4] - '0');
  else if (n != 3)
    return -1;
  if (hh > 14 || mm > 59)
    return -1;
  *offset_s = sign * (hh * 3600 + mm * 60);
  return 0;
}

/* Floors to whole seconds, also for times before the epoch (never used, but
 * a negative remainder must not round towards zero). */
static time_t to_seconds(int64_t ms) {
  int64_t s = ms / 1000;
  if (ms % 1000 < 0)
    s--;
  return (time_t)s;
}

void sim_time_rfc3339(int64_t ms, char *buf, size_t len) {
  struct tm tm;
  time_t t = to_seconds(ms);
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void sim_time_local(int64_t ms, int32_t tz_offset_s, char *buf, size_t len) {
  struct tm tm;
  time_t t = to_seconds(ms) + tz_offset_s;
  gmtime_r(&t, &tm);
  strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

void sim_time_http(int64_t ms, char *buf, size_t len) {
  static const char *const days[] = {"Sun", "Mon", "Tue", "Wed",
                                     "Thu", "Fri", "Sat"};
  static const char *const months[] = {"Jan", "Feb", "Mar", "Apr",
                                       "May", "Jun", "Jul", "Aug",
                                       "Sep", "Oct", "Nov", "Dec"};
  struct tm tm;
  time_t t = to_seconds(ms);
  gmtime_r(&t, &tm);
  /* Written by hand: strftime's %a/%b follow the locale. */
  snprintf(buf, len, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
           tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t sim_b64url_encode(const void *in, size_t n, char *out) {
  const unsigned char *p = in;
  size_t i, k = 0;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    out[k++] = b64url[v >> 18 & 63];
    out[k++] = b64url[v >> 12 & 63];
    out[k++] = b64url[v >> 6 & 63];
    out[k++] = b64url[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)p[i] << 16;
    out[k++] = b64url[v >> 18 & 63];
    out[k++] = b64url[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
    out[k++] = b64url[v >> 18 & 63];
    out[k++] = b64url[v >> 12 & 63];
    out[k++] = b64url[v >> 6 & 63];
  }
  out[k] = '\0';
  return k;
}

static int b64url_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-' || c == '+')
    return 62;
  if (c == '_' || c == '/')
    return 63;
  return -1;
}

long sim_b64url_decode(const char *in, size_t n, unsigned char *out,
                       size_t cap) {
  uint32_t acc = 0;
  int bits = 0;
  size_t k = 0;
  while (n > 0 && in[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int v = b64url_value(in[i]);
    if (v < 0)
      return -1;
    acc = acc << 6 | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (k >= cap)
        return -1;
      out[k++] = (unsigned char)(acc >> bits & 0xFF);
    }
  }
  return (long)k;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so that no time zone or locale of the process is
 * involved. */
static int64_t days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy, doe;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

/* Reads exactly n digits at *p and advances it. Returns -1 if any is not a
 * digit. */
static int digits(const char **p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i]))
      return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  return v;
}

int sim_time_parse(const char *s, int32_t zone_s, int64_t *ms) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const char *p = s;
  int y, mo, d, hh = 0, mi = 0, ss = 0, frac = 0, leap;
  int64_t t;

  if (!s)
    return -1;
  if ((y = digits(&p, 4)) < 0 || *p++ != '-' || (mo = digits(&p, 2)) < 0 ||
      *p++ != '-' || (d = digits(&p, 2)) < 0)
    return -1;
  if (*p == ' ' || *p == 'T' || *p == 't') {
    p++;
    if ((hh = digits(&p, 2)) < 0 || *p++ != ':' || (mi = digits(&p, 2)) < 0 ||
        *p++ != ':' || (ss = digits(&p, 2)) < 0)
      return -1;
    if (*p == '.') {
      /* Milliseconds from the first three digits; more are allowed and
       * dropped, as --time-precision ms serves three. */
      int n = 0;
      p++;
      if (!isdigit((unsigned char)*p))
        return -1;
      for (; isdigit((unsigned char)*p); p++, n++)
        if (n < 3)
          frac = frac * 10 + (*p - '0');
      for (; n < 3; n++)
        frac *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
      zone_s = 0;
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p == '-' ? -1 : 1, zh, zm;
      p++;
      if ((zh = digits(&p, 2)) < 0)
        return -1;
      if (*p == ':')
        p++;
      if ((zm = digits(&p, 2)) < 0 || zh > 14 || zm > 59)
        return -1;
      zone_s = sign * (zh * 3600 + zm * 60);
    }
  }
  if (*p)
    return -1;
  leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap) ||
      hh > 23 || mi > 59 || ss > 59)
    return -1;
  t = days_from_civil(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss - zone_s;
  *ms = t * 1000 + frac;
  return 0;
}

void sim_tz_text(int32_t offset_s, char *buf, size_t len) {
  int32_t a = offset_s < 0 ? -offset_s : offset_s;
  if (offset_s == 0)
    snprintf(buf, len, "UTC");
  else
    snprintf(buf, len, "%c%02d:%02d", offset_s < 0 ? '-' : '+', (int)(a / 3600),
             (int)(a % 3600 / 60));
}
