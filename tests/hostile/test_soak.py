"""Load and soak: many flows at once and many steps in a row, nothing lost, nothing leaked.

The partner (REST and the SOAP Ledger, mutual TLS) runs in a child process (the bench's
``start_partner_site``), so that what this process holds (file descriptors, memory, threads) is
the client's alone.

* sequential soak: ``FLOWRUN_SOAK_STEPS`` steps (default 3,000; the full soak is 50,000) through
  one ``FlowRunner``, a flow of four REST steps and one SOAP step repeated. After a warm-up the
  open file descriptors must not grow, memory must not grow (``tracemalloc``: bytes still
  allocated; RSS: a loose bound for leaks below Python), every step must have a result, and the
  partner must have received exactly one request per step;
* parallel: ``FLOWRUN_SOAK_FLOWS`` flows (default 100) through ``flowrun test --parallel`` and
  through ``run_flow_async`` all at once (one runner per flow, and one shared runner): every flow
  and step has its result, and descriptors and threads are back where they were afterwards.

Full size::

    FLOWRUN_SOAK_STEPS=50000 .venv/bin/python -m pytest tests/hostile/test_soak.py
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
import sys
import threading
import tracemalloc
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun import AsyncFlowRunner, FlowResult, Registry, run_flow_async
from flowrun._cli import main
from flowrun._flows import FlowRunner
from flowrun._load._flows import load_flow
from flowrun._models._flow import FlowStep
from flowrun._models._results import StepResult

REPO = Path(__file__).resolve().parents[2]


def _bench_servers() -> Any:
    """bench/_servers.py by path: ``bench`` is not a package, and tests/bench shadows the name."""
    name = "flowrun_bench_servers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "_servers.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


servers = _bench_servers()
Site = Any  # bench/_servers.Site: a partner process plus its PKI and alias directory
SOAK_STEPS = int(os.environ.get("FLOWRUN_SOAK_STEPS", "3000"))
SOAK_FLOWS = int(os.environ.get("FLOWRUN_SOAK_FLOWS", "100"))
LEDGER_WSDL = REPO / "flowrun" / "testing" / "ledger.wsdl"
STEPS_PER_FLOW = 5
# Growth allowed once warm: a fixed slack for caches settling, and a slope far below any
# per-request leak (a kept response, a client or an SSL context per call are kilobytes).
TRACED_SLACK = 128 << 10
TRACED_PER_STEP = 16
RSS_SLACK = 16 << 20
RSS_PER_STEP = 512

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(servers.PASSWORD_ENV, os.urandom(12).hex())
        partner_site = servers.start_partner_site(tmp_path_factory.mktemp("soak"))
        try:
            yield partner_site
        finally:
            partner_site.close()


def soak_flow(name: str = "soak") -> dict[str, Any]:
    """Four REST steps (JSON, a POST, an expected 404, XML) and one SOAP call."""
    return {
        "name": name,
        "inputs": {"n": {"type": "integer", "default": 7}},
        "steps": [
            {"id": "account", "type": "rest", "alias": "partner", "path": "/accounts/{{ inputs.n }}",
             "response": {"outputs": {"balance": "body.balance"}},
             "assert": [{"that": "outputs.balance", "gt": 0}]},
            {"id": "echo", "type": "rest", "alias": "partner", "method": "POST", "path": "/echo",
             "body": {"json": {"n": "{{ inputs.n }}"}}, "response": {"outputs": {"method": "body.method"}}},
            {"id": "missing", "type": "rest", "alias": "partner", "path": "/status/404",
             "response": {"expect_status": [404]}},
            {"id": "xml", "type": "rest", "alias": "partner", "path": "/xml", "query": {"account": "{{ inputs.n }}"}},
            {"id": "ledger", "type": "soap", "alias": "ledger", "wsdl": str(LEDGER_WSDL), "operation": "GetBalance",
             "args": {"account": "{{ inputs.n }}"}, "response": {"outputs": {"balance": "body.balance"}}},
        ],
        "outputs": {"balance": "{{ steps.account.outputs.balance }}"},
    }


def write_flow(path: Path, name: str = "soak") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(soak_flow(name)))
    return path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def partner_requests(site: Site) -> int:
    stats = site.server.stats()
    return int(stats["requests"])


def assert_complete(result: FlowResult) -> None:
    """Every step of the flow ran, passed, and has its result."""
    assert result.ok, result.error
    assert [step.step_id for step in result.steps] == ["account", "echo", "missing", "xml", "ledger"]
    assert all(step.status == "passed" and step.http_status is not None for step in result.steps)
    assert result.outputs == {"balance": 1234.5}


def test_sequential_soak_keeps_descriptors_and_memory_flat_and_loses_no_result(site: Site, tmp_path: Path) -> None:
    flow = load_flow(write_flow(tmp_path / "soak.json"))
    iterations = max(SOAK_STEPS // STEPS_PER_FLOW, 50)
    warm_up = max(iterations // 5, 20)
    checkpoints = 10
    every = max((iterations - warm_up) // checkpoints, 1)
    seen: Counter[str] = Counter()

    def count(entry: FlowStep, result: StepResult) -> None:
        seen[result.status] += 1

    fds_before = open_fds()
    requests_before = partner_requests(site)
    samples: list[tuple[int, int, int, int]] = []  # (steps done, traced bytes, fds, rss)
    completed = 0
    tracemalloc_was_on = tracemalloc.is_tracing()
    with FlowRunner(registry=Registry.load(site.aliases_dir), on_step=count) as runner:
        try:
            for number in range(iterations):
                if number == warm_up:
                    gc.collect()
                    tracemalloc.start()
                result = runner.run(flow, {"n": number % 97 + 1}, iteration=number)
                assert_complete(result)
                assert result.iteration == number
                completed += 1
                if number >= warm_up and (number - warm_up) % every == every - 1:
                    gc.collect()
                    samples.append((completed * STEPS_PER_FLOW, tracemalloc.get_traced_memory()[0], open_fds(),
                                    rss_bytes()))
        finally:
            if not tracemalloc_was_on:
                tracemalloc.stop()
    fds_after = open_fds()

    steps = iterations * STEPS_PER_FLOW
    assert completed == iterations
    assert seen == {"passed": steps}
    # One request per step reached the partner: none lost, none repeated.
    assert partner_requests(site) - requests_before == steps

    assert len(samples) >= checkpoints
    base_steps, base_traced, base_fds, base_rss = samples[0]
    last_steps, last_traced, _, last_rss = samples[-1]
    measured = last_steps - base_steps
    fds = [sample[2] for sample in samples]
    assert max(fds) <= base_fds + 1, fds  # a kept-alive connection may be replaced, never piled up
    assert fds_after == fds_before, "the runner left descriptors open after close()"
    traced = [sample[1] for sample in samples]
    assert last_traced - base_traced <= TRACED_SLACK + TRACED_PER_STEP * measured, traced
    assert last_rss - base_rss <= RSS_SLACK + RSS_PER_STEP * measured, [sample[3] for sample in samples]


def test_flows_in_parallel_through_flowrun_test(site: Site, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    flows_dir = tmp_path / "flows"
    for index in range(SOAK_FLOWS):
        write_flow(flows_dir / f"soak_{index:04d}.json", name=f"soak_{index:04d}")
    report = tmp_path / "report.json"
    junit = tmp_path / "junit.xml"
    fds_before = open_fds()
    threads_before = threading.active_count()
    requests_before = partner_requests(site)

    code = main(["test", str(flows_dir), "--aliases", str(site.aliases_dir), "--parallel",
                 str(min(SOAK_FLOWS, 100)), "--report", str(junit), "--json-report", str(report)])
    out = capsys.readouterr().out

    assert code == 0, out[-3000:]
    assert open_fds() == fds_before
    assert threading.active_count() == threads_before
    assert partner_requests(site) - requests_before == SOAK_FLOWS * STEPS_PER_FLOW
    data = json.loads(report.read_text())
    assert data["status"] == "passed"
    assert data["summary"]["flows"] == data["summary"]["flows_passed"] == SOAK_FLOWS
    assert data["summary"]["steps"] == data["summary"]["steps_passed"] == SOAK_FLOWS * STEPS_PER_FLOW
    assert sorted(flow["name"] for flow in data["flows"]) == [f"soak_{i:04d}" for i in range(SOAK_FLOWS)]
    for flow in data["flows"]:
        assert [step["status"] for step in flow["steps"]] == ["passed"] * STEPS_PER_FLOW
    root = ET.parse(junit).getroot()
    assert len(root.findall("testsuite")) == SOAK_FLOWS
    # A testcase per step plus one per assertion (the first step has one).
    assert int(root.get("tests", "0")) == SOAK_FLOWS * (STEPS_PER_FLOW + 1)
    assert root.get("failures") == root.get("errors") == "0"


def test_flows_all_at_once_with_run_flow_async(site: Site, tmp_path: Path) -> None:
    flow = load_flow(write_flow(tmp_path / "soak.json"))
    registry = Registry.load(site.aliases_dir)
    fds_before = open_fds()
    requests_before = partner_requests(site)

    async def separately() -> list[FlowResult]:
        return await asyncio.gather(*(run_flow_async(flow, {"n": index + 1}, registry=registry)
                                      for index in range(SOAK_FLOWS)))

    async def shared() -> tuple[list[FlowResult], list[FlowResult]]:
        async with AsyncFlowRunner(registry=registry) as runner:
            results = await asyncio.gather(*(runner.run(flow, {"n": index + 1}, iteration=index)
                                             for index in range(SOAK_FLOWS)))
            return list(results), runner.interrupted_results

    results = asyncio.run(separately())
    assert len(results) == SOAK_FLOWS
    for result in results:
        assert_complete(result)
    results, interrupted = asyncio.run(shared())
    assert interrupted == []
    assert sorted(result.iteration or 0 for result in results) == list(range(SOAK_FLOWS))
    for result in results:
        assert_complete(result)
    assert partner_requests(site) - requests_before == 2 * SOAK_FLOWS * STEPS_PER_FLOW
    assert open_fds() == fds_before
