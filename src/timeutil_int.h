/* Internal to src/timeutil.c and src/tz.c: proleptic Gregorian calendar
 * arithmetic. */
#ifndef BRW_TIMEUTIL_INT_H
#define BRW_TIMEUTIL_INT_H

#include <stdint.h>

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31), any int64 year whose
 * days fit. */
int64_t brw__days_from_civil(int64_t y, int m, int d);
/* The civil date of a day number, the inverse of brw__days_from_civil. */
void brw__civil_from_days(int64_t z, int64_t *y, int *m, int *d);

#endif
