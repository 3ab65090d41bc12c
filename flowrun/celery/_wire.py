"""Results back from workers: the masked ``FlowResult.to_dict()`` form, turned into records again.

The dispatcher builds its text, JSON and JUnit reports from ``FlowResult`` objects, like a local
run; these functions rebuild them from what a worker sent. What the dictionary form does not hold
(the request sent, for ``-v``) is absent; a paginated step's ``items`` come back when the
dictionary holds them (the completed-step records do). Every error keeps its class, code,
message, hint and place.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from pathlib import Path
from typing import Any

from flowrun import _errors
from flowrun._errors import FlowrunError, InternalError, SoapFaultError, UnexpectedStatusError
from flowrun._models._flow_results import FlowResult
from flowrun._models._results import AssertionOutcome, Attempt, PageInfo, RequestInfo, StepResult, TlsInfo

__all__ = ["error_from_dict", "flow_result_from_dict", "relocated", "step_result_from_dict"]


def _error_classes() -> dict[str, type[FlowrunError]]:
    classes: dict[str, type[FlowrunError]] = {}
    for name in _errors.__all__:
        cls = getattr(_errors, name)
        classes.setdefault(cls.code, cls)
    return classes


_BY_CODE = _error_classes()


def error_from_dict(data: dict[str, Any] | None) -> FlowrunError | None:
    """The error of ``FlowrunError.to_dict()``; an unknown code (a newer worker) is an ``InternalError``
    that keeps the worker's message."""
    if not data:
        return None
    cls = _BY_CODE.get(str(data.get("code")), InternalError)
    shown = str(data.get("message", ""))
    file, pointer, line, step = data.get("file"), data.get("pointer"), data.get("line"), data.get("step")
    error = cls(shown, hint=data.get("hint", ""), file=file, pointer=pointer, line=line, step=step)
    # to_dict() wrote "location: message"; keep the message alone so str() does not repeat the location.
    prefix = f"{error.location}: " if error.location else ""
    error.message = shown[len(prefix):] if prefix and shown.startswith(prefix) else shown
    error.args = (error.message,)
    if isinstance(error, UnexpectedStatusError):
        error.status = data.get("http_status")
        error.content_type = data.get("content_type")
        error.body_excerpt = data.get("body_excerpt")
        error.headers = ()
    if isinstance(error, SoapFaultError):
        fault = data.get("fault") or {}
        error.faultcode, error.faultstring = fault.get("code"), fault.get("string")
        error.actor, error.detail = fault.get("actor"), fault.get("detail")
    return error


def step_result_from_dict(data: dict[str, Any]) -> StepResult:
    attempts = tuple(
        Attempt(number=int(item["number"]), started_at=0.0, duration_ms=float(item.get("duration_ms", 0.0)),
                status=item.get("status"), error=error_from_dict(item.get("error")))
        for item in data.get("attempt_log", ()))
    assertions = tuple(
        AssertionOutcome(passed=bool(item["passed"]), expression=item["that"], op=item["op"],
                         expected=item.get("expected"), actual=item.get("actual"), message=item.get("message", ""),
                         step=data["id"])
        for item in data.get("assertions", ()))
    tls = data.get("tls")
    request = data.get("request")
    body = data.get("body")
    if isinstance(body, dict) and set(body) == {"base64"}:
        with contextlib.suppress(binascii.Error, ValueError, TypeError):
            body = base64.b64decode(body["base64"], validate=True)
    return StepResult(
        step_id=data["id"], kind=data.get("type", "rest"), status=data["status"], http_status=data.get("http_status"),
        headers=tuple((str(k), str(v)) for k, v in data.get("headers", ())),
        body=body, soap_headers=data.get("soap_headers"), fault=data.get("fault"),
        outputs=dict(data.get("outputs") or {}), attempts=attempts,
        duration_ms=float(data.get("duration_ms", 0.0)), tls=TlsInfo(**tls) if tls else None,
        assertions=assertions, error=error_from_dict(data.get("error")), insecure=bool(data.get("insecure")),
        request=RequestInfo(method=request["method"], url=request["url"],
                            headers=tuple((str(k), str(v)) for k, v in request.get("headers", ())))
        if request else None,
        items=list(data["items"]) if isinstance(data.get("items"), list) else None,
        pages=tuple(PageInfo(number=int(page["number"]), url=page["url"], status=page.get("status"),
                             duration_ms=float(page.get("duration_ms", 0.0)), items=int(page.get("items", 0)),
                             attempts=int(page.get("attempts", 1)), idempotency_key=page.get("idempotency_key"))
                    for page in data.get("pages", ())),
        iterations=tuple(step_result_from_dict(item) for item in data.get("iterations", ())),
        idempotency_key=data.get("idempotency_key"),
    )


def flow_result_from_dict(data: dict[str, Any], *, file: Path | None = None) -> FlowResult:
    """``file`` replaces the worker's path of the flow (a temporary copy) with the dispatcher's."""
    steps = tuple(step_result_from_dict(step) for step in data.get("steps", ()))
    # The flow's error is its failed step's own error object, as in a local result: reports tell a
    # step's failure from a flow-level one (outputs) by identity, and must not count it twice.
    error = next((step.error for step, shown in zip(steps, data.get("steps", ()), strict=True)
                  if step.error is not None and shown.get("error") == data.get("error")), None)
    return FlowResult(
        name=data["name"], status=data["status"], outputs=dict(data.get("outputs") or {}), steps=steps,
        duration_ms=float(data.get("duration_ms", 0.0)), iteration=data.get("iteration"),
        inputs=dict(data.get("inputs") or {}), error=error or error_from_dict(data.get("error")), file=file,
    )


def relocated(value: Any, bundle_dir: str, root: Path) -> Any:
    """``value`` with the paths under ``bundle_dir`` (a worker's copy of the bundle, in error
    locations and messages) named under ``root`` instead: the dispatcher's own paths, as a local
    run names them, or another worker's copy of the same bundle."""
    prefix = "" if root == Path() else f"{root}/"
    if isinstance(value, str):
        return str(root) if value == bundle_dir else value.replace(f"{bundle_dir}/", prefix)
    if isinstance(value, dict):
        return {key: relocated(item, bundle_dir, root) for key, item in value.items()}
    if isinstance(value, list):
        return [relocated(item, bundle_dir, root) for item in value]
    return value
