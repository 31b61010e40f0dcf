/* The versions of the libraries the process runs with, asked of each library
 * at run time (not the headers it was built against): librdkafka
 * (brw_kafka_version_str, from src/kafka.c), libcurl (curl_version_info), libuv
 * (uv_version_string) and jansson (jansson_version_str). `--version` prints
 * them as `curl --version` does, the start log line carries them, and each
 * has an info gauge (docs/operations.md). */
#ifndef BRW_VERSIONS_H
#define BRW_VERSIONS_H

#include <stddef.h>

typedef struct {
  const char *name;    /* "librdkafka", "libcurl", "libuv", "jansson" */
  const char *version; /* static, never NULL */
} brw_lib_version_t;

#define BRW_VERSIONS_N 4

/* Fills out[0..BRW_VERSIONS_N-1], in the order above. */
void brw_versions(brw_lib_version_t out[BRW_VERSIONS_N]);

/* "librdkafka/2.14.2 libcurl/7.88.1 libuv/1.44.2 jansson/2.14", cut to n
 * bytes (always terminated when n > 0). */
void brw_versions_line(char *buf, size_t n);

#endif
