"""An httpx transport over aiohttp, for ``AsyncRestExecutor`` (the ``fast-async`` extra).

httpx's own async transport (httpcore on anyio) costs several times what aiohttp costs per
request, and the gap grows with concurrency (httpcore's pool walks every queued request for
every connection). ``AiohttpTransport`` keeps ``httpx.AsyncClient`` in front (requests,
authentication flows and responses stay httpx's, so the executor is the same code on both
transports) and lets aiohttp move the bytes.

What the httpcore path does, this transport does too:

* failures come out as the httpx exceptions ``_errors.classify`` reads, raised ``from`` aiohttp's,
  whose chain keeps the ``ssl.SSLError`` or ``OSError`` that explains them;
* a failed read on an established TLS connection carries the version its handshake negotiated
  (``_streams.TlsReadError``), so a declined renegotiation is told from a refused certificate;
* the attempt's total deadline (``_streams``) bounds the whole request, body included, and a
  trickling partner is reported as one (``_streams.DeadlineExceeded`` in the chain);
* the attempt notes whether it opened a new connection (``_streams.opened_connection``): aiohttp's
  own resend of a request on a fresh connection is off, ``_exchange`` decides that;
* ``connect_to`` dials other addresses through the resolver, keeping SNI, certificate checks, Host
  and the pool's key on the URL's host;
* the SSL object of the connection is offered as httpcore offers it (``network_stream``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import math
import re
import socket
import ssl
import time
import weakref
from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping
from typing import Any

import aiohttp
import httpx
import yarl
from aiohttp import http_exceptions
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_proto import ResponseHandler

from flowrun._errors import FlowrunError
from flowrun._transport._connect_to import Address
from flowrun._transport._streams import (
    _CURRENT,
    Deadline,
    TlsReadError,
    _ConnectDeadline,
    _ReadDeadline,
)

# h11 (httpx's parser) accepts status lines and headers up to 100 KB: refuse no reply it takes.
_MAX_LINE_BYTES = 100 * 1024
_QUEUED_HEADS = 32
_FEED_SLICE = 16 * 1024
# Headers aiohttp adds to a request that lacks them (Content-Type to a POST, PUT or PATCH, and to
# any request with a body); httpx wrote the request's own, and adds none of these.
_AUTO_HEADERS = {"accept": "Accept", "accept-encoding": "Accept-Encoding", "user-agent": "User-Agent"}
_AUTO_TYPE_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _Dial:
    """What the current request learnt about its connection (per task, see ``_DIAL``)."""

    __slots__ = ("connected", "opened", "protocol", "received_before", "ssl_object", "tls_version")

    def __init__(self) -> None:
        self.connected = False
        self.opened = False
        self.protocol: _CountingHandler | None = None
        self.received_before = 0
        self.ssl_object: ssl.SSLObject | None = None
        self.tls_version: str | None = None

    def received(self) -> int:
        """Bytes the partner sent on this request's connection since the request took it."""
        protocol = self.protocol
        return protocol.received - self.received_before if protocol is not None else 0


class _CountingHandler(ResponseHandler):
    """aiohttp's protocol, counting what arrives: a trickle of headers counts as sending."""

    received = 0
    used = False  # whether a request has had this connection (else the next one opened it)
    ssl_object: ssl.SSLObject | None = None
    tls_version: str | None = None
    _held = b""
    _socket_transport: asyncio.BaseTransport | None = None
    _wait_started = 0.0  # loop time the current wait for the partner began (the last arrival)
    # Loop time by which the attempt of the request on this connection must end (``take``).
    _deadline = math.inf
    _waiting = False  # whether a wait for the partner goes on (aiohttp's read timer would be armed)
    _armed_at = math.inf  # loop time the timer is armed for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # aiohttp forgets the transport when it closes it; a TLS close waits for the partner's
        # close_notify, which a hostile partner never sends: ``_Connector.close`` aborts those.
        self._socket_transport = transport
        super().connection_made(transport)

    def abort_now(self) -> None:
        transport = self._socket_transport
        if isinstance(transport, asyncio.Transport):
            transport.abort()

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if not self._held and len(data) <= _FEED_SLICE:
            ResponseHandler.data_received(self, data)  # ``_feed``'s common case, one call less
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        # TLS hands over up to 256 KiB at once; a flood of 1xx answers in it would become
        # thousands of parsed heads queued at once. Parse it a slice at a time, and hold the
        # rest (and the transport) while the request has not read what is queued.
        if self._held:
            self._held += data
            return
        if len(data) <= _FEED_SLICE:
            super().data_received(data)
            return
        for offset in range(0, len(data), _FEED_SLICE):
            super().data_received(data[offset:offset + _FEED_SLICE])
            if len(self) > _QUEUED_HEADS and offset + _FEED_SLICE < len(data):
                self._held = data[offset + _FEED_SLICE:]
                if self.transport is not None:
                    self.transport.pause_reading()
                return

    def _reschedule_timeout(self) -> None:
        # A wait for the partner begins, or goes on (something arrived). aiohttp cancels its read
        # timer and starts a new one at every arrival; one timer that looks, when it fires,
        # whether something arrived meanwhile bounds each wait the same. The same timer ends the
        # request at its attempt's deadline: a request without a body has no other timer once it
        # has its connection (``AiohttpTransport._timeout``).
        if not self._read_timeout and self._deadline == math.inf:
            super()._drop_timeout()
            return
        self._waiting = True
        self._wait_started = now = self._loop.time()
        timeout = self._read_timeout
        due = min(now + timeout, self._deadline) if timeout else self._deadline  # ``_due``, called at every arrival
        if self._read_timeout_handle is None or due < self._armed_at:
            self._arm(due)

    def _drop_timeout(self) -> None:
        # aiohttp: no wait for the partner now (an answer is in, an informational one included,
        # or reading is paused). Until the request lets the connection go, its deadline holds:
        # a partner that goes quiet after a 1xx answer, or sends 1xx answers forever, meets it.
        self._waiting = False
        if self._deadline == math.inf:
            super()._drop_timeout()

    def _due(self) -> float:
        """When the timer must look again: the read timeout after the last arrival while a wait
        goes on, the attempt's deadline at the latest."""
        timeout = self._read_timeout
        if self._waiting and timeout:
            return min(self._wait_started + timeout, self._deadline)
        return self._deadline

    def _arm(self, due: float) -> None:
        if self._read_timeout_handle is not None:
            self._read_timeout_handle.cancel()
        self._armed_at = due
        self._read_timeout_handle = self._loop.call_at(due, self._read_timer_fired)

    def _read_timer_fired(self) -> None:
        self._read_timeout_handle = None
        due = self._due()
        if due == math.inf:
            return
        if self._loop.time() < due:
            self._arm(due)  # something arrived since: the wait goes on
        else:
            self._on_read_timeout()

    def set_response_params(self, **params: Any) -> None:
        # aiohttp calls this once per request, right after the request got this connection: what
        # the request learns of it is noted here, not in an override of the connector's
        # ``connect`` (a coroutine more in every request).
        super().set_response_params(**params)
        deadline = _CURRENT.get()
        self.take(math.inf if deadline is None else deadline.at)
        dial = _DIAL.get()
        if dial is None:
            return
        dial.connected = True
        dial.protocol, dial.received_before = self, self.received
        if not self.used:
            self.used = True
            dial.opened = True
            if deadline is not None:
                deadline.opened = True
            transport = self.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
            # Noted now: OpenSSL forgets the version once the connection has failed.
            version = ssl_object.version() if ssl_object is not None else None
            self.ssl_object, self.tls_version = ssl_object, version if isinstance(version, str) else None
        dial.ssl_object, dial.tls_version = self.ssl_object, self.tls_version

    def take(self, deadline: float) -> None:
        """A request takes this connection, under an attempt that must end by ``deadline``."""
        if self._read_timeout_handle is not None or self._waiting:  # (a connection from the pool was let go)
            self._let_go()
        self._deadline = deadline
        if self.writing_paused:
            # A request without a body then waits for the partner to read the previous one's
            # before aiohttp starts the timer: start it now.
            self._reschedule_timeout()

    def _let_go(self) -> None:
        """The request lets the connection go (back to the pool, or closed): no deadline, no timer."""
        self._deadline = math.inf
        self._waiting = False
        super()._drop_timeout()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._let_go()
        super().connection_lost(exc)

    def read(self) -> Coroutine[Any, Any, Any]:
        # Nothing held: aiohttp's own read, without a coroutine of ours around it. Data is held
        # only with more than _QUEUED_HEADS heads queued, so a read that began before it was
        # held could not have fed it again anyway: the reads after it do.
        if not self._held:
            return super().read()
        return self._read_held()

    async def _read_held(self) -> Any:
        message = await super().read()
        if self._held and len(self) <= _QUEUED_HEADS // 4:
            held, self._held = self._held, b""
            self._feed(held)
            if not self._held and self.transport is not None:
                self.transport.resume_reading()
        return message


_DIAL: contextvars.ContextVar[_Dial | None] = contextvars.ContextVar("flowrun_aiohttp_dial", default=None)


class _Connector(aiohttp.TCPConnector):
    """Builds connections whose protocol notes, for the request that takes one, whether it is new
    and its TLS version (``_CountingHandler.set_response_params``), and ends each request's
    deadline when the connection comes back."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._protocols: weakref.WeakSet[_CountingHandler] = weakref.WeakSet()
        # aiohttp builds each connection's protocol with ``_factory``: ours counts and can be aborted.
        self._factory = functools.partial(self._new_protocol)  # type: ignore[assignment]

    def _new_protocol(self) -> _CountingHandler:
        protocol = _CountingHandler(loop=self._loop)
        self._protocols.add(protocol)
        return protocol

    def _release(self, key: Any, protocol: ResponseHandler, *, should_close: bool = False) -> None:
        if isinstance(protocol, _CountingHandler):
            protocol._let_go()
        super()._release(key, protocol, should_close=should_close)

    def abort_closing(self) -> None:
        """End at once the connections of this connector still waiting for a TLS close."""
        for protocol in list(self._protocols):
            protocol.abort_now()


class _ConnectTo(AbstractResolver):
    """Resolves the dialled address of a mapped host:port instead of the host's own."""

    def __init__(self, mapping: Mapping[Address, Address]) -> None:
        self._mapping = dict(mapping)
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[ResolveResult]:
        dialled_host, dialled_port = self._mapping.get((host.lower(), port), (host, port))
        results = await self._inner.resolve(dialled_host, dialled_port, family)
        # aiohttp verifies the certificate against the URL's host, whatever was dialled.
        return [{**result, "hostname": host} for result in results]

    async def close(self) -> None:
        await self._inner.close()


class _NetworkStream:
    """The ``network_stream`` extension: what ``TlsInfoReader`` asks of a connection."""

    __slots__ = ("_ssl_object",)

    def __init__(self, ssl_object: ssl.SSLObject | None) -> None:
        self._ssl_object = ssl_object

    def get_extra_info(self, info: str) -> Any:
        return self._ssl_object if info == "ssl_object" else None


async def body_chunks(response: aiohttp.ClientResponse, dial: _Dial,
                      deadline: Deadline | None) -> AsyncIterator[bytes]:
    """The raw body of ``response`` as it arrives; a failure comes out as ``classify`` reads it."""
    content = response.content
    while True:
        try:
            chunk = await content.readany()
        except Exception as exc:
            error = mapped(exc, dial, deadline)
            raise error from error.__cause__
        if not chunk:
            return
        yield chunk


class _Body(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, dial: _Dial, deadline: Deadline | None) -> None:
        self._response = response
        self._dial = dial
        self._deadline = deadline

    def __aiter__(self) -> AsyncIterator[bytes]:
        return body_chunks(self._response, self._dial, self._deadline)

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncClient`` transport on one aiohttp session (created on first use, on the loop)."""

    def __init__(self, ssl_context: ssl.SSLContext, *, connect_to: Mapping[Address, Address] | None = None,
                 limits: httpx.Limits) -> None:
        self._ssl_context = ssl_context
        self._connect_to = dict(connect_to or {})
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self.client_headers: tuple[tuple[str, str], ...] = ()  # the httpx client's defaults (``new_async_client``)
        self._timeouts: dict[tuple[float | None, float | None, float | None], aiohttp.ClientTimeout] = {}
        # What ``_aio_exchange`` wrote for a request (its URL and headers), by what it is made of.
        self.written: dict[tuple[Any, ...],
                           tuple[Any, yarl.URL, tuple[tuple[str, str], ...], tuple[str, ...] | None]] = {}

    def _open(self) -> aiohttp.ClientSession:
        limits = self._limits
        connector = _Connector(
            ssl=self._ssl_context,
            limit=limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry if limits.keepalive_expiry is not None else 30.0,
            # Every new connection asks the resolver: connect_to mappings always apply.
            use_dns_cache=not self._connect_to,
            resolver=_ConnectTo(self._connect_to) if self._connect_to else None,
        )
        session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
            trust_env=False, max_line_size=_MAX_LINE_BYTES,
            max_field_size=_MAX_LINE_BYTES, timeout=aiohttp.ClientTimeout(total=None),
        )
        # aiohttp would send an idempotent request again after any lost connection, a TLS
        # refusal included; ``_exchange`` resends only on a kept-alive connection the partner closed.
        session._retry_connection = False
        self._session = session
        return session

    def _timeout(self, connect: float | None, read: float | None, deadline: Deadline | None,
                 data: Any) -> aiohttp.ClientTimeout:
        if deadline is None:
            return self._kept(connect, read, None)
        left = max(deadline.at - time.monotonic(), 0.001)
        if data is not None:
            # Writing a body can wait on the partner: aiohttp's total timer bounds it all.
            return aiohttp.ClientTimeout(total=left, sock_connect=connect, sock_read=read)
        # Without a body the request waits on the partner only for a connection (aiohttp's
        # ``connect``: the pool, the dial, the handshake) and for the answer (the connection's
        # read timer, which also ends at the deadline, see ``_CountingHandler``). No total timer:
        # it costs a timer, a timer context entered at every read and a ``ClientTimeout`` per
        # request. The first request of an attempt gets the timeout kept for the whole attempt
        # (begun microseconds ago: aiohttp rounds a connect wait of 5 s or more up to a whole second anyway).
        return self._kept(connect, read, deadline.seconds) if left > deadline.seconds - 0.001 else (
            aiohttp.ClientTimeout(total=None, connect=left, sock_connect=connect, sock_read=read))

    def _kept(self, connect: float | None, read: float | None, within: float | None) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get((connect, read, within))
        if timeout is None:
            timeout = self._timeouts[(connect, read, within)] = aiohttp.ClientTimeout(
                total=None, connect=within, sock_connect=connect, sock_read=read)
        return timeout

    async def open(self, method: str, url: Any, headers: Any, data: Any, *, connect: float | None,
                   read: float | None, server_hostname: str | None = None, skip: tuple[str, ...] | None,
                   ) -> tuple[aiohttp.ClientResponse, _Dial, Deadline | None]:
        """Send a request as written (``headers``: every header, Host included; ``skip``: what
        ``auto_headers_to_skip`` says of them) and return its response once the head is in, with
        what the request learnt of its connection and the attempt's deadline (for
        ``body_chunks``). A failure comes out as ``classify`` reads it."""
        session = self._session or self._open()
        deadline = _CURRENT.get()
        dial = _Dial()
        token = _DIAL.set(dial)
        try:
            try:
                response = await session.request(
                    method, url, headers=headers, data=data, allow_redirects=False, compress=False,
                    skip_auto_headers=skip,
                    timeout=self._timeout(connect, read, deadline, data), server_hostname=server_hostname,
                )
            except Exception as exc:
                own = _own_error(exc)
                if own is not None:  # the request body's own failure (a file that changed while sent)
                    raise own from None
                error = mapped(exc, dial, deadline)
                raise error from error.__cause__
        finally:
            _DIAL.reset(token)
        return response, dial, deadline

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # an async file body: aiohttp reads it as it sends
        waits = request.extensions.get("timeout", {})
        headers = _raw_headers(request)
        response, dial, deadline = await self.open(
            request.method, wire_url(str(request.url)), headers, data, connect=waits.get("connect"),
            read=waits.get("read"), server_hostname=request.extensions.get("sni_hostname"),
            skip=auto_headers_to_skip(request.method, headers, data))
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1",
                                      "network_stream": _NetworkStream(dial.ssl_object)}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(response.status, headers=response.raw_headers,
                              stream=_Body(response, dial, deadline), request=request, extensions=extensions)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        connector = session.connector
        await session.close()
        if isinstance(connector, _Connector):
            connector.abort_closing()


def auto_headers_to_skip(method: str, headers: Iterable[tuple[str, str]], data: Any) -> tuple[str, ...] | None:
    """The headers aiohttp must not add to this request, None when it would add none. Asked per
    request, not once for the session: a session-wide list costs aiohttp two header copies
    at every request, and httpx's client writes Accept, Accept-Encoding and User-Agent anyway."""
    present = {name.lower() for name, _ in headers}
    missing = [name for lower, name in _AUTO_HEADERS.items() if lower not in present]
    if (data is not None or method in _AUTO_TYPE_METHODS) and "content-type" not in present:
        missing.append("Content-Type")
    return tuple(missing) if missing else None


@functools.lru_cache(maxsize=512)
def wire_url(url: str) -> yarl.URL:
    """A URL as httpx encoded it, sent as it is: aiohttp would otherwise re-quote it (an escaped
    ``/`` in a query value, ``%2F``, would go out as ``/``)."""
    return yarl.URL(url, encoded=True)


def _raw_headers(request: httpx.Request) -> list[tuple[str, str]]:
    # As written (httpx keeps the case of each name); aiohttp sends them in that order.
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in request.headers.raw]


def _timed_out(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError)


def _own_error(exc: BaseException) -> FlowrunError | None:
    """A flowrun error that aiohttp wrapped (raised by the body it was sending), if any."""
    current: BaseException | None = exc
    for _ in range(6):
        if current is None:
            return None
        if isinstance(current, FlowrunError):
            return current
        current = current.__cause__ or current.__context__
    return None


def mapped(exc: Exception, dial: _Dial, deadline: Deadline | None) -> Exception:
    """The httpx exception ``classify`` expects for aiohttp's ``exc``, with ``exc`` (or what it
    stands for) as its cause."""
    error = _translated(exc, dial, deadline)
    if error.__cause__ is None:
        error.__cause__ = exc
    return error


def _translated(exc: Exception, dial: _Dial, deadline: Deadline | None) -> Exception:
    message = _first_line(exc)
    if _timed_out(exc):
        if deadline is not None and time.monotonic() >= deadline.at - 0.005:
            deadline.received += dial.received()
            if not dial.connected:
                return _chained(httpx.ConnectTimeout, _ConnectDeadline(deadline.describe("connect")), exc)
            if deadline.received:
                return _chained(httpx.ReadTimeout, _ReadDeadline(deadline.describe("read")), exc)
        if isinstance(exc, aiohttp.ConnectionTimeoutError) or not dial.connected:
            return httpx.ConnectTimeout(message)
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientSSLError):
        # aiohttp's wrapper is itself an ``ssl.CertificateError`` without OpenSSL's reason:
        # the ``ssl.SSLError`` it wraps must come first in the chain.
        error = httpx.ConnectError(message)
        error.__cause__ = exc.__cause__ or getattr(exc, "certificate_error", None) or exc.os_error
        return error
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, closed during the handshake
        error = httpx.ConnectError(message)
        lost = exc.os_error
        if exc.ssl and isinstance(lost, ConnectionResetError) and lost.errno is None:
            # asyncio's words for a partner that closed the connection during the TLS handshake
            # (Java's refusals); OpenSSL, under httpx, calls it an unexpected EOF: so do we.
            eof = ssl.SSLEOFError(ssl.SSL_ERROR_EOF, "the partner closed the connection during the TLS handshake")
            eof.reason, eof.library = "UNEXPECTED_EOF_WHILE_READING", "SSL"
            eof.__cause__ = lost
            error.__cause__ = eof
        return error
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        # httpcore's words: ``_exchange`` resends on them when a kept-alive connection was reused.
        return httpx.RemoteProtocolError("Server disconnected without sending a response")
    parse_error = next((e for e in (exc, exc.__cause__) if isinstance(e, http_exceptions.HttpProcessingError)), None)
    if parse_error is not None or isinstance(exc, aiohttp.ClientResponseError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(_parse_failure(parse_error, message))
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientConnectionError | OSError):
        cause = exc.__cause__
        if dial.tls_version is not None and isinstance(cause, ssl.SSLError) and dial.connected:
            return _chained(httpx.ReadError, TlsReadError(str(cause), dial.tls_version), cause)
        if dial.connected and not dial.received() and isinstance(cause or exc, ConnectionResetError | BrokenPipeError):
            # Reset before any answer: what httpcore reports for a partner that closed a kept-alive
            # connection, or that refuses our certificate by closing (``classify`` then asks why).
            # A TLS 1.3 refusal races our request: the write meets a reset or a broken pipe.
            return httpx.RemoteProtocolError("Server disconnected without sending a response")
        return httpx.ReadError(message)
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    return httpx.TransportError(message)


_SHORT_BODY = re.compile(r"received (\d+) of (\d+) bytes")
_BODY_CUT = "peer closed connection without sending complete message body"


def _parse_failure(error: http_exceptions.HttpProcessingError | None, message: str) -> str:
    """aiohttp's parser errors in the words of h11 (httpx's parser), which ``classify`` reads."""
    detail = _first_line_of(error.message) if error is not None and error.message else message
    if isinstance(error, http_exceptions.ContentLengthError):
        short = _SHORT_BODY.search(error.message)
        if short is not None:
            return f"{_BODY_CUT}: received {short.group(1)} bytes, expected {short.group(2)}"
        return f"{_BODY_CUT}: {detail}"
    if isinstance(error, http_exceptions.TransferEncodingError):
        if "not enough data" in detail.lower():
            return f"{_BODY_CUT}: incomplete chunked read"
        return f"illegal chunk header: {detail}"
    if isinstance(error, http_exceptions.LineTooLong) or "too many headers" in detail.lower():
        return f"receive buffer too long: {detail}"
    if isinstance(error, http_exceptions.BadStatusLine) or "status line" in detail.lower():
        return f"illegal status line: {detail}"
    if "chunk" in detail.lower():
        return f"illegal chunk header: {detail}"
    return detail


def _first_line_of(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0].rstrip(":") if text else ""


def _first_line(exc: BaseException) -> str:
    return _first_line_of(str(exc)) or type(exc).__name__


def _chained(outer: type[httpx.TransportError], inner: Exception, cause: BaseException) -> Exception:
    """``outer`` raised from ``inner`` raised from ``cause``: the chain ``classify`` walks."""
    inner.__cause__ = cause
    error = outer(str(inner))
    error.__cause__ = inner
    return error
