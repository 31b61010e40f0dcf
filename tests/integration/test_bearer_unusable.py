"""End to end on a real Kafka broker against logins that answer 200 with an
unusable bearer (issue 10 item 2; bsg-api-sim --bearer-mode). While the
simulator hands out expired, malformed and whitespace-bearing bearers, the
worker never sends one, logs each kind with its reason (never the token),
counts it, backs the account off instead of logging in per campaign, and the
campaigns that reach their deadline go to the DLQ saying why. Once logins
answer good bearers again, every campaign is reported."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, log, parse_args, produce, run_main  # noqa: E402
from pipeline import (API_KEY, Sim, Worker, event, http_json, scratch_dir,  # noqa: E402
                      wait_reports, wait_until, worker_config)

TOPICS = {"input": "bearer.events", "output": "bearer.reports", "dlq": "bearer.dlq"}


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("bearer")
    stale = list(range(620001, 620011))  # fetched only while bearers are bad
    fresh = list(range(630001, 630011))  # produced after logins recover
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "9", "--time-scale", "600",
                  "--bearer-mode", "expired").start()
        w = None
        try:
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in stale])
            cfg = worker_config(bs, sim, "brw-bearer", TOPICS, **{
                "poll.max_age": "12s", "retry.min": "250ms", "retry.max": "2s",
                "metrics.listen": "127.0.0.1:0"})
            w = Worker(args.bin_dir, work, cfg).start()
            base = w.metrics_url()

            # Expired bearers until the stale campaigns' deadline.
            dlq = consume_all(bs, TOPICS["dlq"], count=len(stale), timeout=60)
            checks.eq({int(r.key) for r in dlq}, set(stale),
                      "every campaign fetched only with unusable bearers is in the DLQ")
            checks.eq({r.header("error.reason") for r in dlq}, {b"bad_response"},
                      "their reason is bad_response")
            msgs = {r.header("error.message").decode() for r in dlq}
            log(f"DLQ error.message: {sorted(msgs)[:1]}")
            checks.check(bool(msgs) and all("no usable bearer" in m and "in the past" in m
                                            for m in msgs),
                         "error.message says the login's bearer had expired")

            # The other kinds, a few seconds each: each is logged once by kind.
            for mode in ("garbage", "whitespace"):
                http_json(sim.url + "/_sim/faults", {"bearer_mode": mode})
                time.sleep(3)
            stats = sim.stats()
            log(f"simulator while bearers were bad: {stats.get('logins')} logins, "
                f"{stats.get('detail_requests')} detail requests, "
                f"{stats.get('unauthorized')} unauthorized")
            checks.eq(stats.get("detail_requests", -1), 0, "no detail request sent with a bad bearer")
            checks.eq(stats.get("unauthorized", -1), 0, "no request carried a bad bearer")
            # ~19 s of failures at 250 ms doubling to 2 s: about 12 logins,
            # not one per campaign poll.
            checks.check(0 < stats.get("logins", 0) <= 20,
                         f"the account backs off as a whole ({stats.get('logins')} logins)")
            m = w.scrape()
            for reason in ("expired", "bad_jwt", "bad_char"):
                checks.check(m.get(("bsg_report_worker_api_auth_failures_total", reason), 0) >= 1,
                             f"api_auth_failures_total{{reason={reason}}} counted")
            text = w.proc.stderr_text()
            checks.check("login: HTTP 200 but the answer has no usable bearer: JWT exp" in text,
                         "the log says why the expired bearer is unusable")
            checks.check("shaped like a JWT" in text, "the log says why the garbage is unusable")
            checks.check("holds a control character" in text or "holds whitespace" in text,
                         "the log says why the whitespace-bearing bearer is unusable")

            # Logins work again: new campaigns are reported.
            http_json(sim.url + "/_sim/faults", {"bearer_mode": "normal"})
            t0 = time.monotonic()
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in fresh])
            finals = wait_reports(bs, TOPICS["output"], set(fresh), timeout=60)
            got = {r.json()["campaign_id"] for r in finals}
            checks.eq(set(fresh) - got, set(), "every campaign is reported once logins work")
            log(f"reported {len(got & set(fresh))} campaigns {time.monotonic() - t0:.1f} s "
                "after logins recovered")
            checks.check(wait_until(lambda: "login works again" in w.proc.stderr_text(), 10),
                         "the recovery is logged")

            text = w.proc.stderr_text() + w.proc.stdout_text()
            checks.check(API_KEY not in text, "the API key appears in no output")
            checks.check("eyJ" not in text and "REDACTED" not in text,
                         "no bearer appears in any output, not even redacted")

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
