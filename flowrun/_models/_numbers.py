"""Exact numbers: decimals in JSON output, and JSON numbers that remember how they were written.

* ``xs:decimal`` values of SOAP replies are ``Decimal``. ``dumps`` writes them (and
  ``WrittenNumber`` values) as JSON numbers exactly as they read, without exponent (``1234.50``,
  ``0.00005``, ``12345678901234567.89``):
  ``--json``, reports and data pills agree, and a JSON reader that keeps decimals keeps them exact.
* A number with a fraction or an exponent in a flow, inputs or data file is a ``WrittenNumber``: a
  float everywhere (timeouts, comparisons, arithmetic), which also remembers its text, so that a
  SOAP ``xs:decimal`` argument and a data pill inside a string get ``12345678901234567.89`` as
  written, never the nearest binary float.
"""

from __future__ import annotations

import decimal
import json
import re
import secrets
from collections.abc import Callable
from typing import Any


class WrittenNumber(float):
    """A float that keeps the text it was read from (``str`` and ``repr`` give that text)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> WrittenNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text

    def __reduce__(self) -> tuple[Any, ...]:
        return (WrittenNumber, (self.text,))

    def exact(self) -> decimal.Decimal:
        return decimal.Decimal(self.text)


def exact_decimal(value: float | int | decimal.Decimal) -> decimal.Decimal:
    """The decimal a number stands for: a ``WrittenNumber`` by its text, a float by its shortest repr."""
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, WrittenNumber):
        return value.exact()
    return decimal.Decimal(repr(value) if isinstance(value, float) else value)


def decimal_text(value: decimal.Decimal) -> str:
    """An exact decimal as XML and JSON write it: never an exponent (``0.00005``, not ``5E-5``)."""
    return f"{value:f}" if value.is_finite() else str(value)


# A marker no real string holds: Decimals travel through json.dumps as marked strings, then the
# marks (with their quotes) are replaced by the number's text.
_MARK = f"\x00decimal-{secrets.token_hex(8)}:"
_MARKED = re.compile(r'"\\u0000decimal-' + _MARK[9:-1] + r':(-?[0-9]+(?:\.[0-9]*)?)"')


def dumps(value: Any, *, default: Callable[[Any], Any] | None = str, **options: Any) -> str:
    """``json.dumps`` that writes ``Decimal`` as an exact number (see the module docstring)."""
    marked = False

    def encode(item: Any) -> Any:
        nonlocal marked
        if isinstance(item, decimal.Decimal) and item.is_finite():
            marked = True
            return f"{_MARK}{decimal_text(item)}"
        if isinstance(item, decimal.Decimal) or default is None:
            return str(item) if isinstance(item, decimal.Decimal) else _refuse(item)
        return default(item)

    text = json.dumps(_as_written(value), default=encode, **options)
    return _MARKED.sub(r"\1", text) if marked else text


def _as_written(value: Any) -> Any:
    """``WrittenNumber`` values as the decimals they were written as (json writes floats by repr)."""
    if isinstance(value, WrittenNumber):
        return value.exact()
    if isinstance(value, dict):
        return {key: _as_written(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_written(item) for item in value]
    return value


def _refuse(item: Any) -> Any:
    raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
