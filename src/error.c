#include "brw/error.h"

const char *brw_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define XX(name, code, text)                                                   \
  case code:                                                                   \
    return text;
    BRW_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *brw_err_name(int err) {
  switch (err) {
  case 0:
    return "OK";
#define XX(name, code, text)                                                   \
  case code:                                                                   \
    return #name;
    BRW_ERRNO_MAP(XX)
#undef XX
  default:
    return "EUNKNOWN";
  }
}
