/* CloudEvents binary-mode headers (see include/brw/cloudevents.h). Pure. */
#include "brw/cloudevents.h"
#include "brw/error.h"
#include "brw/timeutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int brw_ce_headers_add(brw_headers_t *h, const brw_ce_t *ce) {
  char t[40], subj[24];
  brw_time_format(ce->time_ms, t, sizeof(t));
  if (brw_headers_add_str(h, "ce_specversion", "1.0") ||
      brw_headers_add_str(h, "ce_id", ce->id) ||
      brw_headers_add_str(h, "ce_source", ce->source) ||
      brw_headers_add_str(h, "ce_type", ce->type) ||
      brw_headers_add_str(h, "ce_time", t))
    return BRW_ENOMEM;
  if (ce->subject) {
    snprintf(subj, sizeof(subj), "%" PRIu64, ce->subject);
    if (brw_headers_add_str(h, "ce_subject", subj))
      return BRW_ENOMEM;
  }
  return 0;
}

static int unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

void brw_ce_default_source(const char *group_id, char *out, size_t len) {
  static const char prefix[] = "/bsg-report-worker/";
  static const char hex[] = "0123456789ABCDEF";
  size_t n = 0;
  if (len == 0)
    return;
  for (const char *p = prefix; *p && n + 1 < len; p++)
    out[n++] = *p;
  for (const unsigned char *p = (const unsigned char *)group_id; p && *p; p++) {
    if (unreserved(*p)) {
      if (n + 1 >= len)
        break;
      out[n++] = (char)*p;
    } else {
      if (n + 3 >= len)
        break;
      out[n++] = '%';
      out[n++] = hex[*p >> 4];
      out[n++] = hex[*p & 15];
    }
  }
  out[n] = '\0';
}

void brw_ce_report_id(char *out, size_t len, const char *account,
                      uint64_t campaign_id, const char *outcome) {
  snprintf(out, len, "report/%s/%" PRIu64 "/%s", account, campaign_id, outcome);
}

void brw_ce_progress_id(char *out, size_t len, const char *account,
                        uint64_t campaign_id, const char *status,
                        uint32_t digest) {
  snprintf(out, len, "progress/%s/%" PRIu64 "/%s/%08" PRIx32, account,
           campaign_id, status, digest);
}

void brw_ce_dlq_id(char *out, size_t len, const char *topic, int32_t partition,
                   int64_t offset) {
  snprintf(out, len, "dlq/%s/%" PRId32 "/%" PRId64, topic, partition, offset);
}
