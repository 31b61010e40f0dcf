/* Synthesized campaign-detail bodies in every SPEC §2 variant, shaped like
 * bsg-api-sim's answers (compact JSON, the same key order) but with random
 * figures, for tests/unit/test_pack.c and tests/bench/bench_pack.c.
 *
 * Header-only (static inline) because scripts/bench compiles a benchmark
 * from its one .c file and libbrw_core.a, without this directory's library.
 * Uses brw_rng_t (include/brw/backoff.h) so a seed gives the same bodies. */
#ifndef BRW_TEST_DETAIL_BODIES_H
#define BRW_TEST_DETAIL_BODIES_H

#include "brw/backoff.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Which spelling of each varying field a body uses (SPEC §2's table). */
typedef struct {
  int id_string;     /* id as a decimal string */
  int type_key;      /* 0 "type", 1 "message_type" */
  int start_key;     /* 0 "started_at", 1 "start_date", 2 "start_at" */
  int actual_key;    /* 0 "actual_start_at", 1 "real_start_at" */
  int created_key;   /* 0 "created_at", 1 "creation_at" */
  int status_case;   /* 0 lower, 1 upper, 2 capitalised */
  int price_format;  /* 0 "0.16", 1 "35,0987645", 2 a JSON number */
  int totals_string; /* total_messages and total_phones as strings */
  int iso_time;      /* 2026-12-06T02:01:24Z instead of 2026-12-06 02:01:24 */
  int name_null;
  int alt;         /* alternative_channels: 0 absent, 1 null, 2 [], 3 object */
  int stats_parts; /* 1: an object; 2 or 3: an array of that many objects */
} detail_shape_t;

/* The shape with every field in its first spelling. */
static inline detail_shape_t detail_shape_plain(void) {
  detail_shape_t s = {0};
  s.stats_parts = 1;
  return s;
}

/* A shape with every field's spelling drawn at random. */
static inline detail_shape_t detail_shape_random(brw_rng_t *rng) {
  detail_shape_t s;
  s.id_string = (int)(brw_rng_next(rng) % 2);
  s.type_key = (int)(brw_rng_next(rng) % 2);
  s.start_key = (int)(brw_rng_next(rng) % 3);
  s.actual_key = (int)(brw_rng_next(rng) % 2);
  s.created_key = (int)(brw_rng_next(rng) % 2);
  s.status_case = (int)(brw_rng_next(rng) % 3);
  s.price_format = (int)(brw_rng_next(rng) % 3);
  s.totals_string = (int)(brw_rng_next(rng) % 2);
  s.iso_time = (int)(brw_rng_next(rng) % 2);
  s.name_null = brw_rng_next(rng) % 10 == 0;
  s.alt = (int)(brw_rng_next(rng) % 4);
  /* A quarter as arrays, as the simulator serves them. */
  s.stats_parts =
      brw_rng_next(rng) % 4 == 0 ? 2 + (int)(brw_rng_next(rng) % 2) : 1;
  return s;
}

/* An appender that stops (and remembers it) at the buffer's end. */
typedef struct {
  char *buf;
  size_t cap, len;
  int overflow;
} detail_out_t;

static inline void detail_put(detail_out_t *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void detail_put(detail_out_t *o, const char *fmt, ...) {
  va_list ap;
  int n;
  if (o->overflow)
    return;
  va_start(ap, fmt);
  n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len)
    o->overflow = 1;
  else
    o->len += (size_t)n;
}

/* A time `at` seconds into 2026 (months of 28 days suffice here). */
static inline void detail_put_time(detail_out_t *o, const detail_shape_t *s,
                                   uint64_t at) {
  unsigned sec = (unsigned)(at % 86400), day = (unsigned)(at / 86400 % 336);
  detail_put(o,
             s->iso_time ? "\"2026-%02u-%02uT%02u:%02u:%02uZ\""
                         : "\"2026-%02u-%02u %02u:%02u:%02u\"",
             1 + day / 28, 1 + day % 28, sec / 3600, sec / 60 % 60, sec % 60);
}

/* Writes one body of shape s, with a random id, status, type and figures,
 * into buf (cap bytes, NUL-terminated). Returns its length, or 0 when it
 * does not fit. */
static inline size_t detail_body(char *buf, size_t cap, const detail_shape_t *s,
                                 brw_rng_t *rng) {
  static const char *const statuses[] = {"creation", "moderation", "scheduled",
                                         "sending",  "paused",     "stopped",
                                         "done",     "spam"};
  static const char *const types[] = {"sms", "viber", "rcs"};
  static const char *const starts[] = {"started_at", "start_date", "start_at"};
  static const char *const currencies[] = {"EUR", "USD", "UAH"};
  static const char *const senders[] = {"Acme", "Pharmacy", "Taxi777",
                                        "380501234567", "Kyivstar"};
  detail_out_t o = {buf, cap, 0, 0};
  uint64_t id = 1 + brw_rng_next(rng) % 99999999;
  unsigned status_i = (unsigned)(brw_rng_next(rng) % 8);
  const char *status = statuses[status_i];
  unsigned type = (unsigned)(brw_rng_next(rng) % 3);
  const char *sender = senders[brw_rng_next(rng) % 5];
  uint64_t total = 1 + brw_rng_next(rng) % 5000;
  uint64_t phones = total - brw_rng_next(rng) % (total / 20 + 1);
  char st[16];
  size_t i;

  for (i = 0; status[i] && i < sizeof(st) - 1; i++) {
    char c = status[i];
    if (s->status_case == 1 || (s->status_case == 2 && i == 0))
      c = (char)(c - 'a' + 'A');
    st[i] = c;
  }
  st[i] = '\0';

  detail_put(&o,
             s->id_string ? "{\"data\":{\"id\":\"%llu\","
                          : "{\"data\":{\"id\":%llu,",
             (unsigned long long)id);
  if (s->name_null)
    detail_put(&o, "\"name\":null,");
  else
    detail_put(&o, "\"name\":\"Campaign %llu\",", (unsigned long long)id);
  detail_put(&o, "\"sender\":\"%s\",\"%s\":\"%s\",\"status\":\"%s\",", sender,
             s->type_key ? "message_type" : "type", types[type], st);
  /* Times as a campaign has them: created, started then or a little
   * later, sending a few seconds after, finished later still. */
  uint64_t created = brw_rng_next(rng) % (336ull * 86400);
  uint64_t start =
      created + (brw_rng_next(rng) % 2 ? 0 : 60 * (brw_rng_next(rng) % 600));
  uint64_t actual = start + brw_rng_next(rng) % 10;
  uint64_t finished = actual + brw_rng_next(rng) % 7200;
  int sending = status_i >= 3, ended = status_i >= 5;
  detail_put(&o, "\"%s\":", s->created_key ? "creation_at" : "created_at");
  detail_put_time(&o, s, created);
  detail_put(&o, ",\"%s\":", starts[s->start_key % 3]);
  detail_put_time(&o, s, start);
  detail_put(&o,
             ",\"%s\":", s->actual_key ? "real_start_at" : "actual_start_at");
  if (sending)
    detail_put_time(&o, s, actual);
  else
    detail_put(&o, "null");
  detail_put(&o, ",\"finished_at\":");
  if (ended)
    detail_put_time(&o, s, finished);
  else
    detail_put(&o, "null");

  detail_put(&o, ",\"statistics\":%s", s->stats_parts > 1 ? "[" : "");
  for (int part = 0; part < (s->stats_parts > 1 ? s->stats_parts : 1); part++) {
    /* Before sending everything waits in moderation or scheduled; after,
     * mostly delivered, the rest spread over the other counters. */
    uint64_t left = total / (uint64_t)s->stats_parts, c[7] = {0};
    if (!sending) {
      c[status_i == 1 ? 3 : 2] = left;
      left = 0;
    } else {
      c[0] = left - brw_rng_next(rng) % (left / 5 + 1);
      left -= c[0];
      for (int k = 1; k < 7; k++) {
        c[k] = left ? brw_rng_next(rng) % (left + 1) : 0;
        left -= c[k];
      }
    }
    detail_put(&o, "%s{\"delivered\":%llu,", part ? "," : "",
               (unsigned long long)c[0]);
    if (type)
      detail_put(&o, "\"read\":%llu,", (unsigned long long)(c[0] / 2));
    detail_put(&o,
               "\"sent\":%llu,\"scheduled\":%llu,\"moderation\":%llu,"
               "\"undelivered\":%llu,\"failed\":%llu,\"expired\":%llu",
               (unsigned long long)c[1], (unsigned long long)c[2],
               (unsigned long long)c[3], (unsigned long long)c[4],
               (unsigned long long)c[5], (unsigned long long)c[6]);
    if (type)
      detail_put(&o, ",\"%s\":%llu",
                 type == 1 ? "not_viber_user" : "not_rcs_user",
                 (unsigned long long)(left));
    detail_put(&o, "}");
  }
  detail_put(&o, "%s", s->stats_parts > 1 ? "]" : "");

  detail_put(&o,
             s->totals_string ? ",\"total_messages\":\"%llu\","
                                "\"total_phones\":\"%llu\","
                              : ",\"total_messages\":%llu,"
                                "\"total_phones\":%llu,",
             (unsigned long long)total, (unsigned long long)phones);
  {
    unsigned long long units = total * (1 + brw_rng_next(rng) % 900);
    unsigned long long cents = units % 100;
    units /= 100;
    if (s->price_format == 2)
      detail_put(&o, "\"total_price\":%llu.%02llu,", units, cents);
    else
      detail_put(&o, "\"total_price\":\"%llu%c%02llu%04llu\",", units,
                 s->price_format ? ',' : '.', cents,
                 (unsigned long long)(brw_rng_next(rng) % 10000));
  }
  detail_put(&o, "\"currency\":\"%s\"", currencies[brw_rng_next(rng) % 3]);
  switch (s->alt) {
  case 1:
    detail_put(&o, ",\"alternative_channels\":null");
    break;
  case 2:
    detail_put(&o, ",\"alternative_channels\":[]");
    break;
  case 3:
    detail_put(&o,
               ",\"alternative_channels\":{\"viber\":{\"sender\":\"%s\","
               "\"fallback\":true}}",
               sender);
    break;
  default:
    break;
  }
  detail_put(&o, "}}");
  return o.overflow ? 0 : o.len;
}

#endif
