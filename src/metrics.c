/* The metrics registry (see include/brw/metrics.h). Loop thread only: no
 * locks. */
#include "brw/metrics.h"
#include "brw/error.h"
#include "brw/event.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef BRW_VERSION
#define BRW_VERSION "unknown"
#endif

#define P BRW_METRICS_PREFIX

/* ---- the table ---- */

static const char *const k_event_types[] = {"sent", "finished", NULL};

/* Intake reasons, DLQ reasons, retry classes, poll bases and outcomes:
 * brw/vocab.h's tables. */



/* HTTP status class of an API answer; "error" when none arrived. */
static const char *const k_status_class[] = {"2xx", "3xx",   "4xx",
                                             "5xx", "error", NULL};


/* The reasons of src/health.c (brw_health_name), in its order; test_health
 * checks that the two lists agree. */
static const char *const k_blocked[] = {
    "kafka_down",       "input_topic_missing", "group_not_joined",
    "account_auth",     "record_refused",      "producer_backlog",
    "max_tracked",      "event_loop_lag",      "output_topic_missing",
    "kafka_auth",       "transactions_stalled", NULL};

/* What a produced record was (src/app.c). */
static const char *const k_record_kinds[] = {"report", "progress", "dlq",
                                             NULL};

/* Why a login or refresh failed (src/api.c): the key rejected, the
 * bearer of a 200 unusable (brw_bearer_status_name), or the answer. */
static const char *const k_auth_failure[] = {
    "rejected", "expired",  "expires_soon", "bad_jwt",   "bad_char",
    "empty",    "missing",  "not_string",   "not_json",  "too_long",
    "429",      "5xx",      "4xx",          "transport", "tls",
    "local",    NULL};

/* How a new connection to the API was made; the HTTP versions of its
 * answers (src/api.c). */
static const char *const k_transports[] = {"tls", "tcp", NULL};
static const char *const k_http_versions[] = {"1.1", "2", NULL};


/* Prometheus' default buckets, from 5 ms to 10 s. */
static const double b_api_duration[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,    2.5,   5,    10};
/* Fibonacci: polls grow with the campaign's length and the backoff. */
static const double b_polls[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144};
static const double b_report_delay[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                        1,    2.5,   5,    10,  30,   60};

/* A revocation waits up to 5 s for records, then up to 5 s for a commit. */
static const double b_revoke[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                  0.5,   1,    2.5,   5,    10};
static const char *const k_moved[] = {"assigned", "revoked", "lost", NULL};
static const char *const k_txn_outcomes[] = {"committed", "aborted",
                                             "producer_rebuilt", NULL};
static const char *const k_endpoints[] = {"detail", "list", "login", "refresh",
                                          NULL};
static const char *const k_sweep_pages[] = {"ok", "failed", NULL};
static const char *const k_sweep_fallbacks[] = {
    "unlisted", "list_failed", "list_unusable", "too_costly", NULL};
/* Tracked campaigns one list page lists (up to page[limit], 500). */
static const double b_sweep_page[] = {0,  1,   2,   5,   10,
                                      25, 50, 100, 250, 500};

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define COUNTER(n, h)                                                          \
  { .name = P n, .type = BRW_METRIC_COUNTER, .help = h }
#define COUNTER_L(n, h, l, k)                                                  \
  { .name = P n, .type = BRW_METRIC_COUNTER, .help = h, .label = l, .known = k }
#define GAUGE(n, h)                                                            \
  { .name = P n, .type = BRW_METRIC_GAUGE, .help = h }
#define HISTOGRAM(n, h, b)                                                     \
  {                                                                            \
    .name = P n, .type = BRW_METRIC_HISTOGRAM, .help = h, .buckets = b,        \
    .nbuckets = N(b)                                                           \
  }

/* THE table: one row per brw_metric_id_t, in the enum's order (indexed by
 * the enum, so a missing row shows up as a NULL name, which
 * brw_metrics_new refuses and test_metrics checks). Naming: snake_case,
 * counters end in _total, units in the name. */
static const brw_metric_def_t defs[BRW_M__COUNT] = {
    [BRW_M_EVENTS_CONSUMED] =
        COUNTER_L("events_consumed_total",
                  "Input events consumed and accepted, by event type.", "type",
                  k_event_types),
    [BRW_M_EVENTS_INVALID] = COUNTER_L(
        "events_invalid_total",
        "Input events refused at intake (sent to the DLQ), by reason.",
        "reason", brw_intake_reason_names),
    [BRW_M_EVENTS_MERGED] =
        COUNTER("events_merged_total",
                "Input events merged into a campaign already tracked."),
    [BRW_M_EVENTS_SKIPPED] = COUNTER(
        "events_skipped_total",
        "Input events skipped because the committed offset map marks them "
        "completed before a restart or rebalance."),
    [BRW_M_EVENTS_LATE] = COUNTER(
        "events_late_total",
        "Input events for a campaign whose final report was already sent."),
    [BRW_M_CAMPAIGNS_TRACKED] =
        GAUGE("campaigns_tracked", "Campaigns currently tracked."),
    [BRW_M_API_REQUESTS] = COUNTER_L(
        "api_requests_total",
        "Requests to the BSG API, by status class (error: no response).",
        "class", k_status_class),
    [BRW_M_API_REQUEST_DURATION] =
        HISTOGRAM("api_request_duration_seconds",
                  "Duration of BSG API requests, in seconds.", b_api_duration),
    [BRW_M_API_LOGINS] = COUNTER(
        "api_logins_total", "Logins to the BSG API (POST /api/auth/login)."),
    [BRW_M_API_LOGIN_FAILURES] = COUNTER("api_login_failures_total",
                                         "Logins that failed or were refused."),
    [BRW_M_API_REFRESHES] = COUNTER(
        "api_refreshes_total", "Bearer refreshes (POST /api/auth/refresh)."),
    [BRW_M_API_RETRIES] =
        COUNTER_L("api_retries_total",
                  "Failed detail fetches that will be retried, by error "
                  "class: their own request failed, or (auth, or the login's "
                  "class such as tls or connect) the account's login did and "
                  "they were waiting for it.",
                  "class", brw_retry_class_names),
    [BRW_M_CAMPAIGN_STATUS_UNKNOWN] =
        COUNTER("campaign_status_unknown_total",
                "Campaign details with a status the worker does not know."),
    [BRW_M_REPORTS_PUBLISHED] =
        COUNTER_L("reports_published_total",
                  "Final reports acknowledged by the broker, by outcome.",
                  "outcome", brw_outcome_names),
    [BRW_M_PROGRESS_REPORTS] =
        COUNTER("progress_reports_total",
                "Progress reports acknowledged by the broker."),
    [BRW_M_DLQ_RECORDS] =
        COUNTER_L("dlq_records_total",
                  "Records acknowledged on the dead-letter topic, by reason.",
                  "reason", brw_dlq_reason_names),
    [BRW_M_POLLS_PER_CAMPAIGN] = HISTOGRAM(
        "polls_per_campaign",
        "Detail fetches per campaign, observed at its final report.", b_polls),
    [BRW_M_POLLS_SCHEDULED] = COUNTER_L(
        "polls_scheduled_total",
        "Next polls scheduled after a non-terminal answer, by what chose the "
        "delay (backoff, estimate of the end of a send, scheduled start).",
        "basis", brw_basis_names),
    [BRW_M_REPORT_DELAY] =
        HISTOGRAM("report_delay_seconds",
                  "Seconds from the fetch that saw the terminal status to the "
                  "broker's acknowledgement of the report.",
                  b_report_delay),
    [BRW_M_PARTITIONS_ASSIGNED] = GAUGE(
        "partitions_assigned", "Input partitions assigned to this worker."),
    [BRW_M_PARTITIONS_PAUSED] =
        GAUGE("partitions_paused", "Assigned input partitions paused."),
    [BRW_M_CONSUMPTION_PAUSED] =
        GAUGE("consumption_paused",
              "1 while intake is paused (max.tracked or producer backlog)."),
    [BRW_M_COMMITS] = COUNTER("commits_total", "Offset commits sent."),
    [BRW_M_COMMIT_FAILURES] =
        COUNTER("commit_failures_total", "Offset commits that failed."),
    [BRW_M_PRODUCER_QUEUE_RECORDS] = GAUGE(
        "producer_queue_records",
        "Records in the producer queue and backlog, not yet acknowledged."),
    [BRW_M_CONSUMER_LAG] =
        GAUGE("consumer_lag_messages",
              "Messages behind the high watermark, summed over assigned "
              "partitions."),
    [BRW_M_KAFKA_BROKERS_UP] =
        GAUGE("kafka_brokers_up", "1 while at least one broker is connected."),
    [BRW_M_ACCOUNTS_REJECTED] = GAUGE(
        "accounts_rejected", "Accounts whose API key is currently rejected."),
    [BRW_M_BUILD_INFO] = {.name = P "build_info",
                          .type = BRW_METRIC_GAUGE,
                          .help = "Always 1; the version is a label.",
                          .label = "version"},
    [BRW_M_BLOCKED] = {.name = P "blocked",
                       .type = BRW_METRIC_GAUGE,
                       .help = "1 while this reason keeps the worker from "
                               "making progress (see /readyz).",
                       .label = "reason",
                       .known = k_blocked},
    [BRW_M_BLOCKED_TOTAL] = COUNTER_L(
        "blocked_total", "Times each reason began to block progress.",
        "reason", k_blocked),
    [BRW_M_EVENT_LOOP_LAG] =
        GAUGE("event_loop_lag_seconds",
              "The longest the event loop went without serving I/O, in "
              "seconds: the larger of a loop iteration's busy time and how "
              "late its 1 s health tick ran (the largest of the last 15 s)."),
    [BRW_M_LOG_SUPPRESSED] =
        COUNTER("log_lines_suppressed_total",
                "Repeated log lines held back by a rate limit."),
    [BRW_M_RECORDS_REFUSED] = COUNTER_L(
        "records_refused_total",
        "Records that could not be published as built: over "
        "output.max_record_size, or refused for good by the producer or the "
        "broker, by kind (each then takes its fallback: report -> DLQ "
        "too_large, DLQ record -> shortened, progress -> skipped).",
        "kind", k_record_kinds),
    [BRW_M_DLQ_TRUNCATED] =
        COUNTER("dlq_records_truncated_total",
                "DLQ records produced with a shortened key or value "
                "(header error.truncated)."),
    [BRW_M_DLQ_DROPPED] = COUNTER(
        "dlq_records_dropped_total",
        "DLQ records refused even headers-only and given up: their input "
        "offsets were completed without a record (logged as errors)."),

    [BRW_M_API_AUTH_FAILURES] = COUNTER_L(
        "api_auth_failures_total",
        "Failed logins and refreshes, by reason: rejected (401/403 at "
        "login), an unusable bearer in a 200 (expired, expires_soon, "
        "bad_jwt, bad_char, empty, missing, not_string, not_json, "
        "too_long), or the answer (429, 5xx, 4xx, transport, tls: the TLS "
        "handshake or the server's certificate failed, local).",
        "reason", k_auth_failure),
    [BRW_M_REVOKE_SECONDS] = HISTOGRAM(
        "rebalance_revoke_seconds",
        "Seconds a revocation took, from the rebalance callback to the "
        "partitions' release: waiting for their reports under way, then for "
        "their commit (the loop runs meanwhile).",
        b_revoke),
    [BRW_M_TRANSACTIONS] = COUNTER_L(
        "transactions_total",
        "Exactly once (delivery.guarantee): transactions committed, "
        "transactions aborted (their records produced again), and "
        "transactional producers made again after a fatal error.",
        "outcome", k_txn_outcomes),
    [BRW_M_API_CALLS] = COUNTER_L(
        "api_calls_total",
        "Requests sent to the BSG API, by endpoint: detail (GET "
        "/api/campaigns/{id}/detail), list (GET /api/campaigns, status "
        "sweeps), login, refresh.",
        "endpoint", k_endpoints),
    [BRW_M_SWEEP_PAGES] = COUNTER_L(
        "sweep_pages_total",
        "Campaign list pages fetched by status sweeps (poll.strategy), by "
        "result: ok, or failed (no answer, an error status, or a body that "
        "is not a campaign list).",
        "result", k_sweep_pages),
    [BRW_M_SWEEP_PAGE_CAMPAIGNS] =
        HISTOGRAM("sweep_page_campaigns",
                  "Tracked campaigns listed per campaign list page: what one "
                  "list request resolves.",
                  b_sweep_page),
    [BRW_M_SWEEP_FALLBACKS] = COUNTER_L(
        "sweep_fallbacks_total",
        "Falls back to detail polling: a campaign the sweep it waited for "
        "did not list (unlisted); an account whose list page failed "
        "(list_failed, retried) or cannot be used (list_unusable: 403, 404, "
        "a body that is not a list, or three sweeps that listed none of its "
        "campaigns; poll.strategy=auto stops sweeping it for an hour); an "
        "account with fewer tracked campaigns than list pages "
        "(too_costly).",
        "reason", k_sweep_fallbacks),
    [BRW_M_BACKLOG_EVENTS] = GAUGE(
        "backlog_events",
        "Input events not read yet on the partitions this worker holds: "
        "per partition its end (the last stable offset under "
        "read_committed) minus the position of the next record the worker "
        "reads. Unlike consumer_lag_messages, not held up by campaigns in "
        "progress behind the committed offset."),
    [BRW_M_CAMPAIGNS_DUE] = GAUGE(
        "campaigns_due",
        "Tracked campaigns whose detail fetch is due but waits in an "
        "account's queue: for a login (or its backoff), a rate-limit slot "
        "(api.rate_limit) or a connection (http.max_connections). Requests "
        "under way do not count."),
    [BRW_M_BACKLOG] = GAUGE(
        "backlog",
        "backlog_events + campaigns_due: the work waiting for this worker, "
        "the autoscaling signal (deploy/keda/scaledobject.yaml)."),
    [BRW_M_PARTITIONS_MOVED] = COUNTER_L(
        "partitions_moved_total",
        "Input partitions assigned to this worker, revoked from it, or lost "
        "(revoked without a commit), by rebalances.",
        "direction", k_moved),
    [BRW_M_API_CONNECTIONS] = COUNTER_L(
        "api_connections_total",
        "Connections to the API (or its proxy) that requests had to open, by "
        "transport: each tls one is a TLS handshake (full or resumed). Per "
        "1,000 api_requests_total, the cost of connection reuse.",
        "transport", k_transports),
    [BRW_M_API_RESPONSES_BY_VERSION] = COUNTER_L(
        "api_responses_by_version_total",
        "API responses by HTTP version (1.1, 2; http.version).",
        "version", k_http_versions),
    /* The libraries the process runs with (include/brw/versions.h): one
     * info gauge each, since a metric has one label. */
    [BRW_M_LIBRDKAFKA_INFO] = {.name = P "librdkafka_info",
                               .type = BRW_METRIC_GAUGE,
                               .help = "Always 1; the librdkafka version the "
                                       "process runs with is a label.",
                               .label = "version"},
    [BRW_M_LIBCURL_INFO] = {.name = P "libcurl_info",
                            .type = BRW_METRIC_GAUGE,
                            .help = "Always 1; the libcurl version the "
                                    "process runs with is a label.",
                            .label = "version"},
    [BRW_M_LIBUV_INFO] = {.name = P "libuv_info",
                          .type = BRW_METRIC_GAUGE,
                          .help = "Always 1; the libuv version the process "
                                  "runs with is a label.",
                          .label = "version"},
    [BRW_M_JANSSON_INFO] = {.name = P "jansson_info",
                            .type = BRW_METRIC_GAUGE,
                            .help = "Always 1; the jansson version the "
                                    "process runs with is a label.",
                            .label = "version"},
};

/* ---- the registry ---- */

typedef struct {
  char label[BRW_METRICS_LABEL_MAX + 1];
  double value; /* counter, gauge */
  double sum;   /* histogram */
  uint64_t count;
  uint64_t buckets[BRW_METRICS_MAX_BUCKETS]; /* per bucket, not cumulative */
} series_t;

/* Unlabeled: one series. Labeled: up to BRW_METRICS_MAX_LABELS series in
 * creation order, plus one slot kept for "other". */
typedef struct {
  series_t *series;
  size_t n;
} family_t;

struct brw_metrics_s {
  family_t fam[BRW_M__COUNT];
};

const brw_metric_def_t *brw_metrics_def(brw_metric_id_t id) {
  if ((int)id < 0 || id >= BRW_M__COUNT)
    return NULL;
  return &defs[id];
}

int brw_metrics_lookup(const char *name) {
  for (int i = 0; i < BRW_M__COUNT; i++)
    if (defs[i].name && !strcmp(defs[i].name, name))
      return i;
  return BRW_ENOENT;
}

const char *brw_metrics_type_name(brw_metric_type_t type) {
  switch (type) {
  case BRW_METRIC_COUNTER:
    return "counter";
  case BRW_METRIC_GAUGE:
    return "gauge";
  case BRW_METRIC_HISTOGRAM:
    return "histogram";
  }
  return "untyped";
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. `n` is
 * how many bytes remain. */
static size_t utf8_len(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0; /* overlong */
    else if (c == 0xED)
      hi = 0x9F; /* surrogates */
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90; /* overlong */
    else if (c == 0xF4)
      hi = 0x8F; /* beyond U+10FFFF */
  } else
    return 0;
  if (n < len || s[1] < lo || s[1] > hi)
    return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF)
      return 0;
  return len;
}

/* Writes the stored form of a label value into out (BRW_METRICS_LABEL_MAX
 * + 1 bytes): invalid UTF-8 bytes and control characters other than newline
 * become '_' (newline is kept: the exposition format escapes it), and the
 * value is cut before the character that would pass the cap. NULL and ""
 * become "other". */
static void sanitize(const char *in, char *out) {
  const unsigned char *s = (const unsigned char *)in;
  size_t n, o = 0;
  if (!in || !*in) {
    snprintf(out, BRW_METRICS_LABEL_MAX + 1, "%s", BRW_METRICS_OTHER);
    return;
  }
  n = strlen(in);
  while (n > 0) {
    size_t len = utf8_len(s, n);
    if (len == 0 || (len == 1 && ((*s < 0x20 && *s != '\n') || *s == 0x7F))) {
      if (o + 1 > BRW_METRICS_LABEL_MAX)
        break;
      out[o++] = '_';
      s++;
      n--;
      continue;
    }
    if (o + len > BRW_METRICS_LABEL_MAX)
      break;
    memcpy(out + o, s, len);
    o += len;
    s += len;
    n -= len;
  }
  out[o] = '\0';
}

static series_t *find(const family_t *f, const char *label) {
  for (size_t i = 0; i < f->n; i++)
    if (!strcmp(f->series[i].label, label))
      return &f->series[i];
  return NULL;
}

/* Appends a series; the caller checked there is room. */
static series_t *add(family_t *f, const char *label) {
  series_t *s = &f->series[f->n++];
  memset(s, 0, sizeof(*s));
  snprintf(s->label, sizeof(s->label), "%s", label);
  return s;
}

/* The series a write goes to, created on first use. Never NULL for a valid
 * id: past the cap, values fall back to "other", whose slot is reserved. */
static series_t *series_for(brw_metrics_t *m, brw_metric_id_t id,
                            const char *label) {
  family_t *f;
  char clean[BRW_METRICS_LABEL_MAX + 1];
  series_t *s;
  if (!m || (int)id < 0 || id >= BRW_M__COUNT)
    return NULL;
  f = &m->fam[id];
  if (!defs[id].label)
    return &f->series[0];
  sanitize(label, clean);
  if ((s = find(f, clean)))
    return s;
  if (f->n < BRW_METRICS_MAX_LABELS)
    return add(f, clean);
  if ((s = find(f, BRW_METRICS_OTHER)))
    return s;
  return add(f, BRW_METRICS_OTHER); /* the reserved slot */
}

static const series_t *series_get(const brw_metrics_t *m, brw_metric_id_t id,
                                  const char *label) {
  char clean[BRW_METRICS_LABEL_MAX + 1];
  if (!m || (int)id < 0 || id >= BRW_M__COUNT)
    return NULL;
  if (!defs[id].label)
    return &m->fam[id].series[0];
  sanitize(label, clean);
  return find(&m->fam[id], clean);
}

brw_metrics_t *brw_metrics_new(void) {
  brw_metrics_t *m = calloc(1, sizeof(*m));
  if (!m)
    return NULL;
  for (int i = 0; i < BRW_M__COUNT; i++) {
    const brw_metric_def_t *d = &defs[i];
    family_t *f = &m->fam[i];
    size_t cap = d->label ? BRW_METRICS_MAX_LABELS + 1 : 1;
    /* A row left out of the table, or a histogram with too many buckets,
     * is a programming error that test_metrics catches; refuse it here too
     * rather than render garbage. */
    if (!d->name || !d->help || d->nbuckets > BRW_METRICS_MAX_BUCKETS)
      goto err;
    f->series = calloc(cap, sizeof(*f->series));
    if (!f->series)
      goto err;
    if (!d->label)
      f->n = 1;
    for (const char *const *k = d->known; k && *k; k++)
      series_for(m, (brw_metric_id_t)i, *k);
  }
  brw_metrics_set(m, BRW_M_BUILD_INFO, BRW_VERSION, 1);
  return m;

err:
  brw_metrics_free(m);
  return NULL;
}

void brw_metrics_free(brw_metrics_t *m) {
  if (!m)
    return;
  for (int i = 0; i < BRW_M__COUNT; i++)
    free(m->fam[i].series);
  free(m);
}

void brw_metrics_inc(brw_metrics_t *m, brw_metric_id_t id, const char *label,
                     double v) {
  series_t *s;
  if ((int)id < 0 || id >= BRW_M__COUNT || isnan(v))
    return;
  if (defs[id].type == BRW_METRIC_HISTOGRAM)
    return;
  if (defs[id].type == BRW_METRIC_COUNTER && v < 0)
    return;
  if ((s = series_for(m, id, label)))
    s->value += v;
}

void brw_metrics_set(brw_metrics_t *m, brw_metric_id_t id, const char *label,
                     double v) {
  series_t *s;
  if ((int)id < 0 || id >= BRW_M__COUNT || defs[id].type != BRW_METRIC_GAUGE)
    return;
  if ((s = series_for(m, id, label)))
    s->value = v;
}

void brw_metrics_observe(brw_metrics_t *m, brw_metric_id_t id,
                         const char *label, double v) {
  series_t *s;
  const brw_metric_def_t *d;
  size_t b;
  if ((int)id < 0 || id >= BRW_M__COUNT || isnan(v))
    return;
  d = &defs[id];
  if (d->type != BRW_METRIC_HISTOGRAM || !(s = series_for(m, id, label)))
    return;
  /* Per-bucket counts; render makes them cumulative. An observation above
   * the last bound lands only in +Inf (count). */
  for (b = 0; b < d->nbuckets && v > d->buckets[b]; b++)
    ;
  if (b < d->nbuckets)
    s->buckets[b]++;
  s->count++;
  s->sum += v;
}

double brw_metrics_get(const brw_metrics_t *m, brw_metric_id_t id,
                       const char *label) {
  const series_t *s = series_get(m, id, label);
  if (!s)
    return 0;
  if (defs[id].type == BRW_METRIC_HISTOGRAM)
    return (double)s->count;
  return s->value;
}

double brw_metrics_get_sum(const brw_metrics_t *m, brw_metric_id_t id,
                           const char *label) {
  const series_t *s = series_get(m, id, label);
  if (!s || defs[id].type != BRW_METRIC_HISTOGRAM)
    return 0;
  return s->sum;
}

/* ---- rendering ---- */

typedef struct {
  char *p;
  size_t len, cap;
  int oom;
} buf_t;

static void buf_reserve(buf_t *b, size_t more) {
  size_t cap;
  char *p;
  if (b->oom || b->len + more + 1 <= b->cap)
    return;
  cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more + 1)
    cap *= 2;
  if (!(p = realloc(b->p, cap))) {
    b->oom = 1;
    return;
  }
  b->p = p;
  b->cap = cap;
}

static void buf_put(buf_t *b, const char *s, size_t n) {
  buf_reserve(b, n);
  if (b->oom)
    return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s) {
  buf_put(b, s, strlen(s));
}

/* Writes `s` with the given characters escaped: the label form escapes
 * backslash, double quote and newline; the HELP form only backslash and
 * newline (the format's two rules). */
static void buf_escaped(buf_t *b, const char *s, int quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *esc = NULL;
    if (*s == '\\')
      esc = "\\\\";
    else if (*s == '\n')
      esc = "\\n";
    else if (*s == '"' && quote)
      esc = "\\\"";
    if (!esc)
      continue;
    buf_put(b, run, (size_t)(s - run));
    buf_str(b, esc);
    run = s + 1;
  }
  buf_put(b, run, (size_t)(s - run));
}

/* A sample value as Prometheus parses it: NaN, +Inf, -Inf, integers without
 * an exponent up to 2^53, otherwise the shortest %g form that reads back
 * exactly. */
static const char *fmt_num(double v, char *out, size_t len) {
  if (isnan(v))
    return "NaN";
  if (isinf(v))
    return v > 0 ? "+Inf" : "-Inf";
  if (v == floor(v) && fabs(v) <= 9007199254740992.0) {
    snprintf(out, len, "%.0f", v == 0 ? 0.0 : v); /* no "-0" */
    return out;
  }
  snprintf(out, len, "%.15g", v);
  if (strtod(out, NULL) != v)
    snprintf(out, len, "%.17g", v);
  return out;
}

/* One sample line: name+suffix{label="value",le="bound"} value. */
static void sample(buf_t *b, const brw_metric_def_t *d, const char *suffix,
                   const series_t *s, const char *le, double v) {
  char num[64];
  int has_label = d->label != NULL;
  buf_str(b, d->name);
  buf_str(b, suffix);
  if (has_label || le) {
    buf_put(b, "{", 1);
    if (has_label) {
      buf_str(b, d->label);
      buf_put(b, "=\"", 2);
      buf_escaped(b, s->label, 1);
      buf_put(b, "\"", 1);
    }
    if (le) {
      if (has_label)
        buf_put(b, ",", 1);
      buf_str(b, "le=\"");
      buf_str(b, le);
      buf_put(b, "\"", 1);
    }
    buf_put(b, "}", 1);
  }
  buf_put(b, " ", 1);
  buf_str(b, fmt_num(v, num, sizeof(num)));
  buf_put(b, "\n", 1);
}

char *brw_metrics_render(const brw_metrics_t *m, size_t *len) {
  buf_t b = {0};
  char le[64];
  if (!m)
    return NULL;
  buf_reserve(&b, 16384);
  for (int i = 0; i < BRW_M__COUNT; i++) {
    const brw_metric_def_t *d = &defs[i];
    const family_t *f = &m->fam[i];
    buf_str(&b, "# HELP ");
    buf_str(&b, d->name);
    buf_put(&b, " ", 1);
    buf_escaped(&b, d->help, 0);
    buf_str(&b, "\n# TYPE ");
    buf_str(&b, d->name);
    buf_put(&b, " ", 1);
    buf_str(&b, brw_metrics_type_name(d->type));
    buf_put(&b, "\n", 1);
    for (size_t j = 0; j < f->n; j++) {
      const series_t *s = &f->series[j];
      uint64_t cum = 0;
      if (d->type != BRW_METRIC_HISTOGRAM) {
        sample(&b, d, "", s, NULL, s->value);
        continue;
      }
      for (size_t k = 0; k < d->nbuckets; k++) {
        cum += s->buckets[k];
        sample(&b, d, "_bucket", s, fmt_num(d->buckets[k], le, sizeof(le)),
               (double)cum);
      }
      sample(&b, d, "_bucket", s, "+Inf", (double)s->count);
      sample(&b, d, "_sum", s, NULL, s->sum);
      sample(&b, d, "_count", s, NULL, (double)s->count);
    }
  }
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  if (len)
    *len = b.len;
  return b.p;
}
