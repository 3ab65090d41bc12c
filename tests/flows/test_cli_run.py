"""``flowrun run``: summary, --json, exit codes, inputs, --data, --iterations, -v, --report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun.testing import PartnerServer
from tests.flows.conftest import API_KEY, PASSWORD, REPO, write_json

CANONICAL = REPO / "samples" / "flows" / "balance.json"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def echo_flow() -> dict[str, Any]:
    return {"name": "echo",
            "inputs": {"account": {"type": "string"}, "amount": {"type": "number", "default": 1}},
            "steps": [{"id": "echo", "type": "rest", "alias": "bank", "method": "POST", "path": "/echo",
                       "body": {"json": {"account": "{{ inputs.account }}", "amount": "{{ inputs.amount }}"}},
                       "response": {"outputs": {"sent": "body.body_text"}}}],
            "outputs": {"sent": "{{ steps.echo.outputs.sent }}"}}


def test_run_canonical_flow_prints_a_summary(capsys: pytest.CaptureFixture[str], aliases: Path) -> None:
    code, out, err = run_cli(capsys, "run", CANONICAL, "--aliases", aliases, "-i", "account=7")
    assert code == 0, out + err
    assert "balance_check" in out
    assert "passed" in out
    lines = out.splitlines()
    assert any(line.split()[:4] == ["ok", "balance", "rest", "200"] for line in lines)
    assert any(line.split()[:3] == ["ok", "ledger", "soap"] for line in lines)
    assert any("tls:" in line and "sent CN=flowrun-demo-client" in line for line in lines)
    assert "balance = 1234.5" in out
    assert "\x1b[" not in out  # plain when not a terminal


def test_run_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str], aliases: Path) -> None:
    code, out, _ = run_cli(capsys, "run", CANONICAL, "--aliases", aliases, "-i", "account=7", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["status"] == "passed"
    assert data["outputs"] == {"balance": 1234.5}
    assert [step["id"] for step in data["steps"]] == ["balance", "ledger"]
    for step in data["steps"]:
        assert {"id", "status", "http_status", "attempts", "duration_ms", "error"} <= set(step)
        assert step["status"] == "passed"
        assert step["error"] is None
        assert isinstance(step["attempts"], int)
    assert data["steps"][0]["http_status"] == 200


def test_failing_assertion_exits_1_naming_step_expression_expected_actual(
        capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path) -> None:
    flow = {"name": "strict", "steps": [{"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/7",
                                         "response": {"outputs": {"balance": "body.balance"}},
                                         "assert": [{"that": "outputs.balance", "gt": 5000}]}]}
    path = write_json(tmp_path / "strict.json", flow)
    code, out, err = run_cli(capsys, "run", path, "--aliases", aliases)
    assert code == 1
    assert "Traceback" not in out + err
    assert "FAIL  balance" in out
    assert "expression: outputs.balance" in out
    assert "expected:   gt 5000" in out
    assert "actual:     1234.5" in out
    code, out, _ = run_cli(capsys, "run", path, "--aliases", aliases, "--json")
    assert code == 1
    error = json.loads(out)["steps"][0]["error"]
    assert error["code"] == "assertion"
    assert error["step"] == "balance"
    assert "outputs.balance gt 5000" in error["message"]


def test_typed_inputs_from_the_command_line_and_a_file(
        capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "echo.json", echo_flow())
    code, out, _ = run_cli(capsys, "run", path, "--aliases", aliases, "-i", "account=7", "-i", "amount=7", "--json")
    assert code == 0
    assert json.loads(json.loads(out)["outputs"]["sent"]) == {"account": "7", "amount": 7}
    inputs = write_json(tmp_path / "inputs.json", {"account": "from-file", "amount": 2.5})
    code, out, _ = run_cli(capsys, "run", path, "--aliases", aliases, "--inputs-file", inputs,
                           "-i", "amount=3", "--json")
    assert code == 0
    assert json.loads(json.loads(out)["outputs"]["sent"]) == {"account": "from-file", "amount": 3}


def test_bad_inputs_exit_2_without_traceback(capsys: pytest.CaptureFixture[str], aliases: Path,
                                             tmp_path: Path) -> None:
    path = write_json(tmp_path / "echo.json", echo_flow())
    code, out, err = run_cli(capsys, "run", path, "--aliases", aliases)
    assert code == 2
    assert "missing required input 'account'" in err
    assert "Traceback" not in out + err
    code, _, err = run_cli(capsys, "run", path, "--aliases", aliases, "-i", "account")
    assert code == 2
    assert "expected NAME=VALUE" in err


def test_broken_flow_file_exits_2_with_place(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "steps": [\n'
                    '    {"id": "a", "type": "rest", "alias": "b", "path": 1}\n  ]\n}\n')
    code, _, err = run_cli(capsys, "run", path)
    assert code == 2
    assert f"{path}:4 at /steps/0/path" in err
    assert "must be a string" in err


def test_data_rows_run_once_each(capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "echo.json", echo_flow())
    rows = tmp_path / "rows.csv"
    rows.write_text("account,amount\n7,10\n8,\n")
    code, out, _ = run_cli(capsys, "run", path, "--aliases", aliases, "--data", rows, "--json")
    assert code == 0
    data = json.loads(out)
    sent = [json.loads(run["outputs"]["sent"]) for run in data["iterations"]]
    # An empty cell is "not given": the default applies.
    assert sent == [{"account": "7", "amount": 10}, {"account": "8", "amount": 1}]
    assert [run["iteration"] for run in data["iterations"]] == [1, 2]
    json_rows = write_json(tmp_path / "rows.json", [{"account": "a"}, {"account": "b", "amount": 2}])
    code, out, _ = run_cli(capsys, "run", path, "--aliases", aliases, "--data", json_rows, "--iterations", "2")
    assert code == 0
    assert sum(1 for line in out.splitlines() if line.startswith("ok   iteration")) == 4
    assert "4 flows: 4 passed, 0 failed" in out


def test_bad_data_row_names_the_row(capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "echo.json", echo_flow())
    rows = tmp_path / "rows.csv"
    rows.write_text("account,amount\n7,10\n8,lots\n")
    code, _, err = run_cli(capsys, "run", path, "--aliases", aliases, "--data", rows)
    assert code == 2
    assert "data row 2: input 'amount' must be a number" in err


def test_iterations_share_one_connection(capsys: pytest.CaptureFixture[str], aliases: Path,
                                         partner: PartnerServer, tmp_path: Path) -> None:
    flow = {"name": "repeat", "steps": [{"id": "a", "type": "rest", "alias": "bank", "path": "/accounts/7",
                                         "assert": [{"that": "status", "equals": 200}]}]}
    path = write_json(tmp_path / "repeat.json", flow)
    before = partner.handshakes
    code, out, _ = run_cli(capsys, "run", path, "--aliases", aliases, "--iterations", "5", "--json")
    assert code == 0
    assert len(json.loads(out)["iterations"]) == 5
    assert partner.handshakes == before + 1


def test_verbose_shows_requests_with_secrets_redacted(capsys: pytest.CaptureFixture[str], aliases: Path) -> None:
    code, out, err = run_cli(capsys, "run", CANONICAL, "--aliases", aliases, "-v")
    assert code == 0
    assert "> GET https://localhost:" in err
    assert "/v2/accounts/42?currency=EUR" in err
    assert "> X-API-Key: ***" in err
    assert "< attempt 1: 200" in err
    assert API_KEY not in out + err
    assert PASSWORD not in out + err


def test_verbose_shows_request_and_response_bodies_capped_and_redacted(capsys: pytest.CaptureFixture[str],
                                                                      aliases: Path, tmp_path: Path) -> None:
    flow = {"name": "bodies", "steps": [
        {"id": "post", "type": "rest", "alias": "bank", "method": "POST", "path": "/echo",
         "body": {"json": {"amount": 12.5, "password": "hunter2-Secret", "note": "x" * 5000}}}]}
    code, _, err = run_cli(capsys, "run", write_json(tmp_path / "bodies.json", flow), "--aliases", aliases, "-v")
    assert code == 0
    assert '> {"amount":12.5,"password":"***","note":"xxx' in err
    assert re.search(r'^> \{"amount".{1990,2010}\.\.\. \(50\d\d characters in all\)$', err, re.M)  # capped
    assert "< body shape: {method: string, path: string, query: [], headers: [" in err
    assert '< body: {"method": "POST"' in err
    assert '["X-API-Key", "***"]' in err  # the partner echoes our headers: a credential header stays hidden
    assert "hunter2-Secret" not in err and API_KEY not in err


def test_report_writes_junit(capsys: pytest.CaptureFixture[str], aliases: Path, tmp_path: Path) -> None:
    report = tmp_path / "reports" / "junit.xml"
    code, _, _ = run_cli(capsys, "run", CANONICAL, "--aliases", aliases, "--report", report)
    assert code == 0
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert suite.get("name") == "balance_check"
    assert [case.get("name") for case in suite.iter("testcase")][:2] == ["balance", "assert[0] outputs.balance gt 0"]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "run", CANONICAL, "--iterations", "0")
    assert code == 2
    assert "--iterations" in err
    code, _, err = run_cli(capsys, "run", tmp_path / "missing.json")
    assert code == 2
    assert "file not found" in err
    code, _, err = run_cli(capsys, "run", CANONICAL, "--connect-to", "nonsense")
    assert code == 2
    assert "HOST:PORT:TO_HOST:TO_PORT" in err


def test_the_installed_command_runs_end_to_end(aliases: Path) -> None:
    env = {**os.environ, "FLOWRUN_TEST_KEYSTORE_PASSWORD": PASSWORD, "FLOWRUN_TEST_API_KEY": API_KEY}
    done = subprocess.run([sys.executable, "-m", "flowrun", "run", str(CANONICAL), "--aliases", str(aliases),
                           "-i", "account=7", "--json"], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == {"balance": 1234.5}
    failing = subprocess.run([sys.executable, "-m", "flowrun", "run", str(CANONICAL), "--aliases", str(aliases),
                              "-i", "account=0"], capture_output=True, text=True, env=env, check=False)
    assert failing.returncode == 1
    assert "http.unexpected_status" in failing.stdout
    assert "Traceback" not in failing.stdout + failing.stderr
