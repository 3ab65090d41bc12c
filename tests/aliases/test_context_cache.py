"""The SSL context cache: one build per distinct content, and renewal picked up without a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowrun._errors import KeystorePasswordError
from flowrun._tls._cache import TlsCache
from flowrun._transport._probe import probe
from flowrun.testing import PartnerServer, Pki, PkiFiles, issue_client, make_ca
from flowrun.testing._pki import certificates_pem, write_java_keystore
from tests.aliases._setup import (
    KEYSTORE_ENV,
    ca_common_names,
    keystore,
    load,
    mtls_alias,
    mtls_records,
    profile,
    write_aliases,
    write_jks,
)

pytestmark = pytest.mark.usefixtures("secrets_env")


def test_two_aliases_on_one_profile_share_one_context_and_one_build(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = [*mtls_records(pki_files, port=8443), mtls_alias("partner_ledger", port=9443)]
    cache = TlsCache()
    registry = load(write_aliases(tmp_path, records), cache)

    first, second = registry.resolve("partner"), registry.resolve("partner_ledger")

    assert first.ssl_context is second.ssl_context
    assert cache.contexts.builds == 1
    assert (first.port, second.port) == (8443, 9443)


def test_resolving_again_builds_nothing(tmp_path: Path, pki_files: PkiFiles) -> None:
    cache = TlsCache()
    directory = write_aliases(tmp_path, mtls_records(pki_files, port=8443))
    context = load(directory, cache).resolve("partner").ssl_context
    for _ in range(5):
        # A new registry (a new run of the same definitions) shares the process cache too.
        assert load(directory, cache).resolve("partner").ssl_context is context
    assert cache.contexts.builds == 1
    assert cache.identities.builds == 2  # the keystore and the trust cert, each decoded once


def test_profiles_built_from_the_same_content_share_a_context(tmp_path: Path, pki_files: PkiFiles) -> None:
    """The key is what a context is built from, not record names or paths."""
    copy = tmp_path / "copy" / "client-copy.jks"
    copy.parent.mkdir()
    shutil.copy(pki_files.client.jks, copy)
    records = [
        *mtls_records(pki_files, port=8443),
        keystore("copy_ks", copy),
        profile("copyMTLS", "copy_ks"),
        mtls_alias("copied", port=8443, profile_name="copyMTLS"),
    ]
    cache = TlsCache()
    registry = load(write_aliases(tmp_path / "aliases", records), cache)
    assert registry.resolve("partner").ssl_context is registry.resolve("copied").ssl_context
    assert cache.contexts.builds == 1


def test_different_tls_settings_get_their_own_context(tmp_path: Path, pki_files: PkiFiles) -> None:
    records = [
        *mtls_records(pki_files, port=8443),
        profile("strictMTLS", tls_versions=["1.3"]),
        mtls_alias("strict", port=8443, profile_name="strictMTLS"),
    ]
    cache = TlsCache()
    registry = load(write_aliases(tmp_path, records), cache)
    assert registry.resolve("partner").ssl_context is not registry.resolve("strict").ssl_context
    assert cache.contexts.builds == 2


def test_renewed_keystore_is_used_on_next_resolution(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    """Renewal: the keystore file is replaced (as a deploy does); the partner sees the new cert."""
    keystore_path = write_jks(tmp_path / "keystores" / "client.jks", pki.client)
    renewed = issue_client(pki, common_name="renewed-client")
    cache = TlsCache()
    with PartnerServer(pki) as partner:
        records = mtls_records(pki_files, port=partner.port, keystore_file=keystore_path)
        registry = load(write_aliases(tmp_path / "aliases", records), cache)
        before = registry.resolve("partner")
        assert probe(before).ok
        write_jks(keystore_path, renewed)  # written aside and renamed over the old file
        after = registry.resolve("partner")
        assert probe(after).ok
        seen = partner.client_certs

    assert after.ssl_context is not before.ssl_context
    assert cache.contexts.builds == 2
    assert (before.client_cert_sha256, after.client_cert_sha256) == (pki.client.sha256, renewed.sha256)
    assert seen == [pki.client.sha256, renewed.sha256]


def test_keystore_rewritten_in_place_is_noticed(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    keystore_path = write_jks(tmp_path / "keystores" / "client.jks", pki.client)
    renewed_path = write_jks(tmp_path / "renewed" / "client.jks", issue_client(pki, common_name="in-place"))
    cache = TlsCache()
    registry = load(write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443,
                                                                     keystore_file=keystore_path)), cache)
    before = registry.resolve("partner")
    inode = keystore_path.stat().st_ino
    keystore_path.write_bytes(renewed_path.read_bytes())  # same inode: only size/mtime change
    assert keystore_path.stat().st_ino == inode
    after = registry.resolve("partner")
    assert after.ssl_context is not before.ssl_context
    assert after.client_certificate is not None
    assert after.client_certificate.subject.rfc4514_string().startswith("CN=in-place")


def test_rolling_back_to_the_old_file_reuses_its_context(tmp_path: Path, pki: Pki, pki_files: PkiFiles) -> None:
    keystore_path = write_jks(tmp_path / "keystores" / "client.jks", pki.client)
    old = keystore_path.read_bytes()
    cache = TlsCache()
    registry = load(write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443,
                                                                     keystore_file=keystore_path)), cache)
    original = registry.resolve("partner").ssl_context
    write_jks(keystore_path, issue_client(pki, common_name="temporary"))
    assert registry.resolve("partner").ssl_context is not original
    keystore_path.write_bytes(old)
    assert registry.resolve("partner").ssl_context is original
    assert cache.contexts.builds == 2


def test_changed_trust_cert_rebuilds_the_context(tmp_path: Path, pki_files: PkiFiles) -> None:
    trust_path = tmp_path / "certs" / "partner.pem"
    trust_path.parent.mkdir()
    shutil.copy(pki_files.root_pem, trust_path)
    cache = TlsCache()
    registry = load(write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443,
                                                                     trust_file=trust_path)), cache)
    before = registry.resolve("partner").ssl_context
    new_partner_ca = make_ca("partner CA after renewal")
    trust_path.write_bytes(certificates_pem([new_partner_ca.certificate]))
    after = registry.resolve("partner").ssl_context
    assert after is not before and after is not None
    assert ca_common_names(after) == {"partner CA after renewal"}
    assert cache.contexts.builds == 2


def test_store_resaved_under_a_new_password(tmp_path: Path, pki: Pki, pki_files: PkiFiles,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """New content under the old password is an error at once, never a stale context."""
    keystore_path = write_jks(tmp_path / "keystores" / "client.jks", pki.client)
    cache = TlsCache()
    registry = load(write_aliases(tmp_path / "aliases", mtls_records(pki_files, port=8443,
                                                                     keystore_file=keystore_path)), cache)
    first = registry.resolve("partner").ssl_context
    write_java_keystore(keystore_path, pki.client, alias="client", password="rotated-pass-2")
    with pytest.raises(KeystorePasswordError):
        registry.resolve("partner")
    monkeypatch.setenv(KEYSTORE_ENV, "rotated-pass-2")
    resolved = registry.resolve("partner")
    assert resolved.ssl_context is not first
    assert resolved.client_cert_sha256 == pki.client.sha256
    assert cache.contexts.builds == 2
