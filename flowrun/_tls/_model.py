"""What a keystore holds once read: entries, client identities and diagnostic findings.

Readers (JKS, JCEKS, PKCS12, PEM) all produce a ``KeystoreContents``; everything after reading
(diagnostics, SSL contexts, ``keystore inspect``) works on it and never on file formats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from flowrun._models._record import RecordRepr, ValueRecord

KeystoreType = Literal["jks", "jceks", "pkcs12", "pem"]
EntryKind = Literal["private_key", "trusted_cert", "secret_key"]
Severity = Literal["error", "warning", "info"]


@attrs.frozen(eq=False, repr=False)
class KeystoreEntry(RecordRepr):
    """One entry. ``certificates`` is the chain leaf-first for a private key entry, one certificate
    for a trusted cert entry, empty for a secret key entry.

    The private key is decrypted only on demand (``decrypt_key``): JCEKS keys cost ~0.2 s each and
    listing a store must not need key passwords.
    """

    alias: str
    kind: EntryKind
    certificates: tuple[x509.Certificate, ...] = ()
    # Called with the key password (None: use the store password); raises KeyPasswordError.
    decrypt_key: Callable[[str | None], PrivateKeyTypes] | None = attrs.field(default=None, repr=False)
    secret_key_algorithm: str | None = None
    # JKS and JCEKS: the key's unencrypted PKCS#8 DER, not decoded (the same errors as decrypt_key
    # but for a key that cannot be decoded).
    recover_key: Callable[[str | None], bytes] | None = attrs.field(default=None, repr=False)


@attrs.frozen(eq=False, repr=False)
class KeystoreContents(RecordRepr):
    type: KeystoreType
    entries: tuple[KeystoreEntry, ...]
    source: str = "<memory>"

    def private_key_entries(self) -> tuple[KeystoreEntry, ...]:
        return tuple(e for e in self.entries if e.kind == "private_key")

    def trusted_certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(c for e in self.entries if e.kind == "trusted_cert" for c in e.certificates)


@attrs.frozen(eq=False, repr=False)
class ClientIdentity(RecordRepr):
    """The private key and its chain (leaf first) that we present to a partner.

    The key is held decoded (``key``) or, from JKS and JCEKS stores once OpenSSL has paired it with
    the leaf, as its unencrypted PKCS#8 DER (``pkcs8``): an SSL context takes that as it is, and
    decoding it imports cryptography's serialization package (~4 ms of a cold start). The decoded
    object (``private_key``) is made when something asks for it (signing, diagnostics).
    """

    alias: str
    chain: tuple[x509.Certificate, ...]
    key: PrivateKeyTypes | None = attrs.field(default=None, repr=False)
    pkcs8: bytes | None = attrs.field(default=None, repr=False)
    _decoded: list[PrivateKeyTypes] = attrs.field(factory=list, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.key is None and self.pkcs8 is None:
            raise ValueError("a client identity needs its key")

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def private_key(self) -> PrivateKeyTypes:
        if self.key is not None:
            return self.key
        if not self._decoded:
            from cryptography.hazmat.primitives import serialization

            assert self.pkcs8 is not None
            self._decoded.append(serialization.load_der_private_key(
                self.pkcs8, password=None, unsafe_skip_rsa_key_validation=True))
        return self._decoded[0]


@attrs.frozen(eq=False, repr=False)
class Finding(ValueRecord):
    """One result of offline diagnostics. ``code`` is stable (documented, used by scripts)."""

    code: str
    severity: Severity
    message: str
    alias: str | None = None
