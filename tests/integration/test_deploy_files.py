"""The deployment files parse and say what they must: Dockerfile (statically;
test_image.py builds it with podman and runs the image's worker), .dockerignore, docker compose stack, Prometheus
config, alert rules, Grafana dashboard, Kubernetes manifests, KEDA
ScaledObject, systemd unit, JSON Schemas and the AsyncAPI document; the
environment they give the worker passes its own --check-config; every metric
they use is one the worker exports (checked against a running worker's
/metrics when it serves one). Needs no broker.

Run: /usr/bin/python3 tests/integration/test_deploy_files.py --bin-dir build
(Debian's python3-yaml and python3-jsonschema)."""

from __future__ import annotations

import base64
import binascii
import copy
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import REPO_ROOT, Checks, Proc, free_port, log, parse_args, run_main, wait_port  # noqa: E402
import schemas  # noqa: E402

try:
    import yaml
except ImportError:  # pragma: no cover
    yaml = None

ROOT = REPO_ROOT
DEPLOY = ROOT / "deploy"

YAML_FILES = [
    "deploy/docker-compose.yml",
    "deploy/prometheus.yml",
    "deploy/keda/scaledobject.yaml",
    "deploy/keda/scaledobject-kafka-lag.yaml",
    "deploy/alerts/bsg-report-worker.rules.yml",
    "schemas/asyncapi.yaml",
]
JSON_FILES = [
    "deploy/grafana/bsg-report-worker.json",
    "schemas/input-event.schema.json",
    "schemas/report.schema.json",
    "schemas/dlq-record.schema.json",
]

# The worker's metrics (all prefixed bsg_report_worker_): name -> (type,
# labels). The dashboard and the alert rules may use these and nothing else.
PREFIX = "bsg_report_worker_"
METRICS = {
    "events_consumed_total": ("counter", ["type"]),
    "events_invalid_total": ("counter", ["reason"]),
    "events_merged_total": ("counter", []),
    "events_skipped_total": ("counter", []),
    "events_late_total": ("counter", []),
    "campaigns_tracked": ("gauge", []),
    "api_requests_total": ("counter", ["class"]),
    "api_request_duration_seconds": ("histogram", []),
    "api_logins_total": ("counter", []),
    "api_login_failures_total": ("counter", []),
    "api_refreshes_total": ("counter", []),
    "api_retries_total": ("counter", ["class"]),
    "campaign_status_unknown_total": ("counter", []),
    "reports_published_total": ("counter", ["outcome"]),
    "progress_reports_total": ("counter", []),
    "dlq_records_total": ("counter", ["reason"]),
    "polls_per_campaign": ("histogram", []),
    "polls_scheduled_total": ("counter", ["basis"]),
    "report_delay_seconds": ("histogram", []),
    "partitions_assigned": ("gauge", []),
    "partitions_paused": ("gauge", []),
    "consumption_paused": ("gauge", []),
    "commits_total": ("counter", []),
    "commit_failures_total": ("counter", []),
    "producer_queue_records": ("gauge", []),
    "consumer_lag_messages": ("gauge", []),
    "kafka_brokers_up": ("gauge", []),
    "accounts_rejected": ("gauge", []),
    "build_info": ("gauge", ["version"]),
    "records_refused_total": ("counter", ["kind"]),
    "dlq_records_dropped_total": ("counter", []),
    "blocked": ("gauge", ["reason"]),
    "blocked_total": ("counter", ["reason"]),
    "event_loop_lag_seconds": ("gauge", []),
    "librdkafka_info": ("gauge", ["version"]),
    "libcurl_info": ("gauge", ["version"]),
    "libuv_info": ("gauge", ["version"]),
    "jansson_info": ("gauge", ["version"]),
    "api_calls_total": ("counter", ["endpoint"]),
    "sweep_pages_total": ("counter", ["result"]),
    "sweep_page_campaigns": ("histogram", []),
    "sweep_fallbacks_total": ("counter", ["reason"]),
    "backlog_events": ("gauge", []),
    "campaigns_due": ("gauge", []),
    "backlog": ("gauge", []),
}
# Metrics from elsewhere that rules and panels may select.
FOREIGN_METRICS = {"up"}

REQUIRED_ALERTS = {
    "BsgReportWorkerDown",
    "BsgReportWorkerNotReady",
    "BsgReportWorkerConsumptionPaused",
    "BsgReportWorkerDlqRateHigh",
    "BsgReportWorkerApiErrorRatioHigh",
    "BsgReportWorkerReportDelayHigh",
    "BsgReportWorkerCommitFailures",
    "BsgReportWorkerConsumerLagGrowing",
    "BsgReportWorkerAccountKeyRejected",
}

# Debian 12 (bookworm) package names the Dockerfile may install; checked
# with `apt-cache policy` when this list was written (no network here).
DEBIAN12_PACKAGES = {
    "build-essential", "cmake", "pkg-config", "librdkafka-dev",
    "libcurl4-openssl-dev", "libuv1-dev", "libjansson-dev",
    "libmicrohttpd-dev", "libcmocka-dev", "librdkafka1", "libcurl4",
    "libuv1", "libjansson4", "libmicrohttpd12", "ca-certificates", "curl",
    "tini", "libyajl-dev", "libyajl2", "tzdata",
    # building librdkafka from Debian's source package (scripts/rdkafka.sh),
    # and what its library links at run time (apt-cache policy, 2026-12)
    "dpkg-dev", "debian-archive-keyring", "libssl-dev", "libsasl2-dev",
    "zlib1g-dev", "libzstd-dev", "liblz4-dev",
    "libssl3", "libsasl2-2", "zlib1g", "libzstd1", "liblz4-1",
    # zlib1g-dev and zlib1g are also the worker's own (src/pack.c).
}
# The image builds the current librdkafka line (scripts/rdkafka.sh), not
# Debian 12's librdkafka-dev: its build dependencies instead.
BUILD_PACKAGES = {"build-essential", "cmake", "pkg-config",
                  "libcurl4-openssl-dev", "libuv1-dev", "libjansson-dev",
                  "libmicrohttpd-dev", "libyajl-dev",
                  "dpkg-dev", "libssl-dev", "libsasl2-dev", "zlib1g-dev",
                  "libzstd-dev", "liblz4-dev"}
RUNTIME_PACKAGES = {"libcurl4", "libuv1", "libjansson4",
                    "libmicrohttpd12", "libyajl2", "ca-certificates",
                    "tzdata", "libssl3", "libsasl2-2", "zlib1g", "libzstd1",
                    "liblz4-1"}

# SPEC §4's example report, as written there. Its elided values ("…") stand
# for times in the time fields; filled_spec_example() puts real ones there.
SPEC_EXAMPLE = {
    "schema": "bsg.campaign.report.v1",
    "campaign_id": 53651994,
    "account": "default",
    "final": True,
    "outcome": "done",
    "campaign": {
        "name": "…", "sender": "…", "type": "sms", "status": "done",
        "started_at": "2026-11-27T10:00:00Z", "actual_start_at": "…",
        "created_at": "…", "finished_at": "…",
        "statistics": {"delivered": 7, "undelivered": 3, "…": 0},
        "total_messages": 10, "total_phones": 10,
        "total_price": "0.16", "currency": "USD",
    },
    "metrics": {"delivery_rate": 0.7, "failure_rate": 0.3, "pending": 0,
                "duration_seconds": 541},
    "tracking": {"events": 2, "polls": 5, "first_event_at": "…",
                 "reported_at": "…",
                 "source": {"topic": "…", "partition": 0, "offset": 41}},
    "worker": {"version": "…", "instance": "…"},
}
SPEC_EXAMPLE_TIMES = {
    ("campaign", "actual_start_at"): "2026-11-27T10:00:05Z",
    ("campaign", "created_at"): "2026-11-27T09:00:00Z",
    ("campaign", "finished_at"): "2026-11-27T10:09:06Z",
    ("tracking", "first_event_at"): "2026-11-27T09:59:00Z",
    ("tracking", "reported_at"): "2026-11-27T10:09:10Z",
}


def filled_spec_example() -> dict:
    r = copy.deepcopy(SPEC_EXAMPLE)
    for (obj, field), t in SPEC_EXAMPLE_TIMES.items():
        r[obj][field] = t
    return r


# ---------------------------------------------------------------------------
# Small parsers


def parse_duration_s(text: str) -> float:
    """Seconds of a worker duration ("30s", "1.5m", "250ms", "0")."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*", str(text))
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    n, unit = float(m.group(1)), m.group(2) or "s"
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def parse_systemd_time_s(text: str) -> float:
    """Seconds of a systemd time span ("60", "90s", "2min", "1min 30s")."""
    units = {"": 1, "s": 1, "sec": 1, "second": 1, "seconds": 1, "ms": 0.001, "m": 60,
             "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600,
             "hours": 3600}
    total, pos = 0.0, 0
    text = text.strip()
    for m in re.finditer(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-z]*)", text):
        if m.start() != pos:
            raise ValueError(f"bad time span {text!r}")
        if m.group(2) not in units:
            raise ValueError(f"bad unit in {text!r}")
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad time span {text!r}")
    return total


def parse_unit_file(text: str) -> dict:
    """A systemd unit as {section: [(key, value), ...]} (keys may repeat)."""
    out: dict = {}
    section = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if m:
            section = m.group(1)
            out.setdefault(section, [])
            continue
        if "=" not in line or section is None:
            raise ValueError(f"unit file line {i}: {line!r}")
        k, v = line.split("=", 1)
        out[section].append((k.strip(), v.strip()))
    return out


def unit_get(unit: dict, section: str, key: str):
    vals = [v for k, v in unit.get(section, []) if k == key]
    return vals[-1] if vals else None


def dockerfile_instructions(text: str) -> list:
    """[(INSTRUCTION, args)] with line continuations joined and comment lines
    (also inside a continuation) dropped, as Docker reads them."""
    out = []
    cur = None
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("#") or (not s and cur is None):
            continue
        if not s:
            continue
        if cur is None:
            cur = s
        else:
            cur += " " + s
        if cur.endswith("\\"):
            cur = cur[:-1].rstrip()
            continue
        parts = cur.split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
        cur = None
    if cur is not None:
        parts = cur.split(None, 1)
        out.append((parts[0].upper(), parts[1] if len(parts) > 1 else ""))
    return out


def apt_installs(run_args: str) -> list:
    """Package names of every `apt-get install` in a RUN command."""
    pkgs = []
    for seg in re.split(r"&&|;|\|\|", run_args):
        toks = seg.split()
        if "apt-get" in toks and "install" in toks:
            for t in toks[toks.index("install") + 1:]:
                if not t.startswith("-"):
                    pkgs.append(t)
    return pkgs


def docker_env_pairs(args: str) -> dict:
    """ENV k=v [k=v...] (or the legacy `ENV k v`)."""
    out = {}
    if "=" not in args.split()[0]:
        k, v = args.split(None, 1)
        return {k: v.strip().strip('"')}
    for m in re.finditer(r'([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S+)', args):
        out[m.group(1)] = m.group(2).strip('"')
    return out


def promql_metric_names(expr: str) -> tuple[set, set]:
    """(metric-like names used in a PromQL expression, names used as
    selectors with {}). Strings, label matchers, ranges and Grafana
    variables are removed first."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\$\{?\w+\}?", "1m", e)
    e = re.sub(r"\{[^{}]*\}", "{}", e)
    e = re.sub(r"\[[^\[\]]*\]", "[]", e)
    names = set(re.findall(r"\b(" + PREFIX + r"[a-zA-Z0-9_:]*)", e))
    selectors = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{\}", e))
    bare_foreign = {t for t in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", e) if t in FOREIGN_METRICS}
    return names, selectors | bare_foreign


def known_metric(name: str) -> bool:
    """name is a listed metric (a histogram also as _bucket/_sum/_count)."""
    if not name.startswith(PREFIX):
        return name in FOREIGN_METRICS
    short = name[len(PREFIX):]
    if short in METRICS:
        return True
    for suf in ("_bucket", "_sum", "_count"):
        if short.endswith(suf) and METRICS.get(short[: -len(suf)], ("",))[0] == "histogram":
            return True
    return False


def base_metric(name: str) -> str:
    short = name[len(PREFIX):]
    for suf in ("_bucket", "_sum", "_count"):
        if short.endswith(suf) and METRICS.get(short[: -len(suf)], ("",))[0] == "histogram":
            return short[: -len(suf)]
    return short


def balanced(expr: str) -> bool:
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    for ch in e:
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs:
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack


def compose_interpolate(value: str) -> str:
    """${VAR:-default} / ${VAR-default} / ${VAR} with an empty environment,
    as docker compose would on a machine that sets none of them; $$ -> $."""
    def sub(m):
        inner = m.group(1)
        mm = re.fullmatch(r"(\w+)(:?-)(.*)", inner)
        return mm.group(3) if mm else ""
    v = re.sub(r"\$\{([^}]*)\}", sub, str(value))
    return v.replace("$$", "$")


def compose_env(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: compose_interpolate(v) for k, v in env.items()}


def check_config(bin_dir: Path, env: dict, args=()) -> tuple[int, dict, str]:
    """Runs bsg-report-worker --check-config with only env (and PATH);
    returns (exit code, {key: value} of the effective config, stderr)."""
    exe = bin_dir / "bsg-report-worker"
    full = {"PATH": "/usr/bin:/bin"}
    full.update({k: str(v) for k, v in env.items()})
    res = subprocess.run([str(exe), *args, "--check-config"], env=full, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, timeout=30)
    cfg = {}
    for line in res.stdout.splitlines():
        if " = " in line:
            k, v = line.split(" = ", 1)
            cfg[k.strip()] = v.strip().strip('"')
    return res.returncode, cfg, res.stderr.strip()


# ---------------------------------------------------------------------------
# The checks, one function per file family


class Ctx:
    def __init__(self, args, checks: Checks) -> None:
        self.args = args
        self.c = checks
        self.docs: dict = {}       # path -> [yaml documents] or json object
        self.notes: list = []
        self.have_bin = (args.bin_dir / "bsg-report-worker").is_file()

    def note(self, text: str) -> None:
        """Something not checked, said once in the output (not a PASS)."""
        print(f"NOTE: {text}", flush=True)
        self.notes.append(text)


def check_parse(ctx: Ctx) -> None:
    c = ctx.c
    if not c.check(yaml is not None, "python3-yaml is importable"):
        return
    files = YAML_FILES + sorted(str(p.relative_to(ROOT)) for p in (DEPLOY / "k8s").glob("*.yaml"))
    c.check(len(files) > len(YAML_FILES), "deploy/k8s has manifests")
    for rel in files:
        try:
            with open(ROOT / rel, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            ctx.docs[rel] = docs
            c.check(len(docs) >= 1 and all(isinstance(d, dict) for d in docs), f"{rel} parses as YAML mappings")
        except (OSError, yaml.YAMLError) as e:
            c.fail(f"{rel} parses as YAML", str(e).splitlines()[0] if str(e) else repr(e))
    for rel in JSON_FILES:
        try:
            with open(ROOT / rel, encoding="utf-8") as f:
                ctx.docs[rel] = json.load(f)
            c.check(isinstance(ctx.docs[rel], dict), f"{rel} parses as a JSON object")
        except (OSError, ValueError) as e:
            c.fail(f"{rel} parses as JSON", str(e))


def check_dockerfile(ctx: Ctx) -> None:
    c = ctx.c
    path = ROOT / "Dockerfile"
    ins = dockerfile_instructions(path.read_text())
    stages = []
    global_args = {}  # ARGs before the first FROM, which FROM lines may use
    for name, args in ins:
        if name == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.I)
            image = m.group(1) if m else args
            # ${NAME} and $NAME from a global ARG's default, as Docker does.
            image = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                           lambda v: global_args.get(v.group(1) or v.group(2), v.group(0)), image)
            stages.append({"image": image, "name": (m.group(2) if m else None), "ins": []})
        elif stages:
            stages[-1]["ins"].append((name, args))
        elif name == "ARG":
            k, _, v = args.partition("=")
            global_args[k.strip()] = v.strip().strip('"')
    c.check(len(stages) >= 2, "Dockerfile: multi-stage", f"{len(stages)} stage(s)")
    if len(stages) < 2:
        return
    c.eq(sorted({s["image"] for s in stages}), ["debian:12-slim"],
         "Dockerfile: every stage is FROM debian:12-slim (by default)")
    build, final = stages[0], stages[-1]
    c.check(bool(build["name"]), "Dockerfile: the build stage is named")

    def of(stage, kind):
        return [a for n, a in stage["ins"] if n == kind]

    # Packages
    all_runs = [a for s in stages for a in of(s, "RUN")]
    build_pkgs = {p for a in of(build, "RUN") for p in apt_installs(a)}
    final_pkgs = {p for a in of(final, "RUN") for p in apt_installs(a)}
    every = build_pkgs | final_pkgs
    c.check(every <= DEBIAN12_PACKAGES, "Dockerfile: every apt package exists in Debian 12",
            f"unknown: {sorted(every - DEBIAN12_PACKAGES)}")
    c.check(BUILD_PACKAGES <= build_pkgs, "Dockerfile: build stage installs the build packages",
            f"missing: {sorted(BUILD_PACKAGES - build_pkgs)}")
    c.check(RUNTIME_PACKAGES <= final_pkgs, "Dockerfile: runtime stage installs the runtime libraries",
            f"missing: {sorted(RUNTIME_PACKAGES - final_pkgs)}")
    c.check(not any(p.endswith("-dev") or p in {"build-essential", "cmake"} for p in final_pkgs),
            "Dockerfile: runtime stage installs no build tools or -dev packages", f"{sorted(final_pkgs)}")
    c.check(all("--no-install-recommends" in a and "/var/lib/apt/lists" in a
                for a in all_runs if "apt-get install" in a),
            "Dockerfile: apt-get install uses --no-install-recommends and cleans the lists")
    c.check("scripts/install-deps.sh" not in " ".join(all_runs),
            "Dockerfile: does not run install-deps.sh (it brings the test tools)")

    # Build: the flags of scripts/test.sh's -Werror build, tests off.
    build_run = " ".join(of(build, "RUN"))
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    m = re.search(r'cmake -S "\$root" -B "\$build" ([^\n]*)', test_sh)
    flags = m.group(1).split() if m else []
    c.check(bool(flags) and all(f in build_run for f in flags),
            "Dockerfile: builds with scripts/test.sh's -Werror flags", f"flags {flags}")
    c.check("-DBRW_TESTS=OFF" in build_run, "Dockerfile: builds with -DBRW_TESTS=OFF")
    for a in of(build, "COPY") + of(final, "COPY"):
        if a.startswith("--from"):
            continue
        srcs = a.split()[:-1]
        c.check(all((ROOT / s.rstrip("/")).exists() for s in srcs),
                f"Dockerfile: COPY sources exist ({' '.join(srcs)})")

    # The build context the build stage copies is enough to configure the
    # project with the tests off (nothing outside it is referenced).
    import shutil, tempfile  # noqa: E401, PLC0415
    with tempfile.TemporaryDirectory() as tmp:
        for a in of(build, "COPY"):
            if a.startswith("--from"):
                continue
            for src in a.split()[:-1]:
                p = ROOT / src.rstrip("/")
                if p.is_dir():
                    shutil.copytree(p, Path(tmp) / p.name)
                else:
                    shutil.copy(p, Path(tmp) / p.name)
        res = subprocess.run(["cmake", "-S", tmp, "-B", str(Path(tmp) / "build"),
                              "-DBRW_TESTS=OFF"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=120)
        c.check(res.returncode == 0,
                "Dockerfile: the copied build context configures with the tests off",
                res.stdout[-400:])

    # Runtime
    copies = of(final, "COPY")
    c.check(any(a.startswith(f"--from={build['name']}") for a in copies),
            "Dockerfile: runtime copies the binaries from the build stage")
    c.check(any("bsg-report-worker" in a and "bsg-api-sim" in a for a in copies if a.startswith("--from")),
            "Dockerfile: runtime has bsg-report-worker and bsg-api-sim")
    users = of(final, "USER")
    user = users[-1].split(":")[0] if users else ""
    c.check(bool(users) and user not in ("root", "0"), "Dockerfile: runtime USER is not root", f"USER {users}")
    c.eq(user, "10001", "Dockerfile: runtime runs as uid 10001")
    c.check("10001" in " ".join(of(final, "RUN")), "Dockerfile: user with uid 10001 created")
    hc = of(final, "HEALTHCHECK")
    c.check(bool(hc) and "/healthz" in hc[-1] and "CMD" in hc[-1], "Dockerfile: HEALTHCHECK on /healthz")
    if hc and "curl" in hc[-1]:
        c.check("curl" in final_pkgs, "Dockerfile: curl installed for the HEALTHCHECK")
    c.check(any("9464" in a.split() for a in of(final, "EXPOSE")), "Dockerfile: EXPOSE 9464")
    env = {}
    for a in of(final, "ENV"):
        env.update(docker_env_pairs(a))
    c.eq(env.get("BRW_METRICS_LISTEN"), "0.0.0.0:9464", "Dockerfile: ENV BRW_METRICS_LISTEN=0.0.0.0:9464")
    labels = " ".join(of(final, "LABEL"))
    for key in ("title", "description", "source", "version"):
        c.check(f"org.opencontainers.image.{key}=" in labels, f"Dockerfile: OCI label {key}")
    c.check('org.opencontainers.image.version="${VERSION}"' in labels, "Dockerfile: version label from ARG VERSION")
    args = {}
    for s in stages:
        for a in of(s, "ARG"):
            k, _, v = a.partition("=")
            args[k.strip()] = v.strip().strip('"')
    cm = re.search(r"project\(\s*bsg-report-worker\s+VERSION\s+([0-9.]+)", (ROOT / "CMakeLists.txt").read_text())
    c.eq(args.get("VERSION"), cm.group(1) if cm else None, "Dockerfile: ARG VERSION default is the CMake project version")
    ep = of(final, "ENTRYPOINT")
    try:
        ep_list = json.loads(ep[-1]) if ep else None
    except ValueError:
        ep_list = None
    c.check(isinstance(ep_list, list) and ep_list[:1] == ["/usr/local/bin/bsg-report-worker"],
            "Dockerfile: exec-form ENTRYPOINT runs the worker (PID 1 gets SIGTERM)")
    c.check(not any(re.match(r"\s*https?://", a) for s in stages for a in of(s, "ADD")),
            "Dockerfile: no ADD of a URL")

    # librdkafka: the pinned current line, built the way install-deps.sh
    # builds it (scripts/rdkafka.sh), its .so copied to the same prefix.
    cmv = re.search(r'set\(BRW_RDKAFKA_CURRENT_VERSION "([0-9.]+)"\)',
                    (ROOT / "CMakeLists.txt").read_text())
    pinned = cmv.group(1) if cmv else "?"
    prefix = f"/opt/librdkafka-{pinned}"
    c.check(bool(cmv), "CMakeLists.txt pins BRW_RDKAFKA_CURRENT_VERSION")
    c.check(any("rdkafka.sh" in a and f"BRW_RDKAFKA_PREFIX={prefix}" in a for a in of(build, "RUN")),
            f"Dockerfile: build stage runs scripts/rdkafka.sh into {prefix}")
    c.check(any("scripts/rdkafka.sh" in a for a in of(build, "COPY")),
            "Dockerfile: build stage copies scripts/rdkafka.sh")
    c.check(f"-DBRW_RDKAFKA_PREFIX={prefix}" in build_run and "-DBRW_RDKAFKA=system" not in build_run,
            f"Dockerfile: the worker builds against {prefix}")
    so_copied = any(a.startswith(f"--from={build['name']}") and f"{prefix}/lib/librdkafka.so.1" in a
                    and a.split()[-1].rstrip("/") == f"{prefix}/lib" for a in copies)
    c.check(so_copied, f"Dockerfile: runtime copies librdkafka.so.1 to {prefix}/lib (the RUNPATH)")
    c.check("librdkafka1" not in final_pkgs,
            "Dockerfile: runtime does not install Debian's librdkafka1 (2.0.2) as well")
    check_runtime_libs(ctx, final_pkgs, so_copied)


def check_runtime_libs(ctx: Ctx, final_pkgs: set, rdkafka_copied: bool) -> None:
    """Each shared library the built binaries link directly comes from a
    package the runtime stage installs (or libc6, in the base image); a
    librdkafka.so.1 from the current line's prefix (no package) must be
    copied by the runtime stage, and what it links must come from packages
    the runtime stage installs. Uses readelf and dpkg on this Debian 12
    machine."""
    c = ctx.c
    if not ctx.have_bin:
        c.fail("runtime libraries: binaries built", f"no bsg-report-worker in {ctx.args.bin_dir}")
        return
    if not shutil.which("readelf") or not shutil.which("dpkg-query"):
        ctx.note("readelf or dpkg missing: the runtime library check did not run")
        return
    missing = {}
    objects = [ctx.args.bin_dir / "bsg-report-worker", ctx.args.bin_dir / "bsg-api-sim"]
    seen = set()
    while objects:
        exe = objects.pop(0)
        name = exe.name
        if str(exe) in seen:
            continue
        seen.add(str(exe))
        if not exe.is_file():
            c.fail(f"runtime libraries: {name} built")
            continue
        needed = re.findall(r"\(NEEDED\).*\[(.+?)\]", subprocess.run(
            ["readelf", "-d", str(exe)], stdout=subprocess.PIPE, text=True).stdout)
        ldd = subprocess.run(["ldd", str(exe)], stdout=subprocess.PIPE, text=True).stdout
        paths = dict(re.findall(r"^\s*(\S+) => (\S+)", ldd, re.M))
        for so in needed:
            p = paths.get(so)
            if so == "librdkafka.so.1" and p and "/rdkafka-" in p:
                # The current line, built by scripts/rdkafka.sh: no package.
                if not rdkafka_copied:
                    missing[so] = "built by scripts/rdkafka.sh, not copied into the runtime stage"
                objects.append(Path(os.path.realpath(p)))
                continue
            if so.startswith("ld-linux"):
                continue  # the dynamic loader (libc6), which ldd lists without "=>"
            pkg = None
            if p:
                for cand in {p, os.path.realpath(p), re.sub(r"^/usr/lib", "/lib", p),
                             re.sub(r"^/lib", "/usr/lib", p)}:
                    r = subprocess.run(["dpkg-query", "-S", cand], stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, text=True)
                    if r.returncode == 0 and r.stdout:
                        pkg = r.stdout.split(":")[0].strip()
                        break
            if pkg is None:
                missing[so] = "no package found"
            elif pkg != "libc6" and pkg not in final_pkgs:
                missing[so] = pkg
    c.check(not missing, "Dockerfile: runtime stage has the package of every linked library",
            f"{missing}")


def check_dockerignore(ctx: Ctx) -> None:
    c = ctx.c
    path = ROOT / ".dockerignore"
    if not c.check(path.is_file(), ".dockerignore exists"):
        return
    pats = [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]

    def ignored(rel: str) -> bool:
        hit = False
        for p in pats:
            neg = p.startswith("!")
            pat = p[1:] if neg else p
            if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel.split("/")[0], pat):
                hit = not neg
        return hit

    c.check(all(ignored(x) for x in (".git", "build", "build-asan")), ".dockerignore: .git and build trees out")
    needed = ["CMakeLists.txt", "include", "src", "deploy/bsg-report-worker.conf.example"]
    c.check(not any(ignored(x) for x in needed), ".dockerignore: keeps what the Dockerfile copies",
            f"{[x for x in needed if ignored(x)]}")


def check_compose(ctx: Ctx) -> None:
    c = ctx.c
    docs = ctx.docs.get("deploy/docker-compose.yml")
    if not docs:
        return
    comp = docs[0]
    svcs = comp.get("services") or {}
    for s in ("kafka", "simulator", "worker", "prometheus"):
        c.check(s in svcs, f"compose: service {s}")
    if not all(s in svcs for s in ("kafka", "simulator", "worker", "prometheus")):
        return
    kafka, sim, worker, prom = svcs["kafka"], svcs["simulator"], svcs["worker"], svcs["prometheus"]
    c.eq(kafka.get("image"), "apache/kafka:4.1.1", "compose: Kafka image apache/kafka:4.1.1")
    kenv = {k: str(v) for k, v in (kafka.get("environment") or {}).items()}
    c.check(set(kenv.get("KAFKA_PROCESS_ROLES", "").split(",")) == {"broker", "controller"},
            "compose: Kafka is a KRaft broker+controller")
    cid = kenv.get("CLUSTER_ID", "")
    try:
        ok = len(base64.urlsafe_b64decode(cid + "==")) == 16 and len(cid) == 22
    except (binascii.Error, ValueError):
        ok = False
    c.check(ok, "compose: CLUSTER_ID is a base64 UUID", cid)
    b = worker.get("build") or {}
    ctx_dir = (DEPLOY / b.get("context", ".")).resolve()
    c.check(ctx_dir == ROOT and (ctx_dir / b.get("dockerfile", "Dockerfile")).is_file(),
            "compose: worker built from the repository's Dockerfile")
    c.check(sim.get("image") == worker.get("image") and sim.get("image"),
            "compose: simulator runs the worker's image")
    ep = sim.get("entrypoint") or []
    ep = ep.split() if isinstance(ep, str) else ep
    c.check(bool(ep) and ep[0].endswith("bsg-api-sim") and "--listen" in ep
            and ep[ep.index("--listen") + 1] == "0.0.0.0:8080",
            "compose: simulator entrypoint bsg-api-sim --listen 0.0.0.0:8080")
    wenv = compose_env(worker)
    adv = kenv.get("KAFKA_ADVERTISED_LISTENERS", "")
    brokers = wenv.get("BRW_BROKERS", "")
    c.check(bool(brokers) and f"//{brokers}" in adv, "compose: worker's BRW_BROKERS is Kafka's advertised listener",
            f"{brokers} vs {adv}")
    c.eq(wenv.get("BRW_API_URL"), "http://simulator:8080", "compose: worker talks to the simulator by default")
    c.check(wenv.get("BRW_METRICS_LISTEN", "0.0.0.0:9464").startswith("0.0.0.0:"),
            "compose: worker's endpoints listen on every address")
    grace = worker.get("stop_grace_period")
    sd = parse_duration_s(wenv.get("BRW_SHUTDOWN_TIMEOUT", "30s"))
    c.check(grace is not None and parse_duration_s(str(grace)) > sd,
            "compose: worker stop_grace_period > shutdown.timeout", f"{grace} vs {sd} s")
    init = svcs.get("kafka-init") or {}
    cmd = json.dumps(init.get("command", ""))
    c.check("bsg.campaign.events:12" in cmd or re.search(r"bsg\.campaign\.events\b.*--partitions 12", cmd),
            "compose: input topic created with 12 partitions")
    c.check(str(prom.get("image", "")).startswith("prom/prometheus"), "compose: Prometheus image prom/prometheus")
    mounts = {}
    for v in prom.get("volumes") or []:
        parts = v.split(":")
        if len(parts) >= 2:
            mounts[parts[1]] = (DEPLOY / parts[0]).resolve()
    pconf = mounts.get("/etc/prometheus/prometheus.yml")
    c.check(pconf == (DEPLOY / "prometheus.yml").resolve(), "compose: Prometheus uses deploy/prometheus.yml")
    pdocs = ctx.docs.get("deploy/prometheus.yml")
    if pdocs:
        for rf in pdocs[0].get("rule_files") or []:
            src = mounts.get(rf)
            c.check(src is not None and src.is_file() and src.name == "bsg-report-worker.rules.yml",
                    f"compose: rule file {rf} is mounted from deploy/alerts")
    ctx.compose_worker_env = wenv


def check_prometheus(ctx: Ctx) -> None:
    c = ctx.c
    docs = ctx.docs.get("deploy/prometheus.yml")
    if not docs:
        return
    p = docs[0]
    c.check(bool(p.get("rule_files")), "prometheus.yml: loads rule files")
    jobs = {j.get("job_name"): j for j in p.get("scrape_configs") or []}
    job = jobs.get("bsg-report-worker")
    if not c.check(job is not None, "prometheus.yml: scrape job bsg-report-worker"):
        return
    targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
    targets += [f"{n}:{d.get('port')}" for d in job.get("dns_sd_configs") or [] for n in d.get("names") or []]
    c.check("worker:9464" in targets, "prometheus.yml: scrapes the compose worker on 9464", f"{targets}")
    c.check(job.get("metrics_path", "/metrics") == "/metrics", "prometheus.yml: metrics path /metrics")


def k8s_docs(ctx: Ctx) -> list:
    out = []
    for rel, docs in ctx.docs.items():
        if rel.startswith("deploy/k8s/"):
            out += [(rel, d) for d in docs]
    return out


def labels_match(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_k8s(ctx: Ctx) -> None:
    c = ctx.c
    docs = k8s_docs(ctx)
    by_kind: dict = {}
    for rel, d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
        c.check("namespace" not in (d.get("metadata") or {}), f"k8s: {rel} {d.get('kind')} is namespace-agnostic")
    for kind in ("Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Service"):
        c.check(len(by_kind.get(kind, [])) == 1, f"k8s: one {kind}")
    if not all(by_kind.get(k) for k in ("Deployment", "ConfigMap", "Secret", "PodDisruptionBudget", "Service")):
        return
    dep, cm, sec = by_kind["Deployment"][0], by_kind["ConfigMap"][0], by_kind["Secret"][0]
    pdb, svc = by_kind["PodDisruptionBudget"][0], by_kind["Service"][0]
    c.eq(dep.get("apiVersion"), "apps/v1", "k8s: Deployment apps/v1")
    spec = dep.get("spec") or {}
    c.eq(spec.get("replicas"), 3, "k8s: Deployment has 3 replicas")
    tpl = spec.get("template") or {}
    tlabels = (tpl.get("metadata") or {}).get("labels") or {}
    sel = (spec.get("selector") or {}).get("matchLabels") or {}
    c.check(labels_match(sel, tlabels), "k8s: Deployment selector matches its pod labels")
    pod = tpl.get("spec") or {}
    ctrs = pod.get("containers") or []
    if not c.check(len(ctrs) == 1, "k8s: one container"):
        return
    ctr = ctrs[0]
    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
    c.check(9464 in ports.values(), "k8s: container port 9464")

    def probe_port(pr):
        port = ((pr or {}).get("httpGet") or {}).get("port")
        return ports.get(port, port)

    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        pr = ctr.get(probe) or {}
        c.check(((pr.get("httpGet") or {}).get("path") == path) and probe_port(pr) == 9464,
                f"k8s: {probe} GET {path} on 9464")
    res = ctr.get("resources") or {}
    c.check(all(k in (res.get("requests") or {}) for k in ("cpu", "memory"))
            and "memory" in (res.get("limits") or {}), "k8s: resource requests and limits")
    psc, csc = pod.get("securityContext") or {}, ctr.get("securityContext") or {}
    c.check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "k8s: runAsNonRoot")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    c.check(isinstance(uid, int) and uid != 0, "k8s: runs as a non-zero uid", f"{uid}")
    c.check(csc.get("readOnlyRootFilesystem") is True, "k8s: read-only root filesystem")
    c.check(csc.get("allowPrivilegeEscalation") is False, "k8s: no privilege escalation")
    c.check("ALL" in ((csc.get("capabilities") or {}).get("drop") or []), "k8s: drops all capabilities")
    env_from = ctr.get("envFrom") or []
    cm_name = (cm.get("metadata") or {}).get("name")
    sec_name = (sec.get("metadata") or {}).get("name")
    c.check(any((e.get("configMapRef") or {}).get("name") == cm_name for e in env_from),
            "k8s: env from the ConfigMap")
    c.check(any((e.get("secretRef") or {}).get("name") == sec_name for e in env_from),
            "k8s: env from the Secret")
    env = {e.get("name"): e for e in ctr.get("env") or []}
    gi = env.get("BRW_KAFKA_CONSUMER_GROUP_INSTANCE_ID") or {}
    c.eq(((gi.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"), "metadata.name",
         "k8s: BRW_KAFKA_CONSUMER_GROUP_INSTANCE_ID is the pod name (downward API)")
    data = {k: str(v) for k, v in (cm.get("data") or {}).items()}
    c.check(data and all(k.startswith("BRW_") for k in data), "k8s: ConfigMap holds BRW_* settings")
    c.check(not any(re.search(r"KEY|PASSWORD|SECRET|TOKEN", k) for k in data),
            "k8s: ConfigMap holds no secret")
    sdata = sec.get("stringData") or {}
    c.check("BSG_API_KEY" in sdata, "k8s: Secret has BSG_API_KEY")
    c.check(not re.fullmatch(r"(live|test)_[A-Za-z0-9]{8,}", str(sdata.get("BSG_API_KEY", ""))) and
            "REPLACE" in str(sdata.get("BSG_API_KEY", "")).upper(),
            "k8s: Secret's key is a placeholder")
    tg = pod.get("terminationGracePeriodSeconds")
    sd = parse_duration_s(data.get("BRW_SHUTDOWN_TIMEOUT", "30s"))
    c.check(isinstance(tg, int) and tg > sd, "k8s: terminationGracePeriodSeconds > shutdown.timeout",
            f"{tg} vs {sd} s")
    pspec = pdb.get("spec") or {}
    c.eq(pdb.get("apiVersion"), "policy/v1", "k8s: PodDisruptionBudget policy/v1")
    c.eq(pspec.get("maxUnavailable"), 1, "k8s: PodDisruptionBudget maxUnavailable 1")
    c.check(labels_match((pspec.get("selector") or {}).get("matchLabels"), tlabels),
            "k8s: PodDisruptionBudget selects the worker pods")
    sspec = svc.get("spec") or {}
    c.check(labels_match(sspec.get("selector"), tlabels), "k8s: Service selects the worker pods")
    sports = sspec.get("ports") or []
    c.check(any(p.get("port") == 9464 and ports.get(p.get("targetPort"), p.get("targetPort")) == 9464
                for p in sports), "k8s: Service exposes metrics on 9464")
    for sm in by_kind.get("ServiceMonitor", []):
        ep = ((sm.get("spec") or {}).get("endpoints") or [{}])[0]
        c.check(labels_match(((sm.get("spec") or {}).get("selector") or {}).get("matchLabels"),
                             (svc.get("metadata") or {}).get("labels") or {})
                and ep.get("port") in [p.get("name") for p in sports],
                "k8s: ServiceMonitor selects the Service's metrics port")
    for k in by_kind.get("Kustomization", []):
        missing = [r for r in k.get("resources") or [] if not (DEPLOY / "k8s" / r).is_file()]
        c.check(not missing, "k8s: kustomization resources exist", f"{missing}")
    ctx.k8s = {"configmap": data, "secret": sdata, "deployment": dep, "container": ctr}


def keda_common(ctx: Ctx, rel: str) -> dict:
    """The checks both ScaledObjects share; returns the spec ({} when the
    file is missing)."""
    c = ctx.c
    docs = ctx.docs.get(rel)
    if not docs:
        return {}
    so = docs[0]
    c.check(so.get("kind") == "ScaledObject" and str(so.get("apiVersion", "")).startswith("keda.sh/"),
            f"KEDA {rel}: a keda.sh ScaledObject")
    c.eq((so.get("metadata") or {}).get("name"), "bsg-report-worker",
         f"KEDA {rel}: named bsg-report-worker (the two files replace each other)")
    spec = so.get("spec") or {}
    dep_name = ((getattr(ctx, "k8s", {}).get("deployment") or {}).get("metadata") or {}).get("name")
    c.check((spec.get("scaleTargetRef") or {}).get("name") == dep_name and dep_name,
            f"KEDA {rel}: scales the worker Deployment")
    c.eq(spec.get("minReplicaCount"), 1, f"KEDA {rel}: minReplicaCount 1")
    c.eq(spec.get("maxReplicaCount"), 12, f"KEDA {rel}: maxReplicaCount 12 (the input partitions)")
    api = ctx.docs.get("schemas/asyncapi.yaml")
    if api:
        parts = (((api[0].get("channels") or {}).get("bsg.campaign.events") or {}).get("bindings") or {}).get(
            "kafka", {}).get("partitions")
        c.eq(parts, spec.get("maxReplicaCount"),
             f"KEDA {rel}: maxReplicaCount equals the AsyncAPI partition count")
    sd = (((spec.get("advanced") or {}).get("horizontalPodAutoscalerConfig") or {}).get("behavior") or {}).get(
        "scaleDown") or {}
    c.check(int(sd.get("stabilizationWindowSeconds") or 0) >= 300,
            f"KEDA {rel}: scales down slowly (each step is a rebalance)")
    return spec


def check_keda(ctx: Ctx) -> None:
    """deploy/keda/scaledobject.yaml scales on the real backlog through
    Prometheus (the metric the workers export, summed); the Kafka lag
    trigger is the alternative in scaledobject-kafka-lag.yaml, never in the
    same ScaledObject (KEDA would take the larger of the two)."""
    c = ctx.c
    spec = keda_common(ctx, "deploy/keda/scaledobject.yaml")
    if spec:
        trig = spec.get("triggers") or []
        pt = [t for t in trig if t.get("type") == "prometheus"]
        c.check(len(trig) == 1 and len(pt) == 1,
                "KEDA: one trigger, of type prometheus (a second trigger would win when larger)",
                f"{[t.get('type') for t in trig]}")
        c.check(spec.get("minReplicaCount", 0) >= 1,
                "KEDA: the Prometheus trigger keeps at least one worker (no worker, no metric)")
        md = (pt[0].get("metadata") or {}) if pt else {}
        c.check(re.fullmatch(r"https?://[^\s/]+(:[0-9]+)?/?\S*", str(md.get("serverAddress", ""))) is not None,
                "KEDA: serverAddress is a Prometheus URL", str(md.get("serverAddress")))
        q = str(md.get("query", ""))
        names, sel = promql_metric_names(q)
        c.eq(names, {PREFIX + "backlog"}, "KEDA: the query reads bsg_report_worker_backlog, and nothing else")
        c.check(all(known_metric(n) for n in names) and balanced(q),
                "KEDA: the query names a metric the worker exports", q)
        c.check(q.replace(" ", "").startswith("sum(") and q.rstrip().endswith(")"),
                "KEDA: the query sums the workers' series into one value", q)
        svc = (ctx.docs.get("deploy/k8s/service.yaml") or [{}])[0]
        job = (svc.get("metadata") or {}).get("name")
        c.check(bool(job) and f'job="{job}"' in q.replace(" ", ""),
                "KEDA: the query selects the job the ServiceMonitor scrapes (the Service's name)", q)
        for k in ("threshold", "activationThreshold"):
            v = str(md.get(k, ""))
            c.check(re.fullmatch(r"[0-9]+(\.[0-9]+)?", v) is not None and (k != "threshold" or float(v) > 0),
                    f"KEDA: {k} set", v)
        c.eq(str(md.get("ignoreNullValues")), "false",
             "KEDA: no series is an error, not a backlog of 0")
    spec = keda_common(ctx, "deploy/keda/scaledobject-kafka-lag.yaml")
    if not spec:
        return
    trig = spec.get("triggers") or []
    kt = [t for t in trig if t.get("type") == "kafka"]
    if not c.check(len(trig) == 1 and len(kt) == 1, "KEDA (lag): one trigger, of type kafka"):
        return
    md = kt[0].get("metadata") or {}
    cmd = getattr(ctx, "k8s", {}).get("configmap") or {}
    c.eq(md.get("topic"), cmd.get("BRW_TOPIC_INPUT", "bsg.campaign.events"), "KEDA (lag): lag of the input topic")
    c.eq(md.get("consumerGroup"), cmd.get("BRW_GROUP_ID", "bsg-report-worker"),
         "KEDA (lag): the worker's consumer group")
    c.eq(md.get("bootstrapServers"), cmd.get("BRW_BROKERS"), "KEDA (lag): the ConfigMap's brokers")
    c.check(re.fullmatch(r"[0-9]+", str(md.get("lagThreshold", ""))) is not None, "KEDA (lag): lagThreshold set")


def all_rules(ctx: Ctx) -> list:
    docs = ctx.docs.get("deploy/alerts/bsg-report-worker.rules.yml") or [{}]
    return [r for g in docs[0].get("groups") or [] for r in g.get("rules") or []]


def check_alerts(ctx: Ctx) -> set:
    c = ctx.c
    rules = all_rules(ctx)
    used = set()
    if not c.check(bool(rules), "alerts: rule groups with rules"):
        return used
    names = {r.get("alert") for r in rules}
    c.check(REQUIRED_ALERTS <= names, "alerts: every required alert defined", f"missing {sorted(REQUIRED_ALERTS - names)}")
    ops = (ROOT / "docs" / "operations.md").read_text() if (ROOT / "docs" / "operations.md").is_file() else ""
    for r in rules:
        n = r.get("alert", "?")
        expr = r.get("expr")
        ok = isinstance(expr, str) and expr.strip() and balanced(expr)
        ok = ok and re.fullmatch(r"[0-9]+[smhd]", str(r.get("for", ""))) is not None
        ok = ok and (r.get("labels") or {}).get("severity") in ("critical", "warning", "info")
        ok = ok and all((r.get("annotations") or {}).get(k) for k in ("summary", "description"))
        c.check(bool(ok), f"alerts: {n} has expr, for, labels.severity, annotations summary/description")
        m, sel = promql_metric_names(expr or "")
        unknown = sorted(x for x in m | sel if not known_metric(x))
        c.check(not unknown, f"alerts: {n} uses known metrics only", f"unknown {unknown}")
        used |= {base_metric(x) for x in m}
        c.check(f"#{n.lower()}" in (r.get("annotations") or {}).get("description", "") and
                re.search(rf"^#+ .*{n}", ops, re.M) is not None,
                f"alerts: {n} has its section in docs/operations.md")
    c.check(any('up{job="bsg-report-worker"}' in (r.get("expr") or "") for r in rules),
            "alerts: worker down is up{job=\"bsg-report-worker\"} == 0 (the scrape job name)")
    return used


def alert_unit_tests() -> list:
    """promtool unit tests of the alert rules: each alert fires on the
    condition it describes, after its `for`, and not on a healthy series.
    (Annotations are stripped from the rules under test.)"""
    W = {"job": "bsg-report-worker", "instance": "w1:9464"}
    J = 'job="bsg-report-worker", instance="w1:9464"'
    M = PREFIX

    def t(series, alert, at, labels):
        return {"interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                     "exp_alerts": [{"exp_labels": labels}] if labels else []}]}

    healthy_api = [(f'{M}api_requests_total{{{J}, class="2xx"}}', "0+60x60"),
                   (f'{M}api_retries_total{{{J}, class="404"}}', "0+30x60")]
    return [
        t([(f"up{{{J}}}", "0x20")], "BsgReportWorkerDown", "6m", dict(W, severity="critical")),
        t([(f"up{{{J}}}", "0x20")], "BsgReportWorkerDown", "4m", None),
        t([(f"up{{{J}}}", "1x20")], "BsgReportWorkerDown", "10m", None),
        t([(f"{M}kafka_brokers_up{{{J}}}", "0x20"), (f"{M}accounts_rejected{{{J}}}", "0x20")],
          "BsgReportWorkerNotReady", "6m", dict(W, severity="critical")),
        t([(f"{M}kafka_brokers_up{{{J}}}", "1x20"), (f"{M}accounts_rejected{{{J}}}", "1x20")],
          "BsgReportWorkerNotReady", "6m", dict(W, severity="critical")),
        t([(f"{M}kafka_brokers_up{{{J}}}", "1x20"), (f"{M}accounts_rejected{{{J}}}", "0x20")],
          "BsgReportWorkerNotReady", "10m", None),
        t([(f"{M}consumption_paused{{{J}}}", "1x20")], "BsgReportWorkerConsumptionPaused", "11m",
          dict(W, severity="warning")),
        t([(f"{M}consumption_paused{{{J}}}", "1x5 0x15")], "BsgReportWorkerConsumptionPaused", "15m", None),
        t([(f'{M}events_consumed_total{{{J}, type="sent"}}', "0+10x60"),
           (f'{M}dlq_records_total{{{J}, reason="invalid_json"}}', "0+2x60")],
          "BsgReportWorkerDlqRateHigh", "40m", {"job": "bsg-report-worker", "severity": "warning"}),
        t([(f'{M}events_consumed_total{{{J}, type="sent"}}', "0+100x60"),
           (f'{M}dlq_records_total{{{J}, reason="invalid_json"}}', "0+1x60")],
          "BsgReportWorkerDlqRateHigh", "40m", None),
        t([(f'{M}api_requests_total{{{J}, class="2xx"}}', "0+30x60"),
           (f'{M}api_requests_total{{{J}, class="5xx"}}', "0+30x60"),
           (f'{M}api_retries_total{{{J}, class="5xx"}}', "0+30x60")],
          "BsgReportWorkerApiErrorRatioHigh", "40m", {"job": "bsg-report-worker", "severity": "warning"}),
        t(healthy_api, "BsgReportWorkerApiErrorRatioHigh", "40m", None),
        t([(f'{M}report_delay_seconds_bucket{{{J}, le="30"}}', "0x60"),
           (f'{M}report_delay_seconds_bucket{{{J}, le="60"}}', "0+10x60"),
           (f'{M}report_delay_seconds_bucket{{{J}, le="+Inf"}}', "0+10x60")],
          "BsgReportWorkerReportDelayHigh", "40m", {"job": "bsg-report-worker", "severity": "warning"}),
        t([(f'{M}report_delay_seconds_bucket{{{J}, le="1"}}', "0+10x60"),
           (f'{M}report_delay_seconds_bucket{{{J}, le="60"}}', "0+10x60"),
           (f'{M}report_delay_seconds_bucket{{{J}, le="+Inf"}}', "0+10x60")],
          "BsgReportWorkerReportDelayHigh", "40m", None),
        t([(f"{M}commit_failures_total{{{J}}}", "0+1x60")], "BsgReportWorkerCommitFailures", "30m",
          dict(W, severity="warning")),
        t([(f"{M}commit_failures_total{{{J}}}", "0+1x3 3x60")], "BsgReportWorkerCommitFailures", "30m", None),
        t([(f"{M}consumer_lag_messages{{{J}}}", "2000+50x120"), (f"{M}backlog{{{J}}}", "500x120")],
          "BsgReportWorkerConsumerLagGrowing", "70m", {"job": "bsg-report-worker", "severity": "warning"}),
        t([(f"{M}consumer_lag_messages{{{J}}}", "5000-10x120"), (f"{M}backlog{{{J}}}", "500x120")],
          "BsgReportWorkerConsumerLagGrowing", "70m", None),
        # Lag growing behind a long campaign while nothing waits: no alert.
        t([(f"{M}consumer_lag_messages{{{J}}}", "2000+50x120"), (f"{M}backlog{{{J}}}", "0x120")],
          "BsgReportWorkerConsumerLagGrowing", "70m", None),
        t([(f"{M}accounts_rejected{{{J}}}", "1x20")], "BsgReportWorkerAccountKeyRejected", "6m",
          dict(W, severity="critical")),
        t([(f"{M}accounts_rejected{{{J}}}", "0x20")], "BsgReportWorkerAccountKeyRejected", "10m", None),
        t([(f'{M}records_refused_total{{{J}, kind="dlq"}}', "0x5 1x20")], "BsgReportWorkerRecordsRefused",
          "8m", dict(W, severity="warning")),
        t([(f'{M}records_refused_total{{{J}, kind="dlq"}}', "0x30")], "BsgReportWorkerRecordsRefused",
          "20m", None),
        t([(f"{M}dlq_records_dropped_total{{{J}}}", "0x5 1x20")], "BsgReportWorkerDlqRecordsDropped",
          "8m", dict(W, severity="critical")),
        t([(f"{M}dlq_records_dropped_total{{{J}}}", "0x30")], "BsgReportWorkerDlqRecordsDropped",
          "20m", None),
    ]


def check_promtool(ctx: Ctx) -> None:
    """With Prometheus' promtool (Debian package prometheus) installed: the
    rules, the Prometheus config and every dashboard query parse, and the
    alerts behave as alert_unit_tests() says. Skipped with a note
    otherwise."""
    c = ctx.c
    pt = shutil.which("promtool")
    if not pt:
        ctx.note("promtool not installed (Debian package prometheus): PromQL syntax and alert "
                 "unit tests not run")
        return
    rules_path = DEPLOY / "alerts" / "bsg-report-worker.rules.yml"

    def run(*argv, cwd=None):
        r = subprocess.run([pt, *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120, cwd=cwd)
        return r.returncode, r.stdout.strip()

    rc, out = run("check", "rules", str(rules_path))
    c.check(rc == 0, "promtool: alert rules check", out[-400:])
    with tempfile.TemporaryDirectory(prefix="brw-promtool-") as td:
        td = Path(td)
        pdocs = ctx.docs.get("deploy/prometheus.yml")
        if pdocs:
            conf = copy.deepcopy(pdocs[0])
            conf["rule_files"] = [str(rules_path)]
            (td / "prometheus.yml").write_text(yaml.safe_dump(conf))
            rc, out = run("check", "config", str(td / "prometheus.yml"))
            c.check(rc == 0, "promtool: prometheus.yml check", out[-400:])
        dash = ctx.docs.get("deploy/grafana/bsg-report-worker.json") or {}
        exprs = [t.get("expr", "") for p in dash.get("panels") or [] for t in p.get("targets") or []]
        rec = [{"record": f"dashboard:query_{i}",
                "expr": re.sub(r"\$__rate_interval", "5m", re.sub(r'"\$(job|instance)"', '".*"', e))}
               for i, e in enumerate(exprs) if e]
        (td / "dashboard.rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rec}]}))
        rc, out = run("check", "rules", str(td / "dashboard.rules.yml"))
        c.check(rc == 0 and bool(rec), f"promtool: all {len(rec)} dashboard queries parse", out[-400:])
        rules = copy.deepcopy((ctx.docs.get("deploy/alerts/bsg-report-worker.rules.yml") or [{}])[0])
        for g in rules.get("groups") or []:
            for r in g.get("rules") or []:
                r.pop("annotations", None)
        (td / "rules.yml").write_text(yaml.safe_dump(rules))
        tests = alert_unit_tests()
        (td / "test.yml").write_text(yaml.safe_dump(
            {"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}, sort_keys=False))
        rc, out = run("test", "rules", "test.yml", cwd=td)
        c.check(rc == 0, f"promtool: {len(tests)} alert unit tests (each alert fires when it should, "
                         "and not on healthy series)", out[-1500:])


def check_grafana(ctx: Ctx) -> set:
    c = ctx.c
    d = ctx.docs.get("deploy/grafana/bsg-report-worker.json")
    used = set()
    if not d:
        return used
    c.check(bool(d.get("title")) and bool(d.get("uid")) and isinstance(d.get("schemaVersion"), int),
            "grafana: title, uid, schemaVersion")
    panels = [p for p in d.get("panels") or [] if p.get("type") != "row"]
    c.check(len(panels) >= 8, "grafana: a handful of panels", f"{len(panels)}")
    ids = [p.get("id") for p in d.get("panels") or []]
    c.check(len(ids) == len(set(ids)), "grafana: panel ids unique")
    tvars = {v.get("name") for v in (d.get("templating") or {}).get("list") or []}
    c.check("datasource" in tvars, "grafana: datasource variable")
    exprs = []
    bad = []
    for p in panels:
        ts = [t.get("expr", "") for t in p.get("targets") or []]
        if not ts or not all(ts) or not p.get("gridPos") or not p.get("title"):
            bad.append(p.get("title") or p.get("id"))
        exprs += ts
    c.check(not bad, "grafana: every panel has a title, a position and PromQL targets", f"{bad}")
    unknown = set()
    for e in exprs:
        m, sel = promql_metric_names(e)
        unknown |= {x for x in m | sel if not known_metric(x)}
        used |= {base_metric(x) for x in m}
        if not balanced(e):
            unknown.add(f"unbalanced: {e}")
    c.check(not unknown, "grafana: uses known metrics only", f"{sorted(unknown)}")
    text = "\n".join(exprs)
    wanted = {
        "throughput": "events_consumed_total",
        "reports by outcome": "by (outcome) (rate(bsg_report_worker_reports_published_total",
        "DLQ by reason": "by (reason) (rate(bsg_report_worker_dlq_records_total",
        "API classes": "by (class) (rate(bsg_report_worker_api_requests_total",
        "API latency p50": "histogram_quantile(0.5, sum by (le) (rate(bsg_report_worker_api_request_duration_seconds_bucket",
        "API latency p95": "histogram_quantile(0.95, sum by (le) (rate(bsg_report_worker_api_request_duration_seconds_bucket",
        "report delay": "bsg_report_worker_report_delay_seconds_bucket",
        "lag": "bsg_report_worker_consumer_lag_messages",
        "tracked campaigns": "bsg_report_worker_campaigns_tracked",
        "paused": "bsg_report_worker_consumption_paused",
        "the backlog (autoscaling signal)": "sum(bsg_report_worker_backlog{",
        "events not read": "bsg_report_worker_backlog_events",
        "campaigns due": "bsg_report_worker_campaigns_due",
    }
    for what, needle in wanted.items():
        c.check(needle in text, f"grafana: panel for {what}")
    return used


def check_systemd(ctx: Ctx) -> None:
    c = ctx.c
    path = DEPLOY / "systemd" / "bsg-report-worker.service"
    try:
        unit = parse_unit_file(path.read_text())
    except (OSError, ValueError) as e:
        c.fail("systemd: unit parses", str(e))
        return
    c.check({"Unit", "Service", "Install"} <= set(unit), "systemd: [Unit], [Service], [Install]")
    g = lambda k: unit_get(unit, "Service", k)  # noqa: E731
    c.eq(g("Type"), "simple", "systemd: Type=simple")
    c.eq(g("User"), "bsg-report-worker", "systemd: User=bsg-report-worker")
    c.eq((g("EnvironmentFile") or "").lstrip("-"), "/etc/bsg-report-worker/env",
         "systemd: EnvironmentFile=/etc/bsg-report-worker/env")
    c.eq(g("ExecStart"), "/usr/local/bin/bsg-report-worker --config /etc/bsg-report-worker/bsg-report-worker.conf",
         "systemd: ExecStart with --config")
    c.eq(g("KillSignal"), "SIGTERM", "systemd: KillSignal=SIGTERM")
    c.eq(g("Restart"), "on-failure", "systemd: Restart=on-failure")
    # shutdown.timeout of the example config (commented: its default).
    conf = (DEPLOY / "bsg-report-worker.conf.example").read_text()
    m = re.search(r"^#?shutdown\.timeout\s*=\s*(\S+)", conf, re.M)
    sd = parse_duration_s(m.group(1)) if m else 30.0
    try:
        stop = parse_systemd_time_s(g("TimeoutStopSec") or "")
    except ValueError:
        stop = -1
    c.check(stop > sd, "systemd: TimeoutStopSec > shutdown.timeout", f"{g('TimeoutStopSec')} vs {sd} s")
    for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                 ("ProtectHome", "yes")):
        c.eq(g(k), v, f"systemd: {k}={v}")
    c.eq(unit_get(unit, "Install", "WantedBy"), "multi-user.target", "systemd: WantedBy=multi-user.target")
    c.eq(g("RestartPreventExitStatus"), "2", "systemd: no restart loop on a configuration error (exit 2)")
    sa = shutil.which("systemd-analyze")
    if not sa:
        ctx.note("systemd-analyze not installed: the unit was not verified by systemd")
        return
    if not ctx.have_bin:
        ctx.note("no built worker: systemd-analyze verify skipped")
        return
    with tempfile.TemporaryDirectory(prefix="brw-unit-") as td:
        copy_path = Path(td) / path.name
        copy_path.write_text(path.read_text().replace("/usr/local/bin/bsg-report-worker",
                                                      str(ctx.args.bin_dir / "bsg-report-worker")))
        r = subprocess.run([sa, "verify", "--man=no", str(copy_path)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        msgs = [l for l in r.stdout.splitlines() if path.name in l or "Unknown" in l or "Failed" in l]
        c.check(r.returncode == 0 and not msgs, "systemd: systemd-analyze verify is clean",
                "; ".join(msgs) or r.stdout.strip()[-300:])
        r = subprocess.run([sa, "security", "--offline=yes", str(copy_path)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
        if m:
            c.check(float(m.group(1)) <= 3.0, "systemd: systemd-analyze security exposure <= 3.0",
                    m.group(1))
        else:
            ctx.note("systemd-analyze security gave no exposure level: not checked")


def check_schemas(ctx: Ctx) -> None:
    c = ctx.c
    try:
        import jsonschema
    except ImportError:
        c.fail("python3-jsonschema is importable")
        return
    for kind, fname in schemas.SCHEMA_FILES.items():
        s = ctx.docs.get(f"schemas/{fname}")
        if s is None:
            continue
        c.eq(s.get("$schema"), "https://json-schema.org/draft/2020-12/schema", f"schemas: {fname} is draft 2020-12")
        try:
            jsonschema.Draft202012Validator.check_schema(s)
            c.check(True, f"schemas: {fname} is a valid schema")
        except jsonschema.SchemaError as e:
            c.fail(f"schemas: {fname} is a valid schema", e.message)
        for i, ex in enumerate(s.get("examples") or []):
            c.check(not schemas.errors(kind, ex), f"schemas: {fname} example {i} validates")

    # The report: SPEC §4's example, its literal form, and bad variants.
    errs = schemas.errors("report", filled_spec_example())
    c.check(not errs, "schemas: SPEC §4 example report validates (elided times filled in)", "; ".join(errs))
    # As written, its "…" are no times: the only string values rejected are
    # those "…", as not being date-times (nor null).
    leaves = [l for e in schemas.validator("report").iter_errors(SPEC_EXAMPLE) for l in schemas._flatten(e)]
    str_leaves = {(tuple(l.absolute_path), l.validator) for l in leaves if isinstance(l.instance, str)}
    c.check(bool(leaves) and all(l.instance == "…" and l.validator in ("format", "pattern", "type")
                                 for l in leaves if isinstance(l.instance, str))
            and {p for p, _ in str_leaves} == set(SPEC_EXAMPLE_TIMES),
            "schemas: the literal SPEC §4 example fails only at its elided times", f"{sorted(str_leaves)}")
    base = filled_spec_example()
    variants = {
        "final report of a campaign never seen (expired, campaign null)": (True, {
            "outcome": "expired", "campaign": None,
            "metrics": {"delivery_rate": None, "failure_rate": None, "pending": None, "duration_seconds": None}}),
        "progress report": (True, {"final": False, "outcome": "sending"}),
        "traceparent": (True, {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
        "alternative_channels passed through": (True, {"campaign": dict(base["campaign"], alternative_channels={"viber": 1})}),
        "wrong schema name": (False, {"schema": "bsg.campaign.report.v2"}),
        "final report with a status in progress": (False, {"outcome": "sending"}),
        "progress report with a terminal outcome": (False, {"final": False, "outcome": "done"}),
        "unknown outcome": (False, {"outcome": "finished"}),
        "extra top-level field": (False, {"extra": 1}),
        "campaign_id as a string": (False, {"campaign_id": "53651994"}),
        "total_price as a number": (False, {"campaign": dict(base["campaign"], total_price=0.16)}),
        "total_price with a comma": (False, {"campaign": dict(base["campaign"], total_price="0,16")}),
        "time not in UTC": (False, {"campaign": dict(base["campaign"], finished_at="2026-11-27 10:09:06")}),
        "statistics not integers": (False, {"campaign": dict(base["campaign"], statistics={"delivered": "7"})}),
        "missing tracking.source": (False, {"tracking": {k: v for k, v in base["tracking"].items() if k != "source"}}),
        "done without a campaign": (False, {"campaign": None}),
    }
    for what, (want_ok, change) in variants.items():
        r = dict(copy.deepcopy(base), **change)
        got_ok = not schemas.errors("report", r)
        c.check(got_ok == want_ok, f"schemas: report {what} {'validates' if want_ok else 'is rejected'}")

    # Events: what pipeline.py sends, and what the worker sends to the DLQ.
    good = [{"type": "campaign.sent", "campaign_id": 200001}, {"type": "campaign.sent", "campaign_id": "200001"},
            {"event": "campaign.sent", "data": {"id": 200001}}, {"type": "campaign.finished", "id": 7},
            {"campaign_id": "9007199254740992", "account": "marketing-eu", "occurred_at": "2026-11-27T10:00:00+01:00"},
            {"campaign_id": 1, "other": {"ignored": True}}]
    bad = [{}, {"campaign_id": "../1"}, {"campaign_id": 0}, {"campaign_id": -5}, {"campaign_id": "12a"},
           {"campaign_id": 9007199254740993}, {"campaign_id": "9007199254740993"},
           {"type": "campaign.exploded", "campaign_id": 77}, {"campaign_id": 1, "account": ""},
           {"campaign_id": 1, "occurred_at": "not a time"}]
    # CloudEvents: a structured-mode envelope (the event in data; its id is
    # not the campaign id), and a binary-mode value (the data alone).
    ce = {"specversion": "1.0", "type": "com.example.sms.campaign.sent", "source": "/sms", "id": "e-1",
          "time": "2026-11-27T10:00:00Z", "datacontenttype": "application/json; charset=utf-8",
          "data": {"campaign_id": 200001, "account": "eu"}}
    good += [ce, dict(ce, datacontenttype=None, time=None, data_base64=None),
             dict(ce, data={"data": {"id": "7"}}), {"campaign_id": 200001, "account": "eu"}]
    bad += [dict(ce, specversion="0.3"), dict(ce, specversion=1.0), {k: v for k, v in ce.items() if k != "data"},
            dict(ce, data='{"campaign_id": 1}'), dict(ce, data_base64="eyJpZCI6MX0="),
            dict(ce, datacontenttype="application/xml"), dict(ce, type=""),
            {k: v for k, v in ce.items() if k != "type"}, dict(ce, data={"campaign_id": "../1"}),
            {"specversion": "1.0", "type": "campaign.sent", "id": "77"}]
    c.check(all(not schemas.errors("event", e) for e in good), "schemas: valid events validate",
            f"{[e for e in good if schemas.errors('event', e)]}")
    c.check(all(schemas.errors("event", e) for e in bad), "schemas: invalid events are rejected",
            f"{[e for e in bad if not schemas.errors('event', e)]}")

    # DLQ: reasons are the worker's own codes; the envelope helper.
    hdr = (ROOT / "include" / "brw" / "vocab.h").read_text()
    codes = set(re.findall(r'#define BRW_REASON_\w+ "([a-z_]+)"', hdr))
    enum = set(((ctx.docs.get("schemas/dlq-record.schema.json") or {}).get("properties", {})
                .get("headers", {}).get("properties", {}).get("error.reason", {}).get("enum") or []))
    c.check(codes and codes == enum, "schemas: DLQ reasons are exactly include/brw/vocab.h's codes",
            f"header {sorted(codes)} schema {sorted(enum)}")
    from harness import Record
    rec = Record(topic="bsg.campaign.events.dlq", partition=0, offset=3, key=b"bad-1", value=b"\xffnot json",
                 headers=[("error.reason", b"invalid_json"), ("error.message", b"event value is not JSON"),
                          ("source.topic", b"bsg.campaign.events"), ("source.partition", b"2"),
                          ("source.offset", b"41")], timestamp=1795773600000)
    env = schemas.dlq_envelope(rec)
    c.check(not schemas.errors("dlq", env) and base64.b64decode(env["value"]) == b"\xffnot json",
            "schemas: a DLQ record's envelope validates and keeps the bytes")
    rec.headers[0] = ("error.reason", b"because")
    c.check(bool(schemas.errors("dlq", schemas.dlq_envelope(rec))), "schemas: an unknown DLQ reason is rejected")
    rec.headers[0] = ("error.reason", b"invalid_json")
    rec.headers[3] = ("source.partition", b"two")
    c.check(bool(schemas.errors("dlq", schemas.dlq_envelope(rec))), "schemas: a non-numeric source.partition is rejected")
    try:
        schemas.validate("report", {"schema": "x"})
        c.fail("schemas: validate() raises on a mismatch")
    except schemas.SchemaMismatch as e:
        c.check("report.schema.json" in str(e) and "$.schema" in str(e), "schemas: validate() names the file and path")

    # Progress outcomes are the worker's status names (BRW_STATUSES).
    m = re.search(r"#define BRW_STATUSES\(X, FINAL\)((?:[^\n]*\\\n)*[^\n]*)", hdr)
    statuses = set(re.findall(r'"([a-z]+)"', m.group(1))) if m else set()
    outcomes = set(((ctx.docs.get("schemas/report.schema.json") or {}).get("properties", {})
                    .get("outcome", {}).get("enum") or []))
    c.check(bool(statuses) and outcomes == (statuses | {"expired"}),
            "schemas: report outcomes are the worker's status names plus expired",
            f"statuses {sorted(statuses)} outcomes {sorted(outcomes)}")


def resolve_ref(ref: str, base_file: Path, root_doc) -> tuple[bool, str]:
    """Resolves an AsyncAPI/JSON Schema $ref: "#/pointer", "file" or
    "file#/pointer" relative to base_file."""
    file_part, _, frag = ref.partition("#")
    if file_part:
        target = (base_file.parent / file_part).resolve()
        if not target.is_file():
            return False, f"{ref}: no file {target}"
        text = target.read_text()
        doc = json.loads(text) if target.suffix == ".json" else yaml.safe_load(text)
    else:
        doc = root_doc
    if frag:
        if not frag.startswith("/"):
            return False, f"{ref}: fragment is not a JSON pointer"
        for tok in frag[1:].split("/"):
            tok = tok.replace("~1", "/").replace("~0", "~")
            if isinstance(doc, dict) and tok in doc:
                doc = doc[tok]
            elif isinstance(doc, list) and tok.isdigit() and int(tok) < len(doc):
                doc = doc[int(tok)]
            else:
                return False, f"{ref}: {tok!r} not found"
    return True, ""


def walk_refs(node, out: list) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                out.append(v)
            else:
                walk_refs(v, out)
    elif isinstance(node, list):
        for v in node:
            walk_refs(v, out)


def check_asyncapi(ctx: Ctx) -> None:
    c = ctx.c
    docs = ctx.docs.get("schemas/asyncapi.yaml")
    if not docs:
        return
    api = docs[0]
    c.check(str(api.get("asyncapi", "")).startswith("2.6"), "asyncapi: version 2.6")
    c.check(bool((api.get("info") or {}).get("title")) and bool((api.get("info") or {}).get("version")),
            "asyncapi: info.title and info.version")
    ch = api.get("channels") or {}
    want = {"bsg.campaign.events": "publish", "bsg.campaign.reports": "subscribe",
            "bsg.campaign.events.dlq": "subscribe"}
    for topic, op in want.items():
        chan = ch.get(topic) or {}
        c.check(op in chan and "message" in (chan.get(op) or {}), f"asyncapi: channel {topic} ({op})")
        c.eq(((chan.get("bindings") or {}).get("kafka") or {}).get("topic"), topic,
             f"asyncapi: {topic} has a kafka binding")
    refs: list = []
    walk_refs(api, refs)
    apath = ROOT / "schemas" / "asyncapi.yaml"
    bad = []
    for r in refs:
        ok, why = resolve_ref(r, apath, api)
        if not ok:
            bad.append(why)
    c.check(refs and not bad, f"asyncapi: all {len(refs)} $refs resolve", "; ".join(bad))
    payloads = {}
    for name, msg in ((api.get("components") or {}).get("messages") or {}).items():
        payloads[name] = (msg.get("payload") or {}).get("$ref", "")
        key = (((msg.get("bindings") or {}).get("kafka") or {}).get("key"))
        c.check(isinstance(key, dict), f"asyncapi: message {name} has a kafka key binding")
    c.check(sorted(v.lstrip("./") for v in payloads.values()) ==
            sorted(schemas.SCHEMA_FILES.values()), "asyncapi: the three messages use the three schemas",
            f"{payloads}")
    for name, msg in ((api.get("components") or {}).get("messages") or {}).items():
        kind = {v: k for k, v in schemas.SCHEMA_FILES.items()}.get(payloads.get(name, "").lstrip("./"))
        for ex in msg.get("examples") or []:
            if kind and "payload" in ex:
                c.check(not schemas.errors(kind, ex["payload"]), f"asyncapi: example {name}/{ex.get('name')} validates")


def check_env_with_worker(ctx: Ctx) -> None:
    """The environments the deployment files give the worker pass its own
    --check-config, with the effect they intend."""
    c = ctx.c
    if not c.check(ctx.have_bin, "worker binary present for --check-config", str(ctx.args.bin_dir)):
        return
    k = getattr(ctx, "k8s", None)
    if k:
        env = dict(k["configmap"])
        env.update({kk: str(v) for kk, v in k["secret"].items()})
        for e in k["container"].get("env") or []:
            fp = (((e.get("valueFrom") or {}).get("fieldRef") or {}).get("fieldPath"))
            env[e["name"]] = "bsg-report-worker-7c9d8f6b5-x2k4q" if fp == "metadata.name" else str(e.get("value", ""))
        env["BRW_METRICS_LISTEN"] = env.get("BRW_METRICS_LISTEN", "0.0.0.0:9464")
        rc, cfg, err = check_config(ctx.args.bin_dir, env)
        c.check(rc == 0, "k8s: ConfigMap + Secret + pod env pass --check-config", err)
        c.eq(cfg.get("kafka.consumer.group.instance.id"), "bsg-report-worker-7c9d8f6b5-x2k4q",
             "k8s: the pod name becomes kafka.consumer.group.instance.id")
        c.eq(cfg.get("metrics.listen"), "0.0.0.0:9464", "k8s: metrics.listen is 0.0.0.0:9464")
        tg = ((k["deployment"].get("spec") or {}).get("template") or {}).get("spec", {}).get(
            "terminationGracePeriodSeconds", 0)
        if "shutdown.timeout" in cfg:
            c.check(tg > parse_duration_s(cfg["shutdown.timeout"]),
                    "k8s: effective shutdown.timeout < terminationGracePeriodSeconds", f"{cfg['shutdown.timeout']}")
    wenv = getattr(ctx, "compose_worker_env", None)
    if wenv is not None:
        env = dict(wenv)
        env.setdefault("BRW_METRICS_LISTEN", "0.0.0.0:9464")  # the image's ENV
        rc, cfg, err = check_config(ctx.args.bin_dir, env)
        c.check(rc == 0, "compose: the worker's environment passes --check-config", err)
        c.eq(cfg.get("api.url"), "http://simulator:8080", "compose: effective api.url is the simulator")
    rc, cfg, err = check_config(ctx.args.bin_dir, {"BRW_METRICS_LISTEN": "0.0.0.0:9464", "BSG_API_KEY": "test_x"},
                                ["--config", str(DEPLOY / "bsg-report-worker.conf.example")])
    c.check(rc == 0, "Dockerfile: image ENV with the example config passes --check-config", err)
    # Issue 10: plain http:// to a host other than loopback would send the key
    # in clear text; --check-config refuses it with exit 2 naming api.url,
    # and quotes the URL without its password.
    key = "test_insecure_key_0123"
    rc, cfg, err = check_config(ctx.args.bin_dir, {"BSG_API_KEY": key,
                                                   "BRW_API_URL": "http://u:pa55w0rd@api.example.com"})
    c.check(rc == 2 and err.count("\n") == 0 and "api.url:" in err and "api.allow_insecure" in err
            and "pa55w0rd" not in err and key not in err,
            "worker: plain http:// to a remote host exits 2 naming api.url", err)
    rc, cfg, err = check_config(ctx.args.bin_dir, {"BSG_API_KEY": key, "BRW_API_URL": "http://127.0.0.1:8080"})
    c.check(rc == 0, "worker: plain http:// to loopback is allowed", err)
    rc, cfg, err = check_config(ctx.args.bin_dir, {"BSG_API_KEY": key, "BRW_API_ALLOW_INSECURE": "true",
                                                   "BRW_API_URL": "http://u:pa55w0rd@api.example.com"})
    c.check(rc == 0 and cfg.get("api.url") == "http://[REDACTED]@api.example.com"
            and cfg.get("api.allow_insecure") == "true",
            "worker: api.allow_insecure=true allows it; --check-config hides the URL's password",
            f"{rc} {err} {cfg.get('api.url')}")
    # A key pasted into the wrong flag is quoted by that flag's error; the
    # error line still does not show it (the loaded secrets are redacted).
    rc, cfg, err = check_config(ctx.args.bin_dir, {"BSG_API_KEY": key}, [f"--poll.max_age={key}"])
    c.check(rc == 2 and "poll.max_age" in err and key not in err and "[REDACTED]" in err,
            "worker: a configuration error does not show a loaded key", err)


def parse_metrics_text(text: str) -> tuple[set, dict]:
    """(family names from # TYPE lines, {sample name: [label sets]})."""
    types = set(re.findall(r"^# TYPE (\S+) \S+", text, re.M))
    samples: dict = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            samples.setdefault(m.group(1), []).append(labels)
    return types, samples


def check_real_metrics(ctx: Ctx, used: set) -> None:
    """Against a running worker: every listed metric (and so every one the
    rules and the dashboard use) is exported, with its labels where it has
    samples. Skipped, with a note and no PASS, when the worker serves no
    metrics endpoint yet."""
    c = ctx.c
    if not ctx.have_bin:
        ctx.note("no built worker: its /metrics was not compared")
        return
    port = free_port()
    dead_broker = free_port()
    work = Path(tempfile.mkdtemp(prefix="brw-deploy-files-", dir=os.environ.get("BRW_TEST_TMPDIR")))
    env = {"BRW_BROKERS": f"127.0.0.1:{dead_broker}", "BSG_API_KEY": "test_deploy_files_key",
           "BRW_API_URL": f"http://127.0.0.1:{free_port()}", "BRW_METRICS_LISTEN": f"127.0.0.1:{port}",
           "BRW_LOG_LEVEL": "info", "BRW_KAFKA_CONSUMER_AUTO_OFFSET_RESET": "latest"}
    proc = Proc([ctx.args.bin_dir / "bsg-report-worker"], work, name="worker", env=env).start()
    try:
        if not wait_port("127.0.0.1", port, 8.0):
            rc = proc.returncode
            ctx.note("bsg-report-worker serves no admin endpoint on metrics.listen yet "
                     f"(nothing listened on 127.0.0.1:{port} within 8 s; process "
                     f"{'running' if rc is None else f'exited {rc}'}): the metric names of the rules and "
                     "the dashboard were checked against the list in this test only, not against /metrics")
            return
        base = f"http://127.0.0.1:{port}"

        def get(path):
            try:
                with urllib.request.urlopen(base + path, timeout=5) as r:
                    return r.status, r.read().decode("utf-8", "replace")
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode("utf-8", "replace")

        st, _ = get("/healthz")
        c.eq(st, 200, "worker: /healthz answers 200")
        st, _ = get("/readyz")
        c.check(st in (200, 503), "worker: /readyz answers", f"status {st}")
        st, text = get("/metrics")
        c.eq(st, 200, "worker: /metrics answers 200")
        types, samples = parse_metrics_text(text)

        def exported(short: str) -> bool:
            full = PREFIX + short
            kind = METRICS[short][0]
            names = {full}
            if kind == "counter" and full.endswith("_total"):
                names.add(full[: -len("_total")])  # OpenMetrics family name
            if kind == "histogram":
                return full in types or full + "_bucket" in samples
            return bool(names & types) or full in samples

        missing_used = sorted(m for m in used if not exported(m))
        c.check(not missing_used, "worker: every metric of the rules and dashboard is in /metrics",
                f"missing {missing_used}")
        missing_all = sorted(m for m in METRICS if not exported(m))
        c.check(not missing_all, "worker: every listed metric is in /metrics", f"missing {missing_all}")
        label_bad = []
        for short, (kind, labels) in METRICS.items():
            rows = samples.get(PREFIX + short) or []
            for ls in rows:
                if not set(labels) <= ls:
                    label_bad.append(f"{short} lacks {sorted(set(labels) - ls)}")
                    break
        c.check(not label_bad, "worker: labelled metrics carry their labels", "; ".join(label_bad))
        c.check("test_deploy_files_key" not in text, "worker: the API key is not in /metrics")
        # The consumer's default auto.offset.reset (earliest) is logged at
        # start, and kafka.consumer.auto.offset.reset overrides it.
        resets = [o.get("auto.offset.reset") for o in proc.json_lines("stderr") if "auto.offset.reset" in o]
        c.eq(resets, ["latest"], "worker: logs auto.offset.reset at start; kafka.consumer.* overrides the default")
    finally:
        proc.terminate(timeout=20)
        c.check("test_deploy_files_key" not in proc.stderr_text(), "worker: the API key is not in its log")
        shutil.rmtree(work, ignore_errors=True)


def check_docs(ctx: Ctx) -> None:
    c = ctx.c
    p = ROOT / "docs" / "operations.md"
    if not c.check(p.is_file(), "docs/operations.md exists"):
        return
    t = p.read_text()
    for what, needle in (("docker compose quick start", "docker compose"), ("Kubernetes", "kubectl apply"),
                         ("KEDA", "KEDA"), ("the KEDA lag alternative", "scaledobject-kafka-lag.yaml"),
                         ("the backlog metric", "bsg_report_worker_backlog"),
                         ("static membership", "group.instance.id"),
                         ("grace period", "terminationGracePeriodSeconds"),
                         ("SCRAM caveat", "2.6.1"), ("librdkafka version", "2.0.2")):
        c.check(needle in t, f"docs/operations.md covers {what}")
    for link in re.findall(r"\]\(((?:\.\./|\./)?[A-Za-z0-9_./-]+\.(?:md|yaml|yml|json|service))\)", t):
        c.check((p.parent / link).resolve().exists(), f"docs/operations.md link {link} exists")


def main() -> int:
    args = parse_args(__doc__)
    checks = Checks()
    ctx = Ctx(args, checks)
    check_parse(ctx)
    check_dockerfile(ctx)
    check_dockerignore(ctx)
    check_compose(ctx)
    check_prometheus(ctx)
    check_k8s(ctx)
    check_keda(ctx)
    used = check_alerts(ctx) | check_grafana(ctx)
    check_promtool(ctx)
    checks.check(set(METRICS) <= used, "every listed metric is used by the dashboard or a rule",
                 f"unused {sorted(set(METRICS) - used)}")
    check_systemd(ctx)
    check_schemas(ctx)
    check_asyncapi(ctx)
    check_env_with_worker(ctx)
    check_real_metrics(ctx, used)
    check_docs(ctx)
    if ctx.notes:
        log(f"{len(ctx.notes)} note(s): parts not checked, see NOTE lines")
    return checks.summary()


if __name__ == "__main__":
    run_main(main)
