/* A load generator for bsg-api-sim's detail endpoint: libcurl multi with
 * reused easy handles over keep-alive connections, the leanest client the
 * worker's HTTP stack could be. Two uses (scripts/bench):
 *  - the simulator's ceiling (it is not the bottleneck of a worker run);
 *  - the client-side floor: CPU per request of bare libcurl, to compare
 *    with the worker's CPU per fetch.
 *
 *   bench_http BASE_URL API_KEY [CONNS [SECONDS [IDS]]]
 *
 * Logs in once (POST /api/auth/login), then keeps CONNS (default 32)
 * requests in flight for SECONDS (default 5) over campaign ids 1..IDS
 * (default 10000, round robin). Prints one JSON line:
 *   {"requests":N,"ok":N,"seconds":S,"rps":R,"cpu_s":C,"cpu_us_per_request":U}
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
  char *buf;
  size_t len, cap;
} sink_t;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  sink_t *s = ud;
  size_t k = sz * n;
  if (!s->buf) /* discard (detail bodies) */
    return k;
  if (s->len + k + 1 > s->cap) {
    size_t nc = (s->len + k + 1) * 2;
    char *nb = realloc(s->buf, nc);
    if (!nb)
      return 0;
    s->buf = nb;
    s->cap = nc;
  }
  memcpy(s->buf + s->len, p, k);
  s->len += k;
  s->buf[s->len] = '\0';
  return k;
}

static double mono(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

typedef struct {
  CURL *e;
  char url[256];
} slot_t;

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s BASE_URL API_KEY [CONNS [SECONDS [IDS]]]\n",
            argv[0]);
    return 2;
  }
  const char *base = argv[1], *key = argv[2];
  int conns = argc > 3 ? atoi(argv[3]) : 32;
  double secs = argc > 4 ? atof(argv[4]) : 5;
  long ids = argc > 5 ? atol(argv[5]) : 10000;
  if (conns < 1 || conns > 1024 || secs <= 0 || ids < 1)
    return 2;
  curl_global_init(CURL_GLOBAL_DEFAULT);

  /* login */
  char url[512], body[512], auth[4200];
  snprintf(url, sizeof(url), "%s/api/auth/login", base);
  snprintf(body, sizeof(body), "{\"api_key\":\"%s\"}", key);
  sink_t resp = {malloc(256), 0, 256};
  CURL *l = curl_easy_init();
  struct curl_slist *lh =
      curl_slist_append(NULL, "Content-Type: application/json");
  curl_easy_setopt(l, CURLOPT_URL, url);
  curl_easy_setopt(l, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(l, CURLOPT_HTTPHEADER, lh);
  curl_easy_setopt(l, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(l, CURLOPT_WRITEDATA, &resp);
  if (curl_easy_perform(l) != CURLE_OK || !resp.buf) {
    fprintf(stderr, "login failed\n");
    return 1;
  }
  const char *b = strstr(resp.buf, "\"bearer\":\"");
  if (!b) {
    fprintf(stderr, "no bearer in %s\n", resp.buf);
    return 1;
  }
  b += 10;
  const char *e = strchr(b, '"');
  if (!e) {
    fprintf(stderr, "bad login answer\n");
    return 1;
  }
  snprintf(auth, sizeof(auth), "Authorization: Bearer %.*s", (int)(e - b), b);
  curl_easy_cleanup(l);
  curl_slist_free_all(lh);
  free(resp.buf);

  struct curl_slist *hd = curl_slist_append(NULL, "Accept: application/json");
  hd = curl_slist_append(hd, auth);
  CURLM *m = curl_multi_init();
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conns);
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conns);
  slot_t *slots = calloc((size_t)conns, sizeof(*slots));
  sink_t discard = {0};
  long next_id = 0;
  for (int i = 0; i < conns; i++) {
    slots[i].e = curl_easy_init();
    CURL *h = slots[i].e;
    snprintf(slots[i].url, sizeof(slots[i].url), "%s/api/campaigns/%ld/detail",
             base, next_id++ % ids + 1);
    curl_easy_setopt(h, CURLOPT_URL, slots[i].url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &discard);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &slots[i]);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_multi_add_handle(m, h);
  }
  long requests = 0, ok = 0;
  double t0 = mono(), c0 = cpu_s(), end = t0 + secs;
  int running = 1;
  while (mono() < end) {
    curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      CURL *h = msg->easy_handle;
      slot_t *s = NULL;
      curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&s);
      long code = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
      requests++;
      ok += msg->data.result == CURLE_OK && code == 200;
      curl_multi_remove_handle(m, h);
      snprintf(s->url, sizeof(s->url), "%s/api/campaigns/%ld/detail", base,
               next_id++ % ids + 1);
      curl_easy_setopt(h, CURLOPT_URL, s->url);
      curl_multi_add_handle(m, h);
    }
    curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  double dt = mono() - t0, dc = cpu_s() - c0;
  printf("{\"requests\":%ld,\"ok\":%ld,\"seconds\":%.3f,\"rps\":%.0f,"
         "\"cpu_s\":%.3f,\"cpu_us_per_request\":%.2f}\n",
         requests, ok, dt, requests / dt, dc,
         requests ? dc * 1e6 / requests : 0.0);
  for (int i = 0; i < conns; i++) {
    curl_multi_remove_handle(m, slots[i].e);
    curl_easy_cleanup(slots[i].e);
  }
  curl_multi_cleanup(m);
  curl_slist_free_all(hd);
  free(slots);
  curl_global_cleanup();
  return ok > 0 ? 0 : 1;
}
