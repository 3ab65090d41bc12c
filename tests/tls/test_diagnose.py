"""Offline keystore diagnostics on keystores made by keytool (and PEM identities for the cases
keytool cannot produce): each problem becomes a finding with its stable code."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from flowrun._tls._diagnose import CHAIN_HINT, FINDING_CODES, diagnose, is_usable
from flowrun._tls._model import Finding, KeystoreContents
from flowrun._tls._read import load_keystore_file, read_keystore
from tests._keytool import CA, KeytoolStore, make_ca, pem

pytestmark = pytest.mark.keytool

StoreFactory = Callable[..., KeytoolStore]  # the keytool_stores fixture


def _load(store: KeytoolStore) -> KeystoreContents:
    return load_keystore_file(store.path, password=store.storepass)


def _codes(findings: list[Finding], severity: str | None = None) -> list[str]:
    return [f.code for f in findings if severity is None or f.severity == severity]


def _only(findings: list[Finding], code: str) -> Finding:
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, findings
    return matching[0]


# --- keytool stores ------------------------------------------------------------------------


def test_the_articles_store_is_usable(full_store: KeytoolStore) -> None:
    findings = diagnose(_load(full_store), key_password=full_store.keypass)
    assert _codes(findings, "error") == []
    assert _codes(findings, "warning") == []
    assert is_usable(findings)
    summary = _only(findings, "identity.summary")
    assert summary.alias == full_store.alias
    assert "chain of 3 up to root 'O=Flowrun Test,CN=Test Root CA'" in summary.message


def test_every_finding_has_a_documented_code_and_severity(full_store: KeytoolStore) -> None:
    findings = diagnose(_load(full_store), key_password="not the key password")
    assert findings
    for finding in findings:
        assert FINDING_CODES[finding.code] == finding.severity
    documented = (Path(__file__).parents[2] / "docs" / "keystore-findings.md").read_text()
    for code in FINDING_CODES:
        assert f"`{code}`" in documented


def test_leaf_only_jks_is_usable_with_a_warning_and_the_keytool_hint(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", chain_mode="leaf_only")
    findings = diagnose(_load(store))
    leaf_only = _only(findings, "chain.leaf_only")
    assert leaf_only.severity == "warning"
    assert "issuer 'O=Flowrun Test,CN=Test Intermediate CA'" in leaf_only.message
    assert "the partner must hold that CA" in leaf_only.message
    assert CHAIN_HINT in leaf_only.message and "chain_certs" in leaf_only.message
    assert is_usable(findings)


def test_leaf_only_pkcs12_gets_pkcs12_advice_not_keytool_advice(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="PKCS12", chain_mode="leaf_only")
    leaf_only = _only(diagnose(_load(store)), "chain.leaf_only")
    assert "openssl pkcs12 -export" in leaf_only.message and "chain_certs" in leaf_only.message
    assert "keytool" not in leaf_only.message


def test_leaf_and_intermediate_without_the_root_is_usable(
    keytool_stores: StoreFactory, test_intermediate_ca: CA,
) -> None:
    store = keytool_stores(storetype="PKCS12", chain_mode="leaf_only")
    findings = diagnose(_load(store), chain_certs=[test_intermediate_ca.cert])
    assert _codes(findings, "error") == [] and _codes(findings, "warning") == []
    assert "issued by 'O=Flowrun Test,CN=Test Root CA'" in _only(findings, "chain.root_not_included").message
    assert "chain of 2, root not found" in _only(findings, "identity.summary").message


def test_intermediate_from_the_given_trust_certs_completes_the_chain_but_is_not_sent(
    keytool_stores: StoreFactory, test_root_ca: CA, test_intermediate_ca: CA,
) -> None:
    store = keytool_stores(storetype="JKS", chain_mode="leaf_only")
    findings = diagnose(_load(store), trust_certs=[test_intermediate_ca.cert, test_root_ca.cert])
    assert "chain.incomplete" not in _codes(findings)
    assert "'O=Flowrun Test,CN=Test Intermediate CA'" in _only(findings, "chain.not_sent").message
    assert is_usable(findings)


def test_an_intermediate_among_trust_certs_only_is_not_sent(
    keytool_stores: StoreFactory, test_intermediate_ca: CA,
) -> None:
    store = keytool_stores(storetype="JKS", chain_mode="leaf_only")
    findings = diagnose(_load(store), trust_certs=[test_intermediate_ca.cert])
    assert "'O=Flowrun Test,CN=Test Intermediate CA'" in _only(findings, "chain.not_sent").message
    assert "ends at 'O=Flowrun Test,CN=Test Intermediate CA'" in _only(findings, "chain.root_not_included").message


def test_self_signed_placeholder_is_an_error(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", chain_mode="none")
    findings = diagnose(_load(store))
    self_signed = _only(findings, "chain.self_signed")
    assert self_signed.severity == "error"
    assert "keytool -certreq" in self_signed.message
    assert "chain.incomplete" not in _codes(findings)
    assert "self-signed" in _only(findings, "identity.summary").message


def test_a_self_signed_pkcs12_gets_openssl_advice_not_keytool(tmp_path: Path) -> None:
    """A .p12 made with openssl from a self-signed certificate is no keytool placeholder."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "legacy")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=365)).sign(key, hashes.SHA256()))
    store = tmp_path / "self.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"legacy", key, cert, None, serialization.BestAvailableEncryption(b"changeit")))
    findings = diagnose(read_keystore(store.read_bytes(), password="changeit", source=str(store)))
    message = _only(findings, "chain.self_signed").message
    assert "openssl pkcs12 -export" in message
    assert "keytool" not in message


def test_expired_leaf_is_an_error_with_its_date(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", expired=True)
    findings = diagnose(_load(store))
    expired = _only(findings, "cert.expired")
    assert expired.severity == "error"
    assert "'O=Flowrun Test,CN=client'" in expired.message
    assert store.leaf.not_valid_after_utc.strftime("%Y-%m-%d") in expired.message
    assert not is_usable(findings)


def test_trusted_only_store_has_no_private_key(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", trusted_only=True)
    findings = diagnose(_load(store), key_alias="client")
    assert _codes(findings, "error") == ["store.no_private_key"]
    message = findings[0].message
    assert "only trustedCertEntry" in message
    assert "'client'" in message and "'root'" in message
    assert "alias of the key pair" in message


def test_two_keys_without_alias_name_both(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", extra_private_keys=("second",))
    findings = diagnose(_load(store))
    ambiguous = _only(findings, "key_alias.ambiguous")
    assert ambiguous.severity == "error"
    assert "'client'" in ambiguous.message and "'second'" in ambiguous.message

    chosen = diagnose(_load(store), key_alias="second")
    assert _codes(chosen, "error") == []
    assert _only(chosen, "identity.summary").alias == "second"


def test_key_alias_not_found_or_not_a_key(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS")
    missing = _only(diagnose(_load(store), key_alias="nope"), "key_alias.not_found")
    assert "'client'" in missing.message
    trusted = _only(diagnose(_load(store), key_alias="root"), "key_alias.not_private_key")
    assert "trustedCertEntry" in trusted.message
    # keytool lower-cases JKS aliases: the alias a user typed in capitals still matches.
    assert _codes(diagnose(_load(store), key_alias="CLIENT"), "error") == []


def test_server_auth_only_leaf_is_refused(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="PKCS12", client_auth=False)
    findings = diagnose(_load(store))
    eku = _only(findings, "cert.no_client_auth")
    assert eku.severity == "error"
    assert "serverAuth" in eku.message and "clientAuth" in eku.message


def test_expiring_within_the_window_warns_and_not_with_a_smaller_one(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS")
    contents = _load(store)
    now = store.leaf.not_valid_after_utc - dt.timedelta(days=10, hours=1)

    warned = diagnose(contents, within_days=30, now=now)
    expiring = _only(warned, "cert.expiring")
    assert expiring.severity == "warning"
    assert "10 days left" in expiring.message
    assert store.leaf.not_valid_after_utc.strftime("%Y-%m-%d") in expiring.message
    assert is_usable(warned)

    assert "cert.expiring" not in _codes(diagnose(contents, within_days=5, now=now))


def test_wrong_key_password_is_a_finding_not_a_crash(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", keypass="key-pass-2")
    contents = _load(store)
    wrong = diagnose(contents)  # the key password is not the store password here
    assert _only(wrong, "key.wrong_password").severity == "error"
    assert "key-pass-2" not in repr(wrong)
    assert _codes(diagnose(contents, key_password="key-pass-2"), "error") == []


def test_jceks_secret_keys_are_listed_and_ignored(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JCEKS", secret_keys=("aes",))
    findings = diagnose(_load(store))
    assert "'aes'" in _only(findings, "store.secret_keys").message
    assert _codes(findings, "error") == []


def test_rsa_2048_is_noted_for_the_next_renewal(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", key_type="RSA")
    findings = diagnose(_load(store))
    assert _only(findings, "key.below_3072").severity == "info"
    assert "RSA 2048 bits" in _only(findings, "identity.summary").message


def test_expired_trust_cert_is_reported(keytool_stores: StoreFactory, tmp_path: Path) -> None:
    store = keytool_stores(storetype="JKS")
    partner = make_ca(tmp_path, "Partner Root")
    later = partner.cert.not_valid_after_utc + dt.timedelta(days=1)
    findings = diagnose(_load(store), trust_certs=[partner.cert], now=later)
    assert "'O=Flowrun Test,CN=Partner Root'" in _only(findings, "trust_cert.expired").message


# --- PEM identities for what keytool will not write ------------------------------------------


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _leaf(
    issuer: CA, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, key_usage: x509.KeyUsage | None = None,
    not_before: dt.datetime | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("pem-client"))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=200))
    )
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer.key, hashes.SHA256())  # type: ignore[arg-type]


def _pem_identity(key: object, *certs: x509.Certificate) -> KeystoreContents:
    key_pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    )
    return read_keystore(key_pem + b"".join(pem(c) for c in certs), password=None, type="pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[CA, CA]:
    root = make_ca(tmp_path_factory.mktemp("pem-pki"), "PEM Root")
    return root, root.issue_intermediate("PEM Intermediate")


def test_pem_identity_with_full_chain_is_usable(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    findings = diagnose(_pem_identity(key, _leaf(inter, key), inter.cert, root.cert))
    assert _codes(findings, "error") == []


def test_key_that_does_not_belong_to_the_certificate(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    findings = diagnose(_pem_identity(other, _leaf(inter, key), inter.cert, root.cert))
    assert _only(findings, "key.mismatch").severity == "error"


def test_small_rsa_key(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    findings = diagnose(_pem_identity(key, _leaf(inter, key), inter.cert, root.cert))
    assert "RSA 1024 bits" in _only(findings, "key.too_small").message
    assert not is_usable(findings)


def test_sha1_signed_leaf_warns_and_its_signature_still_verifies(pki: tuple[CA, CA], tmp_path: Path) -> None:
    # cryptography no longer signs with SHA-1; OpenSSL's command line still does, as old CAs did.
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not on PATH")
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name("sha1-client")).sign(key, hashes.SHA256())
    (tmp_path / "leaf.csr").write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.key").write_bytes(inter.key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    subprocess.run([openssl, "x509", "-req", "-in", "leaf.csr", "-CA", str(inter.cert_path), "-CAkey", "ca.key",
                    "-set_serial", "7", "-sha1", "-days", "90", "-out", "leaf.pem"],
                   cwd=tmp_path, check=True, capture_output=True)
    leaf = x509.load_pem_x509_certificate((tmp_path / "leaf.pem").read_bytes())
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA1)
    findings = diagnose(_pem_identity(key, leaf, inter.cert, root.cert))
    assert _only(findings, "cert.sha1_signature").severity == "warning"
    assert "chain.bad_signature" not in _codes(findings)
    assert is_usable(findings)


def test_key_usage_without_digital_signature_warns(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=True, key_cert_sign=False,
                          crl_sign=False, encipher_only=False, decipher_only=False)
    findings = diagnose(_pem_identity(key, _leaf(inter, key, key_usage=usage), inter.cert, root.cert))
    assert _only(findings, "cert.key_usage").severity == "warning"
    assert is_usable(findings)


def test_not_yet_valid_leaf(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    tomorrow = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    findings = diagnose(_pem_identity(key, _leaf(inter, key, not_before=tomorrow), inter.cert, root.cert))
    assert _only(findings, "cert.not_yet_valid").severity == "error"


def test_encrypted_pem_key_without_password(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.BestAvailableEncryption(b"pem-secret"))
    chain = pem(_leaf(inter, key)) + pem(inter.cert) + pem(root.cert)
    contents = read_keystore(key_pem + chain, password=None, type="pem")
    no_password = _only(diagnose(contents), "key.wrong_password")
    assert "no password was given" in no_password.message
    assert _codes(diagnose(contents, key_password="pem-secret"), "error") == []


def test_signature_is_verified_not_just_names(pki: tuple[CA, CA]) -> None:
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _leaf(inter, key)
    # Same name as the real intermediate, another key: the leaf's signature cannot verify.
    impostor = root.issue_intermediate("PEM Intermediate")
    contents = _pem_identity(key, leaf, impostor.cert, root.cert)
    assert contents.private_key_entries()[0].certificates[1] == impostor.cert
    findings = diagnose(contents)
    assert _only(findings, "chain.bad_signature").severity == "error"
    assert "chain.leaf_only" in _codes(findings)


def test_chain_out_of_order(pki: tuple[CA, CA]) -> None:
    # Java stores keep an entry's chain as imported; a PEM reader would re-order it.
    root, inter = pki
    key = ec.generate_private_key(ec.SECP256R1())
    entry = _pem_identity(key, _leaf(inter, key), inter.cert, root.cert).private_key_entries()[0]
    swapped = attrs.evolve(entry, certificates=(entry.certificates[0], root.cert, inter.cert))
    findings = diagnose(KeystoreContents(type="jks", entries=(swapped,)))
    order = [f for f in findings if f.code == "chain.order"]
    assert [f.severity for f in order] == ["error", "error"]
    assert "#2 ('O=Flowrun Test,CN=PEM Root') did not issue #1" in order[0].message
    # The path to the root is still found: the certificates are all there.
    assert "chain.incomplete" not in _codes(findings)


def test_empty_store() -> None:
    findings = diagnose(KeystoreContents(type="pem", entries=()))
    assert _codes(findings) == ["store.no_private_key"]
    assert "empty" in findings[0].message
