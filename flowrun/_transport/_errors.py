"""httpx and ssl exceptions -> flowrun transport errors.

``classify`` is a plain function: the REST and SOAP executors call it, and so does
``flowrun alias test``. What it looks at, in order:

0. when the URL goes through a proxy: the proxy's answer to CONNECT (407/401 credentials, 403
   refused, 5xx could not reach the partner); a partner certificate that does not verify and
   carries no CA we trust is a TLS-intercepting proxy (one diagnostic handshake through the proxy
   reads its issuer); a failed TCP connect is the proxy's;
1. an ``ssl.SSLError`` anywhere in the exception's cause/context chain (httpx puts it at
   ``exc.__cause__.__context__``): the OpenSSL reason decides the TLS cause. With TLS 1.3 a
   rejected client certificate surfaces as a *read* error after the request was written, so a
   TLS reason wins over the httpx class. A handshake alert on an established TLS 1.2
   connection ends a renegotiation the partner asked for and we declined
   (``RenegotiationRefusedError``; ``_streams`` notes each connection's version);
2. the attempt's total deadline (``_streams.DeadlineExceeded``: "the partner kept sending
   slowly"), then the httpx class (timeouts, connect, read/write, protocol);
3. plain ``OSError`` subclasses (refused, reset) for callers that use sockets directly.

Some servers refuse a client certificate without a TLS alert: ``refusal_page`` recognises nginx's
answers (HTTP 400 with its own page, or 495/496 where an ``error_page`` exposes them), and
``classify`` asks one diagnostic handshake why a partner closed the connection silently (Java's
HttpsServer). What each partner does is measured in ``docs/partners.md``.

Messages name ``host:port`` and the alias, and end with the OpenSSL reason; never a secret.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import re
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx

from flowrun._errors import (
    ClientCertExpiredError,
    ClientCertNotSentError,
    ClientCertRejectedError,
    ConnectionLostError,
    ConnectRefusedError,
    HostnameMismatchError,
    HostNotFoundError,
    PlainHttpPortError,
    ProtocolError,
    ProtocolVersionError,
    ProxyAuthRequiredError,
    ProxyRefusedError,
    ProxyUnreachableError,
    ProxyUpstreamError,
    RenegotiationRefusedError,
    RequestTimeoutError,
    ServerCertUntrustedError,
    TlsError,
    TlsInterceptedError,
    TransportError,
)
from flowrun._models._proxy import ProxyEndpoint
from flowrun._transport._proxy import presented_chain, proxy_for_url
from flowrun._transport._streams import ATTEMPT_DEADLINE_FACTOR, DeadlineExceeded, TlsReadError

if TYPE_CHECKING:
    from cryptography import x509

    from flowrun._registry import ResolvedConnection
    from flowrun._tls._hello import HelloAnswer

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
_BEFORE_SEND = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
                httpx.ProxyError)


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


async def aclassify(exc: BaseException, *, url: str | httpx.URL | None = None,
                    resolved: ResolvedConnection | None = None) -> TransportError:
    """``classify`` for the async paths, off the event loop: after some TLS failures it makes a
    diagnostic connection (blocking, up to 5 s), which must not stall every other request."""
    import asyncio

    return await asyncio.to_thread(classify, exc, url=url, resolved=resolved)


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
    proxy = _proxy_in_use(url, resolved)
    if proxy is not None:
        refused = _proxy_answer(exc, where, proxy)
        if refused is not None:
            return refused
    ssl_error = find_ssl_error(exc)
    if ssl_error is not None and not isinstance(ssl_error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        renegotiation = _renegotiation(exc, ssl_error, where)
        if renegotiation is not None:
            return renegotiation
        if proxy is not None and resolved is not None and url is not None and _verify_failed(ssl_error):
            intercepted = _interception(ssl_error, where, proxy, resolved, url)
            if intercepted is not None:
                return intercepted
        return _classify_tls(ssl_error, where, resolved)
    chain = list(exception_chain(exc))
    if proxy is not None and ssl_error is None and _connect_failed(exc, chain):
        return ProxyUnreachableError(f"{where}: cannot reach proxy {proxy.display} ({_connect_reason(exc, chain)})")
    deadline = next((e for e in chain if isinstance(e, DeadlineExceeded)), None)
    if deadline is not None:
        return RequestTimeoutError(
            f"{where}: {_first_line(deadline)}",
            hint=f"one attempt may take {ATTEMPT_DEADLINE_FACTOR:g} x timeout_s in all; raise timeout_s if the "
                 "partner is slow but sound (a large body, a slow link), else ask the partner why it trickles")
    if isinstance(exc, httpx.TimeoutException) or any(isinstance(e, TimeoutError) for e in chain):
        return _timeout(exc, where)
    if ssl_error is not None:
        silent = _closed_silently(where, f"{_reason(ssl_error)}", resolved)
        return silent or ConnectionLostError(f"{where}: the partner closed the connection during the TLS "
                                             f"exchange ({_reason(ssl_error)})")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return ConnectRefusedError(f"{where}: connection refused: nothing listens on that port, or a "
                                   "firewall rejects the connection")
    resolution = next((e for e in chain if isinstance(e, socket.gaierror)), None)
    if resolution is not None:
        host = _host(url, resolved)
        return HostNotFoundError(f"{where}: the host name {host!r} does not resolve "
                                 f"({resolution.strerror or resolution})")
    if isinstance(exc, httpx.ConnectError):
        return TransportError(f"{where}: cannot connect ({_first_line(exc)})",
                              hint="check host, port and the network path to the partner")
    if isinstance(exc, httpx.RemoteProtocolError):
        text = str(exc)
        if "disconnected" in text.lower() or "closed" in text.lower():
            silent = _closed_silently(where, _first_line(exc), resolved)
            return silent or ConnectionLostError(
                f"{where}: the partner closed the connection without a complete answer ({_first_line(exc)})")
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
    if isinstance(exc, httpx.LocalProtocolError):
        return ProtocolError(f"{where}: the request could not be sent as HTTP ({_first_line(exc)})",
                             hint="our request is at fault, not the partner: a header value (of the step, the "
                                  "alias or a data pill) holds a line break or another character HTTP forbids")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return ProtocolError(f"{where}: {_first_line(exc)}", hint="the URL must start with https:// or http://")
    if isinstance(exc, httpx.HTTPError):
        return ProtocolError(f"{where}: {_first_line(exc)}")
    return TransportError(f"{where}: {type(exc).__name__}: {_first_line(exc)}")


# nginx (``ssl_verify_client on``) finishes the handshake whatever certificate it gets, then answers
# the request with one of its own pages, status 400 (internally 495: did not verify, 496: none sent).
# Only nginx's own titles count: an application's 400 belongs to the application.
_NGINX_PAGE = re.compile(rb"<title>\s*400 (The SSL certificate error|No required SSL certificate was sent)\s*</title>")
_NGINX_NOT_SENT = "No required SSL certificate was sent"
# Statuses nothing but nginx uses; an ``error_page 495 =495 ...`` shows them to clients.
_NGINX_STATUSES = {495: "SSL Certificate Error", 496: "SSL Certificate Required"}
# Every status ``refusal_page`` can name: an answer with another one is not looked at.
REFUSAL_STATUSES = frozenset({400, *_NGINX_STATUSES})
_PAGE_PREFIX = 4096


def refusal_page(status: int, body: bytes, *, url: str | httpx.URL | None = None,
                 resolved: ResolvedConnection | None = None) -> TlsError | None:
    """The client-certificate error an HTTP answer stands for, if it is nginx's refusal of our
    certificate (its 400 page, or status 495/496); else None."""
    if status not in REFUSAL_STATUSES:
        return None
    reason: str | None = None
    if status in _NGINX_STATUSES:
        reason = _NGINX_STATUSES[status]
        not_sent = status == 496
        said = f"HTTP {status} ({reason}, nginx's status for a client certificate that "
        said += "was not sent)" if not_sent else "did not verify)"
    else:  # 400
        found = _NGINX_PAGE.search(body[:_PAGE_PREFIX])
        if found is None:
            return None
        reason = found.group(1).decode("ascii")
        not_sent = reason == _NGINX_NOT_SENT
        said = f'HTTP 400 with nginx\'s page "{reason}"'
    where = _where(url, resolved)
    mutual = resolved is not None and resolved.client_certificate is not None
    if not mutual:
        return ClientCertNotSentError(f"{where}: the partner requires a client certificate and none is configured: "
                                      f"it answered {said}")
    assert resolved is not None
    if not_sent:
        return ClientCertNotSentError(
            f"{where}: the partner answered {said}, although a client certificate{_ours(resolved)} is configured",
            hint="the partner did not receive our certificate: check that nothing between us and the partner "
            "(a proxy or load balancer ending TLS) drops it, and that the partner asks for it on this host name")
    if _our_certificate_expired(resolved):
        return ClientCertExpiredError(f"{where}: the partner answered {said}: our client certificate"
                                      f"{_ours(resolved)} {_expired_since(resolved)}")
    return ClientCertRejectedError(f"{where}: the partner answered {said}: it did not accept the client "
                                   f"certificate we sent{_ours(resolved)}")


_AMBIGUOUS_REFUSALS = frozenset({"SSLV3_ALERT_HANDSHAKE_FAILURE"})
_ALL_VERSIONS = ("1.2", "1.3")


def _dialled(resolved: ResolvedConnection) -> tuple[str, int]:
    return resolved.connect_to.get((resolved.host.lower(), resolved.port), (resolved.host, resolved.port))


def _versions(resolved: ResolvedConnection) -> tuple[str, ...]:
    return tuple(resolved.profile.tls_versions) if resolved.profile is not None else _ALL_VERSIONS


def _proxied(resolved: ResolvedConnection) -> bool:
    """Whether the partner is reached through a proxy: then no diagnostic connection dials it
    directly (it would bypass the proxy, or not get through at all)."""
    return resolved.proxy.for_url(resolved.scheme, resolved.host, resolved.port) is not None


def _hello(resolved: ResolvedConnection, versions: tuple[str, ...]) -> HelloAnswer | None:
    """One diagnostic handshake (only after a failure that needs telling apart)."""
    from flowrun._tls._hello import diagnostic_hello

    if _proxied(resolved):
        return None
    return diagnostic_hello(_dialled(resolved), resolved.host, versions, min(resolved.connect_timeout_s, 5.0))


# --- proxies ---------------------------------------------------------------------------------


def _proxy_in_use(url: str | httpx.URL | None, resolved: ResolvedConnection | None) -> ProxyEndpoint | None:
    if resolved is None or not resolved.proxy.any:
        return None
    target = url if url is not None else resolved.base_url
    try:
        return proxy_for_url(resolved.proxy, target)
    except httpx.InvalidURL:
        return None


def _proxy_answer(exc: BaseException, where: str, proxy: ProxyEndpoint) -> TransportError | None:
    """The proxy's answer to CONNECT when it was not 2xx (httpx: ``ProxyError("403 Forbidden")``)."""
    error = next((e for e in exception_chain(exc) if isinstance(e, httpx.ProxyError)), None)
    if error is None:
        return None
    return _proxy_status(_first_line(error), where, proxy)


def _proxy_status(answer: str, where: str, proxy: ProxyEndpoint) -> TransportError:
    first = answer.split(maxsplit=1)[0] if answer.strip() else ""
    status = int(first) if first.isdigit() else None
    # 407 is the standard answer; some proxies (tinyproxy) answer wrong credentials with 401.
    if status in (401, 407):
        if proxy.username is not None:
            return ProxyAuthRequiredError(
                f"{where}: proxy {proxy.display} did not accept our proxy credentials ({answer})",
                hint="check the proxy user name and password (the secret the connection's proxy or the proxy "
                     "variable names)")
        return ProxyAuthRequiredError(f"{where}: proxy {proxy.display} asks for proxy authentication and no "
                                      f"proxy credentials are configured ({answer})")
    if status is not None and status >= 500:
        return ProxyUpstreamError(f"{where}: proxy {proxy.display} could not open a tunnel to the partner ({answer})")
    return ProxyRefusedError(f"{where}: proxy {proxy.display} refused to open a tunnel (CONNECT) to the partner "
                             f"({answer})")


def proxy_refusal(url: str, resolved: ResolvedConnection, answer: str) -> TransportError | None:
    """A proxy's status line given to a plain-http request it forwards (``407 Proxy
    Authentication Required``) as the error it stands for; None when no proxy is in use."""
    proxy = _proxy_in_use(url, resolved)
    return _proxy_status(answer, _where(url, resolved), proxy) if proxy is not None else None


def _verify_failed(error: ssl.SSLError) -> bool:
    reason = (error.reason or "").upper()
    if not (isinstance(error, ssl.SSLCertVerificationError) or reason == "CERTIFICATE_VERIFY_FAILED"):
        return False
    code = getattr(error, "verify_code", None)
    return code not in _NAME_MISMATCH_CODES and code not in _SERVER_EXPIRED_CODES


def _interception(error: ssl.SSLError, where: str, proxy: ProxyEndpoint, resolved: ResolvedConnection,
                  url: str | httpx.URL) -> TlsInterceptedError | None:
    """A certificate that does not verify, seen through a proxy: look at who issued it (one more
    handshake through the proxy, stopped before any request is sent)."""
    chain = presented_chain(str(url), resolved, timeout_s=min(resolved.connect_timeout_s, 5.0))
    if not chain or _chains_to_our_trust(chain, resolved):
        return None  # a CA we trust is in it: the partner's own chain problem, not a forgery
    presented = chain[0]
    subject, issuer = presented.subject.rfc4514_string(), presented.issuer.rfc4514_string()
    return TlsInterceptedError(
        f"{where}: through proxy {proxy.display} the server presented a certificate for '{subject}' issued by "
        f"'{issuer}', a CA this connection does not trust: the proxy intercepts TLS and re-signs the partner's "
        f"certificate with its own CA ({_reason(error)})",
        hint=("ask the proxy's administrators to exempt this host from TLS inspection (mutual TLS cannot work "
              "through it: the partner would see the proxy, not our certificate); if '" + issuer + "' is in fact "
              "the partner's CA, add its root as a trust_store_cert"))


def _chains_to_our_trust(chain: list[x509.Certificate], resolved: ResolvedConnection) -> bool:
    """Whether a CA this connection trusts appears in the presented chain, as a certificate or as
    an issuer (names compared)."""
    context = resolved.ssl_context
    if context is None:
        return False
    ders = context.get_ca_certs(binary_form=True)
    if resolved.profile is None or resolved.profile.use_system_trust:
        # The context looks system CAs up lazily in a hashed directory: get_ca_certs() does not
        # list them, so read the system's bundle here, on this failure path only.
        from flowrun._tls._context import system_trust_certificates

        ders = [*ders, *system_trust_certificates()]
    from cryptography import x509

    trusted = set()
    for der in ders:
        with contextlib.suppress(ValueError):
            trusted.add(x509.load_der_x509_certificate(der).subject)
    return any(c.subject in trusted or c.issuer in trusted for c in chain)


# What only opening a TCP connection fails with: through a proxy we only ever dial the proxy.
# (A timeout or a reset may also come from the TLS handshake with the partner inside the tunnel.)
_DIAL_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ENETUNREACH, errno.EHOSTUNREACH})


def _connect_failed(exc: BaseException, chain: list[BaseException]) -> bool:
    return any(isinstance(e, socket.gaierror) or (isinstance(e, OSError) and e.errno in _DIAL_ERRNOS)
               for e in chain)


def _connect_reason(exc: BaseException, chain: list[BaseException]) -> str:
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused: nothing listens on the proxy's port"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "cannot resolve the proxy's host name"
    reason = next((e for e in chain if isinstance(e, OSError) and e.errno in _DIAL_ERRNOS), exc)
    return _first_line(reason)


def _hello_refused(resolved: ResolvedConnection) -> bool:
    """Whether the partner refuses even our ClientHello (checked with one diagnostic handshake)."""
    answer = _hello(resolved, _versions(resolved))
    return answer is not None and not answer.server_hello


def _pinned_version(where: str, detail: str, resolved: ResolvedConnection) -> ProtocolVersionError | None:
    """When the profile pins TLS versions, one more diagnostic handshake with the versions it
    leaves out tells whether the pin is why the partner refused our hello."""
    offered = _versions(resolved)
    others = tuple(v for v in _ALL_VERSIONS if v not in offered)
    if not others:
        return None
    answer = _hello(resolved, others)
    if answer is None or not answer.server_hello:
        return None
    profile = resolved.profile.name if resolved.profile is not None else ""
    return ProtocolVersionError(
        f"{where}: the partner refuses TLS {' and '.join(offered)}, the only version protocol profile "
        f"'{profile}' allows (tls_versions), and accepts TLS {' and '.join(others)} ({detail})",
        hint=f"allow TLS {' and '.join(others)} in tls_versions of protocol profile '{profile}' "
        "(or ask the partner to enable the version you pinned)")


def _refused_hello(where: str, detail: str, resolved: ResolvedConnection | None) -> ProtocolVersionError:
    pinned = _pinned_version(where, detail, resolved) if resolved is not None else None
    if pinned is not None:
        return pinned
    return ProtocolVersionError(
        f"{where}: the partner refused our hello: no TLS version or cipher in common ({detail})",
        hint="flowrun offers TLS 1.3 and TLS 1.2 with ECDHE and AES-GCM or ChaCha20 only; the partner "
        "must enable one of them (older versions and ciphers are not offered on purpose)")


def _closed_silently(where: str, detail: str, resolved: ResolvedConnection | None) -> TlsError | None:
    """Some servers (Java's HttpsServer) end a handshake they refuse by closing the connection,
    without a TLS alert: during the handshake with TLS 1.2, before any answer with TLS 1.3.
    Diagnostic connections tell why when they can: one as the step made it, sending nothing
    (does the partner close it right away, or wait for a request?), then, only if it closes, one
    without a client certificate (does the partner answer our hello, does it ask for a
    certificate?). A partner that asks for a certificate and closes every connection that
    presents ours (or none) before any request refuses it. None when that does not hold: the
    connection was merely lost."""
    if resolved is None or resolved.scheme != "https" or resolved.insecure or resolved.ssl_context is None:
        return None
    if _proxied(resolved):
        return None
    from flowrun._tls._hello import after_our_handshake

    # First the connection as the step made it: a partner that waits for a request is sound, and
    # no further diagnostic (nor a failed handshake in the partner's logs) is needed.
    if after_our_handshake(resolved.ssl_context, _dialled(resolved), resolved.host,
                           min(resolved.connect_timeout_s, 5.0)) not in ("handshake_failed", "closed"):
        return None
    answer = _hello(resolved, _versions(resolved))
    if answer is None:
        return None
    if not answer.server_hello:
        return _pinned_version(where, f"the partner closed the connection at our hello: {detail}", resolved)
    if not answer.certificate_requested:
        return None
    silently = "the partner asked for a client certificate, then closed the connection without a TLS alert"
    if resolved.client_certificate is None:
        return ClientCertNotSentError(f"{where}: {silently}; no client certificate is configured ({detail})")
    if _our_certificate_expired(resolved):
        return ClientCertExpiredError(f"{where}: {silently}; our client certificate{_ours(resolved)} "
                                      f"{_expired_since(resolved)}, which is the likely cause ({detail})")
    return ClientCertRejectedError(f"{where}: {silently} and without an answer, right after we sent our client "
                                   f"certificate{_ours(resolved)}: most likely it does not accept it ({detail})")


def _our_certificate_expired(resolved: ResolvedConnection | None) -> bool:
    leaf = resolved.client_certificate if resolved is not None else None
    return leaf is not None and leaf.not_valid_after_utc < datetime.now(UTC)


def _expired_since(resolved: ResolvedConnection) -> str:
    leaf = resolved.client_certificate
    assert leaf is not None
    return f"expired on {leaf.not_valid_after_utc.strftime('%Y-%m-%d %H:%M UTC')}"


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
        return _untrusted(where, detail, resolved)
    if reason in _AMBIGUOUS_REFUSALS and resolved is not None and _hello_refused(resolved):
        # TLS 1.2 sends the same alert for "no client certificate": a second handshake tells.
        return _refused_hello(where, detail, resolved)
    mutual = resolved is not None and resolved.client_certificate is not None
    if reason == "SSLV3_ALERT_CERTIFICATE_EXPIRED":
        return ClientCertExpiredError(f"{where}: the partner says our client certificate{_ours(resolved)} "
                                      f"has expired ({detail})")
    if reason in _CLIENT_CERT_MISSING:
        if not mutual:
            return ClientCertNotSentError(
                f"{where}: the partner requires a client certificate and none is configured ({detail})",
                hint=_not_sent_hint(resolved))
        return ClientCertRejectedError(
            f"{where}: the partner did not accept the client certificate we sent{_ours(resolved)} ({detail})")
    if reason in _CLIENT_CERT_REJECTED and mutual and _our_certificate_expired(resolved):
        # Some servers (Java's) answer an expired certificate with certificate_unknown or bad_certificate.
        assert resolved is not None
        return ClientCertExpiredError(f"{where}: the partner did not accept our client certificate"
                                      f"{_ours(resolved)}, which {_expired_since(resolved)} ({detail})")
    if reason in _CLIENT_CERT_REJECTED:
        if not mutual:
            return ClientCertNotSentError(
                f"{where}: the partner refused the handshake and no client certificate is configured ({detail})",
                hint=_not_sent_hint(resolved))
        return ClientCertRejectedError(
            f"{where}: the partner did not accept the client certificate we sent{_ours(resolved)} ({detail})")
    if reason in _NOT_TLS_REASONS:
        return PlainHttpPortError(f"{where}: the port does not speak TLS ({detail})")
    if reason in _VERSION_REASONS:
        return _refused_hello(where, detail, resolved)
    return TlsError(f"{where}: the TLS handshake failed ({detail})",
                    hint="run `flowrun alias test` for a diagnosis of the connection")


def _not_sent_hint(resolved: ResolvedConnection | None) -> str | None:
    profile = resolved.profile if resolved is not None else None
    if profile is None or profile.keystore is not None:
        return None
    return (f"the partner requires a client certificate and protocol profile '{profile.name}' is trust-only: add a "
            "keystore to it (or name a profile that has one) and set \"mutual_authentication\": true")


def _untrusted(where: str, detail: str, resolved: ResolvedConnection | None) -> ServerCertUntrustedError:
    """An untrusted partner, with the certificates it sends when a diagnostic handshake (no
    verification, no client certificate) can read them: which root the trust would need."""
    answer = _hello(resolved, _versions(resolved)) if resolved is not None and resolved.scheme == "https" else None
    sent = _sent_chain(answer.server_chain, _trusted_here(resolved)) if answer is not None else None
    said, needed = (f"; {sent[0]}", sent[1]) if sent is not None else ("", None)
    return ServerCertUntrustedError(f"{where}: the partner's certificate is not trusted ({detail}){said}",
                                    hint=_trust_hint(resolved, needed))


def _trusted_here(resolved: ResolvedConnection | None) -> list[bytes]:
    """The CA certificates the connection's context was given (files and PEM data; a hashed
    directory's are loaded only when a handshake looks them up, and are not listed)."""
    context = resolved.ssl_context if resolved is not None else None
    return list(context.get_ca_certs(binary_form=True)) if context is not None else []


def _sent_chain(chain: tuple[bytes, ...], trusted: list[bytes]) -> tuple[str, str] | None:
    """What the partner sent, in words, and the certificate the trust needs (its subject and
    fingerprint); None when it sent nothing readable, or when the trust already holds the
    certificate the chain needs (the failure then has another cause, which OpenSSL's words name)."""
    from cryptography.exceptions import UnsupportedAlgorithm

    from flowrun._tls._chain import load_der_certificate
    from flowrun._wording import counted

    try:
        certificates = [load_der_certificate(der) for der in chain]
        trusted_subjects = {load_der_certificate(der).subject for der in trusted}
    except (ValueError, UnsupportedAlgorithm):
        return None
    if not certificates:
        return None
    last = certificates[-1]
    if last.issuer in trusted_subjects:
        return None
    sent = f"it sent {counted(len(certificates), 'certificate')}"
    if last.issuer == last.subject:
        fingerprint = hashlib.sha256(chain[-1]).digest().hex(":").upper()  # as keystore inspect and keytool write it
        return (f"{sent}, up to the self-signed root '{last.subject.rfc4514_string()}'",
                f"the root '{last.subject.rfc4514_string()}' (SHA-256 {fingerprint}; get it from the partner and "
                "compare the fingerprint, do not take it from this connection)")
    return (f"{sent}, the last one issued by '{last.issuer.rfc4514_string()}', which it did not send",
            f"'{last.issuer.rfc4514_string()}' (the issuer of the last certificate the partner sent; get it "
            "from the partner)")


def _trust_hint(resolved: ResolvedConnection | None, needed: str | None = None) -> str | None:
    """Where the partner's root goes: the connection's profile, else a trust-only profile."""
    profile = resolved.profile if resolved is not None else None
    what = needed or "the partner's root (or its certificate)"
    if profile is not None:
        return f"add {what} as a trust_store_cert of protocol profile '{profile.name}'"
    if resolved is None:
        return None
    root = needed or "the partner's root"
    return (f"add {root} as a trust_store_cert on a protocol profile without a keystore (a trust-only profile) and "
            "name it in the connection's protocol_profile; mutual_authentication stays off")


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


def _host(url: str | httpx.URL | None, resolved: ResolvedConnection | None) -> str:
    if url is not None:
        try:
            return httpx.URL(str(url)).host
        except httpx.InvalidURL:
            pass
    return resolved.host if resolved is not None else ""


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
    dialled = resolved.connect_to.get((host.lower(), port)) if resolved is not None and host and port else None
    if dialled is not None:
        target += f" (dialled at {dialled[0]}:{dialled[1]} by --connect-to)"
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
