"""One redaction layer: unique secrets planted in every credential type never show in any output.

A hostile partner on loopback (real TLS, client certificates required) echoes everything it
receives: request headers and the full request target in a 500 page, the client credentials in an
OAuth ``error_description``, the headers in a SOAP fault, and it redirects to another origin and to
http. Every CLI output (standard output and error, ``--json``, ``--report`` JUnit, ``flowrun test
--json-report``, ``-v`` lines, the DEBUG log) and the embedder's exception ``str`` are searched for
every form of every secret: as is, trimmed, percent-encoded, base64 (Basic ``user:password``),
JSON- and XML-escaped.

The output hygiene rules live here too: escape sequences from partners are shown, not interpreted;
usage errors never echo what was given to a secret option; reports are 0600 and never written
through a link; a redirect to another origin carries no credential and no body.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, unquote_plus

import attrs
import pytest

from flowrun import RestExecutor, RestStep
from flowrun._cli import main
from flowrun._errors import SecretFormatError
from flowrun._flows import AsyncFlowRunner, FlowRunner
from flowrun._models._flow_results import FlowResult
from flowrun._models._redact import Secrets, is_credential_header, visible
from flowrun._registry import Registry
from flowrun.testing import Pki, PkiFiles, make_pki
from tests.hostile._servers import HostileServer
from tests.transport._support import RawRequest, Reply
from tests.transport.conftest import server_context

STORE_PASSWORD = "Rd-store-1f2e3d4c"
BASIC_USER = "rd-user"
BASIC_PASSWORD = "Rd-basic-77aa01"
HEADER_KEY = "Rd-hkey-5c6d7e8f"
QUERY_KEY = "Rd-qkey+/= 9f&x"  # every character that URL encoding changes
BEARER = "Rd-bearer-0a1b2c3d"
OAUTH_CLIENT = "rd-client"
OAUTH_SECRET = "Rd-oauth-+/4455"
WRONG_OAUTH_SECRET = "Rd-wrongoauth-9988"
CUSTOM_TOKEN = "Rd-custom-6f7e8d9c"
CRLF_TOKEN = "Rd-crlf-3b4c5d6e"
WSSE_PASSWORD = "Rd-wsse-<&>-1a2b"
ISSUED_TOKEN = "Rd-issued-tok-8e9f0a1b"
PROXY_USER = "rd-proxy"
PROXY_PASSWORD = "Rd-proxy-4d5e6f70"

PLANTED = [STORE_PASSWORD, BASIC_PASSWORD, HEADER_KEY, QUERY_KEY, BEARER, OAUTH_SECRET, WRONG_OAUTH_SECRET,
           CUSTOM_TOKEN, CRLF_TOKEN, ISSUED_TOKEN, WSSE_PASSWORD, PROXY_PASSWORD]
ENVIRONMENT = {
    "RD_STORE_PASSWORD": STORE_PASSWORD,
    "RD_BASIC": BASIC_PASSWORD + "\n",  # a trailing newline (a Kubernetes secret made from a file): refused
    "RD_BASIC_OK": BASIC_PASSWORD,
    "RD_HEADER_KEY": HEADER_KEY,
    "RD_QUERY_KEY": QUERY_KEY,
    "RD_BEARER": BEARER,
    "RD_OAUTH": OAUTH_SECRET,
    "RD_OAUTH_WRONG": WRONG_OAUTH_SECRET,
    "RD_CRLF": CRLF_TOKEN + "\r\n",
    "RD_CUSTOM": CUSTOM_TOKEN,
    "RD_WSSE": WSSE_PASSWORD,
    "RD_PROXY": PROXY_PASSWORD,
}


def forms(value: str) -> set[str]:
    """Every form in which a secret could leak: the test's own list, not the library's."""
    raw = value.encode()
    found = {value, value.strip(), quote(value, safe=""), quote(value), quote_plus(value),
             base64.b64encode(raw).decode().rstrip("="), json.dumps(value)[1:-1]}
    return {form for form in found if len(form) >= 4}


def all_forms() -> dict[str, str]:
    """form -> the secret it comes from; Basic credentials as they travel, too."""
    table = {form: secret for secret in PLANTED for form in forms(secret)}
    for user, password in ((BASIC_USER, BASIC_PASSWORD), (quote_plus(OAUTH_CLIENT), quote_plus(OAUTH_SECRET)),
                           (quote_plus(OAUTH_CLIENT), quote_plus(WRONG_OAUTH_SECRET)), (PROXY_USER, PROXY_PASSWORD)):
        table[base64.b64encode(f"{user}:{password}".encode()).decode().rstrip("=")] = f"basic {password}"
    return table


def assert_clean(where: str, text: str) -> None:
    leaked = sorted({secret for form, secret in all_forms().items() if form in text})
    assert not leaked, f"{where} shows {leaked}:\n{text[:3000]}"


# --- the partner -------------------------------------------------------------------------------

ANSI = "\x1b[2K\r\x1b[1A\x1b[32mPASS\x1b[0m \x9b31m \u202eevil"


def _echo(request: RawRequest) -> str:
    lines = [f"{request.method} {request.target}"] + [f"{k}: {v}" for k, v in request.headers]
    return "\n".join(lines) + "\n" + request.body.decode("utf-8", "replace")


class Partner:
    """Answers by path; the ``stranger`` (another origin) only records and echoes."""

    def __init__(self) -> None:
        self.other_url = ""
        self.http_url = ""

    def __call__(self, request: RawRequest) -> Reply:
        path = request.target.split("?", 1)[0]
        if path == "/v1/token":
            return self._token(request)
        if path == "/v1/ok":
            return Reply(200, json.dumps({"ok": True}).encode())
        if path == "/v1/echo-json":
            return Reply(200, json.dumps({"seen": _echo(request)}).encode())
        if path == "/v1/away":
            return Reply(307, b"", (("Location", f"{self.other_url}/landing"), ("Content-Length", "0")))
        if path == "/v1/down":
            return Reply(302, b"", (("Location", f"{self.http_url}/plain"), ("Content-Length", "0")))
        if path == "/v1/soap":
            fault = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                     f"<soap:Fault><faultcode>soap:Client</faultcode><faultstring>rejected: "
                     f"{_xml(_echo(request))}</faultstring></soap:Fault></soap:Body></soap:Envelope>")
            return Reply(500, fault.encode(), (("Content-Type", "text/xml; charset=utf-8"),))
        if path == "/v1/ansi":
            return Reply(500, f"error {ANSI}".encode(), (("Content-Type", "text/plain; charset=utf-8"),))
        # The request's credential headers come back as response headers too (httpcore logs those).
        echoed = tuple(("X-Echo", value) for name, value in request.headers if is_credential_header(name))
        return Reply(500, _echo(request).encode(), (("Content-Type", "text/plain"), *echoed))

    @staticmethod
    def _token(request: RawRequest) -> Reply:
        auth = request.header("Authorization") or ""
        user, _, secret = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        user, secret = unquote_plus(user), unquote_plus(secret)
        form = parse_qs(request.body.decode())
        if user == OAUTH_CLIENT and secret == OAUTH_SECRET:
            return Reply(200, json.dumps({"access_token": ISSUED_TOKEN, "expires_in": 3600}).encode())
        description = f"client {user} with secret {secret} (sent as {auth}; form {form}) is unknown"
        return Reply(401, json.dumps({"error": "invalid_client", "error_description": description}).encode())


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@attrs.frozen
class World:
    directory: Path
    aliases: Path
    flows: Path
    partner: HostileServer
    stranger: HostileServer


def _records(files: PkiFiles, url: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {"kind": "keystore", "name": "client", "type": "pkcs12", "file": str(files.client.pkcs12),
         "password": {"env": "RD_STORE_PASSWORD"}},
        {"kind": "trust_store_cert", "name": "root", "file": str(files.root_pem)},
        {"kind": "protocol_profile", "name": "mtls", "keystore": "client", "trust_store_certs": ["root"],
         "use_system_trust": False},
        {"kind": "credential", "name": "basic", "type": "basic", "username": BASIC_USER,
         "password": {"env": "RD_BASIC_OK"}},
        {"kind": "credential", "name": "basic_newline", "type": "basic", "username": BASIC_USER,
         "password": {"env": "RD_BASIC"}},
        {"kind": "credential", "name": "hkey", "type": "api_key", "header": "X-API-Key",
         "key": {"env": "RD_HEADER_KEY"}},
        {"kind": "credential", "name": "qkey", "type": "api_key", "query": "api_key", "key": {"env": "RD_QUERY_KEY"}},
        {"kind": "credential", "name": "bearer", "type": "bearer", "token": {"env": "RD_BEARER"}},
        {"kind": "credential", "name": "crlf", "type": "bearer", "token": {"env": "RD_CRLF"}},
        {"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials",
         "token_url": f"{url}/v1/token", "client_id": OAUTH_CLIENT, "client_secret": {"env": "RD_OAUTH"}},
        {"kind": "credential", "name": "oauth_bad", "type": "oauth2_client_credentials",
         "token_url": f"{url}/v1/token", "client_id": OAUTH_CLIENT, "client_secret": {"env": "RD_OAUTH_WRONG"}},
        {"kind": "credential", "name": "wsse", "type": "wsse_username_token", "username": BASIC_USER,
         "password": {"env": "RD_WSSE"}},
    ]
    for name in ("basic", "basic_newline", "hkey", "qkey", "bearer", "crlf", "oauth", "oauth_bad", "wsse", None):
        connection: dict[str, Any] = {"url": f"{url}/v1", "mutual_authentication": True, "protocol_profile": "mtls",
                                      "timeout_s": 10}
        if name is not None:
            connection["credential"] = name
        else:
            connection["headers"] = {"X-Partner-Token": CUSTOM_TOKEN}
        records.append({"kind": "alias", "name": f"a_{name or 'custom'}", "connection": connection})
    return records


CREDENTIALS = ["basic", "hkey", "qkey", "bearer", "oauth", "custom"]


def _steps(alias: str) -> list[dict[str, Any]]:
    """One step per path of the partner; each fails (except ``ok``), the flow goes on."""
    step_headers = {"X-Session-Token": "{{ env.RD_CUSTOM }}"} if alias == "a_custom" else {}

    def rest(step_id: str, path: str, **extra: Any) -> dict[str, Any]:
        return {"id": step_id, "type": "rest", "alias": alias, "path": path, "headers": step_headers,
                "on_error": "continue", **extra}

    return [
        rest("ok", "/ok"),
        rest("echo", "/echo", method="POST", body={"json": {"note": "hello"}}),
        rest("echo_json", "/echo-json", response={"outputs": {"seen": "body.seen"}},
             **{"assert": [{"that": "outputs.seen", "equals": "nothing"}]}),
        rest("away", "/away", method="POST", body={"json": {"payload": "for the partner only"}}, follow_redirects=True),
        rest("down", "/down", follow_redirects=True),
        rest("ansi", "/ansi"),
        {"id": "soap", "type": "soap", "alias": alias, "path": "/soap", "headers": step_headers,
         "on_error": "continue",
         "envelope": '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                     '<Ping xmlns="urn:x"/></soap:Body></soap:Envelope>'},
    ]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def world(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("redaction")
    files = pki.write(directory / "pki", keystore_password=STORE_PASSWORD)
    handler = Partner()
    tls = server_context(pki)
    plain_tls = server_context(pki, require_client_cert=False)
    with HostileServer(handler, ssl_context=tls) as partner, \
            HostileServer(lambda r: Reply(500, _echo(r).encode(), (("Content-Type", "text/plain"),)),
                          ssl_context=plain_tls) as stranger:
        handler.other_url = stranger.url("127.0.0.1")
        handler.http_url = f"http://localhost:{stranger.port}"
        aliases = directory / "aliases"
        aliases.mkdir()
        (aliases / "partner.json").write_text(json.dumps(_records(files, partner.url()), indent=1))
        flows = directory / "flows"
        flows.mkdir()
        for name in [*CREDENTIALS, "oauth_bad"]:
            flow = {"name": f"leaky_{name}", "env": ["RD_CUSTOM"], "steps": _steps(f"a_{name}")}
            (flows / f"{name}.json").write_text(json.dumps(flow, indent=1))
        soap_only = {"name": "wsse", "steps": [step for step in _steps("a_wsse") if step["type"] == "soap"]}
        (flows / "wsse.json").write_text(json.dumps(soap_only, indent=1))
        for name in ("crlf", "basic_newline"):
            flow = {"name": name, "steps": [{"id": "s", "type": "rest", "alias": f"a_{name}", "path": "/ok"}]}
            (flows / f"{name}.json").write_text(json.dumps(flow, indent=1))
        yield World(directory, aliases, flows, partner, stranger)


@pytest.fixture
def redaction_env(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("FLOWRUN_ALIASES", str(world.aliases))


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
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


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _scan_run(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], debug_log: io.StringIO,
              argv: list[str], expected: int) -> str:
    code, out, err = _run_cli(argv, capsys)
    assert code == expected, (out[-3000:], err[-3000:])
    assert "Traceback" not in out + err
    assert_clean("standard output", out)
    assert_clean("standard error", err)
    assert_clean("the DEBUG log", debug_log.getvalue())
    for written in sorted(tmp_path.iterdir()):
        if written.is_file():
            assert_clean(written.name, written.read_text())
    return out + err


@pytest.mark.parametrize("credential", [*CREDENTIALS, "oauth_bad"])
@pytest.mark.usefixtures("redaction_env")
def test_no_form_of_any_secret_in_any_output(credential: str, world: World, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str], debug_log: io.StringIO) -> None:
    flow = str(world.flows / f"{credential}.json")
    before = len(world.partner.requests)
    text = _scan_run(world, tmp_path, capsys, debug_log,
                     ["run", flow, "-v", "--report", str(tmp_path / "run.xml")], 1)
    sent = world.partner.requests[before:]
    assert sent, "the partner was reached"
    shown = _scan_run(world, tmp_path, capsys, debug_log,
                      ["run", flow, "--json", "--report", str(tmp_path / "json-run.xml")], 1)
    data = json.loads(shown)
    assert data["status"] == "failed"
    tested = _scan_run(world, tmp_path, capsys, debug_log,
                       ["test", flow, "-v", "--report", str(tmp_path / "test.xml"),
                        "--json-report", str(tmp_path / "test.json")], 1)
    assert "1 flow" in tested
    if credential == "oauth_bad":
        assert "invalid_client" in text and "***" in text  # the echoed client secret was masked
        return
    # The partner saw the secret each time: what the scan looks for was really sent.
    echoed = [r for r in sent if r.target.startswith("/v1/echo?") or r.target == "/v1/echo"]
    assert echoed
    assert "> GET https://" in text  # the -v request lines were there to scan
    by_credential = {"basic": ("authorization", "Basic "), "hkey": ("x-api-key", HEADER_KEY),
                     "bearer": ("authorization", f"Bearer {BEARER}"), "oauth": ("authorization", ISSUED_TOKEN),
                     "custom": ("x-partner-token", CUSTOM_TOKEN)}
    if credential in by_credential:
        name, value = by_credential[credential]
        assert value in (echoed[0].header(name) or "")
    else:
        assert f"api_key={quote(QUERY_KEY, safe='')}" in echoed[0].target
        assert "?api_key=***" in text  # shown as masked in the -v URL, not left out
    if credential == "custom":
        assert "> X-Partner-Token: ***" in text and "> X-Session-Token: ***" in text


@pytest.mark.usefixtures("redaction_env")
def test_a_redirect_to_another_origin_carries_no_credential_header_and_no_body(world: World, tmp_path: Path,
                                                                               capsys: pytest.CaptureFixture[str],
                                                                               debug_log: io.StringIO) -> None:
    before = len(world.stranger.requests)
    _scan_run(world, tmp_path, capsys, debug_log, ["run", str(world.flows / "custom.json")], 1)
    _scan_run(world, tmp_path, capsys, debug_log, ["run", str(world.flows / "hkey.json")], 1)
    landed = world.stranger.requests[before:]
    assert len(landed) == 2
    for request in landed:
        assert request.method == "POST"  # a 307 keeps the method...
        assert request.body == b""  # ...but the body was for the partner only
        assert request.header("Content-Length") in (None, "0")
        assert not [name for name, _ in request.headers if is_credential_header(name)], request.headers
        assert request.client_cert_sha256 is None


@pytest.mark.parametrize(("flow", "variable"), [("crlf", "RD_CRLF"), ("basic_newline", "RD_BASIC")])
@pytest.mark.usefixtures("redaction_env")
def test_a_secret_with_a_line_break_is_named_and_refused(flow: str, variable: str, world: World, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         debug_log: io.StringIO) -> None:
    before = len(world.partner.requests)
    text = _scan_run(world, tmp_path, capsys, debug_log,
                     ["run", str(world.flows / f"{flow}.json"), "-v", "--report", str(tmp_path / "r.xml")], 2)
    assert f"the secret from environment variable {variable} contains a line break (CR or LF) at its end" in text
    assert "strip it" in text
    assert "Illegal header value" not in text
    assert len(world.partner.requests) == before  # nothing was sent


@pytest.mark.usefixtures("redaction_env")
@pytest.mark.parametrize("given_in", ["connection", "HTTP_PROXY"])
def test_a_proxy_password_echoed_by_the_proxy_is_masked(world: World, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        debug_log: io.StringIO, monkeypatch: pytest.MonkeyPatch,
                                                        given_in: str) -> None:
    # A proxy that answers a plain-http request itself, with an error page quoting the request it
    # got: Proxy-Authorization included. Nothing names that page a credential: only the secret does.
    with HostileServer(lambda r: Reply(502, _echo(r).encode(), (("Content-Type", "text/plain"),))) as proxy:
        aliases = tmp_path / "aliases"
        aliases.mkdir()
        connection: dict[str, Any] = {"url": "http://partner.invalid/v1", "timeout_s": 10}
        if given_in == "connection":
            connection["proxy"] = {"url": proxy.url("127.0.0.1"), "username": PROXY_USER,
                                   "password": {"env": "RD_PROXY"}}
        else:
            for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv("HTTP_PROXY", f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
        (aliases / "proxied.json").write_text(json.dumps([{"kind": "alias", "name": "a_proxied",
                                                            "connection": connection}]))
        flow = tmp_path / "proxied.json"
        flow.write_text(json.dumps({"name": "proxied", "steps": [
            {"id": "status", "type": "rest", "alias": "a_proxied", "path": "/status"}]}))
        for argv in (["run", str(flow), "-v", "--report", str(tmp_path / "run.xml")],
                     ["run", str(flow), "--json"],
                     ["test", str(flow), "--report", str(tmp_path / "test.xml"),
                      "--json-report", str(tmp_path / "test.json")]):
            text = _scan_run(world, tmp_path, capsys, debug_log, [*argv, "--aliases", str(aliases)], 1)
            assert "Proxy-Authorization: ***" in text or "Proxy-Authorization: Basic ***" in text, text[-2000:]
        sent = proxy.requests[-1]
        assert sent.target == "http://partner.invalid/v1/status"
        expected = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
        assert sent.header("Proxy-Authorization") == f"Basic {expected}"  # the password went out, and came back

        with FlowRunner(aliases=aliases) as runner:
            step = runner.run(flow).steps[0]
        assert step.error is not None
        assert_clean("str", str(step.error))
        assert_clean("dict", json.dumps(step.to_dict(include_body=True), default=str))
        assert_clean("result repr", repr(step))


@pytest.mark.usefixtures("redaction_env")
def test_embedders_get_masked_exceptions_and_results(world: World, debug_log: io.StringIO) -> None:
    with FlowRunner(aliases=world.aliases) as runner:
        for credential in CREDENTIALS:
            result = runner.run(world.flows / f"{credential}.json")
            assert not result.ok
            for step in result.failed_steps:
                assert step.error is not None
                assert_clean(f"{credential}/{step.step_id} str", str(step.error))
                assert_clean(f"{credential}/{step.step_id} repr", repr(step.error))
                assert_clean(f"{credential}/{step.step_id} dict", json.dumps(step.to_dict(), default=str))
                assert_clean(f"{credential}/{step.step_id} result repr", repr(step))
                with pytest.raises(type(step.error)) as raised:
                    step.raise_for_failure()
                assert_clean(f"{credential}/{step.step_id} raised", str(raised.value))
    assert_clean("the DEBUG log", debug_log.getvalue())
    with pytest.raises(SecretFormatError, match="RD_CRLF"), FlowRunner(aliases=world.aliases) as runner:
        runner.run(world.flows / "crlf.json").raise_for_failure()


@pytest.mark.usefixtures("redaction_env")
def test_a_ws_security_password_echoed_in_a_fault_is_masked(world: World, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            debug_log: io.StringIO) -> None:
    before = len(world.partner.requests)
    text = _scan_run(world, tmp_path, capsys, debug_log,
                     ["run", str(world.flows / "wsse.json"), "-v", "--report", str(tmp_path / "r.xml")], 1)
    assert "soap.fault" in text and "***" in text
    sent = world.partner.requests[before:]
    assert sent and _xml(WSSE_PASSWORD).encode() in sent[-1].body  # the password went out, and came back


@pytest.mark.usefixtures("redaction_env")
def test_async_runs_are_masked_too(world: World) -> None:
    async def run_all() -> list[FlowResult]:
        async with AsyncFlowRunner(aliases=world.aliases) as runner:
            return list(await asyncio.gather(*(runner.run(world.flows / f"{name}.json")
                                               for name in [*CREDENTIALS, "oauth_bad"])))

    results = asyncio.run(run_all())
    assert results and not any(result.ok for result in results)
    for result in results:
        assert len(result.failed_steps) >= 5
        for step in result.failed_steps:
            assert_clean(f"{result.name}/{step.step_id}", str(step.error))
        assert_clean(f"{result.name} dict", json.dumps(result.to_dict(include_body=True), default=str))


@pytest.mark.usefixtures("redaction_env")
def test_concurrent_executors_keep_their_own_secrets(world: World) -> None:
    """Two executors in one process: each registers what it sent, and neither needs the other's
    registry to mask its own output (no process-wide state decides what a result shows)."""
    registry = Registry.load(world.aliases)
    results: dict[str, Any] = {}

    def run(name: str, alias: str) -> None:
        with RestExecutor(registry) as executor:
            results[name] = (executor, executor.run(RestStep(id="echo", alias=alias, path="/echo")))

    threads = [threading.Thread(target=run, args=("hkey", "a_hkey")), threading.Thread(target=run,
                                                                                         args=("bearer", "a_bearer"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    hkey_executor, hkey_result = results["hkey"]
    bearer_executor, bearer_result = results["bearer"]
    assert HEADER_KEY in hkey_executor.secrets and HEADER_KEY not in bearer_executor.secrets
    assert BEARER in bearer_executor.secrets and BEARER not in hkey_executor.secrets
    assert_clean("hkey error", str(hkey_result.error))
    assert_clean("bearer error", str(bearer_result.error))


# --- the masking function itself -----------------------------------------------------------------


def test_every_form_of_a_secret_is_masked() -> None:
    secrets = Secrets()
    secrets.add(QUERY_KEY + "\n")
    secrets.basic(BASIC_USER, BASIC_PASSWORD)
    text = " | ".join([*forms(QUERY_KEY), *forms(BASIC_PASSWORD),
                       base64.b64encode(f"{BASIC_USER}:{BASIC_PASSWORD}".encode()).decode(),
                       json.dumps({"k": QUERY_KEY}), "<a>Rd-qkey+/= 9f&amp;x</a>"])
    masked = secrets.mask(text)
    assert_clean("masked text", masked)
    assert masked.count("***") >= 10
    assert secrets.mask("nothing secret here") == "nothing secret here"


def test_short_values_are_not_searched_for_in_free_text() -> None:
    secrets = Secrets(["abc"])
    assert secrets.mask("abc def") == "abc def"


def test_control_characters_are_made_visible() -> None:
    assert visible("a\x1b[2Kb\r\nc\rd\x9b\u202e") == "a\\x1b[2Kb\nc\\x0dd\\x9b\\u202e"
    assert visible("plain\ttext\n") == "plain\ttext\n"


def test_one_rule_for_credential_headers() -> None:
    for name in ("Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-API-Key", "X-Partner-Token",
                 "X-Session-Token", "X-Client-Secret", "X-Signature", "X-Auth-User", "Api-Key", "X-Password"):
        assert is_credential_header(name), name
    for name in ("Accept", "Content-Type", "X-Request-Id", "User-Agent", "SOAPAction"):
        assert not is_credential_header(name), name


# --- output hygiene -------------------------------------------------------------------------------


@pytest.mark.usefixtures("redaction_env")
def test_escape_sequences_from_partners_are_shown_not_interpreted(world: World, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  debug_log: io.StringIO) -> None:
    text = _scan_run(world, tmp_path, capsys, debug_log, ["run", str(world.flows / "hkey.json"), "-v"], 1)
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text and "\r" not in text
    assert "\\x1b[2K" in text and "\\x9b31m" in text and "\\u202eevil" in text
    assert "\x1b" not in debug_log.getvalue()
    shown = _scan_run(world, tmp_path, capsys, debug_log, ["run", str(world.flows / "hkey.json"), "--json"], 1)
    assert "\x9b" not in shown and "\u202e" not in shown
    assert json.loads(shown)["status"] == "failed"


@pytest.mark.parametrize("option", ["--password-env", "--key-password-env"])
def test_a_password_given_instead_of_a_variable_name_is_not_echoed(option: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    keystore = tmp_path / "k.p12"
    keystore.write_bytes(b"not read")
    password = "Rd-typed p@ss/word!"
    extra = ["--password-env", "RD_NEVER_SET"] if option == "--key-password-env" else []
    code, out, err = _run_cli(["keystore", "inspect", str(keystore), *extra, option, password], capsys)
    assert code == 2
    assert password not in out + err and quote(password) not in out + err
    assert f"argument {option}: takes the NAME of an environment variable" in err
    assert "Traceback" not in err


def test_a_password_given_instead_of_a_password_file_is_not_echoed(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    keystore = tmp_path / "k.p12"
    keystore.write_bytes(b"not read")
    password = "Rd-typed-password-4242"
    code, out, err = _run_cli(["keystore", "inspect", str(keystore), "--password-file", password], capsys)
    assert code == 2
    assert password not in out + err
    assert "the password file named by --password-file does not exist" in err


@pytest.mark.parametrize("argv", [["alias", "list", "{}"], ["{}"], ["alias", "{}"], ["schema", "{}"]])
def test_argparse_errors_do_not_echo_stray_values(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    password = "Rd-stray-value-5151"
    code, out, err = _run_cli([arg.format(password) for arg in argv], capsys)
    assert code == 2
    assert password not in out + err
    assert "error[usage]" in err


@pytest.mark.usefixtures("redaction_env")
def test_reports_are_private_and_never_written_through_a_link(world: World, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    flow = str(world.flows / "crlf.json")
    existing = tmp_path / "existing.xml"
    existing.write_text("old")
    existing.chmod(0o644)
    fresh = tmp_path / "out" / "fresh.json"
    code, _, err = _run_cli(["test", flow, "--report", str(existing), "--json-report", str(fresh)], capsys)
    assert code == 2, err
    for report in (existing, fresh):
        assert stat.S_IMODE(report.stat().st_mode) == 0o600, report
        assert report.read_text().strip().startswith(("<?xml", "{"))
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    link = tmp_path / "link.xml"
    link.symlink_to(target)
    code, out, err = _run_cli(["run", flow, "--report", str(link)], capsys)
    assert code == 2
    assert "is a symbolic link: reports are never written through a link" in err
    assert target.read_text() == "keep me"
    code, out, err = _run_cli(["run", flow, "--report", str(tmp_path)], capsys)
    assert code == 2
    assert f"--report {tmp_path} is a directory" in err
    assert "Traceback" not in out + err
    code, out, err = _run_cli(["test", flow, "--json-report", str(tmp_path)], capsys)
    assert code == 2
    assert f"--json-report {tmp_path} is a directory" in err


def test_a_report_written_over_a_planted_link_is_refused(tmp_path: Path) -> None:
    """The check before the run and the write itself are separate: a link planted in between is
    refused by O_NOFOLLOW."""
    from flowrun._errors import UsageError
    from flowrun._report._files import write_report

    target = tmp_path / "target"
    target.write_text("keep me")
    link = tmp_path / "report.xml"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="symbolic link"):
        write_report(link, "x", option="--report")
    assert target.read_text() == "keep me"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="not a regular file"):
        write_report(fifo, "x", option="--report")


def test_demo_env_is_private_even_when_it_existed(tmp_path: Path) -> None:
    from flowrun import _demo

    env_file = tmp_path / "demo.env"
    env_file.write_text("export OLD=1\n")
    env_file.chmod(0o644)
    setup = _demo.DemoSetup(tmp_path, tmp_path / "keystores" / "client.jks", {"BANK_API_KEY": "k"})
    assert _demo.write_env_file(setup) == env_file
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert env_file.read_text() == "export BANK_API_KEY='k'\n"
