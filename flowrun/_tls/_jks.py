"""Java KeyStore (JKS) and JCEKS files: read both, write JKS.

Layout (big-endian): magic, version (1 or 2), entry count, entries, then a SHA-1 trailer over
``password as UTF-16BE + b"Mighty Aphrodite" + everything before it``. Entry tags: 1 private key
(an EncryptedPrivateKeyInfo and a certificate chain), 2 trusted certificate, 3 secret key
(JCEKS only: a Java-serialized sealed object with no length prefix).

Private keys are decrypted only when asked for (``KeystoreEntry.decrypt_key``): JCEKS key
protection runs 200,000 MD5 rounds per half key, which Python needs ~0.2 s for.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flowrun._errors import (
    FlowrunError,
    KeyAlgorithmError,
    KeyEncryptionUnsupportedError,
    KeyMismatchError,
    KeyPasswordError,
    KeystoreCorruptError,
    KeystoreFormatError,
    KeystorePasswordError,
)
from flowrun._tls import _der
from flowrun._tls._model import KeystoreContents, KeystoreEntry

if TYPE_CHECKING:  # the lean path (``read_jks_raw``) reads a store without cryptography
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

JKS_MAGIC = b"\xfe\xed\xfe\xed"
JCEKS_MAGIC = b"\xce\xce\xce\xce"
_WHITENER = b"Mighty Aphrodite"
_DIGEST_LEN = 20
JKS_KEY_PROTECTION_OID = "1.3.6.1.4.1.42.2.17.1.1"
JCEKS_KEY_PROTECTION_OID = "1.3.6.1.4.1.42.2.19.1"  # PBEWithMD5AndTripleDES
# The JDK refuses JCEKS keys protected with more rounds than this (jdk.jceks.iterationCount).
_JCEKS_MAX_ITERATIONS = 5_000_000
TAG_PRIVATE_KEY, TAG_TRUSTED_CERT, TAG_SECRET_KEY = 1, 2, 3

StoreKind = Literal["jks", "jceks"]


def _where(source: str) -> str | None:
    return None if source == "<memory>" else source


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise _Truncated
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def u2(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u4(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def utf(self) -> str:
        return decode_modified_utf8(self.take(self.u2()))


def decode_modified_utf8(raw: bytes) -> str:
    """Java's DataInput.readUTF: NUL as C0 80, characters beyond the BMP as two 3-byte surrogates."""
    text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be")


def encode_modified_utf8(text: str) -> bytes:
    units = text.encode("utf-16-be")
    out = bytearray()
    for i in range(0, len(units), 2):
        unit = int.from_bytes(units[i : i + 2], "big")
        out += b"\xc0\x80" if unit == 0 else chr(unit).encode("utf-8", "surrogatepass")
    if len(out) > 0xFFFF:
        raise ValueError("alias too long")
    return struct.pack(">H", len(out)) + bytes(out)


def _password_bytes(password: str) -> bytes:
    # Java hands the password's UTF-16 code units to the digests, high byte first.
    return password.encode("utf-16-be", "surrogatepass")


def store_digest(password: str, body: bytes) -> bytes:
    return hashlib.sha1(_password_bytes(password) + _WHITENER + body).digest()


# --- key protection ---------------------------------------------------------------------------


def _jks_keystream_xor(password: bytes, salt: bytes, data: bytes) -> bytes:
    stream = bytearray()
    digest = salt
    while len(stream) < len(data):
        digest = hashlib.sha1(password + digest).digest()
        stream += digest
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream[: len(data)], "big")).to_bytes(len(data), "big")


def jks_protect(pkcs8: bytes, password: str, *, salt: bytes | None = None) -> bytes:
    """JKS's own key protection (Sun KeyProtector): salt | XOR-encrypted key | SHA-1 check."""
    pw = _password_bytes(password)
    salt = os.urandom(_DIGEST_LEN) if salt is None else salt
    encrypted = _jks_keystream_xor(pw, salt, pkcs8)
    check = hashlib.sha1(pw + pkcs8).digest()
    algorithm = _der.sequence(_der.encode_oid(JKS_KEY_PROTECTION_OID), _der.encode(_der.NULL, b""))
    return _der.sequence(algorithm, _der.encode(_der.OCTET_STRING, salt + encrypted + check))


def _jks_recover(protected: bytes, password: str) -> bytes | None:
    """The PKCS#8 key, or None when the password is wrong."""
    if len(protected) < 2 * _DIGEST_LEN:
        raise _der.DerError("protected key too short")
    pw = _password_bytes(password)
    salt, encrypted, check = protected[:_DIGEST_LEN], protected[_DIGEST_LEN:-_DIGEST_LEN], protected[-_DIGEST_LEN:]
    plain = _jks_keystream_xor(pw, salt, encrypted)
    if not hmac.compare_digest(hashlib.sha1(pw + plain).digest(), check):
        return None
    return plain


def _jceks_derive(password: bytes, salt: bytes, iterations: int, first_half: bytes) -> tuple[bytes, bytes]:
    derived = b""
    for half in (first_half, salt[4:]):
        block = half
        for _ in range(iterations):
            block = hashlib.md5(block + password).digest()
        derived += block
    return derived[:24], derived[24:32]


def _jceks_first_halves(salt: bytes) -> list[bytes]:
    """The first salt half(s) to derive with. When both halves are equal the JDK inverts the first:
    JDK 17 and 25 reverse it (measured), while older JDKs had a typo (``salt[3-1]``) that turns
    [a, b, c, d] into [d, a, b, d]; that form is tried second."""
    if salt[:4] != salt[4:]:
        return [salt[:4]]
    a, b, _c, d = salt[:4]
    return [salt[3::-1], bytes([d, a, b, d])]


def _jceks_recover(params: _der.Tlv, encrypted: bytes, password: str) -> bytes | None:
    fields = params.expect(_der.SEQUENCE).children()
    if len(fields) != 2:
        raise _der.DerError("bad PBE parameters")
    salt = fields[0].expect(_der.OCTET_STRING).value
    iterations = _der.read_int(fields[1])
    if len(salt) != 8 or not 0 < iterations <= _JCEKS_MAX_ITERATIONS:
        raise _der.DerError("bad PBE parameters")
    if len(encrypted) == 0 or len(encrypted) % 8:
        raise _der.DerError("bad encrypted key length")
    # Java's PBE keys take printable ASCII only, so no other password can have protected a key.
    if not all(0x20 <= ord(ch) <= 0x7E for ch in password):
        return None
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    for first_half in _jceks_first_halves(salt):
        key, iv = _jceks_derive(password.encode("ascii"), salt, iterations, first_half)
        decryptor = Cipher(TripleDES(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(encrypted) + decryptor.finalize()
        unpadder = padding.PKCS7(64).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            continue
    return None


def _protection(protected: bytes) -> tuple[str, list[_der.Tlv], bytes]:
    """The protection algorithm (its OID and its parts) and the encrypted key of an
    EncryptedPrivateKeyInfo; DerError or IndexError when it is not one."""
    info = _der.parse(protected).expect(_der.SEQUENCE).children()
    if len(info) != 2:
        raise _der.DerError("bad EncryptedPrivateKeyInfo")
    algorithm = info[0].expect(_der.SEQUENCE).children()
    return _der.read_oid(algorithm[0]), algorithm, info[1].expect(_der.OCTET_STRING).value


def _make_key_decryptors(
    alias: str, protected: bytes, store_password: str | None, source: str,
) -> tuple[Callable[[str | None], bytes], Callable[[str | None], PrivateKeyTypes]]:
    """The entry's key recovery (its unencrypted PKCS#8 DER, not decoded) and its decryption (the
    decoded key). Both raise the password and damage errors; the decryption also names a key that
    cannot be decoded."""
    recovered: dict[bytes, tuple[bytes, str]] = {}
    decoded: dict[bytes, PrivateKeyTypes] = {}
    where = _where(source)

    def recover(key_password: str | None) -> tuple[bytes, str, bytes]:
        password = store_password if key_password is None else key_password
        if password is None:
            raise KeyPasswordError(f"the private key '{alias}' needs a password and none was given", file=where)
        cache_key = hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
        if cache_key in recovered:
            return (*recovered[cache_key], cache_key)
        try:
            oid, algorithm, encrypted = _protection(protected)
            if oid == JKS_KEY_PROTECTION_OID:
                plain = _jks_recover(encrypted, password)
            elif oid == JCEKS_KEY_PROTECTION_OID and len(algorithm) == 2:
                plain = _jceks_recover(algorithm[1], encrypted, password)
            else:
                raise KeyEncryptionUnsupportedError(
                    f"the private key '{alias}' is protected with algorithm {oid}, which flowrun cannot decrypt "
                    "(this is not a wrong password)", file=where,
                    hint="export the key again with keytool -importkeystore into a PKCS12 store")
        except (_der.DerError, IndexError) as exc:
            raise KeystoreCorruptError(f"the private key entry '{alias}' is damaged ({exc})", file=where) from None
        if plain is None:
            raise KeyPasswordError(f"wrong key password for the private key '{alias}'", file=where)
        recovered[cache_key] = (plain, oid)
        return plain, oid, cache_key

    def recover_key(key_password: str | None) -> bytes:
        return recover(key_password)[0]

    def decrypt_key(key_password: str | None) -> PrivateKeyTypes:
        plain, oid, cache_key = recover(key_password)
        if cache_key in decoded:
            return decoded[cache_key]
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives import serialization

        try:
            # OpenSSL checks the key against the certificate when a context loads it, and
            # select_identity compares their public keys: cryptography's RSA validation (~35 ms for
            # RSA-2048, on every cold start) would only repeat that.
            key = serialization.load_der_private_key(plain, password=None, unsafe_skip_rsa_key_validation=True)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # A JCEKS key decrypted with a wrong password passes the padding check 1 time in 256.
            if oid == JCEKS_KEY_PROTECTION_OID:
                raise KeyPasswordError(f"wrong key password for the private key '{alias}'", file=where) from None
            raise KeystoreCorruptError(f"the private key '{alias}' cannot be decoded", file=where) from None
        decoded[cache_key] = key
        return key

    return recover_key, decrypt_key


# --- reading ----------------------------------------------------------------------------------


def dsa_key_error(label: str, where: str | None) -> KeyAlgorithmError:
    from flowrun._tls._keycheck import NEW_KEY

    return KeyAlgorithmError(
        f"the {label} store holds a DSA key (keytool -keyalg DSA): TLS 1.3 has no DSA and most TLS 1.2 "
        "servers refuse it, and its certificate (DSA signature with NULL parameters, as keytool writes it) "
        "cannot be read", hint=NEW_KEY, file=where)


RawEntry = tuple[int, str, bytes, tuple[bytes, ...]]


def _walk(data: bytes, kind: StoreKind, where: str | None) -> tuple[list[RawEntry], int]:
    """(tag, alias, protected key, certificates as DER) of every entry as stored, and where the
    body the integrity check covers ends. Raises what is wrong with the store's structure."""
    label = kind.upper()
    reader = _Reader(data)
    entries: list[RawEntry] = []
    try:
        reader.take(4)
        version = reader.u4()
        if version not in (1, 2):
            raise KeystoreCorruptError(f"the {label} store has version {version}; known versions are 1 and 2",
                                       file=where)

        def certificate() -> bytes:
            if version == 2:
                cert_type = reader.utf()
                if cert_type != "X.509":
                    raise KeystoreFormatError(f"the {label} store holds a '{cert_type}' certificate; only X.509 "
                                              "is read", file=where)
            return reader.take(reader.u4())

        for _ in range(reader.u4()):
            tag = reader.u4()
            alias = reader.utf()
            reader.take(8)  # creation time
            if tag == TAG_PRIVATE_KEY:
                protected = reader.take(reader.u4())
                entries.append((tag, alias, protected, tuple(certificate() for _ in range(reader.u4()))))
            elif tag == TAG_TRUSTED_CERT:
                entries.append((tag, alias, b"", (certificate(),)))
            elif tag == TAG_SECRET_KEY and kind == "jceks":
                from flowrun._tls._java_serial import JavaSerialError, skip_serialized_object  # JCEKS only

                try:
                    skipped = skip_serialized_object(data, reader.pos)
                except JavaSerialError as exc:
                    if "truncated" in str(exc):
                        raise _Truncated from None
                    raise KeystoreCorruptError(f"the secret key entry '{alias}' is damaged ({exc})",
                                               file=where) from None
                reader.pos = skipped.end
                entries.append((tag, alias, b"", ()))
            else:
                raise KeystoreCorruptError(f"the {label} store has an entry of unknown type {tag}", file=where)
        body_end = reader.pos
        reader.take(_DIGEST_LEN)
    except _Truncated:
        raise KeystoreCorruptError(
            f"the {label} store ends early ({len(data)} bytes): the file is truncated", file=where,
        ) from None
    except UnicodeDecodeError:
        raise KeystoreCorruptError(f"an alias in the {label} store is not valid text", file=where) from None
    return entries, body_end


def _intact(data: bytes, body_end: int, password: str) -> bool:
    # Bytes after the integrity check (a file padded by a copy or transfer tool) are ignored, as
    # Java's KeyStore.load ignores them: keytool lists such a store.
    return hmac.compare_digest(store_digest(password, data[:body_end]), data[body_end:body_end + _DIGEST_LEN])


def read_jks(data: bytes, *, password: str | None, source: str = "<memory>") -> KeystoreContents:
    """Read a JKS or JCEKS store (the magic tells which). ``password=None`` skips the integrity
    check, as ``keytool -list`` does without a password; keys then need their own password."""
    where = _where(source)
    magic = data[:4]
    if magic not in (JKS_MAGIC, JCEKS_MAGIC):
        raise KeystoreFormatError("not a JKS or JCEKS keystore", file=where)
    kind: StoreKind = "jks" if magic == JKS_MAGIC else "jceks"
    label = kind.upper()
    raw_entries, body_end = _walk(data, kind, where)
    from cryptography.exceptions import UnsupportedAlgorithm

    from flowrun._tls._chain import is_dsa_certificate, load_der_certificate

    certs_seen: dict[bytes, x509.Certificate] = {}
    # An intact certificate that cannot be read or used (keytool's DSA certificates) is reported
    # after the integrity check: with a wrong password the user hears about the password first.
    undecodable: list[FlowrunError] = []

    def certificates(ders: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
        decoded: list[x509.Certificate] = []
        for der in ders:
            if der not in certs_seen:
                try:
                    certs_seen[der] = load_der_certificate(der)
                except ValueError:
                    undecodable.append(dsa_key_error(label, where) if is_dsa_certificate(der) else
                                       KeystoreCorruptError(f"a certificate in the {label} store cannot be decoded",
                                                            file=where))
                    continue
                except UnsupportedAlgorithm as exc:
                    undecodable.append(KeystoreFormatError(f"a certificate in the {label} store uses a key type "
                                                           f"that cannot be used ({exc})", file=where))
                    continue
            decoded.append(certs_seen[der])
        return tuple(decoded)

    entries: list[KeystoreEntry] = []
    for tag, alias, protected, ders in raw_entries:
        if tag == TAG_PRIVATE_KEY:
            recover_key, decrypt_key = _make_key_decryptors(alias, protected, password, source)
            entries.append(KeystoreEntry(alias=alias, kind="private_key", certificates=certificates(ders),
                                         decrypt_key=decrypt_key, recover_key=recover_key))
        elif tag == TAG_TRUSTED_CERT:
            entries.append(KeystoreEntry(alias=alias, kind="trusted_cert", certificates=certificates(ders)))
        else:
            # The key's algorithm is inside the sealed (encrypted) content: not readable here.
            entries.append(KeystoreEntry(alias=alias, kind="secret_key"))
    if password is not None and not _intact(data, body_end, password):
        damaged = [error for error in undecodable if isinstance(error, KeystoreCorruptError)]
        if damaged:
            raise damaged[0]  # bytes that are no certificate: the file, not the password
        raise KeystorePasswordError(
            f"wrong store password for the {label} store (its integrity check failed; "
            "a modified file fails the same way)", file=where,
        )
    if undecodable:
        raise undecodable[0]
    return KeystoreContents(type=kind, entries=tuple(entries), source=source)


def read_jks_raw(data: bytes, password: str) -> list[RawEntry] | None:
    """For the lean path (``_lean``): the entries of a JKS store whose integrity check passes with
    ``password``, certificates as DER. None for anything else (JCEKS, a damaged or truncated
    store, a wrong password): ``read_jks`` then says what is wrong."""
    if not data.startswith(JKS_MAGIC):
        return None
    try:
        entries, body_end = _walk(data, "jks", None)
    except (KeystoreCorruptError, KeystoreFormatError):
        return None
    return entries if _intact(data, body_end, password) else None


def recover_jks_key(protected: bytes, password: str) -> bytes | None:
    """The PKCS#8 key of a private key entry under JKS's own protection; None for another
    protection, a wrong password or damage (``read_jks`` words those)."""
    try:
        oid, _, encrypted = _protection(protected)
        return _jks_recover(encrypted, password) if oid == JKS_KEY_PROTECTION_OID else None
    except (_der.DerError, IndexError):
        return None


# --- writing ----------------------------------------------------------------------------------


def public_key_der(key: object) -> bytes:
    from flowrun._tls._chain import public_key_der as spki  # cryptography: for writing stores only

    return spki(key)


def _cert_record(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    der = cert.public_bytes(serialization.Encoding.DER)
    return encode_modified_utf8("X.509") + struct.pack(">I", len(der)) + der


def encode_jks(
    *,
    alias: str,
    private_key: PrivateKeyTypes,
    chain: Sequence[x509.Certificate],
    password: str,
    trusted: Mapping[str, x509.Certificate] | None = None,
    key_password: str | None = None,
) -> bytes:
    """A JKS store (version 2) with one private key entry and optional trusted certificates.
    Aliases are lower-cased, as Java stores them. ``key_password`` defaults to ``password``."""
    if not chain:
        raise ValueError("a private key entry needs at least its certificate")
    if public_key_der(private_key.public_key()) != public_key_der(chain[0].public_key()):
        raise KeyMismatchError(f"the private key for '{alias}' does not belong to the first certificate of the chain")
    trusted = dict(trusted or {})
    names = [alias.lower(), *(name.lower() for name in trusted)]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"aliases must be unique and non-empty (case-insensitive): {names}")
    from cryptography.hazmat.primitives import serialization

    pkcs8 = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    )
    protected = jks_protect(pkcs8, password if key_password is None else key_password)
    stamp = struct.pack(">Q", int(time.time() * 1000))
    body = bytearray(JKS_MAGIC + struct.pack(">II", 2, 1 + len(trusted)))
    body += struct.pack(">I", TAG_PRIVATE_KEY) + encode_modified_utf8(alias.lower()) + stamp
    body += struct.pack(">I", len(protected)) + protected + struct.pack(">I", len(chain))
    for cert in chain:
        body += _cert_record(cert)
    for name, cert in trusted.items():
        body += struct.pack(">I", TAG_TRUSTED_CERT) + encode_modified_utf8(name.lower()) + stamp
        body += _cert_record(cert)
    return bytes(body) + store_digest(password, bytes(body))


def write_jks(
    path: Path,
    *,
    alias: str,
    private_key: PrivateKeyTypes,
    chain: Sequence[x509.Certificate],
    password: str,
    trusted: Mapping[str, x509.Certificate] | None = None,
    key_password: str | None = None,
) -> None:
    """Write ``encode_jks(...)`` to ``path`` (mode 0600, replaced atomically)."""
    data = encode_jks(alias=alias, private_key=private_key, chain=chain, password=password,
                      trusted=trusted, key_password=key_password)
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
