"""End to end on a real Kafka broker: the real backlog (issue 16, part 3).

The worker commits an input offset only once every earlier event of its
partition is handled (SPEC §6), so one long campaign holds the committed
offset, and the consumer lag that KEDA's Kafka trigger reads, at its own
offset. The gauges backlog_events (input events not read yet), campaigns_due
(tracked campaigns whose fetch waits in an account's queue) and backlog
(their sum) must show the work actually waiting, by hand-computed values.
One input partition; the simulator (time scale 3600: a campaign ends within
a second of its first fetch) holds "long" campaigns in `sending` by forcing
that status.

1. Worker A, max.tracked=3. Events: L (long) at offset 0, then N quick
   ones. Once the N are reported: the lag from the group's committed offset
   (read from the broker, as KEDA reads it) is N+1, while backlog_events,
   campaigns_due and backlog settle at 0.
2. Two more long campaigns: with L they fill max.tracked, and consumption
   pauses. Then M more events, produced after the pause in two batches (the
   second well after any fetch that was under way at the pause): none is
   read, so backlog_events == M1, then M1 + M2 == M, and backlog the same
   (librdkafka fetches nothing for a paused partition; the worker's
   watermark query sees the new end). Worker A stops (SIGTERM, exit 0).
3. Worker B, same group, api.rate_limit=0.01 (one request per 100 s, which
   its login takes): it reads everything (the N reported events are
   skipped by the commit's map), tracks 3 + M campaigns and none can be
   fetched: backlog_events == 0, campaigns_due == 3 + M == backlog.

Every value is polled from /metrics until it settles (with a deadline);
nothing asserts on speed.

Run: /usr/bin/python3 tests/integration/test_backlog.py --bin-dir BUILD
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, end_offsets,  # noqa: E402
                     log, parse_args, produce, run_main)
from pipeline import (Sim, Worker, event, http_get, http_json, parse_metrics,  # noqa: E402
                      scratch_dir, stop_leftovers, wait_reports, wait_until,
                      worker_config)

TOPICS = {"input": "backlog.events", "output": "backlog.reports", "dlq": "backlog.dlq"}
GROUP = "brw-e2e-backlog"
N = 20  # quick campaigns behind the long one
M1, M2 = 15, 10  # events produced while consumption is paused
M = M1 + M2
LONG = [710001, 710002, 710003]
QUICK = list(range(720001, 720001 + N))
LATER = list(range(730001, 730001 + M))
P = "bsg_report_worker_"
# Deadlines: about the state being reached at all on a loaded 2-core
# machine; statistics come every 5 s.
SETTLE_S = 40
REPORTS_S = 60


def scrape(base: str) -> dict:
    status, body = http_get(base + "/metrics")
    return parse_metrics(body.decode()) if status == 200 else {}


def gauge(m: dict, name: str):
    return m.get((P + name, None))


def settle(base: str, want: dict, timeout: float = SETTLE_S):
    """Polls /metrics until every gauge in `want` ({name: value}) has its
    value; returns (whether they did, the last values of those gauges and
    of consumer_lag_messages and campaigns_tracked)."""
    last: dict = {}

    def ok() -> bool:
        m = scrape(base)
        last.clear()
        for n in list(want) + ["consumer_lag_messages", "campaigns_tracked",
                               "consumption_paused"]:
            last[n] = gauge(m, n)
        return all(last.get(n) == v for n, v in want.items())

    done = wait_until(ok, timeout=timeout, interval=0.5)
    return done, dict(last)


def broker_lag(bs: str) -> tuple:
    """(end offset, committed offset, end - committed) of partition 0, from
    the broker: what KEDA's Kafka trigger computes."""
    end = end_offsets(bs, TOPICS["input"])[0]
    com = committed_offsets(bs, GROUP, TOPICS["input"], [0])[0][0] or 0
    return end, com, end - com


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("backlog")
    t_test = time.monotonic()
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 1, TOPICS["output"]: 1, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "16", "--time-scale", "3600").start()
        a = b = None
        try:
            # Long campaigns: born now and frozen in `sending`.
            for cid in LONG:
                http_json(f"{sim.url}/_sim/campaigns/{cid}", {"status": "sending"})

            # 1. One long campaign ahead of N quick ones.
            cfg = worker_config(bs, sim, GROUP, TOPICS, **{
                "max.tracked": "3", "metrics.listen": "127.0.0.1:0"})
            a = Worker(args.bin_dir, work, cfg, name="worker-a").start()
            base = a.metrics_url()
            produce(bs, TOPICS["input"],
                    [(str(LONG[0]), event(LONG[0]))] + [(str(c), event(c)) for c in QUICK])
            finals = wait_reports(bs, TOPICS["output"], set(QUICK), timeout=REPORTS_S)
            got = {r.json()["campaign_id"] for r in finals}
            checks.eq(sorted(set(QUICK) - got), [], f"the {N} quick campaigns behind the long one are reported")
            checks.check(LONG[0] not in got, "the long campaign is not reported")

            ok = wait_until(lambda: broker_lag(bs)[2] == N + 1, timeout=SETTLE_S, interval=0.5)
            end, com, lag = broker_lag(bs)
            print(f"phase 1: end {end}, committed {com}: consumer lag {lag} (the group's commit)", flush=True)
            checks.check(ok, f"the consumer lag from the committed offset is {N + 1}: the long campaign "
                             f"holds the commit at offset 0", f"end {end}, committed {com}")
            ok, last = settle(base, {"backlog_events": 0, "campaigns_due": 0, "backlog": 0,
                                     "campaigns_tracked": 1})
            print(f"phase 1: worker gauges {last}", flush=True)
            checks.check(ok, "backlog_events, campaigns_due and backlog settle at 0 while the lag is "
                             f"{N + 1} (one campaign tracked, nothing left to read)", str(last))

            # 2. Two more long campaigns fill max.tracked=3: consumption
            # pauses; then M events nobody reads.
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in LONG[1:]])
            ok, last = settle(base, {"consumption_paused": 1, "campaigns_tracked": 3})
            checks.check(ok, "three long campaigns tracked: consumption paused (max.tracked=3)", str(last))
            for batch, want in ((LATER[:M1], M1), (LATER[M1:], M)):
                produce(bs, TOPICS["input"], [(str(c), event(c)) for c in batch])
                ok, last = settle(base, {"backlog_events": want, "campaigns_due": 0, "backlog": want,
                                         "consumption_paused": 1})
                end, com, lag = broker_lag(bs)
                print(f"phase 2 (paused): end {end}, committed {com}, lag {lag}; worker gauges {last} "
                      f"(consumer_lag_messages is librdkafka's own figure)", flush=True)
                checks.check(ok, f"paused: backlog_events == {want}, the events produced after the pause "
                                 f"(end {end} minus position {3 + N}), campaigns_due 0, backlog {want}",
                             str(last))
                # Still so a statistics interval later (the answer is
                # renewed, not a one-off).
                time.sleep(6)
                m = scrape(base)
                checks.eq((gauge(m, "backlog_events"), gauge(m, "backlog")), (want, want),
                          f"paused: backlog_events and backlog stay at {want} over the next statistics "
                          "interval")

            a.proc.signal(signal.SIGTERM)
            checks.eq(a.proc.wait(timeout=60), 0, "worker A: SIGTERM exits 0")

            # 3. Worker B cannot fetch (its login takes the one request the
            # rate limit allows in 100 s): everything read, 3 + M due.
            cfg = worker_config(bs, sim, GROUP, TOPICS, **{
                "api.rate_limit": "0.01", "metrics.listen": "127.0.0.1:0"})
            b = Worker(args.bin_dir, work, cfg, name="worker-b").start()
            base = b.metrics_url()
            due = len(LONG) + M
            ok, last = settle(base, {"campaigns_tracked": due, "backlog_events": 0,
                                     "campaigns_due": due, "backlog": due})
            end, com, lag = broker_lag(bs)
            print(f"phase 3 (rate limit 0.01/s): end {end}, committed {com}, lag {lag}; "
                  f"worker gauges {last}", flush=True)
            checks.check(ok, f"rate-limited: every event read (backlog_events 0), the {due} tracked "
                             f"campaigns due (campaigns_due == backlog == {due})", str(last))
            stats = sim.stats()
            checks.eq(sum(stats.get("campaigns", {}).get(str(c), 0) for c in LATER), 0,
                      "the campaigns due were not fetched (none of the later ones reached the API)")

            b.proc.signal(signal.SIGTERM)
            checks.eq(b.proc.wait(timeout=60), 0, "worker B: SIGTERM exits 0")
        finally:
            stop_leftovers([a, b], sim)
    print(f"run time {time.monotonic() - t_test:.1f} s", flush=True)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
