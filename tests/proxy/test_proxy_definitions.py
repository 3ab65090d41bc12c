"""A connection's ``proxy`` in alias files: what loads, what is refused, how ``alias show`` and
``validate`` present it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from flowrun._cli import main
from flowrun._errors import SchemaError
from flowrun.testing import PkiFiles
from tests.aliases._setup import load, mtls_records, write_aliases


def records_with(pki_files: PkiFiles, proxy: Any) -> list[dict[str, Any]]:
    records = mtls_records(pki_files, port=8443, host="api.bank.example")
    records[-1]["connection"]["proxy"] = proxy
    return records


def test_a_proxy_object_loads_with_its_secret(tmp_path: Path, pki_files: PkiFiles) -> None:
    registry = load(write_aliases(tmp_path, records_with(pki_files, {
        "url": "http://proxy.corp:3128", "username": "svc", "password": {"file": "proxy-password.txt"},
        "no_proxy": ["auth.internal"]})))
    (connection,) = registry.alias("partner").connections.values()
    assert connection.proxy is not None
    assert connection.proxy.password is not None and connection.proxy.password.file == tmp_path / "proxy-password.txt"
    assert connection.proxy.no_proxy == ("auth.internal",)


@pytest.mark.parametrize(("proxy", "message"), [
    ({"url": "http://svc:pw@proxy.corp:3128"}, "holds a user name or password"),
    ({"url": "http://proxy.corp:3128", "password": {"env": "X"}}, "without 'proxy.username'"),
    ({"url": "socks5://proxy.corp:1080"}, "starting with https:// or http://"),
    ({"url": "http://proxy.corp:3128", "user": "svc"}, "user"),
    ("direct", "none"),
])
def test_bad_proxies_are_refused_at_load(tmp_path: Path, pki_files: PkiFiles, proxy: Any, message: str) -> None:
    with pytest.raises(SchemaError) as caught:
        load(write_aliases(tmp_path, records_with(pki_files, proxy)))
    error = caught.value
    assert error.pointer is not None and error.pointer.startswith("/3/connection")
    assert message in error.message + (error.hint or "")
    assert "pw@" not in str(error)


def test_alias_show_names_the_proxy_and_why(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    directory = write_aliases(tmp_path, mtls_records(pki_files, port=8443, host="api.bank.example"))
    proxy_env.setenv("HTTPS_PROXY", "http://svc:Secret-99@proxy.corp:3128")

    def show() -> tuple[str, dict[str, Any]]:
        assert main(["alias", "show", "partner", "--aliases", str(directory)]) == 0
        text = capsys.readouterr().out
        assert main(["alias", "show", "partner", "--aliases", str(directory), "--json"]) == 0
        return text, json.loads(capsys.readouterr().out)["connections"][0]["proxy"]

    text, view = show()
    assert re.search(r"proxy +http://proxy.corp:3128 \(from HTTPS_PROXY\)", text)
    assert view == {"source": "environment", "url": "http://proxy.corp:3128", "from": "HTTPS_PROXY",
                    "credentials": "in HTTPS_PROXY (hidden)"}
    proxy_env.setenv("NO_PROXY", ".bank.example")
    text, view = show()
    assert "none: NO_PROXY entry '.bank.example' matches" in text
    assert view["url"] is None and view["bypassed_by"] == ".bank.example"
    assert "Secret-99" not in text + json.dumps(view)


def test_alias_show_of_a_connection_proxy(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("HTTPS_PROXY", "http://elsewhere:1")
    directory = write_aliases(tmp_path / "a", records_with(pki_files, {
        "url": "http://proxy.corp:3128", "username": "svc", "password": {"env": "CORP_PROXY_PASSWORD"}}))
    assert main(["alias", "show", "partner", "--aliases", str(directory)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"proxy +http://proxy.corp:3128 \(from the connection's proxy\)", text)
    assert re.search(r"proxy password +env CORP_PROXY_PASSWORD \(not set\)", text)
    directory = write_aliases(tmp_path / "b", records_with(pki_files, "none"))
    assert main(["alias", "show", "partner", "--aliases", str(directory)]) == 0
    assert """none (the connection's proxy is "none")""" in capsys.readouterr().out


def test_validate_warns_about_a_literal_proxy_password(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                       pki_files: PkiFiles) -> None:
    directory = write_aliases(tmp_path / "aliases", records_with(pki_files, {
        "url": "http://proxy.corp:3128", "username": "svc", "password": "Literal-Proxy-Pw"}))
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"name": "f", "steps": [
        {"id": "a", "type": "rest", "alias": "partner", "method": "GET", "path": "/x"}]}))
    code = main(["validate", str(flow), "--aliases", str(directory)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "the proxy of alias 'partner' holds a literal secret" in out
    assert "Literal-Proxy-Pw" not in out


def test_a_bad_proxy_variable_is_a_definition_error(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                    pki_files: PkiFiles, proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("HTTPS_PROXY", "socks5h://u:Sock-Pw@proxy:1080")
    directory = write_aliases(tmp_path, mtls_records(pki_files, port=8443, host="api.bank.example"))
    code = main(["alias", "test", "partner", "--aliases", str(directory)])
    captured = capsys.readouterr()
    assert code == 2
    assert "environment variable HTTPS_PROXY names a socks5h proxy" in captured.err + captured.out
    assert "Sock-Pw" not in captured.err + captured.out
