"""End to end on a real Kafka broker: a consumer group of workers on a
12-partition topic with 3,000 campaigns. Start one worker, scale to three,
`kill -9` one, SIGTERM another, restart both: every campaign is reported with
the simulator's truth, the committed offsets reach the end, and duplicate
reports are counted and printed.

--protocol classic (default): the worker's own choice of assignor, checked
against the librdkafka line it runs with (cooperative-sticky from 2.10.1 on,
eager roundrobin below). --protocol consumer: KIP-848
(kafka.consumer.group.protocol=consumer; the broker assigns, its session
timeout is a broker setting, lowered here to 6 s like the classic run's).
Incremental runs also check that a scale step moved only some partitions:
no member had its whole assignment revoked by a member joining."""

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


def check_protocol(checks: Checks, workers: dict, kip848: bool) -> None:
    """The protocol the workers ran is the one expected for their librdkafka,
    and with an incremental one a rebalance moved only some partitions."""
    w1 = workers["w1"].log_lines()
    start = next((l for l in w1 if l.get("msg") == "bsg-report-worker started"), {})
    ver = tuple(int(x) for x in str(start.get("librdkafka", "0.0.0")).split(".")[:3])
    proto = next((l for l in w1 if l.get("msg", "").startswith("consumer group protocol")), {})
    want = ("(broker side)" if kip848 else
            "cooperative-sticky" if ver >= (2, 10, 1) else "roundrobin")
    checks.eq(proto.get("partition.assignment.strategy"), want,
              f"assignor for librdkafka {start.get('librdkafka')}")
    incremental = want != "roundrobin"
    revokes = [l for w in workers.values() for l in w.log_lines()
               if l.get("msg") == "partitions revoked"]
    checks.check(len(revokes) > 0, "rebalances revoked partitions")
    checks.check(all(l.get("protocol") == ("cooperative" if incremental else "eager")
                     for l in revokes),
                 f"every rebalance was {'incremental' if incremental else 'eager'}")
    if incremental:
        # w1 held all 12 partitions when w2 and w3 joined: an incremental
        # rebalance takes some away and leaves w1 the rest.
        first = next((l for l in w1 if l.get("msg") == "partitions revoked"), {})
        checks.check(0 < first.get("count", 0) < 12,
                     f"scale-out revoked {first.get('count')} of w1's 12 partitions, not all")
        handed = [l for w in workers.values() for l in w.log_lines()
                  if l.get("msg") == "partitions handed over"]
        checks.check(len(handed) > 0 and all(l.get("ms", 1e9) < 10000 for l in handed),
                     f"{len(handed)} revocations handed over within their bounds "
                     f"(longest {max((l.get('ms', 0) for l in handed), default=0)} ms)")


def main() -> int:
    args = parse_args(__doc__, extra=lambda p: p.add_argument(
        "--protocol", choices=("classic", "consumer"), default="classic"))
    checks = Checks()
    work = scratch_dir("group")
    ids = list(range(800001, 800001 + N))
    kip848 = args.protocol == "consumer"
    group = GROUP + ("-kip848" if kip848 else "")
    # KIP-848: session timeout and heartbeat are the broker's.
    broker_props = {"group.consumer.min.session.timeout.ms": "3000",
                    "group.consumer.session.timeout.ms": "6000",
                    "group.consumer.min.heartbeat.interval.ms": "500",
                    "group.consumer.heartbeat.interval.ms": "1000"} if kip848 else {}
    with KafkaBroker(extra_props=broker_props) as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 12, TOPICS["output"]: 12, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "31", "--time-scale", "60").start()
        workers = {}
        try:
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids])
            opts = {"api.rate_limit": "400"}
            if kip848:
                opts["kafka.consumer.group.protocol"] = "consumer"
            else:
                opts["kafka.consumer.session.timeout.ms"] = "6000"
                opts["kafka.consumer.heartbeat.interval.ms"] = "1000"
            cfg = worker_config(bs, sim, group, TOPICS, **opts)

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
            print(f"group scaling ({args.protocol}): {N} campaigns in, {len(by_id)} "
                  f"reported, {dups} duplicate reports (1 -> 3 workers, kill -9, "
                  f"SIGTERM, restarts)", flush=True)
            checks.eq(len(set(ids) - set(by_id)), 0, "every campaign reported")
            wrong = [c for c, rs in by_id.items() if compare_with_truth(rs[-1], sim.truth(c))]
            checks.eq(wrong[:5], [], "reports equal the simulator's truth")
            ends = end_offsets(bs, TOPICS["input"])
            ok = wait_until(lambda: {p: o for p, (o, _) in committed_offsets(
                bs, group, TOPICS["input"], ends).items()} == ends, timeout=60)
            checks.check(ok, "committed offsets reach the end of all 12 partitions")
            check_protocol(checks, workers, kip848)
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
