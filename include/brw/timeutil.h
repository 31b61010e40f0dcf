/* Time helpers: wall clock in milliseconds, BSG timestamps, RFC 3339. */
#ifndef BRW_TIMEUTIL_H
#define BRW_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time, milliseconds since the Unix epoch (UTC). */
int64_t brw_now_ms(void);

/* Milliseconds from `now_ms` until the instant `epoch_s` (seconds since the
 * epoch): 0 when it is past, saturated at INT64_MAX instead of overflowing.
 * For a time read from the network (an HTTP-date in Retry-After may name
 * any year up to 2^31), where `epoch_s * 1000` overflows int64. */
int64_t brw_time_until_ms(int64_t epoch_s, int64_t now_ms);

/* Parses a configured API time zone: "UTC", "Z", or a fixed offset "+03:00",
 * "-0530", "+3". Sets *offset_s (seconds east of UTC). Returns 0 or
 * BRW_EINVAL. */
int brw_tz_parse(const char *s, int32_t *offset_s);

/* Parses a BSG timestamp: "yyyy-mm-dd hh:mm:ss" (no zone: `tz_offset_s` is
 * the zone the API uses), or ISO 8601 / RFC 3339 with 'T', optional
 * fractional seconds and an optional "Z" / "+hh:mm" zone, which then wins.
 * A bare date "yyyy-mm-dd" is midnight. Sets *ms (UTC epoch milliseconds).
 * Returns 0 or BRW_EPARSE. */
int brw_time_parse(const char *s, int32_t tz_offset_s, int64_t *ms);

/* Formats epoch milliseconds as RFC 3339 UTC with second precision,
 * "2026-11-27T10:00:00Z", into buf (at least 21 bytes; 32 is safe). Returns
 * buf. */
char *brw_time_format(int64_t ms, char *buf, size_t len);

#endif
