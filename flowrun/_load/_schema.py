"""JSON Schema validation with messages written for people.

The schemas in ``schemas/`` are the single description of every file format: editors use them
for completion and the loaders validate with them. jsonschema's own messages are generic; here
each error becomes one sentence naming the field, with "did you mean" for typos.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun._errors import SchemaError
from flowrun._load._json import JsonDocument, escape_token

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

SCHEMA_NAMES = ("aliases", "flow", "step")
_MAX_SUGGESTED = 100
_MAX_SHOWN = 80

_JSON_TYPES = {
    dict: "an object", list: "an array", str: "a string", bool: "a boolean",
    int: "an integer", float: "a number", type(None): "null",
}
_TYPE_WORDS = {
    "object": "an object", "array": "an array", "string": "a string", "boolean": "a boolean",
    "integer": "an integer", "number": "a number", "null": "null",
}
_PATTERN_WORDS: dict[str, str] = {
    "^[A-Za-z_][A-Za-z0-9_.-]*$": "a name of letters, digits, '_', '.' or '-' that starts with a letter or '_'",
    "^[hH][tT][tT][pP][sS]?://": "a URL starting with https:// or http://",
    "^[A-Za-z_][A-Za-z0-9_]*$": "a name of letters, digits and '_' that starts with a letter or '_'",
}


_SCHEMAS = Path(__file__).parent / "schemas"


def schema_text(name: str) -> str:
    # A path next to this module rather than importlib.resources: a run reads one schema, and
    # importlib.resources' readers (zipfile among them) would cost more than the read.
    return (_SCHEMAS / f"{name}.schema.json").read_text("utf-8")


@functools.cache
def schema(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(schema_text(name))
    return result


@functools.cache
def _validator(name: str, definition: str | None) -> Draft202012Validator:
    from jsonschema import Draft202012Validator

    root = schema(name)
    target = root if definition is None else {"$ref": f"#/$defs/{definition}", "$defs": root["$defs"]}
    return Draft202012Validator(target)


def did_you_mean(word: str, choices: Any) -> str:
    if not isinstance(word, str) or len(word) > _MAX_SUGGESTED:
        return ""  # only names get suggestions; comparing a whole document would be slow and useless
    import difflib  # only a misspelt name pays for it

    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def show_value(value: Any) -> str:
    """A value quoted in a message: JSON, cut short (a message never carries a whole document)."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = describe_type(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def describe_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def check(instance: Any, document: JsonDocument, *, schema_name: str, definition: str | None = None,
          pointer: str = "") -> None:
    """Raise a SchemaError for the first (most relevant) problem of ``instance``."""
    from flowrun._load._fast_schema import accepts

    # Valid files need no jsonschema (a costly import on the run path); problems get its messages.
    root = schema(schema_name)
    if accepts(instance, root if definition is None else {"$ref": f"#/$defs/{definition}"}, root):
        return
    errors = list(iter_schema_errors(instance, document, schema_name=schema_name, definition=definition,
                                     pointer=pointer))
    if errors:
        raise errors[0]


def iter_schema_errors(instance: Any, document: JsonDocument, *, schema_name: str,
                       definition: str | None = None, pointer: str = "") -> list[SchemaError]:
    from jsonschema.exceptions import relevance

    raw = sorted(_validator(schema_name, definition).iter_errors(instance), key=relevance)
    results: list[SchemaError] = []
    seen: set[str] = set()
    for error in raw:
        for converted in _convert(error, document, pointer):
            key = f"{converted.pointer}|{converted.message}"
            if key not in seen:
                seen.add(key)
                results.append(converted)
    # Deeper (more specific) errors first: the user fixes the innermost field.
    results.sort(key=lambda e: -(e.pointer or "").count("/"))
    return results


def _convert(error: ValidationError, document: JsonDocument, base: str) -> list[SchemaError]:
    # Descend into oneOf/anyOf alternatives only when exactly one alternative fits the data's type.
    if error.validator in ("oneOf", "anyOf") and error.context:
        deeper = [e for e in error.context if e.validator not in ("type", "required", "const", "oneOf")]
        if len(deeper) == 1:
            return _convert(deeper[0], document, base)
    pointer = base + "".join(f"/{escape_token(p)}" for p in error.absolute_path)
    instance: Any = error.instance
    node: dict[str, Any] = dict(error.schema) if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        # One error per unknown field: the user fixes them all in one go.
        known = list(node.get("properties", {}))
        return [
            SchemaError(f"unknown field '{name}'{did_you_mean(name, known)}",
                        hint="allowed fields here: " + ", ".join(known), file=document.path,
                        pointer=f"{pointer}/{escape_token(name)}",
                        line=document.line(f"{pointer}/{escape_token(name)}"))
            for name in instance if name not in known
        ]
    return [_convert_one(error, document, pointer, node)]


def _convert_one(error: ValidationError, document: JsonDocument, pointer: str, node: dict[str, Any]) -> SchemaError:
    # Messages quote scalars only, cut short: a whole record may hold a literal secret.
    field = f"'{error.absolute_path[-1]}'" if error.absolute_path else "the value"
    instance: Any = error.instance
    validator: Any = error.validator
    value: Any = error.validator_value
    hint: str | None = None
    if validator == "required" and isinstance(instance, dict):
        missing = [k for k in value if k not in instance]
        message = f"missing required field '{missing[0]}'" if missing else error.message
    elif validator == "type":
        wanted = value if isinstance(value, list) else [value]
        words = " or ".join(_TYPE_WORDS.get(str(w), str(w)) for w in wanted)
        message = f"{field} must be {words}, not {describe_type(instance)}"
    elif validator == "enum":
        choices = ", ".join(json.dumps(v) for v in value)
        message = f"{field} must be one of {choices}; got {show_value(instance)}{did_you_mean(instance, value)}"
    elif validator == "const":
        message = f"{field} must be {json.dumps(value)}; got {show_value(instance)}"
    elif validator == "pattern":
        shape = _PATTERN_WORDS.get(str(value), f"matching {value}")
        message = f"{field} must be {shape}; got {show_value(instance)}"
    elif validator == "oneOf" and isinstance(instance, dict) and _is_exclusive_choice(node):
        options = [r for alt in node["oneOf"] for r in alt["required"]]
        present = [o for o in options if o in instance]
        message = (f"give exactly one of {', '.join(repr(o) for o in options)}"
                   + (f"; found {', '.join(repr(p) for p in present)}" if present else ""))
    elif validator == "oneOf" and _is_secret(node):
        message = f'{field} must be a secret: {{"env": "NAME"}}, {{"file": "path"}} or a string'
        hint = "keep secrets out of shared files: use an environment variable or a file"
    elif validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "at least", "maximum": "at most",
                 "exclusiveMinimum": "greater than", "exclusiveMaximum": "less than"}[str(validator)]
        message = f"{field} must be {words} {value}; got {show_value(instance)}"
    elif validator == "minLength":
        message = f"{field} must not be empty"
    elif validator == "uniqueItems":
        message = f"{field} lists the same item twice"
    elif validator in ("minItems", "maxItems", "minProperties"):
        bound = "at least" if validator.startswith("min") else "at most"
        unit = "field" if validator == "minProperties" else "item"
        message = f"{field} must have {bound} {value} {unit}{'' if value == 1 else 's'}"
    elif validator in ("oneOf", "anyOf"):
        several = validator == "oneOf" and not error.context
        message = (f"{field} fits more than one of the allowed forms: remove the fields of all but one"
                   if several else f"{field} fits none of the allowed forms ({describe_type(instance)} given)")
    elif validator == "items" and value is False:
        message = f"{field} has more items than allowed"
    elif error.schema is False:
        message = f"{field} is not allowed here"
    else:
        # jsonschema's own words quote the whole value: name the rule instead.
        message = f"{field} breaks the schema rule '{validator}'"
    return SchemaError(message, hint=hint, file=document.path, pointer=pointer or "/",
                       line=document.line(pointer))


def _is_exclusive_choice(node: dict[str, Any]) -> bool:
    alternatives = node.get("oneOf", [])
    return bool(alternatives) and all(set(a) == {"required"} for a in alternatives)


def _is_secret(node: dict[str, Any]) -> bool:
    alternatives = node.get("oneOf", [])
    return any("env" in a.get("properties", {}) for a in alternatives)
