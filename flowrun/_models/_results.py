"""Results are data: a StepResult holds its errors; ``raise_for_failure()`` gives exceptions."""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from flowrun._errors import FlowrunError
from flowrun._models._record import ValueRecord
from flowrun._models._redact import Secrets, redact_headers

StepStatus = Literal["passed", "failed", "skipped"]


def _headers_repr(headers: Sequence[tuple[str, str]]) -> str:
    return repr(tuple(tuple(pair) for pair in redact_headers(headers)))


def _body_repr(body: Any) -> str:
    # A body can echo anything, secrets included: reprs show its shape only.
    if body is None:
        return "None"
    size = f", {len(body)} items" if isinstance(body, dict | list) else (
        f", {len(body)} chars" if isinstance(body, str) else f", {len(body)} bytes" if isinstance(body, bytes) else "")
    return f"<{type(body).__name__}{size}>"


def _outputs_repr(outputs: Mapping[str, Any]) -> str:
    # Outputs come from the body: their names show, their values only as shapes.
    return "{" + ", ".join(f"{name!r}: {_body_repr(value)}" for name, value in outputs.items()) + "}"


@attrs.frozen(eq=False, repr=False)
class Attempt(ValueRecord):
    number: int
    started_at: float
    duration_ms: float
    status: int | None = None
    error: FlowrunError | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"number": self.number, "duration_ms": round(self.duration_ms, 3)}
        if self.status is not None:
            data["status"] = self.status
        if self.error is not None:
            data["error"] = {"code": self.error.code, "message": str(self.error)}
        return data


Subjects = tuple[str | None, str | None, tuple[str, ...]]


class TlsInfo(ValueRecord):
    """The TLS facts of the connection a response came on.

    The three certificate subjects are given, or read when first asked for (``subjects=``, a
    function returning them): writing a subject decodes the certificate with ``cryptography.x509``,
    whose import is ~30 ms of a cold start, and a run that shows no TLS detail (a passed iteration
    of many) never asks. Compared, hashed and pickled by its values.
    """

    __slots__ = ("_read", "_subjects", "cipher", "client_cert_sha256", "version")

    def __init__(self, version: str | None, cipher: str | None, client_cert_sha256: str | None = None,
                 client_cert_subject: str | None = None, server_cert_subject: str | None = None,
                 server_chain: Sequence[str] = (), *, subjects: Callable[[], Subjects] | None = None) -> None:
        self.version = version
        self.cipher = cipher
        self.client_cert_sha256 = client_cert_sha256
        self._subjects: Subjects = (client_cert_subject, server_cert_subject, tuple(server_chain))
        self._read = subjects

    def _resolved(self) -> Subjects:
        read = self._read
        if read is not None:
            self._subjects = read()
            self._read = None
        return self._subjects

    @property
    def client_cert_subject(self) -> str | None:
        return self._resolved()[0]

    @property
    def server_cert_subject(self) -> str | None:
        return self._resolved()[1]

    @property
    def server_chain(self) -> tuple[str, ...]:
        """Subjects of the chain the partner's certificate was verified with, leaf first (the leaf
        alone when the chain cannot be read)."""
        return self._resolved()[2]

    def _compared(self) -> tuple[Any, ...]:  # what ``ValueRecord`` compares and hashes
        return (self.version, self.cipher, self.client_cert_sha256, *self._resolved())

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "cipher": self.cipher, "client_cert_sha256": self.client_cert_sha256,
                "client_cert_subject": self.client_cert_subject, "server_cert_subject": self.server_cert_subject,
                "server_chain": list(self.server_chain)}

    def __reduce__(self) -> tuple[Any, ...]:
        return (TlsInfo, self._compared())

    def __repr__(self) -> str:
        names = ("version", "cipher", "client_cert_sha256", "client_cert_subject", "server_cert_subject",
                 "server_chain")
        return "TlsInfo(" + ", ".join(f"{name}={value!r}" for name, value in zip(names, self._compared(),
                                                                                 strict=True)) + ")"


@attrs.frozen(eq=False, repr=False)
class AssertionOutcome(ValueRecord):
    passed: bool
    expression: str
    op: str
    expected: Any
    actual: Any
    message: str
    step: str | None = None
    pointer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"that": self.expression, "op": self.op, "expected": self.expected, "actual": self.actual,
                "passed": self.passed, "message": self.message}


@attrs.frozen(eq=False, repr=False)
class RequestInfo(ValueRecord):
    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=_headers_repr)
    # What was sent, for -v only (shown capped, through redact_body); never in reports.
    body: bytes | None = attrs.field(default=None, repr=False, eq=False)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "headers": redact_headers(self.headers)}


@attrs.frozen(eq=False, repr=False)
class PageInfo(ValueRecord):
    """One page of a paginated step: where it came from, its answer and how long it took."""

    number: int
    url: str
    status: int | None
    duration_ms: float
    items: int
    attempts: int = 1
    idempotency_key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"number": self.number, "url": self.url, "status": self.status,
                                "duration_ms": round(self.duration_ms, 3), "items": self.items,
                                "attempts": self.attempts}
        if self.idempotency_key is not None:
            data["idempotency_key"] = self.idempotency_key
        return data


@attrs.frozen(kw_only=True, eq=False, repr=False)
class StepResult(ValueRecord):
    step_id: str
    kind: str
    status: StepStatus
    http_status: int | None = None
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), repr=_headers_repr)
    body: Any = attrs.field(default=None, repr=_body_repr)
    # SOAP steps: the reply's SOAP headers, and the fault when the partner answered with one.
    soap_headers: Mapping[str, Any] | None = attrs.field(default=None, repr=_body_repr)
    fault: Mapping[str, Any] | None = None
    outputs: Mapping[str, Any] = attrs.field(factory=dict, repr=_outputs_repr)
    attempts: tuple[Attempt, ...] = ()
    duration_ms: float = 0.0
    tls: TlsInfo | None = None
    request: RequestInfo | None = None
    assertions: tuple[AssertionOutcome, ...] = ()
    error: FlowrunError | None = None
    # The step went through a protocol profile with insecure_skip_verify: reports say so.
    insecure: bool = False
    # Paginated steps: every page's items, in order, and each page.
    items: list[Any] | None = attrs.field(default=None, repr=_body_repr)
    pages: tuple[PageInfo, ...] = ()
    # for_each steps: one result per item, in item order (``index``).
    iterations: tuple[StepResult, ...] = attrs.field(default=(), repr=False)
    # The Idempotency-Key sent (the same on every retry of the request).
    idempotency_key: str | None = None
    # What the executor sent as secrets: ``to_dict`` (every report) masks them.
    secrets: Secrets | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    @property
    def failed_items(self) -> int:
        """for_each steps: how many items failed (with ``on_error: continue`` the step may
        still have passed)."""
        return sum(1 for item in self.iterations if item.status == "failed")

    def __repr__(self) -> str:
        # The fields' own reprs (headers redacted by name, body and outputs as shapes), then the
        # values the executor sent masked wherever they still show (a response header echoing one).
        shown = ", ".join(f"{field.name}={field.repr(value) if callable(field.repr) else repr(value)}"
                          for field in attrs.fields(StepResult) if field.repr is not False
                          for value in (getattr(self, field.name),))
        text = f"StepResult({shown})"
        return self.secrets.mask(text) if self.secrets is not None else text

    def raise_for_failure(self) -> StepResult:
        if self.error is not None:
            raise self.error
        return self

    def context_entry(self) -> dict[str, Any]:
        """What later steps see as ``steps.<id>`` in data pills."""
        entry = {"status": self.http_status, "headers": dict(self.headers), "body": self.body,
                 "outputs": dict(self.outputs), "result": self.status}
        if self.soap_headers is not None:
            entry["soap_headers"] = self.soap_headers
        if self.fault is not None:
            entry["fault"] = self.fault
        if self.items is not None:
            entry["items"] = self.items
        if self.iterations:
            entry["iterations"] = [item.context_entry() for item in self.iterations]
            entry["failed_items"] = self.failed_items
        return entry

    def to_dict(self, *, include_body: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.step_id, "type": self.kind, "status": self.status, "http_status": self.http_status,
            "attempts": len(self.attempts), "duration_ms": round(self.duration_ms, 3),
            "outputs": dict(self.outputs),
            "error": {"code": self.error.code, "message": str(self.error)} if self.error else None,
        }
        if self.assertions:
            data["assertions"] = [a.to_dict() for a in self.assertions]
        if self.tls is not None:
            data["tls"] = self.tls.to_dict()
        if self.attempts:
            data["attempt_log"] = [a.to_dict() for a in self.attempts]
        if self.insecure:
            data["insecure"] = True
        if self.fault is not None:
            data["fault"] = dict(self.fault)
        if self.idempotency_key is not None:
            data["idempotency_key"] = self.idempotency_key
        if self.pages:
            data["pages"] = [page.to_dict() for page in self.pages]
        if self.iterations:
            data["failed_items"] = self.failed_items
            data["iterations"] = [{"index": index, **item.to_dict(include_body=include_body)}
                                  for index, item in enumerate(self.iterations)]
        if include_body:
            body = self.body
            if isinstance(body, bytes):
                body = {"base64": base64.b64encode(body).decode("ascii")}
            data["body"] = body
            if self.soap_headers:
                data["soap_headers"] = self.soap_headers
            data["headers"] = redact_headers(self.headers)
        return self.secrets.mask_data(data) if self.secrets is not None else data
