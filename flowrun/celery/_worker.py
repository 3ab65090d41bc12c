"""What a worker process does with a task: run one data row of a bundled flow, step records in Redis.

Each worker process keeps one ``WorkerState``: the registry loaded once from its own alias
directory (secrets from its environment, files or a ``SecretSource``), one flow runner per
``env`` (its executors keep SSL contexts, pooled connections and parsed WSDLs for the life of the
process), the flows built from bundles, and a Redis client for the completed-step records and
the aliases' shared rate and concurrency limits (``flowrun.celery._limits``), which the state
installs before it builds its first runner.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun._errors import FlowrunError, OutcomeUnknownError
from flowrun._flows import FlowRunner, _Call, _failed
from flowrun._models._flow import Flow
from flowrun._models._numbers import WrittenNumber, dumps
from flowrun._models._results import StepResult
from flowrun._models._secret import SecretSource
from flowrun.celery._bundle import BundleCache
from flowrun.celery._ledger import DEFAULT_TTL_S, StepLedger, is_idempotent, start_row
from flowrun.celery._wire import relocated, step_result_from_dict

if TYPE_CHECKING:
    from flowrun._registry import Registry

__all__ = ["RecordingRunner", "WorkerSettings", "WorkerState", "run_row"]


class RecordingRunner(FlowRunner):
    """A flow runner that consults and writes the completed-step records of ``ledger``.
    ``bundle_dir`` is where this worker wrote the row's bundle: a record names the paths of the
    worker that wrote it, and a replay on another worker names its own instead."""

    ledger: StepLedger | None = None
    bundle_dir: str | None = None

    def _execute(self, flow: Flow, call: _Call) -> StepResult:
        ledger = self.ledger
        if ledger is None or call.each is not None:  # a for_each step: each item has its own record
            return super()._execute(flow, call)
        index: int | str = next(i for i, entry in enumerate(flow.steps) if entry is call.entry)
        if "index" in call.context:  # an item of a for_each step
            index = f"{index}.{call.context['index']}"
        replayed = self._replay(ledger, index)
        if replayed is not None:
            return replayed
        if not is_idempotent(call.step) and not ledger.claim(index):
            replayed = self._replay(ledger, index)  # finished between our two reads
            if replayed is not None:
                return replayed
            method = getattr(call.step, "method", "SOAP")
            return _failed(call.entry, OutcomeUnknownError(
                f"a worker stopped while this {method} request was in flight (run {ledger.run_id}, data row "
                f"{ledger.row}, step {_shown(index)}): it may have reached the partner, so it is not sent again"))
        result = super()._execute(flow, call)
        record = result.to_dict(include_body=True)
        extra: dict[str, Any] = {}
        if result.error is not None:  # in full (message and location apart), to be rebuilt as it was
            extra["error"] = result.error.to_dict()
        if result.items is not None:  # a paginated step: later steps read its items
            extra["items"] = result.items
        record.update(result.secrets.mask_data(extra) if result.secrets else extra)
        if self.bundle_dir is not None:
            record["bundle_dir"] = self.bundle_dir
        ledger.done(index, record)
        return result

    def _replay(self, ledger: StepLedger, index: int | str) -> StepResult | None:
        record = ledger.get(index)
        if record is None or record.get("state") != "done":
            return None
        data = record["result"]
        written_in = data.pop("bundle_dir", None)
        if isinstance(written_in, str) and self.bundle_dir is not None and written_in != self.bundle_dir:
            data = relocated(data, written_in, Path(self.bundle_dir))
        return step_result_from_dict(data)


def _shown(index: int | str) -> str:
    """"2", or "2 item 5": steps numbered from 1, items by their index as the flow's own messages say."""
    step, _, item = str(index).partition(".")
    return f"{int(step) + 1}" + (f" item {item}" if item else "")


class WorkerSettings:
    """What a worker reads from its own machine, never from a task."""

    def __init__(self, *, aliases: str | os.PathLike[str] | None = None,
                 secrets: SecretSource | Mapping[str, SecretSource] | None = None,
                 record_ttl_s: int = DEFAULT_TTL_S, limits_namespace: str = "default") -> None:
        self.aliases = Path(aliases) if aliases is not None else None
        self.secrets = secrets
        self.record_ttl_s = record_ttl_s
        self.limits_namespace = limits_namespace


class WorkerState:
    """Per worker process (built lazily in the process after the pool forked it)."""

    def __init__(self, settings: WorkerSettings, redis_url: str) -> None:
        self.settings = settings
        self.redis_url = redis_url
        self.bundles = BundleCache()
        self._registry: Registry | None = None
        self._runners: dict[str | None, RecordingRunner] = {}
        self._redis: Any = None

    def registry(self) -> Registry:
        if self._registry is None:
            from flowrun._registry import Registry

            self._registry = Registry.load(self.settings.aliases, secrets=self.settings.secrets)
        return self._registry

    def runner(self, env: str | None) -> RecordingRunner:
        runner = self._runners.get(env)
        if runner is None:
            if not self._runners:
                from flowrun._transport._rate import install_shared
                from flowrun.celery._limits import RedisLimits

                install_shared(RedisLimits(self.redis(), self.settings.limits_namespace))
            runner = self._runners[env] = RecordingRunner(registry=self.registry(), env=env)
        return runner

    def redis(self) -> Any:
        if self._redis is None:
            import redis

            self._redis = redis.Redis.from_url(self.redis_url)
        return self._redis

    def close(self) -> None:
        from flowrun._transport._rate import install_shared

        for runner in self._runners.values():
            runner.close()
        if self._runners:
            install_shared(None)
        self._runners.clear()
        self.bundles.clear()


_STATES: dict[tuple[int, int], WorkerState] = {}
_STATES_LOCK = threading.Lock()


def state_for(key: int, settings: WorkerSettings, redis_url: str) -> WorkerState:
    """The state of this process for one app (``key``); a forked child builds its own."""
    with _STATES_LOCK:
        state = _STATES.get((os.getpid(), key))
        if state is None:
            state = _STATES[(os.getpid(), key)] = WorkerState(settings, redis_url)
        return state


def run_row(state: WorkerState, *, bundle: dict[str, Any], inputs: str, run_id: str, row: int,
            iteration: int | None, env: str | None, bodies: bool = False) -> str:
    """The task body (``inputs`` as JSON text, so exact numbers stay exact). Returns JSON text, masked:
    ``{"result": FlowResult.to_dict()}``, or ``{"error": FlowrunError.to_dict()}`` for a definition
    problem (the flow, its inputs, the worker's aliases), or ``{"cancelled": true}`` for a row of a
    cancelled run (it does not start), with ``"bundle_dir"``: where this worker
    wrote the bundle, which the dispatcher replaces with its own paths in what it reports."""
    runner: RecordingRunner | None = None
    reply: dict[str, Any] = {}
    try:
        flow = state.bundles.flow(bundle)
        if flow.origin.file is not None:
            reply["bundle_dir"] = str(Path(flow.origin.file).parents[len(Path(bundle["flow"]).parts) - 1])
        if not start_row(state.redis(), run_id, row, ttl_s=state.settings.record_ttl_s):
            return dumps({"cancelled": True})  # the dispatcher cancelled the run: nothing is sent
        runner = state.runner(env)
        runner.ledger = StepLedger(state.redis(), run_id, row, ttl_s=state.settings.record_ttl_s)
        runner.bundle_dir = reply.get("bundle_dir")
        try:
            result = runner.run(flow, json.loads(inputs, parse_float=WrittenNumber), iteration=iteration)
        finally:
            runner.ledger = runner.bundle_dir = None
        # Response headers and bodies (masked) only for a dispatcher that draws them (--html).
        data = result.to_dict(include_body=bodies)
        # What reports show beyond to_dict(): the inputs (JUnit properties), each request line and
        # item error.
        data["inputs"] = dict(result.inputs)
        for step, shown in zip(result.steps, data["steps"], strict=True):
            if step.request is not None:
                shown["request"] = step.request.to_dict()
            # A for_each item's error in full (message and location apart), as a step's is.
            for item, item_shown in zip(step.iterations, shown.get("iterations", ()), strict=True):
                if item.error is not None:
                    item_shown["error"] = item.error.to_dict()
        return dumps({"result": runner.secrets.mask_data(data), **reply})
    except FlowrunError as error:
        data = error.to_dict()
    except Exception as exc:  # a defect: flowrun's own error, never a traceback stored in the backend
        from flowrun._runner import internal_error

        data = internal_error(exc).to_dict()
    return dumps({"error": runner.secrets.mask_data(data) if runner is not None else data, **reply})
