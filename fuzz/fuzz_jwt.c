/* Fuzz target: the JWT payload readers (brw_jwt_exp, brw_jwt_times; SPEC §2
 * "read exp from the JWT payload") and the login answer reader
 * (brw_bearer_read, brw_bearer_describe).
 *
 * The input is used twice: as a whole token ("header.payload.signature" or
 * any bytes), and as the JSON payload of a token built around it, so that
 * the fuzzer explores payloads without having to find base64 by mutation.
 * For the built token jansson itself is the oracle: an integer exp in range
 * must be read exactly, and anything accepted must satisfy bsg.h's promise
 * that exp * 1000 cannot overflow; brw_jwt_times must agree with brw_jwt_exp
 * on every built token. The input is also read as a login answer: a usable
 * bearer is visible ASCII with a future exp, and the line that describes an
 * unusable one never contains the token's payload. */
#include "brw/bsg.h"
#include "brw/error.h"
#include "fuzz.h"

#include <jansson.h>
#include <string.h>

/* The header of every built token: {"alg":"HS256","typ":"JWT"}. */
#define HEADER "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define EXP_MAX (INT64_MAX / 1000)

/* base64url without padding of n bytes into out (at least 4 * n / 3 + 4
 * bytes); returns the length written. */
static size_t b64url(const uint8_t *in, size_t n, char *out) {
  static const char abc[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t k = 0, i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[k++] = abc[v >> 18 & 63];
    out[k++] = abc[v >> 12 & 63];
    out[k++] = abc[v >> 6 & 63];
    out[k++] = abc[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[k++] = abc[v >> 18 & 63];
    out[k++] = abc[v >> 12 & 63];
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[k++] = abc[v >> 18 & 63];
    out[k++] = abc[v >> 12 & 63];
    out[k++] = abc[v >> 6 & 63];
  }
  return k;
}

/* A fixed "now" (2026-11-27T10:00:00Z) keeps runs reproducible. */
#define NOW_MS INT64_C(1795773600000)

static void check_times(int rc, const brw_jwt_times_t *t) {
  FUZZ_CHECK(rc == 0 || rc == BRW_EPARSE);
  if (rc != 0)
    return;
  if (t->has_exp)
    FUZZ_CHECK(t->is_jwt && t->exp_s >= 1 && t->exp_s <= EXP_MAX);
  if (t->has_iat)
    FUZZ_CHECK(t->is_jwt && t->iat_s >= 1 && t->iat_s <= EXP_MAX);
}

/* The input as the body of a login answer. */
static void check_login_body(const uint8_t *data, size_t size) {
  brw_bearer_t b;
  char line[256];
  int rc = brw_bearer_read((const char *)data, size, NOW_MS, 1000, &b);
  FUZZ_CHECK(rc == 0 || rc == BRW_EPARSE);
  FUZZ_CHECK((rc == 0) == (b.status == BRW_BEARER_OK));
  FUZZ_CHECK((rc == 0) == (b.token != NULL));
  if (rc == 0) {
    for (const char *p = b.token; *p; p++)
      FUZZ_CHECK(*p > 0x20 && *p < 0x7f);
    FUZZ_CHECK(!b.jwt.has_exp || b.jwt.exp_s * 1000 - NOW_MS >= 1000);
  }
  brw_bearer_describe(&b, NOW_MS, line, sizeof(line));
  FUZZ_CHECK(strlen(line) < sizeof(line));
  FUZZ_CHECK(strcmp(brw_bearer_status_name(b.status), "unknown") != 0);
  brw_bearer_clear(&b);
  FUZZ_CHECK(b.token == NULL);
}

static void check_result(int rc, int64_t exp) {
  FUZZ_CHECK(rc == 0 || rc == BRW_EPARSE);
  if (rc == 0)
    FUZZ_CHECK(exp >= 1 && exp <= EXP_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *token = fuzz_strdup(data, size);
  int64_t exp = 0;
  size_t k;
  int rc;

  /* 1. The input as a token. */
  brw_jwt_times_t t;
  rc = brw_jwt_exp(token, &exp);
  check_result(rc, exp);
  check_times(brw_jwt_times(token, &t), &t);
  free(token);

  /* 2. The input as the payload of a token. */
  token = malloc(sizeof(HEADER) + 4 * size / 3 + 16);
  FUZZ_CHECK(token != NULL);
  memcpy(token, HEADER ".", sizeof(HEADER));
  k = sizeof(HEADER);
  k += b64url(data, size, token + k);
  memcpy(token + k, ".c2ln", 6);
  exp = 0;
  rc = brw_jwt_exp(token, &exp);
  check_result(rc, exp);
  /* Exactly two dots: the built token is a JWT to brw_jwt_times, which
   * reads exp exactly as brw_jwt_exp does. */
  int trc = brw_jwt_times(token, &t);
  check_times(trc, &t);
  FUZZ_CHECK(t.is_jwt);
  FUZZ_CHECK((trc == 0 && t.has_exp) == (rc == 0));
  if (rc == 0)
    FUZZ_CHECK(t.exp_s == exp);
  free(token);

  /* 3. The input as a login answer. */
  check_login_body(data, size);

  /* jansson as the oracle of what the payload says. */
  json_t *root = json_loadb((const char *)data, size, 0, NULL);
  json_t *v = json_object_get(root, "exp");
  if (json_is_integer(v) && json_integer_value(v) >= 1 &&
      json_integer_value(v) <= EXP_MAX) {
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(exp == json_integer_value(v));
  } else if (!json_is_real(v)) {
    FUZZ_CHECK(rc == BRW_EPARSE);
  } else if (rc == 0) {
    /* A real exp is truncated to whole seconds. */
    FUZZ_CHECK((double)exp <= json_real_value(v));
    FUZZ_CHECK(json_real_value(v) - (double)exp < 1.0 + 1e-9 * (double)exp);
  }
  json_decref(root);
  return 0;
}
