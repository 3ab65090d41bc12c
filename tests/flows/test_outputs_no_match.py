"""REST outputs that match nothing fail the step that produced them (with the expression, the
deepest part that exists, the closest key and the shape), unless they say they are optional."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowrun import OutputNotFoundError, ResponseSpec, run_flow
from tests.flows.conftest import write_json


def _flow(outputs: dict[str, Any], path: str = "/accounts/7") -> dict[str, Any]:
    return {"name": "outputs", "steps": [
        {"id": "balance", "type": "rest", "alias": "bank", "path": path, "response": {"outputs": outputs}},
        {"id": "after", "type": "rest", "alias": "bank", "path": "/accounts/{{ steps.balance.outputs.x }}"}]}


def test_a_json_output_that_matches_nothing_fails_its_step(aliases: Path, tmp_path: Path) -> None:
    result = run_flow(write_json(tmp_path / "f.json", _flow({"x": "body.balanse"})), aliases=aliases)

    assert [step.status for step in result.steps] == ["failed"]
    error = result.steps[0].error
    assert isinstance(error, OutputNotFoundError)
    assert error.step == "balance" and error.exit_code == 1
    assert "output 'x': 'body.balanse' matches nothing" in error.message
    assert "did you mean 'balance'?" in error.message
    assert "body is {" in error.message and "balance: number" in error.message
    assert "1234" not in error.message  # shapes, never values


def test_deeper_misses_and_general_expressions(aliases: Path, tmp_path: Path) -> None:
    deep = run_flow(write_json(tmp_path / "a.json", _flow({"x": "body.balance.amount"})), aliases=aliases)
    assert str(deep.steps[0].error).endswith(
        "output 'x': 'body.balance.amount' matches nothing: body.balance is a number, so it has no 'amount'")
    general = run_flow(write_json(tmp_path / "b.json", _flow({"x": "body.items[?id == `1`] | [0]"})), aliases=aliases)
    assert isinstance(general.steps[0].error, OutputNotFoundError)
    assert "matches nothing (null); the response is {status: int" in general.steps[0].error.message


def test_optional_outputs_defaults_and_literal_null_pass(aliases: Path, tmp_path: Path) -> None:
    outputs = {"x": {"expr": "body.nope", "optional": True}, "y": "body.nope || 'none'", "z": "`null`",
               "w": "body.account"}
    flow = _flow(outputs)
    flow["steps"][1]["path"] = "/accounts/{{ steps.balance.outputs.w }}"
    result = run_flow(write_json(tmp_path / "f.json", flow), aliases=aliases)

    assert result.ok, result.error
    assert result.steps[0].outputs == {"x": None, "y": "none", "z": None, "w": "7"}


def test_an_xpath_output_that_matches_nothing_fails(aliases: Path, tmp_path: Path) -> None:
    result = run_flow(write_json(tmp_path / "f.json", _flow({"x": "xpath://*[local-name()='nope']"}, "/xml")),
                      aliases=aliases)

    assert isinstance(result.steps[0].error, OutputNotFoundError)
    assert "the XPath" in result.steps[0].error.message


def test_the_python_api_takes_the_optional_form_too() -> None:
    spec = ResponseSpec(outputs={"a": "body.a", "b": {"expr": "body.b", "optional": True}})

    assert dict(spec.outputs) == {"a": "body.a", "b": "body.b"}
    assert spec.optional_outputs == frozenset({"b"})
