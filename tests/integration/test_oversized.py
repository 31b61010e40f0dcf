"""End to end on a real Kafka broker: no oversized record stalls a partition
(SPEC §4 "No record may stall a partition", issue 10 item 1).

Normal campaigns are mixed, on the same partitions, with:
  - an event of ~1,000,100 bytes: the broker takes it (its limit is
    1,048,588), the worker calls it too_large, and its DLQ record is larger
    than the producer's message.max.bytes (1,000,000): the worker must shorten
    it to output.max_record_size before producing it;
  - an event whose key is 100,000 bytes: too_large, its key shortened;
  - an event of 150,000 bytes: too_large, kept whole (it fits);
and the DLQ topic is created with max.message.bytes = 200,000, so the broker
refuses the shortened copy of the first event: the worker must shorten it
further (headers only) instead of retrying it for ever.

Asserts: every valid campaign reported; the oversized events in the DLQ with
reason too_large and error.truncated / error.original_*_size where they were
cut; the committed offsets at the end of each input partition; the refusals
counted in /metrics; the worker alive until SIGTERM, then exit 0.

Three more workers, at the same time on their own topics, cover the other
fallbacks: reports over output.max_record_size (set to 1KiB) go to the DLQ
as too_large without being produced; reports that the broker refuses (an output topic with
max.message.bytes = 300) go to the DLQ as too_large with their original
event; a DLQ record refused even bare (a DLQ topic with max.message.bytes =
100) is given up with an ERROR naming its offset, counted, and its offset
completed, so that the partition moves on.

Before the fix, the first event's DLQ record was refused by the producer and
retried every second for ever: intake stayed paused behind it, the
partition's commit never moved and the campaigns after it were never
reported."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all, create_topics,  # noqa: E402
                     end_offsets, parse_args, produce, run_main)
from pipeline import (Sim, Worker, check_schemas, committed_at_end, event, padded,  # noqa: E402
                      scratch_dir, wait_reports, wait_until, worker_config)

TOPICS = {"input": "ov.events", "output": "ov.reports", "dlq": "ov.dlq"}
GROUP = "brw-ov"
DLQ_TOPIC_LIMIT = 200_000

HUGE_ID = 820001      # value of ~1,000,100 bytes
KEY_ID = 820002       # key of 100,000 bytes
BIG_ID = 820003       # value of 150,000 bytes
HUGE_VALUE_LEN = 1_000_100
BIG_KEY_LEN = 100_000
BIG_VALUE_LEN = 150_000
DUPLICATES = 100


REFUSE_TOPICS = {"input": "ov2.events", "output": "ov2.reports", "dlq": "ov2.dlq"}
GIVEUP_TOPICS = {"input": "ov3.events", "output": "ov3.reports", "dlq": "ov3.dlq"}
BIGREPORT_TOPICS = {"input": "ov4.events", "output": "ov4.reports", "dlq": "ov4.dlq"}
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def start_refusing(args, work, bs, sim):
    """Reports refused by the broker: an output topic that takes 300 bytes."""
    create_topics(bs, {REFUSE_TOPICS["input"]: 1, REFUSE_TOPICS["dlq"]: 1})
    create_topics(bs, {REFUSE_TOPICS["output"]: 1}, config={"max.message.bytes": "300"})
    ids = [830001, 830002, 830003]
    produce(bs, REFUSE_TOPICS["input"], [(str(c), event(c)) for c in ids])
    cfg = worker_config(bs, sim, "brw-ov2", REFUSE_TOPICS, **{"metrics.listen": "127.0.0.1:0"})
    return Worker(args.bin_dir, work, cfg, name="worker-refused").start(), ids


def check_refusing(checks, bs, w, ids) -> None:
    dlq = consume_all(bs, REFUSE_TOPICS["dlq"], count=len(ids), timeout=90)
    checks.eq(sorted(int(r.key) for r in dlq), ids, "refused reports: each campaign in the DLQ")
    checks.eq({r.header("error.reason") for r in dlq}, {b"too_large"}, "refused reports: reason too_large")
    checks.check(all(r.value == event(int(r.key)) for r in dlq),
                 "refused reports: the DLQ keeps the original event")
    checks.check(all(b"refused" in (r.header("error.message") or b"") for r in dlq),
                 "refused reports: error.message says the report was refused",
                 str([r.header("error.message") for r in dlq][:1]))
    checks.eq(consume_all(bs, REFUSE_TOPICS["output"], timeout=20), [],
              "refused reports: nothing on the refusing output topic")
    ok, ends = committed_at_end(bs, "brw-ov2", REFUSE_TOPICS["input"])
    checks.check(wait_until(ok, timeout=30), "refused reports: committed offsets at the end", str(ends))
    m = w.scrape()
    checks.check(m.get(("bsg_report_worker_records_refused_total", "report"), 0) >= len(ids),
                 "refused reports: counted (records_refused_total{kind=report})",
                 str(m.get(("bsg_report_worker_records_refused_total", "report"))))


def start_giving_up(args, work, bs, sim):
    """A DLQ topic that takes 100 bytes: even a bare DLQ record is refused."""
    create_topics(bs, {GIVEUP_TOPICS["input"]: 1, GIVEUP_TOPICS["output"]: 1})
    create_topics(bs, {GIVEUP_TOPICS["dlq"]: 1}, config={"max.message.bytes": "100"})
    ids = [840001, 840002, 840003, 840004]
    recs = [(str(c), event(c)) for c in ids[:2]] + [("bad", b"not json at all")] + \
           [(str(c), event(c)) for c in ids[2:]]
    produce(bs, GIVEUP_TOPICS["input"], recs)
    cfg = worker_config(bs, sim, "brw-ov3", GIVEUP_TOPICS, **{"metrics.listen": "127.0.0.1:0"})
    return Worker(args.bin_dir, work, cfg, name="worker-giveup").start(), ids


def check_giving_up(checks, bs, w, ids) -> None:
    finals = wait_reports(bs, GIVEUP_TOPICS["output"], set(ids), timeout=90)
    checks.eq({r.json()["campaign_id"] for r in finals}, set(ids),
              "give-up: the campaigns around the refused DLQ record are reported")
    checks.eq(consume_all(bs, GIVEUP_TOPICS["dlq"], timeout=20), [], "give-up: nothing on the DLQ topic")
    ok, ends = committed_at_end(bs, "brw-ov3", GIVEUP_TOPICS["input"])
    checks.check(wait_until(ok, timeout=30), "give-up: committed offsets at the end (the partition moved)",
                 str(ends))
    m = w.scrape()
    checks.eq(m.get(("bsg_report_worker_dlq_records_dropped_total", None)), 1.0,
              "give-up: counted (dlq_records_dropped_total)")
    errs = [ln for ln in w.log_lines() if ln.get("level") == "error" and "given up" in ln.get("msg", "")]
    checks.check(len(errs) == 1 and errs[0].get("messaging.kafka.offset") == 2
                 and errs[0].get("messaging.destination.partition.id") == "0",
                 "give-up: one ERROR line naming the source partition and offset", str(errs)[:400])
    # Cleared once every refused record is settled and none was refused for
    # 10 s (so that records refused one after another log it once).
    checks.check(wait_until(lambda: w.scrape().get(("bsg_report_worker_blocked", "record_refused")) == 0,
                            timeout=40),
                 "give-up: record_refused cleared once settled")


def check_config_limit(checks, args, work) -> None:
    """output.max_record_size above the producer's message.max.bytes is a
    configuration error (exit 2, naming the key), found before connecting."""
    import subprocess
    from harness import binary
    r = subprocess.run([str(binary(args.bin_dir, "bsg-report-worker")), "--api.key=test_config_key_0123",
                        "--brokers=127.0.0.1:1", "--metrics.listen=off", "--output.max_record_size=2MiB"],
                       cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    checks.eq(r.returncode, 2, "output.max_record_size over message.max.bytes: exit 2")
    checks.check("output.max_record_size" in r.stderr and "message.max.bytes" in r.stderr,
                 "the error names output.max_record_size and message.max.bytes", r.stderr[-300:])


def start_big_reports(args, work, bs, sim):
    """Reports over output.max_record_size (1KiB here; a report with a
    traceparent header is ~1.1 kB): never produced, sent to the DLQ."""
    create_topics(bs, {BIGREPORT_TOPICS["input"]: 1, BIGREPORT_TOPICS["output"]: 1,
                       BIGREPORT_TOPICS["dlq"]: 1})
    ids = [850001, 850002]
    produce(bs, BIGREPORT_TOPICS["input"], [(str(c), event(c), [("traceparent", TRACEPARENT)]) for c in ids])
    cfg = worker_config(bs, sim, "brw-ov4", BIGREPORT_TOPICS,
                        **{"metrics.listen": "127.0.0.1:0", "output.max_record_size": "1KiB"})
    return Worker(args.bin_dir, work, cfg, name="worker-bigreport").start(), ids


def check_big_reports(checks, bs, w, ids) -> None:
    dlq = consume_all(bs, BIGREPORT_TOPICS["dlq"], count=len(ids), timeout=90)
    checks.eq(sorted(int(r.key) for r in dlq), ids, "big reports: each campaign in the DLQ")
    checks.eq({r.header("error.reason") for r in dlq}, {b"too_large"}, "big reports: reason too_large")
    checks.check(all(r.value == event(int(r.key)) and r.header("error.truncated") is None for r in dlq),
                 "big reports: the DLQ keeps the original event, whole")
    checks.check(all(b"exceeds output.max_record_size" in (r.header("error.message") or b"") for r in dlq),
                 "big reports: error.message names output.max_record_size",
                 str([r.header("error.message") for r in dlq][:1]))
    checks.eq(consume_all(bs, BIGREPORT_TOPICS["output"], timeout=20), [],
              "big reports: none produced to the output topic")
    ok, ends = committed_at_end(bs, "brw-ov4", BIGREPORT_TOPICS["input"])
    checks.check(wait_until(ok, timeout=30), "big reports: committed offsets at the end", str(ends))
    m = w.scrape()
    checks.check(m.get(("bsg_report_worker_records_refused_total", "report"), 0) >= len(ids),
                 "big reports: counted (records_refused_total{kind=report})")


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("oversized")
    check_config_limit(checks, args, work)
    normal = list(range(810001, 810025))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2})
        kafka.create_topics({TOPICS["dlq"]: 1}, config={"max.message.bytes": str(DLQ_TOPIC_LIMIT)})
        sim = Sim(args.bin_dir, work, "--seed", "11", "--time-scale", "600").start()
        w = None
        others: list = []
        try:
            huge = padded(HUGE_ID, HUGE_VALUE_LEN)
            big = padded(BIG_ID, BIG_VALUE_LEN)
            big_key = b"k" * BIG_KEY_LEN
            checks.eq(len(huge), HUGE_VALUE_LEN, "the huge event has its size")
            # Each partition: a few normal events, the oversized ones, then
            # more normal events, which a stalled partition never reaches.
            recs = []
            for p in (0, 1):
                mine = [c for c in normal if c % 2 == p]
                recs += [(str(c), event(c), None, p) for c in mine[:3]]
                if p == 0:
                    recs.append((str(HUGE_ID), huge, None, 0))
                    recs.append((big_key, event(KEY_ID), None, 0))
                else:
                    recs.append((str(BIG_ID), big, None, 1))
                    # 100 duplicates of one campaign: past 64 merged offsets
                    # they complete at once (memory bound); still one report,
                    # and the commit still reaches the end.
                    recs += [(str(mine[0]), event(mine[0]), None, 1)] * DUPLICATES
                recs += [(str(c), event(c), None, p) for c in mine[3:]]
            produce(bs, TOPICS["input"], recs, config={"message.max.bytes": 1_048_000})

            cfg = worker_config(bs, sim, GROUP, TOPICS, **{"metrics.listen": "127.0.0.1:0"})
            w = Worker(args.bin_dir, work, cfg).start()
            w2, ids2 = start_refusing(args, work, bs, sim)
            w3, ids3 = start_giving_up(args, work, bs, sim)
            w4, ids4 = start_big_reports(args, work, bs, sim)
            others = [w2, w3, w4]

            finals = wait_reports(bs, TOPICS["output"], set(normal), timeout=120)
            got = {r.json()["campaign_id"] for r in finals}
            checks.eq(set(normal) - got, set(), "every valid campaign is reported")
            dup = [r.json() for r in finals if r.json()["campaign_id"] == normal[0]]
            checks.check(len(dup) == 1 and dup[0]["tracking"]["events"] == DUPLICATES + 1,
                         "the campaign with 100 duplicates: one report counting every event",
                         str([d["tracking"] for d in dup]))
            checks.eq(got & {HUGE_ID, KEY_ID, BIG_ID}, set(), "no oversized event is reported")

            dlq = consume_all(bs, TOPICS["dlq"], count=3, timeout=60)
            by_src = {(int(r.header("source.partition")), int(r.header("source.offset"))): r for r in dlq}
            checks.check(len(dlq) == 3, "three records in the DLQ",
                         str([(r.key[:16] if r.key else None, r.header("error.reason")) for r in dlq]))
            checks.eq({r.header("error.reason") for r in dlq}, {b"too_large"}, "reason too_large")
            checks.check(all(len(r.key or b"") + len(r.value or b"") < DLQ_TOPIC_LIMIT for r in dlq),
                         "every DLQ record fits the DLQ topic's limit")

            def find(pred):
                return next((r for r in dlq if pred(r)), None)

            h = find(lambda r: r.key == str(HUGE_ID).encode())
            checks.check(h is not None, "the ~1 MB event is in the DLQ")
            if h is not None:
                checks.check(h.header("error.truncated") is not None and
                             b"value" in h.header("error.truncated"),
                             "its value is marked truncated", repr(h.header("error.truncated")))
                checks.eq(h.header("error.original_value_size"), str(HUGE_VALUE_LEN).encode(),
                          "its original value size is recorded")
                checks.check(len(h.value or b"") < HUGE_VALUE_LEN and
                             huge.startswith(h.value or b""),
                             "its value is a prefix of the original", f"{len(h.value or b'')} bytes")
            k = find(lambda r: r.value == event(KEY_ID))
            checks.check(k is not None, "the event with a 100 kB key is in the DLQ",
                         str([(len(r.key or b""), (r.value or b"")[:60], r.headers) for r in dlq]))
            if k is not None:
                checks.check(k.header("error.truncated") is not None and
                             b"key" in k.header("error.truncated"),
                             "its key is marked truncated", repr(k.header("error.truncated")))
                checks.eq(k.header("error.original_key_size"), str(BIG_KEY_LEN).encode(),
                          "its original key size is recorded")
                checks.check(0 < len(k.key or b"") <= 4096 and big_key.startswith(k.key),
                             "its key is shortened to event.max_key_size", f"{len(k.key or b'')} bytes")
            b = find(lambda r: r.key == str(BIG_ID).encode())
            checks.check(b is not None, "the 150 kB event is in the DLQ")
            if b is not None:
                checks.eq(b.value, big, "the 150 kB event is kept whole (it fits)")
                checks.eq(b.header("error.truncated"), None, "and not marked truncated")
            checks.eq(len(by_src), len(dlq), "one DLQ record per source offset")
            check_schemas(checks, bs, TOPICS)

            ends = end_offsets(bs, TOPICS["input"])

            def committed_at_end() -> bool:
                c = committed_offsets(bs, GROUP, TOPICS["input"], sorted(ends))
                return all(c[p][0] == ends[p] for p in ends)

            checks.check(wait_until(committed_at_end, timeout=30),
                         "the committed offsets reach the end of every input partition",
                         str((committed_offsets(bs, GROUP, TOPICS["input"], sorted(ends)), ends)))

            m = w.scrape()
            checks.check(m.get(("bsg_report_worker_records_refused_total", "dlq"), 0) >= 1,
                         "the broker's refusal is counted (records_refused_total{kind=dlq})",
                         str(m.get(("bsg_report_worker_records_refused_total", "dlq"))))
            checks.check(m.get(("bsg_report_worker_dlq_records_truncated_total", None), 0) >= 2,
                         "shortened DLQ records are counted",
                         str(m.get(("bsg_report_worker_dlq_records_truncated_total", None))))
            checks.eq(m.get(("bsg_report_worker_dlq_records_dropped_total", None), 0), 0,
                      "no DLQ record was given up")
            checks.check(m.get(("bsg_report_worker_blocked_total", "record_refused"), 0) >= 1,
                         "record_refused was raised (blocked_total)")
            checks.check(wait_until(lambda: w.scrape().get(("bsg_report_worker_blocked", "record_refused")) == 0,
                                    timeout=40),
                         "record_refused clears once resolved")
            # Three too_large events within seconds: one WARN line, the rest
            # held back and counted (a poison flood is not a log flood).
            lines = [ln for ln in w.log_lines()
                     if ln.get("msg") == "event sent to the DLQ" and ln.get("reason") == "too_large"]
            checks.check(1 <= len(lines) < 3, "DLQ lines are rate-limited per reason", f"{len(lines)} lines")
            # Exported by the 1 s health tick.
            checks.check(wait_until(lambda: w.scrape().get(("bsg_report_worker_log_lines_suppressed_total", None), 0)
                                    >= 3 - len(lines), timeout=10),
                         "held-back lines are counted (log_lines_suppressed_total)")

            check_refusing(checks, bs, w2, ids2)
            check_giving_up(checks, bs, w3, ids3)
            check_big_reports(checks, bs, w4, ids4)

            for name, wk in (("", w), ("refused reports: ", w2), ("give-up: ", w3),
                             ("big reports: ", w4)):
                checks.check(wk.proc.running(), f"{name}the worker is still running")
                wk.proc.signal(signal.SIGTERM)
                checks.eq(wk.proc.wait(timeout=60), 0, f"{name}SIGTERM: exit 0")
        finally:
            for wk in [w] + others:
                if wk and wk.proc.running():
                    wk.proc.print_tail()
                    wk.proc.kill()
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
