"""SSLContext factory.

Trust is exactly what the profile says: its trust store certs, plus the operating system's CAs
when ``use_system_trust`` is on. The system store is read from OpenSSL's compiled-in locations,
never from ``SSL_CERT_FILE``/``SSL_CERT_DIR``, so the same alias behaves the same on every machine.
Where the system directory is hashed (Debian's ``/etc/ssl/certs``), OpenSSL looks system CAs up
in it at verification time instead of parsing the whole bundle for every context.

``load_cert_chain`` only takes paths; the private key goes through an anonymous in-memory file
(``memfd_create``), or where that does not exist, through a 0600 temp file holding the key
encrypted with a one-time password, removed right after loading. Plaintext keys never touch disk.

Posture: TLS 1.2 at least (a profile cannot ask for less), TLS 1.2 suites with forward secrecy and
AEAD only, no compression, no renegotiation, certificate and host name checks on unless the
profile says ``insecure_skip_verify`` (which the registry reports loudly).

The diagnostic handshakes made after an ambiguous failure are in ``_hello``.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import re
import secrets
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from flowrun._errors import KeyAlgorithmError, KeyMismatchError, TrustCertError
from flowrun._models._record import ValueRecord
from flowrun._tls._model import ClientIdentity

if TYPE_CHECKING:  # certificates arrive as DER on a run's path: cryptography is imported where fields are read
    from cryptography import x509

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
# TLS 1.2 suites with forward secrecy and AEAD only; TLS 1.3 suites are all strong.
_TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!DSS"


def apply_posture(context: ssl.SSLContext, versions: Sequence[str]) -> None:
    ordered = sorted(_VERSIONS[v] for v in versions)
    context.minimum_version = ordered[0]
    context.maximum_version = ordered[-1]
    context.set_ciphers(_TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION


@attrs.frozen(eq=False, repr=False)
class TlsSettings(ValueRecord):
    versions: tuple[str, ...] = ("1.2", "1.3")
    use_system_trust: bool = True
    verify: bool = True


def system_trust_locations() -> tuple[str | None, str | None]:
    paths = ssl.get_default_verify_paths()
    cafile = paths.openssl_cafile if paths.openssl_cafile and Path(paths.openssl_cafile).is_file() else None
    capath = paths.openssl_capath if paths.openssl_capath and Path(paths.openssl_capath).is_dir() else None
    return cafile, capath


@functools.lru_cache(maxsize=8)
def is_hashed_directory(path: str) -> bool:
    """Whether ``path`` holds certificates under OpenSSL's subject-hash names (``1a2b3c4d.0``), as
    ``update-ca-certificates`` / ``openssl rehash`` write them: only then can OpenSSL look a CA up
    in it by name at verification time."""
    try:
        with os.scandir(path) as entries:
            return any(_HASHED_NAME.fullmatch(entry.name) for entry in entries)
    except OSError:
        return False


def system_trust_certificates() -> list[bytes]:
    """The system CAs as DER, read from the bundle file (for diagnoses, not for contexts)."""
    cafile, capath = system_trust_locations()
    if not cafile and not capath:
        return []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with contextlib.suppress(ssl.SSLError):
        context.load_verify_locations(cafile=cafile, capath=None if cafile else capath)
    return context.get_ca_certs(binary_form=True)


_HASHED_NAME = re.compile(r"[0-9a-f]{8}\.[0-9]+")


def _load_system_trust(context: ssl.SSLContext) -> None:
    cafile, capath = system_trust_locations()
    if not cafile and not capath:
        return
    # A hashed directory is read lazily: OpenSSL opens only the CA files a verification asks for.
    # The bundle file is parsed whole on every context (~150 certificates, ~20 ms), so it is only
    # the fallback, where no hashed directory exists.
    lazy = capath is not None and is_hashed_directory(capath)
    try:
        if lazy:
            context.load_verify_locations(capath=capath)
        else:
            context.load_verify_locations(cafile=cafile, capath=capath)
    except ssl.SSLError as exc:
        raise TrustCertError(f"OpenSSL cannot load the system CA certificates ({cafile or capath}: "
                             f"{getattr(exc, 'reason', None) or exc})",
                             hint="repair the system CA store (update-ca-certificates), or set "
                             "use_system_trust to false and name the partner's root") from None


def build_ssl_context(
    identity: ClientIdentity | None,
    trust: Sequence[x509.Certificate | bytes],
    settings: TlsSettings = TlsSettings(),
) -> ssl.SSLContext:
    """The context for a client identity (or none) and trust (certificates, or their DER).
    OpenSSL's refusals never escape as ``ssl.SSLError``: a key it will not use is a
    ``KeyUnusableError``, a trust cert it will not load a ``TrustCertError``."""
    if identity is not None and not identity.checked:
        from flowrun._tls._keycheck import algorithm_problem

        problem = algorithm_problem(identity.leaf, settings.versions)
        if problem is not None:
            raise KeyAlgorithmError(f"the key of '{identity.alias}' {problem.reason}", hint=problem.fix)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    apply_posture(context, settings.versions)
    if settings.verify:
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if settings.use_system_trust:
            _load_system_trust(context)
        if trust:
            pem = "".join(ssl.DER_cert_to_PEM_cert(as_der(c)) for c in trust)
            try:
                context.load_verify_locations(cadata=pem)
            except ssl.SSLError as exc:
                raise TrustCertError(f"OpenSSL refuses the trust store certs "
                                     f"({getattr(exc, 'reason', None) or exc})") from None
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if identity is not None:
        load_identity(context, identity)
    return context


def as_der(cert: x509.Certificate | bytes) -> bytes:
    if isinstance(cert, bytes):
        return cert
    from flowrun._tls._chain import der_of

    return der_of(cert)


def load_identity(context: ssl.SSLContext, identity: ClientIdentity) -> None:
    chain_pem = "".join(ssl.DER_cert_to_PEM_cert(der) for der in identity.ders).encode("ascii")
    if hasattr(os, "memfd_create"):
        with _memory_file(_key_pem(identity) + chain_pem) as path:
            _load_chain(context, path, None, identity)
        return
    from cryptography.hazmat.primitives import serialization

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


def _key_pem(identity: ClientIdentity) -> bytes:
    if identity.pkcs8 is not None:
        return _pkcs8_pem(identity.pkcs8)
    from cryptography.hazmat.primitives import serialization

    return identity.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pkcs8_pem(pkcs8: bytes) -> bytes:
    text = base64.b64encode(pkcs8)
    lines = [text[i:i + 64] for i in range(0, len(text), 64)]
    return b"-----BEGIN PRIVATE KEY-----\n" + b"\n".join(lines) + b"\n-----END PRIVATE KEY-----\n"


def key_pairs_with(pkcs8: bytes, leaf: x509.Certificate | bytes) -> bool:
    """Whether OpenSSL loads the unencrypted PKCS#8 key ``pkcs8`` with ``leaf`` (it checks that
    the key is the certificate's) in a context of its own. False where no in-memory file exists:
    the caller then decodes the key itself."""
    if not hasattr(os, "memfd_create"):
        return False
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        with _memory_file(_pkcs8_pem(pkcs8) + ssl.DER_cert_to_PEM_cert(as_der(leaf)).encode("ascii")) as path:
            context.load_cert_chain(path)
    except (ssl.SSLError, OSError, ValueError):
        return False
    return True


def _load_chain(context: ssl.SSLContext, path: str, password: str | None, identity: ClientIdentity) -> None:
    try:
        context.load_cert_chain(path, path, password=password)
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise KeyMismatchError(
                f"the private key under alias '{identity.alias}' does not belong to its certificate"
            ) from None
        from flowrun._tls._keycheck import refusal

        raise refusal(exc, alias=identity.alias, leaf=identity.leaf) from None


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    fd = os.memfd_create("flowrun-identity", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)
