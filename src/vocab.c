#include "brw/vocab.h"

#include <string.h>

/* Each table from its list in brw/vocab.h, in the enum's order. */
#define BRW_X_(e, s) s,

const char *const brw_status_names[BRW_STATUS__COUNT + 1] = {
    BRW_STATUSES(BRW_X_, BRW_X_) NULL};

const char *const brw_outcome_names[BRW_OUTCOME__COUNT + 1] = {
    BRW_OUTCOMES(BRW_X_) NULL};

const char *const brw_dlq_reason_names[BRW_DLQ__COUNT + 1] = {
    BRW_DLQ_REASONS(BRW_X_) NULL};

/* The first BRW_DLQ__INTAKE DLQ reasons (test_vocab checks the prefix). */
const char *const brw_intake_reason_names[BRW_DLQ__INTAKE + 1] = {
    BRW_REASON_INVALID_JSON, BRW_REASON_INVALID_ID,
    BRW_REASON_UNKNOWN_TYPE, BRW_REASON_UNKNOWN_ACCOUNT,
    BRW_REASON_TOO_LARGE,    BRW_REASON_INVALID_EVENT,
    NULL};

const char *const brw_retry_class_names[BRW_RETRY__COUNT + 1] = {
    BRW_RETRY_CLASSES(BRW_X_) NULL};

const char *const brw_basis_names[BRW_BASIS__COUNT + 1] = {
    BRW_BASES(BRW_X_) NULL};

#undef BRW_X_

int brw_vocab_find(const char *const *names, const char *name) {
  if (!name)
    return -1;
  for (int i = 0; names[i]; i++)
    if (!strcmp(names[i], name))
      return i;
  return -1;
}
