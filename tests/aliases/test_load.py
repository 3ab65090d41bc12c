"""Loading alias directories: the canonical example as written, and every loader error with its place."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

import flowrun
from flowrun._errors import (
    DefinitionError,
    DuplicateNameError,
    JsonSyntaxError,
    SchemaError,
    UnknownReferenceError,
)
from flowrun._registry import Registry
from flowrun.testing import Pki
from tests._keytool import build_keytool_store
from tests.aliases._setup import KEYSTORE_PASSWORD, REPO, ca_common_names, canonical_tree, load, write_jks, write_pem

CANONICAL: list[dict[str, Any]] = json.loads((REPO / "aliases" / "bank.json").read_text(encoding="utf-8"))


def records(**changes: Any) -> list[dict[str, Any]]:
    """The canonical records with ``changes`` applied: ``{index: {field: value or DELETE}}``."""
    result = copy.deepcopy(CANONICAL)
    for index, fields in changes.items():
        record = result[int(index.removeprefix("r"))]
        for key, value in fields.items():
            target = record
            *parents, last = key.split(".")
            for part in parents:
                target = target[part]
            if value is DELETE:
                del target[last]
            else:
                target[last] = value
    return result


DELETE = object()


def failure(directory: Path, content: str | list[dict[str, Any]], filename: str = "bank.json") -> DefinitionError:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        Registry.load(directory)
    return caught.value


def line_of(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line containing ``needle``."""
    hits = [n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1) if needle in text]
    return hits[occurrence - 1]


def record_line(path: Path, needle: str) -> int:
    """The line of the ``{`` that opens the object holding ``needle`` (where a record starts)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    number = line_of(path, needle)
    while not lines[number - 1].rstrip().endswith("{"):
        number -= 1
    return number


# --- the canonical example ---------------------------------------------------------------------


def test_canonical_example_loads_and_resolves_as_written(tmp_path: Path, pki: Pki,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """bank.json copied unchanged; the keystore it names made by keytool (a real JKS, alias client)."""
    directory = canonical_tree(tmp_path)
    store = build_keytool_store(tmp_path / "work", storetype="JKS", alias="client", storepass="bank-pass-1")
    (tmp_path / "keystores").mkdir()
    store.path.replace(tmp_path / "keystores" / "client.jks")
    write_pem(tmp_path / "certs" / "bank-root.pem", pki.root)
    monkeypatch.setenv("BANK_KEYSTORE_PASSWORD", "bank-pass-1")
    monkeypatch.setenv("BANK_API_KEY", "k-123")

    registry = flowrun.Registry.load(directory)  # the Python API, no CLI involved
    resolved = registry.resolve("bank")

    assert resolved.base_url == "https://api.bank.example:8443/v2"
    assert (resolved.scheme, resolved.host, resolved.port, resolved.base_path) == (
        "https", "api.bank.example", 8443, "/v2")
    assert resolved.profile is not None and resolved.profile.name == "testMTLS"
    assert resolved.credential is not None
    assert (resolved.credential.type, resolved.credential.header) == ("api_key", "X-API-Key")
    assert resolved.retry_policy.strategy == "exponential"
    assert resolved.retry_policy.attempts == 4
    assert resolved.retry_policy.on_status == (429, 502, 503, 504)
    assert resolved.read_timeout_s == 30
    assert resolved.ssl_context is not None
    assert resolved.client_certificate == store.leaf
    assert ca_common_names(resolved.ssl_context) >= {"flowrun test root CA"}


def test_shipped_ledger_alias_shares_the_bank_profile(tmp_path: Path, pki: Pki,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    directory = canonical_tree(tmp_path)
    (directory / "ledger.json").write_text((REPO / "aliases" / "ledger.json").read_text(encoding="utf-8"))
    write_jks(tmp_path / "keystores" / "client.jks", pki.client)
    write_pem(tmp_path / "certs" / "bank-root.pem", pki.root)
    monkeypatch.setenv("BANK_KEYSTORE_PASSWORD", KEYSTORE_PASSWORD)
    registry = load(directory)

    bank, ledger = registry.resolve("bank"), registry.resolve("ledger")

    shipped = json.loads((REPO / "aliases" / "ledger.json").read_text(encoding="utf-8"))
    base_path = next(r for r in shipped if r["kind"] == "alias")["connection"]["base_path"]
    assert ledger.base_url == f"https://api.bank.example:8443{base_path}"
    assert ledger.profile == bank.profile
    assert ledger.ssl_context is bank.ssl_context
    assert ledger.credential is not None and ledger.credential.type == "none"
    assert ledger.client_cert_sha256 == pki.client.sha256


def test_a_file_may_hold_a_single_record(tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps({"kind": "credential", "name": "anon", "type": "none"}))
    registry = load(tmp_path)
    assert list(registry.records.credentials) == ["anon"]


def test_records_reference_each_other_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(CANONICAL[:4]))
    (tmp_path / "b.json").write_text(json.dumps(CANONICAL[4]))
    registry = load(tmp_path)
    assert registry.alias_names() == ["bank"]
    assert registry.records.files == (tmp_path / "a.json", tmp_path / "b.json")


def test_paths_are_relative_to_the_file_that_names_them(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bank.json").write_text(json.dumps(CANONICAL))
    registry = load(tmp_path)
    assert registry.records.keystores["bank_client"].file == (tmp_path / "keystores" / "client.jks")
    assert registry.records.trust_store_certs["bank_ca"].file == (tmp_path / "certs" / "bank-root.pem")


def test_literal_secret_loads_and_never_shows(tmp_path: Path) -> None:
    (tmp_path / "bank.json").write_text(json.dumps(records(r0={"password": "literal-Secret-9"})))
    registry = load(tmp_path)
    password = registry.records.keystores["bank_client"].password
    assert password is not None and password.is_literal
    assert password.reveal() == "literal-Secret-9"
    assert "literal-Secret-9" not in repr(registry.records)
    assert "literal-Secret-9" not in password.describe()


def test_missing_alias_directory_says_how_to_point_at_one(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="does not exist") as caught:
        Registry.load(tmp_path / "nowhere")
    assert "--aliases" in caught.value.hint


def test_registry_load_defaults_to_flowrun_aliases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bank.json").write_text(json.dumps(CANONICAL))
    monkeypatch.setenv("FLOWRUN_ALIASES", str(tmp_path))
    assert Registry.load().alias_names() == ["bank"]


# --- loader errors: class, file, JSON pointer, line --------------------------------------------


def test_bad_json_names_file_and_line(tmp_path: Path) -> None:
    text = '[\n  {"kind": "credential",\n   "name": "anon"\n   "type": "none"}\n]\n'
    error = failure(tmp_path, text)
    assert isinstance(error, JsonSyntaxError)
    assert error.file == str(tmp_path / "bank.json")
    assert error.line == 4
    assert "delimiter" in error.message


def test_unknown_field_with_did_you_mean(tmp_path: Path) -> None:
    content = records(r0={"password": DELETE, "passwrd": {"env": "BANK_KEYSTORE_PASSWORD"}})
    error = failure(tmp_path, content)
    assert type(error) is SchemaError
    assert error.file == str(tmp_path / "bank.json")
    assert error.pointer == "/0/passwrd"
    assert error.line == line_of(tmp_path / "bank.json", '"passwrd"')
    assert "unknown field 'passwrd'" in error.message
    assert "did you mean 'password'" in error.message


def test_unknown_field_in_a_connection(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r4={"connection.prot": "https"}))
    assert type(error) is SchemaError
    assert error.pointer == "/4/connection/prot"
    assert error.line == line_of(tmp_path / "bank.json", '"prot"')
    assert "did you mean 'port'" in error.message


def test_wrong_type(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r2={"port": "443"}))
    assert type(error) is SchemaError
    assert error.pointer == "/2/port"
    assert error.line == line_of(tmp_path / "bank.json", '"port": "443"')
    assert error.message == "'port' must be an integer, not a string"


def test_missing_field(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r0={"file": DELETE}))
    assert type(error) is SchemaError
    assert error.pointer == "/0"
    assert error.line == record_line(tmp_path / "bank.json", '"kind": "keystore"')
    assert error.message == "missing required field 'file'"


def test_unknown_kind_with_did_you_mean(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r1={"kind": "trust_cert"}))
    assert type(error) is SchemaError
    assert error.pointer == "/1/kind"
    assert "did you mean 'trust_store_cert'" in error.message


def test_duplicate_name_points_at_both_places(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(CANONICAL, indent=2))
    error = failure(tmp_path, [{"kind": "keystore", "name": "bank_client", "file": "x.jks"}], "b.json")
    assert isinstance(error, DuplicateNameError)
    assert error.file == str(tmp_path / "b.json")
    assert (error.pointer, error.line) == ("/0", 2)
    first_line = record_line(tmp_path / "a.json", '"kind": "keystore"')
    assert f"first at {tmp_path / 'a.json'}:{first_line}" in error.message


def test_same_name_in_different_kinds_is_fine(tmp_path: Path) -> None:
    content = [*CANONICAL, {"kind": "credential", "name": "bank", "type": "none"}]
    (tmp_path / "bank.json").write_text(json.dumps(content))
    assert set(load(tmp_path).records.credentials) == {"bank_key", "bank"}


@pytest.mark.parametrize(("change", "pointer", "needle", "expected"), [
    ({"r2": {"keystore": "bank_clint"}}, "/2/keystore", '"keystore": "bank_clint"', "keystore 'bank_clint'"),
    ({"r2": {"trust_store_certs": ["bank_ca", "bank_cb"]}}, "/2/trust_store_certs/1", '"bank_cb"',
     "trust store cert 'bank_cb'"),
    ({"r4": {"connection.protocol_profile": "testMTL"}}, "/4/connection/protocol_profile", '"testMTL"',
     "protocol profile 'testMTL'"),
    ({"r4": {"connection.credential": "bank_kye"}}, "/4/connection/credential", '"bank_kye"',
     "credential 'bank_kye'"),
])
def test_unknown_reference_with_did_you_mean(tmp_path: Path, change: dict[str, Any], pointer: str, needle: str,
                                             expected: str) -> None:
    error = failure(tmp_path, records(**change))
    assert isinstance(error, UnknownReferenceError)
    assert error.file == str(tmp_path / "bank.json")
    assert error.pointer == pointer
    assert error.line is not None
    # The line is the record's or the connection's: never past the referencing value.
    assert error.line <= line_of(tmp_path / "bank.json", needle)
    assert expected in error.message
    assert "did you mean" in error.message


def test_duplicate_json_key(tmp_path: Path) -> None:
    text = ('[\n  {"kind": "trust_store_cert",\n   "name": "a",\n   "file": "a.pem",\n'
            '   "name": "b"}\n]\n')
    error = failure(tmp_path, text)
    assert type(error) is SchemaError
    assert (error.pointer, error.line) == ("/0/name", 5)
    assert "'name' appears twice" in error.message


@pytest.mark.parametrize("name", ["http", "HTTPS"])
def test_protocol_profile_named_http(tmp_path: Path, name: str) -> None:
    content = records(r2={"name": name}, r4={"connection.protocol_profile": name})
    error = failure(tmp_path, content)
    assert type(error) is SchemaError
    assert error.pointer == "/2"
    assert error.line == record_line(tmp_path / "bank.json", '"kind": "protocol_profile"')
    assert f"cannot be named '{name}'" in error.message


def test_profile_without_mutual_authentication_is_refused(tmp_path: Path) -> None:
    """The silently-not-sent case: a profile named on a connection that does not use it."""
    error = failure(tmp_path, records(r4={"connection.mutual_authentication": False}))
    assert type(error) is SchemaError
    assert error.pointer == "/4/connection"
    assert error.line == line_of(tmp_path / "bank.json", '"connection"')
    assert "would not be sent" in error.message
    assert "mutual_authentication" in error.hint


def test_mutual_authentication_without_profile_is_refused(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r4={"connection.protocol_profile": DELETE}))
    assert type(error) is SchemaError
    assert error.pointer == "/4/connection"
    assert "no protocol_profile" in error.message


def test_url_and_url_builder_together_are_refused(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r4={"connection.url": "https://api.bank.example/v2"}))
    assert type(error) is SchemaError
    assert error.pointer == "/4/connection"


def test_connection_and_connections_together_are_refused(tmp_path: Path) -> None:
    content = records()
    content[4]["connections"] = {"prod": content[4]["connection"]}
    error = failure(tmp_path, content)
    assert type(error) is SchemaError
    assert error.pointer == "/4"
    assert "exactly one of 'connection', 'connections'" in error.message


def test_default_env_must_name_a_connection(tmp_path: Path) -> None:
    content = records()
    content[4]["connections"] = {"prod": content[4].pop("connection")}
    content[4]["default_env"] = "prd"
    error = failure(tmp_path, content)
    assert type(error) is SchemaError
    assert error.pointer == "/4"
    assert "default_env 'prd'" in error.message


def test_secret_with_two_sources_is_refused(tmp_path: Path) -> None:
    error = failure(tmp_path, records(r3={"key": {"env": "BANK_API_KEY", "file": "key.txt"}}))
    assert type(error) is SchemaError
    assert error.pointer == "/3/key"
    assert "must be a secret" in error.message


def test_a_file_that_is_neither_record_nor_list(tmp_path: Path) -> None:
    error = failure(tmp_path, '"bank"\n')
    assert type(error) is SchemaError
    assert (error.file, error.line) == (str(tmp_path / "bank.json"), 1)


def test_mutual_authentication_over_plain_http_is_refused(tmp_path: Path) -> None:
    """Over http there is no handshake, so the certificate would silently not be sent."""
    connection = {"url": "http://api.bank.example:8080/v2", "mutual_authentication": True,
                  "protocol_profile": "testMTLS"}
    error = failure(tmp_path, records(r4={"connection": connection}))
    assert type(error) is DefinitionError
    assert error.pointer == "/4/connection"
    assert "no client certificate is sent" in error.message


@pytest.mark.parametrize(("field", "value"), [("base_path", "/v2"), ("protocol", "http")])
def test_url_builder_fields_without_url_builder_are_refused(tmp_path: Path, field: str, value: str) -> None:
    """They would be ignored: requests would go elsewhere than the record says."""
    connection = {"url": "https://api.bank.example:8443", field: value}
    error = failure(tmp_path, records(r4={"connection": connection}))
    assert type(error) is SchemaError
    assert error.pointer == "/4/connection"
    assert f"'{field}' is a URL builder field" in error.message


def test_connections_need_named_environments(tmp_path: Path) -> None:
    content = records()
    content[4]["connections"] = {"": content[4].pop("connection")}
    error = failure(tmp_path, content)
    assert type(error) is SchemaError
    assert error.pointer == "/4/connections"


def test_a_file_without_kind_is_named_as_not_an_alias_record(tmp_path: Path) -> None:
    directory = tmp_path / "aliases"
    error = failure(directory, json.dumps({"name": "bank_ca", "format": "pem"}), filename="notes.json")
    assert isinstance(error, SchemaError)
    assert "not an alias record: no 'kind' field" in error.message
    assert "give exactly one of" not in str(error)
    assert error.file is not None and error.file.endswith("notes.json")
    in_list = failure(directory, [*CANONICAL, {"id": "balance", "type": "rest"}])
    assert "not an alias record: no 'kind' field (it looks like a flow or a flow step)" in in_list.message
    assert in_list.pointer == f"/{len(CANONICAL)}"


def test_a_flow_file_in_the_alias_directory_is_skipped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = canonical_tree(tmp_path)
    (directory / "balance.json").write_text((REPO / "samples" / "flows" / "balance.json").read_text())
    with caplog.at_level("WARNING", logger="flowrun"):
        registry = Registry.load(directory)
    assert registry.alias_names() == ["bank"]
    warned = [r for r in caplog.records if getattr(r, "code", None) == "aliases.flow_file"]
    assert len(warned) == 1
    assert "balance.json is a flow, not alias records: skipped" in warned[0].getMessage()
