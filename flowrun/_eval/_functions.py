"""JMESPath's functions as data pills and captures see them: exact decimals counted as numbers,
and the generated values (``uuid()``, ``now()``, ``random_int()``).

Imported on first use of an expression that is not a plain path (``inputs.account``,
``status``): plain paths are read without JMESPath (flowrun/_eval/_template.py), and a run that
has only those does not import it (~1.5 ms of a cold start).
"""

from __future__ import annotations

import datetime
import decimal
import random
import uuid
from collections.abc import Mapping
from typing import Any

import jmespath
from jmespath.functions import Functions, signature

from flowrun._models._numbers import dumps

_EXACT_NUMBERS = ("Decimal", "WrittenNumber")


class _ExactNumberFunctions(Functions):
    """JMESPath's functions, with exact decimals (``Decimal`` from SOAP replies, ``WrittenNumber``
    from JSON) counted as numbers: ``sum()``, ``max()``, ``sort()``, ``abs()``, ``type()`` work on them."""

    def _get_allowed_pytypes(self, types: Any) -> Any:
        allowed, subtypes = super()._get_allowed_pytypes(types)  # type: ignore[misc]
        return _widen(allowed), [_widen(names) for names in subtypes]

    def _convert_to_jmespath_type(self, pyobject: Any) -> Any:
        return "number" if pyobject in _EXACT_NUMBERS else super()._convert_to_jmespath_type(pyobject)  # type: ignore[misc]

    @signature({"types": []})
    def _func_type(self, arg: Any) -> Any:
        return "number" if isinstance(arg, decimal.Decimal) else super()._func_type(arg)  # type: ignore[misc]

    @signature({"types": []})
    def _func_to_number(self, arg: Any) -> Any:
        return arg if isinstance(arg, decimal.Decimal) else super()._func_to_number(arg)  # type: ignore[misc]

    @signature({"types": []})
    def _func_to_string(self, arg: Any) -> Any:
        return arg if isinstance(arg, str) else dumps(arg, separators=(",", ":"))


def _widen(names: Any) -> tuple[str, ...]:
    return (*names, *_EXACT_NUMBERS) if "float" in names else tuple(names)


class _PillFunctions(_ExactNumberFunctions):
    """JMESPath's functions plus the generated values of data pills. A signature entry marked
    ``optional`` may be left out (only trailing ones)."""

    _random = random.SystemRandom()

    @signature()
    def _func_uuid(self) -> str:
        return str(uuid.uuid4())

    @signature({"types": ["string"], "optional": True})  # type: ignore[typeddict-unknown-key]
    def _func_now(self, *format_: str) -> str:
        moment = datetime.datetime.now(datetime.UTC)
        if not format_:
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moment.strftime(format_[0])

    @signature({"types": ["number"]}, {"types": ["number"]})
    def _func_random_int(self, low: float, high: float) -> int:
        if low != int(low) or high != int(high) or low > high:
            raise ValueError(f"random_int(a, b) takes two whole numbers with a <= b, got {low} and {high}")
        return self._random.randint(int(low), int(high))

    def _validate_arguments(self, args: Any, signature: Any, function_name: str) -> Any:
        optional = sum(1 for entry in signature if entry.get("optional"))
        if optional and len(signature) - optional <= len(args) <= len(signature):
            signature = signature[:len(args)]
        parent: Any = super()
        return parent._validate_arguments(args, signature, function_name)


OPTIONS = jmespath.Options(custom_functions=_PillFunctions())
FUNCTION_TABLE: Mapping[str, Any] = _PillFunctions.FUNCTION_TABLE
