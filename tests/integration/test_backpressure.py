"""End to end on a real Kafka broker (SPEC §6 "Backpressure"): a worker
limited to max.tracked=100 campaigns is given 2 000 campaigns at once, each
living seconds (simulator time scale 180), with a poison event interleaved
as every 20th input event. Checks:

- the worker logs "consumption paused" and later "consumption resumed";
- it never tracks many more than 100 campaigns: for each campaign the
  interval from its first detail request (the simulator's birth time) to the
  report's Kafka timestamp lies inside the time the worker tracked it, so
  the largest number of overlapping intervals is a lower bound of the
  worker's peak table size, and must stay at ~100; its resident memory
  (VmRSS, sampled every second) stays flat: the peak over the second half
  of the run is within +30 % (at least +4 MiB) of the peak over the first
  quarter after a 10 s warm-up;
- every campaign is reported, with the outcome and fields of the
  simulator's truth;
- every poison event is in the DLQ with its reason, no partition stalls,
  and the committed offsets reach the end of every partition;
- SIGTERM exits 0."""

from __future__ import annotations

import signal
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all,  # noqa: E402
                     end_offsets, log, parse_args, produce, run_main)
from pipeline import (BAD_EVENTS, Sim, Worker, compare_with_truth, count_by,  # noqa: E402
                      event, scratch_dir, wait_reports, wait_until, worker_config)

TOPICS = {"input": "bp.events", "output": "bp.reports", "dlq": "bp.dlq"}
N = 2000
MAX_TRACKED = 100
# Tolerance on the peak of overlapping tracking intervals (a lower bound of
# the real table size, which pausing should hold at MAX_TRACKED).
TRACKED_SLACK = 5
GROUP = "brw-e2e-backpressure"
# Sim time scale 180: lifecycles of 0-18 s (mean ~4 s) in real time.
TIME_SCALE = "180"
WARMUP_S = 10.0
RSS_GROWTH = 0.30
RSS_MIN_GROWTH_KIB = 4 * 1024


def vm_rss_kib(pid: int):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    """VmRSS of a process every second: [(seconds since start, KiB)]."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.samples: list = []
        self.stop_ev = threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        while not self.stop_ev.is_set():
            v = vm_rss_kib(self.pid)
            if v is None:
                break
            self.samples.append((time.monotonic() - self.t0, v))
            self.stop_ev.wait(self.interval)

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(5)


def max_overlap(intervals) -> int:
    """Largest number of [start, end] intervals open at one instant."""
    points = []
    for s, e in intervals:
        points.append((s, 1))
        points.append((e, -1))
    points.sort(key=lambda p: (p[0], p[1]))  # an end before a start at a tie
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("backpressure")
    ids = list(range(500001, 500001 + N))
    t_test = time.monotonic()
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "31", "--time-scale", TIME_SCALE).start()
        worker = None
        sampler = None
        try:
            # Every 20th input event is a poison one, cycling through the
            # kinds of BAD_EVENTS; keys tell them apart.
            recs = []
            bad_at = {}
            it = iter(ids)
            while True:
                if len(recs) % 20 == 19:
                    j = len(bad_at) % len(BAD_EVENTS)
                    key = f"bad-{len(bad_at)}"
                    bad_at[key] = (BAD_EVENTS[j][0], BAD_EVENTS[j][1])
                    recs.append((key, BAD_EVENTS[j][0]))
                    continue
                cid = next(it, None)
                if cid is None:
                    break
                recs.append((str(cid), event(cid)))
            produce(bs, TOPICS["input"], recs, timeout=60)
            ends = end_offsets(bs, TOPICS["input"])
            log(f"produced {sum(ends.values())} input events ({len(bad_at)} poison), ends {ends}")

            cfg = worker_config(bs, sim, GROUP, TOPICS, **{
                "max.tracked": str(MAX_TRACKED),
                "api.rate_limit": "500",
                "poll.max_interval": "1s",
            })
            worker = Worker(args.bin_dir, work, cfg).start()
            t0 = time.monotonic()
            sampler = RssSampler(worker.proc.pid)
            sampler.start()

            finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=420)
            run_s = time.monotonic() - t0
            sampler.stop()
            by_id: dict = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r)
            missing = sorted(set(ids) - set(by_id))
            dups = sum(len(v) - 1 for v in by_id.values())
            print(f"backpressure: {N} campaigns reported {len(by_id)} in {run_s:.1f} s "
                  f"({len(by_id) / run_s:.1f}/s) with max.tracked={MAX_TRACKED}; "
                  f"{dups} duplicate reports", flush=True)
            checks.check(not missing, f"every one of {N} campaigns reported",
                         f"{len(missing)} missing, first {missing[:10]}")
            checks.eq(set(by_id) - set(ids), set(), "no report for an unknown campaign")

            # Outcomes and fields equal the simulator's truth; tracking
            # intervals from the truth's birth to the report's timestamp.
            wrong = []
            intervals = []
            truths = {}
            for cid, rs in sorted(by_id.items()):
                truth = sim.truth(cid)
                truths[cid] = truth
                d = compare_with_truth(rs[0].json(), truth)
                if d:
                    wrong.append((cid, d))
                born = truth.get("born_at_ms")
                if born:
                    intervals.append((born, min(r.timestamp for r in rs)))
            for cid, d in wrong[:5]:
                log(f"campaign {cid}: {d}")
            checks.eq(len(wrong), 0, "every report's outcome and fields equal the simulator's truth")
            outcomes = count_by([rs[0].json()["outcome"] for rs in by_id.values()], lambda o: o)
            log(f"outcomes: {outcomes}")
            life = sorted((t["terminal_at_ms"] - t["born_at_ms"]) / 1000 for t in truths.values()
                          if t.get("born_at_ms") and t.get("terminal_at_ms"))
            if life:
                log(f"campaign lifetimes (real s): median {life[len(life) // 2]:.1f}, "
                    f"p90 {life[len(life) * 9 // 10]:.1f}, max {life[-1]:.1f}")
            peak = max_overlap(intervals)
            print(f"peak of overlapping tracking intervals (lower bound of tracked campaigns): "
                  f"{peak} over {len(intervals)} campaigns", flush=True)
            checks.check(len(intervals) == len(by_id), "every reported campaign was born at the simulator",
                         f"{len(intervals)} of {len(by_id)}")
            checks.check(peak <= MAX_TRACKED + TRACKED_SLACK,
                         f"at no time more than ~{MAX_TRACKED} campaigns tracked "
                         f"(peak {peak} <= {MAX_TRACKED + TRACKED_SLACK})")
            checks.check(peak >= MAX_TRACKED * 8 // 10,
                         "the table did fill up (the limit, not the intake, bounded it)", f"peak {peak}")

            # Pause and resume, as JSON log lines.
            msgs = [l.get("msg") for l in worker.log_lines()]
            n_pause = msgs.count("consumption paused")
            n_resume = msgs.count("consumption resumed")
            print(f"consumption paused {n_pause} times, resumed {n_resume} times", flush=True)
            checks.check(n_pause >= 1, "the worker logs \"consumption paused\"")
            i_p = msgs.index("consumption paused") if n_pause else None
            checks.check(i_p is not None and "consumption resumed" in msgs[i_p + 1:],
                         "the worker logs \"consumption resumed\" after pausing")

            # Resident memory stays flat.
            samples = [s for s in sampler.samples if s[0] >= WARMUP_S]
            vals = [v for _, v in sampler.samples]
            if vals:
                print(f"VmRSS over {len(vals)} samples: min {min(vals) / 1024:.1f} MiB, "
                      f"median {statistics.median(vals) / 1024:.1f} MiB, max {max(vals) / 1024:.1f} MiB",
                      flush=True)
            if len(samples) >= 8:
                q = len(samples) // 4
                base = max(v for _, v in samples[:q])
                late = max(v for _, v in samples[len(samples) // 2:])
                allowed = base + max(int(base * RSS_GROWTH), RSS_MIN_GROWTH_KIB)
                print(f"VmRSS after {WARMUP_S:.0f} s warm-up: first-quarter peak {base / 1024:.1f} MiB, "
                      f"second-half peak {late / 1024:.1f} MiB (allowed {allowed / 1024:.1f} MiB)",
                      flush=True)
                checks.check(late <= allowed, "resident memory stays flat while 2 000 campaigns pass through",
                             f"{late} KiB > {allowed} KiB")
            else:
                checks.fail("enough VmRSS samples after the warm-up", f"{len(samples)} samples")

            # Poison events: all in the DLQ with their reasons.
            dlq = consume_all(bs, TOPICS["dlq"], count=len(bad_at), timeout=60)
            got = {r.key.decode(): r for r in dlq if r.key}
            checks.eq(sorted(set(bad_at) - set(got)), [], f"every one of {len(bad_at)} poison events is in the DLQ")
            wrong_reason = [(k, got[k].header("error.reason"), want) for k, (_, want) in bad_at.items()
                            if k in got and got[k].header("error.reason") != want.encode()]
            checks.eq(wrong_reason[:5], [], "each DLQ record carries its reason")
            checks.check(all(got[k].value == v for k, (v, _) in bad_at.items() if k in got),
                         "DLQ records keep the original value")
            log(f"DLQ reasons: {count_by(dlq, lambda r: (r.header('error.reason') or b'').decode())}")

            # No partition stalls.
            def committed():
                try:
                    return {p: o for p, (o, _) in committed_offsets(bs, GROUP, TOPICS["input"], ends).items()}
                except RuntimeError as e:
                    log(f"committed offsets: {e}")
                    return {}
            ok = wait_until(lambda: committed() == ends, timeout=60, interval=1.0)
            checks.check(ok, "committed offsets reach the end of every partition",
                         f"ends {ends}, committed {committed()}")

            worker.proc.signal(signal.SIGTERM)
            checks.eq(worker.proc.wait(timeout=60), 0, "SIGTERM: exit code 0")
            stats = sim.stats()
            log(f"simulator: {stats.get('detail_requests')} detail requests, "
                f"max {max((stats.get('max_rps_by_account') or {0: 0}).values())} requests/s")
        finally:
            if sampler:
                sampler.stop()
            if worker and worker.proc.running():
                worker.proc.print_tail()
                worker.proc.kill()
            sim.stop()
    print(f"run time {time.monotonic() - t_test:.1f} s", flush=True)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
