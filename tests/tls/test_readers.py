"""Keystore readers on stores made by the real keytool (JKS, JCEKS, PKCS12) and PEM made with
cryptography: entries, chains, keys, passwords, damaged files, and the JKS writer."""

from __future__ import annotations

import contextlib
import os
import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from hypothesis import given, settings
from hypothesis import strategies as st

from flowrun._errors import (
    KeyAliasError,
    KeyMaterialError,
    KeyMismatchError,
    KeyPasswordError,
    KeystoreCorruptError,
    KeystoreFormatError,
    KeystoreNotFoundError,
    KeystorePasswordError,
    NoPrivateKeyError,
    TrustCertError,
)
from flowrun._tls import _der
from flowrun._tls._detect import detect_type
from flowrun._tls._jks import _jceks_recover, encode_jks, write_jks
from flowrun._tls._model import KeystoreContents
from flowrun._tls._read import (
    load_keystore_file,
    read_keystore,
    read_pem,
    read_trust_certs,
    select_identity,
)
from tests._keytool import (
    CA,
    KeytoolStore,
    StoreFactory,
    keytool_list,
    new_ec_key,
    new_rsa_key,
    pem,
    run_keytool,
)

TYPE_OF = {"JKS": "jks", "JCEKS": "jceks", "PKCS12": "pkcs12"}


def public_der(key: object) -> bytes:
    return key.public_key().public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def cert_public_der(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def read(store: KeytoolStore, password: str | None = None) -> KeystoreContents:
    return read_keystore(store.path.read_bytes(), password=store.storepass if password is None else password,
                         source=str(store.path))


def two_keys(stores: StoreFactory, storetype: str) -> KeytoolStore:
    """The store most tests share: keys 'client' and 'second' (and, in JCEKS, two secret keys)."""
    return stores(storetype=storetype, key_type="EC", extra_private_keys=("second",),
                  secret_keys=("aes-one", "aes-two") if storetype == "JCEKS" else ())


def full(stores: StoreFactory, storetype: str) -> KeytoolStore:
    """The same store as the ``full_store`` fixture's EC variant."""
    return stores(storetype=storetype, key_type="EC", keypass="keypass-1")


def aliases(contents: KeystoreContents, kind: str) -> set[str]:
    return {e.alias for e in contents.entries if e.kind == kind}


# --- keytool stores: the article's layout -------------------------------------------------------


@pytest.mark.keytool
def test_full_chain_is_read_leaf_first(full_store: KeytoolStore) -> None:
    contents = read(full_store)
    assert contents.type == TYPE_OF[full_store.storetype]
    assert contents.source == str(full_store.path)
    (entry,) = contents.private_key_entries()
    assert entry.alias == "client"
    assert entry.certificates == full_store.chain
    assert [c.subject.rfc4514_string() for c in entry.certificates] == [
        "O=Flowrun Test,CN=client", "O=Flowrun Test,CN=Test Intermediate CA", "O=Flowrun Test,CN=Test Root CA",
    ]
    assert aliases(contents, "trusted_cert") == {"root", "intermediate"}
    assert set(contents.trusted_certificates()) == {full_store.root.cert, full_store.intermediate.cert}


@pytest.mark.keytool
def test_identity_key_belongs_to_leaf(full_store: KeytoolStore) -> None:
    contents = read(full_store)
    identity = select_identity(contents, key_alias="client", key_password=full_store.keypass,
                               store_password=full_store.storepass)
    assert identity.alias == "client"
    assert identity.chain == full_store.chain
    assert public_der(identity.private_key) == cert_public_der(full_store.leaf)


@pytest.mark.keytool
def test_key_password_differs_from_store_password(full_store: KeytoolStore) -> None:
    contents = read(full_store)
    (entry,) = contents.private_key_entries()
    assert entry.decrypt_key is not None
    if full_store.storetype == "PKCS12":
        # keytool ignores -keypass for PKCS12: the key password is the store password.
        assert full_store.keypass == full_store.storepass
        key = entry.decrypt_key(None)
    else:
        assert full_store.keypass != full_store.storepass
        with pytest.raises(KeyPasswordError) as caught:
            entry.decrypt_key(None)  # falls back to the store password, which is not the key's
        assert "client" in str(caught.value)
        assert caught.value.file == str(full_store.path)
        key = entry.decrypt_key(full_store.keypass)
    assert public_der(key) == cert_public_der(full_store.leaf)
    assert entry.decrypt_key(full_store.keypass) is key  # decrypted once per entry


@pytest.mark.keytool
def test_wrong_store_password(full_store: KeytoolStore) -> None:
    with pytest.raises(KeystorePasswordError) as caught:
        read(full_store, password="not-the-password")
    assert "not-the-password" not in str(caught.value)
    assert caught.value.file == str(full_store.path)


@pytest.mark.keytool
def test_wrong_key_password(full_store: KeytoolStore) -> None:
    contents = read(full_store)
    with pytest.raises(KeyPasswordError) as caught:
        select_identity(contents, key_alias=None, key_password="wrong-key-pass",
                        store_password=full_store.storepass)
    assert "wrong-key-pass" not in str(caught.value)


@pytest.mark.keytool
@pytest.mark.parametrize("storetype", ["JKS", "JCEKS", "PKCS12"])
def test_two_private_keys_are_chosen_by_alias(keytool_stores: StoreFactory, storetype: str) -> None:
    store = two_keys(keytool_stores, storetype)
    contents = read(store)
    assert aliases(contents, "private_key") == {"client", "second"}

    second = select_identity(contents, key_alias="SeCoNd", key_password=None, store_password=store.storepass)
    assert second.alias == "second"
    assert second.leaf == store.leaves["second"]
    assert second.chain[1:] == (store.intermediate.cert, store.root.cert)
    assert public_der(second.private_key) == cert_public_der(store.leaves["second"])

    with pytest.raises(KeyAliasError) as caught:
        select_identity(contents, key_alias=None, key_password=None, store_password=store.storepass)
    assert "'client'" in caught.value.message and "'second'" in caught.value.message

    with pytest.raises(KeyAliasError) as caught:
        select_identity(contents, key_alias="clinet", key_password=None, store_password=store.storepass)
    assert "did you mean 'client'" in caught.value.message
    assert "'second'" in caught.value.message

    with pytest.raises(KeyAliasError) as caught:
        select_identity(contents, key_alias="Root", key_password=None, store_password=store.storepass)
    assert "trustedCertEntry" in caught.value.message


@pytest.mark.keytool
@pytest.mark.parametrize("storetype", ["JKS", "JCEKS", "PKCS12"])
def test_trusted_certificates_only_is_no_private_key(keytool_stores: StoreFactory, storetype: str) -> None:
    store = keytool_stores(storetype=storetype, trusted_only=True)
    contents = read(store)
    assert contents.private_key_entries() == ()
    assert aliases(contents, "trusted_cert") == {"root", "intermediate", "client"}
    with pytest.raises(NoPrivateKeyError) as caught:
        select_identity(contents, key_alias="client", key_password=None, store_password=store.storepass)
    message = caught.value.message
    assert "trustedCertEntry" in message
    for alias in ("'root'", "'intermediate'", "'client'"):
        assert alias in message
    assert "-genkeypair" in caught.value.hint


@pytest.mark.keytool
def test_jceks_secret_key_entries_are_listed(keytool_stores: StoreFactory) -> None:
    store = two_keys(keytool_stores, "JCEKS")
    contents = read(store)
    secrets = [e for e in contents.entries if e.kind == "secret_key"]
    assert {e.alias for e in secrets} == {"aes-one", "aes-two"}
    assert all(e.certificates == () and e.decrypt_key is None for e in secrets)
    assert all(e.secret_key_algorithm is None for e in secrets)  # sealed: not readable without the key
    identity = select_identity(contents, key_alias="client", key_password=None, store_password=store.storepass)
    assert identity.chain == store.chain


@pytest.mark.keytool
def test_pkcs12_written_in_java8_legacy_format(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="PKCS12", key_type="RSA", legacy_pkcs12=True)
    data = store.path.read_bytes()
    assert b"\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x01\x06" in data  # pbeWithSHAAnd40BitRC2-CBC: really legacy
    contents = read(store)
    identity = select_identity(contents, key_alias="client", key_password=None, store_password=store.storepass)
    assert identity.chain == store.chain
    assert public_der(identity.private_key) == cert_public_der(store.leaf)
    with pytest.raises(KeystorePasswordError):
        read(store, password="wrong")


@pytest.mark.keytool
@pytest.mark.parametrize(("storetype", "storepass", "keypass"), [
    ("JKS", "pässwörd", "kéyp€ss-ünïcode"),
    # Java's PBE keys take ASCII only, and keytool cannot write PKCS12 with such a password at all.
    ("JCEKS", "pässwörd", "key-pass"),
])
def test_non_ascii_passwords(keytool_stores: StoreFactory, storetype: str, storepass: str, keypass: str) -> None:
    store = keytool_stores(storetype=storetype, storepass=storepass, keypass=keypass)
    contents = read(store)
    identity = select_identity(contents, key_alias="client", key_password=keypass, store_password=storepass)
    assert public_der(identity.private_key) == cert_public_der(store.leaf)
    with pytest.raises(KeystorePasswordError):
        read(store, password="passwörd")
    with pytest.raises(KeyPasswordError):
        select_identity(read(store), key_alias="client", key_password="kéypass", store_password=storepass)


@pytest.mark.parametrize("legacy", [False, True])
def test_pkcs12_with_non_ascii_password(test_root_ca: CA, test_intermediate_ca: CA, legacy: bool) -> None:
    key = new_ec_key()
    leaf = test_intermediate_ca.issue_leaf(key.public_key(), "client")
    password = "pässwörd€"
    if legacy:
        encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
                      .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                      .hmac_hash(hashes.SHA1()).build(password.encode()))
    else:
        encryption = serialization.BestAvailableEncryption(password.encode())
    data = pkcs12.serialize_key_and_certificates(
        b"Client", key, leaf, [test_intermediate_ca.cert, test_root_ca.cert], encryption,
    )
    contents = read_keystore(data, password=password)
    identity = select_identity(contents, key_alias="client", key_password=None, store_password=password)
    assert identity.chain == (leaf, test_intermediate_ca.cert, test_root_ca.cert)
    assert public_der(identity.private_key) == public_der(key)
    # CA certificates without a friendly name are chain certificates, not trusted entries.
    assert aliases(contents, "trusted_cert") == set()
    with pytest.raises(KeystorePasswordError):
        read_keystore(data, password="passwörd€")


def test_pkcs12_without_friendly_name_uses_alias_1(test_intermediate_ca: CA) -> None:
    key = new_rsa_key()
    leaf = test_intermediate_ca.issue_leaf(key.public_key(), "client")
    data = pkcs12.serialize_key_and_certificates(None, key, leaf, None,
                                                 serialization.BestAvailableEncryption(b"changeit"))
    contents = read_keystore(data, password="changeit", type="pkcs12")
    (entry,) = contents.private_key_entries()
    assert entry.alias == "1"
    assert entry.certificates == (leaf,)


@pytest.mark.keytool
@pytest.mark.parametrize("import_ca_certs", [False, True])
def test_leaf_only_chain_is_completed_from_trusted_entries(
    keytool_stores: StoreFactory, import_ca_certs: bool,
) -> None:
    store = keytool_stores(storetype="JKS", chain_mode="leaf_only", import_ca_certs=import_ca_certs)
    listing = keytool_list(store.path, store.storepass)
    assert "Certificate chain length: 1" in listing
    contents = read(store)
    (entry,) = contents.private_key_entries()
    assert entry.certificates == (store.leaf,)
    identity = select_identity(contents, key_alias="client", key_password=None, store_password=store.storepass)
    expected = store.chain if import_ca_certs else (store.leaf,)
    assert identity.chain == expected


@pytest.mark.keytool
def test_self_signed_key_pair_as_generated(keytool_stores: StoreFactory) -> None:
    store = keytool_stores(storetype="JCEKS", chain_mode="none", key_type="RSA")
    identity = select_identity(read(store), key_alias=None, key_password=None, store_password=store.storepass)
    assert len(identity.chain) == 1
    assert identity.leaf.issuer == identity.leaf.subject
    assert public_der(identity.private_key) == cert_public_der(identity.leaf)


@pytest.mark.keytool
def test_keytool_refuses_what_we_refuse(keytool_stores: StoreFactory) -> None:
    """The store password check agrees with keytool's own."""
    store = full(keytool_stores, "JKS")
    proc = run_keytool("-list", "-keystore", str(store.path), "-storepass", "wrong-pass", check=False)
    assert proc.returncode != 0
    assert "password was incorrect" in proc.stdout + proc.stderr
    with pytest.raises(KeystorePasswordError):
        read(store, password="wrong-pass")


# --- damaged and foreign files ------------------------------------------------------------------


@pytest.mark.keytool
@pytest.mark.parametrize("storetype", ["JKS", "JCEKS", "PKCS12"])
def test_truncated_stores(keytool_stores: StoreFactory, storetype: str) -> None:
    store = two_keys(keytool_stores, storetype)
    data = store.path.read_bytes()
    cuts = {8, 12, 16, 30, 100, len(data) // 3, len(data) // 2, len(data) - 500, len(data) - 21,
            len(data) - 20, len(data) - 1}
    if storetype != "PKCS12":
        cuts |= {4, 5}
    if storetype == "JCEKS":
        start = data.index(b"\xac\xed\x00\x05")
        cuts |= {start + 2, start + 40, start + 200}
    for cut in sorted(cuts):
        with pytest.raises((KeystoreCorruptError, KeystorePasswordError)) as caught:
            read_keystore(data[:cut], password=store.storepass)
        assert type(caught.value) in (KeystoreCorruptError, KeystorePasswordError), cut
    # Without a password the JKS/JCEKS integrity check is skipped: the truncation alone is found.
    if storetype != "PKCS12":
        with pytest.raises(KeystoreCorruptError, match="truncated"):
            read_keystore(data[: len(data) // 2], password=None)


@pytest.mark.keytool
def test_trailing_bytes_are_ignored_as_java_ignores_them(keytool_stores: StoreFactory) -> None:
    store = full(keytool_stores, "JKS")
    padded = read_keystore(store.path.read_bytes() + b"\x00" * 3, password=store.storepass)
    assert [e.alias for e in padded.entries] == [e.alias for e in read_keystore(
        store.path.read_bytes(), password=store.storepass).entries]


def test_missing_file_directory_and_empty_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jks"
    with pytest.raises(KeystoreNotFoundError) as caught:
        load_keystore_file(missing, password="changeit")
    assert caught.value.file == str(missing)
    assert str(missing) in caught.value.message

    with pytest.raises(KeystoreNotFoundError, match="directory") as caught:
        load_keystore_file(tmp_path, password="changeit")
    assert caught.value.file == str(tmp_path)

    empty = tmp_path / "empty.jks"
    empty.write_bytes(b"")
    with pytest.raises(KeystoreFormatError, match="empty") as format_error:
        load_keystore_file(empty, password="changeit")
    assert format_error.value.file == str(empty)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    locked = tmp_path / "locked.jks"
    locked.write_bytes(b"\xfe\xed\xfe\xed")
    locked.chmod(0)
    with pytest.raises(KeystoreNotFoundError, match="permission"):
        load_keystore_file(locked, password="x")


@pytest.mark.parametrize(("content", "expected"), [
    (b"<!DOCTYPE html><html><body>Sign in</body></html>", "looks like HTML"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(40)), "starts with bytes 89 50 4e 47"),
    (b"PK\x03\x04rest-of-zip", "ZIP archive"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2000\n", "Git LFS pointer"),
    (b'{"keystore": "client.jks"}', "JSON"),
])
def test_unknown_content_is_described(content: bytes, expected: str) -> None:
    with pytest.raises(KeystoreFormatError) as caught:
        detect_type(content)
    assert expected in caught.value.message


def test_random_bytes_are_a_format_error() -> None:
    rng = random.Random(7)
    for _ in range(50):
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300)))
        if blob.startswith((b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce", b"0")):
            continue
        with pytest.raises(KeyMaterialError):
            read_keystore(blob, password="changeit")


@pytest.mark.keytool
def test_base64_of_a_keystore_is_recognised(keytool_stores: StoreFactory) -> None:
    import base64

    store = full(keytool_stores, "JKS")
    with pytest.raises(KeystoreFormatError, match="base64 text of a JKS keystore"):
        detect_type(base64.encodebytes(store.path.read_bytes()))


@pytest.mark.keytool
def test_detect_type_and_explicit_type_mismatch(keytool_stores: StoreFactory) -> None:
    for storetype in ("JKS", "JCEKS", "PKCS12"):
        store = full(keytool_stores, storetype)
        assert detect_type(store.path.read_bytes()) == TYPE_OF[storetype]
    # keytool writes PKCS12 unless told -storetype JKS, and Java reads it as "JKS" all the same.
    p12 = full(keytool_stores, "PKCS12")
    contents = read_keystore(p12.path.read_bytes(), password=p12.storepass, type="jks", source="client.jks")
    assert contents.type == "pkcs12"
    jceks = full(keytool_stores, "JCEKS")
    with pytest.raises(KeystoreFormatError) as caught:
        read_keystore(jceks.path.read_bytes(), password=jceks.storepass, type="pem", source="client.pem")
    assert "pem" in caught.value.message and "JCEKS" in caught.value.message
    assert caught.value.file == "client.pem"


def test_single_der_certificate_is_not_a_keystore(test_root_ca: CA) -> None:
    with pytest.raises(KeystoreFormatError, match="trust store cert"):
        detect_type(test_root_ca.cert.public_bytes(serialization.Encoding.DER))


@pytest.mark.keytool
@settings(max_examples=150, deadline=None)
@given(mutations=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(min_value=0)), use_password=st.booleans())
def test_mutated_jks_only_raises_key_material_errors(
    keytool_stores: StoreFactory, mutations: list[tuple[int, int]], cut: int | None, use_password: bool,
) -> None:
    store = two_keys(keytool_stores, "JKS")
    data = bytearray(store.path.read_bytes())
    for position, value in mutations:
        data[position % len(data)] = value
    if cut is not None:
        del data[cut % len(data):]
    try:
        contents = read_keystore(bytes(data), password=store.storepass if use_password else None)
        for entry in contents.private_key_entries():
            select_identity(contents, key_alias=entry.alias, key_password=store.keypass,
                            store_password=store.storepass)
    except KeyMaterialError:
        pass


@pytest.mark.keytool
@settings(max_examples=60, deadline=None)
@given(mutations=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=3),
       storetype=st.sampled_from(["JCEKS", "PKCS12"]))
def test_mutated_jceks_and_pkcs12_only_raise_key_material_errors(
    keytool_stores: StoreFactory, mutations: list[tuple[int, int]], storetype: str,
) -> None:
    store = two_keys(keytool_stores, storetype)
    data = bytearray(store.path.read_bytes())
    for position, value in mutations:
        data[position % len(data)] = value
    with contextlib.suppress(KeyMaterialError):
        read_keystore(bytes(data), password=None if storetype == "JCEKS" else store.storepass)


def test_jceks_key_protection_matches_java_with_equal_salt_halves() -> None:
    """Vectors made with JDK 17's PBEWithMD5AndTripleDES cipher (password "pass word!", 1000 rounds).
    With equal salt halves the JDK reverses the first half before deriving the key."""
    plain = b"flowrun test vector: equal salt halves"
    vectors = {
        "0102030401020304": "9d4eb6e7ee13482bfc3ddae0bf123b4bb76b26a2bcb154452754ab497cdb26b52df75bd3e1032996",
        "0102030405060708": "6230a7753bc3da4e5c93b5b18d13a438316ad007199d2f05687fd268a83c1313d26a7e8842f5a6af",
    }
    for salt, encrypted in vectors.items():
        params = _der.parse(_der.sequence(_der.encode(_der.OCTET_STRING, bytes.fromhex(salt)),
                                          _der.encode(_der.INTEGER, (1000).to_bytes(2, "big"))))
        assert _jceks_recover(params, bytes.fromhex(encrypted), "pass word!") == plain
        assert _jceks_recover(params, bytes.fromhex(encrypted), "pass w0rd!") != plain


# --- PEM ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pem_identity(test_root_ca: CA, test_intermediate_ca: CA) -> tuple[object, tuple[x509.Certificate, ...]]:
    key = new_rsa_key()
    leaf = test_intermediate_ca.issue_leaf(key.public_key(), "pem-client")
    return key, (leaf, test_intermediate_ca.cert, test_root_ca.cert)


def key_pem(key: object, fmt: serialization.PrivateFormat, password: bytes | None) -> bytes:
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)  # type: ignore[attr-defined, no-any-return]


PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL


@pytest.mark.parametrize(("fmt", "password", "marker"), [
    (PKCS8, None, b"BEGIN PRIVATE KEY"),
    (PKCS8, "pem-pässword", b"BEGIN ENCRYPTED PRIVATE KEY"),
    (TRADITIONAL, None, b"BEGIN RSA PRIVATE KEY"),
    (TRADITIONAL, "pem-pässword", b"Proc-Type: 4,ENCRYPTED"),
])
@pytest.mark.parametrize("separate_key", [False, True])
def test_pem_identity(pem_identity: tuple[object, tuple[x509.Certificate, ...]], fmt: serialization.PrivateFormat,
                      password: str | None, marker: bytes, separate_key: bool) -> None:
    key, chain = pem_identity
    key_bytes = key_pem(key, fmt, password.encode() if password else None)
    assert marker in key_bytes
    # Chain written root first: the reader puts the leaf first anyway.
    certs = b"".join(pem(c) for c in reversed(chain))
    if separate_key:
        contents = read_pem(certs, key_bytes, password=password, source="client.pem")
    else:
        contents = read_keystore(key_bytes + certs, password=password, source="client.pem")
    assert contents.type == "pem"
    identity = select_identity(contents, key_alias=None, key_password=None, store_password=password)
    assert identity.chain == chain
    assert public_der(identity.private_key) == public_der(key)
    if password is not None:
        with pytest.raises(KeyPasswordError, match="wrong password"):
            select_identity(contents, key_alias=None, key_password="wrong", store_password=password)
        missing = read_pem(certs, key_bytes, password=None)
        with pytest.raises(KeyPasswordError, match="encrypted"):
            select_identity(missing, key_alias=None, key_password=None, store_password=None)


def test_pem_traditional_ec_key(test_intermediate_ca: CA) -> None:
    key = new_ec_key()
    leaf = test_intermediate_ca.issue_leaf(key.public_key(), "ec-client")
    data = key_pem(key, TRADITIONAL, b"secret") + pem(leaf)
    assert b"BEGIN EC PRIVATE KEY" in data
    contents = read_keystore(data, password="secret")
    identity = select_identity(contents, key_alias="ignored-for-pem", key_password=None, store_password="secret")
    assert identity.chain == (leaf,)


def test_pem_key_of_another_certificate(test_intermediate_ca: CA) -> None:
    key = new_ec_key()
    other = test_intermediate_ca.issue_leaf(new_ec_key().public_key(), "someone-else")
    contents = read_keystore(key_pem(key, PKCS8, None) + pem(other), password=None)
    with pytest.raises(KeyMismatchError, match="someone-else"):
        select_identity(contents, key_alias=None, key_password=None, store_password=None)


def test_pem_errors(test_root_ca: CA) -> None:
    cert = pem(test_root_ca.cert)
    with pytest.raises(KeystoreCorruptError, match="no matching END"):
        read_keystore(cert[: len(cert) // 2], password=None)
    with pytest.raises(KeystoreCorruptError, match="cannot be decoded"):
        read_keystore(cert.replace(cert[40:60], b"A" * 20), password=None)
    csr = b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
    with pytest.raises(KeystoreFormatError, match="CERTIFICATE REQUEST"):
        read_keystore(csr, password=None)
    two_keys = key_pem(new_ec_key(), PKCS8, None) + key_pem(new_ec_key(), PKCS8, None) + cert
    with pytest.raises(KeystoreFormatError, match="2 private keys"):
        read_keystore(two_keys, password=None)
    only_cert = read_keystore(cert, password=None)
    with pytest.raises(NoPrivateKeyError):
        select_identity(only_cert, key_alias=None, key_password=None, store_password=None)


# --- trust store certs --------------------------------------------------------------------------


def test_trust_certs_pem_bundle_der_and_p7b(test_root_ca: CA, test_intermediate_ca: CA) -> None:
    root, inter = test_root_ca.cert, test_intermediate_ca.cert
    assert read_trust_certs(pem(root), format="pem", source="root.pem") == (root,)
    assert read_trust_certs(b"# bundle\n" + pem(root) + pem(inter), format=None, source="b.pem") == (root, inter)
    der = root.public_bytes(serialization.Encoding.DER)
    assert read_trust_certs(der, format="der", source="root.cer") == (root,)
    assert read_trust_certs(der, format=None, source="root.cer") == (root,)
    p7b = pkcs7.serialize_certificates([root, inter], serialization.Encoding.DER)
    assert set(read_trust_certs(p7b, format="der", source="chain.p7b")) == {root, inter}


def test_trust_cert_errors(test_root_ca: CA) -> None:
    der = test_root_ca.cert.public_bytes(serialization.Encoding.DER)
    cases: list[tuple[bytes, str | None, str]] = [
        (b"", "pem", "empty"),
        (der, "pem", "set format to der"),
        (pem(test_root_ca.cert), "der", "set format to pem"),
        (b"<html>not found</html>", "der", "HTML"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "pem", "PUBLIC KEY"),
        (pem(test_root_ca.cert)[:300], "pem", "no matching END"),
    ]
    for data, fmt, expected in cases:
        with pytest.raises(TrustCertError) as caught:
            read_trust_certs(data, format=fmt, source="partner.pem")
        assert expected in caught.value.message, caught.value.message
        assert caught.value.file == "partner.pem"


# --- writing JKS --------------------------------------------------------------------------------


@pytest.mark.keytool
@pytest.mark.parametrize(("password", "key_password"), [("changeit", None), ("störe-pass", "kéy-pass")])
def test_write_jks_round_trip(tmp_path: Path, test_root_ca: CA, test_intermediate_ca: CA,
                              password: str, key_password: str | None) -> None:
    key = new_rsa_key()
    leaf = test_intermediate_ca.issue_leaf(key.public_key(), "written")
    chain = (leaf, test_intermediate_ca.cert, test_root_ca.cert)
    path = tmp_path / "written.jks"
    write_jks(path, alias="Client", private_key=key, chain=chain, password=password,
              trusted={"Root": test_root_ca.cert}, key_password=key_password)
    assert path.stat().st_mode & 0o777 == 0o600

    listing = keytool_list(path, password, storetype="JKS")
    assert "Keystore type: JKS" in listing
    assert "Alias name: client\n" in listing and "Entry type: PrivateKeyEntry" in listing
    assert "Certificate chain length: 3" in listing
    assert "Alias name: root\n" in listing and "Entry type: trustedCertEntry" in listing
    # keytool must be able to decrypt the key too: a certificate request needs it.
    run_keytool("-certreq", "-alias", "client", "-keystore", str(path), "-storetype", "JKS",
                "-storepass", password, "-keypass", key_password or password, "-file", str(tmp_path / "r.csr"))
    csr = x509.load_pem_x509_csr((tmp_path / "r.csr").read_bytes())
    assert csr.public_key() == key.public_key()

    contents = load_keystore_file(path, password=password, type="jks")
    identity = select_identity(contents, key_alias="CLIENT", key_password=key_password, store_password=password)
    assert identity.chain == chain
    assert public_der(identity.private_key) == public_der(key)


def test_encode_jks_refuses_a_key_that_is_not_the_leafs(test_intermediate_ca: CA) -> None:
    leaf = test_intermediate_ca.issue_leaf(new_ec_key().public_key(), "x")
    with pytest.raises(KeyMismatchError):
        encode_jks(alias="x", private_key=new_ec_key(), chain=[leaf], password="changeit")
    key = new_ec_key()
    with pytest.raises(ValueError, match="unique"):
        encode_jks(alias="x", private_key=key, chain=[test_intermediate_ca.issue_leaf(key.public_key(), "x")],
                   password="changeit", trusted={"X": leaf})
