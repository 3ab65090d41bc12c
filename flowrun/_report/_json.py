"""JSON reports: one run (``flowrun run --json``) and many (``flowrun test --json-report``).

The shape of one run is ``FlowResult.to_dict()``: ``{"status", "outputs", "steps": [{"id",
"status", "http_status", "attempts", "duration_ms", "error": {"code", "message"}}]}`` plus more keys.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowrun._models._flow_results import FlowResult, summarize
from flowrun._version import __version__


def run_report(results: Sequence[FlowResult]) -> dict[str, Any]:
    """One result as is; several (iterations, data rows) as ``{"status", "iterations": [...]}``."""
    if len(results) == 1:
        return results[0].to_dict()
    return {
        "status": "passed" if all(r.ok for r in results) else "failed",
        "iterations": [r.to_dict() for r in results],
        "summary": summarize(list(results)),
    }


def test_report(results: Sequence[FlowResult], *, duration_ms: float | None = None,
                errors: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Many flows: ``{"status", "summary", "flows": [...], "errors": [...]}`` (errors: flows that
    could not be loaded, as ``{"file", "code", "message", ...}``)."""
    data: dict[str, Any] = {
        "flowrun": __version__,
        "status": "passed" if all(r.ok for r in results) and not errors else "failed",
        "summary": summarize(list(results)),
        "flows": [r.to_dict() for r in results],
        "errors": list(errors),
    }
    if duration_ms is not None:
        data["duration_ms"] = round(duration_ms, 3)
    return data


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
