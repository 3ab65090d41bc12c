"""Real parts for the Celery tests: a redis-server started here, `flowrun worker` subprocesses, and
an mTLS partner on loopback whose requests are counted.

The partner's alias authenticates with an API key and a JKS keystore whose password comes from the
environment: the secret scan looks for both (and their base64 forms) in everything Redis holds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun.testing import DEFAULT_API_KEYS, PartnerServer, Pki, PkiFiles, make_pki
from tests._binaries import require_binary

pytest.importorskip("celery")
redis = pytest.importorskip("redis")

KEYSTORE_PASSWORD = "celery-keystore-secret-9431"
PASSWORD_ENV = "FLOWRUN_CELERY_KEYSTORE_PASSWORD"
API_KEY = next(iter(DEFAULT_API_KEYS))
API_KEY_ENV = "FLOWRUN_CELERY_API_KEY"
SECRETS = (KEYSTORE_PASSWORD, API_KEY)
# A hang guard for waits on subprocesses and the partner, never a timing.
GUARD_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + GUARD_S
        while True:
            try:
                self.client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def everything(self) -> list[bytes]:
        """Every key and every value Redis holds, read by type (DUMP output is compressed)."""
        found: list[bytes] = []
        for key in self.client.scan_iter(count=1000):
            found.append(key)
            kind = self.client.type(key).decode()
            if kind == "string":
                found.append(self.client.get(key) or b"")
            elif kind == "list":
                found += self.client.lrange(key, 0, -1)
            elif kind == "hash":
                for field, value in self.client.hgetall(key).items():
                    found += [field, value]
            elif kind == "set":
                found += list(self.client.smembers(key))
            elif kind == "zset":
                found += [member for member, _ in self.client.zrange(key, 0, -1, withscores=True)]
        return found


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def celery_pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def celery_pki_files(celery_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return celery_pki.write(tmp_path_factory.mktemp("celery-pki"), keystore_password=KEYSTORE_PASSWORD)


@pytest.fixture
def partner(celery_pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(celery_pki) as server:
        yield server


@pytest.fixture
def aliases(tmp_path: Path, celery_pki_files: PkiFiles, partner: PartnerServer) -> Path:
    directory = tmp_path / "aliases"
    directory.mkdir()
    records = [
        {"kind": "keystore", "name": "client", "type": "jks", "file": str(celery_pki_files.client.jks),
         "password": {"env": PASSWORD_ENV}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "root", "file": str(celery_pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "celeryMTLS", "keystore": "client", "trust_store_certs": ["root"],
         "use_system_trust": False},
        {"kind": "credential", "name": "key", "type": "api_key", "header": "X-API-Key", "key": {"env": API_KEY_ENV}},
        # Limits that never slow a test, so that their keys are in Redis for the secret scan.
        {"kind": "alias", "name": "partner",
         "connection": {"url": partner.url + "/secure", "mutual_authentication": True,
                        "protocol_profile": "celeryMTLS", "credential": "key", "timeout_s": 60},
         "rate_limit": {"per_second": 10000, "burst": 1000}, "concurrency_limit": {"max_in_flight": 1000}},
        {"kind": "alias", "name": "ledger",
         "connection": {"url": partner.url + "/secure/ledger", "mutual_authentication": True,
                        "protocol_profile": "celeryMTLS", "credential": "key", "timeout_s": 60}},
    ]
    (directory / "partner.json").write_text(json.dumps(records, indent=1))
    return directory


def flowrun_env(*, secrets: bool = True) -> dict[str, str]:
    """The environment of workers and local runs (with the secrets); a dispatcher gets none."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop(PASSWORD_ENV, None)
    env.pop(API_KEY_ENV, None)
    return {**env, PASSWORD_ENV: KEYSTORE_PASSWORD, API_KEY_ENV: API_KEY} if secrets else env


class Workers:
    """`flowrun worker` processes, each in its own process group so that a test can kill one whole."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, broker: str, aliases: Path, *, concurrency: int = 1, visibility_timeout: float = 3600) -> int:
        with (self.directory / f"worker-{len(self.processes)}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "flowrun", "worker", "--broker", broker, "--aliases", str(aliases),
                 "--concurrency", str(concurrency), "--visibility-timeout", str(visibility_timeout)],
                env=flowrun_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return len(self.processes) - 1

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log(self, index: int) -> str:
        return (self.directory / f"worker-{index}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for index, process in enumerate(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=GUARD_S / 4)
                except subprocess.TimeoutExpired:
                    self.kill(index)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    group = Workers(tmp_path)
    try:
        yield group
    finally:
        group.stop_all()


def run_cli(*args: str, secrets: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowrun", *args], check=False, capture_output=True, text=True,
                          env=flowrun_env(secrets=secrets), timeout=GUARD_S)


def start_cli(*args: str) -> subprocess.Popen[str]:
    """A dispatcher (`run --broker`): it has no secrets, the workers have them."""
    return subprocess.Popen([sys.executable, "-m", "flowrun", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=flowrun_env(secrets=False))


def write_rows(path: Path, count: int) -> Path:
    lines = ["account,amount"] + [f"{1000 + n},{n + 1}.25" for n in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path
