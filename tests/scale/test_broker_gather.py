"""How the dispatcher reads the result store: in bounded MGETs, less often when many rows are pending.

Redis serves one command at a time and the workers' broker and ledger commands wait behind the
dispatcher's, so a look at the result store of a 100,000-row run must not be one MGET of 100,000
keys. Results are stored here with Celery's own backend, on a real redis-server, as a worker
stores them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrun._errors import FlowrunError, InternalError
from flowrun.celery import _dispatch
from flowrun.celery._app import create_app
from flowrun.celery._dispatch import Dispatch, Outcome, wait_after_look
from tests.scale.conftest import RedisServer


def mget_calls(redis_server: RedisServer) -> int:
    stats = redis_server.client.info("commandstats").get("cmdstat_mget", {})
    return int(stats.get("calls", 0))


def sent_dispatch(redis_server: RedisServer, tmp_path: Path, rows: int) -> Dispatch:
    app = create_app(redis_server.url)
    dispatch = Dispatch(app, redis_server.url)
    flow = tmp_path / "flow.json"
    for number in range(1, rows + 1):
        dispatch.send(number, {"flow": "flow.json"}, {"row": number}, file=flow, iteration=None, row=number)
    return dispatch


def finish(dispatch: Dispatch, number: int) -> None:
    """Row ``number``'s result as a worker leaves it: an error naming the row."""
    reply = json.dumps({"error": InternalError(f"the marker of row {number}").to_dict()})
    dispatch.app.backend.store_result(dispatch.task_ids[number], reply, "SUCCESS")


def marker(outcome: Outcome) -> str:
    assert isinstance(outcome, FlowrunError)
    return outcome.message


def test_a_look_reads_every_pending_row_in_bounded_mgets_and_keeps_each_result_with_its_row(
        redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_dispatch, "MGET_AT_MOST", 3)
    dispatch = sent_dispatch(redis_server, tmp_path, 10)
    try:
        for number in (2, 5, 9, 10):
            finish(dispatch, number)
        before = mget_calls(redis_server)
        pending = dispatch._collect()
        assert mget_calls(redis_server) - before == 4  # 10 pending rows, 3 keys a command
        assert pending == 6
        assert {number: marker(outcome) for number, outcome in dispatch.results.items()} == {
            n: f"data row {n}: the marker of row {n}" for n in (2, 5, 9, 10)}

        for number in (1, 3, 4, 6, 7, 8):
            finish(dispatch, number)
        before = mget_calls(redis_server)
        seen: list[int] = []
        gathered = dispatch.gather(lambda number, outcome: seen.append(number))
        assert mget_calls(redis_server) - before == 2  # only the 6 rows still pending are read
        assert seen == list(range(1, 11))
        assert [marker(gathered[n]) for n in range(1, 11)] == [
            f"data row {n}: the marker of row {n}" for n in range(1, 11)]
    finally:
        dispatch.app.close()


def test_the_wait_between_looks_grows_with_the_time_a_look_takes() -> None:
    assert wait_after_look(0.0) == _dispatch._POLL_S
    assert wait_after_look(0.001) == _dispatch._POLL_S
    # A look that held Redis for 0.3 s (100,000 keys) is followed by 2.7 s without one: 10% of the time.
    assert wait_after_look(0.3) == pytest.approx(2.7)
