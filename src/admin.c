/* The admin HTTP server (see include/brw/admin.h): libmicrohttpd in
 * external-epoll mode, driven by the libuv loop. Everything here runs on the
 * loop thread. */
#include "brw/admin.h"
#include "brw/error.h"
#include "brw/log.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* Limits: a scrape is one small GET; anything bigger is not for us. */
#define ADMIN_MAX_CONNECTIONS 32u
#define ADMIN_IDLE_TIMEOUT_S 10u
#define ADMIN_CONN_MEMORY ((size_t)16 * 1024) /* request head cap */
#define ADMIN_BACKLOG 64
/* MHD's log lines are mostly about misbehaving clients: one per interval. */
#define ADMIN_LOG_INTERVAL_MS 10000

#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_JSON "application/json"

struct brw_admin_s {
  uv_loop_t *loop;
  uv_poll_t poll;   /* MHD's epoll fd */
  uv_timer_t timer; /* MHD_get_timeout(), when it is > 0 ms */
  uv_idle_t kick;   /* MHD_get_timeout() of 0 ms: the next loop iteration */
  struct MHD_Daemon *daemon;
  brw_metrics_t *m; /* borrowed */
  brw_admin_ready_cb ready_cb;
  void *ctx;
  brw_admin_live_cb live_cb;
  void *live_ctx;
  int port;
  int closing;
  int pending; /* handles not yet closed */
  void (*close_cb)(void *arg);
  void *close_arg;
  char listen[256];
  char last_error[256]; /* MHD's last log line, for start-up errors */
  uint64_t logged_ms;   /* loop time of the last line logged */
  unsigned suppressed;  /* lines not logged since */
};

static void fail(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *errbuf, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (!errbuf || errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(errbuf, errlen, fmt, ap);
  va_end(ap);
}

/* ---- answers ---- */

/* Queues one answer. `body` is copied unless `owned`, in which case MHD
 * takes it (and frees it with free()), even when this fails. */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status,
                             const char *ctype, char *body, size_t len,
                             int owned) {
  struct MHD_Response *resp;
  enum MHD_Result ret;
  resp = MHD_create_response_from_buffer(
      len, body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_MUST_COPY);
  if (!resp) {
    if (owned)
      free(body);
    return MHD_NO; /* MHD closes the connection */
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  ret = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status,
                                  const char *text) {
  return reply(conn, status, CT_TEXT, (char *)text, strlen(text), 0);
}

static enum MHD_Result serve_metrics(brw_admin_t *a,
                                     struct MHD_Connection *conn) {
  size_t len = 0;
  char *text = brw_metrics_render(a->m, &len);
  if (!text)
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  return reply(conn, MHD_HTTP_OK, CT_METRICS, text, len, 1);
}

/* /readyz: the booleans, then the reasons that hold. Built with jansson,
 * in this order (insertion order is kept). */
static enum MHD_Result serve_ready(brw_admin_t *a,
                                   struct MHD_Connection *conn) {
  brw_admin_readiness_t r;
  memset(&r, 0, sizeof(r));
  if (a->ready_cb)
    a->ready_cb(a->ctx, &r);
  else
    r.kafka = r.topic = r.assigned = r.accounts = 1;
  int ready = r.kafka && r.topic && r.assigned && r.accounts && !r.stopping &&
              !r.not_ready;
  json_t *o = json_pack(
      "{sb sb sb sb sb sb sb}", "ready", ready, "kafka", r.kafka != 0, "topic",
      r.topic != 0, "assigned", r.assigned != 0, "accounts", r.accounts != 0,
      "starting", r.starting != 0, "stopping", r.stopping != 0);
  if (o)
    json_object_set_new(o, "blocked",
                        r.blocked && json_is_object(r.blocked)
                            ? json_incref(r.blocked)
                            : json_object());
  json_decref(r.blocked);
  char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  if (!body)
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  size_t n = strlen(body);
  char *line = realloc(body, n + 2);
  if (!line) {
    free(body);
    return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  line[n] = '\n';
  line[n + 1] = '\0';
  return reply(conn, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
               CT_JSON, line, n + 1, 1);
}

/* /healthz: "ok" unless the liveness callback says the loop is starved. */
static enum MHD_Result serve_health(brw_admin_t *a,
                                    struct MHD_Connection *conn) {
  char why[200], body[256];
  why[0] = '\0';
  if (!a->live_cb || a->live_cb(a->live_ctx, why, sizeof(why)))
    return reply_text(conn, MHD_HTTP_OK, "ok\n");
  snprintf(body, sizeof(body), "starved: %s\n", why);
  return reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE, CT_TEXT, body, strlen(body),
               0);
}

/* Whether the request announces a body (which we never read). */
static int has_body(struct MHD_Connection *conn) {
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_CONTENT_LENGTH) ||
         MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                     MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* MHD's access handler, on the loop thread (inside MHD_run).
 *
 * A body is never read. A GET or HEAD without one is answered on MHD's
 * second call, once the request is complete, so the connection can be kept
 * alive for the next scrape. Anything else (another method, or a body) is
 * answered on the first call, as soon as the head is parsed: MHD then sends
 * the answer without reading the body and closes the connection. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  static int started; /* marks a request whose head was seen */
  brw_admin_t *a = cls;
  int get = !strcmp(method, MHD_HTTP_METHOD_GET) ||
            !strcmp(method, MHD_HTTP_METHOD_HEAD);
  if (*upload_data_size != 0) {
    /* Only reachable if an answer could not be queued: drop the data. */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (!*con_cls && get && !has_body(conn)) {
    *con_cls = &started;
    return MHD_YES;
  }
  if (!get)
    return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "method not allowed\n");
  if (!strcmp(url, "/metrics"))
    return serve_metrics(a, conn);
  if (!strcmp(url, "/healthz"))
    return serve_health(a, conn);
  if (!strcmp(url, "/readyz"))
    return serve_ready(a, conn);
  return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* MHD's error log (loop thread, or the caller's thread during start-up).
 * The last line is kept for start-up errors; lines are logged at most once
 * per ADMIN_LOG_INTERVAL_MS, since a client can provoke them at will. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
  brw_admin_t *a = cls;
  uint64_t now = uv_now(a->loop);
  size_t n;
  vsnprintf(a->last_error, sizeof(a->last_error), fmt, ap);
  n = strlen(a->last_error);
  while (n > 0 && (a->last_error[n - 1] == '\n' || a->last_error[n - 1] == ' '))
    a->last_error[--n] = '\0';
  if (a->logged_ms && now - a->logged_ms < ADMIN_LOG_INTERVAL_MS) {
    a->suppressed++;
    return;
  }
  brw_logj(BRW_LOG_WARN,
           json_pack("{s:s s:i}", "listen", a->listen, "suppressed",
                     (int)a->suppressed),
           "admin server: %s", a->last_error);
  a->logged_ms = now ? now : 1;
  a->suppressed = 0;
}

/* ---- driving MHD from the loop ---- */

static void on_timer(uv_timer_t *t);
static void on_kick(uv_idle_t *idle);

/* Re-arms the timer from MHD_get_timeout(): MHD must run again within that
 * time even without socket activity (connection timeouts, and data it has
 * already read but not processed, for which it answers 0). A 0 ms answer
 * starts the idle handle instead of a 0 ms timer: libuv 1.44 runs a timer
 * restarted with 0 ms from its own callback again in the same pass of the
 * timer phase, so a client that keeps MHD busy would keep the loop from
 * everything else. The idle handle runs once per iteration and keeps the
 * poll phase from blocking. */
static void schedule(brw_admin_t *a) {
  MHD_UNSIGNED_LONG_LONG ms;
  if (MHD_get_timeout(a->daemon, &ms) != MHD_YES) {
    uv_timer_stop(&a->timer);
    uv_idle_stop(&a->kick);
  } else if (ms == 0) {
    uv_timer_stop(&a->timer);
    uv_idle_start(&a->kick, on_kick);
  } else {
    uv_idle_stop(&a->kick);
    uv_timer_start(&a->timer, on_timer, (uint64_t)ms, 0);
  }
}

static void drive(brw_admin_t *a) {
  if (a->closing)
    return;
  MHD_run(a->daemon);
  schedule(a);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  /* An error on the epoll fd itself is not expected; MHD_run finds out
   * what is wrong with its sockets on its own. */
  drive(p->data);
}

static void on_timer(uv_timer_t *t) {
  drive(t->data);
}

static void on_kick(uv_idle_t *idle) {
  drive(idle->data);
}

static void on_handle_closed(uv_handle_t *h) {
  brw_admin_t *a = h->data;
  void (*cb)(void *);
  void *arg;
  if (--a->pending > 0)
    return;
  cb = a->close_cb;
  arg = a->close_arg;
  free(a);
  if (cb)
    cb(arg);
}

/* ---- start-up ---- */

/* Splits "HOST:PORT" / "[V6]:PORT". An empty host or "*" gives host "".
 * Returns 0 or -1. */
static int split_listen(const char *s, char *host, size_t hlen, char *port,
                        size_t plen) {
  const char *colon, *h = s;
  size_t n;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':' || end == s + 1)
      return -1;
    h = s + 1;
    n = (size_t)(end - h);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return -1;
    n = (size_t)(colon - s);
    if (memchr(s, ':', n)) /* an IPv6 address needs brackets */
      return -1;
  }
  if (n >= hlen)
    return -1;
  memcpy(host, h, n);
  host[n] = '\0';
  if (!strcmp(host, "*"))
    host[0] = '\0';
  n = strlen(colon + 1);
  if (n == 0 || n > 5 || n >= plen || strspn(colon + 1, "0123456789") != n ||
      atol(colon + 1) > 65535)
    return -1;
  memcpy(port, colon + 1, n + 1);
  return 0;
}

/* Binds and listens on the first address of `ai` that works. Returns the
 * socket (non-blocking, close-on-exec) or -1 with errno set. */
static int bind_any(const struct addrinfo *ai, int *family) {
  int err = EADDRNOTAVAIL;
  for (; ai; ai = ai->ai_next) {
    int one = 1;
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    /* Restarts must not wait for TIME_WAIT; on Linux this still refuses a
     * port that another socket listens on. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        listen(fd, ADMIN_BACKLOG) == 0) {
      *family = ai->ai_family;
      return fd;
    }
    err = errno;
    close(fd);
  }
  errno = err;
  return -1;
}

static int bound_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
    return -1;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET6)
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  return -1;
}

/* Closes `fd` if it is still the socket identified by `st`: MHD may or may
 * not have closed a listen socket it was given when it fails to start, and
 * the number may already name another file. */
static void close_if_same(int fd, const struct stat *st) {
  struct stat now;
  if (fstat(fd, &now) == 0 && now.st_dev == st->st_dev &&
      now.st_ino == st->st_ino)
    close(fd);
}

int brw_admin_new(uv_loop_t *loop, const char *listen, brw_metrics_t *m,
                  brw_admin_ready_cb ready_cb, void *ctx, brw_admin_t **out,
                  char *errbuf, size_t errlen) {
  char host[256], port[8];
  struct addrinfo hints, *ai = NULL;
  const union MHD_DaemonInfo *info;
  struct stat st;
  brw_admin_t *a = NULL;
  int fd = -1, family = AF_INET, rc, gai;
  unsigned flags;

  fail(errbuf, errlen, "%s", "");
  if (!loop || !listen || !m || !out) {
    fail(errbuf, errlen, "metrics.listen: invalid arguments");
    return BRW_EINVAL;
  }
  if (split_listen(listen, host, sizeof(host), port, sizeof(port)) != 0) {
    fail(errbuf, errlen, "metrics.listen: \"%s\" is not HOST:PORT", listen);
    return BRW_ECONFIG;
  }
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
  if (gai != 0 || !ai) {
    fail(errbuf, errlen, "metrics.listen: cannot resolve \"%s\": %s", host,
         gai_strerror(gai));
    return BRW_ECONFIG;
  }
  fd = bind_any(ai, &family);
  freeaddrinfo(ai);
  if (fd < 0) {
    fail(errbuf, errlen, "metrics.listen: cannot listen on %s: %s", listen,
         strerror(errno));
    return BRW_EIO;
  }
  if (fstat(fd, &st) != 0) {
    fail(errbuf, errlen, "metrics.listen: %s: %s", listen, strerror(errno));
    close(fd);
    return BRW_EIO;
  }

  if (!(a = calloc(1, sizeof(*a)))) {
    close(fd);
    fail(errbuf, errlen, "metrics.listen: out of memory");
    return BRW_ENOMEM;
  }
  a->loop = loop;
  a->m = m;
  a->ready_cb = ready_cb;
  a->ctx = ctx;
  a->port = bound_port(fd);
  snprintf(a->listen, sizeof(a->listen), "%s", listen);

  /* External epoll mode: no thread of MHD's own. From here on MHD owns the
   * listening socket and closes it in MHD_stop_daemon. */
  flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  if (family == AF_INET6)
    flags |= MHD_USE_IPv6;
  a->daemon = MHD_start_daemon(
      flags, 0, NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, a, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
      MHD_OPTION_CONNECTION_LIMIT, ADMIN_MAX_CONNECTIONS,
      MHD_OPTION_CONNECTION_TIMEOUT, ADMIN_IDLE_TIMEOUT_S,
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, ADMIN_CONN_MEMORY, MHD_OPTION_END);
  if (!a->daemon) {
    fail(errbuf, errlen, "metrics.listen: cannot start the server on %s: %s",
         listen, a->last_error[0] ? a->last_error : "libmicrohttpd failed");
    close_if_same(fd, &st);
    free(a);
    return BRW_EIO;
  }
  info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_EPOLL_FD);
  if (!info || info->epoll_fd < 0 ||
      (rc = uv_poll_init(loop, &a->poll, info->epoll_fd)) != 0) {
    fail(errbuf, errlen, "metrics.listen: cannot watch the server on %s",
         listen);
    MHD_stop_daemon(a->daemon);
    free(a);
    return BRW_EIO;
  }
  uv_timer_init(loop, &a->timer);
  uv_idle_init(loop, &a->kick);
  a->poll.data = a;
  a->timer.data = a;
  a->kick.data = a;
  if ((rc = uv_poll_start(&a->poll, UV_READABLE, on_poll)) != 0) {
    fail(errbuf, errlen, "metrics.listen: cannot watch the server on %s: %s",
         listen, uv_strerror(rc));
    /* Both handles are initialized: they free `a` once closed. */
    brw_admin_close(a, NULL, NULL);
    return BRW_EIO;
  }
  schedule(a);
  brw_logj(BRW_LOG_INFO,
           json_pack("{s:s s:i}", "listen", listen, "port", a->port),
           "admin server listening (/metrics, /healthz, /readyz)");
  *out = a;
  return 0;
}

void brw_admin_set_live_cb(brw_admin_t *a, brw_admin_live_cb cb, void *ctx) {
  if (!a)
    return;
  a->live_cb = cb;
  a->live_ctx = ctx;
}

int brw_admin_port(const brw_admin_t *a) {
  return a ? a->port : -1;
}

void brw_admin_close(brw_admin_t *a, void (*cb)(void *arg), void *arg) {
  if (!a || a->closing)
    return;
  a->closing = 1;
  a->close_cb = cb;
  a->close_arg = arg;
  a->pending = 3;
  /* uv_close stops watching the epoll fd at once (libuv: the fd may be
   * closed after uv_close), so MHD may close it right away; stopping MHD
   * now, not in the close callback, frees the port immediately and makes
   * sure no request is served after close was called. */
  uv_close((uv_handle_t *)&a->poll, on_handle_closed);
  uv_close((uv_handle_t *)&a->timer, on_handle_closed);
  uv_close((uv_handle_t *)&a->kick, on_handle_closed);
  MHD_stop_daemon(a->daemon);
  a->daemon = NULL;
}
