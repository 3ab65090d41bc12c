"""OpenAPI documents -> step definitions flows can `uses`, aliases from servers and security
schemes; the OpenAPI Initiative's own examples validate."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from flowrun.importers import import_openapi
from flowrun.testing import PartnerServer, Pki, make_pki
from tests.importers.conftest import CORPUS, read, run_cli

SPECS = sorted((CORPUS / "openapi").iterdir())


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_corpus_document_imports_and_validates(spec: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, _, stderr = run_cli(capsys, "import", "openapi", spec, "--out", tmp_path)
    assert code == 0, stderr
    code, stdout, stderr = run_cli(capsys, "validate", tmp_path / "flows", "--aliases", tmp_path / "aliases")
    assert code == 0, stdout + stderr


def test_petstore_operations_become_definitions(tmp_path: Path) -> None:
    result = import_openapi(CORPUS / "openapi" / "oai-petstore-expanded.json")
    find = result.files["steps/swagger_petstore/find_pet_by_id.json"]
    assert find["method"] == "GET" and find["path"] == "/pets/{{ inputs.id }}"
    assert find["inputs"]["id"]["type"] == "integer"
    find_pets = result.files["steps/swagger_petstore/findpets.json"]
    assert find_pets["query"] == {"tags": "{{ inputs.tags }}", "limit": "{{ inputs.limit }}"}
    assert find_pets["inputs"]["limit"]["required"] is False
    add = result.files["steps/swagger_petstore/addpet.json"]
    assert add["body"] == {"json": "{{ inputs.body }}"}
    assert add["inputs"]["body"]["default"] == {"name": "", "tag": ""}  # a skeleton from the schema
    flow = result.files["flows/swagger_petstore/find_pet_by_id.json"]
    assert flow["steps"] == [{"id": "find_pet_by_id", "uses": "../../steps/swagger_petstore/find_pet_by_id.json",
                              "with": {"id": "{{ inputs.id }}"}}]
    alias = result.files["aliases/petstore.json"]
    assert alias == [{"kind": "alias", "name": "petstore",
                      "connection": {"url": "http://petstore.swagger.io/api"}}]


def test_server_variables_and_examples() -> None:
    result = import_openapi(CORPUS / "openapi" / "oai-uspto.json")
    assert result.files["aliases/developer.json"][0]["connection"]["url"] == "https://developer.uspto.gov/ds-api"
    search = result.files["steps/uspto_data_set_api/perform_search.json"]
    assert search["body"] == {"form": {"criteria": "{{ inputs.criteria }}", "start": "{{ inputs.start }}",
                                       "rows": "{{ inputs.rows }}"}}
    assert search["inputs"]["criteria"]["default"] == "*:*"
    assert search["inputs"]["version"]["default"] == "v1"


SECURE: dict[str, Any] = {
    "openapi": "3.1.0", "info": {"title": "Bank API", "version": "1"},
    "servers": [{"url": "https://{host}:8443/v2", "variables": {"host": {"default": "api.bank.example"}}}],
    "security": [{"mtls": [], "key": []}],
    "components": {"securitySchemes": {
        "mtls": {"type": "mutualTLS"},
        "key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "token": {"type": "http", "scheme": "bearer"},
        "oauth": {"type": "oauth2", "flows": {"clientCredentials": {"tokenUrl": "https://auth.bank.example/token",
                                                                   "scopes": {"read": "r", "write": "w"}}}},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "sid"}}},
    "paths": {
        "/accounts/{account}": {"parameters": [{"name": "account", "in": "path", "required": True,
                                                "schema": {"type": "string"}}],
                                "get": {"operationId": "getAccount",
                                        "parameters": [{"name": "X-Trace", "in": "header",
                                                        "schema": {"type": "string", "default": "t"}}]}},
        "/payments": {"post": {"operationId": "pay", "security": [{"oauth": ["write"]}],
                               "requestBody": {"content": {"application/json": {"example": {"amount": 5}}}}}},
        "/me": {"get": {"operationId": "me", "security": [{"token": []}]}},
        "/session": {"get": {"operationId": "session", "security": [{"cookie": []}]}}},
}


def test_security_schemes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bank.json"
    spec.write_text(json.dumps(SECURE))
    code, stdout, stderr = run_cli(capsys, "import", "openapi", spec, "--out", tmp_path / "o")
    assert code == 0, stderr
    records = {r["kind"]: r for r in read(tmp_path / "o" / "aliases" / "api.json")}
    assert records["credential"] == {"kind": "credential", "name": "api", "type": "api_key", "header": "X-API-Key",
                                     "key": {"env": "BANK_API_KEY_API_KEY"}}
    assert records["keystore"]["type"] == "pkcs12"
    assert records["protocol_profile"]["keystore"] == "api"
    assert records["alias"]["connection"] == {"url": "https://api.bank.example:8443/v2", "credential": "api",
                                              "mutual_authentication": True, "protocol_profile": "api_mtls"}
    assert "is mutual TLS: put the client keystore (PKCS12) at keystores/mtls.p12" in stdout
    oauth = read(tmp_path / "o" / "aliases" / "api_oauth.json")[0]
    assert oauth["type"] == "oauth2_client_credentials" and oauth["scope"] == "read write"
    assert oauth["client_secret"] == {"env": "BANK_API_OAUTH_CLIENT_SECRET"}
    assert read(tmp_path / "o" / "aliases" / "api_token.json")[0]["type"] == "bearer"
    assert "'cookie' (apiKey, cookie) has no flowrun credential" in stdout
    account = read(tmp_path / "o" / "steps" / "bank_api" / "getaccount.json")
    assert account["alias"] == "api" and account["headers"] == {"X-Trace": "{{ inputs.X_Trace }}"}
    assert read(tmp_path / "o" / "steps" / "bank_api" / "pay.json")["alias"] == "api_oauth"
    # What is left to the user is exactly the keystore the note names: validate says so, and only that.
    code, stdout, _ = run_cli(capsys, "validate", tmp_path / "o" / "flows", "--aliases", tmp_path / "o" / "aliases")
    errors = [line for line in stdout.splitlines() if line.startswith("error[")]
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error[keystore.not_found]")
    assert "keystores/mtls.p12" in errors[0]


def test_imported_operation_runs_against_the_partner(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pki: Pki = make_pki()
    files = pki.write(tmp_path / "pki", keystore_password="pw-1234")
    with PartnerServer(pki) as partner:
        spec = {"openapi": "3.0.3", "info": {"title": "partner", "version": "1"},
                "servers": [{"url": partner.url}], "security": [{"mtls": []}],
                "components": {"securitySchemes": {"mtls": {"type": "mutualTLS"}}},
                "paths": {"/accounts/{id}": {"get": {"operationId": "balance", "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "currency", "in": "query", "schema": {"type": "string", "enum": ["EUR", "USD"]}}]}}}}
        source = tmp_path / "partner.json"
        source.write_text(json.dumps(spec))
        out = tmp_path / "o"
        assert run_cli(capsys, "import", "openapi", source, "--out", out)[0] == 0
        # The user fills in the keystore, as the import's note asks.
        (out / "keystores").mkdir()
        (out / "keystores" / "mtls.p12").write_bytes(files.client.pkcs12.read_bytes())
        alias_file = out / "aliases" / "localhost.json"
        records = read(alias_file)
        records.insert(0, {"kind": "trust_store_cert", "name": "partner_root", "file": str(files.root_pem)})
        next(r for r in records if r["kind"] == "protocol_profile")["trust_store_certs"] = ["partner_root"]
        alias_file.write_text(json.dumps(records))
        monkeypatch.setenv("PARTNER_MTLS_KEYSTORE_PASSWORD", "pw-1234")
        code, stdout, stderr = run_cli(capsys, "run", out / "flows" / "partner" / "balance.json", "--aliases",
                                       out / "aliases", "-i", "id=42", "-i", "currency=USD", "--json")
        assert code == 0, stdout + stderr
        assert json.loads(stdout)["steps"][0]["tls"]["client_cert_sha256"]
        assert partner.requests[-1].path == "/accounts/42" and ("currency", "USD") in partner.requests[-1].query


def test_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    code, _, stderr = run_cli(capsys, "import", "openapi", spec, "--out", tmp_path / "o")
    assert code == 2 and "error[import.unsupported]" in stderr and "at /swagger" in stderr
    spec.write_text(json.dumps({"openapi": "3.0.0", "info": {"title": "t"}, "paths": {
        "/a": {"get": {"parameters": [{"$ref": "#/components/parameters/nope"}]}}}}))
    code, _, stderr = run_cli(capsys, "import", "openapi", spec, "--out", tmp_path / "o")
    assert code == 2 and "at /paths/~1a/get/parameters/0" in stderr and "names nothing" in stderr
    monkeypatch.setitem(sys.modules, "yaml", None)  # PyYAML not installed
    code, _, stderr = run_cli(capsys, "import", "openapi", CORPUS / "openapi" / "oai-petstore.yaml",
                              "--out", tmp_path / "o")
    assert code == 2 and "pip install 'flowrun[yaml]'" in stderr
    assert not (tmp_path / "o").exists()


def test_several_servers_become_environments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = {"openapi": "3.0.3", "info": {"title": "multi", "version": "1"},
            "servers": [{"url": "https://api.example.com/v1", "description": "Production"},
                        {"url": "https://{region}.sandbox.example.com/v1", "description": "Sandbox",
                         "variables": {"region": {"default": "eu", "enum": ["eu", "us"]}}}],
            "paths": {"/ping": {"get": {"operationId": "ping"}}}}
    source = tmp_path / "multi.json"
    source.write_text(json.dumps(spec))
    code, stdout, _ = run_cli(capsys, "import", "openapi", source, "--out", tmp_path / "o")
    assert code == 0
    alias = read(tmp_path / "o" / "aliases" / "api.json")[0]
    assert alias["default_env"] == "production"
    assert {env: c["url"] for env, c in alias["connections"].items()} == {
        "production": "https://api.example.com/v1", "sandbox": "https://eu.sandbox.example.com/v1"}
    assert "server variable 'region' took its default 'eu' (also allowed: eu, us)" in stdout
    code, stdout, _ = run_cli(capsys, "validate", tmp_path / "o" / "flows", "--aliases", tmp_path / "o" / "aliases",
                              "--env", "sandbox")
    assert code == 0, stdout
