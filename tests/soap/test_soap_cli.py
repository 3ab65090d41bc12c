"""SOAP flows through ``flowrun run`` as a user runs them: exact decimals from flow files and
``-i``, outputs that match nothing, optional outputs, faults in the text output and JUnit,
expected faults, ``--show-body`` and ``-v``."""

from __future__ import annotations

import decimal
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun._models._numbers import dumps
from flowrun._models._redact import REDACTED
from flowrun.testing import PartnerServer
from tests.soap.conftest import WSSE_PASSWORD

pytestmark = pytest.mark.usefixtures("secrets_env")
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
D = decimal.Decimal


def write_flow(tmp_path: Path, partner: PartnerServer, steps: list[dict[str, Any]], **extra: Any) -> Path:
    for step in steps:
        step.setdefault("type", "soap")
        step.setdefault("alias", "ledger")
        step.setdefault("path", "/shapes")
        if "envelope" not in step:
            step.setdefault("wsdl", f"{partner.url}/shapes?wsdl")
    path = tmp_path / "flow.json"
    path.write_text(json.dumps({"name": "shapes", "steps": steps, **extra}), encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.out, captured.err


def test_decimals_are_exact_from_the_flow_file_and_from_inputs(tmp_path: Path, partner: PartnerServer,
                                                               alias_dir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text("""{"name": "money", "inputs": {"small": {"type": "number"}}, "steps": [
      {"id": "big", "type": "soap", "alias": "ledger", "path": "/shapes", "wsdl": "%s",
       "operation": "Echo", "args": {"amount": 12345678901234567.89},
       "response": {"outputs": {"amount": "body.EchoResult.amount", "received": "body.EchoResult.received"}}},
      {"id": "small", "type": "soap", "alias": "ledger", "path": "/shapes", "wsdl": "%s",
       "operation": "Echo", "args": {"amount": "{{ inputs.small }}"},
       "response": {"outputs": {"amount": "body.EchoResult.amount"}},
       "assert": [{"that": "outputs.amount", "equals": 0.00005}]}],
      "outputs": {"big": "{{ steps.big.outputs.amount }}", "small": "{{ steps.small.outputs.amount }}",
                  "text": "sent {{ steps.big.outputs.amount }}"}}""" % ((f"{partner.url}/shapes?wsdl",) * 2),
                    encoding="utf-8")

    code, out, err = run(capsys, str(flow), "--aliases", str(alias_dir), "-i", "small=0.00005", "--json")

    assert code == 0, out + err
    assert '"big": 12345678901234567.89' in out and '"small": 0.00005' in out
    assert '"received": "12345678901234567.89"' in out
    assert '"text": "sent 12345678901234567.89"' in out
    assert "e+" not in out.lower() and "e-" not in out.lower()


def test_an_output_that_matches_nothing_fails_the_step(tmp_path: Path, partner: PartnerServer, alias_dir: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [
        {"id": "add", "operation": "Add", "args": {"a": 2, "b": 3},
         "response": {"outputs": {"sum": "body.AddReslt"}}},
        {"id": "after", "operation": "Add", "args": {"a": "{{ steps.add.outputs.sum }}", "b": 1}}])

    code, out, _ = run(capsys, str(flow), "--aliases", str(alias_dir))

    assert code == 1
    assert "error[capture.no_match]" in out
    assert "step 'add'" in out and "output 'sum'" in out
    assert "'body.AddReslt' matches nothing" in out
    assert "did you mean 'AddResult'?" in out
    assert "body is {AddResult: int}" in out
    assert "after" not in out  # the miss stops the flow where it happened


def test_optional_outputs_and_defaults(tmp_path: Path, partner: PartnerServer, alias_dir: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [
        {"id": "add", "operation": "Add", "args": {"a": 2, "b": 3},
         "response": {"outputs": {"sum": "body.AddResult", "maybe": {"expr": "body.Missing", "optional": True},
                                  "fallback": "body.Missing || 'none'"}}}],
        outputs={"all": "{{ steps.add.outputs }}"})

    code, out, _ = run(capsys, str(flow), "--aliases", str(alias_dir), "--json")

    assert code == 0, out
    assert json.loads(out)["outputs"]["all"] == {"sum": 5, "maybe": None, "fallback": "none"}


def test_a_fault_shows_code_string_and_detail_in_text_and_junit(tmp_path: Path, partner: PartnerServer,
                                                                alias_dir: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [{"id": "fail", "operation": "Fail", "args": {"reason": "backend down"}}])
    report = tmp_path / "junit.xml"

    code, out, _ = run(capsys, str(flow), "--aliases", str(alias_dir), "--report", str(report))

    assert code == 1
    for text in ("error[soap.fault]", "fault code:   soap:Server", "fault string: backend down",
                 "fault actor:  urn:flowrun:shapes:backend", 'fault detail: {"Problem": {"@severity": "high"'):
        assert text in out, out
    (failure,) = ET.parse(report).getroot().iter("failure")
    assert failure.get("type") == "soap.fault"
    assert "fault code:   soap:Server" in (failure.text or "")
    assert '"code": "E42"' in (failure.text or "")


def test_an_expected_fault_passes(tmp_path: Path, partner: PartnerServer, alias_dir: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [
        {"id": "refused", "operation": "Fail", "args": {"reason": "no"},
         "response": {"expect_fault": True, "outputs": {"code": "fault.code", "detail": "fault.detail.Problem.code"}},
         "assert": [{"that": "fault.string", "equals": "no"}]},
        {"id": "by_status", "operation": "Fail", "args": {"reason": "no"}, "response": {"expect_status": [500]},
         "assert": [{"that": "fault.code", "equals": "soap:Server"}]}])

    code, out, _ = run(capsys, str(flow), "--aliases", str(alias_dir), "--json")

    assert code == 0, out
    steps = json.loads(out)["steps"]
    assert steps[0]["outputs"] == {"code": "soap:Server", "detail": "E42"}
    assert steps[0]["fault"]["string"] == "no"

    unexpected = write_flow(tmp_path, partner, [
        {"id": "add", "operation": "Add", "args": {"a": 1, "b": 1}, "response": {"expect_fault": True}}])
    code, out, _ = run(capsys, str(unexpected), "--aliases", str(alias_dir))
    assert code == 1
    assert "expects a SOAP fault, and the call succeeded" in out


def test_an_arg_that_does_not_fit_its_type_names_the_element(tmp_path: Path, partner: PartnerServer,
                                                              alias_dir: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [{"id": "add", "operation": "Add", "args": {"a": "abc", "b": 1}},
                                          {"id": "echo", "operation": "Echo", "args": {"amount": "1.234,50"}}])
    before = len(partner.requests)

    code, out, _ = run(capsys, str(flow), "--aliases", str(alias_dir))

    assert code == 2
    assert "error[definition.soap_argument]" in out
    assert "Add/a: 'abc' is not a valid xs:int" in out
    assert not [r for r in partner.requests[before:] if r.method == "POST"]


def test_show_body_and_verbose(tmp_path: Path, partner: PartnerServer, alias_dir: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [
        {"id": "statement", "operation": "GetStatement", "args": {"account": "42", "mode": "one"}}])

    code, _, err = run(capsys, str(flow), "--aliases", str(alias_dir), "--show-body")

    assert code == 0
    assert "* step statement" in err
    assert '"#text": 10.05' in err and '"@currency": "EUR"' in err
    # A value named like a secret is redacted, whatever its origin.
    assert 'soap_headers = {\n  "Session": {\n    "token": "***",\n    "expires": 300' in err
    assert "session-7" not in err

    code, _, err = run(capsys, str(flow), "--aliases", str(alias_dir), "-v")
    assert code == 0
    assert "> POST " in err and "GetStatement" in err and "<ns0:account>42</ns0:account>" in err
    assert "< body shape: {Statement: {@account: string, Entry: [1 x {" in err
    assert '< body: {"Statement": {"@account": "42"' in err


def test_verbose_redacts_the_ws_security_password_in_the_request_body(tmp_path: Path, partner: PartnerServer,
                                                                      alias_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    flow = write_flow(tmp_path, partner, [
        {"id": "balance", "alias": "ledger_wsse_text", "path": "/ledger", "wsdl": f"{partner.url}/ledger?wsdl",
         "operation": "GetBalance", "args": {"account": "42"}}])

    code, out, err = run(capsys, str(flow), "--aliases", str(alias_dir), "-v")

    assert code == 0, out + err
    assert "UsernameToken" in err and "Password" in err
    assert WSSE_PASSWORD not in err
    assert f">{REDACTED}</" in err


def test_an_amount_from_a_rest_reply_reaches_a_soap_decimal_exactly(tmp_path: Path, partner: PartnerServer,
                                                                    alias_dir: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # The partner's /echo returns what it got: a JSON number with many digits comes back as JSON.
    envelope = (f"<soap:Envelope xmlns:soap='{SOAP11}' xmlns:s='urn:flowrun:shapes:1'><soap:Body><s:Echo>"
                "<s:amount>{{ steps.rest.outputs.tiny }}</s:amount></s:Echo></soap:Body></soap:Envelope>")
    flow = tmp_path / "chain.json"
    # Written with exact decimals, as a user's file has them.
    flow.write_text(dumps({"name": "chain", "steps": [
        {"id": "rest", "type": "rest", "alias": "ledger", "method": "POST", "path": "/echo",
         "body": {"json": {"amount": D("12345678901234567.89"), "tiny": D("0.00005")}},
         "response": {"outputs": {"amount": "body.json.amount", "tiny": "body.json.tiny"}}},
        {"id": "soap", "type": "soap", "alias": "ledger", "path": "/shapes", "wsdl": f"{partner.url}/shapes?wsdl",
         "operation": "Echo", "args": {"amount": "{{ steps.rest.outputs.amount }}"},
         "response": {"outputs": {"received": "body.EchoResult.received"}}},
        {"id": "raw", "type": "soap", "alias": "ledger", "path": "/shapes",
         "soap_action": "urn:flowrun:shapes:1#Echo", "envelope": envelope,
         "response": {"outputs": {"received": "body.EchoResult.received"}}}],
        "outputs": {"big": "{{ steps.soap.outputs.received }}", "tiny": "{{ steps.raw.outputs.received }}"}}),
        encoding="utf-8")
    assert "12345678901234567.89" in flow.read_text(encoding="utf-8")

    code, out, err = run(capsys, str(flow), "--aliases", str(alias_dir), "--json")

    assert code == 0, out + err
    assert json.loads(out)["outputs"] == {"big": "12345678901234567.89", "tiny": "0.00005"}


def test_expect_fault_on_a_rest_step_is_refused(tmp_path: Path, alias_dir: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "rest.json"
    flow.write_text(json.dumps({"name": "r", "steps": [
        {"id": "a", "type": "rest", "alias": "ledger", "response": {"expect_fault": True}}]}), encoding="utf-8")

    code, out, err = run(capsys, str(flow), "--aliases", str(alias_dir))

    assert code == 2
    assert "expect_fault applies to SOAP steps" in out + err
