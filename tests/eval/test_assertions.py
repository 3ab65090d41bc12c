"""Assertions: every operator passing and failing, type mismatches, static checks."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from flowrun._errors import AssertionFailedError, DataPillError, SchemaError
from flowrun._eval import (
    AssertionOutcome,
    evaluate_assertion,
    json_equal,
    raise_for,
    validate_assertion_spec,
)


@pytest.fixture
def context() -> dict[str, Any]:
    return {
        "status": 200,
        "headers": {"content-type": "application/json; charset=utf-8"},
        "body": {"balance": 120.5, "items": [{"id": 1}, {"id": 2}], "owner": None},
        "outputs": {
            "balance": 120.5,
            "negative": -5,
            "count": 2,
            "whole": 2.0,
            "currency": "EUR",
            "date": "2024-05-01",
            "tags": ["gold", "eu", 3],
            "meta": {"region": "eu", "tier": 1},
            "flag": True,
            "nothing": None,
            "text_number": "5",
        },
        "inputs": {"minimum": 100, "currency": "EUR", "pattern": "^E"},
        "steps": {},
        "env": {},
    }


CASES: list[tuple[dict[str, Any], bool]] = [
    ({"that": "outputs.currency", "equals": "EUR"}, True),
    ({"that": "outputs.currency", "equals": "USD"}, False),
    ({"that": "outputs.meta", "equals": {"tier": 1.0, "region": "eu"}}, True),
    ({"that": "outputs.tags", "equals": ["gold", "eu", 3]}, True),
    ({"that": "outputs.nothing", "equals": None}, True),
    ({"that": "outputs.currency", "not_equals": "USD"}, True),
    ({"that": "outputs.currency", "not_equals": "EUR"}, False),
    ({"that": "outputs.balance", "gt": 0}, True),
    ({"that": "outputs.negative", "gt": 0}, False),
    ({"that": "outputs.count", "gte": 2}, True),
    ({"that": "outputs.count", "gte": 3}, False),
    ({"that": "outputs.count", "lt": 3}, True),
    ({"that": "outputs.count", "lt": 2}, False),
    ({"that": "outputs.count", "lte": 2.0}, True),
    ({"that": "outputs.count", "lte": 1}, False),
    ({"that": "outputs.date", "gte": "2024-01-01"}, True),
    ({"that": "outputs.date", "lt": "2024-01-01"}, False),
    ({"that": "outputs.currency", "contains": "UR"}, True),
    ({"that": "outputs.currency", "contains": "X"}, False),
    ({"that": "outputs.tags", "contains": "eu"}, True),
    ({"that": "outputs.tags", "contains": 3.0}, True),
    ({"that": "outputs.tags", "contains": "us"}, False),
    ({"that": "outputs.meta", "contains": "region"}, True),
    ({"that": "outputs.meta", "contains": "eu"}, False),
    ({"that": "headers.\"content-type\"", "matches": "^application/json"}, True),
    ({"that": "outputs.currency", "matches": "^US"}, False),
    ({"that": "status", "matches": "^2\\d\\d$"}, True),
    ({"that": "outputs.balance", "exists": True}, True),
    ({"that": "outputs.nothing", "exists": True}, False),
    ({"that": "outputs.nothing", "exists": False}, True),
    ({"that": "outputs.missing", "exists": False}, True),
    ({"that": "outputs.missing", "exists": True}, False),
    ({"that": "outputs.balance", "exists": False}, False),
    ({"that": "outputs.currency", "type": "string"}, True),
    ({"that": "outputs.balance", "type": "number"}, True),
    ({"that": "outputs.count", "type": "integer"}, True),
    ({"that": "outputs.whole", "type": "integer"}, True),
    ({"that": "outputs.balance", "type": "integer"}, False),
    ({"that": "outputs.flag", "type": "boolean"}, True),
    ({"that": "outputs.flag", "type": "number"}, False),
    ({"that": "outputs.meta", "type": "object"}, True),
    ({"that": "outputs.tags", "type": "array"}, True),
    ({"that": "outputs.nothing", "type": "null"}, True),
    ({"that": "outputs.currency", "type": "null"}, False),
    ({"that": "length(body.items)", "equals": 2}, True),
    ({"that": "body.items[*].id", "contains": 2}, True),
    ({"that": "body.owner || 'nobody'", "equals": "nobody"}, True),
]


@pytest.mark.parametrize(("spec", "passes"), CASES, ids=[f"{s['that']}-{list(s)[1]}-{p}" for s, p in CASES])
def test_operators(context: dict[str, Any], spec: dict[str, Any], passes: bool) -> None:
    outcome = evaluate_assertion(spec, context)
    assert outcome.passed is passes, outcome.message


def test_outcome_fields_and_message(context: dict[str, Any]) -> None:
    outcome = evaluate_assertion({"that": "outputs.negative", "gt": 0}, context, step="balance",
                                 pointer="/steps/0/assert/0")
    assert outcome == AssertionOutcome(
        passed=False, expression="outputs.negative", op="gt", expected=0, actual=-5,
        message="outputs.negative gt 0: actual -5", step="balance", pointer="/steps/0/assert/0",
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        outcome.passed = True  # type: ignore[misc]


def test_passing_message(context: dict[str, Any]) -> None:
    outcome = evaluate_assertion({"that": "outputs.currency", "equals": "EUR"}, context)
    assert outcome.message == 'outputs.currency equals "EUR": actual "EUR"'


def test_expected_value_may_hold_pills(context: dict[str, Any]) -> None:
    outcome = evaluate_assertion({"that": "outputs.balance", "gte": "{{ inputs.minimum }}"}, context)
    assert outcome.passed
    assert outcome.expected == 100
    assert evaluate_assertion({"that": "outputs.currency", "equals": "{{ inputs.currency }}"}, context).passed
    assert evaluate_assertion({"that": "outputs.currency", "matches": "{{ inputs.pattern }}"}, context).passed


def test_pill_in_expected_that_names_a_missing_value(context: dict[str, Any]) -> None:
    with pytest.raises(DataPillError) as caught:
        evaluate_assertion({"that": "outputs.balance", "gt": "{{ inputs.minimun }}"}, context, pointer="/a/0")
    assert caught.value.pointer == "/a/0/gt"
    assert "did you mean 'minimum'?" in caught.value.message


# --- missing values and mismatched types ------------------------------------------------------


def test_missing_value_fails_with_did_you_mean(context: dict[str, Any]) -> None:
    outcome = evaluate_assertion({"that": "outputs.balanse", "gt": 0}, context)
    assert not outcome.passed
    assert outcome.actual is None
    assert outcome.message == (
        "outputs.balanse gt 0: actual missing: outputs has no 'balanse' (did you mean 'balance'? "
        "available: balance, count, currency, date, flag, meta, negative, nothing, tags, text_number, whole)"
    )


def test_null_is_not_missing_for_type(context: dict[str, Any]) -> None:
    assert not evaluate_assertion({"that": "outputs.missing", "type": "null"}, context).passed
    assert not evaluate_assertion({"that": "outputs.missing", "equals": None}, context).passed


@pytest.mark.parametrize(
    ("spec", "note"),
    [
        ({"that": "outputs.text_number", "gt": 1}, 'actual "5" (cannot compare a string with a number)'),
        ({"that": "outputs.flag", "gt": 0}, "actual true (cannot compare a boolean with a number)"),
        ({"that": "outputs.meta", "lt": 3}, "(cannot compare an object with a number)"),
        ({"that": "outputs.nothing", "gte": 1}, "actual null (cannot compare null with a number)"),
        ({"that": "outputs.text_number", "equals": 5}, 'actual "5" (a string, expected a number)'),
        ({"that": "outputs.flag", "equals": 1}, "actual true (a boolean, expected a number)"),
        ({"that": "outputs.count", "contains": 2}, "(contains needs a string, an array or an object, not a number)"),
        ({"that": "outputs.currency", "contains": 1}, "(a string contains text, and expected is a number)"),
        ({"that": "outputs.meta", "contains": 1}, "(an object contains keys (strings), and expected is a number)"),
        ({"that": "outputs.meta", "matches": "eu"}, "(matches needs a string or a number, not an object)"),
        ({"that": "outputs.balance", "type": "string"}, "actual 120.5 (it is a number)"),
    ],
)
def test_type_mismatches_fail_with_a_reason(context: dict[str, Any], spec: dict[str, Any], note: str) -> None:
    outcome = evaluate_assertion(spec, context)
    assert not outcome.passed
    assert outcome.message.endswith(note), outcome.message


def test_evaluation_error_fails_the_assertion(context: dict[str, Any]) -> None:
    outcome = evaluate_assertion({"that": "length(outputs.count)", "gt": 1}, context)
    assert not outcome.passed
    assert outcome.message == (
        "length(outputs.count) gt 1: actual cannot be evaluated: "
        "function length() expects string, array or object, got number"
    )
    assert not evaluate_assertion({"that": "length(outputs.count)", "exists": False}, context).passed


def test_long_values_are_shortened_in_messages(context: dict[str, Any]) -> None:
    context["outputs"]["long"] = "x" * 1000
    outcome = evaluate_assertion({"that": "outputs.long", "equals": "y"}, context)
    assert len(outcome.message) < 200
    assert outcome.actual == "x" * 1000


def test_json_equal() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert json_equal([1, {"a": (2,)}], (1, {"a": [2]}))
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
    assert not json_equal("1", 1)
    assert json_equal(None, None)


# --- raising ----------------------------------------------------------------------------------


def test_raise_for(context: dict[str, Any]) -> None:
    raise_for(evaluate_assertion({"that": "outputs.balance", "gt": 0}, context))
    outcome = evaluate_assertion({"that": "outputs.negative", "gt": 0}, context, step="balance",
                                 pointer="/steps/0/assert/0")
    with pytest.raises(AssertionFailedError) as caught:
        raise_for(outcome)
    err = caught.value
    assert (err.expression, err.expected, err.actual) == ("outputs.negative", 0, -5)
    assert err.step == "balance"
    assert err.pointer == "/steps/0/assert/0"
    assert err.exit_code == 1
    assert str(err) == "at /steps/0/assert/0 step 'balance': outputs.negative gt 0: actual -5"


# --- definitions --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "pointer", "message"),
    [
        (["outputs.x"], "/a/0", "an assertion is an object such as"),
        ({"that": "outputs.x", "equal": 1}, "/a/0/equal", "unknown assertion key 'equal' (did you mean 'equals'?"),
        ({"gt": 1}, "/a/0", "an assertion needs 'that'"),
        ({"that": "", "gt": 1}, "/a/0/that", "'that' is a JMESPath expression"),
        ({"that": 3, "gt": 1}, "/a/0/that", "'that' is a JMESPath expression"),
        ({"that": "{{ outputs.x }}", "gt": 1}, "/a/0/that", "write it without {{ }}"),
        ({"that": "outputs..x", "gt": 1}, "/a/0/that",
         "invalid expression 'outputs..x': unexpected '.' at character 9"),
        ({"that": "outputs.x"}, "/a/0", "an assertion needs one operator: equals, not_equals"),
        ({"that": "outputs.x", "gt": 1, "lt": 5}, "/a/0", "this one has 2 (gt, lt): write one assertion per check"),
        ({"that": "outputs.x", "exists": "yes"}, "/a/0/exists", "'exists' is true or false"),
        ({"that": "outputs.x", "type": "int"}, "/a/0/type", "unknown type \"int\" (did you mean 'integer'?"),
        ({"that": "outputs.x", "gt": [1]}, "/a/0/gt", "'gt' compares with a number or a string, not an array"),
        ({"that": "outputs.x", "lte": True}, "/a/0/lte", "not a boolean"),
        ({"that": "outputs.x", "matches": 3}, "/a/0/matches", "'matches' takes a regular expression"),
        ({"that": "outputs.x", "matches": "(unclosed"}, "/a/0/matches",
         'invalid regular expression "(unclosed": missing ), unterminated subpattern at character 1'),
    ],
)
def test_validate_assertion_spec(spec: Any, pointer: str, message: str) -> None:
    with pytest.raises(SchemaError) as caught:
        validate_assertion_spec(spec, "/a/0")
    assert caught.value.pointer == pointer
    assert message in caught.value.message


@pytest.mark.parametrize(
    "spec",
    [
        {"that": "outputs.x", "equals": {"nested": [1, None]}},
        {"that": "outputs.x", "gt": "{{ inputs.minimum }}"},
        {"that": "outputs.x", "type": "{{ inputs.kind }}"},
        {"that": "length(body.items)", "lte": 3},
        {"that": "outputs.x", "exists": False},
        {"that": "outputs.x", "contains": {"any": "json"}},
    ],
)
def test_valid_specs(spec: dict[str, Any]) -> None:
    validate_assertion_spec(spec, "/a/0")


def test_validate_checks_pills_in_expected() -> None:
    with pytest.raises(DataPillError) as caught:
        validate_assertion_spec({"that": "outputs.x", "equals": ["{{ inputs..y }}"]}, "/a/0")
    assert caught.value.pointer == "/a/0/equals/0"


def test_invalid_regex_from_a_pill_is_a_schema_error(context: dict[str, Any]) -> None:
    context["inputs"]["pattern"] = "[unclosed"
    with pytest.raises(SchemaError) as caught:
        evaluate_assertion({"that": "outputs.currency", "matches": "{{ inputs.pattern }}"}, context,
                           pointer="/steps/1/assert/2")
    assert caught.value.pointer == "/steps/1/assert/2/matches"
    assert "invalid regular expression" in caught.value.message


def test_bad_type_name_from_a_pill_is_a_schema_error(context: dict[str, Any]) -> None:
    context["inputs"]["kind"] = "text"
    with pytest.raises(SchemaError, match="unknown type"):
        evaluate_assertion({"that": "outputs.currency", "type": "{{ inputs.kind }}"}, context)


def test_a_spec_changed_after_it_was_checked_is_checked_again() -> None:
    spec = {"that": "outputs.balance", "gt": 0}
    context = {"outputs": {"balance": 5}}
    assert evaluate_assertion(spec, context).passed
    assert evaluate_assertion(spec, context).passed  # checked once, evaluated each time
    spec["lt"] = 9  # now two operators: the cached check must not hide it
    with pytest.raises(SchemaError, match="one operator"):
        evaluate_assertion(spec, context)
