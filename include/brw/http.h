/* An asynchronous HTTP client: libcurl's multi interface driven by the libuv
 * loop (one uv_poll_t per socket, one uv_timer_t for curl's timeouts).
 *
 * Every callback runs on the loop thread. Connections are kept alive and
 * reused, and so are curl easy handles and a socket's uv_poll_t (for as long
 * as curl keeps the connection) and TLS sessions (one cache for all
 * handles, so a new connection resumes); HTTP/2 is used when a TLS server
 * offers it, unless the options ask for HTTP/1.1.
 * Response bodies are capped: a larger body aborts the transfer. */
#ifndef BRW_HTTP_H
#define BRW_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct brw_http_s brw_http_t;
typedef struct brw_http_req_s brw_http_req_t;

/* The HTTP versions a client asks for (http.version). */
typedef enum {
  BRW_HTTP_V_AUTO = 0, /* HTTP/2 when a TLS server offers it by ALPN */
  BRW_HTTP_V_1_1,      /* HTTP/1.1 only */
  BRW_HTTP_V_2         /* HTTP/2: by ALPN over TLS, by prior knowledge (h2c)
                          over plain http:// */
} brw_http_version_t;

typedef struct {
  long max_connections; /* total and per host */
  uint64_t timeout_ms;  /* whole transfer */
  uint64_t max_response; /* body cap in bytes */
  const char *ca_file;   /* NULL: the system's CA bundle */
  const char *user_agent;
  brw_http_version_t version;
  long max_streams;          /* per HTTP/2 connection; 0: curl's default */
  const char *proxy;         /* NULL: curl's environment variables */
  const char *no_proxy;      /* NULL: NO_PROXY */
  const char *proxy_ca_file; /* NULL: the system's CA bundle */
} brw_http_opts_t;

typedef enum {
  BRW_HTTP_OK = 0,        /* a response arrived (any status) */
  BRW_HTTP_CONNECT,       /* connection refused / unreachable */
  BRW_HTTP_DNS,           /* name resolution failed */
  BRW_HTTP_TLS,           /* TLS handshake or verification failed */
  BRW_HTTP_TIMEOUT,       /* timed out */
  BRW_HTTP_TOO_LARGE,     /* body over the cap, transfer aborted */
  BRW_HTTP_TRANSPORT      /* any other transport error */
} brw_http_outcome_t;

typedef struct {
  brw_http_outcome_t outcome;
  const char *error;      /* transport error text, "" when OK */
  long status;            /* HTTP status, 0 without a response */
  const char *body;       /* borrowed for the callback's duration; NUL-ended */
  size_t len;
  int64_t retry_after_ms; /* from Retry-After (seconds or HTTP date); -1 */
  double total_s;         /* transfer time */
  int http_version;       /* of the response: 10, 11, 20, 30; 0 without */
  long new_connections;   /* connections this request had to open */
  int tls;                /* over https:// (each new connection: a TLS
                             handshake, full or resumed) */
} brw_http_resp_t;

/* Runs once per request that was started, unless it was canceled. The
 * request is freed after the callback returns. */
typedef void (*brw_http_cb)(const brw_http_resp_t *resp, void *arg);

/* Creates a client on `loop`. Returns 0 and *out, or BRW_ENOMEM/BRW_EHTTP.
 * Options are copied. */
int brw_http_new(uv_loop_t *loop, const brw_http_opts_t *opts,
                 brw_http_t **out);

/* Starts a request. `method` is "GET" or "POST"; `bearer` (may be NULL) is
 * sent as "Authorization: Bearer ..."; `traceparent` (may be NULL) as the W3C
 * header, and `tracestate` (may be NULL; only with a traceparent) as the
 * W3C tracestate header; `json_body` (may be NULL) is copied and sent with
 * content type application/json. Returns a handle that stays valid until the
 * callback has run or brw_http_cancel was called; NULL when the request cannot
 * be started (then the callback never runs). */
brw_http_req_t *brw_http_request(brw_http_t *h, const char *method,
                                 const char *url, const char *bearer,
                                 const char *traceparent,
                                 const char *tracestate, const char *json_body,
                                 brw_http_cb cb, void *arg);

/* Aborts a request; its callback never runs. */
void brw_http_cancel(brw_http_req_t *req);

/* Number of requests in flight. */
size_t brw_http_active(const brw_http_t *h);

/* Cancels every request (no callbacks), releases curl (pooled handles, kept
 * connections and their sockets) and closes the loop handles. Not to be
 * called from a response callback of the same client; `cb` runs (with
 * `arg`) after the last handle is closed, and frees nothing of the
 * caller's. The client is freed before cb runs. */
void brw_http_close(brw_http_t *h, void (*cb)(void *arg), void *arg);

/* Counters of the client's resource reuse, for tests and metrics. */
typedef struct {
  uint64_t requests;       /* requests started */
  uint64_t easy_created;   /* curl easy handles created */
  uint64_t easy_reused;    /* requests that got a pooled handle */
  size_t easy_idle;        /* finished handles kept for reuse now */
  uint64_t sockets_opened; /* sockets curl opened (connection attempts) */
  uint64_t sockets_closed; /* of those, closed again */
  size_t polls;            /* uv_poll_t handles open now */
  uint64_t poll_changes;   /* uv_poll_start/stop calls (each an epoll_ctl) */
  uint64_t idle_wakeups;   /* events on kept-alive sockets no transfer used */
  uint64_t auth_built;     /* Authorization lines formatted */
  size_t auth_cached;      /* Authorization lines cached now */
  uint64_t connections;    /* connections requests had to open */
  uint64_t tls_handshakes; /* of those, to https:// URLs */
} brw_http_stats_t;

/* The value of http.version ("auto", "1.1", "2"; NULL: auto). Returns -1
 * for anything else. */
int brw_http_version_parse(const char *s);

/* Fills *out with the client's counters. */
void brw_http_stats(const brw_http_t *h, brw_http_stats_t *out);

/* Parses a Retry-After value: delta seconds or an HTTP date. Returns
 * milliseconds from `now_ms` (never negative) or -1 when unparseable. */
int64_t brw_http_parse_retry_after(const char *value, int64_t now_ms);

#endif
