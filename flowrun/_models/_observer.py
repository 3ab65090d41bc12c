"""What a tracer hooks into while flows run (``FlowRunner(observer=...)``): a flow started, each
step finished, the flow finished.

The runner calls these on the thread (or task) that runs the flow, in run order; ``flow_finished``
comes exactly once per ``flow_started``, with the partial result when the run was stopped. The
core knows nothing more about tracing: ``flowrun.otel`` implements it with OpenTelemetry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flowrun._models._flow import Flow, FlowStep
    from flowrun._models._flow_results import FlowResult
    from flowrun._models._redact import Secrets
    from flowrun._models._results import StepResult


class FlowObservation(Protocol):
    """One run of one flow, as an observer follows it."""

    def step_finished(self, entry: FlowStep, result: StepResult) -> None: ...

    def flow_finished(self, result: FlowResult) -> None: ...


class RunObserver(Protocol):
    """Told when each flow run starts; ``secrets`` are what the runner's executors send as secrets
    (whatever the observer records must be masked with them)."""

    def flow_started(self, flow: Flow, iteration: int | None, secrets: Secrets) -> FlowObservation: ...
