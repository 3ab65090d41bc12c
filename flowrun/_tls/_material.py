"""Key material named by alias records, read through the content caches.

``identity_for(keystore)`` and ``trust_for(records)`` return a cache key and a loader; the SSL
context cache combines them, so nothing is decoded twice and a renewed file is noticed.
"""

from __future__ import annotations

import datetime
import functools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flowrun._errors import FlowrunError, KeystoreNotFoundError, TrustCertError
from flowrun._models._aliases import Keystore, TrustStoreCert
from flowrun._models._origin import Origin
from flowrun._tls._cache import TLS_CACHE, IdentityKey, TlsCache, secret_fingerprint
from flowrun._tls._model import ClientIdentity

if TYPE_CHECKING:  # the lean path (``_lean``) builds a context without cryptography
    from cryptography import x509

_T = TypeVar("_T")


def place(error: FlowrunError, origin: Origin, record: str) -> FlowrunError:
    """Point an error about key material at the record that named it.

    Readers place their errors at the key material file; the user fixes the record (path,
    password, type) in the alias file, so the location becomes the record's and the message
    keeps the key material file. Errors already placed in a definition file (a secret that
    cannot be read) are left as they are.
    """
    if error.pointer is not None:
        return error
    detail = error.message
    if error.file is not None and error.file not in detail:
        detail = f"{error.file}: {detail}"
    error.message = f"{record}: {detail}"
    error.args = (error.message,)
    location = origin.location()
    file = location.get("file")
    error.file = str(file) if file is not None else None
    error.pointer = location.get("pointer")
    error.line = location.get("line")
    return error


_warned: set[tuple[Path, int]] = set()
_warned_lock = threading.Lock()


def warn_unprotected(path: Path, what: str = "keystore", *, plaintext: bool = True) -> list[str]:
    """Log (logger ``flowrun``, once per file and mode in a process) that a key file is open to
    group or others; the run goes on. A plaintext key is a warning; a password-encrypted store is
    logged at INFO, which the CLI shows only in ``validate``. Returns the messages logged."""
    from flowrun._tls._files import permission_warnings

    logged: list[str] = []
    for finding in permission_warnings(path, what=what, plaintext=plaintext):
        try:
            key = (path.resolve(), path.stat().st_mode)
        except (OSError, RuntimeError, ValueError):
            continue
        with _warned_lock:
            if key in _warned:
                continue
            _warned.add(key)
        level = logging.WARNING if finding.severity == "warning" else logging.INFO
        logging.getLogger("flowrun").log(level, finding.message, extra={"code": finding.code})
        logged.append(finding.message)
    return logged


EXPIRY_WARNING_DAYS = 14


def warn_expiry(keystore_name: str, identity: ClientIdentity, *, now: datetime.datetime | None = None) -> str | None:
    """Log (logger ``flowrun``) a warning when the client certificate has expired or expires within
    ``EXPIRY_WARNING_DAYS``: a renewal that slips by a day breaks the integration, and the partner's
    refusal alone does not say why. The run goes on; the partner decides."""
    leaf = identity.leaf
    now = now or datetime.datetime.now(datetime.UTC)
    end = leaf.not_valid_after_utc
    subject = leaf.subject.rfc4514_string()
    if end <= now:
        message = (f"keystore '{keystore_name}': the client certificate {subject} expired on {end:%Y-%m-%d} "
                   f"({(now - end).days} days ago): partners will refuse it; import the renewed certificate "
                   f"under alias '{identity.alias}'")
        code = "keystore.expired"
    elif end - now <= datetime.timedelta(days=EXPIRY_WARNING_DAYS):
        message = (f"keystore '{keystore_name}': the client certificate {subject} expires on {end:%Y-%m-%d} "
                   f"(in {(end - now).days} days): renew it before then")
        code = "keystore.expiring"
    else:
        return None
    logging.getLogger("flowrun").warning(message, extra={"code": code})
    return message


def identity_for(keystore: Keystore, cache: TlsCache = TLS_CACHE,
                 trust_records: Mapping[str, TrustStoreCert] | None = None,
                 ) -> tuple[IdentityKey, Callable[[], ClientIdentity]]:
    """The cache key and loader of a keystore record's identity; ``trust_records`` are the
    trust_store_cert records its ``chain_certs`` may name."""
    from flowrun._tls._detect import detect_type_quietly, holds_plaintext_key
    from flowrun._tls._files import check_key_material_file

    chain_digests, chain_certs = _chain_certs_for(keystore, trust_records or {}, cache)
    try:
        check_key_material_file(keystore.file)
        content = cache.files.read(keystore.file, error=KeystoreNotFoundError)
        if keystore.key_file is not None:
            check_key_material_file(keystore.key_file, what="private key")
        key_content = (cache.files.read(keystore.key_file, error=KeystoreNotFoundError)
                       if keystore.key_file is not None else None)
        warn_unprotected(keystore.key_file or keystore.file, "private key" if keystore.key_file else "keystore",
                         plaintext=holds_plaintext_key((key_content or content).data))
        password = keystore.password.reveal() if keystore.password is not None else None
        key_password = keystore.key_password.reveal() if keystore.key_password is not None else None
    except FlowrunError as error:
        raise place(error, keystore.origin, f"keystore '{keystore.name}'") from None
    key = IdentityKey(
        content.digest, key_content.digest if key_content else None, keystore.type,
        keystore.key_alias.lower() if keystore.key_alias else None,
        secret_fingerprint(password), secret_fingerprint(key_password), chain_digests,
    )

    def decode() -> ClientIdentity:
        if key_content is None and not keystore.chain_certs and keystore.type in (None, "jks"):
            from flowrun._tls._lean import lean_jks_identity

            lean = lean_jks_identity(content.data, password=password, key_alias=keystore.key_alias,
                                     key_password=key_password)
            if lean is not None:
                return lean  # its certificate is not about to expire: there is nothing to warn about
        if not keystore.chain_certs and keystore.type in (None, "pem") and (
                key_content is not None or detect_type_quietly(content.data) == "pem"):
            from flowrun._tls._lean import lean_pem_identity

            lean = lean_pem_identity(content.data, key_content.data if key_content is not None else None)
            if lean is not None:
                return lean
        from flowrun._tls._read import read_keystore, read_pem, select_identity

        if key_content is not None:
            contents = read_pem(content.data, key_data=key_content.data, password=key_password or password,
                                source=str(keystore.file), key_source=str(keystore.key_file))
        else:
            contents = read_keystore(content.data, password=password, type=keystore.type,
                                     source=str(keystore.file))
        identity = select_identity(contents, key_alias=keystore.key_alias, key_password=key_password,
                                   store_password=password, chain_certs=chain_certs())
        warn_expiry(keystore.name, identity)  # once per keystore content: decode is cached
        return identity

    def load() -> ClientIdentity:
        try:
            identity: ClientIdentity = cache.identities.get(key, decode)
            return identity
        except FlowrunError as error:
            raise place(error, keystore.origin, f"keystore '{keystore.name}'") from None

    return key, load


def _chain_certs_for(keystore: Keystore, trust_records: Mapping[str, TrustStoreCert], cache: TlsCache,
                     ) -> tuple[tuple[str, ...], Callable[[], tuple[x509.Certificate, ...]]]:
    """The digests and loader of a keystore record's ``chain_certs`` (files and trust_store_certs)."""
    if not keystore.chain_certs:
        return (), tuple
    from flowrun._tls._files import check_key_material_file

    named = [trust_records[item] for item in keystore.chain_certs if isinstance(item, str)]
    digests, load_named = trust_for(named, cache)
    files: list[tuple[Path, bytes, str]] = []
    for item in keystore.chain_certs:
        if isinstance(item, Path):
            try:
                check_key_material_file(item, what="chain cert", error=TrustCertError)
                content = cache.files.read(item, error=TrustCertError)
            except FlowrunError as error:
                raise place(error, keystore.origin, f"keystore '{keystore.name}' (chain_certs)") from None
            files.append((item, content.data, content.digest))

    def load() -> tuple[x509.Certificate, ...]:
        certificates: list[x509.Certificate] = list(load_named())
        for path, data, digest in files:
            def decode(data: bytes = data, path: Path = path) -> tuple[x509.Certificate, ...]:
                from flowrun._tls._read import read_trust_certs

                return read_trust_certs(data, format=None, source=str(path))

            try:
                certificates.extend(cache.identities.get(("trust", digest, None), decode))
            except FlowrunError as error:
                raise place(error, keystore.origin, f"keystore '{keystore.name}' (chain_certs)") from None
        return tuple(certificates)

    return (*digests, *(digest for _, _, digest in files)), load


def _trust_sources(records: Sequence[TrustStoreCert], cache: TlsCache) -> list[tuple[TrustStoreCert, bytes, str]]:
    from flowrun._tls._files import check_key_material_file

    sources: list[tuple[TrustStoreCert, bytes, str]] = []
    for record in records:
        try:
            if record.file is not None:
                check_key_material_file(record.file, what="trust store cert", error=TrustCertError)
                content = cache.files.read(record.file, error=TrustCertError)
                sources.append((record, content.data, content.digest))
            else:
                import hashlib

                data = (record.pem or "").encode("utf-8")
                sources.append((record, data, hashlib.sha256(data).hexdigest()))
        except FlowrunError as error:
            raise place(error, record.origin, f"trust_store_cert '{record.name}'") from None
    return sources


def _decoded_trust(record: TrustStoreCert, data: bytes) -> tuple[x509.Certificate, ...]:
    from flowrun._tls._read import read_trust_certs

    return read_trust_certs(data, format=record.format, source=str(record.file or record.name))


def trust_for(records: Sequence[TrustStoreCert], cache: TlsCache = TLS_CACHE,
              ) -> tuple[tuple[str, ...], Callable[[], tuple[x509.Certificate, ...]]]:
    """The digests and loader of trust store certs, decoded (for diagnoses)."""
    return _trust_loader(records, cache, "trust", _decoded_trust)


def trust_der_for(records: Sequence[TrustStoreCert], cache: TlsCache = TLS_CACHE,
                  ) -> tuple[tuple[str, ...], Callable[[], tuple[bytes, ...]]]:
    """The digests and loader of trust store certs as DER, for SSL contexts: plain PEM or DER
    certificates are not decoded (``_lean``); anything else is, with the full path's errors."""
    return _trust_loader(records, cache, "trust-der", _trust_der)


def _trust_der(record: TrustStoreCert, data: bytes) -> tuple[bytes, ...]:
    from flowrun._tls._lean import lean_trust_certificates

    lean = lean_trust_certificates(data, record.format)
    if lean is not None:
        return lean
    from flowrun._tls._chain import der_of

    return tuple(der_of(cert) for cert in _decoded_trust(record, data))


def _trust_loader(records: Sequence[TrustStoreCert], cache: TlsCache, kind: str,
                  decode: Callable[[TrustStoreCert, bytes], tuple[_T, ...]],
                  ) -> tuple[tuple[str, ...], Callable[[], tuple[_T, ...]]]:
    """The digests of the records' contents, and a loader of their certificates as ``decode``
    gives them, each content decoded once per process (``kind`` keeps decodings apart)."""
    sources = _trust_sources(records, cache)

    def load() -> tuple[_T, ...]:
        certificates: list[_T] = []
        for record, data, digest in sources:
            try:
                certificates.extend(cache.identities.get((kind, digest, record.format),
                                                         functools.partial(decode, record, data)))
            except FlowrunError as error:
                raise place(error, record.origin, f"trust_store_cert '{record.name}'") from None
        return tuple(certificates)

    return tuple(digest for _, _, digest in sources), load
