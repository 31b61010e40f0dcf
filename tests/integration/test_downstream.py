"""docs/consumers.md's examples, run as they stand: the code blocks marked
`<!-- test: NAME -->` are read from the page (not copied here) and run
against a real Kafka broker, on reports that the real worker made from
the simulator's campaigns.

The topics have their default names, as on the page. Eight campaigns with
known outcomes (done, stopped, spam) and one held in "sending" until the
deadline (expired, after a progress report: emit.progress=true), a bad
event (DLQ, invalid_json), and a second campaign.sent for a campaign
already reported (with dedupe.window=0 the worker reports it again, as it
does after a restart or a rebalance). Then three more copies of real
reports are produced by hand: one byte for byte with its headers, one
with CloudEvents headers added (a re-delivery after output.cloudevents
was switched on), and one with `"final":true,"outcome":"spam"` inside
its campaign's alternative_channels (passed through from the API).
Checked:

- kcat-reports prints every record with its key and headers, every
  campaign's final outcome equal to the simulator's truth;
- kcat-outcomes prints exactly one `id outcome` line per campaign, the
  top-level outcome;
- kcat-dlq shows the bad event's key with error.reason=invalid_json;
- python-consumer (IDLE_EXIT bounds it) prints each campaign exactly once
  with its outcome, skipping progress reports and duplicates, and commits
  every record: its group's offsets reach the end of the report topic, and
  a second run prints nothing.

kcat missing is a failure (scripts/install-deps.sh installs it), not a
skip."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (REPO_ROOT, Checks, KafkaBroker, committed_offsets,  # noqa: E402
                     consume_all, end_offsets, log, parse_args, produce, run_main)
from pipeline import (Sim, Worker, event, finals_by_campaign, http_json,  # noqa: E402
                      scratch_dir, stop_leftovers, wait_reports, worker_config)

DOC = REPO_ROOT / "docs" / "consumers.md"
BLOCKS = ("kcat-reports", "kcat-outcomes", "kcat-dlq", "python-consumer")
# The page's names: the examples use the default topics.
TOPICS = {"input": "bsg.campaign.events", "output": "bsg.campaign.reports",
          "dlq": "bsg.campaign.events.dlq"}
WANT = {"done": 4, "stopped": 2, "spam": 2}  # campaigns per outcome
FIRST_ID = 5300001
BAD = (b"bad-1", b"this is not json", "invalid_json")
EXAMPLE_GROUP = "downstream-example"
IDLE_EXIT = "5"


def doc_blocks(text: str) -> dict:
    """{name: code} of the fenced blocks right after a `<!-- test: NAME -->`
    line of the page."""
    pat = re.compile(r"^<!-- test: ([\w-]+) -->\n```[\w-]*\n(.*?)^```$", re.M | re.S)
    return {m.group(1): m.group(2) for m in pat.finditer(text)}


def pick_campaigns(sim: Sim) -> dict:
    """{campaign id: final status} of the first ids from FIRST_ID whose
    lifecycles end as WANT asks (the truth does not birth them)."""
    need, out = dict(WANT), {}
    cid = FIRST_ID
    while any(need.values()):
        st = sim.truth(cid)["final_status"]
        if need.get(st, 0) > 0:
            need[st] -= 1
            out[cid] = st
        cid += 1
        if cid > FIRST_ID + 2000:
            raise RuntimeError(f"no campaigns for {need} among 2000 ids")
    return out


def run_block(name: str, argv: list, env: dict, timeout: float, cwd: Path):
    """Runs one of the page's blocks; returns (exit code, stdout, stderr).
    Both outputs are saved next to the test's other logs."""
    t0 = time.monotonic()
    try:
        res = subprocess.run(argv, env={**os.environ, **env}, cwd=cwd, timeout=timeout,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rc, out, err = res.returncode, res.stdout, res.stderr
    except subprocess.TimeoutExpired as e:
        rc = None
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    (cwd / f"{name}.stdout.log").write_text(out)
    (cwd / f"{name}.stderr.log").write_text(err)
    log(f"{name}: exit {rc} in {time.monotonic() - t0:.1f} s, {len(out.splitlines())} lines")
    return rc, out, err


def sh(code: str) -> list:
    """A shell block as a reader's shell runs it, with pipefail so that a
    failing kcat inside a pipeline fails the block."""
    return ["bash", "-o", "pipefail", "-c", code]


def parse_kcat_reports(out: str) -> list:
    """[(key, headers text, value dict or None)] of kcat-reports' output: a
    'partition P offset O key K headers H' line, then the value line."""
    recs, lines = [], out.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"partition \d+ offset \d+ key (\S*) headers (.*)$", line)
        if not m:
            continue
        try:
            value = json.loads(lines[i + 1]) if i + 1 < len(lines) else None
        except ValueError:
            value = None
        recs.append((m.group(1), m.group(2), value))
    return recs


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("downstream")
    t_start = time.monotonic()

    blocks = doc_blocks(DOC.read_text())
    checks.eq(sorted(blocks), sorted(BLOCKS), "docs/consumers.md marks the four example blocks")
    kcat = shutil.which("kcat")
    checks.check(kcat is not None, "kcat is installed (scripts/install-deps.sh installs it)",
                 "not on PATH: the kcat examples cannot run")

    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 2, TOPICS["output"]: 2, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "5", "--time-scale", "3600").start()
        workers = []
        try:
            truth = pick_campaigns(sim)
            stuck = max(truth) + 1  # held in "sending": expired at poll.max_age
            http_json(f"{sim.url}/_sim/campaigns/{stuck}", {"status": "sending"})
            truth[stuck] = "expired"
            ids = sorted(truth)
            log(f"campaigns and their outcomes: {truth}")

            # dedupe.window=0: a second event for a reported campaign is
            # reported again, as after a restart or a rebalance.
            cfg = worker_config(bs, sim, "brw-e2e-downstream", TOPICS, **{
                "emit.progress": "true", "poll.max_age": "8s", "dedupe.window": "0"})
            w = Worker(args.bin_dir, work, cfg).start()
            workers.append(w)
            recs = [(str(c), event(c)) for c in ids]
            recs.insert(len(recs) // 2, BAD[:2])
            produce(bs, TOPICS["input"], recs)
            wait_reports(bs, TOPICS["output"], set(ids), timeout=30)

            # A second campaign.sent for a campaign already reported: the
            # worker tracks it anew and reports it again.
            again = next(c for c in ids if truth[c] == "done")
            produce(bs, TOPICS["input"], [(str(again), event(again))])
            twice = consume_all(bs, TOPICS["output"], timeout=20, until=lambda rs: len(
                finals_by_campaign(rs).get(again, [])) >= 2)
            checks.eq(len(finals_by_campaign(twice).get(again, [])), 2,
                      "a second event for a reported campaign makes a second final report")

            w.proc.signal(signal.SIGTERM)
            checks.eq(w.proc.wait(timeout=30), 0, "worker: SIGTERM, exit 0")

            # Three more copies of real reports, by hand: one exactly as
            # it was (key, value, headers, partition), one with CloudEvents
            # headers added, and one whose campaign carries, where the API's
            # alternative_channels pass through, words that look like
            # another outcome (kcat-outcomes must not read them).
            real = [r for r in consume_all(bs, TOPICS["output"], timeout=20)
                    if r.json().get("final")]
            copies = []
            for r in real:
                c = r.json()["campaign_id"]
                if truth[c] in ("stopped", "spam") and truth[c] not in {truth[x] for x, _ in copies}:
                    headers = list(r.headers)
                    if copies:
                        headers += [("ce_specversion", b"1.0"), ("ce_id", f"copy-{c}".encode()),
                                    ("ce_source", b"test_downstream"),
                                    ("ce_type", b"world.bsg.campaign.report")]
                    copies.append((c, (r.key, r.value, headers, r.partition)))
            r = next(r for r in real if truth[r.json()["campaign_id"]] == "done")
            v = r.json()
            v["campaign"]["alternative_channels"] = {"final": True, "outcome": "spam"}
            copies.append((v["campaign_id"], (r.key, json.dumps(v, separators=(",", ":")),
                                              r.headers, r.partition)))
            produce(bs, TOPICS["output"], [rec for _, rec in copies])
            checks.eq(len(copies), 3, "three copies of real reports produced by hand")

            all_recs = consume_all(bs, TOPICS["output"], timeout=20)
            n_final = sum(1 for r in all_recs if r.json().get("final"))
            n_progress = sum(1 for r in all_recs if r.json().get("final") is False)
            print(f"report topic: {len(all_recs)} records, {n_final} final "
                  f"({len(ids)} campaigns), {n_progress} progress", flush=True)
            checks.check(n_progress >= 1, "progress reports (final: false) on the topic")
            checks.eq(n_final, len(ids) + 4, "final reports: one per campaign, the second "
                      "report and the three copies")

            env = {"BROKERS": bs}
            if kcat:
                run_kcat_blocks(checks, blocks, env, work, truth, len(all_recs))
            run_python_block(checks, blocks, env, work, truth, bs)
        finally:
            stop_leftovers(workers, sim)
    took = time.monotonic() - t_start
    print(f"test_downstream: {took:.1f} s", flush=True)
    return checks.summary()


def run_kcat_blocks(checks, blocks, env, work, truth, n_records) -> None:
    rc, out, err = run_block("kcat-reports", sh(blocks["kcat-reports"]), env, 30, work)
    checks.eq(rc, 0, "kcat-reports: exit 0")
    recs = parse_kcat_reports(out)
    checks.eq(len(recs), n_records, "kcat-reports: every record of the topic printed")
    checks.check(all(v is not None for _, _, v in recs), "kcat-reports: every value is one JSON line")
    checks.check(recs and all("content-type=application/json" in h for _, h, _ in recs),
                 "kcat-reports: the content-type header printed with each record")
    checks.check(all(k == str(v.get("campaign_id")) for k, _, v in recs if v),
                 "kcat-reports: the key printed is the campaign id")
    outcomes: dict = {}
    for _, _, v in recs:
        if v and v.get("final"):
            outcomes.setdefault(v["campaign_id"], set()).add(v["outcome"])
    checks.eq(outcomes, {c: {o} for c, o in truth.items()},
              "kcat-reports: every campaign with its outcome (the simulator's truth)")

    rc, out, err = run_block("kcat-outcomes", sh(blocks["kcat-outcomes"]), env, 30, work)
    checks.eq(rc, 0, "kcat-outcomes: exit 0")
    lines = out.splitlines()
    checks.eq(sorted(lines), sorted(f"{c} {o}" for c, o in truth.items()),
              "kcat-outcomes: one 'id outcome' line per campaign, duplicates folded")

    rc, out, err = run_block("kcat-dlq", sh(blocks["kcat-dlq"]), env, 30, work)
    checks.eq(rc, 0, "kcat-dlq: exit 0")
    key, value, reason = BAD
    m = re.search(r"^key (\S*) headers (.*)$", out, re.M)
    checks.eq(m and m.group(1), key.decode(), "kcat-dlq: the bad event's key")
    checks.check(m is not None and f"error.reason={reason}" in m.group(2),
                 f"kcat-dlq: its error.reason={reason} header", m.group(2) if m else out[:300])
    checks.check(f"value ({len(value)} bytes) {value.decode()}" in out,
                 "kcat-dlq: the event's value as it came")


def run_python_block(checks, blocks, env, work, truth, bs) -> None:
    script = work / "consume_reports.py"
    script.write_text(blocks["python-consumer"])
    penv = {**env, "GROUP": EXAMPLE_GROUP, "IDLE_EXIT": IDLE_EXIT}
    argv = [sys.executable, str(script)]
    rc, out, err = run_block("python-consumer", argv, penv, 60, work)
    checks.eq(rc, 0, f"python-consumer: exit 0 after {IDLE_EXIT} s without a record")
    printed = [re.match(r"(\d+) (\w+) ", line) for line in out.splitlines()]
    checks.check(all(printed), "python-consumer: every line is 'id outcome note'", out[:300])
    got = [(int(m.group(1)), m.group(2)) for m in printed if m]
    per_id: dict = {}
    for c, o in got:
        per_id.setdefault(c, []).append(o)
    checks.eq({c: len(v) for c, v in per_id.items() if len(v) != 1}, {},
              "python-consumer: no campaign printed twice (second report, copies skipped)")
    checks.eq({c: v[0] for c, v in per_id.items()}, truth,
              "python-consumer: each campaign once, with the simulator's outcome")
    ends = end_offsets(bs, TOPICS["output"])
    committed = {p: o for p, (o, _) in committed_offsets(bs, EXAMPLE_GROUP, TOPICS["output"],
                                                         sorted(ends)).items()}
    checks.eq(committed, ends, "python-consumer: its group committed every record it read")

    rc, out, err = run_block("python-consumer-again", argv, penv, 60, work)
    checks.eq((rc, out), (0, ""), "python-consumer again, same group: nothing left to print")


if __name__ == "__main__":
    run_main(main)
