/* Unit tests of the shared vocabulary (src/vocab.c, brw/vocab.h): each
 * table matches its enum, the metrics create their label sets from the
 * tables, and the records' schemas (schemas/) list the same words. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "srcpath.h"
#include "brw/metrics.h"
#include "brw/schedule.h"
#include "brw/bsg.h"
#include "brw/vocab.h"

/* `rel` in the repository (tests/unit/support/srcpath.c). */
static void src_path(char *buf, size_t len, const char *rel) {
  assert_int_equal(srcpath(buf, len, rel), 0);
}

/* A table has exactly `n` names, none empty, no two the same. */
static void check_table(const char *const *names, size_t n) {
  size_t i = 0;
  for (; names[i]; i++) {
    assert_true(i < n);
    assert_true(names[i][0] != '\0');
    for (size_t j = 0; j < i; j++)
      assert_string_not_equal(names[i], names[j]);
    assert_int_equal(brw_vocab_find(names, names[i]), (int)i);
  }
  assert_int_equal(i, n);
  assert_int_equal(brw_vocab_find(names, "no such word"), -1);
  assert_int_equal(brw_vocab_find(names, NULL), -1);
}

static void test_tables_match_enums(void **state) {
  (void)state;
  check_table(brw_status_names, BRW_STATUS__COUNT);
  check_table(brw_outcome_names, BRW_OUTCOME__COUNT);
  /* The final statuses are the outcomes bar expired, by the same word. */
  int finals = 0;
  for (int i = 0; i < BRW_STATUS__COUNT; i++) {
    int o = brw_vocab_find(brw_outcome_names, brw_status_names[i]);
    assert_int_equal(o >= 0, brw_status_is_terminal((brw_status_t)i));
    finals += o >= 0;
  }
  assert_int_equal(finals, BRW_OUTCOME__COUNT - 1);
  assert_int_equal(brw_status_parse("SENDING"), BRW_STATUS_SENDING);
  check_table(brw_dlq_reason_names, BRW_DLQ__COUNT);
  check_table(brw_intake_reason_names, BRW_DLQ__INTAKE);
  check_table(brw_retry_class_names, BRW_RETRY__COUNT);
  check_table(brw_basis_names, BRW_BASIS__COUNT);
  /* The intake reasons are the first DLQ reasons; the macros are the
   * table's words. */
  for (int i = 0; i < BRW_DLQ__INTAKE; i++)
    assert_string_equal(brw_intake_reason_names[i], brw_dlq_reason_names[i]);
  assert_string_equal(brw_dlq_reason_names[BRW_DLQ_NOT_FOUND],
                      BRW_REASON_NOT_FOUND);
  assert_string_equal(brw_dlq_reason_names[BRW_DLQ_BAD_RESPONSE],
                      BRW_REASON_BAD_RESPONSE);
  assert_string_equal(brw_outcome_names[BRW_OUTCOME_EXPIRED], "expired");
  assert_string_equal(brw_retry_class_names[BRW_RETRY_TLS], "tls");
  assert_string_equal(brw_schedule_basis_name(BRW_BASIS_SCHEDULED_START),
                      "scheduled_start");
  assert_string_equal(brw_schedule_basis_name((brw_schedule_basis_t)99),
                      "backoff");
}

/* The metrics' known label values are the tables themselves, so that a new
 * word shows as a zero series from the start. */
static void test_metrics_use_the_tables(void **state) {
  (void)state;
  const struct {
    brw_metric_id_t id;
    const char *const *names;
  } uses[] = {
      {BRW_M_EVENTS_INVALID, brw_intake_reason_names},
      {BRW_M_DLQ_RECORDS, brw_dlq_reason_names},
      {BRW_M_API_RETRIES, brw_retry_class_names},
      {BRW_M_REPORTS_PUBLISHED, brw_outcome_names},
      {BRW_M_POLLS_SCHEDULED, brw_basis_names},
  };
  for (size_t i = 0; i < sizeof(uses) / sizeof(uses[0]); i++)
    assert_ptr_equal(brw_metrics_def(uses[i].id)->known, uses[i].names);
}

/* The `enum` at a JSON path of a schema file, as a NULL-ended array of
 * borrowed strings (from *root, which the caller frees). */
static size_t schema_enum(const char *file, const char *const *path,
                          json_t **root, const char **out, size_t max) {
  char p[1024];
  src_path(p, sizeof(p), file);
  json_error_t err;
  *root = json_load_file(p, 0, &err);
  assert_non_null(*root);
  json_t *node = *root;
  for (; *path; path++) {
    node = json_object_get(node, *path);
    assert_non_null(node);
  }
  json_t *e = json_object_get(node, "enum");
  assert_true(json_is_array(e));
  size_t n = json_array_size(e);
  assert_true(n < max);
  for (size_t i = 0; i < n; i++)
    out[i] = json_string_value(json_array_get(e, i));
  out[n] = NULL;
  return n;
}

static void test_schemas_list_the_words(void **state) {
  (void)state;
  const char *words[64];
  json_t *root;

  /* error.reason of a DLQ record: exactly the DLQ reasons. */
  static const char *const dlq_path[] = {"properties", "headers", "properties",
                                         "error.reason", NULL};
  size_t n = schema_enum("schemas/dlq-record.schema.json", dlq_path, &root,
                         words, 64);
  assert_int_equal(n, BRW_DLQ__COUNT);
  for (size_t i = 0; i < n; i++)
    assert_true(brw_vocab_find(brw_dlq_reason_names, words[i]) >= 0);
  json_decref(root);

  /* A report's outcome: every final outcome (the rest are the progress
   * statuses). */
  static const char *const report_path[] = {"properties", "outcome", NULL};
  n = schema_enum("schemas/report.schema.json", report_path, &root, words, 64);
  for (int i = 0; i < BRW_OUTCOME__COUNT; i++)
    assert_true(brw_vocab_find(words, brw_outcome_names[i]) >= 0);
  /* ... and exactly the statuses plus expired. */
  for (int i = 0; i < BRW_STATUS__COUNT; i++)
    assert_true(brw_vocab_find(words, brw_status_names[i]) >= 0);
  assert_int_equal(n, BRW_STATUS__COUNT + 1);
  json_decref(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tables_match_enums),
      cmocka_unit_test(test_metrics_use_the_tables),
      cmocka_unit_test(test_schemas_list_the_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
