"""Fixtures for the alias tests: one throwaway PKI per session, secrets in the environment."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowrun._tls._cache import clear_caches
from flowrun.testing import Pki, PkiFiles, make_pki
from tests.aliases._setup import API_KEY, API_KEY_ENV, KEYSTORE_ENV, KEYSTORE_PASSWORD


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=KEYSTORE_PASSWORD)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)
    monkeypatch.setenv(API_KEY_ENV, API_KEY)


@pytest.fixture
def isolated_tls_cache() -> Iterator[None]:
    """For tests that change what a context is built from without changing its cache key
    (the system trust locations): start and end with empty process caches."""
    clear_caches()
    yield
    clear_caches()
