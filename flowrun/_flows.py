"""Running flows: inputs -> steps in order (``when``, ``on_error``) -> outputs -> ``FlowResult``.

``run_flow`` runs one flow once. ``FlowRunner`` keeps one executor per step kind (REST, SOAP)
for as many flows and iterations as it runs, so that connections stay alive, SSL contexts and
parsed WSDLs are built once. The SOAP executor (and zeep) is imported only when a SOAP step runs.

The context data pills read::

    {"inputs": {...}, "steps": {"<id>": StepResult.context_entry()}, "env": {declared variables}}

A ``uses`` step sees ``{"inputs": <its with values>, "steps": {}, "env": ...}``: a reusable
definition depends on what it is given, never on the flow around it.

Nothing a run did is lost when it is stopped: when a ``BaseException`` that is not an
``Exception`` (``KeyboardInterrupt``, a signal's exception, asyncio's ``CancelledError``) ends
``run``, the partial result (the completed steps, then the running step marked with a
``RunInterruptedError``) is appended to the runner's ``interrupted_results`` before the exception
goes on. ``FlowRunner.snapshot`` gives the same view from another thread while a flow runs.
Steps that go through a protocol profile with ``insecure_skip_verify`` are marked ``insecure``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from flowrun._errors import (
    AssertionFailedError,
    DataPillError,
    DefinitionError,
    FlowrunError,
    RunInterruptedError,
)
from flowrun._load._schema import did_you_mean
from flowrun._models._flow import Flow, FlowInput, FlowStep, matches_type
from flowrun._models._flow_results import FlowResult
from flowrun._models._numbers import WrittenNumber
from flowrun._models._observer import FlowObservation, RunObserver
from flowrun._models._record import ValueRecord
from flowrun._models._redact import Secrets
from flowrun._models._results import AssertionOutcome, StepResult
from flowrun._models._steps import Step

if TYPE_CHECKING:
    from flowrun._registry import Registry

__all__ = [
    "AsyncFlowRunner",
    "FlowRunner",
    "StepCallback",
    "environment_values",
    "parse_input_text",
    "prepare_inputs",
    "run_flow",
    "run_flow_async",
    "stop_reason",
]

StepCallback = Callable[[FlowStep, StepResult], None]
_FALSY: tuple[Any, ...] = (False, None, "", [], {})
_INTEGER_TEXT = re.compile(r"[-+]?\d+\Z")
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


# --- inputs and env -------------------------------------------------------------------------


def parse_input_text(text: str, type_name: str, name: str) -> Any:
    """Convert a value given as text (``-i name=value``, a CSV cell) to the declared type."""
    stripped = text.strip()
    if type_name == "string":
        return text
    if type_name == "integer":
        if _INTEGER_TEXT.match(stripped):
            return int(stripped)
        raise _bad_input(name, type_name, text)
    if type_name == "number":
        if _INTEGER_TEXT.match(stripped):
            return int(stripped)
        try:
            number = WrittenNumber(stripped)
        except ValueError:
            raise _bad_input(name, type_name, text) from None
        if not math.isfinite(number):
            raise _bad_input(name, type_name, text)
        return number  # a float that remembers its text: exact as an xs:decimal argument
    if type_name == "boolean":
        word = stripped.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        raise _bad_input(name, type_name, text, "write true or false")
    try:
        value = json.loads(stripped, parse_float=WrittenNumber)
    except ValueError:
        raise _bad_input(name, type_name, text, f"write the {type_name} as JSON") from None
    if not matches_type(value, type_name):
        raise _bad_input(name, type_name, text, f"write the {type_name} as JSON")
    return value


def _bad_input(name: str, type_name: str, given: Any, hint: str | None = None) -> DefinitionError:
    shown = given if isinstance(given, str) else json.dumps(given, default=str)
    article = "an" if type_name[0] in "aeiou" else "a"
    return DefinitionError(f"input '{name}' must be {article} {type_name}; got {shown!r}"[:300], hint=hint)


def prepare_inputs(declared: Mapping[str, FlowInput], given: Mapping[str, Any] | None, *,
                   owner: str = "") -> dict[str, Any]:
    """Check ``given`` against the declared inputs: unknown names and missing required inputs are
    errors, defaults fill the gaps, and text is converted to the declared type."""
    given = dict(given or {})
    for name in given:
        if name not in declared:
            known = sorted(declared)
            listing = ", ".join(known) if known else "none"
            raise DefinitionError(f"unknown input '{name}'{owner}{did_you_mean(name, known)}",
                                  hint=f"declared inputs: {listing}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
            if isinstance(value, str) and spec.type != "string":
                value = parse_input_text(value, spec.type, name)
            elif value is not None and not matches_type(value, spec.type):
                raise _bad_input(name, spec.type, value)
            elif value is None and spec.is_required:
                raise DefinitionError(f"input '{name}'{owner} is required and cannot be null",
                                      **spec.origin.location())
            values[name] = value
        elif spec.has_default:
            values[name] = copy.deepcopy(spec.default)
        elif spec.is_required:
            hint = f"add '{name}' to 'with'" if owner else f"pass it with -i {name}=VALUE"
            if spec.description:
                hint += f" ({spec.description})"
            raise DefinitionError(f"missing required input '{name}'{owner}", hint=hint, **spec.origin.location())
        else:
            values[name] = None
    return values


def environment_values(flow: Flow, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The declared environment variables, and only those (secrets of others stay invisible)."""
    source = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name, var in flow.declared_env.items():
        value = source.get(name)
        if value is None:
            value = var.default
        if value is None and var.required:
            raise DefinitionError(
                f"environment variable {name} is not set (the flow declares it in 'env')",
                hint=f"export {name}=... before running, or give it a default in the flow",
                **var.origin.location(),
            )
        values[name] = value
    return values


def is_truthy(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; everything else (0 too) is true."""
    return not any(value is falsy or (type(value) is type(falsy) and value == falsy) for falsy in _FALSY)


# --- one run of a flow, as a generator of step calls ----------------------------------------


@attrs.frozen(eq=False, repr=False)
class _Call(ValueRecord):
    entry: FlowStep
    step: Step
    context: Mapping[str, Any]
    # A for_each step: one call per item (its context holds ``item`` and ``index``).
    each: tuple[_Call, ...] | None = None


_Plan = Generator[_Call, StepResult, FlowResult]


class _FlowRun:
    """One run of a flow: ``steps()`` yields each step to execute and receives its result.

    What has been done so far stays readable (``partial``) while the run is under way and after
    it was stopped."""

    def __init__(self, flow: Flow, inputs: Mapping[str, Any], env_values: Mapping[str, Any],
                 iteration: int | None, on_step: StepCallback | None,
                 observation: FlowObservation | None = None) -> None:
        self.flow = flow
        self.observation = observation
        self.inputs = dict(inputs)
        self.env_values = dict(env_values)
        self.iteration = iteration
        self.on_step = on_step
        self.started = time.perf_counter()
        self.results: list[StepResult] = []
        self.current: FlowStep | None = None
        self.result: FlowResult | None = None

    def steps(self) -> _Plan:
        flow = self.flow
        steps_context: dict[str, Any] = {}
        context: dict[str, Any] = {"inputs": dict(self.inputs), "steps": steps_context, "env": dict(self.env_values)}
        results = self.results
        first_error: FlowrunError | None = None
        stopped = False
        for entry in flow.steps:
            self.current = entry
            result = _before(entry, context)
            if result is None:
                try:
                    call = _call(entry, context)
                except FlowrunError as error:
                    result = _failed(entry, error)
                else:
                    result = yield call
                    if result.status == "passed":
                        result = _whole_step_assertions(entry, result, context)
            if result.error is not None:
                _locate(result.error, entry)
            results.append(result)
            self.current = None
            steps_context[entry.id] = result.context_entry()
            if self.observation is not None:
                self.observation.step_finished(entry, result)
            if self.on_step is not None:
                self.on_step(entry, result)
            if result.status == "failed":
                first_error = first_error or result.error
                if entry.on_error == "stop":
                    stopped = True
                    break
        outputs: dict[str, Any] = {}
        if not stopped:
            for name, template in flow.outputs.items():
                try:
                    outputs[name] = _render(template, context, None, f"/outputs/{name}")
                except FlowrunError as error:
                    error.message = f"output '{name}': {error.message}"
                    if error.file is None and flow.origin.file is not None:
                        error.file = str(flow.origin.file)
                        error.line = _line_of(flow.origin.file, error.pointer or "")
                    first_error = first_error or error
        failed = first_error is not None
        self.result = FlowResult(
            name=flow.name, status="failed" if failed else "passed", outputs=outputs, steps=tuple(results),
            duration_ms=self._elapsed_ms(), iteration=self.iteration, inputs=dict(self.inputs),
            error=first_error, file=flow.origin.file,
        )
        return self.result

    def partial(self, reason: str) -> FlowResult:
        """The result when the run is stopped now by ``reason`` (e.g. "SIGTERM"): the steps that
        completed, then the running one (if any) failed with a ``RunInterruptedError``. A run that
        has already finished gives its result."""
        if self.result is not None:
            return self.result
        steps = list(self.results)  # a copy: another thread may still append
        current = self.current
        if current is not None and not (steps and steps[-1].step_id == current.id):
            error = RunInterruptedError(f"{reason} stopped the run while this step was running", step=current.id)
            steps.append(StepResult(step_id=current.id, kind=current.kind, status="failed", error=error))
        else:
            error = RunInterruptedError(f"{reason} stopped the run between two steps")
        return FlowResult(
            name=self.flow.name, status="failed", steps=tuple(steps), duration_ms=self._elapsed_ms(),
            iteration=self.iteration, inputs=dict(self.inputs), error=error, file=self.flow.origin.file,
        )

    def _elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def finished(self, result: FlowResult) -> FlowResult:
        if self.observation is not None:
            self.observation.flow_finished(result)
        return result


def stop_reason(stop: BaseException) -> str:
    """How an interruption is named in reports: the signal, or what stopped the run."""
    named = getattr(stop, "reason", None)
    if isinstance(named, str) and named:
        return named
    if isinstance(stop, KeyboardInterrupt):
        return "SIGINT"
    return type(stop).__name__


def _before(entry: FlowStep, context: Mapping[str, Any]) -> StepResult | None:
    """A skipped (or failed) result when ``when`` says not to run the step, else None."""
    if entry.when is None:
        return None
    try:
        value = _condition(entry.when, context, entry)
    except FlowrunError as error:
        return _failed(entry, error)
    if is_truthy(value):
        return None
    return StepResult(step_id=entry.id, kind=entry.kind, status="skipped")


def _condition(expression: str, context: Mapping[str, Any], entry: FlowStep) -> Any:
    from flowrun._eval._template import InvalidExpressionError, UnresolvedError, compile_expression

    text = expression.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        text = text[2:-2]
    pointer = f"{entry.origin.pointer}/when"
    try:
        # JMESPath semantics on purpose: a condition over a value that is absent is simply false.
        return compile_expression(text).search(context)
    except InvalidExpressionError as error:
        raise DataPillError(f"'when' is not a valid expression: {error.reason}", pointer=pointer,
                            file=entry.origin.file, step=entry.id,
                            hint="'when' is JMESPath over inputs, steps and env, e.g. steps.balance.status == `200`",
                            ) from None
    except UnresolvedError as error:
        raise DataPillError(f"'when' cannot be evaluated: {error.reason}", pointer=pointer,
                            file=entry.origin.file, step=entry.id) from None


def _call(entry: FlowStep, context: Mapping[str, Any]) -> _Call:
    if entry.step.for_each is None:
        return _one_call(entry, context)
    items = _for_each_items(entry, context)
    each = []
    for index, item in enumerate(items):
        # A definition reads its inputs only: its entry's "with" passes item and index on.
        each.append(_one_call(entry, {**context, "item": item, "index": index}))
    return _Call(entry, entry.step, context, tuple(each))


def _for_each_items(entry: FlowStep, context: Mapping[str, Any]) -> list[Any]:
    assert entry.step.for_each is not None
    pointer = f"{entry.origin.pointer}/for_each"
    items = _render(entry.step.for_each, context, entry, pointer)
    if not isinstance(items, list | tuple):
        from flowrun._eval._capture import shape_of

        raise DataPillError(f"for_each must give an array; '{entry.step.for_each}' gives {shape_of(items)}",
                            pointer=pointer, file=entry.origin.file, step=entry.id,
                            hint="write one pill that gives an array, e.g. {{ steps.list.outputs.ids }}")
    return list(items)


def _combined(entry: FlowStep, results: list[StepResult | None], started: float) -> StepResult:
    """One result for a for_each step: the iterations in item order (those never started are
    skipped), outputs as arrays in item order (null for a failed item).

    With ``on_error: stop`` the first failure (by index) is the step's error. With ``continue``
    failed items do not fail the step (``failed_items`` counts them, the reports list them, an
    assertion can bound them) unless every item failed: then nothing succeeded, and the step fails.
    """
    iterations = tuple(result if result is not None else StepResult(step_id=entry.id, kind=entry.kind,
                                                                    status="skipped")
                       for result in results)
    names = list(entry.step.response.outputs)
    outputs = {name: [item.outputs.get(name) for item in iterations] for name in names}
    failed = [index for index, item in enumerate(iterations) if item.status == "failed"]
    tolerated = entry.on_error == "continue" and len(failed) < len(iterations)
    first = iterations[failed[0]].error if failed and not tolerated else None
    error: FlowrunError | None = None
    if first is not None:
        error = copy.copy(first)
        # on_error: continue tolerates failed items, but not a step where nothing succeeded.
        every = f"every item failed ({len(failed)} of {len(iterations)}); " if entry.on_error == "continue" else ""
        error.message = f"{every}item {failed[0]} of {len(iterations)}: {error.message}"
        error.args = (error.message,)
    statuses = {item.http_status for item in iterations if item.status != "skipped"}
    return StepResult(
        step_id=entry.id, kind=entry.kind, status="failed" if failed and not tolerated else "passed",
        http_status=statuses.pop() if len(statuses) == 1 else None,
        body=[item.body for item in iterations], outputs=outputs,
        attempts=tuple(attempt for item in iterations for attempt in item.attempts),
        duration_ms=(time.perf_counter() - started) * 1000.0, error=error, iterations=iterations,
        insecure=any(item.insecure for item in iterations),
        secrets=next((item.secrets for item in iterations if item.secrets is not None), None),
    )


def _one_call(entry: FlowStep, context: Mapping[str, Any]) -> _Call:
    if entry.uses is None:
        return _Call(entry, entry.step, context)
    pointer = f"{entry.origin.pointer}/with"
    arguments = _render(entry.arguments, context, entry, pointer)
    try:
        inputs = prepare_inputs(entry.uses.inputs, arguments, owner=f" of step definition '{entry.uses.name}'")
    except DefinitionError as error:
        raise DefinitionError(error.message, hint=error.hint, file=entry.origin.file, pointer=pointer,
                              line=entry.origin.line, step=entry.id) from None
    return _Call(entry, entry.step, {"inputs": inputs, "steps": {}, "env": context["env"]})


def _render(value: Any, context: Mapping[str, Any], entry: FlowStep | None, pointer: str) -> Any:
    from flowrun._eval._template import render

    try:
        return render(value, context, step=entry.id if entry else None, pointer=pointer)
    except DataPillError as error:
        if entry is not None and error.file is None:
            error.file = str(entry.origin.file) if entry.origin.file is not None else None
        raise


def _whole_step_assertions(entry: FlowStep, result: StepResult, context: Mapping[str, Any]) -> StepResult:
    """The assertions checked once over a step's whole result, with the flow's context: the
    ``assert`` of a ``uses`` entry, and a for_each step's assertions that read ``failed_items``
    (the items' own assertions were checked per item)."""
    if entry.step.for_each is None and not entry.assertions:
        return result
    from flowrun._eval._assertions import evaluate_assertion, reads_failed_items

    checks: list[tuple[Mapping[str, Any], str, Path | None]] = []
    if entry.step.for_each is not None:
        origin = entry.step.origin
        checks.extend((spec, f"{origin.pointer}/assert/{index}", origin.file)
                      for index, spec in enumerate(entry.step.assertions) if reads_failed_items(spec))
    checks.extend((spec, f"{entry.origin.pointer}/assert/{index}", entry.origin.file)
                  for index, spec in enumerate(entry.assertions))
    if not checks:
        return result
    subject = {**context, **result.context_entry()}
    subject.pop("result", None)
    subject["duration_ms"] = result.duration_ms
    if entry.step.for_each is not None:
        subject["failed_items"] = result.failed_items
    outcomes = list(result.assertions)
    error: FlowrunError | None = None
    for spec, pointer, file in checks:
        try:
            outcome = evaluate_assertion(spec, subject, step=entry.id, pointer=pointer)
        except FlowrunError as problem:
            problem.file = problem.file or (str(file) if file else None)
            error = error or problem
            continue
        outcomes.append(AssertionOutcome(passed=outcome.passed, expression=outcome.expression, op=outcome.op,
                                         expected=outcome.expected, actual=outcome.actual,
                                         message=outcome.message))
        if not outcome.passed and error is None:
            error = AssertionFailedError(
                outcome.message, expression=outcome.expression, expected=outcome.expected, actual=outcome.actual,
                step=entry.id, pointer=pointer, file=file,
            )
    if error is None:
        return attrs.evolve(result, assertions=tuple(outcomes))
    if result.secrets is not None:
        # The step's executor masked its own failure; this one is new (its actual value too).
        result.secrets.mask_error(error)
    return attrs.evolve(result, assertions=tuple(outcomes), status="failed", error=error)


def _locate(error: FlowrunError, entry: FlowStep) -> None:
    """Place an error from an executor in the file: its pointer is relative to the step."""
    if error.step is None:
        error.step = entry.id
    if error.file is not None:
        return
    origin = entry.step.origin
    if origin.file is None:
        return
    error.file = str(origin.file)
    if error.pointer:
        error.pointer = origin.pointer + error.pointer
        error.line = _line_of(origin.file, error.pointer)
    elif error.line is None:
        error.line = origin.line


def _line_of(path: Path, pointer: str) -> int | None:
    from flowrun._load._json import read_json_file

    try:
        return read_json_file(path).line(pointer)
    except FlowrunError:
        return None


def _failed(entry: FlowStep, error: FlowrunError) -> StepResult:
    if error.step is None:
        error.step = entry.id
    return StepResult(step_id=entry.id, kind=entry.kind, status="failed", error=error)


# --- executors --------------------------------------------------------------------------------


class _Executor(Protocol):
    def run(self, step: Any, context: Mapping[str, Any]) -> StepResult: ...


class _AsyncExecutor(Protocol):
    async def run(self, step: Any, context: Mapping[str, Any]) -> StepResult: ...


def _flow_of(source: Flow | str | os.PathLike[str], steps_dirs: tuple[Path, ...]) -> Flow:
    if isinstance(source, Flow):
        return source
    from flowrun._load._flows import load_flow

    return load_flow(Path(source), steps_dirs=steps_dirs)


def _needs_records(flow: Flow) -> bool:
    for entry in flow.steps:
        connection = entry.step.connection
        if entry.step.alias is not None or (
                connection is not None and (connection.protocol_profile or connection.credential)):
            return True
    return False


def _alias_names(flow: Flow) -> set[str] | None:
    """The aliases the flow's steps name; None when an inline connection names records too."""
    names: set[str] = set()
    for entry in flow.steps:
        step = entry.step
        if step.alias is not None:
            names.add(step.alias)
        elif step.connection is not None and (step.connection.protocol_profile or step.connection.credential):
            return None
    return names


class _RunnerBase:
    def __init__(self, *, registry: Registry | None = None, aliases: str | os.PathLike[str] | None = None,
                 env: str | None = None, environ: Mapping[str, str] | None = None,
                 steps_dirs: tuple[Path, ...] | list[Path] = (), on_step: StepCallback | None = None,
                 connect_to: Mapping[tuple[str, int], tuple[str, int]] | None = None,
                 secrets: Secrets | None = None, observer: RunObserver | None = None) -> None:
        self._registry = registry
        # Follows each flow run (``flowrun.otel.FlowTracer``: spans per flow, step and attempt).
        self.observer = observer
        # What every executor of this runner sent as a secret: the reports of its runs mask it.
        self.secrets = secrets if secrets is not None else Secrets()
        self._aliases = aliases
        self.env = env
        self.environ = environ
        self.steps_dirs = tuple(Path(d) for d in steps_dirs)
        self.on_step = on_step
        self._connect_to = connect_to
        self._empty_registry: Registry | None = None
        # Partial results of runs that a KeyboardInterrupt, a signal or a cancellation stopped.
        self.interrupted_results: list[FlowResult] = []

    def registry_for(self, flow: Flow, *, only_this_flow: bool = False) -> Registry:
        """The registry the runner resolves ``flow``'s steps with. ``only_this_flow``: the runner
        will run no other flow, so only the aliases this flow names (and what they name) are read."""
        if self._registry is not None:  # every step asks: before the import statement below
            return self._registry
        from flowrun._registry import Registry

        if self._aliases is None and not _needs_records(flow):
            # Inline connections without named records: no alias directory is needed.
            if self._empty_registry is None:
                self._empty_registry = Registry.empty()
            return self._empty_registry
        self._registry = Registry.load(self._aliases, connect_to=self._connect_to,
                                       aliases=_alias_names(flow) if only_this_flow else None)
        return self._registry

    def load(self, source: Flow | str | os.PathLike[str]) -> Flow:
        return _flow_of(source, self.steps_dirs)

    def _start(self, flow: Flow, inputs: Mapping[str, Any] | None, iteration: int | None) -> _FlowRun:
        prepared = prepare_inputs(flow.inputs, inputs)
        env_values = environment_values(flow, self.environ)
        observation = self.observer.flow_started(flow, iteration, self.secrets) if self.observer else None
        return _FlowRun(flow, prepared, env_values, iteration, self.on_step, observation)

    def _mark_insecure(self, flow: Flow, step: Step, result: StepResult) -> StepResult:
        registry = self.registry_for(flow)
        if registry.insecure_profile(step.alias, step.connection, self.env) is None:
            return result
        return attrs.evolve(result, insecure=True)


class FlowRunner(_RunnerBase):
    """Runs flows synchronously; one executor per step kind for the runner's whole life.

    Use as a context manager (or call ``close()``) so that pooled connections are closed.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._executors: dict[tuple[int, str], Any] = {}
        self._executors_lock = threading.Lock()
        self._lock = threading.Lock()
        self._latest: _FlowRun | None = None

    def run(self, source: Flow | str | os.PathLike[str], inputs: Mapping[str, Any] | None = None, *,
            iteration: int | None = None) -> FlowResult:
        """Run a flow (a model or a file) once. Raises ``DefinitionError`` for bad inputs or a bad
        file; every failure after the first step started is data in the result."""
        flow = self.load(source)
        state = self._start(flow, inputs, iteration)
        with self._lock:
            self._latest = state
        plan = state.steps()
        try:
            call = next(plan)
            while True:
                call = plan.send(self._execute(flow, call))
        except StopIteration as done:
            result: FlowResult = done.value
            if result.error is not None:  # a flow-level failure (outputs) may quote a partner too
                self.secrets.mask_error(result.error)
            return state.finished(result)
        except BaseException as stop:
            partial = state.finished(state.partial(stop_reason(stop)))
            if not isinstance(stop, Exception):
                self.interrupted_results.append(partial)
            raise

    def snapshot(self, reason: str, *, of: Flow | None = None) -> FlowResult | None:
        """The flow this runner runs now, as if ``reason`` stopped it (completed steps, the running
        one marked interrupted), or the result of the flow it ran last; None before the first run,
        or when ``of`` is given and the latest run is of another flow. Safe to call from another
        thread; meant for a runner that one thread uses at a time."""
        with self._lock:
            state = self._latest
        if state is None or (of is not None and state.flow is not of):
            return None
        return state.partial(reason)

    def _execute(self, flow: Flow, call: _Call) -> StepResult:
        if call.each is not None:
            return self._each(flow, call, call.each)
        try:
            result = self._executor(flow, call.step.kind).run(call.step, call.context)
        except FlowrunError as error:
            return _failed(call.entry, self.secrets.mask_error(error))
        except Exception as exc:  # a custom executor's bug fails its step, not the run
            from flowrun._runner import internal_error

            return _failed(call.entry, self.secrets.mask_error(internal_error(exc)))
        return self._mark_insecure(flow, call.step, result)

    def _each(self, flow: Flow, call: _Call, calls: tuple[_Call, ...]) -> StepResult:
        """Every item of a for_each step, ``concurrency`` threads at a time; with ``on_error: stop``
        no item starts after one failed."""
        started = time.perf_counter()
        results: list[StepResult | None] = [None] * len(calls)
        stop_on_failure = call.entry.on_error == "stop"
        positions = iter(range(len(calls)))
        lock = threading.Lock()
        failed = threading.Event()

        def work() -> None:
            while not failed.is_set():
                with lock:
                    index = next(positions, None)
                if index is None:
                    return
                result = results[index] = self._execute(flow, calls[index])
                if stop_on_failure and result.status == "failed":
                    failed.set()

        workers = min(call.step.concurrency, len(calls))
        if workers <= 1:
            work()
        else:
            with contextlib.suppress(FlowrunError):  # each item reports it
                self._executor(flow, call.step.kind)  # the registry and executor, made once for all threads
            threads = [threading.Thread(target=work, name=f"flowrun-each-{call.entry.id}-{n}", daemon=True)
                       for n in range(workers)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return _combined(call.entry, results, started)

    def _executor(self, flow: Flow, kind: str) -> _Executor:
        registry = self.registry_for(flow)
        key = (id(registry), kind)
        executor: _Executor | None = self._executors.get(key)
        if executor is not None:
            return executor
        with self._executors_lock:  # a for_each's threads may all ask at once: one executor each kind
            if key in self._executors:
                made: _Executor = self._executors[key]
                return made
            if kind == "soap":
                from flowrun._soap import SoapExecutor

                executor = SoapExecutor(registry, env=self.env, secrets=self.secrets)
            else:
                from flowrun._rest import RestExecutor

                executor = RestExecutor(registry, env=self.env, secrets=self.secrets)
            self._executors[key] = executor
            return executor

    def close(self) -> None:
        executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            executor.close()

    def __enter__(self) -> FlowRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncFlowRunner(_RunnerBase):
    """The asyncio twin of ``FlowRunner`` (async executors, ``await runner.aclose()``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._executors: dict[tuple[int, str], Any] = {}

    async def run(self, source: Flow | str | os.PathLike[str], inputs: Mapping[str, Any] | None = None, *,
                  iteration: int | None = None) -> FlowResult:
        flow = self.load(source)
        state = self._start(flow, inputs, iteration)
        plan = state.steps()
        try:
            call = next(plan)
            while True:
                call = plan.send(await self._execute(flow, call))
        except StopIteration as done:
            result: FlowResult = done.value
            if result.error is not None:  # a flow-level failure (outputs) may quote a partner too
                self.secrets.mask_error(result.error)
            return state.finished(result)
        except BaseException as stop:
            partial = state.finished(state.partial(stop_reason(stop)))
            if not isinstance(stop, Exception):  # CancelledError, KeyboardInterrupt
                self.interrupted_results.append(partial)
            raise

    async def _execute(self, flow: Flow, call: _Call) -> StepResult:
        if call.each is not None:
            return await self._each(flow, call, call.each)
        try:
            result = await self._executor(flow, call.step.kind).run(call.step, call.context)
        except FlowrunError as error:
            return _failed(call.entry, self.secrets.mask_error(error))
        except Exception as exc:  # a custom executor's bug fails its step, not the run
            from flowrun._runner import internal_error

            return _failed(call.entry, self.secrets.mask_error(internal_error(exc)))
        return self._mark_insecure(flow, call.step, result)

    async def _each(self, flow: Flow, call: _Call, calls: tuple[_Call, ...]) -> StepResult:
        """Every item of a for_each step, ``concurrency`` tasks at a time (see ``FlowRunner._each``)."""
        import asyncio

        started = time.perf_counter()
        results: list[StepResult | None] = [None] * len(calls)
        stop_on_failure = call.entry.on_error == "stop"
        positions = iter(range(len(calls)))
        failed = False

        async def work() -> None:
            nonlocal failed
            while not failed:
                index = next(positions, None)
                if index is None:
                    return
                result = results[index] = await self._execute(flow, calls[index])
                if stop_on_failure and result.status == "failed":
                    failed = True

        await asyncio.gather(*(work() for _ in range(max(1, min(call.step.concurrency, len(calls))))))
        return _combined(call.entry, results, started)

    def _executor(self, flow: Flow, kind: str) -> _AsyncExecutor:
        registry = self.registry_for(flow)
        key = (id(registry), kind)
        executor = self._executors.get(key)
        if executor is None:
            if kind == "soap":
                from flowrun._soap import AsyncSoapExecutor

                executor = AsyncSoapExecutor(registry, env=self.env, secrets=self.secrets)
            else:
                from flowrun._rest import AsyncRestExecutor

                executor = AsyncRestExecutor(registry, env=self.env, secrets=self.secrets)
            self._executors[key] = executor
        return executor

    async def aclose(self) -> None:
        executors, self._executors = list(self._executors.values()), {}
        for executor in executors:
            await executor.aclose()

    async def __aenter__(self) -> AsyncFlowRunner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


# --- public one-shot API ------------------------------------------------------------------------


def run_flow(path_or_model: Flow | str | os.PathLike[str], inputs: Mapping[str, Any] | None = None, *,
             registry: Registry | None = None, env: str | None = None,
             aliases: str | os.PathLike[str] | None = None, steps_dirs: tuple[Path, ...] | list[Path] = (),
             environ: Mapping[str, str] | None = None) -> FlowResult:
    """Run a flow once and return its ``FlowResult`` (``result.raise_for_failure()`` for exceptions).

    ``registry`` (or the alias directory ``aliases``, default ``$FLOWRUN_ALIASES`` or ``./aliases``)
    resolves the steps' aliases; ``env`` picks the connection of per-environment aliases;
    ``environ`` replaces ``os.environ`` for the flow's declared ``env`` variables.
    """
    with FlowRunner(registry=registry, aliases=aliases, env=env, environ=environ, steps_dirs=steps_dirs) as runner:
        return runner.run(path_or_model, inputs)


async def run_flow_async(path_or_model: Flow | str | os.PathLike[str], inputs: Mapping[str, Any] | None = None,
                         *, registry: Registry | None = None, env: str | None = None,
                         aliases: str | os.PathLike[str] | None = None,
                         steps_dirs: tuple[Path, ...] | list[Path] = (),
                         environ: Mapping[str, str] | None = None) -> FlowResult:
    """The asyncio twin of ``run_flow``."""
    async with AsyncFlowRunner(registry=registry, aliases=aliases, env=env, environ=environ,
                               steps_dirs=steps_dirs) as runner:
        return await runner.run(path_or_model, inputs)
