"""``flowrun alias list | show | test`` against real loopback servers, one test per failure cause."""

from __future__ import annotations

import http.server
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun.testing import PartnerServer, Pki, PkiFiles, issue_client, issue_server
from tests._keytool import build_keytool_store
from tests.aliases._setup import (
    API_KEY,
    API_KEY_ENV,
    KEYSTORE_ENV,
    KEYSTORE_PASSWORD,
    keystore,
    mtls_alias,
    mtls_records,
    profile,
    trust_cert,
    write_aliases,
    write_jks,
)

pytestmark = pytest.mark.usefixtures("secrets_env")
BOTH_VERSIONS = pytest.mark.parametrize("tls_version", ["1.2", "1.3"])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def alias_test(capsys: pytest.CaptureFixture[str], directory: Path, *extra: str,
               name: str = "partner") -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, "alias", "test", name, "--aliases", str(directory), "--json", *extra)
    return code, json.loads(out)


# --- list and show ------------------------------------------------------------------------------


@pytest.fixture
def directory(tmp_path: Path, pki_files: PkiFiles) -> Path:
    records = mtls_records(pki_files, port=8443)
    records[-1]["connection"]["credential"] = "partner_key"
    records[-1]["connection"]["headers"] = {"Accept": "application/json", "Authorization": "Bearer hdr-Tk9"}
    records += [
        {"kind": "credential", "name": "partner_key", "type": "api_key", "header": "X-API-Key",
         "key": {"env": API_KEY_ENV}},
        {"kind": "credential", "name": "legacy", "type": "basic", "username": "svc", "password": "literal-Pw-31"},
        {"kind": "credential", "name": "from_file", "type": "bearer", "token": {"file": "token.txt"}},
        {"kind": "alias", "name": "legacy", "default_env": "test", "connections": {
            "test": {"url": "https://test.legacy.example/api", "credential": "legacy"},
            "prod": {"url": "https://legacy.example:8443/api", "credential": "from_file"},
        }},
        {"kind": "alias", "name": "multi", "connections": {
            "dev": {"url": "http://dev.example"}, "prod": {"url": "https://prod.example"}}},
    ]
    return write_aliases(tmp_path / "aliases", records)


def test_list_text(capsys: pytest.CaptureFixture[str], directory: Path) -> None:
    code, out, _ = run(capsys, "alias", "list", "--aliases", str(directory))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ALIAS", "ENV", "URL", "MUTUAL", "TLS", "CREDENTIAL"]
    assert any(line.split()[:2] == ["legacy", "test"] and "(default)" in line for line in lines)
    partner = next(line for line in lines if line.startswith("partner"))
    assert "https://localhost:8443/v2" in partner
    assert "partnerMTLS" in partner and "partner_key (api_key)" in partner


def test_list_json(capsys: pytest.CaptureFixture[str], directory: Path) -> None:
    code, out, _ = run(capsys, "alias", "list", "--aliases", str(directory), "--json")
    assert code == 0
    data = json.loads(out)
    assert [a["name"] for a in data["aliases"]] == ["legacy", "multi", "partner"]
    legacy = data["aliases"][0]
    assert legacy["default_env"] == "test"
    assert [c["env"] for c in legacy["connections"]] == ["test", "prod"]
    assert legacy["connections"][1] == {
        "alias": "legacy", "env": "prod", "url": "https://legacy.example:8443/api",
        "mutual_authentication": False, "protocol_profile": None, "credential": "from_file",
        "credential_type": "bearer",
    }


def test_list_uses_flowrun_aliases(capsys: pytest.CaptureFixture[str], directory: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_ALIASES", str(directory))
    code, out, _ = run(capsys, "alias", "list", "--json")
    assert code == 0
    assert len(json.loads(out)["aliases"]) == 3


def test_show_names_secrets_by_reference_only(capsys: pytest.CaptureFixture[str], directory: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run(capsys, "alias", "show", "partner", "--aliases", str(directory))
    assert code == 0
    assert f"env {KEYSTORE_ENV} (set)" in out
    assert f"env {API_KEY_ENV} (set)" in out
    assert "https://localhost:8443/v2" in out and "port 8443 from the connection" in out
    assert "Accept: application/json" in out
    for secret in (KEYSTORE_PASSWORD, API_KEY, "hdr-Tk9"):
        assert secret not in out
    monkeypatch.delenv(API_KEY_ENV)
    _, out, _ = run(capsys, "alias", "show", "partner", "--aliases", str(directory))
    assert f"env {API_KEY_ENV} (not set)" in out


def test_show_json_shape(capsys: pytest.CaptureFixture[str], directory: Path, pki_files: PkiFiles) -> None:
    code, out, _ = run(capsys, "alias", "show", "partner", "--aliases", str(directory), "--json")
    assert code == 0
    view = json.loads(out)
    assert set(view) == {"name", "description", "defined_at", "default_env", "environments", "connections",
                         "retry_policy", "rate_limit", "concurrency_limit"}
    assert view["rate_limit"] is None
    assert view["concurrency_limit"] is None
    (connection,) = view["connections"]
    assert {k: connection[k] for k in ("env", "url", "scheme", "host", "port", "port_from", "base_path")} == {
        "env": None, "url": "https://localhost:8443/v2", "scheme": "https", "host": "localhost", "port": 8443,
        "port_from": "connection", "base_path": "/v2"}
    assert connection["headers"]["Authorization"].startswith("(hidden")
    profile_view = connection["protocol_profile"]
    assert profile_view["keystore"] == {
        "name": "client_ks", "type": "jks", "file": str(pki_files.client.jks), "file_exists": True,
        "key_file": None, "password": f"env {KEYSTORE_ENV} (set)", "key_alias": "client",
        "key_password": "the store password", "chain_certs": []}
    assert profile_view["trust_store_certs"] == [
        {"name": "partner_root", "format": "pem", "file": str(pki_files.root_pem), "file_exists": True,
         "inline_pem": False}]
    assert connection["credential"] == {"name": "partner_key", "type": "api_key", "header": "X-API-Key",
                                        "key": f"env {API_KEY_ENV} (set)"}
    assert view["retry_policy"] == {"strategy": "none"}


def test_show_environments(capsys: pytest.CaptureFixture[str], directory: Path) -> None:
    _, out, _ = run(capsys, "alias", "show", "legacy", "--aliases", str(directory), "--json")
    view = json.loads(out)
    assert [c["env"] for c in view["connections"]] == ["test"]  # the default environment
    assert "literal value" in view["connections"][0]["credential"]["password"]
    assert "literal-Pw-31" not in out
    _, out, _ = run(capsys, "alias", "show", "legacy", "--aliases", str(directory), "--env", "prod", "--json")
    (prod,) = json.loads(out)["connections"]
    assert prod["credential"]["token"] == f"file {directory / 'token.txt'} (not readable)"
    _, out, _ = run(capsys, "alias", "show", "multi", "--aliases", str(directory), "--json")
    assert [c["env"] for c in json.loads(out)["connections"]] == ["dev", "prod"]  # no default: all of them


def test_show_unknown_env_is_a_usage_error(capsys: pytest.CaptureFixture[str], directory: Path) -> None:
    code, out, err = run(capsys, "alias", "show", "legacy", "--aliases", str(directory), "--env", "prd")
    assert code == 2 and out == ""
    assert "did you mean 'prod'" in err


def test_unknown_alias_suggests(capsys: pytest.CaptureFixture[str], directory: Path) -> None:
    code, _, err = run(capsys, "alias", "show", "partnr", "--aliases", str(directory))
    assert code == 2
    assert "error[definition.unknown_reference]" in err and "did you mean 'partner'" in err


def test_alias_without_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "alias")
    assert code == 2 and "choose a sub-command" in err


# --- test: success --------------------------------------------------------------------------------


@BOTH_VERSIONS
def test_passes_against_a_mutual_tls_partner(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                             pki_files: PkiFiles, tls_version: str) -> None:
    with PartnerServer(pki, tls_versions=(tls_version,)) as partner:
        directory = write_aliases(tmp_path, mtls_records(pki_files, port=partner.port))
        code, report = alias_test(capsys, directory, "--path", "/accounts/7", "--method", "GET")
        seen, port = partner.client_certs, partner.port
    assert code == 0
    assert report["ok"] is True and report["error"] is None
    assert report["url"] == f"https://localhost:{port}/v2/accounts/7"
    assert report["http_status"] == 200
    assert report["tls"]["version"] == f"TLSv{tls_version}"
    assert report["tls"]["cipher"]
    assert [c["subject"].split(",")[0] for c in report["server_chain"]] == [
        "CN=localhost", "CN=flowrun test intermediate CA", "CN=flowrun test root CA"]
    assert report["server_chain_source"] == "handshake"
    assert all(c["days_left"] >= 360 for c in report["server_chain"])
    client = report["client_certificate"]
    assert client["requested"] is True and client["observed"] is True and client["outcome"] == "sent"
    assert client["sent"]["sha256"] == client["configured"]["sha256"] == pki.client.sha256
    assert seen == [pki.client.sha256]
    assert client["sent"]["subject"].startswith("CN=flowrun-demo-client")


def test_passes_with_a_keytool_jks(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                   pki_files: PkiFiles) -> None:
    store = build_keytool_store(tmp_path / "store", storetype="JKS", storepass=KEYSTORE_PASSWORD,
                                keypass="own-key-pass-4")
    records = mtls_records(pki_files, port=0, keystore_file=store.path)
    records[0]["key_password"] = {"env": "PARTNER_KEY_PASSWORD"}
    with pytest.MonkeyPatch.context() as env, \
            PartnerServer(pki, trusted_client_cas=[store.root.cert]) as partner:
        env.setenv("PARTNER_KEY_PASSWORD", "own-key-pass-4")
        records[-1]["connection"]["port"] = partner.port
        code, report = alias_test(capsys, write_aliases(tmp_path / "aliases", records))
        seen = partner.client_certs
    leaf_sha = store.leaf.fingerprint(__import__("cryptography.hazmat.primitives.hashes",
                                                 fromlist=["SHA256"]).SHA256()).hex()
    assert code == 0, report["error"]
    assert report["client_certificate"]["sent"]["sha256"] == leaf_sha
    assert seen == [leaf_sha]
    assert report["http_status"] == 404  # HEAD of the base path: no route, yet the TLS path works


def test_http_error_status_after_a_good_handshake_is_success(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                            pki: Pki, pki_files: PkiFiles) -> None:
    with PartnerServer(pki) as partner:
        directory = write_aliases(tmp_path, mtls_records(pki_files, port=partner.port))
        code, out, _ = run(capsys, "alias", "test", "partner", "--aliases", str(directory),
                           "--path", "status/503", "--method", "get")
    assert code == 0
    assert "HTTP                503 Service Unavailable" in out
    assert "ok: the TLS path works (HTTP 503)" in out
    assert "requested   yes" in out and "sent        CN=flowrun-demo-client" in out


def test_sends_connection_headers(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                  pki_files: PkiFiles) -> None:
    records = mtls_records(pki_files, port=0)
    with PartnerServer(pki) as partner:
        records[-1]["connection"].update(port=partner.port, headers={"X-Trace": "alias-test"})
        code, _ = alias_test(capsys, write_aliases(tmp_path, records), "--path", "/echo")
        (request,) = partner.requests
    assert code == 0
    assert (request.method, request.path, request.header("X-Trace")) == ("HEAD", "/v2/echo", "alias-test")


# --- test: each failure cause -----------------------------------------------------------------------


def assert_failure(code: int, report: dict[str, Any], expected: str) -> None:
    assert code == 1
    assert report["ok"] is False and report["http_status"] is None
    assert report["error"]["code"] == expected, report["error"]
    assert report["error"]["hint"]


@BOTH_VERSIONS
def test_server_cert_untrusted(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                               tls_version: str) -> None:
    with PartnerServer(pki, tls_versions=(tls_version,)) as partner:
        records = mtls_records(pki_files, port=partner.port, trust_file=pki_files.other_ca_pem)
        code, report = alias_test(capsys, write_aliases(tmp_path, records))
    assert_failure(code, report, "tls.server_untrusted")
    # The chain the partner presented is shown even though it was refused.
    assert report["server_chain"][0]["subject"].startswith("CN=localhost")
    # We stopped first: our certificate was never due, which is not the same as "not sent".
    assert report["client_certificate"]["outcome"] == "not_reached"


def test_hostname_mismatch(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                           pki_files: PkiFiles) -> None:
    elsewhere = issue_server(pki, hostnames=("partner.example",))
    with PartnerServer(pki, server_identity=elsewhere) as partner:
        code, report = alias_test(capsys, write_aliases(tmp_path, mtls_records(pki_files, port=partner.port)))
    assert_failure(code, report, "tls.hostname_mismatch")
    assert "localhost" in report["error"]["message"]


@BOTH_VERSIONS
def test_client_cert_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                              tls_version: str) -> None:
    with PartnerServer(pki, tls_versions=(tls_version,), trusted_client_cas=[pki.other_ca.certificate]) as partner:
        code, report = alias_test(capsys, write_aliases(tmp_path, mtls_records(pki_files, port=partner.port)))
    assert_failure(code, report, "tls.client_cert_rejected")
    assert report["client_certificate"]["sent"]["sha256"] == pki.client.sha256


@BOTH_VERSIONS
@pytest.mark.usefixtures("isolated_tls_cache")
def test_client_cert_not_sent(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                              monkeypatch: pytest.MonkeyPatch, tls_version: str) -> None:
    """An alias without mutual authentication trusts the system store only: stand the partner's root
    in for the system store, so that the handshake gets as far as the certificate request."""
    monkeypatch.setattr("flowrun._tls._context.system_trust_locations", lambda: (str(pki_files.root_pem), None))
    with PartnerServer(pki, tls_versions=(tls_version,)) as partner:
        records = [{"kind": "alias", "name": "partner", "connection": {"url": f"https://localhost:{partner.port}"}}]
        code, report = alias_test(capsys, write_aliases(tmp_path, records))
    assert_failure(code, report, "tls.client_cert_not_sent")
    assert report["client_certificate"]["configured"] is None
    assert report["client_certificate"]["requested"] is True
    assert report["client_certificate"]["sent"] is None
    assert report["client_certificate"]["outcome"] == "none_sent"


@BOTH_VERSIONS
def test_client_cert_expired(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                             tls_version: str) -> None:
    expired = write_jks(tmp_path / "keystores" / "expired.jks", issue_client(pki, expired=True))
    with PartnerServer(pki, tls_versions=(tls_version,)) as partner:
        records = mtls_records(pki_files, port=partner.port, keystore_file=expired)
        code, report = alias_test(capsys, write_aliases(tmp_path / "aliases", records))
    assert_failure(code, report, "tls.client_cert_expired")
    assert report["client_certificate"]["configured"]["days_left"] < 0


def test_protocol_version_mismatch(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                   pki_files: PkiFiles) -> None:
    with PartnerServer(pki, tls_versions=("1.2",)) as partner:
        records = mtls_records(pki_files, port=partner.port, profile_extra={"tls_versions": ["1.3"]})
        code, report = alias_test(capsys, write_aliases(tmp_path, records))
    assert_failure(code, report, "tls.protocol_version")


def test_connection_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connecting is refused
        port = closed.getsockname()[1]
        records = mtls_records(pki_files, port=port, host="127.0.0.1")
        code, report = alias_test(capsys, write_aliases(tmp_path, records))
    assert_failure(code, report, "transport.connect_refused")
    assert report["tls"] is None


@pytest.fixture
def plain_http_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_https_to_a_plain_http_port(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles,
                                    plain_http_port: int) -> None:
    records = mtls_records(pki_files, port=plain_http_port, host="127.0.0.1")
    code, report = alias_test(capsys, write_aliases(tmp_path, records))
    assert_failure(code, report, "tls.plain_http_port")


def test_timeout(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the TCP connection in the backlog, never answers the handshake
        records = mtls_records(pki_files, port=silent.getsockname()[1], host="127.0.0.1")
        code, report = alias_test(capsys, write_aliases(tmp_path, records), "--timeout", "0.3")
    assert_failure(code, report, "transport.timeout")


def test_failure_text_names_cause_and_hint(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                           pki_files: PkiFiles) -> None:
    with PartnerServer(pki, trusted_client_cas=[pki.other_ca.certificate]) as partner:
        directory = write_aliases(tmp_path, mtls_records(pki_files, port=partner.port))
        code, out, _ = run(capsys, "alias", "test", "partner", "--aliases", str(directory))
    assert code == 1
    assert "FAILED [tls.client_cert_rejected]" in out
    assert "hint: the partner does not trust our certificate" in out
    assert KEYSTORE_PASSWORD not in out


def test_unusable_keystore_is_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki_files: PkiFiles,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, "not-the-password")
    directory = write_aliases(tmp_path, mtls_records(pki_files, port=8443))
    code, report = alias_test(capsys, directory)
    assert code == 2
    assert report == {"alias": "partner", "env": None, "ok": False, "error": report["error"]}
    assert report["error"]["code"] == "keystore.wrong_password"
    assert "not-the-password" not in json.dumps(report)
    code, out, err = run(capsys, "alias", "test", "partner", "--aliases", str(directory))
    assert code == 2 and out == "" and "error[keystore.wrong_password]" in err


def test_env_selects_what_is_tested(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                    pki_files: PkiFiles) -> None:
    prod = issue_client(pki, common_name="prod-client")
    prod_jks = write_jks(tmp_path / "keystores" / "prod.jks", prod)
    with PartnerServer(pki) as partner:
        connection = {"url_builder": True, "host": "localhost", "port": partner.port,
                      "mutual_authentication": True}
        records = [
            keystore("dev_ks", pki_files.client.jks), keystore("prod_ks", prod_jks),
            trust_cert("partner_root", pki_files.root_pem),
            profile("devMTLS", "dev_ks"), profile("prodMTLS", "prod_ks"),
            {"kind": "alias", "name": "partner", "connections": {
                "dev": {**connection, "protocol_profile": "devMTLS"},
                "prod": {**connection, "protocol_profile": "prodMTLS"}}},
        ]
        directory = write_aliases(tmp_path / "aliases", records)
        code, report = alias_test(capsys, directory, "--env", "prod")
        missing_env_code, _, err = run(capsys, "alias", "test", "partner", "--aliases", str(directory))
        seen = partner.client_certs
    assert code == 0 and report["env"] == "prod"
    assert seen == [prod.sha256]
    assert missing_env_code == 2 and "--env" in err


def test_two_aliases_one_partner(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                 pki_files: PkiFiles) -> None:
    with PartnerServer(pki) as partner:
        records = [*mtls_records(pki_files, port=partner.port), mtls_alias("ledger", port=partner.port)]
        directory = write_aliases(tmp_path, records)
        assert alias_test(capsys, directory)[0] == 0
        assert alias_test(capsys, directory, name="ledger")[0] == 0
        assert partner.client_certs == [pki.client.sha256, pki.client.sha256]
