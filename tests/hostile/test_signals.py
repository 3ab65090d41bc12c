"""SIGINT and SIGTERM mid-run: the command stops at once and the report keeps what was done.

``flowrun run`` and ``flowrun test`` run as real subprocesses against a partner on loopback. The
flows reach a step that the partner answers only after 60 s (``/slow``); the test waits until the
partner has received that request, signals the command, and expects:

* it ends long before the slow answer would come (the wait below is a hang guard, not a timing);
* exit code 130 for SIGINT, 143 for SIGTERM, and no traceback;
* the reports (``--json`` on stdout and ``--report`` JUnit for ``run``; ``--json-report`` and
  ``--report`` for ``test``) hold every completed iteration or flow, the interrupted ones with
  their completed steps and the running step marked ``interrupted``, and what never started.

In process, the runners keep a partial result when a ``KeyboardInterrupt`` or a cancellation
stops them (``interrupted_results``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun import AsyncFlowRunner, Registry
from flowrun._flows import FlowRunner
from flowrun._load._flows import load_flow
from flowrun._models._flow import FlowStep
from flowrun._models._results import StepResult
from flowrun.testing import PartnerServer, Pki, PkiFiles, make_pki

PASSWORD = "signal-store-pass"
PASSWORD_ENV = "FLOWRUN_SIGNAL_KEYSTORE_PASSWORD"
REPO = Path(__file__).resolve().parents[2]
SLOW_MS = 60_000
# A hang guard: far below the partner's slow answer, far above a prompt exit on a busy machine.
EXIT_GUARD_S = 30
SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]


@pytest.fixture(scope="module")
def signal_pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def signal_pki_files(signal_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return signal_pki.write(tmp_path_factory.mktemp("signal-pki"), keystore_password=PASSWORD)


@pytest.fixture
def signal_partner(signal_pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(signal_pki) as partner:
        yield partner


@pytest.fixture
def signal_aliases(tmp_path: Path, signal_pki_files: PkiFiles, signal_partner: PartnerServer) -> Path:
    directory = tmp_path / "aliases"
    directory.mkdir()
    records = [
        {"kind": "keystore", "name": "client", "type": "jks", "file": str(signal_pki_files.client.jks),
         "password": {"env": PASSWORD_ENV}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "root", "file": str(signal_pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "signalMTLS", "keystore": "client", "trust_store_certs": ["root"],
         "use_system_trust": False},
        {"kind": "alias", "name": "partner",
         "connection": {"url": signal_partner.url, "mutual_authentication": True, "protocol_profile": "signalMTLS",
                        "timeout_s": 120}},
    ]
    (directory / "partner.json").write_text(json.dumps(records, indent=1))
    return directory


def slow_flow(name: str) -> dict[str, Any]:
    """A fast step, a step as slow as ``inputs.ms`` says, and a step after it."""
    return {
        "name": name,
        "inputs": {"ms": {"type": "integer", "default": 0}},
        "steps": [
            {"id": "first", "type": "rest", "alias": "partner", "path": "/accounts/7"},
            {"id": "wait", "type": "rest", "alias": "partner", "path": "/slow", "query": {"ms": "{{ inputs.ms }}"}},
            {"id": "after", "type": "rest", "alias": "partner", "path": "/accounts/8"},
        ],
    }


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def slow_requests(partner: PartnerServer) -> int:
    return sum(1 for request in partner.requests if request.path == "/slow" and dict(request.query)["ms"] != "0")


def signal_midway(args: list[str], partner: PartnerServer, slow_in_flight: int, signum: int,
                  cwd: Path) -> tuple[int, str, str]:
    """Start ``flowrun ARGS``, wait until ``slow_in_flight`` slow requests reached the partner,
    send ``signum``, and return (exit code, stdout, stderr)."""
    env = {**os.environ, PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"}
    process = subprocess.Popen([sys.executable, "-m", "flowrun", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        reached = partner.wait_until(lambda p: slow_requests(p) >= slow_in_flight or process.poll() is not None,
                                     timeout=EXIT_GUARD_S)
        assert reached and process.poll() is None, "the command never reached the slow step"
        process.send_signal(signum)
        out, err = process.communicate(timeout=EXIT_GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert "Traceback" not in out + err, err
    return process.returncode, out, err


def interrupted_step(flow: dict[str, Any], signal_name: str) -> None:
    """The shape of a flow that the signal stopped in its slow step."""
    assert flow["status"] == "failed"
    steps = flow["steps"]
    assert [step["id"] for step in steps] == ["first", "wait"]
    assert steps[0]["status"] == "passed"
    assert steps[1]["status"] == "failed"
    assert steps[1]["error"]["code"] == "interrupted"
    assert signal_name in steps[1]["error"]["message"]
    assert flow["error"]["code"] == "interrupted"


@pytest.mark.parametrize(("signum", "expected_code"), SIGNALS)
def test_flowrun_run_stops_at_once_and_reports_the_completed_iterations(
        signum: int, expected_code: int, signal_partner: PartnerServer, signal_aliases: Path, tmp_path: Path) -> None:
    flow = write_json(tmp_path / "slow.json", slow_flow("slow"))
    # Rows 1-3 are quick; row 4 waits on the partner. 250 iterations of 4 rows: 1000 runs.
    rows = write_json(tmp_path / "rows.json", [{"ms": 0}, {"ms": 0}, {"ms": 0}, {"ms": SLOW_MS}])
    junit = tmp_path / "junit.xml"
    code, out, err = signal_midway(
        ["run", str(flow), "--aliases", str(signal_aliases), "--data", str(rows), "--iterations", "250",
         "--report", str(junit), "--json"], signal_partner, 1, signum, tmp_path)
    name = signal.Signals(signum).name

    assert code == expected_code, err
    assert f"interrupted by {name}: 3 iterations completed, 1 interrupted, 996 not run" in err
    report = json.loads(out)
    assert report["status"] == "failed"
    assert report["interrupted"] == {"signal": name, "not_run": 996}
    iterations = report["iterations"]
    assert [iteration["iteration"] for iteration in iterations] == [1, 2, 3, 4]
    for iteration in iterations[:3]:
        assert iteration["status"] == "passed"
        assert [step["status"] for step in iteration["steps"]] == ["passed"] * 3
    interrupted_step(iterations[3], name)

    root = ET.parse(junit).getroot()
    suites = root.findall("testsuite")
    assert [suite.get("name") for suite in suites] == [
        "slow [iteration 1]", "slow [iteration 2]", "slow [iteration 3]", "slow [iteration 4]",
        "996 iterations not run"]
    stopped = suites[3]
    assert {p.get("name"): p.get("value") for p in stopped.iterfind("properties/property")}["interrupted"] == "true"
    error = stopped.find("testcase[@name='wait']/error")
    assert error is not None and error.get("type") == "interrupted"
    assert suites[4].find("testcase/skipped") is not None
    assert root.get("skipped") == "1"
    # Every completed request is accounted for: 3 iterations x 3 steps, then 2 of the 4th.
    assert len(signal_partner.requests) == 11


@pytest.mark.parametrize(("signum", "expected_code"), SIGNALS)
@pytest.mark.parametrize("parallel", [1, 3])
def test_flowrun_test_stops_at_once_and_reports_done_running_and_not_started_flows(
        signum: int, expected_code: int, parallel: int, signal_partner: PartnerServer, signal_aliases: Path,
        tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    for index in range(6):
        write_json(flows / f"a_{index}.json", slow_flow(f"a_{index}"))
    for index in range(4):  # taken after the a_ flows: `parallel` of them start, and hang
        flow = slow_flow(f"z_{index}")
        flow["inputs"]["ms"]["default"] = SLOW_MS
        write_json(flows / f"z_{index}.json", flow)
    report = tmp_path / "report.json"
    junit = tmp_path / "junit.xml"
    code, out, err = signal_midway(
        ["test", str(flows), "--aliases", str(signal_aliases), "--parallel", str(parallel), "--report", str(junit),
         "--json-report", str(report)], signal_partner, parallel, signum, tmp_path)
    name = signal.Signals(signum).name
    not_started = [str(flows / f"z_{index}.json") for index in range(parallel, 4)]

    assert code == expected_code, err
    assert f"interrupted by {name}: 6 flows completed, {parallel} interrupted, {4 - parallel} not run" in err
    data = json.loads(report.read_text())
    assert data["status"] == "failed"
    assert data["interrupted"] == {"signal": name, "not_run": 4 - parallel, "not_run_flows": not_started}
    by_name = {flow["name"]: flow for flow in data["flows"]}
    assert sorted(by_name) == [f"a_{i}" for i in range(6)] + [f"z_{i}" for i in range(parallel)]
    for index in range(6):
        assert by_name[f"a_{index}"]["status"] == "passed"
        assert len(by_name[f"a_{index}"]["steps"]) == 3
    for index in range(parallel):
        interrupted_step(by_name[f"z_{index}"], name)
    assert "z_0" in out  # the interrupted flows are printed too

    root = ET.parse(junit).getroot()
    names = [suite.get("name") for suite in root.findall("testsuite")]
    assert sorted(names) == sorted([f"a_{i}" for i in range(6)] + [f"z_{i}" for i in range(parallel)] + not_started)
    assert root.get("skipped") == str(4 - parallel)
    errors = root.findall("testsuite/testcase/error[@type='interrupted']")
    assert len(errors) == parallel


# --- in process: the runners keep what a stop interrupted -----------------------------------------


def test_a_keyboard_interrupt_leaves_the_partial_result_with_the_runner(
        signal_partner: PartnerServer, signal_aliases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    flow = load_flow(write_json(tmp_path / "flow.json", slow_flow("stopped")))

    def stop_after_first(entry: FlowStep, result: StepResult) -> None:
        if entry.id == "first":
            raise KeyboardInterrupt

    with FlowRunner(registry=Registry.load(signal_aliases), on_step=stop_after_first) as runner, \
            pytest.raises(KeyboardInterrupt):
        runner.run(flow)
    [partial] = runner.interrupted_results
    assert [step.step_id for step in partial.steps] == ["first"]
    assert partial.steps[0].status == "passed"
    assert partial.error is not None and partial.error.code == "interrupted"
    assert "SIGINT" in str(partial.error)
    snapshot = runner.snapshot("SIGTERM", of=flow)
    assert snapshot is not None and [step.step_id for step in snapshot.steps] == ["first"]


def test_a_cancelled_async_run_keeps_its_completed_steps(
        signal_partner: PartnerServer, signal_aliases: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    flow = load_flow(write_json(tmp_path / "flow.json", slow_flow("cancelled")))

    async def scenario() -> list[Any]:
        async with AsyncFlowRunner(registry=Registry.load(signal_aliases)) as runner:
            task = asyncio.create_task(runner.run(flow, {"ms": SLOW_MS}))
            while slow_requests(signal_partner) == 0:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return list(runner.interrupted_results)

    [partial] = asyncio.run(scenario())
    assert [(step.step_id, step.status) for step in partial.steps] == [("first", "passed"), ("wait", "failed")]
    assert partial.steps[1].error is not None and partial.steps[1].error.code == "interrupted"
    assert "CancelledError" in str(partial.steps[1].error)
