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
    """The private key and its chain (leaf first) that we present to a partner."""

    alias: str
    private_key: PrivateKeyTypes = attrs.field(repr=False)
    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


@attrs.frozen(eq=False, repr=False)
class Finding(ValueRecord):
    """One result of offline diagnostics. ``code`` is stable (documented, used by scripts)."""

    code: str
    severity: Severity
    message: str
    alias: str | None = None
