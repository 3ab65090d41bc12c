"""The network streams under flowrun's clients: a total deadline per attempt, and the TLS version
of a connection whose read fails.

**Deadline.** httpx bounds each wait (connect, every read, every write) by the timeout, never
the whole exchange: a partner that sends one byte just before each read would time out holds an
attempt forever (slowloris). So every attempt of a step runs under a deadline (``begin_attempt``
.. ``end_attempt``, a context variable), and the clients built by ``flowrun._transport._http``
(``install``) let no network wait go past it. ``timeout_s`` (the step's, else the connection's)
bounds each wait, as before; one attempt as a whole (connect, send, the answer, the whole body,
redirects included) may take ``ATTEMPT_DEADLINE_FACTOR`` times that. A partner that goes quiet
still fails after ``timeout_s`` ("timed out waiting for the answer"); one that keeps sending,
too slowly, fails at the deadline with "the partner kept sending slowly" (``DeadlineExceeded``
in the exception chain). Retries get a fresh deadline each.

**Failed reads.** A TLS alert that ends an established connection says little by itself: a
handshake failure after a TLS 1.2 handshake completed means the partner started a new one (a
renegotiation, which flowrun's contexts refuse), while after a TLS 1.3 handshake the same kind
of alert is the partner's verdict on our client certificate. OpenSSL forgets the version once
the connection failed, so each stream notes it when its handshake completes, and a failed read
carries it to ``classify`` (``TlsReadError``).
"""

from __future__ import annotations

import contextvars
import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

ATTEMPT_DEADLINE_FACTOR = 4.0
_FAST_BYTES_PER_S = 64 * 1024


class Deadline:
    """When the current attempt must end, and how many bytes the partner sent in it."""

    __slots__ = ("at", "opened", "received", "seconds", "started")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.at = self.started + seconds
        self.received = 0
        self.opened = False  # whether the attempt opened a new connection (else it reused one)

    def describe(self, phase: str) -> str:
        elapsed = time.monotonic() - self.started
        if phase == "read":
            # A trickle, or an answer that never ends (endless 1xx responses, say).
            how = "slowly" if self.received < _FAST_BYTES_PER_S * elapsed else "without finishing its answer"
            return (f"the partner kept sending {how}: {self.received} bytes in {elapsed:.1f} s, past the total "
                    f"deadline of one attempt ({self.seconds:g} s)")
        if phase == "write":
            return (f"the partner kept reading the request slowly, past the total deadline of one attempt "
                    f"({self.seconds:g} s)")
        return f"the attempt passed its total deadline ({self.seconds:g} s) before it could connect"


class DeadlineExceeded(httpcore.TimeoutException):
    """A network wait cut short by the attempt's deadline; httpx raises its timeout ``from`` this."""

    phase = "connect"


class _ReadDeadline(DeadlineExceeded, httpcore.ReadTimeout):
    phase = "read"


class _WriteDeadline(DeadlineExceeded, httpcore.WriteTimeout):
    phase = "write"


class _ConnectDeadline(DeadlineExceeded, httpcore.ConnectTimeout):
    phase = "connect"


class TlsReadError(httpcore.ReadError):
    """A read failed on an established TLS connection; ``tls_version`` is what its handshake negotiated."""

    def __init__(self, message: str, tls_version: str) -> None:
        super().__init__(message)
        self.tls_version = tls_version


_CURRENT: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("flowrun_attempt_deadline",
                                                                            default=None)


def begin_attempt(timeout_s: float) -> contextvars.Token[Deadline | None]:
    """Start the deadline of one attempt for a per-wait ``timeout_s``; ``end_attempt`` ends it."""
    return _CURRENT.set(Deadline(timeout_s * ATTEMPT_DEADLINE_FACTOR))


def end_attempt(token: contextvars.Token[Deadline | None]) -> None:
    _CURRENT.reset(token)


def opened_connection() -> bool:
    """Whether the current attempt opened a new connection (rather than reusing a kept-alive one)."""
    deadline = _CURRENT.get()
    return deadline is not None and deadline.opened


def _bounded(timeout: float | None) -> tuple[Deadline | None, float | None, bool]:
    """The deadline in force, the wait to use, and whether the deadline (not ``timeout``) sets it."""
    deadline = _CURRENT.get()
    if deadline is None:
        return None, timeout, False
    left = deadline.at - time.monotonic()
    if timeout is not None and timeout <= left:
        return deadline, timeout, False
    return deadline, max(left, 0.0), True


def _expired(deadline: Deadline, error: type[DeadlineExceeded]) -> DeadlineExceeded:
    return error(deadline.describe(error.phase))


def _tls_version(stream: httpcore.NetworkStream | httpcore.AsyncNetworkStream) -> str | None:
    ssl_object = stream.get_extra_info("ssl_object")
    version = ssl_object.version() if ssl_object is not None else None
    return version if isinstance(version, str) else None


def _read_failed(exc: httpcore.ReadError, tls_version: str | None) -> httpcore.ReadError:
    return exc if tls_version is None else TlsReadError(str(exc), tls_version)


def _reset_before_any_answer(exc: BaseException, deadline: Deadline | None) -> bool:
    """A connection this attempt opened, reset before the partner sent a byte."""
    if deadline is None or not deadline.opened or deadline.received:
        return False
    queue: list[BaseException | None] = [exc]
    for _ in range(8):  # anyio and httpcore wrap the system's error in two or three layers
        if not queue:
            break
        current = queue.pop(0)
        if isinstance(current, ConnectionResetError):
            return True
        if current is not None:
            queue.extend((current.__cause__, current.__context__))
    return False


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._tls_version = _tls_version(inner)  # as negotiated; None before TLS

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline, wait, binding = _bounded(timeout)
        if deadline is not None and binding and wait == 0.0:
            raise _expired(deadline, _ReadDeadline)
        try:
            data = self._inner.read(max_bytes, wait)
        except httpcore.ReadTimeout:
            if deadline is not None and binding and deadline.received:
                raise _expired(deadline, _ReadDeadline) from None
            raise
        except httpcore.ReadError as exc:
            error = _read_failed(exc, self._tls_version)
            if error is exc:
                raise
            raise error from exc
        if deadline is not None:
            deadline.received += len(data)
        return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        deadline, wait, binding = _bounded(timeout)
        if deadline is not None and binding and wait == 0.0:
            raise _expired(deadline, _WriteDeadline)
        try:
            self._inner.write(buffer, wait)
        except httpcore.WriteTimeout:
            if deadline is not None and binding:
                raise _expired(deadline, _WriteDeadline) from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        _, wait, _ = _bounded(timeout)
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._tls_version = _tls_version(inner)  # as negotiated; None before TLS

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline, wait, binding = _bounded(timeout)
        if deadline is not None and binding and wait == 0.0:
            raise _expired(deadline, _ReadDeadline)
        try:
            data = await self._inner.read(max_bytes, wait)
        except httpcore.ReadTimeout:
            if deadline is not None and binding and deadline.received:
                raise _expired(deadline, _ReadDeadline) from None
            raise
        except httpcore.ReadError as exc:
            if _reset_before_any_answer(exc, deadline):
                # Java refuses a TLS 1.3 certificate by closing; the close races our request into
                # a reset. Reported as the close it is, so ``classify`` asks the partner why.
                raise httpcore.RemoteProtocolError("Server disconnected without sending a response") from exc
            error = _read_failed(exc, self._tls_version)
            if error is exc:
                raise
            raise error from exc
        except ssl.SSLError as exc:
            # anyio lets a TLS alert on an established connection (Apache's refusal of our
            # certificate with TLS 1.3) out as it is; httpx would not map it.
            raise _read_failed(httpcore.ReadError(str(exc)), self._tls_version) from exc
        if deadline is not None:
            deadline.received += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        deadline, wait, binding = _bounded(timeout)
        if deadline is not None and binding and wait == 0.0:
            raise _expired(deadline, _WriteDeadline)
        try:
            await self._inner.write(buffer, wait)
        except httpcore.WriteError as exc:
            if _reset_before_any_answer(exc, deadline):
                raise httpcore.RemoteProtocolError("Server disconnected without sending a response") from exc
            raise
        except httpcore.WriteTimeout:
            if deadline is not None and binding:
                raise _expired(deadline, _WriteDeadline) from None
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        _, wait, _ = _bounded(timeout)
        return _AsyncStream(await self._inner.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        deadline, wait, binding = _bounded(timeout)
        if deadline is not None:
            deadline.opened = True
            if binding and wait == 0.0:
                raise _expired(deadline, _ConnectDeadline)
        return _Stream(self._inner.connect_tcp(host, port, wait, local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _bounded(timeout)[1], socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        deadline, wait, binding = _bounded(timeout)
        if deadline is not None:
            deadline.opened = True
            if binding and wait == 0.0:
                raise _expired(deadline, _ConnectDeadline)
        return _AsyncStream(await self._inner.connect_tcp(host, port, wait, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._inner.connect_unix_socket(path, _bounded(timeout)[1], socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def install(transport: httpx.HTTPTransport | httpx.AsyncHTTPTransport) -> None:
    """Put the transport's connections on these streams (after ``apply_connect_to``)."""
    if isinstance(transport, httpx.AsyncHTTPTransport):
        async_pool = transport._pool
        inner = async_pool._network_backend
        assert isinstance(inner, httpcore.AsyncNetworkBackend)
        async_pool._network_backend = _AsyncBackend(inner)
    else:
        pool = transport._pool
        backend = pool._network_backend
        assert isinstance(backend, httpcore.NetworkBackend)
        pool._network_backend = _Backend(backend)
