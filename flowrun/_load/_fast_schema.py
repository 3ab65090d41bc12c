"""A quick "is this valid?" for flowrun's own schemas, so a run does not import jsonschema.

Valid files are the common case on the run path, and importing and building a jsonschema
validator costs more than running a whole one-step flow. ``accepts`` answers True only when it
is sure the instance is valid; for anything else (an invalid instance, a keyword it does not
know) it answers False and the caller runs jsonschema, which stays the judge and writes the
messages. It understands the subset of JSON Schema 2020-12 that the shipped schemas use.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

_ANNOTATIONS = frozenset({"description", "title", "$schema", "$id", "$comment", "default", "examples", "$defs"})
_KNOWN = frozenset({
    "$ref", "type", "enum", "const", "required", "properties", "additionalProperties", "propertyNames",
    "items", "prefixItems", "minItems", "maxItems", "uniqueItems", "oneOf", "anyOf", "allOf", "if", "then",
    "else", "pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
}) | _ANNOTATIONS


class _Unsure(Exception):
    """The schema uses a keyword this checker does not implement."""


def accepts(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    """True when ``instance`` is certainly valid against ``schema`` (``$ref`` resolved in ``root``)."""
    try:
        return _valid(instance, schema, root)
    except (_Unsure, RecursionError, KeyError, TypeError, ValueError):
        return False


def _valid(instance: Any, schema: Any, root: Mapping[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, Mapping):
        raise _Unsure
    for key in schema:
        if key not in _KNOWN:
            raise _Unsure
    if "$ref" in schema and not _valid(instance, _resolve(schema["$ref"], root), root):
        return False
    if "type" in schema and not _type_ok(instance, schema["type"]):
        return False
    if "enum" in schema and not any(_equal(instance, option) for option in schema["enum"]):
        return False
    if "const" in schema and not _equal(instance, schema["const"]):
        return False
    if isinstance(instance, dict) and not _object_ok(instance, schema, root):
        return False
    if isinstance(instance, list) and not _array_ok(instance, schema, root):
        return False
    if isinstance(instance, str) and not _string_ok(instance, schema):
        return False
    if _is_number(instance) and not _number_ok(instance, schema):
        return False
    return _combinators_ok(instance, schema, root)


def _resolve(reference: str, root: Mapping[str, Any]) -> Any:
    if not reference.startswith("#/"):
        raise _Unsure
    node: Any = root
    for part in reference[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _type_ok(instance: Any, wanted: Any) -> bool:
    names = wanted if isinstance(wanted, list) else [wanted]
    return any(_is_type(instance, name) for name in names)


def _is_type(instance: Any, name: str) -> bool:
    if name == "object":
        return isinstance(instance, dict)
    if name == "array":
        return isinstance(instance, list)
    if name == "string":
        return isinstance(instance, str)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "null":
        return instance is None
    if name == "number":
        return _is_number(instance)
    if name == "integer":
        return _is_number(instance) and (isinstance(instance, int) or float(instance).is_integer())
    raise _Unsure


def _object_ok(instance: dict[str, Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if any(key not in instance for key in schema.get("required", ())):
        return False
    properties: Mapping[str, Any] = schema.get("properties", {})
    additional = schema.get("additionalProperties", True)
    names = schema.get("propertyNames")
    for key, value in instance.items():
        if names is not None and not _valid(key, names, root):
            return False
        if key in properties:
            if not _valid(value, properties[key], root):
                return False
        elif not _valid(value, additional, root):
            return False
    return True


def _array_ok(instance: list[Any], schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if len(instance) < schema.get("minItems", 0) or len(instance) > schema.get("maxItems", len(instance)):
        return False
    prefix: list[Any] = schema.get("prefixItems", [])
    for item, item_schema in zip(instance, prefix, strict=False):
        if not _valid(item, item_schema, root):
            return False
    if "items" in schema and not all(_valid(item, schema["items"], root) for item in instance[len(prefix):]):
        return False
    if schema.get("uniqueItems"):
        for index, item in enumerate(instance):
            if any(_equal(item, other) for other in instance[index + 1:]):
                return False
    return True


def _string_ok(instance: str, schema: Mapping[str, Any]) -> bool:
    if len(instance) < schema.get("minLength", 0) or len(instance) > schema.get("maxLength", len(instance)):
        return False
    return "pattern" not in schema or _regex(schema["pattern"]).search(instance) is not None


def _number_ok(instance: float, schema: Mapping[str, Any]) -> bool:
    if "minimum" in schema and instance < schema["minimum"]:
        return False
    if "maximum" in schema and instance > schema["maximum"]:
        return False
    if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
        return False
    return not ("exclusiveMaximum" in schema and instance >= schema["exclusiveMaximum"])


def _combinators_ok(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if "allOf" in schema and not all(_valid(instance, sub, root) for sub in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(_valid(instance, sub, root) for sub in schema["anyOf"]):
        return False
    if "oneOf" in schema and sum(1 for sub in schema["oneOf"] if _valid(instance, sub, root)) != 1:
        return False
    if "if" in schema:
        branch = "then" if _valid(instance, schema["if"], root) else "else"
        if branch in schema and not _valid(instance, schema[branch], root):
            return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(left: Any, right: Any) -> bool:
    """JSON equality as JSON Schema defines it: ``1 == 1.0``, ``true`` is not ``1``."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(_equal(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and bool(left == right)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
