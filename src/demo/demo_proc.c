/* Child processes of the demo: spawn, reap, stop, and kill on every exit
 * path, so that the demo never leaves a worker or a simulator behind. */
#include "demo.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEMO_MAX_CHILDREN 8

/* Every child spawned, for demo_children_kill_all. Borrowed pointers: the
 * demo's child records live until the end of main. */
static demo_child_t *children[DEMO_MAX_CHILDREN];
static int nchildren;

int64_t demo_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t demo_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes a constant text with write(2): the only output a forked child of a
 * multi-threaded process may produce before exec. */
static void child_say(const char *s) {
  ssize_t r = write(2, s, strlen(s));
  (void)r;
}

/* The child side of demo_child_spawn. Runs between fork and exec in a copy
 * of a multi-threaded process (librdkafka's threads), so it calls only
 * async-signal-safe functions and never returns. */
static void child_exec(char *const argv[], pid_t parent, int in_fd, int out_fd,
                       int err_fd, int maxfd) {
  struct sigaction sa;
  sigset_t none;

  /* Handlers do not survive exec, but ignored signals (SIGPIPE) would. */
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int sig = 1; sig < NSIG; sig++)
    sigaction(sig, &sa, NULL);

  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  /* The demo may have died before prctl took effect. */
  if (getppid() != parent)
    _exit(127);

  if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
    _exit(127);
  /* The mock cluster's sockets and librdkafka's pipes are not the child's
   * business. */
  for (int fd = 3; fd < maxfd; fd++)
    close(fd);

  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execv(argv[0], argv);
  child_say("brw-demo: cannot execute ");
  child_say(argv[0]);
  child_say("\n");
  _exit(127);
}

int demo_child_spawn(demo_child_t *c, char *const argv[], int stdout_fd) {
  struct rlimit rl;
  sigset_t all, old;
  int logfd, nullfd, maxfd = 65536, err;
  pid_t parent = getpid(), pid;

  if (nchildren == DEMO_MAX_CHILDREN)
    return -EAGAIN;
  logfd = open(c->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (logfd < 0)
    return -errno;
  nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (nullfd < 0) {
    err = errno;
    close(logfd);
    return -err;
  }
  /* Computed before fork: getrlimit is not on the async-signal-safe list. */
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < 65536)
    maxfd = (int)rl.rlim_cur;

  /* Signals stay blocked across fork, so that the demo's handler never runs
   * in the child before it resets the dispositions. */
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid = fork();
  if (pid == 0)
    child_exec(argv, parent, nullfd, stdout_fd >= 0 ? stdout_fd : logfd, logfd,
               maxfd);
  err = errno;
  if (pid > 0)
    setpgid(pid, pid); /* also here: whichever side runs first wins */
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close(logfd);
  close(nullfd);
  if (pid < 0)
    return -err;

  c->pid = pid;
  c->exited = 0;
  c->status = 0;
  children[nchildren++] = c;
  return 0;
}

int demo_child_poll(demo_child_t *c) {
  int st;
  pid_t r;

  if (c->pid <= 0 || c->exited)
    return 1;
  do
    r = waitpid(c->pid, &st, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == c->pid) {
    c->exited = 1;
    c->status = st;
  } else if (r < 0) {
    /* ECHILD: someone else reaped it; treat it as gone. */
    c->exited = 1;
    c->status = -1;
  }
  return c->exited;
}

void demo_child_signal(demo_child_t *c, int sig) {
  if (c->pid > 0 && !c->exited)
    kill(c->pid, sig);
}

int demo_child_wait(demo_child_t *c, int64_t timeout_ms,
                    void (*tick)(void *arg), void *arg) {
  int64_t end = demo_mono_ms() + timeout_ms;
  struct timespec ts = {0, 50 * 1000 * 1000};

  while (!demo_child_poll(c)) {
    if (demo_mono_ms() >= end)
      return 0;
    if (tick)
      tick(arg);
    else
      nanosleep(&ts, NULL);
  }
  return 1;
}

void demo_child_stop(demo_child_t *c, int64_t grace_ms) {
  int st;

  if (demo_child_poll(c))
    return;
  demo_child_signal(c, SIGTERM);
  if (demo_child_wait(c, grace_ms, NULL, NULL))
    return;
  demo_child_signal(c, SIGKILL);
  while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
    ;
  c->exited = 1;
  c->status = st;
}

const char *demo_child_describe(const demo_child_t *c, char *buf, size_t len) {
  if (c->pid <= 0)
    snprintf(buf, len, "not started");
  else if (!c->exited)
    snprintf(buf, len, "running");
  else if (c->status == -1)
    snprintf(buf, len, "gone");
  else if (WIFEXITED(c->status))
    snprintf(buf, len, "exit %d", WEXITSTATUS(c->status));
  else if (WIFSIGNALED(c->status))
    snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(c->status),
             strsignal(WTERMSIG(c->status)));
  else
    snprintf(buf, len, "status 0x%x", (unsigned)c->status);
  return buf;
}

int demo_child_exit_code(const demo_child_t *c) {
  if (c->pid <= 0 || !c->exited || c->status == -1 || !WIFEXITED(c->status))
    return -1;
  return WEXITSTATUS(c->status);
}

void demo_children_kill_all(void) {
  for (int i = 0; i < nchildren; i++) {
    demo_child_t *c = children[i];
    int st;
    if (demo_child_poll(c))
      continue;
    kill(c->pid, SIGKILL);
    while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
      ;
    c->exited = 1;
    c->status = st;
  }
}

void demo_log_tail(const char *path, int nlines, FILE *out) {
  FILE *f = fopen(path, "r");
  char **ring;
  char line[1024];
  long n = 0;

  if (!f) {
    fprintf(out, "    (cannot read %s: %s)\n", path, strerror(errno));
    return;
  }
  ring = calloc((size_t)nlines, sizeof(*ring));
  if (!ring) {
    fclose(f);
    return;
  }
  /* Long lines are cut at the buffer size; the rest of such a line counts
   * as further lines, which is good enough for a glance at a log. */
  while (fgets(line, sizeof(line), f)) {
    free(ring[n % nlines]);
    ring[n % nlines] = strdup(line);
    n++;
  }
  fclose(f);
  for (long i = n > nlines ? n - nlines : 0; i < n; i++) {
    const char *s = ring[i % nlines];
    if (s)
      fprintf(out, "    %s%s", s, s[0] && s[strlen(s) - 1] == '\n' ? "" : "\n");
  }
  for (int i = 0; i < nlines; i++)
    free(ring[i]);
  free(ring);
}
