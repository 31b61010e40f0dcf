/* Logging: one JSON object per line on stderr (or "text" for humans).
 *
 * Only the loop thread logs, except librdkafka's log callback, which is routed
 * through its queue to the loop thread too; the sink is still guarded by a
 * mutex so that a stray thread (the simulator's HTTP threads) cannot
 * interleave lines.
 *
 * Secrets: callers never pass an API key or a bearer token. As a second line
 * of defence, every registered secret (brw_log_add_secret) is replaced by
 * "[REDACTED]" in the final line before it is written.
 */
#ifndef BRW_LOG_H
#define BRW_LOG_H

#include <jansson.h>
#include <stdarg.h>
#include <stdint.h>

typedef enum {
  BRW_LOG_DEBUG = 0,
  BRW_LOG_INFO = 1,
  BRW_LOG_WARN = 2,
  BRW_LOG_ERROR = 3,
  BRW_LOG_OFF = 4
} brw_log_level_t;

typedef enum { BRW_LOG_JSON = 0, BRW_LOG_TEXT = 1 } brw_log_format_t;

void brw_log_setup(brw_log_level_t level, brw_log_format_t format,
                   const char *component);

/* Parses "debug", "info", "warn"/"warning", "error", "off". Returns 0 or
 * BRW_EINVAL. */
int brw_log_level_parse(const char *s, brw_log_level_t *out);
int brw_log_format_parse(const char *s, brw_log_format_t *out);

int brw_log_enabled(brw_log_level_t level);

/* Registers a secret that must never be written. The text is copied; secrets
 * shorter than 4 bytes are ignored. */
void brw_log_add_secret(const char *secret);
/* Frees every registered secret (at exit, so leak checkers stay quiet). */
void brw_log_cleanup(void);

/* Writes one line. `fields` (may be NULL) is a JSON object whose members are
 * added to the line; the reference is stolen. */
void brw_logj(brw_log_level_t level, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void brw_vlogj(brw_log_level_t level, json_t *fields, const char *fmt,
               va_list ap);

/* A rate limit for one kind of repeated line (an invalid event, a refused
 * record): the first line is written, then at most one per interval, which
 * says how many were held back. Zero-initialise it. */
typedef struct {
  uint64_t next_ms;    /* no line before this (monotonic ms) */
  uint64_t suppressed; /* lines held back since the last one written */
} brw_log_limit_t;

/* Returns 1 when a line may be written at now_ms (a monotonic clock, such as
 * uv_now), with *suppressed (may be NULL) set to the lines held back since
 * the last one, and restarts the interval; returns 0 and counts the line as
 * held back otherwise. */
int brw_log_limit(brw_log_limit_t *l, uint64_t now_ms, uint64_t interval_ms,
                  uint64_t *suppressed);

#define brw_log_debug(...) brw_logj(BRW_LOG_DEBUG, NULL, __VA_ARGS__)
#define brw_log_info(...) brw_logj(BRW_LOG_INFO, NULL, __VA_ARGS__)
#define brw_log_warn(...) brw_logj(BRW_LOG_WARN, NULL, __VA_ARGS__)
#define brw_log_error(...) brw_logj(BRW_LOG_ERROR, NULL, __VA_ARGS__)

#endif
