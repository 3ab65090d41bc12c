"""WSDLs nobody on this project wrote, each called through a flow over mutual TLS.

``tests/soap/corpus/<case>/`` holds a public WSDL (with its schemas; sources in SOURCES.md), a
reply envelope written for it by hand following the WSDL's schema, and ``flow.json``: one SOAP
step calling an operation, with the output expression a user would write (``body.AddResult``).
The partner (``_canned.CannedSoapPartner``) serves each reply at ``/<case>`` over real TLS with
a client certificate required. In WSDL mode zeep parses the reply against the WSDL (strict), so
a reply that does not follow the schema fails the case.

Each case must:
* pass as a flow in WSDL mode with the expected outputs;
* give the same outputs in raw-envelope mode (the envelope zeep sent, POSTed as text);
* pass ``flowrun validate``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from flowrun import SoapFaultError, SoapReplyError, run_flow
from flowrun._cli import main
from flowrun._registry import Registry
from flowrun.testing import Pki, PkiFiles
from tests.soap._canned import CannedSoapPartner
from tests.soap.conftest import KEYSTORE_PASSWORD

CORPUS = Path(__file__).resolve().parent / "corpus"
KEYSTORE_ENV = "CORPUS_KEYSTORE_PASSWORD"
QUOTE_PASSWORD = "quote-Pw-3"

# What each case's flow outputs; the flows assert the same values themselves.
EXPECTED: dict[str, dict[str, Any]] = {
    "asmx_number_conversion": {"words": "five hundred "},
    "asmx_country_info": {"capital": "Brussels", "second_language": "French"},
    "asmx_calculator_soap12": {"sum": 5},
    "asmx_temperature": {"fahrenheit": "68"},
    "asmx_text_casing": {"inverted": "hELLO wORLD"},
    "wcf_service_finder": {"area": "BOM", "holiday": "Republic Day"},
    "wcf_sample_service": {"id": 42, "email": "ada@example.org"},
    "workday_human_resources": {"disability_id": "DISABILITY-6-17", "version": "v39.0"},
    "sap_purchase_order": {"first_id": "4711", "currency": "EUR", "big_amount": Decimal("12345678901234567.89")},
    "spring_ws_countries": {"capital": "Warsaw", "population": 38186860},
    "jaxws_rpc_literal": {"first": "ping", "number": 7},
    "cxf_soap12_only": {"greeting": "Bonjour"},
    "cxf_rpc_soap_action": {"text": "sayHi1 answered"},
    "cxf_add_numbers": {"sum": 5},
    "cxf_hello_service_learnws": {"message": "Hello Grace!"},
    "zeep_stock_quote": {"price": 120.5},
    "zeep_soap_header": {"price": 120.5},
    "amazon_queue_multi_port": {"queue_url": "https://queue.amazonaws.com/123456789012/settlements"},
    "rpc_encoded_cdas": {"second": "Cluster"},
    "zeep_imported_binding": {"price": 99.25},
}
CASES = sorted(EXPECTED)


def test_every_case_directory_is_listed_with_a_flow_and_a_reply() -> None:
    directories = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
    assert directories == CASES
    for case in CASES:
        assert (CORPUS / case / "flow.json").is_file(), case
        assert (CORPUS / case / "reply.xml").is_file(), case
    assert len(CASES) >= 15


def test_sources_name_every_corpus_file() -> None:
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    ours = {"flow.json", "reply.xml", "reply_fault.xml"}
    for path in sorted(CORPUS.rglob("*")):
        if path.is_file() and path.name not in ours and path.name != "SOURCES.md":
            assert str(path.relative_to(CORPUS)) in sources, f"{path.relative_to(CORPUS)} missing from SOURCES.md"


@pytest.fixture(scope="module")
def canned(pki: Pki) -> Iterator[CannedSoapPartner]:
    replies = {f"/{case}": (CORPUS / case / "reply.xml").read_bytes() for case in CASES}
    faults = {f"/{path.parent.name}/fault": path.read_bytes() for path in CORPUS.glob("*/reply_fault.xml")}
    # A reply that breaks its schema: one misspelt element name.
    calculator = replies["/asmx_calculator_soap12"]
    misspelt = {"/asmx_calculator_soap12/misspelt": calculator.replace(b"AddResult", b"AddRsult")}
    with CannedSoapPartner(pki, {**replies, **faults, **misspelt}, status=dict.fromkeys(faults, 500)) as server:
        yield server


@pytest.fixture(scope="module")
def corpus_aliases(pki_files: PkiFiles, canned: CannedSoapPartner,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("corpus-aliases")
    records = [
        {"kind": "keystore", "name": "corpus_client", "type": "jks", "file": str(pki_files.client.jks),
         "password": {"env": KEYSTORE_ENV}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "corpus_root", "format": "pem", "file": str(pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "corpusMTLS", "keystore": "corpus_client",
         "trust_store_certs": ["corpus_root"], "use_system_trust": False},
        {"kind": "alias", "name": "corpus",
         "connection": {"url": canned.url(), "mutual_authentication": True, "protocol_profile": "corpusMTLS",
                        "timeout_s": 20}},
    ]
    (directory / "corpus.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return directory


@pytest.fixture
def corpus_env(monkeypatch: pytest.MonkeyPatch) -> Mapping[str, str]:
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)
    monkeypatch.setenv("QUOTE_PASSWORD", QUOTE_PASSWORD)
    return {KEYSTORE_ENV: KEYSTORE_PASSWORD, "QUOTE_PASSWORD": QUOTE_PASSWORD}


@pytest.fixture
def corpus_registry(corpus_aliases: Path, corpus_env: Mapping[str, str]) -> Registry:
    return Registry.load(corpus_aliases)


def _run(flow: Path, registry: Registry, environ: Mapping[str, str]) -> Any:
    result = run_flow(flow, registry=registry, environ=environ)
    step = result.steps[0]
    assert result.status == "passed", f"{flow.parent.name}: {step.error!r}, body {step.body!r}"
    return result


@pytest.mark.parametrize("case", CASES)
def test_wsdl_mode_gives_the_natural_outputs(case: str, canned: CannedSoapPartner, corpus_registry: Registry,
                                            corpus_env: Mapping[str, str]) -> None:
    before = len(canned.requests_to(f"/{case}"))
    result = _run(CORPUS / case / "flow.json", corpus_registry, corpus_env)
    assert dict(result.outputs) == EXPECTED[case]
    sent = canned.requests_to(f"/{case}")
    assert len(sent) == before + 1
    assert sent[-1].client_cert_sha256 is not None, "the call must go over mutual TLS"


@pytest.mark.parametrize("case", CASES)
def test_raw_envelope_mode_gives_the_same_outputs(case: str, canned: CannedSoapPartner, corpus_registry: Registry,
                                                  corpus_env: Mapping[str, str], tmp_path: Path) -> None:
    wsdl_result = _run(CORPUS / case / "flow.json", corpus_registry, corpus_env)
    request = canned.requests_to(f"/{case}")[-1]
    raw_flow = _raw_flow(case, request.body.decode("utf-8"), _soap_action(request.header("SOAPAction"),
                                                                           request.header("Content-Type")))
    path = tmp_path / "raw.json"
    path.write_text(_dump(raw_flow), encoding="utf-8")
    raw_result = _run(path, corpus_registry, corpus_env)
    assert dict(raw_result.outputs) == dict(wsdl_result.outputs) == EXPECTED[case]
    assert canned.requests_to(f"/{case}")[-1].body == request.body


def _raw_flow(case: str, envelope: str, soap_action: str | None) -> dict[str, Any]:
    """The case's flow with the operation call replaced by the envelope as text. The step keeps
    naming its WSDL (as an absolute path: the flow now lives elsewhere), and the service/port in
    it, so that replies keep their types."""
    flow = json.loads((CORPUS / case / "flow.json").read_text(encoding="utf-8"), parse_float=Decimal)
    step = flow["steps"][0]
    for key in ("operation", "args", "soap_headers"):
        step.pop(key, None)
    step["wsdl"] = str(CORPUS / case / step["wsdl"])
    step["envelope"] = envelope
    if soap_action is not None:
        step["soap_action"] = soap_action
    return flow


def _dump(flow: Mapping[str, Any]) -> str:
    """JSON with decimals written as the numbers they are (json.dumps cannot)."""
    marker = "\u0000decimal:"
    text = json.dumps(flow, indent=1, default=lambda value: f"{marker}{value}")
    return re.sub(r'"\\u0000decimal:([-0-9.eE+]+)"', r"\1", text)


def _soap_action(header: str | None, content_type: str | None) -> str | None:
    if header is not None:
        return header.strip('"')
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "action":
            return value.strip('"')
    return None


@pytest.mark.parametrize("case", CASES)
def test_validate_passes(case: str, corpus_aliases: Path, corpus_env: Mapping[str, str],
                         capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(CORPUS / case / "flow.json"), "--aliases", str(corpus_aliases), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert (code, report["problems"]) == (0, [])


def test_a_declared_fault_fails_the_step_with_code_string_and_detail(
        canned: CannedSoapPartner, corpus_registry: Registry, corpus_env: Mapping[str, str], tmp_path: Path) -> None:
    """Apache CXF's addNumbers declares a FaultDetail; the partner answers HTTP 500 with it."""
    flow = json.loads((CORPUS / "cxf_add_numbers" / "flow.json").read_text(encoding="utf-8"))
    step = flow["steps"][0]
    step["wsdl"] = str(CORPUS / "cxf_add_numbers" / step["wsdl"])
    step["path"] = "/cxf_add_numbers/fault"
    step["args"] = {"arg0": -1, "arg1": 3}
    path = tmp_path / "fault.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    result = run_flow(path, registry=corpus_registry, environ=corpus_env)
    assert result.status == "failed"
    failed = result.steps[0]
    assert failed.http_status == 500
    assert isinstance(failed.error, SoapFaultError)
    assert failed.error.faultcode == "soap:Server"
    assert failed.error.faultstring == "Negative number cant be added!"
    assert "Numbers: -1, 3" in json.dumps(failed.error.detail, default=str)


def test_a_reply_that_breaks_the_schema_fails_the_case(corpus_registry: Registry, corpus_env: Mapping[str, str],
                                                      tmp_path: Path) -> None:
    """What makes the corpus replies schema-checked: WSDL mode refuses an element the schema lacks."""
    flow = json.loads((CORPUS / "asmx_calculator_soap12" / "flow.json").read_text(encoding="utf-8"))
    step = flow["steps"][0]
    step["wsdl"] = str(CORPUS / "asmx_calculator_soap12" / step["wsdl"])
    step["path"] = "/asmx_calculator_soap12/misspelt"
    path = tmp_path / "misspelt.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    result = run_flow(path, registry=corpus_registry, environ=corpus_env)
    assert result.status == "failed"
    error = result.steps[0].error
    assert isinstance(error, SoapReplyError)
    assert "AddRsult" in error.message


def test_flowrun_test_runs_the_whole_corpus_and_reports_it(canned: CannedSoapPartner, corpus_aliases: Path,
                                                           corpus_env: Mapping[str, str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI a CI job runs: every corpus flow, two at a time, with a JUnit report."""
    junit = tmp_path / "corpus.xml"
    code = main(["test", str(CORPUS), "--aliases", str(corpus_aliases), "--parallel", "2", "--report", str(junit)])
    output = capsys.readouterr()
    assert code == 0, output.out + output.err
    suite = ElementTree.parse(junit).getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) >= len(CASES)
    assert not suite.findall(".//failure") and not suite.findall(".//error")
    named = " ".join(f"{case.get('classname')} {case.get('name')}" for case in cases)
    for case in CASES:
        assert case in named, case
