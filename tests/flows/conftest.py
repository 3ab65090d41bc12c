"""A real mTLS partner on loopback and an alias directory pointing at it.

The alias directory is written into tmp: ``bank`` (REST, API key, client certificate from a
keystore file), ``ledger`` (SOAP, same identity) and ``untrusted`` (system trust only: the partner's private
root is not trusted). Secrets come from environment variables set per test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowrun.testing import DEFAULT_API_KEYS, PartnerServer, Pki, PkiFiles, make_pki

PASSWORD = "changeit"
REPO = Path(__file__).resolve().parents[2]
API_KEY = sorted(DEFAULT_API_KEYS)[0]


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=PASSWORD)


@pytest.fixture(scope="session")
def partner(pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(pki) as server:
        yield server


def alias_records(files: PkiFiles, url: str) -> list[dict[str, Any]]:
    return [
        {"kind": "keystore", "name": "client", "file": str(files.client.jks),
         "password": {"env": "FLOWRUN_TEST_KEYSTORE_PASSWORD"}, "key_alias": "client"},
        {"kind": "trust_store_cert", "name": "partner_root", "file": str(files.root_pem)},
        {"kind": "protocol_profile", "name": "partnerMTLS", "keystore": "client",
         "trust_store_certs": ["partner_root"], "use_system_trust": False},
        {"kind": "credential", "name": "api_key", "type": "api_key", "header": "X-API-Key",
         "key": {"env": "FLOWRUN_TEST_API_KEY"}},
        {"kind": "alias", "name": "bank",
         "connection": {"url": f"{url}/v2", "mutual_authentication": True, "protocol_profile": "partnerMTLS",
                        "credential": "api_key", "timeout_s": 10}},
        {"kind": "alias", "name": "ledger",
         "connection": {"url": f"{url}/ledger", "mutual_authentication": True, "protocol_profile": "partnerMTLS",
                        "timeout_s": 10}},
        {"kind": "alias", "name": "untrusted", "connection": {"url": url, "timeout_s": 10}},
    ]


@pytest.fixture
def aliases(tmp_path: Path, pki_files: PkiFiles, partner: PartnerServer,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """An alias directory for the partner; the secrets it names are set in the environment."""
    directory = tmp_path / "aliases"
    directory.mkdir()
    (directory / "partner.json").write_text(json.dumps(alias_records(pki_files, partner.url), indent=1))
    monkeypatch.setenv("FLOWRUN_TEST_KEYSTORE_PASSWORD", PASSWORD)
    monkeypatch.setenv("FLOWRUN_TEST_API_KEY", API_KEY)
    return directory


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path
