"""End to end on a real Kafka broker: static membership
(kafka.consumer.group.instance.id) with the incremental protocols.

Classic protocol (cooperative-sticky on the current line, eager roundrobin on
the floor): two static members share 4 partitions; one is killed with
`kill -9` and restarted with the same instance id within the session
timeout. It gets its own partitions back without a rebalance: the other
member revokes nothing, and every campaign is reported.

KIP-848 (current line only, skipped on a librdkafka without it): a second
member started with an instance id already in use is fenced. Kafka 4.1
answers UNRELEASED_INSTANCE_ID to the newcomer; the worker logs it and exits
1 (the member that held the id keeps running and keeps its partitions).
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, binary, log, parse_args, produce,  # noqa: E402
                     run_main)
from pipeline import (Sim, Worker, event, scratch_dir, wait_reports,  # noqa: E402
                      wait_until, worker_config)

TOPICS = {"input": "static.events", "output": "static.reports", "dlq": "static.dlq"}
N = 400


def msgs(w: Worker, text: str) -> list[dict]:
    return [l for l in w.log_lines() if l.get("msg") == text]


def held(w: Worker) -> int:
    return (sum(l.get("count", 0) for l in msgs(w, "partitions assigned"))
            - sum(l.get("count", 0) for l in msgs(w, "partitions revoked")))


def lib_version(bin_dir: Path) -> tuple:
    """The librdkafka version the worker runs with, from --version."""
    out = subprocess.run([str(binary(bin_dir, "bsg-report-worker")), "--version"],
                         capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"librdkafka/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def classic(args, checks: Checks, kafka: KafkaBroker, sim: Sim, work: Path) -> None:
    bs = kafka.bootstrap
    ids = list(range(910001, 910001 + N))
    produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids])
    base = worker_config(bs, sim, "brw-e2e-static", TOPICS, **{
        "api.rate_limit": "400",
        "kafka.consumer.session.timeout.ms": "20000",
        "kafka.consumer.heartbeat.interval.ms": "1000"})
    workers = {}

    def start(name, instance):
        cfg = dict(base, **{"kafka.consumer.group.instance.id": instance})
        workers[name] = Worker(args.bin_dir, work, cfg, name=name).start()
        return workers[name]

    try:
        a = start("a", "static-a")
        b = start("b", "static-b")
        ok = wait_until(lambda: held(a) == 2 and held(b) == 2, timeout=60)
        checks.check(ok, f"two static members hold 2 + 2 partitions ({held(a)} + {held(b)})")
        b_revokes = len(msgs(b, "partitions revoked"))
        a.proc.kill()
        t = time.monotonic()
        a2 = start("a2", "static-a")
        ok = wait_until(lambda: held(a2) == 2, timeout=60)
        took = time.monotonic() - t
        log(f"restarted static member holds {held(a2)} partitions after {took:.1f} s")
        checks.check(ok, "the restarted member got 2 partitions back")
        checks.check(took < 20, f"within the session timeout (20 s): {took:.1f} s")
        time.sleep(2)
        checks.eq(len(msgs(b, "partitions revoked")), b_revokes,
                  "the other member revoked nothing: no rebalance")
        checks.eq(held(b), 2, "the other member still holds its 2 partitions")
        finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=240)
        got = {r.json()["campaign_id"] for r in finals}
        dups = len(finals) - len(got)
        print(f"static membership: {N} campaigns, {len(got)} reported, {dups} duplicates "
              f"(kill -9 and restart of a static member)", flush=True)
        checks.eq(len(set(ids) - got), 0, "every campaign reported")
        for name in ("a2", "b"):
            workers[name].proc.signal(signal.SIGTERM)
        for name in ("a2", "b"):
            checks.eq(workers[name].proc.wait(timeout=60), 0, f"{name}: SIGTERM exit 0")
    finally:
        for w in workers.values():
            if w.proc.running():
                w.proc.print_tail()
                w.proc.kill()


def kip848_duplicate(args, checks: Checks, kafka: KafkaBroker, sim: Sim, work: Path) -> None:
    bs = kafka.bootstrap
    topics = {"input": "static848.events", "output": "static848.reports",
              "dlq": "static848.dlq"}
    kafka.create_topics({topics["input"]: 2, topics["output"]: 1, topics["dlq"]: 1})
    cfg = worker_config(bs, sim, "brw-e2e-static848", topics, **{
        "kafka.consumer.group.protocol": "consumer",
        "kafka.consumer.group.instance.id": "dup"})
    first = Worker(args.bin_dir, work, cfg, name="k1").start()
    second = None
    try:
        if lib_version(args.bin_dir) < (2, 12, 0):
            # Not a skip counted as a pass: what this line must do instead.
            checks.eq(first.proc.wait(timeout=30), 2,
                      "librdkafka without KIP-848 refuses group.protocol: exit 2")
            checks.check(any("group.protocol" in l for l in first.proc.stderr_text().splitlines()),
                         "the error names kafka.consumer.group.protocol")
            return
        ok = wait_until(lambda: held(first) == 2, timeout=60)
        checks.check(ok, "KIP-848: the first member holds both partitions")
        second = Worker(args.bin_dir, work, cfg, name="k2").start()
        code = second.proc.wait(timeout=90)
        lines = second.log_lines()
        fatal = [l for l in lines if l.get("level") == "error"
                 and l.get("error") == "UNRELEASED_INSTANCE_ID"
                 and "another member holds this group.instance.id" in l.get("msg", "")]
        log(f"duplicate instance id: exit {code}; {fatal[:1]}")
        checks.eq(code, 1, "KIP-848: a duplicate group.instance.id is fenced: exit 1")
        checks.check(len(fatal) == 1, "the fenced member says why in one ERROR line "
                     "(UNRELEASED_INSTANCE_ID, and what to do)")
        checks.check(first.proc.running(), "the member that held the id keeps running")
        checks.eq(held(first), 2, "and keeps its partitions")
        first.proc.signal(signal.SIGTERM)
        checks.eq(first.proc.wait(timeout=60), 0, "first member: SIGTERM exit 0")
    finally:
        for w in (first, second):
            if w and w.proc.running():
                w.proc.print_tail()
                w.proc.kill()


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("static")
    with KafkaBroker() as kafka:
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "47", "--time-scale", "60").start()
        try:
            classic(args, checks, kafka, sim, work)
            kip848_duplicate(args, checks, kafka, sim, work)
        finally:
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
