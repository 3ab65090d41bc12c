"""OAuth2 private_key_jwt, JWT bearer and password grants against a token endpoint that verifies
them, over mutual TLS, then the API called with the issued token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import attrs
import jwt
import pytest

from flowrun._errors import AuthenticationError, SchemaError
from flowrun._models._aliases import Credential, Keystore
from flowrun._models._secret import SecretRef
from flowrun._models._steps import RestStep
from flowrun._registry import Registry
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun.testing import Pki, PkiFiles, make_pki
from tests.transport import _auth_partner as p
from tests.transport._support import PASSWORD, RawServer, make_registry
from tests.transport.conftest import server_context


@pytest.fixture
def partner(pki: Pki) -> Iterator[tuple[p.AuthPartner, RawServer]]:
    auth = p.AuthPartner(pki.client.certificate, client_cert_sha256=pki.client.sha256)
    with RawServer(auth, ssl_context=server_context(pki)) as server:
        auth.port = server.port
        yield auth, server


def private_key_jwt(auth: p.AuthPartner, **fields: object) -> Credential:
    return Credential("jwt", "oauth2_private_key_jwt", token_url=auth.token_url, client_id=p.CLIENT_ID,
                      **fields)  # type: ignore[arg-type]


def token_forms(server: RawServer) -> list[dict[str, str]]:
    return [dict(parse_qsl(r.body.decode())) for r in server.requests if r.target == "/token"]


def test_private_key_jwt_over_mtls_then_the_api(partner: tuple[p.AuthPartner, RawServer], pki: Pki,
                                                pki_files: PkiFiles) -> None:
    auth, server = partner
    registry = make_registry(pki_files, server.url(), credentials=[private_key_jwt(auth, scope="accounts")],
                             credential="jwt")
    with RestExecutor(registry) as rest:
        results = [rest.run(RestStep(alias="partner", path=f"/api/accounts/{n}")) for n in range(3)]
    assert [r.status for r in results] == ["passed"] * 3, [r.error for r in results]
    assert auth.verdicts[0] == ("/token", f"issued to client {p.CLIENT_ID}")
    assert [v for _, v in auth.verdicts[1:]] == ["ok"] * 3  # the token is cached
    (form,) = token_forms(server)
    assert form["scope"] == "accounts" and "client_secret" not in form
    token_request = next(r for r in server.requests if r.target == "/token")
    assert token_request.client_cert_sha256 == pki.client.sha256
    assert token_request.header("Authorization") is None
    # The default kid is the certificate's x5t#S256; the EC P-256 key signs ES256.
    assert auth.assertion_headers == [{"alg": "ES256", "kid": p.thumbprint(pki.client.certificate), "typ": "JWT"}]


def test_private_key_jwt_rsa_key_with_configured_algorithm_and_kid(tmp_path: Path) -> None:
    pki = make_pki(key_type="rsa")
    files = pki.write(tmp_path, keystore_password=PASSWORD)
    auth = p.AuthPartner(pki.client.certificate, client_cert_sha256=pki.client.sha256, algorithms=("PS256",),
                         kid="partner-key-1")
    with RawServer(auth, ssl_context=server_context(pki)) as server:
        auth.port = server.port
        credential = private_key_jwt(auth, algorithm="PS256", kid="partner-key-1")
        with RestExecutor(make_registry(files, server.url(), credentials=[credential], credential="jwt")) as rest:
            result = rest.run(RestStep(alias="partner", path="/api/x"))
    assert result.status == "passed", result.error
    assert auth.assertion_headers[0]["alg"] == "PS256"


def test_private_key_jwt_signed_with_another_key_is_refused_with_the_endpoint_error(
        partner: tuple[p.AuthPartner, RawServer], pki: Pki, pki_files: PkiFiles, tmp_path: Path) -> None:
    auth, server = partner
    other = make_pki().write(tmp_path, keystore_password=PASSWORD)
    # The kid the partner registered, the signature by another key: the signature check refuses it.
    credential = private_key_jwt(auth, keystore="other", kid=p.thumbprint(pki.client.certificate))
    records = make_registry(pki_files, server.url(), credentials=[private_key_jwt(auth)], credential="jwt").records
    keystores = {**records.keystores, "other": Keystore("other", other.client.pkcs12, type="pkcs12",
                                                        password=SecretRef(literal=PASSWORD))}
    registry = Registry(attrs.evolve(records, keystores=keystores, credentials={"jwt": credential}))
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias="partner", path="/api/x"))
    assert result.status == "failed"
    assert isinstance(result.error, AuthenticationError)
    assert "answered HTTP 400: invalid_grant" in result.error.message
    assert "kid" in (result.error.hint or "")
    assert auth.verdicts[0][1].startswith("jwt: InvalidSignatureError")


def test_jwt_bearer_grant_signed_assertion(partner: tuple[p.AuthPartner, RawServer], pki: Pki,
                                           pki_files: PkiFiles) -> None:
    auth, server = partner
    credential = Credential("bearer-grant", "oauth2_jwt_bearer", token_url=auth.token_url, issuer=p.ISSUER,
                            subject=p.SUBJECT, keystore="client")
    registry = make_registry(pki_files, server.url(), credentials=[credential], credential="bearer-grant")
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias="partner", path="/api/me"))
    assert result.status == "passed", result.error
    assert [v for _, v in auth.verdicts] == [f"issued to subject {p.SUBJECT}", "ok"]
    (form,) = token_forms(server)
    assert set(form) == {"grant_type", "assertion"}
    claims = jwt.decode(form["assertion"], pki.client.certificate.public_key(),  # type: ignore[arg-type]
                        algorithms=["ES256"], audience=auth.token_url)
    assert claims["exp"] - claims["iat"] == 60


def test_jwt_bearer_grant_given_assertion_is_a_secret(partner: tuple[p.AuthPartner, RawServer],
                                                      pki_files: PkiFiles) -> None:
    auth, server = partner
    auth.given_assertion = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.given-by-the-partner"
    credential = Credential("given", "oauth2_jwt_bearer", token_url=auth.token_url,
                            assertion=SecretRef(literal=auth.given_assertion))
    registry = make_registry(pki_files, server.url(), credentials=[credential], credential="given")
    with RestExecutor(registry) as rest:
        result = rest.run(RestStep(alias="partner", path="/api/me"))
        assert result.status == "passed", result.error
        assert auth.given_assertion not in rest.secrets.mask(f"sent {auth.given_assertion}")
        assert all(token not in rest.secrets.mask(token) for token in auth.tokens())


def test_password_grant_async(partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles) -> None:
    import asyncio

    auth, server = partner
    credential = Credential("pw", "oauth2_password", token_url=auth.token_url, client_id=p.CLIENT_ID,
                            client_secret=SecretRef(literal=p.CLIENT_SECRET), username=p.USERNAME,
                            password=SecretRef(literal=p.PASSWORD))
    registry = make_registry(pki_files, server.url(), credentials=[credential], credential="pw")

    async def run() -> list[str]:
        async with AsyncRestExecutor(registry) as rest:
            return [(await rest.run(RestStep(alias="partner", path=f"/api/{n}"))).status for n in range(2)]

    assert asyncio.run(run()) == ["passed", "passed"]
    assert [v for _, v in auth.verdicts] == [f"issued to user {p.USERNAME}", "ok", "ok"]
    (form,) = token_forms(server)
    assert form == {"grant_type": "password", "username": p.USERNAME, "password": p.PASSWORD}


def test_password_grant_refused_names_the_endpoint_and_hides_the_password(
        partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles) -> None:
    auth, server = partner
    credential = Credential("pw", "oauth2_password", token_url=auth.token_url, client_id=p.CLIENT_ID,
                            client_secret=SecretRef(literal=p.CLIENT_SECRET), username=p.USERNAME,
                            password=SecretRef(literal="wrong-password-1"))
    with RestExecutor(make_registry(pki_files, server.url(), credentials=[credential], credential="pw")) as rest:
        result = rest.run(RestStep(alias="partner", path="/api/x"))
    assert isinstance(result.error, AuthenticationError)
    assert result.error.message == (f"token endpoint {auth.token_url} (credential 'pw') answered HTTP 400: "
                                    "invalid_grant (bad user credentials)")
    assert "wrong-password-1" not in repr(result)


def test_signing_key_is_required(pki_files: PkiFiles) -> None:
    credential = Credential("jwt", "oauth2_private_key_jwt", token_url="https://localhost:1/token", client_id="c")
    registry = make_registry(pki_files, "https://localhost:1", mutual=False, credentials=[credential],
                             credential="jwt")
    with pytest.raises(SchemaError, match="names none while the connection has no mutual TLS keystore"):
        registry.resolve("partner")


def test_algorithm_must_fit_the_key(partner: tuple[p.AuthPartner, RawServer], pki_files: PkiFiles) -> None:
    auth, server = partner
    credential = private_key_jwt(auth, algorithm="RS256")
    with RestExecutor(make_registry(pki_files, server.url(), credentials=[credential], credential="jwt")) as rest:
        result = rest.run(RestStep(alias="partner", path="/api/x"))
    assert result.status == "failed"
    assert isinstance(result.error, SchemaError)
    assert "algorithm RS256 does not fit the signing key (it signs with ES256)" in result.error.message
    assert server.requests == []  # refused at resolution, before any request


def test_each_token_fetch_signs_a_new_assertion(partner: tuple[p.AuthPartner, RawServer],
                                                pki_files: PkiFiles) -> None:
    auth, server = partner
    # A margin as long as the lifetime: every token is due for refresh as soon as it arrives. The
    # partner refuses a replayed jti, so each fetch must carry a new assertion.
    credential = private_key_jwt(auth, refresh_margin_s=3600)
    with RestExecutor(make_registry(pki_files, server.url(), credentials=[credential], credential="jwt")) as rest:
        results = [rest.run(RestStep(alias="partner", path="/api/x")) for _ in range(3)]
    assert [r.status for r in results] == ["passed"] * 3
    assert [v for _, v in auth.verdicts].count(f"issued to client {p.CLIENT_ID}") == 3
    assertions = {form["client_assertion"] for form in token_forms(server)}
    assert len(assertions) == 3


@pytest.mark.parametrize("trusted", [True, False])
def test_the_token_call_presents_our_certificate_only_where_the_origin_rule_says(
        pki: Pki, pki_files: PkiFiles, trusted: bool) -> None:
    api = p.AuthPartner(pki.client.certificate, client_cert_sha256=pki.client.sha256)
    login = p.AuthPartner(pki.client.certificate, client_cert_sha256=pki.client.sha256)
    with RawServer(api, ssl_context=server_context(pki)) as api_server, \
            RawServer(login, ssl_context=server_context(pki, require_client_cert=False)) as login_server:
        api.port, login.port = api_server.port, login_server.port
        api._tokens = login._tokens  # the API accepts what the identity provider issues
        credential = private_key_jwt(login)
        registry = make_registry(pki_files, api_server.url(), credentials=[credential], credential="jwt",
                                 trusted_origins=(login_server.url(),) if trusted else ())
        with RestExecutor(registry) as rest:
            result = rest.run(RestStep(alias="partner", path="/api/x"))
    (token_request,) = login_server.requests
    if trusted:
        assert token_request.client_cert_sha256 == pki.client.sha256
        assert login.verdicts == [("/token", f"issued to client {p.CLIENT_ID}")]
        assert result.status == "passed", result.error
    else:
        # Another origin: the assertion goes (the credential names token_url), our certificate does not.
        assert token_request.client_cert_sha256 is None
        assert isinstance(result.error, AuthenticationError)
        assert "answered HTTP 401: invalid_client (mTLS required)" in result.error.message
