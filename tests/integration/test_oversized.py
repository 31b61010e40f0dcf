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

Before the fix, the first event's DLQ record was refused by the producer and
retried every second for ever: intake stayed paused behind it, the
partition's commit never moved and the campaigns after it were never
reported."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets, consume_all, end_offsets,  # noqa: E402
                     parse_args, produce, run_main)
from pipeline import (Sim, Worker, check_schemas, event, scratch_dir, wait_reports,  # noqa: E402
                      wait_until, worker_config)

TOPICS = {"input": "ov.events", "output": "ov.reports", "dlq": "ov.dlq"}
GROUP = "brw-ov"
DLQ_TOPIC_LIMIT = 200_000

HUGE_ID = 820001      # value of ~1,000,100 bytes
KEY_ID = 820002       # key of 100,000 bytes
BIG_ID = 820003       # value of 150,000 bytes
HUGE_VALUE_LEN = 1_000_100
BIG_KEY_LEN = 100_000
BIG_VALUE_LEN = 150_000


def padded(cid: int, total: int) -> bytes:
    """A valid event of exactly `total` bytes (a pad field fills it)."""
    head = json.dumps({"type": "campaign.sent", "campaign_id": cid, "pad": ""}).encode()
    pad = total - len(head)
    return head[:-2] + b"x" * pad + b'"}'


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("oversized")
    normal = list(range(810001, 810025))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2})
        kafka.create_topics({TOPICS["dlq"]: 1}, config={"max.message.bytes": str(DLQ_TOPIC_LIMIT)})
        sim = Sim(args.bin_dir, work, "--seed", "11", "--time-scale", "600").start()
        w = None
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
                recs += [(str(c), event(c), None, p) for c in mine[3:]]
            produce(bs, TOPICS["input"], recs, config={"message.max.bytes": 1_048_000})

            cfg = worker_config(bs, sim, GROUP, TOPICS, **{"metrics.listen": "127.0.0.1:0"})
            w = Worker(args.bin_dir, work, cfg).start()

            finals = wait_reports(bs, TOPICS["output"], set(normal), timeout=120)
            got = {r.json()["campaign_id"] for r in finals}
            checks.eq(set(normal) - got, set(), "every valid campaign is reported")
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
            checks.eq(m.get(("bsg_report_worker_blocked", "record_refused")), 0,
                      "record_refused no longer blocks once resolved")

            checks.check(w.proc.running(), "the worker is still running")
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
