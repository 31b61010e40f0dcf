/* The registry of reasons the worker cannot make progress (see
 * include/brw/health.h). Loop thread only. */
#include "brw/health.h"
#include "brw/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One row per reason: its name, whether it makes the worker not ready, and
 * what the operator should look at (said once, in the first log line). */
static const struct {
  const char *name;
  int not_ready;
  const char *hint;
} k_reasons[BRW_BLOCK__COUNT] = {
    [BRW_BLOCK_KAFKA_DOWN] = {"kafka_down", 1,
                              "check `brokers` and the network to them"},
    [BRW_BLOCK_TOPIC_MISSING] = {"input_topic_missing", 1,
                                 "create the topic or fix `topic.input`"},
    [BRW_BLOCK_GROUP_NOT_JOINED] = {"group_not_joined", 1,
                                    "the consumer group has not assigned "
                                    "partitions yet"},
    [BRW_BLOCK_ACCOUNT_AUTH] = {"account_auth", 1,
                                "the detail says which: the account's API "
                                "key, the API's login answers, TLS "
                                "(http.ca_file), or the way to the API "
                                "(api.url, the proxy)"},
    [BRW_BLOCK_RECORD_REFUSED] = {"record_refused", 0,
                                  "check the output topics' max.message.bytes "
                                  "and the producer's message.max.bytes"},
    [BRW_BLOCK_PRODUCER_BACKLOG] = {"producer_backlog", 0,
                                    "the producer queue is full; the brokers "
                                    "are slow or unreachable"},
    [BRW_BLOCK_MAX_TRACKED] = {"max_tracked", 0,
                               "intake paused at max.tracked campaigns; add "
                               "workers or raise max.tracked"},
    [BRW_BLOCK_LOOP_LAG] = {"event_loop_lag", 0,
                            "the event loop runs late; the machine is "
                            "overloaded or a callback blocks"},
    [BRW_BLOCK_OUTPUT_TOPIC_MISSING] = {"output_topic_missing", 0,
                                        "create the topic or fix "
                                        "`topic.output` / `topic.dlq`"},
    [BRW_BLOCK_KAFKA_AUTH] = {"kafka_auth", 1,
                              "check kafka.security.protocol, kafka.sasl.* "
                              "(mechanism, username, password) and "
                              "kafka.ssl.* (CA, client certificate and key) "
                              "against the brokers' listener"},
    [BRW_BLOCK_TXN_STALLED] = {"transactions_stalled", 0,
                               "the detail has the last transactional "
                               "error: the transaction coordinator's "
                               "health, ACLs on the transactional.id, "
                               "two workers with one worker.instance"},
};

typedef struct {
  int raised;
  uint64_t since_ms;      /* when it was raised */
  uint64_t logged_ms;     /* when it was last logged */
  char *detail;           /* owned, may be NULL */
} reason_t;

struct brw_health_s {
  brw_metrics_t *m; /* borrowed */
  reason_t r[BRW_BLOCK__COUNT];
};

brw_health_t *brw_health_new(brw_metrics_t *m) {
  brw_health_t *h = calloc(1, sizeof(*h));
  if (!h)
    return NULL;
  h->m = m;
  return h;
}

void brw_health_free(brw_health_t *h) {
  if (!h)
    return;
  for (int i = 0; i < BRW_BLOCK__COUNT; i++)
    free(h->r[i].detail);
  free(h);
}

const char *brw_health_name(brw_block_t b) {
  return (unsigned)b < BRW_BLOCK__COUNT ? k_reasons[b].name : NULL;
}

int brw_health_blocks_ready(brw_block_t b) {
  return (unsigned)b < BRW_BLOCK__COUNT && k_reasons[b].not_ready;
}

/* Writes the reason's line: at its raise (first = 1, with the hint), or as a
 * reminder while it holds. */
static void log_reason(brw_health_t *h, brw_block_t b, uint64_t now_ms,
                       int first) {
  reason_t *r = &h->r[b];
  brw_log_level_t level =
      k_reasons[b].not_ready ? BRW_LOG_ERROR : BRW_LOG_WARN;
  json_t *f = json_pack("{ss sI}", "reason", k_reasons[b].name, "held_s",
                        (json_int_t)((now_ms - r->since_ms) / 1000));
  if (f && r->detail)
    json_object_set_new(f, "detail", json_string(r->detail));
  if (first)
    brw_logj(level, f, "cannot make progress: %s%s%s; %s", k_reasons[b].name,
             r->detail ? ": " : "", r->detail ? r->detail : "",
             k_reasons[b].hint);
  else
    brw_logj(level, f, "still cannot make progress: %s%s%s",
             k_reasons[b].name, r->detail ? ": " : "",
             r->detail ? r->detail : "");
  r->logged_ms = now_ms;
}

static void set_detail(reason_t *r, const char *detail) {
  if (detail && r->detail && !strcmp(detail, r->detail))
    return;
  free(r->detail);
  r->detail = detail ? strdup(detail) : NULL;
}

void brw_health_set(brw_health_t *h, brw_block_t b, int cond,
                    uint64_t now_ms, const char *detail) {
  if (!h || (unsigned)b >= BRW_BLOCK__COUNT)
    return;
  reason_t *r = &h->r[b];
  if (!cond) {
    if (!r->raised)
      return;
    r->raised = 0;
    brw_logj(BRW_LOG_INFO,
             json_pack("{ss sI}", "reason", k_reasons[b].name, "held_s",
                       (json_int_t)((now_ms - r->since_ms) / 1000)),
             "progress resumed: %s cleared", k_reasons[b].name);
    free(r->detail);
    r->detail = NULL;
    brw_metrics_set(h->m, BRW_M_BLOCKED, k_reasons[b].name, 0);
    return;
  }
  set_detail(r, detail);
  if (r->raised)
    return; /* the reminder comes from brw_health_tick */
  r->raised = 1;
  r->since_ms = now_ms;
  brw_metrics_set(h->m, BRW_M_BLOCKED, k_reasons[b].name, 1);
  brw_metrics_inc(h->m, BRW_M_BLOCKED_TOTAL, k_reasons[b].name, 1);
  log_reason(h, b, now_ms, 1);
}

void brw_health_raise(brw_health_t *h, brw_block_t b, uint64_t now_ms,
                      const char *fmt, ...) {
  char buf[512];
  char *full = NULL;
  const char *detail = NULL;
  if (fmt) {
    /* Shown by /readyz and logged: API text may hold a secret. Formatted
     * whole and redacted before it is cut to buf, so that a secret across
     * the cut cannot leave its first bytes behind. */
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n >= 0 && (full = malloc((size_t)n + 1)) != NULL)
      vsnprintf(full, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    va_end(ap);
    brw_log_redact_into(full ? full : "(out of memory)", buf, sizeof(buf));
    detail = buf;
  }
  brw_health_set(h, b, 1, now_ms, detail);
  if (full)
    brw_secret_free(full);
}

void brw_health_clear(brw_health_t *h, brw_block_t b, uint64_t now_ms) {
  brw_health_set(h, b, 0, now_ms, NULL);
}

int brw_health_raised(const brw_health_t *h, brw_block_t b) {
  return h && (unsigned)b < BRW_BLOCK__COUNT && h->r[b].raised;
}

const char *brw_health_detail(const brw_health_t *h, brw_block_t b) {
  return brw_health_raised(h, b) ? h->r[b].detail : NULL;
}

uint64_t brw_health_held_ms(const brw_health_t *h, brw_block_t b,
                            uint64_t now_ms) {
  if (!brw_health_raised(h, b) || now_ms < h->r[b].since_ms)
    return 0;
  return now_ms - h->r[b].since_ms;
}

int brw_health_ready(const brw_health_t *h) {
  for (int i = 0; h && i < BRW_BLOCK__COUNT; i++)
    if (h->r[i].raised && k_reasons[i].not_ready)
      return 0;
  return 1;
}

void brw_health_tick(brw_health_t *h, uint64_t now_ms) {
  for (int i = 0; h && i < BRW_BLOCK__COUNT; i++) {
    reason_t *r = &h->r[i];
    if (r->raised && now_ms - r->logged_ms >= BRW_HEALTH_RELOG_MS)
      log_reason(h, (brw_block_t)i, now_ms, 0);
  }
}

json_t *brw_health_json(const brw_health_t *h, uint64_t now_ms) {
  json_t *o = json_object();
  for (int i = 0; o && h && i < BRW_BLOCK__COUNT; i++) {
    const reason_t *r = &h->r[i];
    if (!r->raised)
      continue;
    json_t *e = json_pack(
        "{sb sI}", "ready", !k_reasons[i].not_ready, "seconds",
        (json_int_t)(brw_health_held_ms(h, (brw_block_t)i, now_ms) / 1000));
    if (e && r->detail)
      json_object_set_new(e, "detail", json_string(r->detail));
    if (e)
      json_object_set_new(o, k_reasons[i].name, e);
  }
  return o;
}
