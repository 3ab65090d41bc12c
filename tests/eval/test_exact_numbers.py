"""Exact numbers through expressions, pills, assertions and JSON: ``Decimal`` (SOAP xs:decimal)
and ``WrittenNumber`` (a JSON number that keeps its text)."""

from __future__ import annotations

import decimal
import json
from typing import Any

import pytest

from flowrun._eval import evaluate_assertion
from flowrun._eval._template import compile_expression, render, value_to_text
from flowrun._load._json import parse_json
from flowrun._models._numbers import WrittenNumber, dumps, exact_decimal

D = decimal.Decimal
DATA = {"a": [D("1.50"), D("2.25")], "w": [WrittenNumber("0.1"), WrittenNumber("12345678901234567.89")]}


@pytest.mark.parametrize(("expression", "value"), [
    ("sum(a)", D("3.75")), ("max(a)", D("2.25")), ("abs(a[0])", D("1.50")), ("type(a[0])", "number"),
    ("to_number(a[0])", D("1.50")), ("to_string(a[0])", "1.50"), ("sort(a)[-1]", D("2.25")),
    ("type(w[1])", "number"), ("to_string(w[1])", "12345678901234567.89"), ("a[?@ > `2`]", [D("2.25")]),
])
def test_jmespath_functions_take_exact_numbers(expression: str, value: Any) -> None:
    assert compile_expression(expression).search(DATA) == value


def test_json_numbers_keep_their_text_and_are_written_exactly() -> None:
    data = parse_json('{"amount": 12345678901234567.89, "tiny": 0.00005, "n": 3}').data
    assert isinstance(data["amount"], float) and str(data["amount"]) == "12345678901234567.89"
    assert exact_decimal(data["tiny"]) == D("0.00005")
    assert dumps(data) == '{"amount": 12345678901234567.89, "tiny": 0.00005, "n": 3}'
    assert dumps({"d": D("1234.50"), "big": D("1E+3"), "nan": D("NaN")}) == '{"d": 1234.50, "big": 1000, "nan": "NaN"}'
    assert json.loads(dumps([D("0.00005")]), parse_float=D) == [D("0.00005")]


def test_pills_write_exact_numbers_without_exponent() -> None:
    context = {"inputs": {"d": D("0.00005"), "f": 0.00005, "w": WrittenNumber("12345678901234567.89")}}
    assert render("{{ inputs.d }} {{ inputs.f }} {{ inputs.w }}", context) == "0.00005 0.00005 12345678901234567.89"
    assert render("{{ inputs.d }}", context) == D("0.00005")  # a single pill keeps the value
    assert value_to_text({"x": D("1.50")}) == '{"x":1.50}'


@pytest.mark.parametrize(("actual", "op", "expected", "passed"), [
    (D("1234.50"), "equals", 1234.5, True), (D("0.1"), "equals", 0.1, True), (0.1, "equals", D("0.1"), True),
    (D("0.1"), "equals", 0.2, False), (D("10.05"), "gt", 10, True), (D("3"), "type", "integer", True),
    (D("3.5"), "type", "integer", False), (D("3.5"), "type", "number", True),
])
def test_assertions_compare_exact_numbers_by_value(actual: Any, op: str, expected: Any, passed: bool) -> None:
    outcome = evaluate_assertion({"that": "outputs.x", op: expected}, {"outputs": {"x": actual}})
    assert outcome.passed is passed
