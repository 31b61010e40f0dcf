/* The §4 report event: JSON text with a fixed key order, and the derived
 * metrics. Pure: the caller decides when to build and where to send. */
#include "brw/report.h"
#include "brw/timeutil.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REPORT_SCHEMA "bsg.campaign.report.v1"

/* Rates are rounded to 4 decimals. Printed with 15 significant digits they
 * come out as written ("0.7", not "0.69999999999999996", which is what
 * jansson's default of 17 digits would print). */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* A small builder that remembers the first failure, so that the shape of
 * the report reads top to bottom without a check after every member.
 * json_object_set_new steals the value even when it fails. */
typedef struct {
  int failed;
} builder_t;

static void put(builder_t *b, json_t *obj, const char *key, json_t *v) {
  if (!obj || json_object_set_new(obj, key, v) != 0)
    b->failed = 1;
  if (!obj)
    json_decref(v);
}

static json_t *str_or_null(const char *s) {
  return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t ms) {
  char buf[32];
  return ms > 0 ? json_string(brw_time_format(ms, buf, sizeof(buf)))
                : json_null();
}

/* The denominator of the rates: the larger of total_messages and the sum of
 * every counter (docs/design.md, "Statistics and rates"). A parsed detail
 * has every counter >= 0 and `counted` within int64, and delivered and
 * failed are sums of disjoint counters, so each is at most `counted`, at
 * most this denominator: the rates are in [0, 1] by construction, even
 * when the API's total_messages is smaller than its own counters. */
static int64_t rate_total(const brw_detail_t *d) {
  return d->total_messages > d->counted ? d->total_messages : d->counted;
}

/* part / total rounded to 4 decimals, or null when there is no total. A
 * part outside [0, total] cannot come from a parsed detail; it is null
 * rather than a value the schema forbids. */
static json_t *rate(int64_t part, int64_t total) {
  if (total <= 0 || part < 0 || part > total)
    return json_null();
  return json_real(round((double)part / (double)total * 10000.0) / 10000.0);
}

/* finished - actual start, falling back to the scheduled start, then to the
 * creation time. Null when a time is missing, and when the difference is
 * negative: that only comes from inconsistent data and is no duration. */
static json_t *duration(const brw_detail_t *d) {
  int64_t start = d->actual_start_ms;
  if (start == 0)
    start = d->scheduled_start_ms;
  if (start == 0)
    start = d->created_ms;
  if (start == 0 || d->finished_ms == 0 || d->finished_ms < start)
    return json_null();
  return json_integer((d->finished_ms - start) / 1000);
}

/* Builds the report into a new object (the caller json_decref's it), or
 * NULL on out of memory. The detail's campaign object is shared by
 * reference, not copied. */
static json_t *build(const brw_report_input_t *in) {
  builder_t b = {0};
  const brw_detail_t *d = in->detail;
  json_t *root, *metrics, *tracking, *source, *worker;
  int64_t total = 0;

  root = json_object();
  if (!root)
    return NULL;
  put(&b, root, "schema", json_string(REPORT_SCHEMA));
  put(&b, root, "campaign_id", json_integer((json_int_t)in->campaign_id));
  put(&b, root, "account", str_or_null(in->account));
  put(&b, root, "final", json_boolean(in->final));
  put(&b, root, "outcome", str_or_null(in->outcome));
  put(&b, root, "campaign",
      d && d->campaign ? json_incref(d->campaign) : json_null());

  metrics = json_object();
  if (d)
    total = rate_total(d);
  put(&b, metrics, "delivery_rate",
      d ? rate(d->delivered, total) : json_null());
  put(&b, metrics, "failure_rate", d ? rate(d->failed, total) : json_null());
  put(&b, metrics, "pending",
      d && d->pending >= 0 ? json_integer(d->pending) : json_null());
  put(&b, metrics, "duration_seconds", d ? duration(d) : json_null());
  put(&b, root, "metrics", metrics);

  tracking = json_object();
  source = json_object();
  put(&b, tracking, "events", json_integer(in->events));
  put(&b, tracking, "polls", json_integer(in->polls));
  put(&b, tracking, "first_event_at", time_or_null(in->first_event_ms));
  put(&b, tracking, "reported_at", time_or_null(in->reported_ms));
  put(&b, source, "topic", str_or_null(in->source_topic));
  put(&b, source, "partition", json_integer(in->source_partition));
  put(&b, source, "offset", json_integer(in->source_offset));
  put(&b, tracking, "source", source);
  put(&b, root, "tracking", tracking);

  worker = json_object();
  put(&b, worker, "version", str_or_null(in->worker_version));
  put(&b, worker, "instance", str_or_null(in->worker_instance));
  put(&b, root, "worker", worker);

  if (in->traceparent && in->traceparent[0]) {
    put(&b, root, "traceparent", json_string(in->traceparent));
    if (in->tracestate && in->tracestate[0])
      put(&b, root, "tracestate", json_string(in->tracestate));
  }

  if (b.failed) {
    json_decref(root);
    return NULL;
  }
  return root;
}

/* The text is allocated by jansson's allocator, which is malloc unless
 * someone calls json_set_alloc_funcs (nobody in this project does), so the
 * caller frees it with free(). */
char *brw_report_build(const brw_report_input_t *in, size_t *len) {
  json_t *root;
  char *text;

  if (!in)
    return NULL;
  root = build(in);
  if (!root)
    return NULL;
  text = json_dumps(root, DUMP_FLAGS);
  json_decref(root);
  if (text && len)
    *len = strlen(text);
  return text;
}
