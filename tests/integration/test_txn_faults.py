"""Fault injection into delivery.guarantee = exactly_once (issue 14): the
transactional errors a real broker cannot be made to return on demand,
injected through librdkafka's mock cluster, one class after another into a
running worker, which must keep running and lose nothing.

The cluster is brw-mock-kafka (tests/tools/mock_kafka.c, built with the
tests next to the worker: found through --bin-dir); no real broker is
needed. One worker (fixed worker.instance, so a fixed transactional.id) and
the simulator. A warm-up batch of campaigns first, then one phase per
fault: the fault is injected, a batch of campaigns is produced so that the
worker has records to commit, and the phase waits until the worker's log
shows the fault met and handled:

  requires abort  TxnOffsetCommit ILLEGAL_GENERATION (a stale consumer
                  generation): the commit call fails requires_abort, the
                  cycle aborts and produces the interval again; once more
                  with INVALID_PRODUCER_ID_MAPPING on that abort's EndTxn:
                  librdkafka bumps the epoch inside abort_transaction
                  (KIP-360), which succeeds
  abortable       AddPartitionsToTxn TOPIC_AUTHORIZATION_FAILED: the
                  producer fails the transaction in the background (its
                  records fail delivery), the cycle aborts
  fenced          EndTxn PRODUCER_FENCED and AddPartitionsToTxn
                  INVALID_PRODUCER_EPOCH: fatal (__FENCED), the cycle
                  rebuilds the producer (same transactional.id)
  no pid mapping  INVALID_PRODUCER_ID_MAPPING: fatal in TxnOffsetCommit
                  (rebuild), requires abort in EndTxn (abort)
  retried inside  EndTxn COORDINATOR_NOT_AVAILABLE (3 times): librdkafka
                  retries it inside commit_transaction (so it does
                  NOT_COORDINATOR, CONCURRENT_TRANSACTIONS and the like,
                  until the call's timeout): the commit succeeds, and the
                  worker sees no failure
  retriable       EndTxn answered 10.5 s late: the commit call times out
                  after its 10 s (TXN_CALL_TIMEOUT_MS) with a retriable
                  __TIMED_OUT, the cycle calls commit again, which resumes
                  and succeeds: no abort, no rebuild. This is how a
                  retriable result reaches the application at all.
  lasting         AddPartitionsToTxn TOPIC_AUTHORIZATION_FAILED for
                  every transaction until cleared: the aborts back off
                  (retry.min doubling to retry.max, no spinning), /readyz
                  lists transactions_stalled after 30 s with the last
                  error in its detail, and the reason clears once the
                  fault is cleared and a transaction commits.

The log is read at log.level=debug with kafka.producer.debug=eos: the
cycle's "transaction state" lines (from, to, input) say which way it went
and, unlike the "transaction: X failed (class)" warnings (one per 10 s) and
librdkafka's own errors (once a minute per code), are not rate-limited;
librdkafka's debug lines name each fault.

Asserts: the worker is running after each phase; each phase's handling (as
above) shows in its log (which only its injected error can cause: the
phases run one after another, each waits for its own); every campaign
has a final report on the output topic, equal to the simulator's truth;
SIGTERM at the end: exit 0. The reports are read with
isolation.level=read_uncommitted: the mock cluster writes no transaction
markers, so records of aborted transactions show too (their duplicates are
counted and printed, not asserted; tests/integration/test_exactly_once.py
checks exactly-once delivery on a real broker) and read_committed cannot
be relied on. Its TxnOffsetCommit keeps no offsets either: the committed
positions are not checked here. About 60 s (the lasting fault: 35 s)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, _child_setup, binary, log,  # noqa: E402
                     parse_args, produce, run_main)
from pipeline import (Sim, Worker, compare_with_truth, event, finals, http_get,  # noqa: E402
                      scratch_dir, stop_leftovers, wait_until, worker_config)

TOPICS = {"input": "tf.events", "output": "tf.reports", "dlq": "tf.dlq"}
GROUP = "brw-e2e-txn-faults"
UNCOMMITTED = {"isolation.level": "read_uncommitted"}
WARMUP = 20   # campaigns before the first fault
BATCH = 12    # campaigns produced with each fault
PHASE_TIMEOUT = 25.0
STALL_ERRORS = 1000  # AddPartitionsToTxn refusals (the tool's most): until cleared

# One phase per fault: (what, the brw-mock-kafka command(s), a pattern that
# only that fault puts in the worker's log (librdkafka's lines, some of
# them from kafka.producer.debug=eos), how the worker must handle it:
# handled() says what each means).
PHASES = [
    ("TxnOffsetCommit ILLEGAL_GENERATION", "push TxnOffsetCommit 1 ILLEGAL_GENERATION",
     r"generation id is not valid", "commit_abort"),
    ("TxnOffsetCommit ILLEGAL_GENERATION, then EndTxn INVALID_PRODUCER_ID_MAPPING "
     "in the abort",
     ["push TxnOffsetCommit 1 ILLEGAL_GENERATION", "push EndTxn 1 INVALID_PRODUCER_ID_MAPPING"],
     r"INVALID_PRODUCER_ID_MAPPING in state AbortingTransaction", "commit_abort"),
    ("AddPartitionsToTxn TOPIC_AUTHORIZATION_FAILED",
     "push AddPartitionsToTxn 1 TOPIC_AUTHORIZATION_FAILED",
     r"Topic authorization failed", "abort"),
    ("EndTxn PRODUCER_FENCED", "push EndTxn 1 PRODUCER_FENCED",
     r"Failed to end transaction: .*fenced", "rebuild"),
    ("AddPartitionsToTxn INVALID_PRODUCER_EPOCH",
     "push AddPartitionsToTxn 1 INVALID_PRODUCER_EPOCH",
     r"Failed to add partitions to transaction: .*fenced", "rebuild"),
    ("TxnOffsetCommit INVALID_PRODUCER_ID_MAPPING",
     "push TxnOffsetCommit 1 INVALID_PRODUCER_ID_MAPPING",
     r"Failed to commit offsets to transaction.*producer id which is not currently assigned",
     "rebuild"),
    ("EndTxn INVALID_PRODUCER_ID_MAPPING", "push EndTxn 1 INVALID_PRODUCER_ID_MAPPING",
     r"EndTxn (commit )?failed: .*producer id which is not currently assigned"
     r"|EndTxn returned INVALID_PRODUCER_ID_MAPPING", "commit_abort"),
    ("EndTxn COORDINATOR_NOT_AVAILABLE x3", "push EndTxn 3 COORDINATOR_NOT_AVAILABLE",
     r"EndTxn returned COORDINATOR_NOT_AVAILABLE", "unseen"),
    ("EndTxn answered 10.5 s late", "delay 1 EndTxn 10500",
     r"commit failed \(retriable\)", "retriable"),
]


class MockKafka:
    """brw-mock-kafka as a child process: its bootstrap servers, and
    commands on its stdin (each answered with one line)."""

    def __init__(self, bin_dir: Path, workdir: Path, topics: dict) -> None:
        self.argv = [str(binary(bin_dir, "brw-mock-kafka"))] + [
            f"{t}:{n}" for t, n in topics.items()]
        self.stderr_path = workdir / "mock-kafka.stderr.log"
        self.proc = None
        self.buf = b""
        self.bootstrap = ""

    def start(self) -> "MockKafka":
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True,
                                         preexec_fn=_child_setup)
        log(f"started brw-mock-kafka pid {self.proc.pid}: {' '.join(self.argv)}")
        self.bootstrap = self._line(10.0)
        log(f"mock cluster at {self.bootstrap}")
        return self

    def _line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"brw-mock-kafka: no answer within {timeout} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"brw-mock-kafka exited ({self.proc.wait()})")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.decode().strip()

    def command(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        answer = self._line(10.0)
        if answer != "ok":
            raise RuntimeError(f"brw-mock-kafka: {line}: {answer}")
        log(f"mock: {line}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.stdin.close()  # end of input: it destroys the cluster
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def transitions(lines):
    """The cycle's (from, to, input) transitions, in order."""
    return [(l.get("from"), l.get("to"), l.get("input")) for l in lines
            if l.get("msg") == "transaction state"]


def msgs(lines):
    return [l.get("msg", "") for l in lines]


def handled(sign: str, how: str, lines) -> bool:
    """Whether the log lines since a fault's injection show that fault
    (`sign`) and its handling (`how`, PHASES), the cycle open again after
    it. The cycle's transitions tell the class it acted on: committing ->
    aborting on a commit's result only for requires_abort (or after
    max_commit_retries retriable ones, 30 s and more), committing or
    aborting -> rebuilding only for fatal."""
    m = msgs(lines)
    seen = [i for i, x in enumerate(m) if re.search(sign, x)]
    if not seen:
        return False
    # The redo after an abort comes with the abort's result, or, from the
    # second abort in a row, after a backoff (a tick): the same for here.
    t = [(a, b, "call_done" if (a, b, i) == ("aborting", "open", "tick") else i)
         for a, b, i in transitions(lines)]
    after = transitions(lines[seen[0]:])
    to = [b for _, b, _ in t]
    if how == "commit_abort":   # the commit call said requires_abort
        return (("committing", "aborting", "call_done") in t
                and "transaction: abort done" in m
                and ("aborting", "open", "call_done") in t and "rebuilding" not in to)
    if how == "abort":          # aborted, by whichever path, no rebuild
        return ("aborting" in to and "transaction: abort done" in m
                and ("aborting", "open", "call_done") in t and "rebuilding" not in to)
    if how == "rebuild":        # fatal: a new producer, then open again
        return ("rebuilding" in to and "transaction: rebuild done" in m
                and ("rebuilding", "open", "call_done") in t)
    if how in ("retriable", "unseen"):
        # retriable: the commit is called again and goes through;
        # unseen: librdkafka retried inside the call, which went through
        # with nothing failed
        failed = any(x.startswith("transaction: ") and " failed (" in x for x in m)
        return (("committing", "open", "call_done") in after
                and "aborting" not in to and "rebuilding" not in to
                and failed == (how == "retriable"))
    raise ValueError(how)


def finals_by_id(bs):
    """The final reports, read_uncommitted (the mock writes no markers)."""
    return finals(bs, TOPICS["output"], config=UNCOMMITTED)


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("txnfaults")
    t0 = time.monotonic()
    mock = MockKafka(args.bin_dir, work,
                     {TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1}).start()
    bs = mock.bootstrap
    sim = worker = None
    try:
        sim = Sim(args.bin_dir, work, "--seed", "17", "--time-scale", "600").start()
        cfg = worker_config(bs, sim, GROUP, TOPICS, **{
            "delivery.guarantee": "exactly_once",
            "worker.instance": "tf-1",
            "log.level": "debug",
            "kafka.producer.debug": "eos",
            # The mock broker holds an empty fetch for all of
            # fetch.wait.max.ms, even when records arrive (src/demo/demo.c).
            "kafka.consumer.fetch.wait.max.ms": "50",
            "metrics.listen": "127.0.0.1:0",
        })
        next_id = 500001

        def batch(n):
            nonlocal next_id
            ids = list(range(next_id, next_id + n))
            next_id += n
            produce(bs, TOPICS["input"], [(str(c), event(c)) for c in ids])
            return ids

        ids = batch(WARMUP)
        worker = Worker(args.bin_dir, work, cfg).start()
        # Warm-up: the transactional producer initialised, a group joined,
        # and reports committed before the first fault.
        ok = wait_until(lambda: not worker.proc.running()
                        or "transaction: init done" in msgs(worker.log_lines())
                        and len(finals_by_id(bs)) >= WARMUP // 2,
                        timeout=60, interval=0.5)
        if not worker.proc.running():
            worker.proc.print_tail()
            checks.fail("the worker runs with delivery.guarantee = exactly_once",
                        f"exited {worker.proc.returncode}")
            return checks.summary()
        checks.check(ok, "warm-up: transactions initialised and reports committed")

        for what, command, sign, how in PHASES:
            start = len(worker.log_lines())
            t1 = time.monotonic()
            for c in [command] if isinstance(command, str) else command:
                mock.command(c)
            ids += batch(BATCH)
            ok = wait_until(lambda: not worker.proc.running()
                            or handled(sign, how, worker.log_lines()[start:]),
                            timeout=PHASE_TIMEOUT, interval=0.3)
            new = worker.log_lines()[start:]
            for l in new:
                if l.get("level") in ("warn", "error") and l.get("msg", "").startswith(
                        ("transaction", "transactional", "librdkafka")):
                    log(f"  worker: {l['msg'][:200]}")
            checks.check(worker.proc.running(), f"{what}: the worker is still running",
                         f"exited {worker.proc.returncode}")
            checks.check(ok, f"{what}: handled ({how}) in {time.monotonic() - t1:.1f} s",
                         f"transitions since the injection: {transitions(new)[-12:]}")
            if not worker.proc.running():
                worker.proc.print_tail()
                return checks.summary()

        # A fault that lasts: every transaction fails (AddPartitionsToTxn
        # refused), so records wait and the cycle aborts again and again.
        # The redo backs off (retry.min doubling to retry.max) instead of
        # spinning, /readyz lists transactions_stalled after 30 s with the
        # last error, and once the fault is gone the records are committed
        # and the reason clears.
        start = len(worker.log_lines())
        mock.command(f"push AddPartitionsToTxn {STALL_ERRORS} TOPIC_AUTHORIZATION_FAILED")
        ids += batch(BATCH)
        url = worker.metrics_url()

        def blocked():
            code, raw = http_get(url + "/readyz")
            return json.loads(raw or b"{}").get("blocked", {}).get("transactions_stalled")

        t1 = time.monotonic()
        ok = wait_until(lambda: blocked() is not None, timeout=60, interval=0.5)
        stalled = blocked() or {}
        checks.check(ok, f"a lasting fault: /readyz lists transactions_stalled after "
                     f"{time.monotonic() - t1:.0f} s", f"blocked: {stalled}")
        checks.check("uthoriz" in stalled.get("detail", ""),
                     "its detail has the last error (topic authorization failed)",
                     stalled.get("detail", ""))
        aborts = sum(1 for a, b, _ in transitions(worker.log_lines()[start:])
                     if b == "aborting")
        checks.check(0 < aborts < 200, f"the aborts back off: {aborts} in "
                     f"{time.monotonic() - t1:.0f} s (no spinning)")
        mock.command("clear AddPartitionsToTxn")
        ok = wait_until(lambda: blocked() is None, timeout=30, interval=0.5)
        checks.check(ok, "once the fault is gone, transactions_stalled clears")
        checks.eq(worker.scrape().get(("bsg_report_worker_blocked_total", "transactions_stalled")),
                  1.0, "blocked_total{transactions_stalled} counted it once")

        # Nothing lost: every campaign ends with a final report.
        want = set(ids)
        ok = wait_until(lambda: want <= set(finals_by_id(bs)), timeout=60, interval=1.0)
        by_id = finals_by_id(bs)
        missing = sorted(want - set(by_id))
        checks.check(ok and not missing,
                     f"all {len(want)} campaigns have a final report (read_uncommitted)",
                     f"{len(missing)} missing, e.g. {missing[:5]}")
        wrong = [(c, d) for c in sorted(want & set(by_id))
                 for d in [compare_with_truth(by_id[c][-1], sim.truth(c))] if d]
        checks.eq(wrong[:3], [], "the reports equal the simulator's truth")
        dups = sum(len(v) - 1 for v in by_id.values())
        print(f"txn-faults: {len(want)} campaigns, {len(by_id)} with a final report, "
              f"{dups} extra final reports from aborted transactions (read_uncommitted; "
              f"the mock writes no abort markers)", flush=True)

        checks.check(worker.proc.running(), "the worker is running at the end")
        worker.proc.signal(signal.SIGTERM)
        try:
            rc = worker.proc.wait(timeout=30)
        except TimeoutError:
            rc = None
        checks.eq(rc, 0, "SIGTERM: exit code 0")
        summary = [l for l in worker.log_lines() if l.get("msg") == "summary"]
        if summary:
            log(f"worker summary: events {summary[-1].get('events')}, "
                f"reports {summary[-1].get('reports')}, dlq {summary[-1].get('dlq')}")
        log(f"took {time.monotonic() - t0:.0f} s")
    finally:
        stop_leftovers([worker], sim)
        mock.stop()
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
