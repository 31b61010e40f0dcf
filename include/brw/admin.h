/* The admin HTTP server on `metrics.listen` (SPEC §7): GET /metrics
 * (Prometheus text format 0.0.4), /healthz and /readyz.
 *
 * libmicrohttpd runs without a thread of its own, driven by the libuv loop:
 * MHD_USE_EPOLL in "external" mode, its epoll fd watched by a uv_poll_t and
 * MHD_run() called when it is readable; a uv_timer_t follows
 * MHD_get_timeout() (connection timeouts, data MHD already buffered). So
 * every request handler, and the readiness callback, runs ON THE LOOP
 * THREAD, and reads the metrics registry without locks. Answers are small
 * and built in memory; nothing blocks the loop.
 *
 *   GET|HEAD /metrics  200 text/plain; version=0.0.4
 *   GET|HEAD /healthz  200 "ok" (served by the loop: a stuck loop answers
 *                      nothing, which is what a liveness probe must see),
 *                      or 503 "starved: ..." when the liveness callback
 *                      says the loop runs but is starved
 *   GET|HEAD /readyz   200 or 503, {"ready":bool,"kafka":bool,
 *                      "topic":bool,"assigned":bool,"accounts":bool,
 *                      "starting":bool,"stopping":bool,"blocked":{...}}
 *   other paths        404
 *   other methods      405 (Allow: GET, HEAD)
 *
 * Requests are capped (head at 16 KiB, else 431; 32 connections; 10 s idle
 * timeout). Bodies are never read: a request with one (or another method)
 * is answered as soon as its head is parsed and its connection closed;
 * GET and HEAD without a body keep the connection alive for the next
 * scrape. */
#ifndef BRW_ADMIN_H
#define BRW_ADMIN_H

#include "brw/metrics.h"

#include <jansson.h>
#include <stddef.h>
#include <uv.h>

typedef struct brw_admin_s brw_admin_t;

/* What /readyz reports (SPEC §7). The worker is ready when kafka && topic
 * && assigned && accounts && !stopping && !not_ready. */
typedef struct {
  int kafka;     /* at least one broker connected */
  int topic;     /* the input topic exists */
  int assigned;  /* the group is joined: partitions assigned, or none
                    because the group has more members than partitions */
  int accounts;  /* every account holds a usable bearer or is logging in
                    successfully */
  int starting;  /* not known yet whether the input topic exists, or the
                    group not joined yet since the start: not ready, and
                    no reason may be named yet (informational) */
  int stopping;  /* shutdown began: never ready */
  int not_ready; /* another reason in `blocked` makes the worker not ready */
  /* The reasons the worker cannot make progress that hold now, as
   * brw_health_json gives them: {"<reason>": {"ready": bool, "seconds": N,
   * "detail": "..."}}. A new reference the server takes (it frees it); NULL
   * gives an empty object. */
  json_t *blocked;
} brw_admin_readiness_t;

/* Fills *out (zeroed before the call) for one /readyz request. Runs on the
 * loop thread, inside the admin server's request handling: it must not
 * block, and must not close the admin server. */
typedef void (*brw_admin_ready_cb)(void *ctx, brw_admin_readiness_t *out);

/* Answers /healthz: returns 1 when the loop is alive and not starved; 0 when
 * it is starved, with one line saying why in why[len] (NUL-terminated).
 * Same rules as the readiness callback. */
typedef int (*brw_admin_live_cb)(void *ctx, char *why, size_t len);

/* Starts serving on `listen`, "HOST:PORT" ("[v6addr]:PORT" for IPv6; an
 * empty host or "*" binds every interface; port 0 picks a free port, see
 * brw_admin_port). The caller does not call this when metrics.listen is ""
 * or "off". Requests are served as soon as the loop runs.
 *
 * `m` (borrowed) is rendered for /metrics and must outlive the server.
 * `ready_cb` (may be NULL: always ready) and `ctx` answer /readyz.
 *
 * Returns 0 and *out, or:
 *   BRW_ECONFIG  `listen` is not HOST:PORT or its host does not resolve
 *                (errbuf: "metrics.listen: ...");
 *   BRW_EIO      the address cannot be bound or the server not started
 *                (errbuf names the address and the system's reason);
 *   BRW_EINVAL   a NULL loop, listen or m; BRW_ENOMEM.
 * `errbuf` (may be NULL) gets one line; on failure nothing is left open.
 * Resolving a host name blocks briefly: call it at start-up. */
int brw_admin_new(uv_loop_t *loop, const char *listen, brw_metrics_t *m,
                  brw_admin_ready_cb ready_cb, void *ctx, brw_admin_t **out,
                  char *errbuf, size_t errlen);

/* Sets the liveness callback of /healthz (NULL: always "ok"). */
void brw_admin_set_live_cb(brw_admin_t *a, brw_admin_live_cb cb, void *ctx);

/* The bound TCP port (the real one when 0 was asked for). */
int brw_admin_port(const brw_admin_t *a);

/* Stops serving at once (the listening socket and every connection are
 * closed, MHD is stopped), closes the loop handles and frees the server;
 * `cb` (may be NULL) runs with `arg` after the last handle is closed. Not to
 * be called from the readiness callback. */
void brw_admin_close(brw_admin_t *a, void (*cb)(void *arg), void *arg);

#endif
