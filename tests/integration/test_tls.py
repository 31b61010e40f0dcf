"""End to end over HTTPS (issue 12, first step): the worker talks to
bsg-api-sim through a real TLS server (Debian's nginx terminating TLS,
tests/integration/tlsfront.py), with a CA and certificates made by the test
with openssl, on a real Kafka broker.

- HTTPS with HTTP/2 offered by ALPN: every campaign reported with the
  simulator's truth; the TLS server saw HTTP/2 only, over few connections
  (multiplexed), with TLS 1.2 or 1.3.
- HTTPS where the server offers HTTP/1.1 only: the same, over HTTP/1.1.
- An unknown CA (http.ca_file names a CA that signed nothing here) and a
  hostname mismatch (a certificate for another name): no request reaches
  the server (so the API key never leaves the worker), no report is made,
  the worker stays up, /readyz answers 503 account_auth saying TLS fails,
  and the log says what TLS refused.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, log, parse_args, produce, run_main  # noqa: E402
from pipeline import (API_KEY, Sim, Worker, compare_with_truth, event,  # noqa: E402
                      http_get, scratch_dir, wait_reports, wait_until, worker_config)
from tlsfront import TlsFront  # noqa: E402

N = 60


class _Url:
    """What worker_config reads of a Sim: its url."""

    def __init__(self, url: str) -> None:
        self.url = url


def good(args, checks: Checks, kafka: KafkaBroker, sim: Sim, front: TlsFront,
         work: Path, server: str, first_id: int) -> None:
    bs = kafka.bootstrap
    topics = {"input": f"tls.{server}.in", "output": f"tls.{server}.out",
              "dlq": f"tls.{server}.dlq"}
    kafka.create_topics({topics["input"]: 2, topics["output"]: 1, topics["dlq"]: 1})
    ids = list(range(first_id, first_id + N))
    produce(bs, topics["input"], [(str(c), event(c)) for c in ids])
    cfg = worker_config(bs, _Url(front.url(server)), f"brw-e2e-tls-{server}", topics,
                        **{"http.ca_file": str(front.ca)})
    w = Worker(args.bin_dir, work, cfg, name=f"w-{server}").start()
    try:
        finals = wait_reports(bs, topics["output"], set(ids), timeout=120)
        by_id = {r.json()["campaign_id"]: r.json() for r in finals}
        checks.eq(len(set(ids) - set(by_id)), 0, f"{server}: every campaign reported over HTTPS")
        wrong = [c for c, r in by_id.items() if compare_with_truth(r, sim.truth(c))]
        checks.eq(wrong[:5], [], f"{server}: reports equal the simulator's truth")
        reqs = front.requests(server)
        protos = {r["proto"] for r in reqs}
        tls = {r["tls"] for r in reqs}
        conns = {r["conn"] for r in reqs}
        want = "HTTP/2.0" if server == "h2" else "HTTP/1.1"
        log(f"{server}: {len(reqs)} requests, protocols {protos}, TLS {tls}, "
            f"{len(conns)} connections")
        checks.check(len(reqs) >= N, f"{server}: the requests went through the TLS server ({len(reqs)})")
        checks.eq(protos, {want}, f"{server}: every request over {want}")
        checks.check(tls <= {"TLSv1.2", "TLSv1.3"} and tls, f"{server}: TLS 1.2 or 1.3 ({tls})")
        # Keep-alive (HTTP/1.1) or multiplexing (HTTP/2): far fewer
        # connections than requests.
        checks.check(len(conns) * 10 <= len(reqs),
                     f"{server}: connections reused ({len(conns)} for {len(reqs)} requests)")
        w.proc.signal(signal.SIGTERM)
        checks.eq(w.proc.wait(timeout=60), 0, f"{server}: SIGTERM exit 0")
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()


def refused(args, checks: Checks, kafka: KafkaBroker, front: TlsFront, work: Path,
            case: str, server: str, ca: Path, phrase: str) -> None:
    bs = kafka.bootstrap
    topics = {"input": f"tls.{case}.in", "output": f"tls.{case}.out", "dlq": f"tls.{case}.dlq"}
    kafka.create_topics({topics["input"]: 1, topics["output"]: 1, topics["dlq"]: 1})
    produce(bs, topics["input"], [(str(c), event(c)) for c in range(990001, 990011)])
    cfg = worker_config(bs, _Url(front.url(server)), f"brw-e2e-tls-{case}", topics,
                        **{"http.ca_file": str(ca), "metrics.listen": "127.0.0.1:0"})
    served = len(front.requests(server))  # by the earlier workers
    w = Worker(args.bin_dir, work, cfg, name=f"w-{case}").start()
    try:
        base = w.metrics_url()
        body = {}

        def not_ready() -> bool:
            nonlocal body
            code, raw = http_get(base + "/readyz")
            body = json.loads(raw or b"{}")
            return code == 503 and "account_auth" in body.get("blocked", {})

        ok = wait_until(not_ready, timeout=30, interval=0.5)
        detail = body.get("blocked", {}).get("account_auth", {}).get("detail", "")
        log(f"{case}: /readyz {json.dumps(body)[:300]}")
        checks.check(ok, f"{case}: /readyz 503 account_auth")
        checks.check("TLS" in detail and "http.ca_file" in detail,
                     f"{case}: the readiness detail says TLS fails and names http.ca_file",
                     detail)
        lines = w.log_lines()
        tls_lines = [l for l in lines if l.get("level") in ("warn", "error")
                     and phrase in l.get("msg", "")]
        checks.check(len(tls_lines) >= 1, f"{case}: the log says what TLS refused ({phrase!r})")
        checks.check(len(tls_lines) <= 5, f"{case}: ... rate-limited ({len(tls_lines)} lines)")
        checks.eq(front.requests(server)[served:], [],
                  f"{case}: no request reached the server (the key never left)")
        checks.check(w.proc.running(), f"{case}: the worker stays up")
        out = w.proc.stderr_text() + w.proc.stdout_text()
        checks.check(API_KEY not in out, f"{case}: no API key in the output")
        reports = consume_all(bs, topics["output"], timeout=5)
        checks.eq(len(reports), 0, f"{case}: no report from an unverified server")
        w.proc.signal(signal.SIGTERM)
        checks.eq(w.proc.wait(timeout=60), 0, f"{case}: SIGTERM exit 0")
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("tls")
    t0 = time.monotonic()
    with KafkaBroker() as kafka:
        sim = Sim(args.bin_dir, work, "--seed", "12", "--time-scale", "60").start()
        front = TlsFront(work, sim.url).start()
        try:
            good(args, checks, kafka, sim, front, work, "h2", 970001)
            good(args, checks, kafka, sim, front, work, "h1", 980001)
            refused(args, checks, kafka, front, work, "unknown-ca", "h2", front.other_ca,
                    "certificate")
            refused(args, checks, kafka, front, work, "hostname", "badname", front.ca,
                    "127.0.0.1")
        finally:
            front.stop()
            sim.stop()
    log(f"whole test: {time.monotonic() - t0:.1f} s")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
