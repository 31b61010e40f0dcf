#include "brw/vocab.h"

#include <string.h>

/* In the order of the enums (tests/unit/test_vocab.c checks the lengths
 * and the schemas). */

const char *const brw_outcome_names[BRW_OUTCOME__COUNT + 1] = {
    "done", "stopped", "spam", "expired", NULL};

const char *const brw_dlq_reason_names[BRW_DLQ__COUNT + 1] = {
    BRW_REASON_INVALID_JSON,    BRW_REASON_INVALID_ID,
    BRW_REASON_UNKNOWN_TYPE,    BRW_REASON_UNKNOWN_ACCOUNT,
    BRW_REASON_TOO_LARGE,       BRW_REASON_INVALID_EVENT,
    BRW_REASON_NOT_FOUND,       BRW_REASON_AUTH_FAILED,
    BRW_REASON_BAD_RESPONSE,    NULL};

const char *const brw_intake_reason_names[BRW_DLQ__INTAKE + 1] = {
    BRW_REASON_INVALID_JSON, BRW_REASON_INVALID_ID,
    BRW_REASON_UNKNOWN_TYPE, BRW_REASON_UNKNOWN_ACCOUNT,
    BRW_REASON_TOO_LARGE,    BRW_REASON_INVALID_EVENT,
    NULL};

const char *const brw_retry_class_names[BRW_RETRY__COUNT + 1] = {
    "connect", "dns", "tls",   "timeout", "too_large", "transport",
    "5xx",     "429", "bad_body", "401",  "404",       "4xx",
    "local",   "auth", "login", NULL};

const char *const brw_basis_names[BRW_BASIS__COUNT + 1] = {
    "backoff", "estimate", "scheduled_start", NULL};

int brw_vocab_find(const char *const *names, const char *name) {
  if (!name)
    return -1;
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], name))
      return i;
  return -1;
}
