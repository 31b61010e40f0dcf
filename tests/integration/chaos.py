"""A bounded chaos run (not part of CI; run it with scripts/chaos.sh).

A real Kafka broker, the simulator (with a few API faults), and 3 workers in
one consumer group on a 12-partition input topic. Campaigns are fed
continuously (default 10/s, every 50th event a poison one) for N minutes;
meanwhile, at random intervals (10-40 s), a random worker is killed with
SIGKILL or SIGTERM (random choice) and started again a few seconds later.
Then feeding stops, everything fed must be reported (bounded wait), the
workers get SIGTERM, and a table is printed: campaigns fed, reported, lost
(fed but never reported: must be 0), duplicate reports, kills by signal,
restarts, DLQ records, campaign-to-report latency.

Reports and DLQ records are read with isolation.level=read_committed (as
they always were here; with at_least_once the worker writes no
transactions, so it reads the same as read_uncommitted).

--guarantee exactly_once runs the workers with delivery.guarantee =
exactly_once, each slot under a stable worker.instance (worker-a, worker-b,
...: a restarted worker reuses its slot's name, so its transactional.id
fences the killed one's open transaction at once), and then any duplicate
final report or DLQ record counts as a failure, like a lost campaign.
The table prints the guarantee; the workers' logs (NAME.GEN.stderr.log in
the scratch directory) are summed for "transaction: ... failed" lines.

Exit status: 0 when nothing was lost and every other invariant held (reports
equal the simulator's truth, every poison event in the DLQ, every SIGTERM
exit 0, no worker died by itself, committed offsets at the end; with
exactly_once also no duplicate); 1 otherwise; 2 on a setup error.

    scripts/chaos.sh 2                       # 2 minutes
    scripts/chaos.sh 2 --guarantee exactly_once
    /usr/bin/python3 tests/integration/chaos.py --bin-dir build --minutes 10
"""

from __future__ import annotations

import json
import random
import signal
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (KafkaBroker, _ck, committed_offsets, consume_all,  # noqa: E402
                     end_offsets, log, parse_args)
from pipeline import (BAD_EVENTS, Sim, Worker, compare_with_truth, event,  # noqa: E402
                      scratch_dir, worker_config)

TOPICS = {"input": "chaos.events", "output": "chaos.reports", "dlq": "chaos.dlq"}
GROUP = "brw-chaos"
PARTITIONS = 12
GUARANTEES = ("at_least_once", "exactly_once")
# A dead member holds its partitions until its session times out.
SESSION = {"kafka.consumer.session.timeout.ms": "6000",
           "kafka.consumer.heartbeat.interval.ms": "1000"}


def options(p) -> None:
    p.add_argument("--minutes", type=float, default=10.0, help="how long to feed campaigns (default 10)")
    p.add_argument("--rate", type=float, default=10.0, help="campaigns fed per second (default 10)")
    p.add_argument("--workers", type=int, default=3, help="workers in the group (default 3)")
    p.add_argument("--kill-min", type=float, default=10.0, help="shortest time between kills, s")
    p.add_argument("--kill-max", type=float, default=40.0, help="longest time between kills, s")
    p.add_argument("--down-min", type=float, default=2.0, help="shortest time a killed worker stays down, s")
    p.add_argument("--down-max", type=float, default=6.0, help="longest time a killed worker stays down, s")
    p.add_argument("--drain-timeout", type=float, default=300.0,
                   help="how long to wait for the last reports after feeding stops, s")
    p.add_argument("--time-scale", default="120", help="simulator time scale (120: lifecycles up to ~30 s)")
    p.add_argument("--no-api-faults", action="store_true", help="no simulator faults (5xx, 429, slow)")
    p.add_argument("--seed", type=int, default=None, help="random seed of the chaos schedule")
    p.add_argument("--guarantee", choices=GUARANTEES, default="at_least_once",
                   help="the workers' delivery.guarantee (default at_least_once); "
                        "exactly_once: stable worker.instance per slot, and any duplicate fails")


class Feeder(threading.Thread):
    """Produces campaign.sent events at a steady rate (one in five followed
    by its campaign.finished; every 50th event a poison one) until stopped.
    Records when each campaign was fed."""

    def __init__(self, bootstrap: str, rate: float, first_id: int) -> None:
        super().__init__(daemon=True)
        ck = _ck()
        self.p = ck.Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                              "acks": "all", "linger.ms": 5})
        self.rate = rate
        self.next_id = first_id
        self.fed: dict = {}          # campaign id -> wall time fed (ms)
        self.poison: dict = {}       # key -> expected reason
        self.events = 0
        self.errors: list = []
        self.stop_ev = threading.Event()

    def _produce(self, key: str, value: bytes) -> None:
        def cb(err, msg):
            if err is not None:
                self.errors.append(str(err))
        while True:
            try:
                self.p.produce(TOPICS["input"], key=key.encode(), value=value, on_delivery=cb)
                break
            except BufferError:
                self.p.poll(0.1)
        self.events += 1

    def run(self) -> None:
        t0 = time.monotonic()
        n = 0
        while not self.stop_ev.is_set():
            due = t0 + n / self.rate
            wait = due - time.monotonic()
            if wait > 0:
                self.stop_ev.wait(wait)
                if self.stop_ev.is_set():
                    break
            cid = self.next_id
            self.next_id += 1
            self.fed[cid] = time.time() * 1000
            self._produce(str(cid), event(cid))
            if cid % 5 == 0:
                self._produce(str(cid), event(cid, "campaign.finished"))
            if self.events % 50 == 49:
                j = len(self.poison) % len(BAD_EVENTS)
                key = f"bad-{len(self.poison)}"
                self.poison[key] = BAD_EVENTS[j][1]
                self._produce(key, BAD_EVENTS[j][0])
            n += 1
            self.p.poll(0)
        left = self.p.flush(60)
        if left:
            self.errors.append(f"{left} events not delivered at the end")
        self.p = None  # closes the producer before the broker stops

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(90)


class ReportReader(threading.Thread):
    """Reads the report topic from the beginning of every partition, all the
    time: {campaign id: [(kafka timestamp ms, instance)]} of final reports."""

    def __init__(self, bootstrap: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.finals: dict = {}
        self.first_seen: dict = {}   # campaign id -> wall time (ms) its first final was read
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.error = None

    def run(self) -> None:
        ck = _ck()
        c = ck.Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"chaos-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
        try:
            md = c.list_topics(TOPICS["output"], timeout=30)
            parts = sorted(md.topics[TOPICS["output"]].partitions)
            c.assign([ck.TopicPartition(TOPICS["output"], p, ck.OFFSET_BEGINNING) for p in parts])
            while not self.stop_ev.is_set():
                msg = c.poll(0.5)
                if msg is None or msg.error() is not None:
                    continue
                try:
                    v = json.loads(msg.value())
                except ValueError:
                    continue
                if not v.get("final"):
                    continue
                with self.lock:
                    self.finals.setdefault(v.get("campaign_id"), []).append(
                        (msg.timestamp()[1], (v.get("worker") or {}).get("instance"), v))
                    self.first_seen.setdefault(v.get("campaign_id"), time.time() * 1000)
        except Exception as e:  # noqa: BLE001
            self.error = e
        finally:
            c.close()

    def reported(self) -> set:
        with self.lock:
            return set(self.finals)

    def snapshot(self) -> dict:
        with self.lock:
            return {k: list(v) for k, v in self.finals.items()}

    def stop(self) -> None:
        self.stop_ev.set()
        self.join(10)


class Slot:
    """One of the group's workers, restarted under the same name. Each start
    logs to NAME.GEN.*.log; its worker.instance is NAME.GEN, or with
    stable_instance (exactly once) NAME itself, so that a restart reuses the
    transactional.id <group.id>-NAME."""

    def __init__(self, name: str, bin_dir, work, cfg, stable_instance: bool = False) -> None:
        self.name = name
        self.bin_dir = bin_dir
        self.work = work
        self.cfg = dict(cfg)
        self.stable_instance = stable_instance
        self.gen = 0
        self.worker = None
        self.all_workers: list = []
        self.down_on_purpose = False

    def start(self) -> None:
        self.gen += 1
        name = f"{self.name}.{self.gen}"
        instance = self.name if self.stable_instance else name
        cfg = dict(self.cfg, **{"worker.instance": instance})
        self.worker = Worker(self.bin_dir, self.work, cfg, name=name).start()
        self.all_workers.append(self.worker)

    def running(self) -> bool:
        return self.worker is not None and self.worker.proc.running()


def percentile(vals, q):
    if not vals:
        return 0.0
    s = sorted(vals)
    return s[min(len(s) - 1, int(len(s) * q))]


def main() -> int:
    args = parse_args(__doc__, extra=options)
    rng = random.Random(args.seed)
    work = scratch_dir("chaos")
    t_run = time.monotonic()
    kills = {"SIGKILL": 0, "SIGTERM": 0}
    restarts = 0
    bad_term = []       # (worker, rc) of a SIGTERM that did not exit 0
    unexpected = []     # (worker, rc) of a worker that died by itself
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: PARTITIONS, TOPICS["output"]: PARTITIONS, TOPICS["dlq"]: 2})
        sim_args = ["--seed", "97", "--time-scale", str(args.time_scale)]
        if not args.no_api_faults:
            sim_args += ["--fail-5xx", "0.02", "--fail-429", "0.01", "--slow", "0.01",
                         "--slow-ms", "1500", "--retry-after", "1"]
        sim = Sim(args.bin_dir, work, *sim_args).start()
        eo = args.guarantee == "exactly_once"
        extra = {"api.rate_limit": "200"}
        if eo:
            extra["delivery.guarantee"] = "exactly_once"
        cfg = worker_config(bs, sim, GROUP, TOPICS, **SESSION, **extra)
        slots = [Slot(f"worker-{chr(ord('a') + i)}", args.bin_dir, work, cfg, stable_instance=eo)
                 for i in range(args.workers)]
        reader = ReportReader(bs)
        feeder = Feeder(bs, args.rate, first_id=7_000_001)
        try:
            for s in slots:
                s.start()
            reader.start()
            feeder.start()
            feed_end = time.monotonic() + args.minutes * 60
            log(f"chaos: feeding {args.rate}/s for {args.minutes} min, {args.workers} workers, "
                f"{PARTITIONS} partitions, {args.guarantee}; logs in {work}")

            def reap_unexpected():
                for s in slots:
                    if s.worker and not s.running() and not s.down_on_purpose:
                        rc = s.worker.proc.returncode
                        unexpected.append((s.worker.proc.name, rc))
                        log(f"chaos: {s.worker.proc.name} exited by itself ({rc}); restarting it")
                        s.worker.proc.print_tail(20)
                        s.start()

            while time.monotonic() < feed_end:
                nxt = min(feed_end, time.monotonic() + rng.uniform(args.kill_min, args.kill_max))
                while time.monotonic() < nxt:
                    time.sleep(0.5)
                    reap_unexpected()
                if time.monotonic() >= feed_end:
                    break
                s = rng.choice([s for s in slots if s.running()])
                sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
                s.down_on_purpose = True
                name = s.worker.proc.name
                if sig == signal.SIGKILL:
                    rc = s.worker.proc.kill()
                else:
                    s.worker.proc.signal(signal.SIGTERM)
                    try:
                        rc = s.worker.proc.wait(timeout=60)
                    except TimeoutError:
                        rc = s.worker.proc.kill()
                    if rc != 0:
                        bad_term.append((name, rc))
                kills[sig.name] += 1
                down = rng.uniform(args.down_min, args.down_max)
                log(f"chaos: {sig.name} -> {name} (rc {rc}); {len(reader.reported())} of "
                    f"{len(feeder.fed)} reported; restart in {down:.1f} s")
                time.sleep(down)
                s.start()
                s.down_on_purpose = False
                restarts += 1

            feeder.stop()
            fed = dict(feeder.fed)
            log(f"chaos: feeding stopped: {len(fed)} campaigns, {feeder.events} events "
                f"({len(feeder.poison)} poison); waiting up to {args.drain_timeout:.0f} s for the reports")
            deadline = time.monotonic() + args.drain_timeout
            while time.monotonic() < deadline and not set(fed) <= reader.reported():
                time.sleep(1.0)
                reap_unexpected()
            drain_s = args.drain_timeout - max(0.0, deadline - time.monotonic())

            # Stop every worker with SIGTERM.
            for s in slots:
                if s.running():
                    name = s.worker.proc.name
                    s.worker.proc.signal(signal.SIGTERM)
                    try:
                        rc = s.worker.proc.wait(timeout=60)
                    except TimeoutError:
                        rc = s.worker.proc.kill()
                    if rc != 0:
                        bad_term.append((name, rc))
            time.sleep(2.0)  # the last reports reach the reader
            reader.stop()
            finals = reader.snapshot()

            # Figures.
            reported = set(finals) & set(fed)
            lost = sorted(set(fed) - set(finals))
            unknown = sorted(set(finals) - set(fed))
            dups = sum(len(v) - 1 for c, v in finals.items() if c in fed)
            dup_campaigns = sum(1 for c, v in finals.items() if c in fed and len(v) > 1)
            lat = [(min(t for t, _, _ in finals[c]) - fed[c]) / 1000 for c in reported]
            # fed -> the reader received it: with exactly_once, after the commit
            seen = dict(reader.first_seen)
            lat_seen = [(seen[c] - fed[c]) / 1000 for c in reported if c in seen]
            wrong = []
            for c in sorted(reported):
                d = compare_with_truth(finals[c][-1][2], sim.truth(c))
                if d:
                    wrong.append((c, d))
            dup_list = sorted((c, [(t, inst) for t, inst, _ in v])
                              for c, v in finals.items() if c in fed and len(v) > 1)
            dlq = consume_all(bs, TOPICS["dlq"], timeout=60)
            dlq_keys = {r.key.decode() for r in dlq if r.key}
            dlq_count: dict = {}
            for r in dlq:
                if r.key:
                    dlq_count[r.key.decode()] = dlq_count.get(r.key.decode(), 0) + 1
            dlq_dups = sum(k - 1 for k in dlq_count.values() if k > 1)
            poison_missing = sorted(set(feeder.poison) - dlq_keys)
            dlq_other = [r for r in dlq if not (r.key or b"").startswith(b"bad-")]
            ends = end_offsets(bs, TOPICS["input"])
            committed = {p: o for p, (o, _) in committed_offsets(bs, GROUP, TOPICS["input"], ends).items()}
            behind = {p: ends[p] - (committed.get(p) or 0) for p in ends if committed.get(p) != ends[p]}
            by_instance: dict = {}
            for c in reported:
                for _, inst, _ in finals[c]:
                    by_instance[inst] = by_instance.get(inst, 0) + 1
            # the workers' "transaction: CALL failed (RESULT)" warnings, with
            # the lines their rate limit held back
            txn_fail: dict = {}
            for s in slots:
                for w in s.all_workers:
                    for x in w.log_lines():
                        if str(x.get("msg", "")).startswith("transaction:") and "result" in x:
                            k = f"{x.get('call')} {x.get('result')}"
                            txn_fail[k] = txn_fail.get(k, 0) + 1 + int(x.get("suppressed") or 0)

            rows = [
                ("delivery guarantee", args.guarantee + (" (worker.instance per slot, stable "
                                                         "across restarts)" if eo else "")),
                ("reports read with", "isolation.level=read_committed"),
                ("minutes fed", f"{args.minutes:g} at {args.rate:g}/s"),
                ("campaigns fed", len(fed)),
                ("input events (incl. campaign.finished, poison)", feeder.events),
                ("campaigns reported", len(reported)),
                ("LOST (fed, never reported)", len(lost)),
                ("duplicate final reports", f"{dups} (over {dup_campaigns} campaigns)"),
                ("reports unlike the simulator's truth", len(wrong)),
                ("reports for campaigns never fed", len(unknown)),
                ("kills by SIGKILL", kills["SIGKILL"]),
                ("kills by SIGTERM", kills["SIGTERM"]),
                ("restarts", restarts),
                ("SIGTERM exits != 0", len(bad_term)),
                ("workers that died by themselves", len(unexpected)),
                ("DLQ records (poison fed)", f"{len(dlq)} ({len(feeder.poison)})"),
                ("duplicate DLQ records (same key)", dlq_dups),
                ("poison events missing from the DLQ", len(poison_missing)),
                ("DLQ records that are not poison", len(dlq_other)),
                ("latency fed->report avg / p50 / p99 / max, s",
                 f"{statistics.mean(lat) if lat else 0:.1f} / {percentile(lat, 0.5):.1f} / "
                 f"{percentile(lat, 0.99):.1f} / {max(lat) if lat else 0:.1f}"),
                ("latency fed->read (read_committed) avg / p50 / p99 / max, s",
                 f"{statistics.mean(lat_seen) if lat_seen else 0:.1f} / "
                 f"{percentile(lat_seen, 0.5):.1f} / {percentile(lat_seen, 0.99):.1f} / "
                 f"{max(lat_seen) if lat_seen else 0:.1f}"),
                ("drain after feeding stopped, s", f"{drain_s:.0f}"),
                ("committed offsets at the end", "yes" if not behind else f"no, behind {behind}"),
                ("worker instances that reported", len(by_instance)),
                ("\"transaction: ... failed\" log lines (call result: n)",
                 ", ".join(f"{k}: {v}" for k, v in sorted(txn_fail.items())) or "0"),
                ("simulator detail requests", sim.stats().get("detail_requests")),
                ("wall time, s", f"{time.monotonic() - t_run:.0f}"),
            ]
            width = max(len(k) for k, _ in rows)
            print("\n== chaos run ==", flush=True)
            for k, v in rows:
                print(f"  {k:<{width}}  {v}", flush=True)
            if lost:
                print(f"lost campaigns (first 20): {lost[:20]}", flush=True)
            for c, v in dup_list[:10]:
                print(f"duplicate: campaign {c}: " + ", ".join(
                    f"{inst} at {t}" for t, inst in v), flush=True)
            for c, d in wrong[:5]:
                print(f"campaign {c} unlike the truth: {d}", flush=True)
            if bad_term:
                print(f"SIGTERM exits: {bad_term}", flush=True)
            if unexpected:
                print(f"died by themselves: {unexpected}", flush=True)
            if feeder.errors:
                print(f"feeder errors: {feeder.errors[:5]}", flush=True)
            if reader.error:
                print(f"report reader error: {reader.error}", flush=True)

            failed = []
            if lost:
                failed.append("lost > 0")
            if eo and dups:
                failed.append("duplicate reports with exactly_once")
            if eo and dlq_dups:
                failed.append("duplicate DLQ records with exactly_once")
            if wrong:
                failed.append("reports unlike the truth")
            if poison_missing:
                failed.append("poison missing from the DLQ")
            if bad_term:
                failed.append("SIGTERM exit != 0")
            if unexpected:
                failed.append("a worker died by itself")
            if behind:
                failed.append("committed offsets not at the end")
            if feeder.errors or reader.error:
                failed.append("test client errors")
            print(("FAIL: " + ", ".join(failed)) if failed else
                  ("PASS: nothing lost, no duplicate" if eo else "PASS: nothing lost"), flush=True)
            return 1 if failed else 0
        finally:
            feeder.stop_ev.set()
            reader.stop_ev.set()
            for s in slots:
                if s.running():
                    s.worker.proc.kill()
            sim.stop()


if __name__ == "__main__":
    try:
        rc = main()
    except KeyboardInterrupt:
        rc = 130
    except Exception:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        rc = 2
    sys.exit(rc)
