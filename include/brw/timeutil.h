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

/* ---- zones of the API's timestamps (api.timezone) ----------------------
 *
 * A zone is a fixed offset or an IANA zone ("Europe/Kyiv") read from the
 * system's tz database (TZif files, RFC 8536, under $TZDIR or
 * /usr/share/zoneinfo, Debian's tzdata package). The file is parsed here,
 * transitions and the POSIX TZ rule of its footer (the DST rule for every
 * year after the last listed transition), rather than through localtime()
 * and setenv("TZ"): the TZ variable is process-wide, and librdkafka's and
 * curl's threads read it. A zone is immutable once made, so any thread may
 * read it; it belongs to whoever made it (brw_tz_free).
 *
 * A local time that does not exist (the hour skipped when clocks go
 * forward) is read with the offset in effect before the change, as if the
 * clocks had not moved yet: 03:30 in Kyiv on 2026-03-29 is 01:30Z (shown
 * as 04:30 EEST). A local time that exists twice (the hour repeated when
 * clocks go back) is the first of the two, still in summer time: 03:30 in
 * Kyiv on 2026-10-25 is 00:30Z. These are PEP 495's fold=0 and what
 * java.time and most databases do; docs/design.md gives the reasons. */
typedef struct brw_tz_s brw_tz_t;

/* Where IANA names are looked up when $TZDIR is unset. */
#define BRW_TZ_DIR "/usr/share/zoneinfo"

/* Makes a zone from an api.timezone value: "UTC", "Z", a fixed offset as
 * brw_tz_parse reads it, or an IANA name (letters, digits, '_', '-', '+',
 * '.', '/'-separated, no "." or ".." part) read from $TZDIR or BRW_TZ_DIR.
 * Returns 0 and sets *out (the caller frees it with brw_tz_free), or
 * BRW_EINVAL with a one-line reason in why (naming the value, not the key),
 * or BRW_ENOMEM. */
int brw_tz_load(const char *spec, brw_tz_t **out, char *why, size_t whylen);

/* Reads a TZif file held in memory (versions 1 to 4; `data` is borrowed).
 * Refused: a bad header or sizes, unordered transitions, offsets beyond
 * RFC 8536's range, leap-second ("right/") files, a footer that is not a
 * POSIX TZ rule. Returns 0 and sets *out (brw_tz_free), BRW_EINVAL with a
 * reason in why, or BRW_ENOMEM. Fuzzed by fuzz/fuzz_tzif.c. */
int brw_tz_from_tzif(const void *data, size_t len, brw_tz_t **out, char *why,
                     size_t whylen);

/* A zone of one fixed offset (seconds east of UTC, within +-26h), or NULL
 * on out of memory or a bad offset. */
brw_tz_t *brw_tz_fixed(int32_t offset_s);

void brw_tz_free(brw_tz_t *tz);

/* The offset (seconds east of UTC) in effect at the instant `utc_s`
 * (seconds since the epoch). NULL is UTC. */
int32_t brw_tz_offset_at(const brw_tz_t *tz, int64_t utc_s);

/* The offset that turns the local wall time `local_s` (seconds since the
 * epoch as if it were UTC) into an instant, utc = local - offset, with the
 * rules above for a skipped or repeated local time. NULL is UTC. */
int32_t brw_tz_offset_local(const brw_tz_t *tz, int64_t local_s);

/* brw_time_parse with a zone object for zone-less text (NULL: UTC). */
int brw_time_parse_tz(const char *s, const brw_tz_t *tz, int64_t *ms);

/* Formats epoch milliseconds as RFC 3339 UTC with second precision,
 * "2026-11-27T10:00:00Z", into buf (at least 21 bytes; 32 is safe). Returns
 * buf. */
char *brw_time_format(int64_t ms, char *buf, size_t len);

#endif
