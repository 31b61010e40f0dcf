/* Compact storage of campaign-detail bodies.
 *
 * Every campaign in progress keeps the body of its last detail answer, so
 * that an `expired` report can carry the last detail seen (SPEC §4). At up
 * to 10^6 tracked campaigns the ~480 bytes of each body add up, so bodies
 * are kept packed: raw deflate against a preset dictionary of the API's
 * field names and common values (src/pack.c says why), about a fifth of the
 * original size. Packing is lossless: unpacking gives back the exact bytes.
 *
 * A packed body is a varint of the original length followed by the deflated
 * bytes; it is an in-memory format only (see src/pack.c).
 *
 * Not thread-safe: one brw_pack_t per thread (the loop thread owns the
 * worker's one). No I/O, no logging. */
#ifndef BRW_PACK_H
#define BRW_PACK_H

#include <stddef.h>
#include <stdint.h>

typedef struct brw_pack_s brw_pack_t;

/* A new packer, owned by the caller (brw_pack_free): one deflate and one
 * inflate stream, reused by every call. Returns 0 with *out set, or
 * BRW_ENOMEM (or BRW_EFATAL when zlib refuses its own parameters, which
 * means a broken zlib) with *out untouched. */
int brw_pack_new(brw_pack_t **out);

/* Frees the packer and its streams; NULL is fine. Packed bodies made with
 * it stay valid and can be read by any other packer of this process. */
void brw_pack_free(brw_pack_t *p);

/* Packs `len` bytes of `body` (borrowed; any bytes, not only JSON, and
 * body may be NULL when len is 0). On success returns 0 with *out set to a
 * new malloc'ed buffer of exactly *out_len bytes, owned by the caller
 * (free()). Returns BRW_ETOOLARGE when the body or its packed form would
 * not fit a uint32_t, or BRW_ENOMEM; *out and *out_len are then untouched.
 */
int brw_pack_body(brw_pack_t *p, const char *body, size_t len, char **out,
                  uint32_t *out_len);

/* Unpacks what brw_pack_body made. `packed` (len bytes) is borrowed. On
 * success returns 0 with *body set to a new malloc'ed copy of the original
 * bytes, NUL-terminated (the NUL is not counted in *body_len), owned by the
 * caller (free()). Input that is not a whole packed body (truncated,
 * altered, trailing bytes, a length that does not match) gives BRW_EPARSE
 * and never reads outside `packed`; out of memory gives BRW_ENOMEM. On
 * error *body and *body_len are untouched. */
int brw_pack_unbody(brw_pack_t *p, const char *packed, uint32_t len,
                    char **body, size_t *body_len);

/* A 32-bit digest of `len` bytes of `body` (CRC-32, zlib's): the caller
 * compares it with the digest of the body it packed last and skips packing
 * a body that did not change (most polls of a campaign that is not
 * sending). A different body with the same digest (a chance of 2^-32 per
 * changed body) would leave the previous one kept. */
uint32_t brw_pack_digest(const char *body, size_t len);

#endif
