"""Certificates from keystores: decoding them safely, and ordering them into a chain (leaf first)
by issuer and subject, as Java does on load."""

from __future__ import annotations

import contextlib
import ssl
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning

from flowrun._tls._model import KeystoreContents, KeystoreEntry

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


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number in hex; a negative or zero serial (old CAs wrote them) without a warning."""
    with lenient_decoding():
        return f"{cert.serial_number:x}"


def load_der_certificate(data: bytes) -> x509.Certificate:
    """A checked certificate; ValueError when damaged, UnsupportedAlgorithm for an unusable key type."""
    cert = _decode(x509.load_der_x509_certificate, data)
    _remember_der(cert, data)
    return cert


def load_pem_certificate(data: bytes) -> x509.Certificate:
    cert = _decode(x509.load_pem_x509_certificate, data)
    # Another label or layout: der_of writes the DER when asked.
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        _remember_der(cert, ssl.PEM_cert_to_DER_cert(data.decode("ascii")))
    return cert


# The DER each certificate was read from. SSL contexts take certificates as PEM, and writing them
# with ``public_bytes`` imports cryptography's serialization package (~4 ms of a cold start) only
# to give back bytes just read. Bounded; a certificate not (or no longer) here is written out.
_READ_FROM: dict[x509.Certificate, bytes] = {}
_READ_FROM_MAX = 1024
_READ_FROM_LOCK = threading.Lock()


def _remember_der(cert: x509.Certificate, der: bytes) -> None:
    with _READ_FROM_LOCK:
        if len(_READ_FROM) >= _READ_FROM_MAX:
            _READ_FROM.clear()
        _READ_FROM[cert] = der


def der_of(cert: x509.Certificate) -> bytes:
    """The certificate's DER encoding."""
    der = _READ_FROM.get(cert)
    if der is None:
        from cryptography.hazmat.primitives import serialization

        der = cert.public_bytes(serialization.Encoding.DER)
    return der


_DSA_OID = "1.2.840.10040.4.1"


def is_dsa_certificate(der: bytes) -> bool:
    """Whether ``der`` is a certificate with a DSA key. ``cryptography`` cannot decode the DSA
    certificates keytool writes (their signature algorithm carries NULL parameters), so the key's
    algorithm is read from the structure to name the real problem."""
    from flowrun._tls import _der

    try:
        tbs = _der.parse(der, allow_trailing=True).expect(_der.SEQUENCE).children()[0].children()
        fields = tbs[1:] if tbs[0].tag == _der.CONTEXT_0 else tbs
        spki = fields[5].expect(_der.SEQUENCE).children()
        return _der.read_oid(spki[0].expect(_der.SEQUENCE).children()[0]) == _DSA_OID
    except (_der.DerError, IndexError):
        return False


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


# --- the keytool placeholder mistake -----------------------------------------------------------


def signed_certificate_entry(contents: KeystoreContents, leaf: x509.Certificate) -> KeystoreEntry | None:
    """The trustedCertEntry holding another certificate for the key of a self-signed ``leaf``: the
    CA's reply imported under a new alias instead of the key's, leaving the placeholder in use."""
    if not is_self_issued(leaf) or not any(e.kind == "trusted_cert" for e in contents.entries):
        return None
    spki = _spki(leaf)
    if spki is None:
        return None
    for entry in contents.entries:
        if entry.kind == "trusted_cert" and entry.certificates:
            cert = entry.certificates[0]
            if cert != leaf and _spki(cert) == spki:
                return entry
    return None


def placeholder_message(alias: str, holder: KeystoreEntry, contents: KeystoreContents) -> str:
    store = contents.source if contents.source != "<memory>" else "STORE"
    signed = holder.certificates[0].subject.rfc4514_string()
    return (f"the certificate of '{alias}' is the self-signed placeholder made by keytool -genkeypair, and the "
            f"CA-signed certificate for the same key is in trustedCertEntry '{holder.alias}' "
            f"('{signed}'): it was imported under a new alias instead of the key's. "
            f"Fix: keytool -exportcert -alias {holder.alias} -file signed.crt -keystore {store}; keytool -delete "
            f"-alias {holder.alias} -keystore {store}; keytool -importcert -trustcacerts -alias {alias} -file "
            f"signed.crt -keystore {store} (the root and intermediate must be in the store for keytool to "
            "accept the reply)")


def key_mismatch_words(contents: KeystoreContents, entry: KeystoreEntry, subject: str) -> tuple[str, str]:
    """What is wrong with a private key that does not belong to its certificate, and the fix, in
    the terms of the store: files for PEM, an alias and keytool for the others."""
    if contents.type == "pem":
        key_file = entry.key_source or contents.source
        return (f"the private key in {key_file} does not belong to the certificate {subject} in "
                f"{contents.source}",
                "give the key file this certificate was issued for, or the certificate issued for this key; "
                "a key and certificate pair print the same public key with `openssl pkey -pubout -in KEY` "
                "and `openssl x509 -noout -pubkey -in CERT`")
    return (f"the private key of entry '{entry.alias}' does not belong to its certificate {subject}",
            "import the certificate signed for this key's CSR under the key's alias")


def public_key_der(key: object) -> bytes:
    """A public key as DER SubjectPublicKeyInfo: equal for a private key's public half and its certificate's key."""
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return public_key_der(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return None
