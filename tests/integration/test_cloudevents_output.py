"""End to end on a real Kafka broker: the CloudEvents headers of the
worker's records (output.cloudevents, SPEC §4) and the trace context in its
logs.

- With output.cloudevents=binary (the default) every report, progress report
  and DLQ record carries valid ce_* headers (CloudEvents 1.0's required
  attributes, checked by schemas.validate_ce), with the documented types.
- ce_id is stable: after kill -9 (nothing committed) a second worker of the
  group reports every campaign and DLQs every bad event again, and each copy
  has the same (ce_source, ce_id) as the first: report/<account>/<id>/
  <outcome>, dlq/<topic>/<partition>/<offset>.
- Traced events (traceparent and tracestate headers, or CloudEvents'
  ce_traceparent and ce_tracestate): every log line about
  the campaign (log.level=debug) carries its trace_id and span_id, so does
  the DLQ line of a traced bad event, and no line of an untraced campaign
  has one; the report carries both headers and both JSON fields.
- output.cloudevents=off: no ce_* header; the value is the same shape.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, log, parse_args, produce, run_main  # noqa: E402
from pipeline import (API_KEY, Sim, Worker, check_schemas, compare_with_truth, dlq_source,  # noqa: E402
                      event, finals_by_campaign, scratch_dir, stop_leftovers, wait_reports,
                      wait_until, worker_config)
from schemas import ce_attributes  # noqa: E402

TOPICS = {"input": "ce.events", "output": "ce.reports", "dlq": "ce.dlq"}
OFF_TOPICS = {"input": "ce.events", "output": "ce.reports.off", "dlq": "ce.dlq.off"}
GROUP = "brw-ce/team a"  # a name the default ce_source must percent-encode
SOURCE = "/bsg-report-worker/brw-ce%2Fteam%20a"
N = 24
TRACED = 6
TRACESTATE = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
BAD = [
    (b'{"campaign_id": "12a"}', "invalid_campaign_id", True),
    (b"not json", "invalid_json", False),
    (b'{"campaign_id": 78, "account": "nobody"}', "unknown_account", False),
]


def traceparent(cid: int) -> str:
    return f"00-{cid:032x}-{cid * 7:016x}-01"


def dlq_by_source(recs) -> dict:
    out: dict = {}
    for r in recs:
        out.setdefault(dlq_source(r), []).append(r)
    return out


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("cloudevents")
    ids = list(range(610001, 610001 + N))
    traced = set(ids[:TRACED])
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1,
                             OFF_TOPICS["output"]: 1, OFF_TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "7", "--time-scale", "600").start()
        workers = []
        try:
            recs = []
            for i, c in enumerate(ids):
                # The last traced one in CloudEvents binary mode, its trace
                # context in the distributed tracing extension's headers.
                hdrs = None
                if c in traced and i == TRACED - 1:
                    hdrs = [("ce_specversion", "1.0"), ("ce_type", "campaign.sent"), ("ce_id", f"x-{c}"),
                            ("ce_source", "/test"), ("ce_traceparent", traceparent(c)),
                            ("ce_tracestate", TRACESTATE)]
                elif c in traced:
                    hdrs = [("traceparent", traceparent(c)), ("tracestate", TRACESTATE)]
                recs.append((str(c), event(c), hdrs))
            bad_tp = "00-0000000000000000000000000000bad1-00000000000000b1-01"
            for value, _, with_tp in BAD:
                recs.append(("bad", value, [("traceparent", bad_tp)] if with_tp else None))
            at = produce(bs, TOPICS["input"], recs)
            bad_at = {at[N + i]: BAD[i] for i in range(len(BAD))}

            # Nothing is committed (commit interval 1 h), so that the kill
            # makes the next worker handle everything again.
            cfg = worker_config(bs, sim, GROUP, TOPICS, **{
                "log.level": "debug", "emit.progress": "true",
                "kafka.commit_interval": "1h",
                # The killed member's partitions move after 6 s, not 45.
                "kafka.consumer.session.timeout.ms": "6000",
                "kafka.consumer.heartbeat.interval.ms": "1000"})
            w1 = Worker(args.bin_dir, work, cfg, name="worker1").start()
            workers.append(w1)
            finals1 = wait_reports(bs, TOPICS["output"], set(ids), timeout=120)
            checks.eq({r.json()["campaign_id"] for r in finals1}, set(ids), "worker 1 reported every campaign")
            ok = wait_until(lambda: len(consume_all(bs, TOPICS["dlq"], timeout=10)) >= len(BAD), timeout=30)
            checks.check(ok, "worker 1 sent every bad event to the DLQ")
            w1.proc.kill()
            lines = w1.log_lines()

            w2 = Worker(args.bin_dir, work, cfg, name="worker2").start()
            workers.append(w2)

            def twice(records) -> bool:
                n = finals_by_campaign([r for r in records if r.json().get("final")])
                return all(len(n.get(c, [])) >= 2 for c in ids)
            allrecs = consume_all(bs, TOPICS["output"], until=twice, timeout=120)
            ok = wait_until(lambda: len(consume_all(bs, TOPICS["dlq"], timeout=10)) >= 2 * len(BAD), timeout=30)
            checks.check(ok, "worker 2 sent every bad event to the DLQ again")
            w2.proc.signal(signal.SIGTERM)
            checks.eq(w2.proc.wait(timeout=60), 0, "worker 2: SIGTERM, exit 0")

            finals = [r for r in allrecs if r.json().get("final")]
            progress = [r for r in allrecs if not r.json().get("final")]
            dlq = consume_all(bs, TOPICS["dlq"], timeout=30)
            by_id: dict = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r)
            checks.check(all(len(by_id.get(c, [])) >= 2 for c in ids),
                         "after kill -9 and a restart every campaign is reported again (at least once)",
                         str({c: len(by_id.get(c, [])) for c in ids}))
            wrong = [(c, d) for c, rs in by_id.items() for d in [compare_with_truth(rs[-1].json(), sim.truth(c))] if d]
            checks.eq(wrong[:3], [], "reports equal the simulator's truth")

            # Valid headers everywhere (schemas.validate_ce through
            # check_schemas), and present on every record.
            check_schemas(checks, bs, TOPICS)
            no_ce = [f"{r.topic}@{r.offset}" for r in allrecs + dlq if r.header("ce_specversion") is None]
            checks.eq(no_ce[:5], [], f"every one of {len(allrecs)} reports and {len(dlq)} DLQ records has ce_ headers")

            # Stable ids across the restart.
            unstable, misnamed = [], []
            for c, rs in by_id.items():
                ces = {(ce_attributes(r)["source"], ce_attributes(r)["id"]) for r in rs}
                if len(ces) != 1:
                    unstable.append((c, ces))
                want = (SOURCE, f"report/default/{c}/{rs[0].json()['outcome']}")
                if ces != {want}:
                    misnamed.append((c, ces, want))
                if any(ce_attributes(r)["type"] != "world.bsg.campaign.report" for r in rs):
                    misnamed.append((c, "type"))
            checks.eq(unstable[:3], [], "each campaign's final reports share one (ce_source, ce_id) across the restart")
            checks.eq(misnamed[:3], [], "ce_id is report/default/<id>/<outcome>, ce_source the group's, percent-encoded")
            d = dlq_by_source(dlq)
            checks.eq(sorted(d), sorted(bad_at), "the DLQ holds the bad events")
            for (p, o), rs in sorted(d.items()):
                reason = bad_at.get((p, o), (None, "?"))[1]
                ces = {(ce_attributes(r)["source"], ce_attributes(r)["id"], ce_attributes(r)["type"]) for r in rs}
                checks.check(len(rs) >= 2 and ces == {(SOURCE, f"dlq/{TOPICS['input']}/{p}/{o}",
                                                       "world.bsg.campaign.event.dead_lettered")},
                             f"DLQ {reason}: {len(rs)} copies, one ce_id dlq/<topic>/{p}/{o}", str(ces))
                subj = {ce_attributes(r).get("subject") for r in rs}
                checks.eq(subj, {"78"} if reason == "unknown_account" else {None},
                          f"DLQ {reason}: ce_subject is the campaign id when the event named one")
            # Progress reports: their own type; the same id means the same
            # detail.
            checks.check(len(progress) > 0, "progress reports were published", str(len(progress)))
            seen: dict = {}
            bad_prog = []
            for r in progress:
                ce = ce_attributes(r)
                v = r.json()
                if ce["type"] != "world.bsg.campaign.progress" or \
                        not ce["id"].startswith(f"progress/default/{v['campaign_id']}/{v['outcome']}/"):
                    bad_prog.append(ce)
                prev = seen.setdefault(ce["id"], v["campaign"])
                if prev != v["campaign"]:
                    bad_prog.append(("same id, other detail", ce["id"]))
            checks.eq(bad_prog[:3], [], f"{len(progress)} progress reports: type progress, id from the detail "
                                        f"({len(seen)} distinct)")

            # Trace context on reports.
            for c in sorted(traced):
                rs = by_id.get(c, [])
                ok = rs and all(r.header("traceparent") == traceparent(c).encode()
                                and r.header("tracestate") == TRACESTATE.encode()
                                and r.json().get("tracestate") == TRACESTATE for r in rs)
                checks.check(bool(ok), f"campaign {c}: traceparent and tracestate on its reports")
            untraced_ts = [c for c in ids if c not in traced for r in by_id.get(c, []) if r.header("tracestate")]
            checks.eq(untraced_ts, [], "no tracestate on untraced campaigns' reports")

            # Trace ids in worker 1's log lines (debug: every state change).
            for c in sorted(traced):
                about = [ln for ln in lines if ln.get("campaign_id") == c]
                tid = f"{c:032x}"
                missing = [ln.get("msg") for ln in about
                           if ln.get("trace_id") != tid or ln.get("span_id") != f"{c * 7:016x}"]
                checks.check(len(about) >= 3 and not missing,
                             f"campaign {c}: all {len(about)} log lines carry its trace_id and span_id",
                             str(missing[:3]))
            about = [ln for ln in lines if ln.get("campaign_id") in set(ids) - traced]
            checks.check(len(about) > 10 and not any("trace_id" in ln for ln in about),
                         f"no trace_id on the {len(about)} lines of untraced campaigns")
            fields_ok = [ln for ln in about if ln.get("messaging.destination.name") == TOPICS["input"]
                         and isinstance(ln.get("messaging.destination.partition.id"), str)
                         and isinstance(ln.get("messaging.kafka.offset"), int)]
            checks.eq(len(fields_ok), len(about), "campaign lines name their input record with OpenTelemetry's fields")
            bad_off = [o for (p, o), b in bad_at.items() if b[2]][0]
            dl = [ln for ln in lines if ln.get("msg") == "event sent to the DLQ"
                  and ln.get("messaging.kafka.offset") == bad_off]
            checks.check(len(dl) == 1 and dl[0].get("trace_id") == bad_tp[3:35],
                         "the DLQ line of a traced bad event carries its trace_id", str(dl)[:300])

            # Off: the same records without ce_ headers.
            cfg_off = worker_config(bs, sim, "brw-ce-off", OFF_TOPICS, **{"output.cloudevents": "off"})
            w3 = Worker(args.bin_dir, work, cfg_off, name="worker-off").start()
            workers.append(w3)
            off = wait_reports(bs, OFF_TOPICS["output"], set(ids), timeout=120)
            w3.proc.signal(signal.SIGTERM)
            checks.eq(w3.proc.wait(timeout=60), 0, "output.cloudevents=off worker: SIGTERM, exit 0")
            off_dlq = consume_all(bs, OFF_TOPICS["dlq"], timeout=30)
            with_ce = [r.offset for r in off + off_dlq if any(n.startswith("ce_") for n, _ in r.headers)]
            checks.eq(with_ce, [], f"output.cloudevents=off: none of {len(off)} reports and {len(off_dlq)} "
                                   "DLQ records has a ce_ header")
            shape = {c: sorted(rs[0]) for c, rs in finals_by_campaign(off).items()}
            checks.eq(shape, {c: sorted(by_id[c][0].json()) for c in shape},
                      "output.cloudevents=off: the report values have the same members")
            check_schemas(checks, bs, OFF_TOPICS)
            checks.check(all(API_KEY not in w.proc.stderr_text() for w in workers),
                         "the API key appears in no worker's output")
            ce_bytes = sorted(sum(len(n) + len(v) for n, v in r.headers if n.startswith("ce_")) for r in finals)
            log(f"cloudevents: {len(finals)} final and {len(progress)} progress reports, {len(dlq)} DLQ records; "
                f"ce_* header bytes (names + values) per final report: median {ce_bytes[len(ce_bytes) // 2]}, "
                f"max {ce_bytes[-1]}")
        finally:
            stop_leftovers(workers, sim)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
