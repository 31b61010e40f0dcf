/* Error codes of bsg-report-worker.
 *
 * Every function that can fail returns 0 or a negative BRW_E* code from the
 * one table below. Foreign codes (CURLcode, librdkafka's error codes,
 * json_error_t, errno) are translated at the module boundary, and their text
 * is logged there, so callers only ever see these. (librdkafka's codes that
 * describe a record or a partition, not a failed call, reach the
 * application as ints with librdkafka's values: include/brw/kafka.h.)
 */
#ifndef BRW_ERROR_H
#define BRW_ERROR_H

#define BRW_ERRNO_MAP(XX)                                                      \
  XX(EINVAL, -1, "invalid argument")                                           \
  XX(ENOMEM, -2, "out of memory")                                              \
  XX(EPARSE, -3, "cannot parse input")                                         \
  XX(ERANGE, -4, "value out of range")                                         \
  XX(ECONFIG, -5, "configuration error")                                       \
  XX(EKAFKA, -6, "kafka error")                                                \
  XX(EHTTP, -7, "http transfer failed")                                        \
  XX(EAUTH, -8, "authentication failed")                                       \
  XX(ENOTFOUND, -9, "not found")                                               \
  XX(EBADRESP, -10, "bad response")                                            \
  XX(EIO, -11, "i/o error")                                                    \
  XX(EEXIST, -12, "already exists")                                            \
  XX(ENOENT, -13, "no such entry")                                             \
  XX(EAGAIN, -14, "resource temporarily unavailable")                          \
  XX(ECANCELED, -15, "operation canceled")                                     \
  XX(ETOOLARGE, -16, "too large")                                              \
  XX(EFATAL, -17, "fatal error")

typedef enum {
  BRW_OK = 0,
#define XX(name, code, text) BRW_##name = code,
  BRW_ERRNO_MAP(XX)
#undef XX
} brw_err_t;

/* Returns a static, human-readable text for a BRW_E* code (or "success"). */
const char *brw_strerror(int err);

/* Returns the code's name ("EINVAL"), static. */
const char *brw_err_name(int err);

#endif
