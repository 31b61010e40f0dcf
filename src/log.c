#include "brw/log.h"
#include "brw/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

/* One registered secret and the forms in which it can reach a line: as
 * given (`raw`), and as json_dumps escapes it inside a JSON string (`esc`,
 * NULL when the same: a key with a '"', a '\\' or a control character reads
 * differently in the JSON line and would not match its raw form). */
typedef struct {
  char *raw;
  char *esc;
  size_t len;   /* strlen(raw) */
  int pinned;   /* never evicted */
  uint64_t seq; /* registration order, for eviction */
} secret_t;

static brw_log_level_t g_level = BRW_LOG_INFO;
static brw_log_format_t g_format = BRW_LOG_JSON;
static char g_component[32] = "bsg-report-worker";
/* Sorted by len, longest first, so that a secret that holds a shorter one
 * is replaced whole before the shorter one could cut it in two. */
static secret_t *g_secrets;
static size_t g_nsecrets, g_capsecrets, g_nrotating;
static size_t g_maxrotating = BRW_LOG_MAX_ROTATING;
static uint64_t g_seq;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;
static FILE *g_out; /* NULL: stderr */

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void brw_log_setup(brw_log_level_t level, brw_log_format_t format,
                   const char *component) {
  g_level = level;
  g_format = format;
  if (component)
    snprintf(g_component, sizeof(g_component), "%s", component);
}

int brw_log_level_parse(const char *s, brw_log_level_t *out) {
  if (!strcasecmp(s, "warning")) {
    *out = BRW_LOG_WARN;
    return 0;
  }
  for (int i = 0; i <= BRW_LOG_OFF; i++) {
    if (!strcasecmp(s, level_names[i])) {
      *out = (brw_log_level_t)i;
      return 0;
    }
  }
  return BRW_EINVAL;
}

int brw_log_format_parse(const char *s, brw_log_format_t *out) {
  if (!strcasecmp(s, "json"))
    *out = BRW_LOG_JSON;
  else if (!strcasecmp(s, "text"))
    *out = BRW_LOG_TEXT;
  else
    return BRW_EINVAL;
  return 0;
}

int brw_log_enabled(brw_log_level_t level) {
  return level >= g_level && level < BRW_LOG_OFF;
}

/* explicit_bzero, unlike memset, is not dropped by the compiler when the
 * buffer is freed right after. */
void brw_secret_wipe(void *p, size_t n) {
  if (p && n)
    explicit_bzero(p, n);
}

void brw_secret_free(char *s) {
  if (s) {
    brw_secret_wipe(s, strlen(s));
    free(s);
  }
}

static void secret_clear(secret_t *e) {
  brw_secret_free(e->raw);
  brw_secret_free(e->esc);
}

/* The form json_dumps gives `s` inside a JSON string, without the quotes;
 * NULL when it is the same as `s` or cannot be computed (invalid UTF-8:
 * jansson refuses such a string, so it never reaches a JSON line). The
 * result is malloc'ed and holds the secret: free it with brw_secret_free. */
static char *json_form(const char *s) {
  json_t *j = json_string(s);
  char *d = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
  char *esc = NULL;
  json_decref(j);
  if (!d)
    return NULL;
  size_t n = strlen(d);
  if (n >= 2 && (n - 2 != strlen(s) || memcmp(d + 1, s, n - 2))) {
    esc = strndup(d + 1, n - 2);
  }
  brw_secret_free(d);
  return esc;
}

/* Removes entry i, wiping it. Called with the mutex held. */
static void secret_remove(size_t i) {
  if (!g_secrets[i].pinned)
    g_nrotating--;
  secret_clear(&g_secrets[i]);
  memmove(g_secrets + i, g_secrets + i + 1,
          sizeof(g_secrets[0]) * (g_nsecrets - i - 1));
  g_nsecrets--;
}

/* Forgets the oldest rotating secret. Called with the mutex held. */
static void evict_oldest(void) {
  size_t oldest = g_nsecrets;
  for (size_t i = 0; i < g_nsecrets; i++)
    if (!g_secrets[i].pinned &&
        (oldest == g_nsecrets || g_secrets[i].seq < g_secrets[oldest].seq))
      oldest = i;
  if (oldest < g_nsecrets)
    secret_remove(oldest);
}

void brw_log_set_rotating_max(size_t n) {
  pthread_mutex_lock(&g_mutex);
  g_maxrotating = n ? n : 1;
  while (g_nrotating > g_maxrotating)
    evict_oldest();
  pthread_mutex_unlock(&g_mutex);
}

static void add_secret(const char *secret, int pinned) {
  secret_t e;
  if (!secret || strlen(secret) < BRW_LOG_SECRET_MIN)
    return;
  pthread_mutex_lock(&g_mutex);
  for (size_t i = 0; i < g_nsecrets; i++) {
    if (!strcmp(g_secrets[i].raw, secret)) {
      /* Known: a rotating secret that is now pinned stays for good. */
      if (pinned && !g_secrets[i].pinned) {
        g_secrets[i].pinned = 1;
        g_nrotating--;
      }
      pthread_mutex_unlock(&g_mutex);
      return;
    }
  }
  /* The oldest rotating secrets (expired bearers) make room. */
  while (!pinned && g_nrotating > 0 && g_nrotating >= g_maxrotating)
    evict_oldest();
  if (g_nsecrets == g_capsecrets) {
    size_t cap = g_capsecrets ? g_capsecrets * 2 : 16;
    secret_t *grown = realloc(g_secrets, cap * sizeof(*grown));
    if (!grown) {
      pthread_mutex_unlock(&g_mutex);
      return;
    }
    g_secrets = grown;
    g_capsecrets = cap;
  }
  memset(&e, 0, sizeof(e));
  e.len = strlen(secret);
  e.pinned = pinned;
  e.seq = ++g_seq;
  if (!(e.raw = strdup(secret))) {
    pthread_mutex_unlock(&g_mutex);
    return;
  }
  e.esc = json_form(secret);
  size_t at = 0;
  while (at < g_nsecrets && g_secrets[at].len >= e.len)
    at++;
  memmove(g_secrets + at + 1, g_secrets + at,
          sizeof(g_secrets[0]) * (g_nsecrets - at));
  g_secrets[at] = e;
  g_nsecrets++;
  if (!pinned)
    g_nrotating++;
  pthread_mutex_unlock(&g_mutex);
}

void brw_log_add_secret(const char *secret) {
  add_secret(secret, 0);
}

void brw_log_pin_secret(const char *secret) {
  add_secret(secret, 1);
}

size_t brw_log_secret_count(int pinned) {
  size_t n = 0;
  pthread_mutex_lock(&g_mutex);
  for (size_t i = 0; i < g_nsecrets; i++)
    if (!g_secrets[i].pinned == !pinned)
      n++;
  pthread_mutex_unlock(&g_mutex);
  return n;
}

void brw_log_cleanup(void) {
  pthread_mutex_lock(&g_mutex);
  for (size_t i = 0; i < g_nsecrets; i++)
    secret_clear(&g_secrets[i]);
  free(g_secrets);
  g_secrets = NULL;
  g_nsecrets = g_capsecrets = g_nrotating = 0;
  pthread_mutex_unlock(&g_mutex);
}

/* Replaces every occurrence of `pat` (plen bytes) in `in` by "[REDACTED]".
 * Returns `in` when there is none, else a new malloc'ed string (NULL when
 * out of memory). */
static char *replace_all(const char *in, const char *pat, size_t plen) {
  static const char mark[] = "[REDACTED]";
  size_t hits = 0, inlen, n = 0;
  const char *p, *hit;
  char *buf;

  for (p = in; (hit = strstr(p, pat)); p = hit + plen)
    hits++;
  if (!hits)
    return (char *)in;
  inlen = strlen(in);
  /* Only the marks can make the text longer than it was. */
  if (!(buf = malloc(inlen + hits * (sizeof(mark) - 1) + 1)))
    return NULL;
  for (p = in; (hit = strstr(p, pat)); p = hit + plen) {
    memcpy(buf + n, p, (size_t)(hit - p));
    n += (size_t)(hit - p);
    memcpy(buf + n, mark, sizeof(mark) - 1);
    n += sizeof(mark) - 1;
  }
  memcpy(buf + n, p, strlen(p) + 1);
  return buf;
}

/* Replaces every registered secret, in both its forms, in `line`. Called
 * with the mutex held. Returns `line` when nothing matched, a new malloc'ed
 * string that the caller frees, or NULL when out of memory (the line must
 * then not be written: it may hold a secret). Intermediate copies are wiped,
 * as they hold the secrets not yet replaced. */
static char *redact(const char *line) {
  char *out = (char *)line;
  for (size_t i = 0; i < g_nsecrets; i++) {
    for (int form = 0; form < 2; form++) {
      const char *pat = form ? g_secrets[i].esc : g_secrets[i].raw;
      char *next;
      if (!pat)
        continue;
      next = replace_all(out, pat, strlen(pat));
      if (next == out)
        continue;
      if (out != line)
        brw_secret_free(out);
      if (!next)
        return NULL;
      out = next;
    }
  }
  return out;
}

/* The length of the longest prefix of s, at most max bytes, that does not
 * end inside a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max)
    return n;
  n = max;
  while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--;
  return n;
}

size_t brw_log_redact_into(const char *in, char *out, size_t outlen) {
  char *r;
  size_t n;
  if (!out || outlen == 0)
    return 0;
  if (!in) {
    out[0] = '\0';
    return 0;
  }
  pthread_mutex_lock(&g_mutex);
  r = redact(in);
  pthread_mutex_unlock(&g_mutex);
  if (!r) {
    /* Out of memory: nothing that might hold a secret is copied. */
    snprintf(out, outlen, "[REDACTED]");
    return strlen(out);
  }
  /* Redacted before it is cut, so that a secret across the cut cannot leave
   * its first bytes behind. */
  n = utf8_prefix(r, outlen - 1);
  memmove(out, r, n);
  out[n] = '\0';
  if (r != in)
    brw_secret_free(r);
  return n;
}

static void format_now(char *buf, size_t len) {
  struct timeval tv;
  struct tm tm;
  gettimeofday(&tv, NULL);
  gmtime_r(&tv.tv_sec, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, len, "%.20s.%03dZ", base, (int)(tv.tv_usec / 1000) % 1000);
}

/* The length of the valid UTF-8 sequence at s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0 if there is none. */
static size_t utf8_seq(const unsigned char *s) {
  unsigned char c = s[0];
  unsigned char lo = 0x80, hi = 0xBF;
  size_t n;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF)
    n = 3;
  else if (c >= 0xF0 && c <= 0xF4)
    n = 4;
  else
    return 0;
  if (c == 0xE0)
    lo = 0xA0;
  else if (c == 0xED)
    hi = 0x9F;
  else if (c == 0xF0)
    lo = 0x90;
  else if (c == 0xF4)
    hi = 0x8F;
  if (s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < n; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return n;
}

/* A JSON string of msg. jansson refuses text that is not UTF-8, which left
 * the line without its message (API text, a key from an event, may be
 * anything): each byte of an invalid sequence becomes '?'. */
static json_t *json_text(char *msg) {
  json_t *j = json_string(msg);
  if (j)
    return j;
  for (unsigned char *p = (unsigned char *)msg; *p;) {
    size_t n = utf8_seq(p);
    if (n == 0)
      *p++ = '?';
    else
      p += n;
  }
  return json_string(msg);
}

void brw_log_set_output(FILE *f) {
  pthread_mutex_lock(&g_mutex);
  g_out = f;
  pthread_mutex_unlock(&g_mutex);
}

/* The message, formatted whole. One longer than BRW_LOG_MSG_MAX bytes is
 * redacted before it is cut (at a UTF-8 boundary, which jansson needs), so
 * that a secret across the cut cannot leave its first bytes in the line;
 * a shorter one is redacted with the whole line. */
static char *format_msg(const char *fmt, va_list ap) {
  char small[BRW_LOG_MSG_MAX + 1], *full = small, *r;
  va_list aq;
  int n;

  va_copy(aq, ap);
  n = vsnprintf(small, sizeof(small), fmt, ap);
  if (n < 0) {
    va_end(aq);
    return strdup("");
  }
  if ((size_t)n >= sizeof(small)) {
    if (!(full = malloc((size_t)n + 1))) {
      va_end(aq);
      return NULL;
    }
    vsnprintf(full, (size_t)n + 1, fmt, aq);
  }
  va_end(aq);
  if (full == small) {
    /* Not cut: the whole line is redacted before it is written (both
     * forms of every secret), which covers the message; a second pass here
     * would only double the cost of every line. */
    r = strdup(small);
    brw_secret_wipe(small, (size_t)n);
    return r;
  }
  /* Cut below: redacted first, so that a secret across the cut cannot leave
   * its first bytes behind. */
  pthread_mutex_lock(&g_mutex);
  r = redact(full);
  pthread_mutex_unlock(&g_mutex);
  if (r && r == full && full == small)
    r = strdup(small);
  else if (r && r != full && full != small)
    brw_secret_free(full);
  else if (!r && full != small)
    brw_secret_free(full);
  brw_secret_wipe(small,
                  (size_t)n < sizeof(small) ? (size_t)n : sizeof(small) - 1);
  if (r)
    r[utf8_prefix(r, BRW_LOG_MSG_MAX)] = '\0';
  return r;
}

void brw_vlogj(brw_log_level_t level, json_t *fields, const char *fmt,
               va_list ap) {
  if (!brw_log_enabled(level)) {
    json_decref(fields);
    return;
  }
  char *msg = format_msg(fmt, ap);
  if (!msg) {
    json_decref(fields);
    return;
  }
  char ts[40];
  format_now(ts, sizeof(ts));

  char *line = NULL;
  if (g_format == BRW_LOG_JSON) {
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "component", json_string(g_component));
    json_object_set_new(o, "msg", json_text(msg));
    if (fields && json_is_object(fields))
      json_object_update(o, fields);
    line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
  } else {
    char *extra = NULL;
    size_t elen = 0;
    FILE *f = open_memstream(&extra, &elen);
    if (f && fields && json_is_object(fields)) {
      const char *k;
      json_t *v;
      json_object_foreach(fields, k, v) {
        if (json_is_string(v)) {
          fprintf(f, " %s=%s", k, json_string_value(v));
        } else {
          char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
          fprintf(f, " %s=%s", k, t ? t : "?");
          free(t);
        }
      }
    }
    if (f)
      fclose(f);
    size_t cap = strlen(ts) + strlen(msg) + (extra ? strlen(extra) : 0) + 32;
    line = malloc(cap);
    if (line)
      snprintf(line, cap, "%s %-5s %s%s", ts, level_names[level], msg,
               extra ? extra : "");
    brw_secret_free(extra);
  }
  brw_secret_free(msg);
  json_decref(fields);
  if (!line)
    return;
  /* The fields were not redacted yet: the whole line is, again. */
  pthread_mutex_lock(&g_mutex);
  char *out = redact(line);
  if (out) {
    FILE *sink = g_out ? g_out : stderr;
    fprintf(sink, "%s\n", out);
    fflush(sink);
  }
  pthread_mutex_unlock(&g_mutex);
  if (out && out != line)
    brw_secret_free(out);
  brw_secret_free(line);
}

void brw_logj(brw_log_level_t level, json_t *fields, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  brw_vlogj(level, fields, fmt, ap);
  va_end(ap);
}

/* Lines held back by every limit of the process (loop thread only, like
 * the limits themselves). */
static uint64_t g_suppressed;

uint64_t brw_log_suppressed_total(void) {
  return g_suppressed;
}

int brw_log_limit(brw_log_limit_t *l, uint64_t now_ms, uint64_t interval_ms,
                  uint64_t *suppressed) {
  if (now_ms < l->next_ms) {
    l->suppressed++;
    g_suppressed++;
    return 0;
  }
  if (suppressed)
    *suppressed = l->suppressed;
  l->suppressed = 0;
  l->next_ms = now_ms + interval_ms;
  return 1;
}

/* n lowercase hex digits at s. */
static int lower_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  }
  return 1;
}

static int all_zero(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '0')
      return 0;
  }
  return 1;
}

json_t *brw_log_trace_fields(json_t *fields, const char *tp) {
  /* version "-" trace-id "-" parent-id "-" flags: 2+1+32+1+16+1+2 = 55
   * bytes; a later version may append "-..." (W3C Trace Context §3.2). */
  size_t n = tp ? strlen(tp) : 0;
  if (!fields || n < 55 || (n > 55 && tp[55] != '-') || tp[2] != '-' ||
      tp[35] != '-' || tp[52] != '-' || !lower_hex(tp, 2) ||
      !strncmp(tp, "ff", 2) || (!strncmp(tp, "00", 2) && n != 55) ||
      !lower_hex(tp + 3, 32) || all_zero(tp + 3, 32) ||
      !lower_hex(tp + 36, 16) || all_zero(tp + 36, 16) ||
      !lower_hex(tp + 53, 2))
    return fields;
  json_object_set_new(fields, "trace_id", json_stringn(tp + 3, 32));
  json_object_set_new(fields, "span_id", json_stringn(tp + 36, 16));
  json_object_set_new(fields, "trace_flags", json_stringn(tp + 53, 2));
  return fields;
}
