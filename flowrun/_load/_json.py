"""Strict JSON reading with positions: every value's JSON pointer maps to its line.

``json`` gives no positions, so after a successful (C-speed) parse a small scanner walks the
text once more to record the line of each value. Duplicate keys and NaN/Infinity are refused:
both are legal for Python's ``json`` and both hide mistakes in hand-written files.

Hostile files get a clean error, never a traceback or a hang: files over ``MAX_FILE_BYTES`` are
refused after reading at most one byte more (a FIFO or ``/dev/zero`` cannot exhaust memory),
devices and sockets are refused, and nesting deeper than ``MAX_NESTING`` is refused: every later
stage (schema checks, data pills, reports) walks values recursively.
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
from flowrun._models._files import NotRegularFileError, open_regular
from flowrun._models._numbers import WrittenNumber
from flowrun._models._record import ValueRecord

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
MAX_FILE_BYTES = 16 * 1024 * 1024
# Deeper than any hand-written file, shallow enough for every recursive walk after loading.
MAX_NESTING = 100
# Positions are recorded down to this depth; deeper values report the line of their container.
MAX_DEPTH = 64
# A whole JSON string, or one of the tokens a scan looks for outside strings.
_STRING = r'"(?:[^"\\]|\\.)*"'
_CONSTANT = re.compile(_STRING + r"|(-?Infinity|NaN)")
_BRACKET = re.compile(_STRING + r"|([\[\]{}])")


_ITEM = re.compile(r"/(\d+)(?:/|$)")


@attrs.frozen(eq=False, repr=False)
class JsonDocument(ValueRecord):
    """Parsed JSON and the line of each value, found when first asked for (an alias file of 1,000
    records, of which a run reads a few, is scanned only around the records read)."""

    path: Path | None
    data: Any
    text: str = attrs.field(default="", repr=False, eq=False)
    _memo: dict[Any, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)

    @property
    def lines(self) -> dict[str, int]:
        if "all" not in self._memo:
            self._memo["all"] = _scan_lines(self.text)
        lines: dict[str, int] = self._memo["all"]
        return lines

    def line(self, pointer: str) -> int | None:
        lines = self._lines_around(pointer)
        # An error about a missing field points at the object that lacks it.
        while True:
            if pointer in lines:
                return lines[pointer]
            if not pointer:
                return None
            pointer = pointer.rsplit("/", 1)[0]

    def _lines_around(self, pointer: str) -> dict[str, int]:
        """The lines of the top-level array item holding ``pointer`` (scanned alone), else all lines."""
        match = _ITEM.match(pointer)
        if "all" in self._memo or match is None or not isinstance(self.data, list):
            return self.lines
        spans = self._memo.get("spans")
        if spans is None:
            spans = self._memo["spans"] = _item_spans(self.text, len(self.data))
        index = int(match.group(1))
        if spans is None or index >= len(spans):
            return self.lines
        key = ("item", index)
        if key not in self._memo:
            start, end = spans[index]
            self._memo[key] = _scan_lines(self.text[start:end], prefix=f"/{index}",
                                          first_line=self.text.count("\n", 0, start) + 1, depth=1)
        lines: dict[str, int] = self._memo[key]
        return lines


_SCAN_ITEM: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_BLANK = re.compile(r"[ \t\n\r]*")


def _after_blanks(text: str, position: int) -> int:
    return _BLANK.match(text, position).end()  # type: ignore[union-attr]  # matches the empty string too


def _item_spans(text: str, count: int) -> list[tuple[int, int]] | None:
    """Where each item of a top-level array of objects or arrays starts and ends; None for other
    shapes. The text has parsed already: the C scanner skips each item whole (a walk over every
    bracket and string in Python was ~20 ms of a run next to a file of 1,000 aliases)."""
    position = _after_blanks(text, 0)
    if not text.startswith("[", position):
        return None
    position = _after_blanks(text, position + 1)
    spans: list[tuple[int, int]] = []
    while position < len(text) and text[position] != "]":
        if text[position] not in "[{":
            return None
        try:
            _, end = _SCAN_ITEM(text, position)
        except (StopIteration, ValueError, RecursionError):
            return None
        spans.append((position, end))
        position = _after_blanks(text, end)
        if text.startswith(",", position):
            position = _after_blanks(text, position + 1)
    return spans if len(spans) == count else None


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


def _syntax_error(text: str, exc: json.JSONDecodeError, path: Path | None) -> JsonSyntaxError:
    """The parser's complaint, in the words of the mistakes people make by hand where the parser
    names something else: a comma after the last item, single quotes, a comment."""
    found = text[exc.pos:exc.pos + 2]
    before = text[:exc.pos].rstrip()
    if found[:1] in ("}", "]") and before.endswith(","):
        comma = len(before) - 1
        line, column = _line_of(text, comma), comma - text.rfind("\n", 0, comma)
        return JsonSyntaxError(f"invalid JSON: a comma after the last item, before '{found[0]}' (column {column})",
                               hint="remove that comma: JSON allows none after the last item", file=path, line=line)
    if found[:1] == "'":
        return JsonSyntaxError(f"invalid JSON: a single quote (column {exc.colno})",
                               hint="JSON strings and keys take double quotes", file=path, line=exc.lineno)
    if found in ("//", "/*"):
        return JsonSyntaxError(f"invalid JSON: a comment (column {exc.colno})",
                               hint="JSON has no comments: remove it, or keep the note in a \"description\" field",
                               file=path, line=exc.lineno)
    return JsonSyntaxError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=path, line=exc.lineno)


def parse_json(text: str, path: Path | None = None) -> JsonDocument:
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_refuse_constant,
                          parse_float=WrittenNumber)
    except RecursionError:
        raise _too_deep(text, path) from None
    except json.JSONDecodeError as exc:
        raise _syntax_error(text, exc, path) from None
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
    except ValueError as exc:  # NaN / Infinity, or an integer of more than 4300 digits
        constant = _first_outside_strings(_CONSTANT, text)
        if constant is None:
            raise JsonSyntaxError(f"invalid JSON: {exc}", file=path) from None
        raise JsonSyntaxError(
            f"invalid JSON: {constant.group(1)} is not a JSON number",
            hint="JSON has no NaN or Infinity: write null, a number, or a string",
            file=path, line=_line_of(text, constant.start()),
        ) from None
    if nesting_exceeds(data, MAX_NESTING):
        raise _too_deep(text, path)
    return JsonDocument(path, data, text)


def read_json_file(path: Path) -> JsonDocument:
    try:
        with open_regular(path) as handle:
            # Read one byte past the limit: enough to refuse, bounded for a file that grows.
            raw = handle.read(MAX_FILE_BYTES + 1)
    except NotRegularFileError as exc:
        raise DefinitionError(f"expected a JSON file, found {exc.kind}", file=path,
                              hint="name a regular file: FIFOs, devices and sockets are never read") from None
    except IsADirectoryError:
        raise DefinitionError("expected a JSON file, found a directory", file=path) from None
    except FileNotFoundError:
        raise DefinitionError("file not found", file=path, hint="check the path") from None
    except OSError as exc:
        raise DefinitionError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if len(raw) > MAX_FILE_BYTES:
        raise DefinitionError(f"file is larger than {MAX_FILE_BYTES} bytes, the limit for definition files",
                              hint="split it: large request bodies can come from a file (body.file)", file=path)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise JsonSyntaxError("file is not UTF-8 text", file=path, line=line) from None
    return parse_json(text, path)


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _first_outside_strings(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The first match of ``pattern``'s group 1 that is not inside a JSON string."""
    return next((m for m in pattern.finditer(text) if m.group(1) is not None), None)


def nesting_exceeds(data: Any, limit: int) -> bool:
    # Iterative: the point is to check depth without recursing.
    pending: list[tuple[Any, int]] = [(data, 0)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth >= limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _too_deep(text: str, path: Path | None) -> JsonSyntaxError:
    depth = 0
    line = None
    for match in _BRACKET.finditer(text):
        bracket = match.group(1)
        if bracket is None:
            continue
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_NESTING:
            line = _line_of(text, match.start())
            break
    return JsonSyntaxError(f"JSON nested more than {MAX_NESTING} levels deep",
                           hint="flatten the structure; no flowrun file needs that depth", file=path, line=line)


def _scan_lines(text: str, duplicates_of: str | None = None, found: list[str] | None = None, *,
                prefix: str = "", first_line: int = 1, depth: int = 0) -> dict[str, int]:
    """Map each JSON pointer to the line of its value. Assumes ``text`` is valid JSON
    (apart from a duplicate key, whose line is stored under ``#duplicate`` and whose pointer is
    appended to ``found``)."""
    lines: dict[str, int] = {}
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_at(pos: int) -> int:
        return bisect.bisect_left(newlines, pos) + first_line

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
        value(0, prefix, depth)
    return lines
