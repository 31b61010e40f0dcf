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
#include <string.h>

#include "brw/timeutil.h"

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

/* A zone made from a POSIX TZ rule alone, as a TZif version 2 file with
 * one local time type (`std_off`, seconds east) and no transitions: the
 * footer rules every instant. For targets that need a zone with DST that
 * does not depend on the host's tz database. Aborts on failure. */
static inline brw_tz_t *fuzz_rule_zone(const char *rule, int32_t std_off) {
  unsigned char buf[256];
  size_t n = 0, rl = strlen(rule);
  uint32_t u = (uint32_t)std_off;
  FUZZ_CHECK(rl + 140 < sizeof(buf));
  for (int v = 0; v < 2; v++) {
    /* Header: magic, version, 15 reserved, isut isstd leap time type char. */
    const uint32_t counts[6] = {0, 0, 0, 0, 1, 4};
    memcpy(buf + n, "TZif2", 5);
    memset(buf + n + 5, 0, 15);
    n += 20;
    for (int i = 0; i < 6; i++, n += 4) {
      buf[n] = (unsigned char)(counts[i] >> 24);
      buf[n + 1] = (unsigned char)(counts[i] >> 16);
      buf[n + 2] = (unsigned char)(counts[i] >> 8);
      buf[n + 3] = (unsigned char)counts[i];
    }
    /* One type: utoff, isdst 0, desigidx 0; then "STD\0". */
    buf[n++] = (unsigned char)(u >> 24);
    buf[n++] = (unsigned char)(u >> 16);
    buf[n++] = (unsigned char)(u >> 8);
    buf[n++] = (unsigned char)u;
    buf[n++] = 0;
    buf[n++] = 0;
    memcpy(buf + n, "STD", 4);
    n += 4;
  }
  buf[n++] = '\n';
  memcpy(buf + n, rule, rl);
  n += rl;
  buf[n++] = '\n';
  brw_tz_t *tz = NULL;
  FUZZ_CHECK(brw_tz_from_tzif(buf, n, &tz, NULL, 0) == 0);
  return tz;
}

#endif
