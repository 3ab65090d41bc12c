"""Captures: pull values out of a response with JMESPath (JSON) or XPath (XML).

JSON: the expression runs over ``{"status": 200, "headers": {...}, "body": ...}`` (the caller
builds that document), with JMESPath semantics: a missing value is null.

XML: XPath 1.0 over the parsed tree (``parse_xml``). The result is plain data:

* no match -> ``None``; one match -> that value; several -> a list of values;
* an element without child elements -> its text (``""`` when empty); an element with child
  elements -> the object ``element_value`` builds (children by local name); attributes and
  text nodes -> their text; ``count()``/``sum()`` -> a number (an ``int`` when whole);
  ``boolean()`` -> ``True``/``False``.

Namespaces: prefixes in the expression need ``namespaces={"b": "urn:bank"}``, and XPath 1.0 has
no default namespace, so ``//balance`` does not match ``<balance xmlns="urn:bank">``. Two
namespace-agnostic ways:

* ``ignore_namespaces=True`` evaluates on a copy of the tree where every name is its local name:
  ``//Body/GetBalanceResponse/balance`` then matches whatever the prefixes and namespaces are;
* ``local-name()`` in plain XPath: ``//*[local-name()='balance']``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from flowrun._errors import CaptureError, SchemaError
from flowrun._eval._template import InvalidExpressionError, UnresolvedError, compile_expression

if TYPE_CHECKING:
    from lxml import etree

CaptureKind = Literal["json", "xml"]


def capture_json(expression: str, document: Any) -> Any:
    """Evaluate a JMESPath expression over ``document``; raise ``CaptureError``."""
    try:
        compiled = compile_expression(expression)
    except InvalidExpressionError as err:
        raise CaptureError(f"invalid JMESPath expression '{expression.strip()}': {err.reason}") from None
    try:
        return compiled.search(document)
    except UnresolvedError as err:
        raise CaptureError(f"'{compiled.source}' {err.reason}") from None


def capture_xpath(
    expression: str,
    root: etree._Element,
    namespaces: Mapping[str, str] | None = None,
    *,
    ignore_namespaces: bool = False,
) -> Any:
    """Evaluate an XPath 1.0 expression on an XML tree; raise ``CaptureError``.

    See the module docstring for the shape of the result and the namespace options.
    """
    from lxml import etree

    from flowrun._eval._xml import strip_namespaces

    compiled = _compile_xpath_or_raise(expression, namespaces)
    target = strip_namespaces(root) if ignore_namespaces else root
    try:
        result = compiled(target)
    except etree.XPathError as err:
        raise CaptureError(
            f"XPath '{expression}' cannot be evaluated: {err}",
            hint=_namespace_hint(root, namespaces),
        ) from None
    return _plain(result)


def capture(
    spec: str,
    document: Any,
    *,
    kind: CaptureKind,
    namespaces: Mapping[str, str] | None = None,
    ignore_namespaces: bool = False,
) -> Any:
    """Capture with JMESPath (``kind="json"``) or XPath (``kind="xml"``).

    For XML, ``document`` is a parsed element or the raw bytes (parsed safely here).
    """
    from lxml import etree

    from flowrun._eval._xml import parse_xml

    if kind == "json":
        return capture_json(spec, document)
    if kind == "xml":
        if isinstance(document, bytes | bytearray):
            document = parse_xml(bytes(document))
        if not isinstance(document, etree._Element):
            raise CaptureError(f"XPath '{spec}' needs an XML document, got {type(document).__name__}")
        return capture_xpath(spec, document, namespaces, ignore_namespaces=ignore_namespaces)
    raise ValueError(f"unknown capture kind {kind!r}: use 'json' or 'xml'")


def check_capture(
    expression: str,
    *,
    kind: CaptureKind,
    namespaces: Mapping[str, str] | None = None,
    pointer: str = "",
) -> None:
    """Static check of a capture expression; raise ``SchemaError`` at ``pointer``.

    For XPath this also finds prefixes that ``namespaces`` does not declare.
    """
    from lxml import etree

    if kind == "json":
        try:
            compile_expression(expression)
        except InvalidExpressionError as err:
            raise SchemaError(f"invalid JMESPath expression '{expression.strip()}': {err.reason}",
                              pointer=pointer or None, hint="see https://jmespath.org for the syntax") from None
        return
    try:
        compiled = _compile_xpath_or_raise(expression, namespaces)
        # Prefixes are resolved at evaluation: evaluating on an empty element finds undeclared ones.
        compiled(etree.Element("empty"))
    except (CaptureError, etree.XPathError) as err:
        message = err.message if isinstance(err, CaptureError) else f"XPath '{expression}': {err}"
        raise SchemaError(message, pointer=pointer or None,
                          hint="declare every prefix the expression uses in namespaces") from None


def _compile_xpath_or_raise(expression: str, namespaces: Mapping[str, str] | None) -> etree.XPath:
    from lxml import etree

    frozen = tuple(sorted((namespaces or {}).items()))
    try:
        return _compile_xpath(expression, frozen)
    except etree.XPathSyntaxError as err:
        raise CaptureError(f"invalid XPath '{expression}': {err}") from None
    except (etree.XPathError, TypeError, ValueError) as err:
        raise CaptureError(f"XPath '{expression}' cannot be used: {err}") from None


@functools.lru_cache(maxsize=1024)
def _compile_xpath(expression: str, namespaces: tuple[tuple[str, str], ...]) -> etree.XPath:
    # Compiled XPath objects lock around evaluation, so one may serve several threads.
    from lxml import etree

    return etree.XPath(expression, namespaces=dict(namespaces), smart_strings=False)


def _plain(result: Any) -> Any:
    if isinstance(result, list):
        values = [_plain_item(item) for item in result]
        if not values:
            return None
        return values[0] if len(values) == 1 else values
    return _plain_item(result)


def _plain_item(item: Any) -> Any:
    from lxml import etree

    from flowrun._eval._xml import element_value, is_element

    if isinstance(item, bool):
        return item
    if isinstance(item, float):
        if not math.isfinite(item):
            return None
        return int(item) if item.is_integer() else item
    if isinstance(item, etree._Element):
        if not is_element(item):  # comment or processing instruction
            return item.text or ""
        if any(is_element(child) for child in item):
            return element_value(item)
        return item.text or ""
    if isinstance(item, tuple):  # namespace nodes come back as (prefix, uri)
        return [str(part) for part in item]
    return str(item)


def _namespace_hint(root: etree._Element, namespaces: Mapping[str, str] | None) -> str:
    from flowrun._eval._xml import is_element

    used: dict[str, str] = {}
    for element in root.iter():
        if is_element(element):
            for prefix, uri in element.nsmap.items():
                used.setdefault(prefix or "(default)", uri)
    declared = ", ".join(sorted(namespaces or {})) or "none"
    present = ", ".join(f"{prefix}={uri}" for prefix, uri in sorted(used.items())) or "none"
    return (
        f"prefixes declared: {declared}; namespaces in the document: {present}. Declare the prefix in "
        "namespaces, or match by local name (//*[local-name()='balance']), or set ignore_namespaces"
    )


# --- an expression that matches nothing ---------------------------------------------------------

_SHAPE_KEYS = 12
_TYPE_NAMES = {"str": "string", "int": "int", "float": "number", "WrittenNumber": "number", "Decimal": "decimal",
               "bool": "boolean", "NoneType": "null", "bytes": "bytes"}


def shape_of(value: Any, depth: int = 2) -> str:
    """The shape of ``value``: keys and types, never values (a body may hold secrets), kept short.

    ``{"a": {"b": 1}, "c": [{"d": "x"}]}`` -> ``{a: {b: int}, c: [1 x {d: string}]}``.
    """
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        if depth <= 0:
            return f"{{{len(value)} keys}}"
        shown = [f"{key}: {shape_of(item, depth - 1)}" for key, item in list(value.items())[:_SHAPE_KEYS]]
        more = f", +{len(value) - _SHAPE_KEYS} more" if len(value) > _SHAPE_KEYS else ""
        return "{" + ", ".join(shown) + more + "}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        return f"[{len(value)} x {shape_of(value[0], depth)}]"
    return _TYPE_NAMES.get(type(value).__name__, type(value).__name__)


def describe_miss(expression: str, document: Mapping[str, Any], path: tuple[str | int, ...] | None) -> str:
    """Why ``expression`` matches nothing in ``document``: the deepest part that exists, the
    closest key (did you mean, as data pills say it) and the shape of what is there, on one line
    (the partner's keys are shown escaped)."""
    from flowrun._models._redact import visible_line

    return visible_line(_describe_miss(expression, document, path))


def _describe_miss(expression: str, document: Mapping[str, Any], path: tuple[str | int, ...] | None) -> str:
    from flowrun._eval._template import format_path, is_array

    if not path:
        return f"'{expression}' matches nothing (null); the response is {shape_of(document, 3)}"
    reason = "is null"
    try:
        compile_expression(expression).evaluate(document)
    except UnresolvedError as err:
        reason = f"matches nothing: {err.reason}"
    value: Any = document
    depth = 0
    for part in path:
        present = (part in value if isinstance(part, str) and isinstance(value, Mapping) else
                   isinstance(part, int) and is_array(value) and -len(value) <= part < len(value))
        if not present:
            break
        value = value[part]
        depth += 1
    where = format_path(path[:depth]) if depth else "the response"
    if not isinstance(value, Mapping | list | tuple):
        return f"'{expression}' {reason}"  # the reason already says what the leaf is
    return f"'{expression}' {reason}; {where} is {shape_of(value)}"
