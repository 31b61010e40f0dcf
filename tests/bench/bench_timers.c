/* Cost of libuv timer operations with many pending timers (the worker keeps
 * one uv_timer_t per tracked campaign).
 *
 *   bench_timers [N ...]        default: 1000 10000 100000 1000000
 *
 * For each N: N timers are initialised and started with random timeouts far
 * in the future (1 h .. 2 h), then, with N pending:
 *   start    ns per uv_timer_init + uv_timer_start while filling up to N
 *   re-arm   ns per uv_timer_start on an already active timer (random one,
 *            new random timeout) - what every poll reschedule does
 *   stop     ns per uv_timer_stop of a random active timer
 *   restart  ns per uv_timer_start of a stopped timer (back to N pending)
 *   fire     ns per timer fired: every timer re-armed to 0..999 ms, the
 *            thread sleeps until all are due, one uv_run(UV_RUN_NOWAIT)
 *            fires all N; its CPU time / N
 * Each figure is wall-clock time (CLOCK_MONOTONIC) divided by the number of
 * operations; the operations touch random timers so cache misses count.
 *
 * Each N is measured twice, with the same random timers and timeouts: once
 * with one uv_timer_t per timer, once with brw_timers_t (src/timers.c: one
 * uv_timer_t, a 4-ary heap of 24-byte brw_timer_t) doing the same through
 * brw_timer_start / brw_timer_stop. Each brw_timer_t is embedded in a
 * struct as large as a uv_timer_t, so both touch memory at the same stride
 * (as in a campaign struct); "bytes" is the memory per timer: the handle,
 * or the entry plus its share of the heap array as allocated.
 *
 * src/timers.c is compiled into this file (below) so that the benchmark
 * still builds as scripts/bench builds it: gcc -I include, libuv only. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "../../src/timers.c"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

/* The identity permutation of 0..n-1 (caller frees), or NULL. */
static size_t *perm_new(size_t n) {
  size_t *perm = malloc(sizeof(*perm) * n);
  for (size_t i = 0; perm && i < n; i++)
    perm[i] = i;
  return perm;
}

/* Moves k distinct random entries to perm[0..k-1] (partial Fisher-Yates). */
static void perm_pick(size_t *perm, size_t n, size_t k) {
  for (size_t i = 0; i < k; i++) {
    size_t j = i + (size_t)(rnd() % (n - i));
    size_t tmp = perm[i];
    perm[i] = perm[j];
    perm[j] = tmp;
  }
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t fired;
static void on_uv_timer(uv_timer_t *t) {
  (void)t;
  fired++;
}
static void on_uv_never(uv_timer_t *t) {
  (void)t;
  abort();
}
static void on_uv_closed(uv_handle_t *h) { (void)h; }

#define FAR_MS (3600u * 1000u)
#define SEED 0x9E3779B97F4A7C15ull

static int run_uv(size_t n, size_t ops) {
  rng_state = SEED;
  uv_loop_t loop;
  if (uv_loop_init(&loop) != 0)
    return 1;
  uv_timer_t *t = malloc(sizeof(*t) * n);
  size_t *idx = malloc(sizeof(*idx) * ops);
  if (!t || !idx)
    return 1;
  for (size_t i = 0; i < ops; i++)
    idx[i] = (size_t)(rnd() % n);

  double a = now_ns();
  for (size_t i = 0; i < n; i++) {
    uv_timer_init(&loop, &t[i]);
    uv_timer_start(&t[i], on_uv_never, FAR_MS + rnd() % FAR_MS, 0);
  }
  double start_ns = (now_ns() - a) / (double)n;

  a = now_ns();
  for (size_t i = 0; i < ops; i++)
    uv_timer_start(&t[idx[i]], on_uv_never, FAR_MS + rnd() % FAR_MS, 0);
  double rearm_ns = (now_ns() - a) / (double)ops;

  /* stop k distinct random timers (timed), start them again (timed);
   * rounds until `ops` stops were measured */
  size_t k = n / 10 ? n / 10 : 1;
  size_t *perm = perm_new(n);
  if (!perm)
    return 1;
  double stop_total = 0, restart_total = 0;
  size_t done_ops = 0;
  while (done_ops < ops) {
    perm_pick(perm, n, k);
    a = now_ns();
    for (size_t i = 0; i < k; i++)
      uv_timer_stop(&t[perm[i]]);
    stop_total += now_ns() - a;
    a = now_ns();
    for (size_t i = 0; i < k; i++)
      uv_timer_start(&t[perm[i]], on_uv_never, FAR_MS + rnd() % FAR_MS, 0);
    restart_total += now_ns() - a;
    done_ops += k;
  }
  free(perm);
  double stop_ns = stop_total / (double)done_ops;
  double restart_ns = restart_total / (double)done_ops;

  /* fire: all N due at once */
  uv_update_time(&loop);
  for (size_t i = 0; i < n; i++)
    uv_timer_start(&t[i], on_uv_timer, rnd() % 1000, 0);
  struct timespec sl = {1, 50 * 1000 * 1000};
  nanosleep(&sl, NULL);
  fired = 0;
  double c = cpu_ns();
  a = now_ns();
  while (fired < n)
    uv_run(&loop, UV_RUN_NOWAIT);
  double fire_ns = (now_ns() - a) / (double)n;
  double fire_cpu_ns = (cpu_ns() - c) / (double)n;

  printf("| %9zu | uv_timer_t  | %5zu | %8.0f | %8.0f | %8.0f | %8.0f | %8.0f "
         "| %8.0f |\n",
         n, sizeof(uv_timer_t), start_ns, rearm_ns, stop_ns, restart_ns,
         fire_ns, fire_cpu_ns);
  fflush(stdout);

  for (size_t i = 0; i < n; i++)
    uv_close((uv_handle_t *)&t[i], on_uv_closed);
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  free(t);
  free(idx);
  return rc != 0;
}

/* A brw_timer_t in a struct as large as a uv_timer_t. */
typedef struct {
  brw_timer_t timer;
  unsigned char pad[sizeof(uv_timer_t) - sizeof(brw_timer_t)];
} item_t;

static void on_brw_timer(brw_timer_t *t) {
  (void)t;
  fired++;
}
static void on_brw_never(brw_timer_t *t) {
  (void)t;
  abort();
}
static void on_brw_closed(void *arg) {
  (void)arg;
}

/* The same as run_uv, step by step, with brw_timers_t. */
static int run_brw(size_t n, size_t ops) {
  rng_state = SEED;
  uv_loop_t loop;
  brw_timers_t ts;
  if (uv_loop_init(&loop) != 0 || brw_timers_init(&ts, &loop) != 0)
    return 1;
  item_t *t = malloc(sizeof(*t) * n);
  size_t *idx = malloc(sizeof(*idx) * ops);
  if (!t || !idx)
    return 1;
  for (size_t i = 0; i < ops; i++)
    idx[i] = (size_t)(rnd() % n);

  double a = now_ns();
  for (size_t i = 0; i < n; i++) {
    brw_timer_init(&t[i].timer);
    if (brw_timer_start(&ts, &t[i].timer, FAR_MS + rnd() % FAR_MS,
                        on_brw_never) != 0)
      return 1;
  }
  double start_ns = (now_ns() - a) / (double)n;

  a = now_ns();
  for (size_t i = 0; i < ops; i++)
    brw_timer_start(&ts, &t[idx[i]].timer, FAR_MS + rnd() % FAR_MS,
                    on_brw_never);
  double rearm_ns = (now_ns() - a) / (double)ops;

  size_t k = n / 10 ? n / 10 : 1;
  size_t *perm = perm_new(n);
  if (!perm)
    return 1;
  double stop_total = 0, restart_total = 0;
  size_t done_ops = 0;
  while (done_ops < ops) {
    perm_pick(perm, n, k);
    a = now_ns();
    for (size_t i = 0; i < k; i++)
      brw_timer_stop(&ts, &t[perm[i]].timer);
    stop_total += now_ns() - a;
    a = now_ns();
    for (size_t i = 0; i < k; i++)
      brw_timer_start(&ts, &t[perm[i]].timer, FAR_MS + rnd() % FAR_MS,
                      on_brw_never);
    restart_total += now_ns() - a;
    done_ops += k;
  }
  free(perm);
  double stop_ns = stop_total / (double)done_ops;
  double restart_ns = restart_total / (double)done_ops;

  uv_update_time(&loop);
  /* The raw cost of firing: one pass fires them all, as with uv timers (the
   * worker's passes stop at BRW_TIMERS_PASS_MAX and go on 1 ms later, which
   * would count idle spinning here). */
  ts.pass_max = SIZE_MAX;
  for (size_t i = 0; i < n; i++)
    brw_timer_start(&ts, &t[i].timer, rnd() % 1000, on_brw_timer);
  struct timespec sl = {1, 50 * 1000 * 1000};
  nanosleep(&sl, NULL);
  fired = 0;
  double c = cpu_ns();
  a = now_ns();
  while (fired < n)
    uv_run(&loop, UV_RUN_NOWAIT);
  double fire_ns = (now_ns() - a) / (double)n;
  double fire_cpu_ns = (cpu_ns() - c) / (double)n;

  double bytes = (double)sizeof(brw_timer_t) +
                 (double)(ts.cap * sizeof(*ts.heap)) / (double)n;
  printf("| %9zu | brw_timer_t | %5.0f | %8.0f | %8.0f | %8.0f | %8.0f | %8.0f "
         "| %8.0f |\n",
         n, bytes, start_ns, rearm_ns, stop_ns, restart_ns, fire_ns,
         fire_cpu_ns);
  fflush(stdout);

  brw_timers_close(&ts, on_brw_closed, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  int rc = uv_loop_close(&loop);
  free(t);
  free(idx);
  return rc != 0;
}

int main(int argc, char **argv) {
  size_t def[] = {1000, 10000, 100000, 1000000};
  size_t ns[32];
  size_t k = 0;
  if (argc > 1) {
    for (int i = 1; i < argc && k < 32; i++)
      ns[k++] = (size_t)strtoull(argv[i], NULL, 10);
  } else {
    memcpy(ns, def, sizeof(def));
    k = 4;
  }
  printf("libuv %s, sizeof(uv_timer_t) = %zu bytes, sizeof(brw_timer_t) = %zu "
         "bytes (+ 8 per heap slot)\n\n",
         uv_version_string(), sizeof(uv_timer_t), sizeof(brw_timer_t));
  printf("| pending N | timer | bytes | start ns | re-arm ns | stop ns | restart ns | fire ns | fire CPU ns |\n");
  printf("|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
  for (size_t i = 0; i < k; i++) {
    size_t n = ns[i];
    if (n == 0)
      continue;
    size_t ops = n < 100000 ? 100000 : n; /* >= 100k ops for stable figures */
    if (run_uv(n, ops) != 0 || run_brw(n, ops) != 0) {
      fprintf(stderr, "run(%zu) failed\n", n);
      return 1;
    }
  }
  return 0;
}
