"""End to end on a real Kafka broker: delivery.guarantee = exactly_once
(issue 14) through a `kill -9`, a SIGTERM mid-run and restarts.

Every worker runs with the same group and the same worker.instance ("eo-1"),
so its transactional.id is the same across restarts and the next worker's
init_transactions fences the killed one and aborts its open transaction.
300 campaigns and 10 bad events (half produced up front, half just before
the kill, so that some DLQ records may be in the transaction it interrupts).

  1. worker1 runs until a quarter of the campaigns have a final report, then
     is killed with SIGKILL;
  2. worker2 (same config) runs until half of them have one, then SIGTERM:
     exit 0 within shutdown.timeout + 5 s, the committed offsets covering
     only events whose report or DLQ record is committed;
  3. worker3 runs until every campaign has a final report.

Asserts, with read_committed consumers: every campaign exactly one final
report (the duplicates are printed; the check is 0), none missing, reports
equal to the simulator's truth; every bad event exactly one DLQ record
(counted by its source.partition and source.offset headers) with its reason;
the group's committed offsets reach the end of the input topic. Prints (does
not assert) how many records a read_uncommitted reader sees besides: aborted
transactions' records show there. A clean stop of worker3 and a restart
(worker4) that fetches nothing and publishes nothing end it."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all,  # noqa: E402
                     log, parse_args, produce, run_main)
from pipeline import (BAD_EVENTS, Sim, Worker, committed_at_end, compare_with_truth,  # noqa: E402
                      count_by, dlq_source, event, finals, scratch_dir,
                      sigterm_mid_run, stop_leftovers, uncovered_offsets, wait_reports,
                      wait_until, worker_config)

TOPICS = {"input": "eo.events", "output": "eo.reports", "dlq": "eo.dlq"}
N = 300
GROUP = "brw-e2e-exactly-once"
# The same instance name in every run: the transactional.id comes from
# group.id and worker.instance, so a restart fences its predecessor.
EXACTLY_ONCE = {"delivery.guarantee": "exactly_once", "worker.instance": "eo-1"}
# A dead member holds its partitions until its session times out: keep the
# session short (the broker's minimum) so the restart takes over quickly.
SESSION = {"kafka.consumer.session.timeout.ms": "6000",
           "kafka.consumer.heartbeat.interval.ms": "1000"}
# Bad events produced with the campaigns, and the ones produced just before
# the kill.
BAD_EARLY = BAD_EVENTS[:5]
BAD_LATE = BAD_EVENTS[5:]
UNCOMMITTED = {"isolation.level": "read_uncommitted"}


def dlq_records(bs, config=None):
    return consume_all(bs, TOPICS["dlq"], timeout=30, config=config)


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("eo")
    ids = list(range(400001, 400001 + N))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "11", "--time-scale", "120").start()
        workers = []
        try:
            # The campaigns with the first bad events interleaved; where each
            # bad event landed, and its reason, by (partition, offset).
            recs, bad = [], []  # bad: (index in recs, reason)
            for i, cid in enumerate(ids):
                recs.append((str(cid), event(cid)))
                if i % 60 == 30:
                    value, reason = BAD_EARLY[len(bad)]
                    bad.append((len(recs), reason))
                    recs.append((f"bad-{len(bad) - 1}", value))
            at = produce(bs, TOPICS["input"], recs)
            bad_at = {at[i]: reason for i, reason in bad}
            checks.eq(len(bad_at), len(BAD_EARLY), "bad events interleaved with the campaigns")

            cfg = worker_config(bs, sim, GROUP, TOPICS, **SESSION, **EXACTLY_ONCE)
            w1 = Worker(args.bin_dir, work, cfg, name="worker1").start()
            workers.append(w1)

            def reported():
                return len(finals(bs, TOPICS["output"]))

            # Let a part of the campaigns finish, then crash. A worker that
            # refuses the config exits at once: say so rather than wait.
            ok = wait_until(lambda: not w1.proc.running() or reported() >= N // 4,
                            timeout=180, interval=1.0)
            if not w1.proc.running():
                w1.proc.print_tail()
                checks.fail("worker1 runs with delivery.guarantee = exactly_once",
                            f"exited {w1.proc.returncode}")
                return checks.summary()
            checks.check(ok, "some campaigns reported before the crash")
            before = reported()
            # The other bad events just before the kill: their DLQ records
            # may be in the transaction the kill interrupts.
            late = [(f"bad-{len(BAD_EARLY) + j}", v) for j, (v, _) in enumerate(BAD_LATE)]
            for pos, (_, reason) in zip(produce(bs, TOPICS["input"], late), BAD_LATE):
                bad_at[pos] = reason
            time.sleep(0.1)
            w1.proc.kill()
            checks.eq(w1.proc.returncode, -signal.SIGKILL, "worker killed with SIGKILL")
            log(f"killed worker 1 after {before} campaigns were reported (read_committed)")

            w2 = Worker(args.bin_dir, work, cfg, name="worker2").start()
            workers.append(w2)

            # SIGTERM mid-run: exit 0 within shutdown.timeout, and every
            # input offset below the committed position has its report or
            # its DLQ record, committed.
            ok = wait_until(lambda: reported() >= N // 2, timeout=180, interval=1.0)
            checks.check(ok, "more campaigns reported after the restart")
            sigterm_mid_run(checks, w2)
            handled_at = {(v["tracking"]["source"]["partition"], v["tracking"]["source"]["offset"])
                          for rs in finals(bs, TOPICS["output"]).values() for v in rs}
            handled_at |= {dlq_source(r) for r in dlq_records(bs)}
            uncovered = uncovered_offsets(bs, GROUP, TOPICS["input"], range(4), handled_at)
            checks.eq(uncovered[:5], [], "committed offsets cover only reported or DLQ'd events")

            w3 = Worker(args.bin_dir, work, cfg, name="worker3").start()
            workers.append(w3)
            wait_reports(bs, TOPICS["output"], set(ids), timeout=300)
            # Once the offsets are committed at the end, every record the
            # worker will ever publish for them is committed too: read the
            # topics whole after that.
            at_end, ends = committed_at_end(bs, GROUP, TOPICS["input"])
            ok = wait_until(at_end, timeout=30)
            checks.check(ok, "committed offsets reach the end offsets of the input topic",
                         f"ends {ends}, committed "
                         f"{committed_offsets(bs, GROUP, TOPICS['input'], ends)}")

            by_id = finals(bs, TOPICS["output"])
            missing = set(ids) - set(by_id)
            dups = sum(len(v) - 1 for v in by_id.values())
            print(f"exactly-once: {N} campaigns in, {len(by_id)} reported, "
                  f"{dups} duplicate reports after kill -9 and a SIGTERM restart",
                  flush=True)
            checks.eq(dups, 0, "exactly one final report per campaign")
            checks.eq(len(missing), 0, "every campaign reported after kill -9 and restarts")
            checks.eq(set(by_id) - set(ids), set(), "no report for an unknown campaign")
            wrong = [(c, d) for c, rs in by_id.items()
                     for d in [compare_with_truth(rs[-1], sim.truth(c))] if d]
            checks.eq(wrong[:3], [], "reports after the restarts equal the simulator's truth")

            dlq = dlq_records(bs)
            per_source = count_by(dlq, dlq_source)
            dlq_dups = sum(n - 1 for n in per_source.values())
            print(f"exactly-once: {len(bad_at)} bad events in, {len(dlq)} DLQ records, "
                  f"{dlq_dups} duplicates", flush=True)
            checks.eq(dlq_dups, 0, "exactly one DLQ record per bad event")
            checks.eq(set(per_source), set(bad_at),
                      "every bad event, and nothing else, in the DLQ")
            reasons = {dlq_source(r): (r.header("error.reason") or b"").decode() for r in dlq}
            checks.eq({s: reasons.get(s) for s in bad_at}, bad_at,
                      "each DLQ record carries its reason")

            # What a reader that does not skip aborted transactions sees.
            committed_counts = (len(consume_all(bs, TOPICS["output"], timeout=30)), len(dlq))
            uncommitted_counts = (
                len(consume_all(bs, TOPICS["output"], timeout=30, config=UNCOMMITTED)),
                len(dlq_records(bs, config=UNCOMMITTED)))
            uncommitted_finals = finals(bs, TOPICS["output"], config=UNCOMMITTED)
            print(f"exactly-once: read_committed sees {committed_counts[0]} report records "
                  f"and {committed_counts[1]} DLQ records; read_uncommitted sees "
                  f"{uncommitted_counts[0]} and {uncommitted_counts[1]} (the difference: "
                  f"records of aborted transactions); read_uncommitted duplicate final "
                  f"reports: {sum(len(v) - 1 for v in uncommitted_finals.values())}",
                  flush=True)

            # Clean stop, then a restart: nothing is left to fetch or publish.
            w3.proc.signal(signal.SIGTERM)
            checks.eq(w3.proc.wait(timeout=30), 0, "SIGTERM after all reported: exit 0")
            req_before = sim.stats().get("detail_requests", 0)
            w4 = Worker(args.bin_dir, work, cfg, name="worker4").start()
            workers.append(w4)
            time.sleep(8)
            req_after = sim.stats().get("detail_requests", 0)
            checks.eq(req_after - req_before, 0,
                      "a restart after a clean stop fetches no completed campaign")
            w4.proc.signal(signal.SIGTERM)
            checks.eq(w4.proc.wait(timeout=30), 0, "fourth worker: exit 0")
            after = (len(consume_all(bs, TOPICS["output"], timeout=30)), len(dlq_records(bs)))
            checks.eq(after, committed_counts,
                      "the fourth worker published no report and no DLQ record")
        finally:
            stop_leftovers(workers, sim)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
