/* Sizes of produced records, and what to do with one that does not fit
 * (SPEC §4 "No record may stall a partition").
 *
 * The worker checks every record against output.max_record_size before it
 * produces it, with the same accounting librdkafka uses for
 * message.max.bytes (key + value + serialized headers + framing), so that
 * the producer never refuses a record for its size; a DLQ record that does
 * not fit is shortened (brw_record_fit) and says so in its headers. When a
 * broker still refuses a record (a topic whose max.message.bytes is smaller),
 * brw_record_refusal_permanent tells a refusal that sending the same bytes
 * again cannot cure from one that time or an operator can.
 *
 * Pure: no I/O, no logging, no state. */
#ifndef BRW_RECORD_H
#define BRW_RECORD_H

#include "brw/headers.h"

#include <stddef.h>

/* Framing counted on top of key, value and headers: a v2 record's own
 * overhead (at most 36 bytes, librdkafka's RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD)
 * and a record batch header (61 bytes), rounded up. */
#define BRW_RECORD_OVERHEAD 128
/* Room kept for the headers that a shortened record gains
 * (error.truncated, error.original_key_size, error.original_value_size). */
#define BRW_RECORD_TRUNC_HEADERS 128
/* A key shortened to make a record fit keeps at most this many bytes; in a
 * bare record (brw_record_fit with bare = 1) at most BRW_RECORD_KEY_BARE. */
#define BRW_RECORD_KEY_KEEP 1024
#define BRW_RECORD_KEY_BARE 64

/* What brw_record_fit decided. */
#define BRW_RECORD_CUT_KEY 0x1u
#define BRW_RECORD_CUT_VALUE 0x2u

typedef struct {
  size_t key_len;   /* bytes of the key to keep (a prefix) */
  size_t value_len; /* bytes of the value to keep (a prefix) */
  unsigned cut;     /* BRW_RECORD_CUT_* of what was shortened */
} brw_record_fit_t;

/* The bytes a record's headers take on the wire (an upper bound: a 5-byte
 * varint for every length). NULL headers take 0. */
size_t brw_record_headers_size(const brw_headers_t *hdrs);

/* The size librdkafka compares with message.max.bytes, plus a batch
 * header: BRW_RECORD_OVERHEAD + key + value + headers. */
size_t brw_record_size(size_t key_len, size_t value_len, size_t headers_size);

/* Decides how much of a record's key and value to keep so that the whole
 * record is at most `limit` bytes (brw_record_size) and the key at most
 * `key_max` bytes (SIZE_MAX: no bound of its own).
 *
 * A record that fits is kept whole (cut 0). Otherwise BRW_RECORD_TRUNC_HEADERS
 * are reserved for the caller's truncation headers; the key keeps
 * min(key_len, key_max) bytes when that leaves room, else at most
 * BRW_RECORD_KEY_KEEP; the value keeps what is left. With `bare` the value
 * is dropped and the key keeps at most BRW_RECORD_KEY_BARE bytes whatever
 * the limit: the last form a record takes before it is given up.
 *
 * Returns 0 with *out set (out->cut says what was shortened), or
 * BRW_ETOOLARGE when not even the headers fit the limit. */
int brw_record_fit(size_t limit, size_t key_max, size_t key_len,
                   size_t value_len, size_t headers_size, int bare,
                   brw_record_fit_t *out);

/* The largest n <= max such that the first n bytes of s (len bytes) do not
 * end inside a UTF-8 sequence, so that a shortened text stays valid UTF-8
 * when it was. Bytes that are not UTF-8 are cut at max. */
size_t brw_record_utf8_cut(const void *s, size_t len, size_t max);

/* 1 when the producer or broker refused a record for a reason that lies in
 * the record itself, so that producing the same bytes again gets the same
 * answer: its size (MSG_SIZE_TOO_LARGE, INVALID_MSG_SIZE,
 * RECORD_LIST_TOO_LARGE), its content (INVALID_RECORD, INVALID_TIMESTAMP) or
 * an argument librdkafka refuses (_INVALID_ARG); `err` is a brw_kafka error
 * code (BRW_KAFKA_ERR_*, include/brw/kafka.h). 0 for everything else:
 * time cures transient errors (timeouts, leaders moving), and an operator
 * cures the rest without the record changing (a missing topic, a missing
 * ACL, an old message format), so those are produced again, never given
 * up: giving them up would drop every record, not one. */
int brw_record_refusal_permanent(int err);

#endif
