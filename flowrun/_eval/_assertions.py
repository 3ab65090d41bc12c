"""Assertions: ``{"that": "<JMESPath>", "<operator>": expected}``.

``that`` is a JMESPath expression, written without braces, evaluated over the context the caller
passes (for a step, the runner puts the step's own ``status``, ``headers``, ``body``,
``outputs`` and ``duration_ms`` next to ``inputs``, ``steps`` and ``env``). ``expected`` may hold
data pills, rendered over the same context first.

=============  ==============================================================================
operator       passes when
=============  ==============================================================================
equals         actual equals expected as JSON (``1 == 1.0``; ``true`` is not ``1``; ``"1"`` is not ``1``)
not_equals     the opposite
gt gte lt lte  both numbers, or both strings (compared by code point, fine for ISO dates)
contains       a string holds the substring, an array holds an equal item, an object has the key
matches        Python ``re.search`` finds the pattern in a string (numbers are read as their text)
exists         ``true``: the value is there and not null; ``false``: it is missing or null
type           string, number, integer (``2.0`` counts), boolean, object, array or null
=============  ==============================================================================

A plain path (``outputs.balance``) that names a missing value fails every operator except
``exists: false``, with the same "did you mean" detail as data pills. Values of the wrong type
fail with a message that says so; nothing here raises ``TypeError``.

In a ``for_each`` step, an assertion whose ``that`` reads ``failed_items`` is about the whole
step (``reads_failed_items``): the runner checks it once, after every item, instead of per item.
"""

from __future__ import annotations

import decimal
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowrun._errors import AssertionFailedError, DataPillError, SchemaError
from flowrun._eval._template import (
    OPEN,
    InvalidExpressionError,
    UnresolvedError,
    check_pills,
    compile_expression,
    find_pills,
    is_array,
    json_type,
    json_type_article,
    pill_roots,
    render,
    suggest,
    value_to_text,
)
from flowrun._models._numbers import WrittenNumber, dumps
from flowrun._models._results import AssertionOutcome

OPERATORS: tuple[str, ...] = (
    "equals", "not_equals", "gt", "gte", "lt", "lte", "contains", "matches", "exists", "type",
)
TYPE_NAMES: tuple[str, ...] = ("string", "number", "integer", "boolean", "object", "array", "null")

_SHOWN_CHARS = 120
_EXAMPLE = '{"that": "outputs.balance", "gt": 0}'


def validate_assertion_spec(spec: Any, pointer: str = "") -> None:
    """Static check: ``that`` parses, exactly one known operator, an ``expected`` that fits it.

    Raises ``SchemaError`` (``DataPillError`` for a broken pill in ``expected``).
    """
    where = pointer or None
    if not isinstance(spec, Mapping):
        raise SchemaError(f"an assertion is an object such as {_EXAMPLE}, got {json_type_article(spec)}",
                          pointer=where)
    for key in spec:
        if key != "that" and key not in OPERATORS:
            guess = suggest(str(key), ("that", *OPERATORS))
            hint = f"did you mean '{guess}'? " if guess else ""
            raise SchemaError(f"unknown assertion key '{key}' ({hint}operators: {', '.join(OPERATORS)})",
                              pointer=f"{pointer}/{key}")
    if "that" not in spec:
        raise SchemaError(f"an assertion needs 'that', the expression to test, as in {_EXAMPLE}", pointer=where)
    that = spec["that"]
    that_pointer = f"{pointer}/that"
    if not isinstance(that, str) or not that.strip():
        raise SchemaError("'that' is a JMESPath expression such as \"outputs.balance\"", pointer=that_pointer)
    if OPEN in that:
        raise SchemaError("'that' is an expression already: write it without {{ }}, e.g. \"outputs.balance\"",
                          pointer=that_pointer)
    try:
        compile_expression(that)
    except InvalidExpressionError as err:
        raise SchemaError(f"invalid expression '{err.expression}': {err.reason}", pointer=that_pointer,
                          hint="'that' is JMESPath: see https://jmespath.org") from None
    operators = [key for key in spec if key in OPERATORS]
    if not operators:
        raise SchemaError(f"an assertion needs one operator: {', '.join(OPERATORS)}", pointer=where)
    if len(operators) > 1:
        raise SchemaError(
            f"an assertion has one operator, this one has {len(operators)} ({', '.join(operators)}): "
            "write one assertion per check",
            pointer=where,
        )
    op = operators[0]
    op_pointer = f"{pointer}/{op}"
    if find_pills(spec[op], op_pointer):
        check_pills(spec[op], pointer=op_pointer)
        return  # the value's type is known only once the pills are rendered
    _check_expected(op, spec[op], op_pointer, static=True)


# Specs already checked by ``validate_assertion_spec`` (by identity, with a copy that tells when a
# mutable spec changed since), with what every evaluation reads from them: a step's assertions are
# checked and taken apart once, not on every call.
_VALIDATED: dict[int, tuple[Mapping[str, Any], dict[str, Any], _Prepared]] = {}
_VALIDATED_SIZE = 1024
_RENDERED = object()  # an expected value with pills (or a container, rendered afresh each time)
# operator, expression text, compiled expression, fixed expected value, the start of its message
# ("outputs.balance gt 0", None when the expected value is rendered)
_Prepared = tuple[str, str, Any, Any, str | None]


def _validate_once(spec: Mapping[str, Any], pointer: str) -> _Prepared:
    known = _VALIDATED.get(id(spec))
    if known is not None and known[0] is spec and known[1] == spec:
        return known[2]
    validate_assertion_spec(spec, pointer)
    op = next(key for key in spec if key in OPERATORS)
    that = str(spec["that"]).strip()
    expected = spec[op]
    scalar = expected is None or isinstance(expected, bool | int | float) or (
        isinstance(expected, str) and OPEN not in expected)
    prepared = (op, that, compile_expression(that), expected if scalar else _RENDERED,
                f"{that} {op} {_show(expected)}" if scalar else None)
    if len(_VALIDATED) >= _VALIDATED_SIZE:
        _VALIDATED.clear()
    _VALIDATED[id(spec)] = (spec, dict(spec), prepared)
    return prepared


def evaluate_assertion(
    spec: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    step: str | None = None,
    pointer: str = "",
) -> AssertionOutcome:
    """Check one assertion. A failure is an outcome, not an exception (see ``raise_for``).

    Raises ``SchemaError`` or ``DataPillError`` only when the assertion itself is wrong.
    """
    passed, that, op, expected, actual, message = judge_assertion(spec, context, step=step, pointer=pointer)
    return AssertionOutcome(passed=passed, expression=that, op=op, expected=expected, actual=actual,
                            message=message, step=step, pointer=pointer or None)


Judged = tuple[bool, str, str, Any, Any, str]  # passed, expression, operator, expected, actual, message


def judge_assertion(spec: Mapping[str, Any], context: Mapping[str, Any], *, step: str | None,
                    pointer: str) -> Judged:
    """``evaluate_assertion`` without the record: for callers that keep the outcome in another
    form (a step's result records it without its location)."""
    op, that, expression, expected, head = _validate_once(spec, pointer)
    if expected is _RENDERED:
        op_pointer = f"{pointer}/{op}"
        expected = render(spec[op], context, step=step, pointer=op_pointer)
        _check_expected(op, expected, op_pointer, static=False)
        head = f"{that} {op} {_show(expected)}"
    # (a fixed value passed the stricter static check of ``validate_assertion_spec``)
    problem: UnresolvedError | None = None
    try:
        actual = expression.evaluate(context)
    except UnresolvedError as err:
        actual, problem = None, err
    passed, note = _judge(op, actual, expected, problem, pointer)
    if problem is not None:
        state = "missing" if problem.missing else "cannot be evaluated"
        message = f"{head}: actual {state}: {problem.reason}"
    else:
        message = f"{head}: actual {_show(actual)}" + (f" ({note})" if note and not passed else "")
    return passed, that, op, expected, actual, message


# What a step's own response offers its assertions without its headers or the clock.
_PLAIN_ROOTS = frozenset({"status", "body", "outputs"})


# One plain assertion taken apart: its expression text, operator, path, fixed expected value,
# the start of its message, and its check (None for ``matches``, which is checked the full way).
PlainCheck = tuple[str, str, tuple[str | int, ...], Any, str, "Callable[[Any, Any], _Verdict] | None"]
_PLAINLY: dict[int, tuple[Sequence[Mapping[str, Any]], tuple[Any, ...], tuple[PlainCheck, ...] | None]] = {}


def plain_checks(assertions: Sequence[Mapping[str, Any]]) -> tuple[PlainCheck, ...] | None:
    """The assertions taken apart for ``pass_plainly``, when every one is a plain path under
    ``status``, ``body`` or ``outputs`` with a fixed expected value: then none can read the step's
    headers or ``duration_ms``, and the runner need not make them. None otherwise, and for an
    assertion that is itself wrong (its error is reported where it is checked). Kept per step's
    list (with a copy that tells when a mutable spec changed since), as ``_validate_once`` keeps
    each spec."""
    known = _PLAINLY.get(id(assertions))
    if known is not None and known[0] is assertions and known[1] == assertions:
        return known[2]
    checks = _plain_checks(assertions)
    if len(_PLAINLY) >= _VALIDATED_SIZE:
        _PLAINLY.clear()
    copies = tuple(dict(spec) if isinstance(spec, Mapping) else spec for spec in assertions)
    _PLAINLY[id(assertions)] = (assertions, copies, checks)
    return checks


def _plain_checks(assertions: Sequence[Mapping[str, Any]]) -> tuple[PlainCheck, ...] | None:
    checks: list[PlainCheck] = []
    try:
        for index, spec in enumerate(assertions):
            op, that, expression, expected, head = _validate_once(spec, f"/assert/{index}")
            path = expression.path
            if path is None or path[0] not in _PLAIN_ROOTS or expected is _RENDERED or head is None:
                return None
            checks.append((that, op, path, expected, head, _CHECKS.get(op)))
    except (SchemaError, DataPillError):
        return None
    return tuple(checks)


def pass_plainly(checks: tuple[PlainCheck, ...], own: Mapping[str, Any]) -> tuple[AssertionOutcome, ...] | None:
    """The outcomes of ``plain_checks``, when each one's value is there (in dicts and lists) and
    passes; None otherwise: the caller then checks them the full way, which makes a failure's
    message, error and pointer. The same outcomes as ``check_assertions``, without its
    per-assertion scaffolding (a step's assertions almost always pass)."""
    outcomes: list[AssertionOutcome] = []
    for that, op, path, expected, head, check in checks:
        value: Any = own
        for part in path:
            found = (type(value) is dict and type(part) is str and part in value) or (
                type(value) is list and type(part) is int and -len(value) <= part < len(value))
            if not found:
                return None
            value = value[part]
        if check is None or not check(value, expected)[0]:
            return None
        outcomes.append(AssertionOutcome(True, that, op, expected, value, f"{head}: actual {_show(value)}"))
    return tuple(outcomes)


FAILED_ITEMS = "failed_items"


def reads_failed_items(spec: Mapping[str, Any]) -> bool:
    """Whether a ``for_each`` step's assertion is about the whole step: its ``that`` reads
    ``failed_items`` (how many items failed), known only once every item ran."""
    that = spec.get("that")
    if not isinstance(that, str) or FAILED_ITEMS not in that:
        return False
    try:
        return FAILED_ITEMS in pill_roots(that.strip())
    except DataPillError:
        return False  # checked per item, where its error is reported


def raise_for(outcome: AssertionOutcome) -> None:
    """Raise ``AssertionFailedError`` for a failed outcome; do nothing for a passed one."""
    if outcome.passed:
        return
    raise AssertionFailedError(
        outcome.message,
        expression=outcome.expression,
        expected=outcome.expected,
        actual=outcome.actual,
        step=outcome.step,
        pointer=outcome.pointer,
    )


# --- operators ------------------------------------------------------------------------------

_Verdict = tuple[bool, str | None]


def _judge(op: str, actual: Any, expected: Any, problem: UnresolvedError | None, pointer: str) -> _Verdict:
    """``pointer``: the assertion's (its operator's is made from it only when a regex is wrong)."""
    if problem is not None:
        if op == "exists" and problem.missing:
            return expected is False, None
        return False, None
    if op == "matches":
        return _matches(actual, _regex(expected, f"{pointer}/{op}"))
    return _CHECKS[op](actual, expected)


def _equals(actual: Any, expected: Any) -> _Verdict:
    if json_equal(actual, expected):
        return True, None
    if json_type(actual) != json_type(expected):
        return False, f"{json_type_article(actual)}, expected {json_type_article(expected)}"
    return False, None


def _not_equals(actual: Any, expected: Any) -> _Verdict:
    return not json_equal(actual, expected), None


def _ordering(test: Callable[[Any, Any], bool]) -> Callable[[Any, Any], _Verdict]:
    def check(actual: Any, expected: Any) -> _Verdict:
        if type(actual) in _BINARY_NUMBERS and type(expected) in _BINARY_NUMBERS:
            return test(actual, expected), None  # no Decimal on either side: nothing to make comparable
        if _is_number(actual) and _is_number(expected):
            return test(*_comparable(actual, expected)), None
        if isinstance(actual, str) and isinstance(expected, str):
            return test(actual, expected), None
        return False, f"cannot compare {json_type_article(actual)} with {json_type_article(expected)}"

    return check


def _contains(actual: Any, expected: Any) -> _Verdict:
    if isinstance(actual, str):
        if isinstance(expected, str):
            return expected in actual, None
        return False, f"a string contains text, and expected is {json_type_article(expected)}"
    if isinstance(actual, Mapping):
        if isinstance(expected, str):
            return expected in actual, None
        return False, f"an object contains keys (strings), and expected is {json_type_article(expected)}"
    if is_array(actual):
        return any(json_equal(item, expected) for item in actual), None
    return False, f"contains needs a string, an array or an object, not {json_type_article(actual)}"


def _matches(actual: Any, pattern: re.Pattern[str]) -> _Verdict:
    if isinstance(actual, str) or _is_number(actual):
        return pattern.search(value_to_text(actual)) is not None, None
    return False, f"matches needs a string or a number, not {json_type_article(actual)}"


def _exists(actual: Any, expected: Any) -> _Verdict:
    return (actual is not None) is expected, None


def _type(actual: Any, expected: Any) -> _Verdict:
    if expected == "integer":
        passed = (
            (isinstance(actual, int) and not isinstance(actual, bool))
            or (isinstance(actual, float) and actual.is_integer())
            or (isinstance(actual, decimal.Decimal) and actual.is_finite() and actual == actual.to_integral_value())
        )
    else:
        passed = json_type(actual) == expected
    return passed, None if passed else f"it is {json_type_article(actual)}"


_CHECKS: dict[str, Callable[[Any, Any], _Verdict]] = {
    "equals": _equals,
    "not_equals": _not_equals,
    "gt": _ordering(operator.gt),
    "gte": _ordering(operator.ge),
    "lt": _ordering(operator.lt),
    "lte": _ordering(operator.le),
    "contains": _contains,
    "exists": _exists,
    "type": _type,
}


def json_equal(left: Any, right: Any) -> bool:
    """Equality as JSON sees it: booleans are not numbers, ``1 == 1.0``, arrays and tuples alike."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) and _is_number(right):
        left, right = _comparable(left, right)
        return bool(left == right)
    if isinstance(left, Mapping) and isinstance(right, Mapping):
        return left.keys() == right.keys() and all(json_equal(left[key], right[key]) for key in left)
    if is_array(left) and is_array(right):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


# --- expected values ----------------------------------------------------------------------


def _check_expected(op: str, expected: Any, pointer: str, *, static: bool) -> None:
    if op in ("gt", "gte", "lt", "lte") and static:
        if not (_is_number(expected) or isinstance(expected, str)):
            raise SchemaError(f"'{op}' compares with a number or a string, not {json_type_article(expected)}",
                              pointer=pointer)
    elif op == "matches":
        if not isinstance(expected, str):
            raise SchemaError(f"'matches' takes a regular expression (a string), not {json_type_article(expected)}",
                              pointer=pointer)
        _regex(expected, pointer)
    elif op == "exists":
        if not isinstance(expected, bool):
            raise SchemaError(f"'exists' is true or false, not {_show(expected)}", pointer=pointer)
    elif op == "type" and expected not in TYPE_NAMES:
        guess = suggest(str(expected), TYPE_NAMES) if isinstance(expected, str) else None
        hint = f"did you mean '{guess}'? " if guess else ""
        raise SchemaError(f"unknown type {_show(expected)} ({hint}types: {', '.join(TYPE_NAMES)})",
                          pointer=pointer)


def _regex(pattern: str, pointer: str) -> re.Pattern[str]:
    try:
        return _compile_regex(pattern)
    except re.error as err:
        where = f" at character {err.pos + 1}" if err.pos is not None else ""
        raise SchemaError(f"invalid regular expression {_show(pattern)}: {err.msg}{where}", pointer=pointer,
                          hint="'matches' uses Python regular expressions (re.search)") from None


@functools.lru_cache(maxsize=1024)
def _compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_NUMBER_TYPES = frozenset({int, float, WrittenNumber, decimal.Decimal})
_BINARY_NUMBERS = frozenset({int, float, WrittenNumber})


def _is_number(value: Any) -> bool:
    if type(value) in _NUMBER_TYPES:  # the common types, spared the isinstance checks
        return True
    return isinstance(value, int | float | decimal.Decimal) and not isinstance(value, bool)


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Numbers made comparable: a float meets a Decimal as the decimal it was written as
    (``0.1`` from a JSON reply equals the exact ``0.1`` of a SOAP reply)."""
    if isinstance(left, float) and isinstance(right, decimal.Decimal) and math.isfinite(left):
        return decimal.Decimal(repr(left)), right
    if isinstance(right, float) and isinstance(left, decimal.Decimal) and math.isfinite(right):
        return left, decimal.Decimal(repr(right))
    return left, right


def _show(value: Any) -> str:
    # Numbers, booleans and null read the same in JSON and cost no encoder (every call shows two).
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        return repr(value)
    if type(value) is WrittenNumber and "e" not in value.text and "E" not in value.text:
        return value.text  # a number from a JSON body: its text is what the encoder writes
    try:
        text = dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
