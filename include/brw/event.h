/* Input events (SPEC §3): parsing and validation of one Kafka message, its
 * value and the few headers that CloudEvents events carry (issue 16).
 *
 * Three shapes of event are read:
 *   - plain: SPEC §3's JSON object (`type`, `campaign_id`, ...);
 *   - CloudEvents binary mode (the Kafka protocol binding): `ce_*` headers
 *     hold the attributes, `ce_type` the event type, and the value is the
 *     event's data, a JSON object with the plain event's fields;
 *   - CloudEvents structured mode: header `content-type:
 *     application/cloudevents+json` (or, without it, a JSON object with a
 *     `specversion` member), the value is the envelope and the event's
 *     fields are in its `data` object.
 * Event types are "campaign.sent" and "campaign.finished", plus the names
 * the configuration maps to them (event.sent_types, event.finished_types),
 * in every shape. */
#ifndef BRW_EVENT_H
#define BRW_EVENT_H

#include "brw/vocab.h"

#include <stddef.h>
#include <stdint.h>

/* Ids go into a URL path; they must be 1 .. 2^53. */
#define BRW_CAMPAIGN_ID_MAX ((uint64_t)1 << 53)
#define BRW_ACCOUNT_NAME_MAX 64
/* A configured event type name: 1 .. 255 bytes; a list holds at most 32. */
#define BRW_EVENT_TYPE_NAME_MAX 255
#define BRW_EVENT_TYPES_MAX 32

typedef enum {
  BRW_EVENT_SENT = 0,    /* "campaign.sent", and the default */
  BRW_EVENT_FINISHED = 1 /* "campaign.finished" */
} brw_event_type_t;

/* How an event was written. */
typedef enum {
  BRW_EVENT_PLAIN = 0,        /* SPEC §3's JSON object */
  BRW_EVENT_CE_BINARY = 1,    /* CloudEvents binary mode: ce_* headers */
  BRW_EVENT_CE_STRUCTURED = 2 /* CloudEvents structured mode: an envelope */
} brw_event_shape_t;

typedef struct {
  brw_event_type_t type;
  uint64_t campaign_id;
  char account[BRW_ACCOUNT_NAME_MAX + 1]; /* "default" when absent */
  int64_t occurred_at_ms;                 /* 0 when absent */
  brw_event_shape_t shape;
} brw_event_t;

/* "plain", "ce_binary" or "ce_structured" (static; a label's value), or
 * "unknown" for a value outside the enum. */
const char *brw_event_shape_name(brw_event_shape_t shape);

/* The message headers the parser reads, indexes of brw_event_input_t's
 * headers; brw_event_header_names[h] is the Kafka header's name. */
typedef enum {
  BRW_EVENT_H_CONTENT_TYPE = 0, /* "content-type" */
  BRW_EVENT_H_CE_SPECVERSION,   /* "ce_specversion" */
  BRW_EVENT_H_CE_TYPE,          /* "ce_type" */
  BRW_EVENT_H_CE_TIME,          /* "ce_time" */
  BRW_EVENT_H__COUNT
} brw_event_header_t;
extern const char *const brw_event_header_names[BRW_EVENT_H__COUNT];

/* Bytes borrowed from the message, not NUL-terminated. ptr NULL: absent. */
typedef struct {
  const void *ptr;
  size_t len;
} brw_event_bytes_t;

/* One message as the parser sees it, every byte borrowed for the call: the
 * value (`len` bytes, not NUL-terminated; may be NULL with len 0) and the
 * headers named above. A header absent from the message, or present with a
 * null value, has ptr NULL; of a repeated header the caller passes one
 * value (the intake: the last, which brw_kafka_message_header gives). A
 * zeroed struct with value and len set is a message without headers. */
typedef struct {
  const void *value;
  size_t len;
  brw_event_bytes_t headers[BRW_EVENT_H__COUNT];
} brw_event_input_t;

/* The configured names of the two event types besides the built-in ones:
 * each a comma-separated list (spaces around a name are ignored; NULL or ""
 * is none), as event.sent_types and event.finished_types hold them. The
 * lists are borrowed for the call. A zeroed struct, or NULL for the whole,
 * means no extra names. */
typedef struct {
  const char *sent;
  const char *finished;
} brw_event_types_t;

/* The DLQ reason codes (BRW_REASON_*) are in brw/vocab.h. */

/* Parses and validates one message (see the shapes above).
 *
 * The shape: a content-type header whose media type begins
 * "application/cloudevents" makes the event structured (the header wins
 * over ce_* headers, as in the Kafka binding), and a format other than
 * "+json" is refused; otherwise a ce_type or ce_specversion header makes it
 * binary; otherwise a value whose root object has a non-null `specversion`
 * member is structured too (a producer that forgot the header would
 * otherwise have the envelope's `id` read as the campaign id); otherwise it
 * is plain, and the headers are not looked at.
 *
 * Rules of a plain event (SPEC §3): value must be a JSON object no larger
 * than `max_size` bytes; `type` (alias `event`) is "campaign.sent",
 * "campaign.finished" or a configured name, absent means sent;
 * `campaign_id` (aliases `id`, `data.id`, looked up in that order) is a
 * positive integer or a string of ASCII digits only, 1..2^53; `account`
 * (optional) is a non-empty string of at most 64 bytes of [A-Za-z0-9_.-];
 * `occurred_at` (optional) is an RFC 3339 time (an invalid one is ignored,
 * not an error).
 *
 * Binary mode: ce_specversion, when present, is "1.0"; content-type, when
 * present, is a JSON media type (application/json, any "+json"); ce_type is
 * present and names a type; the value is a JSON object read as a plain
 * event whose `type` and `event` are ignored, and which must not itself be
 * an envelope (a `specversion` member); ce_time is occurred_at when the
 * value gives no valid one (an invalid ce_time is ignored).
 *
 * Structured mode: the value is a JSON object with `specversion` "1.0",
 * `type` naming a type, no `data_base64`, a `datacontenttype` (when
 * present) that is a JSON media type, and a `data` object read as a plain
 * event without its type; the envelope's `time` is occurred_at when `data`
 * gives no valid one. `id`, `source` and `subject` are not read: the
 * envelope's `id` is never the campaign id.
 *
 * Returns 0 and fills *ev, or BRW_EPARSE/BRW_ETOOLARGE with *reason set to
 * one of the static BRW_REASON_* codes and a one-line message in errbuf:
 * too_large (the size, checked first), invalid_json (not JSON, not an
 * object, or a CloudEvent the worker cannot read: another specversion or
 * format, data_base64, data that is not an object, content that is not
 * JSON), unknown_type (no or an unknown type), invalid_campaign_id (no or a
 * bad id, structured data absent), unknown_account (a bad account name; the
 * account is not checked against the configuration here). ev->shape is set
 * on failure too, as far as the shape was found (plain until then); the
 * rest of *ev is only meaningful on success.
 *
 * Details: a field whose value is JSON null counts as absent; max_size 0
 * means no limit; a JSON integer too large for jansson (beyond 64 bits)
 * makes the whole value invalid_json; types NULL means no extra names.
 * The message quotes at most 48 bytes of any input, printable ASCII only. */
int brw_event_parse_msg(const brw_event_input_t *in,
                        const brw_event_types_t *types, size_t max_size,
                        brw_event_t *ev, const char **reason, char *errbuf,
                        size_t errlen);

/* brw_event_parse_msg for a value without headers and with no extra type
 * names: a plain event, or a structured one found by its `specversion`. */
int brw_event_parse(const void *value, size_t len, size_t max_size,
                    brw_event_t *ev, const char **reason, char *errbuf,
                    size_t errlen);

/* Checks one configured list of type names meaning `meaning`: each name
 * 1..BRW_EVENT_TYPE_NAME_MAX bytes of printable ASCII other than space and
 * ',', at most BRW_EVENT_TYPES_MAX names, and not the built-in name of the
 * other type. NULL or "" (no names) is valid. Returns 0, or -1 with the
 * reason (one line, without the key) in why. */
int brw_event_types_check(const char *list, brw_event_type_t meaning, char *why,
                          size_t whylen);

/* Whether a name is in both lists: returns 1 and copies the first such name
 * of types->sent (cut to fit, NUL-terminated) into name, or 0. */
int brw_event_types_overlap(const brw_event_types_t *types, char *name,
                            size_t len);

#endif
