/* Logging: one JSON object per line on stderr (or "text" for humans).
 *
 * Only the loop thread logs, except librdkafka's log callback, which is routed
 * through its queue to the loop thread too; the sink is still guarded by a
 * mutex so that a stray thread (the simulator's HTTP threads) cannot
 * interleave lines.
 *
 * Secrets: callers never pass an API key or a bearer token. As a second line
 * of defence, every registered secret is replaced by "[REDACTED]" in the
 * message and again in the final line before it is written, both as given
 * and as json_dumps escapes it (a secret holding '"', '\\' or a control
 * character reads differently inside a JSON string). Secrets come in two
 * kinds: pinned ones (API keys, brw_log_pin_secret) are kept for the life of
 * the process; rotating ones (bearers, brw_log_add_secret) are kept up to
 * BRW_LOG_MAX_ROTATING at once, the oldest forgotten first, so that hourly
 * refreshes neither grow the set without bound nor push a key out of it.
 * Text that leaves the process by another way than a log line (a DLQ
 * header, an error stored for later) goes through brw_log_redact_into.
 */
#ifndef BRW_LOG_H
#define BRW_LOG_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* Secrets shorter than this are ignored: replacing every "abc" in every line
 * would hide more than it protects. */
#define BRW_LOG_SECRET_MIN 4
/* How many rotating secrets are kept at once, by default: a bearer lives an
 * hour or so, so 64 cover days of refreshes of a few accounts. */
#define BRW_LOG_MAX_ROTATING 64
/* A message longer than this (in bytes) is cut, after redaction. */
#define BRW_LOG_MSG_MAX 2047

/* Registers a rotating secret (a bearer) that must never be written. The
 * text is copied; a secret already registered is not added twice. When
 * BRW_LOG_MAX_ROTATING are registered, the oldest rotating one is forgotten
 * (and its copy wiped). Any thread. */
void brw_log_add_secret(const char *secret);
/* Sets how many rotating secrets are kept (at least 1), forgetting the
 * oldest ones beyond it. main sets BRW_LOG_MAX_ROTATING plus 4 per account,
 * so that many accounts refreshing at once do not push out each other's
 * live bearers. */
void brw_log_set_rotating_max(size_t n);
/* Registers a secret for the life of the process (an API key): it is never
 * forgotten, whatever number of rotating secrets follow. Pinning a secret
 * already registered as rotating pins it. Any thread. */
void brw_log_pin_secret(const char *secret);
/* How many pinned (pinned != 0) or rotating secrets are registered; for
 * tests. */
size_t brw_log_secret_count(int pinned);
/* Forgets every registered secret, wiping the copies (at exit, so that leak
 * checkers stay quiet; also between tests). */
void brw_log_cleanup(void);

/* Copies `in` into out (outlen bytes, always NUL-terminated when outlen > 0)
 * with every registered secret replaced by "[REDACTED]", cutting the result
 * after redaction and at a UTF-8 boundary. in and out may be the same
 * buffer. in == NULL gives "". Returns the length written. Out of memory
 * gives "[REDACTED]" rather than text that might hold a secret. Any thread.
 */
size_t brw_log_redact_into(const char *in, char *out, size_t outlen);

/* Overwrites n bytes at p in a way the compiler keeps (explicit_bzero), for
 * buffers that held a secret and are about to be freed or reused. */
void brw_secret_wipe(void *p, size_t n);
/* Wipes the NUL-terminated string s, then frees it. NULL is allowed. */
void brw_secret_free(char *s);

/* Where lines go: f (borrowed, must stay open), or stderr when f is NULL
 * (the default). For tests. */
void brw_log_set_output(FILE *f);

/* Writes one line. `fields` (may be NULL) is a JSON object whose members are
 * added to the line; the reference is stolen. */
void brw_logj(brw_log_level_t level, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void brw_vlogj(brw_log_level_t level, json_t *fields, const char *fmt,
               va_list ap);

/* Field names of log lines about Kafka records, OpenTelemetry's semantic
 * conventions for messaging (docs/operations.md "Log fields"). A
 * partition is written as a string, as OpenTelemetry has it. */
#define BRW_LF_TOPIC "messaging.destination.name"
#define BRW_LF_PARTITION "messaging.destination.partition.id"
#define BRW_LF_OFFSET "messaging.kafka.offset"
#define BRW_LF_GROUP "messaging.consumer.group.name"

/* Adds the trace context of a W3C `traceparent` (may be NULL) to a line's
 * fields, named as OpenTelemetry's log data model names them: trace_id (32
 * hex digits), span_id (16, the caller's span: the event producer's) and
 * trace_flags (2). Nothing is added for a traceparent that is not one: a
 * version other than two hex digits (or "ff"), an all-zero trace or span
 * id, or fields of the wrong length. Returns `fields`. */
json_t *brw_log_trace_fields(json_t *fields, const char *traceparent);

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
/* Lines held back by every brw_log_limit of the process so far (the app's
 * health tick exports it as log_lines_suppressed_total). */
uint64_t brw_log_suppressed_total(void);

#define brw_log_debug(...) brw_logj(BRW_LOG_DEBUG, NULL, __VA_ARGS__)
#define brw_log_info(...) brw_logj(BRW_LOG_INFO, NULL, __VA_ARGS__)
#define brw_log_warn(...) brw_logj(BRW_LOG_WARN, NULL, __VA_ARGS__)
#define brw_log_error(...) brw_logj(BRW_LOG_ERROR, NULL, __VA_ARGS__)

#endif
