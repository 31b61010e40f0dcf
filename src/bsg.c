/* The BSG One API's data (SPEC §2): campaign detail parsing and
 * normalisation, the campaign list, statuses, error bodies, the JWT payload
 * and login responses.
 *
 * BSG's public examples disagree with each other, so every parser here is
 * liberal in what it reads (aliases, strings for numbers, arrays of
 * statistics) and strict in what it produces (the §4 "campaign" object with a
 * fixed key order and RFC 3339 UTC times). Pure functions: no I/O, no
 * logging; callers log and count what they need to. */
#include "brw/bsg.h"
#include "bsg_fast.h"
#include "bsg_vocab.h"
#include "brw/error.h"
#include "brw/event.h"
#include "brw/log.h"
#include "brw/timeutil.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of a price's decimal text, terminator included. */
#define PRICE_MAX 64
/* The largest JWT exp accepted: seconds that still fit in int64 ms. */
#define JWT_EXP_MAX (INT64_MAX / 1000)
/* Bytes of API-supplied text quoted in an error message. */
#define SNIPPET_MAX 48

/* ---- small helpers ---------------------------------------------------- */

/* Copies at most `max` bytes of s into out (size >= max + 4), printable
 * ASCII only (anything else becomes '?'), "..." appended when cut. */
static void snippet(const char *s, size_t n, size_t max, char *out) {
  size_t i, k = n < max ? n : max;
  for (i = 0; i < k; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
  }
  out[i] = '\0';
  if (n > k)
    memcpy(out + i, "...", 4);
}

/* The length of the longest prefix of s (n bytes of valid UTF-8, as jansson
 * hands out) that fits in max bytes and ends on a character boundary: a cut
 * inside a multi-byte character is not UTF-8, which json_string() and
 * json_pack() refuse. */
static size_t utf8_prefix(const char *s, size_t n, size_t max) {
  if (n <= max)
    return n;
  while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
    max--;
  return max;
}

static int bad(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats the one-line reason of a bad response; returns BRW_EBADRESP. */
static int bad(char *errbuf, size_t errlen, const char *fmt, ...) {
  if (errbuf && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    for (char *p = errbuf; *p; p++) {
      if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
        *p = ' ';
    }
  }
  return BRW_EBADRESP;
}

/* Member lookup that treats JSON null as absent, so that alias chains fall
 * through a null. Borrowed reference. */
static json_t *get(const json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

/* The first of the n aliases of a field, from brw__bsg_vocab_keys[first],
 * present with a non-null value. */
static json_t *get_alias(const json_t *obj, int first, int n) {
  for (int i = first; i < first + n; i++) {
    json_t *v = get(obj, brw__bsg_vocab_keys[i]);
    if (v)
      return v;
  }
  return NULL;
}

/* An integer given as a JSON integer or a decimal string (the API sends
 * both). Returns 0 and sets *out, or -1 for anything else. */
static int json_to_int(const json_t *v, int64_t *out) {
  if (json_is_integer(v)) {
    *out = json_integer_value(v);
    return 0;
  }
  if (json_is_string(v))
    return brw__bsg_vocab_digits(json_string_value(v), json_string_length(v),
                                 out);
  return -1;
}

/* A new reference to a string copy of v, or to null for anything that is
 * not a string. NULL only on out of memory. */
static json_t *string_or_null(const json_t *v) {
  if (json_is_string(v))
    return json_stringn(json_string_value(v), json_string_length(v));
  return json_null();
}

/* ---- detail ------------------------------------------------------------ */

/* Adds the integer counters of one statistics object into dst (an object
 * owned by the caller), summing per key. Values that are neither integers
 * nor decimal strings are ignored, as the table of SPEC §2 says counters are
 * integers. Returns 0 or BRW_ENOMEM. */
static int stats_add(json_t *dst, const json_t *src) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)src, key, v) {
    int64_t n, cur = 0;
    json_t *have;
    if (json_to_int(v, &n) != 0)
      continue;
    have = json_object_get(dst, key);
    if (have)
      cur = json_integer_value(have);
    if (json_object_set_new(dst, key,
                            json_integer(brw__bsg_vocab_sat_add(cur, n))) != 0)
      return BRW_ENOMEM;
  }
  return 0;
}

/* Sums and fingerprint of a summed statistics object. */
static void stats_summarize(const json_t *stats, brw_detail_t *d) {
  const char *key;
  json_t *v;
  d->delivered = d->failed = d->pending = d->counted = 0;
  d->stats_hash = 0;
  json_object_foreach((json_t *)stats, key, v) {
    brw__bsg_vocab_count(d, key, json_integer_value(v));
  }
}

/* The instant of a timestamp field: the first present alias, parsed with
 * the API zone. Returns 1 with *ms set, or 0 (and *ms 0) when the field is
 * absent or unparseable. */
static int time_ms(const json_t *data, int first, int n, const brw_tz_t *tz,
                   int64_t *ms) {
  json_t *v = get_alias(data, first, n);
  if (!json_is_string(v) ||
      brw_time_parse_tz(json_string_value(v), tz, ms) != 0) {
    *ms = 0;
    return 0;
  }
  return 1;
}

/* Normalises one timestamp field (time_ms) to RFC 3339 UTC. An unparseable
 * value is null in the output (and 0 in *ms): a bad time must not discard a
 * whole detail. Returns a new reference, NULL only on out of memory. */
static json_t *time_field(const json_t *data, int first, int n,
                          const brw_tz_t *tz, int64_t *ms) {
  char buf[32];
  if (!time_ms(data, first, n, tz, ms))
    return json_null();
  return json_string(brw_time_format(*ms, buf, sizeof(buf)));
}

/* The report's four times, in its key order, each with its aliases. */
static const struct {
  const char *name;
  int first, n;
} report_times[] = {
    {"started_at", BRW__BSG_VOCAB_STARTED_AT, BRW__BSG_VOCAB_START_N},
    {"actual_start_at", BRW__BSG_VOCAB_ACTUAL_START_AT,
     BRW__BSG_VOCAB_ACTUAL_N},
    {"created_at", BRW__BSG_VOCAB_CREATED_AT, BRW__BSG_VOCAB_CREATED_N},
    {"finished_at", BRW__BSG_VOCAB_FINISHED_AT, BRW__BSG_VOCAB_FINISHED_N},
};

/* A counter-like total: a non-negative integer or decimal string, else
 * null. Sets *n (-1 when null). Returns a new reference or NULL (ENOMEM). */
static json_t *total_field(const json_t *v, int64_t *n) {
  if (json_to_int(v, n) != 0 || *n < 0) {
    *n = -1;
    return json_null();
  }
  return json_integer(*n);
}

/* Builds the §4 "campaign" object from `data` into d->campaign, in the
 * fixed key order of the report, and fills d's times and sums. Returns 0 or
 * BRW_ENOMEM (d->campaign may then hold a partial object; the caller clears
 * it). */
static int build_campaign(const json_t *data, const brw_tz_t *tz,
                          brw_detail_t *d, const char *status_lc) {
  json_t *c, *stats, *v;
  char price[PRICE_MAX];
  int64_t unused;
  int fail = 0;

  c = d->campaign = json_object();
  stats = json_object();
  if (!c || !stats) {
    json_decref(stats);
    return BRW_ENOMEM;
  }

  /* json_object_set_new steals the value even on failure, so failures are
   * only counted here and reported once at the end. */
  fail |= json_object_set_new(c, "name", string_or_null(get(data, "name")));
  fail |= json_object_set_new(c, "sender", string_or_null(get(data, "sender")));
  fail |=
      json_object_set_new(c, "type",
                          string_or_null(get_alias(data, BRW__BSG_VOCAB_TYPE,
                                                   BRW__BSG_VOCAB_TYPE_N)));
  fail |= json_object_set_new(c, "status", json_string(status_lc));
  int64_t *ms[] = {&d->scheduled_start_ms, &d->actual_start_ms,
                   &d->created_ms, &d->finished_ms};
  _Static_assert(sizeof(ms) / sizeof(ms[0]) ==
                     sizeof(report_times) / sizeof(report_times[0]),
                 "a field for each report time");
  for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
    fail |= json_object_set_new(c, report_times[i].name,
                                time_field(data, report_times[i].first,
                                           report_times[i].n, tz, ms[i]));

  v = get(data, "statistics");
  if (json_is_object(v)) {
    fail |= stats_add(stats, v);
  } else if (json_is_array(v)) {
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item) {
      if (json_is_object(item))
        fail |= stats_add(stats, item);
    }
  }
  stats_summarize(stats, d);
  fail |= json_object_set_new(c, "statistics", stats);

  fail |= json_object_set_new(
      c, "total_messages",
      total_field(get(data, "total_messages"), &d->total_messages));
  fail |= json_object_set_new(c, "total_phones",
                              total_field(get(data, "total_phones"), &unused));
  if (brw_price_normalize(get(data, "total_price"), price, sizeof(price)) == 0)
    fail |= json_object_set_new(c, "total_price", json_string(price));
  else
    fail |= json_object_set_new(c, "total_price", json_null());
  fail |=
      json_object_set_new(c, "currency", string_or_null(get(data, "currency")));

  /* Passed through as sent, null included, but only when present. A deep
   * copy keeps d->campaign independent of the parsed document. */
  v = json_object_get(data, "alternative_channels");
  if (v)
    fail |= json_object_set_new(c, "alternative_channels", json_deep_copy(v));

  return fail ? BRW_ENOMEM : 0;
}

/* What the scheduler needs, without the report's object: the start
 * times, totals and statistics sums and fingerprint, computed as
 * build_campaign computes them. Returns 0 or BRW_ENOMEM. */
static int build_summary(const json_t *data, const brw_tz_t *tz,
                         brw_detail_t *d) {
  json_t *v, *t;
  const char *key;
  int64_t n;
  time_ms(data, BRW__BSG_VOCAB_STARTED_AT, BRW__BSG_VOCAB_START_N, tz,
          &d->scheduled_start_ms);
  time_ms(data, BRW__BSG_VOCAB_ACTUAL_START_AT, BRW__BSG_VOCAB_ACTUAL_N, tz,
          &d->actual_start_ms);
  if (json_to_int(get(data, "total_messages"), &d->total_messages) != 0 ||
      d->total_messages < 0)
    d->total_messages = -1;
  v = get(data, "statistics");
  if (json_is_object(v)) {
    /* Each key once: no need to sum per key first. */
    json_object_foreach(v, key, t) {
      if (json_to_int(t, &n) != 0)
        continue;
      brw__bsg_vocab_count(d, key, n);
    }
  } else if (json_is_array(v)) {
    size_t i;
    json_t *item, *stats = json_object();
    if (!stats)
      return BRW_ENOMEM;
    json_array_foreach(v, i, item) {
      if (json_is_object(item) && stats_add(stats, item) != 0) {
        json_decref(stats);
        return BRW_ENOMEM;
      }
    }
    stats_summarize(stats, d);
    json_decref(stats);
  }
  return 0;
}

/* Adds the counters of one statistics object to *sum. Returns 0, or
 * BRW_EBADRESP with the reason in errbuf for a negative counter or a sum
 * that does not fit in int64. */
static int figures_add(const json_t *stats, int64_t *sum, char *errbuf,
                       size_t errlen) {
  char snip[SNIPPET_MAX + 4];
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)stats, key, v) {
    int64_t n;
    if (json_to_int(v, &n) != 0)
      continue;
    if (n < 0) {
      snippet(key, strlen(key), SNIPPET_MAX, snip);
      return bad(errbuf, errlen, "statistics counter \"%s\" is negative",
                 snip);
    }
    if (__builtin_add_overflow(*sum, n, sum))
      return bad(errbuf, errlen, "statistics counters overflow");
  }
  return 0;
}

/* SPEC §4: every value of a report is within the range its schema states,
 * and a detail that would break that is a bad response. So every
 * statistics counter (in every item of an array) is >= 0, the sum of all
 * of them fits in int64 (then every per-key sum and every rate's numerator
 * does too, and the rates are in [0, 1] by construction: see report.h),
 * and an integer total_messages or total_phones is >= 0. Text that is not
 * an integer stays what it was before (ignored, or null). Returns 0 or
 * BRW_EBADRESP. */
static int figures_check(const json_t *data, char *errbuf, size_t errlen) {
  static const char *const totals[] = {"total_messages", "total_phones"};
  json_t *v = get(data, "statistics"), *item;
  int64_t sum = 0, n;
  size_t i;
  if (json_is_object(v)) {
    if (figures_add(v, &sum, errbuf, errlen) != 0)
      return BRW_EBADRESP;
  } else if (json_is_array(v)) {
    json_array_foreach(v, i, item) {
      if (json_is_object(item) && figures_add(item, &sum, errbuf, errlen) != 0)
        return BRW_EBADRESP;
    }
  }
  for (i = 0; i < sizeof(totals) / sizeof(totals[0]); i++) {
    if (json_to_int(get(data, totals[i]), &n) == 0 && n < 0)
      return bad(errbuf, errlen, "%s is negative", totals[i]);
  }
  return 0;
}

/* The checks every body goes through before jansson: present, not blank,
 * not an HTML page (a proxy's error page served with a 200 is the commonest
 * bad body, and saying so beats jansson's "invalid token"). Returns 0 or
 * BRW_EBADRESP. */
static int body_check(const char *body, size_t len, char *errbuf,
                      size_t errlen) {
  size_t i;
  for (i = 0; body && i < len && isspace((unsigned char)body[i]); i++)
    ;
  if (!body || i == len)
    return bad(errbuf, errlen, "empty body");
  if (body[i] == '<')
    return bad(errbuf, errlen, "body is HTML, not JSON");
  return 0;
}

/* Loads len bytes of body as one JSON document (trailing data refused).
 * Returns 0 with a new reference in *root (the caller decrefs), or
 * BRW_EBADRESP quoting a short excerpt of jansson's reason, never of the
 * body. */
static int body_load(const char *body, size_t len, json_t **root, char *errbuf,
                     size_t errlen) {
  json_error_t jerr;
  char snip[SNIPPET_MAX + 4];
  *root = json_loadb(body, len, 0, &jerr);
  if (!*root) {
    snippet(jerr.text, strlen(jerr.text), SNIPPET_MAX, snip);
    return bad(errbuf, errlen, "body is not JSON: %s", snip);
  }
  return 0;
}

/* Order of checks: body present, JSON, object, `data` (or the bare object),
 * status, id, figures (figures_check); then the normalised object is
 * built. The id is checked after the status so that the most telling
 * reason is reported for error bodies served with a 200. */
static int detail_parse(const char *body, size_t len, const brw_tz_t *tz,
                        int summary, brw_detail_t *out, char *errbuf,
                        size_t errlen) {
  json_t *root, *data, *v;
  char status_lc[64];
  size_t i, n;
  int64_t id;
  int rc;

  memset(out, 0, sizeof(*out));
  out->total_messages = -1;
  if (errbuf && errlen > 0)
    errbuf[0] = '\0';

  rc = body_check(body, len, errbuf, errlen);
  if (rc != 0)
    return rc;
  if (summary && brw__bsg_fast_summary(body, len, tz, out))
    return 0;
  rc = body_load(body, len, &root, errbuf, errlen);
  if (rc != 0)
    return rc;
  if (!json_is_object(root)) {
    rc = bad(errbuf, errlen, "body is not a JSON object");
    goto out;
  }
  data = json_object_get(root, "data");
  if (!data) {
    data = root;
  } else if (!json_is_object(data)) {
    rc = bad(errbuf, errlen, "\"data\" is not an object");
    goto out;
  }

  v = json_object_get(data, "status");
  if (!v) {
    rc = bad(errbuf, errlen, "campaign detail has no status");
    goto out;
  }
  if (!json_is_string(v) || json_string_length(v) == 0) {
    rc = bad(errbuf, errlen, "campaign status is not a non-empty string");
    goto out;
  }
  /* Cut on a character boundary: a status of more than 63 bytes with a
   * multi-byte character at the cut made json_string(status_lc) fail in
   * build_campaign, and a valid body came back as BRW_ENOMEM (found by
   * fuzz/fuzz_detail.c). */
  n = utf8_prefix(json_string_value(v), json_string_length(v),
                  sizeof(status_lc) - 1);
  for (i = 0; i < n; i++)
    status_lc[i] = (char)tolower((unsigned char)json_string_value(v)[i]);
  status_lc[n] = '\0';
  /* Matched on the full value: a long unknown status must not match a known
   * one by truncation. */
  out->status = brw_status_parse(json_string_value(v));
  /* The same for status_raw, which app.c logs through json_pack. tolower
   * leaves bytes above 0x7f alone, so status_lc is still UTF-8. */
  n = utf8_prefix(status_lc, n, sizeof(out->status_raw) - 1);
  memcpy(out->status_raw, status_lc, n);
  out->status_raw[n] = '\0';

  v = get(data, "id");
  if (!v) {
    rc = bad(errbuf, errlen, "campaign detail has no id");
    goto out;
  }
  if (json_to_int(v, &id) != 0 || id <= 0) {
    rc = bad(errbuf, errlen, "campaign id is not a positive integer");
    goto out;
  }
  out->id = (uint64_t)id;

  rc = figures_check(data, errbuf, errlen);
  if (rc != 0)
    goto out;
  rc = summary ? build_summary(data, tz, out)
               : build_campaign(data, tz, out, status_lc);
  if (rc != 0)
    bad(errbuf, errlen, "out of memory");

out:
  json_decref(root);
  if (rc != 0) {
    /* The contract: on failure *out holds nothing to free. */
    json_decref(out->campaign);
    memset(out, 0, sizeof(*out));
    out->total_messages = -1;
  }
  return rc;
}

int brw_detail_parse(const char *body, size_t len, const brw_tz_t *tz,
                     brw_detail_t *out, char *errbuf, size_t errlen) {
  return detail_parse(body, len, tz, 0, out, errbuf, errlen);
}

int brw_detail_summary(const char *body, size_t len, const brw_tz_t *tz,
                       brw_detail_t *out, char *errbuf, size_t errlen) {
  return detail_parse(body, len, tz, 1, out, errbuf, errlen);
}

void brw_detail_clear(brw_detail_t *d) {
  if (!d)
    return;
  json_decref(d->campaign);
  memset(d, 0, sizeof(*d));
  d->total_messages = -1;
}

/* ---- campaign list ----------------------------------------------------- */

/* One counter of an item's statistics (an object, or an array whose object
 * entries are summed, as in the detail): the sum of the values of `key`
 * that are integers or decimal strings (other values are ignored, as
 * stats_add does). -1 when no entry has a usable value, and when a value is
 * negative or the sum overflows: the detail refuses such figures
 * (figures_check), but a list item is kept, with the counter unknown. */
static int64_t list_counter(const json_t *stats, const char *key) {
  const json_t *one = json_is_object(stats) ? stats : NULL;
  size_t i, n = one ? 1 : json_is_array(stats) ? json_array_size(stats) : 0;
  int64_t sum = -1, v;
  for (i = 0; i < n; i++) {
    const json_t *obj = one ? one : json_array_get(stats, i);
    if (!json_is_object(obj) || json_to_int(get(obj, key), &v) != 0)
      continue;
    if (v < 0)
      return -1;
    if (sum < 0)
      sum = 0;
    if (__builtin_add_overflow(sum, v, &sum))
      return -1;
  }
  return sum;
}

/* A campaign id as the list gives it: an integer or a decimal string in
 * 1 .. BRW_CAMPAIGN_ID_MAX, the range an id must have to go into a detail
 * URL and to come back from a JSON number unchanged. Returns 0 or -1. */
static int list_id(const json_t *v, uint64_t *id) {
  int64_t n;
  if (json_to_int(v, &n) != 0 || n <= 0 || (uint64_t)n > BRW_CAMPAIGN_ID_MAX)
    return -1;
  *id = (uint64_t)n;
  return 0;
}

/* Fills *it from one campaign object. Returns 0, or -1 when the item has
 * no usable id (then it is skipped). Never fails otherwise: every other
 * field degrades to "unknown" on its own. */
static int list_item(const json_t *c, const brw_tz_t *tz,
                     brw_campaign_list_item_t *it) {
  memset(it, 0, sizeof(*it));
  if (list_id(get(c, "id"), &it->id) != 0)
    return -1;
  /* brw_status_parse reads a C string: a string with a NUL inside cannot
   * reach it, as json_loadb refuses \u0000 (no JSON_ALLOW_NUL). */
  it->status = json_is_string(get(c, "status"))
                   ? brw_status_parse(json_string_value(get(c, "status")))
                   : BRW_STATUS_UNKNOWN;
  time_ms(c, BRW__BSG_VOCAB_STARTED_AT, BRW__BSG_VOCAB_START_N, tz,
          &it->scheduled_start_ms);
  time_ms(c, BRW__BSG_VOCAB_ACTUAL_START_AT, BRW__BSG_VOCAB_ACTUAL_N, tz,
          &it->actual_start_ms);
  time_ms(c, BRW__BSG_VOCAB_CREATED_AT, BRW__BSG_VOCAB_CREATED_N, tz,
          &it->created_ms);
  time_ms(c, BRW__BSG_VOCAB_FINISHED_AT, BRW__BSG_VOCAB_FINISHED_N, tz,
          &it->finished_ms);
  it->delivered = list_counter(get(c, "statistics"), "delivered");
  it->sent = list_counter(get(c, "statistics"), "sent");
  return 0;
}

/* meta.page.<key>: a non-negative integer (or decimal string), else -1. */
static int64_t page_field(const json_t *page, const char *key) {
  int64_t n;
  if (json_to_int(get(page, key), &n) != 0 || n < 0)
    return -1;
  return n;
}

static void list_reset(brw_campaign_list_t *l) {
  memset(l, 0, sizeof(*l));
  l->total = l->limit = l->offset = -1;
}

/* Order of checks: the body checks the detail makes (body_check,
 * body_load), then the page's shape; past that point nothing but memory
 * can fail, so a page with odd items still schedules its good ones. */
int brw_campaign_list_parse(const char *body, size_t len, const brw_tz_t *tz,
                            brw_campaign_list_t *out, char *errbuf,
                            size_t errlen) {
  json_t *root = NULL, *data, *page, *c;
  size_t i;
  int rc;

  list_reset(out);
  if (errbuf && errlen > 0)
    errbuf[0] = '\0';
  rc = body_check(body, len, errbuf, errlen);
  if (rc == 0)
    rc = body_load(body, len, &root, errbuf, errlen);
  if (rc != 0)
    return rc;

  if (json_is_array(root)) {
    data = root;
  } else if (!json_is_object(root)) {
    /* Not reached while json_loadb runs without JSON_DECODE_ANY. */
    rc = bad(errbuf, errlen, "body is neither a JSON object nor an array");
    goto out;
  } else if (!(data = json_object_get(root, "data"))) {
    rc = bad(errbuf, errlen, "campaign list has no \"data\"");
    goto out;
  } else if (!json_is_array(data)) {
    rc = bad(errbuf, errlen, "\"data\" is not an array");
    goto out;
  } else {
    page = get(get(root, "meta"), "page");
    out->total = page_field(page, "total");
    out->limit = page_field(page, "limit");
    out->offset = page_field(page, "offset");
  }

  /* Sized for every entry; the skipped ones leave the tail unused. */
  if (json_array_size(data) > 0) {
    out->items = calloc(json_array_size(data), sizeof(*out->items));
    if (!out->items) {
      rc = BRW_ENOMEM;
      bad(errbuf, errlen, "out of memory");
      goto out;
    }
  }
  json_array_foreach(data, i, c) {
    if (json_is_object(c) && list_item(c, tz, &out->items[out->n]) == 0)
      out->n++;
    else
      out->skipped++;
  }
  if (out->n == 0) {
    free(out->items);
    out->items = NULL;
  }

out:
  json_decref(root);
  if (rc != 0) {
    /* The contract: on failure *out holds nothing to free. */
    free(out->items);
    list_reset(out);
  }
  return rc;
}

void brw_campaign_list_clear(brw_campaign_list_t *l) {
  if (!l)
    return;
  free(l->items);
  list_reset(l);
}

/* ---- price ------------------------------------------------------------- */

/* Formats a non-negative finite double as plain decimal text (no exponent)
 * from its 15 significant digits, trailing zeros removed. Returns 0, or -1
 * when it is out of a price's plausible range or does not fit. */
static int format_real(double x, char *buf, size_t len) {
  char tmp[40], digits[20], out[PRICE_MAX];
  int nd = 0, e10, k = 0;
  char *e;

  if (!isfinite(x) || x < 0)
    return -1;
  if (x == 0) {
    snprintf(out, sizeof(out), "0");
  } else {
    snprintf(tmp, sizeof(tmp), "%.14e", x); /* d.dddddddddddddde+XX */
    e = strchr(tmp, 'e');
    if (!e)
      return -1;
    for (char *p = tmp; p < e; p++) {
      if (*p >= '0' && *p <= '9')
        digits[nd++] = *p;
    }
    e10 = atoi(e + 1);
    while (nd > 1 && digits[nd - 1] == '0')
      nd--;
    if (e10 > 30 || e10 < -30)
      return -1;
    if (e10 >= 0) {
      for (int i = 0; i <= e10; i++)
        out[k++] = i < nd ? digits[i] : '0';
      if (nd > e10 + 1) {
        out[k++] = '.';
        for (int i = e10 + 1; i < nd; i++)
          out[k++] = digits[i];
      }
    } else {
      out[k++] = '0';
      out[k++] = '.';
      for (int i = 0; i < -e10 - 1; i++)
        out[k++] = '0';
      for (int i = 0; i < nd; i++)
        out[k++] = digits[i];
    }
    out[k] = '\0';
  }
  if (strlen(out) >= len)
    return -1;
  memcpy(buf, out, strlen(out) + 1);
  return 0;
}

/* Strings are validated and converted character by character: digits with
 * at most one separator, '.' or ','; a sign, spaces, exponents or thousands
 * separators are rejected. ".5" becomes "0.5" and "5." becomes "5". */
int brw_price_normalize(const json_t *v, char *buf, size_t len) {
  if (!buf || len == 0)
    return BRW_EPARSE;
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), k = 0, digits = 0;
    int seps = 0;
    char out[PRICE_MAX];
    if (n == 0 || n + 2 > sizeof(out))
      return BRW_EPARSE;
    if (s[0] == '.' || s[0] == ',')
      out[k++] = '0';
    for (size_t i = 0; i < n; i++) {
      if (s[i] >= '0' && s[i] <= '9') {
        out[k++] = s[i];
        digits++;
      } else if ((s[i] == '.' || s[i] == ',') && seps++ == 0) {
        if (i + 1 < n)
          out[k++] = '.';
      } else {
        return BRW_EPARSE;
      }
    }
    out[k] = '\0';
    if (digits == 0 || k >= len)
      return BRW_EPARSE;
    memcpy(buf, out, k + 1);
    return 0;
  }
  if (json_is_integer(v)) {
    json_int_t n = json_integer_value(v);
    if (n < 0 || (size_t)snprintf(buf, len, "%lld", (long long)n) >= len)
      return BRW_EPARSE;
    return 0;
  }
  if (json_is_real(v))
    return format_real(json_real_value(v), buf, len) == 0 ? 0 : BRW_EPARSE;
  return BRW_EPARSE;
}

/* ---- error bodies ------------------------------------------------------ */

/* Appends s (n bytes) to buf as printable ASCII on one line: control
 * characters become spaces, other bytes '?'. *used counts bytes written. */
static void put_clean(char *buf, size_t buflen, size_t *used, const char *s,
                      size_t n) {
  for (size_t i = 0; i < n && *used + 1 < buflen; i++) {
    unsigned char c = (unsigned char)s[i];
    buf[(*used)++] = c < 0x20 || c == 0x7f ? ' ' : c >= 0x80 ? '?' : (char)c;
  }
  buf[*used] = '\0';
}

static void put_str(char *buf, size_t buflen, size_t *used, const char *s) {
  put_clean(buf, buflen, used, s, strlen(s));
}

/* The first message of an "errors" member: {"field": ["msg", ...]},
 * {"field": "msg"} or ["msg", ...]. Borrowed, or NULL. */
static const json_t *first_error(const json_t *errors, const char **field) {
  const json_t *v = NULL;
  *field = NULL;
  if (json_is_object(errors)) {
    void *it = json_object_iter((json_t *)errors);
    if (!it)
      return NULL;
    *field = json_object_iter_key(it);
    v = json_object_iter_value(it);
  } else {
    v = errors;
  }
  if (json_is_array(v))
    v = json_array_get(v, 0);
  return json_is_string(v) ? v : NULL;
}

static void error_message_full(const char *body, size_t len, char *buf,
                               size_t buflen);

/* Writes "message (field: first error)" for {"message", "errors"} bodies,
 * "error N: description" for v1 bodies, or a bare "error" string; "" for
 * anything else, HTML pages included (the status code says enough). The
 * text is composed whole (it is never longer than the body), then every
 * registered secret is redacted, and only then is it cut to buflen: an API
 * that quotes a key could otherwise have it cut in the middle, where the
 * redactor no longer recognises it. */
void brw_api_error_message(const char *body, size_t len, char *buf,
                           size_t buflen) {
  if (!buf || buflen == 0)
    return;
  buf[0] = '\0';
  if (!body || len == 0 || len > SIZE_MAX - 128)
    return;
  size_t cap = len + 128; /* the text, plus " (", ": ", ")" and a number */
  char *full = malloc(cap);
  if (!full)
    return;
  error_message_full(body, len, full, cap);
  brw_log_redact_into(full, buf, buflen);
  brw_secret_free(full);
}

static void error_message_full(const char *body, size_t len, char *buf,
                               size_t buflen) {
  json_t *root, *msg, *err, *desc;
  const json_t *first;
  const char *field;
  size_t used = 0;
  char num[32];

  if (!buf || buflen == 0)
    return;
  buf[0] = '\0';
  if (!body || len == 0)
    return;
  root = json_loadb(body, len, 0, NULL);
  if (!json_is_object(root))
    goto out;
  msg = json_object_get(root, "message");
  err = json_object_get(root, "error");
  desc = json_object_get(root, "errorDescription");
  if (json_is_string(msg)) {
    put_clean(buf, buflen, &used, json_string_value(msg),
              json_string_length(msg));
    first = first_error(json_object_get(root, "errors"), &field);
    if (first) {
      put_str(buf, buflen, &used, " (");
      if (field) {
        put_str(buf, buflen, &used, field);
        put_str(buf, buflen, &used, ": ");
      }
      put_clean(buf, buflen, &used, json_string_value(first),
                json_string_length(first));
      put_str(buf, buflen, &used, ")");
    }
  } else if (json_is_string(desc)) {
    if (json_is_integer(err)) {
      snprintf(num, sizeof(num),
               "error %lld: ", (long long)json_integer_value(err));
      put_str(buf, buflen, &used, num);
    }
    put_clean(buf, buflen, &used, json_string_value(desc),
              json_string_length(desc));
  } else if (json_is_string(err)) {
    put_clean(buf, buflen, &used, json_string_value(err),
              json_string_length(err));
  } else if (json_is_integer(err)) {
    snprintf(num, sizeof(num), "error %lld",
             (long long)json_integer_value(err));
    put_str(buf, buflen, &used, num);
  }
out:
  json_decref(root);
}

/* ---- JWT and login ----------------------------------------------------- */

static int b64_value(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-' || c == '+')
    return 62;
  if (c == '_' || c == '/')
    return 63;
  return -1;
}

/* Decodes base64url (the standard alphabet too), with or without '='
 * padding, n input bytes into out (at least n * 3 / 4 + 1 bytes). Returns
 * the decoded length or -1. */
static long b64url_decode(const char *s, size_t n, unsigned char *out) {
  uint32_t acc = 0;
  int bits = 0;
  long k = 0;
  while (n > 0 && s[n - 1] == '=')
    n--;
  if (n % 4 == 1)
    return -1;
  for (size_t i = 0; i < n; i++) {
    int v = b64_value(s[i]);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[k++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  return k;
}

int brw_jwt_exp(const char *token, int64_t *exp_s) {
  const char *p1, *p2;
  unsigned char *payload;
  json_t *root, *exp;
  long n;
  int rc = BRW_EPARSE;

  if (!token || !exp_s)
    return BRW_EPARSE;
  p1 = strchr(token, '.');
  if (!p1)
    return BRW_EPARSE;
  p2 = strchr(p1 + 1, '.');
  if (!p2 || p2 == p1 + 1)
    return BRW_EPARSE;
  payload = malloc((size_t)(p2 - p1) * 3 / 4 + 1);
  if (!payload)
    return BRW_ENOMEM;
  n = b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), payload);
  if (n <= 0) {
    free(payload);
    return BRW_EPARSE;
  }
  root = json_loadb((const char *)payload, (size_t)n, 0, NULL);
  free(payload);
  /* Bounded so that callers can multiply by 1000 without overflow. */
  exp = json_object_get(root, "exp");
  if (json_is_integer(exp) && json_integer_value(exp) > 0 &&
      json_integer_value(exp) <= JWT_EXP_MAX) {
    *exp_s = json_integer_value(exp);
    rc = 0;
  } else if (json_is_real(exp) && json_real_value(exp) >= 1 &&
             json_real_value(exp) < (double)JWT_EXP_MAX) {
    /* '<', not '<=': JWT_EXP_MAX is not a double, and (double)JWT_EXP_MAX
     * rounds up to JWT_EXP_MAX + 1, which '<=' let through, so that
     * exp * 1000 overflowed (found by fuzz/fuzz_jwt.c). Every double below
     * it converts to at most JWT_EXP_MAX. */
    *exp_s = (int64_t)json_real_value(exp);
    rc = 0;
  }
  json_decref(root);
  return rc;
}

/* Reads a NumericDate claim: an integer or a real in 1 .. JWT_EXP_MAX (as
 * brw_jwt_exp does for exp). Returns 0, or -1 when absent or out of range
 * (*present says which). */
static int numeric_date(const json_t *v, int *present, int64_t *out) {
  *present = v != NULL;
  if (json_is_integer(v) && json_integer_value(v) > 0 &&
      json_integer_value(v) <= JWT_EXP_MAX) {
    *out = json_integer_value(v);
    return 0;
  }
  if (json_is_real(v) && json_real_value(v) >= 1 &&
      json_real_value(v) < (double)JWT_EXP_MAX) {
    *out = (int64_t)json_real_value(v); /* '<': see brw_jwt_exp */
    return 0;
  }
  return -1;
}

int brw_jwt_times(const char *token, brw_jwt_times_t *out) {
  const char *p1, *p2;
  unsigned char *payload;
  json_t *root;
  long n;
  int present, rc = BRW_EPARSE;

  memset(out, 0, sizeof(*out));
  if (!token)
    return BRW_EPARSE;
  /* A JWS compact token has exactly two dots; anything else (an opaque
   * token, a JWE with four) carries no readable lifetime. */
  p1 = strchr(token, '.');
  p2 = p1 ? strchr(p1 + 1, '.') : NULL;
  if (!p2 || strchr(p2 + 1, '.'))
    return 0;
  out->is_jwt = 1;
  if (p2 == p1 + 1)
    return BRW_EPARSE;
  payload = malloc((size_t)(p2 - p1) * 3 / 4 + 1);
  if (!payload)
    return BRW_ENOMEM;
  n = b64url_decode(p1 + 1, (size_t)(p2 - p1 - 1), payload);
  root = n > 0 ? json_loadb((const char *)payload, (size_t)n, 0, NULL) : NULL;
  free(payload);
  if (!json_is_object(root))
    goto out;
  if (numeric_date(json_object_get(root, "exp"), &present, &out->exp_s) == 0)
    out->has_exp = 1;
  else if (present)
    goto out; /* an exp that cannot be read: the lifetime is unknown */
  if (numeric_date(json_object_get(root, "iat"), &present, &out->iat_s) == 0)
    out->has_iat = 1;
  rc = 0;
out:
  json_decref(root);
  return rc;
}

/* Why a token string cannot go into an HTTP header: only visible ASCII is
 * accepted, so that a hostile or broken response cannot inject header lines
 * (and a token with a stray newline is not sent cut in two). Returns
 * BRW_BEARER_OK, or the status with *bad_at set. */
static brw_bearer_status_t token_check(const json_t *v, size_t *bad_at) {
  const char *s = json_string_value(v);
  size_t n = json_string_length(v);
  if (!s)
    return BRW_BEARER_NOT_STRING;
  if (n == 0)
    return BRW_BEARER_EMPTY;
  if (n > BRW_BEARER_MAX)
    return BRW_BEARER_TOO_LONG;
  for (size_t i = 0; i < n; i++) {
    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
      *bad_at = i;
      return BRW_BEARER_BAD_CHAR;
    }
  }
  return BRW_BEARER_OK;
}

/* The token's value in a login answer, or NULL; *field (static) names the
 * key. {"bearer"} is the documented shape; the others are defensive. The
 * root is searched before "data" for every key name, and a null value is
 * passed over; when only nulls are found, the first is returned (a wrong
 * type, not a missing field). */
static json_t *find_token(const json_t *root, const char **field) {
  static const char *const keys[] = {"bearer", "token", "access_token", NULL};
  const json_t *data = json_object_get(root, "data");
  json_t *null = NULL;
  for (int i = 0; keys[i]; i++) {
    for (int k = 0; k < 2; k++) {
      json_t *v = json_object_get(k == 0 ? root : data, keys[i]);
      if (json_is_null(v) && !null) {
        null = v;
        *field = keys[i];
      } else if (v && !json_is_null(v)) {
        *field = keys[i];
        return v;
      }
    }
  }
  return null;
}

char *brw_bearer_parse(const char *body, size_t len) {
  json_t *root, *v;
  const char *field = NULL;
  char *tok = NULL;
  size_t bad_at;

  if (!body || len == 0)
    return NULL;
  root = json_loadb(body, len, 0, NULL);
  if (!json_is_object(root))
    goto out;
  v = find_token(root, &field);
  if (v && token_check(v, &bad_at) == BRW_BEARER_OK)
    tok = strdup(json_string_value(v));
out:
  json_decref(root);
  return tok;
}

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  default:
    return "null";
  }
}

int brw_bearer_read(const char *body, size_t len, int64_t now_ms,
                    int64_t min_life_ms, brw_bearer_t *out) {
  json_t *root = NULL, *v;
  int rc;

  memset(out, 0, sizeof(*out));
  out->status = BRW_BEARER_NOT_JSON;
  if (body && len > 0)
    root = json_loadb(body, len, 0, NULL);
  if (!json_is_object(root))
    goto out;
  v = find_token(root, &out->field);
  if (!v) {
    out->status = BRW_BEARER_MISSING;
    goto out;
  }
  out->len = json_is_string(v) ? json_string_length(v) : 0;
  out->status = token_check(v, &out->bad_at);
  if (out->status == BRW_BEARER_NOT_STRING)
    out->type = json_type_name(v);
  if (out->status == BRW_BEARER_BAD_CHAR)
    out->bad_byte = (unsigned char)json_string_value(v)[out->bad_at];
  if (out->status != BRW_BEARER_OK)
    goto out;
  rc = brw_jwt_times(json_string_value(v), &out->jwt);
  if (rc == BRW_ENOMEM) {
    json_decref(root);
    return BRW_ENOMEM;
  }
  if (rc != 0)
    out->status = BRW_BEARER_BAD_JWT;
  else if (out->jwt.has_exp && out->jwt.exp_s * 1000 <= now_ms)
    out->status = BRW_BEARER_EXPIRED;
  else if (out->jwt.has_exp && out->jwt.exp_s * 1000 - now_ms < min_life_ms)
    out->status = BRW_BEARER_EXPIRES_SOON;
  if (out->status == BRW_BEARER_OK &&
      !(out->token = strdup(json_string_value(v)))) {
    json_decref(root);
    return BRW_ENOMEM;
  }
out:
  json_decref(root);
  return out->status == BRW_BEARER_OK ? 0 : BRW_EPARSE;
}

void brw_bearer_clear(brw_bearer_t *b) {
  if (b->token) {
    /* The token is a credential: wipe it before it goes back to malloc. */
    volatile char *p = b->token;
    for (size_t i = 0; p[i]; i++)
      p[i] = 0;
    free(b->token);
  }
  memset(b, 0, sizeof(*b));
}

const char *brw_bearer_status_name(brw_bearer_status_t st) {
  static const char *const names[] = {
      "ok",    "not_json", "missing", "not_string", "empty",
      "bad_char", "too_long", "bad_jwt", "expired", "expires_soon"};
  if ((size_t)st >= sizeof(names) / sizeof(names[0]))
    return "unknown";
  return names[st];
}

/* "3 s", "12 min", "5 h", "278 days": a magnitude an operator reads at a
 * glance (rounded down). */
static void human_ms(int64_t ms, char *buf, size_t len) {
  uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
  if (a < 10000)
    snprintf(buf, len, "%.1f s", (double)a / 1000.0);
  else if (a < 120000)
    snprintf(buf, len, "%llu s", (unsigned long long)(a / 1000));
  else if (a < 2 * 3600000ull)
    snprintf(buf, len, "%llu min", (unsigned long long)(a / 60000));
  else if (a < 2 * 86400000ull)
    snprintf(buf, len, "%llu h", (unsigned long long)(a / 3600000));
  else
    snprintf(buf, len, "%llu days", (unsigned long long)(a / 86400000));
}

char *brw_bearer_describe(const brw_bearer_t *b, int64_t now_ms, char *buf,
                          size_t len) {
  char t1[32], t2[32], d1[32], d2[32];
  const char *f = b->field ? b->field : "bearer";
  if (len == 0)
    return buf;
  switch (b->status) {
  case BRW_BEARER_OK:
    snprintf(buf, len, "the bearer is usable");
    break;
  case BRW_BEARER_NOT_JSON:
    snprintf(buf, len, "the answer is not a JSON object");
    break;
  case BRW_BEARER_MISSING:
    snprintf(buf, len, "the answer has no \"bearer\" field");
    break;
  case BRW_BEARER_NOT_STRING:
    snprintf(buf, len, "\"%s\" is %s, not a string", f,
             b->type ? b->type : "not a string");
    break;
  case BRW_BEARER_EMPTY:
    snprintf(buf, len, "\"%s\" is an empty string", f);
    break;
  case BRW_BEARER_BAD_CHAR:
    snprintf(buf, len,
             "\"%s\" holds %s (0x%02x at byte %zu of %zu), which cannot go "
             "into an Authorization header",
             f,
             b->bad_byte == 0x20 || (b->bad_byte >= 0x09 && b->bad_byte <= 0x0d)
                 ? "whitespace"
             : b->bad_byte < 0x20 || b->bad_byte == 0x7f
                 ? "a control character"
                 : "a non-ASCII byte",
             b->bad_byte, b->bad_at, b->len);
    break;
  case BRW_BEARER_TOO_LONG:
    snprintf(buf, len, "\"%s\" is %zu bytes long (at most %d)", f, b->len,
             BRW_BEARER_MAX);
    break;
  case BRW_BEARER_BAD_JWT:
    snprintf(buf, len,
             "\"%s\" is shaped like a JWT, but its payload is not a base64url "
             "JSON object with a numeric exp",
             f);
    break;
  case BRW_BEARER_EXPIRED:
  case BRW_BEARER_EXPIRES_SOON: {
    int64_t exp_ms = b->jwt.exp_s * 1000;
    brw_time_format(exp_ms, t1, sizeof(t1));
    human_ms(exp_ms - now_ms, d1, sizeof(d1));
    int n = snprintf(buf, len,
                     b->status == BRW_BEARER_EXPIRED
                         ? "JWT exp %s is %s in the past"
                         : "JWT exp %s is only %s away",
                     t1, d1);
    if (n < 0 || (size_t)n >= len)
      break;
    if (b->jwt.has_iat) {
      /* exp alone cannot tell a stale token from a skewed clock; iat can:
       * a token issued "just now" by its clock but expired by ours means
       * the two clocks disagree. */
      int64_t iat_ms = b->jwt.iat_s * 1000;
      brw_time_format(iat_ms, t2, sizeof(t2));
      human_ms(now_ms - iat_ms, d2, sizeof(d2));
      int64_t skew = now_ms - iat_ms;
      snprintf(buf + n, len - (size_t)n,
               "; issued (iat) %s, %s %s by this host's clock: %s", t2, d2,
               skew >= 0 ? "ago" : "in the future",
               skew > 5 * 60000 || skew < -5 * 60000
                   ? "this host's clock and the issuer's disagree, or the "
                     "gateway serves a stale token"
                   : "the issuer grants too short a lifetime");
    } else {
      snprintf(buf + n, len - (size_t)n,
               "; no iat: check this host's clock (NTP) and the issuer's");
    }
    break;
  }
  }
  return buf;
}
