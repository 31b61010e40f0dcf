"""A TLS-terminating reverse proxy in front of bsg-api-sim, for the HTTPS
tests: Debian's nginx (package nginx-light, installed by
scripts/install-deps.sh; its own service is not used) run as a child
process with a configuration of its own, on free ports of 127.0.0.1.

    front = TlsFront(workdir, sim.url).start()
    front.url("h2")       # https://127.0.0.1:P/ with HTTP/2 offered by ALPN
    front.url("h1")       # HTTP/1.1 only
    front.url("badname")  # a certificate for kafka.wrong.example only
    front.url("expired")  # a certificate for 127.0.0.1 that expired a day ago
    front.url("h1short")  # HTTP/1.1, each connection closed after 5 requests
                          # (new connections all along: TLS session reuse)
    front.url("h2short")  # HTTP/2, each connection ended (GOAWAY) after 40
                          # requests
    front.url("h2c")      # http://127.0.0.1:P/, no TLS: HTTP/2 by prior
                          # knowledge only (and HTTP/1.1)
    front.ca              # the CA that signed them (PEM)
    front.other_ca        # a CA that signed nothing here
    front.requests("h2")  # the access log: [{"proto": "HTTP/2.0", ...}]

The certificates come from scripts/kafka-pki.sh (openssl, EC P-256, made
fresh for each run; valid 2 days, but for expired.pem). Every server but h2,
h2short and h2c offers HTTP/1.1 only. The access log records per request the protocol, the
TLS version, "r" in `reused` when the connection resumed a TLS session
("." for a full handshake), nginx's connection serial number `conn`, and
when the request ended (`end`, epoch seconds) after how long (`time`).

The HTTPS tests (test_tls.py, test_http2.py) share helpers on top of it:

    run = pipeline(args, checks, kafka, sim, front, work, "h1", ids, case="h1")
    run.reqs       # what the server saw of this worker (access-log entries)
    run.metrics    # the worker's /metrics before SIGTERM (parse_metrics)
    run.metric("api_connections_total", "tls"), run.metric_sum(name),
    run.by_label(name)  # one sample, a sum over labels, {label: value}
    run.lines      # the worker's JSON log lines
    connections(run.reqs)  # {conn: reused} in the order nginx opened them
    most_in_flight(run.reqs)  # the most requests the server had at once
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

from harness import SCRIPTS_DIR, Proc, free_port, log, produce, wait_port
from pipeline import API_KEY, Worker, compare_with_truth, event, wait_reports, worker_config

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SERVERS = ("h2", "h1", "badname", "expired", "h1short", "h2short", "h2c")
SHORT_KEEPALIVE = 5  # requests per connection on h1short
H2_SHORT_KEEPALIVE = 40  # requests per connection on h2short
CERTS = {"badname": "badname.pem", "expired": "expired.pem"}  # else broker.pem


class TlsFront:
    def __init__(self, workdir: Path, upstream: str, name: str = "nginx") -> None:
        self.dir = Path(workdir) / name
        self.upstream = upstream.rstrip("/")
        self.name = name
        self.ports = {}
        self.proc = None

    @property
    def ca(self) -> Path:
        return self.dir / "pki" / "ca.pem"

    @property
    def other_ca(self) -> Path:
        return self.dir / "pki" / "other-ca.pem"

    def url(self, server: str) -> str:
        scheme = "http" if server == "h2c" else "https"
        return f"{scheme}://127.0.0.1:{self.ports[server]}"

    def start(self) -> "TlsFront":
        if not Path(NGINX).exists():
            raise RuntimeError("nginx not found: run scripts/install-deps.sh (nginx-light)")
        pki = self.dir / "pki"
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        res = subprocess.run([str(SCRIPTS_DIR / "kafka-pki.sh"), str(pki)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"kafka-pki.sh failed:\n{res.stdout[-2000:]}")
        self.ports = {s: free_port() for s in SERVERS}
        conf = self.dir / "nginx.conf"
        conf.write_text(self._conf(pki))
        self.proc = Proc([NGINX, "-p", str(self.dir), "-c", str(conf),
                          "-e", str(self.dir / "error.log")],
                         self.dir, name=self.name).start()
        for s, port in self.ports.items():
            if not wait_port("127.0.0.1", port, timeout=15):
                self.proc.print_tail()
                raise RuntimeError(f"nginx did not listen on {port} ({s})")
        return self

    def _conf(self, pki: Path) -> str:
        servers = []
        for s, port in self.ports.items():
            cert = pki / CERTS.get(s, "broker.pem")
            http2 = " http2" if s in ("h2", "h2short", "h2c") else ""
            tls = "" if s == "h2c" else f"""
        ssl_certificate {cert};
        ssl_certificate_key {cert};
        ssl_protocols TLSv1.2 TLSv1.3;"""
            short = (f"keepalive_requests {SHORT_KEEPALIVE};" if s == "h1short" else
                     f"keepalive_requests {H2_SHORT_KEEPALIVE};" if s == "h2short" else "")
            servers.append(f"""
    server {{
        listen 127.0.0.1:{port}{' ssl' if tls else ''}{http2};{tls}
        access_log {self.dir / (s + '.access.log')} brw;
        {short}
        location / {{
            proxy_pass {self.upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
    }}""")
        t = self.dir / "tmp"
        return f"""daemon off;
master_process off;
worker_processes 1;
pid {self.dir / 'nginx.pid'};
error_log {self.dir / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    log_format brw escape=json '{{"proto":"$server_protocol","tls":"$ssl_protocol",'
                               '"reused":"$ssl_session_reused","conn":"$connection",'
                               '"uri":"$request_uri","status":"$status",'
                               '"end":"$msec","time":"$request_time"}}';
    keepalive_requests 100000;
{''.join(servers)}
}}
"""

    def requests(self, server: str) -> list:
        path = self.dir / f"{server}.access.log"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self) -> None:
        if self.proc and self.proc.running():
            self.proc.terminate(timeout=10)


# -- the HTTPS tests' pipeline run ---------------------------------------

M = "bsg_report_worker_"


class ApiUrl:
    """What pipeline.worker_config reads of a Sim: its url."""

    def __init__(self, url: str) -> None:
        self.url = url


class Run:
    def __init__(self, reqs: list, metrics: dict, lines: list) -> None:
        self.reqs = reqs
        self.metrics = metrics
        self.lines = lines

    def metric(self, name: str, label=None) -> float:
        return self.metrics.get((M + name, label), 0.0)

    def metric_sum(self, name: str) -> float:
        """A labelled metric summed over its labels."""
        return sum(v for (n, _), v in self.metrics.items() if n == M + name)

    def by_label(self, name: str) -> dict:
        """{label value: value} of a labelled metric, zeros left out."""
        return {k[1]: v for k, v in self.metrics.items() if k[0] == M + name and v}


def connections(reqs: list) -> dict:
    """{conn: reused of its first request}, in the order nginx numbered the
    connections."""
    out: dict = {}
    for r in sorted(reqs, key=lambda r: int(r.get("conn") or 0)):
        out.setdefault(r["conn"], r["reused"])
    return out


def most_in_flight(reqs: list) -> int:
    """The most requests under way at the server at one time (from each
    request's end and duration, at nginx's millisecond resolution)."""
    edges = []
    for r in reqs:
        end = float(r["end"])
        edges += [(end - float(r["time"]), 1), (end, -1)]
    most = cur = 0
    for _, d in sorted(edges, key=lambda e: (e[0], e[1])):  # ends before starts
        cur += d
        most = max(most, cur)
    return most


def pipeline(args, checks, kafka, sim, front: TlsFront, work: Path, server: str,
             ids: list, case: str, **config) -> Run:
    """One worker reports `ids` through the front's `server` (http.ca_file =
    the front's CA, and `config`): every campaign reported equal to the
    simulator's truth, SIGTERM exit 0, no API key in its output (checked
    here). Returns what the server saw of it, its metrics before SIGTERM and
    its log."""
    bs = kafka.bootstrap
    topics = {k: f"tls.{case}.{k}" for k in ("input", "output", "dlq")}
    kafka.create_topics({topics["input"]: 2, topics["output"]: 1, topics["dlq"]: 1})
    produce(bs, topics["input"], [(str(c), event(c)) for c in ids])
    cfg = worker_config(bs, ApiUrl(front.url(server)), f"brw-e2e-tls-{case}", topics,
                        **{"http.ca_file": str(front.ca), "metrics.listen": "127.0.0.1:0",
                           **config})
    served = len(front.requests(server))  # by the earlier workers
    w = Worker(args.bin_dir, work, cfg, name=f"w-{case}").start()
    try:
        try:
            w.metrics_url()  # up, its configuration taken
        except RuntimeError as e:
            checks.fail(f"{case}: the worker runs", str(e))
            return Run([], {}, w.log_lines())
        finals = wait_reports(bs, topics["output"], set(ids), timeout=120)
        by_id = {r.json()["campaign_id"]: r.json() for r in finals}
        checks.eq(sorted(set(ids) - set(by_id))[:5], [], f"{case}: every campaign reported")
        wrong = [c for c, r in by_id.items() if compare_with_truth(r, sim.truth(c))]
        checks.eq(wrong[:5], [], f"{case}: reports equal the simulator's truth")
        metrics = w.scrape()
        w.proc.signal(signal.SIGTERM)
        checks.eq(w.proc.wait(timeout=60), 0, f"{case}: SIGTERM exit 0")
    finally:
        if w.proc.running():
            w.proc.print_tail()
            w.proc.kill()
    out = w.proc.stderr_text() + w.proc.stdout_text()
    checks.check(API_KEY not in out, f"{case}: no API key in the output")
    reqs = front.requests(server)[served:]
    log(f"{case}: {len(reqs)} requests, protocols {sorted({r['proto'] for r in reqs})}, "
        f"TLS {sorted({r['tls'] for r in reqs})}, {len(connections(reqs))} connections")
    return Run(reqs, metrics, w.log_lines())
