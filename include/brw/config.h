/* Configuration (SPEC §7): one table of keys, four sources.
 *
 * Precedence, lowest to highest: built-in defaults, the config file
 * (--config FILE, `key = value` lines, `#` comments), environment variables
 * (key `a.b_c` -> `BRW_A_B_C`; also BSG_API_KEY for api.key), command-line
 * flags (`--key=value`, `--key value`, or `-o key=value`).
 *
 * Durations carry a unit (ms, s, m, h, d), sizes too (B, KiB, MiB, GiB, also KB
 * and MB meaning the same binary units), rates are numbers per second;
 * booleans are true/false/yes/no/on/off/1/0. A value without its unit is an
 * error. Keys beginning `kafka.` are passed to both librdkafka clients,
 * `kafka.consumer.` and `kafka.producer.` to one only (prefix stripped).
 */
#ifndef BRW_CONFIG_H
#define BRW_CONFIG_H

#include "brw/timeutil.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
  char *name; /* "default" for api.key */
  char *key;  /* secret; never logged */
  char *key_file; /* the file the key was read from, or NULL */
} brw_account_conf_t;

typedef struct {
  char *key;
  char *value;
} brw_kv_t;

typedef struct {
  /* Kafka */
  char *brokers;  /* "127.0.0.1:9092" */
  char *group_id; /* "bsg-report-worker" */
  char *topic_input;
  char *topic_output;
  char *topic_dlq;
  char *instance_id; /* worker.instance; default: hostname-pid */
  uint64_t commit_interval_ms; /* kafka.commit_interval (1s) */
  char *delivery_guarantee;    /* "at_least_once" or "exactly_once" */
  /* API */
  char *api_url; /* "https://one-api.bsg.world" */
  int api_allow_insecure;       /* false: http:// only to a loopback host */
  brw_account_conf_t *accounts; /* api.key -> "default", accounts.<n>.key */
  size_t naccounts;
  char *api_timezone;    /* "UTC" */
  brw_tz_t *api_tz;      /* api.timezone loaded; owned, NULL is UTC */
  double api_rate_limit; /* requests/s per account, 20 */
  /* HTTP */
  long http_max_connections; /* 16 */
  uint64_t http_timeout_ms;  /* 10s */
  uint64_t http_max_response; /* 1MiB */
  char *http_ca_file;         /* NULL: system default */
  char *http_version;         /* "auto", "1.1" or "2" */
  long http_max_streams;      /* 100: per HTTP/2 connection */
  char *http_proxy;           /* NULL: curl's environment variables */
  char *http_no_proxy;        /* NULL: NO_PROXY */
  char *http_proxy_ca_file;   /* NULL: system default */
  /* Scheduling (§5) */
  uint64_t poll_initial_delay_ms;  /* 30s */
  uint64_t poll_finished_delay_ms; /* 1s */
  uint64_t poll_min_interval_ms;   /* 15s */
  uint64_t poll_max_interval_ms;   /* 10m */
  uint64_t poll_not_found_grace_ms; /* 10m */
  uint64_t poll_max_age_ms;        /* 72h */
  double poll_jitter;              /* 0.2: fraction of the interval */
  int poll_adaptive;               /* true: estimate, false: plain backoff */
  char *poll_strategy;             /* "auto" (default), "sweep", "detail" */
  uint64_t poll_sweep_interval_ms; /* 30s: between two sweeps of an account */
  uint64_t poll_sweep_margin_ms;   /* 1h: a sweep's window around each
                                      campaign's first event */
  long poll_sweep_page_worth;      /* 40: detail fetches a page must save */
  uint64_t retry_min_ms;           /* 1s */
  uint64_t retry_max_ms;           /* 5m */
  /* Limits and behaviour */
  uint64_t event_max_size; /* 64KiB */
  uint64_t event_max_key_size;     /* 4KiB: larger input keys are too_large */
  char *event_sent_types;          /* NULL: none; more names of campaign.sent,
                                      comma-separated (brw/event.h) */
  char *event_finished_types;      /* the same for campaign.finished */
  uint64_t output_max_record_size; /* 900KiB: largest record produced */
  char *output_cloudevents;        /* "binary" (default) or "off" */
  char *output_cloudevents_source; /* NULL: /bsg-report-worker/<group.id> */
  long max_tracked;                /* 100000 */
  uint64_t dedupe_window_ms;       /* 1h: late events of reported campaigns */
  int emit_progress;               /* false */
  uint64_t shutdown_timeout_ms;    /* 30s */
  /* Operation */
  char *metrics_listen; /* "127.0.0.1:9464"; "" or "off" disables */
  char *log_level;      /* "info" */
  char *log_format;     /* "json" */
  /* librdkafka pass-through, in the order given */
  brw_kv_t *kafka_common;
  size_t nkafka_common;
  brw_kv_t *kafka_consumer;
  size_t nkafka_consumer;
  brw_kv_t *kafka_producer;
  size_t nkafka_producer;
} brw_config_t;

typedef enum {
  BRW_CONFIG_RUN = 0,   /* run the service */
  BRW_CONFIG_HELP,      /* --help was given: print brw_config_usage, exit 0 */
  BRW_CONFIG_VERSION,   /* --version */
  BRW_CONFIG_CHECK      /* --check-config: print effective config, exit 0 */
} brw_config_action_t;

/* Fills *cfg with the defaults (worker.instance becomes "<hostname>-<pid>").
 * Call it before brw_config_load, which applies the other sources on top;
 * release with brw_config_free, which frees every string. */
void brw_config_init(brw_config_t *cfg);

/* Loads every source. `envp` is the environment (NULL-terminated). On
 * success returns 0 and sets *action. On error returns BRW_ECONFIG and writes
 * one line into errbuf that names the key (and file:line for config-file
 * errors), e.g. "poll.min_interval: \"15\" needs a unit (ms, s, m, h, d)".
 * An error never quotes the value of a secret, the userinfo of a URL
 * ("user:pass@"), a command-line argument that is not an option, or the
 * value part of an unknown option.
 * Partial results stay in *cfg; brw_config_free releases them in all cases.
 * *cfg must have been set up by brw_config_init. --help and --version return
 * at once (no file is read, nothing is validated). Out of memory returns
 * BRW_ENOMEM. Also loads api_tz from api.timezone.
 */
int brw_config_load(brw_config_t *cfg, int argc, char **argv, char **envp,
                    brw_config_action_t *action, char *errbuf, size_t errlen);

/* Applies config-file text held in memory, as --config does with a file's
 * contents: `len` bytes (not NUL-terminated; text may be NULL when len is 0)
 * of `key = value` lines, `#` comments, an optional UTF-8 BOM. A NUL byte
 * ends the text of its line, as it did when the file was read line by line.
 * Lines are applied in order on top of *cfg (set up by brw_config_init);
 * nothing is validated across keys (brw_config_validate does that), and the
 * lines before a failing one stay applied. `name` (borrowed) names the text
 * in errors. Returns 0, BRW_ECONFIG with "NAME:LINE: reason" in errbuf, or
 * BRW_ENOMEM. Used by brw_config_load for --config, and by the fuzz target.
 */
int brw_config_load_text(brw_config_t *cfg, const char *name, const char *text,
                         size_t len, char *errbuf, size_t errlen);

/* Sets one key from text, as any source would (used by tests and the loader).
 * Returns 0 or BRW_ECONFIG with errbuf naming the key. */
int brw_config_set(brw_config_t *cfg, const char *key, const char *value,
                   char *errbuf, size_t errlen);

/* Cross-key checks (min <= max, at least one account, api.url not plain
 * http:// to a host other than loopback unless api.allow_insecure, ...).
 * Returns 0 or BRW_ECONFIG naming the key. Called by brw_config_load. */
int brw_config_validate(const brw_config_t *cfg, char *errbuf, size_t errlen);

/* Prints the effective configuration as `key = value` lines, secrets shown as
 * "[REDACTED]", and so is the userinfo of any URL ("https://[REDACTED]@h"). */
void brw_config_print(const brw_config_t *cfg, FILE *out);

/* Prints --help text: usage and every key with its default and doc. */
void brw_config_usage(FILE *out, const char *argv0);

/* Copies `in` into out (len bytes, NUL-terminated, cut if need be) with the
 * userinfo of every "scheme://userinfo@host" replaced by "[REDACTED]".
 * Returns out. */
const char *brw_config_redact_url(const char *in, char *out, size_t len);

/* Whether a URL's host is a loopback address: 127.0.0.0/8, ::1 (or an
 * IPv4-mapped 127.x), or "localhost". Returns 1 or 0. */
int brw_config_url_is_loopback(const char *url);

/* Registers with the log redactor, for the life of the process
 * (brw_log_pin_secret), every secret the configuration holds: the API keys,
 * the values of secret librdkafka properties, and the userinfo of api.url
 * and brokers. Call it once the configuration is loaded. */
void brw_config_pin_secrets(const brw_config_t *cfg);

/* Wipes, in place, the values of the environment variables that held
 * secrets (BSG_API_KEY, BRW_API_KEY, BRW_ACCOUNTS_<NAME>_KEY, and
 * BRW_KAFKA_... of secret properties), then unsets them, so that neither a
 * child process (librdkafka runs sasl.kerberos.kinit.cmd through the shell)
 * nor /proc/PID/environ shows them. Wiping the bytes matters: unsetenv
 * alone leaves the original strings, which /proc/PID/environ reads. Call it
 * after brw_config_load, which copied what it needs. Returns how many
 * variables were wiped. */
int brw_config_scrub_env(char **envp);

/* Looks up an account by name; returns its index or -1. */
int brw_config_account_index(const brw_config_t *cfg, const char *name);

void brw_config_free(brw_config_t *cfg);

/* Unit parsers, exposed for tests and the simulator. Return 0 or BRW_EINVAL.
 */
int brw_parse_duration_ms(const char *s, uint64_t *ms);
int brw_parse_size(const char *s, uint64_t *bytes);
int brw_parse_bool(const char *s, int *b);

/* The key table, for tests and documentation checks. */
typedef struct {
  const char *name;  /* "poll.min_interval" */
  const char *type;  /* "string", "secret", "duration", "size", "rate",
                        "bool", "int", "float" or "enum" */
  const char *def;   /* default as text ("15s"), "<hostname>-<pid>" for
                        worker.instance, NULL if none */
  const char *doc;   /* one line */
  const char *group; /* "Kafka", "BSG API", ... */
} brw_config_key_info_t;

/* Fills *info for the i-th key of the table (i from 0). Returns 0, or
 * BRW_ENOENT past the end. The strings are static. */
int brw_config_key_info(size_t i, brw_config_key_info_t *info);

/* Writes the environment variable of a key ("poll.min_interval" ->
 * "BRW_POLL_MIN_INTERVAL") into buf. Returns 0 or BRW_ERANGE. */
int brw_config_env_name(const char *key, char *buf, size_t len);

/* poll.strategy: 0 detail, 1 sweep, 2 auto (the choices are checked). */
static inline int brw_config_sweep_mode(const brw_config_t *cfg) {
  if (!cfg->poll_strategy || cfg->poll_strategy[0] == 'd')
    return 0;
  return cfg->poll_strategy[0] == 's' ? 1 : 2;
}

/* output.cloudevents = binary (the choices are checked). */
static inline int brw_config_cloudevents(const brw_config_t *cfg) {
  return cfg->output_cloudevents && cfg->output_cloudevents[0] == 'b';
}

/* delivery.guarantee = exactly_once. */
static inline int brw_config_exactly_once(const brw_config_t *cfg) {
  return cfg->delivery_guarantee &&
         cfg->delivery_guarantee[0] == 'e'; /* the choices are checked */
}

#endif
