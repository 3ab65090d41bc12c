"""Diagnostic handshakes, made only after a failure that the error alone does not explain.

A partner that refuses our ClientHello (no TLS version or cipher in common) answers with an alert
that TLS 1.2 also uses for "no client certificate": the same ``SSLV3_ALERT_HANDSHAKE_FAILURE``.
To tell them apart, ``hello_answered`` makes one more, diagnostic handshake after such a failure
and watches its messages (OpenSSL's message callback, ``SSLContext._msg_callback`` in CPython):
a ServerHello means the partner accepted our versions and ciphers. Only that probe carries the
callback: on the contexts that carry traffic it would cost a Python call per TLS record. Kept out
of ``_context`` so that a run that does not fail does not import it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Sequence
from typing import Any, Literal

import attrs

from flowrun._models._record import ValueRecord
from flowrun._tls._context import apply_posture

_HANDSHAKE = 22
_SERVER_HELLO = 2
_CERTIFICATE = 11
_CERTIFICATE_REQUEST = 13


@attrs.frozen(eq=False, repr=False)
class HelloAnswer(ValueRecord):
    """What one diagnostic handshake saw of the partner's answer."""

    server_hello: bool
    certificate_requested: bool
    # The partner's certificates as it sent them (leaf first), when it got that far.
    server_chain: tuple[bytes, ...] = ()


def hello_answered(address: tuple[str, int], server_hostname: str, versions: Sequence[str],
                   timeout: float) -> bool | None:
    """Whether the partner answers our ClientHello (same versions and ciphers as our contexts) with
    a ServerHello. A diagnostic handshake, made only after an ambiguous failure; None when it
    cannot tell (no message callback in this Python, or no connection)."""
    answer = diagnostic_hello(address, server_hostname, versions, timeout)
    return None if answer is None else answer.server_hello


def diagnostic_hello(address: tuple[str, int], server_hostname: str, versions: Sequence[str],
                     timeout: float) -> HelloAnswer | None:
    """One diagnostic handshake without a client certificate: did the partner answer our hello,
    and did it ask for a client certificate? None when it cannot tell (see ``hello_answered``)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if not hasattr(context, "_msg_callback"):
        return None
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    apply_posture(context, versions)
    seen: set[int] = set()
    chain: list[bytes] = []

    def watch(conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any, data: bytes) -> None:
        if direction == "read" and content_type == _HANDSHAKE:
            seen.add(int(msg_type))
            if int(msg_type) == _CERTIFICATE and not chain:
                with contextlib.suppress(IndexError):  # a truncated message: no chain to show
                    chain.extend(certificate_ders(bytes(data), version == ssl.TLSVersion.TLSv1_3))

    context._msg_callback = watch
    try:
        with socket.create_connection(address, timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=server_hostname):
            pass
    except ssl.SSLError:
        pass
    except OSError:
        if not seen:
            return None
    return HelloAnswer(server_hello=_SERVER_HELLO in seen, certificate_requested=_CERTIFICATE_REQUEST in seen,
                       server_chain=tuple(chain))


AfterHandshake = Literal["handshake_failed", "closed", "waiting"]


def after_our_handshake(context: ssl.SSLContext, address: tuple[str, int], server_hostname: str,
                        timeout: float, wait: float = 0.5) -> AfterHandshake | None:
    """What the partner does with a connection made with ``context`` (our identity, if it has one)
    when we send nothing: fails the handshake, closes the connection right after it (how a server
    that refuses a TLS 1.3 client certificate without an alert behaves), or waits for a request.
    A diagnostic made only after a silent close; None when no connection could be made."""
    try:
        raw = socket.create_connection(address, timeout=timeout)
    except OSError:
        return None
    with raw:
        try:
            tls = context.wrap_socket(raw, server_hostname=server_hostname)
        except (ssl.SSLError, OSError):
            return "handshake_failed"
        with tls:
            tls.settimeout(wait)
            try:
                return "closed" if tls.recv(1) == b"" else "waiting"
            except TimeoutError:
                return "waiting"
            except (ssl.SSLError, OSError):
                return "closed"


def certificate_ders(data: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of a Certificate handshake message (RFC 5246 7.4.2, RFC 8446 4.4.2)."""
    pos = 4  # message type and length
    if tls13:
        pos += 1 + data[pos]  # certificate_request_context
    end = pos + 3 + int.from_bytes(data[pos:pos + 3], "big")
    pos += 3
    certificates: list[bytes] = []
    while pos + 3 <= min(end, len(data)):
        length = int.from_bytes(data[pos:pos + 3], "big")
        certificates.append(data[pos + 3:pos + 3 + length])
        pos += 3 + length
        if tls13:
            pos += 2 + int.from_bytes(data[pos:pos + 2], "big")  # per-certificate extensions
    return certificates
