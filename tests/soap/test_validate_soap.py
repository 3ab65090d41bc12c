"""``flowrun validate`` checks SOAP steps against their WSDL, offline.

The WSDLs are the corpus's (public files, see corpus/SOURCES.md). Each problem has its own class
and code, the flow file with line and JSON pointer, and a hint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowrun import SoapStep, SoapVersionError
from flowrun._cli import main
from flowrun._soap import SoapExecutor
from flowrun.testing import PartnerServer

CORPUS = Path(__file__).resolve().parent / "corpus"
CALCULATOR = CORPUS / "asmx_calculator_soap12" / "calculator-soap11and12.wsdl"
SERVICE_FINDER = CORPUS / "wcf_service_finder" / "spec.wsdl"
COUNTRIES = CORPUS / "spring_ws_countries" / "countries.wsdl"
QUEUES = CORPUS / "amazon_queue_multi_port" / "amazonQueue.wsdl"
SOAP12_ONLY = CORPUS / "cxf_soap12_only" / "hello_world_soap12.wsdl"
WORKDAY = CORPUS / "workday_human_resources" / "elementFormDefaultQualified.wsdl"


def _validate(tmp_path: Path, capsys: pytest.CaptureFixture[str], **step: Any) -> tuple[int, list[dict[str, Any]]]:
    """Validate a flow with one SOAP step (an inline connection: no alias directory needed)."""
    flow = {"name": "check", "steps": [{"id": "call", "type": "soap", "connection": {"url": "https://partner.example"},
                                        **step}]}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow, indent=2), encoding="utf-8")
    code = main(["validate", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)["problems"]


def _only(problems: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(problems) == 1, problems
    return problems[0]


def test_a_step_that_fits_its_wsdl_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _validate(tmp_path, capsys, wsdl=str(CALCULATOR), operation="Add", args={"intA": 1, "intB": 2},
                     soap_version="1.2") == (0, [])


def test_an_unknown_operation_is_reported_with_the_closest_name(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(CALCULATOR), operation="Ad", args={"intA": 1, "intB": 2})
    problem = _only(problems)
    assert code == 2
    assert problem["code"] == "definition.soap_operation"
    assert problem["pointer"] == "/steps/0/operation"
    assert problem["file"] == str(tmp_path / "flow.json")
    assert problem["line"] is not None
    assert "no operation 'Ad' (did you mean 'Add'?)" in problem["message"]
    assert "Add, Divide, Multiply, Subtract" in problem["hint"]


def test_a_misspelt_argument_points_at_it_and_is_not_also_reported_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(CALCULATOR), operation="Add", args={"intA": 1, "intb": 2})
    problem = _only(problems)
    assert code == 2
    assert problem["code"] == "definition.soap_argument"
    assert problem["pointer"] == "/steps/0/args/intb"
    assert "no input element 'intb' (did you mean 'intB'?)" in problem["message"]
    assert problem["hint"] == "its elements: intA, intB"


def test_a_missing_required_argument_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(CALCULATOR), operation="Add", args={"intA": 1})
    problem = _only(problems)
    assert code == 2
    assert (problem["code"], problem["pointer"]) == ("definition.soap_argument", "/steps/0/args")
    assert "operation Add needs 'intB'" in problem["message"]


def test_optional_and_nillable_arguments_may_be_left_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Every element of GetServicesforPincode is minOccurs=0 nillable (WCF data contracts).
    code, problems = _validate(tmp_path, capsys, wsdl=str(SERVICE_FINDER), operation="GetServicesforPincode", args={})
    assert (code, problems) == (0, [])


def test_nested_arguments_are_checked_against_their_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(SERVICE_FINDER), operation="GetServicesforPincode",
                               args={"pinCode": "400057", "profile": {"LoginId": "ops-7", "Version": "1.9"}})
    problem = _only(problems)
    assert code == 2
    assert problem["pointer"] == "/steps/0/args/profile/LoginId"
    assert "element 'profile' of GetServicesforPincode has no input element 'LoginId' (did you mean 'LoginID'?)" \
        in problem["message"]


def test_attributes_are_arguments_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Workday's Put_Disability_Request: Add_Only is an attribute, Disability_Data a required element.
    code, problems = _validate(tmp_path, capsys, wsdl=str(WORKDAY), operation="Put_Disability",
                               args={"Add_Only": True, "Disability_Data": {"Name": "x", "Nmae": "y"}})
    problem = _only(problems)
    assert problem["pointer"] == "/steps/0/args/Disability_Data/Nmae"
    assert code == 2


def test_soap_headers_by_plain_name_are_the_wsdls_header_parts(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    wsdl = CORPUS / "zeep_soap_header" / "soap_header.wsdl"
    code, problems = _validate(tmp_path, capsys, wsdl=str(wsdl), operation="GetLastTradePrice",
                               args={"tickerSymbol": "ACME"},
                               soap_headers={"header": {"username": "u", "pasword": "p"}, "tokn": {"value": "t"}})
    assert code == 2
    by_pointer = {p["pointer"]: p for p in problems}
    assert set(by_pointer) == {"/steps/0/soap_headers/header/pasword", "/steps/0/soap_headers/tokn"}
    assert "has no SOAP header 'tokn' (did you mean 'token'?)" in by_pointer["/steps/0/soap_headers/tokn"]["message"]
    assert by_pointer["/steps/0/soap_headers/tokn"]["hint"] == "its SOAP headers: header, token"
    assert "(did you mean 'password'?)" in by_pointer["/steps/0/soap_headers/header/pasword"]["message"]
    # {namespace}Name keys are elements built as given: nothing to check against the WSDL.
    assert _validate(tmp_path, capsys, wsdl=str(wsdl), operation="GetLastTradePrice", args={"tickerSymbol": "A"},
                     soap_headers={"{urn:partner}Trace": "t-1"}) == (0, [])


def test_a_soap_version_the_wsdl_lacks_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(COUNTRIES), operation="getCountry", args={"name": "x"},
                               soap_version="1.2")
    problem = _only(problems)
    assert code == 2
    assert (problem["code"], problem["pointer"]) == ("definition.soap_version", "/steps/0/soap_version")
    assert "asks for SOAP 1.2, and the WSDL" in problem["message"]
    assert "has SOAP 1.1 bindings only" in problem["message"]
    assert "set it to 1.1" in problem["hint"]


def test_a_soap12_only_wsdl_needs_no_soap_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _validate(tmp_path, capsys, wsdl=str(SOAP12_ONLY), operation="sayHi") == (0, [])
    _, problems = _validate(tmp_path, capsys, wsdl=str(SOAP12_ONLY), operation="sayHi", soap_version="1.1")
    assert _only(problems)["code"] == "definition.soap_version"


def test_several_ports_must_be_chosen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(QUEUES), operation="CreateQueue", args={"QueueName": "q"})
    problem = _only(problems)
    assert code == 2
    assert (problem["code"], problem["pointer"]) == ("definition.soap_port", "/steps/0")
    assert "QueueService/QueueServicePort, QueueService/QueueServiceHttpsPort" in problem["message"]
    assert problem["hint"] == "name one with the step's service and port"


def test_an_unknown_port_or_service_is_reported_with_the_closest_name(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl=str(QUEUES), operation="CreateQueue", args={"QueueName": "q"},
                               service="QueueService", port="QueueServiceHttpPort")
    problem = _only(problems)
    assert (problem["code"], problem["pointer"]) == ("definition.soap_port", "/steps/0/port")
    assert "(did you mean 'QueueServiceHttpsPort'?)" in problem["message"]
    code, problems = _validate(tmp_path, capsys, wsdl=str(QUEUES), operation="CreateQueue", args={"QueueName": "q"},
                               service="QueueServices")
    problem = _only(problems)
    assert (problem["code"], problem["pointer"]) == ("definition.soap_port", "/steps/0/service")
    assert "(did you mean 'QueueService'?)" in problem["message"]
    code, problems = _validate(tmp_path, capsys, wsdl=str(QUEUES), operation="CreateQueue", args={"QueueName": "q"},
                               service="QueueService", port="QueueServiceHttpsPort")
    assert (code, problems) == (0, [])


def _notes(tmp_path: Path, capsys: pytest.CaptureFixture[str], **step: Any) -> tuple[int, list[Any], list[Any]]:
    flow = {"name": "check", "steps": [{"id": "call", "type": "soap", "connection": {"url": "https://partner.example"},
                                        **step}]}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow, indent=2), encoding="utf-8")
    code = main(["validate", str(path), "--json"])
    report = json.loads(capsys.readouterr().out)
    return code, report["problems"], report["notes"]


def test_a_remote_wsdl_is_not_fetched_and_a_note_says_so(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens there: a fetch would fail the check, not note it.
    code, problems, notes = _notes(tmp_path, capsys, wsdl="https://127.0.0.1:9/ws?wsdl", operation="Anything")
    assert (code, problems) == (0, [])
    assert [note["code"] for note in notes] == ["soap.wsdl_not_fetched"]
    message = notes[0]["message"]
    assert f"{tmp_path / 'flow.json'}:" in message and "at /steps/0/wsdl step 'call'" in message
    assert "validate does not fetch it" in message
    assert "keep a local copy of the WSDL" in message


def test_a_remote_wsdl_note_in_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = {"name": "check", "steps": [{"id": "call", "type": "soap", "connection": {"url": "https://partner.example"},
                                        "wsdl": "https://127.0.0.1:9/ws?wsdl", "operation": "Anything"}]}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow), encoding="utf-8")
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "note[soap.wsdl_not_fetched]: " in captured.out + captured.err
    assert "0 errors, 0 warnings" in captured.out + captured.err


def test_a_local_wsdl_importing_over_https_is_noted_as_not_checked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wsdl = tmp_path / "remote-schema.wsdl"
    wsdl.write_text(COUNTRIES.read_text(encoding="utf-8").replace(
        "<wsdl:types>", '<wsdl:types><xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xs:import namespace="urn:x" schemaLocation="https://127.0.0.1:9/x.xsd"/></xs:schema>', 1), encoding="utf-8")
    code, problems, notes = _notes(tmp_path, capsys, wsdl=str(wsdl), operation="getCountry")
    assert (code, problems) == (0, [])
    assert [note["code"] for note in notes] == ["soap.wsdl_not_fetched"]
    assert "https://127.0.0.1:9/x.xsd" in notes[0]["message"]


def test_a_missing_or_broken_wsdl_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, problems = _validate(tmp_path, capsys, wsdl="nowhere.wsdl", operation="Add")
    problem = _only(problems)
    assert code == 2
    assert problem["pointer"] == "/steps/0/wsdl"
    assert str(tmp_path / "nowhere.wsdl") in problem["message"]
    (tmp_path / "broken.wsdl").write_text("<definitions><unclosed></definitions>", encoding="utf-8")
    code, problems = _validate(tmp_path, capsys, wsdl="broken.wsdl", operation="Add")
    problem = _only(problems)
    assert code == 2
    assert (problem["code"], problem["pointer"]) == ("soap.wsdl", "/steps/0/wsdl")


def test_a_soap_header_naming_an_undefined_message_is_an_error_not_a_crash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = COUNTRIES.read_text(encoding="utf-8")
    wsdl = tmp_path / "header.wsdl"
    wsdl.write_text(text.replace('<wsdl:input name="getCountryRequest">\n        <soap:body use="literal"/>',
                                 '<wsdl:input name="getCountryRequest">\n        <soap:body use="literal"/>'
                                 '<soap:header message="tns:Missing" part="h" use="literal"/>', 1), encoding="utf-8")
    assert wsdl.read_text(encoding="utf-8") != text
    code, problems = _validate(tmp_path, capsys, wsdl="header.wsdl", operation="getCountry")
    problem = _only(problems)
    assert code == 2
    assert (problem["code"], problem["pointer"]) == ("soap.wsdl", "/steps/0/wsdl")
    assert "Missing" in problem["message"]


def test_a_reusable_soap_step_is_checked_in_its_own_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    definition = tmp_path / "add_numbers.json"
    definition.write_text(json.dumps({
        "type": "soap", "connection": {"url": "https://partner.example"}, "wsdl": str(CALCULATOR),
        "operation": "Add", "args": {"intA": "{{ inputs.a }}", "intC": 2}, "inputs": {"a": {"type": "integer"}}},
        indent=2), encoding="utf-8")
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [{"id": "sum", "uses": "add_numbers", "with": {"a": 1}}]}),
                    encoding="utf-8")
    code = main(["validate", str(flow), "--steps", str(tmp_path), "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 2
    unknown = next(p for p in problems if "'intC'" in p["message"])
    assert unknown["file"] == str(definition.resolve())
    assert unknown["pointer"] == "/args/intC"
    assert "(did you mean 'intA'?)" in unknown["message"] or "(did you mean 'intB'?)" in unknown["message"]


def test_text_output_names_file_line_pointer_and_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flow = {"name": "check", "steps": [{"id": "add", "type": "soap", "connection": {"url": "https://partner.example"},
                                        "wsdl": str(CALCULATOR), "operation": "Add",
                                        "args": {"intA": 1, "intBB": 2}}]}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow, indent=2), encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f"error[definition.soap_argument]: {path}:" in text
    assert "at /steps/0/args/intBB step 'add': operation Add has no input element 'intBB' (did you mean 'intB'?)" \
        in text
    assert "hint: its elements: intA, intB" in text
    assert "Traceback" not in text


def test_a_soap_version_the_wsdl_lacks_fails_the_run_before_sending(soap: SoapExecutor,
                                                                    partner: PartnerServer) -> None:
    before = len(partner.requests)
    result = soap.run(SoapStep(id="c", alias="ledger", wsdl=str(COUNTRIES), operation="getCountry",
                               args={"name": "Poland"}, soap_version="1.2"))
    assert isinstance(result.error, SoapVersionError)
    assert "has SOAP 1.1 bindings only" in result.error.message
    assert len(partner.requests) == before
