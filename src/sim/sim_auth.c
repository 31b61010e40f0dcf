/* Bearer tokens shaped like a JWT: base64url(header).base64url(payload).sig,
 * payload {"sub", "iat", "exp", "jti"}. The signature is a keyed 256-bit
 * hash (not HMAC-SHA256: this is a simulator, and the worker never checks
 * signatures), with the key derived from --seed. Tokens are stateless: a
 * refreshed token does not revoke the old one, as with BSG. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* {"alg":"HS256","typ":"JWT"} */
#define TOKEN_HEADER "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
#define SIG_BYTES 32
#define SIG_CHARS 43 /* base64url of 32 bytes, unpadded */
#define PAYLOAD_MAX 512

/* Four independent 64-bit lanes over the bytes and the length. */
static void sign(uint64_t key, const char *s, size_t n, char *out) {
  unsigned char raw[SIG_BYTES];
  for (int lane = 0; lane < 4; lane++) {
    uint64_t h = sim_mix64(key ^ (uint64_t)(lane + 1) * 0xA24BAED4963EE407ull);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      h = sim_mix64(h ^ w);
    }
    uint64_t tail = 0;
    memcpy(&tail, s + i, n - i);
    h = sim_mix64(h ^ tail ^ (uint64_t)n << 56);
    memcpy(raw + lane * 8, &h, 8);
  }
  sim_b64url_encode(raw, sizeof(raw), out);
}

char *sim_token_issue(uint64_t key, const char *sub, int64_t now_ms,
                      int64_t ttl_ms, uint64_t jti) {
  char payload[PAYLOAD_MAX], enc[PAYLOAD_MAX * 2], *tok;
  int n;
  size_t elen, hlen = strlen(TOKEN_HEADER);

  n = snprintf(payload, sizeof(payload),
               "{\"sub\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"jti\":\"%llx\"}",
               sub, (long long)(now_ms / 1000),
               (long long)((now_ms + ttl_ms) / 1000), (unsigned long long)jti);
  if (n < 0 || (size_t)n >= sizeof(payload))
    return NULL;
  elen = sim_b64url_encode(payload, (size_t)n, enc);
  tok = malloc(hlen + 1 + elen + 1 + SIG_CHARS + 1);
  if (!tok)
    return NULL;
  memcpy(tok, TOKEN_HEADER, hlen);
  tok[hlen] = '.';
  memcpy(tok + hlen + 1, enc, elen);
  tok[hlen + 1 + elen] = '.';
  sign(key, tok, hlen + 1 + elen, tok + hlen + 1 + elen + 1);
  return tok;
}

int sim_token_verify(uint64_t key, const char *token, int64_t now_ms, char *sub,
                     size_t len) {
  const char *d1, *d2;
  char sig[SIG_CHARS + 1];
  unsigned char payload[PAYLOAD_MAX];
  long plen;
  json_t *root;
  json_error_t jerr;
  int rc = SIM_TOKEN_INVALID;

  if (!token || !(d1 = strchr(token, '.')) || !(d2 = strchr(d1 + 1, '.')))
    return SIM_TOKEN_INVALID;
  if (strlen(d2 + 1) != SIG_CHARS)
    return SIM_TOKEN_INVALID;
  sign(key, token, (size_t)(d2 - token), sig);
  if (memcmp(sig, d2 + 1, SIG_CHARS) != 0)
    return SIM_TOKEN_INVALID;
  plen = sim_b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload,
                           sizeof(payload));
  if (plen <= 0)
    return SIM_TOKEN_INVALID;
  root = json_loadb((const char *)payload, (size_t)plen, 0, &jerr);
  if (json_is_object(root)) {
    json_t *exp = json_object_get(root, "exp");
    json_t *s = json_object_get(root, "sub");
    if (json_is_integer(exp) && json_is_string(s)) {
      snprintf(sub, len, "%s", json_string_value(s));
      rc = now_ms / 1000 >= json_integer_value(exp) ? SIM_TOKEN_EXPIRED
                                                    : SIM_TOKEN_OK;
    }
  }
  json_decref(root);
  return rc;
}

static const char *const bearer_modes[SIM_BEARER__COUNT] = {
    "normal", "expired", "garbage", "whitespace", "missing", "null", "empty"};

int sim_bearer_mode_parse(const char *s, sim_bearer_mode_t *out) {
  for (int i = 0; s && i < SIM_BEARER__COUNT; i++) {
    if (!strcmp(s, bearer_modes[i])) {
      *out = (sim_bearer_mode_t)i;
      return 0;
    }
  }
  return -1;
}

const char *sim_bearer_mode_name(sim_bearer_mode_t m) {
  return (unsigned)m < SIM_BEARER__COUNT ? bearer_modes[m] : "normal";
}

const char *sim_bearer_mode_names(void) {
  return "normal, expired, garbage, whitespace, missing, null, empty";
}

void sim_account_of_key(const char *api_key, char *buf, size_t len) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (const char *p = api_key; *p; p++)
    h = (h ^ (unsigned char)*p) * 0x100000001B3ull;
  snprintf(buf, len, "acct_%08llx",
           (unsigned long long)(sim_mix64(h) & 0xFFFFFFFFull));
}
