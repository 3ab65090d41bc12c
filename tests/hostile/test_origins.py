"""The origin rule: an alias's credential and client certificate go only to its own origin
(scheme, host, port) and to the origins its connection lists in ``trusted_origins``; a credential
never travels over plain http.

Real loopback servers on different ports (different origins), one of them plain http, record
what they receive: headers, the request target (an API key may be a query parameter) and the
client certificate presented, if any. They ask for a client certificate (optional) and would
accept ours, so a certificate that is not there was not offered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun._errors import SchemaError
from flowrun._load._aliases import AliasRecords
from flowrun._models._aliases import Alias, Connection, Credential
from flowrun._models._secret import SecretRef
from flowrun._models._steps import ResponseSpec, RestStep, SoapStep
from flowrun._models._web_origin import OriginRule, web_origin
from flowrun._registry import Registry
from flowrun._rest import RestExecutor
from flowrun._soap import SoapExecutor
from flowrun._transport._wsdl import WSDL_CACHE
from flowrun.testing import Pki, PkiFiles, make_pki
from tests.transport._support import PASSWORD, RawRequest, RawServer, Reply, make_registry
from tests.transport.conftest import server_context

REPO = Path(__file__).resolve().parents[2]
LEDGER_WSDL = (REPO / "steps" / "ledger.wsdl").read_bytes()
LEDGER_XSD = (REPO / "steps" / "ledger.xsd").read_bytes()
SECRET = "origin-secret-Vd41"
CLIENT_ID = "origin-client"
XML = ("Content-Type", "text/xml; charset=utf-8")
REPLY = (b'<?xml version="1.0" encoding="utf-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
         b'<soap:Body><GetBalanceResponse xmlns="urn:flowrun:ledger:1"><account>42</account>'
         b"<balance>10.50</balance><currency>EUR</currency></GetBalanceResponse></soap:Body></soap:Envelope>")
TOKEN = json.dumps({"access_token": f"token-{SECRET}", "token_type": "Bearer", "expires_in": 300}).encode()


@pytest.fixture(scope="module")
def origin_pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def origin_files(origin_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return origin_pki.write(tmp_path_factory.mktemp("origin-pki"), keystore_password=PASSWORD)


@pytest.fixture
def fresh_wsdl_cache() -> Iterator[None]:
    WSDL_CACHE.clear()
    yield
    WSDL_CACHE.clear()


def credentials(token_url: str) -> list[Credential]:
    return [
        Credential("cred", "api_key", header="X-Partner-Key", key=SecretRef(literal=SECRET)),
        Credential("cred", "api_key", query="api_key", key=SecretRef(literal=SECRET)),
        Credential("cred", "bearer", token=SecretRef(literal=SECRET)),
        Credential("cred", "basic", username="svc", password=SecretRef(literal=SECRET)),
        Credential("cred", "oauth2_client_credentials", token_url=token_url, client_id=CLIENT_ID,
                   client_secret=SecretRef(literal=SECRET)),
    ]


CREDENTIAL_IDS = ["api_key-header", "api_key-query", "bearer", "basic", "oauth2"]


def documents(request: RawRequest) -> Reply:
    """The other origin: a WSDL and the schema it imports (relative to the WSDL's URL)."""
    if request.target.startswith("/ledger.xsd"):
        return Reply(200, LEDGER_XSD, (XML,))
    if request.target.startswith("/ledger"):
        return Reply(200, LEDGER_WSDL, (XML,))
    return Reply(404, b"")


def partner(request: RawRequest) -> Reply:
    """The alias's origin: the token endpoint and the SOAP endpoint."""
    if request.target.startswith("/oauth/token"):
        return Reply(200, TOKEN)
    return Reply(200, REPLY, (XML,))


def assert_clean(requests: list[RawRequest]) -> None:
    """Nothing in these requests carries a credential or our client certificate."""
    assert requests
    for received in requests:
        assert received.client_cert_sha256 is None, received.target
        assert SECRET not in received.target and CLIENT_ID not in received.target
        for name, value in received.headers:
            assert SECRET not in value and CLIENT_ID not in value, name
            assert name.lower() not in ("authorization", "x-partner-key", "cookie"), name


def ledger_step(wsdl: str, **options: Any) -> SoapStep:
    return SoapStep(id="balance", alias="partner", wsdl=wsdl, operation="GetBalance", args={"account": "42"},
                    path="/ledger", response=ResponseSpec(outputs={"balance": "body.balance"}), **options)


# --- WSDLs and their schema imports -----------------------------------------------------------------


@pytest.mark.parametrize("plain", [False, True], ids=["https-origin", "http-origin"])
@pytest.mark.parametrize("index", range(5), ids=CREDENTIAL_IDS)
def test_a_wsdl_on_another_origin_gets_no_credential_and_no_client_certificate(
        index: int, plain: bool, origin_pki: Pki, origin_files: PkiFiles, fresh_wsdl_cache: None) -> None:
    other_tls = None if plain else server_context(origin_pki, require_client_cert=False)
    with RawServer(documents, ssl_context=other_tls) as other, \
            RawServer(partner, ssl_context=server_context(origin_pki)) as home:
        credential = credentials(f"{home.url()}/oauth/token")[index]
        registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred")
        with SoapExecutor(registry) as soap:
            result = soap.run(ledger_step(f"{other.url()}/ledger?wsdl"))
    assert result.status == "passed", result.error
    assert [r.target.split("?")[0] for r in other.requests] == ["/ledger", "/ledger.xsd"]
    assert_clean(other.requests)
    call = home.requests[-1]
    assert call.target.startswith("/ledger")
    assert call.client_cert_sha256 == origin_pki.client.sha256
    assert (SECRET in call.target) == (credential.query is not None)
    assert any(SECRET in value or name.lower() in ("authorization", "x-partner-key")
               for name, value in call.headers) == (credential.query is None)


def test_a_wsdl_url_made_by_a_data_pill_goes_to_its_host_without_credentials(
        origin_pki: Pki, origin_files: PkiFiles, fresh_wsdl_cache: None) -> None:
    # An earlier partner's answer may choose the host: it gets nothing of ours.
    with RawServer(documents, ssl_context=server_context(origin_pki, require_client_cert=False)) as other, \
            RawServer(partner, ssl_context=server_context(origin_pki)) as home:
        credential = Credential("cred", "bearer", token=SecretRef(literal=SECRET))
        registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred")
        with SoapExecutor(registry) as soap:
            result = soap.run(ledger_step("{{ steps.lookup.body.wsdl }}"),
                              {"steps": {"lookup": {"body": {"wsdl": f"{other.url()}/ledger?wsdl"}}}})
    assert result.status == "passed", result.error
    assert_clean(other.requests)


def test_a_trusted_origin_gets_the_credential_and_the_client_certificate(
        origin_pki: Pki, origin_files: PkiFiles, fresh_wsdl_cache: None) -> None:
    with RawServer(documents, ssl_context=server_context(origin_pki, require_client_cert=False)) as other, \
            RawServer(partner, ssl_context=server_context(origin_pki)) as home:
        credential = Credential("cred", "bearer", token=SecretRef(literal=SECRET))
        registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred",
                                 trusted_origins=(other.url(),))
        with SoapExecutor(registry) as soap:
            result = soap.run(ledger_step(f"{other.url()}/ledger?wsdl"))
    assert result.status == "passed", result.error
    assert len(other.requests) == 2
    for received in other.requests:
        assert received.client_cert_sha256 == origin_pki.client.sha256
        assert received.header("Authorization") == f"Bearer {SECRET}"


def test_a_wsdl_on_the_alias_origin_keeps_the_credential_and_the_certificate(
        origin_pki: Pki, origin_files: PkiFiles, fresh_wsdl_cache: None) -> None:
    def both(request: RawRequest) -> Reply:
        return documents(request) if request.method == "GET" else partner(request)

    with RawServer(both, ssl_context=server_context(origin_pki)) as home:
        credential = Credential("cred", "bearer", token=SecretRef(literal=SECRET))
        registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred")
        with SoapExecutor(registry) as soap:
            result = soap.run(ledger_step(f"{home.url()}/ledger?wsdl"))
    assert result.status == "passed", result.error
    gets = [r for r in home.requests if r.method == "GET"]
    assert len(gets) == 2
    assert all(r.header("Authorization") == f"Bearer {SECRET}" for r in gets)
    assert all(r.client_cert_sha256 == origin_pki.client.sha256 for r in gets)


# --- OAuth2 token URLs ------------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True], ids=["other-origin", "trusted-origin"])
@pytest.mark.parametrize("kind", ["rest", "soap"])
def test_a_token_url_on_another_origin_gets_the_client_secret_but_not_our_certificate(
        trusted: bool, kind: str, origin_pki: Pki, origin_files: PkiFiles) -> None:
    with RawServer(partner, ssl_context=server_context(origin_pki, require_client_cert=False)) as idp, \
            RawServer(partner, ssl_context=server_context(origin_pki)) as home:
        credential = Credential("cred", "oauth2_client_credentials", token_url=f"{idp.url()}/oauth/token",
                                client_id=CLIENT_ID, client_secret=SecretRef(literal=SECRET))
        registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred",
                                 trusted_origins=(idp.url(),) if trusted else ())
        if kind == "rest":
            with RestExecutor(registry) as rest:
                result = rest.run(RestStep(id="api", alias="partner", path="/api"))
        else:
            with SoapExecutor(registry) as soap:
                result = soap.run(SoapStep(id="raw", alias="partner", path="/ledger", envelope=REPLY.decode()))
    assert result.status == "passed", result.error
    (token_request,) = idp.requests
    assert token_request.header("Authorization") is not None  # the credential names this endpoint
    expected = origin_pki.client.sha256 if trusted else None
    assert token_request.client_cert_sha256 == expected
    assert home.requests[-1].header("Authorization") == f"Bearer token-{SECRET}"


# --- redirects --------------------------------------------------------------------------------------


@pytest.mark.parametrize("trusted", [False, True], ids=["other-origin", "trusted-origin"])
def test_a_redirect_keeps_the_credential_only_for_a_trusted_origin(trusted: bool, origin_pki: Pki,
                                                                  origin_files: PkiFiles) -> None:
    with RawServer(ssl_context=server_context(origin_pki, require_client_cert=False)) as other:
        def away(request: RawRequest) -> Reply:
            return Reply(307, b"", (("Location", f"{other.url()}/landing"),))

        with RawServer(away, ssl_context=server_context(origin_pki)) as home:
            credential = Credential("cred", "bearer", token=SecretRef(literal=SECRET))
            registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred",
                                     trusted_origins=(other.url(),) if trusted else ())
            with RestExecutor(registry) as rest:
                result = rest.run(RestStep(id="hop", alias="partner", path="/start", follow_redirects=True))
    assert result.status == "passed", result.error
    (landed,) = other.requests
    if trusted:
        assert landed.header("Authorization") == f"Bearer {SECRET}"
        assert landed.client_cert_sha256 == origin_pki.client.sha256
    else:
        assert_clean([landed])


# --- no credential over plain http: load errors -----------------------------------------------------


def registry_of(url: str, credential: Credential, **connection: Any) -> Registry:
    alias = Alias("partner", {Alias.SINGLE: Connection(url=url, credential="cred", **connection)})
    return Registry(AliasRecords({}, {}, {}, {"cred": credential}, {"partner": alias}))


@pytest.mark.parametrize("index", range(4), ids=CREDENTIAL_IDS[:4])
def test_a_credential_on_a_plain_http_connection_is_a_load_error(index: int) -> None:
    credential = credentials("https://idp.example/token")[index]
    with pytest.raises(SchemaError, match="plain http connection: the secret would travel in clear text"):
        registry_of("http://partner.example/api", credential)
    registry_of("https://partner.example/api", credential)  # the same over https is fine


def test_oauth2_and_wsse_on_plain_http_are_load_errors() -> None:
    oauth = credentials("https://idp.example/token")[4]
    with pytest.raises(SchemaError, match="oauth2_client_credentials"):
        registry_of("http://partner.example/api", oauth)
    wsse = Credential("cred", "wsse_username_token", username="u", password=SecretRef(literal=SECRET))
    with pytest.raises(SchemaError, match="wsse_username_token"):
        registry_of("http://partner.example/api", wsse)
    registry_of("http://partner.example/api", Credential("cred", "none"))


def test_an_http_token_url_is_a_load_error() -> None:
    with pytest.raises(SchemaError, match=r"token_url 'http://idp\.example/token' is not https"):
        credentials("http://idp.example/token")


@pytest.mark.parametrize(("origin", "says"), [
    ("http://login.example", "is not https"),
    ("https://login.example/path", "is not an origin"),
    ("https://login.example/?q=1", "is not an origin"),
    ("https://user:pw@login.example", "user name or password"),
])
def test_a_bad_trusted_origin_is_a_load_error(origin: str, says: str) -> None:
    with pytest.raises(SchemaError, match=says):
        Connection(url="https://partner.example", trusted_origins=(origin,))


def test_the_rule_compares_scheme_host_and_port() -> None:
    rule = OriginRule(("https", "partner.example", 443), frozenset({("https", "login.example", 8443)}))
    assert rule.trusts_url("https://PARTNER.example/x")
    assert rule.trusts_url("https://partner.example:443/x")
    assert not rule.trusts_url("http://partner.example/x")
    assert not rule.trusts_url("https://partner.example:8443/x")
    assert not rule.trusts_url("https://partner.example.evil/x")
    assert rule.trusts_url("https://login.example:8443/token")
    assert not rule.trusts_url("https://login.example/token")
    assert not rule.trusts_url("ftp://partner.example/x")
    assert web_origin("https://[::1]:8443/x") == ("https", "::1", 8443)
    assert web_origin("https://host:99999/") is None


def test_validate_reports_every_credential_over_http(tmp_path: Path) -> None:
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    records = [
        {"kind": "credential", "name": "key", "type": "api_key", "header": "X-Key", "key": {"env": "KEY"}},
        {"kind": "credential", "name": "pw", "type": "basic", "username": "u", "password": {"env": "PW"}},
        {"kind": "alias", "name": "one", "connection": {"url": "http://one.example", "credential": "key"}},
        {"kind": "alias", "name": "two", "connection": {"url_builder": True, "protocol": "http",
                                                        "host": "two.example", "credential": "pw"}},
    ]
    (aliases / "partners.json").write_text(json.dumps(records, indent=1))
    (aliases / "idp.json").write_text(json.dumps([
        {"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials",
         "token_url": "http://idp.example/token", "client_id": "c", "client_secret": {"env": "S"}},
        {"kind": "alias", "name": "three", "connection": {"url": "https://three.example",
                                                          "trusted_origins": ["http://login.example"]}},
    ], indent=1))
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [{"id": "s", "type": "rest", "alias": "one"}]}))
    done = subprocess.run([sys.executable, "-m", "flowrun", "validate", str(flow), "--aliases", str(aliases),
                           "--json"], capture_output=True, text=True, check=False, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    messages = [p["message"] for p in json.loads(done.stdout)["problems"]]
    assert any("credential 'key' (api_key) is used on a plain http connection" in m for m in messages), messages
    assert any("credential 'pw' (basic) is used on a plain http connection" in m for m in messages), messages
    assert any("token_url 'http://idp.example/token' is not https" in m for m in messages), messages
    assert any("trusted origin 'http://login.example' is not https" in m for m in messages), messages
    assert "Traceback" not in done.stderr



def test_alias_show_says_where_the_credential_goes(tmp_path: Path) -> None:
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    (aliases / "a.json").write_text(json.dumps([
        {"kind": "credential", "name": "token", "type": "bearer", "token": {"env": "TOKEN"}},
        {"kind": "alias", "name": "bank", "connection": {
            "url": "https://api.bank.example:8443/v2", "credential": "token",
            "trusted_origins": ["https://login.bank.example"]}}]))
    done = subprocess.run([sys.executable, "-m", "flowrun", "alias", "show", "bank", "--aliases", str(aliases)],
                          capture_output=True, text=True, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr
    # The label fits its column: the value starts where every other field's does.
    column = "    url" + " " * 15
    assert f"{column}https://api.bank.example:8443/v2" in done.stdout
    assert f"{'    credential for':<{len(column)}}https://api.bank.example:8443, https://login.bank.example" \
        in done.stdout


@pytest.mark.parametrize("trusted", [False, True], ids=["other-origin", "trusted-origin"])
def test_a_schema_import_from_a_third_origin_is_allowed_only_when_trusted(
        trusted: bool, origin_pki: Pki, origin_files: PkiFiles, fresh_wsdl_cache: None) -> None:
    with RawServer(documents, ssl_context=server_context(origin_pki, require_client_cert=False)) as schemas:
        wsdl = LEDGER_WSDL.replace(b'schemaLocation="ledger.xsd"',
                                   f'schemaLocation="{schemas.url()}/ledger.xsd"'.encode())
        assert wsdl != LEDGER_WSDL

        def home_answer(request: RawRequest) -> Reply:
            return Reply(200, wsdl, (XML,)) if request.method == "GET" else partner(request)

        with RawServer(home_answer, ssl_context=server_context(origin_pki)) as home:
            credential = Credential("cred", "bearer", token=SecretRef(literal=SECRET))
            registry = make_registry(origin_files, home.url(), credentials=[credential], credential="cred",
                                     trusted_origins=(schemas.url(),) if trusted else ())
            with SoapExecutor(registry) as soap:
                result = soap.run(ledger_step(f"{home.url()}/ledger?wsdl"))
    if not trusted:
        assert result.error is not None and "not on the WSDL's or the alias's host and port" in str(result.error)
        assert schemas.requests == []
        return
    assert result.status == "passed", result.error
    (fetched,) = schemas.requests
    assert fetched.header("Authorization") == f"Bearer {SECRET}"
    assert fetched.client_cert_sha256 == origin_pki.client.sha256
