"""A response body as it arrives, Content-Encoding decoded in bounded slices.

httpx decodes each network chunk in one call, so 64 KiB of gzip can turn into 64 MiB in memory
before a byte cap sees any of it (a gzip bomb). Here the raw bytes are read (``iter_raw``) and
inflated ``SLICE`` bytes at a time: a cap on the decoded size is checked before more is made,
and a bomb costs no more memory than the cap.

flowrun asks for ``gzip, deflate`` only (``ACCEPT_ENCODING``, sent by every client) and decodes
those (``x-gzip`` too); like httpx, an encoding it does not know is passed through undecoded.
A body that does not inflate is an ``httpx.DecodingError`` (classified as a protocol error), and
so is a Content-Encoding that lists more than ``MAX_ENCODINGS`` compressions: no real server
compresses twice, and each layer costs a decompressor and a level of nesting.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

ACCEPT_ENCODING = "gzip, deflate"
SLICE = 64 * 1024
MAX_ENCODINGS = 4
_GZIP = frozenset({"gzip", "x-gzip"})


class _Inflater:
    """One zlib stream (gzip, zlib-wrapped or raw deflate) that never makes more than SLICE bytes at once."""

    def __init__(self, name: str) -> None:
        self._name = name
        gzip = name in _GZIP
        # deflate is zlib-wrapped by the standard, raw by many servers: its 2-byte header decides.
        # Until then the bytes fed are kept, to be fed again to a raw inflater.
        self._undecided = not gzip
        self._head = b""
        self._zlib: Any = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)

    def feed(self, data: bytes) -> Iterator[bytes]:
        pending = data
        while True:
            try:
                out = self._zlib.decompress(pending, SLICE)
            except zlib.error as exc:
                if self._undecided:  # not zlib-wrapped: nothing came out yet, start again raw
                    self._undecided = False
                    self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                    pending, self._head = self._head + data, b""
                    continue
                raise httpx.DecodingError(f"Content-Encoding {self._name}: {exc}") from None
            if self._undecided:
                self._head += pending
                if len(self._head) >= 2:
                    self._undecided, self._head = False, b""
            if out:
                yield out
            pending = self._zlib.unconsumed_tail
            # A full slice may leave output inside zlib even when all input was taken.
            if self._zlib.eof or (not pending and len(out) < SLICE):
                return

    def flush(self) -> Iterator[bytes]:
        yield from self.feed(b"")


class BodyDecoder:
    """Raw body bytes in, decoded slices out (never more than SLICE bytes each)."""

    def __init__(self, content_encoding: str | None) -> None:
        names = [part.strip().lower() for part in (content_encoding or "").split(",")]
        stages = [name for name in names if name in _GZIP or name == "deflate"]
        if len(stages) > MAX_ENCODINGS:
            raise httpx.DecodingError(f"Content-Encoding lists {len(stages)} compressions, more than the "
                                      f"{MAX_ENCODINGS} flowrun undoes")
        # Encodings are listed in the order they were applied: undo them last to first.
        self._stages = [_Inflater(name) for name in reversed(stages)]

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._stages:
            if data:
                yield data
            return
        yield from self._through(0, data)

    def flush(self) -> Iterator[bytes]:
        for index, stage in enumerate(self._stages):
            for piece in stage.flush():
                yield from self._through(index + 1, piece)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            yield data
            return
        for piece in self._stages[index].feed(data):
            yield from self._through(index + 1, piece)


def decoded(response: httpx.Response) -> Iterator[bytes]:
    """The body of a streamed response, decoded; ``iter_bytes`` without its unbounded inflation."""
    decoder = BodyDecoder(response.headers.get("Content-Encoding"))
    for raw in response.iter_raw():
        yield from decoder.feed(raw)
    yield from decoder.flush()


async def adecoded(response: httpx.Response) -> AsyncIterator[bytes]:
    async for piece in adecode(response.aiter_raw(), response.headers.get("Content-Encoding")):
        yield piece


async def adecode(raw: AsyncIterator[bytes], content_encoding: str | None) -> AsyncIterator[bytes]:
    """Raw body chunks (from any async client), decoded as ``decoded`` decodes them."""
    decoder = BodyDecoder(content_encoding)
    async for chunk in raw:
        for piece in decoder.feed(chunk):
            yield piece
    for piece in decoder.flush():
        yield piece
