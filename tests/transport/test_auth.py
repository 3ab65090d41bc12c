"""Credentials on real requests: basic, bearer, API keys, OAuth2 client credentials over mutual TLS."""

from __future__ import annotations

import asyncio
import base64
from urllib.parse import parse_qsl

import pytest

from flowrun._errors import AuthenticationError, ClientCertNotSentError, SecretUnavailableError
from flowrun._models._aliases import Credential
from flowrun._models._secret import SecretRef
from flowrun._models._steps import Body, RestStep
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun.testing import PartnerServer, Pki, PkiFiles
from tests.transport._support import make_registry


def oauth(partner: PartnerServer, *, secret: str = "demo-secret", client_auth: str = "basic",
          margin: float = 30.0, scope: str | None = None) -> Credential:
    return Credential("oauth", "oauth2_client_credentials", token_url=f"{partner.url}/oauth/token",
                      client_id="demo-client", client_secret=SecretRef(literal=secret), client_auth=client_auth,
                      scope=scope, refresh_margin_s=margin)  # type: ignore[arg-type]


def token_requests(partner: PartnerServer) -> list:
    return [r for r in partner.requests if r.path == "/oauth/token"]


def test_oauth2_token_fetched_once_for_many_calls(partner: PartnerServer, pki_files: PkiFiles, pki: Pki) -> None:
    registry = make_registry(pki_files, partner.url, credentials=[oauth(partner)], credential="oauth")
    with RestExecutor(registry) as rest:
        results = [rest.run(RestStep(alias="partner", path=f"/protected/accounts/{n}")) for n in range(1, 6)]
    assert all(r.status == "passed" for r in results), [r.error for r in results]
    assert results[0].body["account"] == "1"
    assert partner.tokens_issued == 1
    (token_request,) = token_requests(partner)
    # RFC 8705 style: the token request went through the same mutual TLS context.
    assert token_request.client_cert_sha256 == pki.client.sha256
    assert token_request.header("Authorization") == "Basic " + base64.b64encode(b"demo-client:demo-secret").decode()
    assert dict(parse_qsl(token_request.body.decode())) == {"grant_type": "client_credentials"}
    assert partner.handshakes == 1


def test_oauth2_client_auth_in_body_with_scope(partner: PartnerServer, pki_files: PkiFiles) -> None:
    credential = oauth(partner, client_auth="body", scope="accounts:read")
    with RestExecutor(make_registry(pki_files, partner.url, credentials=[credential], credential="oauth")) as rest:
        assert rest.run(RestStep(alias="partner", path="/protected/x")).status == "passed"
    (token_request,) = token_requests(partner)
    assert token_request.header("Authorization") is None
    assert dict(parse_qsl(token_request.body.decode())) == {
        "grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret",
        "scope": "accounts:read"}


def test_oauth2_token_is_refreshed_when_it_expires(partner: PartnerServer, pki_files: PkiFiles) -> None:
    # A margin as long as the lifetime: every token is due for refresh as soon as it arrives.
    credential = oauth(partner, margin=3600)
    with RestExecutor(make_registry(pki_files, partner.url, credentials=[credential], credential="oauth")) as rest:
        results = [rest.run(RestStep(alias="partner", path="/protected/x")) for _ in range(3)]
    assert all(r.status == "passed" for r in results)
    assert partner.tokens_issued == 3


def test_oauth2_401_refreshes_the_token_once(pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki) as first:
        port = first.port
        credential = oauth(first)
        registry = make_registry(pki_files, first.url, credentials=[credential], credential="oauth")
        rest = RestExecutor(registry)
        assert rest.run(RestStep(alias="partner", path="/protected/a")).status == "passed"
    try:
        # A restarted partner on the same port knows no token: our cached one is answered with 401.
        with PartnerServer(pki, port=port) as second:
            result = rest.run(RestStep(alias="partner", method="POST", path="/protected/b",
                                       body=Body("json", {"n": 1})))
            assert result.status == "passed", result.error
            assert [r.path for r in second.requests] == ["/protected/b", "/oauth/token", "/protected/b"]
            assert second.requests[-1].body == b'{"n":1}'
            assert second.tokens_issued == 1
            assert len(result.attempts) == 1
    finally:
        rest.close()


def test_oauth2_wrong_secret_is_an_authentication_error_without_the_secret(partner: PartnerServer,
                                                                           pki_files: PkiFiles) -> None:
    credential = oauth(partner, secret="not-the-secret-42")
    with RestExecutor(make_registry(pki_files, partner.url, credentials=[credential], credential="oauth")) as rest:
        result = rest.run(RestStep(alias="partner", path="/protected/x"))
    assert isinstance(result.error, AuthenticationError)
    message = str(result.error)
    assert "invalid_client" in message and "401" in message and "/oauth/token" in message
    assert "not-the-secret-42" not in message and "not-the-secret-42" not in repr(result)
    assert len(result.attempts) == 1
    assert [r.path for r in partner.requests] == ["/oauth/token"]


def test_oauth2_token_endpoint_tls_failure_is_classified(pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki) as partner:
        credential = oauth(partner)
        registry = make_registry(pki_files, partner.url, mutual=False, credentials=[credential], credential="oauth")
        with RestExecutor(registry) as rest:
            result = rest.run(RestStep(alias="partner", path="/protected/x"))
        port = partner.port
    assert isinstance(result.error, ClientCertNotSentError)
    assert f"localhost:{port}" in str(result.error)
    assert len(result.attempts) == 1


def test_oauth2_async_fetches_one_token_for_concurrent_calls(partner: PartnerServer, pki_files: PkiFiles,
                                                             pki: Pki) -> None:
    async def main() -> list:
        registry = make_registry(pki_files, partner.url, credentials=[oauth(partner)], credential="oauth")
        async with AsyncRestExecutor(registry) as rest:
            return await asyncio.gather(*(rest.run(RestStep(alias="partner", path=f"/protected/{n}"))
                                          for n in range(10)))

    results = asyncio.run(main())
    assert all(r.status == "passed" for r in results), [r.error for r in results]
    assert partner.tokens_issued == 1
    assert token_requests(partner)[0].client_cert_sha256 == pki.client.sha256


def test_api_key_header_opens_the_secure_route(partner: PartnerServer, pki_files: PkiFiles) -> None:
    good = Credential("key", "api_key", header="X-API-Key", key=SecretRef(literal="demo-api-key"))
    bad = Credential("key", "api_key", header="X-API-Key", key=SecretRef(literal="wrong"))
    results = []
    for credential in (good, bad):
        with RestExecutor(make_registry(pki_files, partner.url, credentials=[credential], credential="key")) as rest:
            results.append(rest.run(RestStep(alias="partner", path="/secure/accounts/7")))
    assert results[0].status == "passed" and results[0].body["account"] == "7"
    assert results[1].http_status == 401


def test_api_key_with_prefix_and_in_query(partner: PartnerServer, pki_files: PkiFiles) -> None:
    header = Credential("h", "api_key", header="Authorization", prefix="ApiKey", key=SecretRef(literal="k1"))
    query = Credential("q", "api_key", query="api_key", key=SecretRef(literal="k 2&"))
    registry = make_registry(pki_files, partner.url, credentials=[header], credential="h")
    with RestExecutor(registry) as rest:
        echoed = rest.run(RestStep(alias="partner", path="/echo")).body
    assert ["Authorization", "ApiKey k1"] in echoed["headers"]
    registry = make_registry(pki_files, partner.url, credentials=[query], credential="q")
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias="partner", path="/echo", query=[("a", "1")]))
    assert result.body["query"] == [["a", "1"], ["api_key", "k 2&"]]
    assert result.request is not None and "k 2" not in result.request.url and "k%202" not in result.request.url


def test_basic_and_bearer(partner: PartnerServer, pki_files: PkiFiles) -> None:
    basic = Credential("b", "basic", username="svc user", password=SecretRef(literal="p:w"))
    bearer = Credential("t", "bearer", token=SecretRef(literal="tok"))
    seen = []
    for credential in (basic, bearer):
        registry = make_registry(pki_files, partner.url, credentials=[credential], credential=credential.name)
        with RestExecutor(registry) as rest:
            seen.append(dict(rest.run(RestStep(alias="partner", path="/echo")).body["headers"])["Authorization"])
    assert seen == ["Basic " + base64.b64encode(b"svc user:p:w").decode(), "Bearer tok"]


def test_secret_is_read_when_the_request_is_sent(partner: PartnerServer, pki_files: PkiFiles, tmp_path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    secret_file = tmp_path / "token"
    secret_file.write_text("first\n")
    credential = Credential("t", "bearer", token=SecretRef(file=secret_file))
    registry = make_registry(pki_files, partner.url, credentials=[credential], credential="t")
    with RestExecutor(registry) as rest:
        first = dict(rest.run(RestStep(alias="partner", path="/echo")).body["headers"])["Authorization"]
        secret_file.write_text("rotated\n")
        second = dict(rest.run(RestStep(alias="partner", path="/echo")).body["headers"])["Authorization"]
        secret_file.unlink()
        missing = rest.run(RestStep(alias="partner", path="/echo"))
    assert (first, second) == ("Bearer first", "Bearer rotated")
    assert isinstance(missing.error, SecretUnavailableError)
    assert len(partner.requests) == 2
