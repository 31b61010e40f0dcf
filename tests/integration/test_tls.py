"""End to end over HTTPS/1.1 (issue 12): the worker talks to bsg-api-sim
through a real TLS server (Debian's nginx terminating TLS,
tests/integration/tlsfront.py), with a CA and certificates made by the test
with openssl (scripts/kafka-pki.sh), on a real Kafka broker. HTTP/2 is
test_http2.py's.

- HTTPS/1.1 (a server that offers HTTP/1.1 only, http.ca_file = the test
  CA): every campaign reported with the simulator's truth, every request
  over HTTP/1.1 with TLS 1.2 or 1.3 on kept-alive connections;
  bsg_report_worker_api_connections_total{transport="tls"} equals the
  connections the server saw, api_requests_total its requests, and
  api_responses_by_version_total{version="1.1"} every response.
- TLS session reuse, against a server that closes each connection after 5
  requests (so that the worker opens connections all along the run, up to
  2 at a time): the first connection makes a full handshake, and at least
  75 % of the later ones resume a session (nginx's $ssl_session_reused;
  measured: 34 to 36 of 36, and 29 to 33 with 4 at a time: libcurl 7.88
  with connections opened concurrently makes a full handshake now and
  then, and curl --parallel does the same);
  api_connections_total{transport="tls"} equals the connections the server
  saw. TLS handshakes per 1,000 fetches (all, and full ones) are logged.
- An unknown CA (http.ca_file names a CA that signed nothing here), an
  expired certificate and a hostname mismatch (a certificate for another
  name): no request reaches the server (so the API key never leaves the
  worker), no report is made, the worker stays up, /readyz answers 503
  account_auth saying TLS fails and naming http.ca_file,
  api_auth_failures_total{reason="tls"} counts the logins,
  api_retries_total{class="tls"} the fetches they hold back, and one
  rate-limited log line says what TLS refused. SIGTERM exits 0; the API key
  is in no output.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, consume_all, log, parse_args, produce, run_main  # noqa: E402
from pipeline import (API_KEY, Sim, Worker, event, scratch_dir, wait_blocked,  # noqa: E402
                      worker_config)
from tlsfront import SHORT_KEEPALIVE, ApiUrl, Run, TlsFront, connections, pipeline  # noqa: E402

N = 60


def https11(args, checks: Checks, kafka: KafkaBroker, sim: Sim, front: TlsFront,
            work: Path) -> None:
    run = pipeline(args, checks, kafka, sim, front, work, "h1",
                   list(range(980001, 980001 + N)), case="h1")
    reqs = run.reqs
    checks.check(len(reqs) >= N, f"h1: the requests went through the TLS server ({len(reqs)})")
    checks.eq({r["proto"] for r in reqs}, {"HTTP/1.1"}, "h1: every request over HTTP/1.1")
    tls = {r["tls"] for r in reqs}
    checks.check(tls and tls <= {"TLSv1.2", "TLSv1.3"}, f"h1: TLS 1.2 or 1.3 ({tls})")
    conns = connections(reqs)
    checks.check(len(conns) * 10 <= len(reqs),
                 f"h1: connections kept alive ({len(conns)} for {len(reqs)} requests)")

    # The worker's own count of connections (= TLS handshakes).
    checks.eq(run.metric("api_connections_total", "tls"), float(len(conns)),
              "h1: api_connections_total{transport=\"tls\"} = the connections the server saw")
    checks.eq(run.metric("api_connections_total", "tcp"), 0.0,
              "h1: api_connections_total{transport=\"tcp\"} = 0 over HTTPS")
    checks.eq(run.metric_sum("api_requests_total"), float(len(reqs)),
              "h1: api_requests_total = the requests the server saw")
    checks.eq(run.by_label("api_responses_by_version_total"), {"1.1": float(len(reqs))},
              "h1: api_responses_by_version_total: every response HTTP/1.1")
    handshakes(run, "h1")


def handshakes(run, case: str) -> None:
    conns = connections(run.reqs)
    full = list(conns.values()).count(".")
    fetches = run.metric_sum("api_requests_total")
    tls_conns = run.metric("api_connections_total", "tls")
    log(f"{case}: TLS handshakes per 1,000 fetches: "
        f"{1000 * tls_conns / fetches if fetches else float('inf'):.1f} "
        f"({tls_conns:.0f} handshakes for {fetches:.0f} fetches; full ones per 1,000 "
        f"fetches: {1000 * full / fetches if fetches else float('inf'):.1f})")


def session_reuse(args, checks: Checks, kafka: KafkaBroker, sim: Sim, front: TlsFront,
                  work: Path) -> None:
    """A server that closes each connection after a few requests, so that
    the worker opens connections all along the run: they resume the TLS
    session of the earlier ones. Two at a time: with more, libcurl makes
    more full handshakes (see the docstring at the top)."""
    run = pipeline(args, checks, kafka, sim, front, work, "h1short",
                   list(range(985001, 985001 + N)), case="reuse",
                   **{"http.max_connections": "2"})
    conns = connections(run.reqs)
    reused = list(conns.values())
    log(f"reuse: TLS sessions per connection in order: {''.join(reused)} "
        f"('.' full handshake, 'r' resumed)")
    checks.check(len(conns) >= 20, f"reuse: connections renewed all along ({len(conns)} for "
                 f"{len(run.reqs)} requests, {SHORT_KEEPALIVE} per connection)")
    # The worker logs in on one connection before it fetches anything, so
    # every later connection opens once a session exists.
    checks.eq(reused[:1], ["."], "reuse: the first connection makes a full handshake")
    later = reused[1:]
    checks.check(later and later.count("r") >= 0.75 * len(later),
                 f"reuse: the later connections resume the TLS session ({later.count('r')} "
                 f"of {len(later)}; at least 75 %)")
    checks.eq(run.metric("api_connections_total", "tls"), float(len(conns)),
              "reuse: api_connections_total{transport=\"tls\"} = the connections the "
              "server saw")
    handshakes(run, "reuse")


def refused(args, checks: Checks, kafka: KafkaBroker, front: TlsFront, work: Path,
            case: str, server: str, ca: Path, says: str) -> None:
    """A worker whose API's certificate fails verification: `says` (a
    regular expression) is what its log line says TLS refused."""
    bs = kafka.bootstrap
    topics = {k: f"tls.{case}.{k}" for k in ("input", "output", "dlq")}
    kafka.create_topics({topics["input"]: 1, topics["output"]: 1, topics["dlq"]: 1})
    produce(bs, topics["input"], [(str(c), event(c)) for c in range(990001, 990011)])
    cfg = worker_config(bs, ApiUrl(front.url(server)), f"brw-e2e-tls-{case}", topics,
                        **{"http.ca_file": str(ca), "metrics.listen": "127.0.0.1:0"})
    served = len(front.requests(server))  # by the earlier workers
    w = Worker(args.bin_dir, work, cfg, name=f"w-{case}").start()
    try:
        base = w.metrics_url()
        ok, body, detail = wait_blocked(base, "account_auth")
        log(f"{case}: /readyz {json.dumps(body)[:300]}")
        checks.check(ok, f"{case}: /readyz 503 account_auth")
        checks.check("TLS" in detail and "http.ca_file" in detail,
                     f"{case}: the readiness detail says TLS fails and names http.ca_file",
                     detail)
        # A few more login attempts (backoff from 100 ms) for the rate limit.
        time.sleep(3)
        m = Run([], w.scrape(), [])
        fails = m.metric("api_auth_failures_total", "tls")
        logins = m.metric("api_login_failures_total")
        log(f"{case}: failed logins {logins:.0f}, auth failures by reason "
            f"{m.by_label('api_auth_failures_total')}, retries by class "
            f"{m.by_label('api_retries_total')}, requests by class "
            f"{m.by_label('api_requests_total')}, connections "
            f"{m.by_label('api_connections_total')}")
        checks.check(fails > 0,
                     f"{case}: api_auth_failures_total{{reason=\"tls\"}} > 0 ({fails:.0f})")
        retries = m.metric("api_retries_total", "tls")
        checks.check(retries > 0,
                     f"{case}: api_retries_total{{class=\"tls\"}} > 0 ({retries:.0f})")
        lines = [l for l in w.log_lines() if l.get("level") in ("warn", "error")]
        tls_lines = [l for l in lines if re.search(says, l.get("msg", ""))]
        for l in tls_lines[:1]:
            log(f"{case}: the log says: {l.get('msg')}")
        checks.check(len(tls_lines) >= 1, f"{case}: the log says what TLS refused (/{says}/)",
                     json.dumps([l.get("msg") for l in lines[:3]]))
        checks.check(len(tls_lines) <= 5 and len(tls_lines) < logins,
                     f"{case}: ... rate-limited ({len(tls_lines)} lines for {logins:.0f} "
                     f"failed logins)")
        checks.eq(front.requests(server)[served:], [],
                  f"{case}: no request reached the server (the key never left)")
        checks.check(w.proc.running(), f"{case}: the worker stays up")
        reports = consume_all(bs, topics["output"], timeout=5)
        checks.eq(len(reports), 0, f"{case}: no report from an unverified server")
        w.proc.signal(signal.SIGTERM)
        checks.eq(w.proc.wait(timeout=60), 0, f"{case}: SIGTERM exit 0")
        out = w.proc.stderr_text() + w.proc.stdout_text()
        checks.check(API_KEY not in out, f"{case}: no API key in the output")
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
        sim = Sim(args.bin_dir, work, "--seed", "12", "--time-scale", "600").start()
        front = TlsFront(work, sim.url).start()
        try:
            https11(args, checks, kafka, sim, front, work)
            session_reuse(args, checks, kafka, sim, front, work)
            # What curl (OpenSSL) says of each: the unknown CA's chain ends
            # in the test CA, self-signed and not trusted.
            refused(args, checks, kafka, front, work, "unknown-ca", "h1", front.other_ca,
                    r"self-signed certificate in certificate chain|unable to get local issuer")
            refused(args, checks, kafka, front, work, "expired", "expired", front.ca,
                    r"certificate has expired")
            refused(args, checks, kafka, front, work, "hostname", "badname", front.ca,
                    r"(?i)name.*'?127\.0\.0\.1")
        finally:
            front.stop()
            sim.stop()
    log(f"whole test: {time.monotonic() - t0:.1f} s")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
