"""A short whole run of the worker — events, bad events, reports, DLQ, a
re-login after an expired token, SIGTERM — on a real Kafka broker, checking
that the process exits 0 with a cleanly closed loop and, in the
ASan/UBSan build (where ctest runs it with the `asan` label), without any
sanitizer report or leak."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, parse_args, produce, run_main  # noqa: E402
from pipeline import BAD_EVENTS, Sim, Worker, event, scratch_dir, wait_reports, worker_config  # noqa: E402

TOPICS = {"input": "san.events", "output": "san.reports", "dlq": "san.dlq"}
N = 40


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("sanitized")
    ids = list(range(400001, 400001 + N))
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        # Tokens live 2 s: the worker must renew its bearer during the run.
        sim = Sim(args.bin_dir, work, "--seed", "3", "--time-scale", "600",
                  "--token-ttl", "2s").start()
        w = None
        try:
            recs = [(str(c), event(c)) for c in ids]
            recs += [(f"bad-{i}", v) for i, (v, _) in enumerate(BAD_EVENTS)]
            produce(bs, TOPICS["input"], recs)
            env = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:exitcode=66",
                   "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
            w = Worker(args.bin_dir, work, worker_config(bs, sim, "brw-san", TOPICS),
                       env=env).start()
            finals = wait_reports(bs, TOPICS["output"], set(ids), timeout=240)
            got = {r.json()["campaign_id"] for r in finals}
            checks.eq(len(set(ids) - got), 0, f"all {N} campaigns reported")
            dlq = consume_all(bs, TOPICS["dlq"], count=len(BAD_EVENTS), timeout=60)
            checks.eq(len(dlq), len(BAD_EVENTS), "every bad event in the DLQ")
            w.proc.signal(signal.SIGTERM)
            rc = w.proc.wait(timeout=60)
            checks.eq(rc, 0, "exit code 0 after SIGTERM (loop closed cleanly, no leak)")
            err = w.proc.stderr_text()
            for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:",
                           "loop did not close"):
                checks.check(marker not in err, f"no '{marker}' in the worker's stderr")
            stats = sim.stats()
            checks.check(stats.get("logins", 0) + stats.get("refreshes", 0) >= 2,
                         "the bearer was renewed after its expiry",
                         f"logins {stats.get('logins')}, refreshes {stats.get('refreshes')}")
        finally:
            if w and w.proc.running():
                w.proc.print_tail()
                w.proc.kill()
            sim.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
