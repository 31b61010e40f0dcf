/* Fuzz target: the config-file parser (brw_config_load_text, the text of
 * --config FILE; SPEC §7), with brw_config_validate and brw_config_print.
 *
 * Checked beyond memory safety: an error is one line "fuzz.conf:N: ..."
 * within the buffer; and whatever was loaded, the effective configuration
 * printed by --check-config parses back to itself (config.h: "printed
 * values parse back to the same"), so print(load(print(x))) == print(x).
 *
 * Two kinds of input are skipped, because they are not parsing but side
 * effects on the machine running the fuzzer: `key_file` keys read files
 * named by the input (a FIFO or /dev/tty would hang the run), and the
 * librdkafka property plugin.library.paths loads shared libraries as soon
 * as it is set. */
#include "brw/config.h"
#include "brw/error.h"
#include "fuzz.h"

#include <string.h>

#define NAME "fuzz.conf"

static int contains(const uint8_t *data, size_t size, const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= size; i++) {
    if (!memcmp(data + i, needle, n))
      return 1;
  }
  return 0;
}

/* The effective configuration as --check-config prints it (malloc'ed,
 * caller frees). */
static char *print_config(const brw_config_t *cfg, size_t *len) {
  char *text = NULL;
  FILE *f = open_memstream(&text, len);
  FUZZ_CHECK(f != NULL);
  brw_config_print(cfg, f);
  FUZZ_CHECK(fclose(f) == 0);
  return text;
}

static void check_error(int rc, const char *err) {
  FUZZ_CHECK(rc == BRW_ECONFIG || rc == BRW_ENOMEM);
  FUZZ_CHECK(!strncmp(err, NAME ":", strlen(NAME ":")));
  FUZZ_CHECK(strchr(err, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  brw_config_t cfg;
  char err[512];
  char *printed, *reprinted;
  size_t plen, rlen;
  int rc;

  if (contains(data, size, "key_file") ||
      contains(data, size, "plugin.library"))
    return 0;

  brw_config_init(&cfg);
  err[0] = '\0';
  rc = brw_config_load_text(&cfg, NAME, (const char *)data, size, err,
                            sizeof(err));
  FUZZ_CHECK(strlen(err) < sizeof(err));
  if (rc != 0)
    check_error(rc, err);
  /* Partial results are still a configuration: validate and print it. */
  (void)brw_config_validate(&cfg, err, sizeof(err));
  FUZZ_CHECK(strlen(err) < sizeof(err));
  printed = print_config(&cfg, &plen);
  brw_config_free(&cfg);

  /* The printed configuration reads back, to the same configuration. The
   * instance id is computed per process, and both loads share it. */
  brw_config_init(&cfg);
  err[0] = '\0';
  rc = brw_config_load_text(&cfg, NAME, printed, plen, err, sizeof(err));
  if (rc != 0)
    fprintf(stderr, "printed configuration does not load: %s\n%s", err,
            printed);
  FUZZ_CHECK(rc == 0);
  reprinted = print_config(&cfg, &rlen);
  if (plen != rlen || memcmp(printed, reprinted, plen) != 0)
    fprintf(stderr, "printed:\n%s\nreprinted:\n%s", printed, reprinted);
  FUZZ_CHECK(plen == rlen && !memcmp(printed, reprinted, plen));
  brw_config_free(&cfg);
  free(printed);
  free(reprinted);
  return 0;
}
