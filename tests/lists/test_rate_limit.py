"""Rate limits per alias, checked by the partner's arrival times.

These check pacing behaviour, not speed: no 1-second window holds more than rate + burst (+10%)
requests, and the whole cannot be faster than the limit allows.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrun
from flowrun import FlowRunner
from tests.lists._partner import ListPartner, windows

RATE, BURST, REQUESTS = 20, 5, 60


@pytest.fixture
def partner() -> Iterator[ListPartner]:
    with ListPartner() as server:
        yield server


def aliases_dir(tmp_path: Path, name: str, url: str, rate_limit: dict[str, Any] | None,
                retry: dict[str, Any] | None = None) -> Path:
    directory = tmp_path / "aliases"
    directory.mkdir(exist_ok=True)
    alias: dict[str, Any] = {"kind": "alias", "name": name, "connection": {"url": url}}
    if rate_limit is not None:
        alias["rate_limit"] = rate_limit
    if retry is not None:
        alias["retry_policy"] = retry
    (directory / f"{name}.json").write_text(json.dumps([alias]))
    return directory


def paced_flow(tmp_path: Path, alias: str, count: int, path: str = "/ping", name: str = "paced") -> Path:
    flow = {"name": name, "inputs": {"n": {"type": "array", "default": list(range(count))}}, "steps": [
        {"id": "call", "type": "rest", "alias": alias, "path": path, "query": {"n": "{{ item }}"},
         "for_each": "{{ inputs.n }}", "concurrency": 8}]}
    file = tmp_path / f"{name}.json"
    file.write_text(json.dumps(flow))
    return file


def check_paced(arrivals: list[float], count: int) -> None:
    assert len(arrivals) == count
    # Arrivals, not grants, are counted: a request held up on a busy machine lands next to later
    # ones, so the window gets the 10% on top of rate + burst (an unpaced alias puts all 60
    # in one second).
    assert max(windows(arrivals)) <= RATE * 1.1 + BURST
    # The bucket lets `BURST` go at once and one more every 1/RATE s; 10% for timer and scheduling jitter.
    assert max(arrivals) - min(arrivals) >= 0.9 * (count - BURST) / RATE


def test_a_rate_limit_of_20_per_second_holds(partner: ListPartner, tmp_path: Path) -> None:
    aliases = aliases_dir(tmp_path, "paced_one", partner.url, {"per_second": RATE, "burst": BURST})
    result = flowrun.run_flow(paced_flow(tmp_path, "paced_one", REQUESTS), aliases=aliases)
    assert result.status == "passed", result.error
    check_paced([seen.arrived for seen in partner.requests_to("/ping")], REQUESTS)


@pytest.mark.slow  # 200 requests at 20 per second: about 10 s
def test_a_rate_limit_of_20_per_second_holds_within_10_percent_over_200_requests(partner: ListPartner,
                                                                                 tmp_path: Path) -> None:
    count = 200
    aliases = aliases_dir(tmp_path, "paced_200", partner.url, {"per_second": RATE, "burst": BURST})
    # Eight items at a time: the bucket, not one request after another, is what paces them.
    result = flowrun.run_flow(paced_flow(tmp_path, "paced_200", count), aliases=aliases)

    assert result.status == "passed", result.error
    arrivals = sorted(seen.arrived for seen in partner.requests_to("/ping"))
    assert len(arrivals) == count
    # After the burst the bucket hands out one token every 1/RATE s: the partner never sees the
    # limit exceeded by more than 10%, over the whole run nor in any one second.
    rate = (count - BURST) / (arrivals[-1] - arrivals[0])
    assert rate <= RATE * 1.1, f"{rate:.2f} requests per second"
    busiest = max(windows(arrivals))
    assert busiest <= RATE * 1.1 + BURST, f"{busiest} requests in one second"
    # Only a sanity bound below: a loaded machine may be slower, which is not what is tested.
    assert rate >= RATE / 4, f"{rate:.2f} requests per second"


def test_flows_running_in_parallel_share_the_bucket(partner: ListPartner, tmp_path: Path) -> None:
    # What `flowrun test --parallel` does: one runner per worker thread, one bucket per alias.
    aliases = aliases_dir(tmp_path, "paced_two", partner.url, {"per_second": RATE, "burst": BURST})
    flows = [paced_flow(tmp_path, "paced_two", REQUESTS // 2, name=f"half{n}") for n in (1, 2)]
    results: list[flowrun.FlowResult] = []

    def run(path: Path) -> None:
        with FlowRunner(registry=flowrun.Registry.load(aliases)) as runner:
            results.append(runner.run(path))

    threads = [threading.Thread(target=run, args=(path,)) for path in flows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.status for r in results] == ["passed", "passed"]
    check_paced([seen.arrived for seen in partner.requests_to("/ping")], REQUESTS)


def test_test_parallel_shares_the_bucket(partner: ListPartner, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from flowrun._cli import main

    aliases = aliases_dir(tmp_path, "paced_cli", partner.url, {"per_second": RATE, "burst": BURST})
    flows = tmp_path / "flows"
    flows.mkdir()
    for n in (1, 2, 3):
        paced_flow(flows, "paced_cli", REQUESTS // 3, name=f"third{n}")
    code = main(["test", str(flows), "--parallel", "3", "--aliases", str(aliases)])
    assert code == 0, capsys.readouterr()
    check_paced([seen.arrived for seen in partner.requests_to("/ping")], REQUESTS)


def test_a_429_with_retry_after_holds_the_alias_back(partner: ListPartner, tmp_path: Path) -> None:
    aliases = aliases_dir(tmp_path, "paced_429", partner.url, {"per_second": 2, "burst": 1},
                          retry={"strategy": "retry_after", "count": 1, "max_interval_s": 5})
    flow = {"name": "throttled", "steps": [
        {"id": "call", "type": "rest", "alias": "paced_429", "path": "/throttle", "query": {"n": "{{ item }}"},
         "for_each": "{{ `[1, 2, 3]` }}", "concurrency": 3}]}
    path = tmp_path / "throttled.json"
    path.write_text(json.dumps(flow))

    result = flowrun.run_flow(path, aliases=aliases)

    assert result.status == "passed", result.error
    arrivals = sorted(seen.arrived for seen in partner.requests_to("/throttle"))
    assert len(arrivals) == 4  # the throttled request was retried
    # Without the 429 the second request would follow the first after 1/2 s; Retry-After: 1 holds
    # every request through the alias back for a second.
    assert arrivals[1] - arrivals[0] >= 0.9


def test_an_alias_without_a_rate_limit_has_no_limiter(partner: ListPartner, tmp_path: Path) -> None:
    from flowrun import RestExecutor, RestStep

    aliases = aliases_dir(tmp_path, "free", partner.url, None)
    with RestExecutor(flowrun.Registry.load(aliases)) as rest:
        rest.run(RestStep(alias="free", path="/ping")).raise_for_failure()
        assert all(route.limiter is None for route in rest._routes.values())


def test_a_bad_rate_limit_is_refused_when_the_aliases_load(tmp_path: Path) -> None:
    aliases = aliases_dir(tmp_path, "bad", "http://127.0.0.1:9", {"per_second": 0})
    with pytest.raises(flowrun.SchemaError) as caught:
        flowrun.Registry.load(aliases)
    assert "per_second" in str(caught.value)
