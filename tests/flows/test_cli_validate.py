"""``flowrun validate``: every problem, with file:line, JSON pointer and a hint; exit 2 on errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun._load._flows import FlowLoader
from flowrun.testing import PkiFiles
from tests.flows.conftest import REPO, alias_records, write_json

CANONICAL = REPO / "samples" / "flows" / "balance.json"


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def problems_of(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, list[dict[str, Any]]]:
    code, out, _ = run_cli(capsys, "validate", *args, "--json")
    return code, json.loads(out)["problems"]


def test_canonical_flow_is_valid(capsys: pytest.CaptureFixture[str], aliases: Path) -> None:
    code, out, _ = run_cli(capsys, "validate", CANONICAL, "--aliases", aliases)
    assert code == 0, out
    assert f"ok  {CANONICAL}" in out
    assert "1 flow file checked: 0 errors, 0 warnings" in out


BROKEN = """{
  "name": "broken",
  "inputs": {"account": {"type": "string", "default": "42"}},
  "env": ["REGION"],
  "steps": [
    {"id": "first", "type": "rest", "alias": "bank",
     "path": "/accounts/{{ inputs.acount }}",
     "headers": {"X-Region": "{{ env.REGON }}", "X-Next": "{{ steps.second.status }}"},
     "when": "inputs.account ==",
     "assert": [{"that": "status", "equals": 200}, {"that": "body.x", "matches": "("}]},
    {"id": "second", "type": "rest", "alias": "bnak", "path": "/x",
     "body": {"json": {"total": "{{ steps.first.outputs.total + }}"}}},
    {"id": "third", "type": "rest", "alias": "bank", "metod": "GET"}
  ],
  "outputs": {"x": "{{ stepz.first }}"}
}
"""


def test_broken_flow_reports_every_problem(capsys: pytest.CaptureFixture[str], aliases: Path,
                                           tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(BROKEN)
    code, problems = problems_of(capsys, path, "--aliases", aliases)
    assert code == 2
    found = {(p["pointer"], p["line"]): p for p in problems}
    expected = {
        ("/steps/0/path", 7): "input 'acount' is not declared by the flow (did you mean 'account'?)",
        ("/steps/0/headers/X-Region", 8): "environment variable 'REGON' is not declared (did you mean 'REGION'?)",
        ("/steps/0/when", 9): "",
        ("/steps/0/assert/1/matches", 10): "invalid regular expression",
        ("/steps/1/alias", 11): "did you mean 'bank'",
        ("/steps/1/body/json/total", 12): "",
        ("/steps/2/metod", 13): "unknown field 'metod' (did you mean 'method'?)",
        ("/outputs/x", 15): "'stepz' is not something a data pill can read (did you mean 'steps'?)",
    }
    for place, words in expected.items():
        assert place in found, (place, sorted(found))
        assert words in found[place]["message"], found[place]
        assert found[place]["file"] == str(path)
        assert found[place]["severity"] == "error"
    runs_later = [p for p in problems if "step 'second' runs after this point" in p["message"]]
    assert runs_later
    assert runs_later[0]["hint"]
    assert all(p.get("hint") for p in problems)


def test_text_output_has_file_line_pointer_and_hint(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                    tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(BROKEN)
    code, out, err = run_cli(capsys, "validate", path, "--aliases", aliases)
    assert code == 2
    text = out + err
    assert f"error[definition.schema]: {path}:13 at /steps/2/metod: unknown field 'metod'" in text
    assert "  hint: allowed fields here:" in text
    assert "1 flow file checked:" in text
    assert "Traceback" not in text


def test_uses_arguments_and_definition_pills_are_checked(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                         tmp_path: Path) -> None:
    write_json(tmp_path / "balance_of.json", {
        "type": "rest", "alias": "bank", "path": "/accounts/{{ inputs.account }}/{{ steps.other.status }}",
        "inputs": {"account": {"type": "string"}}})
    path = write_json(tmp_path / "flow.json", {"name": "f", "steps": [
        {"id": "a", "uses": "balance_of", "with": {"acount": "7"}}]})
    code, problems = problems_of(capsys, path, "--aliases", aliases)
    assert code == 2
    messages = [p["message"] for p in problems]
    assert any("has no input 'acount' (did you mean 'account'?)" in m for m in messages)
    assert any("needs input 'account'" in m for m in messages)
    definition_problem = next(p for p in problems if "cannot read other steps" in p["message"])
    assert definition_problem["file"] == str((tmp_path / "balance_of.json").resolve())
    assert definition_problem["pointer"] == "/path"


def test_missing_keystore_password_is_a_warning(capsys: pytest.CaptureFixture[str], aliases: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWRUN_TEST_KEYSTORE_PASSWORD")
    code, problems = problems_of(capsys, CANONICAL, "--aliases", aliases)
    assert code == 0
    assert problems
    assert {p["severity"] for p in problems} == {"warning"}
    assert any("FLOWRUN_TEST_KEYSTORE_PASSWORD is not set" in p["message"] for p in problems)


def test_wrong_keystore_password_is_an_error(capsys: pytest.CaptureFixture[str], aliases: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_TEST_KEYSTORE_PASSWORD", "not-the-password")
    code, problems = problems_of(capsys, CANONICAL, "--aliases", aliases)
    assert code == 2
    errors = [p for p in problems if p["severity"] == "error"]
    assert errors
    assert errors[0]["code"].startswith("keystore.")
    assert "not-the-password" not in json.dumps(problems)


def test_literal_secret_is_a_warning(capsys: pytest.CaptureFixture[str], pki_files: PkiFiles,
                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = alias_records(pki_files, "https://localhost:9")
    records[3]["key"] = "literal-api-key"
    write_json(tmp_path / "aliases" / "partner.json", records)
    monkeypatch.setenv("FLOWRUN_TEST_KEYSTORE_PASSWORD", "changeit")
    code, problems = problems_of(capsys, CANONICAL, "--aliases", tmp_path / "aliases")
    assert code == 0
    literal = [p for p in problems if "literal secret" in p["message"]]
    assert len(literal) == 1
    assert literal[0]["severity"] == "warning"
    assert literal[0]["pointer"] == "/3/key"
    assert "literal-api-key" not in json.dumps(problems)


def test_missing_alias_directory_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, problems = problems_of(capsys, CANONICAL, "--aliases", tmp_path / "nowhere")
    assert code == 2
    assert "does not exist" in problems[0]["message"]


def test_directories_are_searched_for_flows(capsys: pytest.CaptureFixture[str], aliases: Path,
                                            tmp_path: Path) -> None:
    write_json(tmp_path / "flows" / "a.json", {"name": "a", "steps": [
        {"id": "x", "type": "rest", "alias": "bank", "path": "/accounts/1"}]})
    write_json(tmp_path / "flows" / "not-a-flow.json", {"hello": "world"})
    code, out, _ = run_cli(capsys, "validate", tmp_path / "flows", "--aliases", aliases)
    assert code == 0
    assert "1 flow file checked" in out


def test_methods_and_step_types_in_any_case_and_no_follow_on_errors(capsys: pytest.CaptureFixture[str],
                                                                     tmp_path: Path) -> None:
    flow = write_json(tmp_path / "case.json", {"name": "case", "steps": [
        {"id": "first", "type": "REST", "connection": {"url": "https://partner.example"}, "method": "post",
         "path": "/x", "response": {"outputs": {"id": "body.id"}}},
        {"id": "second", "type": "Rest", "connection": {"url": "https://partner.example"},
         "path": "/y/{{ steps.first.outputs.id }}"},
        {"id": "third", "type": "rest", "connection": {"url": "https://partner.example"}, "methd": "GET",
         "path": "/z", "response": {"outputs": {"id": "body.id"}}},
        {"id": "fourth", "type": "rest", "connection": {"url": "https://partner.example"},
         "path": "/y/{{ steps.third.outputs.id }}"}],
        "outputs": {"id": "{{ steps.third.outputs.id }}"}})
    code = main(["validate", str(flow)])
    out = capsys.readouterr().out
    assert code == 2
    assert "unknown field 'methd'" in out
    assert "1 error" in out  # the refused step is not reported again where later pills read it
    assert "there is no step" not in out

    good = write_json(tmp_path / "good.json", {"name": "good", "steps": [
        {"id": "first", "type": "SOAP", "connection": {"url": "https://partner.example"},
         "envelope": "<x/>"},
        {"id": "second", "type": "REST", "connection": {"url": "https://partner.example"}, "method": "delete"}]})
    built = FlowLoader().load(good)
    assert built is not None
    assert [entry.step.kind for entry in built.steps] == ["soap", "rest"]
    assert built.steps[1].step.method == "DELETE"  # type: ignore[union-attr]


def test_validate_aliases_alone_opens_every_keystore(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     pki_files: PkiFiles, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "aliases"
    write_json(directory / "partner.json", alias_records(pki_files, "https://localhost:1"))
    monkeypatch.delenv("FLOWRUN_TEST_KEYSTORE_PASSWORD", raising=False)
    monkeypatch.setenv("FLOWRUN_TEST_API_KEY", "x")
    code = main(["validate", "--aliases", str(directory)])
    out = capsys.readouterr().out
    assert code == 0  # a missing variable is reported, not a crash and not an error
    # One unset variable, one warning: everything it kept from being checked, named once.
    assert out.count("FLOWRUN_TEST_KEYSTORE_PASSWORD") == 1
    assert ("environment variable FLOWRUN_TEST_KEYSTORE_PASSWORD is not set: not checked: "
            "alias 'bank', alias 'ledger', keystore 'client'") in out
    assert f"alias records in {directory} checked: 0 errors, 1 warning" in out
    monkeypatch.setenv("FLOWRUN_TEST_KEYSTORE_PASSWORD", "wrong-password")
    code = main(["validate", "--aliases", str(directory)])
    out = capsys.readouterr().out
    assert code == 2
    assert "error[keystore.wrong_password]" in out
    write_json(directory / "extra.json", {"kind": "keystore", "name": "unused", "file": "../nowhere/client.jks"})
    monkeypatch.setenv("FLOWRUN_TEST_KEYSTORE_PASSWORD", "changeit")
    code = main(["validate", "--aliases", str(directory)])
    out = capsys.readouterr().out
    assert code == 2  # no alias uses it, but it is opened all the same
    assert "keystore 'unused'" in out and "flowrun demo --keep DIR" in out
    code = main(["validate"])
    assert code == 2
    assert "give flow files or directories, or --aliases DIR" in capsys.readouterr().err


def test_a_flow_whose_alias_has_errors_is_not_ok(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    directory = tmp_path / "aliases"
    write_json(directory / "bank.json", json.loads((REPO / "aliases" / "bank.json").read_text()))
    code = main(["validate", str(REPO / "samples" / "flows" / "contract.json"), "--aliases", str(directory)])
    out = capsys.readouterr().out
    assert code == 2
    assert "keystore file not found" in out
    assert "contract.json: alias 'bank' has errors (above)" in out
    assert "ok  " not in out


def test_duration_ms_and_generated_values_pass_validate(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    flow = write_json(tmp_path / "timed.json", {"name": "timed", "steps": [
        {"id": "pay", "type": "rest", "connection": {"url": "https://partner.example"}, "method": "POST",
         "headers": {"Idempotency-Key": "{{ uuid() }}", "X-Date": "{{ now('%Y%m%d') }}"},
         "body": {"json": {"n": "{{ random_int(`1`, `9`) }}", "at": "{{ now() }}"}},
         "assert": [{"that": "duration_ms", "lt": 2000}]}]})
    assert main(["validate", str(flow)]) == 0, capsys.readouterr().out
    bad = write_json(tmp_path / "bad.json", {"name": "bad", "steps": [
        {"id": "pay", "type": "rest", "connection": {"url": "https://partner.example"},
         "headers": {"X-Date": "{{ now('%Y', 'x') }}"}, "assert": [{"that": "duration", "lt": 2000}]}]})
    assert main(["validate", str(bad)]) == 2
    out = capsys.readouterr().out
    assert "now() takes at most 1 argument, got 2" in out
    assert "'duration' is not something a data pill can read (did you mean 'duration_ms'?)" in out
