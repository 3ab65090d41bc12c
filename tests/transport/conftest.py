"""Fixtures: one PKI per session, partner servers and raw servers per test."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun.testing import PartnerServer, Pki, PkiFiles, make_pki
from flowrun.testing._pki import certificates_pem, load_identity_into
from tests.transport._support import PASSWORD


@pytest.fixture(scope="session")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="session")
def pki_files(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return pki.write(tmp_path_factory.mktemp("pki"), keystore_password=PASSWORD)


@pytest.fixture
def partner(pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(pki) as server:
        yield server


def server_context(pki: Pki, *, require_client_cert: bool = True) -> ssl.SSLContext:
    """A server context with the PKI's server identity that verifies client certs against its root."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    load_identity_into(context, pki.server)
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    context.load_verify_locations(cadata=certificates_pem([pki.root.certificate]).decode())
    return context


@pytest.fixture
def tls_server_context(pki: Pki) -> ssl.SSLContext:
    return server_context(pki)


@pytest.fixture
def upload_file(tmp_path: Path) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(bytes(range(256)) * 64)
    return path
