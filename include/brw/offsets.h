/* Per-partition completion tracking (SPEC §6).
 *
 * Events of a partition complete out of order: a DLQ record may be
 * acknowledged at once while an earlier campaign is polled for hours. The
 * committable position is the lowest offset received and not yet done (or,
 * when nothing is pending, one past the highest offset received), so a commit
 * never covers an event whose report the broker has not acknowledged.
 *
 * Offsets are added in increasing order (as a consumer receives them; gaps
 * from compaction or transaction markers are fine). Storage is a ring of the
 * pending window; memory grows with the distance between the oldest pending
 * offset and the newest received one, one byte and about one bit each.
 */
#ifndef BRW_OFFSETS_H
#define BRW_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct brw_offsets_s brw_offsets_t;

/* Returns a new tracker, owned by the caller (brw_offsets_free), or NULL. */
brw_offsets_t *brw_offsets_new(void);
void brw_offsets_free(brw_offsets_t *o);

/* Records a received offset as pending. Offsets must increase; an offset not
 * above the last one added (a redelivery after a seek) returns BRW_EINVAL and
 * changes nothing. Returns 0, BRW_EINVAL or BRW_ENOMEM. */
int brw_offsets_add(brw_offsets_t *o, int64_t offset);

/* Marks a pending offset done. Returns 0, or BRW_ENOENT when the offset is
 * not pending (already done, never added, or below the window). */
int brw_offsets_done(brw_offsets_t *o, int64_t offset);

/* The position to commit: the lowest pending offset, or one past the highest
 * added when none is pending; -1 when nothing was ever added. */
int64_t brw_offsets_committable(const brw_offsets_t *o);

/* Number of offsets added and not yet done. */
size_t brw_offsets_pending(const brw_offsets_t *o);

/* The completed-offset map (SPEC §6): which offsets above the commit
 * position are already done, as compact text for the commit's metadata, so
 * that after a restart or a rebalance the next owner skips them.
 *
 * Format: "brw1:<base>:<n>,<d>,<n>,<d>,..." where <base> is the commit
 * position and the decimal numbers are the lengths of alternating runs of
 * offsets not done (pending, or never received) and done, starting at base.
 * Trailing not-done offsets are left out.
 *
 * brw_offsets_encode writes at most `len` bytes (NUL included). When the
 * whole map does not fit, it keeps the runs that fit: the rest is replayed,
 * never lost. Returns the length written, or 0 when there is nothing done
 * above the commit position (then no metadata is needed).
 *
 * The cost grows with the number of runs written (at most about len / 4),
 * times log64 of the window, not with the window itself. */
size_t brw_offsets_encode(const brw_offsets_t *o, char *buf, size_t len);

/* Done ranges [start, end) decoded from a map, in increasing order. */
typedef struct {
  int64_t (*ranges)[2];
  size_t n;
} brw_offset_ranges_t;

/* Decodes a map read back with the committed offset `committed`. A map in
 * another format, with another base, or malformed is refused (BRW_EPARSE)
 * and *out is left empty: the events are then replayed. On success the
 * caller frees out->ranges. */
int brw_offsets_decode(const char *meta, size_t len, int64_t committed,
                       brw_offset_ranges_t *out);

/* Whether `offset` lies in one of the ranges. `cursor` (start at 0) makes a
 * walk over increasing offsets O(1) per call. */
int brw_offset_ranges_contain(const brw_offset_ranges_t *r, size_t *cursor,
                              int64_t offset);

#endif
