"""What a keystore file is, from its content alone: JKS, JCEKS, PKCS12 or PEM, and whether it holds a
private key anyone who reads the file can use. Nothing here decodes a certificate or a key, so a
run's start-up can ask without importing ``cryptography`` (only the message for an unknown DER
structure decodes one, to say whether it is a lone certificate).
"""

from __future__ import annotations

import base64
import binascii
import re

from flowrun._errors import KeystoreFormatError
from flowrun._tls import _der
from flowrun._tls._jks import JCEKS_MAGIC, JKS_MAGIC
from flowrun._tls._model import KeystoreType

__all__ = ["describe_unknown", "detect_type", "detect_type_quietly", "holds_plaintext_key", "looks_like_pem",
           "source_file"]

_BOM = b"\xef\xbb\xbf"


def source_file(source: str) -> str | None:
    """The file an error names: none for content given in memory."""
    return None if source == "<memory>" else source


def is_pkcs12(data: bytes) -> bool:
    """A DER SEQUENCE whose first element is INTEGER 3 (a PFX), even if the rest is cut off."""
    if len(data) < 5 or data[0] != _der.SEQUENCE:
        return False
    first = data[1]
    offset = 2 if first < 0x80 else 2 + (first & 0x7F)
    return data[offset : offset + 3] == b"\x02\x01\x03"


_PEM_BEGIN_LINE = re.compile(rb"(?:^|\n)[ \t]*-----BEGIN [A-Z0-9 ]+-----")


def looks_like_pem(data: bytes) -> bool:
    """A BEGIN line anywhere: `openssl x509 -text` puts the decoded certificate first, `openssl
    pkcs12 -nodes` "Bag Attributes" with friendly names in any encoding."""
    return _PEM_BEGIN_LINE.search(data.removeprefix(_BOM)) is not None


def describe_unknown(data: bytes) -> str:
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
    from cryptography.exceptions import UnsupportedAlgorithm

    from flowrun._tls._chain import load_der_certificate

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
    if is_pkcs12(head):
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
        raise KeystoreFormatError("the file is empty", file=source_file(source))
    bouncy = _bouncy_castle_type(data)
    if bouncy is not None:
        raise KeystoreFormatError(
            f"the file is a Bouncy Castle {bouncy} keystore (Android and some Java stacks use them), which flowrun "
            "does not read", hint=_BC_CONVERT.format(type=bouncy), file=source_file(source))
    if data.startswith(JKS_MAGIC):
        return "jks"
    if data.startswith(JCEKS_MAGIC):
        return "jceks"
    if is_pkcs12(data):
        return "pkcs12"
    if looks_like_pem(data):
        return "pem"
    raise KeystoreFormatError(describe_unknown(data), file=source_file(source))


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
