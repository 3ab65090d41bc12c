"""Postman collections nobody here wrote (Newman's and postman-collection's own) -> flows that
load, validate and run; scripts translated or listed, secrets never copied."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from flowrun.importers import check_result, import_postman
from flowrun.importers._postman_scripts import translate_test_script
from tests.importers.conftest import CORPUS, all_text, read, run_cli

COLLECTIONS = sorted(p for p in (CORPUS / "postman").glob("*.json") if "environment" not in p.name)


@pytest.mark.parametrize("collection", COLLECTIONS, ids=lambda p: p.name)
def test_every_corpus_collection_imports_and_validates(collection: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, "import", "postman", collection, "--out", out)
    assert code == 0, stderr
    assert list((out / "flows").glob("*.json"))
    code, stdout, stderr = run_cli(capsys, "validate", out / "flows", "--aliases", out / "aliases")
    assert code == 0, stdout + stderr
    assert "0 errors" in stdout


def test_untranslated_lines_are_printed_and_kept_in_the_step(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    collection = CORPUS / "postman" / "newman-request-chaining-test.postman_collection.json"
    code, stdout, _ = run_cli(capsys, "import", "postman", collection, "--out", tmp_path)
    assert code == 0
    line = 'tests["FOO doesn\'t exist"] = !postman.getEnvironmentVariable("FOO");'
    assert f"/item/0/event/0/script/exec/1: {line}" in stdout
    step = read(tmp_path / "steps" / "newman_github_929" / "preliminary_request.json")
    assert line in step["description"]
    # What was translated: the status check, and the constants saved for the next request.
    assert {"that": "status", "equals": 200} in step["assert"]
    assert step["response"]["outputs"] == {"FOO": '`"alpha"`', "BAR": '`"beta"`'}
    second = read(tmp_path / "flows" / "newman_github_929.json")["steps"][1]
    assert second["with"] == {"FOO": "{{ steps.preliminary_request.outputs.FOO }}",
                              "BAR": "{{ steps.preliminary_request.outputs.BAR }}"}


def test_literal_secrets_become_env_references(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    collection = CORPUS / "postman" / "newman-inherited-entities.postman_collection.json"
    environment = CORPUS / "postman" / "newman-inherited-entities.postman_environment.json"
    code, stdout, _ = run_cli(capsys, "import", "postman", collection, "--environment", environment, "--out", tmp_path)
    assert code == 0
    records = read(tmp_path / "aliases" / "postman-echo.com.json")
    credential = next(r for r in records if r["kind"] == "credential")
    assert credential == {"kind": "credential", "name": "postman-echo.com", "type": "basic", "username": "postman",
                          "password": {"env": "INHERITED_ENTITIES_PASSWORD"}}
    assert "INHERITED_ENTITIES_PASSWORD  the collection held a literal value" in stdout
    assert '"password"' not in all_text(tmp_path).replace('"password": {', "")
    # Auth types flowrun lacks are listed, with where they are.
    assert "/item/1/item/0/request/auth: auth type digest" in stdout


def test_dry_run_writes_nothing_and_existing_files_are_kept(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    collection = CORPUS / "postman" / "newman-single-get-request.json"
    code, stdout, _ = run_cli(capsys, "import", "postman", collection, "--out", tmp_path / "o", "--dry-run")
    assert code == 0 and not (tmp_path / "o").exists()
    assert "--- flows/example_collection_with_a_single_get_request.json (not written)" in stdout
    assert run_cli(capsys, "import", "postman", collection, "--out", tmp_path / "o")[0] == 0
    code, _, stderr = run_cli(capsys, "import", "postman", collection, "--out", tmp_path / "o")
    assert code == 2 and "already exist" in stderr and "--force" in stderr
    assert run_cli(capsys, "import", "postman", collection, "--out", tmp_path / "o", "--force")[0] == 0


def test_broken_collections_name_the_place(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"info": {"name": "x", "schema": "https://schema.getpostman.com/json/collection/v1.0.0/"},
                               "item": []}))
    code, _, stderr = run_cli(capsys, "import", "postman", bad, "--out", tmp_path / "o")
    assert code == 2 and "error[import.unsupported]" in stderr and "at /info/schema" in stderr
    assert "Traceback" not in stderr
    bad.write_text(json.dumps({"info": {"name": "x", "schema": "v2.1.0"}, "item": [{"name": "r", "request": 5}]}))
    code, _, stderr = run_cli(capsys, "import", "postman", bad, "--out", tmp_path / "o")
    assert code == 2 and "at /item/0/request" in stderr
    bad.write_text("{not json")
    code, _, stderr = run_cli(capsys, "import", "postman", bad, "--out", tmp_path / "o")
    assert code == 2 and "error[import.source]" in stderr and not (tmp_path / "o").exists()


def test_bodies_of_every_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # Newman reads file paths from the working directory
    collection = {"info": {"name": "bodies", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
                  "variable": [{"key": "base", "value": "https://api.example.com/v1"}, {"key": "who", "value": "me"}],
                  "auth": {"type": "bearer", "bearer": [{"key": "token", "value": "{{apiToken}}"}]},
                  "item": [
        {"name": "json", "request": {"method": "POST", "url": "{{base}}/a?x={{who}}", "body": {
            "mode": "raw", "raw": "{\"name\": \"{{who}}\"}", "options": {"raw": {"language": "json"}}}}},
        {"name": "xml", "request": {"method": "POST", "url": "{{base}}/b", "body": {
            "mode": "raw", "raw": "<a>{{who}}</a>", "options": {"raw": {"language": "xml"}}}}},
        {"name": "form", "request": {"method": "POST", "url": "{{base}}/c", "body": {
            "mode": "urlencoded", "urlencoded": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"},
                                                 {"key": "off", "value": "x", "disabled": True}]}}},
        {"name": "multi", "request": {"method": "POST", "url": "{{base}}/d", "body": {
            "mode": "formdata", "formdata": [{"key": "t", "value": "v", "type": "text"},
                                             {"key": "f", "src": "upload.csv", "type": "file"}]}}},
        {"name": "file", "request": {"method": "PUT", "url": "{{base}}/e", "body": {
            "mode": "file", "file": {"src": "payload.bin"}}}},
        {"name": "gql", "request": {"method": "POST", "url": "{{base}}/graphql", "body": {
            "mode": "graphql", "graphql": {"query": "query { me }", "variables": "{\"id\": \"{{who}}\"}"}}}},
        {"name": "pathvar", "request": {"method": "GET", "url": {
            "raw": "{{base}}/users/:id", "host": ["{{base}}"], "path": ["users", ":id"],
            "variable": [{"key": "id", "value": "7"}]}}},
    ]}
    source = tmp_path / "c.json"
    source.write_text(json.dumps(collection))
    result = import_postman(source, out=tmp_path / "o")
    steps = {k.rsplit("/", 1)[1][:-5]: v for k, v in result.files.items() if k.startswith("steps/")}
    assert steps["json"]["body"] == {"json": {"name": "{{ inputs.who }}"}}
    assert steps["json"]["query"] == [["x", "{{ inputs.who }}"]]
    assert steps["json"]["path"] == "/v1/a"
    assert steps["xml"]["body"] == {"text": "<a>{{ inputs.who }}</a>", "content_type": "application/xml"}
    assert steps["form"]["body"] == {"form": {"a": ["1", "2"]}}
    assert steps["multi"]["body"] == {"multipart": {"t": "v"}, "files": {"f": "../../../upload.csv"}}
    assert steps["file"]["body"] == {"file": "../../../payload.bin"}
    assert steps["gql"]["body"] == {"json": {"query": "query { me }", "variables": {"id": "{{ inputs.who }}"}}}
    assert steps["pathvar"]["path"] == "/v1/users/{{ inputs.id }}"
    flow = result.files["flows/bodies.json"]
    assert flow["inputs"]["id"]["default"] == "7" and flow["inputs"]["who"]["default"] == "me"
    aliases = [k for k in result.files if k.startswith("aliases/")]
    assert aliases == ["aliases/api.example.com.json"]
    records = result.files["aliases/api.example.com.json"]
    assert records[0] == {"kind": "credential", "name": "api.example.com", "type": "bearer",
                          "token": {"env": "APITOKEN"}}
    assert records[1]["connection"]["url"] == "https://api.example.com"
    assert result.env_vars == {"APITOKEN": "the Postman variable {{apiToken}}"}


def test_script_patterns() -> None:
    out = translate_test_script([
        "var jsonData = pm.response.json();",
        "pm.test('ok', function () {",
        "    pm.response.to.have.status(201);",
        "    pm.expect(jsonData.user.name).to.eql('Ann');",
        "    pm.expect(pm.response.json().items[0]['the-id']).to.equal(3);",
        "    pm.expect(jsonData.tags).to.include('a');",
        "    pm.expect(jsonData.count).to.be.above(2);",
        "    pm.expect(jsonData.count).to.be.at.most(9);",
        "    pm.expect(jsonData.missing).to.not.exist;",
        "    pm.expect(pm.response.headers.get('X-Trace')).to.match(/^t-/);",
        "});",
        "pm.environment.set('token', jsonData.auth.token);",
        "pm.collectionVariables.set(\"id\", pm.response.json().id);",
        "console.log(jsonData);",
        "pm.expect(jsonData.list.length).to.eql(2);",
    ])
    assert out.assertions == [
        {"that": "status", "equals": 201},
        {"that": "body.user.name", "equals": "Ann"},
        {"that": 'body.items[0]."the-id"', "equals": 3},
        {"that": "body.tags", "contains": "a"},
        {"that": "body.count", "gt": 2},
        {"that": "body.count", "lte": 9},
        {"that": "body.missing", "exists": False},
        {"that": 'headers."x-trace"', "matches": "^t-"},
    ]
    assert out.expect_status == []  # 201 is a success already
    assert translate_test_script(["pm.response.to.have.status(404);"]).expect_status == [404]
    assert out.outputs == {"token": "body.auth.token", "id": "body.id"}
    assert [(i, reason) for i, _, reason in out.untranslated] == [
        (13, "no flowrun equivalent for this statement"),
        (14, "only the status, headers and JSON body fields are translated as subjects")]


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers /get like postman-echo.com: the query arguments back as JSON."""

    seen: list[str] = []

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        _Echo.seen.append(self.path)
        body = json.dumps({"args": dict(parse_qsl(parts.query)), "url": self.path}).encode()
        self.send_response(200 if parts.path == "/get" else 404)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Echo.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_imported_collection_runs_against_a_local_partner(tmp_path: Path, echo_server: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    collection = CORPUS / "postman" / "newman-request-chaining-test.postman_collection.json"
    assert run_cli(capsys, "import", "postman", collection, "--out", tmp_path)[0] == 0
    alias_file = tmp_path / "aliases" / "postman-echo.com.json"
    records = read(alias_file)
    records[-1]["connection"]["url"] = echo_server  # the local copy of the partner
    alias_file.write_text(json.dumps(records))
    code, stdout, stderr = run_cli(capsys, "run", tmp_path / "flows" / "newman_github_929.json", "--aliases",
                                   tmp_path / "aliases", "--json")
    assert code == 0, stdout + stderr
    report = json.loads(stdout)
    assert [s["status"] for s in report["steps"]] == ["passed", "passed"]
    # The second request carries what the first one saved, and its assertions on the echo passed.
    assert _Echo.seen[1] == "/get?val=alpha&val2=beta"
    assert [a["that"] for a in report["steps"][1]["assertions"]] == ["status", "body.args.val", "body.args.val2"]
    # The assertion fails when the partner answers otherwise: it is real.
    records[-1]["connection"]["url"] = echo_server + "/nowhere"
    alias_file.write_text(json.dumps(records))
    assert run_cli(capsys, "run", tmp_path / "flows" / "newman_github_929.json", "--aliases",
                   tmp_path / "aliases")[0] == 1


def test_literal_secrets_in_headers_query_and_bodies_become_env(tmp_path: Path) -> None:
    collection = {"info": {"name": "Shop", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
                  "item": [{"name": "login", "request": {
                      "method": "POST", "url": "https://shop.example/login?api_key=k-123&page=2",
                      "header": [{"key": "X-Auth-Token", "value": "t-456"}, {"key": "Accept", "value": "*/*"}],
                      "body": {"mode": "raw", "raw": json.dumps({"user": "ann", "password": "p-789"}),
                               "options": {"raw": {"language": "json"}}}}}]}
    source = tmp_path / "shop.json"
    source.write_text(json.dumps(collection))
    result = import_postman(source, out=tmp_path / "o")
    written = json.dumps(result.files)
    for secret in ("k-123", "t-456", "p-789"):
        assert secret not in written
    assert sorted(result.env_vars) == ["SHOP_API_KEY", "SHOP_PASSWORD", "SHOP_X_AUTH_TOKEN"]
    step = result.files["steps/shop/login.json"]
    assert step["body"] == {"json": {"user": "ann", "password": "{{ inputs.shop_password }}"}}
    assert ["page", "2"] in step["query"] and ["Accept", "*/*"] in step["headers"]
    flow = result.files["flows/shop.json"]
    assert flow["steps"][0]["with"]["shop_password"] == "{{ env.SHOP_PASSWORD }}"
    assert set(flow["env"]) == {"SHOP_API_KEY", "SHOP_PASSWORD", "SHOP_X_AUTH_TOKEN"}
    check_result(result, tmp_path / "o")


def test_redirects_follow_postman_and_other_settings_are_listed(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    collection = {"info": {"name": "r", "schema": "https://schema.getpostman.com/json/collection/v2.1.0/"},
                  "item": [{"name": "follows", "request": {"url": "https://h.example/a"}},
                           {"name": "stays", "request": {"url": "https://h.example/b"},
                            "protocolProfileBehavior": {"followRedirects": False, "strictSSL": False}}]}
    source = tmp_path / "r.json"
    source.write_text(json.dumps(collection))
    code, stdout, _ = run_cli(capsys, "import", "postman", source, "--out", tmp_path / "o", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["dry_run"] is False and len(report["written"]) == 4
    assert report["not_translated"] == [{
        "pointer": "/item/1/protocolProfileBehavior/strictSSL", "text": "strictSSL: false",
        "reason": "a request setting flowrun has no equivalent for (TLS verification is always on)"}]
    assert read(tmp_path / "o" / "steps" / "r" / "follows.json")["follow_redirects"] is True
    assert "follow_redirects" not in read(tmp_path / "o" / "steps" / "r" / "stays.json")


def test_imported_collection_runs_over_mutual_tls(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from flowrun.testing import PartnerServer, make_pki

    pki = make_pki()
    files = pki.write(tmp_path / "pki", keystore_password="pw-5678")
    collection = CORPUS / "postman" / "newman-single-get-request.json"
    out = tmp_path / "out"
    assert run_cli(capsys, "import", "postman", collection, "--out", out)[0] == 0
    alias_file = out / "aliases" / "postman-echo.com.json"
    [alias] = read(alias_file)
    with PartnerServer(pki) as partner:
        # The imported alias, pointed at the partner's echo route and given a protocol profile.
        alias["connection"].update(url=f"{partner.url}/echo", mutual_authentication=True, protocol_profile="mtls")
        alias_file.write_text(json.dumps([
            {"kind": "keystore", "name": "client", "file": str(files.client.pkcs12),
             "password": {"env": "IMPORT_TEST_KEYSTORE_PASSWORD"}},
            {"kind": "trust_store_cert", "name": "partner_root", "file": str(files.root_pem)},
            {"kind": "protocol_profile", "name": "mtls", "keystore": "client", "trust_store_certs": ["partner_root"],
             "use_system_trust": False},
            alias]))
        monkeypatch.setenv("IMPORT_TEST_KEYSTORE_PASSWORD", "pw-5678")
        flow = out / "flows" / "example_collection_with_a_single_get_request.json"
        code, stdout, stderr = run_cli(capsys, "run", flow, "--aliases", out / "aliases", "--json")
        assert code == 0, stdout + stderr
        [step] = json.loads(stdout)["steps"]
        assert step["assertions"][0]["that"] == "status" and step["assertions"][0]["passed"] is True
        request = partner.requests[-1]
        assert request.path == "/echo/get" and ("source", "newman-sample-github-collection") in request.query
        assert request.client_cert_sha256 is not None
