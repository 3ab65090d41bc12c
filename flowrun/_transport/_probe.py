"""One handshake and one lightweight request through a resolved alias: ``flowrun alias test``.

The probe goes through httpx with the alias's own SSL context, exactly as steps do, and watches
the handshake on the way:

* the TLS version and cipher, from the SSL object once the handshake is done;
* the certificates each side put on the wire, from the handshake messages themselves (OpenSSL's
  message callback, which CPython exposes as ``SSLContext._msg_callback``): the chain the server
  sent (also when we then refuse it), whether it asked for a client certificate, and the
  certificate we actually sent, or that we sent none. Where that hook is missing the server
  chain comes from the SSL object (the verified chain: public on Python 3.13, private on
  3.10-3.12, only the leaf before) and what was sent is not observed; ``observed`` says so.

A failure is turned into the precise ``TransportError`` by ``classify``, and an HTTP answer that is a
partner's refusal of our certificate (nginx's 400 page) by ``refusal_page``.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

import attrs
import httpx
from cryptography import x509

from flowrun._errors import (
    ProxyAuthRequiredError,
    ProxyRefusedError,
    ProxyUpstreamError,
    TransportError,
)
from flowrun._models._record import RecordRepr, ValueRecord
from flowrun._registry import ResolvedConnection
from flowrun._tls._hello import certificate_ders
from flowrun._transport._errors import classify, proxy_refusal, refusal_page
from flowrun._transport._http import ChainSource, chain_from_ssl_object, new_client

__all__ = ["CertificateInfo", "ClientCertOutcome", "ProbeResult", "probe", "probe_url"]

# What became of our client certificate: sent; an empty Certificate message ("none_sent");
# never asked for; the handshake stopped before our turn; no TCP connection to shake hands on;
# or no view of the handshake messages.
ClientCertOutcome = Literal["sent", "none_sent", "not_requested", "not_reached", "not_connected", "not_observed"]

_CERTIFICATE = 11
_BAD_REQUEST = 400
_PAGE_BYTES = 4096
_CERTIFICATE_REQUEST = 13
# Serialises the message-callback hook: the SSL context is shared through the cache.
_HOOK_LOCK = threading.Lock()
# The proxy answered but opened no tunnel (an unreachable proxy is "not_connected" already).
_PROXY_REFUSALS = (ProxyAuthRequiredError, ProxyRefusedError, ProxyUpstreamError)
_START_TLS_DONE = frozenset({"connection.start_tls.complete", "proxy.start_tls.complete"})


@attrs.frozen(eq=False, repr=False)
class CertificateInfo(ValueRecord):
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha256: str

    @classmethod
    def from_der(cls, der: bytes) -> CertificateInfo:
        certificate = x509.load_der_x509_certificate(der)
        return cls(
            subject=certificate.subject.rfc4514_string(),
            issuer=certificate.issuer.rfc4514_string(),
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            sha256=hashlib.sha256(der).hexdigest(),
        )


@attrs.frozen(eq=False, repr=False)
class ProbeResult(RecordRepr):
    """What one probe saw. ``error`` is None when the request got an HTTP status back."""

    url: str
    method: str
    tls_version: str | None = None
    cipher: str | None = None
    server_chain: tuple[CertificateInfo, ...] = ()
    server_chain_source: ChainSource = "none"
    # None: not observed (handshake not reached, or no message hook on this Python).
    client_cert_requested: bool | None = None
    client_cert_sent: CertificateInfo | None = None
    client_cert_outcome: ClientCertOutcome = "not_observed"
    handshake_observed: bool = False
    status: int | None = None
    reason: str | None = None
    error: TransportError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status is not None


def probe(resolved: ResolvedConnection, *, path: str | None = None, method: str = "HEAD",
          timeout_s: float | None = None) -> ProbeResult:
    """Connect through ``resolved``, shake hands and send ``method`` to ``path`` (relative to the
    alias's base path; default the base path itself). Never raises for a transport failure."""
    return probe_url(resolved, join_url(resolved.base_url, path), method=method, timeout_s=timeout_s)


def join_url(base_url: str, path: str | None) -> str:
    if not path or path == "/":
        return base_url if base_url.count("/") > 2 else base_url + "/"
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def probe_url(resolved: ResolvedConnection, url: str, *, method: str = "HEAD",
              timeout_s: float | None = None) -> ProbeResult:
    connect = timeout_s if timeout_s is not None else resolved.connect_timeout_s
    read = timeout_s if timeout_s is not None else resolved.read_timeout_s
    timeout = httpx.Timeout(read, connect=connect)
    watch = _Handshake()
    # An http:// alias has no context; the client still wants one (never used, nothing loaded).
    context = resolved.ssl_context or ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    status: int | None = None
    reason: str | None = None
    error: TransportError | None = None
    with _hooked(resolved.ssl_context, watch), \
            new_client(context, connect_to=resolved.connect_to, proxy=resolved.proxy) as client:
        # nginx refuses a client certificate with an HTTP 400 page, which HEAD does not carry:
        # a 400 to HEAD is asked once more with GET, to read the page.
        for attempt in (method.upper(), "GET"):
            body = b""
            try:
                with client.stream(attempt, url, headers=dict(resolved.headers), timeout=timeout,
                                   extensions={"trace": watch.trace}) as response:
                    status, reason = response.status_code, response.reason_phrase
                    if status == _BAD_REQUEST:
                        body = _prefix(response)
            except httpx.HTTPError as exc:
                error = classify(exc, url=url, resolved=resolved)
            if error is not None or status != _BAD_REQUEST or attempt == "GET":
                break
        if error is None and status is not None:
            error = refusal_page(status, body, url=url, resolved=resolved)
    if status == 407:
        error = proxy_refusal(url, resolved, f"{status} {reason or ''}".rstrip()) or error
    result = watch.result(url=url, method=method.upper(), status=status, reason=reason, error=error)
    if isinstance(error, _PROXY_REFUSALS):
        # The proxy stopped us before any TLS with the partner: nothing to observe.
        result = attrs.evolve(result, client_cert_outcome="not_reached")
    return result


def _prefix(response: httpx.Response) -> bytes:
    """The first bytes of the body: enough for an error page."""
    data = b""
    for chunk in response.iter_bytes():
        data += chunk
        if len(data) >= _PAGE_BYTES:
            break
    return data[:_PAGE_BYTES]


@contextlib.contextmanager
def _hooked(context: ssl.SSLContext | None, watch: _Handshake) -> Iterator[None]:
    if context is None or not hasattr(context, "_msg_callback"):
        yield
        return
    with _HOOK_LOCK:
        previous = context._msg_callback

        def both(*args: Any) -> None:
            watch.message(*args)
            if previous is not None:  # whatever the embedding application installed
                previous(*args)

        context._msg_callback = both
        try:
            yield
        finally:
            context._msg_callback = previous


class _Handshake:
    """Collects what the trace extension and the message callback report for one connection.

    Everything is read from the SSL object as soon as the handshake completes: with TLS 1.3 a
    refused client certificate only surfaces on the first read, and by the time the failure
    reaches us httpcore has closed the connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[int, list[tuple[str, int, bytes, bool]]] = {}
        self._connection: Any = None  # the SSLSocket: held so that its id stays unique
        self._session: dict[str, Any] = {}
        self._tcp_connected = False

    # Called by OpenSSL (through CPython) for every TLS message of every connection on the context;
    # CPython fixes the six positional parameters.
    def message(self, conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any,
                data: bytes) -> None:
        if int(content_type) != 22:  # handshake
            return
        with self._lock:
            self._messages.setdefault(id(conn), []).append(
                (direction, int(msg_type), bytes(data), version == ssl.TLSVersion.TLSv1_3)
            )

    def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event == "connection.connect_tcp.complete":
            self._tcp_connected = True
        # "proxy.start_tls.complete": the handshake with the partner inside a CONNECT tunnel.
        if event not in _START_TLS_DONE or info.get("return_value") is None:
            return
        ssl_object = info["return_value"].get_extra_info("ssl_object")
        if ssl_object is None:
            return
        # httpcore hands out the low-level SSL object; the callback names its owning SSLSocket.
        self._connection = getattr(ssl_object, "owner", None) or ssl_object
        cipher = ssl_object.cipher()
        self._session = {"tls_version": ssl_object.version(), "cipher": cipher[0] if cipher else None}
        with self._lock:
            observed = id(self._connection) in self._messages
        if not observed:
            chain, source = chain_from_ssl_object(ssl_object)
            self._session["server_chain"] = tuple(CertificateInfo.from_der(der) for der in chain)
            self._session["server_chain_source"] = source

    def result(self, *, url: str, method: str, status: int | None, reason: str | None,
               error: TransportError | None) -> ProbeResult:
        handshake_done = self._connection is not None
        with self._lock:
            if handshake_done:
                messages = self._messages.get(id(self._connection), [])
            else:  # the handshake failed: the only connection seen is ours
                messages = next(iter(self._messages.values())) if len(self._messages) == 1 else []
        fields: dict[str, Any] = dict(self._session)
        if not messages and not self._tcp_connected:
            fields["client_cert_outcome"] = "not_connected"
        if messages:
            fields["handshake_observed"] = True
            sent_by_server = [certificate_ders(data, tls13) for d, t, data, tls13 in messages
                              if d == "read" and t == _CERTIFICATE]
            if sent_by_server:
                fields["server_chain"] = tuple(CertificateInfo.from_der(der) for der in sent_by_server[0])
                fields["server_chain_source"] = "handshake"
            requested = any(d == "read" and t == _CERTIFICATE_REQUEST for d, t, _, _ in messages)
            # "Not requested" is only certain once the server's whole flight has been read.
            if requested or handshake_done:
                fields["client_cert_requested"] = requested
            ours = [certificate_ders(data, tls13) for d, t, data, tls13 in messages
                    if d == "write" and t == _CERTIFICATE]
            if ours and ours[0]:
                fields["client_cert_sent"] = CertificateInfo.from_der(ours[0][0])
                fields["client_cert_outcome"] = "sent"
            elif ours or (handshake_done and requested):
                fields["client_cert_outcome"] = "none_sent"
            else:
                fields["client_cert_outcome"] = "not_requested" if handshake_done else "not_reached"
        return ProbeResult(url=url, method=method, status=status, reason=reason, error=error, **fields)
