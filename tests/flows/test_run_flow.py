"""``run_flow`` end to end against the real mTLS partner: inputs, context, when, on_error, outputs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowrun import (
    AssertionFailedError,
    DataPillError,
    DefinitionError,
    Flow,
    FlowInput,
    FlowRunner,
    Registry,
    ResponseSpec,
    RestStep,
    load_flow,
    run_flow,
    run_flow_async,
)
from flowrun._flows import is_truthy, parse_input_text, prepare_inputs
from flowrun.testing import PartnerServer, Pki
from tests.flows.conftest import API_KEY, REPO, write_json

CANONICAL = REPO / "samples" / "flows" / "balance.json"


def echo_flow(**extra: Any) -> dict[str, Any]:
    """A flow that posts its inputs to /echo and returns what the partner received."""
    return {
        "name": "echo",
        "inputs": {"account": {"type": "string"}, "amount": {"type": "number", "default": 1},
                   "flags": {"type": "array", "default": []}},
        "steps": [{"id": "echo", "type": "rest", "alias": "bank", "method": "POST", "path": "/echo",
                   "body": {"json": {"account": "{{ inputs.account }}", "amount": "{{ inputs.amount }}",
                                     "flags": "{{ inputs.flags }}"}},
                   "response": {"outputs": {"sent": "body.body_text"}}}],
        "outputs": {"sent": "{{ steps.echo.outputs.sent }}"},
        **extra,
    }


def test_canonical_flow_runs_as_written(aliases: Path, partner: PartnerServer, pki: Pki) -> None:
    before = len(partner.requests)
    result = run_flow(CANONICAL, {"account": "7"}, aliases=aliases)
    assert result.ok, result.to_dict()
    assert result.outputs == {"balance": 1234.5}
    balance, ledger = result.steps
    assert (balance.step_id, balance.status, balance.http_status) == ("balance", "passed", 200)
    assert balance.assertions[0].passed
    assert balance.tls is not None
    assert balance.tls.client_cert_sha256 == pki.client.sha256
    assert (ledger.step_id, ledger.kind, ledger.status) == ("ledger", "soap", "passed")
    assert float(ledger.outputs["balance"]) == 1234.5
    seen = partner.requests[before:]
    rest = next(r for r in seen if r.path.startswith("/v2/accounts/"))
    assert rest.path == "/v2/accounts/7"
    assert ("currency", "EUR") in rest.query
    assert rest.header("X-API-Key") == API_KEY
    assert rest.client_cert_sha256 == pki.client.sha256
    assert any(r.path == "/ledger" and b"<" in r.body and b"7" in r.body for r in seen)


def test_default_input_is_used(aliases: Path, partner: PartnerServer) -> None:
    before = len(partner.requests)
    result = run_flow(CANONICAL, aliases=aliases)
    assert result.ok
    assert result.inputs == {"account": "42"}
    assert any(r.path == "/v2/accounts/42" for r in partner.requests[before:])


def test_inputs_keep_their_declared_types(aliases: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "echo.json", echo_flow())
    # Text (from the command line or a CSV) becomes the declared type; a string input stays text.
    result = run_flow(path, {"account": "7", "amount": "12.5", "flags": '["a", "b"]'}, aliases=aliases)
    assert result.ok, result.to_dict()
    assert json.loads(result.outputs["sent"]) == {"account": "7", "amount": 12.5, "flags": ["a", "b"]}
    typed = run_flow(path, {"account": "007", "amount": 3}, aliases=aliases)
    assert json.loads(typed.outputs["sent"]) == {"account": "007", "amount": 3, "flags": []}


def test_input_problems_are_definition_errors(aliases: Path, tmp_path: Path) -> None:
    path = write_json(tmp_path / "echo.json", echo_flow())
    with pytest.raises(DefinitionError, match="missing required input 'account'") as missing:
        run_flow(path, aliases=aliases)
    assert "-i account=" in (missing.value.hint or "")
    with pytest.raises(DefinitionError, match="unknown input 'acount' \\(did you mean 'account'\\?\\)"):
        run_flow(path, {"acount": "7"}, aliases=aliases)
    with pytest.raises(DefinitionError, match="input 'amount' must be a number; got 'lots'"):
        run_flow(path, {"account": "7", "amount": "lots"}, aliases=aliases)
    with pytest.raises(DefinitionError, match="input 'account' must be a string"):
        run_flow(path, {"account": 7}, aliases=aliases)


@pytest.mark.parametrize(("text", "type_name", "value"), [
    ("7", "string", "7"), ("7", "integer", 7), ("7", "number", 7), ("-2.5", "number", -2.5),
    ("yes", "boolean", True), ("False", "boolean", False), ('{"a": 1}', "object", {"a": 1}),
    ("[1, 2]", "array", [1, 2]),
])
def test_text_inputs_convert_by_type(text: str, type_name: str, value: Any) -> None:
    converted = parse_input_text(text, type_name, "x")
    assert converted == value
    assert isinstance(converted, type(value))
    assert str(converted) == str(value)  # a number keeps the text it was given as


@pytest.mark.parametrize(("text", "type_name"), [("1.5", "integer"), ("nan", "number"), ("maybe", "boolean"),
                                                 ("[1]", "object"), ("{", "array")])
def test_bad_text_inputs_are_refused(text: str, type_name: str) -> None:
    with pytest.raises(DefinitionError, match=f"must be an? {type_name}"):
        parse_input_text(text, type_name, "x")


def test_optional_input_without_default_is_null() -> None:
    declared = {"note": FlowInput(required=False), "n": FlowInput(type="integer", default=2)}
    assert prepare_inputs(declared, {}) == {"note": None, "n": 2}


def test_when_skips_a_step_and_later_steps_see_it(aliases: Path, tmp_path: Path) -> None:
    flow = {"name": "when", "inputs": {"account": {"type": "string", "default": "42"}},
            "steps": [
                {"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/{{ inputs.account }}",
                 "response": {"outputs": {"balance": "body.balance"}}},
                {"id": "big", "type": "rest", "alias": "bank", "path": "/status/200",
                 "when": "steps.balance.outputs.balance > `100000`"},
                {"id": "small", "type": "rest", "alias": "bank", "path": "/status/200",
                 "when": "{{ steps.balance.outputs.balance <= `100000` }}"},
                {"id": "report", "type": "rest", "alias": "bank", "method": "POST", "path": "/echo",
                 "body": {"json": {"big": "{{ steps.big.result }}", "small": "{{ steps.small.result }}"}},
                 "response": {"outputs": {"sent": "body.body_text"}}},
            ],
            "outputs": {"sent": "{{ steps.report.outputs.sent }}"}}
    result = run_flow(write_json(tmp_path / "when.json", flow), aliases=aliases)
    assert result.ok, result.to_dict()
    assert [s.status for s in result.steps] == ["passed", "skipped", "passed", "passed"]
    assert json.loads(result.outputs["sent"]) == {"big": "skipped", "small": "passed"}


@pytest.mark.parametrize(("value", "truthy"), [
    (0, True), ("0", True), ([0], True), (False, False), (None, False), ("", False), ([], False), ({}, False),
])
def test_when_uses_jmespath_truthiness(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


def test_on_error_stop_and_continue(aliases: Path, tmp_path: Path) -> None:
    def flow(on_error: str) -> dict[str, Any]:
        return {"name": "errors", "steps": [
            {"id": "broken", "type": "rest", "alias": "bank", "path": "/status/503", "on_error": on_error},
            {"id": "after", "type": "rest", "alias": "bank", "path": "/status/200",
             "response": {"outputs": {"before": "`null`"}}},
        ]}
    stopped = run_flow(write_json(tmp_path / "stop.json", flow("stop")), aliases=aliases)
    assert not stopped.ok
    assert [s.step_id for s in stopped.steps] == ["broken"]
    assert stopped.error is not None
    assert stopped.error.code == "http.unexpected_status"
    assert stopped.error.step == "broken"
    continued = run_flow(write_json(tmp_path / "continue.json", flow("continue")), aliases=aliases)
    assert [s.status for s in continued.steps] == ["failed", "passed"]
    assert continued.status == "failed"  # continuing never hides the failure


def test_failed_assertion_names_step_expression_expected_actual(aliases: Path, tmp_path: Path) -> None:
    data = {"name": "assert", "steps": [
        {"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/7",
         "assert": [{"that": "status", "equals": 200}, {"that": "body.balance", "lt": 0}]}]}
    path = write_json(tmp_path / "assert.json", data)
    result = run_flow(path, aliases=aliases)
    assert result.status == "failed"
    error = result.error
    assert isinstance(error, AssertionFailedError)
    assert (error.step, error.expression, error.expected, error.actual) == ("balance", "body.balance", 0, 1234.5)
    assert error.file == str(path)
    assert error.pointer == "/steps/0/assert/1"
    assert error.line is not None
    assert [a.passed for a in result.steps[0].assertions] == [True, False]
    with pytest.raises(AssertionFailedError):
        result.raise_for_failure()


def test_outputs_that_cannot_render_fail_the_flow_naming_the_output(aliases: Path, tmp_path: Path) -> None:
    data = {"name": "outputs", "steps": [{"id": "balance", "type": "rest", "alias": "bank", "path": "/accounts/7",
                                          "response": {"outputs": {"balance": "body.balance"}}}],
            "outputs": {"ok": "{{ steps.balance.outputs.balance }}", "total": "{{ steps.balance.outputs.totl }}"}}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(data, indent=None).replace(', "outputs": {"ok"', ',\n "outputs": {\n"ok"')
                    .replace(', "total"', ',\n"total"'))
    result = run_flow(path, aliases=aliases)
    assert result.status == "failed"
    assert result.outputs == {"ok": 1234.5}
    assert isinstance(result.error, DataPillError)
    assert "output 'total'" in result.error.message
    assert "no 'totl' (available: balance)" in result.error.message
    assert (result.error.pointer, result.error.line) == ("/outputs/total", 4)


def test_env_is_only_what_the_flow_declares(aliases: Path, tmp_path: Path) -> None:
    data = {"name": "env", "env": {"REGION": {"default": "eu"}, "TICKET": {}},
            "steps": [{"id": "echo", "type": "rest", "alias": "bank", "method": "POST", "path": "/echo",
                       "headers": {"X-Region": "{{ env.REGION }}", "X-Ticket": "{{ env.TICKET }}"},
                       "response": {"outputs": {"headers": "body.headers"}}}],
            "outputs": {"headers": "{{ steps.echo.outputs.headers }}"}}
    path = write_json(tmp_path / "env.json", data)
    result = run_flow(path, aliases=aliases, environ={"TICKET": "T-1", "HOME": "/root"})
    assert result.ok, result.to_dict()
    sent = {name.lower(): value for name, value in result.outputs["headers"]}
    assert (sent["x-region"], sent["x-ticket"]) == ("eu", "T-1")
    with pytest.raises(DefinitionError, match="environment variable TICKET is not set"):
        run_flow(path, aliases=aliases, environ={})
    undeclared = {**data, "steps": [{**data["steps"][0], "headers": {"X-Home": "{{ env.HOME }}"}}]}
    failed = run_flow(write_json(tmp_path / "undeclared.json", undeclared), aliases=aliases,
                      environ={"TICKET": "T-1", "HOME": "/root"})
    assert isinstance(failed.error, DataPillError)
    assert "HOME" in failed.error.message


def test_uses_definition_with_arguments_and_entry_assertions(aliases: Path, tmp_path: Path) -> None:
    write_json(tmp_path / "steps" / "account_balance.json", {
        "type": "rest", "alias": "bank", "path": "/accounts/{{ inputs.account }}",
        "inputs": {"account": {"type": "string"}, "currency": {"type": "string", "default": "EUR"}},
        "query": {"currency": "{{ inputs.currency }}"},
        "response": {"outputs": {"balance": "body.balance", "currency": "body.currency"}},
        "assert": [{"that": "status", "equals": 200}],
    })
    flow = {"name": "uses", "inputs": {"who": {"type": "string", "default": "9"}},
            "steps": [{"id": "first", "uses": "account_balance",
                       "with": {"account": "{{ inputs.who }}", "currency": "CHF"},
                       "assert": [{"that": "body.account", "equals": "{{ inputs.who }}"}]},
                      {"id": "second", "uses": "account_balance", "with": {"account": "x"}, "on_error": "continue",
                       "assert": [{"that": "outputs.currency", "equals": "{{ steps.first.outputs.currency }}"}]}],
            "outputs": {"currency": "{{ steps.first.outputs.currency }}"}}
    path = write_json(tmp_path / "uses.json", flow)
    result = run_flow(path, aliases=aliases, steps_dirs=[tmp_path / "steps"])
    first, second = result.steps
    assert first.status == "passed"
    assert [(a.expression, a.passed) for a in first.assertions] == [("status", True), ("body.account", True)]
    assert result.outputs == {"currency": "CHF"}
    # The entry's assertion reads the flow's context: the second call used EUR, the first CHF.
    assert second.status == "failed"
    assert isinstance(second.error, AssertionFailedError)
    assert (second.error.expected, second.error.actual) == ("CHF", "EUR")
    assert second.error.pointer == "/steps/1/assert/0"
    missing = {**flow, "steps": [{"id": "first", "uses": "account_balance", "with": {}}]}
    failed = run_flow(write_json(tmp_path / "missing.json", missing), aliases=aliases,
                      steps_dirs=[tmp_path / "steps"])
    assert isinstance(failed.error, DefinitionError)
    assert "missing required input 'account' of step definition 'account_balance'" in failed.error.message


def test_runner_reuses_connections_across_iterations(aliases: Path, partner: PartnerServer) -> None:
    flow = Flow(name="keepalive", steps=[RestStep(id="balance", alias="bank", path="/accounts/7",
                                                   response=ResponseSpec(outputs={"balance": "body.balance"}))])
    registry = Registry.load(aliases)
    with FlowRunner(registry=registry) as runner:
        first = runner.run(flow, iteration=1)
        assert first.ok
        handshakes = partner.handshakes
        results = [runner.run(flow, iteration=n) for n in range(2, 6)]
    assert all(r.ok and r.outputs == {} for r in results)
    assert [r.iteration for r in results] == [2, 3, 4, 5]
    assert partner.handshakes == handshakes


def test_async_twin(aliases: Path) -> None:
    result = asyncio.run(run_flow_async(CANONICAL, {"account": "7"}, aliases=aliases))
    assert result.ok, result.to_dict()
    assert result.outputs == {"balance": 1234.5}


def test_executor_errors_become_failed_steps(aliases: Path, tmp_path: Path) -> None:
    data = {"name": "unknown", "steps": [{"id": "x", "type": "rest", "alias": "bnak", "path": "/"}]}
    result = run_flow(write_json(tmp_path / "unknown.json", data), aliases=aliases)
    assert result.status == "failed"
    assert result.error is not None
    assert "did you mean 'bank'" in str(result.error)
    assert result.error.step == "x"


def test_untrusted_partner_is_a_tls_failure(aliases: Path, tmp_path: Path) -> None:
    data = {"name": "untrusted", "steps": [{"id": "x", "type": "rest", "alias": "untrusted", "path": "/status/200"}]}
    result = run_flow(write_json(tmp_path / "untrusted.json", data), aliases=aliases)
    assert result.error is not None
    assert result.error.code == "tls.server_untrusted"
    assert len(result.steps[0].attempts) == 1  # never retried


def test_rest_only_flow_does_not_import_zeep(aliases: Path, tmp_path: Path) -> None:
    data = {"name": "rest_only", "steps": [{"id": "x", "type": "rest", "alias": "bank", "path": "/accounts/7"}]}
    path = write_json(tmp_path / "rest.json", data)
    code = ("import sys, flowrun\n"
            f"result = flowrun.run_flow({str(path)!r}, aliases={str(aliases)!r})\n"
            "assert result.ok, result.to_dict()\n"
            "print(','.join(m for m in ('zeep', 'jsonschema') if m in sys.modules) or 'none')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_loaded_flow_and_model_run_alike(aliases: Path) -> None:
    flow = load_flow(CANONICAL)
    assert run_flow(flow, {"account": "7"}, aliases=aliases).outputs == {"balance": 1234.5}


def test_assertions_on_duration_ms(aliases: Path, tmp_path: Path) -> None:
    flow = write_json(tmp_path / "slow.json", {"name": "slow", "steps": [
        {"id": "slow", "type": "rest", "alias": "bank", "path": "/slow", "query": {"ms": "300"},
         "assert": [{"that": "duration_ms", "gte": 300}, {"that": "duration_ms", "lt": 600000},
                    {"that": "duration_ms", "type": "number"}]},
        {"id": "again", "type": "rest", "alias": "bank", "path": "/slow", "query": {"ms": "300"},
         "on_error": "continue", "assert": [{"that": "duration_ms", "lt": 300}]}]})
    result = run_flow(flow, registry=Registry.load(aliases))
    first, second = result.steps
    assert first.ok and [a.passed for a in first.assertions] == [True, True, True]
    assert not second.ok
    assert isinstance(second.error, AssertionFailedError)
    assert "duration_ms lt 300" in str(second.error)


def test_a_generated_idempotency_key_is_the_same_on_every_attempt(aliases: Path, partner: PartnerServer,
                                                                  tmp_path: Path) -> None:
    flow = write_json(tmp_path / "keyed.json", {"name": "keyed", "steps": [
        {"id": "pay", "type": "rest", "alias": "bank", "method": "post", "path": "/flaky/idem-{{ now('%H%M%S') }}",
         "query": {"fail": "1"}, "headers": {"Idempotency-Key": "{{ uuid() }}", "X-Date": "{{ now() }}"},
         "body": {"json": {"amount": "{{ random_int(`1`, `9`) }}"}},
         "retry_policy": {"strategy": "fixed", "count": 1, "interval_s": 0.01, "retry_non_idempotent": True}}]})
    before = len(partner.requests)
    result = run_flow(flow, registry=Registry.load(aliases))
    assert result.ok, result.steps[0].error
    sent = partner.requests[before:]
    assert len(sent) == 2
    keys = {request.header("Idempotency-Key") for request in sent}
    assert len(keys) == 1 and None not in keys
    assert json.loads(sent[0].body)["amount"] in range(1, 10)
