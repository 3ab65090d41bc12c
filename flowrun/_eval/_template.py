"""Data pills: ``{{ expression }}`` in any string of a step or a flow, evaluated with JMESPath.

The context a pill reads::

    {"inputs": {...},
     "steps": {"<id>": {"status": 200, "headers": {...}, "body": ..., "outputs": {...}}},
     "env": {...}}                # only the variables the flow declares

Rules:

* Expressions are JMESPath (https://jmespath.org); nothing is ever executed as code.
* Besides JMESPath's own functions, a fixed set makes the only values that differ from run to
  run: ``uuid()`` (a random UUID 4), ``now()`` (the current time in UTC, ISO 8601 to the second:
  ``2026-12-05T08:30:00Z``; ``now('%Y%m%d')`` formats it with ``strftime``) and
  ``random_int(a, b)`` (a whole number from a to b, both included).
* A string that is exactly one pill, with no other character (not even a space), keeps the
  value's JSON type: ``"{{ inputs.count }}"`` gives ``7``, not ``"7"``.
* Pills inside a longer string become text (``value_to_text``): strings as they are, numbers
  with ``str()``, booleans as ``true``/``false``, objects and arrays as compact JSON, and null
  as the empty string.
* Only values are rendered: object keys are names and stay as written. Tuples become lists.
* ``\\{{`` writes a literal ``{{`` (the backslash is dropped). A backslash anywhere else is plain
  text. For a literal backslash right before a pill, write it with a JSON literal:
  ``{{ `"\\\\"` }}{{ inputs.name }}``.
* A pill ends at the first ``}}`` outside quotes and outside ``{...}``, so multi-select hashes
  work: ``{{ {id: inputs.id, n: length(inputs.items)} }}``.
* A plain path (names, dots and indexes, e.g. ``steps.balance.outputs.items[0]``) must name a
  value that exists; JSON null counts as existing. When a part is missing, ``DataPillError``
  names the deepest part that exists, what it holds and the closest key. Every other
  expression follows JMESPath, where a missing value is null, so
  ``{{ inputs.note || 'none' }}`` gives a default. JMESPath ``||`` also replaces ``false``,
  ``""``, ``[]`` and ``{}``.
* Whatever a template holds, the only error is ``DataPillError``: an expression nested more than
  ``MAX_EXPRESSION_DEPTH`` levels is refused, arithmetic that overflows (``avg`` of huge numbers,
  ``ceil`` of infinity) cannot be evaluated, and so on. ``render_text`` renders into text with a
  syntax of its own (a URL path, an XML envelope), escaping each value.
"""

from __future__ import annotations

import decimal
import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from flowrun._errors import DataPillError
from flowrun._models._numbers import decimal_text, dumps
from flowrun._models._record import ValueRecord

if TYPE_CHECKING:
    import jmespath.parser
    from jmespath import exceptions as jmespath_errors

OPEN = "{{"
CLOSE = "}}"
ESCAPED_OPEN = "\\{{"

PathPart = str | int

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Unquoted field names joined by dots: JMESPath reads them as nested field lookups.
_FIELD_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*){0,31}\Z")
# Nodes whose first child is evaluated where the node is, and the others on its result.
_CHAINS = frozenset(
    {"subexpression", "index_expression", "projection", "value_projection", "filter_projection",
     "flatten", "pipe"}
)
_MAX_LISTED = 20
# Far beyond any real expression; keeps every walk over a parsed expression clear of the recursion limit.
MAX_EXPRESSION_DEPTH = 100
_MAX_SHOWN_EXPRESSION = 200
SYNTAX_HINT = "a data pill holds a JMESPath expression such as inputs.account (see https://jmespath.org)"


class InvalidExpressionError(Exception):
    """An expression does not parse. Internal: each caller turns it into its own flowrun error."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


class UnresolvedError(Exception):
    """An expression names a missing value (``missing``) or cannot be evaluated on this data.

    Internal: callers turn it into ``DataPillError`` or into a failed assertion.
    """

    def __init__(self, reason: str, *, missing: bool, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing
        self.hint = hint




@attrs.frozen(eq=False, repr=False)
class Expression(ValueRecord):
    """A compiled JMESPath expression. ``path`` is set when it is a plain path.

    A path of plain field names (``inputs.account``, ``status``) is read without JMESPath, as
    JMESPath reads it; ``parsed`` compiles it when something asks for the tree.
    """

    source: str
    path: tuple[PathPart, ...] | None
    _parsed: jmespath.parser.ParsedResult | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def parsed(self) -> jmespath.parser.ParsedResult:
        if self._parsed is None:
            import jmespath

            object.__setattr__(self, "_parsed", jmespath.compile(self.source))  # frozen: a cache only
        assert self._parsed is not None
        return self._parsed

    def search(self, data: Any) -> Any:
        """JMESPath semantics: a missing value is null."""
        if self._parsed is None:
            return self._search_fields(data)
        from jmespath import exceptions as jmespath_errors

        from flowrun._eval._functions import OPTIONS

        try:
            return self._parsed.search(data, options=OPTIONS)
        except jmespath_errors.JMESPathTypeError as err:
            kinds = [str(kind) for kind in err.expected_types]
            expected = ", ".join(kinds[:-1]) + " or " + kinds[-1] if len(kinds) > 1 else "".join(kinds)
            raise UnresolvedError(
                f"function {err.function_name}() expects {expected}, got {err.actual_type}", missing=False
            ) from None
        except (jmespath_errors.JMESPathError, TypeError, ValueError, ArithmeticError, RecursionError) as err:
            # ArithmeticError: avg() of huge integers, ceil() of infinity.
            raise UnresolvedError(f"cannot be evaluated: {err}", missing=False) from None

    def _search_fields(self, data: Any) -> Any:
        # JMESPath's field lookup: the value's get(name), null where the value has no get.
        current = data
        try:
            for name in self.path or ():
                try:
                    current = current.get(name)
                except AttributeError:
                    current = None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as err:
            raise UnresolvedError(f"cannot be evaluated: {err}", missing=False) from None
        return current

    def evaluate(self, data: Any) -> Any:
        """Like ``search``, but a plain path that names a missing value raises ``UnresolvedError``."""
        if self.path is None:
            return self.search(data)
        current = data
        for depth, part in enumerate(self.path):
            if isinstance(part, str) and (type(current) is dict or isinstance(current, Mapping)):
                if part in current:
                    current = current[part]
                    continue
                raise _missing_key(self, self.path[:depth], part, current)
            if isinstance(part, int) and is_array(current):
                if -len(current) <= part < len(current):
                    current = current[part]
                    continue
                raise _missing_index(self, self.path[:depth], part, current)
            raise _wrong_kind(self, self.path[:depth], part, current)
        return current


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> Expression:
    """Compile (and cache) a JMESPath expression; raise ``InvalidExpressionError``."""
    text = source.strip()
    if not text:
        raise InvalidExpressionError(text, "the expression is empty")
    if _FIELD_PATH.match(text):
        return Expression(text, tuple(text.split(".")))
    _check_json_literals(text)
    import jmespath
    from jmespath import exceptions as jmespath_errors

    try:
        parsed = jmespath.compile(text)
    except jmespath_errors.JMESPathError as err:
        raise InvalidExpressionError(text, _syntax_reason(err, text)) from None
    except RecursionError:
        raise InvalidExpressionError(text, "the expression is nested too deeply") from None
    tree: dict[str, Any] = parsed.parsed  # type: ignore[assignment]
    if _depth(tree) > MAX_EXPRESSION_DEPTH:
        # `a || b || ...` and `a | b | ...` parse without recursion but nest one level per operator.
        raise InvalidExpressionError(text, f"the expression is nested more than {MAX_EXPRESSION_DEPTH} levels deep")
    _check_functions(text, tree)
    return Expression(text, _plain_path(tree), parsed)


def _depth(tree: Mapping[str, Any]) -> int:
    deepest = 0
    pending: list[tuple[Any, int]] = [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_EXPRESSION_DEPTH:
            break
        pending.extend((child, depth + 1) for child in node.get("children", ()) if isinstance(child, Mapping))
    return deepest


# --- templates ----------------------------------------------------------------------------


@attrs.frozen(eq=False, repr=False)
class _RawPill(ValueRecord):
    source: str
    start: int


class _TemplateError(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


_Part = str | Expression


def _split(text: str) -> list[str | _RawPill]:
    """Cut a string into literal text and raw pills; unescape ``\\{{``."""
    pieces: list[str | _RawPill] = []
    literal: list[str] = []
    position = 0
    while True:
        start = text.find(OPEN, position)
        if start < 0:
            literal.append(text[position:])
            break
        if start > 0 and text[start - 1] == "\\":
            literal.append(text[position : start - 1])
            literal.append(OPEN)
            position = start + len(OPEN)
            continue
        literal.append(text[position:start])
        end = _pill_end(text, start + len(OPEN))
        if end < 0:
            raise _TemplateError(
                f"unclosed '{OPEN}' at character {start + 1} of {_quote(text)}",
                hint=f"close the data pill with '{CLOSE}', or write \\{OPEN} for a literal '{OPEN}'",
            )
        joined = "".join(literal)
        if joined:
            pieces.append(joined)
        literal = []
        pieces.append(_RawPill(text[start + len(OPEN) : end], start))
        position = end + len(CLOSE)
    joined = "".join(literal)
    if joined:
        pieces.append(joined)
    return pieces


def _pill_end(text: str, start: int) -> int:
    """Index of the ``}}`` that closes a pill: the first one outside quotes and ``{...}``."""
    depth = 0
    quote = ""
    index = start
    length = len(text)
    while index < length:
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            if depth == 0 and text.startswith(CLOSE, index):
                return index
            depth = max(depth - 1, 0)
        index += 1
    # Unbalanced quotes or braces: end at the first "}}" so JMESPath reports the real mistake.
    return text.find(CLOSE, start)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    for piece in _split(text):
        if isinstance(piece, str):
            parts.append(piece)
            continue
        try:
            parts.append(compile_expression(piece.source))
        except InvalidExpressionError as err:
            raise _TemplateError(f"{_show_pill(piece.source)}: {err.reason}", hint=SYNTAX_HINT) from None
    return tuple(parts)


def render(value: Any, context: Mapping[str, Any], *, step: str | None = None, pointer: str = "") -> Any:
    """Evaluate every data pill in ``value`` (strings, and values of objects and arrays).

    ``pointer`` is the JSON pointer of ``value`` in its file; errors name it and ``step``.
    Raises ``DataPillError``.
    """
    try:
        return _render(value, context, step, pointer)
    except RecursionError:
        # Loaded files are depth-limited; a value built in Python may not be.
        raise DataPillError("the value is nested too deeply to render", pointer=pointer or None,
                            step=step) from None


def _render(value: Any, context: Mapping[str, Any], step: str | None, pointer: str) -> Any:
    if isinstance(value, str):
        if OPEN not in value:
            return value
        parts = _parsed(value, step, pointer)
        if len(parts) == 1 and isinstance(parts[0], Expression):
            return _evaluate_pill(parts[0], context, step, pointer)
        return _join(parts, context, step, pointer, value_to_text)
    if isinstance(value, Mapping):
        return {key: _render(item, context, step, f"{pointer}/{_pointer_token(key)}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render(item, context, step, f"{pointer}/{index}") for index, item in enumerate(value)]
    return value


def render_text(template: str, context: Mapping[str, Any], *, escape: Callable[[Any], str],
                step: str | None = None, pointer: str = "") -> str:
    """Render the pills of ``template`` as text, each value passed through ``escape``.

    For text with a syntax of its own (a URL path, an XML envelope): ``escape`` encodes a value
    (percent-encoding, XML escaping) so that it can never add structure; literal text is kept as
    written. Unlike ``render``, a template that is one pill is escaped text too.
    Raises ``DataPillError``.
    """
    if OPEN not in template:
        return template
    return _join(_parsed(template, step, pointer), context, step, pointer, escape)


def is_single_pill(template: str) -> bool:
    """True when ``template`` is exactly one pill, the case where ``render`` keeps the value's type."""
    if OPEN not in template:
        return False
    try:
        parts = _parse(template)
    except _TemplateError:
        return False
    return len(parts) == 1 and isinstance(parts[0], Expression)


def _parsed(text: str, step: str | None, pointer: str) -> tuple[_Part, ...]:
    try:
        return _parse(text)
    except _TemplateError as err:
        raise DataPillError(err.message, hint=err.hint, pointer=pointer or None, step=step) from None


def _join(parts: Sequence[_Part], context: Mapping[str, Any], step: str | None, pointer: str,
          escape: Callable[[Any], str]) -> str:
    try:
        return "".join(
            part if isinstance(part, str) else escape(_evaluate_pill(part, context, step, pointer)) for part in parts
        )
    except DataPillError as error:  # value_to_text does not know where the value goes
        if error.pointer is None and error.step is None:
            error.pointer, error.step = pointer or None, step
        raise


def _evaluate_pill(expression: Expression, context: Mapping[str, Any], step: str | None, pointer: str) -> Any:
    try:
        return expression.evaluate(context)
    except UnresolvedError as err:
        raise DataPillError(
            f"{_show_pill(expression.source)}: {err.reason}", hint=err.hint, pointer=pointer or None, step=step
        ) from None


def value_to_text(value: Any) -> str:
    """How a pill's value reads inside a longer string (and in query strings and headers)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, decimal.Decimal):
        return decimal_text(value)
    try:
        return dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise DataPillError("the value is nested too deeply to write as text") from None
    except (TypeError, ValueError):
        return str(value)


def _number_text(value: float) -> str:
    try:
        text = str(value)
        if isinstance(value, float) and "e" in text and math.isfinite(value):
            # 5e-05 is no xs:decimal, no amount and no query value anyone expects: 0.00005.
            return decimal_text(decimal.Decimal(text))
        return text
    except ValueError:
        # An integer beyond Python's limit for str() (4300 digits): no JSON file can hold one.
        raise DataPillError("the number has too many digits to write as text") from None


# --- static checks ------------------------------------------------------------------------


def find_pills(value: Any, pointer: str = "") -> list[tuple[str, str]]:
    """Every pill in ``value`` as ``(JSON pointer of its string, expression)``, in document order.

    Only the template structure is checked here (an unclosed ``{{`` raises ``DataPillError``);
    ``check_pill`` checks each expression.
    """
    found: list[tuple[str, str]] = []
    try:
        for where, text in _strings(value, pointer):
            if OPEN not in text:
                continue
            try:
                pieces = _split(text)
            except _TemplateError as err:
                raise DataPillError(err.message, hint=err.hint, pointer=where or None) from None
            found.extend((where, piece.source.strip()) for piece in pieces if isinstance(piece, _RawPill))
    except RecursionError:
        raise DataPillError("the value is nested too deeply to check", pointer=pointer or None) from None
    return found


def check_pill(expression: str, *, pointer: str = "", step: str | None = None) -> None:
    """Check one expression's syntax and function names without evaluating it."""
    try:
        compile_expression(expression)
    except InvalidExpressionError as err:
        raise DataPillError(f"{_show_pill(expression)}: {err.reason}", hint=SYNTAX_HINT, pointer=pointer or None,
                            step=step) from None


def check_pills(value: Any, *, pointer: str = "", step: str | None = None) -> None:
    """``find_pills`` then ``check_pill`` on each: the whole static check of a value."""
    for where, expression in find_pills(value, pointer):
        check_pill(expression, pointer=where, step=step)


def pill_roots(expression: str) -> set[str]:
    """The names an expression reads from the top of the context, with their first key.

    ``steps.balance.outputs.x || inputs.y`` gives ``{"steps", "steps.balance", "inputs", "inputs.y"}``:
    each top-level name, and ``"<name>.<key>"`` when the key right below it is written out. Names
    inside filters, projections and ``&`` references read array items, not the context, and are
    not listed. Raises ``DataPillError`` on a syntax error.
    """
    try:
        compiled = compile_expression(expression)
    except InvalidExpressionError as err:
        raise DataPillError(f"{_show_pill(expression)}: {err.reason}", hint=SYNTAX_HINT) from None
    found: set[str] = set()
    tree: dict[str, Any] = compiled.parsed.parsed  # type: ignore[assignment]
    _collect_roots(tree, found)
    return found


def _collect_roots(node: Mapping[str, Any], found: set[str]) -> None:
    kind = node["type"]
    if kind == "expref":
        return
    names = _leading_names(node)
    if names:
        found.add(names[0])
        if len(names) > 1:
            found.add(f"{names[0]}.{names[1]}")
    children = [child for child in node.get("children", ()) if isinstance(child, Mapping)]
    if kind in _CHAINS:
        children = children[:1]
    for child in children:
        _collect_roots(child, found)


def _leading_names(node: Mapping[str, Any]) -> list[str]:
    """The first two field names of a chain that starts at the context (``steps``, ``balance``)."""
    kind = node["type"]
    if kind == "field":
        return [node["value"]]
    children = [child for child in node.get("children", ()) if isinstance(child, Mapping)]
    if not children:
        return []
    if kind == "subexpression":
        names: list[str] = []
        for child in children:
            names.extend(_leading_names(child))
            if child["type"] != "field" or len(names) >= 2:
                break
        return names[:2]
    if kind in _CHAINS:
        return _leading_names(children[0])
    return []


def _strings(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield pointer, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{pointer}/{_pointer_token(key)}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{pointer}/{index}")


# --- expression checks ---------------------------------------------------------------------


def _check_json_literals(text: str) -> None:
    """Refuse a backquoted literal that is not JSON.

    JMESPath would read it as a string and emit a deprecation warning; a typo such as
    ``length(`[1, 2`)`` must be an error instead.
    """
    quote = ""
    start = 0
    index = 0
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 2
                continue
            if char == quote:
                if quote == "`":
                    literal = text[start + 1 : index].replace("\\`", "`")
                    try:
                        json.loads(literal)
                    except ValueError:
                        raise InvalidExpressionError(
                            text,
                            f"`{literal}` at character {start + 1} is not a JSON value "
                            "(write text as 'text' or `\"text\"`)",
                        ) from None
                quote = ""
        elif char in "'\"`":
            quote = char
            start = index
        index += 1


def _syntax_reason(err: jmespath_errors.JMESPathError, text: str) -> str:
    from jmespath import exceptions as jmespath_errors

    if isinstance(err, jmespath_errors.EmptyExpressionError):
        return "the expression is empty"
    if isinstance(err, jmespath_errors.LexerError):
        message = err.message[:1].lower() + err.message[1:]
        return f"{message} at character {err.lexer_position + 1}"
    if isinstance(err, jmespath_errors.IncompleteExpressionError):
        return f"the expression is incomplete: something is missing after character {len(text)}"
    if isinstance(err, jmespath_errors.ParseError):
        if err.token_type == "EOF":
            return f"the expression ends too early, after character {len(text)}"
        return f"unexpected '{err.token_value}' at character {err.lex_position + 1}"
    return str(err)


def _check_functions(text: str, tree: Mapping[str, Any]) -> None:
    from flowrun._eval._functions import FUNCTION_TABLE as table
    for node in _nodes(tree):
        if node["type"] != "function_expression":
            continue
        name = node["value"]
        if name not in table:
            suggestion = suggest(name, table)
            guess = f" (did you mean {suggestion}()?)" if suggestion else ""
            raise InvalidExpressionError(text, f"unknown function {name}(){guess}")
        signature = table[name]["signature"]
        given = len(node["children"])
        optional = sum(1 for entry in signature if entry.get("optional"))
        if optional:
            if not len(signature) - optional <= given <= len(signature):
                raise InvalidExpressionError(text, f"function {name}() takes at most {_count(len(signature))}, "
                                             f"got {given}")
            continue
        variadic = bool(signature) and bool(signature[-1].get("variadic"))
        if variadic and given < len(signature):
            raise InvalidExpressionError(
                text, f"function {name}() takes at least {_count(len(signature))}, got {given}"
            )
        if not variadic and given != len(signature):
            raise InvalidExpressionError(text, f"function {name}() takes {_count(len(signature))}, got {given}")


def _nodes(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("children", ()):
        if isinstance(child, Mapping):
            yield from _nodes(child)


def _plain_path(node: Mapping[str, Any]) -> tuple[PathPart, ...] | None:
    kind = node["type"]
    if kind == "field":
        return (node["value"],)
    if kind == "subexpression":
        parts: list[PathPart] = []
        for child in node["children"]:
            sub = _plain_path(child)
            if sub is None:
                return None
            parts.extend(sub)
        return tuple(parts)
    if kind == "index_expression":
        left, *indexes = node["children"]
        if not all(index["type"] == "index" for index in indexes):
            return None
        base = _plain_path(left)
        if base is None:
            return None
        return (*base, *(index["value"] for index in indexes))
    return None


# --- messages -----------------------------------------------------------------------------


def _missing_key(expression: Expression, prefix: tuple[PathPart, ...], key: str,
                 container: Mapping[Any, Any]) -> UnresolvedError:
    names = sorted(str(name) for name in container)
    suggestion = suggest(key, names)
    guess = f"did you mean '{suggestion}'? " if suggestion else ""
    if prefix == ("steps",):
        if not names:
            return UnresolvedError(f"step '{key}' has not run yet (no step has run before this point)",
                                   missing=True, hint="a step can read only the steps before it")
        return UnresolvedError(
            f"step '{key}' has not run yet ({guess}steps that ran: {_listing(names)})",
            missing=True, hint="a step can read only the steps before it",
        )
    if not prefix:
        return UnresolvedError(f"no '{key}' at the top level ({guess}available: {_listing(names)})",
                               missing=True)
    where = f"{format_path(prefix)} has no '{key}'"
    if not names:
        return UnresolvedError(f"{where} (it is empty)", missing=True, hint=_default_hint(expression))
    return UnresolvedError(f"{where} ({guess}available: {_listing(names)})", missing=True,
                           hint=_default_hint(expression))


def _missing_index(expression: Expression, prefix: tuple[PathPart, ...], index: int,
                   array: Sequence[Any]) -> UnresolvedError:
    where = format_path(prefix)
    if not array:
        return UnresolvedError(f"{where} is an empty array, it has no [{index}]", missing=True,
                               hint=_default_hint(expression))
    return UnresolvedError(f"{where} has {_items(len(array))}, no [{index}]", missing=True,
                           hint=_default_hint(expression))


def _wrong_kind(expression: Expression, prefix: tuple[PathPart, ...], part: PathPart,
                current: Any) -> UnresolvedError:
    where = format_path(prefix) if prefix else "the context"
    wanted = f"[{part}]" if isinstance(part, int) else f"'{part}'"
    if current is None:
        return UnresolvedError(f"{where} is null, so it has no {wanted}", missing=True,
                               hint=_default_hint(expression))
    if isinstance(part, str) and is_array(current):
        return UnresolvedError(
            f"{where} is an array, not an object: pick an item ({where}[0].{format_path((part,))}) "
            f"or project ({where}[*].{format_path((part,))})",
            missing=True,
        )
    if isinstance(part, int) and isinstance(current, Mapping):
        names = sorted(str(name) for name in current)
        keys = f" (keys: {_listing(names)})" if names else ""
        return UnresolvedError(f"{where} is an object, not an array{keys}", missing=True)
    return UnresolvedError(f"{where} is {json_type_article(current)}, so it has no {wanted}", missing=True)


def _default_hint(expression: Expression) -> str:
    return (f"to accept a missing value, give a default: {_show_pill(expression.source + ' || ' + repr(''))}")


def format_path(parts: Sequence[PathPart]) -> str:
    """``("steps", "a-b", "items", 0)`` reads ``steps."a-b".items[0]``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if _IDENTIFIER.match(part) else json.dumps(part, ensure_ascii=False)
        text += f".{name}" if text else name
    return text


def json_type(value: Any) -> str:
    """The JSON name of a value's type: string, number, boolean, object, array, null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | decimal.Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if is_array(value):
        return "array"
    return type(value).__name__


def json_type_article(value: Any) -> str:
    kind = json_type(value)
    if kind == "null":
        return "null"
    return f"an {kind}" if kind[:1] in "aeiou" else f"a {kind}"


def is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | bytearray)


def suggest(word: str, options: Any) -> str | None:
    candidates = [str(option) for option in options]
    folded = {candidate.casefold(): candidate for candidate in candidates}
    if word.casefold() in folded:
        return folded[word.casefold()]
    import difflib

    matches = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def _listing(names: Sequence[str]) -> str:
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return ", ".join(names[:_MAX_LISTED]) + f", ... ({len(names)} in all)"


def _items(count: int) -> str:
    return "1 item" if count == 1 else f"{count} items"


def _count(arguments: int) -> str:
    return "1 argument" if arguments == 1 else f"{arguments} arguments"


def _show_pill(expression: str) -> str:
    text = expression.strip()
    if len(text) > _MAX_SHOWN_EXPRESSION:
        text = text[: _MAX_SHOWN_EXPRESSION - 3] + "..."
    return f"{OPEN} {text} {CLOSE}" if text else f"{OPEN} {CLOSE}"


def _quote(text: str, limit: int = 60) -> str:
    return json.dumps(text if len(text) <= limit else text[:limit] + "...", ensure_ascii=False)


def _pointer_token(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
