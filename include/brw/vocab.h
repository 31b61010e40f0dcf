/* The words the worker's outputs share: report outcomes, DLQ reasons, retry
 * classes and poll bases. Each is one enum here and one NULL-ended name
 * table in src/vocab.c, indexed by the enum; the code names them through
 * these, src/metrics.c creates its label sets from the tables, and
 * tests/unit/test_vocab.c checks them against schemas/. Adding a word:
 * the enum and the table here and in vocab.c, the schema when it is part
 * of a record, and the code that emits it. */
#ifndef BRW_VOCAB_H
#define BRW_VOCAB_H

/* Final report outcomes (SPEC §4 `outcome`). */
typedef enum {
  BRW_OUTCOME_DONE = 0,
  BRW_OUTCOME_STOPPED,
  BRW_OUTCOME_SPAM,
  BRW_OUTCOME_EXPIRED, /* the deadline passed before a final status */
  BRW_OUTCOME__COUNT
} brw_outcome_t;
extern const char *const brw_outcome_names[BRW_OUTCOME__COUNT + 1];

/* Stable DLQ reason codes (SPEC §4 `error.reason`). The first
 * BRW_DLQ__INTAKE ones refuse an event at intake (SPEC §3); the others end
 * a campaign. The macros are the same words as string literals. */
#define BRW_REASON_INVALID_JSON "invalid_json"
#define BRW_REASON_INVALID_ID "invalid_campaign_id"
#define BRW_REASON_UNKNOWN_TYPE "unknown_type"
#define BRW_REASON_UNKNOWN_ACCOUNT "unknown_account"
#define BRW_REASON_TOO_LARGE "too_large"
#define BRW_REASON_INVALID_EVENT "invalid_event"
#define BRW_REASON_NOT_FOUND "not_found"
#define BRW_REASON_AUTH_FAILED "auth_failed"
#define BRW_REASON_BAD_RESPONSE "bad_response"
typedef enum {
  BRW_DLQ_INVALID_JSON = 0,
  BRW_DLQ_INVALID_ID,
  BRW_DLQ_UNKNOWN_TYPE,
  BRW_DLQ_UNKNOWN_ACCOUNT,
  BRW_DLQ_TOO_LARGE,
  BRW_DLQ_INVALID_EVENT,
  BRW_DLQ_NOT_FOUND,
  BRW_DLQ_AUTH_FAILED,
  BRW_DLQ_BAD_RESPONSE,
  BRW_DLQ__COUNT
} brw_dlq_reason_t;
#define BRW_DLQ__INTAKE (BRW_DLQ_INVALID_EVENT + 1)
extern const char *const brw_dlq_reason_names[BRW_DLQ__COUNT + 1];
/* The intake reasons alone (the first BRW_DLQ__INTAKE), NULL-ended. */
extern const char *const brw_intake_reason_names[BRW_DLQ__INTAKE + 1];

/* Why a detail fetch failed and will be retried (brw_fetch_result_t's
 * error_class, api_retries_total's label). */
typedef enum {
  BRW_RETRY_CONNECT = 0, /* connection refused or unreachable */
  BRW_RETRY_DNS,
  BRW_RETRY_TLS,
  BRW_RETRY_TIMEOUT,
  BRW_RETRY_TOO_LARGE, /* body over http.max_response */
  BRW_RETRY_TRANSPORT, /* any other transport error */
  BRW_RETRY_5XX,
  BRW_RETRY_429,
  BRW_RETRY_BAD_BODY, /* 200 with something that is not a detail */
  BRW_RETRY_401,      /* bearer refused: a login follows */
  BRW_RETRY_404,      /* not found (yet): the grace period runs */
  BRW_RETRY_4XX,
  BRW_RETRY_LOCAL,    /* out of memory, a request curl would not start */
  BRW_RETRY_AUTH,     /* the account's login gave no usable bearer */
  BRW_RETRY_LOGIN,    /* the account's login answered another 4xx */
  BRW_RETRY__COUNT
} brw_retry_class_t;
extern const char *const brw_retry_class_names[BRW_RETRY__COUNT + 1];

/* What chose a poll delay (src/schedule.c; polls_scheduled_total). */
typedef enum {
  BRW_BASIS_BACKOFF = 0,
  BRW_BASIS_ESTIMATE,
  BRW_BASIS_SCHEDULED_START,
  BRW_BASIS__COUNT
} brw_schedule_basis_t;
extern const char *const brw_basis_names[BRW_BASIS__COUNT + 1];

/* The index of `name` in a NULL-ended table, or -1. */
int brw_vocab_find(const char *const *names, const char *name);

#endif
