/* An assertion on record headers (brw/headers.h) shared by the unit tests:
 * the last header named `name` holds exactly the bytes of `want`. Include
 * after cmocka.h. */
#ifndef BRW_TEST_HDRASSERT_H
#define BRW_TEST_HDRASSERT_H

#include "brw/headers.h"

#include <string.h>

static inline void assert_header_last(const brw_headers_t *h, const char *name,
                                      const char *want) {
  const void *v = NULL;
  size_t n = 0;
  assert_int_equal(brw_headers_get_last(h, name, &v, &n), 0);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(v, want, n);
}

#endif
