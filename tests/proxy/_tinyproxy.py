"""tinyproxy, the Debian package, run in the foreground with its own configuration in a temp
directory: the real forward proxy the proxy tests go through (its log shows each CONNECT)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from tests._binaries import require_binary


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tinyproxy:
    """``Tinyproxy(directory, connect_ports=[...], basic_auth=("user", "pass"))`` as a context
    manager. ``connect_ports`` empty: tinyproxy allows CONNECT to every port."""

    def __init__(self, directory: Path, *, connect_ports: Sequence[int] = (),
                 basic_auth: tuple[str, str] | None = None) -> None:
        self._binary = require_binary("tinyproxy")
        self.directory = directory
        self.port = free_port()
        self.log_file = directory / "tinyproxy.log"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Allow 127.0.0.1", "Timeout 30", "MaxClients 20",
                 f'LogFile "{self.log_file}"', "LogLevel Info", f'PidFile "{directory / "tinyproxy.pid"}"']
        lines += [f"ConnectPort {port}" for port in connect_ports]
        if basic_auth is not None:
            lines.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
        self.config = directory / "tinyproxy.conf"
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Tinyproxy:
        self._process = subprocess.Popen([self._binary, "-d", "-c", str(self.config)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        for _ in range(200):
            if self._process.poll() is not None:
                detail = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"tinyproxy exited: {detail}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tinyproxy did not start listening")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()

    def log(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file.exists() else ""

    def connect_requests(self) -> list[str]:
        """The CONNECT targets in the log, in order (``localhost:8443``)."""
        return [line.rpartition(": CONNECT ")[2].split()[0] for line in self.log().splitlines()
                if "Request (file descriptor" in line and ": CONNECT " in line]
