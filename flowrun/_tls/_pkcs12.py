"""PKCS#12 stores (.p12 / .pfx), as keytool writes them (PBES2/AES, and Java 8's legacy RC2/3DES).

``cryptography``'s ``load_pkcs12`` decrypts the certificates, but it returns one key only and does
not say which certificates are trusted-cert entries. So the plain (unencrypted) SafeContents are
walked here too: every key bag becomes a private key entry (decrypted on demand), and chains are
built by issuer and subject from all certificates, which is what Java does when it loads a PKCS12.

Trusted-cert entries are the certificates with a friendly name that is neither a key's alias nor
the certificate's own subject (Java names the chain certificates it writes after their subject).

When ``load_pkcs12`` fails, the MAC is checked here to tell a wrong password from a damaged file.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

import attrs
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from flowrun._errors import KeyPasswordError, KeystoreCorruptError, KeystorePasswordError
from flowrun._models._record import ValueRecord
from flowrun._tls import _der
from flowrun._tls._chain import check_certificate, complete_chain, lenient_decoding, quietly, unique
from flowrun._tls._model import KeystoreContents, KeystoreEntry

_DATA = "1.2.840.113549.1.7.1"
_KEY_BAG = "1.2.840.113549.1.12.10.1.1"
_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2"
_SECRET_BAG = "1.2.840.113549.1.12.10.1.5"
_FRIENDLY_NAME = "1.2.840.113549.1.9.20"
_LOCAL_KEY_ID = "1.2.840.113549.1.9.21"
# digest OID -> (hashlib name, block size in bytes) for the PKCS#12 key derivation (RFC 7292 B.2).
_MAC_DIGESTS = {
    "1.3.14.3.2.26": ("sha1", 64),
    "2.16.840.1.101.3.4.2.4": ("sha224", 64),
    "2.16.840.1.101.3.4.2.1": ("sha256", 64),
    "2.16.840.1.101.3.4.2.2": ("sha384", 128),
    "2.16.840.1.101.3.4.2.3": ("sha512", 128),
}
# Refuse MAC iteration counts no real tool writes, instead of hashing for minutes.
_MAX_MAC_ITERATIONS = 10_000_000


def _where(source: str) -> str | None:
    return None if source == "<memory>" else source


@attrs.frozen(eq=False, repr=False)
class _Bag(ValueRecord):
    oid: str
    value: _der.Tlv
    friendly_name: str | None
    local_key_id: bytes | None


@attrs.frozen(eq=False, repr=False)
class _Pfx(ValueRecord):
    auth_safe: bytes  # the MAC covers these bytes
    mac: tuple[str, bytes, bytes, int] | None  # digest OID, digest, salt, iterations


def _parse_pfx(data: bytes) -> _Pfx:
    fields = _der.parse(data).expect(_der.SEQUENCE).children()
    if len(fields) < 2 or _der.read_int(fields[0]) != 3:
        raise _der.DerError("not a version 3 PFX")
    content_info = fields[1].expect(_der.SEQUENCE).children()
    if _der.read_oid(content_info[0]) != _DATA or len(content_info) != 2:
        raise _der.DerError("PFX content is not data (signed PFX files are not read)")
    auth_safe = content_info[1].expect(_der.CONTEXT_0).children()[0].expect(_der.OCTET_STRING).value
    mac = None
    if len(fields) > 2:
        mac_data = fields[2].expect(_der.SEQUENCE).children()
        digest_info = mac_data[0].expect(_der.SEQUENCE).children()
        digest_oid = _der.read_oid(digest_info[0].expect(_der.SEQUENCE).children()[0])
        digest = digest_info[1].expect(_der.OCTET_STRING).value
        salt = mac_data[1].expect(_der.OCTET_STRING).value
        iterations = _der.read_int(mac_data[2]) if len(mac_data) > 2 else 1
        mac = (digest_oid, digest, salt, iterations)
    return _Pfx(auth_safe, mac)


def _pkcs12_kdf(hash_name: str, password: bytes, salt: bytes, *, block: int, purpose: int,
                iterations: int, size: int) -> bytes:
    """RFC 7292 appendix B.2; ``password`` is already the BMPString with its two zero bytes."""
    def stretch(chunk: bytes) -> bytes:
        if not chunk:
            return b""
        count = -(-len(chunk) // block) * block
        return (chunk * (count // len(chunk) + 1))[:count]

    diversifier = bytes([purpose]) * block
    material = bytearray(stretch(salt) + stretch(password))
    out = b""
    while len(out) < size:
        digest = hashlib.new(hash_name, diversifier + bytes(material)).digest()
        for _ in range(iterations - 1):
            digest = hashlib.new(hash_name, digest).digest()
        out += digest
        addend = int.from_bytes(stretch(digest), "big") + 1
        for start in range(0, len(material), block):
            value = (int.from_bytes(material[start : start + block], "big") + addend) % (1 << (8 * block))
            material[start : start + block] = value.to_bytes(block, "big")
    return out[:size]


def _mac_matches(pfx: _Pfx, password: str) -> bool | None:
    """True/False when the MAC can be checked, None when its digest is unknown or absent."""
    if pfx.mac is None:
        return None
    digest_oid, digest, salt, iterations = pfx.mac
    if digest_oid not in _MAC_DIGESTS or not 0 < iterations <= _MAX_MAC_ITERATIONS:
        return None
    hash_name, block = _MAC_DIGESTS[digest_oid]
    size = hashlib.new(hash_name).digest_size
    bmp = password.encode("utf-16-be", "surrogatepass") + b"\x00\x00"
    key = _pkcs12_kdf(hash_name, bmp, salt, block=block, purpose=3, iterations=iterations, size=size)
    return hmac.compare_digest(hmac.new(key, pfx.auth_safe, hash_name).digest(), digest)


def _classify_failure(data: bytes, password: str | None, source: str) -> Exception:
    where = _where(source)
    try:
        pfx = _parse_pfx(data)
    except (_der.DerError, IndexError):
        return KeystoreCorruptError(f"the PKCS12 store is truncated or damaged ({len(data)} bytes)", file=where)
    if password is None:
        return KeystorePasswordError("the PKCS12 store is protected: give its password", file=where)
    matches = _mac_matches(pfx, password)
    if matches is False:
        return KeystorePasswordError("wrong store password for the PKCS12 store", file=where)
    if matches is True:
        if _holds_dsa_key(pfx, password):
            from flowrun._tls._jks import dsa_key_error

            return dsa_key_error("PKCS12", where)
        return KeystoreCorruptError("the PKCS12 store's password is right but its content cannot be read",
                                    file=where)
    return KeystorePasswordError("the PKCS12 store cannot be opened: wrong password, or a damaged file",
                                 file=where)


def _certificates_only(data: bytes, password: str) -> bytes | None:
    """The store without its key bags, its MAC recomputed with the store password: what
    ``load_pkcs12`` can read when a key has a password of its own (Java's KeyStore API writes
    such stores; keytool cannot). None when the MAC does not match or the layout is unusual."""
    try:
        pfx = _parse_pfx(data)
        if pfx.mac is None or _mac_matches(pfx, password) is not True:
            return None
        safes: list[bytes] = []
        for content_info in _der.parse(pfx.auth_safe).expect(_der.SEQUENCE).children():
            parts = content_info.expect(_der.SEQUENCE).children()
            if _der.read_oid(parts[0]) != _DATA:
                safes.append(_der.encode(content_info.tag, content_info.value))
                continue
            safe_contents = parts[1].expect(_der.CONTEXT_0).children()[0].expect(_der.OCTET_STRING).value
            kept = [_der.encode(bag.tag, bag.value)
                    for bag in _der.parse(safe_contents).expect(_der.SEQUENCE).children()
                    if _der.read_oid(bag.expect(_der.SEQUENCE).children()[0]) not in (_KEY_BAG, _SHROUDED_KEY_BAG)]
            safes.append(_data_content(_der.sequence(*kept)))
        auth_safe = _der.sequence(*safes)
        digest_oid, _, salt, iterations = pfx.mac
        hash_name, block = _MAC_DIGESTS[digest_oid]
        bmp = password.encode("utf-16-be", "surrogatepass") + b"\x00\x00"
        key = _pkcs12_kdf(hash_name, bmp, salt, block=block, purpose=3, iterations=iterations,
                          size=hashlib.new(hash_name).digest_size)
        mac = hmac.new(key, auth_safe, hash_name).digest()
    except (_der.DerError, IndexError, KeyError):
        return None
    mac_data = _der.sequence(
        _der.sequence(_der.sequence(_der.encode_oid(digest_oid), _der.encode(_der.NULL, b"")),
                      _der.encode(_der.OCTET_STRING, mac)),
        _der.encode(_der.OCTET_STRING, salt), _der.encode(_der.INTEGER, _der_int(iterations)))
    return _der.sequence(_der.encode(_der.INTEGER, b"\x03"), _data_content(auth_safe), mac_data)


def _data_content(content: bytes) -> bytes:
    return _der.sequence(_der.encode_oid(_DATA), _der.encode(_der.CONTEXT_0, _der.encode(_der.OCTET_STRING, content)))


def _der_int(value: int) -> bytes:
    return value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True)


def _holds_dsa_key(pfx: _Pfx, password: str) -> bool:
    from flowrun._tls._dsa import is_dsa_private_key

    try:
        bags = _plain_bags(pfx.auth_safe)
    except (_der.DerError, IndexError, UnicodeDecodeError):
        return False
    for bag in bags:
        if bag.oid not in (_KEY_BAG, _SHROUDED_KEY_BAG):
            continue
        secret = password.encode("utf-8", "surrogatepass") if bag.oid == _SHROUDED_KEY_BAG else None
        try:
            key = serialization.load_der_private_key(_der.encode(bag.value.tag, bag.value.value), secret)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        if is_dsa_private_key(key):
            return True
    return False


def _attributes(bag_fields: list[_der.Tlv]) -> tuple[str | None, bytes | None]:
    name: str | None = None
    key_id: bytes | None = None
    if len(bag_fields) < 3:
        return None, None
    for attribute in bag_fields[2].expect(_der.SET).children():
        parts = attribute.expect(_der.SEQUENCE).children()
        values = parts[1].expect(_der.SET).children()
        if not values:
            continue
        oid = _der.read_oid(parts[0])
        if oid == _FRIENDLY_NAME:
            name = values[0].expect(_der.BMP_STRING).value.decode("utf-16-be")
        elif oid == _LOCAL_KEY_ID:
            key_id = values[0].expect(_der.OCTET_STRING).value
    return name, key_id


def _plain_bags(auth_safe: bytes) -> list[_Bag]:
    """Bags in the unencrypted SafeContents (where keytool, OpenSSL and cryptography put keys)."""
    bags: list[_Bag] = []
    for content_info in _der.parse(auth_safe).expect(_der.SEQUENCE).children():
        parts = content_info.expect(_der.SEQUENCE).children()
        if _der.read_oid(parts[0]) != _DATA:
            continue
        safe_contents = parts[1].expect(_der.CONTEXT_0).children()[0].expect(_der.OCTET_STRING).value
        for bag in _der.parse(safe_contents).expect(_der.SEQUENCE).children():
            bag_fields = bag.expect(_der.SEQUENCE).children()
            oid = _der.read_oid(bag_fields[0])
            value = bag_fields[1].expect(_der.CONTEXT_0).children()[0]
            name, key_id = _attributes(bag_fields)
            bags.append(_Bag(oid, value, name, key_id))
    return bags


def _make_key_decryptor(
    alias: str, bag: _Bag | None, preloaded: PrivateKeyTypes | None, store_password: str | None, source: str,
) -> Callable[[str | None], PrivateKeyTypes]:
    cache: dict[bytes, PrivateKeyTypes] = {}
    where = _where(source)

    def decrypt_key(key_password: str | None) -> PrivateKeyTypes:
        password = store_password if key_password is None else key_password
        if preloaded is not None and (bag is None or password == store_password):
            return preloaded
        if bag is None:
            raise KeyPasswordError(f"wrong key password for the private key '{alias}'", file=where)
        if password is None:
            raise KeyPasswordError(f"the private key '{alias}' needs a password and none was given", file=where)
        cache_key = hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest()
        if cache_key not in cache:
            der = _der.encode(bag.value.tag, bag.value.value)
            secret = password.encode("utf-8", "surrogatepass") if bag.oid == _SHROUDED_KEY_BAG else None
            try:
                # Checked against the certificate by select_identity and OpenSSL (see _jks).
                cache[cache_key] = serialization.load_der_private_key(der, secret,
                                                                      unsafe_skip_rsa_key_validation=True)
            except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
                from flowrun._tls._pem import unsupported_encryption

                unsupported = unsupported_encryption(exc, f"the private key '{alias}'", where)
                if unsupported is not None:
                    raise unsupported from None
                if bag.oid == _SHROUDED_KEY_BAG:
                    raise KeyPasswordError(f"wrong key password for the private key '{alias}'", file=where) from None
                raise KeystoreCorruptError(f"the private key '{alias}' cannot be decoded", file=where) from None
        return cache[cache_key]

    return decrypt_key


# X500Principal.getName() (RFC 2253) keywords; other attributes are written as OID=#<DER hex>.
_JAVA_KEYWORDS = {"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
                  "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
                  "0.9.2342.19200300.100.1.1": "UID"}
_UNESCAPED = re.compile(r"(?<!\\)[,+]")


def _dn_parts(name: str) -> list[tuple[str, str]] | None:
    parts: list[tuple[str, str]] = []
    for part in _UNESCAPED.split(name):
        key, sep, value = part.partition("=")
        if not sep:
            return None
        key = key.strip().upper()
        key = _JAVA_KEYWORDS.get(key, key)
        value = value.strip()
        if value.startswith("#"):
            try:
                tlv = _der.parse(bytes.fromhex(value[1:]))
            except (ValueError, _der.DerError):
                return None
            value = tlv.value.decode("utf-16-be" if tlv.tag == _der.BMP_STRING else "utf-8", "replace")
        else:
            value = re.sub(r"\\(.)", r"\1", value)
        parts.append((key, value.lower()))
    return sorted(parts)


def _looks_like_own_subject(name: str, cert: x509.Certificate) -> bool:
    """Whether a friendly name is the certificate's own subject: Java names the chain certificates
    it writes after it (these are not trustedCertEntry entries, and keytool -list does not show them)."""
    if "=" not in name:
        return False
    own = sorted((_JAVA_KEYWORDS.get(a.oid.dotted_string, a.oid.dotted_string),
                  (a.value if isinstance(a.value, str) else a.value.decode("utf-8", "replace")).lower())
                 for a in cert.subject)
    return _dn_parts(name) == own


def read_pkcs12(data: bytes, *, password: str | None, source: str = "<memory>") -> KeystoreContents:
    secret = None if password is None else password.encode("utf-8", "surrogatepass")
    try:
        loaded = quietly(lambda: pkcs12.load_pkcs12(data, secret))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        certificates = _certificates_only(data, password) if password is not None else None
        if certificates is None:
            raise _classify_failure(data, password, source) from None
        try:
            loaded = quietly(lambda: pkcs12.load_pkcs12(certificates, secret))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise _classify_failure(data, password, source) from None

    named: list[tuple[str | None, x509.Certificate]] = []
    if loaded.cert is not None:
        named.append((_friendly(loaded.cert), loaded.cert.certificate))
    named += [(_friendly(c), c.certificate) for c in loaded.additional_certs]
    try:
        with lenient_decoding():
            for _, cert in named:
                check_certificate(cert)
    except (ValueError, UnsupportedAlgorithm):
        raise KeystoreCorruptError("a certificate in the PKCS12 store cannot be decoded", file=_where(source)) from None
    pool = unique(cert for _, cert in named)

    try:
        bags = _plain_bags(_parse_pfx(data).auth_safe)
    except (_der.DerError, IndexError, UnicodeDecodeError):
        bags = []  # an unusual encoding: fall back to the one key load_pkcs12 found
    key_bags = [b for b in bags if b.oid in (_KEY_BAG, _SHROUDED_KEY_BAG)]

    entries: list[KeystoreEntry] = []
    key_aliases: set[str] = set()
    if key_bags:
        for index, bag in enumerate(key_bags, start=1):
            alias = (bag.friendly_name or "").lower() or str(index)
            leaf = _leaf_for(bag.friendly_name, named, loaded, single=len(key_bags) == 1)
            preloaded = loaded.key if (leaf is not None and loaded.cert is not None
                                       and leaf == loaded.cert.certificate) else None
            entries.append(_key_entry(alias, leaf, pool, bag=bag, preloaded=preloaded, password=password,
                                      source=source))
            key_aliases.add(alias)
    elif loaded.key is not None:
        leaf_cert = loaded.cert.certificate if loaded.cert is not None else None
        alias = (_friendly(loaded.cert) or "1") if loaded.cert is not None else "1"
        entries.append(_key_entry(alias, leaf_cert, pool, bag=None, preloaded=loaded.key, password=password,
                                  source=source))
        key_aliases.add(alias)

    for bag in bags:
        if bag.oid == _SECRET_BAG and bag.friendly_name:
            entries.append(KeystoreEntry(alias=bag.friendly_name.lower(), kind="secret_key"))

    seen_trusted: set[str] = set()
    for name, cert in named:
        if name is None or name in key_aliases or name in seen_trusted or _looks_like_own_subject(name, cert):
            continue
        seen_trusted.add(name)
        entries.append(KeystoreEntry(alias=name, kind="trusted_cert", certificates=(cert,)))
    return KeystoreContents(type="pkcs12", entries=tuple(entries), source=source)


def _friendly(cert: pkcs12.PKCS12Certificate | None) -> str | None:
    if cert is None or cert.friendly_name is None:
        return None
    return cert.friendly_name.decode("utf-8", "replace").lower()


def _leaf_for(
    name: str | None, named: list[tuple[str | None, x509.Certificate]],
    loaded: pkcs12.PKCS12KeyAndCertificates, *, single: bool,
) -> x509.Certificate | None:
    if name is not None:
        for cert_name, cert in named:
            if cert_name == name.lower():
                return cert
    if single and loaded.cert is not None:
        return loaded.cert.certificate
    return None


def _key_entry(
    alias: str, leaf: x509.Certificate | None, pool: list[x509.Certificate], *, bag: _Bag | None,
    preloaded: PrivateKeyTypes | None, password: str | None, source: str,
) -> KeystoreEntry:
    chain = complete_chain((leaf,), pool) if leaf is not None else ()
    return KeystoreEntry(
        alias=alias, kind="private_key", certificates=chain,
        decrypt_key=_make_key_decryptor(alias, bag, preloaded, password, source),
    )
