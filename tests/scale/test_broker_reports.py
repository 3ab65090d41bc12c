"""`flowrun test --broker` and `flowrun run --data --broker` give a local run's reports, field by field.

One directory of flows covers what the reports tell apart: passing flows (REST and SOAP), a failed
assertion, a failed step (unexpected status), a skipped step (`when`), a `for_each` step with a
failed item, a data pill that names nothing (a definition error inside a step, with its file and
JSON pointer), a flow whose input is missing (a flow that cannot run), and a flow with a field its schema
does not know (a flow that cannot load). It runs locally and through two real `flowrun worker` processes, once
as is and once per row of a data file; the text output, `--json-report`, `--junit`, `--html` and
the exit code are compared after normalising only what must differ between two runs:

* durations (`duration_ms`, JUnit `time`, "12.3 ms" in text and HTML, the HTML timeline's bar
  widths, which are durations as percentages) and the wall-clock moment a report was written
  (JUnit `timestamp`, the HTML header's date, the partner's `Date` response header in the HTML
  report): two runs never take the same time;
* nothing else. The workers run the flows from a copy of their files in a temporary directory:
  every path in a report (flow files, error locations) must still be the dispatcher's own; host
  names are not normalised (both reports are written by the dispatcher, on this machine).

Standard error is compared too, without the broker's own lines (`* run ...`, `* 3/10 flows done`).
"""

from __future__ import annotations

import difflib
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from flowrun.testing import PartnerServer
from tests.scale.conftest import RedisServer, Workers, run_cli
from tests.scale.test_celery_runs import assert_no_secret, write_flow

ACCOUNT = {"account": {"type": "string", "default": "42"}}

SUITE: list[dict[str, Any]] = [
    {"name": "a_passes", "inputs": {**ACCOUNT, "amount": {"type": "number", "default": 3}},
     "steps": [
         {"id": "balance", "type": "rest", "alias": "partner", "method": "GET",
          "path": "/accounts/{{ inputs.account }}",
          "response": {"expect_status": [200], "outputs": {"balance": "body.balance"}},
          "assert": [{"that": "outputs.balance", "gt": 0}, {"that": "status", "equals": 200}]},
         {"id": "ledger", "type": "soap", "alias": "ledger", "wsdl": "wsdl/ledger.wsdl", "operation": "GetBalance",
          "args": {"account": "{{ inputs.account }}"}, "response": {"outputs": {"currency": "body.currency"}}},
     ],
     "outputs": {"balance": "{{ steps.balance.outputs.balance }}", "currency": "{{ steps.ledger.outputs.currency }}"}},
    {"name": "b_assertion_fails", "inputs": ACCOUNT,
     "steps": [
         {"id": "balance", "type": "rest", "alias": "partner", "method": "GET",
          "path": "/accounts/{{ inputs.account }}", "response": {"outputs": {"balance": "body.balance"}},
          "assert": [{"that": "outputs.balance", "lt": 0}, {"that": "outputs.balance", "gt": 0}]},
         {"id": "after", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/200"},
     ]},
    {"name": "c_step_fails",
     "steps": [
         {"id": "unavailable", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/503",
          "response": {"expect_status": [200]}},
         {"id": "never", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/200"},
     ]},
    {"name": "d_skips", "inputs": {**ACCOUNT, "pay": {"type": "boolean", "default": False}},
     "steps": [
         {"id": "balance", "type": "rest", "alias": "partner", "method": "GET",
          "path": "/accounts/{{ inputs.account }}"},
         {"id": "pay", "type": "rest", "alias": "partner", "method": "POST", "when": "inputs.pay",
          "path": "/accounts/{{ inputs.account }}/transfers", "body": {"json": {"amount": 1}}},
         {"id": "after", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/204"},
     ]},
    {"name": "e_for_each", "inputs": {"ids": {"type": "array", "default": ["7", "0", "9"]}},
     "steps": [
         {"id": "each", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/{{ item }}",
          "for_each": "{{ inputs.ids }}", "on_error": "continue",
          "response": {"expect_status": [200], "outputs": {"balance": "body.balance"}}},
         {"id": "after", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/200"},
     ]},
    {"name": "f_pill_names_nothing",
     "steps": [
         {"id": "first", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/200"},
         {"id": "second", "type": "rest", "alias": "partner", "method": "GET",
          "path": "/accounts/{{ steps.first.outputs.missing }}"},
     ]},
    {"name": "g_needs_an_input", "inputs": {"reference": {"type": "string"}},
     "steps": [{"id": "only", "type": "rest", "alias": "partner", "method": "GET", "path": "/status/200"}]},
]

_DURATION = re.compile(r"\d+(\.\d+)? ?(ms|s)\b")
_WHEN = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d( [A-Z]{2,5})?"
                   r"|[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")
_BAR = re.compile(r"(left|width):\d+(\.\d+)?%")


def normal_text(text: str) -> str:
    return _BAR.sub(r"\1:<pct>", _WHEN.sub("<when>", _DURATION.sub("<t>", text)))


def normal_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "<t>" if k == "duration_ms" else normal_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normal_json(v) for v in value]
    return normal_text(value) if isinstance(value, str) else value


def normal_junit(path: Path) -> list[str]:
    lines = []
    for element in ET.parse(path).iter():
        attributes = {k: "<t>" if k in ("time", "timestamp") else normal_text(v) for k, v in element.attrib.items()}
        text = normal_text((element.text or "").strip())
        lines.append(f"{element.tag} {json.dumps(attributes, sort_keys=True)} {text!r}")
    return lines


def broker_lines_dropped(stderr: str) -> str:
    return "\n".join(line for line in stderr.splitlines() if not line.startswith("* "))


def assert_same(what: str, local: Any, remote: Any) -> None:
    if local != remote:
        left, right = (value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True)
                       for value in (local, remote))
        diff = "\n".join(difflib.unified_diff(left.splitlines(), right.splitlines(), "local", "broker",
                                              lineterm="", n=2))
        raise AssertionError(f"{what} differs between the local run and the run on the workers:\n{diff[:6000]}")


def write_suite(directory: Path) -> Path:
    directory.mkdir()
    for flow in SUITE:
        write_flow(directory, flow)
    # A flow file with a field its schema does not know: it cannot load.
    (directory / "z_unknown_field.json").write_text(json.dumps(
        {"name": "unknown_field", "steps": [{"id": "x", "type": "rest", "alias": "partner", "path": "/", "eq": 1}]}))
    return directory


def reports(tmp_path: Path, name: str, *args: str, broker: str | None, aliases: Path) -> dict[str, Any]:
    out = tmp_path / name
    out.mkdir()
    where = ["--broker", broker] if broker else ["--aliases", str(aliases)]
    done = run_cli("--no-color", *args, *where, "--report", str(out / "junit.xml"),
                   "--json-report" if args[0] == "test" else "--json", *([str(out / "report.json")]
                                                                         if args[0] == "test" else []),
                   "--html", str(out / "report.html"), secrets=broker is None)
    report = json.loads((out / "report.json").read_text()) if args[0] == "test" else json.loads(done.stdout)
    return {"exit": done.returncode, "stdout": normal_text(done.stdout) if args[0] == "test" else "",
            "stderr": normal_text(broker_lines_dropped(done.stderr)), "json": normal_json(report),
            "junit": normal_junit(out / "junit.xml"), "html": normal_text((out / "report.html").read_text()),
            "raw_stderr": done.stderr}


def compare(local: dict[str, Any], remote: dict[str, Any]) -> None:
    assert remote["exit"] == local["exit"], remote["raw_stderr"]
    for key in ("stdout", "stderr", "json", "junit", "html"):
        assert_same(key, local[key], remote[key])


def test_flowrun_test_on_two_workers_writes_the_reports_of_a_local_test(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    suite = write_suite(tmp_path / "suite")
    rows = tmp_path / "rows.csv"
    rows.write_text("account,pay\n7,false\n0,true\n")
    workers.start(redis_server.url, aliases, concurrency=2)
    workers.start(redis_server.url, aliases, concurrency=2)

    local = reports(tmp_path, "local", "test", str(suite), broker=None, aliases=aliases)
    remote = reports(tmp_path, "remote", "test", str(suite), broker=redis_server.url, aliases=aliases)
    # What the suite is made to show, so that equal reports are not equally empty ones.
    assert local["exit"] == 2
    summary = local["json"]["summary"]
    # e_for_each passes with one failed item (on_error: continue), which every report shows.
    assert (summary["flows"], summary["flows_passed"], summary["steps_skipped"]) == (6, 3, 1)
    assert [f["steps"][0].get("failed_items") for f in local["json"]["flows"] if f["name"] == "e_for_each"] == [1]
    assert [e["code"] for e in local["json"]["errors"]] == ["definition.schema", "definition"]
    compare(local, remote)

    local_rows = reports(tmp_path, "local-rows", "test", str(suite), "--data", str(rows), broker=None,
                         aliases=aliases)
    remote_rows = reports(tmp_path, "remote-rows", "test", str(suite), "--data", str(rows),
                          broker=redis_server.url, aliases=aliases)
    assert len(local_rows["json"]["flows"]) == 12
    compare(local_rows, remote_rows)


RUN_FLOW: dict[str, Any] = {
    "name": "settle_rows",
    "inputs": {"account": {"type": "string"}, "amount": {"type": "number"}},
    "steps": [
        {"id": "balance", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/{{ inputs.account }}",
         "response": {"expect_status": [200], "outputs": {"balance": "body.balance"}},
         "assert": [{"that": "outputs.balance", "gt": "{{ inputs.amount }}"}]},
        {"id": "pay", "type": "rest", "alias": "partner", "method": "POST", "when": "inputs.amount < `100`",
         "path": "/echo", "query": {"account": "{{ inputs.account }}"},
         "body": {"json": {"amount": "{{ inputs.amount }}"}},
         "response": {"expect_status": [200], "outputs": {"amount": "body.json.amount"}}},
        {"id": "each", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/{{ item }}",
         "for_each": "{{ [inputs.account, '7'] }}", "response": {"outputs": {"currency": "body.currency"}}},
    ],
    "outputs": {"balance": "{{ steps.balance.outputs.balance }}"},
}


def test_flowrun_run_data_on_two_workers_writes_the_reports_of_a_local_run(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    flow = write_flow(tmp_path, RUN_FLOW)
    rows = tmp_path / "rows.csv"
    # Passing rows, a skipped payment, a failed assertion (2000 > the balance), a 404 (account 0).
    rows.write_text("account,amount\n1001,1.25\n1002,150\n1003,2000\n0,5\n1005,7.5\n")
    workers.start(redis_server.url, aliases, concurrency=2)
    workers.start(redis_server.url, aliases, concurrency=2)
    args = ("run", str(flow), "--data", str(rows))
    local = reports(tmp_path, "local", *args, broker=None, aliases=aliases)
    remote = reports(tmp_path, "remote", *args, broker=redis_server.url, aliases=aliases)
    assert local["exit"] == 1
    assert [it["status"] for it in local["json"]["iterations"]] == ["passed", "passed", "failed", "failed", "passed"]
    compare(local, remote)
    # The text output of the same runs (the one above printed JSON).
    local_text = run_cli("--no-color", *args, "--aliases", str(aliases))
    remote_text = run_cli("--no-color", *args, "--broker", redis_server.url, secrets=False)
    assert remote_text.returncode == local_text.returncode == 1
    assert_same("text output", normal_text(local_text.stdout), normal_text(remote_text.stdout))
    assert_same("standard error", normal_text(local_text.stderr),
                normal_text(broker_lines_dropped(remote_text.stderr)))
    # --html brought response headers and bodies back through Redis (the echo step's body quotes
    # the API key it was sent): masked on the worker, like everything else Redis holds.
    assert b"X-API-Key" in b"".join(redis_server.everything())
    assert_no_secret(redis_server.everything(), "Redis")


def test_on_a_terminal_test_broker_draws_the_status_line_of_a_local_test(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    import os
    import pty
    import subprocess
    import sys

    from tests.scale.conftest import GUARD_S, flowrun_env

    suite = tmp_path / "suite"
    suite.mkdir()
    write_flow(suite, SUITE[0])
    rows = tmp_path / "rows.csv"
    rows.write_text("account\n1\n2\n3\n")
    workers.start(redis_server.url, aliases)
    env = {**flowrun_env(secrets=False), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "flowrun", "test", str(suite), "--data", str(rows),
                                    "--broker", redis_server.url], stdout=follower, stderr=follower, env=env)
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=GUARD_S) == 0
    finally:
        os.close(leader)
    screen = b"".join(chunks).decode()
    assert "[0/3] running on the workers" in screen
    assert "\r\x1b[2K" in screen
    assert "flows done" not in screen  # the piped form's lines are not drawn over it
    assert screen.count("a_passes (") == 3
