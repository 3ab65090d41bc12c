"""``flowrun test -i / --inputs-file / --data``: inputs go to every flow that declares them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from tests.flows.conftest import write_json


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def account_flow(name: str, **extra_inputs: Any) -> dict[str, Any]:
    return {"name": name, "inputs": {"account": {"type": "string"}, **extra_inputs},
            "steps": [{"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/{{ inputs.account }}",
                       "response": {"outputs": {"account": "body.account"}}}],
            "outputs": {"account": "{{ steps.balance.outputs.account }}"}}


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    directory = tmp_path / "suite"
    write_json(directory / "a.json", account_flow("needs_account"))
    write_json(directory / "b.json", account_flow("needs_account_and_limit", limit={"type": "number"}))
    write_json(directory / "c.json", {"name": "no_inputs", "steps": [
        {"id": "ping", "type": "rest", "alias": "bank", "path": "/accounts/1"}]})
    return directory


def test_without_the_required_input_the_suite_fails_with_exit_2(capsys: pytest.CaptureFixture[str],
                                                                 aliases: Path, suite: Path) -> None:
    code, out, _ = run_cli(capsys, "test", suite, "--aliases", aliases)
    assert code == 2
    assert "input 'account'" in out


def test_inputs_go_to_every_flow_that_declares_them(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                     suite: Path, tmp_path: Path) -> None:
    inputs_file = write_json(tmp_path / "inputs.json", {"account": "11", "limit": 5})
    report = tmp_path / "out.json"
    code, out, err = run_cli(capsys, "test", suite, "--aliases", aliases, "--inputs-file", inputs_file,
                             "-i", "account=7", "--json-report", report)
    assert code == 0, out + err
    assert "3 flows: 3 passed" in out
    flows = {f["name"]: f for f in json.loads(report.read_text())["flows"]}
    assert flows["needs_account"]["outputs"] == {"account": "7"}  # -i wins over the inputs file
    assert flows["needs_account_and_limit"]["outputs"] == {"account": "7"}


def test_an_input_no_flow_declares_is_a_usage_error(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                     suite: Path) -> None:
    code, _, err = run_cli(capsys, "test", suite, "--aliases", aliases, "-i", "account=7", "-i", "acount=8")
    assert code == 2
    assert "input 'acount'" in err and "declared by none of the flows (did you mean 'account'?)" in err
    assert "account, limit" in err


def test_data_runs_each_flow_once_per_row(capsys: pytest.CaptureFixture[str], aliases: Path, suite: Path,
                                          tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("account,limit\n7,1\n8,\n")
    report = tmp_path / "out.json"
    code, out, err = run_cli(capsys, "test", suite / "a.json", suite / "b.json", "--aliases", aliases,
                             "--data", data, "--json-report", report)
    # b.json needs limit: the empty cell of row 2 counts as not given, so that run is a definition error.
    assert code == 2, out + err
    assert f"{suite / 'b.json'} row 2: " in out
    assert "missing required input 'limit'" in out
    flows = json.loads(report.read_text())["flows"]
    assert sorted((f["name"], f["outputs"]["account"]) for f in flows) == [
        ("needs_account", "7"), ("needs_account", "8"), ("needs_account_and_limit", "7")]
    bad_column = write_json(tmp_path / "rows.json", [{"account": "7", "colour": "red"}])
    code, _, err = run_cli(capsys, "test", suite, "--aliases", aliases, "--data", bad_column)
    assert code == 2
    assert "input 'colour'" in err and "column of the data file" in err
