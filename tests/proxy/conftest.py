"""Fixtures for the proxy tests: a PKI, secrets, and an environment without proxy variables."""

from __future__ import annotations

import pytest

from flowrun.testing import Pki, PkiFiles, make_pki
from tests.aliases._setup import KEYSTORE_ENV, KEYSTORE_PASSWORD

PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY",
                   "no_proxy", "NO_PROXY")


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=KEYSTORE_PASSWORD)


@pytest.fixture(autouse=True)
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable from the machine leaks in; tests set the ones they need."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)
    return monkeypatch
