"""End to end on a real Kafka broker: a 404 shortly after a campaign's
creation is retried within poll.not_found_grace and the campaign is then
reported; a campaign that stays 404 beyond the grace goes to the DLQ as
not_found, with its original event."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, parse_args, produce, run_main  # noqa: E402
from pipeline import (check_schemas, Sim, Worker, compare_with_truth, event, http_json,  # noqa: E402
                      scratch_dir, wait_reports, worker_config)

TOPICS = {"input": "nf.events", "output": "nf.reports", "dlq": "nf.dlq"}


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("notfound")
    brief = list(range(700001, 700031))   # 404 for 1 s after their birth
    never = list(range(710001, 710011))   # 404 far beyond the grace
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "9", "--time-scale", "600",
                  "--not-found-grace", "1s").start()
        w = None
        try:
            cfg = worker_config(bs, sim, "brw-nf", TOPICS, **{"poll.not_found_grace": "3s"})
            w = Worker(args.bin_dir, work, cfg).start()
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in brief])
            finals = wait_reports(bs, TOPICS["output"], set(brief), timeout=120)
            got = {r.json()["campaign_id"]: r.json() for r in finals}
            checks.eq(set(brief) - set(got), set(), "campaigns 404 within the grace are reported")
            checks.eq([c for c in brief if c in got and compare_with_truth(got[c], sim.truth(c))], [],
                      "their reports equal the simulator's truth")
            stats = sim.stats()
            checks.check(stats["faults"].get("not_found", 0) >= len(brief),
                         "the simulator did answer 404 first", str(stats["faults"]))

            http_json(sim.url + "/_sim/faults", {"not_found_grace": "1h"})
            produce(bs, TOPICS["input"], [(f"k{c}", event(c)) for c in never])
            dlq = consume_all(bs, TOPICS["dlq"], count=len(never), timeout=90)
            checks.eq({int(r.key[1:]) for r in dlq}, set(never),
                      "campaigns 404 beyond the grace are in the DLQ")
            checks.eq({r.header("error.reason") for r in dlq}, {b"not_found"}, "reason not_found")
            checks.check(all(r.value == event(int(r.key[1:])) for r in dlq),
                         "the DLQ keeps the original event")
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
