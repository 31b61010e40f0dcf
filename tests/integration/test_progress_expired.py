"""End to end on a real Kafka broker: with emit.progress=true the worker
publishes non-final reports (final: false) when a campaign's status or
statistics change; a campaign still in progress at poll.max_age is reported
with outcome "expired", final, carrying the last detail seen."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, parse_args, produce, run_main  # noqa: E402
from pipeline import (check_schemas, Sim, Worker, event, http_json,  # noqa: E402
                      scratch_dir, wait_reports, worker_config)

TOPICS = {"input": "pe.events", "output": "pe.reports", "dlq": "pe.dlq"}


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("progress")
    ids = list(range(900001, 900021))
    stuck = 900021  # forced to "sending" for good
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        # Time scale 30: most campaigns take longer than the 6 s deadline, so
        # they are seen in progress, then expire; one is held in "sending".
        sim = Sim(args.bin_dir, work, "--seed", "2", "--time-scale", "30").start()
        w = None
        try:
            http_json(f"{sim.url}/_sim/campaigns/{stuck}", {"status": "sending"})
            cfg = worker_config(bs, sim, "brw-pe", TOPICS, **{
                "emit.progress": "true", "poll.max_age": "6s",
                "poll.initial_delay": "100ms", "poll.min_interval": "200ms",
                "poll.max_interval": "500ms"})
            w = Worker(args.bin_dir, work, cfg).start()
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids + [stuck]])
            finals = wait_reports(bs, TOPICS["output"], set(ids + [stuck]), timeout=90)
            got = {r.json()["campaign_id"]: r.json() for r in finals}
            checks.eq(set(ids + [stuck]) - set(got), set(), "every campaign has a final report")
            rep = got.get(stuck, {})
            checks.eq(rep.get("outcome"), "expired", "a campaign still sending at the deadline is expired")
            checks.check(rep.get("final") is True and (rep.get("campaign") or {}).get("status") == "sending",
                         "the expired report is final and carries the last detail seen",
                         str(rep.get("campaign")))
            outcomes = {r["outcome"] for r in got.values()}
            checks.check("expired" in outcomes, "expired outcomes reported", str(outcomes))
            allrecs = [r.json() for r in consume_all(bs, TOPICS["output"], timeout=30)]
            progress = [r for r in allrecs if r.get("final") is False]
            checks.check(len(progress) >= len(ids), "progress reports (final: false) published",
                         f"{len(progress)} progress reports")
            checks.check(all(r["outcome"] not in ("expired",) and r["campaign"] for r in progress),
                         "progress reports carry the current status and detail")
            per = {}
            for r in progress:
                per.setdefault(r["campaign_id"], []).append(
                    (r["campaign"]["status"], r["campaign"]["statistics"]))
            repeats = sum(1 for v in per.values() for a, b in zip(v, v[1:]) if a == b)
            checks.eq(repeats, 0, "a progress report is published only when something changed")
            check_schemas(checks, bs, TOPICS)
            w.proc.signal(signal.SIGTERM)
            checks.eq(w.proc.wait(timeout=60), 0, "SIGTERM: exit 0")
        finally:
            if w and w.proc.running():
                w.proc.print_tail()
                w.proc.kill()
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
