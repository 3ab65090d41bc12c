"""Certificates from keystores: decoding them safely, and ordering them into a chain (leaf first)
by issuer and subject, as Java does on load."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

_T = TypeVar("_T")

_MAX_CHAIN = 10


def check_certificate(cert: x509.Certificate) -> x509.Certificate:
    """Decode now the fields that chains and key checks use: ``cryptography`` decodes them lazily,
    so a damaged certificate would otherwise fail later, far from the file it came from.
    Raises ValueError (damaged) or UnsupportedAlgorithm (a key type that cannot be used)."""
    try:
        _ = cert.subject, cert.issuer, cert.not_valid_after_utc, cert.not_valid_before_utc
        cert.public_key()
    except x509.InvalidVersion as exc:
        raise ValueError(str(exc)) from None
    return cert


@contextmanager
def lenient_decoding() -> Iterator[None]:
    """Old certificates with, say, a negative serial number are still used by partners: decoding
    them must not warn (or fail where warnings are errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        # e.g. "Attribute's length must be >= 2 and <= 2" for a malformed country name
        warnings.simplefilter("ignore", UserWarning)
        yield


def _decode(loader: Callable[[bytes], x509.Certificate], data: bytes) -> x509.Certificate:
    with lenient_decoding():
        try:
            return check_certificate(loader(data))
        except x509.InvalidVersion as exc:
            raise ValueError(str(exc)) from None


def load_der_certificate(data: bytes) -> x509.Certificate:
    """A checked certificate; ValueError when damaged, UnsupportedAlgorithm for an unusable key type."""
    return _decode(x509.load_der_x509_certificate, data)


def load_pem_certificate(data: bytes) -> x509.Certificate:
    return _decode(x509.load_pem_x509_certificate, data)


def quietly(loader: Callable[[], _T]) -> _T:
    """Run a loader that decodes certificates (``load_pkcs12``, PKCS#7) without decoding warnings."""
    with lenient_decoding():
        try:
            return loader()
        except x509.InvalidVersion as exc:
            raise ValueError(str(exc)) from None


def is_self_issued(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _subject_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        return None


def _authority_key_id(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except (x509.ExtensionNotFound, ValueError):
        return None


def find_issuer(cert: x509.Certificate, pool: Iterable[x509.Certificate]) -> x509.Certificate | None:
    """The certificate in ``pool`` that issued ``cert``: same subject as its issuer, preferring the one
    whose subject key identifier matches its authority key identifier (renewed CAs share names)."""
    candidates = [c for c in pool if c.subject == cert.issuer and c != cert]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    wanted = _authority_key_id(cert)
    if wanted is not None:
        for candidate in candidates:
            if _subject_key_id(candidate) == wanted:
                return candidate
    return candidates[0]


def complete_chain(
    chain: Sequence[x509.Certificate], pool: Iterable[x509.Certificate],
) -> tuple[x509.Certificate, ...]:
    """Extend ``chain`` (leaf first) with issuers from ``pool`` until a self-issued certificate,
    a missing issuer, or a loop."""
    result = list(chain)
    if not result:
        return ()
    candidates = list(pool)
    with lenient_decoding():
        while len(result) < _MAX_CHAIN and not is_self_issued(result[-1]):
            issuer = find_issuer(result[-1], candidates)
            if issuer is None or issuer in result:
                break
            result.append(issuer)
    return tuple(result)


def unique(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    """Drop repeated certificates, keeping the first of each."""
    seen: list[x509.Certificate] = []
    for cert in certs:
        if cert not in seen:
            seen.append(cert)
    return seen
