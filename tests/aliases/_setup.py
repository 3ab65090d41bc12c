"""Helpers that write alias directories over a throwaway PKI (see ``conftest.py`` for fixtures).

Key material is written under pytest's temporary directories only. Passwords reach the records
as ``{"env": ...}`` references; tests search outputs for the password values to prove they
never leak.
"""

from __future__ import annotations

import json
import shutil
import ssl
from pathlib import Path
from typing import Any

from flowrun._load._aliases import alias_files, load_alias_records
from flowrun._registry import Registry
from flowrun._tls._cache import TlsCache
from flowrun.testing import CertifiedKey, PkiFiles
from flowrun.testing._pki import certificates_pem, write_java_keystore

KEYSTORE_PASSWORD = "store-pass-Vq81"
KEYSTORE_ENV = "PARTNER_KEYSTORE_PASSWORD"
API_KEY = "api-key-value-Zt55"
API_KEY_ENV = "PARTNER_API_KEY"
REPO = Path(__file__).resolve().parents[2]


def write_jks(path: Path, identity: CertifiedKey) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_java_keystore(path, identity, alias="client", password=KEYSTORE_PASSWORD)
    return path


def write_pem(path: Path, *identities: CertifiedKey) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(certificates_pem([i.certificate for i in identities]))
    return path


def keystore(name: str, file: Path | str, **extra: Any) -> dict[str, Any]:
    return {"kind": "keystore", "name": name, "type": "jks", "file": str(file),
            "password": {"env": KEYSTORE_ENV}, "key_alias": "client", **extra}


def trust_cert(name: str, file: Path | str) -> dict[str, Any]:
    return {"kind": "trust_store_cert", "name": name, "format": "pem", "file": str(file)}


def profile(name: str = "partnerMTLS", keystore_name: str = "client_ks", trust: tuple[str, ...] = ("partner_root",),
            **extra: Any) -> dict[str, Any]:
    return {"kind": "protocol_profile", "name": name, "keystore": keystore_name,
            "trust_store_certs": list(trust), "use_system_trust": False, **extra}


def mtls_alias(name: str = "partner", *, port: int, host: str = "localhost", profile_name: str = "partnerMTLS",
               **connection: Any) -> dict[str, Any]:
    return {"kind": "alias", "name": name,
            "connection": {"url_builder": True, "host": host, "port": port, "base_path": "/v2",
                           "mutual_authentication": True, "protocol_profile": profile_name, **connection}}


def mtls_records(files: PkiFiles, *, port: int, host: str = "localhost", trust_file: Path | None = None,
                 keystore_file: Path | None = None, profile_extra: dict[str, Any] | None = None,
                 ) -> list[dict[str, Any]]:
    """One keystore, one trust cert, one profile (no system trust) and alias ``partner``."""
    return [
        keystore("client_ks", keystore_file or files.client.jks),
        trust_cert("partner_root", trust_file or files.root_pem),
        profile(**(profile_extra or {})),
        mtls_alias(port=port, host=host),
    ]


def write_aliases(directory: Path, records: list[dict[str, Any]] | dict[str, Any],
                  filename: str = "partner.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / filename
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return directory


def load(directory: Path, cache: TlsCache | None = None) -> Registry:
    """A registry with its own TLS cache, so that build counts start at zero."""
    return Registry(load_alias_records(alias_files(directory)), cache=cache if cache is not None else TlsCache())


def canonical_tree(tmp_path: Path) -> Path:
    """``aliases/bank.json`` copied as it ships, in ``tmp_path/aliases``; the caller writes the
    files it names (``../keystores/client.jks``, ``../certs/bank-root.pem``)."""
    directory = tmp_path / "aliases"
    directory.mkdir()
    shutil.copy(REPO / "aliases" / "bank.json", directory / "bank.json")
    return directory


def ca_common_names(context: ssl.SSLContext) -> set[str]:
    """Common names of the CA certificates a context trusts (loaded ones; a capath is lazy)."""
    names: set[str] = set()
    for cert in context.get_ca_certs():
        for rdn in cert["subject"]:
            names.update(value for key, value in rdn if key == "commonName")
    return names
