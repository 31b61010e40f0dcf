/* Unit tests of packed detail bodies (src/pack.c): exact round trips of
 * every kind of body, and damaged input refused without a crash or a read
 * outside the buffer (the sanitizer build checks the latter). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/backoff.h"
#include "brw/error.h"
#include "brw/pack.h"
#include "detail_bodies.h"

#include <stdlib.h>
#include <string.h>

/* The brief's example: a simulator answer for a campaign in creation. */
static const char sample[] =
    "{\"data\":{\"id\":1001,\"name\":\"Campaign 1001\",\"sender\":\"Shop24\","
    "\"type\":\"sms\",\"status\":\"Creation\",\"created_at\":\"2026-12-06 "
    "02:01:24\",\"start_date\":\"2026-12-06 02:01:24\",\"actual_start_at\":"
    "null,\"finished_at\":null,\"statistics\":{\"delivered\":0,\"sent\":0,"
    "\"scheduled\":2951,\"moderation\":0,\"undelivered\":0,\"failed\":0,"
    "\"expired\":0},\"total_messages\":\"2951\",\"total_phones\":\"2870\","
    "\"total_price\":29.51,\"currency\":\"EUR\",\"alternative_channels\":{"
    "\"viber\":{\"sender\":\"Shop24\",\"fallback\":true}}}}";

static int setup(void **state) {
  brw_pack_t *p = NULL;
  if (brw_pack_new(&p) != 0)
    return -1;
  *state = p;
  return 0;
}

static int teardown(void **state) {
  brw_pack_free(*state);
  return 0;
}

/* Packs and unpacks `body`, asserting the exact bytes and the NUL after
 * them come back; returns the packed size. */
static uint32_t round_trip(brw_pack_t *p, const char *body, size_t len) {
  char *packed = NULL, *back = NULL;
  uint32_t plen = 0;
  size_t blen = (size_t)-1;
  assert_int_equal(brw_pack_body(p, body, len, &packed, &plen), 0);
  assert_non_null(packed);
  assert_true(plen >= 2);
  assert_int_equal(brw_pack_unbody(p, packed, plen, &back, &blen), 0);
  assert_int_equal(blen, len);
  if (len)
    assert_memory_equal(back, body, len);
  assert_int_equal(back[len], '\0');
  free(back);
  free(packed);
  return plen;
}

/* Packs `body` into a buffer the test owns (free()). */
static char *pack(brw_pack_t *p, const char *body, size_t len, uint32_t *plen) {
  char *packed = NULL;
  assert_int_equal(brw_pack_body(p, body, len, &packed, plen), 0);
  return packed;
}

static size_t put_varint(unsigned char *buf, uint32_t v) {
  size_t n = 0;
  for (; v >= 0x80; v >>= 7)
    buf[n++] = (unsigned char)(v | 0x80);
  buf[n++] = (unsigned char)v;
  return n;
}

static void test_edges(void **state) {
  brw_pack_t *p = *state;
  unsigned char one[1];
  round_trip(p, NULL, 0);
  round_trip(p, "", 0);
  for (int c = 0; c < 256; c++) {
    one[0] = (unsigned char)c;
    round_trip(p, (const char *)one, 1);
  }
  round_trip(p, "{}", 2);
}

/* The digest that lets an unchanged body skip packing: CRC-32 (the check
 * value of "123456789" is 0xCBF43926), equal for equal bodies, different
 * for a body that differs in one byte. */
static void test_digest(void **state) {
  (void)state;
  assert_int_equal(brw_pack_digest("123456789", 9), 0xCBF43926u);
  assert_int_equal(brw_pack_digest(NULL, 0), 0);
  char a[] = "{\"data\":{\"id\":1,\"status\":\"sending\"}}";
  uint32_t d = brw_pack_digest(a, sizeof(a) - 1);
  assert_int_equal(brw_pack_digest(a, sizeof(a) - 1), d);
  for (size_t i = 0; i < sizeof(a) - 1; i++) {
    a[i] ^= 1;
    assert_int_not_equal(brw_pack_digest(a, sizeof(a) - 1), d);
    a[i] ^= 1;
  }
}

/* The dictionary earns its keep: the sample packs to about a sixth (raw
 * deflate alone gives ~257 bytes). A property of the data, the dictionary
 * and zlib's algorithm, not of timing. */
static void test_sample(void **state) {
  brw_pack_t *p = *state;
  uint32_t n = round_trip(p, sample, sizeof(sample) - 1);
  assert_true(n < 120);
  /* The same body again gives the same bytes: the streams are reset. */
  uint32_t n1, n2;
  char *a = pack(p, sample, sizeof(sample) - 1, &n1);
  char *b = pack(p, sample, sizeof(sample) - 1, &n2);
  assert_int_equal(n1, n2);
  assert_memory_equal(a, b, n1);
  free(a);
  free(b);
}

/* Each SPEC §2 variant alone, then all of them mixed at random; every body
 * round-trips, and the synthesized ones pack to under a third on average. */
static void test_variants(void **state) {
  brw_pack_t *p = *state;
  brw_rng_t rng;
  char body[4096];
  uint64_t raw = 0, packed = 0;
  brw_rng_seed(&rng, 2026);
  for (int v = 0; v <= 17; v++) {
    detail_shape_t s = detail_shape_plain();
    switch (v) {
    case 1:
      s.id_string = 1;
      break;
    case 2:
      s.type_key = 1;
      break;
    case 3:
      s.start_key = 1;
      break;
    case 4:
      s.start_key = 2;
      break;
    case 5:
      s.actual_key = 1;
      break;
    case 6:
      s.created_key = 1;
      break;
    case 7:
      s.status_case = 1;
      break;
    case 8:
      s.status_case = 2;
      break;
    case 9:
      s.price_format = 1;
      break;
    case 10:
      s.price_format = 2;
      break;
    case 11:
      s.totals_string = 1;
      break;
    case 12:
      s.iso_time = 1;
      break;
    case 13:
      s.name_null = 1;
      break;
    case 14:
      s.alt = 1;
      break;
    case 15:
      s.alt = 2;
      break;
    case 16:
      s.alt = 3;
      break;
    case 17:
      s.stats_parts = 3;
      break;
    default:
      break;
    }
    for (int i = 0; i < 20; i++) {
      size_t n = detail_body(body, sizeof(body), &s, &rng);
      assert_true(n > 0);
      round_trip(p, body, n);
    }
  }
  for (int i = 0; i < 500; i++) {
    detail_shape_t s = detail_shape_random(&rng);
    size_t n = detail_body(body, sizeof(body), &s, &rng);
    assert_true(n > 0);
    raw += n;
    packed += round_trip(p, body, n);
  }
  assert_true(packed * 3 < raw);
}

/* Incompressible bytes: deflate falls back to stored blocks. */
static void test_random_bytes(void **state) {
  brw_pack_t *p = *state;
  brw_rng_t rng;
  size_t n = 64 * 1024;
  char *buf = malloc(n);
  assert_non_null(buf);
  brw_rng_seed(&rng, 64);
  for (size_t i = 0; i < n; i++)
    buf[i] = (char)brw_rng_next(&rng);
  round_trip(p, buf, n);
  free(buf);
}

/* A 1 MiB JSON array of details: larger than the scratch buffer keeps. */
static void test_large_json(void **state) {
  brw_pack_t *p = *state;
  brw_rng_t rng;
  size_t cap = 1024 * 1024, len = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  brw_rng_seed(&rng, 1);
  buf[len++] = '[';
  while (len < cap - 1) {
    detail_shape_t s = detail_shape_random(&rng);
    size_t n = detail_body(buf + len, cap - 1 - len, &s, &rng);
    if (n == 0)
      break;
    len += n;
    buf[len++] = ',';
  }
  while (len < cap - 1) /* pad to exactly 1 MiB */
    buf[len++] = ' ';
  buf[len++] = ']';
  assert_int_equal(len, cap);
  round_trip(p, buf, len);
  round_trip(p, sample, sizeof(sample) - 1); /* and small ones after it */
  free(buf);
}

/* Property: random bodies (random lengths, random mixes of dictionary words
 * and random bytes) round-trip exactly, through one packer reused
 * throughout, and unpack with a second packer too. */
static void test_property(void **state) {
  static const char *const words[] = {"{\"data\":{\"id\":",
                                      "\"statistics\":{",
                                      "\"delivered\":0,",
                                      "\"status\":\"done\"",
                                      "\"total_price\":\"0.0",
                                      "\"currency\":\"EUR\"",
                                      "null",
                                      "\"alternative_channels\":[]",
                                      "}}",
                                      "2000-01-01 00:00:00",
                                      "\"not_viber_user\":",
                                      "T00:00:00Z",
                                      "\"real_start_at\":",
                                      ","};
  const size_t nwords = sizeof(words) / sizeof(words[0]);
  brw_pack_t *p = *state, *q = NULL;
  brw_rng_t rng;
  char *buf = malloc(8192);
  assert_non_null(buf);
  assert_int_equal(brw_pack_new(&q), 0);
  brw_rng_seed(&rng, 0xB5C);
  for (int iter = 0; iter < 3000; iter++) {
    size_t target = (size_t)(brw_rng_next(&rng) % 4097), len = 0;
    unsigned bytes_pct = (unsigned)(brw_rng_next(&rng) % 101);
    while (len < target) {
      if (brw_rng_next(&rng) % 100 < bytes_pct) {
        buf[len++] = (char)brw_rng_next(&rng);
      } else {
        const char *w = words[brw_rng_next(&rng) % nwords];
        size_t wl = strlen(w);
        if (wl > target - len)
          wl = target - len;
        memcpy(buf + len, w, wl);
        len += wl;
      }
    }
    if (iter % 2) {
      round_trip(p, buf, len);
    } else {
      uint32_t plen;
      char *packed = pack(p, buf, len, &plen), *back = NULL;
      size_t blen = 0;
      assert_int_equal(brw_pack_unbody(q, packed, plen, &back, &blen), 0);
      assert_int_equal(blen, len);
      if (len)
        assert_memory_equal(back, buf, len);
      free(back);
      free(packed);
    }
  }
  brw_pack_free(q);
  free(buf);
}

/* Every truncation of a packed body is refused, down to nothing. */
static void test_truncated(void **state) {
  brw_pack_t *p = *state;
  uint32_t plen;
  char *packed = pack(p, sample, sizeof(sample) - 1, &plen);
  for (uint32_t k = 0; k < plen; k++) {
    /* A copy of exactly k bytes, so ASan sees any read past it. */
    char *cut = malloc(k ? k : 1), *back = NULL;
    size_t blen = 0;
    assert_non_null(cut);
    memcpy(cut, packed, k);
    assert_int_equal(brw_pack_unbody(p, cut, k, &back, &blen), BRW_EPARSE);
    assert_null(back);
    free(cut);
  }
  /* And a byte too many. */
  char *longer = malloc(plen + 1), *back = NULL;
  size_t blen = 0;
  assert_non_null(longer);
  memcpy(longer, packed, plen);
  longer[plen] = 0;
  assert_int_equal(brw_pack_unbody(p, longer, plen + 1, &back, &blen),
                   BRW_EPARSE);
  free(longer);
  free(packed);
  assert_int_equal(brw_pack_unbody(p, NULL, 0, &back, &blen), BRW_EPARSE);
}

/* A flipped bit or byte anywhere: in the length header it is always
 * refused; in the deflate data it is refused or, where deflate has no way
 * to tell (a literal's bits), gives a body of the original length. Raw
 * deflate has no checksum (src/pack.c says why). */
static void test_flipped(void **state) {
  brw_pack_t *p = *state;
  static const unsigned char masks[] = {0x01, 0x02, 0x04, 0x08, 0x10,
                                        0x20, 0x40, 0x80, 0xff};
  uint32_t plen;
  char *packed = pack(p, sample, sizeof(sample) - 1, &plen);
  unsigned char hdr[8];
  size_t hlen = put_varint(hdr, (uint32_t)(sizeof(sample) - 1));
  int refused = 0, total = 0;
  char *bad = malloc(plen);
  assert_non_null(bad);
  for (uint32_t i = 0; i < plen; i++) {
    for (size_t m = 0; m < sizeof(masks); m++) {
      char *back = NULL;
      size_t blen = 0;
      memcpy(bad, packed, plen);
      bad[i] = (char)(bad[i] ^ masks[m]);
      int rc = brw_pack_unbody(p, bad, plen, &back, &blen);
      total++;
      if (rc == 0) {
        assert_true(i >= hlen);
        assert_int_equal(blen, sizeof(sample) - 1);
        free(back);
      } else {
        assert_int_equal(rc, BRW_EPARSE);
        assert_null(back);
        refused++;
      }
    }
  }
  /* Much of the damage (about half for this sample and dictionary) is
   * caught by the structure and the length alone; the rest alters literal
   * bytes, which raw deflate cannot tell (src/pack.c says why that is
   * accepted). */
  assert_true(refused * 3 > total);
  free(bad);
  free(packed);
}

/* The deflate data of the sample behind a header that lies. */
static void test_wrong_length(void **state) {
  brw_pack_t *p = *state;
  const uint32_t n = (uint32_t)(sizeof(sample) - 1);
  uint32_t plen;
  char *packed = pack(p, sample, n, &plen);
  unsigned char hdr[8];
  size_t hlen = put_varint(hdr, n);
  const char *data = packed + hlen;
  size_t dlen = plen - hlen;
  const uint32_t lies[] = {0, 1, n - 1, n + 1, 2 * n, 100000, UINT32_MAX};
  unsigned char *buf = malloc(dlen + 8);
  assert_non_null(buf);
  assert_memory_equal(packed, hdr, hlen);
  for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
    char *back = NULL;
    size_t blen = 0, h = put_varint(buf, lies[i]);
    memcpy(buf + h, data, dlen);
    assert_int_equal(
        brw_pack_unbody(p, (char *)buf, (uint32_t)(h + dlen), &back, &blen),
        BRW_EPARSE);
  }
  /* The right length, but not in its shortest form; and six bytes long. */
  {
    char *back = NULL;
    size_t blen = 0;
    buf[0] = (unsigned char)(n | 0x80);
    buf[1] = (unsigned char)((n >> 7) | 0x80);
    buf[2] = 0;
    memcpy(buf + 3, data, dlen);
    assert_int_equal(
        brw_pack_unbody(p, (char *)buf, (uint32_t)(3 + dlen), &back, &blen),
        BRW_EPARSE);
    memset(buf, 0x80, 5);
    buf[5] = 0;
    memcpy(buf + 6, data, dlen);
    assert_int_equal(
        brw_pack_unbody(p, (char *)buf, (uint32_t)(6 + dlen), &back, &blen),
        BRW_EPARSE);
  }
  free(buf);
  free(packed);
}

/* Random garbage of random lengths: no crash, and nearly always refused. */
static void test_garbage(void **state) {
  brw_pack_t *p = *state;
  brw_rng_t rng;
  int refused = 0;
  brw_rng_seed(&rng, 99);
  for (int iter = 0; iter < 2000; iter++) {
    uint32_t n = (uint32_t)(brw_rng_next(&rng) % 300);
    char *buf = malloc(n ? n : 1), *back = NULL;
    size_t blen = 0;
    assert_non_null(buf);
    for (uint32_t i = 0; i < n; i++)
      buf[i] = (char)brw_rng_next(&rng);
    int rc = brw_pack_unbody(p, buf, n, &back, &blen);
    if (rc == 0)
      free(back);
    else
      refused += rc == BRW_EPARSE;
    free(buf);
  }
  assert_true(refused > 1900);
}

static void test_too_large(void **state) {
  brw_pack_t *p = *state;
  char *out = NULL;
  uint32_t olen = 7;
  if (SIZE_MAX <= UINT32_MAX)
    skip();
  /* Refused before a byte is read, so the one-byte buffer is safe. */
  assert_int_equal(brw_pack_body(p, "x", (size_t)UINT32_MAX + 1, &out, &olen),
                   BRW_ETOOLARGE);
  assert_null(out);
  assert_int_equal(olen, 7);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_edges, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sample, setup, teardown),
      cmocka_unit_test_setup_teardown(test_variants, setup, teardown),
      cmocka_unit_test_setup_teardown(test_random_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_property, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
      cmocka_unit_test_setup_teardown(test_flipped, setup, teardown),
      cmocka_unit_test_setup_teardown(test_wrong_length, setup, teardown),
      cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
      cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
      cmocka_unit_test(test_digest),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
