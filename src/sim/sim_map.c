/* Campaign state keyed by id: open addressing with linear probing, grown to
 * twice its size at 70 % load. Ids are never 0 (0 marks an empty slot) and
 * entries are only removed all at once (sim_map_clear), so no tombstones are
 * needed. Not thread-safe: the server calls it with its mutex held. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

int sim_map_init(sim_map_t *m, size_t cap) {
  size_t c = 16;
  while (c < cap)
    c <<= 1;
  m->slots = calloc(c, sizeof(*m->slots));
  if (!m->slots)
    return -1;
  m->cap = c;
  m->len = 0;
  return 0;
}

void sim_map_free(sim_map_t *m) {
  free(m->slots);
  m->slots = NULL;
  m->cap = m->len = 0;
}

void sim_map_clear(sim_map_t *m) {
  memset(m->slots, 0, m->cap * sizeof(*m->slots));
  m->len = 0;
}

static size_t slot_of(uint64_t id, size_t cap) {
  return (size_t)sim_mix64(id) & (cap - 1);
}

sim_campaign_t *sim_map_find(const sim_map_t *m, uint64_t id) {
  size_t i = slot_of(id, m->cap);
  while (m->slots[i].id) {
    if (m->slots[i].id == id)
      return &m->slots[i];
    i = (i + 1) & (m->cap - 1);
  }
  return NULL;
}

/* Rehashes every entry into a table twice as large. On ENOMEM the old
 * table is kept intact. */
static int grow(sim_map_t *m) {
  size_t ncap = m->cap * 2;
  sim_campaign_t *ns = calloc(ncap, sizeof(*ns));
  if (!ns)
    return -1;
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slots[i].id)
      continue;
    size_t j = slot_of(m->slots[i].id, ncap);
    while (ns[j].id)
      j = (j + 1) & (ncap - 1);
    ns[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
  return 0;
}

sim_campaign_t *sim_map_upsert(sim_map_t *m, uint64_t id) {
  sim_campaign_t *c = sim_map_find(m, id);
  size_t i;
  if (c)
    return c;
  if ((m->len + 1) * 10 > m->cap * 7 && grow(m) != 0)
    return NULL;
  i = slot_of(id, m->cap);
  while (m->slots[i].id)
    i = (i + 1) & (m->cap - 1);
  memset(&m->slots[i], 0, sizeof(m->slots[i]));
  m->slots[i].id = id;
  m->len++;
  return &m->slots[i];
}
