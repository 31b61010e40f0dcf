/* Input events (SPEC §3): one Kafka message value -> brw_event_t.
 *
 * Everything here is pure: no logging, no configuration. The caller turns a
 * failure into a DLQ record with the reason code and the message. */
#include "brw/event.h"
#include "brw/error.h"
#include "brw/timeutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* At most this many bytes of user input are quoted in an error message: the
 * message becomes a Kafka header and a log field, and must stay short. */
#define SNIPPET_MAX 48

/* Copies up to SNIPPET_MAX bytes of `s` into out (at least SNIPPET_MAX + 4
 * bytes), replacing anything but printable ASCII with '?' so that the message
 * stays one line, and '"' too so that the quoted value cannot seem to end
 * early; "..." is appended when it was cut. */
static void snippet(const char *s, size_t n, char *out) {
  size_t i, k = n < SNIPPET_MAX ? n : SNIPPET_MAX;
  for (i = 0; i < k; i++) {
    unsigned char c = (unsigned char)s[i];
    out[i] = (c >= 0x20 && c < 0x7f && c != '"') ? (char)c : '?';
  }
  out[i] = '\0';
  if (n > k)
    memcpy(out + i, "...", 4);
}

/* Sets the reason and formats the one-line message; returns `err` so that
 * callers can `return fail(...)`. */
static int fail(int err, const char **reason, const char *code, char *errbuf,
                size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int fail(int err, const char **reason, const char *code, char *errbuf,
                size_t errlen, const char *fmt, ...) {
  if (reason)
    *reason = code;
  if (errbuf && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
    /* jansson's error texts quote the input; keep the line a line. */
    for (char *p = errbuf; *p; p++) {
      if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
        *p = ' ';
    }
  }
  return err;
}

/* Looks up `key` in obj, treating a JSON null as absent: producers that
 * serialise optional fields as null mean "not given". Borrowed reference. */
static json_t *get(const json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

/* Parses a campaign id from a JSON integer or a string of ASCII digits
 * (no sign, no spaces, no exponent). Returns 0 and sets *id (1 .. 2^53), or
 * -1 and a short description of what is wrong in *why (static). */
static int parse_id(const json_t *v, uint64_t *id, const char **why) {
  if (json_is_integer(v)) {
    json_int_t n = json_integer_value(v);
    if (n <= 0) {
      *why = "is not positive";
      return -1;
    }
    if ((uint64_t)n > BRW_CAMPAIGN_ID_MAX) {
      *why = "exceeds 2^53";
      return -1;
    }
    *id = (uint64_t)n;
    return 0;
  }
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    uint64_t x = 0;
    if (n == 0) {
      *why = "is an empty string";
      return -1;
    }
    for (size_t i = 0; i < n; i++) {
      if (s[i] < '0' || s[i] > '9') {
        *why = "is not all digits";
        return -1;
      }
      /* Checking against the limit at each step also prevents overflow of
       * x for arbitrarily long digit strings. */
      x = x * 10 + (uint64_t)(s[i] - '0');
      if (x > BRW_CAMPAIGN_ID_MAX) {
        *why = "exceeds 2^53";
        return -1;
      }
    }
    if (x == 0) {
      *why = "is not positive";
      return -1;
    }
    *id = x;
    return 0;
  }
  *why = json_is_real(v) ? "is not an integer" : "is not a number or string";
  return -1;
}

static int account_valid(const char *s, size_t n) {
  if (n == 0 || n > BRW_ACCOUNT_NAME_MAX)
    return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return 0;
  }
  return 1;
}

/* Order of checks: size (before any parsing, so that a huge value costs
 * nothing), JSON, type, campaign id, account; occurred_at never fails.
 * A JSON null counts as an absent field. The parsed document is freed before
 * returning; *ev is only meaningful on success. */
int brw_event_parse(const void *value, size_t len, size_t max_size,
                    brw_event_t *ev, const char **reason, char *errbuf,
                    size_t errlen) {
  json_error_t jerr;
  json_t *root, *v, *data;
  const char *key = "campaign_id";
  const char *why = NULL;
  char snip[SNIPPET_MAX + 4];
  int rc;

  if (errbuf && errlen > 0)
    errbuf[0] = '\0';
  if (reason)
    *reason = NULL;
  memset(ev, 0, sizeof(*ev));

  if (max_size > 0 && len > max_size)
    return fail(BRW_ETOOLARGE, reason, BRW_REASON_TOO_LARGE, errbuf, errlen,
                "event value of %zu bytes exceeds the limit of %zu bytes", len,
                max_size);
  if (!value || len == 0)
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "event value is empty");

  root = json_loadb(value, len, 0, &jerr);
  if (!root) {
    snippet(jerr.text, strlen(jerr.text), snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "event value is not JSON: %s (at byte %d)", snip,
                jerr.position);
  }
  if (!json_is_object(root)) {
    rc = fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
              "event value is not a JSON object");
    goto out;
  }

  /* type, alias event; absent means campaign.sent. */
  v = get(root, "type");
  if (!v)
    v = get(root, "event");
  if (!v) {
    ev->type = BRW_EVENT_SENT;
  } else if (json_is_string(v) &&
             !strcmp(json_string_value(v), "campaign.sent")) {
    ev->type = BRW_EVENT_SENT;
  } else if (json_is_string(v) &&
             !strcmp(json_string_value(v), "campaign.finished")) {
    ev->type = BRW_EVENT_FINISHED;
  } else if (json_is_string(v)) {
    snippet(json_string_value(v), json_string_length(v), snip);
    rc = fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
              "unknown event type \"%s\"", snip);
    goto out;
  } else {
    rc = fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
              "event type is not a string");
    goto out;
  }

  /* campaign_id > id > data.id: the first present one decides, even when it
   * is invalid, so that a bad campaign_id is never masked by another id. */
  v = get(root, "campaign_id");
  if (!v) {
    key = "id";
    v = get(root, "id");
  }
  if (!v) {
    data = get(root, "data");
    key = "data.id";
    v = json_is_object(data) ? get(data, "id") : NULL;
  }
  if (!v) {
    rc = fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
              "event has no campaign_id, id or data.id");
    goto out;
  }
  if (parse_id(v, &ev->campaign_id, &why) != 0) {
    if (json_is_string(v)) {
      snippet(json_string_value(v), json_string_length(v), snip);
      rc = fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
                "%s \"%s\" %s", key, snip, why);
    } else {
      rc = fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
                "%s %s", key, why);
    }
    goto out;
  }

  /* account: a syntactically invalid name cannot name a configured account,
   * so it is reported like an unknown one. */
  v = get(root, "account");
  if (!v) {
    memcpy(ev->account, "default", sizeof("default"));
  } else if (!json_is_string(v)) {
    rc = fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_ACCOUNT, errbuf, errlen,
              "account is not a string");
    goto out;
  } else if (!account_valid(json_string_value(v), json_string_length(v))) {
    snippet(json_string_value(v), json_string_length(v), snip);
    rc = fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_ACCOUNT, errbuf, errlen,
              "invalid account name \"%s\"", snip);
    goto out;
  } else {
    memcpy(ev->account, json_string_value(v), json_string_length(v) + 1);
  }

  /* occurred_at: deadlines count from it when valid; an invalid value only
   * loses that refinement, so it is ignored. Zone-less text is UTC. */
  v = get(root, "occurred_at");
  if (json_is_string(v)) {
    int64_t ms;
    if (brw_time_parse(json_string_value(v), 0, &ms) == 0)
      ev->occurred_at_ms = ms;
  }
  rc = 0;

out:
  json_decref(root);
  return rc;
}
