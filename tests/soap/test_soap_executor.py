"""SOAP steps end to end: the Ledger partner over mutual TLS, a JKS keystore, real zeep.

Operation mode (WSDL by URL over mTLS with its schema import, or a local WSDL) and raw envelope
mode; faults as data; hostile XML refused; one WSDL parse for many calls; the environment's CA
bundle variables ignored; the async executor.
"""

from __future__ import annotations

import asyncio
import decimal
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from flowrun._errors import (
    ClientCertRejectedError,
    DefinitionError,
    ResponseParseError,
    ResponseTooLargeError,
    SoapFaultError,
    UnexpectedStatusError,
    UnsafeXmlError,
    WsdlError,
)
from flowrun._models._aliases import Connection, RetryPolicy
from flowrun._models._numbers import dumps
from flowrun._models._results import StepResult
from flowrun._models._steps import ResponseSpec, SoapStep
from flowrun._registry import Registry
from flowrun._soap import AsyncSoapExecutor, SoapExecutor
from flowrun._transport._wsdl import WSDL_CACHE
from flowrun.testing import PartnerServer, PkiFiles
from tests.soap.conftest import KEYSTORE_ENV, KEYSTORE_PASSWORD, LEDGER_WSDL, REPO, WSSE_PASSWORD, WSSE_USER

LEDGER_NS = "urn:flowrun:ledger:1"
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
BALANCE_BODY = {"account": "42", "balance": decimal.Decimal("1234.50"), "currency": "EUR"}

ENVELOPE = (
    f'<soap:Envelope xmlns:soap="{SOAP11}" xmlns:led="{LEDGER_NS}"><soap:Body>'
    "<led:GetBalance><led:account>{{ inputs.account }}</led:account></led:GetBalance>"
    "</soap:Body></soap:Envelope>"
)


def wsdl_url(partner: PartnerServer, base: str = "") -> str:
    return f"{partner.url}{base}/ledger?wsdl"


def balance_step(partner: PartnerServer, account: str = "42", **fields: Any) -> SoapStep:
    options: dict[str, Any] = {"id": "balance", "alias": "ledger", "wsdl": wsdl_url(partner),
                               "operation": "GetBalance", "path": "/ledger", "args": {"account": account}}
    options.update(fields)
    return SoapStep(**options)


def posts_since(partner: PartnerServer, before: int, path: str = "/ledger") -> list[Any]:
    return [r for r in partner.requests[before:] if r.method == "POST" and r.path == path]


def sent_envelope(partner: PartnerServer, before: int, path: str = "/ledger") -> etree._Element:
    (request,) = posts_since(partner, before, path)
    return etree.fromstring(request.body)


# --- operation mode ---------------------------------------------------------------------------


def test_get_balance_over_mutual_tls_with_a_jks_keystore(soap: SoapExecutor, partner: PartnerServer,
                                                          pki_files: PkiFiles, fresh_wsdl_cache: None) -> None:
    before = len(partner.requests)
    step = balance_step(partner, response=ResponseSpec(outputs={"balance": "body.balance",
                                                                 "currency": "body.currency",
                                                                 "status": "status"}),
                        assertions=({"that": "outputs.balance", "gt": 0},))

    result = soap.run(step).raise_for_failure()

    assert result.status == "passed" and result.kind == "soap"
    assert result.http_status == 200
    assert result.body == BALANCE_BODY
    assert result.outputs == {"balance": 1234.5, "currency": "EUR", "status": 200}
    assert [a.status for a in result.attempts] == [200]
    assert result.tls is not None and result.tls.client_cert_sha256 is not None
    assert result.request is not None and result.request.url == f"{partner.url}/ledger"
    # The WSDL and its schema import came over the same mutual TLS identity as the call.
    seen = partner.requests[before:]
    gets = [(r.path, r.query) for r in seen if r.method == "GET"]
    assert gets == [("/ledger", (("wsdl", ""),)), ("/ledger.xsd", ())]
    assert {r.client_cert_sha256 for r in seen} == {result.tls.client_cert_sha256}
    (post,) = posts_since(partner, before)
    assert post.header("SOAPAction") == f'"{LEDGER_NS}#GetBalance"'
    assert post.header("Content-Type") == "text/xml; charset=utf-8"
    written = dumps(result.to_dict(include_body=True))
    assert '"balance": 1234.50' in written  # xs:decimal: exact, as the partner wrote it
    assert json.loads(written, parse_float=decimal.Decimal)["body"] == BALANCE_BODY


def test_transfer_sends_the_args_and_returns_the_booking(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    step = SoapStep(id="transfer", alias="ledger", wsdl=str(LEDGER_WSDL), operation="Transfer", path="/ledger",
                    args={"from": "{{ inputs.source }}", "to": "43", "amount": "{{ inputs.amount }}"},
                    response=ResponseSpec(outputs={"id": "body.id", "booked": "body.status == 'BOOKED'"}))

    result = soap.run(step, {"inputs": {"source": "42", "amount": "12.50"}}).raise_for_failure()

    assert result.outputs["id"].startswith("LT-")
    assert result.outputs["booked"] is True
    envelope = sent_envelope(partner, before)
    assert envelope.findtext(f".//{{{LEDGER_NS}}}from") == "42"
    assert envelope.findtext(f".//{{{LEDGER_NS}}}amount") == "12.50"


def test_a_fault_is_a_failed_result_with_code_string_and_detail(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = soap.run(balance_step(partner, account="0"))

    assert result.status == "failed"
    assert result.http_status == 500
    error = result.error
    assert isinstance(error, SoapFaultError)
    assert error.faultcode == "soap:Client"
    assert error.faultstring == "account 0 does not exist"
    assert error.detail == {"LedgerFault": {"code": "ACCOUNT_NOT_FOUND", "message": "account 0 does not exist"}}
    assert error.step == "balance"
    fault = {"code": "soap:Client", "string": "account 0 does not exist", "actor": None, "detail": error.detail}
    assert result.fault == fault
    assert result.body == {"fault": fault}
    assert result.context_entry()["fault"]["detail"]["LedgerFault"]["code"] == "ACCOUNT_NOT_FOUND"
    assert result.to_dict()["error"]["code"] == "soap.fault"
    with pytest.raises(SoapFaultError):
        result.raise_for_failure()


def test_local_wsdl_calls_the_alias_endpoint_not_the_wsdl_address(soap: SoapExecutor, partner: PartnerServer,
                                                                    ) -> None:
    # The shipped WSDL says https://localhost/ledger (port 443): the call must go to the alias.
    assert 'location="https://localhost/ledger"' in LEDGER_WSDL.read_text(encoding="utf-8")
    before = len(partner.requests)
    step = SoapStep(id="local", alias="ledger_v2", wsdl="../steps/ledger.wsdl", base_dir=REPO / "tests",
                    operation="GetBalance", path="/ledger", args={"account": "42"})

    result = soap.run(step).raise_for_failure()

    assert result.body == BALANCE_BODY
    assert [(r.method, r.path) for r in partner.requests[before:]] == [("POST", "/v2/ledger")]


def test_the_wsdl_is_parsed_once_for_many_calls(registry: Registry, partner: PartnerServer,
                                                fresh_wsdl_cache: None) -> None:
    before = len(partner.requests)
    with SoapExecutor(registry) as first, SoapExecutor(registry) as second:
        results = [(first if n % 2 else second).run(balance_step(partner, account=str(n))) for n in range(1, 31)]

    assert all(r.status == "passed" for r in results), [r.error for r in results if r.error]
    assert [r.body["account"] for r in results] == [str(n) for n in range(1, 31)]
    stats = WSDL_CACHE.stats()
    assert (stats.parses, stats.fetches) == (1, 1)
    assert stats.hits == 29
    gets = [r.path for r in partner.requests[before:] if r.method == "GET"]
    assert gets == ["/ledger", "/ledger.xsd"]
    assert len(posts_since(partner, before)) == 30


def test_a_wsdl_fetch_without_a_trusted_client_certificate_is_refused_and_not_retried(
        soap: SoapExecutor, partner: PartnerServer, fresh_wsdl_cache: None) -> None:
    before = len(partner.requests)
    failures_before = len(partner.handshake_failures)

    result = soap.run(balance_step(partner, alias="ledger_untrusted"))

    assert result.status == "failed"
    assert isinstance(result.error, ClientCertRejectedError)
    assert len(result.attempts) == 1  # the alias allows 3 retries: TLS failures are never retried
    assert partner.wait_until(lambda p: len(p.handshake_failures) > failures_before)
    assert partner.requests[before:] == []
    assert WSDL_CACHE.stats().fetches == 0


def test_several_ports_are_chosen_by_soap_version_or_by_name(soap: SoapExecutor, partner: PartnerServer,
                                                              tmp_path: Path) -> None:
    wsdl = two_version_wsdl(tmp_path)
    before = len(partner.requests)

    soap11 = soap.run(SoapStep(id="v11", alias="ledger", wsdl=str(wsdl), operation="GetBalance", path="/ledger",
                               args={"account": "42"}))
    assert soap11.raise_for_failure().body == BALANCE_BODY

    soap12 = soap.run(SoapStep(id="v12", alias="ledger", wsdl=str(wsdl), operation="GetBalance", path="/ledger",
                               args={"account": "42"}, soap_version="1.2"))
    named = soap.run(SoapStep(id="named", alias="ledger", wsdl=str(wsdl), operation="GetBalance", path="/ledger",
                              args={"account": "42"}, port="LedgerPort12"))

    posts = posts_since(partner, before)
    assert [etree.QName(etree.fromstring(p.body)).namespace for p in posts] == [SOAP11, SOAP12, SOAP12]
    assert posts[1].header("Content-Type") == (
        f'application/soap+xml; charset=utf-8; action="{LEDGER_NS}#GetBalance"')
    # The partner speaks SOAP 1.1 only and answers a 1.2 envelope with a 1.1 fault: still a fault.
    for result in (soap12, named):
        assert isinstance(result.error, SoapFaultError)
        assert result.error.faultstring == "not a SOAP 1.1 envelope"

    unknown = soap.run(SoapStep(id="bad", alias="ledger", wsdl=str(wsdl), operation="GetBalance",
                                args={"account": "42"}, port="LedgerPort2"))
    assert isinstance(unknown.error, DefinitionError)
    assert "did you mean" in unknown.error.message


def test_soap_action_soap_headers_and_http_headers(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    step = balance_step(partner, soap_action="urn:partner:custom-action",
                        soap_headers={"{urn:partner:auth}Ticket": {"id": "{{ inputs.ticket }}", "level": 2}},
                        headers={"X-Trace": "{{ inputs.trace }}"})

    soap.run(step, {"inputs": {"ticket": "T-9", "trace": "trace-1"}}).raise_for_failure()

    (post,) = posts_since(partner, before)
    assert post.header("SOAPAction") == '"urn:partner:custom-action"'
    assert post.header("X-Trace") == "trace-1"
    ticket = etree.fromstring(post.body).find(f"{{{SOAP11}}}Header/{{urn:partner:auth}}Ticket")
    assert ticket is not None
    assert ticket.findtext("{urn:partner:auth}id") == "T-9"
    assert ticket.findtext("{urn:partner:auth}level") == "2"


@pytest.mark.parametrize(("alias", "digest"), [("ledger_wsse", True), ("ledger_wsse_text", False)])
def test_ws_security_username_token(soap: SoapExecutor, partner: PartnerServer, alias: str, digest: bool) -> None:
    before = len(partner.requests)

    result = soap.run(balance_step(partner, alias=alias, wsdl=str(LEDGER_WSDL))).raise_for_failure()

    assert result.body == BALANCE_BODY
    (post,) = posts_since(partner, before)
    token = etree.fromstring(post.body).find(f"{{{SOAP11}}}Header/{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
    assert token is not None
    assert token.findtext(f"{{{WSSE_NS}}}Username") == WSSE_USER
    password = token.find(f"{{{WSSE_NS}}}Password")
    assert password is not None
    if digest:
        assert password.get("Type", "").endswith("#PasswordDigest")
        assert token.find(f"{{{WSSE_NS}}}Nonce") is not None
        assert WSSE_PASSWORD.encode() not in post.body
    else:
        assert password.get("Type", "").endswith("#PasswordText")
        assert password.text == WSSE_PASSWORD
    assert post.header("Authorization") is None


def test_an_api_key_credential_authenticates_the_http_request(soap: SoapExecutor, partner: PartnerServer) -> None:
    keyed = soap.run(balance_step(partner, alias="ledger_key", wsdl=str(LEDGER_WSDL), path="/secure/ledger"))
    assert keyed.raise_for_failure().body == BALANCE_BODY
    assert keyed.request is not None
    assert ("X-API-Key", "***") in keyed.request.headers

    # Without the key the partner answers 401 with JSON: an unexpected status, not a fault.
    plain = soap.run(balance_step(partner, wsdl=str(LEDGER_WSDL), path="/secure/ledger"))
    assert isinstance(plain.error, UnexpectedStatusError)
    assert plain.http_status == 401
    assert plain.error.status == 401
    assert "invalid_api_key" in plain.body


def test_args_that_do_not_fit_the_operation_and_unknown_operations(soap: SoapExecutor,
                                                                   partner: PartnerServer) -> None:
    wrong_arg = soap.run(balance_step(partner, wsdl=str(LEDGER_WSDL), args={"acount": "42"}))
    assert isinstance(wrong_arg.error, DefinitionError)
    assert "acount" in wrong_arg.error.message

    unknown = soap.run(balance_step(partner, wsdl=str(LEDGER_WSDL), operation="GetBalanse"))
    assert isinstance(unknown.error, DefinitionError)
    assert "did you mean 'GetBalance'" in unknown.error.message


def test_an_inline_connection_and_a_missing_wsdl(soap: SoapExecutor, partner: PartnerServer) -> None:
    connection = Connection(url=f"{partner.url}/v2", mutual_authentication=True, protocol_profile="ledgerMTLS")
    inline = soap.run(SoapStep(id="inline", connection=connection, wsdl=str(LEDGER_WSDL), operation="GetBalance",
                               path="/ledger", args={"account": "42"}))
    assert inline.raise_for_failure().body == BALANCE_BODY
    assert inline.request is not None and inline.request.url == f"{partner.url}/v2/ledger"

    missing = soap.run(balance_step(partner, wsdl=f"{partner.url}/no-such.wsdl"))
    assert isinstance(missing.error, WsdlError)
    assert "404" in missing.error.message


# --- raw envelope mode ------------------------------------------------------------------------


def test_raw_envelope_with_xpath_outputs(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    step = SoapStep(id="raw", alias="ledger", envelope=ENVELOPE, path="/ledger",
                    soap_action=f"{LEDGER_NS}#GetBalance",
                    response=ResponseSpec(
                        namespaces={"led": LEDGER_NS},
                        outputs={"balance": "xpath://led:GetBalanceResponse/led:balance",
                                 "anywhere": "xpath:string(//*[local-name()='currency'])",
                                 "json": "body.balance"}))

    result = soap.run(step, {"inputs": {"account": "42"}}).raise_for_failure()

    # Without a wsdl a raw envelope step has no schema: leaves are strings.
    assert result.outputs == {"balance": "1234.50", "anywhere": "EUR", "json": "1234.50"}
    assert result.body == {"account": "42", "balance": "1234.50", "currency": "EUR"}
    assert result.soap_headers == {}
    (post,) = posts_since(partner, before)
    assert post.header("SOAPAction") == f'"{LEDGER_NS}#GetBalance"'
    assert post.header("Content-Type") == "text/xml; charset=utf-8"


def test_raw_envelope_is_sent_as_written(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    text = ENVELOPE.replace("{{ inputs.account }}", "42").replace("<soap:Body>", "\n  <!-- as is -->\n  <soap:Body>")

    soap.run(SoapStep(id="raw", alias="ledger", envelope=text, path="/ledger")).raise_for_failure()

    assert posts_since(partner, before)[0].body == text.encode("utf-8")
    broken = soap.run(SoapStep(id="raw", alias="ledger", envelope="<soap:Envelope", path="/ledger"))
    assert isinstance(broken.error, DefinitionError)
    assert len(posts_since(partner, before)) == 1


def test_raw_envelope_pills_are_xml_escaped(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    step = SoapStep(id="raw", alias="ledger", envelope=ENVELOPE, path="/ledger")

    result = soap.run(step, {"inputs": {"account": "<b>&1"}}).raise_for_failure()

    assert result.body["account"] == "<b>&1"
    assert b"&lt;b&gt;&amp;1" in posts_since(partner, before)[0].body


def test_raw_envelope_fault_and_soap12_content_type(soap: SoapExecutor, partner: PartnerServer) -> None:
    fault = soap.run(SoapStep(id="raw", alias="ledger", envelope=ENVELOPE, path="/ledger"),
                     {"inputs": {"account": "0"}})
    assert isinstance(fault.error, SoapFaultError)
    assert fault.error.detail == {"LedgerFault": {"code": "ACCOUNT_NOT_FOUND", "message": "account 0 does not exist"}}

    before = len(partner.requests)
    envelope12 = ENVELOPE.replace(SOAP11, SOAP12)
    result = soap.run(SoapStep(id="raw12", alias="ledger", envelope=envelope12, path="/ledger",
                               soap_action="urn:act"), {"inputs": {"account": "42"}})
    (post,) = posts_since(partner, before)
    assert post.header("Content-Type") == 'application/soap+xml; charset=utf-8; action="urn:act"'
    assert post.header("SOAPAction") is None
    assert isinstance(result.error, SoapFaultError)  # the partner is SOAP 1.1 only


def test_raw_envelope_with_ws_security(soap: SoapExecutor, partner: PartnerServer) -> None:
    before = len(partner.requests)
    soap.run(SoapStep(id="raw", alias="ledger_wsse", envelope=ENVELOPE, path="/ledger"),
             {"inputs": {"account": "42"}}).raise_for_failure()
    token = sent_envelope(partner, before).find(f".//{{{WSSE_NS}}}UsernameToken")
    assert token is not None and token.findtext(f"{{{WSSE_NS}}}Username") == WSSE_USER


def test_a_status_without_a_fault_is_an_unexpected_status(soap: SoapExecutor, partner: PartnerServer) -> None:
    for path in ("/status/500", "/nowhere"):
        result = soap.run(SoapStep(id="raw", alias="ledger", envelope=ENVELOPE, path=path),
                          {"inputs": {"account": "42"}})
        assert isinstance(result.error, UnexpectedStatusError), path
        assert result.error.status in (500, 404)


def test_retry_policy_applies_to_soap_calls(soap: SoapExecutor, partner: PartnerServer) -> None:
    policy = RetryPolicy(strategy="fixed", count=2, interval_s=0.01, retry_non_idempotent=True)
    step = SoapStep(id="raw", alias="ledger", envelope=ENVELOPE, path="/flaky/soap-retry?fail=1&status=503",
                    retry_policy=policy)

    result = soap.run(step, {"inputs": {"account": "42"}})

    assert [a.status for a in result.attempts] == [503, 200]
    assert partner.attempts("flaky", "soap-retry") == 2
    # The flaky route answers JSON: once the retry succeeded, the reply is not XML.
    assert isinstance(result.error, ResponseParseError)


def test_the_response_size_cap_applies(soap: SoapExecutor, partner: PartnerServer) -> None:
    result = soap.run(balance_step(partner, wsdl=str(LEDGER_WSDL), response=ResponseSpec(max_bytes=100)))
    assert isinstance(result.error, ResponseTooLargeError)


# --- hostile XML ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["xxe", "billion_laughs", "external_dtd"])
def test_hostile_replies_are_refused(soap: SoapExecutor, partner: PartnerServer, kind: str) -> None:
    before = len(partner.requests)
    path = f"/ledger-hostile?kind={kind}"

    operation = soap.run(balance_step(partner, wsdl=str(LEDGER_WSDL), path=path))
    raw = soap.run(SoapStep(id="raw", alias="ledger", envelope=ENVELOPE, path=path), {"inputs": {"account": "42"}})

    for result in (operation, raw):
        assert isinstance(result.error, UnsafeXmlError), result.error
        assert "DOCTYPE" in result.error.message
        assert f"{partner.url}/ledger-hostile" in result.error.message
    assert [r.path for r in partner.requests[before:]] == ["/ledger-hostile", "/ledger-hostile"]


def test_a_wsdl_or_schema_with_a_dtd_is_refused(soap: SoapExecutor, tmp_path: Path) -> None:
    wsdl = tmp_path / "evil.wsdl"
    text = LEDGER_WSDL.read_text(encoding="utf-8")
    wsdl.write_text(text.replace("<wsdl:definitions", '<!DOCTYPE wsdl:definitions [<!ENTITY x "y">]>\n'
                                                      "<wsdl:definitions", 1), encoding="utf-8")
    result = soap.run(SoapStep(id="evil", alias="ledger", wsdl=str(wsdl), operation="GetBalance"))
    assert isinstance(result.error, UnsafeXmlError)
    assert str(wsdl) in result.error.message

    schema_dir = tmp_path / "schema"
    schema_dir.mkdir()
    (schema_dir / "ledger.wsdl").write_text(text, encoding="utf-8")
    xsd = (LEDGER_WSDL.parent / "ledger.xsd").read_text(encoding="utf-8")
    (schema_dir / "ledger.xsd").write_text(xsd.replace("<xsd:schema", '<!DOCTYPE x SYSTEM "file:///etc/hostname">\n'
                                                                      "<xsd:schema", 1), encoding="utf-8")
    result = soap.run(SoapStep(id="evil", alias="ledger", wsdl=str(schema_dir / "ledger.wsdl"),
                               operation="GetBalance"))
    assert isinstance(result.error, UnsafeXmlError)
    assert "ledger.xsd" in result.error.message


@pytest.mark.parametrize("location", ["../outside.xsd", "file:///etc/hostname", "https://example.invalid/l.xsd"])
def test_imports_outside_the_allowed_places_are_refused(soap: SoapExecutor, partner: PartnerServer,
                                                        tmp_path: Path, location: str) -> None:
    (tmp_path / "outside.xsd").write_text((LEDGER_WSDL.parent / "ledger.xsd").read_text(encoding="utf-8"),
                                          encoding="utf-8")
    folder = tmp_path / "wsdl"
    folder.mkdir()
    wsdl = folder / "ledger.wsdl"
    wsdl.write_text(LEDGER_WSDL.read_text(encoding="utf-8").replace('schemaLocation="ledger.xsd"',
                                                                    f'schemaLocation="{location}"'),
                    encoding="utf-8")
    before = len(partner.requests)

    result = soap.run(SoapStep(id="imports", alias="ledger", wsdl=str(wsdl), operation="GetBalance"))

    assert isinstance(result.error, UnsafeXmlError), result.error
    assert "refused" in result.error.message
    assert partner.requests[before:] == []


# --- environment, async, imports --------------------------------------------------------------


def test_the_environment_ca_bundle_variables_change_nothing(alias_dir: Path, partner: PartnerServer,
                                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                            secrets_env: None, fresh_wsdl_cache: None) -> None:
    bogus = tmp_path / "bogus-ca.pem"
    bogus.write_text("not a certificate\n", encoding="utf-8")
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(bogus))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    # Proxy variables do apply (tests/proxy); what they never change is trust.

    with SoapExecutor(Registry.load(alias_dir)) as soap:
        result = soap.run(balance_step(partner))

    assert result.raise_for_failure().body == BALANCE_BODY


def test_the_async_executor(registry: Registry, partner: PartnerServer) -> None:
    async def main() -> list[StepResult]:
        async with AsyncSoapExecutor(registry) as soap:
            steps = [balance_step(partner, account=str(n), wsdl=str(LEDGER_WSDL)) for n in range(1, 6)]
            return list(await asyncio.gather(*(soap.run(step) for step in steps)))

    results = asyncio.run(main())

    assert [r.raise_for_failure().body["account"] for r in results] == ["1", "2", "3", "4", "5"]


def test_zeep_is_imported_only_when_a_soap_step_runs(alias_dir: Path, partner: PartnerServer) -> None:
    script = textwrap.dedent(f"""
        import json, sys
        import flowrun, flowrun._soap, flowrun._flows
        from flowrun._models._steps import RestStep, SoapStep
        from flowrun._registry import Registry
        from flowrun._rest import RestExecutor
        from flowrun._soap import SoapExecutor
        assert "zeep" not in sys.modules, "imported by import"
        registry = Registry.load(sys.argv[1])
        with RestExecutor(registry) as rest:
            rest.run(RestStep(alias="ledger", path="/accounts/42")).raise_for_failure()
        after_rest = "zeep" in sys.modules
        with SoapExecutor(registry) as soap:
            soap.run(SoapStep(alias="ledger", wsdl="{LEDGER_WSDL}", operation="GetBalance", path="/ledger",
                              args={{"account": "42"}})).raise_for_failure()
        print(json.dumps([after_rest, "zeep" in sys.modules]))
    """)
    env = {"PATH": "/usr/bin:/bin", KEYSTORE_ENV: KEYSTORE_PASSWORD}
    proc = subprocess.run([sys.executable, "-c", script, str(alias_dir)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=120, check=False)

    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [False, True]


def two_version_wsdl(directory: Path) -> Path:
    """The Ledger WSDL with a SOAP 1.2 binding and port beside the 1.1 ones."""
    text = LEDGER_WSDL.read_text(encoding="utf-8")
    binding_start = text.index("<wsdl:binding")
    binding_end = text.index("</wsdl:binding>") + len("</wsdl:binding>")
    binding12 = (text[binding_start:binding_end]
                 .replace('name="LedgerBinding"', 'name="LedgerBinding12"')
                 .replace("<soap:", "<soap12:"))
    text = text[:binding_end] + "\n" + binding12 + text[binding_end:]
    text = text.replace('xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"',
                        'xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" '
                        'xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/"')
    text = text.replace(
        "</wsdl:service>",
        '  <wsdl:port name="LedgerPort12" binding="tns:LedgerBinding12">'
        '<soap12:address location="https://localhost/ledger"/></wsdl:port>\n  </wsdl:service>')
    (directory / "ledger.xsd").write_bytes((LEDGER_WSDL.parent / "ledger.xsd").read_bytes())
    path = directory / "ledger2.wsdl"
    path.write_text(text, encoding="utf-8")
    return path
