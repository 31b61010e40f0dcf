#include "brw/offsets.h"
#include "brw/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The window [base, base + len) of offsets, one state byte each, in a ring
 * buffer of `cap` bytes starting at index `head`. States: 0 = gap (never
 * received), 1 = pending, 2 = done. The head is always pending when len > 0,
 * because done and gap entries at the head are dropped at once. */
enum { SLOT_GAP = 0, SLOT_PENDING = 1, SLOT_DONE = 2 };

struct brw_offsets_s {
  uint8_t *ring;
  size_t cap;
  size_t head;
  size_t len;
  int64_t base;     /* offset of ring[head] */
  int64_t next;     /* one past the highest offset added; -1 before any */
  size_t npending;
};

brw_offsets_t *brw_offsets_new(void) {
  brw_offsets_t *o = calloc(1, sizeof(*o));
  if (!o)
    return NULL;
  o->next = -1;
  return o;
}

void brw_offsets_free(brw_offsets_t *o) {
  if (!o)
    return;
  free(o->ring);
  free(o);
}

static uint8_t *slot(brw_offsets_t *o, size_t i) {
  return &o->ring[(o->head + i) % o->cap];
}

/* Doubles the ring, unrolling it so that head becomes 0. */
static int grow(brw_offsets_t *o, size_t need) {
  size_t ncap = o->cap ? o->cap : 64;
  while (ncap < need)
    ncap *= 2;
  uint8_t *nr = malloc(ncap);
  if (!nr)
    return BRW_ENOMEM;
  for (size_t i = 0; i < o->len; i++)
    nr[i] = *slot(o, i);
  memset(nr + o->len, SLOT_GAP, ncap - o->len);
  free(o->ring);
  o->ring = nr;
  o->cap = ncap;
  o->head = 0;
  return 0;
}

/* Drops done and gap slots from the head. */
static void trim(brw_offsets_t *o) {
  while (o->len > 0 && o->ring[o->head] != SLOT_PENDING) {
    o->ring[o->head] = SLOT_GAP;
    o->head = (o->head + 1) % o->cap;
    o->len--;
    o->base++;
  }
  if (o->len == 0) {
    o->head = 0;
    o->base = o->next;
  }
}

int brw_offsets_add(brw_offsets_t *o, int64_t offset) {
  if (offset < 0 || (o->next >= 0 && offset < o->next))
    return BRW_EINVAL;
  if (o->len == 0) {
    o->base = offset;
    o->head = 0;
  }
  size_t idx = (size_t)(offset - o->base);
  if (idx + 1 > o->cap) {
    int r = grow(o, idx + 1);
    if (r)
      return r;
  }
  /* Slots between the old end and idx are gaps: they were cleared when the
   * ring was grown or when they were trimmed. */
  *slot(o, idx) = SLOT_PENDING;
  o->len = idx + 1;
  o->next = offset + 1;
  o->npending++;
  return 0;
}

int brw_offsets_done(brw_offsets_t *o, int64_t offset) {
  if (o->len == 0 || offset < o->base || offset >= o->base + (int64_t)o->len)
    return BRW_ENOENT;
  uint8_t *s = slot(o, (size_t)(offset - o->base));
  if (*s != SLOT_PENDING)
    return BRW_ENOENT;
  *s = SLOT_DONE;
  o->npending--;
  trim(o);
  return 0;
}

int64_t brw_offsets_committable(const brw_offsets_t *o) {
  if (o->next < 0)
    return -1;
  return o->len > 0 ? o->base : o->next;
}

size_t brw_offsets_pending(const brw_offsets_t *o) {
  return o->npending;
}

#define MAP_PREFIX "brw1:"

size_t brw_offsets_encode(const brw_offsets_t *o, char *buf, size_t len) {
  if (len == 0)
    return 0;
  buf[0] = '\0';
  if (o->len == 0)
    return 0; /* nothing pending, so nothing done above the position */
  int n = snprintf(buf, len, MAP_PREFIX "%" PRId64 ":", o->base);
  if (n < 0 || (size_t)n >= len) {
    buf[0] = '\0';
    return 0;
  }
  size_t used = (size_t)n;
  size_t i = 0;
  int wrote_any = 0;
  while (i < o->len) {
    size_t notdone = 0, done = 0;
    while (i < o->len && o->ring[(o->head + i) % o->cap] != SLOT_DONE) {
      notdone++;
      i++;
    }
    while (i < o->len && o->ring[(o->head + i) % o->cap] == SLOT_DONE) {
      done++;
      i++;
    }
    if (done == 0)
      break; /* only not-done offsets are left: nothing to record */
    char pair[48];
    int m = snprintf(pair, sizeof(pair), "%s%zu,%zu", wrote_any ? "," : "",
                     notdone, done);
    if (m < 0 || used + (size_t)m >= len)
      break; /* the rest does not fit: it will be replayed */
    memcpy(buf + used, pair, (size_t)m + 1);
    used += (size_t)m;
    wrote_any = 1;
  }
  if (!wrote_any) {
    buf[0] = '\0';
    return 0;
  }
  return used;
}

/* Reads a decimal number of at most 18 digits; advances *p. */
static int read_num(const char **p, const char *end, int64_t *v) {
  const char *s = *p;
  int64_t x = 0;
  int digits = 0;
  while (s < end && *s >= '0' && *s <= '9') {
    if (++digits > 18)
      return -1;
    x = x * 10 + (*s - '0');
    s++;
  }
  if (digits == 0)
    return -1;
  *v = x;
  *p = s;
  return 0;
}

int brw_offsets_decode(const char *meta, size_t len, int64_t committed,
                       brw_offset_ranges_t *out) {
  out->ranges = NULL;
  out->n = 0;
  size_t plen = sizeof(MAP_PREFIX) - 1;
  if (!meta || len < plen || memcmp(meta, MAP_PREFIX, plen) != 0)
    return BRW_EPARSE;
  const char *p = meta + plen, *end = meta + len;
  int64_t base;
  if (read_num(&p, end, &base) != 0 || base != committed || p >= end ||
      *p != ':')
    return BRW_EPARSE;
  p++;
  size_t cap = 0;
  int64_t at = base;
  int64_t(*ranges)[2] = NULL;
  size_t n = 0;
  while (p < end) {
    int64_t notdone, done;
    if (read_num(&p, end, &notdone) != 0 || p >= end || *p != ',')
      goto bad;
    p++;
    if (read_num(&p, end, &done) != 0 || done <= 0)
      goto bad;
    if (p < end) {
      if (*p != ',' || p + 1 >= end)
        goto bad;
      p++;
    }
    if (INT64_MAX - at < notdone + done)
      goto bad;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      int64_t(*nr)[2] = realloc(ranges, ncap * sizeof(*ranges));
      if (!nr)
        goto bad;
      ranges = nr;
      cap = ncap;
    }
    ranges[n][0] = at + notdone;
    ranges[n][1] = at + notdone + done;
    at = ranges[n][1];
    n++;
  }
  if (n == 0)
    goto bad;
  out->ranges = ranges;
  out->n = n;
  return 0;
bad:
  free(ranges);
  return BRW_EPARSE;
}

int brw_offset_ranges_contain(const brw_offset_ranges_t *r, size_t *cursor,
                              int64_t offset) {
  while (*cursor < r->n && r->ranges[*cursor][1] <= offset)
    (*cursor)++;
  return *cursor < r->n && r->ranges[*cursor][0] <= offset;
}
