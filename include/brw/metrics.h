/* Prometheus metrics of the worker: one static table (src/metrics.c) defines
 * every metric, and a registry holds their values and renders them in the
 * text exposition format 0.0.4 for GET /metrics (src/admin.c).
 *
 * Pure: no I/O, no clock, no logging. NOT thread-safe, by design: the
 * registry is read and written on the loop thread only (the admin server
 * runs its handlers on the loop thread too), so no call takes a lock.
 *
 * Labels: a metric has at most one label. Its values form a small set per
 * metric, created on first use; the values the table lists as known (DLQ
 * reasons, status classes, ...) are created up front so that dashboards see
 * zeros. A value is sanitized (invalid UTF-8 and control characters other
 * than newline become '_') and cut to BRW_METRICS_LABEL_MAX bytes. Past
 * BRW_METRICS_MAX_LABELS distinct values, further values are counted under
 * "other", so a stray value (an account name, say) cannot grow the registry
 * without bound. After brw_metrics_new no call allocates except render. */
#ifndef BRW_METRICS_H
#define BRW_METRICS_H

#include <stddef.h>

/* Every name starts with this. */
#define BRW_METRICS_PREFIX "bsg_report_worker_"

/* Distinct label values per metric (known values included), and the cap on
 * one value's length in bytes. */
#define BRW_METRICS_MAX_LABELS 64
#define BRW_METRICS_LABEL_MAX 64
/* The label value that takes what does not fit (and NULL or ""). */
#define BRW_METRICS_OTHER "other"
/* Bucket bounds per histogram, at most (+Inf is implicit). */
#define BRW_METRICS_MAX_BUCKETS 16

typedef enum {
  BRW_METRIC_COUNTER = 0,
  BRW_METRIC_GAUGE = 1,
  BRW_METRIC_HISTOGRAM = 2
} brw_metric_type_t;

/* One id per row of the table in src/metrics.c (same order); names and help
 * texts are there. */
typedef enum {
  BRW_M_EVENTS_CONSUMED = 0,     /* counter {type} */
  BRW_M_EVENTS_INVALID,          /* counter {reason} */
  BRW_M_EVENTS_MERGED,           /* counter */
  BRW_M_EVENTS_SKIPPED,          /* counter */
  BRW_M_EVENTS_LATE,             /* counter */
  BRW_M_CAMPAIGNS_TRACKED,       /* gauge */
  BRW_M_API_REQUESTS,            /* counter {class} */
  BRW_M_API_REQUEST_DURATION,    /* histogram, seconds */
  BRW_M_API_LOGINS,              /* counter */
  BRW_M_API_LOGIN_FAILURES,      /* counter */
  BRW_M_API_REFRESHES,           /* counter */
  BRW_M_API_RETRIES,             /* counter {class} */
  BRW_M_CAMPAIGN_STATUS_UNKNOWN, /* counter */
  BRW_M_REPORTS_PUBLISHED,       /* counter {outcome} */
  BRW_M_PROGRESS_REPORTS,        /* counter */
  BRW_M_DLQ_RECORDS,             /* counter {reason} */
  BRW_M_POLLS_PER_CAMPAIGN,      /* histogram */
  BRW_M_POLLS_SCHEDULED,         /* counter {basis} */
  BRW_M_REPORT_DELAY,            /* histogram, seconds */
  BRW_M_PARTITIONS_ASSIGNED,     /* gauge */
  BRW_M_PARTITIONS_PAUSED,       /* gauge */
  BRW_M_CONSUMPTION_PAUSED,      /* gauge 0/1 */
  BRW_M_COMMITS,                 /* counter */
  BRW_M_COMMIT_FAILURES,         /* counter */
  BRW_M_PRODUCER_QUEUE_RECORDS,  /* gauge */
  BRW_M_CONSUMER_LAG,            /* gauge */
  BRW_M_KAFKA_BROKERS_UP,        /* gauge 0/1 */
  BRW_M_ACCOUNTS_REJECTED,       /* gauge */
  BRW_M_BUILD_INFO,              /* gauge {version}, always 1 */
  BRW_M_BLOCKED,                 /* gauge 0/1 {reason} (src/health.c) */
  BRW_M_BLOCKED_TOTAL,           /* counter {reason} */
  BRW_M_EVENT_LOOP_LAG,          /* gauge, seconds */
  BRW_M_LOG_SUPPRESSED,          /* counter: lines held back by limits */
  BRW_M_RECORDS_REFUSED,         /* counter {kind}: report, progress, dlq */
  BRW_M_DLQ_TRUNCATED,           /* counter */
  BRW_M_DLQ_DROPPED,             /* counter */
  BRW_M_API_AUTH_FAILURES,       /* counter {reason} (src/api.c) */
  BRW_M_REVOKE_SECONDS,          /* histogram, seconds */
  BRW_M_PARTITIONS_MOVED,        /* counter {direction} */
  BRW_M_API_CONNECTIONS,         /* counter {transport} (src/api.c) */
  BRW_M_API_RESPONSES_BY_VERSION, /* counter {version} (src/api.c) */
  BRW_M_TRANSACTIONS,            /* counter {outcome} (src/app_txn.c) */
  BRW_M_API_CALLS,               /* counter {endpoint} (src/api.c) */
  BRW_M_SWEEP_PAGES,             /* counter {result} (src/app_sweep.c) */
  BRW_M_SWEEP_PAGE_CAMPAIGNS,    /* histogram (src/app_sweep.c) */
  BRW_M_SWEEP_FALLBACKS,         /* counter {reason} (src/app_sweep.c) */
  BRW_M_BACKLOG_EVENTS,          /* gauge (src/app_health.c) */
  BRW_M_CAMPAIGNS_DUE,           /* gauge (src/app_health.c) */
  BRW_M_BACKLOG,                 /* gauge: the two above (src/app_health.c) */
  /* One info gauge per library, {version}, always 1 (the registry has one
   * label per metric, so build_info cannot carry them; src/app.c sets them
   * from include/brw/versions.h). */
  BRW_M_LIBRDKAFKA_INFO,
  BRW_M_LIBCURL_INFO,
  BRW_M_LIBUV_INFO,
  BRW_M_JANSSON_INFO,
  BRW_M__COUNT
} brw_metric_id_t;

/* A row of the table. Everything is static. */
typedef struct {
  const char *name; /* full name, with BRW_METRICS_PREFIX */
  brw_metric_type_t type;
  const char *help;         /* one line */
  const char *label;        /* the label's name, or NULL */
  const char *const *known; /* label values created up front, NULL-ended;
                               NULL when none */
  const double *buckets;    /* histograms: upper bounds, ascending */
  size_t nbuckets;
} brw_metric_def_t;

typedef struct brw_metrics_s brw_metrics_t;

/* The table row of `id`, or NULL when id is out of range. Iterate with
 * `for (i = 0; i < BRW_M__COUNT; i++)`. */
const brw_metric_def_t *brw_metrics_def(brw_metric_id_t id);

/* The id whose full name is `name`, or BRW_ENOENT. */
int brw_metrics_lookup(const char *name);

/* "counter", "gauge" or "histogram" (static). */
const char *brw_metrics_type_name(brw_metric_type_t type);

/* Creates a registry with every metric at zero, the known label values
 * created, and build_info{version=BRW_VERSION} set to 1. Returns NULL when
 * out of memory. Free with brw_metrics_free (NULL is fine). */
brw_metrics_t *brw_metrics_new(void);
void brw_metrics_free(brw_metrics_t *m);

/* Adds `v` to a counter or a gauge. `label` is the label's value (NULL for
 * an unlabeled metric; ignored there). Counters only increase: a negative or
 * NaN `v` is ignored for them. A gauge goes down with a negative `v`. A call
 * of the wrong type (inc on a histogram) does nothing. */
void brw_metrics_inc(brw_metrics_t *m, brw_metric_id_t id, const char *label,
                     double v);

/* Sets a gauge. Does nothing for counters and histograms. */
void brw_metrics_set(brw_metrics_t *m, brw_metric_id_t id, const char *label,
                     double v);

/* Records one observation in a histogram (NaN is ignored). Does nothing for
 * counters and gauges. */
void brw_metrics_observe(brw_metrics_t *m, brw_metric_id_t id,
                         const char *label, double v);

/* The current value of a counter or gauge, or a histogram's number of
 * observations; 0 when that label value was never used. Creates nothing.
 * `label` is looked up as inc would store it (sanitized, cut) but without
 * the fallback to "other". */
double brw_metrics_get(const brw_metrics_t *m, brw_metric_id_t id,
                       const char *label);

/* A histogram's sum of observations (0 for other types). */
double brw_metrics_get_sum(const brw_metrics_t *m, brw_metric_id_t id,
                           const char *label);

/* Renders every metric in the Prometheus text exposition format 0.0.4:
 * "# HELP" and "# TYPE" lines, then the samples (histograms as cumulative
 * _bucket{le=...} lines ending with le="+Inf", then _sum and _count). Label
 * values are escaped (backslash, double quote, newline). Returns a malloc'ed
 * NUL-terminated text the caller frees, its length in *len (may be NULL), or
 * NULL when out of memory. */
char *brw_metrics_render(const brw_metrics_t *m, size_t *len);

#endif
