"""End to end on a real Kafka broker: `kill -9` of the worker mid-run, a
restart in the same consumer group, a SIGTERM mid-run (exit 0 in time, the
committed offsets covering only reported events), another restart. Every
campaign is still reported (at least once); duplicates are counted and
printed. A last restart after a clean stop must fetch nothing."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, end_offsets,  # noqa: E402
                     log, parse_args, produce, run_main)
from pipeline import (Sim, Worker, compare_with_truth, event, finals, finals_by_campaign,  # noqa: E402
                      scratch_dir, sigterm_mid_run, stop_leftovers, uncovered_offsets, wait_reports, wait_until,
                      worker_config)

TOPICS = {"input": "crash.events", "output": "crash.reports", "dlq": "crash.dlq"}
N = 300
GROUP = "brw-e2e-crash"
# A dead member holds its partitions until its session times out: keep the
# session short (the broker's minimum) so the restart takes over quickly.
SESSION = {"kafka.consumer.session.timeout.ms": "6000",
           "kafka.consumer.heartbeat.interval.ms": "1000"}


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("crash")
    ids = list(range(300001, 300001 + N))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "11", "--time-scale", "120").start()
        workers = []
        try:
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids])
            cfg = worker_config(bs, sim, GROUP, TOPICS, **SESSION)
            w1 = Worker(args.bin_dir, work, cfg, name="worker1").start()
            workers.append(w1)

            # Let a part of the campaigns finish, then crash.
            def reported():
                return len(finals(bs, TOPICS["output"]))
            ok = wait_until(lambda: reported() >= N // 4, timeout=180, interval=1.0)
            checks.check(ok, "some campaigns reported before the crash")
            before = reported()
            w1.proc.kill()
            checks.eq(w1.proc.returncode, -signal.SIGKILL, "worker killed with SIGKILL")
            log(f"killed worker 1 after {before} campaigns were reported")

            w2 = Worker(args.bin_dir, work, cfg, name="worker2").start()
            workers.append(w2)

            # SIGTERM mid-run: exit 0 within shutdown.timeout, and every
            # input offset below the committed position has its report.
            ok = wait_until(lambda: reported() >= N // 2, timeout=180, interval=1.0)
            checks.check(ok, "more campaigns reported after the restart")
            sigterm_mid_run(checks, w2)
            reported_at = {(v["tracking"]["source"]["partition"], v["tracking"]["source"]["offset"])
                           for rs in finals(bs, TOPICS["output"]).values() for v in rs}
            uncovered = uncovered_offsets(bs, GROUP, TOPICS["input"], range(4), reported_at)
            checks.eq(uncovered[:5], [], "committed offsets cover only reported events")

            w3 = Worker(args.bin_dir, work, cfg, name="worker3").start()
            workers.append(w3)
            reports = wait_reports(bs, TOPICS["output"], set(ids), timeout=300)
            by_id = finals_by_campaign(reports)
            missing = set(ids) - set(by_id)
            dups = sum(len(v) - 1 for v in by_id.values())
            print(f"crash/restart: {N} campaigns in, {len(by_id)} reported, "
                  f"{dups} duplicate reports after kill -9 and a SIGTERM restart",
                  flush=True)
            checks.eq(len(missing), 0, "every campaign reported after kill -9 and restarts")
            wrong = [(c, d) for c, rs in by_id.items()
                     for d in [compare_with_truth(rs[-1], sim.truth(c))] if d]
            checks.eq(wrong[:3], [], "reports after the restarts equal the simulator's truth")

            ends = end_offsets(bs, TOPICS["input"])
            ok = wait_until(lambda: {p: o for p, (o, _) in committed_offsets(
                bs, GROUP, TOPICS["input"], ends).items()} == ends, timeout=30)
            checks.check(ok, "committed offsets reach the end after the restart")

            # Clean stop, then a restart: nothing is left to fetch.
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
        finally:
            stop_leftovers(workers, sim)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
