#include "brw/log.h"
#include "brw/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define BRW_LOG_MAX_SECRETS 64

static brw_log_level_t g_level = BRW_LOG_INFO;
static brw_log_format_t g_format = BRW_LOG_JSON;
static char g_component[32] = "bsg-report-worker";
static char *g_secrets[BRW_LOG_MAX_SECRETS];
static int g_nsecrets;
static pthread_mutex_t g_mutex = PTHREAD_MUTEX_INITIALIZER;

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

void brw_log_add_secret(const char *secret) {
  if (!secret || strlen(secret) < 4)
    return;
  pthread_mutex_lock(&g_mutex);
  for (int i = 0; i < g_nsecrets; i++) {
    if (!strcmp(g_secrets[i], secret)) {
      pthread_mutex_unlock(&g_mutex);
      return;
    }
  }
  if (g_nsecrets == BRW_LOG_MAX_SECRETS) {
    /* Oldest secrets (expired bearers) make room for new ones. */
    free(g_secrets[0]);
    memmove(g_secrets, g_secrets + 1, sizeof(g_secrets[0]) * (g_nsecrets - 1));
    g_nsecrets--;
  }
  g_secrets[g_nsecrets++] = strdup(secret);
  pthread_mutex_unlock(&g_mutex);
}

void brw_log_cleanup(void) {
  pthread_mutex_lock(&g_mutex);
  for (int i = 0; i < g_nsecrets; i++)
    free(g_secrets[i]);
  g_nsecrets = 0;
  pthread_mutex_unlock(&g_mutex);
}

/* Replaces every registered secret in `line` in place. Called with the mutex
 * held. "[REDACTED]" may be longer than a secret of 4..9 bytes, so the line is
 * rebuilt into a new buffer when anything matches. Returns `line` or a new
 * malloc'ed string that the caller frees. */
static char *redact(char *line) {
  char *out = line;
  for (int i = 0; i < g_nsecrets; i++) {
    const char *s = g_secrets[i];
    size_t slen = strlen(s);
    char *hit = strstr(out, s);
    if (!hit)
      continue;
    size_t cap = strlen(out) * 2 + 64;
    char *buf = malloc(cap);
    if (!buf)
      return out;
    size_t n = 0;
    const char *p = out;
    while ((hit = strstr(p, s))) {
      size_t pre = (size_t)(hit - p);
      if (n + pre + 16 >= cap) {
        cap = (cap + pre) * 2;
        char *nb = realloc(buf, cap);
        if (!nb) {
          free(buf);
          return out;
        }
        buf = nb;
      }
      memcpy(buf + n, p, pre);
      n += pre;
      memcpy(buf + n, "[REDACTED]", 10);
      n += 10;
      p = hit + slen;
    }
    size_t rest = strlen(p);
    if (n + rest + 1 > cap) {
      char *nb = realloc(buf, n + rest + 1);
      if (!nb) {
        free(buf);
        return out;
      }
      buf = nb;
    }
    memcpy(buf + n, p, rest + 1);
    if (out != line)
      free(out);
    out = buf;
  }
  return out;
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

void brw_vlogj(brw_log_level_t level, json_t *fields, const char *fmt,
               va_list ap) {
  if (!brw_log_enabled(level)) {
    json_decref(fields);
    return;
  }
  char msg[2048];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  char ts[40];
  format_now(ts, sizeof(ts));

  char *line = NULL;
  if (g_format == BRW_LOG_JSON) {
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_names[level]));
    json_object_set_new(o, "component", json_string(g_component));
    json_object_set_new(o, "msg", json_string(msg));
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
    free(extra);
  }
  json_decref(fields);
  if (!line)
    return;
  pthread_mutex_lock(&g_mutex);
  char *out = redact(line);
  fprintf(stderr, "%s\n", out);
  fflush(stderr);
  pthread_mutex_unlock(&g_mutex);
  if (out != line)
    free(out);
  free(line);
}

void brw_logj(brw_log_level_t level, json_t *fields, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  brw_vlogj(level, fields, fmt, ap);
  va_end(ap);
}

int brw_log_limit(brw_log_limit_t *l, uint64_t now_ms, uint64_t interval_ms,
                  uint64_t *suppressed) {
  if (now_ms < l->next_ms) {
    l->suppressed++;
    return 0;
  }
  if (suppressed)
    *suppressed = l->suppressed;
  l->suppressed = 0;
  l->next_ms = now_ms + interval_ms;
  return 1;
}
