"""curl command lines -> a step, a flow and alias records; with --cert/--key/--cacert the step
runs against the embedded partner over mutual TLS."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun.importers import import_curl
from flowrun.testing import PartnerServer, Pki, PkiFiles, make_pki
from tests.importers.conftest import all_text, read, run_cli

PASSWORD = "import-test-pass"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=PASSWORD)


@pytest.fixture
def partner(pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(pki) as server:
        yield server


def _mtls_command(files: PkiFiles, url: str, *, cert: str | None = None) -> str:
    cert_part = cert or (f"--cert {shlex.quote(str(files.client.cert_pem))} "
                         f"--key {shlex.quote(str(files.client.key_pem))} --pass {PASSWORD}")
    return (f"curl -sS {cert_part} --cacert {shlex.quote(str(files.root_pem))} "
            f"-H 'Content-Type: application/json' -H 'X-Request-Note: it'\\''s mine' "
            f"-d '{{\"amount\": 5, \"note\": \"a b\"}}' --compressed '{url}/echo?currency=EUR'")


def test_curl_with_client_certificate_runs_against_the_partner(tmp_path: Path, pki_files: PkiFiles,
                                                               partner: PartnerServer,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    command = _mtls_command(pki_files, partner.url)
    code, stdout, stderr = run_cli(capsys, "import", "curl", command, "--out", out, "--name", "transfer")
    assert code == 0, stderr
    assert "LOCALHOST_KEYSTORE_PASSWORD" in stdout
    assert PASSWORD not in all_text(out)
    step = read(out / "steps" / "transfer.json")
    assert step["method"] == "POST" and step["path"] == "/echo" and step["query"] == [["currency", "EUR"]]
    assert step["body"] == {"json": {"amount": 5, "note": "a b"}}
    assert ["X-Request-Note", "it's mine"] in step["headers"]
    monkeypatch.setenv("LOCALHOST_KEYSTORE_PASSWORD", PASSWORD)
    code, stdout, stderr = run_cli(capsys, "run", out / "flows" / "transfer.json", "--aliases", out / "aliases",
                                   "--json")
    assert code == 0, stdout + stderr
    assert json.loads(stdout)["steps"][0]["tls"]["client_cert_sha256"]
    request = partner.requests[-1]
    assert request.method == "POST" and request.client_cert_sha256 is not None
    assert json.loads(request.body) == {"amount": 5, "note": "a b"}
    assert request.header("X-Request-Note") == "it's mine"
    # The trust is exactly --cacert's: the validate command agrees.
    code, stdout, _ = run_cli(capsys, "validate", out / "flows", "--aliases", out / "aliases")
    assert code == 0, stdout


def test_p12_client_certificate(tmp_path: Path, pki_files: PkiFiles, partner: PartnerServer,
                                capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    command = _mtls_command(pki_files, partner.url,
                            cert=f"--cert-type P12 --cert {shlex.quote(str(pki_files.client.pkcs12))}:{PASSWORD}")
    assert run_cli(capsys, "import", "curl", command, "--out", out, "--name", "p12")[0] == 0
    keystore = next(r for r in read(out / "aliases" / "localhost.json") if r["kind"] == "keystore")
    assert keystore["type"] == "pkcs12" and keystore["password"] == {"env": "LOCALHOST_KEYSTORE_PASSWORD"}
    assert PASSWORD not in all_text(out)
    monkeypatch.setenv("LOCALHOST_KEYSTORE_PASSWORD", PASSWORD)
    code, stdout, stderr = run_cli(capsys, "run", out / "flows" / "p12.json", "--aliases", out / "aliases")
    assert code == 0, stdout + stderr


def test_options_map_to_the_step() -> None:
    result = import_curl("curl -G https://api.example.com/search -d q=a+b --data-urlencode 'who=A & B' "
                         "-u alice:s3cret -L -m 12 -A agent/1")
    step = result.files["steps/api_example_com_search.json"]
    assert step["method"] == "GET" and "body" not in step
    assert step["query"] == [["q", "a b"], ["who", "A & B"]]
    assert step["follow_redirects"] is True and step["timeout_s"] == 12
    assert ["User-Agent", "agent/1"] in step["headers"]
    credential = result.files["aliases/api.example.com.json"][0]
    assert credential == {"kind": "credential", "name": "api.example.com", "type": "basic", "username": "alice",
                          "password": {"env": "API_PASSWORD"}}
    assert "s3cret" not in json.dumps(result.files)

    form = import_curl("curl -F 'meta=x' -F 'doc=@report.pdf;type=application/pdf' https://h.example/up",
                       out=Path("/o"), cwd=Path("/o"))
    assert form.files["steps/h_example_up.json"]["body"] == {
        "multipart": {"meta": "x"}, "files": {"doc": {"path": "../report.pdf", "content_type": "application/pdf"}}}
    assert form.files["steps/h_example_up.json"]["method"] == "POST"

    bearer = import_curl("curl -XPUT -H 'Authorization: Bearer abc.def' https://h.example/x --data-raw 'plain'")
    step = bearer.files["steps/h_example_x.json"]
    assert step["method"] == "PUT"
    assert step["body"] == {"text": "plain", "content_type": "application/x-www-form-urlencoded"}
    assert bearer.files["aliases/h.example.json"][0]["token"] == {"env": "H_TOKEN"}
    assert "abc.def" not in json.dumps(bearer.files)


@pytest.mark.parametrize(("command", "expected"), [
    ("curl -k https://h.example/", "-k/--insecure is refused"),
    ("curl --proxy http://p:3128 https://h.example/", "curl option --proxy (word 1) is not supported"),
    ("curl 'https://h.example/", "cannot be split"),
    ("curl -X BREW https://h.example/", "-X BREW"),
    ("curl -H", "needs a value"),
    ("curl https://a.example https://b.example", "exactly one URL (2 given)"),
])
def test_refusals_are_specific(command: str, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run_cli(capsys, "import", "curl", command)
    assert code == 2
    assert expected in stderr and "Traceback" not in stderr and stdout == ""


def test_without_out_the_files_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run_cli(capsys, "import", "curl", "curl https://h.example/ping")
    assert code == 0
    assert "--- steps/h_example_ping.json (not written)" in stdout
    assert '"url": "https://h.example"' in stdout


def test_run_start_up_does_not_load_the_importers() -> None:
    import subprocess
    import sys

    code = ("import sys; from flowrun._cli import build_parser; build_parser('run'); "
            "print([m for m in sys.modules if m.startswith('flowrun.importers') or m == 'yaml'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_credential_over_plain_http() -> None:
    result = import_curl("curl -u bob:pw http://plain.example/data")
    records = result.files["aliases/plain.example.json"]
    assert records == [{"kind": "alias", "name": "plain.example", "connection": {"url": "http://plain.example"},
                        "description": "Not translated: " + result.not_translated[0].line()}]
    assert result.env_vars == {}
    [entry] = result.not_translated
    assert entry.text == "basic credential for http://plain.example"
    assert "never sends a credential over plain http" in entry.reason


def test_cacert_alone_gives_a_trust_only_profile(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with PartnerServer(pki, require_client_cert=False) as partner:
        command = f"curl --cacert {shlex.quote(str(pki_files.root_pem))} --tlsv1.3 {partner.url}/accounts/7"
        out = tmp_path / "out"
        assert run_cli(capsys, "import", "curl", command, "--out", out, "--name", "balance")[0] == 0
        records = {r["kind"]: r for r in read(out / "aliases" / "localhost.json")}
        assert "keystore" not in records
        assert records["protocol_profile"] == {"kind": "protocol_profile", "name": "localhost_trust",
                                               "trust_store_certs": ["localhost"], "use_system_trust": False,
                                               "port": partner.port, "tls_versions": ["1.3"]}
        assert records["alias"]["connection"] == {"url": partner.url, "protocol_profile": "localhost_trust"}
        code, stdout, stderr = run_cli(capsys, "run", out / "flows" / "balance.json", "--aliases", out / "aliases",
                                       "--json")
        assert code == 0, stdout + stderr
        assert json.loads(stdout)["steps"][0]["tls"]["version"] == "TLSv1.3"
        assert partner.requests[-1].path == "/accounts/7" and partner.requests[-1].client_cert_sha256 is None


def test_key_material_is_checked_where_the_written_files_point(tmp_path: Path, pki_files: PkiFiles,
                                                               capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALHOST_KEYSTORE_PASSWORD", PASSWORD)
    command = _mtls_command(pki_files, "https://localhost:8443")
    code, stdout, _ = run_cli(capsys, "import", "curl", command, "--out", tmp_path / "o")
    assert code == 0 and "key material not usable yet" not in stdout
    missing = command.replace(str(pki_files.client.cert_pem), str(tmp_path / "nowhere.pem"))
    code, stdout, _ = run_cli(capsys, "import", "curl", missing, "--out", tmp_path / "p")
    assert code == 0 and "key material not usable yet: [keystore.not_found]" in stdout
