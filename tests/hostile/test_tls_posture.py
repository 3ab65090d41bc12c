"""TLS posture: what flowrun refuses to speak, and that turning verification off is never quiet.

Real servers on loopback (``RawServer`` with a server ``SSLContext`` configured the weak way),
the real client path (``flowrun run`` / ``flowrun test`` / ``flowrun validate`` in process, or
``run_flow``). Proven here:

* partners that speak only TLS 1.0 or 1.1 are refused (the server side needs OpenSSL security
  level 0 to exist at all); a profile cannot ask for less than TLS 1.2;
* partners that offer only weak TLS 1.2 suites (CBC, SHA-1 MAC, RSA key exchange) are refused,
  and the failure says "no common version or cipher", not "client certificate";
* host name checks hold whatever the environment says (``SSL_CERT_FILE``, ``SSL_CERT_DIR``,
  ``REQUESTS_CA_BUNDLE``, an unverified default HTTPS context): only ``insecure_skip_verify`` on a
  profile turns them off, and that prints a warning once per alias on every run and shows in the
  text, JSON and JUnit reports, in ``flowrun validate`` and on the ``flowrun`` logger;
* system trust is OpenSSL's compiled-in store, never the environment's.
"""

from __future__ import annotations

import json
import logging
import ssl
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from flowrun import ClientCertNotSentError, FlowResult, RestExecutor, RestStep, run_flow
from flowrun._cli import main
from flowrun._errors import SchemaError
from flowrun._registry import Registry
from flowrun._tls._context import TlsSettings, build_ssl_context, system_trust_locations
from flowrun.testing import Pki, PkiFiles, make_pki
from flowrun.testing._pki import load_identity_into
from tests.transport._support import PASSWORD as SUPPORT_PASSWORD
from tests.transport._support import RawServer, make_registry

PASSWORD = SUPPORT_PASSWORD  # make_registry opens the same keystore
PASSWORD_ENV = "FLOWRUN_POSTURE_KEYSTORE_PASSWORD"


# --- PKI, servers, alias files ------------------------------------------------------------------


@pytest.fixture(scope="module")
def ec_pki() -> Pki:
    return make_pki(hostnames=("localhost",))


@pytest.fixture(scope="module")
def rsa_pki() -> Pki:
    # RSA key exchange and RSA-signed suites need an RSA server certificate.
    return make_pki(hostnames=("localhost",), key_type="rsa")


@pytest.fixture(scope="module")
def ec_files(ec_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return ec_pki.write(tmp_path_factory.mktemp("ec-pki"), keystore_password=PASSWORD)


@pytest.fixture(scope="module")
def rsa_files(rsa_pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return rsa_pki.write(tmp_path_factory.mktemp("rsa-pki"), keystore_password=PASSWORD)


@pytest.fixture(autouse=True)
def _keystore_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def server_context(pki: Pki, *, versions: tuple[ssl.TLSVersion, ssl.TLSVersion] | None = None,
                   ciphers: str | None = None, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if ciphers is not None:
        context.set_ciphers(ciphers)
    if versions is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 / TLSv1_1 are deprecated
            context.minimum_version, context.maximum_version = versions
    load_identity_into(context, pki.server)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=pki.root.certificate.public_bytes(serialization.Encoding.PEM).decode())
    return context


def write_aliases(directory: Path, files: PkiFiles, aliases: dict[str, str], *, insecure: bool = False,
                  system_trust: bool = False, trust: bool = True) -> Path:
    """One protocol profile ``posture`` (the client keystore, PKCS12) and an alias per ``name: url``;
    ``insecure`` sets insecure_skip_verify."""
    directory.mkdir(parents=True, exist_ok=True)
    profile: dict[str, Any] = {"kind": "protocol_profile", "name": "posture", "keystore": "client",
                               "trust_store_certs": ["root"] if trust else [], "use_system_trust": system_trust}
    if insecure:
        profile["insecure_skip_verify"] = True
    records: list[dict[str, Any]] = [
        {"kind": "keystore", "name": "client", "type": "pkcs12", "file": str(files.client.pkcs12),
         "password": {"env": PASSWORD_ENV}},
        {"kind": "trust_store_cert", "name": "root", "file": str(files.root_pem)},
        profile,
    ]
    records += [{"kind": "alias", "name": name,
                 "connection": {"url": url, "mutual_authentication": True, "protocol_profile": "posture",
                                "timeout_s": 10}}
                for name, url in aliases.items()]
    (directory / "posture.json").write_text(json.dumps(records, indent=1))
    return directory


def write_flow(path: Path, aliases: list[str], name: str = "posture") -> Path:
    steps = [{"id": f"call_{i}", "type": "rest", "alias": alias, "path": "/"} for i, alias in enumerate(aliases)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": name, "steps": steps}))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], flow: Path, aliases: Path, *extra: str) -> tuple[int, dict[str, Any],
                                                                                              str]:
    code, out, err = run_cli(capsys, "run", flow, "--aliases", aliases, "--json", *extra)
    assert "Traceback" not in out + err
    assert out.startswith("{"), err
    return code, json.loads(out), err


# --- old protocol versions ------------------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["tls1.0", "tls1.1"])
def test_a_partner_speaking_only_tls_1_0_or_1_1_is_refused(
        version: ssl.TLSVersion, ec_pki: Pki, ec_files: PkiFiles, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # OpenSSL 3 refuses these versions at its default security level even on the server side.
    context = server_context(ec_pki, versions=(version, version), ciphers="DEFAULT:@SECLEVEL=0")
    with RawServer(ssl_context=context) as server:
        aliases = write_aliases(tmp_path / "aliases", ec_files, {"old": server.url()})
        code, report, _ = run_json(capsys, write_flow(tmp_path / "flow.json", ["old"]), aliases)
    failures = list(server.handshake_failures)  # after the server's threads are joined
    assert code == 1
    error = report["steps"][0]["error"]
    assert error["code"] == "tls.protocol_version", error
    assert "no TLS version or cipher in common" in error["message"]
    assert server.requests == []  # not one byte of HTTP went over the old protocol
    assert failures == ["UNSUPPORTED_PROTOCOL"]


def test_a_profile_cannot_ask_for_less_than_tls_1_2(tmp_path: Path, ec_files: PkiFiles) -> None:
    for old in ("1.0", "1.1", "1", "TLSv1"):
        directory = tmp_path / old
        write_aliases(directory, ec_files, {"x": "https://localhost:1"})
        records = json.loads((directory / "posture.json").read_text())
        records[2]["tls_versions"] = [old, "1.2"]
        (directory / "posture.json").write_text(json.dumps(records))
        with pytest.raises(SchemaError) as caught:
            Registry.load(directory)
        assert "tls_versions" in str(caught.value)


@pytest.mark.parametrize("versions", [("1.2",), ("1.3",), ("1.2", "1.3")])
@pytest.mark.parametrize("system_trust", [True, False])
def test_every_context_flowrun_builds_has_the_strict_defaults(versions: tuple[str, ...], system_trust: bool,
                                                             ec_pki: Pki) -> None:
    context = build_ssl_context(None, [ec_pki.root.certificate],
                                TlsSettings(versions=versions, use_system_trust=system_trust))
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert context.check_hostname is True
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_NO_COMPRESSION
    for cipher in context.get_ciphers():
        if cipher["protocol"] == "TLSv1.3":
            continue
        # TLS 1.2: forward secrecy (ECDHE/DHE) and an AEAD cipher, nothing else.
        assert cipher["aead"], cipher["name"]
        assert cipher["kea"] in ("kx-ecdhe", "kx-dhe"), cipher["name"]
        assert cipher["auth"] in ("auth-ecdsa", "auth-rsa"), cipher["name"]


# --- weak cipher suites ---------------------------------------------------------------------------


WEAK_SUITES = [
    # (OpenSSL cipher string, server key type): what an old partner might still offer.
    ("AES128-SHA", "rsa"),                    # RSA key exchange, CBC, SHA-1 MAC
    ("AES256-GCM-SHA384", "rsa"),             # RSA key exchange (no forward secrecy), even with GCM
    ("ECDHE-RSA-AES128-SHA256", "rsa"),       # CBC with forward secrecy
    ("ECDHE-ECDSA-AES256-SHA", "ec"),         # CBC, SHA-1 MAC
]


@pytest.mark.parametrize(("suite", "key_type"), WEAK_SUITES, ids=[s for s, _ in WEAK_SUITES])
@pytest.mark.parametrize("asks_for_cert", [False, True], ids=["cert-optional", "cert-required"])
def test_a_partner_offering_only_weak_tls_1_2_suites_is_refused_and_named_so(
        suite: str, key_type: str, asks_for_cert: bool, request: pytest.FixtureRequest, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    pki: Pki = request.getfixturevalue(f"{key_type}_pki")
    files: PkiFiles = request.getfixturevalue(f"{key_type}_files")
    try:
        context = server_context(pki, versions=(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2), ciphers=suite,
                                 require_client_cert=asks_for_cert)
    except ssl.SSLError:
        pytest.skip(f"this OpenSSL cannot even serve {suite}")
    with RawServer(ssl_context=context) as server:
        aliases = write_aliases(tmp_path / "aliases", files, {"weak": server.url()})
        code, report, _ = run_json(capsys, write_flow(tmp_path / "flow.json", ["weak"]), aliases)
    failures = list(server.handshake_failures)  # after the server's threads are joined
    assert code == 1
    error = report["steps"][0]["error"]
    # TLS 1.2 uses the same alert for "no shared cipher" and "no client certificate": the cause
    # must still be the cipher, not the client certificate.
    assert error["code"] == "tls.protocol_version", error
    assert "refused our hello" in error["message"]
    assert server.requests == []
    # The ambiguous alert is resolved by one diagnostic handshake, which the server refuses too.
    assert failures == ["NO_SHARED_CIPHER", "NO_SHARED_CIPHER"]


def test_a_strong_tls_1_2_partner_still_works_and_a_missing_client_cert_is_still_named(
        ec_pki: Pki, ec_files: PkiFiles) -> None:
    """The controls: the same kind of server with a modern suite shakes hands; a server that asks
    for a client certificate we do not send is reported as exactly that (same TLS 1.2 alert as a
    refused cipher, told apart because it comes after the ServerHello)."""
    tls12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    modern = server_context(ec_pki, versions=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256")
    wants_cert = server_context(ec_pki, versions=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256",
                                require_client_cert=True)
    step = RestStep(alias="partner", path="/")
    with RawServer(ssl_context=modern) as fine, RestExecutor(make_registry(ec_files, fine.url())) as rest:
        result = rest.run(step)
    assert result.ok, result.error
    assert result.tls is not None
    assert (result.tls.version, result.tls.cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    with RawServer(ssl_context=wants_cert) as strict, \
            RestExecutor(make_registry(ec_files, strict.url(), mutual=False)) as rest:
        result = rest.run(step)
    assert isinstance(result.error, ClientCertNotSentError), result.error


# --- host name checks and system trust -------------------------------------------------------------


def hostile_environment(monkeypatch: pytest.MonkeyPatch, files: PkiFiles) -> None:
    """Everything outside the profile that could loosen verification or add trust."""
    for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, str(files.root_pem))
    monkeypatch.setenv("SSL_CERT_DIR", str(files.root_pem.parent))
    monkeypatch.setenv("PYTHONHTTPSVERIFY", "0")
    monkeypatch.setattr(ssl, "_create_default_https_context", ssl._create_unverified_context)


def test_the_host_name_is_checked_whatever_the_environment_says(
        ec_pki: Pki, ec_files: PkiFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    hostile_environment(monkeypatch, ec_files)
    with RawServer(ssl_context=server_context(ec_pki)) as server:
        # The certificate names localhost only; 127.0.0.1 is another name.
        aliases = write_aliases(tmp_path / "aliases", ec_files, {"by_ip": server.url("127.0.0.1")})
        code, report, err = run_json(capsys, write_flow(tmp_path / "flow.json", ["by_ip"]), aliases)
    assert code == 1
    assert report["steps"][0]["error"]["code"] == "tls.hostname_mismatch"
    assert server.requests == []
    assert "insecure" not in err


def test_system_trust_is_openssls_store_never_the_environments(
        ec_pki: Pki, ec_files: PkiFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    hostile_environment(monkeypatch, ec_files)
    cafile, capath = system_trust_locations()
    assert cafile != str(ec_files.root_pem)
    assert capath != str(ec_files.root_pem.parent)
    with RawServer(ssl_context=server_context(ec_pki)) as server:
        # System trust only: the partner's private root is in the environment's bundles, not in
        # OpenSSL's store, so it must not be trusted.
        system_only = write_aliases(tmp_path / "system", ec_files, {"p": server.url()}, system_trust=True,
                                    trust=False)
        code, report, _ = run_json(capsys, write_flow(tmp_path / "flow.json", ["p"]), system_only)
        assert code == 1
        assert report["steps"][0]["error"]["code"] == "tls.server_untrusted"
        # The profile's own trust store cert, with system trust off: trusted.
        own_trust = write_aliases(tmp_path / "own", ec_files, {"p": server.url()}, system_trust=False)
        code, report, _ = run_json(capsys, write_flow(tmp_path / "flow.json", ["p"]), own_trust)
        assert code == 0, report
    assert len(server.requests) == 1


def test_a_profile_that_trusts_nothing_is_refused(ec_files: PkiFiles, tmp_path: Path) -> None:
    directory = write_aliases(tmp_path / "aliases", ec_files, {"p": "https://localhost:1"}, trust=False)
    with pytest.raises(SchemaError) as caught:
        Registry.load(directory)
    assert "trusts nothing" in str(caught.value)


# --- insecure_skip_verify is loud -----------------------------------------------------------------


@pytest.fixture
def untrusted_server(rsa_pki: Pki) -> Any:
    """A partner whose certificate chains to a root the profile does not trust (the EC PKI's
    aliases trust another root) and names only localhost."""
    with RawServer(ssl_context=server_context(rsa_pki)) as server:
        yield server


def insecure_aliases(tmp_path: Path, files: PkiFiles, server: RawServer) -> Path:
    return write_aliases(tmp_path / "aliases", files, {"lax": server.url(), "lax_by_ip": server.url("127.0.0.1")},
                         insecure=True)


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning[insecure]")]


def test_insecure_run_warns_once_per_alias_on_every_run_and_the_json_says_insecure(
        untrusted_server: RawServer, ec_files: PkiFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    hostile_environment(monkeypatch, ec_files)
    aliases = insecure_aliases(tmp_path, ec_files, untrusted_server)
    flow = write_flow(tmp_path / "flow.json", ["lax", "lax", "lax_by_ip"])
    for _ in range(2):  # every run warns again
        code, report, err = run_json(capsys, flow, aliases, "--iterations", "3")
        assert code == 0, report
        found = warnings_in(err)
        assert len(found) == 2, err  # once per alias, not per step or iteration
        assert any("alias 'lax'" in line for line in found)
        assert any("alias 'lax_by_ip'" in line for line in found)
        assert all("insecure_skip_verify" in line for line in found)
        assert "hint: anyone on the network path" in err
        for iteration in report["iterations"]:
            assert iteration["insecure"] is True
            assert [step.get("insecure") for step in iteration["steps"]] == [True, True, True]


def test_insecure_run_shows_in_the_text_report_and_junit(
        untrusted_server: RawServer, ec_files: PkiFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aliases = insecure_aliases(tmp_path, ec_files, untrusted_server)
    flow = write_flow(tmp_path / "flow.json", ["lax"])
    junit = tmp_path / "junit.xml"
    code, out, err = run_cli(capsys, "run", flow, "--aliases", aliases, "--report", junit)
    assert code == 0, out + err
    assert len(warnings_in(err)) == 1
    assert "INSECURE" in out.splitlines()[0]
    assert "insecure: the partner's certificate and host name were not verified" in out
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    suite_properties = {p.get("name"): p.get("value") for p in suite.iterfind("properties/property")}
    assert suite_properties["insecure"] == "true"
    case = suite.find("testcase")
    assert case is not None
    assert {p.get("name"): p.get("value") for p in case.iterfind("properties/property")} == {"insecure": "true"}


def test_insecure_flowrun_test_warns_once_per_alias_across_parallel_workers(
        untrusted_server: RawServer, ec_files: PkiFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aliases = insecure_aliases(tmp_path, ec_files, untrusted_server)
    flows = tmp_path / "flows"
    for index in range(6):
        write_flow(flows / f"f{index}.json", ["lax"], name=f"f{index}")
    report = tmp_path / "report.json"
    junit = tmp_path / "junit.xml"
    code, out, err = run_cli(capsys, "test", flows, "--aliases", aliases, "--parallel", "3", "--json-report", report,
                             "--report", junit)
    assert code == 0, out + err
    assert len(warnings_in(err)) == 1
    data = json.loads(report.read_text())
    assert [flow["insecure"] for flow in data["flows"]] == [True] * 6
    assert all(p.get("value") == "true"
               for p in ET.parse(junit).getroot().iterfind("testsuite/properties/property[@name='insecure']"))


def test_validate_warns_about_an_insecure_profile(ec_files: PkiFiles, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    aliases = write_aliases(tmp_path / "aliases", ec_files, {"lax": "https://localhost:1"}, insecure=True)
    flow = write_flow(tmp_path / "flow.json", ["lax"])
    code, out, _ = run_cli(capsys, "validate", flow, "--aliases", aliases)
    assert code == 0  # a warning, not an error
    assert "alias 'lax' does not verify the partner's certificate" in out
    assert "posture.json" in out  # where the setting is
    code, out, _ = run_cli(capsys, "validate", flow, "--aliases", aliases, "--json")
    problems = json.loads(out)["problems"]
    assert [p["severity"] for p in problems if "insecure_skip_verify" in p["message"]] == ["warning"]


def test_the_python_api_logs_the_warning_and_marks_the_result(
        untrusted_server: RawServer, ec_files: PkiFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    aliases = insecure_aliases(tmp_path, ec_files, untrusted_server)
    flow = write_flow(tmp_path / "flow.json", ["lax", "lax"])
    with caplog.at_level(logging.WARNING, logger="flowrun"):
        result: FlowResult = run_flow(flow, aliases=aliases)
    assert result.ok, result.error
    assert result.insecure
    assert all(step.insecure for step in result.steps)
    messages = [record.getMessage() for record in caplog.records if record.name == "flowrun"]
    assert len(messages) == 1
    assert "alias 'lax'" in messages[0]
    assert "insecure_skip_verify" in messages[0]


def test_a_verified_run_is_never_marked_insecure(ec_pki: Pki, ec_files: PkiFiles, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with RawServer(ssl_context=server_context(ec_pki)) as server:
        aliases = write_aliases(tmp_path / "aliases", ec_files, {"ok": server.url()})
        code, report, err = run_json(capsys, write_flow(tmp_path / "flow.json", ["ok"]), aliases)
    assert code == 0
    assert "insecure" not in report
    assert "insecure" not in report["steps"][0]
    assert warnings_in(err) == []
