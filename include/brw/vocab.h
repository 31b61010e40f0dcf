/* The words the worker's outputs share: campaign statuses, report outcomes,
 * DLQ reasons, retry classes and poll bases. Each is one list here (an X macro: the enum
 * constant's suffix and the word), from which the enum below and the
 * NULL-ended name table of src/vocab.c, indexed by the enum, are made; the
 * code names them through these, src/metrics.c creates its label sets from
 * the tables, and tests/unit/test_vocab.c checks them against schemas/.
 * Adding a word touches this file, the schema when the word is part of a
 * record, and the code that emits it. */
#ifndef BRW_VOCAB_H
#define BRW_VOCAB_H

/* Campaign statuses (SPEC §2), as the API's words lower-cased: a report's
 * campaign.status, and a progress report's outcome. Those given to FINAL
 * end a campaign (src/campaign.c) and are final reports' outcomes too.
 * UNKNOWN stands for a word the worker does not know: in progress. */
#define BRW_STATUSES(X, FINAL)                                                 \
  X(UNKNOWN, "unknown")                                                        \
  X(CREATION, "creation")                                                      \
  X(MODERATION, "moderation")                                                  \
  X(SCHEDULED, "scheduled")                                                    \
  X(SENDING, "sending")                                                        \
  X(PAUSED, "paused")                                                          \
  FINAL(STOPPED, "stopped")                                                    \
  FINAL(DONE, "done")                                                          \
  FINAL(SPAM, "spam")
typedef enum {
#define BRW_X_(e, s) BRW_STATUS_##e,
  BRW_STATUSES(BRW_X_, BRW_X_)
#undef BRW_X_
  BRW_STATUS__COUNT
} brw_status_t;
extern const char *const brw_status_names[BRW_STATUS__COUNT + 1];
/* Expands to nothing: leaves a word out of a list. */
#define BRW_VOCAB_SKIP(e, s)

/* Final report outcomes (SPEC §4 `outcome`): the final statuses, and
 * EXPIRED when the deadline passed before one. */
#define BRW_OUTCOMES(X)                                                        \
  BRW_STATUSES(BRW_VOCAB_SKIP, X)                                              \
  X(EXPIRED, "expired")
typedef enum {
#define BRW_X_(e, s) BRW_OUTCOME_##e,
  BRW_OUTCOMES(BRW_X_)
#undef BRW_X_
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
#define BRW_DLQ_REASONS(X)                                                     \
  X(INVALID_JSON, BRW_REASON_INVALID_JSON)                                     \
  X(INVALID_ID, BRW_REASON_INVALID_ID)                                         \
  X(UNKNOWN_TYPE, BRW_REASON_UNKNOWN_TYPE)                                     \
  X(UNKNOWN_ACCOUNT, BRW_REASON_UNKNOWN_ACCOUNT)                               \
  X(TOO_LARGE, BRW_REASON_TOO_LARGE)                                           \
  X(INVALID_EVENT, BRW_REASON_INVALID_EVENT)                                   \
  X(NOT_FOUND, BRW_REASON_NOT_FOUND)                                           \
  X(AUTH_FAILED, BRW_REASON_AUTH_FAILED)                                       \
  X(BAD_RESPONSE, BRW_REASON_BAD_RESPONSE)
typedef enum {
#define BRW_X_(e, s) BRW_DLQ_##e,
  BRW_DLQ_REASONS(BRW_X_)
#undef BRW_X_
  BRW_DLQ__COUNT
} brw_dlq_reason_t;
#define BRW_DLQ__INTAKE (BRW_DLQ_INVALID_EVENT + 1)
extern const char *const brw_dlq_reason_names[BRW_DLQ__COUNT + 1];
/* The intake reasons alone (the first BRW_DLQ__INTAKE), NULL-ended. */
extern const char *const brw_intake_reason_names[BRW_DLQ__INTAKE + 1];

/* Why a detail fetch failed and will be retried (brw_fetch_result_t's
 * error_class, api_retries_total's label). */
#define BRW_RETRY_CLASSES(X)                                                   \
  X(CONNECT, "connect") /* connection refused or unreachable */                \
  X(DNS, "dns")                                                                \
  X(TLS, "tls")                                                                \
  X(TIMEOUT, "timeout")                                                        \
  X(TOO_LARGE, "too_large") /* body over http.max_response */                  \
  X(TRANSPORT, "transport") /* any other transport error */                    \
  X(5XX, "5xx")                                                                \
  X(429, "429")                                                                \
  X(BAD_BODY, "bad_body") /* 200 with something that is not a detail */        \
  X(401, "401")           /* bearer refused: a login follows */                \
  X(404, "404")           /* not found (yet): the grace period runs */         \
  X(4XX, "4xx")                                                                \
  X(LOCAL, "local") /* out of memory, a request curl would not start */        \
  X(AUTH, "auth")   /* the account's login gave no usable bearer */            \
  X(LOGIN, "login") /* the account's login answered another 4xx */
typedef enum {
#define BRW_X_(e, s) BRW_RETRY_##e,
  BRW_RETRY_CLASSES(BRW_X_)
#undef BRW_X_
  BRW_RETRY__COUNT
} brw_retry_class_t;
extern const char *const brw_retry_class_names[BRW_RETRY__COUNT + 1];

/* What chose a poll delay (src/schedule.c; polls_scheduled_total). */
#define BRW_BASES(X)                                                           \
  X(BACKOFF, "backoff")                                                        \
  X(ESTIMATE, "estimate")                                                      \
  X(SCHEDULED_START, "scheduled_start")
typedef enum {
#define BRW_X_(e, s) BRW_BASIS_##e,
  BRW_BASES(BRW_X_)
#undef BRW_X_
  BRW_BASIS__COUNT
} brw_schedule_basis_t;
extern const char *const brw_basis_names[BRW_BASIS__COUNT + 1];

/* The index of `name` in a NULL-ended table, or -1. */
int brw_vocab_find(const char *const *names, const char *name);

#endif
