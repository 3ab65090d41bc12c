"""``AsyncRestExecutor`` sends on aiohttp directly when the ``fast-async`` extra is installed
(``flowrun._transport._aio_exchange``), and what reaches the partner and what the step reports are
those of the httpx client path it replaced: every case runs on both (``PATHS``) against the same
real servers and compares."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from flowrun._errors import ResponseTooLargeError
from flowrun._models._aliases import Credential, RetryPolicy
from flowrun._models._results import StepResult
from flowrun._models._secret import SecretRef
from flowrun._models._steps import Body, ResponseSpec, RestStep
from flowrun._registry import Registry
from flowrun._rest import AsyncRestExecutor
from flowrun._transport import _http
from flowrun._transport._aiohttp import AiohttpTransport
from flowrun._transport._auth import build_auth
from flowrun.testing import PartnerServer, Pki, PkiFiles
from tests.hostile._servers import gzip_bomb
from tests.transport._support import RawRequest, RawServer, Reply, make_registry

PARTNER = "partner"
PATHS = ("aiohttp", "httpx-client")


@pytest.fixture
def client_sends(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URL of every request that went through ``httpx.AsyncClient.send`` (the old path)."""
    sent: list[str] = []
    original = httpx.AsyncClient.send

    async def send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        sent.append(str(request.url))
        return await original(self, request, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "send", send)
    return sent


def on_path(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """``httpx-client``: the executor as it was, httpx's client over the same aiohttp transport."""
    assert _http.aiohttp_installed(), "the test extra installs aiohttp"
    if path == "httpx-client":
        monkeypatch.setattr(AsyncRestExecutor, "_native", lambda self, client, auth: None)


def run_steps(registry: Registry, *steps: RestStep) -> list[StepResult]:
    async def main() -> list[StepResult]:
        async with AsyncRestExecutor(registry) as rest:
            return [await rest.run(step) for step in steps]

    return asyncio.run(main())


def summary(result: StepResult) -> dict[str, Any]:
    """What a step reports, without what differs from one run to the next (times, dates)."""
    error = result.error
    return {"status": result.status, "http_status": result.http_status, "body": result.body,
            "outputs": result.outputs, "attempts": [(a.status, a.error and a.error.code) for a in result.attempts],
            "error": (error.code, str(error)) if error is not None else None,
            "client_cert": result.tls.client_cert_sha256 if result.tls is not None else None}


def both_paths(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> tuple[Any, Any]:
    """``run()`` on the aiohttp exchange, then on the httpx client path."""
    native = run()
    with monkeypatch.context() as patch:
        on_path(patch, "httpx-client")
        old = run()
    return native, old


# --- the path taken ----------------------------------------------------------------------------------


def test_the_aiohttp_exchange_is_used_and_httpx_client_is_not(partner: PartnerServer, pki_files: PkiFiles,
                                                                client_sends: list[str]) -> None:
    registry = make_registry(pki_files, partner.url)

    async def main() -> tuple[Any, StepResult]:
        async with AsyncRestExecutor(registry) as rest:
            result = await rest.run(RestStep(alias=PARTNER, path="/accounts/7"))
            return (await rest._route(RestStep(alias=PARTNER))).native, result

    native, result = asyncio.run(main())
    assert isinstance(native, AiohttpTransport)
    assert result.status == "passed" and result.body["account"] == "7", result.error
    assert client_sends == []


@pytest.mark.parametrize(("kind", "native"), [
    ("none", True), ("basic", True), ("bearer", True), ("api_key", True), ("api_key_query", True),
    ("oauth2_client_credentials", True), ("digest", False), ("hmac", False),
])
def test_credentials_that_answer_a_challenge_or_sign_stay_on_httpx(pki_files: PkiFiles, kind: str,
                                                                   native: bool) -> None:
    executor = AsyncRestExecutor(make_registry(pki_files, "https://localhost:1"))
    client = _http.new_async_client(ssl.create_default_context())
    assert (executor._native(client, build_auth(CREDENTIALS[kind]("https://localhost:1"))) is not None) is native


# --- what the partner receives -----------------------------------------------------------------------


def _secret(value: str) -> SecretRef:
    return SecretRef(literal=value)


CREDENTIALS: dict[str, Callable[[str], Credential]] = {
    "none": lambda url: Credential("c", "none"),
    "basic": lambda url: Credential("c", "basic", username="ann", password=_secret("pw-basic-1")),
    "digest": lambda url: Credential("c", "basic", username="ann", password=_secret("pw"), digest=True),
    "bearer": lambda url: Credential("c", "bearer", token=_secret("tok-bearer-1")),
    "api_key": lambda url: Credential("c", "api_key", header="X-API-Key", prefix="Key",
                                      key=_secret("key-header-1")),
    "api_key_query": lambda url: Credential("c", "api_key", query="api key", key=_secret("key/query 1")),
    "oauth2_client_credentials": lambda url: Credential(
        "c", "oauth2_client_credentials", token_url=f"{url}/token", client_id="demo", client_secret=_secret("cs-1")),
    "hmac": lambda url: Credential("c", "hmac", key=_secret("hmac-key")),
}


class _TokenPartner:
    """Issues tokens at /token (tok-1, tok-2, ...) and refuses the first token once with a 401."""

    def __init__(self) -> None:
        self.issued = 0

    def __call__(self, request: RawRequest) -> Reply:
        if request.target == "/token":
            self.issued += 1
            return Reply(200, json.dumps({"access_token": f"tok-{self.issued}", "expires_in": 3600}).encode())
        if request.header("Authorization") == "Bearer tok-1" and request.target.startswith("/refused"):
            return Reply(401, b'{"error":"invalid_token"}')
        return Reply(200, b'{"ok":true}')


WIRE_STEPS = (
    RestStep(alias=PARTNER, path="/items/a%20b", query={"q": "x y", "n": 2}, headers={"X-Trace": "t1"}),
    RestStep(alias=PARTNER, method="POST", path="/items", body=Body("json", {"amount": 5, "note": "é"}),
             headers={"Accept": "application/json", "user-agent": "partner-sdk/2"}),
    RestStep(alias=PARTNER, method="POST", path="/empty"),
    RestStep(alias=PARTNER, method="PUT", path="/text", body=Body("text", "plain words")),
    RestStep(alias=PARTNER, path="/refused", headers={"Authorization": "Bearer from-the-step"}),
)


@pytest.mark.parametrize("kind", [k for k in CREDENTIALS if k not in ("digest", "hmac")])
def test_the_partner_receives_the_same_bytes_on_both_paths(monkeypatch: pytest.MonkeyPatch, tls_server_context: Any,
                                                           pki_files: PkiFiles, kind: str,
                                                           client_sends: list[str]) -> None:
    def run() -> tuple[list[tuple[str, str, tuple[tuple[str, str], ...], bytes]], list[dict[str, Any]], list[str]]:
        before = len(client_sends)
        tokens.issued = 0
        server.requests.clear()
        credential = CREDENTIALS[kind](server.url())
        registry = make_registry(pki_files, server.url(), credentials=[credential], credential="c",
                                 headers={"X-Connection": "c1"})
        results = run_steps(registry, *WIRE_STEPS)
        requests = [(r.method, r.target, r.headers, r.body) for r in server.requests]
        return requests, [summary(result) for result in results], client_sends[before:]

    tokens = _TokenPartner()
    with RawServer(tokens, ssl_context=tls_server_context) as server:
        (native_requests, native_results, native_sends), (old_requests, old_results, old_sends) = both_paths(
            monkeypatch, run)
    assert native_requests == old_requests
    assert native_results == old_results
    assert all(result["status"] == "passed" for result in native_results), native_results
    # httpx's client sent only the token requests on the new path; everything on the old one
    assert all(url.endswith("/token") for url in native_sends)
    assert len(old_sends) == len(WIRE_STEPS) + sum(1 for request in old_requests if request[1] == "/token")
    api = [request for request in native_requests if request[1] != "/token"]
    assert len(api) == len(WIRE_STEPS) + (1 if kind == "oauth2_client_credentials" else 0)
    first_headers = dict((name.lower(), value) for name, value in api[0][2])
    expected = {"basic": ("authorization", "Basic YW5uOnB3LWJhc2ljLTE="),
                "bearer": ("authorization", "Bearer tok-bearer-1"),
                "api_key": ("x-api-key", "Key key-header-1"),
                "oauth2_client_credentials": ("authorization", "Bearer tok-1")}.get(kind)
    if expected is not None:
        assert first_headers[expected[0]] == expected[1]
    if kind == "api_key_query":
        assert api[0][1] == "/items/a%20b?q=x%20y&n=2&api%20key=key%2Fquery%201"
    if kind == "oauth2_client_credentials":
        # the 401 on the first token: a new token, the request sent again
        assert dict(api[-2][2])["Authorization"] == "Bearer tok-1"
        assert dict(api[-1][2])["Authorization"] == "Bearer tok-2"


def test_a_cookie_the_partner_sets_goes_back_on_both_paths(monkeypatch: pytest.MonkeyPatch,
                                                           tls_server_context: Any, pki_files: PkiFiles) -> None:
    def answer(request: RawRequest) -> Reply:
        if request.target == "/login":
            return Reply(200, b"{}", (("Content-Type", "application/json"), ("Set-Cookie", "session=s1; Path=/")))
        return Reply(200, b"{}")

    step, login = RestStep(alias=PARTNER, path="/data"), RestStep(alias=PARTNER, path="/login")
    with RawServer(answer, ssl_context=tls_server_context) as server:
        def run() -> list[str | None]:
            server.requests.clear()
            run_steps(make_registry(pki_files, server.url()), step, login, step, step)
            return [r.header("Cookie") for r in server.requests]

        native, old = both_paths(monkeypatch, run)
    assert native == old == [None, None, "session=s1", "session=s1"]


# --- redirects, caps, retries, TLS --------------------------------------------------------------------


@pytest.fixture
def open_partner(pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(pki, require_client_cert=False) as server:
        yield server


def test_redirects_across_origins_on_both_paths(monkeypatch: pytest.MonkeyPatch, open_partner: PartnerServer,
                                                pki_files: PkiFiles) -> None:
    bearer = Credential("token", "bearer", token=_secret("sekret-token"))
    other = f"https://127.0.0.1:{open_partner.port}/echo"
    steps = (
        RestStep(alias=PARTNER, path="/redirect", query={"to": "/echo", "status": 307}, follow_redirects=True,
                 method="POST", body=Body("json", {"a": 1})),
        RestStep(alias=PARTNER, path="/redirect", query={"to": other, "status": 307}, follow_redirects=True,
                 method="POST", body=Body("json", {"a": 1}), headers={"Cookie": "s=1", "X-Trace": "t"}),
        RestStep(alias=PARTNER, path="/redirect", query={"to": other}, follow_redirects=True, max_redirects=0),
    )

    def run() -> tuple[list[Any], list[dict[str, Any]]]:
        before = len(open_partner.requests)
        registry = make_registry(pki_files, open_partner.url, credentials=[bearer], credential="token")
        results = run_steps(registry, *steps)
        seen = [(r.method, r.path, r.header("Authorization"), r.header("Cookie"), r.body, r.client_cert_sha256)
                for r in open_partner.requests[before:]]
        return seen, [summary(result) for result in results]

    native, old = both_paths(monkeypatch, run)
    assert native == old
    seen, results = native
    same_hop, cross_hop = seen[1], seen[3]
    assert same_hop[2] == "Bearer sekret-token" and same_hop[4] == b'{"a":1}' and same_hop[5] is not None
    assert cross_hop[:5] == ("POST", "/echo", None, None, b"") and cross_hop[5] is None
    assert results[1]["client_cert"] is None
    assert results[2]["error"][0] == "http.redirect_refused"


def test_the_body_cap_and_a_gzip_bomb_on_both_paths(monkeypatch: pytest.MonkeyPatch, tls_server_context: Any,
                                                    pki_files: PkiFiles) -> None:
    bomb = gzip_bomb(64 * 1024 * 1024)

    def handler(request: RawRequest) -> Reply:
        if request.target == "/bomb":
            return Reply(200, bomb, (("Content-Type", "application/json"), ("Content-Encoding", "gzip")))
        if request.target == "/layers":
            return Reply(200, b"{}", (("Content-Encoding", "gzip, gzip, gzip, gzip, gzip"),))
        return Reply(200, b"x" * 5000, (("Content-Type", "text/plain"),))

    steps = (RestStep(alias=PARTNER, path="/bomb", response=ResponseSpec(max_bytes=1024 * 1024)),
             RestStep(alias=PARTNER, path="/big", response=ResponseSpec(max_bytes=4096)),
             RestStep(alias=PARTNER, path="/layers"))

    def run() -> list[dict[str, Any]]:
        return [summary(result) for result in run_steps(make_registry(pki_files, server.url()), *steps)]

    with RawServer(handler, ssl_context=tls_server_context) as server:
        native, old = both_paths(monkeypatch, run)
    assert native == old
    assert native[0]["error"][0] == native[1]["error"][0] == ResponseTooLargeError.code
    assert "announces 5000 bytes" in native[1]["error"][1]
    assert "Content-Encoding lists 5 compressions" in native[2]["error"][1]


def test_429_with_retry_after_is_retried_on_both_paths(monkeypatch: pytest.MonkeyPatch, partner: PartnerServer,
                                                       pki_files: PkiFiles) -> None:
    policy = RetryPolicy(strategy="retry_after", count=2, interval_s=0.01, jitter=False)
    runs = iter(range(2))

    def run() -> dict[str, Any]:
        step = RestStep(alias=PARTNER, path=f"/retry-after/run{next(runs)}", query={"fail": 1, "after": 0},
                        idempotency_key=True)
        (result,) = run_steps(make_registry(pki_files, partner.url, retry=policy), step)
        keys = [r.header("Idempotency-Key") for r in partner.requests[-2:]]
        return {**summary(result), "same_key": keys[0] == keys[1] == result.idempotency_key}

    native, old = both_paths(monkeypatch, run)
    assert native == old
    assert native["attempts"] == [(429, None), (200, None)] and native["same_key"] and native["status"] == "passed"


def test_a_refused_client_certificate_is_diagnosed_alike(monkeypatch: pytest.MonkeyPatch, partner: PartnerServer,
                                                         pki_files: PkiFiles) -> None:
    # With TLS 1.3 the partner's refusal races our request: the alert is read, or the write meets a
    # closed connection (then the partner is asked again why). Either way the same diagnosis, never
    # "connection lost"; runs are repeated so that both orders of the race are met.
    def run() -> list[tuple[str | None, int]]:
        anonymous = make_registry(pki_files, partner.url, mutual=False)
        untrusted = make_registry(pki_files, partner.url, trust=[pki_files.other_ca_pem])
        step = RestStep(alias=PARTNER, path="/accounts/1")
        results = [*run_steps(anonymous, *[step] * 6), *run_steps(untrusted, step)]
        return [(result.error.code if result.error else None, len(result.attempts)) for result in results]

    native, old = both_paths(monkeypatch, run)
    assert native == old == [("tls.client_cert_not_sent", 1)] * 6 + [("tls.server_untrusted", 1)]



def test_the_request_log_line_is_the_same_and_masks_a_query_key(monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture,
                                                                 partner: PartnerServer, pki_files: PkiFiles) -> None:
    key = Credential("c", "api_key", query="api_key", key=_secret("demo-api-key"))
    steps = (RestStep(alias=PARTNER, path="/accounts/3"), RestStep(alias=PARTNER, path="/status/404"))

    def run() -> list[str]:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="httpx"):
            results = run_steps(make_registry(pki_files, partner.url, credentials=[key], credential="c"), *steps)
        assert results[0].status == "passed", results[0].error
        return [record.getMessage() for record in caplog.records if record.name == "httpx"]

    native, old = both_paths(monkeypatch, run)
    assert native == old
    assert native == [f'HTTP Request: GET {partner.url}/accounts/3?api_key=*** "HTTP/1.1 200 OK"',
                      f'HTTP Request: GET {partner.url}/status/404?api_key=*** "HTTP/1.1 404 Not Found"']
