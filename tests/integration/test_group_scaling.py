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
no member had its whole assignment revoked by a member joining.

--guarantee exactly_once: delivery.guarantee = exactly_once, each worker slot
with its own worker.instance (w1, w2, w3; the restarts w2b and w3b reuse w2's
and w3's, so each fences the transactional.id of the worker it replaces),
group brw-e2e-group[-kip848]-eo. Five bad events are interleaved with the
campaigns and one more per partition is produced just before the kill -9
(some of their DLQ records may be in the transaction it interrupts). Read
with read_committed, after the committed offsets reach the end: every
campaign exactly one final report (duplicates asserted 0, not only
printed), every bad event exactly one DLQ record with its reason."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all,  # noqa: E402
                     end_offsets, log, parse_args, produce, run_main)
from pipeline import (BAD_EVENTS, Sim, Worker, add_guarantee_arg,  # noqa: E402
                      check_dlq_once, compare_with_truth, final_ids_until,
                      guarantee_config, produce_campaigns, scratch_dir, stop_leftovers,
                      wait_reports, wait_until, worker_config)

TOPICS = {"input": "group.events", "output": "group.reports", "dlq": "group.dlq"}
N = 3000
GROUP = "brw-e2e-group"
# Exactly once: the worker.instance of each worker; a restart takes the
# slot of the worker it replaces.
SLOT = {"w1": "w1", "w2": "w2", "w3": "w3", "w2b": "w2", "w3b": "w3"}


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
    def extra(p):
        p.add_argument("--protocol", choices=("classic", "consumer"), default="classic")
        add_guarantee_arg(p)
    args = parse_args(__doc__, extra=extra)
    checks = Checks()
    work = scratch_dir("group")
    ids = list(range(800001, 800001 + N))
    kip848 = args.protocol == "consumer"
    eo = args.guarantee == "exactly_once"
    group = GROUP + ("-kip848" if kip848 else "") + ("-eo" if eo else "")
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
            # exactly once: {(partition, offset): reason} of bad events
            bad_at = produce_campaigns(bs, TOPICS["input"], ids,
                                       BAD_EVENTS[:5] if eo else (), every=N // 5)
            opts = {"api.rate_limit": "400"}
            if kip848:
                opts["kafka.consumer.group.protocol"] = "consumer"
            else:
                opts["kafka.consumer.session.timeout.ms"] = "6000"
                opts["kafka.consumer.heartbeat.interval.ms"] = "1000"
            cfg = worker_config(bs, sim, group, TOPICS, **opts)

            def start(name):
                conf = dict(cfg, **guarantee_config(args.guarantee, SLOT[name]))
                workers[name] = Worker(args.bin_dir, work, conf, name=name).start()
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
                if eo:
                    # Read only until the target: see final_ids_until.
                    seen = [0]

                    def enough():
                        seen[0] = len(final_ids_until(bs, TOPICS["output"], target))
                        return seen[0] >= target
                    ok = wait_until(enough, timeout=240, interval=1.0)
                    log(f"{what}: {seen[0]} reported (read up to {target}) after "
                        f"{time.monotonic() - t:.1f} s")
                else:
                    ok = wait_until(lambda: reported() >= target, timeout=240, interval=1.0)
                    log(f"{what}: {reported()} reported after {time.monotonic() - t:.1f} s")
                checks.check(ok, f"{what}: progress to {target} reported")

            start("w1")
            step(200, "one worker")
            start("w2")
            start("w3")
            step(900, "scaled to three")
            if eo:
                # One bad event per partition just before the kill: those of
                # w2's partitions may be in the transaction it interrupts.
                late = [BAD_EVENTS[5 + p % 5] for p in range(12)]
                at = produce(bs, TOPICS["input"], [(f"bad-late-{p}", v, None, p)
                                                   for p, (v, _) in enumerate(late)])
                bad_at.update({pos: reason for pos, (_, reason) in zip(at, late)})
                time.sleep(0.1)
            workers["w2"].proc.kill()
            step(1500, "after kill -9 of w2")
            workers["w3"].proc.signal(signal.SIGTERM)
            checks.eq(workers["w3"].proc.wait(timeout=60), 0, "SIGTERM of w3 mid-run: exit 0")
            step(2000, "after SIGTERM of w3")
            start("w2b")
            start("w3b")
            finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=300)
            ends = end_offsets(bs, TOPICS["input"])

            def committed_end():
                return {p: o for p, (o, _) in committed_offsets(
                    bs, group, TOPICS["input"], ends).items()} == ends
            if eo:
                # Once the offsets are committed at the end, every record the
                # workers will publish for them is committed too: read the
                # report topic whole after that.
                at_end = wait_until(committed_end, timeout=60)
                finals = [r for r in consume_all(bs, TOPICS["output"], timeout=60)
                          if r.json().get("final")]
            by_id = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r.json())
            dups = sum(len(v) - 1 for v in by_id.values())
            mode = args.protocol + (", exactly_once" if eo else "")
            print(f"group scaling ({mode}): {N} campaigns in, "
                  f"{len(by_id)} reported, {dups} duplicate reports (1 -> 3 workers, "
                  f"kill -9, SIGTERM, restarts)", flush=True)
            if eo:
                checks.eq(dups, 0, "exactly one final report per campaign")
            checks.eq(len(set(ids) - set(by_id)), 0, "every campaign reported")
            wrong = [c for c, rs in by_id.items() if compare_with_truth(rs[-1], sim.truth(c))]
            checks.eq(wrong[:5], [], "reports equal the simulator's truth")
            ok = at_end if eo else wait_until(committed_end, timeout=60)
            checks.check(ok, "committed offsets reach the end of all 12 partitions")
            if eo:
                checks.eq(set(by_id) - set(ids), set(), "no report for an unknown campaign")
                check_dlq_once(checks, bs, TOPICS["dlq"], bad_at,
                               f"group scaling ({mode})")
            check_protocol(checks, workers, kip848)
            for name in ("w1", "w2b", "w3b"):
                w = workers[name]
                assigned = [l for l in w.log_lines() if l.get("msg") == "partitions assigned"]
                checks.check(len(assigned) > 0, f"{name} was assigned partitions")
                w.proc.signal(signal.SIGTERM)
            for name in ("w1", "w2b", "w3b"):
                checks.eq(workers[name].proc.wait(timeout=60), 0, f"{name}: SIGTERM exit 0")
        finally:
            stop_leftovers(workers.values(), sim)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
