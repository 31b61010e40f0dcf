/* Compact storage of campaign-detail bodies (see include/brw/pack.h).
 *
 * Why a preset dictionary: a detail body is ~480 bytes, far too short for
 * deflate to learn its own vocabulary; without help it spends most of its
 * output on the first (and only) occurrence of every field name and gets
 * no better than about half the size. The names and the usual values are
 * the same in every body, so they are given to deflate up front as its
 * history: a field name then costs a back-reference of two or three bytes
 * instead of its letters, and a body packs to about a fifth.
 *
 * Why raw deflate (windowBits -15): the zlib and gzip wrappers add a header
 * and a checksum (6 and 18 bytes), a tenth of a packed body and more at
 * 10^6 campaigns. The length varint in front takes the checksum's place
 * well enough for memory that never leaves the process: unpacking must
 * produce exactly that many bytes and end the stream exactly there, which
 * catches truncation, trailing bytes and most damage. A flipped bit inside
 * a literal can still go unnoticed; nothing outside this process's memory
 * ever holds a packed body, so that is a bug's doing, not the network's.
 *
 * No format version: packed bodies live only in this process's memory and
 * never outlive it (they are not written to disk, Kafka or metadata), so
 * the dictionary can change freely between releases. Should packed bodies
 * ever be stored, add a version byte first.
 *
 * Ownership: the packer owns its two z_streams and a scratch buffer; every
 * packed or unpacked result is a new malloc'ed buffer the caller frees. */
#define ZLIB_CONST
#include "brw/pack.h"
#include "brw/error.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Level and memLevel, measured with tests/bench/bench_pack (2000 mixed
 * synthesized bodies, median 495 bytes; docs/PERFORMANCE.md):
 * - Level 9: mean 126.7 bytes, ~11 us a pack; level 6: 127.4 bytes at the
 *   same speed within noise; level 1: 154.5 bytes, ~1 us faster. The input
 *   is ~2 KiB with the dictionary, so level 9's longer match search has
 *   little to walk, and every byte saved is saved 10^6 times over.
 * - memLevel 8: every memLevel from 3 to 9 gives the same bytes here (a
 *   body fits one block and the hash table is never crowded). It sizes the
 *   hash table that deflateReset clears on every call: 9 doubles that to
 *   128 KiB for nothing; a smaller one (4) saves ~0.5 us of reset, within
 *   the benchmark's noise, so zlib's default stays. 8 is also the setting
 *   for which deflateBound() is tight, so the scratch buffer stays small.
 * Overridable at compile time only to re-measure. */
#ifndef BRW_PACK_LEVEL
#define BRW_PACK_LEVEL 9
#endif
#ifndef BRW_PACK_MEMLEVEL
#define BRW_PACK_MEMLEVEL 8
#endif

/* Raw deflate's 32 KiB window: the whole dictionary stays reachable. */
#define WINDOW_BITS 15
/* A uint32_t as a varint takes at most five bytes. */
#define VARINT_MAX 5
/* Deflate cannot expand more than 1032:1 (a 258-byte match for two bits),
 * so a length header claiming more than that of its data is corrupt; this
 * check keeps a damaged header from asking malloc for gigabytes. */
#define MAX_RATIO 1032
/* A scratch buffer grown past this for an unusually large body is released
 * after use, so that one outlier does not pin its size for the process's
 * life; typical bodies never come near it. */
#define SCRATCH_KEEP (64 * 1024)

/* The preset dictionary: SPEC §2's field names with every variant, and the
 * values most answers share, written as they appear in a compact answer
 * (`"name":"value",`), so that a match runs across the punctuation too.
 * Deflate codes nearer matches in fewer bits, so the rarest strings come
 * first and a whole typical body comes last. Names beyond SPEC §2 come from
 * BSG's OpenAPI spec (the go-sdk's CampaignSchema: message_type, start_at,
 * real_start_at, calculated_price; MessageType: whatsapp, hlr). No values
 * that depend on the account (senders, names) or the date (the skeleton's
 * times are 2000-01-01 00:00:00, for their shape only). */
static const char dictionary[] =
    /* Rare: types, counters and fields the spec names but answers seldom
     * carry. */
    "\"type\":\"whatsapp\"\"type\":\"hlr\"\"type\":\"instant\""
    "\"accepted\":0,\"sending\":0,\"unknown\":0,"
    "\"calculated_price\":null,"
    /* Status spellings (SPEC §2 matches them case-insensitively), the less
     * usual cases first. */
    "\"status\":\"SPAM\"\"status\":\"PAUSED\"\"status\":\"STOPPED\""
    "\"status\":\"MODERATION\"\"status\":\"SCHEDULED\"\"status\":\"SENDING\""
    "\"status\":\"CREATION\"\"status\":\"DONE\""
    "\"status\":\"Spam\"\"status\":\"Paused\"\"status\":\"Stopped\""
    "\"status\":\"Moderation\"\"status\":\"Scheduled\"\"status\":\"Sending\""
    "\"status\":\"Done\"\"status\":\"Creation\""
    "\"status\":\"spam\"\"status\":\"paused\"\"status\":\"stopped\""
    "\"status\":\"moderation\"\"status\":\"scheduled\"\"status\":\"sending\""
    "\"status\":\"done\"\"status\":\"creation\""
    /* Price as a number or with a decimal comma; the usual currencies. */
    "\"total_price\":0.1,\"total_price\":\"0,0"
    "\"currency\":\"UAH\"}}\"currency\":\"USD\"}}\"currency\":\"EUR\"}}"
    "\"alternative_channels\":null}}\"alternative_channels\":[]}}"
    /* Statistics as an array of objects, with the Viber and RCS counters. */
    "\"statistics\":[{\"delivered\":0,\"read\":0,\"sent\":0,\"scheduled\":0,"
    "\"moderation\":0,\"undelivered\":0,\"failed\":0,\"expired\":0,"
    "\"not_rcs_user\":0},{\"delivered\":0,\"read\":0,\"sent\":0,"
    "\"scheduled\":0,\"moderation\":0,\"undelivered\":0,\"failed\":0,"
    "\"expired\":0,\"not_viber_user\":0}],"
    /* ISO 8601 times, an id as a string, the variant key names. */
    "T00:00:00Z\","
    "{\"data\":{\"id\":\"1"
    "\"message_type\":\"rcs\",\"message_type\":\"viber\","
    "\"message_type\":\"sms\","
    "\"type\":\"rcs\",\"type\":\"viber\","
    "\"creation_at\":\"20\"start_at\":\"20\"start_date\":\"20"
    "\"real_start_at\":\"20\"real_start_at\":null,"
    "\"name\":null,"
    "\"alternative_channels\":{\"viber\":{\"sender\":\"\",\"fallback\":true}}}}"
    "\"total_messages\":\"1\",\"total_phones\":\"1\",\"total_price\":\"0.0"
    /* Last, nearest: a whole body in the documented spelling. */
    "{\"data\":{\"id\":1,\"name\":\"\",\"sender\":\"\","
    "\"type\":\"sms\",\"status\":\"\",\"created_at\":\"2000-01-01 00:00:00\","
    "\"started_at\":\"2000-01-01 00:00:00\","
    "\"actual_start_at\":\"2000-01-01 00:00:00\",\"actual_start_at\":null,"
    "\"finished_at\":null,\"finished_at\":\"20"
    "\"statistics\":{\"delivered\":0,\"sent\":0,\"scheduled\":0,"
    "\"moderation\":0,\"undelivered\":0,\"failed\":0,\"expired\":0},"
    "\"total_messages\":1,\"total_phones\":1,\"total_price\":\"0.0";

struct brw_pack_s {
  z_stream def;
  z_stream inf;
  unsigned char *scratch; /* owned; header + deflate output of one call */
  size_t scratch_cap;
};

int brw_pack_new(brw_pack_t **out) {
  brw_pack_t *p = calloc(1, sizeof(*p));
  int rc;
  if (!p)
    return BRW_ENOMEM;
  rc = deflateInit2(&p->def, BRW_PACK_LEVEL, Z_DEFLATED, -WINDOW_BITS,
                    BRW_PACK_MEMLEVEL, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK)
    goto err_def;
  rc = inflateInit2(&p->inf, -WINDOW_BITS);
  if (rc != Z_OK)
    goto err_inf;
  *out = p;
  return 0;

err_inf:
  deflateEnd(&p->def);
err_def:
  free(p);
  return rc == Z_MEM_ERROR ? BRW_ENOMEM : BRW_EFATAL;
}

void brw_pack_free(brw_pack_t *p) {
  if (!p)
    return;
  deflateEnd(&p->def);
  inflateEnd(&p->inf);
  free(p->scratch);
  free(p);
}

/* Writes v as a little-endian base-128 varint at buf; returns its length. */
static size_t varint_put(unsigned char *buf, uint32_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  buf[n++] = (unsigned char)v;
  return n;
}

/* Reads a varint from the len bytes at buf: its length, or 0 when it is cut
 * short, longer than five bytes, over UINT32_MAX, or not in its shortest
 * form (a last byte of zero after the first): varint_put never writes
 * those, so they can only be damage. */
static size_t varint_get(const unsigned char *buf, size_t len, uint32_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < len && i < VARINT_MAX; i++) {
    x |= (uint64_t)(buf[i] & 0x7f) << (7 * i);
    if (buf[i] & 0x80)
      continue;
    if ((i > 0 && buf[i] == 0) || x > UINT32_MAX)
      return 0;
    *v = (uint32_t)x;
    return i + 1;
  }
  return 0;
}

int brw_pack_body(brw_pack_t *p, const char *body, size_t len, char **out,
                  uint32_t *out_len) {
  uLong bound;
  size_t need, hlen, total;
  char *buf;
  int rc;

  if (len > UINT32_MAX)
    return BRW_ETOOLARGE;
  /* Raw deflate carries no dictionary id, so the dictionary goes in again
   * after every reset, before the first byte. */
  if (deflateReset(&p->def) != Z_OK ||
      deflateSetDictionary(&p->def, (const Bytef *)dictionary,
                           (uInt)(sizeof(dictionary) - 1)) != Z_OK)
    return BRW_EFATAL;
  /* With an output buffer of deflateBound() bytes, one deflate(Z_FINISH)
   * is guaranteed to finish. The packed length must fit a uint32_t; the
   * bound is checked rather than the result so that avail_out fits too. */
  bound = deflateBound(&p->def, (uLong)len);
  if (bound > UINT32_MAX - VARINT_MAX)
    return BRW_ETOOLARGE;
  need = VARINT_MAX + (size_t)bound;
  if (need > p->scratch_cap) {
    unsigned char *s = malloc(need);
    if (!s)
      return BRW_ENOMEM;
    free(p->scratch);
    p->scratch = s;
    p->scratch_cap = need;
  }

  hlen = varint_put(p->scratch, (uint32_t)len);
  p->def.next_in = (const Bytef *)body;
  p->def.avail_in = (uInt)len;
  p->def.next_out = p->scratch + hlen;
  p->def.avail_out = (uInt)bound;
  rc = deflate(&p->def, Z_FINISH);
  total = hlen + (size_t)bound - p->def.avail_out;
  p->def.next_in = NULL; /* the body is borrowed: keep no pointer to it */
  if (rc != Z_STREAM_END) {
    rc = BRW_EFATAL; /* zlib broke its own bound: not expected */
    goto done;
  }
  /* Exactly the final size: every byte here is kept once per campaign. */
  buf = malloc(total);
  if (!buf) {
    rc = BRW_ENOMEM;
    goto done;
  }
  memcpy(buf, p->scratch, total);
  *out = buf;
  *out_len = (uint32_t)total;
  rc = 0;

done:
  if (p->scratch_cap > SCRATCH_KEEP) {
    free(p->scratch);
    p->scratch = NULL;
    p->scratch_cap = 0;
  }
  return rc;
}

int brw_pack_unbody(brw_pack_t *p, const char *packed, uint32_t len,
                    char **body, size_t *body_len) {
  const unsigned char *in = (const unsigned char *)packed;
  uint32_t orig;
  size_t hlen;
  char *buf;
  int rc;

  hlen = varint_get(in, len, &orig);
  if (hlen == 0 || hlen == len)
    return BRW_EPARSE;
  if ((uint64_t)orig > (uint64_t)(len - hlen) * MAX_RATIO)
    return BRW_EPARSE;
  buf = malloc((size_t)orig + 1);
  if (!buf)
    return BRW_ENOMEM;

  /* The dictionary must be the one packing used; for raw inflate it is set
   * right after the reset (there is no Z_NEED_DICT to wait for). */
  if (inflateReset(&p->inf) != Z_OK) {
    rc = BRW_EFATAL;
    goto err;
  }
  rc = inflateSetDictionary(&p->inf, (const Bytef *)dictionary,
                            (uInt)(sizeof(dictionary) - 1));
  if (rc != Z_OK) {
    rc = rc == Z_MEM_ERROR ? BRW_ENOMEM : BRW_EFATAL;
    goto err;
  }
  p->inf.next_in = in + hlen;
  p->inf.avail_in = (uInt)(len - hlen);
  p->inf.next_out = (Bytef *)buf;
  p->inf.avail_out = (uInt)orig;
  rc = inflate(&p->inf, Z_FINISH);
  p->inf.next_in = NULL; /* borrowed: keep no pointer to it */
  /* Whole and exact: the stream ends, having filled exactly the length the
   * header gave, with no byte left over. Anything else is damage. */
  if (rc != Z_STREAM_END || p->inf.avail_out != 0 || p->inf.avail_in != 0) {
    rc = rc == Z_MEM_ERROR ? BRW_ENOMEM : BRW_EPARSE;
    goto err;
  }
  buf[orig] = '\0';
  *body = buf;
  *body_len = orig;
  return 0;

err:
  free(buf);
  return rc;
}

uint32_t brw_pack_digest(const char *body, size_t len) {
  uLong crc = crc32(0L, Z_NULL, 0);
  /* crc32 takes a uInt length: long bodies in pieces. */
  while (len > 0) {
    uInt n = len > 0x40000000u ? 0x40000000u : (uInt)len;
    crc = crc32(crc, (const Bytef *)body, n);
    body += n;
    len -= n;
  }
  return (uint32_t)crc;
}
