/* The application: wires configuration, Kafka, the BSG API client and the
 * campaign scheduler onto one libuv loop, and owns the start/stop order.
 *
 * Data flow: input topic -> event parse (bad -> DLQ) -> campaign table ->
 * timers -> detail fetches -> final report (or DLQ) -> delivery report ->
 * offset completion -> commit. See docs/design.md. */
#ifndef BRW_APP_H
#define BRW_APP_H

#include "brw/config.h"

#include <uv.h>

typedef struct brw_app_s brw_app_t;

/* Creates the application on `loop`. `cfg` is borrowed and must outlive the
 * app. Returns 0, BRW_ECONFIG (errbuf names the key) or another BRW_E*. */
int brw_app_new(uv_loop_t *loop, const brw_config_t *cfg, brw_app_t **out,
                char *errbuf, size_t errlen);

/* Subscribes and starts the signal handlers. Returns 0 or BRW_E*. */
int brw_app_start(brw_app_t *app);

/* Begins an orderly shutdown (what SIGTERM does). */
void brw_app_stop(brw_app_t *app);

/* After uv_run returned: the exit code (0 clean, 1 fatal), and the app is
 * freed. */
int brw_app_free(brw_app_t *app);

#endif
