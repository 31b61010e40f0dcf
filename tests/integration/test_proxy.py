"""End to end through a real forward proxy (issue 12, item 4): the worker
reaches bsg-api-sim behind a TLS server (Debian's nginx,
tests/integration/tlsfront.py) through Debian's tinyproxy
(tests/integration/proxyfwd.py), both started by the test, on a real Kafka
broker.

- HTTPS_PROXY in the worker's environment: every campaign reported with the
  simulator's truth; the proxy tunnelled CONNECTs to the TLS server's port
  only, no more tunnels than http.max_connections (connections kept alive
  through the tunnel); nginx saw the requests (HTTP/2 inside the tunnel).
- http.proxy in the config, with credentials (the proxy asks for Basic
  auth: a CONNECT without them gets 407), the environment without proxy
  variables: the same over HTTP/1.1; the proxy's password appears in no
  output of the worker and not in /metrics.
- NO_PROXY=127.0.0.1 in the environment with HTTPS_PROXY, http.no_proxy
  with http.proxy, and NO_PROXY in the environment with http.proxy (which
  keeps the environment's NO_PROXY), each proxy URL pointing at a closed
  port: the requests go direct, every campaign reported.
- http.proxy replaces HTTPS_PROXY of the environment (a closed port): the
  requests go through the configured proxy.
- The proxy down (http.proxy with credentials at a closed port, no
  bypass): no report, the worker stays up, /readyz 503 account_auth saying
  the API cannot be reached through the proxy, the log naming the proxy's
  port, the password nowhere; then the proxy comes up on that port: every
  campaign reported, /readyz 200, SIGTERM exit 0.
- HTTPS_PROXY with a wrong password: the proxy refuses the tunnel (401),
  which the log says; /readyz 503, no report, the password nowhere.

The test removes every proxy variable from its own environment first, so
that the workers (which inherit it) see only the ones a case sets.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (Checks, KafkaBroker, consume_all, free_port, log, parse_args,  # noqa: E402
                     produce, run_main)
from pipeline import (API_KEY, Sim, Worker, compare_with_truth, event,  # noqa: E402
                      http_get, scratch_dir, wait_blocked, wait_reports, wait_until,
                      worker_config)
from proxyfwd import ForwardProxy  # noqa: E402
from tlsfront import TlsFront  # noqa: E402

N = 30
MAX_CONNECTIONS = 4
PROXY_USER = "brwproxy"
PROXY_PASS = "Pr0xyPassw0rd-7f3c9a"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


class _Url:
    """What worker_config reads of a Sim: its url."""

    def __init__(self, url: str) -> None:
        self.url = url


class Env:
    """What every case shares: the broker, the simulator, the TLS front."""

    def __init__(self, args, checks: Checks, kafka: KafkaBroker, sim: Sim, front: TlsFront,
                 work: Path) -> None:
        self.args, self.checks, self.kafka, self.sim, self.front, self.work = (
            args, checks, kafka, sim, front, work)


def start_worker(e: Env, case: str, server: str, first_id: int, extra: dict,
                 env: Optional[dict] = None):
    """Topics and N campaigns for `case`, and a worker for them against the
    TLS front's `server`, with http.ca_file and a metrics port. Returns
    (worker, topics, ids)."""
    bs = e.kafka.bootstrap
    topics = {"input": f"proxy.{case}.in", "output": f"proxy.{case}.out",
              "dlq": f"proxy.{case}.dlq"}
    e.kafka.create_topics({topics["input"]: 2, topics["output"]: 1, topics["dlq"]: 1})
    ids = list(range(first_id, first_id + N))
    produce(bs, topics["input"], [(str(c), event(c)) for c in ids])
    cfg = worker_config(bs, _Url(e.front.url(server)), f"brw-e2e-proxy-{case}", topics,
                        **{"http.ca_file": str(e.front.ca), "metrics.listen": "127.0.0.1:0",
                           "http.max_connections": str(MAX_CONNECTIONS)},
                        **extra)
    w = Worker(e.args.bin_dir, e.work, cfg, name=f"w-{case}", env=env).start()
    w.metrics_url()  # raises at once if the worker refuses its config
    return w, topics, ids


def all_reported(e: Env, case: str, topics: dict, ids: list, timeout: float = 60) -> None:
    finals = wait_reports(e.kafka.bootstrap, topics["output"], set(ids), timeout=timeout)
    by_id = {r.json()["campaign_id"]: r.json() for r in finals}
    e.checks.eq(sorted(set(ids) - set(by_id))[:5], [], f"{case}: every campaign reported")
    wrong = [c for c, r in by_id.items() if compare_with_truth(r, e.sim.truth(c))]
    e.checks.eq(wrong[:5], [], f"{case}: reports equal the simulator's truth")


def served(e: Env, case: str, server: str, before: int) -> list:
    """The requests nginx served for `server` since `before`; checks there
    is at least one per campaign."""
    reqs = e.front.requests(server)[before:]
    e.checks.check(len(reqs) >= N, f"{case}: the requests reached the TLS server ({len(reqs)})")
    return reqs


def through_proxy(e: Env, case: str, proxy: ForwardProxy, server: str, connects_before: int,
                  reqs: list, w: Worker) -> None:
    """The proxy tunnelled to the TLS server's port only, with few tunnels,
    each a TLS connection the worker counted."""
    connects = proxy.connects()[connects_before:]
    target = f"127.0.0.1:{e.front.ports[server]}"
    log(f"{case}: {len(connects)} CONNECTs through {proxy.name}, {len(reqs)} requests, "
        f"protocols {sorted({r['proto'] for r in reqs})}")
    e.checks.check(len(connects) >= 1, f"{case}: the proxy log shows CONNECTs ({len(connects)})")
    e.checks.eq(sorted(set(connects)), [target], f"{case}: every CONNECT to the TLS server's port")
    # One nginx connection per tunnel: none came direct.
    conns = {r["conn"] for r in reqs}
    e.checks.eq(len(conns), len(connects),
                f"{case}: the TLS server's connections are the tunnels (none direct)")
    # Each tunnel is one connection of the worker's: kept alive, they are
    # never more than http.max_connections.
    e.checks.check(len(connects) <= MAX_CONNECTIONS,
                   f"{case}: tunnels kept alive ({len(connects)} CONNECTs for "
                   f"{len(reqs)} requests, http.max_connections {MAX_CONNECTIONS})")
    m = w.scrape()
    e.checks.eq((m.get(("bsg_report_worker_api_connections_total", "tls")),
                 m.get(("bsg_report_worker_api_connections_total", "tcp"))),
                (float(len(connects)), 0.0),
                f"{case}: api_connections_total counts each tunnel as one TLS connection")


def sigterm(e: Env, case: str, w: Worker) -> None:
    w.proc.signal(signal.SIGTERM)
    e.checks.eq(w.proc.wait(timeout=60), 0, f"{case}: SIGTERM exit 0")


def proxied(e: Env, case: str, server: str, proxy: ForwardProxy, first_id: int, extra: dict,
            env: Optional[dict], running=None, stopped=None) -> None:
    """A worker whose requests should all go through `proxy` to the TLS
    front's `server`: every campaign reported, nginx saw the requests over
    the server's protocol, the proxy tunnelled them, SIGTERM exit 0;
    running(worker) and stopped(worker), if given, check more before the
    SIGTERM and after the exit."""
    proto = {"h2": "HTTP/2.0", "h1": "HTTP/1.1"}[server]
    before, cbefore = len(e.front.requests(server)), len(proxy.connects())
    w, topics, ids = start_worker(e, case, server, first_id, extra, env=env)
    try:
        all_reported(e, case, topics, ids)
        reqs = served(e, case, server, before)
        e.checks.eq(sorted({r["proto"] for r in reqs}), [proto],
                    f"{case}: {proto} inside the tunnel")
        through_proxy(e, case, proxy, server, cbefore, reqs, w)
        if running:
            running(w)
        sigterm(e, case, w)
        if stopped:
            stopped(w)
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()


def case_env(e: Env, proxy: ForwardProxy) -> None:
    """a) HTTPS_PROXY in the environment, HTTP/2 inside the tunnel."""
    proxied(e, "env", "h2", proxy, 1210001, {}, {"HTTPS_PROXY": proxy.url})


def case_config_auth(e: Env, proxy: ForwardProxy) -> None:
    """b) http.proxy with credentials, HTTP/1.1 inside the tunnel; no proxy
    variable in the environment. The proxy's password is in no output."""
    case, server = "config", "h1"
    target = f"127.0.0.1:{e.front.ports[server]}"
    # Before the worker starts: proxied() counts the CONNECTs after these.
    e.checks.eq(proxy.status_of_connect(target), 407,
                f"{case}: the proxy refuses a CONNECT without credentials (407)")
    e.checks.eq(proxy.status_of_connect(target, with_auth=True), 200,
                f"{case}: ... and tunnels one with them (200)")

    def not_in_metrics(w: Worker) -> None:
        _, metrics = http_get(w.metrics_url() + "/metrics")
        metrics = metrics.decode(errors="replace")
        e.checks.check(PROXY_PASS not in metrics, f"{case}: no proxy password in /metrics")

    def not_in_output(w: Worker) -> None:
        out = w.proc.stdout_text() + w.proc.stderr_text()
        e.checks.check(PROXY_PASS not in out,
                       f"{case}: no proxy password in the worker's stdout, stderr or log lines")
        e.checks.check(API_KEY not in out, f"{case}: no API key in the output")

    proxied(e, case, server, proxy, 1220001, {"http.proxy": proxy.url}, None,
            not_in_metrics, not_in_output)


def case_config_over_env(e: Env, proxy: ForwardProxy, closed: str) -> None:
    """http.proxy replaces the environment's HTTPS_PROXY (at a closed port)."""
    proxied(e, "config-over-env", "h2", proxy, 1260001, {"http.proxy": proxy.url},
            {"HTTPS_PROXY": closed})


def case_bypass(e: Env, case: str, first_id: int, extra: dict, env: Optional[dict]) -> None:
    """c) the proxy's URL points at a closed port, the bypass names 127.0.0.1:
    the requests go direct."""
    server = "h2"
    before = len(e.front.requests(server))
    w, topics, ids = start_worker(e, case, server, first_id, extra, env=env)
    try:
        all_reported(e, case, topics, ids)
        served(e, case, server, before)
        sigterm(e, case, w)
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()


def blocked(e: Env, case: str, w: Worker, server: str, topics: dict, before: int,
            needle: str, secret: str) -> None:
    """The worker cannot reach the API through its proxy: /readyz 503
    account_auth saying the API cannot be reached through the proxy, a
    WARN/ERROR line with
    `needle` (what the operator must see), no request at the TLS server, no
    report, the worker up, `secret` nowhere."""
    base = w.metrics_url()
    ok, body, detail = wait_blocked(base, "account_auth")
    log(f"{case}: /readyz {json.dumps(body)[:400]}")
    e.checks.check(ok, f"{case}: /readyz 503 account_auth")
    e.checks.check("cannot be reached" in detail and "proxy" in detail,
                   f"{case}: the readiness detail says the API cannot be reached through "
                   f"the proxy", detail)
    lines = [l for l in w.log_lines() if l.get("level") in ("warn", "error")]
    for l in lines[:3]:
        log(f"{case}: log {json.dumps(l)[:300]}")
    e.checks.check(any(needle in json.dumps(l) for l in lines),
                   f"{case}: a WARN/ERROR line says {needle!r}")
    e.checks.eq(len(e.front.requests(server)) - before, 0,
                f"{case}: no request reached the TLS server")
    reports = consume_all(e.kafka.bootstrap, topics["output"], timeout=3)
    e.checks.eq(len(reports), 0, f"{case}: no report")
    e.checks.check(w.proc.running(), f"{case}: the worker stays up")
    seen = json.dumps(body) + http_get(base + "/metrics")[1].decode(errors="replace")
    e.checks.check(secret not in seen + w.proc.stdout_text() + w.proc.stderr_text(),
                   f"{case}: no proxy password in /readyz, /metrics or the output")


def case_wrong_credentials(e: Env, proxy: ForwardProxy) -> None:
    """HTTPS_PROXY with a wrong password (the environment's proxy
    credentials are as secret as http.proxy's): the proxy refuses the
    CONNECTs (tinyproxy answers 401 to wrong credentials, 407 to none), and
    curl's words for it, in the log, say the tunnel failed and the status."""
    case, server = "wrong-credentials", "h2"
    wrong = "WrongPr0xyPass-51d2"
    url = proxy.url.replace(PROXY_PASS, wrong)
    before, cbefore = len(e.front.requests(server)), len(proxy.connects())
    w, topics, _ = start_worker(e, case, server, 1280001, {}, env={"HTTPS_PROXY": url})
    try:
        blocked(e, case, w, server, topics, before, "CONNECT tunnel failed, response 401",
                wrong)
        e.checks.check(len(proxy.connects()) > cbefore,
                       f"{case}: the worker's CONNECTs reached the proxy")
        sigterm(e, case, w)
        e.checks.check(wrong not in w.proc.stdout_text() + w.proc.stderr_text(),
                       f"{case}: no proxy password in the output at the end")
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()


def case_down(e: Env) -> None:
    """d) the proxy down, then up on the port the worker points at. With
    credentials: the failures' lines and answers must not show them."""
    case, server = "down", "h2"
    proxy = ForwardProxy(e.work, name="proxy-late", auth=(PROXY_USER, PROXY_PASS))
    port = proxy.port  # nothing listens there until proxy.start()
    before = len(e.front.requests(server))
    w, topics, ids = start_worker(e, case, server, 1250001, {"http.proxy": proxy.url})
    try:
        # curl's words for a connection refused name the proxy's port.
        blocked(e, case, w, server, topics, before, f"port {port}", PROXY_PASS)
        base = w.metrics_url()
        proxy.start()
        t0 = time.monotonic()
        all_reported(e, case, topics, ids)
        log(f"{case}: every campaign reported {time.monotonic() - t0:.1f} s after the proxy came up")
        reqs = served(e, case, server, before)
        through_proxy(e, case, proxy, server, 0, reqs, w)
        e.checks.check(wait_until(lambda: http_get(base + "/readyz")[0] == 200, timeout=15),
                       f"{case}: /readyz 200 once the proxy is up")
        sigterm(e, case, w)
        e.checks.check(PROXY_PASS not in w.proc.stdout_text() + w.proc.stderr_text(),
                       f"{case}: no proxy password in the output at the end")
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()
        proxy.stop()


def main() -> int:
    args = parse_args(__doc__)
    for k in list(os.environ):
        if k.lower() in PROXY_VARS:
            del os.environ[k]
    checks = Checks()
    work = scratch_dir("proxy")
    t0 = time.monotonic()
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with KafkaBroker() as kafka:
        sim = Sim(args.bin_dir, work, "--seed", "12", "--time-scale", "600").start()
        front = TlsFront(work, sim.url).start()
        open_proxy = ForwardProxy(work, name="proxy-open").start()
        auth_proxy = ForwardProxy(work, name="proxy-auth", auth=(PROXY_USER, PROXY_PASS)).start()
        e = Env(args, checks, kafka, sim, front, work)
        try:
            case_env(e, open_proxy)
            case_config_auth(e, auth_proxy)
            case_bypass(e, "no-proxy-env", 1230001, {},
                        {"HTTPS_PROXY": closed, "NO_PROXY": "127.0.0.1"})
            case_bypass(e, "no-proxy-config", 1240001,
                        {"http.proxy": closed, "http.no_proxy": "127.0.0.1"}, None)
            case_bypass(e, "no-proxy-env-config", 1270001, {"http.proxy": closed},
                        {"NO_PROXY": "127.0.0.1"})
            case_config_over_env(e, open_proxy, closed)
            case_wrong_credentials(e, auth_proxy)
            case_down(e)
        finally:
            auth_proxy.stop()
            open_proxy.stop()
            front.stop()
            sim.stop()
    log(f"whole test: {time.monotonic() - t0:.1f} s")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
