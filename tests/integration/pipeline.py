"""Shared pieces of the end-to-end tests: the simulator and worker processes,
sample events, and checks of reports against the simulator's truth.

Built on harness.py (the broker, processes, Kafka clients)."""

from __future__ import annotations

import json
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional, Sequence

from harness import Proc, binary, committed_offsets, consume_all, end_offsets, log, produce

API_KEY = "test_e2e_key_0123456789abcdef"

# Fast schedules so that a test sees whole lifecycles in seconds; the
# simulator's time scale compresses its minutes-long campaigns.
FAST_WORKER_CONFIG = {
    "poll.initial_delay": "200ms",
    "poll.finished_delay": "50ms",
    "poll.min_interval": "300ms",
    "poll.max_interval": "2s",
    "poll.not_found_grace": "3s",
    "retry.min": "100ms",
    "retry.max": "1s",
    "kafka.commit_interval": "200ms",
    "shutdown.timeout": "10s",
    "http.timeout": "3s",
    "api.rate_limit": "100",
    "log.level": "info",
    # Detail polling: these tests' simulator creates a campaign at its first
    # detail request, so the campaign list (poll.strategy=auto, the
    # default) would show none of them; test_sweeps.py births campaigns
    # first and tests the sweeps.
    "poll.strategy": "detail",
}

BAD_EVENTS = [
    # (value bytes, expected error.reason)
    (b"this is not json", "invalid_json"),
    (b'{"campaign_id": "../1"}', "invalid_campaign_id"),
    (b'{"campaign_id": 0}', "invalid_campaign_id"),
    (b'{"campaign_id": -5}', "invalid_campaign_id"),
    (b'{"campaign_id": "12a"}', "invalid_campaign_id"),
    (b'{"campaign_id": 9007199254740993}', "invalid_campaign_id"),
    (b'{"type": "campaign.exploded", "campaign_id": 77}', "unknown_type"),
    (b'{"campaign_id": 78, "account": "nobody"}', "unknown_account"),
    (b'{"campaign_id": 79, "pad": "' + b"x" * (70 * 1024) + b'"}', "too_large"),
    (b'{}', "invalid_campaign_id"),
]


def http_json(url: str, body: Optional[dict] = None, timeout: float = 10.0):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class Sim:
    """bsg-api-sim as a child process."""

    def __init__(self, bin_dir: Path, workdir: Path, *args: str, name: str = "sim",
                 command: Optional[Sequence[str | os.PathLike]] = None) -> None:
        """command: what runs the simulator, its arguments appended (default:
        bin_dir's bsg-api-sim); it must exec it."""
        argv = list(command) if command else [binary(bin_dir, "bsg-api-sim")]
        self.proc = Proc([*argv, "--listen", "127.0.0.1:0", *args], workdir, name=name)
        self.url = ""

    def start(self) -> "Sim":
        self.proc.start()
        self.url = "http://" + self.proc.wait_json("listening", timeout=20)["listening"]
        return self

    def stats(self) -> dict:
        return http_json(self.url + "/_sim/stats")

    def truth(self, cid: int) -> dict:
        return http_json(f"{self.url}/_sim/campaigns/{cid}")

    def stop(self) -> None:
        self.proc.terminate(timeout=10)


class Worker:
    """bsg-report-worker as a child process; config as --key=value flags.

    command: what runs the worker, its flags appended (default: bin_dir's
    bsg-report-worker), e.g. test_image.py's chroot into the image; it must
    exec the worker, so that the process started is the worker itself."""

    def __init__(self, bin_dir: Path, workdir: Path, config: dict, name: str = "worker",
                 env: Optional[dict] = None,
                 command: Optional[Sequence[str | os.PathLike]] = None) -> None:
        argv = list(command) if command else [binary(bin_dir, "bsg-report-worker")]
        argv += [f"--{k}={v}" for k, v in config.items()]
        self.proc = Proc(argv, workdir, name=name, env=env)

    def start(self) -> "Worker":
        self.proc.start()
        return self

    def log_lines(self) -> list[dict]:
        return self.proc.json_lines("stderr")

    def metrics_url(self, timeout: float = 30) -> str:
        """The admin endpoint's base URL, from the start line's metrics_port
        (run with metrics.listen=127.0.0.1:0)."""
        line = self.proc.wait_json("metrics_port", timeout=timeout, stream="stderr")
        return f"http://127.0.0.1:{line['metrics_port']}"

    def scrape(self) -> dict:
        """{(name, label_value or None): value} from /metrics."""
        return parse_metrics(http_get(self.metrics_url() + "/metrics")[1].decode())


def http_get(url: str, timeout: float = 10.0):
    """(status, body bytes) of a GET; HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def parse_metrics(text: str) -> dict:
    """Prometheus text format -> {(name, first label value or None): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        label = None
        name = name_labels
        if "{" in name_labels:
            name, _, rest = name_labels.partition("{")
            if "=\"" in rest:
                label = rest.split("=\"", 1)[1].rsplit("\"", 1)[0]
        out[(name, label)] = float(value)
    return out


def worker_config(bootstrap: str, sim: Sim, group: str, topics: dict, **extra) -> dict:
    cfg = dict(FAST_WORKER_CONFIG)
    cfg.update({
        "brokers": bootstrap,
        "group.id": group,
        "topic.input": topics["input"],
        "topic.output": topics["output"],
        "topic.dlq": topics["dlq"],
        "api.url": sim.url,
        "api.key": API_KEY,
        "metrics.listen": "off",
    })
    cfg.update(extra)
    return cfg


def event(cid, kind: str = "campaign.sent", **extra) -> bytes:
    ev = {"type": kind, "campaign_id": cid}
    ev.update(extra)
    return json.dumps(ev).encode()


def padded(cid: int, total: int) -> bytes:
    """A valid campaign.sent event of exactly `total` bytes (a pad field
    fills it)."""
    head = json.dumps({"type": "campaign.sent", "campaign_id": cid, "pad": ""}).encode()
    return head[:-2] + b"x" * (total - len(head)) + b'"}'


def committed_at_end(bootstrap: str, group: str, topic: str):
    """(predicate, end offsets): the predicate is true once the group's
    committed offset of every partition of `topic` is its end offset as read
    now."""
    ends = end_offsets(bootstrap, topic)

    def ok() -> bool:
        c = committed_offsets(bootstrap, group, topic, sorted(ends))
        return all(c[p][0] == ends[p] for p in ends)
    return ok, ends


def wait_reports(bootstrap: str, topic: str, want_ids: set, timeout: float) -> list:
    """Reads the report topic until every id in want_ids has a final report
    or the timeout passes; returns all final-report records read."""
    def enough(records) -> bool:
        return want_ids <= {r.json().get("campaign_id") for r in records if _is_final(r)}

    recs = consume_all(bootstrap, topic, until=enough, timeout=timeout)
    return [r for r in recs if _is_final(r)]


def _is_final(r) -> bool:
    try:
        return bool(r.json().get("final"))
    except ValueError:
        return False


COMPARED_FIELDS = ["name", "sender", "type", "status", "started_at", "actual_start_at",
                   "created_at", "finished_at", "statistics", "total_messages",
                   "total_phones", "total_price", "currency"]


def compare_with_truth(report: dict, truth: dict) -> list[str]:
    """Differences between a final report and the simulator's truth."""
    diffs = []
    if report.get("outcome") != truth.get("final_status"):
        diffs.append(f"outcome {report.get('outcome')!r} != {truth.get('final_status')!r}")
    camp = report.get("campaign") or {}
    canon = truth.get("canonical") or {}
    for f in COMPARED_FIELDS:
        if f in canon and camp.get(f) != canon.get(f):
            diffs.append(f"{f}: {camp.get(f)!r} != {canon.get(f)!r}")
    return diffs


def check_schemas(checks, bootstrap: str, topics: dict) -> None:
    """Every record in the report and DLQ topics validates against its JSON
    Schema (schemas/), headers and key included."""
    import schemas  # noqa: PLC0415 - needs python3-jsonschema only here
    for kind, topic in (("report", topics["output"]), ("dlq", topics["dlq"])):
        recs = consume_all(bootstrap, topic, timeout=60)
        bad = []
        for r in recs:
            try:
                schemas.validate_record(kind, r)
            except Exception as e:  # noqa: BLE001 - any mismatch is reported
                bad.append(f"{r.partition}@{r.offset}: {e}")
        for b in bad[:3]:
            log(f"schema mismatch in {topic}: {b}")
        checks.check(not bad, f"all {len(recs)} records of {topic} match the {kind} schema",
                     f"{len(bad)} do not")


def count_by(items, key):
    out: dict = {}
    for it in items:
        k = key(it)
        out[k] = out.get(k, 0) + 1
    return out


def sigterm_mid_run(checks, worker, shutdown_timeout: float = 10.0) -> None:
    """SIGTERM to a busy worker: exit 0 within shutdown.timeout (+5 s)."""
    t1 = time.monotonic()
    worker.proc.signal(15)
    rc = worker.proc.wait(timeout=60)
    took = time.monotonic() - t1
    checks.eq(rc, 0, "SIGTERM mid-run: exit code 0")
    checks.check(took < shutdown_timeout + 5, f"SIGTERM mid-run: exited in {took:.1f} s "
                 f"(shutdown.timeout {shutdown_timeout:.0f} s)")


def uncovered_offsets(bootstrap: str, group: str, topic: str, partitions, handled: set) -> list:
    """The input offsets below the group's committed positions that are not
    in `handled` ((partition, offset) pairs whose report or DLQ record was
    read): a commit that ran ahead of its records. Logs the positions."""
    committed = committed_offsets(bootstrap, group, topic, partitions)
    log(f"committed: { {p: c for p, (c, _) in committed.items()} }")
    return [(p, o) for p, (pos, _) in committed.items() for o in range(pos or 0)
            if (p, o) not in handled]


def wait_until(pred, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def wait_blocked(metrics_url: str, reason: str, timeout: float = 30) -> tuple:
    """Polls /readyz until it answers 503 with `reason` among the blocked
    ones. Returns (whether it did, the last body, that reason's detail)."""
    body: dict = {}

    def blocked() -> bool:
        nonlocal body
        code, raw = http_get(metrics_url + "/readyz")
        body = json.loads(raw or b"{}")
        return code == 503 and reason in body.get("blocked", {})

    ok = wait_until(blocked, timeout=timeout, interval=0.5)
    return ok, body, body.get("blocked", {}).get(reason, {}).get("detail", "")


def scratch_dir(name: str) -> Path:
    """A new directory for the test's logs. Made unique by mkdtemp: it was
    brw-NAME-PID, and when a later run got the same pid (pids restart low
    in a container) its processes appended to the old logs, so the
    simulator's first "listening" line was the old run's port, and the
    worker talked to nothing."""
    base = Path(os.environ.get("BRW_TEST_TMPDIR", "/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix=f"brw-{name}-{os.getpid()}-", dir=base))
    log(f"logs of this test: {d}")
    return d


# ---------------------------------------------------------------------------
# Tests that run in both delivery modes (--guarantee): test_group_scaling,
# test_broker_outage, test_api_chaos. In exactly_once mode each worker slot
# has its own worker.instance (a restart reuses its slot's), every reader is
# read_committed (consume_all's default), and the checks become exact: one
# final report per campaign, one DLQ record per DLQ'd event.

GUARANTEES = ("at_least_once", "exactly_once")


def add_guarantee_arg(p) -> None:
    """--guarantee for parse_args(extra=...)."""
    p.add_argument("--guarantee", choices=GUARANTEES, default="at_least_once",
                   help="delivery.guarantee of the workers (exactly_once: a distinct "
                        "worker.instance per worker slot, and 0 duplicates asserted)")


def guarantee_config(guarantee: str, instance: str) -> dict:
    """The worker settings of a mode: none for at_least_once (today's
    runs, unchanged); for exactly_once the guarantee and the slot's
    worker.instance (transactional.id = <group.id>-<instance>)."""
    if guarantee != "exactly_once":
        return {}
    return {"delivery.guarantee": "exactly_once", "worker.instance": instance}


def finals_by_campaign(records) -> dict:
    """{campaign id: [final report values]} of report records."""
    out: dict = {}
    for r in records:
        try:
            v = r.json()
        except ValueError:
            continue
        if v.get("final"):
            out.setdefault(v.get("campaign_id"), []).append(v)
    return out


def finals(bootstrap: str, topic: str, timeout: float = 30.0, config=None) -> dict:
    """{campaign id: [final report values]} in the report topic, read to
    its end (read_committed unless `config` says otherwise)."""
    return finals_by_campaign(consume_all(bootstrap, topic, timeout=timeout, config=config))


def produce_campaigns(bootstrap: str, topic: str, ids, bad_events=(), every: int = 1) -> dict:
    """Produces a campaign.sent event per id, with bad_events (value,
    reason) put in between (interleave_bad); returns {(partition, offset):
    reason} of the bad ones."""
    recs, bad = interleave_bad(ids, list(bad_events), every=every)
    at = produce(bootstrap, topic, recs)
    return {at[i]: reason for i, reason in bad}


def stop_leftovers(workers, sim=None) -> None:
    """The `finally` of a test: a worker still running is killed after its
    log's tail is printed; then the simulator stops."""
    for w in workers:
        if w is not None and w.proc.running():
            w.proc.print_tail()
            w.proc.kill()
    if sim is not None:
        sim.stop()


def final_ids_until(bootstrap: str, topic: str, target: int, timeout: float = 30.0) -> set:
    """The campaign ids with a final report in the report topic, read
    (read_committed) from the beginning until `target` of them are seen, the
    end of every partition or the timeout. For progress checks while workers
    run in exactly_once mode: a read_committed read to the end of every
    partition then took up to ~8 s here (it needs all of them at their end
    at once, while transactions commit every 200 ms), so a test that
    waited for N reports with such reads went on with many more than N."""
    seen: set = set()
    done = [0]

    def enough(records) -> bool:
        for r in records[done[0]:]:
            if _is_final(r):
                seen.add(r.json().get("campaign_id"))
        done[0] = len(records)
        return len(seen) >= target
    consume_all(bootstrap, topic, until=enough, timeout=timeout, or_end=True)
    return seen


def dlq_source(r):
    """(partition, offset) of the input event a DLQ record stands for, from
    its source.partition and source.offset headers; None without them."""
    p, o = r.header("source.partition"), r.header("source.offset")
    if p is None or o is None:
        return None
    return int(p), int(o)


def interleave_bad(ids, bad_events, every: int) -> tuple[list, list]:
    """The campaigns' events with bad_events (value, reason) put in after
    every `every`-th campaign (from the middle of the first stretch), as
    records for produce(); and [(index in records, reason)] of the bad
    ones."""
    recs, bad = [], []
    for i, cid in enumerate(ids):
        recs.append((str(cid), event(cid)))
        if i % every == every // 2 and len(bad) < len(bad_events):
            value, reason = bad_events[len(bad)]
            bad.append((len(recs), reason))
            recs.append((f"bad-{len(bad) - 1}", value))
    return recs, bad


def check_dlq_once(checks, bootstrap: str, topic: str, bad_at: dict, what: str) -> int:
    """Reads the DLQ topic whole (read_committed) and checks exactly one
    record per bad event, nothing else, each with its error.reason. bad_at:
    {(partition, offset) of the bad input event: reason}. Prints the
    figures; returns the number of duplicates."""
    dlq = consume_all(bootstrap, topic, timeout=30)
    per_source = count_by(dlq, dlq_source)
    dups = sum(n - 1 for n in per_source.values())
    print(f"{what}: {len(bad_at)} bad events in, {len(dlq)} DLQ records, "
          f"{dups} duplicates", flush=True)
    checks.eq(dups, 0, "exactly one DLQ record per bad event")
    checks.eq(set(per_source), set(bad_at), "every bad event, and nothing else, in the DLQ")
    reasons = {dlq_source(r): (r.header("error.reason") or b"").decode() for r in dlq}
    checks.eq({s: reasons.get(s) for s in bad_at}, bad_at, "each DLQ record carries its reason")
    return dups
