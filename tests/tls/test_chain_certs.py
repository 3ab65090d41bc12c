"""A keystore record's ``chain_certs`` complete the chain we send, against a partner that trusts
only the root: a bank's leaf-only .p12 (made here by ``openssl pkcs12 -export``) is refused with
"unknown CA" until its intermediate is named, by file (PEM or DER) or by trust_store_cert name."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from flowrun._cli import main
from flowrun._errors import UnknownReferenceError
from flowrun._registry import Registry
from flowrun.testing import PartnerServer, Pki, make_pki
from flowrun.testing._pki import certificates_pem
from tests._binaries import require_binary

PASSWORD = "chain-store-pw"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


@pytest.fixture(scope="module")
def partner(pki: Pki) -> Iterator[PartnerServer]:
    with PartnerServer(pki) as server:  # trusts client certificates up to the root only
        yield server


@pytest.fixture(scope="module")
def leaf_only_p12(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("leaf-only")
    leaf, key = directory / "client.crt", directory / "client.key"
    leaf.write_bytes(certificates_pem([pki.client.certificate]))
    key.write_bytes(pki.client.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key.chmod(0o600)
    out = directory / "client.p12"
    subprocess.run([require_binary("openssl", "openssl"), "pkcs12", "-export", "-in", str(leaf), "-inkey", str(key),
                    "-name", "client", "-out", str(out), "-passout", f"pass:{PASSWORD}"],
                   check=True, capture_output=True, timeout=60)
    out.chmod(0o600)
    return out


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAIN_PW", PASSWORD)


def _aliases(directory: Path, store: Path, pki: Pki, partner: PartnerServer, **keystore: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "partner-root.pem").write_bytes(certificates_pem([pki.root.certificate]))
    (directory / "bank-intermediate.pem").write_bytes(certificates_pem([pki.intermediate.certificate]))
    (directory / "bank-intermediate.der").write_bytes(
        pki.intermediate.certificate.public_bytes(serialization.Encoding.DER))
    records = [
        {"kind": "keystore", "name": "bank_client", "file": str(store), "password": {"env": "CHAIN_PW"},
         **keystore},
        {"kind": "trust_store_cert", "name": "partner_root", "file": "partner-root.pem"},
        {"kind": "trust_store_cert", "name": "bank_intermediate", "file": "bank-intermediate.pem"},
        {"kind": "protocol_profile", "name": "bankMTLS", "keystore": "bank_client",
         "trust_store_certs": ["partner_root"], "use_system_trust": False},
        {"kind": "alias", "name": "bank", "connection": {"url": f"{partner.url}/v2", "mutual_authentication": True,
                                                          "protocol_profile": "bankMTLS"}},
    ]
    (directory / "bank.json").write_text(json.dumps(records, indent=1))
    return directory


def test_a_leaf_only_p12_is_refused_by_a_partner_that_holds_only_the_root(
        leaf_only_p12: Path, pki: Pki, partner: PartnerServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    aliases = _aliases(tmp_path / "aliases", leaf_only_p12, pki, partner)
    assert main(["alias", "test", "bank", "--aliases", str(aliases)]) == 1
    assert "tls.client_cert_rejected" in capsys.readouterr().out


@pytest.mark.parametrize("chain_certs", [["./bank-intermediate.pem"], ["bank-intermediate.der"],
                                         ["bank_intermediate"]], ids=["pem-file", "der-file", "trust-cert-name"])
def test_chain_certs_complete_the_chain_that_is_sent(
        chain_certs: list[str], leaf_only_p12: Path, pki: Pki, partner: PartnerServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    aliases = _aliases(tmp_path / "aliases", leaf_only_p12, pki, partner, chain_certs=chain_certs)
    resolved = Registry.load(aliases).resolve("bank")
    assert resolved.client_chain == (pki.client.certificate, pki.intermediate.certificate)
    assert main(["alias", "test", "bank", "--aliases", str(aliases)]) == 0, capsys.readouterr()
    assert partner.client_certs[-1] == pki.client.sha256


def test_inspect_with_chain_cert_agrees(leaf_only_p12: Path, pki: Pki, partner: PartnerServer, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    aliases = _aliases(tmp_path / "aliases", leaf_only_p12, pki, partner)
    base = ["keystore", "inspect", str(leaf_only_p12), "--password-env", "CHAIN_PW", "--json"]
    assert main(base) == 0
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "chain.leaf_only" in codes
    assert main([*base, "--chain-cert", str(aliases / "bank-intermediate.pem")]) == 0
    codes = [f["code"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert "chain.leaf_only" not in codes and "chain.root_not_included" in codes


def test_an_unknown_chain_certs_name_is_a_reference_error(leaf_only_p12: Path, pki: Pki, partner: PartnerServer,
                                                         tmp_path: Path) -> None:
    aliases = _aliases(tmp_path / "aliases", leaf_only_p12, pki, partner, chain_certs=["bank_intermediat"])
    with pytest.raises(UnknownReferenceError) as raised:
        Registry.load(aliases)
    error = raised.value
    assert error.pointer == "/0/chain_certs/0"
    assert "did you mean 'bank_intermediate'" in error.message
    assert "./intermediate.pem" in error.hint


def test_a_missing_chain_cert_file_names_the_record(leaf_only_p12: Path, pki: Pki, partner: PartnerServer,
                                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aliases = _aliases(tmp_path / "aliases", leaf_only_p12, pki, partner, chain_certs=["./gone.pem"])
    assert main(["alias", "test", "bank", "--aliases", str(aliases)]) == 2
    err = capsys.readouterr().err
    assert "keystore 'bank_client' (chain_certs)" in err and "gone.pem" in err and "Traceback" not in err


def test_a_bank_p12_with_leaf_and_intermediate_but_no_root_is_usable(
        pki: Pki, partner: PartnerServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    leaf, key, inter = tmp_path / "client.crt", tmp_path / "client.key", tmp_path / "intermediate.pem"
    leaf.write_bytes(certificates_pem([pki.client.certificate]))
    inter.write_bytes(certificates_pem([pki.intermediate.certificate]))
    key.write_bytes(pki.client.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    store = tmp_path / "bank.p12"
    subprocess.run([require_binary("openssl", "openssl"), "pkcs12", "-export", "-in", str(leaf), "-inkey", str(key),
                    "-certfile", str(inter), "-name", "client", "-out", str(store), "-passout", f"pass:{PASSWORD}"],
                   check=True, capture_output=True, timeout=60)
    store.chmod(0o600)
    assert main(["keystore", "inspect", str(store), "--password-env", "CHAIN_PW", "--json"]) == 0
    findings = {f["code"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert "chain.root_not_included" in findings and "chain.leaf_only" not in findings
    aliases = _aliases(tmp_path / "aliases", store, pki, partner)
    assert main(["alias", "test", "bank", "--aliases", str(aliases)]) == 0, capsys.readouterr()


def test_alias_show_lists_the_chain_certs(leaf_only_p12: Path, pki: Pki, partner: PartnerServer, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    aliases = _aliases(tmp_path / "aliases", leaf_only_p12, pki, partner,
                       chain_certs=["./bank-intermediate.pem", "bank_intermediate", "./gone.pem"])
    assert main(["alias", "show", "bank", "--aliases", str(aliases)]) == 0
    out = capsys.readouterr().out
    assert f"chain cert    {aliases / 'bank-intermediate.pem'}\n" in out
    assert "chain cert    bank_intermediate\n" in out
    assert f"chain cert    {aliases / 'gone.pem'} (missing)" in out
