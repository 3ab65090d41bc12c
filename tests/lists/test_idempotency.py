"""Idempotency keys: one per logical request, the same on its retries, shown in the report."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrun
from tests.lists._partner import ListPartner

RETRY = {"strategy": "fixed", "count": 2, "interval_s": 0, "on_status": [503], "retry_non_idempotent": True}


@pytest.fixture
def partner() -> Iterator[ListPartner]:
    with ListPartner() as server:
        yield server


def pay_flow(tmp_path: Path, url: str, **step: Any) -> Path:
    flow = {"name": "pay", "steps": [
        {"id": "pay", "type": "rest", "connection": {"url": url}, "method": "POST", "path": "/pay",
         "body": {"json": {"amount": 10}}, "retry_policy": RETRY, "response": {"outputs": {"key": "body.key"}},
         **step}]}
    path = tmp_path / "pay.json"
    path.write_text(json.dumps(flow))
    return path


def test_a_retried_request_keeps_its_key(partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(pay_flow(tmp_path, partner.url, idempotency_key=True))

    assert result.status == "passed", result.error
    step = result.steps[0]
    assert [a.status for a in step.attempts] == [503, 201]
    keys = [seen.headers["idempotency-key"] for seen in partner.requests_to("/pay")]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert uuid.UUID(keys[0]).version == 4
    assert step.idempotency_key == keys[0] == step.outputs["key"]
    assert step.to_dict()["idempotency_key"] == keys[0]


def test_each_run_and_each_item_gets_its_own_key(partner: ListPartner, tmp_path: Path) -> None:
    path = pay_flow(tmp_path, partner.url, idempotency_key=True, for_each="{{ `[1, 2, 3]` }}", concurrency=3)
    first = flowrun.run_flow(path)
    second = flowrun.run_flow(path)

    assert first.status == second.status == "passed"
    keys = [item.idempotency_key for result in (first, second) for item in result.steps[0].iterations]
    assert len(set(keys)) == 6
    assert partner.pay_attempts == {key: 2 for key in keys}
    report = first.to_dict()["steps"][0]
    assert [item["idempotency_key"] for item in report["iterations"]] == keys[:3]


def test_the_header_name_is_configurable(partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(pay_flow(tmp_path, partner.url, idempotency_key="X-Request-Id"))

    assert result.status == "passed", result.error
    seen = partner.requests_to("/pay")
    assert "idempotency-key" not in seen[0].headers
    assert seen[0].headers["x-request-id"] == seen[1].headers["x-request-id"] == result.steps[0].idempotency_key


def test_a_uuid_pill_in_a_header_is_kept_across_retries(partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(pay_flow(tmp_path, partner.url, headers={"Idempotency-Key": "{{ uuid() }}"}))

    assert result.status == "passed", result.error
    keys = [seen.headers["idempotency-key"] for seen in partner.requests_to("/pay")]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_without_a_key_the_partner_sees_none(partner: ListPartner, tmp_path: Path) -> None:
    result = flowrun.run_flow(pay_flow(tmp_path, partner.url))
    assert result.steps[0].idempotency_key is None
    assert all("idempotency-key" not in seen.headers for seen in partner.requests_to("/pay"))
