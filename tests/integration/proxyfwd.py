"""A forward HTTP proxy for the proxy tests: Debian's tinyproxy (package
tinyproxy; its own service is not used) run as a child process in the
foreground (`tinyproxy -d -c CONF`) with a configuration of its own, on a
free port of 127.0.0.1 (or a port the test chose, to bring a proxy up where
a worker already points).

    proxy = ForwardProxy(workdir).start()
    proxy.url                 # http://127.0.0.1:P
    proxy = ForwardProxy(workdir, auth=("user", "pass")).start()
    proxy.url                 # http://user:pass@127.0.0.1:P (BasicAuth)
    proxy.connects()          # ["127.0.0.1:443", ...] from its log
    proxy.status_of_connect("127.0.0.1:443")   # 200, or 407 without auth
    proxy.stop()

The configuration: Listen 127.0.0.1, Allow 127.0.0.1 only, no ConnectPort
line (tinyproxy then allows CONNECT to every port: the TLS front is on a
random one), LogLevel Connect (each request line, without Info's noise) to
a log file the test reads, no PidFile, no User (as root tinyproxy warns
"You SHOULD set a UserName" and keeps running as the current user).
"""

from __future__ import annotations

import base64
import re
import shutil
import socket
from pathlib import Path
from typing import Optional

from harness import Proc, free_port, wait_port

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"

# LogLevel Connect writes, for each request a client sends:
#   CONNECT   Dec 05 22:53:43.703 [8148]: Request (file descriptor 5): CONNECT 127.0.0.1:9 HTTP/1.1
_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")


class ForwardProxy:
    def __init__(self, workdir: Path, name: str = "tinyproxy", port: Optional[int] = None,
                 auth: Optional[tuple[str, str]] = None) -> None:
        self.dir = Path(workdir) / name
        self.name = name
        self.port = port or free_port()
        self.auth = auth
        self.proc: Optional[Proc] = None

    @property
    def log_path(self) -> Path:
        return self.dir / "tinyproxy.log"

    @property
    def url(self) -> str:
        """The proxy's URL, with the credentials when it asks for them."""
        cred = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"http://{cred}127.0.0.1:{self.port}"

    def start(self) -> "ForwardProxy":
        if not Path(TINYPROXY).exists():
            raise RuntimeError("tinyproxy not found: run scripts/install-deps.sh (tinyproxy)")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "tinyproxy.conf"
        conf.write_text(self._conf())
        self.proc = Proc([TINYPROXY, "-d", "-c", str(conf)], self.dir, name=self.name).start()
        if not wait_port("127.0.0.1", self.port, timeout=15):
            self.proc.print_tail()
            raise RuntimeError(f"tinyproxy did not listen on {self.port}")
        return self

    def _conf(self) -> str:
        auth = f"BasicAuth {self.auth[0]} {self.auth[1]}\n" if self.auth else ""
        # Timeout: idle seconds before tinyproxy drops a connection, here
        # longer than any test so that a kept-alive tunnel stays up.
        return f"""Listen 127.0.0.1
Port {self.port}
Timeout 600
MaxClients 200
Allow 127.0.0.1
LogFile "{self.log_path}"
LogLevel Connect
DisableViaHeader Yes
{auth}"""

    def requests(self) -> list[tuple[str, str]]:
        """(method, target) of every request the proxy received, in order,
        from its log (CONNECT's target is host:port)."""
        if not self.log_path.exists():
            return []
        return _REQUEST.findall(self.log_path.read_text(errors="replace"))

    def connects(self) -> list[str]:
        """host:port of every CONNECT the proxy received."""
        return [t for m, t in self.requests() if m == "CONNECT"]

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def status_of_connect(self, target: str, with_auth: bool = False,
                          timeout: float = 5.0) -> int:
        """The status line's code of a CONNECT to target through the proxy,
        sent by hand (credentials only when with_auth); the tunnel is closed
        at once."""
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if with_auth and self.auth:
            tok = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            head += f"Proxy-Authorization: Basic {tok}\r\n"
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall((head + "\r\n").encode())
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        parts = data.split(b"\r\n", 1)[0].split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0

    def running(self) -> bool:
        return bool(self.proc and self.proc.running())

    def stop(self) -> None:
        if self.proc and self.proc.running():
            self.proc.terminate(timeout=10)
