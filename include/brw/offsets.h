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
 * offset and the newest received one, one byte each.
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

#endif
