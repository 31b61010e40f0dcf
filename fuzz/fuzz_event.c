/* Fuzz target: input events (brw_event_parse, SPEC §3).
 *
 * The input is one Kafka message value. It is parsed three ways: with the
 * default 64 KiB limit and a full error buffer; with no limit and a tiny
 * error buffer (truncation); and with a limit below its size, which must
 * fail as too_large without reading the value. Every outcome is checked
 * against the contract in event.h, not only for memory errors. */
#include "brw/error.h"
#include "brw/event.h"
#include "fuzz.h"

#include <string.h>

static int account_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* Checks one result against the header's promises. */
static void check(int rc, const brw_event_t *ev, const char *reason,
                  const char *err, size_t errlen) {
  FUZZ_CHECK(strlen(err) < errlen);
  FUZZ_CHECK(fuzz_is_one_line(err));
  if (rc == 0) {
    size_t n = strlen(ev->account);
    FUZZ_CHECK(reason == NULL);
    FUZZ_CHECK(ev->type == BRW_EVENT_SENT || ev->type == BRW_EVENT_FINISHED);
    FUZZ_CHECK(ev->campaign_id >= 1 && ev->campaign_id <= BRW_CAMPAIGN_ID_MAX);
    FUZZ_CHECK(n >= 1 && n <= BRW_ACCOUNT_NAME_MAX);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK(account_char(ev->account[i]));
    return;
  }
  FUZZ_CHECK(rc == BRW_EPARSE || rc == BRW_ETOOLARGE);
  FUZZ_CHECK(reason != NULL);
  FUZZ_CHECK(!strcmp(reason, BRW_REASON_INVALID_JSON) ||
             !strcmp(reason, BRW_REASON_INVALID_ID) ||
             !strcmp(reason, BRW_REASON_UNKNOWN_TYPE) ||
             !strcmp(reason, BRW_REASON_UNKNOWN_ACCOUNT) ||
             !strcmp(reason, BRW_REASON_TOO_LARGE));
  FUZZ_CHECK((rc == BRW_ETOOLARGE) == !strcmp(reason, BRW_REASON_TOO_LARGE));
  /* The message of a failure is never empty when there is room for it. */
  FUZZ_CHECK(errlen < 2 || err[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  brw_event_t ev, ev2;
  const char *reason;
  char err[256], small[8];
  int rc, rc2;

  rc = brw_event_parse(data, size, 64 * 1024, &ev, &reason, err, sizeof(err));
  check(rc, &ev, reason, err, sizeof(err));

  /* No limit, a truncated message: the same verdict and the same event. */
  rc2 = brw_event_parse(data, size, 0, &ev2, &reason, small, sizeof(small));
  check(rc2, &ev2, reason, small, sizeof(small));
  if (size <= 64 * 1024) {
    FUZZ_CHECK(rc == rc2);
    if (rc == 0) {
      FUZZ_CHECK(ev.type == ev2.type);
      FUZZ_CHECK(ev.campaign_id == ev2.campaign_id);
      FUZZ_CHECK(!strcmp(ev.account, ev2.account));
      FUZZ_CHECK(ev.occurred_at_ms == ev2.occurred_at_ms);
    }
  }

  /* A limit below the size fails before parsing, whatever the bytes (a
   * limit of 0 means none, hence size > 1). */
  if (size > 1) {
    rc = brw_event_parse(data, size, size - 1, &ev, &reason, err, sizeof(err));
    FUZZ_CHECK(rc == BRW_ETOOLARGE);
    check(rc, &ev, reason, err, sizeof(err));
  }
  return 0;
}
