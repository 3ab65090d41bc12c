"""Completed-step records in Redis, so that a redelivered task does not send a step twice.

Keys are ``flowrun:step:<run id>:<row>:<step index>`` (``<step index>.<item index>`` for each item
of a ``for_each`` step), written by workers, read by the worker that
runs the task again after a redelivery:

* ``{"state": "done", "result": {...}}``: the step's masked result (``StepResult.to_dict`` with
  its body, credential headers as ``***``); a redelivered task takes it instead of sending the
  request again, so later steps see the same data pills.
* ``{"state": "in_flight"}``: set (``SET NX``) just before a non-idempotent request is sent. A
  task that finds it, and no ``done`` record, knows that a worker died (or still runs) while the
  request was on its way: the step fails with ``OutcomeUnknownError`` and is not sent again.

Idempotent steps (GET, HEAD, OPTIONS, PUT, DELETE, and any step with an idempotency key header)
get no ``in_flight`` record: they are sent again after a redelivery, with the same key.

A run that the dispatcher cancelled (Ctrl-C) has ``flowrun:cancelled:<run id>``; the rows workers
started are the set ``flowrun:started:<run id>``. A worker starts a row only when the run is not
cancelled (``start_row``, one atomic script), and the dispatcher cancels and reads the started rows
in one transaction (``cancel_run``): a row is either started before the cancellation, and runs to
its end, or never starts, whichever worker takes it and however late.
Records expire after ``ttl_s`` (a day by default).
"""

from __future__ import annotations

import json
from typing import Any

from flowrun._models._numbers import WrittenNumber, dumps
from flowrun._models._steps import RestStep, Step

__all__ = ["StepLedger", "cancel_run", "is_idempotent", "start_row"]

_NON_IDEMPOTENT_METHODS = frozenset({"POST", "PATCH"})
DEFAULT_TTL_S = 86_400


# KEYS: cancelled mark, started set; ARGV: row, ttl. 1 when the row may start, 0 when cancelled.
_START_ROW = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
"""


def start_row(client: Any, run_id: str, row: int, *, ttl_s: int = DEFAULT_TTL_S) -> bool:
    """Record that a worker starts ``row``; False when the run was cancelled (the row must not run)."""
    keys = [f"flowrun:cancelled:{run_id}", f"flowrun:started:{run_id}"]
    return bool(client.eval(_START_ROW, 2, *keys, row, ttl_s))


def cancel_run(client: Any, run_id: str, *, ttl_s: int = DEFAULT_TTL_S) -> set[int]:
    """Mark the run cancelled: no worker starts a row of it from now on. Returns the rows started
    before (they run to their end)."""
    with client.pipeline(transaction=True) as pipe:
        pipe.set(f"flowrun:cancelled:{run_id}", "1", ex=ttl_s)
        pipe.smembers(f"flowrun:started:{run_id}")
        _, started = pipe.execute()
    return {int(row) for row in started}


def is_idempotent(step: Step) -> bool:
    """May this step be sent twice? POST, PATCH and SOAP calls only with an idempotency key header."""
    if any("idempotency" in str(name).lower() for name, _ in step.headers):
        return True
    if isinstance(step, RestStep):
        return step.method not in _NON_IDEMPOTENT_METHODS
    return False  # SOAP: an HTTP POST whose operation may change state


class StepLedger:
    """The records of one data row of one run. ``client`` is a ``redis.Redis``."""

    def __init__(self, client: Any, run_id: str, row: int, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self.client = client
        self.run_id = run_id
        self.row = row
        self.ttl_s = ttl_s

    def key(self, index: int | str) -> str:
        return f"flowrun:step:{self.run_id}:{self.row}:{index}"

    def get(self, index: int | str) -> dict[str, Any] | None:
        raw = self.client.get(self.key(index))
        if raw is None:
            return None
        record = json.loads(raw, parse_float=WrittenNumber)  # exact decimals stay exact
        return record if isinstance(record, dict) else None

    def claim(self, index: int | str) -> bool:
        """Mark a non-idempotent request in flight; False when a record was already there."""
        return bool(self.client.set(self.key(index), json.dumps({"state": "in_flight"}), nx=True, ex=self.ttl_s))

    def done(self, index: int | str, result: dict[str, Any]) -> None:
        self.client.set(self.key(index), dumps({"state": "done", "result": result}), ex=self.ttl_s)
