"""End to end on a real Kafka broker: input events in the three shapes the
worker reads (issue 16) - plain (SPEC §3), CloudEvents binary mode (ce_*
headers, the value the data) and CloudEvents structured mode (the envelope,
with and without its content-type header) - with reverse-DNS type names
mapped by event.sent_types / event.finished_types. Every good campaign is
reported once and equal to the simulator's truth, whatever its shape; a
CloudEvent's time becomes tracking.first_event_at; an envelope's numeric id
is never taken for the campaign id; a follow-up finished event of another
shape merges into the campaign; bad CloudEvents land in the DLQ with their
reason and their bytes; the committed offsets reach the end (nothing lost);
a bad type list exits 2 naming its key."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, binary, consume_all, log,  # noqa: E402
                     parse_args, produce, run_main)
from pipeline import (API_KEY, Sim, Worker, check_schemas, committed_at_end,  # noqa: E402
                      compare_with_truth, count_by, event, scratch_dir, stop_leftovers,
                      wait_reports, wait_until, worker_config)

TOPICS = {"input": "ce.events", "output": "ce.reports", "dlq": "ce.dlq"}
GROUP = "brw-e2e-cloudevents"
SENT_TYPE = "com.example.sms.campaign.sent"
FINISHED_TYPE = "com.example.sms.campaign.finished"
TYPE_CONFIG = {"event.sent_types": f"{SENT_TYPE}, com.example.sms.sent",
               "event.finished_types": f"{FINISHED_TYPE},com.example.sms.done"}
CE_JSON = "application/cloudevents+json; charset=utf-8"
P = "bsg_report_worker_"


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(int(t), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def binary_headers(ce_type: str, n: int, when: str = "") -> list:
    """The Kafka binding's binary-mode headers of one event."""
    h = [("ce_specversion", "1.0"), ("ce_type", ce_type), ("ce_id", f"ce-bin-{n}"),
         ("ce_source", "/sms/campaigns"), ("content-type", "application/json")]
    if when:
        h.append(("ce_time", when))
    return h


def envelope(ce_type: str, data, env_id: str, when: str = "", **extra) -> bytes:
    """A structured-mode envelope (JSON format)."""
    e = {"specversion": "1.0", "type": ce_type, "source": "/sms/campaigns", "id": env_id,
         "datacontenttype": "application/json"}
    if when:
        e["time"] = when
    if data is not None:
        e["data"] = data
    e.update(extra)
    return json.dumps(e).encode()


def bad_events(base: int, past: str) -> list:
    """(key, value, headers, reason) of CloudEvents the worker must refuse."""
    env = lambda **kw: envelope(SENT_TYPE, {"campaign_id": base}, "1", **kw)  # noqa: E731
    ct = [("content-type", CE_JSON)]
    return [
        ("bad-bin-unknown-type", b'{"campaign_id": %d}' % base,
         binary_headers("com.example.sms.campaign.exploded", 1), "unknown_type"),
        ("bad-bin-version", b'{"campaign_id": %d}' % base,
         [("ce_specversion", "0.3"), ("ce_type", SENT_TYPE)], "invalid_json"),
        ("bad-bin-no-type", b'{"type": "campaign.sent", "campaign_id": %d}' % base,
         [("ce_specversion", "1.0"), ("ce_id", "x"), ("ce_source", "/s")], "unknown_type"),
        ("bad-bin-not-json", b'{"campaign_id": %d}' % base,
         [("ce_specversion", "1.0"), ("ce_type", SENT_TYPE), ("content-type", "text/plain")],
         "invalid_json"),
        ("bad-bin-envelope", env(), binary_headers(SENT_TYPE, 2), "invalid_json"),
        ("bad-bin-account", b'{"campaign_id": %d, "account": "nobody"}' % base,
         binary_headers(SENT_TYPE, 3), "unknown_account"),
        ("bad-st-version", envelope(SENT_TYPE, {"campaign_id": base}, "2", specversion="0.3"), ct,
         "invalid_json"),
        ("bad-st-base64", envelope(SENT_TYPE, None, "3", data_base64="eyJjYW1wYWlnbl9pZCI6MX0="), ct,
         "invalid_json"),
        # No data: its envelope id is a valid campaign id, which must not be
        # read as one.
        ("bad-st-no-data", envelope(SENT_TYPE, None, str(base + 1), when=past), ct,
         "invalid_campaign_id"),
        ("bad-st-data-string", envelope(SENT_TYPE, json.dumps({"campaign_id": base}), "4"), ct,
         "invalid_json"),
        ("bad-st-xml", envelope(SENT_TYPE, {"campaign_id": base}, "5", datacontenttype="application/xml"),
         ct, "invalid_json"),
        ("bad-st-unknown-type", envelope("com.example.sms.campaign.created", {"campaign_id": base}, "6"),
         ct, "unknown_type"),
        ("bad-st-avro", envelope(SENT_TYPE, {"campaign_id": base}, "7"),
         [("content-type", "application/cloudevents+avro")], "invalid_json"),
        ("bad-st-bad-id", envelope(SENT_TYPE, {"campaign_id": "../1"}, "8"), ct, "invalid_campaign_id"),
        # Without the header: found by its specversion, refused the same.
        ("bad-st-sniffed-type", envelope("com.example.sms.sent.v2", {"campaign_id": base}, "9"), None,
         "unknown_type"),
        ("bad-plain-mapped-wrong", event(base, "com.example.sms.campaign.sent.v2"), None, "unknown_type"),
    ]


def check_bad_list_exits_2(checks: Checks, bin_dir: Path) -> None:
    """--check-config with a bad type list: exit 2, one line naming the key."""
    worker = binary(bin_dir, "bsg-report-worker")
    for flags, key in ((["--event.sent_types=a,,b"], "event.sent_types"),
                       ([f"--event.sent_types={SENT_TYPE}", f"--event.finished_types=x,{SENT_TYPE}"],
                        "event.finished_types"),
                       (["--event.finished_types=campaign.sent"], "event.finished_types")):
        r = subprocess.run([str(worker), "--check-config", "--api.key=" + API_KEY, *flags],
                           capture_output=True, text=True, timeout=30)
        checks.check(r.returncode == 2 and f"configuration error: {key}:" in r.stderr
                     and r.stderr.count("\n") == 1,
                     f"{' '.join(flags)}: exit 2 naming {key}", f"rc {r.returncode}: {r.stderr.strip()}")
    r = subprocess.run([str(worker), "--check-config", "--api.key=" + API_KEY,
                        *[f"--{k}={v}" for k, v in TYPE_CONFIG.items()]],
                       capture_output=True, text=True, timeout=30)
    checks.check(r.returncode == 0 and f"event.sent_types = {TYPE_CONFIG['event.sent_types']}" in r.stdout,
                 "the test's type lists pass --check-config", r.stderr.strip())


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    check_bad_list_exits_2(checks, args.bin_dir)
    work = scratch_dir("cloudevents")
    now = time.time()
    past = rfc3339(now - 300)       # a CloudEvent's time: first_event_at
    data_time = rfc3339(now - 600)  # the data's occurred_at, which wins

    # Campaigns by how their first event is written; `expect` is what each
    # report's tracking must say: events, and first_event_at when a time
    # was given.
    ids = iter(range(880001, 890000))
    recs: list = []
    expect: dict = {}   # cid -> (events, first_event_at or None)
    shapes: dict = {}   # cid -> shape
    finished_events = 0

    def add(cid, value, headers, shape, first_at=None, events=1):
        recs.append((str(cid), value, headers) if headers else (str(cid), value))
        expect[cid] = (events, first_at)
        shapes[cid] = shape

    for i in range(10):   # plain; a mapped name for some
        cid = next(ids)
        add(cid, event(cid, SENT_TYPE if i % 2 else "campaign.sent"), None, "plain")
    for i in range(12):   # binary mode; ce_type wins over the value's type
        cid = next(ids)
        ce_type = (SENT_TYPE, "campaign.sent", "com.example.sms.sent")[i % 3]
        value = {"campaign_id": cid if i % 2 else str(cid), "type": "campaign.exploded"}
        if i % 4 == 3:
            value["occurred_at"] = data_time
        add(cid, json.dumps(value).encode(), binary_headers(ce_type, i, when=past if i % 2 else ""),
            "ce_binary", first_at=data_time if i % 4 == 3 else (past if i % 2 else None))
    for i in range(10):   # structured with the header; numeric envelope ids
        cid = next(ids)
        data = {"campaign_id": cid} if i % 3 else {"data": {"id": str(cid)}}
        add(cid, envelope(SENT_TYPE if i % 2 else "campaign.sent", data, str(cid + 5000), when=past),
            [("content-type", CE_JSON if i % 2 else "Application/CloudEvents+JSON")], "ce_structured",
            first_at=past)
    for i in range(5):    # structured without the header (found by specversion)
        cid = next(ids)
        add(cid, envelope(SENT_TYPE, {"id": cid}, f"ce-sniffed-{i}"), None, "ce_structured")
    # A campaign whose first event is campaign.finished under a mapped name,
    # once per shape.
    for shape in ("plain", "ce_binary", "ce_structured"):
        cid = next(ids)
        finished_events += 1
        if shape == "plain":
            add(cid, event(cid, "com.example.sms.done"), None, shape)
        elif shape == "ce_binary":
            add(cid, b'{"campaign_id": %d}' % cid, binary_headers(FINISHED_TYPE, 100), shape)
        else:
            add(cid, envelope(FINISHED_TYPE, {"campaign_id": cid}, "fin"), [("content-type", CE_JSON)], shape)
    good = list(expect)
    # Follow-up finished events in another shape than the first: they merge.
    followups = []
    for n, cid in enumerate(good[::4]):
        if n % 3 == 0:
            value, headers = b'{"campaign_id": %d}' % cid, binary_headers(FINISHED_TYPE, 200 + n)
        elif n % 3 == 1:
            value, headers = envelope(FINISHED_TYPE, {"campaign_id": cid}, f"f{n}"), [("content-type", CE_JSON)]
        else:
            value, headers = event(cid, "campaign.finished"), None
        followups.append((str(cid), value, headers) if headers else (str(cid), value))
        expect[cid] = (2, expect[cid][1])
        finished_events += 1
    recs += followups

    bad = bad_events(good[0], past)
    # Bad events in between the good ones.
    step = len(recs) // len(bad)
    for j, (key, value, headers, _) in enumerate(bad):
        recs.insert(j * (step + 1) + step // 2, (key, value, headers) if headers else (key, value))
    bad_reason = {key: reason for key, _, _, reason in bad}

    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 3, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "16", "--time-scale", "600").start()
        w = None
        try:
            produce(bs, TOPICS["input"], recs)
            log(f"produced {len(recs)} events: {len(good)} campaigns "
                f"{dict(count_by(good, lambda c: shapes[c]))}, {len(followups)} follow-ups, {len(bad)} bad")
            cfg = worker_config(bs, sim, GROUP, TOPICS, **TYPE_CONFIG,
                                **{"metrics.listen": "127.0.0.1:0"})
            w = Worker(args.bin_dir, work, cfg).start()
            t0 = time.monotonic()
            finals = wait_reports(bs, TOPICS["output"], set(good), timeout=90)
            by_id: dict = {}
            for r in finals:
                by_id.setdefault(r.json()["campaign_id"], []).append(r.json())
            log(f"{len(by_id)} campaigns reported in {time.monotonic() - t0:.1f} s")
            for shape in ("plain", "ce_binary", "ce_structured"):
                mine = [c for c in good if shapes[c] == shape]
                checks.eq([c for c in mine if c not in by_id], [], f"every {shape} campaign reported ({len(mine)})")
            checks.eq({c: len(v) for c, v in by_id.items() if len(v) > 1}, {},
                      "exactly one final report per campaign")
            checks.eq(sorted(set(by_id) - set(good)), [],
                      "no report for another id (an envelope's id is never the campaign id)")
            diffs = {c: compare_with_truth(v[0], sim.truth(c)) for c, v in by_id.items()}
            diffs = {c: d for c, d in diffs.items() if d}
            checks.eq(diffs, {}, "every report equals the simulator's truth, whatever the event's shape")
            got_events = {c: v[0]["tracking"]["events"] for c, v in by_id.items()}
            checks.eq({c: got_events.get(c) for c in good if got_events.get(c) != expect[c][0]}, {},
                      f"events per campaign: {len(followups)} follow-up finished events of other shapes merged")
            timed = {c: at for c, (_, at) in expect.items() if at}
            checks.eq({c: by_id[c][0]["tracking"]["first_event_at"] for c in timed
                       if c in by_id and by_id[c][0]["tracking"]["first_event_at"] != timed[c]}, {},
                      f"ce_time / the envelope's time is first_event_at ({len(timed)} campaigns; "
                      "the data's occurred_at wins)")
            untimed = [c for c in good if not expect[c][1] and c in by_id]
            checks.check(all(by_id[c][0]["tracking"]["first_event_at"] > rfc3339(now - 60) for c in untimed),
                         "without a time, first_event_at is the arrival")

            dlq = consume_all(bs, TOPICS["dlq"], count=len(bad), timeout=60)
            got = {r.key.decode(): r for r in dlq if r.key}
            checks.eq(sorted(got), sorted(bad_reason), "every bad CloudEvent is in the DLQ, nothing else")
            checks.eq({k: (got[k].header("error.reason") or b"").decode() for k in got}, bad_reason,
                      "each with its reason")
            originals = {key: value for key, value, _, _ in bad}
            checks.check(all(got[k].value == originals[k] for k in got),
                         "the DLQ keeps the original value")
            msgs = {k: (got[k].header("error.message") or b"").decode() for k in got}
            checks.check(all(m and "\n" not in m and len(m) < 200 for m in msgs.values()),
                         "error.message is one short line", str(msgs))
            for k, m in sorted(msgs.items()):
                log(f"{k}: {bad_reason[k]}: {m}")

            ok_commit, ends = committed_at_end(bs, GROUP, TOPICS["input"])
            checks.check(wait_until(ok_commit, timeout=30),
                         f"committed offsets reach the end of every partition ({sum(ends.values())} events: "
                         "nothing lost)")

            m = w.scrape()
            consumed = {k[1]: int(v) for k, v in m.items() if k[0] == P + "events_consumed_total"}
            checks.eq(consumed.get("finished", 0), finished_events,
                      "events_consumed_total{type=finished} counts the mapped and built-in finished events")
            checks.eq(consumed.get("sent", 0), len(good) - 3, "events_consumed_total{type=sent}")
            invalid = {k[1]: int(v) for k, v in m.items() if k[0] == P + "events_invalid_total" and v}
            checks.eq(invalid, dict(count_by(bad, lambda b: b[3])), "events_invalid_total by reason")
            check_schemas(checks, bs, TOPICS)

            w.proc.signal(signal.SIGTERM)
            checks.eq(w.proc.wait(timeout=60), 0, "SIGTERM: exit 0")
            checks.check(API_KEY not in w.proc.stderr_text(), "the API key appears in no log")
        finally:
            stop_leftovers([w], sim)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
