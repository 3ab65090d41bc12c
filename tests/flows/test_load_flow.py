"""Flow files and step definitions -> models: schema, places of errors, ``uses``, relative paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flowrun import (
    DefinitionError,
    Flow,
    FlowInput,
    RestStep,
    SchemaError,
    SoapStep,
    UnknownReferenceError,
)
from flowrun._load._fast_schema import accepts
from flowrun._load._flows import FlowLoader, load_flow, looks_like_flow
from flowrun._load._schema import schema
from flowrun._models._flow import FlowStep
from tests.flows.conftest import REPO, write_json

CANONICAL = REPO / "samples" / "flows" / "balance.json"


def minimal(**step: Any) -> dict[str, Any]:
    return {"name": "f", "steps": [{"id": "a", "type": "rest", "alias": "bank", **step}]}


# --- the canonical flow -------------------------------------------------------------------------


def test_canonical_flow_loads_as_written() -> None:
    flow = load_flow(CANONICAL)
    assert flow.name == "balance_check"
    assert flow.inputs["account"].type == "string"
    assert flow.inputs["account"].default == "42"
    assert not flow.inputs["account"].is_required
    rest, soap = (entry.step for entry in flow.steps)
    assert isinstance(rest, RestStep)
    assert (rest.id, rest.alias, rest.method, rest.path) == ("balance", "bank", "GET", "/accounts/{{ inputs.account }}")
    assert rest.query == (("currency", "EUR"),)
    assert rest.headers == (("Accept", "application/json"),)
    assert rest.response.expect_status == (200,)
    assert dict(rest.response.outputs) == {"balance": "body.balance"}
    assert rest.assertions == ({"that": "outputs.balance", "gt": 0},)
    assert isinstance(soap, SoapStep)
    assert (soap.alias, soap.operation, soap.wsdl) == ("ledger", "GetBalance", "../../steps/ledger.wsdl")
    # The WSDL is found relative to the flow file, wherever the command runs.
    assert soap.base_dir == CANONICAL.parent.resolve()
    assert (soap.base_dir / soap.wsdl).resolve() == (REPO / "steps" / "ledger.wsdl").resolve()
    assert dict(flow.outputs) == {"balance": "{{ steps.balance.outputs.balance }}"}
    assert flow.alias_names == ("bank", "ledger")


def test_every_sample_flow_loads() -> None:
    samples = sorted((REPO / "samples").rglob("*.json"))
    flows = [path for path in samples if looks_like_flow(path)]
    assert CANONICAL in flows
    for path in flows:
        assert load_flow(path).steps, path


# --- errors carry file, pointer and line --------------------------------------------------------


def test_unknown_field_names_file_pointer_line_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{\n  "name": "f",\n  "steps": [\n    {"id": "a", "type": "rest", "alias": "bank",\n'
                    '     "metod": "POST"}\n  ]\n}\n')
    with pytest.raises(SchemaError) as caught:
        load_flow(path)
    error = caught.value
    assert error.file == str(path)
    assert error.pointer == "/steps/0/metod"
    assert error.line == 5
    assert "did you mean 'method'" in error.message
    assert "flowrun schema flow" in (error.hint or "") or "method" in (error.hint or "")


@pytest.mark.parametrize(("text", "line", "words", "hint"), [
    ('{\n  "name": "f",\n  "steps": [],\n}\n', 3, "a comma after the last item, before '}' (column 14)",
     "remove that comma"),
    ('{"name": "f", "steps": [\n  {"id": "a"},\n  {"id": "b"},\n]}', 3, "a comma after the last item, before ']'",
     "remove that comma"),
    ("{\n  'name': 'f'\n}", 2, "a single quote (column 3)", "double quotes"),
    ('{\n  // the balance flow\n  "name": "f"\n}', 2, "a comment (column 3)", "no comments"),
    ('{\n  /* the balance flow */\n  "name": "f"\n}', 2, "a comment (column 3)", "no comments"),
], ids=["trailing-comma-object", "trailing-comma-array", "single-quotes", "line-comment", "block-comment"])
def test_json_mistakes_made_by_hand_are_named(tmp_path: Path, text: str, line: int, words: str, hint: str) -> None:
    path = tmp_path / "flow.json"
    path.write_text(text)
    with pytest.raises(DefinitionError) as caught:
        load_flow(path)
    assert caught.value.code == "definition.json_syntax"
    assert caught.value.message.startswith(f"invalid JSON: {words}")
    assert caught.value.line == line
    assert hint in (caught.value.hint or "")


def test_json_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{\n  "name": "f",\n  "steps": [\n    {"id": "a" "type": "rest"}\n  ]\n}\n')
    with pytest.raises(DefinitionError) as caught:
        load_flow(path)
    assert caught.value.line == 4
    assert caught.value.code == "definition.json_syntax"


@pytest.mark.parametrize(("step", "pointer", "words"), [
    ({"type": "rset"}, "/steps/0/type", "did you mean 'rest'"),
    ({"method": "FETCH"}, "/steps/0/method", "must be one of"),
    ({"body": {"json": 1, "text": "x"}}, "/steps/0/body", "exactly one of"),
    ({"assert": [{"that": "status", "equal": 200}]}, "/steps/0/assert/0/equal", "did you mean 'equals'"),
    ({"on_error": "ignore"}, "/steps/0/on_error", '"stop", "continue"'),
    ({"response": {"expect_status": [99]}}, "/steps/0/response/expect_status/0", "at least 100"),
])
def test_schema_errors_point_at_the_field(tmp_path: Path, step: dict[str, Any], pointer: str, words: str) -> None:
    path = write_json(tmp_path / "flow.json", minimal(**step))
    with pytest.raises(SchemaError) as caught:
        load_flow(path)
    assert caught.value.pointer == pointer
    assert words in caught.value.message
    assert caught.value.line is not None


def test_step_ids_must_be_names_pills_can_read(tmp_path: Path) -> None:
    data = minimal()
    data["steps"][0]["id"] = "get-balance"
    with pytest.raises(SchemaError, match="letters, digits and '_'"):
        load_flow(write_json(tmp_path / "flow.json", data))


def test_duplicate_step_ids_are_refused(tmp_path: Path) -> None:
    data = minimal()
    data["steps"].append(dict(data["steps"][0]))
    with pytest.raises(SchemaError, match="step id 'a' is used twice") as caught:
        load_flow(write_json(tmp_path / "flow.json", data))
    assert caught.value.pointer == "/steps/1"


def test_collect_mode_reports_every_problem(tmp_path: Path) -> None:
    data = {"name": "f", "steps": [
        {"id": "a", "type": "rest", "alias": "bank", "metod": "GET"},
        {"id": "b", "type": "soap", "alias": "ledger", "wsdl": "x.wsdl"},
        {"id": "c", "uses": "missing_definition"},
        {"id": "d", "type": "rest", "alias": "bank"},
    ]}
    loader = FlowLoader(collect=True)
    flow = loader.load(write_json(tmp_path / "flow.json", data))
    pointers = sorted(problem.pointer or "" for problem in loader.problems)
    assert pointers == ["/steps/0/metod", "/steps/1", "/steps/2/uses"]
    # The steps without problems are still built, for the checks that follow.
    assert flow is not None
    assert [entry.id for entry in flow.steps] == ["d"]


def test_input_default_must_match_its_type(tmp_path: Path) -> None:
    data = {**minimal(), "inputs": {"count": {"type": "integer", "default": "three"}}}
    with pytest.raises(SchemaError, match="not of the input's type integer") as caught:
        load_flow(write_json(tmp_path / "flow.json", data))
    assert caught.value.pointer == "/inputs/count"


def test_input_cannot_be_required_with_a_default() -> None:
    with pytest.raises(SchemaError, match="both required and have a default"):
        FlowInput(type="string", default="x", required=True)


def test_env_as_list_or_object(tmp_path: Path) -> None:
    listed = load_flow(write_json(tmp_path / "a.json", {**minimal(), "env": ["TOKEN"]}))
    assert listed.env["TOKEN"].required
    described = load_flow(write_json(tmp_path / "b.json", {
        **minimal(), "env": {"REGION": {"default": "eu", "description": "where"}}}))
    assert described.env["REGION"].default == "eu"
    assert not described.env["REGION"].required


def test_relative_paths_resolve_against_the_flow_file(tmp_path: Path) -> None:
    data = minimal(method="POST", body={"file": "data/payload.bin"}, response={"save_to": "out/answer.json"})
    flow = load_flow(write_json(tmp_path / "flows" / "flow.json", data))
    step = flow.steps[0].step
    assert isinstance(step, RestStep)
    assert step.body is not None
    assert step.body.value == (tmp_path / "flows" / "data" / "payload.bin").resolve()
    assert step.response.save_to == (tmp_path / "flows" / "out" / "answer.json").resolve()


# --- uses: reusable step definitions ------------------------------------------------------------

DEFINITION = {
    "description": "Reads a ledger balance",
    "type": "soap", "alias": "ledger", "wsdl": "ledger.wsdl", "operation": "GetBalance",
    "args": {"account": "{{ inputs.account }}"},
    "inputs": {"account": {"type": "string"}},
    "response": {"outputs": {"balance": "body.balance"}},
    "on_error": "continue",
}


def test_uses_finds_a_definition_next_to_the_flow(tmp_path: Path) -> None:
    write_json(tmp_path / "ledger_balance.json", DEFINITION)
    flow = load_flow(write_json(tmp_path / "flow.json", {"name": "f", "steps": [
        {"id": "ledger", "uses": "ledger_balance", "with": {"account": "7"}, "on_error": "stop",
         "assert": [{"that": "outputs.balance", "gt": 0}]}]}))
    entry = flow.steps[0]
    assert entry.uses is not None
    assert entry.uses.name == "ledger_balance"
    assert entry.uses.inputs["account"].is_required
    assert entry.id == entry.step.id == "ledger"
    assert entry.on_error == "stop"  # the entry wins over the definition
    assert dict(entry.arguments) == {"account": "7"}
    assert entry.assertions == ({"that": "outputs.balance", "gt": 0},)
    step = entry.step
    assert isinstance(step, SoapStep)
    assert step.base_dir == tmp_path.resolve()


def test_uses_searches_steps_dirs_and_resolves_paths_against_the_definition(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_json(tmp_path / "shared" / "ledger_balance.json", DEFINITION)
    flow_data = {"name": "f", "steps": [{"id": "ledger", "uses": "ledger_balance", "with": {"account": "7"}}]}
    path = write_json(tmp_path / "flows" / "flow.json", flow_data)
    with pytest.raises(UnknownReferenceError) as caught:
        load_flow(path)
    assert caught.value.pointer == "/steps/0/uses"
    assert "--steps" in (caught.value.hint or "")
    flow = load_flow(path, steps_dirs=[tmp_path / "shared"])
    step = flow.steps[0].step
    assert isinstance(step, SoapStep)
    assert step.base_dir == (tmp_path / "shared").resolve()
    assert step.on_error == "continue"  # from the definition, the entry does not say
    # ./steps of the working directory is on the search path too.
    write_json(tmp_path / "work" / "steps" / "ledger_balance.json", DEFINITION)
    monkeypatch.chdir(tmp_path / "work")
    assert load_flow(path).steps[0].uses is not None


def test_uses_suggests_a_close_name(tmp_path: Path) -> None:
    write_json(tmp_path / "ledger_balance.json", DEFINITION)
    path = write_json(tmp_path / "flow.json", {"name": "f", "steps": [{"id": "x", "uses": "ledger_balanse"}]})
    with pytest.raises(UnknownReferenceError, match="did you mean 'ledger_balance'"):
        load_flow(path)


def test_definition_schema_errors_point_into_the_definition(tmp_path: Path) -> None:
    broken = {**DEFINITION, "operaton": "GetBalance"}
    definition = write_json(tmp_path / "ledger_balance.json", broken)
    path = write_json(tmp_path / "flow.json", {"name": "f", "steps": [{"id": "x", "uses": "ledger_balance"}]})
    with pytest.raises(SchemaError) as caught:
        load_flow(path)
    assert caught.value.file == str(definition.resolve())
    assert caught.value.pointer == "/operaton"


# --- Python-built flows -------------------------------------------------------------------------


def test_flows_can_be_built_in_python() -> None:
    flow = Flow(name="built", inputs={"account": FlowInput(default="42")},
                steps=[RestStep(id="balance", alias="bank", path="/accounts/{{ inputs.account }}")],
                outputs={"status": "{{ steps.balance.status }}"})
    assert isinstance(flow.steps[0], FlowStep)
    assert flow.step("balance").kind == "rest"
    with pytest.raises(SchemaError, match="used twice"):
        Flow(name="dup", steps=[RestStep(id="a", alias="x"), RestStep(id="a", alias="x")])


# --- schemas ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["flow", "step"])
def test_shipped_schemas_are_valid_and_documented(name: str) -> None:
    document = schema(name)
    jsonschema.Draft202012Validator.check_schema(document)
    assert document["description"]
    for definition_name, definition in document["$defs"].items():
        for field, spec in definition.get("properties", {}).items():
            if field in ("$schema", "type", "id", "description") or "$ref" in spec:
                continue
            assert "description" in spec or "enum" in spec or "const" in spec, f"{definition_name}.{field}"


def test_flow_and_step_schemas_share_their_definitions() -> None:
    assert schema("flow")["$defs"] == schema("step")["$defs"]


def _mutations(document: Any) -> list[Any]:
    """Every document made by one small change: a key removed, added or retyped."""
    results: list[Any] = []

    def walk(node: Any, path: list[Any]) -> None:
        if isinstance(node, dict):
            for key in list(node):
                for change in ("drop", "null", "number", "string", "typo"):
                    mutated = copy.deepcopy(document)
                    target = mutated
                    for part in path:
                        target = target[part]
                    if change == "drop":
                        del target[key]
                    elif change == "typo":
                        target[key + "x"] = target.pop(key)
                    else:
                        target[key] = {"null": None, "number": 7, "string": "s"}[change]
                    results.append(mutated)
                walk(node[key], [*path, key])
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, [*path, index])

    walk(document, [])
    return results


def test_quick_acceptor_never_accepts_what_jsonschema_refuses() -> None:
    root = schema("flow")
    validator = jsonschema.Draft202012Validator(root)
    documents = [json.loads(path.read_text()) for path in sorted((REPO / "samples" / "flows").glob("*.json"))]
    checked = 0
    for document in documents:
        assert accepts(document, root, root)
        for mutated in _mutations(document):
            valid = validator.is_valid(mutated)
            assert accepts(mutated, root, root) == valid, json.dumps(mutated)[:300]
            checked += 1
    assert checked > 100
