"""Hostile partners on loopback: ``RawServer`` (tests/transport/_support.py) plus scripted answers.

A handler may return a ``Script`` instead of a reply: after the request is read, the script
writes whatever bytes it wants on the raw (or TLS) socket, as slowly as it wants, and may end
with a TCP reset. Every script stops by itself: when the client goes away (a send fails), when
the server is stopped (``pause`` returns False at once), or after ``SCRIPT_LIMIT_S`` at the latest,
so no test depends on a test-runner timeout.

``SServer`` runs ``openssl s_server`` for what Python's ssl cannot do server-side (asking for a
TLS renegotiation); it accepts one connection and exits.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import subprocess
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from tests.transport._support import Action, Hangup, RawRequest, RawServer

SCRIPT_LIMIT_S = 20.0
Play = Callable[[socket.socket, "HostileServer"], None]


class Script:
    """Raw bytes for the client, written by ``play(sock, server)`` once the request is read."""

    def __init__(self, play: Play, name: str = "script") -> None:
        self.play = play
        self.name = name

    def __repr__(self) -> str:
        return f"Script({self.name})"


HostileAction = Action | Script
HostileHandler = Callable[[RawRequest], HostileAction]


class HostileServer(RawServer):
    """A ``RawServer`` whose handler may also answer with a ``Script``."""

    def __init__(self, handler: HostileHandler, **options: object) -> None:
        self._scripts = threading.local()
        self.stopping = threading.Event()
        self.scripts_done = 0

        def dispatch(request: RawRequest) -> Action:
            action = handler(request)
            if isinstance(action, Script):
                self._scripts.pending = action
                return Hangup()  # RawServer stops reading; the script then plays on the socket
            return action

        super().__init__(dispatch, **options)  # type: ignore[arg-type]

    def _exchange(self, sock: socket.socket) -> None:
        self._scripts.pending = None
        super()._exchange(sock)
        script: Script | None = self._scripts.pending
        if script is not None:
            try:
                script.play(sock, self)
            finally:
                with self._lock:
                    self.scripts_done += 1

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        super().__exit__(*exc_info)

    def pause(self, seconds: float) -> bool:
        """Sleep; False when the server is stopping (the script should end)."""
        return not self.stopping.wait(seconds)


# --- building blocks -------------------------------------------------------------------------------


def head(status: str = "200 OK", *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reset(sock: socket.socket) -> None:
    """Make the coming close a TCP reset (RST) instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def send(data: bytes, *, then_reset: bool = False, name: str = "send") -> Script:
    """Send ``data`` and close (with a reset if asked)."""

    def play(sock: socket.socket, server: HostileServer) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            if then_reset:
                reset(sock)

    return Script(play, name)


def trickle(data: bytes, *, every_s: float, first: bytes = b"", name: str = "trickle") -> Script:
    """Send ``first`` at once, then ``data`` one byte every ``every_s`` seconds (under the read timeout)."""

    def play(sock: socket.socket, server: HostileServer) -> None:
        until = time.monotonic() + SCRIPT_LIMIT_S
        try:
            sock.sendall(first)
        except OSError:
            return
        for index in range(len(data)):
            if time.monotonic() > until:
                return
            try:
                sock.sendall(data[index:index + 1])
            except OSError:
                return
            if not server.pause(every_s):
                return

    return Script(play, name)


def stall(data: bytes, *, name: str = "stall") -> Script:
    """Send ``data``, then nothing, keeping the connection open until the server stops."""

    def play(sock: socket.socket, server: HostileServer) -> None:
        with contextlib.suppress(OSError):
            sock.sendall(data)
            server.pause(SCRIPT_LIMIT_S)

    return Script(play, name)


def flood(first: bytes, unit: bytes, *, name: str = "flood") -> Script:
    """Send ``first``, then ``unit`` again and again, as fast as the client reads."""

    def play(sock: socket.socket, server: HostileServer) -> None:
        until = time.monotonic() + SCRIPT_LIMIT_S
        burst = unit * max(1, 16384 // len(unit))
        try:
            sock.sendall(first)
            while not server.stopping.is_set() and time.monotonic() < until:
                sock.sendall(burst)
        except OSError:
            return

    return Script(play, name)


def endless_chunks(first: bytes, chunk: bytes, *, name: str = "endless") -> Script:
    """Send ``first``, then the same chunk in chunked framing, never the last chunk."""
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"

    def play(sock: socket.socket, server: HostileServer) -> None:
        until = time.monotonic() + SCRIPT_LIMIT_S
        try:
            sock.sendall(first)
            while not server.stopping.is_set() and time.monotonic() < until:
                sock.sendall(frame)
        except OSError:
            return

    return Script(play, name)


def gzip_bomb(decoded_bytes: int) -> bytes:
    """A gzip member that decodes to ``decoded_bytes`` zero bytes (about 1/1000 of that on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    parts = [compressor.compress(block) for _ in range(decoded_bytes // len(block))]
    parts.append(compressor.compress(bytes(decoded_bytes % len(block))))
    parts.append(compressor.flush())
    return b"".join(parts)


# --- openssl s_server ---------------------------------------------------------------------------------


class SServer:
    """``openssl s_server`` on 127.0.0.1 answering one HTTP request after ``command`` (``r``:
    ask for a TLS renegotiation, ``R``: the same asking for a client certificate).

    s_server prints what the client sent; when the request's blank line has arrived, the
    command is written to its standard input, then a complete HTTP response. The process
    accepts one connection (``-naccept 1``) and exits after it; when the context exits it is
    given a few seconds to do so, then ended.
    """

    def __init__(self, cert: Path, key: Path, *, command: str, tls: str = "-tls1_2",
                 chain: Path | None = None, key_password: str | None = None) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._listener.close()  # s_server binds the port itself; a short race, on loopback only
        args = ["openssl", "s_server", "-accept", f"127.0.0.1:{self.port}", "-naccept", "1", "-cert", str(cert),
                "-key", str(key), tls, "-ign_eof"]
        if chain is not None:
            args += ["-cert_chain", str(chain)]
        if key_password is not None:
            args += ["-pass", f"pass:{key_password}"]
        self._args = args
        self._command = command
        self.output: list[str] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.ready = threading.Event()
        self.request_seen = threading.Event()

    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def __enter__(self) -> SServer:
        self._process = subprocess.Popen(self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.ready.wait(10):
            raise RuntimeError("openssl s_server did not start: " + "".join(self.output))
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for raw in self._process.stdout:
            line = raw.decode("latin-1")
            self.output.append(line)
            if line.startswith("ACCEPT"):
                self.ready.set()
            elif line in ("\r\n", "\n") and not self.request_seen.is_set():
                self.request_seen.set()
                self._answer()

    def _answer(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        body = b'{"ok":true}'
        # The process may be gone already (it ends the connection when the client refuses).
        with contextlib.suppress(OSError, ValueError):
            self._process.stdin.write(self._command.encode() + b"\n")
            self._process.stdin.flush()
            time.sleep(0.2)
            self._process.stdin.write(head("200 OK", ("Content-Type", "application/json"),
                                           ("Content-Length", str(len(body)))) + body)
            self._process.stdin.flush()

    def __exit__(self, *exc_info: object) -> None:
        assert self._process is not None
        try:  # it exits by itself once its one connection is closed, after printing what happened
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._reader is not None:
            self._reader.join(10)  # the output ends with the process
        for stream in (self._process.stdin, self._process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
