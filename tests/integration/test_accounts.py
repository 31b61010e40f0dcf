"""End to end on a real Kafka broker with two accounts, one of whose keys the
API rejects: the good account's campaigns are all reported; the bad one's
end in the DLQ as auth_failed at their deadline, and the rejected account
backs off as a whole instead of logging in once per campaign."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, log, parse_args, produce, run_main  # noqa: E402
from pipeline import (check_schemas, API_KEY, Sim, Worker, event, scratch_dir,  # noqa: E402
                      wait_reports, worker_config)

TOPICS = {"input": "acct.events", "output": "acct.reports", "dlq": "acct.dlq"}
GOOD_KEY = "test_good_account_key_42"
BAD_KEY = "live_rejected_account_key_13"


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("accounts")
    good = list(range(600001, 600041))
    bad = list(range(610001, 610031))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "5", "--time-scale", "600",
                  "--reject-key", BAD_KEY).start()
        w = None
        try:
            recs = [(str(c), event(c, account="good")) for c in good]
            recs += [(str(c), event(c, account="bad")) for c in bad]
            produce(bs, TOPICS["input"], recs)
            cfg = worker_config(bs, sim, "brw-accounts", TOPICS, **{
                "accounts.good.key": GOOD_KEY, "accounts.bad.key": BAD_KEY,
                "poll.max_age": "10s"})
            w = Worker(args.bin_dir, work, cfg).start()
            started = time.monotonic()
            finals = wait_reports(bs, TOPICS["output"], set(good), timeout=120)
            got = {r.json()["campaign_id"]: r.json() for r in finals}
            checks.eq(set(good) - set(got), set(), "every campaign of the good account reported")
            checks.check(all(got[c]["account"] == "good" for c in good if c in got),
                         "reports name the account")
            checks.eq(set(got) & set(bad), set(), "no report for the rejected account")
            dlq = consume_all(bs, TOPICS["dlq"], count=len(bad), timeout=60)
            reasons = {r.header("error.reason") for r in dlq}
            keys = {int(r.key) for r in dlq}
            checks.eq(keys, set(bad), "every campaign of the rejected account is in the DLQ")
            checks.eq(reasons, {b"auth_failed"}, "their reason is auth_failed")
            stats = sim.stats()
            elapsed = time.monotonic() - started
            log(f"simulator: logins {stats.get('logins')}, "
                f"login failures {stats.get('login_failures')} in {elapsed:.0f} s")
            # The account's logins back off from retry.min (100ms) to
            # retry.max (1s, less 20 % jitter) and go on while it is
            # rejected, so that it recovers by itself when the key is
            # accepted again: at most ~one a second plus the ramp, whatever
            # the number of campaigns (one login per campaign would be 30 at
            # once, then 30 per backoff step).
            bound = int(elapsed / 0.8) + 6
            checks.check(stats.get("login_failures", 0) <= bound,
                         "the rejected account backs off as a whole "
                         f"({stats.get('login_failures')} login attempts in {elapsed:.0f} s "
                         f"for {len(bad)} campaigns, at most {bound})")
            text = w.proc.stderr_text()
            checks.check("not accepted" in text, "the rejected key is visible in the logs")
            checks.check(BAD_KEY not in text and GOOD_KEY not in text and API_KEY not in text,
                         "no key appears in the logs")
            check_schemas(checks, bs, TOPICS)

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
