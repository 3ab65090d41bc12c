"""SSLContext factory.

Trust is exactly what the profile says: its trust store certs, plus the operating system's CAs
when ``use_system_trust`` is on. The system store is read from OpenSSL's compiled-in locations,
never from ``SSL_CERT_FILE``/``SSL_CERT_DIR``, so the same alias behaves the same on every machine.

``load_cert_chain`` only takes paths; the private key goes through an anonymous in-memory file
(``memfd_create``), or where that does not exist, through a 0600 temp file holding the key
encrypted with a one-time password, removed right after loading. Plaintext keys never touch disk.

Posture: TLS 1.2 at least (a profile cannot ask for less), TLS 1.2 suites with forward secrecy and
AEAD only, no compression, no renegotiation, certificate and host name checks on unless the
profile says ``insecure_skip_verify`` (which the registry reports loudly).

A partner that refuses our ClientHello (no TLS version or cipher in common) answers with an alert
that TLS 1.2 also uses for "no client certificate": the same ``SSLV3_ALERT_HANDSHAKE_FAILURE``.
To tell them apart, the context watches the handshake messages (OpenSSL's message callback,
``SSLContext._msg_callback`` in CPython): a fatal alert before any ServerHello raises
``HelloRefused`` from the callback, which CPython chains as the ``__context__`` of the
``ssl.SSLError`` that follows; the error classification reads it there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from flowrun._errors import KeyMismatchError
from flowrun._tls._model import ClientIdentity

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are all strong.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


# TLS alert descriptions that mean "nothing you offered is acceptable".
_REFUSAL_ALERTS = frozenset({40, 70, 71})  # handshake_failure, protocol_version, insufficient_security
_FATAL = 2
_HANDSHAKE = 22
_ALERT = 21
_SERVER_HELLO = 2


class HelloRefused(Exception):
    """The partner answered our ClientHello with a fatal alert: no TLS version or cipher in common."""

    def __init__(self, alert: int) -> None:
        super().__init__(f"the partner refused the ClientHello (TLS alert {alert})")
        self.alert = alert


class _HelloWatch:
    """Remembers which connections got a ServerHello (weakly: a closed connection is forgotten)."""

    def __init__(self) -> None:
        self._answered: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()

    # CPython calls this for every TLS record and message of every connection on the context.
    def __call__(self, conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any,
                 data: bytes) -> None:
        if direction != "read":
            return
        if content_type == _HANDSHAKE and msg_type == _SERVER_HELLO:
            with self._lock:
                self._answered.add(conn)
        elif content_type == _ALERT and len(data) == 2 and data[0] == _FATAL and data[1] in _REFUSAL_ALERTS:
            with self._lock:
                answered = conn in self._answered
            if not answered:
                raise HelloRefused(data[1])


_HELLO_WATCH = _HelloWatch()


def hello_refused(error: BaseException) -> HelloRefused | None:
    """The ``HelloRefused`` marker chained to an ``ssl.SSLError`` (see the module docstring)."""
    context = error.__context__
    return context if isinstance(context, HelloRefused) else None


@attrs.frozen
class TlsSettings:
    versions: tuple[str, ...] = ("1.2", "1.3")
    use_system_trust: bool = True
    verify: bool = True


def system_trust_locations() -> tuple[str | None, str | None]:
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if paths.openssl_cafile and Path(paths.openssl_cafile).is_file() else None
    capath = paths.openssl_capath if paths.openssl_capath and Path(paths.openssl_capath).is_dir() else None
    return cafile, capath


def build_ssl_context(
    identity: ClientIdentity | None,
    trust: Sequence[x509.Certificate],
    settings: TlsSettings = TlsSettings(),
) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    versions = sorted(_VERSIONS[v] for v in settings.versions)
    context.minimum_version = versions[0]
    context.maximum_version = versions[-1]
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if hasattr(context, "_msg_callback"):
        context._msg_callback = _HELLO_WATCH
    if settings.verify:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if settings.use_system_trust:
            cafile, capath = system_trust_locations()
            if cafile or capath:
                context.load_verify_locations(cafile=cafile, capath=capath)
        if trust:
            pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in trust)
            context.load_verify_locations(cadata=pem)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if identity is not None:
        load_identity(context, identity)
    return context


def load_identity(context: ssl.SSLContext, identity: ClientIdentity) -> None:
    chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in identity.chain)
    if hasattr(os, "memfd_create"):
        key_pem = identity.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with _memory_file(key_pem + chain_pem) as path:
            _load_chain(context, path, None, identity)
        return
    password = secrets.token_urlsafe(24)
    key_pem = identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password.encode()),
    )
    fd, name = tempfile.mkstemp(prefix="flowrun-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key_pem + chain_pem)
        _load_chain(context, name, password, identity)
    finally:
        Path(name).unlink()


def _load_chain(context: ssl.SSLContext, path: str, password: str | None, identity: ClientIdentity) -> None:
    try:
        context.load_cert_chain(path, path, password=password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise KeyMismatchError(
                f"the private key under alias '{identity.alias}' does not belong to its certificate"
            ) from None
        raise


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("flowrun-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
