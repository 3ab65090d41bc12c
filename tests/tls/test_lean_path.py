"""The lean path (flowrun/_tls/_lean.py) builds what the full path builds, or declines.

Every keystore here is written by the real keytool. For each, the lean identity is either None
(the full path then decides and words any problem) or the very identity the full path selects:
the same chain, byte for byte, and the same key. Trust store certs likewise. A run of many
iterations from a keytool JKS then never imports cryptography, and what it reports is unchanged.
"""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from flowrun._models._results import TlsInfo
from flowrun._tls._chain import der_of
from flowrun._tls._lean import certificate_fields, lean_jks_identity, lean_trust_certificates, subject_text
from flowrun._tls._read import read_keystore, read_trust_certs, select_identity
from tests._keytool import CA, StoreFactory, pem, run_keytool

pytestmark = pytest.mark.keytool


def _full(data: bytes, *, storepass: str, key_alias: str | None, keypass: str | None) -> tuple[bytes, ...]:
    identity = select_identity(read_keystore(data, password=storepass), key_alias=key_alias,
                               key_password=keypass, store_password=storepass)
    return tuple(der_of(cert) for cert in identity.chain)


@pytest.mark.parametrize("options", [
    {"key_type": "RSA"}, {"key_type": "EC"}, {"key_type": "EC", "keypass": "keypass-1"},
    {"key_type": "RSA", "extra_private_keys": ("second",)}, {"key_type": "EC", "chain_mode": "none"},
    {"key_type": "RSA", "import_ca_certs": True},
], ids=["rsa", "ec", "ec-keypass", "two-keys", "self-signed", "ca-entries"])
def test_the_lean_identity_of_a_keytool_jks_is_the_full_paths(keytool_stores: StoreFactory,
                                                              options: dict[str, object]) -> None:
    store = keytool_stores(storetype="JKS", **options)
    data = store.path.read_bytes()
    keypass = options.get("keypass")
    assert keypass is None or isinstance(keypass, str)

    lean = lean_jks_identity(data, password=store.storepass, key_alias=store.alias, key_password=keypass)

    assert lean is not None and lean.checked
    assert lean.ders == _full(data, storepass=store.storepass, key_alias=store.alias, keypass=keypass)
    full = select_identity(read_keystore(data, password=store.storepass), key_alias=store.alias,
                           key_password=keypass, store_password=store.storepass)
    assert lean.pkcs8 == full.pkcs8
    assert lean.chain == full.chain  # decoded when asked
    assert lean.leaf.subject == full.leaf.subject


def test_the_lean_path_declines_what_the_full_path_must_word(keytool_stores: StoreFactory, tmp_path: Path,
                                                             test_root_ca: CA) -> None:
    store = keytool_stores(storetype="JKS", key_type="EC", keypass="keypass-1")
    data = store.path.read_bytes()
    declined = {
        "wrong store password": lean_jks_identity(data, password="nope", key_alias=None, key_password="keypass-1"),
        "wrong key password": lean_jks_identity(data, password=store.storepass, key_alias=None, key_password="no"),
        "no store password": lean_jks_identity(data, password=None, key_alias=None, key_password="keypass-1"),
        "unknown alias": lean_jks_identity(data, password=store.storepass, key_alias="other",
                                           key_password="keypass-1"),
        "truncated": lean_jks_identity(data[:-30], password=store.storepass, key_alias=None,
                                       key_password="keypass-1"),
    }
    two = keytool_stores(storetype="JKS", key_type="EC", extra_private_keys=("second",))
    declined["two keys, no alias"] = lean_jks_identity(two.path.read_bytes(), password=two.storepass,
                                                        key_alias=None, key_password=None)
    jceks = keytool_stores(storetype="JCEKS", key_type="EC")
    declined["jceks"] = lean_jks_identity(jceks.path.read_bytes(), password=jceks.storepass, key_alias=None,
                                          key_password=None)
    leaf_only = keytool_stores(storetype="JKS", key_type="EC", chain_mode="leaf_only", import_ca_certs=True)
    declined["chain completed from trusted entries"] = lean_jks_identity(
        leaf_only.path.read_bytes(), password=leaf_only.storepass, key_alias=None, key_password=None)
    declined["placeholder mistake"] = _placeholder_store(tmp_path, test_root_ca)
    for name, args in {"dsa": ["-keyalg", "DSA", "-keysize", "2048"],
                       "secp256k1": ["-keyalg", "EC", "-groupname", "secp256k1"],
                       "expires in 3 days": ["-keyalg", "RSA", "-keysize", "2048", "-validity", "3"]}.items():
        path = tmp_path / f"{name.replace(' ', '-')}.jks"
        run_keytool("-genkeypair", "-alias", "k", "-dname", "CN=k", "-keystore", str(path), "-storetype", "JKS",
                    "-storepass", "changeit", "-keypass", "changeit", *args, check=False)
        if path.exists():
            declined[name] = lean_jks_identity(path.read_bytes(), password="changeit", key_alias=None,
                                               key_password=None)

    assert {"dsa", "expires in 3 days"} <= declined.keys()
    assert {name: identity for name, identity in declined.items() if identity is not None} == {}


def _placeholder_store(tmp_path: Path, ca: CA) -> object:
    """keytool's placeholder mistake: the CA's reply imported under a new alias."""
    path = tmp_path / "placeholder.jks"
    common = ["-keystore", str(path), "-storetype", "JKS", "-storepass", "changeit"]
    run_keytool("-genkeypair", "-alias", "client", "-dname", "CN=client", "-keyalg", "EC", "-groupname",
                "secp256r1", "-keypass", "changeit", *common)
    request = run_keytool("-certreq", "-alias", "client", *common).stdout.encode()
    signed = ca.sign_csr(request)
    (tmp_path / "signed.pem").write_bytes(pem(signed))
    run_keytool("-importcert", "-noprompt", "-alias", "signed", "-file", str(tmp_path / "signed.pem"), *common)
    return lean_jks_identity(path.read_bytes(), password="changeit", key_alias=None, key_password=None)


def test_an_expiring_certificate_takes_the_full_path_whose_warning_names_it(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", key_type="EC")
    data = store.path.read_bytes()
    end = store.leaf.not_valid_after_utc

    assert lean_jks_identity(data, password=store.storepass, key_alias=None, key_password=None,
                             now=end - dt.timedelta(days=20)) is not None
    assert lean_jks_identity(data, password=store.storepass, key_alias=None, key_password=None,
                             now=end - dt.timedelta(days=14)) is None


def test_certificate_fields_agree_with_cryptography(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JKS", key_type="RSA", import_ca_certs=True)
    contents = read_keystore(store.path.read_bytes(), password=store.storepass)
    certificates = [cert for entry in contents.entries for cert in entry.certificates]
    assert len(certificates) >= 4

    for cert in certificates:
        fields = certificate_fields(der_of(cert))
        assert fields is not None
        assert fields.not_after == cert.not_valid_after_utc
        assert fields.self_issued == (cert.issuer == cert.subject)
        assert fields.key_algorithm == cert.public_key_algorithm_oid.dotted_string
        assert fields.public_key == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
            assert fields.key_parameter == "1.2.840.10045.3.1.7"
    assert certificate_fields(b"\x30\x03\x02\x01\x01") is None
    assert certificate_fields(der_of(certificates[0])[:-5]) is None


def test_trust_store_certs_read_lean_are_the_full_paths(test_root_ca: CA, test_intermediate_ca: CA,
                                                       tmp_path: Path) -> None:
    bundle = (b"# the partner's roots\n" + pem(test_root_ca.cert) + b"\nsome comment\n"
              + pem(test_intermediate_ca.cert))
    der = der_of(test_root_ca.cert)

    for data, fmt in ((bundle, None), (bundle, "pem"), (der, None), (der, "der"), (pem(test_root_ca.cert), None)):
        lean = lean_trust_certificates(data, fmt)
        assert lean == tuple(der_of(c) for c in read_trust_certs(data, format=fmt))

    headers = pem(test_root_ca.cert).replace(b"-----\n", b"-----\nProc-Type: 4,X\n\n", 1)
    key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    for data, fmt in ((bundle, "der"), (der, "pem"), (headers, None), (pem(test_root_ca.cert) + key, None),
                      (b"-----BEGIN PKCS7-----\nAAAA\n-----END PKCS7-----\n", None), (der[:-3], None)):
        assert lean_trust_certificates(data, fmt) is None


def test_tls_info_reads_its_subjects_when_asked_and_compares_by_value() -> None:
    asked: list[int] = []

    def subjects() -> tuple[str | None, str | None, tuple[str, ...]]:
        asked.append(1)
        return "CN=us", "CN=them", ("CN=them", "CN=root")

    lazy = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", "ab" * 32, subjects=subjects)
    eager = TlsInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", "ab" * 32, "CN=us", "CN=them", ("CN=them", "CN=root"))

    assert asked == []
    assert lazy == eager and hash(lazy) == hash(eager) and asked == [1]
    assert lazy.to_dict() == eager.to_dict() == {
        "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "client_cert_sha256": "ab" * 32,
        "client_cert_subject": "CN=us", "server_cert_subject": "CN=them", "server_chain": ["CN=them", "CN=root"]}
    assert pickle.loads(pickle.dumps(lazy)) == eager and asked == [1]
    assert TlsInfo(**eager.to_dict()) == eager
    assert repr(lazy).startswith("TlsInfo(version='TLSv1.3'")
    assert lazy != TlsInfo("TLSv1.2", "TLS_AES_256_GCM_SHA384", "ab" * 32, subjects=subjects)


def _self_signed(name: x509.Name) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


_NAMES = {
    "plain": [("CN", "partner.example"), ("O", "Bank AG"), ("C", "DE")],
    "every short name": [("DC", "example"), ("DC", "com"), ("C", "NL"), ("ST", "Noord-Holland"),
                         ("L", "Amsterdam"), ("STREET", "Damrak 1"), ("O", "Bank"), ("OU", "Payments"),
                         ("UID", "u-42"), ("CN", "api")],
    "escapes": [("CN", 'a,b+c"d\\e;f<g>h'), ("O", "#hash"), ("OU", " leading and trailing ")],
    "single space": [("CN", " ")],
    "nul": [("CN", "a\0b")],
    "unicode": [("CN", "Zürich Bank ß 東京"), ("O", "Ünïcödé")],
    "dotted": [("CN", "c"), ("emailAddress", "ops@bank.example"), ("serialNumber", "12345")],
}
_OIDS = {"CN": NameOID.COMMON_NAME, "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
         "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
         "STREET": NameOID.STREET_ADDRESS, "DC": NameOID.DOMAIN_COMPONENT, "UID": NameOID.USER_ID,
         "emailAddress": NameOID.EMAIL_ADDRESS, "serialNumber": NameOID.SERIAL_NUMBER}


@pytest.mark.parametrize("case", sorted(_NAMES))
def test_subjects_are_written_as_cryptography_writes_them(case: str) -> None:
    name = x509.Name([x509.NameAttribute(_OIDS[short], value) for short, value in _NAMES[case]])
    der = _self_signed(name)

    assert subject_text(der) == x509.load_der_x509_certificate(der).subject.rfc4514_string()


def test_names_written_otherwise_are_left_to_cryptography(keytool_stores: StoreFactory) -> None:
    multi = x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "a"),
                                                       x509.NameAttribute(NameOID.ORGANIZATION_NAME, "b")])])
    bmp = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "wide", _ASN1Type.BMPString)])
    der = _self_signed(multi)
    assert subject_text(der) == x509.load_der_x509_certificate(der).subject.rfc4514_string()
    assert subject_text(_self_signed(bmp)) is None
    assert subject_text(b"\x30\x00") is None
    # keytool's own encoding of a -dname with escapes
    store = keytool_stores(storetype="JKS", key_type="EC", chain_mode="none")
    leaf = read_keystore(store.path.read_bytes(), password=store.storepass).private_key_entries()[0].certificates[0]
    assert subject_text(der_of(leaf)) == leaf.subject.rfc4514_string()
