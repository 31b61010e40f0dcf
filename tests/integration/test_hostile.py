"""End to end on a real Kafka broker: hostile input mixed with normal traffic
(issue 10, "Done when").

One worker meets, in one run, what months in production bring:
  - its input topic does not exist yet when it starts (a typo, or a topic
    created after the deployment);
  - the API's login answers 200 with a bearer that expired before it arrived
    (bsg-api-sim --bearer-mode expired, as BSG's own OpenAPI example does);
  - an input event of ~1,000,100 bytes (the broker takes it; its DLQ record
    is larger than the producer may send) and an event with a 100,000-byte
    key;
  - a campaign whose detail carries a negative counter (BSG's spec sets no
    minimum), which no report may publish;
  - the usual bad events (not JSON, bad ids, unknown type and account);
and normal campaigns of two accounts around them, on the same partitions.

Asserts:
  - /readyz is truthful throughout: sampled every 0.3 s by a thread, a 503
    always lists a reason that makes the worker not ready and a 200 lists
    none; it names input_topic_missing while the topic is missing and
    account_auth while the bearers are unusable, and is 200 at the end;
  - every valid campaign is reported and equals the simulator's truth;
  - every bad event is in the DLQ with its reason (too_large ones shortened
    and saying so, the negative-counter campaign as bad_response at its
    deadline, with the reason in error.message);
  - the committed offsets reach the end of each input partition;
  - no API key and no bearer (no JWT at all) appears in the worker's log, in
    /metrics, /readyz or any record;
  - every record matches its JSON Schema; SIGTERM exits 0.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, create_topics, parse_args, produce, run_main  # noqa: E402
from pipeline import (API_KEY, BAD_EVENTS, Sim, Worker, check_schemas, committed_at_end,  # noqa: E402
                      compare_with_truth, event, http_get, http_json, padded, scratch_dir,
                      wait_reports, wait_until, worker_config)

TOPICS = {"input": "ho.events", "output": "ho.reports", "dlq": "ho.dlq"}
GROUP = "brw-hostile"
OTHER_KEY = "live_other_account_key_31337"
NORMAL = list(range(910001, 910021))         # default account
OTHER = list(range(911001, 911006))          # account "other"
NEGATIVE_ID = 912001                         # a negative counter, always
HUGE_ID, KEY_ID = 913001, 913002
HUGE_VALUE_LEN = 1_000_100
BIG_KEY_LEN = 100_000
# Bounds, generous for a loaded 2-core machine: about reaching a state at
# all, not about speed.
STATE_S = 90
JWT_RE = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


class ReadyzSampler(threading.Thread):
    """Samples /readyz every 0.3 s: (monotonic time, status, body)."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.samples: list = []
        self.stop_flag = threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            try:
                status, body = http_get(self.base + "/readyz", timeout=5)
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = {"_raw": body.decode(errors="replace")}
                self.samples.append((time.monotonic(), status, parsed))
            except OSError as e:
                self.samples.append((time.monotonic(), None, {"_error": str(e)}))
            self.stop_flag.wait(0.3)

    def stop(self) -> None:
        self.stop_flag.set()
        self.join(timeout=10)

    def latest(self):
        return self.samples[-1] if self.samples else (0, None, {})

    def seen(self, pred) -> bool:
        return any(pred(s, b) for _, s, b in list(self.samples))


def not_ready_reasons(body: dict) -> set:
    return {k for k, v in (body.get("blocked") or {}).items() if not v.get("ready", True)}


def check_truthful(checks: Checks, samples: list) -> None:
    """Every answer agrees with itself: 503 with a not-ready reason (or
    while starting or stopping), 200 without one."""
    bad = []
    for t, status, body in samples:
        if status is None:
            bad.append(("no answer", body))
            continue
        reasons = not_ready_reasons(body)
        if status == 200 and (reasons or body.get("ready") is not True):
            bad.append((status, body))
        # "starting": the first moments, before the first metadata answer
        # about the input topic or the first assignment (seen on both
        # librdkafka lines: a first sample before either).
        if status == 503 and not reasons and not body.get("stopping") and not body.get("starting"):
            bad.append((status, body))
    checks.check(not bad and len(samples) > 20,
                 f"/readyz consistent in all {len(samples)} samples (503 names a reason, 200 none)",
                 str(bad[:3]))


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("hostile")
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "13", "--time-scale", "600",
                  "--bearer-mode", "expired").start()
        w = None
        sampler = None
        try:
            http_json(f"{sim.url}/_sim/campaigns/{NEGATIVE_ID}",
                      {"counter": {"name": "delivered", "value": -159}})
            cfg = worker_config(bs, sim, GROUP, TOPICS, **{
                "metrics.listen": "127.0.0.1:0",
                "accounts.other.key": OTHER_KEY,
                "poll.max_age": "40s",
            })
            w = Worker(args.bin_dir, work, cfg).start()
            base = w.metrics_url()
            sampler = ReadyzSampler(base)
            sampler.start()

            # 1. The input topic does not exist.
            checks.check(wait_until(lambda: "input_topic_missing" in not_ready_reasons(sampler.latest()[2]),
                                    timeout=STATE_S),
                         "missing input topic: /readyz 503 names input_topic_missing",
                         str(sampler.latest()))
            checks.eq(sampler.latest()[1], 503, "missing input topic: /readyz answers 503")
            create_topics(bs, {TOPICS["input"]: 2})
            checks.check(wait_until(lambda: "input_topic_missing" not in not_ready_reasons(sampler.latest()[2])
                                    and sampler.latest()[1] is not None, timeout=STATE_S),
                         "topic created: input_topic_missing clears", str(sampler.latest()))

            # 2. Hostile and normal events together, while logins yield
            # expired bearers.
            recs = [(str(c), event(c)) for c in NORMAL[:10]]
            recs += [(f"bad{i}", v) for i, (v, _) in enumerate(BAD_EVENTS)]
            recs += [(str(HUGE_ID), padded(HUGE_ID, HUGE_VALUE_LEN))]
            recs += [(b"k" * BIG_KEY_LEN, event(KEY_ID))]
            recs += [(str(NEGATIVE_ID), event(NEGATIVE_ID))]
            recs += [(str(c), event(c, account="other")) for c in OTHER]
            recs += [(str(c), event(c)) for c in NORMAL[10:]]
            produce(bs, TOPICS["input"], recs, config={"message.max.bytes": 1_048_000})

            checks.check(wait_until(lambda: "account_auth" in not_ready_reasons(sampler.latest()[2]),
                                    timeout=STATE_S),
                         "expired bearers: /readyz 503 names account_auth", str(sampler.latest()))
            detail = (sampler.latest()[2].get("blocked") or {}).get("account_auth", {}).get("detail", "")
            checks.check(OTHER_KEY not in detail and API_KEY not in detail,
                         "account_auth detail names no key", detail)
            time.sleep(3)  # a few failing logins, to see them limited
            stats = sim.stats()
            checks.eq(stats.get("detail_requests", -1), 0,
                      "expired bearers: no detail request is sent with them")
            auth_lines = [ln for ln in w.log_lines() if "usable bearer" in ln.get("msg", "")]
            checks.check(1 <= len(auth_lines) <= 12,
                         "expired bearers: the reason is logged, rate-limited",
                         f"{len(auth_lines)} lines: {[ln.get('msg') for ln in auth_lines[:2]]}")

            http_json(sim.url + "/_sim/faults", {"bearer_mode": "normal"})
            checks.check(wait_until(lambda: sampler.latest()[1] == 200, timeout=STATE_S),
                         "bearers usable again: /readyz 200", str(sampler.latest()))

            # 3. Outcomes.
            valid = set(NORMAL) | set(OTHER)
            finals = wait_reports(bs, TOPICS["output"], valid, timeout=120)
            got = {r.json()["campaign_id"]: r.json() for r in finals}
            checks.eq(valid - set(got), set(), "every valid campaign reported")
            checks.eq(sorted(c for c in valid if c in got and compare_with_truth(got[c], sim.truth(c))), [],
                      "their reports equal the simulator's truth")
            checks.eq({got[c]["account"] for c in OTHER if c in got}, {"other"},
                      "the second account's campaigns carry its name")
            checks.check(NEGATIVE_ID not in got, "no report for the negative-counter campaign")

            want_dlq = len(BAD_EVENTS) + 3
            dlq = consume_all(bs, TOPICS["dlq"], count=want_dlq, timeout=120)
            by_key = {r.key: r for r in dlq}
            checks.eq(len(dlq), want_dlq, "DLQ: one record per bad event")
            for i, (_, reason) in enumerate(BAD_EVENTS):
                r = by_key.get(f"bad{i}".encode())
                checks.eq(r.header("error.reason").decode() if r else None, reason,
                          f"DLQ: bad event {i} has reason {reason}")
            huge = by_key.get(str(HUGE_ID).encode())
            checks.check(huge is not None and huge.header("error.reason") == b"too_large"
                         and huge.header("error.truncated") is not None
                         and huge.header("error.original_value_size") == str(HUGE_VALUE_LEN).encode(),
                         "DLQ: the ~1 MB event is too_large, shortened, and says so",
                         str(huge.headers if huge else None)[:300])
            keyed = [r for r in dlq if r.key and r.key.startswith(b"kkkk")]
            checks.check(len(keyed) == 1 and keyed[0].header("error.reason") == b"too_large"
                         and len(keyed[0].key) < BIG_KEY_LEN
                         and keyed[0].header("error.original_key_size") == str(BIG_KEY_LEN).encode(),
                         "DLQ: the 100 kB key is too_large, shortened, and says so",
                         str(keyed[0].headers if keyed else None)[:300])
            neg = by_key.get(str(NEGATIVE_ID).encode())
            checks.check(neg is not None and neg.header("error.reason") == b"bad_response"
                         and b"negative" in (neg.header("error.message") or b""),
                         "DLQ: the negative-counter campaign is bad_response, saying why",
                         str(neg.headers if neg else None)[:300])

            at_end, ends = committed_at_end(bs, GROUP, TOPICS["input"])
            checks.check(wait_until(at_end, timeout=60),
                         "committed offsets at the end of each input partition", str(ends))
            checks.eq(sampler.latest()[1], 200, "/readyz 200 at the end")

            # 4. No secret anywhere.
            metrics_body = http_get(base + "/metrics")[1]
            readyz_body = http_get(base + "/readyz")[1]
            records = consume_all(bs, TOPICS["output"], timeout=30) + dlq
            blobs = [w.proc.stderr_text().encode(), metrics_body, readyz_body]
            for r in records:
                blobs.append(r.value or b"")
                blobs.extend(v or b"" for _, v in (r.headers or []))
            leaks = [b[:80] for b in blobs for s in (API_KEY.encode(), OTHER_KEY.encode())
                     if s in b]
            checks.eq(leaks, [], "no API key in logs, /metrics, /readyz or records")
            jwts = [m.group(0)[:24] for b in blobs for m in JWT_RE.finditer(b)]
            checks.eq(jwts, [], "no bearer (no JWT) in logs, /metrics, /readyz or records")
            check_schemas(checks, bs, TOPICS)

            sampler.stop()
            check_truthful(checks, sampler.samples)
            w.proc.signal(signal.SIGTERM)
            checks.eq(w.proc.wait(timeout=60), 0, "SIGTERM: exit 0")
        finally:
            if sampler:
                sampler.stop()
            if w and w.proc.running():
                w.proc.print_tail()
                w.proc.kill()
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
