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

struct brw_http_s {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  brw_http_opts_t opts;
  char *ca_file;
  char *user_agent;
  brw_list_t reqs;    /* in-flight requests */
  brw_list_t sockets; /* socket contexts with an open uv_poll_t */
  size_t nreqs;
  int closing;
  int pending_closes; /* uv handles whose close callback has not run yet */
  void (*close_cb)(void *);
  void *close_arg;
};

struct brw_http_req_s {
  brw_list_t node;
  brw_http_t *h;
  CURL *easy;
  struct curl_slist *headers;
  char *body_out; /* request body, owned */
  char *buf;      /* response body, owned */
  size_t len;
  size_t cap;
  int too_large;
  int64_t retry_after_ms;
  brw_http_cb cb;
  void *arg;
  char errbuf[CURL_ERROR_SIZE];
};

typedef struct {
  brw_list_t node;
  uv_poll_t poll;
  curl_socket_t fd;
  brw_http_t *h;
} sock_ctx_t;

static void check_multi_info(brw_http_t *h);

static void maybe_finish_close(brw_http_t *h) {
  if (!h->closing || h->pending_closes > 0)
    return;
  void (*cb)(void *) = h->close_cb;
  void *arg = h->close_arg;
  free(h->ca_file);
  free(h->user_agent);
  free(h);
  if (cb)
    cb(arg);
}

static void on_handle_closed(uv_handle_t *handle) {
  brw_http_t *h = handle->data;
  h->pending_closes--;
  maybe_finish_close(h);
}

static void on_sock_closed(uv_handle_t *handle) {
  sock_ctx_t *s = handle->data;
  brw_http_t *h = s->h;
  free(s);
  h->pending_closes--;
  maybe_finish_close(h);
}

static void sock_ctx_close(sock_ctx_t *s) {
  brw_list_remove(&s->node);
  uv_poll_stop(&s->poll);
  s->h->pending_closes++;
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* uv_poll callback: the socket is readable/writable (or failed). A poll error
 * is handed to curl as CURL_CSELECT_ERR so that the transfer fails instead
 * of hanging. */
static void on_poll(uv_poll_t *poll, int status, int events) {
  sock_ctx_t *s = poll->data;
  brw_http_t *h = s->h;
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
  CURLMcode mc = curl_multi_socket_action(h->multi, s->fd, flags, &running);
  if (mc != CURLM_OK)
    brw_log_error("curl_multi_socket_action: %s", curl_multi_strerror(mc));
  check_multi_info(h);
}

/* CURLMOPT_SOCKETFUNCTION: curl says which events it wants on a socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                          void *socketp) {
  brw_http_t *h = userp;
  sock_ctx_t *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(h->multi, fd, NULL);
      sock_ctx_close(s);
    }
    return 0;
  }
  if (!s) {
    s = calloc(1, sizeof(*s));
    if (!s)
      return -1;
    s->fd = fd;
    s->h = h;
    if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    brw_list_init(&s->node);
    brw_list_insert_tail(&h->sockets, &s->node);
    curl_multi_assign(h->multi, fd, s);
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
    events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
    events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

static void on_timeout(uv_timer_t *t) {
  brw_http_t *h = t->data;
  int running = 0;
  CURLMcode mc =
      curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  if (mc != CURLM_OK)
    brw_log_error("curl_multi_socket_action: %s", curl_multi_strerror(mc));
  check_multi_info(h);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as possible",
 * which a zero uv timer gives on the next loop iteration (curl forbids
 * calling socket_action from inside this callback). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  brw_http_t *h = userp;
  if (timeout_ms < 0)
    uv_timer_stop(&h->timer);
  else
    uv_timer_start(&h->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
  brw_http_req_t *r = userdata;
  size_t n = size * nmemb;
  if (r->len + n > r->h->opts.max_response) {
    r->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (r->len + n + 1 > r->cap) {
    size_t ncap = r->cap ? r->cap : 4096;
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
  int64_t d = (int64_t)t * 1000 - now_ms;
  return d < 0 ? 0 : d;
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

static void req_free(brw_http_req_t *r) {
  brw_list_remove(&r->node);
  r->h->nreqs--;
  curl_multi_remove_handle(r->h->multi, r->easy);
  curl_easy_cleanup(r->easy);
  curl_slist_free_all(r->headers);
  free(r->body_out);
  free(r->buf);
  free(r);
}

/* Drains curl's completion messages. Each finished request's callback runs
 * here; callbacks may start or cancel other requests. */
static void check_multi_info(brw_http_t *h) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(h->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    brw_http_req_t *r = NULL;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
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
  h->opts.ca_file = h->ca_file;
  h->opts.user_agent = h->user_agent;
  brw_list_init(&h->reqs);
  brw_list_init(&h->sockets);
  h->multi = curl_multi_init();
  if (!h->multi) {
    free(h->ca_file);
    free(h->user_agent);
    free(h);
    return BRW_EHTTP;
  }
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                    opts->max_connections);
  curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                    opts->max_connections);
  curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
  uv_timer_init(loop, &h->timer);
  h->timer.data = h;
  *out = h;
  return 0;
}

brw_http_req_t *brw_http_request(brw_http_t *h, const char *method,
                                 const char *url, const char *bearer,
                                 const char *traceparent,
                                 const char *json_body, brw_http_cb cb,
                                 void *arg) {
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
  r->easy = curl_easy_init();
  if (!r->easy) {
    free(r);
    return NULL;
  }
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->opts.timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->opts.timeout_ms);
  curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                   (curl_off_t)h->opts.max_response);
  if (h->ca_file)
    curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);

  struct curl_slist *hd = curl_slist_append(NULL, "Accept: application/json");
  char line[4096];
  if (bearer) {
    snprintf(line, sizeof(line), "Authorization: Bearer %s", bearer);
    hd = curl_slist_append(hd, line);
  }
  if (traceparent) {
    snprintf(line, sizeof(line), "traceparent: %s", traceparent);
    hd = curl_slist_append(hd, line);
  }
  if (json_body) {
    hd = curl_slist_append(hd, "Content-Type: application/json");
    r->body_out = strdup(json_body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body_out);
  }
  if (!strcmp(method, "POST") && !json_body)
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
  /* Wiping the line keeps a bearer from lingering on the stack. */
  memset(line, 0, sizeof(line));
  r->headers = hd;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);

  if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
    curl_easy_cleanup(e);
    curl_slist_free_all(hd);
    free(r->body_out);
    free(r);
    return NULL;
  }
  brw_list_insert_tail(&h->reqs, &r->node);
  h->nreqs++;
  return r;
}

void brw_http_cancel(brw_http_req_t *req) {
  if (req)
    req_free(req);
}

size_t brw_http_active(const brw_http_t *h) {
  return h->nreqs;
}

void brw_http_close(brw_http_t *h, void (*cb)(void *arg), void *arg) {
  brw_list_t *pos, *tmp;
  brw_list_foreach_safe(pos, tmp, &h->reqs) {
    req_free(brw_list_entry(pos, brw_http_req_t, node));
  }
  h->closing = 1;
  h->close_cb = cb;
  h->close_arg = arg;
  /* curl_multi_cleanup may still report sockets as removed; those contexts
   * close through the socket callback, the rest are closed below. */
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  brw_list_foreach_safe(pos, tmp, &h->sockets) {
    sock_ctx_close(brw_list_entry(pos, sock_ctx_t, node));
  }
  uv_timer_stop(&h->timer);
  h->pending_closes++;
  uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
