/* bsg-api-sim: command line, signals, start and stop.
 *
 * SIGINT and SIGTERM are blocked before the server starts, so every
 * libmicrohttpd thread inherits the mask and the main thread alone receives
 * them, in sigwait(). It then stops the daemon (joining all connection
 * threads), frees everything and exits 0. Exit codes: 0 after a signal,
 * 1 when the server cannot start, 2 for a bad command line. */
#include "sim.h"

#include "brw/log.h"

#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEYS 64

static void usage(FILE *f) {
  fprintf(
      f,
      "Usage: bsg-api-sim [OPTIONS]\n"
      "A deterministic simulator of the BSG One API (login, refresh, campaign\n"
      "detail and list) with fault injection and a control interface under\n"
      "/_sim/.\n"
      "\n"
      "  --listen HOST:PORT      address to bind (default 127.0.0.1:8080; "
      "port 0:\n"
      "                          ephemeral). Prints "
      "{\"listening\":\"HOST:PORT\"}"
      " on stdout.\n"
      "  --seed N                seed of lifecycles, variants and faults "
      "(default 1)\n"
      "  --time-scale X          sim seconds per real second (default 1)\n"
      "  --mix M                 lifecycle mix: default (short lifecycles) or\n"
      "                          realistic (starts hours ahead, sends of\n"
      "                          minutes to hours)\n"
      "  --time-precision P      served timestamps in whole seconds (s, "
      "default)\n"
      "                          or with milliseconds (ms), for high time "
      "scales\n"
      "  --api-key KEY           an accepted API key (repeatable; default: "
      "any\n"
      "                          key starting with live_ or test_)\n"
      "  --reject-key KEY        a key that always gets 401 (repeatable)\n"
      "  --token-ttl DURATION    bearer lifetime, real time (default 1h)\n"
      "  --bearer-mode M         what logins and refreshes answer 200 with:\n"
      "                          normal (default), expired, garbage,\n"
      "                          whitespace, missing, null or empty\n"
      "  --timezone ZONE         zone of zone-less timestamps: UTC or +HH:MM\n"
      "                          (default UTC)\n"
      "  --variant V             canonical, mixed (default) or a comma-"
      "separated list of:\n"
      "                          %s\n"
      "  --fail-5xx R            rate of 500/502/503 (JSON or HTML proxy "
      "page)\n"
      "  --fail-429 R            rate of 429 Too Many Attempts\n"
      "  --retry-after SECONDS   Retry-After of 429s (default 1)\n"
      "  --slow R                rate of slow responses\n"
      "  --slow-ms N             delay of a slow response (default 2000)\n"
      "  --malformed R           rate of invalid JSON bodies\n"
      "  --truncated R           rate of JSON bodies cut in the middle\n"
      "  --html R                rate of 200 responses with an HTML body\n"
      "  --not-found-grace DUR   real time after a campaign's birth during "
      "which\n"
      "                          its detail is 404 (default 0)\n"
      "  --no-auth-faults        inject faults into detail requests only\n"
      "  --list-mode M           GET /api/campaigns: normal (default), 404,\n"
      "                          403 or garbage (200, not JSON)\n"
      "  --list-lag DURATION     a campaign is listed this long after its "
      "birth\n"
      "                          (default 0)\n"
      "  --list-filter-on F      filter[from]/[to] on created (default) or "
      "start\n"
      "  --list-filter-zone Z    zone of zone-less filter dates (default: "
      "--timezone)\n"
      "  --list-fail-5xx R       rate of 500/502/503 of the list\n"
      "  --list-fail-429 R       rate of 429 of the list\n"
      "  --list-malformed R      rate of invalid JSON bodies of the list\n"
      "  --max-connections N     concurrent connections (default 1000)\n"
      "  --log-level LEVEL       debug, info (default), warn, error\n"
      "  --log-format FORMAT     json (default) or text\n"
      "  --help                  this text\n"
      "\n"
      "Rates are in 0..1; durations carry a unit (250ms, 2s, 1m, 1h).\n"
      "Endpoints: see docs/simulator.md.\n",
      sim_variant_names());
}

static int bad(const char *flag, const char *value) {
  fprintf(stderr, "bsg-api-sim: invalid value for --%s: \"%s\"\n", flag,
          value ? value : "");
  return 2;
}

/* Parses a non-negative integer with nothing after it. */
static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  unsigned long long v;
  if (!s || !*s || *s == '-')
    return -1;
  v = strtoull(s, &end, 10);
  if (*end)
    return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  enum {
    O_LISTEN = 256,
    O_SEED,
    O_SCALE,
    O_MIX,
    O_TIME_PRECISION,
    O_API_KEY,
    O_REJECT_KEY,
    O_TOKEN_TTL,
    O_BEARER_MODE,
    O_TIMEZONE,
    O_VARIANT,
    O_FAIL_5XX,
    O_FAIL_429,
    O_RETRY_AFTER,
    O_SLOW,
    O_SLOW_MS,
    O_MALFORMED,
    O_TRUNCATED,
    O_HTML,
    O_NOT_FOUND_GRACE,
    O_NO_AUTH_FAULTS,
    O_LIST_MODE,
    O_LIST_LAG,
    O_LIST_FILTER_ON,
    O_LIST_FILTER_ZONE,
    O_LIST_FAIL_5XX,
    O_LIST_FAIL_429,
    O_LIST_MALFORMED,
    O_MAX_CONN,
    O_LOG_LEVEL,
    O_LOG_FORMAT,
    O_HELP
  };
  static const struct option opts[] = {
      {"listen", required_argument, NULL, O_LISTEN},
      {"seed", required_argument, NULL, O_SEED},
      {"time-scale", required_argument, NULL, O_SCALE},
      {"mix", required_argument, NULL, O_MIX},
      {"time-precision", required_argument, NULL, O_TIME_PRECISION},
      {"api-key", required_argument, NULL, O_API_KEY},
      {"reject-key", required_argument, NULL, O_REJECT_KEY},
      {"token-ttl", required_argument, NULL, O_TOKEN_TTL},
      {"bearer-mode", required_argument, NULL, O_BEARER_MODE},
      {"timezone", required_argument, NULL, O_TIMEZONE},
      {"variant", required_argument, NULL, O_VARIANT},
      {"fail-5xx", required_argument, NULL, O_FAIL_5XX},
      {"fail-429", required_argument, NULL, O_FAIL_429},
      {"retry-after", required_argument, NULL, O_RETRY_AFTER},
      {"slow", required_argument, NULL, O_SLOW},
      {"slow-ms", required_argument, NULL, O_SLOW_MS},
      {"malformed", required_argument, NULL, O_MALFORMED},
      {"truncated", required_argument, NULL, O_TRUNCATED},
      {"html", required_argument, NULL, O_HTML},
      {"not-found-grace", required_argument, NULL, O_NOT_FOUND_GRACE},
      {"no-auth-faults", no_argument, NULL, O_NO_AUTH_FAULTS},
      {"list-mode", required_argument, NULL, O_LIST_MODE},
      {"list-lag", required_argument, NULL, O_LIST_LAG},
      {"list-filter-on", required_argument, NULL, O_LIST_FILTER_ON},
      {"list-filter-zone", required_argument, NULL, O_LIST_FILTER_ZONE},
      {"list-fail-5xx", required_argument, NULL, O_LIST_FAIL_5XX},
      {"list-fail-429", required_argument, NULL, O_LIST_FAIL_429},
      {"list-malformed", required_argument, NULL, O_LIST_MALFORMED},
      {"max-connections", required_argument, NULL, O_MAX_CONN},
      {"log-level", required_argument, NULL, O_LOG_LEVEL},
      {"log-format", required_argument, NULL, O_LOG_FORMAT},
      {"help", no_argument, NULL, O_HELP},
      {NULL, 0, NULL, 0}};
  static const char *api_keys[MAX_KEYS], *reject_keys[MAX_KEYS];
  brw_log_level_t level = BRW_LOG_INFO;
  brw_log_format_t format = BRW_LOG_JSON;
  sim_config_t conf;
  sim_server_t *srv = NULL;
  char bound[300];
  sigset_t set;
  uint64_t u;
  int c, sig, list_zone_set = 0;

  memset(&conf, 0, sizeof(conf));
  conf.listen = "127.0.0.1:8080";
  conf.seed = 1;
  conf.time_scale = 1.0;
  conf.api_keys = api_keys;
  conf.reject_keys = reject_keys;
  conf.faults.token_ttl_ms = 3600 * 1000;
  conf.faults.retry_after_s = 1;
  conf.faults.slow_ms = 2000;
  conf.auth_faults = 1;
  conf.max_connections = 1000;
  sim_variant_spec_parse("mixed", &conf.variant);

  opterr = 0;
  while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    const char *name = optind > 1 ? argv[optind - 1] : "";
    switch (c) {
    case O_LISTEN:
      conf.listen = optarg;
      break;
    case O_SEED:
      if (parse_u64(optarg, &conf.seed))
        return bad("seed", optarg);
      break;
    case O_SCALE: {
      char *end;
      conf.time_scale = strtod(optarg, &end);
      if (*end || !isfinite(conf.time_scale) || conf.time_scale <= 0 ||
          conf.time_scale > 1e6)
        return bad("time-scale", optarg);
      break;
    }
    case O_MIX:
      if (sim_mix_parse(optarg, &conf.mix))
        return bad("mix", optarg);
      break;
    case O_TIME_PRECISION:
      if (strcmp(optarg, "s") && strcmp(optarg, "ms"))
        return bad("time-precision", optarg);
      conf.ms_time = !strcmp(optarg, "ms");
      break;
    case O_API_KEY:
      if (conf.napi_keys == MAX_KEYS)
        return bad("api-key", "(too many keys)");
      api_keys[conf.napi_keys++] = optarg;
      brw_log_pin_secret(optarg);
      break;
    case O_REJECT_KEY:
      if (conf.nreject_keys == MAX_KEYS)
        return bad("reject-key", "(too many keys)");
      reject_keys[conf.nreject_keys++] = optarg;
      brw_log_pin_secret(optarg);
      break;
    case O_TOKEN_TTL:
      if (sim_duration_parse(optarg, &conf.faults.token_ttl_ms))
        return bad("token-ttl", optarg);
      break;
    case O_BEARER_MODE:
      if (sim_bearer_mode_parse(optarg, &conf.faults.bearer_mode))
        return bad("bearer-mode", optarg);
      break;
    case O_TIMEZONE:
      if (sim_tz_parse(optarg, &conf.tz_offset_s))
        return bad("timezone", optarg);
      break;
    case O_VARIANT:
      if (sim_variant_spec_parse(optarg, &conf.variant))
        return bad("variant", optarg);
      break;
    case O_FAIL_5XX:
      if (sim_rate_parse(optarg, &conf.faults.fail_5xx))
        return bad("fail-5xx", optarg);
      break;
    case O_FAIL_429:
      if (sim_rate_parse(optarg, &conf.faults.fail_429))
        return bad("fail-429", optarg);
      break;
    case O_RETRY_AFTER:
      if (parse_u64(optarg, &u) || u > 86400)
        return bad("retry-after", optarg);
      conf.faults.retry_after_s = (int64_t)u;
      break;
    case O_SLOW:
      if (sim_rate_parse(optarg, &conf.faults.slow))
        return bad("slow", optarg);
      break;
    case O_SLOW_MS:
      if (parse_u64(optarg, &u) || u > 3600 * 1000)
        return bad("slow-ms", optarg);
      conf.faults.slow_ms = (int64_t)u;
      break;
    case O_MALFORMED:
      if (sim_rate_parse(optarg, &conf.faults.malformed))
        return bad("malformed", optarg);
      break;
    case O_TRUNCATED:
      if (sim_rate_parse(optarg, &conf.faults.truncated))
        return bad("truncated", optarg);
      break;
    case O_HTML:
      if (sim_rate_parse(optarg, &conf.faults.html))
        return bad("html", optarg);
      break;
    case O_NOT_FOUND_GRACE:
      if (sim_duration_parse(optarg, &conf.faults.not_found_grace_ms))
        return bad("not-found-grace", optarg);
      break;
    case O_NO_AUTH_FAULTS:
      conf.auth_faults = 0;
      break;
    case O_LIST_MODE:
      if (sim_list_mode_parse(optarg, &conf.faults.list_mode))
        return bad("list-mode", optarg);
      break;
    case O_LIST_LAG:
      if (sim_duration_parse(optarg, &conf.faults.list_lag_ms))
        return bad("list-lag", optarg);
      break;
    case O_LIST_FILTER_ON:
      if (strcmp(optarg, "created") && strcmp(optarg, "start"))
        return bad("list-filter-on", optarg);
      conf.faults.list_filter_start = !strcmp(optarg, "start");
      break;
    case O_LIST_FILTER_ZONE:
      if (sim_tz_parse(optarg, &conf.faults.list_filter_tz_s))
        return bad("list-filter-zone", optarg);
      list_zone_set = 1;
      break;
    case O_LIST_FAIL_5XX:
      if (sim_rate_parse(optarg, &conf.faults.list_fail_5xx))
        return bad("list-fail-5xx", optarg);
      break;
    case O_LIST_FAIL_429:
      if (sim_rate_parse(optarg, &conf.faults.list_fail_429))
        return bad("list-fail-429", optarg);
      break;
    case O_LIST_MALFORMED:
      if (sim_rate_parse(optarg, &conf.faults.list_malformed))
        return bad("list-malformed", optarg);
      break;
    case O_MAX_CONN:
      if (parse_u64(optarg, &u) || u < 1 || u > 65536)
        return bad("max-connections", optarg);
      conf.max_connections = (int)u;
      break;
    case O_LOG_LEVEL:
      if (brw_log_level_parse(optarg, &level))
        return bad("log-level", optarg);
      break;
    case O_LOG_FORMAT:
      if (brw_log_format_parse(optarg, &format))
        return bad("log-format", optarg);
      break;
    case O_HELP:
      usage(stdout);
      return 0;
    default:
      fprintf(stderr, "bsg-api-sim: unknown or incomplete option \"%s\"\n",
              name);
      usage(stderr);
      return 2;
    }
  }
  /* Filter dates are read in the zone served unless told otherwise. */
  if (!list_zone_set)
    conf.faults.list_filter_tz_s = conf.tz_offset_s;
  if (optind < argc) {
    fprintf(stderr, "bsg-api-sim: unexpected argument \"%s\"\n", argv[optind]);
    return 2;
  }
  brw_log_setup(level, format, "bsg-api-sim");

  /* Block the signals in every thread; sigwait below takes them. SIGPIPE is
   * ignored for a client that hangs up mid-response. */
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);

  if (sim_server_start(&conf, &srv, bound, sizeof(bound)) != 0) {
    brw_log_cleanup();
    return 1;
  }
  printf("{\"listening\":\"%s\"}\n", bound);
  fflush(stdout);
  brw_logj(BRW_LOG_INFO,
           json_pack("{s:s s:I s:f s:s s:b s:o}", "listen", bound, "seed",
                     (json_int_t)conf.seed, "time_scale", conf.time_scale,
                     "mix", sim_mix_name(conf.mix), "variant_mixed",
                     conf.variant.mixed, "faults",
                     sim_faults_json(&conf.faults)),
           "bsg-api-sim listening");

  sig = 0;
  while (sigwait(&set, &sig) != 0)
    ;
  brw_logj(BRW_LOG_INFO, json_pack("{s:i}", "signal", sig),
           "stopping on signal");
  sim_server_free(srv);
  brw_log_info("bsg-api-sim stopped");
  brw_log_cleanup();
  return 0;
}
