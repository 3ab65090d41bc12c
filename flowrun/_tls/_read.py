"""Keystore reading entry points: type detection, dispatch to a format reader, file loading,
choosing the client identity, and reading trust store certs.

Nothing is cached here (a cache layer sits above); nothing is decrypted until an identity is
chosen.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from flowrun._errors import (
    IncompleteChainError,
    KeyAliasError,
    KeyMismatchError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    NoPrivateKeyError,
    PlaceholderCertError,
    TrustCertError,
)
from flowrun._tls import _der
from flowrun._tls._chain import (
    check_certificate,
    complete_chain,
    lenient_decoding,
    load_der_certificate,
    placeholder_message,
    public_key_der,
    signed_certificate_entry,
)
from flowrun._tls._context import key_pairs_with
from flowrun._tls._files import (
    MAX_KEY_MATERIAL_BYTES,
    check_key_material_file,
    permission_warnings,
)
from flowrun._tls._jks import JCEKS_MAGIC, JKS_MAGIC, read_jks
from flowrun._tls._model import ClientIdentity, KeystoreContents, KeystoreEntry, KeystoreType
from flowrun._tls._pem import load_pem_certificates, pem_blocks, read_pem

__all__ = [
    "MAX_KEY_MATERIAL_BYTES",
    "check_key_material_file",
    "detect_type",
    "load_keystore_file",
    "permission_warnings",
    "read_file_bytes",
    "read_keystore",
    "read_pem",
    "read_trust_certs",
    "select_identity",
]

_TYPE_NAMES: dict[KeystoreType, str] = {"jks": "JKS", "jceks": "JCEKS", "pkcs12": "PKCS12", "pem": "PEM"}
_BOM = b"\xef\xbb\xbf"


def _where(source: str) -> str | None:
    return None if source == "<memory>" else source


def _is_pkcs12(data: bytes) -> bool:
    """A DER SEQUENCE whose first element is INTEGER 3 (a PFX), even if the rest is cut off."""
    if len(data) < 5 or data[0] != _der.SEQUENCE:
        return False
    first = data[1]
    offset = 2 if first < 0x80 else 2 + (first & 0x7F)
    return data[offset : offset + 3] == b"\x02\x01\x03"


_PEM_BEGIN_LINE = re.compile(rb"(?:^|\n)[ \t]*-----BEGIN [A-Z0-9 ]+-----")


def _looks_like_pem(data: bytes) -> bool:
    """A BEGIN line anywhere: `openssl x509 -text` puts the decoded certificate first, `openssl
    pkcs12 -nodes` "Bag Attributes" with friendly names in any encoding."""
    return _PEM_BEGIN_LINE.search(data.removeprefix(_BOM)) is not None


def _describe_unknown(data: bytes) -> str:
    head = data[:4]
    hex_head = " ".join(f"{b:02x}" for b in head)
    text = data[:512].removeprefix(_BOM).lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:200]:
        guess = "looks like HTML, not a keystore (a web page or an error page saved instead of the file)"
    elif text.startswith(b"<"):
        guess = "looks like XML, not a keystore"
    elif text.startswith((b"{", b"[")):
        guess = "looks like JSON, not a keystore"
    elif data.startswith(b"PK\x03\x04"):
        guess = "is a ZIP archive: extract the keystore from it"
    elif text.startswith(b"version https://git-lfs"):
        guess = "is a Git LFS pointer, not the file itself: fetch the LFS object"
    elif data[:1] == bytes([_der.SEQUENCE]):
        guess = _describe_der(data)
    elif (encoded := _decoded_base64_type(data)) is not None:
        guess = f"looks like base64 text of a {encoded} keystore: decode it first"
    elif all(0x20 <= b < 0x7F or b in b"\r\n\t" for b in data[:512]):
        guess = "looks like text, not a keystore"
    else:
        guess = "is not a JKS, JCEKS, PKCS12 or PEM keystore"
    return f"starts with bytes {hex_head}: {guess}"


def _describe_der(data: bytes) -> str:
    try:
        load_der_certificate(data)
    except (ValueError, UnsupportedAlgorithm):
        return "a DER structure that is not a PKCS12 store"
    return "a single DER certificate: that is a trust store cert, not a keystore with a private key"


def _decoded_base64_type(data: bytes) -> str | None:
    compact = b"".join(data[:8192].split())
    if len(compact) < 16:
        return None
    try:
        head = base64.b64decode(compact[:16], validate=True)
    except (binascii.Error, ValueError):
        return None
    if head.startswith(JKS_MAGIC):
        return "JKS"
    if head.startswith(JCEKS_MAGIC):
        return "JCEKS"
    if _is_pkcs12(head):
        return "PKCS12"
    return None


def _bouncy_castle_type(data: bytes) -> str | None:
    """'BKS' or 'UBER' for Bouncy Castle's stores: a version (1 or 2), a salt with its length and an
    iteration count; then BKS has plain entries (a type byte, an alias) and UBER ciphertext."""
    if len(data) < 16 or data[:4] not in (b"\x00\x00\x00\x01", b"\x00\x00\x00\x02"):
        return None
    salt_length = int.from_bytes(data[4:8], "big")
    body = 12 + salt_length
    if not 8 <= salt_length <= 64 or len(data) < body + 2:
        return None
    if data[:4] == b"\x00\x00\x00\x02" or (data[body] in (1, 2, 3, 4) and data[body + 1] == 0):
        return "BKS"
    return "UBER"


_BC_CONVERT = ("convert it with Java and the Bouncy Castle provider: keytool -importkeystore -srckeystore FILE "
               "-srcstoretype {type} -providerpath bcprov.jar -provider "
               "org.bouncycastle.jce.provider.BouncyCastleProvider -destkeystore client.p12 -deststoretype PKCS12, "
               "or export the key and certificates again from where they were made")


def detect_type(data: bytes, *, source: str = "<memory>") -> KeystoreType:
    """The keystore type from the content (never from the file name)."""
    if not data:
        raise KeystoreFormatError("the file is empty", file=_where(source))
    bouncy = _bouncy_castle_type(data)
    if bouncy is not None:
        raise KeystoreFormatError(
            f"the file is a Bouncy Castle {bouncy} keystore (Android and some Java stacks use them), which flowrun "
            "does not read", hint=_BC_CONVERT.format(type=bouncy), file=_where(source))
    if data.startswith(JKS_MAGIC):
        return "jks"
    if data.startswith(JCEKS_MAGIC):
        return "jceks"
    if _is_pkcs12(data):
        return "pkcs12"
    if _looks_like_pem(data):
        return "pem"
    raise KeystoreFormatError(_describe_unknown(data), file=_where(source))


_JAVA_COMPATIBLE = frozenset({"jks", "pkcs12"})


def read_keystore(
    data: bytes, *, password: str | None, type: KeystoreType | None = None,
    source: str = "<memory>",
) -> KeystoreContents:
    """Read any supported keystore. An explicit ``type`` must agree with the content."""
    found = detect_type(data, source=source)
    # Java reads a "JKS" store that is really PKCS12 and the reverse (keystore.type.compat), and
    # keytool writes PKCS12 whatever the file is called: follow the content between those two.
    compatible = {type, found} <= _JAVA_COMPATIBLE
    if type is not None and type != found and not compatible:
        raise KeystoreFormatError(
            f"the keystore type is given as {type} but the file is {_TYPE_NAMES[found]}: "
            f"set type to \"{found}\"", file=_where(source),
        )
    if found in ("jks", "jceks"):
        return read_jks(data, password=password, source=source)
    if found == "pkcs12":
        # Imported for PKCS12 stores only: the start-up of a run from a JKS or PEM store skips it.
        from flowrun._tls._pkcs12 import read_pkcs12

        return read_pkcs12(data, password=password, source=source)
    return read_pem(data, password=password, source=source)


def holds_plaintext_key(data: bytes) -> bool:
    """Whether key material holds a private key anyone who reads the file can use: a PEM key that
    is not encrypted. JKS, JCEKS and PKCS12 keys are password-encrypted."""
    if detect_type_quietly(data) != "pem":
        return False
    for block in _KEY_BLOCK.finditer(data):
        label, body = block.group(1), block.group(2)
        if label != b"ENCRYPTED PRIVATE KEY" and b"Proc-Type: 4,ENCRYPTED" not in body:
            return True
    return False


_KEY_BLOCK = re.compile(rb"-----BEGIN ((?:ENCRYPTED |RSA |EC |DSA )?PRIVATE KEY)-----(.{0,200})", re.DOTALL)


def detect_type_quietly(data: bytes) -> KeystoreType | None:
    try:
        return detect_type(data)
    except KeystoreFormatError:
        return None


def describe_path(path: Path) -> str:
    """``path``, and ``-> target`` when a symbolic link (of the file or a folder above it) leads
    elsewhere: the file actually read is the target."""
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return str(path)
    return str(path) if real == Path(path).absolute() else f"{path} -> {real}"


def read_file_bytes(path: Path, *, what: str = "keystore") -> bytes:
    """The file's bytes; a missing file, a directory, a FIFO or device, a huge or an unreadable
    file is KeystoreNotFoundError."""
    path = Path(path)
    check_key_material_file(path, what=what)
    try:
        with path.open("rb") as handle:
            return handle.read(MAX_KEY_MATERIAL_BYTES + 1)
    except PermissionError:
        raise KeystoreNotFoundError(f"the {what} file cannot be read (permission denied): {path}",
                                    file=path) from None
    except OSError as exc:
        raise KeystoreNotFoundError(f"the {what} file cannot be read ({exc.strerror}): {path}", file=path) from None


def load_keystore_file(
    path: Path, *, password: str | None, type: KeystoreType | None = None,
    key_path: Path | None = None,
) -> KeystoreContents:
    """Read a keystore file. ``key_path`` is a separate key file for a PEM identity."""
    data = read_file_bytes(path)
    if key_path is None:
        return read_keystore(data, password=password, type=type, source=str(path))
    found = detect_type(data, source=str(path))
    if found != "pem" or (type is not None and type != "pem"):
        raise KeystoreFormatError(
            f"a separate key file goes with a PEM certificate file, but {path} is {_TYPE_NAMES[found]}",
            file=path,
        )
    key_data = read_file_bytes(key_path, what="private key")
    return read_pem(data, key_data, password=password, source=str(path), key_source=str(key_path))


# --- choosing the identity ----------------------------------------------------------------------


def _alias_list(entries: Sequence[KeystoreEntry]) -> str:
    return ", ".join(f"'{e.alias}'" for e in entries) or "none"


def _choose_entry(contents: KeystoreContents, key_alias: str | None) -> KeystoreEntry:
    where = _where(contents.source)
    keys = contents.private_key_entries()
    if not keys:
        trusted = [e for e in contents.entries if e.kind == "trusted_cert"]
        if trusted:
            named = ""
            if key_alias is not None and any(e.alias.lower() == key_alias.lower() for e in trusted):
                named = f"; key_alias '{key_alias}' is one of them, not a PrivateKeyEntry"
            raise NoPrivateKeyError(
                f"the keystore has no private key entry, only trusted certificates "
                f"(trustedCertEntry aliases: {_alias_list(trusted)}){named}", file=where,
            )
        others = f" (secret key entries: {_alias_list(contents.entries)})" if contents.entries else ""
        raise NoPrivateKeyError(f"the keystore has no private key entry{others}", file=where)
    if contents.type == "pem" and len(keys) == 1:
        return keys[0]  # a PEM identity has one key; an alias means nothing there
    if key_alias is None:
        if len(keys) == 1:
            return keys[0]
        raise KeyAliasError(
            f"the keystore holds {len(keys)} private keys ({_alias_list(keys)}): set key_alias to one of them",
            file=where,
        )
    wanted = key_alias.lower()
    for entry in keys:
        if entry.alias.lower() == wanted:
            return entry
    other = next((e for e in contents.entries if e.alias.lower() == wanted), None)
    if other is not None:
        kind = "a trustedCertEntry" if other.kind == "trusted_cert" else "a secret key entry"
        raise KeyAliasError(
            f"key_alias '{key_alias}' is {kind}, not a private key entry; private key entries: "
            f"{_alias_list(keys)}", file=where,
        )
    import difflib

    close = difflib.get_close_matches(wanted, [e.alias.lower() for e in keys], n=1, cutoff=0.6)
    suggestion = f" (did you mean '{close[0]}'?)" if close else ""
    raise KeyAliasError(
        f"no private key entry with alias '{key_alias}'{suggestion}; private key entries: {_alias_list(keys)}",
        file=where,
    )


def select_identity(
    contents: KeystoreContents, *, key_alias: str | None, key_password: str | None,
    store_password: str | None, chain_certs: Sequence[x509.Certificate] = (),
) -> ClientIdentity:
    """The private key and chain (leaf first) to present. Aliases match case-insensitively, as in
    Java. A key without its own password uses the store password. The chain is completed from the
    store's trusted certificates and ``chain_certs`` (a keystore record's) when the entry's own
    chain stops short of a self-issued one."""
    entry = _choose_entry(contents, key_alias)
    where = _where(contents.source)
    if not entry.certificates:
        raise IncompleteChainError(f"the private key entry '{entry.alias}' has no certificate", file=where)
    holder = signed_certificate_entry(contents, entry.certificates[0])
    if holder is not None:
        raise PlaceholderCertError(placeholder_message(entry.alias, holder, contents), file=where)
    assert entry.decrypt_key is not None
    password = key_password if key_password is not None else store_password
    chain = complete_chain(entry.certificates, [*contents.trusted_certificates(), *chain_certs])
    leaf = chain[0]
    if entry.recover_key is not None:
        pkcs8 = entry.recover_key(password)
        if key_pairs_with(pkcs8, leaf):
            return ClientIdentity(alias=entry.alias, chain=chain, pkcs8=pkcs8)
        # Not paired by OpenSSL: decoding the key below words what is wrong, as for other stores.
    key = entry.decrypt_key(password)
    if public_key_der(key.public_key()) != public_key_der(leaf.public_key()):
        raise KeyMismatchError(
            f"the private key of entry '{entry.alias}' does not belong to its certificate "
            f"({leaf.subject.rfc4514_string()})", file=where,
        )
    return ClientIdentity(alias=entry.alias, chain=chain, key=key)


# --- trust store certs --------------------------------------------------------------------------


def read_trust_certs(
    data: bytes, *, format: str | None, source: str = "<memory>",
) -> tuple[x509.Certificate, ...]:
    """Certificates from a trust store cert: PEM (one or a bundle, or a PKCS#7 block) or DER
    (one certificate, or a PKCS#7 .p7b). ``format=None`` goes by the content."""
    where = _where(source)
    if not data.strip():
        raise TrustCertError(f"the trust store cert {source} is empty", file=where)
    is_pem = _looks_like_pem(data)
    if format is None:
        format = "pem" if is_pem else "der"
    if format == "pem":
        if not is_pem:
            raise TrustCertError(
                f"the trust store cert {source} is set as pem but holds no PEM block"
                + (" (it is binary: set format to der)" if not data[:64].isascii() else ""),
                file=where,
            )
        blocks = pem_blocks(data, source=source, error=TrustCertError)
        certs = load_pem_certificates(blocks, source, error=TrustCertError)
        for block in (b for b in blocks if b.label in ("PKCS7", "CMS")):
            from cryptography.hazmat.primitives.serialization import pkcs7  # pulls in the email package

            try:
                with lenient_decoding():
                    certs += [check_certificate(c) for c in pkcs7.load_pem_pkcs7_certificates(block.text)]
            except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
                raise TrustCertError(f"the PKCS#7 block in {source} cannot be decoded", file=where) from None
        if not certs:
            labels = ", ".join(sorted({b.label for b in blocks})) or "nothing"
            raise TrustCertError(f"the trust store cert {source} holds no certificate (found: {labels})",
                                 file=where)
        return tuple(certs)
    if format != "der":
        raise TrustCertError(f"unknown trust store cert format '{format}' (pem or der)", file=where)
    if is_pem:
        raise TrustCertError(f"the trust store cert {source} is set as der but is PEM text: set format to pem",
                             file=where)
    try:
        return (load_der_certificate(data),)
    except (ValueError, UnsupportedAlgorithm):
        pass
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        with lenient_decoding():
            bundle = tuple(check_certificate(c) for c in pkcs7.load_der_pkcs7_certificates(data))
    except (ValueError, UnsupportedAlgorithm, x509.InvalidVersion):
        bundle = ()
    if bundle:
        return bundle
    raise TrustCertError(
        f"the trust store cert {source} is not a DER certificate ({_describe_unknown(data)})", file=where,
    )
