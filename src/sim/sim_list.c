/* The pure parts of GET /api/campaigns (BSG's "List of campaigns"): reading
 * its query into a sim_list_query_t, its modes, and the sort order. The
 * endpoint itself (authentication, owners, lag, faults, counting) is in
 * sim_http.c and the items' JSON in sim_model.c. No state, safe from any
 * thread. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

/* The bounds BSG's spec gives page[limit]; values outside are clamped. */
#define LIMIT_MIN 30
#define LIMIT_MAX 500
#define LIMIT_DEFAULT 50

static const char *const list_modes[SIM_LIST__COUNT] = {"normal", "404", "403",
                                                        "garbage"};

int sim_list_mode_parse(const char *s, sim_list_mode_t *out) {
  if (s && !strcmp(s, "off")) {
    *out = SIM_LIST_404;
    return 0;
  }
  for (int i = 0; s && i < SIM_LIST__COUNT; i++) {
    if (!strcmp(s, list_modes[i])) {
      *out = (sim_list_mode_t)i;
      return 0;
    }
  }
  return -1;
}

const char *sim_list_mode_name(sim_list_mode_t m) {
  return (unsigned)m < SIM_LIST__COUNT ? list_modes[m] : "normal";
}

void sim_list_query_init(sim_list_query_t *q) {
  memset(q, 0, sizeof(*q));
  q->limit = LIMIT_DEFAULT;
  q->sort = SIM_SORT_ID;
  q->type = -1;
}

/* An optionally signed decimal integer with nothing after it; values beyond
 * int64 saturate (a limit of 10^30 is still "above 500"). Returns 0 or -1. */
static int parse_int(const char *s, int64_t *out) {
  char *end;
  long long v;
  v = strtoll(s, &end, 10);
  if (end == s || *end)
    return -1;
  *out = (int64_t)v; /* strtoll saturates on ERANGE */
  return 0;
}

/* sim_time_parse, and once more with a '+' for the last space after the
 * time: a client that puts "+02:00" into a query unencoded has its '+'
 * read as a space by form decoding ("2026-12-06T10:00:00 02:00"). */
static int parse_date(const char *value, int32_t zone_s, int64_t *ms) {
  char buf[64];
  char *sp;
  size_t n = strlen(value);
  if (sim_time_parse(value, zone_s, ms) == 0)
    return 0;
  if (n < 20 || n >= sizeof(buf))
    return -1;
  memcpy(buf, value, n + 1);
  sp = strrchr(buf, ' ');
  if (!sp || sp - buf < 19)
    return -1;
  *sp = '+';
  return sim_time_parse(buf, zone_s, ms);
}

int sim_list_query_arg(sim_list_query_t *q, const char *key, const char *value,
                       int32_t zone_s, const char **message) {
  int64_t v;

  /* Laravel turns empty strings into null, and every field is nullable. */
  if (!value || !*value)
    return 0;
  if (!strcmp(key, "page[offset]")) {
    if (parse_int(value, &v)) {
      *message = "The page.offset must be an integer.";
      return -1;
    }
    if (v < 0) {
      *message = "The page.offset must be at least 0.";
      return -1;
    }
    q->offset = v;
  } else if (!strcmp(key, "page[limit]")) {
    if (parse_int(value, &v)) {
      *message = "The page.limit must be an integer.";
      return -1;
    }
    q->limit = v < LIMIT_MIN ? LIMIT_MIN : v > LIMIT_MAX ? LIMIT_MAX : v;
  } else if (!strcmp(key, "sort")) {
    if (!strcmp(value, "id"))
      q->sort = SIM_SORT_ID;
    else if (!strcmp(value, "created_at"))
      q->sort = SIM_SORT_CREATED;
    else if (!strcmp(value, "status"))
      q->sort = SIM_SORT_STATUS;
    else {
      *message = "The selected sort is invalid.";
      return -1;
    }
  } else if (!strcmp(key, "way")) {
    if (!strcmp(value, "asc") || !strcmp(value, "desc"))
      q->desc = !strcmp(value, "desc");
    else {
      *message = "The selected way is invalid.";
      return -1;
    }
  } else if (!strcmp(key, "filter[from]")) {
    if (parse_date(value, zone_s, &q->from_ms)) {
      *message = "The filter.from is not a valid date.";
      return -1;
    }
    q->has_from = 1;
  } else if (!strcmp(key, "filter[to]")) {
    if (parse_date(value, zone_s, &q->to_ms)) {
      *message = "The filter.to is not a valid date.";
      return -1;
    }
    q->has_to = 1;
  } else if (!strcmp(key, "filter[type]")) {
    if (!strcmp(value, "sms"))
      q->type = SIM_TYPE_SMS;
    else if (!strcmp(value, "viber"))
      q->type = SIM_TYPE_VIBER;
    else if (!strcmp(value, "rcs"))
      q->type = SIM_TYPE_RCS;
    else {
      *message = "The selected filter.type is invalid.";
      return -1;
    }
  }
  /* search[field], search[value] and anything else: accepted, ignored. */
  return 0;
}

static int cmp_u64(uint64_t a, uint64_t b) {
  return a < b ? -1 : a > b;
}

static int cmp_id(const void *a, const void *b) {
  const sim_list_entry_t *x = a, *y = b;
  return cmp_u64(x->id, y->id);
}

static int cmp_created(const void *a, const void *b) {
  const sim_list_entry_t *x = a, *y = b;
  if (x->created_ms != y->created_ms)
    return x->created_ms < y->created_ms ? -1 : 1;
  return cmp_u64(x->id, y->id);
}

uint64_t sim_list_status_key(const char *status) {
  uint64_t k = 0;
  size_t i = 0;
  for (; i < 8 && status[i]; i++)
    k = k << 8 | (unsigned char)status[i];
  return k << (8 * (8 - i));
}

/* Big-endian prefixes order as strcmp orders the texts (bytes compared as
 * unsigned char); equal prefixes of 8 bytes are decided by the rest. */
static int cmp_status(const void *a, const void *b) {
  const sim_list_entry_t *x = a, *y = b;
  int c = 0;
  if (x->status_key != y->status_key)
    return x->status_key < y->status_key ? -1 : 1;
  if ((x->status_key & 0xFF) != 0)
    c = strcmp(x->status + 8, y->status + 8);
  return c ? c : cmp_u64(x->id, y->id);
}

/* Every order ends in the id, which is unique, so the order is total and
 * "desc" is simply the reversed array. */
void sim_list_sort(sim_list_entry_t *e, size_t n, const sim_list_query_t *q) {
  int (*cmp)(const void *, const void *) =
      q->sort == SIM_SORT_CREATED  ? cmp_created
      : q->sort == SIM_SORT_STATUS ? cmp_status
                                   : cmp_id;
  if (n < 2)
    return;
  qsort(e, n, sizeof(*e), cmp);
  if (q->desc) {
    for (size_t i = 0, j = n - 1; i < j; i++, j--) {
      sim_list_entry_t t = e[i];
      e[i] = e[j];
      e[j] = t;
    }
  }
}
