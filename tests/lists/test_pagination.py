"""Pagination against a real partner: the same 23 records in five pages, in each style."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrun
from flowrun._cli import main
from tests.lists._partner import RECORDS, ListPartner


@pytest.fixture
def partner() -> Iterator[ListPartner]:
    with ListPartner() as server:
        yield server


STYLES: dict[str, dict[str, Any]] = {
    "link": {"path": "/link", "paginate": {"style": "link", "items": "body.data"}},
    "next_url": {"path": "/next_url", "paginate": {"style": "next_url", "items": "body.data",
                                                   "next": "body.links.next"}},
    "cursor": {"path": "/cursor", "paginate": {"style": "cursor", "items": "body.data",
                                               "next": "body.meta.next_cursor", "param": "cursor"}},
    "page": {"path": "/page", "paginate": {"style": "page", "items": "body.data", "param": "page",
                                           "limit_param": "per_page", "limit": 5}},
    "offset": {"path": "/offset", "paginate": {"style": "offset", "items": "body.data", "param": "offset",
                                               "limit_param": "limit", "limit": 5}},
}


def flow_file(tmp_path: Path, url: str, step: dict[str, Any], **extra: Any) -> Path:
    flow = {"name": "collect", "steps": [
        {"id": "list", "type": "rest", "connection": {"url": url},
         "response": {"outputs": {"ids": "items[*].id", "last_page": "body.data[-1].id"}},
         "assert": [{"that": "length(items)", "equals": len(RECORDS)}], **step}],
        "outputs": {"ids": "{{ steps.list.outputs.ids }}"}, **extra}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    return path


@pytest.mark.parametrize("style", list(STYLES))
def test_a_flow_collects_five_pages_in_each_style(style: str, partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(flow_file(tmp_path, partner.url, STYLES[style]))

    assert result.status == "passed", result.error
    assert result.outputs["ids"] == [record["id"] for record in RECORDS]
    step = result.steps[0]
    assert step.outputs["last_page"] == 23  # body is the last page
    assert [page.items for page in step.pages] == [5, 5, 5, 5, 3]
    assert [page.status for page in step.pages] == [200] * 5
    assert len(partner.requests_to(STYLES[style]["path"])) == 5
    report = step.to_dict()
    assert [page["number"] for page in report["pages"]] == [1, 2, 3, 4, 5]
    assert all(page["duration_ms"] >= 0 for page in report["pages"])


def test_cursor_and_page_parameters_reach_the_partner(partner: ListPartner, tmp_path: Path) -> None:
    flowrun.run_flow(flow_file(tmp_path, partner.url, STYLES["page"])).raise_for_failure()
    assert [(seen.query["page"], seen.query["per_page"]) for seen in partner.requests_to("/page")] == [
        ("1", "5"), ("2", "5"), ("3", "5"), ("4", "5"), ("5", "5")]


def test_page_style_without_a_limit_stops_at_the_empty_page(partner: ListPartner, tmp_path: Path) -> None:
    step = {"path": "/page", "paginate": {"style": "page", "items": "body.data", "param": "page"},
            "response": {"outputs": {"ids": "items[*].id", "last": "body.data"}}}
    result = flowrun.run_flow(flow_file(tmp_path, partner.url, step))
    assert result.status == "passed", result.error
    assert result.steps[0].outputs["last"] == []  # body is the last page: the empty one
    assert [page.items for page in result.steps[0].pages] == [5, 5, 5, 5, 3, 0]


def test_the_async_runner_paginates_too(partner: ListPartner, tmp_path: Path) -> None:
    import asyncio

    result = asyncio.run(flowrun.run_flow_async(flow_file(tmp_path, partner.url, STYLES["cursor"])))
    assert result.status == "passed", result.error
    assert len(result.outputs["ids"]) == 23


def test_a_next_page_on_another_origin_is_refused(tmp_path: Path) -> None:
    with ListPartner() as elsewhere, ListPartner(foreign_url="") as partner:
        partner.foreign_url = elsewhere.url
        step = {"path": "/foreign-next", "paginate": {"style": "link", "items": "body.data"}}
        result = flowrun.run_flow(flow_file(tmp_path, partner.url, step))

        assert result.status == "failed"
        error = result.steps[0].error
        assert isinstance(error, flowrun.NextPageRefusedError)
        assert error.code == "http.pagination.origin"
        assert elsewhere.url in str(error) and "refused" in str(error)
        assert elsewhere.seen == []


def test_more_pages_than_max_pages_fail_the_step(partner: ListPartner, tmp_path: Path) -> None:
    step = {"path": "/endless", "paginate": {"style": "link", "items": "body.data", "max_pages": 3}}
    result = flowrun.run_flow(flow_file(tmp_path, partner.url, step))
    error = result.steps[0].error
    assert isinstance(error, flowrun.PageLimitError)
    assert "max_pages is 3" in str(error)
    assert len(partner.requests_to("/endless")) == 3


def test_items_that_are_not_an_array_fail_with_the_shape(partner: ListPartner, tmp_path: Path) -> None:
    step = {"path": "/link", "paginate": {"style": "link", "items": "body"}}
    result = flowrun.run_flow(flow_file(tmp_path, partner.url, step))
    error = result.steps[0].error
    assert isinstance(error, flowrun.PaginationError)
    assert "not an array" in str(error) and "page 1" in str(error)


def test_a_failing_page_fails_the_step_and_is_reported(partner: ListPartner, tmp_path: Path) -> None:
    # The next link of the 2nd page points at a route that does not exist.
    step = {"path": "/next_url", "paginate": {"style": "next_url", "items": "body.data",
                                              "next": "'/missing'"}}
    result = flowrun.run_flow(flow_file(tmp_path, partner.url, step))
    step_result = result.steps[0]
    assert isinstance(step_result.error, flowrun.UnexpectedStatusError)
    assert [page.status for page in step_result.pages] == [200, 404]


def test_validate_checks_paginate_expressions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    step = {"path": "/link", "paginate": {"style": "link", "items": "body.data[?"}}
    path = flow_file(tmp_path, "http://127.0.0.1:9", step)
    code = main(["validate", str(path), "--json"])
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert code == 2
    assert any(p["pointer"] == "/steps/0/paginate/items" for p in problems), problems


def test_the_schema_refuses_a_cursor_without_next(tmp_path: Path) -> None:
    step = {"path": "/cursor", "paginate": {"style": "cursor", "items": "body.data", "param": "cursor"}}
    with pytest.raises(flowrun.SchemaError) as caught:
        flowrun.load_flow(flow_file(tmp_path, "http://127.0.0.1:9", step))
    assert "next" in str(caught.value)
