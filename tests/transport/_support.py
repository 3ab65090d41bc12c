"""Test support: alias registries built from records, and a raw loopback HTTP(S) server.

``RawServer`` records requests byte for byte (request target as sent, header names, order and
duplicates as sent, body) and answers with what a test's handler returns, including hostile
answers the partner server does not give: a TCP reset, a close without answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import attrs

from flowrun._load._aliases import AliasRecords
from flowrun._models._aliases import (
    NO_RETRY,
    Alias,
    Connection,
    Credential,
    Keystore,
    ProtocolProfile,
    RetryPolicy,
    TrustStoreCert,
)
from flowrun._models._secret import SecretRef
from flowrun._registry import Registry
from flowrun.testing import PkiFiles

PASSWORD = "changeit"


def make_registry(
    files: PkiFiles,
    url: str,
    *,
    mutual: bool = True,
    keystore: Path | None = None,
    trust: Sequence[Path] | None = None,
    credentials: Sequence[Credential] = (),
    credential: str | None = None,
    retry: RetryPolicy = NO_RETRY,
    tls_versions: tuple[str, ...] = ("1.2", "1.3"),
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
    connect_to: dict[tuple[str, int], tuple[str, int]] | None = None,
    trusted_origins: tuple[str, ...] = (),
) -> Registry:
    """A registry with one alias ``partner`` at ``url``.

    ``mutual=True``: the client keystore (pkcs12) is presented; ``mutual=False``: the profile
    only trusts (no keystore). Trust is the PKI root unless ``trust`` says otherwise; system
    trust is off.
    """
    keystores = {"client": Keystore("client", keystore or files.client.pkcs12, type="pkcs12",
                                    password=SecretRef(literal=PASSWORD))}
    trust_files = list(trust) if trust is not None else [files.root_pem]
    trust_records = {f"trust{i}": TrustStoreCert(f"trust{i}", file=path) for i, path in enumerate(trust_files)}
    profile = ProtocolProfile("mtls", keystore="client" if mutual else None, trust_store_certs=tuple(trust_records),
                              use_system_trust=False, tls_versions=tls_versions)  # type: ignore[arg-type]
    connection = Connection(url=url, mutual_authentication=mutual, protocol_profile="mtls",
                            credential=credential, headers=headers or {}, timeout_s=timeout_s,
                            trusted_origins=trusted_origins)
    alias = Alias("partner", {Alias.SINGLE: connection}, retry_policy=retry)
    return Registry(AliasRecords(keystores, trust_records, {"mtls": profile},
                                 {c.name: c for c in credentials}, {"partner": alias}), connect_to=connect_to)


# --- a raw server ----------------------------------------------------------------------------------


@attrs.frozen
class RawRequest:
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    body_size: int
    body_sha256: str
    client_cert_sha256: str | None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


@attrs.frozen
class Reply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = (("Content-Type", "application/json"),)


class Reset:
    """Answer with a TCP reset (SO_LINGER 0), after reading the request."""


class Hangup:
    """Close the connection without an answer."""


Action = Reply | Reset | Hangup
Handler = Callable[[RawRequest], Action]


def ok(request: RawRequest) -> Action:
    return Reply(200, b'{"ok":true}')


class RawServer:
    """A threaded HTTP/1.1 server on 127.0.0.1; TLS when given a server context.

    ``keep_bodies=False`` hashes request bodies without keeping them (big uploads).
    """

    def __init__(self, handler: Handler = ok, *, ssl_context: ssl.SSLContext | None = None,
                 keep_bodies: bool = True) -> None:
        self._handler = handler
        self._context = ssl_context
        self._keep = keep_bodies
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._stopping = False
        self.requests: list[RawRequest] = []
        self.connections = 0
        self.handshake_failures: list[str] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)

    def url(self, host: str = "localhost") -> str:
        scheme = "https" if self._context is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    def __enter__(self) -> RawServer:
        self._accept.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._accept.join()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def _serve(self) -> None:
        while not self._stopping:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(sock,), daemon=True)
            with self._lock:
                self._sockets.add(sock)
                self._threads.append(thread)
                self.connections += 1
            thread.start()

    def _connection(self, plain: socket.socket) -> None:
        sock: socket.socket = plain
        try:
            if self._context is not None:
                try:
                    sock = self._context.wrap_socket(plain, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    with self._lock:
                        self.handshake_failures.append(getattr(exc, "reason", None) or type(exc).__name__)
                    return
                with self._lock:
                    self._sockets.add(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._exchange(sock)
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.discard(sock)
                self._sockets.discard(plain)
            sock.close()
            plain.close()

    def _exchange(self, sock: socket.socket) -> None:
        if self._context is None and sock.recv(1, socket.MSG_PEEK) == b"\x16":
            # A TLS ClientHello on the plain port: answer like a plain HTTP server does.
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        with sock.makefile("rb") as reader:
            while True:
                request = self._read(reader, sock)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                action = self._handler(request)
                if isinstance(action, Reset):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if isinstance(action, Hangup):
                    return
                head = [f"HTTP/1.1 {action.status} X"]
                head += [f"{k}: {v}" for k, v in action.headers]
                head.append(f"Content-Length: {len(action.body)}")
                sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + action.body)
                if (request.header("Connection") or "").lower() == "close":
                    return

    def _read(self, reader: object, sock: socket.socket) -> RawRequest | None:
        readline = reader.readline  # type: ignore[attr-defined]
        read = reader.read  # type: ignore[attr-defined]
        line = readline(65537)
        if not line:
            return None
        method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers: list[tuple[str, str]] = []
        while True:
            raw = readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").rstrip("\r\n").partition(":")
            headers.append((name, value.strip()))
        lookup = {k.lower(): v for k, v in headers}
        digest = hashlib.sha256()
        kept: list[bytes] = []
        size = 0

        def take(data: bytes) -> None:
            nonlocal size
            size += len(data)
            digest.update(data)
            if self._keep:
                kept.append(data)

        if "chunked" in lookup.get("transfer-encoding", "").lower():
            while True:
                chunk_size = int(readline(1024).split(b";")[0].strip(), 16)
                if chunk_size == 0:
                    readline(1024)
                    break
                take(read(chunk_size))
                readline(8)
        else:
            remaining = int(lookup.get("content-length", "0"))
            while remaining:
                data = read(min(remaining, 65536))
                if not data:
                    return None
                remaining -= len(data)
                take(data)
        der = sock.getpeercert(binary_form=True) if isinstance(sock, ssl.SSLSocket) else None
        return RawRequest(method, target, tuple(headers), b"".join(kept), size, digest.hexdigest(),
                          hashlib.sha256(der).hexdigest() if der else None)
