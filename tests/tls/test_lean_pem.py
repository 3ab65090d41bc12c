"""The lean path for PEM identities (``_lean.lean_pem_identity``) builds what the full path builds,
or declines.

Every file here is written by the real openssl, in the ways users make PEM identities: a key from
``genpkey`` or ``req -newkey``, a leaf signed by an intermediate, the chain in ``fullchain.pem``
order with and without the root, key and certificates in one file, and ``openssl pkcs12 -nodes``
output with its "Bag Attributes". For each, the lean identity is None or the full path's identity:
the same chain, byte for byte, and the same key. Everything the full path orders, completes or
words (another order, traditional or encrypted keys, a key that is not the leaf's, an expiring
leaf, a weak key) is declined.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flowrun._tls._chain import der_of, public_key_der
from flowrun._tls._lean import lean_pem_identity
from flowrun._tls._pem import read_pem
from flowrun._tls._read import select_identity
from tests.tls.test_real_inputs import openssl

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
_RSA = ["-newkey", "rsa:2048"]


def _sign(directory: Path, name: str, issuer: str | None, *, key: list[str], days: int = 300,
          ca: bool = False) -> None:
    """``name.key`` (PKCS#8, unencrypted) and ``name.crt``, signed by ``issuer`` (self-signed if None)."""
    extensions = ["-addext", "basicConstraints=critical,CA:TRUE"] if ca else []
    if issuer is None:
        openssl("req", "-x509", *key, "-nodes", "-keyout", str(directory / f"{name}.key"), "-subj",
                f"/CN={name}/O=Lean PEM Test", "-days", str(days), *extensions, "-out", str(directory / f"{name}.crt"))
        return
    openssl("req", "-new", *key, "-nodes", "-keyout", str(directory / f"{name}.key"), "-subj",
            f"/CN={name}/O=Lean PEM Test", "-out", str(directory / f"{name}.csr"))
    constraints = "basicConstraints=critical,CA:TRUE" if ca else "basicConstraints=CA:FALSE"
    (directory / f"{name}.ext").write_text(constraints + "\n")
    serial = str(int.from_bytes(name.encode()[:7], "big"))
    openssl("x509", "-req", "-in", str(directory / f"{name}.csr"), "-CA", str(directory / f"{issuer}.crt"), "-CAkey",
            str(directory / f"{issuer}.key"), "-set_serial", serial, "-days", str(days),
            "-extfile", str(directory / f"{name}.ext"), "-out", str(directory / f"{name}.crt"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("lean-pem")
    _sign(directory, "root", None, key=_RSA, days=3650, ca=True)
    _sign(directory, "intermediate", "root", key=_EC, days=1800, ca=True)
    _sign(directory, "client", "intermediate", key=_RSA)
    _sign(directory, "ec-client", "intermediate", key=_EC)
    _sign(directory, "expiring", "intermediate", key=_EC, days=3)
    return directory


def _read(directory: Path, *names: str) -> bytes:
    return b"".join((directory / name).read_bytes() for name in names)


def _full(data: bytes, key_data: bytes | None) -> tuple[tuple[bytes, ...], bytes]:
    identity = select_identity(read_pem(data, key_data=key_data, password=None), key_alias=None, key_password=None,
                               store_password=None)
    return tuple(der_of(cert) for cert in identity.chain), public_key_der(identity.private_key.public_key())


def _pkcs12_nodes(directory: Path) -> bytes:
    """What ``openssl pkcs12 -nodes`` prints of a bank's .p12: Bag Attributes, the key, the certificates."""
    p12 = directory / "client.p12"
    openssl("pkcs12", "-export", "-inkey", str(directory / "client.key"), "-in", str(directory / "client.crt"),
            "-certfile", str(directory / "intermediate.crt"), "-name", "client", "-passout", "pass:p12-pass",
            "-out", str(p12))
    return openssl("pkcs12", "-in", str(p12), "-nodes", "-passin", "pass:p12-pass")


_SAME = {
    "leaf and key files": (("client.crt",), ("client.key",)),
    "fullchain without the root": (("client.crt", "intermediate.crt"), ("client.key",)),
    "fullchain with the root": (("client.crt", "intermediate.crt", "root.crt"), ("client.key",)),
    "key first, one file": (("client.key", "client.crt", "intermediate.crt"), None),
    "key last, one file": (("ec-client.crt", "intermediate.crt", "ec-client.key"), None),
    "chain in the key file": (("ec-client.crt",), ("ec-client.key", "intermediate.crt")),
}


@pytest.mark.parametrize("case", sorted(_SAME))
def test_the_lean_identity_of_openssl_pem_files_is_the_full_paths(pki: Path, case: str) -> None:
    cert_files, key_files = _SAME[case]
    data = _read(pki, *cert_files)
    key_data = _read(pki, *key_files) if key_files is not None else None

    lean = lean_pem_identity(data, key_data)

    assert lean is not None and lean.checked and lean.alias == "key"
    chain, public_key = _full(data, key_data)
    assert lean.ders == chain
    assert public_key_der(lean.private_key.public_key()) == public_key


def test_openssl_pkcs12_nodes_output_reads_lean_as_the_full_path_reads_it(pki: Path) -> None:
    text = _pkcs12_nodes(pki)
    assert b"Bag Attributes" in text

    lean = lean_pem_identity(text, None)

    assert lean is not None  # OpenSSL 3 prints the leaf first, then the CA certificates
    chain, public_key = _full(text, None)
    assert lean.ders == chain and len(chain) == 2
    assert public_key_der(lean.private_key.public_key()) == public_key


def test_the_lean_path_declines_what_the_full_path_orders_or_words(pki: Path, tmp_path: Path) -> None:
    key = _read(pki, "client.key")
    traditional = openssl("pkey", "-in", str(pki / "client.key"), "-traditional")
    assert traditional.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    encrypted = openssl("pkcs8", "-topk8", "-in", str(pki / "client.key"), "-v2", "aes-256-cbc", "-passout",
                        "pass:key-pass")
    sec1 = openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout")
    openssl("req", "-x509", "-newkey", "rsa:1024", "-nodes", "-keyout", str(tmp_path / "weak.key"), "-subj",
            "/CN=weak", "-days", "300", "-out", str(tmp_path / "weak.crt"))
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1", "-nodes", "-keyout",
            str(tmp_path / "k1.key"), "-subj", "/CN=k1", "-days", "300", "-out", str(tmp_path / "k1.crt"))

    declined = {
        "root first": lean_pem_identity(_read(pki, "root.crt", "intermediate.crt", "client.crt"), key),
        "intermediate first": lean_pem_identity(_read(pki, "intermediate.crt", "client.crt"), key),
        "a gap in the chain": lean_pem_identity(_read(pki, "client.crt", "root.crt"), key),
        "the same certificate twice": lean_pem_identity(_read(pki, "client.crt", "client.crt"), key),
        "traditional RSA key": lean_pem_identity(_read(pki, "client.crt"), traditional),
        "encrypted PKCS#8 key": lean_pem_identity(_read(pki, "client.crt"), encrypted),
        "SEC1 EC key": lean_pem_identity(_read(pki, "ec-client.crt"), sec1),
        "another leaf's key": lean_pem_identity(_read(pki, "ec-client.crt"), key),
        "two keys": lean_pem_identity(_read(pki, "client.crt", "client.key"), key),
        "no key": lean_pem_identity(_read(pki, "client.crt"), None),
        "no certificate": lean_pem_identity(key, None),
        "expiring in 3 days": lean_pem_identity(_read(pki, "expiring.crt"), _read(pki, "expiring.key")),
        "RSA-1024": lean_pem_identity(_read(tmp_path, "weak.crt"), _read(tmp_path, "weak.key")),
        "secp256k1": lean_pem_identity(_read(tmp_path, "k1.crt"), _read(tmp_path, "k1.key")),
        "a header in a block": lean_pem_identity(
            _read(pki, "client.crt").replace(b"-----\n", b"-----\nProc-Type: 4,X\n\n", 1), key),
        "a cut block": lean_pem_identity(_read(pki, "client.crt")[:-40], key),
    }

    assert {name: identity for name, identity in declined.items() if identity is not None} == {}


def test_a_leaf_near_its_end_takes_the_full_path_whose_warning_names_it(pki: Path) -> None:
    data, key = _read(pki, "client.crt", "intermediate.crt"), _read(pki, "client.key")
    lean = lean_pem_identity(data, key)
    assert lean is not None
    end = lean.leaf.not_valid_after_utc

    assert lean_pem_identity(data, key, now=end - dt.timedelta(days=20)) is not None
    assert lean_pem_identity(data, key, now=end - dt.timedelta(days=14)) is None


def test_names_compare_as_cryptography_compares_them() -> None:
    """Chain links are found by name, as the full path's ``find_issuer`` finds them: the same text
    in another string type is the same name, the attributes of an RDN in any order too."""
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID

    from flowrun._tls._lean import name_key
    from tests.tls.test_lean_path import _self_signed

    def attribute(oid: x509.ObjectIdentifier, value: str, kind: _ASN1Type | None = None) -> x509.NameAttribute:
        return x509.NameAttribute(oid, value, kind) if kind is not None else x509.NameAttribute(oid, value)

    cn, org = NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME
    names = {
        "utf8": x509.Name([attribute(cn, "Bank CA", _ASN1Type.UTF8String), attribute(org, "Bank")]),
        "printable": x509.Name([attribute(cn, "Bank CA", _ASN1Type.PrintableString), attribute(org, "Bank")]),
        "other case": x509.Name([attribute(cn, "bank ca"), attribute(org, "Bank")]),
        "rdn ab": x509.Name([x509.RelativeDistinguishedName([attribute(cn, "a"), attribute(org, "b")])]),
        "rdn ba": x509.Name([x509.RelativeDistinguishedName([attribute(org, "b"), attribute(cn, "a")])]),
        "reversed": x509.Name([attribute(org, "Bank"), attribute(cn, "Bank CA")]),
    }
    certificates = {label: x509.load_der_x509_certificate(_self_signed(name)) for label, name in names.items()}
    keys = {label: name_key(cert.subject.public_bytes()) for label, cert in certificates.items()}

    assert all(key is not None for key in keys.values())
    for a in names:
        for b in names:
            assert (keys[a] == keys[b]) == (certificates[a].subject == certificates[b].subject), (a, b)
    assert keys["utf8"] == keys["printable"] and keys["rdn ab"] == keys["rdn ba"]
    bmp = x509.Name([attribute(cn, "wide", _ASN1Type.BMPString)])
    assert name_key(x509.load_der_x509_certificate(_self_signed(bmp)).subject.public_bytes()) is None
