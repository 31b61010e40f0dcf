/* Time zones of the API's timestamps (api.timezone): fixed offsets and IANA
 * zones read from TZif files (RFC 8536), with the POSIX TZ rule of the
 * file's footer for the years after its last transition. The reasons for
 * parsing the file here instead of calling localtime() under setenv("TZ")
 * are in timeutil.h; the resolution of skipped and repeated local times is
 * documented there and in docs/design.md.
 *
 * Everything a zone holds is computed once, when it is made; afterwards it
 * is read-only. Inputs are untrusted in the sense that a file may be
 * damaged or not a TZif file at all: every count and size is checked
 * before it is used (fuzz/fuzz_tzif.c). */
#include "brw/error.h"
#include "brw/timeutil.h"
#include "timeutil_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* RFC 8536 §3.2: utoff SHOULD be in [-89999, 93599] (-24:59:59 .. +25:59:59).
 */
#define UTOFF_MIN (-89999)
#define UTOFF_MAX 93599
/* Wider than any offset, so that a window of local time +- SPAN covers the
 * instants of every reading of it. */
#define SPAN (2 * 86400)
/* Bounds on what a file may declare: far above any real zone (the fattest
 * has ~2,000 transitions and ~20 types), low enough to keep a damaged file
 * from asking for much memory. */
#define TZIF_MAX_TIMES 100000
#define TZIF_MAX_TYPES 256
#define TZIF_MAX_BYTES (1024 * 1024)
/* Instants are clamped to +-2^50 s (35 million years) before any
 * arithmetic, so that adding offsets and days cannot overflow. */
#define T_LIMIT (INT64_C(1) << 50)
/* Longest IANA name accepted, and path buffer. */
#define NAME_MAX_LEN 200
#define PATH_MAX_LEN 1200

/* One date of a POSIX TZ rule: Jn (1..365, Feb 29 never counted), n
 * (0..365, counted), or Mm.w.d (day d of week w of month m, w 5 = last),
 * at `secs` of local time (-167h .. 167h, TZif version 3). */
typedef struct {
  char kind;   /* 'J', 'D' (plain n) or 'M' */
  int m, w, d; /* J and D: the day in d */
  int32_t secs;
} rule_date_t;

/* A POSIX TZ rule: standard time, and daylight time between two dates of
 * every year when has_dst. Offsets are seconds east of UTC. */
typedef struct {
  int32_t std_off, dst_off;
  int has_dst;
  rule_date_t start, end;
} rule_t;

struct brw_tz_s {
  size_t n;      /* transitions */
  int64_t *at;   /* n instants, strictly ascending; owned */
  int32_t *off;  /* n offsets, off[i] from at[i]; owned */
  int32_t first; /* before at[0]; the whole zone when n == 0 and no rule */
  int has_rule;  /* after at[n - 1] (or always when n == 0) */
  rule_t rule;
};

static int failf(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the reason of a refusal; returns BRW_EINVAL. */
static int failf(char *why, size_t whylen, const char *fmt, ...) {
  if (why && whylen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return BRW_EINVAL;
}

static int64_t clamp_t(int64_t t) {
  return t < -T_LIMIT ? -T_LIMIT : t > T_LIMIT ? T_LIMIT : t;
}

/* Floor division by a positive divisor. */
static int64_t floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0));
}

static int is_leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* ---- POSIX TZ rules (the TZif footer) ---------------------------------- */

static int is_digit(char c) {
  return c >= '0' && c <= '9';
}

static int is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits,
 * '+' and '-'. Advances *p. Returns 0 or -1. */
static int rule_name(const char **p, const char *end) {
  const char *q = *p;
  if (q < end && *q == '<') {
    for (q++; q < end && *q != '>'; q++)
      if (!is_alpha(*q) && !is_digit(*q) && *q != '+' && *q != '-')
        return -1;
    if (q >= end || q - *p < 4) /* "<" and at least 3 characters */
      return -1;
    *p = q + 1;
    return 0;
  }
  while (q < end && is_alpha(*q))
    q++;
  if (q - *p < 3)
    return -1;
  *p = q;
  return 0;
}

/* An unsigned number of 1 .. `maxdig` digits, at most `max`. */
static int rule_num(const char **p, const char *end, int maxdig, int max,
                    int *out) {
  int v = 0, n = 0;
  while (*p < end && is_digit(**p) && n < maxdig) {
    v = v * 10 + (**p - '0');
    (*p)++;
    n++;
  }
  if (n == 0 || v > max || (*p < end && is_digit(**p)))
    return -1;
  *out = v;
  return 0;
}

/* [+-]hh[:mm[:ss]] with hh at most max_h; sets *secs (sign applied). */
static int rule_hms(const char **p, const char *end, int max_h, int32_t *secs) {
  int sign = 1, h, m = 0, s = 0;
  if (*p < end && (**p == '+' || **p == '-')) {
    sign = **p == '-' ? -1 : 1;
    (*p)++;
  }
  if (rule_num(p, end, 3, max_h, &h) != 0)
    return -1;
  if (*p < end && **p == ':') {
    (*p)++;
    if (rule_num(p, end, 2, 59, &m) != 0)
      return -1;
    if (*p < end && **p == ':') {
      (*p)++;
      if (rule_num(p, end, 2, 59, &s) != 0)
        return -1;
    }
  }
  *secs = sign * (h * 3600 + m * 60 + s);
  return 0;
}

/* A rule date with its optional /time (default 02:00). */
static int rule_date(const char **p, const char *end, rule_date_t *d) {
  d->secs = 2 * 3600;
  d->m = d->w = d->d = 0;
  if (*p < end && **p == 'J') {
    (*p)++;
    d->kind = 'J';
    if (rule_num(p, end, 3, 365, &d->d) != 0 || d->d < 1)
      return -1;
  } else if (*p < end && **p == 'M') {
    (*p)++;
    d->kind = 'M';
    if (rule_num(p, end, 2, 12, &d->m) != 0 || d->m < 1 || *p >= end ||
        *(*p)++ != '.' || rule_num(p, end, 1, 5, &d->w) != 0 || d->w < 1 ||
        *p >= end || *(*p)++ != '.' || rule_num(p, end, 1, 6, &d->d) != 0)
      return -1;
  } else {
    d->kind = 'D';
    if (rule_num(p, end, 3, 365, &d->d) != 0)
      return -1;
  }
  if (*p < end && **p == '/') {
    (*p)++;
    if (rule_hms(p, end, 167, &d->secs) != 0)
      return -1;
  }
  return 0;
}

/* Parses a POSIX TZ string such as "EET-2EEST,M3.5.0/3,M10.5.0/4" (the
 * offsets there are west of UTC; stored east). A DST name requires its
 * rules: without them the change dates would be a guess. Returns 0 or -1. */
static int rule_parse(const char *p, const char *end, rule_t *r) {
  int32_t west;
  memset(r, 0, sizeof(*r));
  if (rule_name(&p, end) != 0 || rule_hms(&p, end, 24, &west) != 0)
    return -1;
  r->std_off = -west;
  r->dst_off = r->std_off;
  if (p == end)
    return 0;
  if (rule_name(&p, end) != 0)
    return -1;
  r->has_dst = 1;
  r->dst_off = r->std_off + 3600;
  if (p < end && *p != ',') {
    if (rule_hms(&p, end, 24, &west) != 0)
      return -1;
    r->dst_off = -west;
  }
  if (p >= end || *p++ != ',' || rule_date(&p, end, &r->start) != 0 ||
      p >= end || *p++ != ',' || rule_date(&p, end, &r->end) != 0 || p != end)
    return -1;
  if (r->std_off < UTOFF_MIN || r->std_off > UTOFF_MAX ||
      r->dst_off < UTOFF_MIN || r->dst_off > UTOFF_MAX)
    return -1;
  return 0;
}

/* The day number (days since 1970-01-01) of a rule date in year y. */
static int64_t rule_day(const rule_date_t *d, int64_t y) {
  int64_t jan1 = brw__days_from_civil(y, 1, 1);
  if (d->kind == 'J')
    return jan1 + d->d - 1 + (is_leap(y) && d->d >= 60);
  if (d->kind == 'D')
    return jan1 + d->d;
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int days = d->m == 2 && is_leap(y) ? 29 : dim[d->m - 1];
  int64_t first = brw__days_from_civil(y, d->m, 1);
  /* 1970-01-01 was a Thursday (4); d is 0 = Sunday. */
  int wd = (int)(((first + 4) % 7 + 7) % 7);
  int day = 1 + (d->d - wd + 7) % 7 + (d->w - 1) * 7;
  while (day > days)
    day -= 7;
  return first + day - 1;
}

/* The instants at which daylight time starts and ends in year y (the year
 * of standard local time). */
static void rule_year(const rule_t *r, int64_t y, int64_t *start,
                      int64_t *end) {
  *start = rule_day(&r->start, y) * 86400 + r->start.secs - r->std_off;
  *end = rule_day(&r->end, y) * 86400 + r->end.secs - r->dst_off;
}

static int64_t year_of(int64_t t) {
  int64_t y;
  int m, d;
  brw__civil_from_days(floor_div(t, 86400), &y, &m, &d);
  return y;
}

/* The offset a rule gives at instant t (clamped). */
static int32_t rule_offset(const rule_t *r, int64_t t) {
  int64_t s, e;
  if (!r->has_dst)
    return r->std_off;
  rule_year(r, year_of(t + r->std_off), &s, &e);
  int dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
  return dst ? r->dst_off : r->std_off;
}

/* The first instant strictly after t at which rule_offset may change,
 * INT64_MAX when never: the year's start and end of daylight time, and the
 * start of each year (rule_offset picks the year there, so a rule whose
 * dates straddle New Year may change its answer then too). */
static int64_t rule_next(const rule_t *r, int64_t t) {
  int64_t best = INT64_MAX, y = year_of(t + r->std_off);
  if (!r->has_dst)
    return best;
  for (int64_t k = y - 1; k <= y + 1; k++) {
    int64_t s, e;
    int64_t ny = brw__days_from_civil(k + 1, 1, 1) * 86400 - r->std_off;
    rule_year(r, k, &s, &e);
    if (s > t && s < best)
      best = s;
    if (e > t && e < best)
      best = e;
    if (ny > t && ny < best)
      best = ny;
  }
  return best;
}

/* ---- zone queries ------------------------------------------------------ */

int32_t brw_tz_offset_at(const brw_tz_t *tz, int64_t utc_s) {
  if (!tz)
    return 0;
  utc_s = clamp_t(utc_s);
  if (tz->n == 0)
    return tz->has_rule ? rule_offset(&tz->rule, utc_s) : tz->first;
  if (utc_s < tz->at[0])
    return tz->first;
  /* From the last transition on, the rule (which zic makes agree with the
   * last transition's type; using it from that instant keeps the periods
   * seen by brw_tz_offset_local exact even when a damaged file does not). */
  if (utc_s >= tz->at[tz->n - 1] && tz->has_rule)
    return rule_offset(&tz->rule, utc_s);
  /* The last transition at or before utc_s. */
  size_t lo = 0, hi = tz->n; /* at[lo] <= utc_s < at[hi] */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (tz->at[mid] <= utc_s)
      lo = mid;
    else
      hi = mid;
  }
  return tz->off[lo];
}

/* The first change of offset (or listed transition) strictly after t,
 * INT64_MAX when none. */
static int64_t next_change(const brw_tz_t *tz, int64_t t) {
  if (tz->n > 0 && t < tz->at[tz->n - 1]) {
    size_t lo = 0, hi = tz->n - 1; /* the first at[] > t is in [lo, hi] */
    while (lo < hi) {
      size_t mid = lo + (hi - lo) / 2;
      if (tz->at[mid] > t)
        hi = mid;
      else
        lo = mid + 1;
    }
    return tz->at[lo];
  }
  return tz->has_rule ? rule_next(&tz->rule, t) : INT64_MAX;
}

/* The periods of constant offset that overlap [local - SPAN, local + SPAN]
 * are visited in order; a reading local - off is valid in a period when it
 * falls inside it. The earliest valid reading wins (a repeated hour is read
 * in the period before the change); when none is valid the local time was
 * skipped, and the offset of the period before the first one the reading
 * falls short of is used (as if the clocks had not moved yet). A real zone
 * has one or two periods there; a damaged file with many transitions costs
 * more time, never a wrong bound (every period is visited, the walk ends
 * because each step moves strictly forward). */
int32_t brw_tz_offset_local(const brw_tz_t *tz, int64_t local_s) {
  int32_t off, prev = 0, gap = 0;
  int have_gap = 0, first = 1;

  if (!tz || (tz->n == 0 && !tz->has_rule))
    return tz ? tz->first : 0;
  local_s = clamp_t(local_s);
  int64_t t = local_s - SPAN;
  for (;;) {
    int64_t next = next_change(tz, t);
    int64_t u;
    off = brw_tz_offset_at(tz, t);
    u = local_s - off;
    if (u >= t && u < next)
      return off;
    if (!have_gap && u < next) {
      gap = first ? off : prev;
      have_gap = 1;
    }
    if (next > local_s + SPAN)
      break;
    prev = off;
    t = next;
    first = 0;
  }
  return have_gap ? gap : off;
}

/* ---- making zones ------------------------------------------------------ */

brw_tz_t *brw_tz_fixed(int32_t offset_s) {
  if (offset_s < UTOFF_MIN || offset_s > UTOFF_MAX)
    return NULL;
  brw_tz_t *tz = calloc(1, sizeof(*tz));
  if (tz)
    tz->first = offset_s;
  return tz;
}

void brw_tz_free(brw_tz_t *tz) {
  if (!tz)
    return;
  free(tz->at);
  free(tz->off);
  free(tz);
}

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static int64_t be64(const unsigned char *p) {
  uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
  int64_t r;
  memcpy(&r, &v, sizeof(r));
  return r;
}

typedef struct {
  uint32_t isut, isstd, leap, time, type, chars;
} counts_t;

/* Reads a 44-byte header at p (len bytes left). Returns 0 or -1. */
static int tzif_header(const unsigned char *p, size_t len, char *version,
                       counts_t *c) {
  if (len < 44 || memcmp(p, "TZif", 4) != 0)
    return -1;
  *version = (char)p[4];
  c->isut = be32(p + 20);
  c->isstd = be32(p + 24);
  c->leap = be32(p + 28);
  c->time = be32(p + 32);
  c->type = be32(p + 36);
  c->chars = be32(p + 40);
  return 0;
}

/* The bytes of a data block with `tsize`-byte times (4 or 8). The counts
 * are bounded first, so this cannot overflow. */
static size_t tzif_block(const counts_t *c, size_t tsize) {
  return (size_t)c->time * (tsize + 1) + (size_t)c->type * 6 + c->chars +
         (size_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

int brw_tz_from_tzif(const void *data, size_t len, brw_tz_t **out, char *why,
                     size_t whylen) {
  const unsigned char *p = data, *end = p + len;
  counts_t c;
  char version;
  size_t tsize = 4;
  brw_tz_t *tz;

  *out = NULL;
  if (!data || tzif_header(p, len, &version, &c) != 0)
    return failf(why, whylen, "not a TZif file");
  if (version != 0 && !(version >= '2' && version <= '9'))
    return failf(why, whylen, "unknown TZif version");
  if (version != 0) {
    /* Skip the version 1 block: the 64-bit one follows it. */
    if (c.time > TZIF_MAX_TIMES || c.type > TZIF_MAX_TYPES || c.chars > 65536 ||
        c.leap > TZIF_MAX_TIMES || c.isstd > 256 || c.isut > 256 ||
        tzif_block(&c, 4) > len - 44)
      return failf(why, whylen, "TZif version 1 block is damaged");
    p += 44 + tzif_block(&c, 4);
    if (tzif_header(p, (size_t)(end - p), &version, &c) != 0)
      return failf(why, whylen, "TZif second header is missing");
    tsize = 8;
  }
  if (c.time > TZIF_MAX_TIMES || c.type > TZIF_MAX_TYPES || c.type == 0 ||
      c.chars > 65536 || (c.isstd != 0 && c.isstd != c.type) ||
      (c.isut != 0 && c.isut != c.type))
    return failf(why, whylen, "TZif counts are out of range");
  if (c.leap != 0)
    return failf(why, whylen,
                 "leap-second zones (right/...) are not supported");
  p += 44;
  if (tzif_block(&c, tsize) > (size_t)(end - p))
    return failf(why, whylen, "TZif file is truncated");

  const unsigned char *times = p, *idx = p + (size_t)c.time * tsize;
  const unsigned char *types = idx + c.time;
  int32_t utoff[TZIF_MAX_TYPES];
  for (uint32_t i = 0; i < c.type; i++) {
    const unsigned char *t = types + (size_t)i * 6;
    int32_t o = (int32_t)be32(t);
    if (o < UTOFF_MIN || o > UTOFF_MAX)
      return failf(why, whylen, "TZif offset out of range");
    if (t[4] > 1 || (c.chars > 0 && t[5] >= c.chars))
      return failf(why, whylen, "TZif local time type is damaged");
    utoff[i] = o;
  }
  p += tzif_block(&c, tsize);

  rule_t rule;
  int has_rule = 0;
  if (tsize == 8) {
    /* The footer: "\n" TZ-string "\n", the last thing in the file. */
    if (p >= end || *p != '\n')
      return failf(why, whylen, "TZif footer is missing");
    const unsigned char *q = memchr(p + 1, '\n', (size_t)(end - p - 1));
    if (!q || q + 1 != end)
      return failf(why, whylen, "TZif footer is damaged");
    if (q > p + 1) {
      if (rule_parse((const char *)p + 1, (const char *)q, &rule) != 0)
        return failf(why, whylen, "TZif footer is not a POSIX TZ rule");
      has_rule = 1;
    }
  } else if (p != end) {
    return failf(why, whylen, "TZif file has trailing bytes");
  }

  tz = calloc(1, sizeof(*tz));
  if (!tz)
    return BRW_ENOMEM;
  tz->first = utoff[0];
  tz->has_rule = has_rule;
  if (has_rule)
    tz->rule = rule;
  if (c.time > 0) {
    tz->at = malloc(sizeof(*tz->at) * c.time);
    tz->off = malloc(sizeof(*tz->off) * c.time);
    if (!tz->at || !tz->off) {
      brw_tz_free(tz);
      return BRW_ENOMEM;
    }
  }
  for (uint32_t i = 0; i < c.time; i++) {
    int64_t t = tsize == 8 ? be64(times + (size_t)i * 8)
                           : (int64_t)(int32_t)be32(times + (size_t)i * 4);
    if (idx[i] >= c.type || (i > 0 && t <= tz->at[i - 1])) {
      brw_tz_free(tz);
      return failf(why, whylen, "TZif transitions are damaged");
    }
    tz->at[i] = t;
    tz->off[i] = utoff[idx[i]];
  }
  /* Transitions beyond +-2^50 s are unreachable (queries are clamped to
   * that range) and are dropped, so that no comparison sees them. */
  size_t lo = 0, n = c.time;
  while (lo < n && tz->at[lo] < -T_LIMIT) {
    tz->first = tz->off[lo];
    lo++;
  }
  while (n > lo && tz->at[n - 1] > T_LIMIT)
    n--;
  if (lo > 0) {
    memmove(tz->at, tz->at + lo, sizeof(*tz->at) * (n - lo));
    memmove(tz->off, tz->off + lo, sizeof(*tz->off) * (n - lo));
  }
  tz->n = n - lo;
  *out = tz;
  return 0;
}

/* An IANA name: the characters of the tz database's names, parts separated
 * by single '/', none "." or ".." or empty, so that it cannot leave the
 * zone directory. */
static int name_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_LEN)
    return 0;
  for (const char *part = s; *part;) {
    size_t k = strcspn(part, "/");
    if (k == 0 || (k == 1 && part[0] == '.') ||
        (k == 2 && part[0] == '.' && part[1] == '.'))
      return 0;
    for (size_t i = 0; i < k; i++) {
      char ch = part[i];
      if (!is_alpha(ch) && !is_digit(ch) && ch != '_' && ch != '-' &&
          ch != '+' && ch != '.')
        return 0;
    }
    part += k;
    if (*part == '/' && *++part == '\0')
      return 0; /* a trailing '/' */
  }
  return 1;
}

/* Reads a whole regular file of at most TZIF_MAX_BYTES. Returns a malloc'ed
 * buffer (caller frees) and sets *len, or NULL. */
static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  unsigned char *buf = NULL;
  if (!f)
    return NULL;
  if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
      st.st_size <= TZIF_MAX_BYTES &&
      (buf = malloc((size_t)st.st_size + 1)) != NULL) {
    *len = fread(buf, 1, (size_t)st.st_size + 1, f);
    if (*len > (size_t)st.st_size || ferror(f)) {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  return buf;
}

int brw_tz_load(const char *spec, brw_tz_t **out, char *why, size_t whylen) {
  static const char hint[] = "use UTC, +hh:mm or an IANA name such as "
                             "Europe/Kyiv";
  char path[PATH_MAX_LEN], reason[96];
  const char *dir;
  unsigned char *buf;
  size_t len = 0;
  int32_t off;
  int rc;

  *out = NULL;
  if (!spec)
    return failf(why, whylen, "no time zone");
  if (brw_tz_parse(spec, &off) == 0) {
    *out = brw_tz_fixed(off);
    return *out ? 0 : BRW_ENOMEM;
  }
  if (!name_ok(spec))
    return failf(why, whylen, "\"%.64s\" is not a time zone (%s)", spec, hint);
  dir = getenv("TZDIR");
  if (!dir || !*dir)
    dir = BRW_TZ_DIR;
  if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, spec) >= sizeof(path))
    return failf(why, whylen, "\"%.64s\": zone path too long", spec);
  buf = read_file(path, &len);
  if (!buf)
    return failf(why, whylen,
                 "\"%.64s\" is not a time zone (no file %.200s; %s; the tz "
                 "database is the tzdata package)",
                 spec, path, hint);
  rc = brw_tz_from_tzif(buf, len, out, reason, sizeof(reason));
  free(buf);
  if (rc == BRW_EINVAL)
    return failf(why, whylen, "\"%.64s\": %.200s: %s", spec, path, reason);
  return rc;
}
