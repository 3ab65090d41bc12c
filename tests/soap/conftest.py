"""Fixtures for the SOAP tests: the Ledger partner over mutual TLS, and an alias directory whose
keystore is a JKS file (checked by its magic bytes) behind ``{"env": ...}`` passwords.

Aliases (all on the partner's port, host ``localhost``):

* ``ledger``: mutual TLS with the client JKS; ``ledger_v2``: the same under base path ``/v2``;
* ``ledger_untrusted``: a client certificate from a CA the partner does not trust;
* ``ledger_wsse`` / ``ledger_wsse_text``: WS-Security UsernameToken (digest / text password);
* ``ledger_key``: an API key in ``X-API-Key`` (the partner checks it under ``/secure``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun._registry import Registry
from flowrun._soap import SoapExecutor
from flowrun._transport._wsdl import WSDL_CACHE
from flowrun.testing import DEFAULT_API_KEYS, PartnerServer, Pki, PkiFiles, issue_client, make_pki, write_client_files

KEYSTORE_PASSWORD = "ledger-store-Pw7"
KEYSTORE_ENV = "LEDGER_KEYSTORE_PASSWORD"
WSSE_USER = "teller-7"
WSSE_PASSWORD = "wsse-secret-Qx42"
WSSE_ENV = "LEDGER_WSSE_PASSWORD"
API_KEY = sorted(DEFAULT_API_KEYS)[0]
API_KEY_ENV = "LEDGER_API_KEY"
REPO = Path(__file__).resolve().parents[2]
LEDGER_WSDL = REPO / "steps" / "ledger.wsdl"
JKS_MAGIC = bytes.fromhex("feedfeed")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    files = pki.write(tmp_path_factory.mktemp("ledger-pki"), keystore_password=KEYSTORE_PASSWORD)
    assert files.client.jks.read_bytes()[:4] == JKS_MAGIC, "the client keystore must be a real JKS file"
    return files


@pytest.fixture(scope="module")
def partner(pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(pki) as server:
        yield server


def _alias(name: str, port: int, *, profile: str = "ledgerMTLS", base_path: str = "",
           credential: str | None = None, **extra: Any) -> dict[str, Any]:
    connection: dict[str, Any] = {"url_builder": True, "host": "localhost", "port": port, "base_path": base_path,
                                  "mutual_authentication": True, "protocol_profile": profile, "timeout_s": 20}
    if credential is not None:
        connection["credential"] = credential
    return {"kind": "alias", "name": name, "connection": connection, **extra}


@pytest.fixture(scope="module")
def alias_dir(pki: Pki, pki_files: PkiFiles, partner: PartnerServer,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ledger-aliases")
    untrusted = write_client_files(issue_client(pki, signed_by="other_ca"), root / "keystores",
                                   password=KEYSTORE_PASSWORD, stem="untrusted")
    secret = {"env": KEYSTORE_ENV}
    port = partner.port
    records: list[dict[str, Any]] = [
        {"kind": "keystore", "name": "ledger_client", "type": "jks", "file": str(pki_files.client.jks),
         "password": secret, "key_alias": "client"},
        {"kind": "keystore", "name": "untrusted_client", "type": "jks", "file": str(untrusted.jks),
         "password": secret, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "partner_root", "format": "pem", "file": str(pki_files.root_pem)},
        {"kind": "protocol_profile", "name": "ledgerMTLS", "keystore": "ledger_client",
         "trust_store_certs": ["partner_root"], "use_system_trust": False},
        {"kind": "protocol_profile", "name": "untrustedMTLS", "keystore": "untrusted_client",
         "trust_store_certs": ["partner_root"], "use_system_trust": False},
        {"kind": "credential", "name": "ledger_wsse", "type": "wsse_username_token", "username": WSSE_USER,
         "password": {"env": WSSE_ENV}, "digest": True},
        {"kind": "credential", "name": "ledger_wsse_text", "type": "wsse_username_token", "username": WSSE_USER,
         "password": {"env": WSSE_ENV}},
        {"kind": "credential", "name": "ledger_key", "type": "api_key", "header": "X-API-Key",
         "key": {"env": API_KEY_ENV}},
        _alias("ledger", port),
        _alias("ledger_v2", port, base_path="/v2"),
        _alias("ledger_untrusted", port, profile="untrustedMTLS",
               retry_policy={"strategy": "fixed", "count": 3, "interval_s": 0.01}),
        _alias("ledger_wsse", port, credential="ledger_wsse"),
        _alias("ledger_wsse_text", port, credential="ledger_wsse_text"),
        _alias("ledger_key", port, credential="ledger_key"),
    ]
    directory = root / "aliases"
    directory.mkdir()
    (directory / "ledger.json").write_text(json.dumps(records, indent=2), encoding="utf-8")
    return directory


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)
    monkeypatch.setenv(WSSE_ENV, WSSE_PASSWORD)
    monkeypatch.setenv(API_KEY_ENV, API_KEY)


@pytest.fixture
def registry(alias_dir: Path, secrets_env: None) -> Registry:
    return Registry.load(alias_dir)


@pytest.fixture
def soap(registry: Registry) -> Iterator[SoapExecutor]:
    with SoapExecutor(registry) as executor:
        yield executor


@pytest.fixture
def fresh_wsdl_cache() -> Iterator[None]:
    WSDL_CACHE.clear()
    yield
    WSDL_CACHE.clear()
