"""Test helpers: a throwaway PKI and an embedded partner server (REST + SOAP over mutual TLS).

Used by ``flowrun demo``, by flowrun's own tests, and by anyone testing flows in pytest::

    from flowrun.testing import PartnerServer, make_pki

    pki = make_pki()
    files = pki.write(tmp_path, keystore_password="changeit")
    with PartnerServer(pki) as partner:
        ...  # point an alias at partner.url with files.client.jks and files.root_pem
"""

from flowrun.testing._partner import DEFAULT_API_KEYS, DEFAULT_OAUTH_CLIENTS, PartnerServer, RecordedRequest
from flowrun.testing._pki import (
    CLIENT_COMMON_NAME,
    CLIENT_KEY_ALIAS,
    CertifiedKey,
    ClientFiles,
    Pki,
    PkiFiles,
    certificate_sha256,
    issue_client,
    issue_server,
    make_ca,
    make_pki,
    write_client_files,
)

__all__ = [
    "CLIENT_COMMON_NAME",
    "CLIENT_KEY_ALIAS",
    "DEFAULT_API_KEYS",
    "DEFAULT_OAUTH_CLIENTS",
    "CertifiedKey",
    "ClientFiles",
    "PartnerServer",
    "Pki",
    "PkiFiles",
    "RecordedRequest",
    "certificate_sha256",
    "issue_client",
    "issue_server",
    "make_ca",
    "make_pki",
    "write_client_files",
]
