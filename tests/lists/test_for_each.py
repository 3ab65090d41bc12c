"""for_each against a real partner: one request per item, in parallel, outputs in item order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrun
from flowrun._cli import main
from tests.lists._partner import ListPartner


@pytest.fixture
def partner() -> Iterator[ListPartner]:
    with ListPartner(delay_s=0.01) as server:
        yield server


def fan_out_flow(tmp_path: Path, url: str, *, concurrency: int = 8, on_error: str = "stop",
                 query: dict[str, Any] | None = None, after: list[dict[str, Any]] | None = None) -> Path:
    connection = {"url": url}
    flow = {"name": "fan_out", "steps": [
        {"id": "list", "type": "rest", "connection": connection, "path": "/ids",
         "response": {"outputs": {"ids": "body.ids"}}},
        {"id": "each", "type": "rest", "connection": connection, "path": "/things/{{ item }}",
         "query": {"position": "{{ index }}", **(query or {})},
         "for_each": "{{ steps.list.outputs.ids }}", "concurrency": concurrency, "on_error": on_error,
         "response": {"outputs": {"name": "body.name", "id": "body.id"}},
         "assert": [{"that": "body.id", "equals": "{{ item }}"}]},
        *(after or [])],
        "outputs": {"names": "{{ steps.each.outputs.name }}"}}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    return path


def check_hundred(result: flowrun.FlowResult, partner: ListPartner) -> None:
    assert result.status == "passed", result.error
    assert result.outputs["names"] == [f"thing {n}" for n in range(1, 101)]
    each = result.steps[1]
    assert each.outputs["id"] == list(range(1, 101))
    assert len(each.iterations) == 100
    seen = partner.requests_to("/things/")
    assert len(seen) == 100
    assert sorted(int(s.path.rsplit("/", 1)[1]) for s in seen) == list(range(1, 101))
    assert {(s.path, s.query["position"]) for s in seen} == {(f"/things/{n}", str(n - 1)) for n in range(1, 101)}
    assert 2 <= partner.max_in_flight <= 8


def test_a_for_each_over_100_ids_at_concurrency_8(partner: ListPartner, tmp_path: Path) -> None:
    check_hundred(flowrun.run_flow(fan_out_flow(tmp_path, partner.url)), partner)


def test_the_async_runner_runs_the_items_as_tasks(partner: ListPartner, tmp_path: Path) -> None:
    check_hundred(asyncio.run(flowrun.run_flow_async(fan_out_flow(tmp_path, partner.url))), partner)


def test_one_failure_fails_the_step_and_stops_the_items(partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(fan_out_flow(tmp_path, partner.url, concurrency=1, query={"fail": "7"}))

    assert result.status == "failed"
    each = result.steps[1]
    assert each.status == "failed"
    assert isinstance(each.error, flowrun.UnexpectedStatusError)
    assert "item 6 of 100" in str(each.error)
    assert [item.status for item in each.iterations[:8]] == ["passed"] * 6 + ["failed", "skipped"]
    assert len(partner.requests_to("/things/")) == 7
    assert result.to_dict()["steps"][1]["iterations"][6]["status"] == "failed"


def test_on_error_continue_runs_every_item_and_later_steps(partner: ListPartner, tmp_path: Path) -> None:
    after = [{"id": "then", "type": "rest", "connection": {"url": partner.url}, "path": "/ping"}]
    result = flowrun.run_flow(fan_out_flow(tmp_path, partner.url, on_error="continue", query={"fail": "7"},
                                           after=after))

    assert result.status == "failed"  # continuing never hides the failure
    each = result.steps[1]
    assert each.status == "failed"
    assert each.outputs["id"][6] is None and each.outputs["id"][7] == 8
    assert len(partner.requests_to("/things/")) == 100
    assert result.steps[2].status == "passed"


def test_for_each_over_something_else_than_an_array_fails(partner: ListPartner, tmp_path: Path) -> None:
    path = fan_out_flow(tmp_path, partner.url)
    flow = json.loads(path.read_text())
    flow["steps"][1]["for_each"] = "{{ steps.list.status }}"
    path.write_text(json.dumps(flow))
    result = flowrun.run_flow(path)
    error = result.steps[1].error
    assert isinstance(error, flowrun.DataPillError)
    assert "for_each must give an array" in str(error) and "int" in str(error)
    assert partner.requests_to("/things/") == []


def test_validate_checks_the_for_each_pill(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fan_out_flow(tmp_path, "http://127.0.0.1:9")
    flow = json.loads(path.read_text())
    flow["steps"][1]["for_each"] = "{{ steps.lst.outputs.ids }}"
    path.write_text(json.dumps(flow))
    code = main(["validate", str(path), "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 2
    assert [p["pointer"] for p in problems] == ["/steps/1/for_each"], problems
    assert "did you mean 'list'" in problems[0]["message"]


def test_validate_accepts_item_and_index_in_a_for_each_step(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", str(fan_out_flow(tmp_path, "http://127.0.0.1:9")), "--json"])
    assert code == 0, capsys.readouterr().out
