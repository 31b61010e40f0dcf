#include "brw/http.h"
#include "brw/error.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/timeutil.h"

#include <ctype.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* What a request costs the client, and why it is cheap:
 *
 * - Easy handles are pooled. A handle gets the options that never change
 *   once, when it is created; a request sets only its URL, method, header
 *   list and the pointers to its own state (no curl_easy_reset).
 * - "Authorization: Bearer ..." lines are formatted once per bearer and
 *   cached (a few entries, wiped when dropped). A request's header list is
 *   made of list nodes inside the request that point at constant strings,
 *   the cached line and, when there is one, the request's traceparent line:
 *   building it allocates nothing.
 * - A socket keeps its uv_poll_t for as long as curl keeps the connection:
 *   CURL_POLL_REMOVE only marks it idle, and the context is closed when curl
 *   closes the socket (CURLOPT_CLOSESOCKETFUNCTION). The poll is restarted
 *   only when the events change, because every uv_poll_start and
 *   uv_poll_stop is an epoll_ctl (libuv's uv_poll_start even deletes and
 *   re-adds the fd). */

/* Cached Authorization lines: one per account is the common case. */
#define AUTH_CACHE_SIZE 4
/* The first size of a response buffer; the recycled size. */
#define BODY_BUF 4096
/* A cached line unused this long is wiped at the next miss, so that a
 * replaced bearer does not stay in memory until the cache fills. */
#define AUTH_IDLE_MS 10000

static const char auth_prefix[] = "Authorization: Bearer ";
#define AUTH_PREFIX_LEN (sizeof(auth_prefix) - 1)

/* The constant lines of a header list. curl only reads list nodes, but
 * struct curl_slist holds a non-const pointer. */
static char hdr_accept[] = "Accept: application/json";
static char hdr_json[] = "Content-Type: application/json";

/* "Authorization: Bearer <bearer>", shared by the requests that send it. */
typedef struct {
  size_t refs;      /* requests whose header list points at line */
  int cached;       /* in h->auth[]; otherwise freed when refs drops to 0 */
  uint64_t used_ms; /* uv_now of the last request that took it */
  size_t len;       /* strlen(line) */
  char line[];
} auth_line_t;

/* One socket curl uses. `owned` sockets were opened by on_curl_opensocket,
 * so curl closes them through on_curl_closesocket, which closes the context
 * first; the others (for example the threaded resolver's socket pair) are
 * closed by curl behind our back, so their context is closed as soon as curl
 * stops watching them, as before. */
typedef struct {
  uv_poll_t poll;
  brw_http_t *h;
  curl_socket_t fd;
  int owned;
  int inited; /* poll is initialised (and must be closed with uv_close) */
  int events; /* UV_* events the poll is started with; 0: stopped */
  int wanted; /* curl watches the socket for a transfer */
} sock_ctx_t;

struct brw_http_s {
  uv_loop_t *loop;
  CURLM *multi;
  /* The TLS session cache of every handle: without it each easy handle
   * keeps its own, and a connection opened by a handle that never talked
   * to the server makes a full handshake. */
  CURLSH *share;
  uv_timer_t timer; /* curl's timeout, when it is > 0 ms */
  uv_idle_t kick;   /* curl's timeout of 0 ms: the next loop iteration */
  brw_http_opts_t opts;
  char *ca_file;
  char *user_agent;
  char *proxy;
  char *no_proxy;
  char *proxy_ca_file;
  brw_list_t reqs; /* in-flight requests */
  size_t nreqs;
  sock_ctx_t **socks; /* socket contexts by fd */
  size_t nsocks;
  CURL **pool; /* finished easy handles, ready for reuse */
  size_t npool;
  size_t pool_max;
  /* Response buffers of BODY_BUF bytes, ready for reuse (as many as
   * handles): a detail fits one, and recycling it keeps a 4 KiB malloc and
   * free (and glibc's consolidation of small chunks it triggers) out of
   * every request. */
  char **bufs;
  size_t nbufs;
  auth_line_t *auth[AUTH_CACHE_SIZE];
  brw_http_stats_t stats;
  int closing;
  int pending_closes; /* uv handles whose close callback has not run yet */
  void (*close_cb)(void *);
  void *close_arg;
};

struct brw_http_req_s {
  brw_list_t node;
  brw_http_t *h;
  CURL *easy;
  auth_line_t *auth; /* referenced, or NULL */
  /* The header list handed to curl: nodes linked per request. */
  struct curl_slist hdr[5];
  char *tp_line;  /* "traceparent: ...": tp_inline or owned */
  char *ts_line;  /* "tracestate: ...", owned, or NULL */
  char *body_out; /* request body, owned, wiped before it is freed */
  int posted;     /* POSTFIELDS is set on easy */
  char *buf;      /* response body, owned */
  size_t len;
  size_t cap;
  int too_large;
  int tls;                /* the URL is https:// */
  int64_t retry_after_ms;
  brw_http_cb cb;
  void *arg;
  char errbuf[CURL_ERROR_SIZE];
  char tp_inline[80]; /* a W3C version-00 traceparent line fits */
};

static void check_multi_info(brw_http_t *h);

/* Frees the client's copies of its string options. The proxy URL may hold
 * a password. */
static void opts_free(brw_http_t *h) {
  free(h->ca_file);
  free(h->user_agent);
  brw_secret_free(h->proxy);
  free(h->no_proxy);
  free(h->proxy_ca_file);
}

static void maybe_finish_close(brw_http_t *h) {
  if (!h->closing || h->pending_closes > 0)
    return;
  void (*cb)(void *) = h->close_cb;
  void *arg = h->close_arg;
  free(h->socks);
  free(h->pool);
  free(h->bufs);
  opts_free(h);
  free(h);
  if (cb)
    cb(arg);
}

static void on_handle_closed(uv_handle_t *handle) {
  brw_http_t *h = handle->data;
  h->pending_closes--;
  maybe_finish_close(h);
}

/* ---- sockets ---- */

static sock_ctx_t *sock_get(const brw_http_t *h, curl_socket_t fd) {
  if (fd < 0 || (size_t)fd >= h->nsocks)
    return NULL;
  return h->socks[fd];
}

/* Records s as the context of its fd, growing the table. Returns 0 or
 * BRW_ENOMEM. */
static int sock_put(brw_http_t *h, sock_ctx_t *s) {
  size_t fd = (size_t)s->fd;
  if (fd >= h->nsocks) {
    size_t n = h->nsocks ? h->nsocks : 64;
    while (n <= fd)
      n *= 2;
    sock_ctx_t **ns = realloc(h->socks, n * sizeof(*ns));
    if (!ns)
      return BRW_ENOMEM;
    memset(ns + h->nsocks, 0, (n - h->nsocks) * sizeof(*ns));
    h->socks = ns;
    h->nsocks = n;
  }
  h->socks[fd] = s;
  return 0;
}

/* A context for fd, without a poll yet. Returns NULL when out of memory. */
static sock_ctx_t *sock_new(brw_http_t *h, curl_socket_t fd, int owned) {
  sock_ctx_t *s = calloc(1, sizeof(*s));
  if (!s)
    return NULL;
  s->h = h;
  s->fd = fd;
  s->owned = owned;
  if (fd < 0 || sock_put(h, s) != 0) {
    free(s);
    return NULL;
  }
  return s;
}

static void on_sock_closed(uv_handle_t *handle) {
  sock_ctx_t *s = handle->data;
  brw_http_t *h = s->h;
  free(s);
  h->pending_closes--;
  maybe_finish_close(h);
}

/* Drops a context: the poll stops watching the fd at once (uv_close), so the
 * fd may be closed right after; the memory goes in the close callback. */
static void sock_ctx_close(sock_ctx_t *s) {
  brw_http_t *h = s->h;
  if (sock_get(h, s->fd) == s)
    h->socks[s->fd] = NULL;
  if (!s->inited) {
    free(s);
    return;
  }
  h->stats.polls--;
  h->pending_closes++;
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void on_poll(uv_poll_t *poll, int status, int events);

/* Points the poll at `events` (0 stops it). Does nothing when they are the
 * ones already watched: each change is an epoll_ctl (two for a start). */
static int sock_poll_set(sock_ctx_t *s, int events) {
  if (events == s->events)
    return 0;
  int err = events ? uv_poll_start(&s->poll, events, on_poll)
                   : uv_poll_stop(&s->poll);
  s->h->stats.poll_changes++;
  if (err != 0) {
    brw_log_error("uv_poll_%s: %s", events ? "start" : "stop",
                  uv_strerror(err));
    s->events = 0;
    return -1;
  }
  s->events = events;
  return 0;
}

/* curl no longer watches s for a transfer. An owned socket stays open in
 * curl's connection cache: its poll keeps watching for reading (idle and
 * unreferenced, so it keeps no loop alive), which costs nothing now and
 * nothing when the next transfer on the connection waits for its answer.
 * Anything the idle socket reads (the server closing) stops the poll in
 * on_poll. */
static void sock_release(sock_ctx_t *s) {
  s->wanted = 0;
  if (!s->owned) {
    sock_ctx_close(s);
    return;
  }
  if (!s->inited || s->h->closing)
    return;
  uv_unref((uv_handle_t *)&s->poll);
  if (s->events & UV_WRITABLE)
    sock_poll_set(s, UV_READABLE);
}

/* uv_poll callback: the socket is readable/writable (or failed). A poll error
 * is handed to curl as CURL_CSELECT_ERR so that the transfer fails instead
 * of hanging. On an idle socket the event only stops the poll: curl checks a
 * cached connection before it reuses it. */
static void on_poll(uv_poll_t *poll, int status, int events) {
  sock_ctx_t *s = poll->data;
  brw_http_t *h = s->h;
  if (status < 0)
    s->events = 0; /* libuv stopped the watcher */
  if (!s->wanted) {
    h->stats.idle_wakeups++;
    sock_poll_set(s, 0);
    return;
  }
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  else {
    if (events & UV_READABLE)
      flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
      flags |= CURL_CSELECT_OUT;
  }
  int running = 0;
  /* s may be closed (not freed) by the call, through on_curl_closesocket. */
  CURLMcode mc = curl_multi_socket_action(h->multi, s->fd, flags, &running);
  if (mc != CURLM_OK)
    brw_log_error("curl_multi_socket_action: %s", curl_multi_strerror(mc));
  check_multi_info(h);
}

/* CURLMOPT_SOCKETFUNCTION: curl says which events it wants on a socket. The
 * fd table, not socketp, finds the context: it also knows sockets that curl
 * stopped watching but keeps open. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  brw_http_t *h = userp;
  sock_ctx_t *s = sock_get(h, fd);
  if (what == CURL_POLL_REMOVE) {
    if (s)
      sock_release(s);
    return 0;
  }
  if (!s && !(s = sock_new(h, fd, 0)))
    return -1;
  if (!s->inited) {
    int err = uv_poll_init_socket(h->loop, &s->poll, fd);
    if (err != 0) {
      brw_log_error("uv_poll_init_socket: %s", uv_strerror(err));
      return -1;
    }
    s->poll.data = s;
    s->inited = 1;
    h->stats.polls++;
  }
  s->wanted = 1;
  uv_ref((uv_handle_t *)&s->poll);
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  return sock_poll_set(s, events);
}

/* CURLOPT_OPENSOCKETFUNCTION: opens a connection socket as curl would, and
 * marks it as one that curl will close through on_curl_closesocket. A
 * context already at this fd is stale (its socket was closed without our
 * callback and the number reused): it is dropped. */
static curl_socket_t on_curl_opensocket(void *clientp, curlsocktype purpose,
                                        struct curl_sockaddr *addr) {
  brw_http_t *h = clientp;
  int type = addr->socktype;
#ifdef SOCK_CLOEXEC
  type |= SOCK_CLOEXEC;
#endif
  curl_socket_t fd = socket(addr->family, type, addr->protocol);
  if (fd == CURL_SOCKET_BAD)
    return fd;
  sock_ctx_t *old = sock_get(h, fd);
  if (old)
    sock_ctx_close(old);
  if (!sock_new(h, fd, 1)) {
    close(fd);
    return CURL_SOCKET_BAD;
  }
  h->stats.sockets_opened++;
  return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl is done with a socket. The poll is
 * closed before the fd (libuv must not watch a closed fd, whose number the
 * next socket may get). Returns 0, or 1 when close fails, as curl expects. */
static int on_curl_closesocket(void *clientp, curl_socket_t fd) {
  brw_http_t *h = clientp;
  sock_ctx_t *s = sock_get(h, fd);
  if (s)
    sock_ctx_close(s);
  h->stats.sockets_closed++;
  return close(fd) == 0 ? 0 : 1;
}

/* ---- curl's timer ---- */

static void curl_timeout_action(brw_http_t *h) {
  int running = 0;
  CURLMcode mc =
      curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  if (mc != CURLM_OK)
    brw_log_error("curl_multi_socket_action: %s", curl_multi_strerror(mc));
  check_multi_info(h);
}

static void on_timeout(uv_timer_t *t) {
  curl_timeout_action(t->data);
}

/* The idle handle runs once per loop iteration; it is stopped before curl
 * is called, which may ask for 0 ms again (and so start it again for the
 * next iteration). */
static void on_kick(uv_idle_t *idle) {
  brw_http_t *h = idle->data;
  uv_idle_stop(idle);
  curl_timeout_action(h);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as possible"
 * (curl forbids calling socket_action from inside this callback). That is
 * the idle handle, not a 0 ms timer: libuv 1.44 runs a timer restarted with
 * 0 ms from its own callback again in the same pass of the timer phase, so
 * a transfer that keeps asking for 0 ms would keep the loop from polling
 * sockets. The idle handle runs at most once per iteration, and the poll
 * phase does not block while it is active. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  brw_http_t *h = userp;
  if (h->closing)
    return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(&h->timer);
    uv_idle_stop(&h->kick);
  } else if (timeout_ms == 0) {
    uv_timer_stop(&h->timer);
    uv_idle_start(&h->kick, on_kick);
  } else {
    uv_idle_stop(&h->kick);
    uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
  }
  return 0;
}

/* ---- transfer callbacks ---- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  brw_http_req_t *r = userdata;
  size_t n = size * nmemb;
  if (r->len + n > r->h->opts.max_response) {
    r->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (!r->buf && r->h->nbufs > 0) {
    r->buf = r->h->bufs[--r->h->nbufs];
    r->cap = BODY_BUF;
  }
  if (r->len + n + 1 > r->cap) {
    size_t ncap = r->cap ? r->cap : BODY_BUF;
    while (ncap < r->len + n + 1)
      ncap *= 2;
    char *nb = realloc(r->buf, ncap);
    if (!nb)
      return 0;
    r->buf = nb;
    r->cap = ncap;
  }
  memcpy(r->buf + r->len, ptr, n);
  r->len += n;
  r->buf[r->len] = '\0';
  return n;
}

/* Header callback: resets per response (a 100-continue or a redirect has its
 * own headers) and keeps Retry-After. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata) {
  brw_http_req_t *r = userdata;
  size_t n = size * nmemb;
  if (n >= 5 && !strncmp(ptr, "HTTP/", 5)) {
    r->retry_after_ms = -1;
    return n;
  }
  static const char name[] = "retry-after:";
  if (n > sizeof(name) - 1 && !strncasecmp(ptr, name, sizeof(name) - 1)) {
    char val[128];
    size_t vlen = n - (sizeof(name) - 1);
    if (vlen >= sizeof(val))
      vlen = sizeof(val) - 1;
    memcpy(val, ptr + sizeof(name) - 1, vlen);
    val[vlen] = '\0';
    r->retry_after_ms = brw_http_parse_retry_after(val, brw_now_ms());
  }
  return n;
}

int64_t brw_http_parse_retry_after(const char *value, int64_t now_ms) {
  while (*value == ' ' || *value == '\t')
    value++;
  char buf[128];
  size_t n = strlen(value);
  while (n > 0 && isspace((unsigned char)value[n - 1]))
    n--;
  if (n == 0 || n >= sizeof(buf))
    return -1;
  memcpy(buf, value, n);
  buf[n] = '\0';
  int digits = 1;
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)buf[i]))
      digits = 0;
  if (digits) {
    if (n > 9)
      return INT64_C(999999999) * 1000;
    return (int64_t)strtol(buf, NULL, 10) * 1000;
  }
  time_t t = curl_getdate(buf, NULL);
  if (t == (time_t)-1)
    return -1;
  /* A date in year 2^31 is valid HTTP-date syntax; capped like a huge
   * delta-seconds, as `t * 1000` would overflow. */
  int64_t d = brw_time_until_ms((int64_t)t, now_ms);
  return d > INT64_C(999999999) * 1000 ? INT64_C(999999999) * 1000 : d;
}

static brw_http_outcome_t classify(CURLcode rc) {
  switch (rc) {
  case CURLE_OK:
    return BRW_HTTP_OK;
  case CURLE_COULDNT_CONNECT:
    return BRW_HTTP_CONNECT;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return BRW_HTTP_DNS;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
    return BRW_HTTP_TLS;
  case CURLE_OPERATION_TIMEDOUT:
    return BRW_HTTP_TIMEOUT;
  case CURLE_FILESIZE_EXCEEDED:
    /* A Content-Length over the cap: curl refuses before any body. */
    return BRW_HTTP_TOO_LARGE;
  default:
    return BRW_HTTP_TRANSPORT;
  }
}

/* ---- easy handle pool ---- */

/* A new easy handle with every option that is the same for all requests.
 * Returns NULL when curl refuses one. The caller owns the handle. */
static CURL *easy_new(brw_http_t *h) {
  CURL *e = curl_easy_init();
  if (!e)
    return NULL;
#define SETOPT(opt, val)                                                       \
  do {                                                                         \
    if (curl_easy_setopt(e, opt, val) != CURLE_OK)                             \
      goto err;                                                                \
  } while (0)
  SETOPT(CURLOPT_NOSIGNAL, 1L);
  SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
  SETOPT(CURLOPT_TIMEOUT_MS, (long)h->opts.timeout_ms);
  SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)h->opts.timeout_ms);
  SETOPT(CURLOPT_USERAGENT, h->user_agent);
  if (h->opts.version == BRW_HTTP_V_1_1) {
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  } else {
    /* HTTP/2 by ALPN; per request: BRW_HTTP_V_2 over plain http:// and
     * CURLOPT_PIPEWAIT (brw_http_request). */
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  }
  if (h->share)
    SETOPT(CURLOPT_SHARE, h->share);
  if (h->proxy)
    SETOPT(CURLOPT_PROXY, h->proxy);
  if (h->no_proxy)
    SETOPT(CURLOPT_NOPROXY, h->no_proxy);
  if (h->proxy_ca_file)
    SETOPT(CURLOPT_PROXY_CAINFO, h->proxy_ca_file);
  SETOPT(CURLOPT_ACCEPT_ENCODING, "");
  SETOPT(CURLOPT_WRITEFUNCTION, on_body);
  SETOPT(CURLOPT_HEADERFUNCTION, on_header);
  SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->opts.max_response);
  SETOPT(CURLOPT_OPENSOCKETFUNCTION, on_curl_opensocket);
  SETOPT(CURLOPT_OPENSOCKETDATA, h);
  SETOPT(CURLOPT_CLOSESOCKETFUNCTION, on_curl_closesocket);
  SETOPT(CURLOPT_CLOSESOCKETDATA, h);
  if (h->ca_file)
    SETOPT(CURLOPT_CAINFO, h->ca_file);
#undef SETOPT
  h->stats.easy_created++;
  return e;
err:
  brw_log_error("curl_easy_setopt failed on a new handle");
  curl_easy_cleanup(e);
  return NULL;
}

/* A handle for a request: a pooled one, or a new one. */
static CURL *easy_get(brw_http_t *h) {
  if (h->npool > 0) {
    h->stats.easy_reused++;
    return h->pool[--h->npool];
  }
  return easy_new(h);
}

/* Takes back a handle that is in no multi. The pointers into the finished
 * request are cleared first, so that no pooled handle points at freed
 * memory; the pool is bounded, and emptied by brw_http_close. */
static void easy_put(brw_http_t *h, CURL *e, int posted) {
  if (h->closing || h->npool >= h->pool_max) {
    curl_easy_cleanup(e);
    return;
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
  curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
  if (posted)
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
  h->pool[h->npool++] = e;
}

/* ---- Authorization lines ---- */

static void auth_free(auth_line_t *a) {
  brw_secret_wipe(a->line, a->len);
  free(a);
}

/* The Authorization line for `bearer`, with a reference the caller drops
 * with auth_release. Built on a miss, when it takes a free cache slot or
 * the least recently used idle one (wiped); with every slot in use it is
 * not cached and goes with its last reference. Returns NULL when out of
 * memory. */
static auth_line_t *auth_get(brw_http_t *h, const char *bearer) {
  size_t blen = strlen(bearer);
  size_t len = AUTH_PREFIX_LEN + blen;
  uint64_t now = uv_now(h->loop);
  for (int i = 0; i < AUTH_CACHE_SIZE; i++) {
    auth_line_t *a = h->auth[i];
    if (a && a->len == len &&
        !memcmp(a->line + AUTH_PREFIX_LEN, bearer, blen)) {
      a->refs++;
      a->used_ms = now;
      return a;
    }
  }
  int slot = -1;
  for (int i = 0; i < AUTH_CACHE_SIZE; i++) {
    auth_line_t *a = h->auth[i];
    if (a && a->refs == 0 && now - a->used_ms >= AUTH_IDLE_MS) {
      auth_free(a);
      h->auth[i] = a = NULL;
      h->stats.auth_cached--;
    }
    if (!a) {
      if (slot < 0)
        slot = i;
    }
  }
  if (slot < 0) {
    for (int i = 0; i < AUTH_CACHE_SIZE; i++) {
      auth_line_t *a = h->auth[i];
      if (a->refs == 0 && (slot < 0 || a->used_ms < h->auth[slot]->used_ms))
        slot = i;
    }
    if (slot >= 0) {
      auth_free(h->auth[slot]);
      h->auth[slot] = NULL;
      h->stats.auth_cached--;
    }
  }
  auth_line_t *a = malloc(sizeof(*a) + len + 1);
  if (!a)
    return NULL;
  memcpy(a->line, auth_prefix, AUTH_PREFIX_LEN);
  memcpy(a->line + AUTH_PREFIX_LEN, bearer, blen + 1);
  a->len = len;
  a->refs = 1;
  a->used_ms = now;
  a->cached = slot >= 0;
  if (a->cached) {
    h->auth[slot] = a;
    h->stats.auth_cached++;
  }
  h->stats.auth_built++;
  return a;
}

static void auth_release(auth_line_t *a) {
  if (a && --a->refs == 0 && !a->cached)
    auth_free(a);
}

/* ---- requests ---- */

/* Frees a request: out of the multi (which may close its connection), its
 * handle back to the pool, its references dropped. */
static void req_free(brw_http_req_t *r) {
  brw_http_t *h = r->h;
  brw_list_remove(&r->node);
  h->nreqs--;
  curl_multi_remove_handle(h->multi, r->easy);
  easy_put(h, r->easy, r->posted);
  auth_release(r->auth);
  if (r->tp_line != r->tp_inline)
    free(r->tp_line);
  free(r->ts_line);
  if (r->body_out) {
    /* A login body holds the API key. */
    brw_secret_wipe(r->body_out, strlen(r->body_out));
    free(r->body_out);
  }
  if (r->buf && r->cap == BODY_BUF && h->nbufs < h->pool_max && !h->closing) {
    /* Recycled: wiped, as a login answer holds a bearer. */
    brw_secret_wipe(r->buf, r->len);
    h->bufs[h->nbufs++] = r->buf;
  } else {
    brw_secret_wipe(r->buf, r->len); /* it may hold a bearer all the same */
    free(r->buf);
  }
  free(r);
}

/* CURLINFO_HTTP_VERSION as 10, 11, 20 or 30; 0 when no response came. */
static int http_version_number(long v) {
  switch (v) {
  case CURL_HTTP_VERSION_1_0:
    return 10;
  case CURL_HTTP_VERSION_1_1:
    return 11;
  case CURL_HTTP_VERSION_2_0:
    return 20;
#ifdef CURL_HTTP_VERSION_3
  case CURL_HTTP_VERSION_3:
    return 30;
#endif
  default:
    return 0;
  }
}

int brw_http_version_parse(const char *s) {
  if (!s || !strcmp(s, "auto"))
    return BRW_HTTP_V_AUTO;
  if (!strcmp(s, "1.1"))
    return BRW_HTTP_V_1_1;
  if (!strcmp(s, "2"))
    return BRW_HTTP_V_2;
  return -1;
}

/* Drains curl's completion messages. Each finished request's callback runs
 * here; callbacks may start or cancel other requests. */
static void check_multi_info(brw_http_t *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    char *priv = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
    brw_http_req_t *r = (brw_http_req_t *)priv;
    CURLcode rc = msg->data.result;
    brw_http_resp_t resp = {0};
    resp.retry_after_ms = r->retry_after_ms;
    if (r->too_large)
      resp.outcome = BRW_HTTP_TOO_LARGE;
    else
      resp.outcome = classify(rc);
    int too_large = resp.outcome == BRW_HTTP_TOO_LARGE;
    resp.error = resp.outcome == BRW_HTTP_OK
                     ? ""
                     : (r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
    if (too_large)
      resp.error = "response body over the size cap";
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
    curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &resp.total_s);
    long ver = 0;
    curl_easy_getinfo(r->easy, CURLINFO_HTTP_VERSION, &ver);
    resp.http_version = http_version_number(ver);
    curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &resp.new_connections);
    resp.tls = r->tls;
    if (resp.new_connections > 0) {
      h->stats.connections += (uint64_t)resp.new_connections;
      if (r->tls)
        h->stats.tls_handshakes += (uint64_t)resp.new_connections;
    }
    resp.body = r->buf ? r->buf : "";
    resp.len = r->len;
    r->cb(&resp, r->arg);
    req_free(r);
  }
}

int brw_http_new(uv_loop_t *loop, const brw_http_opts_t *opts,
                 brw_http_t **out) {
  brw_http_t *h = calloc(1, sizeof(*h));
  if (!h)
    return BRW_ENOMEM;
  h->loop = loop;
  h->opts = *opts;
  h->ca_file = opts->ca_file ? strdup(opts->ca_file) : NULL;
  h->user_agent = strdup(opts->user_agent ? opts->user_agent : "brw");
  h->proxy = opts->proxy ? strdup(opts->proxy) : NULL;
  h->no_proxy = opts->no_proxy ? strdup(opts->no_proxy) : NULL;
  h->proxy_ca_file = opts->proxy_ca_file ? strdup(opts->proxy_ca_file) : NULL;
  h->opts.ca_file = h->ca_file;
  h->opts.user_agent = h->user_agent;
  h->opts.proxy = h->proxy;
  h->opts.no_proxy = h->no_proxy;
  h->opts.proxy_ca_file = h->proxy_ca_file;
  /* Twice the connections: a handle per running transfer, and as many
   * waiting to be reused by the callbacks that start the next ones. */
  h->pool_max =
      opts->max_connections > 0 ? 2 * (size_t)opts->max_connections : 8;
  h->pool = calloc(h->pool_max, sizeof(*h->pool));
  h->bufs = calloc(h->pool_max, sizeof(*h->bufs));
  brw_list_init(&h->reqs);
  int rc = 0;
  if (!h->user_agent || (opts->ca_file && !h->ca_file) ||
      (opts->proxy && !h->proxy) || (opts->no_proxy && !h->no_proxy) ||
      (opts->proxy_ca_file && !h->proxy_ca_file) || !h->pool || !h->bufs)
    rc = BRW_ENOMEM;
  else if (!(h->multi = curl_multi_init()))
    rc = BRW_EHTTP;
  if (rc) {
    free(h->pool);
    free(h->bufs);
    opts_free(h);
    free(h);
    return rc;
  }
  /* One thread uses the share: no lock callbacks. Without it (out of
   * memory) each handle keeps its own session cache, as curl does. */
  h->share = curl_share_init();
  if (h->share &&
      curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) !=
          CURLSHE_OK) {
    curl_share_cleanup(h->share);
    h->share = NULL;
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    opts->max_connections);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    opts->max_connections);
  /* Keep every connection alive between bursts: by default curl caches 4
   * per easy handle added at the moment, so when few transfers are under
   * way it closes idle connections that the next burst opens again. */
  if (opts->max_connections > 0)
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, opts->max_connections);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  if (opts->max_streams > 0)
    curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS,
                      opts->max_streams);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  uv_idle_init(loop, &h->kick);
  h->kick.data = h;
  *out = h;
  return 0;
}

/* Links the request's header list: Accept, then Authorization, traceparent,
 * tracestate and Content-Type when present. The nodes live in r; the strings
 * are constant, cached (r->auth, referenced) or owned by r. */
static struct curl_slist *req_headers(brw_http_req_t *r, int json) {
  size_t n = 0;
  r->hdr[n++].data = hdr_accept;
  if (r->auth)
    r->hdr[n++].data = r->auth->line;
  if (r->tp_line)
    r->hdr[n++].data = r->tp_line;
  if (r->ts_line)
    r->hdr[n++].data = r->ts_line;
  if (json)
    r->hdr[n++].data = hdr_json;
  for (size_t i = 0; i + 1 < n; i++)
    r->hdr[i].next = &r->hdr[i + 1];
  r->hdr[n - 1].next = NULL;
  return r->hdr;
}

brw_http_req_t *brw_http_request(brw_http_t *h, const char *method,
                                 const char *url, const char *bearer,
                                 const char *traceparent,
                                 const char *tracestate, const char *json_body,
                                 brw_http_cb cb, void *arg) {
  if (h->closing)
    return NULL;
  brw_http_req_t *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  r->h = h;
  r->cb = cb;
  r->arg = arg;
  r->retry_after_ms = -1;
  brw_list_init(&r->node);
  r->easy = easy_get(h);
  if (!r->easy) {
    free(r);
    return NULL;
  }
  if (bearer && !(r->auth = auth_get(h, bearer)))
    goto err;
  if (traceparent) {
    static const char name[] = "traceparent: ";
    size_t n = sizeof(name) + strlen(traceparent);
    r->tp_line = n <= sizeof(r->tp_inline) ? r->tp_inline : malloc(n);
    if (!r->tp_line)
      goto err;
    snprintf(r->tp_line, n, "%s%s", name, traceparent);
    if (tracestate && tracestate[0]) {
      static const char ts_name[] = "tracestate: ";
      n = sizeof(ts_name) + strlen(tracestate);
      if (!(r->ts_line = malloc(n)))
        goto err;
      snprintf(r->ts_line, n, "%s%s", ts_name, tracestate);
    }
  }
  if (json_body && !(r->body_out = strdup(json_body)))
    goto err;

  CURL *e = r->easy;
  if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK)
    goto err;
  r->tls = !strncasecmp(url, "https://", 8);
  if (h->opts.version == BRW_HTTP_V_2)
    /* Over plain http:// there is no ALPN: HTTP/2 by prior knowledge. */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     r->tls ? (long)CURL_HTTP_VERSION_2TLS
                            : (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
  /* Where HTTP/2 may come, a request waits for a connection that may
   * multiplex it rather than opening one more while the first one's ALPN
   * is not known yet. Not over plain HTTP/1.1: there it would wait for the
   * first answer to learn that the connection cannot multiplex. */
  curl_easy_setopt(e, CURLOPT_PIPEWAIT,
                   h->opts.version != BRW_HTTP_V_1_1 &&
                           (r->tls || h->opts.version == BRW_HTTP_V_2)
                       ? 1L
                       : 0L);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, req_headers(r, json_body != NULL));
  /* A pooled handle keeps the last request's method: a GET resets it. */
  if (json_body || !strcmp(method, "POST")) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, json_body ? r->body_out : "");
    r->posted = 1;
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }

  if (curl_multi_add_handle(h->multi, e) != CURLM_OK)
    goto err;
  brw_list_insert_tail(&h->reqs, &r->node);
  h->nreqs++;
  h->stats.requests++;
  return r;

err:
  easy_put(h, r->easy, r->posted);
  auth_release(r->auth);
  if (r->tp_line != r->tp_inline)
    free(r->tp_line);
  free(r->ts_line);
  if (r->body_out) {
    brw_secret_wipe(r->body_out, strlen(r->body_out));
    free(r->body_out);
  }
  free(r);
  return NULL;
}

void brw_http_cancel(brw_http_req_t *req) {
  if (req)
    req_free(req);
}

size_t brw_http_active(const brw_http_t *h) {
  return h->nreqs;
}

void brw_http_stats(const brw_http_t *h, brw_http_stats_t *out) {
  *out = h->stats;
  out->easy_idle = h->npool;
}

void brw_http_close(brw_http_t *h, void (*cb)(void *arg), void *arg) {
  h->closing = 1;
  h->close_cb = cb;
  h->close_arg = arg;
  brw_list_t *pos, *tmp;
  brw_list_foreach_safe(pos, tmp, &h->reqs) {
    req_free(brw_list_entry(pos, brw_http_req_t, node));
  }
  /* Closes the cached connections: curl reports each socket to
   * on_curl_closesocket, which closes its context. */
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->npool > 0)
    curl_easy_cleanup(h->pool[--h->npool]);
  /* Every handle is gone now (a closing client pools none), so the share
   * is no longer in use. */
  if (h->share)
    curl_share_cleanup(h->share);
  h->share = NULL;
  while (h->nbufs > 0)
    free(h->bufs[--h->nbufs]);
  for (int i = 0; i < AUTH_CACHE_SIZE; i++) {
    if (h->auth[i])
      auth_free(h->auth[i]);
    h->auth[i] = NULL;
  }
  h->stats.auth_cached = 0;
  /* Contexts curl did not close: sockets it closed itself (not opened
   * through on_curl_opensocket). */
  for (size_t fd = 0; fd < h->nsocks; fd++) {
    if (h->socks[fd])
      sock_ctx_close(h->socks[fd]);
  }
  uv_timer_stop(&h->timer);
  uv_idle_stop(&h->kick);
  h->pending_closes += 2;
  uv_close((uv_handle_t *)&h->timer, on_handle_closed);
  uv_close((uv_handle_t *)&h->kick, on_handle_closed);
}
