"""Keystores built once per test session with the real keytool (see ``tests/_keytool.py``).

Fixtures return ``KeytoolStore`` records (path, passwords, CAs, signed leaves). Tests that only
read them must not modify the files: copy to ``tmp_path`` first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._keytool import CA, KeytoolStore, StoreFactory, keytool_path, make_ca

STORE_TYPES = ("JKS", "JCEKS", "PKCS12")
KEY_TYPES = ("RSA", "EC")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("keytool") is not None and keytool_path() is None:
        pytest.skip("Java's keytool is not on PATH")


@pytest.fixture(scope="session")
def keystore_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keystores")


@pytest.fixture(scope="session")
def test_root_ca(keystore_dir: Path) -> CA:
    return make_ca(keystore_dir / "ca", "Test Root CA")


@pytest.fixture(scope="session")
def test_intermediate_ca(test_root_ca: CA) -> CA:
    return test_root_ca.issue_intermediate("Test Intermediate CA")


@pytest.fixture(scope="session")
def keytool_stores(keystore_dir: Path, test_root_ca: CA, test_intermediate_ca: CA) -> StoreFactory:
    """``keytool_stores(storetype="JKS", key_type="EC", ...)``: options of ``build_keytool_store``."""
    return StoreFactory(keystore_dir, test_root_ca, test_intermediate_ca)


@pytest.fixture(scope="session", params=[(s, k) for s in STORE_TYPES for k in KEY_TYPES],
                ids=lambda p: f"{p[0].lower()}-{p[1].lower()}")
def full_store(request: pytest.FixtureRequest, keytool_stores: StoreFactory) -> KeytoolStore:
    """The article's store (root, intermediate, PrivateKeyEntry with chain of 3) for each store type
    and key type; key password differs from the store password where the type allows it."""
    if keytool_path() is None:
        pytest.skip("Java's keytool is not on PATH")
    storetype, key_type = request.param
    return keytool_stores(storetype=storetype, key_type=key_type, keypass="keypass-1")
