/* A load generator for bsg-api-sim's detail endpoint: libcurl multi with
 * reused easy handles over keep-alive connections, the leanest client the
 * worker's HTTP stack could be. Two uses (scripts/bench):
 *  - the simulator's ceiling (it is not the bottleneck of a worker run);
 *  - the client-side floor: CPU per request of bare libcurl, to compare
 *    with the worker's CPU per fetch, over plain HTTP/1.1 (simceiling) and
 *    over HTTPS/1.1 and HTTP/2 through a TLS server (transport; there with
 *    --epoll: the default loop is no floor over many connections).
 *
 *   bench_http [OPTIONS] BASE_URL API_KEY [INFLIGHT [SECONDS [IDS]]]
 *
 * Logs in once (POST /api/auth/login), then keeps INFLIGHT (default 32)
 * requests in flight for SECONDS (default 5) over campaign ids 1..IDS
 * (default 10000, round robin). Options (before or after the arguments):
 *   --ca FILE        CA bundle that verifies an https:// server
 *                    (CURLOPT_CAINFO; default: the system's)
 *   --http 1.1|2     1.1: HTTP/1.1 only (ALPN offers http/1.1 only);
 *                    2: HTTP/2, by ALPN over TLS (a server without h2 gets
 *                    HTTP/1.1), by prior knowledge over http://, with
 *                    CURLPIPE_MULTIPLEX and CURLOPT_PIPEWAIT (a transfer
 *                    waits for a stream on an open connection rather than
 *                    opening one); default: curl's (HTTP/1.1 over http://,
 *                    HTTP/2 by ALPN over https://, no PIPEWAIT)
 *   --max-conns N    connections at most (CURLMOPT_MAX_HOST_CONNECTIONS and
 *                    MAX_TOTAL_CONNECTIONS), 1..1024; default INFLIGHT
 *                    (at most 1024)
 *   --streams N      HTTP/2 streams per connection at most
 *                    (CURLMOPT_MAX_CONCURRENT_STREAMS); default 100
 *   --warmup S       seconds of the same load before the measured window
 *                    (default 0: connections opened at start are counted)
 *   --epoll          drive curl with curl_multi_socket_action from an epoll
 *                    set and curl's timer, as the worker does from libuv,
 *                    instead of curl_multi_perform + curl_multi_poll (which
 *                    visit every transfer and poll() every socket on each
 *                    wake-up: more CPU with many connections)
 * The easy handles (and the login's) share one TLS session cache, as the
 * worker's do: a connection opened once a session ticket has arrived
 * resumes the session (the first ones, opened at once, may not).
 * Prints one JSON line about the measured window:
 *   {"requests":N,"ok":N,"seconds":S,"rps":R,"cpu_s":C,"cpu_us_per_request":U,
 *    "connects":K,"http2":H}
 * connects: new connections the requests of the window opened (the sum of
 * CURLINFO_NUM_CONNECTS; over TLS each is one handshake, full or resumed);
 * http2: responses of the window that came over HTTP/2.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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

/* --epoll: the epoll set of curl's sockets, and when curl's timer expires
 * (mono() seconds; < 0: no timer). */
static int epfd = -1;
static double timer_due = -1;

/* CURLMOPT_SOCKETFUNCTION: watch the socket for what curl wants. */
static int on_socket(CURL *e, curl_socket_t s, int what, void *up, void *sp) {
  (void)e;
  (void)up;
  (void)sp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, s, NULL);
    return 0;
  }
  struct epoll_event ev = {0};
  ev.data.fd = s;
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) |
              ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
  if (epoll_ctl(epfd, EPOLL_CTL_MOD, s, &ev) != 0 && errno == ENOENT)
    epoll_ctl(epfd, EPOLL_CTL_ADD, s, &ev);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: ms < 0 removes the timer. */
static int on_timer(CURLM *m, long ms, void *up) {
  (void)m;
  (void)up;
  timer_due = ms < 0 ? -1 : mono() + (double)ms / 1e3;
  return 0;
}

/* One wake-up of the --epoll loop: waits at most 100 ms for a socket or
 * curl's timer, then tells curl what happened. */
static void drive_epoll(CURLM *m, int *running) {
  struct epoll_event evs[64];
  int wait = 100;
  if (timer_due >= 0) {
    double left = (timer_due - mono()) * 1e3;
    wait = left <= 0 ? 0 : left < 100 ? (int)left + 1 : 100;
  }
  int n = epoll_wait(epfd, evs, 64, wait);
  for (int i = 0; i < n; i++) {
    int f = 0;
    if (evs[i].events & EPOLLIN)
      f |= CURL_CSELECT_IN;
    if (evs[i].events & EPOLLOUT)
      f |= CURL_CSELECT_OUT;
    if (evs[i].events & (EPOLLERR | EPOLLHUP))
      f |= CURL_CSELECT_ERR;
    curl_multi_socket_action(m, evs[i].data.fd, f, running);
  }
  if (timer_due >= 0 && mono() >= timer_due) {
    timer_due = -1; /* before the call: curl may set a new one */
    curl_multi_socket_action(m, CURL_SOCKET_TIMEOUT, 0, running);
  }
}

static const char usage[] =
    "usage: %s [--ca FILE] [--http 1.1|2] [--max-conns N] [--streams N]\n"
    "       [--warmup S] [--epoll] BASE_URL API_KEY [INFLIGHT [SECONDS "
    "[IDS]]]\n";

/* The options every handle gets: TLS verification and HTTP version. */
static void common_opts(CURL *h, CURLSH *share, const char *ca, int ver,
                        int https) {
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SHARE, share);
  if (ca)
    curl_easy_setopt(h, CURLOPT_CAINFO, ca);
  if (ver == 11)
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  else if (ver == 2) {
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION,
                     https ? (long)CURL_HTTP_VERSION_2TLS
                           : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
  }
}

int main(int argc, char **argv) {
  const char *ca = NULL, *pos[5] = {0};
  int ver = 0, npos = 0, use_epoll = 0;
  long max_conns = 0, streams = 100;
  double warmup = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_val = i + 1 < argc;
    if (!strcmp(a, "--ca") && has_val)
      ca = argv[++i];
    else if (!strcmp(a, "--http") && has_val) {
      const char *v = argv[++i];
      if (!strcmp(v, "1.1"))
        ver = 11;
      else if (!strcmp(v, "2"))
        ver = 2;
      else {
        fprintf(stderr, "--http takes 1.1 or 2\n");
        return 2;
      }
    } else if (!strcmp(a, "--max-conns") && has_val)
      max_conns = atol(argv[++i]);
    else if (!strcmp(a, "--streams") && has_val)
      streams = atol(argv[++i]);
    else if (!strcmp(a, "--warmup") && has_val)
      warmup = atof(argv[++i]);
    else if (!strcmp(a, "--epoll"))
      use_epoll = 1;
    else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, usage, argv[0]);
      return 2;
    } else if (npos < 5)
      pos[npos++] = a;
    else {
      fprintf(stderr, usage, argv[0]);
      return 2;
    }
  }
  if (npos < 2) {
    fprintf(stderr, usage, argv[0]);
    return 2;
  }
  const char *base = pos[0], *key = pos[1];
  int conns = npos > 2 ? atoi(pos[2]) : 32;
  double secs = npos > 3 ? atof(pos[3]) : 5;
  long ids = npos > 4 ? atol(pos[4]) : 10000;
  if (max_conns <= 0)
    max_conns = conns < 1024 ? conns : 1024;
  if (conns < 1 || conns > 100000 || secs <= 0 || ids < 1 || max_conns > 1024 ||
      streams < 1 || warmup < 0)
    return 2;
  int https = !strncmp(base, "https://", 8);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLSH *share = curl_share_init();
  curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);

  /* login */
  char url[512], body[512], auth[4200];
  snprintf(url, sizeof(url), "%s/api/auth/login", base);
  snprintf(body, sizeof(body), "{\"api_key\":\"%s\"}", key);
  sink_t resp = {malloc(256), 0, 256};
  CURL *l = curl_easy_init();
  struct curl_slist *lh =
      curl_slist_append(NULL, "Content-Type: application/json");
  common_opts(l, share, ca, ver, https);
  curl_easy_setopt(l, CURLOPT_URL, url);
  curl_easy_setopt(l, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(l, CURLOPT_HTTPHEADER, lh);
  curl_easy_setopt(l, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(l, CURLOPT_WRITEDATA, &resp);
  CURLcode lrc = curl_easy_perform(l);
  if (lrc != CURLE_OK || !resp.buf) {
    fprintf(stderr, "login failed: %s\n", curl_easy_strerror(lrc));
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
  curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_conns);
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, max_conns);
  if (ver == 2) {
    curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(m, CURLMOPT_MAX_CONCURRENT_STREAMS, streams);
  }
  if (use_epoll) {
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
      perror("epoll_create1");
      return 1;
    }
    curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, on_timer);
  }
  slot_t *slots = calloc((size_t)conns, sizeof(*slots));
  sink_t discard = {0};
  long next_id = 0;
  for (int i = 0; i < conns; i++) {
    slots[i].e = curl_easy_init();
    CURL *h = slots[i].e;
    snprintf(slots[i].url, sizeof(slots[i].url), "%s/api/campaigns/%ld/detail",
             base, next_id++ % ids + 1);
    common_opts(h, share, ca, ver, https);
    curl_easy_setopt(h, CURLOPT_URL, slots[i].url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &discard);
    curl_easy_setopt(h, CURLOPT_PRIVATE, &slots[i]);
    curl_multi_add_handle(m, h);
  }
  long requests = 0, ok = 0, connects = 0, http2 = 0;
  double t0 = mono(), c0 = cpu_s(), end = t0 + warmup + secs;
  int warm = warmup > 0, running = 1;
  for (;;) {
    double now = mono();
    if (now >= end)
      break;
    if (warm && now >= t0 + warmup) {
      /* the window starts: count from here */
      warm = 0;
      t0 = now;
      c0 = cpu_s();
      requests = ok = connects = http2 = 0;
    }
    if (use_epoll)
      drive_epoll(m, &running);
    else
      curl_multi_perform(m, &running);
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m, &left))) {
      if (msg->msg != CURLMSG_DONE)
        continue;
      CURL *h = msg->easy_handle;
      slot_t *s = NULL;
      curl_easy_getinfo(h, CURLINFO_PRIVATE, (char **)&s);
      long code = 0, nc = 0, hv = 0;
      curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
      curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &nc);
      curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &hv);
      requests++;
      connects += nc;
      http2 += hv == CURL_HTTP_VERSION_2_0;
      ok += msg->data.result == CURLE_OK && code == 200;
      curl_multi_remove_handle(m, h);
      snprintf(s->url, sizeof(s->url), "%s/api/campaigns/%ld/detail", base,
               next_id++ % ids + 1);
      curl_easy_setopt(h, CURLOPT_URL, s->url);
      curl_multi_add_handle(m, h);
    }
    if (!use_epoll)
      curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  double dt = mono() - t0, dc = cpu_s() - c0;
  printf("{\"requests\":%ld,\"ok\":%ld,\"seconds\":%.3f,\"rps\":%.0f,"
         "\"cpu_s\":%.3f,\"cpu_us_per_request\":%.2f,\"connects\":%ld,"
         "\"http2\":%ld}\n",
         requests, ok, dt, requests / dt, dc,
         requests ? dc * 1e6 / requests : 0.0, connects, http2);
  for (int i = 0; i < conns; i++) {
    curl_multi_remove_handle(m, slots[i].e);
    curl_easy_cleanup(slots[i].e);
  }
  curl_multi_cleanup(m);
  curl_share_cleanup(share);
  curl_slist_free_all(hd);
  free(slots);
  curl_global_cleanup();
  return ok > 0 ? 0 : 1;
}
