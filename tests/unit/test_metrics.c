/* Unit tests of the metrics registry (src/metrics.c): the table's naming
 * rules, and the rendered Prometheus text parsed back line by line (HELP and
 * TYPE before the samples, cumulative buckets, +Inf == _count, escaping,
 * the cap on label values). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brw/error.h"
#include "brw/metrics.h"

/* ---- a small parser of the exposition format ---- */

#define MAX_LABELS 2

typedef struct {
  char name[160];
  int nlabels;
  char lname[MAX_LABELS][64];
  char lval[MAX_LABELS][256]; /* unescaped */
  double value;
} sample_t;

/* Parses one sample line (no trailing newline). Returns 0 or -1. */
static int parse_sample(const char *p, sample_t *s) {
  size_t n;
  char *end;
  memset(s, 0, sizeof(*s));
  n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_:");
  if (n == 0 || n >= sizeof(s->name))
    return -1;
  memcpy(s->name, p, n);
  p += n;
  if (*p == '{') {
    p++;
    while (*p != '}') {
      size_t o = 0;
      if (s->nlabels == MAX_LABELS)
        return -1;
      n = strspn(p, "abcdefghijklmnopqrstuvwxyz_");
      if (n == 0 || n >= sizeof(s->lname[0]) || p[n] != '=' || p[n + 1] != '"')
        return -1;
      memcpy(s->lname[s->nlabels], p, n);
      p += n + 2;
      while (*p != '"') {
        char c = *p++;
        if (c == '\0' || c == '\n')
          return -1;
        if (c == '\\') {
          c = *p++;
          if (c == 'n')
            c = '\n';
          else if (c != '\\' && c != '"')
            return -1; /* only three escapes exist */
        }
        if (o + 1 >= sizeof(s->lval[0]))
          return -1;
        s->lval[s->nlabels][o++] = c;
      }
      p++;
      s->nlabels++;
      if (*p == ',')
        p++;
      else if (*p != '}')
        return -1;
    }
    p++;
  }
  if (*p++ != ' ')
    return -1;
  if (!strcmp(p, "+Inf"))
    s->value = INFINITY;
  else if (!strcmp(p, "-Inf"))
    s->value = -INFINITY;
  else if (!strcmp(p, "NaN"))
    s->value = NAN;
  else {
    s->value = strtod(p, &end);
    if (end == p || *end != '\0')
      return -1;
  }
  return 0;
}

static const char *label_of(const sample_t *s, const char *name) {
  for (int i = 0; i < s->nlabels; i++)
    if (!strcmp(s->lname[i], name))
      return s->lval[i];
  return NULL;
}

typedef struct {
  sample_t *samples;
  size_t n, cap;
} parsed_t;

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && !strcmp(s + a - b, suffix);
}

/* Parses a whole exposition, checking its structure as it goes: every
 * metric has HELP then TYPE (once), the TYPE matches the table, and every
 * sample belongs to the family whose TYPE came last (so HELP and TYPE come
 * before its samples). Fails the test on any violation. */
static void parse_all(const char *text, size_t len, parsed_t *out) {
  const char *p = text, *endp = text + len;
  char family[1024] = "", help_for[1024] = "";
  int seen[BRW_M__COUNT] = {0};
  brw_metric_type_t ftype = BRW_METRIC_COUNTER;
  memset(out, 0, sizeof(*out));
  assert_int_equal(strlen(text), len);
  assert_true(len > 0 && text[len - 1] == '\n');
  while (p < endp) {
    const char *nl = memchr(p, '\n', (size_t)(endp - p));
    char line[1024];
    assert_non_null(nl);
    assert_true((size_t)(nl - p) < sizeof(line));
    memcpy(line, p, (size_t)(nl - p));
    line[nl - p] = '\0';
    p = nl + 1;
    if (!strncmp(line, "# HELP ", 7)) {
      char *sp = strchr(line + 7, ' ');
      assert_non_null(sp);
      *sp = '\0';
      snprintf(help_for, sizeof(help_for), "%s", line + 7);
      assert_true(strlen(sp + 1) > 0);
    } else if (!strncmp(line, "# TYPE ", 7)) {
      char *sp = strchr(line + 7, ' ');
      int id;
      assert_non_null(sp);
      *sp = '\0';
      assert_string_equal(line + 7, help_for); /* HELP right before TYPE */
      id = brw_metrics_lookup(line + 7);
      assert_true(id >= 0);
      assert_int_equal(seen[id], 0);
      seen[id] = 1;
      ftype = brw_metrics_def(id)->type;
      assert_string_equal(sp + 1, brw_metrics_type_name(ftype));
      snprintf(family, sizeof(family), "%s", line + 7);
    } else {
      sample_t s;
      char base[160];
      assert_true(line[0] != '#');
      assert_int_equal(parse_sample(line, &s), 0);
      snprintf(base, sizeof(base), "%s", s.name);
      if (ftype == BRW_METRIC_HISTOGRAM) {
        const char *sfx[] = {"_bucket", "_sum", "_count"};
        int ok = 0;
        for (int i = 0; i < 3 && !ok; i++)
          if (ends_with(base, sfx[i])) {
            base[strlen(base) - strlen(sfx[i])] = '\0';
            ok = 1;
          }
        assert_true(ok);
      }
      assert_string_equal(base, family);
      if (out->n == out->cap) {
        out->cap = out->cap ? out->cap * 2 : 256;
        out->samples = realloc(out->samples, out->cap * sizeof(sample_t));
        assert_non_null(out->samples);
      }
      out->samples[out->n++] = s;
    }
  }
  for (int i = 0; i < BRW_M__COUNT; i++)
    assert_int_equal(seen[i], 1); /* every metric is declared */
}

/* Finds the sample `name` whose label `lname` (NULL: none) is `lval`, and
 * whose `le` is `le` (NULL: no le). */
static const sample_t *find_sample(const parsed_t *ps, const char *name,
                                   const char *lname, const char *lval,
                                   const char *le) {
  for (size_t i = 0; i < ps->n; i++) {
    const sample_t *s = &ps->samples[i];
    const char *v;
    if (strcmp(s->name, name))
      continue;
    if (lname && (!(v = label_of(s, lname)) || strcmp(v, lval)))
      continue;
    if (!lname && s->nlabels - (label_of(s, "le") ? 1 : 0) != 0)
      continue;
    if (le ? (!(v = label_of(s, "le")) || strcmp(v, le)) : !!label_of(s, "le"))
      continue;
    return s;
  }
  return NULL;
}

static size_t count_samples(const parsed_t *ps, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < ps->n; i++)
    n += !strcmp(ps->samples[i].name, name);
  return n;
}

static void render_parse(const brw_metrics_t *m, parsed_t *ps) {
  size_t len = 0;
  char *text = brw_metrics_render(m, &len);
  assert_non_null(text);
  parse_all(text, len, ps);
  free(text);
}

static char *render(const brw_metrics_t *m) {
  char *text = brw_metrics_render(m, NULL);
  assert_non_null(text);
  return text;
}

static const char *name_of(brw_metric_id_t id) {
  return brw_metrics_def(id)->name;
}

/* ---- the table ---- */

static void test_table_rules(void **state) {
  for (int i = 0; i < BRW_M__COUNT; i++) {
    const brw_metric_def_t *d = brw_metrics_def(i);
    const char *rest;
    assert_non_null(d);
    assert_non_null(d->name);
    assert_non_null(d->help);
    assert_true(strlen(d->help) > 10);
    assert_null(strchr(d->help, '\n'));
    assert_int_equal(
        strncmp(d->name, BRW_METRICS_PREFIX, strlen(BRW_METRICS_PREFIX)), 0);
    rest = d->name + strlen(BRW_METRICS_PREFIX);
    assert_true(strlen(rest) > 0);
    assert_int_equal(strspn(rest, "abcdefghijklmnopqrstuvwxyz0123456789_"),
                     strlen(rest));
    assert_true(rest[0] != '_' && !ends_with(rest, "_") && !strstr(rest, "__"));
    /* Counters, and only counters, end in _total. */
    assert_int_equal(ends_with(d->name, "_total"),
                     d->type == BRW_METRIC_COUNTER);
    for (int j = 0; j < i; j++)
      assert_string_not_equal(d->name, brw_metrics_def(j)->name);
    assert_int_equal(brw_metrics_lookup(d->name), i);
    if (d->type == BRW_METRIC_HISTOGRAM) {
      assert_true(d->nbuckets > 0 && d->nbuckets <= BRW_METRICS_MAX_BUCKETS);
      for (size_t k = 1; k < d->nbuckets; k++)
        assert_true(d->buckets[k] > d->buckets[k - 1]);
      assert_null(d->label); /* no labeled histogram yet; le is reserved */
    } else {
      assert_int_equal(d->nbuckets, 0);
    }
    if (d->label) {
      assert_int_equal(strspn(d->label, "abcdefghijklmnopqrstuvwxyz_"),
                       strlen(d->label));
      assert_string_not_equal(d->label, "le");
    } else {
      assert_null(d->known);
    }
  }
  assert_null(brw_metrics_def(BRW_M__COUNT));
  assert_null(brw_metrics_def((brw_metric_id_t)-1));
  assert_int_equal(brw_metrics_lookup("bsg_report_worker_nope"), BRW_ENOENT);
  assert_string_equal(brw_metrics_type_name(BRW_METRIC_COUNTER), "counter");
  assert_string_equal(brw_metrics_type_name(BRW_METRIC_GAUGE), "gauge");
  assert_string_equal(brw_metrics_type_name(BRW_METRIC_HISTOGRAM), "histogram");
}

/* The units and buckets the brief asked for. */
static void test_table_contents(void **state) {
  const brw_metric_def_t *d = brw_metrics_def(BRW_M_API_REQUEST_DURATION);
  assert_string_equal(d->name,
                      "bsg_report_worker_api_request_duration_seconds");
  assert_true(d->buckets[0] == 0.005 && d->buckets[d->nbuckets - 1] == 10);
  d = brw_metrics_def(BRW_M_REPORT_DELAY);
  assert_string_equal(d->name, "bsg_report_worker_report_delay_seconds");
  assert_true(d->buckets[0] == 0.01 && d->buckets[d->nbuckets - 1] == 60);
  d = brw_metrics_def(BRW_M_POLLS_PER_CAMPAIGN);
  assert_int_equal(d->nbuckets, 11);
  assert_true(d->buckets[0] == 1 && d->buckets[10] == 144);
  assert_string_equal(brw_metrics_def(BRW_M_DLQ_RECORDS)->label, "reason");
  assert_string_equal(brw_metrics_def(BRW_M_API_RETRIES)->label, "class");
  assert_string_equal(brw_metrics_def(BRW_M_REPORTS_PUBLISHED)->label,
                      "outcome");
  assert_string_equal(brw_metrics_def(BRW_M_EVENTS_CONSUMED)->label, "type");
  assert_string_equal(brw_metrics_def(BRW_M_BUILD_INFO)->label, "version");
  assert_int_equal(
      brw_metrics_lookup("bsg_report_worker_consumer_lag_messages"),
      BRW_M_CONSUMER_LAG);
}

/* ---- rendering ---- */

/* A new registry shows every unlabeled metric at zero and every known label
 * value at zero, plus build_info. */
static void test_render_fresh(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  parsed_t ps;
  const sample_t *s;
  assert_non_null(m);
  render_parse(m, &ps);
  for (int i = 0; i < BRW_M__COUNT; i++) {
    const brw_metric_def_t *d = brw_metrics_def(i);
    if (i == BRW_M_BUILD_INFO || i == BRW_M_LIBRDKAFKA_INFO ||
        i == BRW_M_LIBCURL_INFO || i == BRW_M_LIBUV_INFO ||
        i == BRW_M_JANSSON_INFO)
      continue; /* info gauges: their one value is set by their owner */
    if (d->type == BRW_METRIC_HISTOGRAM) {
      char name[200];
      snprintf(name, sizeof(name), "%s_count", d->name);
      s = find_sample(&ps, name, NULL, NULL, NULL);
      assert_non_null(s);
      assert_true(s->value == 0);
      snprintf(name, sizeof(name), "%s_bucket", d->name);
      assert_int_equal(count_samples(&ps, name), d->nbuckets + 1);
    } else if (!d->label) {
      s = find_sample(&ps, d->name, NULL, NULL, NULL);
      assert_non_null(s);
      assert_true(s->value == 0);
      assert_int_equal(count_samples(&ps, d->name), 1);
    } else {
      size_t nk = 0;
      assert_non_null(d->known);
      for (const char *const *k = d->known; *k; k++, nk++) {
        s = find_sample(&ps, d->name, d->label, *k, NULL);
        assert_non_null(s);
        assert_true(s->value == 0);
      }
      assert_int_equal(count_samples(&ps, d->name), nk);
    }
  }
  s = find_sample(&ps, name_of(BRW_M_DLQ_RECORDS), "reason", "not_found", NULL);
  assert_non_null(s);
  s = find_sample(&ps, name_of(BRW_M_API_REQUESTS), "class", "error", NULL);
  assert_non_null(s);
  s = find_sample(&ps, name_of(BRW_M_BUILD_INFO), "version", BRW_VERSION, NULL);
  assert_non_null(s);
  assert_true(s->value == 1);
  assert_true(brw_metrics_get(m, BRW_M_BUILD_INFO, BRW_VERSION) == 1);
  free(ps.samples);
  brw_metrics_free(m);
}

static void test_counter(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  parsed_t ps;
  const sample_t *s;
  assert_non_null(m);
  brw_metrics_inc(m, BRW_M_EVENTS_MERGED, NULL, 1);
  brw_metrics_inc(m, BRW_M_EVENTS_MERGED, NULL, 2);
  assert_true(brw_metrics_get(m, BRW_M_EVENTS_MERGED, NULL) == 3);
  /* Counters only increase: negative, NaN, set and observe are ignored. */
  brw_metrics_inc(m, BRW_M_EVENTS_MERGED, NULL, -1);
  brw_metrics_inc(m, BRW_M_EVENTS_MERGED, NULL, NAN);
  brw_metrics_set(m, BRW_M_EVENTS_MERGED, NULL, 0);
  brw_metrics_observe(m, BRW_M_EVENTS_MERGED, NULL, 5);
  assert_true(brw_metrics_get(m, BRW_M_EVENTS_MERGED, NULL) == 3);
  /* A label on an unlabeled metric is ignored. */
  brw_metrics_inc(m, BRW_M_EVENTS_MERGED, "x", 1);
  assert_true(brw_metrics_get(m, BRW_M_EVENTS_MERGED, "y") == 4);
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "not_found", 1);
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "auth_failed", 2);
  brw_metrics_inc(m, BRW_M_API_RETRIES, "timeout", 0.5);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "not_found") == 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "auth_failed") == 2);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "too_large") == 0);
  /* Out-of-range ids are ignored. */
  brw_metrics_inc(m, BRW_M__COUNT, NULL, 1);
  brw_metrics_inc(m, (brw_metric_id_t)-3, NULL, 1);
  assert_true(brw_metrics_get(m, BRW_M__COUNT, NULL) == 0);

  render_parse(m, &ps);
  s = find_sample(&ps, name_of(BRW_M_EVENTS_MERGED), NULL, NULL, NULL);
  assert_non_null(s);
  assert_true(s->value == 4);
  s = find_sample(&ps, name_of(BRW_M_DLQ_RECORDS), "reason", "auth_failed",
                  NULL);
  assert_non_null(s);
  assert_true(s->value == 2);
  s = find_sample(&ps, name_of(BRW_M_API_RETRIES), "class", "timeout", NULL);
  assert_non_null(s);
  assert_true(s->value == 0.5);
  free(ps.samples);
  brw_metrics_free(m);
}

/* Rendered values always equal get() for every series, as a sweep. */
static void test_render_matches_get(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  parsed_t ps;
  assert_non_null(m);
  for (int i = 0; i < BRW_M__COUNT; i++) {
    const brw_metric_def_t *d = brw_metrics_def(i);
    const char *label = d->known ? d->known[0] : "v1";
    if (d->type == BRW_METRIC_HISTOGRAM)
      brw_metrics_observe(m, i, NULL, 0.3 * (i + 1));
    else if (d->type == BRW_METRIC_GAUGE)
      brw_metrics_set(m, i, label, i + 0.25);
    else
      brw_metrics_inc(m, i, label, i + 1);
  }
  render_parse(m, &ps);
  for (size_t k = 0; k < ps.n; k++) {
    const sample_t *s = &ps.samples[k];
    char base[160];
    int id;
    snprintf(base, sizeof(base), "%s", s->name);
    if ((id = brw_metrics_lookup(base)) < 0) {
      if (ends_with(base, "_count")) {
        base[strlen(base) - 6] = '\0';
        id = brw_metrics_lookup(base);
        assert_true(id >= 0);
        assert_true(s->value == brw_metrics_get(m, id, NULL));
      } else if (ends_with(base, "_sum")) {
        base[strlen(base) - 4] = '\0';
        id = brw_metrics_lookup(base);
        assert_true(id >= 0);
        assert_true(fabs(s->value - brw_metrics_get_sum(m, id, NULL)) < 1e-12);
      }
      continue;
    }
    {
      const brw_metric_def_t *d = brw_metrics_def(id);
      const char *lv = d->label ? label_of(s, d->label) : NULL;
      assert_true(!d->label || lv);
      assert_true(s->value == brw_metrics_get(m, id, lv));
    }
  }
  free(ps.samples);
  brw_metrics_free(m);
}

static void test_gauge(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  char *text;
  assert_non_null(m);
  brw_metrics_set(m, BRW_M_CAMPAIGNS_TRACKED, NULL, 7);
  brw_metrics_inc(m, BRW_M_CAMPAIGNS_TRACKED, NULL, -2);
  assert_true(brw_metrics_get(m, BRW_M_CAMPAIGNS_TRACKED, NULL) == 5);
  brw_metrics_set(m, BRW_M_CONSUMER_LAG, NULL, -1.5);
  brw_metrics_set(m, BRW_M_PRODUCER_QUEUE_RECORDS, NULL, 0.1);
  brw_metrics_set(m, BRW_M_PARTITIONS_ASSIGNED, NULL, 1e20);
  brw_metrics_set(m, BRW_M_PARTITIONS_PAUSED, NULL, INFINITY);
  brw_metrics_set(m, BRW_M_ACCOUNTS_REJECTED, NULL, NAN);
  brw_metrics_set(m, BRW_M_KAFKA_BROKERS_UP, NULL, -0.0);
  /* observe on a gauge is ignored */
  brw_metrics_observe(m, BRW_M_CAMPAIGNS_TRACKED, NULL, 100);
  assert_true(brw_metrics_get(m, BRW_M_CAMPAIGNS_TRACKED, NULL) == 5);
  text = render(m);
  assert_non_null(strstr(text, "\nbsg_report_worker_campaigns_tracked 5\n"));
  assert_non_null(
      strstr(text, "\nbsg_report_worker_consumer_lag_messages -1.5\n"));
  assert_non_null(
      strstr(text, "\nbsg_report_worker_producer_queue_records 0.1\n"));
  assert_non_null(
      strstr(text, "\nbsg_report_worker_partitions_assigned 1e+20\n"));
  assert_non_null(strstr(text, "\nbsg_report_worker_partitions_paused +Inf\n"));
  assert_non_null(strstr(text, "\nbsg_report_worker_accounts_rejected NaN\n"));
  assert_non_null(strstr(text, "\nbsg_report_worker_kafka_brokers_up 0\n"));
  assert_non_null(
      strstr(text, "# TYPE bsg_report_worker_campaigns_tracked gauge\n"));
  assert_non_null(
      strstr(text, "# TYPE bsg_report_worker_commits_total counter\n"));
  free(text);
  brw_metrics_free(m);
}

static void test_histogram(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  const brw_metric_def_t *d = brw_metrics_def(BRW_M_POLLS_PER_CAMPAIGN);
  const double obs[] = {1, 1, 2, 4, 13, 14, 144, 145, 1000, 0};
  double sum = 0;
  parsed_t ps;
  const sample_t *s;
  char name[200], le[32];
  double prev = -1;
  assert_non_null(m);
  for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++) {
    brw_metrics_observe(m, BRW_M_POLLS_PER_CAMPAIGN, NULL, obs[i]);
    sum += obs[i];
  }
  brw_metrics_observe(m, BRW_M_POLLS_PER_CAMPAIGN, NULL, NAN); /* ignored */
  brw_metrics_inc(m, BRW_M_POLLS_PER_CAMPAIGN, NULL, 1);       /* ignored */
  brw_metrics_set(m, BRW_M_POLLS_PER_CAMPAIGN, NULL, 1);       /* ignored */
  assert_true(brw_metrics_get(m, BRW_M_POLLS_PER_CAMPAIGN, NULL) == 10);
  assert_true(brw_metrics_get_sum(m, BRW_M_POLLS_PER_CAMPAIGN, NULL) == sum);
  assert_true(brw_metrics_get_sum(m, BRW_M_EVENTS_MERGED, NULL) == 0);

  brw_metrics_observe(m, BRW_M_API_REQUEST_DURATION, NULL, 0.005);
  brw_metrics_observe(m, BRW_M_API_REQUEST_DURATION, NULL, 0.0051);
  brw_metrics_observe(m, BRW_M_REPORT_DELAY, NULL, 61);

  render_parse(m, &ps);
  snprintf(name, sizeof(name), "%s_bucket", d->name);
  for (size_t k = 0; k < d->nbuckets; k++) {
    /* Bounds are inclusive: cumulative count of observations <= bound. */
    double want = 0;
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
      want += obs[i] <= d->buckets[k];
    snprintf(le, sizeof(le), "%g", d->buckets[k]);
    s = find_sample(&ps, name, NULL, NULL, le);
    assert_non_null(s);
    assert_true(s->value == want);
    assert_true(s->value >= prev); /* cumulative */
    prev = s->value;
  }
  s = find_sample(&ps, name, NULL, NULL, "+Inf");
  assert_non_null(s);
  assert_true(s->value == 10);
  assert_true(s->value >= prev);
  snprintf(name, sizeof(name), "%s_count", d->name);
  assert_true(find_sample(&ps, name, NULL, NULL, NULL)->value == 10);
  snprintf(name, sizeof(name), "%s_sum", d->name);
  assert_true(find_sample(&ps, name, NULL, NULL, NULL)->value == sum);

  /* le values are printed as numbers Prometheus reads back exactly. */
  s = find_sample(&ps, "bsg_report_worker_api_request_duration_seconds_bucket",
                  NULL, NULL, "0.005");
  assert_non_null(s);
  assert_true(s->value == 1);
  s = find_sample(&ps, "bsg_report_worker_api_request_duration_seconds_bucket",
                  NULL, NULL, "0.01");
  assert_non_null(s);
  assert_true(s->value == 2);
  /* Above the last bound: only in +Inf. */
  s = find_sample(&ps, "bsg_report_worker_report_delay_seconds_bucket", NULL,
                  NULL, "60");
  assert_non_null(s);
  assert_true(s->value == 0);
  s = find_sample(&ps, "bsg_report_worker_report_delay_seconds_bucket", NULL,
                  NULL, "+Inf");
  assert_true(s->value == 1);

  /* Every histogram in the text: buckets ascend in le, are cumulative, and
   * +Inf equals _count. */
  for (int i = 0; i < BRW_M__COUNT; i++) {
    const brw_metric_def_t *h = brw_metrics_def(i);
    double last = -1, last_le = -INFINITY;
    const sample_t *inf = NULL, *count;
    if (h->type != BRW_METRIC_HISTOGRAM)
      continue;
    snprintf(name, sizeof(name), "%s_bucket", h->name);
    for (size_t k = 0; k < ps.n; k++) {
      const char *lev;
      double lv;
      if (strcmp(ps.samples[k].name, name))
        continue;
      lev = label_of(&ps.samples[k], "le");
      assert_non_null(lev);
      lv = !strcmp(lev, "+Inf") ? INFINITY : strtod(lev, NULL);
      assert_true(lv > last_le);
      assert_true(ps.samples[k].value >= last);
      last_le = lv;
      last = ps.samples[k].value;
      if (isinf(lv))
        inf = &ps.samples[k];
    }
    assert_non_null(inf);
    snprintf(name, sizeof(name), "%s_count", h->name);
    count = find_sample(&ps, name, NULL, NULL, NULL);
    assert_non_null(count);
    assert_true(inf->value == count->value);
  }
  free(ps.samples);
  brw_metrics_free(m);
}

/* ---- labels ---- */

static void test_label_escaping(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  const char *raw = "a\"b\\c\nd";
  parsed_t ps;
  const sample_t *s;
  char *text;
  assert_non_null(m);
  brw_metrics_inc(m, BRW_M_API_RETRIES, raw, 3);
  assert_true(brw_metrics_get(m, BRW_M_API_RETRIES, raw) == 3);
  text = render(m);
  assert_non_null(strstr(
      text,
      "bsg_report_worker_api_retries_total{class=\"a\\\"b\\\\c\\nd\"} 3\n"));
  free(text);
  render_parse(m, &ps); /* and it parses back to the raw value */
  s = find_sample(&ps, name_of(BRW_M_API_RETRIES), "class", raw, NULL);
  assert_non_null(s);
  assert_true(s->value == 3);
  free(ps.samples);
  brw_metrics_free(m);
}

static void test_label_sanitized(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  char longv[200], want[BRW_METRICS_LABEL_MAX + 1];
  char utf[BRW_METRICS_LABEL_MAX + 8];
  parsed_t ps;
  assert_non_null(m);
  /* Control characters other than newline, and invalid UTF-8, become '_'. */
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "a\tb\rc\x7f", 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "a_b_c_") == 1);
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "x\xff\xc3(y", 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "x__(y") == 1);
  /* Valid UTF-8 is kept. */
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "caf\xc3\xa9", 2);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "caf\xc3\xa9") == 2);
  /* Long values are cut at the cap; the cut form is the same series. */
  memset(longv, 'x', sizeof(longv) - 1);
  longv[sizeof(longv) - 1] = '\0';
  memset(want, 'x', BRW_METRICS_LABEL_MAX);
  want[BRW_METRICS_LABEL_MAX] = '\0';
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, longv, 1);
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, want, 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, want) == 2);
  /* A multibyte character is never split by the cut. */
  memset(utf, 'y', BRW_METRICS_LABEL_MAX - 1);
  memcpy(utf + BRW_METRICS_LABEL_MAX - 1, "\xc3\xa9", 3);
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, utf, 1);
  utf[BRW_METRICS_LABEL_MAX - 1] = '\0';
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, utf) == 1);
  /* NULL and "" count as "other". */
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, NULL, 1);
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "", 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, BRW_METRICS_OTHER) == 2);
  render_parse(m, &ps);
  for (size_t i = 0; i < ps.n; i++) {
    const char *v = label_of(&ps.samples[i], "reason");
    if (v)
      assert_true(strlen(v) <= BRW_METRICS_LABEL_MAX);
  }
  free(ps.samples);
  brw_metrics_free(m);
}

/* Past BRW_METRICS_MAX_LABELS distinct values, the rest goes to "other". */
static void test_label_overflow(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  const brw_metric_def_t *d = brw_metrics_def(BRW_M_DLQ_RECORDS);
  size_t known = 0, extra;
  parsed_t ps;
  char v[32];
  assert_non_null(m);
  for (const char *const *k = d->known; *k; k++)
    known++;
  extra = BRW_METRICS_MAX_LABELS - known;
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 100; i++) {
      snprintf(v, sizeof(v), "value%d", i);
      brw_metrics_inc(m, BRW_M_DLQ_RECORDS, v, 1);
    }
  /* The first `extra` values have their own series, the others share. */
  snprintf(v, sizeof(v), "value%d", (int)extra - 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, v) == 2);
  snprintf(v, sizeof(v), "value%d", (int)extra);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, v) == 0);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, BRW_METRICS_OTHER) ==
              2 * (100 - (double)extra));
  /* Known values still count on their own. */
  brw_metrics_inc(m, BRW_M_DLQ_RECORDS, "not_found", 1);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "not_found") == 1);
  render_parse(m, &ps);
  assert_int_equal(count_samples(&ps, d->name), BRW_METRICS_MAX_LABELS + 1);
  assert_non_null(find_sample(&ps, d->name, "reason", BRW_METRICS_OTHER, NULL));
  free(ps.samples);
  /* Another metric's labels are unaffected. */
  brw_metrics_inc(m, BRW_M_API_RETRIES, "value99", 1);
  assert_true(brw_metrics_get(m, BRW_M_API_RETRIES, "value99") == 1);
  brw_metrics_free(m);
}

/* get() never creates a series. */
static void test_get_creates_nothing(void **state) {
  brw_metrics_t *m = brw_metrics_new();
  char *before, *after;
  assert_non_null(m);
  before = render(m);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, "never") == 0);
  assert_true(brw_metrics_get(m, BRW_M_DLQ_RECORDS, NULL) == 0);
  assert_true(brw_metrics_get(NULL, BRW_M_DLQ_RECORDS, NULL) == 0);
  after = render(m);
  assert_string_equal(before, after);
  free(before);
  free(after);
  brw_metrics_inc(NULL, BRW_M_EVENTS_MERGED, NULL, 1); /* no crash */
  assert_null(brw_metrics_render(NULL, NULL));
  brw_metrics_free(m);
  brw_metrics_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_table_rules),
      cmocka_unit_test(test_table_contents),
      cmocka_unit_test(test_render_fresh),
      cmocka_unit_test(test_counter),
      cmocka_unit_test(test_render_matches_get),
      cmocka_unit_test(test_gauge),
      cmocka_unit_test(test_histogram),
      cmocka_unit_test(test_label_escaping),
      cmocka_unit_test(test_label_sanitized),
      cmocka_unit_test(test_label_overflow),
      cmocka_unit_test(test_get_creates_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
