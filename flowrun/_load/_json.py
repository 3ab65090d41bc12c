"""Strict JSON reading with positions: every value's JSON pointer maps to its line.

``json`` gives no positions, so after a successful (C-speed) parse a small scanner walks the
text once more to record the line of each value. Duplicate keys and NaN/Infinity are refused:
both are legal for Python's ``json`` and both hide mistakes in hand-written files.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any

import attrs

from flowrun._errors import DefinitionError, JsonSyntaxError, SchemaError

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64


@attrs.frozen
class JsonDocument:
    path: Path | None
    data: Any
    lines: dict[str, int]

    def line(self, pointer: str) -> int | None:
        # An error about a missing field points at the object that lacks it.
        while True:
            if pointer in self.lines:
                return self.lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]


def escape_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str, path: Path | None = None) -> JsonDocument:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=path, line=exc.lineno) from None
    except _DuplicateKey as dup:
        found: list[str] = []
        lines = _scan_lines(text, duplicates_of=dup.key, found=found)
        raise SchemaError(
            f"key '{dup.key}' appears twice in one object",
            hint="JSON keeps only the last of duplicate keys: remove one",
            file=path,
            pointer=found[0] if found else None,
            line=lines.get("#duplicate"),
        ) from None
    except ValueError as exc:  # NaN / Infinity
        raise JsonSyntaxError(f"invalid JSON: {exc}", file=path) from None
    except RecursionError:
        raise JsonSyntaxError("JSON nested too deeply", file=path) from None
    return JsonDocument(path, data, _scan_lines(text))


def read_json_file(path: Path) -> JsonDocument:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise DefinitionError(f"file is {size} bytes; definition files are limited to {MAX_FILE_BYTES}",
                                  file=path)
        raw = path.read_bytes()
    except IsADirectoryError:
        raise DefinitionError("expected a JSON file, found a directory", file=path) from None
    except FileNotFoundError:
        raise DefinitionError("file not found", file=path, hint="check the path") from None
    except OSError as exc:
        raise DefinitionError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise JsonSyntaxError("file is not UTF-8 text", file=path, line=line) from None
    return parse_json(text, path)


def _scan_lines(text: str, duplicates_of: str | None = None, found: list[str] | None = None) -> dict[str, int]:
    """Map each JSON pointer to the line of its value. Assumes ``text`` is valid JSON
    (apart from a duplicate key, whose line is stored under ``#duplicate`` and whose pointer is
    appended to ``found``)."""
    lines: dict[str, int] = {}
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + 1

    def skip(pos: int) -> int:
        match = _WS.match(text, pos)
        return match.end() if match else pos

    def value(pos: int, pointer: str, depth: int) -> int:
        pos = skip(pos)
        lines[pointer] = line_at(pos)
        if depth > MAX_DEPTH:
            return len(text)
        char = text[pos]
        if char == "{":
            pos = skip(pos + 1)
            seen: set[str] = set()
            if text[pos] == "}":
                return pos + 1
            while True:
                key, pos = scanstring(text, skip(pos) + 1)
                if key == duplicates_of and key in seen and "#duplicate" not in lines:
                    lines["#duplicate"] = line_at(pos)
                    if found is not None:
                        found.append(f"{pointer}/{escape_token(key)}")
                seen.add(key)
                pos = skip(pos)
                pos = value(pos + 1, f"{pointer}/{escape_token(key)}", depth + 1)
                pos = skip(pos)
                if text[pos] == "}":
                    return pos + 1
                pos += 1
        if char == "[":
            pos = skip(pos + 1)
            if text[pos] == "]":
                return pos + 1
            index = 0
            while True:
                pos = value(pos, f"{pointer}/{index}", depth + 1)
                pos = skip(pos)
                if text[pos] == "]":
                    return pos + 1
                pos += 1
                index += 1
        if char == '"':
            _, end = scanstring(text, pos + 1)
            return int(end)
        match = _SCALAR.match(text, pos)
        return match.end() if match else len(text)

    # Positions are a convenience; the data is already parsed.
    with contextlib.suppress(IndexError, ValueError):
        value(0, "", 0)
    return lines
