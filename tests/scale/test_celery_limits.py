"""An alias's rate_limit and concurrency_limit across real `flowrun worker` processes, through a real
redis-server, as the partner sees them (arrival times, requests in flight at once).

* rows over two workers (four processes) against an alias limited to RATE a second: the partner's
  arrivals never hold more than RATE + burst in a second, and the whole is no faster than the
  limit allows (each process alone would pace at RATE: four times that without the shared bucket);
* a cap of N in flight over two workers (six processes): the partner never holds more than N, and
  reaches N;
* a worker killed with SIGKILL while it holds the only slot: the slot frees when its lease ends,
  and the run completes;
* in one process, the Redis limits themselves: a 429 with Retry-After slows the shared bucket, and
  a Redis that is gone fails the step unsent with ``limit.store_unavailable``;
* the limit keys are the documented ones (the secret scan of test_celery_runs covers them: its
  alias has both limits).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrun
from tests.lists._partner import ListPartner, windows
from tests.scale.conftest import (
    GUARD_S,
    RedisServer,
    Workers,
    start_cli,
)

RATE, BURST, ROWS = 10, 2, 40


@pytest.fixture
def list_partner() -> Iterator[ListPartner]:
    with ListPartner() as server:
        yield server


def limited_aliases(tmp_path: Path, url: str, **limits: Any) -> Path:
    directory = tmp_path / "aliases"
    directory.mkdir(exist_ok=True)
    records = [{"kind": "alias", "name": "limited", "connection": {"url": url, "timeout_s": 2}, **limits}]
    (directory / "limited.json").write_text(json.dumps(records))
    return directory


def ping_flow(tmp_path: Path) -> Path:
    flow = {"name": "ping", "inputs": {"account": {"type": "string"}, "amount": {"type": "number"}},
            "steps": [{"id": "ping", "type": "rest", "alias": "limited", "method": "GET", "path": "/ping",
                       "query": {"account": "{{ inputs.account }}"}, "response": {"expect_status": [200]}}]}
    path = tmp_path / "ping.json"
    path.write_text(json.dumps(flow))
    return path


def rows_file(path: Path, count: int) -> Path:
    path.write_text("account,amount\n" + "".join(f"{1000 + n},1\n" for n in range(count)))
    return path


def dispatch(tmp_path: Path, redis_url: str, rows: int) -> subprocess.Popen[str]:
    return start_cli("run", str(ping_flow(tmp_path)), "--data", str(rows_file(tmp_path / "rows.csv", rows)),
                     "--broker", redis_url, "--json")


def finished(dispatcher: subprocess.Popen[str], workers: Workers) -> dict[str, Any]:
    try:
        out, err = dispatcher.communicate(timeout=GUARD_S)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 0, err + out[-2000:] + workers.log(0)
    report: dict[str, Any] = json.loads(out)
    return report


def limit_keys(redis_server: RedisServer) -> list[str]:
    return sorted(key.decode() for key in redis_server.client.scan_iter("flowrun:limit:*"))


def test_a_rate_limit_holds_across_two_workers(tmp_path: Path, list_partner: ListPartner,
                                               redis_server: RedisServer, workers: Workers) -> None:
    aliases = limited_aliases(tmp_path, list_partner.url, rate_limit={"per_second": RATE, "burst": BURST})
    workers.start(redis_server.url, aliases, concurrency=2)
    workers.start(redis_server.url, aliases, concurrency=2)
    report = finished(dispatch(tmp_path, redis_server.url, ROWS), workers)

    assert [it["status"] for it in report["iterations"]] == ["passed"] * ROWS
    arrivals = sorted(seen.arrived for seen in list_partner.requests_to("/ping"))
    assert len(arrivals) == ROWS
    assert max(windows(arrivals)) <= RATE + BURST
    # After the burst, one request every 1/RATE s: the combined rate is at most 10% above the limit ...
    span = arrivals[-1] - arrivals[0]
    assert (ROWS - BURST) / span <= 1.1 * RATE
    # ... and (a generous sanity bound, the machine is shared) not far below it.
    assert (ROWS - BURST) / span >= RATE / 5
    assert limit_keys(redis_server) == ["flowrun:limit:default:limited::rate"]
    bucket = redis_server.client.hgetall("flowrun:limit:default:limited::rate")
    assert sorted(bucket) == [b"epoch", b"stamp", b"tokens"]


def test_a_concurrency_cap_holds_across_two_workers(tmp_path: Path, redis_server: RedisServer,
                                                    workers: Workers) -> None:
    cap = 2
    with ListPartner(delay_s=0.2) as partner:
        aliases = limited_aliases(tmp_path, partner.url, concurrency_limit={"max_in_flight": cap})
        workers.start(redis_server.url, aliases, concurrency=3)
        workers.start(redis_server.url, aliases, concurrency=3)
        report = finished(dispatch(tmp_path, redis_server.url, 24), workers)
        assert [it["status"] for it in report["iterations"]] == ["passed"] * 24
        assert len(partner.requests_to("/ping")) == 24
        assert partner.max_in_flight == cap
    # Every slot was given back: nothing is left to expire.
    assert redis_server.client.zcard("flowrun:limit:default:limited::slots") == 0


def test_a_slot_held_by_a_killed_worker_frees_when_its_lease_ends(tmp_path: Path, redis_server: RedisServer,
                                                                  workers: Workers) -> None:
    slots_key = "flowrun:limit:default:limited::slots"
    # Each request takes a second at the partner: the kill lands while the victim holds its slot.
    with ListPartner(delay_s=1.0) as partner:
        # timeout_s 2: an attempt ends within 4 x 2 s, so a slot's lease is 8 + 5 s.
        aliases = limited_aliases(tmp_path, partner.url, concurrency_limit={"max_in_flight": 1, "wait_s": 60})
        victim = workers.start(redis_server.url, aliases, visibility_timeout=3)
        dispatcher = dispatch(tmp_path, redis_server.url, 3)
        deadline = time.monotonic() + GUARD_S
        while partner.in_flight == 0:
            assert time.monotonic() < deadline and dispatcher.poll() is None, "no request reached the partner"
            time.sleep(0.01)
        workers.kill(victim)
        killed_at = time.monotonic()
        held = redis_server.client.zrange(slots_key, 0, -1, withscores=True)
        assert len(held) == 1, held  # the dead worker's slot, still leased
        (holder, lease_end), = held
        seconds, micros = redis_server.client.time()
        left = lease_end - (seconds + micros / 1e6)
        assert left > 0
        lease_ends_at = killed_at + left
        workers.start(redis_server.url, aliases, visibility_timeout=3)
        report = finished(dispatcher, workers)
        assert [it["status"] for it in report["iterations"]] == ["passed"] * 3
        # The row the victim ran was delivered again (a GET: sent again), never beside the dead lease.
        assert partner.max_in_flight == 1
        arrivals = sorted(seen.arrived for seen in partner.requests_to("/ping"))
        assert len(arrivals) >= 3
        # Nothing went to the partner while the dead worker's lease ran (a rule, not a speed:
        # the 0.2 s allow for reading Redis's clock and the partner's one after the other).
        after_kill = [arrived for arrived in arrivals if arrived > killed_at]
        assert after_kill and min(after_kill) >= lease_ends_at - 0.2
    assert holder not in redis_server.client.zrange(slots_key, 0, -1)


# --- the Redis limits in one process --------------------------------------------------------------


@pytest.fixture
def shared_limits(redis_server: RedisServer) -> Iterator[Any]:
    from flowrun._transport._rate import install_shared
    from flowrun.celery._limits import RedisLimits

    limits = RedisLimits(redis_server.client, "inproc")
    install_shared(limits)
    try:
        yield limits
    finally:
        install_shared(None)


def test_a_429_with_retry_after_slows_the_shared_bucket(tmp_path: Path, list_partner: ListPartner,
                                                         redis_server: RedisServer, shared_limits: Any) -> None:
    aliases = limited_aliases(tmp_path, list_partner.url, rate_limit={"per_second": 2, "burst": 1},
                              retry_policy={"strategy": "retry_after", "count": 1, "max_interval_s": 5})
    flow = {"name": "throttled", "steps": [
        {"id": "call", "type": "rest", "alias": "limited", "path": "/throttle", "query": {"n": "{{ item }}"},
         "for_each": "{{ `[1, 2, 3]` }}", "concurrency": 3}]}
    path = tmp_path / "throttled.json"
    path.write_text(json.dumps(flow))

    result = flowrun.run_flow(path, aliases=aliases)

    assert result.status == "passed", result.error
    arrivals = sorted(seen.arrived for seen in list_partner.requests_to("/throttle"))
    assert len(arrivals) == 4
    assert arrivals[1] - arrivals[0] >= 0.9  # Retry-After: 1 held the alias back, not 1/2 s
    assert redis_server.client.hget("flowrun:limit:inproc:limited::rate", "epoch") == b"1"


def test_without_its_redis_a_limited_step_fails_unsent(tmp_path: Path, list_partner: ListPartner,
                                                       redis_server: RedisServer, shared_limits: Any) -> None:
    aliases = limited_aliases(tmp_path, list_partner.url, concurrency_limit={"max_in_flight": 2})
    redis_server.kill()
    result = flowrun.run_flow(ping_flow(tmp_path), aliases=aliases, inputs={"account": "1", "amount": 1})
    assert result.status == "failed"
    error = result.steps[0].error
    assert isinstance(error, flowrun.LimitStoreError)
    assert error.code == "limit.store_unavailable"
    assert ("alias 'limited': the Redis that holds the workers' shared limits failed while taking a "
            "concurrency_limit slot (ConnectionError): the request was not sent") in str(error)
    assert list_partner.requests_to("/ping") == []


def test_a_bad_limits_namespace_is_a_usage_error(tmp_path: Path) -> None:
    from tests.scale.conftest import run_cli

    (tmp_path / "aliases").mkdir()
    done = run_cli("worker", "--broker", "redis://127.0.0.1:1/0", "--aliases", str(tmp_path / "aliases"),
                   "--limits-namespace", "team:a")
    assert done.returncode == 2
    assert "--limits-namespace must be letters, digits, '_', '.' or '-'; got 'team:a'" in done.stderr
