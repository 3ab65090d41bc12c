"""One step after its response arrived: parse -> outputs -> status check -> assertions -> StepResult.

Protocol-neutral: the REST and SOAP executors hand over a ``Received`` (status, headers, the
parsed body, and the XML tree when there is one) and get a ``StepResult``. The API:

* ``parse_body(content, content_type, mode)`` -> ``(body, xml_root)``: ``auto`` picks JSON for
  ``application/json`` and ``+json``, XML (parsed safely, body = ``xml_to_data``) for
  ``application/xml``, ``text/xml`` and ``+xml``, text for ``text/*``, bytes otherwise. JSON
  must be valid UTF-8 (else ``ResponseParseError`` with the byte position); text is decoded with
  its charset (UTF-8 by default) and a byte that is not valid there becomes U+FFFD, as browsers do.
* ``excerpt(content, encoding)``: at most 500 characters of a body, for error messages.
* ``finish(step, received, ...)``: outputs, status check, assertions, the result.
* ``failure(step, error, ...)``: the result of a step that got no usable response.

Order and precedence: outputs are extracted first (JMESPath over ``{status, headers, body}``
with lower-cased header names; ``xpath:`` for XPath over the XML body). An unexpected status
then fails the step with ``UnexpectedStatusError`` (it wins over a parse or capture error, since
an error page rarely has the shape of a success). Assertions run only on an otherwise good
response, over the flow context plus the step's own ``status``, ``headers``, ``body``, ``outputs``.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

from flowrun._errors import (
    CaptureError,
    FlowrunError,
    InternalError,
    OutputNotFoundError,
    ResponseParseError,
    UnexpectedStatusError,
)
from flowrun._eval import capture_json, raise_for, reads_failed_items
from flowrun._eval._assertions import judge_assertion, pass_plainly, plain_checks
from flowrun._eval._template import InvalidExpressionError, compile_expression
from flowrun._models._numbers import WrittenNumber
from flowrun._models._record import RecordRepr
from flowrun._models._results import AssertionOutcome, Attempt, RequestInfo, StepResult, TlsInfo
from flowrun._models._steps import ResponseSpec, StepCommon

if TYPE_CHECKING:
    from lxml import etree

ParseMode = Literal["auto", "json", "xml", "text", "binary"]
EXCERPT_CHARS = 500
# Far deeper than any real API answer, far below Python's recursion limit: every later step
# (outputs, -v, JSON and JUnit reports) can walk what passes.
MAX_BODY_DEPTH = 200
XPATH_PREFIX = "xpath:"
_SPACES = re.compile(r"\s+")


@attrs.define(eq=False, repr=False)
class Received(RecordRepr):
    """A response as the runner sees it. ``headers`` keep the partner's names, order and
    duplicates; ``xml`` is the parsed tree for ``xpath:`` outputs.

    Not frozen: a REST response is one record from the wire to the result (``_exchange.Raw``
    extends it), its head read in, then its body, then what parsing made of the body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: Any = attrs.field(default=None, repr=False)
    content_type: str | None = None
    excerpt: str = attrs.field(default="", repr=False)
    xml: etree._Element | None = attrs.field(default=None, repr=False)
    url: str | None = None
    # SOAP only: the reply's headers and, for a fault the step expects, the fault.
    soap_headers: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    fault: Mapping[str, Any] | None = attrs.field(default=None, repr=False)
    # A paginated step: the items of every page (``body`` is the last page's).
    items: list[Any] | None = attrs.field(default=None, repr=False)

    def document(self) -> dict[str, Any]:
        """What output expressions and a step's own assertions read."""
        document = {"status": self.status, "headers": lowered_headers(self.headers), "body": self.body}
        if self.items is not None:
            document["items"] = self.items
        if self.soap_headers is not None:
            document["soap_headers"] = self.soap_headers
        if self.fault is not None:
            document["fault"] = self.fault
        return document


# --- parsing ------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def body_kind(content_type: str | None) -> Literal["json", "xml", "text", "binary"] | None:
    """What ``auto`` makes of a content type (None when there is none)."""
    if not content_type:
        return None
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime in ("application/json", "text/json") or mime.endswith("+json"):
        return "json"
    if mime in ("application/xml", "text/xml") or mime.endswith("+xml"):
        return "xml"
    if mime.startswith("text/") or mime in ("application/x-www-form-urlencoded", "application/javascript"):
        return "text"
    return "binary"


def charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"').lower()
    return None


def decode_text(content: bytes, encoding: str | None) -> str:
    try:
        return content.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset name
        return content.decode("utf-8", errors="replace")


def parse_body(content: bytes, content_type: str | None, mode: ParseMode = "auto",
               ) -> tuple[Any, etree._Element | None]:
    """The body as data, and the XML tree when it is XML.

    Raises ``ResponseParseError`` (``UnsafeXmlError`` for XML with a DTD).
    """
    if mode == "binary":
        return content, None
    if not content:
        return None, None
    kind: str | None = mode
    if mode == "auto":
        kind = body_kind(content_type)
        if kind is None:
            stripped = content.lstrip()
            kind = "json" if stripped[:1] in (b"{", b"[") else "text"
            if kind == "json":
                try:
                    return json_body(content), None
                except ValueError:
                    kind = "text"
    if kind == "json":
        try:
            return json_body(content), None
        except ResponseParseError:
            raise
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResponseParseError(f"the body is not valid JSON ({content_type or 'no content type'}): {exc}",
                                     hint='set "parse": "text" on the response to keep it as text') from None
    if kind == "xml":
        from flowrun._eval._xml import parse_xml, xml_to_data  # lxml only for XML bodies

        root = parse_xml(content)
        return xml_to_data(root), root
    if kind == "text":
        return decode_text(content, charset(content_type)), None
    return content, None


# ``json.loads`` with these options would build a decoder for every body.
_JSON = json.JSONDecoder(parse_float=WrittenNumber)
# The decoder's scanner (set by its ``__init__``) and the whitespace ``decode`` allows after a value.
_SCAN: Any = _JSON.scan_once  # type: ignore[attr-defined]
_WHITESPACE: Any = re.compile(r"[ \t\n\r]*").match
_JSON_OPENERS = (b"{", b"[")


def json_body(content: bytes) -> Any:
    """``json.loads`` with a bound on nesting (``ResponseParseError`` beyond ``MAX_BODY_DEPTH``)."""
    # A body that opens with "{" or "[" and then no NUL byte is UTF-8 to ``json.detect_encoding``
    # (it has no BOM, and is not UTF-16 or UTF-32): the common case is spared the detection.
    encoding = ("utf-8" if content[:1] in _JSON_OPENERS and content[1:2] != b"\x00"
                else json.detect_encoding(content))
    try:
        # Numbers keep their text: an amount passed on to a SOAP xs:decimal stays exact.
        text = content.decode(encoding, "surrogatepass")
        try:
            # ``JSONDecoder.decode`` without its two frames and leading whitespace match; anything
            # it would refuse or report goes through it.
            data, end = _SCAN(text, 0)
        except StopIteration:
            data, end = _JSON.decode(text), len(text)
        if end != len(text) and _WHITESPACE(text, end).end() != len(text):
            data = _JSON.decode(text)  # raises its "Extra data" error
    except RecursionError:
        raise _too_deep() from None
    # Depth is at most the number of brackets: counting them (in C) spares the walk for almost every body.
    if content.count(b"[") + content.count(b"{") > MAX_BODY_DEPTH:
        from flowrun._load._json import nesting_exceeds

        if nesting_exceeds(data, MAX_BODY_DEPTH):
            raise _too_deep()
    return data


def _too_deep() -> ResponseParseError:
    return ResponseParseError(f"the JSON body is nested more than {MAX_BODY_DEPTH} levels deep; refused",
                              hint='no real answer is that deep; set "parse": "text" on the response to keep '
                                   "it as text")


def excerpt(content: bytes, encoding: str | None = None) -> str:
    return decode_text(content[: EXCERPT_CHARS * 4], encoding)[:EXCERPT_CHARS]


# --- after the response -------------------------------------------------------------------------


def lowered_headers(headers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; repeated headers joined with ", " (as HTTP allows)."""
    result = {name.lower(): value for name, value in headers}
    if len(result) == len(headers):
        return result  # no name repeated: nothing to join
    result = {}
    for name, value in headers:
        key = name.lower()
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result


def _plain_path(expression: str) -> tuple[str | int, ...] | None:
    """The path of a plain JMESPath expression (``body.items[0].id``), None for anything else."""
    try:
        return compile_expression(expression).path
    except InvalidExpressionError:
        return None  # capture_json reports it


@functools.lru_cache(maxsize=1024)
def _below_body(expression: str) -> tuple[str | int, ...] | None:
    """The path below ``body`` of a plain path that starts there (``body.items[0].id``), else None."""
    if expression.startswith(XPATH_PREFIX):
        return None
    path = _plain_path(expression)
    return path[1:] if path is not None and path[0] == "body" else None


_MISSING = object()


def _walk(value: Any, path: tuple[str | int, ...]) -> Any:
    """JMESPath semantics for a plain path, without the interpreter; ``_MISSING`` when a part is absent
    (a present null is ``None``)."""
    for part in path:
        if isinstance(part, str):
            if not (type(value) is dict or isinstance(value, Mapping)) or part not in value:
                return _MISSING
            value = value[part]
        elif isinstance(value, list) and -len(value) <= part < len(value):
            value = value[part]
        else:
            return _MISSING
    return value


def extract_outputs(spec: ResponseSpec, received: Received) -> dict[str, Any]:
    """``spec.outputs`` evaluated on the response; raises ``CaptureError``, and
    ``OutputNotFoundError`` for an expression that matches nothing (unless the output is optional)."""
    if not spec.outputs:
        return {}
    document: dict[str, Any] | None = None
    outputs: dict[str, Any] = {}
    for name, expression in spec.outputs.items():
        below = _below_body(expression)
        if below is not None:
            # The common case, read straight from the body: the same result as JMESPath.
            value = _walk(received.body, below)
            if value is _MISSING:
                if name not in spec.optional_outputs:
                    raise no_match(name, expression, received.document(), _plain_path(expression))
                value = None
            outputs[name] = value
            continue
        if expression.startswith(XPATH_PREFIX):
            if received.xml is None:
                raise CaptureError(f"output '{name}': an XPath needs an XML body, and this one is "
                                   f"{received.content_type or 'without a content type'}")
            from flowrun._eval._capture import capture_xpath

            value = capture_xpath(expression[len(XPATH_PREFIX):].strip(), received.xml, spec.namespaces)
            if value is None and name not in spec.optional_outputs:
                raise OutputNotFoundError(f"output '{name}': the XPath '{expression[len(XPATH_PREFIX):].strip()}' "
                                          "matches nothing in the reply")
            outputs[name] = value
            continue
        path = _plain_path(expression)
        if document is None:
            document = received.document()
        if path is not None and path[0] in document:
            value = _walk(document, path)
            if value is _MISSING:
                if name not in spec.optional_outputs:
                    raise no_match(name, expression, document, path)
                value = None
            outputs[name] = value
            continue
        try:
            value = capture_json(expression, document)
        except CaptureError as error:
            error.message = f"output '{name}': {error.message}"
            error.args = (error.message,)
            raise
        if value is None and name not in spec.optional_outputs and not _is_literal(expression):
            raise no_match(name, expression, document, path)
        outputs[name] = value
    return outputs


def _is_literal(expression: str) -> bool:
    """`null` written on purpose is a value, not a miss."""
    compiled = compile_expression(expression)
    return compiled.path is None and bool(compiled.parsed.parsed.get("type") == "literal")


def no_match(name: str, expression: str, document: Mapping[str, Any],
             path: tuple[str | int, ...] | None) -> OutputNotFoundError:
    """The error of an output that matches nothing: the deepest part that exists, the closest key
    and the shape (keys and types, never values) of what is there."""
    from flowrun._eval._capture import describe_miss

    return OutputNotFoundError(f"output '{name}': {describe_miss(expression.strip(), document, path)}")


def status_error(spec: ResponseSpec, received: Received) -> UnexpectedStatusError | None:
    if spec.status_expected(received.status):
        return None
    if spec.expect_fault and received.fault is not None and spec.expect_status is None:
        return None  # a fault comes with 500 (or 200): the fault is what the step expects
    expected = "any 2xx" if spec.expect_status is None else ", ".join(map(str, spec.expect_status))
    shown = _SPACES.sub(" ", received.excerpt).strip()
    where = f" from {received.url}" if received.url else ""
    message = (f"HTTP {received.status}{where}, expected {expected}; "
               f"{received.content_type or 'no content type'}: {shown[:200]!r}" if shown else
               f"HTTP {received.status}{where}, expected {expected}; empty body")
    return UnexpectedStatusError(message, status=received.status, body_excerpt=received.excerpt,
                                 content_type=received.content_type, headers=received.headers)


def check_assertions(assertions: Sequence[Mapping[str, Any]], context: Mapping[str, Any], *,
                     step: str | None = None, per_item: bool = False,
                     ) -> tuple[tuple[AssertionOutcome, ...], FlowrunError | None]:
    """Every assertion's outcome, and the error of the first one that failed (None if all passed).

    An assertion that is itself wrong (bad expression, broken pill) stops there with its error.
    ``per_item``: one item of a for_each step; assertions over the whole step (``failed_items``)
    are left to the flow runner, which checks them once after every item.
    """
    outcomes: list[AssertionOutcome] = []
    first: FlowrunError | None = None
    for index, spec in enumerate(assertions):
        if per_item and reads_failed_items(spec):
            continue
        pointer = f"/assert/{index}"
        try:
            passed, that, op, expected, actual, message = judge_assertion(spec, context, step=step, pointer=pointer)
        except FlowrunError as error:
            return tuple(outcomes), first or error
        # The result records outcomes without their location; the error of a failed one has it.
        outcome = AssertionOutcome(passed=passed, expression=that, op=op, expected=expected, actual=actual,
                                   message=message)
        outcomes.append(outcome)
        if not passed and first is None:
            try:
                raise_for(attrs.evolve(outcome, step=step, pointer=pointer))
            except FlowrunError as error:
                first = error
    return tuple(outcomes), first


def finish(
    step: StepCommon,
    received: Received,
    *,
    context: Mapping[str, Any] | None = None,
    attempts: tuple[Attempt, ...] = (),
    started: float | None = None,
    tls: TlsInfo | None = None,
    request: RequestInfo | None = None,
    parse_error: FlowrunError | None = None,
) -> StepResult:
    """The result of a step that got a response. ``started`` is a ``time.perf_counter()`` value;
    ``parse_error`` is what ``parse_body`` raised, if anything (the body is then the excerpt)."""
    spec = step.response
    error: FlowrunError | None = parse_error
    outputs: dict[str, Any] = {}
    if error is None:
        try:
            outputs = extract_outputs(spec, received)
        except FlowrunError as capture_error:
            error = capture_error
    unexpected = status_error(spec, received)
    if unexpected is not None:
        error = unexpected
    assertions: tuple[AssertionOutcome, ...] = ()
    if error is None and step.assertions:
        plain = plain_checks(step.assertions)
        passed = None
        if plain is not None:
            # Nothing they read needs the headers lower-cased, the clock or the flow's context.
            own = {"status": received.status, "body": received.body, "outputs": outputs}
            passed = pass_plainly(plain, own)
            if passed is not None:
                assertions = passed
            else:
                if received.items is not None:
                    own["items"] = received.items
                if received.soap_headers is not None:
                    own["soap_headers"] = received.soap_headers
                if received.fault is not None:
                    own["fault"] = received.fault
        else:
            own = received.document()  # a new dict each time: ours to extend
            own["outputs"] = outputs
            # Every attempt and the parsing so far: {"that": "duration_ms", "lt": 2000}.
            own["duration_ms"] = (time.perf_counter() - started) * 1000.0 if started is not None else 0.0
        if passed is None:
            scope = {**context, **own} if context else own
            assertions, error = check_assertions(step.assertions, scope, step=step.id,
                                                 per_item=step.for_each is not None)
    return _result(step, "failed" if error is not None else "passed", error=error, received=received,
                   outputs=outputs, attempts=attempts, started=started, tls=tls, request=request,
                   assertions=assertions)


def failure(
    step: StepCommon,
    error: FlowrunError,
    *,
    attempts: tuple[Attempt, ...] = (),
    started: float | None = None,
    tls: TlsInfo | None = None,
    request: RequestInfo | None = None,
    received: Received | None = None,
) -> StepResult:
    """The result of a step that failed before (or while) getting a response."""
    return _result(step, "failed", error=error, received=received, outputs={}, attempts=attempts,
                   started=started, tls=tls, request=request, assertions=())


def internal_error(exc: BaseException) -> InternalError:
    """An exception flowrun did not expect, as a step error: its type and first line, never a
    traceback (kept in ``details`` for ``-v``; logged on the ``flowrun`` logger at debug level)."""
    import logging
    import traceback

    first = (str(exc).strip().splitlines() or [""])[0][:200]
    error = InternalError(f"unexpected {type(exc).__name__}" + (f": {first}" if first else ""))
    error.details = "".join(traceback.format_exception(exc))
    logging.getLogger("flowrun").debug("flowrun: unexpected exception in a step", exc_info=exc)
    return error


def _result(step: StepCommon, status: Literal["passed", "failed"], *, error: FlowrunError | None,
            received: Received | None, outputs: dict[str, Any], attempts: tuple[Attempt, ...],
            started: float | None, tls: TlsInfo | None, request: RequestInfo | None,
            assertions: tuple[AssertionOutcome, ...]) -> StepResult:
    if error is not None and error.step is None:
        error.step = step.id
    return StepResult(
        step_id=step.id, kind=step.kind, status=status,
        http_status=received.status if received is not None else None,
        headers=received.headers if received is not None else (),
        body=received.body if received is not None else None,
        soap_headers=received.soap_headers if received is not None else None,
        fault=received.fault if received is not None else None,
        items=received.items if received is not None else None,
        outputs=outputs, attempts=attempts,
        duration_ms=(time.perf_counter() - started) * 1000.0 if started is not None else 0.0,
        tls=tls, request=request, assertions=assertions, error=error,
    )
