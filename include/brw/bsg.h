/* The BSG One API's data (SPEC §2): campaign detail parsing and
 * normalisation, the campaign list, statuses, error bodies and the JWT
 * payload. Pure functions, no I/O. */
#ifndef BRW_BSG_H
#define BRW_BSG_H

#include "brw/timeutil.h"
#include "brw/vocab.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* brw_status_t and the status names: brw/vocab.h. */

/* Case-insensitive; unknown text gives BRW_STATUS_UNKNOWN. */
brw_status_t brw_status_parse(const char *s);
/* Lower-case canonical name, static ("unknown" for BRW_STATUS_UNKNOWN). */
const char *brw_status_name(brw_status_t st);
/* done, stopped, spam. */
int brw_status_is_terminal(brw_status_t st);

/* A parsed, normalised campaign detail. */
typedef struct {
  uint64_t id;
  brw_status_t status;
  char status_raw[32]; /* the value as sent, lower-cased, truncated */
  /* The §4 report's "campaign" object, owned (json_decref in
   * brw_detail_clear): name, sender, type, status, started_at,
   * actual_start_at, created_at, finished_at (RFC 3339 UTC or null),
   * statistics (object of integers, arrays summed, unknown integer counters
   * kept), total_messages, total_phones (integers or null), total_price
   * (decimal string with a dot, or null), currency, and
   * alternative_channels when present (passed through). */
  json_t *campaign;
  /* Times as epoch ms, 0 when absent. */
  int64_t scheduled_start_ms;
  int64_t actual_start_ms;
  int64_t created_ms;
  int64_t finished_ms;
  /* Sums used for derived metrics (docs/design.md, "Statistics and
   * rates"). A parsed detail has every counter >= 0 and their sum within
   * int64 (else it is a bad response), so each sum below is >= 0 and at
   * most `counted`. */
  int64_t total_messages; /* -1 when absent */
  int64_t delivered; /* delivered + read */
  int64_t failed;    /* failed + undelivered + expired + not_*_user */
  int64_t pending;   /* sent + scheduled + moderation + accepted + sending */
  int64_t counted;   /* every integer counter, unknown and others included */
  /* A fingerprint of the summed statistics (key and value of every
   * counter, in any order): equal statistics give equal values. */
  uint64_t stats_hash;
} brw_detail_t;

/* Parses the body of GET /api/campaigns/{id}/detail: `{"data": {...}}`
 * (a bare object without "data" is accepted too). Every variant of the SPEC
 * §2 table is accepted. `tz` is the zone of zone-less timestamps (borrowed;
 * NULL is UTC).
 *
 * Returns 0 and fills *out (the caller calls brw_detail_clear), or
 * BRW_EBADRESP with a one-line reason in errbuf (then *out holds nothing to
 * free). A body without a usable status or id is a bad response, and so is
 * one whose figures a report could not state within its schema (SPEC §4):
 * a negative statistics counter, counters whose sum overflows int64, a
 * negative integer total_messages or total_phones. */
int brw_detail_parse(const char *body, size_t len, const brw_tz_t *tz,
                     brw_detail_t *out, char *errbuf, size_t errlen);
void brw_detail_clear(brw_detail_t *d);

/* The same checks and the same status, id, times, totals, sums and
 * fingerprint as brw_detail_parse, without building `campaign` (NULL):
 * what scheduling needs, at a fraction of the cost. A body accepted here is
 * accepted by brw_detail_parse, which builds the report's object later
 * from the same bytes. */
int brw_detail_summary(const char *body, size_t len, const brw_tz_t *tz,
                       brw_detail_t *out, char *errbuf, size_t errlen);

/* One campaign of a list page (brw_campaign_list_parse). A list item only
 * steers scheduling; a report always comes from a detail. */
typedef struct {
  uint64_t id;         /* 1 .. BRW_CAMPAIGN_ID_MAX (2^53, brw/event.h) */
  brw_status_t status; /* BRW_STATUS_UNKNOWN when absent or not known */
  /* Epoch ms, 0 when absent, null or unparseable. */
  int64_t scheduled_start_ms;
  int64_t actual_start_ms;
  int64_t created_ms;
  int64_t finished_ms;
  /* The raw "delivered" and "sent" counters (summed over an array of
   * statistics objects), -1 when absent or unusable. Not the sums of
   * brw_detail_t, whose `delivered` includes `read`. */
  int64_t delivered;
  int64_t sent;
} brw_campaign_list_item_t;

/* A parsed page of the campaign list. */
typedef struct {
  brw_campaign_list_item_t *items; /* owned: brw_campaign_list_clear */
  size_t n;
  /* Entries of `data` left out: not an object, or no usable id. */
  size_t skipped;
  /* meta.page, -1 when absent or not a non-negative integer. */
  int64_t total;
  int64_t limit;
  int64_t offset;
} brw_campaign_list_t;

/* Parses the body of GET /api/campaigns (SearchCampaignResource):
 * `{"data": [campaign, ...], "meta": {"page": {"total", "limit",
 * "offset"}}}`; a bare top-level array of campaigns is accepted too (meta
 * then absent). `tz` is the zone of zone-less timestamps (borrowed; NULL is
 * UTC).
 *
 * Each item is read with the detail's rules: the same aliases of each time
 * (started_at / start_date / start_at, actual_start_at / real_start_at,
 * created_at / creation_at, finished_at; null counts as absent) and the
 * same time parsing, an id that is an integer or a decimal string, a
 * case-insensitive status, statistics as an object or an array of objects
 * summed per key. Unlike the detail, a page is never refused for one bad
 * item: an item is only a hint for scheduling, and one odd campaign must
 * not hide the other 499. So an unknown or missing status gives
 * BRW_STATUS_UNKNOWN, an unusable time 0, an unusable counter (negative,
 * or a sum beyond int64) -1; an entry that is not an object or has no id
 * in 1 .. 2^53 is skipped and counted in `skipped`. (A \u0000 in a
 * string or an integer beyond int64 anywhere still makes the whole body
 * "not JSON": json_loadb refuses them, for the detail too.)
 *
 * Returns 0 and fills *out (the caller calls brw_campaign_list_clear; items
 * is NULL when n is 0), BRW_EBADRESP with a one-line reason in errbuf when
 * the body is not JSON, or not an object whose "data" is an array nor an
 * array itself, or BRW_ENOMEM. On failure *out holds nothing to free. */
int brw_campaign_list_parse(const char *body, size_t len, const brw_tz_t *tz,
                            brw_campaign_list_t *out, char *errbuf,
                            size_t errlen);
/* Frees l->items and resets *l to an empty list (meta -1); clearing twice
 * is harmless. */
void brw_campaign_list_clear(brw_campaign_list_t *l);

/* Normalises a price: "0.16", "35,0987645", a JSON integer or real (its
 * text as jansson read it is not available, so reals are printed with up to
 * 15 significant digits and trailing zeros removed). Writes a decimal string
 * with a dot into buf. Returns 0 or BRW_EPARSE. String inputs are converted
 * textually, never through a binary float. */
int brw_price_normalize(const json_t *v, char *buf, size_t len);

/* Extracts a readable message from an API error body ({"message": ...} or
 * {"error": N, "errorDescription": ...}); writes at most len-1 bytes, never
 * fails (writes "" when nothing is found). */
void brw_api_error_message(const char *body, size_t len, char *buf,
                           size_t buflen);

/* Reads `exp` (seconds since the epoch) from a JWT's payload without
 * verifying the signature. Returns 0 and sets *exp_s, or BRW_EPARSE when the
 * token is not a JWT or has no numeric exp. An accepted exp is positive and
 * at most INT64_MAX / 1000, so `*exp_s * 1000` cannot overflow. */
int brw_jwt_exp(const char *token, int64_t *exp_s);

/* Parses the login/refresh response {"bearer": "..."}; returns a malloc'ed
 * copy of the token (caller frees) or NULL. Structure only: the token's
 * lifetime is brw_bearer_read's business. */
char *brw_bearer_parse(const char *body, size_t len);

/* What a token says about its own lifetime (brw_jwt_times). */
typedef struct {
  int is_jwt;  /* exactly three '.'-separated segments (a JWS compact token) */
  int has_exp; /* exp present, a NumericDate in 1 .. INT64_MAX / 1000 */
  int has_iat; /* iat likewise (an unusable iat is left out, not an error) */
  int64_t exp_s, iat_s;
} brw_jwt_times_t;

/* Reads `exp` and `iat` of a token without verifying its signature. A token
 * that is not shaped like a JWT is opaque: 0, is_jwt 0, no times (SPEC §2:
 * read exp "where present"). A JWT must have a base64url payload that is a
 * JSON object whose exp, when present, is a NumericDate in range; otherwise
 * BRW_EPARSE (a JWT whose expiry cannot be read is not sent: a gateway that
 * mangles tokens would make every request fail). Never allocates beyond the
 * call; BRW_ENOMEM when out of memory. */
int brw_jwt_times(const char *token, brw_jwt_times_t *out);

/* Why a login or refresh answered 200 yields no usable bearer. The names
 * (brw_bearer_status_name) are the `reason` label values of
 * api_auth_failures_total. */
typedef enum {
  BRW_BEARER_OK = 0,
  BRW_BEARER_NOT_JSON,    /* the body is not a JSON object */
  BRW_BEARER_MISSING,     /* no "bearer" (nor "token", "access_token") */
  BRW_BEARER_NOT_STRING,  /* null, a number, an object, ... */
  BRW_BEARER_EMPTY,       /* "" */
  BRW_BEARER_BAD_CHAR,    /* whitespace, a control or a non-ASCII byte: it
                             cannot go into an Authorization header */
  BRW_BEARER_TOO_LONG,    /* over BRW_BEARER_MAX bytes */
  BRW_BEARER_BAD_JWT,     /* shaped like a JWT, but exp cannot be read */
  BRW_BEARER_EXPIRED,     /* exp is not in the future */
  BRW_BEARER_EXPIRES_SOON /* exp is less than min_life_ms away */
} brw_bearer_status_t;

#define BRW_BEARER_MAX 16384

/* The outcome of reading a login or refresh answer. */
typedef struct {
  brw_bearer_status_t status;
  char *token;       /* malloc'ed when status is OK, else NULL; the caller
                        owns it (brw_bearer_clear wipes and frees it) */
  const char *field; /* static: the key the token was found under, or NULL */
  const char *type;  /* NOT_STRING: static JSON type name ("null", ...) */
  size_t len;        /* the token's length in bytes (0 when none) */
  size_t bad_at;     /* BAD_CHAR: offset of the first unusable byte */
  unsigned char bad_byte; /* BAD_CHAR: that byte (never a secret: it is one
                             byte that no issued token may contain) */
  brw_jwt_times_t jwt;    /* when a token string was read */
} brw_bearer_t;

/* Reads a login or refresh answer and decides whether its bearer can be
 * used at now_ms (wall clock, epoch ms): structure (brw_bearer_parse's
 * rules), then the JWT's exp, which must be at least min_life_ms ahead.
 * Fills *out; returns 0 when the bearer is usable (out->token set), else
 * BRW_EPARSE with out->status saying why (or BRW_ENOMEM). The token is never
 * copied anywhere else. Pure: the caller passes the clock. */
int brw_bearer_read(const char *body, size_t len, int64_t now_ms,
                    int64_t min_life_ms, brw_bearer_t *out);
/* Wipes and frees out->token (if any) and zeroes *out. */
void brw_bearer_clear(brw_bearer_t *b);
/* The stable name of a status ("ok", "expired", "bad_jwt", ...), static. */
const char *brw_bearer_status_name(brw_bearer_status_t st);
/* One line saying why the bearer is unusable, for the log and the fetches'
 * error message ("JWT exp 2025-03-01T10:00:00Z is 278 days in the past;
 * ..."). Never contains the token. Writes at most len - 1 bytes; returns
 * buf. */
char *brw_bearer_describe(const brw_bearer_t *b, int64_t now_ms, char *buf,
                          size_t len);

#endif
