"""End to end on a real Kafka broker (SPEC §6 "Delivery guarantees"): the
broker goes away for 20 s in the middle of a run and comes back on the same
data dir and ports. One worker, 400 campaigns whose lifecycles last seconds
to tens of seconds, so that some finish before the outage, some during it
and some after. Checks: every campaign is reported (at least once;
duplicates are counted and printed), the reports equal the simulator's
truth, the committed offsets reach the end of every partition, the worker is
the same process throughout (never restarted, never exited), it logs that
the brokers were all down (once: the connection failure is one line, then
rate-limited, and kafka_down is raised once) and then reachable again, and
SIGTERM exits 0.

--guarantee exactly_once: the worker runs with delivery.guarantee =
exactly_once (worker.instance outage-1, group brw-e2e-outage-eo), so the
outage interrupts open transactions. Five bad events are interleaved with the
campaigns and five more are produced just before the broker stops (their DLQ
records may be in the transaction the outage interrupts). Read with
read_committed once the committed offsets reach the end: every campaign
exactly one final report (duplicates asserted 0, not only printed), every
bad event exactly one DLQ record with its reason."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, committed_offsets,  # noqa: E402
                     end_offsets, log, parse_args, produce, run_main)
from pipeline import (BAD_EVENTS, http_get, Sim, Worker, add_guarantee_arg,  # noqa: E402
                      check_dlq_once, compare_with_truth, final_ids_until, finals,
                      guarantee_config, produce_campaigns, scratch_dir, stop_leftovers,
                      wait_until, worker_config)

TOPICS = {"input": "outage.events", "output": "outage.reports", "dlq": "outage.dlq"}
N = 400
GROUP = "brw-e2e-outage"
OUTAGE_S = 20.0
# Sim time scale 120: median lifecycle ~5.5 s, the longest ~30 s (real time).
TIME_SCALE = "120"

# The health registry's lines for the reason kafka_down (src/health.c): the
# first when it is raised, the other when it clears (prefixes of msg).
MSG_DOWN = "cannot make progress: kafka_down"
MSG_UP = "progress resumed: kafka_down cleared"


def committed_map(bs: str, parts, group: str = GROUP) -> dict:
    try:
        return {p: o for p, (o, _) in committed_offsets(bs, group, TOPICS["input"], parts).items()}
    except RuntimeError as e:  # the coordinator may still be loading
        log(f"committed offsets: {e}")
        return {}


def main() -> int:
    args = parse_args(__doc__, extra=add_guarantee_arg)
    eo = args.guarantee == "exactly_once"
    group = GROUP + ("-eo" if eo else "")
    checks = Checks()
    work = scratch_dir("outage")
    ids = list(range(400001, 400001 + N))
    t_start = time.monotonic()
    with KafkaBroker() as kafka:
        bs = kafka.bootstrap
        kafka.create_topics({TOPICS["input"]: 4, TOPICS["output"]: 4, TOPICS["dlq"]: 1})
        sim = Sim(args.bin_dir, work, "--seed", "23", "--time-scale", TIME_SCALE).start()
        worker = None
        try:
            # exactly once: {(partition, offset): reason} of bad events
            bad_at = produce_campaigns(bs, TOPICS["input"], ids,
                                       BAD_EVENTS[:5] if eo else (), every=N // 5)
            ends = end_offsets(bs, TOPICS["input"])
            cfg = worker_config(bs, sim, group, TOPICS, **{"api.rate_limit": "400",
                                                            "metrics.listen": "127.0.0.1:0"},
                                **guarantee_config(args.guarantee, "outage-1"))
            worker = Worker(args.bin_dir, work, cfg, name="worker").start()
            pid = worker.proc.pid

            # Mid-run: some campaigns reported, most still being tracked.
            if eo:
                # Read only until N // 5: see final_ids_until.
                seen = [0]

                def enough():
                    seen[0] = len(final_ids_until(bs, TOPICS["output"], N // 5, 20))
                    return seen[0] >= N // 5
                ok = wait_until(enough, timeout=180, interval=1.0)
                before = seen[0]
            else:
                ok = wait_until(lambda: len(finals(bs, TOPICS["output"], 20)) >= N // 5, timeout=180,
                                interval=1.0)
            checks.check(ok, f"at least {N // 5} campaigns reported before the outage")
            if not eo:
                before = len(finals(bs, TOPICS["output"], 20))
            lines_before = len(worker.log_lines())
            log(f"committed before the outage: {committed_map(bs, ends, group)}")
            log(f"{before} campaigns reported; stopping the broker for {OUTAGE_S:.0f} s")

            if eo:
                # The other bad events just before the outage: their DLQ
                # records may be in the transaction it interrupts.
                late = [(f"bad-{5 + j}", v) for j, (v, _) in enumerate(BAD_EVENTS[5:])]
                for pos, (_, reason) in zip(produce(bs, TOPICS["input"], late), BAD_EVENTS[5:]):
                    bad_at[pos] = reason
                ends = end_offsets(bs, TOPICS["input"])
                time.sleep(0.1)
            t_down = time.monotonic()
            rc = kafka.stop_broker_process()
            log(f"broker stopped (rc {rc}) in {time.monotonic() - t_down:.1f} s")
            checks.check(worker.proc.wait_text(MSG_DOWN, timeout=OUTAGE_S + 10),
                         f"the worker logs \"{MSG_DOWN}\" during the outage")
            base = worker.metrics_url()
            checks.eq(http_get(base + "/readyz")[0], 503, "/readyz is 503 while the broker is down")
            left = OUTAGE_S - (time.monotonic() - t_down)
            if left > 0:
                time.sleep(left)
            checks.check(worker.proc.running() and worker.proc.pid == pid,
                         "the worker is still running while the broker is down")
            polls_during = sim.stats().get("detail_requests", 0)
            kafka.start_again()
            t_up = time.monotonic()
            log(f"broker back after {t_up - t_down:.1f} s (ready in {kafka.ready_seconds:.1f} s); "
                f"simulator served {polls_during} detail requests so far")

            checks.check(wait_until(lambda: http_get(base + "/readyz")[0] == 200, timeout=60),
                         "/readyz is 200 again once the broker is back")

            # Everything is reported after the broker comes back.
            if eo:
                ok = wait_until(lambda: set(ids) <= final_ids_until(bs, TOPICS["output"], N),
                                timeout=240, interval=2.0)
            else:
                ok = wait_until(lambda: set(ids) <= set(finals(bs, TOPICS["output"], 30)), timeout=240,
                                interval=2.0)
            all_done = time.monotonic()
            if eo:
                # Once the offsets are committed at the end, every record the
                # worker will publish for them is committed too: read the
                # topics whole after that.
                at_end = wait_until(lambda: committed_map(bs, ends, group) == ends,
                                    timeout=60, interval=1.0)
            by_id = finals(bs, TOPICS["output"], 30)
            missing = sorted(set(ids) - set(by_id))
            dup_ids = {c: len(v) for c, v in by_id.items() if len(v) > 1}
            dups = sum(n - 1 for n in dup_ids.values())
            print(f"broker outage{' (exactly_once)' if eo else ''}: {N} campaigns in, "
                  f"{len(by_id)} reported "
                  f"({before} before the outage), {dups} duplicate reports"
                  + (f" (campaigns {sorted(dup_ids)[:20]})" if dup_ids else "")
                  + f"; all reported {all_done - t_up:.1f} s after the broker came back",
                  flush=True)
            if eo:
                checks.eq(dups, 0, "exactly one final report per campaign")
            checks.check(ok and not missing, "every campaign is reported after the outage",
                         f"{len(missing)} missing, first {missing[:10]}")
            checks.eq(set(by_id) - set(ids), set(), "no report for an unknown campaign")
            wrong = [(c, d) for c, rs in sorted(by_id.items()) if c in set(ids)
                     for d in [compare_with_truth(rs[-1], sim.truth(c))] if d]
            for c, d in wrong[:5]:
                log(f"campaign {c}: {d}")
            checks.eq(len(wrong), 0, "every report equals the simulator's truth")

            ok = at_end if eo else wait_until(lambda: committed_map(bs, ends, group) == ends,
                                              timeout=60, interval=1.0)
            checks.check(ok, "committed offsets reach the end of every partition",
                         f"ends {ends}, committed {committed_map(bs, ends, group)}")
            if eo:
                check_dlq_once(checks, bs, TOPICS["dlq"], bad_at, "broker outage (exactly_once)")

            # The same worker process did it all.
            checks.check(worker.proc.running(), "the worker never exited",
                         f"returncode {worker.proc.returncode}")
            checks.eq(worker.proc.pid, pid, "the worker is the process started at the beginning")

            # It noticed the outage and the recovery (JSON lines on stderr).
            lines = worker.log_lines()
            after = lines[lines_before:]
            msgs = [l.get("msg", "") for l in after]
            i_down = next((i for i, m in enumerate(msgs) if m.startswith(MSG_DOWN)), None)
            i_up = next((i for i, m in enumerate(msgs) if m.startswith(MSG_UP)
                         and i_down is not None and i > i_down), None)
            down_line = after[i_down] if i_down is not None else {}
            up_line = after[i_up] if i_up is not None else {}
            log(f"down: {down_line.get('ts')} {down_line.get('level')}; "
                f"up: {up_line.get('ts')} {up_line.get('level')}")
            checks.check(i_down is not None, f"log line msg \"{MSG_DOWN}...\" after the broker stopped",
                         f"kafka-related messages: {sorted({m for m in msgs if 'kafka' in m})[:10]}")
            checks.check(i_up is not None, f"log line msg \"{MSG_UP}...\" after \"{MSG_DOWN}...\"",
                         f"kafka-related messages: {sorted({m for m in msgs if 'kafka' in m})[:10]}")
            # Said once: one line per error code (then at most one a minute),
            # librdkafka's duplicate FAIL lines at debug, kafka_down once.
            transport = [l for l in after if l.get("error") == "_TRANSPORT"
                         or l.get("facility") == "FAIL"]
            checks.check(len(transport) <= 2,
                         "the lost broker connection is logged once, then rate-limited",
                         f"{len(transport)} lines: {[l.get('msg') for l in transport[:4]]}")
            downs = [m for m in msgs if m.startswith(MSG_DOWN)]
            checks.eq(len(downs), 1, "kafka_down is said once during the outage")
            fatal = [l for l in lines if "fatal" in l.get("msg", "")]
            checks.eq(fatal[:3], [], "no fatal Kafka error")

            # SIGTERM: a clean exit.
            worker.proc.signal(signal.SIGTERM)
            rc = worker.proc.wait(timeout=60)
            checks.eq(rc, 0, "SIGTERM after the outage: exit code 0")
            checks.eq(committed_map(bs, ends, group), ends,
                      "after SIGTERM the committed offsets are at the end")
            stats = sim.stats()
            log(f"simulator: {stats.get('detail_requests')} detail requests, {stats.get('logins')} logins")
        finally:
            stop_leftovers([worker], sim)
    print(f"run time {time.monotonic() - t_start:.1f} s", flush=True)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
