/* Unit tests of the record header list (src/headers.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "brw/error.h"
#include "brw/headers.h"
#include "hdrassert.h"

#include <string.h>

/* Repeated names are kept in order; get_last finds the last; remove takes
 * every one of a name and keeps the others' order. */
static void test_add_get_remove(void **state) {
  (void)state;
  brw_headers_t *h = brw_headers_new();
  const void *v;
  size_t n;
  assert_int_equal(brw_headers_count(h), 0);
  assert_int_equal(brw_headers_get_last(h, "a", &v, &n), BRW_ENOENT);
  assert_int_equal(brw_headers_add_str(h, "a", "1"), 0);
  assert_int_equal(brw_headers_add(h, "b", "xyz", 2), 0);
  assert_int_equal(brw_headers_add_str(h, "a", "22"), 0);
  assert_int_equal(brw_headers_add(h, "null", NULL, 5), 0);
  for (int i = 0; i < 10; i++) /* grows past the first allocation */
    assert_int_equal(brw_headers_add_str(h, "c", "c"), 0);
  assert_int_equal(brw_headers_count(h), 14);
  assert_header_last(h, "a", "22");
  assert_header_last(h, "b", "xy");
  assert_int_equal(brw_headers_get_last(h, "null", &v, &n), 0);
  assert_null(v);
  assert_int_equal(n, 0);
  brw_headers_remove(h, "a");
  brw_headers_remove(h, "c");
  brw_headers_remove(h, "nothing");
  assert_int_equal(brw_headers_count(h), 2);
  const char *name;
  assert_int_equal(brw_headers_get(h, 0, &name, &v, &n), 0);
  assert_string_equal(name, "b");
  assert_int_equal(brw_headers_get(h, 1, &name, &v, &n), 0);
  assert_string_equal(name, "null");
  assert_int_equal(brw_headers_get(h, 2, &name, &v, &n), BRW_ENOENT);
  assert_int_equal(brw_headers_get_last(h, "a", &v, &n), BRW_ENOENT);
  brw_headers_free(h);
  brw_headers_free(NULL);
}

/* A copy is deep: changing the original leaves it as it was. */
static void test_copy(void **state) {
  (void)state;
  assert_null(brw_headers_copy(NULL));
  brw_headers_t *h = brw_headers_new();
  assert_int_equal(brw_headers_add_str(h, "k", "v1"), 0);
  assert_int_equal(brw_headers_add(h, "bin", "\0\1\2", 3), 0);
  brw_headers_t *c = brw_headers_copy(h);
  assert_non_null(c);
  brw_headers_remove(h, "k");
  brw_headers_free(h);
  assert_int_equal(brw_headers_count(c), 2);
  assert_header_last(c, "k", "v1");
  const void *v;
  size_t n;
  assert_int_equal(brw_headers_get_last(c, "bin", &v, &n), 0);
  assert_int_equal(n, 3);
  assert_memory_equal(v, "\0\1\2", 3);
  brw_headers_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_get_remove),
      cmocka_unit_test(test_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
