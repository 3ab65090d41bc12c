"""Postman test scripts -> assertions and outputs, for the patterns most collections use.

Translated: status checks (``pm.response.to.have.status(200)``, ``pm.expect(pm.response.code)...``,
``tests["..."] = responseCode.code === 200``), JSON field checks (``pm.expect(<json path>).to.eql(v)``
and its relatives), a header's presence, and saving a response field or a constant
(``pm.environment.set("token", pm.response.json().token)``). Every other statement is returned as
not translated, with the reason; nothing is evaluated.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

__all__ = ["ScriptTranslation", "translate_test_script"]

_STRING = r"""(?:"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
_ACCESSOR = r"""(?:\.[A-Za-z_$][\w$]*|\[\s*(?:\d+|""" + _STRING + r""")\s*\])*"""
_JSON_ROOT = r"(?:pm\.response\.json\(\)|JSON\.parse\(\s*responseBody\s*\))"

_STRUCTURE = re.compile(
    r"^(?:pm\.test\(\s*" + _STRING + r"\s*,\s*(?:function\s*\(\s*\)|\(\s*\)\s*=>)\s*\{|\}\s*\)?\s*;?|\{|)$")
_ALIAS = re.compile(r"^(?:var|let|const)\s+([A-Za-z_$][\w$]*)\s*=\s*(" + _JSON_ROOT + _ACCESSOR + r")\s*;?$")
_HAVE_STATUS = re.compile(r"^pm\.response\.to\.(?:have\.status|be\.status)\(\s*(\d{3})\s*\)\s*;?$")
_BE = re.compile(r"^pm\.response\.to\.be\.(ok|success|json)\s*;?$")
_HAVE_HEADER = re.compile(r"^pm\.response\.to\.have\.header\(\s*(" + _STRING + r")\s*(?:,\s*(" + _STRING
                          + r")\s*)?\)\s*;?$")
_JSON_BODY = re.compile(r"^pm\.response\.to\.have\.jsonBody\(\s*(" + _STRING + r")\s*(?:,\s*(.+?)\s*)?\)\s*;?$")
_EXPECT = re.compile(r"^(?:pm\.)?expect\((.+?)\)\.(?:to\.)?((?:not\.)?(?:deep\.)?(?:be\.)?(?:at\.)?)"
                     r"(eql|equal|equals|eq|include|contain|contains|above|below|least|most|a|an|match|"
                     r"exist|true|false|null|undefined)(?:\((.*)\))?\s*;?$")
_LEGACY = re.compile(r"^tests\[\s*" + _STRING + r"\s*\]\s*=\s*(.+?)\s*(===|==|!==|!=)\s*(.+?)\s*;?$")
_SET = re.compile(r"^(?:pm\.(?:environment|collectionVariables|globals|variables)\.set|"
                  r"postman\.set(?:Environment|Global)Variable)\(\s*(" + _STRING + r")\s*,\s*(.+?)\s*\)\s*;?$")

_OPS = {"eql": "equals", "equal": "equals", "equals": "equals", "eq": "equals",
        "include": "contains", "contain": "contains", "contains": "contains",
        "above": "gt", "below": "lt", "least": "gte", "most": "lte", "a": "type", "an": "type",
        "match": "matches"}
_NEGATED = {"equals": "not_equals"}
_JS_TYPES = {"string": "string", "number": "number", "boolean": "boolean", "object": "object", "array": "array",
             "null": "null"}


@attrs.define
class ScriptTranslation:
    assertions: list[dict[str, Any]] = attrs.field(factory=list)
    outputs: dict[str, str] = attrs.field(factory=dict)  # Postman variable -> JMESPath over the response
    expect_status: list[int] = attrs.field(factory=list)
    untranslated: list[tuple[int, str, str]] = attrs.field(factory=list)  # (line index, text, reason)


def translate_test_script(lines: list[str]) -> ScriptTranslation:
    out = ScriptTranslation()
    aliases: dict[str, str] = {}
    for index, raw in enumerate(lines):
        text = raw.strip()
        legacy = re.fullmatch(r"(tests\[.+?\]\s*=\s*)\((.+)\)\s*;?", text)
        if legacy:
            text = legacy[1] + legacy[2]
        if not text or text.startswith("//") or _STRUCTURE.match(text):
            continue
        reason = _statement(text, aliases, out)
        if reason is not None:
            out.untranslated.append((index, text, reason))
    return out


def _statement(text: str, aliases: dict[str, str], out: ScriptTranslation) -> str | None:
    """None when translated, else why not."""
    if match := _ALIAS.match(text):
        path = _response_path(match[2], aliases)
        if path is None:
            return "not a plain path into the JSON body"
        aliases[match[1]] = path
        return None
    if match := _HAVE_STATUS.match(text):
        _status(out, int(match[1]))
        return None
    if match := _BE.match(text):
        if match[1] == "ok":
            _status(out, 200)
        elif match[1] == "success":
            out.assertions.append({"that": "status", "gte": 200})
            out.assertions.append({"that": "status", "lt": 300})
        else:
            out.assertions.append({"that": 'headers."content-type"', "matches": "json"})
        return None
    if match := _HAVE_HEADER.match(text):
        name = _js_string(match[1]).lower()
        if match[2] is None:
            out.assertions.append({"that": f"headers.{_quoted(name)}", "exists": True})
        else:
            out.assertions.append({"that": f"headers.{_quoted(name)}", "equals": _js_string(match[2])})
        return None
    if match := _JSON_BODY.match(text):
        path = "body." + ".".join(_quoted(part) for part in _js_string(match[1]).split("."))
        if match[2] is None:
            out.assertions.append({"that": path, "exists": True})
            return None
        expected = _literal(match[2])
        if expected is _NO_VALUE:
            return "the expected value is not a constant"
        out.assertions.append({"that": path, "equals": expected})
        return None
    if match := _SET.match(text):
        name = _js_string(match[1])
        value = match[2].strip()
        path = _response_path(value, aliases)
        if path is None:
            literal = _literal(value)
            if literal is _NO_VALUE:
                return "the value saved is not a response field or a constant"
            path = "`" + json.dumps(literal) + "`"
        out.outputs[name] = path
        return None
    if match := _EXPECT.match(text):
        return _expect(match, aliases, out)
    if match := _LEGACY.match(text):
        subject = _subject(match[1], aliases)
        expected = _literal(match[3])
        if subject is None or expected is _NO_VALUE:
            return "only status and JSON field comparisons with a constant are translated"
        op = "equals" if match[2] in ("===", "==") else "not_equals"
        if subject == "status" and op == "equals" and isinstance(expected, int):
            _status(out, expected)
        else:
            out.assertions.append({"that": subject, op: expected})
        return None
    return "no flowrun equivalent for this statement"


def _expect(match: re.Match[str], aliases: dict[str, str], out: ScriptTranslation) -> str | None:
    subject = _subject(match[1], aliases)
    if subject is None:
        return "only the status, headers and JSON body fields are translated as subjects"
    negated = "not." in match[2]
    word, argument = match[3], match[4]
    if word in ("exist", "true", "false", "null", "undefined"):
        if argument is not None:
            return "unexpected argument"
        if word == "exist":
            out.assertions.append({"that": subject, "exists": not negated})
        elif word == "undefined":
            out.assertions.append({"that": subject, "exists": negated})
        elif negated:
            out.assertions.append({"that": subject, "not_equals": {"true": True, "false": False}.get(word)})
        else:
            out.assertions.append({"that": subject, "equals": {"true": True, "false": False}.get(word)})
        return None
    if argument is None:
        return "assertion without a value"
    op = _OPS[word]
    if word == "match":
        regex = re.fullmatch(r"/(.+)/([a-z]*)", argument.strip())
        if regex is None or regex[2]:
            return "only regular expression literals without flags are translated"
        expected: Any = regex[1]
    else:
        expected = _literal(argument)
        if expected is _NO_VALUE:
            return "the expected value is not a constant"
    if op == "type":
        if expected not in _JS_TYPES:
            return f"type {expected!r} has no flowrun equivalent"
        expected = _JS_TYPES[expected]
    if negated:
        if op not in _NEGATED:
            return "negated comparison with no flowrun equivalent"
        op = _NEGATED[op]
    if subject == "status" and op == "equals" and isinstance(expected, int):
        _status(out, expected)
    else:
        out.assertions.append({"that": subject, op: expected})
    return None


def _status(out: ScriptTranslation, code: int) -> None:
    out.assertions.append({"that": "status", "equals": code})
    if not 200 <= code < 300 and code not in out.expect_status:
        out.expect_status.append(code)  # else the step fails on the status before the assertion runs


def _subject(text: str, aliases: dict[str, str]) -> str | None:
    text = text.strip()
    if text in ("pm.response.code", "responseCode.code", "pm.response.status"):
        return "status" if text != "pm.response.status" else None
    header = re.fullmatch(r"(?:pm\.response\.headers\.get|postman\.getResponseHeader)\(\s*(" + _STRING
                          + r")\s*\)", text)
    if header:
        return f"headers.{_quoted(_js_string(header[1]).lower())}"
    return _response_path(text, aliases)


def _response_path(text: str, aliases: dict[str, str]) -> str | None:
    """``pm.response.json().a[0]["b-c"]`` -> ``body.a[0]."b-c"``; None when not such a path."""
    match = re.fullmatch(r"(" + _JSON_ROOT + r"|[A-Za-z_$][\w$]*)(" + _ACCESSOR + r")", text.strip())
    if match is None:
        return None
    root = match[1]
    if re.fullmatch(_JSON_ROOT, root):
        base = "body"
    elif root in aliases:
        base = aliases[root]
    else:
        return None
    path = base
    for part in re.findall(r"\.([A-Za-z_$][\w$]*)|\[\s*(\d+|" + _STRING + r")\s*\]", match[2]):
        name, bracket = part
        if name:
            if name == "length":
                return None  # a JavaScript property, not a JSON field
            path += "." + _quoted(name)
        elif bracket.isdigit():
            path += f"[{bracket}]"
        else:
            path += "." + _quoted(_js_string(bracket))
    return path


def _quoted(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else json.dumps(name)


def _js_string(text: str) -> str:
    text = text.strip()
    if text.startswith("'"):
        text = '"' + text[1:-1].replace('\\"', '"').replace('"', '\\"').replace("\\'", "'") + '"'
    return str(json.loads(text))


_NO_VALUE: Any = object()


def _literal(text: str) -> Any:
    text = text.strip()
    if text == "undefined":
        return _NO_VALUE
    if re.fullmatch(_STRING, text):
        try:
            return _js_string(text)
        except ValueError:
            return _NO_VALUE
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:  # ['a', 'b'] and {'a': 1}: JSON with single quotes
        return json.loads(re.sub(_STRING, lambda m: json.dumps(_js_string(m[0])), text))
    except (ValueError, TypeError):
        return _NO_VALUE
