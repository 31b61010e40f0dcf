"""End to end on a real Kafka broker: 500 campaigns over 4 partitions with
mixed outcomes and bad events interleaved; every campaign gets exactly one
final report equal to the simulator's truth; every bad event lands in the DLQ
with its reason; no partition stalls; SIGTERM exits 0 with the committed
offsets covering everything that was handled; no secret in the logs."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all,  # noqa: E402
                     end_offsets, log, parse_args, produce, run_main)
from pipeline import (check_schemas, API_KEY, BAD_EVENTS, Sim, Worker, compare_with_truth,  # noqa: E402
                      count_by, event, http_get, scratch_dir, wait_reports,
                      wait_until, worker_config)

TOPICS = {"input": "bsg.campaign.events", "output": "bsg.campaign.reports",
          "dlq": "bsg.campaign.events.dlq"}
N = 500
GROUP = "brw-e2e-pipeline"


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    run_pipeline(args, checks)
    return checks.summary()


def run_pipeline(args, checks: Checks, worker_command: Optional[Sequence[str]] = None,
                 sim_command: Optional[Sequence[str]] = None,
                 while_running: Optional[Callable[[Worker], None]] = None,
                 name: str = "pipeline") -> None:
    """The whole pipeline run and its checks, added to checks.
    worker_command and sim_command run the worker and the simulator instead
    of args.bin_dir's (the command of Worker and Sim: test_image.py runs the
    image's); while_running(worker) adds checks while the worker runs, after
    the reports are in and before the SIGTERM."""
    work = scratch_dir(name)
    ids = list(range(200001, 200001 + N))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 2})
        sim = Sim(args.bin_dir, work, "--seed", "7", "--time-scale", "120",
                  command=sim_command).start()
        worker = None
        try:
            # Every campaign gets campaign.sent; one in five also gets
            # campaign.finished (merged into the same tracking); ids are
            # integers or digit strings; aliases id and data.id are used.
            recs = []
            finished = set()
            bad_at = {}
            for i, cid in enumerate(ids):
                if i % 3 == 0:
                    value = event(str(cid))
                elif i % 7 == 0:
                    value = b'{"event":"campaign.sent","data":{"id":%d}}' % cid
                else:
                    value = event(cid)
                recs.append((str(cid), value, [("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")] if i % 10 == 0 else None))
                if i % 5 == 0:
                    recs.append((str(cid), event(cid, "campaign.finished")))
                    finished.add(cid)
                if i % 50 == 25:
                    j = len(bad_at) % len(BAD_EVENTS)
                    key = f"bad-{len(bad_at)}"
                    bad_at[key] = BAD_EVENTS[j][1]
                    recs.append((key, BAD_EVENTS[j][0]))
            recs = [r if r[2:] and r[2] else r[:2] for r in recs]
            produce(bs, TOPICS["input"], recs)
            total_in = sum(end_offsets(bs, TOPICS["input"]).values())
            log(f"produced {total_in} input events ({len(bad_at)} bad)")

            cfg = worker_config(bs, sim, GROUP, TOPICS, **{"metrics.listen": "127.0.0.1:0"})
            worker = Worker(args.bin_dir, work, cfg, command=worker_command).start()
            t0 = time.monotonic()
            # A scrape during the run: campaigns are being tracked, and what
            # is counted as published never runs ahead of the topic.
            P = "bsg_report_worker_"
            wait_until(lambda: worker.scrape().get((P + "campaigns_tracked", None), 0) > 0,
                       timeout=60)
            mid = worker.scrape()
            in_topic = len([r for r in consume_all(bs, TOPICS["output"], timeout=30)
                            if r.json().get("final")])
            mid_pub = sum(v for (n, _), v in mid.items() if n == P + "reports_published_total")
            checks.check(mid.get((P + "campaigns_tracked", None), 0) > 0,
                         "during the run /metrics shows tracked campaigns")
            checks.check(mid_pub <= in_topic,
                         "during the run reports_published_total never exceeds the topic",
                         f"{mid_pub} counted, {in_topic} in the topic")
            finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=300)
            elapsed = time.monotonic() - t0
            by_id = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r)
            missing = set(ids) - set(by_id)
            dups = sum(len(v) - 1 for v in by_id.values())
            log(f"{len(by_id)} campaigns reported in {elapsed:.1f} s; duplicates {dups}")
            checks.eq(len(missing), 0, f"every one of {N} campaigns reported")
            checks.eq(dups, 0, "exactly one final report per campaign")
            checks.eq(set(by_id) - set(ids), set(), "no report for an unknown campaign")

            # Fields equal the simulator's truth.
            bad_fields = []
            outcomes = {}
            for cid, rs in sorted(by_id.items()):
                rep = rs[0].json()
                outcomes[rep["outcome"]] = outcomes.get(rep["outcome"], 0) + 1
                diffs = compare_with_truth(rep, sim.truth(cid))
                if diffs:
                    bad_fields.append((cid, diffs))
            for cid, d in bad_fields[:5]:
                log(f"campaign {cid}: {d}")
            checks.eq(len(bad_fields), 0, "every report's fields equal the simulator's truth")
            log(f"outcomes: {outcomes}")
            checks.check(all(outcomes.get(o, 0) > 0 for o in ("done", "stopped", "spam")),
                         "mixed outcomes: done, stopped and spam all seen", str(outcomes))
            lifecycles = [sim.truth(c).get("lifecycle", {}) for c in ids]
            later = sum(1 for lc in lifecycles if lc.get("scheduled_later"))
            paused = sum(1 for lc in lifecycles if lc.get("pauses"))
            log(f"lifecycles: {later} scheduled for later, {paused} paused then resumed")
            checks.check(later > 0 and paused > 0,
                         "the mix includes campaigns scheduled for later and paused ones",
                         f"later {later}, paused {paused}")

            # Report shape and headers.
            r0 = finals[0]
            checks.eq(r0.header("content-type"), b"application/json", "report content-type header")
            checks.eq(r0.key, str(r0.json()["campaign_id"]).encode(), "report keyed by campaign id")
            rep = r0.json()
            checks.eq(rep.get("schema"), "bsg.campaign.report.v1", "report schema name")
            checks.check(rep.get("final") is True and rep["tracking"]["polls"] >= 1,
                         "report tracking counts polls")
            merged = [by_id[c][0].json()["tracking"]["events"] for c in finished if c in by_id]
            checks.check(merged and all(e == 2 for e in merged),
                         "campaign.finished merged into the tracked campaign (events == 2)",
                         str(count_by(merged, lambda e: e)))
            traced = [r for r in finals if r.header("traceparent")]
            checks.check(len(traced) >= N // 10 - 1, "traceparent propagated to reports",
                         f"{len(traced)} reports carry it")

            # DLQ: every bad event with its reason and source headers.
            dlq = consume_all(bs, TOPICS["dlq"], count=len(bad_at), timeout=60)
            got = {r.key.decode(): r for r in dlq if r.key}
            checks.eq(sorted(got), sorted(bad_at), "every bad event is in the DLQ")
            wrong = [(k, got[k].header("error.reason"), want) for k, want in bad_at.items()
                     if k in got and got[k].header("error.reason") != want.encode()]
            checks.eq(wrong, [], "each DLQ record carries its reason")
            checks.check(all(r.header("source.topic") == TOPICS["input"].encode()
                             and r.header("source.offset") is not None
                             and r.header("error.message") for r in dlq),
                         "DLQ records carry source and message headers")
            originals = {k: v for k, v in recs_by_key(recs).items() if k in bad_at}
            checks.check(all(got[k].value == originals[k] for k in got if k in originals),
                         "DLQ keeps the original value unchanged")

            # No partition stalls: the committed offsets reach the end.
            ends = end_offsets(bs, TOPICS["input"])
            ok = wait_until(lambda: {p: o for p, (o, _) in committed_offsets(
                bs, GROUP, TOPICS["input"], ends).items()} == ends, timeout=30)
            checks.check(ok, "committed offsets reach the end of every partition",
                         f"ends {ends}, committed {committed_offsets(bs, GROUP, TOPICS['input'], ends)}")

            # Late events for campaigns already reported (a campaign.finished
            # after the final report) complete without a second report.
            late_ids = ids[:20]
            produce(bs, TOPICS["input"], [(str(c), event(c, "campaign.finished")) for c in late_ids])
            ends = end_offsets(bs, TOPICS["input"])
            ok = wait_until(lambda: {p: o for p, (o, _) in committed_offsets(
                bs, GROUP, TOPICS["input"], ends).items()} == ends, timeout=30)
            checks.check(ok, "late events are committed")
            time.sleep(2)
            again = [r for r in consume_all(bs, TOPICS["output"], timeout=30)
                     if r.json().get("final")]
            checks.eq(len(again), len(finals), "late events for reported campaigns add no report")

            check_schemas(checks, bs, TOPICS)

            # The admin endpoint: health, readiness, and counters that equal
            # what the topics hold.
            base = worker.metrics_url()
            checks.eq(http_get(base + "/healthz")[0], 200, "/healthz answers 200")
            checks.eq(http_get(base + "/readyz")[0], 200, "/readyz answers 200 while running")
            m = worker.scrape()
            total_in = sum(end_offsets(bs, TOPICS["input"]).values())
            consumed = sum(v for (n, _), v in m.items() if n == P + "events_consumed_total")
            checks.eq(int(consumed), total_in - len(bad_at),
                      "events_consumed_total equals the valid events in the topic")
            for outcome, n in outcomes.items():
                checks.eq(int(m.get((P + "reports_published_total", outcome), -1)), n,
                          f"reports_published_total{{outcome={outcome}}} equals the topic")
            dlq_by = count_by(dlq, lambda r: r.header("error.reason").decode())
            for reason, n in dlq_by.items():
                checks.eq(int(m.get((P + "dlq_records_total", reason), -1)), n,
                          f"dlq_records_total{{reason={reason}}} equals the topic")
            checks.eq(int(m.get((P + "events_late_total", None), -1)), len(late_ids),
                      "events_late_total counts the late events")
            checks.eq(int(m.get((P + "campaigns_tracked", None), -1)), 0,
                      "campaigns_tracked is 0 once everything is reported")
            checks.eq(int(m.get((P + "polls_per_campaign_count", None), -1)), N,
                      "polls_per_campaign observed once per campaign")

            if while_running:
                while_running(worker)

            # SIGTERM: exit 0 within the shutdown timeout.
            t1 = time.monotonic()
            worker.proc.signal(signal.SIGTERM)
            rc = worker.proc.wait(timeout=30)
            took = time.monotonic() - t1
            checks.eq(rc, 0, "SIGTERM: exit code 0")
            checks.check(took < 10 + 5, f"SIGTERM: exited in {took:.1f} s (shutdown.timeout 10 s)")
            after = committed_offsets(bs, GROUP, TOPICS["input"], ends)
            checks.eq({p: o for p, (o, _) in after.items()}, ends,
                      "after SIGTERM the committed offsets cover every handled event")

            # Secrets never leak.
            text = worker.proc.stderr_text() + worker.proc.stdout_text()
            checks.check(API_KEY not in text, "the API key appears in no worker log")
            checks.check("Bearer " not in text and "eyJ" not in text,
                         "no bearer token appears in any worker log")
            stats = sim.stats()
            log(f"simulator: {stats.get('detail_requests')} detail requests, "
                f"{stats.get('logins')} logins")
            checks.check(stats.get("logins", 0) <= 3, "the bearer is reused (few logins)",
                         str(stats.get("logins")))
        finally:
            if worker and worker.proc.running():
                worker.proc.print_tail()
                worker.proc.kill()
            sim.stop()


def recs_by_key(recs):
    out = {}
    for r in recs:
        k = r[0]
        v = r[1]
        out[k] = v if isinstance(v, bytes) else str(v).encode()
    return out


if __name__ == "__main__":
    run_main(main)
