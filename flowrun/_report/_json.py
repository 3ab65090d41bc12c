"""JSON reports: one run (``flowrun run --json``) and many (``flowrun test --json-report``).

The shape of one run is ``FlowResult.to_dict()``: ``{"status", "outputs", "steps": [{"id",
"status", "http_status", "attempts", "duration_ms", "error": {"code", "message"}}]}`` plus more keys.
A run that a signal stopped keeps that shape (status "failed", the running step's error code
"interrupted") and adds ``"interrupted": {"signal", "not_run"[, "not_run_flows"]}``. A step or flow
that went through a profile with ``insecure_skip_verify`` carries ``"insecure": true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun._models._flow_results import FlowResult, summarize
from flowrun._models._numbers import dumps
from flowrun._models._redact import Secrets, json_visible
from flowrun._report._files import write_report
from flowrun._version import __version__

if TYPE_CHECKING:
    from flowrun._report._interruption import Interruption


def run_report(results: Sequence[FlowResult], *, many: bool | None = None,
               interrupted: Interruption | None = None) -> dict[str, Any]:
    """One result as is; several (iterations, data rows) as ``{"status", "iterations": [...]}``.
    ``many`` forces the second shape (a run of N iterations stopped after its first)."""
    many = len(results) != 1 if many is None else many
    data: dict[str, Any]
    if not many and results:
        data = results[0].to_dict()
    else:
        data = {
            "status": "passed" if all(r.ok for r in results) else "failed",
            "iterations": [r.to_dict() for r in results],
            "summary": summarize(list(results)),
        }
    if interrupted is not None:
        data["status"] = "failed"
        data["interrupted"] = interrupted.to_dict()
    return data


def test_report(results: Sequence[FlowResult], *, duration_ms: float | None = None,
                errors: Sequence[dict[str, Any]] = (), interrupted: Interruption | None = None) -> dict[str, Any]:
    """Many flows: ``{"status", "summary", "flows": [...], "errors": [...]}`` (errors: flows that
    could not be loaded, as ``{"file", "code", "message", ...}``)."""
    data: dict[str, Any] = {
        "flowrun": __version__,
        "status": "passed" if all(r.ok for r in results) and not errors and interrupted is None else "failed",
        "summary": summarize(list(results)),
        "flows": [r.to_dict() for r in results],
        "errors": list(errors),
    }
    if duration_ms is not None:
        data["duration_ms"] = round(duration_ms, 3)
    if interrupted is not None:
        data["interrupted"] = interrupted.to_dict()
    return data


def write_json(path: Path, data: Any, *, option: str = "--json-report", secrets: Secrets | None = None) -> None:
    """Write the report 0600, masked with ``secrets`` (see ``flowrun._report._files``)."""
    if secrets is not None:
        data = secrets.mask_data(data)
    text = json_visible(dumps(data, indent=2, ensure_ascii=False)) + "\n"
    write_report(path, text, option=option, secrets=secrets)
