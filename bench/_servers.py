"""Servers for the bench, each in a process of its own so that the client is what is measured.

A *site* is a server plus what a client needs to talk to it: a throwaway PKI (client JKS, PEMs,
the partner's root) and an alias directory whose ``partner`` and ``ledger`` aliases point at it.

- ``start_nginx_site``: nginx (when installed) answering every path with a fixed account JSON,
  client certificate required. Handshakes are counted from its access log.
- ``start_partner_site``: ``flowrun.testing.PartnerServer`` (REST and the SOAP Ledger) in a child
  Python process, driven over its stdin/stdout (``python bench/_servers.py partner DIR``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flowrun.testing import Pki

PASSWORD_ENV = "FLOWRUN_BENCH_KEYSTORE_PASSWORD"
ACCOUNT_JSON = '{"account":"42","balance":1234.5,"currency":"EUR"}'
_READY_TIMEOUT_S = 30.0


class ServerError(RuntimeError):
    """A bench server could not start or answer."""


@dataclass(frozen=True)
class PkiPaths:
    root_pem: Path
    chain_pem: Path
    client_jks: Path
    client_cert_pem: Path  # leaf + intermediate + root
    client_key_pem: Path   # encrypted with the keystore password
    client_plain_key_pem: Path  # unencrypted, for clients that take no password (requests, newman)
    server_cert_pem: Path
    server_key_pem: Path

    def to_json(self) -> dict[str, str]:
        return {name: str(value) for name, value in self.__dict__.items()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> PkiPaths:
        return cls(**{name: Path(value) for name, value in data.items()})


class Server(Protocol):
    kind: str
    url: str

    def handshakes(self) -> int:
        """Completed TLS handshakes so far (one per client connection)."""
        ...

    def close(self) -> None: ...


@dataclass
class Site:
    server: Server
    pki: PkiPaths
    aliases_dir: Path
    directory: Path

    @property
    def url(self) -> str:
        return self.server.url

    def close(self) -> None:
        self.server.close()


def keystore_password() -> str:
    """The throwaway keystore password, shared with child processes through the environment."""
    password = os.environ.get(PASSWORD_ENV)
    if not password:
        password = os.urandom(12).hex()
        os.environ[PASSWORD_ENV] = password
    return password


# --- PKI and alias records ------------------------------------------------------------------------


def write_pki(directory: Path, password: str) -> PkiPaths:
    """A fresh PKI under ``directory`` (keys and keystores 0600)."""
    return make_pki_files(directory, password)[1]


def make_pki_files(directory: Path, password: str) -> tuple[Pki, PkiPaths]:
    from cryptography.hazmat.primitives import serialization

    from flowrun.testing import make_pki

    # RSA-2048, as most users' keystores are (an EC key would flatter the handshake and the key load).
    pki = make_pki(hostnames=("localhost", "127.0.0.1"), key_type="rsa")
    files = pki.write(directory, keystore_password=password)
    plain_key = directory / "keystores" / "client-key-plain.pem"
    plain_key.touch(mode=0o600)
    plain_key.write_bytes(pki.client.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return pki, PkiPaths(
        root_pem=files.root_pem, chain_pem=files.chain_pem, client_jks=files.client.jks,
        client_cert_pem=files.client.cert_pem, client_key_pem=files.client.key_pem,
        client_plain_key_pem=plain_key, server_cert_pem=files.server_cert_pem,
        server_key_pem=files.server_key_pem,
    )


def identity_records(pki: PkiPaths, aliases_dir: Path) -> list[dict[str, object]]:
    """Keystore, trust cert, protocol profile and credential that every bench alias uses.

    As a user's alias: system trust on plus the partner's root (the reference clients get the
    very SSLContext flowrun built from it, so both trust the same)."""
    return [
        {"kind": "keystore", "name": "bench_client", "type": "jks",
         "file": os.path.relpath(pki.client_jks, aliases_dir), "password": {"env": PASSWORD_ENV},
         "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "bench_root", "format": "pem",
         "file": os.path.relpath(pki.root_pem, aliases_dir)},
        {"kind": "protocol_profile", "name": "benchMTLS", "port": 443, "keystore": "bench_client",
         "trust_store_certs": ["bench_root"], "use_system_trust": True},
        {"kind": "credential", "name": "bench_none", "type": "none"},
    ]


# The canonical example's policy: every call pays for having one, none is ever retried here.
RETRY_POLICY = {"strategy": "exponential", "count": 3, "interval_s": 0.5, "on_status": [429, 502, 503, 504]}


def alias_record(name: str, url: str, base_path: str = "") -> dict[str, object]:
    return {"kind": "alias", "name": name,
            "connection": {"url": f"{url}{base_path}", "mutual_authentication": True,
                           "protocol_profile": "benchMTLS", "credential": "bench_none", "timeout_s": 30},
            "retry_policy": RETRY_POLICY}


def write_aliases(aliases_dir: Path, pki: PkiPaths, url: str) -> None:
    """``partner`` (REST, at the server's root) and ``ledger`` (the SOAP service at /ledger)."""
    aliases_dir.mkdir(parents=True, exist_ok=True)
    records = [*identity_records(pki, aliases_dir), alias_record("partner", url),
               alias_record("ledger", url, "/ledger")]
    (aliases_dir / "bench.json").write_text(json.dumps(records, indent=1))


# --- nginx ----------------------------------------------------------------------------------------


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (str(p) for p in (Path("/usr/sbin/nginx"), Path("/usr/local/sbin/nginx")) if p.exists()), None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def nginx_config(directory: Path, pki: PkiPaths, port: int, password_file: Path) -> str:
    # As root, nginx would switch its worker to "nobody": keep the current user instead.
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"  {kind}_temp_path {directory / ('tmp-' + kind)};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}worker_processes 1;
daemon off;
master_process on;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  log_format bench '$connection $connection_requests $status';
  access_log {directory / "access.log"} bench;
{temp}
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {pki.server_cert_pem};
    ssl_certificate_key {pki.server_key_pem};
    ssl_password_file {password_file};
    ssl_client_certificate {pki.chain_pem};
    ssl_verify_client on;
    ssl_verify_depth 3;
    location / {{
      default_type application/json;
      return 200 '{ACCOUNT_JSON}';
    }}
  }}
}}
"""


class NginxServer:
    kind = "nginx"

    def __init__(self, executable: str, directory: Path, pki: PkiPaths, password: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        password_file = directory / "ssl-password"
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        self._access_log = directory / "access.log"
        self._error_log = directory / "error.log"
        port = free_port()
        conf = directory / "nginx.conf"
        conf.write_text(nginx_config(directory, pki, port, password_file))
        self.url = f"https://localhost:{port}"
        self._process = subprocess.Popen(
            # -e: the error log from the very start (before the configuration is read).
            [executable, "-p", str(directory), "-c", str(conf), "-e", str(self._error_log)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        try:
            _wait_for_port(port, self._process, lambda: _tail(self._error_log))
        except BaseException:
            self.close()
            raise

    def handshakes(self) -> int:
        # One log line per request: "$connection $connection_requests $status"; a connection's
        # first request marks its handshake.
        with self._access_log.open() as log:
            return sum(1 for line in log if line.split()[1:2] == ["1"])

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


def start_nginx_site(directory: Path) -> Site:
    executable = nginx_path()
    if executable is None:
        raise ServerError("nginx is not installed")
    password = keystore_password()
    pki = write_pki(directory / "pki", password)
    server = NginxServer(executable, directory / "nginx", pki, password)
    aliases_dir = directory / "aliases"
    write_aliases(aliases_dir, pki, server.url)
    return Site(server, pki, aliases_dir, directory)


# --- the Python partner in a child process --------------------------------------------------------


class PartnerProcess:
    """``PartnerServer`` in a child process; asked for its counters over a pipe."""

    kind = "python partner"

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._log = (directory / "partner.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "partner", str(directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        )
        try:
            ready = self._read_line()
        except BaseException:
            self.close()
            raise
        self.url = str(ready["url"])
        self.pki = PkiPaths.from_json(ready["pki"])  # type: ignore[arg-type]

    def _read_line(self) -> dict[str, object]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            self._log.flush()
            raise ServerError(f"the partner process ended (exit {self._process.returncode}); "
                              f"see {self._log.name}")
        data: dict[str, object] = json.loads(line)
        return data

    def stats(self) -> dict[str, object]:
        assert self._process.stdin is not None
        self._process.stdin.write("stats\n")
        self._process.stdin.flush()
        return self._read_line()

    def handshakes(self) -> int:
        handshakes = self.stats()["handshakes"]
        assert isinstance(handshakes, int)
        return handshakes

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                assert self._process.stdin is not None
                self._process.stdin.close()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()


def start_partner_site(directory: Path) -> Site:
    keystore_password()
    server = PartnerProcess(directory / "partner")
    aliases_dir = directory / "aliases"
    write_aliases(aliases_dir, server.pki, server.url)
    return Site(server, server.pki, aliases_dir, directory)


def _serve_partner(directory: Path) -> int:
    """The child's side: make the PKI, serve, answer ``stats`` lines until stdin closes."""
    from flowrun.testing import PartnerServer

    pki, pki_paths = make_pki_files(directory / "pki", os.environ[PASSWORD_ENV])
    with PartnerServer(pki) as partner:
        _send({"url": partner.url, "pki": pki_paths.to_json()})
        for line in sys.stdin:
            if line.strip() == "stats":
                requests = partner.requests
                _send({"handshakes": partner.handshakes,
                       "wsdl_fetches": sum(1 for r in requests
                                           if r.method == "GET" and any(k.lower() == "wsdl" for k, _ in r.query)),
                       "requests": len(requests)})
    return 0


def _send(data: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


# --- a partner with latency ------------------------------------------------------------------------


class LatencyProcess:
    """A small asyncio HTTPS server in a child process that answers every GET with the account JSON
    after ``delay_ms`` (client certificate required, connections kept alive): a partner across a
    network, where concurrency pays."""

    kind = "latency partner"

    def __init__(self, directory: Path, pki: PkiPaths, delay_ms: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._log = (directory / "latency.log").open("wb")
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "latency", json.dumps(pki.to_json()), str(delay_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=10)
            self._log.close()
            raise ServerError(f"the latency partner ended (exit {self._process.returncode}); see {self._log.name}")
        self.url = str(json.loads(line)["url"])

    def handshakes(self) -> int:
        return 0  # not counted

    def close(self) -> None:
        if self._process.poll() is None:
            with contextlib.suppress(OSError):
                assert self._process.stdin is not None
                self._process.stdin.close()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._log.close()


def start_latency_site(directory: Path, pki: PkiPaths, delay_ms: int) -> Site:
    keystore_password()
    server = LatencyProcess(directory / "latency", pki, delay_ms)
    aliases_dir = directory / "aliases"
    write_aliases(aliases_dir, pki, server.url)
    return Site(server, pki, aliases_dir, directory)


def _serve_latency(pki: PkiPaths, delay_s: float) -> int:
    import asyncio
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert_pem, pki.server_key_pem, password=os.environ[PASSWORD_ENV])
    context.load_verify_locations(pki.chain_pem)
    context.verify_mode = ssl.CERT_REQUIRED
    body = ACCOUNT_JSON.encode()
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # the bench sends GETs only: no body to read
                await asyncio.sleep(delay_s)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context, backlog=256)
        port = server.sockets[0].getsockname()[1]
        _send({"url": f"https://localhost:{port}"})
        # Serve until the bench closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        server.close()

    asyncio.run(main())
    return 0


# --- helpers --------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: nginx gets SIGTERM when the bench dies, even by SIGKILL, instead
    of living on as an orphan (the partner child ends by itself when its stdin closes)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], why: object) -> None:
    deadline = time.monotonic() + _READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"the server exited with {process.returncode}: {why() if callable(why) else why}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise ServerError(f"the server did not listen on port {port} within {_READY_TIMEOUT_S:.0f} s")


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no error log)"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "partner":
        sys.exit(_serve_partner(Path(sys.argv[2])))
    if len(sys.argv) == 4 and sys.argv[1] == "latency":
        sys.exit(_serve_latency(PkiPaths.from_json(json.loads(sys.argv[2])), int(sys.argv[3]) / 1000.0))
    sys.exit("usage: _servers.py partner DIR | latency PKI_JSON DELAY_MS")
