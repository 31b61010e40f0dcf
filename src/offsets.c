#include "brw/offsets.h"
#include "brw/error.h"

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
