/* brw-demo: the README's first command, with nothing external.
 *
 * One process hosts librdkafka's in-process mock cluster, feeds it sample
 * events, watches the report and DLQ topics, and runs the simulator
 * (bsg-api-sim) and the worker (bsg-report-worker) as child processes.
 *
 * Modules, each a .c file in src/demo/:
 *   demo_proc.c  child processes: spawn, reap, stop, kill all at exit
 *   demo_http.c  one blocking HTTP GET (libcurl easy) to the simulator's
 *                control interface
 *   demo.c       arguments, the mock cluster, the event feed, the observer,
 *                the main loop and the closing summary
 *
 * The demo is a plain single-threaded driver: a poll loop of about 100 ms
 * around rd_kafka_consumer_poll(). Only librdkafka runs threads of its own. */
#ifndef BRW_DEMO_H
#define BRW_DEMO_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* ---- processes (demo_proc.c) --------------------------------------------- */

typedef struct {
  const char *name; /* "worker", "simulator": for messages; static */
  char log_path[PATH_MAX + 32]; /* stderr (and stdout unless piped) goes here */
  pid_t pid;                    /* 0 before spawn */
  int exited;                   /* 1 once reaped */
  int status;                   /* wait status, valid when exited */
} demo_child_t;

/* Milliseconds of a monotonic clock, for intervals. */
int64_t demo_mono_ms(void);
/* Wall-clock milliseconds since the epoch (the simulator's clock). */
int64_t demo_wall_ms(void);

/* Starts argv[0] (a path) with argv (NULL-terminated, borrowed) as a child:
 * stdin from /dev/null, stdout to `stdout_fd` (or the log file when -1),
 * stderr to c->log_path (created or truncated). The child runs in its own
 * process group, so that a Ctrl-C at the terminal reaches only the demo,
 * which then stops the children in order; and it is killed by the kernel if
 * the demo dies without cleaning up (PR_SET_PDEATHSIG). The child is
 * registered for demo_children_kill_all.
 *
 * Returns 0, or a negative errno (the log file cannot be created, fork
 * failed). An exec failure shows up as the child exiting with 127 and a line
 * in its log. */
int demo_child_spawn(demo_child_t *c, char *const argv[], int stdout_fd);

/* Reaps the child if it exited. Returns 1 when it has exited (now or
 * before), 0 while it runs. Never blocks. */
int demo_child_poll(demo_child_t *c);

/* Sends `sig` to a child that has not been reaped. */
void demo_child_signal(demo_child_t *c, int sig);

/* Waits up to timeout_ms for the child to exit, calling tick(arg) (may be
 * NULL) between checks, about every 100 ms; tick may block for that long
 * itself (a Kafka poll). Returns 1 when it exited, 0 on timeout. */
int demo_child_wait(demo_child_t *c, int64_t timeout_ms,
                    void (*tick)(void *arg), void *arg);

/* SIGTERM, then up to grace_ms for it to exit, then SIGKILL and reap. */
void demo_child_stop(demo_child_t *c, int64_t grace_ms);

/* "exit 0", "exit 2", "killed by signal 9 (Killed)", or "running". Writes
 * into buf and returns it. */
const char *demo_child_describe(const demo_child_t *c, char *buf, size_t len);

/* The exit status when the child exited normally, else -1. */
int demo_child_exit_code(const demo_child_t *c);

/* SIGKILLs and reaps every registered child still running. Safe to call
 * more than once; used on every exit path of the demo. */
void demo_children_kill_all(void);

/* Copies the last `nlines` lines of a file to `out`, each indented. */
void demo_log_tail(const char *path, int nlines, FILE *out);

/* ---- http (demo_http.c) -------------------------------------------------- */

/* Sets up libcurl (curl_global_init) and one reusable easy handle. Returns 0
 * or -1. */
int demo_http_init(void);
void demo_http_cleanup(void);

/* GETs `url` with a timeout. Returns 0 with the HTTP status in *status and
 * the body in *body (malloc'ed, NUL-terminated, caller frees), or -1 with a
 * one-line reason in errbuf (then *body is NULL). Bodies over 8 MiB fail. */
int demo_http_get(const char *url, long timeout_ms, char **body, long *status,
                  char *errbuf, size_t errlen);

#endif
