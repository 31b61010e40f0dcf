"""End to end on a real Kafka broker: status sweeps (poll.strategy, issue
15) against the simulator's campaign list (GET /api/campaigns).

1. poll.strategy=sweep, 400 campaigns created at the simulator before their
   events (POST /_sim/campaigns, owned by the worker's account) plus 20 that
   the list never shows before the worker fetches them (born by their first
   detail request): every campaign is reported, equal to the simulator's
   truth (the same content as detail polling gives), and the listed
   campaigns cost about one detail request each (their final detail) where
   detail polling costs several; the worker's api_calls_total{endpoint}
   equals what the simulator saw; the never-listed ones fall back to
   details (sweep_fallbacks_total{reason="unlisted"}).
   A second account's campaigns are swept through its own list.
2. poll.strategy=auto, the list turned to 404 mid-run; and a list that
   answers garbage (a 200 that is not a list) from the start: one line says
   the list cannot be used, the account goes on with details, every
   campaign is reported equal to the truth (0 lost).
3. poll.strategy=sweep with half the list pages failing (5xx, 429,
   malformed): every campaign reported, the failures counted
   (sweep_fallbacks_total{reason="list_failed"}, sweep_pages_total{result=
   "failed"}).
4. The list's open questions against the worker (auto): the server reads
   the filter in another zone, filters on the start time and shows new
   campaigns late: campaigns fall back to details, auto stops sweeping a
   list that shows none of them (one line), every campaign is reported.
The API key and bearers appear in no output; SIGTERM exits 0 each time."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, consume_all, log, parse_args, produce,  # noqa: E402
                     run_main)
from pipeline import (API_KEY, Sim, Worker, compare_with_truth, event,  # noqa: E402
                      finals_by_campaign, http_json, scratch_dir, stop_leftovers,
                      wait_reports, worker_config)

SWEEP_CONFIG = {
    "poll.sweep_interval": "200ms",
    "http.timeout": "1s",  # a campaign waits a sweep for 200ms + 3 x 1s
    "metrics.listen": "127.0.0.1:0",
}


MKT_KEY = "test_marketing_key_0815"


def birth(sim: Sim, ids, key: str = API_KEY) -> None:
    """Creates the campaigns at the simulator, owned by `key`'s account, as
    a platform creates a campaign before it publishes its event."""
    ids = list(ids)
    for i in range(0, len(ids), 500):
        http_json(sim.url + "/_sim/campaigns", {"ids": ids[i:i + 500], "api_key": key})


def check_truth(checks: Checks, sim: Sim, by_id: dict, ids, what: str) -> None:
    missing = set(ids) - set(by_id)
    checks.check(not missing, f"{what}: every campaign reported ({len(ids)})",
                 f"missing {len(missing)}, e.g. {sorted(missing)[:5]}")
    wrong = [(c, d) for c, rs in by_id.items() if c in set(ids)
             for d in [compare_with_truth(rs[-1], sim.truth(c))] if d]
    for c, d in wrong[:3]:
        log(f"campaign {c}: {d}")
    checks.eq(len(wrong), 0, f"{what}: every report equals the simulator's final truth")


def stop_clean(checks: Checks, w: Worker, what: str) -> None:
    w.proc.signal(signal.SIGTERM)
    checks.eq(w.proc.wait(timeout=60), 0, f"{what}: SIGTERM exits 0")
    text = w.proc.stderr_text() + w.proc.stdout_text()
    checks.check(API_KEY not in text and "eyJ" not in text,
                 f"{what}: no API key or bearer in any output")


def metric(scrape: dict, name: str, label=None) -> float:
    return scrape.get(("bsg_report_worker_" + name, label), 0.0)


@contextlib.contextmanager
def running(checks: Checks, args, kafka, name: str, work: Path, sim_args: list,
            worker_extra: dict, births=(), events=(), scale: str = "600"):
    """A simulator (sim_args; `births`: (ids, key) created before the
    worker starts), topics <name>.*, `events` produced, and a worker with
    SWEEP_CONFIG and worker_extra in group brw-<name>. Yields (sim, worker,
    topics); a body that returns normally is followed by a SIGTERM (exit 0,
    no secret in any output); leftovers are stopped either way."""
    topics = {"input": f"{name}.events", "output": f"{name}.reports", "dlq": f"{name}.dlq"}
    kafka.create_topics({topics["input"]: 4, topics["output"]: 4, topics["dlq"]: 1})
    sim = Sim(args.bin_dir, work, "--time-scale", scale, *sim_args, name=f"sim-{name}").start()
    w = None
    try:
        for ids, key in births:
            birth(sim, ids, key)
        produce(kafka.bootstrap, topics["input"], list(events))
        cfg = worker_config(kafka.bootstrap, sim, f"brw-{name}", topics,
                            **{**SWEEP_CONFIG, **worker_extra})
        w = Worker(args.bin_dir, work, cfg, name=f"worker-{name}").start()
        yield sim, w, topics
        stop_clean(checks, w, name)
    finally:
        stop_leftovers([w], sim)


def reported(checks: Checks, kafka, sim: Sim, topics: dict, ids, what: str) -> dict:
    """Waits for every id's final report and checks them against the
    truth; returns the final reports by campaign."""
    wait_reports(kafka.bootstrap, topics["output"], set(ids), timeout=240)
    by_id = finals_by_campaign(consume_all(kafka.bootstrap, topics["output"], timeout=30))
    check_truth(checks, sim, by_id, ids, what)
    return by_id


def unusable_lines(w: Worker) -> list:
    return [ln for ln in w.log_lines()
            if "cannot be used for status sweeps" in ln.get("msg", "")]


def phase_sweep(checks: Checks, args, kafka, work: Path) -> None:
    listed = list(range(700001, 700401))
    mkt = list(range(760001, 760101))  # a second account: its own list
    unlisted = list(range(790001, 790021))
    ids = listed + mkt + unlisted
    events = ([(str(c), event(c)) for c in listed + unlisted] +
              [(str(c), event(c, account="mkt")) for c in mkt])
    with running(checks, args, kafka, "sw", work, ["--seed", "41"],
                 {"poll.strategy": "sweep", "accounts.mkt.key": MKT_KEY},
                 births=[(listed, API_KEY), (mkt, MKT_KEY)], events=events) as (sim, w, topics):
        by_id = reported(checks, kafka, sim, topics, ids, "sweep")
        st = sim.stats()
        per = st.get("campaigns", {})
        listed_reqs = [per.get(str(c), 0) for c in listed + mkt]
        once = sum(1 for n in listed_reqs if n == 1)
        by_acct = st.get("list_requests_by_account", {})
        print(f"sweep: {len(ids)} campaigns; detail requests {st.get('detail_requests')}, "
              f"list requests {st.get('list_requests')} {by_acct}, list items "
              f"{st.get('list_items')}; listed campaigns with exactly one detail request: "
              f"{once}/{len(listed_reqs)}; max {max(listed_reqs)}", flush=True)
        checks.check(st.get("list_requests", 0) > 0, "sweeps read the campaign list")
        checks.eq(len(by_acct), 2, "each account sweeps its own list")
        checks.check(all(by_id[c][-1]["account"] == "mkt" for c in mkt if c in by_id),
                     "the second account's campaigns are reported under it")
        checks.check(once >= 0.9 * len(listed_reqs),
                     "a listed campaign costs one detail request (its final detail)",
                     f"{once}/{len(listed_reqs)}")
        calls = st.get("detail_requests", 0) + st.get("list_requests", 0)
        checks.check(calls < 1.5 * len(ids),
                     f"API calls per campaign below 1.5 ({calls / len(ids):.2f})")
        sc = w.scrape()
        checks.eq(metric(sc, "api_calls_total", "list"), float(st.get("list_requests", -1)),
                  "api_calls_total{endpoint=list} = the simulator's list requests")
        checks.eq(metric(sc, "api_calls_total", "detail"), float(st.get("detail_requests", -1)),
                  "api_calls_total{endpoint=detail} = the simulator's detail requests")
        checks.check(metric(sc, "sweep_fallbacks_total", "unlisted") >= len(unlisted),
                     "campaigns the list did not show fell back to details",
                     str(metric(sc, "sweep_fallbacks_total", "unlisted")))
        checks.check(metric(sc, "sweep_page_campaigns_count") > 0,
                     "sweep_page_campaigns observed the pages")


def phase_auto_unusable(checks: Checks, args, kafka, work: Path) -> None:
    first = list(range(710001, 710201))
    second = list(range(720001, 720201))
    with running(checks, args, kafka, "swa", work, ["--seed", "42"],
                 {"poll.strategy": "auto"}, births=[(first, API_KEY)],
                 events=[(str(c), event(c)) for c in first]) as (sim, w, topics):
        # Mid-run: the first sweeps worked, then the list is gone (404).
        t0 = time.monotonic()
        while sim.stats().get("list_requests", 0) < 3 and time.monotonic() - t0 < 60:
            time.sleep(0.1)
        http_json(sim.url + "/_sim/faults", {"list_mode": "404"})
        birth(sim, second)
        produce(kafka.bootstrap, topics["input"], [(str(c), event(c)) for c in second])
        reported(checks, kafka, sim, topics, first + second, "auto, list 404 mid-run")
        checks.check(metric(w.scrape(), "sweep_fallbacks_total", "list_unusable") >= 1,
                     "the unusable list is counted (list_unusable)")
        checks.eq(len(unusable_lines(w)), 1, "one line says the list cannot be used")


def phase_auto_garbage(checks: Checks, args, kafka, work: Path) -> None:
    """A list that answers 200 with a body that is not a list, from the
    start: auto falls back to details at once, one line, nothing lost."""
    ids = list(range(740001, 740101))
    with running(checks, args, kafka, "swg", work, ["--seed", "44", "--list-mode", "garbage"],
                 {"poll.strategy": "auto"}, births=[(ids, API_KEY)],
                 events=[(str(c), event(c)) for c in ids]) as (sim, w, topics):
        reported(checks, kafka, sim, topics, ids, "auto, garbage list")
        checks.eq(sim.stats().get("list_requests"), 1, "one list request, then details only")
        lines = unusable_lines(w)
        checks.check(len(lines) == 1 and "bad campaign list" in lines[0].get("error", ""),
                     "one line names the unusable body", str(lines[:1]))


def phase_failing_pages(checks: Checks, args, kafka, work: Path) -> None:
    ids = list(range(730001, 730301))
    with running(checks, args, kafka, "swf", work,
                 ["--seed", "43", "--list-fail-5xx", "0.3", "--list-fail-429", "0.1",
                  "--list-malformed", "0.1", "--retry-after", "1"],
                 {"poll.strategy": "sweep"}, births=[(ids, API_KEY)],
                 events=[(str(c), event(c)) for c in ids]) as (sim, w, topics):
        reported(checks, kafka, sim, topics, ids, "sweep, failing list pages")
        st = sim.stats()
        print(f"failing pages: list requests {st.get('list_requests')}, "
              f"faults {st.get('faults', {})}", flush=True)
        sc = w.scrape()
        checks.check(metric(sc, "sweep_pages_total", "failed") > 0,
                     "failed list pages are counted")
        checks.check(metric(sc, "sweep_fallbacks_total", "list_failed") > 0,
                     "and their fallbacks (list_failed)")
        checks.check(metric(sc, "sweep_pages_total", "ok") > 0, "other pages worked")


def phase_list_variants(checks: Checks, args, kafka, work: Path) -> None:
    """What BSG's spec leaves open, all at once and all against the worker:
    the server reads filter[from] in another zone (-08:00, so the worker's
    window starts 8 h late and lists nothing of today), filters on the
    start time, and shows new campaigns 1 s late. Nothing waits for the
    list: campaigns fall back to details one by one, and after three
    sweeps that list none of them auto stops sweeping the account (one
    line); every campaign is reported. Time scale 60: lifecycles of up to
    a minute, so that the sweeps go on long enough."""
    ids = list(range(750001, 750151))
    with running(checks, args, kafka, "swv", work,
                 ["--seed", "45", "--list-filter-zone", "-08:00", "--list-filter-on", "start",
                  "--list-lag", "1s"],
                 {"poll.strategy": "auto"}, births=[(ids, API_KEY)],
                 events=[(str(c), event(c)) for c in ids], scale="60") as (sim, w, topics):
        reported(checks, kafka, sim, topics, ids, "auto, list variants")
        sc = w.scrape()
        lines = unusable_lines(w)
        print(f"list variants: list requests {sim.stats().get('list_requests')}, "
              f"unlisted fallbacks {metric(sc, 'sweep_fallbacks_total', 'unlisted')}, "
              f"lines {[ln.get('error') for ln in lines]}", flush=True)
        checks.check(metric(sc, "sweep_fallbacks_total", "unlisted") > 0,
                     "campaigns outside the server's window fell back to details")
        checks.check(len(lines) == 1 and "listed none of" in lines[0].get("error", ""),
                     "auto stops sweeping a list that shows none of the campaigns (one line)",
                     str(lines[:2]))


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("sweeps")
    with KafkaBroker() as kafka:
        phase_sweep(checks, args, kafka, work)
        phase_auto_unusable(checks, args, kafka, work)
        phase_auto_garbage(checks, args, kafka, work)
        phase_failing_pages(checks, args, kafka, work)
        phase_list_variants(checks, args, kafka, work)
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
