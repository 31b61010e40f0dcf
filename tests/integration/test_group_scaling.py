"""End to end on a real Kafka broker: a consumer group of workers on a
12-partition topic with 3,000 campaigns. Start one worker, scale to three,
`kill -9` one, SIGTERM another, restart both: every campaign is reported with
the simulator's truth, the committed offsets reach the end, and duplicate
reports are counted and printed."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all,  # noqa: E402
                     end_offsets, log, parse_args, produce, run_main)
from pipeline import (Sim, Worker, compare_with_truth, event, scratch_dir,  # noqa: E402
                      wait_reports, wait_until, worker_config)

TOPICS = {"input": "group.events", "output": "group.reports", "dlq": "group.dlq"}
N = 3000
GROUP = "brw-e2e-group"


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("group")
    ids = list(range(800001, 800001 + N))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 12, TOPICS["output"]: 12, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "31", "--time-scale", "60").start()
        workers = {}
        try:
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids])
            cfg = worker_config(bs, sim, GROUP, TOPICS, **{
                "api.rate_limit": "400",
                "kafka.consumer.session.timeout.ms": "6000",
                "kafka.consumer.heartbeat.interval.ms": "1000"})

            def start(name):
                workers[name] = Worker(args.bin_dir, work, cfg, name=name).start()
                return workers[name]

            def reported():
                seen = set()
                for r in consume_all(bs, TOPICS["output"], timeout=30):
                    v = r.json()
                    if v.get("final"):
                        seen.add(v["campaign_id"])
                return len(seen)

            def step(target, what):
                t = time.monotonic()
                ok = wait_until(lambda: reported() >= target, timeout=240, interval=1.0)
                log(f"{what}: {reported()} reported after {time.monotonic() - t:.1f} s")
                checks.check(ok, f"{what}: progress to {target} reported")

            start("w1")
            step(200, "one worker")
            start("w2")
            start("w3")
            step(900, "scaled to three")
            workers["w2"].proc.kill()
            step(1500, "after kill -9 of w2")
            workers["w3"].proc.signal(signal.SIGTERM)
            checks.eq(workers["w3"].proc.wait(timeout=60), 0, "SIGTERM of w3 mid-run: exit 0")
            step(2000, "after SIGTERM of w3")
            start("w2b")
            start("w3b")
            finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=300)
            by_id = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r.json())
            dups = sum(len(v) - 1 for v in by_id.values())
            print(f"group scaling: {N} campaigns in, {len(by_id)} reported, "
                  f"{dups} duplicate reports (1 -> 3 workers, kill -9, SIGTERM, restarts)",
                  flush=True)
            checks.eq(len(set(ids) - set(by_id)), 0, "every campaign reported")
            wrong = [c for c, rs in by_id.items() if compare_with_truth(rs[-1], sim.truth(c))]
            checks.eq(wrong[:5], [], "reports equal the simulator's truth")
            ends = end_offsets(bs, TOPICS["input"])
            ok = wait_until(lambda: {p: o for p, (o, _) in committed_offsets(
                bs, GROUP, TOPICS["input"], ends).items()} == ends, timeout=60)
            checks.check(ok, "committed offsets reach the end of all 12 partitions")
            for name in ("w1", "w2b", "w3b"):
                w = workers[name]
                assigned = [l for l in w.log_lines() if l.get("msg") == "partitions assigned"]
                checks.check(len(assigned) > 0, f"{name} was assigned partitions")
                w.proc.signal(signal.SIGTERM)
            for name in ("w1", "w2b", "w3b"):
                checks.eq(workers[name].proc.wait(timeout=60), 0, f"{name}: SIGTERM exit 0")
        finally:
            for w in workers.values():
                if w.proc.running():
                    w.proc.print_tail()
                    w.proc.kill()
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
