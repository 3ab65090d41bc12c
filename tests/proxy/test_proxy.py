"""Requests through a real proxy (Debian's tinyproxy) to a mutual-TLS partner: REST, SOAP, OAuth
token calls, WSDL fetches, sync and async, ``--connect-to``; and ``alias test``'s diagnosis of a
proxy that refuses CONNECT, asks for credentials, cannot be reached, or intercepts TLS."""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun._models._results import StepResult
from flowrun._models._steps import RestStep, SoapStep
from flowrun._registry import Registry
from flowrun._rest import AsyncRestExecutor, RestExecutor
from flowrun._soap import AsyncSoapExecutor, SoapExecutor
from flowrun._transport._wsdl import WSDL_CACHE
from flowrun.testing import PartnerServer, Pki, PkiFiles, issue_server
from tests.aliases._setup import load, mtls_records, write_aliases
from tests.proxy._intercepting import InterceptingProxy
from tests.proxy._tinyproxy import Tinyproxy, free_port

PROXY_USER = "flow-proxy-user"
PROXY_PASSWORD = "proxy-Pw-7734-secret"
PROXY_PASSWORD_ENV = "FLOWRUN_TEST_PROXY_PASSWORD"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def alias_test(capsys: pytest.CaptureFixture[str], directory: Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = run_cli(capsys, "alias", "test", "partner", "--aliases", str(directory), "--json")
    _, text, _ = run_cli(capsys, "alias", "test", "partner", "--aliases", str(directory))
    return code, json.loads(out), text + err


def with_proxy(records: list[dict[str, Any]], proxy: Any) -> list[dict[str, Any]]:
    records[-1]["connection"]["proxy"] = proxy
    return records


def write_flow(path: Path) -> Path:
    path.write_text(json.dumps({
        "name": "through_proxy",
        "steps": [{"id": "balance", "type": "rest", "alias": "partner", "method": "GET", "path": "/accounts/7",
                   "response": {"expect_status": [200], "outputs": {"balance": "body.balance"}},
                   "assert": [{"that": "outputs.balance", "gt": 0}]}],
        "outputs": {"balance": "{{ steps.balance.outputs.balance }}"},
    }), encoding="utf-8")
    return path


# --- the done-when case ---------------------------------------------------------------------------


def test_a_flow_through_https_proxy_reaches_a_mutual_tls_partner(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
        proxy_env: pytest.MonkeyPatch) -> None:
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path, connect_ports=[partner.port]) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, out, err = run_cli(capsys, "run", str(write_flow(tmp_path / "flow.json")), "--aliases", str(directory),
                                 "--json")
        seen, port = partner.client_certs, partner.port
        connects = proxy.connect_requests()
    assert code == 0, out + err
    assert json.loads(out)["status"] == "passed"
    # mTLS end to end through the tunnel: the partner saw our client certificate...
    assert seen == [pki.client.sha256]
    # ...and the proxy saw only the CONNECT.
    assert connects == [f"localhost:{port}"]


def test_lower_case_https_proxy_wins_and_all_proxy_is_the_fallback(
        tmp_path: Path, pki: Pki, pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("https_proxy", proxy.url)
        proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens: must not be used
        registry = load(write_aliases(tmp_path / "a", mtls_records(pki_files, port=partner.port)))
        with RestExecutor(registry) as rest:
            first = rest.run(RestStep(alias="partner", path="/accounts/1"))
        proxy_env.delenv("https_proxy")
        proxy_env.delenv("HTTPS_PROXY")
        proxy_env.setenv("ALL_PROXY", proxy.url)
        with RestExecutor(load(write_aliases(tmp_path / "b", mtls_records(pki_files, port=partner.port)))) as rest:
            second = rest.run(RestStep(alias="partner", path="/accounts/2"))
        connects = proxy.connect_requests()
    assert first.status == second.status == "passed", (first.error, second.error)
    assert len(connects) == 2


def test_async_rest_through_the_proxy(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                      proxy_env: pytest.MonkeyPatch) -> None:
    async def run(registry: Any) -> list[StepResult]:
        async with AsyncRestExecutor(registry) as rest:
            return list(await asyncio.gather(*(rest.run(RestStep(alias="partner", path=f"/accounts/{n}"))
                                               for n in range(1, 4))))

    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        results = asyncio.run(run(load(write_aliases(tmp_path / "a", mtls_records(pki_files, port=partner.port)))))
        seen, port = set(partner.client_certs), partner.port
        connects = proxy.connect_requests()
    assert [r.status for r in results] == ["passed"] * 3, [r.error for r in results]
    assert seen == {pki.client.sha256}
    assert connects and set(connects) == {f"localhost:{port}"}


def test_an_async_alias_with_a_proxy_stays_on_httpx_one_without_goes_on_aiohttp(
        tmp_path: Path, pki: Pki, pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    # aiohttp's own proxy support is not ``_proxy``'s (NO_PROXY read as curl reads it, CONNECT
    # answers diagnosed): an alias with any proxy rule keeps httpx's client over ``_proxy``.
    async def run(registry: Any) -> tuple[Any, str, StepResult]:
        async with AsyncRestExecutor(registry) as rest:
            step = RestStep(alias="partner", path="/accounts/5")
            result = await rest.run(step)
            route = await rest._route(step)
            return route.native, type(route.client._transport).__name__, result

    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        aliases = write_aliases(tmp_path / "a", mtls_records(pki_files, port=partner.port))
        direct = asyncio.run(run(load(aliases)))
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        proxied = asyncio.run(run(load(aliases)))
        connects, port = proxy.connect_requests(), partner.port
    assert proxied[0] is None and proxied[1] == "AsyncProxyRouter"
    assert proxied[2].status == "passed" and connects == [f"localhost:{port}"], proxied[2].error
    assert direct[0] is not None and direct[1] == "AiohttpTransport"
    assert direct[2].status == "passed", direct[2].error


def test_soap_call_and_wsdl_fetch_through_the_proxy(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                                    proxy_env: pytest.MonkeyPatch) -> None:
    WSDL_CACHE.clear()
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        registry = load(write_aliases(tmp_path / "a", mtls_records(pki_files, port=partner.port)))
        before = len(partner.requests)
        with SoapExecutor(registry) as soap:
            result = soap.run(SoapStep(id="balance", alias="partner", wsdl=f"{partner.url}/v2/ledger?wsdl",
                                       operation="GetBalance", path="/ledger", args={"account": "42"}))
        seen = partner.requests[before:]
        connects = proxy.connect_requests()
    WSDL_CACHE.clear()
    assert result.status == "passed", result.error
    assert [r.method for r in seen] == ["GET", "GET", "POST"]  # WSDL, its schema, the call
    assert {r.client_cert_sha256 for r in seen} == {pki.client.sha256}
    assert connects  # every connection went through the tunnel


def test_oauth_token_call_goes_through_the_proxy(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                                 proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("PARTNER_OAUTH_SECRET", "demo-secret")
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        records = mtls_records(pki_files, port=partner.port)
        records[-1]["connection"]["credential"] = "oauth"
        # The token endpoint on another origin (same server, by IP): its own CONNECT; the origin
        # rule sends our certificate there only because the connection trusts that origin.
        records[-1]["connection"]["trusted_origins"] = [f"https://127.0.0.1:{partner.port}"]
        records.append({"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials",
                        "token_url": f"https://127.0.0.1:{partner.port}/oauth/token", "client_id": "demo-client",
                        "client_secret": {"env": "PARTNER_OAUTH_SECRET"}})
        with RestExecutor(load(write_aliases(tmp_path / "a", records))) as rest:
            result = rest.run(RestStep(alias="partner", path="/protected/accounts/3"))
        issued, port = partner.tokens_issued, partner.port
        connects = proxy.connect_requests()
    assert result.status == "passed", result.error
    assert issued == 1
    assert sorted(connects) == sorted([f"127.0.0.1:{port}", f"localhost:{port}"])


def test_no_proxy_sends_the_partner_direct(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                           proxy_env: pytest.MonkeyPatch) -> None:
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        proxy_env.setenv("NO_PROXY", f"example.org, .localhost:{partner.port}")
        with RestExecutor(load(write_aliases(tmp_path / "a", mtls_records(pki_files, port=partner.port)))) as rest:
            result = rest.run(RestStep(alias="partner", path="/accounts/1"))
        connects = proxy.connect_requests()
    assert result.status == "passed", result.error
    assert connects == []


def test_the_connections_proxy_overrides_the_environment(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                                         proxy_env: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", dead)
        proxy_env.setenv("NO_PROXY", "*")  # ignored too: the connection names its proxy
        records = with_proxy(mtls_records(pki_files, port=partner.port), {"url": proxy.url})
        with RestExecutor(load(write_aliases(tmp_path / "a", records))) as rest:
            through = rest.run(RestStep(alias="partner", path="/accounts/1"))
        proxy_env.delenv("NO_PROXY")
        records = with_proxy(mtls_records(pki_files, port=partner.port), "none")
        with RestExecutor(load(write_aliases(tmp_path / "b", records))) as rest:
            direct = rest.run(RestStep(alias="partner", path="/accounts/1"))
        connects = proxy.connect_requests()
    assert through.status == "passed", through.error
    assert direct.status == "passed", direct.error
    assert len(connects) == 1


def test_connect_to_through_the_proxy_names_the_mapped_address_in_connect(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
        proxy_env: pytest.MonkeyPatch) -> None:
    identity = issue_server(pki, hostnames=["api.bank.example"])
    with PartnerServer(pki, server_identity=identity) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases",
                                  mtls_records(pki_files, port=8443, host="api.bank.example"))
        code, out, err = run_cli(capsys, "run", str(write_flow(tmp_path / "flow.json")), "--aliases", str(directory),
                                 "--connect-to", f"api.bank.example:8443:127.0.0.1:{partner.port}", "--json")
        seen, port = partner.client_certs, partner.port
        connects = proxy.connect_requests()
    assert code == 0, out + err
    # The proxy was asked for the mapped address; TLS inside the tunnel still checked api.bank.example.
    assert connects == [f"127.0.0.1:{port}"]
    assert seen == [pki.client.sha256]


# --- alias test: what the proxy did --------------------------------------------------------------


def test_alias_test_names_the_proxy_in_use(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                           pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, report, text = alias_test(capsys, directory)
    assert code == 0, text
    assert report["proxy"] == {"url": proxy.url, "from": "HTTPS_PROXY", "authenticated": False}
    assert report["client_certificate"]["outcome"] == "sent"
    assert report["server_chain_source"] == "handshake"
    assert re.search(rf"^  proxy +{re.escape(proxy.url)} \(from HTTPS_PROXY\)$", text, re.MULTILINE)
    assert "ok: the TLS path works" in text


def test_proxy_refusing_connect_to_the_port(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                            pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path, connect_ports=[443]) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, report, text = alias_test(capsys, directory)
        log, port = proxy.log(), partner.port
    assert code == 1
    assert report["error"]["code"] == "transport.proxy_refused"
    assert "403" in report["error"]["message"] and proxy.url in report["error"]["message"]
    assert "ConnectPort" in report["error"]["hint"]
    assert f"Refused CONNECT method on port {port}" in log
    assert "FAILED [transport.proxy_refused]" in text
    assert report["client_certificate"]["outcome"] == "not_reached"


def test_proxy_asking_for_authentication(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                         pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path, basic_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, report, text = alias_test(capsys, directory)
    assert code == 1
    assert report["error"]["code"] == "transport.proxy_auth_required"
    assert "407" in report["error"]["message"] and "no proxy credentials are configured" in report["error"]["message"]
    assert '"username"' in report["error"]["hint"]
    assert "FAILED [transport.proxy_auth_required]" in text


def test_proxy_credentials_from_a_secret(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                         pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    proxy_env.setenv(PROXY_PASSWORD_ENV, PROXY_PASSWORD)
    caplog.set_level(logging.DEBUG)
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path, basic_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        records = with_proxy(mtls_records(pki_files, port=partner.port),
                             {"url": proxy.url, "username": PROXY_USER, "password": {"env": PROXY_PASSWORD_ENV}})
        directory = write_aliases(tmp_path / "aliases", records)
        code, report, text = alias_test(capsys, directory)
        run_code, out, err = run_cli(capsys, "run", str(write_flow(tmp_path / "flow.json")), "--aliases",
                                     str(directory), "-v")
        _, shown, _ = run_cli(capsys, "alias", "show", "partner", "--aliases", str(directory))
        proxy_env.setenv(PROXY_PASSWORD_ENV, "wrong-password")
        bad_code, bad, _ = alias_test(capsys, directory)
        seen = partner.client_certs
    assert code == 0, text
    assert run_code == 0, out + err
    assert report["proxy"] == {"url": proxy.url, "from": "connection", "authenticated": True}
    assert seen and set(seen) == {pki.client.sha256}
    assert f"env {PROXY_PASSWORD_ENV} (set)" in shown
    assert bad_code == 1 and bad["error"]["code"] == "transport.proxy_auth_required"
    assert "did not accept our proxy credentials" in bad["error"]["message"]
    # The password never shows: not in outputs, not in -v, not in httpx/httpcore debug logs.
    everything = text + out + err + shown + json.dumps(report) + json.dumps(bad) + caplog.text
    assert caplog.text  # debug logging was on
    assert PROXY_PASSWORD not in everything
    assert "wrong-password" not in everything


def test_proxy_credentials_in_the_environment_url_are_never_shown(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
        proxy_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path, basic_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        proxy_env.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, report, text = alias_test(capsys, directory)
        _, shown, _ = run_cli(capsys, "alias", "show", "partner", "--aliases", str(directory), "--json")
        run_code, out, err = run_cli(capsys, "run", str(write_flow(tmp_path / "flow.json")), "--aliases",
                                     str(directory), "-v", "--json")
    assert code == 0, text
    assert run_code == 0, out + err
    assert report["proxy"] == {"url": proxy.url, "from": "HTTPS_PROXY", "authenticated": True}
    assert "with proxy credentials" in text
    assert PROXY_PASSWORD not in text + json.dumps(report) + shown + out + err + caplog.text


def test_proxy_unreachable(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                           proxy_env: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    proxy_env.setenv("HTTPS_PROXY", dead)
    with PartnerServer(pki) as partner:
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, report, text = alias_test(capsys, directory)
    assert code == 1
    assert report["error"]["code"] == "transport.proxy_unreachable"
    assert dead in report["error"]["message"] and "connection refused" in report["error"]["message"]
    assert "HTTPS_PROXY" in report["error"]["message"]
    assert "FAILED [transport.proxy_unreachable]" in text
    assert report["client_certificate"]["outcome"] == "not_connected"


def test_proxy_that_cannot_reach_the_partner(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                             pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    with Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=free_port()))
        code, report, _ = alias_test(capsys, directory)
    assert code == 1
    assert report["error"]["code"] == "transport.proxy_upstream"
    assert "500" in report["error"]["message"]


def test_a_proxy_that_intercepts_tls(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                     pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    forged = issue_server(pki, signed_by=pki.other_ca)
    with InterceptingProxy(forged) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=9443))
        code, report, text = alias_test(capsys, directory)
        with RestExecutor(load(directory)) as rest:
            step = rest.run(RestStep(alias="partner", path="/accounts/1"))
    issuer = pki.other_ca.certificate.subject.rfc4514_string()
    assert code == 1
    assert report["error"]["code"] == "tls.intercepted_by_proxy"
    message = report["error"]["message"]
    assert "intercepts TLS" in message and f"issued by '{issuer}'" in message and proxy.url in message
    assert "TLS inspection" in report["error"]["hint"]
    assert "FAILED [tls.intercepted_by_proxy]" in text and f"issued by '{issuer}'" in text
    assert [c["issuer"] for c in report["server_chain"]][:1] == [issuer]
    # A step says the same.
    assert step.error is not None and step.error.code == "tls.intercepted_by_proxy"
    assert "localhost:9443" in proxy.connect_targets


# --- plain http through the proxy ------------------------------------------------------------------


class _PlainPartner:
    """A plain-http partner that records the Host header of each request."""

    def __init__(self) -> None:
        hosts: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hosts.append(self.headers.get("Host", ""))
                body = b'{"balance": 5}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.hosts = hosts
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> _PlainPartner:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def plain_alias(host: str, port: int) -> list[dict[str, Any]]:
    return [{"kind": "alias", "name": "partner", "connection": {"url": f"http://{host}:{port}/v2"}}]


def test_plain_http_goes_to_http_proxy_as_an_absolute_url(tmp_path: Path, proxy_env: pytest.MonkeyPatch) -> None:
    with _PlainPartner() as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        with RestExecutor(load(write_aliases(tmp_path / "a", plain_alias("127.0.0.1", partner.port)))) as rest:
            result = rest.run(RestStep(alias="partner", path="/accounts/1"))
        log = proxy.log()
    assert result.status == "passed", result.error
    assert f"GET http://127.0.0.1:{partner.port}/v2/accounts/1" in log


def test_connect_to_with_a_plain_http_proxy_asks_for_the_mapped_address(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, proxy_env: pytest.MonkeyPatch) -> None:
    with _PlainPartner() as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", plain_alias("api.bank.example", 8080))
        code, out, err = run_cli(capsys, "run", str(write_flow(tmp_path / "flow.json")), "--aliases", str(directory),
                                 "--connect-to", f"api.bank.example:8080:127.0.0.1:{partner.port}", "--json")
        log, hosts = proxy.log(), partner.hosts
    assert code == 0, out + err
    assert f"GET http://127.0.0.1:{partner.port}/v2/accounts/7" in log
    # We send the partner's Host header; a proxy replaces it by the absolute URL's authority
    # (RFC 9112 3.2.2), as tinyproxy does.
    assert hosts == [f"127.0.0.1:{partner.port}"]


def test_async_soap_through_the_proxy(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                      proxy_env: pytest.MonkeyPatch) -> None:
    async def run(registry: Any, wsdl: str) -> StepResult:
        async with AsyncSoapExecutor(registry) as soap:
            return await soap.run(SoapStep(id="balance", alias="partner", wsdl=wsdl, operation="GetBalance",
                                           path="/ledger", args={"account": "42"}))

    WSDL_CACHE.clear()
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        registry = load(write_aliases(tmp_path / "a", mtls_records(pki_files, port=partner.port)))
        result = asyncio.run(run(registry, f"{partner.url}/v2/ledger?wsdl"))
        seen = set(partner.client_certs)
        connects = proxy.connect_requests()
    WSDL_CACHE.clear()
    assert result.status == "passed", result.error
    assert seen == {pki.client.sha256}
    assert connects


def test_a_steps_inline_connection_takes_a_proxy(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                                  pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")  # overridden by the step's proxy
    with PartnerServer(pki) as partner, Tinyproxy(tmp_path) as proxy:
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        flow = tmp_path / "flow.json"
        flow.write_text(json.dumps({"name": "inline", "steps": [
            {"id": "balance", "type": "rest", "method": "GET", "path": "/accounts/7",
             "connection": {"url": f"{partner.url}/v2", "mutual_authentication": True,
                            "protocol_profile": "partnerMTLS", "proxy": {"url": proxy.url}}}]}))
        code, out, err = run_cli(capsys, "run", str(flow), "--aliases", str(directory))
        seen, port = partner.client_certs, partner.port
        connects = proxy.connect_requests()
    assert code == 0, out + err
    assert seen == [pki.client.sha256]
    assert connects == [f"localhost:{port}"]


def test_an_untrusted_partner_behind_a_plain_proxy_is_not_called_an_interception(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki, pki_files: PkiFiles,
        proxy_env: pytest.MonkeyPatch) -> None:
    # The partner's own chain (our root in it) with a leaf that is no server certificate: verification
    # fails through the proxy, but nobody re-signed anything.
    wrong_purpose = issue_server(pki, eku=("clientAuth",))
    with PartnerServer(pki, server_identity=wrong_purpose) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=partner.port))
        code, report, _ = alias_test(capsys, directory)
    assert code == 1
    assert report["error"]["code"] == "tls.server_untrusted", report["error"]
    assert "intercept" not in report["error"]["message"]


def test_alias_test_of_a_plain_http_alias_behind_a_proxy_that_wants_credentials(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, proxy_env: pytest.MonkeyPatch) -> None:
    with _PlainPartner() as partner, Tinyproxy(tmp_path, basic_auth=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        directory = write_aliases(tmp_path / "aliases", plain_alias("127.0.0.1", partner.port))
        code, report, text = alias_test(capsys, directory)
        hosts = partner.hosts
    assert code == 1, text
    assert report["http_status"] == 407
    assert report["error"]["code"] == "transport.proxy_auth_required"
    assert hosts == []


def test_async_oauth_and_connect_to_through_the_proxy(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                                      proxy_env: pytest.MonkeyPatch) -> None:
    """The async client's CONNECT names the --connect-to address, and its token call tunnels too."""
    async def run(registry: Registry) -> StepResult:
        async with AsyncRestExecutor(registry) as rest:
            return await rest.run(RestStep(alias="partner", path="/protected/accounts/3"))

    proxy_env.setenv("PARTNER_OAUTH_SECRET", "demo-secret")
    identity = issue_server(pki, hostnames=["api.bank.example"])
    with PartnerServer(pki, server_identity=identity) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        records = mtls_records(pki_files, port=8443, host="api.bank.example")
        records[-1]["connection"]["credential"] = "oauth"
        records.append({"kind": "credential", "name": "oauth", "type": "oauth2_client_credentials",
                        "token_url": "https://api.bank.example:8443/oauth/token", "client_id": "demo-client",
                        "client_secret": {"env": "PARTNER_OAUTH_SECRET"}})
        directory = write_aliases(tmp_path / "a", records)
        dial = {("api.bank.example", 8443): ("127.0.0.1", partner.port)}
        registry = Registry(load(directory).records, connect_to=dial)
        result = asyncio.run(run(registry))
        issued, seen, port = partner.tokens_issued, set(partner.client_certs), partner.port
        connects = proxy.connect_requests()
    assert result.status == "passed", result.error
    assert issued == 1 and seen == {pki.client.sha256}
    assert connects and set(connects) == {f"127.0.0.1:{port}"}


def test_connect_to_a_no_proxy_address_goes_direct(capsys: pytest.CaptureFixture[str], tmp_path: Path, pki: Pki,
                                                   pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    identity = issue_server(pki, hostnames=["api.bank.example"])
    with PartnerServer(pki, server_identity=identity) as partner, Tinyproxy(tmp_path) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)
        proxy_env.setenv("NO_PROXY", "localhost,127.0.0.1")
        directory = write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443, host="api.bank.example"))
        code, out, err = run_cli(capsys, "run", str(write_flow(tmp_path / "flow.json")), "--aliases", str(directory),
                                 "--connect-to", f"api.bank.example:8443:127.0.0.1:{partner.port}")
        connects = proxy.connect_requests()
    assert code == 0, out + err
    assert connects == []


def test_the_demo_ignores_the_environments_proxy(capsys: pytest.CaptureFixture[str],
                                                 proxy_env: pytest.MonkeyPatch) -> None:
    # Its partner runs on this machine: a corporate proxy could not reach it.
    proxy_env.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    assert main(["demo", "--json"]) == 0, capsys.readouterr()
