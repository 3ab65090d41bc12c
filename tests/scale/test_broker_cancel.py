"""Ctrl-C (SIGINT) and SIGTERM on `flowrun run --broker` / `flowrun test --broker`, real workers.

The dispatcher cancels the run: rows no worker has started never start (whichever worker takes
them, however late), rows a worker is running run to their end (no request is cut off), the
partial report lists what completed, what was still running and what never started, and the
command exits 130 (SIGINT) or 143 (SIGTERM), like a local run.
"""

from __future__ import annotations

import json
import signal
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from flowrun.testing import PartnerServer
from tests.scale.conftest import GUARD_S, RedisServer, Workers, run_cli, start_cli, write_rows
from tests.scale.test_celery_runs import posts_to, write_flow

SLOW_FLOW: dict[str, Any] = {
    "name": "slow_payment",
    "inputs": {"account": {"type": "string"}, "amount": {"type": "number", "default": 1}},
    "steps": [
        {"id": "pay", "type": "rest", "alias": "partner", "method": "POST", "path": "/slow",
         "query": {"ms": "400", "account": "{{ inputs.account }}"}, "body": {"json": {"amount": "{{ inputs.amount }}"}},
         "response": {"expect_status": [200]}},
    ],
}


def slow_posts(partner: PartnerServer, account: str) -> int:
    return sum(1 for r in partner.requests
               if r.path == "/secure/slow" and r.method == "POST" and dict(r.query).get("account") == account)


def queue_drained(redis_server: RedisServer) -> bool:
    client = redis_server.client
    return client.llen("flowrun") == 0 and client.hlen("unacked") == 0


def wait_for(predicate: Any) -> bool:
    import time

    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sigint_cancels_the_rows_not_started_and_writes_a_partial_report(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    flow = write_flow(tmp_path, SLOW_FLOW)
    total = 30
    rows = write_rows(tmp_path / "rows.csv", total)
    workers.start(redis_server.url, aliases)
    workers.start(redis_server.url, aliases)
    dispatcher = start_cli("run", str(flow), "--data", str(rows), "--broker", redis_server.url, "--json",
                           "--report", str(tmp_path / "partial.xml"))
    try:
        assert partner.wait_until(lambda p: posts_to(p, "/secure/slow") >= 4, timeout=GUARD_S)
        dispatcher.send_signal(signal.SIGINT)
        out, err = dispatcher.communicate(timeout=GUARD_S)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 130, err
    assert "Traceback" not in err
    report = json.loads(out)
    iterations = report["iterations"]
    completed = [it for it in iterations if it["status"] == "passed"]
    running = [it for it in iterations if it["status"] == "failed"]
    assert completed and len(iterations) >= 4  # the four rows whose requests the partner had seen
    assert all(it["error"]["code"] == "interrupted" and "runs to its end on the worker" in it["error"]["message"]
               for it in running), running
    assert len(running) <= 2  # two workers, one row each at a time
    not_run = total - len(iterations)
    assert not_run > 0
    assert report["status"] == "failed"
    assert report["interrupted"] == {"signal": "SIGINT", "not_run": not_run}
    assert (f"interrupted by SIGINT: {len(completed)} iterations completed, {len(running)} interrupted, "
            f"{not_run} not run") in err
    junit = ET.parse(tmp_path / "partial.xml").getroot()
    assert junit.get("skipped") == "1" and f"{not_run} iterations not run" in ET.tostring(junit, encoding="unicode")

    # A row after the cancelled ones in the same queue: once it ran, every cancelled row was taken.
    sentinel = run_cli("run", str(flow), "-i", "account=sentinel", "--broker", redis_server.url, secrets=False)
    assert sentinel.returncode == 0, sentinel.stderr
    started = {str(1000 + it["iteration"] - 1) for it in iterations}
    # The rows that were running finish on their workers; each started row sends its one request.
    assert partner.wait_until(lambda p: posts_to(p, "/secure/slow") == len(started) + 1, timeout=GUARD_S), \
        posts_to(partner, "/secure/slow")
    assert wait_for(lambda: queue_drained(redis_server)), "the workers' queue still holds tasks of the run"
    for number in range(total):
        account = str(1000 + number)
        assert slow_posts(partner, account) == (1 if account in started else 0), account
    assert posts_to(partner, "/secure/slow") == len(started) + 1


def test_a_worker_that_starts_after_the_cancellation_does_not_run_its_rows(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    """No worker hears the revocation (the only one was killed): the rows still queued, and the one
    redelivered from the dead worker, meet the cancellation mark in Redis when a new worker takes them."""
    flow = write_flow(tmp_path, SLOW_FLOW)
    total = 12
    rows = write_rows(tmp_path / "rows.csv", total)
    victim = workers.start(redis_server.url, aliases, visibility_timeout=2)
    dispatcher = start_cli("run", str(flow), "--data", str(rows), "--broker", redis_server.url, "--json")
    try:
        assert partner.wait_until(lambda p: posts_to(p, "/secure/slow") >= 2, timeout=GUARD_S)
        workers.kill(victim)
        dispatcher.send_signal(signal.SIGINT)
        out, err = dispatcher.communicate(timeout=GUARD_S)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 130, err
    report = json.loads(out)
    started = {str(1000 + it["iteration"] - 1) for it in report["iterations"]}
    assert report["interrupted"]["not_run"] == total - len(started) > 0
    sent_before = posts_to(partner, "/secure/slow")

    workers.start(redis_server.url, aliases, visibility_timeout=2)
    sentinel = run_cli("run", str(flow), "-i", "account=sentinel", "--broker", redis_server.url, secrets=False)
    assert sentinel.returncode == 0, sentinel.stderr
    # The dead worker's row comes back once its visibility timeout is over; it was started, so a
    # worker takes it (its POST, in flight when its worker died, is not sent again) and acknowledges it.
    assert wait_for(lambda: queue_drained(redis_server)), "the workers' queue still holds tasks of the run"
    assert posts_to(partner, "/secure/slow") == sent_before + 1  # the sentinel's, nothing of the run
    for number in range(total):
        account = str(1000 + number)
        assert slow_posts(partner, account) == (1 if account in started else 0), account


def test_sigterm_on_a_test_run_exits_143_with_the_flows_not_run_listed(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    write_flow(suite, SLOW_FLOW)
    rows = write_rows(tmp_path / "rows.csv", 20)
    workers.start(redis_server.url, aliases)
    dispatcher = start_cli("test", str(suite), "--data", str(rows), "--broker", redis_server.url,
                           "--json-report", str(tmp_path / "partial.json"))
    try:
        assert partner.wait_until(lambda p: posts_to(p, "/secure/slow") >= 2, timeout=GUARD_S)
        dispatcher.send_signal(signal.SIGTERM)
        _, err = dispatcher.communicate(timeout=GUARD_S)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 143, err
    report = json.loads((tmp_path / "partial.json").read_text())
    flows = report["flows"]
    assert report["interrupted"]["signal"] == "SIGTERM"
    not_run = report["interrupted"]["not_run_flows"]
    assert len(flows) + len(not_run) == 20 and not_run
    assert not_run[-1] == f"{suite / 'slow_payment.json'} row 20"
    assert "interrupted by SIGTERM" in err
    assert wait_for(lambda: queue_drained(redis_server))
    assert posts_to(partner, "/secure/slow") == len(flows)
