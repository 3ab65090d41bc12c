"""Step records: a REST call or a SOAP call, and how its response is handled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import attrs

from flowrun._errors import SchemaError
from flowrun._models._aliases import Connection, RetryPolicy
from flowrun._models._origin import NOWHERE, Origin

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


@attrs.frozen
class FilePart:
    path: Path
    filename: str | None = None
    content_type: str | None = None


@attrs.frozen
class Body:
    """A request body. ``kind`` says how ``value`` is sent:

    json (any JSON value), text (str, with ``content_type``), form (pairs, urlencoded),
    multipart (``value`` = field pairs, ``files`` = name -> FilePart), file (``value`` = Path, streamed).
    """

    kind: Literal["json", "text", "form", "multipart", "file"]
    value: Any = None
    content_type: str | None = None
    files: Mapping[str, FilePart] = attrs.field(factory=dict)


@attrs.frozen
class ResponseSpec:
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


@attrs.frozen(kw_only=True)
class StepCommon:
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
    origin: Origin = attrs.field(default=NOWHERE, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.alias is None) == (self.connection is None):
            raise SchemaError(f"step '{self.id}' needs exactly one of alias or connection", step=self.id,
                              **self.origin.location())


def _http_method(method: str) -> HttpMethod:
    """Methods in any case, like HTTP clients take them: ``"post"`` is ``"POST"``."""
    return cast(HttpMethod, method.upper())


@attrs.frozen(kw_only=True)
class RestStep(StepCommon):
    id: str = "rest"
    method: HttpMethod = attrs.field(default="GET", converter=_http_method)
    path: str = ""
    query: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=pairs)
    headers: tuple[tuple[str, Any], ...] = attrs.field(default=(), converter=pairs)
    body: Body | None = None
    follow_redirects: bool = False
    max_redirects: int = 5

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.response.expect_fault:
            raise SchemaError("expect_fault applies to SOAP steps; a REST step expects a "
                              "status with expect_status", step=self.id, **self.origin.location())

    @property
    def kind(self) -> str:
        return "rest"


@attrs.frozen(kw_only=True)
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

    @property
    def kind(self) -> str:
        return "soap"


Step = RestStep | SoapStep
