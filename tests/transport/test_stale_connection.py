"""A partner may drop a kept-alive connection just as we reuse it ("Server disconnected without
sending a response"). An idempotent request is then sent once more on a new connection; a POST
is not, since the partner may have acted on it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from flowrun._errors import ConnectionLostError
from flowrun._models._steps import Body, RestStep
from flowrun._rest import RestExecutor
from flowrun.testing import Pki, PkiFiles, make_pki
from tests.transport._support import PASSWORD, Action, Hangup, RawRequest, RawServer, Reply, make_registry
from tests.transport.conftest import server_context


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("stale"), keystore_password=PASSWORD)


class DropsSecondRequestOnce:
    """Answers ``/first``; drops the connection on the first ``/second``, answers later ones."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: RawRequest) -> Action:
        with self._lock:
            self.seen.append(f"{request.method} {request.target}")
            if request.target == "/second" and self.seen.count(f"{request.method} /second") == 1:
                return Hangup()
        return Reply(200, b'{"ok": true}')


def test_idempotent_request_on_a_dropped_keepalive_connection_is_sent_again(pki: Pki, files: PkiFiles,
                                                                            tmp_path: Path) -> None:
    handler = DropsSecondRequestOnce()
    with RawServer(handler, ssl_context=server_context(pki)) as server, \
            RestExecutor(make_registry(files, server.url())) as rest:
        assert rest.run(RestStep(alias="partner", path="/first")).ok
        result = rest.run(RestStep(alias="partner", path="/second"))
    assert result.ok, result.error
    assert result.http_status == 200
    assert handler.seen == ["GET /first", "GET /second", "GET /second"]
    # One attempt as the user counts them: the resend is part of sending, not a retry.
    assert len(result.attempts) == 1


def test_post_on_a_dropped_connection_is_not_sent_again(pki: Pki, files: PkiFiles) -> None:
    handler = DropsSecondRequestOnce()
    with RawServer(handler, ssl_context=server_context(pki)) as server, \
            RestExecutor(make_registry(files, server.url())) as rest:
        assert rest.run(RestStep(alias="partner", path="/first")).ok
        result = rest.run(RestStep(alias="partner", method="POST", path="/second", body=Body("json", {"a": 1})))
    assert isinstance(result.error, ConnectionLostError)
    assert handler.seen == ["GET /first", "POST /second"]


def test_async_executor_sends_again_on_a_dropped_keepalive_connection(pki: Pki, files: PkiFiles) -> None:
    import asyncio

    from flowrun._rest import AsyncRestExecutor

    handler = DropsSecondRequestOnce()

    async def scenario(url: str) -> tuple[bool, bool]:
        async with AsyncRestExecutor(make_registry(files, url)) as rest:
            first = await rest.run(RestStep(alias="partner", path="/first"))
            second = await rest.run(RestStep(alias="partner", path="/second"))
            return first.ok, second.ok

    with RawServer(handler, ssl_context=server_context(pki)) as server:
        assert asyncio.run(scenario(server.url())) == (True, True)
    assert handler.seen == ["GET /first", "GET /second", "GET /second"]


def test_a_fresh_connection_that_drops_is_not_sent_again(pki: Pki, files: PkiFiles) -> None:
    seen: list[str] = []

    def always_drop(request: RawRequest) -> Action:
        seen.append(request.target)
        return Hangup()

    with RawServer(always_drop, ssl_context=server_context(pki)) as server, \
            RestExecutor(make_registry(files, server.url())) as rest:
        result = rest.run(RestStep(alias="partner", path="/x"))
    assert isinstance(result.error, ConnectionLostError)
    assert seen == ["/x"]
