"""What a keystore holds once read: entries, client identities and diagnostic findings.

Readers (JKS, JCEKS, PKCS12, PEM) all produce a ``KeystoreContents``; everything after reading
(diagnostics, SSL contexts, ``keystore inspect``) works on it and never on file formats.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import attrs

from flowrun._models._record import RecordRepr, ValueRecord

if TYPE_CHECKING:  # a run from a JKS store never imports cryptography (~30 ms of a cold start)
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

KeystoreType = Literal["jks", "jceks", "pkcs12", "pem"]
# The entry name of the private key of a PEM identity (PEM files have no aliases).
PEM_KEY_ALIAS = "key"
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
    # PEM: the file the private key was read from (a key file of its own, or the store's file).
    key_source: str | None = None


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

    The chain is given decoded (``chain=``) or as DER (``chain_der=``, the lean JKS path of
    ``_lean``): an SSL context takes DER, and decoding imports ``cryptography.x509`` (~30 ms of a
    cold start), so ``chain`` decodes only when something reads certificate fields.
    ``checked``: the key's algorithm is known to be one OpenSSL signs handshakes with.
    """

    alias: str
    given_chain: tuple[x509.Certificate, ...] = attrs.field(default=(), alias="chain")
    key: PrivateKeyTypes | None = attrs.field(default=None, repr=False)
    pkcs8: bytes | None = attrs.field(default=None, repr=False)
    chain_der: tuple[bytes, ...] = attrs.field(default=(), repr=False)
    checked: bool = attrs.field(default=False, repr=False)
    _decoded: list[PrivateKeyTypes] = attrs.field(factory=list, init=False, repr=False)
    _decoded_chain: list[tuple[x509.Certificate, ...]] = attrs.field(factory=list, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.key is None and self.pkcs8 is None:
            raise ValueError("a client identity needs its key")
        if not self.given_chain and not self.chain_der:
            raise ValueError("a client identity needs its certificate")

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        if self.given_chain:
            return self.given_chain
        if not self._decoded_chain:
            from flowrun._tls._chain import load_der_certificate

            self._decoded_chain.append(tuple(load_der_certificate(der) for der in self.chain_der))
        return self._decoded_chain[0]

    @property
    def ders(self) -> tuple[bytes, ...]:
        """The chain as DER, leaf first."""
        if self.chain_der:
            return self.chain_der
        from flowrun._tls._chain import der_of

        return tuple(der_of(cert) for cert in self.given_chain)

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
