/* Configuration (SPEC §7): one table of keys, four sources.
 *
 * Everything about a key lives in one row of `keys[]` below: its name, type,
 * default (as text), one line of documentation, and where it is stored in
 * brw_config_t. Defaults are applied by parsing the default text through the
 * same setter a config file uses, so the documented default and the real one
 * cannot drift apart. The environment variable name, --help, and
 * brw_config_print are all derived from the same rows.
 *
 * Two families of keys are not rows of the table:
 *   - accounts.<name>.key and accounts.<name>.key_file (api.key and
 *     api.key_file are the account "default");
 *   - kafka.<property>, kafka.consumer.<property>, kafka.producer.<property>:
 *     librdkafka pass-through, checked against librdkafka's own property
 *     table when set so that a typo is reported with its file:line.
 *
 * Environment: a table key `a.b_c` is read from BRW_A_B_C (api.key also from
 * BSG_API_KEY, which BRW_API_KEY beats). Accounts come from
 * BRW_ACCOUNTS_<NAME>_KEY[_FILE] (the name is lower-cased) and librdkafka
 * properties from BRW_KAFKA_[CONSUMER_|PRODUCER_]<PROPERTY>, where `_` stands
 * for `.` and `__` for `_`. Variables set to the empty string are ignored, so
 * that `FOO=${FOO:-}` in a compose file means "not set". Other BRW_ variables
 * are ignored.
 *
 * Secrets (API keys, kafka.* values of kafka_name_is_secret) are never
 * echoed in an error message and are printed as "[REDACTED]", and so is the
 * userinfo of a URL; every string is wiped before it is freed. Plain
 * http:// to a host other than loopback is refused unless
 * api.allow_insecure (brw_config_validate). brw_config_pin_secrets hands
 * the secrets to the log redactor; brw_config_scrub_env wipes the
 * environment variables that held them.
 */
#include "brw/config.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/types.h>
#include <unistd.h>

#include "brw/error.h"
#include "brw/event.h"
#include "brw/kafka.h"
#include "brw/log.h"
#include "brw/timeutil.h"
#include "brw/ratelimit.h"

#define KEY_MAX 256       /* longest key name accepted anywhere */
#define WHY_MAX 512       /* one error line */
#define KEY_FILE_MAX 4096 /* largest API key file */
#define ACCOUNT_NAME_MAX 64
#define REDACTED "[REDACTED]"

#define DUR_MAX_MS (365.0 * 86400000.0)       /* every duration: at most 365d */
#define SIZE_MAX_B (1024.0 * 1024.0 * 1024.0) /* every size: at most 1GiB */

typedef enum {
  KT_STRING,
  KT_SECRET,
  KT_DURATION,
  KT_SIZE,
  KT_RATE,
  KT_BOOL,
  KT_INT,
  KT_FLOAT,
  KT_ENUM
} key_type_t;

static const char *const type_names[] = {"string", "secret", "duration",
                                         "size",   "rate",   "bool",
                                         "int",    "float",  "enum"};

/* Flags of a table row. */
#define KF_OPTIONAL 0x1u   /* an empty value unsets the key (stores NULL) */
#define KF_EMPTY_OK 0x2u   /* an empty value is stored as "" */
#define KF_THEN_KAFKA 0x4u /* print the kafka.* pass-through after this row */
#define KF_THEN_ACCTS 0x8u /* print the accounts.* keys after this row */

#define NO_FIELD ((size_t)-1)

struct config_key;

/* A special setter: `value` is trimmed; writes "key: reason" into why. */
typedef int (*key_setter_t)(brw_config_t *cfg, const struct config_key *k,
                            const char *value, char *why, size_t whylen);

/* A check of a string value: returns 0, or -1 with the reason (without the
 * key) in why. */
typedef int (*key_check_t)(const char *value, char *why, size_t whylen);

typedef struct config_key {
  const char *name;
  key_type_t type;
  const char *def;     /* default as text; NULL: none */
  const char *def_doc; /* what --help shows when the default is computed */
  const char *group;
  const char *doc;
  size_t off;                 /* field in brw_config_t, or NO_FIELD */
  double min, max;            /* bounds: ms, bytes, or the number itself */
  const char *const *choices; /* KT_ENUM: NULL-terminated */
  key_check_t check;          /* KT_STRING: extra syntax check */
  key_setter_t set;           /* NULL: the generic setter of the type */
  const char *env_alias;      /* a second variable, of lower precedence */
  unsigned flags;
} config_key_t;

static int set_api_key(brw_config_t *cfg, const config_key_t *k,
                       const char *value, char *why, size_t whylen);
static int set_api_key_file(brw_config_t *cfg, const config_key_t *k,
                            const char *value, char *why, size_t whylen);
static int set_api_url(brw_config_t *cfg, const config_key_t *k,
                       const char *value, char *why, size_t whylen);
static int set_api_timezone(brw_config_t *cfg, const config_key_t *k,
                            const char *value, char *why, size_t whylen);
static int check_url(const char *value, char *why, size_t whylen);
static int check_listen(const char *value, char *why, size_t whylen);
static int check_proxy_url(const char *value, char *why, size_t whylen);
static int check_timezone(const char *value, char *why, size_t whylen);
static int check_ce_source(const char *value, char *why, size_t whylen);
static int check_sent_types(const char *value, char *why, size_t whylen);
static int check_finished_types(const char *value, char *why, size_t whylen);

static const char *const log_levels[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const log_formats[] = {"json", "text", NULL};
static const char *const http_versions[] = {"auto", "1.1", "2", NULL};
static const char *const guarantees[] = {"at_least_once", "exactly_once",
                                         NULL};
static const char *const strategies[] = {"detail", "sweep", "auto", NULL};
static const char *const ce_modes[] = {"binary", "off", NULL};

#define G_KAFKA "Kafka"
#define G_API "BSG API"
#define G_HTTP "HTTP client"
#define G_POLL "Scheduling"
#define G_LIMITS "Limits and behaviour"
#define G_OPS "Operation"

#define F(field) offsetof(brw_config_t, field)

/* The table. Its order is the order of --help, brw_config_print, the example
 * config and docs/configuration.md. Doc lines stay under 70 columns so that
 * --help fits in 80. */
static const config_key_t keys[] = {
    {.name = "brokers",
     .type = KT_STRING,
     .def = "127.0.0.1:9092",
     .group = G_KAFKA,
     .off = F(brokers),
     .doc = "Kafka bootstrap servers, comma-separated host:port list."},
    {.name = "group.id",
     .type = KT_STRING,
     .def = "bsg-report-worker",
     .group = G_KAFKA,
     .off = F(group_id),
     .doc = "Consumer group; instances sharing it split the partitions."},
    {.name = "topic.input",
     .type = KT_STRING,
     .def = "bsg.campaign.events",
     .group = G_KAFKA,
     .off = F(topic_input),
     .doc = "Topic of campaign events to consume."},
    {.name = "topic.output",
     .type = KT_STRING,
     .def = "bsg.campaign.reports",
     .group = G_KAFKA,
     .off = F(topic_output),
     .doc = "Topic the campaign reports are published to."},
    {.name = "topic.dlq",
     .type = KT_STRING,
     .def = "bsg.campaign.events.dlq",
     .group = G_KAFKA,
     .off = F(topic_dlq),
     .doc = "Dead-letter topic for events that cannot be processed."},
    {.name = "worker.instance",
     .type = KT_STRING,
     .def = NULL,
     .def_doc = "<hostname>-<pid>",
     .group = G_KAFKA,
     .off = F(instance_id),
     .doc = "Name of this instance, written into reports and logs."},
    {.name = "kafka.commit_interval",
     .type = KT_DURATION,
     .def = "1s",
     .group = G_KAFKA,
     .off = F(commit_interval_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .flags = KF_THEN_KAFKA,
     .doc = "How often completed input offsets are committed."},
    {.name = "delivery.guarantee",
     .type = KT_ENUM,
     .def = "at_least_once",
     .group = G_KAFKA,
     .off = F(delivery_guarantee),
     .choices = guarantees,
     .doc = "at_least_once, or exactly_once (Kafka transactions)."},

    {.name = "api.url",
     .type = KT_STRING,
     .def = "https://one-api.bsg.world",
     .group = G_API,
     .off = F(api_url),
     .check = check_url,
     .set = set_api_url,
     .doc = "Base URL of the BSG One API; http:// only to loopback."},
    {.name = "api.allow_insecure",
     .type = KT_BOOL,
     .def = "false",
     .group = G_API,
     .off = F(api_allow_insecure),
     .doc = "Allow plain http:// to a host other than loopback."},
    {.name = "api.key",
     .type = KT_SECRET,
     .group = G_API,
     .off = NO_FIELD,
     .set = set_api_key,
     .env_alias = "BSG_API_KEY",
     .doc = "API key of the account \"default\" (live_... or test_...)."},
    {.name = "api.key_file",
     .type = KT_STRING,
     .group = G_API,
     .off = NO_FIELD,
     .set = set_api_key_file,
     .flags = KF_OPTIONAL | KF_THEN_ACCTS,
     .doc = "File holding the default account's API key (trimmed)."},
    {.name = "api.timezone",
     .type = KT_STRING,
     .def = "UTC",
     .group = G_API,
     .off = F(api_timezone),
     .check = check_timezone,
     .set = set_api_timezone,
     .doc = "Zone of zone-less API times: UTC, +hh:mm or Europe/Kyiv."},
    {.name = "api.rate_limit",
     .type = KT_RATE,
     .def = "20",
     .group = G_API,
     .off = F(api_rate_limit),
     .min = BRW_RATELIMIT_MIN,
     .max = 1e6,
     .doc = "Requests per second per account (token bucket)."},

    {.name = "http.max_connections",
     .type = KT_INT,
     .def = "16",
     .group = G_HTTP,
     .off = F(http_max_connections),
     .min = 1,
     .max = 1024,
     .doc = "Parallel connections to the API, in total."},
    {.name = "http.timeout",
     .type = KT_DURATION,
     .def = "10s",
     .group = G_HTTP,
     .off = F(http_timeout_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Timeout of one HTTP request, connecting included."},
    {.name = "http.max_response",
     .type = KT_SIZE,
     .def = "1MiB",
     .group = G_HTTP,
     .off = F(http_max_response),
     .min = 1,
     .max = SIZE_MAX_B,
     .doc = "Largest response body accepted."},
    {.name = "http.ca_file",
     .type = KT_STRING,
     .group = G_HTTP,
     .off = F(http_ca_file),
     .flags = KF_OPTIONAL,
     .doc = "CA bundle for TLS; unset: the system's default bundle."},
    {.name = "http.version",
     .type = KT_ENUM,
     .def = "auto",
     .group = G_HTTP,
     .off = F(http_version),
     .choices = http_versions,
     .doc = "auto (HTTP/2 when the TLS server offers it), 1.1 or 2."},
    {.name = "http.max_streams",
     .type = KT_INT,
     .def = "100",
     .group = G_HTTP,
     .off = F(http_max_streams),
     .min = 1,
     .max = 1000,
     .doc = "Requests in flight per HTTP/2 connection."},
    {.name = "http.proxy",
     .type = KT_STRING,
     .group = G_HTTP,
     .off = F(http_proxy),
     .check = check_proxy_url,
     .flags = KF_OPTIONAL,
     .doc = "Proxy URL for the API; unset: HTTPS_PROXY etc. as curl reads "
            "them."},
    {.name = "http.no_proxy",
     .type = KT_STRING,
     .group = G_HTTP,
     .off = F(http_no_proxy),
     .flags = KF_OPTIONAL,
     .doc = "Hosts that bypass the proxy; unset: NO_PROXY."},
    {.name = "http.proxy_ca_file",
     .type = KT_STRING,
     .group = G_HTTP,
     .off = F(http_proxy_ca_file),
     .flags = KF_OPTIONAL,
     .doc = "CA bundle for an https:// proxy; unset: the system's bundle."},

    {.name = "poll.initial_delay",
     .type = KT_DURATION,
     .def = "30s",
     .group = G_POLL,
     .off = F(poll_initial_delay_ms),
     .min = 0,
     .max = DUR_MAX_MS,
     .doc = "Delay of the first fetch after campaign.sent (0 allowed)."},
    {.name = "poll.finished_delay",
     .type = KT_DURATION,
     .def = "1s",
     .group = G_POLL,
     .off = F(poll_finished_delay_ms),
     .min = 0,
     .max = DUR_MAX_MS,
     .doc = "Delay of the first fetch after campaign.finished (0 allowed)."},
    {.name = "poll.min_interval",
     .type = KT_DURATION,
     .def = "15s",
     .group = G_POLL,
     .off = F(poll_min_interval_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Shortest interval between fetches; used again after a change."},
    {.name = "poll.max_interval",
     .type = KT_DURATION,
     .def = "10m",
     .group = G_POLL,
     .off = F(poll_max_interval_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Longest interval between fetches of an unfinished campaign."},
    {.name = "poll.not_found_grace",
     .type = KT_DURATION,
     .def = "10m",
     .group = G_POLL,
     .off = F(poll_not_found_grace_ms),
     .min = 0,
     .max = DUR_MAX_MS,
     .doc = "How long a 404 is retried before the DLQ (not_found)."},
    {.name = "poll.max_age",
     .type = KT_DURATION,
     .def = "72h",
     .group = G_POLL,
     .off = F(poll_max_age_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Deadline after the first event; then the outcome is expired."},
    {.name = "poll.jitter",
     .type = KT_FLOAT,
     .def = "0.2",
     .group = G_POLL,
     .off = F(poll_jitter),
     .min = 0,
     .max = 1,
     .doc = "Random spread of every interval, as a fraction (0..1)."},
    {.name = "poll.adaptive",
     .type = KT_BOOL,
     .def = "true",
     .group = G_POLL,
     .off = F(poll_adaptive),
     .doc = "Poll at scheduled starts and estimated ends (false: backoff)."},
    {.name = "poll.strategy",
     .type = KT_ENUM,
     .def = "auto",
     .group = G_POLL,
     .off = F(poll_strategy),
     .choices = strategies,
     .doc = "detail, sweep or auto: status sweeps through the campaign list."},
    {.name = "poll.sweep_interval",
     .type = KT_DURATION,
     .def = "30s",
     .group = G_POLL,
     .off = F(poll_sweep_interval_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Shortest time between two sweeps of one account's list."},
    {.name = "poll.sweep_margin",
     .type = KT_DURATION,
     .def = "1h",
     .group = G_POLL,
     .off = F(poll_sweep_margin_ms),
     .min = 0,
     .max = DUR_MAX_MS,
     .doc = "How far around a campaign's first event a sweep looks."},
    {.name = "poll.sweep_page_worth",
     .type = KT_INT,
     .def = "40",
     .group = G_POLL,
     .off = F(poll_sweep_page_worth),
     .min = 1,
     .max = 100000,
     .doc = "Detail fetches one list page must save; fewer campaigns: rarer."},
    {.name = "retry.min",
     .type = KT_DURATION,
     .def = "1s",
     .group = G_POLL,
     .off = F(retry_min_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "First backoff after a failed fetch."},
    {.name = "retry.max",
     .type = KT_DURATION,
     .def = "5m",
     .group = G_POLL,
     .off = F(retry_max_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Longest backoff after failed fetches; caps Retry-After."},

    {.name = "event.max_size",
     .type = KT_SIZE,
     .def = "64KiB",
     .group = G_LIMITS,
     .off = F(event_max_size),
     .min = 1,
     .max = SIZE_MAX_B,
     .doc = "Input events larger than this go to the DLQ (too_large)."},
    {.name = "event.max_key_size",
     .type = KT_SIZE,
     .def = "4KiB",
     .group = G_LIMITS,
     .off = F(event_max_key_size),
     .min = 1,
     .max = SIZE_MAX_B,
     .doc = "Input keys larger than this go to the DLQ (too_large)."},
    {.name = "event.sent_types",
     .type = KT_STRING,
     .group = G_LIMITS,
     .off = F(event_sent_types),
     .check = check_sent_types,
     .flags = KF_OPTIONAL,
     .doc = "More type names meaning campaign.sent, comma-separated."},
    {.name = "event.finished_types",
     .type = KT_STRING,
     .group = G_LIMITS,
     .off = F(event_finished_types),
     .check = check_finished_types,
     .flags = KF_OPTIONAL,
     .doc = "More type names meaning campaign.finished, comma-separated."},
    {.name = "output.max_record_size",
     .type = KT_SIZE,
     .def = "900KiB",
     .group = G_LIMITS,
     .off = F(output_max_record_size),
     .min = 1024,
     .max = SIZE_MAX_B,
     .doc = "Largest record produced; bigger DLQ records are shortened."},
    {.name = "output.cloudevents",
     .type = KT_ENUM,
     .def = "binary",
     .group = G_LIMITS,
     .off = F(output_cloudevents),
     .choices = ce_modes,
     .doc = "binary: ce_* headers on reports and DLQ records; or off."},
    {.name = "output.cloudevents_source",
     .type = KT_STRING,
     .def = NULL,
     .def_doc = "<from group.id>",
     .group = G_LIMITS,
     .off = F(output_cloudevents_source),
     .check = check_ce_source,
     .flags = KF_OPTIONAL,
     .doc = "ce_source (URI-reference); default /bsg-report-worker/GROUP."},
    {.name = "max.tracked",
     .type = KT_INT,
     .def = "100000",
     .group = G_LIMITS,
     .off = F(max_tracked),
     .min = 1,
     .max = 1e9,
     .doc = "Campaigns tracked at once; consuming pauses at the limit."},
    {.name = "dedupe.window",
     .type = KT_DURATION,
     .def = "1h",
     .group = G_LIMITS,
     .off = F(dedupe_window_ms),
     .min = 0,
     .max = DUR_MAX_MS,
     .doc = "Late events of a reported campaign within this add no report."},
    {.name = "emit.progress",
     .type = KT_BOOL,
     .def = "false",
     .group = G_LIMITS,
     .off = F(emit_progress),
     .doc = "Also publish non-final reports when a campaign changes."},
    {.name = "shutdown.timeout",
     .type = KT_DURATION,
     .def = "30s",
     .group = G_LIMITS,
     .off = F(shutdown_timeout_ms),
     .min = 1,
     .max = DUR_MAX_MS,
     .doc = "Time allowed to commit and flush on SIGTERM/SIGINT."},

    {.name = "metrics.listen",
     .type = KT_STRING,
     .def = "127.0.0.1:9464",
     .group = G_OPS,
     .off = F(metrics_listen),
     .check = check_listen,
     .flags = KF_EMPTY_OK,
     .doc = "host:port of /metrics, /healthz, /readyz; \"off\" disables."},
    {.name = "log.level",
     .type = KT_ENUM,
     .def = "info",
     .group = G_OPS,
     .off = F(log_level),
     .choices = log_levels,
     .doc = "Lowest level logged: debug, info, warn or error."},
    {.name = "log.format",
     .type = KT_ENUM,
     .def = "json",
     .group = G_OPS,
     .off = F(log_format),
     .choices = log_formats,
     .doc = "json (one object per line) or text, on stderr."},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */

/* Formats one line into why (if there is room) and returns BRW_ECONFIG, so
 * that error paths read `return fail(...)`. */
__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t whylen,
                                                      const char *fmt, ...) {
  if (why && whylen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
  }
  return BRW_ECONFIG;
}

/* Replaces the owned string *dst by a copy of src (NULL allowed). Returns 0
 * or BRW_ENOMEM, leaving *dst unchanged on failure. The old value is wiped:
 * a plain string may hold a password too (the userinfo of a URL). */
static int replace_str(char **dst, const char *src) {
  char *copy = NULL;
  if (src && !(copy = strdup(src)))
    return BRW_ENOMEM;
  brw_secret_free(*dst);
  *dst = copy;
  return 0;
}

static void *field(brw_config_t *cfg, const config_key_t *k) {
  return (char *)cfg + k->off;
}

static const void *cfield(const brw_config_t *cfg, const config_key_t *k) {
  return (const char *)cfg + k->off;
}

static const config_key_t *find_key(const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if (!strcmp(keys[i].name, name))
      return &keys[i];
  return NULL;
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

static int ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !strcmp(s + n - m, suffix);
}

int brw_config_env_name(const char *key, char *buf, size_t len) {
  size_t n = 0;
  if (!key || !buf || len < 5)
    return BRW_ERANGE;
  memcpy(buf, "BRW_", 4);
  n = 4;
  for (const char *p = key; *p; p++) {
    if (n + 1 >= len) {
      buf[0] = '\0';
      return BRW_ERANGE;
    }
    buf[n++] =
        (*p == '.' || *p == '-') ? '_' : (char)toupper((unsigned char)*p);
  }
  buf[n] = '\0';
  return 0;
}

int brw_config_key_info(size_t i, brw_config_key_info_t *info) {
  if (i >= NKEYS || !info)
    return BRW_ENOENT;
  info->name = keys[i].name;
  info->type = type_names[keys[i].type];
  info->def = keys[i].def ? keys[i].def : keys[i].def_doc;
  info->doc = keys[i].doc;
  info->group = keys[i].group;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Unit parsers                                                             */

typedef struct {
  const char *name;
  uint64_t mult;
} unit_t;

static const unit_t duration_units[] = {{"ms", 1},          {"s", 1000},
                                        {"m", 60000},       {"h", 3600000ULL},
                                        {"d", 86400000ULL}, {NULL, 0}};

static const unit_t size_units[] = {{"b", 1},           {"kib", 1ULL << 10},
                                    {"kb", 1ULL << 10}, {"mib", 1ULL << 20},
                                    {"mb", 1ULL << 20}, {"gib", 1ULL << 30},
                                    {"gb", 1ULL << 30}, {NULL, 0}};

enum { NUM_OK = 0, NUM_BAD, NUM_NOUNIT, NUM_RANGE };

/* Parses "<digits>[.<digits>][ ]<unit>" with units matched case-insensitively
 * and the result truncated to whole units of the smallest one (ms, bytes).
 * A bare zero needs no unit. Returns NUM_OK, NUM_BAD, NUM_NOUNIT (a number
 * with no unit) or NUM_RANGE (does not fit in 64 bits). */
static int parse_with_unit(const char *s, const unit_t *units, uint64_t *out) {
  const char *p = s;
  uint64_t ip = 0, frac = 0, scale = 1, mult = 0;

  if (!s || !isdigit((unsigned char)*p))
    return NUM_BAD;
  while (isdigit((unsigned char)*p)) {
    unsigned d = (unsigned)(*p++ - '0');
    if (ip > (UINT64_MAX - d) / 10)
      return NUM_RANGE;
    ip = ip * 10 + d;
  }
  if (*p == '.') {
    p++;
    if (!isdigit((unsigned char)*p))
      return NUM_BAD;
    /* Nine fractional digits are more than any unit here can resolve. */
    for (; isdigit((unsigned char)*p); p++) {
      if (scale < 1000000000ULL) {
        frac = frac * 10 + (uint64_t)(*p - '0');
        scale *= 10;
      }
    }
  }
  while (*p == ' ')
    p++;
  if (*p == '\0') {
    if (ip == 0 && frac == 0) {
      *out = 0;
      return NUM_OK;
    }
    return NUM_NOUNIT;
  }
  for (const unit_t *u = units; u->name; u++) {
    if (!strcasecmp(p, u->name)) {
      mult = u->mult;
      break;
    }
  }
  if (!mult)
    return NUM_BAD;
  if (ip > UINT64_MAX / mult)
    return NUM_RANGE;
  ip *= mult;
  frac = frac * mult / scale; /* frac < 1e9 and mult <= 2^30: no overflow */
  if (ip > UINT64_MAX - frac)
    return NUM_RANGE;
  *out = ip + frac;
  return NUM_OK;
}

int brw_parse_duration_ms(const char *s, uint64_t *ms) {
  uint64_t v;
  if (!ms || parse_with_unit(s, duration_units, &v) != NUM_OK)
    return BRW_EINVAL;
  *ms = v;
  return 0;
}

int brw_parse_size(const char *s, uint64_t *bytes) {
  uint64_t v;
  if (!bytes || parse_with_unit(s, size_units, &v) != NUM_OK)
    return BRW_EINVAL;
  *bytes = v;
  return 0;
}

int brw_parse_bool(const char *s, int *b) {
  static const char *const yes[] = {"true", "yes", "on", "1"};
  static const char *const no[] = {"false", "no", "off", "0"};
  if (!s || !b)
    return BRW_EINVAL;
  for (size_t i = 0; i < 4; i++) {
    if (!strcasecmp(s, yes[i])) {
      *b = 1;
      return 0;
    }
    if (!strcasecmp(s, no[i])) {
      *b = 0;
      return 0;
    }
  }
  return BRW_EINVAL;
}

/* Prints a duration with the largest unit that represents it exactly
 * ("72h", "90s", "1500ms"), so printed values parse back to the same. */
static const char *format_duration(uint64_t ms, char *buf, size_t len) {
  static const unit_t units[] = {
      {"h", 3600000ULL}, {"m", 60000}, {"s", 1000}, {NULL, 0}};
  if (ms == 0) {
    snprintf(buf, len, "0s");
    return buf;
  }
  for (const unit_t *u = units; u->name; u++) {
    if (ms % u->mult == 0) {
      snprintf(buf, len, "%llu%s", (unsigned long long)(ms / u->mult), u->name);
      return buf;
    }
  }
  snprintf(buf, len, "%llums", (unsigned long long)ms);
  return buf;
}

static const char *format_size(uint64_t bytes, char *buf, size_t len) {
  static const unit_t units[] = {
      {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}, {NULL, 0}};
  for (const unit_t *u = units; u->name && bytes; u++) {
    if (bytes % u->mult == 0) {
      snprintf(buf, len, "%llu%s", (unsigned long long)(bytes / u->mult),
               u->name);
      return buf;
    }
  }
  snprintf(buf, len, "%lluB", (unsigned long long)bytes);
  return buf;
}

/* Parses a finite decimal number, all of the string. */
static int parse_double(const char *s, double *out) {
  char *end;
  double v;
  if (!*s || isspace((unsigned char)*s))
    return -1;
  errno = 0;
  v = strtod(s, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v))
    return -1;
  *out = v;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Checks of string values                                                  */

const char *brw_config_redact_url(const char *in, char *out, size_t len) {
  static const char mark[] = REDACTED;
  size_t n = 0;
  const char *p = in;

  if (!out || len == 0)
    return out;
  out[0] = '\0';
  if (!in)
    return out;
  /* Copies byte by byte; at each "://" the authority (up to '/', '?', '#'
   * or the end) is looked at, and its userinfo, up to its last '@', is
   * replaced. A secret cut by `len` is still a secret: the userinfo is
   * never copied, whole or in part. */
  while (*p && n + 1 < len) {
    if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
      const char *auth = p + 3;
      size_t alen = strcspn(auth, "/?#");
      const char *at = NULL;
      for (const char *q = auth; q < auth + alen; q++)
        if (*q == '@')
          at = q;
      for (int i = 0; i < 3 && n + 1 < len; i++)
        out[n++] = *p++;
      if (at) {
        for (const char *m = mark; *m && n + 1 < len; m++)
          out[n++] = *m;
        p = at;
      }
      continue;
    }
    out[n++] = *p++;
  }
  out[n] = '\0';
  return out;
}

/* The host of a URL: after the scheme and any userinfo, up to the port or
 * the path; an IPv6 literal without its brackets. Returns 0 and fills host,
 * or -1. */
static int url_host(const char *url, char *host, size_t len) {
  const char *p = strstr(url, "://"), *end, *at;
  size_t alen, n;
  if (!p)
    return -1;
  p += 3;
  alen = strcspn(p, "/?#");
  for (at = p + alen; at > p && at[-1] != '@'; at--)
    ;
  if (at > p) { /* skip the userinfo */
    alen -= (size_t)(at - p);
    p = at;
  }
  if (*p == '[') {
    if (!(end = memchr(p, ']', alen)))
      return -1;
    p++;
  } else {
    end = memchr(p, ':', alen);
    if (!end)
      end = p + alen;
  }
  n = (size_t)(end - p);
  if (n == 0 || n >= len)
    return -1;
  memcpy(host, p, n);
  host[n] = '\0';
  return 0;
}

int brw_config_url_is_loopback(const char *url) {
  char host[256];
  struct in_addr a4;
  struct in6_addr a6;
  size_t n;
  if (!url || url_host(url, host, sizeof(host)) != 0)
    return 0;
  n = strlen(host);
  if (n > 0 && host[n - 1] == '.') /* "localhost." is the same name */
    host[--n] = '\0';
  if (!strcasecmp(host, "localhost"))
    return 1;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6) ||
           (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
  return 0;
}

/* What follows a URL's scheme: no spaces or control characters. */
static int check_url_chars(const char *rest, char *why, size_t whylen) {
  for (const char *p = rest; *p; p++) {
    if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p)) {
      fail(why, whylen, "must not contain spaces or control characters");
      return -1;
    }
  }
  return 0;
}

static int check_url(const char *value, char *why, size_t whylen) {
  const char *rest = NULL;
  char shown[WHY_MAX / 2];
  if (!strncasecmp(value, "http://", 7))
    rest = value + 7;
  else if (!strncasecmp(value, "https://", 8))
    rest = value + 8;
  if (!rest || !*rest || *rest == '/') {
    /* Quoted without its userinfo, which may hold a password; not at all
     * when an '@' comes before any "://" (a "user:pass@host" without a
     * scheme, whose userinfo brw_config_redact_url cannot see). */
    const char *at = strchr(value, '@'), *sch = strstr(value, "://");
    brw_config_redact_url(value, shown, sizeof(shown));
    if (at && (!sch || at < sch))
      fail(why, whylen, "must start with http:// or https:// and a host");
    else
      fail(why, whylen, "\"%s\" must start with http:// or https:// and a host",
           shown);
    return -1;
  }
  /* A URL holds no spaces or control characters (RFC 3986). Without this
   * check "http://h  /" kept its spaces once set_api_url removed the '/', and
   * the value printed by --check-config read back as a different URL
   * (found by fuzz/fuzz_config.c). The value is not quoted: it may hold a
   * control character, and the message must stay one line. */
  return check_url_chars(rest, why, whylen);
}

/* A proxy URL: a scheme curl knows for proxies (it would take a URL
 * without one as http://, which hides typos such as "htps://"), then what
 * check_url asks of any URL (check_url_chars). */
static int check_proxy_url(const char *value, char *why, size_t whylen) {
  static const char *const schemes[] = {"http://",    "https://",
                                        "socks4://",  "socks4a://",
                                        "socks5://",  "socks5h://"};
  for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
    size_t n = strlen(schemes[i]);
    if (!strncasecmp(value, schemes[i], n)) {
      const char *rest = value + n;
      if (!*rest || *rest == '/')
        break;
      return check_url_chars(rest, why, whylen);
    }
  }
  fail(why, whylen,
       "must start with http://, https://, socks4://, socks4a://, socks5:// "
       "or socks5h:// and a host");
  return -1;
}

/* "" and "off" disable the listener; otherwise the text must end in a
 * numeric port, ":9464" (any address), "[::1]:9464", "0.0.0.0:0". */
static int check_listen(const char *value, char *why, size_t whylen) {
  const char *colon;
  size_t n;
  if (!*value || !strcmp(value, "off"))
    return 0;
  colon = strrchr(value, ':');
  n = colon ? strlen(colon + 1) : 0;
  if (!colon || n == 0 || n > 5 || strspn(colon + 1, "0123456789") != n ||
      atol(colon + 1) > 65535) {
    fail(why, whylen, "\"%s\" is not host:port (or \"off\")", value);
    return -1;
  }
  return 0;
}

/* ce_source is a URI-reference (RFC 3986): printable ASCII, none of the
 * characters a URI never holds unencoded (space, "<>\\^`{|}), at most 400
 * bytes (a header on every record). Not parsed further: "urn:...",
 * "https://..." and "/path" are all fine. */
static int check_ce_source(const char *value, char *why, size_t whylen) {
  size_t n = strlen(value);
  if (n > 400) {
    fail(why, whylen, "is %zu bytes long; at most 400", n);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)value[i];
    if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c)) {
      fail(why, whylen,
           "holds a character a URI-reference cannot (byte %zu); "
           "percent-encode it",
           i + 1);
      return -1;
    }
  }
  return 0;
}

/* Loads the zone to see that it works (an IANA name needs its file). */
static int check_timezone(const char *value, char *why, size_t whylen) {
  brw_tz_t *tz;
  if (brw_tz_load(value, &tz, why, whylen) != 0)
    return -1;
  brw_tz_free(tz);
  return 0;
}

/* event.sent_types and event.finished_types: the names' syntax, their
 * number, and not the other type's built-in name (src/event.c says what a
 * name may be). That no name is in both lists is a check across the two
 * keys, in brw_config_validate. */
static int check_sent_types(const char *value, char *why, size_t whylen) {
  return brw_event_types_check(value, BRW_EVENT_SENT, why, whylen);
}

static int check_finished_types(const char *value, char *why, size_t whylen) {
  return brw_event_types_check(value, BRW_EVENT_FINISHED, why, whylen);
}

/* Joins the choices of an enum row with `sep`, truncating if need be. */
static const char *join_choices(const config_key_t *k, const char *sep,
                                char *buf, size_t len) {
  size_t n = 0;
  buf[0] = '\0';
  for (const char *const *c = k->choices; *c; c++) {
    int w = snprintf(buf + n, len - n, "%s%s", n ? sep : "", *c);
    if (w < 0 || (size_t)w >= len - n)
      break;
    n += (size_t)w;
  }
  return buf;
}

/* Describes the bounds of a numeric key, for "must be ..." messages. */
static const char *describe_bounds(const config_key_t *k, char *buf,
                                   size_t len) {
  char a[32], b[32];
  switch (k->type) {
  case KT_DURATION:
    /* The limit reads better in days ("365d") than in hours. */
    if ((uint64_t)k->max % 86400000ULL == 0)
      snprintf(b, sizeof(b), "%llud",
               (unsigned long long)((uint64_t)k->max / 86400000ULL));
    else
      format_duration((uint64_t)k->max, b, sizeof(b));
    snprintf(buf, len, "must be %sat most %s",
             k->min > 0 ? "greater than 0 and " : "", b);
    break;
  case KT_SIZE:
    snprintf(buf, len, "must be between %s and %s",
             format_size((uint64_t)k->min, a, sizeof(a)),
             format_size((uint64_t)k->max, b, sizeof(b)));
    break;
  case KT_RATE:
    if (k->min > 0)
      snprintf(buf, len, "must be between %.15g and %.15g", k->min, k->max);
    else
      snprintf(buf, len, "must be greater than 0 and at most %.15g", k->max);
    break;
  default:
    snprintf(buf, len, "must be between %.15g and %.15g", k->min, k->max);
    break;
  }
  return buf;
}

static int in_bounds(const config_key_t *k, double v) {
  if (k->type == KT_RATE)
    return v > 0 && v >= k->min && v <= k->max;
  return v >= k->min && v <= k->max;
}

/* ------------------------------------------------------------------------ */
/* Accounts                                                                 */

static int account_name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > ACCOUNT_NAME_MAX)
    return 0;
  for (const char *p = name; *p; p++)
    if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
      return 0;
  return 1;
}

int brw_config_account_index(const brw_config_t *cfg, const char *name) {
  if (!cfg || !name)
    return -1;
  for (size_t i = 0; i < cfg->naccounts; i++)
    if (cfg->accounts[i].name && !strcmp(cfg->accounts[i].name, name))
      return (int)i;
  return -1;
}

/* Sets the key of account `name`, adding the account if new. Copies key and
 * key_file (NULL: the key was given directly, so any earlier file is
 * forgotten). Returns 0 or BRW_ENOMEM. */
static int account_set(brw_config_t *cfg, const char *name, const char *key,
                       const char *key_file) {
  brw_account_conf_t *a;
  char *k = NULL, *f = NULL;
  int i = brw_config_account_index(cfg, name);

  if (!(k = strdup(key)) || (key_file && !(f = strdup(key_file))))
    goto nomem;
  if (i < 0) {
    brw_account_conf_t *grown =
        realloc(cfg->accounts, (cfg->naccounts + 1) * sizeof(*grown));
    if (!grown)
      goto nomem;
    cfg->accounts = grown;
    a = &cfg->accounts[cfg->naccounts];
    memset(a, 0, sizeof(*a));
    if (!(a->name = strdup(name)))
      goto nomem;
    cfg->naccounts++;
  } else {
    a = &cfg->accounts[i];
  }
  brw_secret_free(a->key);
  free(a->key_file);
  a->key = k;
  a->key_file = f;
  return 0;

nomem:
  brw_secret_free(k);
  free(f);
  return BRW_ENOMEM;
}

/* Reads an API key from `path`: the whole file, surrounding whitespace
 * trimmed, which must leave one non-empty word. On success *out is an owned
 * copy (free it with brw_secret_free). `key` names the key in errors. */
static int read_key_file(const char *key, const char *path, char **out,
                         char *why, size_t whylen) {
  char buf[KEY_FILE_MAX + 1];
  size_t n, start = 0;
  int rc = 0, err = 0;
  FILE *f = fopen(path, "r");

  if (!f)
    return fail(why, whylen, "%s: cannot read \"%s\": %s", key, path,
                strerror(errno));
  n = fread(buf, 1, sizeof(buf), f);
  if (ferror(f))
    err = errno ? errno : EIO;
  fclose(f);
  if (err) {
    rc = fail(why, whylen, "%s: cannot read \"%s\": %s", key, path,
              strerror(err));
    goto out;
  }
  if (n > KEY_FILE_MAX) {
    rc = fail(why, whylen, "%s: \"%s\" is too large for an API key", key, path);
    goto out;
  }
  while (n > 0 && isspace((unsigned char)buf[n - 1]))
    n--;
  while (start < n && isspace((unsigned char)buf[start]))
    start++;
  if (start == n) {
    rc = fail(why, whylen, "%s: \"%s\" is empty", key, path);
    goto out;
  }
  for (size_t i = start; i < n; i++) {
    if (isspace((unsigned char)buf[i]) || iscntrl((unsigned char)buf[i]) ||
        buf[i] == '\0') {
      rc = fail(why, whylen, "%s: \"%s\" holds more than one word", key, path);
      goto out;
    }
  }
  if (!(*out = strndup(buf + start, n - start)))
    rc = BRW_ENOMEM;
out:
  brw_secret_wipe(buf, sizeof(buf));
  return rc;
}

static int set_account_key(brw_config_t *cfg, const char *key, const char *name,
                           const char *value, int is_file, char *why,
                           size_t whylen) {
  char *secret = NULL;
  int rc;

  if (!account_name_ok(name))
    return fail(why, whylen,
                "%s: invalid account name (use 1 to 64 of A-Z a-z 0-9 _ -)",
                key);
  if (!is_file) {
    if (!*value)
      return fail(why, whylen, "%s: must not be empty", key);
    rc = account_set(cfg, name, value, NULL);
  } else {
    /* An empty key_file sets nothing, so that printed output parses back. */
    if (!*value)
      return 0;
    if ((rc = read_key_file(key, value, &secret, why, whylen)) != 0)
      return rc;
    rc = account_set(cfg, name, secret, value);
    brw_secret_free(secret);
  }
  if (rc == BRW_ENOMEM)
    fail(why, whylen, "%s: out of memory", key);
  return rc;
}

static int set_api_key(brw_config_t *cfg, const config_key_t *k,
                       const char *value, char *why, size_t whylen) {
  return set_account_key(cfg, k->name, "default", value, 0, why, whylen);
}

static int set_api_key_file(brw_config_t *cfg, const config_key_t *k,
                            const char *value, char *why, size_t whylen) {
  return set_account_key(cfg, k->name, "default", value, 1, why, whylen);
}

/* Splits "accounts.<name>.key" / "accounts.<name>.key_file". Returns 1 and
 * copies the name into namebuf if `key` has that shape (the name may still
 * be invalid: the setter says so), else 0. */
static int split_account_key(const char *key, char *namebuf, size_t len,
                             int *is_file) {
  const char *name = key + strlen("accounts."), *end;
  if (!starts_with(key, "accounts."))
    return 0;
  if (ends_with(key, ".key_file")) {
    end = key + strlen(key) - strlen(".key_file");
    *is_file = 1;
  } else if (ends_with(key, ".key")) {
    end = key + strlen(key) - strlen(".key");
    *is_file = 0;
  } else {
    return 0;
  }
  if (end < name || (size_t)(end - name) >= len)
    return 0;
  memcpy(namebuf, name, (size_t)(end - name));
  namebuf[end - name] = '\0';
  return 1;
}

/* ------------------------------------------------------------------------ */
/* librdkafka pass-through                                                  */

/* Properties whose value is, or may hold, a secret: every *password*,
 * *passphrase* and *secret* (sasl.password, ssl.key.password,
 * ssl.keystore.password, sasl.oauthbearer.client.secret,
 * sasl.oauthbearer.assertion.private.key.passphrase), the private keys
 * themselves (ssl.key.pem, sasl.oauthbearer.assertion.private.key.pem), and
 * the free-form ones where people put credentials (sasl.oauthbearer.config,
 * sasl.oauthbearer.extensions, sasl.kerberos.kinit.cmd). Checked against
 * the _RK_SENSITIVE properties of librdkafka 2.0.2 and 2.14.2 (2.14's
 * sasl.username and ssl.ca.pem are flagged there too, but are no secrets). */
static int kafka_name_is_secret(const char *name) {
  return strstr(name, "password") || strstr(name, "passphrase") ||
         strstr(name, "secret") || strstr(name, "sasl.oauthbearer.config") ||
         strstr(name, "sasl.oauthbearer.extensions") ||
         strstr(name, "sasl.kerberos.kinit.cmd") || ends_with(name, "key.pem");
}

/* Which list a kafka.* key belongs to; *prop is the librdkafka name. */
static brw_kv_t **kafka_list(brw_config_t *cfg, const char *key,
                             const char **prop, size_t **count) {
  if (starts_with(key, "kafka.consumer.")) {
    *prop = key + strlen("kafka.consumer.");
    *count = &cfg->nkafka_consumer;
    return &cfg->kafka_consumer;
  }
  if (starts_with(key, "kafka.producer.")) {
    *prop = key + strlen("kafka.producer.");
    *count = &cfg->nkafka_producer;
    return &cfg->kafka_producer;
  }
  *prop = key + strlen("kafka.");
  *count = &cfg->nkafka_common;
  return &cfg->kafka_common;
}

/* Stores a librdkafka property after asking librdkafka whether it knows the
 * property and accepts the value, on a scratch conf object, so that mistakes
 * are reported here with their source rather than at client start. A
 * property given twice keeps its first position and takes the new value. */
static int set_kafka(brw_config_t *cfg, const char *key, const char *value,
                     char *why, size_t whylen) {
  const char *prop;
  size_t *count;
  brw_kv_t **list = kafka_list(cfg, key, &prop, &count);
  char errstr[256] = "";
  int res;
  char *v;

  if (!*prop)
    return fail(why, whylen, "%s: missing librdkafka property name", key);
  res = brw_kafka_conf_check(prop, value, errstr, sizeof(errstr));
  if (res == BRW_ENOMEM)
    return fail(why, whylen, "%s: out of memory", key);
  /* Some of librdkafka's messages end in a newline ("... is outside allowed
   * range 0..900000\n"), which made the error two lines (found by
   * fuzz/fuzz_config.c): control characters become spaces, trailing ones
   * are dropped. */
  errstr[sizeof(errstr) - 1] = '\0';
  for (char *p = errstr; *p; p++) {
    if (iscntrl((unsigned char)*p))
      *p = ' ';
  }
  for (size_t n = strlen(errstr); n > 0 && errstr[n - 1] == ' ';)
    errstr[--n] = '\0';
  if (res == BRW_ENOENT)
    return fail(why, whylen, "%s: unknown librdkafka property \"%s\"", key,
                prop);
  if (res != 0) {
    char shown[sizeof(errstr)];
    /* librdkafka's message is shown for a secret only when the value is not
     * in it (its first 8 bytes: the message may be cut): "not supported in
     * this build" says more than "invalid value". */
    size_t vn = strlen(value);
    char head[9];
    snprintf(head, sizeof(head), "%s", value);
    if (kafka_name_is_secret(prop) && (vn < 4 || strstr(errstr, head))) {
      brw_secret_wipe(head, sizeof(head));
      return fail(why, whylen, "%s: invalid value", key);
    }
    brw_secret_wipe(head, sizeof(head));
    /* librdkafka's message may quote the value: a URL's userinfo goes. */
    return fail(why, whylen, "%s: %s", key,
                brw_config_redact_url(errstr, shown, sizeof(shown)));
  }

  if (!(v = strdup(value)))
    return BRW_ENOMEM;
  for (size_t i = 0; i < *count; i++) {
    if (!strcmp((*list)[i].key, prop)) {
      brw_secret_free((*list)[i].value);
      (*list)[i].value = v;
      return 0;
    }
  }
  brw_kv_t *grown = realloc(*list, (*count + 1) * sizeof(*grown));
  char *k = strdup(prop);
  if (!grown || !k) {
    if (grown)
      *list = grown;
    free(k);
    brw_secret_free(v);
    return BRW_ENOMEM;
  }
  *list = grown;
  grown[*count].key = k;
  grown[*count].value = v;
  (*count)++;
  return 0;
}

static void free_kv(brw_kv_t *kv, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    brw_secret_free(kv[i].value);
  }
  free(kv);
}

/* ------------------------------------------------------------------------ */
/* Setting keys                                                             */

static int set_api_url(brw_config_t *cfg, const config_key_t *k,
                       const char *value, char *why, size_t whylen) {
  char reason[WHY_MAX];
  char *copy;
  size_t n;

  if (check_url(value, reason, sizeof(reason)) != 0)
    return fail(why, whylen, "%s: %s", k->name, reason);
  /* Paths are appended with their own '/', so drop trailing ones. */
  if (!(copy = strdup(value)))
    return BRW_ENOMEM;
  n = strlen(copy);
  while (n > 0 && copy[n - 1] == '/')
    copy[--n] = '\0';
  brw_secret_free(cfg->api_url);
  cfg->api_url = copy;
  return 0;
}

static int set_api_timezone(brw_config_t *cfg, const config_key_t *k,
                            const char *value, char *why, size_t whylen) {
  char reason[WHY_MAX];
  brw_tz_t *tz;
  int rc = brw_tz_load(value, &tz, reason, sizeof(reason));

  if (rc == BRW_ENOMEM)
    return rc;
  if (rc != 0)
    return fail(why, whylen, "%s: %s", k->name, reason);
  if (replace_str(&cfg->api_timezone, value) != 0) {
    brw_tz_free(tz);
    return BRW_ENOMEM;
  }
  brw_tz_free(cfg->api_tz);
  cfg->api_tz = tz;
  return 0;
}

/* The generic setter of a table row: parses `value` (already trimmed) by the
 * row's type, checks its bounds, and stores it. On error the field is left
 * as it was and why holds "key: reason". Returns 0, BRW_ECONFIG or
 * BRW_ENOMEM. */
static int key_set(brw_config_t *cfg, const config_key_t *k, const char *value,
                   char *why, size_t whylen) {
  char reason[WHY_MAX], bounds[128];
  uint64_t u = 0;
  double d = 0;
  int r;

  if (k->set)
    return k->set(cfg, k, value, why, whylen);

  switch (k->type) {
  case KT_STRING:
    if (!*value && !(k->flags & (KF_OPTIONAL | KF_EMPTY_OK)))
      return fail(why, whylen, "%s: must not be empty", k->name);
    if (*value && k->check && k->check(value, reason, sizeof(reason)) != 0)
      return fail(why, whylen, "%s: %s", k->name, reason);
    if (replace_str(field(cfg, k),
                    (*value || (k->flags & KF_EMPTY_OK)) ? value : NULL))
      return BRW_ENOMEM;
    return 0;

  case KT_ENUM:
    for (const char *const *c = k->choices; *c; c++) {
      if (!strcasecmp(value, *c) ||
          (!strcmp(*c, "warn") && !strcasecmp(value, "warning")))
        return replace_str(field(cfg, k), *c) ? BRW_ENOMEM : 0;
    }
    return fail(why, whylen, "%s: \"%s\" is not one of %s", k->name, value,
                join_choices(k, ", ", reason, sizeof(reason)));

  case KT_DURATION:
    r = parse_with_unit(value, duration_units, &u);
    if (r == NUM_NOUNIT)
      return fail(why, whylen, "%s: \"%s\" needs a unit (ms, s, m, h, d)",
                  k->name, value);
    if (r == NUM_RANGE)
      return fail(why, whylen, "%s: \"%s\" is too large", k->name, value);
    if (r != NUM_OK)
      return fail(why, whylen,
                  "%s: \"%s\" is not a duration (e.g. 250ms, 30s, 10m, 72h)",
                  k->name, value);
    if (!in_bounds(k, (double)u))
      return fail(why, whylen, "%s: \"%s\" %s", k->name, value,
                  describe_bounds(k, bounds, sizeof(bounds)));
    *(uint64_t *)field(cfg, k) = u;
    return 0;

  case KT_SIZE:
    r = parse_with_unit(value, size_units, &u);
    if (r == NUM_NOUNIT)
      return fail(why, whylen, "%s: \"%s\" needs a unit (B, KiB, MiB, GiB)",
                  k->name, value);
    if (r == NUM_RANGE)
      return fail(why, whylen, "%s: \"%s\" is too large", k->name, value);
    if (r != NUM_OK)
      return fail(why, whylen,
                  "%s: \"%s\" is not a size (e.g. 512B, 64KiB, 1MiB)", k->name,
                  value);
    if (!in_bounds(k, (double)u))
      return fail(why, whylen, "%s: \"%s\" %s", k->name, value,
                  describe_bounds(k, bounds, sizeof(bounds)));
    *(uint64_t *)field(cfg, k) = u;
    return 0;

  case KT_RATE:
  case KT_FLOAT: {
    /* A rate may say its unit: "20/s". */
    char num[64];
    size_t n = strlen(value);
    if (k->type == KT_RATE && ends_with(value, "/s"))
      n -= 2;
    if (n >= sizeof(num))
      n = sizeof(num) - 1;
    memcpy(num, value, n);
    num[n] = '\0';
    if (parse_double(num, &d) != 0)
      return fail(why, whylen, "%s: \"%s\" is not a number", k->name, value);
    if (!in_bounds(k, d))
      return fail(why, whylen, "%s: \"%s\" %s", k->name, value,
                  describe_bounds(k, bounds, sizeof(bounds)));
    *(double *)field(cfg, k) = d;
    return 0;
  }

  case KT_INT: {
    char *end;
    long l;
    errno = 0;
    l = strtol(value, &end, 10);
    if (!*value || isspace((unsigned char)*value) || *end || errno == ERANGE)
      return fail(why, whylen, "%s: \"%s\" is not an integer", k->name, value);
    if (!in_bounds(k, (double)l))
      return fail(why, whylen, "%s: \"%s\" %s", k->name, value,
                  describe_bounds(k, bounds, sizeof(bounds)));
    *(long *)field(cfg, k) = l;
    return 0;
  }

  case KT_BOOL: {
    int b;
    if (brw_parse_bool(value, &b) != 0)
      return fail(why, whylen,
                  "%s: \"%s\" is not a boolean (true/false, yes/no, on/off)",
                  k->name, value);
    *(int *)field(cfg, k) = b;
    return 0;
  }

  case KT_SECRET:
    break;
  }
  return fail(why, whylen, "%s: cannot be set", k->name);
}

/* Whether `key` names anything settable: a table row, an account key, or a
 * librdkafka pass-through property. */
static int key_known(const char *key) {
  char name[KEY_MAX];
  int is_file;
  return find_key(key) ||
         split_account_key(key, name, sizeof(name), &is_file) ||
         starts_with(key, "kafka.");
}

int brw_config_set(brw_config_t *cfg, const char *key, const char *value,
                   char *errbuf, size_t errlen) {
  const config_key_t *k;
  char name[KEY_MAX];
  char *v;
  size_t start = 0, n;
  int is_file, rc;

  if (!cfg || !key || !value)
    return fail(errbuf, errlen, "%s: missing value", key ? key : "(null)");

  /* Values are trimmed whatever their source. */
  n = strlen(value);
  while (n > 0 && isspace((unsigned char)value[n - 1]))
    n--;
  while (start < n && isspace((unsigned char)value[start]))
    start++;
  if (!(v = strndup(value + start, n - start))) {
    fail(errbuf, errlen, "%s: out of memory", key);
    return BRW_ENOMEM;
  }

  if ((k = find_key(key)) != NULL)
    rc = key_set(cfg, k, v, errbuf, errlen);
  else if (split_account_key(key, name, sizeof(name), &is_file))
    rc = set_account_key(cfg, key, name, v, is_file, errbuf, errlen);
  else if (starts_with(key, "kafka."))
    rc = set_kafka(cfg, key, v, errbuf, errlen);
  else
    rc = fail(errbuf, errlen, "unknown key \"%s\"", key);
  if (rc == BRW_ENOMEM)
    fail(errbuf, errlen, "%s: out of memory", key);

  brw_secret_wipe(v, n - start);
  free(v);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Defaults, freeing                                                        */

/* "<hostname>-<pid>", the default of worker.instance. */
static void default_instance(char *buf, size_t len) {
  char host[256];
  if (gethostname(host, sizeof(host)) != 0 || !host[0])
    snprintf(host, sizeof(host), "localhost");
  host[sizeof(host) - 1] = '\0';
  snprintf(buf, len, "%s-%ld", host, (long)getpid());
}

/* Zeroes *cfg and applies every row's default through its own setter. Out of
 * memory leaves a string NULL, which brw_config_validate reports. */
void brw_config_init(brw_config_t *cfg) {
  char instance[300];
  if (!cfg)
    return;
  memset(cfg, 0, sizeof(*cfg));
  for (size_t i = 0; i < NKEYS; i++)
    if (keys[i].def)
      key_set(cfg, &keys[i], keys[i].def, NULL, 0);
  default_instance(instance, sizeof(instance));
  replace_str(&cfg->instance_id, instance);
}

/* Frees every string, account and pass-through list the configuration owns
 * (secrets wiped first) and zeroes *cfg, so a second call is harmless. */
void brw_config_free(brw_config_t *cfg) {
  if (!cfg)
    return;
  for (size_t i = 0; i < NKEYS; i++) {
    const config_key_t *k = &keys[i];
    if ((k->type == KT_STRING || k->type == KT_ENUM) && k->off != NO_FIELD)
      brw_secret_free(*(char **)field(cfg, k));
  }
  for (size_t i = 0; i < cfg->naccounts; i++) {
    free(cfg->accounts[i].name);
    brw_secret_free(cfg->accounts[i].key);
    free(cfg->accounts[i].key_file);
  }
  free(cfg->accounts);
  brw_tz_free(cfg->api_tz);
  free_kv(cfg->kafka_common, cfg->nkafka_common);
  free_kv(cfg->kafka_consumer, cfg->nkafka_consumer);
  free_kv(cfg->kafka_producer, cfg->nkafka_producer);
  memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */

/* The effective value of a row as text, for printing and for messages.
 * Returns NULL for an unset key; secrets come out as [REDACTED]. */
static const char *format_value(const brw_config_t *cfg, const config_key_t *k,
                                char *buf, size_t len) {
  int i;
  if (k->type == KT_SECRET) {
    i = brw_config_account_index(cfg, "default");
    return i >= 0 ? REDACTED : NULL;
  }
  if (k->set == set_api_key_file) {
    i = brw_config_account_index(cfg, "default");
    return i >= 0 ? cfg->accounts[i].key_file : NULL;
  }
  switch (k->type) {
  case KT_STRING:
  case KT_ENUM:
    return *(char *const *)cfield(cfg, k);
  case KT_DURATION:
    return format_duration(*(const uint64_t *)cfield(cfg, k), buf, len);
  case KT_SIZE:
    return format_size(*(const uint64_t *)cfield(cfg, k), buf, len);
  case KT_RATE:
  case KT_FLOAT:
    snprintf(buf, len, "%.15g", *(const double *)cfield(cfg, k));
    return buf;
  case KT_INT:
    snprintf(buf, len, "%ld", *(const long *)cfield(cfg, k));
    return buf;
  case KT_BOOL:
    return *(const int *)cfield(cfg, k) ? "true" : "false";
  case KT_SECRET:
    break;
  }
  return NULL;
}

static double numeric_value(const brw_config_t *cfg, const config_key_t *k) {
  switch (k->type) {
  case KT_DURATION:
  case KT_SIZE:
    return (double)*(const uint64_t *)cfield(cfg, k);
  case KT_RATE:
  case KT_FLOAT:
    return *(const double *)cfield(cfg, k);
  case KT_INT:
    return (double)*(const long *)cfield(cfg, k);
  default:
    return 0;
  }
}

/* Checks every row again (fields may have been written directly), then the
 * rules that involve more than one key. */
int brw_config_validate(const brw_config_t *cfg, char *errbuf, size_t errlen) {
  char reason[WHY_MAX], vbuf[64], bounds[128], a[32], b[32];

  if (!cfg)
    return fail(errbuf, errlen, "no configuration");
  for (size_t i = 0; i < NKEYS; i++) {
    const config_key_t *k = &keys[i];
    if (k->off == NO_FIELD)
      continue;
    if (k->type == KT_STRING || k->type == KT_ENUM) {
      const char *s = *(char *const *)cfield(cfg, k);
      if ((!s || !*s) && !(k->flags & KF_OPTIONAL) &&
          !(s && (k->flags & KF_EMPTY_OK)))
        return fail(errbuf, errlen, "%s: must not be empty", k->name);
      if (s && *s && k->check && k->check(s, reason, sizeof(reason)) != 0)
        return fail(errbuf, errlen, "%s: %s", k->name, reason);
      if (s && k->type == KT_ENUM) {
        const char *const *c = k->choices;
        while (*c && strcmp(*c, s))
          c++;
        if (!*c)
          return fail(errbuf, errlen, "%s: \"%s\" is not a valid value",
                      k->name, s);
      }
    } else if (k->type != KT_BOOL && !in_bounds(k, numeric_value(cfg, k))) {
      return fail(errbuf, errlen, "%s: %s %s", k->name,
                  format_value(cfg, k, vbuf, sizeof(vbuf)),
                  describe_bounds(k, bounds, sizeof(bounds)));
    }
  }

  if (cfg->naccounts == 0)
    return fail(errbuf, errlen,
                "api.key: no API key configured (set api.key, api.key_file, "
                "BSG_API_KEY or accounts.<name>.key)");
  for (size_t i = 0; i < cfg->naccounts; i++) {
    const brw_account_conf_t *acc = &cfg->accounts[i];
    if (!acc->name || !account_name_ok(acc->name))
      return fail(errbuf, errlen, "accounts: invalid account name");
    if (!acc->key || !*acc->key)
      return fail(errbuf, errlen, "accounts.%s.key: no API key", acc->name);
  }

  /* HTTP/2 by prior knowledge (h2c) fails every request after the first
   * on a connection with libcurl before 8.0.0 ("Error in the HTTP2 framing
   * layer", curl issue 10634; Debian 12 has 7.88.1): refused at start
   * rather than failing every fetch. */
  if (cfg->http_version && !strcmp(cfg->http_version, "2") && cfg->api_url &&
      !strncasecmp(cfg->api_url, "http://", 7) &&
      curl_version_info(CURLVERSION_NOW)->version_num < 0x080000)
    return fail(errbuf, errlen,
                "http.version: 2 over plain http:// (HTTP/2 by prior "
                "knowledge) needs libcurl 8.0.0 or later, this one is %s "
                "(curl issue 10634); use https:// or http.version = auto",
                curl_version_info(CURLVERSION_NOW)->version);

  /* Plain http:// would send the API keys (login) and the bearers (every
   * request) in clear text; only loopback, where nothing crosses a network,
   * is allowed without saying so (issue 10). */
  if (cfg->api_url && !strncasecmp(cfg->api_url, "http://", 7) &&
      !cfg->api_allow_insecure && !brw_config_url_is_loopback(cfg->api_url)) {
    char shown[WHY_MAX / 2];
    return fail(errbuf, errlen,
                "api.url: \"%s\" is plain http:// to a host other than "
                "loopback, which would send the API key and bearers in clear "
                "text; use https://, or set api.allow_insecure=true",
                brw_config_redact_url(cfg->api_url, shown, sizeof(shown)));
  }

  if (cfg->poll_min_interval_ms > cfg->poll_max_interval_ms)
    return fail(errbuf, errlen,
                "poll.min_interval: %s is greater than poll.max_interval (%s)",
                format_duration(cfg->poll_min_interval_ms, a, sizeof(a)),
                format_duration(cfg->poll_max_interval_ms, b, sizeof(b)));
  if (cfg->retry_min_ms > cfg->retry_max_ms)
    return fail(errbuf, errlen, "retry.min: %s is greater than retry.max (%s)",
                format_duration(cfg->retry_min_ms, a, sizeof(a)),
                format_duration(cfg->retry_max_ms, b, sizeof(b)));
  /* A name of both lists would make an event both sent and finished. */
  {
    brw_event_types_t types = {cfg->event_sent_types,
                               cfg->event_finished_types};
    char name[BRW_EVENT_TYPE_NAME_MAX + 1];
    if (brw_event_types_overlap(&types, name, sizeof(name)))
      return fail(errbuf, errlen,
                  "event.finished_types: \"%.64s\" is also in "
                  "event.sent_types",
                  name);
  }
  /* Reading and writing one topic would feed the worker its own output. */
  if (!strcmp(cfg->topic_output, cfg->topic_input))
    return fail(errbuf, errlen,
                "topic.output: must differ from topic.input "
                "(both \"%s\")",
                cfg->topic_input);
  if (!strcmp(cfg->topic_dlq, cfg->topic_input))
    return fail(errbuf, errlen,
                "topic.dlq: must differ from topic.input "
                "(both \"%s\")",
                cfg->topic_input);
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                 */

/* Writes `key = value`, quoting the value when it would not read back
 * as-is: empty, surrounding spaces, a '#' or a leading '"'. The userinfo of
 * any URL in the value is printed as [REDACTED] (api.url, brokers, a
 * librdkafka URL such as sasl.oauthbearer.token.endpoint.url). */
static void print_kv(FILE *out, const char *prefix, const char *key,
                     const char *raw) {
  char *shown = NULL;
  const char *value = raw;
  if (raw && strstr(raw, "://") && strchr(raw, '@')) {
    /* Each "://@" (4 bytes) may become "://[REDACTED]@" (14). */
    size_t cap = strlen(raw) * 4 + sizeof(REDACTED);
    if ((shown = malloc(cap)))
      value = brw_config_redact_url(raw, shown, cap);
    else
      value = REDACTED;
  }
  size_t n = value ? strlen(value) : 0;
  int quote = n == 0 || isspace((unsigned char)value[0]) ||
              isspace((unsigned char)value[n - 1]) || value[0] == '"' ||
              strchr(value, '#');
  fprintf(out, "%s%s = ", prefix, key);
  if (!quote) {
    fprintf(out, "%s\n", value);
  } else {
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
      if (value[i] == '"' || value[i] == '\\')
        fputc('\\', out);
      fputc(value[i], out);
    }
    fputs("\"\n", out);
  }
  free(shown);
}

static void print_kafka(FILE *out, const char *prefix, const brw_kv_t *kv,
                        size_t n) {
  for (size_t i = 0; i < n; i++)
    print_kv(out, prefix, kv[i].key,
             kafka_name_is_secret(kv[i].key) ? REDACTED : kv[i].value);
}

void brw_config_print(const brw_config_t *cfg, FILE *out) {
  char buf[64], key[KEY_MAX];
  if (!cfg || !out)
    return;
  for (size_t i = 0; i < NKEYS; i++) {
    const config_key_t *k = &keys[i];
    const char *v = format_value(cfg, k, buf, sizeof(buf));
    /* With no "default" account api.key is unset, and `api.key = ""` would
     * not read back (an empty key is an error), so it is printed as a
     * comment. Found by fuzz/fuzz_config.c (a file with only
     * accounts.<name>.key). */
    if (!v && k->type == KT_SECRET)
      fprintf(out, "#%s =\n", k->name);
    else
      print_kv(out, "", k->name, v);
    if (k->flags & KF_THEN_KAFKA) {
      print_kafka(out, "kafka.", cfg->kafka_common, cfg->nkafka_common);
      print_kafka(out, "kafka.consumer.", cfg->kafka_consumer,
                  cfg->nkafka_consumer);
      print_kafka(out, "kafka.producer.", cfg->kafka_producer,
                  cfg->nkafka_producer);
    }
    if (k->flags & KF_THEN_ACCTS) {
      for (size_t j = 0; j < cfg->naccounts; j++) {
        const brw_account_conf_t *acc = &cfg->accounts[j];
        if (!strcmp(acc->name, "default"))
          continue;
        snprintf(key, sizeof(key), "accounts.%s.key", acc->name);
        print_kv(out, "", key, REDACTED);
        if (acc->key_file) {
          snprintf(key, sizeof(key), "accounts.%s.key_file", acc->name);
          print_kv(out, "", key, acc->key_file);
        }
      }
    }
  }
}

/* The placeholder --help shows after a flag: the type, or the choices. */
static const char *value_hint(const config_key_t *k, char *buf, size_t len) {
  size_t n = 0;
  if (k->type != KT_ENUM) {
    for (const char *p = type_names[k->type]; *p && n + 1 < len; p++)
      buf[n++] = (char)toupper((unsigned char)*p);
    buf[n] = '\0';
    return buf;
  }
  return join_choices(k, "|", buf, len);
}

void brw_config_usage(FILE *out, const char *argv0) {
  const char *group = NULL;
  char env[KEY_MAX], hint[64];
  if (!out)
    return;
  fprintf(out,
          "Usage: %s [--config FILE] [--check-config] [--KEY=VALUE]...\n"
          "\n"
          "Turns BSG campaign events into delivery reports (Kafka in and "
          "out).\n"
          "\n"
          "Options:\n"
          "  --config FILE       read `key = value` lines from FILE\n"
          "  --check-config      validate, print the effective configuration"
          "\n"
          "                      (secrets redacted) and exit\n"
          "  --KEY=VALUE, --KEY VALUE, -o KEY=VALUE\n"
          "                      set any key below\n"
          "  -h, --help          show this help and exit\n"
          "  -V, --version       show the version (and the libraries'), exit\n"
          "\n"
          "Precedence, lowest first: defaults, the config file, environment\n"
          "variables, flags. Durations take ms, s, m, h or d; sizes B, KiB,\n"
          "MiB or GiB. Exit status: 0 ok, 1 runtime error, 2 bad "
          "configuration.\n",
          argv0 && *argv0 ? argv0 : "bsg-report-worker");
  for (size_t i = 0; i < NKEYS; i++) {
    const config_key_t *k = &keys[i];
    if (!group || strcmp(group, k->group)) {
      group = k->group;
      fprintf(out, "\n%s:\n", group);
    }
    brw_config_env_name(k->name, env, sizeof(env));
    fprintf(out, "  --%s=%s", k->name, value_hint(k, hint, sizeof(hint)));
    if (k->def || k->def_doc)
      fprintf(out, "  (default %s)", k->def ? k->def : k->def_doc);
    fprintf(out, "\n      %s\n      env %s%s%s\n", k->doc, env,
            k->env_alias ? ", " : "", k->env_alias ? k->env_alias : "");
  }
  fprintf(out,
          "\nMore accounts and librdkafka properties:\n"
          "  --accounts.<name>.key=SECRET, --accounts.<name>.key_file=FILE\n"
          "      API key of account <name> ([A-Za-z0-9_-], up to 64), which\n"
          "      events select with \"account\"; api.key is \"default\".\n"
          "      env BRW_ACCOUNTS_<NAME>_KEY, BRW_ACCOUNTS_<NAME>_KEY_FILE "
          "(name\n"
          "      lower-cased)\n"
          "  --kafka.<property>=VALUE\n"
          "      librdkafka property for the consumer and the producer;\n"
          "      kafka.consumer.<property>, kafka.producer.<property> for "
          "one.\n"
          "      env BRW_KAFKA_[CONSUMER_|PRODUCER_]<PROPERTY>, `_` for `.` "
          "and\n"
          "      `__` for `_` (BRW_KAFKA_SECURITY_PROTOCOL)\n");
}

/* ------------------------------------------------------------------------ */
/* Config file                                                              */

/* Parses the value part of a line in place: a double-quoted string (with
 * \" and \\ escapes) or bare text up to a '#' that follows whitespace,
 * trailing whitespace trimmed. Returns the value or NULL with the reason. */
static char *parse_value(char *p, char *why, size_t whylen) {
  while (*p == ' ' || *p == '\t')
    p++;
  if (*p == '"') {
    char *r = p + 1, *w = p;
    while (*r && *r != '"') {
      if (*r == '\\' && (r[1] == '"' || r[1] == '\\'))
        r++;
      *w++ = *r++;
    }
    if (*r != '"') {
      fail(why, whylen, "unterminated quoted value");
      return NULL;
    }
    *w = '\0';
    for (r++; *r == ' ' || *r == '\t'; r++)
      ;
    if (*r && *r != '#') {
      fail(why, whylen, "unexpected text after the closing quote");
      return NULL;
    }
    return p;
  }
  char *end = p;
  for (char *q = p; *q; q++) {
    if (*q == '#' && (q == p || q[-1] == ' ' || q[-1] == '\t'))
      break;
    end = q + 1;
  }
  while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *end = '\0';
  return p;
}

/* Applies one line of a config file. Returns 0, or an error with the reason
 * (without file:line) in why. */
static int load_line(brw_config_t *cfg, char *line, char *why, size_t whylen) {
  char *p = line, *eq, *kend, *value;
  size_t n = strlen(line);

  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  while (*p == ' ' || *p == '\t')
    p++;
  if (!*p || *p == '#')
    return 0;
  if (!(eq = strchr(p, '=')))
    return fail(why, whylen, "expected \"key = value\"");
  kend = eq;
  while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
    kend--;
  *kend = '\0';
  if (!*p)
    return fail(why, whylen, "missing key before \"=\"");
  if (!key_known(p))
    return fail(why, whylen, "unknown key \"%s\"", p);
  if (!(value = parse_value(eq + 1, why, whylen))) {
    char reason[WHY_MAX];
    snprintf(reason, sizeof(reason), "%s", why);
    return fail(why, whylen, "%s: %s", p, reason);
  }
  return brw_config_set(cfg, p, value, why, whylen);
}

/* Splits the text into lines and applies each with load_line. Each line is
 * copied into a NUL-terminated buffer first: load_line edits in place and
 * reads up to the terminator, and the caller's text is neither writable nor
 * terminated (the fuzz target hands over exactly `len` bytes). The copy is
 * wiped before it is freed, as lines may hold secrets. */
int brw_config_load_text(brw_config_t *cfg, const char *name, const char *text,
                         size_t len, char *errbuf, size_t errlen) {
  char why[WHY_MAX];
  char *line;
  size_t pos = 0, longest = 0, start = 0;
  unsigned long lineno = 0;
  int rc = 0;

  if (!cfg || (!text && len > 0))
    return fail(errbuf, errlen, "%s: no text", name ? name : "(null)");
  if (!name)
    name = "(config)";
  /* One buffer, as long as the longest line plus its terminator, serves
   * every line: load_line edits the line in place. */
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '\n' || i + 1 == len) {
      if (i + 1 - start > longest)
        longest = i + 1 - start;
      start = i + 1;
    }
  }
  if (!(line = malloc(longest + 1))) {
    fail(errbuf, errlen, "%s: out of memory", name);
    return BRW_ENOMEM;
  }
  while (pos < len) {
    const char *nl = memchr(text + pos, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - (text + pos)) + 1 : len - pos;
    char *p = line;
    /* The newline is kept, as getline kept it, so that load_line sees the
     * same text a file read line by line gave it. */
    memcpy(line, text + pos, n);
    line[n] = '\0';
    pos += n;
    lineno++;
    if (lineno == 1 && !strncmp(p, "\xEF\xBB\xBF", 3)) /* UTF-8 BOM */
      p += 3;
    if ((rc = load_line(cfg, p, why, sizeof(why))) != 0) {
      fail(errbuf, errlen, "%s:%lu: %s", name, lineno, why);
      break;
    }
  }
  brw_secret_wipe(line, longest + 1);
  free(line);
  return rc == BRW_ENOMEM ? BRW_ENOMEM : (rc ? BRW_ECONFIG : 0);
}

/* Reads the whole config file, then applies it with brw_config_load_text;
 * errors read "FILE:LINE: ...". The buffer is wiped before it is freed, as
 * the file may hold secrets. */
static int load_file(brw_config_t *cfg, const char *path, char *errbuf,
                     size_t errlen) {
  char *buf = NULL, *grown;
  size_t len = 0, cap = 0, got;
  int rc, err = 0;
  FILE *f = fopen(path, "r");

  if (!f)
    return fail(errbuf, errlen, "--config: cannot read \"%s\": %s", path,
                strerror(errno));
  errno = 0;
  for (;;) {
    if (cap - len < 4096) {
      size_t ncap = cap ? cap * 2 : 8192;
      if (!(grown = malloc(ncap))) {
        err = ENOMEM;
        break;
      }
      /* Copied rather than realloc'ed, so that no copy of a secret is left
       * unwiped in freed memory. */
      if (buf) {
        memcpy(grown, buf, len);
        brw_secret_wipe(buf, cap);
        free(buf);
      }
      buf = grown;
      cap = ncap;
    }
    got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) {
      if (ferror(f))
        err = errno ? errno : EIO;
      break;
    }
  }
  fclose(f);
  if (err == ENOMEM) {
    fail(errbuf, errlen, "--config: \"%s\": out of memory", path);
    rc = BRW_ENOMEM;
  } else if (err) {
    rc = fail(errbuf, errlen, "--config: cannot read \"%s\": %s", path,
              strerror(err));
  } else {
    rc = brw_config_load_text(cfg, path, buf, len, errbuf, errlen);
  }
  if (buf) {
    brw_secret_wipe(buf, cap);
    free(buf);
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Environment                                                              */

static const char *env_get(char **envp, const char *name) {
  size_t n = strlen(name);
  for (char **e = envp; *e; e++)
    if (!strncmp(*e, name, n) && (*e)[n] == '=')
      return *e + n + 1;
  return NULL;
}

/* Whether an environment variable is the one of a table row. */
static int env_is_table_key(const char *var, size_t n) {
  char env[KEY_MAX];
  for (size_t i = 0; i < NKEYS; i++) {
    brw_config_env_name(keys[i].name, env, sizeof(env));
    if (strlen(env) == n && !strncmp(env, var, n))
      return 1;
  }
  return 0;
}

/* Maps BRW_ACCOUNTS_<NAME>_KEY[_FILE] or BRW_KAFKA_... (the variable's name,
 * n bytes) to a key. Returns 1 if mapped, 0 if the variable does not have
 * the shape of its family, -1 if it is not in either family. */
static int env_to_key(const char *var, size_t n, int want_file, char *key,
                      size_t len) {
  static const char acc[] = "BRW_ACCOUNTS_", kaf[] = "BRW_KAFKA_";
  size_t k = 0;

  if (n > sizeof(acc) - 1 && !strncmp(var, acc, sizeof(acc) - 1)) {
    const char *name = var + sizeof(acc) - 1;
    size_t suffix = want_file ? strlen("_KEY_FILE") : strlen("_KEY");
    size_t nlen = n - (sizeof(acc) - 1);
    if (nlen <= suffix ||
        strncmp(name + nlen - suffix, want_file ? "_KEY_FILE" : "_KEY",
                suffix) ||
        nlen - suffix + 32 > len)
      return 0;
    k = (size_t)snprintf(key, len, "accounts.");
    for (size_t i = 0; i < nlen - suffix; i++)
      key[k++] = (char)tolower((unsigned char)name[i]);
    snprintf(key + k, len - k, ".%s", want_file ? "key_file" : "key");
    return 1;
  }
  if (n > sizeof(kaf) - 1 && !strncmp(var, kaf, sizeof(kaf) - 1)) {
    const char *p = var + sizeof(kaf) - 1, *end = var + n;
    k = (size_t)snprintf(key, len, "kafka.");
    if (end - p > 9 && !strncmp(p, "CONSUMER_", 9)) {
      k += (size_t)snprintf(key + k, len - k, "consumer.");
      p += 9;
    } else if (end - p > 9 && !strncmp(p, "PRODUCER_", 9)) {
      k += (size_t)snprintf(key + k, len - k, "producer.");
      p += 9;
    }
    for (; p < end; p++) {
      if (k + 2 >= len)
        return 0;
      if (p[0] == '_' && p + 1 < end && p[1] == '_') {
        key[k++] = '_';
        p++;
      } else {
        key[k++] = p[0] == '_' ? '.' : (char)tolower((unsigned char)*p);
      }
    }
    key[k] = '\0';
    return 1;
  }
  return -1;
}

/* Applies the environment: table rows first (in table order, so that
 * BRW_API_KEY_FILE beats BRW_API_KEY, which beats BSG_API_KEY), then account
 * keys, then account key files, then librdkafka properties. Empty variables
 * count as unset. */
static int load_env(brw_config_t *cfg, char **envp, char *errbuf,
                    size_t errlen) {
  char env[KEY_MAX], key[KEY_MAX], why[WHY_MAX];
  int rc;

  for (size_t i = 0; i < NKEYS; i++) {
    const char *var = env, *v;
    brw_config_env_name(keys[i].name, env, sizeof(env));
    v = env_get(envp, env);
    if ((!v || !*v) && keys[i].env_alias) {
      var = keys[i].env_alias;
      v = env_get(envp, var);
    }
    if (!v || !*v)
      continue;
    if ((rc = brw_config_set(cfg, keys[i].name, v, why, sizeof(why))) != 0) {
      fail(errbuf, errlen, "environment %s: %s", var, why);
      return rc;
    }
  }
  for (int pass = 0; pass < 3; pass++) {
    for (char **e = envp; *e; e++) {
      const char *eq = strchr(*e, '=');
      size_t n = eq ? (size_t)(eq - *e) : 0;
      int is_acc = n > 13 && !strncmp(*e, "BRW_ACCOUNTS_", 13);
      int is_kafka = n > 10 && !strncmp(*e, "BRW_KAFKA_", 10);
      if (!eq || !eq[1] || (pass < 2 ? !is_acc : !is_kafka) ||
          env_is_table_key(*e, n))
        continue;
      if (env_to_key(*e, n, pass == 1, key, sizeof(key)) != 1) {
        /* Pass 0 sees every account variable, so it reports bad shapes;
         * pass 1 skips the _KEY ones pass 0 took. */
        if (pass == 1 ||
            (pass == 0 && env_to_key(*e, n, 1, key, sizeof(key)) == 1))
          continue;
        return fail(errbuf, errlen, "environment %.*s: %s", (int)n, *e,
                    is_acc ? "expected BRW_ACCOUNTS_<NAME>_KEY or "
                             "BRW_ACCOUNTS_<NAME>_KEY_FILE"
                           : "name too long");
      }
      if ((rc = brw_config_set(cfg, key, eq + 1, why, sizeof(why))) != 0) {
        fail(errbuf, errlen, "environment %.*s: %s", (int)n, *e, why);
        return rc;
      }
    }
  }
  return 0;
}

/* Whether the variable `var` (n bytes of name) is a source of a secret. */
static int env_is_secret(const char *var, size_t n) {
  char env[KEY_MAX], key[KEY_MAX];
  for (size_t i = 0; i < NKEYS; i++) {
    if (keys[i].type != KT_SECRET)
      continue;
    brw_config_env_name(keys[i].name, env, sizeof(env));
    if ((strlen(env) == n && !strncmp(env, var, n)) ||
        (keys[i].env_alias && strlen(keys[i].env_alias) == n &&
         !strncmp(keys[i].env_alias, var, n)))
      return 1;
  }
  if (env_is_table_key(var, n))
    return 0;
  if (n > 13 && !strncmp(var, "BRW_ACCOUNTS_", 13))
    return env_to_key(var, n, 0, key, sizeof(key)) == 1;
  if (n > 10 && !strncmp(var, "BRW_KAFKA_", 10) &&
      env_to_key(var, n, 0, key, sizeof(key)) == 1) {
    const char *prop;
    size_t *count;
    brw_config_t scratch;
    memset(&scratch, 0, sizeof(scratch));
    kafka_list(&scratch, key, &prop, &count);
    return kafka_name_is_secret(prop);
  }
  return 0;
}

int brw_config_scrub_env(char **envp) {
  char name[KEY_MAX];
  int wiped = 0;
  for (size_t i = 0; envp && envp[i];) {
    char *e = envp[i], *eq = strchr(e, '=');
    size_t n = eq ? (size_t)(eq - e) : 0;
    if (!eq || !eq[1] || n >= sizeof(name) || !env_is_secret(e, n)) {
      i++;
      continue;
    }
    brw_secret_wipe(eq + 1, strlen(eq + 1));
    memcpy(name, e, n);
    name[n] = '\0';
    wiped++;
    /* envp may be the process's environ: unsetenv then removes this entry
     * and moves the later ones down, so the same slot is looked at again. */
    if (getenv(name) == eq + 1)
      unsetenv(name);
    else
      i++;
  }
  return wiped;
}

/* Pins the userinfo of every URL in s ("user:pass", and "pass" alone, as
 * either may be written by a library). */
static void pin_userinfo(const char *s) {
  for (const char *p = s ? strstr(s, "://") : NULL; p;
       p = strstr(p + 3, "://")) {
    const char *auth = p + 3, *at = NULL, *colon;
    size_t alen = strcspn(auth, "/?#");
    for (const char *q = auth; q < auth + alen; q++)
      if (*q == '@')
        at = q;
    if (!at)
      continue;
    char *ui = strndup(auth, (size_t)(at - auth));
    if (!ui)
      return;
    brw_log_pin_secret(ui);
    if ((colon = strchr(ui, ':')))
      brw_log_pin_secret(colon + 1);
    brw_secret_free(ui);
  }
}

void brw_config_pin_secrets(const brw_config_t *cfg) {
  const brw_kv_t *lists[3];
  size_t counts[3];
  if (!cfg)
    return;
  for (size_t i = 0; i < cfg->naccounts; i++)
    brw_log_pin_secret(cfg->accounts[i].key);
  lists[0] = cfg->kafka_common, counts[0] = cfg->nkafka_common;
  lists[1] = cfg->kafka_consumer, counts[1] = cfg->nkafka_consumer;
  lists[2] = cfg->kafka_producer, counts[2] = cfg->nkafka_producer;
  for (int l = 0; l < 3; l++) {
    for (size_t i = 0; i < counts[l]; i++) {
      if (kafka_name_is_secret(lists[l][i].key))
        brw_log_pin_secret(lists[l][i].value);
      else
        pin_userinfo(lists[l][i].value);
    }
  }
  pin_userinfo(cfg->api_url);
  pin_userinfo(cfg->brokers);
  pin_userinfo(cfg->http_proxy);
  /* curl reads these itself when http.proxy is unset; a password in one
   * must not reach a log line either (curl's error texts do not quote it,
   * but a message of ours might). */
  static const char *const proxy_env[] = {"https_proxy", "HTTPS_PROXY",
                                          "http_proxy",  "HTTP_PROXY",
                                          "all_proxy",   "ALL_PROXY"};
  for (size_t i = 0; i < sizeof(proxy_env) / sizeof(proxy_env[0]); i++)
    pin_userinfo(getenv(proxy_env[i]));
}

/* ------------------------------------------------------------------------ */
/* Command line                                                             */

typedef enum {
  ARG_SET,
  ARG_CONFIG,
  ARG_HELP,
  ARG_VERSION,
  ARG_CHECK
} arg_kind_t;

typedef struct {
  arg_kind_t kind;
  char key[KEY_MAX];
  const char *value;
} arg_t;

/* Whether an unknown option name has the shape of a BSG API key
 * ("live_..." or "test_..."), so that an error must not quote it. */
static int looks_like_key(const char *name) {
  return !strncmp(name, "live_", 5) || !strncmp(name, "test_", 5);
}

/* Decodes the option at argv[*i], taking its value from the next argument
 * when it is not attached, and advances *i past what it used. Returns 0 or
 * BRW_ECONFIG with the reason in why (a value is never quoted in it). */
static int next_arg(int argc, char **argv, int *i, arg_t *a, char *why,
                    size_t whylen) {
  const int argi = *i; /* the option's position, for messages */
  const char *s = argv[(*i)++], *name, *eq;
  size_t n;

  a->value = NULL;
  a->key[0] = '\0';
  if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
    a->kind = ARG_HELP;
    return 0;
  }
  if (!strcmp(s, "-V") || !strcmp(s, "--version")) {
    a->kind = ARG_VERSION;
    return 0;
  }
  if (!strcmp(s, "--check-config")) {
    a->kind = ARG_CHECK;
    return 0;
  }
  if (!strcmp(s, "-o")) {
    if (*i >= argc)
      return fail(why, whylen, "-o: missing KEY=VALUE");
    name = argv[(*i)++];
    /* Not quoted: without its '=' the text may be a value, even a key. */
    if (!(eq = strchr(name, '=')))
      return fail(why, whylen, "-o: expected KEY=VALUE");
  } else if (s[0] == '-' && s[1] == '-' && s[2]) {
    name = s + 2;
    eq = strchr(name, '=');
  } else {
    /* Not quoted: a stray argument is often a value that lost its option
     * ("--api.key= live_..."), which may be a secret. */
    return fail(why, whylen,
                "unexpected argument #%d (not an option; options are "
                "--KEY=VALUE, --KEY VALUE or -o KEY=VALUE)",
                argi);
  }

  n = eq ? (size_t)(eq - name) : strlen(name);
  if (n >= sizeof(a->key))
    return fail(why, whylen,
                "option #%d too long (at most %zu characters "
                "before '=')",
                argi, sizeof(a->key) - 1);
  memcpy(a->key, name, n);
  a->key[n] = '\0';
  if (s[1] == '-' && !strcmp(a->key, "config")) {
    a->kind = ARG_CONFIG;
  } else if (key_known(a->key)) {
    a->kind = ARG_SET;
  } else if (looks_like_key(a->key)) {
    /* "--live_..." (a key typed where the option belongs) is not quoted. */
    return fail(why, whylen, "%s #%d: unknown, and looks like an API key",
                s[1] == '-' ? "option" : "-o", argi);
  } else if (s[1] == '-') {
    return fail(why, whylen, "unknown option \"--%s\"", a->key);
  } else {
    return fail(why, whylen, "-o: unknown key \"%s\"", a->key);
  }
  if (eq) {
    a->value = eq + 1;
  } else if (*i < argc) {
    a->value = argv[(*i)++];
  } else {
    return fail(why, whylen, "--%s: missing %s", a->key,
                a->kind == ARG_CONFIG ? "FILE" : "value");
  }
  return 0;
}

/* Reads the sources in precedence order. The command line is walked twice:
 * first for --config and the actions (so --help works whatever else is
 * wrong, and the file is read before the environment wherever --config
 * appears), then to apply the settings on top of file and environment. */
int brw_config_load(brw_config_t *cfg, int argc, char **argv, char **envp,
                    brw_config_action_t *action, char *errbuf, size_t errlen) {
  const char *file = NULL;
  int help = 0, version = 0, check = 0, rc = 0;
  char why[WHY_MAX], first[WHY_MAX];
  arg_t a;

  if (action)
    *action = BRW_CONFIG_RUN;
  if (!cfg || !action)
    return fail(errbuf, errlen, "no configuration");
  if (!argv)
    argc = 0;

  first[0] = '\0';
  for (int i = 1; i < argc;) {
    if (next_arg(argc, argv, &i, &a, why, sizeof(why)) != 0) {
      if (!rc) {
        rc = BRW_ECONFIG;
        snprintf(first, sizeof(first), "%s", why);
      }
      continue;
    }
    if (a.kind == ARG_HELP)
      help = 1;
    else if (a.kind == ARG_VERSION)
      version = 1;
    else if (a.kind == ARG_CHECK)
      check = 1;
    else if (a.kind == ARG_CONFIG)
      file = a.value;
  }
  if (help || version) {
    *action = help ? BRW_CONFIG_HELP : BRW_CONFIG_VERSION;
    return 0;
  }
  if (rc)
    return fail(errbuf, errlen, "%s", first);

  if (file && (rc = load_file(cfg, file, errbuf, errlen)) != 0)
    return rc;
  if (envp && (rc = load_env(cfg, envp, errbuf, errlen)) != 0)
    return rc;
  for (int i = 1; i < argc;) {
    next_arg(argc, argv, &i, &a, why, sizeof(why));
    if (a.kind != ARG_SET)
      continue;
    if ((rc = brw_config_set(cfg, a.key, a.value, why, sizeof(why))) != 0) {
      fail(errbuf, errlen, "%s", why);
      return rc;
    }
  }
  if ((rc = brw_config_validate(cfg, errbuf, errlen)) != 0)
    return rc;
  *action = check ? BRW_CONFIG_CHECK : BRW_CONFIG_RUN;
  return 0;
}
