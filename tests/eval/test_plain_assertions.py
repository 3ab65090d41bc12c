"""The runner's shortcut for assertions that read plain paths: the same outcomes as the full
check when every one passes, and no shortcut otherwise (the full check makes the failure)."""

from __future__ import annotations

from typing import Any

import pytest

from flowrun._eval._assertions import pass_plainly, reads_plainly
from flowrun._models._numbers import WrittenNumber
from flowrun._runner import check_assertions

OWN: dict[str, Any] = {"status": 200, "body": {"items": [{"id": 7}, {"id": "x"}], "name": "acme", "none": None},
                       "outputs": {"balance": WrittenNumber("1234.50"), "flag": True}}

PASSING = [
    {"that": "outputs.balance", "gt": 0},
    {"that": "outputs.balance", "equals": 1234.5},
    {"that": "status", "equals": 200},
    {"that": "body.items[0].id", "lte": 7},
    {"that": "body.items[-1].id", "type": "string"},
    {"that": "body.name", "contains": "cm"},
    {"that": "body.none", "exists": False},
    {"that": "outputs.flag", "not_equals": 1},
]
FAILING = [
    {"that": "outputs.balance", "lt": 0},
    {"that": "outputs.missing", "exists": True},
    {"that": "body.items[5].id", "equals": 1},
    {"that": "body.name", "matches": "^ac"},  # passes, but a regex always goes the full way
]


@pytest.mark.parametrize("spec", PASSING, ids=[f"{s['that']}" for s in PASSING])
def test_a_passing_plain_assertion_has_the_outcome_of_the_full_check(spec: dict[str, Any]) -> None:
    assertions = (spec,)
    assert reads_plainly(assertions)
    outcomes, error = check_assertions(assertions, OWN)
    assert error is None
    assert pass_plainly(assertions, OWN) == outcomes
    assert [o.message for o in pass_plainly(assertions, OWN) or ()] == [o.message for o in outcomes]


@pytest.mark.parametrize("spec", FAILING, ids=[f"{s['that']}" for s in FAILING])
def test_anything_else_goes_the_full_way(spec: dict[str, Any]) -> None:
    assertions = (PASSING[0], spec)
    assert reads_plainly(assertions)
    assert pass_plainly(assertions, OWN) is None


def test_assertions_that_read_more_than_plain_paths_are_not_plain() -> None:
    assert not reads_plainly(({"that": "headers.\"content-type\"", "contains": "json"},))
    assert not reads_plainly(({"that": "duration_ms", "lt": 2000},))
    assert not reads_plainly(({"that": "length(body.items)", "equals": 2},))
    assert not reads_plainly(({"that": "outputs.balance", "gt": "{{ inputs.floor }}"},))
    assert not reads_plainly(({"that": "outputs.balance", "bogus": 1},))
