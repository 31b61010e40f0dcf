/* Paths into the source tree, for unit tests that read repository files
 * (the example configuration, docs, schemas). */
#ifndef BRW_TEST_SRCPATH_H
#define BRW_TEST_SRCPATH_H

#include <stddef.h>

/* Writes the repository root (from this support file's path: CMake passes
 * absolute ones) joined with `rel` into buf. Returns 0, or -1 when the
 * root cannot be found or buf is too small. */
int srcpath(char *buf, size_t len, const char *rel);

#endif
