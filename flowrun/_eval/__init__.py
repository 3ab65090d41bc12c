"""Data pills, captures and assertions: pure functions over plain data, no I/O.

The XML helpers load on first use: lxml costs start-up time that a JSON-only run never needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from flowrun._eval._assertions import (
    OPERATORS,
    TYPE_NAMES,
    evaluate_assertion,
    json_equal,
    raise_for,
    reads_failed_items,
    validate_assertion_spec,
)
from flowrun._eval._capture import CaptureKind, capture, capture_json, capture_xpath, check_capture
from flowrun._eval._template import (
    check_pill,
    check_pills,
    find_pills,
    format_path,
    is_single_pill,
    json_type,
    pill_roots,
    render,
    render_text,
    value_to_text,
)
from flowrun._models._results import AssertionOutcome

if TYPE_CHECKING:
    from flowrun._eval._xml import element_value, local_name, parse_xml, strip_namespaces, xml_to_data

_XML_NAMES = frozenset({"element_value", "local_name", "parse_xml", "strip_namespaces", "xml_to_data"})


def __getattr__(name: str) -> Any:
    if name not in _XML_NAMES:
        raise AttributeError(f"module 'flowrun._eval' has no attribute {name!r}")
    value = getattr(importlib.import_module("flowrun._eval._xml"), name)
    globals()[name] = value
    return value

__all__ = [
    "OPERATORS",
    "TYPE_NAMES",
    "AssertionOutcome",
    "CaptureKind",
    "capture",
    "capture_json",
    "capture_xpath",
    "check_capture",
    "check_pill",
    "check_pills",
    "element_value",
    "evaluate_assertion",
    "find_pills",
    "format_path",
    "is_single_pill",
    "json_equal",
    "json_type",
    "local_name",
    "parse_xml",
    "pill_roots",
    "raise_for",
    "reads_failed_items",
    "render",
    "render_text",
    "strip_namespaces",
    "validate_assertion_spec",
    "value_to_text",
    "xml_to_data",
]
