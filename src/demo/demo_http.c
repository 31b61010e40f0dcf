/* Blocking HTTP GETs to the simulator's control interface (/_sim/...), with
 * one reused libcurl easy handle. The demo asks only loopback questions with
 * short timeouts, so blocking its poll loop for a moment is acceptable. */
#include "demo.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_HTTP_MAX_BODY (8u << 20)

typedef struct {
  char *data;
  size_t len;
  size_t cap;
  int too_large;
} body_t;

static CURL *easy;

int demo_http_init(void) {
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return -1;
  easy = curl_easy_init();
  if (!easy) {
    curl_global_cleanup();
    return -1;
  }
  return 0;
}

void demo_http_cleanup(void) {
  if (!easy)
    return;
  curl_easy_cleanup(easy);
  easy = NULL;
  curl_global_cleanup();
}

/* libcurl's write callback: appends to the body_t; returning less than
 * asked aborts the transfer (too large, out of memory). */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  body_t *b = userdata;
  size_t n = size * nmemb;

  if (b->len + n + 1 > DEMO_HTTP_MAX_BODY) {
    b->too_large = 1;
    return 0;
  }
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *p;
    while (cap < b->len + n + 1)
      cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
      return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, ptr, n);
  b->len += n;
  b->data[b->len] = '\0';
  return n;
}

int demo_http_get(const char *url, long timeout_ms, char **body, long *status,
                  char *errbuf, size_t errlen) {
  char cerr[CURL_ERROR_SIZE] = "";
  body_t b = {0};
  CURLcode rc;

  *body = NULL;
  *status = 0;
  if (!easy) {
    snprintf(errbuf, errlen, "http client not initialised");
    return -1;
  }
  curl_easy_reset(easy);
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &b);
  /* The simulator is on loopback: a proxy from the environment would only
   * get in the way. */
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");

  rc = curl_easy_perform(easy);
  if (rc != CURLE_OK) {
    snprintf(errbuf, errlen, "GET %s: %s", url,
             b.too_large ? "response too large"
             : cerr[0]   ? cerr
                         : curl_easy_strerror(rc));
    free(b.data);
    return -1;
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
  if (!b.data) {
    b.data = strdup("");
    if (!b.data) {
      snprintf(errbuf, errlen, "out of memory");
      return -1;
    }
  }
  *body = b.data;
  return 0;
}
