"""Sending data rows to workers and gathering their results, in order, for the usual reports.

``Dispatch`` sends one task per data row (run id, task number, the bundle, the row's inputs as JSON
text), then gathers what the workers return as they finish. When the broker or its result store
stops answering, it stops with a ``BrokerError`` that carries the results gathered so far.
``cancel`` stops a run: no worker starts a task of it afterwards (see ``flowrun.celery._ledger``).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from flowrun._errors import BrokerError, FlowrunError, InternalError
from flowrun._models._flow_results import FlowResult
from flowrun._models._numbers import WrittenNumber, dumps
from flowrun.celery._app import RUN_ROW_TASK
from flowrun.celery._wire import error_from_dict, flow_result_from_dict, relocated

__all__ = ["Dispatch", "Outcome", "shown_url"]

_POLL_S = 0.05
_REVOKED_AT_MOST = 50_000
# Redis serves one command at a time, and the workers' broker and ledger commands wait behind the
# dispatcher's: one MGET of 100,000 result keys holds Redis for ~0.3 s. So a look at the result
# store names at most this many keys per command...
MGET_AT_MOST = 2_000
# ...and the looks take at most this share of the time: with many rows pending, the dispatcher
# looks less often instead of keeping Redis busy. Every look still reads every pending row, so a
# broker lost mid-run leaves no finished row ungathered that an earlier look could have seen.
_LOOK_SHARE = 0.1


def wait_after_look(look_s: float) -> float:
    """Seconds to wait after a look at the result store that took ``look_s``."""
    return max(_POLL_S, look_s * (1 / _LOOK_SHARE - 1))


def shown_url(url: str) -> str:
    """The broker URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _broker_errors(*more: type[BaseException]) -> tuple[type[BaseException], ...]:
    import kombu.exceptions
    import redis.exceptions

    return (redis.exceptions.RedisError, kombu.exceptions.OperationalError, ConnectionError, OSError, *more)


Outcome = FlowResult | FlowrunError


class Dispatch:
    """One run on the workers of ``app``: tasks numbered 1..N, gathered back in that order."""

    def __init__(self, app: Any, broker_url: str, *, env: str | None = None, bodies: bool = False) -> None:
        self.app = app
        self.broker_url = broker_url
        self.env = env
        self.bodies = bodies  # ask for response headers and bodies (the HTML report shows them)
        self.run_id = uuid.uuid4().hex
        self.task_ids: dict[int, str] = {}
        self.files: dict[int, Path] = {}
        self.rows: dict[int, int | None] = {}
        self.roots: dict[int, Path] = {}
        self.results: dict[int, Outcome] = {}

    def check(self) -> None:
        """Fail at once, before anything is sent, when the broker or its result store is not there."""
        try:
            self.app.backend.client.ping()
            with self.app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1)
        except _broker_errors() as exc:
            raise self._lost(exc, "connecting", started=False) from None

    def send(self, number: int, bundle: dict[str, Any], inputs: dict[str, Any], *, file: Path,
             iteration: int | None, row: int | None) -> None:
        """Task ``number``: one run of the bundled flow with ``inputs``; ``row`` names it in messages."""
        task_id = f"{self.run_id}-{number}"
        try:
            self.app.send_task(RUN_ROW_TASK, task_id=task_id, kwargs={
                "bundle": bundle, "inputs": dumps(inputs), "run_id": self.run_id, "row": number,
                "iteration": iteration, "env": self.env, **({"bodies": True} if self.bodies else {})})
        except _broker_errors(RuntimeError) as exc:  # RuntimeError: Celery's result store gave up
            raise self._lost(exc, "sending the data rows") from None
        self.task_ids[number] = task_id
        self.files[number] = file
        self.rows[number] = row
        # The folder, as this command names it, that the bundle's relative paths start from.
        self.roots[number] = file.parents[len(Path(str(bundle["flow"])).parts) - 1]

    def gather(self, on_result: Callable[[int, Outcome], None]) -> dict[int, Outcome]:
        """Every task's outcome (a result, or the definition error the worker met); ``on_result``
        sees each in task order, as soon as the ones before it are in."""
        shown = min(self.task_ids, default=1)
        try:
            while True:
                looked = time.monotonic()
                pending = self._collect()
                look_s = time.monotonic() - looked
                while shown in self.results:
                    on_result(shown, self.results[shown])
                    shown += 1
                if not pending:
                    break
                time.sleep(wait_after_look(look_s))
        except _broker_errors() as exc:
            raise self._lost(exc, "gathering results") from None
        return dict(sorted(self.results.items()))

    def _collect(self) -> int:
        """One look at the result store: the outcomes that came in since the last. Returns how many
        tasks are still pending."""
        backend = self.app.backend
        numbers = [number for number in self.task_ids if number not in self.results]
        if not numbers:
            return 0
        metas: list[Any] = []
        for start in range(0, len(numbers), MGET_AT_MOST):
            chunk = numbers[start:start + MGET_AT_MOST]
            metas += backend.client.mget([backend.get_key_for_task(self.task_ids[n]) for n in chunk])
        pending = 0
        for number, raw in zip(numbers, metas, strict=True):
            meta = backend.decode_result(raw) if raw is not None else None
            if meta is None or meta.get("status") not in ("SUCCESS", "FAILURE"):
                pending += 1
                continue
            outcome = self._outcome(number, meta)
            if outcome is not None:
                self.results[number] = outcome
        return pending

    def cancel(self) -> set[int]:
        """Cancel the tasks not gathered yet: no worker starts one of them from now on (the run is
        marked cancelled in Redis, and Celery revokes them). Returns the numbers of those a worker
        had already started: they run to their end on their worker, no request cut off. Outcomes
        that came in meanwhile are added to ``results``."""
        from flowrun.celery._ledger import cancel_run

        outstanding = [number for number in self.task_ids if number not in self.results]
        if not outstanding:
            return set()
        try:
            started = cancel_run(self.app.backend.client, self.run_id)
        except _broker_errors():
            return set()
        with contextlib.suppress(*_broker_errors()):
            # Workers keep at most 50,000 revoked ids; the mark above covers any number of rows.
            self.app.control.revoke([self.task_ids[number] for number in outstanding[:_REVOKED_AT_MOST]])
            self._collect()
        return {number for number in outstanding if number in started and number not in self.results}

    def _outcome(self, number: int, meta: dict[str, Any]) -> Outcome | None:
        """None for a row that a worker did not start because the run was cancelled."""
        if meta.get("status") != "SUCCESS" or not isinstance(meta.get("result"), str):
            return InternalError(f"task {number}: the worker failed it without a result",
                                 hint="see the worker's log", file=self.files[number])
        data = json.loads(meta["result"], parse_float=WrittenNumber)
        if data.get("cancelled"):
            return None
        if isinstance(data.get("bundle_dir"), str):
            data = relocated(data, data.pop("bundle_dir"), self.roots[number])
        if "error" in data:
            error = error_from_dict(data["error"])
            assert error is not None
            row = self.rows[number]
            if row is not None:
                error.message = f"data row {row}: {error.message}"
            return error
        return flow_result_from_dict(data["result"], file=self.files[number])

    def _lost(self, exc: BaseException, doing: str, *, started: bool = True) -> BrokerError:
        detail = str(exc)
        password = urlsplit(self.broker_url).password
        if password:
            detail = detail.replace(password, "***")
        if not started:
            return BrokerError(f"the broker {shown_url(self.broker_url)} cannot be reached: "
                               f"{type(exc).__name__}: {detail}")
        return BrokerError(
            f"the broker {shown_url(self.broker_url)} stopped answering while {doing} "
            f"({len(self.results)} of {len(self.task_ids)} data rows gathered): {type(exc).__name__}: {detail}",
            hint="start the broker again and check the partner for the rows not gathered before running them "
                 "again: a new run has a new run id, so it sends every row again")
