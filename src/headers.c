/* Record headers (see include/brw/headers.h). Pure. */
#include "brw/headers.h"
#include "brw/error.h"

#include <stdlib.h>
#include <string.h>

/* One header: name and value in one allocation, the name's bytes first
 * (NUL-terminated), then the value's. */
typedef struct {
  char *name;
  char *value; /* NULL: a null value */
  size_t len;
} header_t;

struct brw_headers_s {
  header_t *v;
  size_t n, cap;
};

brw_headers_t *brw_headers_new(void) {
  return calloc(1, sizeof(brw_headers_t));
}

void brw_headers_free(brw_headers_t *h) {
  if (!h)
    return;
  for (size_t i = 0; i < h->n; i++)
    free(h->v[i].name);
  free(h->v);
  free(h);
}

int brw_headers_add(brw_headers_t *h, const char *name, const void *value,
                    size_t len) {
  if (!value)
    len = 0;
  if (h->n == h->cap) {
    size_t ncap = h->cap ? h->cap * 2 : 4;
    header_t *nv = realloc(h->v, sizeof(*nv) * ncap);
    if (!nv)
      return BRW_ENOMEM;
    h->v = nv;
    h->cap = ncap;
  }
  size_t nlen = strlen(name);
  char *buf = malloc(nlen + 1 + len + 1);
  if (!buf)
    return BRW_ENOMEM;
  memcpy(buf, name, nlen + 1);
  if (len)
    memcpy(buf + nlen + 1, value, len);
  buf[nlen + 1 + len] = '\0'; /* a text value reads as a C string too */
  h->v[h->n++] = (header_t){buf, value ? buf + nlen + 1 : NULL, len};
  return 0;
}

int brw_headers_add_str(brw_headers_t *h, const char *name, const char *value) {
  return brw_headers_add(h, name, value, value ? strlen(value) : 0);
}

int brw_headers_get_last(const brw_headers_t *h, const char *name,
                         const void **value, size_t *len) {
  for (size_t i = h ? h->n : 0; i > 0; i--) {
    if (!strcmp(h->v[i - 1].name, name)) {
      *value = h->v[i - 1].value;
      *len = h->v[i - 1].len;
      return 0;
    }
  }
  return BRW_ENOENT;
}

int brw_headers_get(const brw_headers_t *h, size_t i, const char **name,
                    const void **value, size_t *len) {
  if (!h || i >= h->n)
    return BRW_ENOENT;
  *name = h->v[i].name;
  *value = h->v[i].value;
  *len = h->v[i].len;
  return 0;
}

size_t brw_headers_count(const brw_headers_t *h) {
  return h ? h->n : 0;
}

void brw_headers_remove(brw_headers_t *h, const char *name) {
  size_t j = 0;
  for (size_t i = 0; i < h->n; i++) {
    if (!strcmp(h->v[i].name, name))
      free(h->v[i].name);
    else
      h->v[j++] = h->v[i];
  }
  h->n = j;
}

brw_headers_t *brw_headers_copy(const brw_headers_t *h) {
  if (!h)
    return NULL;
  brw_headers_t *c = brw_headers_new();
  for (size_t i = 0; c && i < h->n; i++) {
    if (brw_headers_add(c, h->v[i].name, h->v[i].value, h->v[i].len) != 0) {
      brw_headers_free(c);
      return NULL;
    }
  }
  return c;
}
