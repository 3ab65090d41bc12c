"""PEM identities: a certificate chain and a private key, in one file or with the key apart.

Keys: unencrypted and encrypted PKCS#8 (``PRIVATE KEY``, ``ENCRYPTED PRIVATE KEY``) and
traditional RSA/EC keys, including OpenSSL's encrypted form (``Proc-Type: 4,ENCRYPTED``).
The key is decrypted on demand, like keystore keys. The chain is put leaf first whatever the
order in the file; certificates that are not part of it become trusted-cert entries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from flowrun._errors import (
    KeyEncryptionUnsupportedError,
    KeyMaterialError,
    KeyPasswordError,
    KeystoreCorruptError,
    KeystoreFormatError,
)
from flowrun._models._record import ValueRecord
from flowrun._tls import _der
from flowrun._tls._chain import complete_chain, find_issuer, load_pem_certificate, unique
from flowrun._tls._model import PEM_KEY_ALIAS, KeystoreContents, KeystoreEntry

# Trailing spaces or tabs after the dashes are common in files pasted from e-mail or a web page;
# OpenSSL accepts them.
_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----[ \t]*\r?\n(.*?)-----END \1-----[ \t]*", re.DOTALL)
_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
# OpenSSL's "TRUSTED CERTIFICATE" is the certificate's DER followed by its trust settings.
_TRUSTED = b"TRUSTED CERTIFICATE"
_CERT_LABELS = {b"CERTIFICATE", b"X509 CERTIFICATE", _TRUSTED}
_KEY_LABELS = {b"PRIVATE KEY", b"ENCRYPTED PRIVATE KEY", b"RSA PRIVATE KEY", b"EC PRIVATE KEY",
               b"DSA PRIVATE KEY"}
_IGNORED_LABELS = {b"EC PARAMETERS", b"DH PARAMETERS"}


def _where(source: str) -> str | None:
    return None if source == "<memory>" else source


@attrs.frozen(eq=False, repr=False)
class PemBlock(ValueRecord):
    label: str
    text: bytes  # the whole block, BEGIN to END line


def pem_blocks(
    data: bytes, *, source: str = "<memory>", error: type[KeyMaterialError] = KeystoreCorruptError,
) -> list[PemBlock]:
    """All complete PEM blocks, in a normal form (no trailing blanks on any line); a BEGIN line
    without its END line is an error. Text around the blocks (``openssl x509 -text``, "Bag
    Attributes") is skipped, whatever its bytes."""
    blocks = [PemBlock(m.group(1).decode("ascii"), _normal_block(m.group(1), m.group(2)))
              for m in _BLOCK.finditer(data)]
    if len(_BEGIN.findall(data)) != len(blocks):
        raise error(f"a PEM block in {source} has no matching END line: the file is truncated or damaged",
                    file=_where(source))
    return blocks


def _normal_block(label: bytes, body: bytes) -> bytes:
    lines = [line.rstrip() for line in body.splitlines()]
    # Legacy encrypted keys carry headers (Proc-Type, DEK-Info) and a blank line before the base64.
    headers = [line for line in lines if b":" in line]
    data = [line for line in lines if line and b":" not in line]
    inner = (b"\n".join(headers) + b"\n\n" if headers else b"") + b"\n".join(data) + b"\n"
    return b"-----BEGIN " + label + b"-----\n" + inner + b"-----END " + label + b"-----\n"


def _trusted_certificate_pem(block: PemBlock) -> bytes:
    """The plain CERTIFICATE block inside OpenSSL's TRUSTED CERTIFICATE (the trust settings go)."""
    body = b"".join(line for line in block.text.splitlines()[1:-1])
    der = base64.b64decode(body)
    first = _der.parse(der, allow_trailing=True)
    cert_der = _der.encode(first.tag, first.value)
    encoded = base64.encodebytes(cert_der)
    return b"-----BEGIN CERTIFICATE-----\n" + encoded + b"-----END CERTIFICATE-----\n"


def is_certificate_block(block: PemBlock) -> bool:
    return block.label.encode() in _CERT_LABELS


def load_pem_certificates(
    blocks: list[PemBlock], source: str, error: type[KeyMaterialError] = KeystoreCorruptError,
) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for number, block in enumerate(b for b in blocks if is_certificate_block(b)):
        try:
            if block.label.encode() == _TRUSTED:
                text = _trusted_certificate_pem(block)
            else:
                text = block.text.replace(b"X509 CERTIFICATE", b"CERTIFICATE")
            certs.append(load_pem_certificate(text))
        except (ValueError, UnsupportedAlgorithm, binascii.Error):
            raise error(f"certificate {number + 1} in {source} cannot be decoded", file=_where(source)) from None
    return certs


_UNKNOWN_ENCRYPTION = re.compile(r"Unknown key encryption algorithm: ([0-9.]+)")
_ENCRYPTION_NAMES = {
    "1.2.840.113549.1.5.1": "PBES1 MD2 with DES-CBC",
    "1.2.840.113549.1.5.4": "PBES1 MD2 with RC2-CBC",
    "1.2.840.113549.1.5.6": "PBES1 MD5 with RC2-CBC",
    "1.2.840.113549.1.5.10": "PBES1 SHA-1 with DES-CBC",
    "1.2.840.113549.1.5.11": "PBES1 SHA-1 with RC2-CBC",
    "1.3.14.3.2.7": "PBES2 with single DES-CBC",
    "1.2.392.200011.61.1.1.1.2": "PBES2 with Camellia-128-CBC",
    "1.2.392.200011.61.1.1.1.3": "PBES2 with Camellia-192-CBC",
    "1.2.392.200011.61.1.1.1.4": "PBES2 with Camellia-256-CBC",
    "1.2.410.200046.1.1.2": "PBES2 with ARIA-128-CBC",
    "1.2.410.200046.1.1.7": "PBES2 with ARIA-192-CBC",
    "1.2.410.200046.1.1.12": "PBES2 with ARIA-256-CBC",
    "1.2.156.10197.1.104.2": "PBES2 with SM4-CBC",
}


def unsupported_encryption(exc: Exception, what: str, where: str | None) -> KeyEncryptionUnsupportedError | None:
    """The error for a key encrypted with an algorithm that cannot be read (not a wrong password)."""
    found = _UNKNOWN_ENCRYPTION.search(str(exc))
    if found is None and not isinstance(exc, UnsupportedAlgorithm):
        return None
    oid = found.group(1) if found else "unknown"
    name = _ENCRYPTION_NAMES.get(oid, f"algorithm {oid}")
    if found and oid in _ENCRYPTION_NAMES:
        name = f"{name} ({oid})"
    return KeyEncryptionUnsupportedError(f"{what} is encrypted with {name}, which flowrun cannot decrypt "
                                         "(this is not a wrong password)", file=where)


def _key_is_encrypted(block: PemBlock) -> bool:
    if block.label == "ENCRYPTED PRIVATE KEY":
        return True
    return b"Proc-Type: 4,ENCRYPTED" in block.text


def _key_structure_is_sound(block: PemBlock) -> bool:
    """Whether an encrypted key's envelope parses, so that a decryption failure means a wrong password."""
    if block.label != "ENCRYPTED PRIVATE KEY":
        return b"DEK-Info:" in block.text
    body = b"".join(line for line in block.text.splitlines()[1:-1] if b":" not in line)
    try:
        info = _der.parse(base64.b64decode(body, validate=False)).expect(_der.SEQUENCE).children()
        return len(info) == 2 and info[1].tag == _der.OCTET_STRING
    except (_der.DerError, binascii.Error):
        return False


# A PEM key's passphrase is openssl's, not a keytool -keypass: where it goes, and how to check it.
PEM_PASSPHRASE_HINT = ("the key's passphrase is the one openssl asked for when it wrote the key: give it as the "
                       "keystore record's password (--password-env); `openssl pkey -in KEY -noout` asks for it "
                       "and says whether it is right")


def _make_key_decryptor(
    block: PemBlock, store_password: str | None, source: str,
) -> Callable[[str | None], PrivateKeyTypes]:
    cache: dict[bytes, PrivateKeyTypes] = {}
    where = _where(source)
    encrypted = _key_is_encrypted(block)

    def decrypt_key(key_password: str | None) -> PrivateKeyTypes:
        password = store_password if key_password is None else key_password
        if encrypted and password is None:
            raise KeyPasswordError(
                f"the private key in {source} is encrypted: give its password", file=where,
                hint=PEM_PASSPHRASE_HINT,
            )
        # A password given for an unencrypted key is not an error: the key is simply not protected.
        secret = password.encode("utf-8", "surrogatepass") if encrypted and password is not None else None
        cache_key = hashlib.sha256(secret or b"").digest()
        if cache_key not in cache:
            from cryptography.hazmat.primitives import serialization

            try:
                # Checked against the certificate by select_identity and OpenSSL (see _jks).
                cache[cache_key] = serialization.load_pem_private_key(block.text, secret,
                                                                      unsafe_skip_rsa_key_validation=True)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                unsupported = unsupported_encryption(exc, f"the private key in {source}", where)
                if unsupported is not None:
                    raise unsupported from None
                if encrypted and _key_is_encrypted(block) and _key_structure_is_sound(block):
                    raise KeyPasswordError(f"wrong password for the private key in {source}", file=where,
                                           hint=PEM_PASSPHRASE_HINT) from None
                raise KeystoreCorruptError(f"the private key in {source} cannot be decoded", file=where) from None
        return cache[cache_key]

    return decrypt_key


def _order_chain(certs: list[x509.Certificate]) -> tuple[tuple[x509.Certificate, ...], list[x509.Certificate]]:
    """(chain leaf first, the certificates left over). The leaf is the certificate that issued
    none of the others; with several, the first in file order."""
    if not certs:
        return (), []
    issuers = {id(find_issuer(c, certs)) for c in certs}
    leaves = [c for c in certs if id(c) not in issuers]
    leaf = leaves[0] if leaves else certs[0]
    chain = complete_chain((leaf,), certs)
    return chain, [c for c in certs if c not in chain]


def read_pem(
    data: bytes, key_data: bytes | None = None, *, password: str | None,
    source: str = "<memory>", key_source: str | None = None,
) -> KeystoreContents:
    """Read a PEM identity. ``key_data`` is a separate key file (it may hold certificates too).
    ``password`` decrypts an encrypted key unless ``decrypt_key`` gets its own."""
    where = _where(source)
    blocks = pem_blocks(data, source=source)
    key_blocks_from = key_source or source
    key_blocks = [(b, source) for b in blocks if b.label.encode() in _KEY_LABELS]
    if key_data is not None:
        extra = pem_blocks(key_data, source=key_blocks_from)
        key_blocks += [(b, key_blocks_from) for b in extra if b.label.encode() in _KEY_LABELS]
        blocks = blocks + [b for b in extra if b.label.encode() in _CERT_LABELS]
    certs = unique(load_pem_certificates(blocks, source))
    if not certs and not key_blocks:
        found = sorted({b.label for b in blocks})
        what = f"only {', '.join(found)}" if found else "no PEM blocks"
        raise KeystoreFormatError(f"{source} holds no certificate or private key ({what})", file=where)
    if len(key_blocks) > 1:
        raise KeystoreFormatError(
            f"{source} holds {len(key_blocks)} private keys; a PEM identity has one", file=where,
        )
    unknown = sorted({b.label for b in blocks} - {lbl.decode() for lbl in _CERT_LABELS | _KEY_LABELS | _IGNORED_LABELS})
    if unknown and not certs:
        raise KeystoreFormatError(f"{source} holds {', '.join(unknown)} blocks, which are not read", file=where)

    entries: list[KeystoreEntry] = []
    if key_blocks:
        key_block, key_from = key_blocks[0]
        chain, rest = _order_chain(certs)
        entries.append(KeystoreEntry(
            alias=PEM_KEY_ALIAS, kind="private_key", certificates=chain,
            decrypt_key=_make_key_decryptor(key_block, password, key_from), key_source=key_from,
        ))
    else:
        rest = certs
    entries += [KeystoreEntry(alias=f"cert-{n}", kind="trusted_cert", certificates=(c,))
                for n, c in enumerate(rest, start=1)]
    return KeystoreContents(type="pem", entries=tuple(entries), source=source)
