/* Unit tests of the configuration module (src/config.c, SPEC §7). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "srcpath.h"
#include "brw/config.h"
#include "brw/error.h"
#include "brw/log.h"

#define SECRET "live_s3cr3t_value_abc"

static char *no_env[] = {NULL};
static char key_env_default[] = "BSG_API_KEY=" SECRET;
static char *key_env[] = {key_env_default, NULL};

/* `rel` in the repository (tests/unit/support/srcpath.c). */
static void src_path(char *buf, size_t len, const char *rel) {
  assert_int_equal(srcpath(buf, len, rel), 0);
}

/* Writes text into a new temporary file; returns its path (static slot). */
static const char *write_temp(char *path, size_t len, const char *text) {
  snprintf(path, len, "/tmp/brw_test_config_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  size_t n = strlen(text);
  assert_int_equal(write(fd, text, n), (ssize_t)n);
  close(fd);
  return path;
}

/* Reads a whole file into a malloc'd string. */
static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *s = malloc((size_t)n + 1);
  assert_non_null(s);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  fclose(f);
  return s;
}

/* Captures what fn writes to a FILE. */
static char *capture_print(const brw_config_t *cfg) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  brw_config_print(cfg, f);
  fclose(f);
  return buf;
}

static char *capture_usage(void) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  brw_config_usage(f, "bsg-report-worker");
  fclose(f);
  return buf;
}

static size_t count(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
    n++;
  return n;
}

/* Runs brw_config_load on a fresh config; returns its code. */
static int load(brw_config_t *cfg, char **argv, char **envp,
                brw_config_action_t *action, char *err, size_t errlen) {
  int argc = 0;
  while (argv[argc])
    argc++;
  brw_config_init(cfg);
  err[0] = '\0';
  return brw_config_load(cfg, argc, argv, envp, action, err, errlen);
}

/* ---------------------------------------------------------------------- */

static void test_defaults(void **state) {
  (void)state;
  brw_config_t cfg;
  char expect[64];
  brw_config_init(&cfg);
  assert_string_equal(cfg.brokers, "127.0.0.1:9092");
  assert_string_equal(cfg.group_id, "bsg-report-worker");
  assert_string_equal(cfg.topic_input, "bsg.campaign.events");
  assert_string_equal(cfg.topic_output, "bsg.campaign.reports");
  assert_string_equal(cfg.topic_dlq, "bsg.campaign.events.dlq");
  snprintf(expect, sizeof(expect), "-%ld", (long)getpid());
  assert_non_null(cfg.instance_id);
  assert_true(strlen(cfg.instance_id) > strlen(expect));
  assert_string_equal(
      cfg.instance_id + strlen(cfg.instance_id) - strlen(expect), expect);
  assert_int_equal(cfg.commit_interval_ms, 1000);
  assert_string_equal(cfg.api_url, "https://one-api.bsg.world");
  assert_int_equal(cfg.naccounts, 0);
  assert_string_equal(cfg.api_timezone, "UTC");
  assert_int_equal(brw_tz_offset_at(cfg.api_tz, 0), 0);
  assert_true(cfg.api_rate_limit == 20.0);
  assert_int_equal(cfg.http_max_connections, 16);
  assert_int_equal(cfg.http_timeout_ms, 10000);
  assert_int_equal(cfg.http_max_response, 1024 * 1024);
  assert_null(cfg.http_ca_file);
  assert_int_equal(cfg.poll_initial_delay_ms, 30000);
  assert_int_equal(cfg.poll_finished_delay_ms, 1000);
  assert_int_equal(cfg.poll_min_interval_ms, 15000);
  assert_int_equal(cfg.poll_max_interval_ms, 600000);
  assert_int_equal(cfg.poll_not_found_grace_ms, 600000);
  assert_int_equal(cfg.poll_max_age_ms, 72ULL * 3600 * 1000);
  assert_true(cfg.poll_jitter == 0.2);
  assert_int_equal(cfg.retry_min_ms, 1000);
  assert_int_equal(cfg.retry_max_ms, 300000);
  assert_int_equal(cfg.event_max_size, 64 * 1024);
  assert_null(cfg.event_sent_types);
  assert_null(cfg.event_finished_types);
  assert_int_equal(cfg.max_tracked, 100000);
  assert_int_equal(cfg.emit_progress, 0);
  assert_int_equal(cfg.shutdown_timeout_ms, 30000);
  assert_string_equal(cfg.metrics_listen, "127.0.0.1:9464");
  assert_string_equal(cfg.log_level, "info");
  assert_string_equal(cfg.log_format, "json");
  assert_int_equal(
      cfg.nkafka_common + cfg.nkafka_consumer + cfg.nkafka_producer, 0);
  /* The defaults alone lack an API key, and only that. */
  char err[256];
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_string_equal(err, "api.key: no API key configured (set api.key, "
                           "api.key_file, BSG_API_KEY or "
                           "accounts.<name>.key)");
  assert_int_equal(brw_config_set(&cfg, "api.key", SECRET, err, sizeof(err)),
                   0);
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), 0);
  brw_config_free(&cfg);
  assert_null(cfg.brokers);
  brw_config_free(&cfg); /* a second free is harmless */
}

static void test_parse_duration(void **state) {
  (void)state;
  static const struct {
    const char *s;
    uint64_t ms;
  } good[] = {{"250ms", 250},     {"30s", 30000},   {"10m", 600000},
              {"72h", 259200000}, {"1d", 86400000}, {"1.5s", 1500},
              {"0.25h", 900000},  {"0", 0},         {"2 s", 2000},
              {"15S", 15000},     {"0ms", 0},       {"1.0009s", 1000}};
  static const char *const bad[] = {"15",
                                    "1.5",
                                    "",
                                    "s",
                                    "abc",
                                    "-1s",
                                    "1x",
                                    "1.s",
                                    ".5s",
                                    "1s2",
                                    "99999999999999999999s",
                                    "18446744073709551615h",
                                    " 1s"};
  uint64_t ms;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    ms = 12345;
    assert_int_equal(brw_parse_duration_ms(good[i].s, &ms), 0);
    assert_int_equal(ms, good[i].ms);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ms = 12345;
    assert_int_equal(brw_parse_duration_ms(bad[i], &ms), BRW_EINVAL);
    assert_int_equal(ms, 12345);
  }
  assert_int_equal(brw_parse_duration_ms(NULL, &ms), BRW_EINVAL);
}

static void test_parse_size(void **state) {
  (void)state;
  static const struct {
    const char *s;
    uint64_t b;
  } good[] = {{"64KiB", 65536},     {"1MiB", 1048576},
              {"1GiB", 1073741824}, {"100B", 100},
              {"1kb", 1024},        {"2MB", 2097152},
              {"1gb", 1073741824},  {"1.5KiB", 1536},
              {"3 kib", 3072},      {"0", 0}};
  static const char *const bad[] = {
      "64", "64XB", "", "KiB", "-1KiB", "1 2KiB", "99999999999GiB"};
  uint64_t b;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    b = 7;
    assert_int_equal(brw_parse_size(good[i].s, &b), 0);
    assert_int_equal(b, good[i].b);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    b = 7;
    assert_int_equal(brw_parse_size(bad[i], &b), BRW_EINVAL);
    assert_int_equal(b, 7);
  }
}

static void test_parse_bool(void **state) {
  (void)state;
  static const char *const yes[] = {"true", "TRUE", "yes", "on", "1", "On"};
  static const char *const no[] = {"false", "False", "no", "off", "0", "NO"};
  static const char *const bad[] = {"", "maybe", "2", "truee", " true"};
  int b;
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    b = -1;
    assert_int_equal(brw_parse_bool(yes[i], &b), 0);
    assert_int_equal(b, 1);
  }
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
    b = -1;
    assert_int_equal(brw_parse_bool(no[i], &b), 0);
    assert_int_equal(b, 0);
  }
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    b = -1;
    assert_int_equal(brw_parse_bool(bad[i], &b), BRW_EINVAL);
    assert_int_equal(b, -1);
  }
}

static void test_set_good(void **state) {
  (void)state;
  brw_config_t cfg;
  char err[256];
  brw_config_init(&cfg);
#define SET_OK(k, v)                                                           \
  assert_int_equal(brw_config_set(&cfg, k, v, err, sizeof(err)), 0)
  SET_OK("brokers", "k1:9092,k2:9092");
  assert_string_equal(cfg.brokers, "k1:9092,k2:9092");
  SET_OK("poll.min_interval", "  20s \t");
  assert_int_equal(cfg.poll_min_interval_ms, 20000);
  SET_OK("poll.initial_delay", "0s");
  assert_int_equal(cfg.poll_initial_delay_ms, 0);
  SET_OK("poll.finished_delay", "0");
  assert_int_equal(cfg.poll_finished_delay_ms, 0);
  SET_OK("http.max_response", "2MiB");
  assert_int_equal(cfg.http_max_response, 2 * 1024 * 1024);
  SET_OK("api.rate_limit", "2.5");
  assert_true(cfg.api_rate_limit == 2.5);
  SET_OK("api.rate_limit", "40/s");
  assert_true(cfg.api_rate_limit == 40.0);
  SET_OK("emit.progress", "yes");
  assert_int_equal(cfg.emit_progress, 1);
  SET_OK("http.max_connections", "1024");
  assert_int_equal(cfg.http_max_connections, 1024);
  SET_OK("max.tracked", "1");
  assert_int_equal(cfg.max_tracked, 1);
  SET_OK("poll.jitter", "1");
  assert_true(cfg.poll_jitter == 1.0);
  SET_OK("poll.jitter", "0");
  assert_true(cfg.poll_jitter == 0.0);
  SET_OK("log.level", "DEBUG");
  assert_string_equal(cfg.log_level, "debug");
  SET_OK("log.level", "warning");
  assert_string_equal(cfg.log_level, "warn");
  SET_OK("log.format", "text");
  assert_string_equal(cfg.log_format, "text");
  SET_OK("http.ca_file", "/etc/ca.pem");
  assert_string_equal(cfg.http_ca_file, "/etc/ca.pem");
  SET_OK("http.ca_file", "");
  assert_null(cfg.http_ca_file);
  assert_string_equal(cfg.http_version, "auto");
  SET_OK("http.version", "1.1");
  assert_string_equal(cfg.http_version, "1.1");
  SET_OK("http.version", "2");
  assert_string_equal(cfg.http_version, "2");
  assert_int_equal(cfg.http_max_streams, 100);
  SET_OK("http.max_streams", "8");
  assert_int_equal(cfg.http_max_streams, 8);
  assert_null(cfg.http_proxy);
  SET_OK("http.proxy", "socks5h://proxy.example:1080");
  assert_string_equal(cfg.http_proxy, "socks5h://proxy.example:1080");
  SET_OK("http.proxy", "");
  assert_null(cfg.http_proxy);
  SET_OK("http.no_proxy", "localhost,.internal.example,10.0.0.0/8");
  assert_string_equal(cfg.http_no_proxy, "localhost,.internal.example,10.0.0.0/8");
  SET_OK("metrics.listen", "off");
  assert_string_equal(cfg.metrics_listen, "off");
  SET_OK("metrics.listen", "");
  assert_string_equal(cfg.metrics_listen, "");
  SET_OK("metrics.listen", "[::1]:0");
  assert_string_equal(cfg.metrics_listen, "[::1]:0");
  SET_OK("api.url", "http://127.0.0.1:8080//");
  assert_string_equal(cfg.api_url, "http://127.0.0.1:8080");
  SET_OK("api.timezone", "+03:00");
  assert_string_equal(cfg.api_timezone, "+03:00");
  assert_int_equal(brw_tz_offset_at(cfg.api_tz, 0), 3 * 3600);
  /* An IANA name from the tz database, with its DST (issue 10 item 10):
   * 2026-01-15 is EET (+2), 2026-07-15 EEST (+3). */
  SET_OK("api.timezone", "Europe/Kyiv");
  assert_string_equal(cfg.api_timezone, "Europe/Kyiv");
  assert_int_equal(brw_tz_offset_at(cfg.api_tz, INT64_C(1768435200)), 7200);
  assert_int_equal(brw_tz_offset_at(cfg.api_tz, INT64_C(1784073600)), 10800);
  SET_OK("worker.instance", "w-7");
  assert_string_equal(cfg.instance_id, "w-7");
  /* Lists of type names: the value is kept as given (trimmed); spaces
   * around a name do not count (src/event.c). */
  SET_OK("event.sent_types", " com.example.sms.campaign.sent , x.sent ");
  assert_string_equal(cfg.event_sent_types,
                      "com.example.sms.campaign.sent , x.sent");
  SET_OK("event.finished_types", "com.example.sms.campaign.finished");
  assert_string_equal(cfg.event_finished_types,
                      "com.example.sms.campaign.finished");
  /* Redundant, harmless. */
  SET_OK("event.finished_types", "campaign.finished,x.done");
  SET_OK("event.sent_types", "");
  assert_null(cfg.event_sent_types);
#undef SET_OK
  brw_config_free(&cfg);
}

static void test_set_bad(void **state) {
  (void)state;
  static const struct {
    const char *key, *value, *err;
  } cases[] = {
      {"poll.min_interval", "15",
       "poll.min_interval: \"15\" needs a unit (ms, s, m, h, d)"},
      {"poll.max_age", "forever",
       "poll.max_age: \"forever\" is not a duration (e.g. 250ms, 30s, 10m, "
       "72h)"},
      {"http.timeout", "0s",
       "http.timeout: \"0s\" must be greater than 0 and at most 365d"},
      {"retry.max", "366d",
       "retry.max: \"366d\" must be greater than 0 and at most 365d"},
      {"poll.initial_delay", "99999999999999999999ms",
       "poll.initial_delay: \"99999999999999999999ms\" is too large"},
      {"event.max_size", "64",
       "event.max_size: \"64\" needs a unit (B, KiB, MiB, GiB)"},
      {"event.max_size", "64 bytes",
       "event.max_size: \"64 bytes\" is not a size (e.g. 512B, 64KiB, 1MiB)"},
      {"http.max_response", "2GiB",
       "http.max_response: \"2GiB\" must be between 1B and 1GiB"},
      {"api.rate_limit", "0",
       "api.rate_limit: \"0\" must be between 0.001 and 1000000"},
      /* 1000 / 1e-300 overflowed llround in the rate limiter. */
      {"api.rate_limit", "1e-300",
       "api.rate_limit: \"1e-300\" must be between 0.001 and 1000000"},
      {"api.rate_limit", "0.0009",
       "api.rate_limit: \"0.0009\" must be between 0.001 and 1000000"},
      {"api.rate_limit", "fast", "api.rate_limit: \"fast\" is not a number"},
      {"poll.jitter", "1.5", "poll.jitter: \"1.5\" must be between 0 and 1"},
      {"poll.jitter", "nan", "poll.jitter: \"nan\" is not a number"},
      {"http.max_connections", "0",
       "http.max_connections: \"0\" must be between 1 and 1024"},
      {"http.max_connections", "16.5",
       "http.max_connections: \"16.5\" is not an integer"},
      {"max.tracked", "-5",
       "max.tracked: \"-5\" must be between 1 and "
       "1000000000"},
      {"emit.progress", "maybe",
       "emit.progress: \"maybe\" is not a boolean (true/false, yes/no, "
       "on/off)"},
      {"log.level", "loud",
       "log.level: \"loud\" is not one of debug, info, warn, error"},
      {"log.format", "xml", "log.format: \"xml\" is not one of json, text"},
      {"http.version", "3", "http.version: \"3\" is not one of auto, 1.1, 2"},
      {"http.max_streams", "0",
       "http.max_streams: \"0\" must be between 1 and 1000"},
      /* A typo in the scheme; the value (it may hold a password) is not
       * quoted. */
      {"http.proxy", "htps://bob:pa55w0rd@proxy:3128",
       "http.proxy: must start with http://, https://, socks4://, "
       "socks4a://, socks5:// or socks5h:// and a host"},
      {"http.proxy", "http://proxy :3128",
       "http.proxy: must not contain spaces or control characters"},
      {"brokers", "", "brokers: must not be empty"},
      {"api.url", "ftp://x",
       "api.url: \"ftp://x\" must start with http:// or https:// and a host"},
      {"api.url", "https://",
       "api.url: \"https://\" must start with http:// or https:// and a "
       "host"},
      /* Names that could leave the zone directory are not looked up. */
      {"api.timezone", "../../etc/passwd",
       "api.timezone: \"../../etc/passwd\" is not a time zone (use UTC, "
       "+hh:mm or an IANA name such as Europe/Kyiv)"},
      {"api.timezone", "/etc/localtime",
       "api.timezone: \"/etc/localtime\" is not a time zone (use UTC, "
       "+hh:mm or an IANA name such as Europe/Kyiv)"},
      {"api.timezone", "+15:00",
       "api.timezone: \"+15:00\" is not a time zone (use UTC, +hh:mm or an "
       "IANA name such as Europe/Kyiv)"},
      {"metrics.listen", "localhost",
       "metrics.listen: \"localhost\" is not host:port (or \"off\")"},
      {"metrics.listen", "h:70000",
       "metrics.listen: \"h:70000\" is not host:port (or \"off\")"},
      {"api.key", "", "api.key: must not be empty"},
      {"no.such.key", "1", "unknown key \"no.such.key\""},
      {"event.sent_types", "a,,b",
       "event.sent_types: an empty name in the list (\"a,,b\" or a comma at "
       "an end)"},
      {"event.finished_types", "x.done,",
       "event.finished_types: an empty name in the list (\"a,,b\" or a "
       "comma at an end)"},
      {"event.finished_types", "x done",
       "event.finished_types: the name \"x done\" holds a space or a byte "
       "that is not printable ASCII"},
      {"event.sent_types", "campaign.finished",
       "event.sent_types: \"campaign.finished\" is the built-in name of "
       "campaign.finished"},
      {"event.finished_types", "a, campaign.sent",
       "event.finished_types: \"campaign.sent\" is the built-in name of "
       "campaign.sent"},
  };
  brw_config_t cfg;
  char err[256];
  brw_config_init(&cfg);
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    err[0] = '\0';
    assert_int_equal(
        brw_config_set(&cfg, cases[i].key, cases[i].value, err, sizeof(err)),
        BRW_ECONFIG);
    assert_string_equal(err, cases[i].err);
  }
  /* An over-long name (256 bytes) and too many names (33). */
  char big[400];
  memset(big, 'n', 256);
  big[256] = '\0';
  assert_int_equal(
      brw_config_set(&cfg, "event.sent_types", big, err, sizeof(err)),
      BRW_ECONFIG);
  assert_non_null(strstr(err, "event.sent_types: the name \"nnnn"));
  assert_non_null(strstr(err, "...\" is 256 bytes, longer than 255"));
  size_t n = 0;
  for (int i = 0; i < 33; i++)
    n += (size_t)snprintf(big + n, sizeof(big) - n, "%st%d", i ? "," : "", i);
  assert_int_equal(
      brw_config_set(&cfg, "event.finished_types", big, err, sizeof(err)),
      BRW_ECONFIG);
  assert_string_equal(err, "event.finished_types: more than 32 names");
  /* Failed sets leave the previous values. */
  assert_null(cfg.event_sent_types);
  assert_null(cfg.event_finished_types);
  assert_int_equal(cfg.poll_min_interval_ms, 15000);
  assert_int_equal(cfg.http_timeout_ms, 10000);
  assert_string_equal(cfg.log_level, "info");
  assert_string_equal(cfg.api_url, "https://one-api.bsg.world");
  assert_int_equal(cfg.naccounts, 0);
  brw_config_free(&cfg);
}

static void test_precedence(void **state) {
  (void)state;
  char path[64], err[256];
  brw_config_t cfg;
  brw_config_action_t action = BRW_CONFIG_HELP;
  write_temp(path, sizeof(path),
             "poll.min_interval = 1s\n"
             "poll.max_interval = 2m\n"
             "retry.min = 3s\n"
             "api.key = from-file\n");
  char e1[] = "BRW_POLL_MAX_INTERVAL=3m";
  char e2[] = "BRW_RETRY_MIN=4s";
  char e3[] = "BRW_API_KEY=from-env";
  char e4[] = "BSG_API_KEY=from-bsg-env";
  char e5[] = "BRW_LOG_LEVEL=";  /* empty: ignored */
  char e6[] = "BRW_NOT_A_KEY=1"; /* unknown: ignored */
  char *envp[] = {e4, e1, e2, e3, e5, e6, NULL};
  /* --config after the flags still loses to them. */
  char *argv[] = {
      "w", "--retry.min=5s", "-o", "log.format=text", "--config", path, NULL};
  assert_int_equal(load(&cfg, argv, envp, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_RUN);
  assert_int_equal(cfg.poll_min_interval_ms, 1000);   /* file */
  assert_int_equal(cfg.poll_max_interval_ms, 180000); /* env over file */
  assert_int_equal(cfg.retry_min_ms, 5000);           /* flag over env */
  assert_string_equal(cfg.log_level, "info");         /* default */
  assert_string_equal(cfg.log_format, "text");
  assert_int_equal(cfg.naccounts, 1);
  assert_string_equal(cfg.accounts[0].name, "default");
  assert_string_equal(cfg.accounts[0].key, "from-env"); /* BRW_ over BSG_ */
  brw_config_free(&cfg);

  /* BSG_API_KEY alone is enough, and beats the file. */
  char *envp2[] = {e4, NULL};
  char *argv2[] = {"w", "--config", path, NULL};
  assert_int_equal(load(&cfg, argv2, envp2, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.accounts[0].key, "from-bsg-env");
  brw_config_free(&cfg);

  /* A flag beats every environment variable; --KEY VALUE form. */
  char *argv3[] = {"w", "--api.key", "from-flag", "--config=", NULL};
  char cfgarg[96];
  snprintf(cfgarg, sizeof(cfgarg), "--config=%s", path);
  argv3[3] = cfgarg;
  assert_int_equal(load(&cfg, argv3, envp, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.accounts[0].key, "from-flag");
  assert_int_equal(cfg.poll_max_interval_ms, 180000);
  brw_config_free(&cfg);
  unlink(path);
}

static void test_file_syntax(void **state) {
  (void)state;
  char path[64], err[256];
  brw_config_t cfg;
  brw_config_action_t action;
  write_temp(path, sizeof(path),
             "\xEF\xBB\xBF# comment line\n"
             "\n"
             "   # indented comment\n"
             "brokers=k1:9092   # trailing comment\n"
             "group.id = g#1\n"
             "topic.input = \"in # not a comment\"  # but this is\n"
             "topic.output = \"say \\\"hi\\\" \\\\o/\"\n"
             "worker.instance = w1\r\n"
             "  log.level   =   debug   \n"
             "http.ca_file =\n"
             "api.key = k\n");
  char *argv[] = {"w", "--config", path, NULL};
  assert_int_equal(load(&cfg, argv, no_env, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.brokers, "k1:9092");
  assert_string_equal(cfg.group_id, "g#1");
  assert_string_equal(cfg.topic_input, "in # not a comment");
  assert_string_equal(cfg.topic_output, "say \"hi\" \\o/");
  assert_string_equal(cfg.instance_id, "w1");
  assert_string_equal(cfg.log_level, "debug");
  assert_null(cfg.http_ca_file);
  brw_config_free(&cfg);
  unlink(path);
}

static void test_file_errors(void **state) {
  (void)state;
  static const struct {
    const char *text, *err; /* err: after "PATH:" */
  } cases[] = {
      {"api.key = k\n\n# c\nnope = 1\n", "4: unknown key \"nope\""},
      {"api.key = k\npoll.jitter = 2\n",
       "2: poll.jitter: \"2\" must be between 0 and 1"},
      {"poll.min_interval = 15\n",
       "1: poll.min_interval: \"15\" needs a unit (ms, s, m, h, d)"},
      {"brokers\n", "1: expected \"key = value\""},
      {" = x\n", "1: missing key before \"=\""},
      {"brokers = \"unterminated\n", "1: brokers: unterminated quoted value"},
      {"brokers = \"a\" b\n",
       "1: brokers: unexpected text after the closing quote"},
      {"kafka.no.such.property = 1\n",
       "1: kafka.no.such.property: unknown librdkafka property "
       "\"no.such.property\""},
      {"accounts.bad name.key = x\n",
       "1: accounts.bad name.key: invalid account name (use 1 to 64 of A-Z "
       "a-z 0-9 _ -)"},
  };
  char path[64], err[512], expect[600];
  brw_config_t cfg;
  brw_config_action_t action;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    write_temp(path, sizeof(path), cases[i].text);
    char *argv[] = {"w", "--config", path, NULL};
    assert_int_equal(load(&cfg, argv, key_env, &action, err, sizeof(err)),
                     BRW_ECONFIG);
    snprintf(expect, sizeof(expect), "%s:%s", path, cases[i].err);
    assert_string_equal(err, expect);
    brw_config_free(&cfg);
    unlink(path);
  }
  /* A file that cannot be read names --config. */
  char *argv[] = {"w", "--config", "/nonexistent/brw.conf", NULL};
  assert_int_equal(load(&cfg, argv, key_env, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "--config: cannot read \"/nonexistent/brw.conf\": "
                           "No such file or directory");
  brw_config_free(&cfg);
  /* A secret value that fails is not echoed. */
  write_temp(path, sizeof(path), "api.key = \"" SECRET "\" junk\n");
  char *argv2[] = {"w", "--config", path, NULL};
  assert_int_equal(load(&cfg, argv2, no_env, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_null(strstr(err, SECRET));
  assert_non_null(strstr(err, "api.key: unexpected text"));
  brw_config_free(&cfg);
  unlink(path);
}

static void test_flags(void **state) {
  (void)state;
  char err[256];
  brw_config_t cfg;
  brw_config_action_t action;

  char *a1[] = {"w",  "--poll.max_age=1h", "--retry.max",    "10m",
                "-o", "max.tracked=5",     "--check-config", NULL};
  assert_int_equal(load(&cfg, a1, key_env, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_CHECK);
  assert_int_equal(cfg.poll_max_age_ms, 3600000);
  assert_int_equal(cfg.retry_max_ms, 600000);
  assert_int_equal(cfg.max_tracked, 5);
  brw_config_free(&cfg);

  static const struct {
    const char *argv[4];
    const char *err;
  } bad[] = {
      {{"--bogus=1"}, "unknown option \"--bogus\""},
      {{"--api.kye=" SECRET}, "unknown option \"--api.kye\""},
      {{"--poll.max_age"}, "--poll.max_age: missing value"},
      {{"--config"}, "--config: missing FILE"},
      {{"-o"}, "-o: missing KEY=VALUE"},
      {{"-o", "brokers"}, "-o: expected KEY=VALUE"},
      {{"-o", "nope=1"}, "-o: unknown key \"nope\""},
      {{"stray"},
       "unexpected argument #1 (not an option; options are "
       "--KEY=VALUE, --KEY VALUE or -o KEY=VALUE)"},
      {{"-x"},
       "unexpected argument #1 (not an option; options are "
       "--KEY=VALUE, --KEY VALUE or -o KEY=VALUE)"},
      /* Issue 10 item 7: what was typed may be a key; it is not echoed. A
       * space after '=' leaves the key as a stray argument. */
      {{"--api.key=", SECRET},
       "unexpected argument #2 (not an option; "
       "options are --KEY=VALUE, --KEY VALUE or -o "
       "KEY=VALUE)"},
      {{"-o", SECRET}, "-o: expected KEY=VALUE"},
      {{"--api.kye", SECRET}, "unknown option \"--api.kye\""},
      {{"-o", "api.kye=" SECRET}, "-o: unknown key \"api.kye\""},
      /* A key typed where the option belongs. */
      {{"--" SECRET}, "option #1: unknown, and looks like an API key"},
      {{"--emit.progress=true", "--" SECRET "=1"},
       "option #2: unknown, and looks like an API key"},
      {{"-o", SECRET "=1"}, "-o #1: unknown, and looks like an API key"},
      {{"--poll.max_age=1"},
       "poll.max_age: \"1\" needs a unit (ms, s, m, h, d)"},
      {{"--poll.min_interval=20m"},
       "poll.min_interval: 20m is greater than poll.max_interval (10m)"},
      {{"--poll.strategy=sweeps"},
       "poll.strategy: \"sweeps\" is not one of detail, sweep, auto"},
      {{"--output.cloudevents=structured"},
       "output.cloudevents: \"structured\" is not one of binary, off"},
      {{"--output.cloudevents_source=/a b"},
       "output.cloudevents_source: holds a character a URI-reference cannot "
       "(byte 3); percent-encode it"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *argv[6] = {"w"};
    for (size_t j = 0; j < 4 && bad[i].argv[j]; j++)
      argv[j + 1] = (char *)bad[i].argv[j];
    assert_int_equal(load(&cfg, argv, key_env, &action, err, sizeof(err)),
                     BRW_ECONFIG);
    assert_string_equal(err, bad[i].err);
    assert_null(strstr(err, SECRET));
    brw_config_free(&cfg);
  }

  /* --help and --version win over anything else and read no file. */
  char *h1[] = {"w", "--bogus", "--config", "/nonexistent", "-h", NULL};
  assert_int_equal(load(&cfg, h1, no_env, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_HELP);
  brw_config_free(&cfg);
  char *h2[] = {"w", "--check-config", "--help", "--version", NULL};
  assert_int_equal(load(&cfg, h2, no_env, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_HELP);
  brw_config_free(&cfg);
  char *v1[] = {"w", "-V", "--config", "/nonexistent", NULL};
  assert_int_equal(load(&cfg, v1, no_env, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_VERSION);
  brw_config_free(&cfg);
  /* A value that looks like a flag is still the value. */
  char *v2[] = {"w", "--worker.instance", "--help", "--api.key=k", NULL};
  assert_int_equal(load(&cfg, v2, no_env, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_RUN);
  assert_string_equal(cfg.instance_id, "--help");
  brw_config_free(&cfg);
  /* No argv at all. */
  brw_config_init(&cfg);
  assert_int_equal(
      brw_config_load(&cfg, 0, NULL, key_env, &action, err, sizeof(err)), 0);
  assert_int_equal(action, BRW_CONFIG_RUN);
  brw_config_free(&cfg);
}

/* event.sent_types and event.finished_types through brw_config_load, as
 * main runs it (BRW_ECONFIG: exit 2): every source, errors naming the key. */
static void test_event_types_load(void **state) {
  (void)state;
  char err[256];
  brw_config_t cfg;
  brw_config_action_t action;
  char e1[] = "BRW_EVENT_SENT_TYPES=com.example.sms.campaign.sent";
  char *envp[] = {key_env_default, e1, NULL};
  char *argv[] = {
      "w", "--event.finished_types=com.example.sms.campaign.finished", NULL};
  assert_int_equal(load(&cfg, argv, envp, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.event_sent_types, "com.example.sms.campaign.sent");
  assert_string_equal(cfg.event_finished_types,
                      "com.example.sms.campaign.finished");
  char *out = capture_print(&cfg);
  assert_non_null(strstr(out, "\nevent.sent_types = "
                              "com.example.sms.campaign.sent\n"));
  free(out);
  brw_config_free(&cfg);

  char *bad[] = {"w", "--event.sent_types=a,,b", NULL};
  assert_int_equal(load(&cfg, bad, key_env, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "event.sent_types: an empty name in the list "
                           "(\"a,,b\" or a comma at an end)");
  brw_config_free(&cfg);

  char e2[] = "BRW_EVENT_FINISHED_TYPES=com.example.sms.campaign.sent";
  char *envb[] = {key_env_default, e1, e2, NULL};
  char *none[] = {"w", NULL};
  assert_int_equal(load(&cfg, none, envb, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "event.finished_types: "
                           "\"com.example.sms.campaign.sent\" is also in "
                           "event.sent_types");
  brw_config_free(&cfg);
  /* Unset, they print as "" and read back as unset. */
  brw_config_init(&cfg);
  out = capture_print(&cfg);
  assert_non_null(strstr(out, "\nevent.sent_types = \"\"\n"));
  assert_non_null(strstr(out, "\nevent.finished_types = \"\"\n"));
  free(out);
  brw_config_free(&cfg);
}

static void test_env(void **state) {
  (void)state;
  char err[256];
  brw_config_t cfg;
  brw_config_action_t action;
  char *argv[] = {"w", NULL};

  char e1[] = "BRW_POLL_NOT_FOUND_GRACE=0s";
  char e2[] = "BRW_EMIT_PROGRESS=true";
  char e3[] = "BRW_API_URL=http://sim:8080/";
  char e4[] = "BRW_KAFKA_COMMIT_INTERVAL=250ms";
  char e5[] = "BRW_METRICS_LISTEN=off";
  char e6[] = "BRW_API_ALLOW_INSECURE=true"; /* sim is not loopback */
  char *envp[] = {key_env_default, e1, e2, e3, e4, e5, e6, NULL};
  assert_int_equal(load(&cfg, argv, envp, &action, err, sizeof(err)), 0);
  assert_int_equal(cfg.poll_not_found_grace_ms, 0);
  assert_int_equal(cfg.emit_progress, 1);
  assert_string_equal(cfg.api_url, "http://sim:8080");
  assert_int_equal(cfg.commit_interval_ms, 250);
  assert_int_equal(cfg.nkafka_common, 0); /* a table key, not pass-through */
  assert_string_equal(cfg.metrics_listen, "off");
  brw_config_free(&cfg);

  /* Errors name the variable and the key. */
  char b1[] = "BRW_POLL_MIN_INTERVAL=15";
  char *envb[] = {key_env_default, b1, NULL};
  assert_int_equal(load(&cfg, argv, envb, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "environment BRW_POLL_MIN_INTERVAL: "
                           "poll.min_interval: \"15\" needs a unit (ms, s, "
                           "m, h, d)");
  brw_config_free(&cfg);

  char b2[] = "BRW_ACCOUNTS_SALES=x";
  char *envc[] = {key_env_default, b2, NULL};
  assert_int_equal(load(&cfg, argv, envc, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "environment BRW_ACCOUNTS_SALES: expected "
                           "BRW_ACCOUNTS_<NAME>_KEY or "
                           "BRW_ACCOUNTS_<NAME>_KEY_FILE");
  brw_config_free(&cfg);

  char b3[] = "BRW_KAFKA_NO_SUCH_THING=1";
  char *envd[] = {key_env_default, b3, NULL};
  assert_int_equal(load(&cfg, argv, envd, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "environment BRW_KAFKA_NO_SUCH_THING: "
                           "kafka.no.such.thing: unknown librdkafka property "
                           "\"no.such.thing\"");
  brw_config_free(&cfg);
}

static void test_env_names(void **state) {
  (void)state;
  brw_config_key_info_t ki, kj;
  char a[128], b[128];
  size_t n = 0;
  assert_int_equal(brw_config_env_name("poll.max_age", a, sizeof(a)), 0);
  assert_string_equal(a, "BRW_POLL_MAX_AGE");
  assert_int_equal(brw_config_env_name("a.b_c", a, sizeof(a)), 0);
  assert_string_equal(a, "BRW_A_B_C");
  assert_int_equal(brw_config_env_name("poll.max_age", a, 8), BRW_ERANGE);
  while (brw_config_key_info(n, &ki) == 0)
    n++;
  assert_int_equal(n, 51);
  assert_int_equal(brw_config_key_info(n, &ki), BRW_ENOENT);
  /* No two keys share a variable. */
  for (size_t i = 0; i < n; i++) {
    brw_config_key_info(i, &ki);
    brw_config_env_name(ki.name, a, sizeof(a));
    for (size_t j = i + 1; j < n; j++) {
      brw_config_key_info(j, &kj);
      brw_config_env_name(kj.name, b, sizeof(b));
      assert_string_not_equal(a, b);
    }
  }
}

static void test_accounts(void **state) {
  (void)state;
  char path[64], err[256];
  brw_config_t cfg;
  brw_config_action_t action;
  write_temp(path, sizeof(path),
             "accounts.Marketing.key = m-key\n"
             "accounts.eu-1.key = eu-key\n");
  char e1[] = "BRW_ACCOUNTS_SALES_TEAM_KEY=s-key";
  char e2[] = "BRW_ACCOUNTS_EU-1_KEY=eu-env-key"; /* lower-cased: eu-1 */
  char *envp[] = {e1, e2, NULL};
  char *argv[] = {"w", "--config", path, "--accounts.default.key=d-key", NULL};
  assert_int_equal(load(&cfg, argv, envp, &action, err, sizeof(err)), 0);
  assert_int_equal(cfg.naccounts, 4);
  int m = brw_config_account_index(&cfg, "Marketing");
  int e = brw_config_account_index(&cfg, "eu-1");
  int s = brw_config_account_index(&cfg, "sales_team");
  int d = brw_config_account_index(&cfg, "default");
  assert_true(m >= 0 && e >= 0 && s >= 0 && d >= 0);
  assert_string_equal(cfg.accounts[m].key, "m-key");
  assert_string_equal(cfg.accounts[e].key, "eu-env-key");
  assert_string_equal(cfg.accounts[s].key, "s-key");
  assert_string_equal(cfg.accounts[d].key, "d-key");
  assert_int_equal(brw_config_account_index(&cfg, "marketing"), -1);
  assert_int_equal(brw_config_account_index(&cfg, "nobody"), -1);
  brw_config_free(&cfg);
  unlink(path);

  /* Names: 64 characters are fine, 65 are not; the key is required. */
  char name[80], key[100];
  brw_config_init(&cfg);
  memset(name, 'a', 64);
  name[64] = '\0';
  snprintf(key, sizeof(key), "accounts.%s.key", name);
  assert_int_equal(brw_config_set(&cfg, key, "k", err, sizeof(err)), 0);
  memset(name, 'b', 65);
  name[65] = '\0';
  snprintf(key, sizeof(key), "accounts.%s.key", name);
  assert_int_equal(brw_config_set(&cfg, key, "k", err, sizeof(err)),
                   BRW_ECONFIG);
  assert_non_null(strstr(err, "invalid account name"));
  assert_int_equal(brw_config_set(&cfg, "accounts..key", "k", err, sizeof(err)),
                   BRW_ECONFIG);
  assert_int_equal(brw_config_set(&cfg, "accounts.x.key", "", err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "accounts.x.key: must not be empty");
  assert_int_equal(
      brw_config_set(&cfg, "accounts.x.secret", "k", err, sizeof(err)),
      BRW_ECONFIG);
  assert_string_equal(err, "unknown key \"accounts.x.secret\"");
  assert_int_equal(cfg.naccounts, 1);
  /* An account alone satisfies the key requirement. */
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), 0);
  brw_config_free(&cfg);
}

static void test_key_file(void **state) {
  (void)state;
  char kpath[64], kpath2[64], epath[64], mpath[64], err[512], expect[600];
  brw_config_t cfg;
  brw_config_action_t action;
  write_temp(kpath, sizeof(kpath), "  \n" SECRET "\r\n\n");
  write_temp(kpath2, sizeof(kpath2), "acct-key");
  write_temp(epath, sizeof(epath), " \n\t\n");
  write_temp(mpath, sizeof(mpath), "line1\nline2\n");

  char argk[96], argk2[96];
  snprintf(argk, sizeof(argk), "--api.key_file=%s", kpath);
  snprintf(argk2, sizeof(argk2), "accounts.ops.key_file=%s", kpath2);
  char *argv[] = {"w", argk, "-o", argk2, NULL};
  assert_int_equal(load(&cfg, argv, no_env, &action, err, sizeof(err)), 0);
  int d = brw_config_account_index(&cfg, "default");
  int o = brw_config_account_index(&cfg, "ops");
  assert_true(d >= 0 && o >= 0);
  assert_string_equal(cfg.accounts[d].key, SECRET);
  assert_string_equal(cfg.accounts[d].key_file, kpath);
  assert_string_equal(cfg.accounts[o].key, "acct-key");
  brw_config_free(&cfg);

  /* Via the environment; the file beats the plain key in one source. */
  char ev[96];
  snprintf(ev, sizeof(ev), "BRW_API_KEY_FILE=%s", kpath);
  char ek[] = "BRW_API_KEY=plain";
  char *envp[] = {ek, ev, NULL};
  char *argv0[] = {"w", NULL};
  assert_int_equal(load(&cfg, argv0, envp, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.accounts[0].key, SECRET);
  brw_config_free(&cfg);

  /* A plain key given later forgets the file. */
  char *argv1[] = {"w", argk, "--api.key=direct", NULL};
  assert_int_equal(load(&cfg, argv1, no_env, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.accounts[0].key, "direct");
  assert_null(cfg.accounts[0].key_file);
  brw_config_free(&cfg);

  const char *bad[][2] = {
      {epath, "api.key_file: \"%s\" is empty"},
      {mpath, "api.key_file: \"%s\" holds more than one word"},
      {"/nonexistent/key",
       "api.key_file: cannot read \"%s\": No such file or directory"},
      {"/", "api.key_file: cannot read \"%s\": Is a directory"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char arg[96];
    snprintf(arg, sizeof(arg), "--api.key_file=%s", bad[i][0]);
    char *argvb[] = {"w", arg, NULL};
    assert_int_equal(load(&cfg, argvb, key_env, &action, err, sizeof(err)),
                     BRW_ECONFIG);
    snprintf(expect, sizeof(expect), bad[i][1], bad[i][0]);
    assert_string_equal(err, expect);
    brw_config_free(&cfg);
  }
  unlink(kpath);
  unlink(kpath2);
  unlink(epath);
  unlink(mpath);
}

static void test_kafka_passthrough(void **state) {
  (void)state;
  char path[64], err[256];
  brw_config_t cfg;
  brw_config_action_t action;
  write_temp(path, sizeof(path),
             "kafka.security.protocol = plaintext\n"
             "kafka.client.rack = r1\n"
             "kafka.consumer.session.timeout.ms = 45000\n"
             "kafka.producer.linger.ms = 20\n");
  char e1[] = "BRW_KAFKA_CLIENT_RACK=r2";
  char e2[] = "BRW_KAFKA_PRODUCER_LINGER_MS=30";
  char e3[] = "BRW_KAFKA_CONSUMER_FETCH_MAX_BYTES=1000000";
  char *envp[] = {key_env_default, e1, e2, e3, NULL};
  char *argv[] = {"w",
                  "--config",
                  path,
                  "--kafka.socket.keepalive.enable",
                  "true",
                  "-o",
                  "kafka.producer.linger.ms=40",
                  NULL};
  assert_int_equal(load(&cfg, argv, envp, &action, err, sizeof(err)), 0);
  assert_int_equal(cfg.nkafka_common, 3);
  assert_string_equal(cfg.kafka_common[0].key, "security.protocol");
  assert_string_equal(cfg.kafka_common[0].value, "plaintext");
  assert_string_equal(cfg.kafka_common[1].key, "client.rack");
  assert_string_equal(cfg.kafka_common[1].value, "r2"); /* env over file */
  assert_string_equal(cfg.kafka_common[2].key, "socket.keepalive.enable");
  assert_int_equal(cfg.nkafka_consumer, 2);
  assert_string_equal(cfg.kafka_consumer[0].key, "session.timeout.ms");
  assert_string_equal(cfg.kafka_consumer[1].key, "fetch.max.bytes");
  assert_string_equal(cfg.kafka_consumer[1].value, "1000000");
  assert_int_equal(cfg.nkafka_producer, 1);
  assert_string_equal(cfg.kafka_producer[0].key, "linger.ms");
  assert_string_equal(cfg.kafka_producer[0].value, "40"); /* flag wins */
  brw_config_free(&cfg);
  unlink(path);

  brw_config_init(&cfg);
  assert_int_equal(
      brw_config_set(&cfg, "kafka.consumer.", "1", err, sizeof(err)),
      BRW_ECONFIG);
  assert_string_equal(err, "kafka.consumer.: missing librdkafka property "
                           "name");
  assert_int_equal(brw_config_set(&cfg, "kafka.session.timeout.ms", "soon", err,
                                  sizeof(err)),
                   BRW_ECONFIG);
  assert_non_null(strstr(err, "kafka.session.timeout.ms: "));
  /* Double underscore stands for an underscore. */
  char e4[] = "BRW_KAFKA_A__B=1";
  char *envp2[] = {key_env_default, e4, NULL};
  char *argv2[] = {"w", NULL};
  brw_config_free(&cfg);
  assert_int_equal(load(&cfg, argv2, envp2, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "environment BRW_KAFKA_A__B: kafka.a_b: unknown "
                           "librdkafka property \"a_b\"");
  brw_config_free(&cfg);
}

static void test_validate(void **state) {
  (void)state;
  static const struct {
    const char *key, *value, *err;
  } cases[] = {
      {"retry.min", "10m", "retry.min: 10m is greater than retry.max (5m)"},
      {"topic.output", "bsg.campaign.events",
       "topic.output: must differ from topic.input (both "
       "\"bsg.campaign.events\")"},
      {"topic.dlq", "bsg.campaign.events",
       "topic.dlq: must differ from topic.input (both "
       "\"bsg.campaign.events\")"},
  };
  char err[256];
  brw_config_t cfg;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    brw_config_init(&cfg);
    assert_int_equal(brw_config_set(&cfg, "api.key", "k", err, sizeof(err)), 0);
    assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), 0);
    assert_int_equal(
        brw_config_set(&cfg, cases[i].key, cases[i].value, err, sizeof(err)),
        0);
    assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
    assert_string_equal(err, cases[i].err);
    brw_config_free(&cfg);
  }

  /* A type name in both lists, however it is spaced. */
  brw_config_init(&cfg);
  brw_config_set(&cfg, "api.key", "k", err, sizeof(err));
  assert_int_equal(brw_config_set(&cfg, "event.sent_types",
                                  "com.a.sent, com.a.both", err, sizeof(err)),
                   0);
  assert_int_equal(brw_config_set(&cfg, "event.finished_types",
                                  "com.a.finished,com.a.both ", err,
                                  sizeof(err)),
                   0);
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_string_equal(err, "event.finished_types: \"com.a.both\" is also in "
                           "event.sent_types");
  brw_config_set(&cfg, "event.finished_types", "com.a.finished", err,
                 sizeof(err));
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), 0);
  /* Written directly, a bad list is found too. */
  free(cfg.event_sent_types);
  cfg.event_sent_types = strdup("a,,b");
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_non_null(strstr(err, "event.sent_types: an empty name"));
  brw_config_free(&cfg);

  /* Fields written directly are checked too, by the same rules. */
  brw_config_init(&cfg);
  brw_config_set(&cfg, "api.key", "k", err, sizeof(err));
  free(cfg.api_timezone);
  cfg.api_timezone = strdup("Europe/Nowhere");
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_non_null(strstr(err, "api.timezone: \"Europe/Nowhere\" is not a "
                              "time zone (no file "));
  brw_config_set(&cfg, "api.timezone", "Z", err, sizeof(err));
  cfg.http_timeout_ms = 0;
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_string_equal(err, "http.timeout: 0s must be greater than 0 and at "
                           "most 365d");
  cfg.http_timeout_ms = 1;
  cfg.poll_jitter = -0.5;
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_string_equal(err, "poll.jitter: -0.5 must be between 0 and 1");
  cfg.poll_jitter = 0.5;
  free(cfg.api_url);
  cfg.api_url = strdup("one-api.bsg.world");
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_string_equal(err, "api.url: \"one-api.bsg.world\" must start with "
                           "http:// or https:// and a host");
  free(cfg.brokers);
  cfg.brokers = NULL;
  assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), BRW_ECONFIG);
  assert_string_equal(err, "brokers: must not be empty");
  brw_config_free(&cfg);
}

static void test_print_redaction(void **state) {
  (void)state;
  char err[256];
  brw_config_t cfg;
  brw_config_init(&cfg);
  assert_int_equal(brw_config_set(&cfg, "api.key", SECRET, err, sizeof(err)),
                   0);
  assert_int_equal(
      brw_config_set(&cfg, "accounts.ops.key", "ops_" SECRET, err, sizeof(err)),
      0);
  assert_int_equal(brw_config_set(&cfg, "kafka.sasl.password", "pw_" SECRET,
                                  err, sizeof(err)),
                   0);
  assert_int_equal(brw_config_set(&cfg, "kafka.consumer.ssl.key.password",
                                  "kp_" SECRET, err, sizeof(err)),
                   0);
  assert_int_equal(
      brw_config_set(&cfg, "kafka.sasl.username", "alice", err, sizeof(err)),
      0);
  assert_int_equal(
      brw_config_set(&cfg, "poll.initial_delay", "1500ms", err, sizeof(err)),
      0);
  char *out = capture_print(&cfg);
  assert_null(strstr(out, SECRET));
  assert_int_equal(count(out, "[REDACTED]"), 4);
  assert_non_null(strstr(out, "\napi.key = [REDACTED]\n"));
  assert_non_null(strstr(out, "\naccounts.ops.key = [REDACTED]\n"));
  assert_non_null(strstr(out, "\nkafka.sasl.password = [REDACTED]\n"));
  assert_non_null(
      strstr(out, "\nkafka.consumer.ssl.key.password = [REDACTED]\n"));
  assert_non_null(strstr(out, "\nkafka.sasl.username = alice\n"));
  assert_non_null(strstr(out, "\npoll.max_age = 72h\n"));
  assert_non_null(strstr(out, "\npoll.initial_delay = 1500ms\n"));
  assert_non_null(strstr(out, "\nkafka.commit_interval = 1s\n"));
  assert_non_null(strstr(out, "\nhttp.max_response = 1MiB\n"));
  assert_non_null(strstr(out, "\nevent.max_size = 64KiB\n"));
  assert_non_null(strstr(out, "\npoll.jitter = 0.2\n"));
  assert_non_null(strstr(out, "\nemit.progress = false\n"));
  assert_non_null(strstr(out, "\nhttp.ca_file = \"\"\n"));
  assert_int_equal(strncmp(out, "brokers = 127.0.0.1:9092\n", 25), 0);
  /* Every key of the table is printed once. */
  brw_config_key_info_t ki;
  char line[128];
  for (size_t i = 0; brw_config_key_info(i, &ki) == 0; i++) {
    snprintf(line, sizeof(line), "\n%s = ", ki.name);
    assert_int_equal(count(out, line) + (i == 0), 1);
  }
  free(out);
  brw_config_free(&cfg);
}

/* Issue 10 item 6: plain http:// to a host other than loopback sent the API
 * key and the bearers in clear text without a word. It is refused unless
 * api.allow_insecure is true; loopback stays allowed. */
static void test_insecure_url(void **state) {
  (void)state;
  static const struct {
    const char *url;
    int ok; /* allowed without api.allow_insecure */
  } cases[] = {
      {"https://one-api.bsg.world", 1},
      {"HTTPS://api.example.com:8443/base/", 1},
      {"http://127.0.0.1:8080", 1},
      {"http://127.5.6.7", 1},
      {"http://localhost:1/x", 1},
      {"http://LocalHost./", 1},
      {"http://[::1]:8080", 1},
      {"http://[0:0:0:0:0:0:0:1]/", 1},
      {"http://[::ffff:127.0.0.1]:80", 1},
      {"http://user:pw@127.0.0.1:9", 1},
      {"http://sim:8080", 0},
      {"HTTP://api.example.com", 0},
      {"http://10.0.0.1", 0},
      {"http://128.0.0.1", 0},
      {"http://localhost.example.com", 0},
      {"http://127.0.0.1.nip.io", 0},
      {"http://127.1", 0}, /* not parsed as 127.0.0.1 here: refused */
      {"http://[::2]", 0},
      {"http://127.0.0.1@example.com/", 0}, /* the host is example.com */
      {"http://localhost:pw@example.com", 0},
  };
  char err[512];
  brw_config_t cfg;
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    brw_config_init(&cfg);
    assert_int_equal(brw_config_set(&cfg, "api.key", SECRET, err, sizeof(err)),
                     0);
    assert_int_equal(
        brw_config_set(&cfg, "api.url", cases[i].url, err, sizeof(err)), 0);
    int rc = brw_config_validate(&cfg, err, sizeof(err));
    if (cases[i].ok) {
      if (rc != 0)
        fail_msg("%s: %s", cases[i].url, err);
    } else {
      if (rc != BRW_ECONFIG)
        fail_msg("%s was allowed", cases[i].url);
      assert_int_equal(strncmp(err, "api.url: \"", 10), 0);
      assert_non_null(strstr(err, "api.allow_insecure=true"));
      /* With the flag, it is allowed. */
      assert_int_equal(
          brw_config_set(&cfg, "api.allow_insecure", "true", err, sizeof(err)),
          0);
      assert_int_equal(brw_config_validate(&cfg, err, sizeof(err)), 0);
    }
    brw_config_free(&cfg);
  }

  /* Through brw_config_load (main exits 2 on BRW_ECONFIG), from every
   * source; the error does not quote the URL's password. */
  brw_config_action_t action;
  char *a1[] = {"w", "--api.url=http://bob:pa55w0rd@api.example.com/",
                "--check-config", NULL};
  assert_int_equal(load(&cfg, a1, key_env, &action, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(
      err, "api.url: \"http://[REDACTED]@api.example.com\" is plain http:// "
           "to a host other than loopback, which would send the API key and "
           "bearers in clear text; use https://, or set "
           "api.allow_insecure=true");
  brw_config_free(&cfg);
  char *a2[] = {"w", "--api.url=http://api.example.com",
                "--api.allow_insecure=yes", NULL};
  assert_int_equal(load(&cfg, a2, key_env, &action, err, sizeof(err)), 0);
  assert_int_equal(cfg.api_allow_insecure, 1);
  brw_config_free(&cfg);

  assert_int_equal(brw_config_url_is_loopback(NULL), 0);
  assert_int_equal(brw_config_url_is_loopback("no-scheme"), 0);
  assert_int_equal(brw_config_url_is_loopback("http://[::1"), 0);
  assert_int_equal(brw_config_url_is_loopback("http://"), 0);
}

/* Issue 10 item 7: --check-config printed the user:pass@ of api.url, and the
 * errors quoted it. Also the librdkafka properties that hold credentials. */
static void test_url_userinfo_redacted(void **state) {
  (void)state;
  char buf[128], err[512];
  static const struct {
    const char *in, *out;
  } cases[] = {
      {"https://bob:pa55w0rd@h:1/p?q=a@b", "https://[REDACTED]@h:1/p?q=a@b"},
      {"https://tok@h", "https://[REDACTED]@h"},
      {"https://h/p@x", "https://h/p@x"}, /* an '@' in the path is not */
      {"SASL_SSL://a:b@k1:9092,SSL://k2:9093",
       "SASL_SSL://[REDACTED]@k1:9092,SSL://k2:9093"},
      {"x://a@b y://c@d", "x://[REDACTED]@b y://[REDACTED]@d"},
      {"no url here", "no url here"},
      {"", ""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    assert_string_equal(brw_config_redact_url(cases[i].in, buf, sizeof(buf)),
                        cases[i].out);
  /* Cut short, the userinfo is still never copied. */
  char small[12];
  assert_string_equal(
      brw_config_redact_url("https://pa55w0rd@h", small, sizeof(small)),
      "https://[RE");
  assert_string_equal(brw_config_redact_url(NULL, buf, sizeof(buf)), "");

  brw_config_t cfg;
  brw_config_init(&cfg);
  assert_int_equal(brw_config_set(&cfg, "api.key", SECRET, err, sizeof(err)),
                   0);
  assert_int_equal(brw_config_set(&cfg, "api.url",
                                  "https://bob:pa55w0rd@api.example.com/", err,
                                  sizeof(err)),
                   0);
  /* Any pass-through value with a URL (sasl.oauthbearer.token.endpoint.url
   * is one, but Debian's librdkafka 2.0.2 is built without OIDC). */
  assert_int_equal(brw_config_set(&cfg, "kafka.client.rack",
                                  "https://cid:pa55w0rd@idp.example.com/token",
                                  err, sizeof(err)),
                   0);
  static const char *const secret_props[] = {
      "kafka.sasl.oauthbearer.client.secret",
      "kafka.sasl.oauthbearer.extensions", "kafka.ssl.keystore.password",
      "kafka.producer.ssl.key.pem", "kafka.sasl.kerberos.kinit.cmd",
      "kafka.sasl.oauthbearer.config",
      /* librdkafka >= 2.10 (OIDC JWT assertion); unknown to 2.0.2 */
      "kafka.sasl.oauthbearer.assertion.private.key.passphrase",
      "kafka.sasl.oauthbearer.assertion.private.key.pem"};
  int set[sizeof(secret_props) / sizeof(secret_props[0])];
  for (size_t i = 0; i < sizeof(secret_props) / sizeof(secret_props[0]); i++) {
    /* The OIDC ones are refused by a librdkafka built without OIDC (Debian's
     * 2.0.2), with librdkafka's reason, which does not hold the value. */
    set[i] = brw_config_set(&cfg, secret_props[i], "pa55w0rd", err,
                            sizeof(err)) == 0;
    if (!set[i]) {
      assert_null(strstr(err, "pa55w0rd"));
      if (!strstr(err, "not supported in this build"))
        assert_non_null(strstr(err, "unknown librdkafka property"));
    }
  }
  assert_int_equal(brw_config_set(&cfg, "http.proxy",
                                  "http://bob:pa55w0rd@proxy:3128", err,
                                  sizeof(err)),
                   0);
  char *out = capture_print(&cfg);
  assert_null(strstr(out, "pa55w0rd"));
  assert_null(strstr(out, SECRET));
  assert_non_null(
      strstr(out, "\nhttp.proxy = http://[REDACTED]@proxy:3128\n"));
  assert_non_null(
      strstr(out, "\napi.url = https://[REDACTED]@api.example.com\n"));
  assert_non_null(strstr(out, "\nkafka.client.rack = "
                              "https://[REDACTED]@idp.example.com/token\n"));
  for (size_t i = 0; i < sizeof(secret_props) / sizeof(secret_props[0]); i++) {
    char line[128];
    if (!set[i])
      continue;
    snprintf(line, sizeof(line), "\n%s = [REDACTED]\n", secret_props[i]);
    assert_non_null(strstr(out, line));
  }
  free(out);

  /* Errors that quote a URL leave its userinfo out. */
  assert_int_equal(
      brw_config_set(&cfg, "api.url", "ftp://bob:pa55w0rd@h", err, sizeof(err)),
      BRW_ECONFIG);
  assert_string_equal(err, "api.url: \"ftp://[REDACTED]@h\" must start with "
                           "http:// or https:// and a host");
  assert_int_equal(
      brw_config_set(&cfg, "api.url", "bob:pa55w0rd@h", err, sizeof(err)),
      BRW_ECONFIG);
  assert_string_equal(
      err, "api.url: must start with http:// or https:// and a host");
  brw_config_free(&cfg);
}

/* Issue 10 item 7, the rest of the class: every secret the configuration
 * holds is redacted from the log once pinned, and the environment variables
 * that carried secrets are wiped in place (a child process, or
 * /proc/PID/environ, would show them). */
static void test_pin_and_scrub_secrets(void **state) {
  (void)state;
  char err[512], out[512];
  brw_config_t cfg;
  brw_config_action_t action;
  char v1[] = "BSG_API_KEY=" SECRET;
  char v2[] = "BRW_ACCOUNTS_OPS_KEY=ops_" SECRET;
  char v3[] = "BRW_KAFKA_SASL_PASSWORD=pw_" SECRET;
  char v4[] = "BRW_KAFKA_CONSUMER_SSL_KEY_PASSWORD=kp_" SECRET;
  char v5[] = "BRW_API_URL=https://bob:url_pa55@api.example.com";
  char v6[] = "BRW_KAFKA_SASL_USERNAME=alice";
  char v7[] = "BRW_ACCOUNTS_OPS_KEY_FILE="; /* empty: ignored */
  char v8[] = "BRW_API_KEY_FILE_X=1";
  char v9[] = "HOME=/root";
  char *envp[] = {v1, v2, v3, v4, v5, v6, v7, v8, v9, NULL};
  char *argv[] = {"w", NULL};
  assert_int_equal(load(&cfg, argv, envp, &action, err, sizeof(err)), 0);

  brw_log_cleanup();
  brw_config_pin_secrets(&cfg);
  brw_log_redact_into("a " SECRET " b ops_" SECRET " c pw_" SECRET
                      " d kp_" SECRET " e bob:url_pa55 f url_pa55 g alice",
                      out, sizeof(out));
  assert_string_equal(out, "a [REDACTED] b [REDACTED] c [REDACTED] d "
                           "[REDACTED] e [REDACTED] f [REDACTED] g alice");
  brw_log_cleanup();

  assert_int_equal(brw_config_scrub_env(envp), 4);
  /* The names stay, the values are gone, byte for byte. */
  assert_string_equal(v1, "BSG_API_KEY=");
  assert_int_equal(v1[sizeof(v1) - 2], '\0');
  assert_string_equal(v2, "BRW_ACCOUNTS_OPS_KEY=");
  assert_string_equal(v3, "BRW_KAFKA_SASL_PASSWORD=");
  assert_string_equal(v4, "BRW_KAFKA_CONSUMER_SSL_KEY_PASSWORD=");
  /* A URL is not a secret variable; its userinfo is redacted elsewhere. */
  assert_string_equal(v5, "BRW_API_URL=https://bob:url_pa55@api.example.com");
  assert_string_equal(v6, "BRW_KAFKA_SASL_USERNAME=alice");
  assert_string_equal(v9, "HOME=/root");
  /* The configuration kept its own copies. */
  assert_string_equal(cfg.accounts[0].key, SECRET);
  brw_config_free(&cfg);

  /* On the real environment, the variable is unset too. */
  assert_int_equal(setenv("BRW_API_KEY", "live_env_" SECRET, 1), 0);
  extern char **environ;
  char *before = getenv("BRW_API_KEY");
  assert_non_null(before);
  assert_true(brw_config_scrub_env(environ) >= 1);
  assert_null(getenv("BRW_API_KEY"));
  assert_null(getenv("BSG_API_KEY"));
}

/* The printed configuration reads back as a config file, to the same
 * effective configuration. */
static void test_print_roundtrip(void **state) {
  (void)state;
  char path[64], err[256];
  brw_config_t cfg;
  brw_config_action_t action;
  char *argv[] = {"w",
                  "--api.key=k",
                  "--group.id= spaced # group ",
                  "--poll.jitter=0.35",
                  "--api.rate_limit=7.25",
                  "--http.max_response=1536B",
                  "--retry.min=90s",
                  "--metrics.listen=",
                  "--kafka.client.id=a#b",
                  "--accounts.x.key=xk",
                  NULL};
  assert_int_equal(load(&cfg, argv, no_env, &action, err, sizeof(err)), 0);
  char *first = capture_print(&cfg);
  brw_config_free(&cfg);
  assert_non_null(strstr(first, "\ngroup.id = \"spaced # group\"\n"));
  write_temp(path, sizeof(path), first);
  char *argv2[] = {"w", "--config", path, NULL};
  assert_int_equal(load(&cfg, argv2, no_env, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.group_id, "spaced # group");
  char *second = capture_print(&cfg);
  assert_string_equal(first, second);
  free(first);
  free(second);
  brw_config_free(&cfg);
  unlink(path);
}

/* Found by fuzz/fuzz_config.c: with only accounts.<name>.key the printed
 * `api.key = ""` did not read back; "http://h  /" kept its spaces once the
 * '/' was removed and read back as another URL; a librdkafka error made a
 * two-line message. All through brw_config_load_text, the fuzz target's
 * entry point. */
static void test_fuzz_regressions(void **state) {
  (void)state;
  static const char text[] = "accounts.eu.key = k\n";
  char err[256];
  brw_config_t cfg;
  brw_config_init(&cfg);
  assert_int_equal(brw_config_load_text(&cfg, "t.conf", text, sizeof(text) - 1,
                                        err, sizeof(err)),
                   0);
  char *first = capture_print(&cfg);
  brw_config_free(&cfg);
  assert_non_null(strstr(first, "\n#api.key =\n"));
  brw_config_init(&cfg);
  assert_int_equal(brw_config_load_text(&cfg, "t.conf", first, strlen(first),
                                        err, sizeof(err)),
                   0);
  char *second = capture_print(&cfg);
  assert_string_equal(first, second);
  free(first);
  free(second);
  brw_config_free(&cfg);

  static const char url[] = "api.url = http://h  /\n";
  brw_config_init(&cfg);
  assert_int_equal(brw_config_load_text(&cfg, "t.conf", url, sizeof(url) - 1,
                                        err, sizeof(err)),
                   BRW_ECONFIG);
  assert_string_equal(err, "t.conf:1: api.url: must not contain spaces or "
                           "control characters");
  brw_config_free(&cfg);
  /* librdkafka's message ends in a newline; the error stays one line. */
  static const char kafka[] = "kafka.producer.linger.ms = 850000000076\n";
  brw_config_init(&cfg);
  assert_int_equal(brw_config_load_text(&cfg, "t.conf", kafka,
                                        sizeof(kafka) - 1, err, sizeof(err)),
                   BRW_ECONFIG);
  assert_null(strchr(err, '\n'));
  assert_int_equal(strncmp(err, "t.conf:1: kafka.producer.linger.ms: ", 36), 0);
  assert_true(err[strlen(err) - 1] != ' ');
  brw_config_free(&cfg);
  /* No NUL terminator is needed, and a NUL ends its line. */
  static const char nul[] = "log.level = debug\0junk\nlog.format = text";
  brw_config_init(&cfg);
  assert_int_equal(brw_config_load_text(&cfg, "t.conf", nul, sizeof(nul) - 1,
                                        err, sizeof(err)),
                   0);
  assert_string_equal(cfg.log_level, "debug");
  assert_string_equal(cfg.log_format, "text");
  brw_config_free(&cfg);
}

static void test_usage_lists_every_key(void **state) {
  (void)state;
  char *out = capture_usage();
  brw_config_key_info_t ki;
  char needle[160], env[128];
  size_t n = 0;
  assert_int_equal(strncmp(out, "Usage: bsg-report-worker ", 25), 0);
  for (size_t i = 0; brw_config_key_info(i, &ki) == 0; i++, n++) {
    snprintf(needle, sizeof(needle), "  --%s=", ki.name);
    assert_non_null(strstr(out, needle));
    brw_config_env_name(ki.name, env, sizeof(env));
    snprintf(needle, sizeof(needle), "env %s", env);
    assert_non_null(strstr(out, needle));
    assert_non_null(strstr(out, ki.doc));
    if (ki.def) {
      snprintf(needle, sizeof(needle), "(default %s)", ki.def);
      assert_non_null(strstr(out, needle));
    }
  }
  assert_true(n > 30);
  for (const char *p = out; *p;) {
    const char *nl = strchr(p, '\n');
    assert_non_null(nl);
    assert_true(nl - p <= 80);
    p = nl + 1;
  }
  assert_non_null(strstr(out, "BSG_API_KEY"));
  assert_non_null(strstr(out, "--accounts.<name>.key"));
  assert_non_null(strstr(out, "--kafka.<property>"));
  assert_non_null(strstr(out, "--check-config"));
  free(out);
}

/* The example config lists every key of the table as `#key = default`, and
 * uncommenting all of them gives a file that loads cleanly. */
static void test_example_conf(void **state) {
  (void)state;
  char path[1024], tmp[64], err[512];
  brw_config_key_info_t ki;
  src_path(path, sizeof(path), "deploy/bsg-report-worker.conf.example");
  char *text = slurp(path);
  char *on = malloc(strlen(text) + 1);
  assert_non_null(on);

  /* As shipped, it parses and sets nothing. */
  brw_config_t cfg, def;
  brw_config_action_t action;
  char *argv[] = {"w", "--config", path, NULL};
  assert_int_equal(load(&cfg, argv, key_env, &action, err, sizeof(err)), 0);
  brw_config_init(&def);
  brw_config_set(&def, "api.key", SECRET, err, sizeof(err));
  char *p1 = capture_print(&cfg), *p2 = capture_print(&def);
  assert_string_equal(p1, p2);
  free(p1);
  free(p2);
  brw_config_free(&cfg);
  brw_config_free(&def);

  for (size_t i = 0; brw_config_key_info(i, &ki) == 0; i++) {
    char needle[160];
    snprintf(needle, sizeof(needle), "\n#%s = ", ki.name);
    const char *at = strstr(text, needle);
    assert_non_null(at);
    if (ki.def && ki.def[0] != '<') {
      snprintf(needle, sizeof(needle), "\n#%s = %s\n", ki.name, ki.def);
      assert_non_null(strstr(text, needle));
    }
  }
  assert_non_null(strstr(text, "\n#accounts.marketing.key = "));
  assert_non_null(strstr(text, "\n#accounts.marketing.key_file = "));
  assert_non_null(strstr(text, "\n#kafka.consumer."));
  assert_non_null(strstr(text, "\n#kafka.producer."));

  /* Uncomment every setting except the key files (which name files that do
   * not exist here). */
  size_t n = 0, settings = 0;
  for (const char *p = text; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (p[0] == '#' && p[1] >= 'a' && p[1] <= 'z' && eq &&
        !(eq - p > 9 && !memcmp(eq - 10, ".key_file ", 10))) {
      memcpy(on + n, p + 1, len - 1);
      n += len - 1;
      settings++;
    } else {
      memcpy(on + n, p, len);
      n += len;
    }
    p += len;
  }
  on[n] = '\0';
  assert_int_equal(settings, 59); /* 50 keys, 1 account, 8 kafka */
  write_temp(tmp, sizeof(tmp), on);
  char *argv2[] = {"w", "--config", tmp, NULL};
  assert_int_equal(load(&cfg, argv2, no_env, &action, err, sizeof(err)), 0);
  assert_string_equal(cfg.instance_id, "worker-1");
  assert_int_equal(cfg.naccounts, 2);
  assert_true(cfg.nkafka_common >= 4);
  brw_config_free(&cfg);
  unlink(tmp);
  free(on);
  free(text);
}

/* docs/configuration.md documents every key with its variable and default. */
static void test_docs_list_every_key(void **state) {
  (void)state;
  char path[1024], needle[200], env[128];
  brw_config_key_info_t ki;
  src_path(path, sizeof(path), "docs/configuration.md");
  char *text = slurp(path);
  for (size_t i = 0; brw_config_key_info(i, &ki) == 0; i++) {
    brw_config_env_name(ki.name, env, sizeof(env));
    snprintf(needle, sizeof(needle), "| `%s` | `%s`", ki.name, env);
    assert_non_null(strstr(text, needle));
    if (ki.def) {
      snprintf(needle, sizeof(needle), "| `%s` | `%s`", env, ki.def);
      assert_non_null(strstr(text, needle));
    }
  }
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_parse_duration),
      cmocka_unit_test(test_parse_size),
      cmocka_unit_test(test_parse_bool),
      cmocka_unit_test(test_set_good),
      cmocka_unit_test(test_set_bad),
      cmocka_unit_test(test_precedence),
      cmocka_unit_test(test_file_syntax),
      cmocka_unit_test(test_file_errors),
      cmocka_unit_test(test_flags),
      cmocka_unit_test(test_env),
      cmocka_unit_test(test_event_types_load),
      cmocka_unit_test(test_env_names),
      cmocka_unit_test(test_accounts),
      cmocka_unit_test(test_key_file),
      cmocka_unit_test(test_kafka_passthrough),
      cmocka_unit_test(test_validate),
      cmocka_unit_test(test_print_redaction),
      cmocka_unit_test(test_insecure_url),
      cmocka_unit_test(test_url_userinfo_redacted),
      cmocka_unit_test(test_pin_and_scrub_secrets),
      cmocka_unit_test(test_print_roundtrip),
      cmocka_unit_test(test_fuzz_regressions),
      cmocka_unit_test(test_usage_lists_every_key),
      cmocka_unit_test(test_example_conf),
      cmocka_unit_test(test_docs_list_every_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
