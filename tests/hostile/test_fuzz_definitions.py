"""Hostile definitions: whatever a user (or an attacker with write access to a repo) puts into
alias files, flow files, step definitions and data pills, flowrun answers with one of its own
errors: never a KeyError, TypeError, RecursionError or a hang.

Property tests mutate the shipped samples (so that most documents pass the schema and reach the
record builders) and also throw arbitrary JSON at the loaders. Targeted tests cover deep nesting,
size limits, NaN/Infinity and duplicate keys, through the loaders and through the CLI.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrun._cli import main
from flowrun._errors import DataPillError, DefinitionError, FlowrunError, JsonSyntaxError, SchemaError
from flowrun._eval import check_pill, find_pills, is_single_pill, pill_roots, render, render_text, value_to_text
from flowrun._flow_checks import check_flow
from flowrun._load._aliases import records_from_document, schema_problems
from flowrun._load._flows import FlowLoader, looks_like_flow
from flowrun._load._json import MAX_FILE_BYTES, MAX_NESTING, parse_json, read_json_file
from flowrun._load._schema import schema
from flowrun._registry import Registry

REPO = Path(__file__).resolve().parents[2]
# FLOWRUN_FUZZ_EXAMPLES=5000 runs a longer search than CI does.
_EXAMPLES = int(os.environ.get("FLOWRUN_FUZZ_EXAMPLES", "250"))
_FUZZ = settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- what the fuzzers start from -----------------------------------------------------------------

_EXTRA_RECORDS: list[dict[str, Any]] = [
    {"kind": "keystore", "name": "pem_identity", "type": "pem", "file": "certs/client.pem",
     "key_file": "certs/client-key.pem", "password": {"file": "secrets/key-password"}},
    {"kind": "keystore", "name": "p12", "file": "/abs/client.p12", "password": "literal-password",
     "key_password": {"env": "KEY_PASSWORD"}, "key_alias": "Client"},
    {"kind": "trust_store_cert", "name": "inline",
     "pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"},
    {"kind": "trust_store_cert", "name": "der_root", "format": "der", "file": "~/certs/root.der"},
    {"kind": "protocol_profile", "name": "strict", "keystore": "p12", "trust_store_certs": ["inline", "der_root"],
     "use_system_trust": False, "tls_versions": ["1.3"], "port": 9443},
    {"kind": "credential", "name": "basic", "type": "basic", "username": "svc", "password": {"env": "BASIC_PW"}},
    {"kind": "credential", "name": "bearer", "type": "bearer", "token": {"file": "token.txt"}},
    {"kind": "credential", "name": "query_key", "type": "api_key", "query": "api_key", "key": {"env": "K"},
     "prefix": "Key "},
    {"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials", "token_url": "https://idp/token",
     "client_id": "id", "client_secret": {"env": "S"}, "scope": "a b", "client_auth": "body",
     "refresh_margin_s": 10},
    {"kind": "credential", "name": "wsse", "type": "wsse_username_token", "username": "u", "password": {"env": "W"}},
    {"kind": "alias", "name": "multi", "default_env": "test",
     "connections": {"test": {"url": "https://test.example/v1", "credential": "basic", "headers": {"X-A": "b"}},
                     "prod": {"url_builder": True, "host": "prod.example", "port": 8443, "base_path": "/v1",
                              "mutual_authentication": True, "protocol_profile": "strict",
                              "credential": "oauth", "connect_timeout_s": 2}},
     "retry_policy": {"strategy": "retry_after", "count": 2, "interval_s": 1, "max_interval_s": 5,
                      "max_elapsed_s": 30, "jitter": False, "on_status": [429], "on_transport_errors": False,
                      "retry_non_idempotent": True}},
    {"kind": "alias", "name": "plain", "connection": {"url": "http://127.0.0.1:8080", "credential": "query_key"}},
]

_EXTRA_FLOW: dict[str, Any] = {
    "name": "everything",
    "inputs": {"account": {"type": "string", "default": "42"}, "n": {"type": "integer", "required": True},
               "tags": {"type": "array", "default": []}},
    "env": {"REGION": {"default": "eu"}, "TOKEN": {"required": True, "description": "d"}},
    "steps": [
        {"id": "lookup", "uses": "lookup", "with": {"account": "{{ inputs.account }}"},
         "assert": [{"that": "outputs.balance", "gt": 0}], "on_error": "continue"},
        {"id": "upload", "type": "rest", "alias": "plain", "method": "PUT", "path": "/files/{{ inputs.account }}",
         "query": [["tag", "{{ inputs.tags }}"], ["n", "{{ inputs.n }}"]],
         "headers": {"X-Region": "{{ env.REGION }}"},
         "body": {"multipart": {"note": "x"},
                  "files": {"doc": "doc.txt", "other": {"path": "b.bin", "filename": "b", "content_type": "a/b"}}},
         "response": {"parse": "json", "save_to": "out/{{ inputs.n }}.json", "max_bytes": 1000,
                      "outputs": {"size": "length(body)"}},
         "retry_policy": {"strategy": "fixed", "count": 1}, "timeout_s": 5,
         "when": "steps.lookup.outputs.balance > `0`", "follow_redirects": True, "max_redirects": 2},
        {"id": "raw", "type": "soap", "connection": {"url": "https://soap.example/ws"},
         "envelope": "<Envelope><Body>{{ steps.upload.outputs.size }}</Body></Envelope>", "soap_version": "1.2",
         "soap_action": "urn:x", "headers": {"X-B": "c"},
         "response": {"namespaces": {"l": "urn:ledger"}, "outputs": {"v": "xpath://l:value/text()"}}},
        {"id": "form", "type": "rest", "alias": "plain", "method": "POST", "body": {"form": {"a": "{{ inputs.n }}"}}},
        {"id": "file", "type": "rest", "alias": "plain", "method": "POST",
         "body": {"file": "~/payload.bin", "content_type": "application/octet-stream"}},
    ],
    "outputs": {"size": "{{ steps.upload.outputs.size }}", "both": "{{ [inputs.n, env.REGION] }}"},
}

_DEFINITIONS: dict[str, dict[str, Any]] = {
    "lookup": {"name": "lookup", "type": "rest", "alias": "bank", "path": "/accounts/{{ inputs.account }}",
               "inputs": {"account": {"type": "string"}}, "env": ["REGION"],
               "response": {"outputs": {"balance": "body.balance"}}},
    "ledger_call": {"type": "soap", "alias": "ledger", "wsdl": "ledger.wsdl", "operation": "GetBalance",
                    "args": {"account": "{{ inputs.account }}"}, "soap_headers": {"h": "v"}, "service": "S",
                    "port": "P", "inputs": {"account": {"type": "string", "default": "1"}}},
}


def _json_files(*directories: Path) -> list[Path]:
    return sorted(p for d in directories for p in d.glob("*.json"))


def _alias_bases() -> list[Any]:
    shipped = [json.loads(p.read_text()) for p in _json_files(REPO / "aliases", REPO / "flowrun/_demo/files/aliases")]
    # The extra records cover every record shape the samples do not: weigh them like the samples.
    return [*shipped, *[_EXTRA_RECORDS] * len(shipped), _EXTRA_RECORDS[:3]]


def _flow_bases() -> list[Any]:
    shipped = [json.loads(p.read_text())
               for p in _json_files(REPO / "samples/flows", REPO / "flowrun/_demo/files/samples/flows")]
    return [*shipped, *[_EXTRA_FLOW] * len(shipped)]


ALIAS_BASES = _alias_bases()
FLOW_BASES = _flow_bases()


def _field_names() -> list[str]:
    names: set[str] = set()
    pending: list[Any] = [schema(name) for name in ("aliases", "flow", "step")]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return sorted(names)


FIELD_NAMES = _field_names()
_ODD_TEXT = [
    "", " ", "x", "é", "\u0000", "\ud7ff", "a" * 300, "~", "~nosuchuser/x", "../../../etc/passwd", "/", "\\",
    "{{", "}}", "{{ }}", "{{ inputs.account }}", "{{ steps.balance.outputs.balance }}", "{{ env.HOME }}",
    "{{ inputs.missing }}", "{{ steps }}", "{{ @ }}", "{{ `1` }}", "x{{ inputs.n }}y", "\\{{ literal }}",
    "{{ inputs.account | length(@) }}", "https://", "https://[::1", "https://h:99999/x", "http://h/",
    "https://user:pw@h/", "GET", "POST", "rest", "soap", "jks", "pkcs12", "pem", "api_key", "basic",
    "oauth2_client_credentials", "1.2", "1.3", "stop", "continue", "xpath://a", "xpath:", "body.x", "env",
    "bank", "ledger", "lookup", "testMTLS", "bank_client", "bank_ca", "bank_key",
]
_ODD_SCALARS = st.sampled_from([None, True, False, 0, -1, 1, 2, 443, 65535, 65536, 2**31, 2**64, -(2**63),
                                0.5, -0.0, 1e308, -1e308, 5e-324, 3600, 3601, *_ODD_TEXT, *FIELD_NAMES])
_ANY_JSON = st.recursive(
    _ODD_SCALARS | st.text(max_size=20) | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=4),
    max_leaves=15,
)


_HOSTS = ["h", "127.0.0.1", "[::1]", "[::1", "[zz]", "", "user:pw@h", "h.", "exa mple", "é.example", "h%00",
          "a" * 300, "localhost", "::1", "xn--"]
_URLS = st.builds(
    "{}://{}{}{}".format,
    st.sampled_from(["https", "http", "HTTPS", "Http", "ftp", ""]),
    st.sampled_from(_HOSTS),
    st.sampled_from(["", ":0", ":1", ":443", ":65535", ":65536", ":99999", ":-1", ":abc", ":"]),
    st.sampled_from(["", "/", "/v2", "/a b", "/{{ inputs.account }}", "?q=1", "#f", "/%zz", "/\u00e9"]),
)
_PATHS = st.sampled_from(["x.json", "../x", "/etc/passwd", "/", ".", "", "~", "~/x", "~nosuchuser/x", "a\u0000b",
                          "lookup", "ledger_call", "lookup.json", "steps/none.json", "a" * 300, "/dev/zero",
                          "file:///etc/hosts", "https://h/x.wsdl"])
_NAMES = st.sampled_from(["bank", "ledger", "partner_oauth", "plain", "multi", "testMTLS", "strict", "bank_client",
                          "bank_ca", "bank_key", "p12", "inline", "oauth", "basic", "balance", "lookup", "x", "",
                          "a b", "http", "HTTPS", "test", "prod"])
# Values typical of a field, so that a mutation often stays schema-valid and reaches the builders.
_BY_FIELD: dict[str, st.SearchStrategy[Any]] = {
    **dict.fromkeys(["url", "token_url"], _URLS),
    "host": st.sampled_from(_HOSTS),
    **dict.fromkeys(["file", "key_file", "wsdl", "save_to", "uses", "path"], _PATHS),
    **dict.fromkeys(["name", "alias", "keystore", "credential", "protocol_profile", "default_env", "key_alias",
                     "id", "operation", "service", "port"], _NAMES | st.integers(-1, 70000)),
    **dict.fromkeys(["timeout_s", "connect_timeout_s", "interval_s", "max_interval_s", "max_elapsed_s",
                     "refresh_margin_s", "count", "max_bytes", "max_redirects"],
                    st.sampled_from([0, -1, 0.001, 1e308, 3600, 3601, 10**6, 2**64])),
    "base_path": st.sampled_from(["", "/", "v2", "/v2/", "//", "/a b", "/{{ inputs.x }}", "?x", "%zz"]),
}


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.sampled_from([0, -1, 1, 65535, 65536, 2**31, 2**64, -(2**63)]) | st.integers()
    if isinstance(value, float):
        return st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e308, 5e-324])
    if isinstance(value, str):
        return st.sampled_from(_ODD_TEXT) | st.text(max_size=12)
    if isinstance(value, list):
        return st.permutations(value) | st.just(value[:-1]) | st.just(value + value)
    return st.just(value)


def _places(document: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in ``document``, breadth first, with (None, None) for the root."""
    places: list[tuple[Any, Any]] = [(None, None)]
    pending = [document]
    while pending:
        node = pending.pop(0)
        if isinstance(node, dict):
            places.extend((node, key) for key in node)
            pending.extend(node.values())
        elif isinstance(node, list):
            places.extend((node, index) for index in range(len(node)))
            pending.extend(node)
    return places


@st.composite
def mutated(draw: st.DrawFn, bases: list[Any]) -> Any:
    """A base document with one to three edits, mostly of fields whose values matter: a value
    replaced, a field removed or added, an item duplicated, a value wrapped in a list."""
    document = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(1, 3))):
        places = _places(document)
        known = [(c, k) for c, k in places if isinstance(k, str) and k in _BY_FIELD]
        targeted = known and draw(st.integers(0, 3)) > 0
        container, key = draw(st.sampled_from(known if targeted else places))
        current = document if container is None else container[key]
        action = draw(st.sampled_from(["same_type", "same_type", "same_type", "replace", "delete", "add",
                                       "duplicate", "wrap", "stringify"]))
        if isinstance(key, str) and key in _BY_FIELD and draw(st.integers(0, 3)) > 0:
            new: Any = draw(_BY_FIELD[key])
        elif action == "same_type":
            # Most often still schema-valid: these reach the record builders and the checks after them.
            new = draw(_same_type(current))
        elif action == "replace":
            new = draw(_ANY_JSON)
        elif action == "delete" and container is not None:
            del container[key]
            continue
        elif action == "add" and isinstance(current, dict):
            current[draw(st.sampled_from(FIELD_NAMES) | st.text(max_size=6))] = draw(_ANY_JSON)
            continue
        elif action == "duplicate" and isinstance(current, list) and current:
            current.append(copy.deepcopy(draw(st.sampled_from(current))))
            continue
        elif action == "wrap":
            new = [current]
        else:
            new = json.dumps(current)
        if container is None:
            document = new
        else:
            container[key] = new
    return document


# --- alias records ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A flow directory with the step definitions that fuzzed flows use."""
    directory = tmp_path_factory.mktemp("fuzz")
    for name, definition in _DEFINITIONS.items():
        (directory / f"{name}.json").write_text(json.dumps(definition))
    return directory


_counter = itertools.count()


def _document(directory: Path, data: Any, name: str = "doc") -> Path:
    path = directory / f"{name}-{next(_counter)}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def _exercise_aliases(path: Path) -> None:
    """Everything that reads alias records offline, as a user would reach it."""
    document = read_json_file(path)
    problems = schema_problems(document)
    try:
        records = records_from_document(document)
    except FlowrunError:
        return
    assert not problems, "schema_problems and records_from_document disagree"
    assert all(record.name for record in records)
    registry = Registry.load(path)
    for name in registry.alias_names():
        alias = registry.alias(name)
        for env in [None, *alias.environments]:
            with contextlib.suppress(FlowrunError):
                registry.resolve(name, env)
    for command in (["alias", "list"], *(["alias", "show", n] for n in registry.alias_names()[:2]),
                    ["certs", "check"]):
        _cli_must_not_crash([*command, "--aliases", str(path), "--json"])


def _cli_must_not_crash(argv: list[str]) -> int:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    assert code in (0, 1, 2), (argv, code)
    assert "Traceback" not in err.getvalue()
    return code


@_FUZZ
@given(data=mutated(ALIAS_BASES))
def test_mutated_alias_files_give_only_flowrun_errors(fuzz_dir: Path, data: Any) -> None:
    with contextlib.suppress(FlowrunError):
        _exercise_aliases(_document(fuzz_dir, data, "aliases"))


@_FUZZ
@given(data=_ANY_JSON)
def test_arbitrary_json_as_alias_file_gives_only_flowrun_errors(fuzz_dir: Path, data: Any) -> None:
    with contextlib.suppress(FlowrunError):
        _exercise_aliases(_document(fuzz_dir, data, "aliases"))


# --- flows and step definitions ----------------------------------------------------------------


def _exercise_flow(path: Path) -> None:
    collected = FlowLoader(collect=True)
    flow = collected.load(path)
    assert all(isinstance(problem, FlowrunError) for problem in collected.problems)
    if flow is not None:
        for problem in check_flow(flow):
            assert isinstance(problem.error, FlowrunError)
    strict = FlowLoader().load(path)
    assert (strict is not None) == (flow is not None and not collected.problems)


@_FUZZ
@given(data=mutated(FLOW_BASES))
def test_mutated_flows_give_only_flowrun_errors(fuzz_dir: Path, data: Any) -> None:
    with contextlib.suppress(FlowrunError):
        _exercise_flow(_document(fuzz_dir, data, "flow"))


@_FUZZ
@given(data=_ANY_JSON)
def test_arbitrary_json_as_flow_gives_only_flowrun_errors(fuzz_dir: Path, data: Any) -> None:
    with contextlib.suppress(FlowrunError):
        _exercise_flow(_document(fuzz_dir, data, "flow"))


@_FUZZ
@given(data=mutated(list(_DEFINITIONS.values())), name=st.sampled_from(["lookup", "ledger_call"]))
def test_mutated_step_definitions_give_only_flowrun_errors(tmp_path_factory: pytest.TempPathFactory,
                                                             data: Any, name: str) -> None:
    directory = tmp_path_factory.mktemp("definitions", numbered=True)
    (directory / f"{name}.json").write_text(json.dumps(data))
    flow = {"name": "f", "steps": [{"id": "s", "uses": name, "with": {"account": "7"}}]}
    with contextlib.suppress(FlowrunError):
        _exercise_flow(_document(directory, flow, "flow"))


_JSON_NOISE = st.sampled_from([*'{}[]:,"\\ \n0123456789.eE-+tfnaul', "NaN", "Infinity", "\ufeff", "\x00",
                               "true", "null", '"x":', "//"])


@_FUZZ
@given(base=st.sampled_from(_json_files(REPO / "samples/flows", REPO / "aliases")), data=st.data())
def test_text_edits_of_sample_files_give_only_flowrun_errors(fuzz_dir: Path, base: Path,
                                                             data: st.DataObject) -> None:
    text = base.read_text()
    for _ in range(data.draw(st.integers(1, 3))):
        start = data.draw(st.integers(0, len(text)))
        end = data.draw(st.integers(start, min(len(text), start + 40)))
        text = text[:start] + "".join(data.draw(st.lists(_JSON_NOISE, max_size=4))) + text[end:]
    path = fuzz_dir / f"edited-{next(_counter)}.json"
    path.write_text(text)
    with contextlib.suppress(FlowrunError):
        if "aliases" in base.parts:
            _exercise_aliases(path)
        else:
            _exercise_flow(path)


# --- data pills --------------------------------------------------------------------------------------

_PILL_TOKENS = st.sampled_from([
    "inputs", "steps", "env", "a", "b", "balance", "outputs", "body", ".", "[0]", "[-1]", "[*]", "[]", "[?", "]",
    "[1:2]", "|", "||", "&&", "!", "(", ")", "{", "}", "a:", ",", "`1`", "`\"x\"`", "`[1,2]`", "'t'", "@", "&",
    "==", "<", ">=", "length(", "avg(", "sum(", "max(", "min_by(", "sort_by(", "to_number(", "to_string(",
    "ceil(", "floor(", "abs(", "join(", "contains(", "keys(", "merge(", "not_null(", "reverse(", "type(",
    "starts_with(", "map(", "values(", " ", '"', "'", "`", "\\", "*",
])
_EXPRESSIONS = st.lists(_PILL_TOKENS | st.text(max_size=3), min_size=1, max_size=12).map("".join)
_TEMPLATES = st.lists(
    _EXPRESSIONS.map(lambda e: "{{ " + e + " }}") | st.sampled_from(["{{", "}}", "\\{{", "x", " ", "{", "}"])
    | st.text(max_size=4),
    max_size=5,
).map("".join)
_CONTEXT_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([10**400, -(10**400), 1e308, 2**63])
    | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(["a", "b", "balance"])
                                                                      | st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)


def _context(value: Any) -> dict[str, Any]:
    return {"inputs": {"a": value, "b": [value, 1e308, 10**400]},
            "steps": {"balance": {"status": 200, "headers": {}, "body": value, "outputs": {"balance": value}}},
            "env": {"a": "x"}}


@settings(max_examples=2 * _EXAMPLES, deadline=None)
@given(expression=_EXPRESSIONS, value=_CONTEXT_VALUES)
def test_any_expression_is_checked_and_evaluated_with_flowrun_errors_only(expression: str, value: Any) -> None:
    with contextlib.suppress(DataPillError):
        check_pill(expression)
    with contextlib.suppress(DataPillError):
        pill_roots(expression)
    with contextlib.suppress(DataPillError):
        render("{{ " + expression + " }}", _context(value))


@settings(max_examples=2 * _EXAMPLES, deadline=None)
@given(template=_TEMPLATES | st.text(), value=_CONTEXT_VALUES, shape=_ANY_JSON)
def test_any_template_renders_with_flowrun_errors_only(template: str, value: Any, shape: Any) -> None:
    context = _context(value)
    for candidate in (template, [template, shape], {"k": template, "s": shape}):
        with contextlib.suppress(DataPillError):
            for _, expression in find_pills(candidate):
                check_pill(expression)
        with contextlib.suppress(DataPillError):
            render(candidate, context)
    single = is_single_pill(template)
    with contextlib.suppress(DataPillError):
        text = render_text(template, context, escape=lambda v: "<" + value_to_text(v) + ">")
        assert isinstance(text, str)
        if single:
            assert text.startswith("<") and text.endswith(">")


@pytest.mark.parametrize("expression", [
    " || ".join(["inputs.a"] * 3000),
    " | ".join(["inputs"] * 3000),
    "(" * 3000 + "inputs" + ")" * 3000,
    "!" * 5000 + "inputs",
    "abs(" * 1000 + "inputs.a" + ")" * 1000,
    "[" * 2000 + "inputs" + "]" * 2000,
    "{a:" * 1000 + "inputs" + "}" * 1000,
    "inputs" + ".a" * 5000,
    "inputs" + "[0]" * 5000,
    "inputs[?" * 500 + "a" + "]" * 500,
])
def test_deeply_nested_expressions_are_refused_cleanly(expression: str) -> None:
    context = _context(1)
    with pytest.raises(DataPillError) as caught:
        check_pill(expression)
        pill_roots(expression)
        render("{{ " + expression + " }}", context)
        raise DataPillError("accepted")  # every case above is either invalid or names a missing value
    assert len(str(caught.value)) < 600  # the message quotes the expression cut short


@pytest.mark.parametrize(("expression", "value"), [
    ("avg(inputs.a)", [10**400]),        # OverflowError inside JMESPath
    ("ceil(to_number('1e999'))", None),  # infinity to integer
    ("floor(to_number('-inf'))", None),
])
def test_arithmetic_overflow_in_a_pill_is_a_data_pill_error(expression: str, value: Any) -> None:
    with pytest.raises(DataPillError, match="cannot be evaluated"):
        render("{{ " + expression + " }}", {"inputs": {"a": value}, "steps": {}, "env": {}})


def test_values_nested_beyond_the_recursion_limit_are_data_pill_errors() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(DataPillError, match="nested too deeply"):
        render(deep, {})
    with pytest.raises(DataPillError, match="nested too deeply"):
        find_pills(deep)
    with pytest.raises(DataPillError, match="nested too deeply"):
        render("x{{ inputs.deep }}", {"inputs": {"deep": deep}})
    assert render("{{ inputs.deep }}", {"inputs": {"deep": deep}}) is deep  # one pill keeps the value as is


# --- deep nesting, size, NaN, duplicates -----------------------------------------------------------


def _deep(levels: int, *, objects: bool = False) -> str:
    """``levels`` nested arrays (or objects), starting on line 2."""
    if objects:
        return "\n" + '{"a":' * levels + "1" + "}" * levels + "\n"
    return "\n" + "[" * levels + "]" * levels + "\n"


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 500, 990, 10_000, 200_000])
@pytest.mark.parametrize("objects", [False, True])
def test_deeply_nested_json_is_a_json_syntax_error_with_a_line(tmp_path: Path, levels: int, objects: bool) -> None:
    text = _deep(levels, objects=objects)
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(JsonSyntaxError, match=f"nested more than {MAX_NESTING} levels") as caught:
        read_json_file(path)
    assert caught.value.line == 2
    assert not looks_like_flow(path)


def test_nesting_at_the_limit_loads(tmp_path: Path) -> None:
    inner: Any = 1
    for _ in range(MAX_NESTING - 4):
        inner = {"a": inner}
    flow = {"name": "f", "steps": [{"id": "s", "type": "rest", "connection": {"url": "https://h"},
                                    "method": "POST", "body": {"json": inner}}]}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    loaded = FlowLoader().load(path)
    assert loaded is not None
    assert loaded.steps[0].step.body is not None


def test_deeply_nested_files_through_the_cli_exit_2_without_traceback(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(_deep(10_000))
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    (aliases / "deep.json").write_text(_deep(5_000, objects=True))
    for argv in (["run", str(flow)], ["validate", str(flow)], ["test", str(tmp_path)],
                 ["alias", "list", "--aliases", str(aliases)], ["certs", "check", "--aliases", str(aliases)]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert "nested more than" in captured.out + captured.err or argv[0] == "test", (argv, captured)


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.json"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES * 4)  # sparse: takes no disk space
    with pytest.raises(DefinitionError, match="larger than") as caught:
        read_json_file(path)
    assert caught.value.file == str(path)
    assert not looks_like_flow(path)


def test_an_endless_device_is_refused() -> None:
    with pytest.raises(DefinitionError, match="device"):
        read_json_file(Path("/dev/zero"))


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "flow.json"
    os.mkfifo(fifo)  # nobody ever writes: opening it for a blocking read would hang forever
    with pytest.raises(DefinitionError, match=r"found a FIFO \(named pipe\)"):
        read_json_file(fifo)
    assert not looks_like_flow(fifo)


def test_a_big_but_legal_flow_loads(tmp_path: Path) -> None:
    items = [{"n": i, "text": "x" * 40} for i in range(150_000)]  # about 8 MB
    flow = {"name": "big", "steps": [{"id": "s", "type": "rest", "connection": {"url": "https://h"},
                                      "method": "POST", "body": {"json": {"items": items}}}]}
    path = tmp_path / "big.json"
    path.write_text(json.dumps(flow))
    assert MAX_FILE_BYTES // 4 < path.stat().st_size < MAX_FILE_BYTES
    loaded = FlowLoader().load(path)
    assert loaded is not None
    body = loaded.steps[0].step.body
    assert body is not None and len(body.value["items"]) == 150_000


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_their_line(tmp_path: Path, constant: str) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{"name": "NaN Infinity",\n "steps": [],\n "outputs": {"x": ' + constant + "}}")
    with pytest.raises(JsonSyntaxError, match=f"{constant} is not a JSON number") as caught:
        read_json_file(path)
    assert caught.value.line == 3
    assert "NaN" in (caught.value.hint or "")


def test_a_huge_integer_is_a_json_syntax_error() -> None:
    with pytest.raises(JsonSyntaxError, match="invalid JSON"):
        parse_json('{"a": ' + "9" * 5000 + "}")


def test_duplicate_keys_are_reported_with_pointer_and_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{"name": "f",\n "steps": [\n  {"id": "a", "type": "rest",\n   "alias": "x",\n   "alias": "y"}]}')
    with pytest.raises(SchemaError, match="key 'alias' appears twice") as caught:
        read_json_file(path)
    assert caught.value.line == 5
    assert caught.value.pointer == "/steps/0/alias"


def test_duplicate_keys_in_an_alias_file_through_validate(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    (aliases / "a.json").write_text('[\n {"kind": "credential", "name": "c", "type": "none",\n  "name": "d"}]')
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [{"id": "s", "type": "rest", "alias": "c"}]}))
    assert main(["validate", str(flow), "--aliases", str(aliases)]) == 2
    err = capsys.readouterr().out
    assert f"{aliases / 'a.json'}:3 at /0/name: key 'name' appears twice" in err


def test_validate_reports_every_schema_error_of_an_alias_file(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    aliases = tmp_path / "aliases"
    aliases.mkdir()
    (aliases / "a.json").write_text(
        '[\n {"kind": "keystore", "name": "k", "file": "x.jks", "passwrd": {"env": "X"}, "typo": 1},\n'
        ' {"kind": "credential", "name": "c", "type": "basic", "username": 5},\n'
        ' {"kind": "alias", "name": "bank", "connection": {"url": "https://x", "credentail": "c"}}]')
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [{"id": "s", "type": "rest", "alias": "bank",
                                                        "methd": "GET", "pathh": "/x"}]}))
    assert main(["validate", str(flow), "--aliases", str(aliases), "--json"]) == 2
    problems = json.loads(capsys.readouterr().out)["problems"]
    where = {(p["file"].rsplit("/", 1)[-1], p["line"], p["pointer"]) for p in problems}
    assert where == {
        ("a.json", 2, "/0/passwrd"), ("a.json", 2, "/0/typo"), ("a.json", 3, "/1/username"), ("a.json", 3, "/1"),
        ("a.json", 4, "/2/connection/credentail"), ("flow.json", 1, "/steps/0/methd"),
        ("flow.json", 1, "/steps/0/pathh"),
    }
    assert all(p["hint"] for p in problems)


def test_schema_messages_never_quote_a_whole_record(tmp_path: Path) -> None:
    secret = "literal-secret-value-123"
    record = {"kind": "trust_store_cert", "name": "t", "file": "a.pem", "pem": secret}  # both: oneOf fails
    problems = schema_problems(parse_json(json.dumps([record, {"kind": "credential", "name": "c",
                                                               "type": "basic", "password": secret,
                                                               "username": ["x" * 500]}])))
    assert problems
    for problem in problems:
        assert secret not in str(problem)
        assert len(str(problem)) < 400


@pytest.mark.parametrize("value", ["~nosuchuser-flowrun/x.jks", "bad\u0000name.jks"])
def test_unresolvable_paths_in_records_are_schema_errors(tmp_path: Path, value: str) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"kind": "keystore", "name": "k", "file": "ok.jks",
                                 "password": {"file": value}}]))
    with pytest.raises(SchemaError, match="path") as caught:
        records_from_document(read_json_file(path))
    assert caught.value.pointer == "/0/password/file"
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [{"id": "s", "type": "rest", "alias": "a",
                                                        "response": {"save_to": value}}]}))
    with pytest.raises(SchemaError, match="path") as flow_error:
        FlowLoader().load(flow)
    assert flow_error.value.pointer == "/steps/0"


def test_symlink_loops_in_paths_are_schema_errors(tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(tmp_path / "loop")
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"kind": "keystore", "name": "k", "file": "loop/x.jks"}]))
    with pytest.raises(SchemaError, match="cannot be resolved"):
        records_from_document(read_json_file(path))
