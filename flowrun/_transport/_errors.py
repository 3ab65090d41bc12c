"""httpx and ssl exceptions -> flowrun transport errors.

``classify`` is a plain function: the REST and SOAP executors call it, and so does
``flowrun alias test``. What it looks at, in order:

1. an ``ssl.SSLError`` anywhere in the exception's cause/context chain (httpx puts it at
   ``exc.__cause__.__context__``): the OpenSSL reason decides the TLS cause. With TLS 1.3 a
   rejected client certificate surfaces as a *read* error after the request was written, so a
   TLS reason wins over the httpx class. A handshake alert on an established TLS 1.2
   connection ends a renegotiation the partner asked for and we declined
   (``RenegotiationRefusedError``; ``_streams`` notes each connection's version);
2. the attempt's total deadline (``_streams.DeadlineExceeded``: "the partner kept sending
   slowly"), then the httpx class (timeouts, connect, read/write, protocol);
3. plain ``OSError`` subclasses (refused, reset) for callers that use sockets directly.

Messages name ``host:port`` and the alias, and end with the OpenSSL reason; never a secret.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx

from flowrun._errors import (
    ClientCertExpiredError,
    ClientCertNotSentError,
    ClientCertRejectedError,
    ConnectionLostError,
    ConnectRefusedError,
    HostnameMismatchError,
    PlainHttpPortError,
    ProtocolError,
    ProtocolVersionError,
    RenegotiationRefusedError,
    RequestTimeoutError,
    ServerCertUntrustedError,
    TlsError,
    TransportError,
)
from flowrun._transport._streams import ATTEMPT_DEADLINE_FACTOR, DeadlineExceeded, TlsReadError

if TYPE_CHECKING:
    from flowrun._registry import ResolvedConnection

# OpenSSL X509_V_ERR_* codes that are about the name, not the chain.
_NAME_MISMATCH_CODES = frozenset({62, 63, 64})
_SERVER_EXPIRED_CODES = frozenset({9, 10})
# Alerts a server sends when it does not accept the client certificate it received.
_CLIENT_CERT_REJECTED = frozenset({
    "TLSV1_ALERT_UNKNOWN_CA", "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_ACCESS_DENIED", "SSLV3_ALERT_CERTIFICATE_REVOKED", "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "TLSV1_ALERT_DECRYPT_ERROR",
})
# Alerts a server sends when it wanted a client certificate and got none (1.3 / 1.2).
_CLIENT_CERT_MISSING = frozenset({"TLSV13_ALERT_CERTIFICATE_REQUIRED", "SSLV3_ALERT_HANDSHAKE_FAILURE"})
_VERSION_REASONS = frozenset({
    "TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE",
    "WRONG_SSL_VERSION", "TLSV1_ALERT_INSUFFICIENT_SECURITY", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE",
})
# What OpenSSL says when the bytes that came back are not TLS at all.
_NOT_TLS_REASONS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG",
                              "RECORD_LAYER_FAILURE"})
# Versions that renegotiate, and the alerts that end a renegotiation we declined (OpenSSL servers
# answer our no_renegotiation warning with handshake_failure).
_RENEGOTIABLE = frozenset({"TLSv1.2", "TLSv1.1", "TLSv1", "SSLv3"})
_HANDSHAKE_ALERTS = _CLIENT_CERT_MISSING | _CLIENT_CERT_REJECTED | {"NO_RENEGOTIATION",
                                                                      "TLSV1_ALERT_NO_RENEGOTIATION"}
# Failures that happen before a byte of the request reached the partner.
_BEFORE_SEND = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, then its causes and contexts, breadth first, each once."""
    seen: set[int] = set()
    queue: list[BaseException | None] = [exc]
    while queue:
        current = queue.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        queue.extend((current.__cause__, current.__context__))


def failed_before_sending(exc: BaseException) -> bool:
    """True when the request certainly did not reach the partner (safe to retry any method).

    A TLS error is never "before sending" for this purpose: it is not retried at all.
    """
    return isinstance(exc, _BEFORE_SEND) and find_ssl_error(exc) is None


def find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    for item in exception_chain(exc):
        # "Want read/write" is how non-blocking TLS asks for more bytes (anyio leaves it in the
        # context of a reset): never a TLS failure.
        if isinstance(item, ssl.SSLError) and not isinstance(item, ssl.SSLWantReadError | ssl.SSLWantWriteError):
            return item
    return None


def classify(
    exc: BaseException,
    *,
    url: str | httpx.URL | None = None,
    resolved: ResolvedConnection | None = None,
) -> TransportError:
    """Turn an exception raised while talking to a partner into a flowrun ``TransportError``.

    ``url`` names the host and port that were being reached (defaults to the resolved
    connection's); ``resolved`` says whether a client certificate was configured.
    """
    if isinstance(exc, TransportError):
        return exc
    where = _where(url, resolved)
    ssl_error = find_ssl_error(exc)
    if ssl_error is not None and not isinstance(ssl_error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        renegotiation = _renegotiation(exc, ssl_error, where)
        return renegotiation or _classify_tls(ssl_error, where, resolved)
    chain = list(exception_chain(exc))
    deadline = next((e for e in chain if isinstance(e, DeadlineExceeded)), None)
    if deadline is not None:
        return RequestTimeoutError(
            f"{where}: {_first_line(deadline)}",
            hint=f"one attempt may take {ATTEMPT_DEADLINE_FACTOR:g} x timeout_s in all; raise timeout_s if the "
                 "partner is slow but sound (a large body, a slow link), else ask the partner why it trickles")
    if isinstance(exc, httpx.TimeoutException) or any(isinstance(e, TimeoutError) for e in chain):
        return _timeout(exc, where)
    if ssl_error is not None:
        return ConnectionLostError(f"{where}: the partner closed the connection during the TLS exchange "
                                   f"({_reason(ssl_error)})")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return ConnectRefusedError(f"{where}: connection refused (nothing listens on that port)")
    if any(isinstance(e, socket.gaierror) for e in chain):
        return TransportError(f"{where}: cannot resolve the host name", hint="check the host of the alias")
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"{where}: cannot connect ({_first_line(exc)})",
                              hint="check host, port and the network path to the partner")
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc)
        if "disconnected" in text.lower() or "closed" in text.lower():
            return ConnectionLostError(f"{where}: the partner closed the connection without a complete answer "
                                       f"({_first_line(exc)})")
        if "receive buffer too long" in text.lower():
            return ProtocolError(f"{where}: the reply's status line and headers never end ({_first_line(exc)})")
        return ProtocolError(f"{where}: the reply is not valid HTTP ({_first_line(exc)})")
    if isinstance(exc, httpx.ReadError | httpx.WriteError | httpx.CloseError) or any(
        isinstance(e, ConnectionResetError | BrokenPipeError | ConnectionAbortedError) for e in chain
    ):
        return ConnectionLostError(f"{where}: the connection was lost mid-exchange ({_lost(chain)})")
    if isinstance(exc, httpx.DecodingError):
        return ProtocolError(f"{where}: the body cannot be decoded ({_first_line(exc)})",
                             hint="the partner's Content-Encoding does not match its body")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProtocolError(f"{where}: {_first_line(exc)}", hint="the URL must start with https:// or http://")
    if isinstance(exc, httpx.HTTPError):
        return ProtocolError(f"{where}: {_first_line(exc)}")
    return TransportError(f"{where}: {type(exc).__name__}: {_first_line(exc)}")


_AMBIGUOUS_REFUSALS = frozenset({"SSLV3_ALERT_HANDSHAKE_FAILURE"})


def _hello_refused(resolved: ResolvedConnection) -> bool:
    """Whether the partner refuses even our ClientHello (checked with one diagnostic handshake)."""
    from flowrun._tls._context import hello_answered  # only on TLS failures

    address = resolved.connect_to.get((resolved.host.lower(), resolved.port), (resolved.host, resolved.port))
    versions = resolved.profile.tls_versions if resolved.profile is not None else ("1.2", "1.3")
    return hello_answered(address, resolved.host, versions, min(resolved.connect_timeout_s, 5.0)) is False


def _refused_hello(where: str, detail: str) -> ProtocolVersionError:
    return ProtocolVersionError(
        f"{where}: the partner refused our hello: no TLS version or cipher in common ({detail})",
        hint="flowrun offers TLS 1.3 and TLS 1.2 with ECDHE and AES-GCM or ChaCha20 only; the partner "
        "must enable one of them (older versions and ciphers are not offered on purpose)")


def _classify_tls(error: ssl.SSLError, where: str, resolved: ResolvedConnection | None) -> TlsError:
    reason = (error.reason or "").upper()
    detail = _reason(error)
    if isinstance(error, ssl.SSLCertVerificationError) or reason == "CERTIFICATE_VERIFY_FAILED":
        code = getattr(error, "verify_code", None)
        message = getattr(error, "verify_message", None) or ""
        if code in _NAME_MISMATCH_CODES or "mismatch" in message.lower():
            return HostnameMismatchError(f"{where}: the partner's certificate does not name this host ({detail})")
        if code in _SERVER_EXPIRED_CODES:
            return ServerCertUntrustedError(
                f"{where}: the partner's certificate is outside its validity period ({detail})",
                hint="the partner must renew its certificate (or check this machine's clock)")
        return ServerCertUntrustedError(f"{where}: the partner's certificate is not trusted ({detail})")
    if reason in _AMBIGUOUS_REFUSALS and resolved is not None and _hello_refused(resolved):
        # TLS 1.2 sends the same alert for "no client certificate": a second handshake tells.
        return _refused_hello(where, detail)
    mutual = resolved is not None and resolved.client_certificate is not None
    if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED":
        return ClientCertExpiredError(f"{where}: the partner says our client certificate{_ours(resolved)} "
                                      f"has expired ({detail})")
    if reason in _CLIENT_CERT_MISSING:
        if not mutual:
            return ClientCertNotSentError(
                f"{where}: the partner requires a client certificate and none is configured ({detail})")
        return ClientCertRejectedError(
            f"{where}: the partner did not accept the client certificate we sent{_ours(resolved)} ({detail})")
    if reason in _CLIENT_CERT_REJECTED:
        if not mutual:
            return ClientCertNotSentError(
                f"{where}: the partner refused the handshake and no client certificate is configured ({detail})")
        return ClientCertRejectedError(
            f"{where}: the partner did not accept the client certificate we sent{_ours(resolved)} ({detail})")
    if reason in _NOT_TLS_REASONS:
        return PlainHttpPortError(f"{where}: the port does not speak TLS ({detail})")
    if reason in _VERSION_REASONS:
        return _refused_hello(where, detail)
    return TlsError(f"{where}: the TLS handshake failed ({detail})",
                    hint="run `flowrun alias test` for a diagnosis of the connection")


def _renegotiation(exc: BaseException, error: ssl.SSLError, where: str) -> RenegotiationRefusedError | None:
    """A handshake alert on an established TLS 1.2 connection: the partner started a new
    handshake (our contexts set OP_NO_RENEGOTIATION, so we declined) and gave up on us."""
    read = next((e for e in exception_chain(exc) if isinstance(e, TlsReadError)), None)
    if read is None or read.tls_version not in _RENEGOTIABLE or (error.reason or "").upper() not in _HANDSHAKE_ALERTS:
        return None
    return RenegotiationRefusedError(f"{where}: the partner asked to renegotiate the {read.tls_version} session "
                                     f"mid-exchange, and flowrun does not renegotiate ({_reason(error)})")


def _timeout(exc: BaseException, where: str) -> RequestTimeoutError:
    if isinstance(exc, httpx.ConnectTimeout):
        phase = "connecting (TCP or TLS handshake)"
    elif isinstance(exc, httpx.WriteTimeout):
        phase = "sending the request"
    elif isinstance(exc, httpx.PoolTimeout):
        phase = "waiting for a free connection in the pool"
    else:
        phase = "waiting for the answer"
    return RequestTimeoutError(f"{where}: timed out {phase}")


def _where(url: str | httpx.URL | None, resolved: ResolvedConnection | None) -> str:
    host, port = None, None
    if url is not None:
        try:
            parsed = httpx.URL(str(url))
            host = parsed.host
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except httpx.InvalidURL:
            host = None
    if host is None and resolved is not None:
        host, port = resolved.host, resolved.port
    target = f"{host}:{port}" if host else "the partner"
    if resolved is not None and resolved.alias:
        target += f" (alias '{resolved.alias}'"
        target += f", env '{resolved.env}')" if resolved.env else ")"
    return target


def _ours(resolved: ResolvedConnection | None) -> str:
    leaf = resolved.client_certificate if resolved is not None else None
    if leaf is None:
        return ""
    return f" (subject {leaf.subject.rfc4514_string()}, sha256 {resolved.client_cert_sha256 if resolved else ''})"


def _reason(error: ssl.SSLError) -> str:
    reason = error.reason or type(error).__name__
    verify = getattr(error, "verify_message", None)
    return f"OpenSSL: {reason}: {verify}" if verify else f"OpenSSL: {reason}"


def _lost(chain: list[BaseException]) -> str:
    """What the system said about a lost connection (httpx's own message is often empty)."""
    reason = next((e for e in chain if isinstance(e, OSError) and str(e).strip()), None)
    return _first_line(reason if reason is not None else chain[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
