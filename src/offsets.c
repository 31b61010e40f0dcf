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

/* An index of the done slots, so that brw_offsets_encode finds each run
 * boundary in O(log64 cap) instead of walking the window slot by slot (a
 * window of 10^6 offsets with one done took 2 ms per commit).
 *
 * Level 0 has one bit per ring slot, set when the slot is done; slots outside
 * the window are never done. Each level k >= 1 has one bit per word of level
 * k - 1 in two bitmaps: `any` (the word has a set bit) and `full` (all its
 * valid bits are set). The next done slot is found by climbing `any` and the
 * next not-done slot by climbing the complement of `full`. The top level is
 * the first with a single word; only a top word can have fewer than 64 valid
 * bits, because cap is a power of two of at least 64. */
#define IDX_LEVELS 12 /* 64^11 > 2^64 slots */

typedef struct {
  uint64_t *mem; /* one allocation holding all the words below */
  uint64_t *bits;
  uint64_t *any[IDX_LEVELS];
  uint64_t *full[IDX_LEVELS];
  size_t nbits[IDX_LEVELS]; /* valid bits at each level; nbits[0] = cap */
  int top;
} done_index_t;

struct brw_offsets_s {
  uint8_t *ring;
  size_t cap;
  size_t head;
  size_t len;
  int64_t base;     /* offset of ring[head] */
  int64_t next;     /* one past the highest offset added; -1 before any */
  size_t npending;
  done_index_t idx; /* the done slots of ring, by ring index */
};

static size_t idx_nwords(const done_index_t *x, int k) {
  return (x->nbits[k] + 63) / 64;
}

/* The mask of the valid bits of word w at level k. */
static uint64_t idx_valid(const done_index_t *x, int k, size_t w) {
  size_t nb = x->nbits[k];
  if (w == nb / 64 && nb % 64 != 0)
    return ((uint64_t)1 << (nb % 64)) - 1;
  return ~(uint64_t)0;
}

/* Word w of level k as seen by a search: done bits (or their complement when
 * `inv`), valid bits only. */
static uint64_t idx_word(const done_index_t *x, int k, size_t w, int inv) {
  uint64_t v;
  if (k == 0)
    v = inv ? ~x->bits[w] : x->bits[w];
  else
    v = inv ? ~x->full[k][w] : x->any[k][w];
  return v & idx_valid(x, k, w);
}

static int idx_is_full(const done_index_t *x, int k, size_t w) {
  uint64_t m = idx_valid(x, k, w);
  return ((k == 0 ? x->bits[w] : x->full[k][w]) & m) == m;
}

/* Lays out and allocates an all-zero index of `cap` slots into *x. Returns 0
 * or BRW_ENOMEM (then *x is unchanged). The caller frees x->mem. */
static int idx_alloc(done_index_t *x, size_t cap) {
  done_index_t n;
  memset(&n, 0, sizeof(n));
  n.nbits[0] = cap;
  size_t total = idx_nwords(&n, 0);
  while (idx_nwords(&n, n.top) > 1) {
    n.top++;
    n.nbits[n.top] = idx_nwords(&n, n.top - 1);
    total += 2 * idx_nwords(&n, n.top);
  }
  n.mem = calloc(total, sizeof(uint64_t));
  if (!n.mem)
    return BRW_ENOMEM;
  uint64_t *p = n.mem;
  n.bits = p;
  p += idx_nwords(&n, 0);
  for (int k = 1; k <= n.top; k++) {
    n.any[k] = p;
    p += idx_nwords(&n, k);
    n.full[k] = p;
    p += idx_nwords(&n, k);
  }
  *x = n;
  return 0;
}

/* Fills the levels above 0 from level 0, in O(cap / 64). */
static void idx_summarize(done_index_t *x) {
  for (int k = 1; k <= x->top; k++) {
    for (size_t b = 0; b < x->nbits[k]; b++) {
      uint64_t child = k == 1 ? x->bits[b] : x->any[k - 1][b];
      uint64_t bit = (uint64_t)1 << (b % 64);
      if (child)
        x->any[k][b / 64] |= bit;
      if (idx_is_full(x, k - 1, b))
        x->full[k][b / 64] |= bit;
    }
  }
}

/* Marks slot i done; it was not. O(1) unless a word turns non-empty or full,
 * then O(levels). */
static void idx_set(done_index_t *x, size_t i) {
  size_t w = i / 64;
  int now_any = x->bits[w] == 0;
  x->bits[w] |= (uint64_t)1 << (i % 64);
  int now_full = idx_is_full(x, 0, w);
  for (int k = 1; k <= x->top && (now_any || now_full); k++) {
    size_t b = w;
    w = b / 64;
    uint64_t bit = (uint64_t)1 << (b % 64);
    if (now_any) {
      now_any = x->any[k][w] == 0;
      x->any[k][w] |= bit;
    }
    if (now_full) {
      x->full[k][w] |= bit;
      now_full = idx_is_full(x, k, w);
    }
  }
}

/* Marks slot i not done; it was done. */
static void idx_clear(done_index_t *x, size_t i) {
  size_t w = i / 64;
  int was_full = idx_is_full(x, 0, w);
  x->bits[w] &= ~((uint64_t)1 << (i % 64));
  int now_empty = x->bits[w] == 0;
  for (int k = 1; k <= x->top && (now_empty || was_full); k++) {
    size_t b = w;
    w = b / 64;
    uint64_t bit = (uint64_t)1 << (b % 64);
    if (was_full) {
      was_full = idx_is_full(x, k, w);
      x->full[k][w] &= ~bit;
    }
    if (now_empty) {
      x->any[k][w] &= ~bit;
      now_empty = x->any[k][w] == 0;
    }
  }
}

/* The lowest slot >= i that is done (not done when `inv`), or SIZE_MAX.
 * Climbs while the rest of a word is empty, then descends along the lowest
 * set bits: O(levels). */
static size_t idx_next(const done_index_t *x, size_t i, int inv) {
  int k = 0;
  size_t pos = i;
  for (;;) {
    size_t w = pos / 64;
    if (w >= idx_nwords(x, k))
      return SIZE_MAX;
    uint64_t v = idx_word(x, k, w, inv) & (~(uint64_t)0 << (pos % 64));
    if (v) {
      pos = w * 64 + (size_t)__builtin_ctzll(v);
      break;
    }
    if (k == x->top)
      return SIZE_MAX;
    k++;
    pos = w + 1;
  }
  while (k > 0) {
    k--;
    pos = pos * 64 + (size_t)__builtin_ctzll(idx_word(x, k, pos, inv));
  }
  return pos;
}

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
  free(o->idx.mem);
  free(o);
}

static uint8_t *slot(brw_offsets_t *o, size_t i) {
  return &o->ring[(o->head + i) % o->cap];
}

/* Doubles the ring, unrolling it so that head becomes 0, and rebuilds the
 * done index for the new size. O(cap), like any doubling. */
static int grow(brw_offsets_t *o, size_t need) {
  size_t ncap = o->cap ? o->cap : 64;
  while (ncap < need)
    ncap *= 2;
  uint8_t *nr = malloc(ncap);
  if (!nr)
    return BRW_ENOMEM;
  done_index_t nx;
  if (idx_alloc(&nx, ncap) != 0) {
    free(nr);
    return BRW_ENOMEM;
  }
  for (size_t i = 0; i < o->len; i++) {
    nr[i] = *slot(o, i);
    if (nr[i] == SLOT_DONE)
      nx.bits[i / 64] |= (uint64_t)1 << (i % 64);
  }
  memset(nr + o->len, SLOT_GAP, ncap - o->len);
  idx_summarize(&nx);
  free(o->ring);
  free(o->idx.mem);
  o->ring = nr;
  o->idx = nx;
  o->cap = ncap;
  o->head = 0;
  return 0;
}

/* Drops done and gap slots from the head. */
static void trim(brw_offsets_t *o) {
  while (o->len > 0 && o->ring[o->head] != SLOT_PENDING) {
    if (o->ring[o->head] == SLOT_DONE)
      idx_clear(&o->idx, o->head);
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
  size_t r = (o->head + (size_t)(offset - o->base)) % o->cap;
  if (o->ring[r] != SLOT_PENDING)
    return BRW_ENOENT;
  o->ring[r] = SLOT_DONE;
  idx_set(&o->idx, r);
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

/* The lowest window index >= i whose slot is done (not done when `inv`), or
 * o->len when there is none. The window may wrap around the end of the ring:
 * then the search goes on from ring index 0. */
static size_t next_in_window(const brw_offsets_t *o, size_t i, int inv) {
  size_t r0 = (o->head + i) % o->cap;
  size_t rem = o->len - i;
  size_t x = idx_next(&o->idx, r0, inv);
  if (x != SIZE_MAX)
    return x - r0 < rem ? i + (x - r0) : o->len;
  size_t to_zero = o->cap - r0; /* window indexes from i to ring index 0 */
  if (to_zero >= rem)
    return o->len;
  x = idx_next(&o->idx, 0, inv);
  if (x == SIZE_MAX || to_zero + x >= rem)
    return o->len;
  return i + to_zero + x;
}

/* Jumps from run boundary to run boundary with the done index, so the cost
 * is O(runs written * log64 cap), whatever the size of the window. */
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
    size_t done_at = next_in_window(o, i, 0);
    if (done_at == o->len)
      break; /* only not-done offsets are left: nothing to record */
    size_t end = next_in_window(o, done_at, 1);
    char pair[48];
    int m = snprintf(pair, sizeof(pair), "%s%zu,%zu", wrote_any ? "," : "",
                     done_at - i, end - done_at);
    if (m < 0 || used + (size_t)m >= len)
      break; /* the rest does not fit: it will be replayed */
    memcpy(buf + used, pair, (size_t)m + 1);
    used += (size_t)m;
    wrote_any = 1;
    i = end;
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
