"""``flowrun alias test`` beyond the partner matrix: ``--connect-to``, a host that does not resolve,
a port that refuses, an application's own 400 (not a certificate refusal), and a SOAP step that
nginx refuses with its page."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from flowrun import (
    AsyncRestExecutor,
    ClientCertExpiredError,
    ClientCertRejectedError,
    Registry,
    RestStep,
    StepResult,
)
from flowrun._cli import main
from tests.aliases._setup import keystore, mtls_alias, profile, trust_cert, write_aliases
from tests.zoo._servers import free_port
from tests.zoo._setup import ClientStores, write_case
from tests.zoo.conftest import Zoo

pytestmark = pytest.mark.usefixtures("secrets_env", "fresh_tls_cache")

NOWHERE = "partner.does-not-exist.invalid"


def records(stores: ClientStores, *, host: str = "localhost", port: int, keystore_file: Path | None = None,
            ) -> list[dict[str, Any]]:
    return [keystore("client_ks", keystore_file or stores.good), trust_cert("partner_root", stores.server_root),
            profile(), mtls_alias(port=port, host=host)]


def alias_test(capsys: pytest.CaptureFixture[str], directory: Path, *extra: str) -> tuple[int, str]:
    code = main(["alias", "test", "partner", "--aliases", str(directory), *extra])
    out, _ = capsys.readouterr()
    return code, out


def test_connect_to_dials_another_address_and_keeps_the_host(
        zoo: Zoo, client_stores: ClientStores, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = zoo.partner("nginx").ports["1.3"]
    unused = free_port()  # the alias names a port nothing listens on; --connect-to dials nginx
    directory = write_aliases(tmp_path / "aliases", records(client_stores, port=unused))
    code, out = alias_test(capsys, directory, "--connect-to", f"localhost:{unused}:127.0.0.1:{port}")
    assert code == 0, out
    assert f"HEAD https://localhost:{unused}/v2\n" in out
    assert f"dialled             127.0.0.1:{port} (--connect-to)" in out
    assert "ok: the TLS path works (HTTP 200)" in out

    code, out = alias_test(capsys, directory, "--json")
    report = json.loads(out)
    assert (code, report["error"]["code"]) == (1, "transport.connect_refused")


def test_connect_to_is_named_when_the_dialled_address_refuses(client_stores: ClientStores, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    closed = free_port()
    directory = write_aliases(tmp_path / "aliases", records(client_stores, host="api.bank.example", port=8443))
    code, out = alias_test(capsys, directory, "--connect-to", f"api.bank.example:8443:127.0.0.1:{closed}")
    assert code == 1
    assert f"FAILED [transport.connect_refused]: api.bank.example:8443 (dialled at 127.0.0.1:{closed} by " \
           "--connect-to) (alias 'partner'): connection refused" in out
    assert "no connection was made" in out
    assert "does not expose the handshake messages" not in out


def test_a_bad_connect_to_value_is_a_usage_error(client_stores: ClientStores, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_aliases(tmp_path / "aliases", records(client_stores, port=8443))
    code = main(["alias", "test", "partner", "--aliases", str(directory), "--connect-to", "localhost:8443"])
    _, err = capsys.readouterr()
    assert code == 2
    assert "HOST:PORT:TO_HOST:TO_PORT" in err


def test_connection_refused_says_so(client_stores: ClientStores, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    closed = free_port()
    directory = write_aliases(tmp_path / "aliases", records(client_stores, port=closed))
    code, out = alias_test(capsys, directory)
    assert code == 1
    assert f"FAILED [transport.connect_refused]: localhost:{closed} (alias 'partner'): connection refused" in out
    assert "hint: nothing listens on that host and port" in out
    assert "sent        nothing: no connection was made" in out
    assert "does not expose the handshake messages" not in out


def test_a_host_that_does_not_resolve_says_so(client_stores: ClientStores, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_aliases(tmp_path / "aliases", records(client_stores, host=NOWHERE, port=8443))
    code, out = alias_test(capsys, directory)
    assert code == 1
    assert f"FAILED [transport.host_not_found]: {NOWHERE}:8443 (alias 'partner'): the host name '{NOWHERE}' " \
           "does not resolve" in out
    assert "DNS" in out and "--connect-to" in out  # the hint: what to check
    assert "no connection was made" in out
    assert "does not expose the handshake messages" not in out

    code, out = alias_test(capsys, directory, "--json")
    report = json.loads(out)
    assert report["error"]["code"] == "transport.host_not_found"
    assert report["client_certificate"]["outcome"] == "not_connected"


@pytest.mark.parametrize("path", ["/app-error", "/bad-request"])
def test_an_application_400_from_nginx_is_not_a_certificate_refusal(
        zoo: Zoo, client_stores: ClientStores, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str) -> None:
    port = zoo.partner("nginx").ports["1.3"]
    directory = write_aliases(tmp_path / "aliases", records(client_stores, port=port))
    code, out = alias_test(capsys, directory, "--path", path)
    assert code == 0, out
    assert "ok: the TLS path works (HTTP 400)" in out
    setup = write_case(tmp_path / "flow", "good", {"1.3": port}, "1.3", client_stores)
    flow = json.loads(setup.flow.read_text())
    flow["steps"][0]["path"] = path
    setup.flow.write_text(json.dumps(flow))
    code = main(["run", str(setup.flow), "--aliases", str(setup.aliases), "--json"])
    step = json.loads(capsys.readouterr()[0])["steps"][0]
    assert (code, step["http_status"], step["error"]["code"]) == (1, 400, "http.unexpected_status")


def test_a_soap_step_refused_by_nginx_names_the_page(zoo: Zoo, client_stores: ClientStores, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    port = zoo.partner("nginx").ports["1.2"]
    directory = write_aliases(tmp_path / "aliases",
                              records(client_stores, port=port, keystore_file=client_stores.foreign))
    flow = tmp_path / "soap.json"
    flow.write_text(json.dumps({"name": "soap_refused", "steps": [{
        "id": "ledger", "type": "soap", "alias": "partner", "path": "/ledger", "soap_action": "GetBalance",
        "envelope": '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
                    "<soapenv:Body><GetBalance/></soapenv:Body></soapenv:Envelope>"}]}))
    code = main(["run", str(flow), "--aliases", str(directory), "--json"])
    step = json.loads(capsys.readouterr()[0])["steps"][0]
    assert (code, step["error"]["code"]) == (1, "tls.client_cert_rejected")
    assert "nginx's page \"The SSL certificate error\"" in step["error"]["message"]
    assert "CN=flowrun-demo-client" in step["error"]["message"]


@pytest.mark.parametrize("keystore_name", ["foreign", "expired"])
def test_the_async_executor_reads_nginx_pages_too(zoo: Zoo, client_stores: ClientStores, tmp_path: Path,
                                                  keystore_name: str) -> None:
    port = zoo.partner("nginx").ports["1.3"]
    store = client_stores.foreign if keystore_name == "foreign" else client_stores.expired
    aliases = records(client_stores, port=port, keystore_file=store)
    # Even a policy that retries 400 does not retry a refused certificate.
    aliases[-1]["retry_policy"] = {"strategy": "fixed", "count": 2, "interval_s": 0.01, "on_status": [400]}
    directory = write_aliases(tmp_path / "aliases", aliases)

    async def call() -> StepResult:
        async with AsyncRestExecutor(Registry.load(directory)) as rest:
            return await rest.run(RestStep(alias="partner", path="/ping"))

    result = asyncio.run(call())
    expected = ClientCertRejectedError if keystore_name == "foreign" else ClientCertExpiredError
    assert type(result.error) is expected, result.error
    assert "The SSL certificate error" in str(result.error)
    assert len(result.attempts) == 1  # a certificate refusal is never retried
