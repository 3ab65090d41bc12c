"""After a TLS failure, classification may make a diagnostic handshake (blocking, up to 5 s). In
``AsyncRestExecutor`` it runs off the event loop: a partner slow to answer it does not stall the
other requests of the loop."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest

from flowrun._errors import ServerCertUntrustedError
from flowrun._models._steps import RestStep
from flowrun._rest import AsyncRestExecutor
from flowrun.testing import PkiFiles
from tests.transport._support import PASSWORD, make_registry

_STALL_S = 1.5


class _SlowAfterFirst:
    """A TLS server on 127.0.0.1: the first connection gets a real handshake (with a certificate
    the client does not trust); every later one is held, unanswered, for ``_STALL_S`` seconds."""

    def __init__(self, files: PkiFiles) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(files.server_cert_pem, files.server_key_pem, password=PASSWORD)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                raw, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._answer, args=(raw, self.connections == 1), daemon=True).start()

    def _answer(self, raw: socket.socket, first: bool) -> None:
        with raw:
            if not first:
                time.sleep(_STALL_S)
                return
            try:
                with self._context.wrap_socket(raw, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refuses our certificate: that is the point

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def slow_partner(pki_files: PkiFiles) -> Iterator[_SlowAfterFirst]:
    server = _SlowAfterFirst(pki_files)
    yield server
    server.close()


def test_a_slow_diagnostic_handshake_does_not_stall_the_loop(slow_partner: _SlowAfterFirst,
                                                               pki_files: PkiFiles) -> None:
    registry = make_registry(pki_files, f"https://localhost:{slow_partner.port}", trust=[pki_files.other_ca_pem])

    async def scenario() -> tuple[object, float, float]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.create_task(ticker())
        started = time.monotonic()
        async with AsyncRestExecutor(registry) as executor:
            result = await executor.run(RestStep(alias="partner", path="/"))
        elapsed = time.monotonic() - started
        done.set()
        await ticking
        return result, elapsed, max(gaps)

    result, elapsed, longest_gap = asyncio.run(scenario())
    assert isinstance(result.error, ServerCertUntrustedError), result.error  # type: ignore[attr-defined]
    # The diagnostic handshake was made, and waited on the stalled partner...
    assert slow_partner.connections == 2
    assert elapsed >= _STALL_S * 0.9
    # ...while the loop went on ticking.
    assert longest_gap < _STALL_S / 3, longest_gap
