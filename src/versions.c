/* The libraries' run-time versions (see include/brw/versions.h). */
#include "brw/versions.h"
#include "brw/kafka.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <uv.h>

void brw_versions(brw_lib_version_t out[BRW_VERSIONS_N]) {
  const curl_version_info_data *c = curl_version_info(CURLVERSION_NOW);
  out[0] = (brw_lib_version_t){"librdkafka", brw_kafka_version_str()};
  out[1] = (brw_lib_version_t){"libcurl", c && c->version ? c->version : "?"};
  out[2] = (brw_lib_version_t){"libuv", uv_version_string()};
  out[3] = (brw_lib_version_t){"jansson", jansson_version_str()};
}

void brw_versions_line(char *buf, size_t n) {
  brw_lib_version_t v[BRW_VERSIONS_N];
  size_t off = 0;
  if (!n)
    return;
  buf[0] = '\0';
  brw_versions(v);
  for (int i = 0; i < BRW_VERSIONS_N && off < n; i++) {
    int w = snprintf(buf + off, n - off, "%s%s/%s", i ? " " : "", v[i].name,
                     v[i].version);
    if (w < 0)
      break;
    off += (size_t)w;
  }
}
