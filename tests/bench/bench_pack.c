/* Size and speed of packed detail bodies (src/pack.c): what a tracked
 * campaign's last detail costs in memory, and what keeping it packed costs
 * in CPU per fetch.
 *
 *   bench_pack [N [REPEATS]]    default: 2000 bodies, 15 repeats
 *
 * The bodies are synthesized in the shapes bsg-api-sim serves
 * (tests/unit/support/detail_bodies.h: every SPEC §2 variant, drawn at
 * random, with random figures), plus the plain shape alone. For each set:
 *   body       median body bytes
 *   packed     median packed bytes (header included); mean and max too
 *   ratio      total packed / total body bytes
 *   pack ns    ns per brw_pack_body (malloc of the result included), the
 *              median of REPEATS passes over the whole set
 *   unpack ns  ns per brw_pack_unbody, likewise
 * Built by scripts/bench (micro) from this file and libbrw_core.a, or:
 *   gcc -O2 -I include tests/bench/bench_pack.c build/libbrw_core.a \
 *       $(pkg-config --libs zlib) */
#include "brw/backoff.h"
#include "brw/pack.h"
#include "../unit/support/detail_bodies.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

static double median_d(double *v, size_t n) {
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static size_t median_z(size_t *v, size_t n) {
  qsort(v, n, sizeof(*v), cmp_size);
  return v[n / 2];
}

/* One row of the table for n bodies of the shape `mixed` says. */
static int run(brw_pack_t *p, const char *label, int mixed, size_t n,
               int repeats) {
  char **bodies = calloc(n, sizeof(*bodies));
  size_t *blen = calloc(n, sizeof(*blen)), *plen_z = calloc(n, sizeof(*blen));
  char **packed = calloc(n, sizeof(*packed));
  uint32_t *plen = calloc(n, sizeof(*plen));
  double *pack_ns = calloc((size_t)repeats, sizeof(double));
  double *unpack_ns = calloc((size_t)repeats, sizeof(double));
  uint64_t raw = 0, total = 0;
  size_t maxp = 0;
  brw_rng_t rng;
  char buf[4096];
  int rc = 1;

  if (!bodies || !blen || !plen_z || !packed || !plen || !pack_ns || !unpack_ns)
    goto out;
  brw_rng_seed(&rng, 42);
  for (size_t i = 0; i < n; i++) {
    detail_shape_t s = mixed ? detail_shape_random(&rng) : detail_shape_plain();
    blen[i] = detail_body(buf, sizeof(buf), &s, &rng);
    bodies[i] = malloc(blen[i] + 1);
    if (!blen[i] || !bodies[i])
      goto out;
    memcpy(bodies[i], buf, blen[i] + 1);
    raw += blen[i];
  }

  for (int r = 0; r < repeats; r++) {
    double t0 = now_ns();
    for (size_t i = 0; i < n; i++) {
      free(packed[i]);
      packed[i] = NULL;
      if (brw_pack_body(p, bodies[i], blen[i], &packed[i], &plen[i]) != 0)
        goto out;
    }
    double t1 = now_ns();
    for (size_t i = 0; i < n; i++) {
      char *back = NULL;
      size_t len = 0;
      if (brw_pack_unbody(p, packed[i], plen[i], &back, &len) != 0 ||
          len != blen[i] || memcmp(back, bodies[i], len) != 0) {
        fprintf(stderr, "bench_pack: body %zu did not round-trip\n", i);
        free(back);
        goto out;
      }
      free(back);
    }
    double t2 = now_ns();
    pack_ns[r] = (t1 - t0) / (double)n;
    unpack_ns[r] = (t2 - t1) / (double)n;
  }

  for (size_t i = 0; i < n; i++) {
    plen_z[i] = plen[i];
    total += plen[i];
    if (plen[i] > maxp)
      maxp = plen[i];
  }
  printf("| %-8s | %6zu | %6zu | %6.1f | %4zu | %5.3f | %7.0f | %9.0f |\n",
         label, median_z(blen, n), median_z(plen_z, n),
         (double)total / (double)n, maxp, (double)total / (double)raw,
         median_d(pack_ns, (size_t)repeats),
         median_d(unpack_ns, (size_t)repeats));
  rc = 0;

out:
  for (size_t i = 0; bodies && packed && i < n; i++) {
    free(bodies[i]);
    free(packed[i]);
  }
  free(bodies);
  free(blen);
  free(plen_z);
  free(packed);
  free(plen);
  free(pack_ns);
  free(unpack_ns);
  return rc;
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
  int repeats = argc > 2 ? atoi(argv[2]) : 15;
  brw_pack_t *p = NULL;
  if (n == 0 || repeats <= 0) {
    fprintf(stderr, "usage: bench_pack [N [REPEATS]]\n");
    return 2;
  }
  if (brw_pack_new(&p) != 0)
    return 1;
  printf("bench_pack: %zu bodies, median of %d passes\n", n, repeats);
  printf("| bodies   | body B | packed | mean B | max  | ratio | pack ns "
         "| unpack ns |\n");
  printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
  int rc = run(p, "plain", 0, n, repeats) || run(p, "mixed", 1, n, repeats);
  brw_pack_free(p);
  return rc;
}
