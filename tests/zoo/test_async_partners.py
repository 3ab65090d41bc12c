"""Every zoo partner, every case, TLS 1.3 and TLS 1.2, through ``AsyncRestExecutor`` on both of its
transports (aiohttp, the ``fast-async`` extra; httpx's own when it is not installed): the same error
code as ``flowrun run`` reports (``test_partners.EXPECTED``), the certificate named, nginx's page quoted,
and no certificate refusal retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from flowrun import AsyncRestExecutor, Registry, RestStep, StepResult
from flowrun._transport import _http
from tests.zoo._servers import VERSIONS
from tests.zoo._setup import CASES, WRONG_HOST, ClientStores, write_case
from tests.zoo.conftest import Zoo
from tests.zoo.test_partners import NGINX_WORDS, PARTNERS, expected

pytestmark = pytest.mark.usefixtures("secrets_env", "fresh_tls_cache")

TRANSPORTS = ("aiohttp", "httpx")


def use_transport(monkeypatch: pytest.MonkeyPatch, transport: str) -> None:
    if transport == "httpx":
        monkeypatch.setattr(_http, "aiohttp_installed", lambda: False)
    else:
        assert _http.aiohttp_installed(), "the test extra installs aiohttp"


def run_async(aliases: Path, connect_to: dict[tuple[str, int], tuple[str, int]]) -> tuple[StepResult, str]:
    async def call() -> tuple[StepResult, str]:
        async with AsyncRestExecutor(Registry.load(aliases, connect_to=connect_to)) as rest:
            route = await rest._route(RestStep(alias="partner", path="/ping"))
            transport = type(route.client._transport).__name__
            return await rest.run(RestStep(alias="partner", path="/ping", retry_policy=None)), transport

    return asyncio.run(call())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("partner_name", PARTNERS)
def test_the_async_executor_diagnoses_like_the_cli(zoo: Zoo, client_stores: ClientStores, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, partner_name: str, case: str,
                                                   version: str, transport: str) -> None:
    use_transport(monkeypatch, transport)
    partner = zoo.partner(partner_name)
    setup = write_case(tmp_path, case, partner.ports, version, client_stores)
    if not setup.mutual:
        monkeypatch.setattr("flowrun._tls._context.system_trust_locations",
                            lambda: (str(client_stores.server_root), None))
    connect_to = {}
    if setup.connect_to:
        port = partner.ports[version]
        connect_to = {(WRONG_HOST, port): ("127.0.0.1", port)}
    result, used = run_async(setup.aliases, connect_to)
    assert used == ("AiohttpTransport" if transport == "aiohttp" else "AsyncHTTPTransport")
    want = expected(partner_name, case)
    context = f"{partner_name} {case} TLS {version} over {used}: {result.error!r}\n{partner.log_tail()}"
    if want is None:
        assert (result.status, result.http_status) == ("passed", 200), context
        assert result.tls is not None and result.tls.version == f"TLSv{version}", context
        return
    assert result.error is not None and result.error.code == want, context
    assert len(result.attempts) == 1, context
    message = str(result.error)
    assert "alias 'partner'" in message, context
    word = NGINX_WORDS.get(partner_name, {}).get(case)
    if word is not None:
        assert word in message, context
    if case == "client_ca_untrusted":
        assert "CN=flowrun-demo-client" in message, context
    elif case == "client_cert_expired":
        assert "CN=zoo-expired" in message and "expired" in message, context
    elif case == "wrong_host":
        assert WRONG_HOST in message and "--connect-to" in message, context
    elif case == "version_mismatch":
        other = next(v for v in VERSIONS if v != version)
        assert f"refuses TLS {version}" in message and f"accepts TLS {other}" in message, context
