/* Input events (SPEC §3): one Kafka message (its value and the headers of
 * CloudEvents) -> brw_event_t.
 *
 * Everything here is pure: no logging, no configuration (the configured
 * type names come in as an argument). The caller turns a failure into a DLQ
 * record with the reason code and the message. */
#include "brw/event.h"
#include "brw/error.h"
#include "brw/timeutil.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

const char *const brw_event_header_names[BRW_EVENT_H__COUNT] = {
    "content-type", "ce_specversion", "ce_type", "ce_time"};

const char *brw_event_shape_name(brw_event_shape_t shape) {
  switch (shape) {
  case BRW_EVENT_PLAIN:
    return "plain";
  case BRW_EVENT_CE_BINARY:
    return "ce_binary";
  case BRW_EVENT_CE_STRUCTURED:
    return "ce_structured";
  }
  return "unknown";
}

/* ------------------------------------------------------------------------ */
/* Type names                                                               */

static const char SENT[] = "campaign.sent";
static const char FINISHED[] = "campaign.finished";

/* Whether the n bytes at s are the C string lit. */
static int bytes_eq(const char *s, size_t n, const char *lit) {
  return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* Whether a configured list has no names: NULL, empty or blank. */
static int list_blank(const char *list) {
  return !list || list[strspn(list, " \t")] == '\0';
}

/* Steps through a comma-separated list that is not blank: sets *name and *n
 * to the next name, spaces and tabs around it trimmed (possibly empty, as
 * in "a,,b"), and returns 1; returns 0 after the last. *p starts at the
 * list and is advanced. */
static int list_next(const char **p, const char **name, size_t *n) {
  const char *s = *p, *comma, *end;
  if (!s)
    return 0;
  comma = strchr(s, ',');
  end = comma ? comma : s + strlen(s);
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *name = s;
  *n = (size_t)(end - s);
  *p = comma ? comma + 1 : NULL;
  return 1;
}

static int list_has(const char *list, const char *s, size_t n) {
  const char *p = list, *name;
  size_t k;
  if (list_blank(list))
    return 0;
  while (list_next(&p, &name, &k)) {
    if (k == n && memcmp(name, s, n) == 0)
      return 1;
  }
  return 0;
}

/* The type a name means: the built-in names, then the configured ones
 * (which brw_event_types_check keeps apart from the built-in ones and from
 * each other, so the order only matters for a configuration it did not
 * check). Case-sensitive, as CloudEvents types are. Returns 0 or -1. */
static int type_lookup(const brw_event_types_t *types, const char *s, size_t n,
                       brw_event_type_t *type) {
  if (bytes_eq(s, n, SENT) || (types && list_has(types->sent, s, n))) {
    *type = BRW_EVENT_SENT;
    return 0;
  }
  if (bytes_eq(s, n, FINISHED) || (types && list_has(types->finished, s, n))) {
    *type = BRW_EVENT_FINISHED;
    return 0;
  }
  return -1;
}

int brw_event_types_check(const char *list, brw_event_type_t meaning, char *why,
                          size_t whylen) {
  const char *p = list, *name;
  const char *other = meaning == BRW_EVENT_SENT ? FINISHED : SENT;
  char snip[SNIPPET_MAX + 4];
  size_t n, count = 0;

  if (list_blank(list))
    return 0;
  while (list_next(&p, &name, &n)) {
    if (n == 0)
      return fail(-1, NULL, NULL, why, whylen,
                  "an empty name in the list (\"a,,b\" or a comma at an end)");
    snippet(name, n, snip);
    if (n > BRW_EVENT_TYPE_NAME_MAX)
      return fail(-1, NULL, NULL, why, whylen,
                  "the name \"%s\" is %zu bytes, longer than %d", snip, n,
                  BRW_EVENT_TYPE_NAME_MAX);
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)name[i];
      if (c <= 0x20 || c >= 0x7f)
        return fail(-1, NULL, NULL, why, whylen,
                    "the name \"%s\" holds a space or a byte that is not "
                    "printable ASCII",
                    snip);
    }
    if (bytes_eq(name, n, other))
      return fail(-1, NULL, NULL, why, whylen,
                  "\"%s\" is the built-in name of %s", other, other);
    if (++count > BRW_EVENT_TYPES_MAX)
      return fail(-1, NULL, NULL, why, whylen, "more than %d names",
                  BRW_EVENT_TYPES_MAX);
  }
  return 0;
}

int brw_event_types_overlap(const brw_event_types_t *types, char *name,
                            size_t len) {
  const char *p, *s;
  size_t n;
  if (!types || list_blank(types->sent) || list_blank(types->finished))
    return 0;
  for (p = types->sent; list_next(&p, &s, &n);) {
    if (n > 0 && list_has(types->finished, s, n)) {
      if (name && len > 0)
        snprintf(name, len, "%.*s", (int)(n < len ? n : len - 1), s);
      return 1;
    }
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Media types and headers                                                  */

/* The media type of a Content-Type value (n bytes): the text before any
 * ';' (the parameters), spaces and tabs around it trimmed. */
static void media_type(const char *s, size_t n, const char **mt,
                       size_t *mtlen) {
  const char *end = memchr(s, ';', n);
  if (!end)
    end = s + n;
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *mt = s;
  *mtlen = (size_t)(end - s);
}

/* Whether the n bytes at s begin, case-insensitively, with lit. */
static int bytes_prefix_ci(const char *s, size_t n, const char *lit) {
  size_t k = strlen(lit);
  return n >= k && strncasecmp(s, lit, k) == 0;
}

/* Whether a media type (no parameters) is JSON: "type/json" or
 * "type/anything+json" (RFC 6839's suffix), case-insensitively; what the
 * CloudEvents JSON format stores as JSON in `data`. */
static int media_is_json(const char *s, size_t n) {
  const char *slash = memchr(s, '/', n);
  size_t sub;
  if (!slash || slash == s)
    return 0;
  sub = n - (size_t)(slash + 1 - s);
  return (sub == 4 && strncasecmp(slash + 1, "json", 4) == 0) ||
         (sub > 5 && strncasecmp(s + n - 5, "+json", 5) == 0);
}

static const brw_event_bytes_t *header(const brw_event_input_t *in,
                                       brw_event_header_t h) {
  return in->headers[h].ptr ? &in->headers[h] : NULL;
}

/* A time for occurred_at from bytes (a header) or a JSON string: 0 and *ms
 * when it parses, -1 otherwise. A header is copied into a bounded buffer
 * first: it is not NUL-terminated, and no time is 64 bytes long. */
static int time_from_bytes(const char *s, size_t n, int64_t *ms) {
  char buf[64];
  if (n >= sizeof(buf) || memchr(s, '\0', n))
    return -1;
  memcpy(buf, s, n);
  buf[n] = '\0';
  return brw_time_parse(buf, 0, ms) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The event's fields                                                       */

/* Reads campaign id, account and occurred_at from obj: the plain event, a
 * binary-mode event's data, or a structured event's `data`. `prefix` is put
 * before field names in messages ("" or "data."), `what` names obj in the
 * message of a missing id. Order: campaign id, account, occurred_at (which
 * never fails). Returns 0 or fail()'s code. */
static int read_fields(const json_t *obj, const char *prefix, const char *what,
                       brw_event_t *ev, const char **reason, char *errbuf,
                       size_t errlen) {
  json_t *v, *data;
  const char *key = "campaign_id";
  const char *why = NULL;
  char snip[SNIPPET_MAX + 4];

  /* campaign_id > id > data.id: the first present one decides, even when it
   * is invalid, so that a bad campaign_id is never masked by another id. */
  v = get(obj, "campaign_id");
  if (!v) {
    key = "id";
    v = get(obj, "id");
  }
  if (!v) {
    data = get(obj, "data");
    key = "data.id";
    v = json_is_object(data) ? get(data, "id") : NULL;
  }
  if (!v)
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
                "%s has no %scampaign_id, %sid or %sdata.id", what, prefix,
                prefix, prefix);
  if (parse_id(v, &ev->campaign_id, &why) != 0) {
    if (json_is_string(v)) {
      snippet(json_string_value(v), json_string_length(v), snip);
      return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
                  "%s%s \"%s\" %s", prefix, key, snip, why);
    }
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
                "%s%s %s", prefix, key, why);
  }

  /* account: a syntactically invalid name cannot name a configured account,
   * so it is reported like an unknown one. */
  v = get(obj, "account");
  if (!v) {
    memcpy(ev->account, "default", sizeof("default"));
  } else if (!json_is_string(v)) {
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_ACCOUNT, errbuf, errlen,
                "%saccount is not a string", prefix);
  } else if (!account_valid(json_string_value(v), json_string_length(v))) {
    snippet(json_string_value(v), json_string_length(v), snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_ACCOUNT, errbuf, errlen,
                "invalid account name \"%s\"", snip);
  } else {
    memcpy(ev->account, json_string_value(v), json_string_length(v) + 1);
  }

  /* occurred_at: deadlines count from it when valid; an invalid value only
   * loses that refinement, so it is ignored. Zone-less text is UTC. */
  v = get(obj, "occurred_at");
  if (json_is_string(v)) {
    int64_t ms;
    if (brw_time_parse(json_string_value(v), 0, &ms) == 0)
      ev->occurred_at_ms = ms;
  }
  return 0;
}

/* The type of a plain event: `type`, alias `event`; absent means sent. */
static int plain_type(const json_t *root, const brw_event_types_t *types,
                      brw_event_t *ev, const char **reason, char *errbuf,
                      size_t errlen) {
  char snip[SNIPPET_MAX + 4];
  json_t *v = get(root, "type");
  if (!v)
    v = get(root, "event");
  if (!v) {
    ev->type = BRW_EVENT_SENT;
    return 0;
  }
  if (!json_is_string(v))
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "event type is not a string");
  if (type_lookup(types, json_string_value(v), json_string_length(v),
                  &ev->type) != 0) {
    snippet(json_string_value(v), json_string_length(v), snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "unknown event type \"%s\"", snip);
  }
  return 0;
}

/* The headers of a binary-mode event, read before its value: ce_specversion
 * (when present) 1.0, content-type (when present) JSON, ce_type a type. */
static int binary_headers(const brw_event_input_t *in,
                          const brw_event_types_t *types, brw_event_t *ev,
                          const char **reason, char *errbuf, size_t errlen) {
  const brw_event_bytes_t *h;
  char snip[SNIPPET_MAX + 4];

  if ((h = header(in, BRW_EVENT_H_CE_SPECVERSION)) &&
      !bytes_eq(h->ptr, h->len, "1.0")) {
    snippet(h->ptr, h->len, snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "ce_specversion \"%s\" is not supported (only 1.0)", snip);
  }
  if ((h = header(in, BRW_EVENT_H_CONTENT_TYPE))) {
    const char *mt;
    size_t n;
    media_type(h->ptr, h->len, &mt, &n);
    if (!media_is_json(mt, n)) {
      snippet(h->ptr, h->len, snip);
      return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                  "binary-mode CloudEvent with content-type \"%s\": the "
                  "data must be JSON",
                  snip);
    }
  }
  if (!(h = header(in, BRW_EVENT_H_CE_TYPE)))
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "binary-mode CloudEvent (ce_specversion header) without a "
                "ce_type header");
  if (type_lookup(types, h->ptr, h->len, &ev->type) != 0) {
    snippet(h->ptr, h->len, snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "unknown ce_type \"%s\"", snip);
  }
  return 0;
}

/* A structured-mode envelope: specversion, datacontenttype, data_base64,
 * type, data; then the event's fields from data, and the envelope's time
 * for occurred_at when data has no valid one. */
static int structured(const json_t *root, const brw_event_types_t *types,
                      brw_event_t *ev, const char **reason, char *errbuf,
                      size_t errlen) {
  char snip[SNIPPET_MAX + 4];
  json_t *v, *data;
  int rc;

  v = get(root, "specversion");
  if (!v)
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "CloudEvent (content-type application/cloudevents+json) "
                "without specversion");
  if (!json_is_string(v))
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "CloudEvent specversion is not a string");
  if (!bytes_eq(json_string_value(v), json_string_length(v), "1.0")) {
    snippet(json_string_value(v), json_string_length(v), snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "CloudEvent specversion \"%s\" is not supported (only 1.0)",
                snip);
  }
  if ((v = get(root, "datacontenttype"))) {
    const char *mt;
    size_t n;
    if (!json_is_string(v))
      return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                  "CloudEvent datacontenttype is not a string");
    media_type(json_string_value(v), json_string_length(v), &mt, &n);
    if (!media_is_json(mt, n)) {
      snippet(json_string_value(v), json_string_length(v), snip);
      return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                  "CloudEvent datacontenttype \"%s\": the data must be JSON",
                  snip);
    }
  }
  if (get(root, "data_base64"))
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "CloudEvent with data_base64: the data must be a JSON object "
                "in data");
  v = get(root, "type");
  if (!v)
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "CloudEvent without a type");
  if (!json_is_string(v))
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "CloudEvent type is not a string");
  if (type_lookup(types, json_string_value(v), json_string_length(v),
                  &ev->type) != 0) {
    snippet(json_string_value(v), json_string_length(v), snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_UNKNOWN_TYPE, errbuf, errlen,
                "unknown CloudEvent type \"%s\"", snip);
  }
  data = get(root, "data");
  if (!data)
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_ID, errbuf, errlen,
                "CloudEvent without data (campaign_id, id or data.id)");
  if (!json_is_object(data))
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "CloudEvent data is not a JSON object");
  if ((rc = read_fields(data, "data.", "CloudEvent data", ev, reason, errbuf,
                        errlen)) != 0)
    return rc;
  v = get(root, "time");
  if (ev->occurred_at_ms == 0 && json_is_string(v)) {
    int64_t ms;
    if (brw_time_parse(json_string_value(v), 0, &ms) == 0)
      ev->occurred_at_ms = ms;
  }
  return 0;
}

/* Order of checks: the shape (headers only), size (before any parsing, so
 * that a huge value costs nothing), a binary event's headers, JSON, then
 * the shape's own rules (type before campaign id before account);
 * occurred_at never fails. A JSON null counts as an absent field. The
 * parsed document is freed before returning. */
int brw_event_parse_msg(const brw_event_input_t *in,
                        const brw_event_types_t *types, size_t max_size,
                        brw_event_t *ev, const char **reason, char *errbuf,
                        size_t errlen) {
  const brw_event_bytes_t *ct, *h;
  json_error_t jerr;
  json_t *root;
  char snip[SNIPPET_MAX + 4];
  const char *mt = NULL;
  size_t mtlen = 0;
  int rc;

  if (errbuf && errlen > 0)
    errbuf[0] = '\0';
  if (reason)
    *reason = NULL;
  memset(ev, 0, sizeof(*ev));
  ev->shape = BRW_EVENT_PLAIN;

  /* The Kafka binding: a content-type of the CloudEvents media type means
   * structured mode, whatever else the message has. */
  if ((ct = header(in, BRW_EVENT_H_CONTENT_TYPE))) {
    media_type(ct->ptr, ct->len, &mt, &mtlen);
    if (bytes_prefix_ci(mt, mtlen, "application/cloudevents"))
      ev->shape = BRW_EVENT_CE_STRUCTURED;
  }
  if (ev->shape == BRW_EVENT_PLAIN && (header(in, BRW_EVENT_H_CE_TYPE) ||
                                       header(in, BRW_EVENT_H_CE_SPECVERSION)))
    ev->shape = BRW_EVENT_CE_BINARY;

  if (max_size > 0 && in->len > max_size)
    return fail(BRW_ETOOLARGE, reason, BRW_REASON_TOO_LARGE, errbuf, errlen,
                "event value of %zu bytes exceeds the limit of %zu bytes",
                in->len, max_size);
  if (!in->value || in->len == 0)
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "event value is empty");
  /* application/cloudevents-batch and formats other than JSON
   * (application/cloudevents+avro, ...): not readable here. */
  if (ev->shape == BRW_EVENT_CE_STRUCTURED &&
      !(mtlen == strlen("application/cloudevents+json") &&
        strncasecmp(mt, "application/cloudevents+json", mtlen) == 0)) {
    snippet(ct->ptr, ct->len, snip);
    return fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "content-type \"%s\" is not application/cloudevents+json",
                snip);
  }
  if (ev->shape == BRW_EVENT_CE_BINARY &&
      (rc = binary_headers(in, types, ev, reason, errbuf, errlen)) != 0)
    return rc;

  root = json_loadb(in->value, in->len, 0, &jerr);
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

  switch (ev->shape) {
  case BRW_EVENT_PLAIN:
    /* An envelope without its content-type header: read as one, never as
     * a plain event whose `id` is the envelope's. */
    if (get(root, "specversion")) {
      ev->shape = BRW_EVENT_CE_STRUCTURED;
      rc = structured(root, types, ev, reason, errbuf, errlen);
      break;
    }
    if ((rc = plain_type(root, types, ev, reason, errbuf, errlen)) != 0)
      break;
    rc = read_fields(root, "", "event", ev, reason, errbuf, errlen);
    break;
  case BRW_EVENT_CE_BINARY:
    /* The value is the data; an envelope here means the producer mixed the
     * two modes, and its `id` would be read as the campaign id. */
    if (get(root, "specversion")) {
      rc = fail(BRW_EPARSE, reason, BRW_REASON_INVALID_JSON, errbuf, errlen,
                "binary-mode CloudEvent (ce_type header) whose value is an "
                "envelope (specversion): use one mode");
      break;
    }
    if ((rc = read_fields(root, "", "event", ev, reason, errbuf, errlen)) != 0)
      break;
    if (ev->occurred_at_ms == 0 && (h = header(in, BRW_EVENT_H_CE_TIME))) {
      int64_t ms;
      if (time_from_bytes(h->ptr, h->len, &ms) == 0)
        ev->occurred_at_ms = ms;
    }
    break;
  case BRW_EVENT_CE_STRUCTURED:
    rc = structured(root, types, ev, reason, errbuf, errlen);
    break;
  }

out:
  json_decref(root);
  return rc;
}

int brw_event_parse(const void *value, size_t len, size_t max_size,
                    brw_event_t *ev, const char **reason, char *errbuf,
                    size_t errlen) {
  brw_event_input_t in;
  memset(&in, 0, sizeof(in));
  in.value = value;
  in.len = len;
  return brw_event_parse_msg(&in, NULL, max_size, ev, reason, errbuf, errlen);
}
