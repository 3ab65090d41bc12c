"""The runner's shortcut for assertions that read plain paths: the same outcomes as the full
check when every one passes, and no shortcut otherwise (the full check makes the failure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from flowrun._eval._assertions import pass_plainly, plain_checks
from flowrun._models._numbers import WrittenNumber
from flowrun._runner import check_assertions

OWN: dict[str, Any] = {"status": 200, "body": {"items": [{"id": 7}, {"id": "x"}], "name": "acme", "none": None},
                       "outputs": {"balance": WrittenNumber("1234.50"), "flag": True, "exact": Decimal("0.10")}}

PASSING = [
    {"that": "outputs.balance", "gt": 0},
    {"that": "outputs.balance", "equals": 1234.5},
    {"that": "status", "equals": 200},
    {"that": "body.items[0].id", "lte": 7},
    {"that": "body.items[-1].id", "type": "string"},
    {"that": "body.name", "contains": "cm"},
    {"that": "body.none", "exists": False},
    {"that": "outputs.flag", "not_equals": 1},
    {"that": "outputs.exact", "gte": 0.1},  # a float meets a Decimal as the decimal it was written as
    {"that": "outputs.exact", "lte": 0.1},
]
FAILING = [
    {"that": "outputs.balance", "lt": 0},
    {"that": "outputs.exact", "gt": 0.1},
    {"that": "outputs.flag", "gt": 0},  # a boolean is not a number
    {"that": "outputs.missing", "exists": True},
    {"that": "body.items[5].id", "equals": 1},
    {"that": "body.name", "matches": "^ac"},  # passes, but a regex always goes the full way
]


@pytest.mark.parametrize("spec", PASSING, ids=[f"{s['that']}" for s in PASSING])
def test_a_passing_plain_assertion_has_the_outcome_of_the_full_check(spec: dict[str, Any]) -> None:
    assertions = (spec,)
    checks = plain_checks(assertions)
    assert checks is not None
    outcomes, error = check_assertions(assertions, OWN)
    assert error is None
    assert pass_plainly(checks, OWN) == outcomes
    assert [o.message for o in pass_plainly(checks, OWN) or ()] == [o.message for o in outcomes]


@pytest.mark.parametrize("spec", FAILING, ids=[f"{s['that']}" for s in FAILING])
def test_anything_else_goes_the_full_way(spec: dict[str, Any]) -> None:
    assertions = (PASSING[0], spec)
    checks = plain_checks(assertions)
    assert checks is not None
    assert pass_plainly(checks, OWN) is None
    assert check_assertions(assertions, OWN)[1] is not None or spec.get("matches")


def test_assertions_that_read_more_than_plain_paths_are_not_plain() -> None:
    assert plain_checks(({"that": "headers.\"content-type\"", "contains": "json"},)) is None
    assert plain_checks(({"that": "duration_ms", "lt": 2000},)) is None
    assert plain_checks(({"that": "length(body.items)", "equals": 2},)) is None
    assert plain_checks(({"that": "outputs.balance", "gt": "{{ inputs.floor }}"},)) is None
    assert plain_checks(({"that": "outputs.balance", "bogus": 1},)) is None


def test_a_spec_changed_after_it_was_taken_apart_is_taken_apart_again() -> None:
    spec: dict[str, Any] = {"that": "outputs.balance", "gt": 0}
    assertions = [spec]
    first = plain_checks(assertions)
    assert first is not None and pass_plainly(first, OWN) is not None
    spec["gt"] = 5000  # the same list and dict, mutated in place by an embedder
    again = plain_checks(assertions)
    assert again is not None and again != first
    assert pass_plainly(again, OWN) is None
    assert check_assertions(assertions, OWN)[1] is not None
