/* Fuzz target: input events (brw_event_parse, brw_event_parse_msg, SPEC §3
 * and CloudEvents).
 *
 * The input is one Kafka message value. It is parsed three ways: with the
 * default 64 KiB limit and a full error buffer; with no limit and a tiny
 * error buffer (truncation); and with a limit below its size, which must
 * fail as too_large without reading the value. Then with configured type
 * names, which may only widen what is accepted.
 *
 * An input that begins with a header block is also a message with headers:
 * lines "name:value" naming one of the headers the parser reads
 * (content-type, ce_specversion, ce_type, ce_time; a line with the name
 * alone is a header with a null value), ended by an empty line; the rest is
 * the value. Each header value is copied into a buffer of exactly its size,
 * so that AddressSanitizer catches a read past its length. Every outcome is
 * checked against the contract in event.h, not only for memory errors. */
#include "brw/error.h"
#include "brw/event.h"
#include "fuzz.h"

#include <string.h>
#include <strings.h>

/* The configured names the target parses with, as a list (the parser's
 * input) and one by one (the target's own oracle). */
static const brw_event_types_t TYPES = {.sent = "com.example.sent, x.sent",
                                        .finished = "com.example.finished"};
static const char *const SENT_NAMES[] = {"campaign.sent", "com.example.sent",
                                         "x.sent", NULL};
static const char *const FINISHED_NAMES[] = {"campaign.finished",
                                             "com.example.finished", NULL};

static int account_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

/* Checks one result against the header's promises. */
static void check(int rc, const brw_event_t *ev, const char *reason,
                  const char *err, size_t errlen) {
  FUZZ_CHECK(strlen(err) < errlen);
  FUZZ_CHECK(fuzz_is_one_line(err));
  FUZZ_CHECK(ev->shape == BRW_EVENT_PLAIN || ev->shape == BRW_EVENT_CE_BINARY ||
             ev->shape == BRW_EVENT_CE_STRUCTURED);
  if (rc == 0) {
    size_t n = strlen(ev->account);
    FUZZ_CHECK(reason == NULL);
    FUZZ_CHECK(ev->type == BRW_EVENT_SENT || ev->type == BRW_EVENT_FINISHED);
    FUZZ_CHECK(ev->campaign_id >= 1 && ev->campaign_id <= BRW_CAMPAIGN_ID_MAX);
    FUZZ_CHECK(n >= 1 && n <= BRW_ACCOUNT_NAME_MAX);
    for (size_t i = 0; i < n; i++)
      FUZZ_CHECK(account_char(ev->account[i]));
    return;
  }
  FUZZ_CHECK(rc == BRW_EPARSE || rc == BRW_ETOOLARGE);
  FUZZ_CHECK(reason != NULL);
  FUZZ_CHECK(!strcmp(reason, BRW_REASON_INVALID_JSON) ||
             !strcmp(reason, BRW_REASON_INVALID_ID) ||
             !strcmp(reason, BRW_REASON_UNKNOWN_TYPE) ||
             !strcmp(reason, BRW_REASON_UNKNOWN_ACCOUNT) ||
             !strcmp(reason, BRW_REASON_TOO_LARGE));
  FUZZ_CHECK((rc == BRW_ETOOLARGE) == !strcmp(reason, BRW_REASON_TOO_LARGE));
  /* The message of a failure is never empty when there is room for it. */
  FUZZ_CHECK(errlen < 2 || err[0] != '\0');
}

static void same_event(const brw_event_t *a, const brw_event_t *b) {
  FUZZ_CHECK(a->type == b->type);
  FUZZ_CHECK(a->campaign_id == b->campaign_id);
  FUZZ_CHECK(!strcmp(a->account, b->account));
  FUZZ_CHECK(a->occurred_at_ms == b->occurred_at_ms);
  FUZZ_CHECK(a->shape == b->shape);
}

/* Whether the n bytes at s are one of the names. */
static int among(const char *s, size_t n, const char *const *names) {
  for (; *names; names++)
    if (strlen(*names) == n && !memcmp(*names, s, n))
      return 1;
  return 0;
}

/* The header index of the name at s (up to ':' or the end of the line, n
 * bytes), or -1. */
static int header_index(const char *s, size_t n) {
  for (int h = 0; h < BRW_EVENT_H__COUNT; h++)
    if (strlen(brw_event_header_names[h]) == n &&
        !memcmp(brw_event_header_names[h], s, n))
      return h;
  return -1;
}

/* Reads the header block, if the input has one: fills in->headers (values
 * in copies[], malloc'ed, exactly their size; the caller frees) and returns
 * where the value begins; 0 when the input has no header block. */
static size_t read_headers(const uint8_t *data, size_t size,
                           brw_event_input_t *in, uint8_t **copies) {
  const char *s = (const char *)data, *p = s;
  const char *blank = NULL;
  for (size_t i = 0; i + 1 < size; i++) {
    if (s[i] == '\n' && s[i + 1] == '\n') {
      blank = s + i;
      break;
    }
  }
  if (!blank)
    return 0;
  while (p < blank) {
    const char *nl = memchr(p, '\n', (size_t)(blank - p));
    const char *eol = nl ? nl : blank;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    int h = header_index(p, (size_t)((colon ? colon : eol) - p));
    if (h < 0)
      return 0; /* not a header block after all: the first line decides */
    free(copies[h]);
    copies[h] = NULL;
    in->headers[h].ptr = NULL;
    in->headers[h].len = 0;
    if (colon) {
      size_t n = (size_t)(eol - colon - 1);
      copies[h] = malloc(n ? n : 1);
      FUZZ_CHECK(copies[h] != NULL);
      memcpy(copies[h], colon + 1, n);
      in->headers[h].ptr = copies[h];
      in->headers[h].len = n;
    }
    p = eol + 1;
  }
  return (size_t)(blank + 2 - s);
}

/* What the contract says of a message with headers: the shape the headers
 * decide, and a binary event's type from ce_type alone. */
static void check_headers(const brw_event_input_t *in, int rc,
                          const brw_event_t *ev) {
  const brw_event_bytes_t *ct = &in->headers[BRW_EVENT_H_CONTENT_TYPE];
  const brw_event_bytes_t *sv = &in->headers[BRW_EVENT_H_CE_SPECVERSION];
  const brw_event_bytes_t *ty = &in->headers[BRW_EVENT_H_CE_TYPE];
  int structured = 0;
  if (ct->ptr) {
    const char *s = ct->ptr;
    size_t n = ct->len, k = strlen("application/cloudevents");
    while (n > 0 && (*s == ' ' || *s == '\t'))
      s++, n--;
    structured = n >= k && !strncasecmp(s, "application/cloudevents", k);
  }
  if (structured) {
    FUZZ_CHECK(ev->shape == BRW_EVENT_CE_STRUCTURED);
  } else if (ty->ptr || sv->ptr) {
    FUZZ_CHECK(ev->shape == BRW_EVENT_CE_BINARY);
    if (rc == 0) {
      FUZZ_CHECK(ty->ptr != NULL);
      FUZZ_CHECK(!sv->ptr || (sv->len == 3 && !memcmp(sv->ptr, "1.0", 3)));
      if (among(ty->ptr, ty->len, SENT_NAMES))
        FUZZ_CHECK(ev->type == BRW_EVENT_SENT);
      else if (among(ty->ptr, ty->len, FINISHED_NAMES))
        FUZZ_CHECK(ev->type == BRW_EVENT_FINISHED);
      else
        FUZZ_CHECK(0 && "accepted an unknown ce_type");
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  brw_event_t ev, ev2;
  const char *reason, *reason2;
  char err[256], small[8];
  int rc, rc2;

  rc = brw_event_parse(data, size, 64 * 1024, &ev, &reason, err, sizeof(err));
  check(rc, &ev, reason, err, sizeof(err));

  /* No limit, a truncated message: the same verdict and the same event. */
  rc2 = brw_event_parse(data, size, 0, &ev2, &reason, small, sizeof(small));
  check(rc2, &ev2, reason, small, sizeof(small));
  if (size <= 64 * 1024) {
    FUZZ_CHECK(rc == rc2);
    if (rc == 0)
      same_event(&ev, &ev2);
  }

  /* Configured names only add to what is accepted: what was an event is
   * the same event with them. */
  {
    brw_event_input_t in;
    memset(&in, 0, sizeof(in));
    in.value = data;
    in.len = size;
    rc2 = brw_event_parse_msg(&in, &TYPES, 64 * 1024, &ev2, &reason, err,
                              sizeof(err));
    check(rc2, &ev2, reason, err, sizeof(err));
    if (rc == 0) {
      FUZZ_CHECK(rc2 == 0);
      same_event(&ev, &ev2);
    }
  }

  /* A message with headers: the contract, the shape the headers decide,
   * and a verdict that does not depend on the error buffer. */
  {
    brw_event_input_t in;
    uint8_t *copies[BRW_EVENT_H__COUNT] = {NULL};
    size_t at;
    memset(&in, 0, sizeof(in));
    if ((at = read_headers(data, size, &in, copies)) > 0) {
      in.value = data + at;
      in.len = size - at;
      rc = brw_event_parse_msg(&in, &TYPES, 64 * 1024, &ev, &reason, err,
                               sizeof(err));
      check(rc, &ev, reason, err, sizeof(err));
      check_headers(&in, rc, &ev);
      rc2 = brw_event_parse_msg(&in, &TYPES, 64 * 1024, &ev2, &reason2, small,
                                sizeof(small));
      check(rc2, &ev2, reason2, small, sizeof(small));
      FUZZ_CHECK(rc == rc2);
      FUZZ_CHECK(ev.shape == ev2.shape);
      if (rc == 0)
        same_event(&ev, &ev2);
      else
        FUZZ_CHECK(!strcmp(reason, reason2));
    }
    for (int h = 0; h < BRW_EVENT_H__COUNT; h++)
      free(copies[h]);
  }

  /* A limit below the size fails before parsing, whatever the bytes (a
   * limit of 0 means none, hence size > 1). */
  if (size > 1) {
    rc = brw_event_parse(data, size, size - 1, &ev, &reason, err, sizeof(err));
    FUZZ_CHECK(rc == BRW_ETOOLARGE);
    check(rc, &ev, reason, err, sizeof(err));
  }
  return 0;
}
