"""The result of one run of a flow: data, like StepResult. ``raise_for_failure()`` gives exceptions."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from flowrun._errors import FlowrunError
from flowrun._models._record import ValueRecord
from flowrun._models._results import AssertionOutcome, StepResult

FlowStatus = Literal["passed", "failed"]


@attrs.frozen(kw_only=True, eq=False, repr=False)
class FlowResult(ValueRecord):
    """``steps`` holds one result per flow step that was reached (skipped steps included);
    ``error`` is the first failure: a failed step's error, or a flow-level one (outputs)."""

    name: str
    status: FlowStatus
    outputs: Mapping[str, Any] = attrs.field(factory=dict)
    steps: tuple[StepResult, ...] = ()
    duration_ms: float = 0.0
    iteration: int | None = None
    inputs: Mapping[str, Any] = attrs.field(factory=dict)
    error: FlowrunError | None = None
    file: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    def step(self, step_id: str) -> StepResult:
        for result in self.steps:
            if result.step_id == step_id:
                return result
        raise KeyError(step_id)

    @property
    def insecure(self) -> bool:
        """True when a step went through a protocol profile that does not verify the partner."""
        return any(result.insecure for result in self.steps)

    @property
    def failed_steps(self) -> tuple[StepResult, ...]:
        return tuple(result for result in self.steps if result.status == "failed")

    @property
    def assertions(self) -> tuple[tuple[str, AssertionOutcome], ...]:
        """Every assertion outcome as ``(step id, outcome)``, in run order."""
        return tuple((result.step_id, outcome) for result in self.steps for outcome in result.assertions)

    def raise_for_failure(self) -> FlowResult:
        if self.error is not None:
            raise self.error
        return self

    def to_dict(self, *, include_body: bool = False) -> dict[str, Any]:
        """The ``--json`` shape: ``{"status", "outputs", "steps": [{"id", "status", "http_status",
        "attempts", "duration_ms", "error": {"code", "message"}}]}`` plus the keys below them."""
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "outputs": dict(self.outputs),
            "steps": [_step_dict(result, include_body) for result in self.steps],
            "duration_ms": round(self.duration_ms, 3),
            "error": _error_dict(self.error),
        }
        if self.insecure:
            data["insecure"] = True
        if self.iteration is not None:
            data["iteration"] = self.iteration
        if self.file is not None:
            data["file"] = str(self.file)
        secrets = next((step.secrets for step in self.steps if step.secrets is not None), None)
        return secrets.mask_data(data) if secrets is not None else data


def _error_dict(error: FlowrunError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    data = error.to_dict()
    # The documented keys first; the others (hint, file, pointer, step, fault) after them.
    return {"code": data.pop("code"), "message": data.pop("message"), **data}


def _step_dict(result: StepResult, include_body: bool) -> dict[str, Any]:
    data = result.to_dict(include_body=include_body)
    data["error"] = _error_dict(result.error)
    return data


def summarize(results: Mapping[str, FlowResult] | list[FlowResult]) -> dict[str, int]:
    """Counts over many flow results: flows, steps and assertions passed / failed / skipped."""
    items = list(results.values()) if isinstance(results, Mapping) else list(results)
    counts = {"flows": len(items), "flows_passed": 0, "flows_failed": 0, "steps": 0, "steps_passed": 0,
              "steps_failed": 0, "steps_skipped": 0, "assertions": 0, "assertions_failed": 0}
    for flow in items:
        counts["flows_passed" if flow.ok else "flows_failed"] += 1
        for step in flow.steps:
            counts["steps"] += 1
            counts[f"steps_{step.status}"] += 1
            counts["assertions"] += len(step.assertions)
            counts["assertions_failed"] += sum(1 for outcome in step.assertions if not outcome.passed)
    return counts
