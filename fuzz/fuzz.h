/* Shared by the fuzz targets (fuzz_<target>.c) and the corpus replayer
 * (replay_main.c); see docs/fuzzing.md.
 *
 * Each target defines LLVMFuzzerTestOneInput. Built with clang and
 * -fsanitize=fuzzer it is driven by libFuzzer; built with replay_main.c (any
 * compiler, the normal build) it runs over the corpus files once, which is
 * how ctest replays the seeds and every crash reproducer. */
#ifndef BRW_FUZZ_H
#define BRW_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* The libFuzzer entry point. `data` is exactly `size` bytes, not
 * NUL-terminated, and only valid during the call. Returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every output must have. A violation aborts, which libFuzzer
 * reports as a crash (and saves the input) and ctest as a failure: a wrong
 * answer is as much a bug as a memory error. */
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                 \
    }                                                                          \
  } while (0)

/* A NUL-terminated, malloc'ed copy of the input (the caller frees), for the
 * APIs that take C strings; an embedded NUL simply ends the string there.
 * Aborts on out of memory: that is not what is being tested. */
static inline char *fuzz_strdup(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  FUZZ_CHECK(s != NULL);
  for (size_t i = 0; i < size; i++)
    s[i] = (char)data[i];
  s[size] = '\0';
  return s;
}

/* Whether s is one line of printable ASCII (what every error message and
 * log-bound text of the parsers promises). */
static inline int fuzz_is_one_line(const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c < 0x20 || c == 0x7f)
      return 0;
  }
  return 1;
}

#endif
