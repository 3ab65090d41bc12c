"""Secrets never show: every CLI command, on success and on each failure path, with known secret
values, and nothing of them in standard output, standard error, JSON, JUnit and HTML reports, or log
output (the ``logging`` module at DEBUG: httpx and httpcore log every request line).

Secrets come in through environment variables and secret files: the keystore password, a key
password of its own (a keytool-made JKS), an API key in a header and one in the query string,
a bearer token, a basic-auth password, an OAuth client secret and the access tokens the partner
issued. Wrong values (a wrong store password, a wrong client secret) are secrets too.

Private keys never reach the disk in plaintext: while a flow runs over mutual TLS (and again with
``os.memfd_create`` removed, the fallback path), a thread watches the temporary directory and the
working directory for any file holding the key.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from cryptography.hazmat.primitives import serialization

from flowrun._cli import main
from flowrun._tls._cache import clear_caches
from flowrun.testing import PartnerServer, Pki, make_pki
from tests._keytool import CA, build_keytool_store, pem

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "flowrun" / "_demo" / "files"

STORE_PASSWORD = "Sx-store-7f3a9c41"
KEY_PASSWORD = "Sx-keypw-2b8e41d0"
WRONG_STORE_PASSWORD = "Sx-wrongstore-5d6e"
WRONG_KEY_PASSWORD = "Sx-wrongkey-8a9b"
API_KEY = "Sx-apikey-91c0d2ee"
QUERY_KEY = "Sx-querykey-55aa0f"
BEARER_TOKEN = "Sx-bearer-0c1d2e3f"
OAUTH_CLIENT = "scan-client"
OAUTH_SECRET = "Sx-oauthsecret-7788"
WRONG_OAUTH_SECRET = "Sx-wrongoauth-6655"
BASIC_USER = "svc"
BASIC_PASSWORD = "Sx-basicpw-3344cc"

SECRETS = [STORE_PASSWORD, KEY_PASSWORD, WRONG_STORE_PASSWORD, WRONG_KEY_PASSWORD, API_KEY, QUERY_KEY,
           BEARER_TOKEN, OAUTH_SECRET, WRONG_OAUTH_SECRET, BASIC_PASSWORD]
# How some of them travel: basic credentials, and OAuth client authentication, base64-encoded.
ENCODED = [base64.b64encode(f"{user}:{password}".encode()).decode() for user, password in
           ((BASIC_USER, BASIC_PASSWORD), (OAUTH_CLIENT, OAUTH_SECRET), (OAUTH_CLIENT, WRONG_OAUTH_SECRET))]

ENVIRONMENT = {
    "SCAN_KEY_PASSWORD": KEY_PASSWORD,
    "SCAN_WRONG_STORE": WRONG_STORE_PASSWORD,
    "SCAN_WRONG_KEY": WRONG_KEY_PASSWORD,
    "SCAN_API_KEY": API_KEY,
    "SCAN_QUERY_KEY": QUERY_KEY,
    "SCAN_BEARER": BEARER_TOKEN,
    "SCAN_OAUTH_SECRET": OAUTH_SECRET,
    "SCAN_OAUTH_WRONG": WRONG_OAUTH_SECRET,
    "SCAN_STORE_PASSWORD": STORE_PASSWORD,
}


@attrs.frozen
class World:
    directory: Path
    aliases: Path
    flows: Path
    keystore: Path
    partner: PartnerServer
    pki: Pki


def _ca(pki_key: Any, tmp: Path, name: str) -> CA:
    path = tmp / f"{name}.pem"
    path.write_bytes(pem(pki_key.certificate))
    return CA(name=name, key=pki_key.private_key, cert=pki_key.certificate, cert_path=path, tmp=tmp)


def _records(world_dir: Path, keystore: Path, stranger: Path, root: Path, url: str) -> list[dict[str, Any]]:
    password_file = world_dir / "secrets" / "store-password"
    basic_file = world_dir / "secrets" / "basic-password"

    def keystore_record(name: str, file: Path, password: dict[str, str],
                        key_password: dict[str, str] | None) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": "keystore", "name": name, "type": "jks", "file": str(file),
                                  "password": password, "key_alias": "client"}
        if key_password is not None:
            record["key_password"] = key_password
        return record

    records: list[dict[str, Any]] = [
        keystore_record("client", keystore, {"file": str(password_file)}, {"env": "SCAN_KEY_PASSWORD"}),
        keystore_record("wrong_store", keystore, {"env": "SCAN_WRONG_STORE"}, {"env": "SCAN_KEY_PASSWORD"}),
        keystore_record("wrong_key", keystore, {"file": str(password_file)}, {"env": "SCAN_WRONG_KEY"}),
        keystore_record("missing_env", keystore, {"env": "SCAN_NEVER_SET"}, None),
        keystore_record("stranger", stranger, {"env": "SCAN_STORE_PASSWORD"}, None),
        {"kind": "trust_store_cert", "name": "root", "file": str(root)},
        {"kind": "credential", "name": "api_key", "type": "api_key", "header": "X-API-Key",
         "key": {"env": "SCAN_API_KEY"}},
        {"kind": "credential", "name": "query_key", "type": "api_key", "query": "api_key",
         "key": {"env": "SCAN_QUERY_KEY"}},
        {"kind": "credential", "name": "bearer", "type": "bearer", "token": {"env": "SCAN_BEARER"}},
        {"kind": "credential", "name": "basic", "type": "basic", "username": BASIC_USER,
         "password": {"file": str(basic_file)}},
        {"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials",
         "token_url": f"{url}/v2/oauth/token", "client_id": OAUTH_CLIENT,
         "client_secret": {"env": "SCAN_OAUTH_SECRET"}},
        {"kind": "credential", "name": "oauth_bad", "type": "oauth2_client_credentials",
         "token_url": f"{url}/v2/oauth/token", "client_id": OAUTH_CLIENT, "client_secret": {"env": "SCAN_OAUTH_WRONG"}},
    ]
    for keystore_name in ("client", "wrong_store", "wrong_key", "missing_env", "stranger"):
        records.append({"kind": "protocol_profile", "name": f"p_{keystore_name}", "keystore": keystore_name,
                        "trust_store_certs": ["root"], "use_system_trust": False})

    def alias(name: str, profile: str, credential: str | None, base: str = "/v2") -> dict[str, Any]:
        connection: dict[str, Any] = {"url": f"{url}{base}", "mutual_authentication": True,
                                      "protocol_profile": f"p_{profile}", "timeout_s": 10}
        if credential is not None:
            connection["credential"] = credential
        return {"kind": "alias", "name": name, "connection": connection}

    records += [
        alias("bank", "client", "api_key"),
        alias("bank_query", "client", "query_key"),
        alias("bank_basic", "client", "basic"),
        alias("bank_bearer", "client", "bearer"),
        alias("bank_oauth", "client", "oauth"),
        alias("bank_oauth_bad", "client", "oauth_bad"),
        alias("bank_wrong_store", "wrong_store", "api_key"),
        alias("bank_wrong_key", "wrong_key", "api_key"),
        alias("bank_missing_env", "missing_env", "api_key"),
        alias("bank_stranger", "stranger", "api_key"),
        alias("ledger", "client", "api_key", "/v2/ledger"),
    ]
    return records


def _step(step_id: str, alias: str, path: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "rest", "alias": alias, "path": path, **extra}


FLOWS: dict[str, dict[str, Any]] = {
    "ok": {"name": "all_credentials", "steps": [
        _step("header_key", "bank", "/accounts/1", response={"outputs": {"balance": "body.balance"}},
              **{"assert": [{"that": "outputs.balance", "gt": 0}]}),
        _step("query_key", "bank_query", "/accounts/2"),
        _step("basic", "bank_basic", "/accounts/3"),
        _step("oauth", "bank_oauth", "/protected/accounts/4", response={"outputs": {"who": "body.account"}}),
        {"id": "ledger", "type": "soap", "alias": "ledger", "wsdl": str(DEMO / "steps" / "ledger.wsdl"),
         "operation": "GetBalance", "args": {"account": "42"}, "response": {"outputs": {"balance": "body.balance"}}},
    ]},
    "status_401": {"name": "bearer_refused", "steps": [_step("bearer", "bank_bearer", "/protected/accounts/1")]},
    "oauth_invalid_client": {"name": "oauth_refused", "steps": [_step("oauth", "bank_oauth_bad", "/protected/x")]},
    "assertion": {"name": "assertion_fails", "steps": [
        _step("balance", "bank", "/accounts/5", response={"outputs": {"balance": "body.balance"}},
              **{"assert": [{"that": "outputs.balance", "equals": -1}]})]},
    "refused_client_cert": {"name": "stranger", "steps": [_step("s", "bank_stranger", "/accounts/1")]},
    "wrong_store_password": {"name": "wrong_store", "steps": [_step("s", "bank_wrong_store", "/accounts/1")]},
    "wrong_key_password": {"name": "wrong_key", "steps": [_step("s", "bank_wrong_key", "/accounts/1")]},
    "missing_env": {"name": "missing_env", "steps": [_step("s", "bank_missing_env", "/accounts/1")]},
    "unknown_alias": {"name": "unknown_alias", "steps": [_step("s", "bank_nope", "/accounts/1")]},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("secret-scan")
    pki = make_pki()
    pki_files = pki.write(directory / "pki", keystore_password=STORE_PASSWORD)
    keystore = build_keytool_store(
        directory / "keytool", storetype="JKS", storepass=STORE_PASSWORD, keypass=KEY_PASSWORD,
        ca=_ca(pki.root, directory, "partner-root"), intermediate=_ca(pki.intermediate, directory, "partner-inter"),
    ).path
    stranger = make_pki().write(directory / "stranger", keystore_password=STORE_PASSWORD).client.jks
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "store-password").write_text(STORE_PASSWORD + "\n")
    (secrets_dir / "basic-password").write_text(BASIC_PASSWORD + "\n")
    with PartnerServer(pki, api_keys={API_KEY}, oauth_clients={OAUTH_CLIENT: OAUTH_SECRET}) as partner:
        aliases = directory / "aliases"
        aliases.mkdir()
        (aliases / "scan.json").write_text(json.dumps(
            _records(directory, keystore, stranger, pki_files.root_pem, partner.url), indent=1))
        flows = directory / "flows"
        flows.mkdir()
        for name, flow in FLOWS.items():
            (flows / f"{name}.json").write_text(json.dumps(flow, indent=1))
        yield World(directory, aliases, flows, keystore, partner, pki)


@pytest.fixture
def scan_env(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SCAN_NEVER_SET", raising=False)
    monkeypatch.setenv("FLOWRUN_ALIASES", str(world.aliases))


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything any library logs, at DEBUG, with the arguments formatted in."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)


def _known_secrets(world: World) -> list[str]:
    return SECRETS + ENCODED + world.partner.access_tokens


def _assert_clean(world: World, where: str, text: str) -> None:
    found = [secret for secret in _known_secrets(world) if secret in text]
    assert not found, f"{where} shows secrets {found}"


def _flow(world: World, name: str) -> str:
    return str(world.flows / f"{name}.json")


# Each command: its arguments (``{flows}``, ``{report}``... filled in), the exit code expected, and a
# text that shows the intended path was taken (the failure paths fail where they should).
COMMANDS: dict[str, tuple[list[str], int, str]] = {
    "inspect": (["keystore", "inspect", "{keystore}", "--password-env", "SCAN_STORE_PASSWORD",
                 "--key-password-env", "SCAN_KEY_PASSWORD"],
        0, "usable as a client identity"),
    "inspect_json": (["keystore", "inspect", "{keystore}", "--password-file", "{secrets}/store-password",
                      "--key-password-env", "SCAN_KEY_PASSWORD", "--json"],
        0, '"identity.summary"'),
    "inspect_wrong_store_password": (["keystore", "inspect", "{keystore}", "--password-env", "SCAN_WRONG_STORE"],
        2, "keystore.wrong_password"),
    "inspect_wrong_key_password": (["keystore", "inspect", "{keystore}", "--password-env", "SCAN_STORE_PASSWORD",
                                    "--key-password-env", "SCAN_WRONG_KEY", "--json"],
        1, "key.wrong_password"),
    "inspect_missing_env": (["keystore", "inspect", "{keystore}", "--password-env", "SCAN_NEVER_SET"],
        2, "SCAN_NEVER_SET"),
    "alias_list": (["alias", "list"],
        0, "bank_oauth"),
    "alias_list_json": (["alias", "list", "--json"],
        0, "bank_oauth"),
    "alias_show": (["alias", "show", "bank_basic"],
        0, "file "),
    "alias_show_json": (["alias", "show", "bank_oauth", "--json"],
        0, "SCAN_OAUTH_SECRET (set)"),
    "alias_show_unknown": (["alias", "show", "bank_nope"],
        2, "bank_nope"),
    "alias_test": (["alias", "test", "bank"],
        0, "ok: the TLS path works"),
    "alias_test_query_json": (["alias", "test", "bank_query", "--json"],
        0, '"ok": true'),
    "alias_test_oauth": (["alias", "test", "bank_oauth", "--path", "/protected/accounts/1", "--method", "GET"],
        0, "ok: the TLS path works"),
    "alias_test_wrong_store": (["alias", "test", "bank_wrong_store"],
        2, "keystore.wrong_password"),
    "alias_test_wrong_key_json": (["alias", "test", "bank_wrong_key", "--json"],
        2, "keystore.wrong_key_password"),
    "alias_test_missing_env": (["alias", "test", "bank_missing_env"],
        2, "SCAN_NEVER_SET"),
    "alias_test_stranger": (["alias", "test", "bank_stranger", "--json"],
        1, "tls.client_cert_rejected"),
    "alias_test_unknown": (["alias", "test", "bank_nope"],
        2, "bank_nope"),
    "certs_check": (["certs", "check"],
        1, "keystore.wrong_password"),  # the records with wrong passwords cannot be read
    "certs_check_json": (["certs", "check", "--json"],
        1, "keystore.wrong_key_password"),
    "schema": (["schema", "aliases"],
        0, '"$defs"'),
    "validate": (["validate", "{flows}"],
        2, "bank_nope"),  # the unknown alias flow
    "validate_json": (["validate", "{flows}", "--json"],
        2, "bank_nope"),
    "run": (["run", "{flow:ok}"],
        0, "passed"),
    "run_json": (["run", "{flow:ok}", "--json"],
        0, '"passed"'),
    "run_junit_verbose": (["run", "{flow:ok}", "--report", "{report}", "-v", "--html", "{html}"],
        0, "passed"),
    "run_iterations_verbose": (["run", "{flow:ok}", "--iterations", "2", "-v", "--json"],
        0, '"passed"'),
    "run_show_body_verbose": (["run", "{flow:ok}", "--show-body", "-v"],
        0, "body = "),
    "run_401": (["run", "{flow:status_401}", "-v", "--report", "{report}", "--html", "{html}"],
        1, "HTTP 401"),
    "run_401_json": (["run", "{flow:status_401}", "--json"],
        1, "http.unexpected_status"),
    "run_oauth_invalid_client": (["run", "{flow:oauth_invalid_client}", "-v", "--json"],
        1, "invalid_client"),
    "run_oauth_invalid_client_junit": (["run", "{flow:oauth_invalid_client}", "--report", "{report}",
                                        "--html", "{html}"],
        1, "invalid_client"),
    "run_assertion": (["run", "{flow:assertion}", "-v", "--report", "{report}", "--html", "{html}"],
        1, "assertion failed"),
    "run_refused_client_cert": (["run", "{flow:refused_client_cert}", "-v", "--json"],
        1, "tls.client_cert_rejected"),
    "run_wrong_store_password": (["run", "{flow:wrong_store_password}", "-v"],
        2, "keystore.wrong_password"),
    "run_wrong_key_password": (["run", "{flow:wrong_key_password}", "--json"],
        2, "keystore.wrong_key_password"),
    "run_missing_env": (["run", "{flow:missing_env}", "--report", "{report}"],
        2, "SCAN_NEVER_SET"),
    "run_unknown_alias": (["run", "{flow:unknown_alias}", "--json"],
        2, "bank_nope"),
    "test": (["test", "{flows}", "--report", "{report}", "--json-report", "{json_report}", "-v",
              "--html", "{html}"],
        2, "invalid_client"),
    "test_parallel": (["test", "{flows}", "--parallel", "3", "--report", "{report}", "--json-report", "{json_report}",
                       "--html", "{html}"],
        2, "tls.client_cert_rejected"),
}


def _argv(template: list[str], world: World, tmp_path: Path) -> list[str]:
    values = {"keystore": str(world.keystore), "secrets": str(world.directory / "secrets"), "flows": str(world.flows),
              "report": str(tmp_path / "junit.xml"), "json_report": str(tmp_path / "report.json"),
              "html": str(tmp_path / "report.html")}
    argv = []
    for arg in template:
        if arg.startswith("{flow:"):
            argv.append(_flow(world, arg[len("{flow:"):-1]))
        else:
            argv.append(arg.format(**values))
    return argv


@pytest.mark.keytool
@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.usefixtures("scan_env")
def test_no_secret_in_any_output(command: str, world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 debug_log: io.StringIO) -> None:
    template, expected, sign = COMMANDS[command]
    code = main(_argv(template, world, tmp_path))
    captured = capsys.readouterr()
    assert code == expected, (captured.out[-2000:], captured.err[-2000:])
    assert sign in captured.out + captured.err
    assert "Traceback" not in captured.err
    _assert_clean(world, "standard output", captured.out)
    _assert_clean(world, "standard error", captured.err)
    _assert_clean(world, "the log", debug_log.getvalue())
    for report in (tmp_path / "junit.xml", tmp_path / "report.json", tmp_path / "report.html"):
        if report.suffix == ".html" and "{html}" in template:
            assert report.exists(), "the HTML report was not written"
        if report.exists():
            _assert_clean(world, report.name, report.read_text())
    if "-v" in template and command.startswith("run") and expected != 2:
        assert "> GET https://" in captured.err  # the verbose request lines were there to scan


@pytest.mark.keytool
@pytest.mark.usefixtures("scan_env")
def test_the_scan_covers_real_secrets(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      debug_log: io.StringIO) -> None:
    """The secrets were used: the partner saw them, and it issued the tokens that are scanned for."""
    before = len(world.partner.requests)
    assert main(["run", _flow(world, "ok"), "-v"]) == 0
    capsys.readouterr()
    seen = world.partner.requests[before:]
    assert any(r.header("X-API-Key") == API_KEY for r in seen)
    assert any(("api_key", QUERY_KEY) in r.query for r in seen)
    assert any(r.header("Authorization") == f"Basic {ENCODED[0]}" for r in seen)
    assert world.partner.access_tokens
    assert any(r.header("Authorization") == f"Bearer {world.partner.access_tokens[-1]}" for r in seen)
    assert "HTTP Request" in debug_log.getvalue()  # httpx's request lines were captured and scanned


@pytest.mark.usefixtures("scan_env")
def test_demo_json_shows_no_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   debug_log: io.StringIO) -> None:
    from flowrun import _demo, testing

    demo_secrets: list[str] = [_demo.API_KEY, _demo.OAUTH_CLIENT[1]]
    partners: list[PartnerServer] = []
    prepare = _demo.prepare

    def recording_prepare(directory: Path, pki: Pki, *, password: str | None = None) -> Any:
        setup = prepare(directory, pki, password=password)
        demo_secrets.extend(setup.environment.values())
        return setup

    class RecordingPartner(PartnerServer):
        def start(self) -> PartnerServer:
            partners.append(self)
            return super().start()

    monkeypatch.setattr(_demo, "prepare", recording_prepare)
    monkeypatch.setattr(testing, "PartnerServer", RecordingPartner)
    assert main(["demo", "--json"]) == 0
    captured = capsys.readouterr()
    tokens = [token for partner in partners for token in partner.access_tokens]
    assert tokens and len(demo_secrets) >= 4
    for secret in [*demo_secrets, *tokens]:
        for where, text in (("stdout", captured.out), ("stderr", captured.err), ("log", debug_log.getvalue())):
            assert secret not in text, f"demo {where} shows a secret"


# --- private keys never on disk ------------------------------------------------------------------


def _key_forms(world: World) -> list[bytes]:
    """Every plaintext form of the client's private key worth looking for."""
    from flowrun._tls._jks import read_jks

    contents = read_jks(world.keystore.read_bytes(), password=STORE_PASSWORD)
    entry = contents.private_key_entries()[0]
    assert entry.decrypt_key is not None
    key = entry.decrypt_key(KEY_PASSWORD)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem_body = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).splitlines()[1]
    forms = [der, pem_body, b"-----BEGIN PRIVATE KEY-----", b"-----BEGIN EC PRIVATE KEY-----"]
    scalar = getattr(key, "private_numbers", None)
    if scalar is not None:
        value = scalar().private_value
        forms.append(value.to_bytes((value.bit_length() + 7) // 8, "big"))
    return forms


class _DiskWatch:
    """Reads every file under the watched directories, again and again, until stopped."""

    def __init__(self, directories: list[Path], forms: list[bytes]) -> None:
        self.directories = directories
        self.forms = forms
        self.found: list[str] = []
        self.files_seen: set[str] = set()
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.scan()  # and once more after the run

    def _watch(self) -> None:
        while not self._stop.is_set():
            self.scan()
            self.rounds += 1

    def scan(self) -> None:
        for directory in self.directories:
            for root, _, names in os.walk(directory):
                for name in names:
                    path = Path(root) / name
                    try:
                        data = path.read_bytes() if path.is_file() else b""
                    except OSError:
                        continue  # removed between listing and reading
                    self.files_seen.add(str(path))
                    if any(form in data for form in self.forms):
                        self.found.append(str(path))


@pytest.mark.keytool
@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "no_memfd"])
@pytest.mark.usefixtures("scan_env")
def test_private_key_never_written_in_plaintext(memfd: bool, world: World, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.chdir(work)
    if not memfd:
        monkeypatch.delattr(os, "memfd_create")
    clear_caches()  # the SSL context is built during this run, not reused from an earlier one
    forms = _key_forms(world)
    report = work / "junit.xml"
    with _DiskWatch([scratch, work, world.directory], forms) as watch:
        assert main(["run", _flow(world, "ok"), "--report", str(report), "--json"]) == 0
    capsys.readouterr()
    clear_caches()
    assert watch.rounds > 0 and str(report) in watch.files_seen
    assert watch.found == []
    assert list(scratch.iterdir()) == []  # the fallback's encrypted one-time file is gone too
