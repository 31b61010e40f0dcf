/* The app's side of the consumer group (part of the application;
 * src/app_int.h says which file owns what): commits, assignments and the
 * revocation that hands partitions over without blocking the loop. Loop
 * thread only. */

#include "app_int.h"

#include "brw/health.h"
#include "brw/kafka.h"
#include "brw/list.h"
#include "brw/log.h"
#include "brw/metrics.h"
#include "brw/partitions.h"

/* How long a revocation waits for the reports under way of the partitions
 * that leave, then for its commit (on the loop, through callbacks; the
 * rebalance waits meanwhile). */
#define REVOKE_DRAIN_MS 5000
#define REVOKE_COMMIT_MS 5000

/* ------------------------------------------------------------------------ */
/* Partitions and offsets                                                   */

/* Commits every held partition (only the revoking ones, when
 * `only_revoking`) whose position or completed-offset map changed since it
 * was last sent (brw_partitions_commit_list). */
void brw__app_commit_now(brw_app_t *app, int only_revoking, int async) {
  brw_kafka_positions_t l = {0};
  if (app->txn)
    return; /* exactly once: only transactions commit offsets */
  if (brw_partitions_commit_list(&app->parts, only_revoking, &l) == 0) {
    brw_kafka_positions_clear(&l);
    return;
  }
  app->st.commits++;
  if (brw_kafka_commit(app->kafka, &l, async) != 0)
    brw_partitions_commit_failed(&app->parts, &l); /* again at the next tick */
  brw_kafka_positions_clear(&l);
}

/* An asynchronous commit completed. A failed partition is sent again at
 * the next tick; so is one whose confirmed position is not the last one sent
 * (an older commit that librdkafka retried may complete after a newer one and
 * overwrite it: re-sending the newest puts it back). */
void brw__app_on_commit_done(void *ctx, int err,
                             const brw_kafka_positions_t *offsets) {
  brw_app_t *app = ctx;
  brw_partitions_commit_done(&app->parts, err, offsets);
  if (app->revoke.active)
    brw__app_revoke_kick(app);
}

/* One asynchronous commit at a time: a newer commit never races an older
 * one that librdkafka is still retrying. */
void brw__app_on_commit_timer(uv_timer_t *t) {
  brw_app_t *app = t->data;
  if (brw_kafka_commits_in_flight(app->kafka) == 0)
    brw__app_commit_now(app, 0, 1);
}

/* Assignment: the partitions module starts the new partitions afresh,
 * with the completed-offset maps read with their committed offsets
 * (brw_partitions_assign); partitions already held keep their campaigns,
 * timers and fetches. */
void brw__app_on_assign(void *ctx, const brw_kafka_positions_t *parts) {
  brw_app_t *app = ctx;
  brw_partitions_assign(&app->parts, parts);
  brw_metrics_set(app->m, BRW_M_PARTITIONS_ASSIGNED, NULL, app->parts.assigned);
  brw_metrics_inc(app->m, BRW_M_PARTITIONS_MOVED, "assigned", parts->cnt);
  /* Joined, with or without partitions: a member of a group with more
   * members than partitions gets none, and is ready. */
  app->joined = 1;
  brw_health_clear(app->health, BRW_BLOCK_GROUP_NOT_JOINED, uv_now(app->loop));
  brw__app_update_backpressure(app);
}

static void forget_partition(brw_app_t *app, brw_part_t *pt) {
  while (!brw_list_empty(&pt->campaigns)) {
    campaign_t *c = brw_list_entry(pt->campaigns.next, campaign_t, pnode);
    brw__app_campaign_revoke(c);
  }
  brw_partitions_forget(&app->parts, pt);
  brw_metrics_set(app->m, BRW_M_PARTITIONS_ASSIGNED, NULL, app->parts.assigned);
}

/* Revocation (SPEC §6): the partitions that leave hand over what they
 * completed, without blocking the loop.
 * 1. At once: they take no more events (on_message skips them; the kafka
 *    module paused them) and their campaigns are dropped, fetches and
 *    timers cancelled; their events stay uncommitted, so the next owner
 *    tracks them. Every other partition's campaigns go on untouched.
 * 2. The records under way that complete their offsets are waited for,
 *    through delivery callbacks, up to REVOKE_DRAIN_MS, and so is an
 *    asynchronous commit under way (it must not land after ours).
 * 3. Their positions and completed-offset maps are committed
 *    asynchronously; the answer is waited for up to REVOKE_COMMIT_MS.
 * 4. They are forgotten and brw_kafka_revoke_done lets the rebalance go on.
 * A lost assignment (another member may own the partitions already) skips
 * 2 and 3; inside the consumer's close (now = 1) 3 is a synchronous commit
 * (shutdown flushed the producer before). A record acknowledged after its
 * partition left is replayed by the next owner: at least once. */
void brw__app_revoke_finish(brw_app_t *app) {
  int moved = 0;
  for (int32_t p = 0; p < app->parts.nparts; p++) {
    brw_part_t *pt = brw_partitions_get(&app->parts, p);
    if (pt && pt->assigned && pt->revoking) {
      forget_partition(app, pt);
      moved++;
    }
  }
  if (app->revoke.active) {
    uint64_t took = uv_now(app->loop) - app->revoke.began;
    brw_logj(BRW_LOG_INFO,
             json_pack("{si sI}", "partitions", moved, "ms", (json_int_t)took),
             "partitions handed over");
    brw_metrics_observe(app->m, BRW_M_REVOKE_SECONDS, NULL,
                        (double)took / 1000.0);
  }
  app->revoke.active = 0;
  uv_timer_stop(&app->revoke_timer);
  if (app->kafka)
    brw_kafka_revoke_done(app->kafka);
}

static void on_revoke_timer(uv_timer_t *t);

/* Goes on with the revocation on the next loop iteration (not from inside
 * the callback that calls this: a delivery report or a commit result). */
void brw__app_revoke_kick(brw_app_t *app) {
  /* Exactly once: the transaction cycle releases the partitions. */
  if (app->revoke.active && !app->txn)
    uv_timer_start(&app->revoke_timer, on_revoke_timer, 0, 0);
}

static void revoke_step(brw_app_t *app) {
  if (!app->revoke.active)
    return;
  uint64_t now = uv_now(app->loop);
  int late = now >= app->revoke.deadline;
  if (!app->revoke.committing) {
    size_t left = brw_partitions_revoking_inflight(&app->parts);
    if ((left || brw_kafka_commits_in_flight(app->kafka)) && !late) {
      uv_timer_start(&app->revoke_timer, on_revoke_timer,
                     app->revoke.deadline - now, 0);
      return;
    }
    if (left)
      brw_logj(BRW_LOG_WARN, json_pack("{sI}", "records", (json_int_t)left),
               "revoke: records not acknowledged in %d ms; their events "
               "will be reported again by the next owner",
               REVOKE_DRAIN_MS);
    app->revoke.committing = 1;
    app->revoke.deadline = now + REVOKE_COMMIT_MS;
    brw__app_commit_now(app, 1, 1);
    late = 0;
  }
  if (brw_kafka_commits_in_flight(app->kafka) && !late) {
    uv_timer_start(&app->revoke_timer, on_revoke_timer,
                   app->revoke.deadline - now, 0);
    return;
  }
  brw__app_revoke_finish(app);
}

static void on_revoke_timer(uv_timer_t *t) {
  revoke_step(t->data);
}

void brw__app_on_revoke(void *ctx, const brw_kafka_positions_t *parts, int lost,
                        int now) {
  brw_app_t *app = ctx;
  int n = 0;
  for (int i = 0; i < parts->cnt; i++) {
    brw_part_t *pt =
        brw_partitions_revoke(&app->parts, parts->elems[i].partition);
    if (!pt)
      continue;
    n++;
    while (!brw_list_empty(&pt->campaigns))
      brw__app_campaign_revoke(
          brw_list_entry(pt->campaigns.next, campaign_t, pnode));
  }
  brw_metrics_inc(app->m, BRW_M_PARTITIONS_MOVED, lost ? "lost" : "revoked",
                  n);
  app->revoke.active = 1;
  app->revoke.committing = 0;
  app->revoke.began = uv_now(app->loop);
  app->revoke.deadline = app->revoke.began + REVOKE_DRAIN_MS;
  /* A lost assignment means the member left the group (session timeout,
   * fenced): not joined until the next assignment. An ordinary revoke is
   * part of a rebalance the member takes part in. */
  if (lost) {
    app->joined = 0;
    app->unjoined_ms = uv_now(app->loop);
  }
  if (app->txn) {
    /* Exactly once: the transaction cycle commits every record ready now
     * (or, lost, aborts and drops them) before the partitions go; the
     * release comes through its step (src/app_txn.c). Inside the
     * consumer's close the cycle is closed already (shutdown stopped it)
     * and releases at once; if it is not, the revocation ends anyway and
     * what is uncommitted is reported again by the next owner. */
    brw__app_txn_revoke(app, lost);
    if (now && app->revoke.active)
      brw__app_revoke_finish(app);
    return;
  }
  if (lost) {
    brw__app_revoke_finish(app);
  } else if (now || !app->kafka || n == 0) {
    if (n)
      brw__app_commit_now(app, 1, 0);
    brw__app_revoke_finish(app);
  } else {
    revoke_step(app);
  }
}
