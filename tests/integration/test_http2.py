"""End to end over HTTP/2 (issue 12): the worker talks to bsg-api-sim through
a real TLS server (Debian's nginx terminating TLS and offering h2 by ALPN,
tests/integration/tlsfront.py) on a real Kafka broker; http.version chooses
the protocol. HTTPS/1.1, TLS session reuse and the TLS failures are
test_tls.py's.

- http.version=auto (the default) against a server offering h2, with
  http.max_connections=2: every campaign reported with the simulator's
  truth, every request HTTP/2 (nginx's access log), at most 2 connections
  for hundreds of requests, more requests at once at the server than
  connections (multiplexed; measured: about 70 at once on one connection),
  api_responses_by_version_total{version="2"} counts them, and the log has
  one INFO "API protocol" line with http_version "2".
- A server that ends each HTTP/2 connection (GOAWAY) after 40 requests:
  one new connection per 40 requests (no burst), later ones resuming the
  TLS session (2 and 6 of 6 in two runs with libcurl 7.88), no fetch
  failed.
- http.version=1.1 against the same server: every request HTTP/1.1.
- http.version=2 against a server offering HTTP/1.1 only: the campaigns are
  still reported, over HTTP/1.1, and a WARN line (once, or rate-limited)
  says the API answered over HTTP/1.1 although http.version is 2.
- http.version=2 over plain http:// (nginx's h2c listener): HTTP/2 by prior
  knowledge, counted as transport="tcp" connections, "API protocol" with
  tls false. With libcurl below 8.0.0 (Debian 12 has 7.88.1), whose second
  request on an h2c connection fails ("Error in the HTTP2 framing layer",
  curl issue 10634; curl --http2-prior-knowledge fails the same), the
  worker refuses the setting at start: exit 2 naming http.version, no
  request sent.
Each run also checks api_connections_total{transport} against the
connections nginx saw.
Each worker: SIGTERM exit 0, no API key in any output.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Checks, KafkaBroker, binary, log, parse_args, run_main  # noqa: E402
from pipeline import API_KEY, Sim, scratch_dir  # noqa: E402
from tlsfront import (H2_SHORT_KEEPALIVE, Run, TlsFront, connections,  # noqa: E402
                      most_in_flight, pipeline)


def libcurl_version(bin_dir) -> tuple:
    """The libcurl the worker runs with, from --version."""
    out = subprocess.run([str(binary(bin_dir, "bsg-report-worker")), "--version"],
                         stdout=subprocess.PIPE, text=True, timeout=30).stdout
    m = re.search(r"libcurl/(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def h2c_refused(args, checks: Checks, front: TlsFront, work: Path, curl: tuple) -> None:
    """http.version=2 over plain http:// with a libcurl that breaks h2c: the
    worker exits 2 at start naming http.version, before any request."""
    exe = binary(args.bin_dir, "bsg-report-worker")
    before = len(front.requests("h2c"))
    res = subprocess.run([str(exe), f"--api.url={front.url('h2c')}", "--http.version=2",
                          f"--api.key={API_KEY}", "--brokers=127.0.0.1:9",
                          "--metrics.listen=off"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         timeout=60, cwd=work)
    out = res.stdout + res.stderr
    log(f"h2c on libcurl {'.'.join(map(str, curl))}: exit {res.returncode}: "
        f"{res.stderr.strip()[:300]}")
    checks.eq(res.returncode, 2, "h2c: refused at start (exit 2) on libcurl < 8.0.0")
    checks.check("http.version" in res.stderr and "8.0.0" in res.stderr,
                 "h2c: the error names http.version and the libcurl it needs", res.stderr[:300])
    checks.check(API_KEY not in out, "h2c: no API key in the output")
    checks.eq(len(front.requests("h2c")) - before, 0, "h2c: no request was sent")


def protocol_lines(run: Run) -> list:
    """The lines that say which protocol the API answered with."""
    return [l for l in run.lines if "http_version" in l]


def check_protocol(checks: Checks, case: str, run: Run, proto: str, version: str,
                   tls: bool = True) -> None:
    """Every request `proto` at the server, every response `version` in the
    worker's metric, api_connections_total{transport} the server's
    connections, and one line says the API answers with `version` over TLS
    (or not): INFO "API protocol", or (http.version=2 answered with
    HTTP/1.1) the WARN."""
    reqs = run.reqs
    checks.check(len(reqs) >= 50,
                 f"{case}: the requests went through the TLS server ({len(reqs)})")
    checks.eq(sorted({r["proto"] for r in reqs}), [proto], f"{case}: every request {proto}")
    checks.eq(run.by_label("api_responses_by_version_total"), {version: float(len(reqs))},
              f"{case}: api_responses_by_version_total{{version=\"{version}\"}} counts every "
              f"response, no other version")
    conns = connections(reqs)
    transport, other = ("tls", "tcp") if tls else ("tcp", "tls")
    checks.eq(run.metric("api_connections_total", transport), float(len(conns)),
              f"{case}: api_connections_total{{transport=\"{transport}\"}} = the connections "
              f"the server saw ({len(conns)})")
    checks.eq(run.metric("api_connections_total", other), 0.0,
              f"{case}: api_connections_total{{transport=\"{other}\"}} = 0")
    lines = protocol_lines(run)
    log(f"{case}: {lines}")
    first = lines[0] if lines else {}
    if first.get("level") == "warn":
        what = "the WARN"
        ok = "although http.version is 2" in first.get("msg", "")
    else:
        what = "INFO \"API protocol\""
        ok = first.get("level") == "info" and first.get("msg", "").startswith("API protocol")
    checks.check(ok and first.get("http_version") == version and first.get("tls") is tls,
                 f"{case}: {what} says http_version {version!r}, tls {str(tls).lower()}",
                 str(lines[:2]))
    checks.eq(len(lines), 1, f"{case}: ... logged once (the protocol did not change)")


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    work = scratch_dir("http2")
    t0 = time.monotonic()
    with KafkaBroker() as kafka:
        sim = Sim(args.bin_dir, work, "--seed", "21", "--time-scale", "600").start()
        front = TlsFront(work, sim.url).start()
        try:
            # auto: HTTP/2 by ALPN, multiplexed over at most 2 connections.
            t = time.monotonic()
            run = pipeline(args, checks, kafka, sim, front, work, "h2",
                           list(range(970001, 970101)), case="h2-auto",
                           **{"http.max_connections": "2"})
            log(f"h2-auto: {time.monotonic() - t:.1f} s")
            check_protocol(checks, "h2-auto", run, "HTTP/2.0", "2")
            conns = connections(run.reqs)
            checks.check(len(conns) <= 2 and len(run.reqs) >= 100,
                         f"h2-auto: http.max_connections=2 bounds connections, not requests "
                         f"({len(conns)} connections for {len(run.reqs)} requests)")
            most = most_in_flight(run.reqs)
            checks.check(most > 2, f"h2-auto: more requests at once than connections: "
                         f"multiplexed (at most {most} at once at the server)")

            # A server that ends each HTTP/2 connection (GOAWAY) after 40
            # requests: the worker opens the next one as it needs it, one at
            # a time (no burst of new connections while requests wait,
            # CURLOPT_PIPEWAIT), resumes its TLS session, and loses no fetch
            # (curl retries a stream the server refused).
            t = time.monotonic()
            run = pipeline(args, checks, kafka, sim, front, work, "h2short",
                           list(range(974001, 974101)), case="h2-goaway",
                           **{"http.max_connections": "2"})
            log(f"h2-goaway: {time.monotonic() - t:.1f} s")
            check_protocol(checks, "h2-goaway", run, "HTTP/2.0", "2")
            conns = connections(run.reqs)
            least = -(-len(run.reqs) // H2_SHORT_KEEPALIVE)
            log(f"h2-goaway: {len(run.reqs)} requests over {len(conns)} connections "
                f"(at least {least}); resumed: {list(conns.values()).count('r')}; retries "
                f"{run.by_label('api_retries_total')}")
            checks.check(least <= len(conns) <= least + 4,
                         f"h2-goaway: a new connection per {H2_SHORT_KEEPALIVE} requests, no "
                         f"burst ({len(conns)} connections for {len(run.reqs)} requests)")
            # Fewer resume than over HTTP/1.1 (test_tls: >= 75 %): 2 of 6 in
            # the runs measured with libcurl 7.88 (not explained; its TLS 1.3
            # session tickets over HTTP/2). At least one shows the shared
            # session cache serves HTTP/2 connections too. (6 of 6 in another run.)
            later = list(conns.values())[1:]
            checks.check(later.count("r") >= 1,
                         f"h2-goaway: later connections resume the TLS session "
                         f"({later.count('r')} of {len(later)})")
            checks.eq(run.metric_sum("api_retries_total"), 0.0,
                      "h2-goaway: no fetch failed when the server ended its connections")

            # http.version=1.1 against the same server: no h2 offered by ALPN.
            t = time.monotonic()
            run = pipeline(args, checks, kafka, sim, front, work, "h2",
                           list(range(971001, 971061)), case="h2-as-1.1",
                           **{"http.version": "1.1"})
            log(f"h2-as-1.1: {time.monotonic() - t:.1f} s")
            check_protocol(checks, "h2-as-1.1", run, "HTTP/1.1", "1.1")

            # http.version=2 against a server without h2: HTTP/1.1, and a WARN.
            t = time.monotonic()
            run = pipeline(args, checks, kafka, sim, front, work, "h1",
                           list(range(972001, 972061)), case="h1-as-2",
                           **{"http.version": "2"})
            log(f"h1-as-2: {time.monotonic() - t:.1f} s")
            check_protocol(checks, "h1-as-2", run, "HTTP/1.1", "1.1")
            warns = [l for l in run.lines if l.get("level") == "warn"
                     and "HTTP/1.1" in l.get("msg", "") and "http.version" in l.get("msg", "")]
            checks.check(1 <= len(warns) <= 5,
                         f"h1-as-2: WARN: the API answered over HTTP/1.1 although http.version "
                         f"is 2 (once or rate-limited: {len(warns)} lines for "
                         f"{len(run.reqs)} responses)")
            checks.eq([l for l in protocol_lines(run) if l.get("level") == "info"], [],
                      "h1-as-2: ... instead of the INFO line")

            # http.version=2 over plain http://: HTTP/2 by prior knowledge (h2c).
            curl = libcurl_version(args.bin_dir)
            if curl < (8, 0, 0):
                # libcurl fails every request after the first on an h2c
                # connection ("Error in the HTTP2 framing layer", curl issue
                # 10634, fixed in 8.0.0): the worker refuses the setting.
                h2c_refused(args, checks, front, work, curl)
            else:
                t = time.monotonic()
                run = pipeline(args, checks, kafka, sim, front, work, "h2c",
                               list(range(973001, 973061)), case="h2c",
                               **{"http.version": "2"})
                log(f"h2c: {time.monotonic() - t:.1f} s")
                check_protocol(checks, "h2c", run, "HTTP/2.0", "2", tls=False)
        finally:
            front.stop()
            sim.stop()
    log(f"whole test: {time.monotonic() - t0:.1f} s")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
