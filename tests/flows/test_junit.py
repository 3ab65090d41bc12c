"""JUnit XML and JSON reports, and ``flowrun test`` over files and directories."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from flowrun import AssertionFailedError, FlowResult, SoapFaultError, StepResult
from flowrun._cli import main
from flowrun._models._results import AssertionOutcome
from flowrun._report._junit import junit_xml
from tests.flows.conftest import REPO, write_json

CANONICAL = REPO / "samples" / "flows" / "balance.json"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sample_results() -> list[FlowResult]:
    passed = AssertionOutcome(passed=True, expression="status", op="equals", expected=200, actual=200,
                              message="status equals 200: actual 200")
    nasty = 'a <tag> & "quote" \x01 \ud800 end'
    failed = AssertionOutcome(passed=False, expression="body.note", op="equals", expected="ok", actual=nasty,
                              message=f"body.note equals \"ok\": actual {nasty}")
    assertion_error = AssertionFailedError(failed.message, expression="body.note", expected="ok", actual=nasty,
                                           step="check")
    fault = SoapFaultError("SOAP fault soap:Client: <unknown account>", faultcode="soap:Client", step="ledger")
    steps = (
        StepResult(step_id="check", kind="rest", status="failed", http_status=200, duration_ms=12.5,
                   assertions=(passed, failed), error=assertion_error),
        StepResult(step_id="ledger", kind="soap", status="failed", http_status=500, duration_ms=3.0, error=fault),
        StepResult(step_id="later", kind="rest", status="skipped"),
    )
    return [
        FlowResult(name="nasty & <flow>", status="failed", steps=steps, duration_ms=20.0, error=assertion_error,
                   inputs={"account": "7"}),
        FlowResult(name="fine", status="passed", steps=(StepResult(step_id="a", kind="rest", status="passed",
                                                                     http_status=200),), iteration=2),
    ]


def test_junit_structure_counts_and_escaping() -> None:
    root = ET.fromstring(junit_xml(sample_results()))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["nasty & <flow>", "fine [iteration 2]"]
    first = suites[0]
    cases = first.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "check", 'assert[0] status equals 200', 'assert[1] body.note equals ok', "ledger", "later"]
    # A step that failed by its assertions fails in the assertion's own testcase.
    assert cases[0].find("failure") is None
    assertion_failure = cases[2].find("failure")
    assert assertion_failure is not None
    assert assertion_failure.get("type") == "assertion"
    assert "expected: equals ok" in (assertion_failure.text or "")
    assert 'actual: a <tag> & "quote" \\x01 \ufffd end' in (assertion_failure.text or "")
    fault = cases[3].find("failure")
    assert fault is not None
    assert fault.get("type") == "soap.fault"
    assert "<unknown account>" in (fault.get("message") or "")
    assert cases[4].find("skipped") is not None
    # The facts of each step, in words: a step that got no response says so (not Python's None).
    assert (cases[0].findtext("system-out") or "").startswith("type: rest\nhttp_status: 200\n")
    assert "http_status: none (no response)\n" in (cases[4].findtext("system-out") or "")
    counts = (first.get("tests"), first.get("failures"), first.get("errors"), first.get("skipped"))
    assert counts == ("5", "2", "0", "1")
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("6", "2", "1")
    properties = first.find("properties")
    assert properties is not None
    assert [(p.get("name"), p.get("value")) for p in properties] == [("input.account", "7")]


def test_definition_errors_are_junit_errors() -> None:
    from flowrun import UnknownReferenceError

    error = UnknownReferenceError("no alias named 'bnak'", step="x")
    result = FlowResult(name="f", status="failed",
                        steps=(StepResult(step_id="x", kind="rest", status="failed", error=error),), error=error)
    suite = ET.fromstring(junit_xml([result])).find("testsuite")
    assert suite is not None
    assert suite.get("errors") == "1"
    assert suite.get("failures") == "0"


def test_flowrun_test_runs_a_directory(capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path) -> None:
    flows = tmp_path / "suite"
    write_json(flows / "good.json", {"name": "good", "steps": [
        {"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/7",
         "assert": [{"that": "status", "equals": 200}, {"that": "body.currency", "equals": "EUR"}]}]})
    write_json(flows / "nested" / "bad.json", {"name": "bad", "steps": [
        {"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/7",
         "assert": [{"that": "body.balance", "lt": 0}]}]})
    write_json(flows / "data.json", [{"not": "a flow"}])
    report, json_report = tmp_path / "out.xml", tmp_path / "out.json"
    code, out, _ = run_cli(capsys, "test", flows, "--aliases", aliases, "--report", report,
                           "--json-report", json_report, "--parallel", "2", "-v")
    assert code == 1
    assert "good (" in out
    assert "bad (" in out
    assert "ok    assert status equals 200" in out
    assert "assertion failed: body.balance lt 0" in out
    assert "2 flows: 1 passed, 1 failed" in out
    root = ET.parse(report).getroot()
    assert sorted(s.get("name") or "" for s in root.findall("testsuite")) == ["bad", "good"]
    assert root.get("tests") == "5"
    assert root.get("failures") == "1"
    data = json.loads(json_report.read_text())
    assert data["status"] == "failed"
    assert data["summary"]["assertions"] == 3
    assert data["summary"]["assertions_failed"] == 1
    assert [f["name"] for f in data["flows"]] == ["good", "bad"]


def test_flowrun_test_on_samples_writes_valid_junit(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                    tmp_path: Path) -> None:
    report = tmp_path / "out.xml"
    run_cli(capsys, "test", CANONICAL, "--aliases", aliases, "--report", report)
    root = ET.parse(report).getroot()
    suite = root.find("testsuite")
    assert suite is not None
    assert suite.get("name") == "balance_check"
    assert suite.get("failures") == "0"
    assert suite.get("tests") == "3"


def test_flowrun_test_reports_unloadable_flows(capsys: pytest.CaptureFixture[str], aliases: Path,
                                               tmp_path: Path) -> None:
    broken = write_json(tmp_path / "broken.json", {"name": "broken", "steps": [{"id": "a", "type": "rest"}]})
    report = tmp_path / "out.xml"
    code, out, err = run_cli(capsys, "test", broken, CANONICAL, "--aliases", aliases, "--report", report)
    assert code == 2
    assert "give exactly one of 'alias', 'connection'" in out + err
    root = ET.parse(report).getroot()
    assert root.get("errors") == "1"


def test_flowrun_test_needs_flows(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "test", tmp_path)
    assert code == 2
    assert "no flow files found" in err


def test_flowrun_test_shows_progress_on_a_terminal(aliases: Path, tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import sys

    from tests.flows.conftest import API_KEY, PASSWORD

    env = {**os.environ, "FLOWRUN_TEST_KEYSTORE_PASSWORD": PASSWORD, "FLOWRUN_TEST_API_KEY": API_KEY,
           "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "flowrun", "test", str(CANONICAL), "--aliases",
                                    str(aliases)], stdout=follower, stderr=follower, env=env)
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    finally:
        os.close(leader)
    screen = b"".join(chunks).decode()
    assert "[0/1] running" in screen
    assert "\r\x1b[2K" in screen
    assert "\x1b[32" in screen  # coloured on a terminal
    assert "balance_check" in screen
