"""End to end on a real Kafka broker against a misbehaving API: 1,000
campaigns while the simulator injects 20 % 5xx, 5 % 429 with Retry-After, 5 %
responses slower than the worker's HTTP timeout, 2 % malformed bodies and a
token expiry every few seconds (plus 1 % truncated and 1 % HTML bodies). Every campaign is reported with the
simulator's final truth; the request rate the simulator sees never exceeds
the configured limit; neither the API key nor any bearer appears in any
output.

--guarantee exactly_once: the worker runs with delivery.guarantee =
exactly_once (worker.instance chaos-1, group brw-chaos-eo). Read with
read_committed once the committed offsets reach the end of the input topic:
every campaign exactly one final report (duplicates asserted 0), and no
input event with more than one DLQ record (no event here is bad: the DLQ
records, if any, are counted and printed)."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, consume_all, log, parse_args, produce,  # noqa: E402
                     run_main)
from pipeline import (check_schemas, API_KEY, Sim, Worker, add_guarantee_arg,  # noqa: E402
                      committed_at_end, compare_with_truth, count_by, dlq_source, event,
                      finals_by_campaign, guarantee_config, scratch_dir, wait_reports,
                      wait_until, worker_config)

TOPICS = {"input": "chaos.events", "output": "chaos.reports", "dlq": "chaos.dlq"}
N = 1000
RATE = 80


def main() -> int:
    args = parse_args(__doc__, extra=add_guarantee_arg)
    eo = args.guarantee == "exactly_once"
    group = "brw-chaos" + ("-eo" if eo else "")
    checks = Checks()
    work = scratch_dir("chaos")
    ids = list(range(500001, 500001 + N))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "23", "--time-scale", "600",
                  "--fail-5xx", "0.20", "--fail-429", "0.05", "--retry-after", "1",
                  "--slow", "0.05", "--slow-ms", "2500", "--malformed", "0.02",
                  "--truncated", "0.01", "--html", "0.01",
                  "--token-ttl", "3s").start()
        w = None
        try:
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids])
            cfg = worker_config(bs, sim, group, TOPICS, **{
                "api.rate_limit": str(RATE), "http.timeout": "1s",
                "http.max_connections": "32"}, **guarantee_config(args.guarantee, "chaos-1"))
            w = Worker(args.bin_dir, work, cfg).start()
            t0 = time.monotonic()
            finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=400)
            elapsed = time.monotonic() - t0
            by_id = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r.json())
            if eo:
                # Once the offsets are committed at the end, every record the
                # worker will publish for them is committed too: read the
                # topics whole after that.
                at_end, _ = committed_at_end(bs, group, TOPICS["input"])
                checks.check(wait_until(at_end, timeout=60),
                             "committed offsets reach the end of the input topic")
                by_id = finals_by_campaign(consume_all(bs, TOPICS["output"], timeout=60))
            dups = sum(len(v) - 1 for v in by_id.values())
            print(f"chaos ({args.guarantee}): {N} campaigns in, {len(by_id)} reported, "
                  f"{dups} duplicate reports", flush=True)
            if eo:
                checks.eq(dups, 0, "exactly one final report per campaign")
                checks.eq(set(by_id) - set(ids), set(), "no report for an unknown campaign")
                dlq = consume_all(bs, TOPICS["dlq"], timeout=30)
                dlq_dups = sum(n - 1 for n in count_by(dlq, dlq_source).values())
                print(f"chaos (exactly_once): {len(dlq)} DLQ records, {dlq_dups} duplicates",
                      flush=True)
                checks.eq(dlq_dups, 0, "no input event with two DLQ records")
            checks.eq(len(set(ids) - set(by_id)), 0, f"all {N} campaigns reported under faults")
            wrong = [(c, d) for c, rs in by_id.items()
                     for d in [compare_with_truth(rs[-1], sim.truth(c))] if d]
            for c, d in wrong[:3]:
                log(f"campaign {c}: {d}")
            checks.eq(len(wrong), 0, "every report equals the simulator's final truth")
            expired = sum(1 for rs in by_id.values() if rs[-1]["outcome"] == "expired")
            checks.eq(expired, 0, "no campaign expired")

            stats = sim.stats()
            faults = stats.get("faults", {})
            max_rps = max(stats.get("max_rps_by_account", {"-": 0}).values())
            print(f"chaos: {N} campaigns reported in {elapsed:.1f} s; "
                  f"{stats.get('detail_requests')} detail requests; faults {faults}; "
                  f"logins {stats.get('logins')}, refreshes {stats.get('refreshes')}, "
                  f"unauthorized {stats.get('unauthorized')}; max {max_rps} req/s "
                  f"(limit {RATE})", flush=True)
            checks.check(all(faults.get(k, 0) > 0 for k in
                             ("5xx", "429", "slow", "malformed", "truncated", "html")),
                         "every fault class was injected", str(faults))
            checks.check(stats.get("refreshes", 0) + stats.get("logins", 0) >= 3,
                         "bearers were renewed as they expired")
            checks.check(max_rps <= RATE, f"request rate never above the limit ({max_rps} <= {RATE})")

            check_schemas(checks, bs, TOPICS)

            w.proc.signal(signal.SIGTERM)
            checks.eq(w.proc.wait(timeout=60), 0, "SIGTERM: exit 0")
            text = w.proc.stderr_text() + w.proc.stdout_text()
            checks.check(API_KEY not in text, "the API key appears in no output")
            checks.check("Bearer " not in text and "eyJ" not in text,
                         "no bearer appears in any output")
        finally:
            if w and w.proc.running():
                w.proc.print_tail()
                w.proc.kill()
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
