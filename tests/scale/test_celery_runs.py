"""`flowrun run --broker` over real `flowrun worker` processes, a real redis-server and an mTLS partner.

* 200 data rows over two workers give 200 results and the same text, JSON and JUnit reports as a
  local run of the same rows (durations aside), and Redis holds no secret afterwards, nor did any
  command Redis received during the run (MONITOR);
* `kill -9` of a whole worker mid-run loses no row, and no non-idempotent request reaches the
  partner twice: the row it was running is delivered again, its completed steps are taken from
  their records, the POST that was in flight is reported `delivery.outcome_unknown`;
* a broker that goes away mid-run ends the command with `broker.unavailable` and a partial report;
* the completed-step records themselves (in process, real Redis and partner): a done step is
  replayed, an in-flight POST is not sent again, a step with an idempotency key is; each item of a
  `for_each` step has its own record;
* a local run never imports Celery.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from flowrun.celery import make_bundle
from flowrun.celery._bundle import BundleCache
from flowrun.celery._worker import WorkerSettings, WorkerState, run_row
from flowrun.testing import PartnerServer
from tests.scale.conftest import (
    API_KEY,
    API_KEY_ENV,
    GUARD_S,
    KEYSTORE_PASSWORD,
    PASSWORD_ENV,
    SECRETS,
    RedisServer,
    Workers,
    flowrun_env,
    run_cli,
    start_cli,
    write_rows,
)

REPO = Path(__file__).resolve().parents[2]

SETTLE_FLOW: dict[str, Any] = {
    "name": "settle",
    "inputs": {"account": {"type": "string"}, "amount": {"type": "number"}},
    "steps": [
        {"id": "balance", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/{{ inputs.account }}",
         "response": {"expect_status": [200], "outputs": {"balance": "body.balance"}},
         "assert": [{"that": "outputs.balance", "gt": 0}]},
        {"id": "ledger", "type": "soap", "alias": "ledger", "wsdl": "wsdl/ledger.wsdl", "operation": "GetBalance",
         "args": {"account": "{{ inputs.account }}"}, "response": {"outputs": {"currency": "body.currency"}}},
        {"id": "pay", "type": "rest", "alias": "partner", "method": "POST",
         "path": "/accounts/{{ inputs.account }}/transfers", "body": {"json": {"amount": "{{ inputs.amount }}"}},
         "response": {"expect_status": [201], "outputs": {"status": "body.status", "amount": "body.amount"}}},
    ],
    "outputs": {"balance": "{{ steps.balance.outputs.balance }}", "currency": "{{ steps.ledger.outputs.currency }}",
                "paid": "{{ steps.pay.outputs.amount }}"},
}

# The POST is slow, so that a worker killed mid-run is most likely killed while it is in flight.
SLOW_PAY_FLOW: dict[str, Any] = {
    "name": "slow_pay",
    "inputs": {"account": {"type": "string"}, "amount": {"type": "number"}},
    "steps": [
        {"id": "balance", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/{{ inputs.account }}",
         "response": {"expect_status": [200]}},
        {"id": "pay", "type": "rest", "alias": "partner", "method": "POST", "path": "/slow",
         "query": {"ms": "300", "account": "{{ inputs.account }}"}, "body": {"json": {"amount": "{{ inputs.amount }}"}},
         "response": {"expect_status": [200]}},
        {"id": "confirm", "type": "rest", "alias": "partner", "method": "POST", "path": "/echo",
         "query": {"account": "{{ inputs.account }}"},
         "headers": {"Idempotency-Key": "confirm-{{ inputs.account }}"}, "response": {"expect_status": [200]}},
    ],
}


def write_flow(directory: Path, flow: dict[str, Any]) -> Path:
    (directory / "wsdl").mkdir(exist_ok=True)
    for name in ("ledger.wsdl", "ledger.xsd"):
        shutil.copy(REPO / "steps" / name, directory / "wsdl" / name)
    path = directory / f"{flow['name']}.json"
    path.write_text(json.dumps(flow, indent=1))
    return path


def calls(partner: PartnerServer, path: str, account: str) -> int:
    return sum(1 for r in partner.requests if r.path == path and dict(r.query).get("account") == account)


def posts_to(partner: PartnerServer, path: str) -> int:
    return sum(1 for r in partner.requests if r.path == path and r.method == "POST")


def without_durations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_durations(v) for k, v in value.items() if k not in ("duration_ms", "started_at")}
    if isinstance(value, list):
        return [without_durations(v) for v in value]
    return value


def text_without_durations(text: str) -> str:
    return re.sub(r"\d+(\.\d+)? ?(ms|s)\b", "<t>", text)


def junit_without_times(path: Path) -> list[tuple[str, dict[str, str], str]]:
    shown = []
    for element in ET.parse(path).iter():
        attributes = {k: v for k, v in element.attrib.items() if k not in ("time", "timestamp", "hostname")}
        shown.append((element.tag, attributes, text_without_durations((element.text or "").strip())))
    return shown


def secret_forms(secret: str) -> list[bytes]:
    """The secret, and what its base64 encoding always contains whatever comes before it."""
    forms = [secret.encode()]
    for shift in range(3):
        encoded = base64.b64encode(b"x" * shift + secret.encode())
        forms.append(encoded[4:-4] if shift else encoded[:-4])
    return forms


def assert_no_secret(blobs: list[bytes], where: str) -> None:
    for secret in SECRETS:
        for form in secret_forms(secret):
            leaked = [blob[:80] for blob in blobs if form in blob]
            assert not leaked, f"a form of a secret is in {where}: {leaked[:3]}"


# --- the bundle ---------------------------------------------------------------------------------


def test_a_bundle_carries_the_flow_and_its_wsdls_never_aliases(tmp_path: Path, aliases: Path) -> None:
    from flowrun._load._flows import load_flow

    path = write_flow(tmp_path, SETTLE_FLOW)
    bundle = make_bundle(path, load_flow(path))
    assert sorted(bundle["files"]) == ["settle.json", "wsdl/ledger.wsdl", "wsdl/ledger.xsd"]
    assert bundle["flow"] == "settle.json"
    text = json.dumps(bundle)
    assert "partner.json" not in text and "celeryMTLS" not in text and PASSWORD_ENV not in text

    cache = BundleCache()
    try:
        assert cache.flow(bundle).name == "settle"
        assert cache.flow(bundle) is cache.flow(bundle)  # built once per worker process
        hostile = {**bundle, "digest": "other", "files": {"../escape.json": "{}"}}
        with pytest.raises(Exception, match="outside its own directory"):
            cache.flow(hostile)
    finally:
        cache.clear()
    assert not (tmp_path.parent / "escape.json").exists()


# --- completed-step records, in process -----------------------------------------------------------


def test_completed_steps_are_replayed_and_an_in_flight_post_is_never_sent_again(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flowrun._load._flows import load_flow

    monkeypatch.setenv(PASSWORD_ENV, KEYSTORE_PASSWORD)
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    path = write_flow(tmp_path, SLOW_PAY_FLOW)
    bundle = make_bundle(path, load_flow(path))
    state = WorkerState(WorkerSettings(aliases=aliases), redis_server.url)

    def run(row: int, account: str) -> dict[str, Any]:
        text = run_row(state, bundle=bundle, inputs=json.dumps({"account": account, "amount": 5}), run_id="r1",
                       row=row, iteration=row, env=None)
        return json.loads(text)["result"]

    try:
        first = run(1, "501")
        assert first["status"] == "passed"
        assert calls(partner, "/secure/slow", "501") == 1
        # The same row delivered again: every step comes from its record, nothing is sent.
        before = len(partner.requests)
        again = run(1, "501")
        assert len(partner.requests) == before
        assert [s["status"] for s in again["steps"]] == ["passed", "passed", "passed"]
        assert [s["http_status"] for s in again["steps"]] == [s["http_status"] for s in first["steps"]]

        # A worker died while row 2's POST (step 2) was in flight: its record says so.
        redis_server.client.set("flowrun:step:r1:2:1", json.dumps({"state": "in_flight"}))
        unknown = run(2, "502")
        assert unknown["status"] == "failed"
        assert unknown["steps"][1]["error"]["code"] == "delivery.outcome_unknown"
        assert "not sent again" in unknown["steps"][1]["error"]["message"]
        assert calls(partner, "/secure/slow", "502") == 0

        # ... and while row 3's confirmation (with an Idempotency-Key) was in flight: it is sent again.
        redis_server.client.set("flowrun:step:r1:3:2", json.dumps({"state": "in_flight"}))
        resent = run(3, "503")
        assert resent["status"] == "passed"
        assert calls(partner, "/secure/echo", "503") == 1
        keys = [r.header("Idempotency-Key") for r in partner.requests if r.path == "/secure/echo"]
        assert "confirm-503" in keys
    finally:
        state.close()


def test_a_step_replayed_on_another_worker_names_that_workers_copy_of_the_bundle(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A step's record holds paths in the bundle copy of the worker that ran it (here where
    ``save_to`` wrote the body). The row redelivered to another worker reports them in that
    worker's copy: the one its reply names (``bundle_dir``), which the dispatcher turns into its
    own paths. Never the first worker's temporary folder."""
    from flowrun._load._flows import load_flow

    monkeypatch.setenv(PASSWORD_ENV, KEYSTORE_PASSWORD)
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    flow = {"name": "statement", "inputs": {"account": {"type": "string"}}, "steps": [
        {"id": "balance", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/{{ inputs.account }}",
         "response": {"expect_status": [200], "save_to": "out/balance.json"}}]}
    path = write_flow(tmp_path, flow)
    bundle = make_bundle(path, load_flow(path))
    first, second = (WorkerState(WorkerSettings(aliases=aliases), redis_server.url) for _ in range(2))

    def run(state: WorkerState) -> dict[str, Any]:
        text = run_row(state, bundle=bundle, inputs=json.dumps({"account": "601"}), run_id="r9", row=1,
                       iteration=None, env=None, bodies=True)
        return dict(json.loads(text))

    try:
        ran, replayed = run(first), run(second)
        assert len([r for r in partner.requests if r.path == "/secure/accounts/601"]) == 1  # replayed, not sent
        assert ran["bundle_dir"] != replayed["bundle_dir"]
        for reply in (ran, replayed):
            body = reply["result"]["steps"][0]["body"]
            assert body["saved_to"] == f"{reply['bundle_dir']}/out/balance.json", body
        assert ran["bundle_dir"] not in json.dumps(replayed)
    finally:
        first.close()
        second.close()


def test_each_item_of_a_for_each_step_has_its_own_record(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from flowrun._load._flows import load_flow

    monkeypatch.setenv(PASSWORD_ENV, KEYSTORE_PASSWORD)
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    flow = {"name": "each_account", "inputs": {"ids": {"type": "array"}},
            "steps": [{"id": "each", "type": "rest", "alias": "partner", "method": "GET",
                       "path": "/accounts/{{ item }}", "for_each": "{{ inputs.ids }}", "on_error": "continue",
                       "response": {"expect_status": [200], "outputs": {"account": "body.account"}}}]}
    path = write_flow(tmp_path, flow)
    bundle = make_bundle(path, load_flow(path))
    state = WorkerState(WorkerSettings(aliases=aliases), redis_server.url)
    try:
        def run() -> dict[str, Any]:
            text = run_row(state, bundle=bundle, inputs=json.dumps({"ids": ["7", "0", "9"]}), run_id="r2", row=1,
                           iteration=None, env=None)
            return json.loads(text)["result"]

        first = run()
        # Each item ran against the partner: one record per item, not the first item's for all.
        assert first["steps"][0]["outputs"] == {"account": ["7", None, "9"]}
        assert [item["status"] for item in first["steps"][0]["iterations"]] == ["passed", "failed", "passed"]
        assert sorted(key.decode() for key in redis_server.client.scan_iter("flowrun:step:r2:*")) == [
            "flowrun:step:r2:1:0.0", "flowrun:step:r2:1:0.1", "flowrun:step:r2:1:0.2"]
        before = len(partner.requests)
        again = run()  # delivered again: every item comes from its record
        assert len(partner.requests) == before
        assert again["steps"][0]["outputs"] == first["steps"][0]["outputs"]
    finally:
        state.close()


# --- real workers -------------------------------------------------------------------------------


def test_200_rows_over_two_workers_match_a_local_run_and_redis_never_sees_a_secret(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    flow = write_flow(tmp_path, SETTLE_FLOW)
    rows = write_rows(tmp_path / "rows.csv", 200)
    with (tmp_path / "monitor.log").open("wb") as log:
        monitor = subprocess.Popen([shutil.which("redis-cli") or "redis-cli", "-p", str(redis_server.port), "monitor"],
                                   stdout=log, stderr=subprocess.DEVNULL)
    try:
        workers.start(redis_server.url, aliases, concurrency=2)
        workers.start(redis_server.url, aliases, concurrency=2)
        remote = start_cli("--no-color", "run", str(flow), "--data", str(rows), "--broker", redis_server.url,
                           "--report", str(tmp_path / "remote.xml"))
        remote_out, remote_err = remote.communicate(timeout=GUARD_S)
        remote_json = run_cli("run", str(flow), "--data", str(rows), "--broker", redis_server.url, "--json",
                              secrets=False)
    finally:
        monitor.terminate()
        monitor.wait()
    assert remote.returncode == 0, remote_err + workers.log(0)
    assert "200/200 data rows done" in remote_err
    local = run_cli("--no-color", "run", str(flow), "--data", str(rows), "--aliases", str(aliases),
                    "--report", str(tmp_path / "local.xml"))
    local_json = run_cli("run", str(flow), "--data", str(rows), "--aliases", str(aliases), "--json")
    assert local.returncode == remote_json.returncode == local_json.returncode == 0

    remote_report = json.loads(remote_json.stdout)
    assert len(remote_report["iterations"]) == 200
    assert [it["iteration"] for it in remote_report["iterations"]] == list(range(1, 201))
    assert remote_report["iterations"][6]["outputs"] == {"balance": 1234.5, "currency": "EUR", "paid": 7.25}
    assert without_durations(remote_report) == without_durations(json.loads(local_json.stdout))
    assert text_without_durations(remote_out) == text_without_durations(local.stdout)
    assert junit_without_times(tmp_path / "remote.xml") == junit_without_times(tmp_path / "local.xml")
    # Every row was paid once per run that sent it: two runs on the workers, two local ones.
    assert posts_to(partner, "/secure/accounts/1000/transfers") == 4
    assert sum(1 for r in partner.requests if r.method == "POST" and r.path.endswith("/transfers")) == 800

    stored = redis_server.everything()
    assert any(b"flowrun:step:" in blob for blob in stored), "the completed-step records are in Redis"
    assert b"flowrun:limit:default:partner::rate" in stored, "the shared rate limit is in Redis"
    assert_no_secret(stored, "Redis")
    monitored = (tmp_path / "monitor.log").read_bytes()
    assert b"flowrun.run_row" in monitored or b"flowrun:step:" in monitored, "MONITOR saw the run"
    assert_no_secret([monitored], "the commands Redis received")


def test_kill_9_of_a_worker_mid_run_loses_no_row_and_sends_no_post_twice(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    flow = write_flow(tmp_path, SLOW_PAY_FLOW)
    rows = write_rows(tmp_path / "rows.csv", 24)
    accounts = [str(1000 + n) for n in range(24)]
    victim = workers.start(redis_server.url, aliases, visibility_timeout=3)
    workers.start(redis_server.url, aliases, visibility_timeout=3)
    dispatcher = start_cli("run", str(flow), "--data", str(rows), "--broker", redis_server.url, "--json")
    try:
        # Kill once several payments are under way: the victim is then most likely inside one.
        assert partner.wait_until(lambda p: posts_to(p, "/secure/slow") >= 6, timeout=GUARD_S)
        workers.kill(victim)
        out, err = dispatcher.communicate(timeout=GUARD_S)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    report = json.loads(out)
    iterations = report["iterations"]
    assert [it["iteration"] for it in iterations] == list(range(1, 25)), err
    for account, result in zip(accounts, iterations, strict=True):
        sent = calls(partner, "/secure/slow", account)
        assert sent <= 1, f"account {account}: the non-idempotent POST reached the partner {sent} times"
        if result["status"] == "passed":
            assert sent == 1
        else:
            assert result["steps"][1]["error"]["code"] == "delivery.outcome_unknown", result
    assert dispatcher.returncode == (0 if report["status"] == "passed" else 1)


def test_a_broker_that_goes_away_mid_run_gives_a_clear_error_and_a_partial_report(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    flow = write_flow(tmp_path, SLOW_PAY_FLOW)
    rows = write_rows(tmp_path / "rows.csv", 40)
    workers.start(redis_server.url, aliases)
    dispatcher = start_cli("run", str(flow), "--data", str(rows), "--broker", redis_server.url, "--json",
                           "--report", str(tmp_path / "partial.xml"))
    try:
        assert partner.wait_until(lambda p: posts_to(p, "/secure/slow") >= 4, timeout=GUARD_S)
        redis_server.kill()
        out, err = dispatcher.communicate(timeout=GUARD_S)
    finally:
        if dispatcher.poll() is None:
            dispatcher.kill()
    assert dispatcher.returncode == 2, err
    assert "error[broker.unavailable]" in err
    assert f"the broker {redis_server.url} stopped answering while gathering results" in err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["status"] == "failed"
    gathered = len(report["iterations"])
    assert report["interrupted"] == {"signal": "broker.unavailable", "not_run": 40 - gathered}
    assert gathered < 40
    assert ET.parse(tmp_path / "partial.xml").getroot() is not None


def test_a_local_run_never_imports_celery(tmp_path: Path, aliases: Path, partner: PartnerServer) -> None:
    flow = write_flow(tmp_path, SETTLE_FLOW)
    code = ("import sys; from flowrun._cli import main; "
            f"code = main(['run', {str(flow)!r}, '--aliases', {str(aliases)!r}, '-i', 'account=7', '-i', 'amount=1']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('celery', 'kombu', 'redis', 'flowrun.celery')"
            " or m.startswith('flowrun.celery'))); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=GUARD_S,
                          env=flowrun_env())
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_without_a_reachable_broker_the_worker_cli_and_run_say_what_is_wrong(tmp_path: Path, aliases: Path) -> None:
    done = run_cli("worker", "--broker", "redis://127.0.0.1:1/0", "--aliases", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "missing" in done.stderr and "Traceback" not in done.stderr
    flow = write_flow(tmp_path, SETTLE_FLOW)
    done = run_cli("run", str(flow), "-i", "account=1", "-i", "amount=1", "--broker", "redis://:pw-9876@127.0.0.1:1/0")
    assert done.returncode == 2, done.stderr
    assert "error[broker.unavailable]: the broker redis://:***@127.0.0.1:1/0 cannot be reached" in done.stderr
    assert "pw-9876" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_flowrun_test_on_workers_gives_the_verdicts_of_a_local_test(
        tmp_path: Path, aliases: Path, partner: PartnerServer, redis_server: RedisServer, workers: Workers) -> None:
    suite = tmp_path / "suite"
    suite.mkdir()
    write_flow(suite, SETTLE_FLOW)
    write_flow(suite, {**SETTLE_FLOW, "name": "settle_twice",
                       "steps": [*SETTLE_FLOW["steps"], {**SETTLE_FLOW["steps"][0], "id": "again",
                                                         "assert": [{"that": "outputs.balance", "lt": 0}]}]})
    rows = write_rows(tmp_path / "rows.csv", 5)
    workers.start(redis_server.url, aliases, concurrency=2)
    remote = run_cli("--no-color", "test", str(suite), "--data", str(rows), "--broker", redis_server.url,
                     "--report", str(tmp_path / "remote.xml"), "--json-report", str(tmp_path / "remote.json"),
                     secrets=False)
    local = run_cli("--no-color", "test", str(suite), "--data", str(rows), "--aliases", str(aliases),
                    "--report", str(tmp_path / "local.xml"), "--json-report", str(tmp_path / "local.json"))
    assert remote.returncode == local.returncode == 1, remote.stderr + workers.log(0)
    assert "* 10/10 flows done" in remote.stderr
    remote_report = json.loads((tmp_path / "remote.json").read_text())
    assert remote_report["summary"]["flows"] == 10 and remote_report["summary"]["flows_failed"] == 5
    local_report = json.loads((tmp_path / "local.json").read_text())
    assert [f["status"] for f in remote_report["flows"]] == [f["status"] for f in local_report["flows"]]
    # Every report, field by field: tests/scale/test_broker_reports.py.
