"""Step records: a REST call or a SOAP call, and how its response is handled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import attrs

from flowrun._errors import SchemaError
from flowrun._models._aliases import Connection, RetryPolicy
from flowrun._models._origin import NOWHERE, Origin
from flowrun._models._record import ValueRecord

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
METHODS: tuple[str, ...] = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
IDEMPOTENT_METHODS = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024


def pairs(value: Mapping[str, Any] | Sequence[Sequence[Any]] | None) -> tuple[tuple[str, Any], ...]:
    """Query parameters and headers keep order and may repeat: an object or a list of pairs."""
    if value is None:
        return ()
    if isinstance(value, Mapping):
        result: list[tuple[str, Any]] = []
        for key, item in value.items():
            # {"tag": ["a", "b"]} repeats the key, as users of query strings expect.
            if isinstance(item, list):
                result.extend((str(key), v) for v in item)
            else:
                result.append((str(key), item))
        return tuple(result)
    return tuple((str(pair[0]), pair[1]) for pair in value)


@attrs.frozen(eq=False, repr=False)
class FilePart(ValueRecord):
    path: Path
    filename: str | None = None
    content_type: str | None = None


@attrs.frozen(eq=False, repr=False)
class Body(ValueRecord):
    """A request body. ``kind`` says how ``value`` is sent:

    json (any JSON value), text (str, with ``content_type``), form (pairs, urlencoded),
    multipart (``value`` = field pairs, ``files`` = name -> FilePart), file (``value`` = Path, streamed).
    """

    kind: Literal["json", "text", "form", "multipart", "file"]
    value: Any = None
    content_type: str | None = None
    files: Mapping[str, FilePart] = attrs.field(factory=dict)


@attrs.frozen(eq=False, repr=False)
class ResponseSpec(ValueRecord):
    """How a response is handled. ``outputs`` maps names to JMESPath over ``{status, headers, body}``
    (SOAP: also ``soap_headers`` and ``fault``); an expression starting with ``xpath:`` is XPath over an
    XML body. An output that matches nothing fails the step unless its name is in ``optional_outputs``.
    ``expect_fault``: a SOAP step passes on a fault, and fails without one."""

    expect_status: tuple[int, ...] | None = None
    parse: Literal["auto", "json", "xml", "text", "binary"] = "auto"
    outputs: Mapping[str, str] = attrs.field(factory=dict)
    optional_outputs: frozenset[str] = frozenset()
    expect_fault: bool = False

    def __attrs_post_init__(self) -> None:
        # The flow file's form {"expr": "...", "optional": true} is accepted here too.
        if any(isinstance(spec, Mapping) for spec in self.outputs.values()):
            given: Mapping[str, Any] = self.outputs
            optional = {name for name, spec in given.items() if isinstance(spec, Mapping) and spec.get("optional")}
            outputs = {name: spec["expr"] if isinstance(spec, Mapping) else spec for name, spec in given.items()}
            object.__setattr__(self, "outputs", outputs)
            object.__setattr__(self, "optional_outputs", self.optional_outputs | optional)
    namespaces: Mapping[str, str] = attrs.field(factory=dict)
    save_to: Path | None = None
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def status_expected(self, status: int) -> bool:
        if self.expect_status is None:
            return 200 <= status < 300
        return status in self.expect_status


PaginationStyle = Literal["link", "next_url", "cursor", "page", "offset"]
PAGINATION_STYLES: tuple[str, ...] = ("link", "next_url", "cursor", "page", "offset")
DEFAULT_IDEMPOTENCY_HEADER = "Idempotency-Key"


@attrs.frozen(kw_only=True, eq=False, repr=False)
class Paginate(ValueRecord):
    """How a REST step fetches every page of a list.

    ``style``: ``link`` (the ``Link`` header's ``rel="next"``), ``next_url`` (``next`` gives the
    next page's URL from the page), ``cursor`` (``next`` gives the value for the query parameter
    ``param``), ``page`` (``param`` counts pages from ``start``, default 1), ``offset`` (``param``
    counts items from ``start``, default 0). ``items`` is JMESPath over ``{status, headers, body}``
    of each page and gives the page's items. ``page`` and ``offset`` stop at a page with no items
    (or fewer than ``limit`` when ``limit_param`` sends a page size); the others when there is no
    next page. More than ``max_pages`` pages fail the step.
    """

    style: PaginationStyle
    items: str
    next: str | None = None
    param: str | None = None
    start: int | None = None
    limit_param: str | None = None
    limit: int | None = None
    max_pages: int = 100
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.style not in PAGINATION_STYLES:
            raise SchemaError(f"paginate.style must be one of {', '.join(PAGINATION_STYLES)}; got {self.style!r}",
                              **self.origin.location())
        if self.style in ("next_url", "cursor") and not self.next:
            raise SchemaError(f"paginate style {self.style} needs 'next' (JMESPath to the next "
                              f"{'URL' if self.style == 'next_url' else 'cursor'})", **self.origin.location())
        if self.style in ("cursor", "page", "offset") and not self.param:
            raise SchemaError(f"paginate style {self.style} needs 'param' (the query parameter it sets)",
                              **self.origin.location())
        if (self.limit_param is None) != (self.limit is None):
            raise SchemaError("paginate: give limit_param and limit together", **self.origin.location())
        if self.max_pages < 1:
            raise SchemaError("paginate.max_pages must be at least 1", **self.origin.location())

    @property
    def first_number(self) -> int:
        if self.start is not None:
            return self.start
        return 0 if self.style == "offset" else 1


def _concurrency(value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 64:
        raise SchemaError(f"concurrency must be a whole number from 1 to 64; got {value!r}")
    return value


@attrs.frozen(kw_only=True, eq=False, repr=False)
class StepCommon(ValueRecord):
    kind: ClassVar[str] = "step"  # a class constant, not a field (``StepResult.kind``)
    id: str
    alias: str | None = None
    connection: Connection | None = None
    timeout_s: float | None = None
    retry_policy: RetryPolicy | None = None
    response: ResponseSpec = ResponseSpec()
    assertions: tuple[Mapping[str, Any], ...] = ()
    when: str | None = None
    on_error: Literal["stop", "continue"] = "stop"
    description: str = ""
    # Run the step once per item of this array (a pill over the flow context), ``concurrency`` at a time.
    for_each: str | None = None
    concurrency: int = attrs.field(default=1, converter=_concurrency)
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.alias is None) == (self.connection is None):
            raise SchemaError(f"step '{self.id}' needs exactly one of alias or connection", step=self.id,
                              **self.origin.location())


def _http_method(method: str) -> HttpMethod:
    """Methods in any case, like HTTP clients take them: ``"post"`` is ``"POST"``."""
    return cast(HttpMethod, method.upper())


@attrs.frozen(kw_only=True, eq=False, repr=False)
class RestStep(StepCommon):
    id: str = "rest"
    method: HttpMethod = attrs.field(default="GET", converter=_http_method)
    path: str = ""
    query: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=pairs)
    headers: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=pairs)
    body: Body | None = None
    follow_redirects: bool = False
    max_redirects: int = 5
    paginate: Paginate | None = None
    # True: an ``Idempotency-Key`` header with a fresh UUID per request, the same on its retries;
    # a string names the header instead.
    idempotency_key: bool | str = False

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.response.save_to is not None and self.paginate is not None:
            raise SchemaError("save_to and paginate do not go together: pages are read to collect their items",
                              step=self.id, **self.origin.location())
        if self.response.expect_fault:
            raise SchemaError("expect_fault applies to SOAP steps; a REST step expects a "
                              "status with expect_status", step=self.id, **self.origin.location())

    kind: ClassVar[str] = "rest"

    @property
    def idempotency_header(self) -> str | None:
        if self.idempotency_key is True:
            return DEFAULT_IDEMPOTENCY_HEADER
        return self.idempotency_key or None


@attrs.frozen(kw_only=True, eq=False, repr=False)
class SoapStep(StepCommon):
    """A SOAP call: an ``operation`` of a ``wsdl`` with ``args``, or a raw ``envelope``."""

    id: str = "soap"
    wsdl: str | None = None
    service: str | None = None
    port: str | None = None
    operation: str | None = None
    args: Mapping[str, Any] = attrs.field(factory=dict)
    soap_headers: Mapping[str, Any] = attrs.field(factory=dict)
    headers: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=pairs)
    soap_action: str | None = None
    # None: the WSDL's only binding, 1.1 when it has both; a version named here must exist in it.
    soap_version: Literal["1.1", "1.2"] | None = None
    # False: a reply with elements the WSDL does not declare, or out of order, is accepted.
    strict: bool = True
    envelope: str | None = None
    path: str | None = None
    # Where relative WSDL paths are resolved: the directory of the file that named the step.
    base_dir: Path | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.envelope is None and (self.wsdl is None or self.operation is None):
            raise SchemaError(f"SOAP step '{self.id}' needs wsdl and operation, or a raw envelope",
                              step=self.id, **self.origin.location())
        if self.envelope is not None and self.operation is not None:
            raise SchemaError(f"SOAP step '{self.id}' has both an envelope and an operation: choose one",
                              step=self.id, **self.origin.location())

    kind: ClassVar[str] = "soap"


Step = RestStep | SoapStep
