/* Input events (SPEC §3): parsing and validation of one Kafka message value.
 */
#ifndef BRW_EVENT_H
#define BRW_EVENT_H

#include "brw/vocab.h"

#include <stddef.h>
#include <stdint.h>

/* Ids go into a URL path; they must be 1 .. 2^53. */
#define BRW_CAMPAIGN_ID_MAX ((uint64_t)1 << 53)
#define BRW_ACCOUNT_NAME_MAX 64

typedef enum {
  BRW_EVENT_SENT = 0,    /* "campaign.sent", and the default */
  BRW_EVENT_FINISHED = 1 /* "campaign.finished" */
} brw_event_type_t;

typedef struct {
  brw_event_type_t type;
  uint64_t campaign_id;
  char account[BRW_ACCOUNT_NAME_MAX + 1]; /* "default" when absent */
  int64_t occurred_at_ms;                 /* 0 when absent */
} brw_event_t;

/* The DLQ reason codes (BRW_REASON_*) are in brw/vocab.h. */

/* Parses and validates one event value of `len` bytes (not NUL-terminated;
 * may be NULL with len 0).
 *
 * Rules (SPEC §3): value must be a JSON object no larger than `max_size`
 * bytes; `type` (alias `event`) is "campaign.sent" or "campaign.finished",
 * absent means sent; `campaign_id` (aliases `id`, `data.id`, looked up in that
 * order) is a positive integer or a string of ASCII digits only, 1..2^53;
 * `account` (optional) is a non-empty string of at most 64 bytes of
 * [A-Za-z0-9_.-]; `occurred_at` (optional) is an RFC 3339 time (an invalid
 * one is ignored, not an error).
 *
 * Returns 0 and fills *ev, or BRW_EPARSE/BRW_ETOOLARGE with *reason set to
 * one of the static BRW_REASON_* codes and a one-line message in errbuf.
 * The account is not checked against the configuration here.
 *
 * Details: a field whose value is JSON null counts as absent; max_size 0
 * means no limit; an account that is not a valid name gets the reason
 * unknown_account (it cannot name a configured account); a JSON integer too
 * large for jansson (beyond 64 bits) makes the whole value invalid_json.
 * The message quotes at most 48 bytes of input, printable ASCII only. */
int brw_event_parse(const void *value, size_t len, size_t max_size,
                    brw_event_t *ev, const char **reason, char *errbuf,
                    size_t errlen);

#endif
