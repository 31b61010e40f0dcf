/* An intrusive, circular, doubly-linked list (as in the Linux kernel and
 * libuv's internal queue): a node embedded in each element, no allocation. */
#ifndef BRW_LIST_H
#define BRW_LIST_H

#include <assert.h>
#include <stddef.h>

typedef struct brw_list_s {
  struct brw_list_s *next;
  struct brw_list_s *prev;
} brw_list_t;

#define brw_list_entry(ptr, type, field)                                       \
  ((type *)((char *)(ptr)-offsetof(type, field)))

static inline void brw_list_init(brw_list_t *h) {
  h->next = h;
  h->prev = h;
}

static inline int brw_list_empty(const brw_list_t *h) {
  return h->next == h;
}

/* n must not be in a list (self-linked, as brw_list_init and
 * brw_list_remove leave it): inserting a linked node would corrupt both
 * lists. Checked in debug builds. */
static inline void brw_list_insert_tail(brw_list_t *h, brw_list_t *n) {
  assert(n->next == n && n->prev == n);
  n->next = h;
  n->prev = h->prev;
  h->prev->next = n;
  h->prev = n;
}

/* Unlinks n and leaves it self-linked, so removing twice is harmless. */
static inline void brw_list_remove(brw_list_t *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->next = n;
  n->prev = n;
}

/* Moves every node of src to the end of dst, in order, in O(1); src is left
 * empty. */
static inline void brw_list_splice_tail(brw_list_t *dst, brw_list_t *src) {
  if (src->next == src)
    return;
  brw_list_t *first = src->next, *last = src->prev;
  first->prev = dst->prev;
  dst->prev->next = first;
  last->next = dst;
  dst->prev = last;
  src->next = src;
  src->prev = src;
}

#define brw_list_foreach_safe(pos, tmp, head)                                  \
  for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head);            \
       (pos) = (tmp), (tmp) = (pos)->next)

#endif
