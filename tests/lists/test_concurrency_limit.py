"""An alias's concurrency_limit in one process, checked by the partner's count of requests in flight.

The partner holds each request a little while and notes the most it held at once; a for-each
with more threads than the cap, flows running in parallel, the async executor, and SOAP calls
beside REST requests through the same alias must never have more than ``max_in_flight`` there,
and must reach it (the cap, not something else, limits).
A request that finds no slot for ``wait_s`` fails unsent with ``limit.in_flight_wait``.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowrun
from flowrun import FlowRunner
from tests.lists._partner import ListPartner

CAP = 3


@pytest.fixture
def partner() -> Iterator[ListPartner]:
    with ListPartner(delay_s=0.05) as server:
        yield server


def aliases_dir(tmp_path: Path, name: str, url: str, limit: dict[str, Any]) -> Path:
    directory = tmp_path / "aliases"
    directory.mkdir(exist_ok=True)
    alias = {"kind": "alias", "name": name, "connection": {"url": url}, "concurrency_limit": limit}
    (directory / f"{name}.json").write_text(json.dumps([alias]))
    return directory


def fan_out_flow(directory: Path, alias: str, count: int, name: str = "fan_out", threads: int = 8) -> Path:
    flow = {"name": name, "inputs": {"n": {"type": "array", "default": list(range(count))}}, "steps": [
        {"id": "call", "type": "rest", "alias": alias, "path": "/ping", "query": {"n": "{{ item }}"},
         "for_each": "{{ inputs.n }}", "concurrency": threads}]}
    file = directory / f"{name}.json"
    file.write_text(json.dumps(flow))
    return file


def test_a_for_each_with_8_threads_keeps_3_requests_in_flight(partner: ListPartner, tmp_path: Path) -> None:
    aliases = aliases_dir(tmp_path, "capped", partner.url, {"max_in_flight": CAP})
    result = flowrun.run_flow(fan_out_flow(tmp_path, "capped", 24), aliases=aliases)
    assert result.status == "passed", result.error
    assert len(partner.requests_to("/ping")) == 24
    assert partner.max_in_flight == CAP


def test_flows_running_in_parallel_share_the_cap(partner: ListPartner, tmp_path: Path) -> None:
    aliases = aliases_dir(tmp_path, "capped_two", partner.url, {"max_in_flight": CAP})
    flows = [fan_out_flow(tmp_path, "capped_two", 12, name=f"half{n}") for n in (1, 2)]
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
    assert partner.max_in_flight == CAP


def test_test_parallel_shares_the_cap(partner: ListPartner, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flowrun._cli import main

    aliases = aliases_dir(tmp_path, "capped_cli", partner.url, {"max_in_flight": 2})
    flows = tmp_path / "flows"
    flows.mkdir()
    for n in (1, 2, 3):
        fan_out_flow(flows, "capped_cli", 6, name=f"third{n}", threads=4)
    code = main(["test", str(flows), "--parallel", "3", "--aliases", str(aliases)])
    assert code == 0, capsys.readouterr()
    assert len(partner.requests_to("/ping")) == 18
    assert partner.max_in_flight == 2


def test_the_async_executor_keeps_the_cap(partner: ListPartner, tmp_path: Path) -> None:
    from flowrun import AsyncRestExecutor, RestStep

    aliases = aliases_dir(tmp_path, "capped_async", partner.url, {"max_in_flight": CAP})

    async def main() -> list[flowrun.StepResult]:
        async with AsyncRestExecutor(flowrun.Registry.load(aliases)) as rest:
            return list(await asyncio.gather(*(rest.run(RestStep(alias="capped_async", path="/ping"))
                                               for _ in range(16))))

    results = asyncio.run(main())
    assert [r.status for r in results] == ["passed"] * 16
    assert partner.max_in_flight == CAP


def test_a_request_that_finds_no_slot_in_wait_s_fails_unsent(tmp_path: Path) -> None:
    with ListPartner(delay_s=1.0) as slow:
        aliases = aliases_dir(tmp_path, "one_slot", slow.url, {"max_in_flight": 1, "wait_s": 0.2})
        result = flowrun.run_flow(fan_out_flow(tmp_path, "one_slot", 2, threads=2), aliases=aliases)
        sent = len(slow.requests_to("/ping"))
    assert result.status == "failed"
    errors = [step.error for step in result.steps if step.error is not None]
    assert sent == 1
    assert errors, result
    error = errors[0]
    assert isinstance(error, flowrun.InFlightWaitError)
    assert error.code == "limit.in_flight_wait"
    assert ("alias 'one_slot' had its 1 request(s) in flight in this process for all of concurrency_limit.wait_s "
            "(0.2 s): this request was not sent") in str(error)


def test_a_bad_concurrency_limit_is_refused_when_the_aliases_load(tmp_path: Path) -> None:
    aliases = aliases_dir(tmp_path, "bad", "http://127.0.0.1:9", {"max_in_flight": 0})
    with pytest.raises(flowrun.SchemaError) as caught:
        flowrun.Registry.load(aliases)
    assert "max_in_flight" in str(caught.value)


def test_alias_show_prints_the_concurrency_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flowrun._cli import main

    aliases = aliases_dir(tmp_path, "shown", "http://127.0.0.1:9", {"max_in_flight": 4, "wait_s": 30})
    assert main(["--no-color", "alias", "show", "shown", "--aliases", str(aliases)]) == 0
    assert "4 in flight, a request waits up to 30 s for a slot" in capsys.readouterr().out
    assert main(["alias", "show", "shown", "--aliases", str(aliases), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["concurrency_limit"] == {"max_in_flight": 4, "wait_s": 30}


def test_soap_calls_and_rest_requests_share_the_slots(partner: ListPartner, tmp_path: Path) -> None:
    from flowrun import RestExecutor, RestStep, SoapExecutor, SoapStep

    aliases = aliases_dir(tmp_path, "capped_mixed", partner.url, {"max_in_flight": CAP})
    registry = flowrun.Registry.load(aliases)
    envelope = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><Ping/>'
                "</soap:Body></soap:Envelope>")
    # The partner answers JSON, so the SOAP steps fail on the reply: what counts is how many calls it held at once.
    soap_step = SoapStep(id="soap", alias="capped_mixed", envelope=envelope, path="/ping")
    rest_step = RestStep(id="rest", alias="capped_mixed", path="/ping")
    with SoapExecutor(registry) as soap, RestExecutor(registry) as rest:
        threads = [threading.Thread(target=soap.run, args=(soap_step,)) for _ in range(6)]
        threads += [threading.Thread(target=rest.run, args=(rest_step,)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    methods = [seen.method for seen in partner.requests_to("/ping")]
    assert sorted(methods) == ["GET"] * 6 + ["POST"] * 6
    assert partner.max_in_flight == CAP
