/* bsg-report-worker: arguments, configuration, the loop, the exit code.
 *
 * Exit codes: 0 after a clean shutdown, 1 on a runtime fatal error, 2 on a
 * configuration error (one line naming the key), 128+N when a second signal
 * N cut the shutdown short.
 *
 * Secrets: once the configuration is loaded, every secret it holds is pinned
 * in the log redactor and the environment variables that held them are
 * wiped. Core dumps are left to the operator (they hold the keys, as any
 * memory of the process does): systemd's LimitCORE=0, or ulimit -c 0;
 * prctl(PR_SET_DUMPABLE, 0) was not used because it also stops same-user
 * ptrace, so perf and gdb profiling (docs/PERFORMANCE.md) would need root. */
#include "brw/versions.h"
#include "brw/app.h"
#include "brw/config.h"
#include "brw/error.h"
#include "brw/log.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

extern char **environ;

int main(int argc, char **argv) {
  brw_config_t cfg;
  brw_config_action_t action = BRW_CONFIG_RUN;
  char err[512] = "";
  brw_config_init(&cfg);
  if (brw_config_load(&cfg, argc, argv, environ, &action, err, sizeof(err)) !=
      0) {
    /* The message never quotes a secret; as a second line of defence, what
     * was loaded before the error is redacted from it. */
    brw_config_pin_secrets(&cfg);
    brw_log_redact_into(err, err, sizeof(err));
    fprintf(stderr, "bsg-report-worker: configuration error: %s\n", err);
    brw_config_free(&cfg);
    return 2;
  }
  switch (action) {
  case BRW_CONFIG_HELP:
    brw_config_usage(stdout, argv[0]);
    brw_config_free(&cfg);
    return 0;
  case BRW_CONFIG_VERSION: {
    /* As `curl --version`: the program, then the libraries it runs with. */
    char libs[256];
    brw_versions_line(libs, sizeof(libs));
    printf("bsg-report-worker %s %s\n", BRW_VERSION, libs);
    brw_config_free(&cfg);
    return 0;
  }
  case BRW_CONFIG_CHECK:
    brw_config_print(&cfg, stdout);
    brw_config_free(&cfg);
    return 0;
  case BRW_CONFIG_RUN:
    break;
  }

  /* Every secret is redacted from the log from the first line on, and the
   * environment no longer holds any once the configuration has its copies
   * (librdkafka may start a shell for sasl.kerberos.kinit.cmd). */
  brw_config_pin_secrets(&cfg);
  brw_config_scrub_env(environ);
  /* Each account holds a bearer and, around a refresh, the one before it:
   * room for a few per account on top of the default, so that the bearers
   * of many accounts do not push each other out of the redactor. */
  brw_log_set_rotating_max(BRW_LOG_MAX_ROTATING + 4 * cfg.naccounts);

  brw_log_level_t level = BRW_LOG_INFO;
  brw_log_format_t format = BRW_LOG_JSON;
  brw_log_level_parse(cfg.log_level, &level);
  brw_log_format_parse(cfg.log_format, &format);
  brw_log_setup(level, format, "bsg-report-worker");

  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    brw_log_error("curl_global_init failed");
    brw_config_free(&cfg);
    return 1;
  }

  uv_loop_t loop;
  uv_loop_init(&loop);
  brw_app_t *app = NULL;
  int code = 0;
  int r = brw_app_new(&loop, &cfg, &app, err, sizeof(err));
  if (r == BRW_ECONFIG) {
    /* librdkafka's text may quote a value (secrets are pinned above). */
    brw_log_redact_into(err, err, sizeof(err));
    fprintf(stderr, "bsg-report-worker: configuration error: %s\n", err);
    code = 2;
  } else if (r != 0) {
    brw_log_error("cannot start: %s%s%s", brw_strerror(r), err[0] ? ": " : "",
                  err);
    code = 1;
  } else if ((r = brw_app_start(app)) != 0) {
    brw_log_error("cannot start: %s", brw_strerror(r));
    brw_app_stop(app);
    code = 1;
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int app_code = app ? brw_app_free(app) : 0;
  if (code == 0)
    code = app_code;
  int lr = uv_loop_close(&loop);
  if (lr != 0) {
    brw_log_error("loop did not close cleanly: %s", uv_strerror(lr));
    if (code == 0)
      code = 1;
  }
  curl_global_cleanup();
  brw_config_free(&cfg);
  brw_logj(BRW_LOG_INFO, json_pack("{si}", "exit_code", code), "exited");
  brw_log_cleanup();
  return code;
}
