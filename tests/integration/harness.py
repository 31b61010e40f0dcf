"""Integration-test harness: a real Apache Kafka broker, child processes, and
Kafka client helpers.

Runs on Debian's /usr/bin/python3 with python3-confluent-kafka (1.7.0, over
Debian's librdkafka 2.0.2) and the standard library only. The broker is a
single-node KRaft broker (combined broker+controller) on 127.0.0.1, built
from jars that scripts/kafka-jars.sh fetches from Maven Central (see
docs/testing.md).

Typical test script:

    from harness import Checks, KafkaBroker, parse_args, produce, consume_all

    def main():
        args = parse_args("what this test checks")
        checks = Checks()
        with KafkaBroker() as kafka:
            kafka.create_topics({"in": 4})
            ...
            checks.eq(len(records), 100, "all records consumed")
        return checks.summary()

    if __name__ == "__main__":
        run_main(main)

Environment:
    BRW_KAFKA_LIBS      use this libs dir instead of running kafka-jars.sh
    BRW_KAFKA_VERSION   Kafka version for kafka-jars.sh (default 4.1.1)
    BRW_KAFKA_JVM_OPTS  replaces the default JVM flags of the broker
    KEEP_KAFKA=1        keep the broker's temp dir (data, config, log)
    BRW_TEST_TMPDIR     parent dir of temp dirs (default: the system's)
"""

from __future__ import annotations

import argparse
import base64
import ctypes
import ctypes.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = REPO_ROOT / "scripts"
LOG4J_CONFIG = SCRIPTS_DIR / "kafka" / "log4j2.properties"

# Measured on a 2-core machine (docs/testing.md): SerialGC + C1 only start
# the broker faster than Kafka's default G1 flags and are plenty for tests.
DEFAULT_JVM_OPTS = [
    "-Xms64m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
]


def log(msg: str) -> None:
    """Print a harness message (stderr, flushed, prefixed)."""
    print(f"[harness {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Command line and reporting


def parse_args(
    description: str = "",
    argv: Optional[Sequence[str]] = None,
    extra: Optional[Callable[[argparse.ArgumentParser], None]] = None,
) -> argparse.Namespace:
    """The arguments every integration test takes.

    --bin-dir DIR  where bsg-report-worker and bsg-api-sim are built
                   (args.bin_dir is an absolute Path; default: ./build)
    extra(parser) may add a test's own arguments.
    """
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--bin-dir",
        type=Path,
        default=Path(os.environ.get("BRW_BIN_DIR", "build")),
        help="directory holding bsg-report-worker and bsg-api-sim",
    )
    if extra:
        extra(p)
    args = p.parse_args(argv)
    args.bin_dir = args.bin_dir.resolve()
    return args


def binary(bin_dir: Path, name: str) -> Path:
    """Path of a built binary; raises a clear error when it is missing."""
    path = Path(bin_dir) / name
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} not found or not executable (--bin-dir?)")
    return path


class Checks:
    """Counts checks, prints one line per check, and a closing summary line
    ('N passed, N failed') that CI recognises."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
            print(f"PASS: {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL: {what}" + (f" ({detail})" if detail else ""), flush=True)
        return bool(ok)

    def eq(self, got, want, what: str) -> bool:
        return self.check(got == want, what, f"got {got!r}, want {want!r}")

    def fail(self, what: str, detail: str = "") -> None:
        self.check(False, what, detail)

    def summary(self) -> int:
        """Print the closing line; return the exit code (0 only if all passed
        and at least one check ran)."""
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 0 if self.failed == 0 and self.passed > 0 else 1


def run_main(main: Callable[[], int]) -> None:
    """Run a test's main(); an uncaught exception is a failure (exit 1)."""
    try:
        rc = main()
    except KeyboardInterrupt:
        print("FAIL: interrupted", flush=True)
        rc = 130
    except BaseException:  # noqa: BLE001 - report anything, then fail
        traceback.print_exc()
        print("FAIL: uncaught exception (see traceback above)", flush=True)
        rc = 1
    sys.exit(rc or 0)


# ---------------------------------------------------------------------------
# Processes


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(host: str, port: int, timeout: float = 10.0) -> bool:
    """True once a TCP connect to host:port succeeds, False at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _child_setup() -> None:
    """In the child before exec: die with the parent (Linux PR_SET_PDEATHSIG),
    so that a crashed test never leaves a broker or worker behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except Exception:  # noqa: BLE001
        pass


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(cannot read {path}: {e})"
    return "\n".join(data.splitlines()[-lines:])


class Proc:
    """A child process with stdout and stderr in log files.

        p = Proc([sim, "--listen", "127.0.0.1:0"], workdir, name="sim").start()
        addr = p.wait_json("listening")["listening"]
        ...
        rc = p.terminate()          # SIGTERM, SIGKILL after the timeout

    stdout goes to WORKDIR/NAME.stdout.log and stderr to NAME.stderr.log.
    A child that writes a line to a file must fflush() it to be seen.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike],
        workdir: str | os.PathLike,
        name: Optional[str] = None,
        env: Optional[dict] = None,
        cwd: Optional[str | os.PathLike] = None,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.name = name or Path(self.argv[0]).name
        self.workdir = Path(workdir)
        self.stdout_path = self.workdir / f"{self.name}.stdout.log"
        self.stderr_path = self.workdir / f"{self.name}.stderr.log"
        self.env = env
        self.cwd = cwd
        self.popen: Optional[subprocess.Popen] = None

    # -- life cycle

    def start(self) -> "Proc":
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if self.env:
            env.update({k: str(v) for k, v in self.env.items()})
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_child_setup,
            )
        log(f"started {self.name} pid {self.popen.pid}: {shlex.join(self.argv)}")
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, "not started"
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def returncode(self) -> Optional[int]:
        return None if self.popen is None else self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.running():
            self.popen.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for exit; raises TimeoutError (process left running)."""
        assert self.popen is not None, "not started"
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{self.name} (pid {self.pid}) still running after {timeout} s")

    def terminate(self, timeout: float = 30.0) -> Optional[int]:
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code
        (negative: killed by that signal); None if never started."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {timeout} s: SIGKILL")
                self.kill()
        return self.popen.returncode

    def kill(self) -> Optional[int]:
        """SIGKILL (a crash, as far as the process can tell) and reap."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.kill()
        return self.popen.wait()

    def __enter__(self) -> "Proc":
        return self if self.popen else self.start()

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            self.print_tail()
        self.terminate(timeout=10)

    # -- output

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @staticmethod
    def _json_lines(text: str) -> list[dict]:
        out = []
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
        return out

    def json_lines(self, stream: str = "stdout") -> list[dict]:
        """Every line of stdout (or 'stderr') that parses as a JSON object."""
        return self._json_lines(self.stdout_text() if stream == "stdout" else self.stderr_text())

    def wait_json(
        self,
        key: Optional[str] = None,
        timeout: float = 10.0,
        stream: str = "stdout",
        pred: Optional[Callable[[dict], bool]] = None,
    ) -> dict:
        """Wait for the first JSON object line on stdout (or stderr) that has
        key (and satisfies pred). Raises TimeoutError, or RuntimeError if the
        process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            for obj in self.json_lines(stream):
                if (key is None or key in obj) and (pred is None or pred(obj)):
                    return obj
            if not self.running():
                # One last look: the line may have landed just before exit.
                for obj in self.json_lines(stream):
                    if (key is None or key in obj) and (pred is None or pred(obj)):
                        return obj
                self.print_tail()
                raise RuntimeError(f"{self.name} exited ({self.returncode}) before printing {key!r}")
            if time.monotonic() >= deadline:
                self.print_tail()
                raise TimeoutError(f"{self.name}: no JSON line with {key!r} on {stream} within {timeout} s")
            time.sleep(0.05)

    def wait_text(self, needle: str, timeout: float = 10.0, stream: str = "stderr") -> bool:
        """True once needle appears in stdout/stderr, False at the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stdout_text() if stream == "stdout" else self.stderr_text()
            if needle in text:
                return True
            if not self.running():
                text = self.stdout_text() if stream == "stdout" else self.stderr_text()
                return needle in text
            time.sleep(0.05)
        return False

    def print_tail(self, lines: int = 40) -> None:
        for path in (self.stdout_path, self.stderr_path):
            if path.exists() and path.stat().st_size:
                print(f"----- last lines of {path} -----\n{_tail(path, lines)}\n-----", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The Kafka broker


def kafka_libs_dir() -> Path:
    """The broker's libs dir: $BRW_KAFKA_LIBS, else what scripts/kafka-jars.sh
    prints (it fetches the jars on first use, then is a no-op)."""
    env = os.environ.get("BRW_KAFKA_LIBS")
    if env:
        return Path(env)
    script = SCRIPTS_DIR / "kafka-jars.sh"
    res = subprocess.run([str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise RuntimeError(
            f"{script} failed ({res.returncode}); run scripts/install-deps.sh --with-kafka\n{res.stderr}"
        )
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    if not lines:
        raise RuntimeError(f"{script} printed no libs dir\n{res.stderr}")
    return Path(lines[-1].strip())


def kafka_cluster_id() -> str:
    """A cluster id as kafka.tools.StorageTool random-uuid makes one: a random
    UUID, URL-safe base64 without padding, never starting with '-'."""
    while True:
        s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not s.startswith("-"):
            return s


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        return str(Path(home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise RuntimeError("java not found; run scripts/install-deps.sh")
    return java


@dataclass
class BrokerSecurity:
    """The listeners a KafkaBroker opens besides PLAINTEXT, when asked
    (KafkaBroker(security=BrokerSecurity(...))). PLAINTEXT stays the
    inter-broker listener and the one the harness's own clients use
    (bootstrap, create_topics, produce, consume_all), so only the client
    under test speaks TLS or SASL.

    Listeners (names as in listener.security.protocol.map), each on a port
    of its own on 127.0.0.1, addresses in KafkaBroker.listener(NAME):

      SASL_SSL  SASL over TLS: SCRAM-SHA-512 (users created at format time
                with StorageTool --add-scram) and PLAIN (users in the
                listener's JAAS config)
      MTLS      TLS with a required client certificate (ssl.client.auth)
      BADNAME   TLS with a certificate for kafka.wrong.example, not
                127.0.0.1: a client that checks the broker's name fails

    The certificates come from scripts/kafka-pki.sh (openssl, PEM, fresh
    for each broker) in KafkaBroker.pki_dir: ca.pem, client.crt,
    client.key (encrypted with client_key_password when set),
    other-ca.pem (a CA that signed nothing here)."""

    scram_users: dict = field(default_factory=dict)  # name -> password
    plain_users: dict = field(default_factory=dict)  # name -> password
    client_key_password: str = ""

    LISTENERS = ("SASL_SSL", "MTLS", "BADNAME")
    PROTOCOLS = {"SASL_SSL": "SASL_SSL", "MTLS": "SSL", "BADNAME": "SSL"}


def _jaas_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


class KafkaBroker:
    """A single-node KRaft Kafka broker (broker+controller) on 127.0.0.1.

        with KafkaBroker() as kafka:          # start(), then stop() at exit
            kafka.create_topics({"in": 4, "out": 1})
            produce(kafka.bootstrap, "in", [(b"k", b"v", [("h", b"x")])])

    Outage tests: stop_broker_process() (SIGTERM, or kill=True for SIGKILL),
    start_again() on the same data dir and ports; suspend()/resume() freeze
    the JVM (SIGSTOP/SIGCONT) with its sockets open.

    security=BrokerSecurity(...) opens TLS and SASL listeners as well (see
    there); without it the broker is exactly the PLAINTEXT one.
    """

    READY_LINE = "Kafka Server started"

    def __init__(
        self,
        libs_dir: Optional[str | os.PathLike] = None,
        workdir: Optional[str | os.PathLike] = None,
        port: Optional[int] = None,
        controller_port: Optional[int] = None,
        extra_props: Optional[dict] = None,
        jvm_opts: Optional[Sequence[str]] = None,
        ready_timeout: float = 90.0,
        keep: Optional[bool] = None,
        security: Optional[BrokerSecurity] = None,
    ) -> None:
        self.libs_dir = Path(libs_dir) if libs_dir else None
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.port = port
        self.controller_port = controller_port
        self.extra_props = dict(extra_props or {})
        env_opts = os.environ.get("BRW_KAFKA_JVM_OPTS")
        self.jvm_opts = list(jvm_opts) if jvm_opts is not None else (
            shlex.split(env_opts) if env_opts else list(DEFAULT_JVM_OPTS))
        self.ready_timeout = ready_timeout
        self.keep = keep if keep is not None else os.environ.get("KEEP_KAFKA") == "1"
        self.proc: Optional[subprocess.Popen] = None
        self.cluster_id: Optional[str] = None
        self.formatted = False
        self.ready_seconds: Optional[float] = None  # last start-to-ready time
        self._log_offset = 0
        self.security = security
        self.extra_ports: dict = {}  # listener name -> port (security)

    # -- paths

    @property
    def bootstrap(self) -> str:
        """host:port of the PLAINTEXT listener."""
        return f"127.0.0.1:{self.port}"

    def listener(self, name: str) -> str:
        """host:port of an extra listener (BrokerSecurity.LISTENERS)."""
        return f"127.0.0.1:{self.extra_ports[name]}"

    @property
    def pki_dir(self) -> Path:
        """The certificates of the TLS listeners (scripts/kafka-pki.sh)."""
        return self.workdir / "pki"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    # -- configuration

    def properties(self) -> dict:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # Topics are created explicitly by the tests.
            "auto.create.topics.enable": "false",
            # One broker: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "share.coordinator.state.topic.num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            # Groups form at once instead of after 3 s.
            "group.initial.rebalance.delay.ms": "0",
            # Lets tests use short session timeouts (default minimum 6 s).
            "group.min.session.timeout.ms": "1000",
            # After a SIGKILL the restarted broker cannot register until the
            # old registration's session expires (default 9 s).
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "4000",
            # Small test machine.
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "background.threads": "2",
            "log.cleaner.dedupe.buffer.size": str(4 * 1024 * 1024),
            "log.initial.task.delay.ms": "1000",
        }
        if self.security is not None:
            props.update(self._security_properties())
        props.update({k: str(v) for k, v in self.extra_props.items()})
        return props

    def _security_properties(self) -> dict:
        """The extra listeners of BrokerSecurity; PEM stores (Kafka >= 2.7).
        The keystore and truststore apply to every TLS listener; MTLS adds
        the required client certificate, BADNAME its other certificate."""
        sec = self.security
        names = BrokerSecurity.LISTENERS
        extra = ",".join(f"{n}://127.0.0.1:{self.extra_ports[n]}" for n in names)
        pmap = ",".join(f"{n}:{BrokerSecurity.PROTOCOLS[n]}" for n in names)
        plain = " ".join(f"user_{u}={_jaas_quote(pw)}" for u, pw in sec.plain_users.items())
        pki = self.pki_dir
        return {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},{extra},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},{extra},"
                                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,{pmap}",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(pki / "broker.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(pki / "ca.pem"),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.badname.ssl.keystore.location": str(pki / "badname.pem"),
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl_ssl.plain.sasl.jaas.config":
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain};",
        }

    def _write_config(self) -> None:
        lines = ["# Written by tests/integration/harness.py"]
        lines += [f"{k}={v}" for k, v in self.properties().items()]
        self.config_path.write_text("\n".join(lines) + "\n")

    def _java_cmd(self, main: str, *args: str, heap_opts: Optional[Sequence[str]] = None) -> list[str]:
        opts = list(heap_opts) if heap_opts is not None else self.jvm_opts
        return [
            _java(), *opts,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp", f"{self.libs_dir}/*",
            main, *args,
        ]

    def _format(self) -> None:
        """kafka.tools.StorageTool format --standalone (once per data dir)."""
        self.cluster_id = kafka_cluster_id()
        scram = []
        for user, pw in (self.security.scram_users.items() if self.security else ()):
            scram += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={pw}]"]
        cmd = self._java_cmd(
            "kafka.tools.StorageTool", "format", "--standalone",
            "-t", self.cluster_id, "-c", str(self.config_path), *scram,
            heap_opts=["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                       "-Dbrw.kafka.loglevel=WARN"],
        )
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        with open(self.workdir / "format.log", "w") as f:
            f.write(shlex.join(_hide_scram(cmd)) + "\n" + res.stdout)
        if res.returncode != 0:
            raise RuntimeError(f"kafka StorageTool format failed ({res.returncode}):\n{res.stdout[-4000:]}")
        self.formatted = True

    def _make_pki(self) -> None:
        """scripts/kafka-pki.sh into pki_dir (a few hundred ms)."""
        script = SCRIPTS_DIR / "kafka-pki.sh"
        argv = [str(script), str(self.pki_dir)]
        if self.security.client_key_password:
            argv.append(self.security.client_key_password)
        res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
        if res.returncode != 0:
            raise RuntimeError(f"{script} failed ({res.returncode}):\n{res.stdout[-4000:]}")

    # -- life cycle

    def start(self) -> "KafkaBroker":
        """Fresh temp dir and ports, format, start, wait until ready. On
        failure the broker is killed and its temp dir removed (unless
        KEEP_KAFKA=1) before the exception propagates."""
        try:
            return self._start()
        except BaseException:
            self._kill_quietly()
            self.stop()
            raise

    def _start(self) -> "KafkaBroker":
        if self.libs_dir is None:
            self.libs_dir = kafka_libs_dir()
        if not self.libs_dir.is_dir():
            raise RuntimeError(f"no Kafka libs dir at {self.libs_dir}")
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="brw-kafka-", dir=os.environ.get("BRW_TEST_TMPDIR")))
        self.workdir.mkdir(parents=True, exist_ok=True)
        attempts = 3 if (self.port is None and self.controller_port is None) else 1
        for attempt in range(1, attempts + 1):
            if self.port is None or attempt > 1:
                self.port = free_port()
            if self.controller_port is None or attempt > 1:
                self.controller_port = free_port()
                while self.controller_port == self.port:
                    self.controller_port = free_port()
            if self.security is not None:
                taken = {self.port, self.controller_port}
                for name in BrokerSecurity.LISTENERS:
                    if attempt > 1 or name not in self.extra_ports:
                        port = free_port()
                        while port in taken:
                            port = free_port()
                        self.extra_ports[name] = port
                    taken.add(self.extra_ports[name])
                if attempt == 1:
                    self._make_pki()
            if attempt > 1 and self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            self._write_config()
            self._format()
            try:
                self._launch()
                return self
            except _BindError:
                log(f"port taken (attempt {attempt}), retrying with other ports")
                self._kill_quietly()
        raise RuntimeError("Kafka broker could not bind its ports")

    def start_again(self, ready_timeout: Optional[float] = None) -> "KafkaBroker":
        """Start the broker process again on the same data dir and ports
        (after stop_broker_process())."""
        if self.running():
            raise RuntimeError("broker is still running")
        if not self.formatted:
            raise RuntimeError("start() first")
        self._launch(ready_timeout)
        return self

    def _launch(self, ready_timeout: Optional[float] = None) -> None:
        timeout = ready_timeout or self.ready_timeout
        with open(self.log_path, "ab") as f:
            self._log_offset = f.tell()
            f.write(f"==== harness: starting broker at {time.strftime('%H:%M:%S')} ====\n".encode())
            f.flush()
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                self._java_cmd("kafka.Kafka", str(self.config_path)),
                stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                cwd=self.workdir, start_new_session=True, preexec_fn=_child_setup,
            )
        log(f"kafka broker pid {self.proc.pid} starting on {self.bootstrap} (dir {self.workdir})")
        deadline = t0 + timeout
        while True:
            text = self._log_since_launch()
            # The log line, or (should logging be broken) a metadata request
            # answered: the listener serves requests only once started.
            if (self.READY_LINE in text and self._metadata_ok(5.0)) or (
                    wait_port("127.0.0.1", self.port, 0.05) and self._metadata_ok(1.0)):
                self.ready_seconds = time.monotonic() - t0
                log(f"kafka broker ready on {self.bootstrap} in {self.ready_seconds:.2f} s")
                return
            if self.proc.poll() is not None:
                if "BindException" in text or "Address already in use" in text:
                    raise _BindError()
                self.print_log_tail()
                raise RuntimeError(f"kafka broker exited ({self.proc.returncode}) while starting")
            if time.monotonic() >= deadline:
                self.print_log_tail()
                self._kill_quietly()
                raise TimeoutError(f"kafka broker not ready within {timeout} s")
            time.sleep(0.05)

    def _log_since_launch(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _metadata_ok(self, timeout: float) -> bool:
        """A metadata request answered by this broker."""
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError:
            return wait_port("127.0.0.1", self.port, timeout)
        try:
            md = AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=timeout)
            return 1 in md.brokers
        except Exception:  # noqa: BLE001
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop_broker_process(self, kill: bool = False, timeout: float = 30.0) -> Optional[int]:
        """Stop the JVM, keep the data dir: SIGTERM (clean shutdown), SIGKILL
        after timeout; kill=True sends SIGKILL at once (a crash)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.resume()
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"kafka broker ignored SIGTERM for {timeout} s: SIGKILL")
                self.proc.kill()
                self.proc.wait()
        log(f"kafka broker stopped ({self.proc.returncode})")
        return self.proc.returncode

    def suspend(self) -> None:
        """SIGSTOP the broker: connections stay open, nothing answers."""
        if self.running():
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running():
            os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker and remove its temp dir (unless KEEP_KAFKA=1)."""
        self.stop_broker_process(timeout=timeout)
        if self.workdir and self._own_workdir:
            if self.keep:
                log(f"KEEP_KAFKA=1: kept {self.workdir}")
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def print_log_tail(self, lines: int = 60) -> None:
        if self.workdir is not None:
            print(f"----- last lines of {self.log_path} -----\n{_tail(self.log_path, lines)}\n-----",
                  file=sys.stderr, flush=True)

    def __enter__(self) -> "KafkaBroker":
        return self if self.running() else self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None and exc_type is not KeyboardInterrupt:
            self.print_log_tail()
        self.stop()

    def set_scram_password(self, user: str, password: str, timeout: float = 60.0) -> None:
        """Creates or changes a SCRAM-SHA-512 user on the running broker
        (kafka.admin.ConfigCommand over PLAINTEXT, as kafka-configs.sh
        --alter --add-config does; a JVM start, ~3 s)."""
        cmd = self._java_cmd(
            "kafka.admin.ConfigCommand", "--bootstrap-server", self.bootstrap,
            "--alter", "--entity-type", "users", "--entity-name", user,
            "--add-config", f"SCRAM-SHA-512=[iterations=4096,password={password}]",
            heap_opts=["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                       "-Dbrw.kafka.loglevel=WARN"],
        )
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=timeout)
        if res.returncode != 0:
            raise RuntimeError(f"ConfigCommand failed ({res.returncode}):\n"
                               f"{res.stdout[-4000:].replace(password, '...')}")

    # -- topics

    def create_topics(self, topics: dict, config: Optional[dict] = None, timeout: float = 30.0) -> None:
        """Create topics {name: partitions} (replication factor 1) and wait
        until every partition has a leader."""
        create_topics(self.bootstrap, topics, config=config, timeout=timeout)


class _BindError(Exception):
    pass


def _hide_scram(cmd: list) -> list:
    """The format command line for its log, SCRAM passwords hidden."""
    out = []
    for a in cmd:
        if a.startswith("SCRAM-SHA-") and ",password=" in a:
            a = a.split(",password=", 1)[0] + ",password=...]"
        out.append(a)
    return out


# ---------------------------------------------------------------------------
# Kafka client helpers (confluent_kafka)


def _ck():
    try:
        import confluent_kafka
    except ImportError as e:  # pragma: no cover
        raise RuntimeError(
            "confluent_kafka missing: run the tests with /usr/bin/python3 "
            "(Debian's python3-confluent-kafka; scripts/install-deps.sh)"
        ) from e
    return confluent_kafka


def create_topics(bootstrap: str, topics: dict, config: Optional[dict] = None, timeout: float = 30.0) -> None:
    """Create topics {name: partitions}, replication factor 1, and wait until
    every partition's leader answers (a ListOffsets request succeeds: the
    metadata names the leader a little before the broker serves it)."""
    _ck()
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(name, int(n), 1, config=dict(config or {})) for name, n in topics.items()]
    for name, fut in admin.create_topics(new, request_timeout=timeout).items():
        fut.result(timeout)
    deadline = time.monotonic() + timeout
    for name, n in topics.items():
        offs = end_offsets(bootstrap, name, timeout=max(1.0, deadline - time.monotonic()))
        if len(offs) != int(n):
            raise RuntimeError(f"topic {name}: {len(offs)} partitions, want {n}")


def _b(x) -> Optional[bytes]:
    if x is None or isinstance(x, bytes):
        return x
    return str(x).encode()


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable,
    config: Optional[dict] = None,
    timeout: float = 30.0,
) -> list[tuple[int, int]]:
    """Produce records and wait for every delivery report.

    Each record: (key, value), (key, value, headers) or (key, value, headers,
    partition); str is encoded as UTF-8; headers a list of (name, value) or a
    dict. The producer is idempotent with acks=all. Returns (partition,
    offset) per record, in order; raises on any delivery error."""
    ck = _ck()
    conf = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    conf.update(config or {})
    p = ck.Producer(conf)
    results: list = []
    errors: list = []

    for i, rec in enumerate(records):
        rec = tuple(rec)
        key, value = rec[0], rec[1]
        headers = rec[2] if len(rec) > 2 else None
        partition = rec[3] if len(rec) > 3 else None
        if isinstance(headers, dict):
            headers = list(headers.items())
        if headers:
            headers = [(str(k), _b(v)) for k, v in headers]
        results.append(None)

        def cb(err, msg, i=i):
            if err is not None:
                errors.append((i, err))
            else:
                results[i] = (msg.partition(), msg.offset())

        kwargs = {"key": _b(key), "value": _b(value), "on_delivery": cb}
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = int(partition)
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(timeout)
    if errors:
        raise RuntimeError(f"produce to {topic}: {len(errors)} failed, first: {errors[0]}")
    if remaining:
        raise TimeoutError(f"produce to {topic}: {remaining} not delivered within {timeout} s")
    return results


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    headers: list = field(default_factory=list)  # [(name, bytes)]
    timestamp: int = 0

    def header(self, name: str) -> Optional[bytes]:
        """The last header with this name, or None."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None

    def json(self):
        return json.loads(self.value)


def consume_all(
    bootstrap: str,
    topic: str,
    until: Optional[Callable[[list], bool]] = None,
    count: Optional[int] = None,
    timeout: float = 30.0,
    config: Optional[dict] = None,
    or_end: bool = False,
) -> list[Record]:
    """Read a topic from the beginning of every partition.

    Stops when until(records) is true, when count records were read, or -
    with neither, or with or_end - when every partition is read to its end;
    otherwise at the timeout, returning what was read (check it). Uses a
    fresh group id and assign() (no group join), auto.offset.reset=earliest,
    isolation read_committed, and commits nothing."""
    ck = _ck()
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"harness-{uuid.uuid4().hex[:12]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "isolation.level": "read_committed",
    }
    conf.update(config or {})
    c = ck.Consumer(conf)
    records: list[Record] = []
    try:
        deadline = time.monotonic() + timeout
        md = c.list_topics(topic, timeout=min(10.0, timeout))
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None:
            raise RuntimeError(f"topic {topic}: {tmd.error if tmd else 'unknown'}")
        parts = sorted(tmd.partitions)
        c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
        eof: set = set()

        def done() -> bool:
            if or_end and len(eof) == len(parts):
                return True
            if until is not None:
                return bool(until(records))
            if count is not None:
                return len(records) >= count
            return len(eof) == len(parts)

        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                log(f"consume_all({topic}): timeout after {timeout} s with {len(records)} records")
                break
            msg = c.poll(min(left, 0.5))
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == ck.KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                    continue
                raise RuntimeError(f"consume {topic}: {msg.error()}")
            eof.discard(msg.partition())
            records.append(Record(
                topic=msg.topic(), partition=msg.partition(), offset=msg.offset(),
                key=msg.key(), value=msg.value(), headers=list(msg.headers() or []),
                timestamp=msg.timestamp()[1],
            ))
    finally:
        c.close()
    return records


def end_offsets(bootstrap: str, topic: str, timeout: float = 10.0) -> dict:
    """{partition: high watermark} of a topic. Retries transient errors
    (unknown topic, no leader yet) until the timeout."""
    ck = _ck()
    c = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"harness-{uuid.uuid4().hex[:12]}"})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                md = c.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
                tmd = md.topics.get(topic)
                if tmd is None or tmd.error is not None or not tmd.partitions:
                    raise ck.KafkaException(tmd.error if tmd is not None else "no such topic")
                out = {}
                for p in sorted(tmd.partitions):
                    left = max(1.0, deadline - time.monotonic())
                    out[p] = c.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=left)[1]
                return out
            except ck.KafkaException as e:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"end offsets of {topic}: {e}") from e
                time.sleep(0.1)
    finally:
        c.close()


# -- committed offsets, with metadata, through librdkafka directly ---------
#
# python-confluent-kafka 1.7.0 has no TopicPartition.metadata, but the
# worker commits metadata (SPEC §6). These helpers call the same librdkafka
# (Debian's librdkafka.so.1) through ctypes.


class _RdTopicPartition(ctypes.Structure):
    _fields_ = [
        ("topic", ctypes.c_char_p),
        ("partition", ctypes.c_int32),
        ("offset", ctypes.c_int64),
        ("metadata", ctypes.c_void_p),
        ("metadata_size", ctypes.c_size_t),
        ("opaque", ctypes.c_void_p),
        ("err", ctypes.c_int),
        ("_private", ctypes.c_void_p),
    ]


class _RdTopicPartitionList(ctypes.Structure):
    _fields_ = [
        ("cnt", ctypes.c_int),
        ("size", ctypes.c_int),
        ("elems", ctypes.POINTER(_RdTopicPartition)),
    ]


_rd = None


def _librdkafka():
    global _rd
    if _rd is not None:
        return _rd
    rd = ctypes.CDLL(ctypes.util.find_library("rdkafka") or "librdkafka.so.1")
    P = ctypes.c_void_p
    rd.rd_kafka_conf_new.restype = P
    rd.rd_kafka_conf_set.argtypes = [P, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    rd.rd_kafka_conf_set.restype = ctypes.c_int
    rd.rd_kafka_new.argtypes = [ctypes.c_int, P, ctypes.c_char_p, ctypes.c_size_t]
    rd.rd_kafka_new.restype = P
    rd.rd_kafka_topic_partition_list_new.argtypes = [ctypes.c_int]
    rd.rd_kafka_topic_partition_list_new.restype = ctypes.POINTER(_RdTopicPartitionList)
    rd.rd_kafka_topic_partition_list_add.argtypes = [ctypes.POINTER(_RdTopicPartitionList), ctypes.c_char_p,
                                                     ctypes.c_int32]
    rd.rd_kafka_topic_partition_list_add.restype = ctypes.POINTER(_RdTopicPartition)
    rd.rd_kafka_topic_partition_list_destroy.argtypes = [ctypes.POINTER(_RdTopicPartitionList)]
    rd.rd_kafka_committed.argtypes = [P, ctypes.POINTER(_RdTopicPartitionList), ctypes.c_int]
    rd.rd_kafka_committed.restype = ctypes.c_int
    rd.rd_kafka_commit.argtypes = [P, ctypes.POINTER(_RdTopicPartitionList), ctypes.c_int]
    rd.rd_kafka_commit.restype = ctypes.c_int
    rd.rd_kafka_mem_malloc.argtypes = [P, ctypes.c_size_t]
    rd.rd_kafka_mem_malloc.restype = P
    rd.rd_kafka_consumer_close.argtypes = [P]
    rd.rd_kafka_consumer_close.restype = ctypes.c_int
    rd.rd_kafka_destroy.argtypes = [P]
    rd.rd_kafka_err2str.argtypes = [ctypes.c_int]
    rd.rd_kafka_err2str.restype = ctypes.c_char_p
    rd.rd_kafka_version_str.restype = ctypes.c_char_p
    _rd = rd
    return rd


class _RdConsumer:
    """A bare librdkafka consumer handle (no subscription) for group offsets."""

    def __init__(self, bootstrap: str, group: str) -> None:
        rd = _librdkafka()
        self.rd = rd
        conf = rd.rd_kafka_conf_new()
        err = ctypes.create_string_buffer(512)
        for k, v in (("bootstrap.servers", bootstrap), ("group.id", group),
                     ("enable.auto.commit", "false"), ("log_level", "3")):
            if rd.rd_kafka_conf_set(conf, k.encode(), v.encode(), err, 512) != 0:
                raise RuntimeError(f"rd_kafka_conf_set {k}: {err.value.decode()}")
        self.rk = rd.rd_kafka_new(1, conf, err, 512)  # RD_KAFKA_CONSUMER
        if not self.rk:
            raise RuntimeError(f"rd_kafka_new: {err.value.decode()}")

    def close(self) -> None:
        if self.rk:
            self.rd.rd_kafka_consumer_close(self.rk)
            self.rd.rd_kafka_destroy(self.rk)
            self.rk = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int], timeout: float = 10.0
) -> dict:
    """{partition: (offset, metadata)} committed by a consumer group; offset
    is None where nothing is committed, metadata a str ('' when empty; bytes
    if not UTF-8). Reads through librdkafka's rd_kafka_committed()."""
    parts = list(partitions)
    with _RdConsumer(bootstrap, group) as c:
        rd = c.rd
        lst = rd.rd_kafka_topic_partition_list_new(len(parts))
        try:
            for p in parts:
                rd.rd_kafka_topic_partition_list_add(lst, topic.encode(), p)
            e = rd.rd_kafka_committed(c.rk, lst, int(timeout * 1000))
            if e != 0:
                raise RuntimeError(f"rd_kafka_committed: {rd.rd_kafka_err2str(e).decode()}")
            out = {}
            for i in range(lst.contents.cnt):
                el = lst.contents.elems[i]
                if el.err != 0:
                    raise RuntimeError(f"committed {topic}[{el.partition}]: {rd.rd_kafka_err2str(el.err).decode()}")
                meta = b""
                if el.metadata and el.metadata_size:
                    meta = ctypes.string_at(el.metadata, el.metadata_size)
                try:
                    meta_out = meta.decode("utf-8")
                except UnicodeDecodeError:
                    meta_out = meta
                out[el.partition] = (el.offset if el.offset >= 0 else None, meta_out)
            return out
        finally:
            rd.rd_kafka_topic_partition_list_destroy(lst)


def commit_offsets(bootstrap: str, group: str, topic: str, offsets: dict) -> None:
    """Commit {partition: offset or (offset, metadata)} for a group that has
    no active members (as the worker's rd_kafka_commit() would, metadata
    included). Raises on any error."""
    with _RdConsumer(bootstrap, group) as c:
        rd = c.rd
        lst = rd.rd_kafka_topic_partition_list_new(len(offsets))
        try:
            for p, v in offsets.items():
                off, meta = (v if isinstance(v, tuple) else (v, None))
                el = rd.rd_kafka_topic_partition_list_add(lst, topic.encode(), int(p))
                el.contents.offset = int(off)
                if meta:
                    data = _b(meta)
                    buf = rd.rd_kafka_mem_malloc(c.rk, len(data))  # freed by list_destroy
                    ctypes.memmove(buf, data, len(data))
                    el.contents.metadata = buf
                    el.contents.metadata_size = len(data)
            e = rd.rd_kafka_commit(c.rk, lst, 0)  # synchronous
            if e != 0:
                raise RuntimeError(f"rd_kafka_commit: {rd.rd_kafka_err2str(e).decode()}")
            for i in range(lst.contents.cnt):
                el = lst.contents.elems[i]
                if el.err != 0:
                    raise RuntimeError(f"commit {topic}[{el.partition}]: {rd.rd_kafka_err2str(el.err).decode()}")
        finally:
            rd.rd_kafka_topic_partition_list_destroy(lst)


def librdkafka_version() -> str:
    return _librdkafka().rd_kafka_version_str().decode()
