"""Flows against Spyne, a SOAP server library nobody here wrote, over mutual TLS.

The steps fetch Spyne's own WSDL from the server (``?wsdl``, through the alias's client with its
certificate: the WSDL's origin is the alias's) and call it; the replies are Spyne's. Covered:
single-child replies (``AddResponse`` > ``AddResult``), SOAP 1.2, exact decimals both ways, and
faults with code, string and detail.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flowrun import ClientCertRejectedError, FlowResult, SoapFaultError, run_flow
from flowrun._registry import Registry
from flowrun.testing import Pki, PkiFiles, issue_client, write_client_files
from tests.soap._spyne_partner import FAULT_CODE, RATE, SpynePartner
from tests.soap.conftest import KEYSTORE_PASSWORD

KEYSTORE_ENV = "SPYNE_KEYSTORE_PASSWORD"


@pytest.fixture(scope="module")
def spyne(pki: Pki) -> Iterator[SpynePartner]:
    with SpynePartner(pki) as server:
        yield server


@pytest.fixture(scope="module")
def spyne_aliases(pki: Pki, pki_files: PkiFiles, spyne: SpynePartner,
                  tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("spyne-aliases")
    # A certificate from a CA the partner does not trust.
    stranger = write_client_files(issue_client(pki, signed_by="other_ca"), directory / "keystores",
                                  password=KEYSTORE_PASSWORD, stem="stranger")
    records = [
        {"kind": "keystore", "name": "spyne_client", "type": "jks", "file": str(pki_files.client.jks),
         "password": {"env": KEYSTORE_ENV}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "spyne_root", "format": "pem", "file": str(pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "spyneMTLS", "keystore": "spyne_client",
         "trust_store_certs": ["spyne_root"], "use_system_trust": False},
        {"kind": "keystore", "name": "stranger", "type": "jks", "file": str(stranger.jks),
         "password": {"env": KEYSTORE_ENV}, "key_alias": "client"},
        {"kind": "protocol_profile", "name": "strangerMTLS", "keystore": "stranger",
         "trust_store_certs": ["spyne_root"], "use_system_trust": False},
        {"kind": "alias", "name": "spyne",
         "connection": {"url": spyne.url, "mutual_authentication": True, "protocol_profile": "spyneMTLS",
                        "timeout_s": 20}},
        {"kind": "alias", "name": "spyne_stranger",
         "connection": {"url": spyne.url, "mutual_authentication": True, "protocol_profile": "strangerMTLS",
                        "timeout_s": 20}},
    ]
    (directory / "spyne.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return directory


@pytest.fixture
def spyne_registry(spyne_aliases: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)
    return Registry.load(spyne_aliases)


def _flow(tmp_path: Path, spyne: SpynePartner, operation: str, args: Mapping[str, Any],
          outputs: Mapping[str, str], *, version: str = "11", alias: str = "spyne", **step: Any) -> FlowResult:
    flow = {"name": f"spyne_{operation}", "steps": [{
        "id": "call", "type": "soap", "alias": alias, "wsdl": f"{spyne.url}/soap{version}?wsdl",
        "path": f"/soap{version}", "operation": operation, "args": dict(args),
        "response": {"outputs": dict(outputs)}, **step}],
        "outputs": {name: f"{{{{ steps.call.outputs.{name} }}}}" for name in outputs}}
    path = tmp_path / f"{operation}.json"
    path.write_text(json.dumps(flow, indent=1), encoding="utf-8")
    return path


def _run(path: Path, registry: Registry) -> FlowResult:
    return run_flow(path, registry=registry)


def test_a_single_child_reply_keeps_its_element(tmp_path: Path, spyne: SpynePartner, spyne_registry: Registry) -> None:
    result = _run(_flow(tmp_path, spyne, "Add", {"a": 2, "b": 3}, {"sum": "body.AddResult"}), spyne_registry)
    assert result.status == "passed", result.error
    assert result.outputs == {"sum": 5}
    assert result.steps[0].body == {"AddResult": 5}
    assert spyne.client_certs, "the partner saw our client certificate"


def test_soap12(tmp_path: Path, spyne: SpynePartner, spyne_registry: Registry) -> None:
    path = _flow(tmp_path, spyne, "Greet", {"name": "Grace"}, {"greeting": "body.GreetResult"}, version="12",
                 soap_version="1.2")
    result = _run(path, spyne_registry)
    assert result.status == "passed", result.error
    assert result.outputs == {"greeting": "Hello, Grace!"}
    request = result.steps[0].request
    assert request is not None
    content_type = dict((k.lower(), v) for k, v in request.headers)["content-type"]
    assert content_type.startswith("application/soap+xml")


@pytest.mark.parametrize(("amount", "converted"), [
    ("0.00005", Decimal("0.00005") * RATE),
    ("12345678901234567.89", Decimal("12345678901234567.89") * RATE),
])
def test_decimals_round_trip_exactly(tmp_path: Path, spyne: SpynePartner, spyne_registry: Registry,
                                    amount: str, converted: Decimal) -> None:
    # The amount is a JSON number in the flow file, as a user writes it.
    path = _flow(tmp_path, spyne, "Convert", {"amount": "AMOUNT"}, {"converted": "body.ConvertResult"})
    path.write_text(path.read_text(encoding="utf-8").replace('"AMOUNT"', amount), encoding="utf-8")
    result = _run(path, spyne_registry)
    assert result.status == "passed", result.error
    assert result.outputs == {"converted": converted}
    assert isinstance(result.outputs["converted"], Decimal)


def test_a_fault_fails_the_step_with_its_code_string_and_detail(tmp_path: Path, spyne: SpynePartner,
                                                                spyne_registry: Registry) -> None:
    result = _run(_flow(tmp_path, spyne, "Divide", {"a": 7, "b": 0}, {}), spyne_registry)
    assert result.status == "failed"
    step = result.steps[0]
    error = step.error
    assert isinstance(error, SoapFaultError)
    assert step.http_status == 500
    assert error.faultcode is not None and error.faultcode.endswith(FAULT_CODE)
    assert error.faultstring == "cannot divide 7 by zero"
    assert "7" in json.dumps(error.detail, default=str)
    assert step.body["fault"]["string"] == "cannot divide 7 by zero"


@pytest.mark.parametrize("version", ["11", "12"])
def test_an_expected_fault_passes_and_its_fields_are_outputs(tmp_path: Path, spyne: SpynePartner,
                                                             spyne_registry: Registry, version: str) -> None:
    outputs = {"code": "fault.code", "reason": "fault.string", "dividend": "fault.detail.DivisionDetail.dividend"}
    extra = {"soap_version": "1.2"} if version == "12" else {}
    path = _flow(tmp_path, spyne, "Divide", {"a": 7, "b": 0}, outputs, version=version, **extra)
    flow = json.loads(path.read_text(encoding="utf-8"))
    flow["steps"][0]["response"]["expect_fault"] = True
    flow["steps"][0]["assert"] = [{"that": "fault.string", "equals": "cannot divide 7 by zero"}]
    path.write_text(json.dumps(flow), encoding="utf-8")
    result = _run(path, spyne_registry)
    assert result.status == "passed", result.error
    code = str(result.outputs["code"])
    if version == "11":
        assert code == f"soap11env:{FAULT_CODE}"
    else:  # SOAP 1.2: Spyne sends Code/Value Sender with the Subcode DivisionByZero
        assert "Sender" in code and "DivisionByZero" in code, code
    assert result.outputs["reason"] == "cannot divide 7 by zero"
    assert result.outputs["dividend"] == "7"


def test_the_same_calls_work_in_raw_envelope_mode(tmp_path: Path, spyne: SpynePartner,
                                                  spyne_registry: Registry) -> None:
    envelope = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:c="urn:flowrun:test:calculator"><soap:Body><c:Add><c:a>2</c:a><c:b>3</c:b></c:Add>'
                '</soap:Body></soap:Envelope>')
    flow = {"name": "spyne_raw", "steps": [{
        "id": "call", "type": "soap", "alias": "spyne", "wsdl": f"{spyne.url}/soap11?wsdl", "path": "/soap11",
        "envelope": envelope, "soap_action": "Add", "response": {"outputs": {"sum": "body.AddResult"}}}],
        "outputs": {"sum": "{{ steps.call.outputs.sum }}"}}
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    result = _run(path, spyne_registry)
    assert result.status == "passed", result.error
    assert result.outputs == {"sum": 5}


def test_a_client_certificate_the_partner_does_not_trust_is_refused(tmp_path: Path, spyne: SpynePartner,
                                                                     spyne_registry: Registry) -> None:
    result = _run(_flow(tmp_path, spyne, "Add", {"a": 2, "b": 3}, {"sum": "body.AddResult"}, alias="spyne_stranger"),
                  spyne_registry)
    assert result.status == "failed"
    assert isinstance(result.steps[0].error, ClientCertRejectedError), result.steps[0].error
