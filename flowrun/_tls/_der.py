"""A small, strict-enough DER/BER reader and writer for the few structures keystores use.

Certificates and keys are left to ``cryptography``; this only walks containers (PKCS#12
SafeContents, EncryptedPrivateKeyInfo) whose fields ``cryptography`` does not expose.
Every malformation raises ``DerError``; callers turn it into a user-facing error.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from flowrun._models._record import ValueRecord

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
BMP_STRING = 0x1E
CONTEXT_0 = 0xA0

_MAX_DEPTH = 32


class DerError(ValueError):
    """The bytes are not the expected DER structure."""


@attrs.frozen(eq=False, repr=False)
class Tlv(ValueRecord):
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag & 0x20)

    def children(self) -> list[Tlv]:
        if not self.constructed:
            raise DerError(f"tag 0x{self.tag:02x} is not a constructed type")
        return list(iter_tlvs(self.value))

    def expect(self, tag: int) -> Tlv:
        if self.tag != tag:
            raise DerError(f"expected tag 0x{tag:02x}, found 0x{self.tag:02x}")
        return self


def _read_header(data: bytes, pos: int) -> tuple[int, int, int | None]:
    """Return (tag, header length, content length or None for BER indefinite length)."""
    if pos + 2 > len(data):
        raise DerError("truncated header")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-byte tags are not used by keystores")
    first = data[pos + 1]
    if first < 0x80:
        return tag, 2, first
    count = first & 0x7F
    if count == 0:
        if not tag & 0x20:
            raise DerError("indefinite length on a primitive type")
        return tag, 2, None
    if count > 4 or pos + 2 + count > len(data):
        raise DerError("bad length")
    return tag, 2 + count, int.from_bytes(data[pos + 2 : pos + 2 + count], "big")


def _read_one(data: bytes, pos: int, depth: int) -> tuple[Tlv, int]:
    if depth > _MAX_DEPTH:
        raise DerError("nesting too deep")
    tag, header, length = _read_header(data, pos)
    start = pos + header
    if length is not None:
        end = start + length
        if end > len(data):
            raise DerError("content runs past the end of the data")
        value = data[start:end]
        if tag == 0x24:  # BER constructed OCTET STRING: the value is its segments joined.
            value = b"".join(part.expect(OCTET_STRING).value for part in iter_tlvs(value, depth + 1))
            tag = OCTET_STRING
        return Tlv(tag, value), end
    # BER indefinite length: children until the end-of-contents marker 00 00.
    parts: list[Tlv] = []
    cursor = start
    while True:
        if cursor + 2 > len(data):
            raise DerError("missing end-of-contents")
        if data[cursor] == 0 and data[cursor + 1] == 0:
            cursor += 2
            break
        child, cursor = _read_one(data, cursor, depth + 1)
        parts.append(child)
    if tag == 0x24:
        return Tlv(OCTET_STRING, b"".join(p.expect(OCTET_STRING).value for p in parts)), cursor
    # Re-encode the children definitely so later walks see plain DER.
    return Tlv(tag, b"".join(encode(p.tag, p.value) for p in parts)), cursor


def iter_tlvs(data: bytes, depth: int = 0) -> Iterator[Tlv]:
    pos = 0
    while pos < len(data):
        tlv, pos = _read_one(data, pos, depth)
        yield tlv


def parse(data: bytes, *, allow_trailing: bool = False) -> Tlv:
    """The single TLV that ``data`` holds."""
    tlv, end = _read_one(data, 0, 0)
    if end != len(data) and not allow_trailing:
        raise DerError(f"{len(data) - end} bytes after the end of the structure")
    return tlv


def read_oid(tlv: Tlv) -> str:
    tlv.expect(OID)
    raw = tlv.value
    if not raw or raw[-1] & 0x80:
        raise DerError("bad object identifier")
    arcs: list[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def read_int(tlv: Tlv) -> int:
    tlv.expect(INTEGER)
    if not tlv.value:
        raise DerError("empty integer")
    return int.from_bytes(tlv.value, "big", signed=True)


def encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def encode(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(value)) + value


def encode_oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body.extend(reversed(chunk))
    return encode(OID, bytes(body))


def sequence(*parts: bytes) -> bytes:
    return encode(SEQUENCE, b"".join(parts))
