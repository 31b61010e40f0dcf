/* Fuzz target: BSG API response bodies (SPEC §2): brw_detail_parse with
 * brw_detail_clear, brw_detail_summary (which must agree with it),
 * brw_api_error_message and brw_bearer_parse, all fed the
 * same bytes, as the worker feeds them whatever a server or proxy sends.
 *
 * Beyond memory errors, each success is checked against the contract in
 * bsg.h: the normalised "campaign" object has the §4 shape, every time is
 * RFC 3339 UTC that reads back to the same instant, the price is a decimal
 * string with a dot, the totals and counters are non-negative and the
 * report built from it states rates in [0, 1] (SPEC §4); error texts are one line
 * of printable ASCII that fits the buffer; a token is header-safe. */
#include "brw/bsg.h"
#include "brw/error.h"
#include "brw/report.h"
#include "brw/timeutil.h"
#include "fuzz.h"

#include <string.h>

/* "yyyy-mm-ddThh:mm:ssZ" exactly, digits where digits belong. */
static int is_rfc3339_utc(const char *s) {
  static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
  if (strlen(s) != sizeof(shape) - 1)
    return 0;
  for (size_t i = 0; i < sizeof(shape) - 1; i++) {
    if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i])
      return 0;
  }
  return 1;
}

/* digits, optionally '.' and more digits. */
static int is_decimal(const char *s) {
  size_t n = strspn(s, "0123456789");
  if (n == 0)
    return 0;
  if (s[n] == '\0')
    return 1;
  if (s[n] != '.' || strspn(s + n + 1, "0123456789") == 0)
    return 0;
  return s[n + 1 + strspn(s + n + 1, "0123456789")] == '\0';
}

static int64_t floor_s(int64_t ms) {
  return (ms / 1000 - (ms % 1000 < 0)) * 1000;
}

/* A time member is null (and its ms 0) or RFC 3339 UTC text that parses
 * back to the instant kept in ms, to the second. */
static void check_time(const json_t *c, const char *key, int64_t ms) {
  const json_t *v = json_object_get(c, key);
  int64_t back;
  FUZZ_CHECK(v != NULL);
  if (json_is_null(v)) {
    FUZZ_CHECK(ms == 0);
    return;
  }
  FUZZ_CHECK(json_is_string(v));
  FUZZ_CHECK(is_rfc3339_utc(json_string_value(v)));
  FUZZ_CHECK(brw_time_parse(json_string_value(v), 0, &back) == 0);
  FUZZ_CHECK(back == floor_s(ms));
}

static void check_string_or_null(const json_t *c, const char *key) {
  const json_t *v = json_object_get(c, key);
  FUZZ_CHECK(v != NULL);
  FUZZ_CHECK(json_is_string(v) || json_is_null(v));
}

static void check_total(const json_t *c, const char *key, int64_t *n) {
  const json_t *v = json_object_get(c, key);
  FUZZ_CHECK(v != NULL);
  if (json_is_null(v)) {
    *n = -1;
  } else {
    FUZZ_CHECK(json_is_integer(v));
    *n = json_integer_value(v);
    FUZZ_CHECK(*n >= 0);
  }
}

static void check_detail(const brw_detail_t *d) {
  const json_t *c = d->campaign, *v;
  json_t *sv;
  const char *key;
  int64_t n;

  FUZZ_CHECK(d->id >= 1);
  FUZZ_CHECK(json_is_object(c));
  /* status_raw is the lower-cased value as sent; a known status is its
   * canonical name. */
  if (d->status != BRW_STATUS_UNKNOWN)
    FUZZ_CHECK(!strcmp(d->status_raw, brw_status_name(d->status)));
  FUZZ_CHECK(strlen(d->status_raw) < sizeof(d->status_raw));
  /* app.c logs status_raw through json_pack, which needs UTF-8. */
  v = json_string(d->status_raw);
  FUZZ_CHECK(v != NULL);
  json_decref((json_t *)v);
  v = json_object_get(c, "status");
  FUZZ_CHECK(json_is_string(v));
  FUZZ_CHECK(
      !strncmp(json_string_value(v), d->status_raw, strlen(d->status_raw)));

  check_string_or_null(c, "name");
  check_string_or_null(c, "sender");
  check_string_or_null(c, "type");
  check_string_or_null(c, "currency");
  check_time(c, "started_at", d->scheduled_start_ms);
  check_time(c, "actual_start_at", d->actual_start_ms);
  check_time(c, "created_at", d->created_ms);
  check_time(c, "finished_at", d->finished_ms);

  v = json_object_get(c, "statistics");
  FUZZ_CHECK(json_is_object(v));
  int64_t sum = 0;
  json_object_foreach((json_t *)v, key, sv) {
    FUZZ_CHECK(json_is_integer(sv));
    FUZZ_CHECK(json_integer_value(sv) >= 0);
    FUZZ_CHECK(!__builtin_add_overflow(sum, json_integer_value(sv), &sum));
  }
  /* The sums of brw_detail_t are disjoint parts of every counter. */
  FUZZ_CHECK(d->counted == sum);
  FUZZ_CHECK(d->delivered >= 0 && d->failed >= 0 && d->pending >= 0);
  FUZZ_CHECK(d->delivered <= sum - d->failed - d->pending);
  check_total(c, "total_messages", &n);
  FUZZ_CHECK(n == d->total_messages);
  check_total(c, "total_phones", &n);

  v = json_object_get(c, "total_price");
  FUZZ_CHECK(v != NULL);
  FUZZ_CHECK(json_is_null(v) ||
             (json_is_string(v) && is_decimal(json_string_value(v))));

  /* The report serialises it. */
  char *text = json_dumps(c, JSON_COMPACT);
  FUZZ_CHECK(text != NULL);
  free(text);

  /* And the report built from it is within its schema's ranges. */
  brw_report_input_t in = {0};
  size_t len = 0;
  in.campaign_id = d->id;
  in.account = "default";
  in.final = 1;
  in.outcome = "done";
  in.detail = d;
  in.events = 1;
  in.reported_ms = 1;
  text = brw_report_build(&in, &len);
  FUZZ_CHECK(text != NULL);
  json_t *r = json_loadb(text, len, 0, NULL);
  FUZZ_CHECK(r != NULL);
  json_t *m = json_object_get(r, "metrics");
  static const char *const rates[] = {"delivery_rate", "failure_rate"};
  for (int i = 0; i < 2; i++) {
    v = json_object_get(m, rates[i]);
    FUZZ_CHECK(json_is_null(v) || (json_is_number(v) &&
                                   json_number_value(v) >= 0 &&
                                   json_number_value(v) <= 1));
  }
  v = json_object_get(m, "pending");
  FUZZ_CHECK(json_is_integer(v) && json_integer_value(v) >= 0);
  v = json_object_get(m, "duration_seconds");
  FUZZ_CHECK(json_is_null(v) || json_integer_value(v) >= 0);
  json_decref(r);
  free(text);
}

static void check_message(const char *buf, size_t buflen) {
  FUZZ_CHECK(strlen(buf) < buflen);
  for (const char *p = buf; *p; p++)
    FUZZ_CHECK((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  /* UTC, an extreme fixed zone (the input's size picks the sign, so that a
   * corpus file always replays the same way) and a zone with DST. Made
   * once; they stay reachable until exit. */
  static brw_tz_t *plus14, *minus14, *eet;
  if (!eet) {
    plus14 = brw_tz_fixed(14 * 3600);
    minus14 = brw_tz_fixed(-14 * 3600);
    eet = fuzz_rule_zone("EET-2EEST,M3.5.0/3,M10.5.0/4", 7200);
    FUZZ_CHECK(plus14 && minus14);
  }
  const brw_tz_t *tzs[3] = {NULL, (size & 1) ? plus14 : minus14, eet};
  brw_detail_t d;
  char err[256], msg[512], tiny[1 + 16];
  char *tok;

  for (int i = 0; i < 3; i++) {
    brw_detail_t s;
    char serr[256];
    int rc = brw_detail_parse(body, size, tzs[i], &d, err, sizeof(err));
    int src = brw_detail_summary(body, size, tzs[i], &s, serr, sizeof(serr));
    FUZZ_CHECK(fuzz_is_one_line(err));
    /* The summary accepts what the full parse accepts, with the same
     * scheduling fields, and refuses with the same reason. */
    FUZZ_CHECK(src == rc);
    FUZZ_CHECK(s.campaign == NULL);
    if (rc == 0) {
      check_detail(&d);
      FUZZ_CHECK(s.id == d.id && s.status == d.status);
      FUZZ_CHECK(!strcmp(s.status_raw, d.status_raw));
      FUZZ_CHECK(s.scheduled_start_ms == d.scheduled_start_ms);
      FUZZ_CHECK(s.actual_start_ms == d.actual_start_ms);
      FUZZ_CHECK(s.total_messages == d.total_messages);
      FUZZ_CHECK(s.delivered == d.delivered && s.failed == d.failed &&
                 s.pending == d.pending && s.counted == d.counted);
      FUZZ_CHECK(s.stats_hash == d.stats_hash);
    } else {
      FUZZ_CHECK(!strcmp(serr, err));
      FUZZ_CHECK(rc == BRW_EBADRESP);
      FUZZ_CHECK(d.campaign == NULL);
      FUZZ_CHECK(err[0] != '\0');
    }
    brw_detail_clear(&d);
  }

  brw_api_error_message(body, size, msg, sizeof(msg));
  check_message(msg, sizeof(msg));
  /* A buffer of 1 .. 16 bytes: truncation anywhere, even mid-field. */
  brw_api_error_message(body, size, tiny, 1 + size % 16);
  check_message(tiny, 1 + size % 16);

  tok = brw_bearer_parse(body, size);
  if (tok) {
    size_t n = strlen(tok);
    FUZZ_CHECK(n >= 1 && n <= 16384);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK((unsigned char)tok[i] > 0x20 && (unsigned char)tok[i] < 0x7f);
    free(tok);
  }
  return 0;
}
