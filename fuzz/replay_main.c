/* Replays fuzz inputs without libFuzzer: runs LLVMFuzzerTestOneInput once
 * over every regular file in the directories (or the files) given as
 * arguments, in name order. ctest runs it over fuzz/corpus/<target> (tests
 * fuzz-replay.<target>, label unit), so that the seeds and every crash
 * reproducer kept there are checked by each normal and sanitizer build.
 *
 * Each input is handed over in a malloc'ed buffer of exactly its size, as
 * libFuzzer does, so that AddressSanitizer catches a read one byte past it.
 * Exit status: 0 when every input ran (a failing input aborts the process,
 * after naming the file on stderr), 1 on a usage or I/O error, or when no
 * input at all was found (an empty corpus would test nothing). */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* Reads a whole file into a buffer of exactly its size (malloc'ed, caller
 * frees). Returns 0 or -1 with errno set. */
static int read_file(const char *path, uint8_t **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  uint8_t *buf = NULL;
  size_t n;

  *data = NULL;
  *size = 0;
  if (!f)
    return -1;
  if (fstat(fileno(f), &st) != 0 || st.st_size < 0) {
    fclose(f);
    return -1;
  }
  n = (size_t)st.st_size;
  /* An empty input still gets a valid (1-byte) buffer, as libFuzzer gives
   * it one: the targets may rely on data != NULL. */
  if (!(buf = malloc(n ? n : 1))) {
    fclose(f);
    return -1;
  }
  if (n > 0) {
    if (fread(buf, 1, n, f) != n) {
      free(buf);
      fclose(f);
      errno = errno ? errno : EIO;
      return -1;
    }
  }
  fclose(f);
  *data = buf;
  *size = n;
  return 0;
}

static int run_file(const char *path) {
  uint8_t *data;
  size_t size;
  if (read_file(path, &data, &size) != 0) {
    fprintf(stderr, "replay: cannot read %s: %s\n", path, strerror(errno));
    return -1;
  }
  /* Named first, so that the file behind an abort is known. */
  fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
  LLVMFuzzerTestOneInput(data, size);
  free(data);
  return 0;
}

static int skip_entry(const struct dirent *e) {
  return e->d_name[0] != '.';
}

/* Runs every regular file of dir in name order; returns the count or -1. */
static long run_dir(const char *dir) {
  struct dirent **names;
  char path[4096];
  long count = 0;
  int n = scandir(dir, &names, skip_entry, alphasort);

  if (n < 0) {
    fprintf(stderr, "replay: cannot list %s: %s\n", dir, strerror(errno));
    return -1;
  }
  for (int i = 0; i < n; i++) {
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      if (run_file(path) != 0)
        count = -1;
      else if (count >= 0)
        count++;
    }
    free(names[i]);
  }
  free(names);
  return count;
}

int main(int argc, char **argv) {
  long total = 0;
  int failed = 0;

  if (argc < 2) {
    fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    struct stat st;
    long n;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
      failed = 1;
      continue;
    }
    n = S_ISDIR(st.st_mode) ? run_dir(argv[i]) : run_file(argv[i]) ? -1 : 1;
    if (n < 0)
      failed = 1;
    else
      total += n;
  }
  printf("replay: %ld input(s) ran\n", total);
  if (total == 0) {
    fprintf(stderr, "replay: no input found\n");
    return 1;
  }
  return failed;
}
