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


def continue_flow(tmp_path: Path, url: str, *, fail: str = "7,42", bound: dict[str, Any] | None = None) -> Path:
    """Items 6 and 41 (ids 7 and 42) fail; a later step reads the count."""
    after = [{"id": "then", "type": "rest", "connection": {"url": url}, "path": "/ping",
              "query": {"failed": "{{ steps.each.failed_items }}"}}]
    path = fan_out_flow(tmp_path, url, on_error="continue", query={"fail": fail}, after=after)
    if bound is not None:
        flow = json.loads(path.read_text())
        flow["steps"][1]["assert"].append(bound)
        path.write_text(json.dumps(flow))
    return path


def check_tolerated(result: flowrun.FlowResult, partner: ListPartner) -> None:
    assert result.status == "passed", result.error
    each = result.steps[1]
    assert each.status == "passed" and each.error is None
    assert each.failed_items == 2
    assert each.outputs["id"][6] is None and each.outputs["id"][41] is None and each.outputs["id"][7] == 8
    assert [index for index, item in enumerate(each.iterations) if item.status == "failed"] == [6, 41]
    assert isinstance(each.iterations[41].error, flowrun.UnexpectedStatusError)
    assert len(partner.requests_to("/things/")) == 100
    assert result.steps[2].status == "passed"
    assert partner.requests_to("/ping")[0].query["failed"] == "2"


def test_on_error_continue_passes_the_step_and_shows_the_failed_items(partner: ListPartner,
                                                                        tmp_path: Path) -> None:
    check_tolerated(flowrun.run_flow(continue_flow(tmp_path, partner.url)), partner)


def test_on_error_continue_in_the_async_runner(partner: ListPartner, tmp_path: Path) -> None:
    check_tolerated(asyncio.run(flowrun.run_flow_async(continue_flow(tmp_path, partner.url))), partner)


def test_failed_items_stay_visible_in_every_report(partner: ListPartner, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = continue_flow(tmp_path, partner.url)

    assert main(["run", str(path), "--json"]) == 0
    step = json.loads(capsys.readouterr().out)["steps"][1]
    assert step["status"] == "passed" and step["error"] is None
    assert step["failed_items"] == 2
    failed = [item for item in step["iterations"] if item["status"] == "failed"]
    assert [item["index"] for item in failed] == [6, 41]
    assert failed[1]["error"]["code"] == "http.unexpected_status"
    assert "HTTP 500" in failed[1]["error"]["message"] and "/things/42" in failed[1]["error"]["message"]

    report, page = tmp_path / "junit.xml", tmp_path / "report.html"
    assert main(["run", str(path), "--report", str(report), "--html", str(page)]) == 0
    text = capsys.readouterr().out
    assert "warning: 2 of 100 items failed; the step passed because its on_error is continue" in text
    assert "for_each: 100 items: 98 passed, 2 failed" in text
    item_41 = next(line for line in text.splitlines() if "item 41: failed" in line)
    assert "error[http.unexpected_status]: HTTP 500" in item_41 and "/things/42" in item_41

    import xml.etree.ElementTree as ET

    case = next(c for c in ET.parse(report).iter("testcase") if c.get("name") == "each")
    assert case.find("failure") is None and case.find("error") is None
    assert {p.get("name"): p.get("value") for p in case.iter("property")}["failed_items"] == "2"
    warnings = case.findtext("system-err") or ""
    assert "2 of 100 items failed" in warnings
    assert "item 6: failed" in warnings and "item 41: failed" in warnings and "/things/42" in warnings

    html = page.read_text()
    assert "2 of 100 items failed" in html and "item 41: failed" in html


@pytest.mark.parametrize("runner", ["sync", "async"])
def test_an_assertion_on_failed_items_bounds_the_tolerance(partner: ListPartner, tmp_path: Path,
                                                           runner: str) -> None:
    def run(path: Path) -> flowrun.FlowResult:
        if runner == "sync":
            return flowrun.run_flow(path)
        return asyncio.run(flowrun.run_flow_async(path))

    within = run(continue_flow(tmp_path, partner.url, bound={"that": "failed_items", "lte": 2}))
    assert within.status == "passed", within.error
    # Checked once for the whole step, not per item (where the count is not known yet).
    assert [(a.expression, a.actual, a.passed) for a in within.steps[1].assertions] == [("failed_items", 2, True)]

    exceeded = run(continue_flow(tmp_path, partner.url, bound={"that": "failed_items", "lte": 1}))
    assert exceeded.status == "failed"
    each = exceeded.steps[1]
    assert each.status == "failed"
    assert isinstance(each.error, flowrun.AssertionFailedError)
    assert each.error.pointer == "/steps/1/assert/1"
    assert "failed_items lte 1" in str(each.error) and "actual 2" in str(each.error)
    assert each.failed_items == 2 and len(each.iterations) == 100
    assert exceeded.steps[2].status == "passed"  # on_error: continue still runs the later steps


def test_a_failed_items_assertion_exceeded_exits_1(partner: ListPartner, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = continue_flow(tmp_path, partner.url, bound={"that": "failed_items", "equals": 0})
    assert main(["run", str(path)]) == 1
    text = capsys.readouterr().out
    assert "assertion failed: failed_items equals 0: actual 2" in text


def test_on_error_continue_still_fails_when_every_item_failed(partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(continue_flow(tmp_path, partner.url, fail="all"))

    assert result.status == "failed"
    each = result.steps[1]
    assert each.status == "failed" and each.failed_items == 100
    assert isinstance(each.error, flowrun.UnexpectedStatusError)
    assert each.error.message.startswith("every item failed (100 of 100); item 0 of 100: HTTP 500")
    assert result.steps[2].status == "passed"


def test_a_uses_entry_bounds_the_failed_items_of_its_for_each(partner: ListPartner, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "thing.json").write_text(json.dumps({
        "type": "rest", "connection": {"url": partner.url}, "path": "/things/{{ inputs.id }}",
        "query": {"fail": "7,42"}, "inputs": {"id": {"type": "integer"}},
        "response": {"outputs": {"name": "body.name"}}}))
    flow = {"name": "uses_each", "steps": [
        {"id": "list", "type": "rest", "connection": {"url": partner.url}, "path": "/ids",
         "response": {"outputs": {"ids": "body.ids"}}},
        {"id": "each", "uses": "thing", "with": {"id": "{{ item }}"}, "for_each": "{{ steps.list.outputs.ids }}",
         "concurrency": 8, "on_error": "continue", "assert": [{"that": "failed_items", "lte": 1}]}]}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))

    assert main(["validate", str(path)]) == 0, capsys.readouterr().out
    result = flowrun.run_flow(path)

    each = result.steps[1]
    assert each.status == "failed" and each.failed_items == 2
    assert isinstance(each.error, flowrun.AssertionFailedError)
    assert each.error.pointer == "/steps/1/assert/0"
    assert each.outputs["name"][5:8] == ["thing 6", None, "thing 8"]


def test_validate_knows_failed_items_only_in_a_for_each_step(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = continue_flow(tmp_path, "http://127.0.0.1:9", bound={"that": "failed_items", "lte": 2})
    assert main(["validate", str(path), "--json"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    flow = json.loads(path.read_text())
    flow["steps"][0]["assert"] = [{"that": "failed_items", "equals": 0}]
    path.write_text(json.dumps(flow))
    assert main(["validate", str(path), "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert [p["pointer"] for p in problems] == ["/steps/0/assert/0/that"], problems
    assert "'failed_items' is not something a data pill can read" in problems[0]["message"]


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
