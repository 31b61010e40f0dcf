/* Record headers: a small owned list of name/value pairs, in order, with
 * repeated names allowed (Kafka's record headers). The application builds
 * the headers of the records it produces with it and reads those of a
 * refused record; src/kafka.c converts it to and from librdkafka's own
 * type at the boundary, so that nothing else sees librdkafka.
 *
 * Pure: no I/O, no logging. Not thread-safe (the loop thread owns it). */
#ifndef BRW_HEADERS_H
#define BRW_HEADERS_H

#include <stddef.h>

typedef struct brw_headers_s brw_headers_t;

/* A new, empty list owned by the caller (brw_headers_free), or NULL when
 * out of memory. */
brw_headers_t *brw_headers_new(void);
/* Frees the list and everything in it; NULL is fine. */
void brw_headers_free(brw_headers_t *h);

/* Appends a header. `name` (NUL-terminated) and `value` (len bytes) are
 * copied. value = NULL is a null value (len ignored), as Kafka allows.
 * Returns 0 or BRW_ENOMEM (the list is unchanged). */
int brw_headers_add(brw_headers_t *h, const char *name, const void *value,
                    size_t len);
/* The same with a NUL-terminated value. */
int brw_headers_add_str(brw_headers_t *h, const char *name, const char *value);

/* The value of the last header named `name`: 0 with *value (borrowed,
 * valid until the list changes; NULL for a null value) and *len set, or
 * BRW_ENOENT. */
int brw_headers_get_last(const brw_headers_t *h, const char *name,
                         const void **value, size_t *len);

/* The i-th header, in order: 0 with *name, *value and *len set (borrowed),
 * or BRW_ENOENT past the end. */
int brw_headers_get(const brw_headers_t *h, size_t i, const char **name,
                    const void **value, size_t *len);

size_t brw_headers_count(const brw_headers_t *h);

/* Removes every header named `name`. */
void brw_headers_remove(brw_headers_t *h, const char *name);

/* A copy owned by the caller, or NULL when out of memory (or h is NULL). */
brw_headers_t *brw_headers_copy(const brw_headers_t *h);

#endif
