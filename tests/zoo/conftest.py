"""The zoo's PKI and partners, each made or started once per session.

Server side: the throwaway PKI of ``flowrun.testing`` (root -> intermediate -> server for
localhost and 127.0.0.1). Client side, the identities a user brings:

* ``good``: a JKS made by keytool the article's way (genkeypair, certreq, signed by the client
  CA's intermediate, CA certificates and reply imported), under the root the partners trust;
* ``expired``: a certificate from the same CA that expired yesterday;
* ``foreign``: a certificate from a CA the partners do not trust (the server PKI's own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from flowrun._tls._cache import clear_caches
from flowrun.testing import CertifiedKey, Pki, certificate_sha256, issue_client, make_pki
from flowrun.testing._pki import _pkcs12_bytes, certificates_pem, write_java_keystore
from tests._keytool import build_keytool_store, make_ca
from tests.aliases._setup import KEYSTORE_ENV, KEYSTORE_PASSWORD
from tests.zoo._servers import (
    Partner,
    Server,
    ZooFiles,
    start_apache,
    start_haproxy,
    start_jsse,
    start_nginx,
    start_openssl,
)
from tests.zoo._setup import ClientStores


@pytest.fixture(scope="session")
def zoo_pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def zoo_work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def zoo_files(zoo_pki: Pki, zoo_work: Path) -> ZooFiles:
    directory = zoo_work / "pki"
    directory.mkdir()
    server = zoo_pki.server
    server_chain = directory / "server-chain.pem"
    server_chain.write_bytes(certificates_pem([server.certificate, zoo_pki.intermediate.certificate]))
    server_leaf = directory / "server-leaf.pem"
    server_leaf.write_bytes(certificates_pem([server.certificate]))
    server_issuers = directory / "server-issuers.pem"
    server_issuers.write_bytes(certificates_pem([zoo_pki.intermediate.certificate]))
    # The daemons read an unencrypted key, as they are usually configured; it stays in the test's
    # temporary directory, readable by its owner only.
    server_key = directory / "server-key.pem"
    server_key.touch(mode=0o600)
    server_key.write_bytes(server.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server_pkcs12 = directory / "server.p12"
    server_pkcs12.touch(mode=0o600)
    server_pkcs12.write_bytes(_pkcs12_bytes(server, alias="server", password=KEYSTORE_PASSWORD))
    server_root = directory / "server-root.pem"
    server_root.write_bytes(certificates_pem([zoo_pki.root.certificate]))
    return ZooFiles(work=zoo_work, server_chain=server_chain, server_leaf=server_leaf,
                    server_issuers=server_issuers, server_key=server_key, server_pkcs12=server_pkcs12,
                    client_ca=directory / "client-root.pem", password=KEYSTORE_PASSWORD)


@pytest.fixture(scope="session")
def client_stores(zoo_pki: Pki, zoo_files: ZooFiles, zoo_work: Path) -> ClientStores:
    directory = zoo_work / "clients"
    root = make_ca(directory, "Zoo Client Root CA")
    intermediate = root.issue_intermediate("Zoo Client Intermediate CA")
    zoo_files.client_ca.write_bytes(root.cert_pem)
    good = build_keytool_store(directory / "good", storetype="JKS", storepass=KEYSTORE_PASSWORD, ca=root,
                               intermediate=intermediate, alias="client", filename="good.jks")
    issuer = CertifiedKey(certificate=intermediate.cert, private_key=intermediate.key,  # type: ignore[arg-type]
                          issuers=(root.cert,))
    expired = directory / "expired.jks"
    write_java_keystore(expired, issue_client(zoo_pki, signed_by=issuer, expired=True, common_name="zoo-expired"),
                        alias="client", password=KEYSTORE_PASSWORD)
    foreign = directory / "foreign.jks"
    write_java_keystore(foreign, zoo_pki.client, alias="client", password=KEYSTORE_PASSWORD)
    other_root = directory / "other-root.pem"
    other_root.write_bytes(certificates_pem([zoo_pki.other_ca.certificate]))
    return ClientStores(good=good.path, expired=expired, foreign=foreign,
                        server_root=zoo_files.work / "pki" / "server-root.pem", other_root=other_root,
                        good_sha256=certificate_sha256(good.leaf))


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYSTORE_ENV, KEYSTORE_PASSWORD)


@pytest.fixture
def fresh_tls_cache() -> Iterator[None]:
    clear_caches()
    yield
    clear_caches()


# --- the servers: one process (or one per port) per session ----------------------------------------

_STARTERS: dict[str, Callable[[ZooFiles], tuple[Server, list[Partner]]]] = {
    "nginx": start_nginx, "apache": start_apache, "haproxy": start_haproxy, "jsse": start_jsse,
    "openssl": start_openssl,
}


class Zoo:
    """Starts each server the first time one of its partners is asked for; stops them all at the end."""

    def __init__(self, files: ZooFiles) -> None:
        self._files = files
        self._servers: list[Server] = []
        self._partners: dict[str, Partner] = {}

    def partner(self, name: str) -> Partner:
        if name not in self._partners:
            server, partners = _STARTERS[name.split("_", 1)[0]](self._files)
            self._servers.append(server)
            self._partners.update((p.name, p) for p in partners)
        return self._partners[name]

    def stop(self) -> None:
        for server in self._servers:
            server.stop()


@pytest.fixture(scope="session")
def zoo(zoo_files: ZooFiles, client_stores: ClientStores) -> Iterator[Zoo]:
    started = Zoo(zoo_files)
    yield started
    started.stop()
